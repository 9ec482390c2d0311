/* The local source: a file under LOCAL_MEDIA_DIR. ffprobe reads its streams and duration; the transcript comes from
 * a sidecar (.vtt/.srt next to it) or the embedded subtitle stream (extracted by ffmpeg). Subtitle files are parsed on
 * the thread pool: a long one takes many milliseconds. Nothing is downloaded: the file itself is the media. */
#include "handlers/job.h"
#include "handlers/localmedia.h"
#include "reactor/log.h"
#include "reactor/text.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define PROBE_TIMEOUT_MS 60000
#define SUBS_TIMEOUT_MS 300000
#define PROBE_OUT_CAP (8u << 20)
#define NO_SUBTITLES "This file has no subtitles: put a .vtt or .srt with the same name next to it"

/* A subtitle parse on the thread pool: touches only its own fields. */
typedef struct st_subs_job_t {
    char *media_path, *root; /* sidecar lookup (root set), or */
    char *file;              /* one extracted file */
    gw_transcript_t tr;
    int rc;
} subs_job_t;

static void subs_free(void *arg)
{
    subs_job_t *s = arg;
    gw_transcript_free(&s->tr);
    free(s->media_path);
    free(s->root);
    free(s->file);
    free(s);
}

static void subs_parse(void *arg)
{
    subs_job_t *s = arg;
    if (s->file != NULL)
        s->rc = gw_localmedia_load_subtitle_file(s->file, &s->tr);
    else
        s->rc = gw_localmedia_load_sidecar(s->media_path, s->root, &s->tr);
}

/* Metadata and transcript known: the file is the media. */
static void transcript_ready(gw_run_t *run)
{
    struct stat st;
    gw_run_stage_end(run, "metadata");
    snprintf(run->media_path, sizeof(run->media_path), "%s", run->path);
    run->media_size = stat(run->path, &st) == 0 ? (uint64_t)st.st_size : 0;
    run->dl_done = true; /* nothing to download */
    run->probed = true;  /* ffprobe already said what it knows about the duration */
    if (run->tr.nsegments > 0)
        json_object_set_new(run->timings, "transcript_source", json_string(run->tr.source ? run->tr.source : "captions"));
    else if (!run->job->deep)
        json_object_set_new(run->timings, "transcript_source", json_string("audio"));
    if (run->tr.nsegments == 0 && run->local_analyzer) { /* it needs words */
        gw_run_fail(run, "no_transcript", NO_SUBTITLES, false, 0);
        return;
    }
    gw_source_after_metadata(run);
}

static void no_transcript(gw_run_t *run)
{
    if (run->job->deep && !run->local_analyzer) { /* Gemini can still watch and listen to the file itself */
        transcript_ready(run);
        return;
    }
    gw_run_fail(run, "no_transcript", NO_SUBTITLES, false, 0);
}

static void on_embedded_parsed(gw_run_t *run, void *arg)
{
    subs_job_t *s = arg;
    if (s->rc != 0) {
        gw_job_log(GW_LOG_WARN, run->job->id, "embedded subtitle stream %d unusable", run->info.subtitle_stream);
        subs_free(s);
        no_transcript(run);
        return;
    }
    gw_transcript_free(&run->tr);
    run->tr = s->tr;
    memset(&s->tr, 0, sizeof(s->tr));
    subs_free(s);
    free(run->tr.source);
    run->tr.source = gw_xstrdup("embedded");
    transcript_ready(run);
}

static void on_subs(gw_run_t *run, const gw_proc_result_t *r)
{
    if (r->spawn_error != 0) {
        gw_job_log(GW_LOG_ERROR, run->job->id, "ffmpeg could not be started: %s", uv_strerror(r->spawn_error));
        gw_run_fail(run, "tool_unavailable", "A media tool could not be started on this worker", true, 0);
        return;
    }
    if (r->timed_out || r->term_signal != 0 || r->exit_status != 0) {
        gw_job_log(GW_LOG_WARN, run->job->id, "embedded subtitle stream %d unusable", run->info.subtitle_stream);
        no_transcript(run);
        return;
    }
    subs_job_t *s = calloc(1, sizeof(*s));
    char vtt[PATH_MAX + 32];
    if (s == NULL)
        abort();
    snprintf(vtt, sizeof(vtt), "%s/embedded.vtt", run->scratch);
    s->file = gw_xstrdup(vtt);
    if (gw_run_set_state(run, GW_RUN_TRANSCRIPT))
        gw_run_offload(run, subs_parse, s, on_embedded_parsed, subs_free);
    else
        subs_free(s);
}

