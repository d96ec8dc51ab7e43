/* model.h - a deepseek2 model as described by a GGUF file: hyperparameters (spec §2) and the
 * tensor table (spec §3), fully validated.
 *
 * vkm_model_load() reads every key with llama.cpp's rules (type-strict, defaults, the "lite" and
 * gating heuristics, is_mla), derives the attention/RoPE constants of §4.5-§4.6, then looks up
 * every tensor the architecture needs and checks its shape and type exactly; every tensor in the
 * file must be consumed (the tensors of MTP/nextn layers blk.{n_layer..} are ignored).
 *
 * Invariants after a successful load:
 *   - every vkm_tensor the configuration requires has data != NULL, the exact shape, a supported
 *     type, and 1-D tensors (norms, router bias) are F32;
 *   - a vkm_tensor that does not apply (e.g. attn_q when q_lora_rank > 0) is all zero (data NULL);
 *   - tensor data and names point into the gguf mapping: the model does not own the vkm_gguf,
 *     which must outlive it. */
#ifndef VKM_MODEL_H
#define VKM_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gguf.h"

#define VKM_MODEL_MAX_LAYERS 512     /* llama.cpp's LLAMA_MAX_LAYERS */
#define VKM_MODEL_MAX_EXPERT 512     /* llama.cpp's LLAMA_MAX_EXPERTS */
#define VKM_MODEL_MAX_DIM (1u << 20) /* bound on every width/rank/count key (overflow safety) */

enum vkm_rope_scaling { VKM_ROPE_SCALING_NONE = 0, VKM_ROPE_SCALING_LINEAR, VKM_ROPE_SCALING_YARN };

/* One tensor of the file, used in place. */
typedef struct vkm_tensor {
    const char *name;     /* GGUF name (lives in the gguf); NULL if the tensor is absent */
    uint32_t type;        /* ggml type id (enum vkm_qtype), supported */
    int64_t ne[4];        /* shape, ne[0] innermost; unused dims are 1 */
    const void *data;     /* nbytes, row-major: row (i1, i2) at (i2 * ne[1] + i1) * row_bytes */
    size_t nbytes;        /* total bytes */
    size_t row_bytes;     /* bytes of one ne[0]-row */
    int file;             /* split part holding the data */
    uint64_t file_offset; /* absolute offset of the data within that part */
} vkm_tensor;

/* Hyperparameters. Letters are those of spec §3: E, H, V, R, Dn, Dv, Dqk, Cq, Ckv, F, Fe, X, S. */
typedef struct vkm_hparams {
    /* ---- as read (spec §2) ---- */
    uint32_t n_ctx_train;       /* context_length */
    uint32_t n_embd;            /* E */
    uint32_t n_layer_all;       /* block_count (main stack + nextn layers) */
    uint32_t n_nextn;           /* nextn_predict_layers (ignored MTP layers at the end) */
    uint32_t n_layer;           /* main stack = n_layer_all - n_nextn */
    uint32_t n_ff;              /* F of the dense layers (layer 0's if given per layer) */
    uint32_t n_head;            /* H */
    uint32_t n_head_kv;         /* 1 in MLA files, H in legacy files */
    uint32_t key_length;        /* MLA: Ckv + R; legacy: Dqk */
    uint32_t value_length;      /* MLA: Ckv; legacy: Dv */
    uint32_t n_lora_q;          /* Cq (0: attn_q is used) */
    uint32_t n_lora_kv;         /* Ckv */
    uint32_t n_rot;             /* R: rotated dims of each head */
    float eps;                  /* RMSNorm epsilon */
    float rope_freq_base;       /* base */
    int rope_scaling;           /* enum vkm_rope_scaling */
    float rope_scale_factor;    /* s as stored (0: no scaling) */
    uint32_t n_ctx_orig;        /* YaRN original context */
    float yarn_log_mul;         /* L = stored yarn_log_multiplier / 0.1 (mscale_all_dim) */
    float rope_attn_factor;     /* rope.scaling.attn_factor (default 1) */
    uint32_t n_dense_lead;      /* layers i < this use the dense FFN */
    uint32_t n_ff_exp;          /* Fe */
    uint32_t n_expert_shared;   /* S */
    uint32_t n_expert;          /* X */
    uint32_t n_expert_used;     /* top-k */
    uint32_t n_group;           /* expert groups (grouping only if > 1) */
    uint32_t n_group_used;      /* groups kept */
    float expert_weights_scale; /* applied if != 0 and != 1 */
    bool expert_weights_norm;   /* renormalise top-k weights */
    uint32_t gating;            /* VKM_GATING_SOFTMAX (1) or VKM_GATING_SIGMOID (2) */
    uint32_t n_vocab;           /* V = token-list length */
    bool is_lite;               /* no q_lora_rank key read */
    bool is_mla;                /* split attn_k_b / attn_v_b */
    /* ---- derived (spec §2, §4.5, §4.6) ---- */
    uint32_t d_qk;             /* Dqk = Dn + R */
    uint32_t d_nope;           /* Dn */
    uint32_t d_v;              /* Dv */
    uint32_t kv_dim;           /* latent cache width per token and layer: Ckv + R */
    float freq_scale;          /* 1/s, or 1 */
    float ext_factor;          /* 1 for YaRN, else 0 */
    float attn_factor;         /* context A (rope cos/sin get A·(1+0.1 ln s) when ext != 0) */
    float rope_mscale;         /* mrope: the magnitude cos/sin are actually scaled by */
    float corr_low, corr_high; /* YaRN correction dims */
    float kq_scale;            /* mscale² / sqrt(Dqk) */
} vkm_hparams;

