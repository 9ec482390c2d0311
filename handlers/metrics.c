#include "handlers/metrics.h"
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_SERIES 64
static const double buckets[] = {0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300};
#define NBUCKETS (sizeof(buckets) / sizeof(buckets[0]))

typedef struct st_counter_t {
    char name[48];
    double value;
} counter_t;

typedef struct st_histogram_t {
    char name[32];
    unsigned long counts[NBUCKETS];
    unsigned long count;
    double sum;
} histogram_t;

static struct {
    counter_t gemini[MAX_SERIES], tokens[8], retries[16], events[MAX_SERIES];
    size_t ngemini, ntokens, nretries, nevents;
    histogram_t stages[24];
    size_t nstages;
} m;

void gw_buf_printf(gw_buf_t *b, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->data ? b->data + b->len : NULL, b->data ? b->cap - b->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0)
            abort();
        if (b->data != NULL && b->len + (size_t)n < b->cap) {
            b->len += n;
            return;
        }
        b->cap = (b->cap + n + 1) * 2;
        b->data = realloc(b->data, b->cap);
        if (b->data == NULL)
            abort();
    }
}

static counter_t *counter(counter_t *set, size_t *n, size_t max, const char *name)
{
    for (size_t i = 0; i < *n; i++)
        if (strcmp(set[i].name, name) == 0)
            return &set[i];
    if (*n == max)
        return NULL; /* bounded cardinality: extra series are dropped */
    snprintf(set[*n].name, sizeof(set[*n].name), "%s", name);
    set[*n].value = 0;
    return &set[(*n)++];
}

void gw_metrics_gemini_call(long status)
{
    char name[16];
    snprintf(name, sizeof(name), "%ld", status);
    counter_t *c = counter(m.gemini, &m.ngemini, MAX_SERIES, name);
    if (c != NULL)
        c->value++;
}

void gw_metrics_tokens(const char *kind, long n)
{
    counter_t *c = counter(m.tokens, &m.ntokens, 8, kind);
    if (c != NULL && n > 0)
        c->value += n;
}

void gw_metrics_retry(const char *what)
{
    counter_t *c = counter(m.retries, &m.nretries, 16, what);
    if (c != NULL)
        c->value++;
}

void gw_metrics_count(const char *name)
{
    counter_t *c = counter(m.events, &m.nevents, MAX_SERIES, name);
    if (c != NULL)
        c->value++;
}

void gw_metrics_stage(const char *stage, double seconds)
{
    histogram_t *h = NULL;
    for (size_t i = 0; i < m.nstages && h == NULL; i++)
        if (strcmp(m.stages[i].name, stage) == 0)
            h = &m.stages[i];
    if (h == NULL) {
        if (m.nstages == sizeof(m.stages) / sizeof(m.stages[0]))
            return;
        h = &m.stages[m.nstages++];
        snprintf(h->name, sizeof(h->name), "%s", stage);
    }
    for (size_t i = 0; i < NBUCKETS; i++)
        if (seconds <= buckets[i])
            h->counts[i]++;
    h->count++;
    h->sum += seconds;
}

void gw_metrics_reset(void)
{
    memset(&m, 0, sizeof(m));
}

static long rss_bytes(void)
{
    long pages = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f != NULL) {
        if (fscanf(f, "%ld %ld", &pages, &resident) != 2)
            resident = 0;
        fclose(f);
    }
    return resident * sysconf(_SC_PAGESIZE);
}

static long open_fds(void)
{
    long n = 0;
    DIR *d = opendir("/proc/self/fd");
    if (d == NULL)
        return -1;
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        n += e->d_name[0] != '.';
    closedir(d);
    return n - 1; /* the directory's own fd */
}

