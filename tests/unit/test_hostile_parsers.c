/* Malformed and hostile inputs for the parsers (subtitles json3/VTT/SRT, yt-dlp -J, Gemini responses and errors):
 * each case states its exact outcome. Inputs carry explicit lengths, so NUL bytes are part of some of them. */
#include "check.h"
#include "handlers/gemini.h"
#include "handlers/subtitles.h"
#include "handlers/ytdlp.h"
#include "ytdlp_text.h"
#include <stdint.h>
#include <stdlib.h>

#define IN(s) s, sizeof(s) - 1

/* ---- subtitles: rc and "start-end:text|..." ---- */

typedef struct st_sub_case_t {
    int (*parse)(const char *, size_t, gw_transcript_t *);
    const char *in;
    size_t len;
    int rc;
    const char *segs;
} sub_case_t;

static const sub_case_t sub_cases[] = {
    /* json3 */
    {gw_parse_json3, IN(""), -1, ""},
    {gw_parse_json3, IN("[]"), -1, ""},
    {gw_parse_json3, IN("{\"events\":null}"), -1, ""},
    {gw_parse_json3, IN("{\"events\":[]}"), 0, ""},
    {gw_parse_json3, IN("{\"events\":[1,\"x\",null,{\"tStartMs\":0,\"segs\":\"str\"}]}"), 0, ""},
    {gw_parse_json3, IN("{\"events\":[{\"tStartMs\":\"x\",\"segs\":[{\"utf8\":\"a\"}]}]}"), 0, ""},
    {gw_parse_json3, IN("{\"events\":[{\"segs\":[{\"utf8\":\"no start\"}]}]}"), 0, ""},
    {gw_parse_json3, IN("{\"events\":[{\"tStartMs\":-5000,\"dDurationMs\":1000,\"segs\":[{\"utf8\":\"negative\"}]}]}"), 0, ""},
    {gw_parse_json3, IN("{\"events\":[{\"tStartMs\":1e300,\"segs\":[{\"utf8\":\"huge\"}]}]}"), 0, ""},
    {gw_parse_json3, IN("{\"events\":[{\"tStartMs\":1000,\"segs\":[{\"utf8\":\"\\u0000nul\"}]}]}"), 0, "1000-1000:nul"},
    {gw_parse_json3, IN("{\"events\":[{\"tStartMs\":0,\"segs\":[{\"utf8\":5},{\"utf8\":\"ok\"}]}]}"), 0, "0-0:ok"},
    {gw_parse_json3, IN("{\"events\":[{\"tStartMs\":0,\"dDurationMs\":1000,\"segs\":[{\"utf8\":\"a\\nb\\tc\\r\\u2028d\"}]}]}"), 0,
     "0-1000:a b c d"},
    {gw_parse_json3,
     IN("{\"events\":[{\"tStartMs\":2000,\"dDurationMs\":500,\"segs\":[{\"utf8\":\"b\"}]},{\"tStartMs\":1000,\"dDurationMs\":500,"
        "\"segs\":[{\"utf8\":\"a\"}]}]}"),
     0, "1000-1500:a|2000-2500:b"},
    {gw_parse_json3, IN("{\"events\":[{\"tStartMs\":0,\"segs\":[{\"utf8\":\"\\ud800x\"}]}]}"), -1, ""}, /* lone surrogate */
    {gw_parse_json3, IN("{\"events\":[{\"tStartMs\":0,\"segs\":[{\"utf8\":\"a\"}]}]} trailing"), -1, ""},
    {gw_parse_json3, IN("{\"events\":[{\"tStartMs\":0,\"segs\":[{\"utf8\":\"a\"}]}"), -1, ""}, /* truncated */
    {gw_parse_json3, IN("{\"events\":[{\"tStartMs\":0,\"aAppend\":1,\"segs\":[{\"utf8\":\"appended\"}]}]}"), 0, ""},
    /* VTT */
    {gw_parse_vtt, IN(""), -1, ""},
    {gw_parse_vtt, IN("WEBVTX\n\n00:00:01.000 --> 00:00:02.000\nx"), -1, ""},
    {gw_parse_vtt, IN("WEBVTT"), 0, ""},
    {gw_parse_vtt, IN("WEBVTT\n\n00:00:01.000 --> 00:00:02.000\n"), 0, ""},
    {gw_parse_vtt, IN("WEBVTT\n\n00:00:01.000 --> 00:00:02.000\n   \n"), 0, ""},
    {gw_parse_vtt, IN("WEBVTT\n\n00:00:02.000 --> 00:00:01.000\nbackwards"), 0, "2000-2000:backwards"},
    {gw_parse_vtt, IN("WEBVTT\n\n00:00:01.000 --> \nno end"), 0, ""},
    {gw_parse_vtt, IN("WEBVTT\n\n99:99:99.999 --> 100:00:00.000\nbad minutes"), 0, ""},
    {gw_parse_vtt, IN("WEBVTT\n\n-00:00:01.000 --> 00:00:02.000\nnegative"), 0, ""},
    {gw_parse_vtt, IN("WEBVTT\n\n9223372036854775807:00:00.000 --> 9223372036854775807:00:01.000\noverflow"), 0, ""},
    {gw_parse_vtt, IN("WEBVTT\n\n00:00:01.000-->00:00:02.000\nno spaces"), 0, "1000-2000:no spaces"},
    {gw_parse_vtt, IN("WEBVTT\n\n00:00:01.000 --> 00:00:02.000\n<script>alert(1)</script>x &amp;lt; &#0; &#x110000; &#65;"), 0,
     "1000-2000:alert(1)x &lt; &#0; &#x110000; A"},
    {gw_parse_vtt, IN("WEBVTT\n\n00:00:01.000 --> 00:00:02.000\n\xff\xfe bad \xc0\xaf"), 0,
     "1000-2000:\xef\xbf\xbd\xef\xbf\xbd bad \xef\xbf\xbd\xef\xbf\xbd"},
    {gw_parse_vtt,
     IN("WEBVTT\n\n00:00:01.000 --> 00:00:02.000\nnul\0inside\x01"
        "ctl"),
     0, "1000-2000:nul inside ctl"},
    {gw_parse_vtt, IN("WEBVTT\n\n00:00:01.000 --> 00:00:02.000\n<c.colorE5E5E5><00:00:01.500>unclosed <b"), 0,
     "1000-2000:unclosed <b"}, /* text, never rendered as HTML */
    {gw_parse_vtt, IN("\xef\xbb\xbfWEBVTT\r\n\r\n00:00.000 --> 00:01.000\r\nbom crlf\r\n"), 0, "0-1000:bom crlf"},
    {gw_parse_vtt, IN("WEBVTT\n\n00:01.000 --> 00:02.000\nroll\n\n00:01.500 --> 00:03.000\nroll\nnext"), 0,
     "1000-2000:roll|1500-3000:next"},
    /* SRT */
    {gw_parse_srt, IN(""), -1, ""},
    {gw_parse_srt, IN("just text"), -1, ""},
    {gw_parse_srt, IN("1\n00:00:01,000 --> 00:00:02,000\n"), 0, ""},
    {gw_parse_srt, IN("1\n00:00:01,000 --> 00:00:02,000\nok\n\n2\ngarbage line\n\n3\n00:00:03,000 --> 00:00:04,000\nthree"), 0,
     "1000-2000:ok|3000-4000:three"},
    {gw_parse_srt, IN("00:00:01,000 --> 00:00:02,000\nno index"), 0, "1000-2000:no index"},
    {gw_parse_srt, IN("1\n00:00:01,000 --> 00:00:02,000\n{\\an8}<font color=\"#fff\">top</font> <b>bold</b>"), 0,
     "1000-2000:top bold"},
    {gw_parse_srt,
     IN("1\r\n00:00:01,000 --> 00:00:02,000\r\n\0nul\x01"
        "ctl\r\n"),
     0, "1000-2000:nul ctl"},
};

