/* test_tokenizer.c - the BPE tokenizer (core/tokenizer.c) against llama.cpp's test vectors for the
 * DeepSeek-LLM vocabulary, the fixture models' byte vocabulary, special-token parsing, streaming
 * decode, malformed vocabularies and pathological inputs; prints the encode speed (no assertion).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "gguf.h"
#include "gguf_write.h"
#include "tokenizer.h"
#include "unicode.h"

#define VOCAB VKMOE_FIXTURES_DIR "/vocab/ggml-vocab-deepseek-llm.gguf"
#define TINY VKMOE_FIXTURES_DIR "/tiny-v3-f32.gguf"
#define TMP_GGUF VKMOE_BINARY_DIR "/test_tokenizer_tmp.gguf"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf) buf[n] = 0;
    *len = (size_t)n;
    return buf;
}

static vkm_tok *load(const char *path) {
    vkm_gguf *g = NULL;
    vkm_tok *t = NULL;
    CHECK_OK(vkm_gguf_open(path, &g));
    if (g) CHECK_OK(vkm_tok_load(g, &t));
    vkm_gguf_close(g);
    return t;
}

/* Encodes and compares with want[0..n_want). */
static bool encodes_to(const vkm_tok *t, const char *s, size_t len, bool add_special,
                       bool parse_special, const int32_t *want, size_t n_want) {
    int32_t *ids;
    size_t n;
    if (vkm_tok_encode(t, s, len, add_special, parse_special, &ids, &n)) return false;
    bool ok = n == n_want && (n == 0 || !memcmp(ids, want, n * sizeof *ids));
    if (!ok) {
        fprintf(stderr, "  got :");
        for (size_t i = 0; i < n; i++) fprintf(stderr, " %d", ids[i]);
        fprintf(stderr, "\n  want:");
        for (size_t i = 0; i < n_want; i++) fprintf(stderr, " %d", want[i]);
        fprintf(stderr, "\n");
    }
    free(ids);
    return ok;
}

static bool roundtrips(const vkm_tok *t, const char *s, size_t len) {
    int32_t *ids;
    size_t n;
    char *back = NULL;
    size_t blen = 0;
    if (vkm_tok_encode(t, s, len, false, false, &ids, &n)) return false;
    int rc = vkm_tok_decode(t, ids, n, false, &back, &blen);
    bool ok = !rc && blen == len && !memcmp(back, s, len);
    free(ids);
    free(back);
    return ok;
}

/* ---- llama.cpp's test-tokenizer-0 vectors ---- */
static void test_vectors(const vkm_tok *t) {
    size_t ilen, olen;
    char *inp = slurp(VOCAB ".inp", &ilen);
    char *out = slurp(VOCAB ".out", &olen);
    CHECK(inp && out);
    if (!inp || !out) {
        free(inp);
        free(out);
        return;
    }
    static const char SEP[] = "\n__ggml_vocab_test__\n";
    const size_t sep_len = sizeof SEP - 1;
    char *ip = inp, *op = out;
    int n_tests = 0, n_ok = 0, n_rt = 0;
    for (;;) {
        char *end = strstr(ip, SEP);
        if (!end) break;
        char *oend = strchr(op, '\n');
        CHECK_MSG(oend != NULL, ".out has fewer lines than .inp has tests (%d)", n_tests);
        if (!oend) break;
        *oend = 0;
        int32_t want[512];
        size_t n_want = 0;
        for (char *w = strtok(op, " "); w && n_want < 512; w = strtok(NULL, " "))
            want[n_want++] = (int32_t)strtol(w, NULL, 10);
        size_t len = (size_t)(end - ip);
        bool ok = encodes_to(t, ip, len, false, false, want, n_want);
        CHECK_MSG(ok, "test %d \"%.*s\"", n_tests, (int)len, ip);
        bool rt = roundtrips(t, ip, len);
        CHECK_MSG(rt, "round trip of test %d \"%.*s\"", n_tests, (int)len, ip);
        n_ok += ok;
        n_rt += rt;
        n_tests++;
        ip = end + sep_len;
        op = oend + 1;
    }
    CHECK_MSG(*ip == 0, ".inp does not end with a separator");
    CHECK_MSG(*op == 0, ".out has more lines than .inp has tests (%d)", n_tests);
    CHECK(n_tests == 46);
    printf("llama.cpp vectors: %d/%d exact, %d/%d round trips\n", n_ok, n_tests, n_rt, n_tests);
    free(inp);
    free(out);
}

