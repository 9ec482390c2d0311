#include "reactor/fetch.h"
#include "reactor/log.h"
#include "reactor/text.h"
#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define GW_FETCH_DEFAULT_MAX_CONNECTS 64
#define GW_FETCH_MAX_CONNECTS_CAP 1024

typedef enum en_gw_fetch_state_t {
    GW_FETCH_NEW,     /* built, not started: options may still change */
    GW_FETCH_RUNNING, /* in the multi handle; the callback is pending */
    GW_FETCH_DONE,    /* out of the multi, detached from the fetcher; results readable until gw_fetch_free */
} gw_fetch_state_t;

/* One per socket curl asks us to watch; curl_multi_assign links it to the socket. */
typedef struct st_gw_fetch_sock_t {
    uv_poll_t poll; /* first: the close callback receives it */
    gw_fetcher_t *f;
    curl_socket_t fd;
    struct st_gw_fetch_sock_t *prev, *next;
} gw_fetch_sock_t;

struct st_gw_fetcher_t {
    uv_loop_t *loop;
    CURLM *multi;
    uv_timer_t timer;       /* curl's single timeout */
    gw_fetch_t *reqs;       /* unfinished requests, NEW and RUNNING */
    gw_fetch_sock_t *socks; /* watched sockets */
    size_t active;          /* RUNNING requests */
    size_t open_handles;    /* timer + polls not yet through their close callback */
    bool reaping;           /* inside fetcher_reap: a close requested there is finished by it */
    bool broken;            /* some request lost its socket watch and must be failed */
    bool closing;
};

struct st_gw_fetch_t {
    gw_fetcher_t *f; /* NULL once DONE */
    CURL *easy;
    gw_fetch_state_t state;
    gw_fetch_t *prev, *next;
    char *method;
    struct curl_slist *headers;
    bool user_expect;  /* caller set Expect:, keep it */
    bool watch_failed; /* a socket of this transfer could not be polled */
    CURLcode setup_error;
    char *body; /* copied body, or NULL */
    size_t body_len;
    int fd; /* streamed body file, or -1 */
    uint64_t file_off, file_len, file_pos;
    long total_ms, connect_ms;
    size_t max_response;
    bool too_large;
    gw_fetch_cb cb;
    void *data;
    char *resp;
    size_t resp_len, resp_alloc;
    char **hdrs; /* each "name\0value" of the final response */
    size_t nhdrs, hdrs_alloc;
    CURLcode code;
    long status;
    uint64_t started_ns;
    double elapsed_ms;
    char errbuf[CURL_ERROR_SIZE];
};

static void fetcher_action(gw_fetcher_t *f, curl_socket_t s, int flags);

static int set_cloexec(int fd)
{
    int fl = fcntl(fd, F_GETFD);
    if (fl < 0 || fcntl(fd, F_SETFD, fl | FD_CLOEXEC) < 0)
        return -errno;
    return 0;
}

/* Open descriptors as a bitmap (bit set = open), from /proc/self/fd; NULL when unreadable. */
static unsigned char *fd_snapshot(size_t *nbytes)
{
    DIR *d = opendir("/proc/self/fd");
    unsigned char *bits = NULL;
    *nbytes = 0;
    if (d == NULL)
        return NULL;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        int fd = atoi(e->d_name);
        if (e->d_name[0] < '0' || e->d_name[0] > '9' || fd == dirfd(d))
            continue;
        if ((size_t)fd / 8 >= *nbytes) {
            size_t n = (size_t)fd / 8 + 64;
            bits = gw_xrealloc(bits, n);
            memset(bits + *nbytes, 0, n - *nbytes);
            *nbytes = n;
        }
        bits[fd / 8] |= (unsigned char)(1u << (fd % 8));
    }
    closedir(d);
    return bits;
}

/* curl 7.88 creates its wakeup socketpair inside curl_multi_init without CLOEXEC and never shows it to us:
 * mark every descriptor that appeared during the call. */
