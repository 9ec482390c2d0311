/* Unit tests for handlers/url: intake, normalisation and the SSRF guard (moved from test_ytdlp.c with the module). */
#include "check.h"
#include "handlers/url.h"
#include <stdlib.h>
#include <string.h>

typedef struct st_url_case_t {
    const char *input;
    const char *hosts;  /* NULL = default list */
    const char *expect; /* canonical URL, or NULL when it must be refused */
} url_case_t;

#define CANON "https://www.youtube.com/watch?v=dQw4w9WgXcQ"

static const url_case_t url_cases[] = {
    /* accepted */
    {"https://www.youtube.com/watch?v=dQw4w9WgXcQ", NULL, CANON},
    {"https://www.youtube.com/watch?v=dQw4w9WgXcQ&t=42s", NULL, CANON},
    {"https://www.youtube.com/watch?v=dQw4w9WgXcQ&list=PLx0sYbCqOb8TBPRdmBHs5Iftvv9TPboYG&index=2", NULL, CANON},
    {"https://www.youtube.com/watch?feature=share&v=dQw4w9WgXcQ", NULL, CANON},
    {"https://www.youtube.com/watch?v=dQw4w9WgXcQ#t=30", NULL, CANON},
    {"https://youtu.be/dQw4w9WgXcQ", NULL, CANON},
    {"https://youtu.be/dQw4w9WgXcQ?si=abcDEF123&t=10", NULL, CANON},
    {"youtu.be/dQw4w9WgXcQ", NULL, CANON},
    {"https://www.youtube.com/shorts/dQw4w9WgXcQ", NULL, CANON},
    {"https://youtube.com/shorts/dQw4w9WgXcQ?feature=share", NULL, CANON},
    {"https://www.youtube.com/embed/dQw4w9WgXcQ?start=10", NULL, CANON},
    {"https://www.youtube.com/live/dQw4w9WgXcQ?si=x", NULL, CANON},
    {"https://www.youtube.com/v/dQw4w9WgXcQ", NULL, CANON},
    {"https://m.youtube.com/watch?v=dQw4w9WgXcQ", NULL, CANON},
    {"https://music.youtube.com/watch?v=dQw4w9WgXcQ&feature=share", NULL, CANON},
    {"https://www.youtube-nocookie.com/embed/dQw4w9WgXcQ", NULL, CANON},
    {"youtube.com/watch?v=dQw4w9WgXcQ", NULL, CANON},
    {"www.youtube.com/watch?v=dQw4w9WgXcQ", NULL, CANON},
    {"http://www.youtube.com/watch?v=dQw4w9WgXcQ", NULL, CANON},
    {"HTTPS://WWW.YouTube.COM/watch?v=dQw4w9WgXcQ", NULL, CANON},
    {"https://www.youtube.com:443/watch?v=dQw4w9WgXcQ", NULL, CANON},
    {"http://youtube.com:80/watch?v=dQw4w9WgXcQ", NULL, CANON},
    {"//www.youtube.com/watch?v=dQw4w9WgXcQ", NULL, CANON},
    {"https://www.youtube.com/shorts/a_b-C1d2E3f/", NULL, "https://www.youtube.com/watch?v=a_b-C1d2E3f"},
    /* explicitly allowed non-YouTube hosts pass through unchanged */
    {"http://127.0.0.1:8123/video.html", "127.0.0.1", "http://127.0.0.1:8123/video.html"},
    {"http://[::1]:8080/v", "youtube.com,[::1]", "http://[::1]:8080/v"},
    {"https://media.example.org/clip.mp4", "youtube.com, media.example.org", "https://media.example.org/clip.mp4"},
    /* refused: option injection, whitespace, controls */
    {"--exec", NULL, NULL},
    {"--exec=rm -rf /", NULL, NULL},
    {"-o", NULL, NULL},
    {"-ohttps://www.youtube.com/watch?v=dQw4w9WgXcQ", NULL, NULL},
    {" https://www.youtube.com/watch?v=dQw4w9WgXcQ", NULL, NULL},
    {"https://www.youtube.com/watch?v=dQw4w9WgXcQ\n", NULL, NULL},
    {"https://www.youtube.com/watch?v=dQw4w9WgXcQ\t--exec x", NULL, NULL},
    {"https://www.youtube.com/watch?v=dQw4w9WgXcQ\x7f", NULL, NULL},
    {"", NULL, NULL},
    /* refused: schemes */
    {"file:///etc/passwd", NULL, NULL},
    {"javascript:alert(1)", NULL, NULL},
    {"ftp://youtube.com/watch?v=dQw4w9WgXcQ", NULL, NULL},
    {"data:text/html,<script>", NULL, NULL},
    {"https:youtube.com/watch?v=dQw4w9WgXcQ", NULL, NULL},
    {"https:\\\\youtube.com\\watch?v=dQw4w9WgXcQ", NULL, NULL},
    /* refused: SSRF targets */
    {"http://169.254.169.254/latest/meta-data/", NULL, NULL},
    {"http://[::1]/", NULL, NULL},
    {"http://[::ffff:127.0.0.1]/watch?v=dQw4w9WgXcQ", NULL, NULL},
    {"http://2130706433/", NULL, NULL},
    {"http://0x7f.1/", NULL, NULL},
    {"http://0x7f000001/", NULL, NULL},
    {"http://017700000001/", NULL, NULL},
    {"http://127.1/", NULL, NULL},
    {"http://localhost/watch?v=dQw4w9WgXcQ", NULL, NULL},
    {"localhost:8080/watch?v=dQw4w9WgXcQ", NULL, NULL},
    {"http://127.0.0.1:8123/video.html", NULL, NULL},
    {"http://127.0.0.1:8123/video.html", "127.0.0.2", NULL},
    {"127.0.0.1/video.html", "127.0.0.1", NULL}, /* explicit host, but no scheme */
    {"https://user:pw@youtube.com/watch?v=dQw4w9WgXcQ", NULL, NULL},
    {"https://youtube.com@evil.com/watch?v=dQw4w9WgXcQ", NULL, NULL},
    {"https://youtube.com.evil.com/watch?v=dQw4w9WgXcQ", NULL, NULL},
    {"https://evilyoutube.com/watch?v=dQw4w9WgXcQ", NULL, NULL},
    {"https://gaming.youtube.com/watch?v=dQw4w9WgXcQ", NULL, NULL}, /* exact match only */
    {"https://y\xd0\xbeutube.com/watch?v=dQw4w9WgXcQ", NULL, NULL}, /* Cyrillic o */
    {"https://xn--yutube-wqf.com/watch?v=dQw4w9WgXcQ", NULL, NULL},
    {"https://www.youtube.com/watch?v=dQw4w9WgXcQ&x=\xc3\xa9", NULL, NULL},
    {"https://www.youtube.com:8443/watch?v=dQw4w9WgXcQ", NULL, NULL},
    {"https://www.youtube.com:/watch?v=dQw4w9WgXcQ", NULL, NULL},
    {"https://www.youtube.com:99999/watch?v=dQw4w9WgXcQ", NULL, NULL},
    {"https://www.you%74ube.com/watch?v=dQw4w9WgXcQ", NULL, NULL},
    {"https://www.youtube.com/watch?v=dQw4w9WgXcQ", "youtu.be", NULL}, /* host not in a custom list */
    /* refused: not a single video */
    {"https://www.youtube.com/playlist?list=PLx0sYbCqOb8TBPRdmBHs5Iftvv9TPboYG", NULL, NULL},
    {"https://www.youtube.com/watch?list=PLx0sYbCqOb8TBPRdmBHs5Iftvv9TPboYG", NULL, NULL},
    {"https://www.youtube.com/embed/videoseries?list=PLx0sYbCqOb8TBPRdmBHs5Iftvv9TPboYG", NULL, NULL},
    {"https://www.youtube.com/@SomeChannel", NULL, NULL},
    {"https://www.youtube.com/@SomeChannel/videos", NULL, NULL},
    {"https://www.youtube.com/channel/UCxxxxxxxxxxxxxxxxxxxxxx", NULL, NULL},
    {"https://www.youtube.com/c/SomeName", NULL, NULL},
    {"https://www.youtube.com/user/SomeName", NULL, NULL},
    {"https://www.youtube.com/results?search_query=cats", NULL, NULL},
    {"https://www.youtube.com/", NULL, NULL},
    {"https://www.youtube.com", NULL, NULL},
    {"https://www.youtube.com/feed/trending", NULL, NULL},
    /* refused: malformed ids */
    {"https://www.youtube.com/watch?v=dQw4w9WgXc", NULL, NULL},
    {"https://www.youtube.com/watch?v=dQw4w9WgXcQQ", NULL, NULL},
    {"https://www.youtube.com/watch?v=dQw4w9WgX%51", NULL, NULL},
    {"https://www.youtube.com/watch?v=dQw4w9WgXc!", NULL, NULL},
    {"https://www.youtube.com/watch?v=", NULL, NULL},
    {"https://www.youtube.com/watch?v=dQw4w9WgXcQ&v=aaaaaaaaaaa", NULL, NULL},
    {"https://youtu.be/", NULL, NULL},
    {"https://youtu.be/dQw4w9WgXcQ/extra", NULL, NULL},
    {"https://www.youtube.com/shorts/dQw4w9WgXcQ/extra", NULL, NULL},
};

