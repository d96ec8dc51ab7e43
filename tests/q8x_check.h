/* q8x_check.h - the check of 8-bit activations a GPU kernel wrote (the Q8X format of
 * shaders/matmul_common.h: quant_q8.comp, the norms' q8 variants) against vkm_ref_quant_q8x of
 * the same floats, shared by test_gpu_matmul.c and test_gpu_ops.c. Codes equal or one apart (a
 * rounding tie broken the other way by an ulp of x * 127 / max |x|), at most 1% of them; d within
 * 1e-6 relative, the half sums within that and 2 d. Header-only (each test is one executable). */
#ifndef VKMOE_TESTS_Q8X_CHECK_H
#define VKMOE_TESTS_Q8X_CHECK_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "ref_matmul.h"

/* got: n rows of k / 32 blocks (k a multiple of 32) of the quantized x[n][k]. */
static inline void check_q8x(const char *what, const uint8_t *got, const float *x, int64_t n,
                             int64_t k) {
    const size_t rb = (size_t)(k / 32) * VKM_REF_Q8X_BLOCK;
    uint8_t *want = malloc(rb);
    if (!want) {
        CHECK_MSG(0, "%s: out of memory", what);
        return;
    }
    int off1 = 0, bad = 0;
    for (int64_t r = 0; r < n; r++) {
        CHECK_OK(vkm_ref_quant_q8x(x + r * k, k, want));
        const uint8_t *g = got + (size_t)r * rb;
        for (size_t i = 0; i < rb; i++) {
            if (i % VKM_REF_Q8X_BLOCK < 32) {
                const int d = (int8_t)g[i] - (int8_t)want[i];
                off1 += d == 1 || d == -1;
                bad += d > 1 || d < -1;
            } else if (i % 4 == 0) { /* d, then d * the half's sum (a flipped code: d more) */
                float a, w, d;
                memcpy(&a, g + i, 4);
                memcpy(&w, want + i, 4);
                memcpy(&d, want + i - i % VKM_REF_Q8X_BLOCK + 32, 4);
                const float tol = 1e-6f * fabsf(w) + (i % 8 == 4 ? 2.0f * d : 0.0f);
                bad += !(fabsf(a - w) <= tol);
            }
        }
    }
    CHECK_MSG(bad == 0 && off1 * 100 <= n * k, "%s: quantized X: %d values off, %d one apart", what,
              bad, off1);
    free(want);
}

#endif
