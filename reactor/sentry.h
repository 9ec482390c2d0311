#ifndef GW_SENTRY_H
#define GW_SENTRY_H
/* Error reporting to Sentry: events as envelopes (https://develop.sentry.dev/sdk/envelopes/) POSTed over the loop's curl
 * multi. Never blocks: events wait in a bounded queue (a few in flight at a time) and are dropped, and counted, when it
 * is full. The DSN's key goes only into the X-Sentry-Auth header and the envelope; it is never logged. */
#include "reactor/fetch.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

typedef struct st_gw_sentry_t gw_sentry_t;

/* {scheme}://{public_key}[:{secret}]@{host}[:{port}]/{path/}{project_id} */
typedef struct st_gw_sentry_dsn_t {
    char *scheme, *public_key, *host; /* host includes ":port" when given */
    char *path;                       /* "" or "/prefix" (no trailing slash) */
    char *project_id;
} gw_sentry_dsn_t;

/* Returns 0, or -1 (out untouched) when the DSN is malformed. */
int gw_sentry_parse_dsn(const char *dsn, gw_sentry_dsn_t *out);
void gw_sentry_dsn_free(gw_sentry_dsn_t *d);
/* {scheme}://{host}{path}/api/{project_id}/envelope/ (malloc'd) */
char *gw_sentry_envelope_url(const gw_sentry_dsn_t *d);

typedef struct st_gw_sentry_opts_t {
    const char *release;     /* e.g. "glint-worker@0.1.0" */
    const char *environment; /* NULL = "production" */
    const char *server_name; /* worker id; may be NULL */
    size_t max_queued;       /* events waiting to be sent; 0 = 32 */
    unsigned max_inflight;   /* concurrent POSTs; 0 = 2 */
} gw_sentry_opts_t;

typedef struct st_gw_sentry_stats_t {
    uint64_t sent;    /* accepted by Sentry (2xx) */
    uint64_t failed;  /* sent and not accepted: transport error or non-2xx answer (429 included) */
    uint64_t dropped; /* never sent: queue full, rate-limited, shutting down */
    /* every event lost, by reason */
    uint64_t dropped_queue_full;   /* the bounded queue was full */
    uint64_t dropped_rate_limited; /* Sentry asked us to back off (429, X-Sentry-Rate-Limits), or answered 429 to it */
    uint64_t dropped_shutdown;     /* still queued at exit */
    uint64_t failed_network;       /* no HTTP answer */
    uint64_t failed_status;        /* any other non-2xx answer */
} gw_sentry_stats_t;

/* Rate limits (https://develop.sentry.dev/sdk/rate-limiting/). Honoured on every answer: X-Sentry-Rate-Limits wins;
 * without it a 429's Retry-After (60 s when absent or unreadable) limits everything. While limited, events are dropped
 * (counted), never queued. We send only error events, so only the "error" and "default" categories (or all) matter. */
/* Seconds X-Sentry-Rate-Limits ("retry_after:categories:scope:reason:namespaces, …") forbids error events; 0 = none. */
double gw_sentry_rate_limit_seconds(const char *header);
/* Retry-After as delay-seconds or an HTTP date (relative to now); 60 when NULL or unreadable. */
double gw_sentry_retry_after_seconds(const char *value, time_t now);
/* True while a rate limit forbids sending (s may be NULL: false). */
bool gw_sentry_limited(const gw_sentry_t *s);

/* NULL when the DSN is malformed (err tells why, without the key). */
gw_sentry_t *gw_sentry_create(gw_fetcher_t *fetcher, const char *dsn, const gw_sentry_opts_t *opts, char *err, size_t errlen);
/* Queues one event. level: "fatal", "error", "warning", "info". tags: key, value, key, value, …, NULL (values may be
 * NULL: skipped). fingerprint (may be NULL: Sentry's default grouping) is the event's whole fingerprint, ["<it>"]: one
 * issue per error code. s may be NULL (no-op). */
void gw_sentry_capture(gw_sentry_t *s, const char *level, const char *message, const char *const *tags, const char *fingerprint);
/* Builds the envelope text for one event (exposed for unit tests). */
char *gw_sentry_build_envelope(const gw_sentry_dsn_t *d, const gw_sentry_opts_t *o, const char *event_id, const char *level,
                               const char *message, const char *const *tags, const char *fingerprint);
/* Crash reports. On SIGSEGV, SIGBUS, SIGILL, SIGFPE or SIGABRT the handler writes a "fatal" envelope, built in advance,
 * to dir/glint-crash-PID.envelope using only async-signal-safe calls, then lets the signal kill the process; the next
 * start (same dir: a restarted container keeps its /tmp) sends what it finds there. Returns 0 or -1 (logged). */
int gw_sentry_install_crash_handler(gw_sentry_t *s, const char *dir);
/* Queues the crash envelopes left in dir by earlier processes and removes them; returns how many. */
size_t gw_sentry_send_crash_reports(gw_sentry_t *s, const char *dir);
/* Events queued or in flight (shutdown waits a little for them). */
size_t gw_sentry_pending(const gw_sentry_t *s);
const gw_sentry_stats_t *gw_sentry_stats(const gw_sentry_t *s);
/* Drops what is queued, cancels what is in flight, restores the default crash signal handlers, frees. Before
 * gw_fetcher_close. NULL is ignored. */
void gw_sentry_free(gw_sentry_t *s);

#endif
