#ifndef GW_PG_H
#define GW_PG_H
/* One asynchronous PostgreSQL connection on the loop: connect/reconnect with backoff and jitter, LISTEN on given
 * channels (re-issued after every reconnect), and a FIFO of parameterized queries sent one at a time.
 *
 * Queries flagged GW_PG_RETRY survive a lost connection: they are sent again after the reconnect (use only for
 * statements that are harmless to repeat). Other queries fail with an error when the connection drops while they are
 * in flight, or when they waited longer than the query timeout for a connection. */
#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

typedef struct st_gw_pg_t gw_pg_t;

/* res: the statement's result (check PQresultStatus; freed after the callback returns), or NULL with error set when
 * the query could not run (connection lost, timed out, shutting down). */
typedef void (*gw_pg_cb)(PGresult *res, const char *error, void *data);

typedef struct st_gw_pg_events_t {
    void (*on_connect)(void *data);    /* connected and LISTENing: catch up on anything missed */
    void (*on_disconnect)(void *data); /* lost; notifications sent meanwhile are gone */
    void (*on_notify)(const char *channel, const char *payload, void *data);
    void *data;
} gw_pg_events_t;

enum {
    GW_PG_RETRY = 1, /* re-send after a reconnect instead of failing */
};

gw_pg_t *gw_pg_create(uv_loop_t *loop, const char *conninfo, const char *const *channels, const gw_pg_events_t *ev,
                      uint64_t query_timeout_ms);
int gw_pg_start(gw_pg_t *pg);
/* name != NULL: prepared once per connection under that name, then executed by name (saves parse/plan). */
void gw_pg_query(gw_pg_t *pg, const char *name, const char *sql, int nparams, const char *const *params, int flags, gw_pg_cb cb,
                 void *data);
/* Keepalive and timeouts; call about every 250 ms. */
void gw_pg_tick(gw_pg_t *pg);
bool gw_pg_connected(const gw_pg_t *pg);
/* Queries queued or in flight. */
size_t gw_pg_pending(const gw_pg_t *pg);
uint64_t gw_pg_reconnects(const gw_pg_t *pg);
/* Fails what is still queued with error "shutting down", closes the socket and frees itself once its handles are
 * closed (let uv_run finish). */
void gw_pg_close(gw_pg_t *pg);

#endif
