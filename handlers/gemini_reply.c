/* The reply half of handlers/gemini.h: generateContent responses, HTTP failure classification and the Files API
 * messages. handlers/gemini.c builds the requests. */
#include "handlers/gemini.h"
#include "reactor/text.h"
#include <curl/curl.h>
#include <ctype.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- small helpers ------------------------------------------------------------------------ */

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && memcmp(s + n - m, suffix, m) == 0;
}

static const char *jstr(json_t *obj, const char *key)
{
    return json_string_value(json_object_get(obj, key));
}

/* ---- response parsing --------------------------------------------------------------------- */

static char *dup_or_null(const char *s)
{
    return s != NULL ? gw_xstrdup(s) : NULL;
}

/* A token count: negative means absent (0); clamped to INT32_MAX because it is stored in an int column, and one
 * out-of-range value would fail the whole completion batch it travels in. */
static int64_t jint(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    json_int_t n = json_is_integer(v) ? json_integer_value(v) : 0;
    return n < 0 ? 0 : n > INT32_MAX ? INT32_MAX : (int64_t)n;
}

/* Joins the non-thought text parts; NULL when there are none. Sets *bad on a malformed shape. */
static char *collect_text(json_t *cand, bool *bad)
{
    json_t *content = json_object_get(cand, "content"), *parts = json_object_get(content, "parts"), *part;
    size_t i;
    if (content != NULL && !json_is_object(content))
        *bad = true;
    if (parts == NULL)
        return NULL;
    if (!json_is_array(parts)) {
        *bad = true;
        return NULL;
    }
    gw_buf_t b = {0};
    json_array_foreach(parts, i, part)
    {
        const char *text = jstr(part, "text");
        if (text != NULL && !json_is_true(json_object_get(part, "thought")))
            gw_buf_puts(&b, text);
    }
    return b.data;
}

/* Parses the answer as a JSON object, tolerating surrounding blanks and a ``` fence. */
static json_t *parse_answer(const char *text)
{
    const char *s = text, *e = text + strlen(text);
    while (s < e && isspace((unsigned char)*s))
        s++;
    while (e > s && isspace((unsigned char)e[-1]))
        e--;
    if (e - s >= 6 && strncmp(s, "```", 3) == 0 && strncmp(e - 3, "```", 3) == 0) {
        const char *nl = memchr(s, '\n', (size_t)(e - s));
        if (nl == NULL)
            return NULL;
        s = nl + 1;
        e -= 3;
    }
    json_t *j = json_loadb(s, (size_t)(e - s), 0, NULL);
    if (j != NULL && !json_is_object(j)) {
        json_decref(j);
        j = NULL;
    }
    return j;
}

static gw_gemini_outcome_t finish_outcome(const char *fr)
{
    static const struct {
        const char *name;
        gw_gemini_outcome_t outcome;
    } map[] = {{"SAFETY", GW_GEMINI_SAFETY},
               {"IMAGE_SAFETY", GW_GEMINI_SAFETY},
               {"RECITATION", GW_GEMINI_RECITATION},
               {"PROHIBITED_CONTENT", GW_GEMINI_PROHIBITED_CONTENT},
               {"SPII", GW_GEMINI_SPII},
               {"BLOCKLIST", GW_GEMINI_BLOCKLIST},
               {"MAX_TOKENS", GW_GEMINI_MAX_TOKENS}};
    for (size_t i = 0; fr != NULL && i < sizeof(map) / sizeof(map[0]); i++)
        if (strcmp(fr, map[i].name) == 0)
            return map[i].outcome;
    return GW_GEMINI_OK;
}

static gw_gemini_outcome_t classify_candidates(json_t *cands, gw_gemini_reply_t *out)
{
    if (cands != NULL && !json_is_array(cands))
        return GW_GEMINI_MALFORMED;
    if (json_array_size(cands) == 0)
        return out->block_reason != NULL ? GW_GEMINI_BLOCKED : GW_GEMINI_EMPTY;
    json_t *cand = json_array_get(cands, 0);
    if (!json_is_object(cand))
        return GW_GEMINI_MALFORMED;
    bool bad = false;
    out->finish_reason = dup_or_null(jstr(cand, "finishReason"));
    out->text = collect_text(cand, &bad);
    gw_gemini_outcome_t o = finish_outcome(out->finish_reason);
    if (o != GW_GEMINI_OK)
        return o;
    if (bad)
        return GW_GEMINI_MALFORMED;
    if (out->text == NULL || out->text[strspn(out->text, " \t\r\n")] == '\0')
        return out->block_reason != NULL ? GW_GEMINI_BLOCKED : GW_GEMINI_EMPTY;
    out->result = parse_answer(out->text);
    return out->result != NULL ? GW_GEMINI_OK : GW_GEMINI_MALFORMED;
}

