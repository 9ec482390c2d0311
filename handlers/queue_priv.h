#ifndef GW_QUEUE_PRIV_H
#define GW_QUEUE_PRIV_H
/* The queue's own state, shared by handlers/queue.c (claims and outcomes) and handlers/queue_maint.c (heartbeat,
 * reaper, retention, queue depth). Not an interface: nothing else includes it. */
#include "handlers/queue.h"
#include <libpq-fe.h>

#define DEPTH_REFRESH_MS 5000
#define PURGE_BATCH 500         /* jobs per retention statement: short transactions, short locks */
#define PURGE_INTERVAL_MS 60000 /* between retention rounds once nothing old is left */
#define PURGE_AGAIN_MS 200      /* between batches while a backlog is being deleted */

typedef enum en_claim_reason_t {
    CLAIM_NOTIFY,  /* a glint_jobs notification */
    CLAIM_CONNECT, /* catch-up after (re)connect */
    CLAIM_POLL,    /* fallback poll */
    CLAIM_REFILL,  /* the last batch was full, or a slot freed */
} claim_reason_t;

typedef struct st_gw_joblist_t {
    gw_job_t **v;
    size_t n, cap;
} gw_joblist_t;

struct st_gw_queue_t {
    uv_loop_t *loop;
    gw_pg_t *pg;
    char *worker_id;
    unsigned max_jobs, lease_seconds;
    unsigned max_deep_jobs;
    char *work_dir;
    uint64_t deep_reserve_bytes;
    uint64_t poll_interval_ms;
    gw_pipeline_t pipeline;
    gw_job_t *jobs; /* held jobs, doubly linked */
    size_t njobs;
    bool claiming, claim_again, stopped;
    uint64_t hold_until; /* gw_queue_hold_claims: loop time before which nothing is claimed */
    bool paused;         /* gw_queue_pause_claiming */
    claim_reason_t claim_reason;
    uint64_t next_poll_at, next_heartbeat_at, next_reap_at;
    uint64_t next_depth_at, next_purge_at;
    unsigned retention_days;
    bool heartbeat_inflight, reap_inflight, depth_inflight, purge_inflight;
    uint64_t heartbeat_sent_at; /* loop time the in-flight heartbeat's id list was taken */
    json_t *batch_rows;         /* completion rows waiting for the next write */
    gw_joblist_t batch;         /* their jobs */
    gw_joblist_t sent;          /* jobs whose completion write is in flight */
    size_t writes_inflight;
    gw_queue_stats_t stats;
    gw_sentry_t *sentry;
    gw_queue_local_cb local_cb; /* database-less mode (pg == NULL) */
    void *local_data;
};

/* queue.c */
bool gw_queue_result_ok(PGresult *res, ExecStatusType want);
void gw_queue_job_ended(const gw_job_t *job, const char *outcome);
void gw_queue_job_abort(gw_job_t *job);
bool gw_queue_res_has_id(PGresult *res, const char *id);
/* queue_maint.c */
char *gw_queue_ids_literal(gw_queue_t *q, bool include_finishing); /* '{id,…}' of the held jobs, for an array parameter */
/* queue_maint.c, run from gw_queue_tick */
void gw_queue_heartbeat(gw_queue_t *q);
void gw_queue_reap(gw_queue_t *q);
void gw_queue_purge(gw_queue_t *q);
void gw_queue_refresh_depth(gw_queue_t *q);

#endif
