/* Server on a uv loop in the main thread; a raw-socket HTTP/1.1 client in a second thread drives it.
 * CHECKs run only in the client thread while it runs, and in main before it starts / after it is joined. */
#define _GNU_SOURCE /* memmem */
#include "check.h"
#include "reactor/log.h"
#include "reactor/server.h"
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_BODY 4096
#define DROP_DELAY_MS 200

/* ---- server side (loop thread) ---- */

static uv_loop_t loop;
static uv_async_t stop_async;
static gw_server_t *server;
static gw_http_req_t *held_req; /* /hold: never answered while the loop runs */
static atomic_int drops_answered;

typedef struct st_delayed_t {
    uv_timer_t timer;
    gw_http_req_t *r;
    bool drop;
} delayed_t;

static void on_delayed_closed(uv_handle_t *h)
{
    free(h);
}

static void on_delayed(uv_timer_t *t)
{
    delayed_t *d = (delayed_t *)t;
    gw_http_respond_json(d->r, 200, d->drop ? "{\"dropped\":true}" : "{\"slow\":true}");
    if (d->drop)
        atomic_fetch_add(&drops_answered, 1);
    uv_close((uv_handle_t *)&d->timer, on_delayed_closed);
}

static void respond_later(gw_http_req_t *r, uint64_t ms, bool drop)
{
    delayed_t *d = calloc(1, sizeof(*d));
    if (d == NULL)
        abort();
    d->r = r;
    d->drop = drop;
    if (uv_timer_init(&loop, &d->timer) != 0 || uv_timer_start(&d->timer, on_delayed, ms, 0) != 0)
        abort();
}

static void h_health(gw_http_req_t *r, void *data)
{
    gw_http_respond_json(r, 200, "{\"status\":\"ok\"}");
}

static const char *nz(const char *s)
{
    return s != NULL ? s : "(null)";
}

static void h_items(gw_http_req_t *r, void *data)
{
    char buf[1024];
    int n = snprintf(buf, sizeof(buf),
                     "p0=%s\np1=%s\np2=%s\nq=%s\nflag=%s\nplus=%s\nmissing=%s\nx-test=%s\nhost=%s\nnone=%s\npath=%s\nmethod=%s\n",
                     nz(gw_http_param(r, 0)), nz(gw_http_param(r, 1)), nz(gw_http_param(r, 2)), nz(gw_http_query(r, "q")),
                     nz(gw_http_query(r, "flag")), nz(gw_http_query(r, "plus")), nz(gw_http_query(r, "missing")),
                     nz(gw_http_header(r, "x-TEST")), nz(gw_http_header(r, "Host")), nz(gw_http_header(r, "X-None")),
                     gw_http_path(r), gw_http_method(r));
    gw_http_add_header(r, "X-Reply", "yes");
    gw_http_add_header(r, "X-Bad", "a\r\nInjected: 1");
    gw_http_add_header(r, "Content-Length", "3");
    gw_http_respond(r, 200, "text/plain; charset=utf-8", buf, (size_t)n);
}

static void h_echo(gw_http_req_t *r, void *data)
{
    size_t len;
    const char *body = gw_http_body(r, &len);
    gw_http_respond(r, 200, "application/octet-stream", body, len);
}

static void h_slow(gw_http_req_t *r, void *data)
{
    respond_later(r, 50, false);
}

static void h_slow_drop(gw_http_req_t *r, void *data)
{
    respond_later(r, DROP_DELAY_MS, true);
}

static void h_stats(gw_http_req_t *r, void *data)
{
    char buf[160];
    snprintf(buf, sizeof(buf), "{\"connections\":%zu,\"pending\":%zu,\"drops\":%d}", gw_server_connections(server),
             gw_server_pending(server) - 1 /* not this one */, atomic_load(&drops_answered));
    gw_http_respond_json(r, 200, buf);
}

static void h_multi(gw_http_req_t *r, void *data)
{
    gw_http_respond(r, 200, "text/plain", "multi", 5);
}

static void h_hold(gw_http_req_t *r, void *data)
{
    held_req = r;
}

static void h_error(gw_http_req_t *r, void *data)
{
    gw_http_respond_error(r, 409, "conflict", "job \"x\" is\nbusy");
}

