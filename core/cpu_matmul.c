/* cpu_matmul.c - activation quantization, the row-parallel CPU matmul and the expert FFN of
 * cpu_matmul.h; the per-type dot kernels are in cpu_dot.c (portable), cpu_dot_avx2.c and
 * cpu_dot_avx512.c.
 *
 * A matmul job hands chunks of VKM_CPU_ROW_CHUNK weight rows to the pool; each row is read
 * once and dotted with every token's activation row while it is in L1, so n tokens cost one
 * pass over the weights. The expert FFN runs gate and up as one job over 2 Fe rows, applies
 * SwiGLU, requantizes the Fe-wide hidden row for the down matrix's type and runs down. */
#include "cpu_matmul.h"

#include <float.h>
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_dot.h"
#include "err.h"
#include "model.h"
#include "qtype.h"
#include "ref_ops.h"

/* 0 = not chosen yet (resolved to the best on first use) */
static _Atomic int g_isa;

bool vkm_cpu_isa_available(int isa) {
    switch (isa) {
    case VKM_CPU_ISA_AUTO:
    case VKM_CPU_ISA_PORTABLE:
        return true;
    case VKM_CPU_ISA_AVX2:
        return vkm_cpu_avx2_usable() != 0;
    case VKM_CPU_ISA_AVX512:
        return vkm_cpu_avx512_usable() != 0;
    default:
        return false;
    }
}

static int best_isa(void) {
    return vkm_cpu_avx512_usable() ? VKM_CPU_ISA_AVX512
           : vkm_cpu_avx2_usable() ? VKM_CPU_ISA_AVX2
                                   : VKM_CPU_ISA_PORTABLE;
}

int vkm_cpu_set_isa(int isa) {
    if (!vkm_cpu_isa_available(isa))
        return vkm_error(VKM_EUNSUPPORTED, "CPU kernels: %s is not available on this CPU/build",
                         vkm_cpu_isa_name(isa));
    if (isa == VKM_CPU_ISA_AUTO) isa = best_isa();
    atomic_store(&g_isa, isa);
    return 0;
}

int vkm_cpu_isa(void) {
    int isa = atomic_load(&g_isa);
    if (!isa) {
        isa = best_isa();
        atomic_store(&g_isa, isa);
    }
    return isa;
}

const char *vkm_cpu_isa_name(int isa) {
    switch (isa) {
    case VKM_CPU_ISA_AUTO:
        return "auto";
    case VKM_CPU_ISA_PORTABLE:
        return "portable";
    case VKM_CPU_ISA_AVX2:
        return "avx2";
    case VKM_CPU_ISA_AVX512:
        return "avx512";
    default:
        return "unknown";
    }
}

int vkm_cpu_isa_from_name(const char *name) {
    for (int isa = VKM_CPU_ISA_AUTO; isa <= VKM_CPU_ISA_AVX512; isa++)
        if (name && !strcmp(name, vkm_cpu_isa_name(isa))) return isa;
    return -1;
}

/* The kernel for type on the selected path: a type the path has no kernel for takes the next
 * path down (AVX-512 -> AVX2 -> portable). */
static vkm_cpu_dot_fn dot_for(uint32_t type) {
    const int isa = vkm_cpu_isa();
    vkm_cpu_dot_fn f = isa == VKM_CPU_ISA_AVX512 ? vkm_cpu_dot_avx512(type) : NULL;
    if (!f && isa >= VKM_CPU_ISA_AVX2) f = vkm_cpu_dot_avx2(type);
    return f ? f : vkm_cpu_dot_portable(type);
}

static bool is_float(uint32_t t) {
    return t == VKM_F32 || t == VKM_F16 || t == VKM_BF16;
}

/* Whether t takes vkm_cpu_q8k activations: the K-quants and the IQ types of 256-element blocks
 * (every quantized type with a kernel whose block is 256). */
static bool is_k(uint32_t t) {
    const vkm_qtype_info *qi = vkm_qtype_get(t);
    return qi && qi->block == 256 && vkm_cpu_dot_portable(t) != NULL;
}

bool vkm_cpu_has_type(uint32_t wtype) {
    return vkm_cpu_dot_portable(wtype) != NULL;
}

size_t vkm_cpu_act_bytes(uint32_t wtype, int64_t k) {
    if (!vkm_cpu_has_type(wtype) || k <= 0 || vkm_qtype_row_bytes(wtype, (uint64_t)k) == 0)
        return 0;
    if (is_float(wtype)) return (size_t)k * sizeof(float);
    if (is_k(wtype)) return (size_t)(k / 256) * sizeof(vkm_cpu_q8k);
    if (k % 32) return 0;
    return (size_t)(k / 32) * sizeof(vkm_cpu_q8);
}

