/* The remote source: one yt-dlp run for metadata and subtitles (one request burst to YouTube), and the media download
 * (deep mode: side by side with it; standard without captions: the audio source). */
#include "handlers/breaker.h"
#include "handlers/job.h"
#include "handlers/media.h"
#include "handlers/metrics.h"
#include "handlers/ytdlp.h"
#include "reactor/log.h"
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define YTDLP_OUT_CAP (8u << 20)      /* a bigger -J answer is refused */
#define COOKIES_MAX_BYTES (16u << 20) /* a cookie jar is kilobytes; more is not a cookie file */

/* ---- YouTube from a datacenter: cookies, proxies, the bot-check breaker (docs/youtube-datacenter.md) ---- */

static bool is_youtube(const gw_run_t *run)
{
    return run->video_id[0] != '\0';
}

/* Once per process: the breaker's settings, and each proxy URL of the list and its password registered as secrets
 * (the engine registers the whole value and only the last URL's password). */
static void net_init(const gw_settings_t *cfg)
{
    static bool done;
    if (done)
        return;
    done = true;
    gw_breaker_opts_t o = {(unsigned)cfg->bot_check_threshold, (uint64_t)cfg->bot_check_window_ms,
                           (uint64_t)cfg->bot_check_cooldown_ms, (uint64_t)cfg->bot_check_cooldown_max_ms};
    gw_breaker_configure(&o);
    char url[2048];
    for (uint64_t i = 0; gw_ytdlp_proxy_pick(cfg->ytdlp_proxy, i, url, sizeof(url)); i++) {
        const char *at = strrchr(url, '@'), *scheme = strstr(url, "://");
        gw_log_secret(url);
        if (at != NULL && scheme != NULL && scheme < at) {
            const char *user = scheme + 3, *colon = memchr(user, ':', (size_t)(at - user));
            char *pw = strndup(colon != NULL ? colon + 1 : user, (size_t)(at - (colon != NULL ? colon + 1 : user)));
            if (pw == NULL)
                abort();
            if (*pw != '\0')
                gw_log_secret(pw); /* a URL printed without its password still shows it, e.g. in yt-dlp's errors */
            free(pw);
        }
        if (i >= 1000)
            break;
    }
}

/* A private copy of YTDLP_COOKIES_FILE for one run, SCRATCH/<name> with mode 0600: yt-dlp rewrites its jar on exit,
 * and the configured file (typically a read-only mounted secret) is never written. The scratch directory, and the copy
 * with it, is removed when the job ends. Returns false (logged; the run goes without cookies) when it cannot. */
static bool cookies_copy(gw_run_t *run, const char *name, char *out, size_t outlen)
{
    const char *src = run->app->cfg->ytdlp_cookies_file;
    char buf[16384];
    uint64_t total = 0;
    bool ok = false;
    int in = -1, fd = -1;
    if ((size_t)snprintf(out, outlen, "%s/%s", run->scratch, name) >= outlen)
        return false;
    if ((in = open(src, O_RDONLY | O_CLOEXEC)) < 0) /* not O_NOFOLLOW: mounted secrets are symlinks */
        goto Exit;
    if ((fd = open(out, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600)) < 0 || fchmod(fd, 0600) != 0)
        goto Exit;
    for (;;) {
        ssize_t r = read(in, buf, sizeof(buf));
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 || (total += (uint64_t)r) > COOKIES_MAX_BYTES) {
            if (r >= 0)
                errno = EFBIG;
            goto Exit;
        }
        if (r == 0)
            break;
        for (ssize_t w = 0, k; w < r; w += k)
            if ((k = write(fd, buf + w, (size_t)(r - w))) < 0 && errno != EINTR)
                goto Exit;
            else if (k < 0)
                k = 0;
    }
    ok = true;
Exit:;
    int saved = errno;
    if (in >= 0)
        close(in);
    if (fd >= 0 && close(fd) != 0)
        ok = false;
    if (!ok) {
        if (fd >= 0)
            unlink(out);
        gw_job_log(GW_LOG_ERROR, run->job->id, "YTDLP_COOKIES_FILE %s could not be copied for yt-dlp (%s); running without cookies",
                   src, strerror(saved));
    }
    return ok;
}

/* A YouTube run's --cookies (a private copy named `copy`) and --proxy (the next of the list). */
static char **net_argv(gw_run_t *run, char **argv, const char *copy)
{
    static uint64_t turn; /* proxies are used in turn, per run, across jobs */
    const gw_settings_t *cfg = run->app->cfg;
    char cookies[PATH_MAX], proxy[2048];
    bool with_cookies =
        cfg->ytdlp_cookies_file != NULL && *cfg->ytdlp_cookies_file != '\0' && cookies_copy(run, copy, cookies, sizeof(cookies));
    bool with_proxy = gw_ytdlp_proxy_pick(cfg->ytdlp_proxy, turn, proxy, sizeof(proxy));
    if (with_proxy)
        turn++;
    return gw_ytdlp_argv_net(argv, with_cookies ? cookies : NULL, with_proxy ? proxy : NULL);
}