int gw_gemini_parse_response(const char *body, size_t len, gw_gemini_reply_t *out)
{
    memset(out, 0, sizeof(*out));
    json_t *root = body != NULL ? json_loadb(body, len, 0, NULL) : NULL;
    /* An error envelope is not an answer (classify it with gw_gemini_classify_http instead). */
    if (!json_is_object(root) || json_object_get(root, "error") != NULL) {
        out->outcome = GW_GEMINI_MALFORMED;
        json_decref(root);
        return -1;
    }
    json_t *usage = json_object_get(root, "usageMetadata");
    out->prompt_tokens = jint(usage, "promptTokenCount");
    out->candidates_tokens = jint(usage, "candidatesTokenCount");
    out->thoughts_tokens = jint(usage, "thoughtsTokenCount");
    out->total_tokens = jint(usage, "totalTokenCount");
    out->model_version = dup_or_null(jstr(root, "modelVersion"));
    out->block_reason = dup_or_null(jstr(json_object_get(root, "promptFeedback"), "blockReason"));
    out->outcome = classify_candidates(json_object_get(root, "candidates"), out);
    json_decref(root);
    return out->outcome == GW_GEMINI_OK ? 0 : -1;
}

void gw_gemini_reply_free(gw_gemini_reply_t *r)
{
    if (r == NULL)
        return;
    free(r->text);
    json_decref(r->result);
    free(r->finish_reason);
    free(r->block_reason);
    free(r->model_version);
    memset(r, 0, sizeof(*r));
}

bool gw_gemini_outcome_permanent(gw_gemini_outcome_t o)
{
    return o >= GW_GEMINI_BLOCKED && o <= GW_GEMINI_BLOCKLIST;
}

const char *gw_gemini_outcome_error_code(gw_gemini_outcome_t o)
{
    if (o == GW_GEMINI_OK)
        return NULL;
    if (gw_gemini_outcome_permanent(o))
        return "content_blocked";
    switch (o) {
    case GW_GEMINI_MAX_TOKENS:
        return "output_truncated";
    case GW_GEMINI_EMPTY:
        return "gemini_empty_response";
    default:
        return "gemini_bad_response";
    }
}

/* ---- HTTP classification ------------------------------------------------------------------ */

int64_t gw_gemini_parse_duration_ms(const char *s)
{
    if (s == NULL || !isdigit((unsigned char)*s))
        return -1;
    char *end;
    double v = strtod(s, &end);
    if (end == s || strcmp(end, "s") != 0 || !(v >= 0) || v > 1e9)
        return -1;
    return (int64_t)ceil(v * 1000.0 - 1e-6);
}

/* Copies an API message, replacing anything that looks like a credential and control chars. */
static void scrub_copy(char *dst, size_t dstlen, const char *src)
{
    size_t o = 0;
    while (*src != '\0' && o + 1 < dstlen) {
        bool keyparam = strncmp(src, "key=", 4) == 0, aiza = strncmp(src, "AIza", 4) == 0;
        if (keyparam || aiza) {
            const char *tag = keyparam ? "key=[REDACTED]" : "[REDACTED]";
            src += keyparam ? 4 : 0;
            while (*src != '\0' && (isalnum((unsigned char)*src) || *src == '-' || *src == '_' || *src == '.'))
                src++;
            for (; *tag != '\0' && o + 1 < dstlen; tag++)
                dst[o++] = *tag;
            continue;
        }
        dst[o++] = (unsigned char)*src < 0x20 ? ' ' : *src;
        src++;
    }
    dst[o] = '\0';
}

