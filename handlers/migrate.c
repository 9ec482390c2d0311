#include "handlers/migrate.h"
#include "reactor/embed.h"
#include <libpq-fe.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

/* Arbitrary constant shared by every instance: serializes concurrent migrators. */
#define MIGRATION_LOCK_KEY "7413370001"

static bool exec_ok(PGconn *c, const char *sql, int nparams, const char *const *params, char *err, size_t errlen)
{
    PGresult *r = PQexecParams(c, sql, nparams, NULL, params, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(r);
    bool ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
    if (!ok) {
        snprintf(err, errlen, "%s", PQresultErrorMessage(r));
        err[strcspn(err, "\n")] = '\0';
    }
    PQclear(r);
    return ok;
}

/* Runs one migration unless already recorded, inside the caller's transaction. Returns 1 applied, 0 skipped, -1 error. */
static int apply_one(PGconn *c, const gw_embedded_t *m, char *err, size_t errlen)
{
    const char *params[] = {m->name};
    PGresult *r = PQexecParams(c, "SELECT 1 FROM glint_migrations WHERE name = $1", 1, NULL, params, NULL, NULL, 0);
    bool ok = PQresultStatus(r) == PGRES_TUPLES_OK, done = ok && PQntuples(r) > 0;
    if (!ok) {
        snprintf(err, errlen, "%s", PQresultErrorMessage(r));
        err[strcspn(err, "\n")] = '\0';
    }
    PQclear(r);
    if (!ok)
        return -1;
    if (done)
        return 0;
    /* PQexec (simple protocol) runs a file of several statements */
    r = PQexec(c, m->data);
    if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK) {
        char msg[600];
        snprintf(msg, sizeof(msg), "%s", PQresultErrorMessage(r));
        msg[strcspn(msg, "\n")] = '\0';
        snprintf(err, errlen, "%s: %s", m->name, msg);
        PQclear(r);
        return -1;
    }
    PQclear(r);
    return exec_ok(c, "INSERT INTO glint_migrations (name) VALUES ($1)", 1, params, err, errlen) ? 1 : -1;
}

/* All pending migrations in ONE transaction: a run that fails anywhere (a conflicting pre-existing table, a lost
 * connection) leaves the database exactly as it found it, never half-migrated. */
static int apply_all(PGconn *c, int *applied, char *err, size_t errlen)
{
    if (!exec_ok(c, "BEGIN", 0, NULL, err, errlen))
        return -1;
    int n = 0;
    bool ok =
        exec_ok(c, "SELECT pg_advisory_xact_lock(" MIGRATION_LOCK_KEY ")", 0, NULL, err, errlen) &&
        exec_ok(
            c, "CREATE TABLE IF NOT EXISTS glint_migrations (name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())",
            0, NULL, err, errlen);
    for (const gw_embedded_t *m = gw_migrations; ok && m->name != NULL; m++) {
        int r = apply_one(c, m, err, errlen);
        ok = r >= 0;
        n += r > 0;
    }
    if (!ok || !exec_ok(c, "COMMIT", 0, NULL, err, errlen)) {
        PQclear(PQexec(c, "ROLLBACK"));
        return -1;
    }
    *applied = n;
    return 0;
}

int gw_migrate(const char *conninfo, int *applied, char *err, size_t errlen)
{
    *applied = 0;
    err[0] = '\0';
    PGconn *c = PQconnectdb(conninfo);
    if (PQstatus(c) != CONNECTION_OK) {
        snprintf(err, errlen, "cannot connect: %s", PQerrorMessage(c));
        err[strcspn(err, "\n")] = '\0';
        PQfinish(c);
        return -1;
    }
    PQclear(PQexec(c, "SET client_min_messages = warning"));
    int rc = apply_all(c, applied, err, errlen);
    PQfinish(c);
    return rc;
}
