/* The analyzer stage: Gemini (Files API upload when it needs the media, one request or map over transcript chunks /
 * video segments then reduce, retries and backoff) or the local analyzer (scene detection for deep mode, then the
 * extractive analysis on the thread pool). Both produce a validated result into gw_run_complete. */
#include "handlers/job.h"
#include "handlers/local_analyzer.h"
#include "handlers/metrics.h"
#include "handlers/modelcheck.h"
#include "handlers/remote.h"
#include "handlers/result.h"
#include "reactor/backoff.h"
#include "reactor/log.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GEMINI_RESPONSE_CAP (8u << 20)
#define BIG_OUTPUT_TOKENS 65536
#define SCENE_ERR_CAP (16u << 20)  /* ffmpeg's showinfo prints one line per detected change */
#define GEMINI_AUTH_HOLD_MS 10000  /* claims held after Gemini refused the key, until the model check's verdict */
#define GEMINI_AUTH_DEFER_MS 30000 /* the refused job's wait before it may be claimed again */

static void call_gemini(gw_run_t *run);

/* ---- the local analyzer (on the thread pool) ---- */

typedef struct st_local_job_t {
    const gw_video_meta_t *meta; /* the run's: it stays put while work is in flight (cleanup awaits it) */
    const gw_transcript_t *tr;
    bool deep;
    const double *scenes;
    size_t nscenes;
    json_t *result;
} local_job_t;

static void local_free(void *arg)
{
    local_job_t *l = arg;
    json_decref(l->result);
    free(l);
}

static void local_work(void *arg)
{
    local_job_t *l = arg;
    gw_local_input_t in = {l->meta, l->tr, l->deep, l->scenes, l->nscenes};
    char err[256];
    l->result = gw_local_analyze(&in, err, sizeof(err));
    if (l->result != NULL && gw_result_validate(l->result, l->meta->duration, l->deep, err, sizeof(err)) != 0) {
        json_decref(l->result);
        l->result = NULL;
    }
}

static void on_local_done(gw_run_t *run, void *arg)
{
    local_job_t *l = arg;
    json_t *r = l->result;
    l->result = NULL;
    local_free(l);
    if (r == NULL) {
        gw_run_fail(run, "no_transcript", "The transcript holds no text to analyse", false, 0);
        return;
    }
    snprintf(run->model_version, sizeof(run->model_version), "%s", GW_LOCAL_MODEL);
    run->nchunks = 1;
    if (run->language[0] != '\0') /* extractive: it quotes the transcript and cannot translate; the job still completes */
        json_object_set_new(run->timings, "language",
                            json_pack("{s:s, s:b, s:s}", "requested", run->language, "applied", 0, "note",
                                      "the local analyzer cannot translate: the analysis is in the transcript's language"));
    gw_run_complete(run, r);
}

static void analyze_locally(gw_run_t *run)
{
    local_job_t *l = calloc(1, sizeof(*l));
    if (l == NULL)
        abort();
    *l = (local_job_t){&run->meta, &run->tr, run->job->deep, run->scenes, run->nscenes, NULL};
    gw_run_offload(run, local_work, l, on_local_done, local_free);
}

/* ffmpeg's showinfo lines (one per detected change; megabytes for a long video) are parsed on the thread pool. */
typedef struct st_scenes_parse_t {
    char *text;
    double *times;
    size_t n;
} scenes_parse_t;

static void scenes_free(void *arg)
{
    scenes_parse_t *p = arg;
    free(p->text);
    free(p->times);
    free(p);
}

static void scenes_parse(void *arg)
{
    scenes_parse_t *p = arg;
    p->n = gw_local_parse_scenes(p->text, &p->times);
}

static void on_scenes_parsed(gw_run_t *run, void *arg)
{
    scenes_parse_t *p = arg;
    free(run->scenes);
    run->scenes = p->times;
    run->nscenes = p->n;
    p->times = NULL;
    scenes_free(p);
    json_object_set_new(run->timings, "scene_changes", json_integer((json_int_t)run->nscenes));
    gw_run_stage_end(run, "scenes");
    gw_analyze_begin(run);
}

