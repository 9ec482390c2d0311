/* The remote source: one yt-dlp run for metadata and subtitles (one request burst to YouTube), and the media download
 * (deep mode: side by side with it; standard without captions: the audio source). */
#include "handlers/job.h"
#include "handlers/media.h"
#include "handlers/metrics.h"
#include "handlers/ytdlp.h"
#include "reactor/log.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define YTDLP_OUT_CAP (8u << 20) /* a bigger -J answer is refused */

/* ---- the download ---- */

static void download_failed(gw_run_t *run, const char *code, const char *msg, bool transient)
{
    run->dl_code = code;
    run->dl_msg = msg;
    run->dl_transient = transient;
}

static void on_download(gw_run_t *run, const gw_proc_result_t *r)
{
    const char *stem = run->media == GW_MEDIA_AUDIO ? "audio-src" : "video";
    run->dl_done = true;
    run->job->disk_reserved = 0; /* what it wrote is on disk now, where the claim's statvfs sees it */
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
    } else if (run->media_size > (uint64_t)run->app->cfg->download_max_bytes) {
        download_failed(run, "video_too_large", "This video is larger than this worker accepts", false);
    }
    gw_source_media_downloaded(run); /* waits for the metadata run when that is still going */
}

void gw_source_remote_download(gw_run_t *run)
{
    gw_settings_t *cfg = run->app->cfg;
    char *vformat = run->media == GW_MEDIA_VIDEO ? gw_ytdlp_video_format(cfg->deep_max_height) : NULL;
    char **argv = gw_ytdlp_argv_media(cfg->ytdlp_path, run->url, run->scratch, run->media == GW_MEDIA_AUDIO ? "audio-src" : "video",
                                      vformat ? vformat : GW_YTDLP_AUDIO_FORMAT, (uint64_t)cfg->download_max_bytes,
                                      strcmp(cfg->ffmpeg_path, "ffmpeg") != 0 ? cfg->ffmpeg_path : NULL);
    run->dl_done = false;
    gw_run_spawn(run, GW_PROC_DOWNLOAD, argv, (uint64_t)cfg->download_timeout_ms, 0, 0, on_download);
    free(vformat);
}

/* ---- metadata + subtitles ---- */

/* yt-dlp's -J answer (megabytes for long videos) and the subtitle file it wrote are parsed on the thread pool. The work
 * touches only this struct; the run moves the results in afterwards. */
typedef struct st_fetch_parse_t {
    char *out; /* a copy: the process result is gone once its callback returns */
    size_t len;
    char scratch[PATH_MAX];
    char **langs;
    gw_video_meta_t meta;
    gw_transcript_t tr;
    int rc; /* -1 metadata unreadable, -2 a video we refuse, 0 transcript loaded, 1 none */
    const char *code, *msg;
} fetch_parse_t;

static void fetch_parse_free(void *arg)
{
    fetch_parse_t *f = arg;
    gw_video_meta_free(&f->meta);
    gw_transcript_free(&f->tr);
    gw_run_free_langs(f->langs);
    free(f->out);
    free(f);
}

/* Metadata and the subtitle choice from one parse of the -J answer. */
static void fetch_parse(void *arg)
{
    fetch_parse_t *f = arg;
    json_t *root = json_loadb(f->out, f->len, 0, NULL);
    f->rc = -1;
    if (gw_ytdlp_meta_from_json(root, &f->meta, &f->code) != 0) {
        f->msg = NULL;
    } else if (gw_ytdlp_check_meta(&f->meta, &f->code, &f->msg) != 0) {
        f->rc = -2;
    } else {
        f->rc =
            gw_ytdlp_load_transcript_json(f->scratch, &f->meta, (const char *const *)f->langs, root, &f->tr, &f->code) == 0 ? 0 : 1;
    }
    json_decref(root);
}

