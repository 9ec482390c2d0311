/* The job state machine (handlers/job.h): the transition table, the one function that changes state, the outcome path
 * (CLEANUP -> DONE) and the helpers every stage shares (timing, subprocess slots, thread-pool work, queries). */
#include "handlers/job.h"
#include "handlers/errors.h"
#include "handlers/local_analyzer.h"
#include "handlers/localmedia.h"
#include "handlers/media.h"
#include "handlers/metrics.h"
#include "handlers/remote.h"
#include "handlers/result.h"
#include "handlers/reuse.h"
#include "handlers/url.h"
#include "handlers/ytdlp.h"
#include "reactor/log.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define B(s) (1u << (s))
#define ENDS B(GW_RUN_CLEANUP) /* any working state may conclude */

/* to-states allowed from each state (the outcome path aside, which every working state may take) */
static const unsigned transitions[GW_RUN_NSTATES] = {
    [GW_RUN_INTAKE] = B(GW_RUN_FETCH) | B(GW_RUN_PROBE) | ENDS,
    [GW_RUN_FETCH] = B(GW_RUN_CREDITS) | B(GW_RUN_MEDIA) | B(GW_RUN_ANALYZE) | ENDS,
    [GW_RUN_PROBE] = B(GW_RUN_TRANSCRIPT) | ENDS,
    [GW_RUN_SUBTITLES] = B(GW_RUN_TRANSCRIPT) | ENDS,
    [GW_RUN_TRANSCRIPT] = B(GW_RUN_SUBTITLES) | B(GW_RUN_CREDITS) | B(GW_RUN_MEDIA) | B(GW_RUN_ANALYZE) | ENDS,
    [GW_RUN_CREDITS] = B(GW_RUN_MEDIA) | B(GW_RUN_ANALYZE) | ENDS,
    [GW_RUN_MEDIA] = B(GW_RUN_CREDITS) | B(GW_RUN_SCENES) | B(GW_RUN_UPLOAD) | B(GW_RUN_ANALYZE) | ENDS,
    [GW_RUN_SCENES] = B(GW_RUN_ANALYZE) | ENDS,
    [GW_RUN_UPLOAD] = B(GW_RUN_ANALYZE) | ENDS,
    [GW_RUN_ANALYZE] = B(GW_RUN_MEDIA) | B(GW_RUN_UPLOAD) | ENDS, /* Gemini refused the media: fetch or upload it again */
    [GW_RUN_CLEANUP] = B(GW_RUN_DONE),
    [GW_RUN_DONE] = 0,
};

static const char *const state_names[GW_RUN_NSTATES] = {"intake", "fetch",  "probe",  "subtitles", "transcript", "credits",
                                                        "media",  "scenes", "upload", "analyze",   "cleanup",    "done"};

bool gw_run_transition_legal(gw_run_state_t from, gw_run_state_t to)
{
    return from < GW_RUN_NSTATES && to < GW_RUN_NSTATES && (transitions[from] & B(to)) != 0;
}

const char *gw_run_state_name(gw_run_state_t s)
{
    return s < GW_RUN_NSTATES ? state_names[s] : "?";
}

static void conclude(gw_run_t *run, gw_outcome_t o);
static void drop_queued(gw_run_t *run);

bool gw_run_strict(void)
{
#ifndef NDEBUG
    return true;
#else
    static int strict = -1;
    if (strict < 0) {
        const char *e = getenv("GW_STRICT_STATES");
        strict = e != NULL && *e != '\0' && strcmp(e, "0") != 0;
    }
    return strict == 1;
#endif
}

bool gw_run_set_state(gw_run_t *run, gw_run_state_t to)
{
    if (gw_run_transition_legal(run->state, to)) {
        run->state = to;
        return true;
    }
    gw_job_log(GW_LOG_ERROR, run->job->id, "impossible job state transition %s -> %s", gw_run_state_name(run->state),
               gw_run_state_name(to));
    if (gw_run_strict())
        abort();
    snprintf(run->code, sizeof(run->code), "internal_error");
    snprintf(run->message, sizeof(run->message), "The worker failed unexpectedly.");
    run->retry_ms = gw_job_retry_delay_ms(run->job, 0);
    conclude(run, GW_OUT_FAIL); /* whatever the caller starts next is awaited and dropped by the cleanup */
    return false;
}

