/* test_ref_quant.c - the quantized-weight reference: hand-built blocks for every type, quantizer
 * round trips with stated error bounds, f16/bf16 conversions, reference matmul (plain and
 * indexed), activation quantizers, and error paths.
 *
 * Expected values in the hand-built block tests are worked out by hand from the spec formulas
 * (the arithmetic is in the comments), not by calling code under test. */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "fp16.h"
#include "qtype.h"
#include "ref_matmul.h"
#include "ref_quant.h"

/* ---- helpers ----------------------------------------------------------------------------------
 */

static uint64_t g_rng = 0x9E3779B97F4A7C15ull;
static uint64_t xorshift(void) {
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return g_rng;
}
/* uniform in [-1, 1) */
static float frand(void) {
    return (float)((double)(xorshift() >> 11) / 9007199254740992.0 * 2 - 1);
}

/* Writes an exactly representable f16 value, little-endian. */
static void put_f16(uint8_t *p, float v) {
    uint16_t h = vkm_fp16_from_f32(v);
    VKM_ASSERT(vkm_fp16_to_f32(h) == v);
    p[0] = (uint8_t)(h & 0xff);
    p[1] = (uint8_t)(h >> 8);
}

static float bits_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}
static uint32_t f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

/* Dequantizes one block of `type` into out[] (256 floats max). */
static void dq(uint32_t type, const uint8_t *b, float *out) {
    int64_t n = vkm_qtype_get(type)->block;
    CHECK_OK(vkm_ref_dequant_row(type, b, out, n));
}

/* ---- (a) hand-built blocks --------------------------------------------------------------------
 */

static void test_float_types(void) {
    float y[3];
    uint8_t f16[6] = {0x00, 0x3C, 0x00, 0xC0, 0x01, 0x00}; /* 1.0, -2.0, 2^-24 */
    CHECK_OK(vkm_ref_dequant_row(VKM_F16, f16, y, 3));
    CHECK(y[0] == 1.0f && y[1] == -2.0f && y[2] == ldexpf(1, -24));
    uint8_t bf16[6] = {0x80, 0x3F, 0x40, 0xC0, 0x80, 0x7F}; /* 1.0, -3.0, +inf */
    CHECK_OK(vkm_ref_dequant_row(VKM_BF16, bf16, y, 3));
    CHECK(y[0] == 1.0f && y[1] == -3.0f && isinf(y[2]) && y[2] > 0);
    float f[3] = {1.5f, -0.0f, 3e38f};
    CHECK_OK(vkm_ref_dequant_row(VKM_F32, f, y, 3));
    CHECK(memcmp(f, y, sizeof f) == 0);
}

static void test_q4_0_block(void) {
    uint8_t b[18] = {0};
    float y[32];
    put_f16(b, 0.5f);
    b[2 + 3] = 0xA2;  /* e3: lo nibble 2 -> 0.5*(2-8) = -3; e19: hi nibble 10 -> 0.5*2 = 1 */
    b[2 + 15] = 0xF0; /* e15: 0 -> -4; e31: 15 -> 3.5 */
    dq(VKM_Q4_0, b, y);
    CHECK(y[3] == -3.0f && y[19] == 1.0f && y[15] == -4.0f && y[31] == 3.5f);
    CHECK(y[0] == -4.0f && y[16] == -4.0f); /* nibble 0 everywhere else */
}

static void test_q4_1_block(void) {
    uint8_t b[20] = {0};
    float y[32];
    put_f16(b, 0.25f);
    put_f16(b + 2, -1.0f);
    b[4 + 0] = 0x3C;  /* e0: 12 -> 0.25*12 - 1 = 2; e16: 3 -> -0.25 */
    b[4 + 15] = 0xF1; /* e15: 1 -> -0.75; e31: 15 -> 2.75 */
    dq(VKM_Q4_1, b, y);
    CHECK(y[0] == 2.0f && y[16] == -0.25f && y[15] == -0.75f && y[31] == 2.75f && y[7] == -1.0f);
}

/* Shared Q5_0/Q5_1 bits: qh bits 2, 18, 19, 31 set (bytes 04 00 0C 80); qs[2] = 0x53,
 * qs[15] = 0x7F, qs[3] = 0. Then 5-bit q: e2 = 3|16 = 19, e18 = 5|16 = 21, e15 = 15 (bit 15
 * clear), e31 = 7|16 = 23, e3 = 0 (bit 3 clear), e19 = 0|16 = 16 (bit 19 set). */
static void q5_fill(uint8_t *qh, uint8_t *qs) {
    qh[0] = 0x04;
    qh[1] = 0x00;
    qh[2] = 0x0C;
    qh[3] = 0x80;
    qs[2] = 0x53;
    qs[15] = 0x7F;
}

static void test_q5_0_block(void) {
    uint8_t b[22] = {0};
    float y[32];
    put_f16(b, 0.5f);
    q5_fill(b + 2, b + 6);
    dq(VKM_Q5_0, b, y);
    /* x = 0.5*(q - 16) */
    CHECK(y[2] == 1.5f && y[18] == 2.5f && y[15] == -0.5f && y[31] == 3.5f);
    CHECK(y[3] == -8.0f && y[19] == 0.0f);
}

static void test_q5_1_block(void) {
    uint8_t b[24] = {0};
    float y[32];
    put_f16(b, 0.5f);
    put_f16(b + 2, 1.0f);
    q5_fill(b + 4, b + 8);
    dq(VKM_Q5_1, b, y);
    /* x = 0.5*q + 1 */
    CHECK(y[2] == 10.5f && y[18] == 11.5f && y[15] == 8.5f && y[31] == 12.5f);
    CHECK(y[3] == 1.0f && y[19] == 9.0f);
}

