/* The error-code catalogue (handlers/errors.h). One row per code; the order is the order of docs/errors.md. */
#include "handlers/errors.h"
#include <stdio.h>
#include <string.h>

#define JOB GW_ERROR_JOB
#define API GW_ERROR_API
#define BOTH GW_ERROR_BOTH
#define TRANSIENT true
#define PERMANENT false
#define OPERATOR true
#define USER false

static const gw_error_t catalogue[] = {
    /* the video link or file the user gave */
    {"invalid_url", JOB, PERMANENT, USER, "This link does not point to a single video this worker accepts."},
    {"local_media_disabled", JOB, PERMANENT, USER, "This worker does not analyse local files."},
    {"invalid_path", JOB, PERMANENT, USER, "This is not a local file path the worker accepts."},
    {"path_not_allowed", JOB, PERMANENT, USER, "This file is outside the worker's media directory."},
    {"file_not_found", JOB, PERMANENT, USER, "There is no such file in the worker's media directory."},
    {"not_a_file", JOB, PERMANENT, USER, "This path names a directory or a special file, not a media file."},
    {"bad_media", JOB, PERMANENT, USER, "The file holds no audio, video or subtitle stream."},
    {"unreadable_media", JOB, PERMANENT, USER, "The file is not a video or audio file the worker can read."},
    {"private_video", JOB, PERMANENT, USER, "This video is private."},
    {"members_only", JOB, PERMANENT, USER, "This video is only available to channel members."},
    {"age_restricted", JOB, PERMANENT, USER, "This video is age-restricted and cannot be analysed without a signed-in account."},
    {"live_stream", JOB, PERMANENT, USER, "This is a live stream or premiere that has not finished."},
    {"format_unavailable", JOB, PERMANENT, USER, "YouTube offers no downloadable format for this video."},
    {"video_unavailable", JOB, PERMANENT, USER, "This video is unavailable (removed, blocked, or never existed)."},
    {"video_too_large", JOB, PERMANENT, USER, "This video is larger than this worker accepts."},
    {"no_transcript", JOB, PERMANENT, USER, "This video has no captions or subtitles to analyse, and its audio could not be used."},
    {"insufficient_credits", BOTH, PERMANENT, USER,
     "The credit balance does not cover this job (a deep video longer than paid for, or a second charge)."},
    {"content_blocked", JOB, PERMANENT, USER, "The model declined to analyse this video's content."},
    {"output_truncated", JOB, PERMANENT, USER, "The analysis was too long for the model's output limit."},
    {"gemini_request_too_large", JOB, PERMANENT, USER, "The video is too long for one request to the analysis service."},
    {"cancelled", JOB, PERMANENT, USER, "The job was cancelled on request."},
    /* fetching the video: YouTube, yt-dlp, the media tools */
    {"bot_check", JOB, TRANSIENT, OPERATOR, "YouTube asked the worker to prove it is not a bot, on every attempt."},
    {"rate_limited", JOB, TRANSIENT, OPERATOR, "YouTube kept rate-limiting the worker."},
    {"network_error", JOB, TRANSIENT, OPERATOR, "The worker could not reach YouTube (network error)."},
    {"ytdlp_failed", JOB, TRANSIENT, OPERATOR, "Fetching the video's details failed for a reason yt-dlp did not say."},
    {"ytdlp_timeout", JOB, TRANSIENT, OPERATOR, "Fetching the video's details took too long."},
    {"bad_metadata", JOB, TRANSIENT, OPERATOR, "yt-dlp returned metadata the worker could not read."},
    {"subtitles_unavailable", JOB, TRANSIENT, OPERATOR, "The video's captions exist but could not be fetched."},
    {"download_timeout", JOB, TRANSIENT, OPERATOR, "Downloading the video took too long."},
    {"probe_timeout", JOB, TRANSIENT, OPERATOR, "Reading the file's details took too long."},
    {"tool_unavailable", JOB, TRANSIENT, OPERATOR, "A media tool (yt-dlp, ffmpeg or ffprobe) could not be started on the worker."},
    /* the worker itself */
    {"scratch_unavailable", JOB, TRANSIENT, OPERATOR, "The worker had no usable scratch space for this job."},
    {"media_dir_unavailable", JOB, TRANSIENT, OPERATOR, "The worker's media directory was not available."},
    {"job_lost", JOB, PERMANENT, OPERATOR, "The job was no longer held by this worker."},
    {"worker_lost", JOB, TRANSIENT, OPERATOR, "The worker processing this job stopped responding."},
    {"database_unavailable", BOTH, TRANSIENT, OPERATOR, "The worker could not reach its database."},
    /* the analysis service (Gemini and its Files API) */
    {"gemini_not_configured", JOB, TRANSIENT, OPERATOR, "The analysis service is not configured on this worker."},
    {"gemini_auth", JOB, PERMANENT, OPERATOR, "The analysis service refused the worker's API key."},
    {"gemini_quota_exhausted", JOB, PERMANENT, OPERATOR, "The analysis service's daily quota is used up."},
    {"gemini_rate_limited", JOB, TRANSIENT, OPERATOR, "The analysis service kept rate-limiting the worker."},
    {"gemini_model_not_found", JOB, PERMANENT, OPERATOR, "The configured model does not exist at the analysis service."},
    {"gemini_bad_request", JOB, PERMANENT, OPERATOR, "The analysis service rejected the worker's request."},
    {"gemini_http_error", JOB, PERMANENT, OPERATOR, "The analysis service gave an unexpected answer."},
    {"gemini_transport_error", JOB, PERMANENT, OPERATOR, "The request to the analysis service failed."},
    {"gemini_timeout", JOB, TRANSIENT, OPERATOR, "The analysis service did not answer in time."},
    {"gemini_unreachable", JOB, TRANSIENT, OPERATOR, "The worker could not reach the analysis service."},
    {"gemini_unavailable", JOB, TRANSIENT, OPERATOR, "The analysis service was unavailable."},
    {"gemini_empty_response", JOB, TRANSIENT, OPERATOR, "The model returned an empty answer."},
    {"gemini_bad_response", JOB, TRANSIENT, OPERATOR, "The model returned an answer the worker could not read."},
    {"bad_model_output", JOB, TRANSIENT, OPERATOR, "The model's answer was not a usable analysis."},
    {"upload_failed", JOB, TRANSIENT, OPERATOR, "Sending the video to the analysis service failed."},
    {"upload_rejected", JOB, PERMANENT, OPERATOR, "The analysis service refused the video upload."},
    {"file_processing_failed", JOB, PERMANENT, USER, "The analysis service could not process this video."},
    {"file_processing_timeout", JOB, TRANSIENT, OPERATOR, "The analysis service took too long to prepare the video."},
    {"file_unavailable", JOB, TRANSIENT, OPERATOR, "The uploaded video disappeared from the analysis service."},
    /* the HTTP API */
    {"unauthorized", API, PERMANENT, USER, "The API key is missing or wrong."},
    {"auth_not_configured", API, PERMANENT, OPERATOR, "WORKER_API_KEY is not set on this worker."},
    {"invalid_id", API, PERMANENT, USER, "The job id is not a UUID."},
    {"invalid_status", API, PERMANENT, USER, "The status filter is not a job status."},
    {"invalid_limit", API, PERMANENT, USER, "The page size is not an integer from 1 to 200."},
    {"invalid_cursor", API, PERMANENT, USER, "The cursor was not produced by this endpoint."},
    {"not_found", API, PERMANENT, USER, "No such job or route."},
    {"not_cancellable", API, PERMANENT, USER, "The job has already finished."},
    {"not_retryable", API, PERMANENT, USER, "Only a FAILED or CANCELLED job can run again."},
    {"bad_request", API, PERMANENT, USER, "The request is malformed."},
    {"method_not_allowed", API, PERMANENT, USER, "The route does not accept this method."},
    {"request_timeout", API, TRANSIENT, USER, "The request was not received in time."},
    {"payload_too_large", API, PERMANENT, USER, "The request body is too large."},
    {"expectation_failed", API, PERMANENT, USER, "The Expect header is not supported."},
    {"unavailable", API, TRANSIENT, OPERATOR, "The worker cannot serve this right now."},
    {"internal_error", BOTH, TRANSIENT, OPERATOR, "The worker failed unexpectedly."},
};

