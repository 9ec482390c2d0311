#include "reactor/pg.h"
#include "reactor/log.h"
#include "reactor/text.h"
#include <stdlib.h>
#include <string.h>

#define KEEPALIVE_IDLE_MS 5000
#define BACKOFF_BASE_MS 100
#define BACKOFF_CAP_MS 5000

typedef struct st_query_t {
    struct st_query_t *next;
    char *name, *sql;
    char **params;
    int nparams, flags;
    bool internal; /* LISTEN / keepalive: not the caller's, dropped on disconnect */
    gw_pg_cb cb;
    void *data;
    uint64_t queued_at;
} query_t;

typedef struct st_pollh_t {
    uv_poll_t h;
    struct st_gw_pg_t *pg;
} pollh_t;

typedef enum en_pg_state_t {
    PG_DOWN,       /* no connection; retry_timer armed */
    PG_CONNECTING, /* PQconnectPoll in progress */
    PG_LISTENING,  /* connected, LISTEN in flight: only internal queries go out */
    PG_READY,      /* serving queries */
    PG_CLOSING,    /* gw_pg_close called */
} pg_state_t;

struct st_gw_pg_t {
    uv_timer_t retry_timer; /* first: the close callback receives it */
    uv_loop_t *loop;
    char *conninfo;
    char *listen_sql;
    gw_pg_events_t ev;
    uint64_t query_timeout_ms;
    PGconn *conn;
    pollh_t *poll;
    int poll_fd, poll_events;
    pg_state_t state;
    query_t *head, *tail, *inflight;
    bool preparing; /* inflight's PQsendPrepare is out */
    PGresult *result;
    char **prepared;
    size_t nprepared;
    uint64_t inflight_since, last_activity;
    unsigned failures;
    uint64_t connections;
};

static void handle_broken(gw_pg_t *pg, const char *why);
static void send_next(gw_pg_t *pg);

static void query_free(query_t *q)
{
    for (int i = 0; i < q->nparams; i++)
        free(q->params[i]);
    free(q->params);
    free(q->name);
    free(q->sql);
    free(q);
}

static void query_fail(query_t *q, const char *why)
{
    if (q->cb != NULL)
        q->cb(NULL, why, q->data);
    query_free(q);
}

static void push_front(gw_pg_t *pg, query_t *q)
{
    q->next = pg->head;
    pg->head = q;
    if (pg->tail == NULL)
        pg->tail = q;
}

static void push_back(gw_pg_t *pg, query_t *q)
{
    q->next = NULL;
    if (pg->tail != NULL)
        pg->tail->next = q;
    else
        pg->head = q;
    pg->tail = q;
}

static query_t *pop_front(gw_pg_t *pg)
{
    query_t *q = pg->head;
    if (q != NULL) {
        pg->head = q->next;
        if (pg->head == NULL)
            pg->tail = NULL;
        q->next = NULL;
    }
    return q;
}

static query_t *query_new(const char *name, const char *sql, int nparams, const char *const *params, int flags)
{
    query_t *q = calloc(1, sizeof(*q));
    if (q == NULL)
        abort();
    q->name = name ? gw_xstrdup(name) : NULL;
    q->sql = gw_xstrdup(sql);
    q->nparams = nparams;
    q->flags = flags;
    if (nparams > 0) {
        q->params = calloc(nparams, sizeof(char *));
        if (q->params == NULL)
            abort();
        for (int i = 0; i < nparams; i++)
            q->params[i] = params[i] ? gw_xstrdup(params[i]) : NULL;
    }
    return q;
}

/* ---- socket watching: one uv_poll_t per fd, re-created when libpq switches sockets ---- */

static void poll_closed(uv_handle_t *h)
{
    free(h);
}

static void unwatch(gw_pg_t *pg)
{
    if (pg->poll == NULL)
        return;
    uv_poll_stop(&pg->poll->h);
    uv_close((uv_handle_t *)&pg->poll->h, poll_closed);
    pg->poll = NULL;
    pg->poll_fd = -1;
    pg->poll_events = 0;
}

static void on_poll(uv_poll_t *h, int status, int events);

