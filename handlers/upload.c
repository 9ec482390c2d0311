/* Files API upload state machine: one request in flight at a time, a timer for backoff and poll waits. */
#include "handlers/upload.h"
#include "reactor/backoff.h"
#include "reactor/log.h"
#include "reactor/text.h"
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#define STATUS_RESPONSE_CAP (1u << 20)

typedef enum en_up_state_t {
    UP_START,  /* POST upload/v1beta/files with the start command: waiting for x-goog-upload-url */
    UP_SEND,   /* one `upload` (or `upload, finalize`) request streaming [offset, offset+len) from disk */
    UP_QUERY,  /* after a failed chunk: asking how many bytes the server committed, to resume there */
    UP_POLL,   /* GET files/{name}: waiting for ACTIVE */
    UP_WAIT,   /* timer: backoff before retrying `next`, or the pause between polls */
    UP_CLOSED, /* reported or cancelled; the timer's close callback frees the object */
} up_state_t;

struct st_gw_upload_t {
    uv_timer_t timer; /* first: its close callback frees the object */
    gw_fetcher_t *fetcher;
    gw_upload_events_t ev;
    char *base, *key, *path, *mime, *display, *job_id;
    char *upload_url; /* credentials inside: never logged */
    uint64_t chunk, size, offset, sent_len;
    unsigned max_retries, failures, polls;
    long request_timeout_ms;
    uint64_t active_timeout_ms, started_at, finalized_at, poll_deadline;
    up_state_t state, next;
    gw_fetch_t *req;
    gw_gemini_file_t file;
};

static void step(gw_upload_t *u);

/* ---- pure helpers ---- */

void gw_upload_plan(uint64_t size, uint64_t offset, uint64_t chunk_bytes, uint64_t *len, bool *final)
{
    uint64_t g = GW_GEMINI_UPLOAD_GRANULARITY, c = chunk_bytes / g * g, left = offset < size ? size - offset : 0;
    if (c == 0 || left <= c) {
        *len = left;
        *final = true;
    } else {
        *len = c;
        *final = false;
    }
}

const char *gw_upload_mime_for_path(const char *path)
{
    static const char *const map[][2] = {{".mp4", "video/mp4"}, {".m4v", "video/mp4"},        {".webm", "video/webm"},
                                         {".mov", "video/mov"}, {".mkv", "video/x-matroska"}, {".3gp", "video/3gpp"},
                                         {".ogg", "audio/ogg"}, {".opus", "audio/ogg"},       {".m4a", "audio/mp4"},
                                         {".mp3", "audio/mp3"}, {".wav", "audio/wav"},        {".flac", "audio/flac"}};
    const char *dot = path != NULL ? strrchr(path, '.') : NULL;
    for (size_t i = 0; dot != NULL && i < sizeof(map) / sizeof(map[0]); i++)
        if (strcasecmp(dot, map[i][0]) == 0)
            return map[i][1];
    return "application/octet-stream";
}

uint64_t gw_upload_poll_delay_ms(unsigned n)
{
    uint64_t d = 500ull << (n < 4 ? n : 4);
    return d < 5000 ? d : 5000;
}

/* ---- lifecycle ---- */

static void on_closed(uv_handle_t *h)
{
    gw_upload_t *u = (gw_upload_t *)h;
    gw_gemini_file_free(&u->file);
    free(u->base);
    free(u->key);
    free(u->path);
    free(u->mime);
    free(u->display);
    free(u->job_id);
    if (u->upload_url != NULL)
        memset(u->upload_url, 0, strlen(u->upload_url));
    free(u->upload_url);
    free(u);
}

static void close_upload(gw_upload_t *u)
{
    u->state = UP_CLOSED;
    uv_timer_stop(&u->timer);
    uv_close((uv_handle_t *)&u->timer, on_closed);
}

static void report(gw_upload_t *u, const char *code, const char *message, bool transient)
{
    uint64_t now = uv_now(u->timer.loop);
    gw_upload_result_t r = {code == NULL, code, message, transient, &u->file, 0, 0, u->size};
    r.upload_ms = (double)((u->finalized_at ? u->finalized_at : now) - u->started_at);
    r.processing_ms = u->finalized_at ? (double)(now - u->finalized_at) : 0;
    close_upload(u);
    u->ev.on_done(&r, u->ev.data);
}

