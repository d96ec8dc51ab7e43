/* test_gguf_malformed.c - damaged GGUF files must be rejected with a negative code and a message,
 * never a crash, hang or huge allocation: truncation at every byte of a small valid file, and
 * one hand-built file per rule of spec §1 (magic, version, counts, strings, arrays, KV types,
 * keys, tensor names, dims, types, blocks, offsets, alignment, bools, split names).
 * Files are built byte by byte in a mkdtemp directory that is removed at the end. */
#include <dirent.h>
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

static char g_path[128];

/* ---- a byte buffer to build files with ---- */

typedef struct buf {
    uint8_t *p;
    size_t n, cap;
} buf;

static void put(buf *b, const void *src, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
        if (!b->p) abort();
    }
    memcpy(b->p + b->n, src, n);
    b->n += n;
}
static void u8(buf *b, uint8_t v) {
    put(b, &v, 1);
}
static void u32(buf *b, uint32_t v) {
    put(b, &v, 4);
}
static void u64(buf *b, uint64_t v) {
    put(b, &v, 8);
}
static void str(buf *b, const char *s) {
    u64(b, strlen(s));
    put(b, s, strlen(s));
}
static void header(buf *b, uint32_t version, uint64_t n_tensors, uint64_t n_kv) {
    b->n = 0;
    put(b, "GGUF", 4);
    u32(b, version);
    u64(b, n_tensors);
    u64(b, n_kv);
}
static void kv_u32(buf *b, const char *key, uint32_t v) {
    str(b, key);
    u32(b, VKM_GGUF_UINT32);
    u32(b, v);
}
static void tinfo(buf *b, const char *name, uint32_t n_dims, const int64_t *ne, uint32_t type,
                  uint64_t offset) {
    str(b, name);
    u32(b, n_dims);
    for (uint32_t i = 0; i < n_dims; i++) put(b, &ne[i], 8);
    u32(b, type);
    u64(b, offset);
}
static void pad(buf *b, size_t align) {
    while (b->n % align) u8(b, 0);
}
static void zeros(buf *b, size_t n) {
    for (size_t i = 0; i < n; i++) u8(b, 0);
}

static void save(const uint8_t *p, size_t n, const char *name) {
    snprintf(g_path, sizeof g_path, "%s/%s", g_dir, name);
    FILE *f = fopen(g_path, "wb");
    if (!f || (n && fwrite(p, 1, n, f) != n) || fclose(f)) {
        perror(g_path);
        exit(1);
    }
}

/* Opens b saved as `name`; expects failure with a message containing `want` (if not NULL). */
static void expect_bad_as(const char *label, const buf *b, const char *name, const char *want) {
    save(b->p, b->n, name);
    vkm_error_clear();
    vkm_gguf *g = NULL;
    int rc = vkm_gguf_open(g_path, &g);
    CHECK_MSG(rc < 0 && g == NULL, "%s: opened (rc %d)", label, rc);
    CHECK_MSG(strstr(vkm_errmsg(), g_path) != NULL, "%s: message '%s' lacks the path", label,
              vkm_errmsg());
    if (want)
        CHECK_MSG(strstr(vkm_errmsg(), want) != NULL, "%s: '%s' lacks '%s'", label, vkm_errmsg(),
                  want);
    vkm_gguf_close(g);
}

static void expect_bad(const char *label, const buf *b, const char *want) {
    expect_bad_as(label, b, "bad.gguf", want);
}

static void expect_good(const char *label, const buf *b) {
    save(b->p, b->n, "good.gguf");
    vkm_gguf *g = NULL;
    CHECK_MSG(vkm_gguf_open(g_path, &g) == 0, "%s: %s", label, vkm_errmsg());
    vkm_gguf_close(g);
}

