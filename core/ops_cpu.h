/* ops_cpu.h - recording the CPU-device family's matmul kernels (shaders/cpu/matmul_lane.comp:
 * matmul_tex_*, matmul_lane_*, matmul_lane32_*), for core/ops_matmul.c.
 *
 * ops_matmul.c checks shapes, binds the windows and fills the GPU kernels' push block
 * (vkm_matmul_push) as for any kernel; where the plan's tuning says lane_rows (the CPU family),
 * it asks this file for the kernel and has it record the dispatches. What is the CPU devices'
 * alone lives here: which of the three load variants runs (texel buffers where the W and X
 * windows fit them, else 64-bit or 32-bit storage loads as the plan says), their specialization
 * constants, and the column windows that keep every invocation under lavapipe's loop limit
 * (vkm_matmul_cpu_push, shaders/cpu/matmul_cpu.h). */
#ifndef VKM_OPS_CPU_H
#define VKM_OPS_CPU_H

#include <stdbool.h>
#include <stdint.h>

#include "../shaders/matmul_common.h"
#include "gpu.h"
#include "kernels.h"

/* Whether W (args[0]) and X (args[1]) are windows the texel kernels (matmul_tex_*) can view, so
 * that they run and the plan's fused forms with them. */
bool vkm_op_cpu_texel(vkm_gpu *gpu, const vkm_gpu_arg *args);

/* The CPU family's matmul kernel (GEMV and GEMM alike) for one dispatch: plain or indexed (id),
 * weight type wtype, `cols` (>= 0) the expected X columns per matrix (the kernel takes the power
 * of two >= it, at most VKM_MM_VEC_MAX_COLS, per pass), `pc` the dispatch's push block, `args`
 * its bindings (W and X decide the variant), n_bind their count. `xal`: every X row starts
 * 16-byte aligned in the X window; `wal`: every weight step does (matmul_lane.comp XAL, WAL).
 * The texel variant keeps 2 rows per thread: t->rows is set to what the kernel runs with. */
int vkm_op_cpu_matmul_kernel(vkm_gpu *gpu, vkm_gemv_tuning *t, bool id, uint32_t wtype,
                             int64_t cols, bool xal, bool wal, const vkm_matmul_push *pc,
                             const vkm_gpu_arg *args, int n_bind, vkm_gpu_kernel **out);

/* Rows (outputs) one workgroup of the kernel computes with tuning t: its threads times their
 * rows, or in the gated form (glu) one output row per thread (its two rows are gate and up). */
uint32_t vkm_op_cpu_rows_per_wg(const vkm_gemv_tuning *t, bool glu);

/* Records `kern` (from vkm_op_cpu_matmul_kernel, tuning t) over columns 0 .. cols - 1 of every
 * matrix, in windows of whole passes short enough for the loop limit (one window for all but
 * very large batches); nc_cols is what the kernel's columns per pass were chosen from. The
 * grid (gx, gy, gz) and the bindings are those of every window. */
int vkm_op_cpu_matmul_dispatch(vkm_gpu *gpu, vkm_gpu_kernel *kern, const vkm_gemv_tuning *t,
                               uint32_t wtype, int64_t cols, int64_t nc_cols,
                               const vkm_gpu_arg *args, int n_args, const vkm_matmul_push *pc,
                               uint32_t gx, uint32_t gy, uint32_t gz);

#endif
