/* gguf_write.c - GGUF v3 writer (see gguf_write.h, spec §7).
 *
 * Invariants: every stored KV value is already serialized (type word, then payload) in `blob`,
 * so writing is a copy; keys are unique and non-empty; tensors are validated when added and their
 * byte sizes computed with overflow checks, so the layout computed at write time cannot overflow
 * beyond what the checks in vkm_gguf_w_write() catch. Tensor data is never held by the writer
 * except through the caller's pointer or fill callback. */
#include "gguf_write.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "err.h"
#include "qtype.h"

typedef struct w_kv {
    char *key;
    uint8_t *blob; /* serialized value: u32 type, then the payload exactly as in the file */
    size_t blob_len;
} w_kv;

typedef struct w_tensor {
    char name[VKM_GGUF_MAX_NAME + 1];
    uint32_t n_dims;
    int64_t ne[4]; /* ne[0] innermost */
    uint32_t type;
    uint64_t nbytes;
    const void *data; /* or NULL */
    vkm_gguf_fill_fn fill;
    void *user;
} w_tensor;

struct vkm_gguf_writer {
    w_kv *kvs; /* n_kv */
    int64_t n_kv, cap_kv;
    w_tensor *tensors; /* n_tensors */
    int64_t n_tensors, cap_tensors;
};

static const uint8_t g_size[VKM_GGUF_TYPE_COUNT] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};

int vkm_gguf_writer_create(vkm_gguf_writer **out) {
    *out = calloc(1, sizeof **out);
    return *out ? 0 : vkm_error(VKM_ENOMEM, "out of memory");
}

void vkm_gguf_writer_destroy(vkm_gguf_writer *w) {
    if (!w) return;
    for (int64_t i = 0; i < w->n_kv; i++) {
        free(w->kvs[i].key);
        free(w->kvs[i].blob);
    }
    free(w->kvs);
    free(w->tensors);
    free(w);
}

int64_t vkm_gguf_w_n_kv(const vkm_gguf_writer *w) {
    return w->n_kv;
}
int64_t vkm_gguf_w_n_tensors(const vkm_gguf_writer *w) {
    return w->n_tensors;
}

uint64_t vkm_gguf_w_tensor_nbytes(const vkm_gguf_writer *w, int64_t tensor) {
    VKM_ASSERT(tensor >= 0 && tensor < w->n_tensors);
    return w->tensors[tensor].nbytes;
}

/* ---- KVs ---- */

/* Takes ownership of blob (freed on failure too). */
static int put_kv(vkm_gguf_writer *w, const char *key, uint8_t *blob, size_t len) {
    if (!key || !*key) {
        free(blob);
        return vkm_error(VKM_EINVAL, "gguf writer: empty key");
    }
    for (int64_t i = 0; i < w->n_kv; i++) {
        if (strcmp(w->kvs[i].key, key)) continue;
        free(w->kvs[i].blob);
        w->kvs[i].blob = blob;
        w->kvs[i].blob_len = len;
        return 0;
    }
    if (w->n_kv == w->cap_kv) {
        int64_t cap = w->cap_kv ? w->cap_kv * 2 : 32;
        w_kv *k = realloc(w->kvs, (size_t)cap * sizeof *k);
        if (!k) {
            free(blob);
            return vkm_error(VKM_ENOMEM, "gguf writer: out of memory");
        }
        w->kvs = k;
        w->cap_kv = cap;
    }
    char *kcopy = strdup(key);
    if (!kcopy) {
        free(blob);
        return vkm_error(VKM_ENOMEM, "gguf writer: out of memory");
    }
    w->kvs[w->n_kv++] = (w_kv){kcopy, blob, len};
    return 0;
}

static uint8_t *new_blob(size_t len) {
    uint8_t *b = malloc(len ? len : 1);
    if (!b) vkm_error(VKM_ENOMEM, "gguf writer: out of memory for a %zu-byte value", len);
    return b;
}

static int set_scalar(vkm_gguf_writer *w, const char *key, uint32_t type, const void *v) {
    uint8_t *b = new_blob(4 + g_size[type]);
    if (!b) return VKM_ENOMEM;
    memcpy(b, &type, 4);
    memcpy(b + 4, v, g_size[type]);
    return put_kv(w, key, b, 4 + g_size[type]);
}