static void test_vocab_meta(const vkm_tok *t) {
    CHECK(vkm_tok_n_vocab(t) == 102400);
    CHECK(vkm_tok_bos(t) == 100000);
    CHECK(vkm_tok_eos(t) == 100001);
    CHECK(vkm_tok_eot(t) == 100001);
    CHECK(vkm_tok_pad(t) == 100001);
    CHECK(vkm_tok_is_eog(t, 100001) && !vkm_tok_is_eog(t, 100000));
    CHECK(vkm_tok_add_bos(t) && !vkm_tok_add_eos(t));
    CHECK(vkm_tok_pre_type(t) == VKM_TOK_PRE_DEEPSEEK_LLM);
    CHECK(vkm_tok_type(t, 100000) == VKM_TOK_CONTROL);
    CHECK(vkm_tok_type(t, 100002) == VKM_TOK_USER_DEFINED);
    CHECK(vkm_tok_type(t, 5) == VKM_TOK_NORMAL);
    CHECK(vkm_tok_type(t, -1) == VKM_TOK_UNDEFINED && vkm_tok_type(t, 102400) == 0);
    CHECK(vkm_tok_text(t, 102400, NULL) == NULL);
    size_t len;
    const char *s = vkm_tok_text(t, 100002, &len);
    CHECK(s && len == 2 && !strcmp(s, "\xc3\xb8")); /* ø */
    CHECK(vkm_tok_find(t, "Hello", 5) == 17464);
    CHECK(vkm_tok_find(t, "no such token at all", 20) == -1);
    CHECK(vkm_tok_chat_template(t) == NULL);
}

/* ---- special tokens ---- */
static void test_specials(const vkm_tok *v, const vkm_tok *tiny) {
    /* CONTROL only with parse_special; USER_DEFINED always */
    const char *bos = "<\xef\xbd\x9c"
                      "begin\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>";
    char buf[256];
    snprintf(buf, sizeof buf, "%sHello", bos);
    CHECK(encodes_to(v, buf, strlen(buf), false, true, (int32_t[]){100000, 17464}, 2));
    int32_t *ids;
    size_t n;
    CHECK_OK(vkm_tok_encode(v, buf, strlen(buf), false, false, &ids, &n));
    bool has_bos = false;
    for (size_t i = 0; i < n; i++) has_bos |= ids[i] == 100000;
    CHECK(n > 2 && !has_bos);
    char *back;
    size_t blen;
    CHECK_OK(vkm_tok_decode(v, ids, n, true, &back, &blen));
    CHECK(blen == strlen(buf) && !memcmp(back, buf, blen));
    free(back);
    free(ids);
    /* add_special prepends BOS once */
    CHECK(encodes_to(v, "Hello", 5, true, false, (int32_t[]){100000, 17464}, 2));
    CHECK(encodes_to(v, "", 0, true, false, (int32_t[]){100000}, 1));
    CHECK(encodes_to(v, "", 0, false, false, NULL, 0));
    /* user-defined tokens: "ø" (100002) and "[PAD100015]" */
    CHECK(encodes_to(v, "\xc3\xb8", 2, false, false, (int32_t[]){100002}, 1));
    CHECK(encodes_to(v, "a[PAD100015]a", 13, false, false, (int32_t[]){64, 100015, 64}, 3));
    /* decoding: CONTROL hidden unless rendered, USER_DEFINED as text */
    CHECK_OK(vkm_tok_decode(v, (int32_t[]){100000, 17464, 100002}, 3, false, &back, &blen));
    CHECK(blen == 7 && !memcmp(back, "Hello\xc3\xb8", 7));
    free(back);
    CHECK_ERR(vkm_tok_decode(v, (int32_t[]){102400}, 1, false, &back, &blen));
    CHECK_ERR(vkm_tok_decode(v, (int32_t[]){-5}, 1, false, &back, &blen));

    /* tiny byte vocabulary: <｜User｜> = 266, <｜Assistant｜> = 267; byte b = id b */
    const char *user = "<\xef\xbd\x9cUser\xef\xbd\x9c>", *asst = "<\xef\xbd\x9c"
                                                                 "Assistant\xef\xbd\x9c>";
    snprintf(buf, sizeof buf, "%sHi%s", user, asst);
    CHECK(encodes_to(tiny, buf, strlen(buf), true, true, (int32_t[]){264, 266, 'H', 'i', 267}, 5));
    CHECK_OK(vkm_tok_encode(tiny, buf, strlen(buf), false, false, &ids, &n));
    bool no_special = true; /* split into byte tokens and the merges "er" / "an" */
    for (size_t i = 0; i < n; i++) no_special &= ids[i] < 264;
    CHECK(n > 10 && no_special);
    CHECK_OK(vkm_tok_decode(tiny, ids, n, false, &back, &blen));
    CHECK(blen == strlen(buf) && !memcmp(back, buf, blen));
    free(back);
    free(ids);
    /* overlapping candidates: the longer one wins, leftmost occurrences first */
    snprintf(buf, sizeof buf, "%s%s%s", user, user, "<\xef\xbd\x9cUser");
    CHECK_OK(vkm_tok_encode(tiny, buf, strlen(buf), false, true, &ids, &n));
    CHECK(n >= 3 && ids[0] == 266 && ids[1] == 266 && ids[2] == '<');
    free(ids);
}

