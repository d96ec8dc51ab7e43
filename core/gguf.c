/* gguf.c - GGUF v2/v3 reader (spec §1): mmap, full validation at open, split models.
 *
 * Invariants after vkm_gguf_open() succeeds:
 *  - every KV record and tensor info was parsed with each length/count checked against the bytes
 *    left in the file BEFORE anything was allocated or read, using overflow-safe arithmetic;
 *  - keys are non-empty, free of NUL bytes and unique; tensor names are 1..63 bytes and unique
 *    across all parts;
 *  - each tensor has a known ggml type, 1..4 dims, ne >= 0, ne0 a multiple of the block size,
 *    and lies at offset sum(align_up(nbytes_j)) of the earlier tensors of its part (strict
 *    order), entirely inside the mapping (including its trailing alignment padding);
 *  - strings (keys, string values, string array elements) are NUL-terminated heap copies;
 *    numeric scalars and arrays are read in place from the mapping with memcpy (unaligned LE).
 * The host is assumed little-endian, like every GGUF file. */
#include "gguf.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "err.h"

/* ---------------------------------------------------------------------------------------------
 * A growable hash index of names (keys or tensor names) -> record index. Open addressing. */

typedef const char *(*name_fn)(const void *ctx, int64_t i);

typedef struct name_index {
    int64_t *slot; /* (mask + 1) record indices, -1 = empty */
    uint64_t mask;
    int64_t used;
} name_index;

static uint64_t hash_str(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 1099511628211ull;
    return h;
}

static int name_index_alloc(name_index *h, uint64_t cap) {
    h->slot = malloc(cap * sizeof *h->slot);
    if (!h->slot) return vkm_error(VKM_ENOMEM, "out of memory for a name index of %" PRIu64, cap);
    memset(h->slot, 0xff, cap * sizeof *h->slot);
    h->mask = cap - 1;
    h->used = 0;
    return 0;
}

static int64_t name_index_find(const name_index *h, const char *s, name_fn name, const void *ctx) {
    if (!h->slot) return -1;
    for (uint64_t i = hash_str(s) & h->mask;; i = (i + 1) & h->mask) {
        int64_t r = h->slot[i];
        if (r < 0) return -1;
        if (!strcmp(name(ctx, r), s)) return r;
    }
}

/* Inserts record `r`. Returns -1 when inserted, the index of an existing record with the same
 * name (nothing inserted), or -2 when out of memory (error set). */
static int64_t name_index_insert(name_index *h, int64_t r, name_fn name, const void *ctx) {
    if (!h->slot || (uint64_t)(h->used + 1) * 2 > h->mask + 1) {
        name_index old = *h;
        uint64_t cap = old.slot ? (old.mask + 1) * 2 : 16;
        if (name_index_alloc(h, cap)) {
            *h = old;
            return -2;
        }
        for (uint64_t i = 0; old.slot && i <= old.mask; i++) {
            if (old.slot[i] < 0) continue;
            uint64_t j = hash_str(name(ctx, old.slot[i])) & h->mask;
            while (h->slot[j] >= 0) j = (j + 1) & h->mask;
            h->slot[j] = old.slot[i];
            h->used++;
        }
        free(old.slot);
    }
    const char *s = name(ctx, r);
    uint64_t i = hash_str(s) & h->mask;
    for (; h->slot[i] >= 0; i = (i + 1) & h->mask)
        if (!strcmp(name(ctx, h->slot[i]), s)) return h->slot[i];
    h->slot[i] = r;
    h->used++;
    return -1;
}

/* ---------------------------------------------------------------------------------------------
 * Data structures */

typedef struct gguf_kv {
    char *key;          /* NUL-terminated copy */
    uint32_t type;      /* enum vkm_gguf_type */
    uint32_t arr_type;  /* element type when type == ARRAY */
    uint64_t count;     /* array elements; 1 for scalars */
    const uint8_t *raw; /* scalar or numeric array bytes, in the mapping */
    char **strs;        /* STRING (1 entry) or string array (count entries); one allocation */
    uint64_t *lens;     /* byte lengths of strs, inside the same allocation */
} gguf_kv;

typedef struct gguf_part {
    char *path;
    int fd;
    uint8_t *map; /* size bytes, PROT_READ; NULL when size == 0 */
    uint64_t size;
    uint32_t version;
    uint32_t alignment;
    int64_t n_kv;
    gguf_kv *kvs; /* n_kv */
    name_index kv_index;
} gguf_part;

struct vkm_gguf {
    int n_parts;
    gguf_part *parts;                     /* n_parts */
    int64_t n_tensors;                    /* over all parts */
    vkm_gguf_tensor *tensors;             /* n_tensors */
    char (*names)[VKM_GGUF_MAX_NAME + 1]; /* n_tensors; tensors[i].name points here */
    name_index tensor_index;
    bool header_only;    /* vkm_gguf_open_header: tensor data past the end is allowed */
    char truncated[320]; /* what is missing then; "" when complete */
    int64_t n_missing;   /* tensors whose data is not (wholly) in the file */
};

static const uint8_t g_type_size[VKM_GGUF_TYPE_COUNT] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};

static const char *kv_name(const void *ctx, int64_t i) {
    return ((const gguf_part *)ctx)->kvs[i].key;
}

static const char *tensor_name(const void *ctx, int64_t i) {
    return ((const vkm_gguf *)ctx)->names[i];
}

const char *vkm_gguf_type_name(uint32_t type) {
    static const char *const names[VKM_GGUF_TYPE_COUNT] = {
        "UINT8", "INT8",   "UINT16", "INT16",  "UINT32", "INT32",  "FLOAT32",
        "BOOL",  "STRING", "ARRAY",  "UINT64", "INT64",  "FLOAT64"};
    return type < VKM_GGUF_TYPE_COUNT ? names[type] : "unknown";
}