void gw_upload_cancel(gw_upload_t *u)
{
    if (u == NULL || u->state == UP_CLOSED)
        return;
    if (u->req != NULL)
        gw_fetch_cancel(u->req);
    u->req = NULL;
    close_upload(u);
}

/* ---- requests ---- */

static gw_fetch_t *new_request(gw_upload_t *u, const char *method, const char *url)
{
    gw_fetch_t *req = gw_fetch_new(u->fetcher, method, url);
    gw_fetch_header(req, "x-goog-api-key", u->key);
    gw_fetch_timeout(req, u->request_timeout_ms, 10000);
    gw_fetch_max_response(req, STATUS_RESPONSE_CAP);
    return req;
}

static void add_lines(gw_fetch_t *req, char lines[][GW_GEMINI_HEADER_MAX], size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char *colon = strchr(lines[i], ':');
        if (colon == NULL)
            continue;
        *colon = '\0';
        gw_fetch_header(req, lines[i], colon + 1 + (colon[1] == ' '));
    }
}

static void on_response(gw_fetch_t *req, void *data);

static void launch(gw_upload_t *u, gw_fetch_t *req)
{
    u->req = req;
    if (gw_fetch_start(req, on_response, u) != 0) {
        gw_fetch_cancel(req);
        u->req = NULL;
        report(u, "upload_failed", "The video could not be sent to the analysis service", true);
    }
}

static void send_start(gw_upload_t *u)
{
    char lines[5][GW_GEMINI_HEADER_MAX], *url = gw_gemini_upload_url(u->base), *body = gw_gemini_upload_start_body(u->display);
    gw_fetch_t *req = new_request(u, "POST", url);
    add_lines(req, lines, gw_gemini_upload_start_headers(u->size, u->mime, lines, 5));
    gw_fetch_body(req, body, strlen(body));
    free(url);
    free(body);
    u->offset = 0;
    launch(u, req);
}

static void send_chunk(gw_upload_t *u)
{
    char lines[2][GW_GEMINI_HEADER_MAX];
    bool final;
    gw_upload_plan(u->size, u->offset, u->chunk, &u->sent_len, &final);
    gw_fetch_t *req = new_request(u, "POST", u->upload_url);
    add_lines(req, lines, gw_gemini_upload_chunk_headers(u->offset, final, lines, 2));
    gw_fetch_header(req, "Content-Type", "");
    if (gw_fetch_body_file(req, u->path, u->offset, u->sent_len) != 0) {
        gw_fetch_cancel(req);
        report(u, "scratch_unavailable", "The downloaded video could not be read", true);
        return;
    }
    launch(u, req);
}

static void send_query(gw_upload_t *u)
{
    gw_fetch_t *req = new_request(u, "POST", u->upload_url);
    gw_fetch_header(req, "X-Goog-Upload-Command", "query");
    gw_fetch_body(req, "", 0);
    launch(u, req);
}

static void send_poll(gw_upload_t *u)
{
    char *url = gw_gemini_file_url(u->base, u->file.name);
    gw_fetch_t *req = new_request(u, "GET", url);
    free(url);
    launch(u, req);
}

static void step(gw_upload_t *u)
{
    switch (u->state) {
    case UP_START:
        send_start(u);
        break;
    case UP_SEND:
        send_chunk(u);
        break;
    case UP_QUERY:
        send_query(u);
        break;
    case UP_POLL:
        send_poll(u);
        break;
    case UP_WAIT:
    case UP_CLOSED:
        break;
    }
}

static void on_timer(uv_timer_t *t)
{
    gw_upload_t *u = (gw_upload_t *)t;
    u->state = u->next;
    step(u);
}

static void wait_then(gw_upload_t *u, up_state_t next, uint64_t ms)
{
    u->state = UP_WAIT;
    u->next = next;
    if (uv_timer_start(&u->timer, on_timer, ms, 0) != 0)
        abort();
}

/* ---- responses ---- */

static bool transient_failure(gw_fetch_t *req)
{
    long st = gw_fetch_status(req);
    return gw_fetch_curlcode(req) != 0 || st == 408 || st == 429 || st >= 500;
}

