#ifndef GW_SUBTITLES_H
#define GW_SUBTITLES_H
/* Subtitles to transcripts: parsers for json3 (YouTube's timed text), WebVTT and SRT that turn a file's bytes into
 * gw_transcript_t segments. Pure functions on memory: no files, no processes. Which of yt-dlp's files to read is
 * handlers/ytdlp.h's business (gw_ytdlp_load_transcript_json); local files use handlers/localmedia.h. Allocation
 * failure aborts. */
#include "handlers/video.h"
#include <stddef.h>

/* Subtitle parsers, exported for tests and fuzzing. Each overwrites *out (source set, language NULL) and returns 0 even
 * when no text was found (nsegments == 0), or -1 when buf is not that format. Segments are sorted by start (stable),
 * text is single-line, whitespace-collapsed, trimmed, valid UTF-8 (invalid bytes become U+FFFD).
 * json3: events[].{tStartMs,dDurationMs,segs[].utf8}; aAppend events and blank segments are skipped.
 * vtt: WEBVTT header, BOM, CRLF/CR, NOTE/STYLE/REGION blocks, cue ids and settings, HH:MM:SS.mmm and MM:SS.mmm, inline
 * tags and timestamps stripped, HTML entities decoded; srt: index lines, "," decimal separator, <font>/{\an8} tags.
 * Both drop lines repeated from the previous cue (YouTube's rolling auto-captions), extending the earlier segment. */
int gw_parse_json3(const char *buf, size_t len, gw_transcript_t *out);
int gw_parse_vtt(const char *buf, size_t len, gw_transcript_t *out);
int gw_parse_srt(const char *buf, size_t len, gw_transcript_t *out);

#endif
