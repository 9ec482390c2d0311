#ifndef GW_LOCALMEDIA_H
#define GW_LOCALMEDIA_H
/* Local media as input: a video_url naming a file under LOCAL_MEDIA_DIR (a file:// URI or an absolute path). Path
 * intake (the containment guard), ffprobe/ffmpeg argv building, parsing of ffprobe's JSON, and transcript loading from
 * a sidecar .vtt/.srt or from a subtitle stream ffmpeg extracted. Pure functions apart from reading the file system:
 * nothing here spawns a process.
 *
 * Error convention as in handlers/ytdlp.h: 0 on success, -1 with a static error_code and a user-facing message. */
#include "handlers/video.h"
#include <stdbool.h>
#include <stddef.h>

/* Sidecar and extracted subtitle files larger than this are not read. */
#define GW_LOCALMEDIA_MAX_SUB_BYTES (64u * 1024 * 1024)

/* True when video_url asks for a local file: it starts with "file:" or with '/'. Such a URL never goes to yt-dlp. */
bool gw_localmedia_is_local(const char *video_url);

/* Validates a local video_url and resolves it to a real path (no symlinks, no "." or "..") inside media_dir.
 * Accepted: "file:///abs/path", "file://localhost/abs/path", "/abs/path". Percent escapes in file URIs are decoded once;
 * an escaped '/', '\\' or NUL is refused, as are control bytes, '?' or '#' in a URI, any "." or ".." component (before
 * or after decoding), a path whose real location (symlinks resolved) is not below the real media_dir, and anything but
 * a regular file. media_dir NULL or "" refuses every local file ("local_media_disabled"). Other codes: "invalid_path",
 * "path_not_allowed", "file_not_found", "not_a_file" (permanent) and "media_dir_unavailable" (media_dir cannot be
 * resolved, e.g. not mounted: transient). *path_out is malloc'd (caller frees). */
int gw_localmedia_resolve(const char *video_url, const char *media_dir, char **path_out, const char **error_code,
                          const char **error_message);

/* True when real_path (already resolved) lies strictly below real_root (already resolved): compared with a trailing
 * '/' boundary, so "/media-evil/x" is not below "/media". */
bool gw_localmedia_below(const char *real_path, const char *real_root);

/* ffprobe -v error -print_format json -show_format -show_streams -show_chapters -- PATH. ffprobe_path NULL = "ffprobe".
 * Free with gw_argv_free (handlers/ytdlp.h). */
char **gw_localmedia_argv_probe(const char *ffprobe_path, const char *path);

/* ffmpeg -nostdin -v error -y -i PATH -map 0:INDEX -c:s webvtt -f webvtt OUT: one subtitle stream to WebVTT. The input
 * is an absolute path, which ffmpeg can never read as an option or a protocol prefix. */
char **gw_localmedia_argv_extract_subs(const char *ffmpeg_path, const char *path, int stream_index, const char *out_vtt);

/* What ffprobe says beyond gw_video_meta_t. */
typedef struct st_gw_probe_info_t {
    int subtitle_stream; /* absolute index of the first text subtitle stream, -1 when none */
    bool has_video;
    bool has_audio;
} gw_probe_info_t;

/* Parses ffprobe's JSON into *out (overwritten; gw_video_meta_free it). Title from format tags (any case), else the
 * file name without its extension; id = the file name; duration from format (or the longest stream), -1 when unknown;
 * chapters with titles ("Chapter N" when untitled); language from the first audio (else subtitle) stream's tag, ISO
 * 639-2 codes mapped to two letters where common, "und" = unknown. Errors: "bad_media" (not ffprobe JSON, or no audio,
 * video or subtitle stream). */
int gw_localmedia_parse_probe(const char *json, size_t len, const char *path, gw_video_meta_t *out, gw_probe_info_t *info,
                              const char **error_code);

/* Loads a sidecar next to media_path (same name, extension .vtt, then .srt), which must itself resolve inside
 * real_root and be a regular file no larger than GW_LOCALMEDIA_MAX_SUB_BYTES. Returns 0 with segments, or -1 when there
 * is no usable sidecar (absent, escaping, empty, unparsable). */
int gw_localmedia_load_sidecar(const char *media_path, const char *real_root, gw_transcript_t *out);

/* Parses a .vtt or .srt file (by extension; anything else is tried as VTT, then SRT). 0 with segments, else -1. */
int gw_localmedia_load_subtitle_file(const char *path, gw_transcript_t *out);

#endif