/* ---------------------------------------------------------------------------------------------
 * Bounds-checked cursor over one mapped file */

typedef struct reader {
    const uint8_t *p;
    uint64_t size;
    uint64_t pos;
    const char *path;
} reader;

static uint64_t left(const reader *r) {
    return r->size - r->pos;
}

__attribute__((format(printf, 3, 4))) static int fail_at(const reader *r, uint64_t at,
                                                         const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return vkm_error(VKM_EFORMAT, "%s: %s (at byte %" PRIu64 ")", r->path, msg, at);
}

static int rd(reader *r, void *dst, uint64_t n, const char *what) {
    if (n > left(r))
        return fail_at(r, r->pos, "truncated file: %s needs %" PRIu64 " bytes, %" PRIu64 " left",
                       what, n, left(r));
    memcpy(dst, r->p + r->pos, n);
    r->pos += n;
    return 0;
}

static int rd_u32(reader *r, uint32_t *v, const char *what) {
    return rd(r, v, 4, what);
}
static int rd_u64(reader *r, uint64_t *v, const char *what) {
    return rd(r, v, 8, what);
}

/* Reads a gguf string length and checks the bytes are present. */
static int rd_strlen(reader *r, uint64_t *len, const char *what) {
    uint64_t at = r->pos;
    int rc = rd_u64(r, len, what);
    if (rc) return rc;
    if (*len > left(r))
        return fail_at(r, at, "%s length %" PRIu64 " exceeds the %" PRIu64 " bytes left", what,
                       *len, left(r));
    return 0;
}

static bool align_up(uint64_t x, uint64_t a, uint64_t *out) {
    if (x > UINT64_MAX - (a - 1)) return false;
    *out = (x + a - 1) & ~(a - 1);
    return true;
}

/* ---------------------------------------------------------------------------------------------
 * KV records */

/* Reads `count` strings into one allocation (pointer table, lengths, NUL-terminated bytes). */
static int read_strings(reader *r, gguf_kv *kv, uint64_t count, const char *key) {
    /* Each string takes >= 8 bytes, so count is bounded by the bytes left. */
    if (count > left(r) / 8)
        return fail_at(r, r->pos,
                       "key '%.64s': %" PRIu64 " strings cannot fit in %" PRIu64 " bytes", key,
                       count, left(r));
    uint64_t start = r->pos, chars = 0;
    for (uint64_t i = 0; i < count; i++) {
        uint64_t len = 0;
        int rc = rd_strlen(r, &len, "string");
        if (rc) return rc;
        r->pos += len;
        chars += len + 1; /* bounded by the file size */
    }
    uint64_t table = count * (sizeof(char *) + sizeof(uint64_t));
    char *block = malloc(table + chars ? table + chars : 1);
    if (!block) return vkm_error(VKM_ENOMEM, "%s: out of memory for key '%.64s'", r->path, key);
    kv->strs = (char **)block;
    kv->lens = (uint64_t *)(block + count * sizeof(char *));
    char *dst = block + table;
    r->pos = start;
    for (uint64_t i = 0; i < count; i++) {
        uint64_t len = 0;
        memcpy(&len, r->p + r->pos, 8);
        r->pos += 8;
        memcpy(dst, r->p + r->pos, len);
        dst[len] = 0;
        r->pos += len;
        kv->strs[i] = dst;
        kv->lens[i] = len;
        dst += len + 1;
    }
    return 0;
}

static int check_bools(reader *r, const uint8_t *b, uint64_t n, const char *key) {
    for (uint64_t i = 0; i < n; i++)
        if (b[i] > 1)
            return fail_at(r, (uint64_t)(b + i - r->p), "key '%.64s': bool value %u is not 0 or 1",
                           key, b[i]);
    return 0;
}

static int read_kv(reader *r, gguf_kv *kv) {
    uint64_t at = r->pos, len = 0;
    int rc = rd_strlen(r, &len, "key");
    if (rc) return rc;
    if (len == 0) return fail_at(r, at, "empty key");
    kv->key = malloc(len + 1);
    if (!kv->key) return vkm_error(VKM_ENOMEM, "%s: out of memory", r->path);
    memcpy(kv->key, r->p + r->pos, len);
    kv->key[len] = 0;
    r->pos += len;
    const char *key = kv->key;
    if (strlen(key) != len) return fail_at(r, at, "key contains a NUL byte");

    uint64_t type_at = r->pos;
    if ((rc = rd_u32(r, &kv->type, "value type"))) return rc;
    if (kv->type >= VKM_GGUF_TYPE_COUNT)
        return fail_at(r, type_at, "key '%.64s': unknown value type %u", key, kv->type);
    kv->count = 1;
    if (kv->type == VKM_GGUF_STRING) return read_strings(r, kv, 1, key);
    if (kv->type != VKM_GGUF_ARRAY) {
        uint64_t sz = g_type_size[kv->type];
        if (sz > left(r)) return fail_at(r, r->pos, "truncated file: value of key '%.64s'", key);
        kv->raw = r->p + r->pos;
        r->pos += sz;
        return kv->type == VKM_GGUF_BOOL ? check_bools(r, kv->raw, 1, key) : 0;
    }
    if ((rc = rd_u32(r, &kv->arr_type, "array type"))) return rc;
    if (kv->arr_type == VKM_GGUF_ARRAY)
        return fail_at(r, type_at + 4, "key '%.64s': nested arrays are not allowed", key);
    if (kv->arr_type >= VKM_GGUF_TYPE_COUNT)
        return fail_at(r, type_at + 4, "key '%.64s': unknown array element type %u", key,
                       kv->arr_type);
    uint64_t count_at = r->pos;
    if ((rc = rd_u64(r, &kv->count, "array count"))) return rc;
    if (kv->arr_type == VKM_GGUF_STRING) return read_strings(r, kv, kv->count, key);
    uint64_t esz = g_type_size[kv->arr_type];
    if (kv->count > left(r) / esz)
        return fail_at(r, count_at,
                       "key '%.64s': array of %" PRIu64 " %s exceeds the %" PRIu64 " bytes left",
                       key, kv->count, vkm_gguf_type_name(kv->arr_type), left(r));
    kv->raw = r->p + r->pos;
    r->pos += kv->count * esz;
    return kv->arr_type == VKM_GGUF_BOOL ? check_bools(r, kv->raw, kv->count, key) : 0;
}

