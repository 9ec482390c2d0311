#ifndef GW_TEST_CHECK_H
#define GW_TEST_CHECK_H
/* Minimal assertion helpers for unit tests: count, report, exit non-zero on any failure. */
#include <stdio.h>
#include <string.h>

static int gw_check_passed, gw_check_failed;

#define CHECK(cond)                                                                                                                \
    do {                                                                                                                           \
        if (cond) {                                                                                                                \
            gw_check_passed++;                                                                                                     \
        } else {                                                                                                                   \
            gw_check_failed++;                                                                                                     \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);                                               \
        }                                                                                                                          \
    } while (0)

#define CHECK_STR(a, b)                                                                                                            \
    do {                                                                                                                           \
        const char *a_ = (a), *b_ = (b);                                                                                           \
        if (a_ != NULL && b_ != NULL && strcmp(a_, b_) == 0) {                                                                     \
            gw_check_passed++;                                                                                                     \
        } else {                                                                                                                   \
            gw_check_failed++;                                                                                                     \
            fprintf(stderr, "%s:%d: CHECK_STR failed: %s == \"%s\", expected \"%s\"\n", __FILE__, __LINE__, #a,                    \
                    a_ ? a_ : "(null)", b_ ? b_ : "(null)");                                                                       \
        }                                                                                                                          \
    } while (0)

#define CHECK_INT(a, b)                                                                                                            \
    do {                                                                                                                           \
        long long a_ = (long long)(a), b_ = (long long)(b);                                                                        \
        if (a_ == b_) {                                                                                                            \
            gw_check_passed++;                                                                                                     \
        } else {                                                                                                                   \
            gw_check_failed++;                                                                                                     \
            fprintf(stderr, "%s:%d: CHECK_INT failed: %s == %lld, expected %lld\n", __FILE__, __LINE__, #a, a_, b_);               \
        }                                                                                                                          \
    } while (0)

/* Prints the closing line ctest users read and returns the process exit code. */
static inline int check_report(void)
{
    printf("%d passed, %d failed\n", gw_check_passed, gw_check_failed);
    return gw_check_failed == 0 && gw_check_passed > 0 ? 0 : 1;
}

#endif
