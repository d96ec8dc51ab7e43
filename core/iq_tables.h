/* iq_tables.h - the codebooks of ggml's IQ weight types for the C reference (core/ref_quant.c).
 *
 * The grids are data carried over from ggml (shaders/iq_grids.h names the source and describes
 * the word layout; the device kernels read these arrays from a constant buffer, core/iq_gpu.c);
 * the small tables are defined here:
 *   kvalues_iq4nl: the 16 levels of IQ4_NL / IQ4_XS (ggml-common.h, as data);
 *   the sign byte of a 7-bit IQ2/IQ3 sign index s is s with bit 7 = the parity of s (ggml's
 *   ksigns_iq2xs table, which is that function), see vkm_iq_signs. */
#ifndef VKM_IQ_TABLES_H
#define VKM_IQ_TABLES_H

#include <stdint.h>

extern const uint32_t vkm_iq2xxs_grid[512]; /* 256 points x 2 words */
extern const uint32_t vkm_iq2xs_grid[1024]; /* 512 points x 2 words */
extern const uint32_t vkm_iq2s_grid[2048];  /* 1024 points x 2 words */
extern const uint32_t vkm_iq3xxs_grid[256];
extern const uint32_t vkm_iq3s_grid[512];
extern const uint32_t vkm_iq1s_grid[2048]; /* nibble-packed, value + 1 */
extern const int8_t vkm_iq4nl_values[16];
/* IQ4_NL / IQ4_XS for the device GEMV (shaders/gemv_iq.glsl): the levels of the two nibbles of a
 * byte b (low nibble: bits 0-15, high: bits 16-31). Words 0..255: as f16 (float X), 256..511: as
 * int8 bytes at bits 0 and 16 (8-bit X). */
extern const uint32_t vkm_iq4_grid[512];

/* IQ1_S / IQ1_M: the offset added to every grid value, +-1/8 by the block's sign bit. */
#define VKM_IQ1_DELTA 0.125f

/* The 8 sign bits (bit j set: element j negative) of a 7-bit sign index: bit 7 makes the count
 * of negative elements even. */
static inline uint8_t vkm_iq_signs(uint32_t s7) {
    uint32_t s = s7 & 127u, par = s;
    par ^= par >> 4;
    par ^= par >> 2;
    par ^= par >> 1;
    return (uint8_t)(s | (par & 1u) << 7);
}

/* Byte j (0..7) of grid point i of an 8-element grid of two words per point. */
static inline uint8_t vkm_iq_grid8(const uint32_t *grid, uint32_t i, int j) {
    return (uint8_t)(grid[2 * i + (uint32_t)j / 4] >> (8 * (j % 4)));
}

/* Element j (0..7) of IQ1 grid point i: -1, 0 or 1. */
static inline int vkm_iq1s_value(uint32_t i, int j) {
    return (int)((vkm_iq1s_grid[i] >> (8 * (j % 4) + 4 * (j / 4))) & 0xFu) - 1;
}

#endif
