/* model.c - loads and validates the hyperparameters and tensor table of a deepseek2 GGUF.
 *
 * Keys are read with llama.cpp's rules (spec §2): type-strict getters, the documented defaults,
 * the "lite" heuristic (no q_lora_rank key), is_mla from the *_mla keys, the gating default and
 * yarn_log_multiplier / 0.1. The RoPE/attention constants of §4.5-§4.6 are derived here once, in
 * float arithmetic like llama.cpp, so every consumer (reference and GPU) uses the same values.
 *
 * Tensors (spec §3) are looked up by name, shapes compared exactly, types checked against the
 * supported set, and every tensor of the file must be consumed; tensors of nextn (MTP) layers
 * blk.{n_layer..n_layer_all-1} are accepted and ignored. Errors name the key or tensor and the
 * offending value, prefixed by the file path. */
#include "model.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "qtype.h"
#include "ref_ops.h"

#define KEY(k) "deepseek2." k

/* ------------------------------------------------------------------------- key helpers ---- */

/* Reads a u32 key that llama.cpp accepts either as a scalar or as a per-layer array of n values
 * (get_key_or_arr). arr[0..n) receives the per-layer values; absent -> def everywhere. */
static int get_u32_or_arr(const vkm_gguf *g, const char *path, const char *key, uint32_t def,
                          uint32_t n, uint32_t *arr) {
    int64_t kv = vkm_gguf_find_key(g, key);
    if (kv < 0 || vkm_gguf_kv_type(g, kv) != VKM_GGUF_ARRAY) {
        uint32_t v;
        int rc = vkm_gguf_get_u32_or(g, key, def, &v);
        if (rc) return rc;
        for (uint32_t i = 0; i < n; i++) arr[i] = v;
        return 0;
    }
    uint32_t et = vkm_gguf_arr_type(g, kv);
    uint64_t cnt = vkm_gguf_arr_count(g, kv);
    if (et != VKM_GGUF_UINT32 && et != VKM_GGUF_INT32)
        return vkm_error(VKM_EFORMAT, "%s: key %s is an array of %s, expected UINT32", path, key,
                         vkm_gguf_type_name(et));
    if (cnt != n)
        return vkm_error(VKM_EFORMAT, "%s: key %s has %" PRIu64 " elements, expected %u", path, key,
                         cnt, n);
    for (uint32_t i = 0; i < n; i++) {
        int64_t v = vkm_gguf_arr_i64(g, kv, i);
        if (v < 0 || v > UINT32_MAX)
            return vkm_error(VKM_EFORMAT, "%s: key %s[%u] = %" PRId64 " is out of range", path, key,
                             i, v);
        arr[i] = (uint32_t)v;
    }
    return 0;
}

/* An array key whose values must all be equal (we do not support per-layer head counts). */
static int get_u32_uniform(const vkm_gguf *g, const char *path, const char *key, uint32_t def,
                           uint32_t n, uint32_t *scratch, uint32_t *out) {
    int rc = get_u32_or_arr(g, path, key, def, n, scratch);
    if (rc) return rc;
    for (uint32_t i = 1; i < n; i++)
        if (scratch[i] != scratch[0])
            return vkm_error(VKM_EUNSUPPORTED, "%s: key %s differs between layers (%u vs %u)", path,
                             key, scratch[0], scratch[i]);
    *out = scratch[0];
    return 0;
}

static float mscale_of(float s, float m) {
    return s <= 1.0f ? 1.0f : 0.1f * m * logf(s) + 1.0f;
}

/* --------------------------------------------------------------------- hyperparameters ---- */

#define BAD(...) vkm_error(VKM_EFORMAT, __VA_ARGS__)