static void test_url_corpus(void)
{
    int n = 0;
    for (size_t i = 0; i < sizeof(url_cases) / sizeof(url_cases[0]); i++, n++) {
        const url_case_t *c = &url_cases[i];
        char id[12] = "garbage";
        char *canon = (char *)"sentinel";
        const char *code = "sentinel", *msg = "sentinel";
        int r = gw_url_normalize(c->input, c->hosts, id, &canon, &code, &msg);
        if (c->expect != NULL) {
            if (r != 0)
                fprintf(stderr, "case %zu: refused %s: %s\n", i, c->input, msg);
            CHECK_INT(r, 0);
            CHECK_STR(canon, c->expect);
            CHECK(code == NULL && msg == NULL);
            CHECK(strncmp(c->expect, "https://www.youtube.com/", 24) != 0 || strlen(id) == 11);
            if (strncmp(c->expect, "https://www.youtube.com/", 24) != 0)
                CHECK_STR(id, "");
        } else {
            if (r == 0)
                fprintf(stderr, "case %zu: accepted %s as %s\n", i, c->input, canon);
            CHECK_INT(r, -1);
            CHECK(canon == NULL);
            CHECK_STR(code, "invalid_url");
            CHECK(msg != NULL && strlen(msg) > 20);
            CHECK_STR(id, "");
        }
        free(r == 0 ? canon : NULL);
    }
    CHECK(n >= 40);
}

