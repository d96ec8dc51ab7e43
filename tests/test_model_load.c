/* test_model_load.c - vkm_model_load on the fixtures (hyperparameters, derived RoPE/attention
 * constants, tensor table) and on malformed variants: copies of tiny-v3-f32.gguf, written with
 * gguf_write, with exactly one thing changed; each must fail with the right code and a message
 * naming the key or tensor (or load, for the accepted variations: tied output, nextn layers, no
 * gating key, no yarn_log_multiplier). */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "gguf.h"
#include "gguf_write.h"
#include "model.h"
#include "qtype.h"
#include "ref_ops.h"

#define TMP_PATH VKMOE_BINARY_DIR "/test_model_load.tmp.gguf"

/* One change applied to a copy of the fixture. */
typedef struct variant {
    const char *drop_key;    /* KV left out */
    const char *drop_tensor; /* tensor left out */
    const char *reshape;     /* tensor rewritten (zero data) with n_dims/ne/type below */
    uint32_t n_dims;
    int64_t ne[4];
    uint32_t type;
    const char *u32_key; /* KV set (or replaced) as UINT32 */
    uint32_t u32;
    const char *f32_key; /* KV set as FLOAT32 */
    float f32;
    void (*edit)(vkm_gguf_writer *w); /* anything else */
} variant;

static int build(const vkm_gguf *g, const variant *v) {
    vkm_gguf_writer *w = NULL;
    int rc = vkm_gguf_writer_create(&w);
    for (int64_t i = 0; !rc && i < vkm_gguf_n_kv(g); i++)
        if (!v->drop_key || strcmp(vkm_gguf_key(g, i), v->drop_key))
            rc = vkm_gguf_w_copy_kv(w, g, i);
    for (int64_t i = 0; !rc && i < vkm_gguf_n_tensors(g); i++) {
        const vkm_gguf_tensor *t = vkm_gguf_tensor_at(g, i);
        if (v->drop_tensor && !strcmp(t->name, v->drop_tensor)) continue;
        int64_t r;
        if (v->reshape && !strcmp(t->name, v->reshape))
            r = vkm_gguf_w_add_tensor(w, t->name, v->n_dims, v->ne, v->type, NULL);
        else
            r = vkm_gguf_w_add_tensor(w, t->name, t->n_dims, t->ne, t->type, t->data);
        if (r < 0) rc = (int)r;
    }
    if (!rc && v->u32_key) rc = vkm_gguf_w_set_u32(w, v->u32_key, v->u32);
    if (!rc && v->f32_key) rc = vkm_gguf_w_set_f32(w, v->f32_key, v->f32);
    if (!rc && v->edit) v->edit(w);
    if (!rc) rc = vkm_gguf_w_write(w, TMP_PATH);
    vkm_gguf_writer_destroy(w);
    return rc;
}

/* Builds the variant and loads it; returns the load's code. *hp receives the hyperparameters
 * when it loads. */
static int try_variant(const vkm_gguf *g, const variant *v, vkm_hparams *hp, bool *tied) {
    int rc = build(g, v);
    CHECK_MSG(rc == 0, "building variant: %s", vkm_errmsg());
    if (rc) return 1;
    vkm_gguf *g2 = NULL;
    rc = vkm_gguf_open(TMP_PATH, &g2);
    CHECK_MSG(rc == 0, "opening variant: %s", vkm_errmsg());
    if (rc) return 1;
    vkm_model *m = NULL;
    rc = vkm_model_load(g2, &m);
    if (!rc) {
        if (hp) *hp = m->hp;
        if (tied) *tied = m->tied_output && m->output.data == m->token_embd.data;
    }
    vkm_model_free(m);
    vkm_gguf_close(g2);
    return rc;
}