static void test_q8_0_block(void) {
    uint8_t b[34] = {0};
    float y[32];
    put_f16(b, 0.25f);
    b[2 + 0] = 0x80;  /* -128 -> -32 */
    b[2 + 31] = 0x7F; /* 127 -> 31.75 */
    b[2 + 5] = 0xFD;  /* -3 -> -0.75 */
    dq(VKM_Q8_0, b, y);
    CHECK(y[0] == -32.0f && y[31] == 31.75f && y[5] == -0.75f && y[1] == 0.0f);
}

static void test_q2_k_block(void) {
    uint8_t b[84] = {0};
    float y[256];
    /* scales @0, qs @16, d @80, dmin @82 */
    put_f16(b + 80, 0.5f);
    put_f16(b + 82, 0.25f);
    b[13] = 0x37;      /* sb 13: sc 7, m 3 */
    b[9] = 0x52;       /* sb 9: sc 2, m 5 */
    b[15] = 0x1F;      /* sb 15: sc 15, m 1 */
    b[1] = 0x04;       /* sb 1: sc 4, m 0 */
    b[16 + 50] = 0xE0; /* qs[50]: bits 0-1 = 0, 2-3 = 0, 4-5 = 2, 6-7 = 3 */
    b[16 + 18] = 0x01; /* qs[18]: bits 0-1 = 1 */
    dq(VKM_Q2_K, b, y);
    /* e210: h1 r82 j2 l18 sb13 -> q = (qs[50]>>4)&3 = 2: 0.5*7*2 - 0.25*3 = 6.25 */
    CHECK(y[210] == 6.25f);
    /* e146: h1 j0 l18 sb9 -> q = 0: -0.25*5 = -1.25 */
    CHECK(y[146] == -1.25f);
    /* e242: h1 j3 l18 sb15 -> q = 3: 0.5*15*3 - 0.25 = 22.25 */
    CHECK(y[242] == 22.25f);
    /* e18: h0 j0 l18 sb1 -> q = qs[18]&3 = 1: 0.5*4*1 = 2 */
    CHECK(y[18] == 2.0f);
    /* e50: h0 r50 j1 l18 sb3 -> q = (qs[18]>>2)&3 = 0, sc 0 m 0: 0 */
    CHECK(y[50] == 0.0f);
}

static void test_q3_k_block(void) {
    uint8_t b[110] = {0};
    float y[256];
    uint8_t *hmask = b, *qs = b + 32, *sc = b + 96;
    put_f16(b + 108, 0.5f);
    /* s_12 = 13: u = 45 = 0b10'1101 -> low4 0xD in sc[4]>>4, hi2 2 in sc[8] bits 6-7.
     * s_4 = -9: u = 23 = 0b01'0111 -> low4 7 in sc[4]&0xF, hi2 1 in sc[8] bits 2-3.
     * s_8: low4 = sc[0]>>4 = 0, hi2 = sc[8] bits 0-1 = 0 -> -32. */
    sc[4] = 0xD7;
    sc[8] = 0x84;
    qs[37] = 0x20;   /* qs[32*1+5]: bits 4-5 = 2 (j=2), bits 0-1 = 0 (j=0) */
    hmask[5] = 0x40; /* bit 6 = 4h+j for h=1, j=2 */
    qs[5] = 0x30;    /* qs[32*0+5]: bits 4-5 = 3 */
    dq(VKM_Q3_K, b, y);
    /* e197: h1 r69 j2 l5 sb12; q2 = 2, hbit = 1 -> q = 2: 0.5*13*2 = 13 */
    CHECK(y[197] == 13.0f);
    /* e133: h1 j0 l5 sb8; q2 = 0, hbit = bit 4 = 0 -> q = -4: 0.5*-32*-4 = 64 */
    CHECK(y[133] == 64.0f);
    /* e69: h0 j2 l5 sb4; q2 = 3, hbit = bit 2 = 0 -> q = -1: 0.5*-9*-1 = 4.5 */
    CHECK(y[69] == 4.5f);
}

/* Q4_K/Q5_K scales: sc_2 = 10, m_2 = 7, sc_6 = 37 (0x25), m_6 = 19 (0x13), sc_7 = 1, m_7 = 2.
 * j=6 (>= 4): sc = (b[10]&0xF) | (b[2]>>6)<<4 -> b[10] lo 5, b[2] top 2;
 *             m = (b[10]>>4) | (b[6]>>6)<<4 -> b[10] hi 3, b[6] top 1.
 * j=7: sc = b[11]&0xF | (b[3]>>6)<<4 = 1, m = b[11]>>4 | (b[7]>>6)<<4 = 2. */
static void k_scales_fill(uint8_t *s) {
    s[2] = 0x8A; /* top bits 2, low6 = sc_2 = 10 */
    s[6] = 0x47; /* top bits 1, low6 = m_2 = 7 */
    s[10] = 0x35;
    s[11] = 0x21;
}

static void test_q4_k_block(void) {
    uint8_t b[144] = {0};
    float y[256];
    put_f16(b, 0.5f);
    put_f16(b + 2, 0.25f);
    k_scales_fill(b + 4);
    b[16 + 104] = 0x9C; /* qs[32*3+8]: lo 12 (e200), hi 9 (e232) */
    b[16 + 40] = 0x03;  /* qs[32*1+8]: lo 3 (e72) */
    dq(VKM_Q4_K, b, y);
    /* e200: c3 r8 sb6: 0.5*37*12 - 0.25*19 = 217.25 */
    CHECK(y[200] == 217.25f);
    /* e232: c3 r40 sb7: 0.5*1*9 - 0.25*2 = 4 */
    CHECK(y[232] == 4.0f);
    /* e72: c1 r8 sb2: 0.5*10*3 - 0.25*7 = 13.25 */
    CHECK(y[72] == 13.25f);
    /* e0: sb0 sc 0 m 0 -> 0 */
    CHECK(y[0] == 0.0f);
}

