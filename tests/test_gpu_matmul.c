/* test_gpu_matmul.c - the matmul kernels (core/ops_matmul.c, shaders/matmul_*.comp) against the
 * CPU reference (core/ref_matmul.c) for every weight type: GEMV (n <= 8), GEMM (n > 8), and the
 * indexed forms in both modes (expert rows with empty / all-taking matrices, per-head rows with
 * strides), on awkward shapes and unaligned offsets inside larger buffers.
 *
 * Weights are random values quantized with vkm_ref_quant_row, so GPU and reference see the same
 * bytes. Tolerance per output: |gpu - ref| <= 2e-5 * sum_k |w_k x_k| + 1e-6. The reference sums
 * exactly (double) and rounds once; the GPU dequantizes in f32 (a few roundings per weight,
 * relative 2^-23 each, and d*sc*q - dmin*m stays within the magnitude of the block's values)
 * and accumulates in f32 in another order, whose error grows with sqrt(k) for random data and is
 * bounded by k * 2^-24 relative to sum |w x| in the worst case (k <= 512 here: 3e-5; observed
 * errors are ~1e-6 relative). The absolute term covers outputs whose magnitude is ~0.
 * Guard values around every output region check that nothing else is written.
 * W and X buffers end TEX_SLACK bytes past the data, so that CPU devices view them as 16-byte
 * texels and use the matmul_tex_* kernels (vk/gpu.c rounds a window up to whole texels); the
 * tight buffers of the edge cases at the end get the 64-bit matmul_lane_* kernels there.
 *
 * Layout idot (VKMOE_KERNELS=idot: gemv's integer-dot variants forced on): the GEMV cases of the
 * types with such variants, against the reference on X through the 8-bit round trip the kernel
 * multiplies (vkm_ref_quant_q8x / _dequant_q8x, q8_rows), and the quantized X itself (the gpu's
 * scratch) against vkm_ref_quant_q8x. Tolerance there: 5e-4 * sum |w x| more, for a code of X
 * rounded the other way where GPU and CPU compute x * 127 / max |x| differently by an ulp (an
 * error of max |w| * d_x <= sum |w x| / 50 for k >= 32 at worst, far below for these data; a
 * wrong scale, half or code gives errors of order sum |w x| / sqrt(k) and more). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../shaders/matmul_common.h"
#include "check.h"
#include "gpu.h"
#include "kernels.h"
#include "ops_matmul.h"
#include "q8x_check.h"
#include "qtype.h"
#include "ref_matmul.h"
#include "ref_ops.h"
#include "ref_quant.h"

#define GUARD 12345.0f
#define TEX_SLACK 16

static const uint32_t g_types[] = {VKM_F32,  VKM_F16,  VKM_BF16, VKM_Q4_0, VKM_Q4_1,
                                   VKM_Q5_0, VKM_Q5_1, VKM_Q8_0, VKM_Q2_K, VKM_Q3_K,
                                   VKM_Q4_K, VKM_Q5_K, VKM_Q6_K};

static uint64_t g_rng = 0x9E3779B97F4A7C15ull;
static float frand(void) { /* uniform in [-1, 1) */
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return (float)((g_rng >> 40) * (2.0 / 16777216.0) - 1.0);
}

/* Random weights for n_mat stacked {k, m} matrices in wtype; also their dequantized values. */
static int make_weights(uint32_t wtype, int64_t k, int64_t m, int64_t n_mat, uint8_t **wq,
                        float **wf, size_t *bytes) {
    size_t rb = vkm_ref_row_bytes(wtype, k);
    int64_t rows = m * n_mat;
    float *src = malloc((size_t)k * sizeof *src);
    *wq = malloc(rb * (size_t)rows);
    *wf = malloc((size_t)(k * rows) * sizeof **wf);
    *bytes = rb * (size_t)rows;
    if (!src || !*wq || !*wf) {
        free(src);
        return VKM_ENOMEM;
    }
    int rc = 0;
    for (int64_t r = 0; r < rows && !rc; r++) {
        float scale = 0.25f + (float)(r % 5); /* rows of different magnitude */
        for (int64_t i = 0; i < k; i++) src[i] = scale * frand();
        rc = vkm_ref_quant_row(wtype, src, *wq + (size_t)r * rb, k);
        if (!rc) rc = vkm_ref_dequant_row(wtype, *wq + (size_t)r * rb, *wf + r * k, k);
    }
    free(src);
    return rc;
}

/* The tolerance relative to sum |w x| (more in the idot layout, see the top). */
static double g_tol = 2e-5;
/* The plan has integer-dot GEMVs (layout idot, or a GPU that accelerates them); q8_type: it uses
 * them for weight type t. */
static bool g_idot;
static bool q8_type(vkm_gpu *gpu, uint32_t t) {
    return g_idot && vkm_gpu_plan(gpu)->gemv_idot[t];
}
/* X rows (rows of k, contiguous) through the 8-bit round trip of the integer-dot GEMVs where the
 * plan uses them for wtype and a dispatch of `cols` columns (entries per matrix) is a GEMV (the
 * reference then multiplies what the kernel does). */
static void q8_rows(vkm_gpu *gpu, uint32_t wtype, int64_t cols, float *x, int64_t rows, int64_t k) {
    if (!q8_type(gpu, wtype) || cols > VKM_MM_VEC_MAX_COLS) return;
    uint8_t *b = malloc((size_t)(k / 32) * VKM_REF_Q8X_BLOCK);
    CHECK(b != NULL);
    for (int64_t r = 0; b && r < rows; r++) {
        CHECK_OK(vkm_ref_quant_q8x(x + r * k, k, b));
        CHECK_OK(vkm_ref_dequant_q8x(b, k, x + r * k));
    }
    free(b);
}
/* The idot layout: the quantized X the last matmul left in the gpu's scratch (n rows of k) vs
 * vkm_ref_quant_q8x (q8x_check.h). */
static void check_q8_scratch(vkm_gpu *gpu, const char *what, const float *x, int64_t n, int64_t k) {
    const size_t bytes = (size_t)(k / 32) * VKM_REF_Q8X_BLOCK * (size_t)n;
    vkm_gpu_buf *b = NULL;
    uint8_t *got = malloc(bytes);
    CHECK_OK(vkm_gpu_scratch_buf(gpu, 0, 1, &b));
    if (!got || !b || vkm_gpu_download(gpu, b, 0, got, bytes))
        CHECK_MSG(0, "%s: reading the quantized X: %s", what, vkm_errmsg());
    else
        check_q8x(what, got, x, n, k);
    free(got);
}

/* Compares got[n][m] (row stride gs) with want[n][m]; mag[n][m] = sum |w x|. */
static int compare(const char *what, const float *got, int64_t gs, const float *want,
                   const double *mag, int64_t n, int64_t m) {
    int bad = 0;
    for (int64_t j = 0; j < n; j++)
        for (int64_t r = 0; r < m; r++) {
            double g = got[j * gs + r], w = want[j * m + r];
            double tol = g_tol * mag[j * m + r] + 1e-6;
            if (!(fabs(g - w) <= tol)) {
                if (bad < 5)
                    fprintf(stderr, "  %s: y[%lld][%lld] = %.9g, want %.9g (tol %.3g)\n", what,
                            (long long)j, (long long)r, g, w, tol);
                bad++;
            }
        }
    CHECK_MSG(bad == 0, "%s: %d of %lld outputs off", what, bad, (long long)(n * m));
    return bad;
}

/* mag[j][r] = sum_i |W[r][i] X[j][i]|, W = wf rows of k, X = x rows of k (stride xs). */
static void magnitude(const float *wf, int64_t k, int64_t m, const float *x, int64_t xs, int64_t n,
                      double *mag) {
    for (int64_t j = 0; j < n; j++)
        for (int64_t r = 0; r < m; r++) {
            double s = 0;
            for (int64_t i = 0; i < k; i++) s += fabs((double)wf[r * k + i] * x[j * xs + i]);
            mag[j * m + r] = s;
        }
}

/* Weights at a 16-byte aligned offset (set for one pass in main): the CPU-device kernel then
 * loads whole 16-byte chunks of the types whose steps are multiples of 16 bytes (WAL). */
static bool g_w16;

/* Byte offsets inside the buffers: deliberately not multiples of 256 (nor of 4 for W, unless
 * g_w16: then of 16). */
static size_t w_pad(uint32_t wtype) {
    return g_w16 ? 1072 : wtype == VKM_F32 ? 260 : 1002;
}
/* X rows start 16-byte aligned in their window (set for one pass in main): the GPU kernels then
 * load X as vec4 (gemv.comp XAL); else X_PAD puts them at 9 floats past a 16-byte boundary. */