/* A valid file: 2 KVs, 2 F32 tensors {8} (32 bytes) and {3,2} (24 bytes, padded to 32). */
static void valid(buf *b) {
    header(b, 3, 2, 2);
    kv_u32(b, "a.b", 1);
    str(b, "general.alignment");
    u32(b, VKM_GGUF_UINT32);
    u32(b, 32);
    tinfo(b, "t0", 1, (int64_t[]){8}, VKM_F32, 0);
    tinfo(b, "t1", 2, (int64_t[]){3, 2}, VKM_F32, 32);
    pad(b, 32);
    zeros(b, 64);
}

/* ---- the cases ---- */

static void test_truncation(void) {
    vkm_gguf_writer *w;
    CHECK_OK(vkm_gguf_writer_create(&w));
    vkm_gguf_w_set_str(w, "general.architecture", "deepseek2");
    vkm_gguf_w_set_u32(w, "x.u32", 7);
    vkm_gguf_w_set_bool(w, "x.bool", true);
    const char *toks[3] = {"ab", "c", ""};
    vkm_gguf_w_set_arr_str(w, "x.tokens", toks, 3);
    int32_t ia[3] = {1, 2, 3};
    vkm_gguf_w_set_arr(w, "x.i32", VKM_GGUF_INT32, ia, 3);
    static uint8_t q8[34 * 2];
    float f[5] = {1, 2, 3, 4, 5};
    vkm_gguf_w_add_tensor(w, "t.f32", 1, (int64_t[]){5}, VKM_F32, f);
    vkm_gguf_w_add_tensor(w, "t.q8", 2, (int64_t[]){32, 2}, VKM_Q8_0, q8);
    vkm_gguf_w_add_tensor(w, "t.f16", 1, (int64_t[]){3}, VKM_F16, NULL);
    snprintf(g_path, sizeof g_path, "%s/full.gguf", g_dir);
    CHECK_OK(vkm_gguf_w_write(w, g_path));
    vkm_gguf_writer_destroy(w);

    FILE *fp = fopen(g_path, "rb");
    CHECK(fp != NULL);
    if (!fp) return;
    uint8_t data[4096];
    size_t size = fread(data, 1, sizeof data, fp);
    fclose(fp);
    CHECK(size > 200 && size < sizeof data);
    buf b = {0};
    put(&b, data, size);
    expect_good("full file", &b);
    int bad = 0;
    for (size_t len = 0; len < size; len++) {
        save(data, len, "trunc.gguf");
        vkm_gguf *g = NULL;
        vkm_error_clear();
        int rc = vkm_gguf_open(g_path, &g);
        if (rc >= 0 || g || !strstr(vkm_errmsg(), "trunc.gguf")) {
            if (bad++ < 5) fprintf(stderr, "truncated to %zu bytes: rc %d\n", len, rc);
        }
        vkm_gguf_close(g);
    }
    CHECK_MSG(bad == 0, "%d truncated lengths opened or lacked a message", bad);
    free(b.p);
}

static void test_header(void) {
    buf b = {0};
    valid(&b);
    expect_good("valid", &b);
    b.p[1] = 'X';
    expect_bad("bad magic", &b, "magic");
    static const uint32_t versions[] = {0, 1, 4, 0x00030000, 0x03000000 & 0xffff0000};
    for (size_t i = 0; i < sizeof versions / sizeof versions[0]; i++) {
        valid(&b);
        memcpy(b.p + 4, &versions[i], 4);
        expect_bad("version", &b, "version");
    }
    valid(&b);
    memcpy(b.p + 4, &(uint32_t){2}, 4);
    expect_good("version 2", &b);

    valid(&b);
    memcpy(b.p + 16, &(uint64_t){1ull << 60}, 8);
    expect_bad("huge n_kv", &b, "n_kv");
    memcpy(b.p + 16, &(uint64_t){UINT64_MAX}, 8);
    expect_bad("negative n_kv", &b, "n_kv");
    valid(&b);
    memcpy(b.p + 8, &(uint64_t){1ull << 60}, 8);
    expect_bad("huge n_tensors", &b, "n_tensors");
    memcpy(b.p + 8, &(uint64_t){1ull << 63}, 8);
    expect_bad("negative n_tensors", &b, "n_tensors");
    valid(&b);
    memcpy(b.p + 16, &(uint64_t){3}, 8); /* one KV more than present: reads into the infos */
    expect_bad("n_kv too large", &b, NULL);
    header(&b, 3, 0, 0);
    expect_good("empty file", &b);
    b.n = 20;
    expect_bad("short header", &b, "too short");
    free(b.p);
}

