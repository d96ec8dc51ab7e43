/* test_gpu_iq.c - the matmul kernels and get_rows on the IQ weight types (IQ1_S, IQ1_M, IQ2_XXS,
 * IQ2_XS, IQ2_S, IQ3_XXS, IQ3_S, IQ4_NL, IQ4_XS) against the CPU reference (core/ref_matmul.c,
 * core/ref_quant.c), in whichever kernel layout the device and VKMOE_KERNELS pick (ctest runs it
 * in the CPU-device layouts cpu, cpu64 and the GPU ones ksplit, sg, gpu, idot, float).
 *
 * Lean on purpose: every pipeline variant costs lavapipe compile time with a cold Mesa cache,
 * so per type only the forms the engine uses: a GEMV of 1 column (X 16-byte aligned, as the
 * engine's activations are: the CPU kernels' XAL form), a GEMV of 3 columns over 3 blocks (X
 * unaligned), a GEMM of 20 columns, the indexed expert rows at decode (one token routed to 3 of
 * 4 matrices) and at prefill (GEMM, empty matrices), the gated form at decode, get_rows; for two
 * types also the GEMV variants of 2 and 5..8 columns and the per-head form (IQ4_NL is the type
 * llama-quantize gives attn_k_b / attn_v_b). Rows are not a multiple of a workgroup, and W lies
 * at an even offset that is no multiple of 4 (nor of 256). Where the plan picks gemv.comp for the
 * type (the gpu, idot and float layouts) also its forms one by one: plain GEMVs of 1..7 columns
 * (two counts a type, all seven over the nine types and each for IQ4_NL / IQ4_XS, the types
 * whose levels come from byte tables; gemv compiles one variant per count) with k of 5 and 9
 * blocks (IQ4_NL 5 and 37), W at a multiple of 16 bytes as well as at 1002 (the
 * 56- and 136-byte IQ1_M / IQ4_XS blocks keep one parity along a row, so both realignments are
 * reached), X aligned and not; indexed expert rows of 0..3 entries a matrix, plain and gated
 * (passes of 2 columns), per head; the two-matrix forms (q_a + kv_a; the shared expert beside
 * the routed ones, plain or gated), which those layouts must take in one dispatch.
 *
 * The IQ types have no quantizer: the weights are random bytes (every grid index, sign and scale
 * field random) with the f16 block scale set to a random finite value in +-[1/64, 1/8) (IQ1_M:
 * its nibbles in the scale words), so GPU and reference decode the same bytes. Tolerance per
 * output as test_gpu_matmul: |gpu - ref| <= 2e-5 * sum_k |w_k x_k| + 1e-6 (f32 decode and
 * accumulation against the reference's exact sum). Guard values around the outputs check that
 * nothing else is written; a validation error fails the test. W and X buffers end TEX_SLACK
 * bytes past the data, so that CPU devices view them as texels (the matmul_tex_* kernels). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../shaders/matmul_common.h"
#include "check.h"
#include "fp16.h"
#include "gpu.h"
#include "kernels.h"
#include "ops.h"
#include "ops_matmul.h"
#include "qtype.h"
#include "ref_matmul.h"
#include "ref_ops.h"
#include "ref_quant.h"

#define GUARD 12345.0f
#define TEX_SLACK 16
#define W_PAD 1002
#define W_AL 1024 /* bytes: W at a multiple of 16 */
#define X_UNAL 36 /* bytes: 9 floats, X rows not 16-byte aligned */
#define X_AL 64
#define Y_PAD 512

static const uint32_t g_types[] = {VKM_IQ1_S,   VKM_IQ1_M, VKM_IQ2_XXS, VKM_IQ2_XS, VKM_IQ2_S,
                                   VKM_IQ3_XXS, VKM_IQ3_S, VKM_IQ4_NL,  VKM_IQ4_XS};

static uint64_t g_rng = 0x9E3779B97F4A7C15ull;
static uint32_t rnd(void) {
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return (uint32_t)(g_rng >> 32);
}
static float frand(void) { /* uniform in [-1, 1) */
    return (float)((rnd() >> 8) * (2.0 / 16777216.0) - 1.0);
}

/* A random f16 in +-[1/64, 1/8). */
static uint16_t rand_scale(void) {
    float v = (1.0f + (float)(rnd() % 1024) / 1024.0f) / 64.0f * (float)(1u << (rnd() % 3));
    return (uint16_t)(vkm_fp16_from_f32(v) | (rnd() & 1u) << 15);
}

/* rows x k weights of type t: random blocks with a finite scale (see the top comment); also
 * their dequantized values. */