static void render_segs(const gw_transcript_t *t, char *out, size_t cap)
{
    size_t o = 0;
    out[0] = '\0';
    for (size_t i = 0; i < t->nsegments && o < cap; i++)
        o += (size_t)snprintf(out + o, cap - o, "%s%lld-%lld:%s", i ? "|" : "", (long long)t->segments[i].start_ms,
                              (long long)t->segments[i].end_ms, t->segments[i].text);
}

static void test_subtitles(void)
{
    char got[1024];
    for (size_t i = 0; i < sizeof(sub_cases) / sizeof(sub_cases[0]); i++) {
        const sub_case_t *c = &sub_cases[i];
        gw_transcript_t t;
        char *buf = malloc(c->len + 1); /* exact-size copy: ASan sees reads past the end */
        memcpy(buf, c->in, c->len);
        int rc = c->parse(buf, c->len, &t);
        render_segs(&t, got, sizeof(got));
        if (rc != c->rc || strcmp(got, c->segs) != 0) {
            gw_check_failed++;
            fprintf(stderr, "subtitle case %zu: rc %d \"%s\", expected rc %d \"%s\"\n", i, rc, got, c->rc, c->segs);
        } else {
            gw_check_passed++;
        }
        gw_transcript_free(&t);
        free(buf);
    }
}

