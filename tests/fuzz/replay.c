/* Runs a fuzz target's LLVMFuzzerTestOneInput over files and directories given on the command line, without
 * libFuzzer: the committed corpora (and any crash inputs added to them) replay in the ordinary test suite, under
 * ASan+UBSan when that is how the suite is built. Each input runs in its own child process, so one that breaks an
 * invariant (abort), crashes or leaks (LeakSanitizer's exit code) is counted and named, and the others still run. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct st_replay_count_t {
    int passed, failed, unreadable;
} replay_count_t;

static uint8_t *read_file(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    struct stat st;
    uint8_t *buf = NULL;
    if (fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode)) {
        *size = (size_t)st.st_size;
        buf = malloc(*size ? *size : 1);
        if (buf != NULL && fread(buf, 1, *size, f) != *size) {
            free(buf);
            buf = NULL;
        }
    }
    fclose(f);
    return buf;
}

/* The child exits through exit(), not _exit(): LeakSanitizer checks at exit. */
static void run_file(const char *path, replay_count_t *c)
{
    size_t n = 0;
    uint8_t *buf = read_file(path, &n);
    if (buf == NULL) {
        fprintf(stderr, "cannot read %s\n", path);
        c->unreadable++;
        return;
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        exit(2);
    }
    if (pid == 0) {
        LLVMFuzzerTestOneInput(buf, n);
        free(buf);
        exit(0);
    }
    free(buf);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0)
        ;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        c->passed++;
    } else {
        c->failed++;
        if (WIFSIGNALED(status))
            fprintf(stderr, "FAILED %s: killed by signal %d\n", path, WTERMSIG(status));
        else
            fprintf(stderr, "FAILED %s: exit status %d\n", path, WEXITSTATUS(status));
    }
}

static int skip_hidden(const struct dirent *e)
{
    return e->d_name[0] != '.';
}

int main(int argc, char **argv)
{
    replay_count_t c = {0, 0, 0};
    for (int i = 1; i < argc; i++) {
        struct dirent **names;
        int n = scandir(argv[i], &names, skip_hidden, alphasort); /* sorted: the same order on every machine */
        if (n < 0) {
            run_file(argv[i], &c);
            continue;
        }
        for (int k = 0; k < n; k++) {
            char path[4096];
            snprintf(path, sizeof(path), "%s/%s", argv[i], names[k]->d_name);
            run_file(path, &c);
            free(names[k]);
        }
        free(names);
    }
    int total = c.passed + c.failed + c.unreadable;
    printf("%d inputs replayed, %d passed, %d failed, %d unreadable\n", total, c.passed, c.failed, c.unreadable);
    return total > 0 && c.failed == 0 && c.unreadable == 0 ? 0 : 1;
}
