/* test_ref_iq.c - the IQ dequantizers of core/ref_quant.c on hand-built blocks, one test per type
 * (IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS, IQ3_S, IQ1_S, IQ1_M, IQ4_NL, IQ4_XS), every field exercised:
 * the f16 scale, every sub-scale position (low and high nibbles, first and last runs), grid
 * indices including their high bits (qh), the 7-bit sign indices with and without the parity bit,
 * the 8-bit sign bytes, the IQ1 delta signs and IQ1_M's scattered f16 scale.
 *
 * Expected values are worked out by hand from ggml's definitions (block layouts in the top
 * comment of core/ref_quant.c) with the grid points copied by hand from ggml-common.h's tables
 * (written in the comments as ggml prints them, element 0 in the lowest byte), so a wrong table
 * word or a wrong bit position fails here. IQ2_XS has no fixture model: this is its oracle.
 * Also: the sign-parity function against ggml's ksigns_iq2xs, the IQ4 byte tables of the device
 * GEMV (vkm_iq4_grid) against the levels, a reference matmul over an IQ row, and the errors (no
 * quantizer for IQ types, rows that are not whole blocks). */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "check.h"
#include "fp16.h"
#include "iq_tables.h"
#include "qtype.h"
#include "ref_matmul.h"
#include "ref_quant.h"

static void put_f16(uint8_t *p, float v) {
    uint16_t h = vkm_fp16_from_f32(v);
    VKM_ASSERT(vkm_fp16_to_f32(h) == v);
    p[0] = (uint8_t)(h & 0xff);
    p[1] = (uint8_t)(h >> 8);
}
static void put16(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}
static void put32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

/* Dequantizes one block of `type` into y (256 floats max). */
static void dq(uint32_t type, const uint8_t *b, float *y) {
    CHECK_OK(vkm_ref_dequant_row(type, b, y, vkm_qtype_get(type)->block));
}

/* y[e0 + i] == want[i] for i < n, exactly (every expected value is a float exactly). */
static void expect(const char *what, const float *y, int e0, const float *want, int n) {
    for (int i = 0; i < n; i++)
        CHECK_MSG(y[e0 + i] == want[i], "%s: element %d is %g, expected %g", what, e0 + i,
                  (double)y[e0 + i], (double)want[i]);
}

static void test_signs(void) {
    /* ksigns_iq2xs[i] of ggml-common.h for a few i */
    CHECK(vkm_iq_signs(0) == 0 && vkm_iq_signs(1) == 129 && vkm_iq_signs(3) == 3);
    CHECK(vkm_iq_signs(64) == 192 && vkm_iq_signs(127) == 255 && vkm_iq_signs(126) == 126);
    CHECK(vkm_iq_signs(0x55) == 0x55 && vkm_iq_signs(0x54) == 0xD4);
}

/* IQ2_XXS: d = 0.5; run 0 (bytes 2..9): grid indices 1, 200, 0, 255 for groups 0-3; u32 at 6:
 * signs s7 = 1 (-> 0x81: elements 0, 7), 127 (-> 0xFF), 0, 3 (-> 0x03), scale 5:
 * db = 0.5 * 5.5 / 4 = 0.6875. Run 7 (bytes 58..65): group 0 index 255, s7 = 64 (-> 0xC0), scale
 * 15: db = 0.5 * 15.5 / 4 = 1.9375. Runs 1-6 all zero: index 0 (all 8), db = 0.0625.
 * grid[1] = 0x080808080808082b, grid[200] = 0x192b081908080808, grid[255] = 0x2b2b2b1908081908. */
