#include "handlers/remote.h"
#include "handlers/media.h"
#include "handlers/upload.h"
#include "reactor/log.h"
#include <dirent.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A job still being worked on: under a live lease, or held by this very process ($1) even if a late heartbeat let
 * its lease lapse for a moment. */
#define LIVE_JOB "j.status = 'PROCESSING' AND (j.lease_expires_at > clock_timestamp() OR j.locked_by = $1)"

void gw_remote_record(gw_pg_t *pg, const char *job_id, const char *display_name, const char *worker, gw_pg_cb cb, void *data)
{
    const char *p[] = {job_id, display_name, worker};
    gw_pg_query(pg, "gw_remote_record",
                "INSERT INTO glint_remote_files (job_id, display_name, worker) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING", 3, p,
                GW_PG_RETRY, cb, data);
}

void gw_remote_named(gw_pg_t *pg, const char *job_id, const char *display_name, const char *file_name)
{
    const char *p[] = {job_id, display_name, file_name};
    gw_pg_query(pg, "gw_remote_named", "UPDATE glint_remote_files SET file_name = $3 WHERE job_id = $1 AND display_name = $2", 3, p,
                GW_PG_RETRY, NULL, NULL);
}

void gw_remote_forget(gw_pg_t *pg, const char *job_id, const char *display_name)
{
    const char *p[] = {job_id, display_name};
    gw_pg_query(pg, "gw_remote_forget", "DELETE FROM glint_remote_files WHERE job_id = $1 AND display_name = $2", 2, p, GW_PG_RETRY,
                NULL, NULL);
}

void gw_credits_reconcile(gw_pg_t *pg, const char *job_id, const char *worker, double duration_s, gw_pg_cb cb, void *data)
{
    char dur[32];
    snprintf(dur, sizeof(dur), "%.3f", duration_s);
    const char *p[] = {job_id, worker, dur};
    gw_pg_query(pg, "gw_reconcile", "SELECT glint_reconcile_credits($1, $2, $3::numeric)", 3, p, GW_PG_RETRY, cb, data);
}

/* ---- the sweeper ---- */

typedef struct st_sweep_del_t {
    struct st_sweep_del_t *next, *prev;
    gw_sweeper_t *s;
    gw_fetch_t *req;
    char job_id[37];
    char *display;
} sweep_del_t;

struct st_gw_sweeper_t {
    uv_timer_t timer; /* first */
    gw_pg_t *pg;
    gw_fetcher_t *fetcher;
    char *base, *key, *work_dir;
    uint64_t interval_ms;
    const bool *stop;
    gw_queue_t *const *queue;
    bool query_inflight;
    sweep_del_t *dels; /* DELETEs in flight */
};

static void del_free(sweep_del_t *d)
{
    if (d->prev != NULL)
        d->prev->next = d->next;
    else
        d->s->dels = d->next;
    if (d->next != NULL)
        d->next->prev = d->prev;
    free(d->display);
    free(d);
}

static void on_swept_delete(gw_fetch_t *req, void *data)
{
    sweep_del_t *d = data;
    if (gw_files_delete_gone(req)) {
        gw_job_log(GW_LOG_INFO, d->job_id, "recovery: deleted a remote file left by an earlier run");
        gw_remote_forget(d->s->pg, d->job_id, d->display);
    }
    gw_fetch_free(req);
    del_free(d);
}

static sweep_del_t *del_new(gw_sweeper_t *s, const char *job_id, const char *display)
{
    sweep_del_t *d = calloc(1, sizeof(*d));
    if (d == NULL || (d->display = strdup(display)) == NULL)
        abort();
    d->s = s;
    snprintf(d->job_id, sizeof(d->job_id), "%s", job_id);
    return d;
}

static void del_link(sweep_del_t *d)
{
    d->next = d->s->dels;
    if (d->s->dels != NULL)
        d->s->dels->prev = d;
    d->s->dels = d;
}

static void delete_file(gw_sweeper_t *s, const char *job_id, const char *display, const char *file_name)
{
    sweep_del_t *d = del_new(s, job_id, display);
    if ((d->req = gw_files_delete(s->fetcher, s->base, s->key, file_name, on_swept_delete, d)) == NULL) {
        free(d->display);
        free(d);
        return;
    }
    del_link(d);
}

/* files.list answered: delete the files carrying the row's display name (a finalize whose name was never recorded),
 * or forget the row when there is none (the upload never finished; the service expires unfinished uploads). */
static void on_swept_list(gw_fetch_t *req, void *data)
{
    sweep_del_t *d = data;
    size_t len, found = 0;
    const char *body = gw_fetch_data(req, &len);
    json_t *root = gw_fetch_status(req) == 200 ? json_loadb(body, len, 0, NULL) : NULL, *f;
    size_t i;
    json_array_foreach(json_object_get(root, "files"), i, f)
    {
        const char *name = json_string_value(json_object_get(f, "name"));
        const char *shown = json_string_value(json_object_get(f, "displayName"));
        if (name != NULL && shown != NULL && strcmp(shown, d->display) == 0) {
            delete_file(d->s, d->job_id, d->display, name);
            found++;
        }
    }
    if (root != NULL && found == 0)
        gw_remote_forget(d->s->pg, d->job_id, d->display);
    json_decref(root);
    gw_fetch_free(req);
    del_free(d);
}

