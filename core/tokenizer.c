/* tokenizer.c - byte-level BPE tokenizer of DeepSeek GGUFs (spec §5; llama.cpp's "gpt2" type).
 *
 * Data layout after vkm_tok_load():
 *  - One string table interns every token text plus every merge side and merge result that is not
 *    a token text. A string id (sid) names a distinct byte string; strs[sid].tok is the token
 *    with that text (the last one if texts repeat, like llama.cpp's map), or -1.
 *  - Merges are a hash map (left sid, right sid) -> merge index = rank (the first one wins for
 *    duplicate pairs); merge_res[rank] is the sid of the concatenation.
 *  - BPE works on raw bytes: byte b of a word starts as the symbol byte_sid[b] (the sid of b's
 *    GPT-2 character, 5.3), so the byte-encoded word is never materialised; a symbol's index is
 *    its start byte, its length counts raw bytes.
 *  - Special tokens (CONTROL / USER_DEFINED / UNKNOWN) are a byte trie; candidate priority is
 *    (text length desc, id asc), llama.cpp's order, made deterministic for equal lengths.
 *  - pieces[id] is what a token decodes to (inverse byte mapping for NORMAL, text otherwise).
 * All strings live in arenas addressed by 32-bit offsets; every size from the file is checked
 * before use. The regexes are compiled once (PCRE2, UTF + UCP, JIT when available); matching
 * scratch (match data, JIT stack) is created per encode call so a vkm_tok stays immutable. */
#include "tokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "unicode.h"

enum {
    MAX_VOCAB = 1 << 24,   /* tokens and merges; real vocabularies have ~10^5 */
    MAX_REGEX = 6,         /* regexes in one pre-tokenizer set */
    BPE_DEFAULT_ID = 11,   /* llama.cpp's BOS/EOS default for BPE vocabularies */
    MAX_TOKEN_TEXT = 4096, /* longest accepted token / merge text in bytes */
};

/* ---------------------------------------------------------------------------------------------
 * Growable byte arena and string interning. */

typedef struct str_ent {
    uint32_t off;  /* into arena; the bytes are followed by a NUL */
    uint32_t len;  /* bytes */
    uint32_t hash; /* of the bytes */
    int32_t tok;   /* token id with this text, or -1 */
} str_ent;

typedef struct str_table {
    char *arena; /* [arena_len] string bytes, each followed by a NUL */
    size_t arena_len, arena_cap;
    str_ent *ents; /* [n] */
    int32_t n, cap;
    int32_t *slots; /* [mask+1] sid or -1, open addressing */
    uint32_t mask;
} str_table;

static uint32_t hash_bytes(const char *s, size_t n) {
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)s[i]) * 16777619u;
    return h ^ (h >> 15);
}

static void st_free(str_table *t) {
    free(t->arena);
    free(t->ents);
    free(t->slots);
}

static int st_init(str_table *t, uint32_t expect) {
    memset(t, 0, sizeof *t);
    uint32_t cap = 1024;
    while (cap < expect * 2u) cap *= 2;
    t->slots = malloc(sizeof *t->slots * cap);
    if (!t->slots) return vkm_error(VKM_ENOMEM, "tokenizer: out of memory");
    memset(t->slots, 0xff, sizeof *t->slots * cap);
    t->mask = cap - 1;
    return 0;
}

static int32_t st_find_h(const str_table *t, const char *s, size_t n, uint32_t h) {
    for (uint32_t i = h & t->mask;; i = (i + 1) & t->mask) {
        int32_t sid = t->slots[i];
        if (sid < 0) return -1;
        const str_ent *e = &t->ents[sid];
        if (e->hash == h && e->len == n && !memcmp(t->arena + e->off, s, n)) return sid;
    }
}

static int32_t st_find(const str_table *t, const char *s, size_t n) {
    return st_find_h(t, s, n, hash_bytes(s, n));
}

static int st_grow_slots(str_table *t) {
    uint32_t cap = (t->mask + 1) * 2;
    int32_t *slots = malloc(sizeof *slots * cap);
    if (!slots) return vkm_error(VKM_ENOMEM, "tokenizer: out of memory");
    memset(slots, 0xff, sizeof *slots * cap);
    for (int32_t sid = 0; sid < t->n; sid++) {
        uint32_t i = t->ents[sid].hash & (cap - 1);
        while (slots[i] >= 0) i = (i + 1) & (cap - 1);
        slots[i] = sid;
    }
    free(t->slots);
    t->slots = slots;
    t->mask = cap - 1;
    return 0;
}