static void h_empty(gw_http_req_t *r, void *data)
{
    gw_http_respond(r, 204, "text/plain", "ignored", 7);
}

static void on_stop_async(uv_async_t *a)
{
    gw_server_stop(server);
    uv_close((uv_handle_t *)a, NULL);
}

/* ---- client side (second thread) ---- */

static int port;

typedef struct st_cconn_t {
    int fd;
    size_t len;
    char buf[256 * 1024];
} cconn_t;

typedef struct st_resp_t {
    int status;
    char head[8192];
    char *body;
    size_t body_len;
    bool has_cl;
} resp_t;

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int raw_connect(void)
{
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    struct timeval tv = {5, 0};
    int one = 1, fd = socket(AF_INET, SOCK_STREAM, 0);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0)
        return -1;
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0) {
        int err = errno;
        close(fd);
        errno = err;
        return -1;
    }
    return fd;
}

static cconn_t *cconnect(void)
{
    cconn_t *c = calloc(1, sizeof(*c));
    if (c == NULL || (c->fd = raw_connect()) < 0)
        abort();
    return c;
}

static void cclose(cconn_t *c)
{
    close(c->fd);
    free(c);
}

static void csend(cconn_t *c, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = send(c->fd, data, len, MSG_NOSIGNAL);
        if (n <= 0)
            return;
        data += n;
        len -= (size_t)n;
    }
}

static void csend_str(cconn_t *c, const char *s)
{
    csend(c, s, strlen(s));
}

/* Copies the value of header name (case-insensitive) into out; NULL if absent. */
static const char *hdr(const resp_t *r, const char *name, char *out, size_t outlen)
{
    size_t nlen = strlen(name);
    for (const char *p = strstr(r->head, "\r\n"); p != NULL; p = strstr(p + 2, "\r\n")) {
        if (strncasecmp(p + 2, name, nlen) == 0 && p[2 + nlen] == ':') {
            const char *v = p + 3 + nlen, *e;
            while (*v == ' ')
                v++;
            e = strstr(v, "\r\n");
            size_t n = (size_t)(e - v) < outlen - 1 ? (size_t)(e - v) : outlen - 1;
            memcpy(out, v, n);
            out[n] = '\0';
            return out;
        }
    }
    return NULL;
}

static int cfill(cconn_t *c)
{
    if (c->len == sizeof(c->buf))
        return -1;
    ssize_t n = recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len, 0);
    if (n <= 0)
        return -1;
    c->len += (size_t)n;
    return 0;
}

/* Reads one response (no_body: HEAD or 204). -1 on EOF/timeout/garbage. */
static int cread(cconn_t *c, resp_t *r, bool no_body)
{
    char *end, v[64];
    memset(r, 0, sizeof(*r));
    while ((end = memmem(c->buf, c->len, "\r\n\r\n", 4)) == NULL)
        if (cfill(c) != 0)
            return -1;
    size_t head_len = (size_t)(end - c->buf) + 4;
    if (head_len >= sizeof(r->head) || sscanf(c->buf, "HTTP/1.1 %d", &r->status) != 1)
        return -1;
    memcpy(r->head, c->buf, head_len - 2);
    size_t cl = 0;
    if (hdr(r, "Content-Length", v, sizeof(v)) != NULL) {
        r->has_cl = true;
        cl = strtoul(v, NULL, 10);
    }
    if (no_body || r->status == 204)
        cl = 0;
    while (c->len < head_len + cl)
        if (cfill(c) != 0)
            return -1;
    r->body = malloc(cl + 1);
    memcpy(r->body, c->buf + head_len, cl);
    r->body[cl] = '\0';
    r->body_len = cl;
    memmove(c->buf, c->buf + head_len + cl, c->len - head_len - cl);
    c->len -= head_len + cl;
    return 0;
}

static int request(cconn_t *c, const char *raw, resp_t *r)
{
    csend_str(c, raw);
    return cread(c, r, strncmp(raw, "HEAD ", 5) == 0);
}

static void rfree(resp_t *r)
{
    free(r->body);
    r->body = NULL;
}

/* true when the server closes the connection (recv returns 0) */
static bool sees_eof(cconn_t *c)
{
    char b[64];
    return recv(c->fd, b, sizeof(b), 0) == 0;
}

