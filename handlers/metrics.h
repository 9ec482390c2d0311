#ifndef GW_METRICS_H
#define GW_METRICS_H
/* Process-wide counters and histograms rendered at /metrics (Prometheus text format 0.0.4). Single-threaded: the
 * loop thread is the only writer and reader. */
#include "handlers/app.h"
#include "reactor/text.h" /* gw_buf_t */
#include <stdbool.h>
#include <stddef.h>

/* The commit the binary was built from; the build defines GW_COMMIT (from git), "unknown" outside a checkout. */
#ifdef GW_COMMIT
#define GW_BUILD_COMMIT GW_COMMIT
#else
#define GW_BUILD_COMMIT "unknown"
#endif

/* status 0 = no HTTP answer (connection error, timeout) */
void gw_metrics_gemini_call(long status);
void gw_metrics_tokens(const char *kind, long n);                /* "prompt", "output", "thoughts" */
void gw_metrics_stage(const char *stage, double seconds);        /* a stage that ended well */
void gw_metrics_stage_failed(const char *stage, double seconds); /* the stage a job failed in */
/* One attempt ended (claim to outcome); outcome: "completed", "failed", "retried", "cancelled", "lost". */
void gw_metrics_job_finished(bool deep, const char *outcome, double seconds);
void gw_metrics_job_waited(bool deep, double seconds); /* created_at to claim */
void gw_metrics_retry(const char *what);               /* "gemini", "job" … */
void gw_metrics_count(const char *name);               /* free-form event counter, e.g. "subprocess_timeout" */
void gw_metrics_cost(const char *model, double usd);   /* glint_gemini_cost_usd_total{model} (handlers/governor.c) */
/* An attempt that ended in an error: code from the catalogue (handlers/errors.c); final = FAILED, else retried. */
void gw_metrics_job_error(const char *code, bool final);
/* A job completed from another job's analysis (handlers/reuse.c); tokens_saved: the Gemini tokens that analysis cost. */
void gw_metrics_reuse(long tokens_saved);
void gw_metrics_pool_wait(const char *pool, double seconds); /* a subprocess-pool grant: "main" or "media" */

void gw_metrics_render(gw_app_t *app, gw_buf_t *out);
void gw_metrics_reset(void); /* frees everything (clean exit) */

#endif