/* Interns s[0..n) and returns its sid in *sid (>= 0), adding it if new. */
static int st_intern(str_table *t, const char *s, size_t n, int32_t *sid) {
    uint32_t h = hash_bytes(s, n);
    int32_t found = st_find_h(t, s, n, h);
    if (found >= 0) {
        *sid = found;
        return 0;
    }
    if (t->n >= MAX_VOCAB * 4) return vkm_error(VKM_EFORMAT, "tokenizer: too many strings");
    if ((uint64_t)(t->n + 1) * 2 > t->mask + 1) {
        int rc = st_grow_slots(t);
        if (rc) return rc;
    }
    if (t->n == t->cap) {
        int32_t cap = t->cap ? t->cap * 2 : 4096;
        str_ent *e = realloc(t->ents, sizeof *e * (size_t)cap);
        if (!e) return vkm_error(VKM_ENOMEM, "tokenizer: out of memory");
        t->ents = e;
        t->cap = cap;
    }
    if (t->arena_len + n + 1 > UINT32_MAX)
        return vkm_error(VKM_EFORMAT, "tokenizer: vocabulary text too large");
    if (t->arena_len + n + 1 > t->arena_cap) {
        size_t cap = t->arena_cap ? t->arena_cap : 1 << 20;
        while (cap < t->arena_len + n + 1) cap *= 2;
        char *a = realloc(t->arena, cap);
        if (!a) return vkm_error(VKM_ENOMEM, "tokenizer: out of memory");
        t->arena = a;
        t->arena_cap = cap;
    }
    str_ent *e = &t->ents[t->n];
    e->off = (uint32_t)t->arena_len;
    e->len = (uint32_t)n;
    e->hash = h;
    e->tok = -1;
    memcpy(t->arena + t->arena_len, s, n);
    t->arena[t->arena_len + n] = 0;
    t->arena_len += n + 1;
    uint32_t i = h & t->mask;
    while (t->slots[i] >= 0) i = (i + 1) & t->mask;
    t->slots[i] = t->n;
    *sid = t->n++;
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * uint64 -> int32 hash map (merge pairs, trie edges). Key UINT64_MAX marks an empty slot. */

typedef struct u64_map {
    uint64_t *keys; /* [mask+1] */
    int32_t *vals;  /* [mask+1] */
    uint32_t mask, n;
} u64_map;

static uint64_t mix64(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    return x ^ (x >> 33);
}

static void map_free(u64_map *m) {
    free(m->keys);
    free(m->vals);
}

static int map_alloc(u64_map *m, uint32_t cap) {
    m->keys = malloc(sizeof *m->keys * cap);
    m->vals = malloc(sizeof *m->vals * cap);
    if (!m->keys || !m->vals) {
        map_free(m);
        return vkm_error(VKM_ENOMEM, "tokenizer: out of memory");
    }
    memset(m->keys, 0xff, sizeof *m->keys * cap);
    m->mask = cap - 1;
    m->n = 0;
    return 0;
}

static int map_init(u64_map *m, uint32_t expect) {
    uint32_t cap = 256;
    while (cap < expect * 2u) cap *= 2;
    return map_alloc(m, cap);
}

static int32_t map_get(const u64_map *m, uint64_t key) {
    for (uint32_t i = (uint32_t)mix64(key) & m->mask;; i = (i + 1) & m->mask) {
        if (m->keys[i] == key) return m->vals[i];
        if (m->keys[i] == UINT64_MAX) return -1;
    }
}

/* Inserts key -> val unless key is present (then keeps the old value). */
static int map_put_new(u64_map *m, uint64_t key, int32_t val) {
    if ((uint64_t)(m->n + 1) * 2 > m->mask + 1) {
        u64_map old = *m;
        int rc = map_alloc(m, (old.mask + 1) * 2);
        if (rc) {
            *m = old;
            return rc;
        }
        for (uint32_t i = 0; i <= old.mask; i++)
            if (old.keys[i] != UINT64_MAX) map_put_new(m, old.keys[i], old.vals[i]);
        map_free(&old);
    }
    uint32_t i = (uint32_t)mix64(key) & m->mask;
    for (; m->keys[i] != UINT64_MAX; i = (i + 1) & m->mask)
        if (m->keys[i] == key) return 0;
    m->keys[i] = key;
    m->vals[i] = val;
    m->n++;
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Pre-tokenizer regexes (spec 5.4), written as in the spec: `\uXXXX` / `\UXXXXXXXX` are code
 * points, `\s` is ASCII plus Unicode whitespace. translate_regex() turns them into PCRE2 syntax. */

static const char *const RE_DEEPSEEK_LLM[] = {
    "[\\r\\n]",
    "\\s?[A-Za-z\\u00B5\\u00C0-\\u00D6\\u00D8-\\u00F6\\u00F8-\\u01BA\\u01BC-\\u01BF\\u01C4-\\u0293"
    "\\u0295-\\u02AF\\u0370-\\u0373\\u0376\\u0377\\u037B-\\u037D\\u037F\\u0386\\u0388-\\u038A"
    "\\u038C\\u038E-\\u03A1\\u03A3-\\u03F5\\u03F7-\\u0481\\u048A-\\u052F\\u0531-\\u0556"
    "\\u10A0-\\u10C5\\u13A0-\\u13F5\\u13F8-\\u13FD\\u1C90-\\u1CBA\\u1CBD-\\u1CBF\\u1D00-\\u1D2B"
    "\\u1D6B-\\u1D77\\u1D79-\\u1D9A\\u1E00-\\u1F15\\u1F18-\\u1F1D\\u1F20-\\u1F45\\u1F48-\\u1F4D"
    "\\u1F50-\\u1F57\\u1F59\\u1F5B\\u1F5D\\u1F5F-\\u1F7D\\u1F80-\\u1FB4\\u1FB6-\\u1FBC\\u1FBE"
    "\\u1FC2-\\u1FC4\\u1FC6-\\u1FCC\\u1FD0-\\u1FD3\\u1FD6-\\u1FDB\\u1FE0-\\u1FEC\\u1FF2-\\u1FF4"
    "\\u1FF6-\\u1FFC\\u2102\\u2107\\u210A-\\u2113\\u2115\\u2119-\\u211D\\u2124\\u2126\\u2128"
    "\\u212A-\\u212D\\u212F-\\u2134\\u2139\\u213C-\\u213F\\u2145-\\u2149\\u214E\\u2183\\u2184"
    "\\u2C00-\\u2C7B\\u2C7E-\\u2CE4\\u2CEB-\\u2CEE\\u2CF2\\u2CF3\\uA640-\\uA66D\\uA680-\\uA69B"
    "\\uA722-\\uA76F\\uA771-\\uA787\\uA78B-\\uA78E\\uAB70-\\uABBF\\uFB00-\\uFB06\\uFB13-\\uFB17"
    "\\uFF21-\\uFF3A\\uFF41-\\uFF5A\\U00010400-\\U0001044F\\U000104B0-\\U000104D3"
    "\\U000104D8-\\U000104FB\\U00010C80-\\U00010CB2\\U00010CC0-\\U00010CF2\\U000118A0-\\U000118DF"
    "\\U0001E900-\\U0001E943]+",
    "\\s?[!-/:-~\\uFF01-\\uFF0F\\uFF1A-\\uFF5E\\u2018-\\u201F\\u3000-\\u3002]+",
    /* The spec's `\s+$`. Same first match (the start of the final whitespace run), but a start
     * inside an earlier run fails at once instead of rescanning the run: linear, not quadratic,
     * on long whitespace runs. */
    "(?<!\\s)\\s++$",
    "[\\u4E00-\\u9FA5\\u0800-\\u4E00\\uAC00-\\uD7FF]+",
    "\\p{N}+",
};

static const char *const RE_DEEPSEEK_V3[] = {
    "\\p{N}{1,3}",
    "[\\u4E00-\\u9FA5\\u3040-\\u309F\\u30A0-\\u30FF]+",
    "[!\"#$%&'()*+,\\-./"
    ":;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\\r\\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+|"
    " ?[\\p{P}\\p{S}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
};

static const char *const RE_DEFAULT[] = {
    "[\\p{P}\\$\\+<=>\\^~\\|]+",
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)",
    "\\p{N}+",
    "[0-9][0-9][0-9]",
};

/* Unicode White_Space (what llama.cpp's \s covers): ASCII \t..\r and space, NEL, NBSP, ... */
static const char WS_CLASS[] = "\\t-\\r \\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}"
                               "\\x{2029}\\x{202F}\\x{205F}\\x{3000}";

static bool is_hex(char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* Rewrites a spec-syntax regex into PCRE2 syntax in out[cap]. The input is one of the built-in
 * tables above, so malformed syntax is a programmer error. */
static void translate_regex(const char *re, char *out, size_t cap) {
    size_t o = 0;
    bool in_class = false;
#define EMIT(str)                                                                                  \
    do {                                                                                           \
        size_t l_ = strlen(str);                                                                   \
        VKM_ASSERT(o + l_ < cap);                                                                  \
        memcpy(out + o, str, l_);                                                                  \
        o += l_;                                                                                   \
    } while (0)
    for (size_t i = 0; re[i];) {
        char c = re[i];
        if (c == '\\') {
            char e = re[i + 1];
            VKM_ASSERT(e != 0);
            if (e == 'u' || e == 'U') {
                size_t nd = e == 'u' ? 4 : 8;
                char buf[16] = "\\x{";
                for (size_t k = 0; k < nd; k++) {
                    VKM_ASSERT(is_hex(re[i + 2 + k]));
                    buf[3 + k] = re[i + 2 + k];
                }
                buf[3 + nd] = '}';
                buf[4 + nd] = 0;
                EMIT(buf);
                i += 2 + nd;
            } else if (e == 's') {
                if (!in_class) EMIT("[");
                EMIT(WS_CLASS);
                if (!in_class) EMIT("]");
                i += 2;
            } else if (e == 'S') {
                VKM_ASSERT(!in_class);
                EMIT("[^");
                EMIT(WS_CLASS);
                EMIT("]");
                i += 2;
            } else {
                char buf[3] = {c, e, 0};
                EMIT(buf);
                i += 2;
            }
            continue;
        }
        if (c == '[' && !in_class)
            in_class = true;
        else if (c == ']' && in_class)
            in_class = false;
        char buf[2] = {c, 0};
        EMIT(buf);
        i++;
    }
#undef EMIT
    out[o] = 0;
}

/* ---------------------------------------------------------------------------------------------
 * The tokenizer object. */

struct vkm_tok {
    int32_t n_vocab;
    int32_t *tok_sid; /* [n_vocab] sid of each token's text */
    uint8_t *type;    /* [n_vocab] enum vkm_tok_type */
    str_table st;     /* token texts, merge sides and results */

    u64_map merges;     /* (left sid << 32 | right sid) -> rank */
    int32_t *merge_res; /* [n_merges] sid of the merged text */
    int32_t n_merges;

    int32_t byte_sid[256];    /* sid of the GPT-2 character of raw byte b, or -1 */
    int32_t byte_tok[256];    /* token whose text is the single byte b (per-byte fallback), or -1 */
    uint8_t byte_enc[256][3]; /* UTF-8 of b's GPT-2 character: [0] = length, [1..2] bytes */

    /* decoding */
    char *piece_arena;   /* [piece_len] */
    uint32_t *piece_off; /* [n_vocab + 1] token id's decoded bytes: [off[id], off[id+1]) */

    /* special-token trie: node 0 is the root */
    int32_t root_next[256]; /* child of the root per byte, or -1 */
    u64_map trie_edges;     /* (node << 8 | byte) -> child */
    int32_t *node_all;      /* [n_nodes] priority rank of the best candidate ending here, or -1 */
    int32_t *node_user;     /* [n_nodes] same, USER_DEFINED candidates only */
    int32_t n_nodes;
    int32_t *cand_id; /* [n_cand] token ids in priority order (length desc, id asc) */
    int32_t n_cand;

    int32_t bos, eos, eot, pad;
    bool add_bos, add_eos;
    enum vkm_tok_pre pre;
    char *chat_template;

    pcre2_code *re[MAX_REGEX];
    int n_re;
};

void vkm_tok_free(vkm_tok *t) {
    if (!t) return;
    free(t->tok_sid);
    free(t->type);
    st_free(&t->st);
    map_free(&t->merges);
    free(t->merge_res);
    free(t->piece_arena);
    free(t->piece_off);
    map_free(&t->trie_edges);
    free(t->node_all);
    free(t->node_user);
    free(t->cand_id);
    free(t->chat_template);
    for (int i = 0; i < t->n_re; i++) pcre2_code_free(t->re[i]);
    free(t);
}

/* GPT-2 byte -> code point (5.3). */
static uint32_t byte_to_cp(int b) {
    if ((b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF))
        return (uint32_t)b;
    uint32_t n = 0; /* rank of b among the 68 remapped bytes */
    for (int x = 0; x < b; x++)
        if (!((x >= 0x21 && x <= 0x7E) || (x >= 0xA1 && x <= 0xAC) || (x >= 0xAE && x <= 0xFF)))
            n++;
    return 0x100 + n;
}

/* Code point -> GPT-2 byte, or -1 (inverse of byte_to_cp; the image is below U+0144). */
static int cp_to_byte(const int16_t *inv, uint32_t cp) {
    return cp < 0x144 ? inv[cp] : -1;
}

static int load_tokens(vkm_tok *t, const vkm_gguf *g, const char *path) {
    int64_t kv;
    uint64_t count;
    int rc = vkm_gguf_get_arr(g, "tokenizer.ggml.tokens", VKM_GGUF_STRING, &kv, &count);
    if (rc) return rc;
    if (count == 0 || count > MAX_VOCAB)
        return vkm_error(VKM_EFORMAT, "%s: tokenizer.ggml.tokens has %llu entries", path,
                         (unsigned long long)count);
    t->n_vocab = (int32_t)count;
    t->tok_sid = malloc(sizeof *t->tok_sid * count);
    t->type = malloc(count);
    if (!t->tok_sid || !t->type) return vkm_error(VKM_ENOMEM, "tokenizer: out of memory");
    if ((rc = st_init(&t->st, (uint32_t)count * 2))) return rc;

    int64_t tkv = vkm_gguf_find_key(g, "tokenizer.ggml.token_type");
    if (tkv >= 0) {
        uint64_t tcount;
        rc = vkm_gguf_get_arr(g, "tokenizer.ggml.token_type", VKM_GGUF_INT32, &tkv, &tcount);
        if (rc) return rc;
        if (tcount != count)
            return vkm_error(VKM_EFORMAT,
                             "%s: tokenizer.ggml.token_type has %llu entries, expected %llu", path,
                             (unsigned long long)tcount, (unsigned long long)count);
    }
    for (uint64_t i = 0; i < count; i++) {
        int32_t ty = VKM_TOK_NORMAL;
        if (tkv >= 0) {
            ty = vkm_gguf_arr_i32(g, tkv, i);
            if (ty < VKM_TOK_UNDEFINED || ty > VKM_TOK_BYTE)
                return vkm_error(VKM_EFORMAT, "%s: token %llu has invalid type %d", path,
                                 (unsigned long long)i, ty);
        }
        t->type[i] = (uint8_t)ty;
        uint64_t len;
        const char *s = vkm_gguf_arr_str(g, kv, i, &len);
        char empty[32];
        if (len == 0) { /* llama.cpp renames empty tokens */
            snprintf(empty, sizeof empty, "[EMPTY_%llu]", (unsigned long long)i);
            s = empty;
            len = strlen(empty);
        }
        if (len > MAX_TOKEN_TEXT)
            return vkm_error(VKM_EFORMAT, "%s: token %llu is %llu bytes long", path,
                             (unsigned long long)i, (unsigned long long)len);
        int32_t sid;
        if ((rc = st_intern(&t->st, s, len, &sid))) return rc;
        t->st.ents[sid].tok = (int32_t)i; /* a repeated text maps to its last token */
        t->tok_sid[i] = sid;
    }
    return 0;
}

static int load_merges(vkm_tok *t, const vkm_gguf *g, const char *path) {
    int64_t kv;
    uint64_t count;
    if (vkm_gguf_find_key(g, "tokenizer.ggml.merges") < 0)
        return vkm_error(VKM_EFORMAT, "%s: missing key tokenizer.ggml.merges (BPE needs merges)",
                         path);
    int rc = vkm_gguf_get_arr(g, "tokenizer.ggml.merges", VKM_GGUF_STRING, &kv, &count);
    if (rc) return rc;
    if (count == 0) return vkm_error(VKM_EFORMAT, "%s: tokenizer.ggml.merges is empty", path);
    if (count > MAX_VOCAB)
        return vkm_error(VKM_EFORMAT, "%s: tokenizer.ggml.merges has %llu entries", path,
                         (unsigned long long)count);
    t->n_merges = (int32_t)count;
    t->merge_res = malloc(sizeof *t->merge_res * count);
    if (!t->merge_res) return vkm_error(VKM_ENOMEM, "tokenizer: out of memory");
    if ((rc = map_init(&t->merges, (uint32_t)count))) return rc;
    char cat[MAX_TOKEN_TEXT * 2];
    for (uint64_t i = 0; i < count; i++) {
        uint64_t len;
        const char *s = vkm_gguf_arr_str(g, kv, i, &len);
        const char *sp = len > 1 ? memchr(s + 1, ' ', len - 1) : NULL;
        if (!sp || sp + 1 == s + len)
            return vkm_error(VKM_EFORMAT, "%s: merge %llu (\"%.40s\") is not \"left right\"", path,
                             (unsigned long long)i, s);
        size_t ll = (size_t)(sp - s), rl = len - ll - 1;
        if (ll > MAX_TOKEN_TEXT || rl > MAX_TOKEN_TEXT)
            return vkm_error(VKM_EFORMAT, "%s: merge %llu is too long", path,
                             (unsigned long long)i);
        int32_t l, r, res;
        if ((rc = st_intern(&t->st, s, ll, &l))) return rc;
        if ((rc = st_intern(&t->st, sp + 1, rl, &r))) return rc;
        memcpy(cat, s, ll);
        memcpy(cat + ll, sp + 1, rl);
        if ((rc = st_intern(&t->st, cat, ll + rl, &res))) return rc;
        t->merge_res[i] = res;
        if ((rc = map_put_new(&t->merges, (uint64_t)l << 32 | (uint32_t)r, (int32_t)i))) return rc;
    }
    return 0;
}

/* Optional token id key; absent gives def. Present but out of range is a format error. */
static int load_id(const vkm_gguf *g, const char *path, const char *key, int32_t n_vocab,
                   int32_t def, int32_t *out) {
    *out = def;
    if (vkm_gguf_find_key(g, key) < 0) return 0;
    uint64_t v;
    int rc = vkm_gguf_get_uint(g, key, &v);
    if (rc) return rc;
    if (v >= (uint64_t)n_vocab)
        return vkm_error(VKM_EFORMAT, "%s: %s = %llu is not below the vocabulary size %d", path,
                         key, (unsigned long long)v, n_vocab);
    *out = (int32_t)v;
    return 0;
}

static int load_bytes_and_pieces(vkm_tok *t) {
    int16_t inv[0x144];
    for (int i = 0; i < 0x144; i++) inv[i] = -1;
    for (int b = 0; b < 256; b++) {
        uint32_t cp = byte_to_cp(b);
        inv[cp] = (int16_t)b;
        char u[4];
        size_t n = vkm_utf8_encode(cp, u);
        t->byte_enc[b][0] = (uint8_t)n;
        memcpy(&t->byte_enc[b][1], u, n);
        t->byte_sid[b] = st_find(&t->st, u, n);
        char one = (char)b;
        int32_t sid = st_find(&t->st, &one, 1);
        t->byte_tok[b] = sid >= 0 ? t->st.ents[sid].tok : -1;
    }
    /* Decoded bytes never exceed the text length (2-byte characters become 1 byte, anything
     * else is copied), so the token texts' total bounds the arena. */
    size_t total = 0;
    for (int32_t id = 0; id < t->n_vocab; id++) total += t->st.ents[t->tok_sid[id]].len;
    t->piece_arena = malloc(total + 1);
    t->piece_off = malloc(sizeof *t->piece_off * ((size_t)t->n_vocab + 1));
    if (!t->piece_arena || !t->piece_off) return vkm_error(VKM_ENOMEM, "tokenizer: out of memory");
    size_t o = 0;
    for (int32_t id = 0; id < t->n_vocab; id++) {
        const str_ent *e = &t->st.ents[t->tok_sid[id]];
        const char *s = t->st.arena + e->off;
        t->piece_off[id] = (uint32_t)o;
        if (t->type[id] == VKM_TOK_NORMAL) {
            for (size_t i = 0; i < e->len;) {
                uint32_t cp;
                size_t n = vkm_utf8_decode(s + i, e->len - i, &cp);
                int b = n ? cp_to_byte(inv, cp) : -1;
                if (b >= 0) {
                    t->piece_arena[o++] = (char)b;
                } else { /* not a GPT-2 byte character: keep it as is */
                    size_t k = n ? n : 1;
                    memcpy(t->piece_arena + o, s + i, k);
                    o += k;
                    n = k;
                }
                i += n;
            }
        } else if (t->type[id] == VKM_TOK_USER_DEFINED || t->type[id] == VKM_TOK_UNKNOWN ||
                   t->type[id] == VKM_TOK_CONTROL) {
            memcpy(t->piece_arena + o, s, e->len);
            o += e->len;
        }
    }
    t->piece_off[t->n_vocab] = (uint32_t)o;
    return 0;
}

static int u64_cmp(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* Builds the special-token trie over CONTROL / USER_DEFINED / UNKNOWN token texts. */
static int load_specials(vkm_tok *t) {
    int32_t n = 0;
    size_t bytes = 0;
    for (int32_t id = 0; id < t->n_vocab; id++) {
        int ty = t->type[id];
        if (ty == VKM_TOK_CONTROL || ty == VKM_TOK_USER_DEFINED || ty == VKM_TOK_UNKNOWN) {
            n++;
            bytes += t->st.ents[t->tok_sid[id]].len;
        }
    }
    /* priority order: length descending, then id ascending, as one sortable key each */
    uint64_t *keys = malloc(sizeof *keys * ((size_t)n + 1));
    t->cand_id = malloc(sizeof *t->cand_id * ((size_t)n + 1));
    t->node_all = malloc(sizeof *t->node_all * (bytes + 1));
    t->node_user = malloc(sizeof *t->node_user * (bytes + 1));
    int rc = 0;
    if (!keys || !t->cand_id || !t->node_all || !t->node_user) {
        rc = vkm_error(VKM_ENOMEM, "tokenizer: out of memory");
        goto done;
    }
    if ((rc = map_init(&t->trie_edges, (uint32_t)bytes + 1))) goto done;
    n = 0;
    for (int32_t id = 0; id < t->n_vocab; id++) {
        int ty = t->type[id];
        if (ty == VKM_TOK_CONTROL || ty == VKM_TOK_USER_DEFINED || ty == VKM_TOK_UNKNOWN) {
            uint32_t len = t->st.ents[t->tok_sid[id]].len; /* <= MAX_TOKEN_TEXT */
            keys[n++] = (uint64_t)(MAX_TOKEN_TEXT - len) << 32 | (uint32_t)id;
        }
    }
    qsort(keys, (size_t)n, sizeof *keys, u64_cmp);
    t->n_cand = n;
    for (int i = 0; i < 256; i++) t->root_next[i] = -1;
    t->n_nodes = 1;
    t->node_all[0] = t->node_user[0] = -1;
    for (int32_t rank = 0; rank < n; rank++) {
        int32_t id = (int32_t)(uint32_t)keys[rank];
        t->cand_id[rank] = id;
        const str_ent *e = &t->st.ents[t->tok_sid[id]];
        const uint8_t *s = (const uint8_t *)t->st.arena + e->off;
        int32_t node = 0;
        for (uint32_t i = 0; i < e->len; i++) {
            int32_t next = node == 0 ? t->root_next[s[i]]
                                     : map_get(&t->trie_edges, (uint64_t)node << 8 | s[i]);
            if (next < 0) {
                next = t->n_nodes++;
                t->node_all[next] = t->node_user[next] = -1;
                if (node == 0)
                    t->root_next[s[i]] = next;
                else if ((rc = map_put_new(&t->trie_edges, (uint64_t)node << 8 | s[i], next)))
                    goto done;
            }
            node = next;
        }
        /* ranks increase, so the first candidate reaching a node is the best for its text */
        if (t->node_all[node] < 0) t->node_all[node] = rank;
        if (t->type[id] == VKM_TOK_USER_DEFINED && t->node_user[node] < 0)
            t->node_user[node] = rank;
    }
done:
    free(keys);
    return rc;
}

static int compile_regexes(vkm_tok *t) {
    const char *const *set = RE_DEFAULT;
    int n = (int)(sizeof RE_DEFAULT / sizeof *RE_DEFAULT);
    if (t->pre == VKM_TOK_PRE_DEEPSEEK_LLM) {
        set = RE_DEEPSEEK_LLM;
        n = (int)(sizeof RE_DEEPSEEK_LLM / sizeof *RE_DEEPSEEK_LLM);
    } else if (t->pre == VKM_TOK_PRE_DEEPSEEK_V3) {
        set = RE_DEEPSEEK_V3;
        n = (int)(sizeof RE_DEEPSEEK_V3 / sizeof *RE_DEEPSEEK_V3);
    }
    VKM_ASSERT(n <= MAX_REGEX);
    char buf[8192];
    for (int i = 0; i < n; i++) {
        translate_regex(set[i], buf, sizeof buf);
        int err;
        PCRE2_SIZE at;
        pcre2_code *re =
            pcre2_compile((PCRE2_SPTR)buf, PCRE2_ZERO_TERMINATED,
                          PCRE2_UTF | PCRE2_UCP | PCRE2_DOLLAR_ENDONLY, &err, &at, NULL);
        if (!re) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(err, msg, sizeof msg);
            return vkm_error(VKM_EUNSUPPORTED, "tokenizer: PCRE2 cannot compile regex %d: %s", i,
                             (const char *)msg);
        }
        pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); /* the interpreter is the fallback */
        t->re[t->n_re++] = re;
    }
    return 0;
}

static const char EOT_TEXT[] = "<\xef\xbd\x9c"
                               "end\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>";

int vkm_tok_load(const vkm_gguf *g, vkm_tok **out) {
    *out = NULL;
    const char *path = vkm_gguf_file_path(g, 0);
    const char *model;
    int rc = vkm_gguf_get_str(g, "tokenizer.ggml.model", &model, NULL);
    if (rc) return rc;
    if (strcmp(model, "gpt2"))
        return vkm_error(VKM_EUNSUPPORTED,
                         "%s: tokenizer.ggml.model '%s' is not supported (only 'gpt2' BPE)", path,
                         model);
    vkm_tok *t = calloc(1, sizeof *t);
    if (!t) return vkm_error(VKM_ENOMEM, "tokenizer: out of memory");
    if ((rc = load_tokens(t, g, path))) goto fail;
    if ((rc = load_merges(t, g, path))) goto fail;

    int32_t def = BPE_DEFAULT_ID < t->n_vocab ? BPE_DEFAULT_ID : -1;
    if ((rc = load_id(g, path, "tokenizer.ggml.bos_token_id", t->n_vocab, def, &t->bos))) goto fail;
    if ((rc = load_id(g, path, "tokenizer.ggml.eos_token_id", t->n_vocab, def, &t->eos))) goto fail;
    if ((rc = load_id(g, path, "tokenizer.ggml.padding_token_id", t->n_vocab, -1, &t->pad)))
        goto fail;
    if ((rc = load_id(g, path, "tokenizer.ggml.eot_token_id", t->n_vocab, -1, &t->eot))) goto fail;
    /* spec 5.1: `<｜end▁of▁sentence｜>` is an end-of-turn token and always CONTROL */
    int32_t sid = st_find(&t->st, EOT_TEXT, sizeof EOT_TEXT - 1);
    int32_t eot_tok = sid >= 0 ? t->st.ents[sid].tok : -1;
    if (eot_tok >= 0) {
        t->type[eot_tok] = VKM_TOK_CONTROL;
        if (t->eot < 0) t->eot = eot_tok;
    }
    if ((rc = vkm_gguf_get_bool_or(g, "tokenizer.ggml.add_bos_token", false, &t->add_bos)))
        goto fail;
    if ((rc = vkm_gguf_get_bool_or(g, "tokenizer.ggml.add_eos_token", false, &t->add_eos)))
        goto fail;

    const char *pre;
    if ((rc = vkm_gguf_get_str_or(g, "tokenizer.ggml.pre", NULL, &pre))) goto fail;
    t->pre = VKM_TOK_PRE_DEFAULT;
    if (pre && !strcmp(pre, "deepseek-llm"))
        t->pre = VKM_TOK_PRE_DEEPSEEK_LLM;
    else if (pre && !strcmp(pre, "deepseek-v3"))
        t->pre = VKM_TOK_PRE_DEEPSEEK_V3;
    else if (!pre || strcmp(pre, "default"))
        fprintf(stderr, "vkmoe: warning: %s: %s%s%s; using the default BPE pre-tokenizer\n", path,
                pre ? "unknown tokenizer.ggml.pre '" : "no tokenizer.ggml.pre", pre ? pre : "",
                pre ? "'" : "");

    if (vkm_gguf_find_key(g, "tokenizer.chat_template") >= 0) {
        const char *tmpl;
        uint64_t len;
        if ((rc = vkm_gguf_get_str(g, "tokenizer.chat_template", &tmpl, &len))) goto fail;
        t->chat_template = malloc(len + 1);
        if (!t->chat_template) {
            rc = vkm_error(VKM_ENOMEM, "tokenizer: out of memory");
            goto fail;
        }
        memcpy(t->chat_template, tmpl, len);
        t->chat_template[len] = 0;
    }

    if ((rc = load_bytes_and_pieces(t))) goto fail;
    if ((rc = load_specials(t))) goto fail;
    if ((rc = compile_regexes(t))) goto fail;
    *out = t;
    return 0;
fail:
    vkm_tok_free(t);
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * Encoding. One enc_ctx per call holds every scratch buffer. */

typedef struct span {
    size_t off, len; /* bytes, relative to the text being pre-tokenized */
} span;

typedef struct bpe_sym {
    int32_t sid;        /* string id of the symbol's text, or -1 (cannot merge) */
    int32_t n;          /* raw bytes covered; 0 once merged into its left neighbour */
    int32_t prev, next; /* neighbouring live symbols, -1 at the ends */
} bpe_sym;

typedef struct bigram {
    int32_t rank, left, right; /* priority (rank, left) */
    int32_t ln, rn;            /* symbol lengths when queued (stale check) */
    int32_t res;               /* sid of the merged text */
} bigram;

typedef struct occ {
    int32_t rank; /* special candidate priority */
    size_t pos;   /* byte offset in the text */
} occ;

typedef struct enc_ctx {
    const vkm_tok *t;
    int32_t *ids; /* [n_ids] output */
    size_t n_ids, cap_ids;
    char *clean; /* sanitized copy of a fragment with invalid UTF-8 */
    size_t cap_clean;
    span *pa, *pb; /* pieces of the current / next regex step */
    size_t na, nb, cap_pa, cap_pb;
    bpe_sym *sym; /* [cap_sym] */
    bigram *heap; /* [cap_heap] binary min-heap on (rank, left) */
    size_t cap_sym, cap_heap, n_heap;
    pcre2_match_data *md;
    pcre2_match_context *mctx;
    pcre2_jit_stack *jit;
} enc_ctx;

static int grow(void **p, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return 0;
    size_t c = *cap ? *cap : 64;
    while (c < need) c *= 2;
    void *q = realloc(*p, c * elem);
    if (!q) return vkm_error(VKM_ENOMEM, "tokenizer: out of memory");
    *p = q;
    *cap = c;
    return 0;
}

static int push_id(enc_ctx *c, int32_t id) {
    if (c->n_ids == c->cap_ids) {
        int rc = grow((void **)&c->ids, &c->cap_ids, c->n_ids + 1, sizeof *c->ids);
        if (rc) return rc;
    }
    c->ids[c->n_ids++] = id;
    return 0;
}

static bool bigram_less(const bigram *a, const bigram *b) {
    return a->rank < b->rank || (a->rank == b->rank && a->left < b->left);
}

static void heap_push(enc_ctx *c, bigram b) {
    size_t i = c->n_heap++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!bigram_less(&b, &c->heap[p])) break;
        c->heap[i] = c->heap[p];
        i = p;
    }
    c->heap[i] = b;
}