static void set_error(gw_gemini_error_t *out, bool transient, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void set_error(gw_gemini_error_t *out, bool transient, const char *code, const char *fmt, ...)
{
    char raw[sizeof(out->message)];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(raw, sizeof(raw), fmt, ap);
    va_end(ap);
    out->transient = transient;
    out->error_code = code;
    scrub_copy(out->message, sizeof(out->message), raw);
    gw_utf8_sanitize(out->message); /* truncation may have cut a multibyte character; callers put this in JSON */
}

static void classify_curl(int curlcode, gw_gemini_error_t *out)
{
    const char *what = curl_easy_strerror((CURLcode)curlcode);
    switch (curlcode) {
    case CURLE_OPERATION_TIMEDOUT:
        set_error(out, true, "gemini_timeout", "Gemini did not answer in time (%s)", what);
        break;
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_WEIRD_SERVER_REPLY:
        set_error(out, true, "gemini_unreachable", "Cannot reach Gemini (curl error %d: %s)", curlcode, what);
        break;
    case CURLE_ABORTED_BY_CALLBACK:
        set_error(out, false, "cancelled", "Gemini request aborted");
        break;
    default:
        set_error(out, false, "gemini_transport_error", "Gemini request failed (curl error %d: %s)", curlcode, what);
        break;
    }
}

/* What error.details says: RetryInfo delay, a per-day QuotaFailure, an invalid-key ErrorInfo. */
typedef struct st_gw_gemini_details_t {
    int64_t retry_ms;
    bool per_day;
    bool bad_key;
} gw_gemini_details_t;

static bool mentions_per_day(const char *s)
{
    return s != NULL && (gw_ascii_istrstr(s, "PerDay") != NULL || gw_ascii_istrstr(s, "per day") != NULL ||
                         gw_ascii_istrstr(s, "per_day") != NULL);
}

static void scan_details(json_t *details, gw_gemini_details_t *d)
{
    size_t i, j;
    json_t *det, *v;
    d->retry_ms = -1;
    json_array_foreach(details, i, det)
    {
        const char *type = jstr(det, "@type");
        if (type == NULL)
            continue;
        if (ends_with(type, "google.rpc.RetryInfo")) {
            d->retry_ms = gw_gemini_parse_duration_ms(jstr(det, "retryDelay"));
        } else if (ends_with(type, "google.rpc.QuotaFailure")) {
            json_array_foreach(json_object_get(det, "violations"), j, v)
            {
                if (mentions_per_day(jstr(v, "quotaId")) || mentions_per_day(jstr(v, "quotaMetric")) ||
                    mentions_per_day(jstr(v, "description")))
                    d->per_day = true;
            }
        } else if (ends_with(type, "google.rpc.ErrorInfo")) {
            const char *reason = jstr(det, "reason");
            if (reason != NULL && (strcmp(reason, "API_KEY_INVALID") == 0 || strcmp(reason, "API_KEY_EXPIRED") == 0))
                d->bad_key = true;
        }
    }
}

static void classify_status(long status, const char *api_msg, const gw_gemini_details_t *d, gw_gemini_error_t *out)
{
    char http[64]; /* "HTTP 403 PERMISSION_DENIED" */
    snprintf(http, sizeof(http), "HTTP %ld%s%s", status, out->api_status[0] ? " " : "", out->api_status);
    if (d->bad_key || status == 401 || status == 403) {
        set_error(out, false, "gemini_auth",
                  "Gemini rejected the API key (%s): check GEMINI_API_KEY and that its project may use the Gemini API", http);
    } else if (status == 429 && d->per_day) {
        set_error(out, false, "gemini_quota_exhausted",
                  "Gemini daily quota exhausted (%s): wait for the daily reset or raise the project's quota/billing tier", http);
    } else if (status == 429) {
        set_error(out, true, "gemini_rate_limited", "Gemini rate limit reached (%s): lower MAX_CONCURRENT_JOBS or raise the quota",
                  http);
    } else if (status == 404) {
        set_error(out, false, "gemini_model_not_found",
                  "Gemini model or resource not found (%s): check GEMINI_FLASH_MODEL / GEMINI_PRO_MODEL (%s)", http, api_msg);
    } else if (status == 408 || status == 504) {
        set_error(out, true, "gemini_timeout", "Gemini timed out (%s)", http);
    } else if (status == 500 || status == 502 || status == 503) {
        set_error(out, true, "gemini_unavailable", "Gemini is unavailable (%s): %s", http, api_msg);
    } else if (status == 413) {
        set_error(out, false, "gemini_request_too_large", "Request too large for Gemini (%s): %s", http, api_msg);
    } else if (status == 400) {
        set_error(out, false, "gemini_bad_request", "Gemini rejected the request (%s): %s", http, api_msg);
    } else {
        set_error(out, false, "gemini_http_error", "Unexpected answer from Gemini (%s): %s", http, api_msg);
    }
}

void gw_gemini_classify_http(long status, const char *body, int curlcode, gw_gemini_error_t *out)
{
    memset(out, 0, sizeof(*out));
    out->status = status;
    if (curlcode != 0) {
        classify_curl(curlcode, out);
        return;
    }
    if (status >= 200 && status < 300) {
        out->ok = true;
        return;
    }
    json_t *root = body != NULL ? json_loads(body, 0, NULL) : NULL, *err = json_object_get(root, "error");
    gw_gemini_details_t d = {-1, false, false};
    scan_details(json_object_get(err, "details"), &d);
    const char *api_status = jstr(err, "status"), *api_msg = jstr(err, "message");
    snprintf(out->api_status, sizeof(out->api_status), "%s", api_status ? api_status : "");
    char msg[200];
    snprintf(msg, sizeof(msg), "%s", api_msg ? api_msg : "no details");
    classify_status(status, msg, &d, out);
    if (d.retry_ms > 0 && out->transient) /* a hostile "1e9s" must not park a job for 31 years */
        out->retry_after_ms =
            (uint64_t)d.retry_ms < GW_GEMINI_MAX_RETRY_AFTER_MS ? (uint64_t)d.retry_ms : GW_GEMINI_MAX_RETRY_AFTER_MS;
    json_decref(root);
}

/* ---- Files API ---------------------------------------------------------------------------- */

/* A header value must not smuggle CR/LF or other controls into the request. */
static const char *safe_header_value(const char *v, const char *fallback)
{
    if (v == NULL || v[0] == '\0' || strlen(v) > 100)
        return fallback;
    for (const char *p = v; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            return fallback;
    return v;
}

size_t gw_gemini_upload_start_headers(uint64_t size, const char *mime_type, char out[][GW_GEMINI_HEADER_MAX], size_t max)
{
    if (max < 5)
        return 0;
    snprintf(out[0], GW_GEMINI_HEADER_MAX, "X-Goog-Upload-Protocol: resumable");
    snprintf(out[1], GW_GEMINI_HEADER_MAX, "X-Goog-Upload-Command: start");
    snprintf(out[2], GW_GEMINI_HEADER_MAX, "X-Goog-Upload-Header-Content-Length: %" PRIu64, size);
    snprintf(out[3], GW_GEMINI_HEADER_MAX, "X-Goog-Upload-Header-Content-Type: %s",
             safe_header_value(mime_type, "application/octet-stream"));
    snprintf(out[4], GW_GEMINI_HEADER_MAX, "Content-Type: application/json");
    return 5;
}

char *gw_gemini_upload_start_body(const char *display_name)
{
    char *name = gw_xstrdup(display_name ? display_name : "video");
    gw_utf8_sanitize(name);
    json_t *j = gw_must(json_pack("{s:{s:s}}", "file", "display_name", name));
    free(name);
    char *s = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    if (s == NULL)
        abort();
    return s;
}

size_t gw_gemini_upload_chunk_headers(uint64_t offset, bool final, char out[][GW_GEMINI_HEADER_MAX], size_t max)
{
    if (max < 2)
        return 0;
    snprintf(out[0], GW_GEMINI_HEADER_MAX, "X-Goog-Upload-Command: %s", final ? "upload, finalize" : "upload");
    snprintf(out[1], GW_GEMINI_HEADER_MAX, "X-Goog-Upload-Offset: %" PRIu64, offset);
    return 2;
}

gw_gemini_file_state_t gw_gemini_file_state_parse(const char *s)
{
    if (s == NULL)
        return GW_GEMINI_FILE_UNKNOWN;
    if (strcmp(s, "PROCESSING") == 0)
        return GW_GEMINI_FILE_PROCESSING;
    if (strcmp(s, "ACTIVE") == 0)
        return GW_GEMINI_FILE_ACTIVE;
    if (strcmp(s, "FAILED") == 0)
        return GW_GEMINI_FILE_FAILED;
    return GW_GEMINI_FILE_UNKNOWN;
}

int gw_gemini_file_parse(const char *body, size_t len, gw_gemini_file_t *out)
{
    memset(out, 0, sizeof(*out));
    out->size_bytes = -1;
    json_t *root = body != NULL ? json_loadb(body, len, 0, NULL) : NULL;
    json_t *f = json_is_object(json_object_get(root, "file")) ? json_object_get(root, "file") : root;
    int rc = -1;
    if (json_is_object(f) && jstr(f, "name") != NULL) {
        out->name = gw_xstrdup(jstr(f, "name"));
        out->uri = dup_or_null(jstr(f, "uri"));
        out->mime_type = dup_or_null(jstr(f, "mimeType"));
        out->state = gw_gemini_file_state_parse(jstr(f, "state"));
        json_t *sz = json_object_get(f, "sizeBytes"); /* int64 fields arrive as JSON strings */
        if (json_is_string(sz))
            out->size_bytes = strtoll(json_string_value(sz), NULL, 10);
        else if (json_is_integer(sz))
            out->size_bytes = (int64_t)json_integer_value(sz);
        out->error_message = dup_or_null(jstr(json_object_get(f, "error"), "message"));
        rc = 0;
    }
    json_decref(root);
    return rc;
}

void gw_gemini_file_free(gw_gemini_file_t *f)
{
    if (f == NULL)
        return;
    free(f->name);
    free(f->uri);
    free(f->mime_type);
    free(f->error_message);
    memset(f, 0, sizeof(*f));
}
