#ifndef GW_APP_H
#define GW_APP_H
/* What the daemon's parts share: the loop and its I/O sources, configuration and the queue. */
#include "handlers/queue.h"
#include "handlers/settings.h"
#include "reactor/fetch.h"
#include "reactor/pg.h"
#include "reactor/server.h"
#include <uv.h>

typedef struct st_gw_app_t {
    uv_loop_t *loop;
    gw_settings_t *cfg;
    gw_pg_t *pg;
    gw_queue_t *queue;
    gw_server_t *server;
    gw_fetcher_t *fetcher;
    gw_sentry_t *sentry;                   /* NULL unless SENTRY_DSN is set */
    struct st_gw_modelcheck_t *modelcheck; /* NULL when no model is needed (local analyzer) */
    struct st_gw_governor_t *governor;     /* the shared Gemini quota (handlers/governor.h); NULL in the test binary */
    uint64_t started_at_ms;
    bool draining; /* SIGTERM seen: not claiming */
    void *pipeline_ctx;
} gw_app_t;

/* Provided by handlers/pipeline.c (production) or tests/pipeline_test.c (test binary). */
int gw_pipeline_init(gw_app_t *app, gw_pipeline_t *out);
void gw_pipeline_dispose(gw_app_t *app);

#endif
