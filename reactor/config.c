#include "reactor/config.h"
#include "reactor/log.h"
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define OFF(f) offsetof(gw_config_t, f)
#define STR(n, d, req, sec, f, h)                                                                                                  \
    {                                                                                                                              \
        n, GW_CFG_STRING, d, 0, 0, NULL, req, sec, OFF(f), h                                                                       \
    }
#define LNG(n, d, lo, hi, f, h)                                                                                                    \
    {                                                                                                                              \
        n, GW_CFG_LONG, d, lo, hi, NULL, false, false, OFF(f), h                                                                   \
    }
#define ENM(n, d, ch, f, h)                                                                                                        \
    {                                                                                                                              \
        n, GW_CFG_ENUM, d, 0, 0, ch, false, false, OFF(f), h                                                                       \
    }

const gw_config_var_t gw_config_vars[] = {
    STR("DATABASE_URL", NULL, true, true, database_url,
        "libpq URI. On Supabase use the direct or session-mode pooler string (LISTEN does not work in transaction mode)"),
    STR("GEMINI_API_KEY", NULL, false, true, gemini_api_key, "Gemini API key (sent as x-goog-api-key)"),
    STR("GEMINI_BASE_URL", "https://generativelanguage.googleapis.com", false, false, gemini_base_url,
        "Gemini REST endpoint; tests point it at a local stand-in"),
    STR("GEMINI_FLASH_MODEL", "gemini-3.6-flash", false, false, gemini_flash_model, "model for standard mode"),
    STR("GEMINI_PRO_MODEL", "gemini-3.1-pro-preview", false, false, gemini_pro_model, "model for deep mode"),
    STR("WORKER_API_KEY", NULL, false, true, worker_api_key,
        "key for /worker/* (X-API-Key or Authorization: Bearer); unset = /worker/* answers 503"),
    STR("HOST", "0.0.0.0", false, false, host, "HTTP listen address"),
    LNG("PORT", "8000", 0, 65535, port, "HTTP port (0 = any free port)"),
    LNG("MAX_CONCURRENT_JOBS", "8", 1, 4096, max_concurrent_jobs, "jobs in flight per process"),
    LNG("POLL_INTERVAL_MS", "5000", 50, 3600000, poll_interval_ms,
        "fallback poll while LISTEN is healthy (250 ms while it is not)"),
    LNG("LEASE_SECONDS", "30", 2, 3600, lease_seconds, "a claimed job's lease; renewed every third of it"),
    LNG("SHUTDOWN_GRACE_MS", "8000", 0, 600000, shutdown_grace_ms,
        "on SIGTERM, how long running jobs may finish before they are released (Cloud Run allows 10 s)"),
    LNG("PG_QUERY_TIMEOUT_MS", "15000", 1000, 600000, pg_query_timeout_ms,
        "a query unanswered this long means the connection is dead: reconnect"),
    STR("YTDLP_PATH", "yt-dlp", false, false, ytdlp_path, "yt-dlp executable (PATH lookup)"),
    STR("FFMPEG_PATH", "ffmpeg", false, false, ffmpeg_path, "ffmpeg executable"),
    STR("FFPROBE_PATH", "ffprobe", false, false, ffprobe_path, "ffprobe executable"),
    STR("ALLOWED_VIDEO_HOSTS",
        "youtube.com,www.youtube.com,m.youtube.com,music.youtube.com,youtu.be,youtube-nocookie.com,www.youtube-nocookie.com", false,
        false, allowed_video_hosts, "comma-separated hosts a video_url may name (SSRF guard)"),
    STR("TRANSCRIPT_LANGS", "", false, false, transcript_langs,
        "comma-separated caption languages to prefer (default: the video's own, then English)"),
    STR("WORK_DIR", "/tmp", false, false, work_dir, "scratch space for per-job directories, always cleaned"),
    STR("LOCAL_MEDIA_DIR", NULL, false, false, local_media_dir,
        "directory whose files a video_url may name (file:// URI or absolute path); unset = local files refused"),
    ENM("ANALYZER", "auto", "auto|gemini|local", analyzer,
        "gemini, local (extractive, no network) or auto (local only when GEMINI_API_KEY is unset)"),
    LNG("YTDLP_TIMEOUT_MS", "120000", 1000, 3600000, ytdlp_timeout_ms, "yt-dlp run limit"),
    LNG("GEMINI_TIMEOUT_MS", "180000", 1000, 3600000, gemini_timeout_ms, "one Gemini request's limit"),
    LNG("GEMINI_MAX_RETRIES", "4", 0, 20, gemini_max_retries, "retries of one Gemini call on 408/429/5xx/network errors"),
    LNG("GEMINI_CHUNK_CHARS", "400000", 2000, 4000000, gemini_chunk_chars,
        "transcripts longer than this are analysed in chunks and merged"),
    ENM("GEMINI_THINKING_LEVEL", "low", "minimal|low|medium|high", thinking_level,
        "thinkingConfig.thinkingLevel for Gemini 3 models"),
    LNG("DEEP_MAX_HEIGHT", "480", 144, 2160, deep_max_height,
        "deep mode downloads the smallest format up to this height (on-screen text stays legible at 480p)"),
    LNG("DOWNLOAD_MAX_BYTES", "1073741824", 1048576, 2147483648, download_max_bytes,
        "a deep-mode download larger than this fails the job (video_too_large); the Files API takes up to 2 GB"),
    LNG("DOWNLOAD_TIMEOUT_MS", "600000", 1000, 7200000, download_timeout_ms, "limit of one media download (yt-dlp, ffmpeg)"),
    ENM("GEMINI_MEDIA_RESOLUTION", "low", "low|medium|high|default", gemini_media_resolution,
        "mediaResolution for video analysis; low costs about a third of the tokens of the default"),
    ENM("DEEP_VIDEO_SOURCE", "upload", "upload|youtube_url", deep_video_source,
        "upload = download and upload to the Files API; youtube_url = pass the public YouTube URL as fileUri (upload when "
        "refused)"),
    LNG("UPLOAD_CHUNK_BYTES", "8388608", 0, 1073741824, upload_chunk_bytes,
        "Files API upload chunk (rounded down to a multiple of 8 MiB); 0 = the whole file in one request"),
    LNG("UPLOAD_MAX_RETRIES", "4", 0, 20, upload_max_retries, "retries of an upload step after a dropped connection or 5xx"),
    LNG("UPLOAD_TIMEOUT_MS", "300000", 1000, 3600000, upload_timeout_ms, "limit of one upload request (one chunk)"),
    LNG("FILE_ACTIVE_TIMEOUT_MS", "300000", 1000, 3600000, file_active_timeout_ms,
        "how long an uploaded file may stay PROCESSING before the job fails (file_processing_timeout)"),
    LNG("DEEP_SEGMENT_SECONDS", "2700", 60, 86400, deep_segment_seconds,
        "deep-mode videos longer than this are analysed in videoMetadata segments of this length and merged"),
    STR("SENTRY_DSN", NULL, false, true, sentry_dsn, "Sentry DSN; unset = no error reporting"),
    STR("SENTRY_ENVIRONMENT", "production", false, false, sentry_environment, "environment tag on Sentry events"),
    ENM("LOG_LEVEL", "info", "debug|info|warn|error", log_level, "log threshold"),
    ENM("LOG_FORMAT", "text", "text|json", log_format, "json = one JSON object per line (Cloud Logging)"),
    STR("WORKER_ID", NULL, false, false, worker_id, "name recorded in locked_by (default host:pid:random)"),
    LNG("HTTP_MAX_CONNECTIONS", "1024", 8, 1000000, http_max_connections,
        "open HTTP connections at most (lowered to leave RLIMIT_NOFILE room for jobs); when full the oldest idle one is "
        "closed, else the new one is refused"),
    LNG("MODEL_CHECK_INTERVAL_MS", "600000", 1000, 86400000, model_check_interval_ms,
        "how often the Gemini models are checked (models.get) while they pass; also the longest backoff while they fail"),
    LNG("MODEL_CHECK_RETRY_MS", "30000", 100, 3600000, model_check_retry_ms,
        "first recheck after a failed model check (claiming paused meanwhile); doubles up to MODEL_CHECK_INTERVAL_MS"),
};
const size_t gw_config_nvars = sizeof(gw_config_vars) / sizeof(gw_config_vars[0]);

