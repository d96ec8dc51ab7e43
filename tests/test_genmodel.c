/* test_genmodel.c - synthetic deepseek2 models (core/genmodel.h): every preset and quant mix
 * writes a file that vkm_gguf_open() and vkm_model_load() accept, with the hyperparameters and
 * tensor types the mix promises; the tiny preset's KVs equal the fixture's; the same seed gives
 * identical bytes; the reference forward pass stays finite and sane through many layers; bad
 * overrides and unwritable paths are errors. The real V2-Lite / V3 dimensions are checked through
 * the plan only (their files are hundreds of MB); files of the same structure with small widths
 * are written and loaded. Temporary files live in a mkdtemp directory removed at the end. */
#include <dirent.h>
#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "tmpdir.h"
#include "genmodel.h"
#include "gguf.h"
#include "model.h"
#include "qtype.h"
#include "ref_forward.h"
#include "ref_ops.h" /* VKM_GATING_* */

static const char *tmp_path(const char *name) {
    static char path[4][512];
    static int k;
    k = (k + 1) % 4;
    snprintf(path[k], sizeof path[k], "%s/%s", g_dir, name);
    return path[k];
}

static vkm_genmodel_hparams preset(const char *name) {
    vkm_genmodel_hparams hp;
    memset(&hp, 0, sizeof hp);
    CHECK_OK(vkm_genmodel_preset(name, &hp));
    return hp;
}

/* Byte-compares two files; 1 equal, 0 different, -1 unreadable. */
static int files_equal(const char *a, const char *b) {
    FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
    int r = fa && fb ? 1 : -1;
    while (r == 1) {
        int ca = fgetc(fa), cb = fgetc(fb);
        if (ca != cb) r = 0;
        if (ca == EOF || cb == EOF) break;
    }
    if (fa) fclose(fa);
    if (fb) fclose(fb);
    return r;
}

/* ---- opening, loading and checking a generated file against its plan ---- */

typedef struct opened {
    vkm_gguf *g;
    vkm_model *m;
} opened;

static bool open_model(const char *path, opened *o) {
    o->g = NULL;
    o->m = NULL;
    int rc = vkm_gguf_open(path, &o->g);
    CHECK_MSG(rc == 0, "open %s: %s", path, vkm_errmsg());
    if (rc) return false;
    rc = vkm_model_load(o->g, &o->m);
    CHECK_MSG(rc == 0, "load %s: %s", path, vkm_errmsg());
    return rc == 0;
}

static void close_model(opened *o) {
    vkm_model_free(o->m);
    vkm_gguf_close(o->g);
}

/* Every tensor of the plan is in the file with its name, shape and type, and nothing else. */
static void check_against_plan(const vkm_gguf *g, const vkm_genmodel_hparams *hp, uint32_t mix) {
    vkm_genmodel_plan *plan = NULL;
    CHECK_OK(vkm_genmodel_plan_create(hp, mix, &plan));
    if (!plan) return;
    CHECK(vkm_gguf_n_tensors(g) == plan->n);
    for (int64_t i = 0; i < plan->n && i < vkm_gguf_n_tensors(g); i++) {
        const vkm_gguf_tensor *t = vkm_gguf_tensor_at(g, i);
        const vkm_genmodel_tensor *p = &plan->tensors[i];
        CHECK_MSG(!strcmp(t->name, p->name), "%s vs %s", t->name, p->name);
        CHECK_MSG(t->type == p->type && t->nbytes == p->nbytes && t->ne[0] == p->ne[0] &&
                      t->ne[1] == p->ne[1] && t->ne[2] == p->ne[2],
                  "%s: %s vs %s", t->name, vkm_qtype_name(t->type), vkm_qtype_name(p->type));
        if (p->kind == VKM_GENMODEL_NORM || p->kind == VKM_GENMODEL_BIAS ||
            p->kind == VKM_GENMODEL_ROUTER)
            CHECK_MSG(t->type == VKM_F32, "%s is %s", t->name, vkm_qtype_name(t->type));
    }
    vkm_genmodel_plan_destroy(plan);
}

static uint32_t type_of(const vkm_gguf *g, const char *name) {
    const vkm_gguf_tensor *t = vkm_gguf_find_tensor(g, name);
    CHECK_MSG(t != NULL, "missing %s", name);
    return t ? t->type : UINT32_MAX;
}

/* ---- KV comparison with the fixture ---- */

static size_t scalar_size(uint32_t t) {
    static const uint8_t sz[VKM_GGUF_TYPE_COUNT] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    return t < VKM_GGUF_TYPE_COUNT ? sz[t] : 0;
}

