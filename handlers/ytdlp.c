#include "handlers/ytdlp.h"
#include "reactor/log.h"
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---------------------------------------------------------------------------------------------------------------------
 * small helpers
 * ------------------------------------------------------------------------------------------------------------------- */

static void *xmalloc(size_t n)
{
    void *p = malloc(n == 0 ? 1 : n);
    if (p == NULL)
        abort();
    return p;
}

static void *xrealloc(void *p, size_t n)
{
    p = realloc(p, n == 0 ? 1 : n);
    if (p == NULL)
        abort();
    return p;
}

static char *xstrndup(const char *s, size_t n)
{
    char *p = xmalloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

static char *xstrdup(const char *s)
{
    return xstrndup(s, strlen(s));
}

static int lower(int c)
{
    return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c;
}

static bool ieq_n(const char *a, size_t alen, const char *b, size_t blen)
{
    if (alen != blen)
        return false;
    for (size_t i = 0; i < alen; i++)
        if (lower((unsigned char)a[i]) != lower((unsigned char)b[i]))
            return false;
    return true;
}

/* ASCII case-insensitive strstr: stderr wording varies in case between yt-dlp versions. */
static const char *istrstr(const char *hay, const char *needle)
{
    size_t n = strlen(needle);
    for (; *hay != '\0'; hay++)
        if (lower((unsigned char)*hay) == lower((unsigned char)*needle) && strlen(hay) >= n && ieq_n(hay, n, needle, n))
            return hay;
    return NULL;
}

static bool is_digit(int c)
{
    return c >= '0' && c <= '9';
}

static bool is_alpha(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_hex(int c)
{
    return is_digit(c) || (lower(c) >= 'a' && lower(c) <= 'f');
}

/* A growable byte buffer, always NUL-terminated once anything was written. */
typedef struct st_gw_buf_t {
    char *p;
    size_t len, cap;
} gw_buf_t;

static void buf_putn(gw_buf_t *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap < 64 ? 64 : b->cap;
        while (cap < b->len + n + 1)
            cap *= 2;
        b->p = xrealloc(b->p, cap);
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void buf_putc(gw_buf_t *b, char c)
{
    buf_putn(b, &c, 1);
}

/* Appends code point cp as UTF-8 (cp must be a valid scalar value). */
static void buf_put_utf8(gw_buf_t *b, uint32_t cp)
{
    char s[4];
    if (cp < 0x80) {
        s[0] = (char)cp;
        buf_putn(b, s, 1);
    } else if (cp < 0x800) {
        s[0] = (char)(0xC0 | (cp >> 6));
        s[1] = (char)(0x80 | (cp & 0x3F));
        buf_putn(b, s, 2);
    } else if (cp < 0x10000) {
        s[0] = (char)(0xE0 | (cp >> 12));
        s[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        s[2] = (char)(0x80 | (cp & 0x3F));
        buf_putn(b, s, 3);
    } else {
        s[0] = (char)(0xF0 | (cp >> 18));
        s[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        s[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        s[3] = (char)(0x80 | (cp & 0x3F));
        buf_putn(b, s, 4);
    }
}

/* ---------------------------------------------------------------------------------------------------------------------
 * URL intake
 * ------------------------------------------------------------------------------------------------------------------- */

typedef struct st_gw_url_parts_t {
    bool has_scheme;
    bool https;
    const char *host; /* points into the input; IPv6 keeps its brackets */
    size_t host_len;
    int port;         /* -1 when absent */
    const char *path; /* "" or starting with '/' */
    size_t path_len;
    const char *query; /* after '?', without the fragment */
    size_t query_len;
} gw_url_parts_t;

static const char *const msg_generic = "This link does not point to a single YouTube video. Paste the video's link "
                                       "(for example https://www.youtube.com/watch?v=...).";

static int url_fail(const char **code, const char **msg, const char *m)
{
    if (code != NULL)
        *code = "invalid_url";
    if (msg != NULL)
        *msg = m;
    return -1;
}

static void strip_brackets(const char **s, size_t *n)
{
    if (*n >= 2 && (*s)[0] == '[' && (*s)[*n - 1] == ']') {
        (*s)++;
        *n -= 2;
    }
}

static bool host_allowed_n(const char *host, size_t len, const char *csv)
{
    if (csv == NULL || csv[0] == '\0')
        csv = GW_YTDLP_DEFAULT_HOSTS;
    /* IPv6 literals match with or without brackets, whichever way the operator wrote them. */
    strip_brackets(&host, &len);
    for (const char *p = csv; *p != '\0';) {
        const char *end = strchr(p, ',');
        if (end == NULL)
            end = p + strlen(p);
        const char *s = p, *e = end;
        while (s < e && (*s == ' ' || *s == '\t'))
            s++;
        while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
            e--;
        size_t n = (size_t)(e - s);
        strip_brackets(&s, &n);
        if (n > 0 && ieq_n(s, n, host, len))
            return true;
        p = *end == ',' ? end + 1 : end;
    }
    return false;
}

bool gw_ytdlp_host_allowed(const char *host, const char *allowed_hosts_csv)
{
    return host != NULL && host[0] != '\0' && host_allowed_n(host, strlen(host), allowed_hosts_csv);
}

/* Bytes no pasted video link needs; each one is a known way to confuse a URL parser or a command line. */
static int check_bytes(const char *in, size_t len, const char **code, const char **msg)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)in[i];
        if (c <= 0x20 || c == 0x7f)
            return url_fail(code, msg,
                            "The link contains spaces or control characters. Paste the link exactly as YouTube shows it.");
        if (c >= 0x80)
            return url_fail(code, msg,
                            "The link contains non-ASCII characters. Copy it from YouTube's Share button and paste it unchanged.");
        if (c == '\\')
            return url_fail(code, msg, "The link contains a backslash. Paste the link exactly as YouTube shows it.");
    }
    if (in[0] == '-')
        return url_fail(code, msg, "The link must not start with '-'. Paste a YouTube video link.");
    return 0;
}

/* Consumes "scheme:" when present. A prefix containing '.' is a host ("youtube.com:443/..."), not a scheme. */
static int split_scheme(const char **p, const char *end, gw_url_parts_t *u, const char **code, const char **msg)
{
    const char *s = *p;
    if (is_alpha((unsigned char)*s)) {
        const char *q = s;
        bool dot = false;
        while (q < end && (is_alpha((unsigned char)*q) || is_digit((unsigned char)*q) || *q == '+' || *q == '-' || *q == '.')) {
            dot |= *q == '.';
            q++;
        }
        if (q < end && *q == ':' && !dot) {
            size_t n = (size_t)(q - s);
            if (!ieq_n(s, n, "http", 4) && !ieq_n(s, n, "https", 5))
                return url_fail(code, msg, "Only http:// and https:// links are supported. Paste a YouTube video link.");
            u->has_scheme = true;
            u->https = n == 5;
            s = q + 1;
            if (end - s < 2 || s[0] != '/' || s[1] != '/')
                return url_fail(code, msg, "The link is malformed (expected https://...). Paste a YouTube video link.");
        }
    }
    if (end - s >= 2 && s[0] == '/' && s[1] == '/')
        s += 2;
    *p = s;
    return 0;
}

static int split_port(const char *s, const char *end, gw_url_parts_t *u)
{
    if (s == end || end - s > 5)
        return -1;
    int port = 0;
    for (; s < end; s++) {
        if (!is_digit((unsigned char)*s))
            return -1;
        port = port * 10 + (*s - '0');
    }
    if (port < 1 || port > 65535)
        return -1;
    u->port = port;
    return 0;
}

static int split_authority(const char *a, const char *end, gw_url_parts_t *u, const char **code, const char **msg)
{
    static const char bad_port[] = "The link has an invalid port. Paste a YouTube video link.";
    if (a == end)
        return url_fail(code, msg, "The link has no host name. Paste a YouTube video link.");
    if (memchr(a, '@', (size_t)(end - a)) != NULL)
        return url_fail(code, msg, "The link must not contain a user name or password. Paste a YouTube video link.");
    const char *colon;
    if (*a == '[') {
        const char *close = memchr(a, ']', (size_t)(end - a));
        if (close == NULL || close == a + 1)
            return url_fail(code, msg, "The link has an invalid host name. Paste a YouTube video link.");
        colon = close + 1 < end ? close + 1 : NULL;
        if (colon != NULL && *colon != ':')
            return url_fail(code, msg, "The link has an invalid host name. Paste a YouTube video link.");
        u->host_len = (size_t)(close + 1 - a);
    } else {
        colon = memchr(a, ':', (size_t)(end - a));
        u->host_len = (size_t)((colon != NULL ? colon : end) - a);
    }
    u->host = a;
    if (colon != NULL && split_port(colon + 1, end, u) != 0)
        return url_fail(code, msg, bad_port);
    return 0;
}

static int split_url(const char *in, size_t len, gw_url_parts_t *u, const char **code, const char **msg)
{
    const char *p = in, *end = in + len;
    memset(u, 0, sizeof(*u));
    u->port = -1;
    if (split_scheme(&p, end, u, code, msg) != 0)
        return -1;
    const char *a_end = p;
    while (a_end < end && *a_end != '/' && *a_end != '?' && *a_end != '#')
        a_end++;
    if (split_authority(p, a_end, u, code, msg) != 0)
        return -1;
    const char *frag = memchr(a_end, '#', (size_t)(end - a_end));
    if (frag == NULL)
        frag = end;
    const char *q = memchr(a_end, '?', (size_t)(frag - a_end));
    u->path = a_end;
    u->path_len = (size_t)((q != NULL ? q : frag) - a_end);
    u->query = q != NULL ? q + 1 : frag;
    u->query_len = q != NULL ? (size_t)(frag - q - 1) : 0;
    return 0;
}

/* WHATWG URL: a host whose last label is a number (decimal, 0x-hex, or octal) is parsed as IPv4 by browsers and by
 * many resolvers, so "2130706433", "0x7f.1" and "127.1" all mean 127.0.0.1. */
static bool host_is_ipv4ish(const char *h, size_t n)
{
    if (n > 0 && h[n - 1] == '.')
        n--;
    size_t i = n;
    while (i > 0 && h[i - 1] != '.')
        i--;
    const char *l = h + i;
    size_t ln = n - i;
    if (ln == 0)
        return false;
    size_t k = 0;
    if (ln >= 2 && l[0] == '0' && lower((unsigned char)l[1]) == 'x') {
        for (k = 2; k < ln && is_hex((unsigned char)l[k]); k++)
            ;
        return k == ln;
    }
    for (k = 0; k < ln && is_digit((unsigned char)l[k]); k++)
        ;
    return k == ln;
}

/* Host names are letters, digits, '-' and non-empty dot-separated labels; anything else (%, _, !) is refused. */
static bool host_syntax_ok(const char *h, size_t n)
{
    if (n == 0 || n > 253 || h[0] == '.' || h[0] == '-')
        return false;
    for (size_t i = 0; i < n; i++) {
        int c = (unsigned char)h[i];
        if (!(is_alpha(c) || is_digit(c) || c == '-' || c == '.'))
            return false;
        if (c == '.' && i + 1 < n && h[i + 1] == '.')
            return false;
    }
    return true;
}

/* "[...]" must hold an IPv6 address: "[www.youtube.com]" would otherwise pass the allow-list as a bracketed "IP". */
static bool host_is_ipv6_literal(const char *h, size_t n)
{
    char buf[INET6_ADDRSTRLEN + 1];
    struct in6_addr a;
    if (n < 3 || h[0] != '[' || h[n - 1] != ']' || n - 2 > INET6_ADDRSTRLEN)
        return false;
    memcpy(buf, h + 1, n - 2);
    buf[n - 2] = '\0';
    return inet_pton(AF_INET6, buf, &a) == 1;
}

static bool has_suffix_n(const char *h, size_t n, const char *suffix)
{
    size_t sn = strlen(suffix);
    return n >= sn && ieq_n(h + n - sn, sn, suffix, sn);
}

/* Hosts whose links carry a YouTube video id we can extract (and then rewrite to the canonical form). */
static bool host_is_youtube(const char *h, size_t n, bool *short_form)
{
    *short_form = ieq_n(h, n, "youtu.be", 8) || ieq_n(h, n, "www.youtu.be", 12);
    return *short_form || ieq_n(h, n, "youtube.com", 11) || has_suffix_n(h, n, ".youtube.com") ||
           ieq_n(h, n, "youtube-nocookie.com", 20) || has_suffix_n(h, n, ".youtube-nocookie.com");
}

static bool id_valid(const char *s, size_t n)
{
    if (n != GW_YTDLP_ID_LEN)
        return false;
    for (size_t i = 0; i < n; i++) {
        int c = (unsigned char)s[i];
        if (!(is_alpha(c) || is_digit(c) || c == '_' || c == '-'))
            return false;
    }
    return true;
}

/* Finds parameter `name` in a query string. Returns 1 found, 0 absent, -1 present more than once (ambiguous). */
static int query_param(const char *q, size_t qn, const char *name, const char **val, size_t *vn)
{
    size_t nn = strlen(name);
    int found = 0;
    for (const char *p = q, *end = q + qn; p < end;) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        if (amp == NULL)
            amp = end;
        if ((size_t)(amp - p) >= nn && memcmp(p, name, nn) == 0 && (p + nn == amp || p[nn] == '=')) {
            if (found++)
                return -1;
            *val = p + nn < amp ? p + nn + 1 : amp;
            *vn = (size_t)(amp - *val);
        }
        p = amp + 1;
    }
    return found;
}

/* Path segment `idx` (0-based) of path; returns false when there is none. */
static bool path_segment(const char *path, size_t n, int idx, const char **seg, size_t *sn)
{
    const char *p = path, *end = path + n;
    for (int i = 0; p < end; i++) {
        while (p < end && *p == '/')
            p++;
        const char *s = p;
        while (p < end && *p != '/')
            p++;
        if (p == s)
            return false;
        if (i == idx) {
            *seg = s;
            *sn = (size_t)(p - s);
            return true;
        }
    }
    return false;
}

static bool seg_is(const char *s, size_t n, const char *word)
{
    return ieq_n(s, n, word, strlen(word));
}

static int youtube_id_from_watch(const gw_url_parts_t *u, const char **id, size_t *idn, const char **code, const char **msg)
{
    const char *v, *l;
    size_t vn, ln;
    int r = query_param(u->query, u->query_len, "v", &v, &vn);
    if (r < 0)
        return url_fail(code, msg, "The link names more than one video. Paste the link of a single video.");
    if (r == 0 && query_param(u->query, u->query_len, "list", &l, &ln) != 0)
        return url_fail(code, msg, "This is a playlist link. Open a single video in it and paste that video's link.");
    if (r == 0)
        return url_fail(code, msg, msg_generic);
    *id = v;
    *idn = vn;
    return 0;
}

/* Classifies the path of a youtube.com link and extracts the video id from the single-video forms. */
static int youtube_id_from_path(const gw_url_parts_t *u, const char **id, size_t *idn, const char **code, const char **msg)
{
    static const char *const id_forms[] = {"shorts", "embed", "live", "v", "e", NULL};
    const char *s0, *s1;
    size_t n0, n1;
    if (!path_segment(u->path, u->path_len, 0, &s0, &n0))
        return url_fail(code, msg, msg_generic);
    if (seg_is(s0, n0, "watch") && !path_segment(u->path, u->path_len, 1, &s1, &n1))
        return youtube_id_from_watch(u, id, idn, code, msg);
    if (seg_is(s0, n0, "playlist") ||
        (seg_is(s0, n0, "embed") && path_segment(u->path, u->path_len, 1, &s1, &n1) && seg_is(s1, n1, "videoseries")))
        return url_fail(code, msg, "This is a playlist link. Open a single video in it and paste that video's link.");
    if (s0[0] == '@' || seg_is(s0, n0, "channel") || seg_is(s0, n0, "c") || seg_is(s0, n0, "user"))
        return url_fail(code, msg, "This is a channel link. Open one of the channel's videos and paste that video's link.");
    if (seg_is(s0, n0, "results") || seg_is(s0, n0, "search") || seg_is(s0, n0, "hashtag"))
        return url_fail(code, msg, "This is a search page. Open one of the videos and paste that video's link.");
    for (int i = 0; id_forms[i] != NULL; i++) {
        if (seg_is(s0, n0, id_forms[i]) && path_segment(u->path, u->path_len, 1, &s1, &n1) &&
            !path_segment(u->path, u->path_len, 2, &s0, &n0)) {
            *id = s1;
            *idn = n1;
            return 0;
        }
    }
    return url_fail(code, msg, msg_generic);
}

static int youtube_canonical(const gw_url_parts_t *u, bool short_form, char *id_out, char **canon, const char **code,
                             const char **msg)
{
    const char *id = NULL, *extra;
    size_t idn = 0, en;
    bool port_ok = u->port < 0 || (u->has_scheme ? u->port == (u->https ? 443 : 80) : (u->port == 443 || u->port == 80));
    if (!port_ok)
        return url_fail(code, msg, "The link names an unusual port. Paste the video's link exactly as YouTube shows it.");
    if (short_form) {
        if (!path_segment(u->path, u->path_len, 0, &id, &idn) || path_segment(u->path, u->path_len, 1, &extra, &en))
            return url_fail(code, msg, msg_generic);
    } else if (youtube_id_from_path(u, &id, &idn, code, msg) != 0) {
        return -1;
    }
    if (!id_valid(id, idn))
        return url_fail(code, msg, "The video id in the link is not valid (it should be 11 characters). Copy the link again.");
    memcpy(id_out, id, idn);
    id_out[idn] = '\0';
    char *c = xmalloc(64);
    snprintf(c, 64, "https://www.youtube.com/watch?v=%s", id_out);
    *canon = c;
    return 0;
}

static int host_checks(const gw_url_parts_t *u, const char *csv, bool *explicit_other, const char **code, const char **msg)
{
    static const char not_allowed[] = "Only YouTube links are supported. Paste a link to a YouTube video.";
    static const char ip_literal[] = "Links to IP addresses are not allowed. Paste a link to a YouTube video.";
    bool allowed = host_allowed_n(u->host, u->host_len, csv), short_form;
    /* IP literals pass only when the operator listed that exact address (local test pages). */
    bool ip = u->host[0] == '[';
    if (ip ? !host_is_ipv6_literal(u->host, u->host_len) : !host_syntax_ok(u->host, u->host_len))
        return url_fail(code, msg, "The link has an invalid host name. Paste a link to a YouTube video.");
    ip = ip || host_is_ipv4ish(u->host, u->host_len);
    if (!allowed)
        return url_fail(code, msg, ip ? ip_literal : not_allowed);
    *explicit_other = ip || !host_is_youtube(u->host, u->host_len, &short_form);
    return 0;
}

int gw_ytdlp_normalize_url_n(const char *input, size_t len, const char *allowed_hosts_csv, char *video_id_out,
                             char **canonical_url_out, const char **error_code, const char **error_message)
{
    gw_url_parts_t u;
    bool other = false, short_form;
    if (video_id_out != NULL)
        video_id_out[0] = '\0';
    *canonical_url_out = NULL;
    if (error_code != NULL)
        *error_code = NULL;
    if (error_message != NULL)
        *error_message = NULL;
    if (input == NULL || len == 0)
        return url_fail(error_code, error_message, "The video link is empty. Paste a YouTube video link.");
    if (len > GW_YTDLP_MAX_URL)
        return url_fail(error_code, error_message,
                        "The link is too long. Paste the video's own link (watch?v=... or youtu.be/...).");
    if (check_bytes(input, len, error_code, error_message) != 0 || split_url(input, len, &u, error_code, error_message) != 0 ||
        host_checks(&u, allowed_hosts_csv, &other, error_code, error_message) != 0)
        return -1;
    if (other) {
        /* An operator-allowed non-YouTube host (tests): yt-dlp gets the link as written, which needs a scheme. */
        if (!u.has_scheme)
            return url_fail(error_code, error_message, "The link must start with http:// or https://.");
        *canonical_url_out = xstrndup(input, len);
        return 0;
    }
    char id[GW_YTDLP_ID_LEN + 1];
    host_is_youtube(u.host, u.host_len, &short_form);
    if (youtube_canonical(&u, short_form, id, canonical_url_out, error_code, error_message) != 0)
        return -1;
    if (video_id_out != NULL)
        memcpy(video_id_out, id, sizeof(id));
    return 0;
}

int gw_ytdlp_normalize_url(const char *input, const char *allowed_hosts_csv, char *video_id_out, char **canonical_url_out,
                           const char **error_code, const char **error_message)
{
    return gw_ytdlp_normalize_url_n(input, input != NULL ? strlen(input) : 0, allowed_hosts_csv, video_id_out, canonical_url_out,
                                    error_code, error_message);
}

/* ---------------------------------------------------------------------------------------------------------------------
 * argv
 * ------------------------------------------------------------------------------------------------------------------- */

static char **argv_dup(const char *const *items, size_t n)
{
    char **argv = xmalloc((n + 1) * sizeof(*argv));
    for (size_t i = 0; i < n; i++)
        argv[i] = xstrdup(items[i]);
    argv[n] = NULL;
    return argv;
}

/* yt-dlp's -o value is a Python %-template: a literal '%' in the directory must be doubled. */
static char *output_template(const char *dir, const char *file_tmpl)
{
    gw_buf_t b = {0};
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/')
        n--;
    for (size_t i = 0; i < n; i++)
        buf_putn(&b, dir[i] == '%' ? "%%" : &dir[i], dir[i] == '%' ? 2 : 1);
    if (n == 0 || dir[n - 1] != '/')
        buf_putc(&b, '/');
    buf_putn(&b, file_tmpl, strlen(file_tmpl));
    return b.p;
}

char **gw_ytdlp_argv_fetch(const char *ytdlp_path, const char *url, const char *scratch_dir, const char *sub_langs)
{
    if (url == NULL || scratch_dir == NULL)
        return NULL;
    char *tmpl = output_template(scratch_dir, "sub.%(ext)s");
    const char *items[] = {ytdlp_path != NULL ? ytdlp_path : "yt-dlp",
                           "-J",
                           "--no-simulate",
                           "--skip-download",
                           "--no-playlist",
                           "--write-subs",
                           "--write-auto-subs",
                           "--sub-langs",
                           sub_langs != NULL ? sub_langs : GW_YTDLP_DEFAULT_SUB_LANGS,
                           "--sub-format",
                           "json3/vtt/best",
                           "-o",
                           tmpl,
                           "--no-warnings",
                           "--no-progress",
                           "--ignore-config", /* no user/system config can add --exec or change paths */
                           "--socket-timeout",
                           "20",
                           "--",
                           url};
    char **argv = argv_dup(items, sizeof(items) / sizeof(items[0]));
    free(tmpl);
    return argv;
}

char *gw_ytdlp_video_format(long max_height)
{
    char buf[128];
    if (max_height <= 0)
        max_height = 480;
    snprintf(buf, sizeof(buf), "bv*[height<=%ld]+ba/b[height<=%ld]/wv*+ba/w", max_height, max_height);
    char *s = strdup(buf);
    if (s == NULL)
        abort();
    return s;
}

char **gw_ytdlp_argv_media(const char *ytdlp_path, const char *url, const char *scratch_dir, const char *stem, const char *format,
                           uint64_t max_filesize_bytes, const char *ffmpeg_path)
{
    if (url == NULL || scratch_dir == NULL || stem == NULL || format == NULL)
        return NULL;
    char name[64], size[32];
    snprintf(name, sizeof(name), "%s.%%(ext)s", stem);
    char *tmpl = output_template(scratch_dir, name);
    const char *items[24];
    size_t n = 0;
    items[n++] = ytdlp_path != NULL ? ytdlp_path : "yt-dlp";
    items[n++] = "--no-playlist";
    items[n++] = "-f";
    items[n++] = format;
    items[n++] = "--merge-output-format";
    items[n++] = "mp4";
    if (max_filesize_bytes > 0) {
        snprintf(size, sizeof(size), "%" PRIu64, max_filesize_bytes);
        items[n++] = "--max-filesize";
        items[n++] = size;
    }
    if (ffmpeg_path != NULL) {
        items[n++] = "--ffmpeg-location";
        items[n++] = ffmpeg_path;
    }
    const char *tail[] = {"-o", tmpl, "--no-warnings", "--no-progress", "--ignore-config", "--socket-timeout", "20", "--", url};
    for (size_t i = 0; i < sizeof(tail) / sizeof(tail[0]); i++)
        items[n++] = tail[i];
    char **argv = argv_dup(items, n);
    free(tmpl);
    return argv;
}

char **gw_ytdlp_argv_download(const char *ytdlp_path, const char *url, const char *scratch_dir, uint64_t max_filesize_bytes,
                              const char *ffmpeg_path)
{
    return gw_ytdlp_argv_media(ytdlp_path, url, scratch_dir, "video", GW_YTDLP_DOWNLOAD_FORMAT, max_filesize_bytes, ffmpeg_path);
}

static bool lang_tag_ok(const char *l)
{
    size_t n = strlen(l);
    if (n == 0 || n > 35 || l[0] == '-')
        return false;
    for (size_t i = 0; i < n; i++)
        if (!(is_alpha((unsigned char)l[i]) || is_digit((unsigned char)l[i]) || l[i] == '-'))
            return false;
    return true;
}

char *gw_ytdlp_sub_langs(const char *const *prefer_langs)
{
    static const char region[] = "-(?-i:[A-Z]{2}),";
    gw_buf_t b = {0};
    for (size_t i = 0; prefer_langs != NULL && prefer_langs[i] != NULL; i++) {
        const char *l = prefer_langs[i];
        if (!lang_tag_ok(l))
            continue;
        buf_putn(&b, l, strlen(l));
        buf_putc(&b, ',');
        if (strchr(l, '-') == NULL) {
            buf_putn(&b, l, strlen(l));
            buf_putn(&b, region, sizeof(region) - 1);
        }
    }
    buf_putn(&b, GW_YTDLP_DEFAULT_SUB_LANGS, strlen(GW_YTDLP_DEFAULT_SUB_LANGS));
    return b.p;
}

void gw_argv_free(char **argv)
{
    if (argv == NULL)
        return;
    for (char **p = argv; *p != NULL; p++)
        free(*p);
    free(argv);
}

/* ---------------------------------------------------------------------------------------------------------------------
 * metadata
 * ------------------------------------------------------------------------------------------------------------------- */

static char *json_strdup_or_null(const json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    return json_is_string(v) ? xstrdup(json_string_value(v)) : NULL;
}

/* A finite JSON number of seconds in [0, GW_YTDLP_MAX_DURATION_S], else -1 (unknown). */
static double json_nonneg(json_t *v)
{
    if (!json_is_number(v))
        return -1;
    double d = json_number_value(v);
    return isfinite(d) && d >= 0 && d <= GW_YTDLP_MAX_DURATION_S ? d : -1;
}

static void parse_chapters(json_t *arr, gw_video_meta_t *out)
{
    if (!json_is_array(arr) || json_array_size(arr) == 0)
        return;
    out->chapters = xmalloc(json_array_size(arr) * sizeof(*out->chapters));
    size_t i;
    json_t *c;
    json_array_foreach(arr, i, c)
    {
        double start = json_nonneg(json_object_get(c, "start_time"));
        if (!json_is_object(c) || start < 0)
            continue;
        gw_chapter_t *ch = &out->chapters[out->nchapters++];
        ch->start = start;
        ch->end = json_nonneg(json_object_get(c, "end_time"));
        json_t *t = json_object_get(c, "title");
        ch->title = xstrdup(json_is_string(t) ? json_string_value(t) : "");
    }
    /* A missing end is the next chapter's start, or the video's end. */
    for (i = 0; i < out->nchapters; i++) {
        gw_chapter_t *ch = &out->chapters[i];
        if (ch->end < 0)
            ch->end = i + 1 < out->nchapters ? out->chapters[i + 1].start : out->duration;
    }
}

int gw_ytdlp_parse_meta(const char *json, size_t len, gw_video_meta_t *out, const char **error_code)
{
    json_t *root = json != NULL ? json_loadb(json, len, 0, NULL) : NULL;
    int ret = gw_ytdlp_meta_from_json(root, out, error_code);
    json_decref(root);
    return ret;
}

int gw_ytdlp_meta_from_json(const json_t *root, gw_video_meta_t *out, const char **error_code)
{
    const char *ignored;
    int ret = -1;
    if (error_code == NULL)
        error_code = &ignored;
    memset(out, 0, sizeof(*out));
    out->duration = -1;
    *error_code = "bad_metadata";
    if (!json_is_object(root))
        goto Exit;
    json_t *type = json_object_get(root, "_type");
    if (json_is_string(type) &&
        (strcmp(json_string_value(type), "playlist") == 0 || strcmp(json_string_value(type), "multi_video") == 0)) {
        *error_code = "invalid_url"; /* a channel or playlist slipped past intake */
        goto Exit;
    }
    json_t *id = json_object_get(root, "id");
    if (!json_is_string(id) || json_string_length(id) == 0)
        goto Exit;
    out->id = xstrdup(json_string_value(id));
    json_t *title = json_object_get(root, "title");
    out->title = xstrdup(json_is_string(title) ? json_string_value(title) : "");
    if ((out->channel = json_strdup_or_null(root, "channel")) == NULL)
        out->channel = json_strdup_or_null(root, "uploader");
    out->duration = json_nonneg(json_object_get(root, "duration"));
    out->upload_date = json_strdup_or_null(root, "upload_date");
    out->language = json_strdup_or_null(root, "language");
    out->live_status = json_strdup_or_null(root, "live_status");
    out->availability = json_strdup_or_null(root, "availability");
    parse_chapters(json_object_get(root, "chapters"), out);
    *error_code = NULL;
    ret = 0;
Exit:
    if (ret != 0) {
        gw_video_meta_free(out);
        out->duration = -1;
    }
    return ret;
}

static int meta_fail(const char **code, const char **msg, const char *c, const char *m)
{
    *code = c;
    if (msg != NULL)
        *msg = m;
    return -1;
}

int gw_ytdlp_check_meta(const gw_video_meta_t *m, const char **error_code, const char **message)
{
    const char *ls = m->live_status != NULL ? m->live_status : "", *av = m->availability != NULL ? m->availability : "";
    const char *ignored;
    if (error_code == NULL)
        error_code = &ignored;
    *error_code = NULL;
    if (message != NULL)
        *message = NULL;
    if (strcmp(ls, "is_live") == 0)
        return meta_fail(error_code, message, "live_stream",
                         "This video is a live stream that is still running. Submit it again after the stream has ended.");
    if (strcmp(ls, "is_upcoming") == 0)
        return meta_fail(error_code, message, "live_stream",
                         "This video is a scheduled live stream or premiere that has not started. Submit it after it has aired.");
    if (strcmp(ls, "post_live") == 0)
        return meta_fail(error_code, message, "live_stream",
                         "This live stream has just ended and YouTube is still processing it. Try again in a few hours.");
    if (strcmp(av, "private") == 0)
        return meta_fail(error_code, message, "private_video",
                         "This video is private. Ask its owner to make it public or unlisted, then submit it again.");
    if (strcmp(av, "subscriber_only") == 0 || strcmp(av, "premium_only") == 0)
        return meta_fail(error_code, message, "members_only",
                         "This video is only available to channel members or Premium subscribers. Choose a public video.");
    if (strcmp(av, "needs_auth") == 0)
        return meta_fail(error_code, message, "age_restricted",
                         "This video is age-restricted and needs a signed-in YouTube account. Choose another video.");
    return 0;
}

/* ---------------------------------------------------------------------------------------------------------------------
 * transcript text
 * ------------------------------------------------------------------------------------------------------------------- */

/* Length of the valid UTF-8 sequence at s (its code point in *cp), or 0 when invalid (overlong, surrogate, > U+10FFFF,
 * truncated). */
static size_t utf8_seq(const unsigned char *s, size_t n, uint32_t *cp)
{
    if (s[0] < 0x80) {
        *cp = s[0];
        return 1;
    }
    size_t len = s[0] >= 0xC2 && s[0] <= 0xDF ? 2 : s[0] >= 0xE0 && s[0] <= 0xEF ? 3 : s[0] >= 0xF0 && s[0] <= 0xF4 ? 4 : 0;
    if (len == 0 || n < len)
        return 0;
    unsigned char lo = 0x80, hi = 0xBF;
    if (s[0] == 0xE0)
        lo = 0xA0;
    else if (s[0] == 0xED)
        hi = 0x9F;
    else if (s[0] == 0xF0)
        lo = 0x90;
    else if (s[0] == 0xF4)
        hi = 0x8F;
    if (s[1] < lo || s[1] > hi)
        return 0;
    uint32_t c = s[0] & (0x7F >> len);
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        c = (c << 6) | (s[i] & 0x3F);
    }
    *cp = c;
    return len;
}

static bool cp_is_space(uint32_t cp)
{
    return cp <= 0x20 || (cp >= 0x7F && cp <= 0xA0) || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 ||
           cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000 || cp == 0xFEFF;
}

/* Makes transcript text: valid UTF-8, controls and every kind of space collapsed to one ' ', trimmed. NULL when
 * nothing but whitespace remains. */
static char *clean_text(const char *s, size_t n)
{
    gw_buf_t b = {0};
    bool space = false;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t k = utf8_seq((const unsigned char *)s + i, n - i, &cp);
        if (k == 0) {
            cp = 0xFFFD;
            k = 1;
        }
        i += k;
        if (cp_is_space(cp)) {
            space = b.len > 0;
            continue;
        }
        if (space)
            buf_putc(&b, ' ');
        space = false;
        buf_put_utf8(&b, cp);
    }
    return b.p;
}

