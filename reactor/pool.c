/* Counting pool with a FIFO of waiters (reactor/pool.h). */
#define _GNU_SOURCE
#include "reactor/pool.h"
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

void gw_pool_init(gw_pool_t *p, unsigned size)
{
    memset(p, 0, sizeof(*p));
    p->size = p->limit = size;
}

void gw_pool_init_adaptive(gw_pool_t *p, unsigned floor, unsigned size)
{
    gw_pool_init(p, size);
    if (size > 0 && floor > 0 && floor < size)
        p->floor = p->limit = floor;
}

static bool has_room(const gw_pool_t *p)
{
    return p->size == 0 || p->busy < p->limit;
}

static void observe(gw_pool_t *p, double seconds)
{
    p->granted++;
    if (p->on_wait != NULL)
        p->on_wait(p, seconds);
}

bool gw_pool_acquire(gw_pool_t *p, gw_pool_waiter_t *w, gw_pool_cb cb, void *data)
{
    if (p->head == NULL && has_room(p)) {
        p->busy++;
        observe(p, 0);
        return true;
    }
    w->cb = cb;
    w->data = data;
    w->since_ns = uv_hrtime();
    w->next = NULL;
    w->prev = p->tail;
    if (p->tail != NULL)
        p->tail->next = w;
    else
        p->head = w;
    p->tail = w;
    w->queued = true;
    p->queued++;
    return false;
}

static void unlink_waiter(gw_pool_t *p, gw_pool_waiter_t *w)
{
    if (w->prev != NULL)
        w->prev->next = w->next;
    else
        p->head = w->next;
    if (w->next != NULL)
        w->next->prev = w->prev;
    else
        p->tail = w->prev;
    w->next = w->prev = NULL;
    w->queued = false;
    p->queued--;
}

void gw_pool_cancel(gw_pool_t *p, gw_pool_waiter_t *w)
{
    if (w->queued)
        unlink_waiter(p, w);
}

/* Grants free slots in FIFO order. A callback may acquire, release or cancel again: the loop re-reads the state. */
static void grant(gw_pool_t *p)
{
    while (p->head != NULL && has_room(p)) {
        gw_pool_waiter_t *w = p->head;
        unlink_waiter(p, w);
        p->busy++;
        p->waited++;
        observe(p, (double)(uv_hrtime() - w->since_ns) / 1e9);
        w->cb(w, w->data);
    }
}

void gw_pool_release(gw_pool_t *p)
{
    if (p->busy == 0)
        abort(); /* a release without an acquire: a bookkeeping bug that would let the pool grow without bound */
    p->busy--;
    grant(p);
}

void gw_pool_resize(gw_pool_t *p, unsigned size)
{
    p->size = size;
    if (p->floor == 0 || size == 0 || p->floor >= size)
        p->floor = 0, p->limit = size;
    else if (p->limit > size)
        p->limit = size;
    grant(p);
}

void gw_pool_set_limit(gw_pool_t *p, unsigned limit)
{
    if (p->size == 0)
        return;
    p->limit = limit < 1 ? 1 : limit > p->size ? p->size : limit;
    grant(p);
}

unsigned gw_pool_adapt(gw_pool_t *p, double spare_cpus, bool wanted)
{
    if (p->floor == 0 || spare_cpus < 0)
        return p->limit;
    wanted = wanted || (p->head != NULL && p->busy >= p->limit);
    if (spare_cpus >= 0.5 && wanted && p->limit < p->size) {
        p->limit++;
        grant(p);
    } else if (p->limit > p->floor && (spare_cpus < 0.25 || (!wanted && p->head == NULL && p->busy < p->limit))) {
        p->limit--; /* saturated, or a slot unused with nobody waiting; runs above the new limit finish undisturbed */
    }
    return p->limit;
}

/* ---- usable CPUs ---- */

static bool read_line(const char *root, const char *name, char *buf, size_t len)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", root, name);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return false;
    bool ok = fgets(buf, (int)len, f) != NULL;
    fclose(f);
    return ok;
}

static unsigned ceil_div(long long quota, long long period)
{
    if (quota <= 0 || period <= 0)
        return 0;
    long long n = (quota + period - 1) / period;
    return n > 4096 ? 4096 : (unsigned)n;
}

/* The quota as (quota, period) microseconds; false when there is none. */
static bool cgroup_quota(const char *root, long long *quota, long long *period)
{
    char buf[128];
    if (read_line(root, "cpu.max", buf, sizeof(buf))) /* v2: "max 100000" or "150000 100000" */
        return strncmp(buf, "max", 3) != 0 && sscanf(buf, "%lld %lld", quota, period) == 2 && *quota > 0 && *period > 0;
    char qb[64], pb[64]; /* v1: quota -1 = none */
    if ((read_line(root, "cpu/cpu.cfs_quota_us", qb, sizeof(qb)) && read_line(root, "cpu/cpu.cfs_period_us", pb, sizeof(pb))) ||
        (read_line(root, "cpu.cfs_quota_us", qb, sizeof(qb)) && read_line(root, "cpu.cfs_period_us", pb, sizeof(pb)))) {
        *quota = atoll(qb);
        *period = atoll(pb);
        return *quota > 0 && *period > 0;
    }
    return false;
}

