#ifndef GW_URL_H
#define GW_URL_H
/* URL intake: validates a user-supplied video link against the allowed hosts (the SSRF guard) and reduces it to the
 * canonical form handed to yt-dlp. Pure functions: no network, no DNS.
 *
 * Error convention as in handlers/ytdlp.h: 0 on success, -1 with the static error_code "invalid_url" and a message a
 * user can act on. Allocation failure aborts. */
#include <stdbool.h>
#include <stddef.h>

/* Hosts a video_url may name when ALLOWED_VIDEO_HOSTS is unset. Matching is exact (case-insensitive): no wildcards,
 * no implicit subdomains, so "youtube.com.evil.com" and "evil.youtube.com" are both refused. */
#define GW_URL_DEFAULT_HOSTS                                                                                                       \
    "youtube.com,www.youtube.com,m.youtube.com,music.youtube.com,youtu.be,youtube-nocookie.com,www.youtube-nocookie.com"
#define GW_URL_MAX_LEN 2048
#define GW_URL_ID_LEN 11

/* True when host (lower- or mixed-case, IPv6 literals with or without brackets) is one of the comma-separated entries
 * of allowed_hosts_csv (NULL or "" means GW_URL_DEFAULT_HOSTS). Exact, case-insensitive match; blanks around entries
 * are ignored. */
bool gw_url_host_allowed(const char *host, const char *allowed_hosts_csv);

/* Validates a user-supplied video link and reduces it to the canonical form handed to yt-dlp.
 *
 * YouTube hosts (youtube.com and its subdomains, youtu.be, youtube-nocookie.com; each must also be allowed by
 * allowed_hosts_csv): accepts watch?v=ID (extra parameters such as &t= and &list= are ignored), youtu.be/ID,
 * /shorts/ID, /embed/ID, /live/ID, /v/ID, /e/ID, with or without http(s)://, on any allowed subdomain (m., music.).
 * On success video_id_out holds the 11-character id and *canonical_url_out (malloc'd, caller frees) is
 * "https://www.youtube.com/watch?v=ID".
 *
 * Other hosts: accepted only when named in allowed_hosts_csv explicitly (meant for tests pointing yt-dlp at a local
 * page, e.g. "127.0.0.1"); for such a host an IP literal and any port are allowed, the link must carry an http(s)
 * scheme, video_id_out is "" and the canonical URL is the input unchanged.
 *
 * Refused with error_code "invalid_url" and a user-facing message: empty or longer than GW_URL_MAX_LEN bytes; NUL,
 * whitespace, control, backslash or non-ASCII bytes (homoglyph hosts); a leading '-' (option injection); schemes other
 * than http/https; user:pass@; IP literals in any spelling (dotted, decimal "2130706433", hex "0x7f.1", octal, IPv6)
 * unless explicitly allowed; a non-default port on a YouTube host; hosts not allowed; playlist, channel, search and
 * other pages that are not a single video; malformed video ids. video_id_out must hold 12 bytes; error_code and
 * error_message may be NULL. Returns 0 or -1. */
int gw_url_normalize(const char *input, const char *allowed_hosts_csv, char *video_id_out, char **canonical_url_out,
                     const char **error_code, const char **error_message);
/* The same with an explicit length, so a NUL inside the first len bytes is seen and refused (JSON strings may hold one). */
int gw_url_normalize_n(const char *input, size_t len, const char *allowed_hosts_csv, char *video_id_out, char **canonical_url_out,
                       const char **error_code, const char **error_message);

/* The video's identity, the part of the result-reuse key (docs/reuse-and-language.md) that says which video it is: for
 * a YouTube link "youtube:" + its 11-character id, so every form of one video (watch, youtu.be, shorts, embed, live, m.,
 * music., extra parameters) has one identity; for another allowed host "url:" + the normalised URL with its scheme and
 * host lower-cased and any #fragment dropped. Takes gw_url_normalize's outputs (video_id "" for other hosts).
 * malloc'd; NULL when canonical_url is NULL. */
char *gw_url_identity(const char *video_id, const char *canonical_url);

#endif
