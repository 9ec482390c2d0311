/* handlers/errors: the catalogue is well formed (unique codes, a message each, never a promise of a retry), codes are
 * transient or permanent as documented, a final failure's stored message says what happened, and openapi.json's enums
 * and docs/errors.md (also as printed by the binary) equal the catalogue. */
#include "check.h"
#include "handlers/errors.h"
#include <jansson.h>
#include <stdlib.h>

static const char *src_dir(void)
{
    const char *s = getenv("GW_TEST_SRC");
    return s != NULL ? s : "tests";
}

static char *read_all(FILE *f)
{
    size_t cap = 1 << 16, n = 0, r;
    char *buf = malloc(cap);
    while (buf != NULL && (r = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += r;
        if (n + 1 == cap)
            buf = realloc(buf, cap *= 2);
    }
    if (buf != NULL)
        buf[n] = '\0';
    return buf;
}

static char *catalogue_markdown(void)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    gw_errors_print_markdown(f);
    fclose(f);
    return text;
}

static void test_well_formed(void)
{
    size_t n;
    const gw_error_t *all = gw_errors_all(&n);
    CHECK(n >= 50);
    for (size_t i = 0; i < n; i++) {
        const char *c = all[i].code, *m = all[i].message;
        CHECK(c != NULL && c[0] != '\0' && strspn(c, "abcdefghijklmnopqrstuvwxyz_") == strlen(c));
        CHECK(m != NULL && strlen(m) > 10 && m[strlen(m) - 1] == '.');
        CHECK(strstr(m, "retr") == NULL && strstr(m, "try again") == NULL); /* it is the final word */
        CHECK(gw_error_find(c) == &all[i]);                                 /* unique: the first match is itself */
    }
    CHECK(gw_error_find("no_such_code") == NULL);
    CHECK(gw_error_find(NULL) == NULL);
}

/* As docs/errors.md documents them (and as the pipeline relies on). */
static void test_transient_permanent(void)
{
    static const char *const transient[] = {"bot_check",
                                            "rate_limited",
                                            "network_error",
                                            "ytdlp_failed",
                                            "ytdlp_timeout",
                                            "download_timeout",
                                            "tool_unavailable",
                                            "scratch_unavailable",
                                            "database_unavailable",
                                            "gemini_not_configured",
                                            "gemini_rate_limited",
                                            "gemini_unavailable",
                                            "gemini_timeout",
                                            "upload_failed",
                                            "worker_lost",
                                            "bad_model_output",
                                            NULL};
    static const char *const permanent[] = {"invalid_url",      "private_video", "members_only",
                                            "age_restricted",   "live_stream",   "video_unavailable",
                                            "video_too_large",  "no_transcript", "insufficient_credits",
                                            "content_blocked",  "gemini_auth",   "gemini_quota_exhausted",
                                            "path_not_allowed", "cancelled",     NULL};
    for (const char *const *c = transient; *c != NULL; c++)
        CHECK(gw_error_find(*c) != NULL && gw_error_find(*c)->transient);
    for (const char *const *c = permanent; *c != NULL; c++)
        CHECK(gw_error_find(*c) != NULL && !gw_error_find(*c)->transient);
    CHECK(gw_error_find("private_video")->operator_trouble == false);
    CHECK(gw_error_find("gemini_auth")->operator_trouble == true);
    CHECK(gw_error_find("database_unavailable")->scope == GW_ERROR_BOTH);
}

static void test_stored_message(void)
{
    char buf[320];
    const char *retry = "YouTube is rate-limiting the worker right now. The job will be retried shortly.";
    CHECK(gw_error_stored_message("rate_limited", retry, false, true, 1, buf, sizeof(buf)) == retry); /* a retry follows */
    const char *final = gw_error_stored_message("rate_limited", retry, true, true, 3, buf, sizeof(buf));
    CHECK_STR(final, "YouTube kept rate-limiting the worker. Gave up after 3 attempts.");
    CHECK_STR(gw_error_stored_message("bot_check", "x", true, true, 1, buf, sizeof(buf)),
              "YouTube asked the worker to prove it is not a bot, on every attempt. Gave up after 1 attempt.");
    const char *priv = "This video is private. Ask its owner to make it public or unlisted, then submit it again.";
    CHECK(gw_error_stored_message("private_video", priv, true, false, 1, buf, sizeof(buf)) == priv); /* specific, final */
    CHECK_STR(gw_error_stored_message("test_unknown", "kept", true, true, 2, buf, sizeof(buf)), "kept");
}

static void enum_equals(json_t *schemas, const char *name, gw_error_scope_t scope)
{
    json_t *e = json_object_get(json_object_get(schemas, name), "enum");
    size_t n, want = 0;
    const gw_error_t *all = gw_errors_all(&n);
    CHECK(json_is_array(e));
    for (size_t i = 0; i < n; i++) {
        if (all[i].scope != scope && all[i].scope != GW_ERROR_BOTH)
            continue;
        CHECK_STR(json_string_value(json_array_get(e, want)), all[i].code);
        want++;
    }
    CHECK_INT(json_array_size(e), want);
}

static void test_openapi(void)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/../handlers/assets/openapi.json", src_dir());
    json_t *doc = json_load_file(path, 0, NULL);
    CHECK(doc != NULL);
    json_t *schemas = json_object_get(json_object_get(doc, "components"), "schemas");
    enum_equals(schemas, "JobErrorCode", GW_ERROR_JOB);
    enum_equals(schemas, "ApiErrorCode", GW_ERROR_API);
    json_decref(doc);
}

static void test_docs(void)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/../docs/errors.md", src_dir());
    FILE *f = fopen(path, "r");
    CHECK(f != NULL);
    char *docs = f ? read_all(f) : NULL, *md = catalogue_markdown();
    if (f)
        fclose(f);
    CHECK(docs != NULL && strcmp(docs, md) == 0); /* regenerate: glint-worker --errors-markdown > docs/errors.md */
    const char *bin = getenv("GW_TEST_BIN");
    if (bin != NULL) {
        snprintf(path, sizeof(path), "%s/glint-worker --errors-markdown", bin);
        FILE *p = popen(path, "r");
        char *out = p ? read_all(p) : NULL;
        CHECK(p != NULL && pclose(p) == 0);
        CHECK(out != NULL && strcmp(out, md) == 0);
        free(out);
    }
    free(docs);
    free(md);
}

int main(void)
{
    test_well_formed();
    test_transient_permanent();
    test_stored_message();
    test_openapi();
    test_docs();
    return check_report();
}