static bigram heap_pop(enc_ctx *c) {
    bigram top = c->heap[0], last = c->heap[--c->n_heap];
    size_t i = 0, n = c->n_heap;
    for (;;) {
        size_t l = 2 * i + 1, m = i;
        const bigram *best = &last;
        if (l < n && bigram_less(&c->heap[l], best)) m = l, best = &c->heap[l];
        if (l + 1 < n && bigram_less(&c->heap[l + 1], best)) m = l + 1;
        if (m == i) break;
        c->heap[i] = c->heap[m];
        i = m;
    }
    if (n) c->heap[i] = last;
    return top;
}

static void add_bigram(enc_ctx *c, int32_t l, int32_t r) {
    if (l < 0 || r < 0) return;
    int32_t sl = c->sym[l].sid, sr = c->sym[r].sid;
    if (sl < 0 || sr < 0) return;
    int32_t rank = map_get(&c->t->merges, (uint64_t)sl << 32 | (uint32_t)sr);
    if (rank < 0) return;
    bigram b = {rank, l, r, c->sym[l].n, c->sym[r].n, c->t->merge_res[rank]};
    heap_push(c, b);
}

/* BPE of one pre-tokenized word w[0..n) (raw bytes), appending its token ids (spec 5.2 step 4). */
static int bpe_word(enc_ctx *c, const uint8_t *w, int32_t n) {
    const vkm_tok *t = c->t;
    int rc;
    if ((rc = grow((void **)&c->sym, &c->cap_sym, (size_t)n, sizeof *c->sym))) return rc;
    /* the heap holds at most (n - 1) initial pairs + 2 per merge < 3n entries */
    if ((rc = grow((void **)&c->heap, &c->cap_heap, 3 * (size_t)n, sizeof *c->heap))) return rc;
    bpe_sym *sym = c->sym;
    for (int32_t i = 0; i < n; i++) {
        sym[i].sid = t->byte_sid[w[i]];
        sym[i].n = 1;
        sym[i].prev = i - 1;
        sym[i].next = i + 1 < n ? i + 1 : -1;
    }
    c->n_heap = 0;
    for (int32_t i = 1; i < n; i++) add_bigram(c, i - 1, i);
    while (c->n_heap) {
        bigram b = heap_pop(c);
        bpe_sym *l = &sym[b.left], *r = &sym[b.right];
        if (l->n != b.ln || r->n != b.rn) continue; /* stale: a side has changed since */
        l->n += r->n;
        l->sid = b.res;
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0) sym[r->next].prev = b.left;
        add_bigram(c, l->prev, b.left);
        add_bigram(c, b.left, l->next);
    }
    for (int32_t i = 0; i != -1; i = sym[i].next) {
        int32_t tok = sym[i].sid >= 0 ? t->st.ents[sym[i].sid].tok : -1;
        if (tok >= 0) {
            if ((rc = push_id(c, tok))) return rc;
            continue;
        }
        /* not a token: each byte of its byte-encoded text as a one-byte token, if any */
        for (int32_t k = i; k < i + sym[i].n; k++) {
            const uint8_t *e = t->byte_enc[w[k]];
            for (int j = 1; j <= e[0]; j++)
                if (t->byte_tok[e[j]] >= 0 && (rc = push_id(c, t->byte_tok[e[j]]))) return rc;
        }
    }
    return 0;
}