static void get_stats(cconn_t *c, int *conns, int *pending, int *drops)
{
    resp_t r;
    *conns = *pending = *drops = -1;
    if (request(c, "GET /stats HTTP/1.1\r\nHost: t\r\n\r\n", &r) == 0)
        sscanf(r.body, "{\"connections\":%d,\"pending\":%d,\"drops\":%d}", conns, pending, drops);
    rfree(&r);
}

static void wait_pending(cconn_t *stats, int want)
{
    int conns, pending, drops;
    for (int i = 0; i < 500; i++) {
        get_stats(stats, &conns, &pending, &drops);
        if (pending >= want)
            return;
        sleep_ms(2);
    }
}

static void test_exact_route(cconn_t *c)
{
    resp_t r;
    char v[128];
    CHECK_INT(request(c, "GET /health HTTP/1.1\r\nHost: t\r\n\r\n", &r), 0);
    CHECK_INT(r.status, 200);
    CHECK_STR(r.body, "{\"status\":\"ok\"}");
    CHECK(r.has_cl);
    CHECK_STR(hdr(&r, "Content-Length", v, sizeof(v)), "15");
    CHECK(hdr(&r, "Transfer-Encoding", v, sizeof(v)) == NULL);
    CHECK_STR(hdr(&r, "Content-Type", v, sizeof(v)), "application/json");
    CHECK_STR(hdr(&r, "Cache-Control", v, sizeof(v)), "no-store");
    CHECK_STR(hdr(&r, "Server", v, sizeof(v)), "glint-worker");
    CHECK_STR(hdr(&r, "Connection", v, sizeof(v)), "keep-alive");
    rfree(&r);

    CHECK_INT(request(c, "GET /health?verbose=1 HTTP/1.1\r\nHost: t\r\n\r\n", &r), 0);
    CHECK_INT(r.status, 200);
    rfree(&r);
}

static void test_params(cconn_t *c)
{
    resp_t r;
    char v[64];
    CHECK_INT(request(c,
                      "GET /items/a%20b/sub/%C3%A9t%C3%A9?q=hello%20world&flag&plus=a+b%2Bc&q=second HTTP/1.1\r\n"
                      "Host: example.test:8000\r\nX-Test: Value 1\r\n\r\n",
                      &r),
              0);
    CHECK_INT(r.status, 200);
    CHECK_STR(r.body, "p0=a b\np1=\xc3\xa9t\xc3\xa9\np2=(null)\nq=hello world\nflag=\nplus=a b+c\nmissing=(null)\n"
                      "x-test=Value 1\nhost=example.test:8000\nnone=(null)\npath=/items/a%20b/sub/%C3%A9t%C3%A9\nmethod=GET\n");
    CHECK_STR(hdr(&r, "Content-Type", v, sizeof(v)), "text/plain; charset=utf-8");
    CHECK(hdr(&r, "Cache-Control", v, sizeof(v)) == NULL); /* not JSON */
    CHECK_STR(hdr(&r, "X-Reply", v, sizeof(v)), "yes");
    CHECK(hdr(&r, "X-Bad", v, sizeof(v)) == NULL);
    CHECK(hdr(&r, "Injected", v, sizeof(v)) == NULL);
    CHECK_INT(atoi(hdr(&r, "Content-Length", v, sizeof(v))), r.body_len);
    CHECK(strstr(r.head, "Content-Length: 3") == NULL);
    rfree(&r);
}

static void test_post(cconn_t *c)
{
    static char body[MAX_BODY];
    char head[256];
    resp_t r;
    for (size_t i = 0; i < sizeof(body); i++)
        body[i] = (char)(i * 7 + 1);
    body[100] = '\0'; /* binary-safe */
    snprintf(head, sizeof(head), "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n", MAX_BODY);
    csend_str(c, head);
    csend(c, body, sizeof(body));
    CHECK_INT(cread(c, &r, false), 0);
    CHECK_INT(r.status, 200);
    CHECK_INT(r.body_len, MAX_BODY);
    CHECK(r.body_len == MAX_BODY && memcmp(r.body, body, MAX_BODY) == 0);
    rfree(&r);

    /* chunked request body within the limit */
    CHECK_INT(request(c,
                      "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
                      &r),
              0);
    CHECK_INT(r.status, 200);
    CHECK_STR(r.body, "hello world");
    rfree(&r);

    /* no body at all */
    CHECK_INT(request(c, "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n", &r), 0);
    CHECK_INT(r.status, 200);
    CHECK_INT(r.body_len, 0);
    rfree(&r);

    /* HTTP/1.0 without Host: no made-up Host value reaches the handler */
    CHECK_INT(request(c, "GET /items/a/sub/b HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", &r), 0);
    CHECK_INT(r.status, 200);
    CHECK(r.body != NULL && strstr(r.body, "\nhost=(null)\n") != NULL);
    rfree(&r);
}

