/* The Files API upload state machine (handlers/upload) on a real loop against the Gemini stand-in: chunked upload,
 * resume after a reset mid-chunk, 503s exhausted, FAILED file, never ACTIVE, cancel, DELETE. */
#include "check.h"
#include "handlers/upload.h"
#include <curl/curl.h>
#include <jansson.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#define KEY "unit-key-0123"
#define MiB (1024u * 1024u)

extern char **environ;

static char base[64], media[PATH_MAX];
static uv_loop_t loop;
static gw_fetcher_t *fetcher;

typedef struct st_outcome_t {
    bool done, ok, transient, named;
    char code[64], name[128];
    uint64_t bytes;
} outcome_t;

static size_t sink(char *p, size_t s, size_t n, void *ud)
{
    json_t **out = ud;
    json_decref(*out);
    *out = json_loadb(p, s * n, 0, NULL);
    return s * n;
}

/* A blocking call to the stand-in's control API (outside the loop). */
static json_t *control(const char *path, const char *body)
{
    char url[160];
    json_t *out = NULL;
    snprintf(url, sizeof(url), "%s%s", base, path);
    CURL *c = curl_easy_init();
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    if (body != NULL)
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &out);
    CHECK(curl_easy_perform(c) == CURLE_OK);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return out;
}

static void on_named(const char *name, void *data)
{
    outcome_t *o = data;
    o->named = true;
    snprintf(o->name, sizeof(o->name), "%s", name);
}

static void on_done(const gw_upload_result_t *r, void *data)
{
    outcome_t *o = data;
    o->done = true;
    o->ok = r->ok;
    o->transient = r->transient;
    o->bytes = r->bytes;
    snprintf(o->code, sizeof(o->code), "%s", r->error_code ? r->error_code : "");
}

static outcome_t upload(const char *faults, uint64_t active_timeout_ms)
{
    outcome_t o = {0};
    json_decref(control("/_control/reset", "{}"));
    json_decref(control("/_control", faults));
    gw_upload_opts_t opts = {base, KEY, media, "video/mp4", "glint-unit-1", "unit", 8 * MiB, 2, 20000, active_timeout_ms};
    gw_upload_events_t ev = {on_named, on_done, &o};
    gw_upload_start(&loop, fetcher, &opts, &ev);
    while (!o.done)
        uv_run(&loop, UV_RUN_ONCE);
    return o;
}

static void on_deleted(gw_fetch_t *req, void *data)
{
    *(int *)data = gw_files_delete_gone(req) ? 1 : 2;
    gw_fetch_free(req);
}

static void delete_remote(const char *name)
{
    int state = 0;
    CHECK(gw_files_delete(fetcher, base, KEY, name, on_deleted, &state) != NULL);
    while (state == 0)
        uv_run(&loop, UV_RUN_ONCE);
    CHECK_INT(state, 1);
}

static size_t remote_files(void)
{
    json_t *f = control("/_control/files", NULL);
    size_t n = json_array_size(json_object_get(f, "files"));
    json_decref(f);
    return n;
}

static long long stat_int(const char *key, const char *sub)
{
    json_t *st = control("/_control/stats", NULL), *v = json_object_get(st, key);
    long long n = (long long)json_integer_value(sub ? json_object_get(v, sub) : v);
    json_decref(st);
    return n;
}

static void test_uploads(void)
{
    uint64_t size = 20 * MiB + 12345;
    outcome_t o = upload("{\"processing_polls\": 1}", 10000);
    CHECK(o.ok && o.named && o.bytes == size);
    CHECK_INT(stat_int("requests", "upload.data"), 3); /* 8 + 8 + the rest, finalized */
    CHECK_INT(stat_int("bytes_received", NULL), size);
    CHECK_INT(remote_files(), 1);
    delete_remote(o.name);
    CHECK_INT(remote_files(), 0);
    delete_remote(o.name); /* already gone counts as gone */

    o = upload("{\"faults\": [\"upload_reset\"], \"fault_count\": 1}", 10000);
    CHECK(o.ok);
    CHECK_INT(stat_int("bytes_received", NULL), size); /* resumed at the committed offset, nothing sent twice */
    CHECK_INT(stat_int("requests", "upload.data"), 5); /* 3 + the cut-off one + the query */
    delete_remote(o.name);

    o = upload("{\"faults\": [\"chunk_503\"]}", 10000);
    CHECK(!o.ok && o.transient && !o.named);
    CHECK_STR(o.code, "upload_failed");

    o = upload("{\"faults\": [\"file_failed\"], \"fault_count\": 1}", 10000);
    CHECK(!o.ok && !o.transient && o.named);
    CHECK_STR(o.code, "file_processing_failed");
    delete_remote(o.name);

    o = upload("{\"faults\": [\"never_active\"], \"fault_count\": 1}", 1200);
    CHECK(!o.ok && o.transient && o.named);
    CHECK_STR(o.code, "file_processing_timeout");
    delete_remote(o.name);
    CHECK_INT(remote_files(), 0);

    /* cancel: no callback, the object goes away with its timer */
    json_decref(control("/_control/reset", "{}"));
    outcome_t c = {0};
    gw_upload_opts_t opts = {base, KEY, media, "video/mp4", "glint-unit-2", "unit", 8 * MiB, 2, 20000, 10000};
    gw_upload_events_t ev = {on_named, on_done, &c};
    gw_upload_t *u = gw_upload_start(&loop, fetcher, &opts, &ev);
    for (int i = 0; i < 20; i++)
        uv_run(&loop, UV_RUN_NOWAIT);
    gw_upload_cancel(u);
    for (int i = 0; i < 20; i++)
        uv_run(&loop, UV_RUN_NOWAIT);
    CHECK(!c.done);
}

int main(void)
{
    const char *src = getenv("GW_TEST_SRC");
    char script[PATH_MAX], portfile[] = "/tmp/gw-test-upload-port-XXXXXX";
    snprintf(script, sizeof(script), "%s/standins/fake_gemini.py", src ? src : "tests");
    int fd = mkstemp(portfile);
    close(fd);
    unlink(portfile);
    char *argv[] = {"/usr/bin/python3", script, "--port", "0", "--port-file", portfile, "--api-key", KEY, "--control", NULL};
    pid_t pid;
    if (posix_spawn(&pid, argv[0], NULL, NULL, argv, environ) != 0)
        return 1;
    int port = 0;
    for (int i = 0; i < 200 && port == 0; i++) {
        FILE *f = fopen(portfile, "r");
        if (f == NULL || fscanf(f, "%d", &port) != 1)
            usleep(50000);
        if (f != NULL)
            fclose(f);
    }
    unlink(portfile);
    snprintf(base, sizeof(base), "http://127.0.0.1:%d", port);
    snprintf(media, sizeof(media), "/tmp/gw-test-upload-XXXXXX");
    fd = mkstemp(media);
    CHECK(fd >= 0 && ftruncate(fd, 20 * MiB + 12345) == 0);
    close(fd);

    curl_global_init(CURL_GLOBAL_DEFAULT);
    uv_loop_init(&loop);
    fetcher = gw_fetcher_create(&loop, 8);
    if (port != 0)
        test_uploads();
    CHECK(port != 0);
    gw_fetcher_close(fetcher);
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK(uv_loop_close(&loop) == 0);
    curl_global_cleanup();
    unlink(media);
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
    return check_report();
}
