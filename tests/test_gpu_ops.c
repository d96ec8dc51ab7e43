/* test_gpu_ops.c - the non-matmul GPU kernels (core/ops.h) against CPU references on random data
 * with awkward sizes, on whatever Vulkan device is first (lavapipe on CI), validation enabled.
 *
 * Oracles: core/ref_ops.h (rmsnorm, swiglu, rope, router), core/ref_quant.h (dequantization for
 * get_rows), core/fp16.h (f16 rounding of the cache); attention, moe_combine, add and scale have
 * their references here (double-precision softmax attention over the cache values as stored).
 * Each tolerance is stated next to its check with the reason. Skips (77) without a device. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "fp16.h"
#include "gpu.h"
#include "ops.h"
#include "q8x_check.h"
#include "qtype.h"
#include "ref_ops.h"
#include "ref_quant.h"

static vkm_gpu *gpu;

/* ------------------------------------------------------------------------------ helpers ---- */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint32_t rng_u32(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 11);
}
/* uniform in [lo, hi) */
static float frand(float lo, float hi) {
    return lo + (hi - lo) * (float)(rng_u32() >> 8) / 16777216.0f;
}
static void fill(float *x, size_t n, float lo, float hi) {
    for (size_t i = 0; i < n; i++) x[i] = frand(lo, hi);
}

/* A device buffer of `size` bytes holding `data` (if not NULL; else zeros). */
static vkm_gpu_buf *buf_new(const void *data, size_t size) {
    vkm_gpu_buf *b = NULL;
    int rc = vkm_gpu_buf_create(gpu, size, VKM_BUF_DEVICE, &b);
    if (rc) {
        fprintf(stderr, "buf_create(%zu): %s\n", size, vkm_errmsg());
        exit(1);
    }
    void *zero = NULL;
    if (!data) data = zero = xmalloc(size);
    rc = vkm_gpu_upload(gpu, b, 0, data, size);
    free(zero);
    if (rc) {
        fprintf(stderr, "upload: %s\n", vkm_errmsg());
        exit(1);
    }
    return b;
}

static void buf_get(vkm_gpu_buf *b, void *dst, size_t size) {
    if (vkm_gpu_download(gpu, b, 0, dst, size)) {
        fprintf(stderr, "download: %s\n", vkm_errmsg());
        exit(1);
    }
}

static vkm_gpu_arg A(vkm_gpu_buf *b) {
    return (vkm_gpu_arg){b, 0, 0};
}

static int begin(void) {
    return vkm_gpu_begin(gpu);
}
static int submit(void) {
    return vkm_gpu_submit(gpu);
}

/* max over i of |a - b| / (abs + rel * |b|); <= 1 means within tolerance */
static double worst(const float *a, const float *b, size_t n, double abs_tol, double rel_tol,
                    size_t *where) {
    double w = 0.0;
    for (size_t i = 0; i < n; i++) {
        double diff = fabs((double)a[i] - (double)b[i]);
        double e = diff == 0.0 ? 0.0 : diff / (abs_tol + rel_tol * fabs((double)b[i]));
        if (!(e <= w)) { /* also catches NaN */
            w = isnan(e) ? INFINITY : e;
            if (where) *where = i;
        }
    }
    return w;
}

static char label_buf[256];
#define LABEL(...) (snprintf(label_buf, sizeof label_buf, __VA_ARGS__), label_buf)

/* Checks got[0..n) against want within abs_tol + rel_tol·|want|; the rest is a printf label. */
#define CHECK_CLOSE(got, want, n, abs_tol, rel_tol, ...)                                           \
    do {                                                                                           \
        size_t at_ = 0;                                                                            \
        double w_ = worst(got, want, n, abs_tol, rel_tol, &at_);                                   \
        if (getenv("VKM_TEST_VERBOSE")) printf("%-60s worst %.3g\n", LABEL(__VA_ARGS__), w_);      \
        CHECK_MSG(w_ <= 1.0, "%s: worst %.3g of tolerance at %zu (got %.9g want %.9g)",            \
                  LABEL(__VA_ARGS__), w_, at_, (double)(got)[at_], (double)(want)[at_]);           \
    } while (0)

/* ------------------------------------------------------------------------------ rmsnorm ---- */

/* Tolerance 1e-5 relative (plus 1e-6 absolute): the GPU sums squares in float with a tree over
 * 128 partial sums (relative error ~ 1e-7 * log2(d)), the reference in double; 1/sqrt and the
 * two products add a few ulps. */
/* The q8 variants (y in 8-bit form too, for the integer-dot GEMVs): the same y (and x) as
 * vkm_op_rmsnorm / _add, bit for bit, and q = y quantized (q8x_check.h); in place (y = x: the q_a
 * norm) as well. x, w, res: the inputs of test_rmsnorm's case. */
static void test_rmsnorm_q8(const float *x, const float *w, const float *res, uint32_t n,
                            uint32_t d) {
    const size_t nd = (size_t)n * d, qb = (size_t)n * (d / 32) * VKM_REF_Q8X_BLOCK;
    float *y1 = xmalloc(nd * 4), *y2 = xmalloc(nd * 4), *x2 = xmalloc(nd * 4);
    uint8_t *q = xmalloc(qb);
    vkm_gpu_buf *bx = buf_new(x, nd * 4), *bx1 = buf_new(x, nd * 4), *bw = buf_new(w, d * 4),
                *br = buf_new(res, nd * 4), *by1 = buf_new(NULL, nd * 4),
                *by2 = buf_new(NULL, nd * 4), *bq = buf_new(NULL, qb);
    for (int add = 0; add < 2; add++) {
        CHECK_OK(begin());
        if (add) {
            CHECK_OK(vkm_op_rmsnorm_add(gpu, A(bx1), A(br), A(bw), A(by1), n, d, 1e-6f));
            CHECK_OK(vkm_op_rmsnorm_add_q8(gpu, A(bx), A(br), A(bw), A(by2), A(bq), n, d, 1e-6f));
        } else {
            CHECK_OK(vkm_op_rmsnorm(gpu, A(bx1), A(bw), A(by1), n, d, d, d, 1e-6f));
            CHECK_OK(vkm_op_rmsnorm_q8(gpu, A(bx), A(bw), A(by2), A(bq), n, d, d, d, 1e-6f));
        }
        CHECK_OK(submit());
        buf_get(by1, y1, nd * 4);
        buf_get(by2, y2, nd * 4);
        CHECK_CLOSE(y2, y1, nd, 0.0, 0.0, "rmsnorm%s_q8 n=%u d=%u: y (exact)", add ? "_add" : "", n,
                    d);
        buf_get(bx, x2, nd * 4);
        buf_get(bx1, y1, nd * 4);
        CHECK_CLOSE(x2, y1, nd, 0.0, 0.0, "rmsnorm%s_q8 n=%u d=%u: x (exact)", add ? "_add" : "", n,
                    d);
        buf_get(bq, q, qb);
        check_q8x(add ? "rmsnorm_add_q8" : "rmsnorm_q8", q, y2, n, d);
    }
    /* in place: y = x (x now holds the sum of the add case) */
    CHECK_OK(begin());
    CHECK_OK(vkm_op_rmsnorm(gpu, A(bx1), A(bw), A(bx1), n, d, d, d, 1e-6f));
    CHECK_OK(vkm_op_rmsnorm_q8(gpu, A(bx), A(bw), A(bx), A(bq), n, d, d, d, 1e-6f));
    CHECK_OK(submit());
    buf_get(bx1, y1, nd * 4);
    buf_get(bx, y2, nd * 4);
    CHECK_CLOSE(y2, y1, nd, 0.0, 0.0, "rmsnorm_q8 in place n=%u d=%u (exact)", n, d);
    buf_get(bq, q, qb);
    check_q8x("rmsnorm_q8 in place", q, y2, n, d);
    /* bad arguments record nothing: no q, q too small, d not a multiple of 32 */
    CHECK_ERR(vkm_op_rmsnorm_q8(gpu, A(bx), A(bw), A(by2), (vkm_gpu_arg){0}, n, d, d, d, 1e-6f));
    CHECK_ERR(vkm_op_rmsnorm_q8(gpu, A(bx), A(bw), A(by2), ((vkm_gpu_arg){bq, 0, qb - 4}), n, d, d,
                                d, 1e-6f));
    CHECK_ERR(vkm_op_rmsnorm_add_q8(gpu, A(bx), A(br), A(bw), A(by2), A(bq), n, d - 16, 1e-6f));
    vkm_gpu_buf *all[] = {bx, bx1, bw, br, by1, by2, bq};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) vkm_gpu_buf_destroy(gpu, all[i]);
    free(y1), free(y2), free(x2), free(q);
}

