#include "reactor/server.h"
#include "reactor/http_text.h"
#include "reactor/router.h"
#include "reactor/log.h"
#include <ctype.h>
#include <errno.h>
#include <h2o.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define GW_SERVER_BACKLOG 4096
#define GW_SERVER_DEFAULT_MAX_BODY (64 * 1024)
#define GW_SERVER_DEFAULT_IO_TIMEOUT_MS 10000
#define GW_SERVER_NAME "glint-worker"
#define GW_DRAIN_ROUNDS 2000 /* x 1 ms: how long dispose waits for connections to finish writing */
#define GW_JSON "application/json"

/* One accepted socket. The uv_tcp_t comes first: h2o's close callback hands us the uv handle. */
typedef struct st_gw_conn_t {
    uv_tcp_t tcp;
    gw_server_t *server;
    h2o_linklist_t link; /* in server->conns, oldest first; zeroed by calloc as h2o requires */
    h2o_socket_t *sock;
    bool evicting; /* shut down to make room; closes on its next read */
} gw_conn_t;

typedef struct st_gw_handler_t {
    h2o_handler_t super;
    gw_server_t *server;
} gw_handler_t;

typedef struct st_gw_filter_t {
    h2o_filter_t super;
    gw_server_t *server;
} gw_filter_t;

typedef struct st_gw_error_ostream_t {
    h2o_ostream_t super;
    gw_server_t *server;
} gw_error_ostream_t;

struct st_gw_server_t {
    uv_loop_t *loop;
    uv_tcp_t listener;
    h2o_globalconf_t config;
    h2o_context_t ctx;
    h2o_accept_ctx_t accept_ctx;
    gw_router_t router;
    h2o_linklist_t conns;
    size_t nconns;
    size_t max_conns, nevicting; /* HTTP connection cap; connections shut down and not closed yet */
    uint64_t refused, evicted;
    h2o_linklist_t held; /* gw_http_req_t handed to route callbacks, not answered yet */
    size_t nheld;
    size_t max_body;
    int port;
    bool listening; /* listener handle not closed yet */
    bool stopping;
    bool in_respond; /* our own response is starting: the error filter leaves it alone */
};

typedef struct st_gw_pair_t {
    const char *name;
    const char *value;
} gw_pair_t;

struct st_gw_http_req_t {
    gw_server_t *server;
    h2o_req_t *req;      /* NULL once h2o disposed the request (or the server was disposed) */
    gw_http_req_t **ref; /* chunk in req->pool pointing back at us; its dispose detaches us */
    h2o_linklist_t held;
    const char *method;
    const char *path;
    const char *body;
    size_t body_len;
    const char **params;
    size_t nparams;
    gw_pair_t *query;
    size_t nquery;
    gw_pair_t *headers;
    size_t nheaders;
    /* the arrays and strings above live in the same allocation, after this struct */
};

/* Result of routing one request path. */
typedef struct st_gw_match_t {
    gw_route_match_t r;
    size_t path_len; /* raw path without query */
} gw_match_t;

static h2o_generator_t gw_generator = {NULL, NULL}; /* whole body in one final h2o_send: nothing to proceed or stop */

/* ---- small helpers ---- */

static void *gw_calloc(size_t n, size_t sz)
{
    void *p = calloc(n, sz);
    if (p == NULL)
        abort();
    return p;
}

static void add_no_store(h2o_req_t *req)
{
    if (h2o_find_header(&req->res.headers, H2O_TOKEN_CACHE_CONTROL, -1) == -1)
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL, H2O_STRLIT("no-store"));
}