int vkm_gguf_w_set_u8(vkm_gguf_writer *w, const char *key, uint8_t v) {
    return set_scalar(w, key, VKM_GGUF_UINT8, &v);
}
int vkm_gguf_w_set_i8(vkm_gguf_writer *w, const char *key, int8_t v) {
    return set_scalar(w, key, VKM_GGUF_INT8, &v);
}
int vkm_gguf_w_set_u16(vkm_gguf_writer *w, const char *key, uint16_t v) {
    return set_scalar(w, key, VKM_GGUF_UINT16, &v);
}
int vkm_gguf_w_set_i16(vkm_gguf_writer *w, const char *key, int16_t v) {
    return set_scalar(w, key, VKM_GGUF_INT16, &v);
}
int vkm_gguf_w_set_u32(vkm_gguf_writer *w, const char *key, uint32_t v) {
    return set_scalar(w, key, VKM_GGUF_UINT32, &v);
}
int vkm_gguf_w_set_i32(vkm_gguf_writer *w, const char *key, int32_t v) {
    return set_scalar(w, key, VKM_GGUF_INT32, &v);
}
int vkm_gguf_w_set_u64(vkm_gguf_writer *w, const char *key, uint64_t v) {
    return set_scalar(w, key, VKM_GGUF_UINT64, &v);
}
int vkm_gguf_w_set_i64(vkm_gguf_writer *w, const char *key, int64_t v) {
    return set_scalar(w, key, VKM_GGUF_INT64, &v);
}
int vkm_gguf_w_set_f32(vkm_gguf_writer *w, const char *key, float v) {
    return set_scalar(w, key, VKM_GGUF_FLOAT32, &v);
}
int vkm_gguf_w_set_f64(vkm_gguf_writer *w, const char *key, double v) {
    return set_scalar(w, key, VKM_GGUF_FLOAT64, &v);
}
int vkm_gguf_w_set_bool(vkm_gguf_writer *w, const char *key, bool v) {
    uint8_t b = v ? 1 : 0;
    return set_scalar(w, key, VKM_GGUF_BOOL, &b);
}

int vkm_gguf_w_set_strn(vkm_gguf_writer *w, const char *key, const char *s, uint64_t len) {
    if (len > SIZE_MAX - 12) return vkm_error(VKM_EINVAL, "gguf writer: string too long");
    uint8_t *b = new_blob(12 + (size_t)len);
    if (!b) return VKM_ENOMEM;
    uint32_t type = VKM_GGUF_STRING;
    memcpy(b, &type, 4);
    memcpy(b + 4, &len, 8);
    if (len) memcpy(b + 12, s, (size_t)len);
    return put_kv(w, key, b, 12 + (size_t)len);
}

int vkm_gguf_w_set_str(vkm_gguf_writer *w, const char *key, const char *s) {
    return vkm_gguf_w_set_strn(w, key, s, strlen(s));
}

int vkm_gguf_w_set_arr(vkm_gguf_writer *w, const char *key, uint32_t elem_type, const void *data,
                       uint64_t count) {
    if (elem_type >= VKM_GGUF_TYPE_COUNT || elem_type == VKM_GGUF_STRING ||
        elem_type == VKM_GGUF_ARRAY)
        return vkm_error(VKM_EINVAL, "gguf writer: key %s: bad array element type %u",
                         key ? key : "(null)", elem_type);
    size_t esz = g_size[elem_type];
    if (count > (SIZE_MAX - 16) / esz)
        return vkm_error(VKM_EINVAL, "gguf writer: key %s: array too long", key ? key : "(null)");
    if (elem_type == VKM_GGUF_BOOL)
        for (uint64_t i = 0; i < count; i++)
            if (((const uint8_t *)data)[i] > 1)
                return vkm_error(VKM_EINVAL,
                                 "gguf writer: key %s: bool element %" PRIu64 " is not 0 or 1",
                                 key ? key : "(null)", i);
    size_t len = 16 + (size_t)count * esz;
    uint8_t *b = new_blob(len);
    if (!b) return VKM_ENOMEM;
    uint32_t type = VKM_GGUF_ARRAY;
    memcpy(b, &type, 4);
    memcpy(b + 4, &elem_type, 4);
    memcpy(b + 8, &count, 8);
    if (count) memcpy(b + 16, data, (size_t)count * esz);
    return put_kv(w, key, b, len);
}

