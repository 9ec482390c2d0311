#define _GNU_SOURCE /* memmem */
#include "check.h"
#include "reactor/fetch.h"
#include "reactor/log.h"
#include "reactor/proc.h"
#include <curl/curl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* --- a tiny HTTP/1.1 responder on the same loop (keep-alive, Content-Length bodies) --- */

typedef struct st_srv_t srv_t;

typedef struct st_srv_conn_t {
    uv_tcp_t tcp; /* first: close callback receives it */
    srv_t *srv;
    char *buf; /* unconsumed input */
    size_t len, alloc;
    bool in_body, stalled, closing;
    uint64_t body_left, body_total, hash;
    char *echo; /* first MiB of the body */
    size_t echo_len;
    char method[16], path[256], custom[256];
    struct st_srv_conn_t *prev, *next;
} srv_conn_t;

struct st_srv_t {
    uv_loop_t *loop;
    uv_tcp_t listener;
    int port;
    srv_conn_t *conns;
    int nconns, closed, stalls, requests;
    uint64_t sink_len, sink_hash;
};

typedef struct st_srv_write_t {
    uv_write_t w;
    srv_conn_t *c;
    bool close_after;
    char data[];
} srv_write_t;

#define ECHO_CAP (1u << 20)
#define BIG_LEN (1u << 20)

static uint64_t fnv(uint64_t h, const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)p[i]) * 1099511628211ull;
    return h;
}
#define FNV_INIT 14695981039346656037ull

static void on_conn_closed(uv_handle_t *h)
{
    srv_conn_t *c = (srv_conn_t *)h;
    if (c->prev)
        c->prev->next = c->next;
    else
        c->srv->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->srv->nconns--;
    c->srv->closed++;
    free(c->buf);
    free(c->echo);
    free(c);
}

static void conn_close(srv_conn_t *c)
{
    if (!uv_is_closing((uv_handle_t *)&c->tcp))
        uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
    c->closing = true;
}

static void on_written(uv_write_t *w, int status)
{
    srv_write_t *sw = (srv_write_t *)w;
    if (sw->close_after)
        conn_close(sw->c);
    free(sw);
}

static void conn_send(srv_conn_t *c, int status, const char *body, size_t blen, bool with_len)
{
    char head[256];
    int hl = snprintf(head, sizeof(head), "HTTP/1.1 %d X\r\nX-Test-Reply: yes-123\r\n", status);
    if (with_len)
        hl += snprintf(head + hl, sizeof(head) - hl, "Content-Length: %zu\r\n\r\n", blen);
    else
        hl += snprintf(head + hl, sizeof(head) - hl, "Connection: close\r\n\r\n");
    srv_write_t *sw = malloc(sizeof(*sw) + hl + blen);
    sw->c = c;
    sw->close_after = !with_len;
    memcpy(sw->data, head, hl);
    memcpy(sw->data + hl, body, blen);
    uv_buf_t b = uv_buf_init(sw->data, hl + blen);
    if (uv_write(&sw->w, (uv_stream_t *)&c->tcp, &b, 1, on_written) != 0) {
        free(sw);
        conn_close(c);
    }
    if (!with_len)
        c->closing = true;
}

static void conn_respond(srv_conn_t *c)
{
    char small[128];
    srv_t *s = c->srv;
    s->requests++;
    if (strcmp(c->path, "/hello") == 0) {
        conn_send(c, 200, "hello world", 11, true);
    } else if (strcmp(c->path, "/echo") == 0) {
        conn_send(c, 200, c->echo ? c->echo : "", c->echo_len, true);
    } else if (strcmp(c->path, "/custom") == 0) {
        conn_send(c, 200, c->custom, strlen(c->custom), true);
    } else if (strcmp(c->path, "/status500") == 0) {
        conn_send(c, 500, "boom", 4, true);
    } else if (strcmp(c->path, "/stall") == 0) {
        c->stalled = true;
        s->stalls++;
    } else if (strcmp(c->path, "/big") == 0 || strcmp(c->path, "/bignolen") == 0) {
        char *big = malloc(BIG_LEN);
        memset(big, 'a', BIG_LEN);
        conn_send(c, 200, big, BIG_LEN, strcmp(c->path, "/big") == 0);
        free(big);
    } else if (strcmp(c->path, "/sink") == 0) {
        s->sink_len = c->body_total;
        s->sink_hash = c->hash;
        int n = snprintf(small, sizeof(small), "%llu", (unsigned long long)c->body_total);
        conn_send(c, 200, small, n, true);
    } else if (strncmp(c->path, "/id/", 4) == 0) {
        conn_send(c, 200, c->path + 4, strlen(c->path + 4), true);
    } else {
        conn_send(c, 404, "nope", 4, true);
    }
    free(c->echo);
    c->echo = NULL;
    c->echo_len = 0;
}