static bool g_x16;
#define X_PAD (g_x16 ? 48u : 36u)
#define Y_PAD 516

/* One plain matmul: W {k, m} x X [n][k] -> Y [n][m], compared with vkm_ref_matmul. */
static void test_plain(vkm_gpu *gpu, uint32_t wtype, int64_t k, int64_t m, int64_t n) {
    char what[96];
    snprintf(what, sizeof what, "%s k=%lld m=%lld n=%lld", vkm_qtype_name(wtype), (long long)k,
             (long long)m, (long long)n);
    uint8_t *wq = NULL;
    float *wf = NULL, *x = malloc((size_t)(n * k) * 4), *want = malloc((size_t)(n * m) * 4);
    size_t yb = Y_PAD + (size_t)(n * m) * 4 + 64, wb;
    float *got = malloc(yb);
    double *mag = malloc((size_t)(n * m) * sizeof *mag);
    vkm_gpu_buf *bw = NULL, *bx = NULL, *by = NULL;
    if (!x || !want || !got || !mag || make_weights(wtype, k, m, 1, &wq, &wf, &wb)) {
        CHECK_MSG(0, "%s: setup failed: %s", what, vkm_errmsg());
        goto out;
    }
    for (int64_t i = 0; i < n * k; i++) x[i] = frand();
    for (size_t i = 0; i < yb / 4; i++) got[i] = GUARD;
    magnitude(wf, k, m, x, k, n, mag);
    if (q8_type(gpu, wtype) && n <= VKM_MM_VEC_MAX_COLS) {
        float *xq = malloc((size_t)(n * k) * 4);
        CHECK(xq != NULL);
        if (xq) {
            memcpy(xq, x, (size_t)(n * k) * 4);
            q8_rows(gpu, wtype, n, xq, n, k);
            CHECK_OK(vkm_ref_matmul(wtype, wq, k, m, xq, n, want));
        }
        free(xq);
    } else {
        CHECK_OK(vkm_ref_matmul(wtype, wq, k, m, x, n, want));
    }

    size_t wo = w_pad(wtype);
    CHECK_OK(vkm_gpu_buf_create(gpu, wo + wb + 6 + TEX_SLACK, VKM_BUF_DEVICE, &bw));
    CHECK_OK(
        vkm_gpu_buf_create(gpu, X_PAD + (size_t)(n * k) * 4 + 8 + TEX_SLACK, VKM_BUF_DEVICE, &bx));
    CHECK_OK(vkm_gpu_buf_create(gpu, yb, VKM_BUF_DEVICE, &by));
    if (!bw || !bx || !by) goto out;
    CHECK_OK(vkm_gpu_upload(gpu, bw, wo, wq, wb));
    CHECK_OK(vkm_gpu_upload(gpu, bx, X_PAD, x, (size_t)(n * k) * 4));
    CHECK_OK(vkm_gpu_upload(gpu, by, 0, got, yb));
    CHECK_OK(vkm_gpu_begin(gpu));
    CHECK_OK(vkm_op_matmul(gpu, wtype, bw, wo, k, m, bx, X_PAD, n, by, Y_PAD));
    CHECK_OK(vkm_gpu_submit(gpu));
    CHECK_OK(vkm_gpu_download(gpu, by, 0, got, yb));
    compare(what, got + Y_PAD / 4, m, want, mag, n, m);
    if (q8_type(gpu, wtype) && n <= VKM_MM_VEC_MAX_COLS) check_q8_scratch(gpu, what, x, n, k);
    int guards = 0;
    for (size_t i = 0; i < yb / 4; i++)
        if ((i < Y_PAD / 4 || i >= Y_PAD / 4 + (size_t)(n * m)) && got[i] != GUARD) guards++;
    CHECK_MSG(guards == 0, "%s: %d guard values overwritten", what, guards);
out:
    vkm_gpu_buf_destroy(gpu, bw);
    vkm_gpu_buf_destroy(gpu, bx);
    vkm_gpu_buf_destroy(gpu, by);
    free(wq), free(wf), free(x), free(want), free(got), free(mag);
}

/* Whether the layout takes two matrices in one dispatch (a pair, or a second z group): the CPU
 * devices' texel kernels, and the gemv kernels for at most VKM_MM_VEC_MAX_COLS columns (entries)
 * per matrix; the other layouts answer VKM_MATMUL_UNFIT. */
static bool pair_fits(vkm_gpu *gpu, uint32_t wtype, int64_t rows, int64_t cols) {
    const vkm_kernel_plan *p = vkm_gpu_plan(gpu);
    if (vkm_gpu_info(gpu)->texel_bytes) return true;
    return p->fuse.qa_kva && p->fuse.shared_z && cols <= 8 && /* VKM_MM_VEC_MAX_COLS */
           vkm_kernels_gemv_family(p, wtype, (uint64_t)rows) == VKM_MMK_GEMV;
}

/* Two projections of the same X in one dispatch (vkm_op_matmul_pair: q_a and kv_a): W {k, m}
 * and W2 {k, m2} (W2 first in the buffer, then a gap), Y2 then Y in one buffer with guards
 * around and between them; the reference is one matmul over the m + m2 rows. The layouts of
 * pair_fits must take the pair; the others must answer VKM_MATMUL_UNFIT. */
