/* ref_forward.h - the plain-C reference forward pass of a deepseek2 model (spec §4), the oracle the
 * GPU forward is tested against.
 *
 * A vkm_ref_fwd holds a latent KV cache: per layer and position, kv_dim = Ckv + R floats
 * (c normalised, k_pe rotated), for both the MLA absorbed path (§4.4a) and the naive path of legacy
 * attn_kv_b files (§4.4b, which re-expands K/V from the cached c). Each vkm_ref_fwd_eval() call
 * appends n tokens at positions n_past..n_past+n-1 with a causal mask, so one batch, n single
 * tokens or any split of a prompt give the same logits.
 *
 * Simple loops with double-accumulated dot products; weights are dequantized row by row through
 * ref_matmul. Not fast: meant for tiny and small test models. */
#ifndef VKM_REF_FORWARD_H
#define VKM_REF_FORWARD_H

#include <stdbool.h>
#include <stdint.h>

#include "model.h"

typedef struct vkm_ref_fwd vkm_ref_fwd;

typedef struct vkm_ref_fwd_opts {
    int n_ctx;      /* cache capacity in tokens; 0 = min(n_ctx_train, 4096) */
    bool kv_f16;    /* mimic llama.cpp's default F16 KV cache: round cached K (and, in the
                       attention products, Q and the softmax probabilities) through F16 */
    bool act_quant; /* mimic llama.cpp's CPU matmuls: round activations to the weight's
                       vec_dot_type (Q8_K for K-quants, Q8_0 for 32-blocks, F16, BF16) */
} vkm_ref_fwd_opts;

/* Creates a forward state with an empty cache for m (which must outlive it). opts may be NULL
 * (F32 cache, float activations, default context). VKM_EINVAL for a bad n_ctx, VKM_ENOMEM. */
int vkm_ref_fwd_create(const vkm_model *m, const vkm_ref_fwd_opts *opts, vkm_ref_fwd **out);
void vkm_ref_fwd_destroy(vkm_ref_fwd *f);

/* Evaluates tokens[0..n) at positions n_past..n_past+n-1, appends them to the cache and writes
 * logits[n][n_vocab] (logits may be NULL). VKM_ERANGE if the context would overflow or a token id
 * is outside [0, n_vocab) (nothing is changed then), VKM_EINVAL for n <= 0, VKM_ENOMEM. */
int vkm_ref_fwd_eval(vkm_ref_fwd *f, const int32_t *tokens, int n, float *logits);

/* Routing statistics: from now on each eval adds 1 to counts[layer * n_expert + e] for every
 * (token, routed expert e) of every MoE layer; counts ([n_layer][n_expert], zeroed by the
 * caller, outliving f) or NULL to stop counting. */
void vkm_ref_fwd_count_experts(vkm_ref_fwd *f, uint64_t *counts);

/* Number of cached positions. */
int vkm_ref_fwd_n_past(const vkm_ref_fwd *f);
/* Capacity in tokens. */
int vkm_ref_fwd_n_ctx(const vkm_ref_fwd *f);
/* Forgets positions >= n_past (0 clears the cache). VKM_ERANGE if n_past is beyond the cache. */
int vkm_ref_fwd_truncate(vkm_ref_fwd *f, int n_past);

#endif
