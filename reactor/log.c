#include "reactor/log.h"
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#define GW_LOG_MAX_SECRETS 16

static struct {
    gw_log_level_t level;
    bool json;
    char *secrets[GW_LOG_MAX_SECRETS];
    size_t nsecrets;
    void (*sink)(const char *, void *);
    void *sink_data;
    void (*hook)(const char *, const char *, void *);
    void *hook_data;
    bool in_hook;
} logger = {GW_LOG_INFO, false, {NULL}, 0, NULL, NULL, NULL, NULL, false};

static const char *level_names[] = {"DEBUG", "INFO", "WARNING", "ERROR"};

int gw_log_parse_level(const char *s)
{
    static const char *names[] = {"debug", "info", "warn", "error"};
    for (int i = 0; i < 4; i++)
        if (strcasecmp(s, names[i]) == 0)
            return i;
    if (strcasecmp(s, "warning") == 0)
        return GW_LOG_WARN;
    return -1;
}

void gw_log_init(gw_log_level_t level, bool json)
{
    logger.level = level;
    logger.json = json;
}

void gw_log_secret(const char *value)
{
    /* Short values would redact ordinary words; 4 chars is the shortest plausible secret. */
    if (value == NULL || strlen(value) < 4 || logger.nsecrets == GW_LOG_MAX_SECRETS)
        return;
    for (size_t i = 0; i < logger.nsecrets; i++)
        if (strcmp(logger.secrets[i], value) == 0)
            return;
    logger.secrets[logger.nsecrets++] = strdup(value);
}

void gw_log_set_sink(void (*sink)(const char *, void *), void *data)
{
    logger.sink = sink;
    logger.sink_data = data;
}

void gw_log_set_error_hook(void (*hook)(const char *, const char *, void *), void *data)
{
    logger.hook = hook;
    logger.hook_data = data;
}

void gw_log_dispose(void)
{
    for (size_t i = 0; i < logger.nsecrets; i++)
        free(logger.secrets[i]);
    logger.nsecrets = 0;
}

/* Replaces every registered secret in buf (in place, never growing: "[REDACTED]" is cut to fit). */
static void redact(char *buf)
{
    static const char mask[] = "[REDACTED]";
    for (size_t i = 0; i < logger.nsecrets; i++) {
        const char *s = logger.secrets[i];
        size_t n = strlen(s);
        char *p;
        while ((p = strstr(buf, s)) != NULL) {
            size_t m = n < sizeof(mask) - 1 ? n : sizeof(mask) - 1;
            memcpy(p, mask, m);
            memmove(p + m, p + n, strlen(p + n) + 1);
        }
    }
}

static void format_time(char *out, size_t len)
{
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    size_t n = strftime(out, len, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, len - n, ".%06ldZ", (long)tv.tv_usec);
}

static void emit(const char *line)
{
    if (logger.sink != NULL) {
        logger.sink(line, logger.sink_data);
        return;
    }
    fputs(line, stderr);
    fputc('\n', stderr);
}

static char *format_json(gw_log_level_t level, const char *ts, const char *job_id, const char *stage, double duration_ms,
                         const char *msg)
{
    json_t *o = json_object();
    json_object_set_new(o, "severity", json_string(level_names[level]));
    json_object_set_new(o, "time", json_string(ts));
    json_object_set_new(o, "message", json_string(msg));
    if (job_id != NULL)
        json_object_set_new(o, "job_id", json_string(job_id));
    if (stage != NULL)
        json_object_set_new(o, "stage", json_string(stage));
    if (duration_ms >= 0)
        json_object_set_new(o, "duration_ms", json_real(duration_ms));
    char *s = json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII);
    json_decref(o);
    return s;
}

static char *format_text(gw_log_level_t level, const char *ts, const char *job_id, const char *stage, double duration_ms,
                         const char *msg)
{
    char extra[160] = "";
    size_t n = 0;
    if (job_id != NULL)
        n += snprintf(extra + n, sizeof(extra) - n, " job=%s", job_id);
    if (stage != NULL && n < sizeof(extra))
        n += snprintf(extra + n, sizeof(extra) - n, " stage=%s", stage);
    if (duration_ms >= 0 && n < sizeof(extra))
        snprintf(extra + n, sizeof(extra) - n, " duration_ms=%.1f", duration_ms);
    size_t len = strlen(ts) + strlen(msg) + strlen(extra) + 32;
    char *s = malloc(len);
    if (s == NULL)
        abort();
    snprintf(s, len, "%s %-7s %s%s", ts, level_names[level], msg, extra);
    return s;
}

void gw_log_event(gw_log_level_t level, const char *job_id, const char *stage, double duration_ms, const char *fmt, ...)
{
    if (level < logger.level)
        return;
    char msg[2048], ts[40];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    redact(msg);
    format_time(ts, sizeof(ts));
    char *line = logger.json ? format_json(level, ts, job_id, stage, duration_ms, msg)
                             : format_text(level, ts, job_id, stage, duration_ms, msg);
    if (line == NULL)
        abort();
    redact(line); /* the job id or stage could carry nothing secret, but the JSON escaping could reshape msg */
    emit(line);
    free(line);
    if (level >= GW_LOG_ERROR && logger.hook != NULL && !logger.in_hook) {
        logger.in_hook = true;
        logger.hook(job_id, msg, logger.hook_data);
        logger.in_hook = false;
    }
}
