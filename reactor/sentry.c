#include "reactor/sentry.h"
#include "reactor/log.h"
#include "reactor/text.h"
#include <ctype.h>
#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define SEND_TIMEOUT_MS 10000
#define CRASH_PREFIX "glint-crash-"
#define CRASH_SUFFIX ".envelope"
#define CRASH_MAX_BYTES (64 * 1024)
#define ALT_STACK_BYTES (64 * 1024)
#define DEFAULT_RETRY_AFTER_S 60.0
#define MAX_RETRY_AFTER_S 86400.0 /* a hostile or broken header must not silence us for years */

typedef struct st_envelope_t {
    struct st_envelope_t *next;
    char *body;
} envelope_t;

typedef struct st_inflight_t {
    struct st_inflight_t *next, *prev;
    gw_sentry_t *sentry;
    gw_fetch_t *req;
} inflight_t;

struct st_gw_sentry_t {
    gw_fetcher_t *fetcher;
    gw_sentry_dsn_t dsn;
    gw_sentry_opts_t opts;
    char *release, *environment, *server_name;
    char *url, *auth;
    envelope_t *head, *tail; /* waiting */
    size_t nqueued;
    inflight_t *inflight;
    unsigned ninflight;
    gw_sentry_stats_t stats;
    uint64_t limited_until_ms; /* uv_hrtime clock; 0 = not limited */
};

/* ---- DSN ---- */

int gw_sentry_parse_dsn(const char *dsn, gw_sentry_dsn_t *out)
{
    const char *p = dsn != NULL ? strstr(dsn, "://") : NULL;
    size_t scheme_len = p != NULL ? (size_t)(p - dsn) : 0;
    if (!(scheme_len == 4 && strncmp(dsn, "http", 4) == 0) && !(scheme_len == 5 && strncmp(dsn, "https", 5) == 0))
        return -1;
    const char *user = p + 3, *at = strchr(user, '@');
    if (at == NULL || at == user)
        return -1;
    const char *colon = memchr(user, ':', (size_t)(at - user));
    size_t key_len = (size_t)((colon != NULL ? colon : at) - user);
    const char *host = at + 1, *slash = strchr(host, '/');
    if (slash == NULL || slash == host || key_len == 0)
        return -1;
    const char *last = strrchr(slash, '/');
    const char *project = last + 1;
    if (*project == '\0' || strspn(project, "0123456789") != strlen(project))
        return -1;
    out->scheme = gw_xstrndup(dsn, scheme_len);
    out->public_key = gw_xstrndup(user, key_len);
    out->host = gw_xstrndup(host, (size_t)(slash - host));
    out->path = gw_xstrndup(slash, (size_t)(last - slash));
    out->project_id = gw_xstrdup(project);
    return 0;
}

void gw_sentry_dsn_free(gw_sentry_dsn_t *d)
{
    free(d->scheme);
    free(d->public_key);
    free(d->host);
    free(d->path);
    free(d->project_id);
    memset(d, 0, sizeof(*d));
}

char *gw_sentry_envelope_url(const gw_sentry_dsn_t *d)
{
    size_t n = strlen(d->scheme) + strlen(d->host) + strlen(d->path) + strlen(d->project_id) + 32;
    char *s = malloc(n);
    if (s == NULL)
        abort();
    snprintf(s, n, "%s://%s%s/api/%s/envelope/", d->scheme, d->host, d->path, d->project_id);
    return s;
}

/* ---- envelope ---- */

static void iso_now(char *out, size_t len)
{
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    size_t n = strftime(out, len, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, len - n, ".%06ldZ", (long)tv.tv_usec);
}

static void new_event_id(char out[33])
{
    unsigned char b[16];
    if (getrandom(b, sizeof(b), 0) != (ssize_t)sizeof(b))
        for (size_t i = 0; i < sizeof(b); i++)
            b[i] = (unsigned char)rand();
    for (size_t i = 0; i < sizeof(b); i++)
        snprintf(out + 2 * i, 3, "%02x", b[i]);
}

