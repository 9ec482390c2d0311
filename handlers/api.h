#ifndef GW_API_H
#define GW_API_H
/* HTTP endpoints: the dashboard (/ and its assets), /openapi.json, /health, /metrics, /worker/jobs (list),
 * /worker/jobs/{id}, /worker/jobs/{id}/cancel. */
#include "handlers/app.h"

void gw_api_register(gw_app_t *app);

/* One job as JSON text (column 0), parameter $1 = job id; shared by GET /worker/jobs/{id} and `glint-worker status`. */
extern const char gw_api_job_sql[];

#endif
