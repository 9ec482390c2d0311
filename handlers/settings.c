#include "handlers/settings.h"

/* Paid-tier list prices (ai.google.dev/gemini-api/docs/pricing, prompts up to 200k tokens); thinking is billed as output.
 * Check them when a model or the price list changes: docs/gemini-quota.md. */
#define GW_GEMINI_PRICES_DEFAULT                                                                                                   \
    "gemini-3.6-flash=1.50/9.00/9.00,gemini-3.5-flash=1.50/9.00/9.00,gemini-flash-latest=1.50/9.00/9.00,"                          \
    "gemini-3.1-pro-preview=2.00/12.00/12.00,gemini-pro-latest=2.00/12.00/12.00"

/* Row builders. The _Generic term is 0 and only compiles when the field has the type the row's kind fills. */
#define OFF(f, T) (offsetof(gw_settings_t, f) + _Generic(((gw_settings_t *)0)->f, T : 0))
#define STR(n, d, f, h)                                                                                                            \
    {                                                                                                                              \
        .name = n, .type = GW_CFG_STRING, .def = d, .offset = OFF(f, char *), .help = h                                            \
    }
#define SECRET(n, f, h)                                                                                                            \
    {                                                                                                                              \
        .name = n, .type = GW_CFG_STRING, .secret = GW_CFG_SECRET, .offset = OFF(f, char *), .help = h                             \
    }
#define LNG(n, d, lo, hi, f, h)                                                                                                    \
    {                                                                                                                              \
        .name = n, .type = GW_CFG_LONG, .def = d, .min = lo, .max = hi, .offset = OFF(f, long), .help = h                          \
    }
#define ENM(n, d, ch, f, h)                                                                                                        \
    {                                                                                                                              \
        .name = n, .type = GW_CFG_ENUM, .def = d, .choices = ch, .offset = OFF(f, char *), .help = h                               \
    }

