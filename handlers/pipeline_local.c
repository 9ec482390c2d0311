/* Local files through the pipeline: intake -> ffprobe -> transcript (sidecar or embedded stream) -> scene detection
 * (deep, local analyzer) -> local analysis or hand-off to the Gemini stage. Each wait is a subprocess callback. */
#define _GNU_SOURCE /* nftw */
#include "handlers/pipeline_local.h"
#include "handlers/gemini.h"
#include "handlers/local_analyzer.h"
#include "handlers/localmedia.h"
#include "handlers/metrics.h"
#include "handlers/ytdlp.h"
#include "reactor/log.h"
#include "reactor/proc.h"
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PROBE_TIMEOUT_MS 60000
#define SUBS_TIMEOUT_MS 300000
#define PROBE_OUT_CAP (8u << 20)
#define SCENE_ERR_CAP (16u << 20) /* showinfo prints one line per detected change */

typedef enum en_lstate_t {
    L_PROBE,  /* ffprobe is running */
    L_SUBS,   /* ffmpeg is extracting the embedded subtitle stream */
    L_SCENES, /* ffmpeg scene detection is running (deep mode, local analyzer) */
    L_DONE,   /* outcome reported or job handed off; the run is being freed */
} lstate_t;

typedef struct st_lrun_t {
    gw_job_t *job;
    gw_app_t *app;
    gw_local_handoff_cb handoff;
    void *ctx;
    lstate_t state;
    bool aborting;
    bool local_analyzer;
    char *path; /* resolved media file */
    char root[PATH_MAX];
    char scratch[PATH_MAX];
    gw_proc_t *proc;
    gw_video_meta_t meta;
    gw_probe_info_t info;
    gw_transcript_t tr;
    double *scenes;
    size_t nscenes;
    json_t *timings;
    uint64_t started, stage_started;
    struct st_lrun_t *next;
} lrun_t;

static lrun_t *runs; /* jobs held here, so abort can tell ours from the main pipeline's */

static void unregister(lrun_t *run)
{
    for (lrun_t **p = &runs; *p != NULL; p = &(*p)->next)
        if (*p == run) {
            *p = run->next;
            return;
        }
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    remove(path); /* best effort: keep removing the rest */
    return 0;
}

