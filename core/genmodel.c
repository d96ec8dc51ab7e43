/* genmodel.c - writes synthetic deepseek2 GGUFs with random weights (see genmodel.h, spec §7).
 *
 * Three parts: the presets and the hyperparameter checks (mirroring model.c's load rules, so a
 * checked set always loads), the tensor plan (names, shapes and the types of a quantization mix,
 * in llama.cpp's converter order), and the writer, which hands every tensor to gguf_write as a
 * fill callback that generates and quantizes one row at a time.
 *
 * Invariants: every size is bounded by vkm_genmodel_check() (dims <= 2^20, experts <= 512,
 * layers <= 512), so shape products fit comfortably in int64 and need no further overflow checks;
 * the values of row r of tensor `name` depend only on (seed, name, r), never on chunking. */
#include "genmodel.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "chat.h"
#include "err.h"
#include "gguf_write.h"
#include "model.h"
#include "qtype.h"
#include "ref_quant.h"

#define KEY(k) "deepseek2." k

/* ------------------------------------------------------------------------------ presets ---- */

typedef struct preset {
    const char *name;
    const char *desc;
    vkm_genmodel_hparams hp;
} preset;

static const preset g_presets[] = {
    {"tiny",
     "= fixture tiny-v3-f32: 3 layers, E 64, 16 experts top-4 (same KVs)",
     {.name = "tiny-deepseek2-v3",
      .pre = "deepseek-llm",
      .chat_template = VKM_CHAT_NONE /* as the fixture */,
      .n_layer = 3,
      .n_dense_lead = 1,
      .n_ctx = 1024,
      .n_embd = 64,
      .n_ff = 128,
      .n_head = 4,
      .q_lora = 48,
      .kv_lora = 32,
      .d_nope = 16,
      .n_rot = 8,
      .d_v = 16,
      .n_expert = 16,
      .n_expert_used = 4,
      .n_group = 4,
      .n_group_used = 2,
      .n_expert_shared = 1,
      .n_ff_exp = 32,
      .gating = 2,
      .exp_probs_b = true,
      .weights_norm = true,
      .weights_scale = 2.5f,
      .eps = 1e-6f,
      .rope_base = 10000.0f,
      .yarn_factor = 4.0f,
      .yarn_orig_ctx = 256,
      .mscale_all_dim = 1.0f}},
    {"bench-small",
     "V3-style, 8 layers (1 dense), E 1024, 8 heads, 32 experts top-4",
     {.name = "vkmoe-bench-small",
      .pre = "deepseek-llm",
      .chat_template = VKM_CHAT_DEEPSEEK3,
      .n_layer = 8,
      .n_dense_lead = 1,
      .n_ctx = 1024,
      .n_embd = 1024,
      .n_ff = 2048,
      .n_head = 8,
      .q_lora = 512,
      .kv_lora = 256,
      .d_nope = 128,
      .n_rot = 64,
      .d_v = 128,
      .n_expert = 32,
      .n_expert_used = 4,
      .n_group = 4,
      .n_group_used = 2,
      .n_expert_shared = 1,
      .n_ff_exp = 512,
      .gating = 2,
      .exp_probs_b = true,
      .weights_norm = true,
      .weights_scale = 2.5f,
      .eps = 1e-6f,
      .rope_base = 10000.0f,
      .yarn_factor = 4.0f,
      .yarn_orig_ctx = 256,
      .mscale_all_dim = 1.0f}},
    {"v2-lite",
     "DeepSeek-V2-Lite dims: 27 layers, E 2048, no q_lora, 64 experts top-6",
     {.name = "vkmoe-v2-lite",
      .pre = "deepseek-llm",
      .chat_template = VKM_CHAT_DEEPSEEK2,
      .n_layer = 27,
      .n_dense_lead = 1,
      .n_ctx = 163840,
      .n_embd = 2048,
      .n_ff = 10944,
      .n_head = 16,
      .q_lora = 0,
      .kv_lora = 512,
      .d_nope = 128,
      .n_rot = 64,
      .d_v = 128,
      .n_expert = 64,
      .n_expert_used = 6,
      .n_group = 1,
      .n_group_used = 1,
      .n_expert_shared = 2,
      .n_ff_exp = 1408,
      .gating = 1,
      .exp_probs_b = false,
      .weights_norm = false,
      .weights_scale = 1.0f,
      .eps = 1e-6f,
      .rope_base = 10000.0f,
      .yarn_factor = 40.0f,
      .yarn_orig_ctx = 4096,
      .mscale_all_dim = 0.707f}},
    {"v3",
     "DeepSeek-V3/R1 dims: 61 layers (3 dense), E 7168, 256 experts top-8",
     {.name = "vkmoe-v3",
      .pre = "deepseek-v3",
      .chat_template = VKM_CHAT_DEEPSEEK3,
      .n_layer = 61,
      .n_dense_lead = 3,
      .n_ctx = 163840,
      .n_embd = 7168,
      .n_ff = 18432,
      .n_head = 128,
      .q_lora = 1536,
      .kv_lora = 512,
      .d_nope = 128,
      .n_rot = 64,
      .d_v = 128,
      .n_expert = 256,
      .n_expert_used = 8,
      .n_group = 8,
      .n_group_used = 4,
      .n_expert_shared = 1,
      .n_ff_exp = 2048,
      .gating = 2,
      .exp_probs_b = true,
      .weights_norm = true,
      .weights_scale = 2.5f,
      .eps = 1e-6f,
      .rope_base = 10000.0f,
      .yarn_factor = 40.0f,
      .yarn_orig_ctx = 4096,
      .mscale_all_dim = 1.0f}},
};
enum { N_PRESETS = sizeof g_presets / sizeof g_presets[0] };

int vkm_genmodel_n_presets(void) {
    return N_PRESETS;
}

const char *vkm_genmodel_preset_name(int i) {
    return i >= 0 && i < N_PRESETS ? g_presets[i].name : NULL;
}

const char *vkm_genmodel_preset_desc(int i) {
    return i >= 0 && i < N_PRESETS ? g_presets[i].desc : NULL;
}

int vkm_genmodel_preset(const char *name, vkm_genmodel_hparams *hp) {
    for (int i = 0; i < N_PRESETS; i++)
        if (!strcmp(name, g_presets[i].name)) {
            *hp = g_presets[i].hp;
            return 0;
        }
    return vkm_error(VKM_EINVAL, "unknown preset '%s'", name);
}

/* -------------------------------------------------------------------------------- mixes ---- */

typedef struct mix_info {
    const char *name;
    const char *desc;
    uint32_t base;      /* type of most 2-D weights */
    uint32_t file_type; /* llama_ftype for general.file_type (mix F32: key not written) */
} mix_info;

