#ifndef GW_BACKOFF_H
#define GW_BACKOFF_H
/* Retry delays. It lives in reactor/ because it knows nothing about what is retried: the Gemini calls and the Files API
 * upload (handlers/) both use it, and neither should depend on the other for it. */
#include <stdint.h>

/* Exponential backoff with full jitter: uniform in [0, min(cap, base * 2^attempt)], but never
 * less than retry_after_ms (the server's word wins over the cap). attempt 0 = first retry. */
uint64_t gw_backoff_ms(unsigned attempt, uint64_t base_ms, uint64_t cap_ms, uint64_t retry_after_ms);

#endif