static void watch(gw_pg_t *pg, int events)
{
    int fd = PQsocket(pg->conn);
    if (fd < 0) {
        handle_broken(pg, "no socket");
        return;
    }
    if (pg->poll != NULL && pg->poll_fd != fd)
        unwatch(pg);
    if (pg->poll == NULL) {
        pg->poll = calloc(1, sizeof(*pg->poll));
        if (pg->poll == NULL)
            abort();
        pg->poll->pg = pg;
        int rc = uv_poll_init_socket(pg->loop, &pg->poll->h, fd);
        if (rc != 0) {
            free(pg->poll);
            pg->poll = NULL;
            handle_broken(pg, uv_strerror(rc));
            return;
        }
        pg->poll_fd = fd;
        pg->poll_events = 0;
    }
    if (events != pg->poll_events) {
        int rc = uv_poll_start(&pg->poll->h, events, on_poll);
        if (rc != 0) {
            handle_broken(pg, uv_strerror(rc));
            return;
        }
        pg->poll_events = events;
    }
}

/* ---- connecting ---- */

static void start_connect(gw_pg_t *pg);

static void on_retry_timer(uv_timer_t *t)
{
    start_connect((gw_pg_t *)t);
}

static void schedule_reconnect(gw_pg_t *pg)
{
    uint64_t cap = BACKOFF_BASE_MS << (pg->failures < 6 ? pg->failures : 6);
    if (cap > BACKOFF_CAP_MS)
        cap = BACKOFF_CAP_MS;
    uint64_t delay = pg->failures == 0 ? 0 : cap / 2 + (uint64_t)rand() % (cap / 2 + 1); /* jitter: no herd */
    pg->failures++;
    pg->state = PG_DOWN;
    int rc = uv_timer_start(&pg->retry_timer, on_retry_timer, delay, 0);
    if (rc != 0)
        gw_error("pg: cannot arm reconnect timer: %s", uv_strerror(rc));
}

static void connection_lost(gw_pg_t *pg)
{
    unwatch(pg); /* before PQfinish closes the fd */
    if (pg->conn != NULL) {
        PQfinish(pg->conn);
        pg->conn = NULL;
    }
    for (size_t i = 0; i < pg->nprepared; i++)
        free(pg->prepared[i]);
    pg->nprepared = 0;
    if (pg->result != NULL) {
        PQclear(pg->result);
        pg->result = NULL;
    }
    pg->preparing = false;
}

/* Server notices and asynchronous errors (e.g. "terminating connection") go through the logger, not raw to stderr. */
static void on_notice(void *arg, const char *message)
{
    char msg[512];
    snprintf(msg, sizeof(msg), "%s", message);
    msg[strcspn(msg, "\n")] = '\0';
    gw_warn("pg: server says: %s", msg);
}

static void start_connect(gw_pg_t *pg)
{
    /* Our keepalive defaults come first: keywords inside DATABASE_URL override them. */
    const char *keys[] = {"keepalives",       "keepalives_idle",  "keepalives_interval",
                          "keepalives_count", "tcp_user_timeout", "connect_timeout",
                          "application_name", "dbname",           NULL};
    const char *vals[] = {"1", "5", "2", "3", "10000", "10", "glint-worker", pg->conninfo, NULL};
    pg->conn = PQconnectStartParams(keys, vals, 1);
    if (pg->conn == NULL)
        abort();
    PQsetNoticeProcessor(pg->conn, on_notice, NULL);
    if (PQstatus(pg->conn) == CONNECTION_BAD) {
        gw_warn("pg: cannot start connection: %s", PQerrorMessage(pg->conn));
        connection_lost(pg);
        schedule_reconnect(pg);
        return;
    }
    pg->state = PG_CONNECTING;
    watch(pg, UV_WRITABLE);
}

