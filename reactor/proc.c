#define _GNU_SOURCE /* posix_spawn_file_actions_addchdir_np */
#include "reactor/proc.h"
#include "reactor/log.h"
#include "reactor/text.h"
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#define GW_PROC_DEFAULT_OUT_CAP (1u << 20)
#define GW_PROC_DEFAULT_ERR_CAP (64u << 10)
#define GW_PROC_DEFAULT_GRACE_MS 2000

typedef enum en_gw_proc_phase_t {
    GW_PROC_RUNNING, /* child running; the timer is armed only for a timeout */
    GW_PROC_TERM,    /* SIGTERM sent, or the leader exited with pipes still open: SIGKILL when the timer fires */
    GW_PROC_KILL,    /* SIGKILL sent: stop waiting for the pipes when the timer fires */
    GW_PROC_CLOSING, /* exited and drained (or given up on): handles closing, cb once the last one is closed */
} gw_proc_phase_t;

typedef struct st_gw_proc_stream_t {
    uv_pipe_t pipe; /* first: the read callbacks receive it */
    gw_proc_t *p;
    char *buf;
    size_t len, alloc, cap;
    bool truncated;
    bool open; /* reading; false after EOF, error or abandonment */
} gw_proc_stream_t;

struct st_gw_proc_t {
    uv_process_t process; /* the uv_spawn fallback */
    uv_poll_t exit_poll;  /* posix_spawn: the child's pidfd turns readable when it exits */
    int pidfd;
    uv_timer_t timer;
    gw_proc_stream_t out, err;
    gw_proc_phase_t phase;
    gw_proc_cb cb;
    void *data;
    gw_proc_result_t r;
    uint64_t grace_ms, started_ns;
    int pid;      /* also the process group id; 0 when not spawned */
    bool spawned; /* uv_spawn was called: the process handle must be closed */
    bool polled;  /* posix_spawn: the pidfd poll handle must be closed */
    bool exited;  /* exit callback seen */
    int open_handles;
};

static size_t active_procs;
/* Output past the cap lands here; single-threaded, and each read consumes it before the next alloc. */
static char discard[64 * 1024];

static void proc_finish(gw_proc_t *p)
{
    gw_proc_stream_t *ss[2] = {&p->out, &p->err};
    for (int i = 0; i < 2; i++) {
        if (ss[i]->buf == NULL)
            ss[i]->buf = gw_xmalloc(1);
        ss[i]->buf[ss[i]->len] = '\0';
    }
    p->r.out = p->out.buf;
    p->r.out_len = p->out.len;
    p->r.out_truncated = p->out.truncated;
    p->r.err = p->err.buf;
    p->r.err_len = p->err.len;
    p->r.err_truncated = p->err.truncated;
    p->r.elapsed_ms = (double)(uv_hrtime() - p->started_ns) / 1e6;
    active_procs--;
    p->cb(p, &p->r, p->data);
    free(p->out.buf);
    free(p->err.buf);
    free(p);
}

static void on_handle_closed(uv_handle_t *h)
{
    gw_proc_t *p = h->data;
    if (--p->open_handles == 0)
        proc_finish(p);
}

static void on_poll_closed(uv_handle_t *h)
{
    gw_proc_t *p = h->data;
    close(p->pidfd);
    on_handle_closed(h);
}

static void stream_close(gw_proc_stream_t *s)
{
    s->open = false;
    if (!uv_is_closing((uv_handle_t *)&s->pipe))
        uv_close((uv_handle_t *)&s->pipe, on_handle_closed);
}

static void proc_close_all(gw_proc_t *p)
{
    p->phase = GW_PROC_CLOSING;
    stream_close(&p->out);
    stream_close(&p->err);
    uv_close((uv_handle_t *)&p->timer, on_handle_closed);
    if (p->spawned)
        uv_close((uv_handle_t *)&p->process, on_handle_closed);
    if (p->polled)
        uv_close((uv_handle_t *)&p->exit_poll, on_poll_closed);
}