/* A transient failure of the current step: retry it (a failed chunk first asks the server what it kept). */
static void retry(gw_upload_t *u, up_state_t failed, const char *what)
{
    if (++u->failures > u->max_retries) {
        report(u, "upload_failed", "Sending the video to the analysis service kept failing; we will try again", true);
        return;
    }
    up_state_t next = failed == UP_SEND ? UP_QUERY : failed;
    uint64_t delay = gw_backoff_ms(u->failures - 1, 500, 10000, 0);
    gw_job_log(GW_LOG_WARN, u->job_id, "upload: %s; retrying in %llu ms", what, (unsigned long long)delay);
    wait_then(u, next, delay);
}

static void restart(gw_upload_t *u, const char *why)
{
    gw_job_log(GW_LOG_WARN, u->job_id, "upload: %s; restarting the upload", why);
    free(u->upload_url);
    u->upload_url = NULL;
    if (++u->failures > u->max_retries)
        report(u, "upload_failed", "Sending the video to the analysis service kept failing; we will try again", true);
    else
        wait_then(u, UP_START, gw_backoff_ms(u->failures - 1, 500, 10000, 0));
}

static void begin_poll(gw_upload_t *u)
{
    u->finalized_at = uv_now(u->timer.loop);
    u->poll_deadline = u->finalized_at + u->active_timeout_ms;
    u->failures = 0;
    if (u->ev.on_named != NULL)
        u->ev.on_named(u->file.name, u->ev.data);
    if (u->state == UP_CLOSED) /* cancelled from on_named */
        return;
    if (u->file.state == GW_GEMINI_FILE_ACTIVE)
        report(u, NULL, NULL, false);
    else if (u->file.state == GW_GEMINI_FILE_FAILED)
        report(u, "file_processing_failed", "The analysis service could not process this video", false);
    else
        wait_then(u, UP_POLL, gw_upload_poll_delay_ms(u->polls++));
}

/* A final response carries {"file":{...}}. */
static void on_final(gw_upload_t *u, const char *body, size_t len)
{
    gw_gemini_file_free(&u->file);
    if (gw_gemini_file_parse(body, len, &u->file) != 0 || u->file.uri == NULL) {
        report(u, "upload_failed", "The analysis service gave an unusable answer to the upload", true);
        return;
    }
    begin_poll(u);
}

static void on_start_done(gw_upload_t *u, gw_fetch_t *req)
{
    const char *url = gw_fetch_resp_header(req, "x-goog-upload-url");
    if (gw_fetch_status(req) != 200 || url == NULL) {
        report(u, "upload_rejected", "The analysis service refused the video upload", false);
        return;
    }
    free(u->upload_url);
    u->upload_url = gw_xstrdup(url);
    u->failures = 0;
    u->state = UP_SEND;
    send_chunk(u);
}

static void on_chunk_done(gw_upload_t *u, gw_fetch_t *req, const char *body, size_t len)
{
    const char *status = gw_fetch_resp_header(req, "x-goog-upload-status");
    long st = gw_fetch_status(req);
    if (st == 404 || st == 410 || (status != NULL && strcasecmp(status, "cancelled") == 0)) {
        restart(u, "the upload session is gone");
    } else if (st == 400 && gw_fetch_resp_header(req, "x-goog-upload-size-received") != NULL && ++u->failures <= u->max_retries) {
        u->state = UP_QUERY; /* the server disagrees about the offset: ask it where to go on */
        send_query(u);
    } else if (st != 200) {
        report(u, "upload_rejected", "The analysis service refused the video upload", false);
    } else if (status != NULL && strcasecmp(status, "final") == 0) {
        on_final(u, body, len);
    } else {
        u->offset += u->sent_len;
        u->failures = 0;
        send_chunk(u);
    }
}

static void on_query_done(gw_upload_t *u, gw_fetch_t *req, const char *body, size_t len)
{
    const char *status = gw_fetch_resp_header(req, "x-goog-upload-status");
    const char *got = gw_fetch_resp_header(req, "x-goog-upload-size-received");
    long st = gw_fetch_status(req);
    if (st == 200 && status != NULL && strcasecmp(status, "final") == 0) {
        on_final(u, body, len);
    } else if (st == 200 && status != NULL && strcasecmp(status, "active") == 0 && got != NULL) {
        uint64_t n = strtoull(got, NULL, 10);
        u->offset = n <= u->size ? n : 0;
        gw_job_log(GW_LOG_INFO, u->job_id, "upload: resuming at byte %" PRIu64 " of %" PRIu64, u->offset, u->size);
        u->state = UP_SEND;
        send_chunk(u);
    } else {
        restart(u, "the upload session cannot be resumed");
    }
}

