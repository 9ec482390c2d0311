/* What both sources share once metadata and transcript are known: the credit reconcile of deep mode, and the MEDIA
 * state (the download of a remote video, a duration probe when nobody knew it, the audio track for Gemini to hear). */
#include "handlers/job.h"
#include "handlers/media.h"
#include "handlers/metrics.h"
#include "handlers/remote.h"
#include "reactor/log.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void media_ready(gw_run_t *run);

/* ---- credits (deep) ---- */

static void after_credits(gw_run_t *run)
{
    if (run->youtube_source) {
        gw_analyze_begin(run);
    } else {
        gw_source_await_media(run);
    }
}

static void on_reconciled(PGresult *res, const char *error, void *data)
{
    gw_run_t *run = data;
    if (!gw_run_pg_end(run))
        return;
    if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
        gw_run_fail(run, "database_unavailable", "The worker could not check the credits for this video", true, 0);
        return;
    }
    const char *v = PQgetisnull(res, 0, 0) ? "lost" : PQgetvalue(res, 0, 0);
    gw_job_log(GW_LOG_INFO, run->job->id, "credits for %.0f s: %s", run->meta.duration, v);
    json_object_set_new(run->timings, "credits", json_string(v));
    if (strcmp(v, "insufficient") == 0) {
        gw_run_fail(run, "insufficient_credits", "This video is longer than your credit balance covers", false, 0);
    } else if (strcmp(v, "lost") == 0) {
        gw_run_fail(run, "job_lost", "The job is no longer held by this worker", false, 0);
    } else {
        after_credits(run);
    }
}

static void reconcile(gw_run_t *run)
{
    if (gw_run_pg(run) == NULL) {
        after_credits(run);
        return;
    }
    if (!gw_run_set_state(run, GW_RUN_CREDITS))
        return;
    gw_run_pg_begin(run);
    gw_credits_reconcile(gw_run_pg(run), run->job->id, gw_queue_worker_id(run->job->queue), run->meta.duration, on_reconciled, run);
}

void gw_source_after_metadata(gw_run_t *run)
{
    if (run->job->deep) {
        if (run->meta.duration > 0)
            reconcile(run);
        else if (run->youtube_source) /* unknown duration and nothing to probe: the charge made at enqueue stands */
            gw_analyze_begin(run);
        else
            gw_source_await_media(run);
    } else if (run->tr.nsegments > 0) {
        gw_analyze_begin(run);
    } else {
        run->media = GW_MEDIA_AUDIO; /* no captions: Flash listens to the audio */
        gw_source_await_media(run);
    }
}

/* ---- MEDIA ---- */

static void on_ffmpeg(gw_run_t *run, const gw_proc_result_t *r)
{
    uint64_t size;
    char path[PATH_MAX];
    if (r->spawn_error != 0) {
        gw_run_fail(run, "tool_unavailable", "ffmpeg could not be started on this worker", true, 0);
    } else if (r->timed_out || r->term_signal != 0 || r->exit_status != 0 ||
               gw_media_find(run->scratch, "audio", path, sizeof(path), &size) != 0 || size == 0) {
        gw_job_log(GW_LOG_WARN, run->job->id, "ffmpeg failed: %.200s", r->err ? r->err : "");
        gw_run_fail(run, "no_transcript", "This video has no captions and its audio could not be extracted", false, 0);
    } else {
        snprintf(run->media_path, sizeof(run->media_path), "%s", path);
        run->media_size = size;
        gw_run_stage_end(run, run->source == GW_SOURCE_LOCAL ? "audio" : "download");
        gw_analyze_start_upload(run);
    }
}

static void extract_audio(gw_run_t *run)
{
    char out[PATH_MAX + 16];
    snprintf(out, sizeof(out), "%s/audio.ogg", run->scratch);
    if (run->source == GW_SOURCE_LOCAL)
        gw_run_stage_begin(run, "audio");
    gw_run_spawn(run, GW_PROC_FFMPEG, gw_media_argv_audio(run->app->cfg->ffmpeg_path, run->media_path, out),
                 (uint64_t)run->app->cfg->download_timeout_ms, 0, 0, on_ffmpeg);
}

/* yt-dlp did not know the duration: ffprobe the downloaded file, then reconcile the credits with it. */
static void on_probe(gw_run_t *run, const gw_proc_result_t *r)
{
    run->probed = true;
    double d = r->spawn_error == 0 && r->exit_status == 0 && r->out != NULL ? strtod(r->out, NULL) : -1;
    if (d > 0 && isfinite(d)) {
        run->meta.duration = d;
        json_object_set_new(run->timings, "duration_source", json_string("ffprobe"));
        reconcile(run); /* comes back through gw_source_await_media */
        return;
    }
    gw_job_log(GW_LOG_WARN, run->job->id, "ffprobe could not tell the duration; the charge made at enqueue stands");
    media_ready(run);
}

static void probe_duration(gw_run_t *run)
{
    const char *argv[] = {
        run->app->cfg->ffprobe_path, "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", run->media_path, NULL};
    char **copy = calloc(sizeof(argv) / sizeof(argv[0]), sizeof(char *));
    if (copy == NULL)
        abort();
    for (size_t i = 0; argv[i] != NULL; i++)
        if ((copy[i] = strdup(argv[i])) == NULL)
            abort();
    gw_run_spawn(run, GW_PROC_FFMPEG, copy, 30000, 4096, 0, on_probe);
}

/* The download is in (or the file is local); the metadata run may still be going (deep) or done. */
static void media_ready(gw_run_t *run)
{
    if (run->state != GW_RUN_MEDIA)
        return; /* the metadata run / credit check finishes first and comes back here */
    if (run->dl_code != NULL) {
        gw_run_fail(run, run->dl_code, run->dl_msg, run->dl_transient, 0);
        return;
    }
    if (run->media == GW_MEDIA_AUDIO) {
        extract_audio(run);
        return;
    }
    if (run->meta.duration <= 0 && !run->probed) {
        probe_duration(run);
        return;
    }
    if (run->source == GW_SOURCE_REMOTE)
        gw_run_stage_end(run, "download");
    gw_analyze_media_ready(run);
}

/* Download finished (remote): a failure is kept until the metadata run is done too. */
void gw_source_media_downloaded(gw_run_t *run)
{
    media_ready(run);
}

/* Enters MEDIA: starts the download unless it already runs (deep) and goes on once it is in. */
void gw_source_await_media(gw_run_t *run)
{
    if (run->state != GW_RUN_MEDIA && !gw_run_set_state(run, GW_RUN_MEDIA)) /* MEDIA again: after a duration probe */
        return;
    if (!gw_run_proc_active(run, GW_PROC_DOWNLOAD) && !run->dl_done) { /* a download queued for the pool counts */
        gw_run_stage_begin(run, "download");
        gw_source_remote_download(run);
        return;
    }
    if (run->source == GW_SOURCE_REMOTE)
        gw_job_set_stage(run->job, "download");
    if (run->dl_done)
        media_ready(run);
}