static void test_rmsnorm(void) {
    const uint32_t ns[] = {1, 3, 33}, ds[] = {64, 256, 7168};
    for (int a = 0; a < 3; a++)
        for (int b = 0; b < 3; b++) {
            uint32_t n = ns[a], d = ds[b];
            size_t nd = (size_t)n * d;
            float *x = xmalloc(nd * 4), *w = xmalloc(d * 4), *y = xmalloc(nd * 4),
                  *ref = xmalloc(nd * 4), *res = xmalloc(nd * 4), *sum = xmalloc(nd * 4);
            fill(x, nd, -2.0f, 2.0f);
            fill(w, d, -1.5f, 1.5f);
            fill(res, nd, -1.0f, 1.0f);
            for (uint32_t r = 0; r < n; r++) vkm_ref_rmsnorm(ref + r * d, x + r * d, w, d, 1e-6f);
            vkm_gpu_buf *bx = buf_new(x, nd * 4), *bw = buf_new(w, d * 4),
                        *by = buf_new(NULL, nd * 4), *br = buf_new(res, nd * 4);
            CHECK_OK(begin());
            CHECK_OK(vkm_op_rmsnorm(gpu, A(bx), A(bw), A(by), n, d, d, d, 1e-6f));
            CHECK_OK(submit());
            buf_get(by, y, nd * 4);
            CHECK_CLOSE(y, ref, nd, 1e-6, 1e-5, "rmsnorm n=%u d=%u", n, d);

            /* fused residual: x += res; y = norm(x) */
            for (size_t i = 0; i < nd; i++) sum[i] = x[i] + res[i];
            for (uint32_t r = 0; r < n; r++) vkm_ref_rmsnorm(ref + r * d, sum + r * d, w, d, 1e-6f);
            CHECK_OK(begin());
            CHECK_OK(vkm_op_rmsnorm_add(gpu, A(bx), A(br), A(bw), A(by), n, d, 1e-6f));
            CHECK_OK(submit());
            buf_get(by, y, nd * 4);
            CHECK_CLOSE(y, ref, nd, 1e-6, 1e-5, "rmsnorm_add n=%u d=%u", n, d);
            buf_get(bx, y, nd * 4);
            CHECK_CLOSE(y, sum, nd, 0.0, 0.0, "rmsnorm_add residual n=%u d=%u (exact)", n, d);
            test_rmsnorm_q8(x, w, res, n, d);
            vkm_gpu_buf_destroy(gpu, bx);
            vkm_gpu_buf_destroy(gpu, bw);
            vkm_gpu_buf_destroy(gpu, by);
            vkm_gpu_buf_destroy(gpu, br);
            free(x), free(w), free(y), free(ref), free(res), free(sum);
        }

    /* strided, in place: normalise c = t[:, 0:32] inside rows of 40 (the kv_a output layout);
     * the k_pe tail of each row must stay untouched. */
    const uint32_t n = 33, d = 32, st = 40;
    float *t = xmalloc(n * st * 4), *w = xmalloc(d * 4), *got = xmalloc(n * st * 4),
          *ref = xmalloc(n * st * 4);
    fill(t, n * st, -1.0f, 1.0f);
    fill(w, d, 0.5f, 1.5f);
    memcpy(ref, t, n * st * 4);
    for (uint32_t r = 0; r < n; r++) vkm_ref_rmsnorm(ref + r * st, t + r * st, w, d, 1e-6f);
    vkm_gpu_buf *bt = buf_new(t, n * st * 4), *bw = buf_new(w, d * 4);
    CHECK_OK(begin());
    CHECK_OK(vkm_op_rmsnorm(gpu, A(bt), A(bw), A(bt), n, d, st, st, 1e-6f));
    CHECK_OK(submit());
    buf_get(bt, got, n * st * 4);
    CHECK_CLOSE(got, ref, n * st, 1e-6, 1e-5, "rmsnorm strided in place");
    /* bad arguments record nothing */
    CHECK_ERR(vkm_op_rmsnorm(gpu, A(bt), A(bw), A(bt), n + 1, d, st, st, 1e-6f)); /* x too small */
    CHECK_ERR(vkm_op_rmsnorm(gpu, A(bt), A(bw), A(bt), n, d, d - 1, st, 1e-6f));  /* stride < d */
    vkm_gpu_buf_destroy(gpu, bt);
    vkm_gpu_buf_destroy(gpu, bw);
    free(t), free(w), free(got), free(ref);

    /* more rows than one dispatch dimension holds (65535): the kernel's grid-stride loop */
    {
        const uint32_t rows = 70000, dd = 16;
        size_t nn = (size_t)rows * dd;
        float *xs = xmalloc(nn * 4), *ws = xmalloc(dd * 4), *ys = xmalloc(nn * 4),
              *rs = xmalloc(nn * 4);
        fill(xs, nn, -1.0f, 1.0f);
        fill(ws, dd, -1.0f, 1.0f);
        for (uint32_t r = 0; r < rows; r++)
            vkm_ref_rmsnorm(rs + r * dd, xs + r * dd, ws, dd, 1e-5f);
        vkm_gpu_buf *bx = buf_new(xs, nn * 4), *bws = buf_new(ws, dd * 4),
                    *by = buf_new(NULL, nn * 4);
        CHECK_OK(begin());
        CHECK_OK(vkm_op_rmsnorm(gpu, A(bx), A(bws), A(by), rows, dd, dd, dd, 1e-5f));
        CHECK_OK(submit());
        buf_get(by, ys, nn * 4);
        CHECK_CLOSE(ys, rs, nn, 1e-6, 1e-5, "rmsnorm %u rows", rows);
        vkm_gpu_buf_destroy(gpu, bx);
        vkm_gpu_buf_destroy(gpu, bws);
        vkm_gpu_buf_destroy(gpu, by);
        free(xs), free(ws), free(ys), free(rs);
    }
}

/* --------------------------------------------------------------------------------- rope ---- */

/* Runs RoPE on q ([n][H][dqk], last R dims of each head) and k_pe ([n][ckv+R] at offset ckv) and
 * compares with vkm_ref_rope_cache/apply. Tolerance 2e-5 absolute (values |x| <= 1, mscale <=
 * 1.37): the angles are computed with the same float operations as the reference (`precise`),
 * except the YaRN ramp division (GPU division is within 2.5 ulp, an angle error below 1e-7·θ), then
 * reduced to [-π, π] (error ~1e-7 rad) where the GPU's sin/cos are accurate. */
static void rope_case(const char *what, uint32_t R, float base, float freq_scale, float ext,
                      float attn_factor, uint32_t n_ctx_orig, uint32_t max_pos) {
    const uint32_t n = 33, H = 3, dn = 16, dqk = dn + R, ckv = 32;
    vkm_rope_params rp;
    CHECK_OK(
        vkm_op_rope_params(&rp, R, base, freq_scale, ext, attn_factor, n_ctx_orig, 32.0f, 1.0f));
    vkm_ref_rope ref_p = {(int)R, base, freq_scale, ext, attn_factor, rp.corr_low, rp.corr_high};

    int32_t pos[33];
    for (uint32_t i = 0; i < n; i++) pos[i] = (int32_t)(rng_u32() % (max_pos + 1));
    pos[0] = 0;
    pos[1] = (int32_t)max_pos;
    pos[2] = 299;
    size_t nq = (size_t)n * H * dqk, nk = (size_t)n * (ckv + R);
    float *q = xmalloc(nq * 4), *k = xmalloc(nk * 4), *qr = xmalloc(nq * 4), *kr = xmalloc(nk * 4),
          *got = xmalloc((nq > nk ? nq : nk) * 4), *cs = xmalloc(R * 4);
    fill(q, nq, -1.0f, 1.0f);
    fill(k, nk, -1.0f, 1.0f);
    memcpy(qr, q, nq * 4);
    memcpy(kr, k, nk * 4);
    for (uint32_t t = 0; t < n; t++) {
        vkm_ref_rope_cache(cs, pos[t], &ref_p);
        for (uint32_t h = 0; h < H; h++) vkm_ref_rope_apply(qr + (t * H + h) * dqk + dn, cs, R);
        vkm_ref_rope_apply(kr + t * (ckv + R) + ckv, cs, R);
    }
    vkm_gpu_buf *bq = buf_new(q, nq * 4), *bk = buf_new(k, nk * 4), *bp = buf_new(pos, sizeof pos);
    CHECK_OK(begin());
    CHECK_OK(vkm_op_rope(gpu, &rp, A(bq), A(bp), n, H, dn, H * dqk, dqk));
    CHECK_OK(vkm_op_rope(gpu, &rp, A(bk), A(bp), n, 1, ckv, ckv + R, 0));
    CHECK_OK(submit());
    buf_get(bq, got, nq * 4);
    CHECK_CLOSE(got, qr, nq, 2e-5, 0.0, "rope q %s", what);
    buf_get(bk, got, nk * 4);
    CHECK_CLOSE(got, kr, nk, 2e-5, 0.0, "rope k_pe %s", what);
    CHECK_ERR(vkm_op_rope(gpu, &rp, A(bk), A(bp), n + 1, 1, ckv, ckv + R, 0));
    vkm_gpu_buf_destroy(gpu, bq);
    vkm_gpu_buf_destroy(gpu, bk);
    vkm_gpu_buf_destroy(gpu, bp);
    free(q), free(k), free(qr), free(kr), free(got), free(cs);
}

static void test_rope(void) {
    /* the spec's V2/V3 numbers: R 64, base 1e4, original context 4096 -> corr dims 10, 23 */
    vkm_rope_params rp;
    CHECK_OK(vkm_op_rope_params(&rp, 64, 10000.0f, 1.0f / 40.0f, 1.0f, 1.0f, 4096, 32.0f, 1.0f));
    CHECK(rp.corr_low == 10.0f && rp.corr_high == 23.0f);
    CHECK_NEAR(rp.mscale, 1.368888, 1e-5);
    CHECK_ERR(vkm_op_rope_params(&rp, 7, 10000.0f, 1.0f, 0.0f, 1.0f, 4096, 32.0f, 1.0f));
    /* fixture tiny-v3: R 8, YaRN factor 4, original context 256 */
    rope_case("tiny-v3 yarn", 8, 10000.0f, 0.25f, 1.0f, 1.0f, 256, 5000);
    /* V3: R 64, YaRN factor 40, original context 4096 */
    rope_case("v3 yarn", 64, 10000.0f, 1.0f / 40.0f, 1.0f, 1.0f, 4096, 5000);
    /* no scaling at all */
    rope_case("plain", 64, 10000.0f, 1.0f, 0.0f, 1.0f, 4096, 5000);
}

/* -------------------------------------------------------------------------- mla_kv_rope ---- */

/* One case of the fused MLA kv path against (a) the CPU references (rmsnorm then rope, converted
 * like the cache: the tolerances of the rmsnorm and rope tests, plus half an f16 ulp) and (b) the
 * four separate kernels it replaces (rmsnorm, rope k_pe, rope q, mla_kv_store), which must give
 * the same values (1e-6 absolute / one f16 ulp: the same float operations, only a device free to
 * contract them differently in two shaders could differ). Also: kva is left unchanged, the cache
 * rows outside row0..row0+n stay zero, bad shapes record nothing. */