/* True if KV `ka` of a equals KV `kb` of b in type and value. */
static bool kv_equal(const vkm_gguf *a, int64_t ka, const vkm_gguf *b, int64_t kb) {
    uint32_t t = vkm_gguf_kv_type(a, ka);
    if (t != vkm_gguf_kv_type(b, kb)) return false;
    if (t == VKM_GGUF_STRING) {
        const char *sa, *sb;
        uint64_t la, lb;
        if (vkm_gguf_get_str(a, vkm_gguf_key(a, ka), &sa, &la) ||
            vkm_gguf_get_str(b, vkm_gguf_key(b, kb), &sb, &lb))
            return false;
        return la == lb && !memcmp(sa, sb, la);
    }
    if (t != VKM_GGUF_ARRAY)
        return !memcmp(vkm_gguf_kv_data(a, ka), vkm_gguf_kv_data(b, kb), scalar_size(t));
    uint32_t et = vkm_gguf_arr_type(a, ka);
    uint64_t n = vkm_gguf_arr_count(a, ka);
    if (et != vkm_gguf_arr_type(b, kb) || n != vkm_gguf_arr_count(b, kb)) return false;
    for (uint64_t i = 0; i < n; i++) {
        if (et == VKM_GGUF_STRING) {
            uint64_t la, lb;
            const char *sa = vkm_gguf_arr_str(a, ka, i, &la), *sb = vkm_gguf_arr_str(b, kb, i, &lb);
            if (la != lb || memcmp(sa, sb, la)) return false;
        } else if (et == VKM_GGUF_FLOAT32 || et == VKM_GGUF_FLOAT64) {
            if (vkm_gguf_arr_f64(a, ka, i) != vkm_gguf_arr_f64(b, kb, i)) return false;
        } else if (vkm_gguf_arr_i64(a, ka, i) != vkm_gguf_arr_i64(b, kb, i)) {
            return false;
        }
    }
    return true;
}

/* Every KV of the fixture is in g with the same type and value, in the same order; `extra` keys
 * may follow at the end. */
static void check_fixture_kvs(const vkm_gguf *g, int64_t extra) {
    vkm_gguf *fx = NULL;
    CHECK_OK(vkm_gguf_open(VKMOE_FIXTURES_DIR "/tiny-v3-f32.gguf", &fx));
    if (!fx) return;
    CHECK_MSG(vkm_gguf_n_kv(g) == vkm_gguf_n_kv(fx) + extra, "%" PRId64 " KVs vs %" PRId64,
              vkm_gguf_n_kv(g), vkm_gguf_n_kv(fx));
    for (int64_t i = 0; i < vkm_gguf_n_kv(fx); i++) {
        const char *key = vkm_gguf_key(fx, i);
        int64_t j = vkm_gguf_find_key(g, key);
        CHECK_MSG(j == i, "key %s at %" PRId64 ", fixture %" PRId64, key, j, i);
        if (j >= 0) CHECK_MSG(kv_equal(fx, i, g, j), "key %s differs", key);
    }
    vkm_gguf_close(fx);
}

/* ---- tests ---- */

static void test_names(void) {
    vkm_genmodel_hparams hp;
    uint32_t mix = 99;
    CHECK(vkm_genmodel_n_presets() == 4);
    for (int i = 0; i < vkm_genmodel_n_presets(); i++) {
        CHECK_OK(vkm_genmodel_preset(vkm_genmodel_preset_name(i), &hp));
        CHECK_OK(vkm_genmodel_check(&hp));
        CHECK(vkm_genmodel_preset_desc(i) != NULL);
    }
    CHECK(vkm_genmodel_preset_name(4) == NULL);
    CHECK_ERR(vkm_genmodel_preset("v4", &hp));
    for (uint32_t m = 0; m < VKM_GENMODEL_MIX_COUNT; m++) {
        CHECK_OK(vkm_genmodel_mix_parse(vkm_genmodel_mix_name(m), &mix));
        CHECK(mix == m && vkm_genmodel_mix_desc(m) != NULL);
    }
    CHECK_ERR(vkm_genmodel_mix_parse("q4_k_s", &mix));
    CHECK(vkm_genmodel_mix_name(VKM_GENMODEL_MIX_COUNT) == NULL);
}