static void parse_head(srv_conn_t *c, char *head, size_t n)
{
    head[n] = '\0';
    c->method[0] = c->path[0] = c->custom[0] = '\0';
    sscanf(head, "%15s %255s", c->method, c->path);
    c->body_left = 0;
    for (char *line = strstr(head, "\r\n"); line != NULL; line = strstr(line, "\r\n")) {
        line += 2;
        if (strncasecmp(line, "Content-Length:", 15) == 0)
            c->body_left = strtoull(line + 15, NULL, 10);
        else if (strncasecmp(line, "X-Custom:", 9) == 0)
            sscanf(line + 9, " %255[^\r\n]", c->custom);
    }
    c->body_total = c->body_left;
    c->hash = FNV_INIT;
    c->in_body = true;
}

static void conn_body(srv_conn_t *c, const char *p, size_t take)
{
    c->hash = fnv(c->hash, p, take);
    if (c->echo_len + take <= ECHO_CAP) {
        c->echo = realloc(c->echo, c->echo_len + take + 1);
        memcpy(c->echo + c->echo_len, p, take);
        c->echo_len += take;
    }
    c->body_left -= take;
}

static void conn_feed(srv_conn_t *c, const char *p, size_t n)
{
    if (c->len + n + 1 > c->alloc) {
        c->alloc = c->len + n + 1;
        c->buf = realloc(c->buf, c->alloc);
    }
    memcpy(c->buf + c->len, p, n);
    c->len += n;
    size_t off = 0;
    while (!c->stalled && !c->closing) {
        if (c->in_body) {
            size_t take = c->len - off < c->body_left ? c->len - off : c->body_left;
            conn_body(c, c->buf + off, take);
            off += take;
            if (c->body_left > 0)
                break;
            c->in_body = false;
            conn_respond(c);
            continue;
        }
        char *end = memmem(c->buf + off, c->len - off, "\r\n\r\n", 4);
        if (end == NULL)
            break;
        parse_head(c, c->buf + off, end + 2 - (c->buf + off));
        off = end + 4 - c->buf;
    }
    memmove(c->buf, c->buf + off, c->len - off);
    c->len -= off;
}

static void on_srv_alloc(uv_handle_t *h, size_t sugg, uv_buf_t *b)
{
    static char rb[65536];
    *b = uv_buf_init(rb, sizeof(rb));
}

static void on_srv_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b)
{
    srv_conn_t *c = (srv_conn_t *)st;
    if (n < 0)
        conn_close(c);
    else if (n > 0 && !c->closing)
        conn_feed(c, b->base, (size_t)n);
}

static void on_accept(uv_stream_t *l, int status)
{
    srv_t *s = l->data;
    srv_conn_t *c = calloc(1, sizeof(*c));
    c->srv = s;
    uv_tcp_init(s->loop, &c->tcp);
    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
    s->nconns++;
    if (status != 0 || uv_accept(l, (uv_stream_t *)&c->tcp) != 0 ||
        uv_read_start((uv_stream_t *)&c->tcp, on_srv_alloc, on_srv_read) != 0)
        conn_close(c);
}

static void srv_start(srv_t *s, uv_loop_t *loop)
{
    struct sockaddr_in a;
    struct sockaddr_storage bound;
    int blen = sizeof(bound);
    memset(s, 0, sizeof(*s));
    s->loop = loop;
    uv_ip4_addr("127.0.0.1", 0, &a);
    CHECK_INT(uv_tcp_init(loop, &s->listener), 0);
    s->listener.data = s;
    CHECK_INT(uv_tcp_bind(&s->listener, (struct sockaddr *)&a, 0), 0);
    CHECK_INT(uv_listen((uv_stream_t *)&s->listener, 1024, on_accept), 0);
    CHECK_INT(uv_tcp_getsockname(&s->listener, (struct sockaddr *)&bound, &blen), 0);
    s->port = ntohs(((struct sockaddr_in *)&bound)->sin_port);
}