static CURLM *multi_init_cloexec(void)
{
    size_t nb, na;
    unsigned char *before = fd_snapshot(&nb);
    CURLM *m = curl_multi_init();
    unsigned char *after = fd_snapshot(&na);
    for (size_t i = 0; i < na * 8; i++) {
        bool was = i / 8 < nb && (before[i / 8] & (1u << (i % 8)));
        if ((after[i / 8] & (1u << (i % 8))) && !was && set_cloexec((int)i) != 0)
            gw_warn("fetch: cannot set FD_CLOEXEC on curl's descriptor %zu", i);
    }
    free(before);
    free(after);
    return m;
}

/* --- fetcher: sockets, timer, reaping --- */

static void fetcher_handle_closed(gw_fetcher_t *f)
{
    if (--f->open_handles == 0 && f->closing) {
        free(f);
        curl_global_cleanup();
    }
}

static void on_sock_closed(uv_handle_t *h)
{
    gw_fetch_sock_t *sk = (gw_fetch_sock_t *)h;
    gw_fetcher_t *f = sk->f;
    free(sk);
    fetcher_handle_closed(f);
}

static void on_timer_closed(uv_handle_t *h)
{
    fetcher_handle_closed(h->data);
}

static void sock_close(gw_fetch_sock_t *sk)
{
    gw_fetcher_t *f = sk->f;
    if (sk->prev != NULL)
        sk->prev->next = sk->next;
    else
        f->socks = sk->next;
    if (sk->next != NULL)
        sk->next->prev = sk->prev;
    /* uv_close stops the poll now, so a new socket reusing this fd number can be polled at once. */
    uv_close((uv_handle_t *)&sk->poll, on_sock_closed);
}

static void on_poll(uv_poll_t *h, int status, int events)
{
    gw_fetch_sock_t *sk = (gw_fetch_sock_t *)h;
    int flags = 0;
    if (status < 0) {
        flags = CURL_CSELECT_ERR;
    } else {
        if (events & UV_READABLE)
            flags |= CURL_CSELECT_IN;
        if (events & UV_WRITABLE)
            flags |= CURL_CSELECT_OUT;
    }
    /* sk may be closed by the action: pass copies. */
    fetcher_action(sk->f, sk->fd, flags);
}

static gw_fetch_sock_t *sock_open(gw_fetcher_t *f, curl_socket_t s)
{
    gw_fetch_sock_t *sk = gw_xcalloc(1, sizeof(*sk));
    int rc = uv_poll_init_socket(f->loop, &sk->poll, s);
    if (rc != 0) {
        gw_error("fetch: uv_poll_init_socket: %s", uv_strerror(rc));
        free(sk);
        return NULL;
    }
    sk->f = f;
    sk->fd = s;
    sk->next = f->socks;
    if (f->socks != NULL)
        f->socks->prev = sk;
    f->socks = sk;
    f->open_handles++;
    /* The threaded resolver's socketpair does not pass through CURLOPT_SOCKOPTFUNCTION. */
    set_cloexec(s);
    CURLMcode mc = curl_multi_assign(f->multi, s, sk);
    if (mc != CURLM_OK) {
        gw_error("fetch: curl_multi_assign: %s", curl_multi_strerror(mc));
        sock_close(sk);
        return NULL;
    }
    return sk;
}

static void on_timer(uv_timer_t *t)
{
    fetcher_action(t->data, CURL_SOCKET_TIMEOUT, 0);
}

/* Returning -1 from the socket callback makes curl 7.88 mark the whole multi dead: fail only the transfer, later. */
static void mark_watch_failed(gw_fetcher_t *f, CURL *easy)
{
    gw_fetch_t *req = NULL;
    if (easy == NULL || curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&req) != CURLE_OK || req == NULL)
        return;
    req->watch_failed = true;
    f->broken = true;
    int rc = uv_timer_start(&f->timer, on_timer, 0, 0);
    if (rc != 0)
        gw_error("fetch: uv_timer_start: %s", uv_strerror(rc));
}

