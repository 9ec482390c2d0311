#include "check.h"
#include "reactor/log.h"
#include "reactor/proc.h"
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* /bin/sh -c appears only here, to produce output shapes; the module itself never uses a shell. */

static uv_loop_t loop;

typedef struct st_res_t {
    int calls;
    gw_proc_result_t r; /* copied; out/err duplicated */
} res_t;

static void on_done(gw_proc_t *p, const gw_proc_result_t *r, void *data)
{
    res_t *x = data;
    x->calls++;
    x->r = *r;
    x->r.out = malloc(r->out_len + 1);
    memcpy(x->r.out, r->out, r->out_len + 1);
    x->r.err = malloc(r->err_len + 1);
    memcpy(x->r.err, r->err, r->err_len + 1);
    CHECK(r->out[r->out_len] == '\0');
    CHECK(r->err[r->err_len] == '\0');
}

static void res_free(res_t *x)
{
    free(x->r.out);
    free(x->r.err);
}

static void wait_for(res_t *x)
{
    while (x->calls == 0)
        uv_run(&loop, UV_RUN_ONCE);
}

static gw_proc_t *spawn(res_t *x, const gw_proc_opts_t *o)
{
    gw_proc_t *p = gw_proc_spawn(&loop, o, on_done, x);
    CHECK(p != NULL);
    CHECK_INT(x->calls, 0); /* never synchronous */
    return p;
}

static void run(res_t *x, const char *const *argv)
{
    gw_proc_opts_t o = {.argv = argv};
    spawn(x, &o);
    wait_for(x);
}

static void test_echo(void)
{
    res_t x = {0};
    const char *argv[] = {"printf", "%s", "hello world", NULL};
    run(&x, argv);
    CHECK_INT(x.calls, 1);
    CHECK_INT(x.r.spawn_error, 0);
    CHECK_INT(x.r.exit_status, 0);
    CHECK_INT(x.r.term_signal, 0);
    CHECK_STR(x.r.out, "hello world");
    CHECK_INT(x.r.out_len, 11);
    CHECK_STR(x.r.err, "");
    CHECK(!x.r.out_truncated && !x.r.err_truncated && !x.r.timed_out && !x.r.killed);
    res_free(&x);
}

static void test_exit_and_stderr(void)
{
    res_t x = {0};
    const char *argv[] = {"/bin/sh", "-c", "printf out; printf 'some error' >&2; exit 3", NULL};
    run(&x, argv);
    CHECK_INT(x.r.exit_status, 3);
    CHECK_INT(x.r.term_signal, 0);
    CHECK_STR(x.r.out, "out");
    CHECK_STR(x.r.err, "some error");
    res_free(&x);

    res_t y = {0};
    const char *argv2[] = {"false", NULL};
    run(&y, argv2);
    CHECK_INT(y.r.exit_status, 1);
    res_free(&y);
}

static void test_literal_argv(void)
{
    res_t x = {0};
    const char *argv[] = {"printf", "%s|%s", "$(id);rm -rf x", "a  b\t'\"`c`\"' > /tmp/x; *", NULL};
    run(&x, argv);
    CHECK_STR(x.r.out, "$(id);rm -rf x|a  b\t'\"`c`\"' > /tmp/x; *");
    res_free(&x);
}

static void test_env_cwd(void)
{
    res_t x = {0};
    const char *argv[] = {"/bin/sh", "-c", "printf '%s %s %s' \"$FOO\" \"$(pwd)\" \"${HOME-unset}\"", NULL};
    const char *env[] = {"FOO=bar baz", "PATH=/usr/bin:/bin", NULL};
    gw_proc_opts_t o = {.argv = argv, .env = env, .cwd = "/tmp"};
    spawn(&x, &o);
    wait_for(&x);
    CHECK_STR(x.r.out, "bar baz /tmp unset");
    res_free(&x);
}

