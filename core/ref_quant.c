/* ref_quant.c - plain-C dequantizers and quantizers for ggml weight blocks (the test oracle).
 *
 * Every block is read and written byte by byte in little-endian order (GGUF's byte order), so
 * nothing depends on host struct layout or alignment. Dequantizers follow spec §1.4 literally,
 * one element at a time with the spec's index names (h, r, j, l, sb, g, c). Clarity over speed.
 *
 * Types the spec does not describe follow ggml's definitions:
 *   Q4_1 (20 B): d:f16, m:f16, qs[16]. x = d*nibble + m; element j < 16 is qs[j] & 0xF,
 *                element j + 16 is qs[j] >> 4.
 *   Q5_0 (22 B): d:f16, qh[4] (one u32, LE), qs[16]. For j in 0..15:
 *                element j      q = ((qs[j] & 0xF) | ((qh >> j) & 1) << 4) - 16,
 *                element j + 16 q = ((qs[j] >> 4) | ((qh >> (j + 12)) & 0x10)) - 16, i.e. the
 *                fifth bit is bit j + 16 of qh. x = d*q.
 *   Q5_1 (24 B): d:f16, m:f16, qh[4], qs[16]. Same 5-bit q without the -16; x = d*q + m.
 *
 * The IQ types (ggml's importance-matrix quants; grids and levels in iq_tables.h), per block of
 * 256 elements in 8 runs of 32 (ib = e / 32) of 4 groups of 8 (l = e % 32 / 8, j = e % 8), or,
 * for IQ3_*, grid points of 4 (the group's first or second half, h = j / 4). "signs s7" is a 7-bit
 * sign index (vkm_iq_signs: bit j set = element j of the group negative). All offsets in bytes.
 *   IQ2_XXS (66): d:f16 @0, 8 runs of 8 bytes @2: bytes 0-3 the grid indices of groups 0-3 (of
 *       256 points), u32 at byte 4: signs s7 of group l at bits 7l, scale s at bits 28-31;
 *       x = d * (0.5 + s) / 4 * grid[j] * sign.
 *   IQ2_XS (74): d @0, qs: 32 u16 @2 (q = qs[4ib + l]: grid index q & 511 of 512 points, signs
 *       s7 = q >> 9), scales[8] @66 (the low nibble s for groups 0-1, the high one for 2-3);
 *       x = d * (0.5 + s) / 4 * grid[j] * sign.
 *   IQ2_S (82): d @0, qs[32] @2 (the low 8 bits of the grid index, of 1024 points), signs[32] @34
 *       (8 sign bits per group, no parity), qh[8] @66 (bits 2l, 2l + 1 of qh[ib]: index bits 8-9),
 *       scales[8] @74 as IQ2_XS.
 *   IQ3_XXS (98): d @0, qs[64] @2 (the grid index of half h of group l of run ib is
 *       qs[8ib + 2l + h], of 256 points of 4), u32 @66 + 4ib: signs s7 of group l at bits 7l,
 *       scale s at bits 28-31; x = d * (0.5 + s) / 2 * grid[j % 4] * sign.
 *   IQ3_S (110): d @0, qs[64] @2 (low 8 bits of the index, 512 points), qh[8] @66 (bit 2l + h of
 *       qh[ib]: index bit 8), signs[32] @74 (8 bits per group), scales[4] @106 (the low nibble s
 *       for even ib, the high one for odd); x = d * (1 + 2s) * grid[j % 4] * sign.
 *   IQ1_S (50): d @0, qs[32] @2 (low 8 bits of the index of group l: qs[4ib + l], 2048 points of
 *       8 values -1..1), qh: 8 u16 @34 (h = qh[ib]: index bits 8-10 of group l at bits 3l,
 *       scale s at bits 12-14, bit 15: delta sign); x = d * (2s + 1) * (grid[j] +- 1/8).
 *   IQ1_M (56): qs[32] @0 as IQ1_S, qh[16] @32 (byte 2ib + l / 2: index bits 8-10 of group l at
 *       bits 4 * (l % 2), its delta sign at bit 4 * (l % 2) + 3), scales: 4 u16 @48 (sc[ib / 2]
 *       bits 6 * (ib % 2) + 3 * (l / 2): 3-bit s; d = the f16 whose nibbles 0-3 are bits 12-15
 *       of sc[0], sc[1], sc[2], sc[3]); x = d * (2s + 1) * (grid[j] +- 1/8).
 *   IQ4_NL (18 per 32): d @0, qs[16] as Q4_0's nibbles; x = d * kvalues[q].
 *   IQ4_XS (136): d @0, scales_h u16 @2 (bits 2ib, 2ib + 1: scale bits 4-5), scales_l[4] @4
 *       (nibble ib % 2 of byte ib / 2: bits 0-3), qs[128] @8 (run ib: 16 bytes @8 + 16ib, Q4_0's
 *       nibble order); x = d * (s - 32) * kvalues[q].
 * Of the IQ types only IQ4_NL and IQ4_XS have a quantizer here (nearest level, see q_iq4_*;
 * vkm_ref_quant_row refuses the others: their grids need a search).
 *
 * Quantizers: round to nearest, with every scale (and min) chosen so that the whole block lies
 * inside the representable range, which gives a hard worst-case error bound (A = largest |x| of
 * the (super-)block, R = max(x,0) - min(x,0) of the super-block, ignoring f16 ulps):
 *   Q8_0  d = amax/127 rounded up to f16            |err| <= d/2      ~ A/254
 *   Q4_0  d = -vmax/7.5 (vmax = signed largest |x|)  |err| <= |d|/2    ~ A/15
 *   Q5_0  d = -vmax/15.5                             |err| <= |d|/2    ~ A/31
 *   Q4_1  m = min rounded down to f16, d = (max-m)/15 up      |err| <= d/2  ~ (max-min)/30
 *   Q5_1  same with /31                                       |err| <= d/2  ~ (max-min)/62
 *   Q2_K  per 16: offset = dmin*mi >= -min(x,0) (mi 4-bit, rounded up), step = d*sc >=
 *         (max + offset)/3 (sc 4-bit, rounded up); dmin = max offset/15, d = max step/15.
 *         |err| <= step/2 <= R/6 * (16/15)^2 ~ 0.190 R
 *   Q4_K  the same per 32 with 6-bit sc/mi and 15 levels: |err| <= R/30 * (64/63)^2 ~ 0.0344 R
 *   Q5_K  31 levels:                                          |err| <= R/62 * (64/63)^2 ~ 0.0166 R
 *   Q3_K  per 16: sub = -vmax/3.5, s = sign(sub)*ceil(|sub|/d) (6-bit signed, |s| <= 31),
 *         d = max|sub|/31:                                 |err| <= |d*s|/2 <= A/7 * 32/31
 *   Q6_K  per 16: sub = -vmax/31.5, int8 s, d = max|sub|/127: |err| <= A/63 * 128/127
 * ("-vmax/H" maps the block's extreme value to the most negative level, which the asymmetric
 * signed ranges -4..3, -8..7, -16..15, -32..31 can hold; its mirror image clamps by at most
 * half a step.) All scales are rounded up to the next f16 so rounding never clips. */