static void on_scenes(gw_run_t *run, const gw_proc_result_t *r)
{
    if (r->spawn_error != 0 || r->timed_out || r->term_signal != 0 || r->exit_status != 0) {
        /* the analysis still stands on the transcript; the timings say why the visual audit is empty */
        gw_job_log(GW_LOG_WARN, run->job->id, "scene detection failed (exit %lld%s): visual audit left empty",
                   (long long)r->exit_status, r->timed_out ? ", timed out" : "");
        json_object_set_new(run->timings, "scenes_error", json_string(r->timed_out ? "timeout" : "ffmpeg_failed"));
        gw_run_stage_end(run, "scenes");
        gw_analyze_begin(run);
        return;
    }
    scenes_parse_t *p = calloc(1, sizeof(*p));
    if (p == NULL || (p->text = malloc(r->err_len + 1)) == NULL)
        abort();
    memcpy(p->text, r->err ? r->err : "", r->err ? r->err_len : 0);
    p->text[r->err ? r->err_len : 0] = '\0';
    gw_run_offload(run, scenes_parse, p, on_scenes_parsed, scenes_free);
}

static void detect_scenes(gw_run_t *run)
{
    double d = run->meta.duration > 0 ? run->meta.duration : 3600;
    if (!gw_run_set_state(run, GW_RUN_SCENES))
        return;
    gw_run_stage_begin(run, "scenes");
    gw_run_spawn(run, GW_PROC_FFMPEG, gw_local_argv_scenes(run->app->cfg->ffmpeg_path, run->media_path, NULL),
                 60000 + (uint64_t)(d * 2000), 0, SCENE_ERR_CAP, on_scenes); /* decoding runs many times faster than real time */
}

void gw_analyze_media_ready(gw_run_t *run)
{
    if (!run->local_analyzer)
        gw_analyze_start_upload(run);
    else if (run->source == GW_SOURCE_LOCAL && !run->info.has_video) /* an audio file: nothing to look at */
        gw_analyze_begin(run);
    else
        detect_scenes(run);
}

/* ---- Files API ---- */

static void on_remote_named(const char *name, void *data)
{
    gw_run_t *run = data;
    free(run->file_name);
    run->file_name = strdup(name);
    if (run->file_name == NULL)
        abort();
    if (gw_run_pg(run) != NULL)
        gw_remote_named(gw_run_pg(run), run->job->id, run->display, name);
}

static void on_uploaded(const gw_upload_result_t *r, void *data)
{
    gw_run_t *run = data;
    run->up = NULL;
    if (!r->ok) {
        gw_run_fail(run, r->error_code, r->message, r->transient, 0);
        return;
    }
    free(run->file_uri);
    run->file_uri = strdup(r->file->uri);
    if (run->file_uri == NULL)
        abort();
    double secs = r->upload_ms / 1000.0;
    gw_run_stage_time(run, "upload", secs);
    gw_run_stage_time(run, "file_processing", r->processing_ms / 1000.0);
    json_object_set_new(run->timings, "upload_bytes", json_integer((json_int_t)r->bytes));
    if (secs > 0)
        json_object_set_new(run->timings, "upload_mb_per_s", json_real((double)r->bytes / 1048576.0 / secs));
    gw_analyze_begin(run);
}