static int make_weights(uint32_t t, int64_t k, int64_t rows, uint8_t **wq, float **wf,
                        size_t *bytes) {
    const vkm_qtype_info *qi = vkm_qtype_get(t);
    const size_t rb = vkm_ref_row_bytes(t, k), nb = (size_t)(k / qi->block) * (size_t)rows;
    *bytes = rb * (size_t)rows;
    *wq = malloc(*bytes);
    *wf = malloc((size_t)(k * rows) * sizeof **wf);
    if (!*wq || !*wf) return VKM_ENOMEM;
    for (size_t i = 0; i < *bytes; i++) (*wq)[i] = (uint8_t)rnd();
    for (size_t b = 0; b < nb; b++) {
        uint8_t *p = *wq + b * qi->bytes;
        const uint16_t d = rand_scale();
        if (t == VKM_IQ1_M) /* nibble i of d = bits 12-15 of scale word i (bytes 48..55) */
            for (int i = 0; i < 4; i++)
                p[49 + 2 * i] = (uint8_t)((p[49 + 2 * i] & 0x0F) | ((d >> (4 * i)) & 0xF) << 4);
        else
            p[0] = (uint8_t)d, p[1] = (uint8_t)(d >> 8);
    }
    int rc = 0;
    for (int64_t r = 0; r < rows && !rc; r++)
        rc = vkm_ref_dequant_row(t, *wq + (size_t)r * rb, *wf + r * k, k);
    return rc;
}

/* The idot layout's GEMVs (the plan's gemv_idot[t], at most VKM_MM_VEC_MAX_COLS entries a
 * matrix) multiply X rounded to 8 bits (quant_q8.comp): the reference then gets the same rounded
 * X (vkm_ref_quant_q8x / _dequant_q8x) and 5e-4 * sum |w x| more tolerance, as in
 * test_gpu_matmul (a code rounded the other way where GPU and CPU differ by an ulp). g_rel is the
 * relative tolerance of the current case. */
static double g_rel = 2e-5;
static bool q8_round(vkm_gpu *gpu, uint32_t t, int64_t cols, float *x, int64_t rows, int64_t k) {
    g_rel = 2e-5;
    if (!vkm_gpu_plan(gpu)->gemv_idot[t] || cols > VKM_MM_VEC_MAX_COLS) return false;
    uint8_t *b = malloc((size_t)(k / 32) * VKM_REF_Q8X_BLOCK);
    CHECK(b != NULL);
    for (int64_t r = 0; b && r < rows; r++) {
        CHECK_OK(vkm_ref_quant_q8x(x + r * k, k, b));
        CHECK_OK(vkm_ref_dequant_q8x(b, k, x + r * k));
    }
    free(b);
    g_rel = 2e-5 + 5e-4;
    return true;
}

/* Compares got[n][m] (row stride gs) with want[n][m]; mag[n][m] = sum |w x|. */
static void compare(const char *what, const float *got, int64_t gs, const float *want,
                    const double *mag, int64_t n, int64_t m) {
    int bad = 0;
    for (int64_t j = 0; j < n; j++)
        for (int64_t r = 0; r < m; r++) {
            double g = got[j * gs + r], w = want[j * m + r];
            double tol = g_rel * mag[j * m + r] + 1e-6;
            if (!(fabs(g - w) <= tol)) {
                if (bad < 5)
                    fprintf(stderr, "  %s: y[%lld][%lld] = %.9g, want %.9g (tol %.3g)\n", what,
                            (long long)j, (long long)r, g, w, tol);
                bad++;
            }
        }
    CHECK_MSG(bad == 0, "%s: %d of %lld outputs off", what, bad, (long long)(n * m));
}

/* mag[j][r] = sum_i |W[r][i] X[j][i]|. */
static void magnitude(const float *wf, int64_t k, int64_t m, const float *x, int64_t n,
                      double *mag) {
    for (int64_t j = 0; j < n; j++)
        for (int64_t r = 0; r < m; r++) {
            double s = 0;
            for (int64_t i = 0; i < k; i++) s += fabs((double)wf[r * k + i] * x[j * k + i]);
            mag[j * m + r] = s;
        }
}

static int count_guards(const float *y, size_t n_floats, size_t lo, size_t hi) {
    int bad = 0;
    for (size_t i = 0; i < n_floats; i++) bad += (i < lo || i >= hi) && y[i] != GUARD;
    return bad;
}