const gw_error_t *gw_errors_all(size_t *n)
{
    *n = sizeof(catalogue) / sizeof(catalogue[0]);
    return catalogue;
}

const gw_error_t *gw_error_find(const char *code)
{
    for (size_t i = 0; code != NULL && i < sizeof(catalogue) / sizeof(catalogue[0]); i++)
        if (strcmp(catalogue[i].code, code) == 0)
            return &catalogue[i];
    return NULL;
}

const char *gw_error_stored_message(const char *code, const char *msg, bool final, bool transient, int attempts, char *buf,
                                    size_t bufsz)
{
    const gw_error_t *e = gw_error_find(code);
    if (!final || !transient || e == NULL)
        return msg;
    snprintf(buf, bufsz, "%s Gave up after %d attempt%s.", e->message, attempts, attempts == 1 ? "" : "s");
    return buf;
}

static const char *scope_name(gw_error_scope_t s)
{
    return s == GW_ERROR_JOB ? "job" : s == GW_ERROR_API ? "API" : "job, API";
}

void gw_errors_print_markdown(FILE *out)
{
    fputs("# Error codes\n\n"
          "Every code the worker stores on a job (`error_code`, `error_message`; `GET /worker/jobs/{id}` shows them as\n"
          "`error.code` and `error.message`) or answers in an HTTP error body (`{\"error\":{\"code\",\"message\"}}`).\n"
          "Generated by `glint-worker --errors-markdown` from `handlers/errors.c`; a test keeps this file equal to it.\n\n"
          "- **transient**: a job is retried with backoff while attempts remain; when the last attempt fails too, the\n"
          "  stored message is the one below followed by the number of attempts made. A **permanent** failure ends the job\n"
          "  at once (credits refunded) with the specific message of what happened.\n"
          "- **operator**: the trouble is the worker's or a dependency's (configuration, capacity, network, the analysis\n"
          "  service), worth an alert; Sentry events carry the tag `fault=operator`. **user**: the input was the problem.\n\n"
          "| code | where | transient | whose | message |\n"
          "|---|---|---|---|---|\n",
          out);
    size_t n;
    const gw_error_t *all = gw_errors_all(&n);
    for (size_t i = 0; i < n; i++)
        fprintf(out, "| `%s` | %s | %s | %s | %s |\n", all[i].code, scope_name(all[i].scope),
                all[i].transient ? "transient" : "permanent", all[i].operator_trouble ? "operator" : "user", all[i].message);
}
