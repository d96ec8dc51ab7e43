/* fp16.h - exact conversions between f32 and the two 16-bit float formats GGUF uses.
 *
 * IEEE binary16 (F16): 1 sign, 5 exponent (bias 15), 10 mantissa bits; subnormals below 2^-14.
 * bfloat16 (BF16): the upper 16 bits of an f32.
 * Widening (to f32) is exact for every input, subnormals, infinities and NaNs included.
 * Narrowing (from f32) rounds to nearest, ties to even; values that round past the largest
 * finite half (65504) become infinity; NaN stays NaN (made quiet, sign kept).
 * Pure bit manipulation: no dependence on the compiler's _Float16 or the FPU rounding mode. */
#ifndef VKM_FP16_H
#define VKM_FP16_H

#include <stdint.h>
#include <string.h>

static inline uint32_t vkm_fp16_f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static inline float vkm_fp16_bits_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* binary16 bits -> float (exact). */
static inline float vkm_fp16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t man = h & 0x3ffu;
    if (exp == 0) {
        /* zero or subnormal: man * 2^-24, exact in float */
        float v = (float)man * 5.9604644775390625e-08f;
        return vkm_fp16_bits_f32(vkm_fp16_f32_bits(v) | sign);
    }
    if (exp == 31) return vkm_fp16_bits_f32(sign | 0x7f800000u | (man << 13)); /* inf / nan */
    return vkm_fp16_bits_f32(sign | ((exp + 112u) << 23) | (man << 13));
}

/* float -> binary16 bits, round to nearest even. */
static inline uint16_t vkm_fp16_from_f32(float f) {
    uint32_t u = vkm_fp16_f32_bits(f);
    uint32_t sign = (u >> 16) & 0x8000u;
    uint32_t a = u & 0x7fffffffu;
    if (a >= 0x7f800000u) { /* inf or nan */
        if (a == 0x7f800000u) return (uint16_t)(sign | 0x7c00u);
        return (uint16_t)(sign | 0x7e00u | ((a >> 13) & 0x3ffu)); /* quiet nan, payload top */
    }
    if (a >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u); /* >= 65520: rounds to inf */
    if (a < 0x38800000u) {                                   /* below 2^-14: subnormal half */
        if (a < 0x33000000u) return (uint16_t)sign;          /* below 2^-25: rounds to 0 */
        uint32_t e = a >> 23;                                /* 102..112 */
        uint32_t m = (a & 0x7fffffu) | 0x800000u;            /* value = m * 2^(e-150) */
        uint32_t shift = 126u - e;                           /* result = m * 2^(e-126) */
        uint32_t r = m >> shift, rem = m & ((1u << shift) - 1u), half = 1u << (shift - 1u);
        if (rem > half || (rem == half && (r & 1u))) r++; /* may carry into the min normal */
        return (uint16_t)(sign | r);
    }
    uint32_t r = (a - 0x38000000u) >> 13; /* rebias exponent 127 -> 15, drop 13 bits */
    uint32_t rem = a & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (r & 1u))) r++; /* carry may bump the exponent */
    return (uint16_t)(sign | r);
}

/* bfloat16 bits -> float (exact). */
static inline float vkm_bf16_to_f32(uint16_t h) {
    return vkm_fp16_bits_f32((uint32_t)h << 16);
}

/* float -> bfloat16 bits, round to nearest even. */
static inline uint16_t vkm_bf16_from_f32(float f) {
    uint32_t u = vkm_fp16_f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40u); /* quiet nan */
    u += 0x7fffu + ((u >> 16) & 1u); /* overflow to inf is the correct rounding */
    return (uint16_t)(u >> 16);
}

/* The float value of f rounded to f16 (convenience for quantizers and tests). */
static inline float vkm_fp16_round(float f) {
    return vkm_fp16_to_f32(vkm_fp16_from_f32(f));
}

#endif
