/* Unit tests for handlers/breaker (the yt-dlp bot-check breaker) and the network options of yt-dlp's argv. */
#include "check.h"
#include "handlers/breaker.h"
#include "handlers/ytdlp.h"
#include <stdlib.h>

static void configure(unsigned threshold)
{
    gw_breaker_opts_t o = {threshold, 10000, 1000, 3500};
    gw_breaker_configure(&o);
}

static void test_opens_and_doubles(void)
{
    uint64_t at;
    bool probe;
    configure(3);
    CHECK(gw_breaker_admit(0, &at, &probe) && !probe);
    CHECK(!gw_breaker_report(100, true, false));
    CHECK(!gw_breaker_report(200, false, false)); /* an answer in between does not reset the count */
    CHECK(!gw_breaker_report(300, true, false));
    CHECK(gw_breaker_state(300) == GW_BREAKER_CLOSED);
    CHECK(gw_breaker_report(400, true, false)); /* the third within the window opens it: reported once */
    CHECK(gw_breaker_state(400) == GW_BREAKER_OPEN && gw_breaker_openings_total() == 1 && gw_breaker_bot_checks_total() == 3);
    CHECK(!gw_breaker_report(500, true, false)); /* a run started before the opening: no second opening */
    CHECK(gw_breaker_openings_total() == 1 && gw_breaker_bot_checks_total() == 4);
    CHECK(!gw_breaker_admit(900, &at, &probe) && at == 1400);
    /* half-open: one probe, others wait */
    CHECK(gw_breaker_state(1400) == GW_BREAKER_HALF_OPEN);
    CHECK(gw_breaker_admit(1400, &at, &probe) && probe);
    CHECK(!gw_breaker_admit(1401, &at, &probe) && at > 1401);
    /* the probe is bot-checked: open again, cool-down doubled, not a new opening */
    CHECK(!gw_breaker_report(1500, true, true));
    CHECK(gw_breaker_cooldown_ms() == 2000 && gw_breaker_reopen_at() == 3500 && gw_breaker_openings_total() == 1);
    CHECK(gw_breaker_admit(3500, &at, &probe) && probe);
    CHECK(!gw_breaker_report(3600, true, true));
    CHECK(gw_breaker_cooldown_ms() == 3500); /* capped */
    CHECK(gw_breaker_admit(7100, &at, &probe) && probe);
    /* the probe gets through: closed, cool-down back to the first */
    CHECK(!gw_breaker_report(7200, false, true));
    CHECK(gw_breaker_state(7200) == GW_BREAKER_CLOSED && gw_breaker_cooldown_ms() == 1000);
    CHECK(gw_breaker_admit(7201, &at, &probe) && !probe);
    json_t *j = gw_breaker_json(7201);
    CHECK_STR(json_string_value(json_object_get(j, "state")), "closed");
    CHECK(json_integer_value(json_object_get(j, "bot_checks_total")) == 6);
    json_decref(j);
}

static void test_window_and_off(void)
{
    uint64_t at;
    bool probe;
    configure(2);
    CHECK(!gw_breaker_report(0, true, false));
    CHECK(!gw_breaker_report(20000, true, false)); /* the first is outside the 10 s window */
    CHECK(gw_breaker_report(25000, true, false));
    /* a probe that never reports (its job was aborted) is abandoned: the next admit sends another */
    CHECK(gw_breaker_admit(26000, &at, &probe) && probe);
    gw_breaker_probe_abandoned();
    CHECK(gw_breaker_admit(26001, &at, &probe) && probe);
    configure(0); /* off */
    for (int i = 0; i < 100; i++)
        CHECK(!gw_breaker_report((uint64_t)i, true, false));
    CHECK(gw_breaker_admit(100, &at, &probe) && gw_breaker_state(100) == GW_BREAKER_CLOSED);
}

static void test_argv_net(void)
{
    char **argv = gw_ytdlp_argv_fetch("yt-dlp", "https://www.youtube.com/watch?v=ok000000000", "/tmp/s", NULL);
    argv = gw_ytdlp_argv_net(argv, "/tmp/s/cookies-fetch.txt", "http://u:p@proxy:3128");
    size_t n = 0, dash = 0, cookies = 0, proxy = 0;
    for (; argv[n] != NULL; n++) {
        if (strcmp(argv[n], "--") == 0)
            dash = n;
        if (strcmp(argv[n], "--cookies") == 0)
            cookies = n;
        if (strcmp(argv[n], "--proxy") == 0)
            proxy = n;
    }
    CHECK(cookies > 0 && cookies < dash && proxy > 0 && proxy < dash && dash == n - 2);
    CHECK_STR(argv[cookies + 1], "/tmp/s/cookies-fetch.txt");
    CHECK_STR(argv[proxy + 1], "http://u:p@proxy:3128");
    CHECK_STR(argv[n - 1], "https://www.youtube.com/watch?v=ok000000000");
    gw_argv_free(argv);
    argv = gw_ytdlp_argv_fetch("yt-dlp", "https://www.youtube.com/watch?v=ok000000000", "/tmp/s", NULL);
    size_t before = 0;
    while (argv[before] != NULL)
        before++;
    argv = gw_ytdlp_argv_net(argv, NULL, NULL);
    n = 0;
    while (argv[n] != NULL)
        n++;
    CHECK(n == before);
    gw_argv_free(argv);
}

static void test_proxy_pick(void)
{
    char out[64];
    const char *list = " http://a:1 ,, socks5://b:2,http://c:3 ";
    CHECK(gw_ytdlp_proxy_pick(list, 0, out, sizeof(out)));
    CHECK_STR(out, "http://a:1");
    CHECK(gw_ytdlp_proxy_pick(list, 1, out, sizeof(out)));
    CHECK_STR(out, "socks5://b:2");
    CHECK(gw_ytdlp_proxy_pick(list, 2, out, sizeof(out)));
    CHECK_STR(out, "http://c:3");
    CHECK(gw_ytdlp_proxy_pick(list, 3, out, sizeof(out)));
    CHECK_STR(out, "http://a:1"); /* in turn */
    CHECK(!gw_ytdlp_proxy_pick("", 0, out, sizeof(out)));
    CHECK(!gw_ytdlp_proxy_pick(NULL, 0, out, sizeof(out)));
    CHECK(!gw_ytdlp_proxy_pick(" , ", 0, out, sizeof(out)));
    CHECK(!gw_ytdlp_proxy_pick("http://a-very-long-proxy-name:1", 0, out, 8)); /* does not fit: refused, not cut */
}

int main(void)
{
    test_opens_and_doubles();
    test_window_and_off();
    test_argv_net();
    test_proxy_pick();
    return check_report();
}
