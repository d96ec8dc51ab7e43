/* test_cpu_matmul.c - the CPU expert kernels (core/cpu_matmul.h) against the plain-C reference
 * (vkm_ref_matmul: dequantized rows dotted in double) for every type, on random blocks and
 * awkward shapes (1 row, rows not a multiple of VKM_CPU_ROW_CHUNK, k = 256 / 2048 / 7168, and
 * 96 for the 32-blocks, 1-8 tokens), each ISA path this CPU has (portable always, AVX2 and AVX-512
 * where supported; an unavailable one is reported as skipped), thread pools of 0, 1 and 3 workers;
 * the expert FFN (also through vkm_cpu_expert_of_layer, fused and split) against the reference
 * forward's expert computation; and the error paths.
 *
 * Tolerance, per output (the bound of cpu_matmul.h): for the quantized types the weights are
 * exact and only the activations are rounded to 8 bits (|err| <= d/2 = max|x_b| / 254 per
 * value, b the activation block: 32 values, 256 for the K-quants and the IQ types but IQ4_NL), so
 * |y - y_ref| <= sum_b max|x_b| / 254 * sum_b |w| + 1e-5 sum |w x| + 1e-6; for F32/F16/BF16
 * |y - y_ref| <= 1e-5 sum |w x| + 1e-6.
 * The bound is computed from the actual data for each output. Weight blocks are random bytes with
 * their f16 scale fields replaced by random finite values, so every bit pattern of the quant fields
 * occurs (Q8_0's -128 too); IQ blocks are random bytes with their scale set for a given RMS
 * (vkm_ref_random_iq_row), so every grid index, sign and sub-scale occurs. The expert FFN is also
 * checked with IQ weights (IQ2_XXS/IQ3_S, IQ4_XS/IQ4_NL, IQ1_M/IQ2_S). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "cpu_matmul.h"
#include "fp16.h"
#include "model.h"
#include "qtype.h"
#include "ref_matmul.h"
#include "ref_ops.h"
#include "ref_quant.h"

static uint64_t g_rng = 0x2545F4914F6CDD1Dull;
static uint64_t rnd(void) {
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return g_rng;
}
/* uniform in [-1, 1) */
static float frand(void) {
    return (float)((double)(rnd() >> 11) / 9007199254740992.0 * 2 - 1);
}

static void put16(uint8_t *p, uint16_t h) {
    p[0] = (uint8_t)h;
    p[1] = (uint8_t)(h >> 8);
}

static const uint32_t g_types[] = {
    VKM_F32,    VKM_F16,   VKM_BF16,    VKM_Q4_0,  VKM_Q4_1,   VKM_Q5_0,  VKM_Q5_1,  VKM_Q8_0,
    VKM_Q2_K,   VKM_Q3_K,  VKM_Q4_K,    VKM_Q5_K,  VKM_Q6_K,   VKM_IQ1_S, VKM_IQ1_M, VKM_IQ2_XXS,
    VKM_IQ2_XS, VKM_IQ2_S, VKM_IQ3_XXS, VKM_IQ3_S, VKM_IQ4_NL, VKM_IQ4_XS};
enum { N_TYPES = sizeof g_types / sizeof g_types[0] };

/* Byte offsets of the f16 fields of a block, -1 terminated. */
static const int *f16_fields(uint32_t t) {
    static const int d0[] = {0, -1}, d02[] = {0, 2, -1}, q2k[] = {80, 82, -1}, q3k[] = {108, -1},
                     q6k[] = {208, -1}, none[] = {-1};
    switch (t) {
    case VKM_Q4_0:
    case VKM_Q5_0:
    case VKM_Q8_0:
        return d0;
    case VKM_Q4_1:
    case VKM_Q5_1:
    case VKM_Q4_K:
    case VKM_Q5_K:
        return d02;
    case VKM_Q2_K:
        return q2k;
    case VKM_Q3_K:
        return q3k;
    case VKM_Q6_K:
        return q6k;
    default:
        return none;
    }
}

static bool is_iq(uint32_t t) {
    return t == VKM_IQ1_S || t == VKM_IQ1_M || t == VKM_IQ2_XXS || t == VKM_IQ2_XS ||
           t == VKM_IQ2_S || t == VKM_IQ3_XXS || t == VKM_IQ3_S || t == VKM_IQ4_NL ||
           t == VKM_IQ4_XS;
}