/* The single place our responses start: always Content-Length framed (h2o chunks when content_length is unknown). */
static void send_response(gw_server_t *s, h2o_req_t *req, int status, const char *content_type, h2o_iovec_t body)
{
    if (status < 200 || status > 599) {
        gw_warn("http: handler answered status %d, sending 500", status);
        status = 500;
    }
    bool bodyless = status == 204 || status == 304;
    req->res.status = status;
    req->res.reason = gw_http_reason_phrase(status);
    req->res.content_length = bodyless ? SIZE_MAX : body.len;
    if (content_type != NULL && !gw_http_value_allowed(content_type)) {
        gw_warn("http: dropping a Content-Type with control characters");
        content_type = NULL;
    }
    if (content_type != NULL && !bodyless) {
        h2o_iovec_t ct = h2o_strdup(&req->pool, content_type, SIZE_MAX);
        h2o_set_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, ct.base, ct.len, 1);
        if (gw_http_is_json(content_type))
            add_no_store(req);
    }
    if (s->stopping)
        req->http1_is_persistent = 0;

    s->in_respond = true;
    h2o_start_response(req, &gw_generator);
    s->in_respond = false;
    if (bodyless || h2o_memis(req->input.method.base, req->input.method.len, H2O_STRLIT("HEAD")))
        h2o_send(req, NULL, 0, H2O_SEND_STATE_FINAL);
    else
        h2o_send(req, &body, 1, H2O_SEND_STATE_FINAL);
}

static void send_error(gw_server_t *s, h2o_req_t *req, int status, const char *message)
{
    send_response(s, req, status, GW_JSON,
                  gw_http_json_error(&req->pool, gw_http_error_code_for(status), message, strlen(message)));
}

/* Unlinks r from its h2o request and returns that request (NULL if already gone). */
static h2o_req_t *detach(gw_http_req_t *r)
{
    h2o_req_t *req = r->req;
    if (req == NULL)
        return NULL;
    *r->ref = NULL;
    r->ref = NULL;
    r->req = NULL;
    h2o_linklist_unlink(&r->held);
    r->server->nheld--;
    return req;
}

/* h2o is clearing the request's pool (client gone, connection closed): later responds become no-ops. */
static void on_req_pool_dispose(void *p)
{
    gw_http_req_t *r = *(gw_http_req_t **)p;
    if (r != NULL)
        detach(r);
}

void gw_http_respond(gw_http_req_t *r, int status, const char *content_type, const char *body, size_t len)
{
    gw_server_t *s = r->server;
    h2o_req_t *req = detach(r);
    if (req != NULL) {
        /* copied before r (which body may point into) is freed and before the asynchronous write */
        h2o_iovec_t buf = body != NULL ? h2o_strdup(&req->pool, body, len) : h2o_iovec_init("", 0);
        send_response(s, req, status, content_type, buf);
    }
    free(r);
}

void gw_http_respond_json(gw_http_req_t *r, int status, const char *json_text)
{
    gw_http_respond(r, status, GW_JSON, json_text, json_text != NULL ? strlen(json_text) : 0);
}

void gw_http_respond_error(gw_http_req_t *r, int status, const char *code, const char *message)
{
    gw_server_t *s = r->server;
    h2o_req_t *req = detach(r);
    if (req != NULL) {
        if (code == NULL)
            code = gw_http_error_code_for(status);
        if (message == NULL)
            message = gw_http_reason_phrase(status);
        send_response(s, req, status, GW_JSON, gw_http_json_error(&req->pool, code, message, strlen(message)));
    }
    free(r);
}

void gw_http_add_header(gw_http_req_t *r, const char *name, const char *value)
{
    h2o_req_t *req = r->req;
    if (req == NULL)
        return;
    if (!gw_http_header_allowed(name, value)) {
        gw_warn("http: refusing a response header with a framing name or control characters");
        return;
    }
    size_t name_len = strlen(name);
    /* lower-case so that h2o recognises its tokens (Cache-Control, Content-Type, ...) */
    char *lc = h2o_mem_alloc_pool(&req->pool, name_len + 1);
    for (size_t i = 0; i <= name_len; i++)
        lc[i] = (char)tolower((unsigned char)name[i]);
    h2o_iovec_t v = h2o_strdup(&req->pool, value, SIZE_MAX);
    h2o_add_header_by_str(&req->pool, &req->res.headers, lc, name_len, 1, name, v.base, v.len);
}

