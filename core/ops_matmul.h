/* ops_matmul.h - matrix multiplication over weights in their GGUF encoding, recorded on the GPU.
 *
 * Convention (spec §1.5): W is ggml {k, m} (m rows of k elements, each row
 * vkm_qtype_row_bytes(wtype, k) bytes, rows contiguous), X and Y are f32 row-major, and
 *     Y[i][j] = sum_t W[j][t] * X[i][t]      (one Y row of m values per X row of k values).
 * The functions record dispatches into the current batch: the caller brackets them with
 * vkm_gpu_begin / vkm_gpu_submit. n <= 8 columns use a GEMV kernel (gemv_<type>, matmul_sg_<type>
 * or matmul_vec_<type>, as the kernel plan says), more use the tiled GEMM (matmul_mm_<type>)
 * except on CPU devices (lavapipe), where the row-per-invocation kernels of shaders/cpu/ do both
 * (core/ops_cpu.c), reading W and X as uniform texel buffers where the bound windows allow
 * (matmul_tex_<type>; else 64-bit storage loads, matmul_lane_<type>, or 32-bit ones,
 * matmul_lane32_<type>); all accumulate in f32.
 *
 * Weight types: F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K and the
 * IQ types IQ1_S, IQ1_M, IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS, IQ3_S, IQ4_NL, IQ4_XS (whose grids the
 * kernels read from a constant buffer bound after the others, core/iq_gpu.c)
 * (others: VKM_EUNSUPPORTED naming the type). k must be a multiple of the type's block.
 * Offsets are bytes; any value is accepted as long as the data lies inside the buffer, except
 * that w_off must be even (a multiple of 4 for F32) and x/y/rows/mats offsets multiples of 4,
 * and the buffer must extend to the end of the 32-bit word holding the weights' last byte (the
 * kernels read words: allocate weight buffers in multiples of 4 bytes).
 * Each bound range must fit in 4 GiB and the device's maxStorageBufferRange. */
#ifndef VKM_OPS_MATMUL_H
#define VKM_OPS_MATMUL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gpu.h"

/* Y (n x m f32 at y_off) = X (n x k f32 at x_off) times W^T, W {k, m} of type wtype at w_off.
 * n == 0 records nothing. */
int vkm_op_matmul(vkm_gpu *gpu, uint32_t wtype, vkm_gpu_buf *w, size_t w_off, int64_t k, int64_t m,
                  vkm_gpu_buf *x, size_t x_off, int64_t n, vkm_gpu_buf *y, size_t y_off);

/* X in the 8-bit form that gemv's integer-dot variants read (the Q8X format of
 * shaders/matmul_common.h: row r at byte 48 r k / 32 of q), written by the op that produced X
 * (ops.h vkm_op_rmsnorm_q8, vkm_op_rmsnorm_add_q8, vkm_op_moe_combine_norm with q): the float X
 * it stands for is `rows` rows of k values of buffer x from byte x_off, x_stride floats apart
 * (0 = k). A matmul given one whose X is exactly that (the same buffer, offset, k and stride, at
 * most `rows` rows) binds q instead of recording a quantization of its own where it runs those
 * variants; any other matmul ignores it. q.offset must be a multiple of 16. */
typedef struct vkm_q8x {
    vkm_gpu_buf *x;
    size_t x_off;
    int64_t k, x_stride, rows;
    vkm_gpu_arg q;
} vkm_q8x;

/* vkm_op_matmul with X also given in 8-bit form (xq may be NULL). */
int vkm_op_matmul_xq(vkm_gpu *gpu, uint32_t wtype, vkm_gpu_buf *w, size_t w_off, int64_t k,
                     int64_t m, vkm_gpu_buf *x, size_t x_off, int64_t n, vkm_gpu_buf *y,
                     size_t y_off, const vkm_q8x *xq);

/* How the indexed form finds the X and Y rows of each matrix. */
enum vkm_matmul_id_mode {
    /* Expert dispatch: rows[n_rows] (int32) lists X row indices grouped by matrix;
     * mats[2 * n_mat] (int32) gives each matrix its (first, count) range in rows[]. Entry p of
     * rows[] writes Y row p, so Y has n_rows rows in rows[] order. Matrices with count 0 do no
     * work. Out-of-range ranges are treated as empty; X rows outside [0, n_x) read as zeros. */
    VKM_MATMUL_ID_ROWS = 0,
    /* Per-head matrices: matrix e multiplies X row i*n_mat + e into Y row i*n_mat + e for
     * i < n_tok (X laid out [token][head][...], Y [token][head][...]). No index buffers. */
    VKM_MATMUL_ID_HEADS = 1,
};

typedef struct vkm_matmul_id {
    uint32_t wtype;
    vkm_gpu_buf *w; /* stacked W {k, m, n_mat}: matrix e at w_off + e * m * row_bytes */
    size_t w_off;
    int64_t k, m, n_mat;
    vkm_gpu_buf *x; /* X: n_x rows of k f32, x_stride floats apart (0 = k) */
    size_t x_off;
    int64_t n_x, x_stride;
    vkm_gpu_buf *y; /* Y: n_y rows of m f32, y_stride floats apart (0 = m) */
    size_t y_off;
    int64_t n_y, y_stride;
    int mode; /* enum vkm_matmul_id_mode */
    /* VKM_MATMUL_ID_ROWS: */
    vkm_gpu_buf *rows; /* int32 rows[n_rows] */
    size_t rows_off;
    int64_t n_rows;
    vkm_gpu_buf *mats; /* int32 mats[2 * n_mat]: (first, count) per matrix */
    size_t mats_off;
    int64_t max_per_mat; /* an upper bound on every count (0 = n_rows); <= 8 picks GEMV. The
                            result is correct for any count, only the speed depends on it. */
    /* true: mats[] holds 3 * n_mat + 1 values: after the (first, count) pairs,
     * mats[2 * n_mat] = A, the number of matrices with count > 0, and mats[2 * n_mat + 1 + j]
     * (j < A) their indices (any order, each once). Work is then launched for at most
     * min(n_mat, n_rows) matrices instead of all n_mat (shaders/moe_group.comp writes this). */
    bool active_list;
    /* VKM_MATMUL_ID_HEADS: */
    int64_t n_tok; /* entries per matrix */
    /* optional: X in 8-bit form (NULL: none) */
    const vkm_q8x *xq;
} vkm_matmul_id;

