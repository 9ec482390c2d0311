#define _GNU_SOURCE
#include "check.h"
#include "reactor/pool.h"
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

/* A waiter that records the order it was granted in. */
typedef struct st_w_t {
    gw_pool_waiter_t w;
    int granted_as; /* 0 = not granted */
} w_t;

static int grants;

static void on_grant(gw_pool_waiter_t *w, void *data)
{
    w_t *x = data;
    CHECK(&x->w == w);
    x->granted_as = ++grants;
}

static void test_fifo(void)
{
    gw_pool_t p;
    gw_pool_init(&p, 2);
    w_t a = {0}, b = {0}, c = {0}, d = {0}, e = {0};
    grants = 0;
    CHECK(gw_pool_acquire(&p, &a.w, on_grant, &a));
    CHECK(gw_pool_acquire(&p, &b.w, on_grant, &b));
    CHECK(!gw_pool_acquire(&p, &c.w, on_grant, &c));
    CHECK(!gw_pool_acquire(&p, &d.w, on_grant, &d));
    CHECK(!gw_pool_acquire(&p, &e.w, on_grant, &e));
    CHECK_INT(p.busy, 2);
    CHECK_INT(p.queued, 3);
    gw_pool_cancel(&p, &d.w); /* a cancelled job leaves the queue at once, and is never granted */
    CHECK_INT(p.queued, 2);
    CHECK(!d.w.queued);
    gw_pool_cancel(&p, &d.w); /* twice: nothing */
    CHECK_INT(p.queued, 2);
    gw_pool_release(&p);
    CHECK_INT(c.granted_as, 1); /* FIFO: c before e */
    CHECK_INT(e.granted_as, 0);
    CHECK_INT(p.busy, 2);
    gw_pool_release(&p);
    CHECK_INT(e.granted_as, 2);
    CHECK_INT(d.granted_as, 0);
    CHECK_INT(p.queued, 0);
    gw_pool_release(&p);
    gw_pool_release(&p);
    CHECK_INT(p.busy, 0); /* every slot back: released jobs never leave one taken */
    CHECK_INT(p.granted, 4);
    CHECK_INT(p.waited, 2);
    /* a newcomer does not overtake a queued waiter even when a slot is free at that moment: it is granted in order */
    CHECK(gw_pool_acquire(&p, &a.w, on_grant, &a));
    CHECK(gw_pool_acquire(&p, &b.w, on_grant, &b));
    CHECK(!gw_pool_acquire(&p, &c.w, on_grant, &c));
    gw_pool_cancel(&p, &c.w);
    CHECK(p.head == NULL && p.tail == NULL);
    gw_pool_release(&p);
    gw_pool_release(&p);
    CHECK_INT(p.busy, 0);
}

/* A callback that releases its slot at once (a spawn that fails immediately) lets the next waiter in. */
static gw_pool_t *reentrant_pool;
static void on_grant_release(gw_pool_waiter_t *w, void *data)
{
    on_grant(w, data);
    gw_pool_release(reentrant_pool);
}

static void test_reentrant(void)
{
    gw_pool_t p;
    gw_pool_init(&p, 1);
    reentrant_pool = &p;
    w_t a = {0}, b = {0}, c = {0};
    grants = 0;
    CHECK(gw_pool_acquire(&p, &a.w, on_grant, &a));
    CHECK(!gw_pool_acquire(&p, &b.w, on_grant_release, &b));
    CHECK(!gw_pool_acquire(&p, &c.w, on_grant, &c));
    gw_pool_release(&p);
    CHECK_INT(b.granted_as, 1);
    CHECK_INT(c.granted_as, 2);
    CHECK_INT(p.busy, 1);
    gw_pool_release(&p);
    CHECK_INT(p.busy, 0);
}

static void test_unlimited_and_resize(void)
{
    gw_pool_t p;
    gw_pool_init(&p, 0);
    w_t w[100];
    for (int i = 0; i < 100; i++)
        CHECK(gw_pool_acquire(&p, &w[i].w, on_grant, &w[i]));
    CHECK_INT(p.busy, 100);
    gw_pool_init(&p, 1);
    grants = 0;
    w_t a = {0}, b = {0}, c = {0};
    CHECK(gw_pool_acquire(&p, &a.w, on_grant, &a));
    CHECK(!gw_pool_acquire(&p, &b.w, on_grant, &b));
    CHECK(!gw_pool_acquire(&p, &c.w, on_grant, &c));
    gw_pool_resize(&p, 3);
    CHECK_INT(b.granted_as, 1);
    CHECK_INT(c.granted_as, 2);
    CHECK_INT(p.busy, 3);
}