/* m random rows of type t, k elements each. */
static uint8_t *random_rows(uint32_t t, int64_t k, int64_t m) {
    const size_t rb = vkm_ref_row_bytes(t, k), n = rb * (size_t)m;
    uint8_t *w = xmalloc(n);
    if (t == VKM_F32 || t == VKM_F16 || t == VKM_BF16) {
        const size_t es = t == VKM_F32 ? 4 : 2;
        for (size_t i = 0; i < n / es; i++) {
            float v = frand();
            if (t == VKM_F32)
                memcpy(w + 4 * i, &v, 4);
            else
                put16(w + 2 * i, t == VKM_F16 ? vkm_fp16_from_f32(v) : vkm_bf16_from_f32(v));
        }
        return w;
    }
    if (is_iq(t)) {
        CHECK_OK(vkm_ref_random_iq_row(t, &g_rng, 0.02f, w, k * m));
        return w;
    }
    for (size_t i = 0; i < n; i++) w[i] = (uint8_t)rnd();
    const vkm_qtype_info *qi = vkm_qtype_get(t);
    for (size_t b = 0; b < n / qi->bytes; b++)
        for (const int *f = f16_fields(t); *f >= 0; f++)
            put16(w + b * qi->bytes + (size_t)*f, vkm_fp16_from_f32(0.01f + 0.05f * frand()));
    return w;
}

/* Activations: mostly in [-1, 1), with a few larger outliers per row (as real hidden states). */
static float *random_x(int64_t k, int64_t n) {
    float *x = xmalloc(sizeof(float) * (size_t)(k * n));
    for (int64_t i = 0; i < k * n; i++) x[i] = frand() * (rnd() % 64 == 0 ? 8.0f : 1.0f);
    return x;
}

/* The stated bound for output (t, r). wf: row r dequantized. */
static double bound(uint32_t type, const float *wf, const float *x, int64_t k) {
    const bool flt = type == VKM_F32 || type == VKM_F16 || type == VKM_BF16;
    double b = 1e-6, wx = 0;
    for (int64_t i = 0; i < k; i++) wx += fabs((double)wf[i] * x[i]);
    b += 1e-5 * wx;
    if (flt) return b;
    const int bl = vkm_qtype_get(type)->block; /* activation block: 256 for K-quants, else 32 */
    for (int64_t blk = 0; blk < k / bl; blk++) {
        double amax = 0, sw = 0;
        for (int j = 0; j < bl; j++) {
            amax = fmax(amax, fabs(x[blk * bl + j]));
            sw += fabs(wf[blk * bl + j]);
        }
        b += amax / 254.0 * sw;
    }
    return b;
}

/* One matmul case; returns the worst |err| / bound. */
static double check_case(vkm_cpu_pool *pool, uint32_t t, int64_t k, int64_t m, int64_t n) {
    uint8_t *w = random_rows(t, k, m);
    float *x = random_x(k, n), *y = xmalloc(sizeof(float) * (size_t)(m * n));
    float *yr = xmalloc(sizeof(float) * (size_t)(m * n)), *wf = xmalloc(sizeof(float) * k);
    double worst = 0;
    CHECK_OK(vkm_ref_matmul(t, w, k, m, x, n, yr));
    int rc = vkm_cpu_matmul(pool, t, w, k, m, x, n, y);
    CHECK_MSG(rc == 0, "%s k=%lld m=%lld n=%lld: %s", vkm_qtype_name(t), (long long)k, (long long)m,
              (long long)n, vkm_errmsg());
    const size_t rb = vkm_ref_row_bytes(t, k);
    for (int64_t r = 0; r < m && rc == 0; r++) {
        CHECK_OK(vkm_ref_dequant_row(t, w + (size_t)r * rb, wf, k));
        for (int64_t j = 0; j < n; j++) {
            const double err = fabs((double)y[j * m + r] - yr[j * m + r]);
            const double b = bound(t, wf, x + j * k, k);
            if (err / b > worst) worst = err / b;
            if (!(err <= b)) {
                CHECK_MSG(err <= b, "%s [%s] k=%lld m=%lld n=%lld row %lld tok %lld: %g vs %g",
                          vkm_qtype_name(t), vkm_cpu_isa_name(vkm_cpu_isa()), (long long)k,
                          (long long)m, (long long)n, (long long)r, (long long)j,
                          (double)y[j * m + r], (double)yr[j * m + r]);
                r = m;
                break;
            }
        }
    }
    free(w);
    free(x);
    free(y);
    free(yr);
    free(wf);
    return worst;
}

