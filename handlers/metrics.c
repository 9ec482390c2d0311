#include "handlers/metrics.h"
#include "handlers/breaker.h"
#include "handlers/history.h"
#include "handlers/job.h"
#include "handlers/modelcheck.h"
#include <dirent.h>
#include <sys/resource.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_SERIES 64
#define MAX_BUCKETS 14
static const double stage_buckets[] = {0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300};
/* a job: seconds (a cached standard job) to an hour (a long deep one) */
static const double job_buckets[] = {0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600};
/* the queue: milliseconds (NOTIFY) to an hour (a backlog) */
static const double wait_buckets[] = {0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600};
/* a subprocess-pool grant: usually immediate */
static const double pool_wait_buckets[] = {0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 120};

typedef struct st_counter_t {
    char name[48];
    double value;
} counter_t;

/* One series of a histogram family; labels is the rendered label list without braces, e.g. stage="metadata". */
typedef struct st_histogram_t {
    char labels[80];
    unsigned long counts[MAX_BUCKETS];
    unsigned long count;
    double sum;
} histogram_t;

typedef struct st_hfamily_t {
    const double *buckets;
    size_t nbuckets, n;
    histogram_t series[24];
} hfamily_t;

#define FAMILY(b)                                                                                                                  \
    {                                                                                                                              \
        b, sizeof(b) / sizeof(b[0]), 0,                                                                                            \
        {                                                                                                                          \
            {                                                                                                                      \
                {0}, {0}, 0, 0                                                                                                     \
            }                                                                                                                      \
        }                                                                                                                          \
    }

static struct {
    counter_t gemini[MAX_SERIES], tokens[8], retries[16], events[MAX_SERIES], costs[16];
    size_t ngemini, ntokens, nretries, nevents, ncosts;
    counter_t failed_codes[MAX_SERIES], retried_codes[MAX_SERIES]; /* by error code (the catalogue bounds them) */
    size_t nfailed_codes, nretried_codes;
    hfamily_t stages, jobs, waits, pool_waits;
    unsigned long long reuses, reuse_tokens;
} m = {.stages = FAMILY(stage_buckets),
       .jobs = FAMILY(job_buckets),
       .waits = FAMILY(wait_buckets),
       .pool_waits = FAMILY(pool_wait_buckets)};

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

void gw_metrics_cost(const char *model, double usd)
{
    counter_t *c = counter(m.costs, &m.ncosts, 16, model);
    if (c != NULL && usd > 0)
        c->value += usd;
}

void gw_metrics_reuse(long tokens_saved)
{
    m.reuses++;
    if (tokens_saved > 0)
        m.reuse_tokens += (unsigned long long)tokens_saved;
}

static void observe(hfamily_t *f, const char *labels, double v)
{
    histogram_t *h = NULL;
    for (size_t i = 0; i < f->n && h == NULL; i++)
        if (strcmp(f->series[i].labels, labels) == 0)
            h = &f->series[i];
    if (h == NULL) {
        if (f->n == sizeof(f->series) / sizeof(f->series[0]))
            return; /* bounded cardinality */
        h = &f->series[f->n++];
        memset(h, 0, sizeof(*h));
        snprintf(h->labels, sizeof(h->labels), "%s", labels);
    }
    for (size_t i = 0; i < f->nbuckets; i++)
        if (v <= f->buckets[i])
            h->counts[i]++;
    h->count++;
    h->sum += v;
}

/* Label values come from our own code (stage names), but a quote or backslash would still break the format. */
static void stage_labels(char *out, size_t len, const char *stage, const char *outcome)
{
    char clean[32];
    size_t n = 0;
    for (const char *p = stage != NULL ? stage : ""; *p != '\0' && n < sizeof(clean) - 1; p++)
        clean[n++] = (*p == '"' || *p == '\\' || *p == '\n') ? '_' : *p;
    clean[n] = '\0';
    snprintf(out, len, "stage=\"%s\",outcome=\"%s\"", clean, outcome);
}

void gw_metrics_stage(const char *stage, double seconds)
{
    char labels[80];
    stage_labels(labels, sizeof(labels), stage, "ok");
    observe(&m.stages, labels, seconds);
}

void gw_metrics_stage_failed(const char *stage, double seconds)
{
    char labels[80];
    stage_labels(labels, sizeof(labels), stage, "failed");
    observe(&m.stages, labels, seconds);
}

void gw_metrics_job_finished(bool deep, const char *outcome, double seconds)
{
    char labels[80];
    snprintf(labels, sizeof(labels), "mode=\"%s\",outcome=\"%s\"", deep ? "deep" : "standard", outcome);
    observe(&m.jobs, labels, seconds < 0 ? 0 : seconds);
    gw_history_job_named(gw_history(), (int64_t)time(NULL), outcome); /* the dashboard's last hour */
}

