#ifndef GW_EMBED_H
#define GW_EMBED_H
#include <stddef.h>

/* Files compiled into the binary by cmake/embed.cmake; each table ends with a NULL name. */
typedef struct st_gw_embedded_t {
    const char *name;
    const char *data; /* NUL-terminated */
    size_t len;
} gw_embedded_t;

extern const gw_embedded_t gw_migrations[]; /* sql/NNN_*.sql, sorted by name */
extern const gw_embedded_t gw_assets[];     /* handlers/assets/ files */

#endif