/* W {k, m} x X [n][k] (at byte xo) -> Y [n][m] against vkm_ref_matmul, with guards around Y. */
static void test_plain(vkm_gpu *gpu, uint32_t t, int64_t k, int64_t m, int64_t n, size_t xo,
                       size_t wo) {
    char what[96];
    snprintf(what, sizeof what, "%s k=%lld m=%lld n=%lld%s%s", vkm_qtype_name(t), (long long)k,
             (long long)m, (long long)n, xo % 16 ? "" : " (X aligned)",
             wo % 16 ? "" : " (W aligned)");
    uint8_t *wq = NULL;
    float *wf = NULL, *x = malloc((size_t)(n * k) * 4), *want = malloc((size_t)(n * m) * 4);
    const size_t yb = Y_PAD + (size_t)(n * m) * 4 + 64;
    float *got = malloc(yb);
    double *mag = malloc((size_t)(n * m) * sizeof *mag);
    vkm_gpu_buf *bw = NULL, *bx = NULL, *by = NULL;
    size_t wb = 0;
    if (!x || !want || !got || !mag || make_weights(t, k, m, &wq, &wf, &wb)) {
        CHECK_MSG(0, "%s: setup failed: %s", what, vkm_errmsg());
        goto out;
    }
    for (int64_t i = 0; i < n * k; i++) x[i] = frand();
    for (size_t i = 0; i < yb / 4; i++) got[i] = GUARD;
    q8_round(gpu, t, n, x, n, k);
    CHECK_OK(vkm_ref_matmul(t, wq, k, m, x, n, want));
    magnitude(wf, k, m, x, n, mag);
    CHECK_OK(vkm_gpu_buf_create(gpu, wo + wb + 6 + TEX_SLACK, VKM_BUF_DEVICE, &bw));
    CHECK_OK(
        vkm_gpu_buf_create(gpu, xo + (size_t)(n * k) * 4 + 8 + TEX_SLACK, VKM_BUF_DEVICE, &bx));
    CHECK_OK(vkm_gpu_buf_create(gpu, yb, VKM_BUF_DEVICE, &by));
    if (!bw || !bx || !by) goto out;
    CHECK_OK(vkm_gpu_upload(gpu, bw, wo, wq, wb));
    CHECK_OK(vkm_gpu_upload(gpu, bx, xo, x, (size_t)(n * k) * 4));
    CHECK_OK(vkm_gpu_upload(gpu, by, 0, got, yb));
    CHECK_OK(vkm_gpu_begin(gpu));
    CHECK_OK(vkm_op_matmul(gpu, t, bw, wo, k, m, bx, xo, n, by, Y_PAD));
    CHECK_OK(vkm_gpu_submit(gpu));
    CHECK_OK(vkm_gpu_download(gpu, by, 0, got, yb));
    compare(what, got + Y_PAD / 4, m, want, mag, n, m);
    const int guards = count_guards(got, yb / 4, Y_PAD / 4, Y_PAD / 4 + (size_t)(n * m));
    CHECK_MSG(guards == 0, "%s: %d guard values overwritten", what, guards);
out:
    vkm_gpu_buf_destroy(gpu, bw);
    vkm_gpu_buf_destroy(gpu, bx);
    vkm_gpu_buf_destroy(gpu, by);
    free(wq), free(wf), free(x), free(want), free(got), free(mag);
}

/* Y [n_rows][m] against want (glu: gate outputs, then up outputs, each n_rows x m; mag alike):
 * the plain form by compare, the gated one with the matmul tolerance of each factor carried
 * through silu(g) * u (|silu'| <= 1.1). */
static void check_y(const char *what, const float *y, const float *want, const double *mag,
                    int64_t n_rows, int64_t m, bool glu) {
    if (!glu) {
        compare(what, y, m, want, mag, n_rows, m);
        return;
    }
    int bad = 0;
    for (int64_t i = 0; i < n_rows * m; i++) {
        const double g = want[i], u = want[n_rows * m + i], tg = g_rel * mag[i] + 1e-6;
        const double tu = g_rel * mag[n_rows * m + i] + 1e-6, w = (double)vkm_ref_silu(want[i]) * u;
        const double tol = 1.1 * tg * fabs(u) + fabs(g / (1.0 + exp(-g))) * tu + tg * tu + 1e-6;
        if (!(fabs(y[i] - w) <= tol) && bad++ < 5)
            fprintf(stderr, "  %s: y[%lld] = %.9g, want %.9g (tol %.3g)\n", what, (long long)i,
                    y[i], w, tol);
    }
    CHECK_MSG(bad == 0, "%s: %d of %lld outputs off", what, bad, (long long)(n_rows * m));
}

/* The indexed forms over n_mat stacked {k, m} matrices. Expert rows (n_tok 0): counts[e] entries
 * of matrix e, entry p reading X row (7p + e) % n_x; with glu, gate stack G then up stack U
 * right after it in the same buffer (the fused layout of a GGUF file), Y = silu(G x) * (U x).
 * Per head (n_tok > 0): matrix e multiplies X row i * n_mat + e into Y row i * n_mat + e. */