/* Serializes count strings given as (pointer, length) through a getter. */
typedef const char *(*str_at_fn)(const void *ctx, uint64_t i, uint64_t *len);

static int set_arr_str_fn(vkm_gguf_writer *w, const char *key, uint64_t count, str_at_fn at,
                          const void *ctx) {
    size_t len = 16;
    for (uint64_t i = 0; i < count; i++) {
        uint64_t l;
        at(ctx, i, &l);
        if (l > SIZE_MAX / 2 || len > SIZE_MAX / 2 - 8 - l)
            return vkm_error(VKM_EINVAL, "gguf writer: key %s: string array too large", key);
        len += 8 + (size_t)l;
    }
    uint8_t *b = new_blob(len);
    if (!b) return VKM_ENOMEM;
    uint32_t type = VKM_GGUF_ARRAY, et = VKM_GGUF_STRING;
    memcpy(b, &type, 4);
    memcpy(b + 4, &et, 4);
    memcpy(b + 8, &count, 8);
    size_t pos = 16;
    for (uint64_t i = 0; i < count; i++) {
        uint64_t l;
        const char *s = at(ctx, i, &l);
        memcpy(b + pos, &l, 8);
        if (l) memcpy(b + pos + 8, s, (size_t)l);
        pos += 8 + (size_t)l;
    }
    return put_kv(w, key, b, len);
}

static const char *cstr_at(const void *ctx, uint64_t i, uint64_t *len) {
    const char *s = ((const char *const *)ctx)[i];
    *len = strlen(s);
    return s;
}

int vkm_gguf_w_set_arr_str(vkm_gguf_writer *w, const char *key, const char *const *strs,
                           uint64_t count) {
    if (!key || !*key) return vkm_error(VKM_EINVAL, "gguf writer: empty key");
    return set_arr_str_fn(w, key, count, cstr_at, strs);
}

typedef struct copy_ctx {
    const vkm_gguf *g;
    int64_t kv;
} copy_ctx;

static const char *gguf_str_at(const void *ctx, uint64_t i, uint64_t *len) {
    const copy_ctx *c = ctx;
    return vkm_gguf_arr_str(c->g, c->kv, i, len);
}

int vkm_gguf_w_copy_kv(vkm_gguf_writer *w, const vkm_gguf *g, int64_t kv) {
    const char *key = vkm_gguf_key(g, kv);
    uint32_t type = vkm_gguf_kv_type(g, kv);
    if (type == VKM_GGUF_STRING) {
        const char *s;
        uint64_t len;
        int rc = vkm_gguf_get_str(g, key, &s, &len);
        return rc ? rc : vkm_gguf_w_set_strn(w, key, s, len);
    }
    if (type == VKM_GGUF_ARRAY) {
        uint32_t et = vkm_gguf_arr_type(g, kv);
        uint64_t n = vkm_gguf_arr_count(g, kv);
        if (et == VKM_GGUF_STRING)
            return set_arr_str_fn(w, key, n, gguf_str_at, &(copy_ctx){g, kv});
        return vkm_gguf_w_set_arr(w, key, et, vkm_gguf_arr_data(g, kv), n);
    }
    return set_scalar(w, key, type, vkm_gguf_kv_data(g, kv));
}

/* ---- tensors ---- */