void gw_metrics_job_error(const char *code, bool final)
{
    counter_t *c = final ? counter(m.failed_codes, &m.nfailed_codes, MAX_SERIES, code ? code : "unknown")
                         : counter(m.retried_codes, &m.nretried_codes, MAX_SERIES, code ? code : "unknown");
    if (c != NULL)
        c->value++;
}

void gw_metrics_job_waited(bool deep, double seconds)
{
    observe(&m.waits, deep ? "mode=\"deep\"" : "mode=\"standard\"", seconds < 0 ? 0 : seconds);
}

void gw_metrics_pool_wait(const char *pool, double seconds)
{
    observe(&m.pool_waits, strcmp(pool, "media") == 0 ? "pool=\"media\"" : "pool=\"main\"", seconds < 0 ? 0 : seconds);
}

void gw_metrics_reset(void)
{
    memset(m.gemini, 0, sizeof(m.gemini));
    memset(m.tokens, 0, sizeof(m.tokens));
    memset(m.retries, 0, sizeof(m.retries));
    memset(m.events, 0, sizeof(m.events));
    memset(m.costs, 0, sizeof(m.costs));
    m.ngemini = m.ntokens = m.nretries = m.nevents = m.ncosts = m.nfailed_codes = m.nretried_codes = 0;
    m.stages.n = m.jobs.n = m.waits.n = m.pool_waits.n = 0;
    m.reuses = m.reuse_tokens = 0;
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
        {"glint_jobs_deferred_total", "Jobs sent back to PENDING without counting the attempt (bot-check breaker, Gemini key).",
         s->deferred},
        {"glint_ytdlp_bot_checks_total", "YouTube runs of yt-dlp answered with the bot check.", gw_breaker_bot_checks_total()},
        {"glint_ytdlp_breaker_openings_total", "Openings of the yt-dlp bot-check breaker.", gw_breaker_openings_total()},
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
    gw_breaker_state_t bs = gw_breaker_state(uv_now(app->loop));
    metric(b, "glint_ytdlp_breaker_open", "gauge",
           "1 while the yt-dlp bot-check breaker holds YouTube runs back (open or half-open), else 0.");
    gw_buf_printf(b, "glint_ytdlp_breaker_open %d\n", bs != GW_BREAKER_CLOSED ? 1 : 0);
    metric(b, "glint_claims_held", "gauge", "1 while claiming is held because Gemini refused the API key.");
    gw_buf_printf(b, "glint_claims_held %d\n", gw_queue_claims_held(app->queue) ? 1 : 0);
    metric(b, "glint_database_up", "gauge", "1 when the LISTEN connection is up.");
    gw_buf_printf(b, "glint_database_up %d\n", gw_pg_connected(app->pg) ? 1 : 0);
}

static void render_counters(gw_buf_t *b, const char *name, const char *label, const char *help, const counter_t *set, size_t n)
{
    metric(b, name, "counter", help);
    for (size_t i = 0; i < n; i++)
        gw_buf_printf(b, "%s{%s=\"%s\"} %.0f\n", name, label, set[i].name, set[i].value);
}

static void render_histogram(gw_buf_t *b, const char *name, const char *help, const hfamily_t *f)
{
    metric(b, name, "histogram", help);
    for (size_t i = 0; i < f->n; i++) {
        const histogram_t *h = &f->series[i];
        for (size_t k = 0; k < f->nbuckets; k++)
            gw_buf_printf(b, "%s_bucket{%s,le=\"%g\"} %lu\n", name, h->labels, f->buckets[k], h->counts[k]);
        gw_buf_printf(b, "%s_bucket{%s,le=\"+Inf\"} %lu\n", name, h->labels, h->count);
        gw_buf_printf(b, "%s_sum{%s} %.6f\n", name, h->labels, h->sum);
        gw_buf_printf(b, "%s_count{%s} %lu\n", name, h->labels, h->count);
    }
}

