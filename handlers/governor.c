#include "handlers/governor.h"
#include "handlers/metrics.h"
#include "reactor/log.h"
#include "reactor/text.h"
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_MODELS 16
#define NEVER INT64_MIN

/* ---- pure arithmetic ---- */

/* Calls cb for each comma-separated entry, trimmed; stops at the first non-zero return. */
static int each_entry(const char *spec, int (*cb)(const char *e, size_t n, void *data), void *data)
{
    const char *p = spec != NULL ? spec : "";
    while (*p != '\0') {
        const char *end = strchr(p, ',');
        size_t n = end != NULL ? (size_t)(end - p) : strlen(p);
        const char *s = p;
        while (n > 0 && isspace((unsigned char)*s))
            s++, n--;
        while (n > 0 && isspace((unsigned char)s[n - 1]))
            n--;
        int rc = n > 0 ? cb(s, n, data) : 0;
        if (rc != 0)
            return rc;
        p = end != NULL ? end + 1 : p + strlen(p);
    }
    return 0;
}

static bool parse_number(const char *s, size_t n, double *out)
{
    char buf[64];
    if (n == 0 || n >= sizeof(buf))
        return false;
    memcpy(buf, s, n);
    buf[n] = '\0';
    char *end;
    errno = 0;
    double v = strtod(buf, &end);
    if (errno != 0 || *end != '\0' || !isfinite(v) || v < 0 || !(isdigit((unsigned char)buf[0]) || buf[0] == '.'))
        return false;
    *out = v;
    return true;
}

typedef struct st_limit_scan_t {
    const char *model;
    long any, exact;
    bool has_any, has_exact;
} limit_scan_t;

static int limit_entry(const char *e, size_t n, void *data)
{
    limit_scan_t *s = data;
    const char *eq = memchr(e, '=', n);
    double v;
    if (eq == NULL) {
        if (!parse_number(e, n, &v) || v != floor(v) || v > 1e12)
            return -1;
        s->any = (long)v;
        s->has_any = true;
        return 0;
    }
    size_t mlen = (size_t)(eq - e);
    while (mlen > 0 && isspace((unsigned char)e[mlen - 1]))
        mlen--;
    const char *num = eq + 1;
    size_t nlen = n - (size_t)(num - e);
    while (nlen > 0 && isspace((unsigned char)*num))
        num++, nlen--;
    if (mlen == 0 || !parse_number(num, nlen, &v) || v != floor(v) || v > 1e12)
        return -1;
    if (s->model != NULL && strlen(s->model) == mlen && memcmp(s->model, e, mlen) == 0) {
        s->exact = (long)v;
        s->has_exact = true;
    }
    return 0;
}

int gw_gov_limit_for(const char *spec, const char *model, long *out)
{
    limit_scan_t s = {model, 0, 0, false, false};
    *out = 0;
    if (each_entry(spec, limit_entry, &s) != 0)
        return -1;
    *out = s.has_exact ? s.exact : s.has_any ? s.any : 0;
    return 0;
}

typedef struct st_price_scan_t {
    const char *model;
    gw_gov_price_t price;
    bool found;
} price_scan_t;

/* "model=in/out[/think]" */
static int price_entry(const char *e, size_t n, void *data)
{
    price_scan_t *s = data;
    const char *eq = memchr(e, '=', n);
    if (eq == NULL || eq == e)
        return -1;
    double v[3];
    size_t k = 0;
    const char *p = eq + 1, *end = e + n;
    while (p <= end && k < 3) {
        const char *slash = memchr(p, '/', (size_t)(end - p));
        const char *stop = slash != NULL ? slash : end;
        if (!parse_number(p, (size_t)(stop - p), &v[k++]))
            return -1;
        if (slash == NULL)
            break;
        p = slash + 1;
        if (k == 3)
            return -1; /* a fourth field */
    }
    if (k < 2)
        return -1;
    size_t mlen = (size_t)(eq - e);
    if (s->model != NULL && strlen(s->model) == mlen && memcmp(s->model, e, mlen) == 0) {
        s->price.input = v[0];
        s->price.output = v[1];
        s->price.thinking = k == 3 ? v[2] : v[1];
        s->found = true;
    }
    return 0;
}

int gw_gov_price_for(const char *spec, const char *model, gw_gov_price_t *out)
{
    price_scan_t s = {model, {0, 0, 0}, false};
    if (each_entry(spec, price_entry, &s) != 0)
        return -1;
    if (s.found && out != NULL)
        *out = s.price;
    return s.found ? 1 : 0;
}

