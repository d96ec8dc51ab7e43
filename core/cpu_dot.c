/* cpu_dot.c - the portable C dot kernels of cpu_dot.h, one per weight type.
 *
 * Each block is decoded with the index names of ref_quant.c's dequantizers, but the products
 * with the 8-bit activations are summed as integers per run of 16 or 32 values and scaled once
 * per run: sum_i (d_w * s * q_i - m) * (d_a * a_i) = d_w * d_a * s * sum q_i a_i - m * d_a *
 * sum a_i, the second sum being the activation block's precomputed s[]. The K-quants take
 * vkm_cpu_q8k activations (one scale per 256), so a whole super-block is summed as integers and
 * scaled once; so do the 256-element IQ types (IQ4_NL, a block of 32, takes vkm_cpu_q8). Plain
 * loops over bytes, which compilers vectorize; the AVX2 file has the hand-written versions. */
#include "cpu_dot.h"

#include <string.h>

#include "fp16.h"
#include "iq_tables.h"
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

/* ---- IQ types: grids of iq_tables.h; super-blocks of 256 take vkm_cpu_q8k, IQ4_NL vkm_cpu_q8 ----
 */

/* Offsets and index names as ref_quant.c's top comment. A run's weights are d * f * g * sign with
 * the grid value g (a small integer) and f an odd multiple of 1/8 (IQ2), 1/4 (IQ3_XXS) or 1
 * (IQ3_S), so sum g * sign * a is an integer and the super-block's sum of f-weighted run sums,
 * kept in eighths (quarters, units), is scaled once. */

static int rd16i(const uint8_t *p) {
    return p[0] | p[1] << 8;
}

/* sum over j < 8 of g8[j] * (bit j of signs ? -1 : 1) * q[j], g8 the 8 bytes of a grid point */
static int dot_grid8(const uint32_t *grid, uint32_t idx, uint8_t signs, const int8_t *q) {
    int s = 0;
    for (int j = 0; j < 8; j++) {
        const int g = vkm_iq_grid8(grid, idx, j);
        s += ((signs >> j) & 1 ? -g : g) * q[j];
    }
    return s;
}

/* the same for two 4-value points (IQ3): elements 0-3 from g0, 4-7 from g1 */
static int dot_grid4x2(uint32_t g0, uint32_t g1, uint8_t signs, const int8_t *q) {
    int s = 0;
    for (int j = 0; j < 8; j++) {
        const int g = (int)(((j < 4 ? g0 : g1) >> (8 * (j % 4))) & 0xFFu);
        s += ((signs >> j) & 1 ? -g : g) * q[j];
    }
    return s;
}

/* IQ2_XXS: x = d * (2s + 1) / 8 * grid * sign. */
static float dot_iq2_xxs(const uint8_t *w, const void *act, int64_t k) {
    const vkm_cpu_q8k *a = act;
    float acc = 0;
    for (int64_t sb = 0; sb < k / 256; sb++, w += 66, a++) {
        int sum = 0;
        for (int ib = 0; ib < 8; ib++) {
            const uint8_t *run = w + 2 + 8 * ib;
            const uint32_t aux = rd32(run + 4);
            int s = 0;
            for (int l = 0; l < 4; l++)
                s += dot_grid8(vkm_iq2xxs_grid, run[l], vkm_iq_signs(aux >> (7 * l)),
                               a->q + 32 * ib + 8 * l);
            sum += (int)(2 * (aux >> 28) + 1) * s;
        }
        acc += f16(w) * a->d * 0.125f * (float)sum;
    }
    return acc;
}

/* IQ2_XS: q = qs[4ib + l] (u16 @2): index q & 511, signs s7 q >> 9; scales @66 per pair of groups.
 */
static float dot_iq2_xs(const uint8_t *w, const void *act, int64_t k) {
    const vkm_cpu_q8k *a = act;
    float acc = 0;
    for (int64_t sb = 0; sb < k / 256; sb++, w += 74, a++) {
        int sum = 0;
        for (int ib = 0; ib < 8; ib++) {
            for (int l = 0; l < 4; l++) {
                const uint32_t q = (uint32_t)rd16i(w + 2 + 2 * (4 * ib + l));
                const int sc = l < 2 ? (w[66 + ib] & 0xF) : (w[66 + ib] >> 4);
                sum += (2 * sc + 1) * dot_grid8(vkm_iq2xs_grid, q & 511u, vkm_iq_signs(q >> 9),
                                                a->q + 32 * ib + 8 * l);
            }
        }
        acc += f16(w) * a->d * 0.125f * (float)sum;
    }
    return acc;
}