typedef struct st_dotenv_t {
    char **keys, **values;
    size_t n;
} dotenv_t;

static char *xstrdup(const char *s)
{
    char *d = strdup(s);
    if (d == NULL)
        abort();
    return d;
}

/* Parses one value starting at p (quotes handled); returns a malloc'd string or NULL when malformed. */
static char *parse_value(const char *p, const char *end)
{
    char *out = malloc(end - p + 1), *o = out;
    if (out == NULL)
        abort();
    if (p < end && (*p == '"' || *p == '\'')) {
        char q = *p++;
        while (p < end && *p != q) {
            if (q == '"' && *p == '\\' && p + 1 < end) {
                p++;
                *o++ = *p == 'n' ? '\n' : *p;
                p++;
            } else {
                *o++ = *p++;
            }
        }
        if (p == end) {
            free(out);
            return NULL;
        }
        p++;
        while (p < end && isspace((unsigned char)*p))
            p++;
        if (p < end && *p != '#') {
            free(out);
            return NULL;
        }
    } else {
        const char *e = p;
        while (e < end && !(*e == '#' && (e == p || isspace((unsigned char)e[-1]))))
            e++;
        while (e > p && isspace((unsigned char)e[-1]))
            e--;
        memcpy(o, p, e - p);
        o += e - p;
    }
    *o = '\0';
    return out;
}