static int load_hparams(const vkm_gguf *g, const char *path, vkm_hparams *hp, uint32_t *n_ff_arr) {
    int rc;
    const char *arch;
    if ((rc = vkm_gguf_get_str(g, "general.architecture", &arch, NULL))) return rc;
    if (strcmp(arch, "deepseek2"))
        return vkm_error(VKM_EUNSUPPORTED, "%s: general.architecture is \"%s\", expected deepseek2",
                         path, arch);

    if ((rc = vkm_gguf_get_u32(g, KEY("context_length"), &hp->n_ctx_train))) return rc;
    if ((rc = vkm_gguf_get_u32(g, KEY("embedding_length"), &hp->n_embd))) return rc;
    if ((rc = vkm_gguf_get_u32(g, KEY("block_count"), &hp->n_layer_all))) return rc;
    if (hp->n_ctx_train == 0) return BAD("%s: %s = 0", path, KEY("context_length"));
    if (hp->n_embd == 0) return BAD("%s: %s = 0", path, KEY("embedding_length"));
    if (hp->n_layer_all == 0 || hp->n_layer_all > VKM_MODEL_MAX_LAYERS)
        return BAD("%s: %s = %u, expected 1..%d", path, KEY("block_count"), hp->n_layer_all,
                   VKM_MODEL_MAX_LAYERS);
    const uint32_t nl = hp->n_layer_all;

    /* experts (llama.cpp's generic asserts) */
    if ((rc = vkm_gguf_get_u32_or(g, KEY("expert_count"), 0, &hp->n_expert))) return rc;
    if ((rc = vkm_gguf_get_u32_or(g, KEY("expert_used_count"), 0, &hp->n_expert_used))) return rc;
    if ((rc = vkm_gguf_get_u32_or(g, KEY("expert_group_count"), 0, &hp->n_group))) return rc;
    if ((rc = vkm_gguf_get_u32_or(g, KEY("expert_group_used_count"), 0, &hp->n_group_used)))
        return rc;
    if (hp->n_expert > VKM_MODEL_MAX_EXPERT)
        return BAD("%s: %s = %u exceeds %d", path, KEY("expert_count"), hp->n_expert,
                   VKM_MODEL_MAX_EXPERT);
    if (hp->n_expert_used > hp->n_expert)
        return BAD("%s: %s = %u exceeds expert_count %u", path, KEY("expert_used_count"),
                   hp->n_expert_used, hp->n_expert);
    if (hp->n_expert > 0 && hp->n_expert_used == 0)
        return BAD("%s: %s = 0 with expert_count %u", path, KEY("expert_used_count"), hp->n_expert);
    if (hp->n_expert > 0 && hp->n_group >= hp->n_expert)
        return BAD("%s: %s = %u, must be below expert_count %u", path, KEY("expert_group_count"),
                   hp->n_group, hp->n_expert);
    if (hp->n_group > 1) {
        if (hp->n_expert % hp->n_group)
            return BAD("%s: expert_count %u is not a multiple of %s = %u", path, hp->n_expert,
                       KEY("expert_group_count"), hp->n_group);
        if (hp->n_group_used == 0 || hp->n_group_used >= hp->n_group)
            return BAD("%s: %s = %u, expected 1..%u", path, KEY("expert_group_used_count"),
                       hp->n_group_used, hp->n_group - 1);
    }

    /* per-layer capable keys */
    uint32_t tmp[VKM_MODEL_MAX_LAYERS];
    if ((rc = get_u32_or_arr(g, path, KEY("feed_forward_length"), 0, nl, n_ff_arr))) return rc;
    hp->n_ff = n_ff_arr[0];
    if ((rc = get_u32_uniform(g, path, KEY("attention.head_count"), 0, nl, tmp, &hp->n_head)))
        return rc;
    if (hp->n_head == 0) return BAD("%s: %s is 0 or absent", path, KEY("attention.head_count"));
    if ((rc = get_u32_uniform(g, path, KEY("attention.head_count_kv"), hp->n_head, nl, tmp,
                              &hp->n_head_kv)))
        return rc;
    if (hp->n_head_kv == 0) return BAD("%s: %s = 0", path, KEY("attention.head_count_kv"));

    /* attention geometry */
    const uint32_t def_head = hp->n_embd / hp->n_head;
    if ((rc = vkm_gguf_get_u32_or(g, KEY("attention.key_length"), def_head, &hp->key_length)))
        return rc;
    if ((rc = vkm_gguf_get_u32_or(g, KEY("attention.value_length"), def_head, &hp->value_length)))
        return rc;
    if ((rc = vkm_gguf_get_u32(g, KEY("rope.dimension_count"), &hp->n_rot))) return rc;
    uint32_t k_mla = 0, v_mla = 0;
    if ((rc = vkm_gguf_get_u32_or(g, KEY("attention.key_length_mla"), 0, &k_mla))) return rc;
    if ((rc = vkm_gguf_get_u32_or(g, KEY("attention.value_length_mla"), 0, &v_mla))) return rc;
    hp->is_mla = k_mla != 0 && v_mla != 0;
    hp->d_qk = hp->is_mla ? k_mla : hp->key_length;
    hp->d_v = hp->is_mla ? v_mla : hp->value_length;

    /* vocabulary size: the token list; vocab_size only feeds the heuristics */
    int64_t tok_kv;
    uint64_t n_tok;
    if ((rc = vkm_gguf_get_arr(g, "tokenizer.ggml.tokens", VKM_GGUF_STRING, &tok_kv, &n_tok)))
        return rc;
    if (n_tok == 0 || n_tok > INT32_MAX)
        return BAD("%s: tokenizer.ggml.tokens has %" PRIu64 " entries", path, n_tok);
    hp->n_vocab = (uint32_t)n_tok;
    uint32_t vocab_h;
    if ((rc = vkm_gguf_get_u32_or(g, KEY("vocab_size"), hp->n_vocab, &vocab_h))) return rc;

    /* deepseek2-specific */
    hp->is_lite = nl == 26 || nl == 27 || (nl == 48 && vocab_h == 128256);
    if ((rc = vkm_gguf_get_f32(g, KEY("attention.layer_norm_rms_epsilon"), &hp->eps))) return rc;
    if ((rc = vkm_gguf_get_u32_or(g, KEY("leading_dense_block_count"), 0, &hp->n_dense_lead)))
        return rc;
    hp->n_lora_q = 0;
    if (!hp->is_lite && (rc = vkm_gguf_get_u32(g, KEY("attention.q_lora_rank"), &hp->n_lora_q)))
        return rc;
    if ((rc = vkm_gguf_get_u32(g, KEY("attention.kv_lora_rank"), &hp->n_lora_kv))) return rc;
    if ((rc = vkm_gguf_get_u32(g, KEY("expert_feed_forward_length"), &hp->n_ff_exp))) return rc;
    if ((rc = vkm_gguf_get_u32(g, KEY("expert_shared_count"), &hp->n_expert_shared))) return rc;
    if ((rc = vkm_gguf_get_f32_or(g, KEY("expert_weights_scale"), 0.0f, &hp->expert_weights_scale)))
        return rc;
    if ((rc = vkm_gguf_get_bool_or(g, KEY("expert_weights_norm"), false, &hp->expert_weights_norm)))
        return rc;
    if ((rc = vkm_gguf_get_u32_or(g, KEY("expert_gating_func"), 0, &hp->gating))) return rc;
    if (hp->gating == 0)
        hp->gating =
            ((nl == 47 || nl == 48) && vocab_h == 154880) ? VKM_GATING_SIGMOID : VKM_GATING_SOFTMAX;
    if (hp->gating != VKM_GATING_SOFTMAX && hp->gating != VKM_GATING_SIGMOID)
        return vkm_error(VKM_EUNSUPPORTED, "%s: %s = %u is not supported (1 softmax, 2 sigmoid)",
                         path, KEY("expert_gating_func"), hp->gating);
    if ((rc = vkm_gguf_get_u32_or(g, KEY("nextn_predict_layers"), 0, &hp->n_nextn))) return rc;
    if (hp->n_nextn >= nl)
        return BAD("%s: %s = %u leaves no layers of block_count %u", path,
                   KEY("nextn_predict_layers"), hp->n_nextn, nl);
    hp->n_layer = nl - hp->n_nextn;

    /* rope */
    const char *stype;
    if ((rc = vkm_gguf_get_f32_or(g, KEY("rope.freq_base"), 10000.0f, &hp->rope_freq_base)))
        return rc;
    if ((rc = vkm_gguf_get_str_or(g, KEY("rope.scaling.type"), "linear", &stype))) return rc;
    if (!strcmp(stype, "none"))
        hp->rope_scaling = VKM_ROPE_SCALING_NONE;
    else if (!strcmp(stype, "linear"))
        hp->rope_scaling = VKM_ROPE_SCALING_LINEAR;
    else if (!strcmp(stype, "yarn"))
        hp->rope_scaling = VKM_ROPE_SCALING_YARN;
    else
        return vkm_error(VKM_EUNSUPPORTED, "%s: %s = \"%s\" is not supported", path,
                         KEY("rope.scaling.type"), stype);
    if (vkm_gguf_find_key(g, KEY("rope.scaling.factor")) >= 0 ||
        vkm_gguf_find_key(g, KEY("rope.scale_linear")) < 0) {
        if ((rc = vkm_gguf_get_f32_or(g, KEY("rope.scaling.factor"), 0.0f, &hp->rope_scale_factor)))
            return rc;
    } else if ((rc = vkm_gguf_get_f32(g, KEY("rope.scale_linear"), &hp->rope_scale_factor))) {
        return rc;
    }
    if ((rc = vkm_gguf_get_u32_or(g, KEY("rope.scaling.original_context_length"), hp->n_ctx_train,
                                  &hp->n_ctx_orig)))
        return rc;
    float lm = 0.0f;
    if ((rc = vkm_gguf_get_f32_or(g, KEY("rope.scaling.yarn_log_multiplier"), 0.0f, &lm)))
        return rc;
    hp->yarn_log_mul = lm / 0.1f;
    if ((rc = vkm_gguf_get_f32_or(g, KEY("rope.scaling.attn_factor"), 1.0f, &hp->rope_attn_factor)))
        return rc;

    /* validation of the values (each a format error naming key and value) */
    if (!(hp->eps > 0.0f) || !isfinite(hp->eps))
        return BAD("%s: %s = %g, must be > 0", path, KEY("attention.layer_norm_rms_epsilon"),
                   (double)hp->eps);
    if (hp->n_lora_kv == 0) return BAD("%s: %s = 0", path, KEY("attention.kv_lora_rank"));
    if (hp->n_rot == 0 || hp->n_rot % 2)
        return BAD("%s: %s = %u, must be even and > 0", path, KEY("rope.dimension_count"),
                   hp->n_rot);
    if (hp->d_qk <= hp->n_rot)
        return BAD("%s: %s = %u leaves no non-rotary dims with %s = %u", path,
                   hp->is_mla ? KEY("attention.key_length_mla") : KEY("attention.key_length"),
                   hp->d_qk, KEY("rope.dimension_count"), hp->n_rot);
    if (hp->d_v == 0)
        return BAD("%s: %s = 0", path,
                   hp->is_mla ? KEY("attention.value_length_mla") : KEY("attention.value_length"));
    if (hp->is_mla) {
        if (hp->key_length != hp->n_lora_kv + hp->n_rot)
            return BAD("%s: %s = %u, expected kv_lora_rank + rope dims = %u in an MLA file", path,
                       KEY("attention.key_length"), hp->key_length, hp->n_lora_kv + hp->n_rot);
        if (hp->value_length != hp->n_lora_kv)
            return BAD("%s: %s = %u, expected kv_lora_rank = %u in an MLA file", path,
                       KEY("attention.value_length"), hp->value_length, hp->n_lora_kv);
        if (hp->n_head_kv != 1)
            return BAD("%s: %s = %u, expected 1 in an MLA file", path,
                       KEY("attention.head_count_kv"), hp->n_head_kv);
    } else if (hp->n_head_kv != hp->n_head) {
        return BAD("%s: %s = %u, expected head_count %u in a legacy (attn_kv_b) file", path,
                   KEY("attention.head_count_kv"), hp->n_head_kv, hp->n_head);
    }
    if (!(hp->rope_freq_base > 0.0f) || !isfinite(hp->rope_freq_base))
        return BAD("%s: %s = %g, must be > 0", path, KEY("rope.freq_base"),
                   (double)hp->rope_freq_base);
    if (!(hp->rope_scale_factor >= 0.0f) || !isfinite(hp->rope_scale_factor))
        return BAD("%s: %s = %g, must be >= 0", path, KEY("rope.scaling.factor"),
                   (double)hp->rope_scale_factor);
    if (hp->n_ctx_orig == 0)
        return BAD("%s: %s = 0", path, KEY("rope.scaling.original_context_length"));
    if (!isfinite(hp->yarn_log_mul) || hp->yarn_log_mul < 0.0f)
        return BAD("%s: %s = %g, must be >= 0", path, KEY("rope.scaling.yarn_log_multiplier"),
                   (double)lm);
    if (!(hp->rope_attn_factor > 0.0f) || !isfinite(hp->rope_attn_factor))
        return BAD("%s: %s = %g, must be > 0", path, KEY("rope.scaling.attn_factor"),
                   (double)hp->rope_attn_factor);
    if (!isfinite(hp->expert_weights_scale))
        return BAD("%s: %s is not finite", path, KEY("expert_weights_scale"));
    if (hp->n_dense_lead > hp->n_layer)
        return BAD("%s: %s = %u exceeds the %u layers", path, KEY("leading_dense_block_count"),
                   hp->n_dense_lead, hp->n_layer);
    for (uint32_t i = 0; i < hp->n_dense_lead; i++)
        if (n_ff_arr[i] == 0)
            return BAD("%s: %s is 0 for dense layer %u", path, KEY("feed_forward_length"), i);
    if (hp->n_dense_lead < hp->n_layer) {
        if (hp->n_expert == 0)
            return BAD("%s: %s = 0 but layers %u..%u are MoE layers", path, KEY("expert_count"),
                       hp->n_dense_lead, hp->n_layer - 1);
        if (hp->n_ff_exp == 0) return BAD("%s: %s = 0", path, KEY("expert_feed_forward_length"));
    }

    /* sizes: bounded so that every shape product below fits in int64 and every buffer size of
     * the forward passes fits comfortably in size_t */
    const struct {
        const char *key;
        uint32_t v;
    } sizes[] = {{KEY("embedding_length"), hp->n_embd},
                 {KEY("attention.head_count"), hp->n_head},
                 {KEY("attention.key_length"), hp->key_length},
                 {KEY("attention.value_length"), hp->value_length},
                 {KEY("attention.key_length_mla"), hp->d_qk},
                 {KEY("attention.value_length_mla"), hp->d_v},
                 {KEY("attention.q_lora_rank"), hp->n_lora_q},
                 {KEY("attention.kv_lora_rank"), hp->n_lora_kv},
                 {KEY("expert_feed_forward_length"), hp->n_ff_exp},
                 {KEY("expert_shared_count"), hp->n_expert_shared}};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        if (sizes[i].v > VKM_MODEL_MAX_DIM)
            return BAD("%s: %s = %u exceeds %u", path, sizes[i].key, sizes[i].v, VKM_MODEL_MAX_DIM);
    for (uint32_t i = 0; i < nl; i++)
        if (n_ff_arr[i] > VKM_MODEL_MAX_DIM)
            return BAD("%s: %s = %u exceeds %u", path, KEY("feed_forward_length"), n_ff_arr[i],
                       VKM_MODEL_MAX_DIM);

    /* derived: head split and the RoPE / attention constants (spec §4.5, §4.6) */
    hp->d_nope = hp->d_qk - hp->n_rot;
    hp->kv_dim = hp->n_lora_kv + hp->n_rot;
    hp->freq_scale = (hp->rope_scaling == VKM_ROPE_SCALING_NONE || hp->rope_scale_factor == 0.0f)
                         ? 1.0f
                         : 1.0f / hp->rope_scale_factor;
    hp->ext_factor = hp->rope_scaling == VKM_ROPE_SCALING_YARN ? 1.0f : 0.0f;
    const float s = 1.0f / hp->freq_scale, L = hp->yarn_log_mul;
    float A = 1.0f;
    if (hp->ext_factor != 0.0f) {
        if (L != 0.0f) {
            const float m = L != 1.0f ? L : 1.0f;
            A = mscale_of(s, m) / mscale_of(s, L);
        } else {
            A = mscale_of(s, 1.0f);
        }
        A /= 1.0f + 0.1f * logf(s);
    }
    A *= hp->rope_attn_factor;
    hp->attn_factor = A;
    hp->rope_mscale = hp->ext_factor != 0.0f ? A * (1.0f + 0.1f * logf(s)) : A;
    float dims[2];
    vkm_ref_rope_corr_dims((int)hp->n_rot, (int)hp->n_ctx_orig, hp->rope_freq_base, 32.0f, 1.0f,
                           dims);
    hp->corr_low = dims[0];
    hp->corr_high = dims[1];
    const float a_org = A * (1.0f + 0.1f * logf(s));
    const float mscale = a_org * (1.0f + 0.1f * L * logf(s));
    hp->kq_scale = 1.0f * mscale * mscale / sqrtf((float)hp->d_qk);
    return 0;
}