static char root[64];

static void put(const char *name, const char *text)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", root, name);
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (f != NULL) {
        fputs(text, f);
        fclose(f);
    }
}

static void rm(const char *name)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", root, name);
    unlink(path);
}

static void test_cpus(void)
{
    snprintf(root, sizeof(root), "/tmp/gw-test-pool-XXXXXX");
    CHECK(mkdtemp(root) != NULL);
    unsigned affinity = gw_pool_usable_cpus(root); /* no files: the affinity mask alone */
    CHECK(affinity >= 1);
    CHECK_INT(gw_pool_cgroup_cpus(root), 0);
    put("cpu.max", "max 100000\n"); /* v2, no limit */
    CHECK_INT(gw_pool_cgroup_cpus(root), 0);
    CHECK_INT(gw_pool_usable_cpus(root), affinity);
    put("cpu.max", "150000 100000\n"); /* 1.5 CPUs: rounded up */
    CHECK_INT(gw_pool_cgroup_cpus(root), 2);
    put("cpu.max", "50000 100000\n"); /* half a CPU: still one */
    CHECK_INT(gw_pool_cgroup_cpus(root), 1);
    CHECK_INT(gw_pool_usable_cpus(root), 1); /* the quota wins over the affinity mask */
    put("cpu.max", "6400000 100000\n");      /* 64 CPUs of quota: the affinity mask is lower */
    CHECK_INT(gw_pool_cgroup_cpus(root), 64);
    CHECK_INT(gw_pool_usable_cpus(root), affinity < 64 ? affinity : 64);
    put("cpu.max", "garbage\n");
    CHECK_INT(gw_pool_cgroup_cpus(root), 0);
    rm("cpu.max");
    /* v1 */
    char dir[128];
    snprintf(dir, sizeof(dir), "%s/cpu", root);
    CHECK(mkdir(dir, 0700) == 0);
    put("cpu/cpu.cfs_quota_us", "-1\n");
    put("cpu/cpu.cfs_period_us", "100000\n");
    CHECK_INT(gw_pool_cgroup_cpus(root), 0);
    put("cpu/cpu.cfs_quota_us", "300000\n");
    CHECK_INT(gw_pool_cgroup_cpus(root), 3);
    rm("cpu/cpu.cfs_quota_us");
    rm("cpu/cpu.cfs_period_us");
    rmdir(dir);
    rmdir(root);
    CHECK(gw_pool_usable_cpus("/sys/fs/cgroup") >= 1); /* the real one, whatever this machine has */
}

/* The adaptive limit: starts at the floor, grows a step per sample only while runs wait, every slot is taken and half
 * a CPU or more stayed idle; shrinks a step when the CPUs were saturated; never leaves [floor, size]. */