static void kv_rope_case(const char *what, bool f16, uint32_t n, uint32_t H, uint32_t dn,
                         uint32_t ckv, uint32_t R, uint32_t row0, float freq_scale, float ext) {
    const uint32_t dqk = dn + R, D = ckv + R, st = D + 4, rows = row0 + n + 3;
    vkm_rope_params rp;
    CHECK_OK(vkm_op_rope_params(&rp, R, 10000.0f, freq_scale, ext, 1.0f, 4096, 32.0f, 1.0f));
    vkm_ref_rope ref_p = {(int)R, 10000.0f, freq_scale, ext, 1.0f, rp.corr_low, rp.corr_high};
    const size_t nq = (size_t)n * H * dqk, nk = (size_t)n * st, ncell = (size_t)rows * D;
    const size_t es = f16 ? 2 : 4;
    float *q = xmalloc(nq * 4), *k = xmalloc(nk * 4), *w = xmalloc(ckv * 4), *qr = xmalloc(nq * 4),
          *cr = xmalloc(ncell * 4), *cs = xmalloc(R * 4), *got = xmalloc((nq + nk + ncell) * 4),
          *want = xmalloc((nq + nk + ncell) * 4);
    int32_t *pos = xmalloc(n * 4);
    fill(q, nq, -1.0f, 1.0f);
    fill(k, nk, -2.0f, 2.0f);
    fill(w, ckv, 0.5f, 1.5f);
    for (uint32_t t = 0; t < n; t++) pos[t] = (int32_t)(row0 + t);
    memcpy(qr, q, nq * 4);
    memset(cr, 0, ncell * 4);
    for (uint32_t t = 0; t < n; t++) {
        float *c = cr + (size_t)(row0 + t) * D;
        vkm_ref_rmsnorm(c, k + (size_t)t * st, w, (int)ckv, 1e-6f);
        memcpy(c + ckv, k + (size_t)t * st + ckv, R * 4);
        vkm_ref_rope_cache(cs, pos[t], &ref_p);
        vkm_ref_rope_apply(c + ckv, cs, (int)R);
        for (uint32_t h = 0; h < H; h++)
            vkm_ref_rope_apply(qr + (t * H + h) * dqk + dn, cs, (int)R);
    }
    vkm_gpu_buf *bq = buf_new(q, nq * 4), *bk = buf_new(k, nk * 4), *bw = buf_new(w, ckv * 4),
                *bp = buf_new(pos, n * 4), *bc = buf_new(NULL, ncell * es),
                *bq2 = buf_new(q, nq * 4), *bk2 = buf_new(k, nk * 4),
                *bc2 = buf_new(NULL, ncell * es);
    const vkm_mla_kv_shape sh = {n, ckv, st, row0, H, dn, H * dqk, dqk, 1e-6f, 0, {0}};
    CHECK_OK(begin());
    if (n >= 2) { /* two sequences' calls (tok0, as a multi-sequence batch records them) */
        vkm_mla_kv_shape s1 = sh, s2 = sh;
        s1.n_tok = n / 2;
        s2.n_tok = n - n / 2;
        s2.tok0 = n / 2;
        s2.row0 = row0 + n / 2;
        CHECK_OK(vkm_op_mla_kv_rope(gpu, &rp, f16, &s1, A(bk), A(bw), A(bp), A(bq), A(bc)));
        CHECK_OK(vkm_op_mla_kv_rope(gpu, &rp, f16, &s2, A(bk), A(bw), A(bp), A(bq), A(bc)));
    } else {
        CHECK_OK(vkm_op_mla_kv_rope(gpu, &rp, f16, &sh, A(bk), A(bw), A(bp), A(bq), A(bc)));
    }
    /* the separate kernels, on copies */
    CHECK_OK(vkm_op_rmsnorm(gpu, A(bk2), A(bw), A(bk2), n, ckv, st, st, 1e-6f));
    CHECK_OK(vkm_op_rope(gpu, &rp, A(bk2), A(bp), n, 1, ckv, st, 0));
    CHECK_OK(vkm_op_rope(gpu, &rp, A(bq2), A(bp), n, H, dn, H * dqk, dqk));
    CHECK_OK(vkm_op_mla_kv_store(gpu, f16, A(bk2), A(bc2), n, D, st, row0));
    CHECK_OK(submit());

    /* the cache as floats (f16 decoded), from the fused kernel and from the separate ones */
    unsigned char *raw = xmalloc(ncell * es);
    float *c1 = got + nq + nk, *c2 = want + nq + nk;
    for (int which = 0; which < 2; which++) {
        buf_get(which ? bc2 : bc, raw, ncell * es);
        float *c = which ? c2 : c1;
        for (size_t i = 0; i < ncell; i++) {
            if (f16) {
                uint16_t h;
                memcpy(&h, raw + i * 2, 2);
                c[i] = vkm_fp16_to_f32(h);
            } else {
                memcpy(&c[i], raw + i * 4, 4);
            }
        }
    }
    buf_get(bq, got, nq * 4);
    CHECK_CLOSE(got, qr, nq, 2e-5, 0.0, "mla_kv_rope %s: q against the reference", what);
    buf_get(bq2, want, nq * 4);
    CHECK_CLOSE(got, want, nq, 1e-6, 0.0, "mla_kv_rope %s: q against rope", what);
    buf_get(bk, got + nq, nk * 4);
    CHECK_CLOSE(got + nq, k, nk, 0.0, 0.0, "mla_kv_rope %s: kva unchanged", what);
    /* f16: plus half an ulp (2^-11 relative) for the rounding */
    CHECK_CLOSE(c1, cr, ncell, 2e-5, f16 ? 1e-3 : 1e-5,
                "mla_kv_rope %s: cache against the references", what);
    CHECK_CLOSE(c1, c2, ncell, f16 ? 0.0 : 1e-6, f16 ? 1e-3 : 1e-6,
                "mla_kv_rope %s: cache against the separate kernels", what);

    /* bad shapes: cache one row short, odd ckv with f16, kva stride too small, pos too short */
    vkm_mla_kv_shape bad = sh;
    bad.row0 = rows - n + 1;
    CHECK_ERR(vkm_op_mla_kv_rope(gpu, &rp, f16, &bad, A(bk), A(bw), A(bp), A(bq), A(bc)));
    bad = sh;
    bad.kva_stride = D - 1;
    CHECK_ERR(vkm_op_mla_kv_rope(gpu, &rp, f16, &bad, A(bk), A(bw), A(bp), A(bq), A(bc)));
    bad = sh;
    bad.n_tok = n + 1;
    CHECK_ERR(vkm_op_mla_kv_rope(gpu, &rp, f16, &bad, A(bk), A(bw), A(bp), A(bq), A(bc)));
    bad = sh; /* the rows of a later sequence past the arrays */
    bad.tok0 = 1;
    CHECK_ERR(vkm_op_mla_kv_rope(gpu, &rp, f16, &bad, A(bk), A(bw), A(bp), A(bq), A(bc)));
    if (f16) {
        bad = sh;
        bad.ckv = ckv - 1;
        CHECK_ERR(vkm_op_mla_kv_rope(gpu, &rp, f16, &bad, A(bk), A(bw), A(bp), A(bq), A(bc)));
    }
    /* the pooled form (a KV pool's batch: every token's row from the table kvt, row0 unused):
     * token t's row base + pos + 1 - 1 = row0 + t gives the same cache bit for bit; on CPU
     * devices it is refused, as is a table too short */
    {
        int32_t *kvt = xmalloc((size_t)n * 8);
        for (uint32_t t = 0; t < n; t++) {
            kvt[2 * t] = (int32_t)(row0 + t) - pos[t];
            kvt[2 * t + 1] = pos[t] + 1;
        }
        vkm_gpu_buf *bt = buf_new(kvt, (size_t)n * 8), *bq3 = buf_new(q, nq * 4),
                    *bc3 = buf_new(NULL, ncell * es);
        vkm_mla_kv_shape sp = sh;
        sp.row0 = 0;
        sp.kvt = A(bt);
        if (vkm_gpu_plan(gpu)->cpu_family) {
            CHECK(vkm_op_mla_kv_rope(gpu, &rp, f16, &sp, A(bk), A(bw), A(bp), A(bq3), A(bc3)) ==
                  VKM_EUNSUPPORTED);
        } else {
            CHECK_OK(begin());
            CHECK_OK(vkm_op_mla_kv_rope(gpu, &rp, f16, &sp, A(bk), A(bw), A(bp), A(bq3), A(bc3)));
            CHECK_OK(submit());
            unsigned char *raw3 = xmalloc(ncell * es), *raw1 = xmalloc(ncell * es);
            buf_get(bc3, raw3, ncell * es);
            buf_get(bc, raw1, ncell * es);
            CHECK_MSG(!memcmp(raw1, raw3, ncell * es), "mla_kv_rope %s: pooled cache", what);
            buf_get(bq3, got, nq * 4);
            buf_get(bq, want, nq * 4);
            CHECK_CLOSE(got, want, nq, 0.0, 0.0, "mla_kv_rope %s: pooled q", what);
            sp.kvt.size = (size_t)n * 8 - 4;
            CHECK_ERR(vkm_op_mla_kv_rope(gpu, &rp, f16, &sp, A(bk), A(bw), A(bp), A(bq3), A(bc3)));
            free(raw3), free(raw1);
        }
        vkm_gpu_buf_destroy(gpu, bt);
        vkm_gpu_buf_destroy(gpu, bq3);
        vkm_gpu_buf_destroy(gpu, bc3);
        free(kvt);
    }
    vkm_gpu_buf *all[] = {bq, bk, bw, bp, bc, bq2, bk2, bc2};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) vkm_gpu_buf_destroy(gpu, all[i]);
    free(q), free(k), free(w), free(qr), free(cr), free(cs), free(got), free(want), free(pos);
    free(raw);
}

static void test_mla_kv_rope(void) {
    for (int f16 = 0; f16 < 2; f16++) {
        /* decode with the bench-small / V3 head shapes, YaRN (x4 like the bench preset) */
        kv_rope_case("decode yarn", f16, 1, 8, 128, 256, 64, 700, 0.25f, 1.0f);
        /* a batch: tiny-v3's R 8, 3 heads, more tokens than the subgroup, no YaRN */
        kv_rope_case("batch plain", f16, 37, 3, 16, 32, 8, 5, 1.0f, 0.0f);
        /* V3's 512-wide latent and YaRN x40, 2 tokens, V2-Lite's 16 heads */
        kv_rope_case("ckv 512", f16, 2, 16, 128, 512, 64, 3000, 1.0f / 40.0f, 1.0f);
    }
}

