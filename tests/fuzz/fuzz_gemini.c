/* libFuzzer: Gemini response handling — the generateContent envelope parser, result validation and repair of what the
 * model wrote, HTTP error classification (retryDelay, quota), and the Files API response parser. */
#include "fuzz.h"
#include "handlers/gemini.h"
#include "handlers/result.h"
#include <stdio.h>
#include <strings.h>

static void check_error(const gw_gemini_error_t *e)
{
    FUZZ_ASSERT(e->error_code != NULL || e->ok);
    FUZZ_ASSERT(memchr(e->message, '\0', sizeof(e->message)) != NULL);
    FUZZ_ASSERT(memchr(e->api_status, '\0', sizeof(e->api_status)) != NULL);
    FUZZ_ASSERT(strstr(e->message, "AIza") == NULL); /* keys are scrubbed from messages */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_quiet();
    char *buf = malloc(size + 1);
    FUZZ_ASSERT(buf != NULL);
    memcpy(buf, data, size);
    buf[size] = '\0';

    gw_gemini_reply_t r;
    int rc = gw_gemini_parse_response(buf, size, &r);
    FUZZ_ASSERT((rc == 0) == (r.outcome == GW_GEMINI_OK));
    FUZZ_ASSERT(rc != 0 || r.result != NULL);
    FUZZ_ASSERT((gw_gemini_outcome_error_code(r.outcome) == NULL) == (r.outcome == GW_GEMINI_OK));
    if (r.result != NULL) {
        char err[256];
        unsigned repairs = 0;
        bool deep = size > 0 && (data[0] & 1);
        double duration = size > 1 ? (double)(data[1] % 8) * 300.0 - 1.0 : -1.0;
        if (gw_result_validate_ex(r.result, duration, deep, err, sizeof(err), &repairs) == 0) {
            /* The title rule: a known video title always wins; the model's other wording sits beside it. */
            FUZZ_ASSERT(gw_result_fill_title(r.result, "fallback") == 1);
            FUZZ_ASSERT(strcmp(json_string_value(json_object_get(r.result, "title")), "fallback") == 0);
            const char *mt = json_string_value(json_object_get(r.result, "modelTitle"));
            FUZZ_ASSERT(mt == NULL || strcasecmp(mt, "fallback") != 0);
            FUZZ_ASSERT(gw_result_validate(r.result, duration, deep, err, sizeof(err)) == 0);
            char *again = json_dumps(r.result, JSON_COMPACT);
            FUZZ_ASSERT(again != NULL);
            free(again);
        }
    }
    gw_gemini_reply_free(&r);

    gw_gemini_error_t e;
    long status = size > 0 ? 400 + data[size - 1] % 110 : 429;
    gw_gemini_classify_http(status, buf, 0, &e);
    check_error(&e);

    gw_gemini_file_t f;
    if (gw_gemini_file_parse(buf, size, &f) == 0)
        FUZZ_ASSERT(f.name != NULL);
    gw_gemini_file_free(&f);

    int secs;
    if (gw_parse_timestamp(buf, &secs) == 0)
        FUZZ_ASSERT(secs >= 0);
    int64_t ms = gw_gemini_parse_duration_ms(buf);
    FUZZ_ASSERT(ms >= -1);
    free(buf);
    return 0;
}