static void expect_url_message(const char *url, const char *needle)
{
    char id[12], *canon;
    const char *code, *msg;
    CHECK_INT(gw_url_normalize(url, NULL, id, &canon, &code, &msg), -1);
    if (msg == NULL || strstr(msg, needle) == NULL)
        fprintf(stderr, "message for %s: %s (wanted '%s')\n", url, msg ? msg : "(null)", needle);
    CHECK(msg != NULL && strstr(msg, needle) != NULL);
}

static void test_url_specials(void)
{
    char id[12], *canon;
    const char *code, *msg;

    /* an explicit length sees a NUL the C string would hide */
    static const char with_nul[] = "https://youtu.be/dQw4w9WgXcQ\0--exec=evil";
    CHECK_INT(gw_url_normalize_n(with_nul, sizeof(with_nul) - 1, NULL, id, &canon, &code, &msg), -1);
    CHECK_STR(code, "invalid_url");
    CHECK_INT(gw_url_normalize_n(with_nul, 28, NULL, id, &canon, &code, &msg), 0);
    CHECK_STR(id, "dQw4w9WgXcQ");
    free(canon);

    /* 100 KB link, and the exact length limit */
    size_t big = 100 * 1024;
    char *huge = malloc(big + 1);
    static const char prefix[] = "https://www.youtube.com/watch?v=dQw4w9WgXcQ&x=";
    memcpy(huge, prefix, strlen(prefix));
    memset(huge + strlen(prefix), 'a', big - strlen(prefix));
    huge[big] = '\0';
    CHECK_INT(gw_url_normalize(huge, NULL, id, &canon, &code, &msg), -1);
    CHECK(msg != NULL && strstr(msg, "too long") != NULL);
    huge[GW_URL_MAX_LEN] = '\0';
    CHECK_INT(gw_url_normalize(huge, NULL, id, &canon, &code, &msg), 0);
    free(canon);
    huge[GW_URL_MAX_LEN] = 'a';
    huge[GW_URL_MAX_LEN + 1] = '\0';
    CHECK_INT(gw_url_normalize(huge, NULL, id, &canon, &code, &msg), -1);
    free(huge);

    CHECK_INT(gw_url_normalize(NULL, NULL, id, &canon, NULL, NULL), -1);
    CHECK(canon == NULL);

    expect_url_message("https://www.youtube.com/playlist?list=PL123", "playlist");
    expect_url_message("https://www.youtube.com/@name", "channel");
    expect_url_message("https://www.youtube.com/results?search_query=x", "search");
    expect_url_message("http://2130706433/", "IP address");
    expect_url_message("https://u:p@youtube.com/watch?v=dQw4w9WgXcQ", "password");
    expect_url_message("file:///etc/passwd", "https://");
    expect_url_message("https://vimeo.com/123", "YouTube");
}

