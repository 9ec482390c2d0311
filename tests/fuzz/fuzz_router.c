/* libFuzzer: the HTTP router (reactor/router.c) with the worker's route table. Input: "METHOD path". A match must
 * name a registered route with the same method and segment count, and no decoded segment may be "." or ".." or
 * contain '/' or NUL (path traversal into a handler's parameter). */
#include "fuzz.h"
#include "reactor/router.h"

static void dummy(gw_http_req_t *r, void *data)
{
    (void)r;
    (void)data;
}

static gw_router_t router;

static void setup(void)
{
    static const char *const routes[][2] = {
        {"GET", "/health"},
        {"GET", "/metrics"},
        {"GET", "/worker/jobs"},
        {"GET", "/worker/jobs/*"},
        {"POST", "/worker/jobs/*/cancel"},
        {"GET", "/"},
        {"GET", "/dashboard/*"},
        {"DELETE", "/a/*/b/*/c"},
    };
    if (router.nroutes != 0)
        return;
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++)
        FUZZ_ASSERT(gw_router_add(&router, routes[i][0], routes[i][1], dummy, NULL) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_quiet();
    setup();
    const char *in = (const char *)data, *sp = memchr(in, ' ', size);
    size_t mlen = sp != NULL ? (size_t)(sp - in) : 0;
    const char *path = sp != NULL ? sp + 1 : in;
    size_t plen = size - (size_t)(path - in);
    char *p = malloc(plen ? plen : 1), *buf = malloc(plen + 1);
    FUZZ_ASSERT(p != NULL && buf != NULL);
    memcpy(p, path, plen);
    gw_route_match_t m;
    int st = gw_router_match(&router, in, mlen, p, plen, buf, &m);
    FUZZ_ASSERT(st == m.status && (st == 0 || st == 400 || st == 404 || st == 405));
    if (st == 0) {
        FUZZ_ASSERT(m.route != NULL && m.route->nsegs == m.nsegs);
        FUZZ_ASSERT(strlen(m.route->method) == mlen && memcmp(m.route->method, in, mlen) == 0);
        for (size_t i = 0; i < m.nsegs; i++) {
            FUZZ_ASSERT(strcmp(m.segs[i], ".") != 0 && strcmp(m.segs[i], "..") != 0 && strchr(m.segs[i], '/') == NULL);
            FUZZ_ASSERT(m.segs[i] >= buf && m.segs[i] + strlen(m.segs[i]) < buf + plen + 1);
        }
    }
    if (st == 405) {
        size_t cap = gw_router_allow_cap(&router);
        char *allow = malloc(cap);
        FUZZ_ASSERT(allow != NULL);
        FUZZ_ASSERT(gw_router_allow(&router, &m, allow, cap) > 0);
        free(allow);
    }
    ssize_t n = gw_pct_decode(buf, p, plen, true);
    FUZZ_ASSERT(n < 0 || (size_t)n <= plen);
    free(buf);
    free(p);
    return 0;
}