/* ---------------------------------------------------------------------------------------------
 * Internal typed lookups on one part (used for split checks and by the public getters) */

static int64_t part_find(const gguf_part *p, const char *key) {
    return name_index_find(&p->kv_index, key, kv_name, p);
}

static int wrong_type(const gguf_part *p, const gguf_kv *kv, uint32_t want) {
    if (kv->type == VKM_GGUF_ARRAY)
        return vkm_error(VKM_EFORMAT, "%s: key %s has wrong type ARRAY of %s, expected %s", p->path,
                         kv->key, vkm_gguf_type_name(kv->arr_type), vkm_gguf_type_name(want));
    return vkm_error(VKM_EFORMAT, "%s: key %s has wrong type %s, expected %s", p->path, kv->key,
                     vkm_gguf_type_name(kv->type), vkm_gguf_type_name(want));
}

/* Finds `key` of scalar type `type`: 0 and *kv set, 1 if absent, or an error. */
static int part_scalar(const gguf_part *p, const char *key, uint32_t type, const gguf_kv **kv) {
    int64_t i = part_find(p, key);
    if (i < 0) return 1;
    *kv = &p->kvs[i];
    return (*kv)->type == type ? 0 : wrong_type(p, *kv, type);
}

/* float -> int64 saturating (NaN -> 0): a plain cast of an out-of-range value is undefined. */
static int64_t sat_i64(double v) {
    if (v != v) return 0;
    if (v >= 9223372036854775808.0) return INT64_MAX;
    if (v < -9223372036854775808.0) return INT64_MIN;
    return (int64_t)v;
}

static int64_t int_value(uint32_t type, const uint8_t *b) {
    switch (type) {
    case VKM_GGUF_UINT8:
        return b[0];
    case VKM_GGUF_INT8:
        return (int8_t)b[0];
    case VKM_GGUF_BOOL:
        return b[0];
    case VKM_GGUF_UINT16: {
        uint16_t v;
        memcpy(&v, b, 2);
        return v;
    }
    case VKM_GGUF_INT16: {
        int16_t v;
        memcpy(&v, b, 2);
        return v;
    }
    case VKM_GGUF_UINT32: {
        uint32_t v;
        memcpy(&v, b, 4);
        return v;
    }
    case VKM_GGUF_INT32: {
        int32_t v;
        memcpy(&v, b, 4);
        return v;
    }
    case VKM_GGUF_UINT64: {
        uint64_t v;
        memcpy(&v, b, 8);
        return (int64_t)v;
    }
    case VKM_GGUF_INT64: {
        int64_t v;
        memcpy(&v, b, 8);
        return v;
    }
    case VKM_GGUF_FLOAT32: {
        float v;
        memcpy(&v, b, 4);
        return sat_i64(v);
    }
    case VKM_GGUF_FLOAT64: {
        double v;
        memcpy(&v, b, 8);
        return sat_i64(v);
    }
    default:
        return 0;
    }
}

static double float_value(uint32_t type, const uint8_t *b) {
    if (type == VKM_GGUF_FLOAT32) {
        float v;
        memcpy(&v, b, 4);
        return v;
    }
    if (type == VKM_GGUF_FLOAT64) {
        double v;
        memcpy(&v, b, 8);
        return v;
    }
    if (type == VKM_GGUF_UINT64) {
        uint64_t v;
        memcpy(&v, b, 8);
        return (double)v;
    }
    return (double)int_value(type, b);
}

/* Any integer type holding a value >= 0: 0 ok, 1 absent, or an error. */
static int part_uint(const gguf_part *p, const char *key, uint64_t *out) {
    int64_t i = part_find(p, key);
    if (i < 0) return 1;
    const gguf_kv *kv = &p->kvs[i];
    switch (kv->type) {
    case VKM_GGUF_UINT8:
    case VKM_GGUF_UINT16:
    case VKM_GGUF_UINT32:
        *out = (uint64_t)int_value(kv->type, kv->raw);
        return 0;
    case VKM_GGUF_UINT64:
        memcpy(out, kv->raw, 8);
        return 0;
    case VKM_GGUF_INT8:
    case VKM_GGUF_INT16:
    case VKM_GGUF_INT32:
    case VKM_GGUF_INT64: {
        int64_t v = int_value(kv->type, kv->raw);
        if (v < 0)
            return vkm_error(VKM_EFORMAT, "%s: key %s is negative (%" PRId64 ")", p->path, key, v);
        *out = (uint64_t)v;
        return 0;
    }
    default:
        return vkm_error(VKM_EFORMAT, "%s: key %s has wrong type %s, expected an unsigned integer",
                         p->path, key, vkm_gguf_type_name(kv->type));
    }
}

/* ---------------------------------------------------------------------------------------------
 * One file: open, map, parse header + KVs + tensor infos; tensors are appended to g */

