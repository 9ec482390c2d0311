/* handlers/governor: the quota arithmetic (limits, prices, estimates, the GCRA schedule that sql/015 mirrors) and the
 * FIFO on the loop without a database (order, spacing, pause, cancel). */
#include "check.h"
#include "handlers/governor.h"
#include "reactor/log.h"
#include <math.h>
#include <stdlib.h>

static void limits(void)
{
    long v = -1;
    CHECK_INT(gw_gov_limit_for("0", "m", &v), 0);
    CHECK_INT(v, 0);
    CHECK_INT(gw_gov_limit_for("", "m", &v), 0);
    CHECK_INT(v, 0);
    CHECK_INT(gw_gov_limit_for("20", "gemini-3.6-flash", &v), 0);
    CHECK_INT(v, 20);
    const char *spec = " 20 , gemini-3.1-pro-preview = 5,gemini-3.6-flash=1000";
    CHECK_INT(gw_gov_limit_for(spec, "gemini-3.1-pro-preview", &v), 0);
    CHECK_INT(v, 5);
    CHECK_INT(gw_gov_limit_for(spec, "gemini-3.6-flash", &v), 0);
    CHECK_INT(v, 1000);
    CHECK_INT(gw_gov_limit_for(spec, "gemini-3.5-flash", &v), 0);
    CHECK_INT(v, 20); /* the bare number applies to models not named */
    CHECK_INT(gw_gov_limit_for("gemini-3.1-pro-preview=5", "other", &v), 0);
    CHECK_INT(v, 0); /* named models only: the others are unlimited */
    CHECK_INT(gw_gov_limit_for("gemini-3.6-flash", "m", &v), -1);
    const char *bad[] = {"-1", "abc", "x=", "=5", "5.5", "m=-3", "1e99", "m=1x", NULL};
    for (size_t i = 0; bad[i] != NULL; i++)
        CHECK_INT(gw_gov_limit_for(bad[i], NULL, &v), -1);
}

static void prices(void)
{
    gw_gov_price_t p;
    CHECK_INT(gw_gov_price_for("a=0.5/3,b=2/12/10", "b", &p), 1);
    CHECK(p.input == 2 && p.output == 12 && p.thinking == 10);
    CHECK_INT(gw_gov_price_for("a=0.5/3,b=2/12/10", "a", &p), 1);
    CHECK(p.input == 0.5 && p.output == 3 && p.thinking == 3); /* thinking defaults to the output price */
    CHECK_INT(gw_gov_price_for("a=0.5/3", "c", &p), 0);
    const char *bad[] = {"a", "a=1", "a=1/2/3/4", "a=x/2", "=1/2", "a=1//2", "a=-1/2", NULL};
    for (size_t i = 0; bad[i] != NULL; i++)
        CHECK_INT(gw_gov_price_for(bad[i], NULL, &p), -1);
    gw_gov_price_t flash = {1.5, 9, 9};
    gw_usage_t u = {1000000, 100000, 200000};
    CHECK(fabs(gw_gov_cost_usd(&flash, &u) - (1.5 + 0.9 + 1.8)) < 1e-9);
    gw_usage_t unknown = {-1, -1, 500000};
    CHECK(fabs(gw_gov_cost_usd(&flash, &unknown) - 4.5) < 1e-9);
}

static void estimates(void)
{
    CHECK_INT(gw_gov_estimate_tokens(4000, GW_GOV_MEDIA_NONE, 600, 8192), 1000 + 8192); /* no media: seconds ignored */
    CHECK_INT(gw_gov_estimate_tokens(4001, GW_GOV_MEDIA_NONE, 0, 0), 1001);
    CHECK_INT(gw_gov_estimate_tokens(400, GW_GOV_MEDIA_AUDIO, 60, 8192), 100 + 60 * 32 + 8192);
    CHECK_INT(gw_gov_estimate_tokens(400, GW_GOV_MEDIA_VIDEO_LOW, 60, 8192), 100 + 6000 + 8192);
    CHECK_INT(gw_gov_estimate_tokens(400, GW_GOV_MEDIA_VIDEO, 60, -1), 100 + 18000);
    CHECK_INT(gw_gov_window_us(60000), 61875000);
    CHECK_INT(gw_gov_window_us(2000), 2062500);
}