static void test_host_allowed(void)
{
    CHECK(gw_url_host_allowed("youtube.com", NULL));
    CHECK(gw_url_host_allowed("WWW.YOUTUBE.COM", ""));
    CHECK(gw_url_host_allowed("www.youtube-nocookie.com", GW_URL_DEFAULT_HOSTS));
    CHECK(!gw_url_host_allowed("evil.youtube.com", NULL));
    CHECK(!gw_url_host_allowed("youtube.co", NULL));
    CHECK(!gw_url_host_allowed("outube.com", NULL));
    CHECK(!gw_url_host_allowed("", NULL));
    CHECK(!gw_url_host_allowed(NULL, NULL));
    CHECK(gw_url_host_allowed("a.test", " x.test , a.test "));
    CHECK(!gw_url_host_allowed("b.test", "x.test,,a.test,"));
    CHECK(gw_url_host_allowed("[::1]", "::1"));
    CHECK(gw_url_host_allowed("::1", "[::1]"));
}

/* Every entry of the default list is allowed with no configuration, and nothing else that looks like it. */
static void test_default_hosts(void)
{
    char list[] = GW_URL_DEFAULT_HOSTS;
    int n = 0;
    for (char *save = NULL, *h = strtok_r(list, ",", &save); h != NULL; h = strtok_r(NULL, ",", &save), n++) {
        CHECK(gw_url_host_allowed(h, NULL));
        char longer[128];
        snprintf(longer, sizeof(longer), "x.%s", h);
        CHECK(!gw_url_host_allowed(longer, NULL)); /* no implicit subdomains */
    }
    CHECK(n >= 5);
}

