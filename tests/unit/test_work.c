/* reactor/work: results come back on the loop thread; queued work can be cancelled before it runs; running work that
 * is cancelled finishes, and its done callback says so; the loop closes cleanly afterwards. */
#include "check.h"
#include "reactor/work.h"
#include <stdlib.h>

typedef struct st_item_t {
    uv_sem_t *started, *gate; /* NULL: run at once */
    long n, sum;
    bool ran, done, cancelled;
    uv_thread_t worker_thread;
} item_t;

static uv_thread_t loop_thread;
static int done_on_loop;

static void sum_to_n(void *arg)
{
    item_t *it = arg;
    if (it->started != NULL)
        uv_sem_post(it->started);
    if (it->gate != NULL)
        uv_sem_wait(it->gate);
    it->worker_thread = uv_thread_self();
    for (long i = 1; i <= it->n; i++)
        it->sum += i;
    it->ran = true;
}

static void on_done(void *arg, bool cancelled, void *data)
{
    item_t *it = arg;
    uv_thread_t self = uv_thread_self();
    done_on_loop += uv_thread_equal(&self, &loop_thread);
    it->done = true;
    it->cancelled = cancelled;
    (*(int *)data)++;
}

static void test_results_on_loop(uv_loop_t *loop)
{
    item_t items[8] = {{0}};
    int ndone = 0;
    done_on_loop = 0;
    for (int i = 0; i < 8; i++) {
        items[i].n = 100000 * (i + 1);
        gw_work_submit(loop, sum_to_n, &items[i], on_done, &ndone);
    }
    CHECK_INT(gw_work_active(), 8);
    CHECK_INT(uv_run(loop, UV_RUN_DEFAULT), 0);
    CHECK_INT(ndone, 8);
    CHECK_INT(done_on_loop, 8);
    CHECK_INT(gw_work_active(), 0);
    for (int i = 0; i < 8; i++) {
        long n = items[i].n;
        CHECK(items[i].ran && !items[i].cancelled);
        CHECK(items[i].sum == n * (n + 1) / 2);
        CHECK(!uv_thread_equal(&items[i].worker_thread, &loop_thread));
    }
}

/* One pool thread (UV_THREADPOOL_SIZE=1): the first item blocks it, so the second is still queued when cancelled. */
static void test_cancel(uv_loop_t *loop)
{
    uv_sem_t started, gate;
    item_t running = {0}, queued = {0};
    int ndone = 0;
    CHECK_INT(uv_sem_init(&started, 0), 0);
    CHECK_INT(uv_sem_init(&gate, 0), 0);
    running.started = &started;
    running.gate = &gate;
    running.n = queued.n = 10;
    gw_work_t *a = gw_work_submit(loop, sum_to_n, &running, on_done, &ndone);
    uv_sem_wait(&started); /* the pool's only thread is now inside the first item */
    gw_work_t *b = gw_work_submit(loop, sum_to_n, &queued, on_done, &ndone);
    gw_work_cancel(b);
    gw_work_cancel(b); /* repeated: no change */
    gw_work_cancel(a); /* running (or about to): it finishes, done says cancelled */
    uv_sem_post(&gate);
    CHECK_INT(uv_run(loop, UV_RUN_DEFAULT), 0);
    CHECK_INT(ndone, 2);
    CHECK(queued.done && queued.cancelled && !queued.ran);
    CHECK(running.done && running.cancelled && running.ran && running.sum == 55);
    CHECK_INT(gw_work_active(), 0);
    uv_sem_destroy(&gate);
    uv_sem_destroy(&started);
}

int main(void)
{
    setenv("UV_THREADPOOL_SIZE", "1", 1); /* read when the pool starts: before the first submission */
    loop_thread = uv_thread_self();
    uv_loop_t loop;
    CHECK_INT(uv_loop_init(&loop), 0);
    test_cancel(&loop);
    test_results_on_loop(&loop);
    CHECK_INT(uv_loop_close(&loop), 0);
    return check_report();
}