double gw_gov_cost_usd(const gw_gov_price_t *p, const gw_usage_t *u)
{
    double in = u->prompt_tokens > 0 ? (double)u->prompt_tokens : 0, out = u->output_tokens > 0 ? (double)u->output_tokens : 0,
           think = u->thoughts_tokens > 0 ? (double)u->thoughts_tokens : 0;
    return (in * p->input + out * p->output + think * p->thinking) / 1e6;
}

int64_t gw_gov_estimate_tokens(size_t body_bytes, gw_gov_media_t media, double media_seconds, long max_output_tokens)
{
    static const double per_second[] = {0, 32, 100, 300};
    double media_tokens = media_seconds > 0 && isfinite(media_seconds) ? media_seconds * per_second[media] : 0;
    return (int64_t)((body_bytes + 3) / 4) + (int64_t)ceil(media_tokens) + (max_output_tokens > 0 ? max_output_tokens : 0);
}

int64_t gw_gov_window_us(long window_ms)
{
    int64_t us = (int64_t)(window_ms > 0 ? window_ms : 1) * 1000;
    return us + us / 32;
}

void gw_gov_bucket_init(gw_gov_bucket_t *b)
{
    b->next_request_us = b->next_token_us = b->paused_until_us = NEVER;
}

static int64_t max64(int64_t a, int64_t b)
{
    return a > b ? a : b;
}

bool gw_gov_reserve(gw_gov_bucket_t *b, int64_t now_us, int64_t est_tokens, long rpm, long tpm, int64_t window_us, int64_t *wait_us)
{
    if (b->paused_until_us > now_us) {
        *wait_us = b->paused_until_us - now_us;
        return false;
    }
    int64_t at = now_us;
    if (rpm > 0)
        at = max64(at, b->next_request_us);
    if (tpm > 0)
        at = max64(at, b->next_token_us);
    if (rpm > 0)
        b->next_request_us = at + window_us / rpm;
    if (tpm > 0)
        b->next_token_us = at + (int64_t)((double)window_us * (double)(est_tokens > 0 ? est_tokens : 0) / (double)tpm);
    *wait_us = at - now_us;
    return true;
}

void gw_gov_settle(gw_gov_bucket_t *b, int64_t delta_tokens, long tpm, int64_t window_us)
{
    if (tpm > 0 && b->next_token_us != NEVER)
        b->next_token_us += (int64_t)((double)window_us * (double)delta_tokens / (double)tpm);
}

void gw_gov_pause(gw_gov_bucket_t *b, int64_t now_us, uint64_t ms)
{
    b->paused_until_us = max64(b->paused_until_us, now_us + (int64_t)ms * 1000);
}

/* ---- the governor on the loop ---- */

typedef enum en_ticket_state_t {
    T_QUEUED,    /* the model is paused: asks for a reservation when the pause ends */
    T_ASKING,    /* glint_gemini_admit in flight */
    T_RESERVED,  /* holds a slot: goes at start_ms */
    T_CANCELLED, /* cancelled while asking: freed when the answer comes (tokens given back then) */
} ticket_state_t;

typedef struct st_model_t model_t;

struct st_gw_gov_ticket_t {
    gw_gov_ticket_t *prev, *next; /* the model's FIFO, in acquire order */
    model_t *m;
    ticket_state_t state;
    int64_t est;
    uint64_t start_ms; /* T_RESERVED: uv_now() at which it may go */
    bool via_db;       /* the reservation is in the database (give tokens back there) */
    gw_gov_go_cb go;
    void *data;
};

struct st_model_t {
    uv_timer_t timer; /* first: wakes the FIFO at the next start or the end of a pause */
    gw_governor_t *g;
    char name[128];
    long rpm, tpm;
    gw_gov_bucket_t local; /* used without a database, or when it does not answer */
    uint64_t paused_until_ms;
    gw_gov_ticket_t *head, *tail;
    bool warned;
};

struct st_gw_governor_t {
    uv_loop_t *loop;
    gw_pg_t *pg;
    char *rpm_spec, *tpm_spec, *prices;
    long window_ms;
    int64_t window_us;
    model_t *models[MAX_MODELS];
    size_t nmodels;
};

static int64_t now_us(const gw_governor_t *g)
{
    return (int64_t)uv_now(g->loop) * 1000;
}

static bool use_db(const gw_governor_t *g)
{
    return g->pg != NULL && gw_pg_connected(g->pg);
}

static void on_timer(uv_timer_t *timer);