static void test_q5_k_block(void) {
    uint8_t b[176] = {0};
    float y[256];
    put_f16(b, 0.5f);
    put_f16(b + 2, 0.25f);
    k_scales_fill(b + 4);
    b[16 + 8] = 0x44;   /* qh[8]: bit 6 (sb6, e200) and bit 2 (sb2, e72); bit 7 (e232) clear */
    b[48 + 104] = 0x9C; /* qs @48 */
    b[48 + 40] = 0x03;
    dq(VKM_Q5_K, b, y);
    /* e200: q = 12 + 16 = 28: 0.5*37*28 - 4.75 = 513.25 */
    CHECK(y[200] == 513.25f);
    /* e72: q = 3 + 16 = 19: 0.5*10*19 - 1.75 = 93.25 */
    CHECK(y[72] == 93.25f);
    /* e232: q = 9: 4 */
    CHECK(y[232] == 4.0f);
}

static void test_q6_k_block(void) {
    uint8_t b[210] = {0};
    float y[256];
    uint8_t *ql = b, *qh = b + 128;
    int8_t *scales = (int8_t *)(b + 192);
    put_f16(b + 208, 0.5f);
    ql[102] = 0xA5; /* 64h + l + 32 for h1 l6 g odd: lo 5 (g1, e166), hi 10 (g3, e230) */
    ql[70] = 0x3F;  /* 64h + l for h1 l6 g even: hi 3 (g2, e198) */
    qh[38] = 0xB0;  /* qh[32+6]: g1 bits 2-3 = 0, g2 bits 4-5 = 3, g3 bits 6-7 = 2 */
    ql[6] = 0x01;   /* e6: h0 g0 l6: lo 1 */
    qh[6] = 0x01;   /* hi2 = 1 */
    scales[14] = -3;
    scales[10] = 2;
    scales[12] = 4;
    scales[0] = 1;
    dq(VKM_Q6_K, b, y);
    /* e230: q = (10 | 2<<4) - 32 = 10: 0.5*-3*10 = -15 */
    CHECK(y[230] == -15.0f);
    /* e166: q = 5 - 32 = -27: 0.5*2*-27 = -27 */
    CHECK(y[166] == -27.0f);
    /* e198: q = (3 | 3<<4) - 32 = 19: 0.5*4*19 = 38 */
    CHECK(y[198] == 38.0f);
    /* e6: q = (1 | 1<<4) - 32 = -15: 0.5*1*-15 = -7.5 */
    CHECK(y[6] == -7.5f);
}

/* ---- (b) quantizer round trips ----------------------------------------------------------------
 */

/* The worst-case |error| the quantizer guarantees for one block (see ref_quant.c's top comment:
 * all scales are rounded up, so nothing clips and the error is at most half a step).
 * A = max|x| over the block, lo/hi = min/max over the block, R = max(hi,0) - min(lo,0).
 * Factor 1.01 and + 1e-6*A absorb f16 rounding of scales (<= 2^-10 relative) and float math. */
static double block_bound(uint32_t type, const float *x) {
    int n = (int)vkm_qtype_get(type)->block;
    double A = 0, lo = x[0], hi = x[0];
    for (int i = 0; i < n; i++) {
        A = fmax(A, fabs(x[i]));
        lo = fmin(lo, x[i]);
        hi = fmax(hi, x[i]);
    }
    double R = fmax(hi, 0) - fmin(lo, 0), b;
    switch (type) {
    case VKM_F32:
        return 0;
    case VKM_F16: /* half an ulp; subnormal halves are 2^-24 apart */
        return A * ldexp(1, -11) + ldexp(1, -25);
    case VKM_BF16:
        return A * ldexp(1, -8);
    case VKM_Q8_0:
        b = A / 254;
        break; /* d = A/127, half a step */
    case VKM_Q4_0:
        b = A / 15;
        break; /* d = A/7.5 */
    case VKM_Q5_0:
        b = A / 31;
        break; /* d = A/15.5 */
    /* m = min rounded down to f16 (<= |min|/1024 below), d = (max - m)/levels */
    case VKM_Q4_1:
        b = (hi - lo + fabs(lo) / 1024) / 30;
        break;
    case VKM_Q5_1:
        b = (hi - lo + fabs(lo) / 1024) / 62;
        break;
    /* offset and step both rounded up to a multiple of a scale that is max/smax */
    case VKM_Q2_K:
        b = R / 6 * (16.0 / 15) * (16.0 / 15);
        break;
    case VKM_Q4_K:
        b = R / 30 * (64.0 / 63) * (64.0 / 63);
        break;
    case VKM_Q5_K:
        b = R / 62 * (64.0 / 63) * (64.0 / 63);
        break;
    /* step >= A_sub/(qmax+0.5), rounded up to a multiple of d = max step / smax */
    case VKM_Q3_K:
        b = A / 7 * (32.0 / 31);
        break;
    case VKM_Q6_K:
        b = A / 63 * (128.0 / 127);
        break;
    default:
        return 0;
    }
    return b * 1.01 + 1e-6 * A;
}

