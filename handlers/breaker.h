#ifndef GW_BREAKER_H
#define GW_BREAKER_H
/* The yt-dlp bot-check breaker: YouTube answers "Sign in to confirm you're not a bot" to an address it distrusts, and
 * every further run from that address makes it worse. After `threshold` bot checks within `window_ms` the breaker
 * opens: no YouTube yt-dlp run starts for a cool-down. Then one run is let through as a probe (half-open): not
 * bot-checked closes the breaker; bot-checked again reopens it with the cool-down doubled, up to cooldown_max_ms.
 * Process-wide, loop thread only; times are loop milliseconds (uv_now). Pure bookkeeping: the caller spawns, defers
 * jobs, logs and reports. */
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#define GW_BREAKER_MAX_THRESHOLD 64

typedef enum en_gw_breaker_state_t {
    GW_BREAKER_CLOSED,    /* runs start */
    GW_BREAKER_OPEN,      /* cooling down: runs wait */
    GW_BREAKER_HALF_OPEN, /* cool-down over: one probe run admitted (or about to be) */
} gw_breaker_state_t;

typedef struct st_gw_breaker_opts_t {
    unsigned threshold; /* 0 = never opens; at most GW_BREAKER_MAX_THRESHOLD */
    uint64_t window_ms, cooldown_ms, cooldown_max_ms;
} gw_breaker_opts_t;

/* (Re)configures and resets the breaker to CLOSED (counters too). */
void gw_breaker_configure(const gw_breaker_opts_t *opts);
/* May a YouTube yt-dlp run start now? True: go, and *probe tells whether it is the half-open probe (report its
 * outcome with probe = true). False: *retry_at is when to ask again (the end of the cool-down, or, while a probe is
 * out, one base cool-down later). A probe that never reports (its job was aborted) is replaced after cooldown_max_ms. */
bool gw_breaker_admit(uint64_t now, uint64_t *retry_at, bool *probe);
/* A YouTube yt-dlp run ended. bot_check: YouTube demanded the bot check; otherwise it answered (even "private video").
 * Returns true when this report opened the breaker from CLOSED (the caller sends one Sentry event per opening). */
bool gw_breaker_report(uint64_t now, bool bot_check, bool probe);
/* A probe whose run never started or was abandoned: the next admit may send another. */
void gw_breaker_probe_abandoned(void);

gw_breaker_state_t gw_breaker_state(uint64_t now);
const char *gw_breaker_state_name(gw_breaker_state_t s); /* "closed", "open", "half_open" */
uint64_t gw_breaker_reopen_at(void);                     /* end of the current cool-down (0 when closed) */
uint64_t gw_breaker_cooldown_ms(void);                   /* the current cool-down */
uint64_t gw_breaker_bot_checks_total(void);
uint64_t gw_breaker_openings_total(void);
/* {"state":"open","reopens_in_ms":N,"cooldown_ms":N,"bot_checks_total":N,"openings_total":N} for /health and /readyz
 * (informational: an open breaker does not make the worker unready; other jobs still run). New reference. */
json_t *gw_breaker_json(uint64_t now);

#endif
