#ifndef GW_API_H
#define GW_API_H
/* HTTP endpoints: /health, /metrics, /worker/jobs/{id}, /worker/jobs/{id}/cancel. */
#include "handlers/app.h"

void gw_api_register(gw_app_t *app);

#endif