static model_t *model_get(gw_governor_t *g, const char *name)
{
    for (size_t i = 0; i < g->nmodels; i++)
        if (strcmp(g->models[i]->name, name) == 0)
            return g->models[i];
    model_t *m = calloc(1, sizeof(*m));
    if (m == NULL || uv_timer_init(g->loop, &m->timer) != 0)
        abort();
    m->g = g;
    snprintf(m->name, sizeof(m->name), "%s", name);
    gw_gov_limit_for(g->rpm_spec, name, &m->rpm); /* checked in gw_governor_create */
    gw_gov_limit_for(g->tpm_spec, name, &m->tpm);
    gw_gov_bucket_init(&m->local);
    if (g->nmodels < MAX_MODELS) {
        g->models[g->nmodels++] = m;
    } else { /* more models than any configuration names: share the last slot's schedule rather than grow */
        uv_close((uv_handle_t *)&m->timer, (uv_close_cb)free);
        return g->models[MAX_MODELS - 1];
    }
    return m;
}

static void unlink_ticket(gw_gov_ticket_t *t)
{
    model_t *m = t->m;
    if (t->prev != NULL)
        t->prev->next = t->next;
    else
        m->head = t->next;
    if (t->next != NULL)
        t->next->prev = t->prev;
    else
        m->tail = t->prev;
    t->prev = t->next = NULL;
}

static void on_settled(PGresult *res, const char *error, void *data)
{
    if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK)
        gw_debug("gemini governor: %s failed: %s", (const char *)data, error ? error : PQresultErrorMessage(res));
}

static void db_settle(model_t *m, int64_t delta)
{
    gw_governor_t *g = m->g;
    char d[32], tpm[32], win[32];
    snprintf(d, sizeof(d), "%lld", (long long)delta);
    snprintf(tpm, sizeof(tpm), "%ld", m->tpm);
    snprintf(win, sizeof(win), "%lld", (long long)(g->window_us / 1000));
    const char *params[] = {m->name, d, tpm, win};
    gw_pg_query(g->pg, "gw_gov_settle", "SELECT glint_gemini_settle($1, $2::bigint, $3::bigint, $4::integer)", 4, params, 0,
                on_settled, "settle");
}

/* Tokens reserved for a call that will not be made (or was answered without usage) go back to the schedule. */
static void give_back(model_t *m, int64_t tokens, bool via_db)
{
    if (m->tpm <= 0 || tokens == 0)
        return;
    gw_gov_settle(&m->local, -tokens, m->tpm, m->g->window_us);
    if (via_db && use_db(m->g))
        db_settle(m, -tokens);
}

/* Arms the model's timer for its next event: the earliest reserved start, or the end of the pause for queued calls. */
static void arm(model_t *m)
{
    uint64_t now = uv_now(m->g->loop), wake = UINT64_MAX;
    for (gw_gov_ticket_t *t = m->head; t != NULL; t = t->next) {
        if (t->state == T_RESERVED && t->start_ms < wake)
            wake = t->start_ms;
        else if (t->state == T_QUEUED && m->paused_until_ms < wake)
            wake = m->paused_until_ms;
    }
    if (wake == UINT64_MAX) {
        uv_timer_stop(&m->timer);
        return;
    }
    if (uv_timer_start(&m->timer, on_timer, wake > now ? wake - now : 0, 0) != 0)
        abort();
}

static void reserved(gw_gov_ticket_t *t, uint64_t wait_ms, bool via_db)
{
    t->state = T_RESERVED;
    t->via_db = via_db;
    t->start_ms = uv_now(t->m->g->loop) + wait_ms;
    if (wait_ms > 0)
        gw_debug("gemini governor: %s call waits %llu ms", t->m->name, (unsigned long long)wait_ms);
}

static void paused(gw_gov_ticket_t *t, uint64_t wait_ms)
{
    model_t *m = t->m;
    uint64_t until = uv_now(m->g->loop) + wait_ms;
    if (until > m->paused_until_ms)
        m->paused_until_ms = until;
    t->state = T_QUEUED;
}

static void reserve_locally(gw_gov_ticket_t *t)
{
    model_t *m = t->m;
    int64_t wait_us;
    if (gw_gov_reserve(&m->local, now_us(m->g), t->est, m->rpm, m->tpm, m->g->window_us, &wait_us))
        reserved(t, (uint64_t)(wait_us + 999) / 1000, false);
    else
        paused(t, (uint64_t)(wait_us + 999) / 1000);
}

