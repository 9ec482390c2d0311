#include "reactor/sentry.h"
#include "reactor/log.h"
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/time.h>
#include <time.h>

#define SEND_TIMEOUT_MS 10000

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
};

static char *xstrndup(const char *s, size_t n)
{
    char *d = strndup(s, n);
    if (d == NULL)
        abort();
    return d;
}

static char *xstrdup_or_null(const char *s)
{
    return s != NULL ? xstrndup(s, strlen(s)) : NULL;
}

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
    out->scheme = xstrndup(dsn, scheme_len);
    out->public_key = xstrndup(user, key_len);
    out->host = xstrndup(host, (size_t)(slash - host));
    out->path = xstrndup(slash, (size_t)(last - slash));
    out->project_id = xstrndup(project, strlen(project));
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
        json_object_set_new(ev, "fingerprint", json_pack("[s, s]", "{{ default }}", fingerprint));
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

static void on_sent(gw_fetch_t *req, void *data)
{
    inflight_t *f = data;
    gw_sentry_t *s = f->sentry;
    long st = gw_fetch_status(req);
    if (st >= 200 && st < 300) {
        s->stats.sent++;
    } else {
        s->stats.failed++;
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
        send_one(s, e);
        free(e->body);
        free(e);
    }
}

void gw_sentry_capture(gw_sentry_t *s, const char *level, const char *message, const char *const *tags, const char *fingerprint)
{
    if (s == NULL)
        return;
    if (s->nqueued >= s->opts.max_queued) {
        s->stats.dropped++;
        return;
    }
    char id[33];
    new_event_id(id);
    envelope_t *e = calloc(1, sizeof(*e));
    if (e == NULL)
        abort();
    e->body = gw_sentry_build_envelope(&s->dsn, &s->opts, id, level, message, tags, fingerprint);
    if (s->tail != NULL)
        s->tail->next = e;
    else
        s->head = e;
    s->tail = e;
    s->nqueued++;
    pump(s);
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
    s->release = xstrdup_or_null(opts->release);
    s->environment = xstrdup_or_null(opts->environment);
    s->server_name = xstrdup_or_null(opts->server_name);
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
    while (s->head != NULL) {
        envelope_t *e = s->head;
        s->head = e->next;
        s->stats.dropped++;
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