static int push_span(span **v, size_t *n, size_t *cap, size_t off, size_t len) {
    if (*n == *cap) {
        int rc = grow((void **)v, cap, *n + 1, sizeof **v);
        if (rc) return rc;
    }
    (*v)[(*n)++] = (span){off, len};
    return 0;
}

/* Splits every piece of c->pa by regex re into c->pb: matches and the gaps between them. */
static int regex_split(enc_ctx *c, const pcre2_code *re, const char *text) {
    c->nb = 0;
    int rc;
    for (size_t p = 0; p < c->na; p++) {
        const char *s = text + c->pa[p].off;
        size_t len = c->pa[p].len, last = 0, off = 0;
        while (off < len) {
            int m = pcre2_match(re, (PCRE2_SPTR)s, len, off, PCRE2_NO_UTF_CHECK, c->md, c->mctx);
            if (m == PCRE2_ERROR_NOMATCH) break;
            if (m < 0) {
                PCRE2_UCHAR msg[256];
                pcre2_get_error_message(m, msg, sizeof msg);
                return vkm_error(VKM_EINVAL, "tokenizer: regex matching failed: %s",
                                 (const char *)msg);
            }
            const PCRE2_SIZE *ov = pcre2_get_ovector_pointer(c->md);
            size_t ms = ov[0], me = ov[1];
            if (me <= ms) { /* empty match (not produced by the built-in regexes): skip a char */
                off = ms + 1;
                while (off < len && ((uint8_t)s[off] & 0xC0) == 0x80) off++;
                continue;
            }
            if (ms > last &&
                (rc = push_span(&c->pb, &c->nb, &c->cap_pb, c->pa[p].off + last, ms - last)))
                return rc;
            if ((rc = push_span(&c->pb, &c->nb, &c->cap_pb, c->pa[p].off + ms, me - ms))) return rc;
            last = off = me;
        }
        if (last < len &&
            (rc = push_span(&c->pb, &c->nb, &c->cap_pb, c->pa[p].off + last, len - last)))
            return rc;
    }
    span *tmp = c->pa;
    c->pa = c->pb;
    c->pb = tmp;
    size_t tc = c->cap_pa;
    c->cap_pa = c->cap_pb;
    c->cap_pb = tc;
    c->na = c->nb;
    return 0;
}