static void test_id(vkm_gpu *gpu, uint32_t t, int64_t k, int64_t m, int64_t n_mat,
                    const int32_t *counts, int64_t n_x, int64_t n_tok, bool glu, size_t wo) {
    char what[128];
    int64_t n_rows = 0, max_c = 0;
    for (int64_t e = 0; n_tok == 0 && e < n_mat; e++) {
        n_rows += counts[e];
        if (counts[e] > max_c) max_c = counts[e];
    }
    if (n_tok) n_rows = n_x = n_tok * n_mat;
    snprintf(what, sizeof what, "%s id-%s%s k=%lld m=%lld mats=%lld rows=%lld%s", vkm_qtype_name(t),
             n_tok ? "heads" : "rows", glu ? " glu" : "", (long long)k, (long long)m,
             (long long)n_mat, (long long)n_rows, wo % 16 ? "" : " (W aligned)");
    uint8_t *wq = NULL;
    float *wf = NULL, *x = malloc((size_t)(n_x * k) * 4), *xg = malloc((size_t)(n_rows * k) * 4);
    float *want = malloc((size_t)(n_rows * m) * 4 * 2);
    const size_t yb = Y_PAD + (size_t)(n_rows * m) * 4 + 64;
    float *got = malloc(yb);
    double *mag = malloc((size_t)(n_rows * m) * sizeof *mag * 2);
    int32_t *rows = malloc((size_t)n_rows * 4), *mat_of = malloc((size_t)n_rows * 4);
    int32_t *mats = malloc((size_t)n_mat * 8);
    vkm_gpu_buf *bw = NULL, *bx = NULL, *by = NULL, *bi = NULL, *bs = NULL;
    const int64_t n_w = glu ? 2 : 1; /* stacks: G (and U) */
    size_t wb = 0;
    if (!x || !xg || !want || !got || !mag || !rows || !mat_of || !mats ||
        make_weights(t, k, m * n_mat * n_w, &wq, &wf, &wb)) {
        CHECK_MSG(0, "%s: setup failed: %s", what, vkm_errmsg());
        goto out;
    }
    for (int64_t i = 0; i < n_x * k; i++) x[i] = frand();
    q8_round(gpu, t, n_tok ? n_tok : max_c, x, n_x, k);
    for (size_t i = 0; i < yb / 4; i++) got[i] = GUARD;
    int64_t p = 0;
    for (int64_t e = 0; e < n_mat; e++) {
        mats[2 * e] = (int32_t)p;
        mats[2 * e + 1] = n_tok ? 0 : counts[e];
        for (int32_t i = 0; n_tok == 0 && i < counts[e]; i++, p++) {
            rows[p] = (int32_t)((p * 7 + e) % n_x);
            mat_of[p] = (int32_t)e;
        }
    }
    for (int64_t r = 0; n_tok && r < n_rows; r++)
        rows[r] = (int32_t)r, mat_of[r] = (int32_t)(r % n_mat);
    for (int64_t q = 0; q < n_rows; q++) {
        memcpy(xg + q * k, x + rows[q] * k, (size_t)k * 4);
        for (int64_t s = 0; s < n_w; s++)
            magnitude(wf + ((s * n_mat) + mat_of[q]) * m * k, k, m, xg + q * k, 1,
                      mag + (s * n_rows + q) * m);
    }
    const size_t half = wb / (size_t)n_w;
    for (int64_t s = 0; s < n_w; s++)
        CHECK_OK(vkm_ref_matmul_id(t, wq + s * half, k, m, n_mat, xg, n_rows, mat_of,
                                   want + s * n_rows * m));
    const size_t ro = 20, mo = ro + (size_t)n_rows * 4 + 4;
    CHECK_OK(vkm_gpu_buf_create(gpu, wo + wb + 2 + TEX_SLACK, VKM_BUF_DEVICE, &bw));
    CHECK_OK(
        vkm_gpu_buf_create(gpu, X_UNAL + (size_t)(n_x * k) * 4 + TEX_SLACK, VKM_BUF_DEVICE, &bx));
    CHECK_OK(vkm_gpu_buf_create(gpu, yb, VKM_BUF_DEVICE, &by));
    CHECK_OK(vkm_gpu_buf_create(gpu, mo + (size_t)n_mat * 8, VKM_BUF_DEVICE, &bi));
    CHECK_OK(vkm_gpu_buf_create(gpu, 256 + (size_t)(n_rows * m) * 8, VKM_BUF_DEVICE, &bs));
    if (!bw || !bx || !by || !bi || !bs) goto out;
    CHECK_OK(vkm_gpu_upload(gpu, bw, wo, wq, wb));
    CHECK_OK(vkm_gpu_upload(gpu, bx, X_UNAL, x, (size_t)(n_x * k) * 4));
    CHECK_OK(vkm_gpu_upload(gpu, by, 0, got, yb));
    CHECK_OK(vkm_gpu_upload(gpu, bi, ro, rows, (size_t)n_rows * 4));
    CHECK_OK(vkm_gpu_upload(gpu, bi, mo, mats, (size_t)n_mat * 8));
    vkm_matmul_id a = {.wtype = t,
                       .w = bw,
                       .w_off = wo,
                       .k = k,
                       .m = m,
                       .n_mat = n_mat,
                       .x = bx,
                       .x_off = X_UNAL,
                       .n_x = n_x,
                       .y = by,
                       .y_off = Y_PAD,
                       .n_y = n_rows,
                       .mode = n_tok ? VKM_MATMUL_ID_HEADS : VKM_MATMUL_ID_ROWS,
                       .rows = bi,
                       .rows_off = ro,
                       .n_rows = n_rows,
                       .mats = bi,
                       .mats_off = mo,
                       .max_per_mat = max_c,
                       .n_tok = n_tok};
    CHECK_OK(vkm_gpu_begin(gpu));
    if (glu)
        CHECK_OK(vkm_op_matmul_id_glu(gpu, &a, bw, wo + half, (vkm_gpu_arg){bs, 256, 0}));
    else
        CHECK_OK(vkm_op_matmul_id(gpu, &a));
    CHECK_OK(vkm_gpu_submit(gpu));
    CHECK_OK(vkm_gpu_download(gpu, by, 0, got, yb));
    const float *y = got + Y_PAD / 4;
    check_y(what, y, want, mag, n_rows, m, glu);
    const int guards = count_guards(got, yb / 4, Y_PAD / 4, Y_PAD / 4 + (size_t)(n_rows * m));
    CHECK_MSG(guards == 0, "%s: %d guard values overwritten", what, guards);
out:
    vkm_gpu_buf_destroy(gpu, bw);
    vkm_gpu_buf_destroy(gpu, bx);
    vkm_gpu_buf_destroy(gpu, by);
    vkm_gpu_buf_destroy(gpu, bi);
    vkm_gpu_buf_destroy(gpu, bs);
    free(wq), free(wf), free(x), free(xg), free(want), free(got), free(mag);
    free(rows), free(mat_of), free(mats);
}