static void test_async(cconn_t *c)
{
    resp_t r;
    double t0 = now_ms();
    CHECK_INT(request(c, "GET /slow HTTP/1.1\r\nHost: t\r\n\r\n", &r), 0);
    double dt = now_ms() - t0;
    CHECK_INT(r.status, 200);
    CHECK_STR(r.body, "{\"slow\":true}");
    CHECK(dt >= 45);
    rfree(&r);
}

/* The client goes away while its request is held; the late respond must be harmless and the connection reclaimed. */
static void test_disconnect(cconn_t *stats)
{
    int conns0, conns, pending, drops;
    get_stats(stats, &conns0, &pending, &drops);
    for (int rst = 0; rst < 2; rst++) {
        cconn_t *c = cconnect();
        csend_str(c, "GET /slow-drop HTTP/1.1\r\nHost: t\r\n\r\n");
        wait_pending(stats, 1);
        if (rst) {
            struct linger lg = {1, 0}; /* RST instead of FIN: the write then fails with EPIPE/ECONNRESET */
            setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
        }
        cclose(c);
    }
    for (int i = 0; i < 500; i++) {
        get_stats(stats, &conns, &pending, &drops);
        if (drops == 2 && conns == conns0 && pending == 0)
            break;
        sleep_ms(5);
    }
    CHECK_INT(drops, 2);
    CHECK_INT(pending, 0);
    CHECK_INT(conns, conns0);
}

static void check_json_error(const resp_t *r, int status, const char *code)
{
    char v[128], want[128];
    CHECK_INT(r->status, status);
    CHECK_STR(hdr(r, "Content-Type", v, sizeof(v)), "application/json");
    CHECK_STR(hdr(r, "Cache-Control", v, sizeof(v)), "no-store");
    CHECK(r->has_cl);
    CHECK(hdr(r, "Transfer-Encoding", v, sizeof(v)) == NULL);
    snprintf(want, sizeof(want), "{\"error\":{\"code\":\"%s\",\"message\":\"", code);
    CHECK(r->body != NULL && strncmp(r->body, want, strlen(want)) == 0);
}