static const uint32_t k_all_types[] = {VKM_F32,  VKM_F16,  VKM_BF16, VKM_Q4_0, VKM_Q4_1,
                                       VKM_Q5_0, VKM_Q5_1, VKM_Q8_0, VKM_Q2_K, VKM_Q3_K,
                                       VKM_Q4_K, VKM_Q5_K, VKM_Q6_K};
#define N_TYPES (sizeof k_all_types / sizeof k_all_types[0])

/* Fills x[n] with a mix: blocks of varying magnitude, offset blocks (all positive / all
 * negative), zero runs, single outliers. */
static void fill_test_data(float *x, int64_t n, int variant) {
    for (int64_t i = 0; i < n; i++) x[i] = frand();
    for (int64_t b = 0; b < n / 256; b++) {
        float *xb = x + 256 * b;
        float scale = powf(10.0f, 2.0f * frand()); /* 0.01 .. 100 */
        for (int i = 0; i < 256; i++) xb[i] *= scale;
        switch ((b + variant) % 6) {
        case 1:
            for (int i = 0; i < 256; i++) xb[i] = fabsf(xb[i]) + 2 * scale; /* positive */
            break;
        case 2:
            for (int i = 0; i < 256; i++) xb[i] = -fabsf(xb[i]) - scale; /* negative */
            break;
        case 3:
            for (int i = 40; i < 100; i++) xb[i] = 0; /* zero run across sub-blocks */
            break;
        case 4:
            xb[xorshift() % 256] = 30 * scale;
            break; /* outlier */
        case 5:
            for (int i = 0; i < 256; i++) xb[i] = 0.5f * scale * (float)(i % 16) / 15; /* ramps */
            break;
        default:
            break;
        }
    }
}

static void test_round_trips(void) {
    enum { N = 256 * 24 };
    float *x = malloc(N * sizeof *x), *y = malloc(N * sizeof *y);
    uint8_t *q = malloc(vkm_ref_row_bytes(VKM_F32, N));
    for (size_t t = 0; t < N_TYPES; t++) {
        uint32_t type = k_all_types[t];
        int block = (int)vkm_qtype_get(type)->block;
        for (int variant = 0; variant < 3; variant++) {
            fill_test_data(x, N, variant);
            CHECK_OK(vkm_ref_quant_row(type, x, q, N));
            CHECK_OK(vkm_ref_dequant_row(type, q, y, N));
            int bad = 0;
            double sum_err = 0, sum_bound = 0;
            for (int64_t b = 0; b < N / block; b++) {
                double bound = block_bound(type, x + b * block);
                for (int i = 0; i < block; i++) {
                    double err = fabs((double)y[b * block + i] - x[b * block + i]);
                    sum_err += err;
                    sum_bound += bound;
                    if (!(err <= bound)) {
                        if (!bad++)
                            fprintf(stderr, "%s: elem %lld: x %g y %g err %g bound %g\n",
                                    vkm_qtype_name(type), (long long)(b * block + i),
                                    x[b * block + i], y[b * block + i], err, bound);
                    }
                }
            }
            CHECK_MSG(bad == 0, "%s variant %d: %d elements over the bound", vkm_qtype_name(type),
                      variant, bad);
            /* Round to nearest, not just within the bound: the mean error of a sensible
             * quantizer is well under the worst case (about half of it for uniform data). */
            CHECK_MSG(sum_err <= 0.6 * sum_bound + 1e-30, "%s: mean err %g vs mean bound %g",
                      vkm_qtype_name(type), sum_err / N, sum_bound / N);
        }
        /* zeros stay exactly zero */
        memset(x, 0, 256 * sizeof *x);
        CHECK_OK(vkm_ref_quant_row(type, x, q, 256));
        CHECK_OK(vkm_ref_dequant_row(type, q, y, 256));
        int nz = 0;
        for (int i = 0; i < 256; i++) nz += y[i] != 0.0f;
        CHECK_MSG(nz == 0, "%s: zeros -> %d nonzero", vkm_qtype_name(type), nz);
    }
    /* non-finite input to a block quantizer is an error, not UB */
    x[7] = NAN;
    CHECK_ERR(vkm_ref_quant_row(VKM_Q4_K, x, q, 256));
    x[7] = INFINITY;
    CHECK_ERR(vkm_ref_quant_row(VKM_Q8_0, x, q, 256));
    /* a scale that does not fit in f16 */
    for (int i = 0; i < 32; i++) x[i] = 1e30f;
    CHECK(vkm_ref_quant_row(VKM_Q8_0, x, q, 32) == VKM_ERANGE);
    free(x);
    free(y);
    free(q);
}

/* ---- (c) f16 / bf16 ---------------------------------------------------------------------------
 */

/* Independent f16 decode: sign * mantissa * 2^exp by the definition. */
static double f16_value(uint16_t h) {
    int s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
    double v = e ? ldexp(1024 + m, e - 25) : ldexp(m, -24);
    return s ? -v : v;
}

