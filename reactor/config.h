#ifndef GW_CONFIG_H
#define GW_CONFIG_H
/* Configuration: one declarative table (name, default, bounds, description) drives parsing from the environment
 * and a .env file (the real environment wins), bounds checks, --help and the README table. */
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

typedef struct st_gw_config_t {
    char *database_url;
    char *gemini_api_key;
    char *gemini_base_url;
    char *gemini_flash_model;
    char *gemini_pro_model;
    char *worker_api_key;
    char *host;
    long port;
    long max_concurrent_jobs;
    long poll_interval_ms;
    long lease_seconds;
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
    char *sentry_dsn;
    char *sentry_environment;
    char *log_level;
    char *log_format;
    char *worker_id;
    long http_max_connections;
    long model_check_interval_ms;
    long model_check_retry_ms;
} gw_config_t;

typedef enum en_gw_config_type_t {
    GW_CFG_STRING, /* free text */
    GW_CFG_LONG,   /* integer within [min, max] */
    GW_CFG_ENUM,   /* one of a '|'-separated list */
} gw_config_type_t;

typedef struct st_gw_config_var_t {
    const char *name;
    gw_config_type_t type;
    const char *def;     /* NULL = no default */
    long min, max;       /* GW_CFG_LONG */
    const char *choices; /* GW_CFG_ENUM */
    bool required;
    bool secret;   /* registered with the logger for redaction; never printed */
    size_t offset; /* into gw_config_t */
    const char *help;
} gw_config_var_t;

extern const gw_config_var_t gw_config_vars[];
extern const size_t gw_config_nvars;

/* Loads the configuration. `require_db` = whether DATABASE_URL must be set for this command.
 * On error writes one line naming the variable into err and returns -1. */
int gw_config_load(gw_config_t *cfg, const char *dotenv_path, bool require_db, char *err, size_t errlen);
void gw_config_free(gw_config_t *cfg);
void gw_config_print_help(FILE *out);
/* Markdown table for the README. */
void gw_config_print_markdown(FILE *out);

/* .env parsing, exposed for tests and fuzzing: calls cb for each KEY=VALUE (export prefix, comments, single and
 * double quotes with \n \" \\ escapes in double quotes; no variable expansion). Returns the number of lines rejected. */
int gw_dotenv_parse(const char *buf, size_t len, void (*cb)(const char *key, const char *value, void *data), void *data);

#endif
