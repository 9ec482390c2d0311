#ifndef GW_WORK_H
#define GW_WORK_H
/* CPU-bound work off the loop thread: a function runs on libuv's thread pool (uv_queue_work) and its completion is
 * delivered back on the loop. The work function must touch only its own argument (no loop, no handles, no logging
 * through shared state); the done callback runs on the loop and owns the argument from then on.
 * Cancelling: gw_work_cancel() removes queued work from the pool, or lets running work finish; either way done runs
 * exactly once, later, with cancelled = true, so the owner can free the argument there and never earlier. */
#include <stdbool.h>
#include <uv.h>

typedef struct st_gw_work_t gw_work_t;

typedef void (*gw_work_fn)(void *arg);                                  /* on a pool thread */
typedef void (*gw_work_done_cb)(void *arg, bool cancelled, void *data); /* on the loop, exactly once */

/* Queues fn(arg); done(arg, cancelled, data) follows on the loop. Never returns NULL (allocation failure aborts; a
 * refused submission is reported through done with cancelled = true). The handle is valid until done runs. */
gw_work_t *gw_work_submit(uv_loop_t *loop, gw_work_fn fn, void *arg, gw_work_done_cb done, void *data);
/* Marks the work cancelled (done will say so) and removes it from the pool's queue when it has not started yet. Only
 * legal before done ran; repeated calls change nothing. */
void gw_work_cancel(gw_work_t *w);
size_t gw_work_active(void); /* submitted and not yet done (for shutdown and tests) */

#endif