/* Pre-tokenizes and BPE-encodes one raw text fragment (no special tokens inside). */
static int encode_fragment(enc_ctx *c, const char *s, size_t n) {
    if (n == 0) return 0;
    int rc;
    if (!vkm_utf8_valid(s, n)) {
        if (n > SIZE_MAX / 3) return vkm_error(VKM_EINVAL, "tokenizer: text too long");
        if ((rc = grow((void **)&c->clean, &c->cap_clean, 3 * n, 1))) return rc;
        n = vkm_utf8_sanitize(s, n, c->clean);
        s = c->clean;
    }
    if (n > INT32_MAX) return vkm_error(VKM_EINVAL, "tokenizer: text fragment too long");
    c->na = 0;
    if ((rc = push_span(&c->pa, &c->na, &c->cap_pa, 0, n))) return rc;
    for (int i = 0; i < c->t->n_re; i++)
        if ((rc = regex_split(c, c->t->re[i], s))) return rc;
    for (size_t p = 0; p < c->na; p++)
        if ((rc = bpe_word(c, (const uint8_t *)s + c->pa[p].off, (int32_t)c->pa[p].len))) return rc;
    return 0;
}

static int occ_cmp_rank(const void *a, const void *b) {
    const occ *x = a, *y = b;
    if (x->rank != y->rank) return x->rank < y->rank ? -1 : 1;
    return (x->pos > y->pos) - (x->pos < y->pos);
}