/* ---- yt-dlp -J: parse code and "id|title|duration|chapters|check code" ---- */

typedef struct st_meta_case_t {
    const char *in;
    size_t len;
    const char *code; /* parse error code, or NULL */
    const char *summary;
} meta_case_t;

static const meta_case_t meta_cases[] = {
    {IN(""), "bad_metadata", ""},
    {IN("null"), "bad_metadata", ""},
    {IN("[]"), "bad_metadata", ""},
    {IN("\"str\""), "bad_metadata", ""},
    {IN("{}"), "bad_metadata", ""},
    {IN("{\"id\":\"\"}"), "bad_metadata", ""},
    {IN("{\"id\":5}"), "bad_metadata", ""},
    {IN("{\"id\":\"abc\"} {\"id\":\"def\"}"), "bad_metadata", ""},
    {IN("{\"id\":\"abc\",\"title\":\"a\\u0000b\"}"), "bad_metadata", ""},
    {IN("{\"id\":\"abc\",\"title\":\"t\",\"duration\":"), "bad_metadata", ""},
    {IN("{\"id\":\"abc\",\"_type\":\"playlist\",\"entries\":[]}"), "invalid_url", ""},
    {IN("{\"id\":\"abc\",\"_type\":\"multi_video\"}"), "invalid_url", ""},
    {IN("{\"id\":\"abc\"}"), NULL, "abc||-1|0|ok"},
    {IN("{\"id\":\"abc\",\"duration\":-5,\"title\":null}"), NULL, "abc||-1|0|ok"},
    {IN("{\"id\":\"abc\",\"duration\":\"600\",\"title\":7}"), NULL, "abc||-1|0|ok"},
    {IN("{\"id\":\"abc\",\"duration\":1e308,\"chapters\":\"x\"}"), NULL, "abc||-1|0|ok"}, /* absurd: unknown */
    {IN("{\"id\":\"abc\",\"duration\":2678401}"), NULL, "abc||-1|0|ok"},                  /* over 31 days */
    {IN("{\"id\":\"abc\",\"duration\":43200.5}"), NULL, "abc||43200.5|0|ok"},             /* 12 h */
    {IN("{\"id\":\"abc\",\"duration\":100,\"chapters\":[{\"start_time\":50,\"title\":\"b\"},{\"start_time\":0,\"end_time\":50,"
        "\"title\":\"a\"},{\"title\":\"no start\"},{\"start_time\":-1,\"title\":\"neg\"},7,{\"start_time\":1e308}]}"),
     NULL, "abc||100|2|ok"},
    {IN("{\"id\":\"abc\",\"live_status\":\"is_live\"}"), NULL, "abc||-1|0|live_stream"},
    {IN("{\"id\":\"abc\",\"live_status\":\"is_upcoming\"}"), NULL, "abc||-1|0|live_stream"},
    {IN("{\"id\":\"abc\",\"live_status\":\"post_live\"}"), NULL, "abc||-1|0|live_stream"},
    {IN("{\"id\":\"abc\",\"live_status\":\"was_live\",\"duration\":60}"), NULL, "abc||60|0|ok"},
    {IN("{\"id\":\"abc\",\"availability\":\"needs_auth\"}"), NULL, "abc||-1|0|age_restricted"},
    {IN("{\"id\":\"abc\",\"availability\":\"subscriber_only\"}"), NULL, "abc||-1|0|members_only"},
    {IN("{\"id\":\"abc\",\"availability\":\"premium_only\"}"), NULL, "abc||-1|0|members_only"},
    {IN("{\"id\":\"abc\",\"availability\":\"private\"}"), NULL, "abc||-1|0|private_video"},
    {IN("{\"id\":\"abc\",\"availability\":{\"x\":1},\"live_status\":[1]}"), NULL, "abc||-1|0|ok"},
};

