#include "handlers/queue_priv.h"
#include "handlers/errors.h"
#include "handlers/history.h"
#include "handlers/metrics.h"
#include "reactor/log.h"
#include "reactor/text.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <time.h>

#define POLL_WHILE_DOWN_MS 250

static void claim(gw_queue_t *q, claim_reason_t reason);

void gw_queue_job_ended(const gw_job_t *job, const char *outcome)
{
    gw_metrics_job_finished(job->deep, outcome, (double)(uv_now(job->queue->loop) - job->claimed_at_ms) / 1000.0);
    if (strcmp(outcome, "failed") == 0 || strcmp(outcome, "retried") == 0)
        gw_metrics_job_error(json_string_value(json_object_get(job->outcome, "code")), outcome[0] == 'f');
}
static void flush_completions(gw_queue_t *q);
static void local_outcome(gw_job_t *job, json_t *result, const char *code, const char *message);

bool gw_queue_result_ok(PGresult *res, ExecStatusType want)
{
    return res != NULL && PQresultStatus(res) == want;
}

/* ---- held jobs ---- */

static void job_link(gw_queue_t *q, gw_job_t *job)
{
    job->next = q->jobs;
    job->prev = NULL;
    if (q->jobs != NULL)
        q->jobs->prev = job;
    q->jobs = job;
    q->njobs++;
}

/* Forgets a job whose fate is settled in the database; frees a slot. */
static void job_drop(gw_job_t *job)
{
    gw_queue_t *q = job->queue;
    if (job->prev != NULL)
        job->prev->next = job->next;
    else
        q->jobs = job->next;
    if (job->next != NULL)
        job->next->prev = job->prev;
    q->njobs--;
    json_decref(job->outcome);
    free(job->video_url);
    free(job);
    if (!q->stopped)
        claim(q, CLAIM_REFILL);
}

gw_job_t *gw_queue_find(gw_queue_t *q, const char *id)
{
    for (gw_job_t *j = q->jobs; j != NULL; j = j->next)
        if (strcmp(j->id, id) == 0)
            return j;
    return NULL;
}

void gw_queue_job_abort(gw_job_t *job)
{
    if (job->state != GW_JOB_RUNNING)
        return;
    job->state = GW_JOB_ABORTING;
    job->queue->pipeline.abort(job, job->queue->pipeline.ctx);
}

/* ---- claim ---- */

static gw_job_t *job_from_row(gw_queue_t *q, PGresult *res, int row)
{
    gw_job_t *job = calloc(1, sizeof(*job));
    if (job == NULL)
        abort();
    snprintf(job->id, sizeof(job->id), "%s", PQgetvalue(res, row, 0));
    snprintf(job->user_id, sizeof(job->user_id), "%s", PQgetvalue(res, row, 1));
    job->video_url = gw_xstrdup(PQgetvalue(res, row, 2));
    job->deep = strcmp(PQgetvalue(res, row, 3), "deep") == 0;
    job->attempts = atoi(PQgetvalue(res, row, 4));
    job->max_attempts = atoi(PQgetvalue(res, row, 5));
    job->credits_charged = atoi(PQgetvalue(res, row, 6));
    job->disk_reserved = job->deep ? q->deep_reserve_bytes : 0;
    if (PQnfields(res) > 7 && !PQgetisnull(res, row, 7))
        gw_metrics_job_waited(job->deep, atof(PQgetvalue(res, row, 7)));
    job->claimed_at_ms = uv_now(q->loop);
    snprintf(job->stage, sizeof(job->stage), "claimed");
    job->state = GW_JOB_RUNNING;
    job->queue = q;
    return job;
}

static void on_claimed(PGresult *res, const char *error, void *data)
{
    gw_queue_t *q = data;
    int n = 0;
    q->claiming = false;
    if (!gw_queue_result_ok(res, PGRES_TUPLES_OK)) {
        gw_warn("claim failed: %s", error ? error : PQresultErrorMessage(res));
    } else {
        n = PQntuples(res);
        gw_job_t *batch[n > 0 ? n : 1];
        for (int i = 0; i < n; i++) {
            batch[i] = job_from_row(q, res, i);
            job_link(q, batch[i]);
            q->stats.claimed++;
            if (batch[i]->deep)
                q->stats.claimed_deep++;
            else
                q->stats.claimed_standard++;
            if (q->claim_reason == CLAIM_POLL)
                q->stats.claimed_by_poll++;
        }
        /* start after linking all: a pipeline that finishes synchronously may trigger a refill claim */
        for (int i = 0; i < n; i++) {
            gw_job_log(GW_LOG_DEBUG, batch[i]->id, "claimed (attempt %d/%d)", batch[i]->attempts, batch[i]->max_attempts);
            q->pipeline.start(batch[i], q->pipeline.ctx);
        }
    }
    if (q->claim_again || (res != NULL && n > 0)) {
        q->claim_again = false;
        claim(q, CLAIM_REFILL);
    }
}

