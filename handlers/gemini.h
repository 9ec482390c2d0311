#ifndef GW_GEMINI_H
#define GW_GEMINI_H
/* Gemini protocol, without the network: builds generateContent bodies (single request or
 * map/reduce over transcript chunks), parses replies, classifies HTTP failures, and builds/parses
 * the Files API messages. The analysis it asks for is the contract of handlers/result.h (validate
 * replies with it); retry delays come from reactor/backoff.h. The transport (curl multi) lives
 * elsewhere and calls these. Nothing here logs or sees the key.
 * Implemented in two files: handlers/gemini.c (request building) and handlers/gemini_reply.c (response parsing,
 * HTTP errors, Files API messages). */
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "handlers/video.h"

/* ---- request building ------------------------------------------------------------------- */

/* Files API resumable uploads: every chunk but the last must be a multiple of this. */
#define GW_GEMINI_UPLOAD_GRANULARITY (8u * 1024u * 1024u)

typedef struct st_gw_gemini_opts_t {
    bool deep;                    /* adds visualAudit to the schema and the video part below */
    const char *file_uri;         /* Files API uri (or a public YouTube URL); NULL = no media part. Standard mode may send
                                   * an audio file (file_mime "audio/...") when there are no captions */
    const char *file_mime;        /* mime type of file_uri; NULL = "video/mp4" */
    const char *media_resolution; /* deep: "MEDIA_RESOLUTION_LOW"…; NULL = model default */
    const char *thinking_level;   /* "minimal" | "low" | "medium" | "high"; NULL = model default */
    int max_output_tokens;        /* <= 0: omitted */
    size_t part_index;            /* map step: 1-based part number; 0 = whole transcript */
    size_t part_count;            /* map step: number of parts */
    double clip_start_s;          /* clip_end_s > clip_start_s: videoMetadata {startOffset, endOffset} on the file part */
    double clip_end_s;
    const char *language; /* BCP-47 tag the analysis is written in; NULL = the transcript's language */
} gw_gemini_opts_t;

/* The prompt's version, part of the result-reuse key (handlers/reuse.c): an analysis made under another version is never
 * copied. Bump it whenever the prompts, the response schema or the result post-processing change what a job produces. */
#define GW_PROMPT_VERSION 1

/* Defaults: thinking "low", 8192 output tokens, MEDIA_RESOLUTION_LOW when deep. */
void gw_gemini_opts_init(gw_gemini_opts_t *opts, bool deep);

/* A generateContent body for segments [seg_from, seg_to) of t (t may be NULL: no transcript).
 * When opts->part_count > 1 the prompt says which part of how many this is and its time span.
 * Never sends temperature/topP/topK or thinkingBudget. New reference. */
json_t *gw_gemini_build_request(const gw_video_meta_t *meta, const gw_transcript_t *t, size_t seg_from, size_t seg_to,
                                const gw_gemini_opts_t *opts);

/* Splits t into consecutive segment ranges whose rendered size stays under max_chars, never
 * splitting a segment. bounds_out needs max_chunks + 1 entries: chunk k is
 * [bounds_out[k], bounds_out[k + 1]). Returns the number of chunks (0 for an empty transcript).
 * When max_chunks chunks cannot hold it under max_chars, the budget grows so that the result
 * still fits in max_chunks (chunks then exceed max_chars). A lone oversized segment is its own chunk. */
size_t gw_gemini_plan_chunks(const gw_transcript_t *t, size_t max_chars, size_t *bounds_out, size_t max_chunks);

/* The reduce step: merges n partial analyses (in video order) into one. No video part is sent;
 * visualAudit is merged from the partials when opts->deep. New reference. */
json_t *gw_gemini_build_merge_request(const gw_video_meta_t *meta, json_t *const *partials, size_t n, const gw_gemini_opts_t *opts);

/* URLs under base (e.g. "https://generativelanguage.googleapis.com", trailing '/' tolerated).
 * malloc'd; never contain the key (it goes in the x-goog-api-key header). */
char *gw_gemini_generate_url(const char *base, const char *model); /* {base}/v1beta/models/{m}:generateContent */
char *gw_gemini_model_url(const char *base, const char *model);    /* {base}/v1beta/models/{m} */
char *gw_gemini_upload_url(const char *base);                      /* {base}/upload/v1beta/files */
char *gw_gemini_file_url(const char *base, const char *name);      /* {base}/v1beta/{name}, name = "files/abc" */

/* ---- response parsing ------------------------------------------------------------------- */

typedef enum en_gw_gemini_outcome_t {
    GW_GEMINI_OK,                 /* candidates[0] finished with text that parses as a JSON object */
    GW_GEMINI_BLOCKED,            /* promptFeedback.blockReason, no candidates: permanent */
    GW_GEMINI_SAFETY,             /* finishReason SAFETY / IMAGE_SAFETY: permanent */
    GW_GEMINI_RECITATION,         /* finishReason RECITATION: permanent */
    GW_GEMINI_PROHIBITED_CONTENT, /* finishReason PROHIBITED_CONTENT: permanent */
    GW_GEMINI_SPII,               /* finishReason SPII: permanent */
    GW_GEMINI_BLOCKLIST,          /* finishReason BLOCKLIST: permanent */
    GW_GEMINI_MAX_TOKENS,         /* output truncated: retry once with a bigger budget or chunk */
    GW_GEMINI_EMPTY,              /* no answer text */
    GW_GEMINI_MALFORMED,          /* envelope is not Gemini's shape, or the text is not a JSON object */
} gw_gemini_outcome_t;

