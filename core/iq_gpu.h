/* iq_gpu.h - the IQ grids for the device kernels: the grid (codebook) of an IQ weight type as a
 * constant device buffer, which the kernels of that type (shaders/quant.glsl's IQ section) read at
 * the binding after their own (matmuls: 3, indexed 5; get_rows: 3). */
#ifndef VKM_IQ_GPU_H
#define VKM_IQ_GPU_H

#include <stdbool.h>
#include <stdint.h>

#include "gpu.h"

/* Whether the kernels of weight type `type` take a grid binding (every IQ type; IQ4_NL / IQ4_XS:
 * the byte tables only gemv.comp reads, the other kernels keep the 16 levels as constants). */
bool vkm_iq_grid_binds(uint32_t type);

/* The grid buffer of `type` (created and uploaded on first use, kept with the gpu) as a binding
 * in *out: 1 when the type has one, 0 (nothing done) when not, a negative code on failure. */
int vkm_iq_grid_arg(vkm_gpu *gpu, uint32_t type, vkm_gpu_arg *out);

#endif