static int map_part(gguf_part *p) {
    p->fd = open(p->path, O_RDONLY | O_CLOEXEC);
    if (p->fd < 0) return vkm_error(VKM_EIO, "%s: cannot open: %s", p->path, strerror(errno));
    struct stat st;
    if (fstat(p->fd, &st)) return vkm_error(VKM_EIO, "%s: stat: %s", p->path, strerror(errno));
    if (!S_ISREG(st.st_mode)) return vkm_error(VKM_EIO, "%s: not a regular file", p->path);
    p->size = (uint64_t)st.st_size;
    if (p->size == 0) return 0;
    if (p->size > SIZE_MAX) return vkm_error(VKM_EIO, "%s: file too large to map", p->path);
    void *m = mmap(NULL, (size_t)p->size, PROT_READ, MAP_PRIVATE, p->fd, 0);
    if (m == MAP_FAILED) return vkm_error(VKM_EIO, "%s: mmap: %s", p->path, strerror(errno));
    p->map = m;
    return 0;
}

static int grow_tensors(vkm_gguf *g, int64_t extra) {
    int64_t n = g->n_tensors + extra;
    if (extra == 0) return 0;
    vkm_gguf_tensor *t = realloc(g->tensors, (size_t)n * sizeof *t);
    if (!t) return vkm_error(VKM_ENOMEM, "out of memory for %" PRId64 " tensors", n);
    g->tensors = t;
    char(*names)[VKM_GGUF_MAX_NAME + 1] = realloc(g->names, (size_t)n * sizeof *names);
    if (!names) return vkm_error(VKM_ENOMEM, "out of memory for %" PRId64 " tensors", n);
    g->names = names;
    return 0;
}

static int read_tensor_info(reader *r, vkm_gguf *g, int part, uint32_t alignment,
                            uint64_t *expect_offset) {
    int64_t idx = g->n_tensors;
    vkm_gguf_tensor *t = &g->tensors[idx];
    char *name = g->names[idx];
    memset(t, 0, sizeof *t);
    uint64_t at = r->pos, len = 0;
    int rc = rd_strlen(r, &len, "tensor name");
    if (rc) return rc;
    if (len == 0) return fail_at(r, at, "empty tensor name");
    if (len > VKM_GGUF_MAX_NAME)
        return fail_at(r, at, "tensor name of %" PRIu64 " bytes is longer than %d", len,
                       VKM_GGUF_MAX_NAME);
    memcpy(name, r->p + r->pos, len);
    name[len] = 0;
    r->pos += len;
    if (strlen(name) != len) return fail_at(r, at, "tensor name contains a NUL byte");
    t->name = name;
    t->file = part;

    uint64_t dims_at = r->pos;
    if ((rc = rd_u32(r, &t->n_dims, "n_dims"))) return rc;
    if (t->n_dims < 1 || t->n_dims > VKM_GGUF_MAX_DIMS)
        return fail_at(r, dims_at, "tensor '%s': n_dims %u is not in 1..4", name, t->n_dims);
    for (int j = 0; j < 4; j++) t->ne[j] = 1;
    int64_t nelem = 1;
    for (uint32_t j = 0; j < t->n_dims; j++) {
        uint64_t ne_at = r->pos;
        if ((rc = rd(r, &t->ne[j], 8, "dimension"))) return rc;
        if (t->ne[j] < 0)
            return fail_at(r, ne_at, "tensor '%s': dimension %u is negative (%" PRId64 ")", name, j,
                           t->ne[j]);
        if (__builtin_mul_overflow(nelem, t->ne[j], &nelem))
            return fail_at(r, ne_at, "tensor '%s': element count overflows", name);
    }
    uint64_t type_at = r->pos;
    if ((rc = rd_u32(r, &t->type, "tensor type"))) return rc;
    const vkm_qtype_info *qt = vkm_qtype_get(t->type);
    if (!qt) return fail_at(r, type_at, "tensor '%s': unknown ggml type id %u", name, t->type);
    if (t->ne[0] % qt->block)
        return fail_at(r, type_at,
                       "tensor '%s': ne0 = %" PRId64 " is not a multiple of the %s block size %u",
                       name, t->ne[0], qt->name, qt->block);
    uint64_t nb = (uint64_t)(t->ne[0] / qt->block) * qt->bytes; /* ne0 < 2^63, bytes < 2^9 */
    bool ovf = false;
    for (int j = 1; j < 4; j++) ovf |= __builtin_mul_overflow(nb, (uint64_t)t->ne[j], &nb);
    if (ovf || nb > (uint64_t)INT64_MAX)
        return fail_at(r, type_at, "tensor '%s': byte size overflows", name);
    t->nbytes = nb;

    uint64_t off_at = r->pos, off = 0;
    if ((rc = rd_u64(r, &off, "tensor offset"))) return rc;
    if (off != *expect_offset)
        return fail_at(r, off_at,
                       "tensor '%s': data offset %" PRIu64 ", expected %" PRIu64
                       " (tensors must be stored in order, each padded to %u bytes)",
                       name, off, *expect_offset, alignment);
    t->file_offset = off; /* made absolute once the data section start is known */
    uint64_t padded;
    if (!align_up(nb, alignment, &padded) || __builtin_add_overflow(off, padded, expect_offset))
        return fail_at(r, off_at, "tensor '%s': data offset overflows", name);

    int64_t dup = name_index_insert(&g->tensor_index, idx, tensor_name, g);
    if (dup == -2) return VKM_ENOMEM;
    g->n_tensors++;
    if (dup >= 0) return fail_at(r, at, "duplicate tensor name '%s'", name);
    return 0;
}