/* Checks type and k for a matmul; the message names the problem. */
static int check_type(uint32_t wtype, int64_t k) {
    if (!vkm_cpu_has_type(wtype))
        return vkm_error(VKM_EUNSUPPORTED, "CPU matmul: no CPU kernel for weight type %s (%u)",
                         vkm_qtype_name(wtype), wtype);
    if (vkm_cpu_act_bytes(wtype, k) == 0)
        return vkm_error(VKM_EINVAL,
                         "CPU matmul: k = %lld is not a positive multiple of %s's "
                         "block%s",
                         (long long)k, vkm_qtype_name(wtype), is_float(wtype) ? "" : " and of 32");
    return 0;
}

/* x[0..n) -> q[n] * d with d = max|x| / 127, s[j] = sum of q[16j .. 16j+15]; VKM_EINVAL for a
 * non-finite value. */
static int quant_block(const float *x, int n, float *d, int16_t *s, int8_t *q) {
    float amax = 0;
    bool finite = true;
    for (int j = 0; j < n; j++) {
        const float a = fabsf(x[j]);
        finite &= a <= FLT_MAX; /* false for NaN too */
        amax = a > amax ? a : amax;
    }
    if (!finite) return VKM_EINVAL;
    const float id = amax > 0 ? 127.0f / amax : 0.0f;
    *d = amax / 127.0f;
    for (int j = 0; j < n / 16; j++) {
        int sum = 0;
        for (int l = 16 * j; l < 16 * j + 16; l++) {
            int v = (int)lrintf(x[l] * id);
            v = v > 127 ? 127 : v < -127 ? -127 : v;
            q[l] = (int8_t)v;
            sum += v;
        }
        s[j] = (int16_t)sum;
    }
    return 0;
}

int vkm_cpu_quant_act(uint32_t wtype, const float *x, int64_t k, void *dst) {
    int rc = check_type(wtype, k);
    if (rc) return rc;
    if (is_float(wtype)) {
        memcpy(dst, x, (size_t)k * sizeof(float));
        return 0;
    }
    const int bl = is_k(wtype) ? 256 : 32;
    for (int64_t i = 0; i < k / bl; i++, x += bl) {
        float *d;
        int16_t *s;
        int8_t *q;
        if (bl == 256) {
            vkm_cpu_q8k *b = (vkm_cpu_q8k *)dst + i;
            d = &b->d, s = b->s, q = b->q;
        } else {
            vkm_cpu_q8 *b = (vkm_cpu_q8 *)dst + i;
            d = &b->d, s = b->s, q = b->q;
        }
        rc = quant_block(x, bl, d, s, q);
        if (rc)
            return vkm_error(rc, "CPU matmul: non-finite activation in block %lld", (long long)i);
    }
    return 0;
}

/* ---- the row-parallel matmul ---------------------------------------------------------- */

typedef struct mm_job {
    vkm_cpu_dot_fn dot;
    const uint8_t *w;
    size_t row_bytes;
    int64_t k, m;
    const uint8_t *act; /* [n] rows of act_bytes */
    size_t act_bytes;
    int64_t n;
    float *y;      /* [n][ldy] */
    int64_t ldy;   /* y row stride (floats) */
    int64_t ktile; /* float types with long rows: k in tiles of this many (0 = whole rows) */
    /* second matrix for rows [m, 2m) (gate and up in one job), NULL if none */
    const uint8_t *w2;
    vkm_cpu_dot_fn dot2;
    float *y2;
} mm_job;

/* Float weights take float x: a 7168-row x is 28 KiB, as big as L1, so long rows are done in
 * k-tiles over the chunk's rows (the x tile stays in L1 while every row's part is read). */
#define FLOAT_KTILE 2048

static int64_t ktile_for(uint32_t wtype, int64_t k) {
    return is_float(wtype) && k > 2 * FLOAT_KTILE ? FLOAT_KTILE : 0;
}

static void mm_rows_tiled(const mm_job *j, int64_t begin, int64_t end) {
    const size_t es = j->row_bytes / (size_t)j->k; /* bytes per weight */
    for (int64_t r = begin; r < end; r++)
        for (int64_t t = 0; t < j->n; t++) j->y[t * j->ldy + r] = 0;
    for (int64_t k0 = 0; k0 < j->k; k0 += j->ktile) {
        const int64_t kl = j->k - k0 < j->ktile ? j->k - k0 : j->ktile;
        for (int64_t r = begin; r < end; r++) {
            const uint8_t *w = j->w + (size_t)r * j->row_bytes + (size_t)k0 * es;
            for (int64_t t = 0; t < j->n; t++)
                j->y[t * j->ldy + r] +=
                    j->dot(w, j->act + (size_t)t * j->act_bytes + (size_t)k0 * sizeof(float), kl);
        }
    }
}

