#ifndef GW_YTDLP_H
#define GW_YTDLP_H
/* yt-dlp: argv building, parsing of its -J output and mapping of its failures to error codes. Pure functions: nothing
 * here spawns a process or touches the network. URL intake is in handlers/url.h, the subtitle files it writes are read
 * by handlers/subtitles.h.
 *
 * Error convention: functions return 0 on success and -1 on failure, with a stable error_code string
 * ("invalid_url", "bad_metadata", "no_transcript", ...) and, where offered, a message a user can act on. Both point to
 * static strings. Allocation failure aborts. */
#include "handlers/video.h"
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* --sub-langs used when the caller passes NULL. Entries are Python regexes that yt-dlp matches in full and
 * case-insensitively against the keys of "subtitles" and "automatic_captions" (manual wins when both have a key).
 * The video's language is unknown before -J, and "all" would mean ~100 downloads per job: automatic_captions offers
 * the ASR track machine-translated into every language (keys "de", "fr", ...) plus, for each manual track, its
 * translation into every language (keys "<target>-<source>", e.g. "en-de"). Tradeoff chosen, at most ~4 files:
 *   en                  manual English, else the English ASR (or its machine translation for a non-English video)
 *   en-(?-i:[A-Z]{2})   regional manual English ("en-GB", "en-US"); case-sensitive so that the per-manual-track
 *                       translations "en-de", "en-fr", ... (dozens on popular videos) are not fetched
 *   .*-orig             the untranslated ASR track in the video's own language, whatever it is
 * Not fetched: manual tracks in other languages and named English tracks ("en-xyz..."): a non-English video without
 * ASR therefore has no transcript (fall back to audio). Callers wanting e.g. Spanish can pass "es,en,.*-orig".
 * Checked against yt-dlp 2023.03.04's own selection code. */
#define GW_YTDLP_DEFAULT_SUB_LANGS "en,en-(?-i:[A-Z]{2}),.*-orig,-live_chat"

/* A -J duration (or chapter time) beyond this is treated as unknown: no real video is longer than a month, and a
 * hostile 1e308 would otherwise overflow cost and timestamp arithmetic downstream. */
#define GW_YTDLP_MAX_DURATION_S (31.0 * 24 * 3600)
/* Subtitle files yt-dlp wrote larger than this are skipped rather than read into memory. */
#define GW_YTDLP_MAX_SUB_BYTES (64u * 1024 * 1024)

/* --- argv ------------------------------------------------------------------------------------------------------------ */

/* The one combined metadata + subtitles run (one request burst to YouTube instead of two):
 *   yt-dlp -J --no-simulate --skip-download --no-playlist --write-subs --write-auto-subs --sub-langs LANGS
 *          --sub-format json3/vtt/best -o SCRATCH/sub.%(ext)s --no-warnings --no-progress --ignore-config
 *          --socket-timeout 20 -- URL
 * -J goes to stdout; subtitles land in scratch_dir as sub.<lang>.<ext>. ytdlp_path NULL means "yt-dlp" (PATH lookup);
 * sub_langs NULL means GW_YTDLP_DEFAULT_SUB_LANGS. '%' in scratch_dir is escaped for yt-dlp's output template. The URL
 * always follows "--". Returns a NULL-terminated, malloc'd vector (free with gw_argv_free), or NULL when url or
 * scratch_dir is NULL. */
char **gw_ytdlp_argv_fetch(const char *ytdlp_path, const char *url, const char *scratch_dir, const char *sub_langs);

/* The deep-mode --format for a height cap: "bv*[height<=H]+ba/b[height<=H]/wv*+ba/w" (max_height <= 0: 480). malloc'd. */
char *gw_ytdlp_video_format(long max_height);
/* --format for the audio fallback: the smallest audio-only stream (speech needs little), else the smallest file. */
#define GW_YTDLP_AUDIO_FORMAT "wa/ba/w"
/* A media download to SCRATCH/<stem>.<ext> with the given --format (e.g. from gw_ytdlp_video_format), merged to mp4 when
 * it is a video. max_filesize_bytes 0 means no limit; ffmpeg_path NULL means yt-dlp finds ffmpeg on PATH. Note that
 * yt-dlp treats --max-filesize as "skip", not "fail": it exits 0 without writing the file, so the caller must check
 * that the file exists. NULL when url or scratch_dir is NULL. */
char **gw_ytdlp_argv_media(const char *ytdlp_path, const char *url, const char *scratch_dir, const char *stem, const char *format,
                           uint64_t max_filesize_bytes, const char *ffmpeg_path);

