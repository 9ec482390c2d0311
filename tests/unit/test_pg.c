/* reactor/pg against the real PostgreSQL of the test fixture: connect, FIFO order, prepared statements, errors,
 * LISTEN, a killed backend (in-flight query fails, GW_PG_RETRY query survives, reconnect, LISTEN re-issued), query
 * timeout, an unreachable server, and close. A blocking libpq side connection plays the administrator. */
#define _GNU_SOURCE
#include "check.h"
#include "reactor/pg.h"
#include <stdlib.h>

static uv_loop_t loop;
static uv_timer_t ticker;
static gw_pg_t *pg;
static int connects, disconnects, notifies;
static char last_payload[64];

typedef struct st_reply_t {
    bool done;
    bool ok;
    char value[64];
    char error[128];
} reply_t;

static void on_connect(void *d)
{
    connects++;
}

static void on_disconnect(void *d)
{
    disconnects++;
}

static void on_notify(const char *channel, const char *payload, void *d)
{
    if (strcmp(channel, "gw_test_chan") == 0) {
        notifies++;
        snprintf(last_payload, sizeof(last_payload), "%s", payload);
    }
}

static void on_reply(PGresult *res, const char *error, void *data)
{
    reply_t *r = data;
    r->done = true;
    if (res == NULL) {
        snprintf(r->error, sizeof(r->error), "%s", error ? error : "");
        return;
    }
    r->ok = PQresultStatus(res) == PGRES_TUPLES_OK || PQresultStatus(res) == PGRES_COMMAND_OK;
    if (r->ok && PQntuples(res) > 0)
        snprintf(r->value, sizeof(r->value), "%s", PQgetvalue(res, 0, 0));
    if (!r->ok)
        snprintf(r->error, sizeof(r->error), "%s", PQresultErrorField(res, PG_DIAG_SQLSTATE));
}

static void on_tick(uv_timer_t *t)
{
    if (pg != NULL)
        gw_pg_tick(pg);
}

/* Runs the loop until *flag is set or ms pass; returns whether it was set. */
static bool run_until(const bool *flag, uint64_t ms)
{
    uint64_t end = uv_now(&loop) + ms;
    while (!*flag && uv_now(&loop) < end)
        uv_run(&loop, UV_RUN_ONCE);
    return *flag;
}

static bool run_until_int(const int *v, int want, uint64_t ms)
{
    uint64_t end = uv_now(&loop) + ms;
    while (*v < want && uv_now(&loop) < end)
        uv_run(&loop, UV_RUN_ONCE);
    return *v >= want;
}

static char *conninfo_from_state(void)
{
    const char *state = getenv("GW_PG_STATE");
    FILE *f = state ? fopen(state, "r") : NULL;
    char line[1024], *url = NULL;
    if (f == NULL)
        return NULL;
    while (fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, "DATABASE_URL=", 13) == 0) {
            line[strcspn(line, "\n")] = '\0';
            url = strdup(line + 13);
        }
    }
    fclose(f);
    return url;
}

static void query(const char *name, const char *sql, int n, const char *const *params, int flags, reply_t *r)
{
    memset(r, 0, sizeof(*r));
    gw_pg_query(pg, name, sql, n, params, flags, on_reply, r);
}

#define NFIFO 200

static void test_fifo_and_prepared(void)
{
    static reply_t replies[NFIFO];
    static char vals[NFIFO][12];
    for (int i = 0; i < NFIFO; i++) {
        snprintf(vals[i], sizeof(vals[i]), "%d", i);
        const char *p[] = {vals[i]};
        query(i % 2 ? "t_echo" : NULL, "SELECT $1::int * 2", 1, p, 0, &replies[i]);
    }
    CHECK(gw_pg_pending(pg) > 0);
    CHECK(run_until(&replies[NFIFO - 1].done, 5000));
    int in_order = 0;
    for (int i = 0; i < NFIFO; i++)
        in_order += replies[i].done && replies[i].ok && atoi(replies[i].value) == 2 * i;
    CHECK_INT(in_order, NFIFO);
    reply_t r;
    query(NULL, "SELECT count(*) FROM pg_prepared_statements WHERE name = 't_echo'", 0, NULL, 0, &r);
    CHECK(run_until(&r.done, 2000));
    CHECK_STR(r.value, "1"); /* prepared once on this connection, executed 100 times */
    CHECK_INT(gw_pg_pending(pg), 0);
}

static void test_errors_do_not_stick(void)
{
    reply_t bad, good;
    query(NULL, "SELECT * FROM no_such_table", 0, NULL, 0, &bad);
    query(NULL, "SELECT 'after'", 0, NULL, 0, &good);
    CHECK(run_until(&good.done, 2000));
    CHECK(bad.done && !bad.ok);
    CHECK_STR(bad.error, "42P01"); /* undefined_table */
    CHECK_STR(good.value, "after");
    const char *p[] = {"it's; DROP TABLE x; --"};
    reply_t echo;
    query(NULL, "SELECT $1::text", 1, p, 0, &echo);
    CHECK(run_until(&echo.done, 2000));
    CHECK_STR(echo.value, p[0]); /* parameters are data, never SQL */
}