static void srv_stop(srv_t *s)
{
    for (srv_conn_t *c = s->conns; c != NULL; c = c->next)
        conn_close(c);
    uv_close((uv_handle_t *)&s->listener, NULL);
}

/* --- helpers --- */

static uv_loop_t loop;
static srv_t srv;
static gw_fetcher_t *fetcher;

typedef struct st_result_t {
    int calls;
    int code;
    long status;
    char *body;
    size_t len;
    char reply_hdr[64];
    bool reply_hdr_ok;
    double elapsed;
} result_t;

static void on_done(gw_fetch_t *req, void *data)
{
    result_t *r = data;
    size_t len;
    const char *body = gw_fetch_data(req, &len);
    const char *h = gw_fetch_resp_header(req, "x-TEST-reply");
    r->calls++;
    r->code = gw_fetch_curlcode(req);
    r->status = gw_fetch_status(req);
    r->body = malloc(len + 1);
    memcpy(r->body, body, len + 1);
    r->len = len;
    r->reply_hdr_ok = h != NULL;
    snprintf(r->reply_hdr, sizeof(r->reply_hdr), "%s", h ? h : "");
    r->elapsed = gw_fetch_elapsed_ms(req);
    if (r->code != CURLE_OK)
        CHECK(gw_fetch_error(req)[0] != '\0');
    else
        CHECK_STR(gw_fetch_error(req), "");
    CHECK(body[len] == '\0');
    gw_fetch_free(req);
}

static uv_timer_t ticker;

static void on_tick(uv_timer_t *t)
{
}

/* UV_RUN_ONCE blocks in poll even when a timer callback already did the work: the ticker bounds that wait. */
static void run_until(const int *counter, int target)
{
    uv_timer_start(&ticker, on_tick, 5, 5);
    while (*counter < target)
        uv_run(&loop, UV_RUN_ONCE);
    uv_timer_stop(&ticker);
}

static char *url(const char *path)
{
    static char u[256];
    snprintf(u, sizeof(u), "http://127.0.0.1:%d%s", srv.port, path);
    return u;
}

static gw_fetch_t *start(const char *method, const char *path, result_t *r)
{
    gw_fetch_t *req = gw_fetch_new(fetcher, method, url(path));
    gw_fetch_timeout(req, 10000, 2000);
    return req;
}

static void go(gw_fetch_t *req, result_t *r)
{
    int calls = r->calls;
    CHECK_INT(gw_fetch_start(req, on_done, r), 0);
    CHECK_INT(r->calls, calls); /* never synchronous */
    run_until(&r->calls, calls + 1);
}

/* --- tests --- */

static void test_get(void)
{
    result_t r = {0};
    go(start("GET", "/hello", &r), &r);
    CHECK_INT(r.code, CURLE_OK);
    CHECK_INT(r.status, 200);
    CHECK_STR(r.body, "hello world");
    CHECK_INT(r.len, 11);
    CHECK(r.reply_hdr_ok);
    CHECK_STR(r.reply_hdr, "yes-123");
    CHECK(r.elapsed > 0);
    free(r.body);
}

static void on_keep(gw_fetch_t *req, void *data)
{
    (*(int *)data)++;
}

static void test_header_lookup_absent(void)
{
    int calls = 0;
    gw_fetch_t *req = gw_fetch_new(fetcher, "GET", url("/hello"));
    CHECK_INT(gw_fetch_start(req, on_keep, &calls), 0);
    run_until(&calls, 1);
    /* results stay valid after the callback until free */
    CHECK(gw_fetch_resp_header(req, "X-Missing") == NULL);
    CHECK_STR(gw_fetch_resp_header(req, "content-length"), "11");
    CHECK_STR(gw_fetch_data(req, NULL), "hello world");
    gw_fetch_free(req);
}