static void test_iq2_xxs(void) {
    uint8_t b[66] = {0};
    float y[256];
    put_f16(b, 0.5f);
    b[2] = 1, b[3] = 200, b[4] = 0, b[5] = 255;
    put32(b + 6, 1u | 127u << 7 | 0u << 14 | 3u << 21 | 5u << 28);
    b[58] = 255;
    put32(b + 62, 64u | 15u << 28);
    dq(VKM_IQ2_XXS, b, y);
    const float a = 0.6875f;
    expect("iq2_xxs g0", y, 0, (float[]){-a * 43, a * 8, a * 8, a * 8, a * 8, a * 8, a * 8, -a * 8},
           8);
    expect("iq2_xxs g1", y, 8,
           (float[]){-a * 8, -a * 8, -a * 8, -a * 8, -a * 25, -a * 8, -a * 43, -a * 25}, 8);
    expect("iq2_xxs g2", y, 16, (float[]){a * 8, a * 8}, 2);
    expect("iq2_xxs g3", y, 24,
           (float[]){-a * 8, -a * 25, a * 8, a * 8, a * 25, a * 43, a * 43, a * 43}, 8);
    expect("iq2_xxs run 1", y, 32, (float[]){0.5f, 0.5f}, 2);
    const float c = 1.9375f;
    expect("iq2_xxs run 7", y, 224,
           (float[]){c * 8, c * 25, c * 8, c * 8, c * 25, c * 43, -c * 43, -c * 43}, 8);
    expect("iq2_xxs run 7 g3", y, 255, (float[]){c * 8}, 1);
}

/* IQ2_XS: d = 0.25; qs[4ib + l] = index | s7 << 9; scales[ib]: low nibble groups 0-1, high 2-3.
 * Run 0: group 0 = 511 | 1 << 9 (all 43, signs 0x81), group 2 = 300 | 127 << 9 (all negative),
 * scales[0] = 0x93: db = 0.25 * 3.5 / 4 = 0.21875 (groups 0-1), 0.25 * 9.5 / 4 = 0.59375 (2-3).
 * Run 7: group 3 = 1 | 2 << 9 (signs 0x82: elements 1, 7), scales[7] = 0xF0: groups 0-1
 * db = 0.03125, groups 2-3 db = 0.96875.
 * grid[1] = 0x080808080808082b, grid[300] = 0x1908190808191908, grid[511] = all 0x2b. */
static void test_iq2_xs(void) {
    uint8_t b[74] = {0};
    float y[256];
    put_f16(b, 0.25f);
    put16(b + 2, 511u | 1u << 9);
    put16(b + 2 + 2 * 2, 300u | 127u << 9);
    put16(b + 2 + 2 * 31, 1u | 2u << 9);
    b[66] = 0x93;
    b[73] = 0xF0;
    dq(VKM_IQ2_XS, b, y);
    const float a = 0.21875f, c = 0.59375f;
    expect("iq2_xs g0", y, 0, (float[]){-a * 43, a * 43, a * 43, a * 43, a * 43, a * 43, a * 43},
           7);
    expect("iq2_xs g0 e7", y, 7, (float[]){-a * 43, a * 8}, 2); /* and group 1: index 0 */
    expect("iq2_xs g2", y, 16,
           (float[]){-c * 8, -c * 25, -c * 25, -c * 8, -c * 8, -c * 25, -c * 8, -c * 25}, 8);
    expect("iq2_xs g3", y, 24, (float[]){c * 8}, 1);
    expect("iq2_xs run 7 g0", y, 224, (float[]){0.03125f * 8}, 1);
    const float f = 0.96875f;
    expect("iq2_xs run 7 g3", y, 248,
           (float[]){f * 43, -f * 8, f * 8, f * 8, f * 8, f * 8, f * 8, -f * 8}, 8);
}

/* IQ2_S: d = 0.5; qs[32] @2 (index bits 0-7), signs[32] @34, qh[8] @66 (bits 2l, 2l+1 of qh[ib]:
 * index bits 8-9), scales[8] @74 as IQ2_XS.
 * Run 0: group 0 index 0; group 1: qs 0xC5 + qh 2 -> 0x2C5 = 709 with signs 0x0F; group 2 index 1;
 * group 3: qs 0xFF + qh 3 -> 1023 with signs 0x80. qh[0] = 2 << 2 | 3 << 6 = 0xC8. scales[0] =
 * 0x21: db 0.1875 (groups 0-1), 0.3125 (2-3). Run 7: group 0: qs 0xBC + qh 2 -> 700, signs 0x55,
 * scales[7] = 0x0F: db = 1.9375.
 * grid[1] = 0x080808080808082b, grid[700] = 0x1919082b2b080808, grid[709] = 0x19191908082b0819,
 * grid[1023] = all 0x2b. */