/* How many deep jobs the next batch may take: the cap minus deep jobs in flight, and as many downloads as WORK_DIR's
 * free space covers after what those still reserve (one statvfs: a local or tmpfs directory answers in microseconds). */
static unsigned deep_allowed(const gw_queue_t *q, unsigned limit)
{
    unsigned deep = 0;
    uint64_t outstanding = 0;
    for (const gw_job_t *j = q->jobs; j != NULL; j = j->next) {
        if (j->deep) {
            deep++;
            outstanding += j->disk_reserved;
        }
    }
    if (q->max_deep_jobs > 0)
        limit = deep >= q->max_deep_jobs ? 0 : q->max_deep_jobs - deep < limit ? q->max_deep_jobs - deep : limit;
    struct statvfs st;
    if (limit > 0 && q->work_dir != NULL && q->deep_reserve_bytes > 0 && statvfs(q->work_dir, &st) == 0) {
        uint64_t avail = (uint64_t)st.f_bavail * st.f_frsize;
        uint64_t fit = avail > outstanding ? (avail - outstanding) / q->deep_reserve_bytes : 0;
        if (fit < limit)
            limit = (unsigned)fit;
    }
    return limit;
}

static void claim(gw_queue_t *q, claim_reason_t reason)
{
    if (q->stopped || q->paused || q->pg == NULL || !gw_pg_connected(q->pg))
        return;
    if (uv_now(q->loop) < q->hold_until) {
        q->next_poll_at = q->hold_until; /* the tick claims when the hold ends */
        return;
    }
    if (q->claiming) {
        q->claim_again = true; /* coalesce: one claim in flight at a time */
        return;
    }
    unsigned free_slots = q->max_jobs > q->njobs ? q->max_jobs - (unsigned)q->njobs : 0;
    if (free_slots == 0)
        return;
    /* The claim itself is glint_claim_jobs (sql/009, SECURITY DEFINER: the worker may not UPDATE the table). Its
     * plpgsql plan cache plans the inner UPDATE with the batch size as a value (custom plans) unless a generic plan is
     * estimated no dearer; one prepared statement per batch size keeps the outer call's plan trivial. */
    char name[48], sql[320], lease[16], args[32];
    unsigned deep = deep_allowed(q, free_slots);
    if (deep >= free_slots) { /* no deep budget binds: the plain claim */
        snprintf(name, sizeof(name), "gw_claim_%u", free_slots);
        snprintf(args, sizeof(args), "%u", free_slots);
    } else { /* sql/019: at most `deep` deep jobs in this batch */
        snprintf(name, sizeof(name), "gw_claim_%u_%u", free_slots, deep);
        snprintf(args, sizeof(args), "%u, %u", free_slots, deep);
    }
    /* created_at for the queue-wait histogram: a scalar subquery, one primary-key lookup per claimed row (a join was
     * planned as a hash join over the whole table: a scan of the queue per claim). NULL for a job inserted after this
     * statement's snapshot, which the function's own (newer) snapshot may still claim. */
    snprintf(sql, sizeof(sql),
             "SELECT c.*, (SELECT extract(epoch FROM clock_timestamp() - j.created_at)::float8 FROM analysis_jobs j"
             " WHERE j.id = c.job_id) FROM glint_claim_jobs($1, $2::int, %s) c",
             args);
    snprintf(lease, sizeof(lease), "%u", q->lease_seconds);
    const char *params[] = {q->worker_id, lease};
    q->claiming = true;
    q->claim_reason = reason;
    q->next_poll_at = uv_now(q->loop) + q->poll_interval_ms;
    gw_pg_query(q->pg, name, sql, 2, params, 0, on_claimed, q);
}