static void connect_step(gw_pg_t *pg)
{
    switch (PQconnectPoll(pg->conn)) {
    case PGRES_POLLING_READING:
        watch(pg, UV_READABLE);
        break;
    case PGRES_POLLING_WRITING:
        watch(pg, UV_WRITABLE);
        break;
    case PGRES_POLLING_OK: {
        if (PQsetnonblocking(pg->conn, 1) != 0) {
            handle_broken(pg, "cannot set non-blocking");
            return;
        }
        pg->state = PG_LISTENING;
        query_t *q = query_new(NULL, pg->listen_sql, 0, NULL, 0);
        q->internal = true;
        push_front(pg, q);
        watch(pg, UV_READABLE);
        send_next(pg);
        break;
    }
    default: {
        char msg[512];
        snprintf(msg, sizeof(msg), "%s", PQerrorMessage(pg->conn));
        msg[strcspn(msg, "\n")] = '\0';
        gw_warn("pg: connection failed: %s", msg);
        connection_lost(pg);
        schedule_reconnect(pg);
        break;
    }
    }
}

/* ---- queries ---- */

static bool is_prepared(const gw_pg_t *pg, const char *name)
{
    for (size_t i = 0; i < pg->nprepared; i++)
        if (strcmp(pg->prepared[i], name) == 0)
            return true;
    return false;
}

static void flush_out(gw_pg_t *pg)
{
    int rc = PQflush(pg->conn);
    if (rc < 0)
        handle_broken(pg, "write failed");
    else
        watch(pg, rc == 1 ? UV_READABLE | UV_WRITABLE : UV_READABLE);
}

static void send_next(gw_pg_t *pg)
{
    if (pg->inflight != NULL || pg->head == NULL)
        return;
    if (pg->state != PG_READY && !(pg->state == PG_LISTENING && pg->head->internal))
        return;
    query_t *q = pop_front(pg);
    const char *const *params = (const char *const *)q->params;
    int ok;
    pg->inflight = q;
    pg->inflight_since = uv_now(pg->loop);
    if (q->name != NULL && !is_prepared(pg, q->name)) {
        pg->preparing = true;
        ok = PQsendPrepare(pg->conn, q->name, q->sql, q->nparams, NULL);
    } else if (q->name != NULL) {
        ok = PQsendQueryPrepared(pg->conn, q->name, q->nparams, params, NULL, NULL, 0);
    } else if (q->nparams == 0 && q->internal) {
        ok = PQsendQuery(pg->conn, q->sql); /* LISTEN a; LISTEN b — several statements */
    } else {
        ok = PQsendQueryParams(pg->conn, q->sql, q->nparams, NULL, params, NULL, NULL, 0);
    }
    if (!ok) {
        handle_broken(pg, PQerrorMessage(pg->conn));
        return;
    }
    flush_out(pg);
}

static void finish_inflight(gw_pg_t *pg)
{
    query_t *q = pg->inflight;
    PGresult *res = pg->result;
    pg->result = NULL;
    if (pg->preparing) {
        pg->preparing = false;
        if (res != NULL && PQresultStatus(res) == PGRES_COMMAND_OK) {
            PQclear(res);
            pg->prepared = realloc(pg->prepared, (pg->nprepared + 1) * sizeof(char *));
            if (pg->prepared == NULL)
                abort();
            pg->prepared[pg->nprepared++] = gw_xstrdup(q->name);
            pg->inflight = NULL;
            push_front(pg, q); /* now execute it */
            return;
        }
    }
    pg->inflight = NULL;
    if (q->internal && strncmp(q->sql, "LISTEN", 6) == 0 && pg->state == PG_LISTENING) {
        if (res == NULL || PQresultStatus(res) != PGRES_COMMAND_OK) {
            gw_error("pg: LISTEN failed: %s", res ? PQresultErrorMessage(res) : "no result");
        } else {
            pg->state = PG_READY;
            pg->failures = 0;
            if (pg->connections++ > 0)
                gw_info("pg: reconnected");
            else
                gw_info("pg: connected");
            if (pg->ev.on_connect != NULL)
                pg->ev.on_connect(pg->ev.data);
        }
    } else if (q->cb != NULL) {
        q->cb(res, res == NULL ? "no result" : NULL, q->data);
    }
    if (res != NULL)
        PQclear(res);
    query_free(q);
}