static int parse_part(vkm_gguf *g, int part) {
    gguf_part *p = &g->parts[part];
    int rc = map_part(p);
    if (rc) return rc;
    reader r = {p->map, p->size, 0, p->path};
    if (p->size < 24)
        return fail_at(&r, 0, "file too short for a GGUF header (%" PRIu64 " bytes)", p->size);
    if (memcmp(p->map, "GGUF", 4)) return fail_at(&r, 0, "bad magic, not a GGUF file");
    r.pos = 4;
    rd_u32(&r, &p->version, "version");
    if (p->version != 0 && (p->version & 0xffff) == 0)
        return fail_at(&r, 4, "version 0x%08x: file has the wrong endianness", p->version);
    if (p->version < 2 || p->version > 3)
        return fail_at(&r, 4, "unsupported GGUF version %u (expected 2 or 3)", p->version);
    int64_t n_tensors, n_kv;
    rd(&r, &n_tensors, 8, "n_tensors");
    rd(&r, &n_kv, 8, "n_kv");
    /* Minimum record sizes: a KV takes >= 8+1+4+1 bytes, a tensor info >= 8+1+4+8+4+8. */
    if (n_kv < 0 || (uint64_t)n_kv > left(&r) / 14)
        return fail_at(&r, 16, "n_kv %" PRId64 " impossible with %" PRIu64 " bytes left", n_kv,
                       left(&r));
    if (n_tensors < 0 || (uint64_t)n_tensors > left(&r) / 33)
        return fail_at(&r, 8, "n_tensors %" PRId64 " impossible with %" PRIu64 " bytes left",
                       n_tensors, left(&r));

    p->kvs = calloc(n_kv ? (size_t)n_kv : 1, sizeof *p->kvs);
    if (!p->kvs)
        return vkm_error(VKM_ENOMEM, "%s: out of memory for %" PRId64 " KVs", p->path, n_kv);
    for (int64_t i = 0; i < n_kv; i++) {
        uint64_t at = r.pos;
        p->n_kv = i + 1; /* so close() frees this record even if it fails half-way */
        if ((rc = read_kv(&r, &p->kvs[i]))) return rc;
        int64_t dup = name_index_insert(&p->kv_index, i, kv_name, p);
        if (dup == -2) return VKM_ENOMEM;
        if (dup >= 0) return fail_at(&r, at, "duplicate key '%.64s'", p->kvs[i].key);
    }

    p->alignment = VKM_GGUF_DEFAULT_ALIGNMENT;
    const gguf_kv *akv;
    rc = part_scalar(p, "general.alignment", VKM_GGUF_UINT32, &akv);
    if (rc < 0) return rc;
    if (rc == 0) {
        memcpy(&p->alignment, akv->raw, 4);
        if (p->alignment == 0 || (p->alignment & (p->alignment - 1)))
            return fail_at(&r, (uint64_t)(akv->raw - p->map),
                           "general.alignment %u is not a power of two", p->alignment);
    }

    if (n_tensors > 0 && (uint64_t)n_tensors > left(&r) / 33)
        return fail_at(&r, r.pos, "n_tensors %" PRId64 " impossible with %" PRIu64 " bytes left",
                       n_tensors, left(&r));
    if ((rc = grow_tensors(g, n_tensors))) return rc;
    int64_t first = g->n_tensors;
    uint64_t expect = 0;
    for (int64_t i = 0; i < n_tensors; i++)
        if ((rc = read_tensor_info(&r, g, part, p->alignment, &expect))) return rc;

    uint64_t data_start;
    if (!align_up(r.pos, p->alignment, &data_start))
        return fail_at(&r, r.pos, "data section start overflows");
    const bool short_data =
        n_tensors > 0 && (data_start > p->size || expect > p->size - data_start);
    if (short_data && !g->header_only)
        return vkm_error(VKM_EFORMAT,
                         "%s: truncated file: tensor data needs %" PRIu64
                         " bytes from byte %" PRIu64 " but the file has %" PRIu64 " bytes",
                         p->path, expect, data_start, p->size);
    for (int64_t i = first; i < g->n_tensors; i++) {
        vkm_gguf_tensor *t = &g->tensors[i];
        t->file_offset += data_start;
        const bool in_file = t->file_offset <= p->size && t->nbytes <= p->size - t->file_offset;
        t->data = in_file ? p->map + t->file_offset : NULL;
        g->n_missing += !in_file;
    }
    if (short_data && !g->truncated[0])
        snprintf(g->truncated, sizeof g->truncated,
                 "%s: truncated file: tensor data needs %" PRIu64 " bytes from byte %" PRIu64
                 " but the file has %" PRIu64 " bytes",
                 p->path, expect, data_start, p->size);
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Split models */

/* Recognises "PREFIX-NNNNN-of-MMMMM.gguf". */
static bool split_name(const char *path, size_t *prefix_len, int *no, int *count) {
    static const char pat[] = "-#####-of-#####.gguf";
    size_t n = strlen(path), m = sizeof pat - 1;
    if (n < m) return false;
    const char *s = path + n - m;
    for (size_t i = 0; i < m; i++) {
        if (pat[i] == '#' ? (s[i] < '0' || s[i] > '9') : s[i] != pat[i]) return false;
    }
    *prefix_len = n - m;
    *no = atoi(s + 1);
    *count = atoi(s + 10);
    return true;
}

static int add_part(vkm_gguf *g, const char *path) {
    gguf_part *parts = realloc(g->parts, (size_t)(g->n_parts + 1) * sizeof *parts);
    if (!parts) return vkm_error(VKM_ENOMEM, "out of memory");
    g->parts = parts;
    gguf_part *p = &parts[g->n_parts];
    memset(p, 0, sizeof *p);
    p->fd = -1;
    g->n_parts++;
    p->path = strdup(path);
    if (!p->path) return vkm_error(VKM_ENOMEM, "out of memory");
    return parse_part(g, g->n_parts - 1);
}

/* Opens parts 2..N when `path` (already parsed as part 0) is the first part of a split model.
 * Note: add_part() reallocates g->parts, so part pointers are not kept across it. */
static int open_split(vkm_gguf *g, const char *path) {
    const gguf_part *p0 = &g->parts[0];
    size_t plen = 0;
    int no = 0, count = 0;
    bool named = split_name(path, &plen, &no, &count);
    uint64_t kv_count = 0;
    int rc = part_uint(p0, "split.count", &kv_count);
    if (rc < 0) return rc;
    bool has_count = rc == 0;
    if (!(named && count > 1) && !(has_count && kv_count > 1)) return 0; /* a single file */
    if (!named)
        return vkm_error(VKM_EFORMAT,
                         "%s: split.count is %" PRIu64
                         " but the name does not end in -00001-of-%05" PRIu64 ".gguf",
                         path, kv_count, kv_count);
    if (no != 1)
        return vkm_error(VKM_EFORMAT, "%s: is part %d of %d of a split model; open part 00001",
                         path, no, count);
    if (!has_count || kv_count != (uint64_t)count)
        return vkm_error(VKM_EFORMAT,
                         "%s: split.count %s%" PRIu64 " does not match the name (%d parts)", path,
                         has_count ? "" : "(missing) ", kv_count, count);
    uint64_t split_no;
    if ((rc = part_uint(p0, "split.no", &split_no)) < 0) return rc;
    if (rc == 1 || split_no != 0)
        return vkm_error(VKM_EFORMAT, "%s: split.no must be 0 in the first part", path);

    char *buf = malloc(plen + 32);
    if (!buf) return vkm_error(VKM_ENOMEM, "out of memory");
    for (int k = 2; k <= count && !rc; k++) {
        snprintf(buf, plen + 32, "%.*s-%05d-of-%05d.gguf", (int)plen, path, k, count);
        if ((rc = add_part(g, buf))) {
            char why[768];
            snprintf(why, sizeof why, "%s", vkm_errmsg());
            rc = vkm_error(rc, "%s: split part %d of %d: %s", path, k, count, why);
            break;
        }
        const gguf_part *pk = &g->parts[k - 1];
        uint64_t c = 0, n = 0;
        int rc1 = part_uint(pk, "split.count", &c), rc2 = part_uint(pk, "split.no", &n);
        if (rc1 < 0 || rc2 < 0)
            rc = rc1 < 0 ? rc1 : rc2;
        else if (rc1 || rc2 || c != (uint64_t)count || n != (uint64_t)(k - 1))
            rc = vkm_error(VKM_EFORMAT,
                           "%s: inconsistent split part: split.count/split.no should be %d/%d", buf,
                           count, k - 1);
    }
    free(buf);
    if (rc) return rc;
    uint64_t total;
    if ((rc = part_uint(&g->parts[0], "split.tensors.count", &total)) < 0) return rc;
    if (rc == 0 && total != (uint64_t)g->n_tensors)
        return vkm_error(VKM_EFORMAT,
                         "%s: split.tensors.count is %" PRIu64 " but the parts hold %" PRId64
                         " tensors",
                         path, total, g->n_tensors);
    return 0;
}

static int open_gguf(const char *path, bool header_only, vkm_gguf **out) {
    *out = NULL;
    vkm_gguf *g = calloc(1, sizeof *g);
    if (!g) return vkm_error(VKM_ENOMEM, "out of memory");
    g->header_only = header_only;
    int rc = add_part(g, path);
    if (!rc) rc = open_split(g, path);
    for (int64_t i = 0; i < g->n_tensors; i++)
        g->tensors[i].name = g->names[i]; /* after reallocs */
    if (rc) {
        vkm_gguf_close(g);
        return rc;
    }
    *out = g;
    return 0;
}

int vkm_gguf_open(const char *path, vkm_gguf **out) {
    return open_gguf(path, false, out);
}

int vkm_gguf_open_header(const char *path, vkm_gguf **out) {
    return open_gguf(path, true, out);
}

const char *vkm_gguf_truncated(const vkm_gguf *g, int64_t *n_missing) {
    if (n_missing) *n_missing = g->n_missing;
    return g->truncated[0] ? g->truncated : NULL;
}

void vkm_gguf_close(vkm_gguf *g) {
    if (!g) return;
    for (int i = 0; i < g->n_parts; i++) {
        gguf_part *p = &g->parts[i];
        for (int64_t k = 0; k < p->n_kv; k++) {
            free(p->kvs[k].key);
            free(p->kvs[k].strs);
        }
        free(p->kvs);
        free(p->kv_index.slot);
        if (p->map) munmap(p->map, (size_t)p->size);
        if (p->fd >= 0) close(p->fd);
        free(p->path);
    }
    free(g->parts);
    free(g->tensors);
    free(g->names);
    free(g->tensor_index.slot);
    free(g);
}

/* ---------------------------------------------------------------------------------------------
 * Public accessors */

uint32_t vkm_gguf_version(const vkm_gguf *g) {
    return g->parts[0].version;
}
uint32_t vkm_gguf_alignment(const vkm_gguf *g) {
    return g->parts[0].alignment;
}
int vkm_gguf_n_files(const vkm_gguf *g) {
    return g->n_parts;
}

const char *vkm_gguf_file_path(const vkm_gguf *g, int file) {
    VKM_ASSERT(file >= 0 && file < g->n_parts);
    return g->parts[file].path;
}

uint64_t vkm_gguf_file_size(const vkm_gguf *g, int file) {
    VKM_ASSERT(file >= 0 && file < g->n_parts);
    return g->parts[file].size;
}

int vkm_gguf_file_fd(const vkm_gguf *g, int file) {
    VKM_ASSERT(file >= 0 && file < g->n_parts);
    return g->parts[file].fd;
}

uint64_t vkm_gguf_total_bytes(const vkm_gguf *g) {
    uint64_t s = 0;
    for (int i = 0; i < g->n_parts; i++) s += g->parts[i].size;
    return s;
}

int64_t vkm_gguf_n_kv(const vkm_gguf *g) {
    return g->parts[0].n_kv;
}

static const gguf_kv *kv_at(const vkm_gguf *g, int64_t kv) {
    VKM_ASSERT(kv >= 0 && kv < g->parts[0].n_kv);
    return &g->parts[0].kvs[kv];
}

const char *vkm_gguf_key(const vkm_gguf *g, int64_t kv) {
    return kv_at(g, kv)->key;
}
uint32_t vkm_gguf_kv_type(const vkm_gguf *g, int64_t kv) {
    return kv_at(g, kv)->type;
}

const void *vkm_gguf_kv_data(const vkm_gguf *g, int64_t kv) {
    const gguf_kv *k = kv_at(g, kv);
    return k->type == VKM_GGUF_STRING || k->type == VKM_GGUF_ARRAY ? NULL : k->raw;
}
int64_t vkm_gguf_find_key(const vkm_gguf *g, const char *key) {
    return part_find(&g->parts[0], key);
}

static int get_scalar(const vkm_gguf *g, const char *key, uint32_t type, void *out, size_t n) {
    const gguf_kv *kv;
    int rc = part_scalar(&g->parts[0], key, type, &kv);
    if (rc == 1) return vkm_error(VKM_EFORMAT, "%s: missing key %s", g->parts[0].path, key);
    if (rc) return rc;
    memcpy(out, kv->raw, n);
    return 0;
}

int vkm_gguf_get_u32(const vkm_gguf *g, const char *key, uint32_t *out) {
    return get_scalar(g, key, VKM_GGUF_UINT32, out, 4);
}
int vkm_gguf_get_i32(const vkm_gguf *g, const char *key, int32_t *out) {
    return get_scalar(g, key, VKM_GGUF_INT32, out, 4);
}
int vkm_gguf_get_u64(const vkm_gguf *g, const char *key, uint64_t *out) {
    return get_scalar(g, key, VKM_GGUF_UINT64, out, 8);
}
int vkm_gguf_get_f32(const vkm_gguf *g, const char *key, float *out) {
    return get_scalar(g, key, VKM_GGUF_FLOAT32, out, 4);
}
int vkm_gguf_get_bool(const vkm_gguf *g, const char *key, bool *out) {
    uint8_t b = 0;
    int rc = get_scalar(g, key, VKM_GGUF_BOOL, &b, 1);
    if (!rc) *out = b != 0;
    return rc;
}

int vkm_gguf_get_str(const vkm_gguf *g, const char *key, const char **out, uint64_t *len) {
    const gguf_kv *kv;
    int rc = part_scalar(&g->parts[0], key, VKM_GGUF_STRING, &kv);
    if (rc == 1) return vkm_error(VKM_EFORMAT, "%s: missing key %s", g->parts[0].path, key);
    if (rc) return rc;
    *out = kv->strs[0];
    if (len) *len = kv->lens[0];
    return 0;
}

#define GET_OR(NAME, T, CALL)                                                                      \
    int vkm_gguf_get_##NAME##_or(const vkm_gguf *g, const char *key, T def, T *out) {              \
        if (part_find(&g->parts[0], key) < 0) {                                                    \
            *out = def;                                                                            \
            return 0;                                                                              \
        }                                                                                          \
        return CALL(g, key, out);                                                                  \
    }