static void signal_group(gw_proc_t *p, int sig)
{
    /* Negative pid: the whole group the child leads (DETACHED = setsid), grandchildren included. */
    if (p->pid > 0 && kill(-p->pid, sig) != 0 && errno != ESRCH)
        gw_warn("proc: kill(-%d, %d): %s", p->pid, sig, strerror(errno));
}

static void on_timer(uv_timer_t *t);

static void timer_arm(gw_proc_t *p, uint64_t ms)
{
    int rc = uv_timer_start(&p->timer, on_timer, ms, 0);
    if (rc != 0)
        gw_error("proc: uv_timer_start: %s", uv_strerror(rc));
}

/* Called after every event: finishes once the exit status and both EOFs are in, whatever their order. */
static void proc_progress(gw_proc_t *p)
{
    if (p->phase == GW_PROC_CLOSING || !p->exited)
        return;
    if (!p->out.open && !p->err.open) {
        proc_close_all(p);
    } else if (p->phase == GW_PROC_RUNNING) {
        /* The leader is gone; give whatever holds its pipes the grace period, then SIGKILL the group. */
        p->phase = GW_PROC_TERM;
        timer_arm(p, p->grace_ms);
    }
}

static void on_timer(uv_timer_t *t)
{
    gw_proc_t *p = t->data;
    switch (p->phase) {
    case GW_PROC_RUNNING:
        p->r.timed_out = true;
        signal_group(p, SIGTERM);
        p->phase = GW_PROC_TERM;
        timer_arm(p, p->grace_ms);
        break;
    case GW_PROC_TERM:
        signal_group(p, SIGKILL);
        p->phase = GW_PROC_KILL;
        timer_arm(p, p->grace_ms);
        break;
    case GW_PROC_KILL:
        /* Something outside the group holds the pipes, or the child cannot die: stop waiting. */
        gw_warn("proc: pid %d still %s after SIGKILL; abandoning it", p->pid, p->exited ? "has open pipes" : "running");
        if (!p->exited)
            p->r.term_signal = SIGKILL;
        proc_close_all(p);
        break;
    case GW_PROC_CLOSING:
        break;
    }
}

static void on_child_exit(uv_process_t *h, int64_t exit_status, int term_signal)
{
    gw_proc_t *p = h->data;
    p->exited = true;
    p->r.exit_status = exit_status;
    p->r.term_signal = term_signal;
    proc_progress(p);
}

static void on_pidfd(uv_poll_t *h, int status, int events)
{
    gw_proc_t *p = h->data;
    int ws = 0;
    pid_t r = waitpid(p->pid, &ws, WNOHANG);
    if (r == 0 && status == 0)
        return; /* not yet reapable */
    uv_poll_stop(h);
    p->exited = true;
    if (r == p->pid && WIFSIGNALED(ws))
        p->r.term_signal = WTERMSIG(ws);
    else if (r == p->pid && WIFEXITED(ws))
        p->r.exit_status = WEXITSTATUS(ws);
    else
        p->r.term_signal = SIGKILL; /* reaped elsewhere or the poll failed: report it as gone */
    proc_progress(p);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
    gw_proc_stream_t *s = (gw_proc_stream_t *)h;
    if (s->len >= s->cap) {
        *b = uv_buf_init(discard, sizeof(discard));
        return;
    }
    size_t want = s->cap - s->len < suggested ? s->cap - s->len : suggested;
    if (s->len + want + 1 > s->alloc) {
        size_t n = s->alloc * 2 > s->len + want + 1 ? s->alloc * 2 : s->len + want + 1;
        if (n > s->cap + 1)
            n = s->cap + 1;
        s->buf = gw_xrealloc(s->buf, n);
        s->alloc = n;
    }
    *b = uv_buf_init(s->buf + s->len, want);
}

static void on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b)
{
    gw_proc_stream_t *s = (gw_proc_stream_t *)st;
    if (n > 0) {
        if (b->base == discard)
            s->truncated = true; /* kept reading so the child never blocks on a full pipe */
        else
            s->len += (size_t)n;
        return;
    }
    if (n == 0)
        return;
    if (n != UV_EOF)
        gw_warn("proc: reading child output: %s", uv_strerror((int)n));
    stream_close(s);
    proc_progress(s->p);
}

