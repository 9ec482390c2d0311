/* The per-job state machine for the real pipeline.
 *   standard: yt-dlp (metadata + subtitles in one run) -> Gemini Flash (one request, or map over transcript chunks
 *             then reduce) -> validate -> store. Without captions: audio download -> ffmpeg (small mono track) ->
 *             Files API -> Flash listens to the audio.
 *   deep:     yt-dlp metadata run and media download side by side -> credit reconcile for the real duration ->
 *             Files API upload (streamed from disk) -> poll until ACTIVE -> Gemini Pro with the file (in
 *             videoMetadata segments for long videos, then merged) -> validate -> store.
 *   local:    files under LOCAL_MEDIA_DIR are prepared by handlers/pipeline_local.c and join at the analysis (or
 *             upload) stage; ANALYZER=local replaces Gemini with handlers/local_analyzer.c (deep: scene changes of the
 *             downloaded video make its visual audit).
 * Every outcome goes through RUN_CLEANUP: subprocesses and transfers stopped, the remote file deleted, the scratch dir
 * removed, and only then the outcome reported. Every wait is a callback on the loop: a subprocess (reactor/proc), a
 * transfer (reactor/fetch, handlers/upload), a query (reactor/pg) or a timer. */
#include "handlers/app.h"
#include "handlers/gemini.h"
#include "handlers/local_analyzer.h"
#include "handlers/media.h"
#include "handlers/metrics.h"
#include "handlers/pipeline_local.h"
#include "handlers/remote.h"
#include "handlers/upload.h"
#include "handlers/ytdlp.h"
#include "reactor/log.h"
#include "reactor/proc.h"
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_CHUNKS 32
#define YTDLP_OUT_CAP (8u << 20) /* -J is parsed on the loop thread: a bigger answer would stall every job */
#define GEMINI_RESPONSE_CAP (8u << 20)
#define BIG_OUTPUT_TOKENS 65536
#define KILL_GRACE_MS 400         /* a cancel stops a download within a second */
#define SCENE_ERR_CAP (16u << 20) /* ffmpeg's showinfo prints one line per detected change */

typedef enum en_run_state_t {
    RUN_FETCH,   /* yt-dlp metadata + subtitles run; in deep mode the media download runs beside it */
    RUN_CREDITS, /* deep: charging the difference for the real duration (one database call) */
    RUN_MEDIA,   /* waiting for the media download (deep video or standard's audio) and, for audio, ffmpeg */
    RUN_SCENES,  /* ANALYZER=local, deep: ffmpeg scene detection on the downloaded video */
    RUN_UPLOAD,  /* Files API: recording the remote row, uploading, polling until ACTIVE (handlers/upload) */
    RUN_ANALYZE, /* a Gemini call (or its backoff) for chunk `chunk` (chunk == nchunks: the merge) */
    RUN_CLEANUP, /* outcome decided: waiting for subprocesses, queries and the remote DELETE before reporting it */
    RUN_DONE,    /* outcome reported; waiting for the timer to close */
} run_state_t;

typedef enum en_outcome_t {
    OUT_COMPLETE, /* result ready */
    OUT_FAIL,     /* gw_job_fail with code/message/retry */
    OUT_ABORT,    /* the queue asked us to stop: gw_job_aborted */
} outcome_t;

typedef enum en_media_kind_t {
    MEDIA_NONE,  /* transcript-only standard job */
    MEDIA_VIDEO, /* deep: the video itself */
    MEDIA_AUDIO, /* standard without captions: a mono audio track */
} media_kind_t;

typedef struct st_pipeline_t {
    gw_app_t *app;
    gw_sweeper_t *sweeper;
} pipeline_t;

typedef struct st_run_t {
    uv_timer_t timer; /* first: backoff between Gemini attempts; its close callback frees the run */
    gw_job_t *job;
    gw_app_t *app;
    run_state_t state;
    char scratch[PATH_MAX];
    char video_id[16];
    char *url;
    gw_proc_t *proc, *dl, *ff; /* yt-dlp metadata run, media download, ffmpeg */
    gw_fetch_t *req;           /* Gemini call or the remote DELETE */
    gw_upload_t *up;
    unsigned pg_inflight;
    /* media */
    media_kind_t media;
    bool dl_done, youtube_source, reuploaded, probed;
    bool local_file;              /* a file under LOCAL_MEDIA_DIR: nothing downloaded */
    const char *dl_code, *dl_msg; /* download failure noticed while the metadata run was still going */
    bool dl_transient;
    char media_path[PATH_MAX];
    uint64_t media_size;
    char display[80];
    bool remote_recorded;
    char *file_name, *file_uri;
    const char *file_mime;
    /* analysis */
    gw_video_meta_t meta;
    gw_transcript_t tr;
    size_t bounds[MAX_CHUNKS + 1], nchunks, chunk;
    double clip_len; /* deep segments: seconds per chunk; 0 = chunks are transcript chunks */
    json_t *partials[MAX_CHUNKS];
    unsigned attempt;
    bool reasked, big_budget;
    gw_usage_t usage;
    char model_version[96];
    json_t *timings;
    uint64_t stage_started, run_started;
    /* outcome */
    outcome_t outcome;
    json_t *result;
    char code[64], message[320];
    int64_t retry_ms;
} run_t;

static void call_gemini(run_t *run);
static void settle(run_t *run);
static void start_upload(run_t *run);
static void begin_analysis(run_t *run);
static void detect_scenes(run_t *run);
static void finish(run_t *run, json_t *result);

/* ---- bookkeeping ---- */

static bool local_analyzer(run_t *run)
{
    return gw_pipeline_local_selected(run->app->cfg);
}

static gw_config_t *cfg_of(run_t *run)
{
    return run->app->cfg;
}

/* NULL for `glint-worker analyze` (no database): no credits to reconcile, no remote-file bookkeeping. */
static gw_pg_t *pg_of(run_t *run)
{
    return gw_queue_pg(run->job->queue);
}

