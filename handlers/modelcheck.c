#include "handlers/modelcheck.h"
#include "handlers/gemini.h"
#include "reactor/log.h"
#include "reactor/text.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum en_verdict_t {
    V_OK,           /* 200 */
    V_INCONCLUSIVE, /* no answer, 5xx, 429 …: says nothing about the configuration */
    V_REFUSED,      /* 404 (model) or 401/403/API_KEY_INVALID (key): the operator must act */
} verdict_t;

typedef struct st_slot_t {
    gw_modelcheck_t *m;
    gw_fetch_t *req; /* in flight, else NULL */
    char *model, *label;
} slot_t;

struct st_gw_modelcheck_t {
    uv_timer_t timer; /* first: its close callback frees the struct */
    gw_fetcher_t *fetcher;
    char *base_url, *api_key;
    slot_t slots[GW_MODELCHECK_MAX_MODELS];
    size_t nslots, inflight;
    gw_modelcheck_opts_t opts;
    gw_modelcheck_state_t state;
    unsigned failures; /* consecutive rounds that did not pass: the backoff exponent */
    /* the round in progress */
    verdict_t worst;
    char round_problem[400];
    char problem[400]; /* of the current state */
};

const char *gw_modelcheck_state_name(gw_modelcheck_state_t s)
{
    static const char *const names[] = {"off", "pending", "ok", "unverified", "failed"};
    return (unsigned)s < sizeof(names) / sizeof(names[0]) ? names[s] : "unknown";
}

gw_modelcheck_state_t gw_modelcheck_state(const gw_modelcheck_t *m)
{
    return m != NULL ? m->state : GW_MODELCHECK_OFF;
}

bool gw_modelcheck_blocks(const gw_modelcheck_t *m)
{
    return m != NULL && (m->state == GW_MODELCHECK_PENDING || m->state == GW_MODELCHECK_FAILED);
}

const char *gw_modelcheck_problem(const gw_modelcheck_t *m)
{
    return m != NULL ? m->problem : "";
}

static uint64_t next_delay(gw_modelcheck_t *m)
{
    if (m->state == GW_MODELCHECK_OK) {
        m->failures = 0;
        return m->opts.interval_ms;
    }
    uint64_t d = m->opts.retry_ms;
    for (unsigned i = 0; i < m->failures && d < m->opts.interval_ms; i++)
        d *= 2;
    m->failures++;
    return d < m->opts.interval_ms ? d : m->opts.interval_ms;
}

/* One log line per state entered (a new problem is a new failing state); ERROR lines become Sentry events. */
static void announce(gw_modelcheck_t *m, gw_modelcheck_state_t old, bool new_problem, uint64_t delay)
{
    if (m->state == GW_MODELCHECK_FAILED && (old != GW_MODELCHECK_FAILED || new_problem))
        gw_error("model check failed: %s; claiming no jobs until it passes (rechecked with backoff, next in %llu s)", m->problem,
                 (unsigned long long)(delay / 1000));
    else if (m->state == GW_MODELCHECK_OK && old != GW_MODELCHECK_OK)
        gw_info("model check passed: Gemini knows every configured model%s",
                old == GW_MODELCHECK_FAILED ? "; claiming resumes" : "");
    else if (m->state == GW_MODELCHECK_UNVERIFIED && old != GW_MODELCHECK_UNVERIFIED)
        gw_warn("model check inconclusive: %s; claiming anyway, rechecking in %llu s", m->round_problem,
                (unsigned long long)(delay / 1000));
    else if (m->worst == V_INCONCLUSIVE)
        gw_warn("model check inconclusive: %s; keeping the verdict \"%s\"", m->round_problem, gw_modelcheck_state_name(m->state));
}

static void on_timer(uv_timer_t *t);

static void finish_round(gw_modelcheck_t *m)
{
    gw_modelcheck_state_t old = m->state;
    bool new_problem = false;
    if (m->worst == V_REFUSED) {
        new_problem = strcmp(m->problem, m->round_problem) != 0;
        m->state = GW_MODELCHECK_FAILED;
        snprintf(m->problem, sizeof(m->problem), "%s", m->round_problem);
    } else if (m->worst == V_OK) {
        m->state = GW_MODELCHECK_OK;
        m->problem[0] = '\0';
    } else if (old == GW_MODELCHECK_PENDING || old == GW_MODELCHECK_UNVERIFIED) {
        m->state = GW_MODELCHECK_UNVERIFIED;
        snprintf(m->problem, sizeof(m->problem), "%s", m->round_problem);
    } /* else: OK or FAILED stands until Gemini answers again */
    uint64_t delay = next_delay(m);
    announce(m, old, new_problem, delay);
    if (uv_timer_start(&m->timer, on_timer, delay, 0) != 0)
        gw_warn("model check: cannot arm its timer; no further checks");
    if (m->state != old && m->opts.on_change != NULL)
        m->opts.on_change(m->state, m->opts.data);
}

