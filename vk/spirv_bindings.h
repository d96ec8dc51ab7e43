/* spirv_bindings.h - the descriptor type of each binding of a compute shader, read from its SPIR-V.
 *
 * The kernels bind storage buffers, except that a shader may declare a binding of set 0 as a
 * uniform texel buffer (GLSL `samplerBuffer` / `usamplerBuffer`): the CPU-device matmul kernels
 * do, because llvmpipe fetches texels with vector loads where it loads storage buffers lane by
 * lane. vk/pipeline.c builds each kernel's descriptor set layout from this, and vk/gpu.c gives
 * texel bindings a buffer view of 16-byte texels (R32G32B32A32 of the sampled type). */
#ifndef VKM_VK_SPIRV_BINDINGS_H
#define VKM_VK_SPIRV_BINDINGS_H

#include <stddef.h>
#include <stdint.h>

enum vkm_vk_binding_kind {
    VKM_VK_BIND_STORAGE = 0,   /* storage buffer (also: any binding the shader does not declare) */
    VKM_VK_BIND_TEXEL_U32 = 1, /* uniform texel buffer sampled as 32-bit unsigned integers */
    VKM_VK_BIND_TEXEL_F32 = 2, /* uniform texel buffer sampled as 32-bit floats */
};

/* Fills kinds[0..n_bindings) for the bindings of descriptor set 0 of the SPIR-V module `words`
 * (n_words 32-bit words). VKM_EFORMAT when the module is malformed or declares a texel buffer of
 * another sampled type, a storage texel buffer or image, or a binding at or past n_bindings
 * (that binding would never be given a descriptor). */
int vkm_vk_spirv_bindings(const uint32_t *words, size_t n_words, int n_bindings, uint8_t *kinds);

#endif