static void on_poll_done(gw_upload_t *u, gw_fetch_t *req, const char *body, size_t len)
{
    gw_gemini_file_t f;
    if (gw_fetch_status(req) != 200 || gw_gemini_file_parse(body, len, &f) != 0) {
        report(u, "file_unavailable", "The uploaded video disappeared from the analysis service", true);
        return;
    }
    gw_gemini_file_state_t s = f.state;
    gw_gemini_file_free(&f);
    u->failures = 0;
    if (s == GW_GEMINI_FILE_ACTIVE) {
        u->file.state = s;
        report(u, NULL, NULL, false);
    } else if (s == GW_GEMINI_FILE_FAILED) {
        report(u, "file_processing_failed", "The analysis service could not process this video", false);
    } else if (uv_now(u->timer.loop) >= u->poll_deadline) {
        report(u, "file_processing_timeout", "The analysis service took too long to prepare the video", true);
    } else {
        uint64_t d = gw_upload_poll_delay_ms(u->polls++), left = u->poll_deadline - uv_now(u->timer.loop);
        wait_then(u, UP_POLL, d < left ? d : left);
    }
}

static void on_response(gw_fetch_t *req, void *data)
{
    gw_upload_t *u = data;
    size_t len;
    const char *body = gw_fetch_data(req, &len);
    up_state_t s = u->state;
    u->req = NULL;
    if (transient_failure(req) && !(s == UP_POLL && gw_fetch_status(req) == 0 && uv_now(u->timer.loop) >= u->poll_deadline))
        retry(u, s, gw_fetch_status(req) ? "the service answered 5xx/429" : "the connection failed");
    else if (s == UP_START)
        on_start_done(u, req);
    else if (s == UP_SEND)
        on_chunk_done(u, req, body, len);
    else if (s == UP_QUERY)
        on_query_done(u, req, body, len);
    else if (s == UP_POLL)
        on_poll_done(u, req, body, len);
    gw_fetch_free(req);
}

gw_upload_t *gw_upload_start(uv_loop_t *loop, gw_fetcher_t *fetcher, const gw_upload_opts_t *o, const gw_upload_events_t *ev)
{
    gw_upload_t *u = calloc(1, sizeof(*u));
    struct stat sb;
    if (u == NULL || uv_timer_init(loop, &u->timer) != 0)
        abort();
    u->fetcher = fetcher;
    u->ev = *ev;
    u->base = gw_xstrdup(o->base_url);
    u->key = gw_xstrdup(o->api_key);
    u->path = gw_xstrdup(o->path);
    u->mime = gw_xstrdup(o->mime_type);
    u->display = gw_xstrdup(o->display_name);
    u->job_id = gw_xstrdup(o->job_id);
    u->chunk = o->chunk_bytes;
    u->max_retries = o->max_retries;
    u->request_timeout_ms = o->request_timeout_ms;
    u->active_timeout_ms = o->active_timeout_ms;
    u->started_at = uv_now(loop);
    u->size = stat(u->path, &sb) == 0 ? (uint64_t)sb.st_size : 0;
    wait_then(u, UP_START, 0); /* never report synchronously */
    return u;
}

/* ---- delete ---- */

gw_fetch_t *gw_files_delete(gw_fetcher_t *fetcher, const char *base_url, const char *api_key, const char *name, gw_fetch_cb cb,
                            void *data)
{
    char *url = gw_gemini_file_url(base_url, name);
    gw_fetch_t *req = gw_fetch_new(fetcher, "DELETE", url);
    free(url);
    gw_fetch_header(req, "x-goog-api-key", api_key != NULL ? api_key : "");
    gw_fetch_timeout(req, 1500, 1000); /* fits the shutdown's release wait; a crash-recovery sweep catches the rest */
    if (gw_fetch_start(req, cb, data) != 0) {
        gw_fetch_cancel(req);
        return NULL;
    }
    return req;
}

bool gw_files_delete_gone(const gw_fetch_t *req)
{
    long st = gw_fetch_status(req);
    return st == 200 || st == 204 || st == 403 || st == 404;
}