#include "ref_quant.h"

#include <math.h>
#include <string.h>

#include "err.h"
#include "fp16.h"
#include "iq_tables.h"
#include "qtype.h"

/* ---- byte access -------------------------------------------------------------------------- */

static uint16_t rd16(const uint8_t *p) {
    return (uint16_t)(p[0] | (p[1] << 8));
}
static uint32_t rd32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static void wr16(uint8_t *p, uint16_t v) {
    p[0] = (uint8_t)(v & 0xff);
    p[1] = (uint8_t)(v >> 8);
}
static void wr32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static float rdf16(const uint8_t *p) {
    return vkm_fp16_to_f32(rd16(p));
}

/* ---- dequantizers: one block each, spec §1.4 ------------------------------------------------ */

static void dq_q4_0(const uint8_t *b, float *y) {
    float d = rdf16(b);
    const uint8_t *qs = b + 2;
    for (int e = 0; e < 32; e++) {
        int j = e % 16;
        int nib = e < 16 ? (qs[j] & 0xF) : (qs[j] >> 4);
        y[e] = d * (float)(nib - 8);
    }
}

static void dq_q4_1(const uint8_t *b, float *y) {
    float d = rdf16(b), m = rdf16(b + 2);
    const uint8_t *qs = b + 4;
    for (int e = 0; e < 32; e++) {
        int j = e % 16;
        int nib = e < 16 ? (qs[j] & 0xF) : (qs[j] >> 4);
        y[e] = d * (float)nib + m;
    }
}

/* The 5-bit unsigned q of element e of a Q5_0/Q5_1 block (see the top comment). */
static int q5_value(uint32_t qh, const uint8_t *qs, int e) {
    int j = e % 16;
    if (e < 16) return (int)((qs[j] & 0xFu) | ((qh >> j) & 1u) << 4);
    return (int)((uint32_t)(qs[j] >> 4) | ((qh >> (j + 12)) & 0x10u));
}

static void dq_q5_0(const uint8_t *b, float *y) {
    float d = rdf16(b);
    uint32_t qh = rd32(b + 2);
    for (int e = 0; e < 32; e++) y[e] = d * (float)(q5_value(qh, b + 6, e) - 16);
}

static void dq_q5_1(const uint8_t *b, float *y) {
    float d = rdf16(b), m = rdf16(b + 2);
    uint32_t qh = rd32(b + 4);
    for (int e = 0; e < 32; e++) y[e] = d * (float)q5_value(qh, b + 8, e) + m;
}

static void dq_q8_0(const uint8_t *b, float *y) {
    float d = rdf16(b);
    for (int e = 0; e < 32; e++) y[e] = d * (float)(int8_t)b[2 + e];
}

/* Q2_K: scales[16] @0, qs[64] @16, d @80, dmin @82. */
static void dq_q2_k(const uint8_t *b, float *y) {
    const uint8_t *scales = b, *qs = b + 16;
    float d = rdf16(b + 80), dmin = rdf16(b + 82);
    for (int e = 0; e < 256; e++) {
        int h = e / 128, r = e % 128, j = r / 32, l = r % 32, sb = e / 16;
        int q = (qs[32 * h + l] >> (2 * j)) & 3;
        y[e] = d * (float)(scales[sb] & 0xF) * (float)q - dmin * (float)(scales[sb] >> 4);
    }
}

/* Q3_K: hmask[32] @0, qs[64] @32, scales[12] @96, d @108. */
static void dq_q3_k(const uint8_t *b, float *y) {
    const uint8_t *hmask = b, *qs = b + 32, *sc = b + 96;
    float d = rdf16(b + 108);
    int s[16];
    for (int j = 0; j < 16; j++) {
        int low4 = j < 8 ? (sc[j] & 0xF) : (sc[j - 8] >> 4);
        int hi2 = (sc[8 + j % 4] >> (2 * (j / 4))) & 3;
        s[j] = (low4 | hi2 << 4) - 32;
    }
    for (int e = 0; e < 256; e++) {
        int h = e / 128, r = e % 128, j = r / 32, l = r % 32;
        int q2 = (qs[32 * h + l] >> (2 * j)) & 3;
        int hbit = (hmask[l] >> (4 * h + j)) & 1;
        int q = q2 - (hbit ? 0 : 4);
        y[e] = d * (float)s[e / 16] * (float)q;
    }
}

/* The 6-bit scale and min of sub-block j (0..7) of Q4_K/Q5_K from the 12 packed bytes. */
static void k_scale_min(const uint8_t *b, int j, int *sc, int *m) {
    if (j < 4) {
        *sc = b[j] & 63;
        *m = b[j + 4] & 63;
    } else {
        *sc = (b[j + 4] & 0xF) | ((b[j - 4] >> 6) << 4);
        *m = (b[j + 4] >> 4) | ((b[j] >> 6) << 4);
    }
}

