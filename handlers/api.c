#include "handlers/api.h"
#include "handlers/breaker.h"
#include "handlers/history.h"
#include "handlers/metrics.h"
#include "handlers/modelcheck.h"
#include "reactor/embed.h"
#include "reactor/log.h"
#include <ctype.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

bool gw_api_valid_uuid(const char *s)
{
    if (s == NULL || strlen(s) != 36)
        return false;
    for (int i = 0; i < 36; i++) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? s[i] != '-' : !isxdigit((unsigned char)s[i]))
            return false;
    }
    return true;
}

/* X-API-Key or Authorization: Bearer, compared in constant time. Answers the request itself when refusing. */
static bool authorized(gw_app_t *app, gw_http_req_t *r)
{
    const char *want = app->cfg->worker_api_key;
    if (want == NULL || *want == '\0') {
        gw_http_respond_error(r, 503, "auth_not_configured", "WORKER_API_KEY is not set on this worker");
        return false;
    }
    const char *got = gw_http_header(r, "x-api-key");
    const char *auth = gw_http_header(r, "authorization");
    if (got == NULL && auth != NULL && strncasecmp(auth, "Bearer ", 7) == 0)
        got = auth + 7;
    if (got == NULL) {
        gw_http_respond_error(r, 401, "unauthorized", "missing API key (X-API-Key or Authorization: Bearer)");
        return false;
    }
    if (!gw_http_ct_equal(got, want)) {
        gw_http_respond_error(r, 401, "unauthorized", "invalid API key");
        return false;
    }
    return true;
}

/* Common checks for /worker/jobs/{id}…: auth, id shape, database reachable. */
static bool job_request_ok(gw_app_t *app, gw_http_req_t *r)
{
    if (!authorized(app, r))
        return false;
    if (!gw_api_valid_uuid(gw_http_param(r, 0))) {
        gw_http_respond_error(r, 400, "invalid_id", "job id must be a UUID");
        return false;
    }
    if (!gw_pg_connected(app->pg)) {
        gw_http_respond_error(r, 503, "database_unavailable", "the database is unreachable; try again shortly");
        return false;
    }
    return true;
}

/* ---- GET /health ---- */

static void on_health(gw_http_req_t *r, void *data)
{
    gw_app_t *app = data;
    bool up = gw_pg_connected(app->pg);
    const gw_queue_stats_t *st = gw_queue_stats(app->queue);
    json_t *o =
        json_pack("{s:s, s:I, s:I, s:s, s:b, s:s, s:s, s:I, s:I, s:f}", "status", up ? "healthy" : "unhealthy", "active_jobs",
                  (json_int_t)gw_queue_active(app->queue), "max_concurrent", (json_int_t)app->cfg->max_concurrent_jobs, "database",
                  up ? "connected" : "unreachable", "draining", app->draining, "worker_id", gw_queue_worker_id(app->queue),
                  "version", GW_VERSION, "uptime_s", (json_int_t)((uv_hrtime() / 1000000 - app->started_at_ms) / 1000),
                  "queue_depth", (json_int_t)st->queue_depth, "oldest_pending_s", st->oldest_pending_s);
    json_object_set_new(o, "ytdlp_breaker", gw_breaker_json(uv_now(app->loop)));
    char *s = json_dumps(o, JSON_COMPACT);
    gw_http_respond_json(r, up ? 200 : 503, s);
    free(s);
    json_decref(o);
}

/* ---- GET /livez, GET /readyz: the probes ---- */

/* Liveness: this answer comes from the loop itself, so it proves the loop turns; nothing else is consulted (a database
 * outage must not restart the container). */
static void on_livez(gw_http_req_t *r, void *data)
{
    gw_http_respond_json(r, 200, "{\"status\":\"alive\"}");
}