/* Two projections of the same X in one dispatch (vkm_op_matmul_pair: q_a and kv_a): W {k, m} and
 * W2 {k, m2} (W2 first in the buffer, then a gap), Y2 then Y in one buffer with guards around and
 * between them; the reference is one matmul over the m + m2 rows. Where the plan has the pair
 * form for the type (gemv's layouts) it must take it; elsewhere VKM_MATMUL_UNFIT (nothing
 * recorded) is the other answer allowed. */
static void test_pair(vkm_gpu *gpu, uint32_t t, int64_t k, int64_t m, int64_t m2, int64_t n,
                      bool must) {
    char what[96];
    snprintf(what, sizeof what, "%s pair k=%lld m=%lld+%lld n=%lld", vkm_qtype_name(t),
             (long long)k, (long long)m, (long long)m2, (long long)n);
    const int64_t mt = m + m2;
    uint8_t *wq = NULL;
    float *wf = NULL, *x = malloc((size_t)(n * k) * 4), *want = malloc((size_t)(n * mt) * 4);
    float *all = malloc((size_t)(n * mt) * 4);
    const size_t y2o = Y_PAD, yo = y2o + (size_t)(n * m2) * 4 + 128;
    const size_t yb = yo + (size_t)(n * m) * 4 + 64;
    float *got = malloc(yb);
    double *mag = malloc((size_t)(n * mt) * sizeof *mag);
    vkm_gpu_buf *bw = NULL, *bx = NULL, *by = NULL;
    size_t wb = 0;
    if (!x || !want || !all || !got || !mag || make_weights(t, k, mt, &wq, &wf, &wb)) {
        CHECK_MSG(0, "%s: setup failed: %s", what, vkm_errmsg());
        goto out;
    }
    for (int64_t i = 0; i < n * k; i++) x[i] = frand();
    for (size_t i = 0; i < yb / 4; i++) got[i] = GUARD;
    q8_round(gpu, t, n, x, n, k);
    magnitude(wf, k, mt, x, n, mag);
    CHECK_OK(vkm_ref_matmul(t, wq, k, mt, x, n, want));
    const size_t rb = wb / (size_t)mt, w2o = W_PAD, wo = w2o + rb * (size_t)m2 + 66;
    CHECK_OK(vkm_gpu_buf_create(gpu, wo + rb * (size_t)m + 6 + TEX_SLACK, VKM_BUF_DEVICE, &bw));
    CHECK_OK(
        vkm_gpu_buf_create(gpu, X_UNAL + (size_t)(n * k) * 4 + 8 + TEX_SLACK, VKM_BUF_DEVICE, &bx));
    CHECK_OK(vkm_gpu_buf_create(gpu, yb, VKM_BUF_DEVICE, &by));
    if (!bw || !bx || !by) goto out;
    CHECK_OK(vkm_gpu_upload(gpu, bw, wo, wq, rb * (size_t)m));
    CHECK_OK(vkm_gpu_upload(gpu, bw, w2o, wq + rb * (size_t)m, rb * (size_t)m2));
    CHECK_OK(vkm_gpu_upload(gpu, bx, X_UNAL, x, (size_t)(n * k) * 4));
    CHECK_OK(vkm_gpu_upload(gpu, by, 0, got, yb));
    CHECK_OK(vkm_gpu_begin(gpu));
    const int rc =
        vkm_op_matmul_pair(gpu, t, k, bw, wo, m, w2o, m2, bx, X_UNAL, n, by, yo, y2o, NULL);
    CHECK_OK(vkm_gpu_submit(gpu));
    if (rc == VKM_MATMUL_UNFIT && !must) goto out;
    CHECK_MSG(rc == 0, "%s: rc %d (%s)", what, rc, vkm_errmsg());
    if (rc) goto out;
    CHECK_OK(vkm_gpu_download(gpu, by, 0, got, yb));
    for (int64_t j = 0; j < n; j++) {
        memcpy(all + j * mt, got + yo / 4 + j * m, (size_t)m * 4);
        memcpy(all + j * mt + m, got + y2o / 4 + j * m2, (size_t)m2 * 4);
    }
    compare(what, all, mt, want, mag, n, mt);
    int guards = 0;
    for (size_t i = 0; i < yb / 4; i++) {
        const bool in2 = i >= y2o / 4 && i < y2o / 4 + (size_t)(n * m2);
        const bool in1 = i >= yo / 4 && i < yo / 4 + (size_t)(n * m);
        guards += !in1 && !in2 && got[i] != GUARD;
    }
    CHECK_MSG(guards == 0, "%s: %d guard values overwritten", what, guards);
out:
    vkm_gpu_buf_destroy(gpu, bw);
    vkm_gpu_buf_destroy(gpu, bx);
    vkm_gpu_buf_destroy(gpu, by);
    free(wq), free(wf), free(x), free(want), free(all), free(got), free(mag);
}