static int64_t add_tensor(vkm_gguf_writer *w, const char *name, uint32_t n_dims, const int64_t *ne,
                          uint32_t type, const void *data, vkm_gguf_fill_fn fill, void *user) {
    size_t len = name ? strlen(name) : 0;
    if (len == 0 || len > VKM_GGUF_MAX_NAME)
        return vkm_error(VKM_EINVAL, "gguf writer: tensor name '%s' must have 1..%d bytes",
                         name ? name : "(null)", VKM_GGUF_MAX_NAME);
    for (int64_t i = 0; i < w->n_tensors; i++)
        if (!strcmp(w->tensors[i].name, name))
            return vkm_error(VKM_EINVAL, "gguf writer: duplicate tensor name '%s'", name);
    if (n_dims < 1 || n_dims > VKM_GGUF_MAX_DIMS)
        return vkm_error(VKM_EINVAL, "gguf writer: tensor '%s': n_dims %u not in 1..4", name,
                         n_dims);
    const vkm_qtype_info *qt = vkm_qtype_get(type);
    if (!qt) return vkm_error(VKM_EINVAL, "gguf writer: tensor '%s': unknown type %u", name, type);
    w_tensor t = {.n_dims = n_dims,
                  .ne = {1, 1, 1, 1},
                  .type = type,
                  .data = data,
                  .fill = fill,
                  .user = user};
    memcpy(t.name, name, len + 1);
    for (uint32_t j = 0; j < n_dims; j++) {
        if (ne[j] < 0)
            return vkm_error(VKM_EINVAL, "gguf writer: tensor '%s': negative dimension", name);
        t.ne[j] = ne[j];
    }
    if (t.ne[0] % qt->block)
        return vkm_error(VKM_EINVAL,
                         "gguf writer: tensor '%s': ne0 %" PRId64 " not a multiple of %s block %u",
                         name, t.ne[0], qt->name, qt->block);
    uint64_t nb = (uint64_t)(t.ne[0] / qt->block) * qt->bytes;
    int64_t nel = t.ne[0];
    bool ovf = false;
    for (int j = 1; j < 4; j++) {
        ovf |= __builtin_mul_overflow(nb, (uint64_t)t.ne[j], &nb);
        ovf |= __builtin_mul_overflow(nel, t.ne[j], &nel);
    }
    if (ovf || nb > (uint64_t)INT64_MAX / 2)
        return vkm_error(VKM_EINVAL, "gguf writer: tensor '%s': size overflows", name);
    t.nbytes = nb;
    if (w->n_tensors == w->cap_tensors) {
        int64_t cap = w->cap_tensors ? w->cap_tensors * 2 : 64;
        w_tensor *nt = realloc(w->tensors, (size_t)cap * sizeof *nt);
        if (!nt) return vkm_error(VKM_ENOMEM, "gguf writer: out of memory");
        w->tensors = nt;
        w->cap_tensors = cap;
    }
    w->tensors[w->n_tensors] = t;
    return w->n_tensors++;
}

int64_t vkm_gguf_w_add_tensor(vkm_gguf_writer *w, const char *name, uint32_t n_dims,
                              const int64_t *ne, uint32_t type, const void *data) {
    return add_tensor(w, name, n_dims, ne, type, data, NULL, NULL);
}

int64_t vkm_gguf_w_add_tensor_cb(vkm_gguf_writer *w, const char *name, uint32_t n_dims,
                                 const int64_t *ne, uint32_t type, vkm_gguf_fill_fn fill,
                                 void *user) {
    if (!fill) return vkm_error(VKM_EINVAL, "gguf writer: tensor '%s': no fill callback", name);
    return add_tensor(w, name, n_dims, ne, type, NULL, fill, user);
}

/* ---- output ---- */

typedef struct out_file {
    FILE *f;
    const char *path;
    uint64_t pos;
    int err; /* first errno */
} out_file;

static void out(out_file *o, const void *p, size_t n) {
    if (o->err || n == 0) return;
    if (fwrite(p, 1, n, o->f) != n) o->err = errno ? errno : EIO;
    o->pos += n;
}

static void out_u32(out_file *o, uint32_t v) {
    out(o, &v, 4);
}
static void out_u64(out_file *o, uint64_t v) {
    out(o, &v, 8);
}

static void out_zeros(out_file *o, uint64_t n) {
    static const uint8_t zeros[4096];
    while (n > 0) {
        size_t k = n < sizeof zeros ? (size_t)n : sizeof zeros;
        out(o, zeros, k);
        n -= k;
    }
}

static void out_pad(out_file *o, uint64_t align) {
    out_zeros(o, (align - o->pos % align) % align);
}