static void metric(gw_buf_t *b, const char *name, const char *type, const char *help)
{
    gw_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void render_queue(gw_app_t *app, gw_buf_t *b)
{
    const gw_queue_stats_t *s = gw_queue_stats(app->queue);
    metric(b, "glint_jobs_claimed_total", "counter", "Jobs claimed by this worker, by mode.");
    gw_buf_printf(b, "glint_jobs_claimed_total{mode=\"standard\"} %llu\nglint_jobs_claimed_total{mode=\"deep\"} %llu\n",
                  (unsigned long long)s->claimed_standard, (unsigned long long)s->claimed_deep);
    metric(b, "glint_jobs_finished_total", "counter",
           "Attempts this worker ended, by outcome (completed, failed, retried = back to PENDING, cancelled) and mode.");
    const struct {
        const char *outcome;
        uint64_t standard, deep;
    } rows[] = {{"completed", s->completed_standard, s->completed_deep},
                {"failed", s->failed_standard, s->failed_deep},
                {"retried", s->retried_standard, s->retried_deep},
                {"cancelled", s->cancelled_standard, s->cancelled_deep}};
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
        gw_buf_printf(b,
                      "glint_jobs_finished_total{outcome=\"%s\",mode=\"standard\"} %llu\n"
                      "glint_jobs_finished_total{outcome=\"%s\",mode=\"deep\"} %llu\n",
                      rows[i].outcome, (unsigned long long)rows[i].standard, rows[i].outcome, (unsigned long long)rows[i].deep);
    struct {
        const char *name, *help;
        uint64_t v;
    } plain[] = {
        {"glint_jobs_retried_total", "Transient failures sent back to PENDING with backoff.", s->retried},
        {"glint_jobs_released_total", "Jobs handed back to PENDING at shutdown.", s->released},
        {"glint_jobs_lost_total", "Jobs this worker stopped holding (cancelled, lease lost).", s->lost},
        {"glint_jobs_reaped_total", "Expired leases rescued by this worker's reaper.", s->reaped},
        {"glint_jobs_deleted_total", "Finished jobs deleted by retention (JOB_RETENTION_DAYS) by this worker.", s->deleted},
        {"glint_jobs_found_by_poll_total", "Jobs claimed by the fallback poll rather than a notification.", s->claimed_by_poll},
        {"glint_notifications_total", "NOTIFY messages received.", s->notifications},
        {"glint_listen_reconnects_total", "Reconnections of the LISTEN connection.", gw_pg_reconnects(app->pg)},
    };
    for (size_t i = 0; i < sizeof(plain) / sizeof(plain[0]); i++) {
        metric(b, plain[i].name, "counter", plain[i].help);
        gw_buf_printf(b, "%s %llu\n", plain[i].name, (unsigned long long)plain[i].v);
    }
    metric(b, "glint_active_jobs", "gauge", "Jobs in flight in this process.");
    gw_buf_printf(b, "glint_active_jobs %zu\n", gw_queue_active(app->queue));
    metric(b, "glint_max_concurrent_jobs", "gauge", "MAX_CONCURRENT_JOBS.");
    gw_buf_printf(b, "glint_max_concurrent_jobs %ld\n", app->cfg->max_concurrent_jobs);
    metric(b, "glint_queue_depth", "gauge", "PENDING jobs (refreshed by the maintenance timer).");
    gw_buf_printf(b, "glint_queue_depth %lld\n", (long long)s->queue_depth);
    metric(b, "glint_queue_oldest_pending_seconds", "gauge", "Age of the oldest PENDING job (refreshed by the maintenance timer).");
    gw_buf_printf(b, "glint_queue_oldest_pending_seconds %.3f\n", s->oldest_pending_s);
    metric(b, "glint_database_up", "gauge", "1 when the LISTEN connection is up.");
    gw_buf_printf(b, "glint_database_up %d\n", gw_pg_connected(app->pg) ? 1 : 0);
}

static void render_counters(gw_buf_t *b, const char *name, const char *label, const char *help, const counter_t *set, size_t n)
{
    metric(b, name, "counter", help);
    for (size_t i = 0; i < n; i++)
        gw_buf_printf(b, "%s{%s=\"%s\"} %.0f\n", name, label, set[i].name, set[i].value);
}

static void render_pipeline(gw_buf_t *b)
{
    render_counters(b, "glint_gemini_requests_total", "code", "Gemini HTTP calls by status code (0 = no answer).", m.gemini,
                    m.ngemini);
    render_counters(b, "glint_gemini_tokens_total", "kind", "Gemini tokens by kind.", m.tokens, m.ntokens);
    render_counters(b, "glint_retries_total", "what", "Retries by what was retried.", m.retries, m.nretries);
    render_counters(b, "glint_events_total", "event", "Notable pipeline events.", m.events, m.nevents);
    metric(b, "glint_stage_duration_seconds", "histogram", "Time spent per pipeline stage.");
    for (size_t i = 0; i < m.nstages; i++) {
        const histogram_t *h = &m.stages[i];
        for (size_t k = 0; k < NBUCKETS; k++)
            gw_buf_printf(b, "glint_stage_duration_seconds_bucket{stage=\"%s\",le=\"%g\"} %lu\n", h->name, buckets[k],
                          h->counts[k]);
        gw_buf_printf(b, "glint_stage_duration_seconds_bucket{stage=\"%s\",le=\"+Inf\"} %lu\n", h->name, h->count);
        gw_buf_printf(b, "glint_stage_duration_seconds_sum{stage=\"%s\"} %.6f\n", h->name, h->sum);
        gw_buf_printf(b, "glint_stage_duration_seconds_count{stage=\"%s\"} %lu\n", h->name, h->count);
    }
}

static void render_sentry(gw_app_t *app, gw_buf_t *b)
{
    metric(b, "glint_sentry_events_total", "counter", "Sentry events by result (sent, failed, dropped when the queue was full).");
    gw_sentry_stats_t none = {0, 0, 0};
    const gw_sentry_stats_t *s = app->sentry != NULL ? gw_sentry_stats(app->sentry) : &none;
    gw_buf_printf(b,
                  "glint_sentry_events_total{result=\"sent\"} %llu\nglint_sentry_events_total{result=\"failed\"} %llu\n"
                  "glint_sentry_events_total{result=\"dropped\"} %llu\n",
                  (unsigned long long)s->sent, (unsigned long long)s->failed, (unsigned long long)s->dropped);
}

void gw_metrics_render(gw_app_t *app, gw_buf_t *b)
{
    render_queue(app, b);
    render_pipeline(b);
    render_sentry(app, b);
    metric(b, "process_resident_memory_bytes", "gauge", "Resident set size.");
    gw_buf_printf(b, "process_resident_memory_bytes %ld\n", rss_bytes());
    metric(b, "process_open_fds", "gauge", "Open file descriptors.");
    gw_buf_printf(b, "process_open_fds %ld\n", open_fds());
    metric(b, "glint_uptime_seconds", "gauge", "Seconds since start.");
    gw_buf_printf(b, "glint_uptime_seconds %.3f\n", (double)(uv_hrtime() / 1000000 - app->started_at_ms) / 1000.0);
}
