/* matmul_common.h - limits and the push-constant layout of the matmul kernels, shared by C
 * (core/ops_matmul.c) and GLSL (shaders/matmul_*.comp, gemv.comp). The CPU-device kernels
 * (shaders/cpu/matmul_lane.comp) use these limits and a push block of their own that begins with
 * the same fields (shaders/cpu/matmul_cpu.h).
 *
 * Y[row][j] = sum_k W[j][k] * X[xrow][k]: W is a weight matrix in its GGUF encoding (ggml {k, m},
 * m rows of w_row_bytes bytes), X and Y are f32 row-major with row strides x_stride / y_stride.
 * Every offset here is relative to the buffer window bound for that binding (the C side binds
 * windows starting at a 256-byte aligned offset, the Vulkan maximum of
 * minStorageBufferOffsetAlignment, and passes the remainder here), so all of them are small.
 *
 * Indexed ("_id") kernels: W is a stack of n_mat matrices, matrix e at byte w_off + e*w_mat_bytes.
 *   mode VKM_MM_ID_ROWS:  mats[mats_off + 2e] = first entry, mats[mats_off + 2e + 1] = count;
 *                         entry i of matrix e reads X row rows[rows_off + first + i] and writes
 *                         Y row first + i. Entries must lie in [0, n_rows).
 *                         With `act` set, mats[] continues with the active list:
 *                         mats[mats_off + 2*n_mat] = A, the number of matrices with count > 0,
 *                         and mats[mats_off + 2*n_mat + 1 + j] (j < A) their indices; the grid's
 *                         z then numbers list entries (z = min(n_mat, n_rows) >= A; entries
 *                         j >= A exit at once), so empty matrices cost nothing.
 *   mode VKM_MM_ID_HEADS: every matrix has n entries; entry i of matrix e reads X row
 *                         i*n_mat + e and writes Y row i*n_mat + e (per-head matrices, X laid
 *                         out [token][head][k], Y [token][head][m]).
 * Bad indices read from the GPU buffers (X row >= n_x, Y row >= n_y, ranges outside rows) are
 * skipped or read as zeros, never dereferenced. */
#ifndef VKM_MATMUL_COMMON_H
#define VKM_MATMUL_COMMON_H

/* GEMV (decode): at most this many X columns per pass, rows per workgroup, threads. */
#define VKM_MM_VEC_MAX_COLS 8
#define VKM_MM_VEC_MAX_ROWS 8
#define VKM_MM_VEC_MAX_WG 256
/* Reduction scratch: one slot per subgroup (subgroups are at least 8 wide on every device we
 * target, so 256 threads give at most 32 subgroups). */
#define VKM_MM_VEC_MAX_SUBGROUPS 32

/* GEMM (prefill) tile: BM weight rows x BN X columns per workgroup, BK along k per step;
 * VKM_MM_WG threads each accumulate a (BM/16) x (BN/16) register tile. */
#define VKM_MM_BM 64
#define VKM_MM_BN 64
#define VKM_MM_BK 32
#define VKM_MM_WG 256

#define VKM_MM_ID_ROWS 0
#define VKM_MM_ID_HEADS 1

/* Largest grid dimension the C side uses (Vulkan guarantees 65535 in every dimension). */
#define VKM_MM_MAX_GROUPS 65535

#ifdef VULKAN
#define VKM_U32 uint
#define VKM_PUSH_BEGIN(name) layout(push_constant) uniform name {
#define VKM_PUSH_END(name)                                                                         \
    }                                                                                              \
    p;
#else
#include <stdint.h>
#define VKM_U32 uint32_t
#define VKM_PUSH_BEGIN(name) typedef struct name {
#define VKM_PUSH_END(name)                                                                         \
    }                                                                                              \
    name;
#endif

/* The fields of vkm_matmul_push in order, U their 32-bit unsigned type: a list so that the CPU
 * kernels' push block (cpu/matmul_cpu.h) can begin with the same ones. */