/* ---- h2o's own errors (413 before the handler runs, broken chunked encoding, 417, ...) as JSON ---- */

static void error_ostream_send(h2o_ostream_t *self, h2o_req_t *req, h2o_iovec_t *bufs, size_t bufcnt, h2o_send_state_t state)
{
    gw_server_t *s = ((gw_error_ostream_t *)self)->server;
    char msg[160];
    size_t msg_len = 0;

    /* h2o_send_error_generic sends its text in one final call; anything else passes through untouched */
    if (h2o_send_state_is_in_progress(state)) {
        h2o_ostream_send_next(self, req, bufs, bufcnt, state);
        return;
    }
    if (req->res.status == 413) {
        int n = snprintf(msg, sizeof(msg), "request body exceeds %zu bytes", s->max_body);
        msg_len = n < 0 ? 0 : (size_t)n < sizeof(msg) ? (size_t)n : sizeof(msg) - 1;
    } else {
        for (size_t i = 0; i < bufcnt && msg_len < sizeof(msg); i++) {
            size_t n = bufs[i].len < sizeof(msg) - msg_len ? bufs[i].len : sizeof(msg) - msg_len;
            memcpy(msg + msg_len, bufs[i].base, n);
            msg_len += n;
        }
        if (msg_len == 0) {
            int n = snprintf(msg, sizeof(msg), "%s", req->res.reason);
            msg_len = n < 0 ? 0 : (size_t)n < sizeof(msg) ? (size_t)n : sizeof(msg) - 1;
        }
    }
    h2o_iovec_t body = gw_http_json_error(&req->pool, gw_http_error_code_for(req->res.status), msg, msg_len);
    h2o_set_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, H2O_STRLIT(GW_JSON), 1);
    add_no_store(req);
    req->res.content_length = body.len; /* headers are flattened downstream, after this */
    h2o_ostream_send_next(self, req, &body, bufcnt != 0 ? 1 : 0, state);
}

static void on_setup_ostream(h2o_filter_t *self, h2o_req_t *req, h2o_ostream_t **slot)
{
    gw_server_t *s = ((gw_filter_t *)self)->server;
    if (!s->in_respond && req->res.status >= 400) {
        gw_error_ostream_t *os = (gw_error_ostream_t *)h2o_add_ostream(req, sizeof(*os), slot);
        os->super.do_send = error_ostream_send;
        os->server = s;
        slot = &os->super.next;
    }
    h2o_setup_next_ostream(req, slot);
}

/* ---- routing ---- */

static void route_request(gw_server_t *s, h2o_req_t *req, gw_match_t *m)
{
    m->path_len = req->query_at != SIZE_MAX ? req->query_at : req->path.len;
    char *buf = h2o_mem_alloc_pool(&req->pool, m->path_len + 1);
    gw_router_match(&s->router, req->method.base, req->method.len, req->path.base, m->path_len, buf, &m->r);
}

static void add_allow_header(gw_server_t *s, h2o_req_t *req, const gw_match_t *m)
{
    size_t cap = gw_router_allow_cap(&s->router);
    char *buf = h2o_mem_alloc_pool(&req->pool, cap);
    size_t len = gw_router_allow(&s->router, &m->r, buf, cap);
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ALLOW, NULL, buf, len);
}

/* ---- request snapshot ---- */

static const char *put(char **p, const char *s, size_t len)
{
    char *dst = *p;
    if (len != 0)
        memcpy(dst, s, len);
    dst[len] = '\0';
    *p += len + 1;
    return dst;
}

/* Decodes "a=1&b&c=x+y" into r->query; false on a malformed escape. */
static bool parse_query(gw_http_req_t *r, char **p, const char *q, size_t len)
{
    size_t i = 0;
    for (;;) {
        const char *amp = memchr(q + i, '&', len - i);
        size_t end = amp != NULL ? (size_t)(amp - q) : len;
        if (end > i) {
            const char *eq = memchr(q + i, '=', end - i);
            size_t name_len = eq != NULL ? (size_t)(eq - (q + i)) : end - i;
            const char *v = eq != NULL ? eq + 1 : q + end;
            char *name = *p, *value;
            ssize_t n = gw_pct_decode(name, q + i, name_len, true);
            if (n < 0)
                return false;
            value = name + n + 1;
            if ((n = gw_pct_decode(value, v, (size_t)(q + end - v), true)) < 0)
                return false;
            *p = value + n + 1;
            r->query[r->nquery++] = (gw_pair_t){name, value};
        }
        if (amp == NULL)
            return true;
        i = end + 1;
    }
}