static void forget_remote(run_t *run)
{
    if (pg_of(run) != NULL)
        gw_remote_forget(pg_of(run), run->job->id, run->display);
}

static void run_closed(uv_handle_t *h)
{
    run_t *run = (run_t *)h;
    for (size_t i = 0; i < MAX_CHUNKS; i++)
        json_decref(run->partials[i]);
    json_decref(run->timings);
    json_decref(run->result);
    gw_video_meta_free(&run->meta);
    gw_transcript_free(&run->tr);
    free(run->url);
    free(run->file_name);
    free(run->file_uri);
    free(run);
}

static void stage_begin(run_t *run, const char *stage)
{
    run->stage_started = uv_now(run->app->loop);
    gw_job_set_stage(run->job, stage);
}

static void stage_time(run_t *run, const char *stage, double s)
{
    gw_metrics_stage(stage, s);
    json_object_set_new(run->timings, stage, json_real(s));
    gw_log_event(GW_LOG_INFO, run->job->id, stage, s * 1000.0, "%s done", stage);
}

static void stage_end(run_t *run, const char *stage)
{
    stage_time(run, stage, (double)(uv_now(run->app->loop) - run->stage_started) / 1000.0);
}

/* Decides the outcome and starts the cleanup: everything in flight is stopped, then settle() finishes. */
static void conclude(run_t *run, outcome_t o)
{
    if (run->state == RUN_CLEANUP || run->state == RUN_DONE) {
        if (o == OUT_ABORT) /* an abort during cleanup: report that instead */
            run->outcome = OUT_ABORT;
        return;
    }
    if (o == OUT_FAIL && run->stage_started != 0 && json_object_get(run->timings, run->job->stage) == NULL)
        gw_metrics_stage_failed(run->job->stage, (double)(uv_now(run->app->loop) - run->stage_started) / 1000.0);
    run->outcome = o;
    run->state = RUN_CLEANUP;
    uv_timer_stop(&run->timer);
    if (run->req != NULL)
        gw_fetch_cancel(run->req);
    run->req = NULL;
    gw_upload_cancel(run->up);
    run->up = NULL;
    gw_proc_t *procs[] = {run->proc, run->dl, run->ff};
    for (size_t i = 0; i < 3; i++)
        if (procs[i] != NULL)
            gw_proc_kill(procs[i]); /* their callbacks come back to settle() */
    settle(run);
}

static void fail(run_t *run, const char *code, const char *message, bool transient, int64_t floor_ms)
{
    snprintf(run->code, sizeof(run->code), "%s", code);
    snprintf(run->message, sizeof(run->message), "%s", message);
    run->retry_ms = transient ? gw_job_retry_delay_ms(run->job, floor_ms) : -1;
    conclude(run, OUT_FAIL);
}

static void report(run_t *run)
{
    run->state = RUN_DONE;
    run->job->pipeline_data = NULL;
    if (run->scratch[0] != '\0')
        gw_media_rmtree(run->scratch);
    run->scratch[0] = '\0';
    if (run->outcome == OUT_COMPLETE) {
        json_t *result = run->result, *timings = run->timings;
        run->result = run->timings = NULL;
        gw_job_complete(run->job, result,
                        run->model_version[0] ? run->model_version
                                              : (run->job->deep ? cfg_of(run)->gemini_pro_model : cfg_of(run)->gemini_flash_model),
                        &run->usage, timings);
    } else if (run->outcome == OUT_FAIL) {
        gw_job_fail(run->job, run->code, run->message, run->retry_ms);
    } else {
        gw_job_aborted(run->job);
    }
    uv_close((uv_handle_t *)&run->timer, run_closed);
}