/* ----------------------------------------------------------------------------- kv store ---- */

static void test_kv_store(void) {
    /* MLA: 33 rows of width 40 at position 7 of a 64-row cache; f16 must equal the CPU's
     * round-to-nearest-even conversion (at most 1 ulp off is tolerated, since Vulkan leaves the
     * rounding of packHalf2x16 to the device, and counted), f32 must be exact. */
    const uint32_t n = 33, w = 40, rows = 64, pos = 7, st = 44;
    float *src = xmalloc(n * st * 4);
    fill(src, n * st, -3.0f, 3.0f);
    for (int f16 = 0; f16 < 2; f16++) {
        size_t es = f16 ? 2 : 4, cbytes = (size_t)rows * w * es;
        vkm_gpu_buf *bs = buf_new(src, n * st * 4), *bc = buf_new(NULL, cbytes);
        CHECK_OK(begin());
        CHECK_OK(vkm_op_mla_kv_store(gpu, f16, A(bs), A(bc), n, w, st, pos));
        CHECK_OK(submit());
        unsigned char *c = xmalloc(cbytes);
        buf_get(bc, c, cbytes);
        int bad = 0, off1 = 0;
        for (uint32_t r = 0; r < rows; r++)
            for (uint32_t i = 0; i < w; i++) {
                bool in = r >= pos && r < pos + n;
                float want = in ? src[(r - pos) * st + i] : 0.0f;
                if (f16) {
                    uint16_t h;
                    memcpy(&h, c + (r * w + i) * 2, 2);
                    int diff = (int)h - (int)vkm_fp16_from_f32(want);
                    if (diff) (abs(diff) == 1 && in) ? off1++ : bad++;
                } else {
                    float v;
                    memcpy(&v, c + (r * w + i) * 4, 4);
                    bad += v != want;
                }
            }
        CHECK_MSG(bad == 0, "kv_store %s: %d wrong values", f16 ? "f16" : "f32", bad);
        if (off1) printf("note: kv_store f16: %d values 1 ulp from round-to-nearest-even\n", off1);
        /* past the end of the cache */
        CHECK_ERR(vkm_op_mla_kv_store(gpu, f16, A(bs), A(bc), n, w, st, rows - n + 1));
        vkm_gpu_buf_destroy(gpu, bs);
        vkm_gpu_buf_destroy(gpu, bc);
        free(c);
    }
    free(src);

    /* naive layout: k_pe (one row per token) broadcast to every head at offset dn of
     * [rows][H][dqk] (f32) */
    const uint32_t H = 3, dn = 6, R = 4, dqk = dn + R;
    float *kpe = xmalloc(n * R * 4), *cache = xmalloc(rows * H * dqk * 4);
    fill(kpe, n * R, -1.0f, 1.0f);
    vkm_gpu_buf *bs = buf_new(kpe, n * R * 4), *bc = buf_new(NULL, rows * H * dqk * 4);
    vkm_push_kv_store p = {.n_tok = n,
                           .n_head = H,
                           .d = R,
                           .src_tok_stride = R,
                           .src_head_stride = 0,
                           .dst_off = dn,
                           .dst_row0 = pos,
                           .dst_row_stride = H * dqk,
                           .dst_head_stride = dqk};
    CHECK_OK(begin());
    CHECK_OK(vkm_op_kv_store(gpu, false, A(bs), A(bc), &p));
    CHECK_OK(submit());
    buf_get(bc, cache, rows * H * dqk * 4);
    int bad = 0;
    for (uint32_t r = 0; r < rows; r++)
        for (uint32_t h = 0; h < H; h++)
            for (uint32_t i = 0; i < dqk; i++) {
                float want =
                    r >= pos && r < pos + n && i >= dn ? kpe[(r - pos) * R + i - dn] : 0.0f;
                bad += cache[(r * H + h) * dqk + i] != want;
            }
    CHECK_MSG(bad == 0, "kv_store broadcast: %d wrong values", bad);
    p.d = 3; /* odd widths are refused for f16 caches */
    CHECK_ERR(vkm_op_kv_store(gpu, true, A(bs), A(bc), &p));
    vkm_gpu_buf_destroy(gpu, bs);
    vkm_gpu_buf_destroy(gpu, bc);
    free(kpe), free(cache);
}

/* ---------------------------------------------------------------------------- attention ---- */

/* Reference: for query i at position q_pos0+i and head h, softmax over p <= min(pos, n_kv-1) of
 * kq_scale * Q·K_p, in double, over the cache values as stored (kc/vc already f16-rounded when
 * the cache is f16). Q = [qa (da), qb (db)]. */
static void attn_ref(float *o, const float *qa, const float *qb, const float *kc, const float *vc,
                     const vkm_push_attn *p) {
    double *s = xmalloc((p->n_kv ? p->n_kv : 1) * sizeof(double));
    for (uint32_t i = 0; i < p->n_q; i++)
        for (uint32_t h = 0; h < p->n_head; h++) {
            uint32_t nk = p->q_pos0 + i + 1 < p->n_kv ? p->q_pos0 + i + 1 : p->n_kv;
            const float *qav = qa + p->qa_off + i * p->qa_tok_stride + h * p->qa_head_stride;
            const float *qbv = qb + p->qb_off + i * p->qb_tok_stride + h * p->qb_head_stride;
            double mx = -INFINITY, sum = 0.0;
            for (uint32_t j = 0; j < nk; j++) {
                const float *k = kc + j * p->k_row_stride + h * p->k_head_stride;
                double d = 0.0;
                for (uint32_t e = 0; e < p->da; e++) d += (double)qav[e] * k[e];
                for (uint32_t e = 0; e < p->db; e++) d += (double)qbv[e] * k[p->da + e];
                s[j] = p->kq_scale * d;
                if (s[j] > mx) mx = s[j];
            }
            for (uint32_t j = 0; j < nk; j++) sum += s[j] = exp(s[j] - mx);
            float *out = o + i * p->o_tok_stride + h * p->o_head_stride;
            for (uint32_t c = 0; c < p->dv; c++) {
                double acc = 0.0;
                for (uint32_t j = 0; j < nk; j++)
                    acc += s[j] * vc[p->v_off + j * p->v_row_stride + h * p->v_head_stride + c];
                out[c] = nk ? (float)(acc / sum) : 0.0f;
            }
        }
    free(s);
}

/* Cache of `n` floats stored as f16 (bytes out) or f32; `vals` is rounded in place to what the
 * cache holds. Returns the byte array to upload. */
static void *cache_encode(float *vals, size_t n, bool f16) {
    if (!f16) {
        void *b = xmalloc(n * 4);
        memcpy(b, vals, n * 4);
        return b;
    }
    uint16_t *h = xmalloc(n * 2);
    for (size_t i = 0; i < n; i++) {
        h[i] = vkm_fp16_from_f32(vals[i]);
        vals[i] = vkm_fp16_to_f32(h[i]);
    }
    return h;
}

/* Tolerance 2e-5 absolute (+1e-4 relative): outputs are convex combinations of cache values in
 * [-1, 1]; the GPU sums the score dot products (<= 320 terms, |score| <~ 5) in float and uses the
 * online softmax rescaling in float, the reference works in double on the same cache values. */
#define ATTN_ABS 2e-5
#define ATTN_REL 1e-4

/* Whether the one-query kernel of CPU devices (mla_attn_dec.comp) takes a call like mla_case's. */
static bool dec_path(uint32_t ckv, uint32_t R, uint32_t n_q, uint32_t n_kv) {
    return vkm_gpu_plan(gpu)->attn_dec && n_q == 1 && ckv % 8 == 0 && R % 8 == 0 &&
           n_kv <= VKM_ATTN_DEC_MAX_KEYS;
}

#define CACHE_OFF 256 /* the cache starts this far into its buffer (a layer of a bigger cache) */

/* mla_attn of n_q queries against n_kv cache rows, checked against attn_ref. `scratch`: 0 none
 * (the general kernels), 1 a scores scratch of the right size (one query on CPU devices: the
 * three-pass kernel, whose scratch then holds each head's probabilities: columns summing to 1),
 * 2 one float too small (the general kernels, scratch untouched). */
