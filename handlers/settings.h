#ifndef GW_SETTINGS_H
#define GW_SETTINGS_H
/* The daemon's configuration: every variable it reads (database, HTTP, queue, videos, Gemini, deep mode, operations)
 * declared once in the table in handlers/settings.c and parsed by the engine in reactor/config.h. To add a variable:
 * a field here and a row there (docs/architecture-config.md). */
#include "reactor/config.h"
#include <stdbool.h>
#include <stdio.h>

typedef struct st_gw_settings_t {
    char *database_url;
    char *gemini_api_key;
    char *gemini_base_url;
    char *gemini_flash_model;
    char *gemini_pro_model;
    char *worker_api_key;
    char *host;
    long port;
    long max_concurrent_jobs;
    long max_subprocesses;
    long max_media_subprocesses;
    long max_concurrent_deep_jobs;
    long poll_interval_ms;
    long lease_seconds;
    long job_retention_days;
    long shutdown_grace_ms;
    long pg_query_timeout_ms;
    char *ytdlp_path;
    char *ffmpeg_path;
    char *ffprobe_path;
    char *allowed_video_hosts;
    char *transcript_langs;
    char *work_dir;
    char *local_media_dir;
    char *analyzer;
    long ytdlp_timeout_ms;
    char *ytdlp_cookies_file; /* docs/youtube-datacenter.md */
    char *ytdlp_proxy;
    long bot_check_threshold;
    long bot_check_window_ms;
    long bot_check_cooldown_ms;
    long bot_check_cooldown_max_ms;
    char *bot_check_fallback;
    long gemini_timeout_ms;
    long gemini_max_retries;
    long gemini_chunk_chars;
    char *thinking_level;
    long deep_max_height;
    long download_max_bytes;
    long download_timeout_ms;
    char *gemini_media_resolution;
    char *deep_video_source;
    long upload_chunk_bytes;
    long upload_max_retries;
    long upload_timeout_ms;
    long file_active_timeout_ms;
    long deep_segment_seconds;
    long result_reuse_ttl_hours;
    char *sentry_dsn;
    char *sentry_environment;
    char *log_level;
    char *log_format;
    char *worker_id;
    long http_max_connections;
    long model_check_interval_ms;
    long model_check_retry_ms;
    /* Gemini quota governor and prices (handlers/governor.c) */
    char *gemini_rpm;
    char *gemini_tpm;
    long gemini_rpm_window_ms;
    char *gemini_prices;
} gw_settings_t;

/* The name the handlers used before the engine/settings split; `sed s/gw_config_t/gw_settings_t/` retires it. */
typedef gw_settings_t gw_config_t;

/* What a command needs, for the table's `required` masks: serve, migrate, enqueue and status open the database;
 * analyze does not. */
#define GW_SETTINGS_NEED_DB 0x1u

extern const gw_config_table_t gw_settings_table;

/* gw_config_load/free/print_* with the daemon's table. */
int gw_settings_load(gw_settings_t *s, const char *dotenv_path, unsigned need, char *err, size_t errlen);
void gw_settings_free(gw_settings_t *s);
void gw_settings_print_help(FILE *out);
void gw_settings_print_markdown(FILE *out);

#endif