static char *dsn_string(const gw_sentry_dsn_t *d)
{
    size_t n = strlen(d->scheme) + strlen(d->public_key) + strlen(d->host) + strlen(d->path) + strlen(d->project_id) + 16;
    char *s = malloc(n);
    if (s == NULL)
        abort();
    snprintf(s, n, "%s://%s@%s%s/%s", d->scheme, d->public_key, d->host, d->path, d->project_id);
    return s;
}

static json_t *event_payload(const gw_sentry_opts_t *o, const char *event_id, const char *ts, const char *level,
                             const char *message, const char *const *tags, const char *fingerprint)
{
    json_t *t = json_object();
    for (size_t i = 0; tags != NULL && tags[i] != NULL; i += 2)
        if (tags[i + 1] != NULL)
            json_object_set_new(t, tags[i], json_string(tags[i + 1]));
    json_t *ev = json_pack("{s:s, s:s, s:s, s:s, s:s, s:{s:s}, s:s, s:s, s:o}", "event_id", event_id, "timestamp", ts, "platform",
                           "c", "level", level, "logger", "glint-worker", "message", "formatted", message, "release",
                           o->release ? o->release : "glint-worker", "environment", o->environment ? o->environment : "production",
                           "tags", t);
    if (ev == NULL)
        abort();
    if (o->server_name != NULL)
        json_object_set_new(ev, "server_name", json_string(o->server_name));
    if (fingerprint != NULL)
        json_object_set_new(ev, "fingerprint", json_pack("[s]", fingerprint));
    return ev;
}

char *gw_sentry_build_envelope(const gw_sentry_dsn_t *d, const gw_sentry_opts_t *o, const char *event_id, const char *level,
                               const char *message, const char *const *tags, const char *fingerprint)
{
    char ts[40];
    iso_now(ts, sizeof(ts));
    char *dsn = dsn_string(d);
    json_t *hdr = json_pack("{s:s, s:s, s:s}", "event_id", event_id, "dsn", dsn, "sent_at", ts);
    json_t *ev = event_payload(o, event_id, ts, level, message, tags, fingerprint);
    char *h = json_dumps(hdr, JSON_COMPACT), *p = json_dumps(ev, JSON_COMPACT);
    if (h == NULL || p == NULL)
        abort();
    size_t plen = strlen(p), n = strlen(h) + plen + 128;
    char *out = malloc(n);
    if (out == NULL)
        abort();
    snprintf(out, n, "%s\n{\"type\":\"event\",\"length\":%zu,\"content_type\":\"application/json\"}\n%s\n", h, plen, p);
    free(h);
    free(p);
    free(dsn);
    json_decref(hdr);
    json_decref(ev);
    return out;
}

/* ---- sending ---- */

static void pump(gw_sentry_t *s);
static void enqueue_raw(gw_sentry_t *s, char *body);

static void inflight_unlink(gw_sentry_t *s, inflight_t *f)
{
    if (f->prev != NULL)
        f->prev->next = f->next;
    else
        s->inflight = f->next;
    if (f->next != NULL)
        f->next->prev = f->prev;
    s->ninflight--;
}

/* ---- rate limits ---- */

static uint64_t now_ms(void)
{
    return uv_hrtime() / 1000000;
}

static bool category_applies(const char *cats, size_t len)
{
    if (len == 0)
        return true; /* no categories: all of them */
    for (size_t i = 0; i < len;) {
        size_t n = strcspn(cats + i, ";:,");
        if (n > len - i)
            n = len - i;
        if ((n == 5 && strncmp(cats + i, "error", 5) == 0) || (n == 7 && strncmp(cats + i, "default", 7) == 0))
            return true;
        i += n + 1;
    }
    return false;
}

double gw_sentry_rate_limit_seconds(const char *header)
{
    double longest = 0;
    for (const char *p = header; p != NULL && *p != '\0';) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        size_t len = strcspn(p, ",");
        char *end;
        double secs = strtod(p, &end);
        if (end != p && end < p + len && *end == ':' && secs > 0) {
            const char *cats = end + 1;
            size_t clen = strcspn(cats, ":,");
            if (category_applies(cats, clen) && secs > longest)
                longest = secs;
        }
        p += len;
    }
    return longest < MAX_RETRY_AFTER_S ? longest : MAX_RETRY_AFTER_S;
}

