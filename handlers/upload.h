#ifndef GW_UPLOAD_H
#define GW_UPLOAD_H
/* Files API transfers on the loop: the resumable upload (start -> x-goog-upload-url -> `upload` chunks streamed from
 * disk -> `upload, finalize`), resumed from the server's committed offset after a dropped connection or a 5xx
 * (restarted when the upload session is gone), then polling files/{name} with backoff until ACTIVE under an overall
 * deadline; and the DELETE afterwards. The upload URL carries credentials: it is kept in memory only, never logged. */
#include "handlers/gemini.h"
#include "reactor/fetch.h"
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

typedef struct st_gw_upload_t gw_upload_t;

typedef struct st_gw_upload_opts_t {
    const char *base_url, *api_key;
    const char *path;         /* local file, streamed through a curl read callback */
    const char *mime_type;    /* e.g. "video/mp4" */
    const char *display_name; /* how the remote file is found again after a crash */
    const char *job_id;       /* for logs */
    uint64_t chunk_bytes;     /* rounded down to GW_GEMINI_UPLOAD_GRANULARITY; 0 = one request */
    unsigned max_retries;     /* consecutive failed steps tolerated (progress resets the count) */
    long request_timeout_ms;  /* one request (one chunk) */
    uint64_t active_timeout_ms;
} gw_upload_opts_t;

typedef struct st_gw_upload_result_t {
    bool ok;                      /* the file is ACTIVE */
    const char *error_code;       /* static; NULL when ok */
    const char *message;          /* static, user-facing */
    bool transient;               /* a later attempt may succeed */
    const gw_gemini_file_t *file; /* valid during the callback; name set whenever the file exists remotely */
    double upload_ms, processing_ms;
    uint64_t bytes;
} gw_upload_result_t;

typedef struct st_gw_upload_events_t {
    /* The remote file exists from now on (record it so a crash cannot leak it). May be NULL. */
    void (*on_named)(const char *name, void *data);
    /* Exactly once unless cancelled; the upload object is freed after it returns. */
    void (*on_done)(const gw_upload_result_t *r, void *data);
    void *data;
} gw_upload_events_t;

/* Starts; opts' strings are copied. Never returns NULL; failures are reported through on_done (later). */
gw_upload_t *gw_upload_start(uv_loop_t *loop, gw_fetcher_t *fetcher, const gw_upload_opts_t *opts, const gw_upload_events_t *ev);
/* Stops at once (transfer aborted, no callback). The remote file, when on_named ran, is the caller's to delete. */
void gw_upload_cancel(gw_upload_t *u);

/* DELETE {base}/v1beta/{name} (short timeout); cb gets the finished request (free it with gw_fetch_free). Returns the
 * transfer (gw_fetch_cancel stops it; cb does not run then) or NULL when it could not start. */
gw_fetch_t *gw_files_delete(gw_fetcher_t *fetcher, const char *base_url, const char *api_key, const char *name, gw_fetch_cb cb,
                            void *data);
/* True when a finished DELETE removed the file or it was already gone (403/404: the Files API's answer for both). */
bool gw_files_delete_gone(const gw_fetch_t *req);

/* ---- pure helpers (unit-tested) ---- */

/* The next request of an upload of `size` bytes resuming at `offset`: its length and whether it finalizes.
 * chunk_bytes is rounded down to the granularity (0 or less than one granule = everything in one request). */
void gw_upload_plan(uint64_t size, uint64_t offset, uint64_t chunk_bytes, uint64_t *len, bool *final);
/* Mime type for a media file by extension ("video/mp4", "video/webm", "audio/ogg", ...); "application/octet-stream". */
const char *gw_upload_mime_for_path(const char *path);
/* Delay before poll n (0-based) of files/{name}: 500 ms doubling to 5 s. */
uint64_t gw_upload_poll_delay_ms(unsigned n);

#endif
