#include "handlers/reportable.h"
#include <string.h>

/* Failures caused by what the user submitted: fixing them is the user's business, and reporting them would bury the
 * operator's real trouble. Codes as handlers/ytdlp.c, gemini.c, localmedia.c and the pipelines set them. */
static const char *const user_input_codes[] = {
    "invalid_url",          /* not a single-video link (intake, or yt-dlp's "Unsupported URL") */
    "private_video",        /* yt-dlp: "Private video" */
    "members_only",         /* members/premium/subscriber-only */
    "age_restricted",       /* needs a signed-in account */
    "live_stream",          /* a live stream or premiere that has not ended */
    "video_unavailable",    /* removed, blocked in the region, never existed */
    "format_unavailable",   /* no downloadable format for this video */
    "video_too_large",      /* larger than DOWNLOAD_MAX_BYTES */
    "no_transcript",        /* no captions (and no audio to listen to) */
    "content_blocked",      /* Gemini's safety/recitation/blocklist verdicts on the video's content */
    "insufficient_credits", /* the video is longer than the user's balance covers */
    "invalid_path",         /* local files: malformed path */
    "path_not_allowed",     /* outside LOCAL_MEDIA_DIR */
    "file_not_found",       /* no such file */
    "not_a_file",           /* a directory or device */
    "bad_media",            /* no audio, video or subtitle stream */
    "unreadable_media",     /* not a media file ffprobe can read */
};

bool gw_sentry_code_reportable(const char *code)
{
    for (size_t i = 0; code != NULL && i < sizeof(user_input_codes) / sizeof(user_input_codes[0]); i++)
        if (strcmp(code, user_input_codes[i]) == 0)
            return false;
    return true;
}
