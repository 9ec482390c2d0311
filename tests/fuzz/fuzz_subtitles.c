/* libFuzzer: the three subtitle parsers (json3, VTT, SRT). The first byte picks the parser so one corpus serves all
 * three; every result must keep the parsers' documented invariants. Built three times (FUZZ_FORMAT) so that each
 * parser also gets its own target and coverage figure. */
#include "fuzz.h"
#include "handlers/subtitles.h"

#ifndef FUZZ_FORMAT
#define FUZZ_FORMAT 0 /* 1 json3, 2 vtt, 3 srt, 0 = chosen by the first byte */
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_quiet();
    int fmt = FUZZ_FORMAT;
    if (fmt == 0) {
        if (size == 0)
            return 0;
        fmt = 1 + data[0] % 3;
        data++;
        size--;
    }
    /* an exact-size copy so ASan sees any read past the end */
    char *buf = malloc(size ? size : 1);
    FUZZ_ASSERT(buf != NULL);
    memcpy(buf, data, size);
    gw_transcript_t t;
    int rc = fmt == 1 ? gw_parse_json3(buf, size, &t) : fmt == 2 ? gw_parse_vtt(buf, size, &t) : gw_parse_srt(buf, size, &t);
    if (rc == 0)
        fuzz_check_transcript(&t);
    else
        FUZZ_ASSERT(rc == -1);
    gw_transcript_free(&t);
    free(buf);
    return 0;
}