static void mla_case_s(uint32_t ckv, uint32_t R, uint32_t H, uint32_t dn, bool f16, uint32_t n_q,
                       uint32_t q_pos0, uint32_t n_kv, int scratch) {
    const uint32_t dqk = dn + R, w = ckv + R, n_ctx = n_kv + 3, hs = (H + 7) / 8 * 8;
    const float kq_scale = 1.368888f * 1.368888f / sqrtf((float)dqk);
    size_t nqa = (size_t)n_q * H * ckv, nq = (size_t)n_q * H * dqk, nc = (size_t)n_ctx * w,
           no = (size_t)n_q * H * ckv, es = f16 ? 2 : 4;
    size_t ns = (size_t)n_kv * hs - (scratch == 2 ? 1 : 0);
    float *qa = xmalloc(nqa * 4), *q = xmalloc(nq * 4), *cv = xmalloc(nc * 4), *o = xmalloc(no * 4),
          *ref = xmalloc(no * 4), *sc = xmalloc(ns * 4);
    fill(qa, nqa, -1.0f, 1.0f);
    fill(q, nq, -1.0f, 1.0f);
    fill(cv, nc, -1.0f, 1.0f);
    void *cb = cache_encode(cv, nc, f16);
    unsigned char *cpad = xmalloc(CACHE_OFF + nc * es);
    memset(cpad, 0x7b, CACHE_OFF);
    memcpy(cpad + CACHE_OFF, cb, nc * es);
    for (size_t i = 0; i < ns; i++) sc[i] = -7.0f;
    vkm_gpu_buf *bqa = buf_new(qa, nqa * 4), *bq = buf_new(q, nq * 4),
                *bc = buf_new(cpad, CACHE_OFF + nc * es), *bo = buf_new(NULL, no * 4);
    vkm_gpu_buf *bst = buf_new(NULL, (size_t)n_q * H * 2 * 4); /* state between key passes */
    vkm_gpu_buf *bsc = buf_new(sc, ns * 4);
    vkm_attn_shape s = {n_q, H, q_pos0, n_kv, kq_scale, f16, A(bst), {0}, 0, {0}};
    if (scratch) s.scores = A(bsc);
    const vkm_gpu_arg cache = {bc, CACHE_OFF, 0};
    CHECK_OK(begin());
    CHECK_OK(vkm_op_mla_attn(gpu, &s, ckv, R, dqk, A(bqa), A(bq), cache, A(bo)));
    if (n_kv > VKM_ATTN_LANE_KEYS && vkm_gpu_plan(gpu)->attn_lane &&
        !(scratch == 1 && dec_path(ckv, R, n_q, n_kv))) {
        vkm_attn_shape s0 = s; /* several key passes need the state buffer */
        s0.state = (vkm_gpu_arg){0};
        CHECK_ERR(vkm_op_mla_attn(gpu, &s0, ckv, R, dqk, A(bqa), A(bq), cache, A(bo)));
    }
    CHECK_OK(submit());
    buf_get(bo, o, no * 4);
    vkm_push_attn p = {.n_q = n_q,
                       .n_head = H,
                       .q_pos0 = q_pos0,
                       .n_kv = n_kv,
                       .da = ckv,
                       .db = R,
                       .dv = ckv,
                       .qa_tok_stride = H * ckv,
                       .qa_head_stride = ckv,
                       .qb_off = dn,
                       .qb_tok_stride = H * dqk,
                       .qb_head_stride = dqk,
                       .k_row_stride = w,
                       .v_row_stride = w,
                       .o_tok_stride = H * ckv,
                       .o_head_stride = ckv,
                       .kq_scale = kq_scale};
    attn_ref(ref, qa, q, cv, cv, &p);
    CHECK_CLOSE(o, ref, no, ATTN_ABS, ATTN_REL,
                "mla_attn ckv=%u R=%u H=%u %s n_q=%u pos0=%u n_kv=%u scratch %d", ckv, R, H,
                f16 ? "f16" : "f32", n_q, q_pos0, n_kv, scratch);
    /* which kernel ran: the three-pass one leaves probabilities in the scratch */
    buf_get(bsc, sc, ns * 4);
    const bool dec = scratch == 1 && dec_path(ckv, R, n_q, n_kv);
    int bad = 0;
    for (uint32_t h = 0; h < H && dec; h++) {
        double sum = 0.0;
        for (uint32_t j = 0; j < n_kv; j++) sum += sc[(size_t)j * hs + h];
        bad += fabs(sum - 1.0) > 1e-4;
    }
    for (size_t i = 0; i < ns && !dec; i++) bad += sc[i] != -7.0f;
    CHECK_MSG(bad == 0, "mla_attn n_q=%u n_kv=%u scratch %d: %s (%d bad)", n_q, n_kv, scratch,
              dec ? "scratch columns do not sum to 1" : "scratch touched", bad);
    if (n_q >= 2) { /* the queries in two calls (q_row0: the last one alone, as a decoding
                     * sequence of a multi-sequence batch), the same results */
        vkm_attn_shape s1 = s, s2 = s;
        s1.n_q = n_q - 1;
        s2.n_q = 1;
        s2.q_pos0 = q_pos0 + n_q - 1;
        s2.q_row0 = n_q - 1;
        vkm_gpu_buf *bo2 = buf_new(NULL, no * 4);
        CHECK_OK(begin());
        CHECK_OK(vkm_op_mla_attn(gpu, &s1, ckv, R, dqk, A(bqa), A(bq), cache, A(bo2)));
        CHECK_OK(vkm_op_mla_attn(gpu, &s2, ckv, R, dqk, A(bqa), A(bq), cache, A(bo2)));
        CHECK_OK(submit());
        buf_get(bo2, o, no * 4);
        CHECK_CLOSE(o, ref, no, ATTN_ABS, ATTN_REL,
                    "mla_attn in two calls ckv=%u R=%u H=%u %s n_q=%u pos0=%u n_kv=%u scratch %d",
                    ckv, R, H, f16 ? "f16" : "f32", n_q, q_pos0, n_kv, scratch);
        vkm_gpu_buf_destroy(gpu, bo2);
    }
    { /* the pooled form (a KV pool's batch): each query's rows from the table kvt, here rows
       * 0 .. its position (q_pos0 unused), against the reference; refused where the lane
       * kernels run (CPU devices), as is a table too short */
        int32_t *kvt = xmalloc((size_t)n_q * 8);
        for (uint32_t i = 0; i < n_q; i++) {
            kvt[2 * i] = 0;
            kvt[2 * i + 1] = (int32_t)(q_pos0 + i + 1 < n_kv ? q_pos0 + i + 1 : n_kv);
        }
        vkm_gpu_buf *bt = buf_new(kvt, (size_t)n_q * 8), *bo3 = buf_new(NULL, no * 4);
        vkm_attn_shape sp = s;
        sp.q_pos0 = 0;
        sp.kvt = A(bt);
        if (vkm_gpu_plan(gpu)->attn_lane) {
            CHECK(vkm_op_mla_attn(gpu, &sp, ckv, R, dqk, A(bqa), A(bq), cache, A(bo3)) ==
                  VKM_EUNSUPPORTED);
        } else {
            CHECK_OK(begin());
            CHECK_OK(vkm_op_mla_attn(gpu, &sp, ckv, R, dqk, A(bqa), A(bq), cache, A(bo3)));
            CHECK_OK(submit());
            buf_get(bo3, o, no * 4);
            CHECK_CLOSE(o, ref, no, ATTN_ABS, ATTN_REL,
                        "mla_attn pooled ckv=%u R=%u H=%u %s n_q=%u pos0=%u n_kv=%u", ckv, R, H,
                        f16 ? "f16" : "f32", n_q, q_pos0, n_kv);
            sp.kvt.size = (size_t)n_q * 8 - 4;
            CHECK_ERR(vkm_op_mla_attn(gpu, &sp, ckv, R, dqk, A(bqa), A(bq), cache, A(bo3)));
        }
        vkm_gpu_buf_destroy(gpu, bt);
        vkm_gpu_buf_destroy(gpu, bo3);
        free(kvt);
    }
    vkm_gpu_buf_destroy(gpu, bqa);
    vkm_gpu_buf_destroy(gpu, bq);
    vkm_gpu_buf_destroy(gpu, bc);
    vkm_gpu_buf_destroy(gpu, bo);
    vkm_gpu_buf_destroy(gpu, bst);
    vkm_gpu_buf_destroy(gpu, bsc);
    free(qa), free(q), free(cv), free(o), free(ref), free(cb), free(cpad), free(sc);
}

/* mla_case_s without and with the scores scratch (one query: both kernels on CPU devices). */
static void mla_case(uint32_t ckv, uint32_t R, uint32_t H, uint32_t dn, bool f16, uint32_t n_q,
                     uint32_t q_pos0, uint32_t n_kv) {
    mla_case_s(ckv, R, H, dn, f16, n_q, q_pos0, n_kv, 0);
    mla_case_s(ckv, R, H, dn, f16, n_q, q_pos0, n_kv, 1);
}

static void naive_case(uint32_t dn, uint32_t R, uint32_t dv, uint32_t H, bool f16, uint32_t n_q,
                       uint32_t q_pos0, uint32_t n_kv) {
    const uint32_t dqk = dn + R, n_ctx = n_kv;
    const float kq_scale = 1.0f / sqrtf((float)dqk);
    size_t nq = (size_t)n_q * H * dqk, nk = (size_t)n_ctx * H * dqk, nv = (size_t)n_ctx * H * dv,
           no = (size_t)n_q * H * dv;
    float *q = xmalloc(nq * 4), *k = xmalloc(nk * 4), *v = xmalloc(nv * 4), *o = xmalloc(no * 4),
          *ref = xmalloc(no * 4);
    fill(q, nq, -1.0f, 1.0f);
    fill(k, nk, -1.0f, 1.0f);
    fill(v, nv, -1.0f, 1.0f);
    void *kb = cache_encode(k, nk, f16), *vb = cache_encode(v, nv, f16);
    size_t es = f16 ? 2 : 4;
    vkm_gpu_buf *bq = buf_new(q, nq * 4), *bk = buf_new(kb, nk * es), *bv = buf_new(vb, nv * es),
                *bo = buf_new(NULL, no * 4);
    vkm_gpu_buf *bst = buf_new(NULL, (size_t)n_q * H * 2 * 4); /* state between key passes */
    vkm_attn_shape s = {n_q, H, q_pos0, n_kv, kq_scale, f16, A(bst), {0}, 0, {0}};
    CHECK_OK(begin());
    if (n_q >= 2) { /* in two calls (q_row0), as two sequences of a batch */
        vkm_attn_shape s1 = s, s2 = s;
        s1.n_q = n_q / 2;
        s2.n_q = n_q - n_q / 2;
        s2.q_pos0 = q_pos0 + n_q / 2;
        s2.q_row0 = n_q / 2;
        CHECK_OK(vkm_op_naive_attn(gpu, &s1, dqk, dv, A(bq), A(bk), A(bv), A(bo)));
        CHECK_OK(vkm_op_naive_attn(gpu, &s2, dqk, dv, A(bq), A(bk), A(bv), A(bo)));
    } else {
        CHECK_OK(vkm_op_naive_attn(gpu, &s, dqk, dv, A(bq), A(bk), A(bv), A(bo)));
    }
    CHECK_OK(submit());
    buf_get(bo, o, no * 4);
    vkm_push_attn p = {.n_q = n_q,
                       .n_head = H,
                       .q_pos0 = q_pos0,
                       .n_kv = n_kv,
                       .da = dqk,
                       .db = 0,
                       .dv = dv,
                       .qa_tok_stride = H * dqk,
                       .qa_head_stride = dqk,
                       .k_row_stride = H * dqk,
                       .k_head_stride = dqk,
                       .v_row_stride = H * dv,
                       .v_head_stride = dv,
                       .o_tok_stride = H * dv,
                       .o_head_stride = dv,
                       .kq_scale = kq_scale};
    attn_ref(ref, q, q, k, v, &p);
    CHECK_CLOSE(o, ref, no, ATTN_ABS, ATTN_REL,
                "naive_attn dqk=%u dv=%u H=%u %s n_q=%u pos0=%u n_kv=%u", dqk, dv, H,
                f16 ? "f16" : "f32", n_q, q_pos0, n_kv);
    vkm_gpu_buf_destroy(gpu, bq);
    vkm_gpu_buf_destroy(gpu, bk);
    vkm_gpu_buf_destroy(gpu, bv);
    vkm_gpu_buf_destroy(gpu, bo);
    vkm_gpu_buf_destroy(gpu, bst);
    free(q), free(k), free(v), free(o), free(ref), free(kb), free(vb);
}