static void test_iq2_s(void) {
    uint8_t b[82] = {0};
    float y[256];
    put_f16(b, 0.5f);
    b[2 + 1] = 0xC5, b[2 + 2] = 1, b[2 + 3] = 0xFF;
    b[34 + 1] = 0x0F, b[34 + 3] = 0x80;
    b[66] = 0xC8;
    b[74] = 0x21;
    b[2 + 28] = 0xBC, b[34 + 28] = 0x55, b[66 + 7] = 0x02, b[74 + 7] = 0x0F;
    dq(VKM_IQ2_S, b, y);
    const float a = 0.1875f, c = 0.3125f, f = 1.9375f;
    expect("iq2_s g0", y, 0, (float[]){a * 8, a * 8}, 2);
    expect("iq2_s g1", y, 8,
           (float[]){-a * 25, -a * 8, -a * 43, -a * 8, a * 8, a * 25, a * 25, a * 25}, 8);
    expect("iq2_s g2", y, 16, (float[]){c * 43, c * 8}, 2);
    expect("iq2_s g3", y, 24, (float[]){c * 43, c * 43, c * 43, c * 43, c * 43, c * 43, c * 43}, 7);
    expect("iq2_s g3 e7", y, 31, (float[]){-c * 43}, 1);
    expect("iq2_s run 7", y, 224,
           (float[]){-f * 8, f * 8, -f * 8, f * 43, -f * 43, f * 8, -f * 25, f * 25}, 8);
}

/* IQ3_XXS: d = 0.25; qs[64] @2, then u32 per run @66: s7 of group l at bits 7l, scale bits 28-31.
 * Run 0: group 0 halves 17, 255 with s7 = 17 (-> 0x11: elements 0, 4); group 1 zero (index 0, no
 * signs); group 3 halves 1, 0 with s7 = 127 (all negative); scale 3: db = 0.25 * 3.5 / 2 = 0.4375.
 * Run 7: scale 15: db = 1.9375, index 0.
 * grid[0] = 0x04040404, grid[1] = 0x04040414, grid[17] = 0x040c142c, grid[255] = 0x3e341c04. */
static void test_iq3_xxs(void) {
    uint8_t b[98] = {0};
    float y[256];
    put_f16(b, 0.25f);
    b[2] = 17, b[3] = 255, b[2 + 6] = 1;
    put32(b + 66, 17u | 127u << 21 | 3u << 28);
    put32(b + 66 + 28, 15u << 28);
    dq(VKM_IQ3_XXS, b, y);
    const float a = 0.4375f;
    expect("iq3_xxs g0", y, 0,
           (float[]){-a * 44, a * 20, a * 12, a * 4, -a * 4, a * 28, a * 52, a * 62}, 8);
    expect("iq3_xxs g1", y, 8, (float[]){a * 4}, 1);
    expect("iq3_xxs g3", y, 24,
           (float[]){-a * 20, -a * 4, -a * 4, -a * 4, -a * 4, -a * 4, -a * 4, -a * 4}, 8);
    expect("iq3_xxs run 7", y, 255, (float[]){1.9375f * 4}, 1);
}

/* IQ3_S: d = 0.5; qs[64] @2, qh[8] @66 (bit 2l + h of qh[ib]: index bit 8 of half h of group l),
 * signs[32] @74, scales[4] @106 (low nibble even runs, high nibble odd): db = d * (1 + 2s).
 * Run 0 (s = 2, db 2.5): group 0 halves 0 + qh -> 256 and 5, signs 0xA0 (elements 5, 7); group 3
 * halves 0xFF + qh -> 511 and 1, signs 0x01; qh[0] = 0x41. Run 1 (s = 7, db 7.5): index 0,
 * group 0 signs 0xFF. Run 6: s = 0 (db 0.5). Run 7 (s = 15, db 15.5): group 0 half 1: index 0 +
 * qh bit 1 -> 256. grid[0] = 0x01010101, grid[1] = 0x01010103, grid[5] = 0x01010301,
 * grid[256] = 0x05090507, grid[511] = 0x0f0f0101. */