static void stream_init(gw_proc_t *p, uv_loop_t *loop, gw_proc_stream_t *s, size_t cap)
{
    int rc = uv_pipe_init(loop, &s->pipe, 0);
    if (rc != 0) {
        gw_error("proc: uv_pipe_init: %s", uv_strerror(rc));
        abort();
    }
    s->pipe.data = p;
    s->p = p;
    s->cap = cap;
    p->open_handles++;
}

static void stream_start(gw_proc_stream_t *s)
{
    int rc = uv_read_start((uv_stream_t *)&s->pipe, on_alloc, on_read);
    if (rc != 0) {
        gw_warn("proc: uv_read_start: %s", uv_strerror(rc));
        stream_close(s);
        return;
    }
    s->open = true;
}

/* The fallback: libuv forks the whole worker and blocks the loop until the child has exec'd. */
static int proc_start_uv(gw_proc_t *p, uv_loop_t *loop, const gw_proc_opts_t *opts)
{
    uv_stdio_container_t stdio[3];
    uv_process_options_t o;
    memset(&o, 0, sizeof(o));
    stdio[0].flags = UV_IGNORE; /* libuv maps an ignored 0..2 to /dev/null */
    /* Pipe flags are from the child's view: it writes. */
    stdio[1].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
    stdio[1].data.stream = (uv_stream_t *)&p->out.pipe;
    stdio[2].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
    stdio[2].data.stream = (uv_stream_t *)&p->err.pipe;
    o.exit_cb = on_child_exit;
    o.file = opts->argv[0];
    o.args = (char **)opts->argv;
    o.env = (char **)opts->env;
    o.cwd = opts->cwd;
    o.flags = UV_PROCESS_DETACHED; /* setsid: its own process group, so kill(-pid) reaches grandchildren */
    o.stdio_count = 3;
    o.stdio = stdio;
    p->process.data = p;
    int rc = uv_spawn(loop, &p->process, &o);
    /* uv_spawn initialises the handle even when it fails: it must be closed either way. */
    p->spawned = true;
    p->open_handles++;
    if (rc != 0)
        return rc;
    p->pid = p->process.pid;
    return 0;
}

static bool pidfd_works = true; /* false once the kernel refused pidfd_open (before Linux 5.3, some sandboxes) */

/* posix_spawnp: glibc clones with CLONE_VM | CLONE_VFORK, so nothing of the worker is copied and the loop waits only
 * for the exec (a fork of the worker took milliseconds of the loop per subprocess). The child gets what uv_spawn gave
 * it: /dev/null on stdin, the two pipes, its own session (kill(-pid) reaches grandchildren), default signal
 * dispositions and an empty signal mask. Returns 1 when pidfd_open is unavailable: the caller falls back to uv_spawn. */