/* ---- bookkeeping ---- */

gw_pg_t *gw_run_pg(gw_run_t *run)
{
    return gw_queue_pg(run->job->queue);
}

void gw_run_forget_remote(gw_run_t *run)
{
    if (gw_run_pg(run) != NULL)
        gw_remote_forget(gw_run_pg(run), run->job->id, run->display);
}

char **gw_run_split_langs(const char *csv)
{
    size_t n = 0, cap = 8;
    char **v = calloc(cap + 1, sizeof(char *)), *copy = strdup(csv ? csv : ""), *save = NULL;
    if (v == NULL || copy == NULL)
        abort();
    for (char *t = strtok_r(copy, ", ", &save); t != NULL && n < cap; t = strtok_r(NULL, ", ", &save))
        v[n++] = strdup(t);
    free(copy);
    return v;
}

void gw_run_free_langs(char **langs)
{
    for (char **p = langs; *p != NULL; p++)
        free(*p);
    free(langs);
}

static void run_closed(uv_handle_t *h)
{
    gw_run_t *run = (gw_run_t *)h;
    for (size_t i = 0; i < GW_RUN_MAX_CHUNKS; i++)
        json_decref(run->partials[i]);
    json_decref(run->timings);
    json_decref(run->result);
    gw_video_meta_free(&run->meta);
    gw_transcript_free(&run->tr);
    free(run->scenes);
    free(run->url);
    free(run->path);
    free(run->file_name);
    free(run->file_uri);
    free(run->gov_body);
    free(run);
}

void gw_run_stage_begin(gw_run_t *run, const char *stage)
{
    run->stage_started = uv_now(run->app->loop);
    gw_job_set_stage(run->job, stage);
}

void gw_run_stage_time(gw_run_t *run, const char *stage, double s)
{
    gw_metrics_stage(stage, s);
    json_object_set_new(run->timings, stage, json_real(s));
    gw_log_event(GW_LOG_INFO, run->job->id, stage, s * 1000.0, "%s done", stage);
}

void gw_run_stage_end(gw_run_t *run, const char *stage)
{
    uv_update_time(run->app->loop); /* a stage may end right after thread-pool work: count all of it */
    gw_run_stage_time(run, stage, (double)(uv_now(run->app->loop) - run->stage_started) / 1000.0);
}

/* ---- outcome: CLEANUP -> DONE ---- */

static void settle(gw_run_t *run);

/* Decides the outcome and starts the cleanup: everything in flight is stopped, then settle() finishes. */
static void conclude(gw_run_t *run, gw_outcome_t o)
{
    if (run->state == GW_RUN_CLEANUP || run->state == GW_RUN_DONE) {
        if (o == GW_OUT_ABORT) /* an abort during cleanup: report that instead */
            run->outcome = GW_OUT_ABORT;
        return;
    }
    if (o == GW_OUT_FAIL && run->stage_started != 0 && json_object_get(run->timings, run->job->stage) == NULL)
        gw_metrics_stage_failed(run->job->stage, (double)(uv_now(run->app->loop) - run->stage_started) / 1000.0);
    run->outcome = o;
    gw_run_set_state(run, GW_RUN_CLEANUP);
    uv_timer_stop(&run->timer);
    gw_governor_cancel(run->gov); /* GOVERNOR HOOK: a call still waiting for its turn is not made */
    run->gov = NULL;
    if (run->req != NULL)
        gw_fetch_cancel(run->req);
    run->req = NULL;
    gw_upload_cancel(run->up);
    run->up = NULL;
    gw_work_cancel(run->work); /* its done callback still comes back to settle() */
    drop_queued(run);
    for (size_t i = 0; i < GW_PROC_NSLOTS; i++)
        if (run->proc[i] != NULL)
            gw_proc_kill(run->proc[i]); /* their callbacks come back to settle() */
    settle(run);
}