static void test_types(void) {
    /* q4_k_m: Q4_K, Q6_K output, fallbacks by ne0; norms/router/bias F32 */
    const uint32_t M = VKM_GENMODEL_Q4_K_M;
    CHECK(vkm_genmodel_tensor_type(M, VKM_GENMODEL_WEIGHT, 1024, 0, 8) == VKM_Q4_K);
    CHECK(vkm_genmodel_tensor_type(M, VKM_GENMODEL_WEIGHT, 128, 0, 8) == VKM_Q5_0);
    CHECK(vkm_genmodel_tensor_type(M, VKM_GENMODEL_WEIGHT, 48, 0, 8) == VKM_F16);
    CHECK(vkm_genmodel_tensor_type(M, VKM_GENMODEL_OUTPUT, 1024, -1, 8) == VKM_Q6_K);
    CHECK(vkm_genmodel_tensor_type(M, VKM_GENMODEL_OUTPUT, 64, -1, 8) == VKM_Q8_0);
    CHECK(vkm_genmodel_tensor_type(M, VKM_GENMODEL_NORM, 1024, 0, 8) == VKM_F32);
    CHECK(vkm_genmodel_tensor_type(M, VKM_GENMODEL_ROUTER, 1024, 0, 8) == VKM_F32);
    CHECK(vkm_genmodel_tensor_type(M, VKM_GENMODEL_BIAS, 32, 0, 8) == VKM_F32);
    /* use_more_bits with 3 layers: layer 2 only (what llama-quantize did to small-v3-q4_k_m) */
    CHECK(vkm_genmodel_tensor_type(M, VKM_GENMODEL_FFN_DOWN, 256, 0, 3) == VKM_Q4_K);
    CHECK(vkm_genmodel_tensor_type(M, VKM_GENMODEL_FFN_DOWN, 256, 1, 3) == VKM_Q4_K);
    CHECK(vkm_genmodel_tensor_type(M, VKM_GENMODEL_FFN_DOWN, 256, 2, 3) == VKM_Q6_K);
    /* single-type mixes */
    CHECK(vkm_genmodel_tensor_type(VKM_GENMODEL_Q2_K, VKM_GENMODEL_WEIGHT, 512, 0, 8) == VKM_Q2_K);
    CHECK(vkm_genmodel_tensor_type(VKM_GENMODEL_Q3_K, VKM_GENMODEL_WEIGHT, 96, 0, 8) == VKM_Q4_0);
    CHECK(vkm_genmodel_tensor_type(VKM_GENMODEL_Q5_K, VKM_GENMODEL_WEIGHT, 96, 0, 8) == VKM_Q5_1);
    CHECK(vkm_genmodel_tensor_type(VKM_GENMODEL_Q6_K, VKM_GENMODEL_WEIGHT, 1408, 0, 8) == VKM_Q8_0);
    CHECK(vkm_genmodel_tensor_type(VKM_GENMODEL_Q6_K, VKM_GENMODEL_OUTPUT, 16, 0, 8) == VKM_F16);
    CHECK(vkm_genmodel_tensor_type(VKM_GENMODEL_Q8_0, VKM_GENMODEL_WEIGHT, 16, 0, 8) == VKM_F16);
    CHECK(vkm_genmodel_tensor_type(VKM_GENMODEL_Q4_0, VKM_GENMODEL_EMBD, 64, -1, 8) == VKM_Q4_0);
    CHECK(vkm_genmodel_tensor_type(VKM_GENMODEL_BF16, VKM_GENMODEL_WEIGHT, 48, 0, 8) == VKM_BF16);
    CHECK(vkm_genmodel_tensor_type(VKM_GENMODEL_F32, VKM_GENMODEL_WEIGHT, 48, 0, 8) == VKM_F32);
    CHECK(vkm_genmodel_tensor_type(VKM_GENMODEL_IQ4_XS, VKM_GENMODEL_WEIGHT, 512, 0, 8) ==
          VKM_IQ4_XS);
    CHECK(vkm_genmodel_tensor_type(VKM_GENMODEL_IQ4_XS, VKM_GENMODEL_WEIGHT, 96, 0, 8) ==
          VKM_IQ4_NL);
    CHECK(vkm_genmodel_tensor_type(VKM_GENMODEL_IQ4_NL, VKM_GENMODEL_WEIGHT, 48, 0, 8) == VKM_F16);
}

static int g_progress_calls;
static uint64_t g_progress_done, g_progress_total;
static void on_progress(void *user, uint64_t done, uint64_t total) {
    (void)user;
    CHECK(done >= g_progress_done && done <= total);
    g_progress_calls++;
    g_progress_done = done;
    g_progress_total = total;
}