static void on_remote_deleted(gw_fetch_t *req, void *data)
{
    run_t *run = data;
    run->req = NULL;
    if (gw_files_delete_gone(req)) {
        forget_remote(run);
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

/* RUN_CLEANUP: proceeds once nothing is in flight; deletes the remote file, then reports. */
static void settle(run_t *run)
{
    if (run->state != RUN_CLEANUP || run->proc != NULL || run->dl != NULL || run->ff != NULL || run->req != NULL ||
        run->pg_inflight > 0)
        return;
    if (run->file_name != NULL) {
        run->req = gw_files_delete(run->app->fetcher, cfg_of(run)->gemini_base_url, cfg_of(run)->gemini_api_key, run->file_name,
                                   on_remote_deleted, run);
        if (run->req != NULL)
            return;
        free(run->file_name); /* could not even start: the recovery sweep deletes it */
        run->file_name = NULL;
    } else if (run->remote_recorded) { /* the upload never finished: nothing exists remotely */
        forget_remote(run);
        run->remote_recorded = false;
    }
    report(run);
}

static char **split_langs(const char *csv)
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

/* ---- media: download (yt-dlp), audio extraction (ffmpeg) ---- */

static void media_ready(run_t *run);

static void on_ffmpeg(gw_proc_t *p, const gw_proc_result_t *r, void *data)
{
    run_t *run = data;
    run->ff = NULL;
    if (run->state == RUN_CLEANUP) {
        settle(run);
        return;
    }
    uint64_t size;
    char path[PATH_MAX];
    if (r->spawn_error != 0) {
        fail(run, "tool_unavailable", "ffmpeg could not be started on this worker", true, 0);
    } else if (r->timed_out || r->term_signal != 0 || r->exit_status != 0 ||
               gw_media_find(run->scratch, "audio", path, sizeof(path), &size) != 0 || size == 0) {
        gw_job_log(GW_LOG_WARN, run->job->id, "ffmpeg failed: %.200s", r->err ? r->err : "");
        fail(run, "no_transcript", "This video has no captions and its audio could not be extracted", false, 0);
    } else {
        snprintf(run->media_path, sizeof(run->media_path), "%s", path);
        run->media_size = size;
        stage_end(run, run->local_file ? "audio" : "download");
        start_upload(run);
    }
}

static void extract_audio(run_t *run)
{
    char out[PATH_MAX + 16];
    snprintf(out, sizeof(out), "%s/audio.ogg", run->scratch);
    char **argv = gw_media_argv_audio(cfg_of(run)->ffmpeg_path, run->media_path, out);
    if (run->local_file)
        stage_begin(run, "audio");
    gw_proc_opts_t o = {
        (const char *const *)argv, run->scratch, NULL, (uint64_t)cfg_of(run)->download_timeout_ms, KILL_GRACE_MS, 0, 0};
    run->ff = gw_proc_spawn(run->app->loop, &o, on_ffmpeg, run);
    gw_argv_free(argv);
}

static void on_reconciled(PGresult *res, const char *error, void *data);

static void after_credits(run_t *run);

static void reconcile(run_t *run)
{
    if (pg_of(run) == NULL) {
        after_credits(run);
        return;
    }
    run->state = RUN_CREDITS;
    run->pg_inflight++;
    gw_credits_reconcile(pg_of(run), run->job->id, gw_queue_worker_id(run->job->queue), run->meta.duration, on_reconciled, run);
}

/* yt-dlp did not know the duration: ffprobe the downloaded file, then reconcile the credits with it. */
static void on_probe(gw_proc_t *p, const gw_proc_result_t *r, void *data)
{
    run_t *run = data;
    run->ff = NULL;
    run->probed = true;
    if (run->state == RUN_CLEANUP) {
        settle(run);
        return;
    }
    double d = r->spawn_error == 0 && r->exit_status == 0 && r->out != NULL ? strtod(r->out, NULL) : -1;
    if (d > 0 && isfinite(d)) {
        run->meta.duration = d;
        json_object_set_new(run->timings, "duration_source", json_string("ffprobe"));
        reconcile(run); /* comes back through await_media */
        return;
    }
    gw_job_log(GW_LOG_WARN, run->job->id, "ffprobe could not tell the duration; the charge made at enqueue stands");
    media_ready(run);
}

static void probe_duration(run_t *run)
{
    const char *argv[] = {cfg_of(run)->ffprobe_path, "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0",
                          run->media_path,           NULL};
    gw_proc_opts_t o = {argv, run->scratch, NULL, 30000, KILL_GRACE_MS, 4096, 0};
    run->ff = gw_proc_spawn(run->app->loop, &o, on_probe, run);
}

/* The download is in; the metadata run may still be going (deep) or done. */
static void media_ready(run_t *run)
{
    if (run->state != RUN_MEDIA)
        return; /* the metadata run / credit check finishes first and comes back here */
    if (run->dl_code != NULL) {
        fail(run, run->dl_code, run->dl_msg, run->dl_transient, 0);
        return;
    }
    if (run->media == MEDIA_AUDIO) {
        extract_audio(run);
        return;
    }
    if (run->meta.duration <= 0 && !run->probed) {
        probe_duration(run);
        return;
    }
    if (!run->local_file)
        stage_end(run, "download");
    if (local_analyzer(run))
        detect_scenes(run);
    else
        start_upload(run);
}

static void download_failed(run_t *run, const char *code, const char *msg, bool transient)
{
    run->dl_code = code;
    run->dl_msg = msg;
    run->dl_transient = transient;
}

static void on_download(gw_proc_t *p, const gw_proc_result_t *r, void *data)
{
    run_t *run = data;
    const char *stem = run->media == MEDIA_AUDIO ? "audio-src" : "video";
    run->dl = NULL;
    run->dl_done = true;
    if (run->state == RUN_CLEANUP) {
        settle(run);
        return;
    }
    if (r->spawn_error != 0) {
        download_failed(run, "tool_unavailable", "yt-dlp could not be started on this worker", true);
    } else if (r->timed_out) {
        download_failed(run, "download_timeout", "Downloading the video took too long", true);
    } else if (r->term_signal != 0 || r->exit_status != 0) {
        const char *code, *msg;
        bool transient;
        gw_ytdlp_classify_failure(r->err ? r->err : "", r->term_signal ? -1 : (int)r->exit_status, &code, &msg, &transient);
        download_failed(run, code, msg, transient);
    } else if (gw_media_find(run->scratch, stem, run->media_path, sizeof(run->media_path), &run->media_size) != 0) {
        /* yt-dlp skips (exit 0, no file) what exceeds --max-filesize */
        download_failed(run, "video_too_large", "This video is larger than this worker accepts", false);
    } else if (run->media_size > (uint64_t)cfg_of(run)->download_max_bytes) {
        download_failed(run, "video_too_large", "This video is larger than this worker accepts", false);
    }
    media_ready(run); /* waits for the metadata run when that is still going */
}

static void start_download(run_t *run)
{
    gw_config_t *cfg = cfg_of(run);
    char *vformat = run->media == MEDIA_VIDEO ? gw_ytdlp_video_format(cfg->deep_max_height) : NULL;
    char **argv = gw_ytdlp_argv_media(cfg->ytdlp_path, run->url, run->scratch, run->media == MEDIA_AUDIO ? "audio-src" : "video",
                                      vformat ? vformat : GW_YTDLP_AUDIO_FORMAT, (uint64_t)cfg->download_max_bytes,
                                      strcmp(cfg->ffmpeg_path, "ffmpeg") != 0 ? cfg->ffmpeg_path : NULL);
    gw_proc_opts_t o = {(const char *const *)argv, run->scratch, NULL, (uint64_t)cfg->download_timeout_ms, KILL_GRACE_MS, 0, 0};
    run->dl_done = false;
    run->dl = gw_proc_spawn(run->app->loop, &o, on_download, run);
    gw_argv_free(argv);
    free(vformat);
}

/* Enters RUN_MEDIA: starts the download unless it already runs (deep) and goes on once it is in. */
static void await_media(run_t *run)
{
    run->state = RUN_MEDIA;
    if (run->dl == NULL && !run->dl_done) {
        stage_begin(run, "download");
        start_download(run);
        return;
    }
    if (!run->local_file)
        gw_job_set_stage(run->job, "download");
    if (run->dl_done)
        media_ready(run);
}

/* ---- Files API ---- */

static void on_remote_named(const char *name, void *data)
{
    run_t *run = data;
    free(run->file_name);
    run->file_name = strdup(name);
    if (run->file_name == NULL)
        abort();
    if (pg_of(run) != NULL)
        gw_remote_named(pg_of(run), run->job->id, run->display, name);
}

static void on_uploaded(const gw_upload_result_t *r, void *data)
{
    run_t *run = data;
    run->up = NULL;
    if (!r->ok) {
        fail(run, r->error_code, r->message, r->transient, 0);
        return;
    }
    free(run->file_uri);
    run->file_uri = strdup(r->file->uri);
    if (run->file_uri == NULL)
        abort();
    double secs = r->upload_ms / 1000.0;
    stage_time(run, "upload", secs);
    stage_time(run, "file_processing", r->processing_ms / 1000.0);
    json_object_set_new(run->timings, "upload_bytes", json_integer((json_int_t)r->bytes));
    if (secs > 0)
        json_object_set_new(run->timings, "upload_mb_per_s", json_real((double)r->bytes / 1048576.0 / secs));
    begin_analysis(run);
}

static void begin_upload(run_t *run);

static void on_remote_recorded(PGresult *res, const char *error, void *data)
{
    run_t *run = data;
    run->pg_inflight--;
    if (run->state == RUN_CLEANUP) {
        settle(run);
        return;
    }
    if (res == NULL || PQresultStatus(res) != PGRES_COMMAND_OK) {
        fail(run, "database_unavailable", "The worker could not record its work in the database", true, 0);
        return;
    }
    begin_upload(run);
}

static void begin_upload(run_t *run)
{
    gw_config_t *cfg = cfg_of(run);
    gw_upload_opts_t o = {cfg->gemini_base_url,
                          cfg->gemini_api_key,
                          run->media_path,
                          run->file_mime,
                          run->display,
                          run->job->id,
                          (uint64_t)cfg->upload_chunk_bytes,
                          (unsigned)cfg->upload_max_retries,
                          cfg->upload_timeout_ms,
                          (uint64_t)cfg->file_active_timeout_ms};
    gw_upload_events_t ev = {on_remote_named, on_uploaded, run};
    run->up = gw_upload_start(run->app->loop, run->app->fetcher, &o, &ev);
}

/* The row goes in before the upload starts: a crash at any later point leaves a trace the recovery sweep finds. */
static void start_upload(run_t *run)
{
    run->state = RUN_UPLOAD;
    stage_begin(run, "upload");
    run->file_mime = gw_upload_mime_for_path(run->media_path);
    snprintf(run->display, sizeof(run->display), "glint-%s-%d%s", run->job->id, run->job->attempts, run->reuploaded ? "r" : "");
    if (pg_of(run) == NULL) {
        begin_upload(run);
        return;
    }
    run->remote_recorded = true;
    run->pg_inflight++;
    gw_remote_record(pg_of(run), run->job->id, run->display, gw_queue_worker_id(run->job->queue), on_remote_recorded, run);
}

/* ---- stage 1: yt-dlp (metadata + subtitles, one run: one request burst to YouTube) ---- */

static void on_reconciled(PGresult *res, const char *error, void *data)
{
    run_t *run = data;
    run->pg_inflight--;
    if (run->state == RUN_CLEANUP) {
        settle(run);
        return;
    }
    if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
        fail(run, "database_unavailable", "The worker could not check the credits for this video", true, 0);
        return;
    }
    const char *v = PQgetisnull(res, 0, 0) ? "lost" : PQgetvalue(res, 0, 0);
    gw_job_log(GW_LOG_INFO, run->job->id, "credits for %.0f s: %s", run->meta.duration, v);
    json_object_set_new(run->timings, "credits", json_string(v));
    if (strcmp(v, "insufficient") == 0) {
        fail(run, "insufficient_credits", "This video is longer than your credit balance covers", false, 0);
    } else if (strcmp(v, "lost") == 0) {
        fail(run, "job_lost", "The job is no longer held by this worker", false, 0);
    } else {
        after_credits(run);
    }
}

static void after_credits(run_t *run)
{
    if (run->youtube_source)
        begin_analysis(run);
    else
        await_media(run);
}

static void after_meta_deep(run_t *run)
{
    if (run->meta.duration > 0) {
        reconcile(run);
    } else if (run->youtube_source) { /* unknown duration and nothing to probe: the charge made at enqueue stands */
        begin_analysis(run);
    } else {
        await_media(run);
    }
}

/* Metadata and the subtitle choice from one parse of yt-dlp's -J answer (it can be megabytes, parsed on the loop). */
static int read_fetch(run_t *run, const char *out, size_t len, const char **code, const char **msg)
{
    json_t *root = json_loadb(out, len, 0, NULL);
    int rc = -1;
    if (gw_ytdlp_meta_from_json(root, &run->meta, code) != 0) {
        *msg = NULL;
    } else if (gw_ytdlp_check_meta(&run->meta, code, msg) != 0) {
        rc = -2;
    } else {
        char **langs = split_langs(cfg_of(run)->transcript_langs);
        rc = gw_ytdlp_load_transcript_json(run->scratch, &run->meta, (const char *const *)langs, root, &run->tr, code) == 0 ? 0 : 1;
        for (char **p = langs; *p != NULL; p++)
            free(*p);
        free(langs);
    }
    json_decref(root);
    return rc;
}

static void after_fetch(run_t *run, const char *out, size_t len)
{
    const char *code = NULL, *msg = NULL;
    int rc = read_fetch(run, out, len, &code, &msg);
    if (rc == -1) {
        fail(run, code ? code : "bad_metadata", "yt-dlp returned metadata we could not read", true, 0);
        return;
    }
    if (rc == -2) {
        fail(run, code, msg, false, 0);
        return;
    }
    stage_end(run, "metadata");
    bool captions = rc == 0 && run->tr.nsegments > 0;
    if (captions && run->meta.duration <= 0 && !run->job->deep) { /* deep probes the download instead */
        run->meta.duration = (double)run->tr.segments[run->tr.nsegments - 1].end_ms / 1000.0;
        json_object_set_new(run->timings, "duration_source", json_string("captions"));
    }
    json_object_set_new(run->timings, "transcript_source",
                        json_string(captions         ? (run->tr.source ? run->tr.source : "captions")
                                    : run->job->deep ? "none"
                                                     : "audio"));
    if (run->job->deep) {
        after_meta_deep(run);
    } else if (captions) {
        begin_analysis(run);
    } else if (code != NULL && strcmp(code, "no_transcript") != 0 &&
               (local_analyzer(run) || run->job->attempts < run->job->max_attempts)) {
        /* captions exist but could not be fetched right now: retry (the last attempt falls back to the audio) */
        fail(run, code, "The video's captions could not be fetched right now; the job will be retried", true, 0);
    } else if (local_analyzer(run)) { /* the local analyzer cannot listen: it needs words */
        fail(run, "no_transcript", "This video has no captions, which the local analyzer needs", false, 0);
    } else {
        run->media = MEDIA_AUDIO; /* no captions: Flash listens to the audio */
        gw_metrics_count("audio_fallback");
        await_media(run);
    }
}

static void on_ytdlp(gw_proc_t *p, const gw_proc_result_t *r, void *data)
{
    run_t *run = data;
    run->proc = NULL;
    if (run->state == RUN_CLEANUP) {
        settle(run);
    } else if (r->spawn_error != 0) {
        fail(run, "tool_unavailable", "yt-dlp could not be started on this worker", true, 0);
    } else if (r->timed_out) {
        gw_metrics_count("ytdlp_timeout");
        fail(run, "ytdlp_timeout", "Fetching the video's details took too long", true, 0);
    } else if (r->term_signal != 0 || r->exit_status != 0) {
        const char *code, *msg;
        bool transient;
        gw_ytdlp_classify_failure(r->err ? r->err : "", r->term_signal ? -1 : (int)r->exit_status, &code, &msg, &transient);
        fail(run, code, msg, transient, 0);
    } else if (r->out_truncated) {
        fail(run, "bad_metadata", "yt-dlp printed more metadata than we accept", false, 0);
    } else {
        after_fetch(run, r->out ? r->out : "", r->out ? r->out_len : 0);
    }
}

static void start_fetch(run_t *run)
{
    gw_config_t *cfg = cfg_of(run);
    /* TRANSCRIPT_LANGS must reach yt-dlp too, or a non-English preference is never downloaded */
    char *sub_langs = NULL;
    if (cfg->transcript_langs != NULL && *cfg->transcript_langs != '\0') {
        char **langs = split_langs(cfg->transcript_langs);
        sub_langs = gw_ytdlp_sub_langs((const char *const *)langs);
        for (char **p = langs; *p != NULL; p++)
            free(*p);
        free(langs);
    }
    char **argv = gw_ytdlp_argv_fetch(cfg->ytdlp_path, run->url, run->scratch, sub_langs);
    free(sub_langs);
    gw_proc_opts_t o = {
        (const char *const *)argv, run->scratch, NULL, (uint64_t)cfg->ytdlp_timeout_ms, KILL_GRACE_MS, YTDLP_OUT_CAP, 0};
    run->state = RUN_FETCH;
    stage_begin(run, "metadata");
    run->proc = gw_proc_spawn(run->app->loop, &o, on_ytdlp, run);
    gw_argv_free(argv);
    if (run->media == MEDIA_VIDEO && !run->youtube_source)
        start_download(run); /* side by side with the metadata run */
}

/* ---- stage 2: Gemini ---- */

static const char *model_for(const run_t *run)
{
    return run->job->deep ? run->app->cfg->gemini_pro_model : run->app->cfg->gemini_flash_model;
}

static const char *media_resolution(const gw_config_t *cfg)
{
    static const char *const names[][2] = {
        {"low", "MEDIA_RESOLUTION_LOW"}, {"medium", "MEDIA_RESOLUTION_MEDIUM"}, {"high", "MEDIA_RESOLUTION_HIGH"}};
    for (size_t i = 0; i < 3; i++)
        if (strcmp(cfg->gemini_media_resolution, names[i][0]) == 0)
            return names[i][1];
    return NULL; /* "default": the model decides */
}

/* Transcript segments [from, to) that start inside [t0, t1) seconds. */
static void segments_between(const gw_transcript_t *t, double t0, double t1, size_t *from, size_t *to)
{
    size_t i = 0;
    while (i < t->nsegments && (double)t->segments[i].start_ms / 1000.0 < t0)
        i++;
    *from = i;
    while (i < t->nsegments && (double)t->segments[i].start_ms / 1000.0 < t1)
        i++;
    *to = i;
}

static json_t *build_body(run_t *run)
{
    gw_gemini_opts_t o;
    gw_gemini_opts_init(&o, run->job->deep);
    o.thinking_level = cfg_of(run)->thinking_level;
    o.media_resolution = run->job->deep ? media_resolution(cfg_of(run)) : NULL;
    o.file_uri = run->youtube_source ? run->url : run->file_uri;
    o.file_mime = run->youtube_source ? "video/*" : run->file_mime;
    if (run->big_budget)
        o.max_output_tokens = BIG_OUTPUT_TOKENS;
    if (run->chunk == run->nchunks) /* reduce */
        return gw_gemini_build_merge_request(&run->meta, run->partials, run->nchunks, &o);
    size_t from = 0, to = run->tr.nsegments;
    if (run->nchunks > 1) {
        o.part_index = run->chunk + 1;
        o.part_count = run->nchunks;
        from = run->bounds[run->chunk];
        to = run->bounds[run->chunk + 1];
    }
    if (run->clip_len > 0) {
        o.clip_start_s = run->clip_len * (double)run->chunk;
        o.clip_end_s = fmin(run->clip_len * (double)(run->chunk + 1), run->meta.duration);
        segments_between(&run->tr, o.clip_start_s, o.clip_end_s, &from, &to);
    }
    return gw_gemini_build_request(&run->meta, &run->tr, from, to, &o);
}

/* Deep with a file: videoMetadata segments when the video is longer than DEEP_SEGMENT_SECONDS; otherwise transcript
 * chunks as in standard mode. */
static void plan(run_t *run)
{
    double seg = (double)cfg_of(run)->deep_segment_seconds;
    run->clip_len = 0;
    if (run->job->deep && (run->file_uri != NULL || run->youtube_source) && run->meta.duration > seg) {
        size_t n = (size_t)ceil(run->meta.duration / seg);
        if (n > MAX_CHUNKS)
            n = MAX_CHUNKS;
        run->nchunks = n;
        run->clip_len = ceil(run->meta.duration / (double)n);
        return;
    }
    run->nchunks = gw_gemini_plan_chunks(&run->tr, (size_t)cfg_of(run)->gemini_chunk_chars, run->bounds, MAX_CHUNKS);
    if (run->nchunks == 0)
        run->nchunks = 1; /* no transcript: one request with the media */
}

/* The local analyzer in place of Gemini (ANALYZER=local, or auto without a key); scenes make deep mode's visual audit. */
static void analyze_locally(run_t *run, const double *scenes, size_t nscenes)
{
    const char *code, *msg;
    run->state = RUN_ANALYZE;
    stage_begin(run, "analyze");
    json_t *r = gw_pipeline_local_analyze(&run->meta, &run->tr, run->job->deep, scenes, nscenes, &code, &msg);
    if (r == NULL) {
        fail(run, code, msg, false, 0);
        return;
    }
    snprintf(run->model_version, sizeof(run->model_version), "%s", GW_LOCAL_MODEL);
    run->nchunks = 1;
    finish(run, r);
}

static void on_scenes(gw_proc_t *p, const gw_proc_result_t *r, void *data)
{
    run_t *run = data;
    double *scenes = NULL;
    size_t n = 0;
    run->ff = NULL;
    if (run->state == RUN_CLEANUP) {
        settle(run);
        return;
    }
    if (r->spawn_error != 0 || r->timed_out || r->term_signal != 0 || r->exit_status != 0) {
        /* the analysis still stands on the transcript; the timings say why the visual audit is empty */
        json_object_set_new(run->timings, "scenes_error", json_string(r->timed_out ? "timeout" : "ffmpeg_failed"));
    } else {
        n = gw_local_parse_scenes(r->err, &scenes);
        json_object_set_new(run->timings, "scene_changes", json_integer((json_int_t)n));
    }
    stage_end(run, "scenes");
    analyze_locally(run, scenes, n);
    free(scenes);
}

static void detect_scenes(run_t *run)
{
    double d = run->meta.duration > 0 ? run->meta.duration : 3600;
    char **argv = gw_local_argv_scenes(cfg_of(run)->ffmpeg_path, run->media_path, NULL);
    gw_proc_opts_t o = {(const char *const *)argv,
                        run->scratch[0] ? run->scratch : NULL,
                        NULL,
                        60000 + (uint64_t)(d * 2000),
                        KILL_GRACE_MS,
                        0,
                        SCENE_ERR_CAP};
    run->state = RUN_SCENES;
    stage_begin(run, "scenes");
    run->ff = gw_proc_spawn(run->app->loop, &o, on_scenes, run);
    gw_argv_free(argv);
}

static void begin_analysis(run_t *run)
{
    if (local_analyzer(run)) {
        analyze_locally(run, NULL, 0);
        return;
    }
    plan(run);
    run->chunk = 0;
    run->attempt = 0;
    run->reasked = false;
    for (size_t i = 0; i < MAX_CHUNKS; i++) {
        json_decref(run->partials[i]);
        run->partials[i] = NULL;
    }
    run->state = RUN_ANALYZE;
    stage_begin(run, "analyze");
    call_gemini(run);
}

static void on_backoff(uv_timer_t *t)
{
    call_gemini((run_t *)t);
}

static void retry_call(run_t *run, uint64_t delay_ms, const char *why)
{
    run->attempt++;
    gw_metrics_retry("gemini");
    gw_job_log(GW_LOG_WARN, run->job->id, "gemini: %s; retrying in %llu ms", why, (unsigned long long)delay_ms);
    uv_timer_start(&run->timer, on_backoff, delay_ms, 0);
}

static void account_usage(run_t *run, const gw_gemini_reply_t *rep)
{
    run->usage.prompt_tokens += rep->prompt_tokens;
    run->usage.output_tokens += rep->candidates_tokens;
    run->usage.thoughts_tokens += rep->thoughts_tokens;
    gw_metrics_tokens("prompt", (long)rep->prompt_tokens);
    gw_metrics_tokens("output", (long)rep->candidates_tokens);
    gw_metrics_tokens("thoughts", (long)rep->thoughts_tokens);
    if (rep->model_version != NULL)
        snprintf(run->model_version, sizeof(run->model_version), "%s", rep->model_version);
}

static void finish(run_t *run, json_t *result)
{
    gw_result_fill_title(result, run->meta.title);
    stage_end(run, "analyze");
    json_object_set_new(run->timings, "total", json_real((double)(uv_now(run->app->loop) - run->run_started) / 1000.0));
    json_object_set_new(run->timings, "chunks", json_integer((json_int_t)run->nchunks));
    if (run->clip_len > 0)
        json_object_set_new(run->timings, "video_segments", json_integer((json_int_t)run->nchunks));
    if (run->job->deep)
        json_object_set_new(run->timings, "video_source", json_string(run->youtube_source ? "youtube_url" : "upload"));
    run->result = result;
    conclude(run, OUT_COMPLETE);
}

/* A usable reply: keep it as a partial (map step) or finish. */
static void accept_result(run_t *run, json_t *result)
{
    run->attempt = 0;
    run->reasked = false;
    if (run->nchunks > 1 && run->chunk < run->nchunks) {
        run->partials[run->chunk++] = result;
        call_gemini(run); /* next chunk, or the merge when chunk == nchunks */
        return;
    }
    finish(run, result);
}

static void handle_reply(run_t *run, const char *body, size_t len)
{
    gw_gemini_reply_t rep;
    char err[256];
    gw_gemini_parse_response(body, len, &rep);
    account_usage(run, &rep);
    gw_gemini_outcome_t o = rep.outcome;
    if (o == GW_GEMINI_OK) {
        json_t *result = json_incref(rep.result);
        gw_gemini_reply_free(&rep);
        /* partials are validated loosely (duration applies); the merged result fully */
        if (gw_result_validate(result, run->meta.duration, run->job->deep, err, sizeof(err)) == 0) {
            accept_result(run, result);
            return;
        }
        json_decref(result);
        if (!run->reasked) {
            run->reasked = true;
            retry_call(run, 0, "unusable analysis JSON, asking once more");
            return;
        }
        fail(run, "bad_model_output", "The model's answer could not be used; we will try again", true, 0);
        return;
    }
    gw_gemini_reply_free(&rep);
    if (o == GW_GEMINI_MAX_TOKENS && !run->big_budget) {
        run->big_budget = true;
        retry_call(run, 0, "answer truncated (MAX_TOKENS), asking with a bigger budget");
    } else if (o == GW_GEMINI_MAX_TOKENS) {
        fail(run, "output_truncated", "The analysis was too long for the model's output limit", false, 0);
    } else if (gw_gemini_outcome_permanent(o)) {
        fail(run, gw_gemini_outcome_error_code(o), "The model declined to analyse this video's content", false, 0);
    } else if (!run->reasked) {
        run->reasked = true;
        retry_call(run, 0, "empty or malformed answer, asking once more");
    } else {
        fail(run, gw_gemini_outcome_error_code(o), "The model returned no usable answer; we will try again", true, 0);
    }
}

/* The media part was refused: a YouTube URL the API will not fetch (upload instead), or an uploaded file that expired
 * or vanished (upload once more; refused again: a transient file_unavailable). Returns true when handled. */
static bool media_refused(run_t *run, long status)
{
    if (status != 400 && status != 403 && status != 404)
        return false;
    if (run->youtube_source) {
        gw_job_log(GW_LOG_WARN, run->job->id, "gemini refused the YouTube URL (HTTP %ld); uploading the video instead", status);
        run->youtube_source = false;
        gw_metrics_count("youtube_url_refused");
        json_object_set_new(run->timings, "youtube_url_refused", json_true());
        await_media(run);
        return true;
    }
    if (run->file_uri != NULL && run->reuploaded && status != 400) {
        /* refused again after a fresh upload with the same key: the file, not the key (not gemini_auth) */
        fail(run, "file_unavailable", "The uploaded video disappeared from the analysis service", true, 0);
        return true;
    }
    if (run->file_uri != NULL && status != 400) {
        gw_job_log(GW_LOG_WARN, run->job->id, "gemini cannot read the uploaded file (HTTP %ld); uploading again", status);
        run->reuploaded = true;
        gw_metrics_count("file_reupload");
        forget_remote(run); /* gone remotely */
        free(run->file_name);
        free(run->file_uri);
        run->file_name = run->file_uri = NULL;
        start_upload(run);
        return true;
    }
    return false;
}

static void on_gemini(gw_fetch_t *req, void *data)
{
    run_t *run = data;
    size_t len;
    const char *body = gw_fetch_data(req, &len);
    long status = gw_fetch_status(req);
    gw_gemini_error_t e;
    run->req = NULL;
    gw_metrics_gemini_call(status);
    gw_gemini_classify_http(status, body, gw_fetch_curlcode(req), &e);
    if (e.ok) {
        handle_reply(run, body, len);
    } else if (media_refused(run, status)) {
        /* handled: falls back to (re-)uploading */
    } else if (e.transient && run->attempt < (unsigned)cfg_of(run)->gemini_max_retries) {
        retry_call(run, gw_backoff_ms(run->attempt + 1, 1000, 60000, e.retry_after_ms), e.error_code);
    } else {
        fail(run, e.error_code, e.message, e.transient, (int64_t)e.retry_after_ms);
    }
    gw_fetch_free(req);
}

static void call_gemini(run_t *run)
{
    gw_config_t *cfg = cfg_of(run);
    json_t *body = build_body(run);
    char *text = json_dumps(body, JSON_COMPACT);
    char *url = gw_gemini_generate_url(cfg->gemini_base_url, model_for(run));
    json_decref(body);
    run->req = gw_fetch_new(run->app->fetcher, "POST", url);
    gw_fetch_header(run->req, "Content-Type", "application/json");
    gw_fetch_header(run->req, "x-goog-api-key", cfg->gemini_api_key ? cfg->gemini_api_key : "");
    gw_fetch_body(run->req, text, strlen(text));
    gw_fetch_timeout(run->req, cfg->gemini_timeout_ms, 10000);
    gw_fetch_max_response(run->req, GEMINI_RESPONSE_CAP);
    free(text);
    free(url);
    if (gw_fetch_start(run->req, on_gemini, run) != 0) {
        gw_fetch_cancel(run->req);
        run->req = NULL;
        fail(run, "gemini_unavailable", "Could not reach the analysis service", true, 0);
    }
}

/* ---- pipeline interface ---- */

static run_t *new_run(gw_job_t *job, gw_app_t *app)
{
    run_t *run = calloc(1, sizeof(*run));
    if (run == NULL)
        abort();
    run->job = job;
    run->app = app;
    run->timings = json_object();
    run->run_started = uv_now(app->loop);
    run->state = RUN_FETCH;
    job->pipeline_data = run;
    if (uv_timer_init(app->loop, &run->timer) != 0)
        abort();
    return run;
}

static bool make_scratch(run_t *run)
{
    snprintf(run->scratch, sizeof(run->scratch), "%s/glint-%s-XXXXXX", cfg_of(run)->work_dir, run->job->id);
    if (mkdtemp(run->scratch) != NULL)
        return true;
    run->scratch[0] = '\0';
    fail(run, "scratch_unavailable", "The worker has no scratch space right now", true, 0);
    return false;
}

/* A local file prepared by handlers/pipeline_local.c (ffprobe + subtitles) for Gemini: deep mode uploads the file
 * itself (no download), standard mode sends the transcript, or the file's audio when it has no subtitles. */
static void start_prepared(gw_job_t *job, gw_video_meta_t *meta, gw_transcript_t *tr, json_t *timings, const char *media_path,
                           void *ctx)
{
    pipeline_t *pl = ctx;
    run_t *run = new_run(job, pl->app);
    struct stat st;
    json_decref(run->timings);
    run->timings = timings;
    run->meta = *meta;
    run->tr = *tr;
    memset(meta, 0, sizeof(*meta));
    memset(tr, 0, sizeof(*tr));
    if (!make_scratch(run))
        return;
    snprintf(run->media_path, sizeof(run->media_path), "%s", media_path);
    run->media_size = stat(media_path, &st) == 0 ? (uint64_t)st.st_size : 0;
    run->dl_done = true; /* nothing to download: the file is here */
    run->local_file = true;
    if (job->deep) {
        run->media = MEDIA_VIDEO;
        after_meta_deep(run);
    } else if (run->tr.nsegments > 0) {
        begin_analysis(run);
    } else {
        run->media = MEDIA_AUDIO;
        json_object_set_new(run->timings, "transcript_source", json_string("audio"));
        await_media(run);
    }
}

static void start(gw_job_t *job, void *ctx)
{
    pipeline_t *pl = ctx;
    gw_app_t *app = pl->app;
    if (gw_pipeline_local_start(app, job, start_prepared, pl))
        return; /* a local file: handlers/pipeline_local.c */
    run_t *run = new_run(job, app);
    const char *code = NULL, *msg = NULL;
    if (gw_ytdlp_normalize_url(job->video_url, app->cfg->allowed_video_hosts, run->video_id, &run->url, &code, &msg) != 0) {
        fail(run, code ? code : "invalid_url", msg ? msg : "This is not a video URL we can analyse", false, 0);
        return;
    }
    if (!local_analyzer(run) && (app->cfg->gemini_api_key == NULL || *app->cfg->gemini_api_key == '\0')) {
        fail(run, "gemini_not_configured", "The analysis service is not configured on this worker", true, 0);
        return;
    }
    if (!make_scratch(run))
        return;
    if (job->deep) {
        run->media = MEDIA_VIDEO;
        run->youtube_source = strcmp(app->cfg->deep_video_source, "youtube_url") == 0 && run->video_id[0] != '\0' &&
                              !local_analyzer(run); /* the local analyzer needs the file for its scene detection */
    }
    start_fetch(run);
}

static void abort_job(gw_job_t *job, void *ctx)
{
    if (gw_pipeline_local_abort(job))
        return; /* a local file still in handlers/pipeline_local.c */
    run_t *run = job->pipeline_data;
    if (run == NULL || run->state == RUN_DONE) {
        gw_job_aborted(job);
        return;
    }
    conclude(run, OUT_ABORT); /* stops everything, deletes the remote file, then gw_job_aborted */
}

int gw_pipeline_init(gw_app_t *app, gw_pipeline_t *out)
{
    pipeline_t *pl = calloc(1, sizeof(*pl));
    if (pl == NULL)
        abort();
    pl->app = app;
    app->pipeline_ctx = pl;
    out->start = start;
    out->abort = abort_job;
    out->ctx = pl;
    if (gw_pipeline_local_selected(app->cfg)) {
        gw_info("analyzer: local (local-extractive, no network)%s",
                app->cfg->gemini_api_key && *app->cfg->gemini_api_key ? "" : ": GEMINI_API_KEY is not set");
    } else if (app->cfg->gemini_api_key == NULL || *app->cfg->gemini_api_key == '\0') { /* models: handlers/modelcheck.c */
        gw_warn("GEMINI_API_KEY is not set: jobs will wait (retry) until it is");
    }
    /* crash recovery: leftovers of earlier runs (remote files, scratch dirs), at start and then every lease period */
    uint64_t every = (uint64_t)app->cfg->lease_seconds * 1000;
    gw_sweeper_opts_t so = {app->cfg->gemini_base_url,   app->cfg->gemini_api_key, app->cfg->work_dir, 1000,
                            every > 5000 ? every : 5000, &app->draining,           &app->queue};
    if (app->pg != NULL) /* `glint-worker analyze` runs without a database */
        pl->sweeper = gw_sweeper_start(app->loop, app->pg, app->fetcher, &so);
    return 0;
}

void gw_pipeline_dispose(gw_app_t *app)
{
    pipeline_t *pl = app->pipeline_ctx;
    if (pl != NULL) {
        gw_sweeper_free(pl->sweeper);
        free(pl);
        app->pipeline_ctx = NULL;
    }
    gw_metrics_reset();
}
