#ifndef GW_MIGRATE_H
#define GW_MIGRATE_H
/* Applies the sql/ migrations compiled into the binary, all pending ones in one transaction under an advisory lock,
 * recorded in glint_migrations: idempotent, never half-applied, and safe when several instances migrate at once.
 * Blocking (runs before the loop). */
#include <stddef.h>

/* Returns 0 on success (err empty), -1 with a one-line reason in err. *applied = migrations newly applied. */
int gw_migrate(const char *conninfo, int *applied, char *err, size_t errlen);

#endif
