/* Deep mode's pure parts: upload chunk planning, mime types, poll backoff (handlers/upload), scratch-dir and media
 * helpers (handlers/media), the download format/argv (handlers/ytdlp) and the file part with a videoMetadata clip or
 * an audio track (handlers/gemini). */
#include "check.h"
#include "handlers/gemini.h"
#include "handlers/media.h"
#include "handlers/upload.h"
#include "handlers/ytdlp.h"
#include <limits.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#define MiB (1024ull * 1024ull)

static void test_plan(void)
{
    uint64_t len;
    bool final;
    gw_upload_plan(25 * MiB, 0, 8 * MiB, &len, &final);
    CHECK(len == 8 * MiB && !final);
    gw_upload_plan(25 * MiB, 24 * MiB, 8 * MiB, &len, &final);
    CHECK(len == 1 * MiB && final);
    gw_upload_plan(16 * MiB, 8 * MiB, 8 * MiB, &len, &final); /* exactly one chunk left: it finalizes */
    CHECK(len == 8 * MiB && final);
    gw_upload_plan(25 * MiB, 0, 0, &len, &final); /* 0 = one request */
    CHECK(len == 25 * MiB && final);
    gw_upload_plan(25 * MiB, 0, 5 * MiB, &len, &final); /* under one granule: one request */
    CHECK(len == 25 * MiB && final);
    gw_upload_plan(40 * MiB, 0, 20 * MiB, &len, &final); /* rounded down to 16 MiB */
    CHECK(len == 16 * MiB && !final);
    gw_upload_plan(10, 10, 8 * MiB, &len, &final); /* nothing left: an empty finalize */
    CHECK(len == 0 && final);
    gw_upload_plan(0, 0, 8 * MiB, &len, &final);
    CHECK(len == 0 && final);
}

static void test_mime_and_backoff(void)
{
    CHECK_STR(gw_upload_mime_for_path("/w/video.mp4"), "video/mp4");
    CHECK_STR(gw_upload_mime_for_path("/w/video.WEBM"), "video/webm");
    CHECK_STR(gw_upload_mime_for_path("/w/audio.ogg"), "audio/ogg");
    CHECK_STR(gw_upload_mime_for_path("/w/x.bin"), "application/octet-stream");
    CHECK_STR(gw_upload_mime_for_path("/w/noext"), "application/octet-stream");
    CHECK_INT(gw_upload_poll_delay_ms(0), 500);
    CHECK_INT(gw_upload_poll_delay_ms(1), 1000);
    CHECK_INT(gw_upload_poll_delay_ms(3), 4000);
    CHECK_INT(gw_upload_poll_delay_ms(4), 5000);
    CHECK_INT(gw_upload_poll_delay_ms(100), 5000);
}

static void touch(const char *dir, const char *name, size_t size)
{
    char p[PATH_MAX];
    snprintf(p, sizeof(p), "%s/%s", dir, name);
    FILE *f = fopen(p, "w");
    for (size_t i = 0; f != NULL && i < size; i++)
        fputc('x', f);
    if (f != NULL)
        fclose(f);
}

static void test_media(void)
{
    char dir[] = "/tmp/gw-test-media-XXXXXX", path[PATH_MAX];
    uint64_t size = 0;
    CHECK(mkdtemp(dir) != NULL);
    CHECK(gw_media_find(dir, "video", path, sizeof(path), &size) == -1);
    touch(dir, "video.mp4.part", 10);
    touch(dir, "video.f137.mp4.ytdl", 10);
    touch(dir, "videos.mp4", 10);
    touch(dir, "sub.en.json3", 10);
    CHECK(gw_media_find(dir, "video", path, sizeof(path), &size) == -1); /* only unfinished or other files */
    touch(dir, "video.webm", 1234);
    CHECK(gw_media_find(dir, "video", path, sizeof(path), &size) == 0 && size == 1234);
    CHECK(strlen(path) > 11 && strcmp(path + strlen(path) - 11, "/video.webm") == 0);
    gw_media_rmtree(dir);
    struct stat sb;
    CHECK(stat(dir, &sb) != 0);

    char **a = gw_media_argv_audio(NULL, "/w/audio-src.m4a", "/w/audio.ogg");
    size_t n = 0;
    while (a[n] != NULL)
        n++;
    CHECK_STR(a[0], "ffmpeg");
    CHECK_STR(a[n - 1], "/w/audio.ogg");
    bool mono = false, in = false;
    for (size_t i = 0; i + 1 < n; i++) {
        mono |= strcmp(a[i], "-ac") == 0 && strcmp(a[i + 1], "1") == 0;
        in |= strcmp(a[i], "-i") == 0 && strcmp(a[i + 1], "/w/audio-src.m4a") == 0;
    }
    CHECK(mono && in);
    gw_argv_free(a);

    char id[37];
    CHECK(gw_media_scratch_job("glint-0b6e7c1e-3d0c-4c59-9a4e-8a1e2f3b4c5d-Ab12Cd", id) == 0);
    CHECK_STR(id, "0b6e7c1e-3d0c-4c59-9a4e-8a1e2f3b4c5d");
    CHECK(gw_media_scratch_job("glint-0b6e7c1e-3d0c-4c59-9a4e-8a1e2f3b4c5d", id) == -1); /* no suffix */
    CHECK(gw_media_scratch_job("glint-0b6e7c1e_3d0c-4c59-9a4e-8a1e2f3b4c5d-Ab12Cd", id) == -1);
    CHECK(gw_media_scratch_job("glint-zb6e7c1e-3d0c-4c59-9a4e-8a1e2f3b4c5d-Ab12Cd", id) == -1);
    CHECK(gw_media_scratch_job("other-0b6e7c1e-3d0c-4c59-9a4e-8a1e2f3b4c5d-Ab12Cd", id) == -1);
    CHECK(gw_media_scratch_job("glint-pipe-x", id) == -1);
}

