#ifndef GW_ROUTER_H
#define GW_ROUTER_H
/* The HTTP router as pure functions (no sockets, no h2o): route table, path splitting with percent-decoding, method
 * matching. reactor/server.c uses it for every request; tests and the fuzzer (tests/fuzz/fuzz_router.c) call it directly.
 *
 * Patterns: exact path, or with '*' segments each matching one non-empty path segment ("/worker/jobs/ * /cancel").
 * Request segments are percent-decoded before comparison; a "." or ".." segment (also encoded) or an encoded '/'
 * matches nothing (404); a malformed escape or %00 is 400; more than GW_ROUTER_MAX_SEGMENTS segments is 404.
 * An existing path with a wrong method is 405; the first route that matches path and method wins. */
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define GW_ROUTER_MAX_SEGMENTS 16

typedef struct st_gw_http_req_t gw_http_req_t;
typedef void (*gw_route_cb)(gw_http_req_t *r, void *data);

typedef struct st_gw_route_t {
    char *method;
    char *storage; /* pattern copy, '/' replaced by NUL; segs point into it */
    const char *segs[GW_ROUTER_MAX_SEGMENTS];
    size_t nsegs;
    size_t nparams;
    gw_route_cb cb;
    void *data;
} gw_route_t;

typedef struct st_gw_router_t {
    gw_route_t *routes;
    size_t nroutes;
} gw_router_t;

/* Result of routing one request path. */
typedef struct st_gw_route_match_t {
    int status; /* 0 = route found, else 400, 404 or 405 */
    const gw_route_t *route;
    const char *segs[GW_ROUTER_MAX_SEGMENTS]; /* decoded, NUL-terminated, in the caller's buffer */
    size_t nsegs;
} gw_route_match_t;

/* Returns 0, or -EINVAL (logged) for a malformed method or pattern. */
int gw_router_add(gw_router_t *rt, const char *method, const char *pattern, gw_route_cb cb, void *data);
void gw_router_free(gw_router_t *rt); /* frees the routes; rt itself is the caller's */

/* Routes path (raw, without the query; path_len bytes, no NUL needed) for method. buf must hold path_len + 1 bytes: the
 * decoded segments live there. Returns m->status. */
int gw_router_match(const gw_router_t *rt, const char *method, size_t method_len, const char *path, size_t path_len, char *buf,
                    gw_route_match_t *m);

/* The methods allowed for m's path, ", "-separated and without duplicates, into out (NUL-terminated, truncated to cap).
 * gw_router_allow_cap tells the size that always suffices. Returns the length written. */
size_t gw_router_allow(const gw_router_t *rt, const gw_route_match_t *m, char *out, size_t cap);
size_t gw_router_allow_cap(const gw_router_t *rt);

/* Percent-decodes src into dst (NUL-terminated; dst holds len + 1). -1 on a malformed escape or on %00, which would
 * silently truncate the C string a handler sees. */
ssize_t gw_pct_decode(char *dst, const char *src, size_t len, bool plus_is_space);

#endif