/* tiny in every mix: loads, matches the plan and the fixture's KVs. */
static void test_tiny_all_mixes(void) {
    const vkm_genmodel_hparams hp = preset("tiny");
    for (uint32_t mix = 0; mix < VKM_GENMODEL_MIX_COUNT; mix++) {
        char name[64];
        snprintf(name, sizeof name, "tiny-%s.gguf", vkm_genmodel_mix_name(mix));
        const char *path = tmp_path(name);
        g_progress_calls = 0;
        g_progress_done = 0;
        CHECK_OK(vkm_genmodel_write(&hp, mix, 1, path, on_progress, NULL));
        CHECK(g_progress_calls > 0 && g_progress_done == g_progress_total);
        opened o;
        if (open_model(path, &o)) {
            const vkm_hparams *h = &o.m->hp;
            CHECK(h->n_layer == 3 && h->n_dense_lead == 1 && h->n_embd == 64 && h->n_head == 4);
            CHECK(h->n_lora_q == 48 && h->n_lora_kv == 32 && h->d_nope == 16 && h->n_rot == 8);
            CHECK(h->d_v == 16 && h->n_expert == 16 && h->n_expert_used == 4 && h->n_group == 4);
            CHECK(h->n_group_used == 2 && h->gating == VKM_GATING_SIGMOID);
            CHECK(h->expert_weights_norm && h->expert_weights_scale == 2.5f);
            CHECK(h->n_vocab == 268 && h->is_mla && !o.m->tied_output);
            CHECK(o.m->layers[1].exp_probs_b.data != NULL);
            check_against_plan(o.g, &hp, mix);
            check_fixture_kvs(o.g, mix == VKM_GENMODEL_F32 ? 0 : 2);
            if (mix == VKM_GENMODEL_Q4_K_M) {
                CHECK(type_of(o.g, "output.weight") == VKM_Q8_0);        /* Q6_K, ne0 64 */
                CHECK(type_of(o.g, "blk.1.attn_k_b.weight") == VKM_F16); /* ne0 16 */
                CHECK(type_of(o.g, "blk.1.ffn_down_exps.weight") == VKM_Q5_0);
                CHECK(type_of(o.g, "blk.1.ffn_gate_inp.weight") == VKM_F32);
            }
        }
        close_model(&o);
    }
    /* the f32 file's header (KVs and tensor infos) is byte-identical to the fixture's */
    FILE *a = fopen(tmp_path("tiny-f32.gguf"), "rb");
    FILE *b = fopen(VKMOE_FIXTURES_DIR "/tiny-v3-f32.gguf", "rb");
    CHECK(a && b);
    if (a && b) {
        static uint8_t ha[9024], hb[9024]; /* the fixture's data starts at 9024 */
        CHECK(fread(ha, 1, sizeof ha, a) == sizeof ha && fread(hb, 1, sizeof hb, b) == sizeof hb);
        CHECK(!memcmp(ha, hb, sizeof ha));
    }
    if (a) fclose(a);
    if (b) fclose(b);
}

static void test_determinism(void) {
    const vkm_genmodel_hparams hp = preset("tiny");
    const char *p1 = tmp_path("seed1a.gguf"), *p2 = tmp_path("seed1b.gguf");
    const char *p3 = tmp_path("seed2.gguf");
    CHECK_OK(vkm_genmodel_write(&hp, VKM_GENMODEL_Q4_K_M, 7, p1, NULL, NULL));
    CHECK_OK(vkm_genmodel_write(&hp, VKM_GENMODEL_Q4_K_M, 7, p2, NULL, NULL));
    CHECK_OK(vkm_genmodel_write(&hp, VKM_GENMODEL_Q4_K_M, 8, p3, NULL, NULL));
    CHECK(files_equal(p1, p2) == 1);
    CHECK(files_equal(p1, p3) == 0);
    unlink(p1);
    unlink(p2);
    unlink(p3);
}

/* Sets VKMOE_THREADS (NULL: unset). */
static void set_threads(const char *v) {
    if (v)
        setenv("VKMOE_THREADS", v, 1);
    else
        unsetenv("VKMOE_THREADS");
}

/* The same bytes for 1, 2 and 3 generating threads, on a model whose expert tensors span several
 * 4 MiB writer chunks with rows that straddle the chunk boundaries (F16 rows of 320 bytes; in
 * q4_k_m, Q5_0 rows of 110 bytes and Q4_K/Q6_K rows of 432/630 bytes); a bad VKMOE_THREADS is
 * an error. */