GET_OR(u32, uint32_t, vkm_gguf_get_u32)
GET_OR(i32, int32_t, vkm_gguf_get_i32)
GET_OR(u64, uint64_t, vkm_gguf_get_u64)
GET_OR(f32, float, vkm_gguf_get_f32)
GET_OR(bool, bool, vkm_gguf_get_bool)
#undef GET_OR

int vkm_gguf_get_str_or(const vkm_gguf *g, const char *key, const char *def, const char **out) {
    if (part_find(&g->parts[0], key) < 0) {
        *out = def;
        return 0;
    }
    return vkm_gguf_get_str(g, key, out, NULL);
}

int vkm_gguf_get_uint(const vkm_gguf *g, const char *key, uint64_t *out) {
    int rc = part_uint(&g->parts[0], key, out);
    if (rc == 1) return vkm_error(VKM_EFORMAT, "%s: missing key %s", g->parts[0].path, key);
    return rc;
}

int vkm_gguf_get_arr(const vkm_gguf *g, const char *key, uint32_t elem_type, int64_t *kv,
                     uint64_t *count) {
    const gguf_part *p = &g->parts[0];
    int64_t i = part_find(p, key);
    if (i < 0) return vkm_error(VKM_EFORMAT, "%s: missing key %s", p->path, key);
    const gguf_kv *k = &p->kvs[i];
    if (k->type != VKM_GGUF_ARRAY)
        return vkm_error(VKM_EFORMAT, "%s: key %s has wrong type %s, expected ARRAY of %s", p->path,
                         key, vkm_gguf_type_name(k->type), vkm_gguf_type_name(elem_type));
    if (k->arr_type != elem_type)
        return vkm_error(VKM_EFORMAT, "%s: key %s has wrong type ARRAY of %s, expected ARRAY of %s",
                         p->path, key, vkm_gguf_type_name(k->arr_type),
                         vkm_gguf_type_name(elem_type));
    *kv = i;
    if (count) *count = k->count;
    return 0;
}

