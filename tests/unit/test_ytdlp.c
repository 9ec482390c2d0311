#include "check.h"
#include "handlers/subtitles.h"
#include "handlers/url.h"
#include "handlers/ytdlp.h"
#include "reactor/text.h"
#include "ytdlp_text.h"
#include <dirent.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#define CANON "https://www.youtube.com/watch?v=dQw4w9WgXcQ"

static char src_dir[PATH_MAX / 2]; /* tests/ in the source tree */

static void init_src_dir(void)
{
    const char *env = getenv("GW_TEST_SRC");
    if (env != NULL) {
        snprintf(src_dir, sizeof(src_dir), "%s", env);
        return;
    }
    /* __FILE__ is absolute (CMake passes full paths): .../tests/unit/test_ytdlp.c */
    snprintf(src_dir, sizeof(src_dir), "%s", __FILE__);
    char *slash = strrchr(src_dir, '/');
    if (slash != NULL)
        *slash = '\0';
    slash = strrchr(src_dir, '/');
    if (slash != NULL)
        *slash = '\0';
}

static char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    size_t cap = 4096, n = 0, r;
    char *buf = malloc(cap);
    while ((r = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += r;
        if (cap - n - 1 == 0)
            buf = realloc(buf, cap *= 2);
    }
    fclose(f);
    buf[n] = '\0';
    if (len != NULL)
        *len = n;
    return buf;
}

static char *fixture(const char *name, size_t *len)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/unit/fixtures/ytdlp/%s", src_dir, name);
    char *buf = read_all(path, len);
    if (buf == NULL)
        fprintf(stderr, "missing fixture %s\n", path);
    return buf;
}

static void write_file(const char *dir, const char *name, const char *body, size_t len)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    fwrite(body, 1, len, f);
    fclose(f);
}

static void copy_fixture(const char *dir, const char *fixture_name, const char *as)
{
    size_t len;
    char *buf = fixture(fixture_name, &len);
    if (buf != NULL)
        write_file(dir, as, buf, len);
    free(buf);
}