static int occ_cmp_pos(const void *a, const void *b) {
    const occ *x = a, *y = b;
    return (x->pos > y->pos) - (x->pos < y->pos);
}

/* Special-token partitioning (spec 5.2 step 1) followed by encoding of the raw fragments.
 * llama.cpp cuts, candidate by candidate in priority order, every leftmost non-overlapping
 * occurrence that lies inside a still-raw fragment. Equivalently: list every occurrence of every
 * candidate (trie walk), then accept them in (priority, position) order when they overlap no
 * already accepted one. */
static int encode_text(enc_ctx *c, const char *text, size_t len, bool parse_special) {
    const vkm_tok *t = c->t;
    const uint8_t *u = (const uint8_t *)text;
    occ *oc = NULL;
    size_t n_oc = 0, cap_oc = 0;
    uint8_t *covered = NULL;
    int rc = 0;
    for (size_t i = 0; i < len; i++) {
        int32_t node = t->root_next[u[i]];
        size_t j = i + 1;
        while (node >= 0) {
            int32_t r = parse_special ? t->node_all[node] : t->node_user[node];
            if (r >= 0) {
                if (n_oc == cap_oc && (rc = grow((void **)&oc, &cap_oc, n_oc + 1, sizeof *oc)))
                    goto done;
                oc[n_oc++] = (occ){r, i};
            }
            if (j >= len) break;
            node = map_get(&t->trie_edges, (uint64_t)node << 8 | u[j]);
            j++;
        }
    }
    size_t n_acc = 0;
    if (n_oc) {
        covered = calloc(len, 1);
        if (!covered) {
            rc = vkm_error(VKM_ENOMEM, "tokenizer: out of memory");
            goto done;
        }
        qsort(oc, n_oc, sizeof *oc, occ_cmp_rank);
        for (size_t k = 0; k < n_oc; k++) {
            size_t l = t->st.ents[t->tok_sid[t->cand_id[oc[k].rank]]].len;
            bool free_ = true;
            for (size_t b = 0; b < l && free_; b++) free_ = !covered[oc[k].pos + b];
            if (!free_) continue;
            memset(covered + oc[k].pos, 1, l);
            oc[n_acc++] = oc[k]; /* n_acc <= k: compaction in place */
        }
        qsort(oc, n_acc, sizeof *oc, occ_cmp_pos);
    }
    size_t at = 0;
    for (size_t k = 0; k < n_acc; k++) {
        int32_t id = t->cand_id[oc[k].rank];
        if ((rc = encode_fragment(c, text + at, oc[k].pos - at))) goto done;
        if ((rc = push_id(c, id))) goto done;
        at = oc[k].pos + t->st.ents[t->tok_sid[id]].len;
    }
    rc = encode_fragment(c, text + at, len - at);
done:
    free(oc);
    free(covered);
    return rc;
}