static const mix_info g_mixes[VKM_GENMODEL_MIX_COUNT] = {
    [VKM_GENMODEL_F32] = {"f32", "every tensor F32", VKM_F32, 0},
    [VKM_GENMODEL_F16] = {"f16", "weights F16", VKM_F16, 1},
    [VKM_GENMODEL_BF16] = {"bf16", "weights BF16", VKM_BF16, 32},
    [VKM_GENMODEL_Q8_0] = {"q8_0", "weights Q8_0 (F16 where ne0 % 32 != 0)", VKM_Q8_0, 7},
    [VKM_GENMODEL_Q4_0] = {"q4_0", "weights Q4_0 (F16 where ne0 % 32 != 0)", VKM_Q4_0, 2},
    [VKM_GENMODEL_Q4_K_M] =
        {"q4_k_m", "like llama.cpp: Q4_K; Q6_K output/some ffn_down; Q5_0, Q8_0 fallbacks",
         VKM_Q4_K, 15},
    [VKM_GENMODEL_Q2_K] = {"q2_k", "weights Q2_K (fallback Q4_0, F16)", VKM_Q2_K, 10},
    [VKM_GENMODEL_Q3_K] = {"q3_k", "weights Q3_K (fallback Q4_0, F16)", VKM_Q3_K, 11},
    [VKM_GENMODEL_Q4_K] = {"q4_k", "weights Q4_K (fallback Q5_0, F16)", VKM_Q4_K, 14},
    [VKM_GENMODEL_Q5_K] = {"q5_k", "weights Q5_K (fallback Q5_1, F16)", VKM_Q5_K, 16},
    [VKM_GENMODEL_Q6_K] = {"q6_k", "weights Q6_K (fallback Q8_0, F16)", VKM_Q6_K, 18},
    [VKM_GENMODEL_IQ4_NL] = {"iq4_nl", "weights IQ4_NL (F16 where ne0 % 32 != 0)", VKM_IQ4_NL, 25},
    [VKM_GENMODEL_IQ4_XS] = {"iq4_xs", "weights IQ4_XS (fallback IQ4_NL, F16)", VKM_IQ4_XS, 30},
    /* R1-IQ-shaped files for benchmarks: random valid blocks (no quantizer), IQ4_NL fallback */
    [VKM_GENMODEL_IQ1_S] = {"iq1_s", "weights IQ1_S, random blocks (fallback IQ4_NL, F16)",
                            VKM_IQ1_S, 24},
    [VKM_GENMODEL_IQ2_XXS] = {"iq2_xxs", "weights IQ2_XXS, random blocks (fallback IQ4_NL, F16)",
                              VKM_IQ2_XXS, 19},
    [VKM_GENMODEL_IQ3_XXS] = {"iq3_xxs", "weights IQ3_XXS, random blocks (fallback IQ4_NL, F16)",
                              VKM_IQ3_XXS, 23},
};

const char *vkm_genmodel_mix_name(uint32_t mix) {
    return mix < VKM_GENMODEL_MIX_COUNT ? g_mixes[mix].name : NULL;
}

const char *vkm_genmodel_mix_desc(uint32_t mix) {
    return mix < VKM_GENMODEL_MIX_COUNT ? g_mixes[mix].desc : NULL;
}

int vkm_genmodel_mix_parse(const char *name, uint32_t *mix) {
    for (uint32_t i = 0; i < VKM_GENMODEL_MIX_COUNT; i++)
        if (!strcmp(name, g_mixes[i].name)) {
            *mix = i;
            return 0;
        }
    return vkm_error(VKM_EINVAL, "unknown quant mix '%s'", name);
}

/* llama.cpp's fallback when ne0 is not a multiple of 256 (llama-quant.cpp; IQ4_XS: IQ4_NL). */
static uint32_t kquant_fallback(uint32_t t) {
    switch (t) {
    case VKM_Q2_K:
    case VKM_Q3_K:
        return VKM_Q4_0;
    case VKM_Q4_K:
        return VKM_Q5_0;
    case VKM_Q5_K:
        return VKM_Q5_1;
    case VKM_IQ4_XS:
    case VKM_IQ1_S:
    case VKM_IQ2_XXS:
    case VKM_IQ3_XXS:
        return VKM_IQ4_NL;
    default:
        return VKM_Q8_0; /* Q6_K */
    }
}

/* t if its block divides ne0, else a fallback that does, else F16. */
static uint32_t fit_type(uint32_t t, int64_t ne0) {
    const vkm_qtype_info *q = vkm_qtype_get(t);
    if (ne0 % q->block == 0) return t;
    if (q->block == 256) {
        uint32_t f = kquant_fallback(t);
        if (ne0 % vkm_qtype_get(f)->block == 0) return f;
    }
    return VKM_F16;
}

/* llama.cpp's use_more_bits(): layers that get more bits in the *_M mixes. */
static bool use_more_bits(uint32_t il, uint32_t n) {
    return il < n / 8 || il >= 7 * n / 8 || (il - n / 8) % 3 == 2;
}

uint32_t vkm_genmodel_tensor_type(uint32_t mix, uint32_t kind, int64_t ne0, int32_t layer,
                                  uint32_t n_layer) {
    VKM_ASSERT(mix < VKM_GENMODEL_MIX_COUNT && ne0 > 0);
    if (kind == VKM_GENMODEL_NORM || kind == VKM_GENMODEL_BIAS || kind == VKM_GENMODEL_ROUTER)
        return VKM_F32;
    uint32_t t = g_mixes[mix].base;
    if (mix == VKM_GENMODEL_Q4_K_M) {
        if (kind == VKM_GENMODEL_OUTPUT) t = VKM_Q6_K;
        if (kind == VKM_GENMODEL_FFN_DOWN && layer >= 0 && use_more_bits((uint32_t)layer, n_layer))
            t = VKM_Q6_K;
    }
    return fit_type(t, ne0);
}

/* ------------------------------------------------------------------------ hyperparameters ---- */

static bool is_lite_layers(uint32_t n) {
    return n == 26 || n == 27; /* llama.cpp's heuristic (the vocab-128256 case never applies) */
}

static void set_note(char *note, size_t n, const char *s) {
    if (note && n) snprintf(note, n, "%s", s);
}