static void test_adaptive(void)
{
    gw_pool_t p;
    gw_pool_init_adaptive(&p, 2, 4);
    CHECK_INT(p.floor, 2);
    CHECK_INT(p.limit, 2);
    w_t w[6];
    memset(w, 0, sizeof(w));
    grants = 0;
    CHECK(gw_pool_acquire(&p, &w[0].w, on_grant, &w[0]));
    CHECK_INT(gw_pool_adapt(&p, 1.5, false), 2); /* idle CPU but nobody waits: no growth */
    CHECK(gw_pool_acquire(&p, &w[1].w, on_grant, &w[1]));
    for (int i = 2; i < 6; i++)
        CHECK(!gw_pool_acquire(&p, &w[i].w, on_grant, &w[i]));
    CHECK_INT(gw_pool_adapt(&p, -1, false), 2);  /* unknown: nothing changes */
    CHECK_INT(gw_pool_adapt(&p, 0.4, false), 2); /* less than half a CPU idle: no growth, no shrink */
    CHECK_INT(gw_pool_adapt(&p, 0.9, false), 3); /* a step, and the first waiter is granted at once */
    CHECK_INT(w[2].granted_as, 1);
    CHECK_INT(p.busy, 3);
    CHECK_INT(gw_pool_adapt(&p, 1.2, false), 4);
    CHECK_INT(w[3].granted_as, 2);
    CHECK_INT(gw_pool_adapt(&p, 2.0, false), 4); /* the size is the ceiling */
    CHECK_INT(p.busy, 4);
    CHECK_INT(gw_pool_adapt(&p, 0.1, false), 3); /* saturated: a step down; running ones finish, none is stopped */
    CHECK_INT(p.busy, 4);
    gw_pool_release(&p);
    CHECK_INT(p.busy, 3);
    CHECK_INT(w[4].granted_as, 0); /* busy == limit: the waiter stays queued */
    CHECK_INT(gw_pool_adapt(&p, 0, false), 2);
    CHECK_INT(gw_pool_adapt(&p, 0, false), 2); /* never below the floor */
    gw_pool_release(&p);
    gw_pool_release(&p);
    CHECK_INT(w[4].granted_as, 3); /* busy 1 < 2: FIFO order kept */
    CHECK_INT(w[5].granted_as, 0);
    gw_pool_release(&p);
    CHECK_INT(w[5].granted_as, 4);
    gw_pool_release(&p);
    gw_pool_release(&p);
    CHECK_INT(p.busy, 0);

    gw_pool_init_adaptive(&p, 1, 3); /* demand falls: the limit follows it back to the floor */
    memset(w, 0, sizeof(w));
    CHECK(gw_pool_acquire(&p, &w[0].w, on_grant, &w[0]));
    CHECK(!gw_pool_acquire(&p, &w[1].w, on_grant, &w[1]));
    CHECK_INT(gw_pool_adapt(&p, 1.0, false), 2);
    CHECK_INT(p.busy, 2);
    CHECK_INT(gw_pool_adapt(&p, 1.0, false), 2); /* every slot in use, nobody waiting: stays */
    gw_pool_release(&p);
    CHECK_INT(gw_pool_adapt(&p, 1.0, false), 1); /* a slot unused with nobody waiting: a step back */
    gw_pool_release(&p);
    CHECK_INT(gw_pool_adapt(&p, 1.0, false), 1);
    CHECK_INT(p.busy, 0);

    /* runs waiting outside the pool (a pool whose limit follows this one's) count as demand */
    gw_pool_init_adaptive(&p, 2, 4);
    memset(w, 0, sizeof(w));
    CHECK(gw_pool_acquire(&p, &w[0].w, on_grant, &w[0]));
    CHECK_INT(gw_pool_adapt(&p, 1.0, false), 2); /* a slot free, nobody waiting: stays at the floor */
    CHECK_INT(gw_pool_adapt(&p, 1.0, true), 3);  /* wanted elsewhere: grows with a slot free here */
    CHECK_INT(gw_pool_adapt(&p, 0.1, true), 2);  /* but not on saturated CPUs */
    CHECK_INT(gw_pool_adapt(&p, 1.0, true), 3);
    CHECK_INT(gw_pool_adapt(&p, 1.0, false), 2); /* no longer wanted and slots unused: back */
    gw_pool_release(&p);

    gw_pool_t m; /* a fixed pool capped below its size for now, as the media pool follows the main one */
    gw_pool_init(&m, 2);
    memset(w, 0, sizeof(w));
    grants = 0;
    gw_pool_set_limit(&m, 1);
    CHECK_INT(m.limit, 1);
    CHECK(gw_pool_acquire(&m, &w[0].w, on_grant, &w[0]));
    CHECK(!gw_pool_acquire(&m, &w[1].w, on_grant, &w[1]));
    gw_pool_set_limit(&m, 5); /* clamped to the size; the waiter gets the slot now free */
    CHECK_INT(m.limit, 2);
    CHECK_INT(w[1].granted_as, 1);
    gw_pool_set_limit(&m, 0); /* at least 1 */
    CHECK_INT(m.limit, 1);
    gw_pool_release(&m);
    gw_pool_release(&m);
    gw_pool_t u;
    gw_pool_init(&u, 0);
    gw_pool_set_limit(&u, 3); /* unlimited stays unlimited */
    CHECK_INT(u.size, 0);
    CHECK(gw_pool_acquire(&u, &w[2].w, on_grant, &w[2]));
    CHECK(gw_pool_acquire(&u, &w[3].w, on_grant, &w[3]));

    gw_pool_t f; /* a fixed pool ignores the samples */
    gw_pool_init(&f, 3);
    CHECK_INT(f.limit, 3);
    CHECK_INT(gw_pool_adapt(&f, 2.0, false), 3);
    CHECK_INT(gw_pool_adapt(&f, 0, false), 3);
    gw_pool_init_adaptive(&f, 4, 4); /* floor == size: nothing to adapt */
    CHECK_INT(f.floor, 0);
    CHECK_INT(f.limit, 4);
    gw_pool_init_adaptive(&f, 2, 6);
    gw_pool_resize(&f, 1); /* resized below the floor: a fixed pool of 1 */
    CHECK_INT(f.floor, 0);
    CHECK_INT(f.limit, 1);
}