static void drain_results(gw_pg_t *pg)
{
    while (pg->conn != NULL && pg->inflight != NULL && !PQisBusy(pg->conn)) {
        PGresult *r = PQgetResult(pg->conn);
        if (r == NULL) {
            finish_inflight(pg);
            if (pg->conn != NULL)
                send_next(pg);
            continue;
        }
        /* keep the first error, else the last result (multi-statement LISTEN yields several) */
        if (pg->result != NULL && PQresultStatus(pg->result) == PGRES_FATAL_ERROR) {
            PQclear(r);
        } else {
            if (pg->result != NULL)
                PQclear(pg->result);
            pg->result = r;
        }
    }
}

static void drain_notifies(gw_pg_t *pg)
{
    PGnotify *n;
    while (pg->conn != NULL && (n = PQnotifies(pg->conn)) != NULL) {
        if (pg->ev.on_notify != NULL)
            pg->ev.on_notify(n->relname, n->extra, pg->ev.data);
        PQfreemem(n);
    }
}

static void on_poll(uv_poll_t *h, int status, int events)
{
    gw_pg_t *pg = ((pollh_t *)h)->pg;
    if (status < 0) {
        /* libuv reports POLLERR as EBADF and stops the poll: let libpq name the real cause (refused, reset, ...) */
        pg->poll_events = 0;
        if (pg->state == PG_CONNECTING) {
            connect_step(pg);
        } else if (!PQconsumeInput(pg->conn)) {
            handle_broken(pg, PQerrorMessage(pg->conn));
        } else {
            handle_broken(pg, uv_strerror(status));
        }
        return;
    }
    if (pg->state == PG_CONNECTING) {
        connect_step(pg);
        return;
    }
    pg->last_activity = uv_now(pg->loop);
    if ((events & UV_WRITABLE) != 0) {
        flush_out(pg);
        if (pg->conn == NULL)
            return;
    }
    if ((events & UV_READABLE) != 0) {
        if (!PQconsumeInput(pg->conn)) {
            handle_broken(pg, PQerrorMessage(pg->conn));
            return;
        }
        drain_results(pg);
        drain_notifies(pg);
    }
}

static void handle_broken(gw_pg_t *pg, const char *why)
{
    char msg[256];
    snprintf(msg, sizeof(msg), "%s", why && *why ? why : "connection lost");
    msg[strcspn(msg, "\n")] = '\0';
    bool was_up = pg->state == PG_READY || pg->state == PG_LISTENING;
    gw_warn("pg: connection lost: %s", msg);
    query_t *q = pg->inflight;
    pg->inflight = NULL;
    connection_lost(pg);
    if (q != NULL) {
        if (q->internal)
            query_free(q);
        else if (q->flags & GW_PG_RETRY)
            push_front(pg, q);
        else
            query_fail(q, "connection lost");
    }
    /* internal queries belong to the dead connection */
    for (query_t **pp = &pg->head; *pp != NULL;) {
        query_t *x = *pp;
        if (x->internal) {
            *pp = x->next;
            query_free(x);
        } else {
            pp = &x->next;
        }
    }
    pg->tail = NULL;
    for (query_t *x = pg->head; x != NULL; x = x->next)
        pg->tail = x;
    schedule_reconnect(pg);
    if (was_up && pg->ev.on_disconnect != NULL)
        pg->ev.on_disconnect(pg->ev.data);
}

/* ---- public ---- */

static char *build_listen_sql(const char *const *channels)
{
    gw_buf_t b = {0};
    for (size_t i = 0; channels != NULL && channels[i] != NULL; i++) {
        gw_buf_puts(&b, "LISTEN \"");
        for (const char *c = channels[i]; *c; c++) {
            if (*c == '"')
                gw_buf_putc(&b, '"');
            gw_buf_putc(&b, *c);
        }
        gw_buf_puts(&b, "\";");
    }
    if (b.len == 0) { /* no channels: the first round trip still proves the session works before PG_READY */
        gw_buf_free(&b);
        return gw_xstrdup("SELECT 1");
    }
    return gw_buf_take(&b);
}