static void render_pipeline(gw_buf_t *b)
{
    render_counters(b, "glint_gemini_requests_total", "code", "Gemini HTTP calls by status code (0 = no answer).", m.gemini,
                    m.ngemini);
    render_counters(b, "glint_gemini_tokens_total", "kind", "Gemini tokens by kind.", m.tokens, m.ntokens);
    metric(b, "glint_gemini_cost_usd_total", "counter", "Estimated Gemini cost in USD (usageMetadata x GEMINI_PRICES), by model.");
    for (size_t i = 0; i < m.ncosts; i++)
        gw_buf_printf(b, "glint_gemini_cost_usd_total{model=\"%s\"} %.6f\n", m.costs[i].name, m.costs[i].value);
    render_counters(b, "glint_retries_total", "what", "Retries by what was retried.", m.retries, m.nretries);
    render_counters(b, "glint_events_total", "event", "Notable pipeline events.", m.events, m.nevents);
    metric(b, "glint_job_errors_total", "counter",
           "Attempts that ended in an error, by error code and outcome (failed = for good, retried = back to PENDING).");
    for (size_t i = 0; i < m.nfailed_codes; i++)
        gw_buf_printf(b, "glint_job_errors_total{code=\"%s\",outcome=\"failed\"} %.0f\n", m.failed_codes[i].name,
                      m.failed_codes[i].value);
    for (size_t i = 0; i < m.nretried_codes; i++)
        gw_buf_printf(b, "glint_job_errors_total{code=\"%s\",outcome=\"retried\"} %.0f\n", m.retried_codes[i].name,
                      m.retried_codes[i].value);
    metric(b, "glint_result_reuse_total", "counter", "Jobs completed from another job's analysis (no yt-dlp, no Gemini).");
    gw_buf_printf(b, "glint_result_reuse_total %llu\n", m.reuses);
    metric(b, "glint_result_reuse_tokens_saved_total", "counter", "Gemini tokens the reused analyses had cost.");
    gw_buf_printf(b, "glint_result_reuse_tokens_saved_total %llu\n", m.reuse_tokens);
    render_histogram(b, "glint_stage_duration_seconds",
                     "Time spent per pipeline stage, by outcome (ok, or failed: the stage the job failed in).", &m.stages);
    render_histogram(b, "glint_job_duration_seconds",
                     "Claim to outcome per attempt, by mode and outcome (completed, failed, retried, cancelled, lost).", &m.jobs);
    render_histogram(b, "glint_job_queue_wait_seconds", "created_at to claim, by mode.", &m.waits);
}

static void render_pool(gw_app_t *app, gw_buf_t *b)
{
    gw_run_pools_init(app->cfg); /* sized at the first job or scrape, whichever comes first */
    static const char *const names[2] = {"main", "media"};
    metric(b, "glint_subprocess_pool_size", "gauge", "Subprocesses a pool lets run at once at most (0 = unlimited).");
    for (int i = 0; i < 2; i++)
        gw_buf_printf(b, "glint_subprocess_pool_size{pool=\"%s\"} %u\n", names[i], gw_run_pool(i) ? gw_run_pool(i)->size : 0);
    metric(b, "glint_subprocess_pool_limit", "gauge",
           "Subprocesses a pool lets run at once right now: an adaptive pool moves it between the usable CPUs and its size.");
    for (int i = 0; i < 2; i++)
        gw_buf_printf(b, "glint_subprocess_pool_limit{pool=\"%s\"} %u\n", names[i], gw_run_pool(i) ? gw_run_pool(i)->limit : 0);
    metric(b, "glint_subprocess_pool_busy", "gauge", "Subprocesses running (slots taken).");
    for (int i = 0; i < 2; i++)
        gw_buf_printf(b, "glint_subprocess_pool_busy{pool=\"%s\"} %u\n", names[i], gw_run_pool(i) ? gw_run_pool(i)->busy : 0);
    metric(b, "glint_subprocess_pool_queued", "gauge", "Jobs waiting for a subprocess slot.");
    for (int i = 0; i < 2; i++)
        gw_buf_printf(b, "glint_subprocess_pool_queued{pool=\"%s\"} %zu\n", names[i], gw_run_pool(i) ? gw_run_pool(i)->queued : 0);
    render_histogram(b, "glint_subprocess_pool_wait_seconds", "Time a subprocess waited for a pool slot.", &m.pool_waits);
}

static void render_sentry(gw_app_t *app, gw_buf_t *b)
{
    gw_sentry_stats_t none;
    memset(&none, 0, sizeof(none));
    const gw_sentry_stats_t *s = app->sentry != NULL ? gw_sentry_stats(app->sentry) : &none;
    metric(b, "glint_sentry_events_total", "counter",
           "Sentry events by result (sent = accepted; failed = refused or not delivered; dropped = never sent).");
    gw_buf_printf(b,
                  "glint_sentry_events_total{result=\"sent\"} %llu\nglint_sentry_events_total{result=\"failed\"} %llu\n"
                  "glint_sentry_events_total{result=\"dropped\"} %llu\n",
                  (unsigned long long)s->sent, (unsigned long long)s->failed, (unsigned long long)s->dropped);
    metric(b, "glint_sentry_dropped_total", "counter",
           "Sentry events lost, by reason (queue_overflow, ratelimit_backoff, network_error, send_error, shutdown).");
    const struct {
        const char *reason;
        uint64_t v;
    } rows[] = {{"queue_overflow", s->dropped_queue_full},
                {"ratelimit_backoff", s->dropped_rate_limited},
                {"network_error", s->failed_network},
                {"send_error", s->failed_status},
                {"shutdown", s->dropped_shutdown}};
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
        gw_buf_printf(b, "glint_sentry_dropped_total{reason=\"%s\"} %llu\n", rows[i].reason, (unsigned long long)rows[i].v);
}

