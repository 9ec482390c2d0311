/* Test-only pipeline for the queue's integration tests and benchmarks (linked into glint-worker-test, never into
 * glint-worker). The job's video_url says what to do:
 *   test://noop              complete at once
 *   test://sleep/MS          complete after MS milliseconds
 *   test://fail/permanent    FAILED + refund
 *   test://fail/transient    retry after 100 ms until attempts run out
 *   test://flaky             transient failure on the first attempt, then success
 * GW_TEST_EXEC_LOG=path appends one line per execution event, "start|done|fail|abort JOB ATTEMPT WORKER EPOCH_MS":
 * the chaos tests audit it against the database (a job must not be completed by two executions). */
#include "handlers/app.h"
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

typedef struct st_test_job_t {
    uv_timer_t timer; /* first: the close callback receives it */
    gw_job_t *job;
} test_job_t;

/* O_APPEND: lines from concurrent worker processes never interleave. */
static void exec_log(const gw_job_t *job, const char *event)
{
    const char *path = getenv("GW_TEST_EXEC_LOG");
    if (path == NULL || *path == '\0')
        return;
    struct timeval tv;
    gettimeofday(&tv, NULL);
    char line[256];
    int n = snprintf(line, sizeof(line), "%s %s %d %s %lld\n", event, job->id, job->attempts, gw_queue_worker_id(job->queue),
                     (long long)tv.tv_sec * 1000 + tv.tv_usec / 1000);
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return;
    if (n > 0 && write(fd, line, (size_t)n) != n)
        fprintf(stderr, "pipeline_test: short write to GW_TEST_EXEC_LOG\n");
    close(fd);
}

/* "execution" names the run that produced the result: the audit matches it with the database's locked_by/attempts. */
static json_t *fake_result(const gw_job_t *job)
{
    char execution[200];
    snprintf(execution, sizeof(execution), "%s#%d", gw_queue_worker_id(job->queue), job->attempts);
    return json_pack("{s:s, s:s, s:[s], s:[{s:s, s:s, s:[]}], s:[s], s:s}", "title", "test", "summary", job->video_url,
                     "keyTakeaways", "ok", "timeline", "timestamp", "00:00", "description", "start", "details", "keywords", "test",
                     "execution", execution);
}

static void complete(gw_job_t *job)
{
    exec_log(job, "done");
    gw_job_complete(job, fake_result(job), "test-pipeline", NULL, NULL);
}

static void fail(gw_job_t *job, const char *code, const char *message, int64_t retry_ms)
{
    exec_log(job, "fail");
    gw_job_fail(job, code, message, retry_ms);
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
    complete(job);
}

static void start(gw_job_t *job, void *ctx)
{
    gw_app_t *app = ctx;
    const char *u = job->video_url;
    exec_log(job, "start");
    if (strncmp(u, "test://sleep/", 13) == 0) {
        test_job_t *tj = calloc(1, sizeof(*tj));
        if (tj == NULL)
            abort();
        tj->job = job;
        job->pipeline_data = tj;
        uv_timer_init(app->loop, &tj->timer);
        uv_timer_start(&tj->timer, on_timer, strtoull(u + 13, NULL, 10), 0);
    } else if (strcmp(u, "test://fail/permanent") == 0) {
        fail(job, "test_permanent", "permanent test failure", -1);
    } else if (strcmp(u, "test://fail/transient") == 0) {
        fail(job, "test_transient", "transient test failure", 100);
    } else if (strcmp(u, "test://flaky") == 0 && job->attempts == 1) {
        fail(job, "test_transient", "first attempt fails", 100);
    } else {
        complete(job);
    }
}

static void abort_job(gw_job_t *job, void *ctx)
{
    test_job_t *tj = job->pipeline_data;
    exec_log(job, "abort");
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
