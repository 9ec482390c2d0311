#define _GNU_SOURCE
#include "check.h"
#include "handlers/localmedia.h"
#include "handlers/ytdlp.h"
#include <fcntl.h>
#include <limits.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static char base[PATH_MAX / 4]; /* the temp tree, real path */

static void put(const char *rel, const char *body)
{
    char p[PATH_MAX];
    snprintf(p, sizeof(p), "%s/%s", base, rel);
    FILE *f = fopen(p, "wb");
    if (f == NULL) {
        perror(p);
        exit(1);
    }
    fputs(body, f);
    fclose(f);
}

static void dir(const char *rel)
{
    char p[PATH_MAX];
    snprintf(p, sizeof(p), "%s/%s", base, rel);
    mkdir(p, 0700);
}

static void link_(const char *target, const char *rel)
{
    char p[PATH_MAX];
    snprintf(p, sizeof(p), "%s/%s", base, rel);
    if (symlink(target, p) != 0)
        perror(p);
}

static const char *vtt = "WEBVTT\n\n00:00:00.000 --> 00:00:02.000\nHello from the sidecar.\n\n"
                         "00:00:02.000 --> 00:00:04.000\nSecond cue here.\n";
static const char *srt = "1\n00:00:00,000 --> 00:00:03,000\nSubrip line one.\n\n2\n00:00:03,000 --> 00:00:05,000\nLine two.\n";

static void build_tree(void)
{
    char tmpl[] = "/tmp/gw-localmedia-XXXXXX";
    if (mkdtemp(tmpl) == NULL || realpath(tmpl, base) == NULL) {
        perror("mkdtemp");
        exit(1);
    }
    dir("media");
    dir("media/sub");
    dir("outside");
    dir("media-evil");
    put("media/a.mp4", "x");
    put("media/sub/b.mp4", "x");
    put("media/talk.mp4", "x");
    put("media/talk.vtt", vtt);
    put("media/lecture.mkv", "x");
    put("media/lecture.srt", srt);
    put("media/evil.mp4", "x");
    put("media/sp ace&odd.mp4", "x");
    put("outside/secret.mp4", "x");
    put("outside/stolen.vtt", vtt);
    put("media-evil/x.mp4", "x");
    link_("../outside/secret.mp4", "media/link_out");
    link_("a.mp4", "media/link_in");
    link_("../outside", "media/dirlink");
    link_("../outside/stolen.vtt", "media/evil.vtt");
    link_("media", "medialink");
    link_("/etc/passwd", "media/abs_out");
    char p[PATH_MAX];
    snprintf(p, sizeof(p), "%s/media/fifo", base);
    mkfifo(p, 0600);
}

static void rm_tree(void)
{
    char *argv[] = {"rm", "-rf", base, NULL};
    pid_t pid;
    int st;
    if (posix_spawnp(&pid, "rm", NULL, NULL, argv, environ) == 0)
        waitpid(pid, &st, 0);
}

/* Expects refusal with code, or success resolving to expect_rel under base. */
static void resolve_case(const char *url_fmt, const char *media_rel, const char *code, const char *expect_rel)
{
    char url[PATH_MAX], media[PATH_MAX], want[PATH_MAX];
    snprintf(url, sizeof(url), url_fmt, base);
    snprintf(media, sizeof(media), "%s/%s", base, media_rel);
    char *out = NULL;
    const char *c = NULL, *m = NULL;
    int rc = gw_localmedia_resolve(url, media, &out, &c, &m);
    if (code != NULL) {
        CHECK_INT(rc, -1);
        CHECK_STR(c, code);
        CHECK(m != NULL && *m != '\0');
        CHECK(out == NULL);
        if (rc == 0 || c == NULL || strcmp(c, code) != 0)
            fprintf(stderr, "  case: %s\n", url);
    } else {
        snprintf(want, sizeof(want), "%s/%s", base, expect_rel);
        CHECK_INT(rc, 0);
        CHECK_STR(out, want);
        if (rc != 0)
            fprintf(stderr, "  case: %s -> %s\n", url, c);
    }
    free(out);
}