static void test_truncation(void)
{
    res_t x = {0};
    /* 8 MB on stdout, 2 MB on stderr: far beyond the pipe buffer, so a child blocked on a full pipe would hang. */
    const char *argv[] = {"/bin/sh", "-c", "head -c 2000000 /dev/zero >&2; yes x | head -c 8000000; exit 7", NULL};
    gw_proc_opts_t o = {.argv = argv, .out_cap = 1000, .timeout_ms = 20000};
    spawn(&x, &o);
    wait_for(&x);
    CHECK_INT(x.r.exit_status, 7);
    CHECK(!x.r.timed_out);
    CHECK_INT(x.r.out_len, 1000);
    CHECK(x.r.out_truncated);
    CHECK(strncmp(x.r.out, "x\nx\n", 4) == 0);
    CHECK_INT(x.r.err_len, 64 * 1024); /* default stderr cap */
    CHECK(x.r.err_truncated);
    res_free(&x);

    /* exactly at the cap is not truncated */
    res_t y = {0};
    const char *argv2[] = {"printf", "12345", NULL};
    gw_proc_opts_t o2 = {.argv = argv2, .out_cap = 5};
    spawn(&y, &o2);
    wait_for(&y);
    CHECK_STR(y.r.out, "12345");
    CHECK(!y.r.out_truncated);
    res_free(&y);

    /* a default-capped megabyte arrives whole */
    res_t z = {0};
    const char *argv3[] = {"head", "-c", "1048576", "/dev/zero", NULL};
    run(&z, argv3);
    CHECK_INT(z.r.out_len, 1048576);
    CHECK(!z.r.out_truncated);
    res_free(&z);
}

/* true when the pid is gone or a zombie (reparented orphans may wait for a reaper) */
static bool pid_dead(long pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return true;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *rp = strrchr(buf, ')');
    return rp == NULL || rp[2] == 'Z' || rp[2] == 'X';
}

static void test_timeout(void)
{
    res_t x = {0};
    const char *argv[] = {"sleep", "30", NULL};
    gw_proc_opts_t o = {.argv = argv, .timeout_ms = 200};
    spawn(&x, &o);
    wait_for(&x);
    CHECK(x.r.timed_out);
    CHECK(!x.r.killed);
    CHECK_INT(x.r.term_signal, SIGTERM);
    CHECK(x.r.elapsed_ms >= 150 && x.r.elapsed_ms < 3000);
    res_free(&x);

    /* the grandchild holds stdout: EOF only comes once it dies too */
    res_t y = {0};
    const char *argv2[] = {"/bin/sh", "-c", "sleep 30 & echo $!; wait", NULL};
    gw_proc_opts_t o2 = {.argv = argv2, .timeout_ms = 300};
    spawn(&y, &o2);
    wait_for(&y);
    CHECK(y.r.timed_out);
    CHECK(y.r.elapsed_ms < 3000);
    long gpid = strtol(y.r.out, NULL, 10);
    CHECK(gpid > 0);
    for (int i = 0; i < 100 && gpid > 0 && !pid_dead(gpid); i++)
        usleep(10000);
    CHECK(gpid > 0 && pid_dead(gpid));
    res_free(&y);

    /* SIGTERM ignored: SIGKILL after the grace period */
    res_t z = {0};
    const char *argv3[] = {"/bin/sh", "-c", "trap '' TERM; sleep 30", NULL};
    gw_proc_opts_t o3 = {.argv = argv3, .timeout_ms = 200, .kill_grace_ms = 300};
    spawn(&z, &o3);
    wait_for(&z);
    CHECK(z.r.timed_out);
    CHECK_INT(z.r.term_signal, SIGKILL);
    CHECK(z.r.elapsed_ms >= 450 && z.r.elapsed_ms < 3000);
    res_free(&z);
}

/* The leader exits but a background child it left keeps stdout open: killed after the grace period. */
static void test_leader_exits_first(void)
{
    res_t x = {0};
    const char *argv[] = {"/bin/sh", "-c", "sleep 30 & printf started", NULL};
    gw_proc_opts_t o = {.argv = argv, .kill_grace_ms = 200};
    spawn(&x, &o);
    wait_for(&x);
    CHECK_INT(x.r.exit_status, 0);
    CHECK_INT(x.r.term_signal, 0);
    CHECK_STR(x.r.out, "started");
    CHECK(x.r.elapsed_ms >= 150 && x.r.elapsed_ms < 3000);
    res_free(&x);
}

