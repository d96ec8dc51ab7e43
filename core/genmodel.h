/* genmodel.h - synthetic deepseek2 GGUF models with random weights (spec §7), for tests and
 * benchmarks: presets of real and test-sized hyperparameters, a tensor plan with the types of a
 * quantization mix, and a streaming writer.
 *
 * Usage:
 *   vkm_genmodel_hparams hp;
 *   vkm_genmodel_preset("v3", &hp);
 *   vkm_genmodel_set_layers(&hp, 4, VKM_GENMODEL_AUTO);
 *   uint32_t mix; vkm_genmodel_mix_parse("q4_k_m", &mix);
 *   vkm_genmodel_write(&hp, mix, 42, "v3-4l.gguf", NULL, NULL);
 *
 * Invariants: a file written from hparams that pass vkm_genmodel_check() loads with
 * vkm_model_load() (and llama.cpp): the keys have the types llama.cpp reads, the tensor set is
 * exactly what the loader expects, 1-D tensors and the router stay F32, and every quantized
 * tensor has an ne0 its type's block divides. The output depends only on (hparams, mix, seed):
 * each row's values come from a generator seeded by (seed, tensor name, row), so the same inputs
 * give a byte-identical file. Tensor data is produced one row at a time while writing; memory use
 * is a few rows, whatever the model size. The vocabulary is always the 268-token byte-level one
 * of the test fixtures (256 GPT-2-mapped bytes, 8 merges, BOS 264, EOS 265, <｜User｜> 266,
 * <｜Assistant｜> 267); token_embd and output are sized to it. */
#ifndef VKM_GENMODEL_H
#define VKM_GENMODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VKM_GENMODEL_AUTO UINT32_MAX /* "keep the preset's value / derive it" */
#define VKM_GENMODEL_N_VOCAB 268

/* Everything a generated file describes. Letters as in spec §3. */
typedef struct vkm_genmodel_hparams {
    char name[64];            /* general.name */
    char pre[32];             /* tokenizer.ggml.pre */
    uint32_t chat_template;   /* enum vkm_chat_template written as tokenizer.chat_template
                                 (chat.h vkm_chat_template_jinja); 0 = none */
    uint32_t n_layer;         /* block_count */
    uint32_t n_dense_lead;    /* leading dense layers (<= n_layer) */
    uint32_t n_ctx;           /* context_length */
    uint32_t n_embd;          /* E */
    uint32_t n_ff;            /* F of the dense layers */
    uint32_t n_head;          /* H */
    uint32_t q_lora;          /* Cq; 0 = attn_q */
    uint32_t kv_lora;         /* Ckv */
    uint32_t d_nope;          /* Dn */
    uint32_t n_rot;           /* R */
    uint32_t d_v;             /* Dv */
    uint32_t n_expert;        /* X */
    uint32_t n_expert_used;   /* top-k */
    uint32_t n_group;         /* expert groups (0: keys not written; 1: no grouping) */
    uint32_t n_group_used;    /* groups kept */
    uint32_t n_expert_shared; /* S */
    uint32_t n_ff_exp;        /* Fe */
    uint32_t gating;          /* 1 softmax, 2 sigmoid */
    bool exp_probs_b;         /* router selection bias tensors */
    bool weights_norm;        /* expert_weights_norm (written only when true) */
    float weights_scale;      /* expert_weights_scale */
    float eps;                /* RMSNorm epsilon */
    float rope_base;          /* rope.freq_base */
    float yarn_factor;        /* 0: no rope scaling keys */
    uint32_t yarn_orig_ctx;   /* original_context_length */
    float mscale_all_dim;     /* stored as yarn_log_multiplier = 0.1 * this */
    uint32_t routing;         /* enum vkm_genmodel_routing: router values (not a KV) */
} vkm_genmodel_hparams;

/* Expert popularity the router tensors give (genmodel.c, "skewed routing", has the formulas). */
enum vkm_genmodel_routing {
    VKM_GENMODEL_ROUTING_UNIFORM = 0, /* i.i.d. router rows: every expert about equally likely */
    VKM_GENMODEL_ROUTING_SKEWED = 1,  /* Zipf-like popularity, a different order per layer */
};

/* Quantization mixes. */
enum vkm_genmodel_mix {
    VKM_GENMODEL_F32 = 0,
    VKM_GENMODEL_F16,
    VKM_GENMODEL_BF16,
    VKM_GENMODEL_Q8_0,
    VKM_GENMODEL_Q4_0,
    VKM_GENMODEL_Q4_K_M,
    VKM_GENMODEL_Q2_K,
    VKM_GENMODEL_Q3_K,
    VKM_GENMODEL_Q4_K,
    VKM_GENMODEL_Q5_K,
    VKM_GENMODEL_Q6_K,
    VKM_GENMODEL_IQ4_NL,
    VKM_GENMODEL_IQ4_XS,
    VKM_GENMODEL_IQ1_S,
    VKM_GENMODEL_IQ2_XXS,
    VKM_GENMODEL_IQ3_XXS,
    VKM_GENMODEL_MIX_COUNT
};

