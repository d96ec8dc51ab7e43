/* gguf_write.h - builds GGUF v3 files (spec §7): KVs of every type, tensor infos, and tensor data
 * supplied as a pointer or streamed by a callback, so multi-GB files never sit in memory.
 *
 * Usage:
 *   vkm_gguf_writer *w; vkm_gguf_writer_create(&w);
 *   vkm_gguf_w_set_str(w, "general.architecture", "deepseek2");
 *   vkm_gguf_w_set_u32(w, "deepseek2.block_count", 3);
 *   vkm_gguf_w_add_tensor(w, "token_embd.weight", 2, (int64_t[]){64, 268}, VKM_F32, data);
 *   vkm_gguf_w_write(w, "out.gguf");
 *   vkm_gguf_writer_destroy(w);
 *
 * Setting a key that exists replaces its value (keeping its position). The alignment is the
 * UINT32 value of "general.alignment" when set (a power of two), else 32. The file is laid out
 * as the reader requires: header, KVs, tensor infos, zero padding to the alignment, then each
 * tensor's data in info order, each padded with zeros to the alignment. */
#ifndef VKM_GGUF_WRITE_H
#define VKM_GGUF_WRITE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gguf.h"

typedef struct vkm_gguf_writer vkm_gguf_writer;

/* Streams tensor data: writes the `n` bytes at byte `offset` of tensor number `tensor` (index in
 * add order) into buf. Called in increasing offset order. Returns 0, or a negative VKM_E* code
 * (with vkm_error()) to abort the write. */
typedef int (*vkm_gguf_fill_fn)(void *user, int64_t tensor, uint64_t offset, void *buf, size_t n);

int vkm_gguf_writer_create(vkm_gguf_writer **out);
void vkm_gguf_writer_destroy(vkm_gguf_writer *w);

/* ---- KVs (keys must be non-empty; VKM_EINVAL otherwise) ---- */
int vkm_gguf_w_set_u8(vkm_gguf_writer *w, const char *key, uint8_t v);
int vkm_gguf_w_set_i8(vkm_gguf_writer *w, const char *key, int8_t v);
int vkm_gguf_w_set_u16(vkm_gguf_writer *w, const char *key, uint16_t v);
int vkm_gguf_w_set_i16(vkm_gguf_writer *w, const char *key, int16_t v);
int vkm_gguf_w_set_u32(vkm_gguf_writer *w, const char *key, uint32_t v);
int vkm_gguf_w_set_i32(vkm_gguf_writer *w, const char *key, int32_t v);
int vkm_gguf_w_set_u64(vkm_gguf_writer *w, const char *key, uint64_t v);
int vkm_gguf_w_set_i64(vkm_gguf_writer *w, const char *key, int64_t v);
int vkm_gguf_w_set_f32(vkm_gguf_writer *w, const char *key, float v);
int vkm_gguf_w_set_f64(vkm_gguf_writer *w, const char *key, double v);
int vkm_gguf_w_set_bool(vkm_gguf_writer *w, const char *key, bool v);
int vkm_gguf_w_set_str(vkm_gguf_writer *w, const char *key, const char *s);
/* A string of `len` bytes (may hold any bytes). */
int vkm_gguf_w_set_strn(vkm_gguf_writer *w, const char *key, const char *s, uint64_t len);
/* An array of `count` elements of a numeric or BOOL type (enum vkm_gguf_type), packed little-
 * endian at `data` (copied; bool elements must be 0 or 1). */
int vkm_gguf_w_set_arr(vkm_gguf_writer *w, const char *key, uint32_t elem_type, const void *data,
                       uint64_t count);
/* An array of `count` NUL-terminated strings (copied). */
int vkm_gguf_w_set_arr_str(vkm_gguf_writer *w, const char *key, const char *const *strs,
                           uint64_t count);
/* Copies KV number `kv` of an open file (any type), e.g. to rewrite or re-split a model. */
int vkm_gguf_w_copy_kv(vkm_gguf_writer *w, const vkm_gguf *g, int64_t kv);
int64_t vkm_gguf_w_n_kv(const vkm_gguf_writer *w);

/* ---- tensors ---- */
/* Adds a tensor (validated: unique name of 1..63 bytes, 1..4 dims, ne >= 0, a known ggml type,
 * ne0 a multiple of its block). `data` (nbytes, not copied) must stay valid until the write;
 * NULL writes zeros. Returns the tensor's index (>= 0) or a negative error. */
int64_t vkm_gguf_w_add_tensor(vkm_gguf_writer *w, const char *name, uint32_t n_dims,
                              const int64_t *ne, uint32_t type, const void *data);
/* Same, with the data produced by `fill` while writing. */
int64_t vkm_gguf_w_add_tensor_cb(vkm_gguf_writer *w, const char *name, uint32_t n_dims,
                                 const int64_t *ne, uint32_t type, vkm_gguf_fill_fn fill,
                                 void *user);
int64_t vkm_gguf_w_n_tensors(const vkm_gguf_writer *w);
uint64_t vkm_gguf_w_tensor_nbytes(const vkm_gguf_writer *w, int64_t tensor);

/* Writes the file: into vkm_gguf_w_temp_path(path) first, renamed to `path` (replacing it) once
 * complete, so `path` is never a partial file; on failure the temporary file is removed. The
 * writer can be written again or modified afterwards. */
int vkm_gguf_w_write(vkm_gguf_writer *w, const char *path);
/* The temporary file vkm_gguf_w_write writes first: "<path>.part" into buf (n bytes). False
 * when it does not fit. A caller that is interrupted (SIGINT) may unlink it. */
bool vkm_gguf_w_temp_path(const char *path, char *buf, size_t n);

#endif