static void judge(gw_modelcheck_t *m, slot_t *s, gw_fetch_t *req)
{
    long status = gw_fetch_status(req);
    if (gw_fetch_curlcode(req) == 0 && status == 200)
        return;
    gw_gemini_error_t e;
    size_t len;
    gw_gemini_classify_http(status, gw_fetch_data(req, &len), gw_fetch_curlcode(req), &e);
    bool refused = strcmp(e.error_code, "gemini_model_not_found") == 0 || strcmp(e.error_code, "gemini_auth") == 0;
    verdict_t v = refused ? V_REFUSED : V_INCONCLUSIVE;
    if (v > m->worst || m->round_problem[0] == '\0')
        snprintf(m->round_problem, sizeof(m->round_problem), "%s=%s: %s", s->label, s->model, e.message);
    if (v > m->worst)
        m->worst = v;
}

static void on_checked(gw_fetch_t *req, void *data)
{
    slot_t *s = data;
    gw_modelcheck_t *m = s->m;
    judge(m, s, req);
    gw_fetch_free(req);
    s->req = NULL;
    if (--m->inflight == 0)
        finish_round(m);
}

static void start_round(gw_modelcheck_t *m)
{
    m->worst = V_OK;
    m->round_problem[0] = '\0';
    for (size_t i = 0; i < m->nslots; i++) {
        slot_t *s = &m->slots[i];
        char *url = gw_gemini_model_url(m->base_url, s->model);
        s->req = gw_fetch_new(m->fetcher, "GET", url);
        free(url);
        gw_fetch_header(s->req, "x-goog-api-key", m->api_key);
        gw_fetch_timeout(s->req, (long)m->opts.timeout_ms, 5000);
        gw_fetch_max_response(s->req, 256 * 1024);
        m->inflight++;
        if (gw_fetch_start(s->req, on_checked, s) != 0) {
            gw_fetch_cancel(s->req);
            s->req = NULL;
            m->inflight--;
            m->worst = m->worst > V_INCONCLUSIVE ? m->worst : V_INCONCLUSIVE;
            snprintf(m->round_problem, sizeof(m->round_problem), "%s=%s: the request could not be started", s->label, s->model);
        }
    }
    if (m->inflight == 0)
        finish_round(m);
}

static void on_timer(uv_timer_t *t)
{
    start_round((gw_modelcheck_t *)t);
}

gw_modelcheck_t *gw_modelcheck_start(uv_loop_t *loop, gw_fetcher_t *fetcher, const gw_modelcheck_opts_t *opts)
{
    gw_modelcheck_t *m = calloc(1, sizeof(*m));
    if (m == NULL)
        abort();
    if (uv_timer_init(loop, &m->timer) != 0)
        abort();
    m->fetcher = fetcher;
    m->opts = *opts;
    m->base_url = gw_xstrdup(opts->base_url);
    m->api_key = gw_xstrdup(opts->api_key);
    m->state = GW_MODELCHECK_PENDING;
    if (m->opts.interval_ms == 0)
        m->opts.interval_ms = 600000;
    if (m->opts.retry_ms == 0)
        m->opts.retry_ms = 30000;
    if (m->opts.timeout_ms == 0)
        m->opts.timeout_ms = 10000;
    for (size_t i = 0; i < GW_MODELCHECK_MAX_MODELS && opts->models[i] != NULL; i++) {
        bool dup = false;
        for (size_t k = 0; k < m->nslots; k++)
            dup = dup || strcmp(m->slots[k].model, opts->models[i]) == 0;
        if (dup || *opts->models[i] == '\0')
            continue;
        slot_t *s = &m->slots[m->nslots++];
        s->m = m;
        s->model = gw_xstrdup(opts->models[i]);
        s->label = gw_xstrdup(opts->labels[i] != NULL ? opts->labels[i] : "model");
    }
    m->opts.base_url = m->opts.api_key = NULL; /* only the copies above are used */
    start_round(m);
    return m;
}

void gw_modelcheck_recheck(gw_modelcheck_t *m)
{
    if (m == NULL || m->inflight > 0)
        return;
    uv_timer_stop(&m->timer);
    start_round(m);
}

static void on_closed(uv_handle_t *h)
{
    gw_modelcheck_t *m = (gw_modelcheck_t *)h;
    for (size_t i = 0; i < m->nslots; i++) {
        free(m->slots[i].model);
        free(m->slots[i].label);
    }
    free(m->base_url);
    free(m->api_key);
    free(m);
}

void gw_modelcheck_stop(gw_modelcheck_t *m)
{
    if (m == NULL)
        return;
    for (size_t i = 0; i < m->nslots; i++)
        if (m->slots[i].req != NULL)
            gw_fetch_cancel(m->slots[i].req);
    m->inflight = 0;
    uv_close((uv_handle_t *)&m->timer, on_closed);
}
