#include "handlers/api.h"
#include "handlers/metrics.h"
#include "reactor/log.h"
#include <ctype.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static bool valid_uuid(const char *s)
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
    if (!valid_uuid(gw_http_param(r, 0))) {
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
    json_t *o =
        json_pack("{s:s, s:I, s:I, s:s, s:b, s:s, s:s, s:I}", "status", up ? "healthy" : "unhealthy", "active_jobs",
                  (json_int_t)gw_queue_active(app->queue), "max_concurrent", (json_int_t)app->cfg->max_concurrent_jobs, "database",
                  up ? "connected" : "unreachable", "draining", app->draining, "worker_id", gw_queue_worker_id(app->queue),
                  "version", GW_VERSION, "uptime_s", (json_int_t)((uv_hrtime() / 1000000 - app->started_at_ms) / 1000));
    char *s = json_dumps(o, JSON_COMPACT);
    gw_http_respond_json(r, up ? 200 : 503, s);
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

/* ---- GET /worker/jobs/{id} ---- */

const char gw_api_job_sql[] =
    "SELECT json_build_object('id', j.id, 'user_id', j.user_id, 'video_url', j.video_url, 'mode', j.mode,"
    " 'status', j.status, 'stage', j.stage, 'attempts', j.attempts, 'max_attempts', j.max_attempts,"
    " 'credits_charged', j.credits_charged, 'error', CASE WHEN j.error_code IS NULL THEN NULL"
    " ELSE json_build_object('code', j.error_code, 'message', j.error_message) END,"
    " 'created_at', j.created_at, 'started_at', j.started_at, 'finished_at', j.finished_at, 'updated_at', j.updated_at,"
    " 'run_after', CASE WHEN j.status = 'PENDING' THEN j.run_after END,"
    " 'result', CASE WHEN j.status = 'COMPLETED' THEN r.result END,"
    " 'model', r.model, 'usage', CASE WHEN r.job_id IS NULL THEN NULL ELSE json_build_object('prompt_tokens',"
    " r.prompt_tokens, 'output_tokens', r.output_tokens, 'thoughts_tokens', r.thoughts_tokens) END,"
    " 'timings', r.timings)::text"
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

void gw_api_register(gw_app_t *app)
{
    gw_server_route(app->server, "GET", "/health", on_health, app);
    gw_server_route(app->server, "GET", "/metrics", on_metrics, app);
    gw_server_route(app->server, "GET", "/worker/jobs/*", on_job_get, app);
    gw_server_route(app->server, "POST", "/worker/jobs/*/cancel", on_job_cancel, app);
}