static void test_kvs(void) {
    buf b = {0};
    header(&b, 3, 0, 1);
    u64(&b, 1ull << 63);
    put(&b, "key", 3);
    zeros(&b, 32);
    expect_bad("huge key length", &b, "exceeds");

    header(&b, 3, 0, 1);
    str(&b, "k");
    u32(&b, VKM_GGUF_STRING);
    u64(&b, (1ull << 63) + 5);
    put(&b, "abc", 3);
    expect_bad("huge string length", &b, "exceeds");

    header(&b, 3, 0, 1);
    str(&b, "k");
    u32(&b, VKM_GGUF_ARRAY);
    u32(&b, VKM_GGUF_UINT32);
    u64(&b, 1ull << 62);
    zeros(&b, 64);
    expect_bad("huge array count", &b, "array");

    header(&b, 3, 0, 1);
    str(&b, "k");
    u32(&b, VKM_GGUF_ARRAY);
    u32(&b, VKM_GGUF_STRING);
    u64(&b, 1ull << 60);
    str(&b, "x");
    expect_bad("huge string array count", &b, "strings");

    header(&b, 3, 0, 1);
    str(&b, "k");
    u32(&b, VKM_GGUF_ARRAY);
    u32(&b, VKM_GGUF_STRING);
    u64(&b, 2);
    str(&b, "x");
    u64(&b, 1ull << 40); /* second string longer than the file */
    put(&b, "yy", 2);
    expect_bad("string array element too long", &b, "exceeds");

    header(&b, 3, 0, 1);
    str(&b, "k");
    u32(&b, VKM_GGUF_ARRAY);
    u32(&b, VKM_GGUF_ARRAY);
    u64(&b, 1);
    u32(&b, VKM_GGUF_UINT8);
    u64(&b, 1);
    u8(&b, 0);
    expect_bad("nested array", &b, "nested");

    header(&b, 3, 0, 1);
    str(&b, "k");
    u32(&b, 13);
    u32(&b, 0);
    expect_bad("unknown KV type", &b, "unknown value type 13");

    header(&b, 3, 0, 1);
    str(&b, "k");
    u32(&b, VKM_GGUF_ARRAY);
    u32(&b, 77);
    u64(&b, 0);
    expect_bad("unknown array type", &b, "unknown array element type");

    header(&b, 3, 0, 1);
    str(&b, "");
    u32(&b, VKM_GGUF_UINT32);
    u32(&b, 1);
    expect_bad("empty key", &b, "empty key");

    header(&b, 3, 0, 2);
    kv_u32(&b, "same", 1);
    kv_u32(&b, "same", 2);
    expect_bad("duplicate key", &b, "duplicate key 'same'");

    header(&b, 3, 0, 1);
    str(&b, "k");
    u32(&b, VKM_GGUF_BOOL);
    u8(&b, 2);
    expect_bad("bool 2", &b, "bool");

    header(&b, 3, 0, 1);
    str(&b, "k");
    u32(&b, VKM_GGUF_ARRAY);
    u32(&b, VKM_GGUF_BOOL);
    u64(&b, 3);
    u8(&b, 1);
    u8(&b, 0);
    u8(&b, 7);
    expect_bad("bool array 7", &b, "bool");

    header(&b, 3, 0, 1);
    str(&b, "k");
    u32(&b, VKM_GGUF_UINT64);
    u32(&b, 0); /* 4 of 8 bytes */
    expect_bad("truncated scalar", &b, "truncated");
    free(b.p);
}