static void test_iq3_s(void) {
    uint8_t b[110] = {0};
    float y[256];
    put_f16(b, 0.5f);
    b[2 + 1] = 5, b[2 + 6] = 0xFF, b[2 + 7] = 1;
    b[66] = 0x41, b[66 + 7] = 0x02;
    b[74] = 0xA0, b[74 + 3] = 0x01, b[74 + 4] = 0xFF;
    b[106] = 0x72, b[106 + 3] = 0xF0;
    dq(VKM_IQ3_S, b, y);
    expect("iq3_s g0", y, 0, (float[]){17.5f, 12.5f, 22.5f, 12.5f, 2.5f, -7.5f, 2.5f, -2.5f}, 8);
    expect("iq3_s g3", y, 24, (float[]){-2.5f, 2.5f, 37.5f, 37.5f, 7.5f, 2.5f, 2.5f, 2.5f}, 8);
    expect("iq3_s run 1", y, 32, (float[]){-7.5f, -7.5f, -7.5f, -7.5f, -7.5f, -7.5f, -7.5f, -7.5f},
           8);
    expect("iq3_s run 1 g1", y, 40, (float[]){7.5f}, 1);
    expect("iq3_s run 6", y, 192, (float[]){0.5f}, 1);
    expect("iq3_s run 7", y, 224,
           (float[]){15.5f, 15.5f, 15.5f, 15.5f, 15.5f * 7, 15.5f * 5, 15.5f * 9, 15.5f * 5}, 8);
}

/* IQ1_S: d = 0.5; qs[32] @2, qh u16 per run @34: index bits 8-10 of group l at bits 3l, scale
 * bits 12-14 (dl = d * (2s + 1)), bit 15 the delta's sign. Run 0: qh = 4 | 4 << 3 | 7 << 6 |
 * 3 << 12 | 1 << 15 with qs 0xD2, 0, 0xFF, 0: indices 1234, 1024, 2047, 0; dl = 3.5, delta -1/8.
 * Run 7: qh = 5 << 9 | 7 << 12 and qs[31] = 0xA3: group 3 index 1443, dl = 7.5, delta +1/8.
 * Runs 1-6: index 0, dl = 0.5, delta +1/8. iq1s_grid (int8 values): [0] all -1,
 * [1024] = 0x0000000000ff0100, [1234] = 0x0001ff00ff01ff01, [1443] = 0x01ffffff01ffffff,
 * [2047] all 1. */
static void test_iq1_s(void) {
    uint8_t b[50] = {0};
    float y[256];
    put_f16(b, 0.5f);
    b[2] = 0xD2, b[4] = 0xFF, b[2 + 31] = 0xA3;
    put16(b + 34, 4u | 4u << 3 | 7u << 6 | 3u << 12 | 1u << 15);
    put16(b + 34 + 14, 5u << 9 | 7u << 12);
    dq(VKM_IQ1_S, b, y);
    const float p = 3.5f * 0.875f, z = 3.5f * -0.125f, m = 3.5f * -1.125f;
    expect("iq1_s g0", y, 0, (float[]){p, m, p, m, z, m, p, z}, 8);
    expect("iq1_s g1", y, 8, (float[]){z, p, m, z, z, z, z, z}, 8);
    expect("iq1_s g2", y, 16, (float[]){p, p, p, p, p, p, p, p}, 8);
    expect("iq1_s g3", y, 24, (float[]){m, m, m, m, m, m, m, m}, 8);
    expect("iq1_s run 1", y, 32, (float[]){0.5f * -0.875f}, 1);
    const float P = 7.5f * 1.125f, M = 7.5f * -0.875f;
    expect("iq1_s run 7 g0", y, 224, (float[]){M}, 1);
    expect("iq1_s run 7 g3", y, 248, (float[]){M, M, M, P, M, M, M, P}, 8);
}

