#include "check.h"
#include "reactor/log.h"
#include "reactor/sentry.h"
#include <jansson.h>
#include <stdlib.h>
#include <unistd.h>

static void dsn_ok(const char *dsn, const char *scheme, const char *key, const char *host, const char *path, const char *project,
                   const char *url)
{
    gw_sentry_dsn_t d;
    CHECK_INT(gw_sentry_parse_dsn(dsn, &d), 0);
    CHECK_STR(d.scheme, scheme);
    CHECK_STR(d.public_key, key);
    CHECK_STR(d.host, host);
    CHECK_STR(d.path, path);
    CHECK_STR(d.project_id, project);
    char *u = gw_sentry_envelope_url(&d);
    CHECK_STR(u, url);
    free(u);
    gw_sentry_dsn_free(&d);
}

static void test_dsn(void)
{
    dsn_ok("https://abc123@o1.ingest.sentry.io/4505", "https", "abc123", "o1.ingest.sentry.io", "", "4505",
           "https://o1.ingest.sentry.io/api/4505/envelope/");
    dsn_ok("http://k:legacysecret@127.0.0.1:9000/42", "http", "k", "127.0.0.1:9000", "", "42",
           "http://127.0.0.1:9000/api/42/envelope/");
    dsn_ok("https://k@sentry.example.com/base/path/7", "https", "k", "sentry.example.com", "/base/path", "7",
           "https://sentry.example.com/base/path/api/7/envelope/");
    const char *bad[] = {"",
                         "sentry.io/1",
                         "ftp://k@h/1",
                         "https://h/1",
                         "https://@h/1",
                         "https://k@h/",
                         "https://k@h/abc",
                         "https://k@/1",
                         "httpx://k@h/1",
                         "https://k@h",
                         NULL};
    for (const char **b = bad; *b != NULL; b++) {
        gw_sentry_dsn_t d = {0};
        CHECK_INT(gw_sentry_parse_dsn(*b, &d), -1);
        CHECK(d.scheme == NULL);
    }
    gw_sentry_dsn_t d;
    CHECK_INT(gw_sentry_parse_dsn(NULL, &d), -1);
}

static void test_envelope(void)
{
    gw_sentry_dsn_t d;
    CHECK_INT(gw_sentry_parse_dsn("https://pubkey@sentry.example.com/42", &d), 0);
    gw_sentry_opts_t o = {"glint-worker@1.2.3", NULL, "host:1:abcd", 0, 0};
    const char *tags[] = {"job_id", "j-1", "stage", NULL, "error_code", "private_video", NULL};
    char *env = gw_sentry_build_envelope(&d, &o, "0123456789abcdef0123456789abcdef", "error", "job \"failed\"\nbadly", tags,
                                         "private_video");
    /* three lines: envelope header, item header, payload (+ trailing newline) */
    char *l1 = env, *l2 = strchr(l1, '\n') + 1, *l3 = strchr(l2, '\n') + 1;
    json_t *h = json_loadb(l1, (size_t)(l2 - l1 - 1), 0, NULL), *item = json_loadb(l2, (size_t)(l3 - l2 - 1), 0, NULL);
    CHECK(h != NULL && item != NULL);
    CHECK_STR(json_string_value(json_object_get(h, "event_id")), "0123456789abcdef0123456789abcdef");
    CHECK_STR(json_string_value(json_object_get(h, "dsn")), "https://pubkey@sentry.example.com/42");
    CHECK(strlen(json_string_value(json_object_get(h, "sent_at"))) == 27);
    CHECK_STR(json_string_value(json_object_get(item, "type")), "event");
    size_t len = (size_t)json_integer_value(json_object_get(item, "length"));
    CHECK_INT(strlen(l3), len + 1);
    CHECK(l3[len] == '\n');
    json_t *ev = json_loadb(l3, len, 0, NULL);
    CHECK(ev != NULL);
    CHECK_STR(json_string_value(json_object_get(ev, "event_id")), "0123456789abcdef0123456789abcdef");
    CHECK_STR(json_string_value(json_object_get(ev, "level")), "error");
    CHECK_STR(json_string_value(json_object_get(ev, "release")), "glint-worker@1.2.3");
    CHECK_STR(json_string_value(json_object_get(ev, "environment")), "production");
    CHECK_STR(json_string_value(json_object_get(ev, "server_name")), "host:1:abcd");
    CHECK_STR(json_string_value(json_object_get(json_object_get(ev, "message"), "formatted")), "job \"failed\"\nbadly");
    json_t *t = json_object_get(ev, "tags");
    CHECK_STR(json_string_value(json_object_get(t, "job_id")), "j-1");
    CHECK_STR(json_string_value(json_object_get(t, "error_code")), "private_video");
    CHECK(json_object_get(t, "stage") == NULL);                        /* NULL values are skipped */
    CHECK_INT(json_array_size(json_object_get(ev, "fingerprint")), 1); /* the code alone: one issue per code */
    CHECK_STR(json_string_value(json_array_get(json_object_get(ev, "fingerprint"), 0)), "private_video");
    json_decref(h);
    json_decref(item);
    json_decref(ev);
    free(env);
    gw_sentry_dsn_free(&d);
}