static int on_curl_socket(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
    gw_fetcher_t *f = userp;
    gw_fetch_sock_t *sk = socketp;
    if (what == CURL_POLL_REMOVE) {
        /* curl drops its socket entry itself; no curl_multi_assign here (it also runs inside curl_multi_cleanup). */
        if (sk != NULL)
            sock_close(sk);
        return 0;
    }
    if (f->closing)
        return 0;
    if (sk == NULL && (sk = sock_open(f, s)) == NULL) {
        mark_watch_failed(f, easy);
        return 0;
    }
    int events = 0;
    if (what & CURL_POLL_IN)
        events |= UV_READABLE;
    if (what & CURL_POLL_OUT)
        events |= UV_WRITABLE;
    int rc = uv_poll_start(&sk->poll, events, on_poll);
    if (rc != 0) {
        gw_error("fetch: uv_poll_start: %s", uv_strerror(rc));
        mark_watch_failed(f, easy);
    }
    return 0;
}

/* Only (re)arms the uv timer: the action itself runs from on_timer, never inside curl's callback. */
static int on_curl_timer(CURLM *multi, long timeout_ms, void *userp)
{
    gw_fetcher_t *f = userp;
    int rc = 0;
    if (f->closing)
        return 0;
    if (timeout_ms < 0)
        rc = uv_timer_stop(&f->timer);
    else
        rc = uv_timer_start(&f->timer, on_timer, (uint64_t)timeout_ms, 0);
    if (rc != 0)
        gw_error("fetch: uv timer: %s", uv_strerror(rc));
    return 0;
}

static void req_link(gw_fetch_t *req)
{
    gw_fetcher_t *f = req->f;
    req->next = f->reqs;
    if (f->reqs != NULL)
        f->reqs->prev = req;
    f->reqs = req;
}

static void req_unlink(gw_fetch_t *req)
{
    gw_fetcher_t *f = req->f;
    if (req->prev != NULL)
        req->prev->next = req->next;
    else
        f->reqs = req->next;
    if (req->next != NULL)
        req->next->prev = req->prev;
    req->prev = req->next = NULL;
}

/* Takes a RUNNING request out of the multi and out of the fetcher. */
static void req_detach(gw_fetch_t *req)
{
    gw_fetcher_t *f = req->f;
    CURLMcode mc = curl_multi_remove_handle(f->multi, req->easy);
    if (mc != CURLM_OK)
        gw_error("fetch: curl_multi_remove_handle: %s", curl_multi_strerror(mc));
    f->active--;
}

static void req_finish(gw_fetch_t *req, CURLcode code)
{
    long status = 0;
    if (curl_easy_getinfo(req->easy, CURLINFO_RESPONSE_CODE, &status) != CURLE_OK)
        status = 0;
    req_detach(req);
    req_unlink(req);
    req->f = NULL;
    req->state = GW_FETCH_DONE;
    req->status = status;
    req->elapsed_ms = (double)(uv_hrtime() - req->started_ns) / 1e6;
    req->code = code;
    if (req->too_large) {
        req->code = CURLE_FILESIZE_EXCEEDED;
        snprintf(req->errbuf, sizeof(req->errbuf), "response larger than %zu bytes", req->max_response);
    } else if (req->watch_failed && code == CURLE_OK) {
        req->code = CURLE_RECV_ERROR;
        snprintf(req->errbuf, sizeof(req->errbuf), "could not watch the connection's socket");
    }
    req->cb(req, req->data);
}

static void fetcher_fail_broken(gw_fetcher_t *f)
{
    /* Restart the scan after each callback: it may have changed the list. */
    while (f->broken && !f->closing) {
        gw_fetch_t *req = f->reqs;
        while (req != NULL && !(req->state == GW_FETCH_RUNNING && req->watch_failed))
            req = req->next;
        if (req == NULL) {
            f->broken = false;
            break;
        }
        req_finish(req, CURLE_RECV_ERROR);
    }
}

static void fetcher_shutdown(gw_fetcher_t *f)
{
    /* Closes cached connections; their CURL_POLL_REMOVE callbacks close the polls. */
    CURLMcode mc = curl_multi_cleanup(f->multi);
    if (mc != CURLM_OK)
        gw_error("fetch: curl_multi_cleanup: %s", curl_multi_strerror(mc));
    f->multi = NULL;
    while (f->socks != NULL)
        sock_close(f->socks);
    uv_close((uv_handle_t *)&f->timer, on_timer_closed);
}

