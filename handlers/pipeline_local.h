#ifndef GW_PIPELINE_LOCAL_H
#define GW_PIPELINE_LOCAL_H
/* Jobs whose video_url names a local file (handlers/localmedia.h), and the local analyzer as a pipeline step.
 * Steps, each a callback on the loop: intake (LOCAL_MEDIA_DIR guard) -> ffprobe -> transcript (sidecar, else the
 * embedded subtitle stream extracted by ffmpeg) -> deep mode with the local analyzer: scene detection (ffmpeg) ->
 * analysis. With ANALYZER=local (or auto without a key) the job ends here (gw_job_complete / gw_job_fail); otherwise
 * the prepared metadata and transcript are handed to the main pipeline's analyze stage (Gemini).
 * Exactly one outcome per job; the scratch directory is removed before it is reported; abort kills the subprocess.
 *
 * Hooks in handlers/pipeline.c: start() calls gw_pipeline_local_start first for local URLs, abort_job() calls
 * gw_pipeline_local_abort first, and its analyze stage calls gw_pipeline_local_analyze when the analyzer is local. */
#include "handlers/app.h"
#include "handlers/video.h"
#include <jansson.h>
#include <stdbool.h>

/* Called when a local file is prepared and ANALYZER selects Gemini: the callee takes over the job (it reports the
 * outcome and handles aborts from now on) and takes ownership of *meta and *tr (moved out; the caller's copies are
 * zeroed) and of timings (the stages so far, a JSON object). media_path (the resolved file, valid during the call)
 * is what deep mode uploads. tr may hold no segments in deep mode (Gemini watches the video). */
typedef void (*gw_local_handoff_cb)(gw_job_t *job, gw_video_meta_t *meta, gw_transcript_t *tr, json_t *timings,
                                    const char *media_path, void *ctx);

/* Takes the job when its video_url is local (gw_localmedia_is_local) and LOCAL_MEDIA_DIR is set, and returns true;
 * false leaves it to the caller (whose URL check then refuses a local URL as "invalid_url", as before local files).
 * handoff may be NULL: then a Gemini-analyzed local job fails with "analyzer_unavailable". */
bool gw_pipeline_local_start(gw_app_t *app, gw_job_t *job, gw_local_handoff_cb handoff, void *ctx);

/* Aborts the job if this module holds it (kills the running subprocess; gw_job_aborted follows) and returns true;
 * false when the job is not ours. */
bool gw_pipeline_local_abort(gw_job_t *job);

/* True when the configuration selects the local analyzer (ANALYZER=local, or auto without GEMINI_API_KEY). */
bool gw_pipeline_local_selected(const gw_config_t *cfg);

/* The local analyzer as the analyze stage: builds and validates the analysis (synchronously; milliseconds even for
 * hours of transcript). Returns a new reference, or NULL with a permanent error code and message. */
json_t *gw_pipeline_local_analyze(const gw_video_meta_t *meta, const gw_transcript_t *tr, bool deep, const double *scenes,
                                  size_t nscenes, const char **error_code, const char **error_message);

#endif