static void test_threads(void) {
    const char *saved = getenv("VKMOE_THREADS");
    char *old = saved ? strdup(saved) : NULL;
    vkm_genmodel_hparams hp = preset("tiny");
    CHECK_OK(vkm_genmodel_set_layers(&hp, 2, VKM_GENMODEL_AUTO, NULL, 0));
    CHECK_OK(vkm_genmodel_set_experts(&hp, 64, NULL, 0));
    hp.n_embd = 160;
    hp.n_ff_exp = 768;
    CHECK_OK(vkm_genmodel_check(&hp));
    const uint32_t mixes[] = {VKM_GENMODEL_F16, VKM_GENMODEL_Q4_K_M};
    for (size_t m = 0; m < sizeof mixes / sizeof mixes[0]; m++) {
        vkm_genmodel_plan *plan = NULL;
        CHECK_OK(vkm_genmodel_plan_create(&hp, mixes[m], &plan));
        int straddling = 0; /* tensors of > 1 chunk whose rows do not divide a chunk */
        for (int64_t i = 0; plan && i < plan->n; i++) {
            const vkm_genmodel_tensor *t = &plan->tensors[i];
            uint64_t rb = vkm_qtype_row_bytes(t->type, (uint64_t)t->ne[0]);
            straddling += t->nbytes > (4u << 20) && (4u << 20) % rb != 0;
        }
        CHECK(straddling >= 3);
        vkm_genmodel_plan_destroy(plan);
        const char *p1 = tmp_path("thr1.gguf"), *p2 = tmp_path("thr2.gguf");
        const char *p3 = tmp_path("thr3.gguf");
        set_threads("1");
        CHECK_OK(vkm_genmodel_write(&hp, mixes[m], 11, p1, NULL, NULL));
        set_threads("3");
        g_progress_calls = 0;
        g_progress_done = g_progress_total = 0;
        CHECK_OK(vkm_genmodel_write(&hp, mixes[m], 11, p3, on_progress, NULL));
        CHECK(g_progress_calls > 0 && g_progress_done == g_progress_total);
        set_threads("2");
        CHECK_OK(vkm_genmodel_write(&hp, mixes[m], 11, p2, NULL, NULL));
        CHECK(files_equal(p1, p3) == 1);
        CHECK(files_equal(p1, p2) == 1);
        opened o;
        if (open_model(p3, &o)) check_against_plan(o.g, &hp, mixes[m]);
        close_model(&o);
        unlink(p1);
        unlink(p2);
        unlink(p3);
    }
    const char *bad[] = {"0", "-1", "x", "3x", "100000"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        set_threads(bad[i]);
        CHECK_ERR(vkm_genmodel_write(&hp, VKM_GENMODEL_F32, 1, tmp_path("bad.gguf"), NULL, NULL));
        CHECK(access(tmp_path("bad.gguf"), F_OK) != 0);
    }
    set_threads(old);
    free(old);
}

/* bench-small with 2 layers (1 dense + 1 MoE): real widths, q4_k_m types. */
static void test_bench_small(void) {
    vkm_genmodel_hparams hp = preset("bench-small");
    char note[128];
    CHECK_OK(vkm_genmodel_set_layers(&hp, 2, VKM_GENMODEL_AUTO, note, sizeof note));
    CHECK(hp.n_dense_lead == 1 && note[0] == 0);
    const char *path = tmp_path("bench-small-2.gguf");
    CHECK_OK(vkm_genmodel_write(&hp, VKM_GENMODEL_Q4_K_M, 3, path, NULL, NULL));
    opened o;
    if (open_model(path, &o)) {
        const vkm_hparams *h = &o.m->hp;
        CHECK(h->n_layer == 2 && h->n_embd == 1024 && h->n_head == 8 && h->n_lora_q == 512);
        CHECK(h->n_lora_kv == 256 && h->d_nope == 128 && h->n_rot == 64 && h->d_v == 128);
        CHECK(h->n_expert == 32 && h->n_expert_used == 4 && h->n_ff == 2048 && h->n_ff_exp == 512);
        CHECK(h->rope_scaling == VKM_ROPE_SCALING_YARN && h->rope_scale_factor == 4.0f);
        CHECK(h->n_ctx_orig == 256 && fabsf(h->yarn_log_mul - 1.0f) < 1e-6f);
        check_against_plan(o.g, &hp, VKM_GENMODEL_Q4_K_M);
        CHECK(type_of(o.g, "blk.0.attn_k_b.weight") == VKM_Q5_0); /* nope 128 */
        CHECK(type_of(o.g, "blk.0.attn_v_b.weight") == VKM_Q4_K);
        CHECK(type_of(o.g, "output.weight") == VKM_Q6_K);
        CHECK(type_of(o.g, "token_embd.weight") == VKM_Q4_K);
        CHECK(type_of(o.g, "blk.0.attn_norm.weight") == VKM_F32);
        CHECK(type_of(o.g, "blk.1.exp_probs_b.bias") == VKM_F32);
        CHECK(type_of(o.g, "blk.1.ffn_gate_inp.weight") == VKM_F32);
        CHECK(type_of(o.g, "blk.0.ffn_down.weight") == VKM_Q4_K);
        CHECK(type_of(o.g, "blk.1.ffn_down_exps.weight") == VKM_Q6_K); /* use_more_bits(1, 2) */
        CHECK(vkm_gguf_total_bytes(o.g) < 50u << 20);
    }
    close_model(&o);
    unlink(path);
}