/* A --sub-langs value that also fetches prefer_langs (NULL-terminated, may be NULL), e.g. {"es", NULL} ->
 * "es,es-(?-i:[A-Z]{2}),<GW_YTDLP_DEFAULT_SUB_LANGS>". Entries that are not plain language tags (letters, digits and
 * '-', at most 35 bytes) are skipped so configuration cannot inject a regex. Returns a malloc'd string. */
char *gw_ytdlp_sub_langs(const char *const *prefer_langs);

/* Adds the network options of a YouTube run before the "--" that precedes the URL: "--cookies COOKIES" (the run's
 * private copy of YTDLP_COOKIES_FILE: yt-dlp rewrites the jar on exit) and "--proxy PROXY"; NULL skips one. Takes argv
 * (freed) and returns the new vector; argv without "--" (NULL) is returned unchanged. */
char **gw_ytdlp_argv_net(char **argv, const char *cookies, const char *proxy);
/* The n-th (modulo the count) entry of a comma-separated proxy list, blanks trimmed and empty entries skipped, copied
 * into out; false when the list has no entry or the entry does not fit. */
bool gw_ytdlp_proxy_pick(const char *csv, uint64_t n, char *out, size_t outlen);

void gw_argv_free(char **argv); /* NULL-safe */

/* --- metadata -------------------------------------------------------------------------------------------------------- */

/* Reads yt-dlp's -J output, already parsed (the pipeline parses it once for metadata and transcript; root may be NULL).
 * *out is overwritten (free with gw_video_meta_free; it is left empty on failure).
 * id is required; title defaults to ""; channel falls back to uploader; duration is -1 when absent, null, negative or
 * above GW_YTDLP_MAX_DURATION_S;
 * chapters without end_time end where the next one starts (or at the duration, else -1). Errors: "bad_metadata"
 * (not an object, no id), "invalid_url" (a playlist/multi-video result rather than one video). */
int gw_ytdlp_meta_from_json(const json_t *root, gw_video_meta_t *out, const char **error_code);

/* Refuses videos the pipeline cannot analyse, all permanent: live/upcoming/just-ended streams -> "live_stream",
 * private -> "private_video", subscriber_only/premium_only -> "members_only", needs_auth (YouTube sets it for age-gated
 * videos) -> "age_restricted". Unknown duration is never a reason to refuse. Returns 0 when the video is usable. */
int gw_ytdlp_check_meta(const gw_video_meta_t *m, const char **error_code, const char **message);

/* --- transcript ------------------------------------------------------------------------------------------------------ */

/* Picks and parses the best subtitle file yt-dlp wrote into scratch_dir as sub.<lang>.{json3,vtt,srt}.
 * Wanted languages, best first: prefer_langs in order (NULL-terminated, may be NULL), the video's own language
 * (meta->language, or when unknown the language of a "<lang>-orig" ASR track), English; an exact tag beats a primary
 * subtag match ("en-GB" for "en"). Order: tracks in a wanted language before others; then manual before automatic;
 * then by wanted-language rank; then original before machine-translated ("tlang=" in its URL in root, the parsed -J
 * document); then json3, vtt, srt. Manual vs automatic comes from root's "subtitles" / "automatic_captions" (root NULL
 * or without them: "-orig" tracks are automatic, others assumed manual). A file that fails to parse or holds no text is skipped for
 * the next one. *out is overwritten; its language is the track key without "-orig". None usable -> "no_transcript"; none written
 * although root's requested_subtitles names tracks (their download failed, e.g. HTTP 429: yt-dlp still exits 0) ->
 * "subtitles_unavailable"; scratch_dir unreadable -> "scratch_unavailable". The last two are transient. */
int gw_ytdlp_load_transcript_json(const char *scratch_dir, const gw_video_meta_t *meta, const char *const *prefer_langs,
                                  const json_t *root, gw_transcript_t *out, const char **error_code);

/* --- failures -------------------------------------------------------------------------------------------------------- */

/* Maps a failed run (its stderr and exit code; a negative exit code means killed by a signal) to an error code, a
 * user-actionable message that never quotes stderr, and whether a retry may help. Permanent: private_video,
 * video_unavailable, age_restricted, members_only, live_stream, invalid_url, format_unavailable (download runs: no
 * format matched the requested --format). Transient: bot_check, rate_limited,
 * network_error, ytdlp_failed (anything unrecognised). stderr_text may be NULL. */
void gw_ytdlp_classify_failure(const char *stderr_text, int exit_code, const char **error_code, const char **message,
                               bool *transient);

#endif