static void test_kernels(vkm_cpu_pool *pools[3]) {
    typedef struct {
        int64_t k, m, n;
    } shp;
    const int64_t C = VKM_CPU_ROW_CHUNK;
    const shp shapes[] = {
        {256, 1, 1}, {2048, 2 * C + 5, 3}, {7168, C - 3, 8}, {256, 3 * C + 1, 2}, {2048, 4, 1}};
    const int isas[] = {VKM_CPU_ISA_PORTABLE, VKM_CPU_ISA_AVX2, VKM_CPU_ISA_AVX512};
    for (int ii = 0; ii < 3; ii++) {
        if (!vkm_cpu_isa_available(isas[ii])) {
            printf("ISA %s: not on this CPU, skipped\n", vkm_cpu_isa_name(isas[ii]));
            continue;
        }
        CHECK_OK(vkm_cpu_set_isa(isas[ii]));
        CHECK(vkm_cpu_isa() == isas[ii]);
        for (int ti = 0; ti < N_TYPES; ti++) {
            double worst = 0;
            for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
                double r = check_case(pools[(ti + s) % 3], g_types[ti], shapes[s].k, shapes[s].m,
                                      shapes[s].n);
                if (r > worst) worst = r;
            }
            if (vkm_qtype_get(g_types[ti])->block <= 32) { /* an odd count of 32-blocks: tails */
                double r = check_case(pools[ti % 3], g_types[ti], 96, C + 1, 3);
                if (r > worst) worst = r;
            }
            printf("%-8s %-5s worst |err| / bound = %.3f\n", vkm_cpu_isa_name(isas[ii]),
                   vkm_qtype_name(g_types[ti]), worst);
        }
    }
    CHECK_OK(vkm_cpu_set_isa(VKM_CPU_ISA_AUTO));
}

/* The reference forward's expert computation (ref_forward.c moe(): indexed matmuls on the
 * stacked tensors, SwiGLU, down) for expert e of a layer, tokens x [n][E]. */
static void ref_expert(const vkm_layer *L, int64_t e, const float *x, int n, float *y) {
    const int64_t E = L->ffn_down_exps.ne[1], F = L->ffn_down_exps.ne[0],
                  X = L->ffn_down_exps.ne[2];
    float *g = xmalloc(sizeof(float) * (size_t)(n * F)),
          *v = xmalloc(sizeof(float) * (size_t)(n * F));
    float *gu = xmalloc(sizeof(float) * (size_t)(n * 2 * F));
    int32_t ids[8];
    for (int i = 0; i < n; i++) ids[i] = (int32_t)e;
    if (L->ffn_gate_up_exps.data) {
        const vkm_tensor *t = &L->ffn_gate_up_exps;
        CHECK_OK(vkm_ref_matmul_id(t->type, t->data, E, 2 * F, X, x, n, ids, gu));
        for (int i = 0; i < n; i++) {
            memcpy(g + i * F, gu + i * 2 * F, sizeof(float) * F);
            memcpy(v + i * F, gu + i * 2 * F + F, sizeof(float) * F);
        }
    } else {
        CHECK_OK(
            vkm_ref_matmul_id(L->ffn_gate_exps.type, L->ffn_gate_exps.data, E, F, X, x, n, ids, g));
        CHECK_OK(
            vkm_ref_matmul_id(L->ffn_up_exps.type, L->ffn_up_exps.data, E, F, X, x, n, ids, v));
    }
    for (int i = 0; i < n; i++) vkm_ref_swiglu(g + i * F, g + i * F, v + i * F, (int)F);
    CHECK_OK(
        vkm_ref_matmul_id(L->ffn_down_exps.type, L->ffn_down_exps.data, F, E, X, g, n, ids, y));
    free(g);
    free(v);
    free(gu);
}