gw_pg_t *gw_pg_create(uv_loop_t *loop, const char *conninfo, const char *const *channels, const gw_pg_events_t *ev,
                      uint64_t query_timeout_ms)
{
    gw_pg_t *pg = calloc(1, sizeof(*pg));
    if (pg == NULL)
        abort();
    pg->loop = loop;
    pg->conninfo = gw_xstrdup(conninfo);
    pg->listen_sql = build_listen_sql(channels);
    if (ev != NULL)
        pg->ev = *ev;
    pg->query_timeout_ms = query_timeout_ms;
    pg->poll_fd = -1;
    pg->state = PG_DOWN;
    if (uv_timer_init(loop, &pg->retry_timer) != 0)
        abort();
    return pg;
}

int gw_pg_start(gw_pg_t *pg)
{
    start_connect(pg);
    return 0;
}

void gw_pg_query(gw_pg_t *pg, const char *name, const char *sql, int nparams, const char *const *params, int flags, gw_pg_cb cb,
                 void *data)
{
    if (pg->state == PG_CLOSING)
        return; /* shutdown is staged: callers finish their writes before closing */
    query_t *q = query_new(name, sql, nparams, params, flags);
    q->cb = cb;
    q->data = data;
    q->queued_at = uv_now(pg->loop);
    push_back(pg, q);
    send_next(pg);
}

static void expire_queued(gw_pg_t *pg, uint64_t now)
{
    query_t *expired = NULL;
    for (query_t **pp = &pg->head; *pp != NULL;) {
        query_t *x = *pp;
        if (!(x->flags & GW_PG_RETRY) && !x->internal && now - x->queued_at > pg->query_timeout_ms) {
            *pp = x->next;
            x->next = expired;
            expired = x;
        } else {
            pp = &x->next;
        }
    }
    pg->tail = NULL;
    for (query_t *x = pg->head; x != NULL; x = x->next)
        pg->tail = x;
    while (expired != NULL) { /* callbacks last: they may queue more */
        query_t *x = expired;
        expired = x->next;
        query_fail(x, "database unavailable");
    }
}

void gw_pg_tick(gw_pg_t *pg)
{
    uint64_t now = uv_now(pg->loop);
    if (pg->state == PG_CLOSING)
        return;
    if (pg->state != PG_READY)
        expire_queued(pg, now);
    if (pg->inflight != NULL && now - pg->inflight_since > pg->query_timeout_ms) {
        handle_broken(pg, "query timed out");
        return;
    }
    if (pg->state == PG_READY && pg->inflight == NULL && pg->head == NULL && now - pg->last_activity > KEEPALIVE_IDLE_MS) {
        /* proves a quiet LISTEN socket is still alive; a dead one times out above */
        query_t *q = query_new(NULL, "SELECT 1", 0, NULL, 0);
        q->internal = true;
        q->queued_at = now;
        pg->last_activity = now;
        push_back(pg, q);
        send_next(pg);
    }
}

bool gw_pg_connected(const gw_pg_t *pg)
{
    return pg->state == PG_READY;
}

size_t gw_pg_pending(const gw_pg_t *pg)
{
    size_t n = pg->inflight != NULL && !pg->inflight->internal;
    for (query_t *q = pg->head; q != NULL; q = q->next)
        n += !q->internal;
    return n;
}

uint64_t gw_pg_reconnects(const gw_pg_t *pg)
{
    return pg->connections > 0 ? pg->connections - 1 : 0;
}

static void pg_closed(uv_handle_t *h)
{
    gw_pg_t *pg = (gw_pg_t *)h;
    free(pg->prepared);
    free(pg->conninfo);
    free(pg->listen_sql);
    free(pg);
}

void gw_pg_close(gw_pg_t *pg)
{
    if (pg->state == PG_CLOSING)
        return;
    pg->state = PG_CLOSING;
    uv_timer_stop(&pg->retry_timer);
    query_t *q = pg->inflight;
    pg->inflight = NULL;
    connection_lost(pg);
    if (q != NULL)
        query_fail(q, "shutting down");
    while ((q = pop_front(pg)) != NULL)
        query_fail(q, "shutting down");
    uv_close((uv_handle_t *)&pg->retry_timer, pg_closed);
}
