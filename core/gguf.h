/* gguf.h - read-only access to GGUF v2/v3 files (spec §1), single or split into parts.
 *
 * vkm_gguf_open() maps every part with mmap and validates the whole file up front: header, every
 * KV record, every tensor info, the strict data layout (tensor i starts at the sum of the aligned
 * sizes of tensors 0..i-1) and that all tensor data lies inside the file. After a successful open
 * nothing read through this API can run past a mapping. Tensor data is used in place and stays
 * valid until vkm_gguf_close().
 *
 * Split models (`NAME-00001-of-0000N.gguf`, llama.cpp's gguf-split): the first part is opened, then
 * every other part from the same directory; the tensors of all parts form one list (in part order)
 * and the KVs are those of the first part.
 *
 * Known-but-unsupported tensor types (IQ*, TQ*, MXFP4, ...) open fine; callers check
 * vkm_qtype_get(t->type)->supported. Type ids that are not ggml types are a format error. */
#ifndef VKM_GGUF_H
#define VKM_GGUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "qtype.h" /* tensor type ids */

/* KV value types (gguf_type, spec §1.2). */
enum vkm_gguf_type {
    VKM_GGUF_UINT8 = 0,
    VKM_GGUF_INT8 = 1,
    VKM_GGUF_UINT16 = 2,
    VKM_GGUF_INT16 = 3,
    VKM_GGUF_UINT32 = 4,
    VKM_GGUF_INT32 = 5,
    VKM_GGUF_FLOAT32 = 6,
    VKM_GGUF_BOOL = 7,
    VKM_GGUF_STRING = 8,
    VKM_GGUF_ARRAY = 9,
    VKM_GGUF_UINT64 = 10,
    VKM_GGUF_INT64 = 11,
    VKM_GGUF_FLOAT64 = 12,
    VKM_GGUF_TYPE_COUNT = 13,
};

enum {
    VKM_GGUF_MAX_DIMS = 4,
    VKM_GGUF_MAX_NAME = 63, /* longest tensor name in bytes */
    VKM_GGUF_DEFAULT_ALIGNMENT = 32,
};

typedef struct vkm_gguf vkm_gguf;

typedef struct vkm_gguf_tensor {
    const char *name;     /* NUL-terminated, at most VKM_GGUF_MAX_NAME bytes */
    uint32_t n_dims;      /* 1..4 */
    int64_t ne[4];        /* shape, ne[0] innermost; dims past n_dims are 1 */
    uint32_t type;        /* ggml type id (enum vkm_qtype); always known to vkm_qtype_get() */
    uint64_t nbytes;      /* (ne0/block)*bytes*ne1*ne2*ne3 */
    const void *data;     /* nbytes in the mapping of part `file` */
    int file;             /* split part index, 0-based */
    uint64_t file_offset; /* absolute byte offset of the data within that part's file */
} vkm_gguf_tensor;

/* Opens and validates `path` (and its split parts). VKM_EIO if a file cannot be opened or mapped,
 * VKM_EFORMAT for malformed content ("FILE: what is wrong (at byte N)"), VKM_ENOMEM. */
int vkm_gguf_open(const char *path, vkm_gguf **out);
/* As vkm_gguf_open, but a file whose tensor data runs past its end (a cut download) still opens
 * when its header (KVs, tensor infos) is whole: the tensors not wholly in the file get data
 * NULL, and vkm_gguf_truncated says what is missing. For listing metadata (`vkmoe info`);
 * nothing may read tensor data through it without checking data. */
int vkm_gguf_open_header(const char *path, vkm_gguf **out);
/* The truncation message ("FILE: truncated file: ...") of a vkm_gguf_open_header file, NULL when
 * it is complete; *n_missing (optional) gets the number of tensors whose data is missing. */
const char *vkm_gguf_truncated(const vkm_gguf *g, int64_t *n_missing);
void vkm_gguf_close(vkm_gguf *g);

/* ---- file ---- */
uint32_t vkm_gguf_version(const vkm_gguf *g);
uint32_t vkm_gguf_alignment(const vkm_gguf *g); /* of the first part */
int vkm_gguf_n_files(const vkm_gguf *g);
const char *vkm_gguf_file_path(const vkm_gguf *g, int file);
uint64_t vkm_gguf_file_size(const vkm_gguf *g, int file);
/* A read-only descriptor of the part, open for the life of `g` (for pread-based paging). */
int vkm_gguf_file_fd(const vkm_gguf *g, int file);
uint64_t vkm_gguf_total_bytes(const vkm_gguf *g); /* sum of the part sizes */