static void test_post_echo(void)
{
    result_t r = {0};
    static const char body[] = "{\"a\":1}\0binary\xff";
    gw_fetch_t *req = start("POST", "/echo", &r);
    gw_fetch_header(req, "Content-Type", "application/json");
    gw_fetch_body(req, body, sizeof(body) - 1);
    go(req, &r);
    CHECK_INT(r.status, 200);
    CHECK_INT(r.len, sizeof(body) - 1);
    CHECK(r.len == sizeof(body) - 1 && memcmp(r.body, body, r.len) == 0);
    free(r.body);

    /* PUT through CUSTOMREQUEST keeps the body too */
    result_t r2 = {0};
    req = start("PUT", "/echo", &r2);
    gw_fetch_body(req, "put-body", 8);
    go(req, &r2);
    CHECK_STR(r2.body, "put-body");
    free(r2.body);
}

static void test_custom_header(void)
{
    result_t r = {0};
    gw_fetch_t *req = start("GET", "/custom", &r);
    gw_fetch_header(req, "X-Custom", "abc 123");
    go(req, &r);
    CHECK_INT(r.status, 200);
    CHECK_STR(r.body, "abc 123");
    free(r.body);

    /* header injection is refused at start */
    req = start("GET", "/custom", &r);
    gw_fetch_header(req, "X-Custom", "a\r\nX-Evil: 1");
    CHECK(gw_fetch_start(req, on_done, &r) < 0);
    gw_fetch_cancel(req);
}

static void test_500(void)
{
    result_t r = {0};
    go(start("GET", "/status500", &r), &r);
    CHECK_INT(r.code, CURLE_OK);
    CHECK_INT(r.status, 500);
    CHECK_STR(r.body, "boom");
    free(r.body);
}

static void test_refused(void)
{
    /* A port that was free a moment ago. */
    uv_tcp_t t;
    struct sockaddr_in a;
    struct sockaddr_storage bound;
    int blen = sizeof(bound);
    uv_ip4_addr("127.0.0.1", 0, &a);
    uv_tcp_init(&loop, &t);
    uv_tcp_bind(&t, (struct sockaddr *)&a, 0);
    uv_tcp_getsockname(&t, (struct sockaddr *)&bound, &blen);
    int port = ntohs(((struct sockaddr_in *)&bound)->sin_port);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(&loop, UV_RUN_NOWAIT);

    char u[64];
    snprintf(u, sizeof(u), "http://127.0.0.1:%d/", port);
    result_t r = {0};
    gw_fetch_t *req = gw_fetch_new(fetcher, "GET", u);
    go(req, &r);
    CHECK_INT(r.code, CURLE_COULDNT_CONNECT);
    CHECK_INT(r.status, 0);
    CHECK_INT(r.len, 0);
    free(r.body);

    /* a non-http scheme is refused by curl, reported through the callback */
    result_t r2 = {0};
    req = gw_fetch_new(fetcher, "GET", "file:///etc/passwd");
    go(req, &r2);
    CHECK_INT(r2.code, CURLE_UNSUPPORTED_PROTOCOL);
    free(r2.body);
}

static void test_timeout(void)
{
    result_t r = {0};
    gw_fetch_t *req = gw_fetch_new(fetcher, "GET", url("/stall"));
    gw_fetch_timeout(req, 300, 1000);
    go(req, &r);
    CHECK_INT(r.code, CURLE_OPERATION_TIMEDOUT);
    CHECK(r.elapsed >= 250 && r.elapsed < 2000);
    free(r.body);
}

static void test_max_response(void)
{
    const char *paths[] = {"/big", "/bignolen"};
    for (int i = 0; i < 2; i++) {
        result_t r = {0};
        gw_fetch_t *req = start("GET", paths[i], &r);
        gw_fetch_max_response(req, 64 * 1024);
        go(req, &r);
        CHECK_INT(r.code, CURLE_FILESIZE_EXCEEDED);
        CHECK(r.len <= 64 * 1024);
        free(r.body);

        result_t ok = {0};
        go(start("GET", paths[i], &ok), &ok);
        CHECK_INT(ok.code, CURLE_OK);
        CHECK_INT(ok.len, BIG_LEN);
        free(ok.body);
    }
}