static void list_files(gw_sweeper_t *s, const char *job_id, const char *display)
{
    size_t n = strlen(s->base);
    char *url = malloc(n + 64);
    if (url == NULL)
        abort();
    snprintf(url, n + 64, "%.*s/v1beta/files?pageSize=100", (int)(n > 0 && s->base[n - 1] == '/' ? n - 1 : n), s->base);
    sweep_del_t *d = del_new(s, job_id, display);
    d->req = gw_fetch_new(s->fetcher, "GET", url);
    free(url);
    gw_fetch_header(d->req, "x-goog-api-key", s->key);
    gw_fetch_timeout(d->req, 10000, 5000);
    if (gw_fetch_start(d->req, on_swept_list, d) != 0) {
        gw_fetch_cancel(d->req);
        free(d->display);
        free(d);
        return;
    }
    del_link(d);
}

static void sweep_remote_row(gw_sweeper_t *s, const char *job_id, const char *display, const char *file_name)
{
    if (s->key == NULL)
        return;
    if (file_name == NULL)
        list_files(s, job_id, display);
    else
        delete_file(s, job_id, display, file_name);
}

static void on_remote_rows(PGresult *res, const char *error, void *data)
{
    gw_sweeper_t *s = data;
    s->query_inflight = false;
    if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK) {
        gw_warn("recovery: listing leftover remote files failed: %s", error ? error : PQresultErrorMessage(res));
        return;
    }
    for (int i = 0; i < PQntuples(res); i++)
        sweep_remote_row(s, PQgetvalue(res, i, 0), PQgetvalue(res, i, 1), PQgetisnull(res, i, 2) ? NULL : PQgetvalue(res, i, 2));
}

static void on_stale_dirs(PGresult *res, const char *error, void *data)
{
    gw_sweeper_t *s = data;
    if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK) {
        gw_warn("recovery: checking scratch dirs failed: %s", error ? error : PQresultErrorMessage(res));
        return;
    }
    for (int i = 0; i < PQntuples(res); i++) {
        char path[4096];
        snprintf(path, sizeof(path), "%s/%s", s->work_dir, PQgetvalue(res, i, 0));
        gw_info("recovery: removing stale scratch dir %s", path);
        gw_media_rmtree(path);
    }
}

static const char *worker_id(const gw_sweeper_t *s)
{
    return s->queue != NULL && *s->queue != NULL ? gw_queue_worker_id(*s->queue) : "";
}

/* Scratch dirs whose job is not live: one query with the dir names and their job ids. */
static void sweep_dirs(gw_sweeper_t *s)
{
    DIR *d = opendir(s->work_dir);
    if (d == NULL)
        return;
    json_t *names = json_array(), *ids = json_array();
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        char id[37];
        if (gw_media_scratch_job(e->d_name, id) == 0) {
            json_array_append_new(names, json_string(e->d_name));
            json_array_append_new(ids, json_string(id));
        }
    }
    closedir(d);
    if (json_array_size(names) > 0) {
        char *n = json_dumps(names, JSON_COMPACT), *i = json_dumps(ids, JSON_COMPACT);
        const char *p[] = {worker_id(s), n, i};
        gw_pg_query(s->pg, NULL,
                    "SELECT d.name FROM jsonb_array_elements_text($2::jsonb) WITH ORDINALITY d(name, k)"
                    " JOIN jsonb_array_elements_text($3::jsonb) WITH ORDINALITY x(id, k) USING (k)"
                    " WHERE NOT EXISTS (SELECT 1 FROM analysis_jobs j WHERE j.id = x.id::uuid AND " LIVE_JOB ")",
                    3, p, 0, on_stale_dirs, s);
        free(n);
        free(i);
    }
    json_decref(names);
    json_decref(ids);
}

static void on_sweep(uv_timer_t *t)
{
    gw_sweeper_t *s = (gw_sweeper_t *)t;
    if (*s->stop || !gw_pg_connected(s->pg) || s->query_inflight)
        return;
    s->query_inflight = true;
    const char *p[] = {worker_id(s)};
    gw_pg_query(s->pg, "gw_remote_leftovers",
                "SELECT r.job_id, r.display_name, r.file_name FROM glint_remote_files r JOIN analysis_jobs j ON j.id = r.job_id"
                " WHERE NOT (" LIVE_JOB ") ORDER BY r.created_at LIMIT 100",
                1, p, 0, on_remote_rows, s);
    sweep_dirs(s);
}

gw_sweeper_t *gw_sweeper_start(uv_loop_t *loop, gw_pg_t *pg, gw_fetcher_t *fetcher, const gw_sweeper_opts_t *o)
{
    gw_sweeper_t *s = calloc(1, sizeof(*s));
    if (s == NULL || uv_timer_init(loop, &s->timer) != 0)
        abort();
    s->pg = pg;
    s->fetcher = fetcher;
    s->base = strdup(o->base_url ? o->base_url : "");
    s->key = o->api_key != NULL && *o->api_key != '\0' ? strdup(o->api_key) : NULL;
    s->work_dir = strdup(o->work_dir ? o->work_dir : "/tmp");
    s->stop = o->stop;
    s->queue = o->queue;
    if (s->base == NULL || s->work_dir == NULL)
        abort();
    if (uv_timer_start(&s->timer, on_sweep, o->first_ms, o->interval_ms) != 0)
        abort();
    uv_unref((uv_handle_t *)&s->timer); /* never keeps the loop (or a shutdown) waiting */
    return s;
}

void gw_sweeper_free(gw_sweeper_t *s)
{
    if (s == NULL)
        return;
    uv_close((uv_handle_t *)&s->timer, NULL);
    uv_run(s->timer.loop, UV_RUN_NOWAIT); /* its close callback */
    while (s->dels != NULL)
        del_free(s->dels); /* their transfers went with the fetcher */
    free(s->base);
    free(s->key);
    free(s->work_dir);
    free(s);
}
