/* test_gguf.c - the GGUF reader on the llama.cpp fixtures, writer round trips (every KV type,
 * several tensor types, streamed data, KV copying) and split models (3 parts, missing or
 * inconsistent parts). Temporary files live in a mkdtemp directory that is removed at the end. */
#include <dirent.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "tmpdir.h"
#include "gguf.h"
#include "gguf_write.h"
#include "qtype.h"

static const char *tmp_path(const char *name) {
    static char path[4][512];
    static int k;
    k = (k + 1) % 4;
    snprintf(path[k], sizeof path[k], "%s/%s", g_dir, name);
    return path[k];
}

/* ---- fixtures ---- */

static void test_tiny(void) {
    vkm_gguf *g = NULL;
    CHECK_OK(vkm_gguf_open(VKMOE_FIXTURES_DIR "/tiny-v3-f32.gguf", &g));
    if (!g) return;
    CHECK(vkm_gguf_version(g) == 3);
    CHECK(vkm_gguf_n_kv(g) == 41);
    CHECK(vkm_gguf_n_tensors(g) == 52);
    CHECK(vkm_gguf_n_files(g) == 1);
    CHECK(vkm_gguf_alignment(g) == 32);
    CHECK(vkm_gguf_total_bytes(g) == 1312384);
    const char *s = NULL;
    CHECK_OK(vkm_gguf_get_str(g, "general.architecture", &s, NULL));
    CHECK(s && !strcmp(s, "deepseek2"));
    uint32_t u = 0;
    CHECK_OK(vkm_gguf_get_u32(g, "deepseek2.block_count", &u));
    CHECK(u == 3);
    CHECK_OK(vkm_gguf_get_u32(g, "deepseek2.embedding_length", &u));
    CHECK(u == 64);
    float f = 0;
    CHECK_OK(vkm_gguf_get_f32(g, "deepseek2.expert_weights_scale", &f));
    CHECK(f == 2.5f);
    bool b = false;
    CHECK_OK(vkm_gguf_get_bool(g, "deepseek2.expert_weights_norm", &b));
    CHECK(b);
    /* type strictness and defaults */
    CHECK(vkm_gguf_get_f32(g, "deepseek2.block_count", &f) == VKM_EFORMAT);
    CHECK(
        strstr(vkm_errmsg(), "key deepseek2.block_count has wrong type UINT32, expected FLOAT32"));
    CHECK(vkm_gguf_get_u32(g, "no.such.key", &u) == VKM_EFORMAT);
    CHECK(strstr(vkm_errmsg(), "no.such.key"));
    CHECK_OK(vkm_gguf_get_u32_or(g, "no.such.key", 77, &u));
    CHECK(u == 77);
    CHECK(vkm_gguf_get_u32_or(g, "general.architecture", 1, &u) == VKM_EFORMAT);
    CHECK_OK(vkm_gguf_get_str_or(g, "no.such.key", "dflt", &s));
    CHECK(!strcmp(s, "dflt"));
    uint64_t u64 = 0;
    CHECK_OK(vkm_gguf_get_uint(g, "deepseek2.expert_count", &u64));
    CHECK(u64 == 16);

    int64_t kv = -1;
    uint64_t n = 0;
    CHECK_OK(vkm_gguf_get_arr(g, "tokenizer.ggml.tokens", VKM_GGUF_STRING, &kv, &n));
    CHECK(n == 268);
    if (kv >= 0 && n == 268) {
        uint64_t len = 0;
        const char *t = vkm_gguf_arr_str(g, kv, 264, &len);
        CHECK(!strcmp(t, "<｜begin▁of▁sentence｜>") && len == strlen(t));
        CHECK(vkm_gguf_arr_data(g, kv) == NULL);
    }
    CHECK(vkm_gguf_get_arr(g, "tokenizer.ggml.tokens", VKM_GGUF_INT32, &kv, &n) == VKM_EFORMAT);
    CHECK_OK(vkm_gguf_get_arr(g, "tokenizer.ggml.token_type", VKM_GGUF_INT32, &kv, &n));
    CHECK(n == 268 && vkm_gguf_arr_i32(g, kv, 0) == 1 && vkm_gguf_arr_i64(g, kv, 0) == 1);
    CHECK_OK(vkm_gguf_get_arr(g, "tokenizer.ggml.merges", VKM_GGUF_STRING, &kv, &n));
    CHECK(n == 8 && !strcmp(vkm_gguf_arr_str(g, kv, 0, NULL), "Ġ t"));
    CHECK(vkm_gguf_find_key(g, "tokenizer.ggml.bos_token_id") >= 0);
    CHECK(vkm_gguf_find_key(g, "tokenizer.ggml") == -1);
    char buf[128];
    vkm_gguf_kv_format(g, vkm_gguf_find_key(g, "general.architecture"), buf, sizeof buf);
    CHECK(!strcmp(buf, "\"deepseek2\""));
    vkm_gguf_kv_format(g, vkm_gguf_find_key(g, "tokenizer.ggml.token_type"), buf, sizeof buf);
    CHECK(!strncmp(buf, "[INT32 x 268] 1, 1", 18));
    vkm_gguf_kv_format(g, vkm_gguf_find_key(g, "tokenizer.ggml.tokens"), buf, 8);
    CHECK(strlen(buf) == 7);

    const vkm_gguf_tensor *t = vkm_gguf_find_tensor(g, "token_embd.weight");
    CHECK(t != NULL);
    if (t) {
        CHECK(t->type == VKM_F32 && t->n_dims == 2 && t->ne[0] == 64 && t->ne[1] == 268);
        CHECK(t->ne[2] == 1 && t->ne[3] == 1);
        CHECK(t->nbytes == 64 * 268 * 4 && t->file == 0 && t->file_offset == 9024);
        CHECK((uintptr_t)t->data % 32 == 0);
    }
    t = vkm_gguf_find_tensor(g, "blk.1.ffn_gate_exps.weight");
    CHECK(t && t->n_dims == 3 && t->ne[0] == 64 && t->ne[1] == 32 && t->ne[2] == 16);
    CHECK(vkm_gguf_find_tensor(g, "blk.9.ffn_gate_exps.weight") == NULL);
    CHECK(vkm_gguf_tensor_index(g, "output.weight") == 51);
    /* strict layout: each tensor starts where the previous (aligned) one ended */
    uint64_t expect = vkm_gguf_tensor_at(g, 0)->file_offset;
    for (int64_t i = 0; i < vkm_gguf_n_tensors(g); i++) {
        const vkm_gguf_tensor *ti = vkm_gguf_tensor_at(g, i);
        CHECK_MSG(ti->file_offset == expect, "tensor %s", ti->name);
        expect += (ti->nbytes + 31) / 32 * 32;
    }
    CHECK(expect <= 1312384);
    vkm_gguf_close(g);
}