/* Allocates r with room for every array and string snapshot() copies (decoding never grows a string). */
static gw_http_req_t *snapshot_alloc(const h2o_req_t *req, const gw_match_t *m, const char **q, size_t *qlen)
{
    size_t npairs = 0, nhdr = req->headers.size + 1;
    size_t strings = req->method.len + m->path_len + req->entity.len + 3 + sizeof("host") + req->authority.len + 1;

    *q = NULL;
    *qlen = 0;
    if (req->query_at != SIZE_MAX) {
        *q = req->path.base + req->query_at + 1;
        *qlen = req->path.len - req->query_at - 1;
        npairs = 1;
        for (size_t i = 0; i < *qlen; i++)
            npairs += (*q)[i] == '&';
        strings += *qlen + 2 * npairs;
    }
    for (size_t i = 0; i < m->r.nsegs; i++)
        strings += strlen(m->r.segs[i]) + 1;
    for (size_t i = 0; i < req->headers.size; i++)
        strings += req->headers.entries[i].name->len + req->headers.entries[i].value.len + 2;

    size_t nparams = m->r.route->nparams;
    gw_http_req_t *r = gw_calloc(1, sizeof(*r) + nparams * sizeof(char *) + (npairs + nhdr) * sizeof(gw_pair_t) + strings);
    char *p = (char *)(r + 1);
    r->params = (const char **)p;
    r->query = (gw_pair_t *)(p + nparams * sizeof(char *));
    r->headers = r->query + npairs;
    return r;
}

/* Copies everything a handler may read into one allocation, so it outlives h2o's request if need be. */
static gw_http_req_t *snapshot(h2o_req_t *req, const gw_match_t *m)
{
    const char *q;
    size_t qlen;
    gw_http_req_t *r = snapshot_alloc(req, m, &q, &qlen);
    char *p = (char *)(r->headers + req->headers.size + 1);

    r->method = put(&p, req->method.base, req->method.len);
    r->path = put(&p, req->path.base, m->path_len);
    r->body_len = req->entity.base != NULL ? req->entity.len : 0;
    r->body = put(&p, req->entity.base, r->body_len);
    for (size_t i = 0; i < m->r.nsegs; i++)
        if (strcmp(m->r.route->segs[i], "*") == 0)
            r->params[r->nparams++] = put(&p, m->r.segs[i], strlen(m->r.segs[i]));
    for (size_t i = 0; i < req->headers.size; i++) {
        const h2o_header_t *h = &req->headers.entries[i];
        const char *name = put(&p, h->name->base, h->name->len); /* h2o lower-cases names */
        r->headers[r->nheaders++] = (gw_pair_t){name, put(&p, h->value.base, h->value.len)};
    }
    /* h2o moves Host out of the header list, and substitutes its host config's name when there was none */
    if (req->authority.len != 0 && (req->hostconf == NULL || req->authority.base != req->hostconf->authority.hostport.base))
        r->headers[r->nheaders++] = (gw_pair_t){put(&p, "host", 4), put(&p, req->authority.base, req->authority.len)};
    if (q != NULL && !parse_query(r, &p, q, qlen)) {
        free(r);
        return NULL;
    }
    return r;
}

