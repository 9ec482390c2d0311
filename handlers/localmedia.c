#include "handlers/localmedia.h"
#include "handlers/subtitles.h"
#include "reactor/text.h"
#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#define E_DISABLED "local_media_disabled"
#define E_INVALID "invalid_path"
#define E_NOT_ALLOWED "path_not_allowed"
#define E_NOT_FOUND "file_not_found"
#define E_NOT_FILE "not_a_file"

static void set_err(const char **code, const char **msg, const char *c, const char *m)
{
    if (code != NULL)
        *code = c;
    if (msg != NULL)
        *msg = m;
}

bool gw_localmedia_is_local(const char *video_url)
{
    return video_url != NULL && (strncasecmp(video_url, "file:", 5) == 0 || video_url[0] == '/');
}

bool gw_localmedia_below(const char *real_path, const char *real_root)
{
    size_t n = strlen(real_root);
    if (n == 1 && real_root[0] == '/') /* everything is below "/" except "/" itself */
        return real_path[0] == '/' && real_path[1] != '\0';
    while (n > 1 && real_root[n - 1] == '/')
        n--;
    return strncmp(real_path, real_root, n) == 0 && real_path[n] == '/' && real_path[n + 1] != '\0';
}

/* ---- intake ---- */

/* Decodes %XX once. Refuses malformed escapes and escaped '/', '\\', NUL: a name can never need them. */
static char *percent_decode(const char *s)
{
    char *out = malloc(strlen(s) + 1), *o = out;
    if (out == NULL)
        abort();
    for (; *s != '\0'; s++) {
        if (*s != '%') {
            *o++ = *s;
            continue;
        }
        int hi = gw_ascii_hexval((unsigned char)s[1]), lo = hi < 0 ? -1 : gw_ascii_hexval((unsigned char)s[2]);
        int c = hi * 16 + lo;
        if (hi < 0 || lo < 0 || c == 0 || c == '/' || c == '\\') {
            free(out);
            return NULL;
        }
        *o++ = (char)c;
        s += 2;
    }
    *o = '\0';
    return out;
}

/* "file:///p" or "file://localhost/p" -> "/p" decoded; NULL when not of that shape. */
static char *path_from_file_uri(const char *uri)
{
    const char *p = uri + 5;
    if (strncmp(p, "//", 2) != 0)
        return NULL;
    p += 2;
    if (strncasecmp(p, "localhost/", 10) == 0)
        p += 9;
    if (*p != '/' || strpbrk(p, "?#") != NULL)
        return NULL;
    return percent_decode(p);
}

/* Control bytes, backslashes and "." / ".." components are refused outright rather than normalized away. */
static bool path_is_plain(const char *p)
{
    if (p[0] != '/' || strlen(p) >= PATH_MAX)
        return false;
    for (const unsigned char *c = (const unsigned char *)p; *c != '\0'; c++)
        if (*c < 0x20 || *c == 0x7f || *c == '\\')
            return false;
    for (const char *c = p; (c = strchr(c, '/')) != NULL; c++) {
        const char *e = c + 1;
        size_t n = strcspn(e, "/");
        if ((n == 1 && e[0] == '.') || (n == 2 && e[0] == '.' && e[1] == '.'))
            return false;
    }
    return true;
}

static int check_real(const char *path, const char *real_root, char **path_out, const char **code, const char **msg)
{
    char real[PATH_MAX];
    struct stat st;
    if (realpath(path, real) == NULL) {
        if (errno == ENOENT || errno == ENOTDIR) {
            set_err(code, msg, E_NOT_FOUND, "The local file does not exist");
            return -1;
        }
        set_err(code, msg, E_NOT_ALLOWED, "The local file cannot be read by the worker");
        return -1;
    }
    if (!gw_localmedia_below(real, real_root)) {
        set_err(code, msg, E_NOT_ALLOWED, "The file is outside the worker's media directory");
        return -1;
    }
    if (stat(real, &st) != 0 || !S_ISREG(st.st_mode)) {
        set_err(code, msg, E_NOT_FILE, "The path does not name a regular file");
        return -1;
    }
    *path_out = gw_xstrdup(real);
    return 0;
}

int gw_localmedia_resolve(const char *video_url, const char *media_dir, char **path_out, const char **error_code,
                          const char **error_message)
{
    char root[PATH_MAX];
    *path_out = NULL;
    if (media_dir == NULL || *media_dir == '\0') {
        set_err(error_code, error_message, E_DISABLED, "This worker does not accept local files (LOCAL_MEDIA_DIR is unset)");
        return -1;
    }
    if (realpath(media_dir, root) == NULL) { /* e.g. a volume not mounted yet: worth a retry */
        set_err(error_code, error_message, "media_dir_unavailable", "The worker's media directory is not available right now");
        return -1;
    }
    if (!gw_localmedia_is_local(video_url)) {
        set_err(error_code, error_message, E_INVALID, "This is not a local file path we accept");
        return -1;
    }
    char *path = video_url[0] == '/' ? gw_xstrdup(video_url) : path_from_file_uri(video_url);
    int rc = -1;
    if (path == NULL || !path_is_plain(path))
        set_err(error_code, error_message, E_INVALID, "This is not a local file path we accept");
    else
        rc = check_real(path, root, path_out, error_code, error_message);
    free(path);
    return rc;
}