int vkm_genmodel_set_layers(vkm_genmodel_hparams *hp, uint32_t n_layer, uint32_t n_dense,
                            char *note, size_t note_size) {
    set_note(note, note_size, "");
    if (n_layer == 0 || n_layer > VKM_MODEL_MAX_LAYERS)
        return vkm_error(VKM_EINVAL, "layers must be 1..%d, not %u", VKM_MODEL_MAX_LAYERS, n_layer);
    if (n_dense == VKM_GENMODEL_AUTO) {
        n_dense = hp->n_dense_lead;
        uint32_t max = hp->n_expert > 0 ? n_layer - 1 : n_layer;
        if (n_dense > max) n_dense = max;
    } else if (n_dense > n_layer) {
        return vkm_error(VKM_EINVAL, "dense layers %u exceed the %u layers", n_dense, n_layer);
    }
    if (n_dense > 0 && hp->n_ff == 0)
        return vkm_error(VKM_EINVAL, "dense layers need a feed_forward_length");
    if (n_dense < n_layer && hp->n_expert == 0)
        return vkm_error(VKM_EINVAL, "MoE layers need experts");
    hp->n_layer = n_layer;
    hp->n_dense_lead = n_dense;
    if (is_lite_layers(n_layer) && hp->q_lora > 0) {
        hp->q_lora = 0;
        set_note(note, note_size,
                 "26/27 layers trigger llama.cpp's 'lite' heuristic (q_lora_rank is not read): "
                 "using attn_q (q_lora 0)");
    }
    return 0;
}

int vkm_genmodel_set_experts(vkm_genmodel_hparams *hp, uint32_t n_expert, char *note,
                             size_t note_size) {
    set_note(note, note_size, "");
    if (n_expert == 0 || n_expert > VKM_MODEL_MAX_EXPERT)
        return vkm_error(VKM_EINVAL, "experts must be 1..%d, not %u", VKM_MODEL_MAX_EXPERT,
                         n_expert);
    if (n_expert < hp->n_expert_used)
        return vkm_error(VKM_EINVAL, "experts %u is below the %u used per token", n_expert,
                         hp->n_expert_used);
    hp->n_expert = n_expert;
    if (hp->n_group > 1 && (n_expert % hp->n_group || hp->n_group >= n_expert)) {
        char buf[160];
        snprintf(buf, sizeof buf, "%u experts do not split into %u groups: grouping dropped",
                 n_expert, hp->n_group);
        set_note(note, note_size, buf);
        hp->n_group = 1;
        hp->n_group_used = 1;
    }
    return 0;
}

#define BADHP(...) vkm_error(VKM_EINVAL, __VA_ARGS__)

int vkm_genmodel_check(const vkm_genmodel_hparams *hp) {
    const struct {
        const char *what;
        uint32_t v;
        bool nonzero;
    } dims[] = {{"n_ctx", hp->n_ctx, true},
                {"n_embd", hp->n_embd, true},
                {"n_ff", hp->n_ff, false},
                {"n_head", hp->n_head, true},
                {"q_lora", hp->q_lora, false},
                {"kv_lora", hp->kv_lora, true},
                {"d_nope", hp->d_nope, true},
                {"n_rot", hp->n_rot, true},
                {"d_v", hp->d_v, true},
                {"n_ff_exp", hp->n_ff_exp, false},
                {"n_expert_shared", hp->n_expert_shared, false}};
    for (size_t i = 0; i < sizeof dims / sizeof dims[0]; i++) {
        if (dims[i].v > VKM_MODEL_MAX_DIM)
            return BADHP("%s = %u is too large", dims[i].what, dims[i].v);
        if (dims[i].nonzero && dims[i].v == 0) return BADHP("%s must be > 0", dims[i].what);
    }
    if (hp->n_rot % 2) return BADHP("n_rot = %u must be even", hp->n_rot);
    /* every tensor below 2^44 elements: with <= 18 tensors per layer and 512 layers, all byte
     * counts of the plan then fit in uint64 */
    const uint64_t E = hp->n_embd, H = hp->n_head, Dqk = (uint64_t)hp->d_nope + hp->n_rot;
    const uint64_t elems[] = {E * hp->n_ff,
                              E * hp->n_ff_exp * hp->n_expert,
                              E * hp->n_ff_exp * hp->n_expert_shared,
                              (uint64_t)(hp->q_lora ? hp->q_lora : hp->n_embd) * H * Dqk,
                              (uint64_t)hp->kv_lora * H * (hp->d_nope + hp->d_v),
                              E * H * hp->d_v};
    for (size_t i = 0; i < sizeof elems / sizeof elems[0]; i++)
        if (elems[i] > (1ull << 44)) return BADHP("a tensor of these dimensions is too large");
    if (hp->n_layer == 0 || hp->n_layer > VKM_MODEL_MAX_LAYERS)
        return BADHP("layers must be 1..%d", VKM_MODEL_MAX_LAYERS);
    if (hp->n_dense_lead > hp->n_layer) return BADHP("more dense layers than layers");
    if (hp->n_dense_lead > 0 && hp->n_ff == 0) return BADHP("dense layers need n_ff > 0");
    if (hp->n_expert > VKM_MODEL_MAX_EXPERT) return BADHP("too many experts");
    if (hp->n_expert_used > hp->n_expert) return BADHP("top-k exceeds the expert count");
    if (hp->n_dense_lead < hp->n_layer) {
        if (hp->n_expert == 0 || hp->n_expert_used == 0 || hp->n_ff_exp == 0)
            return BADHP("MoE layers need experts, top-k and n_ff_exp");
    }
    if (hp->n_expert > 0 && hp->n_group >= hp->n_expert)
        return BADHP("expert groups %u must be below the expert count", hp->n_group);
    if (hp->n_group > 1 &&
        (hp->n_expert % hp->n_group || hp->n_group_used == 0 || hp->n_group_used >= hp->n_group))
        return BADHP("bad expert grouping %u/%u for %u experts", hp->n_group, hp->n_group_used,
                     hp->n_expert);
    if (hp->gating != 1 && hp->gating != 2) return BADHP("gating must be 1 or 2");
    if (hp->routing > VKM_GENMODEL_ROUTING_SKEWED)
        return BADHP("routing must be uniform or skewed");
    if (is_lite_layers(hp->n_layer) && hp->q_lora > 0)
        return BADHP("26/27 layers select attn_q (lite): q_lora must be 0");
    if (!(hp->eps > 0.0f) || !isfinite(hp->eps) || !(hp->rope_base > 0.0f) ||
        !isfinite(hp->rope_base) || !(hp->yarn_factor >= 0.0f) || !isfinite(hp->yarn_factor) ||
        !(hp->mscale_all_dim >= 0.0f) || !isfinite(hp->mscale_all_dim) ||
        !isfinite(hp->weights_scale))
        return BADHP("a float hyperparameter is out of range");
    if (hp->yarn_factor > 0.0f && hp->yarn_orig_ctx == 0) return BADHP("yarn needs an orig ctx");
    if (memchr(hp->name, 0, sizeof hp->name) == NULL || memchr(hp->pre, 0, sizeof hp->pre) == NULL)
        return BADHP("name or pre is not terminated");
    return 0;
}