/* ---- outcomes ---- */

static void joblist_push(gw_joblist_t *l, gw_job_t *job)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 16;
        l->v = realloc(l->v, l->cap * sizeof(gw_job_t *));
        if (l->v == NULL)
            abort();
    }
    l->v[l->n++] = job;
}

bool gw_queue_res_has_id(PGresult *res, const char *id)
{
    for (int r = 0; res != NULL && r < PQntuples(res); r++)
        if (strcmp(PQgetvalue(res, r, 0), id) == 0)
            return true;
    return false;
}

static void on_completed(PGresult *res, const char *error, void *data)
{
    gw_queue_t *q = data;
    gw_joblist_t sent = q->sent;
    memset(&q->sent, 0, sizeof(q->sent));
    q->writes_inflight--;
    bool ok = gw_queue_result_ok(res, PGRES_TUPLES_OK);
    if (!ok) /* a statement error (connection loss is retried by pg): the leases expire and the reaper retries */
        gw_error("storing %zu results failed: %s", sent.n, error ? error : PQresultErrorMessage(res));
    for (size_t i = 0; i < sent.n; i++) {
        gw_job_t *job = sent.v[i];
        if (ok && gw_queue_res_has_id(res, job->id)) {
            q->stats.completed++;
            gw_queue_job_ended(job, "completed");
            if (job->deep)
                q->stats.completed_deep++;
            else
                q->stats.completed_standard++;
            gw_log_event(GW_LOG_INFO, job->id, "done", (double)(uv_now(q->loop) - job->claimed_at_ms), "completed");
        } else if (ok) {
            q->stats.lost++;
            gw_queue_job_ended(job, "lost");
            gw_job_log(GW_LOG_WARN, job->id, "result not stored: the job is no longer ours (cancelled or rescued)");
        }
        job_drop(job);
    }
    free(sent.v);
    flush_completions(q);
}

/* Completions are batched: while one write is in flight, outcomes gather for the next (one statement each). */
static void flush_completions(gw_queue_t *q)
{
    if (q->sent.n > 0)
        return;
    if (q->batch.n == 0)
        return;
    char *text = json_dumps(q->batch_rows, JSON_COMPACT);
    if (text == NULL)
        abort();
    json_array_clear(q->batch_rows);
    q->sent = q->batch;
    memset(&q->batch, 0, sizeof(q->batch));
    const char *params[] = {q->worker_id, text};
    q->writes_inflight++;
    /* idempotent (guarded by status and locked_by): safe to resend after a reconnect */
    gw_pg_query(q->pg, "gw_complete", "SELECT glint_complete_jobs($1, $2::jsonb)", 2, params, GW_PG_RETRY, on_completed, q);
    free(text);
}

static json_t *usage_value(const gw_usage_t *u, size_t off)
{
    long v = u != NULL ? *(const long *)((const char *)u + off) : -1;
    return v >= 0 ? json_integer(v) : json_null();
}

void gw_job_complete(gw_job_t *job, json_t *result, const char *model, const gw_usage_t *usage, json_t *timings)
{
    gw_queue_t *q = job->queue;
    if (job->state != GW_JOB_RUNNING) {
        json_decref(result);
        json_decref(timings);
        if (job->state == GW_JOB_ABORTING)
            gw_job_aborted(job);
        return;
    }
    job->state = GW_JOB_FINISHING;
    if (q->pg == NULL) {
        json_decref(timings);
        local_outcome(job, result, NULL, NULL);
        return;
    }
    json_t *row = json_pack("{s:s, s:o, s:s?, s:o, s:o, s:o, s:o}", "id", job->id, "result", result, "model", model,
                            "prompt_tokens", usage_value(usage, offsetof(gw_usage_t, prompt_tokens)), "output_tokens",
                            usage_value(usage, offsetof(gw_usage_t, output_tokens)), "thoughts_tokens",
                            usage_value(usage, offsetof(gw_usage_t, thoughts_tokens)), "timings", timings ? timings : json_null());
    if (row == NULL)
        abort();
    json_array_append_new(q->batch_rows, row);
    joblist_push(&q->batch, job);
    flush_completions(q);
}

/* ---- outcomes without a database (glint-worker analyze) ---- */