typedef struct st_gw_gemini_reply_t {
    gw_gemini_outcome_t outcome;
    char *text;          /* answer parts joined (thought parts skipped); NULL when none */
    json_t *result;      /* text parsed (code fences tolerated) when outcome is OK; owned */
    char *finish_reason; /* NULL when absent */
    char *block_reason;  /* promptFeedback.blockReason, NULL when absent */
    char *model_version;
    int64_t prompt_tokens, candidates_tokens, thoughts_tokens, total_tokens; /* 0 when absent */
} gw_gemini_reply_t;

/* Fills out (zeroed first). Returns 0 when out->outcome is OK, -1 otherwise; out is always
 * filled as far as possible (token counts are recorded even for blocked replies). */
int gw_gemini_parse_response(const char *body, size_t len, gw_gemini_reply_t *out);
void gw_gemini_reply_free(gw_gemini_reply_t *r); /* frees members; NULL-safe */
/* "content_blocked", "output_truncated", "gemini_empty_response", "gemini_bad_response"; NULL for OK. */
const char *gw_gemini_outcome_error_code(gw_gemini_outcome_t o);
/* True for outcomes that no retry can fix (blocked / safety family). */
bool gw_gemini_outcome_permanent(gw_gemini_outcome_t o);

/* ---- HTTP errors ------------------------------------------------------------------------ */

/* Longest retryDelay honoured: Gemini's per-minute quotas ask for seconds; a larger value is capped to this. */
#define GW_GEMINI_MAX_RETRY_AFTER_MS (5 * 60 * 1000)

typedef struct st_gw_gemini_error_t {
    bool ok;                 /* 2xx and no transport error: nothing to classify */
    bool transient;          /* worth retrying (after retry_after_ms / backoff) */
    uint64_t retry_after_ms; /* from google.rpc.RetryInfo.retryDelay, at most GW_GEMINI_MAX_RETRY_AFTER_MS; 0 when not given */
    long status;             /* HTTP status, 0 when none arrived */
    char api_status[40];     /* error.status, e.g. "RESOURCE_EXHAUSTED"; "" when absent */
    const char *error_code;  /* static: "gemini_rate_limited", "gemini_quota_exhausted", "gemini_auth", … */
    char message[320];       /* user-actionable; secrets (key=…, AIza…) scrubbed */
} gw_gemini_error_t;

/* curlcode is the CURLcode of the transfer (0 = CURLE_OK); body may be NULL. */
void gw_gemini_classify_http(long status, const char *body, int curlcode, gw_gemini_error_t *out);

/* Parses a protobuf Duration string ("26.5s", "1s", "0.5s") into ms (rounded up); -1 if invalid. */
int64_t gw_gemini_parse_duration_ms(const char *s);

/* ---- Files API -------------------------------------------------------------------------- */

#define GW_GEMINI_HEADER_MAX 160

typedef enum en_gw_gemini_file_state_t {
    GW_GEMINI_FILE_UNKNOWN,    /* missing or unrecognized state */
    GW_GEMINI_FILE_PROCESSING, /* uploaded, not yet usable: poll again */
    GW_GEMINI_FILE_ACTIVE,     /* usable as fileData */
    GW_GEMINI_FILE_FAILED,     /* processing failed: give up on this file */
} gw_gemini_file_state_t;

typedef struct st_gw_gemini_file_t {
    char *name;      /* "files/abc" */
    char *uri;       /* for fileData.fileUri */
    char *mime_type; /* NULL when absent */
    gw_gemini_file_state_t state;
    int64_t size_bytes;  /* -1 when absent */
    char *error_message; /* error.message of a FAILED file, NULL otherwise */
} gw_gemini_file_t;

/* Header lines ("Name: value") for the resumable start request; returns how many were written
 * (5, including Content-Type: application/json) or 0 when max is too small. */
size_t gw_gemini_upload_start_headers(uint64_t size, const char *mime_type, char out[][GW_GEMINI_HEADER_MAX], size_t max);
/* The start request body {"file":{"display_name":…}}; malloc'd. */
char *gw_gemini_upload_start_body(const char *display_name);
/* Header lines for one upload request starting at offset; final adds ", finalize". Returns 2 or 0. */
size_t gw_gemini_upload_chunk_headers(uint64_t offset, bool final, char out[][GW_GEMINI_HEADER_MAX], size_t max);
/* Parses an upload response {"file":{…}} or a files.get response (unwrapped). 0 or -1 (no name). */
int gw_gemini_file_parse(const char *body, size_t len, gw_gemini_file_t *out);
void gw_gemini_file_free(gw_gemini_file_t *f); /* frees members; NULL-safe */
gw_gemini_file_state_t gw_gemini_file_state_parse(const char *s);

#endif