/* ----------------------------------------------------------------------------- tensors ---- */

typedef struct loader {
    const vkm_gguf *g;
    const char *path;
    uint8_t *used; /* [n_tensors] consumed flags */
} loader;

/* "{a,b,c}" with the first nd dims. */
static void format_shape(char *buf, size_t n, const int64_t *ne, int nd) {
    int off = snprintf(buf, n, "{");
    for (int i = 0; i < nd && off > 0 && (size_t)off < n; i++)
        off += snprintf(buf + off, n - (size_t)off, i ? ",%" PRId64 : "%" PRId64, ne[i]);
    if (off > 0 && (size_t)off < n) snprintf(buf + off, n - (size_t)off, "}");
}

/* Looks up the tensor `name` with the expected shape {e0, e1, e2} (missing dims 1). An absent
 * optional tensor leaves *t zeroed. f32 demands type F32 (norm vectors, biases). */
static int want(loader *ld, vkm_tensor *t, const char *name, bool required, bool f32, int64_t e0,
                int64_t e1, int64_t e2) {
    memset(t, 0, sizeof *t);
    int64_t idx = vkm_gguf_tensor_index(ld->g, name);
    if (idx < 0) {
        if (!required) return 0;
        return vkm_error(VKM_EFORMAT, "%s: missing tensor %s", ld->path, name);
    }
    const vkm_gguf_tensor *gt = vkm_gguf_tensor_at(ld->g, idx);
    const int64_t want_ne[4] = {e0, e1, e2, 1};
    if (memcmp(gt->ne, want_ne, sizeof want_ne)) {
        char have[128], exp[128];
        int nd = e2 != 1 ? 3 : e1 != 1 ? 2 : 1; /* dims printed: the larger of both ranks */
        if ((int)gt->n_dims > nd) nd = (int)gt->n_dims;
        format_shape(have, sizeof have, gt->ne, nd);
        format_shape(exp, sizeof exp, want_ne, nd);
        return vkm_error(VKM_EFORMAT, "%s: tensor %s has shape %s, expected %s", ld->path, name,
                         have, exp);
    }
    const vkm_qtype_info *qi = vkm_qtype_get(gt->type);
    if (!qi || !qi->supported)
        return vkm_error(VKM_EUNSUPPORTED, "%s: tensor %s has unsupported type %s", ld->path, name,
                         vkm_qtype_name(gt->type));
    if (f32 && gt->type != VKM_F32)
        return vkm_error(VKM_EUNSUPPORTED, "%s: tensor %s has type %s, expected F32", ld->path,
                         name, vkm_qtype_name(gt->type));
    ld->used[idx] = 1;
    t->name = gt->name;
    t->type = gt->type;
    memcpy(t->ne, gt->ne, sizeof t->ne);
    t->data = gt->data;
    t->nbytes = (size_t)gt->nbytes;
    t->row_bytes = vkm_qtype_row_bytes(gt->type, (uint64_t)gt->ne[0]);
    t->file = gt->file;
    t->file_offset = gt->file_offset;
    VKM_ASSERT(t->row_bytes > 0 && t->data);
    return 0;
}

