/* The queue's upkeep, run from gw_queue_tick on the maintenance timer: lease heartbeats of held jobs, the reaper of
 * expired leases, retention (JOB_RETENTION_DAYS) and the cached queue-depth gauges. */
#include "handlers/history.h"
#include "handlers/metrics.h"
#include "handlers/queue_priv.h"
#include "reactor/log.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char *gw_queue_ids_literal(gw_queue_t *q, bool include_finishing)
{
    size_t cap = q->njobs * 38 + 3, len = 0;
    char *s = malloc(cap);
    if (s == NULL)
        abort();
    s[len++] = '{';
    for (gw_job_t *j = q->jobs; j != NULL; j = j->next) {
        if (!include_finishing && j->state != GW_JOB_RUNNING)
            continue;
        if (len > 1)
            s[len++] = ',';
        memcpy(s + len, j->id, 36);
        len += 36;
    }
    s[len++] = '}';
    s[len] = '\0';
    return s;
}

static void on_heartbeat(PGresult *res, const char *error, void *data)
{
    gw_queue_t *q = data;
    q->heartbeat_inflight = false;
    if (!gw_queue_result_ok(res, PGRES_TUPLES_OK)) {
        gw_warn("heartbeat failed: %s", error ? error : PQresultErrorMessage(res));
        return;
    }
    /* a running job missing from the answer was cancelled or rescued elsewhere: stop working on it */
    for (gw_job_t *j = q->jobs, *next; j != NULL; j = next) {
        next = j->next;
        /* a job claimed after the id list was taken is not in the answer: judge it next time */
        if (j->state == GW_JOB_RUNNING && j->claimed_at_ms < q->heartbeat_sent_at && !gw_queue_res_has_id(res, j->id)) {
            q->stats.lost++;
            gw_queue_job_ended(j, "lost");
            gw_job_log(GW_LOG_WARN, j->id, "lease lost; aborting");
            gw_queue_job_abort(j);
        }
    }
}

void gw_queue_heartbeat(gw_queue_t *q)
{
    if (q->heartbeat_inflight || q->njobs == 0 || !gw_pg_connected(q->pg))
        return;
    char *ids = gw_queue_ids_literal(q, true), lease[16];
    snprintf(lease, sizeof(lease), "%u", q->lease_seconds);
    const char *params[] = {ids, q->worker_id, lease};
    q->heartbeat_inflight = true;
    q->heartbeat_sent_at = uv_now(q->loop);
    gw_pg_query(q->pg, "gw_heartbeat", "SELECT glint_heartbeat($1::uuid[], $2, $3::int)", 3, params, 0, on_heartbeat, q);
    free(ids);
}

static void on_reaped(PGresult *res, const char *error, void *data)
{
    gw_queue_t *q = data;
    q->reap_inflight = false;
    if (!gw_queue_result_ok(res, PGRES_TUPLES_OK)) {
        gw_warn("reaper failed: %s", error ? error : PQresultErrorMessage(res));
        return;
    }
    for (int i = 0; i < PQntuples(res); i++) {
        q->stats.reaped++;
        gw_job_log(GW_LOG_WARN, PQgetvalue(res, i, 0), "rescued an expired lease: now %s", PQgetvalue(res, i, 1));
    }
    if (PQntuples(res) > 0)
        q->next_poll_at = uv_now(q->loop) + 1000; /* rescued jobs wait ~1 s of backoff */
}

void gw_queue_reap(gw_queue_t *q)
{
    if (q->reap_inflight || !gw_pg_connected(q->pg))
        return;
    q->reap_inflight = true;
    gw_pg_query(q->pg, "gw_reap", "SELECT id, new_status FROM glint_reap_expired(100)", 0, NULL, 0, on_reaped, q);
}

/* Retention: one batch per call; glint_purge_jobs takes an advisory lock, so of all workers one deletes at a time
 * (the others get 0 and try again next round). A full batch means more is waiting: the next one follows shortly. */
static void on_purged(PGresult *res, const char *error, void *data)
{
    gw_queue_t *q = data;
    q->purge_inflight = false;
    if (!gw_queue_result_ok(res, PGRES_TUPLES_OK) || PQntuples(res) != 1) {
        gw_warn("retention failed: %s", error ? error : PQresultErrorMessage(res));
        return;
    }
    long n = atol(PQgetvalue(res, 0, 0));
    q->stats.deleted += (uint64_t)(n > 0 ? n : 0);
    if (n > 0)
        gw_info("retention: deleted %ld finished job(s) older than %u day(s)", n, q->retention_days);
    if (n >= PURGE_BATCH)
        q->next_purge_at = uv_now(q->loop) + PURGE_AGAIN_MS;
}

void gw_queue_purge(gw_queue_t *q)
{
    if (q->retention_days == 0 || q->purge_inflight || !gw_pg_connected(q->pg))
        return;
    char days[16], sql[64];
    snprintf(days, sizeof(days), "%u", q->retention_days);
    snprintf(sql, sizeof(sql), "SELECT glint_purge_jobs($1::int, %d)", PURGE_BATCH);
    const char *params[] = {days};
    q->purge_inflight = true;
    gw_pg_query(q->pg, "gw_purge", sql, 1, params, 0, on_purged, q);
}

static void on_depth(PGresult *res, const char *error, void *data)
{
    gw_queue_t *q = data;
    q->depth_inflight = false;
    if (gw_queue_result_ok(res, PGRES_TUPLES_OK) && PQntuples(res) == 1) {
        q->stats.queue_depth = atoll(PQgetvalue(res, 0, 0));
        gw_history_queue_depth(gw_history(), (int64_t)time(NULL), q->stats.queue_depth);
        q->stats.oldest_pending_s = atof(PQgetvalue(res, 0, 1));
    }
}

void gw_queue_refresh_depth(gw_queue_t *q)
{
    if (q->depth_inflight || !gw_pg_connected(q->pg))
        return;
    q->depth_inflight = true;
    gw_pg_query(q->pg, "gw_depth",
                "SELECT count(*), coalesce(extract(epoch FROM clock_timestamp() - min(created_at)), 0)"
                " FROM analysis_jobs WHERE status = 'PENDING'",
                0, NULL, 0, on_depth, q);
}