/* Releases everything but the job, which the caller reports on next. */
static gw_job_t *release(lrun_t *run)
{
    gw_job_t *job = run->job;
    run->state = L_DONE;
    if (run->scratch[0] != '\0')
        nftw(run->scratch, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    unregister(run);
    job->pipeline_data = NULL;
    gw_video_meta_free(&run->meta);
    gw_transcript_free(&run->tr);
    json_decref(run->timings);
    free(run->scenes);
    free(run->path);
    free(run);
    return job;
}

static void fail(lrun_t *run, const char *code, const char *message, bool transient)
{
    if (run->stage_started != 0 && json_object_get(run->timings, run->job->stage) == NULL)
        gw_metrics_stage_failed(run->job->stage, (double)(uv_now(run->app->loop) - run->stage_started) / 1000.0);
    gw_job_t *job = release(run);
    gw_job_fail(job, code, message, transient ? gw_job_retry_delay_ms(job, 0) : -1);
}

static void aborted(lrun_t *run)
{
    gw_job_aborted(release(run));
}

static void stage_begin(lrun_t *run, const char *stage)
{
    run->stage_started = uv_now(run->app->loop);
    gw_job_set_stage(run->job, stage);
}

static void stage_end(lrun_t *run, const char *stage)
{
    double s = (double)(uv_now(run->app->loop) - run->stage_started) / 1000.0;
    gw_metrics_stage(stage, s);
    json_object_set_new(run->timings, stage, json_real(s));
    gw_log_event(GW_LOG_INFO, run->job->id, stage, s * 1000.0, "%s done", stage);
}

static void spawn(lrun_t *run, char **argv, uint64_t timeout_ms, size_t out_cap, size_t err_cap, gw_proc_cb cb)
{
    gw_proc_opts_t o = {(const char *const *)argv, run->scratch, NULL, timeout_ms, 0, out_cap, err_cap};
    run->proc = gw_proc_spawn(run->app->loop, &o, cb, run);
    gw_argv_free(argv);
}

/* Common prologue of every subprocess callback: true when the run went away (aborted) or the tool failed to run. */
static bool proc_failed(lrun_t *run, const gw_proc_result_t *r, const char *tool)
{
    run->proc = NULL;
    if (run->aborting) {
        aborted(run);
        return true;
    }
    if (r->spawn_error != 0) {
        gw_job_log(GW_LOG_ERROR, run->job->id, "%s could not be started: %s", tool, uv_strerror(r->spawn_error));
        fail(run, "tool_unavailable", "A media tool could not be started on this worker", true);
        return true;
    }
    return false;
}

/* ---- analysis ---- */

bool gw_pipeline_local_selected(const gw_config_t *cfg)
{
    return gw_analyzer_is_local(cfg->analyzer, cfg->gemini_api_key);
}

json_t *gw_pipeline_local_analyze(const gw_video_meta_t *meta, const gw_transcript_t *tr, bool deep, const double *scenes,
                                  size_t nscenes, const char **error_code, const char **error_message)
{
    gw_local_input_t in = {meta, tr, deep, scenes, nscenes};
    char err[256];
    json_t *r = gw_local_analyze(&in, err, sizeof(err));
    if (r != NULL && gw_result_validate(r, meta->duration, deep, err, sizeof(err)) != 0) {
        json_decref(r);
        r = NULL;
    }
    if (r == NULL) {
        *error_code = "no_transcript";
        *error_message = "The transcript holds no text to analyse";
        return NULL;
    }
    gw_result_fill_title(r, meta->title);
    return r;
}

static void analyze(lrun_t *run)
{
    const char *code, *msg;
    stage_begin(run, "analyze");
    json_t *r = gw_pipeline_local_analyze(&run->meta, &run->tr, run->job->deep, run->scenes, run->nscenes, &code, &msg);
    if (r == NULL) {
        fail(run, code, msg, false);
        return;
    }
    stage_end(run, "analyze");
    json_object_set_new(run->timings, "total", json_real((double)(uv_now(run->app->loop) - run->started) / 1000.0));
    json_object_set_new(run->timings, "transcript_source", json_string(run->tr.source ? run->tr.source : "captions"));
    json_t *timings = run->timings;
    run->timings = NULL;
    gw_usage_t usage = {0, 0, 0}; /* no model, no tokens */
    gw_job_t *job = release(run);
    gw_job_complete(job, r, GW_LOCAL_MODEL, &usage, timings);
}

static void hand_off(lrun_t *run)
{
    gw_video_meta_t meta = run->meta;
    gw_transcript_t tr = run->tr;
    char *path = run->path;
    json_t *timings = run->timings;
    gw_local_handoff_cb cb = run->handoff;
    void *ctx = run->ctx;
    memset(&run->meta, 0, sizeof(run->meta));
    memset(&run->tr, 0, sizeof(run->tr));
    run->path = NULL;
    run->timings = NULL;
    gw_job_t *job = release(run);
    cb(job, &meta, &tr, timings, path, ctx);
    gw_video_meta_free(&meta); /* whatever the callee did not take */
    gw_transcript_free(&tr);
    free(path);
}

/* ---- scene detection ---- */

static void on_scenes(gw_proc_t *p, const gw_proc_result_t *r, void *data)
{
    lrun_t *run = data;
    if (proc_failed(run, r, "ffmpeg"))
        return;
    if (r->timed_out || r->term_signal != 0 || r->exit_status != 0) {
        /* the analysis still stands on the transcript; the visual audit is then empty, and the timings say why */
        gw_job_log(GW_LOG_WARN, run->job->id, "scene detection failed (exit %lld%s): visual audit left empty",
                   (long long)r->exit_status, r->timed_out ? ", timed out" : "");
        json_object_set_new(run->timings, "scenes_error", json_string(r->timed_out ? "timeout" : "ffmpeg_failed"));
    } else {
        run->nscenes = gw_local_parse_scenes(r->err, &run->scenes);
        json_object_set_new(run->timings, "scene_changes", json_integer((json_int_t)run->nscenes));
    }
    stage_end(run, "scenes");
    analyze(run);
}

static void start_scenes(lrun_t *run)
{
    double d = run->meta.duration > 0 ? run->meta.duration : 3600;
    uint64_t timeout = 60000 + (uint64_t)(d * 2000); /* decoding runs many times faster than real time */
    run->state = L_SCENES;
    stage_begin(run, "scenes");
    spawn(run, gw_local_argv_scenes(run->app->cfg->ffmpeg_path, run->path, NULL), timeout, 0, SCENE_ERR_CAP, on_scenes);
}

/* ---- transcript ---- */

static void transcript_ready(lrun_t *run)
{
    stage_end(run, "metadata");
    if (!run->local_analyzer) {
        hand_off(run);
        return;
    }
    if (run->tr.nsegments == 0) {
        fail(run, "no_transcript", "This file has no subtitles: put a .vtt or .srt with the same name next to it", false);
        return;
    }
    if (run->job->deep && run->info.has_video)
        start_scenes(run);
    else
        analyze(run);
}

static void no_transcript(lrun_t *run)
{
    if (run->job->deep && !run->local_analyzer) { /* Gemini can still watch and listen to the file itself */
        transcript_ready(run);
        return;
    }
    fail(run, "no_transcript", "This file has no subtitles: put a .vtt or .srt with the same name next to it", false);
}

static void on_subs(gw_proc_t *p, const gw_proc_result_t *r, void *data)
{
    lrun_t *run = data;
    if (proc_failed(run, r, "ffmpeg"))
        return;
    char vtt[PATH_MAX + 32];
    snprintf(vtt, sizeof(vtt), "%s/embedded.vtt", run->scratch);
    if (r->timed_out || r->term_signal != 0 || r->exit_status != 0 || gw_localmedia_load_subtitle_file(vtt, &run->tr) != 0) {
        gw_job_log(GW_LOG_WARN, run->job->id, "embedded subtitle stream %d unusable", run->info.subtitle_stream);
        no_transcript(run);
        return;
    }
    free(run->tr.source);
    run->tr.source = strdup("embedded");
    transcript_ready(run);
}

static void load_transcript(lrun_t *run)
{
    if (gw_localmedia_load_sidecar(run->path, run->root, &run->tr) == 0) {
        char *src = run->tr.source;
        run->tr.source = strdup(src && strcmp(src, "srt") == 0 ? "sidecar-srt" : "sidecar-vtt");
        free(src);
        transcript_ready(run);
        return;
    }
    if (run->info.subtitle_stream < 0) {
        no_transcript(run);
        return;
    }
    char vtt[PATH_MAX + 32];
    snprintf(vtt, sizeof(vtt), "%s/embedded.vtt", run->scratch);
    run->state = L_SUBS;
    spawn(run, gw_localmedia_argv_extract_subs(run->app->cfg->ffmpeg_path, run->path, run->info.subtitle_stream, vtt),
          SUBS_TIMEOUT_MS, 0, 0, on_subs);
}

/* ---- metadata ---- */

static void on_probe(gw_proc_t *p, const gw_proc_result_t *r, void *data)
{
    lrun_t *run = data;
    const char *code = NULL;
    if (proc_failed(run, r, "ffprobe"))
        return;
    if (r->timed_out) {
        fail(run, "probe_timeout", "Reading the file's details took too long", true);
    } else if (r->term_signal != 0 || r->exit_status != 0 || r->out_truncated) {
        fail(run, "unreadable_media", "The file is not a video or audio file we can read", false);
    } else if (gw_localmedia_parse_probe(r->out, r->out_len, run->path, &run->meta, &run->info, &code) != 0) {
        fail(run, code ? code : "bad_media", "The file holds no audio, video or subtitle stream", false);
    } else {
        load_transcript(run);
    }
}

static bool prepare(lrun_t *run)
{
    gw_config_t *cfg = run->app->cfg;
    const char *code = NULL, *msg = NULL;
    if (gw_localmedia_resolve(run->job->video_url, cfg->local_media_dir, &run->path, &code, &msg) != 0 ||
        realpath(cfg->local_media_dir, run->root) == NULL) {
        bool transient = code == NULL || strcmp(code, "media_dir_unavailable") == 0;
        fail(run, code ? code : "media_dir_unavailable", msg ? msg : "The worker's media directory is not available right now",
             transient);
        return false;
    }
    if (!run->local_analyzer && (cfg->gemini_api_key == NULL || *cfg->gemini_api_key == '\0')) {
        fail(run, "gemini_not_configured", "The analysis service is not configured on this worker", true);
        return false;
    }
    if (!run->local_analyzer && run->handoff == NULL) {
        fail(run, "analyzer_unavailable", "This worker cannot send local files to the analysis service", false);
        return false;
    }
    snprintf(run->scratch, sizeof(run->scratch), "%s/glint-%s-XXXXXX", cfg->work_dir, run->job->id);
    if (mkdtemp(run->scratch) == NULL) {
        run->scratch[0] = '\0';
        fail(run, "scratch_unavailable", "The worker has no scratch space right now", true);
        return false;
    }
    return true;
}

bool gw_pipeline_local_start(gw_app_t *app, gw_job_t *job, gw_local_handoff_cb handoff, void *ctx)
{
    const char *dir = app->cfg->local_media_dir;
    if (!gw_localmedia_is_local(job->video_url) || dir == NULL || *dir == '\0')
        return false; /* local files disabled: the URL check refuses it like any other non-video URL */
    lrun_t *run = calloc(1, sizeof(*run));
    if (run == NULL)
        abort();
    run->job = job;
    run->app = app;
    run->handoff = handoff;
    run->ctx = ctx;
    run->local_analyzer = gw_pipeline_local_selected(app->cfg);
    run->timings = json_object();
    run->started = uv_now(app->loop);
    run->next = runs;
    runs = run;
    job->pipeline_data = run;
    if (!prepare(run))
        return true;
    run->state = L_PROBE;
    stage_begin(run, "metadata");
    spawn(run, gw_localmedia_argv_probe(app->cfg->ffprobe_path, run->path), PROBE_TIMEOUT_MS, PROBE_OUT_CAP, 0, on_probe);
    return true;
}

bool gw_pipeline_local_abort(gw_job_t *job)
{
    lrun_t *run = runs;
    while (run != NULL && run != job->pipeline_data)
        run = run->next;
    if (run == NULL)
        return false;
    run->aborting = true;
    if (run->proc != NULL)
        gw_proc_kill(run->proc); /* its callback reports the abort */
    else
        aborted(run);
    return true;
}