double gw_sentry_retry_after_seconds(const char *value, time_t now)
{
    if (value == NULL)
        return DEFAULT_RETRY_AFTER_S;
    while (isspace((unsigned char)*value))
        value++;
    char *end;
    double secs = strtod(value, &end);
    if (end != value && (*end == '\0' || isspace((unsigned char)*end)))
        return secs <= 0 ? DEFAULT_RETRY_AFTER_S : secs < MAX_RETRY_AFTER_S ? secs : MAX_RETRY_AFTER_S;
    time_t at = curl_getdate(value, NULL); /* an HTTP date */
    if (at == -1)
        return DEFAULT_RETRY_AFTER_S;
    return at <= now ? 0 : (double)(at - now) < MAX_RETRY_AFTER_S ? (double)(at - now) : MAX_RETRY_AFTER_S;
}

bool gw_sentry_limited(const gw_sentry_t *s)
{
    return s != NULL && s->limited_until_ms != 0 && now_ms() < s->limited_until_ms;
}

/* Honours what Sentry said about sending (on any answer, not only 429). */
static void apply_rate_limits(gw_sentry_t *s, gw_fetch_t *req, long status)
{
    const char *hdr = gw_fetch_resp_header(req, "X-Sentry-Rate-Limits");
    double secs = 0;
    if (hdr != NULL)
        secs = gw_sentry_rate_limit_seconds(hdr);
    else if (status == 429)
        secs = gw_sentry_retry_after_seconds(gw_fetch_resp_header(req, "Retry-After"), time(NULL));
    if (secs <= 0)
        return;
    uint64_t until = now_ms() + (uint64_t)(secs * 1000.0);
    if (!gw_sentry_limited(s))
        gw_warn("sentry: rate-limited for %.0f s; events are dropped (and counted) meanwhile", secs);
    if (until > s->limited_until_ms)
        s->limited_until_ms = until;
}

static void drop_limited(gw_sentry_t *s)
{
    s->stats.dropped++;
    s->stats.dropped_rate_limited++;
}

static void on_sent(gw_fetch_t *req, void *data)
{
    inflight_t *f = data;
    gw_sentry_t *s = f->sentry;
    long st = gw_fetch_status(req);
    apply_rate_limits(s, req, st);
    if (st >= 200 && st < 300) {
        s->stats.sent++;
    } else {
        s->stats.failed++;
        if (st == 429)
            s->stats.dropped_rate_limited++;
        else if (st == 0)
            s->stats.failed_network++;
        else
            s->stats.failed_status++;
        if (st != 429)
            gw_warn("sentry: event not accepted (HTTP %ld%s%s)", st, st == 0 ? ", " : "", st == 0 ? gw_fetch_error(req) : "");
    }
    inflight_unlink(s, f);
    free(f);
    gw_fetch_free(req);
    pump(s);
}

static void send_one(gw_sentry_t *s, envelope_t *e)
{
    inflight_t *f = calloc(1, sizeof(*f));
    if (f == NULL)
        abort();
    f->sentry = s;
    f->req = gw_fetch_new(s->fetcher, "POST", s->url);
    gw_fetch_header(f->req, "Content-Type", "application/x-sentry-envelope");
    gw_fetch_header(f->req, "X-Sentry-Auth", s->auth);
    gw_fetch_body(f->req, e->body, strlen(e->body));
    gw_fetch_timeout(f->req, SEND_TIMEOUT_MS, 5000);
    gw_fetch_max_response(f->req, 64 * 1024);
    if (gw_fetch_start(f->req, on_sent, f) != 0) {
        gw_fetch_cancel(f->req);
        free(f);
        s->stats.failed++;
        s->stats.failed_network++;
        return;
    }
    f->next = s->inflight;
    if (s->inflight != NULL)
        s->inflight->prev = f;
    s->inflight = f;
    s->ninflight++;
}

static void pump(gw_sentry_t *s)
{
    while (s->head != NULL && s->ninflight < s->opts.max_inflight) {
        envelope_t *e = s->head;
        s->head = e->next;
        if (s->head == NULL)
            s->tail = NULL;
        s->nqueued--;
        if (gw_sentry_limited(s))
            drop_limited(s); /* queued before the limit came: not sent either */
        else
            send_one(s, e);
        free(e->body);
        free(e);
    }
}