/* ---- the fixture models' byte vocabulary and prompt.ids ---- */
static void test_tiny_prompt(const vkm_tok *tiny) {
    const char *text = "Hello world, the quick brown fox";
    size_t len;
    char *ids_txt = slurp(VKMOE_FIXTURES_DIR "/prompt.ids", &len);
    CHECK(ids_txt != NULL);
    if (!ids_txt) return;
    int32_t pid[64];
    size_t np = 0;
    for (char *w = strtok(ids_txt, " \n"); w && np < 64; w = strtok(NULL, " \n"))
        pid[np++] = (int32_t)strtol(w, NULL, 10);
    free(ids_txt);
    /* prompt.ids is BOS then the raw bytes (byte b is token b in this vocabulary) */
    CHECK(np == 33 && pid[0] == 264);
    bool raw = np == strlen(text) + 1;
    for (size_t i = 1; i < np && raw; i++) raw = pid[i] == (uint8_t)text[i - 1];
    CHECK(raw);
    char *back;
    size_t blen;
    CHECK_OK(vkm_tok_decode(tiny, pid, np, false, &back, &blen));
    CHECK(blen == strlen(text) && !memcmp(back, text, blen));
    free(back);
    /* The tokenizer applies the 8 merges, so " the" (32 116 104 101) becomes 258 "Ġthe"
     * ("Ġ t" -> "Ġt", "h e" -> "he", "Ġt he" -> "Ġthe"); no other merge matches this text. */
    int32_t want[64];
    size_t nw = 0;
    for (size_t i = 0; i < np; i++) {
        if (i + 3 < np && pid[i] == 32 && pid[i + 1] == 't' && pid[i + 2] == 'h' &&
            pid[i + 3] == 'e') {
            want[nw++] = 258;
            i += 3;
        } else {
            want[nw++] = pid[i];
        }
    }
    CHECK(nw == 30);
    CHECK(encodes_to(tiny, text, strlen(text), true, true, want, nw));
    CHECK(roundtrips(tiny, text, strlen(text)));
    CHECK(vkm_tok_bos(tiny) == 264 && vkm_tok_eos(tiny) == 265 && vkm_tok_eot(tiny) == 265);
}