/* ----------------------------------------------------------------------------- vocabulary ---- */

enum { N_BYTE_TOKENS = 256, N_MERGES = 8, TOKEN_BOS = 264, TOKEN_EOS = 265 };

static const char *const g_merge_tokens[N_MERGES] = {"\xc4\xa0t",
                                                     "he",
                                                     "\xc4\xa0the",
                                                     "in",
                                                     "er",
                                                     "an",
                                                     "on",
                                                     ("\xc4\xa0"
                                                      "a")};
static const char *const g_merges[N_MERGES] = {"\xc4\xa0 t", "h e", "\xc4\xa0t he", "i n",
                                               "e r",        "a n", "o n",          "\xc4\xa0 a"};
static const char *const g_special[4] = {
    "<\xef\xbd\x9c"
    "begin\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>",
    "<\xef\xbd\x9c"
    "end\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>",
    "<\xef\xbd\x9cUser\xef\xbd\x9c>",
    "<\xef\xbd\x9c"
    "Assistant\xef\xbd\x9c>",
};

/* GPT-2's byte-to-unicode map: printable bytes map to themselves, the others to 256 + n in order.
 */
static uint32_t gpt2_byte_cp(uint32_t b) {
    if ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255)) return b;
    uint32_t n = 0;
    for (uint32_t x = 0; x < b; x++)
        if (!((x >= 33 && x <= 126) || (x >= 161 && x <= 172) || (x >= 174 && x <= 255))) n++;
    return 256 + n;
}

/* Writes the tokenizer.* keys of the 268-token byte vocabulary. */
static int write_vocab(vkm_gguf_writer *w, const char *pre, uint32_t chat_template) {
    char bytes_tok[N_BYTE_TOKENS][4];
    const char *toks[VKM_GENMODEL_N_VOCAB];
    int32_t types[VKM_GENMODEL_N_VOCAB];
    for (uint32_t b = 0; b < N_BYTE_TOKENS; b++) {
        uint32_t cp = gpt2_byte_cp(b); /* < 0x800: one or two UTF-8 bytes */
        char *s = bytes_tok[b];
        if (cp < 0x80) {
            s[0] = (char)cp;
            s[1] = 0;
        } else {
            s[0] = (char)(0xC0 | (cp >> 6));
            s[1] = (char)(0x80 | (cp & 0x3F));
            s[2] = 0;
        }
        toks[b] = s;
        types[b] = 1;
    }
    for (int i = 0; i < N_MERGES; i++) {
        toks[N_BYTE_TOKENS + i] = g_merge_tokens[i];
        types[N_BYTE_TOKENS + i] = 1;
    }
    for (int i = 0; i < 4; i++) {
        toks[TOKEN_BOS + i] = g_special[i];
        types[TOKEN_BOS + i] = 3; /* CONTROL */
    }
    int rc;
    if ((rc = vkm_gguf_w_set_str(w, "tokenizer.ggml.model", "gpt2"))) return rc;
    if ((rc = vkm_gguf_w_set_str(w, "tokenizer.ggml.pre", pre))) return rc;
    if ((rc = vkm_gguf_w_set_arr_str(w, "tokenizer.ggml.tokens", toks, VKM_GENMODEL_N_VOCAB)))
        return rc;
    if ((rc = vkm_gguf_w_set_arr(w, "tokenizer.ggml.token_type", VKM_GGUF_INT32, types,
                                 VKM_GENMODEL_N_VOCAB)))
        return rc;
    if ((rc = vkm_gguf_w_set_arr_str(w, "tokenizer.ggml.merges", g_merges, N_MERGES))) return rc;
    if ((rc = vkm_gguf_w_set_u32(w, "tokenizer.ggml.bos_token_id", TOKEN_BOS))) return rc;
    if ((rc = vkm_gguf_w_set_u32(w, "tokenizer.ggml.eos_token_id", TOKEN_EOS))) return rc;
    if ((rc = vkm_gguf_w_set_bool(w, "tokenizer.ggml.add_bos_token", true))) return rc;
    if ((rc = vkm_gguf_w_set_bool(w, "tokenizer.ggml.add_eos_token", false))) return rc;
    const char *jinja = vkm_chat_template_jinja((enum vkm_chat_template)chat_template);
    return jinja ? vkm_gguf_w_set_str(w, "tokenizer.chat_template", jinja) : 0;
}

/* ------------------------------------------------------------------------------------ KVs ---- */

/* The keys in the order of llama.cpp's converter (and the fixtures), with the types it reads. */
static int write_kvs(vkm_gguf_writer *w, const vkm_genmodel_hparams *hp, uint32_t mix) {
    int rc = 0;
#define U32(k, v)                                                                                  \
    if ((rc = vkm_gguf_w_set_u32(w, k, v))) return rc
#define F32(k, v)                                                                                  \
    if ((rc = vkm_gguf_w_set_f32(w, k, v))) return rc
    if ((rc = vkm_gguf_w_set_str(w, "general.architecture", "deepseek2"))) return rc;
    if ((rc = vkm_gguf_w_set_str(w, "general.name", hp->name))) return rc;
    U32(KEY("block_count"), hp->n_layer);
    U32(KEY("context_length"), hp->n_ctx);
    U32(KEY("embedding_length"), hp->n_embd);
    U32(KEY("feed_forward_length"), hp->n_ff);
    U32(KEY("attention.head_count"), hp->n_head);
    U32(KEY("attention.head_count_kv"), 1);
    F32(KEY("rope.freq_base"), hp->rope_base);
    F32(KEY("attention.layer_norm_rms_epsilon"), hp->eps);
    U32(KEY("expert_count"), hp->n_expert);
    U32(KEY("expert_used_count"), hp->n_expert_used);
    if (hp->n_group > 0) {
        U32(KEY("expert_group_count"), hp->n_group);
        U32(KEY("expert_group_used_count"), hp->n_group_used);
    }
    U32(KEY("expert_gating_func"), hp->gating);
    U32(KEY("leading_dense_block_count"), hp->n_dense_lead);
    U32(KEY("vocab_size"), VKM_GENMODEL_N_VOCAB);
    if (!is_lite_layers(hp->n_layer)) U32(KEY("attention.q_lora_rank"), hp->q_lora);
    U32(KEY("attention.kv_lora_rank"), hp->kv_lora);
    U32(KEY("attention.key_length"), hp->kv_lora + hp->n_rot);
    U32(KEY("attention.value_length"), hp->kv_lora);
    U32(KEY("attention.key_length_mla"), hp->d_nope + hp->n_rot);
    U32(KEY("attention.value_length_mla"), hp->d_v);
    U32(KEY("expert_feed_forward_length"), hp->n_ff_exp);
    U32(KEY("expert_shared_count"), hp->n_expert_shared);
    F32(KEY("expert_weights_scale"), hp->weights_scale);
    if (hp->weights_norm && (rc = vkm_gguf_w_set_bool(w, KEY("expert_weights_norm"), true)))
        return rc;
    U32(KEY("rope.dimension_count"), hp->n_rot);
    if (hp->yarn_factor > 0.0f) {
        if ((rc = vkm_gguf_w_set_str(w, KEY("rope.scaling.type"), "yarn"))) return rc;
        F32(KEY("rope.scaling.factor"), hp->yarn_factor);
        U32(KEY("rope.scaling.original_context_length"), hp->yarn_orig_ctx);
        F32(KEY("rope.scaling.yarn_log_multiplier"), 0.1f * hp->mscale_all_dim);
    }
    if ((rc = write_vocab(w, hp->pre, hp->chat_template))) return rc;
    if (mix != VKM_GENMODEL_F32) {
        U32("general.quantization_version", 2);
        U32("general.file_type", g_mixes[mix].file_type);
    }
#undef U32
#undef F32
    return 0;
}