static void mm_rows(void *ctx, int64_t begin, int64_t end) {
    const mm_job *j = ctx;
    if (j->ktile && !j->w2) {
        mm_rows_tiled(j, begin, end);
        return;
    }
    for (int64_t r = begin; r < end; r++) {
        const bool second = r >= j->m;
        const int64_t row = second ? r - j->m : r;
        const uint8_t *w = (second ? j->w2 : j->w) + (size_t)row * j->row_bytes;
        vkm_cpu_dot_fn dot = second ? j->dot2 : j->dot;
        float *y = second ? j->y2 : j->y;
        for (int64_t t = 0; t < j->n; t++)
            y[t * j->ldy + row] = dot(w, j->act + (size_t)t * j->act_bytes, j->k);
    }
}

static int check_shape(int64_t k, int64_t m, int64_t n) {
    if (k <= 0 || m < 0 || n < 0)
        return vkm_error(VKM_EINVAL, "CPU matmul: bad shape k=%lld m=%lld n=%lld", (long long)k,
                         (long long)m, (long long)n);
    return 0;
}

int vkm_cpu_matmul_q(vkm_cpu_pool *pool, uint32_t wtype, const void *w, int64_t k, int64_t m,
                     const void *act, int64_t n, float *y) {
    int rc;
    if ((rc = check_shape(k, m, n)) || (rc = check_type(wtype, k))) return rc;
    mm_job j = {.dot = dot_for(wtype),
                .w = w,
                .row_bytes = vkm_qtype_row_bytes(wtype, (uint64_t)k),
                .k = k,
                .m = m,
                .act = act,
                .act_bytes = vkm_cpu_act_bytes(wtype, k),
                .n = n,
                .y = y,
                .ldy = m,
                .ktile = ktile_for(wtype, k)};
    vkm_cpu_pool_run(pool, mm_rows, &j, m, VKM_CPU_ROW_CHUNK);
    return 0;
}

int vkm_cpu_matmul(vkm_cpu_pool *pool, uint32_t wtype, const void *w, int64_t k, int64_t m,
                   const float *x, int64_t n, float *y) {
    int rc;
    if ((rc = check_shape(k, m, n)) || (rc = check_type(wtype, k))) return rc;
    if (n == 0 || m == 0) return 0;
    const size_t ab = vkm_cpu_act_bytes(wtype, k);
    uint8_t *act = malloc(ab * (size_t)n);
    if (!act) return vkm_error(VKM_ENOMEM, "CPU matmul: out of memory for activations");
    for (int64_t t = 0; t < n && !rc; t++)
        rc = vkm_cpu_quant_act(wtype, x + t * k, k, act + (size_t)t * ab);
    if (!rc) rc = vkm_cpu_matmul_q(pool, wtype, w, k, m, act, n, y);
    free(act);
    return rc;
}

/* ---- the expert FFN -------------------------------------------------------------------- */

/* Whether gate and up take the same activation format (one conversion of x serves both). */
static bool same_act(uint32_t a, uint32_t b) {
    return is_float(a) == is_float(b) && is_k(a) == is_k(b);
}