static void test_alignment(void) {
    static const uint32_t bad[] = {0, 3, 48};
    buf b = {0};
    for (size_t i = 0; i < 3; i++) {
        valid(&b);
        memcpy(b.p + 24 + 8 + 3 + 4 + 4 + 8 + 17 + 4, &bad[i], 4);
        expect_bad("bad alignment", &b, "general.alignment");
    }
    header(&b, 3, 0, 1);
    str(&b, "general.alignment");
    u32(&b, VKM_GGUF_UINT64);
    u64(&b, 32);
    expect_bad("alignment u64", &b, "wrong type UINT64, expected UINT32");

    /* alignment 64 moves the data section and the padding between tensors */
    header(&b, 3, 2, 1);
    str(&b, "general.alignment");
    u32(&b, VKM_GGUF_UINT32);
    u32(&b, 64);
    tinfo(&b, "t0", 1, (int64_t[]){8}, VKM_F32, 0);
    tinfo(&b, "t1", 1, (int64_t[]){8}, VKM_F32, 64);
    pad(&b, 64);
    zeros(&b, 128);
    expect_good("alignment 64", &b);
    b.n -= 1;
    expect_bad("alignment 64, short", &b, "truncated");
    free(b.p);
}

static void tensor_case(const char *label, const char *name, uint32_t n_dims, const int64_t *ne,
                        uint32_t type, uint64_t offset, const char *want) {
    buf b = {0};
    header(&b, 3, 1, 0);
    tinfo(&b, name, n_dims, ne, type, offset);
    pad(&b, 32);
    zeros(&b, 256);
    expect_bad(label, &b, want);
    free(b.p);
}