/* Readiness: fit to take jobs. 503 names every check that fails. */
static void on_readyz(gw_http_req_t *r, void *data)
{
    gw_app_t *app = data;
    bool db = gw_pg_connected(app->pg); /* READY only once LISTEN succeeded */
    gw_modelcheck_state_t mc = gw_modelcheck_state(app->modelcheck);
    bool model_ok = !gw_modelcheck_blocks(app->modelcheck);
    json_t *failing = json_array();
    if (!db) {
        json_array_append_new(failing, json_string("database"));
        json_array_append_new(failing, json_string("listen"));
    }
    if (app->draining)
        json_array_append_new(failing, json_string("draining"));
    if (!model_ok)
        json_array_append_new(failing, json_string("model_check"));
    bool ready = json_array_size(failing) == 0;
    const char *problem = gw_modelcheck_problem(app->modelcheck);
    json_t *o = json_pack("{s:s, s:{s:s, s:s, s:b, s:s}, s:o}", "status", ready ? "ready" : "not_ready", "checks", "database",
                          db ? "connected" : "unreachable", "listen", db ? "active" : "inactive", "draining", app->draining,
                          "model_check", gw_modelcheck_state_name(mc), "not_ready", failing);
    if (problem != NULL && *problem != '\0')
        json_object_set_new(json_object_get(o, "checks"), "model_problem", json_string(problem));
    /* informational: an open breaker holds back YouTube fetches only, so it does not make the worker unready */
    json_object_set_new(json_object_get(o, "checks"), "ytdlp_breaker", gw_breaker_json(uv_now(app->loop)));
    char *s = json_dumps(o, JSON_COMPACT);
    gw_http_respond_json(r, ready ? 200 : 503, s);
    free(s);
    json_decref(o);
}

/* ---- GET /metrics ---- */

static void on_metrics(gw_http_req_t *r, void *data)
{
    gw_app_t *app = data;
    gw_buf_t b = {0};
    gw_metrics_render(app, &b);
    gw_http_respond(r, 200, "text/plain; version=0.0.4; charset=utf-8", b.data, b.len);
    free(b.data);
}

/* ---- the dashboard and /openapi.json: files compiled into the binary ---- */

static const gw_embedded_t *find_asset(const char *name)
{
    for (const gw_embedded_t *a = gw_assets; a->name != NULL; a++)
        if (strcmp(a->name, name) == 0)
            return a;
    return NULL;
}

static const char *content_type(const char *name)
{
    static const char *const types[][2] = {{".html", "text/html; charset=utf-8"},
                                           {".js", "text/javascript; charset=utf-8"},
                                           {".css", "text/css; charset=utf-8"},
                                           {".json", "application/json"},
                                           {".svg", "image/svg+xml"}};
    const char *dot = strrchr(name, '.');
    for (size_t i = 0; dot != NULL && i < sizeof(types) / sizeof(types[0]); i++)
        if (strcmp(dot, types[i][0]) == 0)
            return types[i][1];
    return "application/octet-stream";
}

static void send_asset(gw_http_req_t *r, const char *name)
{
    const gw_embedded_t *a = find_asset(name);
    if (a == NULL) {
        gw_http_respond_error(r, 404, "not_found", "no such asset");
        return;
    }
    /* data is only ever rendered as text by the page's script; the policy forbids everything else */
    gw_http_add_header(r, "Content-Security-Policy",
                       "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:;"
                       " base-uri 'none'; form-action 'none'; frame-ancestors 'none'");
    gw_http_add_header(r, "X-Content-Type-Options", "nosniff");
    gw_http_add_header(r, "Referrer-Policy", "no-referrer");
    gw_http_add_header(r, "Cache-Control", "no-cache");
    gw_http_respond(r, 200, content_type(name), a->data, a->len);
}

static void on_index(gw_http_req_t *r, void *data)
{
    send_asset(r, "index.html");
}

static void on_asset(gw_http_req_t *r, void *data)
{
    const char *name = gw_http_param(r, 0);
    if (strcmp(name, "index.html") == 0 || strcmp(name, "openapi.json") == 0) {
        gw_http_respond_error(r, 404, "not_found", "no such asset");
        return;
    }
    send_asset(r, name);
}

static void on_openapi(gw_http_req_t *r, void *data)
{
    send_asset(r, "openapi.json");
}

/* ---- GET /worker/jobs?status=&limit=&before= (newest first, keyset pagination on (created_at, id)) ---- */

#define LIST_DEFAULT_LIMIT "50"
#define LIST_MAX_LIMIT 200