/* Expects the variant to fail with `code` and a message containing `needle`. */
#define EXPECT_FAIL(g, v, code, needle)                                                            \
    do {                                                                                           \
        variant v_ = v;                                                                            \
        int rc_ = try_variant(g, &v_, NULL, NULL);                                                 \
        printf("  rejected: %s\n", rc_ ? vkm_errmsg() : "(loaded)");                               \
        CHECK_MSG(rc_ == (code), "variant %s: got %d (%s), expected %d", needle, rc_,              \
                  rc_ ? vkm_errmsg() : "ok", code);                                                \
        CHECK_MSG(rc_ == 0 || strstr(vkm_errmsg(), needle), "message \"%s\" lacks \"%s\"",         \
                  vkm_errmsg(), needle);                                                           \
    } while (0)

static void add_kv_b(vkm_gguf_writer *w) { /* a legacy tensor beside the MLA split ones */
    vkm_gguf_w_add_tensor(w, "blk.1.attn_kv_b.weight", 2, (int64_t[]){32, 128}, VKM_F32, NULL);
}
static void add_nextn(vkm_gguf_writer *w) { /* one MTP layer after the 3 main layers */
    vkm_gguf_w_set_u32(w, "deepseek2.block_count", 4);
    vkm_gguf_w_set_u32(w, "deepseek2.nextn_predict_layers", 1);
    vkm_gguf_w_add_tensor(w, "blk.3.nextn.eh_proj.weight", 2, (int64_t[]){128, 64}, VKM_F32, NULL);
    vkm_gguf_w_add_tensor(w, "blk.3.attn_norm.weight", 1, (int64_t[]){64}, VKM_F32, NULL);
}
static void add_unknown(vkm_gguf_writer *w) {
    vkm_gguf_w_add_tensor(w, "rope_freqs.weight", 1, (int64_t[]){4}, VKM_F32, NULL);
}
static void set_lite(vkm_gguf_writer *w) { /* 26 layers, 23 of them nextn: "lite" by count */
    vkm_gguf_w_set_u32(w, "deepseek2.block_count", 26);
    vkm_gguf_w_set_u32(w, "deepseek2.nextn_predict_layers", 23);
}
static void set_arch_llama(vkm_gguf_writer *w) {
    vkm_gguf_w_set_str(w, "general.architecture", "llama");
}
static void set_experts_i32(vkm_gguf_writer *w) {
    vkm_gguf_w_set_i32(w, "deepseek2.expert_count", 16);
}
static void set_scaling_longrope(vkm_gguf_writer *w) {
    vkm_gguf_w_set_str(w, "deepseek2.rope.scaling.type", "longrope");
}
static void set_ff_array(vkm_gguf_writer *w) { /* per-layer n_ff of the wrong length */
    uint32_t v[2] = {128, 0};
    vkm_gguf_w_set_arr(w, "deepseek2.feed_forward_length", VKM_GGUF_UINT32, v, 2);
}
static void set_ff_array_ok(vkm_gguf_writer *w) {
    uint32_t v[3] = {128, 0, 0};
    vkm_gguf_w_set_arr(w, "deepseek2.feed_forward_length", VKM_GGUF_UINT32, v, 3);
}