static void test_listen(void)
{
    reply_t r;
    int before = notifies;
    query(NULL, "SELECT pg_notify('gw_test_chan', 'hello')", 0, NULL, 0, &r);
    CHECK(run_until_int(&notifies, before + 1, 2000));
    CHECK_STR(last_payload, "hello");
}

static void test_killed_backend(PGconn *admin)
{
    reply_t pid, sleeping, retried, plain_after;
    query(NULL, "SELECT pg_backend_pid()", 0, NULL, 0, &pid);
    CHECK(run_until(&pid.done, 2000));
    query(NULL, "SELECT pg_sleep(30)", 0, NULL, 0, &sleeping);
    query(NULL, "SELECT 42", 0, NULL, GW_PG_RETRY, &retried);
    uv_run(&loop, UV_RUN_NOWAIT);
    const char *p[] = {pid.value};
    PGresult *res = PQexecParams(admin, "SELECT pg_terminate_backend($1::int)", 1, NULL, p, NULL, NULL, 0);
    CHECK(PQresultStatus(res) == PGRES_TUPLES_OK && strcmp(PQgetvalue(res, 0, 0), "t") == 0);
    PQclear(res);
    CHECK(run_until(&retried.done, 10000));
    CHECK(sleeping.done && !sleeping.ok && sleeping.error[0] != '\0'); /* in flight when the backend died */
    CHECK(retried.ok);
    CHECK_STR(retried.value, "42"); /* re-sent after the reconnect */
    CHECK(disconnects >= 1);
    CHECK(connects >= 2);
    CHECK_INT(gw_pg_reconnects(pg), 1);
    CHECK(gw_pg_connected(pg));
    /* prepared statements are per connection: the name must be prepared again, not assumed */
    const char *p2[] = {"21"};
    query("t_echo", "SELECT $1::int * 2", 1, p2, 0, &plain_after);
    CHECK(run_until(&plain_after.done, 2000));
    CHECK_STR(plain_after.value, "42");
    test_listen(); /* LISTEN was re-issued */
}

static void test_query_timeout(void)
{
    reply_t slow, next;
    query(NULL, "SELECT pg_sleep(10)", 0, NULL, 0, &slow);
    query(NULL, "SELECT 'next'", 0, NULL, GW_PG_RETRY, &next);
    uint64_t t0 = uv_now(&loop);
    CHECK(run_until(&slow.done, 5000));
    uint64_t took = uv_now(&loop) - t0;
    CHECK(!slow.ok && took < 3000); /* the timeout is 1 s: a stuck statement cannot hold the queue for 10 s */
    CHECK(run_until(&next.done, 10000));
    CHECK_STR(next.value, "next");
}

static void test_unreachable(void)
{
    gw_pg_t *dead = gw_pg_create(&loop, "postgresql://postgres@127.0.0.1:1/postgres?connect_timeout=2", NULL, NULL, 500);
    CHECK(gw_pg_start(dead) == 0);
    reply_t r;
    memset(&r, 0, sizeof(r));
    gw_pg_query(dead, NULL, "SELECT 1", 0, NULL, 0, on_reply, &r);
    uint64_t end = uv_now(&loop) + 5000;
    while (!r.done && uv_now(&loop) < end) {
        uv_run(&loop, UV_RUN_ONCE);
        gw_pg_tick(dead);
    }
    CHECK(r.done && !r.ok && r.error[0] != '\0');
    CHECK(!gw_pg_connected(dead));
    reply_t queued;
    memset(&queued, 0, sizeof(queued));
    gw_pg_query(dead, NULL, "SELECT 1", 0, NULL, GW_PG_RETRY, on_reply, &queued);
    gw_pg_close(dead);
    CHECK(queued.done);
    CHECK_STR(queued.error, "shutting down");
}

int main(void)
{
    char *url = conninfo_from_state();
    if (url == NULL) {
        fprintf(stderr, "GW_PG_STATE (the ctest PostgreSQL fixture) is required\n");
        return 1;
    }
    PGconn *admin = PQconnectdb(url);
    CHECK(PQstatus(admin) == CONNECTION_OK);
    uv_loop_init(&loop);
    uv_timer_init(&loop, &ticker);
    uv_timer_start(&ticker, on_tick, 50, 50);
    const char *channels[] = {"gw_test_chan", NULL};
    gw_pg_events_t ev = {on_connect, on_disconnect, on_notify, NULL};
    pg = gw_pg_create(&loop, url, channels, &ev, 1000);
    CHECK(gw_pg_start(pg) == 0);
    CHECK(run_until_int(&connects, 1, 5000));
    CHECK(gw_pg_connected(pg));

    test_fifo_and_prepared();
    test_errors_do_not_stick();
    test_listen();
    test_killed_backend(admin);
    test_query_timeout();
    test_unreachable();

    reply_t pending;
    query(NULL, "SELECT 1", 0, NULL, 0, &pending);
    gw_pg_close(pg);
    pg = NULL;
    CHECK(pending.done); /* close fails what is queued instead of dropping callbacks */
    uv_close((uv_handle_t *)&ticker, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK_INT(uv_loop_close(&loop), 0);
    PQfinish(admin);
    free(url);
    return check_report();
}