static void test_file_body(void)
{
    const size_t total = 5u * 1024 * 1024 + 123;
    const uint64_t off = 1000, len = total - 3000;
    char path[] = "/tmp/gw_fetch_test_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    char *data = malloc(total);
    for (size_t i = 0; i < total; i++)
        data[i] = (char)(i * 31 + (i >> 12));
    CHECK(write(fd, data, total) == (ssize_t)total);
    close(fd);

    result_t r = {0};
    gw_fetch_t *req = start("POST", "/sink", &r);
    gw_fetch_header(req, "Content-Type", "application/octet-stream");
    CHECK(gw_fetch_body_file(req, path, total, 1) == -EINVAL);
    CHECK(gw_fetch_body_file(req, "/nonexistent/file", 0, 1) == -ENOENT);
    CHECK_INT(gw_fetch_body_file(req, path, off, len), 0);
    go(req, &r);
    CHECK_INT(r.code, CURLE_OK);
    CHECK_INT(r.status, 200);
    CHECK_INT(srv.sink_len, len);
    CHECK(srv.sink_hash == fnv(FNV_INIT, data + off, len));
    char want[32];
    snprintf(want, sizeof(want), "%llu", (unsigned long long)len);
    CHECK_STR(r.body, want);
    free(r.body);

    /* PUT with a file body, whole file */
    result_t r2 = {0};
    req = start("PUT", "/sink", &r2);
    CHECK_INT(gw_fetch_body_file(req, path, 0, total), 0);
    go(req, &r2);
    CHECK_INT(srv.sink_len, total);
    CHECK(srv.sink_hash == fnv(FNV_INIT, data, total));
    free(r2.body);

    unlink(path);
    free(data);
}

static void test_cancel(void)
{
    result_t r = {0};
    int stalls = srv.stalls, closed = srv.closed;
    gw_fetch_t *req = start("GET", "/stall", &r);
    CHECK_INT(gw_fetch_start(req, on_done, &r), 0);
    CHECK_INT(gw_fetcher_active(fetcher), 1);
    run_until(&srv.stalls, stalls + 1); /* the server has the request: truly in flight */
    gw_fetch_cancel(req);
    CHECK_INT(gw_fetcher_active(fetcher), 0);
    /* curl closes the half-done connection: the server sees it go */
    run_until(&srv.closed, closed + 1);
    for (int i = 0; i < 5; i++)
        uv_run(&loop, UV_RUN_NOWAIT);
    CHECK_INT(r.calls, 0);

    /* cancel before start, and cancel right after start */
    gw_fetch_cancel(gw_fetch_new(fetcher, "GET", url("/hello")));
    req = start("GET", "/hello", &r);
    CHECK_INT(gw_fetch_start(req, on_done, &r), 0);
    gw_fetch_cancel(req);
    for (int i = 0; i < 5; i++)
        uv_run(&loop, UV_RUN_NOWAIT);
    CHECK_INT(r.calls, 0);
}

static int many_done, many_ok;

static void on_many(gw_fetch_t *req, void *data)
{
    char want[16];
    snprintf(want, sizeof(want), "%d", (int)(intptr_t)data);
    many_done++;
    if (gw_fetch_curlcode(req) == CURLE_OK && gw_fetch_status(req) == 200 && strcmp(gw_fetch_data(req, NULL), want) == 0)
        many_ok++;
    gw_fetch_free(req);
}

static void test_many(void)
{
    enum { N = 200 };
    for (int i = 0; i < N; i++) {
        char p[32];
        snprintf(p, sizeof(p), "/id/%d", i);
        gw_fetch_t *req = gw_fetch_new(fetcher, "GET", url(p));
        gw_fetch_timeout(req, 20000, 5000);
        CHECK_INT(gw_fetch_start(req, on_many, (void *)(intptr_t)i), 0);
    }
    CHECK_INT(gw_fetcher_active(fetcher), N);
    run_until(&many_done, N);
    CHECK_INT(many_ok, N);
    CHECK_INT(gw_fetcher_active(fetcher), 0);
}

static int proc_done;
static char proc_out[8192];

static void on_ls(gw_proc_t *p, const gw_proc_result_t *r, void *data)
{
    proc_done++;
    snprintf(proc_out, sizeof(proc_out), "%s", r->out);
}