typedef struct st_local_outcome_t {
    uv_timer_t timer; /* first: delivers on the next loop turn, after the pipeline's own bookkeeping */
    gw_job_t *job;
    json_t *result;
    char *code, *message;
} local_outcome_t;

static void local_closed(uv_handle_t *h)
{
    local_outcome_t *lo = (local_outcome_t *)h;
    json_decref(lo->result);
    free(lo->code);
    free(lo->message);
    free(lo);
}

static void local_deliver(uv_timer_t *t)
{
    local_outcome_t *lo = (local_outcome_t *)t;
    gw_queue_t *q = lo->job->queue;
    q->local_cb(lo->job, lo->result, lo->code, lo->message, q->local_data);
    job_drop(lo->job);
    uv_close((uv_handle_t *)&lo->timer, local_closed);
}

/* result stolen; the job is dropped after delivery, never inside the pipeline's call */
static void local_outcome(gw_job_t *job, json_t *result, const char *code, const char *message)
{
    local_outcome_t *lo = calloc(1, sizeof(*lo));
    if (lo == NULL)
        abort();
    lo->job = job;
    lo->result = result;
    lo->code = code != NULL ? gw_xstrdup(code) : NULL;
    lo->message = message != NULL ? gw_xstrdup(message) : NULL;
    if (uv_timer_init(job->queue->loop, &lo->timer) != 0 || uv_timer_start(&lo->timer, local_deliver, 0, 0) != 0)
        abort();
}

void gw_queue_run_local(gw_queue_t *q, const char *video_url, bool deep, gw_queue_local_cb cb, void *data)
{
    gw_job_t *job = calloc(1, sizeof(*job));
    if (job == NULL)
        abort();
    unsigned r[4] = {(unsigned)rand(), (unsigned)rand(), (unsigned)rand(), (unsigned)rand()};
    snprintf(job->id, sizeof(job->id), "%08x-%04x-4%03x-8%03x-%04x%08x", r[0], r[1] & 0xffff, r[1] >> 20 & 0xfff, r[2] & 0xfff,
             r[2] >> 16 & 0xffff, r[3]);
    snprintf(job->user_id, sizeof(job->user_id), "00000000-0000-0000-0000-000000000000");
    job->video_url = gw_xstrdup(video_url);
    job->deep = deep;
    job->attempts = job->max_attempts = 1;
    job->claimed_at_ms = uv_now(q->loop);
    job->state = GW_JOB_RUNNING;
    job->queue = q;
    q->local_cb = cb;
    q->local_data = data;
    job_link(q, job);
    q->pipeline.start(job, q->pipeline.ctx);
}

/* A job that ended FAILED: one Sentry event, tagged so it can be found and grouped by error code. */
static void report_failure(gw_job_t *job)
{
    gw_queue_t *q = job->queue;
    const char *code = json_string_value(json_object_get(job->outcome, "code"));
    const gw_error_t *e = gw_error_find(code);
    /* the user's own input is not the operator's trouble (handlers/errors.c says whose it is); unknown codes are sent */
    if (q->sentry == NULL || (e != NULL && !e->operator_trouble))
        return;
    const char *message = json_string_value(json_object_get(job->outcome, "message"));
    const char *fault = e == NULL ? NULL : "operator";
    char text[512], attempts[32];
    snprintf(text, sizeof(text), "job failed: %s: %s", code ? code : "?", message ? message : "");
    snprintf(attempts, sizeof(attempts), "%d/%d", job->attempts, job->max_attempts);
    const char *tags[] = {"job_id",     job->id,
                          "mode",       job->deep ? "deep" : "standard",
                          "stage",      job->stage[0] ? job->stage : NULL,
                          "release",    GW_VERSION,
                          "commit",     GW_BUILD_COMMIT,
                          "error_code", code,
                          "attempts",   attempts,
                          "worker_id",  q->worker_id,
                          "fault",      fault,
                          NULL};
    gw_sentry_capture(q->sentry, "error", text, tags, code);
}

typedef struct st_fail_ctx_t {
    gw_job_t *job;
    bool retry;
} fail_ctx_t;

