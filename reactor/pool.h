#ifndef GW_POOL_H
#define GW_POOL_H
/* A counting pool of slots with a FIFO of waiters: bounds how many subprocesses run at once while any number of jobs
 * wait for one at the cost of a waiter struct each (embedded in the caller's object: no allocation). Single-threaded
 * (the loop thread). Knows nothing about what a slot is used for. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct st_gw_pool_waiter_t gw_pool_waiter_t;
typedef void (*gw_pool_cb)(gw_pool_waiter_t *w, void *data);

struct st_gw_pool_waiter_t {
    gw_pool_waiter_t *next, *prev; /* in the queue while queued */
    gw_pool_cb cb;
    void *data;
    uint64_t since_ns; /* uv_hrtime() when it was queued */
    bool queued;
};

typedef struct st_gw_pool_t {
    unsigned size; /* 0 = unlimited */
    unsigned busy;
    size_t queued;
    gw_pool_waiter_t *head, *tail;
    /* observed wait of every grant (0 for an immediate one), for a histogram; may be NULL */
    void (*on_wait)(const struct st_gw_pool_t *p, double seconds);
    uint64_t granted, waited; /* grants in total, of which after queueing */
} gw_pool_t;

void gw_pool_init(gw_pool_t *p, unsigned size);
/* Takes a slot now (true) when one is free and nobody is queued; otherwise queues w (false) and cb(w, data) runs, with
 * the slot taken, from the gw_pool_release that frees one. w must stay valid until then or until gw_pool_cancel. */
bool gw_pool_acquire(gw_pool_t *p, gw_pool_waiter_t *w, gw_pool_cb cb, void *data);
/* Leaves the queue at once (no callback follows); a no-op when w is not queued. */
void gw_pool_cancel(gw_pool_t *p, gw_pool_waiter_t *w);
/* Gives a slot back; the first waiters (FIFO) get the slots now free, their callbacks run before this returns. */
void gw_pool_release(gw_pool_t *p);
/* Changes the size; new free slots go to waiters at once. */
void gw_pool_resize(gw_pool_t *p, unsigned size);

/* CPUs this process may use: the cgroup v2 cpu.max quota (or v1 cfs_quota_us / cfs_period_us), rounded up, when it is
 * lower than the affinity mask's count (sched_getaffinity); never the host's count when a limit applies. root is the
 * cgroup filesystem's mount ("/sys/fs/cgroup"; tests pass a directory of fake files). At least 1. */
unsigned gw_pool_usable_cpus(const char *root);
/* The quota alone: CPUs (rounded up) from root's cpu.max / cpu.cfs_quota_us, 0 when there is none. */
unsigned gw_pool_cgroup_cpus(const char *root);

#endif
