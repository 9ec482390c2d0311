/* libFuzzer: the video URL normaliser (the SSRF guard in front of yt-dlp). Beyond not crashing, every accepted URL must
 * be one yt-dlp can only read as a URL: no leading '-', http(s) scheme, no controls, no credentials, and for YouTube
 * hosts exactly https://www.youtube.com/watch?v=<11 id chars>. The first byte picks the allow-list. */
#include "fuzz.h"
#include "handlers/url.h"
#include <ctype.h>
#include <strings.h>

static const char *const lists[] = {NULL, "youtube.com,www.youtube.com,youtu.be", "127.0.0.1,[::1],example.test", "localhost"};

static void check_accepted(const char *canon, const char *id)
{
    FUZZ_ASSERT(canon[0] != '-');
    FUZZ_ASSERT(strncasecmp(canon, "http://", 7) == 0 || strncasecmp(canon, "https://", 8) == 0);
    const char *auth = strstr(canon, "//") + 2;
    FUZZ_ASSERT(memchr(auth, '@', strcspn(auth, "/?#")) == NULL); /* no credentials in the authority */
    for (const unsigned char *p = (const unsigned char *)canon; *p != '\0'; p++)
        FUZZ_ASSERT(*p > 0x20 && *p < 0x7f && *p != '\\');
    if (id[0] != '\0') {
        FUZZ_ASSERT(strlen(id) == GW_URL_ID_LEN);
        FUZZ_ASSERT(strncmp(canon, "https://www.youtube.com/watch?v=", 32) == 0 && strcmp(canon + 32, id) == 0);
        for (const char *p = id; *p != '\0'; p++)
            FUZZ_ASSERT(isalnum((unsigned char)*p) || *p == '-' || *p == '_');
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_quiet();
    if (size == 0)
        return 0;
    const char *csv = lists[data[0] % 4];
    char *buf = malloc(size - 1 ? size - 1 : 1);
    FUZZ_ASSERT(buf != NULL);
    memcpy(buf, data + 1, size - 1);
    char id[GW_URL_ID_LEN + 1];
    char *canon = NULL;
    const char *code = NULL, *msg = NULL;
    if (gw_url_normalize_n(buf, size - 1, csv, id, &canon, &code, &msg) == 0) {
        FUZZ_ASSERT(canon != NULL && code == NULL);
        check_accepted(canon, id);
        /* the canonical form is a fixed point */
        char id2[GW_URL_ID_LEN + 1];
        char *canon2 = NULL;
        FUZZ_ASSERT(gw_url_normalize(canon, csv, id2, &canon2, &code, &msg) == 0);
        FUZZ_ASSERT(strcmp(canon, canon2) == 0 && strcmp(id, id2) == 0);
        free(canon2);
    } else {
        FUZZ_ASSERT(canon == NULL && code != NULL && strcmp(code, "invalid_url") == 0 && msg != NULL);
    }
    free(canon);
    free(buf);
    return 0;
}