static int proc_start_spawn(gw_proc_t *p, uv_loop_t *loop, const gw_proc_opts_t *opts)
{
    int out[2] = {-1, -1}, err[2] = {-1, -1}, rc = 0;
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    sigset_t none, all;
    if (pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0) {
        rc = -errno;
        goto closefds;
    }
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&at);
    sigemptyset(&none);
    sigfillset(&all);
    sigdelset(&all, SIGKILL);
    sigdelset(&all, SIGSTOP);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1); /* dup2 clears CLOEXEC on the copy */
    posix_spawn_file_actions_adddup2(&fa, err[1], 2);
    if (opts->cwd != NULL)
        posix_spawn_file_actions_addchdir_np(&fa, opts->cwd);
    posix_spawnattr_setsigmask(&at, &none);
    posix_spawnattr_setsigdefault(&at, &all);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    pid_t pid = 0;
    int e = posix_spawnp(&pid, opts->argv[0], &fa, &at, (char *const *)opts->argv,
                         opts->env != NULL ? (char *const *)opts->env : environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    if (e != 0) {
        rc = -e;
        goto closefds;
    }
    p->pid = pid;
    close(out[1]);
    close(err[1]);
    out[1] = err[1] = -1;
    p->pidfd = pidfd_open(pid, 0);
    if (p->pidfd < 0) { /* cannot watch it: reap it here and let uv_spawn do the rest from now on */
        int ws;
        pidfd_works = false;
        gw_warn("proc: pidfd_open: %s; starting subprocesses with uv_spawn", strerror(errno));
        kill(-pid, SIGKILL);
        waitpid(pid, &ws, 0);
        p->pid = 0;
        close(out[0]);
        close(err[0]);
        return 1;
    }
    if ((rc = uv_pipe_open(&p->out.pipe, out[0])) != 0 || (rc = uv_pipe_open(&p->err.pipe, err[0])) != 0 ||
        (rc = uv_poll_init(loop, &p->exit_poll, p->pidfd)) != 0) {
        gw_error("proc: watching pid %d: %s", pid, uv_strerror(rc));
        abort(); /* a descriptor we just made that libuv cannot take: out of memory or a bug */
    }
    p->exit_poll.data = p;
    p->polled = true;
    p->open_handles++;
    uv_poll_start(&p->exit_poll, UV_READABLE, on_pidfd);
    return 0;
closefds:
    for (int i = 0; i < 2; i++) {
        if (out[i] >= 0)
            close(out[i]);
        if (err[i] >= 0)
            close(err[i]);
    }
    return rc;
}

static int proc_start(gw_proc_t *p, uv_loop_t *loop, const gw_proc_opts_t *opts)
{
    int rc = pidfd_works ? proc_start_spawn(p, loop, opts) : 1;
    if (rc == 1)
        rc = proc_start_uv(p, loop, opts);
    if (rc != 0)
        return rc;
    stream_start(&p->out);
    stream_start(&p->err);
    if (opts->timeout_ms > 0)
        timer_arm(p, opts->timeout_ms);
    return 0;
}

gw_proc_t *gw_proc_spawn(uv_loop_t *loop, const gw_proc_opts_t *opts, gw_proc_cb cb, void *data)
{
    gw_proc_t *p = calloc(1, sizeof(*p));
    if (p == NULL)
        abort();
    p->cb = cb;
    p->data = data;
    p->grace_ms = opts->kill_grace_ms > 0 ? opts->kill_grace_ms : GW_PROC_DEFAULT_GRACE_MS;
    p->started_ns = uv_hrtime();
    stream_init(p, loop, &p->out, opts->out_cap > 0 ? opts->out_cap : GW_PROC_DEFAULT_OUT_CAP);
    stream_init(p, loop, &p->err, opts->err_cap > 0 ? opts->err_cap : GW_PROC_DEFAULT_ERR_CAP);
    int rc = uv_timer_init(loop, &p->timer);
    if (rc != 0) {
        gw_error("proc: uv_timer_init: %s", uv_strerror(rc));
        abort();
    }
    p->timer.data = p;
    p->open_handles++;
    active_procs++;
    rc = opts->argv != NULL && opts->argv[0] != NULL ? proc_start(p, loop, opts) : UV_EINVAL;
    if (rc != 0) {
        /* Reported through cb, from the close callbacks: never synchronously. */
        gw_warn("proc: cannot start %s: %s", opts->argv && opts->argv[0] ? opts->argv[0] : "(no program)", uv_strerror(rc));
        p->r.spawn_error = rc;
        proc_close_all(p);
    } else {
        gw_debug("proc: started %s as pid %d", opts->argv[0], p->pid);
    }
    return p;
}

void gw_proc_kill(gw_proc_t *p)
{
    if (p->phase == GW_PROC_CLOSING || p->r.killed)
        return;
    p->r.killed = true;
    signal_group(p, SIGTERM);
    if (p->phase == GW_PROC_RUNNING) {
        p->phase = GW_PROC_TERM;
        timer_arm(p, p->grace_ms);
    }
}

size_t gw_proc_active(void)
{
    return active_procs;
}