/* In --help order. */
static const gw_config_var_t vars[] = {
    {.name = "DATABASE_URL",
     .type = GW_CFG_STRING,
     .required = GW_SETTINGS_NEED_DB,
     .secret = GW_CFG_SECRET_URL,
     .offset = OFF(database_url, char *),
     .help = "libpq URI. On Supabase use the direct or session-mode pooler string (LISTEN does not work in transaction mode)"},
    SECRET("GEMINI_API_KEY", gemini_api_key, "Gemini API key (sent as x-goog-api-key)"),
    STR("GEMINI_BASE_URL", "https://generativelanguage.googleapis.com", gemini_base_url,
        "Gemini REST endpoint; tests point it at a local stand-in"),
    STR("GEMINI_FLASH_MODEL", "gemini-3.6-flash", gemini_flash_model, "model for standard mode"),
    STR("GEMINI_PRO_MODEL", "gemini-3.1-pro-preview", gemini_pro_model, "model for deep mode"),
    SECRET("WORKER_API_KEY", worker_api_key,
           "key for /worker/* (X-API-Key or Authorization: Bearer); unset = /worker/* answers 503"),
    STR("HOST", "0.0.0.0", host, "HTTP listen address"),
    LNG("PORT", "8000", 0, 65535, port, "HTTP port (0 = any free port)"),
    LNG("MAX_CONCURRENT_JOBS", "32", 1, 4096, max_concurrent_jobs,
        "jobs in flight per process; a job waiting on Gemini costs a few KB, subprocesses are bounded by MAX_SUBPROCESSES"),
    LNG("MAX_SUBPROCESSES", "0", -1, 4096, max_subprocesses,
        "yt-dlp/ffprobe/ffmpeg runs at once, shared by all jobs (FIFO); 0 = adaptive: as many as the CPUs the cgroup "
        "quota or affinity allows (at least 2), up to 2 x them while CPU stays idle with runs waiting; -1 = unlimited"),
    LNG("MAX_MEDIA_SUBPROCESSES", "0", -1, 4096, max_media_subprocesses,
        "long media runs at once (downloads, scene detection), counted within MAX_SUBPROCESSES and kept below it so "
        "short runs always find a slot: at most MAX_SUBPROCESSES - 1 (-1 = that); 0 = half of it (at least 1)"),
    LNG("POLL_INTERVAL_MS", "5000", 50, 3600000, poll_interval_ms,
        "fallback poll while LISTEN is healthy (250 ms while it is not)"),
    LNG("LEASE_SECONDS", "30", 2, 3600, lease_seconds, "a claimed job's lease; renewed every third of it"),
    LNG("JOB_RETENTION_DAYS", "0", 0, 36500, job_retention_days,
        "finished jobs older than this many days are deleted with their results (ledger rows stay); 0 = keep"),
    LNG("SHUTDOWN_GRACE_MS", "8000", 0, 600000, shutdown_grace_ms,
        "on SIGTERM, how long running jobs may finish before they are released (Cloud Run allows 10 s)"),
    LNG("PG_QUERY_TIMEOUT_MS", "15000", 1000, 600000, pg_query_timeout_ms,
        "a query unanswered this long means the connection is dead: reconnect"),
    STR("YTDLP_PATH", "yt-dlp", ytdlp_path, "yt-dlp executable (PATH lookup)"),
    STR("FFMPEG_PATH", "ffmpeg", ffmpeg_path, "ffmpeg executable"),
    STR("FFPROBE_PATH", "ffprobe", ffprobe_path, "ffprobe executable"),
    STR("ALLOWED_VIDEO_HOSTS",
        "youtube.com,www.youtube.com,m.youtube.com,music.youtube.com,youtu.be,youtube-nocookie.com,www.youtube-nocookie.com",
        allowed_video_hosts, "comma-separated hosts a video_url may name (SSRF guard)"),
    STR("TRANSCRIPT_LANGS", "", transcript_langs,
        "comma-separated caption languages to prefer (default: the video's own, then English)"),
    STR("WORK_DIR", "/tmp", work_dir, "scratch space for per-job directories, always cleaned"),
    STR("LOCAL_MEDIA_DIR", NULL, local_media_dir,
        "directory whose files a video_url may name (file:// URI or absolute path); unset = local files refused"),
    ENM("ANALYZER", "auto", "auto|gemini|local", analyzer,
        "gemini, local (extractive, no network) or auto (local only when GEMINI_API_KEY is unset)"),
    LNG("YTDLP_TIMEOUT_MS", "120000", 1000, 3600000, ytdlp_timeout_ms, "yt-dlp run limit"),
    STR("YTDLP_COOKIES_FILE", NULL, ytdlp_cookies_file,
        "Netscape cookie file for yt-dlp (--cookies), e.g. a read-only mounted secret; each run gets a private copy"),
    {.name = "YTDLP_PROXY",
     .type = GW_CFG_STRING,
     .secret = GW_CFG_SECRET_URL,
     .offset = OFF(ytdlp_proxy, char *),
     .help = "proxy URL for yt-dlp (--proxy), or a comma-separated list used in turn per run; credentials are redacted"},
    LNG("BOT_CHECK_THRESHOLD", "3", 0, 64, bot_check_threshold,
        "YouTube bot checks within BOT_CHECK_WINDOW_MS that open the breaker (no yt-dlp runs for YouTube); 0 = never"),
    LNG("BOT_CHECK_WINDOW_MS", "600000", 1000, 86400000, bot_check_window_ms, "window in which bot checks are counted"),
    LNG("BOT_CHECK_COOLDOWN_MS", "60000", 100, 86400000, bot_check_cooldown_ms,
        "first cool-down of the open breaker; doubles while the half-open probe is bot-checked again"),
    LNG("BOT_CHECK_COOLDOWN_MAX_MS", "1800000", 100, 86400000, bot_check_cooldown_max_ms, "longest cool-down"),
    ENM("BOT_CHECK_FALLBACK", "off", "off|gemini_url", bot_check_fallback,
        "gemini_url = a bot-checked standard job is analysed by Gemini from the public YouTube URL (no captions needed)"),
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
    LNG("MAX_CONCURRENT_DEEP_JOBS", "2", 0, 4096, max_concurrent_deep_jobs,
        "deep jobs in flight per process (0 = no cap); one more is claimed only while WORK_DIR's free space covers "
        "DOWNLOAD_MAX_BYTES beyond what deep jobs in flight reserve, otherwise it waits PENDING"),
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
    LNG("RESULT_REUSE_TTL_HOURS", "168", 0, 87600, result_reuse_ttl_hours,
        "a job whose video, mode, model, prompt version and language match an analysis completed this recently copies it "
        "(docs/reuse-and-language.md); 0 = off"),
    SECRET("SENTRY_DSN", sentry_dsn, "Sentry DSN; unset = no error reporting"),
    STR("SENTRY_ENVIRONMENT", "production", sentry_environment, "environment tag on Sentry events"),
    ENM("LOG_LEVEL", "info", "debug|info|warn|error", log_level, "log threshold"),
    ENM("LOG_FORMAT", "text", "text|json", log_format, "json = one JSON object per line (Cloud Logging)"),
    STR("WORKER_ID", NULL, worker_id, "name recorded in locked_by (default host:pid:random)"),
    LNG("HTTP_MAX_CONNECTIONS", "1024", 8, 1000000, http_max_connections,
        "open HTTP connections at most (lowered to leave RLIMIT_NOFILE room for jobs); when full the oldest idle one is "
        "closed, else the new one is refused"),
    LNG("MODEL_CHECK_INTERVAL_MS", "600000", 1000, 86400000, model_check_interval_ms,
        "how often the Gemini models are checked (models.get) while they pass; also the longest backoff while they fail"),
    LNG("MODEL_CHECK_RETRY_MS", "30000", 100, 3600000, model_check_retry_ms,
        "first recheck after a failed model check (claiming paused meanwhile); doubles up to MODEL_CHECK_INTERVAL_MS"),
    /* Gemini quota governor and prices (handlers/governor.c, docs/gemini-quota.md) */
    STR("GEMINI_RPM", "0", gemini_rpm,
        "requests per minute per model, shared by every worker through the database: N for every model, or "
        "model=N,... (0 = unlimited)"),
    STR("GEMINI_TPM", "0", gemini_tpm,
        "tokens (prompt + output + thinking) per minute per model, same syntax as GEMINI_RPM (0 = unlimited)"),
    LNG("GEMINI_RPM_WINDOW_MS", "60000", 100, 3600000, gemini_rpm_window_ms,
        "for tests only: the length of the GEMINI_RPM/GEMINI_TPM window (Gemini counts per minute)"),
    STR("GEMINI_PRICES", GW_GEMINI_PRICES_DEFAULT, gemini_prices,
        "USD per 1M tokens for the cost estimate: model=input/output/thinking,... (a model not listed has no cost)"),
};

const gw_config_table_t gw_settings_table = {vars, sizeof(vars) / sizeof(vars[0])};

int gw_settings_load(gw_settings_t *s, const char *dotenv_path, unsigned need, char *err, size_t errlen)
{
    return gw_config_load(&gw_settings_table, s, dotenv_path, need, err, errlen);
}

void gw_settings_free(gw_settings_t *s)
{
    gw_config_free(&gw_settings_table, s);
}

void gw_settings_print_help(FILE *out)
{
    gw_config_print_help(&gw_settings_table, out);
}

void gw_settings_print_markdown(FILE *out)
{
    gw_config_print_markdown(&gw_settings_table, out);
}