/* The answer of vkm_op_matmul_pair / vkm_op_matmul_id_pair when the two matrices cannot be one
 * dispatch here: nothing was recorded and no error set; the caller records them on its own. */
#define VKM_MATMUL_UNFIT 1

/* Two projections of the same X in one dispatch (q_a and kv_a): Y (n x m at y_off) = X W^T and
 * Y2 (n x m2 at y2_off) = X W2^T, W {k, m} at w_off and W2 {k, m2} at w2_off in buffer w, both
 * of type wtype, Y and Y2 in buffer y; otherwise as vkm_op_matmul. lavapipe spends 20-40 us on
 * every dispatch, so this saves one per layer. Only the texel kernels of CPU devices do this;
 * VKM_MATMUL_UNFIT where they cannot, or where one window cannot hold both matrices or both
 * outputs. xq: X in 8-bit form or NULL (vkm_q8x). */
int vkm_op_matmul_pair(vkm_gpu *gpu, uint32_t wtype, int64_t k, vkm_gpu_buf *w, size_t w_off,
                       int64_t m, size_t w2_off, int64_t m2, vkm_gpu_buf *x, size_t x_off,
                       int64_t n, vkm_gpu_buf *y, size_t y_off, size_t y2_off, const vkm_q8x *xq);

/* The indexed matmul described by *a (see enum vkm_matmul_id_mode). n_rows / n_tok == 0 records
 * nothing. */
int vkm_op_matmul_id(vkm_gpu *gpu, const vkm_matmul_id *a);

/* The gated (SwiGLU) form, spec §4.7: Y[p][j] = silu(G[j] · X[p]) * (U[j] · X[p]) for j < m,
 * where G is the stack *a describes and U a stack of the same type and shape at up_off in `up`;
 * everything else as in vkm_op_matmul_id. One dispatch with the texel kernels of CPU devices
 * when U lies in the same buffer as G; otherwise G and U are computed into `scratch` (2 x
 * entries x m f32) and combined by a swiglu dispatch, which needs Y contiguous (y_stride 0 or
 * m) and the scratch and Y offsets aligned like the element-wise ops' (core/ops.h: the device's
 * storage buffer offset alignment, at most 256). */
int vkm_op_matmul_id_glu(vkm_gpu *gpu, const vkm_matmul_id *a, vkm_gpu_buf *up, size_t up_off,
                         vkm_gpu_arg scratch);

/* The gated form of vkm_op_matmul: Y (n x m) = silu(X G^T) * (X U^T), G {k, m} at gate_off in
 * `gate`, U {k, m} at up_off in `up`, same type; scratch as for vkm_op_matmul_id_glu (2 x n x m
 * f32). Where the one-dispatch form cannot run and U's rows follow G's, the fallback is one
 * matmul of 2m rows and a swiglu (two dispatches), else three. xq as for vkm_op_matmul_pair. */
int vkm_op_matmul_glu(vkm_gpu *gpu, uint32_t wtype, int64_t k, int64_t m, vkm_gpu_buf *gate,
                      size_t gate_off, vkm_gpu_buf *up, size_t up_off, vkm_gpu_buf *x, size_t x_off,
                      int64_t n, vkm_gpu_buf *y, size_t y_off, vkm_gpu_arg scratch,
                      const vkm_q8x *xq);

/* A second matrix in the dispatch of an indexed matmul in VKM_MATMUL_ID_ROWS mode (the shared
 * expert beside the routed ones): the type and shape of the stack's matrices, at w_off in the
 * stack's buffer (the gated form: its up matrix at up_off in the same buffer); entry i < n reads X
 * row x_row + i and writes Y row y_row + i (rows inside the call's n_x and n_y). */
typedef struct vkm_matmul_second {
    size_t w_off, up_off;
    int64_t n, x_row, y_row;
} vkm_matmul_second;

/* vkm_op_matmul_id (up NULL) or vkm_op_matmul_id_glu (up, up_off) with `second` computed in the
 * same dispatch, in the same (plain or gated) form: lavapipe spends 20-40 us on every dispatch,
 * so the shared expert costs two fewer per MoE layer at decode. Only the texel kernels of CPU
 * devices do this; VKM_MATMUL_UNFIT for other kernels, HEADS
 * mode, no entries in rows[], a gated form that needs two dispatches or a window over all the
 * matrices too large to bind: the caller then records the second matrix on its own. */
int vkm_op_matmul_id_pair(vkm_gpu *gpu, const vkm_matmul_id *a, vkm_gpu_buf *up, size_t up_off,
                          const vkm_matmul_second *second);

/* Whether the matmul kernels handle weight type `type`. */
bool vkm_op_matmul_supported(uint32_t type);

#endif
