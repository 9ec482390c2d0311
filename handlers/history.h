#ifndef GW_HISTORY_H
#define GW_HISTORY_H
/* The last hour in one-minute buckets, for the built-in dashboard's charts (GET /worker/history): jobs this process
 * finished per minute by outcome, and the queue depth sampled by the maintenance timer. A ring of 60 buckets, each
 * tagged with its minute (unix seconds / 60) so a bucket from an earlier hour reads as empty. Loop thread only. */
#include <jansson.h>
#include <stdint.h>

#define GW_HISTORY_MINUTES 60

typedef enum en_gw_history_outcome_t {
    GW_HISTORY_COMPLETED, /* stored a result */
    GW_HISTORY_FAILED,    /* FAILED for good (refunded) */
    GW_HISTORY_RETRIED,   /* a transient failure, back to PENDING */
    GW_HISTORY_CANCELLED, /* cancelled while this worker held it */
    GW_HISTORY_NOUTCOMES
} gw_history_outcome_t;

typedef struct st_gw_history_bucket_t {
    int64_t minute; /* unix time / 60; 0 = never written */
    uint32_t jobs[GW_HISTORY_NOUTCOMES];
    int64_t queue_depth; /* the last sample in this minute; -1 = none */
} gw_history_bucket_t;

typedef struct st_gw_history_t {
    gw_history_bucket_t b[GW_HISTORY_MINUTES];
} gw_history_t;

/* The process-wide ring the queue feeds and the API serves. */
gw_history_t *gw_history(void);

/* now_s: unix seconds (the callers pass time(NULL); tests pass their own clock). */
void gw_history_job(gw_history_t *h, int64_t now_s, gw_history_outcome_t outcome);
/* "completed", "failed", "retried", "cancelled"; anything else is ignored. */
void gw_history_job_named(gw_history_t *h, int64_t now_s, const char *outcome);
void gw_history_queue_depth(gw_history_t *h, int64_t now_s, int64_t depth);
/* {"minute_seconds":60,"now":S,"minutes":[{"t":start of minute,"completed":n,"failed":n,"retried":n,"cancelled":n,
 * "queue_depth":n|null} x 60, oldest first, the current minute last]} */
json_t *gw_history_json(const gw_history_t *h, int64_t now_s);

#endif
