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
    p->size = size;
}

static bool has_room(const gw_pool_t *p)
{
    return p->size == 0 || p->busy < p->size;
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
    grant(p);
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

unsigned gw_pool_cgroup_cpus(const char *root)
{
    char buf[128];
    long long quota = 0, period = 0;
    if (read_line(root, "cpu.max", buf, sizeof(buf))) { /* v2: "max 100000" or "150000 100000" */
        if (strncmp(buf, "max", 3) == 0 || sscanf(buf, "%lld %lld", &quota, &period) != 2)
            return 0;
        return ceil_div(quota, period);
    }
    char qb[64], pb[64]; /* v1: quota -1 = none */
    if (read_line(root, "cpu/cpu.cfs_quota_us", qb, sizeof(qb)) && read_line(root, "cpu/cpu.cfs_period_us", pb, sizeof(pb)))
        return ceil_div(atoll(qb), atoll(pb));
    if (read_line(root, "cpu.cfs_quota_us", qb, sizeof(qb)) && read_line(root, "cpu.cfs_period_us", pb, sizeof(pb)))
        return ceil_div(atoll(qb), atoll(pb));
    return 0;
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