static void test_resolve(void)
{
    /* accepted */
    resolve_case("%s/media/a.mp4", "media", NULL, "media/a.mp4");
    resolve_case("file://%s/media/a.mp4", "media", NULL, "media/a.mp4");
    resolve_case("file://localhost%s/media/sub/b.mp4", "media", NULL, "media/sub/b.mp4");
    resolve_case("file://%s/media/%%61.mp4", "media", NULL, "media/a.mp4");
    resolve_case("file://%s/media/sp%%20ace%%26odd.mp4", "media", NULL, "media/sp ace&odd.mp4");
    resolve_case("%s/media/link_in", "media", NULL, "media/a.mp4");          /* symlink staying inside */
    resolve_case("%s/medialink/a.mp4", "media", NULL, "media/a.mp4");        /* via a symlinked dir to the root */
    resolve_case("%s/media/a.mp4", "medialink", NULL, "media/a.mp4");        /* root itself given via a symlink */
    resolve_case("%s/media/a.mp4", "media/", NULL, "media/a.mp4");           /* trailing slash on the root */
    resolve_case("%s/media//sub///b.mp4", "media", NULL, "media/sub/b.mp4"); /* repeated slashes are harmless */
    /* outside, by symlink or by prefix */
    resolve_case("%s/media/link_out", "media", "path_not_allowed", NULL);
    resolve_case("%s/media/dirlink/secret.mp4", "media", "path_not_allowed", NULL);
    resolve_case("%s/media/abs_out", "media", "path_not_allowed", NULL);
    resolve_case("%s/media-evil/x.mp4", "media", "path_not_allowed", NULL);
    resolve_case("%s/outside/secret.mp4", "media", "path_not_allowed", NULL);
    resolve_case("%s/media", "media", "path_not_allowed", NULL);
    resolve_case("/etc/passwd", "media", "path_not_allowed", NULL);
    /* dot tricks, plain and encoded */
    resolve_case("%s/media/../outside/secret.mp4", "media", "invalid_path", NULL);
    resolve_case("%s/media/sub/../a.mp4", "media", "invalid_path", NULL);
    resolve_case("%s/media/./a.mp4", "media", "invalid_path", NULL);
    resolve_case("%s/media/..", "media", "invalid_path", NULL);
    resolve_case("file://%s/media/%%2e%%2e/outside/secret.mp4", "media", "invalid_path", NULL);
    resolve_case("file://%s/media/%%2E%%2E/outside/secret.mp4", "media", "invalid_path", NULL);
    resolve_case("file://%s/media/.%%2e/outside/secret.mp4", "media", "invalid_path", NULL);
    resolve_case("file://%s/media/..%%2Foutside%%2Fsecret.mp4", "media", "invalid_path", NULL);
    resolve_case("file://%s/media/..%%5Coutside", "media", "invalid_path", NULL);
    resolve_case("file://%s/media/a.mp4%%00.txt", "media", "invalid_path", NULL);
    resolve_case("file://%s/media/%%zz.mp4", "media", "invalid_path", NULL);
    resolve_case("file://%s/media/a.mp4%%", "media", "invalid_path", NULL);
    resolve_case("file://%s/media/%%0aa.mp4", "media", "invalid_path", NULL);
    resolve_case("%s/media/a\n.mp4", "media", "invalid_path", NULL);
    resolve_case("file://%s/media/a.mp4?x=1", "media", "invalid_path", NULL);
    resolve_case("file://%s/media/a.mp4#frag", "media", "invalid_path", NULL);
    resolve_case("file:%s/media/a.mp4", "media", "invalid_path", NULL);               /* file:/path (no authority) */
    resolve_case("file://evil.example%s/media/a.mp4", "media", "invalid_path", NULL); /* remote host */
    resolve_case("media/a.mp4%s", "media", "invalid_path", NULL);                     /* relative */
    /* not regular files, missing */
    resolve_case("%s/media/sub", "media", "not_a_file", NULL);
    resolve_case("%s/media/fifo", "media", "not_a_file", NULL);
    resolve_case("%s/media/nope.mp4", "media", "file_not_found", NULL);
    /* disabled */
    char *out = NULL;
    const char *c = NULL;
    CHECK_INT(gw_localmedia_resolve("/tmp/x.mp4", NULL, &out, &c, NULL), -1);
    CHECK_STR(c, "local_media_disabled");
    CHECK_INT(gw_localmedia_resolve("/tmp/x.mp4", "", &out, &c, NULL), -1);
    CHECK_STR(c, "local_media_disabled");
    resolve_case("%s/media/a.mp4", "not-mounted", "media_dir_unavailable", NULL);
    CHECK(out == NULL);
}

static void test_below_and_is_local(void)
{
    CHECK(gw_localmedia_below("/media/x", "/media"));
    CHECK(gw_localmedia_below("/media/x", "/media/"));
    CHECK(!gw_localmedia_below("/media-evil/x", "/media"));
    CHECK(!gw_localmedia_below("/mediax", "/media"));
    CHECK(!gw_localmedia_below("/media", "/media"));
    CHECK(!gw_localmedia_below("/media/", "/media"));
    CHECK(gw_localmedia_below("/etc/passwd", "/"));
    CHECK(!gw_localmedia_below("/", "/"));
    CHECK(gw_localmedia_is_local("file:///a"));
    CHECK(gw_localmedia_is_local("FILE:///a"));
    CHECK(gw_localmedia_is_local("/srv/a.mp4"));
    CHECK(!gw_localmedia_is_local("https://www.youtube.com/watch?v=dQw4w9WgXcQ"));
    CHECK(!gw_localmedia_is_local("-rf"));
    CHECK(!gw_localmedia_is_local(""));
    CHECK(!gw_localmedia_is_local(NULL));
}

