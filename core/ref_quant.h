/* ref_quant.h - plain-C reference for ggml weight formats: dequantize and quantize one row.
 *
 * This is the test oracle for the GPU kernels and the quantizer behind synthetic test models.
 * Supported types: F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K,
 * and for dequantization only IQ1_S, IQ1_M, IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS, IQ3_S, IQ4_NL, IQ4_XS.
 * A row of n elements occupies vkm_ref_row_bytes(type, n) bytes; n must be a positive multiple of
 * the type's block (32 for Q*_0/Q*_1/IQ4_NL, 256 for K-quants and the other IQ types, 1 for
 * floats). Buffers must not overlap.
 * Errors: VKM_EINVAL (bad n, non-finite input to a block quantizer), VKM_ERANGE (a block scale
 * does not fit in f16), VKM_EUNSUPPORTED (type not handled here, or an IQ type given to the
 * quantizer; the message names it). */
#ifndef VKM_REF_QUANT_H
#define VKM_REF_QUANT_H

#include <stddef.h>
#include <stdint.h>

/* Bytes of one row of n elements; 0 if n <= 0, not a multiple of the block, or the type is
 * unknown (wraps vkm_qtype_row_bytes). */
size_t vkm_ref_row_bytes(uint32_t type, int64_t n);

/* dst[0..n) = the values encoded in src (vkm_ref_row_bytes(type, n) bytes), per spec §1.4. */
int vkm_ref_dequant_row(uint32_t type, const void *src, float *dst, int64_t n);

/* Encodes src[0..n) into dst (vkm_ref_row_bytes(type, n) bytes). Round to nearest with block
 * scales chosen so that every value lies inside the representable range (no clipping); the
 * per-type worst-case error bounds are documented in ref_quant.c. F16/BF16: round to nearest
 * even; F32: copy. Not llama.cpp's error-minimizing search, so bytes differ from llama.cpp's. */
int vkm_ref_quant_row(uint32_t type, const float *src, void *dst, int64_t n);

/* Random but valid blocks of an IQ type (every grid index, sign and scale field random) for the
 * types without a quantizer here (IQ1_*, IQ2_*, IQ3_*; IQ4_* too): n elements into dst, the
 * bytes from the xorshift state *state (advanced), each block's f16 scale chosen so that its
 * values have about the RMS `rms` (> 0). For benchmarks and synthetic models, not a quantizer.
 * VKM_EUNSUPPORTED for other types. */
int vkm_ref_random_iq_row(uint32_t type, uint64_t *state, float rms, void *dst, int64_t n);

/* Activation quantizers of spec §4.8 (what llama.cpp's CPU backend does to the right-hand side
 * of a matmul), for fidelity experiments. Value i is reconstructed as q[i] * d[i / block].
 * Q8_0 (block 32): d = fp16(amax / 127) (returned as the float of that f16),
 *   q = roundf(x * (1 / (amax / 127))) (llama.cpp divides by the unrounded d); d[n/32].
 * Q8_K (block 256): max = the value of largest |x| (signed), iscale = -127 / max,
 *   q = min(127, round(iscale * x)), d = 1 / iscale (f32); all-zero block: d = 0, q = 0; d[n/256].
 * n must be a positive multiple of the block. */
int vkm_ref_quant_q8_0_act(const float *x, int8_t *q, float *d, int64_t n);
int vkm_ref_quant_q8_k_act(const float *x, int8_t *q, float *d, int64_t n);

#endif