static void test_errors(cconn_t *c)
{
    resp_t r;
    char v[128];

    CHECK_INT(request(c, "GET /nope HTTP/1.1\r\nHost: t\r\n\r\n", &r), 0);
    check_json_error(&r, 404, "not_found");
    rfree(&r);

    CHECK_INT(request(c, "HEAD /nope HTTP/1.1\r\nHost: t\r\n\r\n", &r), 0);
    CHECK_INT(r.status, 404);
    rfree(&r);

    CHECK_INT(request(c, "DELETE /health HTTP/1.1\r\nHost: t\r\n\r\n", &r), 0);
    check_json_error(&r, 405, "method_not_allowed");
    CHECK_STR(hdr(&r, "Allow", v, sizeof(v)), "GET");
    rfree(&r);

    CHECK_INT(request(c, "PUT /multi HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n", &r), 0);
    check_json_error(&r, 405, "method_not_allowed");
    CHECK_STR(hdr(&r, "Allow", v, sizeof(v)), "GET, POST");
    rfree(&r);

    CHECK_INT(request(c, "POST /multi HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n", &r), 0);
    CHECK_INT(r.status, 200);
    CHECK_STR(r.body, "multi");
    rfree(&r);

    CHECK_INT(request(c, "GET /error HTTP/1.1\r\nHost: t\r\n\r\n", &r), 0);
    check_json_error(&r, 409, "conflict");
    CHECK_STR(r.body, "{\"error\":{\"code\":\"conflict\",\"message\":\"job \\\"x\\\" is\\u000abusy\"}}");
    rfree(&r);

    CHECK_INT(request(c, "GET /empty HTTP/1.1\r\nHost: t\r\n\r\n", &r), 0);
    CHECK_INT(r.status, 204);
    CHECK(hdr(&r, "Transfer-Encoding", v, sizeof(v)) == NULL);
    CHECK(hdr(&r, "Content-Type", v, sizeof(v)) == NULL);
    rfree(&r);

    /* nothing that could reach a route by accident */
    static const struct {
        const char *path;
        int status;
    } paths[] = {
        {"/items/a%2Fb/sub/c", 404},
        {"/items/a%2fb/sub/c", 404},
        {"/items/../health", 404},
        {"/health/../health", 404},
        {"/items/%2e%2e/sub/x", 404},
        {"/items/./sub/x", 404},
        {"/items//sub/x", 404},
        {"/health/", 404},
        {"//health", 404},
        {"/HEALTH", 404},
        {"/items/%zz/sub/x", 400},
        {"/items/a%00/sub/b", 400},
        {"/items/a%2/sub/b", 400},
        {"/health?x=%zz", 400},
        {"/health?x=%00", 400},
        {"/items/x/sub/y/z", 404},
        {"/a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p/q/r", 404},
    };
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        char req[256];
        snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: t\r\n\r\n", paths[i].path);
        CHECK_INT(request(c, req, &r), 0);
        if (r.status != paths[i].status)
            fprintf(stderr, "path %s -> %d\n", paths[i].path, r.status);
        check_json_error(&r, paths[i].status, paths[i].status == 404 ? "not_found" : "bad_request");
        rfree(&r);
    }
    CHECK_INT(request(c, "OPTIONS * HTTP/1.1\r\nHost: t\r\n\r\n", &r), 0);
    check_json_error(&r, 400, "bad_request");
    rfree(&r);
}

static void test_too_large(void)
{
    resp_t r;
    char req[256];
    static char body[MAX_BODY + 1];

    /* announced too large: h2o refuses before reading the body (its own 413, rewritten as JSON), then closes */
    cconn_t *c = cconnect();
    CHECK_INT(request(c, "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\n\r\n", &r), 0);
    check_json_error(&r, 413, "payload_too_large");
    CHECK(r.body != NULL && strstr(r.body, "4096") != NULL);
    rfree(&r);
    CHECK(sees_eof(c));
    cclose(c);

    /* exactly one byte over: read, then refused by the router; keep-alive survives */
    c = cconnect();
    memset(body, 'x', sizeof(body));
    snprintf(req, sizeof(req), "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n", MAX_BODY + 1);
    csend_str(c, req);
    csend(c, body, sizeof(body));
    CHECK_INT(cread(c, &r, false), 0);
    check_json_error(&r, 413, "payload_too_large");
    rfree(&r);
    CHECK_INT(request(c, "GET /health HTTP/1.1\r\nHost: t\r\n\r\n", &r), 0);
    CHECK_INT(r.status, 200);
    rfree(&r);
    cclose(c);

    /* chunked over the limit */
    c = cconnect();
    snprintf(req, sizeof(req), "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n", MAX_BODY + 10);
    csend_str(c, req);
    memset(body, 'y', sizeof(body));
    csend(c, body, sizeof(body));
    csend(c, "xxxxxxxxx\r\n0\r\n\r\n", 16);
    CHECK_INT(cread(c, &r, false), 0);
    check_json_error(&r, 413, "payload_too_large");
    rfree(&r);
    cclose(c);

    /* broken chunked encoding: another h2o-generated error, also JSON */
    c = cconnect();
    CHECK_INT(request(c, "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", &r), 0);
    check_json_error(&r, 400, "bad_request");
    rfree(&r);
    cclose(c);
}