static void test_download_argv(void)
{
    char *f = gw_ytdlp_video_format(360);
    CHECK_STR(f, "bv*[height<=360]+ba/b[height<=360]/wv*+ba/w");
    free(f);
    f = gw_ytdlp_video_format(0);
    CHECK(strstr(f, "height<=480") != NULL);
    char **a = gw_ytdlp_argv_media("yt", "https://www.youtube.com/watch?v=ok000000000", "/w%d", "audio-src", GW_YTDLP_AUDIO_FORMAT,
                                   5000, NULL);
    size_t n = 0;
    while (a[n] != NULL)
        n++;
    CHECK_STR(a[n - 2], "--");
    CHECK_STR(a[n - 1], "https://www.youtube.com/watch?v=ok000000000");
    bool fmt = false, out = false, cap = false;
    for (size_t i = 0; i + 1 < n; i++) {
        fmt |= strcmp(a[i], "-f") == 0 && strcmp(a[i + 1], "wa/ba/w") == 0;
        out |= strcmp(a[i], "-o") == 0 && strcmp(a[i + 1], "/w%%d/audio-src.%(ext)s") == 0; /* '%' escaped */
        cap |= strcmp(a[i], "--max-filesize") == 0 && strcmp(a[i + 1], "5000") == 0;
    }
    CHECK(fmt && out && cap);
    gw_argv_free(a);
    free(f);
    CHECK(gw_ytdlp_argv_media(NULL, NULL, "/w", "video", "b", 0, NULL) == NULL);
}

static json_t *first_part(json_t *req)
{
    return json_array_get(json_object_get(json_array_get(json_object_get(req, "contents"), 0), "parts"), 0);
}

static void test_file_parts(void)
{
    gw_video_meta_t meta = {0};
    meta.id = (char *)"ok000000000";
    meta.title = (char *)"A talk";
    meta.duration = 5400;
    gw_gemini_opts_t o;
    gw_gemini_opts_init(&o, true);
    o.file_uri = "https://generativelanguage.googleapis.com/v1beta/files/abc";
    o.clip_start_s = 2700;
    o.clip_end_s = 5400;
    json_t *req = gw_gemini_build_request(&meta, NULL, 0, 0, &o), *p = first_part(req);
    json_t *vm = json_object_get(p, "videoMetadata");
    CHECK_STR(json_string_value(json_object_get(vm, "startOffset")), "2700s");
    CHECK_STR(json_string_value(json_object_get(vm, "endOffset")), "5400s");
    CHECK_STR(json_string_value(json_object_get(json_object_get(p, "fileData"), "fileUri")), o.file_uri);
    CHECK_STR(json_string_value(json_object_get(json_object_get(req, "generationConfig"), "mediaResolution")),
              "MEDIA_RESOLUTION_LOW");
    json_decref(req);

    o.clip_start_s = o.clip_end_s = 0; /* whole video: no videoMetadata */
    req = gw_gemini_build_request(&meta, NULL, 0, 0, &o);
    CHECK(json_object_get(first_part(req), "videoMetadata") == NULL);
    json_decref(req);

    gw_gemini_opts_init(&o, false); /* standard with an audio track */
    o.file_uri = "https://generativelanguage.googleapis.com/v1beta/files/snd";
    o.file_mime = "audio/ogg";
    req = gw_gemini_build_request(&meta, NULL, 0, 0, &o);
    p = first_part(req);
    CHECK_STR(json_string_value(json_object_get(json_object_get(p, "fileData"), "mimeType")), "audio/ogg");
    char *text = json_dumps(req, 0);
    CHECK(strstr(text, "audio") != NULL && strstr(text, "visualAudit") == NULL && strstr(text, "mediaResolution") == NULL);
    free(text);
    json_decref(req);
}

int main(void)
{
    test_plan();
    test_mime_and_backoff();
    test_media();
    test_download_argv();
    test_file_parts();
    return check_report();
}