static void test_small(void) {
    vkm_gguf *g = NULL;
    CHECK_OK(vkm_gguf_open(VKMOE_FIXTURES_DIR "/small-v3-q4_k_m.gguf", &g));
    if (!g) return;
    CHECK(vkm_gguf_n_kv(g) == 43 && vkm_gguf_n_tensors(g) == 52);
    uint32_t u = 0;
    CHECK_OK(vkm_gguf_get_u32(g, "deepseek2.embedding_length", &u));
    CHECK(u == 256);
    CHECK_OK(vkm_gguf_get_u32(g, "deepseek2.block_count", &u));
    CHECK(u == 3);
    const vkm_gguf_tensor *t = vkm_gguf_find_tensor(g, "output.weight");
    CHECK(t && t->type == VKM_Q6_K && t->ne[0] == 256 && t->ne[1] == 268 && t->nbytes == 268 * 210);
    t = vkm_gguf_find_tensor(g, "token_embd.weight");
    CHECK(t && t->type == VKM_Q4_K && t->nbytes == 268 * 144);
    t = vkm_gguf_find_tensor(g, "blk.0.attn_k_b.weight");
    CHECK(t && t->type == VKM_Q5_0 && t->ne[0] == 128 && t->ne[1] == 256 && t->ne[2] == 2);
    CHECK(t && t->nbytes == 4 * 22 * 256 * 2);
    t = vkm_gguf_find_tensor(g, "blk.2.ffn_down_exps.weight");
    CHECK(t && t->type == VKM_Q6_K && t->nbytes == 256 * 16 * 210);
    int counts[VKM_QTYPE_COUNT] = {0};
    for (int64_t i = 0; i < vkm_gguf_n_tensors(g); i++) counts[vkm_gguf_tensor_at(g, i)->type]++;
    CHECK(counts[VKM_Q4_K] > 0 && counts[VKM_Q6_K] > 0 && counts[VKM_Q5_0] == 3);
    CHECK(counts[VKM_F32] > 0);
    vkm_gguf_close(g);
}

static void test_vocab(void) {
    vkm_gguf *g = NULL;
    CHECK_OK(vkm_gguf_open(VKMOE_FIXTURES_DIR "/vocab/ggml-vocab-deepseek-llm.gguf", &g));
    if (!g) return;
    CHECK(vkm_gguf_n_tensors(g) == 0);
    int64_t kv;
    uint64_t n = 0;
    CHECK_OK(vkm_gguf_get_arr(g, "tokenizer.ggml.tokens", VKM_GGUF_STRING, &kv, &n));
    CHECK(n == 102400);
    CHECK_OK(vkm_gguf_get_arr(g, "tokenizer.ggml.merges", VKM_GGUF_STRING, &kv, &n));
    CHECK(n > 90000);
    uint32_t bos = 0;
    CHECK_OK(vkm_gguf_get_u32(g, "tokenizer.ggml.bos_token_id", &bos));
    CHECK(bos == 100000);
    vkm_gguf_close(g);
}

