#ifndef GW_SERVER_H
#define GW_SERVER_H
/* HTTP/1.1 server (h2o 2.2.5, libuv flavour) on the caller's loop, with a small router and safe asynchronous responses.
 * Knows nothing about jobs. Single-threaded: every function is called from the loop thread.
 *
 * Responses are always Content-Length framed (never chunked). Every error the server produces itself — unknown path (404),
 * wrong method (405 + Allow), malformed path or query (400), oversized body (413), h2o's own request errors — is JSON
 * {"error":{"code":..,"message":..}}; JSON responses carry Cache-Control: no-store. The Server header is "glint-worker".
 * Exception: a request head h2o cannot parse at all (garbage, too long, too many headers) gets h2o's fixed text/plain
 * "400 Bad Request" and the connection is closed; no request exists yet for the JSON filter to act on.
 * HTTP/2 (h2c upgrade, prior knowledge) is off. The process must ignore SIGPIPE (libuv writes without MSG_NOSIGNAL). */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "reactor/router.h"
#include <uv.h>

typedef struct st_gw_server_t gw_server_t;

typedef struct st_gw_server_opts_t {
    const char *host;  /* numeric IPv4/IPv6 address; NULL = "0.0.0.0" */
    int port;          /* port 0 = ephemeral (tests); gw_server_port() tells */
    size_t max_body;   /* request bodies above -> 413 JSON error; 0 = default 64 KiB */
    int io_timeout_ms; /* a request (headers + body) or an idle keep-alive gap longer than this drops the client; 0 = 10000 */
    /* open connections at most; 0 = no cap. A connection beyond it first closes the oldest idle one (waiting for its
     * next request, nothing of it read yet); when every one is busy the newcomer is accepted and closed at once */
    size_t max_connections;
} gw_server_opts_t;

/* NULL + logged reason on bad address or bind/listen failure. */
gw_server_t *gw_server_create(uv_loop_t *loop, const gw_server_opts_t *opts);
int gw_server_port(const gw_server_t *s);

/* pattern: exact path, or with '*' segments each matching one non-empty path segment (e.g. "*" in place of ID in
 * /worker/jobs/ID/cancel).
 * Request segments are percent-decoded before comparison; a path with a "." or ".." segment (also encoded) or an encoded
 * '/' matches nothing (404), malformed escapes or %00 give 400. An existing path with a wrong method -> 405 with an Allow
 * header; unknown path -> 404. The first registered route that matches path and method wins.
 * Returns 0, or -EINVAL (logged) for a malformed method or pattern. */
int gw_server_route(gw_server_t *s, const char *method, const char *pattern, gw_route_cb cb, void *data);

/* Staged shutdown, from a loop callback: stop accepting, answer later requests with "Connection: close", and
 * shutdown(fd, SHUT_RD) every accepted socket so idle keep-alive connections close now (h2o 2.2.5's request_shutdown
 * does not close idle HTTP/1 connections). Requests held by handlers can still be answered. Idempotent.
 * h2o's internal timers/async are unref'd, so once the connections are gone the server keeps the loop alive no longer. */
void gw_server_stop(gw_server_t *s);
size_t gw_server_connections(const gw_server_t *s);
size_t gw_server_max_connections(const gw_server_t *s); /* 0 = no cap */
uint64_t gw_server_refused(const gw_server_t *s);       /* connections closed at once: every slot was busy */
uint64_t gw_server_evicted(const gw_server_t *s);       /* idle connections closed to make room */
/* Requests handed to route callbacks and not answered yet. */
size_t gw_server_pending(const gw_server_t *s);

/* After uv_run has returned (h2o_context_dispose runs uv_run itself: never call it from a callback). Stops if needed,
 * answers still-held requests with 503 (their gw_http_req_t stay with the handler: a later respond is a no-op that frees
 * them), drains the connections with non-blocking loop iterations, frees everything. NULL is ignored. */
void gw_server_dispose(gw_server_t *s);

/* Request accessors. Everything is copied when the route callback is called, so the values stay valid until the
 * response is sent, even if the client went away. */
const char *gw_http_method(const gw_http_req_t *r);
const char *gw_http_path(const gw_http_req_t *r);                     /* raw path without query, NUL-terminated copy */
const char *gw_http_param(const gw_http_req_t *r, size_t i);          /* i-th '*' segment, percent-decoded; NULL if none */
const char *gw_http_query(const gw_http_req_t *r, const char *name);  /* first value (decoded, '+' = space; "" for a bare
                                                                         name) or NULL */
const char *gw_http_header(const gw_http_req_t *r, const char *name); /* case-insensitive, NULL if absent; "Host" works,
                                                                         Content-Length/Transfer-Encoding/Expect/Upgrade
                                                                         are consumed by h2o */
const char *gw_http_body(const gw_http_req_t *r, size_t *len);        /* never NULL ("" when empty), NUL-terminated */

/* Responds exactly once — now or later from any loop callback; r is freed by this call either way. If h2o disposed the
 * request meanwhile (or the server was disposed) it is a silent no-op. content_type may be NULL; the body is copied.
 * Status outside 200..599 becomes 500; 204/304 send no body. */
void gw_http_respond(gw_http_req_t *r, int status, const char *content_type, const char *body, size_t len);
void gw_http_respond_json(gw_http_req_t *r, int status, const char *json_text);
void gw_http_respond_error(gw_http_req_t *r, int status, const char *code, const char *message); /* {"error":{..}} */
/* Before respond. Ignored (logged) for names h2o frames itself (Content-Length, Transfer-Encoding, Connection) and for
 * names/values with control characters (no header injection). */
void gw_http_add_header(gw_http_req_t *r, const char *name, const char *value);

/* Constant-time comparison for API keys: time depends only on strlen(a) (the presented value), not on where the strings
 * differ nor on b's contents. NULL never matches. Two empty strings match: refuse an empty configured key yourself. */
bool gw_http_ct_equal(const char *a, const char *b);

#endif