static int parse_line(const char *p, const char *end, void (*cb)(const char *, const char *, void *), void *data)
{
    while (p < end && isspace((unsigned char)*p))
        p++;
    if (p == end || *p == '#')
        return 0;
    if (end - p > 7 && memcmp(p, "export", 6) == 0 && (p[6] == ' ' || p[6] == '\t'))
        for (p += 6; p < end && isspace((unsigned char)*p); p++)
            ;
    const char *k = p;
    while (p < end && (isalnum((unsigned char)*p) || *p == '_'))
        p++;
    if (p == k || isdigit((unsigned char)*k))
        return -1;
    size_t klen = p - k;
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    if (p == end || *p != '=')
        return -1;
    for (p++; p < end && (*p == ' ' || *p == '\t'); p++)
        ;
    char *value = parse_value(p, end);
    if (value == NULL || memchr(k, '\0', end - k) != NULL) {
        free(value);
        return -1;
    }
    char key[128];
    if (klen >= sizeof(key)) {
        free(value);
        return -1;
    }
    memcpy(key, k, klen);
    key[klen] = '\0';
    cb(key, value, data);
    free(value);
    return 0;
}

int gw_dotenv_parse(const char *buf, size_t len, void (*cb)(const char *, const char *, void *), void *data)
{
    int rejected = 0;
    const char *p = buf, *end = buf + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', end - p), *le = nl ? nl : end;
        const char *e = le > p && le[-1] == '\r' ? le - 1 : le;
        if (parse_line(p, e, cb, data) != 0)
            rejected++;
        p = nl ? nl + 1 : end;
    }
    return rejected;
}

static void dotenv_add(const char *key, const char *value, void *data)
{
    dotenv_t *d = data;
    d->keys = realloc(d->keys, (d->n + 1) * sizeof(char *));
    d->values = realloc(d->values, (d->n + 1) * sizeof(char *));
    if (d->keys == NULL || d->values == NULL)
        abort();
    d->keys[d->n] = xstrdup(key);
    d->values[d->n] = xstrdup(value);
    d->n++;
}

static int dotenv_load(dotenv_t *d, const char *path, char *err, size_t errlen)
{
    FILE *f = path ? fopen(path, "rb") : NULL;
    if (f == NULL)
        return 0; /* a missing .env is normal */
    char *buf = malloc(1 << 20);
    if (buf == NULL)
        abort();
    size_t n = fread(buf, 1, (1 << 20) - 1, f);
    int big = !feof(f);
    fclose(f);
    int rejected = big ? 1 : gw_dotenv_parse(buf, n, dotenv_add, d);
    free(buf);
    if (rejected) {
        snprintf(err, errlen, "%s: %s", path, big ? "file too large" : "malformed line (expected KEY=VALUE)");
        return -1;
    }
    return 0;
}

static const char *lookup(const dotenv_t *d, const char *name)
{
    const char *v = getenv(name);
    if (v != NULL)
        return v;
    for (size_t i = d->n; i-- > 0;)
        if (strcmp(d->keys[i], name) == 0)
            return d->values[i];
    return NULL;
}

static bool enum_has(const char *choices, const char *v)
{
    size_t n = strlen(v);
    for (const char *p = choices; p != NULL; p = strchr(p, '|'), p = p ? p + 1 : NULL)
        if (strncasecmp(p, v, n) == 0 && (p[n] == '|' || p[n] == '\0'))
            return n > 0;
    return false;
}

static int set_var(gw_config_t *cfg, const gw_config_var_t *v, const char *value, char *err, size_t errlen)
{
    char *base = (char *)cfg + v->offset;
    switch (v->type) {
    case GW_CFG_LONG: {
        char *end;
        errno = 0;
        long x = strtol(value, &end, 10);
        if (errno != 0 || end == value || *end != '\0' || x < v->min || x > v->max) {
            snprintf(err, errlen, "%s: expected an integer from %ld to %ld, got \"%.40s\"", v->name, v->min, v->max, value);
            return -1;
        }
        *(long *)base = x;
        return 0;
    }
    case GW_CFG_ENUM:
        if (!enum_has(v->choices, value)) {
            snprintf(err, errlen, "%s: expected one of %s, got \"%.40s\"", v->name, v->choices, value);
            return -1;
        }
        /* fallthrough */
    case GW_CFG_STRING:
        free(*(char **)base);
        *(char **)base = xstrdup(value);
        if (v->secret)
            gw_log_secret(value);
        return 0;
    }
    return -1;
}