static void fetcher_reap(gw_fetcher_t *f)
{
    CURLMsg *msg;
    int left;
    f->reaping = true;
    while (!f->closing && (msg = curl_multi_info_read(f->multi, &left)) != NULL) {
        gw_fetch_t *req = NULL;
        if (msg->msg != CURLMSG_DONE)
            continue;
        if (curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&req) != CURLE_OK || req == NULL) {
            gw_error("fetch: finished transfer without its request");
            abort();
        }
        req_finish(req, msg->data.result);
    }
    fetcher_fail_broken(f);
    f->reaping = false;
    if (f->closing)
        fetcher_shutdown(f);
}

static void fetcher_action(gw_fetcher_t *f, curl_socket_t s, int flags)
{
    int running;
    CURLMcode mc = curl_multi_socket_action(f->multi, s, flags, &running);
    if (mc != CURLM_OK)
        gw_error("fetch: curl_multi_socket_action: %s", curl_multi_strerror(mc));
    fetcher_reap(f);
}

static void multi_set_check(CURLMcode mc, const char *what)
{
    if (mc != CURLM_OK) {
        gw_error("fetch: curl_multi_setopt(%s): %s", what, curl_multi_strerror(mc));
        abort();
    }
}

gw_fetcher_t *gw_fetcher_create(uv_loop_t *loop, long max_connects)
{
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        gw_error("fetch: curl_global_init failed");
        abort();
    }
    gw_fetcher_t *f = gw_xcalloc(1, sizeof(*f));
    f->loop = loop;
    if ((f->multi = multi_init_cloexec()) == NULL)
        abort();
    if (max_connects <= 0)
        max_connects = GW_FETCH_DEFAULT_MAX_CONNECTS;
    if (max_connects > GW_FETCH_MAX_CONNECTS_CAP)
        max_connects = GW_FETCH_MAX_CONNECTS_CAP;
    multi_set_check(curl_multi_setopt(f->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket), "SOCKETFUNCTION");
    multi_set_check(curl_multi_setopt(f->multi, CURLMOPT_SOCKETDATA, f), "SOCKETDATA");
    multi_set_check(curl_multi_setopt(f->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer), "TIMERFUNCTION");
    multi_set_check(curl_multi_setopt(f->multi, CURLMOPT_TIMERDATA, f), "TIMERDATA");
    multi_set_check(curl_multi_setopt(f->multi, CURLMOPT_MAXCONNECTS, max_connects), "MAXCONNECTS");
    int rc = uv_timer_init(loop, &f->timer);
    if (rc != 0) {
        gw_error("fetch: uv_timer_init: %s", uv_strerror(rc));
        abort();
    }
    f->timer.data = f;
    f->open_handles = 1;
    return f;
}

void gw_fetcher_close(gw_fetcher_t *f)
{
    if (f->closing)
        return;
    f->closing = true;
    while (f->reqs != NULL)
        gw_fetch_cancel(f->reqs);
    if (!f->reaping)
        fetcher_shutdown(f);
}

size_t gw_fetcher_active(const gw_fetcher_t *f)
{
    return f->active;
}

/* --- requests --- */

static void req_setopt_check(gw_fetch_t *req, CURLcode c, const char *what)
{
    if (c != CURLE_OK && req->setup_error == CURLE_OK) {
        gw_warn("fetch: curl_easy_setopt(%s): %s", what, curl_easy_strerror(c));
        req->setup_error = c;
    }
}

#define REQ_SET(req, opt, val) req_setopt_check((req), curl_easy_setopt((req)->easy, opt, val), #opt)