/* ---- streaming decode ---- */
static void test_stream(const vkm_tok *tiny, const vkm_tok *v) {
    const char *text = "h\xc3\xa9llo \xe4\xb8\x96\xe7\x95\x8c \xf0\x9f\x98\x80"; /* héllo 世界 😀 */
    size_t len = strlen(text);
    vkm_tok_stream *s;
    CHECK_OK(vkm_tok_stream_create(tiny, false, &s));
    char got[64];
    size_t ng = 0;
    bool all_valid = true;
    int n_empty = 0;
    for (size_t i = 0; i < len; i++) {
        const char *p;
        size_t n;
        CHECK_OK(vkm_tok_stream_put(s, (uint8_t)text[i], &p, &n)); /* byte b = token b */
        all_valid &= vkm_utf8_valid(p, n);
        n_empty += n == 0;
        if (ng + n <= sizeof got) memcpy(got + ng, p, n);
        ng += n;
    }
    const char *p;
    size_t n;
    vkm_tok_stream_flush(s, &p, &n);
    CHECK(n == 0);
    CHECK(all_valid);
    CHECK(n_empty == 1 + 2 + 2 + 3); /* continuation-waiting bytes of é, 世, 界, 😀 */
    CHECK(ng == len && !memcmp(got, text, len));
    /* an incomplete tail is held back and comes out on flush */
    CHECK_OK(vkm_tok_stream_put(s, 'a', &p, &n));
    CHECK(n == 1 && p[0] == 'a');
    CHECK_OK(vkm_tok_stream_put(s, 0xe4, &p, &n));
    CHECK(n == 0);
    CHECK_OK(vkm_tok_stream_put(s, 0xb8, &p, &n));
    CHECK(n == 0);
    vkm_tok_stream_flush(s, &p, &n);
    CHECK(n == 2 && (uint8_t)p[0] == 0xe4 && (uint8_t)p[1] == 0xb8);
    /* bytes that can never complete a character pass straight through */
    CHECK_OK(vkm_tok_stream_put(s, 0xff, &p, &n));
    CHECK(n == 1 && (uint8_t)p[0] == 0xff);
    CHECK_OK(vkm_tok_stream_put(s, 0xe4, &p, &n));
    CHECK(n == 0);
    CHECK_OK(vkm_tok_stream_put(s, 'x', &p, &n)); /* breaks the sequence: both come out */
    CHECK(n == 2 && (uint8_t)p[0] == 0xe4 && p[1] == 'x');
    CHECK_ERR(vkm_tok_stream_put(s, 268, &p, &n));
    vkm_tok_stream_destroy(s);
    vkm_tok_stream_destroy(NULL);

    /* the real vocabulary: stream the tokens of a multilingual text */
    const char *multi = "Cửa Việt 🚀 нещо 我想在apple工作 😶‍🌫️ ✅";
    int32_t *ids;
    size_t nid;
    CHECK_OK(vkm_tok_encode(v, multi, strlen(multi), false, false, &ids, &nid));
    CHECK_OK(vkm_tok_stream_create(v, false, &s));
    char acc[256];
    size_t na = 0;
    all_valid = true;
    for (size_t i = 0; i < nid; i++) {
        CHECK_OK(vkm_tok_stream_put(s, ids[i], &p, &n));
        all_valid &= vkm_utf8_valid(p, n);
        if (na + n <= sizeof acc) memcpy(acc + na, p, n);
        na += n;
    }
    vkm_tok_stream_flush(s, &p, &n);
    CHECK(n == 0 && all_valid);
    CHECK(na == strlen(multi) && !memcmp(acc, multi, na));
    vkm_tok_stream_destroy(s);
    free(ids);
}

/* ---- malformed vocabularies (built with the GGUF writer from the tiny model's KVs) ---- */
static vkm_gguf_writer *copy_kvs(const vkm_gguf *g, const char *skip) {
    vkm_gguf_writer *w = NULL;
    CHECK_OK(vkm_gguf_writer_create(&w));
    for (int64_t i = 0; w && i < vkm_gguf_n_kv(g); i++)
        if (!skip || strcmp(vkm_gguf_key(g, i), skip)) CHECK_OK(vkm_gguf_w_copy_kv(w, g, i));
    return w;
}

/* Writes w (then destroys it), opens and loads the result; returns vkm_tok_load's code. */
static int load_written(vkm_gguf_writer *w) {
    int rc = vkm_gguf_w_write(w, TMP_GGUF);
    vkm_gguf_writer_destroy(w);
    if (rc) return 1000 + rc;
    vkm_gguf *g;
    if ((rc = vkm_gguf_open(TMP_GGUF, &g))) return 2000 + rc;
    vkm_tok *t = NULL;
    rc = vkm_tok_load(g, &t);
    vkm_tok_free(t);
    vkm_gguf_close(g);
    return rc;
}