static vkm_tensor stacked(const char *name, uint32_t t, int64_t k, int64_t m, int64_t X) {
    vkm_tensor s = {0};
    s.name = name;
    s.type = t;
    s.ne[0] = k;
    s.ne[1] = m;
    s.ne[2] = X;
    s.ne[3] = 1;
    s.row_bytes = vkm_ref_row_bytes(t, k);
    s.nbytes = s.row_bytes * (size_t)(m * X);
    /* realistic weights (|w| <= 0.05, quantized by the reference), so activations stay O(1) */
    float *f = xmalloc(sizeof(float) * (size_t)k);
    uint8_t *d = xmalloc(s.nbytes);
    if (is_iq(t) && t != VKM_IQ4_NL && t != VKM_IQ4_XS) { /* no quantizer: random valid blocks */
        CHECK_OK(vkm_ref_random_iq_row(t, &g_rng, 0.03f, d, k * m * X));
        free(f);
        s.data = d;
        return s;
    }
    for (int64_t r = 0; r < m * X; r++) {
        for (int64_t i = 0; i < k; i++) f[i] = 0.05f * frand();
        CHECK_OK(vkm_ref_quant_row(t, f, d + (size_t)r * s.row_bytes, k));
    }
    free(f);
    s.data = d;
    return s;
}

/* Expert FFN through vkm_cpu_expert_of_layer against ref_expert. Two 8-bit activation
 * roundings are chained (x, then the SwiGLU output), so the check is on the whole output:
 * rms(y - y_ref) <= 5% of rms(y_ref) and max |y - y_ref| <= 6% of max |y_ref| (measured with
 * these inputs, whose 1-in-64 outliers of 8x widen their blocks' steps, most of all in the
 * K-quants' 256-value blocks: rms 0.8% (F16 gate/up) to 3.1% (K-quants), max 1.7-3.4%; as
 * llama.cpp's Q8_K; a layout error gives ~100%). */
static void test_expert(vkm_cpu_pool *pool, bool fused, uint32_t tg, uint32_t td) {
    const int64_t E = 512, F = 256, X = 3;
    const int n = 5;
    vkm_layer L;
    memset(&L, 0, sizeof L);
    L.moe = true;
    if (fused)
        L.ffn_gate_up_exps = stacked("ffn_gate_up_exps", tg, E, 2 * F, X);
    else {
        L.ffn_gate_exps = stacked("ffn_gate_exps", tg, E, F, X);
        L.ffn_up_exps = stacked("ffn_up_exps", tg == VKM_Q4_K ? VKM_Q5_K : tg, E, F, X);
    }
    L.ffn_down_exps = stacked("ffn_down_exps", td, F, E, X);
    float *x = random_x(E, n), *y = xmalloc(sizeof(float) * E * n),
          *yr = xmalloc(sizeof(float) * E * n);
    for (int64_t e = 0; e < X; e++) {
        vkm_cpu_expert ex;
        CHECK_OK(vkm_cpu_expert_of_layer(&L, e, &ex));
        CHECK(ex.n_embd == E && ex.n_ff == F);
        CHECK_OK(vkm_cpu_expert_ffn(pool, &ex, x, n, y));
        ref_expert(&L, e, x, n, yr);
        double amax = 0, err = 0, se = 0, sr = 0;
        for (int64_t i = 0; i < E * n; i++) {
            const double d = (double)y[i] - yr[i];
            amax = fmax(amax, fabs(yr[i]));
            err = fmax(err, fabs(d));
            se += d * d;
            sr += (double)yr[i] * yr[i];
        }
        const double rel = sqrt(se / sr);
        if (e == 0)
            printf("expert %s/%s fused=%d: max err %.3g of max |y| %.3g, rms err / rms y %.4f\n",
                   vkm_qtype_name(tg), vkm_qtype_name(td), fused, err, amax, rel);
        CHECK_MSG(err <= 0.06 * amax && rel <= 0.05 && amax > 0,
                  "expert %lld %s/%s fused=%d: err %g of max %g, rms %g", (long long)e,
                  vkm_qtype_name(tg), vkm_qtype_name(td), fused, err, amax, rel);
    }
    vkm_cpu_expert bad;
    CHECK_ERR(vkm_cpu_expert_of_layer(&L, X, &bad));
    free((void *)L.ffn_gate_up_exps.data);
    free((void *)L.ffn_gate_exps.data);
    free((void *)L.ffn_up_exps.data);
    free((void *)L.ffn_down_exps.data);
    free(x);
    free(y);
    free(yr);
}

