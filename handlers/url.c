#include "handlers/url.h"
#include "reactor/text.h"
#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
        csv = GW_URL_DEFAULT_HOSTS;
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
        if (n > 0 && gw_ascii_ieq_n(s, n, host, len))
            return true;
        p = *end == ',' ? end + 1 : end;
    }
    return false;
}

bool gw_url_host_allowed(const char *host, const char *allowed_hosts_csv)
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
    if (gw_ascii_is_alpha((unsigned char)*s)) {
        const char *q = s;
        bool dot = false;
        while (q < end && (gw_ascii_is_alnum((unsigned char)*q) || *q == '+' || *q == '-' || *q == '.')) {
            dot |= *q == '.';
            q++;
        }
        if (q < end && *q == ':' && !dot) {
            size_t n = (size_t)(q - s);
            if (!gw_ascii_ieq_n(s, n, "http", 4) && !gw_ascii_ieq_n(s, n, "https", 5))
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
        if (!gw_ascii_is_digit((unsigned char)*s))
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
    if (ln >= 2 && l[0] == '0' && gw_ascii_lower((unsigned char)l[1]) == 'x') {
        for (k = 2; k < ln && gw_ascii_is_hex((unsigned char)l[k]); k++)
            ;
        return k == ln;
    }
    for (k = 0; k < ln && gw_ascii_is_digit((unsigned char)l[k]); k++)
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
        if (!(gw_ascii_is_alnum(c) || c == '-' || c == '.'))
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
    return n >= sn && gw_ascii_ieq_n(h + n - sn, sn, suffix, sn);
}

/* Hosts whose links carry a YouTube video id we can extract (and then rewrite to the canonical form). */
static bool host_is_youtube(const char *h, size_t n, bool *short_form)
{
    *short_form = gw_ascii_ieq_n(h, n, "youtu.be", 8) || gw_ascii_ieq_n(h, n, "www.youtu.be", 12);
    return *short_form || gw_ascii_ieq_n(h, n, "youtube.com", 11) || has_suffix_n(h, n, ".youtube.com") ||
           gw_ascii_ieq_n(h, n, "youtube-nocookie.com", 20) || has_suffix_n(h, n, ".youtube-nocookie.com");
}

static bool id_valid(const char *s, size_t n)
{
    if (n != GW_URL_ID_LEN)
        return false;
    for (size_t i = 0; i < n; i++) {
        int c = (unsigned char)s[i];
        if (!(gw_ascii_is_alnum(c) || c == '_' || c == '-'))
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
    return gw_ascii_ieq_n(s, n, word, strlen(word));
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
    char *c = gw_xmalloc(64);
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

int gw_url_normalize_n(const char *input, size_t len, const char *allowed_hosts_csv, char *video_id_out, char **canonical_url_out,
                       const char **error_code, const char **error_message)
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
    if (len > GW_URL_MAX_LEN)
        return url_fail(error_code, error_message,
                        "The link is too long. Paste the video's own link (watch?v=... or youtu.be/...).");
    if (check_bytes(input, len, error_code, error_message) != 0 || split_url(input, len, &u, error_code, error_message) != 0 ||
        host_checks(&u, allowed_hosts_csv, &other, error_code, error_message) != 0)
        return -1;
    if (other) {
        /* An operator-allowed non-YouTube host (tests): yt-dlp gets the link as written, which needs a scheme. */
        if (!u.has_scheme)
            return url_fail(error_code, error_message, "The link must start with http:// or https://.");
        *canonical_url_out = gw_xstrndup(input, len);
        return 0;
    }
    char id[GW_URL_ID_LEN + 1];
    host_is_youtube(u.host, u.host_len, &short_form);
    if (youtube_canonical(&u, short_form, id, canonical_url_out, error_code, error_message) != 0)
        return -1;
    if (video_id_out != NULL)
        memcpy(video_id_out, id, sizeof(id));
    return 0;
}

int gw_url_normalize(const char *input, const char *allowed_hosts_csv, char *video_id_out, char **canonical_url_out,
                     const char **error_code, const char **error_message)
{
    return gw_url_normalize_n(input, input != NULL ? strlen(input) : 0, allowed_hosts_csv, video_id_out, canonical_url_out,
                              error_code, error_message);
}

char *gw_url_identity(const char *video_id, const char *canonical_url)
{
    if (canonical_url == NULL)
        return NULL;
    size_t idn = video_id != NULL ? strlen(video_id) : 0, n = strcspn(canonical_url, "#");
    if (idn > 0) {
        char *out = gw_xmalloc(idn + sizeof("youtube:"));
        snprintf(out, idn + sizeof("youtube:"), "youtube:%s", video_id);
        return out;
    }
    char *out = gw_xmalloc(n + sizeof("url:"));
    memcpy(out, "url:", 4);
    memcpy(out + 4, canonical_url, n);
    out[4 + n] = '\0';
    /* scheme and host are case-insensitive; the path and query are not */
    const char *sep = strstr(out + 4, "://");
    char *end = sep != NULL ? (char *)sep + 3 + strcspn(sep + 3, "/?") : out + 4;
    for (char *p = out + 4; p < end; p++)
        *p = (char)gw_ascii_lower((unsigned char)*p);
    return out;
}
