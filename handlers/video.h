#ifndef GW_VIDEO_H
#define GW_VIDEO_H
/* Types shared by the pipeline stages: what yt-dlp tells us about a video and its transcript. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct st_gw_chapter_t {
    double start; /* seconds */
    double end;   /* seconds; <= start when unknown */
    char *title;
} gw_chapter_t;

typedef struct st_gw_video_meta_t {
    char *id; /* e.g. "dQw4w9WgXcQ" */
    char *title;
    char *channel;      /* channel or uploader; may be NULL */
    double duration;    /* seconds; < 0 when the extractor did not say */
    char *upload_date;  /* "YYYYMMDD" or NULL */
    char *language;     /* BCP-47-ish ("en", "en-US") or NULL */
    char *live_status;  /* "not_live", "is_live", "is_upcoming", "was_live", "post_live" or NULL */
    char *availability; /* "public", "unlisted", "private", "needs_auth", "subscriber_only", "premium_only" or NULL */
    gw_chapter_t *chapters;
    size_t nchapters;
} gw_video_meta_t;

typedef struct st_gw_segment_t {
    int64_t start_ms;
    int64_t end_ms;
    char *text; /* UTF-8, single line, trimmed */
} gw_segment_t;

typedef struct st_gw_transcript_t {
    gw_segment_t *segments;
    size_t nsegments;
    char *language; /* language of the chosen track, may be NULL */
    bool automatic; /* auto-generated captions */
    char *source;   /* "json3", "vtt", "srt", "audio" */
} gw_transcript_t;

void gw_video_meta_free(gw_video_meta_t *m); /* frees members, not m itself; NULL-safe */
void gw_transcript_free(gw_transcript_t *t); /* frees members, not t itself; NULL-safe */

#endif