void gw_run_fail(gw_run_t *run, const char *code, const char *message, bool transient, int64_t floor_ms)
{
    if (gw_error_find(code) == NULL) {
        gw_job_log(GW_LOG_ERROR, run->job->id, "error code \"%s\" is not in the catalogue (handlers/errors.c)", code);
        if (gw_run_strict())
            abort();
    }
    snprintf(run->code, sizeof(run->code), "%s", code);
    snprintf(run->message, sizeof(run->message), "%s", message);
    run->retry_ms = transient ? gw_job_retry_delay_ms(run->job, floor_ms) : -1;
    conclude(run, GW_OUT_FAIL);
}

void gw_run_defer(gw_run_t *run, const char *code, const char *message, int64_t delay_ms)
{
    snprintf(run->code, sizeof(run->code), "%s", code);
    snprintf(run->message, sizeof(run->message), "%s", message);
    run->retry_ms = delay_ms;
    conclude(run, GW_OUT_DEFER);
}

void gw_run_complete(gw_run_t *run, json_t *result)
{
    gw_result_fill_title(result, run->meta.title);
    gw_run_stage_end(run, "analyze");
    json_object_set_new(run->timings, "total", json_real((double)(uv_now(run->app->loop) - run->run_started) / 1000.0));
    json_object_set_new(run->timings, "chunks", json_integer((json_int_t)run->nchunks));
    if (run->clip_len > 0)
        json_object_set_new(run->timings, "video_segments", json_integer((json_int_t)run->nchunks));
    if (run->job->deep)
        json_object_set_new(run->timings, "video_source", json_string(run->youtube_source ? "youtube_url" : "upload"));
    double usd; /* GOVERNOR HOOK: the job's estimated cost (the API shows it as usage.cost_usd) */
    const gw_settings_t *cfg = run->app->cfg;
    if (!run->local_analyzer && strcmp(run->model_version, GW_LOCAL_MODEL) != 0 &&
        gw_governor_cost(run->app->governor, run->job->deep ? cfg->gemini_pro_model : cfg->gemini_flash_model, &run->usage, &usd))
        json_object_set_new(run->timings, "cost_usd", json_real(usd));
    run->result = result;
    conclude(run, GW_OUT_COMPLETE);
}

void gw_run_settled(gw_run_t *run, gw_outcome_t o)
{
    conclude(run, o);
}

static void report(gw_run_t *run)
{
    gw_run_set_state(run, GW_RUN_DONE);
    run->job->pipeline_data = NULL;
    if (run->scratch[0] != '\0')
        gw_media_rmtree(run->scratch);
    run->scratch[0] = '\0';
    if (run->outcome == GW_OUT_COMPLETE) {
        json_t *result = run->result, *timings = run->timings;
        gw_settings_t *cfg = run->app->cfg;
        run->result = run->timings = NULL;
        gw_job_complete(run->job, result,
                        run->model_version[0] ? run->model_version
                                              : (run->job->deep ? cfg->gemini_pro_model : cfg->gemini_flash_model),
                        &run->usage, timings);
    } else if (run->outcome == GW_OUT_FAIL) {
        gw_job_fail(run->job, run->code, run->message, run->retry_ms);
    } else if (run->outcome == GW_OUT_DEFER) {
        gw_job_defer(run->job, run->code, run->message, run->retry_ms);
    } else if (run->outcome == GW_OUT_REUSED || run->outcome == GW_OUT_WAITING) {
        gw_job_settled(run->job, run->outcome == GW_OUT_REUSED);
    } else {
        gw_job_aborted(run->job);
    }
    uv_close((uv_handle_t *)&run->timer, run_closed);
}

