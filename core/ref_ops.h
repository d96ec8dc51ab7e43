/* ref_ops.h - plain-C reference implementations of the element-wise and small ops of the deepseek2
 * forward pass (spec §4): RMSNorm, SiLU/SwiGLU, softmax, RoPE (NORMAL mode with YaRN) and MoE
 * routing. They follow llama.cpp's CPU backend operation order (float math, double sums where ggml
 * uses them) so that they serve as the oracle for the GPU kernels.
 *
 * Invariants: no allocation, no global state; sizes are the caller's responsibility (asserted). */
#ifndef VKM_REF_OPS_H
#define VKM_REF_OPS_H

#include <stdbool.h>
#include <stdint.h>

#define VKM_REF_MAX_EXPERT                                                                         \
    512 /* llama.cpp's LLAMA_MAX_EXPERTS; n_expert is validated against it                         \
         */

/* Gating functions (deepseek2.expert_gating_func). */
enum { VKM_GATING_SOFTMAX = 1, VKM_GATING_SIGMOID = 2 };

/* y[i] = x[i] * (1/sqrtf(mean(x²) + eps)) * w[i], the sum of squares accumulated in double.
 * w may be NULL (no weight). y may alias x. */
void vkm_ref_rmsnorm(float *y, const float *x, const float *w, int n, float eps);

/* silu(a) = a / (1 + e^-a). */
float vkm_ref_silu(float a);
/* y[i] = silu(gate[i]) * up[i]; y may alias gate or up. */
void vkm_ref_swiglu(float *y, const float *gate, const float *up, int n);

/* In place x[i] = softmax(scale * x)[i]; entries equal to -INFINITY get 0. At least one entry
 * must be finite. */
void vkm_ref_softmax(float *x, int n, float scale);

/* RoPE parameters of one model/context (spec §4.5, §4.6). */
typedef struct vkm_ref_rope {
    int n_rot;         /* R: rotated dims (even) */
    float freq_base;   /* base */
    float freq_scale;  /* 1/s (1 = no scaling) */
    float ext_factor;  /* 1 for YaRN, 0 otherwise */
    float attn_factor; /* context attn_factor A; cos/sin get A (·(1+0.1 ln s) when ext != 0) */
    float corr_low;    /* YaRN correction dims, from vkm_ref_rope_corr_dims() */
    float corr_high;
} vkm_ref_rope;

/* YaRN correction range (ggml_rope_yarn_corr_dims): dims[0] = max(0, floor(corr(beta_fast))),
 * dims[1] = min(n_rot-1, ceil(corr(beta_slow))). */
void vkm_ref_rope_corr_dims(int n_rot, int n_ctx_orig, float freq_base, float beta_fast,
                            float beta_slow, float dims[2]);

/* cs[2k] = cos θ_k · m, cs[2k+1] = sin θ_k · m for k < n_rot/2 at position pos, with θ computed by
 * repeated float multiplication like ggml's rope cache. cs has n_rot floats. */
void vkm_ref_rope_cache(float *cs, int64_t pos, const vkm_ref_rope *r);

/* Rotates consecutive pairs of x[0..n_rot) (NORMAL mode) with a cache from vkm_ref_rope_cache. */
void vkm_ref_rope_apply(float *x, const float *cs, int n_rot);

/* Router configuration (spec §4.7). */
typedef struct vkm_ref_router {
    int n_expert;     /* X */
    int n_used;       /* top-k */
    int n_group;      /* grouping only if > 1 */
    int n_group_used; /* groups kept */
    int gating;       /* VKM_GATING_* */
    bool norm;        /* renormalise the top-k weights */
    float scale;      /* applied if != 0 and != 1 */
} vkm_ref_router;

/* Routes one token: logits[X] are the router outputs, bias[X] (or NULL) the selection-only bias.
 * Writes the selected experts (descending selection score) to sel[n_used] and their weights to
 * w[n_used]. */
void vkm_ref_moe_route(const float *logits, const float *bias, const vkm_ref_router *cfg, int *sel,
                       float *w);

#endif