static void test_meta(void)
{
    char got[512];
    for (size_t i = 0; i < sizeof(meta_cases) / sizeof(meta_cases[0]); i++) {
        const meta_case_t *c = &meta_cases[i];
        gw_video_meta_t m;
        const char *code = NULL, *ccode = NULL, *msg = NULL;
        char *buf = malloc(c->len + 1);
        memcpy(buf, c->in, c->len);
        int rc = meta_from_text(buf, c->len, &m, &code);
        got[0] = '\0';
        if (rc == 0) {
            bool usable = gw_ytdlp_check_meta(&m, &ccode, &msg) == 0;
            snprintf(got, sizeof(got), "%s|%s|%g|%zu|%s", m.id, m.title, m.duration, m.nchapters, usable ? "ok" : ccode);
        }
        bool ok = (c->code == NULL ? rc == 0 && code == NULL : rc == -1 && code != NULL && strcmp(code, c->code) == 0) &&
                  strcmp(got, c->summary) == 0;
        if (!ok)
            fprintf(stderr, "meta case %zu: rc %d code %s \"%s\", expected %s \"%s\"\n", i, rc, code ? code : "-", got,
                    c->code ? c->code : "-", c->summary);
        ok ? gw_check_passed++ : gw_check_failed++;
        gw_video_meta_free(&m);
        free(buf);
    }
}

/* ---- Gemini generateContent envelopes ---- */

typedef struct st_gem_case_t {
    const char *in;
    size_t len;
    gw_gemini_outcome_t outcome;
    const char *text; /* joined answer text or NULL */
    int64_t prompt_tokens, candidates_tokens;
} gem_case_t;

#define PART(t) "{\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"" t "\"}]},\"finishReason\":\"STOP\"}]"