static void rm_rf(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    char path[PATH_MAX];
    while (d != NULL && (de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
        unlink(path);
    }
    if (d != NULL)
        closedir(d);
    rmdir(dir);
}

/* --- argv -------------------------------------------------------------------------------------------------------------- */

static int argv_len(char **argv)
{
    int n = 0;
    while (argv[n] != NULL)
        n++;
    return n;
}

static int argv_find(char **argv, const char *s)
{
    for (int i = 0; argv[i] != NULL; i++)
        if (strcmp(argv[i], s) == 0)
            return i;
    return -1;
}

static void test_argv(void)
{
    char *fmt480 = gw_ytdlp_video_format(0); /* what deep mode asks for by default */
    char **a = gw_ytdlp_argv_fetch(NULL, CANON, "/tmp/job-1/", NULL);
    static const char *const expect[] = {"yt-dlp",
                                         "-J",
                                         "--no-simulate",
                                         "--skip-download",
                                         "--no-playlist",
                                         "--write-subs",
                                         "--write-auto-subs",
                                         "--sub-langs",
                                         GW_YTDLP_DEFAULT_SUB_LANGS,
                                         "--sub-format",
                                         "json3/vtt/best",
                                         "-o",
                                         "/tmp/job-1/sub.%(ext)s",
                                         "--no-warnings",
                                         "--no-progress",
                                         "--ignore-config",
                                         "--socket-timeout",
                                         "20",
                                         "--",
                                         CANON};
    CHECK_INT(argv_len(a), sizeof(expect) / sizeof(expect[0]));
    for (size_t i = 0; i < sizeof(expect) / sizeof(expect[0]) && a[i] != NULL; i++)
        CHECK_STR(a[i], expect[i]);
    gw_argv_free(a);

    a = gw_ytdlp_argv_fetch("/opt/yt-dlp", "-weird", "/tmp/50%(x)s", "de.*");
    CHECK_STR(a[0], "/opt/yt-dlp");
    CHECK_STR(a[argv_find(a, "--sub-langs") + 1], "de.*");
    CHECK_STR(a[argv_find(a, "-o") + 1], "/tmp/50%%(x)s/sub.%(ext)s");
    CHECK_INT(argv_find(a, "--"), argv_len(a) - 2);
    CHECK_STR(a[argv_len(a) - 1], "-weird");
    gw_argv_free(a);

    a = gw_ytdlp_argv_media(NULL, CANON, "/w", "video", fmt480, 200u * 1024 * 1024, "/usr/bin/ffmpeg");
    CHECK_STR(a[argv_find(a, "-f") + 1], "bv*[height<=480]+ba/b[height<=480]/wv*+ba/w");
    CHECK_STR(a[argv_find(a, "--max-filesize") + 1], "209715200");
    CHECK_STR(a[argv_find(a, "--merge-output-format") + 1], "mp4");
    CHECK_STR(a[argv_find(a, "--ffmpeg-location") + 1], "/usr/bin/ffmpeg");
    CHECK_STR(a[argv_find(a, "-o") + 1], "/w/video.%(ext)s");
    CHECK(argv_find(a, "--ignore-config") > 0);
    CHECK(argv_find(a, "-J") < 0);
    CHECK_INT(argv_find(a, "--"), argv_len(a) - 2);
    gw_argv_free(a);

    a = gw_ytdlp_argv_media(NULL, CANON, "/w", "video", fmt480, 0, NULL);
    CHECK(argv_find(a, "--max-filesize") < 0);
    CHECK(argv_find(a, "--ffmpeg-location") < 0);
    gw_argv_free(a);

    static const char *const prefs[] = {"es", "pt-BR", "", ".*", "x|y", "-es", "de", NULL};
    char *langs = gw_ytdlp_sub_langs(prefs);
    CHECK_STR(langs, "es,es-(?-i:[A-Z]{2}),pt-BR,de,de-(?-i:[A-Z]{2})," GW_YTDLP_DEFAULT_SUB_LANGS);
    free(langs);
    langs = gw_ytdlp_sub_langs(NULL);
    CHECK_STR(langs, GW_YTDLP_DEFAULT_SUB_LANGS);
    free(langs);

    CHECK(gw_ytdlp_argv_fetch(NULL, NULL, "/tmp", NULL) == NULL);
    CHECK(gw_ytdlp_argv_media(NULL, CANON, NULL, "video", fmt480, 0, NULL) == NULL);
    free(fmt480);
    gw_argv_free(NULL);
}

/* --- metadata ---------------------------------------------------------------------------------------------------------- */

static void test_meta(void)
{
    gw_video_meta_t m;
    const char *code, *msg;
    size_t len;
    char *j = fixture("meta_ok.json", &len);
    CHECK_INT(meta_from_text(j, len, &m, &code), 0);
    CHECK_STR(m.id, "okokokokok1");
    CHECK_STR(m.title, "How Glint Works \xe2\x80\x94 a tour");
    CHECK_STR(m.channel, "Glint Channel");
    CHECK(m.duration == 754);
    CHECK_STR(m.upload_date, "20240131");
    CHECK_STR(m.language, "en");
    CHECK_STR(m.live_status, "not_live");
    CHECK_STR(m.availability, "public");
    CHECK_INT(m.nchapters, 3);
    if (m.nchapters == 3) {
        CHECK(m.chapters[1].start == 65.5 && m.chapters[1].end == 400.0);
        CHECK_STR(m.chapters[1].title, "Architecture");
        CHECK(m.chapters[2].end == 754); /* no end_time: the video's end */
    }
    CHECK_INT(gw_ytdlp_check_meta(&m, &code, &msg), 0);
    gw_video_meta_free(&m);
    free(j);

    j = fixture("meta_no_duration.json", &len);
    CHECK_INT(meta_from_text(j, len, &m, &code), 0);
    CHECK(m.duration < 0);
    CHECK_STR(m.channel, "Glint Uploader"); /* channel null: falls back to uploader */
    CHECK(m.language == NULL);
    CHECK_INT(m.nchapters, 0);
    CHECK_INT(gw_ytdlp_check_meta(&m, &code, &msg), 0); /* unknown duration is no reason to refuse */
    gw_video_meta_free(&m);
    free(j);

    static const char nulls[] = "{\"id\":\"abc\",\"duration\":null,\"chapters\":[{\"start_time\":5,\"title\":\"A\"},"
                                "{\"start_time\":\"x\"},7,{\"start_time\":9}]}";
    CHECK_INT(meta_from_text(nulls, strlen(nulls), &m, &code), 0);
    CHECK(m.duration == -1);
    CHECK_STR(m.title, "");
    CHECK(m.channel == NULL);
    CHECK_INT(m.nchapters, 2);
    if (m.nchapters == 2) {
        CHECK(m.chapters[0].end == 9);
        CHECK(m.chapters[1].end < 0);
        CHECK_STR(m.chapters[1].title, "");
    }
    gw_video_meta_free(&m);

    static const char *const bad[] = {"",           "not json",       "[1,2]", "{\"title\":\"no id\"}", "{\"id\":\"\"}",
                                      "{\"id\":5}", "{\"id\":\"x\",", NULL};
    for (int i = 0; bad[i] != NULL; i++) {
        code = NULL;
        CHECK_INT(meta_from_text(bad[i], strlen(bad[i]), &m, &code), -1);
        CHECK_STR(code, "bad_metadata");
        CHECK(m.id == NULL && m.title == NULL);
    }
    static const char playlist[] = "{\"_type\":\"playlist\",\"id\":\"PL1\",\"entries\":[]}";
    CHECK_INT(meta_from_text(playlist, strlen(playlist), &m, &code), -1);
    CHECK_STR(code, "invalid_url");
    CHECK_INT(meta_from_text(NULL, 0, &m, NULL), -1);
}

static void check_meta_case(const char *live_status, const char *availability, const char *expect)
{
    gw_video_meta_t m = {
        .id = (char *)"x", .duration = -1, .live_status = (char *)live_status, .availability = (char *)availability};
    const char *code = "sentinel", *msg = NULL;
    int r = gw_ytdlp_check_meta(&m, &code, &msg);
    if (expect == NULL) {
        CHECK_INT(r, 0);
        CHECK(code == NULL);
    } else {
        CHECK_INT(r, -1);
        CHECK_STR(code, expect);
        CHECK(msg != NULL && strlen(msg) > 20);
    }
}

static void test_check_meta(void)
{
    check_meta_case("is_live", "public", "live_stream");
    check_meta_case("is_upcoming", NULL, "live_stream");
    check_meta_case("post_live", NULL, "live_stream");
    check_meta_case("was_live", "public", NULL);
    check_meta_case(NULL, NULL, NULL);
    check_meta_case("not_live", "unlisted", NULL);
    check_meta_case("not_live", "private", "private_video");
    check_meta_case(NULL, "subscriber_only", "members_only");
    check_meta_case(NULL, "premium_only", "members_only");
    check_meta_case(NULL, "needs_auth", "age_restricted");
}

/* --- subtitle parsers -------------------------------------------------------------------------------------------------- */

static void check_seg(const gw_transcript_t *t, size_t i, int64_t start, int64_t end, const char *text)
{
    if (i >= t->nsegments) {
        CHECK(i < t->nsegments);
        return;
    }
    CHECK_INT(t->segments[i].start_ms, start);
    CHECK_INT(t->segments[i].end_ms, end);
    CHECK_STR(t->segments[i].text, text);
}

static void test_json3(void)
{
    gw_transcript_t t;
    size_t len;
    char *j = fixture("manual.json3", &len);
    CHECK_INT(gw_parse_json3(j, len, &t), 0);
    CHECK_STR(t.source, "json3");
    CHECK_INT(t.nsegments, 5);
    check_seg(&t, 0, 80, 4080, "welcome to the show");
    check_seg(&t, 1, 4080, 7080, "[Music]");
    check_seg(&t, 2, 9000, 10500, "third line with spaces");
    check_seg(&t, 3, 12000, 15000, "no duration");
    check_seg(&t, 4, 15000, 16000, "caf\xc3\xa9 \xe2\x80\x94 \xe6\x97\xa5\xe6\x9c\xac");
    gw_transcript_free(&t);
    free(j);

    static const char empty[] = "{\"events\":[]}";
    CHECK_INT(gw_parse_json3(empty, strlen(empty), &t), 0);
    CHECK_INT(t.nsegments, 0);
    gw_transcript_free(&t);
    static const char *const bad[] = {"", "{}", "{\"events\":{}}", "[]", "WEBVTT", NULL};
    for (int i = 0; bad[i] != NULL; i++) {
        CHECK_INT(gw_parse_json3(bad[i], strlen(bad[i]), &t), -1);
        CHECK(t.segments == NULL && t.source == NULL);
    }
    /* aAppend: 0 / false are not appends; a NUL inside a string becomes a space */
    static const char odd[] = "{\"events\":[{\"tStartMs\":1,\"aAppend\":0,\"segs\":[{\"utf8\":\"a\\u0000b\"}]},"
                              "{\"tStartMs\":2,\"aAppend\":false,\"segs\":[{\"utf8\":\"c\"},{\"x\":1},5]},"
                              "{\"tStartMs\":3,\"aAppend\":true,\"segs\":[{\"utf8\":\"d\"}]},"
                              "{\"tStartMs\":1e30,\"segs\":[{\"utf8\":\"huge\"}]}]}";
    CHECK_INT(gw_parse_json3(odd, strlen(odd), &t), 0);
    CHECK_INT(t.nsegments, 2);
    check_seg(&t, 0, 1, 2, "a b");
    check_seg(&t, 1, 2, 2, "c");
    gw_transcript_free(&t);
}

static void test_vtt(void)
{
    gw_transcript_t t;
    size_t len;
    char *v = fixture("quirks.vtt", &len);
    CHECK_INT(gw_parse_vtt(v, len, &t), 0);
    CHECK_STR(t.source, "vtt");
    CHECK_INT(t.nsegments, 5);
    check_seg(&t, 0, 1000, 4000, "We are in New York City");
    check_seg(&t, 1, 4000, 6500, "Tom & Jerry <3 'quoted' \"too\" \xe2\x98\xba &bogus; & done");
    check_seg(&t, 2, 6500, 9000, "first line second line");
    check_seg(&t, 3, 10000, 12000, "bold under \xe6\xbc\xa2kan");
    check_seg(&t, 4, 3600000, 3602000, "an hour in");
    gw_transcript_free(&t);
    free(v);

    v = fixture("rolling.vtt", &len);
    CHECK_INT(gw_parse_vtt(v, len, &t), 0);
    CHECK_INT(t.nsegments, 4);
    check_seg(&t, 0, 0, 2360, "hello world this");
    check_seg(&t, 1, 2360, 5010, "is the second");
    check_seg(&t, 2, 5010, 8010, "line of captions");
    check_seg(&t, 3, 8010, 10000, "and the end");
    /* the whole transcript says each line once */
    int hello = 0;
    for (size_t i = 0; i < t.nsegments; i++)
        hello += strstr(t.segments[i].text, "hello") != NULL;
    CHECK_INT(hello, 1);
    gw_transcript_free(&t);
    free(v);

    /* CR-only line endings, no blank line between cues, a cue id, bad timings skipped */
    static const char cr[] = "WEBVTT\r\r00:00:01.000 --> 00:00:02.000\rone\r00:00:03.000 --> 00:00:04.000\rtwo\r\r"
                             "id\r00:99.000 --> 00:01:00.000\rbad minutes\r\r"
                             "00:00:05.000 --> 00:00:04.000\rend before start\r";
    CHECK_INT(gw_parse_vtt(cr, strlen(cr), &t), 0);
    CHECK_INT(t.nsegments, 3);
    check_seg(&t, 0, 1000, 2000, "one");
    check_seg(&t, 1, 3000, 4000, "two");
    check_seg(&t, 2, 5000, 5000, "end before start");
    gw_transcript_free(&t);

    static const char *const bad[] = {"", "WEBVT", "WEBVTTX\n", "1\n00:00:01,000 --> 00:00:02,000\nsrt\n", NULL};
    for (int i = 0; bad[i] != NULL; i++) {
        CHECK_INT(gw_parse_vtt(bad[i], strlen(bad[i]), &t), -1);
        CHECK(t.segments == NULL);
    }
    CHECK_INT(gw_parse_vtt("WEBVTT", 6, &t), 0);
    CHECK_INT(t.nsegments, 0);
    gw_transcript_free(&t);
}

static void test_srt(void)
{
    gw_transcript_t t;
    size_t len;
    char *s = fixture("sample.srt", &len);
    CHECK_INT(gw_parse_srt(s, len, &t), 0);
    CHECK_STR(t.source, "srt");
    CHECK_INT(t.nsegments, 4);
    check_seg(&t, 0, 1000, 3500, "Hello there");
    check_seg(&t, 1, 3500, 6000, "Second line with a wrap and break");
    check_seg(&t, 2, 7250, 8000, "Fish & chips");
    check_seg(&t, 3, 8000, 9000, "\xef\xbf\xbd\xef\xbf\xbd broken utf8");
    gw_transcript_free(&t);
    free(s);
    CHECK_INT(gw_parse_srt("just text\n", 10, &t), -1);
    CHECK_INT(gw_parse_srt(NULL, 0, &t), -1);

    /* invalid UTF-8 of every kind comes out valid */
    static const char nasty[] = "1\n00:00:01,000 --> 00:00:02,000\n\xc0\xaf \xed\xa0\x80 \xf4\x90\x80\x80 \xe2\x82 ok\n";
    CHECK_INT(gw_parse_srt(nasty, strlen(nasty), &t), 0);
    CHECK_INT(t.nsegments, 1);
    if (t.nsegments == 1) {
        json_t *js = json_string(t.segments[0].text); /* jansson refuses invalid UTF-8 */
        CHECK(js != NULL);
        json_decref(js);
        CHECK(strstr(t.segments[0].text, "ok") != NULL);
    }
    gw_transcript_free(&t);
}

/* --- transcript choice ------------------------------------------------------------------------------------------------ */

static char *make_dir(void)
{
    char tmpl[] = "/tmp/gw-test-ytdlp-XXXXXX";
    char *d = mkdtemp(tmpl);
    return d != NULL ? strdup(d) : NULL;
}

static void expect_choice(const char *dir, const gw_video_meta_t *meta, const char *const *prefer, const char *json,
                          const char *lang, bool automatic, const char *source)
{
    gw_transcript_t t;
    const char *code = "sentinel";
    int r = transcript_from_text(dir, meta, prefer, json, &t, &code);
    CHECK_INT(r, 0);
    CHECK(code == NULL);
    CHECK_STR(t.language, lang);
    CHECK_INT(t.automatic, automatic);
    CHECK_STR(t.source, source);
    CHECK(t.nsegments > 0);
    gw_transcript_free(&t);
}

static void test_load_transcript(void)
{
    char *dir = make_dir();
    size_t len;
    char *json = fixture("meta_ok.json", &len);
    gw_video_meta_t meta;
    const char *code;
    gw_transcript_t t;
    CHECK(dir != NULL && json != NULL);
    if (dir == NULL || json == NULL)
        return;
    CHECK_INT(meta_from_text(json, len, &meta, &code), 0);

    /* nothing written: none chosen (no captions), chosen but not written (a failed subtitle fetch), no dir */
    CHECK_INT(transcript_from_text(dir, &meta, NULL, "{\"requested_subtitles\":null}", &t, &code), -1);
    CHECK_STR(code, "no_transcript");
    CHECK_INT(transcript_from_text(dir, &meta, NULL, "{\"requested_subtitles\":{\"en\":{\"ext\":\"json3\"}}}", &t, &code), -1);
    CHECK_STR(code, "subtitles_unavailable");
    CHECK_INT(transcript_from_text("/nonexistent/dir", &meta, NULL, json, &t, &code), -1);
    CHECK_STR(code, "scratch_unavailable");

    copy_fixture(dir, "rolling.vtt", "sub.en-orig.vtt");
    copy_fixture(dir, "rolling.vtt", "sub.fr.vtt");
    expect_choice(dir, &meta, NULL, json, "en", true, "vtt");
    copy_fixture(dir, "sample.srt", "sub.en.srt");
    expect_choice(dir, &meta, NULL, json, "en", false, "srt"); /* manual beats automatic */
    copy_fixture(dir, "quirks.vtt", "sub.en.vtt");
    expect_choice(dir, &meta, NULL, json, "en", false, "vtt"); /* vtt beats srt */
    copy_fixture(dir, "manual.json3", "sub.en.json3");
    expect_choice(dir, &meta, NULL, json, "en", false, "json3"); /* json3 beats vtt */
    copy_fixture(dir, "manual.json3", "sub.de.json3");
    static const char *const prefer_de[] = {"de", NULL};
    expect_choice(dir, &meta, prefer_de, json, "de", false, "json3");
    static const char *const prefer_fr[] = {"fr-CA", "de", NULL};
    expect_choice(dir, &meta, prefer_fr, json, "de", false, "json3"); /* manual de beats automatic fr */
    static const char *const prefer_xx[] = {"xx", NULL};
    expect_choice(dir, &meta, prefer_xx, json, "en", false, "json3"); /* no match: own language */
    free(meta.language);
    meta.language = strdup("de-DE");
    expect_choice(dir, &meta, NULL, json, "de", false, "json3");
    /* without -J, everything not marked -orig counts as manual, and the en-orig track gives the language */
    expect_choice(dir, NULL, NULL, NULL, "en", false, "json3");
    expect_choice(dir, NULL, prefer_de, NULL, "de", false, "json3");

    /* a broken best candidate falls through to the next */
    write_file(dir, "sub.de.json3", "{broken", 7);
    expect_choice(dir, &meta, NULL, json, "en", false, "json3");
    write_file(dir, "sub.en.json3", "{\"events\":[]}", 13);
    expect_choice(dir, &meta, NULL, json, "en", false, "vtt");
    /* files that are not subtitles are ignored */
    write_file(dir, "sub.live_chat.json3", "{\"events\":[{\"tStartMs\":0,\"segs\":[{\"utf8\":\"chat\"}]}]}", 51);
    write_file(dir, "video.mp4", "x", 1);
    write_file(dir, "sub..vtt", "WEBVTT\n\n00:01.000 --> 00:02.000\nx\n", 35);
    expect_choice(dir, &meta, NULL, json, "en", false, "vtt");
    gw_video_meta_free(&meta);
    rm_rf(dir);
    free(dir);
    free(json);

    /* auto-only German video whose -J has no language: the -orig track tells it, and the original ASR beats the
     * English machine translation */
    dir = make_dir();
    json = fixture("meta_auto_de.json", &len);
    CHECK_INT(meta_from_text(json, len, &meta, &code), 0);
    copy_fixture(dir, "manual.json3", "sub.en.json3");
    copy_fixture(dir, "manual.json3", "sub.de-orig.json3");
    expect_choice(dir, &meta, NULL, json, "de", true, "json3");
    static const char *const prefer_en[] = {"en", NULL};
    expect_choice(dir, &meta, prefer_en, json, "en", true, "json3");
    gw_video_meta_free(&meta);
    rm_rf(dir);
    free(dir);
    free(json);
}

/* --- failures ---------------------------------------------------------------------------------------------------------- */

typedef struct st_failure_case_t {
    const char *stderr_text;
    int exit_code;
    const char *code;
    bool transient;
} failure_case_t;

static void test_classify(void)
{
    static const failure_case_t cases[] = {
        {"ERROR: [youtube] abc: Private video. Sign in if you've been granted access to this video", 1, "private_video", false},
        {"ERROR: [youtube] abc: Video unavailable. This video is private", 1, "private_video", false},
        {"ERROR: [youtube] abc: Video unavailable", 1, "video_unavailable", false},
        {"ERROR: [youtube] abc: Video unavailable. This video has been removed by the uploader", 1, "video_unavailable", false},
        {"ERROR: [youtube] abc: This video is not available", 1, "video_unavailable", false},
        {"ERROR: [youtube] abc: Sign in to confirm your age. This video may be inappropriate for some users.", 1, "age_restricted",
         false},
        {"ERROR: abc: This video is age-restricted", 1, "age_restricted", false},
        {"ERROR: [youtube] abc: Join this channel to get access to members-only content like this video", 1, "members_only", false},
        {"ERROR: [youtube] abc: Sign in to confirm you\xe2\x80\x99re not a bot. This helps protect our community.", 1, "bot_check",
         true},
        {"ERROR: [youtube] abc: Sign in to confirm you're not a bot", 1, "bot_check", true},
        {"ERROR: [youtube] abc: Sign in to confirm you\xca\xbcre not a bot", 1, "bot_check", true},
        {"ERROR: [youtube] abc: Sign in to confirm you\xe2\x80\x98re NOT A BOT", 1, "bot_check", true},
        {"ERROR: [youtube] abc: This live event will begin in 3 hours.", 1, "live_stream", false},
        {"ERROR: [youtube] abc: Premieres in 5 hours", 1, "live_stream", false},
        {"ERROR: [youtube] abc: abc is live", 1, "live_stream", false},
        {"ERROR: [youtube] abc: Unable to download webpage: HTTP Error 429: Too Many Requests", 1, "rate_limited", true},
        {"ERROR: [youtube] abc: Unable to download API page: <urlopen error [Errno -3] Temporary failure in name resolution>", 1,
         "network_error", true},
        {"ERROR: Unable to download webpage: The read operation timed out", 1, "network_error", true},
        {"ERROR: [Errno 104] Connection reset by peer", 1, "network_error", true},
        {"socket.gaierror: getaddrinfo failed", 1, "network_error", true},
        {"ERROR: Unsupported URL: https://example.com/", 1, "invalid_url", false},
        {"ERROR: [generic] Unable to download webpage: HTTP Error 404: File not found (caused by <HTTPError 404: 'File not "
         "found'>)",
         1, "video_unavailable", false},
        {"ERROR: [generic] Unable to download webpage: HTTP Error 410: Gone", 1, "video_unavailable", false},
        {"ERROR: [generic] Unable to download webpage: HTTP Error 503: Service Unavailable", 1, "network_error", true},
        {"ERROR: [youtube] abc: Requested format is not available. Use --list-formats for a list of available formats", 1,
         "format_unavailable", false},
        {"ERROR: [youtube] abc: The uploader has not made this video available in your country", 1, "video_unavailable", false},
        {"Traceback (most recent call last):\n  KeyError: 'streamingData'", 1, "ytdlp_failed", true},
        {"", -11, "ytdlp_failed", true},
        {NULL, 2, "ytdlp_failed", true},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *code = NULL, *msg = NULL;
        bool transient = !cases[i].transient;
        gw_ytdlp_classify_failure(cases[i].stderr_text, cases[i].exit_code, &code, &msg, &transient);
        if (code == NULL || strcmp(code, cases[i].code) != 0)
            fprintf(stderr, "classify case %zu\n", i);
        CHECK_STR(code, cases[i].code);
        CHECK_INT(transient, cases[i].transient);
        /* user-facing and never a copy of stderr */
        CHECK(msg != NULL && strlen(msg) > 20 && strstr(msg, "ERROR") == NULL && strstr(msg, "abc") == NULL);
    }
    gw_ytdlp_classify_failure("x", 1, NULL, NULL, NULL);
}

/* --- against the stand-in ---------------------------------------------------------------------------------------------- */

/* Runs argv (no shell) with stdout/stderr to files; returns the wait status, or -1 when it could not start. */
static int run(char **argv, const char *out_path, const char *err_path)
{
    posix_spawn_file_actions_t fa;
    pid_t pid;
    int status;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    posix_spawn_file_actions_addopen(&fa, 2, err_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    int r = posix_spawn(&pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (r != 0 || waitpid(pid, &status, 0) != pid)
        return -1;
    return status;
}

typedef struct st_fake_result_t {
    int status;
    char *out, *err;
    size_t out_len;
} fake_result_t;

static fake_result_t fake_fetch(const char *fake, const char *dir, const char *id)
{
    char url[128], out[PATH_MAX], err[PATH_MAX];
    fake_result_t res = {0};
    snprintf(url, sizeof(url), "https://www.youtube.com/watch?v=%s", id);
    snprintf(out, sizeof(out), "%s.out", dir);
    snprintf(err, sizeof(err), "%s.err", dir);
    char **argv = gw_ytdlp_argv_fetch(fake, url, dir, NULL);
    res.status = run(argv, out, err);
    gw_argv_free(argv);
    res.out = read_all(out, &res.out_len);
    res.err = read_all(err, NULL);
    unlink(out);
    unlink(err);
    return res;
}

static void fake_free(fake_result_t *r)
{
    free(r->out);
    free(r->err);
}

/* The whole fetch path against tests/standins/fake-yt-dlp: argv accepted, -J parsed, subtitle chosen. */
static void fake_expect_transcript(const char *fake, const char *id, const char *source, bool automatic, double duration)
{
    char *dir = make_dir();
    fake_result_t r = fake_fetch(fake, dir, id);
    gw_video_meta_t m;
    gw_transcript_t t;
    const char *code;
    CHECK(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0);
    CHECK_INT(meta_from_text(r.out, r.out_len, &m, &code), 0);
    CHECK_STR(m.id, id);
    CHECK(m.duration == duration);
    CHECK_INT(gw_ytdlp_check_meta(&m, &code, NULL), 0);
    CHECK_INT(transcript_from_text(dir, &m, NULL, r.out, &t, &code), 0);
    CHECK_STR(t.source, source);
    CHECK_INT(t.automatic, automatic);
    CHECK_STR(t.language, "en");
    /* rolling captions come out once */
    for (size_t i = 1; i < t.nsegments; i++)
        CHECK(strcmp(t.segments[i].text, t.segments[i - 1].text) != 0);
    gw_transcript_free(&t);
    gw_video_meta_free(&m);
    fake_free(&r);
    rm_rf(dir);
    free(dir);
}

static void fake_expect_failure(const char *fake, const char *id, const char *expect_code)
{
    char *dir = make_dir();
    fake_result_t r = fake_fetch(fake, dir, id);
    const char *code, *msg;
    bool transient;
    CHECK(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 1);
    gw_ytdlp_classify_failure(r.err, WEXITSTATUS(r.status), &code, &msg, &transient);
    CHECK_STR(code, expect_code);
    fake_free(&r);
    rm_rf(dir);
    free(dir);
}

static void test_fake_ytdlp(void)
{
    char fake[PATH_MAX], logp[PATH_MAX];
    snprintf(fake, sizeof(fake), "%s/standins/fake-yt-dlp", src_dir);
    char *dir = make_dir();
    snprintf(logp, sizeof(logp), "%s.log", dir);
    setenv("FAKE_YTDLP_LOG", logp, 1);

    /* python3 present? */
    fake_result_t probe = fake_fetch(fake, dir, "ok000000000");
    bool ok = probe.status != -1 && WIFEXITED(probe.status) && WEXITSTATUS(probe.status) != 127;
    fake_free(&probe);
    rm_rf(dir);
    free(dir);
    if (!ok) {
        printf("skipping fake-yt-dlp checks (cannot run %s)\n", fake);
        unsetenv("FAKE_YTDLP_LOG");
        return;
    }
    fake_expect_transcript(fake, "ok000000001", "json3", false, 212);
    fake_expect_transcript(fake, "vtt_only001", "vtt", false, 212);
    fake_expect_transcript(fake, "auto_only01", "vtt", true, 212);
    fake_expect_transcript(fake, "no_duration", "json3", false, -1);
    fake_expect_failure(fake, "private0001", "private_video");
    fake_expect_failure(fake, "unavailable", "video_unavailable");
    fake_expect_failure(fake, "age00000001", "age_restricted");
    fake_expect_failure(fake, "members0001", "members_only");
    fake_expect_failure(fake, "bot_check01", "bot_check");
    fake_expect_failure(fake, "ratelimit01", "rate_limited");
    fake_expect_failure(fake, "upcoming001", "live_stream");
    fake_expect_failure(fake, "network0001", "network_error");

    /* no subtitles / no file / garbage / live */
    const char *ids[] = {"no_subs0001", "nofile00001", "garbage0001", "live0000001"};
    for (int i = 0; i < 4; i++) {
        dir = make_dir();
        fake_result_t r = fake_fetch(fake, dir, ids[i]);
        gw_video_meta_t m;
        gw_transcript_t t;
        const char *code;
        CHECK(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0);
        int pr = meta_from_text(r.out, r.out_len, &m, &code);
        CHECK_INT(pr, i == 2 ? -1 : 0);
        if (i == 3)
            CHECK_INT(gw_ytdlp_check_meta(&m, &code, NULL), -1);
        CHECK_INT(transcript_from_text(dir, pr == 0 ? &m : NULL, NULL, r.out, &t, &code), -1);
        CHECK_STR(code, "no_transcript");
        gw_video_meta_free(&m);
        fake_free(&r);
        rm_rf(dir);
        free(dir);
    }

    /* the stand-in refuses a URL not preceded by "--", like a real usage error */
    char *bad_argv[] = {fake, (char *)"-J", (char *)"https://youtu.be/ok000000001", NULL};
    CHECK_INT(run(bad_argv, "/dev/null", "/dev/null") >> 8, 2);

    /* download run writes video.mp4 */
    dir = make_dir();
    char *fmt480 = gw_ytdlp_video_format(0);
    char **argv = gw_ytdlp_argv_media(fake, CANON, dir, "video", fmt480, 1000000, NULL), path[PATH_MAX];
    free(fmt480);
    int st = run(argv, "/dev/null", "/dev/null");
    gw_argv_free(argv);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    snprintf(path, sizeof(path), "%s/video.mp4", dir);
    struct stat sb;
    CHECK(stat(path, &sb) == 0 && sb.st_size > 0);
    rm_rf(dir);
    free(dir);

    /* every logged run had "--" right before the URL and no shell as parent (the bad run is the exception) */
    char *log = read_all(logp, NULL);
    int runs = 0, with_dashes = 0;
    for (char *line = log, *next; line != NULL && *line != '\0'; line = next) {
        next = strchr(line, '\n');
        if (next != NULL)
            *next++ = '\0';
        json_t *o = json_loads(line, 0, NULL), *a = json_object_get(o, "argv");
        size_t n = json_array_size(a);
        runs++;
        with_dashes += n >= 2 && strcmp(json_string_value(json_array_get(a, n - 2)), "--") == 0;
        const char *parent = json_string_value(json_object_get(o, "parent"));
        CHECK(parent != NULL && strcmp(parent, "sh") != 0 && strcmp(parent, "bash") != 0 && strcmp(parent, "dash") != 0);
        json_decref(o);
    }
    CHECK(runs >= 19);
    CHECK_INT(with_dashes, runs - 1);
    free(log);
    unlink(logp);
    unsetenv("FAKE_YTDLP_LOG");
}

/* Cues of thousands of lines, each repeating the previous cue: must stay fast and come out once. */
static void test_vtt_pathological(void)
{
    gw_buf_t b = {0};
    gw_buf_puts(&b, "WEBVTT\n\n");
    for (int cue = 0; cue < 50; cue++) {
        gw_buf_puts(&b, "00:00:01.000 --> 00:00:02.000\n");
        for (int line = 0; line < 2000; line++)
            gw_buf_puts(&b, line % 2 ? "same line\n" : "<c>other</c> &amp; line\n");
        gw_buf_puts(&b, "\n");
    }
    gw_transcript_t t;
    CHECK_INT(gw_parse_vtt(b.data, b.len, &t), 0);
    CHECK_INT(t.nsegments, 1);
    gw_transcript_free(&t);
    gw_buf_free(&b);
}

/* Deterministic mutations of every fixture through every parser: no crash, no leak, valid UTF-8 out. */
static void fuzz_one(const char *buf, size_t len)
{
    gw_transcript_t t;
    gw_video_meta_t m;
    const char *code;
    int (*parsers[])(const char *, size_t, gw_transcript_t *) = {gw_parse_json3, gw_parse_vtt, gw_parse_srt};
    for (int p = 0; p < 3; p++) {
        if (parsers[p](buf, len, &t) == 0) {
            for (size_t i = 0; i < t.nsegments; i++) {
                json_t *js = json_string(t.segments[i].text);
                if (js == NULL || t.segments[i].text[0] == '\0' || (i > 0 && t.segments[i].start_ms < t.segments[i - 1].start_ms))
                    CHECK(!"bad segment");
                json_decref(js);
            }
        }
        gw_transcript_free(&t);
    }
    if (meta_from_text(buf, len, &m, &code) == 0)
        gw_ytdlp_check_meta(&m, &code, NULL);
    gw_video_meta_free(&m);
    char id[12], *canon;
    size_t ulen = len < 3000 ? len : 3000;
    if (gw_url_normalize_n(buf, ulen, NULL, id, &canon, &code, NULL) == 0)
        free(canon);
}

static void test_fuzz_smoke(void)
{
    static const char *const names[] = {"manual.json3", "quirks.vtt", "rolling.vtt", "sample.srt", "meta_ok.json", NULL};
    static const char alphabet[] = "<>&;#:.,-\n\r \"{}[]0123456789\xc3\xa9\xff\x00";
    unsigned seed = 12345;
    int runs = 0;
    for (int f = 0; names[f] != NULL; f++) {
        size_t len;
        char *orig = fixture(names[f], &len);
        if (orig == NULL)
            continue;
        char *buf = malloc(len + 1);
        for (int iter = 0; iter < 400; iter++, runs++) {
            memcpy(buf, orig, len);
            size_t n = len;
            for (int k = 0; k < 1 + iter % 8; k++) {
                seed = seed * 1103515245u + 12345u;
                size_t pos = (seed >> 8) % n;
                buf[pos] = alphabet[(seed >> 20) % (sizeof(alphabet) - 1)];
            }
            if (iter % 5 == 0)
                n = (seed >> 4) % (len + 1); /* truncation */
            fuzz_one(buf, n);
        }
        free(buf);
        free(orig);
    }
    CHECK(runs >= 2000);
}

int main(void)
{
    init_src_dir();
    test_argv();
    test_meta();
    test_check_meta();
    test_json3();
    test_vtt();
    test_srt();
    test_vtt_pathological();
    test_fuzz_smoke();
    test_load_transcript();
    test_classify();
    test_fake_ytdlp();
    return check_report();
}