static void on_admit(PGresult *res, const char *error, void *data)
{
    gw_gov_ticket_t *t = data;
    model_t *m = t->m;
    bool ok = res != NULL && PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 && !PQgetisnull(res, 0, 1);
    bool admitted = ok && strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    uint64_t wait_ms = ok ? strtoull(PQgetvalue(res, 0, 1), NULL, 10) : 0;
    if (t->state == T_CANCELLED) {
        if (admitted)
            give_back(m, t->est, true);
        free(t);
        return;
    }
    if (!ok) {
        if (!m->warned)
            gw_warn("gemini governor: the shared budget did not answer (%s); pacing %s in this process only",
                    error ? error : PQresultErrorMessage(res), m->name);
        m->warned = true;
        reserve_locally(t);
    } else if (!admitted) {
        paused(t, wait_ms);
    } else {
        reserved(t, wait_ms, true);
        if (t->start_ms < m->paused_until_ms) { /* a 429 arrived while asking: ask again after the pause */
            give_back(m, t->est, true);
            t->state = T_QUEUED;
        }
    }
    arm(m);
}

/* One round trip: the reservation comes back from glint_gemini_admit (or from the local schedule without a database). */
static void ask(gw_gov_ticket_t *t)
{
    model_t *m = t->m;
    gw_governor_t *g = m->g;
    if (!use_db(g)) {
        reserve_locally(t);
        return;
    }
    char est[32], rpm[32], tpm[32], win[32];
    snprintf(est, sizeof(est), "%lld", (long long)t->est);
    snprintf(rpm, sizeof(rpm), "%ld", m->rpm);
    snprintf(tpm, sizeof(tpm), "%ld", m->tpm);
    snprintf(win, sizeof(win), "%lld", (long long)(g->window_us / 1000));
    const char *params[] = {m->name, est, rpm, tpm, win};
    t->state = T_ASKING;
    gw_pg_query(g->pg, "gw_gov_admit",
                "SELECT admitted, wait_ms FROM glint_gemini_admit($1, $2::bigint, $3::integer, $4::bigint, $5::integer)", 5, params,
                0, on_admit, t);
}

/* Releases the first ticket whose time has come (callbacks may acquire or cancel: the scan restarts after each). */
static gw_gov_ticket_t *next_ready(model_t *m, uint64_t now)
{
    for (gw_gov_ticket_t *t = m->head; t != NULL; t = t->next) {
        if (t->state != T_RESERVED || t->start_ms > now)
            continue;
        if (now < m->paused_until_ms) { /* paused since it was reserved */
            give_back(m, t->est, t->via_db);
            t->state = T_QUEUED;
            continue;
        }
        return t;
    }
    return NULL;
}

static void on_timer(uv_timer_t *timer)
{
    model_t *m = (model_t *)timer;
    uint64_t now = uv_now(m->g->loop);
    gw_gov_ticket_t *t;
    while ((t = next_ready(m, now)) != NULL) {
        unlink_ticket(t);
        gw_gov_go_cb go = t->go;
        void *data = t->data;
        free(t);
        go(data);
    }
    if (now >= m->paused_until_ms)
        for (t = m->head; t != NULL; t = t->next)
            if (t->state == T_QUEUED)
                ask(t); /* in FIFO order: the pg queue keeps it */
    arm(m);
}

gw_gov_ticket_t *gw_governor_acquire(gw_governor_t *g, const char *model, int64_t est_tokens, gw_gov_go_cb go, void *data)
{
    model_t *m = model_get(g, model);
    gw_gov_ticket_t *t = calloc(1, sizeof(*t));
    if (t == NULL)
        abort();
    t->m = m;
    t->est = est_tokens > 0 ? est_tokens : 0;
    t->go = go;
    t->data = data;
    t->prev = m->tail;
    if (m->tail != NULL)
        m->tail->next = t;
    else
        m->head = t;
    m->tail = t;
    if (uv_now(g->loop) < m->paused_until_ms)
        t->state = T_QUEUED;
    else
        ask(t);
    arm(m);
    return t;
}

void gw_governor_cancel(gw_gov_ticket_t *t)
{
    if (t == NULL)
        return;
    model_t *m = t->m;
    unlink_ticket(t);
    if (t->state == T_ASKING) {
        t->state = T_CANCELLED; /* on_admit frees it */
    } else {
        if (t->state == T_RESERVED)
            give_back(m, t->est, t->via_db);
        free(t);
    }
    arm(m);
}

