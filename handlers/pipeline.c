/* The per-job state machine for the real pipeline: URL intake -> yt-dlp (metadata + subtitles in one run) ->
 * Gemini (one request, or map over transcript chunks then reduce) -> validate -> store. Every wait is a callback on
 * the loop: a subprocess (reactor/proc), a transfer (reactor/fetch) or a backoff timer. */
#define _GNU_SOURCE /* nftw */
#include "handlers/app.h"
#include "handlers/gemini.h"
#include "handlers/metrics.h"
#include "handlers/local_analyzer.h"
#include "handlers/pipeline_local.h"
#include "handlers/ytdlp.h"
#include "reactor/log.h"
#include "reactor/proc.h"
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_CHUNKS 32
#define YTDLP_OUT_CAP (32u << 20)
#define GEMINI_RESPONSE_CAP (8u << 20)
#define BIG_OUTPUT_TOKENS 65536

typedef enum en_run_state_t {
    RUN_FETCH,   /* yt-dlp is running */
    RUN_ANALYZE, /* a Gemini call (or its backoff) for chunk `chunk` (chunk == nchunks: the merge) */
    RUN_DONE,    /* outcome reported or aborted; waiting for the timer to close */
} run_state_t;

typedef struct st_run_t {
    uv_timer_t timer; /* first: backoff between Gemini attempts; its close callback frees the run */
    gw_job_t *job;
    gw_app_t *app;
    run_state_t state;
    bool aborting;
    char scratch[PATH_MAX];
    char video_id[16];
    char *url;
    gw_proc_t *proc;
    gw_fetch_t *req;
    char *meta_json;
    gw_video_meta_t meta;
    gw_transcript_t tr;
    size_t bounds[MAX_CHUNKS + 1], nchunks, chunk;
    json_t *partials[MAX_CHUNKS];
    unsigned attempt; /* Gemini attempts for the current call */
    bool reasked;     /* the model's JSON was unusable once already */
    bool big_budget;  /* MAX_TOKENS seen: asking with a bigger output budget */
    gw_usage_t usage;
    char model_version[96];
    json_t *timings;
    uint64_t stage_started, run_started;
} run_t;

static void call_gemini(run_t *run);
static void begin_analyze(run_t *run);

/* ---- bookkeeping ---- */

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    remove(path); /* best effort: keep removing the rest */
    return 0;
}

