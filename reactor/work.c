/* Thread-pool hand-off: uv_queue_work with a cancelled flag that only the loop thread reads or writes. */
#include "reactor/work.h"
#include <stdlib.h>

struct st_gw_work_t {
    uv_work_t req; /* first: the after-work callback receives it */
    gw_work_fn fn;
    void *arg;
    gw_work_done_cb done;
    void *data;
    bool cancelled;
};

static size_t active;

static void on_work(uv_work_t *req)
{
    gw_work_t *w = (gw_work_t *)req;
    w->fn(w->arg);
}

static void on_after_work(uv_work_t *req, int status)
{
    gw_work_t *w = (gw_work_t *)req;
    active--;
    w->done(w->arg, w->cancelled || status != 0, w->data);
    free(w);
}

/* Submission refused: report on the next loop iteration, never from inside the caller. */
static void on_refused(uv_handle_t *h)
{
    gw_work_t *w = h->data;
    free(h);
    on_after_work(&w->req, UV_ECANCELED);
}

gw_work_t *gw_work_submit(uv_loop_t *loop, gw_work_fn fn, void *arg, gw_work_done_cb done, void *data)
{
    gw_work_t *w = calloc(1, sizeof(*w));
    if (w == NULL)
        abort();
    w->fn = fn;
    w->arg = arg;
    w->done = done;
    w->data = data;
    active++;
    if (uv_queue_work(loop, &w->req, on_work, on_after_work) != 0) {
        uv_idle_t *idle = calloc(1, sizeof(*idle));
        if (idle == NULL || uv_idle_init(loop, idle) != 0)
            abort();
        w->cancelled = true;
        idle->data = w;
        uv_close((uv_handle_t *)idle, on_refused);
    }
    return w;
}

void gw_work_cancel(gw_work_t *w)
{
    if (w == NULL || w->cancelled)
        return;
    w->cancelled = true;
    uv_cancel((uv_req_t *)&w->req); /* fails (UV_EBUSY) once running: then it finishes and done says cancelled */
}

size_t gw_work_active(void)
{
    return active;
}