static void test_bad_vocab(void) {
    vkm_gguf *g;
    CHECK_OK(vkm_gguf_open(TINY, &g));
    if (!g) return;
    /* control: an unmodified copy (KVs only, no tensors) loads */
    CHECK(load_written(copy_kvs(g, NULL)) == 0);

    int rc = load_written(copy_kvs(g, "tokenizer.ggml.merges"));
    CHECK_MSG(rc == VKM_EFORMAT && strstr(vkm_errmsg(), "merges"), "no merges: %d %s", rc,
              vkm_errmsg());

    vkm_gguf_writer *w = copy_kvs(g, NULL);
    CHECK_OK(vkm_gguf_w_set_arr_str(w, "tokenizer.ggml.merges", (const char *const[]){"x"}, 0));
    CHECK(load_written(w) == VKM_EFORMAT);

    w = copy_kvs(g, NULL);
    CHECK_OK(vkm_gguf_w_set_arr_str(w, "tokenizer.ggml.merges",
                                    (const char *const[]){"a b", "nospace"}, 2));
    rc = load_written(w);
    CHECK_MSG(rc == VKM_EFORMAT && strstr(vkm_errmsg(), "merge 1"), "%d %s", rc, vkm_errmsg());

    w = copy_kvs(g, NULL);
    CHECK_OK(vkm_gguf_w_set_arr_str(w, "tokenizer.ggml.merges", (const char *const[]){" ab"}, 1));
    CHECK(load_written(w) == VKM_EFORMAT); /* the only space is at index 0 */

    w = copy_kvs(g, NULL);
    CHECK_OK(vkm_gguf_w_set_str(w, "tokenizer.ggml.model", "llama"));
    rc = load_written(w);
    CHECK_MSG(rc == VKM_EUNSUPPORTED && strstr(vkm_errmsg(), "llama"), "%d %s", rc, vkm_errmsg());

    CHECK(load_written(copy_kvs(g, "tokenizer.ggml.model")) == VKM_EFORMAT);
    CHECK(load_written(copy_kvs(g, "tokenizer.ggml.tokens")) == VKM_EFORMAT);

    w = copy_kvs(g, NULL);
    CHECK_OK(vkm_gguf_w_set_u32(w, "tokenizer.ggml.bos_token_id", 268));
    rc = load_written(w);
    CHECK_MSG(rc == VKM_EFORMAT && strstr(vkm_errmsg(), "bos_token_id"), "%d %s", rc, vkm_errmsg());

    w = copy_kvs(g, NULL);
    CHECK_OK(vkm_gguf_w_set_arr(w, "tokenizer.ggml.token_type", VKM_GGUF_INT32,
                                (int32_t[]){1, 1, 1}, 3));
    CHECK(load_written(w) == VKM_EFORMAT);

    w = copy_kvs(g, NULL);
    int32_t types[268];
    for (int i = 0; i < 268; i++) types[i] = i == 7 ? 9 : 1;
    CHECK_OK(vkm_gguf_w_set_arr(w, "tokenizer.ggml.token_type", VKM_GGUF_INT32, types, 268));
    CHECK(load_written(w) == VKM_EFORMAT);

    w = copy_kvs(g, NULL);
    CHECK_OK(vkm_gguf_w_set_u32(w, "tokenizer.ggml.pre", 3)); /* wrong type */
    CHECK(load_written(w) == VKM_EFORMAT);

    /* absent optional keys: no token_type (all NORMAL), no bos/eos (11), unknown pre */
    w = copy_kvs(g, "tokenizer.ggml.token_type");
    CHECK_OK(vkm_gguf_w_set_str(w, "tokenizer.ggml.pre", "something-new"));
    vkm_gguf_writer *w2 = w;
    CHECK_OK(vkm_gguf_w_write(w2, TMP_GGUF));
    vkm_gguf_writer_destroy(w2);
    vkm_gguf *g2 = NULL;
    vkm_tok *t = NULL;
    CHECK_OK(vkm_gguf_open(TMP_GGUF, &g2));
    if (g2) CHECK_OK(vkm_tok_load(g2, &t));
    if (t) {
        CHECK(vkm_tok_pre_type(t) == VKM_TOK_PRE_DEFAULT);
        /* the end-of-sentence text is still forced CONTROL */
        CHECK(vkm_tok_type(t, 265) == VKM_TOK_CONTROL && vkm_tok_type(t, 266) == 1);
        /* default regex words "the" / " cat": 't' + "he" (257), then no merge for " cat" */
        CHECK(encodes_to(t, "the cat", 7, false, false, (int32_t[]){'t', 257, ' ', 'c', 'a', 't'},
                         6));
        CHECK(encodes_to(t, " the cat", 8, false, false, (int32_t[]){258, ' ', 'c', 'a', 't'}, 5));
    }
    vkm_tok_free(t);
    vkm_gguf_close(g2);

    w = copy_kvs(g, "tokenizer.ggml.bos_token_id");
    CHECK_OK(vkm_gguf_w_write(w, TMP_GGUF));
    vkm_gguf_writer_destroy(w);
    t = NULL;
    g2 = NULL;
    CHECK_OK(vkm_gguf_open(TMP_GGUF, &g2));
    if (g2) CHECK_OK(vkm_tok_load(g2, &t));
    if (t) CHECK(vkm_tok_bos(t) == 11); /* llama.cpp's BPE default */
    vkm_tok_free(t);
    vkm_gguf_close(g2);

    /* deepseek-v3 regexes compile and split; an empty token text becomes "[EMPTY_i]" */
    w = copy_kvs(g, NULL);
    CHECK_OK(vkm_gguf_w_set_str(w, "tokenizer.ggml.pre", "deepseek-v3"));
    const char *toks[268];
    int64_t tkv;
    uint64_t tcount = 0;
    CHECK_OK(vkm_gguf_get_arr(g, "tokenizer.ggml.tokens", VKM_GGUF_STRING, &tkv, &tcount));
    for (uint64_t i = 0; i < tcount && i < 268; i++) toks[i] = vkm_gguf_arr_str(g, tkv, i, NULL);
    toks[0] = "";
    CHECK_OK(vkm_gguf_w_set_arr_str(w, "tokenizer.ggml.tokens", toks, tcount));
    CHECK_OK(vkm_gguf_w_write(w, TMP_GGUF));
    vkm_gguf_writer_destroy(w);
    t = NULL;
    g2 = NULL;
    CHECK_OK(vkm_gguf_open(TMP_GGUF, &g2));
    if (g2) CHECK_OK(vkm_tok_load(g2, &t));
    if (t) {
        size_t l;
        CHECK(vkm_tok_pre_type(t) == VKM_TOK_PRE_DEEPSEEK_V3);
        CHECK(!strcmp(vkm_tok_text(t, 0, &l), "[EMPTY_0]") && l == 9);
        const char *txt = "Hello 1234567 world!\n\n  the  end ~~ \xe4\xb8\x96\xe7\x95\x8c";
        CHECK(roundtrips(t, txt, strlen(txt)));
        CHECK(encodes_to(t, "the 12", 6, false, false, (int32_t[]){'t', 257, ' ', '1', '2'}, 5));
    }
    vkm_tok_free(t);
    vkm_gguf_close(g2);

    vkm_gguf_close(g);
    remove(TMP_GGUF);
    vkm_tok_free(NULL);
}