static void on_failed(PGresult *res, const char *error, void *data)
{
    fail_ctx_t *fc = data;
    gw_job_t *job = fc->job;
    gw_queue_t *q = job->queue;
    q->writes_inflight--;
    if (!gw_queue_result_ok(res, PGRES_TUPLES_OK)) {
        gw_job_log(GW_LOG_ERROR, job->id, "recording the failure failed: %s", error ? error : PQresultErrorMessage(res));
    } else if (PQgetisnull(res, 0, 0)) {
        q->stats.lost++;
        gw_job_log(GW_LOG_WARN, job->id, "failure not recorded: the job is no longer ours");
    } else if (strcmp(PQgetvalue(res, 0, 0), "PENDING") == 0) {
        q->stats.retried++;
        gw_queue_job_ended(job, "retried");
        if (job->deep)
            q->stats.retried_deep++;
        else
            q->stats.retried_standard++;
        uint64_t at = uv_now(q->loop) + (uint64_t)json_integer_value(json_object_get(job->outcome, "retry_ms"));
        if (at < q->next_poll_at)
            q->next_poll_at = at; /* a notification comes too early for run_after: poll when it is due */
    } else {
        q->stats.failed++;
        gw_queue_job_ended(job, "failed");
        if (job->deep)
            q->stats.failed_deep++;
        else
            q->stats.failed_standard++;
        report_failure(job);
    }
    free(fc);
    job_drop(job);
}

void gw_job_fail(gw_job_t *job, const char *code, const char *message, int64_t retry_ms)
{
    gw_queue_t *q = job->queue;
    if (job->state != GW_JOB_RUNNING) {
        if (job->state == GW_JOB_ABORTING)
            gw_job_aborted(job);
        return;
    }
    job->state = GW_JOB_FINISHING;
    /* the last attempt of a transient failure must not promise a retry: the catalogue says what happened */
    char final_msg[320];
    message = gw_error_stored_message(code, message, retry_ms < 0 || job->attempts >= job->max_attempts, retry_ms >= 0,
                                      job->attempts, final_msg, sizeof(final_msg));
    /* WARNING, not ERROR: a failed job is usually the video's fault; Sentry gets its own tagged event (on_failed) */
    gw_log_event(GW_LOG_WARN, job->id, job->stage[0] ? job->stage : NULL, -1, "%s: %s%s", code, message,
                 retry_ms >= 0 && job->attempts < job->max_attempts ? " (will retry)" : "");
    if (q->pg == NULL) {
        local_outcome(job, NULL, code, message);
        return;
    }
    char retry[24];
    snprintf(retry, sizeof(retry), "%lld", (long long)retry_ms);
    job->outcome =
        json_pack("{s:I, s:s, s:s}", "retry_ms", (json_int_t)(retry_ms >= 0 ? retry_ms : 0), "code", code, "message", message);
    const char *params[] = {job->id, q->worker_id, code, message, retry_ms >= 0 ? retry : NULL};
    fail_ctx_t *fc = calloc(1, sizeof(*fc));
    if (fc == NULL)
        abort();
    fc->job = job;
    q->writes_inflight++;
    gw_pg_query(q->pg, "gw_fail", "SELECT glint_fail_job($1, $2, $3, $4, $5::bigint)", 5, params, GW_PG_RETRY, on_failed, fc);
}

static void on_deferred(PGresult *res, const char *error, void *data)
{
    gw_job_t *job = data;
    gw_queue_t *q = job->queue;
    q->writes_inflight--;
    if (!gw_queue_result_ok(res, PGRES_TUPLES_OK)) {
        gw_job_log(GW_LOG_ERROR, job->id, "deferring the job failed: %s", error ? error : PQresultErrorMessage(res));
    } else if (PQgetisnull(res, 0, 0)) {
        q->stats.lost++;
        gw_job_log(GW_LOG_WARN, job->id, "deferral not recorded: the job is no longer ours");
    } else {
        q->stats.deferred++;
        uint64_t at = uv_now(q->loop) + (uint64_t)json_integer_value(json_object_get(job->outcome, "retry_ms"));
        if (at < q->next_poll_at)
            q->next_poll_at = at; /* the requeue notification comes before run_after: poll when it is due */
    }
    job_drop(job);
}