static void test_attention(void) {
    for (int f16 = 0; f16 < 2; f16++) {
        /* fixture tiny-v3 dims: Ckv 32, R 8, 4 heads, nope 16 */
        mla_case(32, 8, 4, 16, f16, 1, 0, 1);      /* kv length 1 */
        mla_case(32, 8, 4, 16, f16, 33, 0, 33);    /* prefill of 33 */
        mla_case(32, 8, 4, 16, f16, 1, 299, 300);  /* decode at position 299 */
        mla_case(32, 8, 4, 16, f16, 33, 267, 300); /* prefill of 33 after 267 cached */
        /* fixture small-v3 dims: Ckv 256, R 64, 2 heads, nope 128 */
        mla_case(256, 64, 2, 128, f16, 1, 0, 1);
        mla_case(256, 64, 2, 128, f16, 33, 0, 33);
        mla_case(256, 64, 2, 128, f16, 1, 299, 300);
        mla_case(256, 64, 2, 128, f16, 33, 267, 300);
        /* V3 dims at the kernel limit (Ckv 512 + R 64 = 576), a longer decode */
        mla_case(512, 64, 2, 128, f16, 1, 999, 1000);
        mla_case(512, 64, 1, 128, f16, 3, 997, 1000);
        /* keys in several passes on CPU devices (VKM_ATTN_LANE_KEYS = 512): 3 passes, the
         * queries' causal limits in different passes */
        mla_case(256, 64, 2, 128, f16, 600, 0, 600);
        mla_case(32, 8, 4, 16, f16, 5, 1200, 1205);
        /* one query, more heads than a block of 8 (and not a multiple of 8), a long context;
         * a scratch too small falls back to the general kernel */
        mla_case(256, 64, 12, 128, f16, 1, 40, 41);
        mla_case(32, 8, 16, 16, f16, 1, 1299, 1300);
        mla_case_s(32, 8, 4, 16, f16, 1, 70, 71, 2);
        naive_case(16, 8, 16, 4, f16, 3, 1100, 1103);
        /* naive layout */
        naive_case(16, 8, 16, 4, f16, 1, 0, 1);
        naive_case(16, 8, 16, 4, f16, 33, 0, 33);
        naive_case(128, 64, 128, 2, f16, 1, 299, 300);
        naive_case(128, 64, 128, 2, f16, 33, 267, 300);
    }
    /* kv_store then attention, f16, as the forward pass uses them */
    {
        const uint32_t ckv = 32, R = 8, H = 2, dn = 16, dqk = dn + R, w = ckv + R, n = 33;
        float *kv = xmalloc(n * w * 4), *qa = xmalloc(n * H * ckv * 4),
              *q = xmalloc(n * H * dqk * 4), *o = xmalloc(n * H * ckv * 4),
              *ref = xmalloc(n * H * ckv * 4);
        fill(kv, n * w, -1.0f, 1.0f);
        fill(qa, n * H * ckv, -1.0f, 1.0f);
        fill(q, n * H * dqk, -1.0f, 1.0f);
        vkm_gpu_buf *bkv = buf_new(kv, n * w * 4), *bc = buf_new(NULL, 64 * w * 2),
                    *bqa = buf_new(qa, n * H * ckv * 4), *bq = buf_new(q, n * H * dqk * 4),
                    *bo = buf_new(NULL, n * H * ckv * 4);
        vkm_attn_shape s = {n, H, 0, n, 0.2f, true, {0}, {0}, 0, {0}};
        CHECK_OK(begin());
        CHECK_OK(vkm_op_mla_kv_store(gpu, true, A(bkv), A(bc), n, w, w, 0));
        CHECK_OK(vkm_op_mla_attn(gpu, &s, ckv, R, dqk, A(bqa), A(bq), A(bc), A(bo)));
        CHECK_OK(submit());
        buf_get(bo, o, n * H * ckv * 4);
        void *tmp = cache_encode(kv, n * w, true);
        vkm_push_attn p = {.n_q = n,
                           .n_head = H,
                           .n_kv = n,
                           .da = ckv,
                           .db = R,
                           .dv = ckv,
                           .qa_tok_stride = H * ckv,
                           .qa_head_stride = ckv,
                           .qb_off = dn,
                           .qb_tok_stride = H * dqk,
                           .qb_head_stride = dqk,
                           .k_row_stride = w,
                           .v_row_stride = w,
                           .o_tok_stride = H * ckv,
                           .o_head_stride = ckv,
                           .kq_scale = 0.2f};
        attn_ref(ref, qa, q, kv, kv, &p);
        CHECK_CLOSE(o, ref, n * H * ckv, ATTN_ABS, ATTN_REL, "kv_store + mla_attn");
        /* limits and bad shapes */
        CHECK_ERR(vkm_op_mla_attn(gpu, &s, 520, 64, dqk, A(bqa), A(bq), A(bc), A(bo))); /* > 576 */
        s.n_kv = 65; /* more rows than the cache has */
        CHECK_ERR(vkm_op_mla_attn(gpu, &s, ckv, R, dqk, A(bqa), A(bq), A(bc), A(bo)));
        vkm_gpu_buf_destroy(gpu, bkv);
        vkm_gpu_buf_destroy(gpu, bc);
        vkm_gpu_buf_destroy(gpu, bqa);
        vkm_gpu_buf_destroy(gpu, bq);
        vkm_gpu_buf_destroy(gpu, bo);
        free(kv), free(qa), free(q), free(o), free(ref), free(tmp);
    }
}

/* ------------------------------------------------------------------------------- router ---- */

/* Ids must equal the reference's except where the two candidates' reference selection scores
 * are within 1e-6 (a float-rounding tie: the GPU's softmax sums in float, the reference in
 * double); weights within 1e-5 relative (+1e-7 absolute) for the same reason. */
static void router_case(const char *what, const vkm_router_cfg *cfg, bool bias_on, uint32_t n,
                        bool ties) {
    const uint32_t X = cfg->n_expert, K = cfg->n_used;
    float *logits = xmalloc(n * X * 4), *bias = xmalloc(X * 4), *w = xmalloc(n * K * 4),
          *wref = xmalloc(n * K * 4);
    int32_t *ids = xmalloc(n * K * 4);
    int *idref = xmalloc(n * K * sizeof(int));
    if (ties) {
        memset(logits, 0, n * X * 4);
        memset(bias, 0, X * 4);
    } else {
        fill(logits, n * X, -4.0f, 4.0f);
        fill(bias, X, -0.1f, 0.1f);
    }
    vkm_ref_router rc = {(int)X,           (int)K,    (int)cfg->n_group, (int)cfg->n_group_used,
                         (int)cfg->gating, cfg->norm, cfg->scale};
    for (uint32_t t = 0; t < n; t++)
        vkm_ref_moe_route(logits + t * X, bias_on ? bias : NULL, &rc, idref + t * K, wref + t * K);
    vkm_gpu_buf *bl = buf_new(logits, n * X * 4), *bb = buf_new(bias, X * 4),
                *bi = buf_new(NULL, n * K * 4), *bw = buf_new(NULL, n * K * 4);
    vkm_gpu_arg barg = bias_on ? A(bb) : (vkm_gpu_arg){0};
    CHECK_OK(begin());
    CHECK_OK(vkm_op_router(gpu, cfg, A(bl), barg, A(bi), A(bw), n));
    CHECK_OK(submit());
    buf_get(bi, ids, n * K * 4);
    buf_get(bw, w, n * K * 4);
    int wrong = 0, near_ties = 0;
    for (uint32_t t = 0; t < n; t++)
        for (uint32_t j = 0; j < K; j++) {
            int a = ids[t * K + j], b = idref[t * K + j];
            if (a == b) continue;
            /* selection score of the reference, recomputed without group masking */
            float sa = 0, sb = 0;
            if (a >= 0 && (uint32_t)a < X) {
                float pr[VKM_REF_MAX_EXPERT];
                memcpy(pr, logits + t * X, X * 4);
                if (cfg->gating == 2)
                    for (uint32_t e = 0; e < X; e++) pr[e] = 1.0f / (1.0f + expf(-pr[e]));
                else
                    vkm_ref_softmax(pr, (int)X, 1.0f);
                sa = pr[a] + (bias_on ? bias[a] : 0.0f);
                sb = pr[b] + (bias_on ? bias[b] : 0.0f);
            }
            if (ties || !(fabsf(sa - sb) <= 1e-6f))
                wrong++;
            else
                near_ties++;
        }
    CHECK_MSG(wrong == 0, "router %s: %d ids differ from the reference", what, wrong);
    if (near_ties) printf("note: router %s: %d ids differ on float near-ties\n", what, near_ties);
    if (!near_ties) CHECK_CLOSE(w, wref, n * K, 1e-7, 1e-5, "router weights %s", what);

    /* routing and grouping (one dispatch on CPU devices up to 64 tokens): the same ids and
     * weights as vkm_op_router (same expressions), grouped as fwd_common.h says (checked against
     * the grouping of those ids computed here) */
    const uint32_t nk = n * K, nm = 3 * X + 1;
    vkm_gpu_buf *bi2 = buf_new(NULL, nk * 4), *bw2 = buf_new(NULL, nk * 4),
                *bgr = buf_new(NULL, nk * 4), *bgm = buf_new(NULL, nm * 4),
                *bgp = buf_new(NULL, nk * 4);
    const vkm_moe_grouping g = {A(bgr), A(bgm), A(bgp)};
    CHECK_OK(begin());
    CHECK_OK(vkm_op_router_group(gpu, cfg, A(bl), barg, A(bi2), A(bw2), &g, n));
    CHECK_OK(submit());
    int32_t *ids2 = xmalloc(nk * 4), *gg = xmalloc((2 * nk + nm) * 4);
    float *w2 = xmalloc(nk * 4);
    buf_get(bi2, ids2, nk * 4);
    buf_get(bw2, w2, nk * 4);
    buf_get(bgr, gg, nk * 4);
    buf_get(bgm, gg + nk, nm * 4);
    buf_get(bgp, gg + nk + nm, nk * 4);
    CHECK_MSG(memcmp(ids2, ids, nk * 4) == 0, "router_group %s: ids differ from router", what);
    CHECK_CLOSE(w2, w, nk, 0.0, 0.0, "router_group %s: weights against router", what);
    const int32_t *rows = gg, *mats = gg + nk, *map = gg + nk + nm;
    int bad = 0;
    uint32_t k = 0, active = 0;
    for (uint32_t e = 0; e < X; e++) {
        bad += mats[2 * e] != (int32_t)k;
        uint32_t c = 0;
        for (uint32_t r = 0; r < nk; r++)
            if (ids[r] == (int32_t)e) {
                bad += rows[k] != (int32_t)(r / K) || map[r] != (int32_t)k;
                k++, c++;
            }
        bad += mats[2 * e + 1] != (int32_t)c;
        if (c) bad += mats[2 * X + 1 + active++] != (int32_t)e;
    }
    bad += mats[2 * X] != (int32_t)active;
    CHECK_MSG(bad == 0 && k == nk, "router_group %s: %d grouping values wrong", what, bad);
    vkm_moe_grouping small = g; /* mats one value short: an error before anything is recorded */
    small.mats.size = (nm - 1) * 4;
    CHECK_ERR(vkm_op_router_group(gpu, cfg, A(bl), barg, A(bi2), A(bw2), &small, n));
    vkm_gpu_buf_destroy(gpu, bi2);
    vkm_gpu_buf_destroy(gpu, bw2);
    vkm_gpu_buf_destroy(gpu, bgr);
    vkm_gpu_buf_destroy(gpu, bgm);
    vkm_gpu_buf_destroy(gpu, bgp);
    free(ids2), free(gg), free(w2);

    vkm_gpu_buf_destroy(gpu, bl);
    vkm_gpu_buf_destroy(gpu, bb);
    vkm_gpu_buf_destroy(gpu, bi);
    vkm_gpu_buf_destroy(gpu, bw);
    free(logits), free(bias), free(w), free(wref), free(ids), free(idref);
}

