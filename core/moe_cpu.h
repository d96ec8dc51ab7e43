/* moe_cpu.h - the CPU side of a MoE layer: routed experts computed where they lie in host
 * memory (the mapped GGUF) by a thread pool, their outputs written as the rows of the grouped
 * entries of work.eo (shaders/fwd_common.h) so that the GPU's moe_combine sums them with the
 * rest; and the cost model that decides, per miss, between the CPU and an upload
 * (vkmoe.h VKM_EXPERT_EXEC_AUTO).
 *
 * Tolerance: the CPU path computes with core/cpu_matmul.h's kernels, so an expert's output
 * differs from the GPU's (float activations) by the bound stated there: for quantized weights
 * the rounding of the activations to 8-bit blocks (at most max|x_b| / 254 per value, a relative
 * error of about 0.4% of a block's largest value), for F32/F16/BF16 float accumulation only. */
#ifndef VKM_MOE_CPU_H
#define VKM_MOE_CPU_H

#include <stdbool.h>
#include <stdint.h>

#include "model.h"

/* ------------------------------------------------------------------ cost model ---- */

/* Measured rates, in GB/s of expert bytes (0 = not measured). */
typedef struct vkm_moe_cpu_costs {
    double cpu_gbps;    /* the CPU expert FFN (gate+up+SwiGLU+down) for one token */
    double upload_gbps; /* one expert copied host -> device slot, the wait included */
} vkm_moe_cpu_costs;

/* The most tokens a miss may have for the CPU to be the cheaper place: a miss of t tokens
 * costs the CPU t * bytes / cpu (its cost grows with the tokens; weights are read once but the
 * arithmetic is per token, so this is pessimistic for large t) and an upload bytes / upload
 * (then the GPU computes it, which this model counts as free), so the CPU wins for
 * t <= cpu / upload. 0 when either rate is unknown (then every miss is uploaded). */
uint32_t vkm_moe_cpu_max_tokens(const vkm_moe_cpu_costs *c);
/* Whether a miss of `tokens` tokens is computed on the CPU (tokens <= vkm_moe_cpu_max_tokens). */
bool vkm_moe_cpu_prefer(const vkm_moe_cpu_costs *c, uint32_t tokens);

/* --------------------------------------------------------------- CPU experts ---- */

typedef struct vkm_moe_cpu vkm_moe_cpu;

/* A CPU expert executor with `threads` computing threads (the caller's included: 1 = no
 * helper thread; 0 = one per online core), for activation rows of n_embd floats. Errors as
 * vkm_cpu_pool_create's. */
int vkm_moe_cpu_create(int threads, int64_t n_embd, vkm_moe_cpu **out);
void vkm_moe_cpu_destroy(vkm_moe_cpu *mc); /* accepts NULL */
int vkm_moe_cpu_threads(const vkm_moe_cpu *mc);

/* Whether the routed experts of MoE layer L have CPU kernels for all their types. */
bool vkm_moe_cpu_supported(const vkm_layer *L);
/* Bytes of one expert of layer L (its gate, up and down matrices). */
uint64_t vkm_moe_cpu_expert_bytes(const vkm_layer *L);

/* Computes experts xs[0..n_x) of layer L for the batch: a [n_tok][E] the layer's normed FFN
 * input, sel [n_tok][K] its choices, ranges [2 * n_expert] their grouping
 * (pager.h vkm_pager_expert_ranges). For each expert x, the tokens that chose it (ascending, as
 * moe_group orders them) give the rows ranges[2x] .. +ranges[2x+1] of eo [n_tok*K][E]; nothing
 * else of eo is written. Errors: VKM_EINVAL for a bad expert, VKM_EUNSUPPORTED for a type
 * without a CPU kernel, VKM_ENOMEM. */
int vkm_moe_cpu_layer(vkm_moe_cpu *mc, const vkm_layer *L, const float *a, const int32_t *sel,
                      uint32_t n_tok, uint32_t K, uint32_t n_expert, const int32_t *ranges,
                      const int32_t *xs, uint32_t n_x, float *eo);

/* The startup probe of the cost model: the best of three one-token runs of expert 0 of layer L
 * (random activations), as GB/s of its bytes. */
int vkm_moe_cpu_probe(vkm_moe_cpu *mc, const vkm_layer *L, double *gbps);

#endif