/* ---- writer round trip ---- */

static int fill_pattern(void *user, int64_t tensor, uint64_t offset, void *buf, size_t n) {
    uint8_t *b = buf;
    for (size_t i = 0; i < n; i++) b[i] = (uint8_t)((offset + i) * 7 + (uint64_t)tensor);
    (void)user;
    return 0;
}

static int fill_fail(void *user, int64_t tensor, uint64_t offset, void *buf, size_t n) {
    return vkm_error(VKM_EINVAL, "fill failed on purpose");
}

static void test_roundtrip(void) {
    vkm_gguf_writer *w = NULL;
    CHECK_OK(vkm_gguf_writer_create(&w));
    if (!w) return;
    CHECK_OK(vkm_gguf_w_set_u8(w, "t.u8", 200));
    CHECK_OK(vkm_gguf_w_set_i8(w, "t.i8", -100));
    CHECK_OK(vkm_gguf_w_set_u16(w, "t.u16", 60000));
    CHECK_OK(vkm_gguf_w_set_i16(w, "t.i16", -30000));
    CHECK_OK(vkm_gguf_w_set_u32(w, "t.u32", 4000000000u));
    CHECK_OK(vkm_gguf_w_set_i32(w, "t.i32", -2000000000));
    CHECK_OK(vkm_gguf_w_set_f32(w, "t.f32", 1.5f));
    CHECK_OK(vkm_gguf_w_set_bool(w, "t.bool", true));
    CHECK_OK(vkm_gguf_w_set_str(w, "t.str", "hello"));
    CHECK_OK(vkm_gguf_w_set_str(w, "t.empty", ""));
    CHECK_OK(vkm_gguf_w_set_u64(w, "t.u64", UINT64_MAX - 1));
    CHECK_OK(vkm_gguf_w_set_i64(w, "t.i64", INT64_MIN + 5));
    CHECK_OK(vkm_gguf_w_set_f64(w, "t.f64", 0.1));
    CHECK_OK(vkm_gguf_w_set_u32(w, "general.alignment", 64));
    int32_t ia[5] = {1, -2, 3, -4, 5};
    float fa[3] = {0.5f, -1.25f, 3e10f};
    uint8_t ba[4] = {1, 0, 0, 1};
    double da[2] = {1e300, -2.5};
    uint32_t ua[3] = {7, 8, 9};
    const char *sa[4] = {"a", "", "ĠĠ x", "long string here"};
    CHECK_OK(vkm_gguf_w_set_arr(w, "a.i32", VKM_GGUF_INT32, ia, 5));
    CHECK_OK(vkm_gguf_w_set_arr(w, "a.f32", VKM_GGUF_FLOAT32, fa, 3));
    CHECK_OK(vkm_gguf_w_set_arr(w, "a.bool", VKM_GGUF_BOOL, ba, 4));
    CHECK_OK(vkm_gguf_w_set_arr(w, "a.f64", VKM_GGUF_FLOAT64, da, 2));
    CHECK_OK(vkm_gguf_w_set_arr(w, "a.u32", VKM_GGUF_UINT32, ua, 3));
    CHECK_OK(vkm_gguf_w_set_arr(w, "a.empty", VKM_GGUF_UINT8, NULL, 0));
    CHECK_OK(vkm_gguf_w_set_arr_str(w, "a.str", sa, 4));
    CHECK_OK(vkm_gguf_w_set_u32(w, "t.replace", 1));
    CHECK_OK(vkm_gguf_w_set_str(w, "t.replace", "replaced")); /* replaces, keeps position */
    /* writer-side validation */
    CHECK(vkm_gguf_w_set_u32(w, "", 1) == VKM_EINVAL);
    uint8_t bad_bool = 2;
    CHECK(vkm_gguf_w_set_arr(w, "a.bad", VKM_GGUF_BOOL, &bad_bool, 1) == VKM_EINVAL);
    CHECK(vkm_gguf_w_set_arr(w, "a.bad", VKM_GGUF_ARRAY, ia, 1) == VKM_EINVAL);
    CHECK(vkm_gguf_w_n_kv(w) == 22);

    float f32[64 * 3];
    for (int i = 0; i < 64 * 3; i++) f32[i] = (float)i * 0.25f;
    uint16_t f16[2 * 3 * 4 * 5];
    for (int i = 0; i < 120; i++) f16[i] = (uint16_t)(i * 3);
    static uint8_t q4k[144 * 6], q80[34 * 2], iq[18 * 1];
    for (size_t i = 0; i < sizeof q4k; i++) q4k[i] = (uint8_t)(i * 13);
    for (size_t i = 0; i < sizeof q80; i++) q80[i] = (uint8_t)(i + 1);
    for (size_t i = 0; i < sizeof iq; i++) iq[i] = (uint8_t)(i ^ 0x5a);
    CHECK(vkm_gguf_w_add_tensor(w, "t.f32", 2, (int64_t[]){64, 3}, VKM_F32, f32) == 0);
    CHECK(vkm_gguf_w_add_tensor(w, "t.f16", 4, (int64_t[]){2, 3, 4, 5}, VKM_F16, f16) == 1);
    CHECK(vkm_gguf_w_add_tensor(w, "t.q4k", 3, (int64_t[]){256, 2, 3}, VKM_Q4_K, q4k) == 2);
    CHECK(vkm_gguf_w_add_tensor(w, "t.q80", 1, (int64_t[]){64}, VKM_Q8_0, q80) == 3);
    CHECK(vkm_gguf_w_add_tensor(w, "t.iq4nl", 1, (int64_t[]){32}, 20, iq) == 4); /* IQ4_NL */
    CHECK(vkm_gguf_w_add_tensor_cb(w, "t.stream", 2, (int64_t[]){256, 10}, VKM_Q6_K, fill_pattern,
                                   NULL) == 5);
    CHECK(vkm_gguf_w_add_tensor(w, "t.zeros", 1, (int64_t[]){5}, VKM_F32, NULL) == 6);
    CHECK(vkm_gguf_w_add_tensor(w, "t.f32", 1, (int64_t[]){4}, VKM_F32, NULL) < 0); /* dup */
    CHECK(vkm_gguf_w_add_tensor(w, "t.bad", 1, (int64_t[]){100}, VKM_Q4_K, NULL) < 0);
    CHECK(vkm_gguf_w_add_tensor(w, "t.bad", 5, (int64_t[]){1, 1, 1, 1, 1}, VKM_F32, NULL) < 0);
    CHECK(vkm_gguf_w_add_tensor(w, "t.bad", 1, (int64_t[]){1}, 1000, NULL) < 0);
    CHECK(vkm_gguf_w_add_tensor(w,
                                "0123456789012345678901234567890123456789012345678901234567890123",
                                1, (int64_t[]){1}, VKM_F32, NULL) < 0);
    CHECK(vkm_gguf_w_n_tensors(w) == 7);
    CHECK(vkm_gguf_w_tensor_nbytes(w, 5) == 2100);

    const char *path = tmp_path("roundtrip.gguf");
    CHECK_OK(vkm_gguf_w_write(w, path));
    /* written as "<path>.part", renamed at the end: no partial file is left */
    char part[4096];
    CHECK(vkm_gguf_w_temp_path(path, part, sizeof part) && strstr(part, ".part"));
    CHECK(access(part, F_OK) != 0);
    CHECK(!vkm_gguf_w_temp_path(path, part, 8));

    vkm_gguf *g = NULL;
    CHECK_OK(vkm_gguf_open(path, &g));
    if (g) {
        CHECK(vkm_gguf_version(g) == 3 && vkm_gguf_alignment(g) == 64);
        CHECK(vkm_gguf_n_kv(g) == 22 && vkm_gguf_n_tensors(g) == 7);
        CHECK(!strcmp(vkm_gguf_key(g, 0), "t.u8") && vkm_gguf_kv_type(g, 0) == VKM_GGUF_UINT8);
        uint64_t u64;
        CHECK_OK(vkm_gguf_get_uint(g, "t.u8", &u64));
        CHECK(u64 == 200);
        CHECK_OK(vkm_gguf_get_uint(g, "t.u16", &u64));
        CHECK(u64 == 60000);
        CHECK(vkm_gguf_get_uint(g, "t.i8", &u64) == VKM_EFORMAT); /* negative */
        char buf[128];
        vkm_gguf_kv_format(g, vkm_gguf_find_key(g, "t.i8"), buf, sizeof buf);
        CHECK(!strcmp(buf, "-100"));
        vkm_gguf_kv_format(g, vkm_gguf_find_key(g, "t.i16"), buf, sizeof buf);
        CHECK(!strcmp(buf, "-30000"));
        vkm_gguf_kv_format(g, vkm_gguf_find_key(g, "t.i64"), buf, sizeof buf);
        CHECK(!strcmp(buf, "-9223372036854775803"));
        vkm_gguf_kv_format(g, vkm_gguf_find_key(g, "t.f64"), buf, sizeof buf);
        CHECK(!strcmp(buf, "0.1"));
        int64_t k = vkm_gguf_find_key(g, "t.f64");
        double dv;
        memcpy(&dv, vkm_gguf_kv_data(g, k), 8);
        CHECK(dv == 0.1);
        uint32_t u32;
        CHECK_OK(vkm_gguf_get_u32(g, "t.u32", &u32));
        CHECK(u32 == 4000000000u);
        int32_t i32;
        CHECK_OK(vkm_gguf_get_i32(g, "t.i32", &i32));
        CHECK(i32 == -2000000000);
        float f;
        CHECK_OK(vkm_gguf_get_f32(g, "t.f32", &f));
        CHECK(f == 1.5f);
        bool b;
        CHECK_OK(vkm_gguf_get_bool(g, "t.bool", &b));
        CHECK(b);
        CHECK_OK(vkm_gguf_get_bool_or(g, "t.nobool", false, &b));
        CHECK(!b);
        const char *s;
        uint64_t len;
        CHECK_OK(vkm_gguf_get_str(g, "t.str", &s, &len));
        CHECK(!strcmp(s, "hello") && len == 5);
        CHECK_OK(vkm_gguf_get_str(g, "t.empty", &s, &len));
        CHECK(!strcmp(s, "") && len == 0);
        CHECK_OK(vkm_gguf_get_u64(g, "t.u64", &u64));
        CHECK(u64 == UINT64_MAX - 1);
        CHECK_OK(vkm_gguf_get_str(g, "t.replace", &s, NULL));
        CHECK(!strcmp(s, "replaced") && vkm_gguf_find_key(g, "t.replace") == 21);
        int64_t kv;
        uint64_t n;
        CHECK_OK(vkm_gguf_get_arr(g, "a.i32", VKM_GGUF_INT32, &kv, &n));
        CHECK(n == 5);
        for (uint64_t i = 0; i < n && i < 5; i++) CHECK(vkm_gguf_arr_i32(g, kv, i) == ia[i]);
        CHECK_OK(vkm_gguf_get_arr(g, "a.f32", VKM_GGUF_FLOAT32, &kv, &n));
        CHECK(n == 3 && vkm_gguf_arr_f32(g, kv, 1) == -1.25f &&
              vkm_gguf_arr_f32(g, kv, 2) == 3e10f);
        CHECK_OK(vkm_gguf_get_arr(g, "a.bool", VKM_GGUF_BOOL, &kv, &n));
        CHECK(n == 4 && vkm_gguf_arr_i64(g, kv, 0) == 1 && vkm_gguf_arr_i64(g, kv, 1) == 0);
        CHECK_OK(vkm_gguf_get_arr(g, "a.f64", VKM_GGUF_FLOAT64, &kv, &n));
        CHECK(n == 2 && vkm_gguf_arr_f64(g, kv, 0) == 1e300 && vkm_gguf_arr_f64(g, kv, 1) == -2.5);
        CHECK_OK(vkm_gguf_get_arr(g, "a.u32", VKM_GGUF_UINT32, &kv, &n));
        CHECK(n == 3 && vkm_gguf_arr_u32(g, kv, 2) == 9);
        CHECK(vkm_gguf_arr_data(g, kv) && !memcmp(vkm_gguf_arr_data(g, kv), ua, sizeof ua));
        CHECK_OK(vkm_gguf_get_arr(g, "a.empty", VKM_GGUF_UINT8, &kv, &n));
        CHECK(n == 0);
        CHECK_OK(vkm_gguf_get_arr(g, "a.str", VKM_GGUF_STRING, &kv, &n));
        CHECK(n == 4);
        for (uint64_t i = 0; i < n && i < 4; i++) {
            CHECK(!strcmp(vkm_gguf_arr_str(g, kv, i, &len), sa[i]) && len == strlen(sa[i]));
        }
        vkm_gguf_kv_format(g, kv, buf, sizeof buf);
        CHECK(!strcmp(buf, "[STRING x 4] \"a\", \"\", \"ĠĠ x\", \"long string here\""));

        struct {
            const char *name;
            uint32_t type, n_dims;
            int64_t ne[4];
            uint64_t nbytes;
            const void *data;
        } want[] = {
            {"t.f32", VKM_F32, 2, {64, 3, 1, 1}, sizeof f32, f32},
            {"t.f16", VKM_F16, 4, {2, 3, 4, 5}, sizeof f16, f16},
            {"t.q4k", VKM_Q4_K, 3, {256, 2, 3, 1}, sizeof q4k, q4k},
            {"t.q80", VKM_Q8_0, 1, {64, 1, 1, 1}, sizeof q80, q80},
            {"t.iq4nl", 20, 1, {32, 1, 1, 1}, sizeof iq, iq},
            {"t.stream", VKM_Q6_K, 2, {256, 10, 1, 1}, 2100, NULL},
            {"t.zeros", VKM_F32, 1, {5, 1, 1, 1}, 20, NULL},
        };
        uint64_t off = 0;
        for (int i = 0; i < 7; i++) {
            const vkm_gguf_tensor *t = vkm_gguf_tensor_at(g, i);
            CHECK_MSG(!strcmp(t->name, want[i].name) && t->type == want[i].type &&
                          t->n_dims == want[i].n_dims && t->nbytes == want[i].nbytes,
                      "tensor %d %s", i, t->name);
            CHECK(!memcmp(t->ne, want[i].ne, sizeof t->ne));
            CHECK((uintptr_t)t->data % 64 == 0 && t->file == 0);
            if (i == 0) off = t->file_offset;
            CHECK(t->file_offset == off);
            off += (t->nbytes + 63) / 64 * 64;
            if (want[i].data) CHECK(!memcmp(t->data, want[i].data, t->nbytes));
        }
        CHECK(off == vkm_gguf_file_size(g, 0));
        const vkm_gguf_tensor *st = vkm_gguf_find_tensor(g, "t.stream");
        bool same = st != NULL;
        for (uint64_t i = 0; st && i < st->nbytes; i++)
            same &= ((const uint8_t *)st->data)[i] == (uint8_t)(i * 7 + 5);
        CHECK(same);
        const vkm_gguf_tensor *z = vkm_gguf_find_tensor(g, "t.zeros");
        CHECK(z && !memcmp(z->data, (float[5]){0}, 20));
        const vkm_gguf_tensor *iqt = vkm_gguf_find_tensor(g, "t.iq4nl");
        CHECK(iqt && iqt->type == VKM_IQ4_NL && vkm_qtype_get(iqt->type)->supported);
        /* the data can also be read through the descriptor at file_offset */
        uint8_t rb[64];
        CHECK(pread(vkm_gguf_file_fd(g, 0), rb, 64, (off_t)vkm_gguf_tensor_at(g, 2)->file_offset) ==
              64);
        CHECK(!memcmp(rb, q4k, 64));

        /* copy every KV into a new writer and compare the rendering */
        vkm_gguf_writer *w2 = NULL;
        CHECK_OK(vkm_gguf_writer_create(&w2));
        for (int64_t i = 0; w2 && i < vkm_gguf_n_kv(g); i++) CHECK_OK(vkm_gguf_w_copy_kv(w2, g, i));
        const char *path2 = tmp_path("copy.gguf");
        CHECK_OK(vkm_gguf_w_write(w2, path2));
        vkm_gguf *g2 = NULL;
        CHECK_OK(vkm_gguf_open(path2, &g2));
        if (g2) {
            CHECK(vkm_gguf_n_kv(g2) == vkm_gguf_n_kv(g) && vkm_gguf_n_tensors(g2) == 0);
            char b1[256], b2[256];
            for (int64_t i = 0; i < vkm_gguf_n_kv(g) && i < vkm_gguf_n_kv(g2); i++) {
                vkm_gguf_kv_format(g, i, b1, sizeof b1);
                vkm_gguf_kv_format(g2, i, b2, sizeof b2);
                CHECK_MSG(!strcmp(b1, b2) && !strcmp(vkm_gguf_key(g, i), vkm_gguf_key(g2, i)) &&
                              vkm_gguf_kv_type(g, i) == vkm_gguf_kv_type(g2, i),
                          "kv %s", vkm_gguf_key(g, i));
            }
        }
        vkm_gguf_close(g2);
        vkm_gguf_writer_destroy(w2);
    }
    vkm_gguf_close(g);

    /* a failing fill callback aborts the write and removes the partial file; a file already at
     * the path stays as it was */
    CHECK(vkm_gguf_w_add_tensor_cb(w, "t.fail", 1, (int64_t[]){4}, VKM_F32, fill_fail, NULL) == 7);
    const char *path3 = tmp_path("fail.gguf");
    CHECK(vkm_gguf_w_write(w, path3) == VKM_EINVAL);
    CHECK(access(path3, F_OK) != 0);
    CHECK(vkm_gguf_w_temp_path(path3, part, sizeof part) && access(part, F_OK) != 0);
    CHECK(vkm_gguf_w_write(w, path) == VKM_EINVAL);
    vkm_gguf *again = NULL;
    CHECK_OK(vkm_gguf_open(path, &again));
    vkm_gguf_close(again);
    CHECK(vkm_gguf_w_write(w, "/nonexistent-dir/x.gguf") == VKM_EIO);
    /* a bad alignment is refused at write time */
    CHECK_OK(vkm_gguf_w_set_u32(w, "general.alignment", 48));
    CHECK(vkm_gguf_w_write(w, path3) == VKM_EINVAL);
    vkm_gguf_writer_destroy(w);
    vkm_gguf_writer_destroy(NULL);
    vkm_gguf_close(NULL);
}