/* ---- KVs (those of the first part), by index 0..n_kv-1 ---- */
int64_t vkm_gguf_n_kv(const vkm_gguf *g);
const char *vkm_gguf_key(const vkm_gguf *g, int64_t kv);
int64_t vkm_gguf_find_key(const vkm_gguf *g, const char *key); /* index or -1 */
uint32_t vkm_gguf_kv_type(const vkm_gguf *g, int64_t kv);
/* Raw little-endian bytes of a numeric or BOOL scalar KV (possibly unaligned); NULL otherwise. */
const void *vkm_gguf_kv_data(const vkm_gguf *g, int64_t kv);
/* Name of a KV type: "UINT32", "STRING", "ARRAY", ... ("unknown" otherwise). */
const char *vkm_gguf_type_name(uint32_t type);
/* Renders the value of `kv` as one short line into buf (always NUL-terminated): scalars as
 * values, strings quoted and truncated, arrays as "[TYPE x N] e0, e1, ...". */
void vkm_gguf_kv_format(const vkm_gguf *g, int64_t kv, char *buf, size_t n);

/* Type-strict getters by key. A missing key or a value of another type is VKM_EFORMAT
 * ("FILE: key X has wrong type T, expected U" / "FILE: missing key X"). */
int vkm_gguf_get_u32(const vkm_gguf *g, const char *key, uint32_t *out);
int vkm_gguf_get_i32(const vkm_gguf *g, const char *key, int32_t *out);
int vkm_gguf_get_u64(const vkm_gguf *g, const char *key, uint64_t *out);
int vkm_gguf_get_f32(const vkm_gguf *g, const char *key, float *out);
int vkm_gguf_get_bool(const vkm_gguf *g, const char *key, bool *out);
/* The string stays valid until close; *len (optional) gets its byte length. */
int vkm_gguf_get_str(const vkm_gguf *g, const char *key, const char **out, uint64_t *len);
/* Same, but an absent key gives `def` (a present key of the wrong type is still an error). */
int vkm_gguf_get_u32_or(const vkm_gguf *g, const char *key, uint32_t def, uint32_t *out);
int vkm_gguf_get_i32_or(const vkm_gguf *g, const char *key, int32_t def, int32_t *out);
int vkm_gguf_get_u64_or(const vkm_gguf *g, const char *key, uint64_t def, uint64_t *out);
int vkm_gguf_get_f32_or(const vkm_gguf *g, const char *key, float def, float *out);
int vkm_gguf_get_bool_or(const vkm_gguf *g, const char *key, bool def, bool *out);
int vkm_gguf_get_str_or(const vkm_gguf *g, const char *key, const char *def, const char **out);
/* Any unsigned integer type (UINT8/16/32/64), or a signed one holding a value >= 0. */
int vkm_gguf_get_uint(const vkm_gguf *g, const char *key, uint64_t *out);

/* Arrays. vkm_gguf_get_arr() checks that `key` is an array of `elem_type` and returns its KV
 * index and element count; after that the element accessors below may be used on it. The
 * accessors assert (programmer error) on a wrong type or an index out of range. */
int vkm_gguf_get_arr(const vkm_gguf *g, const char *key, uint32_t elem_type, int64_t *kv,
                     uint64_t *count);
uint32_t vkm_gguf_arr_type(const vkm_gguf *g, int64_t kv); /* element type of an array KV */
uint64_t vkm_gguf_arr_count(const vkm_gguf *g, int64_t kv);
/* Raw little-endian elements of a numeric array (possibly unaligned); NULL for string arrays. */
const void *vkm_gguf_arr_data(const vkm_gguf *g, int64_t kv);
uint32_t vkm_gguf_arr_u32(const vkm_gguf *g, int64_t kv, uint64_t i);
int32_t vkm_gguf_arr_i32(const vkm_gguf *g, int64_t kv, uint64_t i);
float vkm_gguf_arr_f32(const vkm_gguf *g, int64_t kv, uint64_t i);
/* Any numeric/bool element widened to int64 or double (for display and lenient readers). */
int64_t vkm_gguf_arr_i64(const vkm_gguf *g, int64_t kv, uint64_t i);
double vkm_gguf_arr_f64(const vkm_gguf *g, int64_t kv, uint64_t i);
/* NUL-terminated string element; *len (optional) gets its byte length. */
const char *vkm_gguf_arr_str(const vkm_gguf *g, int64_t kv, uint64_t i, uint64_t *len);

/* ---- tensors (all parts, in file order) ---- */
int64_t vkm_gguf_n_tensors(const vkm_gguf *g);
const vkm_gguf_tensor *vkm_gguf_tensor_at(const vkm_gguf *g, int64_t i);
const vkm_gguf_tensor *vkm_gguf_find_tensor(const vkm_gguf *g, const char *name); /* or NULL */
int64_t vkm_gguf_tensor_index(const vkm_gguf *g, const char *name);               /* or -1 */

#endif