static const char list_sql[] =
    "SELECT coalesce(json_agg(x ORDER BY x.created_at DESC, x.id DESC), '[]')::text FROM ("
    " SELECT j.id, j.video_url, j.mode, j.status, j.stage, j.attempts, j.max_attempts, j.error_code, j.error_message,"
    " j.created_at, j.started_at, j.finished_at,"
    " extract(epoch FROM j.started_at - j.created_at)::float8 AS wait_s,"
    " extract(epoch FROM coalesce(j.finished_at, CASE WHEN j.status = 'PROCESSING' THEN clock_timestamp() END) - "
    "j.started_at)::float8"
    " AS run_s, r.result->>'title' AS title,"
    " to_char(j.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') || '_' || j.id AS cursor"
    " FROM analysis_jobs j LEFT JOIN analysis_results r ON r.job_id = j.id"
    " WHERE ($1::text IS NULL OR j.status = $1)"
    " AND ($2::timestamptz IS NULL OR (j.created_at, j.id) < ($2::timestamptz, $3::uuid))"
    " ORDER BY j.created_at DESC, j.id DESC LIMIT $4::int) x";

static bool digits(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isdigit((unsigned char)s[i]))
            return false;
    return true;
}

/* "YYYY-MM-DDTHH:MM:SS.ffffffZ_UUID", as produced in "next"; splits into ts and id. */
static bool parse_cursor(const char *c, char ts[28], char id[37])
{
    static const char shape[] = "dddd-dd-ddTdd:dd:dd.ddddddZ_";
    if (strlen(c) != sizeof(shape) - 1 + 36)
        return false;
    for (size_t i = 0; i < sizeof(shape) - 1; i++)
        if (shape[i] == 'd' ? !digits(c + i, 1) : c[i] != shape[i])
            return false;
    memcpy(ts, c, 27);
    ts[27] = '\0';
    memcpy(id, c + 28, 36);
    id[36] = '\0';
    return gw_api_valid_uuid(id);
}

static const char *list_status(const char *s)
{
    static const char *const statuses[] = {"PENDING", "PROCESSING", "COMPLETED", "FAILED", "CANCELLED"};
    for (size_t i = 0; s != NULL && i < sizeof(statuses) / sizeof(statuses[0]); i++)
        if (strcasecmp(s, statuses[i]) == 0)
            return statuses[i];
    return NULL;
}

static void on_list_rows(PGresult *res, const char *error, void *data)
{
    gw_http_req_t *r = data;
    if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK) {
        const char *state = res != NULL ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
        if (state != NULL && strncmp(state, "22", 2) == 0) { /* data exception: a cursor naming an impossible time */
            gw_http_respond_error(r, 400, "invalid_cursor", "before is not a cursor this endpoint produced");
            return;
        }
        gw_warn("job list failed: %s", error ? error : PQresultErrorMessage(res));
        gw_http_respond_error(r, 503, "database_unavailable", "the jobs could not be read; try again shortly");
        return;
    }
    json_t *jobs = json_loads(PQgetvalue(res, 0, 0), 0, NULL);
    long limit = atol(gw_http_query(r, "limit") ? gw_http_query(r, "limit") : LIST_DEFAULT_LIMIT);
    size_t n = json_array_size(jobs);
    json_t *last = n > 0 && (long)n == limit ? json_array_get(jobs, n - 1) : NULL;
    json_t *o =
        json_pack("{s:o, s:O}", "jobs", jobs ? jobs : json_array(), "next", last ? json_object_get(last, "cursor") : json_null());
    char *s = json_dumps(o, JSON_COMPACT);
    gw_http_respond_json(r, 200, s);
    free(s);
    json_decref(o);
}