/* Expert rows with a second matrix in the same dispatch (vkm_op_matmul_id_pair: the shared
 * expert beside the routed ones), plain or gated: the stack's n_mat matrices with counts[]
 * entries (entry p of matrix e reads X row (7p + e) % n_x), the second matrix with n2 entries
 * from X row 1 on, writing Y rows n_rows .. . W: [pad][second][second's up][gap][G stack][U
 * stack]; the reference is one indexed matmul over n_mat + 1 matrices. Where the plan has the
 * form for the type (gemv's layouts) it must take it; elsewhere VKM_MATMUL_UNFIT (nothing
 * recorded) is the other answer allowed. */
static void test_id_pair(vkm_gpu *gpu, uint32_t t, int64_t k, int64_t m, int64_t n_mat,
                         const int32_t *counts, int64_t n_x, int64_t n2, bool glu, bool must) {
    char what[128];
    const int64_t nm = n_mat + 1, n_w = glu ? 2 : 1;
    int64_t n_rows = 0;
    for (int64_t e = 0; e < n_mat; e++) n_rows += counts[e];
    const int64_t nt = n_rows + n2;
    snprintf(what, sizeof what, "%s id-pair%s k=%lld m=%lld rows=%lld+%lld", vkm_qtype_name(t),
             glu ? " glu" : "", (long long)k, (long long)m, (long long)n_rows, (long long)n2);
    uint8_t *wq = NULL;
    float *wf = NULL, *x = malloc((size_t)(n_x * k) * 4), *xg = malloc((size_t)(nt * k) * 4);
    float *want = malloc((size_t)(nt * m) * 4 * 2);
    const size_t yb = Y_PAD + (size_t)(nt * m) * 4 + 64;
    float *got = malloc(yb);
    double *mag = malloc((size_t)(nt * m) * sizeof *mag * 2);
    int32_t *rows = malloc((size_t)nt * 4), *mat_of = malloc((size_t)nt * 4);
    int32_t *mats = malloc((size_t)n_mat * 8);
    vkm_gpu_buf *bw = NULL, *bx = NULL, *by = NULL, *bi = NULL;
    size_t wb = 0;
    if (!x || !xg || !want || !got || !mag || !rows || !mat_of || !mats ||
        make_weights(t, k, m * nm * n_w, &wq, &wf, &wb)) {
        CHECK_MSG(0, "%s: setup failed: %s", what, vkm_errmsg());
        goto out;
    }
    for (int64_t i = 0; i < n_x * k; i++) x[i] = frand();
    int64_t per_mat = n2;
    for (int64_t e = 0; e < n_mat; e++) per_mat = counts[e] > per_mat ? counts[e] : per_mat;
    q8_round(gpu, t, per_mat, x, n_x, k);
    for (size_t i = 0; i < yb / 4; i++) got[i] = GUARD;
    int64_t p = 0;
    for (int64_t e = 0; e < n_mat; e++) {
        mats[2 * e] = (int32_t)p;
        mats[2 * e + 1] = counts[e];
        for (int32_t i = 0; i < counts[e]; i++, p++) {
            rows[p] = (int32_t)((p * 7 + e) % n_x);
            mat_of[p] = (int32_t)e;
        }
    }
    for (int64_t i = 0; i < n2; i++, p++) rows[p] = (int32_t)(1 + i), mat_of[p] = (int32_t)n_mat;
    for (int64_t q = 0; q < nt; q++) {
        memcpy(xg + q * k, x + rows[q] * k, (size_t)k * 4);
        for (int64_t s = 0; s < n_w; s++)
            magnitude(wf + ((s * nm) + mat_of[q]) * m * k, k, m, xg + q * k, 1,
                      mag + (s * nt + q) * m);
    }
    const size_t half = wb / (size_t)n_w, mb = half / (size_t)nm; /* a matrix's bytes */
    for (int64_t s = 0; s < n_w; s++)
        CHECK_OK(vkm_ref_matmul_id(t, wq + s * half, k, m, nm, xg, nt, mat_of, want + s * nt * m));
    const size_t so = W_PAD, suo = so + mb, go = suo + mb + 512, uo = go + (size_t)n_mat * mb;
    const size_t ro = 20, mo = ro + (size_t)n_rows * 4 + 4;
    CHECK_OK(vkm_gpu_buf_create(gpu, uo + (size_t)n_mat * mb + 6 + TEX_SLACK, VKM_BUF_DEVICE, &bw));
    CHECK_OK(
        vkm_gpu_buf_create(gpu, X_UNAL + (size_t)(n_x * k) * 4 + TEX_SLACK, VKM_BUF_DEVICE, &bx));
    CHECK_OK(vkm_gpu_buf_create(gpu, yb, VKM_BUF_DEVICE, &by));
    CHECK_OK(vkm_gpu_buf_create(gpu, mo + (size_t)n_mat * 8, VKM_BUF_DEVICE, &bi));
    if (!bw || !bx || !by || !bi) goto out;
    for (int64_t s = 0; s < n_w; s++) {
        const uint8_t *blk = wq + s * half;
        CHECK_OK(vkm_gpu_upload(gpu, bw, s ? uo : go, blk, (size_t)n_mat * mb));
        CHECK_OK(vkm_gpu_upload(gpu, bw, s ? suo : so, blk + (size_t)n_mat * mb, mb));
    }
    CHECK_OK(vkm_gpu_upload(gpu, bx, X_UNAL, x, (size_t)(n_x * k) * 4));
    CHECK_OK(vkm_gpu_upload(gpu, by, 0, got, yb));
    CHECK_OK(vkm_gpu_upload(gpu, bi, ro, rows, (size_t)n_rows * 4));
    CHECK_OK(vkm_gpu_upload(gpu, bi, mo, mats, (size_t)n_mat * 8));
    vkm_matmul_id a = {.wtype = t,
                       .w = bw,
                       .w_off = go,
                       .k = k,
                       .m = m,
                       .n_mat = n_mat,
                       .x = bx,
                       .x_off = X_UNAL,
                       .n_x = n_x,
                       .y = by,
                       .y_off = Y_PAD,
                       .n_y = nt,
                       .mode = VKM_MATMUL_ID_ROWS,
                       .rows = bi,
                       .rows_off = ro,
                       .n_rows = n_rows,
                       .mats = bi,
                       .mats_off = mo};
    const vkm_matmul_second sec = {so, suo, n2, 1, n_rows};
    CHECK_OK(vkm_gpu_begin(gpu));
    const int rc = vkm_op_matmul_id_pair(gpu, &a, glu ? bw : NULL, uo, &sec);
    CHECK_OK(vkm_gpu_submit(gpu));
    if (rc == VKM_MATMUL_UNFIT && !must) goto out;
    CHECK_MSG(rc == 0, "%s: rc %d (%s)", what, rc, vkm_errmsg());
    if (rc) goto out;
    CHECK_OK(vkm_gpu_download(gpu, by, 0, got, yb));
    check_y(what, got + Y_PAD / 4, want, mag, nt, m, glu);
    const int guards = count_guards(got, yb / 4, Y_PAD / 4, Y_PAD / 4 + (size_t)(nt * m));
    CHECK_MSG(guards == 0, "%s: %d guard values overwritten", what, guards);
out:
    vkm_gpu_buf_destroy(gpu, bw);
    vkm_gpu_buf_destroy(gpu, bx);
    vkm_gpu_buf_destroy(gpu, by);
    vkm_gpu_buf_destroy(gpu, bi);
    free(wq), free(wf), free(x), free(xg), free(want), free(got), free(mag);
    free(rows), free(mat_of), free(mats);
}

