/* cpu_dot.h - internal to the CPU matmul: one weight row dotted with one activation row.
 *
 * A dot function takes a weight row of k elements (vkm_qtype_row_bytes(type, k) bytes, as in
 * the GGUF, any alignment) and an activation row in the format of cpu_matmul.h (vkm_cpu_q8
 * blocks, or floats for F32/F16/BF16) and returns the dot product. One table per ISA; a type
 * missing from the AVX-512 table uses the AVX2 kernel, one missing from the AVX2 table the
 * portable kernel. */
#ifndef VKM_CPU_DOT_H
#define VKM_CPU_DOT_H

#include <stdint.h>

#include "cpu_matmul.h"

typedef float (*vkm_cpu_dot_fn)(const uint8_t *w, const void *act, int64_t k);

/* The portable kernel for type, or NULL if there is none. */
vkm_cpu_dot_fn vkm_cpu_dot_portable(uint32_t type);
/* The AVX2 kernel for type, or NULL (no such kernel, or not an x86-64 build). */
vkm_cpu_dot_fn vkm_cpu_dot_avx2(uint32_t type);
/* Whether the AVX2 kernels were compiled in and this CPU runs them. */
int vkm_cpu_avx2_usable(void);
/* The AVX-512 kernel for type, or NULL (only Q4_0, Q8_0, Q4_K and Q6_K have one: the others use
 * the AVX2 kernel; or not an x86-64 build). */
vkm_cpu_dot_fn vkm_cpu_dot_avx512(uint32_t type);
/* Whether the AVX-512 kernels were compiled in and this CPU and OS run them: AVX2 usable,
 * AVX-512 F, DQ, BW, VL and VNNI, and XCR0 enabling the opmask and ZMM state. */
int vkm_cpu_avx512_usable(void);

#endif