/* Q4_K: d @0, dmin @2, scales[12] @4, qs[128] @16. */
static void dq_q4_k(const uint8_t *b, float *y) {
    float d = rdf16(b), dmin = rdf16(b + 2);
    const uint8_t *qs = b + 16;
    for (int sb = 0; sb < 8; sb++) {
        int sc, m;
        k_scale_min(b + 4, sb, &sc, &m);
        for (int e = 32 * sb; e < 32 * sb + 32; e++) {
            int c = e / 64, r = e % 64, l = r % 32;
            int nib = r < 32 ? (qs[32 * c + l] & 0xF) : (qs[32 * c + l] >> 4);
            y[e] = d * (float)sc * (float)nib - dmin * (float)m;
        }
    }
}

/* Q5_K: d @0, dmin @2, scales[12] @4, qh[32] @16, qs[128] @48. */
static void dq_q5_k(const uint8_t *b, float *y) {
    float d = rdf16(b), dmin = rdf16(b + 2);
    const uint8_t *qh = b + 16, *qs = b + 48;
    for (int sb = 0; sb < 8; sb++) {
        int sc, m;
        k_scale_min(b + 4, sb, &sc, &m);
        for (int e = 32 * sb; e < 32 * sb + 32; e++) {
            int c = e / 64, r = e % 64, l = r % 32;
            int nib = r < 32 ? (qs[32 * c + l] & 0xF) : (qs[32 * c + l] >> 4);
            int q = nib + 16 * ((qh[l] >> sb) & 1);
            y[e] = d * (float)sc * (float)q - dmin * (float)m;
        }
    }
}

/* Q6_K: ql[128] @0, qh[64] @128, scales[16] int8 @192, d @208. */
static void dq_q6_k(const uint8_t *b, float *y) {
    const uint8_t *ql = b, *qh = b + 128, *scales = b + 192;
    float d = rdf16(b + 208);
    for (int e = 0; e < 256; e++) {
        int h = e / 128, r = e % 128, g = r / 32, l = r % 32;
        int L = ql[64 * h + l + 32 * (g & 1)];
        int low4 = g < 2 ? (L & 0xF) : (L >> 4);
        int hi2 = (qh[32 * h + l] >> (2 * g)) & 3;
        int q = (low4 | hi2 << 4) - 32;
        y[e] = d * (float)(int8_t)scales[e / 16] * (float)q;
    }
}

/* ---- IQ dequantizers (see the top comment) -------------------------------------------------- */

static float sign_of(uint8_t signs, int j) {
    return (signs >> j) & 1 ? -1.0f : 1.0f;
}

static void dq_iq2_xxs(const uint8_t *b, float *y) {
    float d = rdf16(b);
    for (int e = 0; e < 256; e++) {
        int ib = e / 32, l = e % 32 / 8, j = e % 8;
        const uint8_t *run = b + 2 + 8 * ib;
        uint32_t aux = rd32(run + 4);
        float db = d * (0.5f + (float)(aux >> 28)) * 0.25f;
        uint8_t signs = vkm_iq_signs(aux >> (7 * l));
        y[e] = db * (float)vkm_iq_grid8(vkm_iq2xxs_grid, run[l], j) * sign_of(signs, j);
    }
}

static void dq_iq2_xs(const uint8_t *b, float *y) {
    float d = rdf16(b);
    for (int e = 0; e < 256; e++) {
        int ib = e / 32, l = e % 32 / 8, j = e % 8;
        uint32_t q = rd16(b + 2 + 2 * (4 * ib + l));
        int s = l < 2 ? (b[66 + ib] & 0xF) : (b[66 + ib] >> 4);
        float db = d * (0.5f + (float)s) * 0.25f;
        uint8_t signs = vkm_iq_signs(q >> 9);
        y[e] = db * (float)vkm_iq_grid8(vkm_iq2xs_grid, q & 511u, j) * sign_of(signs, j);
    }
}

static void dq_iq2_s(const uint8_t *b, float *y) {
    float d = rdf16(b);
    const uint8_t *qs = b + 2, *signs = b + 34, *qh = b + 66, *scales = b + 74;
    for (int e = 0; e < 256; e++) {
        int ib = e / 32, l = e % 32 / 8, j = e % 8;
        uint32_t idx = qs[4 * ib + l] | ((uint32_t)(qh[ib] >> (2 * l)) & 3u) << 8;
        int s = l < 2 ? (scales[ib] & 0xF) : (scales[ib] >> 4);
        float db = d * (0.5f + (float)s) * 0.25f;
        y[e] = db * (float)vkm_iq_grid8(vkm_iq2s_grid, idx, j) * sign_of(signs[4 * ib + l], j);
    }
}

static void dq_iq3_xxs(const uint8_t *b, float *y) {
    float d = rdf16(b);
    const uint8_t *qs = b + 2;
    for (int e = 0; e < 256; e++) {
        int ib = e / 32, l = e % 32 / 8, j = e % 8, h = j / 4;
        uint32_t aux = rd32(b + 66 + 4 * ib);
        float db = d * (0.5f + (float)(aux >> 28)) * 0.5f;
        uint8_t signs = vkm_iq_signs(aux >> (7 * l));
        uint32_t g = vkm_iq3xxs_grid[qs[8 * ib + 2 * l + h]];
        y[e] = db * (float)((g >> (8 * (j % 4))) & 0xFFu) * sign_of(signs, j);
    }
}

static void dq_iq3_s(const uint8_t *b, float *y) {
    float d = rdf16(b);
    const uint8_t *qs = b + 2, *qh = b + 66, *signs = b + 74, *scales = b + 106;
    for (int e = 0; e < 256; e++) {
        int ib = e / 32, l = e % 32 / 8, j = e % 8, h = j / 4;
        uint32_t idx = qs[8 * ib + 2 * l + h] | ((uint32_t)(qh[ib] >> (2 * l + h)) & 1u) << 8;
        int s = ib % 2 == 0 ? (scales[ib / 2] & 0xF) : (scales[ib / 2] >> 4);
        float db = d * (float)(1 + 2 * s);
        uint32_t g = vkm_iq3s_grid[idx];
        y[e] = db * (float)((g >> (8 * (j % 4))) & 0xFFu) * sign_of(signs[4 * ib + l], j);
    }
}