void gw_sentry_capture(gw_sentry_t *s, const char *level, const char *message, const char *const *tags, const char *fingerprint)
{
    if (s == NULL)
        return;
    if (gw_sentry_limited(s)) {
        drop_limited(s);
        return;
    }
    if (s->nqueued >= s->opts.max_queued) {
        s->stats.dropped++;
        s->stats.dropped_queue_full++;
        return;
    }
    char id[33];
    new_event_id(id);
    enqueue_raw(s, gw_sentry_build_envelope(&s->dsn, &s->opts, id, level, message, tags, fingerprint));
}

gw_sentry_t *gw_sentry_create(gw_fetcher_t *fetcher, const char *dsn, const gw_sentry_opts_t *opts, char *err, size_t errlen)
{
    gw_sentry_t *s = calloc(1, sizeof(*s));
    if (s == NULL)
        abort();
    if (gw_sentry_parse_dsn(dsn, &s->dsn) != 0) {
        snprintf(err, errlen, "SENTRY_DSN is not a DSN (expected https://KEY@HOST/PROJECT_ID)");
        free(s);
        return NULL;
    }
    s->fetcher = fetcher;
    s->release = opts->release != NULL ? gw_xstrdup(opts->release) : NULL;
    s->environment = opts->environment != NULL ? gw_xstrdup(opts->environment) : NULL;
    s->server_name = opts->server_name != NULL ? gw_xstrdup(opts->server_name) : NULL;
    s->opts = *opts;
    s->opts.release = s->release;
    s->opts.environment = s->environment;
    s->opts.server_name = s->server_name;
    if (s->opts.max_queued == 0)
        s->opts.max_queued = 32;
    if (s->opts.max_inflight == 0)
        s->opts.max_inflight = 2;
    s->url = gw_sentry_envelope_url(&s->dsn);
    size_t n = strlen(s->dsn.public_key) + 128;
    s->auth = malloc(n);
    if (s->auth == NULL)
        abort();
    snprintf(s->auth, n, "Sentry sentry_version=7, sentry_key=%s, sentry_client=glint-worker/%s", s->dsn.public_key, GW_VERSION);
    gw_log_secret(s->dsn.public_key);
    return s;
}

/* ---- crash reports ---- */

static const int crash_signals[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT};
static const char *const crash_names[] = {"SIGSEGV", "SIGBUS", "SIGILL", "SIGFPE", "SIGABRT"};
#define NCRASH (sizeof(crash_signals) / sizeof(crash_signals[0]))

/* Everything the signal handler touches is prepared here beforehand: it only open()s, write()s and raise()s. */
static struct {
    bool installed;
    char path[PATH_MAX];
    char *envelope[NCRASH];
    size_t len[NCRASH];
    struct sigaction previous[NCRASH];
    stack_t altstack;
} crash;