unsigned gw_pool_cgroup_cpus(const char *root)
{
    long long quota = 0, period = 0;
    return cgroup_quota(root, &quota, &period) ? ceil_div(quota, period) : 0;
}

double gw_pool_cgroup_quota(const char *root)
{
    long long quota = 0, period = 0;
    return cgroup_quota(root, &quota, &period) ? (double)quota / (double)period : 0;
}

unsigned gw_pool_usable_cpus(const char *root)
{
    unsigned n = 0;
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof(set), &set) == 0)
        n = (unsigned)CPU_COUNT(&set);
    if (n == 0)
        n = 1;
    unsigned q = gw_pool_cgroup_cpus(root);
    return q != 0 && q < n ? q : n;
}

/* ---- CPU idle time ---- */

void gw_cpu_meter_init(gw_cpu_meter_t *m, const char *cgroup_root, const char *proc_stat)
{
    memset(m, 0, sizeof(*m));
    snprintf(m->cgroup_root, sizeof(m->cgroup_root), "%s", cgroup_root);
    snprintf(m->proc_stat, sizeof(m->proc_stat), "%s", proc_stat);
    double q = gw_pool_cgroup_quota(cgroup_root);
    cpu_set_t set;
    unsigned n = sched_getaffinity(0, sizeof(set), &set) == 0 ? (unsigned)CPU_COUNT(&set) : 0;
    m->quota = q > 0 && (n == 0 || q < (double)n) ? q : 0; /* a quota above the CPUs we may use is no limit */
}

void gw_cpu_meter_reset(gw_cpu_meter_t *m)
{
    m->primed = false;
}

/* The cgroup's CPU usage in ns: v2 cpu.stat "usage_usec", v1 cpuacct.usage (ns). */
static bool cgroup_usage_ns(const char *root, uint64_t *ns)
{
    char path[512], line[128];
    snprintf(path, sizeof(path), "%s/cpu.stat", root);
    FILE *f = fopen(path, "r");
    if (f != NULL) {
        bool ok = false;
        unsigned long long us;
        while (!ok && fgets(line, sizeof(line), f) != NULL)
            if (sscanf(line, "usage_usec %llu", &us) == 1)
                *ns = (uint64_t)us * 1000u, ok = true;
        fclose(f);
        if (ok)
            return true;
    }
    static const char *const v1[] = {"cpuacct/cpuacct.usage", "cpu,cpuacct/cpuacct.usage", "cpuacct.usage"};
    for (size_t i = 0; i < sizeof(v1) / sizeof(v1[0]); i++) {
        if (read_line(root, v1[i], line, sizeof(line))) {
            *ns = (uint64_t)strtoull(line, NULL, 10);
            return true;
        }
    }
    return false;
}

/* Idle (idle + iowait) and total ticks of the CPUs in the affinity mask, from /proc/stat's "cpuN" lines. */
static bool proc_stat_ticks(const char *path, uint64_t *idle, uint64_t *total, unsigned *ncpus)
{
    cpu_set_t set;
    bool masked = sched_getaffinity(0, sizeof(set), &set) == 0;
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return false;
    char line[512];
    *idle = *total = 0;
    *ncpus = 0;
    while (fgets(line, sizeof(line), f) != NULL) {
        unsigned cpu;
        unsigned long long v[8] = {0};
        if (strncmp(line, "cpu", 3) != 0 || line[3] < '0' || line[3] > '9')
            continue;
        if (sscanf(line + 3, "%u %llu %llu %llu %llu %llu %llu %llu %llu", &cpu, &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6],
                   &v[7]) < 6)
            continue;
        if (masked && (cpu >= CPU_SETSIZE || !CPU_ISSET(cpu, &set)))
            continue;
        for (int i = 0; i < 8; i++)
            *total += v[i];
        *idle += v[3] + v[4];
        (*ncpus)++;
    }
    fclose(f);
    return *ncpus > 0;
}

double gw_cpu_meter_spare(gw_cpu_meter_t *m, uint64_t now_ns)
{
    uint64_t a, b;
    unsigned n = 0;
    if (m->quota > 0) {
        if (!cgroup_usage_ns(m->cgroup_root, &a))
            return m->primed = false, -1;
        b = now_ns;
    } else if (!proc_stat_ticks(m->proc_stat, &a, &b, &n)) {
        return m->primed = false, -1;
    }
    bool was = m->primed && (m->quota > 0 || n == m->ncpus) && a >= m->a && b > m->b;
    uint64_t da = a - m->a, db = b - m->b;
    m->a = a, m->b = b, m->ncpus = n, m->primed = true;
    if (!was)
        return -1;
    double spare = m->quota > 0 ? m->quota - (double)da / (double)db /* CPUs used */
                                : (double)n * (double)da / (double)db;
    return spare < 0 ? 0 : spare;
}