/* One Sentry event per opening (an ERROR line); reopenings after a failed probe and the closing are logged. */
static void breaker_report(gw_run_t *run, bool bot_check, bool probe)
{
    uint64_t now = uv_now(run->app->loop);
    gw_breaker_state_t before = gw_breaker_state(now);
    if (gw_breaker_report(now, bot_check, probe)) {
        gw_job_log(GW_LOG_ERROR, run->job->id,
                   "yt-dlp bot-check breaker open: %ld bot checks within %ld ms; no YouTube runs for %llu ms "
                   "(set YTDLP_COOKIES_FILE / YTDLP_PROXY, docs/youtube-datacenter.md)",
                   run->app->cfg->bot_check_threshold, run->app->cfg->bot_check_window_ms,
                   (unsigned long long)gw_breaker_cooldown_ms());
    } else if (probe && bot_check) {
        gw_job_log(GW_LOG_WARN, run->job->id, "yt-dlp bot-check breaker: the probe was bot-checked; open for %llu ms more",
                   (unsigned long long)gw_breaker_cooldown_ms());
    } else if (probe && before != GW_BREAKER_CLOSED && gw_breaker_state(now) == GW_BREAKER_CLOSED) {
        gw_job_log(GW_LOG_INFO, run->job->id, "yt-dlp bot-check breaker closed: YouTube answers again");
    }
}

static bool fallback_allowed(const gw_run_t *run)
{
    return strcmp(run->app->cfg->bot_check_fallback, "gemini_url") == 0 && !run->job->deep && !run->local_analyzer &&
           is_youtube(run) && run->url != NULL;
}

/* BOT_CHECK_FALLBACK=gemini_url: Gemini watches the public YouTube URL itself (fileData, low media resolution); no
 * metadata, no captions. Credits as charged at enqueue for standard mode. */
static void url_fallback(gw_run_t *run)
{
    if (run->state == GW_RUN_INTAKE && !gw_run_set_state(run, GW_RUN_FETCH))
        return;
    gw_job_log(GW_LOG_INFO, run->job->id, "YouTube bot check: analysing from the YouTube URL (BOT_CHECK_FALLBACK=gemini_url)");
    gw_metrics_count("bot_check_fallback");
    run->bot_fallback = true;
    run->youtube_source = true;
    run->media = GW_MEDIA_NONE;
    gw_video_meta_free(&run->meta);
    gw_transcript_free(&run->tr);
    run->meta.duration = -1;
    run->meta.id = strdup(run->video_id);
    if (run->meta.id == NULL)
        abort();
    json_object_set_new(run->timings, "transcript_source", json_string("video"));
    json_object_set_new(run->timings, "bot_check_fallback", json_string("gemini_url"));
    gw_analyze_begin(run);
}

/* The breaker is open: the job waits PENDING until it may run again, attempt not counted (or takes the fallback). */
static void breaker_wait(gw_run_t *run, uint64_t retry_at)
{
    uint64_t now = uv_now(run->app->loop);
    if (fallback_allowed(run)) {
        url_fallback(run);
        return;
    }
    gw_metrics_count("ytdlp_breaker_deferred");
    gw_run_defer(run, "bot_check",
                 "YouTube is asking this worker to prove it is not a bot; the job waits until YouTube lets it through again.",
                 (int64_t)(retry_at > now ? retry_at - now : 0) + 250 /* after the reopening, not just before */);
}

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
        if (is_youtube(run) && strcmp(code, "bot_check") == 0)
            breaker_report(run, true, false);
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
    if (is_youtube(run))
        argv = net_argv(run, argv, "cookies-download.txt");
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
    bool probe = run->breaker_probe;
    run->breaker_probe = false;
    if (is_youtube(run) && r->spawn_error == 0 && !r->timed_out && r->term_signal == 0) {
        const char *code = NULL;
        if (r->exit_status != 0)
            gw_ytdlp_classify_failure(r->err ? r->err : "", (int)r->exit_status, &code, NULL, NULL);
        bool bot = code != NULL && strcmp(code, "bot_check") == 0;
        breaker_report(run, bot, probe);
        if (bot && fallback_allowed(run)) {
            url_fallback(run);
            return;
        }
        if (bot && gw_breaker_state(uv_now(run->app->loop)) != GW_BREAKER_CLOSED) {
            breaker_wait(run, gw_breaker_reopen_at()); /* YouTube refuses this worker: wait, do not burn the attempt */
            return;
        }
    } else if (probe) {
        gw_breaker_probe_abandoned(); /* killed or timed out: YouTube's answer is unknown */
    }
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
    net_init(cfg);
    if (is_youtube(run)) {
        uint64_t retry_at;
        bool probe;
        if (!gw_breaker_admit(uv_now(run->app->loop), &retry_at, &probe)) {
            free(sub_langs);
            breaker_wait(run, retry_at);
            return;
        }
        run->breaker_probe = probe;
        if (probe)
            gw_job_log(GW_LOG_INFO, run->job->id, "yt-dlp bot-check breaker half-open: this run is the probe");
    }
    char **argv = gw_ytdlp_argv_fetch(cfg->ytdlp_path, run->url, run->scratch, sub_langs);
    free(sub_langs);
    if (is_youtube(run))
        argv = net_argv(run, argv, "cookies-fetch.txt");
    if (!gw_run_set_state(run, GW_RUN_FETCH)) {
        if (run->breaker_probe)
            gw_breaker_probe_abandoned();
        gw_argv_free(argv);
        return;
    }
    gw_run_stage_begin(run, "metadata");
    gw_run_spawn(run, GW_PROC_MAIN, argv, (uint64_t)cfg->ytdlp_timeout_ms, YTDLP_OUT_CAP, 0, on_ytdlp);
    if (run->media == GW_MEDIA_VIDEO && !run->youtube_source)
        gw_source_remote_download(run); /* side by side with the metadata run */
}