/* copies the KVs and tensors of the tiny fixture, then reads them back */
static void test_rewrite_fixture(void) {
    vkm_gguf *g = NULL;
    CHECK_OK(vkm_gguf_open(VKMOE_FIXTURES_DIR "/tiny-v3-f32.gguf", &g));
    if (!g) return;
    vkm_gguf_writer *w = NULL;
    CHECK_OK(vkm_gguf_writer_create(&w));
    for (int64_t i = 0; i < vkm_gguf_n_kv(g); i++) CHECK_OK(vkm_gguf_w_copy_kv(w, g, i));
    for (int64_t i = 0; i < vkm_gguf_n_tensors(g); i++) {
        const vkm_gguf_tensor *t = vkm_gguf_tensor_at(g, i);
        CHECK(vkm_gguf_w_add_tensor(w, t->name, t->n_dims, t->ne, t->type, t->data) == i);
    }
    const char *path = tmp_path("tiny-copy.gguf");
    CHECK_OK(vkm_gguf_w_write(w, path));
    vkm_gguf_writer_destroy(w);
    /* llama.cpp's writer and ours lay the file out identically */
    FILE *a = fopen(VKMOE_FIXTURES_DIR "/tiny-v3-f32.gguf", "rb"), *b = fopen(path, "rb");
    CHECK(a && b);
    if (a && b) {
        int ca, cb;
        long pos = 0, diff = -1;
        do {
            ca = fgetc(a);
            cb = fgetc(b);
            if (ca != cb && diff < 0) diff = pos;
            pos++;
        } while (ca != EOF && cb != EOF);
        CHECK_MSG(diff < 0, "rewritten file differs at byte %ld", diff);
    }
    if (a) fclose(a);
    if (b) fclose(b);
    vkm_gguf_close(g);
}