static void test_fp16(void) {
    /* every half: widen matches the definition, and narrowing it back is the identity */
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = vkm_fp16_to_f32((uint16_t)h);
        int e = (h >> 10) & 31, m = h & 1023;
        if (e == 31) {
            bad += m ? !isnan(f) : !(isinf(f) && (signbit(f) != 0) == ((h >> 15) != 0));
            if (m) bad += vkm_fp16_from_f32(f) != (h | 0x200); /* quieted, payload kept */
            continue;
        }
        bad += (double)f != f16_value((uint16_t)h) || (signbit(f) != 0) != ((h >> 15) != 0);
        bad += vkm_fp16_from_f32(f) != h;
    }
    CHECK_MSG(bad == 0, "%d halves wrong", bad);

    CHECK(vkm_fp16_from_f32(1.0f) == 0x3C00 && vkm_fp16_from_f32(-2.0f) == 0xC000);
    CHECK(vkm_fp16_from_f32(65504.0f) == 0x7BFF);
    CHECK(vkm_fp16_from_f32(65519.99f) == 0x7BFF);
    CHECK(vkm_fp16_from_f32(65520.0f) == 0x7C00); /* tie with odd 0x7BFF -> inf */
    CHECK(vkm_fp16_from_f32(-1e10f) == 0xFC00);
    CHECK(vkm_fp16_from_f32(INFINITY) == 0x7C00 && vkm_fp16_from_f32(-INFINITY) == 0xFC00);
    uint16_t hn = vkm_fp16_from_f32(NAN);
    CHECK((hn & 0x7C00) == 0x7C00 && (hn & 0x3FF) != 0);
    CHECK(isnan(vkm_fp16_to_f32(0x7E00)) && isnan(vkm_fp16_to_f32(0xFC01)));
    CHECK(vkm_fp16_from_f32(-0.0f) == 0x8000 && signbit(vkm_fp16_to_f32(0x8000)));
    /* subnormals and ties to even */
    CHECK(vkm_fp16_to_f32(0x0001) == ldexpf(1, -24) && vkm_fp16_to_f32(0x0400) == ldexpf(1, -14));
    CHECK(vkm_fp16_to_f32(0x03FF) == ldexpf(1023, -24));
    CHECK(vkm_fp16_from_f32(ldexpf(1, -24)) == 0x0001);
    CHECK(vkm_fp16_from_f32(ldexpf(1, -25)) == 0x0000); /* tie 0 / 1 -> 0 */
    CHECK(vkm_fp16_from_f32(nextafterf(ldexpf(1, -25), 1)) == 0x0001);
    CHECK(vkm_fp16_from_f32(ldexpf(3, -25)) == 0x0002);  /* 1.5 ulp: tie 1 / 2 -> 2 */
    CHECK(vkm_fp16_from_f32(ldexpf(5, -25)) == 0x0002);  /* 2.5 ulp: tie 2 / 3 -> 2 */
    CHECK(vkm_fp16_from_f32(-ldexpf(7, -25)) == 0x8004); /* 3.5 ulp: tie 3 / 4 -> 4 */
    CHECK(vkm_fp16_from_f32(ldexpf(1, -30)) == 0x0000);
    CHECK(vkm_fp16_from_f32(ldexpf(1, -14) - ldexpf(1, -26)) == 0x0400); /* carry into normal */
    CHECK(vkm_fp16_from_f32(ldexpf(1, -14) - ldexpf(1, -25)) == 0x0400); /* tie 3FF / 400 */
    CHECK(vkm_fp16_from_f32(1.0f + ldexpf(1, -11)) == 0x3C00);           /* tie -> even */
    CHECK(vkm_fp16_from_f32(1.0f + ldexpf(3, -11)) == 0x3C02);           /* tie -> even */
    CHECK(vkm_fp16_from_f32(1.0f + ldexpf(1, -11) + ldexpf(1, -20)) == 0x3C01);
    CHECK(vkm_fp16_from_f32(2049.0f) == 0x6800 && vkm_fp16_from_f32(2051.0f) == 0x6802);
    CHECK(vkm_fp16_from_f32(2.0f - ldexpf(1, -12)) == 0x4000); /* carry into the exponent */

    /* random floats in and around the half range: the result is a nearest half, ties even */
    bad = 0;
    for (int i = 0; i < 300000; i++) {
        uint32_t u = (uint32_t)xorshift();
        /* exponent 100..145 covers below-subnormal to overflow */
        u = (u & 0x807FFFFFu) | (uint32_t)(100 + (xorshift() % 46)) << 23;
        if (i % 4 == 0) u &= 0xFFFFF000u | 0x1000u; /* many exact ties */
        float f = bits_f32(u);
        uint16_t h = vkm_fp16_from_f32(f);
        if ((h & 0x7FFF) == 0x7C00) {
            bad += fabs(f) < 65520.0;
            continue;
        }
        double v = f16_value(h), err = fabs(v - f);
        /* the neighbours in magnitude */
        uint16_t up = (uint16_t)(h + 1), dn = (uint16_t)(h - 1);
        if ((up & 0x7FFF) < 0x7C00 && fabs(f16_value(up) - f) < err) bad++;
        if ((h & 0x7FFF) != 0 && fabs(f16_value(dn) - f) < err) bad++;
        if ((h & 0x7FFF) != 0 && (up & 0x7FFF) < 0x7C00 && fabs(f16_value(up) - f) == err &&
            (h & 1))
            bad++;
        if ((h & 0x7FFF) != 0 && fabs(f16_value(dn) - f) == err && (h & 1)) bad++;
    }
    CHECK_MSG(bad == 0, "%d random floats rounded wrongly to f16", bad);
#ifdef __FLT16_MAX__
    /* cross-check against the compiler's own conversion where it has one */
    bad = 0;
    for (int i = 0; i < 200000; i++) {
        float f = bits_f32((uint32_t)xorshift());
        if (isnan(f)) continue;
        _Float16 c = (_Float16)f;
        uint16_t cb;
        memcpy(&cb, &c, 2);
        bad += cb != vkm_fp16_from_f32(f);
    }
    CHECK_MSG(bad == 0, "%d floats differ from _Float16", bad);