static void test_keepalive(cconn_t *stats)
{
    int conns0, conns, pending, drops;
    resp_t r;
    get_stats(stats, &conns0, &pending, &drops);
    cconn_t *c = cconnect();
    for (int i = 0; i < 5; i++) {
        CHECK_INT(request(c, "GET /health HTTP/1.1\r\nHost: t\r\n\r\n", &r), 0);
        CHECK_INT(r.status, 200);
        rfree(&r);
    }
    /* pipelined: two requests in one write */
    csend_str(c, "GET /health HTTP/1.1\r\nHost: t\r\n\r\nGET /multi HTTP/1.1\r\nHost: t\r\n\r\n");
    CHECK_INT(cread(c, &r, false), 0);
    CHECK_STR(r.body, "{\"status\":\"ok\"}");
    rfree(&r);
    CHECK_INT(cread(c, &r, false), 0);
    CHECK_STR(r.body, "multi");
    rfree(&r);
    get_stats(stats, &conns, &pending, &drops);
    CHECK_INT(conns, conns0 + 1); /* all of the above on one connection */
    cclose(c);
}

static void throughput(void)
{
    resp_t r;
    int n = 2000, ok = 0;
    cconn_t *c = cconnect();
    double t0 = now_ms();
    for (int i = 0; i < n; i++) {
        if (request(c, "GET /health HTTP/1.1\r\nHost: t\r\n\r\n", &r) == 0 && r.status == 200)
            ok++;
        rfree(&r);
    }
    double dt = now_ms() - t0;
    CHECK_INT(ok, n);
    printf("throughput: %d sequential keep-alive requests in %.1f ms (%.0f req/s)\n", n, dt, n / (dt / 1e3));
    cclose(c);
}

/* Idle keep-alive connection, an in-flight async request and a request held past the loop's end, then stop. */
static void test_stop(void)
{
    resp_t r;
    char v[64];
    cconn_t *idle = cconnect(), *slow = cconnect(), *hold = cconnect(), *stats = cconnect();

    CHECK_INT(request(idle, "GET /health HTTP/1.1\r\nHost: t\r\n\r\n", &r), 0);
    rfree(&r);
    csend_str(slow, "GET /slow HTTP/1.1\r\nHost: t\r\n\r\n");
    csend_str(hold, "GET /hold HTTP/1.1\r\nHost: t\r\n\r\n");
    wait_pending(stats, 2);
    cclose(stats);

    if (uv_async_send(&stop_async) != 0)
        abort();
    double t0 = now_ms();
    CHECK(sees_eof(idle)); /* closed by the server long before the 10 s keep-alive timeout */
    CHECK(now_ms() - t0 < 1000);
    cclose(idle);

    CHECK_INT(cread(slow, &r, false), 0);
    CHECK_INT(r.status, 200);
    CHECK_STR(hdr(&r, "Connection", v, sizeof(v)), "close");
    rfree(&r);
    CHECK(sees_eof(slow));
    cclose(slow);

    errno = 0;
    int fd = raw_connect();
    CHECK(fd < 0 && errno == ECONNREFUSED);
    if (fd >= 0)
        close(fd);

    /* answered 503 by gw_server_dispose after uv_run returned in the main thread */
    CHECK_INT(cread(hold, &r, false), 0);
    check_json_error(&r, 503, "unavailable");
    rfree(&r);
    CHECK(sees_eof(hold));
    cclose(hold);
}

static void *client_main(void *arg)
{
    cconn_t *c = cconnect(), *stats = cconnect();
    test_exact_route(c);
    test_params(c);
    test_post(c);
    test_async(c);
    test_disconnect(stats);
    test_errors(c);
    test_too_large();
    test_keepalive(stats);
    throughput();
    cclose(c);
    cclose(stats);
    test_stop();
    return NULL;
}

/* Phase 2 (io_timeout_ms = 200): slow clients are dropped. */
static void *timeout_client_main(void *arg)
{
    resp_t r;
    cconn_t *c = cconnect();
    csend_str(c, "GET /health HTTP/1.1\r\nHost: t\r\n"); /* headers never finished */
    double t0 = now_ms();
    CHECK(sees_eof(c));
    double dt = now_ms() - t0;
    CHECK(dt >= 150 && dt < 3000);
    cclose(c);

    c = cconnect();
    t0 = now_ms();
    CHECK(request(c, "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc", &r) != 0); /* body never finished */
    CHECK(now_ms() - t0 < 3000);
    rfree(&r);
    cclose(c);

    c = cconnect();
    CHECK_INT(request(c, "GET /health HTTP/1.1\r\nHost: t\r\n\r\n", &r), 0);
    rfree(&r);
    t0 = now_ms();
    CHECK(sees_eof(c)); /* idle keep-alive */
    dt = now_ms() - t0;
    CHECK(dt >= 150 && dt < 3000);
    cclose(c);

    if (uv_async_send(&stop_async) != 0)
        abort();
    return NULL;
}