static void dq_iq1_s(const uint8_t *b, float *y) {
    float d = rdf16(b);
    const uint8_t *qs = b + 2;
    for (int e = 0; e < 256; e++) {
        int ib = e / 32, l = e % 32 / 8, j = e % 8;
        uint32_t h = rd16(b + 34 + 2 * ib);
        uint32_t idx = qs[4 * ib + l] | ((h >> (3 * l)) & 7u) << 8;
        float dl = d * (float)(2 * ((h >> 12) & 7u) + 1);
        float delta = h & 0x8000u ? -VKM_IQ1_DELTA : VKM_IQ1_DELTA;
        y[e] = dl * ((float)vkm_iq1s_value(idx, j) + delta);
    }
}

static void dq_iq1_m(const uint8_t *b, float *y) {
    const uint8_t *qs = b, *qh = b + 32;
    uint32_t sc[4];
    for (int i = 0; i < 4; i++) sc[i] = rd16(b + 48 + 2 * i);
    uint16_t dbits = (uint16_t)((sc[0] >> 12) | ((sc[1] >> 8) & 0xF0u) | ((sc[2] >> 4) & 0xF00u) |
                                (sc[3] & 0xF000u));
    float d = vkm_fp16_to_f32(dbits);
    for (int e = 0; e < 256; e++) {
        int ib = e / 32, l = e % 32 / 8, j = e % 8;
        uint32_t hb = (uint32_t)qh[2 * ib + l / 2] >> (4 * (l % 2)); /* bits 0-2 index, 3 sign */
        uint32_t idx = qs[4 * ib + l] | (hb & 7u) << 8;
        uint32_t s = (sc[ib / 2] >> (6 * (ib % 2) + 3 * (l / 2))) & 7u;
        float dl = d * (float)(2 * s + 1);
        float delta = hb & 8u ? -VKM_IQ1_DELTA : VKM_IQ1_DELTA;
        y[e] = dl * ((float)vkm_iq1s_value(idx, j) + delta);
    }
}

static void dq_iq4_nl(const uint8_t *b, float *y) {
    float d = rdf16(b);
    const uint8_t *qs = b + 2;
    for (int e = 0; e < 32; e++) {
        int j = e % 16;
        int nib = e < 16 ? (qs[j] & 0xF) : (qs[j] >> 4);
        y[e] = d * (float)vkm_iq4nl_values[nib];
    }
}

static void dq_iq4_xs(const uint8_t *b, float *y) {
    float d = rdf16(b);
    uint32_t sh = rd16(b + 2);
    const uint8_t *sl = b + 4, *qs = b + 8;
    for (int e = 0; e < 256; e++) {
        int ib = e / 32, r = e % 32, j = r % 16;
        uint32_t lo = (uint32_t)(sl[ib / 2] >> (4 * (ib % 2))) & 0xFu, hi = (sh >> (2 * ib)) & 3u;
        int s = (int)(lo | hi << 4);
        uint8_t q = qs[16 * ib + j];
        int nib = r < 16 ? (q & 0xF) : (q >> 4);
        y[e] = d * (float)(s - 32) * (float)vkm_iq4nl_values[nib];
    }
}

typedef void (*dq_block_fn)(const uint8_t *b, float *y);

static dq_block_fn dq_fn(uint32_t type) {
    switch (type) {
    case VKM_Q4_0:
        return dq_q4_0;
    case VKM_Q4_1:
        return dq_q4_1;
    case VKM_Q5_0:
        return dq_q5_0;
    case VKM_Q5_1:
        return dq_q5_1;
    case VKM_Q8_0:
        return dq_q8_0;
    case VKM_Q2_K:
        return dq_q2_k;
    case VKM_Q3_K:
        return dq_q3_k;
    case VKM_Q4_K:
        return dq_q4_k;
    case VKM_Q5_K:
        return dq_q5_k;
    case VKM_Q6_K:
        return dq_q6_k;
    case VKM_IQ2_XXS:
        return dq_iq2_xxs;
    case VKM_IQ2_XS:
        return dq_iq2_xs;
    case VKM_IQ2_S:
        return dq_iq2_s;
    case VKM_IQ3_XXS:
        return dq_iq3_xxs;
    case VKM_IQ3_S:
        return dq_iq3_s;
    case VKM_IQ1_S:
        return dq_iq1_s;
    case VKM_IQ1_M:
        return dq_iq1_m;
    case VKM_IQ4_NL:
        return dq_iq4_nl;
    case VKM_IQ4_XS:
        return dq_iq4_xs;
    default:
        return NULL;
    }
}

static bool is_float_type(uint32_t type) {
    return type == VKM_F32 || type == VKM_F16 || type == VKM_BF16;
}

/* Common argument checks; returns the block size in *block. */
static int check_args(const char *what, uint32_t type, int64_t n, uint32_t *block) {
    const vkm_qtype_info *t = vkm_qtype_get(type);
    if (!t || (!is_float_type(type) && !dq_fn(type)))
        return vkm_error(VKM_EUNSUPPORTED, "%s: type %s (%u) not supported", what,
                         vkm_qtype_name(type), type);
    if (n <= 0 || n % t->block)
        return vkm_error(VKM_EINVAL, "%s: %s row of %lld elements is not a positive multiple of %u",
                         what, t->name, (long long)n, t->block);
    *block = t->block;
    return 0;
}

size_t vkm_ref_row_bytes(uint32_t type, int64_t n) {
    if (n <= 0) return 0;
    return vkm_qtype_row_bytes(type, (uint64_t)n);
}

int vkm_ref_dequant_row(uint32_t type, const void *src, float *dst, int64_t n) {
    uint32_t block;
    int rc = check_args("dequant", type, n, &block);
    if (rc) return rc;
    const uint8_t *p = src;
    switch (type) {
    case VKM_F32:
        memcpy(dst, src, (size_t)n * sizeof(float));
        return 0;
    case VKM_F16:
        for (int64_t i = 0; i < n; i++) dst[i] = vkm_fp16_to_f32(rd16(p + 2 * i));
        return 0;
    case VKM_BF16:
        for (int64_t i = 0; i < n; i++) dst[i] = vkm_bf16_to_f32(rd16(p + 2 * i));
        return 0;
    default:
        break;
    }
    dq_block_fn fn = dq_fn(type);
    size_t bytes = vkm_qtype_get(type)->bytes;
    for (int64_t i = 0; i < n / block; i++) fn(p + (size_t)i * bytes, dst + i * block);
    return 0;
}