static int writer_alignment(const vkm_gguf_writer *w, uint32_t *align) {
    *align = VKM_GGUF_DEFAULT_ALIGNMENT;
    for (int64_t i = 0; i < w->n_kv; i++) {
        if (strcmp(w->kvs[i].key, "general.alignment")) continue;
        uint32_t type;
        memcpy(&type, w->kvs[i].blob, 4);
        if (type != VKM_GGUF_UINT32)
            return vkm_error(VKM_EINVAL, "gguf writer: general.alignment must be UINT32");
        memcpy(align, w->kvs[i].blob + 4, 4);
        if (*align == 0 || (*align & (*align - 1)))
            return vkm_error(VKM_EINVAL, "gguf writer: general.alignment %u is not a power of 2",
                             *align);
    }
    return 0;
}

/* Background writer for streamed tensor data: while a fill callback produces chunk k + 1 into
 * one buffer, this thread writes chunk k (with the tensor's padding after its last chunk) from
 * the other. At most one write is in flight, and the out_file is used only by the side whose
 * turn it is (handed over under mu), so o->err and o->pos are read by the caller only after
 * io_wait(). Without the thread (it could not be started) writes happen synchronously. */
typedef struct io_thread {
    out_file *o;
    bool started; /* th, mu and cv exist */
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool busy, quit; /* under mu */
    const void *p;   /* the write in flight: n bytes at p, then padding to `pad` (0: none) */
    size_t n;
    uint64_t pad;
} io_thread;

static void *io_main(void *arg) {
    io_thread *io = arg;
    pthread_mutex_lock(&io->mu);
    for (;;) {
        while (!io->busy && !io->quit) pthread_cond_wait(&io->cv, &io->mu);
        if (!io->busy) break;
        pthread_mutex_unlock(&io->mu);
        out(io->o, io->p, io->n);
        if (io->pad) out_pad(io->o, io->pad);
        pthread_mutex_lock(&io->mu);
        io->busy = false;
        pthread_cond_broadcast(&io->cv);
    }
    pthread_mutex_unlock(&io->mu);
    return NULL;
}

static void io_start(io_thread *io, out_file *o) {
    *io = (io_thread){.o = o};
    if (pthread_mutex_init(&io->mu, NULL)) return;
    if (pthread_cond_init(&io->cv, NULL)) {
        pthread_mutex_destroy(&io->mu);
        return;
    }
    if (pthread_create(&io->th, NULL, io_main, io)) {
        pthread_cond_destroy(&io->cv);
        pthread_mutex_destroy(&io->mu);
        return;
    }
    io->started = true;
}

/* Waits until no write is in flight. */
static void io_wait(io_thread *io) {
    if (!io->started) return;
    pthread_mutex_lock(&io->mu);
    while (io->busy) pthread_cond_wait(&io->cv, &io->mu);
    pthread_mutex_unlock(&io->mu);
}

/* Writes n bytes at p (kept valid until the next io_wait()), then pads to `pad` if nonzero. The
 * caller has waited for the previous write. */
static void io_submit(io_thread *io, const void *p, size_t n, uint64_t pad) {
    if (!io->started) {
        out(io->o, p, n);
        if (pad) out_pad(io->o, pad);
        return;
    }
    pthread_mutex_lock(&io->mu);
    io->p = p;
    io->n = n;
    io->pad = pad;
    io->busy = true;
    pthread_cond_broadcast(&io->cv);
    pthread_mutex_unlock(&io->mu);
}

static void io_stop(io_thread *io) {
    if (!io->started) return;
    pthread_mutex_lock(&io->mu);
    io->quit = true;
    pthread_cond_broadcast(&io->cv);
    pthread_mutex_unlock(&io->mu);
    pthread_join(io->th, NULL); /* finishes a write in flight first */
    pthread_cond_destroy(&io->cv);
    pthread_mutex_destroy(&io->mu);
    io->started = false;
}

/* Writes tensor i's data and its padding. chunk[2] are the fill buffers (allocated on first
 * use), used alternately: *turn counts the chunks filled so far. Stops early (returning 0) once a
 * write failed: the caller reports o->err. */