/* ---- odd and hostile inputs: no crash, no hang ---- */
static void test_hostile(const vkm_tok *v) {
    int32_t *ids;
    size_t n;
    char *back;
    size_t blen;
    /* invalid UTF-8 becomes U+FFFD per bad byte (as in llama.cpp) */
    const char bad[] = "a\xff\xfe b\xe4\xb8";
    CHECK_OK(vkm_tok_encode(v, bad, sizeof bad - 1, false, false, &ids, &n));
    CHECK_OK(vkm_tok_decode(v, ids, n, false, &back, &blen));
    CHECK(blen == 1 + 6 + 2 + 6 && !memcmp(back, "a\xef\xbf\xbd\xef\xbf\xbd b", 9));
    free(back);
    free(ids);
    /* embedded NUL bytes are text like any other */
    CHECK(roundtrips(v, "a\0b", 3));

    size_t big = 1 << 20;
    char *s = malloc(big + 1);
    if (!s) return;
    struct {
        const char *what;
        char fill, last;
    } cases[] = {{"spaces then a digit", ' ', '5'},
                 {"spaces then a letter", ' ', 'x'},
                 {"newlines", '\n', '\n'},
                 {"letters", 'a', 'a'},
                 {"digits", '7', '7'},
                 {"punctuation", '!', '!'},
                 {"tabs then CJK lead", '\t', '\xe4'}};
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        memset(s, cases[k].fill, big);
        s[big - 1] = cases[k].last;
        double t0 = now_s();
        int rc = vkm_tok_encode(v, s, big, false, false, &ids, &n);
        double dt = now_s() - t0;
        CHECK_MSG(rc == 0, "%s: %s", cases[k].what, vkm_errmsg());
        CHECK_MSG(dt < 20, "%s took %.1f s", cases[k].what, dt);
        printf("1 MiB of %s: %.3f s\n", cases[k].what, dt);
        if (!rc) {
            CHECK_OK(vkm_tok_decode(v, ids, n, false, &back, &blen));
            if (cases[k].last != '\xe4')
                CHECK_MSG(blen == big && !memcmp(back, s, big), "%s round trip", cases[k].what);
            free(back);
        }
        free(ids);
    }
    /* many user-defined-token occurrences */
    for (size_t i = 0; i + 1 < big; i += 2) memcpy(s + i, "\xc3\xb8", 2);
    CHECK_OK(vkm_tok_encode(v, s, big, false, false, &ids, &n));
    CHECK(n == big / 2 && ids[0] == 100002 && ids[n - 1] == 100002);
    free(ids);
    free(s);
}

