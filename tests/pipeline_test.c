/* Test-only pipeline for the queue's integration tests and benchmarks (linked into glint-worker-test, never into
 * glint-worker). The job's video_url says what to do:
 *   test://noop              complete at once
 *   test://sleep/MS          complete after MS milliseconds
 *   test://fail/permanent    FAILED + refund
 *   test://fail/transient    retry after 100 ms until attempts run out
 *   test://flaky             transient failure on the first attempt, then success */
#include "handlers/app.h"
#include <stdlib.h>
#include <string.h>

typedef struct st_test_job_t {
    uv_timer_t timer; /* first: the close callback receives it */
    gw_job_t *job;
} test_job_t;

static json_t *fake_result(const gw_job_t *job)
{
    return json_pack("{s:s, s:s, s:[s], s:[{s:s, s:s, s:[]}], s:[s]}", "title", "test", "summary", job->video_url, "keyTakeaways",
                     "ok", "timeline", "timestamp", "00:00", "description", "start", "details", "keywords", "test");
}

static void timer_closed(uv_handle_t *h)
{
    free(h);
}

static void on_timer(uv_timer_t *t)
{
    test_job_t *tj = (test_job_t *)t;
    gw_job_t *job = tj->job;
    job->pipeline_data = NULL;
    uv_close((uv_handle_t *)&tj->timer, timer_closed);
    gw_job_complete(job, fake_result(job), "test-pipeline", NULL, NULL);
}

static void start(gw_job_t *job, void *ctx)
{
    gw_app_t *app = ctx;
    const char *u = job->video_url;
    if (strncmp(u, "test://sleep/", 13) == 0) {
        test_job_t *tj = calloc(1, sizeof(*tj));
        if (tj == NULL)
            abort();
        tj->job = job;
        job->pipeline_data = tj;
        uv_timer_init(app->loop, &tj->timer);
        uv_timer_start(&tj->timer, on_timer, strtoull(u + 13, NULL, 10), 0);
    } else if (strcmp(u, "test://fail/permanent") == 0) {
        gw_job_fail(job, "test_permanent", "permanent test failure", -1);
    } else if (strcmp(u, "test://fail/transient") == 0) {
        gw_job_fail(job, "test_transient", "transient test failure", 100);
    } else if (strcmp(u, "test://flaky") == 0 && job->attempts == 1) {
        gw_job_fail(job, "test_transient", "first attempt fails", 100);
    } else {
        gw_job_complete(job, fake_result(job), "test-pipeline", NULL, NULL);
    }
}

static void abort_job(gw_job_t *job, void *ctx)
{
    test_job_t *tj = job->pipeline_data;
    if (tj != NULL) {
        job->pipeline_data = NULL;
        uv_timer_stop(&tj->timer);
        uv_close((uv_handle_t *)&tj->timer, timer_closed);
    }
    gw_job_aborted(job);
}

int gw_pipeline_init(gw_app_t *app, gw_pipeline_t *out)
{
    out->start = start;
    out->abort = abort_job;
    out->ctx = app;
    return 0;
}

void gw_pipeline_dispose(gw_app_t *app)
{
}