/* ----------------------------------------------------------------------------------- plan ---- */

typedef struct plan_builder {
    vkm_genmodel_plan *p;
    uint32_t mix, n_layer;
} plan_builder;

static void plan_add(plan_builder *b, int32_t layer, const char *what, uint32_t kind, int64_t e0,
                     int64_t e1, int64_t e2) {
    vkm_genmodel_tensor *t = &b->p->tensors[b->p->n++];
    if (layer >= 0)
        snprintf(t->name, sizeof t->name, "blk.%d.%s", (int)layer, what);
    else
        snprintf(t->name, sizeof t->name, "%s", what);
    t->n_dims = e2 != 1 ? 3 : e1 != 1 ? 2 : 1;
    t->ne[0] = e0;
    t->ne[1] = e1;
    t->ne[2] = e2;
    t->kind = kind;
    t->layer = layer;
    t->type = vkm_genmodel_tensor_type(b->mix, kind, e0, layer, b->n_layer);
    t->nbytes = (uint64_t)vkm_qtype_row_bytes(t->type, (uint64_t)e0) * (uint64_t)e1 * (uint64_t)e2;
    b->p->data_bytes += t->nbytes;
}

int vkm_genmodel_plan_create(const vkm_genmodel_hparams *hp, uint32_t mix,
                             vkm_genmodel_plan **out) {
    *out = NULL;
    if (mix >= VKM_GENMODEL_MIX_COUNT) return vkm_error(VKM_EINVAL, "bad quant mix %u", mix);
    int rc = vkm_genmodel_check(hp);
    if (rc) return rc;
    enum { MAX_PER_LAYER = 18 };
    vkm_genmodel_plan *p = calloc(1, sizeof *p);
    if (p) p->tensors = calloc(3 + (size_t)MAX_PER_LAYER * hp->n_layer, sizeof *p->tensors);
    if (!p || !p->tensors) {
        vkm_genmodel_plan_destroy(p);
        return vkm_error(VKM_ENOMEM, "out of memory planning the model");
    }
    plan_builder b = {p, mix, hp->n_layer};
    const int64_t E = hp->n_embd, V = VKM_GENMODEL_N_VOCAB, H = hp->n_head, R = hp->n_rot;
    const int64_t Dn = hp->d_nope, Dv = hp->d_v, Dqk = Dn + R, Cq = hp->q_lora, Ckv = hp->kv_lora;
    const int64_t F = hp->n_ff, Fe = hp->n_ff_exp, X = hp->n_expert, S = hp->n_expert_shared;
    plan_add(&b, -1, "token_embd.weight", VKM_GENMODEL_EMBD, E, V, 1);
    for (int32_t il = 0; il < (int32_t)hp->n_layer; il++) {
        plan_add(&b, il, "attn_norm.weight", VKM_GENMODEL_NORM, E, 1, 1);
        if (Cq > 0) {
            plan_add(&b, il, "attn_q_a.weight", VKM_GENMODEL_WEIGHT, E, Cq, 1);
            plan_add(&b, il, "attn_q_a_norm.weight", VKM_GENMODEL_NORM, Cq, 1, 1);
            plan_add(&b, il, "attn_q_b.weight", VKM_GENMODEL_WEIGHT, Cq, H * Dqk, 1);
        } else {
            plan_add(&b, il, "attn_q.weight", VKM_GENMODEL_WEIGHT, E, H * Dqk, 1);
        }
        plan_add(&b, il, "attn_kv_a_mqa.weight", VKM_GENMODEL_WEIGHT, E, Ckv + R, 1);
        plan_add(&b, il, "attn_kv_a_norm.weight", VKM_GENMODEL_NORM, Ckv, 1, 1);
        plan_add(&b, il, "attn_k_b.weight", VKM_GENMODEL_WEIGHT, Dn, Ckv, H);
        plan_add(&b, il, "attn_v_b.weight", VKM_GENMODEL_WEIGHT, Ckv, Dv, H);
        plan_add(&b, il, "attn_output.weight", VKM_GENMODEL_WEIGHT, H * Dv, E, 1);
        plan_add(&b, il, "ffn_norm.weight", VKM_GENMODEL_NORM, E, 1, 1);
        if ((uint32_t)il < hp->n_dense_lead) {
            plan_add(&b, il, "ffn_gate.weight", VKM_GENMODEL_WEIGHT, E, F, 1);
            plan_add(&b, il, "ffn_up.weight", VKM_GENMODEL_WEIGHT, E, F, 1);
            plan_add(&b, il, "ffn_down.weight", VKM_GENMODEL_FFN_DOWN, F, E, 1);
            continue;
        }
        plan_add(&b, il, "ffn_gate_inp.weight", VKM_GENMODEL_ROUTER, E, X, 1);
        if (hp->exp_probs_b) plan_add(&b, il, "exp_probs_b.bias", VKM_GENMODEL_BIAS, X, 1, 1);
        plan_add(&b, il, "ffn_gate_exps.weight", VKM_GENMODEL_WEIGHT, E, Fe, X);
        plan_add(&b, il, "ffn_up_exps.weight", VKM_GENMODEL_WEIGHT, E, Fe, X);
        plan_add(&b, il, "ffn_down_exps.weight", VKM_GENMODEL_FFN_DOWN, Fe, E, X);
        if (S > 0) {
            plan_add(&b, il, "ffn_gate_shexp.weight", VKM_GENMODEL_WEIGHT, E, Fe * S, 1);
            plan_add(&b, il, "ffn_up_shexp.weight", VKM_GENMODEL_WEIGHT, E, Fe * S, 1);
            plan_add(&b, il, "ffn_down_shexp.weight", VKM_GENMODEL_FFN_DOWN, Fe * S, E, 1);
        }
    }
    plan_add(&b, -1, "output_norm.weight", VKM_GENMODEL_NORM, E, 1, 1);
    plan_add(&b, -1, "output.weight", VKM_GENMODEL_OUTPUT, E, V, 1);
    *out = p;
    return 0;
}