int vkm_tok_encode(const vkm_tok *t, const char *text, size_t len, bool add_special,
                   bool parse_special, int32_t **ids, size_t *n) {
    *ids = NULL;
    *n = 0;
    enc_ctx c = {.t = t};
    int rc = 0;
    c.md = pcre2_match_data_create(4, NULL);
    c.mctx = pcre2_match_context_create(NULL);
    c.jit = pcre2_jit_stack_create(32 * 1024, 8 * 1024 * 1024, NULL);
    if (!c.md || !c.mctx) {
        rc = vkm_error(VKM_ENOMEM, "tokenizer: out of memory");
        goto done;
    }
    if (c.jit) pcre2_jit_stack_assign(c.mctx, NULL, c.jit);
    if (add_special && t->add_bos && t->bos >= 0 && (rc = push_id(&c, t->bos))) goto done;
    if ((rc = encode_text(&c, text, len, parse_special))) goto done;
    if (add_special && t->add_eos && t->eos >= 0 && (rc = push_id(&c, t->eos))) goto done;
    if (c.n_ids) {
        *ids = c.ids;
        *n = c.n_ids;
        c.ids = NULL;
    }
done:
    free(c.ids);
    free(c.clean);
    free(c.pa);
    free(c.pb);
    free(c.sym);
    free(c.heap);
    pcre2_match_data_free(c.md);
    pcre2_match_context_free(c.mctx);
    pcre2_jit_stack_free(c.jit);
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * Decoding. */

const char *vkm_tok_piece(const vkm_tok *t, int32_t id, bool render_special, size_t *len) {
    VKM_ASSERT(id >= 0 && id < t->n_vocab);
    if (t->type[id] == VKM_TOK_CONTROL && !render_special) {
        *len = 0;
        return t->piece_arena;
    }
    *len = t->piece_off[id + 1] - t->piece_off[id];
    return t->piece_arena + t->piece_off[id];
}

int vkm_tok_decode(const vkm_tok *t, const int32_t *ids, size_t n, bool render_special, char **text,
                   size_t *len) {
    *text = NULL;
    *len = 0;
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= t->n_vocab)
            return vkm_error(VKM_ERANGE, "token id %d is out of range (vocabulary of %d)", ids[i],
                             t->n_vocab);
        size_t l;
        vkm_tok_piece(t, ids[i], render_special, &l);
        total += l;
    }
    char *out = malloc(total + 1);
    if (!out) return vkm_error(VKM_ENOMEM, "tokenizer: out of memory");
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        size_t l;
        const char *p = vkm_tok_piece(t, ids[i], render_special, &l);
        memcpy(out + o, p, l);
        o += l;
    }
    out[o] = 0;
    *text = out;
    *len = o;
    return 0;
}

