/* Unit tests for reactor/backoff (moved from test_gemini.c with the function). */
#include "check.h"
#include "reactor/backoff.h"
#include <stdint.h>

static void test_backoff(void)
{
    for (int i = 0; i < 2000; i++) {
        unsigned attempt = (unsigned)(i % 12);
        uint64_t ceiling = 500ull << attempt;
        if (ceiling > 30000)
            ceiling = 30000;
        uint64_t d = gw_backoff_ms(attempt, 500, 30000, 0);
        CHECK(d <= ceiling);
        d = gw_backoff_ms(attempt, 500, 30000, 26500);
        CHECK(d >= 26500 && d <= 30000);
        CHECK(gw_backoff_ms(attempt, 500, 30000, 90000) == 90000); /* the server wins over the cap */
    }
    /* Full jitter actually spreads. */
    uint64_t lo = UINT64_MAX, hi = 0;
    for (int i = 0; i < 200; i++) {
        uint64_t d = gw_backoff_ms(4, 1000, 60000, 0);
        lo = d < lo ? d : lo;
        hi = d > hi ? d : hi;
    }
    CHECK(hi - lo > 4000);
    CHECK(gw_backoff_ms(200, 1000, 60000, 0) <= 60000); /* no overflow on huge attempts */
}

int main(void)
{
    test_backoff();
    return check_report();
}
