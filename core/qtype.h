/* qtype.h - ggml tensor type ids and their block layout (spec §1.3).
 *
 * Knows every type id that exists in GGUF files, so errors can name unsupported ones; `supported`
 * marks the types vkmoe can compute with (on the CPU reference), `gpu` those the device kernels
 * handle as well; the engine needs both. Sizes: a row of ne0 elements takes
 * (ne0 / block) * bytes bytes, and ne0 must be a multiple of block. */
#ifndef VKM_QTYPE_H
#define VKM_QTYPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum vkm_qtype {
    VKM_F32 = 0,
    VKM_F16 = 1,
    VKM_Q4_0 = 2,
    VKM_Q4_1 = 3,
    VKM_Q5_0 = 6,
    VKM_Q5_1 = 7,
    VKM_Q8_0 = 8,
    VKM_Q8_1 = 9,
    VKM_Q2_K = 10,
    VKM_Q3_K = 11,
    VKM_Q4_K = 12,
    VKM_Q5_K = 13,
    VKM_Q6_K = 14,
    VKM_Q8_K = 15,
    VKM_IQ2_XXS = 16,
    VKM_IQ2_XS = 17,
    VKM_IQ3_XXS = 18,
    VKM_IQ1_S = 19,
    VKM_IQ4_NL = 20,
    VKM_IQ3_S = 21,
    VKM_IQ2_S = 22,
    VKM_IQ4_XS = 23,
    VKM_IQ1_M = 29,
    VKM_BF16 = 30,
    VKM_QTYPE_COUNT = 43, /* one past the largest id we know of */
};

typedef struct vkm_qtype_info {
    const char *name; /* "Q4_K"; NULL for ids that do not exist */
    uint32_t block;   /* elements per block */
    uint32_t bytes;   /* bytes per block */
    bool supported;   /* vkmoe can load and compute with this type (the C reference has it) */
    bool gpu;         /* the device kernels (matmuls, get_rows) have it too */
} vkm_qtype_info;

/* Info for a type id, or NULL if the id is not a ggml type at all. */
const vkm_qtype_info *vkm_qtype_get(uint32_t type);
/* Name of a type id ("Q4_K", or "unknown" for ids that do not exist). */
const char *vkm_qtype_name(uint32_t type);
/* Bytes of one row of n elements; 0 if n is not a multiple of the block or the type is unknown. */
size_t vkm_qtype_row_bytes(uint32_t type, uint64_t n);

#endif