static void begin_upload(gw_run_t *run)
{
    gw_settings_t *cfg = run->app->cfg;
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

static void on_remote_recorded(PGresult *res, const char *error, void *data)
{
    gw_run_t *run = data;
    if (!gw_run_pg_end(run))
        return;
    if (res == NULL || PQresultStatus(res) != PGRES_COMMAND_OK) {
        gw_run_fail(run, "database_unavailable", "The worker could not record its work in the database", true, 0);
        return;
    }
    begin_upload(run);
}

/* The row goes in before the upload starts: a crash at any later point leaves a trace the recovery sweep finds. */
void gw_analyze_start_upload(gw_run_t *run)
{
    if (!gw_run_set_state(run, GW_RUN_UPLOAD))
        return;
    gw_run_stage_begin(run, "upload");
    run->file_mime = gw_upload_mime_for_path(run->media_path);
    snprintf(run->display, sizeof(run->display), "glint-%s-%d%s", run->job->id, run->job->attempts, run->reuploaded ? "r" : "");
    if (gw_run_pg(run) == NULL) {
        begin_upload(run);
        return;
    }
    run->remote_recorded = true;
    gw_run_pg_begin(run);
    gw_remote_record(gw_run_pg(run), run->job->id, run->display, gw_queue_worker_id(run->job->queue), on_remote_recorded, run);
}

/* ---- Gemini ---- */

static const char *model_for(const gw_run_t *run)
{
    return run->job->deep ? run->app->cfg->gemini_pro_model : run->app->cfg->gemini_flash_model;
}

static const char *media_resolution(const gw_settings_t *cfg)
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

static json_t *build_body(gw_run_t *run)
{
    gw_settings_t *cfg = run->app->cfg;
    gw_gemini_opts_t o;
    gw_gemini_opts_init(&o, run->job->deep);
    o.thinking_level = cfg->thinking_level;
    o.media_resolution = run->job->deep ? media_resolution(cfg) : run->bot_fallback ? "MEDIA_RESOLUTION_LOW" : NULL;
    o.file_uri = run->youtube_source ? run->url : run->file_uri;
    o.file_mime = run->youtube_source ? "video/*" : run->file_mime;
    o.language = run->language[0] != '\0' ? run->language : NULL;
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
static void plan(gw_run_t *run)
{
    gw_settings_t *cfg = run->app->cfg;
    double seg = (double)cfg->deep_segment_seconds;
    run->clip_len = 0;
    if (run->job->deep && (run->file_uri != NULL || run->youtube_source) && run->meta.duration > seg) {
        size_t n = (size_t)ceil(run->meta.duration / seg);
        if (n > GW_RUN_MAX_CHUNKS)
            n = GW_RUN_MAX_CHUNKS;
        run->nchunks = n;
        run->clip_len = ceil(run->meta.duration / (double)n);
        return;
    }
    run->nchunks = gw_gemini_plan_chunks(&run->tr, (size_t)cfg->gemini_chunk_chars, run->bounds, GW_RUN_MAX_CHUNKS);
    if (run->nchunks == 0)
        run->nchunks = 1; /* no transcript: one request with the media */
}

void gw_analyze_begin(gw_run_t *run)
{
    if (!gw_run_set_state(run, GW_RUN_ANALYZE))
        return;
    gw_run_stage_begin(run, "analyze");
    if (run->local_analyzer) {
        analyze_locally(run);
        return;
    }
    plan(run);
    run->chunk = 0;
    run->attempt = 0;
    run->reasked = false;
    for (size_t i = 0; i < GW_RUN_MAX_CHUNKS; i++) {
        json_decref(run->partials[i]);
        run->partials[i] = NULL;
    }
    call_gemini(run);
}

static void on_backoff(uv_timer_t *t)
{
    call_gemini((gw_run_t *)t);
}

static void retry_call(gw_run_t *run, uint64_t delay_ms, const char *why)
{
    run->attempt++;
    gw_metrics_retry("gemini");
    gw_job_log(GW_LOG_WARN, run->job->id, "gemini: %s; retrying in %llu ms", why, (unsigned long long)delay_ms);
    uv_timer_start(&run->timer, on_backoff, delay_ms, 0);
}

static void account_usage(gw_run_t *run, const gw_gemini_reply_t *rep)
{
    gw_usage_t call = {(long)rep->prompt_tokens, (long)rep->candidates_tokens, (long)rep->thoughts_tokens};
    gw_governor_settle(run->app->governor, model_for(run), run->gov_est, &call); /* GOVERNOR HOOK: real usage, cost metric */
    run->usage.prompt_tokens += rep->prompt_tokens;
    run->usage.output_tokens += rep->candidates_tokens;
    run->usage.thoughts_tokens += rep->thoughts_tokens;
    gw_metrics_tokens("prompt", (long)rep->prompt_tokens);
    gw_metrics_tokens("output", (long)rep->candidates_tokens);
    gw_metrics_tokens("thoughts", (long)rep->thoughts_tokens);
    if (rep->model_version != NULL)
        snprintf(run->model_version, sizeof(run->model_version), "%s", rep->model_version);
}

/* A usable reply: keep it as a partial (map step) or finish. */
static void accept_result(gw_run_t *run, json_t *result)
{
    run->attempt = 0;
    run->reasked = false;
    if (run->nchunks > 1 && run->chunk < run->nchunks) {
        run->partials[run->chunk++] = result;
        call_gemini(run); /* next chunk, or the merge when chunk == nchunks */
        return;
    }
    gw_run_complete(run, result);
}

static void handle_reply(gw_run_t *run, const char *body, size_t len)
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
        gw_run_fail(run, "bad_model_output", "The model's answer could not be used; we will try again", true, 0);
        return;
    }
    gw_gemini_reply_free(&rep);
    if (o == GW_GEMINI_MAX_TOKENS && !run->big_budget) {
        run->big_budget = true;
        retry_call(run, 0, "answer truncated (MAX_TOKENS), asking with a bigger budget");
    } else if (o == GW_GEMINI_MAX_TOKENS) {
        gw_run_fail(run, "output_truncated", "The analysis was too long for the model's output limit", false, 0);
    } else if (gw_gemini_outcome_permanent(o)) {
        gw_run_fail(run, gw_gemini_outcome_error_code(o), "The model declined to analyse this video's content", false, 0);
    } else if (!run->reasked) {
        run->reasked = true;
        retry_call(run, 0, "empty or malformed answer, asking once more");
    } else {
        gw_run_fail(run, gw_gemini_outcome_error_code(o), "The model returned no usable answer; we will try again", true, 0);
    }
}

