/* libFuzzer: the reader of yt-dlp's -J output and the usability checks made on what it returns. */
#include "fuzz.h"
#include "handlers/ytdlp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_quiet();
    char *buf = malloc(size ? size : 1);
    FUZZ_ASSERT(buf != NULL);
    memcpy(buf, data, size);
    gw_video_meta_t m;
    const char *code = NULL, *msg = NULL;
    json_t *root = json_loadb(buf, size, 0, NULL); /* the pipeline parses -J once and hands the document over */
    int rc = gw_ytdlp_meta_from_json(root, &m, &code);
    json_decref(root);
    if (rc == 0) {
        FUZZ_ASSERT(m.id != NULL && m.title != NULL);
        FUZZ_ASSERT(m.duration >= 0 || m.duration == -1);
        for (size_t i = 0; i < m.nchapters; i++)
            FUZZ_ASSERT(m.chapters[i].title != NULL);
        if (gw_ytdlp_check_meta(&m, &code, &msg) != 0)
            FUZZ_ASSERT(code != NULL && msg != NULL);
    } else {
        FUZZ_ASSERT(code != NULL && m.id == NULL);
    }
    gw_video_meta_free(&m);
    free(buf);
    return 0;
}