#endif

    /* bf16 */
    CHECK(vkm_bf16_from_f32(1.0f) == 0x3F80 && vkm_bf16_to_f32(0x3F80) == 1.0f);
    CHECK(vkm_bf16_from_f32(1.0f + ldexpf(1, -8)) == 0x3F80);                  /* tie -> even */
    CHECK(vkm_bf16_from_f32(1.0f + ldexpf(3, -8)) == 0x3F82);                  /* tie -> even */
    CHECK(vkm_bf16_from_f32(1.0f + ldexpf(1, -8) + ldexpf(1, -20)) == 0x3F81); /* above tie */
    CHECK(vkm_bf16_from_f32(FLT_MAX) == 0x7F80 && vkm_bf16_from_f32(-FLT_MAX) == 0xFF80);
    CHECK(vkm_bf16_from_f32(INFINITY) == 0x7F80 && vkm_bf16_from_f32(-INFINITY) == 0xFF80);
    uint16_t bn = vkm_bf16_from_f32(bits_f32(0x7F800001u)); /* signalling nan with low payload */
    CHECK((bn & 0x7F80) == 0x7F80 && (bn & 0x7F) != 0 && isnan(vkm_bf16_to_f32(bn)));
    CHECK(vkm_bf16_from_f32(bits_f32(0x00010001u)) == 0x0001); /* subnormal, below tie */
    CHECK(vkm_bf16_from_f32(bits_f32(0x00018000u)) == 0x0002); /* subnormal tie -> even */
    CHECK(vkm_bf16_from_f32(bits_f32(0x00008000u)) == 0x0000);
    CHECK(vkm_bf16_from_f32(bits_f32(0x80008001u)) == 0x8001);
    CHECK(f32_bits(vkm_bf16_to_f32(0x0001)) == 0x00010000u); /* exact subnormal */
    CHECK(vkm_bf16_from_f32(-0.0f) == 0x8000);
    bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = vkm_bf16_to_f32((uint16_t)h);
        if (isnan(f)) {
            bad += !isnan(vkm_bf16_to_f32(vkm_bf16_from_f32(f)));
            continue;
        }
        bad += f32_bits(f) != h << 16 || vkm_bf16_from_f32(f) != h;
    }
    CHECK_MSG(bad == 0, "%d bf16 values wrong", bad);
}

/* ---- (d) matmul -------------------------------------------------------------------------------
 */

/* Quantizes a random m x k matrix of `type`; returns the bytes and its dequantized floats. */
static uint8_t *make_weights(uint32_t type, int64_t k, int64_t m, float **wf) {
    size_t rb = vkm_ref_row_bytes(type, k);
    float *src = malloc((size_t)(k * m) * sizeof *src);
    uint8_t *w = malloc(rb * (size_t)m);
    for (int64_t i = 0; i < k * m; i++) src[i] = frand();
    for (int64_t r = 0; r < m; r++) CHECK_OK(vkm_ref_quant_row(type, src + r * k, w + r * rb, k));
    *wf = malloc((size_t)(k * m) * sizeof **wf);
    CHECK_OK(vkm_ref_dequant_row(type, w, *wf, k * m)); /* rows are whole blocks: contiguous */
    free(src);
    return w;
}

static void test_matmul(void) {
    static const int64_t shapes[][3] = {/* k, m, n */
                                        {32, 1, 1},  {32, 7, 7},  {32, 300, 2},
                                        {256, 1, 2}, {256, 7, 1}, {256, 300, 7},
                                        {512, 1, 7}, {512, 7, 2}, {512, 300, 1}};
    for (size_t t = 0; t < N_TYPES; t++) {
        uint32_t type = k_all_types[t];
        int bad = 0;
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
            int64_t k = shapes[s][0], m = shapes[s][1], n = shapes[s][2];
            if (k % vkm_qtype_get(type)->block) continue;
            float *wf, *x = malloc((size_t)(n * k) * sizeof *x);
            float *y = malloc((size_t)(n * m) * sizeof *y);
            uint8_t *w = make_weights(type, k, m, &wf);
            for (int64_t i = 0; i < n * k; i++) x[i] = frand();
            CHECK_OK(vkm_ref_matmul(type, w, k, m, x, n, y));
            for (int64_t j = 0; j < n; j++)
                for (int64_t r = 0; r < m; r++) {
                    float acc = 0, mag = 0; /* float dot of the dequantized row */
                    for (int64_t i = 0; i < k; i++) {
                        acc += wf[r * k + i] * x[j * k + i];
                        mag += fabsf(wf[r * k + i] * x[j * k + i]);
                    }
                    /* float summation error <= k * eps * sum|terms| (loose) */
                    if (!(fabsf(y[j * m + r] - acc) <= (float)k * FLT_EPSILON * mag + 1e-30f)) {
                        if (!bad++)
                            fprintf(stderr, "%s k%lld m%lld n%lld: y[%lld][%lld] %g vs %g\n",
                                    vkm_qtype_name(type), (long long)k, (long long)m, (long long)n,
                                    (long long)j, (long long)r, y[j * m + r], acc);
                    }
                }
            free(x);
            free(y);
            free(w);
            free(wf);
        }
        CHECK_MSG(bad == 0, "%s: %d matmul outputs wrong", vkm_qtype_name(type), bad);
    }
}