/* HTTP_MAX_CONNECTIONS = 4: a fifth connection closes the oldest idle one; when all are busy it is refused. */
static void *cap_client_main(void *arg)
{
    resp_t r;
    cconn_t *c[6];
    for (int i = 0; i < 4; i++) {
        c[i] = cconnect();
        sleep_ms(20); /* accepted in this order */
    }
    CHECK_INT(request(c[1], "GET /health HTTP/1.1\r\nHost: t\r\n\r\n", &r), 0); /* served, now idle again */
    rfree(&r);
    c[4] = cconnect();
    CHECK(sees_eof(c[0])); /* the oldest idle one made room */
    CHECK_INT(request(c[4], "GET /health HTTP/1.1\r\nHost: t\r\n\r\n", &r), 0);
    CHECK_INT(r.status, 200);
    rfree(&r);
    for (int i = 1; i < 5; i++) /* half a request each: busy */
        csend_str(c[i], "GET /health HTTP/1.1\r\n");
    sleep_ms(50);
    c[5] = cconnect();
    double t0 = now_ms();
    CHECK(sees_eof(c[5])); /* refused: closed unanswered, at once */
    CHECK(now_ms() - t0 < 1000);
    CHECK_INT(request(c[1], "Host: t\r\n\r\n", &r), 0); /* the busy ones were left alone */
    CHECK_INT(r.status, 200);
    rfree(&r);
    for (int i = 0; i < 6; i++)
        cclose(c[i]);
    if (uv_async_send(&stop_async) != 0)
        abort();
    return NULL;
}

static void test_ct_equal(void)
{
    CHECK(gw_http_ct_equal("secret-key", "secret-key"));
    CHECK(!gw_http_ct_equal("secret-key", "secret-kez"));
    CHECK(!gw_http_ct_equal("Secret-key", "secret-key"));
    CHECK(!gw_http_ct_equal("secret", "secret-key"));
    CHECK(!gw_http_ct_equal("secret-key-long", "secret-key"));
    CHECK(!gw_http_ct_equal("secret-keysecret-key", "secret-key")); /* wraps over b: still unequal */
    CHECK(!gw_http_ct_equal("", "secret-key"));
    CHECK(!gw_http_ct_equal("x", ""));
    CHECK(gw_http_ct_equal("", ""));
    CHECK(!gw_http_ct_equal(NULL, "a"));
    CHECK(!gw_http_ct_equal("a", NULL));
}

