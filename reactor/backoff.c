#include "reactor/backoff.h"
#include <time.h>
#include <unistd.h>

/* splitmix64: jitter only needs to decorrelate workers, not be cryptographic. */
static uint64_t jitter_next(void)
{
    static uint64_t state;
    if (state == 0) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        state = ((uint64_t)ts.tv_sec * 1000000007u) ^ (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 32) ^ (uintptr_t)&state;
        state |= 1;
    }
    uint64_t z = (state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

uint64_t gw_backoff_ms(unsigned attempt, uint64_t base_ms, uint64_t cap_ms, uint64_t retry_after_ms)
{
    uint64_t ceiling = base_ms;
    for (unsigned i = 0; i < attempt && ceiling < cap_ms; i++)
        ceiling = ceiling > UINT64_MAX / 2 ? UINT64_MAX : ceiling * 2;
    if (ceiling > cap_ms)
        ceiling = cap_ms;
    uint64_t delay = ceiling == UINT64_MAX ? jitter_next() : jitter_next() % (ceiling + 1);
    return delay < retry_after_ms ? retry_after_ms : delay;
}