/* IQ2_S: qs[32] @2, signs[32] @34, qh[8] @66 (index bits 8-9), scales[8] @74. */
static float dot_iq2_s(const uint8_t *w, const void *act, int64_t k) {
    const vkm_cpu_q8k *a = act;
    float acc = 0;
    for (int64_t sb = 0; sb < k / 256; sb++, w += 82, a++) {
        const uint8_t *qs = w + 2, *sg = w + 34, *qh = w + 66, *sc = w + 74;
        int sum = 0;
        for (int ib = 0; ib < 8; ib++) {
            for (int l = 0; l < 4; l++) {
                const uint32_t idx = qs[4 * ib + l] | ((uint32_t)(qh[ib] >> (2 * l)) & 3u) << 8;
                const int s = l < 2 ? (sc[ib] & 0xF) : (sc[ib] >> 4);
                sum += (2 * s + 1) *
                       dot_grid8(vkm_iq2s_grid, idx, sg[4 * ib + l], a->q + 32 * ib + 8 * l);
            }
        }
        acc += f16(w) * a->d * 0.125f * (float)sum;
    }
    return acc;
}

/* IQ3_XXS: x = d * (2s + 1) / 4 * grid * sign; qs[64] @2, the run's u32 @66 + 4ib. */
static float dot_iq3_xxs(const uint8_t *w, const void *act, int64_t k) {
    const vkm_cpu_q8k *a = act;
    float acc = 0;
    for (int64_t sb = 0; sb < k / 256; sb++, w += 98, a++) {
        const uint8_t *qs = w + 2;
        int sum = 0;
        for (int ib = 0; ib < 8; ib++) {
            const uint32_t aux = rd32(w + 66 + 4 * ib);
            int s = 0;
            for (int l = 0; l < 4; l++)
                s += dot_grid4x2(vkm_iq3xxs_grid[qs[8 * ib + 2 * l]],
                                 vkm_iq3xxs_grid[qs[8 * ib + 2 * l + 1]],
                                 vkm_iq_signs(aux >> (7 * l)), a->q + 32 * ib + 8 * l);
            sum += (int)(2 * (aux >> 28) + 1) * s;
        }
        acc += f16(w) * a->d * 0.25f * (float)sum;
    }
    return acc;
}

/* IQ3_S: x = d * (2s + 1) * grid * sign; qs[64] @2, qh[8] @66, signs[32] @74, scales[4] @106. */
static float dot_iq3_s(const uint8_t *w, const void *act, int64_t k) {
    const vkm_cpu_q8k *a = act;
    float acc = 0;
    for (int64_t sb = 0; sb < k / 256; sb++, w += 110, a++) {
        const uint8_t *qs = w + 2, *qh = w + 66, *sg = w + 74, *sc = w + 106;
        int sum = 0;
        for (int ib = 0; ib < 8; ib++) {
            int s = 0;
            for (int l = 0; l < 4; l++) {
                const uint32_t i0 = qs[8 * ib + 2 * l] | ((uint32_t)(qh[ib] >> (2 * l)) & 1u) << 8;
                const uint32_t i1 =
                    qs[8 * ib + 2 * l + 1] | ((uint32_t)(qh[ib] >> (2 * l + 1)) & 1u) << 8;
                s += dot_grid4x2(vkm_iq3s_grid[i0], vkm_iq3s_grid[i1], sg[4 * ib + l],
                                 a->q + 32 * ib + 8 * l);
            }
            sum += (2 * (ib % 2 == 0 ? sc[ib / 2] & 0xF : sc[ib / 2] >> 4) + 1) * s;
        }
        acc += f16(w) * a->d * (float)sum;
    }
    return acc;
}

/* sum over j < 8 of (8 * grid value + delta) * q[j] for IQ1 grid point idx (values -1..1) and
 * delta = +-1: the group's weights in eighths of its scale. */
static int dot_iq1_group(uint32_t idx, int delta, const int8_t *q) {
    int s = 0, sq = 0;
    for (int j = 0; j < 8; j++) {
        s += vkm_iq1s_value(idx, j) * q[j];
        sq += q[j];
    }
    return 8 * s + delta * sq;
}

