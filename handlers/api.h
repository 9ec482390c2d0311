#ifndef GW_API_H
#define GW_API_H
/* HTTP endpoints: the dashboard (/ and its assets), /openapi.json, /health, /livez, /readyz, /metrics, /worker/jobs (list),
 * /worker/jobs/{id}, /worker/jobs/{id}/cancel. */
#include "handlers/app.h"

void gw_api_register(gw_app_t *app);

/* One job as JSON text (column 0), parameter $1 = job id; shared by GET /worker/jobs/{id} and `glint-worker status`. */
extern const char gw_api_job_sql[];

/* A job id as PostgreSQL prints a uuid (36 characters, lower- or upper-case hex): checked before any query. */
bool gw_api_valid_uuid(const char *s);

#endif
