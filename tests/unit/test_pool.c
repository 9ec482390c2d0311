#include "check.h"
#include "reactor/pool.h"
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

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

int main(void)
{
    test_fifo();
    test_reentrant();
    test_unlimited_and_resize();
    test_cpus();
    return check_report();
}