/* IQ1_M: qs[32] @0, qh[16] @32 (byte 2ib + l / 2, nibble l % 2: index bits 8-10, bit 3 the delta
 * sign), sc: 4 u16 @48 (bits 6 (ib % 2) + 3 (l / 2) of sc[ib / 2]: s, dl = d (2s + 1); bits 12-15
 * of sc[0..3] the nibbles of the f16 d). d = 0.25 = 0x3400: nibbles 0, 0, 4, 3.
 * Run 0: sc[0] bits 0-5 = 2 | 5 << 3 (dl 1.25 for groups 0-1, 2.75 for 2-3); groups: qs 0xD2 +
 * qh 4 (delta -) -> 1234; qs 0 + qh 4 (delta +) -> 1024; qs 0xFF + qh 7 -> 2047 (+); qs 0 + qh 0
 * (delta -) -> 0: qh[0] = 0x4C, qh[1] = 0x87. Run 1: sc[0] bits 6-11 = 7 (dl 3.75), 0 (0.25).
 * Run 7: sc[3] bits 6-11 = 1 (dl 0.75), 6 (3.25); group 3: qs 0xA3 + qh 5 -> 1443 (+). */
static void test_iq1_m(void) {
    uint8_t b[56] = {0};
    float y[256];
    b[0] = 0xD2, b[2] = 0xFF, b[31] = 0xA3;
    b[32] = 0x4C, b[33] = 0x87, b[32 + 15] = 0x50;
    put16(b + 48, 2u | 5u << 3 | 7u << 6);
    put16(b + 50, 0);
    put16(b + 52, 4u << 12);
    put16(b + 54, 1u << 6 | 6u << 9 | 3u << 12);
    dq(VKM_IQ1_M, b, y);
    const float p = 1.25f * 0.875f, z = 1.25f * -0.125f, m = 1.25f * -1.125f;
    expect("iq1_m g0", y, 0, (float[]){p, m, p, m, z, m, p, z}, 8);
    const float P = 1.25f * 1.125f, Z = 1.25f * 0.125f, M = 1.25f * -0.875f;
    expect("iq1_m g1", y, 8, (float[]){Z, P, M, Z, Z, Z, Z, Z}, 8);
    expect("iq1_m g2", y, 16, (float[]){2.75f * 1.125f, 2.75f * 1.125f}, 2);
    expect("iq1_m g3", y, 24, (float[]){2.75f * -1.125f, 2.75f * -1.125f}, 2);
    expect("iq1_m run 1", y, 32, (float[]){3.75f * -0.875f}, 1);
    expect("iq1_m run 1 g2", y, 48, (float[]){0.25f * -0.875f}, 1);
    expect("iq1_m run 6", y, 192, (float[]){0.25f * -0.875f}, 1);
    expect("iq1_m run 7 g0", y, 224, (float[]){0.75f * -0.875f}, 1);
    const float a = 3.25f * -0.875f, c = 3.25f * 1.125f;
    expect("iq1_m run 7 g3", y, 248, (float[]){a, a, a, c, a, a, a, c}, 8);
}

/* kvalues_iq4nl of ggml-common.h, written out by hand */
static const float kv[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                             1,    13,   25,  38,  53,  69,  89,  113};

/* IQ4_NL: d = 0.5, qs[j] = j | (15 - j) << 4: element j = d * kv[j], element 16 + j =
 * d * kv[15 - j] (every level, both nibbles). */
static void test_iq4_nl(void) {
    uint8_t b[18] = {0};
    float y[32], want[32];
    put_f16(b, 0.5f);
    for (int j = 0; j < 16; j++) {
        b[2 + j] = (uint8_t)(j | (15 - j) << 4);
        want[j] = 0.5f * kv[j];
        want[16 + j] = 0.5f * kv[15 - j];
    }
    dq(VKM_IQ4_NL, b, y);
    expect("iq4_nl", y, 0, want, 32);
}

/* IQ4_XS: d = 0.25; scales_h u16 @2 (bits 2ib, 2ib + 1: scale bits 4-5), scales_l[4] @4 (nibble
 * ib % 2 of byte ib / 2), qs[128] @8 (run ib at 8 + 16ib). dl = d * (s - 32):
 * run 0: s = 1 | 2 << 4 = 33 (dl 0.25); run 1: s = 0 (-8); run 6: 5 | 1 << 4 = 21 (-2.75);
 * run 7: 15 | 3 << 4 = 63 (7.75). scales_h = 2 | 1 << 12 | 3 << 14, scales_l = 01 00 00 F5.
 * qs: run 0 byte 0 = 0xF0, byte 3 = 0x8C; run 1 byte 0 = 0x7E; run 7 byte 15 = 0x18; rest 0. */
