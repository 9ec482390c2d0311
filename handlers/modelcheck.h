#ifndef GW_MODELCHECK_H
#define GW_MODELCHECK_H
/* The Gemini configuration check: GET {base}/v1beta/models/{model} (models.get) for each configured model, at start and
 * then periodically. A model Gemini does not know (404) or a key it refuses (401/403, 400 API_KEY_INVALID) is the
 * operator's trouble, not the users': the state becomes FAILED, which the daemon turns into "claim nothing" and a 503
 * from /readyz, with exactly one ERROR line (hence one Sentry event) per failing state, not per check. It is rechecked
 * with backoff (retry_ms doubling up to interval_ms) until it passes, and claiming resumes. When Gemini cannot be asked
 * (network, 5xx, 429) the verdict is kept, or is UNVERIFIED at start: jobs run and retry on their own. */
#include "reactor/fetch.h"
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#define GW_MODELCHECK_MAX_MODELS 4

typedef struct st_gw_modelcheck_t gw_modelcheck_t;

typedef enum en_gw_modelcheck_state_t {
    GW_MODELCHECK_OFF,        /* no model needed (local analyzer): never blocks */
    GW_MODELCHECK_PENDING,    /* the first check is in flight: claims wait for it */
    GW_MODELCHECK_OK,         /* every configured model answered 200 */
    GW_MODELCHECK_UNVERIFIED, /* Gemini could not be asked yet (network, 5xx, 429): claims go on, rechecked with backoff */
    GW_MODELCHECK_FAILED,     /* a model (404) or the key (401/403) was refused: claims paused, rechecked with backoff */
} gw_modelcheck_state_t;

typedef struct st_gw_modelcheck_opts_t {
    const char *base_url;
    const char *api_key;
    const char *models[GW_MODELCHECK_MAX_MODELS]; /* NULL-terminated when fewer; duplicates are checked once */
    const char *labels[GW_MODELCHECK_MAX_MODELS]; /* the setting each model comes from, e.g. "GEMINI_FLASH_MODEL" */
    uint64_t interval_ms;                         /* recheck while passing; the longest backoff while failing */
    uint64_t retry_ms;                            /* first recheck after a failure */
    uint64_t timeout_ms;                          /* one models.get */
    /* called on every state change (also the first verdict); may be NULL */
    void (*on_change)(gw_modelcheck_state_t state, void *data);
    void *data;
} gw_modelcheck_opts_t;

/* Starts the first check at once. Strings are copied. */
gw_modelcheck_t *gw_modelcheck_start(uv_loop_t *loop, gw_fetcher_t *fetcher, const gw_modelcheck_opts_t *opts);
/* NULL = OFF. */
gw_modelcheck_state_t gw_modelcheck_state(const gw_modelcheck_t *m);
const char *gw_modelcheck_state_name(gw_modelcheck_state_t s); /* "off", "pending", "ok", "unverified", "failed" */
/* True while claims must wait: PENDING or FAILED. */
bool gw_modelcheck_blocks(const gw_modelcheck_t *m);
/* What is wrong, for /readyz ("" when nothing; never contains the key). */
const char *gw_modelcheck_problem(const gw_modelcheck_t *m);
/* Checks again now (e.g. after Gemini refused the key during a job); no-op while a check is in flight. */
void gw_modelcheck_recheck(gw_modelcheck_t *m);
/* Cancels what is in flight and frees itself once its timer is closed. Before gw_fetcher_close. NULL is ignored. */
void gw_modelcheck_stop(gw_modelcheck_t *m);

#endif