/* IQ1_S: x = d * (2s + 1) * (grid +- 1/8); qs[32] @2, qh u16[8] @34. */
static float dot_iq1_s(const uint8_t *w, const void *act, int64_t k) {
    const vkm_cpu_q8k *a = act;
    float acc = 0;
    for (int64_t sb = 0; sb < k / 256; sb++, w += 50, a++) {
        const uint8_t *qs = w + 2;
        int sum = 0;
        for (int ib = 0; ib < 8; ib++) {
            const uint32_t h = (uint32_t)rd16i(w + 34 + 2 * ib);
            const int delta = h & 0x8000u ? -1 : 1;
            int s = 0;
            for (int l = 0; l < 4; l++)
                s += dot_iq1_group(qs[4 * ib + l] | ((h >> (3 * l)) & 7u) << 8, delta,
                                   a->q + 32 * ib + 8 * l);
            sum += (int)(2 * ((h >> 12) & 7u) + 1) * s;
        }
        acc += f16(w) * a->d * 0.125f * (float)sum;
    }
    return acc;
}

/* IQ1_M: qs[32] @0, qh[16] @32 (index bits and delta sign per group), scales u16[4] @48 whose
 * top nibbles form d; the 3-bit scale is per pair of groups. */
static float dot_iq1_m(const uint8_t *w, const void *act, int64_t k) {
    const vkm_cpu_q8k *a = act;
    float acc = 0;
    for (int64_t sb = 0; sb < k / 256; sb++, w += 56, a++) {
        const uint8_t *qs = w, *qh = w + 32;
        uint32_t sc[4];
        for (int i = 0; i < 4; i++) sc[i] = (uint32_t)rd16i(w + 48 + 2 * i);
        const uint16_t db = (uint16_t)((sc[0] >> 12) | ((sc[1] >> 8) & 0xF0u) |
                                       ((sc[2] >> 4) & 0xF00u) | (sc[3] & 0xF000u));
        int sum = 0;
        for (int ib = 0; ib < 8; ib++) {
            for (int l = 0; l < 4; l++) {
                const uint32_t hb = (uint32_t)qh[2 * ib + l / 2] >> (4 * (l % 2));
                const uint32_t s = (sc[ib / 2] >> (6 * (ib % 2) + 3 * (l / 2))) & 7u;
                sum += (int)(2 * s + 1) * dot_iq1_group(qs[4 * ib + l] | (hb & 7u) << 8,
                                                        hb & 8u ? -1 : 1, a->q + 32 * ib + 8 * l);
            }
        }
        acc += vkm_fp16_to_f32(db) * a->d * 0.125f * (float)sum;
    }
    return acc;
}

/* sum of kvalues[nib(j)] * q[j] over 32 elements in Q4_0's nibble order */
static int dot_iq4_32(const uint8_t *qs, const int8_t *q) {
    int s = 0;
    for (int j = 0; j < 16; j++)
        s += vkm_iq4nl_values[qs[j] & 0xF] * q[j] + vkm_iq4nl_values[qs[j] >> 4] * q[j + 16];
    return s;
}

static float dot_iq4_nl(const uint8_t *w, const void *act, int64_t k) {
    const vkm_cpu_q8 *a = act;
    float acc = 0;
    for (int64_t b = 0; b < k / 32; b++, w += 18)
        acc += f16(w) * a[b].d * (float)dot_iq4_32(w + 2, a[b].q);
    return acc;
}

/* IQ4_XS: d @0, scales_h u16 @2, scales_l[4] @4, qs[128] @8; x = d * (s - 32) * kvalues[q]. */
static float dot_iq4_xs(const uint8_t *w, const void *act, int64_t k) {
    const vkm_cpu_q8k *a = act;
    float acc = 0;
    for (int64_t sb = 0; sb < k / 256; sb++, w += 136, a++) {
        const uint32_t sh = (uint32_t)rd16i(w + 2);
        int sum = 0;
        for (int ib = 0; ib < 8; ib++) {
            const int s = (int)(((uint32_t)(w[4 + ib / 2] >> (4 * (ib % 2))) & 0xFu) |
                                ((sh >> (2 * ib)) & 3u) << 4);
            sum += (s - 32) * dot_iq4_32(w + 8 + 16 * ib, a->q + 32 * ib);
        }
        acc += f16(w) * a->d * (float)sum;
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
    case VKM_IQ1_S:
        return dot_iq1_s;
    case VKM_IQ1_M:
        return dot_iq1_m;
    case VKM_IQ2_XXS:
        return dot_iq2_xxs;
    case VKM_IQ2_XS:
        return dot_iq2_xs;
    case VKM_IQ2_S:
        return dot_iq2_s;
    case VKM_IQ3_XXS:
        return dot_iq3_xxs;
    case VKM_IQ3_S:
        return dot_iq3_s;
    case VKM_IQ4_NL:
        return dot_iq4_nl;
    case VKM_IQ4_XS:
        return dot_iq4_xs;
    default:
        return NULL;
    }
}