/* ---- speed on ~1 MB of the test strings repeated (printed, not asserted) ---- */
static void bench(const vkm_tok *v) {
    size_t ilen;
    char *inp = slurp(VOCAB ".inp", &ilen);
    if (!inp) return;
    /* drop the separators so the text is ordinary prose plus the odd cases */
    size_t target = 1 << 20, n = 0;
    char *text = malloc(target + ilen);
    while (text && n < target) {
        for (char *p = inp; *p;) {
            char *e = strstr(p, "\n__ggml_vocab_test__\n");
            size_t l = e ? (size_t)(e - p) : strlen(p);
            memcpy(text + n, p, l);
            n += l;
            text[n++] = ' ';
            p += l + (e ? 21 : 0);
        }
    }
    if (text) {
        int32_t *ids = NULL;
        size_t nid = 0;
        double t0 = now_s();
        int rc = vkm_tok_encode(v, text, n, false, false, &ids, &nid);
        double dt = now_s() - t0;
        CHECK_OK(rc);
        printf("encode speed: %.2f MB in %.3f s = %.2f MB/s (%zu tokens)\n", (double)n / 1e6, dt,
               (double)n / 1e6 / dt, nid);
        t0 = now_s();
        char *back = NULL;
        size_t blen = 0;
        CHECK_OK(vkm_tok_decode(v, ids, nid, false, &back, &blen));
        dt = now_s() - t0;
        printf("decode speed: %.2f MB/s\n", (double)blen / 1e6 / dt);
        free(back);
        free(ids);
    }
    free(text);
    free(inp);
}

int main(void) {
    double t0 = now_s();
    vkm_tok *v = load(VOCAB);
    printf("load %s: %.3f s\n", VOCAB, now_s() - t0);
    vkm_tok *tiny = load(TINY);
    if (!v || !tiny) {
        vkm_tok_free(v);
        vkm_tok_free(tiny);
        return check_done();
    }
    test_vocab_meta(v);
    test_vectors(v);
    test_specials(v, tiny);
    test_tiny_prompt(tiny);
    test_stream(tiny, v);
    test_bad_vocab();
    test_hostile(v);
    bench(v);
    vkm_tok_free(v);
    vkm_tok_free(tiny);
    return check_done();
}