/* ---- quantizers ------------------------------------------------------------------------------ */

/* Smallest f16 >= v (v >= 0, finite); +inf if v exceeds the largest half. */
static uint16_t f16_up(float v) {
    uint16_t h = vkm_fp16_from_f32(v);
    if (vkm_fp16_to_f32(h) < v) h++; /* positive: the next bit pattern is the next value */
    return h;
}

/* Largest f16 <= v (v finite); -inf if v is below the most negative half. */
static uint16_t f16_down(float v) {
    uint16_t h = vkm_fp16_from_f32(v);
    if (vkm_fp16_to_f32(h) > v) {
        if (h & 0x8000u)
            h++; /* negative (incl. -0): next pattern has larger magnitude */
        else
            h--; /* positive and nonzero, since 0 > v would have the sign bit */
    }
    return h;
}

static int scale_range_error(const char *type) {
    return vkm_error(VKM_ERANGE, "quant: %s block scale does not fit in f16", type);
}

static int clampi(int v, int lo, int hi) {
    return v < lo ? lo : v > hi ? hi : v;
}

/* The value with the largest magnitude (first one on ties). */
static float signed_absmax(const float *x, int n) {
    float v = 0.0f;
    for (int i = 0; i < n; i++)
        if (fabsf(x[i]) > fabsf(v)) v = x[i];
    return v;
}

/* Symmetric 32-blocks (Q4_0, Q5_0): d = -vmax/H rounded away from zero to f16, so x/d lies in
 * [-H, H] and vmax lands on qmin; q = round(x/d) clamped to [qmin, qmax] (only +H clamps, by
 * half a step). Fills q (signed) and the f16 bits of d. */
static int quant_sym32(const char *name, const float *x, float H, int qmin, int qmax, int *q,
                       uint16_t *d_bits) {
    float vmax = signed_absmax(x, 32);
    uint16_t mag = f16_up(fabsf(vmax) / H);
    float dmag = vkm_fp16_to_f32(mag);
    if (!isfinite(dmag)) return scale_range_error(name);
    float d = vmax > 0 ? -dmag : dmag;
    *d_bits = vmax > 0 ? (uint16_t)(mag | 0x8000u) : mag;
    for (int i = 0; i < 32; i++) q[i] = d != 0.0f ? clampi((int)roundf(x[i] / d), qmin, qmax) : 0;
    return 0;
}

/* Asymmetric 32-blocks (Q4_1, Q5_1): m = min rounded down, d = (max - m)/L rounded up. */
static int quant_asym32(const char *name, const float *x, int L, int *q, uint16_t *d_bits,
                        uint16_t *m_bits) {
    float mn = x[0], mx = x[0];
    for (int i = 1; i < 32; i++) {
        mn = fminf(mn, x[i]);
        mx = fmaxf(mx, x[i]);
    }
    *m_bits = f16_down(mn);
    float m = vkm_fp16_to_f32(*m_bits);
    *d_bits = f16_up((mx - m) / (float)L);
    float d = vkm_fp16_to_f32(*d_bits);
    if (!isfinite(m) || !isfinite(d)) return scale_range_error(name);
    for (int i = 0; i < 32; i++) q[i] = d != 0.0f ? clampi((int)roundf((x[i] - m) / d), 0, L) : 0;
    return 0;
}

static int q_q4_0(const float *x, uint8_t *b) {
    int q[32];
    uint16_t d = 0;
    int rc = quant_sym32("Q4_0", x, 7.5f, -8, 7, q, &d);
    if (rc) return rc;
    wr16(b, d);
    for (int j = 0; j < 16; j++) b[2 + j] = (uint8_t)((q[j] + 8) | (q[j + 16] + 8) << 4);
    return 0;
}

static int q_q5_0(const float *x, uint8_t *b) {
    int q[32];
    uint16_t d = 0;
    int rc = quant_sym32("Q5_0", x, 15.5f, -16, 15, q, &d);
    if (rc) return rc;
    wr16(b, d);
    uint32_t qh = 0;
    for (int j = 0; j < 16; j++) {
        int lo = q[j] + 16, hi = q[j + 16] + 16;
        b[6 + j] = (uint8_t)((lo & 0xF) | (hi & 0xF) << 4);
        qh |= (uint32_t)(lo >> 4) << j | (uint32_t)(hi >> 4) << (j + 16);
    }
    wr32(b + 2, qh);
    return 0;
}

static int q_q4_1(const float *x, uint8_t *b) {
    int q[32];
    uint16_t d = 0, m = 0;
    int rc = quant_asym32("Q4_1", x, 15, q, &d, &m);
    if (rc) return rc;
    wr16(b, d);
    wr16(b + 2, m);
    for (int j = 0; j < 16; j++) b[4 + j] = (uint8_t)(q[j] | q[j + 16] << 4);
    return 0;
}

static int q_q5_1(const float *x, uint8_t *b) {
    int q[32];
    uint16_t d = 0, m = 0;
    int rc = quant_asym32("Q5_1", x, 31, q, &d, &m);
    if (rc) return rc;
    wr16(b, d);
    wr16(b + 2, m);
    uint32_t qh = 0;
    for (int j = 0; j < 16; j++) {
        b[8 + j] = (uint8_t)((q[j] & 0xF) | (q[j + 16] & 0xF) << 4);
        qh |= (uint32_t)(q[j] >> 4) << j | (uint32_t)(q[j + 16] >> 4) << (j + 16);
    }
    wr32(b + 4, qh);
    return 0;
}