/* The CPU meter from fake cgroup and /proc/stat files. */
static void test_meter(void)
{
    snprintf(root, sizeof(root), "/tmp/gw-test-meter-XXXXXX");
    CHECK(mkdtemp(root) != NULL);
    char stat_path[128];
    snprintf(stat_path, sizeof(stat_path), "%s/stat", root);
    cpu_set_t set;
    CHECK(sched_getaffinity(0, sizeof(set), &set) == 0);
    int first = 0;
    while (first < CPU_SETSIZE && !CPU_ISSET(first, &set))
        first++;
    /* no quota: /proc/stat's lines for the CPUs in the affinity mask; one outside it and the aggregate are ignored */
    char text[512];
    snprintf(text, sizeof(text),
             "cpu  900 0 900 900 0 0 0 0 0 0\ncpu%d 100 0 100 300 0 0 0 0 0 0\ncpu%d 5 5 5 5 5 0 0 0 0 0\n"
             "intr 1 2 3\n",
             first, CPU_SETSIZE - 1);
    put("stat", text);
    gw_cpu_meter_t m;
    gw_cpu_meter_init(&m, root, stat_path);
    CHECK(m.quota == 0);
    CHECK(gw_cpu_meter_spare(&m, 1000) < 0); /* the first sample only primes */
    /* +100 ticks, 25 idle (20 idle + 5 iowait): a quarter of one CPU stayed idle */
    snprintf(text, sizeof(text), "cpu  0 0 0 0 0 0 0 0 0 0\ncpu%d 150 0 125 320 5 0 0 0 0 0\ncpu%d 9 9 9 9 9 0 0 0 0 0\n", first,
             CPU_SETSIZE - 1);
    put("stat", text);
    double spare = gw_cpu_meter_spare(&m, 2000);
    CHECK(spare > 0.249 && spare < 0.251);
    gw_cpu_meter_reset(&m);
    CHECK(gw_cpu_meter_spare(&m, 3000) < 0); /* reset: primes again */
    rm("stat");
    CHECK(gw_cpu_meter_spare(&m, 4000) < 0); /* unreadable */

    /* a cgroup v2 quota of 1.5 CPUs: the cgroup's own usage counts, not the machine's */
    put("cpu.max", "150000 100000\n");
    put("cpu.stat", "usage_usec 1000000\nuser_usec 1\n");
    gw_cpu_meter_init(&m, root, stat_path);
    CHECK(m.quota > 1.49 && m.quota < 1.51);
    CHECK(gw_cpu_meter_spare(&m, 1000000000ull) < 0);
    put("cpu.stat", "usage_usec 1500000\nuser_usec 2\n"); /* 0.5 CPU-s in 1 s: 1 CPU of 1.5 idle */
    spare = gw_cpu_meter_spare(&m, 2000000000ull);
    CHECK(spare > 0.99 && spare < 1.01);
    put("cpu.stat", "usage_usec 3500000\n"); /* 2 CPU-s in 1 s (a burst over the quota): none idle, never negative */
    CHECK(gw_cpu_meter_spare(&m, 3000000000ull) == 0);
    rm("cpu.stat");
    /* v1: cpuacct.usage in ns */
    char dir[128];
    snprintf(dir, sizeof(dir), "%s/cpuacct", root);
    CHECK(mkdir(dir, 0700) == 0);
    put("cpuacct/cpuacct.usage", "4000000000\n");
    gw_cpu_meter_reset(&m);
    CHECK(gw_cpu_meter_spare(&m, 4000000000ull) < 0);
    put("cpuacct/cpuacct.usage", "4250000000\n");
    spare = gw_cpu_meter_spare(&m, 4500000000ull); /* 0.25 CPU-s in 0.5 s: 1 CPU idle */
    CHECK(spare > 0.99 && spare < 1.01);
    rm("cpuacct/cpuacct.usage");
    rmdir(dir);
    rm("cpu.max");
    rmdir(root);

    gw_cpu_meter_init(&m, "/sys/fs/cgroup", "/proc/stat"); /* the real ones: two samples, a sane figure */
    gw_cpu_meter_spare(&m, uv_hrtime());
    usleep(20000);
    spare = gw_cpu_meter_spare(&m, uv_hrtime());
    CHECK(spare >= -1 && spare <= (double)gw_pool_usable_cpus("/sys/fs/cgroup") + 0.01);
}

int main(void)
{
    test_fifo();
    test_reentrant();
    test_unlimited_and_resize();
    test_cpus();
    test_adaptive();
    test_meter();
    return check_report();
}