static size_t on_write(char *ptr, size_t size, size_t n, void *ud)
{
    gw_fetch_t *req = ud;
    size_t len = size * n;
    if (len > req->max_response - req->resp_len) {
        req->too_large = true;
        return 0; /* fails the transfer with CURLE_WRITE_ERROR, reported as FILESIZE_EXCEEDED */
    }
    if (req->resp_len + len + 1 > req->resp_alloc) {
        size_t want = req->resp_alloc < 4096 ? 4096 : req->resp_alloc * 2;
        while (want < req->resp_len + len + 1)
            want *= 2;
        req->resp = gw_xrealloc(req->resp, want);
        req->resp_alloc = want;
    }
    memcpy(req->resp + req->resp_len, ptr, len);
    req->resp_len += len;
    req->resp[req->resp_len] = '\0';
    return len;
}

static void hdrs_clear(gw_fetch_t *req)
{
    for (size_t i = 0; i < req->nhdrs; i++)
        free(req->hdrs[i]);
    req->nhdrs = 0;
}

static void trim(const char **b, const char **e)
{
    while (*b < *e && (**b == ' ' || **b == '\t'))
        (*b)++;
    while (*e > *b && ((*e)[-1] == ' ' || (*e)[-1] == '\t' || (*e)[-1] == '\r' || (*e)[-1] == '\n'))
        (*e)--;
}

static size_t on_header(char *buf, size_t size, size_t n, void *ud)
{
    gw_fetch_t *req = ud;
    size_t len = size * n;
    /* A new status line (after 100 Continue or a 401 retry) starts a new header set. */
    if (len >= 5 && memcmp(buf, "HTTP/", 5) == 0) {
        hdrs_clear(req);
        return len;
    }
    const char *colon = memchr(buf, ':', len);
    if (colon == NULL)
        return len;
    const char *nb = buf, *ne = colon, *vb = colon + 1, *ve = buf + len;
    trim(&nb, &ne);
    trim(&vb, &ve);
    size_t nl = (size_t)(ne - nb), vl = (size_t)(ve - vb);
    char *h = gw_xmalloc(nl + vl + 2);
    memcpy(h, nb, nl);
    h[nl] = '\0';
    memcpy(h + nl + 1, vb, vl);
    h[nl + 1 + vl] = '\0';
    if (req->nhdrs == req->hdrs_alloc) {
        req->hdrs_alloc = req->hdrs_alloc ? req->hdrs_alloc * 2 : 16;
        req->hdrs = gw_xrealloc(req->hdrs, req->hdrs_alloc * sizeof(*req->hdrs));
    }
    req->hdrs[req->nhdrs++] = h;
    return len;
}

static size_t on_read(char *buf, size_t size, size_t n, void *ud)
{
    gw_fetch_t *req = ud;
    size_t want = size * n;
    uint64_t left = req->file_len - req->file_pos;
    if (want > left)
        want = (size_t)left;
    if (want == 0)
        return 0;
    ssize_t got;
    do
        got = pread(req->fd, buf, want, (off_t)(req->file_off + req->file_pos));
    while (got < 0 && errno == EINTR);
    if (got <= 0) {
        gw_warn("fetch: reading the body file failed: %s", got < 0 ? strerror(errno) : "file shrank");
        return CURL_READFUNC_ABORT;
    }
    req->file_pos += (uint64_t)got;
    return (size_t)got;
}

/* curl rewinds the body when it must resend it (e.g. a reused connection that the server closed). */
static int on_seek(void *ud, curl_off_t offset, int origin)
{
    gw_fetch_t *req = ud;
    if (origin != SEEK_SET || offset < 0 || (uint64_t)offset > req->file_len)
        return CURL_SEEKFUNC_CANTSEEK;
    req->file_pos = (uint64_t)offset;
    return CURL_SEEKFUNC_OK;
}

static int on_sockopt(void *ud, curl_socket_t fd, curlsocktype purpose)
{
    /* curl 7.88 opens sockets without CLOEXEC: they would leak into uv_spawn children. */
    if (set_cloexec(fd) != 0) {
        gw_warn("fetch: cannot set FD_CLOEXEC on a socket");
        return CURL_SOCKOPT_ERROR;
    }
    return CURL_SOCKOPT_OK;
}