static int q_q8_0(const float *x, uint8_t *b) {
    float amax = fabsf(signed_absmax(x, 32));
    uint16_t dh = f16_up(amax / 127.0f);
    float d = vkm_fp16_to_f32(dh);
    if (!isfinite(d)) return scale_range_error("Q8_0");
    wr16(b, dh);
    for (int i = 0; i < 32; i++) {
        int q = d != 0.0f ? clampi((int)roundf(x[i] / d), -127, 127) : 0;
        b[2 + i] = (uint8_t)(int8_t)q;
    }
    return 0;
}

/* Asymmetric K-quant super-block of 256 (Q2_K, Q4_K, Q5_K): nsub sub-blocks of 256/nsub with
 * x = d*sc*q - dmin*mi, q in 0..L, sc and mi in 0..smax. See the top comment. */
static int quant_kasym(const char *name, const float *x, int nsub, int L, int smax,
                       uint16_t *d_bits, uint16_t *dmin_bits, int *sc, int *mi, int *q) {
    int len = 256 / nsub;
    float lo[16], hi[16], maxneg = 0.0f;
    for (int s = 0; s < nsub; s++) {
        lo[s] = 0.0f; /* the offset can only move the range down: include 0 */
        hi[s] = x[s * len];
        for (int i = s * len; i < (s + 1) * len; i++) {
            lo[s] = fminf(lo[s], x[i]);
            hi[s] = fmaxf(hi[s], x[i]);
        }
        maxneg = fmaxf(maxneg, -lo[s]);
    }
    *dmin_bits = f16_up(maxneg / (float)smax);
    float dmin = vkm_fp16_to_f32(*dmin_bits);
    if (!isfinite(dmin)) return scale_range_error(name);
    float off[16], span[16], maxspan = 0.0f;
    for (int s = 0; s < nsub; s++) {
        mi[s] = dmin > 0.0f ? clampi((int)ceilf(-lo[s] / dmin), 0, smax) : 0;
        off[s] = dmin * (float)mi[s]; /* >= -lo[s]: q = 0 reaches below the minimum */
        span[s] = (hi[s] + off[s]) / (float)L;
        maxspan = fmaxf(maxspan, span[s]);
    }
    *d_bits = f16_up(maxspan / (float)smax);
    float d = vkm_fp16_to_f32(*d_bits);
    if (!isfinite(d)) return scale_range_error(name);
    for (int s = 0; s < nsub; s++) {
        sc[s] = d > 0.0f ? clampi((int)ceilf(span[s] / d), 0, smax) : 0;
        float step = d * (float)sc[s];
        for (int i = s * len; i < (s + 1) * len; i++)
            q[i] = step > 0.0f ? clampi((int)roundf((x[i] + off[s]) / step), 0, L) : 0;
    }
    return 0;
}

/* Symmetric K-quant super-block of 256 in 16 sub-blocks of 16 (Q3_K, Q6_K): x = d*s*q with
 * q in qmin..qmax (qmin = -qmax-1) and s in -smax-1..smax; H = qmax + 0.5. */
static int quant_ksym(const char *name, const float *x, int qmax, int smax, uint16_t *d_bits,
                      int *s, int *q) {
    float H = (float)qmax + 0.5f, sub[16], maxsub = 0.0f;
    for (int k = 0; k < 16; k++) {
        sub[k] = -signed_absmax(x + 16 * k, 16) / H;
        maxsub = fmaxf(maxsub, fabsf(sub[k]));
    }
    *d_bits = f16_up(maxsub / (float)smax);
    float d = vkm_fp16_to_f32(*d_bits);
    if (!isfinite(d)) return scale_range_error(name);
    for (int k = 0; k < 16; k++) {
        int mag = d > 0.0f ? clampi((int)ceilf(fabsf(sub[k]) / d), 0, smax) : 0;
        s[k] = sub[k] < 0.0f ? -mag : mag;
        float step = d * (float)s[k];
        for (int i = 16 * k; i < 16 * k + 16; i++)
            q[i] = step != 0.0f ? clampi((int)roundf(x[i] / step), -qmax - 1, qmax) : 0;
    }
    return 0;
}

static int q_q2_k(const float *x, uint8_t *b) {
    int sc[16], mi[16], q[256];
    uint16_t d = 0, dmin = 0;
    int rc = quant_kasym("Q2_K", x, 16, 3, 15, &d, &dmin, sc, mi, q);
    if (rc) return rc;
    memset(b, 0, 84);
    for (int s = 0; s < 16; s++) b[s] = (uint8_t)(sc[s] | mi[s] << 4);
    for (int e = 0; e < 256; e++) {
        int h = e / 128, r = e % 128, j = r / 32, l = r % 32;
        b[16 + 32 * h + l] |= (uint8_t)(q[e] << (2 * j));
    }
    wr16(b + 80, d);
    wr16(b + 82, dmin);
    return 0;
}

static int q_q3_k(const float *x, uint8_t *b) {
    int s[16], q[256];
    uint16_t d = 0;
    int rc = quant_ksym("Q3_K", x, 3, 31, &d, s, q);
    if (rc) return rc;
    memset(b, 0, 110);
    uint8_t *hmask = b, *qs = b + 32, *sc = b + 96;
    for (int j = 0; j < 16; j++) {
        int u = s[j] + 32; /* 0..63 */
        if (j < 8)
            sc[j] |= (uint8_t)(u & 0xF);
        else
            sc[j - 8] |= (uint8_t)((u & 0xF) << 4);
        sc[8 + j % 4] |= (uint8_t)((u >> 4) << (2 * (j / 4)));
    }
    for (int e = 0; e < 256; e++) {
        int h = e / 128, r = e % 128, j = r / 32, l = r % 32;
        int u = q[e] + 4; /* 0..7: bit 2 set <=> hbit (no -4) */
        qs[32 * h + l] |= (uint8_t)((u & 3) << (2 * j));
        hmask[l] |= (uint8_t)((u >> 2) << (4 * h + j));
    }
    wr16(b + 108, d);
    return 0;
}

/* Packs 8 six-bit (scale, min) pairs into the 12 bytes Q4_K/Q5_K use (inverse of k_scale_min). */
static void k_pack_scale_min(uint8_t *b, const int *sc, const int *m) {
    memset(b, 0, 12);
    for (int j = 0; j < 4; j++) {
        b[j] = (uint8_t)(sc[j] | (sc[j + 4] >> 4) << 6);
        b[j + 4] = (uint8_t)(m[j] | (m[j + 4] >> 4) << 6);
        b[j + 8] = (uint8_t)((sc[j + 4] & 0xF) | (m[j + 4] & 0xF) << 4);
    }
}