/* The media part was refused: a YouTube URL the API will not fetch (upload instead), or an uploaded file that expired
 * or vanished (upload once more; refused again: a transient file_unavailable). Returns true when handled. */
static bool media_refused(gw_run_t *run, long status)
{
    if (status != 400 && status != 403 && status != 404)
        return false;
    if (run->youtube_source && run->bot_fallback) { /* nothing to upload: yt-dlp was refused too */
        gw_job_log(GW_LOG_WARN, run->job->id, "gemini refused the YouTube URL (HTTP %ld) after YouTube's bot check", status);
        gw_run_fail(run, "bot_check", "YouTube refused the worker and the video could not be analysed from its link", true, 0);
        return true;
    }
    if (run->youtube_source) {
        gw_job_log(GW_LOG_WARN, run->job->id, "gemini refused the YouTube URL (HTTP %ld); uploading the video instead", status);
        run->youtube_source = false;
        gw_metrics_count("youtube_url_refused");
        json_object_set_new(run->timings, "youtube_url_refused", json_true());
        gw_source_await_media(run);
        return true;
    }
    if (run->file_uri != NULL && run->reuploaded && status != 400) {
        /* refused again after a fresh upload with the same key: the file, not the key (not gemini_auth) */
        gw_run_fail(run, "file_unavailable", "The uploaded video disappeared from the analysis service", true, 0);
        return true;
    }
    if (run->file_uri != NULL && status != 400) {
        gw_job_log(GW_LOG_WARN, run->job->id, "gemini cannot read the uploaded file (HTTP %ld); uploading again", status);
        run->reuploaded = true;
        gw_metrics_count("file_reupload");
        gw_run_forget_remote(run); /* gone remotely */
        free(run->file_name);
        free(run->file_uri);
        run->file_name = run->file_uri = NULL;
        gw_analyze_start_upload(run);
        return true;
    }
    return false;
}

/* Gemini refused the worker's key (401/403): the operator's trouble, and every job would fail the same way. The job
 * goes back to PENDING (attempt not counted; error code gemini_auth stays for the log), claiming is held at once and the
 * model check asked again: its verdict (FAILED: a refused key) pauses claiming until the key works, as at start. One
 * ERROR line (one Sentry event) per hold, not per job. */
static void gemini_auth_refused(gw_run_t *run, long status)
{
    gw_queue_t *q = run->job->queue;
    if (!gw_queue_claims_held(q))
        gw_job_log(GW_LOG_ERROR, run->job->id, "gemini refused the API key (HTTP %ld): jobs go back to the queue, claiming paused",
                   status);
    gw_metrics_count("gemini_auth_deferred");
    gw_queue_hold_claims(q, GEMINI_AUTH_HOLD_MS);
    gw_modelcheck_recheck(run->app->modelcheck);
    gw_run_defer(run, "gemini_auth", "The analysis service refused the worker's API key; the job waits for the operator's fix.",
                 GEMINI_AUTH_DEFER_MS);
}

