/* The production pipeline: every claimed job runs through the job state machine (handlers/job.h); this file wires it to
 * the queue and owns what spans jobs: the crash-recovery sweeper (models are checked by handlers/modelcheck.c).
 * Excluded from the gwcore library because it defines gw_pipeline_init (tests/pipeline_test.c defines the test
 * binary's). */
#include "handlers/app.h"
#include "handlers/gemini.h"
#include "handlers/governor.h"
#include "handlers/job.h"
#include "handlers/local_analyzer.h"
#include "handlers/metrics.h"
#include "handlers/remote.h"
#include "reactor/log.h"
#include <stdlib.h>
#include <string.h>

typedef struct st_pipeline_t {
    gw_app_t *app;
    gw_sweeper_t *sweeper;
} pipeline_t;

static void start(gw_job_t *job, void *ctx)
{
    pipeline_t *pl = ctx;
    gw_run_start(pl->app, job);
}

static void abort_job(gw_job_t *job, void *ctx)
{
    gw_run_abort(job);
}

int gw_pipeline_init(gw_app_t *app, gw_pipeline_t *out)
{
    pipeline_t *pl = calloc(1, sizeof(*pl));
    if (pl == NULL)
        abort();
    pl->app = app;
    app->pipeline_ctx = pl;
    out->start = start;
    out->abort = abort_job;
    out->ctx = pl;
    char err[256]; /* GOVERNOR HOOK: the shared Gemini quota; NULL pg (`glint-worker analyze`) = local arithmetic only */
    if ((app->governor = gw_governor_create(app->loop, app->pg, app->cfg, err, sizeof(err))) == NULL) {
        gw_error("%s", err);
        return -1;
    }
    if (gw_analyzer_is_local(app->cfg->analyzer, app->cfg->gemini_api_key)) {
        gw_info("analyzer: local (local-extractive, no network)%s",
                app->cfg->gemini_api_key && *app->cfg->gemini_api_key ? "" : ": GEMINI_API_KEY is not set");
    } else if (app->cfg->gemini_api_key == NULL || *app->cfg->gemini_api_key == '\0') { /* models: handlers/modelcheck.c */
        gw_warn("GEMINI_API_KEY is not set: jobs will wait (retry) until it is");
    }
    /* crash recovery: leftovers of earlier runs (remote files, scratch dirs), at start and then every lease period */
    uint64_t every = (uint64_t)app->cfg->lease_seconds * 1000;
    gw_sweeper_opts_t so = {app->cfg->gemini_base_url,   app->cfg->gemini_api_key, app->cfg->work_dir, 1000,
                            every > 5000 ? every : 5000, &app->draining,           &app->queue};
    if (app->pg != NULL) /* `glint-worker analyze` runs without a database */
        pl->sweeper = gw_sweeper_start(app->loop, app->pg, app->fetcher, &so);
    return 0;
}

void gw_pipeline_dispose(gw_app_t *app)
{
    pipeline_t *pl = app->pipeline_ctx;
    if (pl != NULL) {
        gw_sweeper_free(pl->sweeper);
        gw_governor_free(app->governor); /* GOVERNOR HOOK */
        app->governor = NULL;
        free(pl);
        app->pipeline_ctx = NULL;
    }
    gw_metrics_reset();
}