static void remove_scratch(run_t *run)
{
    if (run->scratch[0] != '\0') {
        nftw(run->scratch, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
        run->scratch[0] = '\0';
    }
}

static void run_closed(uv_handle_t *h)
{
    run_t *run = (run_t *)h;
    for (size_t i = 0; i < MAX_CHUNKS; i++)
        json_decref(run->partials[i]);
    json_decref(run->timings);
    gw_video_meta_free(&run->meta);
    gw_transcript_free(&run->tr);
    free(run->meta_json);
    free(run->url);
    free(run);
}

/* Ends the run's own life: scratch removed, handles closed. The job outcome was reported before. */
static void run_end(run_t *run)
{
    run->state = RUN_DONE;
    run->job->pipeline_data = NULL;
    remove_scratch(run);
    uv_timer_stop(&run->timer);
    uv_close((uv_handle_t *)&run->timer, run_closed);
}

static void stage_begin(run_t *run, const char *stage)
{
    run->stage_started = uv_now(run->app->loop);
    gw_job_set_stage(run->job, stage);
}

static void stage_end(run_t *run, const char *stage)
{
    double s = (double)(uv_now(run->app->loop) - run->stage_started) / 1000.0;
    gw_metrics_stage(stage, s);
    json_object_set_new(run->timings, stage, json_real(s));
    gw_log_event(GW_LOG_INFO, run->job->id, stage, s * 1000.0, "%s done", stage);
}

static void fail(run_t *run, const char *code, const char *message, bool transient, int64_t floor_ms)
{
    int64_t retry = transient ? gw_job_retry_delay_ms(run->job, floor_ms) : -1;
    gw_job_fail(run->job, code, message, retry);
    run_end(run);
}

/* ---- stage 1: yt-dlp (metadata + subtitles, one run: one request burst to YouTube) ---- */

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

static void after_fetch(run_t *run)
{
    const char *code = NULL, *msg = NULL;
    if (gw_ytdlp_parse_meta(run->meta_json, strlen(run->meta_json), &run->meta, &code) != 0) {
        fail(run, code ? code : "bad_metadata", "yt-dlp returned metadata we could not read", true, 0);
        return;
    }
    if (gw_ytdlp_check_meta(&run->meta, &code, &msg) != 0) {
        fail(run, code, msg, false, 0);
        return;
    }
    char **langs = split_langs(run->app->cfg->transcript_langs);
    int rc = gw_ytdlp_load_transcript(run->scratch, &run->meta, (const char *const *)langs, run->meta_json, &run->tr, &code);
    for (char **p = langs; *p != NULL; p++)
        free(*p);
    free(langs);
    if (rc != 0 || run->tr.nsegments == 0) {
        fail(run, code ? code : "no_transcript", "This video has no captions to analyse", false, 0);
        return;
    }
    stage_end(run, "metadata");
    begin_analyze(run);
}

static void on_ytdlp(gw_proc_t *p, const gw_proc_result_t *r, void *data)
{
    run_t *run = data;
    run->proc = NULL;
    if (run->aborting) {
        run_end(run);
        gw_job_aborted(run->job);
        return;
    }
    if (r->spawn_error != 0) {
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
        run->meta_json = strdup(r->out ? r->out : "");
        after_fetch(run);
    }
}

static void start_fetch(run_t *run)
{
    gw_config_t *cfg = run->app->cfg;
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
    gw_proc_opts_t o = {(const char *const *)argv, run->scratch, NULL, (uint64_t)cfg->ytdlp_timeout_ms, 0, YTDLP_OUT_CAP, 0};
    run->state = RUN_FETCH;
    stage_begin(run, "metadata");
    run->proc = gw_proc_spawn(run->app->loop, &o, on_ytdlp, run);
    gw_argv_free(argv);
}

/* ---- stage 2: Gemini ---- */

static const char *model_for(const run_t *run)
{
    return run->job->deep ? run->app->cfg->gemini_pro_model : run->app->cfg->gemini_flash_model;
}

static json_t *build_body(run_t *run)
{
    gw_gemini_opts_t o;
    gw_gemini_opts_init(&o, run->job->deep);
    o.thinking_level = run->app->cfg->thinking_level;
    if (run->big_budget)
        o.max_output_tokens = BIG_OUTPUT_TOKENS;
    if (run->chunk == run->nchunks) /* reduce */
        return gw_gemini_build_merge_request(&run->meta, run->partials, run->nchunks, &o);
    if (run->nchunks > 1) {
        o.part_index = run->chunk + 1;
        o.part_count = run->nchunks;
    }
    return gw_gemini_build_request(&run->meta, &run->tr, run->bounds[run->chunk], run->bounds[run->chunk + 1], &o);
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
    json_t *timings = run->timings;
    run->timings = NULL;
    gw_job_complete(run->job, result, run->model_version[0] ? run->model_version : model_for(run), &run->usage, timings);
    run_end(run);
}

/* The local analyzer in place of Gemini (ANALYZER=local, or auto without a key). */
static void analyze_locally(run_t *run)
{
    const char *code, *msg;
    json_t *r = gw_pipeline_local_analyze(&run->meta, &run->tr, run->job->deep, NULL, 0, &code, &msg);
    if (r == NULL) {
        fail(run, code, msg, false, 0);
        return;
    }
    snprintf(run->model_version, sizeof(run->model_version), "%s", GW_LOCAL_MODEL);
    finish(run, r);
}

static void begin_analyze(run_t *run)
{
    json_object_set_new(run->timings, "transcript_source", json_string(run->tr.source ? run->tr.source : "captions"));
    run->nchunks = gw_gemini_plan_chunks(&run->tr, (size_t)run->app->cfg->gemini_chunk_chars, run->bounds, MAX_CHUNKS);
    run->chunk = 0;
    run->state = RUN_ANALYZE;
    stage_begin(run, "analyze");
    if (gw_pipeline_local_selected(run->app->cfg)) {
        analyze_locally(run);
        return;
    }
    call_gemini(run);
}

/* A usable reply: keep it as a partial (map step) or finish. */
static void accept_result(run_t *run, json_t *result)
{
    run->attempt = 0;
    run->reasked = false;
    if (run->nchunks <= 1) {
        finish(run, result);
        return;
    }
    if (run->chunk < run->nchunks) {
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
        bool partial = run->nchunks > 1 && run->chunk < run->nchunks;
        /* partials are validated loosely (duration applies); the merged result fully */
        if (gw_result_validate(result, run->meta.duration, run->job->deep, err, sizeof(err)) == 0) {
            accept_result(run, result);
            return;
        }
        json_decref(result);
        (void)partial;
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
    } else if (e.transient && run->attempt < (unsigned)run->app->cfg->gemini_max_retries) {
        retry_call(run, gw_backoff_ms(run->attempt + 1, 1000, 60000, e.retry_after_ms), e.error_code);
    } else {
        fail(run, e.error_code, e.message, e.transient, (int64_t)e.retry_after_ms);
    }
    gw_fetch_free(req);
}

static void call_gemini(run_t *run)
{
    gw_config_t *cfg = run->app->cfg;
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
    job->pipeline_data = run;
    if (uv_timer_init(app->loop, &run->timer) != 0)
        abort();
    return run;
}

/* A local file prepared by handlers/pipeline_local.c (ffprobe + subtitles) continues here with Gemini. media_path is
 * the file deep mode would upload; this pipeline sends the transcript only. */
static void start_prepared(gw_job_t *job, gw_video_meta_t *meta, gw_transcript_t *tr, json_t *timings, const char *media_path,
                           void *ctx)
{
    run_t *run = new_run(job, ctx);
    json_decref(run->timings);
    run->timings = timings;
    run->meta = *meta;
    run->tr = *tr;
    memset(meta, 0, sizeof(*meta));
    memset(tr, 0, sizeof(*tr));
    if (run->tr.nsegments == 0) {
        fail(run, "no_transcript", "This file has no subtitles: put a .vtt or .srt with the same name next to it", false, 0);
        return;
    }
    begin_analyze(run);
}

static void start(gw_job_t *job, void *ctx)
{
    gw_app_t *app = ctx;
    if (gw_pipeline_local_start(app, job, start_prepared, app))
        return; /* a local file: handlers/pipeline_local.c */
    run_t *run = new_run(job, app);
    const char *code = NULL, *msg = NULL;
    if (gw_ytdlp_normalize_url(job->video_url, app->cfg->allowed_video_hosts, run->video_id, &run->url, &code, &msg) != 0) {
        fail(run, code ? code : "invalid_url", msg ? msg : "This is not a video URL we can analyse", false, 0);
        return;
    }
    if (!gw_pipeline_local_selected(app->cfg) && (app->cfg->gemini_api_key == NULL || *app->cfg->gemini_api_key == '\0')) {
        fail(run, "gemini_not_configured", "The analysis service is not configured on this worker", true, 0);
        return;
    }
    snprintf(run->scratch, sizeof(run->scratch), "%s/glint-%s-XXXXXX", app->cfg->work_dir, job->id);
    if (mkdtemp(run->scratch) == NULL) {
        run->scratch[0] = '\0';
        fail(run, "scratch_unavailable", "The worker has no scratch space right now", true, 0);
        return;
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
    run->aborting = true;
    if (run->proc != NULL) {
        gw_proc_kill(run->proc); /* on_ytdlp finishes the abort */
        return;
    }
    if (run->req != NULL) {
        gw_fetch_cancel(run->req);
        run->req = NULL;
    }
    run_end(run);
    gw_job_aborted(job);
}

static void on_model_checked(gw_fetch_t *req, void *data)
{
    long st = gw_fetch_status(req);
    if (st != 200)
        gw_warn("gemini: model check for %s answered %ld: jobs may fail (check GEMINI_*_MODEL and the key)", (char *)data, st);
    free(data);
    gw_fetch_free(req);
}

/* Warns at start when a configured model does not exist; never blocks or crashes. */
static void check_model(gw_app_t *app, const char *model)
{
    char *url = gw_gemini_model_url(app->cfg->gemini_base_url, model);
    gw_fetch_t *req = gw_fetch_new(app->fetcher, "GET", url);
    gw_fetch_header(req, "x-goog-api-key", app->cfg->gemini_api_key);
    gw_fetch_timeout(req, 10000, 5000);
    char *name = strdup(model);
    if (gw_fetch_start(req, on_model_checked, name) != 0) {
        gw_fetch_cancel(req);
        free(name);
    }
    free(url);
}

int gw_pipeline_init(gw_app_t *app, gw_pipeline_t *out)
{
    out->start = start;
    out->abort = abort_job;
    out->ctx = app;
    if (gw_pipeline_local_selected(app->cfg)) {
        gw_info("analyzer: local (local-extractive, no network)%s",
                app->cfg->gemini_api_key && *app->cfg->gemini_api_key ? "" : ": GEMINI_API_KEY is not set");
    } else if (app->cfg->gemini_api_key != NULL && *app->cfg->gemini_api_key != '\0') {
        check_model(app, app->cfg->gemini_flash_model);
        check_model(app, app->cfg->gemini_pro_model);
    } else {
        gw_warn("GEMINI_API_KEY is not set: jobs will wait (retry) until it is");
    }
    return 0;
}

void gw_pipeline_dispose(gw_app_t *app)
{
    gw_metrics_reset();
}