static void on_job_list(gw_http_req_t *r, void *data)
{
    gw_app_t *app = data;
    if (!authorized(app, r))
        return;
    const char *status = gw_http_query(r, "status"), *limit = gw_http_query(r, "limit"), *before = gw_http_query(r, "before");
    char ts[28], id[37];
    if (status != NULL && *status == '\0')
        status = NULL;
    if (status != NULL && (status = list_status(status)) == NULL) {
        gw_http_respond_error(r, 400, "invalid_status", "status must be PENDING, PROCESSING, COMPLETED, FAILED or CANCELLED");
        return;
    }
    if (limit == NULL)
        limit = LIST_DEFAULT_LIMIT;
    if (*limit == '\0' || strlen(limit) > 3 || !digits(limit, strlen(limit)) || atol(limit) < 1 || atol(limit) > LIST_MAX_LIMIT) {
        gw_http_respond_error(r, 400, "invalid_limit", "limit must be an integer from 1 to 200");
        return;
    }
    if (before != NULL && *before != '\0' && !parse_cursor(before, ts, id)) {
        gw_http_respond_error(r, 400, "invalid_cursor", "before must be the \"next\" value of a previous page");
        return;
    }
    if (!gw_pg_connected(app->pg)) {
        gw_http_respond_error(r, 503, "database_unavailable", "the database is unreachable; try again shortly");
        return;
    }
    bool paged = before != NULL && *before != '\0';
    const char *params[] = {status, paged ? ts : NULL, paged ? id : NULL, limit};
    gw_pg_query(app->pg, "gw_api_list", list_sql, 4, params, 0, on_list_rows, r);
}

/* ---- GET /worker/history: the dashboard's last hour, from memory (this process only; no query) ---- */

static void on_history(gw_http_req_t *r, void *data)
{
    gw_app_t *app = data;
    if (!authorized(app, r))
        return;
    json_t *o = gw_history_json(gw_history(), (int64_t)time(NULL));
    json_object_set_new(o, "worker_id", json_string(gw_queue_worker_id(app->queue)));
    char *s = json_dumps(o, JSON_COMPACT);
    gw_http_respond_json(r, 200, s);
    free(s);
    json_decref(o);
}

/* ---- GET /worker/jobs/{id} ---- */

const char gw_api_job_sql[] =
    "SELECT json_build_object('id', j.id, 'user_id', j.user_id, 'video_url', j.video_url, 'mode', j.mode,"
    " 'language', j.language, 'status', j.status, 'stage', j.stage, 'priority', j.priority, 'attempts', j.attempts,"
    " 'max_attempts', j.max_attempts,"
    " 'credits_charged', j.credits_charged, 'error', CASE WHEN j.error_code IS NULL THEN NULL"
    " ELSE json_build_object('code', j.error_code, 'message', j.error_message) END,"
    " 'created_at', j.created_at, 'started_at', j.started_at, 'finished_at', j.finished_at, 'updated_at', j.updated_at,"
    " 'run_after', CASE WHEN j.status = 'PENDING' THEN j.run_after END,"
    " 'result', CASE WHEN j.status = 'COMPLETED' THEN r.result END,"
    " 'model', r.model, 'usage', CASE WHEN r.job_id IS NULL THEN NULL ELSE json_build_object('prompt_tokens',"
    " r.prompt_tokens, 'output_tokens', r.output_tokens, 'thoughts_tokens', r.thoughts_tokens,"
    " 'cost_usd', r.timings->'cost_usd') END," /* the pipeline records the estimated cost with its timings */
    " 'timings', r.timings - 'cost_usd', 'reused_from', r.reused_from)::text"
    " FROM analysis_jobs j LEFT JOIN analysis_results r ON r.job_id = j.id WHERE j.id = $1";

static void on_job_row(PGresult *res, const char *error, void *data)
{
    gw_http_req_t *r = data;
    if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK) {
        gw_warn("job lookup failed: %s", error ? error : PQresultErrorMessage(res));
        gw_http_respond_error(r, 503, "database_unavailable", "the job could not be read; try again shortly");
    } else if (PQntuples(res) == 0) {
        gw_http_respond_error(r, 404, "not_found", "no job with this id");
    } else {
        gw_http_respond_json(r, 200, PQgetvalue(res, 0, 0));
    }
}

static void on_job_get(gw_http_req_t *r, void *data)
{
    gw_app_t *app = data;
    if (!job_request_ok(app, r))
        return;
    const char *params[] = {gw_http_param(r, 0)};
    gw_pg_query(app->pg, "gw_api_job", gw_api_job_sql, 1, params, 0, on_job_row, r);
}

/* ---- POST /worker/jobs/{id}/cancel ---- */

