/* cpu_dot.c - the portable C dot kernels of cpu_dot.h, one per weight type.
 *
 * Each block is decoded with the index names of ref_quant.c's dequantizers, but the products
 * with the 8-bit activations are summed as integers per run of 16 or 32 values and scaled once
 * per run: sum_i (d_w * s * q_i - m) * (d_a * a_i) = d_w * d_a * s * sum q_i a_i - m * d_a *
 * sum a_i, the second sum being the activation block's precomputed s[]. The K-quants take
 * vkm_cpu_q8k activations (one scale per 256), so a whole super-block is summed as integers and
 * scaled once. Plain loops over bytes, which compilers vectorize; the AVX2 file has the
 * hand-written versions. */
#include "cpu_dot.h"

#include <string.h>

#include "fp16.h"
#include "qtype.h"

static float f16(const uint8_t *p) {
    return vkm_fp16_to_f32((uint16_t)(p[0] | p[1] << 8));
}
static uint32_t rd32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* ---- floats ---------------------------------------------------------------------------- */

static float dot_f32(const uint8_t *w, const void *act, int64_t k) {
    const float *x = act;
    float acc[8] = {0};
    for (int64_t i = 0; i < k; i += 8)
        for (int j = 0; j < 8 && i + j < k; j++) {
            float v;
            memcpy(&v, w + 4 * (i + j), 4);
            acc[j] += v * x[i + j];
        }
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

static float dot_f16(const uint8_t *w, const void *act, int64_t k) {
    const float *x = act;
    float acc[8] = {0};
    for (int64_t i = 0; i < k; i += 8)
        for (int j = 0; j < 8 && i + j < k; j++) acc[j] += f16(w + 2 * (i + j)) * x[i + j];
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

static float dot_bf16(const uint8_t *w, const void *act, int64_t k) {
    const float *x = act;
    float acc[8] = {0};
    for (int64_t i = 0; i < k; i += 8)
        for (int j = 0; j < 8 && i + j < k; j++)
            acc[j] +=
                vkm_bf16_to_f32((uint16_t)(w[2 * (i + j)] | w[2 * (i + j) + 1] << 8)) * x[i + j];
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

/* ---- blocks of 32 ---------------------------------------------------------------------- */

/* sum of nib(j) * a.q[j] for Q4_0/Q4_1's nibble order (element j < 16: low nibble of qs[j]). */
static int dot_nib32(const uint8_t *qs, const int8_t *q) {
    int s = 0;
    for (int j = 0; j < 16; j++) s += (qs[j] & 0xF) * q[j] + (qs[j] >> 4) * q[j + 16];
    return s;
}

static int dot_q5_32(const uint8_t *qs, uint32_t qh, const int8_t *q) {
    int s = 0;
    for (int j = 0; j < 16; j++) {
        int lo = (qs[j] & 0xF) | (int)((qh >> j) & 1u) << 4;
        int hi = (qs[j] >> 4) | (int)((qh >> (j + 16)) & 1u) << 4;
        s += lo * q[j] + hi * q[j + 16];
    }
    return s;
}

static float dot_q4_0(const uint8_t *w, const void *act, int64_t k) {
    const vkm_cpu_q8 *a = act;
    float acc = 0;
    for (int64_t b = 0; b < k / 32; b++, w += 18) {
        int s = dot_nib32(w + 2, a[b].q) - 8 * (a[b].s[0] + a[b].s[1]);
        acc += f16(w) * a[b].d * (float)s;
    }
    return acc;
}

static float dot_q4_1(const uint8_t *w, const void *act, int64_t k) {
    const vkm_cpu_q8 *a = act;
    float acc = 0;
    for (int64_t b = 0; b < k / 32; b++, w += 20)
        acc += a[b].d * (f16(w) * (float)dot_nib32(w + 4, a[b].q) +
                         f16(w + 2) * (float)(a[b].s[0] + a[b].s[1]));
    return acc;
}

static float dot_q5_0(const uint8_t *w, const void *act, int64_t k) {
    const vkm_cpu_q8 *a = act;
    float acc = 0;
    for (int64_t b = 0; b < k / 32; b++, w += 22) {
        int s = dot_q5_32(w + 6, rd32(w + 2), a[b].q) - 16 * (a[b].s[0] + a[b].s[1]);
        acc += f16(w) * a[b].d * (float)s;
    }
    return acc;
}

static float dot_q5_1(const uint8_t *w, const void *act, int64_t k) {
    const vkm_cpu_q8 *a = act;
    float acc = 0;
    for (int64_t b = 0; b < k / 32; b++, w += 24)
        acc += a[b].d * (f16(w) * (float)dot_q5_32(w + 8, rd32(w + 4), a[b].q) +
                         f16(w + 2) * (float)(a[b].s[0] + a[b].s[1]));
    return acc;
}

static float dot_q8_0(const uint8_t *w, const void *act, int64_t k) {
    const vkm_cpu_q8 *a = act;
    float acc = 0;
    for (int64_t b = 0; b < k / 32; b++, w += 34) {
        int s = 0;
        for (int j = 0; j < 32; j++) s += (int8_t)w[2 + j] * a[b].q[j];
        acc += f16(w) * a[b].d * (float)s;
    }
    return acc;
}

/* ---- K-quants: super-blocks of 256, one vkm_cpu_q8k activation block each ------------------ */

/* Q2_K: scales[16] @0 (low nibble scale, high nibble min, per 16), qs[64] @16, d @80, dmin @82.
 * Run ib = 4h + j (32 elements) holds elements 128h + 32j + l, q = (qs[32h + l] >> 2j) & 3. */
static float dot_q2_k(const uint8_t *w, const void *act, int64_t k) {
    const vkm_cpu_q8k *a = act;
    float acc = 0;
    for (int64_t sb = 0; sb < k / 256; sb++, w += 84, a++) {
        const uint8_t *sc = w, *qs = w + 16;
        int sum = 0, mins = 0;
        for (int ib = 0; ib < 8; ib++) {
            const int h = ib / 4, j = ib % 4;
            const int8_t *q = a->q + 32 * ib;
            int s0 = 0, s1 = 0;
            for (int l = 0; l < 16; l++) s0 += ((qs[32 * h + l] >> (2 * j)) & 3) * q[l];
            for (int l = 16; l < 32; l++) s1 += ((qs[32 * h + l] >> (2 * j)) & 3) * q[l];
            sum += (sc[2 * ib] & 0xF) * s0 + (sc[2 * ib + 1] & 0xF) * s1;
            mins += (sc[2 * ib] >> 4) * a->s[2 * ib] + (sc[2 * ib + 1] >> 4) * a->s[2 * ib + 1];
        }
        acc += a->d * (f16(w + 80) * (float)sum - f16(w + 82) * (float)mins);
    }
    return acc;
}

/* The 16 signed 6-bit scales of a Q3_K block from its 12 packed bytes. */
static void q3_k_scales(const uint8_t *p, int *s) {
    for (int j = 0; j < 16; j++) {
        int low4 = j < 8 ? (p[j] & 0xF) : (p[j - 8] >> 4);
        int hi2 = (p[8 + j % 4] >> (2 * (j / 4))) & 3;
        s[j] = (low4 | hi2 << 4) - 32;
    }
}

/* Q3_K: hmask[32] @0, qs[64] @32, scales[12] @96, d @108; q = q2 + 4 * hbit - 4, hbit = bit ib
 * of hmask[l]. Summed as (q2 + 4 hbit) * a, minus 4 * the 16-sums. */
static float dot_q3_k(const uint8_t *w, const void *act, int64_t k) {
    const vkm_cpu_q8k *a = act;
    float acc = 0;
    for (int64_t sb = 0; sb < k / 256; sb++, w += 110, a++) {
        const uint8_t *hm = w, *qs = w + 32;
        int sc[16];
        q3_k_scales(w + 96, sc);
        int sum = 0;
        for (int ib = 0; ib < 8; ib++) {
            const int h = ib / 4, j = ib % 4;
            const int8_t *q = a->q + 32 * ib;
            int s[2] = {0, 0};
            for (int l = 0; l < 32; l++) {
                int u = ((qs[32 * h + l] >> (2 * j)) & 3) | ((hm[l] >> ib) & 1) << 2;
                s[l / 16] += u * q[l];
            }
            sum += sc[2 * ib] * (s[0] - 4 * a->s[2 * ib]) +
                   sc[2 * ib + 1] * (s[1] - 4 * a->s[2 * ib + 1]);
        }
        acc += f16(w + 108) * a->d * (float)sum;
    }
    return acc;
}

/* The 6-bit scale and min of sub-block j (0..7) of Q4_K/Q5_K (as ref_quant.c). */
static void k_scale_min(const uint8_t *b, int j, int *sc, int *m) {
    if (j < 4) {
        *sc = b[j] & 63;
        *m = b[j + 4] & 63;
    } else {
        *sc = (b[j + 4] & 0xF) | ((b[j - 4] >> 6) << 4);
        *m = (b[j + 4] >> 4) | ((b[j] >> 6) << 4);
    }
}

/* Q4_K: d @0, dmin @2, scales[12] @4, qs[128] @16; sub-block ib = elements 32ib.., its
 * nibble l is qs[32 (ib/2) + l], low for even ib, high for odd. */
static float dot_q4_k(const uint8_t *w, const void *act, int64_t k) {
    const vkm_cpu_q8k *a = act;
    float acc = 0;
    for (int64_t sb = 0; sb < k / 256; sb++, w += 144, a++) {
        const uint8_t *qs = w + 16;
        int sum = 0, mins = 0;
        for (int ib = 0; ib < 8; ib++) {
            int sc, m, s = 0;
            k_scale_min(w + 4, ib, &sc, &m);
            const uint8_t *p = qs + 32 * (ib / 2);
            const int8_t *q = a->q + 32 * ib;
            const int sh = 4 * (ib % 2);
            for (int l = 0; l < 32; l++) s += ((p[l] >> sh) & 0xF) * q[l];
            sum += sc * s;
            mins += m * (a->s[2 * ib] + a->s[2 * ib + 1]);
        }
        acc += a->d * (f16(w) * (float)sum - f16(w + 2) * (float)mins);
    }
    return acc;
}

/* Q5_K: d @0, dmin @2, scales[12] @4, qh[32] @16, qs[128] @48; bit ib of qh[l] adds 16. */
static float dot_q5_k(const uint8_t *w, const void *act, int64_t k) {
    const vkm_cpu_q8k *a = act;
    float acc = 0;
    for (int64_t sb = 0; sb < k / 256; sb++, w += 176, a++) {
        const uint8_t *qh = w + 16, *qs = w + 48;
        int sum = 0, mins = 0;
        for (int ib = 0; ib < 8; ib++) {
            int sc, m, s = 0;
            k_scale_min(w + 4, ib, &sc, &m);
            const uint8_t *p = qs + 32 * (ib / 2);
            const int8_t *q = a->q + 32 * ib;
            const int sh = 4 * (ib % 2);
            for (int l = 0; l < 32; l++)
                s += (((p[l] >> sh) & 0xF) | ((qh[l] >> ib) & 1) << 4) * q[l];
            sum += sc * s;
            mins += m * (a->s[2 * ib] + a->s[2 * ib + 1]);
        }
        acc += a->d * (f16(w) * (float)sum - f16(w + 2) * (float)mins);
    }
    return acc;
}

/* Q6_K: ql[128] @0, qh[64] @128, scales[16] int8 @192, d @208. Run ib = 4h + g holds elements
 * 128h + 32g + l: q = (ql[64h + 32(g&1) + l] nibble g/2) | ((qh[32h + l] >> 2g) & 3) << 4,
 * minus 32; scale scales[2 ib + l/16]. */
static float dot_q6_k(const uint8_t *w, const void *act, int64_t k) {
    const vkm_cpu_q8k *a = act;
    float acc = 0;
    for (int64_t sb = 0; sb < k / 256; sb++, w += 210, a++) {
        const uint8_t *ql = w, *qh = w + 128;
        const int8_t *sc = (const int8_t *)(w + 192);
        int sum = 0;
        for (int ib = 0; ib < 8; ib++) {
            const int h = ib / 4, g = ib % 4;
            const uint8_t *pl = ql + 64 * h + 32 * (g & 1), *ph = qh + 32 * h;
            const int8_t *q = a->q + 32 * ib;
            const int shl = 4 * (g / 2), shh = 2 * g;
            int s[2] = {0, 0};
            for (int l = 0; l < 32; l++) {
                int u = ((pl[l] >> shl) & 0xF) | ((ph[l] >> shh) & 3) << 4;
                s[l / 16] += u * q[l];
            }
            sum += sc[2 * ib] * (s[0] - 32 * a->s[2 * ib]) +
                   sc[2 * ib + 1] * (s[1] - 32 * a->s[2 * ib + 1]);
        }
        acc += f16(w + 208) * a->d * (float)sum;
    }
    return acc;
}

vkm_cpu_dot_fn vkm_cpu_dot_portable(uint32_t type) {
    switch (type) {
    case VKM_F32:
        return dot_f32;
    case VKM_F16:
        return dot_f16;
    case VKM_BF16:
        return dot_bf16;
    case VKM_Q4_0:
        return dot_q4_0;
    case VKM_Q4_1:
        return dot_q4_1;
    case VKM_Q5_0:
        return dot_q5_0;
    case VKM_Q5_1:
        return dot_q5_1;
    case VKM_Q8_0:
        return dot_q8_0;
    case VKM_Q2_K:
        return dot_q2_k;
    case VKM_Q3_K:
        return dot_q3_k;
    case VKM_Q4_K:
        return dot_q4_k;
    case VKM_Q5_K:
        return dot_q5_k;
    case VKM_Q6_K:
        return dot_q6_k;
    default:
        return NULL;
    }
}