static void on_crash(int sig)
{
    for (size_t i = 0; i < NCRASH; i++) {
        if (crash_signals[i] != sig || crash.envelope[i] == NULL)
            continue;
        int fd = open(crash.path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        for (size_t off = 0; fd >= 0 && off < crash.len[i];) {
            ssize_t n = write(fd, crash.envelope[i] + off, crash.len[i] - off);
            if (n <= 0)
                break;
            off += (size_t)n;
        }
        if (fd >= 0)
            close(fd);
    }
    raise(sig); /* SA_RESETHAND: the default action now ends the process (and dumps core where enabled) */
}

static void enqueue_raw(gw_sentry_t *s, char *body)
{
    if (gw_sentry_limited(s) || s->nqueued >= s->opts.max_queued) {
        if (gw_sentry_limited(s)) {
            drop_limited(s);
        } else {
            s->stats.dropped++;
            s->stats.dropped_queue_full++;
        }
        free(body);
        return;
    }
    envelope_t *e = calloc(1, sizeof(*e));
    if (e == NULL)
        abort();
    e->body = body;
    if (s->tail != NULL)
        s->tail->next = e;
    else
        s->head = e;
    s->tail = e;
    s->nqueued++;
    pump(s);
}

int gw_sentry_install_crash_handler(gw_sentry_t *s, const char *dir)
{
    if (crash.installed)
        return 0;
    int n = snprintf(crash.path, sizeof(crash.path), "%s/" CRASH_PREFIX "%d" CRASH_SUFFIX, dir, (int)getpid());
    if (n < 0 || (size_t)n >= sizeof(crash.path))
        return -1;
    for (size_t i = 0; i < NCRASH; i++) {
        char id[33], msg[96];
        new_event_id(id);
        snprintf(msg, sizeof(msg), "crash: %s (%s)", crash_names[i], strsignal(crash_signals[i]));
        const char *tags[] = {"release", GW_VERSION, "signal", crash_names[i], NULL};
        crash.envelope[i] = gw_sentry_build_envelope(&s->dsn, &s->opts, id, "fatal", msg, tags, "crash");
        crash.len[i] = strlen(crash.envelope[i]);
    }
    /* an alternate stack, so a stack overflow can still be reported */
    crash.altstack.ss_sp = malloc(ALT_STACK_BYTES);
    if (crash.altstack.ss_sp == NULL)
        abort();
    crash.altstack.ss_size = ALT_STACK_BYTES;
    if (sigaltstack(&crash.altstack, NULL) != 0)
        gw_warn("sentry: no alternate signal stack (%s): stack overflows will not be reported", strerror(errno));
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_crash;
    sa.sa_flags = SA_RESETHAND | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < NCRASH; i++)
        if (sigaction(crash_signals[i], &sa, &crash.previous[i]) != 0)
            gw_warn("sentry: cannot handle signal %d: %s", crash_signals[i], strerror(errno));
    crash.installed = true;
    return 0;
}

static void uninstall_crash_handler(void)
{
    if (!crash.installed)
        return;
    for (size_t i = 0; i < NCRASH; i++) {
        sigaction(crash_signals[i], &crash.previous[i], NULL);
        free(crash.envelope[i]);
        crash.envelope[i] = NULL;
    }
    stack_t off = {.ss_flags = SS_DISABLE};
    sigaltstack(&off, NULL);
    free(crash.altstack.ss_sp);
    memset(&crash, 0, sizeof(crash));
}

static char *read_small_file(const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return NULL;
    char *buf = malloc(CRASH_MAX_BYTES + 1);
    if (buf == NULL)
        abort();
    size_t n = fread(buf, 1, CRASH_MAX_BYTES, f);
    fclose(f);
    buf[n] = '\0';
    if (n == 0 || strchr(buf, '\n') == NULL) {
        free(buf);
        return NULL;
    }
    return buf;
}

size_t gw_sentry_send_crash_reports(gw_sentry_t *s, const char *dir)
{
    DIR *d = opendir(dir);
    size_t found = 0;
    if (d == NULL)
        return 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        size_t len = strlen(e->d_name), slen = strlen(CRASH_SUFFIX);
        if (strncmp(e->d_name, CRASH_PREFIX, strlen(CRASH_PREFIX)) != 0 || len <= slen ||
            strcmp(e->d_name + len - slen, CRASH_SUFFIX) != 0)
            continue;
        char path[PATH_MAX];
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        char *body = read_small_file(path);
        unlink(path);
        if (body != NULL) {
            found++;
            enqueue_raw(s, body);
        }
    }
    closedir(d);
    if (found > 0)
        gw_warn("sentry: reporting %zu crash(es) of earlier runs", found);
    return found;
}

size_t gw_sentry_pending(const gw_sentry_t *s)
{
    return s != NULL ? s->nqueued + s->ninflight : 0;
}

const gw_sentry_stats_t *gw_sentry_stats(const gw_sentry_t *s)
{
    return &s->stats;
}

void gw_sentry_free(gw_sentry_t *s)
{
    if (s == NULL)
        return;
    uninstall_crash_handler();
    while (s->head != NULL) {
        envelope_t *e = s->head;
        s->head = e->next;
        s->stats.dropped++;
        s->stats.dropped_shutdown++;
        free(e->body);
        free(e);
    }
    while (s->inflight != NULL) {
        inflight_t *f = s->inflight;
        s->inflight = f->next;
        gw_fetch_cancel(f->req);
        free(f);
    }
    gw_sentry_dsn_free(&s->dsn);
    free(s->release);
    free(s->environment);
    free(s->server_name);
    free(s->url);
    free(s->auth);
    free(s);
}