static int q_q4_k(const float *x, uint8_t *b) {
    int sc[8], mi[8], q[256];
    uint16_t d = 0, dmin = 0;
    int rc = quant_kasym("Q4_K", x, 8, 15, 63, &d, &dmin, sc, mi, q);
    if (rc) return rc;
    memset(b, 0, 144);
    wr16(b, d);
    wr16(b + 2, dmin);
    k_pack_scale_min(b + 4, sc, mi);
    for (int e = 0; e < 256; e++) {
        int c = e / 64, r = e % 64, l = r % 32;
        b[16 + 32 * c + l] |= (uint8_t)(r < 32 ? q[e] : q[e] << 4);
    }
    return 0;
}

static int q_q5_k(const float *x, uint8_t *b) {
    int sc[8], mi[8], q[256];
    uint16_t d = 0, dmin = 0;
    int rc = quant_kasym("Q5_K", x, 8, 31, 63, &d, &dmin, sc, mi, q);
    if (rc) return rc;
    memset(b, 0, 176);
    wr16(b, d);
    wr16(b + 2, dmin);
    k_pack_scale_min(b + 4, sc, mi);
    for (int e = 0; e < 256; e++) {
        int c = e / 64, r = e % 64, l = r % 32, sb = e / 32;
        int nib = q[e] & 0xF;
        b[48 + 32 * c + l] |= (uint8_t)(r < 32 ? nib : nib << 4);
        b[16 + l] |= (uint8_t)((q[e] >> 4) << sb);
    }
    return 0;
}

static int q_q6_k(const float *x, uint8_t *b) {
    int s[16], q[256];
    uint16_t d = 0;
    int rc = quant_ksym("Q6_K", x, 31, 127, &d, s, q);
    if (rc) return rc;
    memset(b, 0, 210);
    uint8_t *ql = b, *qh = b + 128;
    for (int e = 0; e < 256; e++) {
        int h = e / 128, r = e % 128, g = r / 32, l = r % 32;
        int u = q[e] + 32; /* 0..63 */
        ql[64 * h + l + 32 * (g & 1)] |= (uint8_t)(g < 2 ? (u & 0xF) : (u & 0xF) << 4);
        qh[32 * h + l] |= (uint8_t)((u >> 4) << (2 * g));
    }
    for (int k = 0; k < 16; k++) b[192 + k] = (uint8_t)(int8_t)s[k];
    wr16(b + 208, d);
    return 0;
}

/* The IQ4 levels (kvalues_iq4nl): the index of the one nearest to v (the first on ties). */
static int iq4_nearest(float v) {
    int best = 0;
    for (int i = 1; i < 16; i++)
        if (fabsf(v - (float)vkm_iq4nl_values[i]) < fabsf(v - (float)vkm_iq4nl_values[best]))
            best = i;
    return best;
}

/* 32 elements at scale d as IQ4 nibbles into qs[16] (Q4_0's order); d == 0 gives level 1 x 0. */
static void iq4_nibbles(const float *x, float d, uint8_t *qs) {
    int q[32];
    for (int i = 0; i < 32; i++) q[i] = d != 0.0f ? iq4_nearest(x[i] / d) : 8;
    for (int j = 0; j < 16; j++) qs[j] = (uint8_t)(q[j] | q[j + 16] << 4);
}

/* IQ4_NL: d = -vmax/127 rounded away from zero, so the extreme value lands on the -127 level
 * and x/d lies in [-127, 127]; each element takes the nearest level (the top clamps to 113). */
static int q_iq4_nl(const float *x, uint8_t *b) {
    const float vmax = signed_absmax(x, 32);
    const uint16_t mag = f16_up(fabsf(vmax) / 127.0f);
    const float dmag = vkm_fp16_to_f32(mag);
    if (!isfinite(dmag)) return scale_range_error("IQ4_NL");
    wr16(b, vmax > 0 ? (uint16_t)(mag | 0x8000u) : mag);
    iq4_nibbles(x, vmax > 0 ? -dmag : dmag, b + 2);
    return 0;
}

/* IQ4_XS: per run of 32 the wanted scale sub = -vmax/127 (as IQ4_NL), d = max |sub| / 31 rounded
 * up to f16, the run's 6-bit scale s = round(sub / d) + 32 (in 1..63); elements as IQ4_NL's at
 * d (s - 32). */
static int q_iq4_xs(const float *x, uint8_t *b) {
    float sub[8], amax = 0.0f;
    for (int ib = 0; ib < 8; ib++) {
        sub[ib] = -signed_absmax(x + 32 * ib, 32) / 127.0f;
        amax = fmaxf(amax, fabsf(sub[ib]));
    }
    const uint16_t dh = f16_up(amax / 31.0f);
    const float d = vkm_fp16_to_f32(dh);
    if (!isfinite(d)) return scale_range_error("IQ4_XS");
    wr16(b, dh);
    uint32_t sh = 0;
    memset(b + 4, 0, 4);
    for (int ib = 0; ib < 8; ib++) {
        const int ls = d != 0.0f ? clampi((int)roundf(sub[ib] / d), -31, 31) : 0;
        const uint32_t sc = (uint32_t)(ls + 32);
        b[4 + ib / 2] |= (uint8_t)((sc & 15u) << (4 * (ib % 2)));
        sh |= (sc >> 4) << (2 * ib);
        iq4_nibbles(x + 32 * ib, d * (float)ls, b + 8 + 16 * ib);
    }
    wr16(b + 2, (uint16_t)sh);
    return 0;
}

typedef int (*q_block_fn)(const float *x, uint8_t *b);