static void test_plain_pair(vkm_gpu *gpu, uint32_t wtype, int64_t k, int64_t m, int64_t m2,
                            int64_t n) {
    char what[96];
    snprintf(what, sizeof what, "%s pair k=%lld m=%lld+%lld n=%lld", vkm_qtype_name(wtype),
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
    size_t wb;
    if (!x || !want || !all || !got || !mag || make_weights(wtype, k, mt, 1, &wq, &wf, &wb)) {
        CHECK_MSG(0, "%s: setup failed: %s", what, vkm_errmsg());
        goto out;
    }
    for (int64_t i = 0; i < n * k; i++) x[i] = frand();
    for (size_t i = 0; i < yb / 4; i++) got[i] = GUARD;
    magnitude(wf, k, mt, x, k, n, mag);
    q8_rows(gpu, wtype, n, x, n, k); /* the idot layout: X as the kernel sees it (for both) */
    CHECK_OK(vkm_ref_matmul(wtype, wq, k, mt, x, n, want));
    const size_t rb = wb / (size_t)mt, w2o = w_pad(wtype), wo = w2o + rb * (size_t)m2 + 64;
    CHECK_OK(vkm_gpu_buf_create(gpu, wo + rb * (size_t)m + 6 + TEX_SLACK, VKM_BUF_DEVICE, &bw));
    CHECK_OK(
        vkm_gpu_buf_create(gpu, X_PAD + (size_t)(n * k) * 4 + 8 + TEX_SLACK, VKM_BUF_DEVICE, &bx));
    CHECK_OK(vkm_gpu_buf_create(gpu, yb, VKM_BUF_DEVICE, &by));
    if (!bw || !bx || !by) goto out;
    CHECK_OK(vkm_gpu_upload(gpu, bw, wo, wq, rb * (size_t)m));
    CHECK_OK(vkm_gpu_upload(gpu, bw, w2o, wq + rb * (size_t)m, rb * (size_t)m2));
    CHECK_OK(vkm_gpu_upload(gpu, bx, X_PAD, x, (size_t)(n * k) * 4));
    CHECK_OK(vkm_gpu_upload(gpu, by, 0, got, yb));
    CHECK_OK(vkm_gpu_begin(gpu));
    const int rc =
        vkm_op_matmul_pair(gpu, wtype, k, bw, wo, m, w2o, m2, bx, X_PAD, n, by, yo, y2o, NULL);
    CHECK_OK(vkm_gpu_submit(gpu));
    if (!pair_fits(gpu, wtype, mt, n)) { /* nothing recorded */
        CHECK_MSG(rc == VKM_MATMUL_UNFIT, "%s: rc %d, want VKM_MATMUL_UNFIT", what, rc);
        goto out;
    }
    CHECK_MSG(rc == 0, "%s: rc %d (%s)", what, rc, vkm_errmsg());
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

/* Expert dispatch: n_mat matrices, counts[e] entries each taking random X rows out of n_x. */
/* hint: the max_per_mat passed (0: the true maximum); a smaller one must still give full results.
 */
static void test_id_rows(vkm_gpu *gpu, uint32_t wtype, int64_t k, int64_t m, int64_t n_mat,
                         const int32_t *counts, int64_t n_x, int64_t hint) {
    char what[128];
    int64_t n_rows = 0, max_c = 0;
    for (int64_t e = 0; e < n_mat; e++) {
        n_rows += counts[e];
        if (counts[e] > max_c) max_c = counts[e];
    }
    snprintf(what, sizeof what, "%s id-rows k=%lld m=%lld n_mat=%lld rows=%lld max=%lld",
             vkm_qtype_name(wtype), (long long)k, (long long)m, (long long)n_mat, (long long)n_rows,
             (long long)max_c);
    uint8_t *wq = NULL;
    float *wf = NULL, *x = malloc((size_t)(n_x * k) * 4), *xg = malloc((size_t)(n_rows * k) * 4);
    float *want = malloc((size_t)(n_rows * m) * 4), *got = malloc((size_t)(n_rows * m) * 4);
    double *mag = malloc((size_t)(n_rows * m) * sizeof *mag);
    int32_t *rows = malloc((size_t)n_rows * 4), *mat_of = malloc((size_t)n_rows * 4);
    int32_t *mats = malloc((size_t)n_mat * 8);
    vkm_gpu_buf *bw = NULL, *bx = NULL, *by = NULL, *bi = NULL;
    size_t wb;
    if (!x || !xg || !want || !got || !mag || !rows || !mat_of || !mats ||
        make_weights(wtype, k, m, n_mat, &wq, &wf, &wb)) {
        CHECK_MSG(0, "%s: setup failed: %s", what, vkm_errmsg());
        goto out;
    }
    for (int64_t i = 0; i < n_x * k; i++) x[i] = frand();
    int64_t p = 0;
    for (int64_t e = 0; e < n_mat; e++) {
        mats[2 * e] = (int32_t)p;
        mats[2 * e + 1] = counts[e];
        for (int32_t i = 0; i < counts[e]; i++, p++) {
            rows[p] = (int32_t)((p * 7 + e) % n_x);
            mat_of[p] = (int32_t)e;
            memcpy(xg + p * k, x + rows[p] * k, (size_t)k * 4);
            magnitude(wf + e * m * k, k, m, xg + p * k, k, 1, mag + p * m);
        }
    }
    q8_rows(gpu, wtype, max_c, xg, n_rows, k);
    CHECK_OK(vkm_ref_matmul_id(wtype, wq, k, m, n_mat, xg, n_rows, mat_of, want));

    /* one int32 buffer: rows[] at byte 20, mats[] after it */
    size_t ro = 20, mo = ro + (size_t)n_rows * 4 + 4;
    CHECK_OK(vkm_gpu_buf_create(gpu, w_pad(wtype) + wb + 2 + TEX_SLACK, VKM_BUF_DEVICE, &bw));
    CHECK_OK(
        vkm_gpu_buf_create(gpu, X_PAD + (size_t)(n_x * k) * 4 + TEX_SLACK, VKM_BUF_DEVICE, &bx));
    CHECK_OK(vkm_gpu_buf_create(gpu, (size_t)(n_rows * m) * 4, VKM_BUF_DEVICE, &by));
    CHECK_OK(vkm_gpu_buf_create(gpu, mo + (size_t)n_mat * 8, VKM_BUF_DEVICE, &bi));
    if (!bw || !bx || !by || !bi) goto out;
    CHECK_OK(vkm_gpu_upload(gpu, bw, w_pad(wtype), wq, wb));
    CHECK_OK(vkm_gpu_upload(gpu, bx, X_PAD, x, (size_t)(n_x * k) * 4));
    CHECK_OK(vkm_gpu_upload(gpu, bi, ro, rows, (size_t)n_rows * 4));
    CHECK_OK(vkm_gpu_upload(gpu, bi, mo, mats, (size_t)n_mat * 8));
    vkm_matmul_id a = {.wtype = wtype,
                       .w = bw,
                       .w_off = w_pad(wtype),
                       .k = k,
                       .m = m,
                       .n_mat = n_mat,
                       .x = bx,
                       .x_off = X_PAD,
                       .n_x = n_x,
                       .y = by,
                       .n_y = n_rows,
                       .mode = VKM_MATMUL_ID_ROWS,
                       .rows = bi,
                       .rows_off = ro,
                       .n_rows = n_rows,
                       .mats = bi,
                       .mats_off = mo,
                       .max_per_mat = max_c};
    CHECK_OK(vkm_gpu_begin(gpu));
    CHECK_OK(vkm_op_matmul_id(gpu, &a));
    CHECK_OK(vkm_gpu_submit(gpu));
    CHECK_OK(vkm_gpu_download(gpu, by, 0, got, (size_t)(n_rows * m) * 4));
    compare(what, got, m, want, mag, n_rows, m);
out:
    vkm_gpu_buf_destroy(gpu, bw);
    vkm_gpu_buf_destroy(gpu, bx);
    vkm_gpu_buf_destroy(gpu, by);
    vkm_gpu_buf_destroy(gpu, bi);
    free(wq), free(wf), free(x), free(xg), free(want), free(got), free(mag);
    free(rows), free(mat_of), free(mats);
}

/* The inputs and references of the gated and paired tests: nm matrices of G and of U weights
 * (same type and shape {k, m}), X [n_x][k], counts[e] entries of matrix e; entry p of matrix e
 * reads X row rows[p]: row0 + i (its i-th entry) from matrix `direct` on, a scattered row before
 * it. yg = G x and yu = U x per entry (the reference), mg and mu their magnitudes. */
typedef struct glu_data {
    int64_t n_rows; /* entries in all */
    uint8_t *gq, *uq;
    float *gf, *uf, *x, *xg, *yg, *yu;
    double *mg, *mu;
    int32_t *rows, *mat_of, *mats; /* mats: (first, count) per matrix */
    size_t wb, ub;                 /* bytes of the nm G / U matrices */
} glu_data;

static void glu_data_free(glu_data *d) {
    free(d->gq), free(d->uq), free(d->gf), free(d->uf), free(d->x), free(d->xg), free(d->yg);
    free(d->yu), free(d->mg), free(d->mu), free(d->rows), free(d->mat_of), free(d->mats);
}

static vkm_gpu *g_gpu; /* the test's gpu (glu_data_make's q8_rows) */
static int glu_data_make(glu_data *d, uint32_t wtype, int64_t k, int64_t m, int64_t nm,
                         const int32_t *counts, int64_t n_x, int64_t direct, int32_t row0) {
    memset(d, 0, sizeof *d);
    for (int64_t e = 0; e < nm; e++) d->n_rows += counts[e];
    const int64_t nr = d->n_rows;
    d->x = malloc((size_t)(n_x * k) * 4);
    d->xg = malloc((size_t)(nr * k) * 4 + 4);
    d->yg = malloc((size_t)(nr * m) * 4 + 4);
    d->yu = malloc((size_t)(nr * m) * 4 + 4);
    d->mg = malloc((size_t)(nr * m) * 8 + 8);
    d->mu = malloc((size_t)(nr * m) * 8 + 8);
    d->rows = malloc((size_t)nr * 4 + 4);
    d->mat_of = malloc((size_t)nr * 4 + 4);
    d->mats = malloc((size_t)nm * 8);
    if (!d->x || !d->xg || !d->yg || !d->yu || !d->mg || !d->mu || !d->rows || !d->mat_of ||
        !d->mats || make_weights(wtype, k, m, nm, &d->gq, &d->gf, &d->wb) ||
        make_weights(wtype, k, m, nm, &d->uq, &d->uf, &d->ub))
        return VKM_ENOMEM;
    for (int64_t i = 0; i < n_x * k; i++) d->x[i] = frand();
    int64_t p = 0;
    for (int64_t e = 0; e < nm; e++) {
        d->mats[2 * e] = (int32_t)p;
        d->mats[2 * e + 1] = counts[e];
        for (int32_t i = 0; i < counts[e]; i++, p++) {
            d->rows[p] = e >= direct ? row0 + i : (int32_t)((p * 7 + e) % n_x);
            d->mat_of[p] = (int32_t)e;
            memcpy(d->xg + p * k, d->x + d->rows[p] * k, (size_t)k * 4);
            magnitude(d->gf + e * m * k, k, m, d->xg + p * k, k, 1, d->mg + p * m);
            magnitude(d->uf + e * m * k, k, m, d->xg + p * k, k, 1, d->mu + p * m);
        }
    }
    int64_t max_c = 0;
    for (int64_t e = 0; e < nm; e++) max_c = counts[e] > max_c ? counts[e] : max_c;
    q8_rows(g_gpu, wtype, max_c, d->xg, nr, k);
    int rc = vkm_ref_matmul_id(wtype, d->gq, k, m, nm, d->xg, nr, d->mat_of, d->yg);
    return rc ? rc : vkm_ref_matmul_id(wtype, d->uq, k, m, nm, d->xg, nr, d->mat_of, d->yu);
}

/* Compares got[n_rows * m] with silu(yg) * yu. Tolerance: the matmul tolerance of each factor
 * (tg, tu) carried through the product, |silu'| <= 1.1: 1.1 tg |u| + |silu(g)| tu + tg tu + 1e-6.
 */
static void check_glu(const char *what, const float *got, const glu_data *d, int64_t m) {
    int bad = 0;
    for (int64_t i = 0; i < d->n_rows * m; i++) {
        const double g = d->yg[i], u = d->yu[i], tg = g_tol * d->mg[i] + 1e-6;
        const double tu = g_tol * d->mu[i] + 1e-6, want = (double)vkm_ref_silu(d->yg[i]) * u;
        const double tol = 1.1 * tg * fabs(u) + fabs(g / (1.0 + exp(-g))) * tu + tg * tu + 1e-6;
        if (!(fabs(got[i] - want) <= tol) && bad++ < 5)
            fprintf(stderr, "  %s: y[%lld] = %.9g, want %.9g (tol %.3g)\n", what, (long long)i,
                    got[i], want, tol);
    }
    CHECK_MSG(bad == 0, "%s: %d of %lld outputs off", what, bad, (long long)(d->n_rows * m));
}

/* The gated form (vkm_op_matmul_glu / vkm_op_matmul_id_glu): gate matrices G and up matrices U
 * of the same type and shape; Y = silu(G x) * (U x), compared with the reference (check_glu).
 * n_mat 0: plain (n columns, X row j -> Y row j); else expert rows with counts[] (n_x X rows).
 * Placement of U: 0 right after G in the same buffer (the fused stacks of a GGUF file), 1 before G
 * with a gap, 2 in another buffer (always the separate form). CPU devices run 0 and 1 as one
 * dispatch, GPU layouts fall back to separate matmuls and a swiglu through the scratch (whose
 * offsets, like Y's, must then meet the storage alignment of element-wise ops: Y_GLU_PAD). */
#define Y_GLU_PAD 512
static void test_glu(vkm_gpu *gpu, uint32_t wtype, int64_t k, int64_t m, int64_t n_mat,
                     const int32_t *counts, int64_t n, int placement) {
    char what[128];
    const bool id = n_mat > 0;
    const int64_t n_x = n, nm = id ? n_mat : 1;
    const int32_t one[1] = {(int32_t)n};
    glu_data d;
    vkm_gpu_buf *bw = NULL, *bu = NULL, *bx = NULL, *by = NULL, *bi = NULL, *bs = NULL;
    float *got = NULL;
    const int rc = glu_data_make(&d, wtype, k, m, nm, id ? counts : one, n_x, id ? nm : 0, 0);
    const int64_t n_rows = d.n_rows;
    snprintf(what, sizeof what, "%s glu %s k=%lld m=%lld rows=%lld up=%d", vkm_qtype_name(wtype),
             id ? "id" : "plain", (long long)k, (long long)m, (long long)n_rows, placement);
    size_t yb = Y_GLU_PAD + (size_t)(n_rows * m) * 4 + 64;
    got = malloc(yb);
    if (rc || !got) {
        CHECK_MSG(0, "%s: setup failed: %s", what, vkm_errmsg());
        goto out;
    }
    for (size_t i = 0; i < yb / 4; i++) got[i] = GUARD;

    /* W: [pad][G][U] (0), [pad][U][gap][G] (1), [pad][G] and U alone in bu (2) */
    const size_t wb = d.wb, ub = d.ub, wo = w_pad(wtype), gap = 1024;
    const size_t g_off = placement == 1 ? wo + ub + gap : wo;
    const size_t u_off = placement == 0 ? wo + wb : placement == 1 ? wo : 64;
    CHECK_OK(vkm_gpu_buf_create(gpu, wo + wb + ub + gap + 6 + TEX_SLACK, VKM_BUF_DEVICE, &bw));
    CHECK_OK(vkm_gpu_buf_create(gpu, placement == 2 ? 64 + ub + 6 + TEX_SLACK : 16, VKM_BUF_DEVICE,
                                &bu));
    CHECK_OK(vkm_gpu_buf_create(gpu, X_PAD + (size_t)(n_x * k) * 4 + 8 + TEX_SLACK, VKM_BUF_DEVICE,
                                &bx));
    CHECK_OK(vkm_gpu_buf_create(gpu, yb, VKM_BUF_DEVICE, &by));
    CHECK_OK(
        vkm_gpu_buf_create(gpu, 64 + (size_t)nm * 8 + (size_t)n_rows * 4, VKM_BUF_DEVICE, &bi));
    CHECK_OK(vkm_gpu_buf_create(gpu, 256 + (size_t)(n_rows * m) * 8, VKM_BUF_DEVICE, &bs));
    if (!bw || !bu || !bx || !by || !bi || !bs) goto out;
    vkm_gpu_buf *ubuf = placement == 2 ? bu : bw;
    CHECK_OK(vkm_gpu_upload(gpu, bw, g_off, d.gq, wb));
    CHECK_OK(vkm_gpu_upload(gpu, ubuf, u_off, d.uq, ub));
    CHECK_OK(vkm_gpu_upload(gpu, bx, X_PAD, d.x, (size_t)(n_x * k) * 4));
    CHECK_OK(vkm_gpu_upload(gpu, by, 0, got, yb));
    const size_t mo = 64, ro = 64 + (size_t)nm * 8;
    CHECK_OK(vkm_gpu_upload(gpu, bi, mo, d.mats, (size_t)nm * 8));
    CHECK_OK(vkm_gpu_upload(gpu, bi, ro, d.rows, (size_t)n_rows * 4));
    const vkm_gpu_arg scratch = {bs, 256, 0};
    CHECK_OK(vkm_gpu_begin(gpu));
    if (id) {
        vkm_matmul_id a = {.wtype = wtype,
                           .w = bw,
                           .w_off = g_off,
                           .k = k,
                           .m = m,
                           .n_mat = n_mat,
                           .x = bx,
                           .x_off = X_PAD,
                           .n_x = n_x,
                           .y = by,
                           .y_off = Y_GLU_PAD,
                           .n_y = n_rows,
                           .mode = VKM_MATMUL_ID_ROWS,
                           .rows = bi,
                           .rows_off = ro,
                           .n_rows = n_rows,
                           .mats = bi,
                           .mats_off = mo};
        CHECK_OK(vkm_op_matmul_id_glu(gpu, &a, ubuf, u_off, scratch));
    } else {
        CHECK_OK(vkm_op_matmul_glu(gpu, wtype, k, m, bw, g_off, ubuf, u_off, bx, X_PAD, n, by,
                                   Y_GLU_PAD, scratch, NULL));
    }
    CHECK_OK(vkm_gpu_submit(gpu));
    CHECK_OK(vkm_gpu_download(gpu, by, 0, got, yb));
    check_glu(what, got + Y_GLU_PAD / 4, &d, m);
    int guards = 0;
    for (size_t i = 0; i < yb / 4; i++)
        if ((i < Y_GLU_PAD / 4 || i >= Y_GLU_PAD / 4 + (size_t)(n_rows * m)) && got[i] != GUARD)
            guards++;
    CHECK_MSG(guards == 0, "%s: %d guard values overwritten", what, guards);
out:
    vkm_gpu_buf_destroy(gpu, bw);
    vkm_gpu_buf_destroy(gpu, bu);
    vkm_gpu_buf_destroy(gpu, bx);
    vkm_gpu_buf_destroy(gpu, by);
    vkm_gpu_buf_destroy(gpu, bi);
    vkm_gpu_buf_destroy(gpu, bs);
    glu_data_free(&d);
    free(got);
}

/* Expert rows with a second matrix in the same dispatch (vkm_op_matmul_id_pair: the shared expert
 * beside the routed ones), plain or gated (glu): the stack's n_mat matrices with counts[] entries
 * (X rows out of n_x), the second matrix with n2 entries from X row 1, writing Y rows n_rows..
 * The second matrix (and its up matrix) lie before the stacks with a gap, so the window starts at
 * it. The reference is one indexed matmul over n_mat + 1 matrices. The layouts of pair_fits must
 * take the pair in one dispatch; the others must answer VKM_MATMUL_UNFIT. */
static void test_pair(vkm_gpu *gpu, uint32_t wtype, int64_t k, int64_t m, int64_t n_mat,
                      const int32_t *counts, int64_t n_x, int64_t n2, bool glu) {
    char what[128];
    const int64_t nm = n_mat + 1;
    int32_t all[8];
    if (n_mat >= 8) {
        CHECK_MSG(0, "test_pair: at most 7 matrices");
        return;
    }
    memcpy(all, counts, (size_t)n_mat * 4);
    all[n_mat] = (int32_t)n2;
    glu_data d;
    vkm_gpu_buf *bw = NULL, *bx = NULL, *by = NULL, *bi = NULL;
    float *got = NULL;
    const int rc0 = glu_data_make(&d, wtype, k, m, nm, all, n_x, n_mat, 1);
    const int64_t nt = d.n_rows, n_rows = nt - n2;
    snprintf(what, sizeof what, "%s pair%s k=%lld m=%lld rows=%lld+%lld", vkm_qtype_name(wtype),
             glu ? " glu" : "", (long long)k, (long long)m, (long long)n_rows, (long long)n2);
    got = malloc((size_t)(nt * m) * 4 + 64);
    if (rc0 || !got) {
        CHECK_MSG(0, "%s: setup failed: %s", what, vkm_errmsg());
        goto out;
    }
    for (int64_t i = 0; i < nt * m + 16; i++) got[i] = GUARD;

    /* W: [pad][second][second's up][gap][G stack][U stack] */
    const size_t mb = d.wb / (size_t)nm, gap = 512, so = w_pad(wtype), suo = so + mb;
    const size_t go = suo + mb + gap, uo = go + d.wb - mb;
    CHECK_OK(vkm_gpu_buf_create(gpu, uo + d.ub + 6 + TEX_SLACK, VKM_BUF_DEVICE, &bw));
    CHECK_OK(vkm_gpu_buf_create(gpu, X_PAD + (size_t)(n_x * k) * 4 + 8 + TEX_SLACK, VKM_BUF_DEVICE,
                                &bx));
    CHECK_OK(vkm_gpu_buf_create(gpu, (size_t)(nt * m) * 4 + 64, VKM_BUF_DEVICE, &by));
    CHECK_OK(vkm_gpu_buf_create(gpu, 64 + (size_t)nm * 8 + (size_t)nt * 4, VKM_BUF_DEVICE, &bi));
    if (!bw || !bx || !by || !bi) goto out;
    CHECK_OK(vkm_gpu_upload(gpu, bw, go, d.gq, d.wb - mb));
    CHECK_OK(vkm_gpu_upload(gpu, bw, so, d.gq + (d.wb - mb), mb));
    CHECK_OK(vkm_gpu_upload(gpu, bw, uo, d.uq, d.ub - mb));
    CHECK_OK(vkm_gpu_upload(gpu, bw, suo, d.uq + (d.ub - mb), mb));
    CHECK_OK(vkm_gpu_upload(gpu, bx, X_PAD, d.x, (size_t)(n_x * k) * 4));
    CHECK_OK(vkm_gpu_upload(gpu, by, 0, got, (size_t)(nt * m) * 4 + 64));
    const size_t mo = 64, ro = 64 + (size_t)nm * 8;
    CHECK_OK(vkm_gpu_upload(gpu, bi, mo, d.mats, (size_t)n_mat * 8));
    CHECK_OK(vkm_gpu_upload(gpu, bi, ro, d.rows, (size_t)n_rows * 4));
    vkm_matmul_id a = {.wtype = wtype,
                       .w = bw,
                       .w_off = go,
                       .k = k,
                       .m = m,
                       .n_mat = n_mat,
                       .x = bx,
                       .x_off = X_PAD,
                       .n_x = n_x,
                       .y = by,
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
    int64_t per_mat = n2;
    for (int64_t i = 0; i < n_mat; i++) per_mat = counts[i] > per_mat ? counts[i] : per_mat;
    if (!pair_fits(gpu, wtype, m, per_mat)) { /* nothing recorded */
        CHECK_MSG(rc == VKM_MATMUL_UNFIT, "%s: rc %d, want VKM_MATMUL_UNFIT", what, rc);
        goto out;
    }
    CHECK_MSG(rc == 0, "%s: rc %d (%s)", what, rc, vkm_errmsg());
    CHECK_OK(vkm_gpu_download(gpu, by, 0, got, (size_t)(nt * m) * 4 + 64));
    if (glu) {
        check_glu(what, got, &d, m);
    } else {
        compare(what, got, m, d.yg, d.mg, nt, m);
    }
    int guards = 0;
    for (int64_t i = nt * m; i < nt * m + 16; i++) guards += got[i] != GUARD;
    CHECK_MSG(guards == 0, "%s: %d guard values overwritten", what, guards);
out:
    vkm_gpu_buf_destroy(gpu, bw);
    vkm_gpu_buf_destroy(gpu, bx);
    vkm_gpu_buf_destroy(gpu, by);
    vkm_gpu_buf_destroy(gpu, bi);
    glu_data_free(&d);
    free(got);
}

/* Per-head matrices: X [n_tok][n_head][xs] (first k used), Y [n_tok][n_head][ys]. */
static void test_id_heads(vkm_gpu *gpu, uint32_t wtype, int64_t k, int64_t m, int64_t n_head,
                          int64_t n_tok) {
    char what[128];
    snprintf(what, sizeof what, "%s id-heads k=%lld m=%lld heads=%lld tok=%lld",
             vkm_qtype_name(wtype), (long long)k, (long long)m, (long long)n_head,
             (long long)n_tok);
    const int64_t xs = k + 12, ys = m + 3, nr = n_tok * n_head;
    uint8_t *wq = NULL;
    float *wf = NULL, *x = malloc((size_t)(nr * xs) * 4), *xg = malloc((size_t)(nr * k) * 4);
    float *want = malloc((size_t)(nr * m) * 4), *got = malloc((size_t)(nr * ys) * 4);
    double *mag = malloc((size_t)(nr * m) * sizeof *mag);
    int32_t *mat_of = malloc((size_t)nr * 4);
    vkm_gpu_buf *bw = NULL, *bx = NULL, *by = NULL;
    size_t wb;
    if (!x || !xg || !want || !got || !mag || !mat_of ||
        make_weights(wtype, k, m, n_head, &wq, &wf, &wb)) {
        CHECK_MSG(0, "%s: setup failed: %s", what, vkm_errmsg());
        goto out;
    }
    for (int64_t i = 0; i < nr * xs; i++) x[i] = frand();
    for (int64_t i = 0; i < nr * ys; i++) got[i] = GUARD;
    for (int64_t r = 0; r < nr; r++) {
        mat_of[r] = (int32_t)(r % n_head);
        memcpy(xg + r * k, x + r * xs, (size_t)k * 4);
        magnitude(wf + (r % n_head) * m * k, k, m, xg + r * k, k, 1, mag + r * m);
    }
    q8_rows(gpu, wtype, n_tok, xg, nr, k);
    CHECK_OK(vkm_ref_matmul_id(wtype, wq, k, m, n_head, xg, nr, mat_of, want));
    CHECK_OK(vkm_gpu_buf_create(gpu, w_pad(wtype) + wb + 2 + TEX_SLACK, VKM_BUF_DEVICE, &bw));
    CHECK_OK(vkm_gpu_buf_create(gpu, (size_t)(nr * xs) * 4 + TEX_SLACK, VKM_BUF_DEVICE, &bx));
    CHECK_OK(vkm_gpu_buf_create(gpu, (size_t)(nr * ys) * 4, VKM_BUF_DEVICE, &by));
    if (!bw || !bx || !by) goto out;
    CHECK_OK(vkm_gpu_upload(gpu, bw, w_pad(wtype), wq, wb));
    CHECK_OK(vkm_gpu_upload(gpu, bx, 0, x, (size_t)(nr * xs) * 4));
    CHECK_OK(vkm_gpu_upload(gpu, by, 0, got, (size_t)(nr * ys) * 4));
    vkm_matmul_id a = {.wtype = wtype,
                       .w = bw,
                       .w_off = w_pad(wtype),
                       .k = k,
                       .m = m,
                       .n_mat = n_head,
                       .x = bx,
                       .n_x = nr,
                       .x_stride = xs,
                       .y = by,
                       .n_y = nr,
                       .y_stride = ys,
                       .mode = VKM_MATMUL_ID_HEADS,
                       .n_tok = n_tok};
    CHECK_OK(vkm_gpu_begin(gpu));
    CHECK_OK(vkm_op_matmul_id(gpu, &a));
    CHECK_OK(vkm_gpu_submit(gpu));
    CHECK_OK(vkm_gpu_download(gpu, by, 0, got, (size_t)(nr * ys) * 4));
    compare(what, got, ys, want, mag, nr, m);
    int guards = 0;
    for (int64_t r = 0; r < nr; r++)
        for (int64_t i = m; i < ys; i++) guards += got[r * ys + i] != GUARD;
    CHECK_MSG(guards == 0, "%s: %d guard values overwritten", what, guards);
out:
    vkm_gpu_buf_destroy(gpu, bw);
    vkm_gpu_buf_destroy(gpu, bx);
    vkm_gpu_buf_destroy(gpu, by);
    free(wq), free(wf), free(x), free(xg), free(want), free(got), free(mag), free(mat_of);
}

/* Bad indices read on the GPU: X rows outside [0, n_x) give zero outputs, a matrix whose range
 * leaves rows[] does nothing; both through the GEMM (hint 0) and the GEMV (hint 2) kernels. */
static void test_id_bad(vkm_gpu *gpu, int64_t hint) {
    enum { K = 32, M = 5, NX = 3, NR = 12 };
    static const int32_t rows[NR] = {0, 1, 2, -1, 2, 100, 0, 1, 2, 0, 1, 2};
    static const int32_t mats[6] = {0, 10, 10, 2, 11, 5}; /* matrix 2: 11 + 5 > 12 */
    uint8_t *wq = NULL;
    float *wf = NULL, x[NX * K], xg[NR * K], want[NR * M], got[NR * M];
    int32_t mat_of[NR];
    size_t wb;
    vkm_gpu_buf *bw = NULL, *bx = NULL, *by = NULL, *bi = NULL;
    if (make_weights(VKM_Q8_0, K, M, 3, &wq, &wf, &wb)) {
        CHECK_MSG(0, "setup failed: %s", vkm_errmsg());
        goto out;
    }
    for (int i = 0; i < NX * K; i++) x[i] = frand();
    for (int p = 0; p < NR; p++) {
        mat_of[p] = p < 10 ? 0 : 1;
        for (int i = 0; i < K; i++)
            xg[p * K + i] = rows[p] >= 0 && rows[p] < NX ? x[rows[p] * K + i] : 0;
    }
    CHECK_OK(vkm_ref_matmul_id(VKM_Q8_0, wq, K, M, 3, xg, NR, mat_of, want));
    CHECK_OK(vkm_gpu_buf_create(gpu, wb + 2, VKM_BUF_DEVICE, &bw));
    CHECK_OK(vkm_gpu_buf_create(gpu, sizeof x, VKM_BUF_DEVICE, &bx));
    CHECK_OK(vkm_gpu_buf_create(gpu, sizeof got, VKM_BUF_DEVICE, &by));
    CHECK_OK(vkm_gpu_buf_create(gpu, sizeof rows + sizeof mats, VKM_BUF_DEVICE, &bi));
    if (!bw || !bx || !by || !bi) goto out;
    CHECK_OK(vkm_gpu_upload(gpu, bw, 0, wq, wb));
    CHECK_OK(vkm_gpu_upload(gpu, bx, 0, x, sizeof x));
    CHECK_OK(vkm_gpu_upload(gpu, bi, 0, rows, sizeof rows));
    CHECK_OK(vkm_gpu_upload(gpu, bi, sizeof rows, mats, sizeof mats));
    vkm_matmul_id a = {.wtype = VKM_Q8_0,
                       .w = bw,
                       .k = K,
                       .m = M,
                       .n_mat = 3,
                       .x = bx,
                       .n_x = NX,
                       .y = by,
                       .n_y = NR,
                       .mode = VKM_MATMUL_ID_ROWS,
                       .rows = bi,
                       .n_rows = NR,
                       .mats = bi,
                       .mats_off = sizeof rows,
                       .max_per_mat = hint};
    CHECK_OK(vkm_gpu_begin(gpu));
    CHECK_OK(vkm_op_matmul_id(gpu, &a));
    CHECK_OK(vkm_gpu_submit(gpu));
    CHECK_OK(vkm_gpu_download(gpu, by, 0, got, sizeof got));
    for (int i = 0; i < NR * M; i++)
        CHECK_MSG(fabsf(got[i] - want[i]) <= 1e-4f * (1 + fabsf(want[i])),
                  "bad-index y[%d] = %g, want %g", i, got[i], want[i]);
out:
    vkm_gpu_buf_destroy(gpu, bw);
    vkm_gpu_buf_destroy(gpu, bx);
    vkm_gpu_buf_destroy(gpu, by);
    vkm_gpu_buf_destroy(gpu, bi);
    free(wq), free(wf);
}

static void test_errors(vkm_gpu *gpu) {
    vkm_gpu_buf *b = NULL;
    CHECK_OK(vkm_gpu_buf_create(gpu, 1 << 16, VKM_BUF_DEVICE, &b));
    if (!b) return;
    static const int32_t zeros[1 << 14];
    CHECK_OK(vkm_gpu_upload(gpu, b, 0, zeros, sizeof zeros));
    CHECK_OK(vkm_gpu_begin(gpu));
    CHECK(vkm_op_matmul(gpu, VKM_Q8_K, b, 0, 256, 4, b, 0, 1, b, 0) == VKM_EUNSUPPORTED);
    CHECK(strstr(vkm_errmsg(), "Q8_K") != NULL);
    CHECK(vkm_op_matmul(gpu, 999, b, 0, 256, 4, b, 0, 1, b, 0) == VKM_EUNSUPPORTED);
    CHECK(vkm_op_matmul(gpu, VKM_Q4_K, b, 0, 100, 4, b, 0, 1, b, 0) == VKM_EINVAL);   /* k % 256 */
    CHECK(vkm_op_matmul(gpu, VKM_Q4_0, b, 0, 32, 0, b, 0, 1, b, 0) == VKM_EINVAL);    /* m = 0 */
    CHECK(vkm_op_matmul(gpu, VKM_F32, b, 0, 32, 4, b, 0, -1, b, 0) == VKM_EINVAL);    /* n < 0 */
    CHECK(vkm_op_matmul(gpu, VKM_F32, b, 2, 32, 4, b, 0, 1, b, 0) == VKM_EINVAL);     /* w_off */
    CHECK(vkm_op_matmul(gpu, VKM_F16, b, 0, 32, 4, b, 2, 1, b, 0) == VKM_EINVAL);     /* x_off */
    CHECK(vkm_op_matmul(gpu, VKM_F32, b, 0, 4096, 8, b, 0, 1, b, 0) == VKM_EINVAL);   /* W size */
    CHECK(vkm_op_matmul(gpu, VKM_F32, b, 0, 32, 4, b, 0, 1000, b, 0) == VKM_EINVAL);  /* X */
    CHECK(vkm_op_matmul(gpu, VKM_F32, b, 0, 32, 4, b, 0, 1, b, 65532) == VKM_EINVAL); /* Y */
    CHECK(vkm_op_matmul(gpu, VKM_F32, b, 0, 32, 4, b, 0, 0, b, 0) == 0); /* nothing to do */
    vkm_matmul_id a = {.wtype = VKM_Q8_0,
                       .w = b,
                       .k = 32,
                       .m = 4,
                       .n_mat = 2,
                       .x = b,
                       .n_x = 4,
                       .y = b,
                       .n_y = 4,
                       .mode = VKM_MATMUL_ID_ROWS,
                       .rows = b,
                       .n_rows = 4,
                       .mats = b};
    CHECK(vkm_op_matmul_id(gpu, &a) == 0);
    /* the paired forms: missing arguments, a second matrix whose entries leave X, m2 = 0 */
    const vkm_matmul_second sec = {0, 0, 1, 4, 0}; /* X row 4 of 4 */
    CHECK(vkm_op_matmul_id_pair(gpu, NULL, NULL, 0, &sec) == VKM_EINVAL);
    CHECK(vkm_op_matmul_id_pair(gpu, &a, NULL, 0, NULL) == VKM_EINVAL);
    CHECK(vkm_op_matmul_id_pair(gpu, &a, NULL, 0, &sec) == VKM_EINVAL);
    CHECK(strstr(vkm_errmsg(), "second matrix") != NULL);
    CHECK(vkm_op_matmul_pair(gpu, VKM_F32, 32, b, 0, 4, 1024, 0, b, 0, 1, b, 0, 64, NULL) ==
          VKM_EINVAL);
    a.mode = 7;
    CHECK(vkm_op_matmul_id(gpu, &a) == VKM_EINVAL);
    a.mode = VKM_MATMUL_ID_ROWS;
    a.n_y = 3; /* fewer Y rows than entries */
    CHECK(vkm_op_matmul_id(gpu, &a) == VKM_EINVAL);
    a.n_y = 4;
    a.mats = NULL;
    CHECK(vkm_op_matmul_id(gpu, &a) == VKM_EINVAL);
    a.mats = b;
    a.mode = VKM_MATMUL_ID_HEADS;
    a.n_tok = 3; /* 3 tokens x 2 heads > 4 rows */
    CHECK(vkm_op_matmul_id(gpu, &a) == VKM_EINVAL);
    a.x_stride = 16; /* < k */
    a.n_tok = 2;
    CHECK(vkm_op_matmul_id(gpu, &a) == VKM_EINVAL);
    /* the gated form's separate path (up in another buffer): its scratch and Y, missing up */
    vkm_gpu_buf *b2 = NULL;
    CHECK_OK(vkm_gpu_buf_create(gpu, 4096, VKM_BUF_DEVICE, &b2));
    a.x_stride = 0;
    a.mode = VKM_MATMUL_ID_ROWS;
    const vkm_gpu_arg small = {b, 0, 2 * 4 * 4 * 4 - 4}, enough = {b, 0, 2 * 4 * 4 * 4};
    CHECK(vkm_op_matmul_id_glu(gpu, &a, b2, 0, small) == VKM_EINVAL);
    CHECK(vkm_op_matmul_id_glu(gpu, &a, b2, 0, (vkm_gpu_arg){0}) == VKM_EINVAL);
    CHECK(vkm_op_matmul_id_glu(gpu, &a, NULL, 0, enough) == VKM_EINVAL);
    a.y_stride = 8; /* not contiguous */
    CHECK(vkm_op_matmul_id_glu(gpu, &a, b2, 0, enough) == VKM_EINVAL);
    const vkm_gpu_arg small1 = {b, 0, 2 * 4 * 4 - 4}; /* one column */
    CHECK(vkm_op_matmul_glu(gpu, VKM_F32, 32, 4, b, 0, b2, 0, b, 0, 1, b, 0, small1, NULL) ==
          VKM_EINVAL);
    CHECK(vkm_op_matmul_glu(gpu, VKM_F32, 32, 4, b, 0, b2, 0, NULL, 0, 1, b, 0, enough, NULL) ==
          VKM_EINVAL);
    vkm_gpu_buf_destroy(gpu, b2);
    CHECK_OK(vkm_gpu_submit(gpu));
    vkm_gpu_buf_destroy(gpu, b);
    /* a 2-byte aligned Q6_K row ending in the middle of the buffer's last word */
    CHECK_OK(vkm_gpu_buf_create(gpu, 210, VKM_BUF_DEVICE, &b));
    CHECK(vkm_op_matmul(gpu, VKM_Q6_K, b, 0, 256, 1, b, 0, 1, b, 0) == VKM_EINVAL);
    vkm_gpu_buf_destroy(gpu, b);
}

/* gemv.comp's cases, in the GPU layout only (VKMOE_KERNELS=gpu; the other layouts' kernels have
 * their cases above), where the plan must give gemv for these types (checked here): the DeepSeek-V3
 * expert shapes' k (2048, 7168: whole loop trips of a 64-lane subgroup) and row counts that are not
 * a multiple of the rows per workgroup; float rows whose length is not a multiple of a trip (2 or 4
 * pieces of 16 bytes per lane) nor of a piece; every column count 1..8 (one pass each; the spec
 * constant is the exact count) and 11 entries of an expert in passes of 5 (absent columns in the
 * last pass); W at 2-byte (w_pad 1002), 4-byte (F32: 260) and 16-byte (1072) aligned offsets, so
 * that both WAL variants run; X rows 16-byte aligned (XAL) and not; expert rows with empty experts,
 * per-head rows; the gated form (GLU), indexed and plain, up after and before gate. */
static void test_gemv(vkm_gpu *gpu) {
    static const uint32_t types[] = {VKM_Q4_K, VKM_Q8_0, VKM_Q6_K, VKM_F16,  VKM_F32,
                                     VKM_BF16, VKM_Q4_0, VKM_Q4_1, VKM_Q5_0, VKM_Q5_1,
                                     VKM_Q2_K, VKM_Q3_K, VKM_Q5_K};
    const vkm_kernel_plan *plan = vkm_gpu_plan(gpu);
    if (plan->layout != VKM_KERNELS_GPU) return;
    static const int32_t c_tok[] = {1, 0, 1, 1}, c_sparse[] = {0, 2, 0, 0, 0, 1, 0, 0};
    static const int32_t c_many[] = {0, 11, 0};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        const uint32_t ty = types[i];
        const bool flt = vkm_qtype_get(ty)->block == 1;
        /* what ops_matmul.c asks the plan for these dispatches */
        CHECK_MSG(vkm_kernels_gemv_family(plan, ty, 9) == VKM_MMK_GEMV &&
                      vkm_kernels_gemv_tuning(plan, 9, 9, ty, 1).gemv &&
                      vkm_kernels_gemv_tuning(plan, 5 * 8, 5, ty, 2).gemv,
                  "%s: the GPU layout's GEMV is not gemv", vkm_qtype_name(ty));
        for (int a = 0; a < 4; a++) { /* W 2/4-byte or 16-byte aligned, X aligned or not */
            g_w16 = a & 1;
            g_x16 = a & 2;
            test_plain(gpu, ty, 2048, 9, 1);
            test_id_rows(gpu, ty, 7168, 5, 4, c_tok, 1, 0);
            test_glu(gpu, ty, 2048, 9, 4, c_tok, 1, a & 1); /* gated: up after / before gate */
            test_glu(gpu, ty, flt ? 1029 : 1024, 5, 0, NULL, 2, 0);
            if (flt) {
                test_plain(gpu, ty, 2048 + 16 * 3 + 8 + 5, 3, 2);
                test_plain(gpu, ty, 13, 6, 1);
            }
        }
        g_w16 = g_x16 = false;
        test_plain(gpu, ty, 7168, 6, 1);
        test_id_rows(gpu, ty, 2048, 7, 8, c_sparse, 2, 0);
        test_id_rows(gpu, ty, 256, 5, 3, c_many, 11, 5); /* passes of 5, 5, 1 */
        test_id_heads(gpu, ty, 2048, 5, 3, 1);
        for (int64_t n = 1; n <= 8; n++) test_plain(gpu, ty, flt ? 96 + 7 : 256, 5, n);
    }
}

/* gemv's integer-dot variants (layout idot), every type they cover: the plan must give them
 * (checked here); the DeepSeek-V3 expert shapes' k (2048, 7168), row counts that are not a
 * multiple of the rows per workgroup, W at 2-byte and 16-byte aligned offsets (WAL), 1-8 columns
 * (the spec constant is the exact count: all for two types), 11 entries of an expert in passes of
 * 5, empty experts, per-head rows, the gated form (indexed and plain, up after and before gate),
 * the shared expert as a second z group and the q_a + kv_a pair; the quantized X of the plain
 * cases checked against the reference (check_q8_scratch). */
static void test_gemv_idot(vkm_gpu *gpu) {
    static const uint32_t types[] = {VKM_Q4_K, VKM_Q8_0, VKM_Q6_K, VKM_Q4_0, VKM_Q5_K,
                                     VKM_Q4_1, VKM_Q5_0, VKM_Q5_1, VKM_Q2_K, VKM_Q3_K};
    const vkm_kernel_plan *plan = vkm_gpu_plan(gpu);
    static const int32_t c_tok[] = {1, 0, 1, 1}, c_sparse[] = {0, 2, 0, 0, 0, 1, 0, 0};
    static const int32_t c_many[] = {0, 11, 0}, c_cols[] = {0, 3, 2, 0, 1};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        const uint32_t ty = types[i];
        const vkm_gemv_tuning t1 = vkm_kernels_gemv_tuning(plan, 9, 9, ty, 1);
        CHECK_MSG(t1.gemv && t1.idot && vkm_kernels_gemv_tuning(plan, 5 * 8, 5, ty, 2).idot,
                  "%s: the idot layout's GEMV is not gemv's integer-dot variant",
                  vkm_qtype_name(ty));
        for (int a = 0; a < 2; a++) { /* W 2-byte or 16-byte aligned */
            g_w16 = a;
            test_plain(gpu, ty, 2048, 9, 1);
            test_id_rows(gpu, ty, 7168, 5, 4, c_tok, 1, 0);
            test_glu(gpu, ty, 2048, 9, 4, c_tok, 1, a); /* gated: up after / before gate */
        }
        g_w16 = false;
        test_glu(gpu, ty, 1024, 5, 0, NULL, 2, 0);
        test_id_rows(gpu, ty, 2048, 7, 8, c_sparse, 2, 0);
        test_id_rows(gpu, ty, 256, 5, 3, c_many, 11, 5); /* passes of 5, 5, 1 */
        test_id_heads(gpu, ty, 2048, 5, 3, 1);
        for (int64_t n = 2; n <= 8; n++)
            if (i < 2 || n == 3 || n == 8) test_plain(gpu, ty, 512, 5, n);
        /* 24 units a row: whole trips and a tail (Q2_K, Q3_K take 2 units a trip, Q8_UPT of
         * gemv_q8.glsl: with 8 lanes 1 trip of 16 and 8 single units) */
        test_plain(gpu, ty, 768, 5, 1);
        test_glu(gpu, ty, 768, 5, 0, NULL, 1, 0);
    }
    for (int glu = 0; glu < 2; glu++) test_pair(gpu, VKM_Q4_K, 512, 33, 5, c_cols, 6, 5, glu);
    test_plain_pair(gpu, VKM_Q6_K, 256, 70, 37, 1);
}

int main(void) {
    vkm_gpu *gpu = NULL;
    vkm_gpu_options opt = {.device = -1, .validation = true};
    int rc = vkm_kernels_env(&opt.kernels); /* the ctest variants force a layout */
    if (!rc) rc = vkm_gpu_create(&opt, &gpu);
    if (rc == VKM_ENODEV) check_skip(vkm_errmsg());
    CHECK_OK(rc);
    if (rc) return check_done();
    g_gpu = gpu;
    /* the integer-dot GEMVs: where the plan has them (layout idot; on its own on GPUs that
     * accelerate them), the references of their cases take the 8-bit X */
    for (uint32_t t = 0; t < VKM_QTYPE_COUNT; t++) g_idot |= vkm_gpu_plan(gpu)->gemv_idot[t];
    if (g_idot) g_tol = 2e-5 + 5e-4;
    if (vkm_gpu_plan(gpu)->layout == VKM_KERNELS_IDOT) { /* only the integer-dot GEMVs */
        test_gemv_idot(gpu);
        const uint32_t verr = vkm_gpu_validation_errors(gpu);
        CHECK_MSG(verr == 0, "%u validation errors", verr);
        vkm_gpu_destroy(gpu);
        return check_done();
    }

    test_errors(gpu);
    test_id_bad(gpu, 0);
    test_id_bad(gpu, 2);
    for (size_t t = 0; t < sizeof g_types / sizeof g_types[0]; t++) {
        uint32_t ty = g_types[t];
        const vkm_qtype_info *ti = vkm_qtype_get(ty);
        int64_t k1 = ti->block == 256 ? 256 : ti->block == 32 ? 32 : 64, k2 = 512;
        /* GEMV: the variants compiled for 1 and for 3..4 columns (more in the block below) */
        test_plain(gpu, ty, k1, 1, 1);
        test_plain(gpu, ty, k2, 7, 1);
        test_plain(gpu, ty, k2, 300, 3);
        test_plain(gpu, ty, k1, 64, 4);
        /* GEMM */
        test_plain(gpu, ty, k1, 7, 9);
        test_plain(gpu, ty, k2, 64, 64);
        test_plain(gpu, ty, k1, 300, 300);
        if (ti->block == 1) { /* rows of odd length: 2-byte aligned F16/BF16 rows, masked tails */
            test_plain(gpu, ty, 37, 5, 4);
            test_plain(gpu, ty, 37, 70, 65);
        }
        /* indexed, expert rows: one token routed to 3 of 4 experts (GEMV); prefill (GEMM) with
         * empty matrices, and one matrix taking every row */
        static const int32_t c_tok[] = {1, 0, 1, 1};
        static const int32_t c_mm[] = {0, 70, 30, 0, 9}, c_mm_all[] = {0, 0, 100};
        test_id_rows(gpu, ty, k1, 7, 4, c_tok, 1, 0);
        test_id_rows(gpu, ty, k1, 70, 5, c_mm, 40, 0);
        test_id_rows(gpu, ty, k2, 7, 3, c_mm_all, 100, 0);
        /* indexed, per-head: one token (GEMV), 20 tokens (GEMM) */
        test_id_heads(gpu, ty, k1, 7, 3, 1);
        test_id_heads(gpu, ty, k1, 66, 2, 20);
        if (ty == VKM_F16 || ty == VKM_Q8_0 || ty == VKM_Q4_K) {
            /* the GEMV variants for 2 and 5..8 columns, several passes of them, all in one */
            test_plain(gpu, ty, k1, 33, 2);
            test_plain(gpu, ty, k2, 300, 7);
            test_plain(gpu, ty, k1, 64, 8);
            static const int32_t c_vec[] = {2, 0, 3, 1}, c_all[] = {0, 5, 0, 0}, c_big[] = {0, 200};
            test_id_rows(gpu, ty, k1, 7, 4, c_vec, 5, 0);
            test_id_rows(gpu, ty, k1, 7, 4, c_all, 5, 2);    /* 3 passes of 2 columns */
            test_id_rows(gpu, ty, k1, 66, 2, c_big, 50, 65); /* 4 tiles over 2 workgroups */
            test_id_rows(gpu, ty, k1, 64, 4, c_all, 3, 0);
            test_id_heads(gpu, ty, k2, 7, 3, 2);
        }
    }
    /* the gated form: expert rows at decode (one token, 3 of 4 experts) and prefill (empty
     * matrices, several columns), plain GEMV and GEMM; up after gate, before it, elsewhere */
    static const uint32_t glu_types[] = {VKM_F32, VKM_F16, VKM_Q4_0, VKM_Q8_0, VKM_Q4_K, VKM_Q6_K};
    for (size_t t = 0; t < sizeof glu_types / sizeof glu_types[0]; t++) {
        const uint32_t ty = glu_types[t];
        const int64_t k1 = vkm_qtype_get(ty)->block == 256 ? 256 : 64;
        static const int32_t c_tok[] = {1, 0, 1, 1}, c_mm[] = {0, 30, 12, 0, 9};
        for (int up = 0; up < 3; up++) {
            test_glu(gpu, ty, k1, 70, 4, c_tok, 1, up);
            test_glu(gpu, ty, k1, 7, 5, c_mm, 40, up);
            test_glu(gpu, ty, k1, 300, 0, NULL, 1, up);
            test_glu(gpu, ty, k1, 33, 0, NULL, 20, up);
        }
    }

    /* a second matrix in the expert dispatch (the shared expert), one token and several, plain
     * and gated, and two plain projections in one dispatch; unaligned (Q6_K) and aligned steps */
    static const uint32_t pair_types[] = {VKM_F16, VKM_Q4_K, VKM_Q6_K};
    for (size_t t = 0; t < sizeof pair_types / sizeof pair_types[0]; t++) {
        const uint32_t ty = pair_types[t];
        const int64_t k1 = vkm_qtype_get(ty)->block == 256 ? 256 : 64;
        static const int32_t c_tok[] = {1, 0, 1, 1}, c_cols[] = {0, 3, 2, 0, 1};
        for (int glu = 0; glu < 2; glu++) {
            test_pair(gpu, ty, k1, 70, 4, c_tok, 2, 1, glu);
            test_pair(gpu, ty, 2 * k1, 33, 5, c_cols, 6, 5, glu);
        }
        /* two projections of one X: rows of both in one workgroup, several columns */
        test_plain_pair(gpu, ty, k1, 70, 37, 1);
        test_plain_pair(gpu, ty, 2 * k1, 5, 300, 3);
    }

    /* 16-byte aligned weights (WAL on CPU devices): plain GEMV and GEMM, expert rows, heads;
     * F16 with 37-element rows keeps unaligned steps */
    static const uint32_t w16_types[] = {VKM_F32, VKM_F16, VKM_BF16, VKM_Q4_K, VKM_Q5_K};
    static const int32_t c_w16[] = {1, 0, 1, 1}, c_w16_mm[] = {0, 70, 30, 0, 9};
    g_w16 = true;
    for (size_t t = 0; t < sizeof w16_types / sizeof w16_types[0]; t++) {
        const uint32_t ty = w16_types[t];
        const int64_t k1 = vkm_qtype_get(ty)->block == 256 ? 256 : 64;
        test_plain(gpu, ty, k1, 7, 1);
        test_plain(gpu, ty, 512, 300, 3);
        test_plain(gpu, ty, 512, 64, 64);
        test_id_rows(gpu, ty, 512, 7, 4, c_w16, 1, 0);
        test_id_rows(gpu, ty, k1, 70, 5, c_w16_mm, 40, 0);
        test_id_heads(gpu, ty, k1, 7, 3, 1);
    }
    test_plain(gpu, VKM_F16, 37, 5, 4);
    g_w16 = false;

    test_gemv(gpu);

    /* more column passes x k steps than lavapipe's 65535 loop iterations per invocation: the
     * CPU-device kernel takes the columns in several dispatches (core/ops_matmul.c) */
    test_plain(gpu, VKM_F32, 4096, 16, 4200);
    static const int32_t c_long[] = {0, 4100};
    test_id_rows(gpu, VKM_Q8_0, 4096, 16, 2, c_long, 4100, 0);
    uint32_t verr = vkm_gpu_validation_errors(gpu);
    CHECK_MSG(verr == 0, "%u validation errors", verr);
    vkm_gpu_destroy(gpu);
    return check_done();
}