static void schedule(void)
{
    gw_gov_bucket_t b;
    int64_t w, win = 1000000;
    gw_gov_bucket_init(&b);
    for (int i = 0; i < 4; i++) { /* 10 per window: reservations 100 ms apart, in order */
        CHECK(gw_gov_reserve(&b, 0, 0, 10, 0, win, &w));
        CHECK_INT(w, i * 100000);
    }
    CHECK(gw_gov_reserve(&b, 5000000, 0, 10, 0, win, &w)); /* idle for a while: no wait, no saved-up burst */
    CHECK_INT(w, 0);
    CHECK(gw_gov_reserve(&b, 5000000, 0, 10, 0, win, &w));
    CHECK_INT(w, 100000);

    gw_gov_bucket_init(&b); /* tokens: 500 of 1000 per window push the next start by half a window */
    CHECK(gw_gov_reserve(&b, 0, 500, 0, 1000, win, &w) && w == 0);
    CHECK(gw_gov_reserve(&b, 0, 500, 0, 1000, win, &w) && w == 500000);
    gw_gov_settle(&b, -400, 1000, win); /* the second call used 100: 400 given back */
    CHECK(gw_gov_reserve(&b, 0, 100, 0, 1000, win, &w) && w == 600000);
    CHECK(gw_gov_reserve(&b, 0, 0, 0, 0, win, &w) && w == 0); /* no limits: nothing waits */

    gw_gov_bucket_init(&b); /* a pause: nothing reserved until it ends, then spacing resumes from there */
    gw_gov_pause(&b, 1000, 2000);
    CHECK(!gw_gov_reserve(&b, 1000, 0, 10, 0, win, &w));
    CHECK_INT(w, 2000000);
    gw_gov_pause(&b, 1000, 500); /* a shorter pause never shortens a longer one */
    CHECK(!gw_gov_reserve(&b, 1500000, 0, 10, 0, win, &w) && w == 501000);
    CHECK(gw_gov_reserve(&b, 2001000, 0, 10, 0, win, &w) && w == 0);

    /* the point of even spacing: requests arriving at random times never put limit + 1 into any sliding window */
    long rpm = 7;
    int64_t window = 600000, spaced = gw_gov_window_us(600), starts[400];
    gw_gov_bucket_init(&b);
    srand(7);
    int64_t now = 0;
    for (int i = 0; i < 400; i++) {
        now += rand() % 150000;
        CHECK(gw_gov_reserve(&b, now, 0, rpm, 0, spaced, &w));
        starts[i] = now + w;
    }
    int worst = 0;
    for (int i = 0; i < 400; i++) {
        int n = 0;
        for (int k = i; k < 400 && starts[k] < starts[i] + window; k++)
            n++;
        worst = n > worst ? n : worst;
    }
    CHECK(worst <= rpm);
    CHECK(worst == rpm); /* and the limit is reached: the spacing wastes nothing beyond the margin */
}

/* ---- the FIFO on the loop, local mode (no database) ---- */

static uint64_t started[8];
static int order[8], nstarted;
static uv_loop_t *loop;

static void go(void *data)
{
    int i = (int)(intptr_t)data;
    started[i] = uv_now(loop);
    order[nstarted++] = i;
}

static void fifo(void)
{
    uv_loop_t l;
    uv_loop_init(&l);
    loop = &l;
    gw_settings_t cfg = {0};
    cfg.gemini_rpm = "m=4";
    cfg.gemini_tpm = "0";
    cfg.gemini_prices = "m=1/2/3";
    cfg.gemini_rpm_window_ms = 320; /* 4 per 320 ms: one start every 82.5 ms */
    char err[200];
    CHECK(gw_governor_create(&l, NULL, &(gw_settings_t){.gemini_rpm = "x", .gemini_tpm = "0", .gemini_prices = ""}, err,
                             sizeof(err)) == NULL);
    CHECK(strstr(err, "GEMINI_RPM") != NULL);
    gw_governor_t *g = gw_governor_create(&l, NULL, &cfg, err, sizeof(err));
    CHECK(g != NULL);
    gw_usage_t u = {1000000, 0, 0};
    double usd = 0;
    CHECK(gw_governor_cost(g, "m", &u, &usd) && usd == 1.0);
    CHECK(!gw_governor_cost(g, "other", &u, &usd));
    uv_update_time(&l);
    uint64_t t0 = uv_now(&l);
    gw_gov_ticket_t *t[6];
    for (int i = 0; i < 6; i++)
        t[i] = gw_governor_acquire(g, "m", 10, go, (void *)(intptr_t)i);
    CHECK_INT(nstarted, 0); /* never called from inside acquire */
    gw_governor_cancel(t[2]);
    uv_run(&l, UV_RUN_DEFAULT);
    CHECK_INT(nstarted, 5);
    int want[] = {0, 1, 3, 4, 5};
    for (int i = 0; i < 5 && i < nstarted; i++)
        CHECK_INT(order[i], want[i]);
    for (int i = 0; i < nstarted; i++) /* never before its slot, one per 82.5 ms (the cancelled call's slot stays spent);
                                        * a busy loop may start it later, never earlier */
        CHECK(started[order[i]] - t0 >= (uint64_t)order[i] * 82);
    CHECK(started[order[nstarted - 1]] - t0 < 5 * 83 + 1000); /* and not stuck */

    /* a pause holds a call reserved before it until it ends; another model is not held */
    nstarted = 0;
    uv_update_time(&l);
    t0 = uv_now(&l);
    gw_governor_acquire(g, "m", 0, go, (void *)(intptr_t)0);
    gw_governor_pause(g, "m", 250);
    gw_governor_acquire(g, "n", 0, go, (void *)(intptr_t)1);
    uv_run(&l, UV_RUN_DEFAULT);
    CHECK_INT(nstarted, 2);
    CHECK_INT(order[0], 1);
    CHECK(started[0] - t0 >= 250);
    gw_governor_free(g);
    CHECK_INT(uv_loop_close(&l), 0);
}

int main(void)
{
    gw_log_init(GW_LOG_WARN, false);
    limits();
    prices();
    estimates();
    schedule();
    fifo();
    gw_log_dispose();
    return check_report();
}