static void test_iq4_xs(void) {
    uint8_t b[136] = {0};
    float y[256];
    put_f16(b, 0.25f);
    put16(b + 2, 2u | 1u << 12 | 3u << 14);
    b[4] = 0x01, b[7] = 0xF5;
    b[8] = 0xF0, b[8 + 3] = 0x8C, b[8 + 16] = 0x7E, b[8 + 112 + 15] = 0x18;
    dq(VKM_IQ4_XS, b, y);
    expect("iq4_xs run 0", y, 0, (float[]){0.25f * kv[0], 0.25f * kv[0], 0.25f * kv[0], 0.25f * 53},
           4);
    expect("iq4_xs run 0 hi", y, 16, (float[]){0.25f * 113, 0.25f * kv[0], 0.25f * kv[0], 0.25f},
           4);
    expect("iq4_xs run 1", y, 32, (float[]){-8.0f * 89, -8.0f * kv[0]}, 2);
    expect("iq4_xs run 1 hi", y, 48, (float[]){-8.0f * -10}, 1);
    expect("iq4_xs run 6", y, 192, (float[]){-2.75f * -127}, 1);
    expect("iq4_xs run 7", y, 239, (float[]){7.75f * 1}, 1);
    expect("iq4_xs run 7 hi", y, 255, (float[]){7.75f * -104}, 1);
}

/* vkm_iq4_grid (shaders/gemv_iq.glsl's IQ4 levels): for every byte b, word b holds the levels of
 * nibbles b & 15 and b >> 4 as f16 (bits 0-15, 16-31), word 256 + b as int8 at bits 0 and 16, the
 * other bytes 0; both equal kv (the f16 exactly: every level is a small integer). */
static void test_iq4_grid(void) {
    CHECK(
        memcmp(vkm_iq4nl_values,
               (int8_t[]){-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113},
               16) == 0);
    int bad = 0;
    for (uint32_t b = 0; b < 256; b++) {
        const float lo = kv[b & 15], hi = kv[b >> 4];
        const uint32_t f = vkm_iq4_grid[b], q = vkm_iq4_grid[256 + b];
        bad += vkm_fp16_to_f32((uint16_t)(f & 0xFFFF)) != lo;
        bad += vkm_fp16_to_f32((uint16_t)(f >> 16)) != hi;
        bad += (float)(int8_t)(q & 0xFF) != lo || (float)(int8_t)((q >> 16) & 0xFF) != hi;
        bad += (q & 0xFF00FF00u) != 0;
    }
    CHECK_MSG(bad == 0, "vkm_iq4_grid: %d wrong entries", bad);
}