void gw_governor_settle(gw_governor_t *g, const char *model, int64_t est_tokens, const gw_usage_t *real)
{
    if (g == NULL)
        return;
    model_t *m = model_get(g, model);
    int64_t total = 0;
    if (real != NULL) {
        long parts[] = {real->prompt_tokens, real->output_tokens, real->thoughts_tokens};
        for (size_t i = 0; i < 3; i++)
            total += parts[i] > 0 ? parts[i] : 0;
        double usd;
        if (gw_governor_cost(g, model, real, &usd))
            gw_metrics_cost(model, usd);
    }
    int64_t delta = total - (est_tokens > 0 ? est_tokens : 0);
    if (m->tpm <= 0 || delta == 0)
        return;
    gw_gov_settle(&m->local, delta, m->tpm, g->window_us);
    if (use_db(g))
        db_settle(m, delta);
}

void gw_governor_pause(gw_governor_t *g, const char *model, uint64_t ms)
{
    if (g == NULL)
        return;
    model_t *m = model_get(g, model);
    uint64_t until = uv_now(g->loop) + ms;
    if (until > m->paused_until_ms)
        m->paused_until_ms = until;
    gw_gov_pause(&m->local, now_us(g), ms);
    gw_metrics_count("gemini_paused");
    gw_info("gemini: %s answered 429 with retryDelay %llu ms: calls to it wait until then", m->name, (unsigned long long)ms);
    if (use_db(g)) {
        char p[32];
        snprintf(p, sizeof(p), "%llu", (unsigned long long)(ms < INT32_MAX ? ms : INT32_MAX));
        const char *params[] = {m->name, p};
        gw_pg_query(g->pg, "gw_gov_pause", "SELECT glint_gemini_pause($1, $2::integer)", 2, params, 0, on_settled, "pause");
    }
    for (gw_gov_ticket_t *t = m->head; t != NULL; t = t->next)
        if (t->state == T_RESERVED && t->start_ms < m->paused_until_ms) {
            give_back(m, t->est, t->via_db);
            t->state = T_QUEUED;
        }
    arm(m);
}

bool gw_governor_cost(const gw_governor_t *g, const char *model, const gw_usage_t *u, double *usd)
{
    gw_gov_price_t p;
    if (g == NULL || gw_gov_price_for(g->prices, model, &p) != 1)
        return false;
    *usd = gw_gov_cost_usd(&p, u);
    return true;
}

gw_governor_t *gw_governor_create(uv_loop_t *loop, gw_pg_t *pg, const gw_settings_t *cfg, char *err, size_t errlen)
{
    long v;
    gw_gov_price_t p;
    const struct {
        const char *name, *value;
        bool price;
    } checks[] = {{"GEMINI_RPM", cfg->gemini_rpm, false},
                  {"GEMINI_TPM", cfg->gemini_tpm, false},
                  {"GEMINI_PRICES", cfg->gemini_prices, true}};
    for (size_t i = 0; i < sizeof(checks) / sizeof(checks[0]); i++) {
        if (checks[i].price ? gw_gov_price_for(checks[i].value, NULL, &p) < 0 : gw_gov_limit_for(checks[i].value, NULL, &v) < 0) {
            snprintf(err, errlen, "%s: expected %s, got \"%.60s\"", checks[i].name,
                     checks[i].price ? "model=input/output[/thinking],... (USD per 1M tokens)" : "N or model=N,... (N >= 0)",
                     checks[i].value);
            return NULL;
        }
    }
    gw_governor_t *g = calloc(1, sizeof(*g));
    if (g == NULL)
        abort();
    g->loop = loop;
    g->pg = pg;
    g->rpm_spec = gw_xstrdup(cfg->gemini_rpm);
    g->tpm_spec = gw_xstrdup(cfg->gemini_tpm);
    g->prices = gw_xstrdup(cfg->gemini_prices);
    g->window_ms = cfg->gemini_rpm_window_ms > 0 ? cfg->gemini_rpm_window_ms : 60000;
    g->window_us = gw_gov_window_us(g->window_ms);
    return g;
}

void gw_governor_free(gw_governor_t *g)
{
    if (g == NULL)
        return;
    for (size_t i = 0; i < g->nmodels; i++) {
        model_t *m = g->models[i];
        while (m->head != NULL) { /* callers cancel first; whatever is left is dropped silently */
            gw_gov_ticket_t *t = m->head;
            unlink_ticket(t);
            free(t);
        }
        uv_close((uv_handle_t *)&m->timer, (uv_close_cb)free);
    }
    if (g->nmodels > 0)
        uv_run(g->loop, UV_RUN_NOWAIT); /* the timers' close callbacks */
    free(g->rpm_spec);
    free(g->tpm_spec);
    free(g->prices);
    free(g);
}