uint32_t vkm_gguf_arr_type(const vkm_gguf *g, int64_t kv) {
    const gguf_kv *k = kv_at(g, kv);
    VKM_ASSERT(k->type == VKM_GGUF_ARRAY);
    return k->arr_type;
}

uint64_t vkm_gguf_arr_count(const vkm_gguf *g, int64_t kv) {
    const gguf_kv *k = kv_at(g, kv);
    VKM_ASSERT(k->type == VKM_GGUF_ARRAY);
    return k->count;
}

const void *vkm_gguf_arr_data(const vkm_gguf *g, int64_t kv) {
    const gguf_kv *k = kv_at(g, kv);
    VKM_ASSERT(k->type == VKM_GGUF_ARRAY);
    return k->arr_type == VKM_GGUF_STRING ? NULL : k->raw;
}

static const uint8_t *arr_elem(const vkm_gguf *g, int64_t kv, uint64_t i, int want) {
    const gguf_kv *k = kv_at(g, kv);
    VKM_ASSERT(k->type == VKM_GGUF_ARRAY && i < k->count);
    VKM_ASSERT(want < 0 ? k->arr_type != VKM_GGUF_STRING : k->arr_type == (uint32_t)want);
    return k->raw + i * g_type_size[k->arr_type];
}

uint32_t vkm_gguf_arr_u32(const vkm_gguf *g, int64_t kv, uint64_t i) {
    uint32_t v;
    memcpy(&v, arr_elem(g, kv, i, VKM_GGUF_UINT32), 4);
    return v;
}

