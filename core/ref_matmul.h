/* ref_matmul.h - plain-C reference matmul on (quantized) ggml weights (spec §1.5), the oracle for
 * the GPU GEMV/GEMM kernels.
 *
 * Weights are ggml {k, m} (or stacked {k, m, n_mat}): m rows of k elements, row r of matrix e at
 * byte offset (e*m + r) * vkm_ref_row_bytes(wtype, k). Activations x are row-major [n][k] floats,
 * outputs y are row-major [n][m] floats with y[j][r] = sum_i W[r][i] * x[j][i]. Weights are
 * dequantized one row at a time (no full float copy); sums are accumulated in double, then rounded
 * to float once, so the result is the exact dot product of the dequantized row up to one rounding.
 * k must be a positive multiple of the type's block; m, n may be 0 (nothing to do). */
#ifndef VKM_REF_MATMUL_H
#define VKM_REF_MATMUL_H

#include <stddef.h>
#include <stdint.h>

/* y[n][m] = x[n][k] * W^T, W = wtype {k, m} at w. */
int vkm_ref_matmul(uint32_t wtype, const void *w, int64_t k, int64_t m, const float *x, int64_t n,
                   float *y);

/* Indexed matmul on stacked weights {k, m, n_mat}: y[j] = W[mat_of_row[j]] * x[j] for each of the
 * n_rows rows. Any index outside [0, n_mat) -> VKM_EINVAL before anything is written. */
int vkm_ref_matmul_id(uint32_t wtype, const void *w, int64_t k, int64_t m, int64_t n_mat,
                      const float *x, int64_t n_rows, const int32_t *mat_of_row, float *y);

/* The 8-bit activations of the GPU's integer-dot GEMVs (shaders/matmul_common.h, Q8X format):
 * x[k] (k a positive multiple of 32) as k / 32 blocks of VKM_REF_Q8X_BLOCK bytes at out: per 32
 * values q[32] int8, then the floats d, d * (q[0] + .. + q[15]), d, d * (q[16] + .. + q[31]) with
 * d = max |x| / 127 and q = x * (127 / max |x|) rounded to nearest even (0 for a block of zeros),
 * computed in float as quant_q8.comp does. VKM_EINVAL for a bad k. */
#define VKM_REF_Q8X_BLOCK 48
int vkm_ref_quant_q8x(const float *x, int64_t k, void *out);
/* x[k] = d * q of the blocks vkm_ref_quant_q8x wrote (what the integer-dot GEMVs multiply). */
int vkm_ref_dequant_q8x(const void *q, int64_t k, float *x);
/* The integer-dot GEMV's result: y[n][m] = Xq[n][k] * W^T with Xq = each row of x through
 * vkm_ref_quant_q8x and vkm_ref_dequant_q8x (the dot products of integer codes and scales the
 * kernel forms are this sum, exactly, up to float rounding). */
int vkm_ref_matmul_q8x(uint32_t wtype, const void *w, int64_t k, int64_t m, const float *x,
                       int64_t n, float *y);

/* Byte offset and size of matrix e of a stacked wtype {k, m, n_mat} tensor (what the expert pager
 * uploads). VKM_EINVAL for bad shapes or e outside [0, n_mat); VKM_ERANGE if sizes overflow. */
int vkm_ref_slice_bytes(uint32_t wtype, int64_t k, int64_t m, int64_t n_mat, int64_t e,
                        size_t *offset, size_t *size);

#endif
