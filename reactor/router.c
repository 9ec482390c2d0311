#include "reactor/router.h"
#include "reactor/log.h"
#include "reactor/text.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

ssize_t gw_pct_decode(char *dst, const char *src, size_t len, bool plus_is_space)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        char c = src[i];
        if (c == '%') {
            int hi, lo;
            if (len - i < 3 || (hi = gw_ascii_hexval((unsigned char)src[i + 1])) < 0 ||
                (lo = gw_ascii_hexval((unsigned char)src[i + 2])) < 0 || (hi | lo) == 0)
                return -1;
            c = (char)(hi << 4 | lo);
            i += 2;
        } else if (c == '+' && plus_is_space) {
            c = ' ';
        }
        dst[o++] = c;
    }
    dst[o] = '\0';
    return (ssize_t)o;
}

static bool segs_match(const gw_route_t *r, const gw_route_match_t *m)
{
    if (r->nsegs != m->nsegs)
        return false;
    for (size_t i = 0; i < m->nsegs; i++) {
        bool wild = strcmp(r->segs[i], "*") == 0;
        if (wild ? m->segs[i][0] == '\0' : strcmp(r->segs[i], m->segs[i]) != 0)
            return false;
    }
    return true;
}

/* Splits and decodes the raw path (h2o's path_normalized would turn %2F into '/' and resolve ".."). */
static int split_path(const char *raw, size_t len, char *buf, gw_route_match_t *m)
{
    size_t start = 1;
    if (len == 0 || raw[0] != '/')
        return 400;
    for (;;) {
        const char *seg = raw + start, *slash = memchr(seg, '/', len - start);
        size_t seg_len = slash != NULL ? (size_t)(slash - seg) : len - start;
        if (m->nsegs == GW_ROUTER_MAX_SEGMENTS)
            return 404;
        ssize_t n = gw_pct_decode(buf, seg, seg_len, false);
        if (n < 0)
            return 400;
        if (memchr(buf, '/', (size_t)n) != NULL || strcmp(buf, ".") == 0 || strcmp(buf, "..") == 0)
            return 404;
        m->segs[m->nsegs++] = buf;
        buf += n + 1; /* decoded segments + NULs never exceed len + 1 */
        if (slash == NULL)
            return 0;
        start += seg_len + 1;
    }
}

int gw_router_match(const gw_router_t *rt, const char *method, size_t method_len, const char *path, size_t path_len, char *buf,
                    gw_route_match_t *m)
{
    bool path_known = false;
    memset(m, 0, sizeof(*m));
    if ((m->status = split_path(path, path_len, buf, m)) != 0)
        return m->status;
    for (size_t i = 0; i < rt->nroutes; i++) {
        const gw_route_t *r = &rt->routes[i];
        if (!segs_match(r, m))
            continue;
        path_known = true;
        if (strlen(r->method) == method_len && memcmp(r->method, method, method_len) == 0) {
            m->route = r;
            return 0;
        }
    }
    return m->status = path_known ? 405 : 404;
}

size_t gw_router_allow_cap(const gw_router_t *rt)
{
    size_t cap = 1;
    for (size_t i = 0; i < rt->nroutes; i++)
        cap += strlen(rt->routes[i].method) + 2;
    return cap;
}

size_t gw_router_allow(const gw_router_t *rt, const gw_route_match_t *m, char *out, size_t cap)
{
    size_t len = 0;
    if (cap == 0)
        return 0;
    out[0] = '\0';
    for (size_t i = 0; i < rt->nroutes; i++) {
        const gw_route_t *r = &rt->routes[i];
        bool dup = false;
        if (!segs_match(r, m))
            continue;
        for (size_t j = 0; j < i && !dup; j++)
            dup = segs_match(&rt->routes[j], m) && strcmp(rt->routes[j].method, r->method) == 0;
        if (dup)
            continue;
        int n = snprintf(out + len, cap - len, "%s%s", len != 0 ? ", " : "", r->method);
        if (n < 0 || (size_t)n >= cap - len)
            return strlen(out);
        len += (size_t)n;
    }
    return len;
}

static bool pattern_ok(gw_route_t *r, const char *method, const char *pattern)
{
    bool ok = method != NULL && *method != '\0' && pattern != NULL && pattern[0] == '/' && strpbrk(pattern, "?#%") == NULL;
    for (const char *p = method; ok && *p != '\0'; p++)
        ok = gw_ascii_is_tchar((unsigned char)*p);
    if (!ok)
        return false;
    r->storage = strdup(pattern + 1);
    if (r->storage == NULL)
        abort();
    for (char *seg = r->storage, *next; ok; seg = next + 1) {
        next = strchr(seg, '/');
        if (next != NULL)
            *next = '\0';
        ok = r->nsegs < GW_ROUTER_MAX_SEGMENTS && strcmp(seg, ".") != 0 && strcmp(seg, "..") != 0 &&
             (strchr(seg, '*') == NULL || strcmp(seg, "*") == 0);
        if (ok) {
            r->nparams += strcmp(seg, "*") == 0;
            r->segs[r->nsegs++] = seg;
        }
        if (next == NULL)
            break;
    }
    return ok;
}

int gw_router_add(gw_router_t *rt, const char *method, const char *pattern, gw_route_cb cb, void *data)
{
    gw_route_t r;
    memset(&r, 0, sizeof(r));
    if (cb == NULL || !pattern_ok(&r, method, pattern)) {
        gw_error("http: invalid route %s %s", method != NULL ? method : "(null)", pattern != NULL ? pattern : "(null)");
        free(r.storage);
        return -EINVAL;
    }
    if ((r.method = strdup(method)) == NULL)
        abort();
    r.cb = cb;
    r.data = data;
    gw_route_t *routes = realloc(rt->routes, (rt->nroutes + 1) * sizeof(*routes));
    if (routes == NULL)
        abort();
    rt->routes = routes;
    rt->routes[rt->nroutes++] = r;
    return 0;
}

void gw_router_free(gw_router_t *rt)
{
    for (size_t i = 0; i < rt->nroutes; i++) {
        free(rt->routes[i].method);
        free(rt->routes[i].storage);
    }
    free(rt->routes);
    rt->routes = NULL;
    rt->nroutes = 0;
}