/* want() with a printf-formatted name "blk.%u.xxx". */
static int want_blk(loader *ld, vkm_tensor *t, uint32_t il, const char *what, bool required,
                    bool f32, int64_t e0, int64_t e1, int64_t e2) {
    char name[VKM_GGUF_MAX_NAME + 32];
    snprintf(name, sizeof name, "blk.%u.%s", il, what);
    return want(ld, t, name, required, f32, e0, e1, e2);
}

static int load_layer(loader *ld, const vkm_hparams *hp, uint32_t il, uint32_t n_ff, vkm_layer *L) {
    const int64_t E = hp->n_embd, H = hp->n_head, R = hp->n_rot, Dn = hp->d_nope, Dv = hp->d_v;
    const int64_t Dqk = hp->d_qk, Cq = hp->n_lora_q, Ckv = hp->n_lora_kv, F = n_ff;
    const int64_t Fe = hp->n_ff_exp, X = hp->n_expert, S = hp->n_expert_shared;
    int rc;
    L->moe = il >= hp->n_dense_lead;
    L->n_ff = n_ff;
#define W(field, req, f32, a, b, c)                                                                \
    do {                                                                                           \
        if ((rc = want_blk(ld, &L->field, il, #field ".weight", req, f32, a, b, c))) return rc;    \
    } while (0)
    W(attn_norm, true, true, E, 1, 1);
    if (Cq > 0) {
        W(attn_q_a, true, false, E, Cq, 1);
        W(attn_q_a_norm, true, true, Cq, 1, 1);
        W(attn_q_b, true, false, Cq, H * Dqk, 1);
    } else {
        W(attn_q, true, false, E, H * Dqk, 1);
    }
    W(attn_kv_a_mqa, true, false, E, Ckv + R, 1);
    W(attn_kv_a_norm, true, true, Ckv, 1, 1);
    if (hp->is_mla) {
        W(attn_k_b, true, false, Dn, Ckv, H);
        W(attn_v_b, true, false, Ckv, Dv, H);
    } else {
        W(attn_kv_b, true, false, Ckv, H * (Dn + Dv), 1);
    }
    W(attn_output, true, false, H * Dv, E, 1);
    W(ffn_norm, true, true, E, 1, 1);
    if (!L->moe) {
        W(ffn_gate, true, false, E, F, 1);
        W(ffn_up, true, false, E, F, 1);
        W(ffn_down, true, false, F, E, 1);
        return 0;
    }
    W(ffn_gate_inp, true, false, E, X, 1);
    if ((rc = want_blk(ld, &L->exp_probs_b, il, "exp_probs_b.bias", false, true, X, 1, 1)))
        return rc;
    W(ffn_gate_up_exps, false, false, E, 2 * Fe, X);
    if (!L->ffn_gate_up_exps.data) {
        W(ffn_gate_exps, true, false, E, Fe, X);
        W(ffn_up_exps, true, false, E, Fe, X);
    }
    W(ffn_down_exps, true, false, Fe, E, X);
    if (S > 0) {
        W(ffn_gate_shexp, true, false, E, Fe * S, 1);
        W(ffn_up_shexp, true, false, E, Fe * S, 1);
        W(ffn_down_shexp, true, false, Fe * S, E, 1);
    }
#undef W
    return 0;
}

/* True if `name` is "blk.N.<anything>" with n_layer <= N < n_layer_all (an ignored MTP layer). */
static bool is_nextn_tensor(const char *name, const vkm_hparams *hp) {
    if (strncmp(name, "blk.", 4)) return false;
    const char *p = name + 4;
    uint64_t n = 0;
    int digits = 0;
    while (*p >= '0' && *p <= '9' && digits < 10) n = n * 10 + (uint64_t)(*p++ - '0'), digits++;
    return digits > 0 && *p == '.' && n >= hp->n_layer && n < hp->n_layer_all;
}

static int load_tensors(loader *ld, vkm_model *m, const uint32_t *n_ff_arr) {
    const vkm_hparams *hp = &m->hp;
    const int64_t E = hp->n_embd, V = hp->n_vocab;
    int rc;
    if ((rc = want(ld, &m->token_embd, "token_embd.weight", true, false, E, V, 1))) return rc;
    if ((rc = want(ld, &m->output_norm, "output_norm.weight", true, true, E, 1, 1))) return rc;
    if ((rc = want(ld, &m->output, "output.weight", false, false, E, V, 1))) return rc;
    m->tied_output = m->output.data == NULL;
    if (m->tied_output) m->output = m->token_embd;
    for (uint32_t il = 0; il < hp->n_layer; il++)
        if ((rc = load_layer(ld, hp, il, n_ff_arr[il], &m->layers[il]))) return rc;
    const int64_t nt = vkm_gguf_n_tensors(ld->g);
    for (int64_t i = 0; i < nt; i++) {
        const char *name = vkm_gguf_tensor_at(ld->g, i)->name;
        if (!ld->used[i] && !is_nextn_tensor(name, hp))
            return vkm_error(VKM_EFORMAT, "%s: unexpected tensor %s", ld->path, name);
    }
    return 0;
}

/* ------------------------------------------------------------------------------- public ---- */

int vkm_model_load(const vkm_gguf *g, vkm_model **out) {
    *out = NULL;
    const char *path = vkm_gguf_file_path(g, 0);
    vkm_model *m = calloc(1, sizeof *m);
    uint32_t *n_ff_arr = calloc(VKM_MODEL_MAX_LAYERS, sizeof *n_ff_arr);
    int64_t nt = vkm_gguf_n_tensors(g);
    uint8_t *used = calloc(nt > 0 ? (size_t)nt : 1, 1);
    int rc = 0;
    if (!m || !n_ff_arr || !used) {
        rc = vkm_error(VKM_ENOMEM, "%s: out of memory loading the model", path);
        goto done;
    }
    m->gguf = g;
    if ((rc = load_hparams(g, path, &m->hp, n_ff_arr))) goto done;
    m->layers = calloc(m->hp.n_layer, sizeof *m->layers);
    if (!m->layers) {
        rc = vkm_error(VKM_ENOMEM, "%s: out of memory loading the model", path);
        goto done;
    }
    loader ld = {g, path, used};
    rc = load_tensors(&ld, m, n_ff_arr);
done:
    free(n_ff_arr);
    free(used);
    if (rc) {
        vkm_model_free(m);
        return rc;
    }
    *out = m;
    return 0;
}

void vkm_model_free(vkm_model *m) {
    if (!m) return;
    free(m->layers);
    free(m);
}

const void *vkm_model_row(const vkm_tensor *t, int64_t i1, int64_t i2) {
    VKM_ASSERT(t->data && i1 >= 0 && i1 < t->ne[1] && i2 >= 0 && i2 < t->ne[2] * t->ne[3]);
    return (const uint8_t *)t->data + ((size_t)i2 * (size_t)t->ne[1] + (size_t)i1) * t->row_bytes;
}

void vkm_model_describe(const vkm_model *m, char *buf, size_t n) {
    const vkm_hparams *hp = &m->hp;
    snprintf(buf, n,
             "deepseek2 %s: %u layers (%u dense), E %u, H %u, q_lora %u, kv_lora %u, "
             "nope %u rope %u v %u, experts %u (top-%u, groups %u/%u, %s%s, x%g) + %u shared, "
             "Fe %u, F %u, vocab %u, kq_scale %.6g%s",
             hp->is_mla ? "MLA" : "legacy", hp->n_layer, hp->n_dense_lead, hp->n_embd, hp->n_head,
             hp->n_lora_q, hp->n_lora_kv, hp->d_nope, hp->n_rot, hp->d_v, hp->n_expert,
             hp->n_expert_used, hp->n_group, hp->n_group_used,
             hp->gating == VKM_GATING_SIGMOID ? "sigmoid" : "softmax",
             hp->expert_weights_norm ? ", norm" : "", (double)hp->expert_weights_scale,
             hp->n_expert_shared, hp->n_ff_exp, hp->n_ff, hp->n_vocab, (double)hp->kq_scale,
             m->tied_output ? ", tied output" : "");
}