static void test_sidecar(void)
{
    char media[PATH_MAX], root[PATH_MAX];
    gw_transcript_t t;
    snprintf(root, sizeof(root), "%s/media", base);
    snprintf(media, sizeof(media), "%s/media/talk.mp4", base);
    CHECK_INT(gw_localmedia_load_sidecar(media, root, &t), 0);
    CHECK_INT(t.nsegments, 2);
    CHECK_STR(t.nsegments ? t.segments[0].text : NULL, "Hello from the sidecar.");
    CHECK_INT(t.nsegments > 1 ? t.segments[1].start_ms : -1, 2000);
    CHECK_STR(t.source, "vtt");
    gw_transcript_free(&t);
    snprintf(media, sizeof(media), "%s/media/lecture.mkv", base);
    CHECK_INT(gw_localmedia_load_sidecar(media, root, &t), 0);
    CHECK_INT(t.nsegments, 2);
    CHECK_STR(t.source, "srt");
    CHECK_INT(t.nsegments > 1 ? t.segments[1].end_ms : -1, 5000);
    gw_transcript_free(&t);
    /* evil.vtt is a symlink to a file outside the media dir: not read */
    snprintf(media, sizeof(media), "%s/media/evil.mp4", base);
    CHECK_INT(gw_localmedia_load_sidecar(media, root, &t), -1);
    CHECK_INT(t.nsegments, 0);
    snprintf(media, sizeof(media), "%s/media/a.mp4", base);
    CHECK_INT(gw_localmedia_load_sidecar(media, root, &t), -1);
}

static const char *probe_json =
    "{\"streams\":[{\"index\":0,\"codec_name\":\"h264\",\"codec_type\":\"video\",\"duration\":\"61.0\"},"
    "{\"index\":1,\"codec_name\":\"aac\",\"codec_type\":\"audio\",\"tags\":{\"language\":\"eng\"}},"
    "{\"index\":2,\"codec_name\":\"hdmv_pgs_subtitle\",\"codec_type\":\"subtitle\"},"
    "{\"index\":3,\"codec_name\":\"mov_text\",\"codec_type\":\"subtitle\",\"tags\":{\"language\":\"ger\"}}],"
    "\"chapters\":[{\"id\":0,\"start_time\":\"0.000000\",\"end_time\":\"20.000000\",\"tags\":{\"title\":\"Intro\"}},"
    "{\"id\":1,\"start_time\":\"20.000000\",\"end_time\":\"61.500000\"}],"
    "\"format\":{\"filename\":\"/m/talk.mp4\",\"duration\":\"61.500000\",\"tags\":{\"TITLE\":\"A Talk\",\"artist\":\"Me\"}}}";

static void test_probe(void)
{
    gw_video_meta_t m;
    gw_probe_info_t info;
    const char *code = NULL;
    CHECK_INT(gw_localmedia_parse_probe(probe_json, strlen(probe_json), "/m/talk.mp4", &m, &info, &code), 0);
    CHECK_STR(m.title, "A Talk");
    CHECK_STR(m.id, "talk.mp4");
    CHECK_STR(m.channel, "Me");
    CHECK_STR(m.language, "en");
    CHECK(m.duration > 61.49 && m.duration < 61.51);
    CHECK_INT(m.nchapters, 2);
    CHECK_STR(m.nchapters > 0 ? m.chapters[0].title : NULL, "Intro");
    CHECK_STR(m.nchapters > 1 ? m.chapters[1].title : NULL, "Chapter 2");
    CHECK(m.nchapters > 1 && m.chapters[1].start == 20.0);
    CHECK_INT(info.subtitle_stream, 3); /* the bitmap stream 2 cannot become text */
    CHECK(info.has_video && info.has_audio);
    gw_video_meta_free(&m);

    const char *bare =
        "{\"streams\":[{\"index\":0,\"codec_type\":\"audio\",\"duration\":\"12.5\",\"tags\":{\"language\":\"und\"}}],"
        "\"format\":{\"filename\":\"x\"}}";
    CHECK_INT(gw_localmedia_parse_probe(bare, strlen(bare), "/m/my.talk.ogg", &m, &info, &code), 0);
    CHECK_STR(m.title, "my.talk");
    CHECK(m.language == NULL);
    CHECK(m.duration == 12.5);
    CHECK_INT(info.subtitle_stream, -1);
    CHECK(!info.has_video);
    gw_video_meta_free(&m);

    const char *empty = "{\"streams\":[],\"format\":{\"filename\":\"x\"}}";
    CHECK_INT(gw_localmedia_parse_probe(empty, strlen(empty), "/m/a", &m, &info, &code), -1);
    CHECK_STR(code, "bad_media");
    CHECK_INT(gw_localmedia_parse_probe("not json", 8, "/m/a", &m, &info, &code), -1);
    CHECK_INT(gw_localmedia_parse_probe("[]", 2, "/m/a", &m, &info, &code), -1);
}

