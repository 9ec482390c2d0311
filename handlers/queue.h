#ifndef GW_QUEUE_H
#define GW_QUEUE_H
/* The job queue on PostgreSQL: batched claims (FOR UPDATE SKIP LOCKED), leases renewed in one statement per
 * heartbeat, rescue of expired leases, and the terminal transitions (complete / fail + refund / retry / release).
 * A pipeline (the real one, or a test one) does the work of each claimed job and reports one outcome. */
#include "reactor/pg.h"
#include "reactor/sentry.h"
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

typedef struct st_gw_queue_t gw_queue_t;
typedef struct st_gw_job_t gw_job_t;

typedef enum en_gw_job_state_t {
    GW_JOB_RUNNING,   /* the pipeline is working on it */
    GW_JOB_ABORTING,  /* abort requested (cancel, lost lease, shutdown); waiting for gw_job_aborted */
    GW_JOB_FINISHING, /* outcome reported; its database write is in flight */
} gw_job_state_t;

struct st_gw_job_t {
    char id[37];
    char user_id[37];
    char *video_url;
    bool deep;
    int attempts, max_attempts, credits_charged;
    uint64_t claimed_at_ms; /* loop time */
    char stage[24];         /* last gw_job_set_stage */
    gw_job_state_t state;
    gw_queue_t *queue;
    void *pipeline_data; /* owned by the pipeline */
    /* deep: WORK_DIR bytes reserved and not yet written (the download limit at claim; 0 once the download is on disk,
     * where statvfs sees it, or when the job downloads nothing). The pipeline lowers it. */
    uint64_t disk_reserved;
    /* queue-private */
    gw_job_t *next, *prev;
    bool release_on_abort;
    json_t *outcome;
};

typedef struct st_gw_pipeline_t {
    /* Begins the work; the pipeline later reports exactly one of gw_job_complete / gw_job_fail, or — after an
     * abort — gw_job_aborted. May report synchronously. */
    void (*start)(gw_job_t *job, void *ctx);
    /* Stops the work at once (kill subprocesses, cancel transfers); then gw_job_aborted (maybe synchronously). */
    void (*abort)(gw_job_t *job, void *ctx);
    void *ctx;
} gw_pipeline_t;

typedef struct st_gw_queue_opts_t {
    const char *worker_id;
    unsigned max_jobs;
    unsigned lease_seconds;
    uint64_t poll_interval_ms;
    gw_sentry_t *sentry; /* failed jobs are reported here; may be NULL */
    /* deep-job budget: at most max_deep_jobs in flight (0 = no cap), and one more only while work_dir's free space
     * (statvfs) minus what deep jobs in flight still reserve covers deep_reserve_bytes; otherwise deep jobs stay PENDING
     * and standard ones are still claimed. work_dir NULL or deep_reserve_bytes 0 = no disk check. */
    unsigned max_deep_jobs;
    const char *work_dir;
    uint64_t deep_reserve_bytes;
    unsigned retention_days; /* JOB_RETENTION_DAYS: finished jobs older than this are deleted; 0 = keep */
} gw_queue_opts_t;

typedef struct st_gw_queue_stats_t {
    uint64_t claimed, completed, failed, retried, cancelled, released, lost, reaped;
    uint64_t deferred;        /* back to PENDING, attempt not counted (gw_job_defer) */
    uint64_t claimed_by_poll; /* jobs a fallback poll found (a notification was missed) */
    uint64_t claimed_standard, claimed_deep;
    uint64_t completed_standard, completed_deep, failed_standard, failed_deep;
    uint64_t retried_standard, retried_deep, cancelled_standard, cancelled_deep;
    uint64_t notifications;
    uint64_t deleted;        /* finished jobs deleted by retention (by this worker) */
    int64_t queue_depth;     /* PENDING jobs, refreshed every few seconds (never a query per scrape) */
    double oldest_pending_s; /* age of the oldest PENDING job */
} gw_queue_stats_t;