/* ---- split models ---- */

/* Writes tensors [first, last) of a 6-tensor model as part `no` (1-based) of `count`. */
static int write_part(const char *name, int no, int count, int first, int last, int split_no,
                      const float *data) {
    vkm_gguf_writer *w;
    int rc = vkm_gguf_writer_create(&w);
    if (rc) return rc;
    if (no == 1) {
        vkm_gguf_w_set_str(w, "general.architecture", "deepseek2");
        vkm_gguf_w_set_u32(w, "deepseek2.block_count", 3);
    }
    vkm_gguf_w_set_u16(w, "split.no", (uint16_t)split_no);
    vkm_gguf_w_set_u16(w, "split.count", (uint16_t)count);
    vkm_gguf_w_set_i32(w, "split.tensors.count", 6);
    for (int i = first; i < last; i++) {
        char tn[32];
        snprintf(tn, sizeof tn, "blk.%d.w", i);
        vkm_gguf_w_add_tensor(w, tn, 2, (int64_t[]){8, 3 + i}, VKM_F32, data + 100 * i);
    }
    rc = vkm_gguf_w_write(w, tmp_path(name));
    vkm_gguf_writer_destroy(w);
    return rc;
}

static void test_split(void) {
    static float data[600];
    for (int i = 0; i < 600; i++) data[i] = (float)i;
    CHECK_OK(write_part("m-00001-of-00003.gguf", 1, 3, 0, 2, 0, data));
    CHECK_OK(write_part("m-00002-of-00003.gguf", 2, 3, 2, 5, 1, data));
    CHECK_OK(write_part("m-00003-of-00003.gguf", 3, 3, 5, 6, 2, data));
    vkm_gguf *g = NULL;
    CHECK_OK(vkm_gguf_open(tmp_path("m-00001-of-00003.gguf"), &g));
    if (g) {
        CHECK(vkm_gguf_n_files(g) == 3 && vkm_gguf_n_tensors(g) == 6);
        CHECK(vkm_gguf_find_key(g, "general.architecture") >= 0);
        CHECK(vkm_gguf_total_bytes(g) ==
              vkm_gguf_file_size(g, 0) + vkm_gguf_file_size(g, 1) + vkm_gguf_file_size(g, 2));
        CHECK(strstr(vkm_gguf_file_path(g, 2), "m-00003-of-00003.gguf") != NULL);
        static const int part_of[6] = {0, 0, 1, 1, 1, 2};
        for (int i = 0; i < 6; i++) {
            char tn[32];
            snprintf(tn, sizeof tn, "blk.%d.w", i);
            const vkm_gguf_tensor *t = vkm_gguf_find_tensor(g, tn);
            CHECK_MSG(t && t->file == part_of[i] && t->ne[1] == 3 + i, "%s", tn);
            if (!t) continue;
            CHECK(!memcmp(t->data, data + 100 * i, t->nbytes));
            float first;
            CHECK(pread(vkm_gguf_file_fd(g, t->file), &first, 4, (off_t)t->file_offset) == 4);
            CHECK(first == (float)(100 * i));
        }
    }
    vkm_gguf_close(g);

    /* opening a later part is an error that says to open the first */
    CHECK(vkm_gguf_open(tmp_path("m-00002-of-00003.gguf"), &g) == VKM_EFORMAT);
    CHECK(strstr(vkm_errmsg(), "00001") != NULL);
    /* inconsistent split.no */
    CHECK_OK(write_part("m-00002-of-00003.gguf", 2, 3, 2, 5, 2, data));
    CHECK(vkm_gguf_open(tmp_path("m-00001-of-00003.gguf"), &g) == VKM_EFORMAT);
    CHECK(strstr(vkm_errmsg(), "m-00002-of-00003.gguf") != NULL);
    /* a tensor count that does not match split.tensors.count */
    CHECK_OK(write_part("m-00002-of-00003.gguf", 2, 3, 2, 4, 1, data));
    CHECK(vkm_gguf_open(tmp_path("m-00001-of-00003.gguf"), &g) == VKM_EFORMAT);
    CHECK(strstr(vkm_errmsg(), "split.tensors.count") != NULL);
    /* a tensor present in two parts */
    CHECK_OK(write_part("m-00002-of-00003.gguf", 2, 3, 1, 5, 1, data));
    CHECK(vkm_gguf_open(tmp_path("m-00001-of-00003.gguf"), &g) == VKM_EFORMAT);
    CHECK(strstr(vkm_errmsg(), "duplicate tensor name 'blk.1.w'") != NULL);
    /* a missing part */
    CHECK_OK(write_part("m-00002-of-00003.gguf", 2, 3, 2, 5, 1, data));
    unlink(tmp_path("m-00003-of-00003.gguf"));
    CHECK(vkm_gguf_open(tmp_path("m-00001-of-00003.gguf"), &g) == VKM_EIO);
    CHECK(strstr(vkm_errmsg(), "m-00003-of-00003.gguf") != NULL);
    CHECK(strstr(vkm_errmsg(), "part 3 of 3") != NULL);
    CHECK(g == NULL);
    /* split.count > 1 in a file whose name has no part numbers */
    CHECK_OK(write_part("plain.gguf", 1, 3, 0, 2, 0, data));
    CHECK(vkm_gguf_open(tmp_path("plain.gguf"), &g) == VKM_EFORMAT);
    /* a name with -00001-of-00001 is an ordinary single file */
    CHECK_OK(write_part("one-00001-of-00001.gguf", 1, 1, 0, 6, 0, data));
    CHECK_OK(vkm_gguf_open(tmp_path("one-00001-of-00001.gguf"), &g));
    CHECK(g && vkm_gguf_n_files(g) == 1 && vkm_gguf_n_tensors(g) == 6);
    vkm_gguf_close(g);
}

