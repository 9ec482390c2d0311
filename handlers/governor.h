#ifndef GW_GOVERNOR_H
#define GW_GOVERNOR_H
/* Gemini as a shared, metered resource. Quotas (requests and tokens per minute) belong to the project and model, so
 * every worker instance asks one PostgreSQL row per model (sql/015) before a generateContent call: one round trip
 * returns a reservation "start in wait_ms", spaced evenly under GEMINI_RPM / GEMINI_TPM. Callers wait on the loop in a
 * FIFO per model (one uv timer per model, no thread blocked, no polling). A 429 with a retryDelay pauses the model here
 * and, through the row, in every instance. Prices (GEMINI_PRICES) turn usageMetadata into an estimated cost.
 * Without a database (glint-worker analyze) or when the database does not answer, the same arithmetic runs locally. */
#include "handlers/queue.h"
#include "handlers/settings.h"
#include "reactor/pg.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

/* ---- pure arithmetic (tests/unit/test_governor.c) ---------------------------------------------------------------- */

/* Reads the limit for model from a GEMINI_RPM/GEMINI_TPM value: comma-separated entries, each "N" (every model) or
 * "model=N" (that model; wins over "N"). Blanks around entries are ignored. *out = 0 when nothing applies.
 * Returns 0, or -1 when the value is malformed (negative, not a number, empty model name). */
int gw_gov_limit_for(const char *spec, const char *model, long *out);

typedef struct st_gw_gov_price_t {
    double input, output, thinking; /* USD per 1M tokens */
} gw_gov_price_t;

/* Reads model's price from a GEMINI_PRICES value: comma-separated "model=input/output[/thinking]" (thinking defaults
 * to output). Returns 1 found, 0 not listed, -1 malformed. */
int gw_gov_price_for(const char *spec, const char *model, gw_gov_price_t *out);

/* USD for one usage (negative counts are taken as 0). */
double gw_gov_cost_usd(const gw_gov_price_t *p, const gw_usage_t *u);

typedef enum en_gw_gov_media_t {
    GW_GOV_MEDIA_NONE,      /* text only (the transcript is in the body) */
    GW_GOV_MEDIA_AUDIO,     /* an audio file: 32 tokens per second */
    GW_GOV_MEDIA_VIDEO_LOW, /* video at MEDIA_RESOLUTION_LOW: 66 per frame (1 fps) + 32 audio = ~100 per second */
    GW_GOV_MEDIA_VIDEO,     /* video at default resolution: 258 per frame + 32 audio = ~300 per second */
} gw_gov_media_t;

/* Tokens a call is expected to use before it is made: body bytes / 4 (JSON text is ~4 bytes a token) + the media part
 * (seconds x the rate above) + the output budget (maxOutputTokens, which covers thinking too). An overestimate is given
 * back by gw_governor_settle once usageMetadata is known. */
int64_t gw_gov_estimate_tokens(size_t body_bytes, gw_gov_media_t media, double media_seconds, long max_output_tokens);

/* The spacing window: the configured window plus 1/32 of it, so that jitter between the admission and the request's
 * arrival at Gemini never lets a sliding window see limit + 1 requests (60 s -> 61.875 s; 3.1 % of throughput). */
int64_t gw_gov_window_us(long window_ms);

/* One model's schedule, the local twin of a glint_gemini_budget row (microseconds on one clock; INT64_MIN = never). */
typedef struct st_gw_gov_bucket_t {
    int64_t next_request_us, next_token_us, paused_until_us;
} gw_gov_bucket_t;

void gw_gov_bucket_init(gw_gov_bucket_t *b);
/* glint_gemini_admit's arithmetic: returns true with *wait_us >= 0 (a reservation is made), or false while paused
 * (*wait_us until the pause ends; nothing reserved). rpm/tpm <= 0 = no such limit. */
bool gw_gov_reserve(gw_gov_bucket_t *b, int64_t now_us, int64_t est_tokens, long rpm, long tpm, int64_t window_us,
                    int64_t *wait_us);
/* glint_gemini_settle: real - estimated tokens move the token schedule. */
void gw_gov_settle(gw_gov_bucket_t *b, int64_t delta_tokens, long tpm, int64_t window_us);
/* glint_gemini_pause: no start before now + ms. */
void gw_gov_pause(gw_gov_bucket_t *b, int64_t now_us, uint64_t ms);

/* ---- the governor on the loop ------------------------------------------------------------------------------------ */

typedef struct st_gw_governor_t gw_governor_t;
typedef struct st_gw_gov_ticket_t gw_gov_ticket_t;
typedef void (*gw_gov_go_cb)(void *data);

/* pg may be NULL (local only). NULL with a one-line reason in err when GEMINI_RPM, GEMINI_TPM or GEMINI_PRICES is
 * malformed. */
gw_governor_t *gw_governor_create(uv_loop_t *loop, gw_pg_t *pg, const gw_settings_t *cfg, char *err, size_t errlen);
/* After the loop stopped (every pg callback has run); cancels nothing: callers cancel their tickets first. */
void gw_governor_free(gw_governor_t *g);

/* Queues a call of est_tokens to model; go(data) runs once on the loop when it may start (never from inside acquire).
 * Returns the ticket, valid until go runs or gw_governor_cancel. */
gw_gov_ticket_t *gw_governor_acquire(gw_governor_t *g, const char *model, int64_t est_tokens, gw_gov_go_cb go, void *data);
/* The call is no longer wanted: go never runs; tokens reserved for it are given back. NULL-safe. */
void gw_governor_cancel(gw_gov_ticket_t *t);
/* settle, pause and cost are no-ops (cost: false) when g is NULL (no governor: the test pipeline).
 * After a call that was admitted with est_tokens: real = its usageMetadata, or NULL when no answer carried one (the
 * estimate is then given back). Adds the call's cost to glint_gemini_cost_usd_total{model}. */
void gw_governor_settle(gw_governor_t *g, const char *model, int64_t est_tokens, const gw_usage_t *real);
/* A 429 with RetryInfo.retryDelay: no call to model starts for ms, here and (through the database) everywhere. */
void gw_governor_pause(gw_governor_t *g, const char *model, uint64_t ms);
/* The cost of u at model's price; false when GEMINI_PRICES does not list model. */
bool gw_governor_cost(const gw_governor_t *g, const char *model, const gw_usage_t *u, double *usd);

#endif