static void on_remote_deleted(gw_fetch_t *req, void *data)
{
    gw_run_t *run = data;
    run->req = NULL;
    if (gw_files_delete_gone(req)) {
        gw_run_forget_remote(run);
    } else {
        gw_metrics_count("remote_file_delete_failed");
        gw_job_log(GW_LOG_WARN, run->job->id, "deleting the remote file failed (HTTP %ld); the recovery sweep retries it",
                   gw_fetch_status(req));
    }
    gw_fetch_free(req);
    free(run->file_name);
    run->file_name = NULL;
    run->remote_recorded = false;
    settle(run);
}

static bool in_flight(const gw_run_t *run)
{
    for (size_t i = 0; i < GW_PROC_NSLOTS; i++)
        if (run->proc[i] != NULL)
            return true;
    return run->req != NULL || run->work != NULL || run->pg_inflight > 0;
}

/* CLEANUP: proceeds once nothing is in flight; deletes the remote file, then reports. */
static void settle(gw_run_t *run)
{
    if (run->state != GW_RUN_CLEANUP || in_flight(run))
        return;
    if (run->file_name != NULL) {
        gw_settings_t *cfg = run->app->cfg;
        run->req =
            gw_files_delete(run->app->fetcher, cfg->gemini_base_url, cfg->gemini_api_key, run->file_name, on_remote_deleted, run);
        if (run->req != NULL)
            return;
        free(run->file_name); /* could not even start: the recovery sweep deletes it */
        run->file_name = NULL;
    } else if (run->remote_recorded) { /* the upload never finished: nothing exists remotely */
        gw_run_forget_remote(run);
        run->remote_recorded = false;
    }
    report(run);
}

/* ---- what is in flight: subprocesses, thread-pool work, queries ---- */

/* [0] every run (MAX_SUBPROCESSES), [1] the long media runs among them (MAX_MEDIA_SUBPROCESSES) */
static gw_pool_t pools[2];

static void on_proc(gw_run_t *run, int slot, const gw_proc_result_t *r)
{
    run->proc[slot] = NULL;
    gw_pool_t *pool = run->proc_pool[slot];
    bool media = run->proc_media[slot];
    run->proc_pool[slot] = NULL;
    run->proc_media[slot] = false;
    gw_pool_release(pool); /* may start other jobs' queued runs before this one goes on */
    if (media)
        gw_pool_release(&pools[1]);
    if (run->state == GW_RUN_CLEANUP)
        settle(run);
    else
        run->proc_next[slot](run, r);
}

static void on_proc_main(gw_proc_t *p, const gw_proc_result_t *r, void *data)
{
    on_proc(data, GW_PROC_MAIN, r);
}

static void on_proc_download(gw_proc_t *p, const gw_proc_result_t *r, void *data)
{
    on_proc(data, GW_PROC_DOWNLOAD, r);
}

static void on_proc_ffmpeg(gw_proc_t *p, const gw_proc_result_t *r, void *data)
{
    on_proc(data, GW_PROC_FFMPEG, r);
}

/* ---- the subprocess pools ---- */

static bool pools_ready;
static gw_cpu_meter_t cpu_meter;

static void on_pool_wait(const gw_pool_t *p, double seconds)
{
    gw_metrics_pool_wait(p == &pools[1] ? "media" : "main", seconds);
}

static unsigned pool_size(long configured, unsigned automatic)
{
    return configured < 0 ? 0 : configured == 0 ? automatic : (unsigned)configured; /* 0 = unlimited for the pool */
}

/* Media runs hold at most the main pool's limit - 1 (when it has two slots or more), as it moves: short runs always
 * find a slot, even when the adaptive limit sits at its floor. */
static void media_follows_main(void)
{
    if (pools[0].floor != 0 && pools[1].size != 0)
        gw_pool_set_limit(&pools[1], pools[0].limit > 1 ? pools[0].limit - 1 : 1);
}