static void on_gemini(gw_fetch_t *req, void *data)
{
    gw_run_t *run = data;
    size_t len;
    const char *body = gw_fetch_data(req, &len);
    long status = gw_fetch_status(req);
    gw_gemini_error_t e;
    run->req = NULL;
    gw_metrics_gemini_call(status);
    gw_gemini_classify_http(status, body, gw_fetch_curlcode(req), &e);
    if (!e.ok) /* GOVERNOR HOOK: no usage to count; a 429 with retryDelay pauses the model for every worker */
        gw_governor_settle(run->app->governor, model_for(run), run->gov_est, NULL);
    if (status == 429 && e.transient && e.retry_after_ms > 0)
        gw_governor_pause(run->app->governor, model_for(run), e.retry_after_ms);
    if (e.ok) {
        handle_reply(run, body, len);
    } else if (media_refused(run, status)) {
        /* handled: falls back to (re-)uploading */
    } else if (strcmp(e.error_code, "gemini_auth") == 0) {
        gemini_auth_refused(run, status);
    } else if (e.transient && run->attempt < (unsigned)run->app->cfg->gemini_max_retries) {
        retry_call(run, gw_backoff_ms(run->attempt + 1, 1000, 60000, e.retry_after_ms), e.error_code);
    } else {
        gw_run_fail(run, e.error_code, e.message, e.transient, (int64_t)e.retry_after_ms);
    }
    gw_fetch_free(req);
}

/* GOVERNOR HOOK: the call's turn came (handlers/governor.c): send the body call_gemini() prepared. */
static void send_gemini(void *data)
{
    gw_run_t *run = data;
    gw_settings_t *cfg = run->app->cfg;
    char *text = run->gov_body;
    char *url = gw_gemini_generate_url(cfg->gemini_base_url, model_for(run));
    run->gov = NULL;
    run->gov_body = NULL;
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
        gw_governor_settle(run->app->governor, model_for(run), run->gov_est, NULL); /* GOVERNOR HOOK: nothing was spent */
        gw_run_fail(run, "gemini_unavailable", "Could not reach the analysis service", true, 0);
    }
}

/* Tokens the next call is expected to use (gw_gov_estimate_tokens): the body, the media part, the output budget. */
static int64_t estimate_tokens(gw_run_t *run, size_t body_len)
{
    gw_gemini_opts_t o;
    gw_gemini_opts_init(&o, run->job->deep);
    gw_gov_media_t media = GW_GOV_MEDIA_NONE;
    bool has_media = run->chunk < run->nchunks && (run->youtube_source || run->file_uri != NULL); /* not the merge */
    const char *res = run->job->deep ? media_resolution(run->app->cfg) : NULL;
    if (has_media && run->file_mime != NULL && strncmp(run->file_mime, "audio/", 6) == 0 && !run->youtube_source)
        media = GW_GOV_MEDIA_AUDIO;
    else if (has_media)
        media = res != NULL && strcmp(res, "MEDIA_RESOLUTION_LOW") == 0 ? GW_GOV_MEDIA_VIDEO_LOW : GW_GOV_MEDIA_VIDEO;
    double seconds = run->clip_len > 0 ? run->clip_len : run->meta.duration;
    return gw_gov_estimate_tokens(body_len, media, seconds, run->big_budget ? BIG_OUTPUT_TOKENS : o.max_output_tokens);
}

/* GOVERNOR HOOK: builds the request now and queues it for its turn under GEMINI_RPM/GEMINI_TPM; send_gemini() sends it
 * (at once without a governor: the test binary). */
static void call_gemini(gw_run_t *run)
{
    json_t *body = build_body(run);
    free(run->gov_body);
    run->gov_body = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    if (run->gov_body == NULL)
        abort();
    run->gov_est = estimate_tokens(run, strlen(run->gov_body));
    if (run->app->governor == NULL)
        send_gemini(run);
    else
        run->gov = gw_governor_acquire(run->app->governor, model_for(run), run->gov_est, send_gemini, run);
}