static int write_tensor_data(io_thread *io, const vkm_gguf_writer *w, int64_t i, uint32_t align,
                             uint8_t **chunk, unsigned *turn) {
    enum { CHUNK = 1 << 22 };
    const w_tensor *t = &w->tensors[i];
    out_file *o = io->o;
    io_wait(io);
    if (o->err) return 0;
    if (!t->fill) {
        if (t->data)
            out(o, t->data, (size_t)t->nbytes);
        else
            out_zeros(o, t->nbytes);
        out_pad(o, align);
        return 0;
    }
    if (!chunk[0] && !(chunk[0] = malloc(CHUNK)))
        return vkm_error(VKM_ENOMEM, "gguf writer: out of memory");
    if (!chunk[1] && !(chunk[1] = malloc(CHUNK)))
        return vkm_error(VKM_ENOMEM, "gguf writer: out of memory");
    if (t->nbytes == 0) out_pad(o, align);
    for (uint64_t off = 0; off < t->nbytes;) {
        size_t n = t->nbytes - off < CHUNK ? (size_t)(t->nbytes - off) : CHUNK;
        uint8_t *buf = chunk[(*turn)++ % 2]; /* the other one may be being written */
        int rc = t->fill(t->user, i, off, buf, n);
        if (rc) return rc;
        io_wait(io);
        if (o->err) return 0;
        off += n;
        io_submit(io, buf, n, off == t->nbytes ? align : 0);
    }
    return 0;
}

int vkm_gguf_w_write(vkm_gguf_writer *w, const char *path) {
    uint32_t align;
    int rc = writer_alignment(w, &align);
    if (rc) return rc;
    char tmp[4096];
    if (!vkm_gguf_w_temp_path(path, tmp, sizeof tmp))
        return vkm_error(VKM_EINVAL, "%s: the path is too long", path);
    out_file o = {fopen(tmp, "wb"), path, 0, 0};
    if (!o.f) return vkm_error(VKM_EIO, "%s: cannot create: %s", tmp, strerror(errno));
    setvbuf(o.f, NULL, _IOFBF, 1 << 20);

    out(&o, "GGUF", 4);
    out_u32(&o, 3);
    out_u64(&o, (uint64_t)w->n_tensors);
    out_u64(&o, (uint64_t)w->n_kv);
    for (int64_t i = 0; i < w->n_kv; i++) {
        uint64_t len = strlen(w->kvs[i].key);
        out_u64(&o, len);
        out(&o, w->kvs[i].key, (size_t)len);
        out(&o, w->kvs[i].blob, w->kvs[i].blob_len);
    }
    uint64_t offset = 0;
    for (int64_t i = 0; i < w->n_tensors && !rc; i++) {
        const w_tensor *t = &w->tensors[i];
        uint64_t len = strlen(t->name);
        out_u64(&o, len);
        out(&o, t->name, (size_t)len);
        out_u32(&o, t->n_dims);
        for (uint32_t j = 0; j < t->n_dims; j++) out(&o, &t->ne[j], 8);
        out_u32(&o, t->type);
        out_u64(&o, offset);
        uint64_t padded = (t->nbytes + align - 1) / align * align; /* nbytes < 2^62 */
        if (__builtin_add_overflow(offset, padded, &offset))
            rc = vkm_error(VKM_EINVAL, "gguf writer: total data size overflows");
    }
    out_pad(&o, align);
    uint8_t *chunk[2] = {NULL, NULL};
    unsigned turn = 0;
    io_thread io;
    io_start(&io, &o);
    for (int64_t i = 0; i < w->n_tensors && !rc; i++)
        rc = write_tensor_data(&io, w, i, align, chunk, &turn);
    io_stop(&io);
    free(chunk[0]);
    free(chunk[1]);
    if (fclose(o.f) && !o.err) o.err = errno ? errno : EIO;
    if (!rc && o.err) rc = vkm_error(VKM_EIO, "%s: write failed: %s", path, strerror(o.err));
    if (!rc && rename(tmp, path))
        rc = vkm_error(VKM_EIO, "%s: cannot rename %s to it: %s", path, tmp, strerror(errno));
    if (rc) unlink(tmp);
    return rc;
}

bool vkm_gguf_w_temp_path(const char *path, char *buf, size_t n) {
    const int w = snprintf(buf, n, "%s.part", path);
    return w > 0 && (size_t)w < n;
}
