#include "handlers/ytdlp.h"
#include "handlers/subtitles.h"
#include "reactor/text.h"
#include "reactor/log.h"
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
 * argv
 * ------------------------------------------------------------------------------------------------------------------- */

static char **argv_dup(const char *const *items, size_t n)
{
    char **argv = gw_xmalloc((n + 1) * sizeof(*argv));
    for (size_t i = 0; i < n; i++)
        argv[i] = gw_xstrdup(items[i]);
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
        gw_buf_append(&b, dir[i] == '%' ? "%%" : &dir[i], dir[i] == '%' ? 2 : 1);
    if (n == 0 || dir[n - 1] != '/')
        gw_buf_putc(&b, '/');
    gw_buf_puts(&b, file_tmpl);
    return b.data;
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

char **gw_ytdlp_argv_net(char **argv, const char *cookies, const char *proxy)
{
    size_t n = 0, dash = SIZE_MAX;
    if (argv == NULL)
        return NULL;
    for (; argv[n] != NULL; n++)
        if (dash == SIZE_MAX && strcmp(argv[n], "--") == 0)
            dash = n;
    if (dash == SIZE_MAX || (cookies == NULL && proxy == NULL))
        return argv;
    char **out = gw_xmalloc((n + 5) * sizeof(*out));
    size_t k = 0;
    for (size_t i = 0; i < dash; i++)
        out[k++] = argv[i];
    if (cookies != NULL) {
        out[k++] = gw_xstrdup("--cookies");
        out[k++] = gw_xstrdup(cookies);
    }
    if (proxy != NULL) {
        out[k++] = gw_xstrdup("--proxy");
        out[k++] = gw_xstrdup(proxy);
    }
    for (size_t i = dash; i < n; i++)
        out[k++] = argv[i];
    out[k] = NULL;
    free(argv); /* its strings moved to out */
    return out;
}

bool gw_ytdlp_proxy_pick(const char *csv, uint64_t n, char *out, size_t outlen)
{
    size_t count = 0;
    for (int pass = 0; pass < 2; pass++) {
        const char *p = csv != NULL ? csv : "";
        size_t idx = 0;
        while (*p != '\0') {
            size_t len = strcspn(p, ",");
            const char *b = p, *e = p + len;
            while (b < e && (*b == ' ' || *b == '\t'))
                b++;
            while (e > b && (e[-1] == ' ' || e[-1] == '\t'))
                e--;
            if (e > b) {
                if (pass == 1 && idx == n % count) {
                    if ((size_t)(e - b) >= outlen)
                        return false;
                    memcpy(out, b, (size_t)(e - b));
                    out[e - b] = '\0';
                    return true;
                }
                idx++;
            }
            p += len;
            if (*p == ',')
                p++;
        }
        count = idx;
        if (count == 0)
            return false;
    }
    return false;
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

static bool lang_tag_ok(const char *l)
{
    size_t n = strlen(l);
    if (n == 0 || n > 35 || l[0] == '-')
        return false;
    for (size_t i = 0; i < n; i++)
        if (!(gw_ascii_is_alnum((unsigned char)l[i]) || l[i] == '-'))
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
        gw_buf_puts(&b, l);
        gw_buf_putc(&b, ',');
        if (strchr(l, '-') == NULL) {
            gw_buf_puts(&b, l);
            gw_buf_append(&b, region, sizeof(region) - 1);
        }
    }
    gw_buf_puts(&b, GW_YTDLP_DEFAULT_SUB_LANGS);
    return b.data;
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
    return json_is_string(v) ? gw_xstrdup(json_string_value(v)) : NULL;
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
    out->chapters = gw_xmalloc(json_array_size(arr) * sizeof(*out->chapters));
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
        ch->title = gw_xstrdup(json_is_string(t) ? json_string_value(t) : "");
    }
    /* A missing end is the next chapter's start, or the video's end. */
    for (i = 0; i < out->nchapters; i++) {
        gw_chapter_t *ch = &out->chapters[i];
        if (ch->end < 0)
            ch->end = i + 1 < out->nchapters ? out->chapters[i + 1].start : out->duration;
    }
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
    out->id = gw_xstrdup(json_string_value(id));
    json_t *title = json_object_get(root, "title");
    out->title = gw_xstrdup(json_is_string(title) ? json_string_value(title) : "");
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
            if (!(gw_ascii_is_alnum((unsigned char)l[k]) || l[k] == '-' || l[k] == '_'))
                return false;
        if (ln > 64 || gw_ascii_ieq_n(l, ln, "live_chat", 9))
            return false;
        *lang = gw_xstrndup(l, ln);
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
    return n > 5 && gw_ascii_ieq_n(lang + n - 5, 5, "-orig", 5) ? n - 5 : n;
}

/* 0 exact match, 1 same primary subtag ("en-US" vs "en"), -1 no match. */
static int lang_match(const char *lang, const char *want)
{
    size_t ln = base_len(lang), wn = strlen(want);
    if (wn == 0)
        return -1;
    if (gw_ascii_ieq_n(lang, ln, want, wn))
        return 0;
    size_t lp = primary_len(lang), wp = primary_len(want);
    return lp <= ln && gw_ascii_ieq_n(lang, lp, want, wp) ? 1 : -1;
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
            *out = gw_xrealloc(*out, cap * sizeof(**out));
        }
        (*out)[n++] = (gw_sub_cand_t){.name = gw_xstrdup(de->d_name), .lang = lang, .fmt = fmt};
    }
    return n;
}

/* Reads a regular file under dir; NULL when missing, not regular, empty or over GW_YTDLP_MAX_SUB_BYTES. */
static char *read_sub_file(const char *dir, const char *name, size_t *len)
{
    size_t plen = strlen(dir) + strlen(name) + 2;
    char *path = gw_xmalloc(plen), *buf = NULL;
    snprintf(path, plen, "%s/%s", dir, name);
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    struct stat st;
    free(path);
    if (fd < 0)
        return NULL;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size <= 0 || (uint64_t)st.st_size > GW_YTDLP_MAX_SUB_BYTES)
        goto Exit;
    buf = gw_xmalloc((size_t)st.st_size + 1);
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
        return gw_xstrdup(meta->language);
    for (size_t i = 0; i < n; i++)
        if (base_len(c[i].lang) != strlen(c[i].lang))
            return gw_xstrndup(c[i].lang, base_len(c[i].lang));
    return NULL;
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
        out->language = gw_xstrndup(c[i].lang, base_len(c[i].lang));
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
            if (gw_ascii_istrstr(s, r->needles[k]) != NULL) {
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