void vkm_genmodel_plan_destroy(vkm_genmodel_plan *p) {
    if (!p) return;
    free(p->tensors);
    free(p);
}

/* ---------------------------------------------------------------------------- row values ---- */

static uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static uint64_t fnv1a(const char *s) {
    uint64_t h = 0xCBF29CE484222325ull;
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 0x100000001B3ull;
    return h;
}

/* Skewed routing (hp->routing == VKM_GENMODEL_ROUTING_SKEWED). In each MoE layer the experts
 * get a popularity rank r(e) (0 = most popular), a permutation drawn from (seed, layer), and a
 * Zipf weight z = 1 / (r + 1). Router row e (ffn_gate_inp, F32) is scaled by 1 + SKEW_GAIN * z,
 * which widens that expert's logit spread, so it wins the top-k more often (this works for
 * softmax gating, whose selection is by logits alone); where the layer has exp_probs_b (the
 * selection bias of sigmoid gating), SKEW_BIAS * ln z is added to the expert's bias. Both are
 * monotone in z, so popularity falls with rank. Measured (tests/test_genmodel.c, 48 tokens
 * through the reference forward): the top 20% of experts take 54% of the routings on tiny (16
 * experts, top-4, sigmoid + biases; 38% uniform) and 55% on a narrowed V2-Lite (64 experts,
 * top-6, softmax; 40% uniform). Temporal locality is not built in: consecutive tokens share
 * only what their hidden states share. The uniform default leaves every value as before. */
#define SKEW_GAIN 8.0f
#define SKEW_BIAS 0.3f

/* Popularity rank of expert e of X in `layer`: its place in the order of a seeded hash. */
static int64_t skew_rank(uint64_t seed, int32_t layer, int64_t e, int64_t X) {
    const uint64_t base = mix64(seed ^ 0x5EEDC0DEull ^ mix64((uint64_t)(int64_t)layer + 1));
    const uint64_t he = mix64(base + (uint64_t)e);
    int64_t r = 0;
    for (int64_t i = 0; i < X; i++) {
        const uint64_t hi = mix64(base + (uint64_t)i);
        r += hi < he || (hi == he && i < e);
    }
    return r;
}

/* Applies skewed routing to a generated row of the router or the bias. */
static void skew_row(const vkm_genmodel_tensor *t, uint64_t seed, int64_t row, float *v) {
    if (t->kind == VKM_GENMODEL_ROUTER) { /* {E, X}: row = expert */
        const float z = 1.0f / (float)(skew_rank(seed, t->layer, row, t->ne[1]) + 1);
        for (int64_t i = 0; i < t->ne[0]; i++) v[i] *= 1.0f + SKEW_GAIN * z;
    } else if (t->kind == VKM_GENMODEL_BIAS) { /* {X}: one row */
        for (int64_t e = 0; e < t->ne[0]; e++)
            v[e] -= SKEW_BIAS * logf((float)(skew_rank(seed, t->layer, e, t->ne[0]) + 1));
    }
}

/* Row values of a tensor: a splitmix64 stream seeded by (seed, name hash, row). Matrices get a
 * triangular distribution (sum of two uniforms) with std `scale`: std 1/sqrt(ne0) keeps the
 * activations' magnitude through each matmul, like a real initialisation. */
static void gen_row(const vkm_genmodel_tensor *t, uint64_t name_hash, uint64_t seed, int64_t row,
                    uint32_t routing, float *v) {
    uint64_t s = mix64(seed ^ mix64(name_hash + (uint64_t)row * 0x9E3779B97F4A7C15ull));
    const int64_t n = t->ne[0];
    float lo = 0.0f, width = 0.0f, std = 0.0f;
    switch (t->kind) {
    case VKM_GENMODEL_NORM:
        lo = 0.9f, width = 0.2f;
        break;
    case VKM_GENMODEL_BIAS:
        lo = -0.01f, width = 0.02f;
        break;
    case VKM_GENMODEL_EMBD:
        std = 1.0f;
        break;
    default:
        std = 1.0f / sqrtf((float)n);
        break;
    }
    const float k = std * sqrtf(1.5f); /* (u1 + u2) with u ~ U(-1,1) has variance 2/3 */
    for (int64_t i = 0; i < n; i++) {
        s += 0x9E3779B97F4A7C15ull;
        uint64_t r = mix64(s);
        float u1 = (float)(r >> 40) * (1.0f / 16777216.0f);              /* [0,1) */
        float u2 = (float)((r >> 16) & 0xFFFFFF) * (1.0f / 16777216.0f); /* [0,1) */
        if (std > 0.0f)
            v[i] = k * ((2.0f * u1 - 1.0f) + (2.0f * u2 - 1.0f));
        else
            v[i] = lo + width * u1;
    }
    if (routing == VKM_GENMODEL_ROUTING_SKEWED) skew_row(t, seed, row, v);
}

/* ---------------------------------------------------------------------------------- write ---- */

/* Rows are generated by a pool of threads: fill() describes its chunk as a job (a row range),
 * the calling thread and the workers claim batches of rows from an atomic counter, and each row
 * goes straight into the chunk when it lies wholly inside it, else through a scratch row from
 * which its part is copied. The row cut by the end of a chunk is kept (the cache) for the next
 * chunk, so a row is generated once even when it straddles chunks. Each byte of the output is
 * written by exactly one thread and depends only on (seed, name, row), so the file is the same
 * for every thread count. */

enum {
    MAX_THREADS = 32,       /* default cap: online CPUs, at most this */
    MAX_THREADS_ENV = 256,  /* VKMOE_THREADS range */
    PAR_MIN_BYTES = 1 << 16 /* smaller chunks are generated by the calling thread alone */
};

typedef struct scratch {
    float *vals;  /* [max ne0] one row of values */
    uint8_t *row; /* [max row bytes] that row encoded */
} scratch;

/* Rows [r_begin, r_end) of tensor t; row r's bytes are [r * rb, (r + 1) * rb) of the tensor and
 * land in buf (which holds the tensor's bytes [offset, offset + n)) where they overlap it. */
typedef struct gen_job {
    const vkm_genmodel_tensor *t;
    uint64_t hash, rb, offset;
    uint8_t *buf;
    size_t n;
    int64_t r_begin, r_end, grain;
    uint8_t *tail; /* [rb] where a row cut by the chunk's end is encoded (the cache) */
} gen_job;

