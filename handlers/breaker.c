/* The yt-dlp bot-check breaker (handlers/breaker.h). */
#include "handlers/breaker.h"
#include <string.h>

static struct {
    gw_breaker_opts_t o;
    uint64_t checks[GW_BREAKER_MAX_THRESHOLD]; /* ring of the latest bot checks' times while closed */
    unsigned nchecks, head;
    bool open;
    uint64_t until, cooldown;
    bool probe_out;
    uint64_t probe_at;
    uint64_t total, openings;
} br = {.o = {3, 600000, 60000, 1800000}, .cooldown = 60000};

void gw_breaker_configure(const gw_breaker_opts_t *opts)
{
    memset(&br, 0, sizeof(br));
    br.o = *opts;
    if (br.o.threshold > GW_BREAKER_MAX_THRESHOLD)
        br.o.threshold = GW_BREAKER_MAX_THRESHOLD;
    if (br.o.cooldown_max_ms < br.o.cooldown_ms)
        br.o.cooldown_max_ms = br.o.cooldown_ms;
    br.cooldown = br.o.cooldown_ms;
}

gw_breaker_state_t gw_breaker_state(uint64_t now)
{
    if (!br.open)
        return GW_BREAKER_CLOSED;
    return now < br.until ? GW_BREAKER_OPEN : GW_BREAKER_HALF_OPEN;
}

const char *gw_breaker_state_name(gw_breaker_state_t s)
{
    return s == GW_BREAKER_OPEN ? "open" : s == GW_BREAKER_HALF_OPEN ? "half_open" : "closed";
}

bool gw_breaker_admit(uint64_t now, uint64_t *retry_at, bool *probe)
{
    *probe = false;
    *retry_at = now;
    if (!br.open)
        return true;
    if (now < br.until) {
        *retry_at = br.until;
        return false;
    }
    if (br.probe_out && now - br.probe_at < br.o.cooldown_max_ms) {
        *retry_at = now + br.o.cooldown_ms; /* the probe is out: ask again after it has likely answered */
        return false;
    }
    br.probe_out = true;
    br.probe_at = now;
    *probe = true;
    return true;
}

static void open_for(uint64_t now, uint64_t cooldown)
{
    br.open = true;
    br.cooldown = cooldown < br.o.cooldown_max_ms ? cooldown : br.o.cooldown_max_ms;
    br.until = now + br.cooldown;
    br.probe_out = false;
}

bool gw_breaker_report(uint64_t now, bool bot_check, bool probe)
{
    if (bot_check)
        br.total++;
    if (probe && br.open) {
        if (bot_check) {
            open_for(now, br.cooldown * 2); /* checks continue: wait longer */
        } else {
            br.open = br.probe_out = false; /* YouTube answers again */
            br.cooldown = br.o.cooldown_ms;
            br.nchecks = br.head = 0;
        }
        return false;
    }
    if (!bot_check || br.open || br.o.threshold == 0)
        return false; /* while open, runs started before the opening come back: no new opening */
    br.checks[br.head] = now;
    br.head = (br.head + 1) % br.o.threshold;
    if (br.nchecks < br.o.threshold)
        br.nchecks++;
    if (br.nchecks < br.o.threshold)
        return false;
    /* the ring holds the latest `threshold` checks; the oldest is at head */
    if (now - br.checks[br.head] > br.o.window_ms)
        return false;
    open_for(now, br.o.cooldown_ms);
    br.nchecks = br.head = 0;
    br.openings++;
    return true;
}

void gw_breaker_probe_abandoned(void)
{
    br.probe_out = false;
}

uint64_t gw_breaker_reopen_at(void)
{
    return br.open ? br.until : 0;
}

uint64_t gw_breaker_cooldown_ms(void)
{
    return br.cooldown;
}

uint64_t gw_breaker_bot_checks_total(void)
{
    return br.total;
}

uint64_t gw_breaker_openings_total(void)
{
    return br.openings;
}

json_t *gw_breaker_json(uint64_t now)
{
    gw_breaker_state_t s = gw_breaker_state(now);
    return json_pack("{s:s, s:I, s:I, s:I, s:I}", "state", gw_breaker_state_name(s), "reopens_in_ms",
                     (json_int_t)(s == GW_BREAKER_OPEN ? br.until - now : 0), "cooldown_ms", (json_int_t)br.cooldown,
                     "bot_checks_total", (json_int_t)br.total, "openings_total", (json_int_t)br.openings);
}
