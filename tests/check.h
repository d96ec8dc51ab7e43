/* check.h - the minimal test harness every tests/test_*.c uses.
 *
 * CHECK(cond) records a failure and continues; CHECK_OK(expr) expects 0 from a vkmoe call and
 * prints vkm_errmsg() otherwise; CHECK_ERR(expr) expects a negative code. check_done() prints
 * "N passed, N failed" and returns the exit status. check_skip() exits 77 (ctest: skipped).
 * xmalloc() is calloc that exits on out of memory. */
#ifndef VKM_CHECK_H
#define VKM_CHECK_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "err.h"

static int check_passed, check_failed;

/* calloc that never returns NULL (exits 1 on out of memory); n == 0 allocates one byte. */
static inline void *xmalloc(size_t n) {
    void *p = calloc(1, n ? n : 1);
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    return p;
}

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (cond) {                                                                                \
            check_passed++;                                                                        \
        } else {                                                                                   \
            check_failed++;                                                                        \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);               \
        }                                                                                          \
    } while (0)

#define CHECK_MSG(cond, ...)                                                                       \
    do {                                                                                           \
        if (cond) {                                                                                \
            check_passed++;                                                                        \
        } else {                                                                                   \
            check_failed++;                                                                        \
            fprintf(stderr, "%s:%d: CHECK failed: %s: ", __FILE__, __LINE__, #cond);               \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
        }                                                                                          \
    } while (0)

#define CHECK_OK(expr)                                                                             \
    do {                                                                                           \
        int check_rc_ = (expr);                                                                    \
        CHECK_MSG(check_rc_ == 0, "%s returned %d: %s", #expr, check_rc_, vkm_errmsg());           \
    } while (0)

#define CHECK_ERR(expr)                                                                            \
    do {                                                                                           \
        int check_rc_ = (expr);                                                                    \
        CHECK_MSG(check_rc_ < 0, "%s returned %d, expected an error", #expr, check_rc_);           \
    } while (0)

#define CHECK_NEAR(a, b, tol)                                                                      \
    do {                                                                                           \
        double check_a_ = (a), check_b_ = (b);                                                     \
        CHECK_MSG(fabs(check_a_ - check_b_) <= (tol), "%s = %g, %s = %g, tol %g", #a, check_a_,    \
                  #b, check_b_, (double)(tol));                                                    \
    } while (0)

static inline int check_done(void) {
    printf("%d passed, %d failed\n", check_passed, check_failed);
    return check_failed ? 1 : 0;
}

static inline void check_skip(const char *why) {
    printf("SKIP: %s\n", why);
    exit(77);
}

#endif