typedef struct gen_ctx gen_ctx;

typedef struct gen_worker {
    gen_ctx *c;
    scratch s;
    pthread_t th;
} gen_worker;

struct gen_ctx {
    const vkm_genmodel_plan *plan;
    uint64_t seed;
    uint32_t routing; /* hp->routing */
    int64_t max_ne0;
    uint64_t max_rb;
    scratch main;       /* the calling thread's scratch */
    uint8_t *row;       /* [max row bytes] the cache: row cur_row of tensor cur_tensor */
    int64_t cur_tensor; /* -1: cache empty */
    int64_t cur_row;
    uint64_t done, total; /* tensor bytes produced / planned */
    vkm_genmodel_progress_fn progress;
    void *user;

    /* pool: n_workers threads besides the calling one */
    gen_worker *workers; /* [n_workers] */
    int n_workers;
    bool sync_ok; /* mu and the conds are initialised */
    pthread_mutex_t mu;
    pthread_cond_t go, idle;
    uint64_t gen;             /* bumped for each job handed to the workers (under mu) */
    int running;              /* workers still on the current job (under mu) */
    bool quit;                /* under mu */
    gen_job job;              /* written under mu before gen is bumped; read-only while running */
    atomic_int_fast64_t next; /* next row to claim */
    atomic_bool failed;
    int err; /* first error of a job (under mu) and its message */
    char errmsg[512];
};

static int64_t min64(int64_t a, int64_t b) {
    return a < b ? a : b;
}

/* Row r's values encoded as the tensor's type; the IQ types without a quantizer get random valid
 * blocks of the values' RMS instead (vkm_ref_random_iq_row, seeded by the seed, tensor and row). */
static int encode_row(const gen_job *j, uint64_t seed, int64_t r, const float *vals, uint8_t *dst) {
    const uint32_t t = j->t->type;
    if (t != VKM_IQ1_S && t != VKM_IQ1_M && t != VKM_IQ2_XXS && t != VKM_IQ2_XS && t != VKM_IQ2_S &&
        t != VKM_IQ3_XXS && t != VKM_IQ3_S)
        return vkm_ref_quant_row(t, vals, dst, j->t->ne[0]);
    double s = 0;
    for (int64_t i = 0; i < j->t->ne[0]; i++) s += (double)vals[i] * vals[i];
    const float rms = s > 0 ? (float)sqrt(s / (double)j->t->ne[0]) : 1e-3f;
    uint64_t st = (seed ^ j->hash) * 0x9E3779B97F4A7C15ull + (uint64_t)r * 0xD1B54A32D192ED03ull;
    st |= 1; /* xorshift needs a nonzero state */
    return vkm_ref_random_iq_row(t, &st, rms, dst, j->t->ne[0]);
}

/* Generates row r of the job and puts its bytes in place. */
static int job_row(const gen_ctx *c, const gen_job *j, int64_t r, const scratch *s) {
    const uint64_t start = (uint64_t)r * j->rb, end = start + j->rb;
    const uint64_t lo = start > j->offset ? start : j->offset;
    const uint64_t hi = end < j->offset + j->n ? end : j->offset + j->n;
    gen_row(j->t, j->hash, c->seed, r, c->routing, s->vals);
    if (lo == start && hi == end)
        return encode_row(j, c->seed, r, s->vals, j->buf + (start - j->offset));
    uint8_t *row = end > j->offset + j->n ? j->tail : s->row;
    int rc = encode_row(j, c->seed, r, s->vals, row);
    if (rc) return rc;
    memcpy(j->buf + (lo - j->offset), row + (lo - start), (size_t)(hi - lo));
    return 0;
}

/* Claims batches of rows of the current job until none are left or a thread failed. */
static void job_run(gen_ctx *c, const scratch *s) {
    const gen_job *j = &c->job;
    while (!atomic_load(&c->failed)) {
        int64_t r = atomic_fetch_add(&c->next, j->grain);
        if (r >= j->r_end) return;
        for (int64_t e = min64(r + j->grain, j->r_end); r < e; r++) {
            int rc = job_row(c, j, r, s);
            if (rc) {
                pthread_mutex_lock(&c->mu);
                if (!c->err) {
                    c->err = rc;
                    snprintf(c->errmsg, sizeof c->errmsg, "%s", vkm_errmsg());
                }
                pthread_mutex_unlock(&c->mu);
                atomic_store(&c->failed, true);
                return;
            }
        }
    }
}

