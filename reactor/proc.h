#ifndef GW_PROC_H
#define GW_PROC_H
/* Child processes on the loop: argv only (never a shell), stdin /dev/null, stdout/stderr captured up to a cap,
 * optional timeout. The child leads its own process group, so a kill also reaches its children (yt-dlp -> ffmpeg). */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct st_gw_proc_t gw_proc_t;

typedef struct st_gw_proc_result_t {
    int spawn_error;     /* uv error (e.g. UV_ENOENT) when the program could not start, else 0 */
    int64_t exit_status; /* valid when term_signal == 0 */
    int term_signal;
    bool timed_out; /* killed because the timeout passed */
    bool killed;    /* killed by gw_proc_kill */
    char *out;      /* stdout, NUL-terminated (never NULL), capped */
    size_t out_len;
    bool out_truncated;
    char *err; /* stderr, likewise */
    size_t err_len;
    bool err_truncated;
    double elapsed_ms;
} gw_proc_result_t;

typedef void (*gw_proc_cb)(gw_proc_t *p, const gw_proc_result_t *r, void *data);

typedef struct st_gw_proc_opts_t {
    const char *const *argv; /* argv[0] is the program (PATH lookup); NULL-terminated */
    const char *cwd;         /* NULL = inherit */
    const char *const *env;  /* NULL = inherit; else "NAME=value" entries, NULL-terminated */
    uint64_t timeout_ms;     /* 0 = none */
    uint64_t kill_grace_ms;  /* SIGTERM -> SIGKILL delay; 0 = default 2000 */
    size_t out_cap, err_cap; /* 0 = default 1 MiB / 64 KiB; further output is read and discarded, flag set */
} gw_proc_opts_t;

/* cb runs exactly once, later, from the loop — also when spawning failed. After cb returns the proc is freed: never
 * touch p again. The result and its buffers are valid only during cb.
 * When the child exits but something it left in its group keeps stdout/stderr open, the group gets SIGKILL after
 * the grace period, and the pipes are abandoned after one more. Never returns NULL. */
gw_proc_t *gw_proc_spawn(uv_loop_t *loop, const gw_proc_opts_t *opts, gw_proc_cb cb, void *data);
/* SIGTERM to the child's whole process group, SIGKILL after the grace period; cb still runs once with killed=true.
 * Only legal before cb ran; repeated calls change nothing. */
void gw_proc_kill(gw_proc_t *p);
size_t gw_proc_active(void); /* procs not yet finished (for shutdown) */

#endif