static void check_tiny(const vkm_model *m) {
    const vkm_hparams *hp = &m->hp;
    CHECK(hp->n_layer == 3 && hp->n_layer_all == 3 && hp->n_nextn == 0);
    CHECK(hp->n_embd == 64 && hp->n_head == 4 && hp->n_head_kv == 1);
    CHECK(hp->n_lora_q == 48 && hp->n_lora_kv == 32);
    CHECK(hp->d_nope == 16 && hp->n_rot == 8 && hp->d_v == 16 && hp->d_qk == 24);
    CHECK(hp->key_length == 40 && hp->value_length == 32 && hp->kv_dim == 40);
    CHECK(hp->is_mla && !hp->is_lite);
    CHECK(hp->n_ff == 128 && hp->n_ff_exp == 32 && hp->n_dense_lead == 1);
    CHECK(hp->n_expert == 16 && hp->n_expert_used == 4 && hp->n_expert_shared == 1);
    CHECK(hp->n_group == 4 && hp->n_group_used == 2);
    CHECK(hp->gating == VKM_GATING_SIGMOID && hp->expert_weights_norm);
    CHECK(hp->expert_weights_scale == 2.5f);
    CHECK(hp->n_vocab == 268 && hp->n_ctx_train == 1024);
    CHECK_NEAR(hp->eps, 1e-6, 1e-12);
    CHECK(hp->rope_scaling == VKM_ROPE_SCALING_YARN && hp->rope_scale_factor == 4.0f);
    CHECK(hp->n_ctx_orig == 256 && hp->rope_freq_base == 10000.0f);
    CHECK(hp->yarn_log_mul == 1.0f); /* stored 0.1, divided by 0.1 */
    CHECK(hp->freq_scale == 0.25f && hp->ext_factor == 1.0f);
    /* §4.6 by hand: L = 1, s = 4 -> A = 1/(1 + 0.1 ln 4), cos/sin magnitude 1,
     * mscale = 1 + 0.1 ln 4, kq_scale = mscale^2 / sqrt(24) */
    const double ms = 1.0 + 0.1 * log(4.0);
    CHECK_NEAR(hp->attn_factor, 1.0 / ms, 1e-6);
    CHECK_NEAR(hp->rope_mscale, 1.0, 1e-6);
    CHECK_NEAR(hp->kq_scale, ms * ms / sqrt(24.0), 1e-6);
    CHECK_NEAR(hp->kq_scale, 0.2646417, 1e-6);
    /* corr dims for R = 8, orig 256, base 1e4: corr(32) = 0.105 -> 0, corr(1) = 1.61 -> 2 */
    CHECK(hp->corr_low == 0.0f && hp->corr_high == 2.0f);

    CHECK(!m->tied_output && m->output.data != m->token_embd.data);
    CHECK(m->token_embd.ne[0] == 64 && m->token_embd.ne[1] == 268);
    const vkm_layer *l0 = &m->layers[0], *l1 = &m->layers[1];
    CHECK(!l0->moe && l1->moe && m->layers[2].moe);
    CHECK(l0->ffn_gate.data && !l0->ffn_gate_inp.data && !l0->ffn_gate_exps.data);
    CHECK(l0->attn_q_a.data && !l0->attn_q.data && !l0->attn_kv_b.data);
    CHECK(l1->attn_k_b.ne[0] == 16 && l1->attn_k_b.ne[1] == 32 && l1->attn_k_b.ne[2] == 4);
    CHECK(l1->attn_v_b.ne[0] == 32 && l1->attn_v_b.ne[1] == 16 && l1->attn_v_b.ne[2] == 4);
    CHECK(l1->exp_probs_b.data && l1->exp_probs_b.type == VKM_F32);
    CHECK(l1->ffn_gate_exps.ne[2] == 16 && !l1->ffn_gate_up_exps.data);
    CHECK(l1->ffn_down_shexp.ne[0] == 32 && l1->ffn_down_shexp.ne[1] == 64);
    CHECK(!strcmp(l1->ffn_up_exps.name, "blk.1.ffn_up_exps.weight"));
    /* rows of a stacked tensor: expert e starts at e * ne1 * row_bytes */
    CHECK(l1->ffn_up_exps.row_bytes == 64 * 4);
    CHECK((const char *)vkm_model_row(&l1->ffn_up_exps, 0, 5) ==
          (const char *)l1->ffn_up_exps.data + (size_t)5 * 32 * 64 * 4);
    CHECK(l1->ffn_up_exps.nbytes == (size_t)64 * 32 * 16 * 4);
}