static void test_tensors(void) {
    char longname[80];
    memset(longname, 'x', 64);
    longname[64] = 0;
    tensor_case("name 64 bytes", longname, 1, (int64_t[]){8}, VKM_F32, 0, "longer than 63");
    tensor_case("empty name", "", 1, (int64_t[]){8}, VKM_F32, 0, "empty tensor name");
    tensor_case("n_dims 0", "t", 0, NULL, VKM_F32, 0, "n_dims 0");
    tensor_case("n_dims 5", "t", 5, (int64_t[]){1, 1, 1, 1, 1}, VKM_F32, 0, "n_dims 5");
    tensor_case("negative dim", "t", 2, (int64_t[]){8, -1}, VKM_F32, 0, "negative");
    tensor_case("dims overflow", "t", 3, (int64_t[]){1ll << 40, 1ll << 40, 2}, VKM_F32, 0,
                "overflows");
    tensor_case("bytes overflow", "t", 2, (int64_t[]){1ll << 61, 2}, VKM_F32, 0, "overflows");
    tensor_case("huge but valid dims", "t", 2, (int64_t[]){1ll << 30, 1ll << 30}, VKM_F32, 0,
                "truncated");
    tensor_case("unknown type 1000", "tname", 1, (int64_t[]){8}, 1000, 0,
                "tensor 'tname': unknown ggml type id 1000");
    tensor_case("unknown type 31", "t", 1, (int64_t[]){8}, 31, 0, "unknown ggml type id 31");
    tensor_case("ne0 not multiple of block", "t", 2, (int64_t[]){100, 2}, VKM_Q4_K, 0,
                "not a multiple");
    tensor_case("first offset not 0", "t", 1, (int64_t[]){8}, VKM_F32, 32, "offset");
    tensor_case("data past end", "t", 1, (int64_t[]){1024}, VKM_F32, 0, "truncated");

    /* an unsupported but known type opens fine */
    buf b = {0};
    header(&b, 3, 1, 0);
    tinfo(&b, "iq", 1, (int64_t[]){256}, 16 /* IQ2_XXS */, 0);
    pad(&b, 32);
    zeros(&b, 96);
    expect_good("IQ2_XXS tensor", &b);
    /* a zero-sized tensor is allowed */
    header(&b, 3, 2, 0);
    tinfo(&b, "z", 2, (int64_t[]){8, 0}, VKM_F32, 0);
    tinfo(&b, "t", 1, (int64_t[]){8}, VKM_F32, 0);
    pad(&b, 32);
    zeros(&b, 32);
    expect_good("empty tensor", &b);

    /* two tensors: {3,2} F32 = 24 bytes, then {8} F32 */
    struct {
        const char *label, *name2;
        uint64_t off2;
        const char *want;
    } cases[] = {
        {"misaligned offset", "t1", 24, "offset 24, expected 32"},
        {"overlapping offset", "t1", 0, "offset 0, expected 32"},
        {"gap", "t1", 64, "offset 64"},
        {"huge offset", "t1", UINT64_MAX - 7, "offset"},
        {"duplicate name", "t0", 32, "duplicate tensor name 't0'"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        header(&b, 3, 2, 0);
        tinfo(&b, "t0", 2, (int64_t[]){3, 2}, VKM_F32, 0);
        tinfo(&b, cases[i].name2, 1, (int64_t[]){8}, VKM_F32, cases[i].off2);
        pad(&b, 32);
        zeros(&b, 64);
        expect_bad(cases[i].label, &b, cases[i].want);
    }
    /* out of order: the second info names the first data block */
    header(&b, 3, 2, 0);
    tinfo(&b, "t0", 1, (int64_t[]){8}, VKM_F32, 32);
    tinfo(&b, "t1", 1, (int64_t[]){8}, VKM_F32, 0);
    pad(&b, 32);
    zeros(&b, 64);
    expect_bad("out of order", &b, "offset 32, expected 0");
    /* the last tensor's padding is part of the file */
    header(&b, 3, 1, 0);
    tinfo(&b, "t0", 1, (int64_t[]){3}, VKM_F32, 0);
    pad(&b, 32);
    zeros(&b, 12);
    expect_bad("last tensor unpadded", &b, "truncated");
    zeros(&b, 20);
    expect_good("last tensor padded", &b);
    free(b.p);
}

static void test_split_names(void) {
    buf b = {0};
    header(&b, 3, 0, 2);
    kv_u32(&b, "split.count", 2);
    str(&b, "split.no");
    u32(&b, VKM_GGUF_UINT16);
    u8(&b, 0);
    u8(&b, 0);
    expect_bad_as("split.count without part name", &b, "model.gguf", "split.count");
    expect_bad_as("missing second part", &b, "s-00001-of-00002.gguf", "s-00002-of-00002.gguf");
    expect_bad_as("count mismatch", &b, "s-00001-of-00003.gguf", "split.count");
    expect_bad_as("not the first part", &b, "s-00002-of-00002.gguf", "00001");
    header(&b, 3, 0, 1);
    str(&b, "split.count");
    u32(&b, VKM_GGUF_STRING);
    str(&b, "2");
    expect_bad_as("split.count string", &b, "s-00001-of-00002.gguf", "split.count");
    header(&b, 3, 0, 0);
    expect_bad_as("named split without keys", &b, "s-00001-of-00002.gguf", "split.count");
    free(b.p);
}

static void test_io(void) {
    vkm_gguf *g = NULL;
    CHECK(vkm_gguf_open("/nonexistent/file.gguf", &g) == VKM_EIO && g == NULL);
    CHECK(strstr(vkm_errmsg(), "/nonexistent/file.gguf") != NULL);
    CHECK(vkm_gguf_open(g_dir, &g) == VKM_EIO); /* a directory */
}

int main(void) {
    tmpdir_make("gguf-bad");
    test_truncation();
    test_header();
    test_kvs();
    test_alignment();
    test_tensors();
    test_split_names();
    test_io();
    tmpdir_remove();
    return check_done();
}