void gw_run_pools_init(const gw_settings_t *cfg)
{
    if (pools_ready)
        return;
    unsigned cpus = gw_pool_usable_cpus("/sys/fs/cgroup");
    unsigned main_size = pool_size(cfg->max_subprocesses, 2 * cpus);
    unsigned media_auto = main_size == 0 ? 0 : main_size / 2 > 0 ? main_size / 2 : 1;
    unsigned media_size = pool_size(cfg->max_media_subprocesses, media_auto);
    /* media runs are part of the main pool: with two slots or more, at least one stays for the short runs */
    if (main_size > 1 && (media_size == 0 || media_size >= main_size))
        media_size = main_size - 1;
    else if (main_size == 1)
        media_size = 1;
    /* The default adapts, from the CPUs up to twice them, on measured idle CPU. Its floor is at least 2, so a download
     * or scene detection never holds the only slot; on one CPU that is the fixed pool of 2. */
    if (cfg->max_subprocesses == 0)
        gw_pool_init_adaptive(&pools[0], cpus < 2 ? 2 : cpus, main_size);
    else
        gw_pool_init(&pools[0], main_size);
    gw_pool_init(&pools[1], media_size);
    pools[0].on_wait = pools[1].on_wait = on_pool_wait;
    gw_cpu_meter_init(&cpu_meter, "/sys/fs/cgroup", "/proc/stat");
    media_follows_main();
    pools_ready = true;
    if (pools[0].floor != 0)
        gw_info("subprocess pool: %u to %u at once, adapting to idle CPU; of them media runs %u (%u usable CPUs)", pools[0].floor,
                pools[0].size, pools[1].size, cpus);
    else
        gw_info("subprocess pool: %u at once (%s), of them media runs %u (%u usable CPUs)", pools[0].size,
                pools[0].size ? "limited" : "unlimited", pools[1].size, cpus);
}

void gw_run_pools_tick(void)
{
    if (!pools_ready || pools[0].floor == 0)
        return;
    /* media runs held back by their share of the main limit want it higher too */
    bool media_wants = pools[1].head != NULL && pools[1].busy >= pools[1].limit && pools[1].limit < pools[1].size;
    if (pools[0].head == NULL && !media_wants && pools[0].limit == pools[0].floor) {
        gw_cpu_meter_reset(&cpu_meter); /* nothing to decide: no sampling while idle */
        return;
    }
    gw_pool_adapt(&pools[0], gw_cpu_meter_spare(&cpu_meter, uv_hrtime()), media_wants);
    media_follows_main();
}

const gw_pool_t *gw_run_pool(bool media)
{
    return pools_ready ? &pools[media ? 1 : 0] : NULL;
}

/* Downloads and scene detection may run for minutes. They count in MAX_SUBPROCESSES like every run, but take a media
 * slot first, so they never hold more than MAX_MEDIA_SUBPROCESSES of it and short runs always find room. */
static bool is_media_run(const gw_run_t *run, int slot)
{
    return slot == GW_PROC_DOWNLOAD || run->state == GW_RUN_SCENES;
}

static void spawn_now(gw_run_t *run, int slot)
{
    static const gw_proc_cb trampolines[GW_PROC_NSLOTS] = {on_proc_main, on_proc_download, on_proc_ffmpeg};
    char **argv = run->proc_pending[slot].argv;
    gw_proc_opts_t o = {(const char *const *)argv,
                        run->scratch[0] ? run->scratch : NULL,
                        NULL,
                        run->proc_pending[slot].timeout_ms,
                        GW_RUN_KILL_GRACE_MS,
                        run->proc_pending[slot].out_cap,
                        run->proc_pending[slot].err_cap};
    run->proc_pending[slot].argv = NULL;
    run->proc[slot] = gw_proc_spawn(run->app->loop, &o, trampolines[slot], run);
    gw_argv_free(argv);
}