int vkm_cpu_expert_ffn(vkm_cpu_pool *pool, const vkm_cpu_expert *ex, const float *x, int64_t n,
                       float *y) {
    const int64_t E = ex->n_embd, F = ex->n_ff;
    int rc;
    if (E <= 0 || F <= 0 || n < 0 || !ex->gate || !ex->up || !ex->down)
        return vkm_error(VKM_EINVAL, "CPU expert: bad shape E=%lld Fe=%lld n=%lld or no weights",
                         (long long)E, (long long)F, (long long)n);
    if ((rc = check_type(ex->gate_type, E)) || (rc = check_type(ex->up_type, E)) ||
        (rc = check_type(ex->down_type, F)))
        return rc;
    if (n == 0) return 0;
    const size_t ag = vkm_cpu_act_bytes(ex->gate_type, E), au = vkm_cpu_act_bytes(ex->up_type, E);
    const size_t ad = vkm_cpu_act_bytes(ex->down_type, F);
    const bool one = same_act(ex->gate_type, ex->up_type);
    uint8_t *xg = malloc(ag * (size_t)n), *xu = one ? xg : malloc(au * (size_t)n);
    uint8_t *hq = malloc(ad * (size_t)n);
    float *g = malloc(sizeof(float) * (size_t)(2 * F * n)); /* [n][F] gate, then [n][F] up */
    if (!xg || !xu || !hq || !g) {
        rc = vkm_error(VKM_ENOMEM, "CPU expert: out of memory for scratch");
        goto done;
    }
    float *u = g + F * n;
    for (int64_t t = 0; t < n && !rc; t++) {
        rc = vkm_cpu_quant_act(ex->gate_type, x + t * E, E, xg + (size_t)t * ag);
        if (!rc && !one) rc = vkm_cpu_quant_act(ex->up_type, x + t * E, E, xu + (size_t)t * au);
    }
    if (rc) goto done;
    if (one) { /* gate rows [0, F), up rows [F, 2F) in one job */
        mm_job j = {.dot = dot_for(ex->gate_type),
                    .w = ex->gate,
                    .row_bytes = vkm_qtype_row_bytes(ex->gate_type, (uint64_t)E),
                    .k = E,
                    .m = F,
                    .act = xg,
                    .act_bytes = ag,
                    .n = n,
                    .y = g,
                    .ldy = F,
                    .ktile = ktile_for(ex->gate_type, E),
                    .w2 = ex->up,
                    .dot2 = dot_for(ex->up_type),
                    .y2 = u};
        if (ex->gate_type != ex->up_type) { /* rows of different sizes: two jobs */
            j.w2 = NULL;
            vkm_cpu_pool_run(pool, mm_rows, &j, F, VKM_CPU_ROW_CHUNK);
            rc = vkm_cpu_matmul_q(pool, ex->up_type, ex->up, E, F, xu, n, u);
        } else {
            vkm_cpu_pool_run(pool, mm_rows, &j, 2 * F, VKM_CPU_ROW_CHUNK);
        }
    } else if (!(rc = vkm_cpu_matmul_q(pool, ex->gate_type, ex->gate, E, F, xg, n, g))) {
        rc = vkm_cpu_matmul_q(pool, ex->up_type, ex->up, E, F, xu, n, u);
    }
    if (rc) goto done;
    for (int64_t t = 0; t < n && !rc; t++) {
        vkm_ref_swiglu(g + t * F, g + t * F, u + t * F, (int)F);
        rc = vkm_cpu_quant_act(ex->down_type, g + t * F, F, hq + (size_t)t * ad);
    }
    if (!rc) rc = vkm_cpu_matmul_q(pool, ex->down_type, ex->down, F, E, hq, n, y);
done:
    if (xu != xg) free(xu);
    free(xg);
    free(hq);
    free(g);
    return rc;
}

/* Matrix e of a stacked {k, m, X} tensor, rows [r0, r0 + rows). */
static int slice(const vkm_tensor *t, int64_t e, int64_t r0, int64_t rows, const void **out) {
    if (!t->data || e < 0 || e >= t->ne[2] || r0 + rows > t->ne[1])
        return vkm_error(VKM_EINVAL, "CPU expert: tensor %s has no expert %lld",
                         t->name ? t->name : "(absent)", (long long)e);
    *out = (const uint8_t *)t->data + ((size_t)e * (size_t)t->ne[1] + (size_t)r0) * t->row_bytes;
    return 0;
}

int vkm_cpu_expert_of_layer(const vkm_layer *L, int64_t e, vkm_cpu_expert *out) {
    memset(out, 0, sizeof *out);
    if (!L->moe) return vkm_error(VKM_EINVAL, "CPU expert: not an MoE layer");
    const vkm_tensor *d = &L->ffn_down_exps;
    const int64_t F = d->ne[0], E = d->ne[1];
    int rc;
    out->n_embd = E;
    out->n_ff = F;
    out->down_type = d->type;
    if ((rc = slice(d, e, 0, E, &out->down))) return rc;
    if (L->ffn_gate_up_exps.data) {
        const vkm_tensor *gu = &L->ffn_gate_up_exps;
        out->gate_type = out->up_type = gu->type;
        if ((rc = slice(gu, e, 0, F, &out->gate)) || (rc = slice(gu, e, F, F, &out->up))) return rc;
        return 0;
    }
    out->gate_type = L->ffn_gate_exps.type;
    out->up_type = L->ffn_up_exps.type;
    if ((rc = slice(&L->ffn_gate_exps, e, 0, F, &out->gate)) ||
        (rc = slice(&L->ffn_up_exps, e, 0, F, &out->up)))
        return rc;
    return 0;
}