static q_block_fn q_fn(uint32_t type) {
    switch (type) {
    case VKM_Q4_0:
        return q_q4_0;
    case VKM_Q4_1:
        return q_q4_1;
    case VKM_Q5_0:
        return q_q5_0;
    case VKM_Q5_1:
        return q_q5_1;
    case VKM_Q8_0:
        return q_q8_0;
    case VKM_Q2_K:
        return q_q2_k;
    case VKM_Q3_K:
        return q_q3_k;
    case VKM_Q4_K:
        return q_q4_k;
    case VKM_Q5_K:
        return q_q5_k;
    case VKM_Q6_K:
        return q_q6_k;
    case VKM_IQ4_NL:
        return q_iq4_nl;
    case VKM_IQ4_XS:
        return q_iq4_xs;
    default:
        return NULL;
    }
}

int vkm_ref_quant_row(uint32_t type, const float *src, void *dst, int64_t n) {
    uint32_t block;
    int rc = check_args("quant", type, n, &block);
    if (rc) return rc;
    uint8_t *p = dst;
    switch (type) {
    case VKM_F32:
        memcpy(dst, src, (size_t)n * sizeof(float));
        return 0;
    case VKM_F16:
        for (int64_t i = 0; i < n; i++) wr16(p + 2 * i, vkm_fp16_from_f32(src[i]));
        return 0;
    case VKM_BF16:
        for (int64_t i = 0; i < n; i++) wr16(p + 2 * i, vkm_bf16_from_f32(src[i]));
        return 0;
    default:
        break;
    }
    q_block_fn fn = q_fn(type);
    if (!fn)
        return vkm_error(VKM_EUNSUPPORTED, "quant: type %s (%u) has no quantizer",
                         vkm_qtype_name(type), type);
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(src[i]))
            return vkm_error(VKM_EINVAL, "quant: %s: element %lld is not finite",
                             vkm_qtype_name(type), (long long)i);
    size_t bytes = vkm_qtype_get(type)->bytes;
    for (int64_t i = 0; i < n / block; i++) {
        rc = fn(src + i * block, p + (size_t)i * bytes);
        if (rc) return rc;
    }
    return 0;
}

/* Sets the f16 scale of an IQ block (IQ1_M: the nibbles at bits 12-15 of its 4 scale words). */
static void iq_set_d(uint32_t type, uint8_t *b, uint16_t d) {
    if (type != VKM_IQ1_M) {
        wr16(b, d);
        return;
    }
    for (int i = 0; i < 4; i++)
        b[49 + 2 * i] = (uint8_t)((b[49 + 2 * i] & 0x0F) | ((d >> (4 * i)) & 0xF) << 4);
}

int vkm_ref_random_iq_row(uint32_t type, uint64_t *state, float rms, void *dst, int64_t n) {
    uint32_t block;
    int rc = check_args("random IQ row", type, n, &block);
    if (rc) return rc;
    const bool iq = type == VKM_IQ1_S || type == VKM_IQ1_M || type == VKM_IQ2_XXS ||
                    type == VKM_IQ2_XS || type == VKM_IQ2_S || type == VKM_IQ3_XXS ||
                    type == VKM_IQ3_S || type == VKM_IQ4_NL || type == VKM_IQ4_XS;
    if (!iq || !(rms > 0.0f) || !isfinite(rms))
        return vkm_error(iq ? VKM_EINVAL : VKM_EUNSUPPORTED, "random IQ row: type %s, rms %g",
                         vkm_qtype_name(type), (double)rms);
    const size_t bytes = vkm_qtype_get(type)->bytes;
    dq_block_fn fn = dq_fn(type);
    float y[256];
    for (int64_t i = 0; i < n / block; i++) {
        uint8_t *b = (uint8_t *)dst + (size_t)i * bytes;
        for (size_t j = 0; j < bytes; j++) {
            uint64_t x = *state;
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *state = x;
            b[j] = (uint8_t)(x >> 32);
        }
        iq_set_d(type, b, 0x3C00); /* d = 1: the values are linear in d */
        fn(b, y);
        double s = 0;
        for (uint32_t j = 0; j < block; j++) s += (double)y[j] * y[j];
        const double r = sqrt(s / block);
        iq_set_d(type, b, vkm_fp16_from_f32(r > 0 ? (float)(rms / r) : 0.0f));
    }
    return 0;
}

/* ---- activation quantizers (spec §4.8) ------------------------------------------------------ */

static int check_act(const char *what, const float *x, int64_t n, int64_t block) {
    if (n <= 0 || n % block)
        return vkm_error(VKM_EINVAL, "%s: %lld elements is not a positive multiple of %lld", what,
                         (long long)n, (long long)block);
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(x[i]))
            return vkm_error(VKM_EINVAL, "%s: element %lld is not finite", what, (long long)i);
    return 0;
}

int vkm_ref_quant_q8_0_act(const float *x, int8_t *q, float *d, int64_t n) {
    int rc = check_act("quant_q8_0_act", x, n, 32);
    if (rc) return rc;
    for (int64_t b = 0; b < n / 32; b++) {
        const float *xb = x + 32 * b;
        float amax = 0.0f;
        for (int i = 0; i < 32; i++) amax = fmaxf(amax, fabsf(xb[i]));
        float db = amax / 127.0f;
        float id = db != 0.0f ? 1.0f / db : 0.0f;
        d[b] = vkm_fp16_round(db);
        for (int i = 0; i < 32; i++) q[32 * b + i] = (int8_t)roundf(xb[i] * id);
    }
    return 0;
}

int vkm_ref_quant_q8_k_act(const float *x, int8_t *q, float *d, int64_t n) {
    int rc = check_act("quant_q8_k_act", x, n, 256);
    if (rc) return rc;
    for (int64_t b = 0; b < n / 256; b++) {
        const float *xb = x + 256 * b;
        float max = signed_absmax(xb, 256);
        if (max == 0.0f) {
            d[b] = 0.0f;
            memset(q + 256 * b, 0, 256);
            continue;
        }
        float iscale = -127.0f / max;
        for (int i = 0; i < 256; i++) {
            int v = (int)rintf(iscale * xb[i]); /* round half to even, as llama.cpp's */
            q[256 * b + i] = (int8_t)(v < 127 ? v : 127);
        }
        d[b] = 1.0f / iscale;
    }
    return 0;
}