static void extract_embedded(gw_run_t *run)
{
    if (run->info.subtitle_stream < 0) {
        no_transcript(run);
        return;
    }
    char vtt[PATH_MAX + 32];
    snprintf(vtt, sizeof(vtt), "%s/embedded.vtt", run->scratch);
    if (!gw_run_set_state(run, GW_RUN_SUBTITLES))
        return;
    gw_run_spawn(run, GW_PROC_MAIN,
                 gw_localmedia_argv_extract_subs(run->app->cfg->ffmpeg_path, run->path, run->info.subtitle_stream, vtt),
                 SUBS_TIMEOUT_MS, 0, 0, on_subs);
}

static void on_sidecar_parsed(gw_run_t *run, void *arg)
{
    subs_job_t *s = arg;
    if (s->rc != 0) {
        subs_free(s);
        extract_embedded(run);
        return;
    }
    gw_transcript_free(&run->tr);
    run->tr = s->tr;
    memset(&s->tr, 0, sizeof(s->tr));
    subs_free(s);
    char *src = run->tr.source;
    run->tr.source = gw_xstrdup(src && strcmp(src, "srt") == 0 ? "sidecar-srt" : "sidecar-vtt");
    free(src);
    transcript_ready(run);
}

static void on_probe(gw_run_t *run, const gw_proc_result_t *r)
{
    const char *code = NULL;
    if (r->spawn_error != 0) {
        gw_job_log(GW_LOG_ERROR, run->job->id, "ffprobe could not be started: %s", uv_strerror(r->spawn_error));
        gw_run_fail(run, "tool_unavailable", "A media tool could not be started on this worker", true, 0);
    } else if (r->timed_out) {
        gw_run_fail(run, "probe_timeout", "Reading the file's details took too long", true, 0);
    } else if (r->term_signal != 0 || r->exit_status != 0 || r->out_truncated) {
        gw_run_fail(run, "unreadable_media", "The file is not a video or audio file we can read", false, 0);
    } else if (gw_localmedia_parse_probe(r->out, r->out_len, run->path, &run->meta, &run->info, &code) != 0) {
        gw_run_fail(run, code ? code : "bad_media", "The file holds no audio, video or subtitle stream", false, 0);
    } else if (gw_run_set_state(run, GW_RUN_TRANSCRIPT)) {
        subs_job_t *s = calloc(1, sizeof(*s));
        if (s == NULL)
            abort();
        s->media_path = gw_xstrdup(run->path);
        s->root = gw_xstrdup(run->root);
        gw_run_offload(run, subs_parse, s, on_sidecar_parsed, subs_free);
    }
}

bool gw_source_local_intake(gw_run_t *run)
{
    gw_settings_t *cfg = run->app->cfg;
    const char *code = NULL, *msg = NULL;
    if (gw_localmedia_resolve(run->job->video_url, cfg->local_media_dir, &run->path, &code, &msg) != 0 ||
        realpath(cfg->local_media_dir, run->root) == NULL) {
        bool transient = code == NULL || strcmp(code, "media_dir_unavailable") == 0;
        gw_run_fail(run, code ? code : "media_dir_unavailable",
                    msg ? msg : "The worker's media directory is not available right now", transient, 0);
        return false;
    }
    return true;
}

void gw_source_local_start(gw_run_t *run)
{
    if (!gw_run_set_state(run, GW_RUN_PROBE))
        return;
    gw_run_stage_begin(run, "metadata");
    gw_run_spawn(run, GW_PROC_MAIN, gw_localmedia_argv_probe(run->app->cfg->ffprobe_path, run->path), PROBE_TIMEOUT_MS,
                 PROBE_OUT_CAP, 0, on_probe);
}
