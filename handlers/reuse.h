#ifndef GW_REUSE_H
#define GW_REUSE_H
/* Result reuse (docs/reuse-and-language.md): before a claimed job fetches anything, one database call
 * (glint_reuse_job, sql/016) keys it by what makes two analyses interchangeable — the video's identity
 * (gw_url_identity), mode, model, prompt version (GW_PROMPT_VERSION) and output language — and either completes it
 * from a fresh analysis with that key (no yt-dlp, no Gemini), parks it PENDING while another live job analyses that key,
 * or lets it run. The same call answers the job's output language. RESULT_REUSE_TTL_HOURS=0 turns the reuse off. */
#include "handlers/job.h"

/* The key's part the worker knows: "<identity>|<mode>|<model>|p<prompt version>"; the database appends the language.
 * NULL when the job is not keyed (a local file: its content may change under one path). malloc'd. */
char *gw_reuse_key_base(const gw_run_t *run);

/* Asks the database; then next(run) when the job is to run (run->language set), or settles the run itself. */
void gw_reuse_begin(gw_run_t *run, void (*next)(gw_run_t *run));

#endif