static void check_small(const vkm_model *m) {
    const vkm_hparams *hp = &m->hp;
    CHECK(hp->n_layer == 3 && hp->n_embd == 256 && hp->n_head == 2);
    CHECK(hp->n_lora_q == 256 && hp->n_lora_kv == 256);
    CHECK(hp->d_nope == 128 && hp->n_rot == 64 && hp->d_v == 128 && hp->d_qk == 192);
    CHECK(hp->n_ff == 512 && hp->n_ff_exp == 256);
    CHECK_NEAR(hp->kq_scale, pow(1.0 + 0.1 * log(4.0), 2) / sqrt(192.0), 1e-6);
    CHECK(m->layers[0].attn_k_b.type == VKM_Q5_0 && m->output.type == VKM_Q6_K);
    CHECK(m->token_embd.type == VKM_Q4_K && m->layers[2].ffn_down_exps.type == VKM_Q6_K);
    CHECK(m->layers[1].ffn_down_exps.row_bytes == 144);
}

static void load_fixture(const char *name, void (*check)(const vkm_model *)) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", VKMOE_FIXTURES_DIR, name);
    vkm_gguf *g = NULL;
    vkm_model *m = NULL;
    CHECK_OK(vkm_gguf_open(path, &g));
    if (!g) return;
    CHECK_OK(vkm_model_load(g, &m));
    if (m) {
        char desc[512];
        vkm_model_describe(m, desc, sizeof desc);
        printf("%s: %s\n", name, desc);
        check(m);
    }
    vkm_model_free(m);
    vkm_gguf_close(g);
}