static const gem_case_t gem_cases[] = {
    {IN(""), GW_GEMINI_MALFORMED, NULL, 0, 0},
    {IN("null"), GW_GEMINI_MALFORMED, NULL, 0, 0},
    {IN("<html>502 Bad Gateway</html>"), GW_GEMINI_MALFORMED, NULL, 0, 0},
    {IN("{}"), GW_GEMINI_EMPTY, NULL, 0, 0},
    {IN("{\"candidates\":[]}"), GW_GEMINI_EMPTY, NULL, 0, 0},
    {IN("{\"candidates\":null}"), GW_GEMINI_MALFORMED, NULL, 0, 0},
    {IN("{\"candidates\":[{}]}"), GW_GEMINI_EMPTY, NULL, 0, 0},
    {IN("{\"candidates\":[{\"content\":{\"parts\":[{\"text\":5}]}}]}"), GW_GEMINI_EMPTY, NULL, 0, 0},
    {IN("{\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"{\\\"a\\\":1}\",\"thought\":true}]},\"finishReason\":\"STOP\"}]}"),
     GW_GEMINI_EMPTY, NULL, 0, 0},
    {IN(PART("not json") "}"), GW_GEMINI_MALFORMED, "not json", 0, 0},
    {IN(PART("[1,2]") "}"), GW_GEMINI_MALFORMED, "[1,2]", 0, 0},
    {IN(PART("{\\\"a\\\":1} trailing") "}"), GW_GEMINI_MALFORMED, "{\"a\":1} trailing", 0, 0},
    {IN(PART("```json\\n{\\\"a\\\":1}\\n```") "}"), GW_GEMINI_OK, "```json\n{\"a\":1}\n```", 0, 0},
    {IN("{\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"{\\\"a\\\":\"},{\"text\":\"1}\"}]},\"finishReason\":\"STOP\"}]}"),
     GW_GEMINI_OK, "{\"a\":1}", 0, 0},
    {IN("{\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"{\\\"a\\\":1\"}]},\"finishReason\":\"MAX_TOKENS\"}]}"),
     GW_GEMINI_MAX_TOKENS, "{\"a\":1", 0, 0},
    {IN("{\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"{}\"}]},\"finishReason\":\"SAFETY\"}]}"), GW_GEMINI_SAFETY, "{}", 0,
     0},
    {IN("{\"promptFeedback\":{\"blockReason\":\"OTHER\"},\"usageMetadata\":{\"promptTokenCount\":12}}"), GW_GEMINI_BLOCKED, NULL,
     12, 0},
    /* token counts: negative = absent, beyond the int column = clamped (one bad value would fail a completion batch) */
    {IN(PART("{}") ",\"usageMetadata\":{\"promptTokenCount\":-5,\"candidatesTokenCount\":99999999999}}"), GW_GEMINI_OK, "{}", 0,
     INT32_MAX},
    {IN(PART("{}") ",\"usageMetadata\":{\"promptTokenCount\":1e300,\"candidatesTokenCount\":\"7\"}}"), GW_GEMINI_OK, "{}", 0, 0},
};

static void test_gemini_replies(void)
{
    for (size_t i = 0; i < sizeof(gem_cases) / sizeof(gem_cases[0]); i++) {
        const gem_case_t *c = &gem_cases[i];
        gw_gemini_reply_t r;
        char *buf = malloc(c->len + 1);
        memcpy(buf, c->in, c->len);
        buf[c->len] = '\0';
        int rc = gw_gemini_parse_response(buf, c->len, &r);
        bool ok = r.outcome == c->outcome && (rc == 0) == (c->outcome == GW_GEMINI_OK) &&
                  (c->text == NULL ? r.text == NULL : r.text != NULL && strcmp(r.text, c->text) == 0) &&
                  r.prompt_tokens == c->prompt_tokens && r.candidates_tokens == c->candidates_tokens &&
                  (c->outcome != GW_GEMINI_OK || json_is_object(r.result));
        if (!ok)
            fprintf(stderr, "gemini case %zu: outcome %d text %s tokens %lld/%lld, expected %d\n", i, (int)r.outcome,
                    r.text ? r.text : "(null)", (long long)r.prompt_tokens, (long long)r.candidates_tokens, (int)c->outcome);
        ok ? gw_check_passed++ : gw_check_failed++;
        gw_gemini_reply_free(&r);
        free(buf);
    }
}

/* ---- Gemini HTTP errors ---- */

typedef struct st_http_case_t {
    long status;
    const char *body;
    const char *code;
    bool transient;
    uint64_t retry_after_ms;
} http_case_t;

#define RETRY(d)                                                                                                                   \
    "{\"error\":{\"code\":429,\"status\":\"RESOURCE_EXHAUSTED\",\"details\":[{\"@type\":\"type.googleapis.com/"                    \
    "google.rpc.RetryInfo\",\"retryDelay\":\"" d "\"}]}}"

static const http_case_t http_cases[] = {
    {429, "", "gemini_rate_limited", true, 0},
    {429, "<html>", "gemini_rate_limited", true, 0},
    {429, RETRY("26.5s"), "gemini_rate_limited", true, 26500},
    {429, RETRY("-5s"), "gemini_rate_limited", true, 0},
    {429, RETRY("5"), "gemini_rate_limited", true, 0},
    {429, RETRY("NaNs"), "gemini_rate_limited", true, 0},
    {429, RETRY("1e9s"), "gemini_rate_limited", true, GW_GEMINI_MAX_RETRY_AFTER_MS}, /* capped, not 31 years */
    {429, RETRY("99999999999s"), "gemini_rate_limited", true, 0},
    {429,
     "{\"error\":{\"code\":429,\"details\":[{\"@type\":\"type.googleapis.com/"
     "google.rpc.QuotaFailure\",\"violations\":[{\"quotaId\":"
     "\"GenerateRequestsPerDayPerProjectPerModel-FreeTier\"}]}]}}",
     "gemini_quota_exhausted", false, 0},
    {429, "{\"error\":{\"status\":\"RESOURCE_EXHAUSTED\",\"details\":\"not an array\"}}", "gemini_rate_limited", true, 0},
    {400,
     "{\"error\":{\"code\":400,\"details\":[{\"@type\":\"type.googleapis.com/"
     "google.rpc.ErrorInfo\",\"reason\":\"API_KEY_INVALID\"}]}}",
     "gemini_auth", false, 0},
    {503, "{\"error\":{\"code\":503,\"message\":\"overloaded\"}}", "gemini_unavailable", true, 0},
    {418, "{\"error\":7}", "gemini_http_error", false, 0},
};

static void test_gemini_http(void)
{
    for (size_t i = 0; i < sizeof(http_cases) / sizeof(http_cases[0]); i++) {
        const http_case_t *c = &http_cases[i];
        gw_gemini_error_t e;
        gw_gemini_classify_http(c->status, c->body, 0, &e);
        bool ok = !e.ok && e.error_code != NULL && strcmp(e.error_code, c->code) == 0 && e.transient == c->transient &&
                  e.retry_after_ms == c->retry_after_ms;
        if (!ok)
            fprintf(stderr, "http case %zu: %s transient %d retry %llu\n", i, e.error_code ? e.error_code : "(null)", e.transient,
                    (unsigned long long)e.retry_after_ms);
        ok ? gw_check_passed++ : gw_check_failed++;
    }
    /* an API key in Gemini's message never reaches the job's error message */
    gw_gemini_error_t e;
    gw_gemini_classify_http(400, "{\"error\":{\"message\":\"bad key=AIzaSyTHISISNOTAREALKEY000000000000 AIzaOther\"}}", 0, &e);
    CHECK(strstr(e.message, "AIza") == NULL && strstr(e.message, "THISISNOT") == NULL);
}

int main(void)
{
    test_subtitles();
    test_meta();
    test_gemini_replies();
    test_gemini_http();
    return check_report();
}