/* vkm_gguf_open_header: a file cut inside its tensor data opens (the header is whole), the
 * tensors past the end have no data, and the truncation is reported; vkm_gguf_open refuses it. */
static void test_truncated(void) {
    FILE *in = fopen(VKMOE_FIXTURES_DIR "/tiny-v3-f32.gguf", "rb");
    const char *path = tmp_path("cut.gguf");
    FILE *out = fopen(path, "wb");
    CHECK(in && out);
    if (!in || !out) {
        if (in) fclose(in);
        if (out) fclose(out);
        return;
    }
    static uint8_t buf[100000];
    const size_t n = fread(buf, 1, sizeof buf, in);
    CHECK(n == sizeof buf && fwrite(buf, 1, n, out) == n);
    fclose(in);
    fclose(out);
    vkm_gguf *g = NULL;
    CHECK(vkm_gguf_open(path, &g) == VKM_EFORMAT && !g);
    CHECK_OK(vkm_gguf_open_header(path, &g));
    if (!g) return;
    int64_t missing = -1;
    const char *why = vkm_gguf_truncated(g, &missing);
    CHECK(why && strstr(why, "truncated") && strstr(why, "cut.gguf"));
    CHECK(vkm_gguf_n_tensors(g) == 52 && missing > 0 && missing < 52);
    int64_t no_data = 0;
    for (int64_t i = 0; i < vkm_gguf_n_tensors(g); i++) {
        const vkm_gguf_tensor *t = vkm_gguf_tensor_at(g, i);
        no_data += !t->data;
        if (t->data) CHECK(t->file_offset + t->nbytes <= sizeof buf);
    }
    CHECK(no_data == missing);
    vkm_gguf_close(g);
    /* a whole file: nothing missing */
    CHECK_OK(vkm_gguf_open_header(VKMOE_FIXTURES_DIR "/tiny-v3-f32.gguf", &g));
    if (g) CHECK(vkm_gguf_truncated(g, &missing) == NULL && missing == 0);
    vkm_gguf_close(g);
}

int main(void) {
    tmpdir_make("gguf");
    test_truncated();
    test_tiny();
    test_small();
    test_vocab();
    test_roundtrip();
    test_rewrite_fixture();
    test_split();
    tmpdir_remove();
    return check_done();
}
