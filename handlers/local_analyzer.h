#ifndef GW_LOCAL_ANALYZER_H
#define GW_LOCAL_ANALYZER_H
/* Provider "local": a deterministic extractive analyzer that fills the analysis output format (DESIGN §3) from the
 * transcript alone, without a network or a model. Every sentence it prints was spoken in the video; nothing is
 * paraphrased or invented.
 *   sentences   transcript segments joined and split at sentence ends (long unpunctuated runs are cut at ~30 words)
 *   summary     the most central sentences (TextRank over TF-IDF cosine similarity), in spoken order
 *   takeaways   high-centrality sentences chosen with an MMR redundancy filter
 *   timeline    chapters when the video has them, else topic shifts found by lexical cohesion (TextTiling-style
 *               block comparison); timestamps from the segments, monotonic, within the duration
 *   keywords    term statistics (frequency x spread) over words outside a stopword list, plus repeated two-word phrases
 *   visualAudit deep mode: ffmpeg scene-change timestamps (type GW_RESULT_TYPE_SCENE_CHANGE, "Scene change")
 * Pure functions: nothing here spawns a process. */
#include "handlers/video.h"
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

/* The model name stored with results, so nobody mistakes them for an LLM's work. */
#define GW_LOCAL_MODEL "local-extractive"
/* ffmpeg's scene score above which a frame counts as a visual change. */
#define GW_LOCAL_SCENE_THRESHOLD "0.3"

/* ANALYZER (auto|gemini|local) resolved against the key: "auto" means local only when gemini_api_key is NULL or "". */
bool gw_analyzer_is_local(const char *analyzer, const char *gemini_api_key);

typedef struct st_gw_local_input_t {
    const gw_video_meta_t *meta; /* title, duration (< 0 unknown), chapters */
    const gw_transcript_t *tr;   /* required, at least one segment with text */
    bool deep;                   /* adds visualAudit */
    const double *scene_times;   /* deep: seconds of visual changes, any order; may be NULL */
    size_t nscene_times;
} gw_local_input_t;

/* Builds the analysis. Returns a new reference, or NULL (reason in err) when the transcript holds no usable text.
 * The same input always gives the same output. The caller still runs gw_result_validate (handlers/result.h) on it. */
json_t *gw_local_analyze(const gw_local_input_t *in, char *err, size_t errlen);

/* ffmpeg -nostdin -hide_banner -v info -i PATH -an -sn -dn -vf select='gt(scene,THRESHOLD)',showinfo -f null -
 * threshold NULL = GW_LOCAL_SCENE_THRESHOLD. Free with gw_argv_free (handlers/ytdlp.h). */
char **gw_local_argv_scenes(const char *ffmpeg_path, const char *path, const char *threshold);

/* Collects pts_time values from showinfo lines ("[Parsed_showinfo_1 @ 0x..] n:0 pts:... pts_time:12.48 ...") in
 * ffmpeg's stderr. *times_out is malloc'd (free it; NULL when none), sorted ascending, duplicates removed. Returns
 * the count. */
size_t gw_local_parse_scenes(const char *stderr_text, double **times_out);

#endif