static void hold(gw_server_t *s, gw_http_req_t *r, h2o_req_t *req)
{
    r->server = s;
    r->req = req;
    r->ref = h2o_mem_alloc_shared(&req->pool, sizeof(*r->ref), on_req_pool_dispose);
    *r->ref = r;
    h2o_linklist_insert(&s->held, &r->held);
    s->nheld++;
}

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    gw_server_t *s = ((gw_handler_t *)self)->server;
    gw_match_t m;
    gw_http_req_t *r;

    route_request(s, req, &m);
    switch (m.r.status) {
    case 0:
        break;
    case 400:
        send_error(s, req, 400, "malformed request path");
        return 0;
    case 405:
        add_allow_header(s, req, &m);
        send_error(s, req, 405, "method not allowed for this path");
        return 0;
    default:
        send_error(s, req, 404, "no such endpoint");
        return 0;
    }
    if (req->entity.len > s->max_body) { /* exactly max_body + 1 passes h2o's own check (see setup_h2o) */
        char msg[64];
        snprintf(msg, sizeof(msg), "request body exceeds %zu bytes", s->max_body);
        send_error(s, req, 413, msg);
        return 0;
    }
    if ((r = snapshot(req, &m)) == NULL) {
        send_error(s, req, 400, "malformed query string");
        return 0;
    }
    hold(s, r, req);
    m.r.route->cb(r, m.r.route->data); /* may respond (and free r) right here */
    return 0;
}

int gw_server_route(gw_server_t *s, const char *method, const char *pattern, gw_route_cb cb, void *data)
{
    return gw_router_add(&s->router, method, pattern, cb, data);
}

/* ---- connections ---- */

static void on_conn_closed(uv_handle_t *handle)
{
    gw_conn_t *c = (gw_conn_t *)handle; /* tcp is the first member */
    if (h2o_linklist_is_linked(&c->link)) {
        h2o_linklist_unlink(&c->link);
        c->server->nconns--;
        c->server->nevicting -= c->evicting;
    }
    free(c);
}

static void shutdown_read(gw_conn_t *c)
{
    uv_os_fd_t fd;
    if (uv_fileno((const uv_handle_t *)&c->tcp, &fd) != 0)
        return; /* already closing */
    /* an idle keep-alive reader sees EOF and h2o closes it; a busy one closes after its response */
    if (shutdown(fd, SHUT_RD) != 0 && errno != ENOTCONN)
        gw_debug("http: shutdown(SHUT_RD): %s", strerror(errno));
}

/* Idle: h2o waits for the next request and holds none of it (a request being read or answered is busy). */
static bool conn_idle(const gw_conn_t *c)
{
    return !c->evicting && c->sock != NULL && h2o_socket_is_reading(c->sock) &&
           (c->sock->input == NULL || c->sock->input->size == 0);
}

/* Makes room under the cap by shutting down the oldest idle connection; false when every connection is busy. */
static bool evict_idle(gw_server_t *s)
{
    for (h2o_linklist_t *node = s->conns.next; node != &s->conns; node = node->next) {
        gw_conn_t *c = H2O_STRUCT_FROM_MEMBER(gw_conn_t, link, node);
        if (!conn_idle(c))
            continue;
        shutdown_read(c); /* h2o reads EOF on the next loop turn and closes it */
        c->evicting = true;
        s->nevicting++;
        s->evicted++;
        return true;
    }
    return false;
}

static bool at_cap(const gw_server_t *s)
{
    return s->max_conns != 0 && s->nconns - s->nevicting >= s->max_conns;
}

static void on_connection(uv_stream_t *listener, int status)
{
    gw_server_t *s = H2O_STRUCT_FROM_MEMBER(gw_server_t, listener, (uv_tcp_t *)listener);
    int rc;

    if (status != 0) {
        gw_warn("http: accept: %s", uv_strerror(status));
        return;
    }
    gw_conn_t *c = gw_calloc(1, sizeof(*c));
    c->server = s;
    if ((rc = uv_tcp_init(s->loop, &c->tcp)) != 0) {
        gw_error("http: uv_tcp_init: %s", uv_strerror(rc));
        free(c);
        return;
    }
    if ((rc = uv_accept(listener, (uv_stream_t *)&c->tcp)) != 0) {
        gw_warn("http: uv_accept: %s", uv_strerror(rc));
        uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
        return;
    }
    if (at_cap(s) && !evict_idle(s)) { /* accepted only to leave the backlog: closed unanswered */
        if (s->refused++ % 1000 == 0)
            gw_warn("http: %zu connections, all busy: refusing new ones (%llu so far)", s->nconns, (unsigned long long)s->refused);
        uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
        return;
    }
    h2o_linklist_insert(&s->conns, &c->link);
    s->nconns++;
    if ((rc = uv_tcp_nodelay(&c->tcp, 1)) != 0) /* small responses on keep-alive: do not wait for Nagle */
        gw_debug("http: TCP_NODELAY: %s", uv_strerror(rc));
    c->sock = h2o_uv_socket_create((uv_stream_t *)&c->tcp, on_conn_closed);
    h2o_accept(&s->accept_ctx, c->sock);
}