#define VKM_MATMUL_PUSH_FIELDS(U)                                                                  \
    U k;           /* elements per W row / X row used */                                           \
    U m;           /* W rows = outputs per Y row */                                                \
    U n;           /* plain: X columns (rows of X and Y); HEADS: tokens */                         \
    U w_off;       /* byte offset of matrix 0 in the W window (even; 4-aligned for F32) */         \
    U w_row_bytes; /* bytes per W row */                                                           \
    U w_mat_bytes; /* bytes per matrix of a stack (m * w_row_bytes) */                             \
    U x_off;       /* element offset of X row 0 in the X window */                                 \
    U x_stride;    /* elements between X rows (>= k) */                                            \
    U n_x;         /* X rows available */                                                          \
    U y_off;       /* element offset of Y row 0 */                                                 \
    U y_stride;    /* elements between Y rows (>= m) */                                            \
    U n_y;         /* Y rows available */                                                          \
    U n_mat;       /* matrices in the stack (id kernels) */                                        \
    U mode;        /* VKM_MM_ID_ROWS or VKM_MM_ID_HEADS */                                         \
    U rows_off;    /* element offset of rows[] in its window */                                    \
    U mats_off;    /* element offset of mats[] in its window */                                    \
    U n_rows;      /* entries in rows[] */                                                         \
    U act;         /* ROWS mode: 1 = z numbers entries of the active list (see above) */           \
    /* The fused forms (gemv.comp, cpu/matmul_lane.comp). glu: 0 = off, else the gated form, */    \
    /* Y = silu(dot(W row j, X)) * dot(row j of the matrix glu bytes further, X). ROWS mode   */   \
    /* only: the second matrix of the dispatch (same type and shape; the shared expert beside */   \
    /* the routed ones), computed by the workgroups of z = x2_z (0xFFFFFFFF: none): W at byte */   \
    /* w2_off of the W window, its gated form's up matrix glu2 bytes further (modulo 2^32),   */   \
    /* n2 entries, entry i reading X row x2_row + i and writing Y row y2_row + i.             */   \
    U glu;                                                                                         \
    U x2_z;                                                                                        \
    U w2_off;                                                                                      \
    U glu2;                                                                                        \
    U n2;                                                                                          \
    U x2_row;                                                                                      \
    U y2_row;                                                                                      \
    /* plain form only: rows j >= m1 (0xFFFFFFFF: none) are rows j - m1 of a second matrix at */   \
    /* byte w2_off of the W window, written to Y element y2_off + i * y2_stride + (j - m1)    */   \
    /* for column i (two projections of the same X in one dispatch: q_a and kv_a) */               \
    U m1;                                                                                          \
    U y2_off;                                                                                      \
    U y2_stride;

/* The GPU kernels' block (gemv, matmul_sg, matmul_vec, matmul_mm). quant_q8.comp and the CPU
 * kernels have their own. */
#if !defined(VULKAN) || (!defined(VKM_QUANT_SHADER) && !defined(VKM_MATMUL_CPU_SHADER))
VKM_PUSH_BEGIN(vkm_matmul_push)
VKM_MATMUL_PUSH_FIELDS(VKM_U32)
VKM_PUSH_END(vkm_matmul_push)
#endif

#ifndef VULKAN
_Static_assert(sizeof(vkm_matmul_push) == 28 * 4, "vkm_matmul_push must match the GLSL block");
#endif

/* 8-bit activations of gemv's integer-dot variants (quant_q8.comp writes them, gemv_q8.glsl
 * reads them; core/ref_matmul.c vkm_ref_quant_q8x is the reference): X row r of k values (k a
 * multiple of 32) becomes k / 32 blocks of VKM_Q8X_BLOCK_BYTES bytes, q_stride 16-byte units
 * apart; block b holds q[32] int8 (2 x 16 bytes), then the header vec4 (d, d * (q[0] + .. +
 * q[15]), d, d * (q[16] + .. + q[31])) with d = max |x| / 127 over the block and q = x / d rounded
 * to nearest even (|q| <= 127). The header repeats d so that one 8-byte load gives a half's
 * (d, sum). The matmul push block then holds x_off / x_stride in 16-byte units of this buffer. */
#define VKM_Q8X_BLOCK_BYTES 48
#define VKM_Q8X_WG 64 /* quant_q8.comp: threads per workgroup, a block each */

#if !defined(VULKAN) || defined(VKM_QUANT_SHADER)
VKM_PUSH_BEGIN(vkm_quant_push)
VKM_U32 k;        /* elements per X row (a multiple of 32) */
VKM_U32 n;        /* X rows */
VKM_U32 x_off;    /* element offset of X row 0 in the X window */
VKM_U32 x_stride; /* elements between X rows */
VKM_U32 q_stride; /* 16-byte units between output rows (3 * k / 32) */
VKM_U32 gx;       /* workgroups along x (the grid's rows of workgroups are gx apart) */
VKM_PUSH_END(vkm_quant_push)
#endif

#ifndef VULKAN
_Static_assert(sizeof(vkm_quant_push) == 6 * 4, "vkm_quant_push must match the GLSL block");
#endif

#undef VKM_PUSH_BEGIN
#undef VKM_PUSH_END
#undef VKM_U32

#endif