/* get_rows: rows 3, 0, an out-of-range id (a zero row) of a 5-row table, k = 2 blocks; the
 * decode must equal the reference dequantization exactly (one f32 product per element). */
static void test_get_rows(vkm_gpu *gpu, uint32_t t) {
    const int64_t k = 2 * vkm_qtype_get(t)->block, n_vocab = 5;
    uint8_t *wq = NULL;
    float *wf = NULL, *got = malloc((size_t)(3 * k) * 4);
    vkm_gpu_buf *bw = NULL, *bi = NULL, *by = NULL;
    size_t wb = 0;
    const int32_t ids[3] = {3, 0, 7};
    if (!got || make_weights(t, k, n_vocab, &wq, &wf, &wb)) {
        CHECK_MSG(0, "%s get_rows: setup failed: %s", vkm_qtype_name(t), vkm_errmsg());
        goto out;
    }
    CHECK_OK(vkm_gpu_buf_create(gpu, (wb + 3) / 4 * 4, VKM_BUF_DEVICE, &bw));
    CHECK_OK(vkm_gpu_buf_create(gpu, sizeof ids, VKM_BUF_DEVICE, &bi));
    CHECK_OK(vkm_gpu_buf_create(gpu, (size_t)(3 * k) * 4, VKM_BUF_DEVICE, &by));
    if (!bw || !bi || !by) goto out;
    CHECK_OK(vkm_gpu_upload(gpu, bw, 0, wq, wb));
    CHECK_OK(vkm_gpu_upload(gpu, bi, 0, ids, sizeof ids));
    CHECK_OK(vkm_gpu_begin(gpu));
    CHECK_OK(vkm_op_get_rows(gpu, t, (vkm_gpu_arg){bw, 0, 0}, (vkm_gpu_arg){bi, 0, 0},
                             (vkm_gpu_arg){by, 0, 0}, 3, (uint32_t)k, (uint32_t)n_vocab));
    CHECK_OK(vkm_gpu_submit(gpu));
    CHECK_OK(vkm_gpu_download(gpu, by, 0, got, (size_t)(3 * k) * 4));
    int bad = 0;
    for (int64_t i = 0; i < k; i++) {
        bad += got[i] != wf[3 * k + i];
        bad += got[k + i] != wf[i];
        bad += got[2 * k + i] != 0.0f;
    }
    CHECK_MSG(bad == 0, "%s get_rows: %d of %lld elements off", vkm_qtype_name(t), bad,
              (long long)(3 * k));
out:
    vkm_gpu_buf_destroy(gpu, bw);
    vkm_gpu_buf_destroy(gpu, bi);
    vkm_gpu_buf_destroy(gpu, by);
    free(wq), free(wf), free(got);
}