/* ---- lifecycle ---- */

static int parse_addr(const char *host, int port, struct sockaddr_storage *ss)
{
    if (uv_ip4_addr(host, port, (struct sockaddr_in *)ss) == 0)
        return 0;
    if (uv_ip6_addr(host, port, (struct sockaddr_in6 *)ss) == 0)
        return 0;
    return -EINVAL;
}

/* bind + listen with plain syscalls first, so that a failure leaves no uv handle behind to close. */
static int listen_socket(const char *host, const struct sockaddr_storage *ss, int *port)
{
    socklen_t len = ss->ss_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
    struct sockaddr_storage bound;
    socklen_t bound_len = sizeof(bound);
    int one = 1, fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        bind(fd, (const struct sockaddr *)ss, len) != 0 || listen(fd, GW_SERVER_BACKLOG) != 0 ||
        getsockname(fd, (struct sockaddr *)&bound, &bound_len) != 0) {
        int err = errno;
        gw_error("http: cannot listen on %s:%d: %s", host, *port, strerror(err));
        if (fd >= 0)
            close(fd);
        return -err;
    }
    *port =
        ntohs(bound.ss_family == AF_INET ? ((struct sockaddr_in *)&bound)->sin_port : ((struct sockaddr_in6 *)&bound)->sin6_port);
    return fd;
}

typedef struct st_gw_unref_walk_t {
    void *queue;
    bool found;
} gw_unref_walk_t;

static void unref_queue_async(uv_handle_t *handle, void *arg)
{
    gw_unref_walk_t *w = arg;
    if ((void *)handle == w->queue && handle->type == UV_ASYNC) {
        uv_unref(handle);
        w->found = true;
    }
}

/* h2o's timers (armed up to io_timeout ahead even after their entries are gone) and its inter-thread queue's uv_async
 * would keep uv_run from returning after a shutdown. The zero timeout stays referenced: it only runs deferred work. */
static void unref_h2o_handles(gw_server_t *s)
{
    h2o_timeout_t *timeouts[] = {&s->ctx.one_sec_timeout,   &s->ctx.hundred_ms_timeout, &s->ctx.handshake_timeout,
                                 &s->ctx.http1.req_timeout, &s->ctx.http2.idle_timeout, &s->ctx.http2.graceful_shutdown_timeout,
                                 &s->ctx.proxy.io_timeout};
    for (size_t i = 0; i < sizeof(timeouts) / sizeof(timeouts[0]); i++)
        uv_unref((uv_handle_t *)&timeouts[i]->_backend.timer);

    /* the queue struct is private; in 2.2.5 its uv_async_t is the first member */
    gw_unref_walk_t w = {s->ctx.queue, false};
    uv_walk(s->loop, unref_queue_async, &w);
    if (!w.found)
        gw_warn("http: h2o's queue handle not found; the loop will need uv_stop to end");
}