static void test_matmul_id(void) {
    const uint32_t type = VKM_Q4_K;
    const int64_t k = 512, m = 7, n_mat = 4, n_rows = 6;
    const int32_t mat_of_row[6] = {2, 0, 2, 3, 0, 2}; /* matrix 1 gets no rows */
    float *wf, x[6 * 512], y[6 * 7], y1[7];
    uint8_t *w = make_weights(type, k, m * n_mat, &wf);
    for (int i = 0; i < 6 * 512; i++) x[i] = frand();
    CHECK_OK(vkm_ref_matmul_id(type, w, k, m, n_mat, x, n_rows, mat_of_row, y));
    size_t off, size, rb = vkm_ref_row_bytes(type, k);
    int bad = 0;
    for (int64_t j = 0; j < n_rows; j++) {
        CHECK_OK(vkm_ref_slice_bytes(type, k, m, n_mat, mat_of_row[j], &off, &size));
        CHECK(off == (size_t)mat_of_row[j] * m * rb && size == m * rb);
        CHECK_OK(vkm_ref_matmul(type, w + off, k, m, x + j * k, 1, y1));
        for (int r = 0; r < m; r++) bad += y1[r] != y[j * m + r]; /* same code path: exact */
    }
    CHECK_MSG(bad == 0, "%d matmul_id outputs differ from per-slice matmul", bad);

    /* bad indices: an error, and y is left untouched */
    int32_t bad_idx[6] = {0, 1, 4, 0, 0, 0}, neg_idx[6] = {0, -1, 0, 0, 0, 0};
    for (int i = 0; i < 6 * 7; i++) y[i] = 42.0f;
    CHECK(vkm_ref_matmul_id(type, w, k, m, n_mat, x, n_rows, bad_idx, y) == VKM_EINVAL);
    CHECK(vkm_ref_matmul_id(type, w, k, m, n_mat, x, n_rows, neg_idx, y) == VKM_EINVAL);
    int touched = 0;
    for (int i = 0; i < 6 * 7; i++) touched += y[i] != 42.0f;
    CHECK(touched == 0);
    /* zero rows is fine */
    CHECK_OK(vkm_ref_matmul_id(type, w, k, m, n_mat, x, 0, mat_of_row, y));
    free(w);
    free(wf);
}

/* ---- activation quantizers --------------------------------------------------------------------
 */

static void test_act_quant(void) {
    float x[512], d[16];
    int8_t q[512];
    /* Q8_0: amax 2.54 in block 0 -> d = fp16(0.02), q = roundf(x * 50) */
    for (int i = 0; i < 64; i++) x[i] = 0;
    x[0] = 2.54f;
    x[1] = -1.27f;
    x[2] = 0.01f; /* 0.5 -> roundf away from zero: 1 */
    x[3] = -0.03f;
    CHECK_OK(vkm_ref_quant_q8_0_act(x, q, d, 64));
    CHECK(d[0] == vkm_fp16_round(2.54f / 127) && d[1] == 0.0f);
    CHECK(q[0] == 127 && q[1] == -64 && q[2] == 1 && q[3] == -2 && q[4] == 0 && q[40] == 0);
    /* Q8_K: max = -127 -> iscale = 1, d = 1; round half to even */
    for (int i = 0; i < 512; i++) x[i] = 0;
    x[7] = -127.0f;
    x[8] = 2.5f;
    x[9] = 3.5f;
    x[10] = -0.5f;
    x[11] = 127.0f;
    x[256 + 3] = 1.27f; /* block 1: max positive -> iscale -100, d = -0.0127 */
    x[256 + 4] = -0.333f;
    CHECK_OK(vkm_ref_quant_q8_k_act(x, q, d, 512));
    CHECK(d[0] == 1.0f);
    CHECK(q[7] == -127 && q[8] == 2 && q[9] == 4 && q[10] == 0 && q[11] == 127);
    CHECK(q[256 + 3] == -127 && q[256 + 4] == 33); /* -127/1.27 * -0.333 = 33.3 */
    CHECK_NEAR(d[1], -1.27 / 127, 1e-9);
    CHECK_ERR(vkm_ref_quant_q8_0_act(x, q, d, 48));
    CHECK_ERR(vkm_ref_quant_q8_k_act(x, q, d, 128));
    x[5] = NAN;
    CHECK_ERR(vkm_ref_quant_q8_k_act(x, q, d, 256));
}

/* ---- errors ------------------------------------------------------------------------------------
 */

/* The 8-bit activations of the GPU's integer-dot GEMVs (vkm_ref_quant_q8x): a hand-made block
 * (amax 2.54 -> d = 0.02, q = x * 50 to nearest even, the sums of each half), a block of zeros,
 * the round trip within d / 2 per value, and the matmul on them equal to vkm_ref_matmul on the
 * round-tripped X. */