static void on_pool_granted(gw_pool_waiter_t *w, void *data)
{
    gw_run_t *run = data;
    int slot = (int)(w - run->proc_wait);
    if (run->proc_pool[slot] == &pools[1]) { /* the media slot is held: now one of the main pool, in its FIFO */
        run->proc_media[slot] = true;
        run->proc_pool[slot] = &pools[0];
        if (!gw_pool_acquire(&pools[0], w, on_pool_granted, run))
            return;
    }
    spawn_now(run, slot);
}

/* A cleanup drops spawns still waiting for a slot: they leave the queue at once and never start. */
static void drop_queued(gw_run_t *run)
{
    for (int i = 0; i < GW_PROC_NSLOTS; i++) {
        if (!run->proc_wait[i].queued)
            continue;
        gw_pool_cancel(run->proc_pool[i], &run->proc_wait[i]);
        run->proc_pool[i] = NULL;
        if (run->proc_media[i]) { /* it waited for a main slot while holding a media one */
            run->proc_media[i] = false;
            gw_pool_release(&pools[1]);
        }
        gw_argv_free(run->proc_pending[i].argv);
        run->proc_pending[i].argv = NULL;
    }
}

bool gw_run_proc_active(const gw_run_t *run, int slot)
{
    return run->proc[slot] != NULL || run->proc_wait[slot].queued;
}

void gw_run_spawn(gw_run_t *run, int slot, char **argv, uint64_t timeout_ms, size_t out_cap, size_t err_cap, gw_run_proc_cb next)
{
    if (gw_run_proc_active(run, slot)) { /* a bug: a second spawn would link the slot's waiter twice into a pool queue */
        gw_argv_free(argv);
        gw_job_log(GW_LOG_ERROR, run->job->id, "subprocess slot %d spawned while still in use", slot);
        gw_run_fail(run, "internal_error", "The worker could not schedule the work for this job", true, 0);
        return;
    }
    if (run->state == GW_RUN_CLEANUP || run->state == GW_RUN_DONE) { /* refused transition: nothing new starts */
        gw_argv_free(argv);
        return;
    }
    if (!pools_ready)
        gw_run_pools_init(run->app->cfg);
    run->proc_next[slot] = next;
    run->proc_pending[slot].argv = argv;
    run->proc_pending[slot].timeout_ms = timeout_ms;
    run->proc_pending[slot].out_cap = out_cap;
    run->proc_pending[slot].err_cap = err_cap;
    run->proc_media[slot] = false;
    run->proc_pool[slot] = is_media_run(run, slot) ? &pools[1] : &pools[0];
    if (gw_pool_acquire(run->proc_pool[slot], &run->proc_wait[slot], on_pool_granted, run))
        on_pool_granted(&run->proc_wait[slot], run);
}

typedef struct st_offload_t {
    gw_run_t *run;
    void (*next)(gw_run_t *, void *);
    void (*free_arg)(void *);
} offload_t;

static void on_offloaded(void *arg, bool cancelled, void *data)
{
    offload_t *o = data;
    gw_run_t *run = o->run;
    run->work = NULL;
    if (run->state == GW_RUN_CLEANUP) {
        o->free_arg(arg);
        settle(run);
    } else if (cancelled) { /* only cleanup cancels: the pool refused the work */
        o->free_arg(arg);
        gw_run_fail(run, "internal_error", "The worker could not schedule the work for this job", true, 0);
    } else {
        o->next(run, arg);
    }
    free(o);
}

void gw_run_offload(gw_run_t *run, gw_work_fn fn, void *arg, void (*next)(gw_run_t *, void *), void (*free_arg)(void *))
{
    offload_t *o = calloc(1, sizeof(*o));
    if (o == NULL)
        abort();
    o->run = run;
    o->next = next;
    o->free_arg = free_arg;
    run->work = gw_work_submit(run->app->loop, fn, arg, on_offloaded, o);
}

void gw_run_pg_begin(gw_run_t *run)
{
    run->pg_inflight++;
}

bool gw_run_pg_end(gw_run_t *run)
{
    run->pg_inflight--;
    if (run->state != GW_RUN_CLEANUP)
        return true;
    settle(run);
    return false;
}