struct vkm_tok_stream {
    const vkm_tok *t;
    bool render_special;
    char *buf; /* [cap]: held-back bytes, then the newest piece */
    size_t cap;
    size_t filled; /* bytes in buf after the last call */
    size_t given;  /* of those, bytes handed out by the last call */
};

int vkm_tok_stream_create(const vkm_tok *t, bool render_special, vkm_tok_stream **out) {
    *out = NULL;
    vkm_tok_stream *s = calloc(1, sizeof *s);
    if (!s) return vkm_error(VKM_ENOMEM, "tokenizer: out of memory");
    s->t = t;
    s->render_special = render_special;
    *out = s;
    return 0;
}

void vkm_tok_stream_destroy(vkm_tok_stream *s) {
    if (!s) return;
    free(s->buf);
    free(s);
}

/* Drops what the last call handed out, keeping the held-back tail at the front. */
static void stream_compact(vkm_tok_stream *s) {
    if (s->given < s->filled) memmove(s->buf, s->buf + s->given, s->filled - s->given);
    s->filled -= s->given;
    s->given = 0;
}

int vkm_tok_stream_put(vkm_tok_stream *s, int32_t id, const char **text, size_t *len) {
    *text = s->buf;
    *len = 0;
    if (id < 0 || id >= s->t->n_vocab)
        return vkm_error(VKM_ERANGE, "token id %d is out of range (vocabulary of %d)", id,
                         s->t->n_vocab);
    stream_compact(s);
    size_t l;
    const char *p = vkm_tok_piece(s->t, id, s->render_special, &l);
    int rc = grow((void **)&s->buf, &s->cap, s->filled + l, 1);
    if (rc) return rc;
    if (l) memcpy(s->buf + s->filled, p, l); /* buf is still NULL after only empty pieces */
    s->filled += l;
    s->given = vkm_utf8_complete_prefix(s->buf, s->filled);
    *text = s->buf;
    *len = s->given;
    return 0;
}

void vkm_tok_stream_flush(vkm_tok_stream *s, const char **text, size_t *len) {
    if (s->buf) stream_compact(s);
    s->given = s->filled;
    *text = s->buf ? s->buf : "";
    *len = s->filled;
}

/* ---------------------------------------------------------------------------------------------
 * Vocabulary accessors. */

int32_t vkm_tok_n_vocab(const vkm_tok *t) {
    return t->n_vocab;
}
int32_t vkm_tok_bos(const vkm_tok *t) {
    return t->bos;
}
int32_t vkm_tok_eos(const vkm_tok *t) {
    return t->eos;
}
int32_t vkm_tok_eot(const vkm_tok *t) {
    return t->eot;
}
int32_t vkm_tok_pad(const vkm_tok *t) {
    return t->pad;
}
bool vkm_tok_add_bos(const vkm_tok *t) {
    return t->add_bos;
}
bool vkm_tok_add_eos(const vkm_tok *t) {
    return t->add_eos;
}
enum vkm_tok_pre vkm_tok_pre_type(const vkm_tok *t) {
    return t->pre;
}
const char *vkm_tok_chat_template(const vkm_tok *t) {
    return t->chat_template;
}

bool vkm_tok_is_eog(const vkm_tok *t, int32_t id) {
    return id >= 0 && (id == t->eos || id == t->eot);
}

const char *vkm_tok_text(const vkm_tok *t, int32_t id, size_t *len) {
    if (id < 0 || id >= t->n_vocab) return NULL;
    const str_ent *e = &t->st.ents[t->tok_sid[id]];
    if (len) *len = e->len;
    return t->st.arena + e->off;
}

int vkm_tok_type(const vkm_tok *t, int32_t id) {
    return id >= 0 && id < t->n_vocab ? t->type[id] : VKM_TOK_UNDEFINED;
}

int32_t vkm_tok_find(const vkm_tok *t, const char *text, size_t len) {
    int32_t sid = st_find(&t->st, text, len);
    return sid >= 0 ? t->st.ents[sid].tok : -1;
}