static void test_router(void) {
    const vkm_router_cfg fixture = {16, 4, 4, 2, 2, true, 2.5f};
    const vkm_router_cfg v2lite = {64, 6, 1, 1, 1, false, 1.0f};
    const vkm_router_cfg v3 = {256, 8, 8, 4, 2, true, 2.5f};
    const vkm_router_cfg v2 = {160, 6, 8, 3, 1, false, 16.0f};
    const vkm_router_cfg big = {512, 16, 1, 1, 1, true, 1.0f};
    const uint32_t ns[] = {1, 3, 33};
    for (int i = 0; i < 3; i++) {
        router_case("fixture", &fixture, true, ns[i], false);
        router_case("v2-lite", &v2lite, false, ns[i], false);
        router_case("v3", &v3, true, ns[i], false);
    }
    router_case("v2", &v2, false, 33, false);
    router_case("512 experts top-16", &big, false, 33, false);
    router_case("v3, 130 tokens", &v3, true, 130, false); /* CPU layout: 3 workgroups */
    /* exact ties everywhere: lowest group and expert indices first (same as the reference) */
    router_case("ties fixture", &fixture, true, 3, true);
    router_case("ties v3", &v3, true, 3, true);
    router_case("ties v2-lite", &v2lite, false, 3, true);
    /* bad configurations */
    vkm_router_cfg bad = v3;
    bad.n_used = 17;
    vkm_gpu_buf *b = buf_new(NULL, 4096);
    CHECK_ERR(vkm_op_router(gpu, &bad, A(b), (vkm_gpu_arg){0}, A(b), A(b), 1));
    bad = v3;
    bad.n_group = 7; /* 256 % 7 != 0 */
    CHECK_ERR(vkm_op_router(gpu, &bad, A(b), (vkm_gpu_arg){0}, A(b), A(b), 1));
    bad = v3;
    bad.n_group_used = 0;
    CHECK_ERR(vkm_op_router(gpu, &bad, A(b), (vkm_gpu_arg){0}, A(b), A(b), 1));
    vkm_gpu_buf_destroy(gpu, b);
}

/* --------------------------------------------------------------- element-wise, combine ---- */