/* Removes markup from a VTT/SRT payload line: <c>, <i>, <v Speaker>, <00:00:01.000>, <font ...>, and SRT's {\an8}.
 * A '<' with no closing '>' on the line is text. <br> becomes a space. */
static void strip_tags(const char *s, size_t n, gw_buf_t *out)
{
    for (size_t i = 0; i < n; i++) {
        const char *close;
        if (s[i] == '<' && (close = memchr(s + i, '>', n - i)) != NULL) {
            if (close - (s + i) >= 3 && lower((unsigned char)s[i + 1]) == 'b' && lower((unsigned char)s[i + 2]) == 'r')
                buf_putc(out, ' ');
            i = (size_t)(close - s);
        } else if (s[i] == '{' && i + 1 < n && s[i + 1] == '\\' && (close = memchr(s + i, '}', n - i)) != NULL) {
            i = (size_t)(close - s);
        } else {
            buf_putc(out, s[i]);
        }
    }
}

/* Decodes one entity body (between '&' and ';'); false when unknown, leaving the text as written. */
static bool entity_decode(const char *e, size_t n, gw_buf_t *out)
{
    static const struct {
        const char *name, *text;
    } named[] = {{"amp", "&"},  {"lt", "<"}, {"gt", ">"}, {"quot", "\""}, {"apos", "'"},
                 {"nbsp", " "}, {"lrm", ""}, {"rlm", ""}, {NULL, NULL}};
    for (int i = 0; named[i].name != NULL; i++) {
        if (n == strlen(named[i].name) && memcmp(e, named[i].name, n) == 0) {
            buf_putn(out, named[i].text, strlen(named[i].text));
            return true;
        }
    }
    if (n < 2 || n > 8 || e[0] != '#')
        return false;
    bool hex = lower((unsigned char)e[1]) == 'x';
    uint32_t cp = 0;
    size_t i = hex ? 2 : 1;
    if (i == n)
        return false;
    for (; i < n; i++) {
        int c = (unsigned char)e[i];
        if (!(hex ? is_hex(c) : is_digit(c)))
            return false;
        cp = cp * (hex ? 16 : 10) + (uint32_t)(is_digit(c) ? c - '0' : lower(c) - 'a' + 10);
    }
    if (cp == 0 || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return false;
    buf_put_utf8(out, cp);
    return true;
}

static void decode_entities(const char *s, size_t n, gw_buf_t *out)
{
    for (size_t i = 0; i < n; i++) {
        const char *semi;
        if (s[i] == '&' && (semi = memchr(s + i + 1, ';', n - i - 1 < 10 ? n - i - 1 : 10)) != NULL &&
            entity_decode(s + i + 1, (size_t)(semi - s - i - 1), out)) {
            i = (size_t)(semi - s);
            continue;
        }
        buf_putc(out, s[i]);
    }
}

/* A payload line as transcript text, or NULL when it holds nothing but markup and blanks. */
static char *cue_line_text(const char *s, size_t n)
{
    gw_buf_t tags = {0}, ents = {0};
    strip_tags(s, n, &tags);
    if (tags.len > 0)
        decode_entities(tags.p, tags.len, &ents);
    char *text = ents.len > 0 ? clean_text(ents.p, ents.len) : NULL;
    free(tags.p);
    free(ents.p);
    return text;
}

/* ---------------------------------------------------------------------------------------------------------------------
 * segments
 * ------------------------------------------------------------------------------------------------------------------- */

typedef struct st_gw_segvec_t {
    gw_segment_t *v;
    size_t n, cap;
} gw_segvec_t;

static void segvec_push(gw_segvec_t *sv, int64_t start, int64_t end, char *text)
{
    if (sv->n == sv->cap) {
        sv->cap = sv->cap == 0 ? 64 : sv->cap * 2;
        sv->v = xrealloc(sv->v, sv->cap * sizeof(*sv->v));
    }
    sv->v[sv->n++] = (gw_segment_t){.start_ms = start, .end_ms = end < start ? start : end, .text = text};
}

static void segvec_free(gw_segvec_t *sv)
{
    for (size_t i = 0; i < sv->n; i++)
        free(sv->v[i].text);
    free(sv->v);
    memset(sv, 0, sizeof(*sv));
}

/* Stable merge sort by start: cues sharing a start keep file order. */
static void seg_msort(gw_segment_t *v, gw_segment_t *tmp, size_t n)
{
    if (n < 2)
        return;
    size_t h = n / 2, i = 0, j = h, k = 0;
    seg_msort(v, tmp, h);
    seg_msort(v + h, tmp, n - h);
    if (v[h - 1].start_ms <= v[h].start_ms)
        return; /* already ordered: the common case for subtitle files */
    while (i < h && j < n)
        tmp[k++] = v[j].start_ms < v[i].start_ms ? v[j++] : v[i++];
    while (i < h)
        tmp[k++] = v[i++];
    while (j < n)
        tmp[k++] = v[j++];
    memcpy(v, tmp, n * sizeof(*v));
}

static void segvec_finish(gw_segvec_t *sv, gw_transcript_t *out, const char *source)
{
    if (sv->n > 1) {
        gw_segment_t *tmp = xmalloc(sv->n * sizeof(*tmp));
        seg_msort(sv->v, tmp, sv->n);
        free(tmp);
    }
    /* A cue without a duration lasts until the next one starts. */
    for (size_t i = 0; i + 1 < sv->n; i++)
        if (sv->v[i].end_ms == sv->v[i].start_ms && sv->v[i + 1].start_ms > sv->v[i].start_ms)
            sv->v[i].end_ms = sv->v[i + 1].start_ms;
    out->segments = sv->v;
    out->nsegments = sv->n;
    out->source = xstrdup(source);
    memset(sv, 0, sizeof(*sv));
}

/* ---------------------------------------------------------------------------------------------------------------------
 * json3
 * ------------------------------------------------------------------------------------------------------------------- */

/* Milliseconds from a JSON number: integral or real, 0 <= v <= 1e15 (31,000 years); -1 otherwise. */
static int64_t json_ms(json_t *v)
{
    if (json_is_integer(v)) {
        json_int_t i = json_integer_value(v);
        return i >= 0 && i <= (json_int_t)1000000000000000LL ? (int64_t)i : -1;
    }
    if (json_is_real(v)) {
        double d = json_real_value(v);
        return isfinite(d) && d >= 0 && d <= 1e15 ? (int64_t)d : -1;
    }
    return -1;
}

static char *json3_event_text(json_t *segs)
{
    gw_buf_t b = {0};
    size_t i;
    json_t *seg;
    json_array_foreach(segs, i, seg)
    {
        json_t *u = json_object_get(seg, "utf8");
        if (json_is_string(u))
            buf_putn(&b, json_string_value(u), json_string_length(u));
    }
    char *text = b.len > 0 ? clean_text(b.p, b.len) : NULL;
    free(b.p);
    return text;
}

int gw_parse_json3(const char *buf, size_t len, gw_transcript_t *out)
{
    gw_segvec_t sv = {0};
    memset(out, 0, sizeof(*out));
    json_t *root = buf != NULL ? json_loadb(buf, len, JSON_ALLOW_NUL, NULL) : NULL;
    json_t *events = json_object_get(root, "events");
    if (!json_is_array(events)) {
        json_decref(root);
        return -1;
    }
    size_t i;
    json_t *ev;
    json_array_foreach(events, i, ev)
    {
        json_t *append = json_object_get(ev, "aAppend"), *segs = json_object_get(ev, "segs");
        int64_t start = json_ms(json_object_get(ev, "tStartMs")), dur = json_ms(json_object_get(ev, "dDurationMs"));
        char *text;
        /* aAppend events only carry the line break between two rolling lines. */
        if ((append != NULL && !json_is_false(append) && !(json_is_integer(append) && json_integer_value(append) == 0)) ||
            !json_is_array(segs) || start < 0 || (text = json3_event_text(segs)) == NULL)
            continue;
        segvec_push(&sv, start, start + (dur > 0 ? dur : 0), text);
    }
    segvec_finish(&sv, out, "json3");
    json_decref(root);
    return 0;
}

/* ---------------------------------------------------------------------------------------------------------------------
 * VTT / SRT
 * ------------------------------------------------------------------------------------------------------------------- */

/* Parses [H+:]MM:SS[.,]mmm at s; sets *used to the bytes consumed. */
static bool parse_ts(const char *s, size_t n, size_t *used, int64_t *ms)
{
    int64_t f[3];
    int nf = 0;
    size_t i = 0;
    while (nf < 3) {
        size_t d = i;
        int64_t v = 0;
        while (i < n && is_digit((unsigned char)s[i]) && i - d < 9)
            v = v * 10 + (s[i++] - '0');
        if (i == d)
            return false;
        f[nf++] = v;
        if (i >= n || s[i] != ':')
            break;
        i++;
    }
    if (nf < 2 || f[nf - 1] >= 60 || (nf == 3 && f[1] >= 60))
        return false;
    int64_t frac = 0;
    if (i < n && (s[i] == '.' || s[i] == ',')) {
        size_t d = ++i;
        for (int64_t scale = 100; i < n && is_digit((unsigned char)s[i]); i++, scale /= 10)
            frac += scale * (s[i] - '0');
        if (i == d)
            return false;
    }
    int64_t h = nf == 3 ? f[0] : 0, m = f[nf - 2], sec = f[nf - 1];
    *ms = ((h * 60 + m) * 60 + sec) * 1000 + frac;
    *used = i;
    return true;
}

static bool is_blank_char(char c)
{
    return c == ' ' || c == '\t';
}

/* "start --> end [settings]" */
static bool parse_timing(const char *s, size_t n, int64_t *start, int64_t *end)
{
    size_t i = 0, used;
    while (i < n && is_blank_char(s[i]))
        i++;
    if (!parse_ts(s + i, n - i, &used, start))
        return false;
    for (i += used; i < n && is_blank_char(s[i]); i++)
        ;
    if (n - i < 3 || memcmp(s + i, "-->", 3) != 0)
        return false;
    for (i += 3; i < n && is_blank_char(s[i]); i++)
        ;
    if (!parse_ts(s + i, n - i, &used, end))
        return false;
    i += used;
    return i == n || is_blank_char(s[i]);
}

typedef enum en_gw_cue_state_t {
    GW_CUE_HEADER,  /* VTT: the WEBVTT block, until a blank line */
    GW_CUE_BLOCK,   /* between blocks: next line starts a cue, a cue id, or a NOTE/STYLE/REGION block */
    GW_CUE_ID,      /* saw a cue id / SRT index, expecting the timing line */
    GW_CUE_PAYLOAD, /* collecting cue text lines until a blank line */
    GW_CUE_SKIP,    /* inside a NOTE/STYLE/REGION or unparseable block */
} gw_cue_state_t;

typedef struct st_gw_cue_parser_t {
    gw_cue_state_t state;
    bool vtt;
    bool saw_cue;
    gw_segvec_t segs;
    int64_t start, end;
    char **cur, **prev; /* text lines of the current and previous cue, for rolling-caption dedupe */
    size_t ncur, capcur, nprev;
} gw_cue_parser_t;

static void lines_free(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

/* Number of leading lines of cur that repeat the trailing lines of prev: YouTube's rolling auto-captions show each
 * line twice (first as the bottom line, then as the top one), which would otherwise double the transcript. */
static size_t rolling_overlap(char **prev, size_t nprev, char **cur, size_t ncur)
{
    size_t k = 0;
    if (nprev == ncur) {
        while (k < ncur && strcmp(prev[k], cur[k]) == 0)
            k++;
        if (k == ncur)
            return k; /* the same cue again */
    }
    /* Rolling captions overlap by a line or two; the cap keeps a hostile file with huge cues linear. */
    size_t most = nprev < ncur ? nprev : ncur;
    for (k = most < 16 ? most : 16; k > 0; k--) {
        size_t j = 0;
        while (j < k && strcmp(prev[nprev - k + j], cur[j]) == 0)
            j++;
        if (j == k)
            return k;
    }
    return 0;
}

static void cue_finish(gw_cue_parser_t *p)
{
    if (p->ncur == 0) {
        free(p->cur);
        p->cur = NULL;
        p->capcur = 0;
        return;
    }
    size_t k = rolling_overlap(p->prev, p->nprev, p->cur, p->ncur);
    if (k == p->ncur) {
        /* Nothing new: the earlier segment simply stays on screen longer. */
        if (p->segs.n > 0 && p->end > p->segs.v[p->segs.n - 1].end_ms)
            p->segs.v[p->segs.n - 1].end_ms = p->end;
    } else {
        gw_buf_t b = {0};
        for (size_t i = k; i < p->ncur; i++) {
            if (b.len > 0)
                buf_putc(&b, ' ');
            buf_putn(&b, p->cur[i], strlen(p->cur[i]));
        }
        segvec_push(&p->segs, p->start, p->end, b.p);
    }
    lines_free(p->prev, p->nprev);
    p->prev = p->cur;
    p->nprev = p->ncur;
    p->cur = NULL;
    p->ncur = p->capcur = 0;
}

static void cue_add_line(gw_cue_parser_t *p, const char *s, size_t n)
{
    char *text = cue_line_text(s, n);
    if (text == NULL)
        return;
    if (p->ncur == p->capcur) {
        p->capcur = p->capcur == 0 ? 4 : p->capcur * 2;
        p->cur = xrealloc(p->cur, p->capcur * sizeof(*p->cur));
    }
    p->cur[p->ncur++] = text;
}

static bool starts_keyword(const char *s, size_t n, const char *kw)
{
    size_t k = strlen(kw);
    return n >= k && memcmp(s, kw, k) == 0 && (n == k || is_blank_char(s[k]));
}

/* Handles a line that begins a cue; true when it was a timing line. */
static bool cue_try_start(gw_cue_parser_t *p, const char *s, size_t n)
{
    int64_t start, end;
    if (!parse_timing(s, n, &start, &end))
        return false;
    p->start = start;
    p->end = end;
    p->saw_cue = true;
    p->state = GW_CUE_PAYLOAD;
    return true;
}

static void cue_line(gw_cue_parser_t *p, const char *s, size_t n)
{
    bool blank = n == 0;
    switch (p->state) {
    case GW_CUE_HEADER:
        if (blank)
            p->state = GW_CUE_BLOCK;
        else
            cue_try_start(p, s, n);
        break;
    case GW_CUE_BLOCK:
        if (blank)
            break;
        if (p->vtt && (starts_keyword(s, n, "NOTE") || starts_keyword(s, n, "STYLE") || starts_keyword(s, n, "REGION")))
            p->state = GW_CUE_SKIP;
        else if (!cue_try_start(p, s, n))
            p->state = GW_CUE_ID;
        break;
    case GW_CUE_ID:
        if (blank)
            p->state = GW_CUE_BLOCK;
        else if (!cue_try_start(p, s, n))
            p->state = GW_CUE_SKIP;
        break;
    case GW_CUE_PAYLOAD:
        if (blank) {
            cue_finish(p);
            p->state = GW_CUE_BLOCK;
        } else if (parse_timing(s, n, &(int64_t){0}, &(int64_t){0})) {
            cue_finish(p); /* a missing blank line between cues */
            cue_try_start(p, s, n);
        } else {
            cue_add_line(p, s, n);
        }
        break;
    case GW_CUE_SKIP:
        if (blank)
            p->state = GW_CUE_BLOCK;
        break;
    }
}

/* Feeds buf line by line (LF, CRLF or CR endings) after an optional UTF-8 BOM. */
static void cue_feed(gw_cue_parser_t *p, const char *buf, size_t len, size_t pos)
{
    while (pos < len) {
        size_t e = pos;
        while (e < len && buf[e] != '\n' && buf[e] != '\r')
            e++;
        cue_line(p, buf + pos, e - pos);
        if (e < len && buf[e] == '\r' && e + 1 < len && buf[e + 1] == '\n')
            e++;
        pos = e + 1;
    }
    if (p->state == GW_CUE_PAYLOAD)
        cue_finish(p);
}

static size_t bom_len(const char *buf, size_t len)
{
    return len >= 3 && memcmp(buf, "\xEF\xBB\xBF", 3) == 0 ? 3 : 0;
}

static int cues_parse(const char *buf, size_t len, bool vtt, gw_transcript_t *out)
{
    gw_cue_parser_t p = {.state = vtt ? GW_CUE_HEADER : GW_CUE_BLOCK, .vtt = vtt};
    size_t pos = buf != NULL ? bom_len(buf, len) : 0;
    memset(out, 0, sizeof(*out));
    if (buf == NULL)
        return -1;
    if (vtt && (len - pos < 6 || memcmp(buf + pos, "WEBVTT", 6) != 0 ||
                (len - pos > 6 && buf[pos + 6] != ' ' && buf[pos + 6] != '\t' && buf[pos + 6] != '\n' && buf[pos + 6] != '\r')))
        return -1;
    cue_feed(&p, buf, len, pos);
    lines_free(p.prev, p.nprev);
    lines_free(p.cur, p.ncur);
    /* An SRT file without a single timing line is something else. */
    if (!vtt && !p.saw_cue) {
        segvec_free(&p.segs);
        return -1;
    }
    segvec_finish(&p.segs, out, vtt ? "vtt" : "srt");
    return 0;
}

int gw_parse_vtt(const char *buf, size_t len, gw_transcript_t *out)
{
    return cues_parse(buf, len, true, out);
}

int gw_parse_srt(const char *buf, size_t len, gw_transcript_t *out)
{
    return cues_parse(buf, len, false, out);
}

/* ---------------------------------------------------------------------------------------------------------------------
 * subtitle choice
 * ------------------------------------------------------------------------------------------------------------------- */

enum { GW_FMT_JSON3, GW_FMT_VTT, GW_FMT_SRT };
#define GW_RANK_ANY 100000

typedef struct st_gw_sub_cand_t {
    char *name; /* file name in the scratch dir */
    char *lang; /* key from the file name, e.g. "en", "de-orig", "en-de" */
    int fmt;    /* GW_FMT_* */
    bool automatic;
    bool translated; /* machine translation (tlang= in its URL) */
    int rank;        /* language preference; lower is better */
} gw_sub_cand_t;

/* sub.<lang>.<ext>: the name yt-dlp gives subtitles for the template sub.%(ext)s. */
static bool parse_sub_name(const char *name, char **lang, int *fmt)
{
    static const struct {
        const char *ext;
        int fmt;
    } exts[] = {{".json3", GW_FMT_JSON3}, {".vtt", GW_FMT_VTT}, {".srt", GW_FMT_SRT}};
    size_t n = strlen(name);
    if (n < 5 || memcmp(name, "sub.", 4) != 0)
        return false;
    for (size_t i = 0; i < sizeof(exts) / sizeof(exts[0]); i++) {
        size_t el = strlen(exts[i].ext);
        if (n <= 4 + el || memcmp(name + n - el, exts[i].ext, el) != 0)
            continue;
        size_t ln = n - 4 - el;
        const char *l = name + 4;
        for (size_t k = 0; k < ln; k++)
            if (!(is_alpha((unsigned char)l[k]) || is_digit((unsigned char)l[k]) || l[k] == '-' || l[k] == '_'))
                return false;
        if (ln > 64 || ieq_n(l, ln, "live_chat", 9))
            return false;
        *lang = xstrndup(l, ln);
        *fmt = exts[i].fmt;
        return true;
    }
    return false;
}

static size_t primary_len(const char *lang)
{
    return strcspn(lang, "-_");
}

/* The language a track is in: its key without yt-dlp's "-orig" marker. */
static size_t base_len(const char *lang)
{
    size_t n = strlen(lang);
    return n > 5 && ieq_n(lang + n - 5, 5, "-orig", 5) ? n - 5 : n;
}

/* 0 exact match, 1 same primary subtag ("en-US" vs "en"), -1 no match. */
static int lang_match(const char *lang, const char *want)
{
    size_t ln = base_len(lang), wn = strlen(want);
    if (wn == 0)
        return -1;
    if (ieq_n(lang, ln, want, wn))
        return 0;
    size_t lp = primary_len(lang), wp = primary_len(want);
    return lp <= ln && ieq_n(lang, lp, want, wp) ? 1 : -1;
}

static int lang_rank(const char *lang, const char *const *prefer, const char *own)
{
    int m;
    for (int i = 0; prefer != NULL && prefer[i] != NULL && i < 1000; i++)
        if ((m = lang_match(lang, prefer[i])) >= 0)
            return 2 * i + m;
    if (own != NULL && (m = lang_match(lang, own)) >= 0)
        return 10000 + m;
    if ((m = lang_match(lang, "en")) >= 0)
        return 10002 + m;
    return GW_RANK_ANY;
}

/* Manual or automatic, from -J's "subtitles" / "automatic_captions"; a translated automatic track has tlang=. */
static void track_kind(const json_t *root, const char *lang, bool *automatic, bool *translated)
{
    json_t *autos = json_object_get(json_object_get(root, "automatic_captions"), lang), *f;
    size_t i;
    *automatic = *translated = false;
    if (json_object_get(json_object_get(root, "subtitles"), lang) != NULL)
        return;
    if (autos == NULL) {
        *automatic = base_len(lang) != strlen(lang);
        return;
    }
    *automatic = true;
    json_array_foreach(autos, i, f)
    {
        json_t *url = json_object_get(f, "url");
        if (json_is_string(url) && (strstr(json_string_value(url), "tlang=") != NULL))
            *translated = true;
    }
}

static int cand_cmp(const void *a, const void *b)
{
    const gw_sub_cand_t *x = a, *y = b;
    bool xany = x->rank == GW_RANK_ANY, yany = y->rank == GW_RANK_ANY;
    if (xany != yany)
        return xany ? 1 : -1;
    if (x->automatic != y->automatic)
        return x->automatic ? 1 : -1;
    if (x->rank != y->rank)
        return x->rank < y->rank ? -1 : 1;
    if (x->translated != y->translated)
        return x->translated ? 1 : -1;
    if (x->fmt != y->fmt)
        return x->fmt < y->fmt ? -1 : 1;
    return strcmp(x->name, y->name);
}

static size_t list_candidates(DIR *d, gw_sub_cand_t **out)
{
    struct dirent *de;
    size_t n = 0, cap = 0;
    *out = NULL;
    while ((de = readdir(d)) != NULL) {
        char *lang;
        int fmt;
        if (!parse_sub_name(de->d_name, &lang, &fmt))
            continue;
        if (n == cap) {
            cap = cap == 0 ? 8 : cap * 2;
            *out = xrealloc(*out, cap * sizeof(**out));
        }
        (*out)[n++] = (gw_sub_cand_t){.name = xstrdup(de->d_name), .lang = lang, .fmt = fmt};
    }
    return n;
}

/* Reads a regular file under dir; NULL when missing, not regular, empty or over GW_YTDLP_MAX_SUB_BYTES. */
static char *read_sub_file(const char *dir, const char *name, size_t *len)
{
    size_t plen = strlen(dir) + strlen(name) + 2;
    char *path = xmalloc(plen), *buf = NULL;
    snprintf(path, plen, "%s/%s", dir, name);
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    struct stat st;
    free(path);
    if (fd < 0)
        return NULL;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size <= 0 || (uint64_t)st.st_size > GW_YTDLP_MAX_SUB_BYTES)
        goto Exit;
    buf = xmalloc((size_t)st.st_size + 1);
    size_t got = 0;
    while (got < (size_t)st.st_size) {
        ssize_t r = read(fd, buf + got, (size_t)st.st_size - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    buf[got] = '\0';
    *len = got;
Exit:
    close(fd);
    return buf;
}

static int parse_candidate(const char *dir, const gw_sub_cand_t *c, gw_transcript_t *out)
{
    size_t len = 0;
    char *buf = read_sub_file(dir, c->name, &len);
    int r = -1;
    if (buf != NULL) {
        r = c->fmt == GW_FMT_JSON3 ? gw_parse_json3(buf, len, out)
            : c->fmt == GW_FMT_VTT ? gw_parse_vtt(buf, len, out)
                                   : gw_parse_srt(buf, len, out);
        free(buf);
    }
    if (r == 0 && out->nsegments == 0) {
        gw_transcript_free(out);
        r = -1;
    }
    if (r != 0)
        gw_warn("subtitle file %s is unusable, trying the next one", c->name);
    return r;
}

/* When -J gave no language, the original-language ASR track ("<lang>-orig") tells it. */
static char *own_language(const gw_video_meta_t *meta, const gw_sub_cand_t *c, size_t n)
{
    if (meta != NULL && meta->language != NULL && meta->language[0] != '\0')
        return xstrdup(meta->language);
    for (size_t i = 0; i < n; i++)
        if (base_len(c[i].lang) != strlen(c[i].lang))
            return xstrndup(c[i].lang, base_len(c[i].lang));
    return NULL;
}

int gw_ytdlp_load_transcript(const char *scratch_dir, const gw_video_meta_t *meta, const char *const *prefer_langs,
                             const char *json_from_J, gw_transcript_t *out, const char **error_code)
{
    json_t *root = json_from_J != NULL ? json_loads(json_from_J, 0, NULL) : NULL;
    int ret = gw_ytdlp_load_transcript_json(scratch_dir, meta, prefer_langs, root, out, error_code);
    json_decref(root);
    return ret;
}

int gw_ytdlp_load_transcript_json(const char *scratch_dir, const gw_video_meta_t *meta, const char *const *prefer_langs,
                                  const json_t *root, gw_transcript_t *out, const char **error_code)
{
    gw_sub_cand_t *c = NULL;
    size_t n = 0, i;
    int ret = -1;
    const char *ignored;
    if (error_code == NULL)
        error_code = &ignored;
    memset(out, 0, sizeof(*out));
    *error_code = "no_transcript";
    DIR *d = scratch_dir != NULL ? opendir(scratch_dir) : NULL;
    if (d == NULL) {
        *error_code = "scratch_unavailable";
        return -1;
    }
    n = list_candidates(d, &c);
    closedir(d);
    if (n > 1)
        qsort(c, n, sizeof(*c), cand_cmp); /* by format and name for now, so own_language() is deterministic */
    char *own = own_language(meta, c, n);
    for (i = 0; i < n; i++) {
        track_kind(root, c[i].lang, &c[i].automatic, &c[i].translated);
        c[i].rank = lang_rank(c[i].lang, prefer_langs, own);
    }
    if (n > 1)
        qsort(c, n, sizeof(*c), cand_cmp);
    json_t *requested = json_object_get(root, "requested_subtitles");
    if (n == 0 && json_is_object(requested) && json_object_size(requested) > 0)
        *error_code = "subtitles_unavailable"; /* chosen but not written: yt-dlp exits 0 when a subtitle fetch fails */
    for (i = 0; i < n && ret != 0; i++) {
        if (parse_candidate(scratch_dir, &c[i], out) != 0)
            continue;
        out->language = xstrndup(c[i].lang, base_len(c[i].lang));
        out->automatic = c[i].automatic;
        *error_code = NULL;
        ret = 0;
    }
    for (i = 0; i < n; i++) {
        free(c[i].name);
        free(c[i].lang);
    }
    free(c);
    free(own);
    return ret;
}

/* ---------------------------------------------------------------------------------------------------------------------
 * failures
 * ------------------------------------------------------------------------------------------------------------------- */

typedef struct st_gw_failure_rule_t {
    const char *needles[6]; /* any one matches (case-insensitive) */
    const char *code;
    bool transient;
    const char *message;
} gw_failure_rule_t;

/* First match wins, so the order matters: the bot check also says "Sign in to confirm", 429 also says "Unable to
 * download", and "Video unavailable. This video is private" is about privacy. */
static const gw_failure_rule_t failure_rules[] = {
    {{"not a bot", NULL},
     "bot_check",
     true,
     "YouTube asked the worker to prove it is not a bot. This is usually temporary; the job will be retried."},
    {{"HTTP Error 429", "Too Many Requests", NULL},
     "rate_limited",
     true,
     "YouTube is rate-limiting the worker right now. The job will be retried shortly."},
    {{"Private video", "video is private", NULL},
     "private_video",
     false,
     "This video is private. Ask its owner to make it public or unlisted, then submit it again."},
    {{"members-only", "members only", "Join this channel", "channel's members", NULL},
     "members_only",
     false,
     "This video is only available to channel members. Choose a public video."},
    {{"confirm your age", "age-restricted", "age restricted", "inappropriate for some users", NULL},
     "age_restricted",
     false,
     "This video is age-restricted and cannot be analysed without a signed-in YouTube account. Choose another video."},
    {{"This live event will begin", "Premieres in", "is live", NULL},
     "live_stream",
     false,
     "This is a live stream or premiere that has not finished. Submit it again after it has ended."},
    {{"Requested format is not available", NULL},
     "format_unavailable",
     false,
     "YouTube offers no downloadable format for this video. Try the standard analysis mode instead."},
    {{"Video unavailable", "has been removed", "is not available", "no longer available", "does not exist",
      "available in your country"},
     "video_unavailable",
     false,
     "This video is unavailable (removed, blocked, or never existed). Check that the link plays in a browser."},
    /* a page that is gone is not a network problem: retrying a 404 only burns attempts */
    {{"HTTP Error 404", "HTTP Error 410", NULL},
     "video_unavailable",
     false,
     "This video is unavailable (removed, blocked, or never existed). Check that the link plays in a browser."},
    {{"Unsupported URL", "Incomplete YouTube ID", "is not a valid URL", NULL},
     "invalid_url",
     false,
     "This link is not recognised as a video. Paste a link to a single YouTube video."},
    {{"Unable to download", "timed out", "Connection reset", "Temporary failure in name resolution", "getaddrinfo",
      "Connection refused"},
     "network_error",
     true,
     "The worker could not reach YouTube (network error). The job will be retried."},
};

void gw_ytdlp_classify_failure(const char *stderr_text, int exit_code, const char **error_code, const char **message,
                               bool *transient)
{
    const char *s = stderr_text != NULL ? stderr_text : "", *ignored;
    bool ignored_b;
    if (error_code == NULL)
        error_code = &ignored;
    if (message == NULL)
        message = &ignored;
    if (transient == NULL)
        transient = &ignored_b;
    for (size_t i = 0; i < sizeof(failure_rules) / sizeof(failure_rules[0]); i++) {
        const gw_failure_rule_t *r = &failure_rules[i];
        for (size_t k = 0; k < sizeof(r->needles) / sizeof(r->needles[0]) && r->needles[k] != NULL; k++) {
            if (istrstr(s, r->needles[k]) != NULL) {
                *error_code = r->code;
                *message = r->message;
                *transient = r->transient;
                return;
            }
        }
    }
    *error_code = "ytdlp_failed";
    *message = exit_code < 0 ? "Fetching the video's details was interrupted. The job will be retried."
                             : "Fetching the video's details failed for an unknown reason. The job will be retried; if it "
                               "keeps failing, check that the video plays in a browser.";
    *transient = true;
}