/* Real V2-Lite / V3 dimensions: plans only. */
static void test_real_plans(void) {
    vkm_genmodel_hparams hp = preset("v2-lite");
    vkm_genmodel_plan *p = NULL;
    CHECK_OK(vkm_genmodel_plan_create(&hp, VKM_GENMODEL_Q4_K_M, &p));
    if (p) {
        /* 3 global + 27 x (attn 8 without q_lora) + 1 dense x 3 + 26 MoE x (4 + 3 shexp) */
        CHECK(p->n == 3 + 27 * 8 + 3 + 26 * 7);
        CHECK(!strcmp(p->tensors[2].name, "blk.0.attn_q.weight"));
        CHECK(p->tensors[2].ne[0] == 2048 && p->tensors[2].ne[1] == 16 * 192);
        for (int64_t i = 0; i < p->n; i++)
            if (strstr(p->tensors[i].name, "ffn_down_exps")) /* ne0 1408: not a 256 multiple */
                CHECK(p->tensors[i].type == VKM_Q5_0 || p->tensors[i].type == VKM_Q8_0);
        vkm_genmodel_plan_destroy(p);
    }
    hp = preset("v3");
    CHECK_OK(vkm_genmodel_plan_create(&hp, VKM_GENMODEL_Q4_K_M, &p));
    if (p) {
        /* 3 global + 61 x 10 attn + 3 dense x 3 + 58 MoE x (5 + 3) */
        CHECK(p->n == 3 + 61 * 10 + 9 + 58 * 8);
        CHECK(p->data_bytes > (300ull << 30) && p->data_bytes < (450ull << 30));
        int64_t i = 0;
        while (i < p->n && strcmp(p->tensors[i].name, "blk.3.ffn_gate_exps.weight")) i++;
        CHECK(i < p->n && p->tensors[i].ne[0] == 7168 && p->tensors[i].ne[1] == 2048 &&
              p->tensors[i].ne[2] == 256 && p->tensors[i].type == VKM_Q4_K);
        vkm_genmodel_plan_destroy(p);
    }
    /* V3 cut to 1 layer keeps a MoE layer */
    CHECK_OK(vkm_genmodel_set_layers(&hp, 1, VKM_GENMODEL_AUTO, NULL, 0));
    CHECK(hp.n_dense_lead == 0);
}

/* Narrows a preset to small widths while keeping its structure (lite, grouping, gating). */
static void shrink(vkm_genmodel_hparams *hp) {
    hp->n_embd = 256;
    hp->n_ff = 512;
    hp->n_head = 2;
    if (hp->q_lora) hp->q_lora = 256;
    hp->kv_lora = 256;
    hp->n_ff_exp = 256;
}

static void test_structures(void) {
    char note[200];
    /* V2-Lite with 2 layers: q_lora_rank written as 0 -> attn_q; softmax, no groups */
    vkm_genmodel_hparams hp = preset("v2-lite");
    shrink(&hp);
    CHECK_OK(vkm_genmodel_set_layers(&hp, 2, VKM_GENMODEL_AUTO, note, sizeof note));
    const char *path = tmp_path("v2lite-2.gguf");
    CHECK_OK(vkm_genmodel_write(&hp, VKM_GENMODEL_Q4_K_M, 1, path, NULL, NULL));
    opened o;
    if (open_model(path, &o)) {
        const vkm_hparams *h = &o.m->hp;
        CHECK(!h->is_lite && h->n_lora_q == 0 && o.m->layers[0].attn_q.data != NULL);
        CHECK(h->gating == VKM_GATING_SOFTMAX && h->n_group == 1 && !h->expert_weights_norm);
        CHECK(h->n_expert == 64 && h->n_expert_used == 6 && h->n_expert_shared == 2);
        CHECK(vkm_gguf_find_key(o.g, "deepseek2.attention.q_lora_rank") >= 0);
        CHECK(fabsf(h->yarn_log_mul - 0.707f) < 1e-5f);
        check_against_plan(o.g, &hp, VKM_GENMODEL_Q4_K_M);
    }
    close_model(&o);
    unlink(path);

    /* V2-Lite with its 27 layers: lite, no q_lora_rank key */
    hp = preset("v2-lite");
    shrink(&hp);
    hp.n_embd = 64, hp.n_ff = 64, hp.kv_lora = 32, hp.d_nope = 16, hp.n_rot = 8, hp.d_v = 16;
    hp.n_ff_exp = 32, hp.n_expert = 8;
    path = tmp_path("v2lite-27.gguf");
    CHECK_OK(vkm_genmodel_write(&hp, VKM_GENMODEL_F16, 1, path, NULL, NULL));
    if (open_model(path, &o)) {
        CHECK(o.m->hp.is_lite && o.m->hp.n_layer == 27 && o.m->hp.n_lora_q == 0);
        CHECK(vkm_gguf_find_key(o.g, "deepseek2.attention.q_lora_rank") < 0);
    }
    close_model(&o);
    unlink(path);

    /* V3 with 4 layers and 16 experts: 3 dense + 1 MoE, groups 8/4 kept */
    hp = preset("v3");
    shrink(&hp);
    CHECK_OK(vkm_genmodel_set_experts(&hp, 16, note, sizeof note));
    CHECK(note[0] == 0 && hp.n_group == 8);
    CHECK_OK(vkm_genmodel_set_layers(&hp, 4, VKM_GENMODEL_AUTO, note, sizeof note));
    CHECK(hp.n_dense_lead == 3);
    path = tmp_path("v3-4.gguf");
    CHECK_OK(vkm_genmodel_write(&hp, VKM_GENMODEL_Q4_K_M, 1, path, NULL, NULL));
    if (open_model(path, &o)) {
        const vkm_hparams *h = &o.m->hp;
        CHECK(h->n_layer == 4 && h->n_dense_lead == 3 && h->n_expert == 16);
        CHECK(h->n_group == 8 && h->n_group_used == 4 && h->n_expert_used == 8);
        CHECK(h->gating == VKM_GATING_SIGMOID && h->expert_weights_norm);
        CHECK(h->n_lora_q == 256 && o.m->layers[3].moe && o.m->layers[3].exp_probs_b.data);
        const char *pre = NULL;
        CHECK_OK(vkm_gguf_get_str(o.g, "tokenizer.ggml.pre", &pre, NULL));
        CHECK(pre && !strcmp(pre, "deepseek-v3"));
        check_against_plan(o.g, &hp, VKM_GENMODEL_Q4_K_M);
    }
    close_model(&o);
    unlink(path);

    /* V3 with 27 layers: llama.cpp would treat it as lite, so q_lora is dropped */
    hp = preset("v3");
    CHECK_OK(vkm_genmodel_set_layers(&hp, 27, VKM_GENMODEL_AUTO, note, sizeof note));
    CHECK(hp.q_lora == 0 && note[0] != 0);
}

