#ifndef GW_MEDIA_H
#define GW_MEDIA_H
/* Local media files in a job's scratch dir: finding what yt-dlp wrote, the ffmpeg argv that extracts a small mono
 * audio track (argv only, never a shell), and the scratch directories themselves (naming, stale-dir sweep). */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Finds dir/<stem>.<ext> that yt-dlp finished (not *.part, *.ytdl, *.temp.*); writes its path into out.
 * Returns 0 and sets *size, or -1 when there is none. */
int gw_media_find(const char *dir, const char *stem, char *out, size_t outlen, uint64_t *size);

/* ffmpeg -nostdin -hide_banner -loglevel error -y -i IN -vn -map 0:a:0 -ac 1 -ar 16000 -c:a libopus -b:a 24k
 *        -application voip OUT    (about 3 MB per 15 minutes of speech). in/out must be absolute paths.
 * ffmpeg_path NULL = "ffmpeg". Free with gw_argv_free. */
char **gw_media_argv_audio(const char *ffmpeg_path, const char *in, const char *out);

/* The job id inside a scratch dir name "glint-<uuid>-XXXXXX" (writes 37 bytes), or -1 when name is not one. */
int gw_media_scratch_job(const char *name, char job_id[37]);

/* Removes a directory tree (best effort). */
void gw_media_rmtree(const char *path);

#endif