gw_fetch_t *gw_fetch_new(gw_fetcher_t *f, const char *method, const char *url)
{
    gw_fetch_t *req = gw_xcalloc(1, sizeof(*req));
    req->f = f;
    req->fd = -1;
    req->method = gw_xstrdup(method);
    req->max_response = GW_FETCH_DEFAULT_MAX_RESPONSE;
    if ((req->easy = curl_easy_init()) == NULL)
        abort();
    REQ_SET(req, CURLOPT_URL, url);
    REQ_SET(req, CURLOPT_PRIVATE, req);
    REQ_SET(req, CURLOPT_ERRORBUFFER, req->errbuf);
    REQ_SET(req, CURLOPT_NOSIGNAL, 1L);
    REQ_SET(req, CURLOPT_PROTOCOLS_STR, "http,https");
    REQ_SET(req, CURLOPT_WRITEFUNCTION, on_write);
    REQ_SET(req, CURLOPT_WRITEDATA, req);
    REQ_SET(req, CURLOPT_HEADERFUNCTION, on_header);
    REQ_SET(req, CURLOPT_HEADERDATA, req);
    REQ_SET(req, CURLOPT_SOCKOPTFUNCTION, on_sockopt);
    REQ_SET(req, CURLOPT_TCP_KEEPALIVE, 1L);
    REQ_SET(req, CURLOPT_ACCEPT_ENCODING, "");
    req_link(req);
    return req;
}

static bool has_crlf(const char *s)
{
    return strpbrk(s, "\r\n") != NULL;
}

void gw_fetch_header(gw_fetch_t *req, const char *name, const char *value)
{
    if (req->state != GW_FETCH_NEW)
        return;
    if (has_crlf(name) || has_crlf(value) || strchr(name, ':') != NULL) {
        gw_warn("fetch: rejected a malformed request header");
        req->setup_error = CURLE_BAD_FUNCTION_ARGUMENT;
        return;
    }
    size_t len = strlen(name) + strlen(value) + 3;
    char *line = gw_xmalloc(len);
    snprintf(line, len, "%s:%s%s", name, value[0] ? " " : "", value);
    struct curl_slist *l = curl_slist_append(req->headers, line);
    free(line);
    if (l == NULL)
        abort();
    req->headers = l;
    if (strcasecmp(name, "Expect") == 0)
        req->user_expect = true;
}

void gw_fetch_body(gw_fetch_t *req, const char *data, size_t len)
{
    if (req->state != GW_FETCH_NEW)
        return;
    free(req->body);
    req->body = gw_xmalloc(len + 1);
    memcpy(req->body, data, len);
    req->body[len] = '\0';
    req->body_len = len;
}

int gw_fetch_body_file(gw_fetch_t *req, const char *path, uint64_t offset, uint64_t len)
{
    struct stat st;
    int fd, err = 0;
    if (req->state != GW_FETCH_NEW)
        return -EINVAL;
    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
        return -errno;
    if (fstat(fd, &st) != 0)
        err = -errno;
    else if (!S_ISREG(st.st_mode) || offset > (uint64_t)st.st_size || len > (uint64_t)st.st_size - offset)
        err = -EINVAL;
    if (err != 0) {
        close(fd);
        return err;
    }
    if (req->fd >= 0)
        close(req->fd);
    req->fd = fd;
    req->file_off = offset;
    req->file_len = len;
    req->file_pos = 0;
    return 0;
}

void gw_fetch_timeout(gw_fetch_t *req, long total_ms, long connect_ms)
{
    req->total_ms = total_ms > 0 ? total_ms : 0;
    req->connect_ms = connect_ms > 0 ? connect_ms : 0;
}

void gw_fetch_max_response(gw_fetch_t *req, size_t cap)
{
    req->max_response = cap;
}