static void test_q8x(void) {
    float x[64] = {0}, back[64], want[2], got[2];
    uint8_t q[2 * VKM_REF_Q8X_BLOCK];
    x[0] = 2.54f, x[1] = -1.27f, x[2] = 0.01f, x[3] = 0.03f, x[17] = -0.5f, x[31] = 1.0f;
    CHECK_OK(vkm_ref_quant_q8x(x, 64, q));
    float h[4], h2[4];
    memcpy(h, q + 32, sizeof h);
    memcpy(h2, q + VKM_REF_Q8X_BLOCK + 32, sizeof h2);
    CHECK(fabsf(h[0] - 0.02f) < 1e-7f && h[2] == h[0]);
    CHECK((int8_t)q[0] == 127 && (int8_t)q[1] == -64 && (int8_t)q[2] == 0 && (int8_t)q[3] == 2);
    CHECK((int8_t)q[17] == -25 && (int8_t)q[31] == 50 && (int8_t)q[4] == 0);
    CHECK(fabsf(h[1] - h[0] * 65.0f) < 1e-6f && fabsf(h[3] - h[0] * 25.0f) < 1e-6f);
    CHECK(h2[0] == 0.0f && h2[1] == 0.0f && h2[3] == 0.0f); /* the second block: all zeros */
    CHECK_OK(vkm_ref_dequant_q8x(q, 64, back));
    int bad = 0;
    for (int i = 0; i < 64; i++) bad += !(fabsf(back[i] - x[i]) <= 0.5f * h[0] * 1.0001f);
    CHECK(bad == 0);
    /* the matmul: one F32 row of k = 64 against X; the reference on the round-tripped values */
    float w[2 * 64];
    for (int i = 0; i < 128; i++) w[i] = (float)(i % 7) - 3.0f;
    CHECK_OK(vkm_ref_matmul_q8x(VKM_F32, w, 64, 2, x, 1, got));
    CHECK_OK(vkm_ref_matmul(VKM_F32, w, 64, 2, back, 1, want));
    CHECK(got[0] == want[0] && got[1] == want[1]);
    CHECK(vkm_ref_quant_q8x(x, 48, q) == VKM_EINVAL &&
          vkm_ref_dequant_q8x(q, 0, back) == VKM_EINVAL);
}

static void test_errors(void) {
    uint8_t buf[512] = {0};
    float f[256] = {0}, y[8];
    static const uint32_t bad_types[] = {VKM_Q8_1, VKM_Q8_K, 34, 24, 4, 31, 99, 0xFFFFFFFFu};
    for (size_t i = 0; i < sizeof bad_types / sizeof bad_types[0]; i++) {
        uint32_t t = bad_types[i];
        CHECK(vkm_ref_dequant_row(t, buf, f, 256) == VKM_EUNSUPPORTED);
        CHECK(vkm_ref_quant_row(t, f, buf, 256) == VKM_EUNSUPPORTED);
        CHECK(vkm_ref_matmul(t, buf, 256, 1, f, 1, y) == VKM_EUNSUPPORTED);
    }
    CHECK(vkm_ref_dequant_row(VKM_Q8_K, buf, f, 256) == VKM_EUNSUPPORTED);
    CHECK(strstr(vkm_errmsg(), "Q8_K") != NULL); /* the message names the type */
    CHECK(vkm_ref_dequant_row(VKM_Q4_K, buf, f, 128) == VKM_EINVAL);
    CHECK(vkm_ref_dequant_row(VKM_Q4_0, buf, f, 0) == VKM_EINVAL);
    CHECK(vkm_ref_quant_row(VKM_Q4_0, f, buf, 33) == VKM_EINVAL);
    CHECK(vkm_ref_quant_row(VKM_F16, f, buf, -1) == VKM_EINVAL);
    CHECK(vkm_ref_matmul(VKM_Q4_0, buf, 48, 1, f, 1, y) == VKM_EINVAL);
    CHECK(vkm_ref_matmul(VKM_Q4_0, buf, 0, 1, f, 1, y) == VKM_EINVAL);
    CHECK(vkm_ref_matmul(VKM_Q4_0, buf, 32, -1, f, 1, y) == VKM_EINVAL);
    CHECK(vkm_ref_matmul(VKM_Q4_0, buf, 32, 1, f, -1, y) == VKM_EINVAL);
    CHECK_OK(vkm_ref_matmul(VKM_Q4_0, buf, 32, 0, f, 1, y)); /* empty is fine */

    CHECK(vkm_ref_row_bytes(VKM_Q4_K, 512) == 288 && vkm_ref_row_bytes(VKM_Q4_K, 100) == 0);
    CHECK(vkm_ref_row_bytes(VKM_F16, -2) == 0 && vkm_ref_row_bytes(VKM_Q8_0, 64) == 68);

    size_t off = 1, size = 1;
    CHECK_OK(vkm_ref_slice_bytes(VKM_Q6_K, 256, 3, 5, 4, &off, &size));
    CHECK(off == 4 * 3 * 210 && size == 3 * 210);
    CHECK(vkm_ref_slice_bytes(VKM_Q6_K, 256, 3, 5, 5, &off, &size) == VKM_EINVAL);
    CHECK(vkm_ref_slice_bytes(VKM_Q6_K, 256, 3, 5, -1, &off, &size) == VKM_EINVAL);
    CHECK(vkm_ref_slice_bytes(VKM_Q6_K, 100, 3, 5, 0, &off, &size) == VKM_EINVAL);
    CHECK(vkm_ref_slice_bytes(VKM_Q4_K, (int64_t)1 << 40, (int64_t)1 << 31, 2, 0, &off, &size) ==
          VKM_ERANGE);
    CHECK(vkm_ref_slice_bytes(VKM_Q4_K, (int64_t)1 << 40, 4, (int64_t)1 << 40, 0, &off, &size) ==
          VKM_ERANGE);
    CHECK(vkm_ref_slice_bytes(99, 256, 1, 1, 0, &off, &size) == VKM_EUNSUPPORTED);
    int32_t idx = 0;
    CHECK(vkm_ref_matmul_id(34 /* TQ1_0 */, buf, 256, 1, 1, f, 1, &idx, y) < 0);
}

int main(void) {
    test_float_types();
    test_q4_0_block();
    test_q4_1_block();
    test_q5_0_block();
    test_q5_1_block();
    test_q8_0_block();
    test_q2_k_block();
    test_q3_k_block();
    test_q4_k_block();
    test_q5_k_block();
    test_q6_k_block();
    test_round_trips();
    test_fp16();
    test_matmul();
    test_matmul_id();
    test_act_quant();
    test_q8x();
    test_errors();
    return check_done();
}
