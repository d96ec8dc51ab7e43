/* cpu_matmul.h - CPU GEMV/GEMM on ggml weights as they lie in the mapped GGUF, and the routed
 * expert FFN built on it (gate and up GEMVs, SwiGLU, down GEMV), for experts computed where
 * they lie in host memory.
 *
 * Activations are quantized once per token row to an 8-bit block format, then dotted with the
 * weight blocks in integer arithmetic: vkm_cpu_q8 (32 int8 values, a float scale d = max|x| /
 * 127, the sums of each half) for Q4_0..Q8_0 and IQ4_NL (blocks of 32), vkm_cpu_q8k (256 values,
 * one scale, the sums of each 16) for the K-quants and the other IQ types (blocks of 256), so a
 * super-block is summed as integers and scaled once (like ggml's Q8_0 and Q8_K); F32/F16/BF16
 * weights take float activations instead.
 * Kernels exist for F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K,
 * IQ1_S, IQ1_M, IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS, IQ3_S, IQ4_NL and IQ4_XS, each in portable C and
 * (x86-64) AVX2+FMA+F16C; Q4_0, Q8_0, Q4_K and Q6_K also in AVX-512 (F/DQ/BW/VL + VNNI, where
 * those beat AVX2). The best path the CPU and OS support is chosen at run time (vkm_cpu_set_isa
 * overrides it, for tests and benchmarks). Any other type gives VKM_EUNSUPPORTED naming it.
 *
 * Tolerance against vkm_ref_matmul (the dequantized row dotted in double with the float x):
 *   quantized types (the IQ types included: their grid values times their scales are summed as
 *     integers in units of 1/8 of the block scale, exactly): the weights are exact, only x is
 *     rounded (by at most d/2 per value), so for each output |y - y_ref| <= sum over the
 *     activation blocks b of x (32 values for Q4_0..Q8_0 and IQ4_NL, 256 for Q2_K..Q6_K and the
 *     other IQ types) of (max|x_b| / 254) * sum_b |w| + 1e-5 * sum |w x| (float accumulation).
 *   F32/F16/BF16: float accumulation only: |y - y_ref| <= 1e-5 * sum |w x|.
 * The same bound holds for every ISA path; tests/test_cpu_matmul.c checks it.
 *
 * Shapes follow ref_matmul.h: W {k, m} = m rows of k elements, row r at r * row_bytes; x is
 * [n][k] floats, y is [n][m] floats, y[j][r] = W[r] . x[j]. k must be a multiple of the type's
 * block and, for Q4_0..Q8_0, of 32. Threads split the m rows in chunks of
 * VKM_CPU_ROW_CHUNK (pool may be NULL: the calling thread does it all). */
#ifndef VKM_CPU_MATMUL_H
#define VKM_CPU_MATMUL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cpu_pool.h"

#define VKM_CPU_ROW_CHUNK 16 /* output rows per claimed chunk of work */

/* One block of 32 quantized activations: value i is q[i] * d; s[h] = sum of q[16h .. 16h+15]. */
typedef struct vkm_cpu_q8 {
    float d;
    int16_t s[2];
    int8_t q[32];
} vkm_cpu_q8;

/* One block of 256 quantized activations for the K-quants: value i is q[i] * d; s[j] = sum of
 * q[16j .. 16j+15]. */
typedef struct vkm_cpu_q8k {
    float d;
    int16_t s[16];
    int8_t q[256];
} vkm_cpu_q8k;

enum vkm_cpu_isa {
    VKM_CPU_ISA_AUTO = 0,     /* the best this CPU supports (the default) */
    VKM_CPU_ISA_PORTABLE = 1, /* plain C */
    VKM_CPU_ISA_AVX2 = 2,     /* x86-64 AVX2 + FMA + F16C */
    VKM_CPU_ISA_AVX512 = 3,   /* AVX-512 F/DQ/BW/VL + VNNI (Q4_0, Q8_0, Q4_K, Q6_K; else AVX2) */
};

/* Selects the kernels used from now on (process-wide; not while matmuls run). An ISA the CPU
 * (or build, or OS) lacks: VKM_EUNSUPPORTED, selection unchanged. */
int vkm_cpu_set_isa(int isa);
/* The path in use: VKM_CPU_ISA_PORTABLE, _AVX2 or _AVX512, and its name ("portable", "avx2",
 * "avx512"); vkm_cpu_isa_from_name is the inverse (-1 for an unknown name). */
int vkm_cpu_isa_from_name(const char *name);
int vkm_cpu_isa(void);
const char *vkm_cpu_isa_name(int isa);
/* Whether this CPU can run `isa`. */
bool vkm_cpu_isa_available(int isa);

/* Whether type has a CPU kernel. */
bool vkm_cpu_has_type(uint32_t wtype);
/* Bytes of one activation row of k elements in the format wtype's kernel takes: k/32 vkm_cpu_q8
 * blocks for Q4_0..Q8_0 and IQ4_NL, k/256 vkm_cpu_q8k for the K-quants and the other IQ types, k
 * floats for F32/F16/BF16; 0 for a bad k or type. */
size_t vkm_cpu_act_bytes(uint32_t wtype, int64_t k);
/* Converts x[0..k) into that format at dst (vkm_cpu_act_bytes bytes). */
int vkm_cpu_quant_act(uint32_t wtype, const float *x, int64_t k, void *dst);

/* y[n][m] = x[n][k] * W^T for W = wtype {k, m} at w, activations already converted: act is
 * [n] rows of vkm_cpu_act_bytes(wtype, k) bytes. */
int vkm_cpu_matmul_q(vkm_cpu_pool *pool, uint32_t wtype, const void *w, int64_t k, int64_t m,
                     const void *act, int64_t n, float *y);
/* The same from float x (converted into a temporary buffer). */
int vkm_cpu_matmul(vkm_cpu_pool *pool, uint32_t wtype, const void *w, int64_t k, int64_t m,
                   const float *x, int64_t n, float *y);

/* One routed expert: gate, up {E, Fe} and down {Fe, E} matrices (pointers into the mapped
 * stacked tensors; gate and up may be two halves of a fused gate_up tensor). */
typedef struct vkm_cpu_expert {
    int64_t n_embd, n_ff;        /* E, Fe */
    uint32_t gate_type, up_type; /* gate_type == up_type when fused */
    uint32_t down_type;
    const void *gate, *up, *down;
} vkm_cpu_expert;

/* y[n][E] = down . swiglu(gate . x, up . x) for x [n][E]. Bad shapes or types -> VKM_EINVAL /
 * VKM_EUNSUPPORTED before anything is written; VKM_ENOMEM if scratch cannot be allocated. */
int vkm_cpu_expert_ffn(vkm_cpu_pool *pool, const vkm_cpu_expert *ex, const float *x, int64_t n,
                       float *y);

struct vkm_layer;
/* Expert e of MoE layer L (its stacked tensors as loaded by model.c, fused or not). */
int vkm_cpu_expert_of_layer(const struct vkm_layer *L, int64_t e, vkm_cpu_expert *out);

#endif