void gw_job_defer(gw_job_t *job, const char *code, const char *message, int64_t delay_ms)
{
    gw_queue_t *q = job->queue;
    if (job->state != GW_JOB_RUNNING) {
        if (job->state == GW_JOB_ABORTING)
            gw_job_aborted(job);
        return;
    }
    if (q->pg == NULL) { /* analyze: nobody to wait for */
        gw_job_fail(job, code, message, -1);
        return;
    }
    job->state = GW_JOB_FINISHING;
    if (delay_ms < 0)
        delay_ms = 0;
    if (delay_ms > 86400000)
        delay_ms = 86400000;
    gw_log_event(GW_LOG_INFO, job->id, job->stage[0] ? job->stage : NULL, -1,
                 "%s: back to the queue for %lld ms, attempt not counted", code, (long long)delay_ms);
    char delay[24];
    snprintf(delay, sizeof(delay), "%lld", (long long)delay_ms);
    job->outcome = json_pack("{s:I, s:s, s:s}", "retry_ms", (json_int_t)delay_ms, "code", code, "message", message);
    const char *params[] = {job->id, q->worker_id, code, message, delay};
    q->writes_inflight++;
    gw_pg_query(q->pg, "gw_defer", "SELECT glint_defer_job($1, $2, $3, $4, $5::bigint)", 5, params, GW_PG_RETRY, on_deferred, job);
}

static void on_released(PGresult *res, const char *error, void *data)
{
    gw_queue_t *q = data;
    q->writes_inflight--;
    if (!gw_queue_result_ok(res, PGRES_TUPLES_OK))
        gw_error("releasing jobs failed: %s", error ? error : PQresultErrorMessage(res));
    else
        q->stats.released += PQntuples(res);
}

void gw_job_aborted(gw_job_t *job)
{
    if (job->state == GW_JOB_FINISHING)
        return;
    job_drop(job);
}

void gw_job_settled(gw_job_t *job, bool completed)
{
    gw_queue_t *q = job->queue;
    if (job->state == GW_JOB_FINISHING)
        return;
    if (completed) {
        q->stats.completed++;
        if (job->deep)
            q->stats.completed_deep++;
        else
            q->stats.completed_standard++;
        gw_log_event(GW_LOG_INFO, job->id, "done", (double)(uv_now(q->loop) - job->claimed_at_ms), "completed (reused)");
    }
    job_drop(job);
}

void gw_job_set_stage(gw_job_t *job, const char *stage)
{
    gw_queue_t *q = job->queue;
    const char *params[] = {job->id, stage, q->worker_id};
    snprintf(job->stage, sizeof(job->stage), "%s", stage);
    gw_log_event(GW_LOG_DEBUG, job->id, stage, -1, "stage %s", stage);
    if (q->pg == NULL)
        return;
    gw_pg_query(q->pg, "gw_stage", "SELECT glint_set_stage($1, $3, $2)", 3, params, 0, NULL, NULL);
}

int64_t gw_job_retry_delay_ms(const gw_job_t *job, int64_t floor_ms)
{
    int shift = job->attempts > 0 ? job->attempts - 1 : 0;
    int64_t cap = 2000LL << (shift < 8 ? shift : 8); /* 2 s, 4 s, 8 s … ~8.5 min */
    int64_t d = cap / 2 + rand() % (cap / 2 + 1);
    return d > floor_ms ? d : floor_ms;
}

/* ---- maintenance ---- */

void gw_queue_tick(gw_queue_t *q)
{
    uint64_t now = uv_now(q->loop);
    if (now >= q->next_depth_at) {
        q->next_depth_at = now + DEPTH_REFRESH_MS;
        gw_queue_refresh_depth(q);
    }
    if (now >= q->next_heartbeat_at) {
        q->next_heartbeat_at = now + q->lease_seconds * 1000 / 3;
        gw_queue_heartbeat(q);
    }
    if (q->stopped)
        return;
    if (now >= q->next_reap_at) {
        q->next_reap_at = now + (q->lease_seconds * 1000 / 2 > 1000 ? q->lease_seconds * 1000 / 2 : 1000);
        gw_queue_reap(q);
    }
    if (now >= q->next_purge_at) {
        q->next_purge_at = now + PURGE_INTERVAL_MS;
        gw_queue_purge(q);
    }
    if (now >= q->next_poll_at) {
        q->next_poll_at = now + (gw_pg_connected(q->pg) ? q->poll_interval_ms : POLL_WHILE_DOWN_MS);
        claim(q, CLAIM_POLL);
    }
}

/* ---- events ---- */