/* ---- argv ---- */

static char **argv_dup(const char *const *items, size_t n)
{
    char **argv = calloc(n + 1, sizeof(char *));
    if (argv == NULL)
        abort();
    for (size_t i = 0; i < n; i++)
        argv[i] = gw_xstrdup(items[i]);
    return argv;
}

char **gw_localmedia_argv_probe(const char *ffprobe_path, const char *path)
{
    const char *v[] = {ffprobe_path ? ffprobe_path : "ffprobe",
                       "-v",
                       "error",
                       "-print_format",
                       "json",
                       "-show_format",
                       "-show_streams",
                       "-show_chapters",
                       "--",
                       path};
    return argv_dup(v, sizeof(v) / sizeof(v[0]));
}

char **gw_localmedia_argv_extract_subs(const char *ffmpeg_path, const char *path, int stream_index, const char *out_vtt)
{
    char map[32];
    snprintf(map, sizeof(map), "0:%d", stream_index);
    const char *v[] = {ffmpeg_path ? ffmpeg_path : "ffmpeg",
                       "-nostdin",
                       "-v",
                       "error",
                       "-y",
                       "-i",
                       path,
                       "-map",
                       map,
                       "-c:s",
                       "webvtt",
                       "-f",
                       "webvtt",
                       out_vtt};
    return argv_dup(v, sizeof(v) / sizeof(v[0]));
}

/* ---- ffprobe JSON ---- */

static double num_or_str(json_t *v)
{
    if (json_is_number(v))
        return json_number_value(v);
    if (json_is_string(v)) {
        char *end;
        double d = strtod(json_string_value(v), &end);
        if (end != json_string_value(v) && *end == '\0' && d == d)
            return d;
    }
    return -1;
}

/* A tag by name, ignoring case (containers spell them "title", "TITLE", "Title"). */
static const char *tag(json_t *obj, const char *name)
{
    json_t *tags = json_object_get(obj, "tags"), *v;
    const char *k;
    json_object_foreach(tags, k, v)
    {
        if (strcasecmp(k, name) == 0 && json_is_string(v) && *json_string_value(v) != '\0')
            return json_string_value(v);
    }
    return NULL;
}

static char *map_language(const char *l)
{
    static const char *map[][2] = {{"eng", "en"}, {"deu", "de"}, {"ger", "de"}, {"fra", "fr"}, {"fre", "fr"}, {"spa", "es"},
                                   {"ita", "it"}, {"por", "pt"}, {"jpn", "ja"}, {"zho", "zh"}, {"chi", "zh"}, {"rus", "ru"},
                                   {"kor", "ko"}, {"nld", "nl"}, {"dut", "nl"}, {"pol", "pl"}, {"tur", "tr"}, {"ara", "ar"}};
    if (l == NULL || strcasecmp(l, "und") == 0 || strlen(l) > 35)
        return NULL;
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
        if (strcasecmp(l, map[i][0]) == 0)
            return gw_xstrdup(map[i][1]);
    return gw_xstrdup(l);
}

static bool text_subtitle_codec(const char *c)
{
    static const char *ok[] = {"subrip", "srt", "ass", "ssa", "webvtt", "mov_text", "text", "microdvd", "subviewer"};
    for (size_t i = 0; c != NULL && i < sizeof(ok) / sizeof(ok[0]); i++)
        if (strcmp(c, ok[i]) == 0)
            return true;
    return false;
}

static void parse_streams(json_t *streams, gw_video_meta_t *out, gw_probe_info_t *info)
{
    const char *audio_lang = NULL, *sub_lang = NULL;
    size_t i;
    json_t *s;
    json_array_foreach(streams, i, s)
    {
        const char *type = json_string_value(json_object_get(s, "codec_type"));
        if (type == NULL)
            continue;
        if (strcmp(type, "video") == 0 && !json_is_true(json_object_get(json_object_get(s, "disposition"), "attached_pic")))
            info->has_video = true;
        if (strcmp(type, "audio") == 0) {
            info->has_audio = true;
            if (audio_lang == NULL)
                audio_lang = tag(s, "language");
        }
        if (strcmp(type, "subtitle") == 0 && info->subtitle_stream < 0 &&
            text_subtitle_codec(json_string_value(json_object_get(s, "codec_name")))) {
            json_t *idx = json_object_get(s, "index");
            info->subtitle_stream = json_is_integer(idx) ? (int)json_integer_value(idx) : (int)i;
            sub_lang = tag(s, "language");
        }
        double d = num_or_str(json_object_get(s, "duration"));
        if (d > out->duration)
            out->duration = d;
    }
    out->language = map_language(audio_lang != NULL ? audio_lang : sub_lang);
}