static void test_errors(void) {
    float x[256] = {0}, y[4];
    uint8_t w[1024] = {0};
    int rc = vkm_cpu_matmul(NULL, VKM_Q8_K, w, 256, 1, x, 1, y);
    CHECK(rc == VKM_EUNSUPPORTED);
    CHECK(strstr(vkm_errmsg(), "Q8_K") != NULL);
    for (size_t i = 0; i < N_TYPES; i++) CHECK(vkm_cpu_has_type(g_types[i]));
    CHECK(vkm_cpu_act_bytes(VKM_IQ4_NL, 64) == 2 * sizeof(vkm_cpu_q8) &&
          vkm_cpu_act_bytes(VKM_IQ2_XXS, 512) == 2 * sizeof(vkm_cpu_q8k) &&
          vkm_cpu_act_bytes(VKM_IQ3_S, 32) == 0);
    CHECK(vkm_cpu_matmul(NULL, VKM_Q4_K, w, 100, 1, x, 1, y) == VKM_EINVAL);
    CHECK(vkm_cpu_matmul(NULL, VKM_Q4_0, w, 0, 1, x, 1, y) == VKM_EINVAL);
    CHECK(!vkm_cpu_has_type(VKM_Q8_K) && vkm_cpu_act_bytes(VKM_Q8_K, 256) == 0);
    x[3] = NAN;
    CHECK(vkm_cpu_matmul(NULL, VKM_Q8_0, w, 32, 1, x, 1, y) == VKM_EINVAL);
    vkm_cpu_pool *p;
    CHECK(vkm_cpu_pool_create(-1, &p) == VKM_EINVAL && p == NULL);
    vkm_cpu_pool_destroy(NULL);
    if (!vkm_cpu_isa_available(VKM_CPU_ISA_AVX2))
        CHECK(vkm_cpu_set_isa(VKM_CPU_ISA_AVX2) == VKM_EUNSUPPORTED);
    if (!vkm_cpu_isa_available(VKM_CPU_ISA_AVX512))
        CHECK(vkm_cpu_set_isa(VKM_CPU_ISA_AVX512) == VKM_EUNSUPPORTED);
    CHECK(vkm_cpu_set_isa(9) == VKM_EUNSUPPORTED);
    CHECK(vkm_cpu_isa_from_name("avx512") == VKM_CPU_ISA_AVX512 &&
          vkm_cpu_isa_from_name("portable") == VKM_CPU_ISA_PORTABLE &&
          vkm_cpu_isa_from_name("sse9") == -1);
    vkm_cpu_expert ex = {512, 256, VKM_Q4_K, VKM_Q4_K, VKM_Q8_K, w, w, w};
    CHECK(vkm_cpu_expert_ffn(NULL, &ex, x, 1, y) == VKM_EUNSUPPORTED);
}

int main(void) {
    vkm_cpu_pool *pools[3] = {NULL, NULL, NULL}; /* 0 workers (NULL), 1, 3 */
    CHECK_OK(vkm_cpu_pool_create(1, &pools[1]));
    CHECK_OK(vkm_cpu_pool_create(3, &pools[2]));
    CHECK(vkm_cpu_pool_workers(pools[2]) == 3);
    test_kernels(pools);
    const int isas[] = {VKM_CPU_ISA_PORTABLE, VKM_CPU_ISA_AVX2, VKM_CPU_ISA_AVX512};
    for (int ii = 0; ii < 3; ii++) {
        if (!vkm_cpu_isa_available(isas[ii])) continue;
        CHECK_OK(vkm_cpu_set_isa(isas[ii]));
        test_expert(pools[(ii + 1) % 3], true, VKM_Q4_K, VKM_Q6_K);
        test_expert(pools[0], false, VKM_Q4_K, VKM_Q8_0);
        test_expert(pools[2], false, VKM_F16, VKM_Q5_0);
        test_expert(pools[1], true, VKM_IQ2_XXS, VKM_IQ3_S);
        test_expert(pools[2], false, VKM_IQ4_XS, VKM_IQ4_NL);
        test_expert(pools[0], true, VKM_IQ1_M, VKM_IQ2_S);
    }
    CHECK_OK(vkm_cpu_set_isa(VKM_CPU_ISA_AUTO));
    test_errors();
    vkm_cpu_pool_destroy(pools[1]);
    vkm_cpu_pool_destroy(pools[2]);
    return check_done();
}
