#ifndef GW_RESULT_H
#define GW_RESULT_H
/* The analysis-result contract (docs/output-format.md), independent of who produced the analysis: Gemini and the local
 * analyzer both produce into it. Timestamps, validation and repair, the visual-audit type list, and the title rule
 * (the video's own title wins; the model's wording is kept beside it). Pure functions on jansson values. */
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

/* ---- timestamps ------------------------------------------------------------------------- */

/* "MM:SS", "M:SS", "H:MM:SS" (minutes may exceed 59 without an hour part), optionally inside
 * "[...]" and surrounding blanks. Returns 0 and sets *seconds, or -1. */
int gw_parse_timestamp(const char *s, int *seconds);
/* "MM:SS" under an hour, "H:MM:SS" from an hour on; negative values print as "00:00". */
void gw_format_timestamp(int seconds, char *out, size_t len);

/* ---- visual audit types ----------------------------------------------------------------- */

/* The kinds of visual a model is asked to name, in the order offered, NULL-terminated: Chart, Slide, Diagram, Code,
 * Text, Demo, Product, Person, Scene, Other. */
extern const char *const gw_result_visual_types[];
/* The local analyzer's one type: a cut found by ffmpeg's scene detection (not offered to models). */
#define GW_RESULT_TYPE_SCENE_CHANGE "Scene change"
/* The canonical spelling of a known type (gw_result_visual_types or GW_RESULT_TYPE_SCENE_CHANGE), compared ASCII
 * case-insensitively after trimming; NULL when s is not one of them. */
const char *gw_result_visual_type(const char *s);

/* ---- validation --------------------------------------------------------------------------- */

/* Checks and repairs an analysis in place: trims strings, drops empty ones and unknown keys,
 * normalizes timestamps, drops timeline/visualAudit entries that are unparsable,
 * beyond duration_s + 2 s (duration_s < 0: unknown, no range check) or going backwards,
 * removes duplicate keywords (ASCII case-insensitive), removes visualAudit unless deep (adds []
 * when deep and missing), spells a known visualAudit type canonically and replaces a missing or unknown one by "Other",
 * drops a non-string title or modelTitle (the caller then sets the title: gw_result_fill_title).
 * Returns 0 when usable (err then says what was repaired, "" when nothing), -1 when not
 * (missing/empty summary, keyTakeaways or timeline, not an object) with the reason in err. */
int gw_result_validate(json_t *result, double duration_s, bool deep, char *err, size_t errlen);
/* Same, also reporting the number of repairs made (may be NULL). */
int gw_result_validate_ex(json_t *result, double duration_s, bool deep, char *err, size_t errlen, unsigned *repairs);

/* The title rule, run after validation. When video_title (the video's own title from its metadata) is known (not NULL,
 * not blank, valid UTF-8), it becomes "title" and the producer's title, if any, moves to "modelTitle" when it differs
 * from it (ASCII case-insensitively, after trimming). When video_title is unknown the producer's title stays and there is
 * no modelTitle. A modelTitle already present is replaced. Returns 1 when the title came from video_title, else 0. */
int gw_result_fill_title(json_t *result, const char *video_title);

#endif