/* ---- entry points ---- */

static bool make_scratch(gw_run_t *run)
{
    snprintf(run->scratch, sizeof(run->scratch), "%s/glint-%s-XXXXXX", run->app->cfg->work_dir, run->job->id);
    if (mkdtemp(run->scratch) != NULL)
        return true;
    run->scratch[0] = '\0';
    gw_run_fail(run, "scratch_unavailable", "The worker has no scratch space right now", true, 0);
    return false;
}

static bool gemini_missing(const gw_settings_t *cfg)
{
    return cfg->gemini_api_key == NULL || *cfg->gemini_api_key == '\0';
}

/* Local when the URL names a file and LOCAL_MEDIA_DIR is set; otherwise the URL check refuses a local URL as
 * "invalid_url", as before local files. */
static bool local_source(const gw_app_t *app, const gw_job_t *job)
{
    const char *dir = app->cfg->local_media_dir;
    return gw_localmedia_is_local(job->video_url) && dir != NULL && *dir != '\0';
}

/* INTAKE: the source's guard, the analyzer's configuration, the scratch directory. */
static bool intake(gw_run_t *run)
{
    gw_app_t *app = run->app;
    if (run->source == GW_SOURCE_LOCAL) {
        if (!gw_source_local_intake(run))
            return false;
    } else {
        const char *code = NULL, *msg = NULL;
        if (gw_url_normalize(run->job->video_url, app->cfg->allowed_video_hosts, run->video_id, &run->url, &code, &msg) != 0) {
            gw_run_fail(run, code ? code : "invalid_url", msg ? msg : "This is not a video URL we can analyse", false, 0);
            return false;
        }
    }
    if (!run->local_analyzer && gemini_missing(app->cfg)) {
        gw_run_fail(run, "gemini_not_configured", "The analysis service is not configured on this worker", true, 0);
        return false;
    }
    return make_scratch(run);
}

static void begin_source(gw_run_t *run);

void gw_run_start(gw_app_t *app, gw_job_t *job)
{
    gw_run_t *run = calloc(1, sizeof(*run));
    if (run == NULL)
        abort();
    run->job = job;
    run->app = app;
    run->timings = json_object();
    run->run_started = uv_now(app->loop);
    run->state = GW_RUN_INTAKE;
    run->source = local_source(app, job) ? GW_SOURCE_LOCAL : GW_SOURCE_REMOTE;
    run->local_analyzer = gw_analyzer_is_local(app->cfg->analyzer, app->cfg->gemini_api_key);
    job->pipeline_data = run;
    if (uv_timer_init(app->loop, &run->timer) != 0)
        abort();
    if (!intake(run))
        return;
    /* reuse another job's analysis, wait for one under way, or go on with the job's output language known */
    if (gw_run_pg(run) != NULL)
        gw_reuse_begin(run, begin_source);
    else
        begin_source(run);
}

/* The source stage, once intake (and the reuse check) let the job go on. */
static void begin_source(gw_run_t *run)
{
    gw_app_t *app = run->app;
    gw_job_t *job = run->job;
    if (job->deep)
        run->media = GW_MEDIA_VIDEO;
    if (run->source == GW_SOURCE_LOCAL) {
        job->disk_reserved = 0; /* nothing is downloaded into WORK_DIR */
        gw_source_local_start(run);
        return;
    }
    run->youtube_source = job->deep && strcmp(app->cfg->deep_video_source, "youtube_url") == 0 && run->video_id[0] != '\0' &&
                          !run->local_analyzer; /* the local analyzer needs the file for its scene detection */
    gw_source_remote_start(run);
}

void gw_run_abort(gw_job_t *job)
{
    gw_run_t *run = job->pipeline_data;
    if (run == NULL || run->state == GW_RUN_DONE) {
        gw_job_aborted(job);
        return;
    }
    conclude(run, GW_OUT_ABORT); /* stops everything, deletes the remote file, then gw_job_aborted */
}