static void test_create(void)
{
    uv_loop_t loop;
    CHECK_INT(uv_loop_init(&loop), 0);
    gw_fetcher_t *f = gw_fetcher_create(&loop, 4);
    char err[256] = "";
    gw_sentry_opts_t o = {"r", NULL, NULL, 2, 1};
    CHECK(gw_sentry_create(f, "https://secretkey@h/notanumber", &o, err, sizeof(err)) == NULL);
    CHECK(strstr(err, "SENTRY_DSN") != NULL && strstr(err, "secretkey") == NULL);
    /* nothing listens on port 1: sends fail; the queue holds 2, one in flight, the rest is dropped */
    gw_sentry_t *s = gw_sentry_create(f, "http://k@127.0.0.1:1/5", &o, err, sizeof(err));
    CHECK(s != NULL);
    for (int i = 0; i < 5; i++)
        gw_sentry_capture(s, "error", "boom", NULL, NULL);
    CHECK_INT(gw_sentry_pending(s), 3);
    CHECK_INT(gw_sentry_stats(s)->dropped, 2);
    CHECK_INT(gw_sentry_stats(s)->dropped_queue_full, 2);
    while (gw_sentry_pending(s) > 0)
        uv_run(&loop, UV_RUN_ONCE);
    CHECK_INT(gw_sentry_stats(s)->failed, 3);
    CHECK_INT(gw_sentry_stats(s)->failed_network, 3);
    CHECK(!gw_sentry_limited(s)); /* a connection refused is no rate limit */
    CHECK_INT(gw_sentry_stats(s)->sent, 0);
    /* crash reports left by an earlier process are queued and removed; other files are left alone */
    char dir[] = "/tmp/glint-sentry-unit-XXXXXX", path[256];
    CHECK(mkdtemp(dir) != NULL);
    snprintf(path, sizeof(path), "%s/glint-crash-123.envelope", dir);
    FILE *fp = fopen(path, "w");
    fputs("{\"event_id\":\"x\"}\n{\"type\":\"event\",\"length\":2}\n{}\n", fp);
    fclose(fp);
    snprintf(path, sizeof(path), "%s/other.envelope", dir);
    fclose(fopen(path, "w"));
    CHECK_INT(gw_sentry_send_crash_reports(s, dir), 1);
    CHECK_INT(gw_sentry_pending(s), 1);
    snprintf(path, sizeof(path), "%s/glint-crash-123.envelope", dir);
    CHECK(access(path, F_OK) != 0);
    snprintf(path, sizeof(path), "%s/other.envelope", dir);
    CHECK(access(path, F_OK) == 0);
    unlink(path);
    rmdir(dir);
    CHECK_INT(gw_sentry_install_crash_handler(s, "/tmp"), 0);
    gw_sentry_capture(s, "error", "in flight at free", NULL, NULL);
    gw_sentry_free(s);
    gw_sentry_capture(NULL, "error", "no-op", NULL, NULL);
    gw_fetcher_close(f);
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK_INT(uv_loop_close(&loop), 0);
}

static void test_rate_limits(void)
{
    /* https://develop.sentry.dev/sdk/rate-limiting/: retry_after:categories:scope:reason:namespaces, comma-separated */
    CHECK(gw_sentry_rate_limit_seconds("60:error:project") == 60);
    CHECK(gw_sentry_rate_limit_seconds("30::organization") == 30); /* no category: all of them */
    CHECK(gw_sentry_rate_limit_seconds("2:default;transaction:key") == 2);
    CHECK(gw_sentry_rate_limit_seconds("60:transaction;session:organization") == 0); /* not our events */
    CHECK(gw_sentry_rate_limit_seconds("60:transaction:org, 2:error;default:project:quota_exceeded") == 2);
    CHECK(gw_sentry_rate_limit_seconds("5:error:project, 20:error;attachment:key") == 20); /* the longest wins */
    CHECK(gw_sentry_rate_limit_seconds("1.5:error") == 1.5);
    CHECK(gw_sentry_rate_limit_seconds("metric_bucket:x, :error, abc:error, -3:error,") == 0); /* malformed: ignored */
    CHECK(gw_sentry_rate_limit_seconds("") == 0);
    CHECK(gw_sentry_rate_limit_seconds("errors:error") == 0);
    CHECK(gw_sentry_rate_limit_seconds("99999999:error") == 86400); /* capped */
    CHECK(gw_sentry_rate_limit_seconds("10:errorx;xerror:project") == 0);
    /* Retry-After: seconds or an HTTP date; 60 when absent or unreadable */
    CHECK(gw_sentry_retry_after_seconds("7", 0) == 7);
    CHECK(gw_sentry_retry_after_seconds(" 2.5 ", 0) == 2.5);
    CHECK(gw_sentry_retry_after_seconds(NULL, 0) == 60);
    CHECK(gw_sentry_retry_after_seconds("soon", 0) == 60);
    CHECK(gw_sentry_retry_after_seconds("0", 0) == 60);
    CHECK(gw_sentry_retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT", 1445412450) == 30);
    CHECK(gw_sentry_retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT", 1445412600) == 0); /* already past */
    CHECK(!gw_sentry_limited(NULL));
}

int main(void)
{
    gw_log_init(GW_LOG_ERROR, false);
    test_dsn();
    test_envelope();
    test_create();
    test_rate_limits();
    gw_log_dispose();
    return check_report();
}