static void variants(void) {
    vkm_gguf *g = NULL;
    CHECK_OK(vkm_gguf_open(VKMOE_FIXTURES_DIR "/tiny-v3-f32.gguf", &g));
    if (!g) return;
    vkm_hparams hp;
    bool tied = false;

    /* the unchanged copy loads */
    CHECK_OK(try_variant(g, &(variant){0}, &hp, NULL));

    /* keys */
    EXPECT_FAIL(g, ((variant){.drop_key = "deepseek2.attention.kv_lora_rank"}), VKM_EFORMAT,
                "deepseek2.attention.kv_lora_rank");
    EXPECT_FAIL(g, ((variant){.drop_key = "deepseek2.attention.q_lora_rank"}), VKM_EFORMAT,
                "deepseek2.attention.q_lora_rank");
    EXPECT_FAIL(g, ((variant){.drop_key = "deepseek2.rope.dimension_count"}), VKM_EFORMAT,
                "deepseek2.rope.dimension_count");
    EXPECT_FAIL(g, ((variant){.drop_key = "deepseek2.attention.layer_norm_rms_epsilon"}),
                VKM_EFORMAT, "layer_norm_rms_epsilon");
    EXPECT_FAIL(g, ((variant){.drop_key = "tokenizer.ggml.tokens"}), VKM_EFORMAT,
                "tokenizer.ggml.tokens");
    EXPECT_FAIL(g, ((variant){.edit = set_experts_i32}), VKM_EFORMAT, "expert_count");
    EXPECT_FAIL(g, ((variant){.edit = set_arch_llama}), VKM_EUNSUPPORTED, "llama");
    EXPECT_FAIL(g, ((variant){.edit = set_scaling_longrope}), VKM_EUNSUPPORTED, "longrope");
    EXPECT_FAIL(g, ((variant){.u32_key = "deepseek2.expert_used_count", .u32 = 17}), VKM_EFORMAT,
                "expert_used_count = 17");
    EXPECT_FAIL(g, ((variant){.u32_key = "deepseek2.expert_used_count", .u32 = 0}), VKM_EFORMAT,
                "expert_used_count = 0");
    EXPECT_FAIL(g, ((variant){.u32_key = "deepseek2.expert_count", .u32 = 513}), VKM_EFORMAT,
                "expert_count = 513");
    EXPECT_FAIL(g, ((variant){.u32_key = "deepseek2.expert_group_count", .u32 = 3}), VKM_EFORMAT,
                "expert_group_count = 3");
    EXPECT_FAIL(g, ((variant){.u32_key = "deepseek2.expert_group_count", .u32 = 16}), VKM_EFORMAT,
                "expert_group_count = 16");
    EXPECT_FAIL(g, ((variant){.u32_key = "deepseek2.expert_group_used_count", .u32 = 4}),
                VKM_EFORMAT, "expert_group_used_count = 4");
    EXPECT_FAIL(g, ((variant){.u32_key = "deepseek2.expert_gating_func", .u32 = 4}),
                VKM_EUNSUPPORTED, "expert_gating_func = 4");
    EXPECT_FAIL(g, ((variant){.u32_key = "deepseek2.attention.head_count", .u32 = 0}), VKM_EFORMAT,
                "head_count");
    EXPECT_FAIL(g, ((variant){.u32_key = "deepseek2.rope.dimension_count", .u32 = 7}), VKM_EFORMAT,
                "dimension_count = 7");
    EXPECT_FAIL(g, ((variant){.u32_key = "deepseek2.rope.dimension_count", .u32 = 24}), VKM_EFORMAT,
                "key_length_mla = 24");
    EXPECT_FAIL(g, ((variant){.u32_key = "deepseek2.attention.key_length", .u32 = 41}), VKM_EFORMAT,
                "key_length = 41");
    EXPECT_FAIL(g, ((variant){.u32_key = "deepseek2.attention.head_count_kv", .u32 = 4}),
                VKM_EFORMAT, "head_count_kv = 4");
    EXPECT_FAIL(g, ((variant){.u32_key = "deepseek2.block_count", .u32 = 0}), VKM_EFORMAT,
                "block_count = 0");
    EXPECT_FAIL(g, ((variant){.u32_key = "deepseek2.nextn_predict_layers", .u32 = 3}), VKM_EFORMAT,
                "nextn_predict_layers = 3");
    EXPECT_FAIL(g, ((variant){.u32_key = "deepseek2.leading_dense_block_count", .u32 = 4}),
                VKM_EFORMAT, "leading_dense_block_count = 4");
    EXPECT_FAIL(g, ((variant){.f32_key = "deepseek2.attention.layer_norm_rms_epsilon", .f32 = 0}),
                VKM_EFORMAT, "layer_norm_rms_epsilon = 0");
    EXPECT_FAIL(g, ((variant){.f32_key = "deepseek2.rope.freq_base", .f32 = -1}), VKM_EFORMAT,
                "freq_base = -1");
    EXPECT_FAIL(g, ((variant){.u32_key = "deepseek2.expert_shared_count", .u32 = 1u << 31}),
                VKM_EFORMAT, "expert_shared_count = 2147483648 exceeds");
    EXPECT_FAIL(g, ((variant){.edit = set_ff_array}), VKM_EFORMAT, "feed_forward_length");
    CHECK_OK(try_variant(g, &(variant){.edit = set_ff_array_ok}, &hp, NULL));

    /* tensors */
    EXPECT_FAIL(g, ((variant){.drop_tensor = "blk.1.attn_q_b.weight"}), VKM_EFORMAT,
                "missing tensor blk.1.attn_q_b.weight");
    EXPECT_FAIL(g, ((variant){.drop_tensor = "blk.2.ffn_down_shexp.weight"}), VKM_EFORMAT,
                "missing tensor blk.2.ffn_down_shexp.weight");
    EXPECT_FAIL(g,
                ((variant){.reshape = "blk.1.attn_q_b.weight",
                           .n_dims = 2,
                           .ne = {48, 95, 1, 1},
                           .type = VKM_F32}),
                VKM_EFORMAT, "tensor blk.1.attn_q_b.weight has shape {48,95}, expected {48,96}");
    EXPECT_FAIL(g,
                ((variant){.reshape = "blk.2.ffn_up_exps.weight",
                           .n_dims = 3,
                           .ne = {64, 32, 15, 1},
                           .type = VKM_F32}),
                VKM_EFORMAT, "has shape {64,32,15}, expected {64,32,16}");
    EXPECT_FAIL(g,
                ((variant){.reshape = "blk.1.ffn_gate_inp.weight",
                           .n_dims = 2,
                           .ne = {64, 16, 1, 1},
                           .type = 9 /* Q8_1 */}),
                VKM_EUNSUPPORTED, "blk.1.ffn_gate_inp.weight has unsupported type Q8_1");
    EXPECT_FAIL(g,
                ((variant){.reshape = "blk.0.attn_norm.weight",
                           .n_dims = 1,
                           .ne = {64, 1, 1, 1},
                           .type = VKM_F16}),
                VKM_EUNSUPPORTED, "blk.0.attn_norm.weight has type F16, expected F32");
    EXPECT_FAIL(g, ((variant){.edit = add_kv_b}), VKM_EFORMAT,
                "unexpected tensor blk.1.attn_kv_b.weight");
    EXPECT_FAIL(g, ((variant){.edit = add_unknown}), VKM_EFORMAT,
                "unexpected tensor rope_freqs.weight");
    /* 26 layers -> "lite": q_lora_rank is not read, attn_q is expected instead of attn_q_a */
    EXPECT_FAIL(g, ((variant){.edit = set_lite}), VKM_EFORMAT,
                "missing tensor blk.0.attn_q.weight");

    /* accepted variations */
    CHECK_OK(try_variant(g, &(variant){.drop_tensor = "output.weight"}, &hp, &tied));
    CHECK(tied);
    CHECK_OK(try_variant(g, &(variant){.edit = add_nextn}, &hp, NULL));
    CHECK(hp.n_layer == 3 && hp.n_layer_all == 4 && hp.n_nextn == 1);
    CHECK_OK(try_variant(g, &(variant){.drop_key = "deepseek2.expert_gating_func"}, &hp, NULL));
    CHECK(hp.gating == VKM_GATING_SOFTMAX);
    CHECK_OK(try_variant(g, &(variant){.drop_tensor = "blk.2.exp_probs_b.bias"}, &hp, NULL));
    /* no yarn_log_multiplier (old files): cos/sin carry 1 + 0.1 ln s, same kq_scale (§4.6) */
    CHECK_OK(try_variant(g, &(variant){.drop_key = "deepseek2.rope.scaling.yarn_log_multiplier"},
                         &hp, NULL));
    const double ms = 1.0 + 0.1 * log(4.0);
    CHECK(hp.yarn_log_mul == 0.0f);
    CHECK_NEAR(hp.rope_mscale, ms, 1e-6);
    CHECK_NEAR(hp.kq_scale, ms * ms / sqrt(24.0), 1e-6);
    /* no YaRN: plain 1/sqrt(Dqk), no magnitude scaling */
    CHECK_OK(try_variant(g, &(variant){.drop_key = "deepseek2.rope.scaling.type"}, &hp, NULL));
    CHECK(hp.rope_scaling == VKM_ROPE_SCALING_LINEAR && hp.ext_factor == 0.0f);
    CHECK_NEAR(hp.rope_mscale, 1.0, 1e-7);
    CHECK(hp.freq_scale == 0.25f);

    remove(TMP_PATH);
    vkm_gguf_close(g);
}

int main(void) {
    load_fixture("tiny-v3-f32.gguf", check_tiny);
    load_fixture("small-v3-q4_k_m.gguf", check_small);
    /* V2/V3 correction dims from the spec: R 64, base 1e4, orig 4096 -> 10 and 23 */
    float dims[2];
    vkm_ref_rope_corr_dims(64, 4096, 10000.0f, 32.0f, 1.0f, dims);
    CHECK(dims[0] == 10.0f && dims[1] == 23.0f);
    variants();
    vkm_model_free(NULL);
    return check_done();
}
