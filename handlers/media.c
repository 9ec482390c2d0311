#define _GNU_SOURCE /* nftw */
#include "handlers/media.h"
#include <dirent.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static bool unfinished(const char *name)
{
    size_t n = strlen(name);
    return (n > 5 && strcmp(name + n - 5, ".part") == 0) || (n > 5 && strcmp(name + n - 5, ".ytdl") == 0) ||
           strstr(name, ".temp.") != NULL || strstr(name, ".part-") != NULL;
}

int gw_media_find(const char *dir, const char *stem, char *out, size_t outlen, uint64_t *size)
{
    DIR *d = opendir(dir);
    size_t sl = strlen(stem);
    int rc = -1;
    if (d == NULL)
        return -1;
    for (struct dirent *e; rc != 0 && (e = readdir(d)) != NULL;) {
        struct stat sb;
        if (strncmp(e->d_name, stem, sl) != 0 || e->d_name[sl] != '.' || e->d_name[sl + 1] == '\0' || unfinished(e->d_name))
            continue;
        if ((size_t)snprintf(out, outlen, "%s/%s", dir, e->d_name) >= outlen || stat(out, &sb) != 0 || !S_ISREG(sb.st_mode))
            continue;
        *size = (uint64_t)sb.st_size;
        rc = 0;
    }
    closedir(d);
    return rc;
}

char **gw_media_argv_audio(const char *ffmpeg_path, const char *in, const char *out)
{
    const char *items[] = {ffmpeg_path != NULL ? ffmpeg_path : "ffmpeg",
                           "-nostdin",
                           "-hide_banner",
                           "-loglevel",
                           "error",
                           "-y",
                           "-i",
                           in,
                           "-vn",
                           "-map",
                           "0:a:0",
                           "-ac",
                           "1",
                           "-ar",
                           "16000",
                           "-c:a",
                           "libopus",
                           "-b:a",
                           "24k",
                           "-application",
                           "voip",
                           out};
    size_t n = sizeof(items) / sizeof(items[0]);
    char **argv = calloc(n + 1, sizeof(char *));
    if (argv == NULL)
        abort();
    for (size_t i = 0; i < n; i++)
        if ((argv[i] = strdup(items[i])) == NULL)
            abort();
    return argv;
}

int gw_media_scratch_job(const char *name, char job_id[37])
{
    static const char hex[] = "0123456789abcdefABCDEF";
    if (strncmp(name, "glint-", 6) != 0 || strlen(name) < 6 + 36 + 1 || name[6 + 36] != '-')
        return -1;
    for (int i = 0; i < 36; i++) {
        char c = name[6 + i];
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? c != '-' : strchr(hex, c) == NULL || c == '\0')
            return -1;
    }
    memcpy(job_id, name + 6, 36);
    job_id[36] = '\0';
    return 0;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    remove(path); /* best effort: keep removing the rest */
    return 0;
}

void gw_media_rmtree(const char *path)
{
    nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}
