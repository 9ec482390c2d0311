#ifndef GW_FUZZ_H
#define GW_FUZZ_H
/* Shared by the libFuzzer targets: invariant checks that turn a wrong (not only a crashing) parse into a finding. */
#include "handlers/video.h"
#include "reactor/log.h"
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_ASSERT(c)                                                                                                             \
    do {                                                                                                                           \
        if (!(c))                                                                                                                  \
            abort();                                                                                                               \
    } while (0)

/* Strict UTF-8 (no overlongs, no surrogates, <= U+10FFFF). */
static inline bool fuzz_utf8_valid(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p != '\0') {
        uint32_t cp;
        int n;
        if (*p < 0x80) {
            p++;
            continue;
        } else if ((*p & 0xe0) == 0xc0) {
            n = 1, cp = *p & 0x1f;
        } else if ((*p & 0xf0) == 0xe0) {
            n = 2, cp = *p & 0x0f;
        } else if ((*p & 0xf8) == 0xf0) {
            n = 3, cp = *p & 0x07;
        } else {
            return false;
        }
        for (int i = 1; i <= n; i++) {
            if ((p[i] & 0xc0) != 0x80)
                return false;
            cp = cp << 6 | (p[i] & 0x3f);
        }
        if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10ffff ||
            (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        p += n + 1;
    }
    return true;
}

/* The contract of gw_parse_json3/vtt/srt (handlers/subtitles.h): sorted, single-line, trimmed, non-empty, valid UTF-8. */
static inline void fuzz_check_transcript(const gw_transcript_t *t)
{
    for (size_t i = 0; i < t->nsegments; i++) {
        const gw_segment_t *s = &t->segments[i];
        size_t n = strlen(s->text);
        FUZZ_ASSERT(n > 0);
        FUZZ_ASSERT(s->text[0] != ' ' && s->text[n - 1] != ' ');
        FUZZ_ASSERT(strchr(s->text, '\n') == NULL && strchr(s->text, '\r') == NULL);
        FUZZ_ASSERT(fuzz_utf8_valid(s->text));
        if (i > 0)
            FUZZ_ASSERT(t->segments[i - 1].start_ms <= s->start_ms);
    }
}

static inline void fuzz_drop_line(const char *line, void *data)
{
    (void)line;
    (void)data;
}

/* Logging off: the targets run millions of inputs. */
static inline void fuzz_quiet(void)
{
    gw_log_set_sink(fuzz_drop_line, NULL);
}

#endif