static void parse_chapters(json_t *chapters, gw_video_meta_t *out)
{
    size_t n = json_array_size(chapters), i;
    json_t *c;
    if (n == 0)
        return;
    out->chapters = calloc(n, sizeof(gw_chapter_t));
    if (out->chapters == NULL)
        abort();
    json_array_foreach(chapters, i, c)
    {
        gw_chapter_t *ch = &out->chapters[out->nchapters];
        ch->start = num_or_str(json_object_get(c, "start_time"));
        ch->end = num_or_str(json_object_get(c, "end_time"));
        if (ch->start < 0)
            continue;
        const char *t = tag(c, "title");
        char buf[32];
        snprintf(buf, sizeof(buf), "Chapter %zu", out->nchapters + 1);
        ch->title = gw_xstrdup(t != NULL ? t : buf);
        out->nchapters++;
    }
}

static char *stem_of(const char *path)
{
    const char *base = strrchr(path, '/');
    char *s = gw_xstrdup(base != NULL ? base + 1 : path);
    char *dot = strrchr(s, '.');
    if (dot != NULL && dot != s)
        *dot = '\0';
    return s;
}

int gw_localmedia_parse_probe(const char *json, size_t len, const char *path, gw_video_meta_t *out, gw_probe_info_t *info,
                              const char **error_code)
{
    memset(out, 0, sizeof(*out));
    memset(info, 0, sizeof(*info));
    info->subtitle_stream = -1;
    json_t *root = json_loadb(json, len, 0, NULL);
    json_t *format = json_object_get(root, "format");
    if (!json_is_object(format)) {
        json_decref(root);
        if (error_code != NULL)
            *error_code = "bad_media";
        return -1;
    }
    out->duration = -1;
    parse_streams(json_object_get(root, "streams"), out, info);
    double d = num_or_str(json_object_get(format, "duration"));
    if (d > 0)
        out->duration = d;
    parse_chapters(json_object_get(root, "chapters"), out);
    const char *base = strrchr(path, '/');
    out->id = gw_xstrdup(base != NULL ? base + 1 : path);
    const char *title = tag(format, "title");
    out->title = title != NULL ? gw_xstrdup(title) : stem_of(path);
    const char *artist = tag(format, "artist");
    out->channel = artist != NULL ? gw_xstrdup(artist) : NULL;
    json_decref(root);
    if (!info->has_video && !info->has_audio && info->subtitle_stream < 0) {
        gw_video_meta_free(out);
        if (error_code != NULL)
            *error_code = "bad_media";
        return -1;
    }
    return 0;
}

/* ---- transcripts ---- */

static char *read_capped(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    struct stat st;
    if (f == NULL)
        return NULL;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size > GW_LOCALMEDIA_MAX_SUB_BYTES) {
        fclose(f);
        return NULL;
    }
    char *buf = malloc((size_t)st.st_size + 1);
    if (buf == NULL)
        abort();
    *len = fread(buf, 1, (size_t)st.st_size, f);
    buf[*len] = '\0';
    fclose(f);
    return buf;
}

int gw_localmedia_load_subtitle_file(const char *path, gw_transcript_t *out)
{
    size_t len = 0;
    char *buf = read_capped(path, &len);
    memset(out, 0, sizeof(*out));
    if (buf == NULL)
        return -1;
    const char *ext = strrchr(path, '.');
    bool srt_first = ext != NULL && strcasecmp(ext, ".srt") == 0;
    int rc = srt_first ? gw_parse_srt(buf, len, out) : gw_parse_vtt(buf, len, out);
    if (rc != 0) {
        gw_transcript_free(out);
        rc = srt_first ? gw_parse_vtt(buf, len, out) : gw_parse_srt(buf, len, out);
    }
    free(buf);
    if (rc != 0 || out->nsegments == 0) {
        gw_transcript_free(out);
        return -1;
    }
    return 0;
}

int gw_localmedia_load_sidecar(const char *media_path, const char *real_root, gw_transcript_t *out)
{
    static const char *exts[] = {".vtt", ".srt"};
    memset(out, 0, sizeof(*out));
    for (size_t i = 0; i < sizeof(exts) / sizeof(exts[0]); i++) {
        char cand[PATH_MAX], *real = NULL;
        const char *slash = strrchr(media_path, '/'), *dot = strrchr(media_path, '.');
        size_t stem = dot != NULL && (slash == NULL || dot > slash + 1) ? (size_t)(dot - media_path) : strlen(media_path);
        if (snprintf(cand, sizeof(cand), "%.*s%s", (int)stem, media_path, exts[i]) >= (int)sizeof(cand))
            continue;
        if (check_real(cand, real_root, &real, NULL, NULL) != 0)
            continue; /* absent, escaping via a symlink, or not a regular file */
        int rc = gw_localmedia_load_subtitle_file(real, out);
        free(real);
        if (rc == 0)
            return 0;
    }
    return -1;
}