static void setup_h2o(gw_server_t *s, uint64_t io_timeout_ms)
{
    h2o_config_init(&s->config);
    s->config.server_name = h2o_iovec_init(H2O_STRLIT(GW_SERVER_NAME)); /* NUL-terminated: h2o prints it with %s */
    /* h2o answers 413 itself for Content-Length > limit but for chunked bodies >= limit; with max_body + 1 both agree
     * and a body of exactly max_body + 1 reaches on_req, which answers 413 too */
    s->config.max_request_entity_size = s->max_body + 1;
    s->config.http1.req_timeout = io_timeout_ms;
    s->config.http1.upgrade_to_http2 = 0;

    h2o_hostconf_t *host = h2o_config_register_host(&s->config, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    /* everything goes to the fallback path: no h2o prefix matching on the normalised path */
    gw_handler_t *handler = (gw_handler_t *)h2o_create_handler(&host->fallback_path, sizeof(*handler));
    handler->super.on_req = on_req;
    handler->server = s;
    gw_filter_t *filter = (gw_filter_t *)h2o_create_filter(&host->fallback_path, sizeof(*filter));
    filter->super.on_setup_ostream = on_setup_ostream;
    filter->server = s;

    h2o_context_init(&s->ctx, s->loop, &s->config);
    unref_h2o_handles(s);
    s->accept_ctx.ctx = &s->ctx;
    s->accept_ctx.hosts = s->config.hosts;
}

static void on_listener_closed(uv_handle_t *handle)
{
    gw_server_t *s = H2O_STRUCT_FROM_MEMBER(gw_server_t, listener, (uv_tcp_t *)handle);
    s->listening = false;
}

static void on_failed_listener_closed(uv_handle_t *handle)
{
    free(H2O_STRUCT_FROM_MEMBER(gw_server_t, listener, (uv_tcp_t *)handle));
}

gw_server_t *gw_server_create(uv_loop_t *loop, const gw_server_opts_t *opts)
{
    static const gw_server_opts_t none = {NULL, 0, 0, 0, 0};
    const gw_server_opts_t *o = opts != NULL ? opts : &none;
    const char *host = o->host != NULL ? o->host : "0.0.0.0";
    int port = o->port, fd, rc;
    struct sockaddr_storage ss;

    memset(&ss, 0, sizeof(ss));
    if (port < 0 || port > 65535 || parse_addr(host, port, &ss) != 0) {
        gw_error("http: invalid listen address %s:%d (numeric IPv4/IPv6 expected)", host, port);
        return NULL;
    }
    if ((fd = listen_socket(host, &ss, &port)) < 0)
        return NULL;

    gw_server_t *s = gw_calloc(1, sizeof(*s));
    s->loop = loop;
    s->port = port;
    s->max_body = o->max_body != 0 ? o->max_body : GW_SERVER_DEFAULT_MAX_BODY;
    s->max_conns = o->max_connections;
    h2o_linklist_init_anchor(&s->conns);
    h2o_linklist_init_anchor(&s->held);
    if ((rc = uv_tcp_init(loop, &s->listener)) != 0) {
        gw_error("http: uv_tcp_init: %s", uv_strerror(rc));
        close(fd);
        free(s);
        return NULL;
    }
    if ((rc = uv_tcp_open(&s->listener, fd)) != 0)
        close(fd); /* not adopted by the handle */
    if (rc != 0 || (rc = uv_listen((uv_stream_t *)&s->listener, GW_SERVER_BACKLOG, on_connection)) != 0) {
        gw_error("http: cannot listen on %s:%d: %s", host, port, uv_strerror(rc));
        uv_close((uv_handle_t *)&s->listener, on_failed_listener_closed); /* frees s on the next loop turn */
        return NULL;
    }
    s->listening = true;
    setup_h2o(s, o->io_timeout_ms > 0 ? (uint64_t)o->io_timeout_ms : GW_SERVER_DEFAULT_IO_TIMEOUT_MS);
    gw_info("http: listening on %s:%d", host, port);
    return s;
}

int gw_server_port(const gw_server_t *s)
{
    return s->port;
}

size_t gw_server_connections(const gw_server_t *s)
{
    return s->nconns;
}

size_t gw_server_max_connections(const gw_server_t *s)
{
    return s->max_conns;
}

uint64_t gw_server_refused(const gw_server_t *s)
{
    return s->refused;
}

uint64_t gw_server_evicted(const gw_server_t *s)
{
    return s->evicted;
}

size_t gw_server_pending(const gw_server_t *s)
{
    return s->nheld;
}

void gw_server_stop(gw_server_t *s)
{
    if (s->stopping)
        return;
    s->stopping = true;
    if (s->listening)
        uv_close((uv_handle_t *)&s->listener, on_listener_closed);
    h2o_context_request_shutdown(&s->ctx);
    /* 2.2.5's HTTP/2 part links this entry even with no HTTP/2 connection; h2o_context_dispose asserts it is unlinked */
    if (h2o_timeout_is_linked(&s->ctx.http2._graceful_shutdown_timeout))
        h2o_timeout_unlink(&s->ctx.http2._graceful_shutdown_timeout);
    for (h2o_linklist_t *node = s->conns.next; node != &s->conns; node = node->next)
        shutdown_read(H2O_STRUCT_FROM_MEMBER(gw_conn_t, link, node));
    gw_info("http: stopped accepting (%zu connections, %zu requests pending)", s->nconns, s->nheld);
}

/* Runs non-blocking loop turns until the listener and every connection have closed (bounded). */
static void drain(gw_server_t *s)
{
    static const struct timespec ms = {0, 1000000};
    for (int i = 0; i < GW_DRAIN_ROUNDS && (s->nconns != 0 || s->listening); i++) {
        uv_run(s->loop, UV_RUN_NOWAIT); /* the return value only says whether handles remain */
        if (s->nconns != 0 || s->listening)
            nanosleep(&ms, NULL);
    }
}

void gw_server_dispose(gw_server_t *s)
{
    if (s == NULL)
        return;
    gw_server_stop(s);
    if (s->nheld != 0)
        gw_warn("http: %zu requests still pending at dispose, answering 503", s->nheld);
    while (!h2o_linklist_is_empty(&s->held)) {
        gw_http_req_t *r = H2O_STRUCT_FROM_MEMBER(gw_http_req_t, held, s->held.next);
        send_error(s, detach(r), 503, "server is shutting down"); /* r stays with its handler */
    }
    drain(s);
    if (s->nconns != 0 || s->listening) {
        gw_error("http: %zu connections did not close; leaking the server", s->nconns);
        return;
    }
    h2o_context_dispose(&s->ctx);
    h2o_config_dispose(&s->config);
    gw_router_free(&s->router);
    free(s);
}

/* ---- accessors ---- */

const char *gw_http_method(const gw_http_req_t *r)
{
    return r->method;
}

const char *gw_http_path(const gw_http_req_t *r)
{
    return r->path;
}

const char *gw_http_param(const gw_http_req_t *r, size_t i)
{
    return i < r->nparams ? r->params[i] : NULL;
}

const char *gw_http_query(const gw_http_req_t *r, const char *name)
{
    for (size_t i = 0; i < r->nquery; i++)
        if (strcmp(r->query[i].name, name) == 0)
            return r->query[i].value;
    return NULL;
}

const char *gw_http_header(const gw_http_req_t *r, const char *name)
{
    for (size_t i = 0; i < r->nheaders; i++)
        if (strcasecmp(r->headers[i].name, name) == 0)
            return r->headers[i].value;
    return NULL;
}

const char *gw_http_body(const gw_http_req_t *r, size_t *len)
{
    if (len != NULL)
        *len = r->body_len;
    return r->body;
}

bool gw_http_ct_equal(const char *a, const char *b)
{
    static const char zero = '\0';
    if (a == NULL || b == NULL)
        return false;
    size_t la = strlen(a), lb = strlen(b);
    const char *ref = lb != 0 ? b : &zero;
    size_t lr = lb != 0 ? lb : 1;
    /* walk all of a, wrapping over b: no early exit, no dependency on where they differ */
    volatile unsigned char acc = 0;
    for (size_t i = 0; i < la; i++)
        acc |= (unsigned char)(a[i] ^ ref[i % lr]);
    return (acc | (la != lb)) == 0;
}