static void *worker_main(void *arg) {
    gen_worker *w = arg;
    gen_ctx *c = w->c;
    uint64_t seen = 0;
    pthread_mutex_lock(&c->mu);
    for (;;) {
        while (!c->quit && c->gen == seen) pthread_cond_wait(&c->go, &c->mu);
        if (c->quit) break;
        seen = c->gen;
        pthread_mutex_unlock(&c->mu);
        job_run(c, &w->s);
        pthread_mutex_lock(&c->mu);
        if (--c->running == 0) pthread_cond_signal(&c->idle);
    }
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

/* Runs c->job on the calling thread and, for big enough jobs, the workers. */
static int job_dispatch(gen_ctx *c) {
    const gen_job *j = &c->job;
    const int64_t rows = j->r_end - j->r_begin;
    atomic_store(&c->next, j->r_begin);
    atomic_store(&c->failed, false);
    c->err = 0;
    const bool par = c->n_workers > 0 && rows > 1 && j->n >= PAR_MIN_BYTES;
    if (par) {
        pthread_mutex_lock(&c->mu);
        c->running = c->n_workers;
        c->gen++;
        pthread_cond_broadcast(&c->go);
        pthread_mutex_unlock(&c->mu);
    }
    job_run(c, &c->main);
    pthread_mutex_lock(&c->mu);
    while (par && c->running > 0) pthread_cond_wait(&c->idle, &c->mu);
    int rc = c->err;
    pthread_mutex_unlock(&c->mu);
    if (rc) return vkm_error(rc, "%s", c->errmsg);
    return 0;
}

static int fill(void *user, int64_t tensor, uint64_t offset, void *buf, size_t n) {
    gen_ctx *c = user;
    VKM_ASSERT(tensor >= 0 && tensor < c->plan->n);
    const vkm_genmodel_tensor *t = &c->plan->tensors[tensor];
    const uint64_t rb = vkm_qtype_row_bytes(t->type, (uint64_t)t->ne[0]);
    if (n == 0) return 0;
    gen_job *j = &c->job;
    *j = (gen_job){.t = t,
                   .hash = fnv1a(t->name),
                   .rb = rb,
                   .offset = offset,
                   .buf = buf,
                   .n = n,
                   .tail = c->row};
    j->r_begin = (int64_t)(offset / rb);
    j->r_end = (int64_t)((offset + n - 1) / rb) + 1;
    if (tensor == c->cur_tensor && j->r_begin == c->cur_row) { /* the head row is cached */
        const uint64_t in = offset % rb;
        const size_t take = rb - in < n ? (size_t)(rb - in) : n;
        memcpy(buf, c->row + in, take);
        j->r_begin++;
    }
    const bool tail_cut = j->r_end > j->r_begin && (uint64_t)j->r_end * rb > offset + n;
    if (j->r_end > j->r_begin) {
        const int64_t threads = c->n_workers + 1;
        j->grain = (j->r_end - j->r_begin) / (threads * 8);
        if (j->grain < 1) j->grain = 1;
        if (tail_cut) c->cur_tensor = -1; /* the cache is about to be overwritten */
        int rc = job_dispatch(c);
        if (rc) return rc;
        if (tail_cut) {
            c->cur_tensor = tensor;
            c->cur_row = j->r_end - 1;
        }
    }
    c->done += n;
    if (c->progress) c->progress(c->user, c->done, c->total);
    return 0;
}

/* Thread count: VKMOE_THREADS if set, else the online CPUs capped at MAX_THREADS. */
static int thread_count(int *out) {
    const char *e = getenv("VKMOE_THREADS");
    if (e && *e) {
        char *end;
        errno = 0;
        long v = strtol(e, &end, 10);
        if (*end || errno || v < 1 || v > MAX_THREADS_ENV)
            return vkm_error(VKM_EINVAL, "VKMOE_THREADS='%s' must be 1..%d", e, MAX_THREADS_ENV);
        *out = (int)v;
        return 0;
    }
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    *out = n < 1 ? 1 : n > MAX_THREADS ? MAX_THREADS : (int)n;
    return 0;
}

static int scratch_alloc(scratch *s, int64_t max_ne0, uint64_t max_rb) {
    s->vals = malloc((size_t)max_ne0 * sizeof *s->vals);
    s->row = malloc((size_t)max_rb);
    if (!s->vals || !s->row) return vkm_error(VKM_ENOMEM, "out of memory generating the model");
    return 0;
}

static void scratch_free(scratch *s) {
    free(s->vals);
    free(s->row);
}

/* Starts up to threads - 1 workers (fewer if thread creation fails: the work still gets done).
 * On error nothing is left running; pool_stop() cleans up either way. */
static int pool_start(gen_ctx *c, int threads) {
    if (threads <= 1) return 0;
    if (pthread_mutex_init(&c->mu, NULL)) return 0;
    if (pthread_cond_init(&c->go, NULL)) {
        pthread_mutex_destroy(&c->mu);
        return 0;
    }
    if (pthread_cond_init(&c->idle, NULL)) {
        pthread_cond_destroy(&c->go);
        pthread_mutex_destroy(&c->mu);
        return 0;
    }
    c->sync_ok = true;
    c->workers = calloc((size_t)(threads - 1), sizeof *c->workers);
    if (!c->workers) return vkm_error(VKM_ENOMEM, "out of memory generating the model");
    for (int i = 0; i < threads - 1; i++) {
        gen_worker *w = &c->workers[i];
        w->c = c;
        int rc = scratch_alloc(&w->s, c->max_ne0, c->max_rb);
        if (rc) {
            scratch_free(&w->s);
            return rc;
        }
        if (pthread_create(&w->th, NULL, worker_main, w)) {
            scratch_free(&w->s);
            break; /* run with the workers started so far */
        }
        c->n_workers++;
    }
    return 0;
}

static void pool_stop(gen_ctx *c) {
    if (c->sync_ok) {
        pthread_mutex_lock(&c->mu);
        c->quit = true;
        pthread_cond_broadcast(&c->go);
        pthread_mutex_unlock(&c->mu);
    }
    for (int i = 0; i < c->n_workers; i++) {
        pthread_join(c->workers[i].th, NULL);
        scratch_free(&c->workers[i].s);
    }
    free(c->workers);
    if (c->sync_ok) {
        pthread_cond_destroy(&c->idle);
        pthread_cond_destroy(&c->go);
        pthread_mutex_destroy(&c->mu);
    }
}

int vkm_genmodel_write(const vkm_genmodel_hparams *hp, uint32_t mix, uint64_t seed,
                       const char *path, vkm_genmodel_progress_fn progress, void *user) {
    vkm_genmodel_plan *plan = NULL;
    vkm_gguf_writer *w = NULL;
    gen_ctx *c = NULL;
    int threads = 1;
    int rc = vkm_genmodel_plan_create(hp, mix, &plan);
    if (rc) return rc;
    if ((rc = thread_count(&threads))) goto done;
    if (!(c = calloc(1, sizeof *c))) {
        rc = vkm_error(VKM_ENOMEM, "out of memory generating the model");
        goto done;
    }
    *c = (gen_ctx){.plan = plan,
                   .seed = seed,
                   .routing = hp->routing,
                   .max_ne0 = 1,
                   .max_rb = 1,
                   .cur_tensor = -1,
                   .cur_row = -1,
                   .total = plan->data_bytes,
                   .progress = progress,
                   .user = user};
    for (int64_t i = 0; i < plan->n; i++) {
        const vkm_genmodel_tensor *t = &plan->tensors[i];
        uint64_t rb = vkm_qtype_row_bytes(t->type, (uint64_t)t->ne[0]);
        if (t->ne[0] > c->max_ne0) c->max_ne0 = t->ne[0];
        if (rb > c->max_rb) c->max_rb = rb;
    }
    if ((rc = scratch_alloc(&c->main, c->max_ne0, c->max_rb))) goto done;
    if (!(c->row = malloc((size_t)c->max_rb))) {
        rc = vkm_error(VKM_ENOMEM, "out of memory generating the model");
        goto done;
    }
    if ((rc = pool_start(c, threads))) goto done;
    if ((rc = vkm_gguf_writer_create(&w))) goto done;
    if ((rc = write_kvs(w, hp, mix))) goto done;
    for (int64_t i = 0; i < plan->n; i++) {
        const vkm_genmodel_tensor *t = &plan->tensors[i];
        int64_t idx = vkm_gguf_w_add_tensor_cb(w, t->name, t->n_dims, t->ne, t->type, fill, c);
        if (idx < 0) {
            rc = (int)idx;
            goto done;
        }
        VKM_ASSERT(idx == i && vkm_gguf_w_tensor_nbytes(w, idx) == t->nbytes);
    }
    rc = vkm_gguf_w_write(w, path);
done:
    vkm_gguf_writer_destroy(w);
    if (c) {
        pool_stop(c);
        scratch_free(&c->main);
        free(c->row);
        free(c);
    }
    vkm_genmodel_plan_destroy(plan);
    return rc;
}
