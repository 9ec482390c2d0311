#ifndef GW_REMOTE_H
#define GW_REMOTE_H
/* Bookkeeping that keeps deep mode from leaking anything: the remote Files API objects of each job (table
 * glint_remote_files, sql/005_deep.sql), the sweep that deletes leftovers of crashed runs and stale local scratch dirs,
 * and the credit reconcile once a video's duration is known. */
#include "handlers/queue.h"
#include "reactor/fetch.h"
#include "reactor/pg.h"
#include <stdbool.h>
#include <uv.h>

/* Rows: written before an upload starts, named once the file exists, removed when its DELETE succeeded.
 * cb may be NULL (fire and forget); all survive a reconnect (harmless to repeat). */
void gw_remote_record(gw_pg_t *pg, const char *job_id, const char *display_name, const char *worker, gw_pg_cb cb, void *data);
void gw_remote_named(gw_pg_t *pg, const char *job_id, const char *display_name, const char *file_name);
void gw_remote_forget(gw_pg_t *pg, const char *job_id, const char *display_name);

/* SELECT glint_reconcile_credits(job, worker, duration): the answer's single text value (NULL = job not ours). */
void gw_credits_reconcile(gw_pg_t *pg, const char *job_id, const char *worker, double duration_s, gw_pg_cb cb, void *data);

typedef struct st_gw_sweeper_t gw_sweeper_t;
typedef struct st_gw_sweeper_opts_t {
    const char *base_url, *api_key; /* NULL key: remote files are not touched */
    const char *work_dir;
    uint64_t first_ms, interval_ms;
    const bool *stop;         /* no sweep while it is true (shutdown) */
    gw_queue_t *const *queue; /* its worker id: jobs this process holds are never swept (the queue may come later) */
} gw_sweeper_opts_t;
/* Sweeps at first_ms and then every interval_ms: deletes remote files whose job is not PROCESSING under a live lease
 * or held by this process (and forgets their rows; a row without a file name is looked up by display name), and
 * removes WORK_DIR/glint-<job>-* dirs whose job is not live in the same sense. */
gw_sweeper_t *gw_sweeper_start(uv_loop_t *loop, gw_pg_t *pg, gw_fetcher_t *fetcher, const gw_sweeper_opts_t *opts);
/* After the loop ran dry: closes its (unreferenced) timer and frees what is left (transfers cancelled by the fetcher's
 * close never call back). */
void gw_sweeper_free(gw_sweeper_t *s);

#endif
