#ifndef GW_TEST_YTDLP_TEXT_H
#define GW_TEST_YTDLP_TEXT_H
/* The tests hold yt-dlp's -J answers as text; the module takes them parsed once (as the pipeline does). */
#include "handlers/ytdlp.h"
#include <jansson.h>

/* gw_ytdlp_meta_from_json on text (not JSON: "bad_metadata", like any non-object). */
static inline int meta_from_text(const char *json, size_t len, gw_video_meta_t *out, const char **error_code)
{
    json_t *root = json != NULL ? json_loadb(json, len, 0, NULL) : NULL;
    int ret = gw_ytdlp_meta_from_json(root, out, error_code);
    json_decref(root);
    return ret;
}

/* gw_ytdlp_load_transcript_json on text (NULL or unparsable: no -J document). */
static inline int transcript_from_text(const char *scratch_dir, const gw_video_meta_t *meta, const char *const *prefer_langs,
                                       const char *json_from_J, gw_transcript_t *out, const char **error_code)
{
    json_t *root = json_from_J != NULL ? json_loads(json_from_J, 0, NULL) : NULL;
    int ret = gw_ytdlp_load_transcript_json(scratch_dir, meta, prefer_langs, root, out, error_code);
    json_decref(root);
    return ret;
}

#endif