static void test_overrides(void) {
    vkm_genmodel_hparams hp = preset("v3");
    char note[200];
    CHECK_ERR(vkm_genmodel_set_experts(&hp, 0, note, sizeof note));
    CHECK_ERR(vkm_genmodel_set_experts(&hp, 513, note, sizeof note));
    CHECK_ERR(vkm_genmodel_set_experts(&hp, 7, note, sizeof note)); /* below top-8 */
    CHECK(hp.n_expert == 256);
    CHECK_OK(vkm_genmodel_set_experts(&hp, 12, note, sizeof note)); /* 12 % 8 */
    CHECK(hp.n_group == 1 && hp.n_group_used == 1 && note[0] != 0);
    CHECK_OK(vkm_genmodel_check(&hp));
    hp = preset("v3");
    CHECK_OK(vkm_genmodel_set_experts(&hp, 8, note, sizeof note)); /* groups 8 >= experts 8 */
    CHECK(hp.n_group == 1);
    CHECK_OK(vkm_genmodel_check(&hp));
    hp = preset("tiny");
    CHECK_ERR(vkm_genmodel_set_layers(&hp, 0, VKM_GENMODEL_AUTO, NULL, 0));
    CHECK_ERR(vkm_genmodel_set_layers(&hp, 513, VKM_GENMODEL_AUTO, NULL, 0));
    CHECK_ERR(vkm_genmodel_set_layers(&hp, 2, 3, NULL, 0));
    CHECK(hp.n_layer == 3);
    CHECK_OK(vkm_genmodel_set_layers(&hp, 2, 2, NULL, 0)); /* all dense */
    CHECK(hp.n_dense_lead == 2);
    hp.n_group_used = 4;
    CHECK_ERR(vkm_genmodel_check(&hp));
    hp = preset("tiny");
    CHECK_ERR(vkm_genmodel_write(&hp, VKM_GENMODEL_F32, 1, "/nonexistent-dir/x.gguf", NULL, NULL));
    CHECK_ERR(vkm_genmodel_write(&hp, VKM_GENMODEL_MIX_COUNT, 1, tmp_path("x.gguf"), NULL, NULL));
}

/* A deeper tiny model through the reference forward: logits finite and of a sane spread. */
static void test_forward_sane(void) {
    vkm_genmodel_hparams hp = preset("tiny");
    CHECK_OK(vkm_genmodel_set_layers(&hp, 16, VKM_GENMODEL_AUTO, NULL, 0));
    const char *path = tmp_path("tiny-16.gguf");
    CHECK_OK(vkm_genmodel_write(&hp, VKM_GENMODEL_Q4_K_M, 5, path, NULL, NULL));
    opened o;
    if (open_model(path, &o)) {
        vkm_ref_fwd *f = NULL;
        CHECK_OK(vkm_ref_fwd_create(o.m, NULL, &f));
        enum { N = 8, V = VKM_GENMODEL_N_VOCAB };
        const int32_t toks[N] = {264, 72, 101, 108, 108, 111, 32, 119};
        static float logits[N * V];
        if (f) CHECK_OK(vkm_ref_fwd_eval(f, toks, N, logits));
        double sum = 0, sq = 0;
        bool finite = true;
        for (int i = 0; i < N * V; i++) {
            finite = finite && isfinite(logits[i]);
            sum += logits[i];
            sq += (double)logits[i] * logits[i];
        }
        double mean = sum / (N * V), sd = sqrt(sq / (N * V) - mean * mean);
        CHECK(finite);
        CHECK_MSG(sd > 0.05 && sd < 20.0, "logit std %g", sd);
        vkm_ref_fwd_destroy(f);
    }
    close_model(&o);
    unlink(path);
}