/* The id and canonical form a caller stores, and the optional out-parameters. */
static void test_outputs(void)
{
    char id[GW_URL_ID_LEN + 1] = "garbage";
    char *canon = NULL;
    CHECK_INT(gw_url_normalize("https://youtu.be/a_b-C1d2E3f?t=1", NULL, id, &canon, NULL, NULL), 0);
    CHECK_STR(id, "a_b-C1d2E3f");
    CHECK_STR(canon, "https://www.youtube.com/watch?v=a_b-C1d2E3f");
    free(canon);
    /* a YouTube link refused when the configured list leaves YouTube out entirely */
    const char *code = NULL, *msg = NULL;
    CHECK_INT(gw_url_normalize("https://www.youtube.com/watch?v=dQw4w9WgXcQ", "media.example.org", id, &canon, &code, &msg), -1);
    CHECK_STR(code, "invalid_url");
    CHECK(canon == NULL);
    /* an explicitly allowed other host keeps its path and query byte for byte */
    CHECK_INT(gw_url_normalize("https://media.example.org/a/b.mp4?x=1&y=2", "media.example.org", id, &canon, &code, &msg), 0);
    CHECK_STR(canon, "https://media.example.org/a/b.mp4?x=1&y=2");
    CHECK_STR(id, "");
    free(canon);
}

/* Result reuse keys on this: every form of one YouTube video is one identity, another video another. */
static char *identity_of(const char *url, const char *hosts)
{
    char id[GW_URL_ID_LEN + 1];
    char *canon = NULL;
    if (gw_url_normalize(url, hosts, id, &canon, NULL, NULL) != 0)
        return NULL;
    char *ident = gw_url_identity(id, canon);
    free(canon);
    return ident;
}

static void test_identity(void)
{
    static const char *const forms[] = {
        "https://www.youtube.com/watch?v=dQw4w9WgXcQ",
        "http://youtube.com/watch?v=dQw4w9WgXcQ&t=42s&list=PL0123456789",
        "www.youtube.com/watch?feature=share&v=dQw4w9WgXcQ",
        "https://youtu.be/dQw4w9WgXcQ?si=abcdef",
        "https://www.youtube.com/shorts/dQw4w9WgXcQ",
        "https://www.youtube.com/embed/dQw4w9WgXcQ?start=10",
        "https://www.youtube.com/live/dQw4w9WgXcQ?feature=share",
        "https://m.youtube.com/watch?v=dQw4w9WgXcQ",
        "https://music.youtube.com/watch?v=dQw4w9WgXcQ&si=x",
        "https://www.youtube-nocookie.com/embed/dQw4w9WgXcQ",
        "HTTPS://WWW.YOUTUBE.COM/watch?v=dQw4w9WgXcQ",
    };
    for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
        char *ident = identity_of(forms[i], NULL);
        CHECK(ident != NULL);
        CHECK_STR(ident ? ident : "(refused)", "youtube:dQw4w9WgXcQ");
        free(ident);
    }
    /* the id is case-sensitive: another case is another video */
    char *other = identity_of("https://youtu.be/dQw4w9WgXcq", NULL);
    CHECK_STR(other ? other : "(refused)", "youtube:dQw4w9WgXcq");
    free(other);
    /* other hosts: the normalised URL, scheme and host lower-cased, fragment dropped, path and query kept */
    char *a = identity_of("HTTP://Media.Example.org/A/b.mp4?x=1#t=5", "media.example.org");
    CHECK_STR(a ? a : "(refused)", "url:http://media.example.org/A/b.mp4?x=1");
    free(a);
    char *b = identity_of("http://127.0.0.1:8080/v.mp4", "127.0.0.1");
    CHECK_STR(b ? b : "(refused)", "url:http://127.0.0.1:8080/v.mp4");
    free(b);
    CHECK(gw_url_identity("", NULL) == NULL);
}

int main(void)
{
    test_identity();
    test_url_corpus();
    test_url_specials();
    test_host_allowed();
    test_default_hosts();
    test_outputs();
    return check_report();
}
