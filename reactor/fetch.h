#ifndef GW_FETCH_H
#define GW_FETCH_H
/* HTTP client on the loop: libcurl multi driven by libuv (multi-uv pattern), one request object per transfer.
 * Everything runs on the loop thread; no call blocks on the network. URLs and header values are never logged. */
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct st_gw_fetcher_t gw_fetcher_t; /* one per loop: CURLM + timer + polls */
typedef struct st_gw_fetch_t gw_fetch_t;     /* one transfer */
typedef void (*gw_fetch_cb)(gw_fetch_t *req, void *data);

#define GW_FETCH_DEFAULT_MAX_RESPONSE (16u * 1024 * 1024)

/* max_connects caps curl's idle connection cache (<= 0 = default 64). Aborts when curl cannot initialise. */
gw_fetcher_t *gw_fetcher_create(uv_loop_t *loop, long max_connects);
/* Cancels all transfers (their callbacks are NOT called) and frees every request not yet finished, started or not;
 * closes uv handles asynchronously and frees itself when closed. Finished requests stay valid until gw_fetch_free.
 * Legal inside a fetch callback. */
void gw_fetcher_close(gw_fetcher_t *f);
/* Transfers started and not yet finished. */
size_t gw_fetcher_active(const gw_fetcher_t *f);

/* A new request; method is any HTTP verb ("GET", "POST", "PUT", "DELETE", "HEAD", ...). Redirects are not followed
 * and only http/https URLs are accepted. */
gw_fetch_t *gw_fetch_new(gw_fetcher_t *f, const char *method, const char *url);
/* Adds a request header; both are copied. An empty value sends "Name:" with nothing, which removes a curl default. */
void gw_fetch_header(gw_fetch_t *req, const char *name, const char *value);
void gw_fetch_body(gw_fetch_t *req, const char *data, size_t len); /* copied */
/* Streams [offset, offset+len) of a file as the body through CURLOPT_READFUNCTION: never loads it in memory.
 * Returns 0, -errno when the file cannot be opened, -EINVAL when the range lies outside it. */
int gw_fetch_body_file(gw_fetch_t *req, const char *path, uint64_t offset, uint64_t len);
/* 0 = no limit for that phase. */
void gw_fetch_timeout(gw_fetch_t *req, long total_ms, long connect_ms);
/* Default 16 MiB; exceeding fails the transfer with CURLE_FILESIZE_EXCEEDED. */
void gw_fetch_max_response(gw_fetch_t *req, size_t cap);
/* Starts; cb runs exactly once, later, from the loop (never synchronously inside start). Returns <0 on error (then
 * nothing runs and the request is still the caller's to gw_fetch_cancel). */
int gw_fetch_start(gw_fetch_t *req, gw_fetch_cb cb, void *data);
/* Aborts a started or unstarted transfer and frees it; its callback is not called. */
void gw_fetch_cancel(gw_fetch_t *req);
/* Frees a finished request; legal inside its callback. */
void gw_fetch_free(gw_fetch_t *req);

/* Results (valid inside the callback and until free): */
int gw_fetch_curlcode(const gw_fetch_t *req);                  /* CURLE_OK or the failure */
const char *gw_fetch_error(const gw_fetch_t *req);             /* human-readable curl error, "" when ok */
long gw_fetch_status(const gw_fetch_t *req);                   /* HTTP status, 0 when none */
const char *gw_fetch_data(const gw_fetch_t *req, size_t *len); /* response body, NUL-terminated ("" when none) */
/* Case-insensitive; the first occurrence in the final response; NULL if absent. */
const char *gw_fetch_resp_header(const gw_fetch_t *req, const char *name);
double gw_fetch_elapsed_ms(const gw_fetch_t *req);

#endif