/* Method and body: POSTFIELDS or the read callback carry the body, CUSTOMREQUEST renames the verb. */
static void req_apply_method(gw_fetch_t *req)
{
    const char *m = req->method;
    bool post = strcmp(m, "POST") == 0;
    if (req->fd >= 0) {
        REQ_SET(req, CURLOPT_POST, 1L);
        REQ_SET(req, CURLOPT_READFUNCTION, on_read);
        REQ_SET(req, CURLOPT_READDATA, req);
        REQ_SET(req, CURLOPT_SEEKFUNCTION, on_seek);
        REQ_SET(req, CURLOPT_SEEKDATA, req);
        REQ_SET(req, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->file_len);
    } else if (req->body != NULL || post || strcmp(m, "PUT") == 0 || strcmp(m, "PATCH") == 0) {
        REQ_SET(req, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
        REQ_SET(req, CURLOPT_POSTFIELDS, req->body != NULL ? req->body : "");
    } else if (strcmp(m, "HEAD") == 0) {
        REQ_SET(req, CURLOPT_NOBODY, 1L);
        return;
    } else if (strcmp(m, "GET") == 0) {
        return;
    }
    if (!post)
        REQ_SET(req, CURLOPT_CUSTOMREQUEST, m);
}

static void req_apply(gw_fetch_t *req)
{
    req_apply_method(req);
    if (!req->user_expect) {
        /* Without this curl waits up to 1 s for "100 Continue" before sending a large body. */
        struct curl_slist *l = curl_slist_append(req->headers, "Expect:");
        if (l == NULL)
            abort();
        req->headers = l;
        req->user_expect = true;
    }
    REQ_SET(req, CURLOPT_HTTPHEADER, req->headers);
    REQ_SET(req, CURLOPT_TIMEOUT_MS, req->total_ms);
    REQ_SET(req, CURLOPT_CONNECTTIMEOUT_MS, req->connect_ms);
    /* Fails early when Content-Length already says too much. */
    REQ_SET(req, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)req->max_response);
}

int gw_fetch_start(gw_fetch_t *req, gw_fetch_cb cb, void *data)
{
    if (req->state != GW_FETCH_NEW || req->f->closing || cb == NULL)
        return -EINVAL;
    req_apply(req);
    if (req->setup_error != CURLE_OK)
        return -EINVAL;
    req->cb = cb;
    req->data = data;
    req->started_ns = uv_hrtime();
    /* Adding only arms the timer (timeout 0); the transfer and any failure surface from the loop. */
    CURLMcode mc = curl_multi_add_handle(req->f->multi, req->easy);
    if (mc != CURLM_OK) {
        gw_warn("fetch: curl_multi_add_handle: %s", curl_multi_strerror(mc));
        return -EIO;
    }
    req->state = GW_FETCH_RUNNING;
    req->f->active++;
    return 0;
}

void gw_fetch_cancel(gw_fetch_t *req)
{
    if (req->state == GW_FETCH_RUNNING)
        req_detach(req);
    if (req->state != GW_FETCH_DONE)
        req_unlink(req);
    curl_easy_cleanup(req->easy);
    curl_slist_free_all(req->headers);
    hdrs_clear(req);
    free(req->hdrs);
    free(req->resp);
    free(req->body);
    free(req->method);
    if (req->fd >= 0)
        close(req->fd);
    free(req);
}

void gw_fetch_free(gw_fetch_t *req)
{
    gw_fetch_cancel(req);
}

int gw_fetch_curlcode(const gw_fetch_t *req)
{
    return (int)req->code;
}

const char *gw_fetch_error(const gw_fetch_t *req)
{
    if (req->code == CURLE_OK)
        return "";
    return req->errbuf[0] != '\0' ? req->errbuf : curl_easy_strerror(req->code);
}

long gw_fetch_status(const gw_fetch_t *req)
{
    return req->status;
}

const char *gw_fetch_data(const gw_fetch_t *req, size_t *len)
{
    if (len != NULL)
        *len = req->resp_len;
    return req->resp != NULL ? req->resp : "";
}

const char *gw_fetch_resp_header(const gw_fetch_t *req, const char *name)
{
    for (size_t i = 0; i < req->nhdrs; i++)
        if (strcasecmp(req->hdrs[i], name) == 0)
            return req->hdrs[i] + strlen(req->hdrs[i]) + 1;
    return NULL;
}

double gw_fetch_elapsed_ms(const gw_fetch_t *req)
{
    return req->elapsed_ms;
}