/* The reference matmul over IQ rows is the dot product of the dequantized row; errors. */
static void test_matmul_errors(void) {
    static const uint32_t types[] = {VKM_IQ2_XXS, VKM_IQ2_XS, VKM_IQ2_S,  VKM_IQ3_XXS, VKM_IQ3_S,
                                     VKM_IQ1_S,   VKM_IQ1_M,  VKM_IQ4_NL, VKM_IQ4_XS};
    uint8_t w[2 * 136];
    float x[512], row[512], y[1];
    for (int i = 0; i < 512; i++) x[i] = (float)(i % 7) - 3.0f;
    for (size_t t = 0; t < sizeof types / sizeof types[0]; t++) {
        const vkm_qtype_info *qi = vkm_qtype_get(types[t]);
        CHECK(qi && qi->supported);
        const int64_t k = 2 * qi->block;
        for (uint32_t i = 0; i < 2 * qi->bytes; i++) w[i] = (uint8_t)(i * 37 + 11);
        if (types[t] == VKM_IQ1_M) /* d's nibbles: bits 12-15 of the 4 scale words */
            for (int blk = 0; blk < 2; blk++) {
                const uint16_t h = blk ? 0xB800 : 0x3000; /* -0.5, 0.125 */
                for (int i = 0; i < 4; i++) {
                    uint8_t *sc = w + blk * qi->bytes + 48 + 2 * i;
                    sc[1] = (uint8_t)((sc[1] & 0x0F) | ((h >> (4 * i)) & 0xF) << 4);
                }
            }
        else {
            put_f16(w, 0.125f);
            put_f16(w + qi->bytes, -0.5f);
        }
        CHECK_OK(vkm_ref_dequant_row(types[t], w, row, k));
        double want = 0.0;
        for (int64_t i = 0; i < k; i++) want += (double)row[i] * x[i];
        CHECK_OK(vkm_ref_matmul(types[t], w, k, 1, x, 1, y));
        CHECK_MSG(fabs(y[0] - want) <= 1e-4 * (1 + fabs(want)), "%s: %g vs %g", qi->name,
                  (double)y[0], want);
        if (types[t] != VKM_IQ4_NL && types[t] != VKM_IQ4_XS) { /* no quantizer (a grid search) */
            CHECK(vkm_ref_quant_row(types[t], x, w, k) == VKM_EUNSUPPORTED);
            CHECK(strstr(vkm_errmsg(), qi->name) != NULL);
        }
        CHECK(vkm_ref_dequant_row(types[t], w, row, qi->block / 2) == VKM_EINVAL);
    }
    CHECK(vkm_ref_dequant_row(34 /* TQ1_0 */, w, row, 256) == VKM_EUNSUPPORTED);
    CHECK(strstr(vkm_errmsg(), "TQ1_0") != NULL);
}

/* The IQ4 quantizers (nearest level at the block's scale): random rows of blocks of different
 * magnitudes (one all zero) round-trip with every element within a quarter of its (super-)block's
 * largest magnitude (IQ4_NL: the nearest of 16 levels at d = amax/127 errs by at most 14 d, a
 * ninth of amax; IQ4_XS adds its 6-bit run scale's rounding) and a small RMS error overall. */
static void test_iq4_quant(void) {
    enum { N = 256 * 6 };
    static float x[N], y[N];
    static uint8_t q[N];
    const uint32_t types[] = {VKM_IQ4_NL, VKM_IQ4_XS};
    uint32_t r = 12345;
    for (int i = 0; i < N; i++) {
        r = r * 1103515245u + 12345u;
        const float mag = i / 256 == 2 ? 0.0f : (float)(1 + i / 256) * (i % 64 < 32 ? 1.0f : 0.1f);
        x[i] = mag * ((float)(r >> 8) / 8388608.0f - 1.0f);
    }
    for (int t = 0; t < 2; t++) {
        const char *name = vkm_qtype_name(types[t]);
        const int blk = (int)vkm_qtype_get(types[t])->block;
        CHECK_OK(vkm_ref_quant_row(types[t], x, q, N));
        CHECK_OK(vkm_ref_dequant_row(types[t], q, y, N));
        int bad = 0;
        double se = 0, sx = 0;
        for (int b = 0; b < N / blk; b++) {
            float amax = 0;
            for (int i = 0; i < blk; i++) amax = fmaxf(amax, fabsf(x[b * blk + i]));
            for (int i = b * blk; i < (b + 1) * blk; i++) {
                bad += !(fabsf(y[i] - x[i]) <= 0.25f * amax);
                se += (double)(y[i] - x[i]) * (y[i] - x[i]);
                sx += (double)x[i] * x[i];
            }
        }
        CHECK_MSG(bad == 0, "%s: %d elements off by more than amax/4", name, bad);
        CHECK_MSG(se <= 0.01 * sx, "%s: relative squared error %g", name, se / sx);
        printf("%s quantizer: relative RMS error %.4f\n", name, sqrt(se / sx));
    }
    x[7] = INFINITY;
    CHECK(vkm_ref_quant_row(VKM_IQ4_XS, x, q, 256) == VKM_EINVAL);
}

int main(void) {
    test_iq4_quant();
    test_signs();
    test_iq2_xxs();
    test_iq2_xs();
    test_iq2_s();
    test_iq3_xxs();
    test_iq3_s();
    test_iq1_s();
    test_iq1_m();
    test_iq4_nl();
    test_iq4_xs();
    test_iq4_grid();
    test_matmul_errors();
    return check_done();
}