void gw_queue_on_connect(gw_queue_t *q)
{
    /* notifications sent while we were away are lost: sweep now */
    claim(q, CLAIM_CONNECT);
    q->next_heartbeat_at = 0;
}

void gw_queue_on_notify(gw_queue_t *q, const char *channel, const char *payload)
{
    q->stats.notifications++;
    if (strcmp(channel, "glint_jobs") == 0) {
        claim(q, CLAIM_NOTIFY);
    } else if (strcmp(channel, "glint_cancel") == 0) {
        gw_job_t *job = gw_queue_find(q, payload);
        if (job != NULL && job->state == GW_JOB_RUNNING) {
            q->stats.cancelled++;
            gw_queue_job_ended(job, "cancelled");
            if (job->deep)
                q->stats.cancelled_deep++;
            else
                q->stats.cancelled_standard++;
            gw_job_log(GW_LOG_INFO, job->id, "cancelled: aborting in-flight work");
            gw_queue_job_abort(job);
        }
    }
}

/* ---- lifecycle ---- */

gw_queue_t *gw_queue_create(uv_loop_t *loop, gw_pg_t *pg, const gw_queue_opts_t *opts, const gw_pipeline_t *pipeline)
{
    gw_queue_t *q = calloc(1, sizeof(*q));
    if (q == NULL)
        abort();
    q->loop = loop;
    q->pg = pg;
    q->worker_id = gw_xstrdup(opts->worker_id);
    q->max_jobs = opts->max_jobs;
    q->lease_seconds = opts->lease_seconds;
    q->max_deep_jobs = opts->max_deep_jobs;
    q->work_dir = opts->work_dir != NULL ? gw_xstrdup(opts->work_dir) : NULL;
    q->deep_reserve_bytes = opts->deep_reserve_bytes;
    q->poll_interval_ms = opts->poll_interval_ms;
    q->sentry = opts->sentry;
    q->retention_days = opts->retention_days;
    q->pipeline = *pipeline;
    q->batch_rows = json_array();
    q->next_poll_at = uv_now(loop) + opts->poll_interval_ms;
    return q;
}

void gw_queue_free(gw_queue_t *q)
{
    while (q->jobs != NULL) {
        q->stopped = true;
        job_drop(q->jobs);
    }
    json_decref(q->batch_rows);
    free(q->batch.v);
    free(q->sent.v);
    free(q->worker_id);
    free(q->work_dir);
    free(q);
}

void gw_queue_stop_claiming(gw_queue_t *q)
{
    q->stopped = true;
}

void gw_queue_hold_claims(gw_queue_t *q, uint64_t ms)
{
    uint64_t until = uv_now(q->loop) + ms;
    if (until > q->hold_until)
        q->hold_until = until;
}

bool gw_queue_claims_held(const gw_queue_t *q)
{
    return uv_now(q->loop) < q->hold_until;
}

void gw_queue_pause_claiming(gw_queue_t *q, bool paused)
{
    bool was = q->paused;
    q->paused = paused;
    if (was && !paused)
        claim(q, CLAIM_CONNECT);
}

void gw_queue_release_all(gw_queue_t *q)
{
    q->stopped = true;
    char *ids = gw_queue_ids_literal(q, false);
    if (strcmp(ids, "{}") != 0) {
        const char *params[] = {ids, q->worker_id};
        q->writes_inflight++;
        /* back to PENDING without counting the attempt; the requeue trigger wakes another worker */
        gw_pg_query(q->pg, "gw_release", "SELECT glint_release_jobs($1::uuid[], $2)", 2, params, GW_PG_RETRY, on_released, q);
    }
    free(ids);
    for (gw_job_t *j = q->jobs, *next; j != NULL; j = next) {
        next = j->next;
        gw_queue_job_abort(j);
    }
}

size_t gw_queue_active(const gw_queue_t *q)
{
    return q->njobs;
}

size_t gw_queue_writes_inflight(const gw_queue_t *q)
{
    return q->writes_inflight;
}

const gw_queue_stats_t *gw_queue_stats(const gw_queue_t *q)
{
    return &q->stats;
}

const char *gw_queue_worker_id(const gw_queue_t *q)
{
    return q->worker_id;
}

gw_pg_t *gw_queue_pg(const gw_queue_t *q)
{
    return q->pg;
}