/* Sockets in an `ls -l /proc/self/fd` listing other than stdout/stderr (libuv makes those from a socketpair). */
static int leaked_sockets(const char *listing)
{
    int n = 0;
    for (const char *p = strstr(listing, " -> socket:"); p != NULL; p = strstr(p + 1, " -> socket:")) {
        const char *b = p;
        while (b > listing && b[-1] != ' ')
            b--;
        int fd = atoi(b);
        n += fd > 2;
    }
    return n;
}

/* A child spawned while transfers are open must not inherit curl's sockets. */
static void test_cloexec(void)
{
    result_t r = {0};
    int stalls = srv.stalls;
    gw_fetch_t *req = start("GET", "/stall", &r);
    CHECK_INT(gw_fetch_start(req, on_done, &r), 0);
    run_until(&srv.stalls, stalls + 1);
    const char *argv[] = {"ls", "-l", "/proc/self/fd/", NULL};
    gw_proc_opts_t o = {.argv = argv};
    CHECK(gw_proc_spawn(&loop, &o, on_ls, NULL) != NULL);
    run_until(&proc_done, 1);
    CHECK_INT(leaked_sockets(proc_out), 0);
    CHECK(strstr(proc_out, "0 -> ") != NULL);
    gw_fetch_cancel(req);
}

static int close_calls;

static void on_close_cb(gw_fetch_t *req, void *data)
{
    close_calls++;
}

static void test_close_in_flight(void)
{
    gw_fetcher_t *f = gw_fetcher_create(&loop, 4);
    int stalls = srv.stalls;
    for (int i = 0; i < 10; i++) {
        gw_fetch_t *req = gw_fetch_new(f, "GET", url("/stall"));
        CHECK_INT(gw_fetch_start(req, on_close_cb, NULL), 0);
    }
    run_until(&srv.stalls, stalls + 10);
    for (int i = 0; i < 3; i++) /* started, not yet connected */
        CHECK_INT(gw_fetch_start(gw_fetch_new(f, "GET", url("/hello")), on_close_cb, NULL), 0);
    gw_fetch_new(f, "POST", url("/echo")); /* never started */
    CHECK_INT(gw_fetcher_active(f), 13);
    gw_fetcher_close(f);
    for (int i = 0; i < 10; i++)
        uv_run(&loop, UV_RUN_NOWAIT);
    CHECK_INT(close_calls, 0);
}

static int inside_calls;

static void on_close_inside(gw_fetch_t *req, void *data)
{
    inside_calls++;
    gw_fetch_free(req);
    gw_fetcher_close(data);
}

/* Closing from inside a callback: the other finished/in-flight transfer gets no callback. */
static void test_close_inside_callback(void)
{
    gw_fetcher_t *f = gw_fetcher_create(&loop, 0);
    for (int i = 0; i < 2; i++)
        CHECK_INT(gw_fetch_start(gw_fetch_new(f, "GET", url("/hello")), on_close_inside, f), 0);
    run_until(&inside_calls, 1);
    for (int i = 0; i < 10; i++)
        uv_run(&loop, UV_RUN_NOWAIT);
    CHECK_INT(inside_calls, 1);
}

int main(void)
{
    alarm(100);
    gw_log_init(GW_LOG_ERROR, false);
    CHECK_INT(uv_loop_init(&loop), 0);
    CHECK_INT(uv_timer_init(&loop, &ticker), 0);
    srv_start(&srv, &loop);
    fetcher = gw_fetcher_create(&loop, 0);

    test_get();
    test_header_lookup_absent();
    test_post_echo();
    test_custom_header();
    test_500();
    test_refused();
    test_timeout();
    test_max_response();
    test_file_body();
    test_cancel();
    test_many();
    test_cloexec();
    test_close_in_flight();
    test_close_inside_callback();

    gw_fetcher_close(fetcher);
    srv_stop(&srv);
    uv_close((uv_handle_t *)&ticker, NULL);
    CHECK_INT(uv_run(&loop, UV_RUN_DEFAULT), 0);
    CHECK_INT(gw_proc_active(), 0);
    CHECK_INT(uv_loop_close(&loop), 0);
    gw_log_dispose();
    return check_report();
}