static void test_elementwise(void) {
    const uint32_t ns[] = {1, 3, 33};
    for (int a = 0; a < 3; a++) {
        const uint32_t n = ns[a], F = 320;
        /* swiglu over a fused [n][2F] gate|up buffer; tolerance 2e-6 relative (+1e-7): GPU exp
         * is within a few ulps of expf */
        size_t nf = (size_t)n * F;
        float *gu = xmalloc(nf * 2 * 4), *y = xmalloc(nf * 4), *ref = xmalloc(nf * 4);
        fill(gu, nf * 2, -8.0f, 8.0f);
        for (uint32_t r = 0; r < n; r++)
            vkm_ref_swiglu(ref + r * F, gu + r * 2 * F, gu + r * 2 * F + F, F);
        vkm_gpu_buf *bgu = buf_new(gu, nf * 2 * 4), *by = buf_new(NULL, nf * 4);
        vkm_gpu_arg u = {bgu, F * 4, 0};
        CHECK_OK(begin());
        CHECK_OK(vkm_op_swiglu(gpu, A(bgu), u, A(by), n, F, 2 * F, 2 * F));
        CHECK_OK(submit());
        buf_get(by, y, nf * 4);
        CHECK_CLOSE(y, ref, nf, 1e-7, 2e-6, "swiglu n=%u", n);

        /* add and scale: IEEE add/multiply are correctly rounded in Vulkan -> exact */
        float *x2 = xmalloc(nf * 4);
        fill(x2, nf, -1.0f, 1.0f);
        for (size_t i = 0; i < nf; i++) ref[i] = y[i] + x2[i];
        vkm_gpu_buf *bx2 = buf_new(x2, nf * 4);
        CHECK_OK(begin());
        CHECK_OK(vkm_op_add(gpu, A(by), A(bx2), A(by), (uint32_t)nf));
        CHECK_OK(submit());
        float *got = xmalloc(nf * 4);
        buf_get(by, got, nf * 4);
        CHECK_CLOSE(got, ref, nf, 0.0, 0.0, "add n=%zu (exact)", nf);
        for (size_t i = 0; i < nf; i++) ref[i] = 0.3f * x2[i];
        CHECK_OK(begin());
        CHECK_OK(vkm_op_scale(gpu, A(bx2), A(bx2), (uint32_t)nf, 0.3f));
        CHECK_OK(submit());
        buf_get(bx2, got, nf * 4);
        CHECK_CLOSE(got, ref, nf, 0.0, 0.0, "scale n=%zu (exact)", nf);
        CHECK_ERR(vkm_op_add(gpu, A(by), A(bx2), A(by), (uint32_t)nf + 1));
        vkm_gpu_buf_destroy(gpu, bgu);
        vkm_gpu_buf_destroy(gpu, by);
        vkm_gpu_buf_destroy(gpu, bx2);
        free(gu), free(y), free(ref), free(x2), free(got);

        /* moe_combine: n tokens x 4 experts, rows in a shuffled (expert-grouped) order, one map
         * entry invalid; tolerance 1e-6 relative (+1e-7): same float operations, possibly fused */
        const uint32_t K = 4, D = 320, rows = n * K;
        float *eo = xmalloc(rows * D * 4), *w = xmalloc(n * K * 4), *y0 = xmalloc(n * D * 4),
              *cref = xmalloc(n * D * 4), *cgot = xmalloc(n * D * 4);
        int32_t *map = xmalloc(n * K * 4);
        fill(eo, rows * D, -1.0f, 1.0f);
        fill(w, n * K, 0.0f, 1.0f);
        fill(y0, n * D, -1.0f, 1.0f);
        for (uint32_t i = 0; i < rows; i++) map[i] = (int32_t)i;
        for (uint32_t i = rows - 1; i > 0; i--) {
            uint32_t j = rng_u32() % (i + 1);
            int32_t tmp = map[i];
            map[i] = map[j];
            map[j] = tmp;
        }
        if (n > 1) map[K + 1] = -1;
        for (int acc = 0; acc < 2; acc++) {
            for (uint32_t t = 0; t < n; t++)
                for (uint32_t c = 0; c < D; c++) {
                    float s = 0.0f;
                    for (uint32_t j = 0; j < K; j++) {
                        int32_t r = map[t * K + j];
                        if (r >= 0) s += w[t * K + j] * eo[(size_t)r * D + c];
                    }
                    cref[t * D + c] = acc ? y0[t * D + c] + s : s;
                }
            vkm_gpu_buf *be = buf_new(eo, rows * D * 4), *bm = buf_new(map, n * K * 4),
                        *bw = buf_new(w, n * K * 4), *byc = buf_new(y0, n * D * 4);
            CHECK_OK(begin());
            CHECK_OK(vkm_op_moe_combine(gpu, A(be), A(bm), A(bw), A(byc), n, K, D, rows, acc));
            CHECK_OK(submit());
            buf_get(byc, cgot, n * D * 4);
            CHECK_CLOSE(cgot, cref, n * D, 1e-6, 1e-6, "moe_combine n=%u acc=%d", n, acc);

            /* moe_combine_norm: the same sum, then x += o and a = rmsnorm(x) * nw; against the
             * references (the tolerances of moe_combine and rmsnorm) and against moe_combine +
             * rmsnorm_add on copies (same operations in the same order: 1e-6 relative) */
            float *x0 = xmalloc(n * D * 4), *nw = xmalloc(D * 4), *xr = xmalloc(n * D * 4),
                  *ar = xmalloc(n * D * 4), *g1 = xmalloc(n * D * 4), *g2 = xmalloc(n * D * 4);
            fill(x0, n * D, -2.0f, 2.0f);
            fill(nw, D, 0.5f, 1.5f);
            for (uint32_t i = 0; i < n * D; i++) xr[i] = x0[i] + cref[i];
            for (uint32_t t = 0; t < n; t++) vkm_ref_rmsnorm(ar + t * D, xr + t * D, nw, D, 1e-6f);
            vkm_gpu_buf *by0 = buf_new(y0, n * D * 4), *bx = buf_new(x0, n * D * 4),
                        *bn = buf_new(nw, D * 4), *ba = buf_new(NULL, n * D * 4),
                        *by1 = buf_new(y0, n * D * 4), *bx1 = buf_new(x0, n * D * 4),
                        *ba1 = buf_new(NULL, n * D * 4);
            const vkm_moe_combine_norm cn = {A(be), A(bm), A(bw), A(by0), A(bx), A(bn), A(ba),
                                             n,     K,     D,     rows,   acc,   1e-6f, {0}};
            CHECK_OK(begin());
            CHECK_OK(vkm_op_moe_combine_norm(gpu, &cn));
            CHECK_OK(vkm_op_moe_combine(gpu, A(be), A(bm), A(bw), A(by1), n, K, D, rows, acc));
            CHECK_OK(vkm_op_rmsnorm_add(gpu, A(bx1), A(by1), A(bn), A(ba1), n, D, 1e-6f));
            CHECK_OK(submit());
            buf_get(bx, g1, n * D * 4);
            CHECK_CLOSE(g1, xr, n * D, 1e-6, 1e-6, "moe_combine_norm x n=%u acc=%d", n, acc);
            buf_get(bx1, g2, n * D * 4);
            CHECK_CLOSE(g1, g2, n * D, 0.0, 1e-6, "moe_combine_norm x n=%u acc=%d (separate)", n,
                        acc);
            buf_get(ba, g1, n * D * 4);
            CHECK_CLOSE(g1, ar, n * D, 1e-6, 1e-5, "moe_combine_norm a n=%u acc=%d", n, acc);
            buf_get(ba1, g2, n * D * 4);
            CHECK_CLOSE(g1, g2, n * D, 1e-7, 1e-6, "moe_combine_norm a n=%u acc=%d (separate)", n,
                        acc);
            buf_get(by0, g1, n * D * 4);
            CHECK_CLOSE(g1, y0, n * D, 0.0, 0.0, "moe_combine_norm y unchanged n=%u", n);
            vkm_moe_combine_norm bad = cn;
            bad.n_tok = n + 1; /* x, a too small */
            CHECK_ERR(vkm_op_moe_combine_norm(gpu, &bad));
            /* moe_combine_norm_q8 (a in 8-bit form too): the same x and a, bit for bit, and q =
             * a quantized (q8x_check.h) */
            {
                const size_t qb = (size_t)n * (D / 32) * VKM_REF_Q8X_BLOCK;
                float *xq2 = xmalloc(n * D * 4);
                uint8_t *q = xmalloc(qb);
                vkm_gpu_buf *bxq = buf_new(x0, n * D * 4), *ba2 = buf_new(NULL, n * D * 4),
                            *bq = buf_new(NULL, qb);
                vkm_moe_combine_norm c8 = cn;
                c8.x = A(bxq);
                c8.a = A(ba2);
                c8.q = A(bq);
                CHECK_OK(begin());
                CHECK_OK(vkm_op_moe_combine_norm(gpu, &c8));
                CHECK_OK(submit());
                buf_get(bx, g1, n * D * 4);
                buf_get(bxq, xq2, n * D * 4);
                CHECK_CLOSE(xq2, g1, n * D, 0.0, 0.0, "moe_combine_norm_q8 x n=%u acc=%d", n, acc);
                buf_get(ba, g1, n * D * 4);
                buf_get(ba2, xq2, n * D * 4);
                CHECK_CLOSE(xq2, g1, n * D, 0.0, 0.0, "moe_combine_norm_q8 a n=%u acc=%d", n, acc);
                buf_get(bq, q, qb);
                check_q8x("moe_combine_norm_q8", q, xq2, n, D);
                c8.q.size = qb - 4; /* too small */
                CHECK_ERR(vkm_op_moe_combine_norm(gpu, &c8));
                vkm_gpu_buf_destroy(gpu, bxq);
                vkm_gpu_buf_destroy(gpu, ba2);
                vkm_gpu_buf_destroy(gpu, bq);
                free(xq2), free(q);
            }
            vkm_gpu_buf *more[] = {by0, bx, bn, ba, by1, bx1, ba1};
            for (size_t i = 0; i < sizeof more / sizeof *more; i++)
                vkm_gpu_buf_destroy(gpu, more[i]);
            free(x0), free(nw), free(xr), free(ar), free(g1), free(g2);
            vkm_gpu_buf_destroy(gpu, be);
            vkm_gpu_buf_destroy(gpu, bm);
            vkm_gpu_buf_destroy(gpu, bw);
            vkm_gpu_buf_destroy(gpu, byc);
        }
        free(eo), free(w), free(y0), free(cref), free(cgot), free(map);
    }
}

/* ----------------------------------------------------------------------------- get_rows ---- */

/* Rows quantized by vkm_ref_quant_row, expected values from vkm_ref_dequant_row. Tolerance
 * 1e-6 of the row's largest magnitude: both compute d·sc·q - dmin·m in float, possibly in another
 * order or fused. Id -1 and n_vocab give zero rows. */
static void test_get_rows(void) {
    static const uint32_t types[] = {VKM_F32,  VKM_F16,  VKM_BF16, VKM_Q4_0, VKM_Q4_1,
                                     VKM_Q5_0, VKM_Q5_1, VKM_Q8_0, VKM_Q2_K, VKM_Q3_K,
                                     VKM_Q4_K, VKM_Q5_K, VKM_Q6_K};
    const uint32_t n_vocab = 11, n_ids = 33;
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
        const uint32_t type = types[ti];
        const uint32_t block = vkm_qtype_get(type)->block;
        const uint32_t d = block == 1 ? 67 : 512;
        size_t rb = vkm_qtype_row_bytes(type, d), tb = rb * n_vocab;
        float *vals = xmalloc((size_t)n_vocab * d * 4), *deq = xmalloc((size_t)n_vocab * d * 4);
        unsigned char *table = xmalloc((tb + 3) & ~(size_t)3);
        fill(vals, (size_t)n_vocab * d, -1.0f, 1.0f);
        int ok = 1;
        for (uint32_t r = 0; r < n_vocab && ok; r++) {
            ok &= vkm_ref_quant_row(type, vals + r * d, table + r * rb, d) == 0;
            ok &= vkm_ref_dequant_row(type, table + r * rb, deq + r * d, d) == 0;
        }
        CHECK_MSG(ok, "get_rows %s: reference quantization failed: %s", vkm_qtype_name(type),
                  vkm_errmsg());
        if (!ok) goto next;
        int32_t ids[33];
        float *want = xmalloc((size_t)n_ids * d * 4), *got = xmalloc((size_t)n_ids * d * 4);
        for (uint32_t i = 0; i < n_ids; i++) {
            ids[i] = (int32_t)(rng_u32() % n_vocab);
            if (i == 5) ids[i] = -1;
            if (i == 6) ids[i] = (int32_t)n_vocab;
            for (uint32_t e = 0; e < d; e++)
                want[i * d + e] =
                    ids[i] >= 0 && (uint32_t)ids[i] < n_vocab ? deq[ids[i] * d + e] : 0.0f;
        }
        vkm_gpu_buf *bt = buf_new(table, (tb + 3) & ~(size_t)3), *bi = buf_new(ids, sizeof ids),
                    *by = buf_new(NULL, (size_t)n_ids * d * 4);
        CHECK_OK(begin());
        CHECK_OK(vkm_op_get_rows(gpu, type, A(bt), A(bi), A(by), n_ids, d, n_vocab));
        CHECK_OK(submit());
        buf_get(by, got, (size_t)n_ids * d * 4);
        CHECK_CLOSE(got, want, (size_t)n_ids * d, 1e-6, 0.0, "get_rows %s", vkm_qtype_name(type));
        if (block > 1) /* row length not a multiple of the block */
            CHECK_ERR(vkm_op_get_rows(gpu, type, A(bt), A(bi), A(by), n_ids, d - 1, n_vocab));
        vkm_gpu_buf_destroy(gpu, bt);
        vkm_gpu_buf_destroy(gpu, bi);
        vkm_gpu_buf_destroy(gpu, by);
        free(want), free(got);
    next:
        free(vals), free(deq), free(table);
    }
    vkm_gpu_buf *b = buf_new(NULL, 1024);
    CHECK_ERR(vkm_op_get_rows(gpu, VKM_Q8_K, A(b), A(b), A(b), 1, 256, 1)); /* not a weight type */
    vkm_gpu_buf_destroy(gpu, b);
}

/* --------------------------------------------------------------------------------- main ---- */

int main(void) {
    vkm_gpu_options opt = {.device = -1, .validation = true, .no_pipeline_cache = true};
    int rc = vkm_kernels_env(&opt.kernels); /* the ctest variants force a layout */
    if (!rc) rc = vkm_gpu_create(&opt, &gpu);
    if (rc == VKM_ENODEV) check_skip(vkm_errmsg());
    CHECK_OK(rc);
    if (rc) return check_done();
    printf("device: %s\n", vkm_gpu_info(gpu)->name);

    test_rmsnorm();
    test_rope();
    test_kv_store();
    test_mla_kv_rope();
    test_attention();
    test_router();
    test_elementwise();
    test_get_rows();

    CHECK_MSG(vkm_gpu_validation_errors(gpu) == 0, "%u validation errors",
              vkm_gpu_validation_errors(gpu));
    vkm_gpu_destroy(gpu);
    return check_done();
}