/* The password inside DATABASE_URL is a secret of its own (libpq may echo the URL in errors). */
static void register_db_password(const char *url)
{
    const char *at = strrchr(url, '@'), *scheme = strstr(url, "://");
    if (at != NULL && scheme != NULL && scheme < at) {
        const char *colon = memchr(scheme + 3, ':', at - (scheme + 3));
        if (colon != NULL) {
            char pw[256];
            size_t n = at - colon - 1;
            if (n > 0 && n < sizeof(pw)) {
                memcpy(pw, colon + 1, n);
                pw[n] = '\0';
                gw_log_secret(pw);
            }
        }
    }
    const char *kw = strstr(url, "password=");
    if (kw != NULL) {
        char pw[256];
        size_t n = strcspn(kw + 9, " &");
        if (n > 0 && n < sizeof(pw)) {
            memcpy(pw, kw + 9, n);
            pw[n] = '\0';
            gw_log_secret(pw);
        }
    }
}

int gw_config_load(gw_config_t *cfg, const char *dotenv_path, bool require_db, char *err, size_t errlen)
{
    dotenv_t d = {NULL, NULL, 0};
    int rc = dotenv_load(&d, dotenv_path, err, errlen);
    memset(cfg, 0, sizeof(*cfg));
    for (size_t i = 0; rc == 0 && i < gw_config_nvars; i++) {
        const gw_config_var_t *v = &gw_config_vars[i];
        const char *value = lookup(&d, v->name);
        if (value != NULL && *value == '\0' && v->type != GW_CFG_STRING)
            value = NULL; /* VAR= means "default" for numbers and choices */
        if (value == NULL)
            value = v->def;
        if (value == NULL) {
            if (v->required && (require_db || strcmp(v->name, "DATABASE_URL") != 0)) {
                snprintf(err, errlen, "%s: required but not set", v->name);
                rc = -1;
            }
            continue;
        }
        rc = set_var(cfg, v, value, err, errlen);
    }
    if (rc == 0 && cfg->database_url != NULL)
        register_db_password(cfg->database_url);
    for (size_t i = 0; i < d.n; i++) {
        free(d.keys[i]);
        free(d.values[i]);
    }
    free(d.keys);
    free(d.values);
    return rc;
}

void gw_config_free(gw_config_t *cfg)
{
    for (size_t i = 0; i < gw_config_nvars; i++)
        if (gw_config_vars[i].type != GW_CFG_LONG)
            free(*(char **)((char *)cfg + gw_config_vars[i].offset));
    memset(cfg, 0, sizeof(*cfg));
}

static void describe_default(const gw_config_var_t *v, char *buf, size_t len)
{
    if (v->required)
        snprintf(buf, len, "required");
    else if (v->def == NULL)
        snprintf(buf, len, "unset");
    else if (v->type == GW_CFG_LONG)
        snprintf(buf, len, "%s (%ld..%ld)", v->def, v->min, v->max);
    else if (v->type == GW_CFG_ENUM)
        snprintf(buf, len, "%s (%s)", v->def, v->choices);
    else
        snprintf(buf, len, "%s", v->def);
}

void gw_config_print_help(FILE *out)
{
    fprintf(out, "Environment (a .env file in the working directory is read too; the real environment wins):\n");
    for (size_t i = 0; i < gw_config_nvars; i++) {
        char d[256];
        describe_default(&gw_config_vars[i], d, sizeof(d));
        fprintf(out, "  %-22s %s\n  %-22s   default: %s\n", gw_config_vars[i].name, gw_config_vars[i].help, "", d);
    }
}

/* A table cell: '|' (enum choices, help text) would end the cell early. */
static void print_cell(FILE *out, const char *s)
{
    for (; *s != '\0'; s++) {
        if (*s == '|')
            fputc('\\', out);
        fputc(*s, out);
    }
}

void gw_config_print_markdown(FILE *out)
{
    fprintf(out, "| variable | default | meaning |\n|---|---|---|\n");
    for (size_t i = 0; i < gw_config_nvars; i++) {
        char d[256];
        describe_default(&gw_config_vars[i], d, sizeof(d));
        fprintf(out, "| `%s` | ", gw_config_vars[i].name);
        print_cell(out, d);
        fputs(" | ", out);
        print_cell(out, gw_config_vars[i].help);
        fputs(" |\n", out);
    }
}