static void after_fetch(gw_run_t *run, void *arg)
{
    fetch_parse_t *f = arg;
    const char *code = f->code, *msg = f->msg;
    int rc = f->rc;
    gw_video_meta_free(&run->meta);
    gw_transcript_free(&run->tr);
    run->meta = f->meta;
    run->tr = f->tr;
    memset(&f->meta, 0, sizeof(f->meta));
    memset(&f->tr, 0, sizeof(f->tr));
    fetch_parse_free(f);
    if (rc == -1) {
        gw_run_fail(run, code ? code : "bad_metadata", "yt-dlp returned metadata we could not read", true, 0);
        return;
    }
    if (rc == -2) {
        gw_run_fail(run, code, msg, false, 0);
        return;
    }
    gw_run_stage_end(run, "metadata");
    bool captions = rc == 0 && run->tr.nsegments > 0;
    if (captions && run->meta.duration <= 0 && !run->job->deep) { /* deep probes the download instead */
        run->meta.duration = (double)run->tr.segments[run->tr.nsegments - 1].end_ms / 1000.0;
        json_object_set_new(run->timings, "duration_source", json_string("captions"));
    }
    json_object_set_new(run->timings, "transcript_source",
                        json_string(captions         ? (run->tr.source ? run->tr.source : "captions")
                                    : run->job->deep ? "none"
                                                     : "audio"));
    if (run->job->deep || captions) {
        gw_source_after_metadata(run);
    } else if (code != NULL && strcmp(code, "no_transcript") != 0 &&
               (run->local_analyzer || run->job->attempts < run->job->max_attempts)) {
        /* captions exist but could not be fetched right now: retry (the last attempt falls back to the audio) */
        gw_run_fail(run, code, "The video's captions could not be fetched right now; the job will be retried", true, 0);
    } else if (run->local_analyzer) { /* the local analyzer cannot listen: it needs words */
        gw_run_fail(run, "no_transcript", "This video has no captions, which the local analyzer needs", false, 0);
    } else {
        gw_metrics_count("audio_fallback");
        gw_source_after_metadata(run); /* no captions: Flash listens to the audio */
    }
}

static void on_ytdlp(gw_run_t *run, const gw_proc_result_t *r)
{
    if (r->spawn_error != 0) {
        gw_run_fail(run, "tool_unavailable", "yt-dlp could not be started on this worker", true, 0);
    } else if (r->timed_out) {
        gw_metrics_count("ytdlp_timeout");
        gw_run_fail(run, "ytdlp_timeout", "Fetching the video's details took too long", true, 0);
    } else if (r->term_signal != 0 || r->exit_status != 0) {
        const char *code, *msg;
        bool transient;
        gw_ytdlp_classify_failure(r->err ? r->err : "", r->term_signal ? -1 : (int)r->exit_status, &code, &msg, &transient);
        gw_run_fail(run, code, msg, transient, 0);
    } else if (r->out_truncated) {
        gw_run_fail(run, "bad_metadata", "yt-dlp printed more metadata than we accept", false, 0);
    } else {
        fetch_parse_t *f = calloc(1, sizeof(*f));
        if (f == NULL || (f->out = malloc(r->out_len + 1)) == NULL)
            abort();
        memcpy(f->out, r->out ? r->out : "", r->out ? r->out_len : 0);
        f->len = r->out ? r->out_len : 0;
        snprintf(f->scratch, sizeof(f->scratch), "%s", run->scratch);
        f->langs = gw_run_split_langs(run->app->cfg->transcript_langs);
        gw_run_offload(run, fetch_parse, f, after_fetch, fetch_parse_free);
    }
}

void gw_source_remote_start(gw_run_t *run)
{
    gw_settings_t *cfg = run->app->cfg;
    /* TRANSCRIPT_LANGS must reach yt-dlp too, or a non-English preference is never downloaded */
    char *sub_langs = NULL;
    if (cfg->transcript_langs != NULL && *cfg->transcript_langs != '\0') {
        char **langs = gw_run_split_langs(cfg->transcript_langs);
        sub_langs = gw_ytdlp_sub_langs((const char *const *)langs);
        gw_run_free_langs(langs);
    }
    char **argv = gw_ytdlp_argv_fetch(cfg->ytdlp_path, run->url, run->scratch, sub_langs);
    free(sub_langs);
    if (!gw_run_set_state(run, GW_RUN_FETCH)) {
        gw_argv_free(argv);
        return;
    }
    gw_run_stage_begin(run, "metadata");
    gw_run_spawn(run, GW_PROC_MAIN, argv, (uint64_t)cfg->ytdlp_timeout_ms, YTDLP_OUT_CAP, 0, on_ytdlp);
    if (run->media == GW_MEDIA_VIDEO && !run->youtube_source)
        gw_source_remote_download(run); /* side by side with the metadata run */
}