static void test_argv(void)
{
    char **a = gw_localmedia_argv_probe(NULL, "/m/a b.mp4");
    const char *want[] = {
        "ffprobe", "-v",         "error", "-print_format", "json", "-show_format", "-show_streams", "-show_chapters",
        "--",      "/m/a b.mp4", NULL};
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        CHECK_STR(a[i] ? a[i] : "(end)", want[i] ? want[i] : "(end)");
    gw_argv_free(a);
    a = gw_localmedia_argv_extract_subs("/usr/bin/ffmpeg", "/m/a.mkv", 3, "/s/sub.vtt");
    CHECK_STR(a[0], "/usr/bin/ffmpeg");
    int i = 0;
    while (a[i] != NULL && strcmp(a[i], "-map") != 0)
        i++;
    CHECK_STR(a[i] ? a[i + 1] : NULL, "0:3");
    while (a[i + 1] != NULL)
        i++;
    CHECK_STR(a[i], "/s/sub.vtt");
    gw_argv_free(a);
}

static int run(char **argv, const char *out_path)
{
    posix_spawn_file_actions_t fa;
    pid_t pid;
    int status;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, out_path ? out_path : "/dev/null", O_WRONLY | O_CREAT | O_TRUNC, 0600);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    int r = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (r != 0 || waitpid(pid, &status, 0) != pid)
        return -1;
    return status;
}

/* The real tools: a clip with an embedded text subtitle stream goes through probe -> parse -> extract -> load. */
static void test_embedded_subtitles(void)
{
    char srt_path[PATH_MAX], mkv[PATH_MAX], json_path[PATH_MAX], vtt_out[PATH_MAX];
    snprintf(srt_path, sizeof(srt_path), "%s/outside/in.srt", base);
    snprintf(mkv, sizeof(mkv), "%s/media/embedded.mkv", base);
    snprintf(json_path, sizeof(json_path), "%s/outside/probe.json", base);
    snprintf(vtt_out, sizeof(vtt_out), "%s/outside/out.vtt", base);
    put("outside/in.srt", srt);
    char *mk[] = {
        "ffmpeg", "-nostdin",        "-v",           "error", "-y",   "-f", "lavfi", "-i",      "color=c=blue:s=64x48:d=5",
        "-i",     srt_path,          "-map",         "0",     "-map", "1",  "-c:v",  "libx264", "-c:s",
        "srt",    "-metadata:s:s:0", "language=eng", mkv,     NULL};
    CHECK_INT(run(mk, NULL), 0);
    char **probe = gw_localmedia_argv_probe(NULL, mkv);
    CHECK_INT(run(probe, json_path), 0);
    gw_argv_free(probe);
    FILE *f = fopen(json_path, "rb");
    char buf[65536];
    size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
    if (f)
        fclose(f);
    gw_video_meta_t m;
    gw_probe_info_t info;
    CHECK_INT(gw_localmedia_parse_probe(buf, n, mkv, &m, &info, NULL), 0);
    CHECK_INT(info.subtitle_stream, 1);
    CHECK(m.duration > 4.5 && m.duration < 5.5);
    CHECK_STR(m.title, "embedded");
    gw_video_meta_free(&m);
    char **ex = gw_localmedia_argv_extract_subs(NULL, mkv, info.subtitle_stream, vtt_out);
    CHECK_INT(run(ex, NULL), 0);
    gw_argv_free(ex);
    gw_transcript_t t;
    CHECK_INT(gw_localmedia_load_subtitle_file(vtt_out, &t), 0);
    CHECK_INT(t.nsegments, 2);
    CHECK_STR(t.nsegments ? t.segments[0].text : NULL, "Subrip line one.");
    gw_transcript_free(&t);
}

int main(void)
{
    build_tree();
    test_resolve();
    test_below_and_is_local();
    test_sidecar();
    test_probe();
    test_argv();
    test_embedded_subtitles();
    rm_tree();
    return check_report();
}