static void on_cancel_row(PGresult *res, const char *error, void *data)
{
    gw_http_req_t *r = data;
    if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK) {
        gw_warn("cancel failed: %s", error ? error : PQresultErrorMessage(res));
        gw_http_respond_error(r, 503, "database_unavailable", "the job could not be cancelled; try again shortly");
        return;
    }
    if (PQntuples(res) == 0) {
        gw_http_respond_error(r, 404, "not_found", "no job with this id");
        return;
    }
    const char *status = PQgetvalue(res, 0, 0);
    if (strcmp(PQgetvalue(res, 0, 1), "t") != 0) {
        char msg[128];
        snprintf(msg, sizeof(msg), "the job is already %s", status);
        gw_http_respond_error(r, 409, "not_cancellable", msg);
        return;
    }
    json_t *o = json_pack("{s:s, s:s, s:b}", "id", gw_http_param(r, 0), "status", status, "refunded", 1);
    char *s = json_dumps(o, JSON_COMPACT);
    gw_http_respond_json(r, 200, s);
    free(s);
    json_decref(o);
}

static void on_job_cancel(gw_http_req_t *r, void *data)
{
    gw_app_t *app = data;
    if (!job_request_ok(app, r))
        return;
    const char *params[] = {gw_http_param(r, 0)};
    gw_pg_query(app->pg, "gw_api_cancel", "SELECT status, changed FROM glint_cancel_job($1::uuid)", 1, params, 0, on_cancel_row, r);
}

/* ---- POST /worker/jobs/{id}/retry: FAILED or CANCELLED -> PENDING, charged again (glint_retry_job, sql/017) ---- */

static void on_retry_row(PGresult *res, const char *error, void *data)
{
    gw_http_req_t *r = data;
    if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK) {
        gw_warn("retry failed: %s", error ? error : PQresultErrorMessage(res));
        gw_http_respond_error(r, 503, "database_unavailable", "the job could not be retried; try again shortly");
        return;
    }
    if (PQntuples(res) == 0) {
        gw_http_respond_error(r, 404, "not_found", "no job with this id");
        return;
    }
    const char *status = PQgetvalue(res, 0, 0), *outcome = PQgetvalue(res, 0, 1);
    char msg[128];
    if (strcmp(outcome, "not_retryable") == 0) {
        snprintf(msg, sizeof(msg), "the job is %s; only a FAILED or CANCELLED job can be retried", status);
        gw_http_respond_error(r, 409, "not_retryable", msg);
        return;
    }
    if (strcmp(outcome, "insufficient_credits") == 0) {
        snprintf(msg, sizeof(msg), "the balance does not cover the retry's %s credit(s); nothing was changed",
                 PQgetvalue(res, 0, 2));
        gw_http_respond_error(r, 402, "insufficient_credits", msg);
        return;
    }
    json_t *o = json_pack("{s:s, s:s, s:I}", "id", gw_http_param(r, 0), "status", status, "credits_charged",
                          (json_int_t)atol(PQgetvalue(res, 0, 2)));
    char *s = json_dumps(o, JSON_COMPACT);
    gw_http_respond_json(r, 200, s);
    free(s);
    json_decref(o);
}

static void on_job_retry(gw_http_req_t *r, void *data)
{
    gw_app_t *app = data;
    if (!job_request_ok(app, r))
        return;
    const char *params[] = {gw_http_param(r, 0)};
    gw_pg_query(app->pg, "gw_api_retry", "SELECT status, outcome, credits FROM glint_retry_job($1::uuid)", 1, params, 0,
                on_retry_row, r);
}

void gw_api_register(gw_app_t *app)
{
    gw_server_route(app->server, "GET", "/", on_index, app);
    gw_server_route(app->server, "GET", "/assets/*", on_asset, app);
    gw_server_route(app->server, "GET", "/openapi.json", on_openapi, app);
    gw_server_route(app->server, "GET", "/health", on_health, app);
    gw_server_route(app->server, "GET", "/livez", on_livez, app);
    gw_server_route(app->server, "GET", "/readyz", on_readyz, app);
    gw_server_route(app->server, "GET", "/metrics", on_metrics, app);
    gw_server_route(app->server, "GET", "/worker/jobs", on_job_list, app);
    gw_server_route(app->server, "GET", "/worker/history", on_history, app);
    gw_server_route(app->server, "GET", "/worker/jobs/*", on_job_get, app);
    gw_server_route(app->server, "POST", "/worker/jobs/*/cancel", on_job_cancel, app);
    gw_server_route(app->server, "POST", "/worker/jobs/*/retry", on_job_retry, app);
}