/* What a tensor is, which decides its type in a mix and its initial values. */
enum vkm_genmodel_kind {
    VKM_GENMODEL_WEIGHT = 0, /* a 2-D/3-D matrix: values ~ std 1/sqrt(ne0) */
    VKM_GENMODEL_EMBD,       /* token_embd: std 1 */
    VKM_GENMODEL_OUTPUT,     /* output: Q6_K in q4_k_m */
    VKM_GENMODEL_FFN_DOWN,   /* ffn_down / _exps / _shexp: Q6_K on some layers in q4_k_m */
    VKM_GENMODEL_NORM,       /* norm vectors: 1 ± 0.1, F32 */
    VKM_GENMODEL_BIAS,       /* exp_probs_b: ± 0.01, F32 */
    VKM_GENMODEL_ROUTER,     /* ffn_gate_inp: F32 */
};

typedef struct vkm_genmodel_tensor {
    char name[64];   /* GGUF name */
    uint32_t n_dims; /* 1..3 */
    int64_t ne[3];   /* shape, ne[0] innermost; unused dims 1 */
    uint32_t type;   /* ggml type id chosen by the mix */
    uint32_t kind;   /* enum vkm_genmodel_kind */
    int32_t layer;   /* block index, -1 for global tensors */
    uint64_t nbytes; /* data bytes (unpadded) */
} vkm_genmodel_tensor;

/* The tensors of a model in file order (token_embd, blk.0.., output_norm, output). */
typedef struct vkm_genmodel_plan {
    vkm_genmodel_tensor *tensors; /* [n] */
    int64_t n;
    uint64_t data_bytes; /* sum of nbytes */
} vkm_genmodel_plan;

/* ---- presets and mixes ---- */
int vkm_genmodel_n_presets(void);
const char *vkm_genmodel_preset_name(int i); /* "tiny", ...; NULL out of range */
const char *vkm_genmodel_preset_desc(int i); /* one line for --help */
/* Fills *hp with preset `name`. VKM_EINVAL for an unknown name. */
int vkm_genmodel_preset(const char *name, vkm_genmodel_hparams *hp);

const char *vkm_genmodel_mix_name(uint32_t mix);             /* "q4_k_m"; NULL out of range */
const char *vkm_genmodel_mix_desc(uint32_t mix);             /* one line for --help */
int vkm_genmodel_mix_parse(const char *name, uint32_t *mix); /* VKM_EINVAL if unknown */

/* ---- overrides (each VKM_EINVAL with a message on a bad value; hp unchanged then) ---- */
/* n_layer 1..512. n_dense: VKM_GENMODEL_AUTO keeps the preset's dense lead, but at most
 * n_layer - 1 when the preset has experts (so a cut-down MoE model keeps one MoE layer), at most
 * n_layer otherwise; an explicit value must be <= n_layer. With 26 or 27 layers llama.cpp's
 * "lite" heuristic ignores q_lora_rank, so q_lora is set to 0 (attn_q); *note (optional, may be
 * NULL) then gets a message for the user, else "". */
int vkm_genmodel_set_layers(vkm_genmodel_hparams *hp, uint32_t n_layer, uint32_t n_dense,
                            char *note, size_t note_size);
/* n_expert 1..512 and >= n_expert_used. If the grouping no longer divides (n_expert % n_group or
 * n_group >= n_expert), grouping is dropped (n_group = n_group_used = 1) and *note says so. */
int vkm_genmodel_set_experts(vkm_genmodel_hparams *hp, uint32_t n_expert, char *note,
                             size_t note_size);
/* Checks every constraint of the loader (spec §2) on hp. */
int vkm_genmodel_check(const vkm_genmodel_hparams *hp);

/* ---- plan and write ---- */
/* The ggml type of a tensor of `kind` and row length ne0 in layer `layer` of n_layer (-1 for
 * global tensors) under `mix`. */
uint32_t vkm_genmodel_tensor_type(uint32_t mix, uint32_t kind, int64_t ne0, int32_t layer,
                                  uint32_t n_layer);
int vkm_genmodel_plan_create(const vkm_genmodel_hparams *hp, uint32_t mix, vkm_genmodel_plan **out);
void vkm_genmodel_plan_destroy(vkm_genmodel_plan *p);

/* Called while writing with the tensor bytes done so far and the total (about the file size). */
typedef void (*vkm_genmodel_progress_fn)(void *user, uint64_t done, uint64_t total);

/* Writes the model to `path` (replaced; removed again on failure). VKM_EINVAL for bad hparams,
 * VKM_EIO when the file cannot be written, VKM_ENOMEM. */
int vkm_genmodel_write(const vkm_genmodel_hparams *hp, uint32_t mix, uint64_t seed,
                       const char *path, vkm_genmodel_progress_fn progress, void *user);

#endif