/* Share of all routings taken by the most-routed 20% of experts (rounded up) of each MoE layer,
 * from the reference forward's routing counts over a few tokens; also prints it. */
static double top_share(const vkm_genmodel_hparams *hp, const char *name) {
    const char *path = tmp_path(name);
    CHECK_OK(vkm_genmodel_write(hp, VKM_GENMODEL_Q8_0, 9, path, NULL, NULL));
    opened o;
    double share = -1;
    if (open_model(path, &o)) {
        const size_t L = o.m->hp.n_layer, X = o.m->hp.n_expert;
        uint64_t *cnt = xmalloc(sizeof(uint64_t) * L * X);
        vkm_ref_fwd *f = NULL;
        CHECK_OK(vkm_ref_fwd_create(o.m, NULL, &f));
        if (f) vkm_ref_fwd_count_experts(f, cnt);
        enum { N = 48 };
        int32_t toks[N];
        for (int i = 0; i < N; i++) toks[i] = (int32_t)((i * 53 + 7) % 256);
        if (f) CHECK_OK(vkm_ref_fwd_eval(f, toks, N, NULL));
        uint64_t top = 0, all = 0;
        const size_t n_top = (X + 4) / 5;
        for (size_t l = 0; l < L; l++) {
            uint64_t *c = cnt + l * X;
            for (size_t e = 0; e < X; e++) all += c[e];
            for (size_t t = 0; t < n_top; t++) { /* take the n_top largest (selection) */
                size_t best = 0;
                for (size_t e = 1; e < X; e++)
                    if (c[e] > c[best]) best = e;
                top += c[best];
                c[best] = 0;
            }
        }
        share = all ? (double)top / (double)all : -1;
        printf("%s: top %zu of %zu experts take %.1f%% of %llu routings\n", name, n_top, X,
               100 * share, (unsigned long long)all);
        vkm_ref_fwd_destroy(f);
        free(cnt);
    }
    close_model(&o);
    unlink(path);
    return share;
}

/* --routing skewed: on tiny (16 experts, top-4, sigmoid with selection biases and groups) and
 * a narrowed V2-Lite (64 experts, top-6, softmax, no biases) the top 20% of experts take at
 * least twice their fair share and 10 points more than with the uniform default (random
 * routers are not perfectly fair either: about 40% on these few tokens). */
static void test_skewed_routing(void) {
    vkm_genmodel_hparams hp = preset("tiny");
    CHECK_OK(vkm_genmodel_set_layers(&hp, 5, VKM_GENMODEL_AUTO, NULL, 0));
    const double fair = 4.0 / 16;
    double u = top_share(&hp, "tiny-uniform.gguf");
    hp.routing = VKM_GENMODEL_ROUTING_SKEWED;
    double sk = top_share(&hp, "tiny-skewed.gguf");
    CHECK_MSG(u > 0 && sk >= 2 * fair && sk >= u + 0.1, "top share: skewed %g, uniform %g", sk, u);
    vkm_genmodel_hparams v2 = preset("v2-lite");
    shrink(&v2);
    CHECK_OK(vkm_genmodel_set_layers(&v2, 3, VKM_GENMODEL_AUTO, NULL, 0));
    const double fair2 = 13.0 / 64;
    u = top_share(&v2, "v2-uniform.gguf");
    v2.routing = VKM_GENMODEL_ROUTING_SKEWED;
    sk = top_share(&v2, "v2-skewed.gguf");
    CHECK_MSG(u > 0 && sk >= 2 * fair2 && sk >= u + 0.1, "top share: skewed %g, uniform %g", sk, u);
    v2.routing = 2;
    CHECK_ERR(vkm_genmodel_check(&v2));
}

int main(void) {
    tmpdir_make("genmodel");
    test_names();
    test_types();
    test_tiny_all_mixes();
    test_determinism();
    test_threads();
    test_bench_small();
    test_real_plans();
    test_structures();
    test_overrides();
    test_forward_sane();
    test_skewed_routing();
    tmpdir_remove();
    return check_done();
}