int32_t vkm_gguf_arr_i32(const vkm_gguf *g, int64_t kv, uint64_t i) {
    int32_t v;
    memcpy(&v, arr_elem(g, kv, i, VKM_GGUF_INT32), 4);
    return v;
}

float vkm_gguf_arr_f32(const vkm_gguf *g, int64_t kv, uint64_t i) {
    float v;
    memcpy(&v, arr_elem(g, kv, i, VKM_GGUF_FLOAT32), 4);
    return v;
}

int64_t vkm_gguf_arr_i64(const vkm_gguf *g, int64_t kv, uint64_t i) {
    return int_value(kv_at(g, kv)->arr_type, arr_elem(g, kv, i, -1));
}

double vkm_gguf_arr_f64(const vkm_gguf *g, int64_t kv, uint64_t i) {
    return float_value(kv_at(g, kv)->arr_type, arr_elem(g, kv, i, -1));
}

const char *vkm_gguf_arr_str(const vkm_gguf *g, int64_t kv, uint64_t i, uint64_t *len) {
    const gguf_kv *k = kv_at(g, kv);
    VKM_ASSERT(k->type == VKM_GGUF_ARRAY && k->arr_type == VKM_GGUF_STRING && i < k->count);
    if (len) *len = k->lens[i];
    return k->strs[i];
}

/* ---- rendering for `vkmoe info` ---- */

/* Appends to buf[*pos..n), keeping it NUL-terminated and never overflowing. */
__attribute__((format(printf, 4, 5))) static void put(char *buf, size_t n, size_t *pos,
                                                      const char *fmt, ...) {
    if (*pos + 1 >= n) return;
    va_list ap;
    va_start(ap, fmt);
    int w = vsnprintf(buf + *pos, n - *pos, fmt, ap);
    va_end(ap);
    if (w > 0) *pos = *pos + (size_t)w < n ? *pos + (size_t)w : n - 1;
}

static void put_str(char *buf, size_t n, size_t *pos, const char *s, uint64_t len, size_t max) {
    put(buf, n, pos, "\"");
    for (uint64_t i = 0; i < len && i < max; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\')
            put(buf, n, pos, "\\%c", c);
        else if (c == '\n')
            put(buf, n, pos, "\\n");
        else if (c < 0x20 || c == 0x7f)
            put(buf, n, pos, "\\x%02x", c);
        else
            put(buf, n, pos, "%c", c);
    }
    put(buf, n, pos, len > max ? "\"..." : "\"");
}

static void put_scalar(char *buf, size_t n, size_t *pos, uint32_t type, const uint8_t *b) {
    switch (type) {
    case VKM_GGUF_FLOAT32:
    case VKM_GGUF_FLOAT64:
        put(buf, n, pos, "%g", float_value(type, b));
        break;
    case VKM_GGUF_BOOL:
        put(buf, n, pos, "%s", b[0] ? "true" : "false");
        break;
    case VKM_GGUF_UINT64: {
        uint64_t v;
        memcpy(&v, b, 8);
        put(buf, n, pos, "%" PRIu64, v);
        break;
    }
    default:
        put(buf, n, pos, "%" PRId64, int_value(type, b));
        break;
    }
}

void vkm_gguf_kv_format(const vkm_gguf *g, int64_t kv, char *buf, size_t n) {
    const gguf_kv *k = kv_at(g, kv);
    size_t pos = 0;
    if (n == 0) return;
    buf[0] = 0;
    if (k->type == VKM_GGUF_STRING) {
        put_str(buf, n, &pos, k->strs[0], k->lens[0], 60);
    } else if (k->type != VKM_GGUF_ARRAY) {
        put_scalar(buf, n, &pos, k->type, k->raw);
    } else {
        put(buf, n, &pos, "[%s x %" PRIu64 "]", vkm_gguf_type_name(k->arr_type), k->count);
        uint64_t show = k->count < 5 ? k->count : 5;
        for (uint64_t i = 0; i < show; i++) {
            put(buf, n, &pos, i ? ", " : " ");
            if (k->arr_type == VKM_GGUF_STRING)
                put_str(buf, n, &pos, k->strs[i], k->lens[i], 20);
            else
                put_scalar(buf, n, &pos, k->arr_type, k->raw + i * g_type_size[k->arr_type]);
        }
        if (show < k->count) put(buf, n, &pos, ", ...");
    }
}

/* ---- tensors ---- */

int64_t vkm_gguf_n_tensors(const vkm_gguf *g) {
    return g->n_tensors;
}

const vkm_gguf_tensor *vkm_gguf_tensor_at(const vkm_gguf *g, int64_t i) {
    VKM_ASSERT(i >= 0 && i < g->n_tensors);
    return &g->tensors[i];
}

int64_t vkm_gguf_tensor_index(const vkm_gguf *g, const char *name) {
    return name_index_find(&g->tensor_index, name, tensor_name, g);
}

const vkm_gguf_tensor *vkm_gguf_find_tensor(const vkm_gguf *g, const char *name) {
    int64_t i = vkm_gguf_tensor_index(g, name);
    return i < 0 ? NULL : &g->tensors[i];
}