gw_queue_t *gw_queue_create(uv_loop_t *loop, gw_pg_t *pg, const gw_queue_opts_t *opts, const gw_pipeline_t *pipeline);
void gw_queue_free(gw_queue_t *q); /* after everything drained */

/* A queue without a database (pg NULL in gw_queue_create), for `glint-worker analyze`: gw_queue_run_local hands one job
 * to the same pipeline, and its outcome goes to cb instead of PostgreSQL (no retries, no credits). result is borrowed;
 * on failure it is NULL and code/message say why. */
typedef void (*gw_queue_local_cb)(const gw_job_t *job, json_t *result, const char *code, const char *message, void *data);
void gw_queue_run_local(gw_queue_t *q, const char *video_url, bool deep, gw_queue_local_cb cb, void *data);

/* Events from the connection. */
void gw_queue_on_connect(gw_queue_t *q);
void gw_queue_on_notify(gw_queue_t *q, const char *channel, const char *payload);
/* Maintenance: heartbeat, reaper, retention, fallback poll; call about every 250 ms. */
void gw_queue_tick(gw_queue_t *q);

/* Shutdown, staged: stop claiming; later release what still runs (back to PENDING, attempt not counted). */
void gw_queue_stop_claiming(gw_queue_t *q);
void gw_queue_release_all(gw_queue_t *q);
/* Claims nothing for ms (extends, never shortens, a hold in force): Gemini refused the worker's key during a job, so
 * every claim would fail the same way. Held jobs, heartbeats and the reaper go on. */
void gw_queue_hold_claims(gw_queue_t *q, uint64_t ms);
bool gw_queue_claims_held(const gw_queue_t *q);
/* A configuration problem (the model check failed): claim nothing until resumed; held jobs, heartbeats and the reaper go
 * on. Resuming claims at once (a sweep, like after a reconnect). */
void gw_queue_pause_claiming(gw_queue_t *q, bool paused);
/* Jobs held, in any state. */
size_t gw_queue_active(const gw_queue_t *q);
/* Outcome writes not yet acknowledged (shutdown waits for them). */
size_t gw_queue_writes_inflight(const gw_queue_t *q);
const gw_queue_stats_t *gw_queue_stats(const gw_queue_t *q);
const char *gw_queue_worker_id(const gw_queue_t *q);
gw_pg_t *gw_queue_pg(const gw_queue_t *q);
/* Finds a held job (for diagnostics); NULL if not held here. */
gw_job_t *gw_queue_find(gw_queue_t *q, const char *id);

/* Outcomes, each reported once by the pipeline. result and timings are stolen. */
typedef struct st_gw_usage_t {
    long prompt_tokens, output_tokens, thoughts_tokens; /* < 0 = unknown */
} gw_usage_t;
void gw_job_complete(gw_job_t *job, json_t *result, const char *model, const gw_usage_t *usage, json_t *timings);
/* retry_ms < 0: permanent (FAILED + refund). Otherwise back to PENDING after retry_ms while attempts remain. */
void gw_job_fail(gw_job_t *job, const char *code, const char *message, int64_t retry_ms);
void gw_job_aborted(gw_job_t *job);
/* Back to PENDING after delay_ms with the attempt not counted (glint_defer_job): the job cannot run now for a reason
 * outside it (the yt-dlp bot-check breaker is open, Gemini refused the worker's key). It neither burns an attempt nor
 * fails; code/message are stored so a user sees why it waits. Without a database (analyze) it fails with code. */
void gw_job_defer(gw_job_t *job, const char *code, const char *message, int64_t delay_ms);
/* The pipeline's own database call already settled the job (handlers/reuse.c: completed from another job's analysis, or
 * back to PENDING to wait for one): the queue forgets it, counting it as completed when it is. */
void gw_job_settled(gw_job_t *job, bool completed);
/* Progress shown by /worker/jobs/{id}; fire-and-forget. */
void gw_job_set_stage(gw_job_t *job, const char *stage);

/* Exponential backoff with full jitter for transient failures (attempt counts from 1), at least floor_ms. */
int64_t gw_job_retry_delay_ms(const gw_job_t *job, int64_t floor_ms);

#endif
