/* Result reuse: the one database call before a job's source stage (handlers/reuse.h). */
#include "handlers/reuse.h"
#include "handlers/local_analyzer.h"
#include "handlers/metrics.h"
#include "handlers/url.h"
#include "reactor/log.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct st_reuse_call_t {
    gw_run_t *run;
    void (*next)(gw_run_t *run);
} reuse_call_t;

char *gw_reuse_key_base(const gw_run_t *run)
{
    if (run->source != GW_SOURCE_REMOTE || run->url == NULL)
        return NULL;
    const gw_settings_t *cfg = run->app->cfg;
    const char *model = run->local_analyzer ? GW_LOCAL_MODEL : run->job->deep ? cfg->gemini_pro_model : cfg->gemini_flash_model;
    char *ident = gw_url_identity(run->video_id, run->url);
    size_t n = strlen(ident) + strlen(model) + 48;
    char *key = malloc(n);
    if (key == NULL)
        abort();
    snprintf(key, n, "%s|%s|%s|p%d", ident, run->job->deep ? "deep" : "standard", model, GW_PROMPT_VERSION);
    free(ident);
    return key;
}

static void on_answer(PGresult *res, const char *error, void *data)
{
    reuse_call_t *c = data;
    gw_run_t *run = c->run;
    void (*next)(gw_run_t *) = c->next;
    free(c);
    if (!gw_run_pg_end(run))
        return;
    if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
        gw_job_log(GW_LOG_WARN, run->job->id, "reuse check failed: %s", error ? error : res ? PQresultErrorMessage(res) : "?");
        gw_run_fail(run, "database_unavailable", "The worker could not prepare this job", true, 0);
        return;
    }
    const char *action = PQgetvalue(res, 0, 0);
    if (strcmp(action, "reused") == 0) {
        long saved = atol(PQgetvalue(res, 0, 3));
        gw_metrics_reuse(saved);
        gw_job_log(GW_LOG_INFO, run->job->id, "completed from job %s's analysis (%ld Gemini tokens saved)", PQgetvalue(res, 0, 2),
                   saved);
        gw_run_settled(run, GW_OUT_REUSED);
    } else if (strcmp(action, "wait") == 0) {
        gw_job_log(GW_LOG_INFO, run->job->id, "another job is analysing this video: waiting for its result");
        gw_run_settled(run, GW_OUT_WAITING);
    } else if (strcmp(action, "run") == 0) {
        snprintf(run->language, sizeof(run->language), "%s", PQgetvalue(res, 0, 1));
        next(run);
    } else { /* 'lost': cancelled or rescued meanwhile (or a resend found it settled): nothing to write */
        gw_job_log(GW_LOG_WARN, run->job->id, "the job is no longer held by this worker");
        gw_run_settled(run, GW_OUT_WAITING);
    }
}

void gw_reuse_begin(gw_run_t *run, void (*next)(gw_run_t *run))
{
    reuse_call_t *c = malloc(sizeof(*c));
    if (c == NULL)
        abort();
    *c = (reuse_call_t){run, next};
    char *key = gw_reuse_key_base(run), ttl[24];
    snprintf(ttl, sizeof(ttl), "%ld", run->app->cfg->result_reuse_ttl_hours);
    const char *p[] = {run->job->id, gw_queue_worker_id(run->job->queue), key, ttl};
    gw_run_pg_begin(run);
    /* a resend after a reconnect finds the job settled and answers 'lost', which changes nothing */
    gw_pg_query(gw_run_pg(run), "gw_reuse",
                "SELECT action, language, source_id, tokens_saved FROM glint_reuse_job($1, $2, $3, $4::int)", 4, p, GW_PG_RETRY,
                on_answer, c);
    free(key);
}