/* The tensors of one main-stack layer. Absent ones are zeroed (see the invariants above). */
typedef struct vkm_layer {
    bool moe;                    /* i >= n_dense_lead */
    uint32_t n_ff;               /* F of this layer (dense layers) */
    vkm_tensor attn_norm;        /* {E} */
    vkm_tensor attn_q_a;         /* {E, Cq}            Cq > 0 */
    vkm_tensor attn_q_a_norm;    /* {Cq}               Cq > 0 */
    vkm_tensor attn_q_b;         /* {Cq, H*Dqk}        Cq > 0 */
    vkm_tensor attn_q;           /* {E, H*Dqk}         Cq == 0 */
    vkm_tensor attn_kv_a_mqa;    /* {E, Ckv+R}: rows [0,Ckv) = c, [Ckv,Ckv+R) = k_pe */
    vkm_tensor attn_kv_a_norm;   /* {Ckv} */
    vkm_tensor attn_k_b;         /* {Dn, Ckv, H}       MLA */
    vkm_tensor attn_v_b;         /* {Ckv, Dv, H}       MLA */
    vkm_tensor attn_kv_b;        /* {Ckv, H*(Dn+Dv)}   legacy */
    vkm_tensor attn_output;      /* {H*Dv, E} */
    vkm_tensor ffn_norm;         /* {E} */
    vkm_tensor ffn_gate;         /* {E, F}             dense */
    vkm_tensor ffn_up;           /* {E, F}             dense */
    vkm_tensor ffn_down;         /* {F, E}             dense */
    vkm_tensor ffn_gate_inp;     /* {E, X}             MoE router */
    vkm_tensor exp_probs_b;      /* {X}                optional selection bias */
    vkm_tensor ffn_gate_exps;    /* {E, Fe, X}         unless fused */
    vkm_tensor ffn_up_exps;      /* {E, Fe, X}         unless fused */
    vkm_tensor ffn_gate_up_exps; /* {E, 2*Fe, X}      fused: rows [0,Fe) gate, [Fe,2Fe) up */
    vkm_tensor ffn_down_exps;    /* {Fe, E, X} */
    vkm_tensor ffn_gate_shexp;   /* {E, Fe*S}          S > 0 */
    vkm_tensor ffn_up_shexp;     /* {E, Fe*S}          S > 0 */
    vkm_tensor ffn_down_shexp;   /* {Fe*S, E}          S > 0 */
} vkm_layer;

typedef struct vkm_model {
    vkm_hparams hp;
    const vkm_gguf *gguf;   /* not owned */
    vkm_tensor token_embd;  /* {E, V} */
    vkm_tensor output_norm; /* {E} */
    vkm_tensor output;      /* {E, V}; equals token_embd when tied */
    bool tied_output;       /* no output tensor in the file */
    vkm_layer *layers;      /* [hp.n_layer] */
} vkm_model;

/* Reads and validates the model in g. VKM_EFORMAT names the offending key/tensor and value,
 * VKM_EUNSUPPORTED an unsupported type or feature, VKM_ENOMEM. On success *out must be released
 * with vkm_model_free() before g is closed. */
int vkm_model_load(const vkm_gguf *g, vkm_model **out);
void vkm_model_free(vkm_model *m);

/* Pointer to row i1 of matrix i2 of t (i1 < ne[1], i2 < ne[2]*ne[3]); asserted. */
const void *vkm_model_row(const vkm_tensor *t, int64_t i1, int64_t i2);

/* Writes a one-line human summary of the hyperparameters into buf (always NUL-terminated). */
void vkm_model_describe(const vkm_model *m, char *buf, size_t n);

#endif