static void render_http(gw_app_t *app, gw_buf_t *b)
{
    const gw_server_t *srv = app->server;
    metric(b, "glint_http_connections", "gauge", "Open HTTP connections.");
    gw_buf_printf(b, "glint_http_connections %zu\n", srv != NULL ? gw_server_connections(srv) : 0);
    metric(b, "glint_http_max_connections", "gauge", "The HTTP connection cap in force (0 = none).");
    gw_buf_printf(b, "glint_http_max_connections %zu\n", srv != NULL ? gw_server_max_connections(srv) : 0);
    metric(b, "glint_http_connections_refused_total", "counter", "Connections closed at once because every slot was busy.");
    gw_buf_printf(b, "glint_http_connections_refused_total %llu\n", (unsigned long long)(srv ? gw_server_refused(srv) : 0));
    metric(b, "glint_http_connections_evicted_total", "counter", "Idle connections closed to make room under the cap.");
    gw_buf_printf(b, "glint_http_connections_evicted_total %llu\n", (unsigned long long)(srv ? gw_server_evicted(srv) : 0));
}

static void render_readiness(gw_app_t *app, gw_buf_t *b)
{
    metric(b, "glint_model_check_ok", "gauge",
           "1 unless the Gemini model check failed or has not answered yet (0 = claims paused).");
    gw_buf_printf(b, "glint_model_check_ok %d\n", gw_modelcheck_blocks(app->modelcheck) ? 0 : 1);
    metric(b, "glint_build_info", "gauge", "Always 1; the labels name the build.");
    gw_buf_printf(b, "glint_build_info{version=\"%s\",commit=\"%s\"} 1\n", GW_VERSION, GW_BUILD_COMMIT);
}

/* Seconds since the epoch at which this process started: /proc/self/stat's starttime (ticks after boot) + btime. */
static double process_start_time(void)
{
    static double cached = -1;
    if (cached >= 0)
        return cached;
    char buf[1024];
    unsigned long long start = 0, btime = 0;
    FILE *f = fopen("/proc/self/stat", "r");
    size_t n = f != NULL ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
    if (f != NULL)
        fclose(f);
    buf[n] = '\0';
    const char *p = strrchr(buf, ')'); /* the command name may hold blanks and parentheses */
    for (int field = 2; p != NULL && field < 22; field++)
        p = strchr(p + 1, ' ');
    if (p != NULL)
        start = strtoull(p + 1, NULL, 10);
    if ((f = fopen("/proc/stat", "r")) != NULL) {
        char line[256];
        while (fgets(line, sizeof(line), f) != NULL)
            if (sscanf(line, "btime %llu", &btime) == 1)
                break;
        fclose(f);
    }
    cached = (double)btime + (double)start / (double)sysconf(_SC_CLK_TCK);
    return cached;
}

static void render_process(gw_app_t *app, gw_buf_t *b)
{
    struct rusage ru;
    struct rlimit rl;
    double cpu = 0;
    if (getrusage(RUSAGE_SELF, &ru) == 0)
        cpu = (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
    metric(b, "process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds.");
    gw_buf_printf(b, "process_cpu_seconds_total %.6f\n", cpu);
    metric(b, "process_start_time_seconds", "gauge", "Start time of the process since unix epoch in seconds.");
    gw_buf_printf(b, "process_start_time_seconds %.2f\n", process_start_time());
    metric(b, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.");
    gw_buf_printf(b, "process_resident_memory_bytes %ld\n", rss_bytes());
    metric(b, "process_open_fds", "gauge", "Number of open file descriptors.");
    gw_buf_printf(b, "process_open_fds %ld\n", open_fds());
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
        metric(b, "process_max_fds", "gauge", "Maximum number of open file descriptors.");
        gw_buf_printf(b, "process_max_fds %llu\n", (unsigned long long)rl.rlim_cur);
    }
    metric(b, "glint_uptime_seconds", "gauge", "Seconds since start.");
    gw_buf_printf(b, "glint_uptime_seconds %.3f\n", (double)(uv_hrtime() / 1000000 - app->started_at_ms) / 1000.0);
}

void gw_metrics_render(gw_app_t *app, gw_buf_t *b)
{
    render_queue(app, b);
    render_pipeline(b);
    render_pool(app, b);
    render_sentry(app, b);
    render_http(app, b);
    render_readiness(app, b);
    render_process(app, b);
}
