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
    unsigned size;  /* 0 = unlimited; the most an adaptive pool may reach */
    unsigned floor; /* adaptive pools: the limit never falls below it; 0 = a fixed pool (limit == size) */
    unsigned limit; /* slots granted at most right now */
    unsigned busy;
    size_t queued;
    gw_pool_waiter_t *head, *tail;
    /* observed wait of every grant (0 for an immediate one), for a histogram; may be NULL */
    void (*on_wait)(const struct st_gw_pool_t *p, double seconds);
    uint64_t granted, waited; /* grants in total, of which after queueing */
} gw_pool_t;

void gw_pool_init(gw_pool_t *p, unsigned size);
/* A pool whose limit moves between floor and size (floor <= size, both > 0) with gw_pool_adapt; it starts at floor. */
void gw_pool_init_adaptive(gw_pool_t *p, unsigned floor, unsigned size);
/* Takes a slot now (true) when one is free and nobody is queued; otherwise queues w (false) and cb(w, data) runs, with
 * the slot taken, from the gw_pool_release that frees one. w must stay valid until then or until gw_pool_cancel. */
bool gw_pool_acquire(gw_pool_t *p, gw_pool_waiter_t *w, gw_pool_cb cb, void *data);
/* Leaves the queue at once (no callback follows); a no-op when w is not queued. */
void gw_pool_cancel(gw_pool_t *p, gw_pool_waiter_t *w);
/* Gives a slot back; the first waiters (FIFO) get the slots now free, their callbacks run before this returns. */
void gw_pool_release(gw_pool_t *p);
/* Changes the size (a fixed pool's limit); new free slots go to waiters at once. */
void gw_pool_resize(gw_pool_t *p, unsigned size);
/* Caps a pool below its size for now (1 <= limit <= size; no-op for an unlimited pool); new free slots go to waiters. */
void gw_pool_set_limit(gw_pool_t *p, unsigned limit);
/* One step of an adaptive pool, given the CPUs that stayed idle since the last step (< 0: unknown, nothing changes)
 * and whether runs outside its own queue wait for a higher limit (wanted; a pool whose limit follows this one's).
 * Subprocesses here are mostly CPU-bound (yt-dlp is Python), and more of them than CPUs only slows each one down;
 * but a run waiting on the network leaves its CPU idle. So: one slot more while runs wait and at least half a CPU
 * stayed idle with every slot taken (or wanted); one slot less (down to floor) when the CPUs were saturated or a slot
 * went unused with nobody waiting. A no-op for a fixed pool. Returns the limit now. */
unsigned gw_pool_adapt(gw_pool_t *p, double spare_cpus, bool wanted);

/* CPU idle time, sampled: how many CPUs of those this process may use stayed idle between two samples. With a cgroup
 * quota, the quota minus the cgroup's own usage (cpu.stat usage_usec in v2, cpuacct.usage in v1); without one, the
 * idle and iowait time of the CPUs in the affinity mask, from /proc/stat (other load on the machine counts). */
typedef struct st_gw_cpu_meter_t {
    char cgroup_root[256], proc_stat[256];
    double quota;   /* CPUs of the cgroup quota; 0 = none, /proc/stat is read */
    uint64_t a, b;  /* the previous sample: usage ns and time ns, or idle and total ticks */
    unsigned ncpus; /* /proc/stat: CPUs counted in the previous sample */
    bool primed;
} gw_cpu_meter_t;

/* cgroup_root as for gw_pool_usable_cpus, proc_stat normally "/proc/stat" (tests pass fake files). */
void gw_cpu_meter_init(gw_cpu_meter_t *m, const char *cgroup_root, const char *proc_stat);
/* Idle CPUs since the previous call, >= 0; -1 on the first call after init or gw_cpu_meter_reset, or when nothing
 * could be read. now_ns: uv_hrtime(). */
double gw_cpu_meter_spare(gw_cpu_meter_t *m, uint64_t now_ns);
/* Forgets the previous sample: the next call starts a new interval (after an idle stretch nobody measured). */
void gw_cpu_meter_reset(gw_cpu_meter_t *m);
/* The cgroup's quota in CPUs, fractional (1.5 for "150000 100000"); 0 when there is none. */
double gw_pool_cgroup_quota(const char *root);

/* CPUs this process may use: the cgroup v2 cpu.max quota (or v1 cfs_quota_us / cfs_period_us), rounded up, when it is
 * lower than the affinity mask's count (sched_getaffinity); never the host's count when a limit applies. root is the
 * cgroup filesystem's mount ("/sys/fs/cgroup"; tests pass a directory of fake files). At least 1. */
unsigned gw_pool_usable_cpus(const char *root);
/* The quota alone: CPUs (rounded up) from root's cpu.max / cpu.cfs_quota_us, 0 when there is none. */
unsigned gw_pool_cgroup_cpus(const char *root);

#endif