static gw_proc_t *to_kill;

static void on_kill_timer(uv_timer_t *t)
{
    gw_proc_kill(to_kill);
    gw_proc_kill(to_kill); /* idempotent */
    uv_close((uv_handle_t *)t, NULL);
}

static void test_kill(void)
{
    res_t x = {0};
    uv_timer_t t;
    const char *argv[] = {"sleep", "30", NULL};
    gw_proc_opts_t o = {.argv = argv};
    to_kill = spawn(&x, &o);
    CHECK_INT(gw_proc_active(), 1);
    CHECK_INT(uv_timer_init(&loop, &t), 0);
    CHECK_INT(uv_timer_start(&t, on_kill_timer, 100, 0), 0);
    wait_for(&x);
    CHECK(x.r.killed);
    CHECK(!x.r.timed_out);
    CHECK_INT(x.r.term_signal, SIGTERM);
    CHECK(x.r.elapsed_ms < 3000);
    CHECK_INT(gw_proc_active(), 0);
    res_free(&x);
}

static void test_spawn_error(void)
{
    res_t x = {0};
    const char *argv[] = {"/nonexistent/program", "arg", NULL};
    run(&x, argv);
    CHECK_INT(x.calls, 1);
    CHECK_INT(x.r.spawn_error, UV_ENOENT);
    CHECK_STR(x.r.out, "");
    res_free(&x);

    res_t y = {0};
    const char *argv2[] = {"gw-no-such-program-on-path", NULL};
    run(&y, argv2);
    CHECK_INT(y.r.spawn_error, UV_ENOENT);
    res_free(&y);

    res_t z = {0};
    const char *argv3[] = {NULL};
    run(&z, argv3);
    CHECK_INT(z.r.spawn_error, UV_EINVAL);
    res_free(&z);

    res_t w = {0};
    const char *argv4[] = {"printf", "x", NULL};
    gw_proc_opts_t o = {.argv = argv4, .cwd = "/nonexistent/dir"};
    spawn(&w, &o);
    wait_for(&w);
    CHECK(w.r.spawn_error < 0);
    res_free(&w);
}

static void test_many(void)
{
    enum { N = 50 };
    static res_t xs[N];
    char args[N][16];
    for (int i = 0; i < N; i++) {
        snprintf(args[i], sizeof(args[i]), "proc-%d", i);
        const char *argv[] = {"/bin/sh", "-c", "sleep 0.1; printf %s \"$0\"", args[i], NULL};
        gw_proc_opts_t o = {.argv = argv, .timeout_ms = 20000};
        spawn(&xs[i], &o);
    }
    CHECK_INT(gw_proc_active(), N);
    for (int i = 0; i < N; i++)
        wait_for(&xs[i]);
    int ok = 0;
    for (int i = 0; i < N; i++) {
        ok += xs[i].calls == 1 && xs[i].r.exit_status == 0 && strcmp(xs[i].r.out, args[i]) == 0;
        res_free(&xs[i]);
    }
    CHECK_INT(ok, N);
    CHECK_INT(gw_proc_active(), 0);
}

int main(void)
{
    alarm(100);
    signal(SIGPIPE, SIG_IGN);
    gw_log_init(GW_LOG_ERROR, false);
    CHECK_INT(uv_loop_init(&loop), 0);

    test_echo();
    test_exit_and_stderr();
    test_literal_argv();
    test_env_cwd();
    test_truncation();
    test_timeout();
    test_leader_exits_first();
    test_kill();
    test_spawn_error();
    test_many();

    CHECK_INT(uv_run(&loop, UV_RUN_DEFAULT), 0);
    CHECK_INT(gw_proc_active(), 0);
    CHECK_INT(uv_loop_close(&loop), 0);
    gw_log_dispose();
    return check_report();
}