int main(void)
{
    pthread_t client;
    signal(SIGPIPE, SIG_IGN);
    alarm(100); /* a hang fails fast instead of waiting for ctest */
    test_ct_equal();

    CHECK_INT(uv_loop_init(&loop), 0);
    gw_server_opts_t opts = {"127.0.0.1", 0, MAX_BODY, 0, 0};
    server = gw_server_create(&loop, &opts);
    CHECK(server != NULL);
    if (server == NULL)
        return check_report();
    port = gw_server_port(server);
    CHECK(port > 0);

    gw_server_opts_t busy = {"127.0.0.1", port, 0, 0, 0}, bad = {"not-an-ip", 0, 0, 0, 0};
    CHECK(gw_server_create(&loop, &busy) == NULL);
    CHECK(gw_server_create(&loop, &bad) == NULL);

    CHECK_INT(gw_server_route(server, "GET", "/health", h_health, NULL), 0);
    CHECK_INT(gw_server_route(server, "GET", "/items/*/sub/*", h_items, NULL), 0);
    CHECK_INT(gw_server_route(server, "POST", "/echo", h_echo, NULL), 0);
    CHECK_INT(gw_server_route(server, "GET", "/slow", h_slow, NULL), 0);
    CHECK_INT(gw_server_route(server, "GET", "/slow-drop", h_slow_drop, NULL), 0);
    CHECK_INT(gw_server_route(server, "GET", "/stats", h_stats, NULL), 0);
    CHECK_INT(gw_server_route(server, "GET", "/multi", h_multi, NULL), 0);
    CHECK_INT(gw_server_route(server, "POST", "/multi", h_multi, NULL), 0);
    CHECK_INT(gw_server_route(server, "GET", "/multi", h_health, NULL), 0); /* duplicate: first wins, Allow lists GET once */
    CHECK_INT(gw_server_route(server, "GET", "/hold", h_hold, NULL), 0);
    CHECK_INT(gw_server_route(server, "GET", "/error", h_error, NULL), 0);
    CHECK_INT(gw_server_route(server, "GET", "/empty", h_empty, NULL), 0);
    CHECK_INT(gw_server_route(server, "GET", "/a/../b", h_health, NULL), -EINVAL);
    CHECK_INT(gw_server_route(server, "GET", "/a/x*", h_health, NULL), -EINVAL);
    CHECK_INT(gw_server_route(server, "GET", "relative", h_health, NULL), -EINVAL);
    CHECK_INT(gw_server_route(server, "GE T", "/x", h_health, NULL), -EINVAL);
    CHECK_INT(gw_server_route(server, "GET", "/a%2Fb", h_health, NULL), -EINVAL);

    CHECK_INT(uv_async_init(&loop, &stop_async, on_stop_async), 0);
    CHECK_INT(pthread_create(&client, NULL, client_main, NULL), 0);

    /* returns by itself once the server is stopped and its connections are gone (no uv_stop) */
    int rc = uv_run(&loop, UV_RUN_DEFAULT);
    size_t pending_after_run = gw_server_pending(server), conns_after_run = gw_server_connections(server);
    gw_server_dispose(server); /* answers /hold with 503 while the client waits for it */
    bool had_held = held_req != NULL;
    if (held_req != NULL)
        gw_http_respond_json(held_req, 200, "{}"); /* after dispose: no-op that frees it */

    CHECK_INT(pthread_join(client, NULL), 0);
    CHECK_INT(rc, 0);
    CHECK_INT(pending_after_run, 1);
    CHECK_INT(conns_after_run, 1);
    CHECK(had_held);
    CHECK_INT(uv_loop_close(&loop), 0);

    CHECK_INT(uv_loop_init(&loop), 0);
    gw_server_opts_t slow = {"127.0.0.1", 0, 0, 200, 0};
    CHECK((server = gw_server_create(&loop, &slow)) != NULL);
    if (server == NULL)
        return check_report();
    port = gw_server_port(server);
    CHECK_INT(gw_server_route(server, "GET", "/health", h_health, NULL), 0);
    CHECK_INT(gw_server_route(server, "POST", "/echo", h_echo, NULL), 0);
    CHECK_INT(uv_async_init(&loop, &stop_async, on_stop_async), 0);
    CHECK_INT(pthread_create(&client, NULL, timeout_client_main, NULL), 0);
    CHECK_INT(uv_run(&loop, UV_RUN_DEFAULT), 0);
    CHECK_INT(pthread_join(client, NULL), 0);
    CHECK_INT(gw_server_connections(server), 0);
    gw_server_dispose(server);
    CHECK_INT(uv_loop_close(&loop), 0);

    CHECK_INT(uv_loop_init(&loop), 0);
    gw_server_opts_t capped = {"127.0.0.1", 0, 0, 0, 4};
    CHECK((server = gw_server_create(&loop, &capped)) != NULL);
    if (server == NULL)
        return check_report();
    port = gw_server_port(server);
    CHECK_INT(gw_server_max_connections(server), 4);
    CHECK_INT(gw_server_route(server, "GET", "/health", h_health, NULL), 0);
    CHECK_INT(uv_async_init(&loop, &stop_async, on_stop_async), 0);
    CHECK_INT(pthread_create(&client, NULL, cap_client_main, NULL), 0);
    CHECK_INT(uv_run(&loop, UV_RUN_DEFAULT), 0);
    CHECK_INT(pthread_join(client, NULL), 0);
    CHECK_INT(gw_server_evicted(server), 1);
    CHECK_INT(gw_server_refused(server), 1);
    gw_server_dispose(server);
    CHECK_INT(uv_loop_close(&loop), 0);
    gw_log_dispose();
    return check_report();
}