int main(int argc, char **argv) {
    vkm_gpu *gpu = NULL;
    vkm_gpu_options opt = {.device = -1, .validation = true};
    int rc = vkm_kernels_env(&opt.kernels); /* the ctest variants force a layout */
    if (!rc) rc = vkm_gpu_create(&opt, &gpu);
    if (rc == VKM_ENODEV) check_skip(vkm_errmsg());
    CHECK_OK(rc);
    if (rc) return check_done();
    printf("layout %s\n", vkm_kernels_layout_name(vkm_gpu_plan(gpu)->layout));
    for (size_t i = 0; i < sizeof g_types / sizeof g_types[0]; i++) {
        const uint32_t t = g_types[i];
        if (argc > 1 && strcmp(argv[1], vkm_qtype_name(t))) continue; /* one type, for debugging */
        const int64_t qk = vkm_qtype_get(t)->block;
        static const int32_t c_tok[] = {1, 0, 1, 1}, c_mm[] = {0, 12, 9, 0};
        CHECK(vkm_op_matmul_supported(t));
        test_plain(gpu, t, 2 * qk, 37, 1, X_AL, W_PAD);
        test_plain(gpu, t, 3 * qk, 70, 3, X_UNAL, W_PAD);
        test_plain(gpu, t, 2 * qk, 33, 20, X_AL, W_PAD);
        test_id(gpu, t, 2 * qk, 7, 4, c_tok, 1, 0, false, W_PAD);
        test_id(gpu, t, qk, 33, 4, c_mm, 30, 0, false, W_PAD);
        test_id(gpu, t, qk, 19, 4, c_tok, 1, 0, true, W_PAD);
        test_get_rows(gpu, t);
        if (t == VKM_IQ4_NL || t == VKM_IQ2_XS) {
            test_plain(gpu, t, qk, 33, 2, X_UNAL, W_PAD);
            test_plain(gpu, t, 2 * qk, 30, 7, X_AL, W_PAD);
            const int64_t kh = qk == 32 ? 128 : qk; /* attn_k_b: k = 128 */
            test_id(gpu, t, kh, 17, 3, NULL, 0, 1, false, W_PAD);
            test_id(gpu, t, kh, 66, 2, NULL, 0, 20, false, W_PAD);
        }
        /* gemv's layouts (gpu, idot, float): each form with 1..7 columns over the types (gemv
         * compiles one variant per column count), k of 5 and 9 blocks (IQ4_NL: 37), rows that
         * fill no workgroup, W at a multiple of 16 bytes as well as at 1002 (blocks of 56 and
         * 136 bytes keep one parity along a row), X aligned and not, the two-matrix form */
        const vkm_kernel_plan *pl = vkm_gpu_plan(gpu);
        if (vkm_kernels_gemv_family(pl, t, 64) == VKM_MMK_GEMV) {
            static const int32_t c_dec[] = {2, 0, 3, 1};
            const int64_t n1 = 1 + (int64_t)(i % 7), n2 = 1 + (int64_t)((i + 3) % 7);
            test_plain(gpu, t, 5 * qk, 29, n1, X_UNAL, W_AL);
            test_plain(gpu, t, (qk == 32 ? 37 : 9) * qk, 13, n2, X_AL, W_AL);
            test_plain(gpu, t, 5 * qk, 6, 1, X_UNAL, W_PAD);
            test_id(gpu, t, 3 * qk, 11, 4, c_dec, 5, 0, false, W_AL);
            test_id(gpu, t, 3 * qk, 9, 4, c_dec, 5, 0, true, W_AL);
            test_id(gpu, t, qk == 32 ? 128 : qk, 10, 3, NULL, 0, 1, false, W_AL);
            test_pair(gpu, t, 2 * qk, 21, 9, n1, pl->fuse.qa_kva);
            test_id_pair(gpu, t, 2 * qk, 9, 4, c_dec, 5, 1, i % 2 == 0, pl->fuse.shared_z);
            /* IQ4_NL / IQ4_XS (their byte tables): every column count of the first form */
            for (int64_t n = 1; n <= 7 && (t == VKM_IQ4_NL || t == VKM_IQ4_XS); n++)
                if (n != n1) test_plain(gpu, t, 5 * qk, 29, n, X_UNAL, W_AL);
        }
    }
    uint32_t verr = vkm_gpu_validation_errors(gpu);
    CHECK_MSG(verr == 0, "%u validation errors", verr);
    vkm_gpu_destroy(gpu);
    return check_done();
}
