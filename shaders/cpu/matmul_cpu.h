/* matmul_cpu.h - the push-constant layout of the CPU devices' matmul kernels, shared by C
 * (core/ops_cpu.c) and GLSL (cpu/matmul_lane.comp, which includes this instead of declaring
 * matmul_common.h's block).
 *
 * vkm_matmul_cpu_push is the GPU kernels' vkm_matmul_push (its fields and their meaning:
 * matmul_common.h) followed by the column window of lavapipe's loop limit: the driver ends an
 * invocation after 65535 loop iterations in all, silently, so the host splits a GEMM whose column
 * passes times k steps would exceed it into dispatches over windows of columns (core/ops_cpu.c).
 * Invariant: sizeof(vkm_matmul_cpu_push) <= 128 bytes (the push-constant size every Vulkan device
 * has). */
#ifndef VKM_MATMUL_CPU_H
#define VKM_MATMUL_CPU_H

#define VKM_MATMUL_CPU_SHADER 1 /* GLSL: matmul_common.h leaves its push block out */
#include "../matmul_common.h"

#ifdef VULKAN
layout(push_constant) uniform vkm_matmul_cpu_push {
    VKM_MATMUL_PUSH_FIELDS(uint)
    uint c_begin; /* only the columns / entries c_begin <= c < c_end of each matrix */
    uint c_end;
}
p;
#else
#include <stddef.h>
#include <stdint.h>
typedef struct vkm_matmul_cpu_push {
    vkm_matmul_push mm; /* as for the GPU kernels */
    uint32_t c_begin;   /* only the columns / entries c_begin <= c < c_end of each matrix */
    uint32_t c_end;
} vkm_matmul_cpu_push;
_Static_assert(sizeof(vkm_matmul_cpu_push) == 30 * 4 &&
                   offsetof(vkm_matmul_cpu_push, c_begin) == 28 * 4,
               "vkm_matmul_cpu_push must match the GLSL block");
_Static_assert(sizeof(vkm_matmul_cpu_push) <= 128, "push constants beyond Vulkan's minimum");
#endif

#endif
