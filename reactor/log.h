#ifndef GW_LOG_H
#define GW_LOG_H
/* Logging: one line per event on stderr, JSON lines (Cloud Logging) or readable text.
 * Registered secrets are replaced by "[REDACTED]" in every line before it is written. */
#include <stdbool.h>

typedef enum en_gw_log_level_t {
    GW_LOG_DEBUG,
    GW_LOG_INFO,
    GW_LOG_WARN,
    GW_LOG_ERROR,
} gw_log_level_t;

/* Parses "debug"/"info"/"warn"/"error"; returns -1 when unknown. */
int gw_log_parse_level(const char *s);
void gw_log_init(gw_log_level_t level, bool json);
/* Registers a value that must never appear in logs (API keys, passwords, upload URLs). Copied. */
void gw_log_secret(const char *value);
/* Redirects output (tests); NULL restores stderr. */
void gw_log_set_sink(void (*sink)(const char *line, void *data), void *data);
/* Called with every ERROR line's (redacted) message, e.g. to report it to Sentry; not re-entered from itself. */
void gw_log_set_error_hook(void (*hook)(const char *job_id, const char *message, void *data), void *data);

/* job_id and stage may be NULL; duration_ms < 0 means "none". */
void gw_log_event(gw_log_level_t level, const char *job_id, const char *stage, double duration_ms, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

#define gw_debug(...) gw_log_event(GW_LOG_DEBUG, NULL, NULL, -1, __VA_ARGS__)
#define gw_info(...) gw_log_event(GW_LOG_INFO, NULL, NULL, -1, __VA_ARGS__)
#define gw_warn(...) gw_log_event(GW_LOG_WARN, NULL, NULL, -1, __VA_ARGS__)
#define gw_error(...) gw_log_event(GW_LOG_ERROR, NULL, NULL, -1, __VA_ARGS__)
#define gw_job_log(level, job_id, ...) gw_log_event(level, job_id, NULL, -1, __VA_ARGS__)

/* Frees registered secrets (clean exit under LeakSanitizer). */
void gw_log_dispose(void);

#endif
