/* ops_matmul.c - records the matmul kernels through gpu.h: checks shapes and buffer extents,
 * picks the kernel variant (on GPUs gemv / matmul_sg / matmul_vec for <= 8 columns, the tiled
 * matmul_mm above; plain or indexed; one per weight type), fills the push constants of
 * shaders/matmul_common.h and sizes the grid. The CPU-device family (the plan's tuning says
 * lane_rows: shaders/cpu/matmul_lane.comp for every column count) takes the same shapes, windows
 * and push block, and core/ops_cpu.c picks its variant and records its dispatches. Where the plan
 * gives gemv's integer-dot variant, X is first quantized to 8 bits (quant_q8.comp) into a scratch
 * buffer of the gpu that the GEMV then reads (one more dispatch per matmul).
 *
 * Buffers are bound as windows that start at the byte offset rounded down to 256 (the largest
 * minStorageBufferOffsetAlignment Vulkan allows), so any tensor offset inside a big buffer works;
 * the remainder goes into the push constants. Every size is checked with overflow-safe arithmetic
 * before it reaches the GPU; a window must fit the 32-bit addressing of the shaders. Weights
 * larger than the device's weight window (vkm_gpu_device_info.weight_window_bytes: its
 * maxStorageBufferRange, e.g. 128 MiB on lavapipe) are bound in several windows, one dispatch
 * each: a stack of matrices in groups of whole matrices (experts and heads are independent), a
 * matrix larger than a window in ranges of rows (each window's outputs are their own Y columns);
 * the kernels' choice is made once for the whole tensor, so every window uses the same one. */
#include "ops_matmul.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../shaders/matmul_common.h"
#include "err.h"
#include "iq_gpu.h"
#include "kernels.h"
#include "ops.h"
#include "ops_cpu.h"
#include "qtype.h"

#define WINDOW_ALIGN 256u
#define NO_SECOND 0xFFFFFFFFu /* vkm_matmul_push.x2_z: no second matrix */

bool vkm_op_matmul_supported(uint32_t type) {
    const vkm_qtype_info *t = vkm_qtype_get(type); /* the types with device kernels */
    return t && t->supported && t->gpu;
}

/* Checks the weight type and k, returns the row bytes in *row_bytes. */
static int check_weight(const char *fn, uint32_t wtype, int64_t k, int64_t m, size_t *row_bytes) {
    if (!vkm_op_matmul_supported(wtype))
        return vkm_error(VKM_EUNSUPPORTED, "%s: weight type %s (%u) is not supported", fn,
                         vkm_qtype_name(wtype), wtype);
    const vkm_qtype_info *ti = vkm_qtype_get(wtype);
    if (k <= 0 || m <= 0 || k > UINT32_MAX / 4 || m > UINT32_MAX / 4)
        return vkm_error(VKM_EINVAL, "%s: bad shape k=%lld m=%lld", fn, (long long)k, (long long)m);
    if (k % ti->block)
        return vkm_error(VKM_EINVAL, "%s: k=%lld is not a multiple of the %s block (%u)", fn,
                         (long long)k, ti->name, ti->block);
    *row_bytes = vkm_qtype_row_bytes(wtype, (uint64_t)k);
    return 0;
}

/* check_weight, and the column count n of a plain matmul. */
static int check_plain(const char *fn, uint32_t wtype, int64_t k, int64_t m, int64_t n,
                       size_t *row_bytes) {
    int rc = check_weight(fn, wtype, k, m, row_bytes);
    if (rc) return rc;
    if (n < 0 || n > UINT32_MAX / 4)
        return vkm_error(VKM_EINVAL, "%s: bad column count n=%lld", fn, (long long)n);
    return 0;
}

/* Describes the window of buffer b holding `bytes` bytes at byte `off`: the binding in *arg and
 * the offset of the data inside the window (in units of `unit` bytes) in *rel. */
static int bind_window(const char *fn, const char *what, vkm_gpu *gpu, vkm_gpu_buf *b, size_t off,
                       uint64_t bytes, uint32_t unit, vkm_gpu_arg *arg, uint32_t *rel) {
    if (!b) return vkm_error(VKM_EINVAL, "%s: no %s buffer", fn, what);
    size_t bsize = vkm_gpu_buf_size(b);
    if (off % unit)
        return vkm_error(VKM_EINVAL, "%s: %s offset %zu is not a multiple of %u", fn, what, off,
                         unit);
    if (off > bsize || bytes > bsize - off)
        return vkm_error(VKM_EINVAL, "%s: %s needs %llu bytes at offset %zu, buffer has %zu", fn,
                         what, (unsigned long long)bytes, off, bsize);
    size_t start = off - off % WINDOW_ALIGN;
    uint64_t end = (uint64_t)off + bytes;
    end = (end + 3u) & ~(uint64_t)3u; /* the shaders read whole 32-bit words */
    if (end > bsize)
        return vkm_error(VKM_EINVAL,
                         "%s: %s ends at byte %zu, inside the last 32-bit word of a %zu-byte "
                         "buffer; buffer sizes must leave the data's last word whole",
                         fn, what, off + (size_t)bytes, bsize);
    uint64_t size = end - start;
    uint64_t max = vkm_gpu_info(gpu)->max_buffer_bytes;
    if (size > UINT32_MAX || (max && size > max))
        return vkm_error(VKM_EINVAL, "%s: %s range of %llu bytes is too large to bind", fn, what,
                         (unsigned long long)size);
    arg->buf = b;
    arg->offset = start;
    arg->size = (size_t)size;
    *rel = (uint32_t)((off - start) / unit);
    return 0;
}

/* Weight bytes one window may hold: the weight window less what bind_window may add for
 * alignment (255 bytes before, 3 after), within the shaders' 32-bit addressing. */
static uint64_t window_bytes(vkm_gpu *gpu) {
    const uint64_t w = vkm_gpu_info(gpu)->weight_window_bytes;
    const uint64_t lim = w && w < UINT32_MAX ? w : UINT32_MAX;
    return lim > 512 ? lim - 512 : 0;
}

/* Rows of row_bytes bytes per window of a matrix larger than one: a multiple of 64 where more
 * fit, so every window starts at the first one's alignment (modulo 16 bytes: the same kernel
 * variant); 0 when not even one row fits. */
static uint64_t window_rows(vkm_gpu *gpu, uint64_t row_bytes) {
    const uint64_t r = window_bytes(gpu) / row_bytes;
    return r > 64 ? r / 64 * 64 : r;
}

static int row_too_large(vkm_gpu *gpu, const char *fn, uint64_t row_bytes) {
    return vkm_error(VKM_EUNSUPPORTED,
                     "%s: a weight row of %llu bytes does not fit the weight window of %llu bytes "
                     "of %s",
                     fn, (unsigned long long)row_bytes,
                     (unsigned long long)vkm_gpu_info(gpu)->weight_window_bytes,
                     vkm_gpu_info(gpu)->name);
}

/* Bytes of `rows` rows of `len` floats, `stride` floats apart; 0 on overflow (rows, len >= 1). */
static uint64_t rows_bytes(int64_t rows, int64_t stride, int64_t len) {
    uint64_t el;
    if (__builtin_mul_overflow((uint64_t)(rows - 1), (uint64_t)stride, &el) ||
        __builtin_add_overflow(el, (uint64_t)len, &el) || el > UINT64_MAX / 4)
        return 0;
    return el * 4;
}

/* Kernel tuning: the device's kernel plan (core/kernels.h) chooses the GEMV family and its
 * specialization constants. `rows` = the rows of all matrices one GEMV dispatch covers;
 * `fixed_rows` = the part of them that does not depend on the routing (the same in the session
 * warm-up's dry recording, so that it builds the kernels the evaluations use). */
typedef vkm_gemv_tuning tuning;

static tuning get_tuning(vkm_gpu *gpu, uint64_t rows, uint64_t fixed_rows, uint32_t wtype,
                         int64_t cols) {
    return vkm_kernels_gemv_tuning(vkm_gpu_plan(gpu), rows, fixed_rows, wtype, cols);
}

/* Rows (outputs) one GEMV workgroup computes; glu: the gated form. */
static uint32_t vec_rows_per_wg(const tuning *t, bool glu) {
    return t->lane_rows ? vkm_op_cpu_rows_per_wg(t, glu) : t->rows;
}

/* Whether the CPU kernels' weight steps (32 elements for the float types, one block for the
 * others: cpu/matmul_lane.comp LBYTES) are a multiple of 16 bytes, so that 16-byte aligned rows
 * keep every step aligned (WAL); the same types are those whose gemv.comp loads are 16-byte
 * pieces at multiples of 16 bytes into the row (its WAL). */
static bool steps_aligned(uint32_t wtype) {
    return wtype == VKM_F32 || wtype == VKM_F16 || wtype == VKM_BF16 || wtype == VKM_Q4_K ||
           wtype == VKM_Q5_K;
}

/* The kernel variant for (GEMV or GEMM, plain or indexed, type); for GEMV `cols` (1..8) is the
 * number of X columns per pass, rounded up here to a power of two (the CPU family: core/ops_cpu.c,
 * which may change tp->rows). `pc` is the dispatch's push block (x_off / x_stride filled in):
 * gemv and the CPU kernels get XAL = 1 when every X row starts 16-byte aligned in the X window,
 * so their X loads are single aligned chunks, and WAL = 1 when every weight step starts 16-byte
 * aligned, so their weight loads need no realignment. `pc` must have w_off (in bytes),
 * w_row_bytes and w_mat_bytes filled in; `args` are the dispatch's bindings. */
static int get_kernel(vkm_gpu *gpu, tuning *tp, bool gemv, bool id, uint32_t wtype, int64_t cols,
                      const vkm_matmul_push *pc, const vkm_gpu_arg *args, vkm_gpu_kernel **out) {
    /* the IQ types with a grid: one more binding, after the others (dispatch_windows binds it) */
    const int n_bind = (id ? 5 : 3) + (vkm_iq_grid_binds(wtype) ? 1 : 0);
    const bool xal = pc->x_off % 4 == 0 && pc->x_stride % 4 == 0;
    const bool wal = steps_aligned(wtype) && pc->w_off % 16 == 0 && pc->w_row_bytes % 16 == 0 &&
                     (!id || pc->w_mat_bytes % 16 == 0) && pc->glu % 16 == 0 &&
                     pc->w2_off % 16 == 0 && pc->glu2 % 16 == 0;
    if (gemv && tp->lane_rows)
        return vkm_op_cpu_matmul_kernel(gpu, tp, id, wtype, cols, xal, wal, pc, args, n_bind, out);
    const tuning t = *tp;
    const vkm_matmul_family fam = !gemv    ? VKM_MMK_MM
                                  : t.gemv ? VKM_MMK_GEMV
                                  : t.sg   ? VKM_MMK_SG
                                           : VKM_MMK_KSPLIT;
    const vkm_shader_id shader = fam == VKM_MMK_GEMV && t.idot
                                     ? vkm_kernels_gemv_q8_shader(id, wtype)
                                     : vkm_kernels_matmul_shader(fam, id, wtype);
    if (shader == VKM_SHADER_COUNT)
        return vkm_error(VKM_EUNSUPPORTED, "matmul: no %s kernel for weight type %s",
                         vkm_kernels_family_name(fam), vkm_qtype_name(wtype));
    uint32_t spec[6];
    int n_spec = 0;
    if (gemv) {
        uint32_t nc = 1;
        while (nc < cols && nc < VKM_MM_VEC_MAX_COLS) nc *= 2;
        /* gemv: exactly the columns (a pass of absent columns computes them for nothing); the
         * gated form at most 2 a pass (gate and up accumulators per column: on gfx1100 NC 3 takes
         * 120 VGPRs and NC 4 spills, measured with bench --shaders; passes cover more) */
        if (t.gemv) {
            const int64_t cap = pc->glu ? 2 : VKM_MM_VEC_MAX_COLS;
            nc = cols < cap ? (cols > 0 ? (uint32_t)cols : 1u) : (uint32_t)cap;
        }
        spec[0] = t.wg;
        spec[1] = t.rows;
        spec[2] = nc;
        n_spec = 3;
        if (t.gemv) { /* WAL: 128-bit weight loads; XAL: vec4 X loads; GLU (gemv.comp) */
            spec[3] = wal;
            spec[4] = t.idot || xal; /* Q8X: unused */
            spec[5] = id && pc->glu != 0;
            n_spec = 6;
        } else if (t.sg) { /* matmul_sg: subgroups per row */
            spec[3] = t.ks;
            n_spec = 4;
        }
        VKM_ASSERT(spec[0] <= VKM_MM_VEC_MAX_WG &&
                   (t.sg || t.gemv || (spec[1] <= VKM_MM_VEC_MAX_ROWS && spec[0] >= spec[1] * nc)));
    }
    return vkm_gpu_kernel_get(gpu, shader, spec, n_spec, n_bind, sizeof(vkm_matmul_push), out);
}

/* gemv's integer-dot variants: records quant_q8 over the `rows` X rows of k floats that xarg and
 * pc->x_off / x_stride describe, into the gpu's scratch slot 0 in the Q8X format of
 * shaders/matmul_common.h, and points xarg and pc->x_off / x_stride (then 16-byte units) at it.
 * Once per matmul input: every window of the matmul reads the same quantized X. Where xq holds the
 * 8-bit form of this X (x at byte x_off, rows x_stride floats apart: xq's rows or a run of them),
 * already written by the op that produced it, that is bound instead and nothing is recorded. */
static int quant_x(vkm_gpu *gpu, const char *fn, int64_t k, int64_t rows, vkm_gpu_arg *xarg,
                   vkm_matmul_push *pc, const vkm_q8x *xq, const vkm_gpu_buf *x, size_t x_off,
                   int64_t x_stride) {
    const uint64_t kb = (uint64_t)k / 32, stride = 3 * kb; /* 16-byte units per row */
    const uint64_t blocks = (uint64_t)rows * kb, bytes = (uint64_t)rows * stride * 16;
    const uint64_t max = vkm_gpu_info(gpu)->max_buffer_bytes;
    if (k % 32 || bytes > UINT32_MAX || (max && bytes > max))
        return vkm_error(VKM_EINVAL, "%s: %lld x %lld activations are too large to quantize", fn,
                         (long long)rows, (long long)k);
    const uint64_t row_floats = (uint64_t)x_stride * 4; /* bytes from one X row to the next */
    if (xq && xq->q.buf && xq->x == x && xq->k == k &&
        (uint64_t)(xq->x_stride ? xq->x_stride : xq->k) == (uint64_t)x_stride &&
        x_off >= xq->x_off && (x_off - xq->x_off) % row_floats == 0) {
        const uint64_t r0 = (x_off - xq->x_off) / row_floats; /* X's first row in xq's */
        if (r0 + (uint64_t)rows <= (uint64_t)xq->rows) {
            const uint64_t at = r0 * stride * 16, need = at + bytes;
            if (xq->q.size && xq->q.size < need)
                return vkm_error(VKM_EINVAL, "%s: the 8-bit X holds %zu bytes, %llu needed", fn,
                                 xq->q.size, (unsigned long long)need);
            int rc = bind_window(fn, "8-bit X", gpu, xq->q.buf, xq->q.offset + (size_t)at, bytes,
                                 16, xarg, &pc->x_off);
            if (rc) return rc;
            pc->x_stride = (uint32_t)stride;
            return 0;
        }
    }
    const uint64_t groups = (blocks + VKM_Q8X_WG - 1) / VKM_Q8X_WG;
    const uint32_t gx = groups < VKM_MM_MAX_GROUPS ? (uint32_t)groups : VKM_MM_MAX_GROUPS;
    const uint64_t gy = (groups + gx - 1) / gx;
    if (gy > VKM_MM_MAX_GROUPS)
        return vkm_error(VKM_EINVAL, "%s: %lld activation rows are too many", fn, (long long)rows);
    vkm_gpu_buf *q = NULL;
    vkm_gpu_kernel *kern = NULL;
    int rc;
    if ((rc = vkm_gpu_scratch_buf(gpu, 0, (size_t)bytes, &q)) ||
        (rc = vkm_gpu_kernel_get(gpu, VKM_SH_QUANT_Q8, NULL, 0, 2, sizeof(vkm_quant_push), &kern)))
        return rc;
    const vkm_quant_push qp = {(uint32_t)k,  (uint32_t)rows,   pc->x_off,
                               pc->x_stride, (uint32_t)stride, gx};
    const vkm_gpu_arg args[2] = {*xarg, {q, 0, (size_t)bytes}};
    if ((rc = vkm_gpu_dispatch(gpu, kern, args, 2, &qp, gx, (uint32_t)gy, 1))) return rc;
    *xarg = args[1];
    pc->x_off = 0;
    pc->x_stride = (uint32_t)stride;
    return 0;
}

/* Records the dispatch(es) of a matmul kernel with its bindings and the IQ grid: GPU kernels in
 * one; the CPU family's in column windows (core/ops_cpu.c). `cols` bounds the columns (entries)
 * of any matrix; nc_cols is what get_kernel chose the kernel's columns per pass from. */
static int dispatch_windows(vkm_gpu *gpu, vkm_gpu_kernel *kern, const tuning *t, uint32_t wtype,
                            int64_t cols, int64_t nc_cols, const vkm_gpu_arg *args, int n_args,
                            const vkm_matmul_push *pc, uint32_t gx, uint32_t gy, uint32_t gz) {
    vkm_gpu_arg all[6]; /* args and the IQ grid (iq_gpu.h) */
    int rc = vkm_iq_grid_arg(gpu, wtype, &all[n_args < 5 ? n_args : 5]);
    if (rc < 0) return rc;
    if (rc > 0) {
        memcpy(all, args, (size_t)n_args * sizeof *args);
        args = all;
        n_args++;
    }
    if (t->lane_rows)
        return vkm_op_cpu_matmul_dispatch(gpu, kern, t, wtype, cols, nc_cols, args, n_args, pc, gx,
                                          gy, gz);
    return cols > 0 ? vkm_gpu_dispatch(gpu, kern, args, n_args, pc, gx, gy, gz) : 0;
}

/* Grid for a GEMV over m rows: row blocks spread over x and y. */
static int vec_grid(const char *fn, const tuning *t, bool glu, uint32_t m, uint32_t *gx,
                    uint32_t *gy) {
    const uint32_t rows = vec_rows_per_wg(t, glu);
    uint32_t blocks = (m + rows - 1) / rows;
    *gx = blocks < VKM_MM_MAX_GROUPS ? blocks : VKM_MM_MAX_GROUPS;
    *gy = (blocks + *gx - 1) / *gx;
    if (*gy > VKM_MM_MAX_GROUPS) return vkm_error(VKM_EINVAL, "%s: m=%u is too large", fn, m);
    return 0;
}

/* The smallest window [*lo, *lo + *span) over the ranges [off[i], off[i] + len[i]), i < n; false
 * when it would not fit a binding (bind_window adds at most 255 + 3 bytes of alignment). */
static bool union_window(vkm_gpu *gpu, int n, const size_t *off, const uint64_t *len, size_t *lo,
                         uint64_t *span) {
    uint64_t hi = 0;
    *lo = SIZE_MAX;
    for (int i = 0; i < n; i++) {
        if (len[i] > UINT64_MAX - off[i]) return false;
        if (off[i] < *lo) *lo = off[i];
        if (off[i] + len[i] > hi) hi = off[i] + len[i];
    }
    *span = hi - *lo;
    return *span <= window_bytes(gpu);
}

/* vkm_op_matmul, and with m2 > 0 vkm_op_matmul_pair (or VKM_MATMUL_UNFIT). */
static int matmul_plain(vkm_gpu *gpu, uint32_t wtype, vkm_gpu_buf *w, size_t w_off, int64_t m,
                        size_t w2_off, int64_t m2, int64_t k, vkm_gpu_buf *x, size_t x_off,
                        int64_t n, vkm_gpu_buf *y, size_t y_off, size_t y2_off, const vkm_q8x *xq) {
    static const char fn[] = "vkm_op_matmul";
    const bool two = m2 > 0;
    size_t row_bytes = 0;
    int rc = check_plain(fn, wtype, k, two ? m + m2 : m, n, &row_bytes);
    if (rc || n == 0) return rc;
    if (two && m > UINT32_MAX / 4 - m2)
        return vkm_error(VKM_EINVAL, "%s: bad shape m=%lld+%lld", fn, (long long)m, (long long)m2);

    vkm_matmul_push pc = {0};
    vkm_gpu_arg args[3];
    uint64_t wbytes, w2bytes = 0, ybytes = rows_bytes(n, m, m), y2bytes = 0;
    if (__builtin_mul_overflow((uint64_t)m, (uint64_t)row_bytes, &wbytes) || !rows_bytes(n, k, k) ||
        !ybytes ||
        (two && (__builtin_mul_overflow((uint64_t)m2, (uint64_t)row_bytes, &w2bytes) ||
                 !(y2bytes = rows_bytes(n, m2, m2)))))
        return vkm_error(VKM_EINVAL, "%s: tensors too large", fn);
    const uint32_t wunit = wtype == VKM_F32 ? 4 : 2;
    size_t wlo = w_off, ylo = y_off;
    uint64_t wspan = wbytes, yspan = ybytes;
    if (two) { /* one window over both matrices, one over both outputs */
        const size_t wo[2] = {w_off, w2_off}, yo[2] = {y_off, y2_off};
        const uint64_t wl[2] = {wbytes, w2bytes}, yl[2] = {ybytes, y2bytes};
        if (!union_window(gpu, 2, wo, wl, &wlo, &wspan) ||
            !union_window(gpu, 2, yo, yl, &ylo, &yspan) || (w_off - wlo) % wunit ||
            (w2_off - wlo) % wunit || (y_off - ylo) % 4 || (y2_off - ylo) % 4)
            return VKM_MATMUL_UNFIT;
    }
    /* a matrix larger than the weight window: ranges of rows, a dispatch each (the pair has a
     * single window, checked above) */
    uint64_t step = (uint64_t)(two ? m + m2 : m);
    if (!two && wbytes > window_bytes(gpu) && !(step = window_rows(gpu, row_bytes)))
        return row_too_large(gpu, fn, row_bytes);
    if ((rc = bind_window(fn, "X", gpu, x, x_off, rows_bytes(n, k, k), 4, &args[1], &pc.x_off)) ||
        (rc = bind_window(fn, "Y", gpu, y, ylo, yspan, 4, &args[2], &pc.y_off)))
        return rc;
    const uint32_t ybase = pc.y_off;
    pc.k = (uint32_t)k;
    pc.n = (uint32_t)n;
    pc.w_row_bytes = (uint32_t)row_bytes;
    pc.w_mat_bytes = (uint32_t)wbytes;
    pc.x_stride = (uint32_t)k;
    pc.n_x = (uint32_t)n;
    pc.y_stride = (uint32_t)m;
    pc.n_y = (uint32_t)n;
    pc.n_mat = 1;
    pc.x2_z = NO_SECOND;
    pc.m1 = NO_SECOND;
    /* the kernel is chosen for the whole matrix: every window gets the same one */
    const uint32_t m_all = (uint32_t)(two ? m + m2 : m);
    tuning t = get_tuning(gpu, m_all, m_all, wtype, n);
    const bool gemv = n <= VKM_MM_VEC_MAX_COLS || t.lane_rows;
    if (gemv && t.gemv && t.idot) { /* 8-bit X, once for every window */
        if (two && !vkm_gpu_plan(gpu)->fuse.qa_kva) return VKM_MATMUL_UNFIT;
        if ((rc = quant_x(gpu, fn, k, n, &args[1], &pc, xq, x, x_off, k))) return rc;
    }
    for (uint64_t r0 = 0; r0 < m_all && !rc; r0 += step) {
        const uint64_t rows = m_all - r0 < step ? m_all - r0 : step;
        const size_t w_lo = wlo + (size_t)(r0 * row_bytes);
        if ((rc = bind_window(fn, "weight", gpu, w, w_lo, two ? wspan : rows * row_bytes, wunit,
                              &args[0], &pc.w_off)))
            return rc;
        const uint32_t wbase = pc.w_off * wunit;
        pc.w_off = wbase + (uint32_t)(w_off - wlo);
        pc.y_off = ybase + (uint32_t)((y_off - ylo) / 4 + r0);
        pc.m = (uint32_t)rows;
        if (two) {
            pc.m1 = (uint32_t)m;
            pc.w2_off = wbase + (uint32_t)(w2_off - wlo);
            pc.y2_off = ybase + (uint32_t)((y2_off - ylo) / 4);
            pc.y2_stride = (uint32_t)m2;
        }
        /* the plan's qa_kva form: the texel kernels, where the windows are texel buffers, and
         * the gemv kernels (rows from m1 on from the second matrix) */
        if (two && !(vkm_gpu_plan(gpu)->fuse.qa_kva && gemv &&
                     (t.gemv || (t.lane_rows && vkm_op_cpu_texel(gpu, args)))))
            return VKM_MATMUL_UNFIT;
        tuning tw = t;
        vkm_gpu_kernel *kern;
        if ((rc = get_kernel(gpu, &tw, gemv, false, wtype, n, &pc, args, &kern))) return rc;
        uint32_t gx, gy;
        if (gemv) {
            if ((rc = vec_grid(fn, &tw, false, pc.m, &gx, &gy))) return rc;
        } else {
            gx = (pc.m + VKM_MM_BM - 1) / VKM_MM_BM;
            gy = (pc.n + VKM_MM_BN - 1) / VKM_MM_BN;
            if (gy > VKM_MM_MAX_GROUPS) gy = VKM_MM_MAX_GROUPS; /* the kernel strides over tiles */
            if (gx > VKM_MM_MAX_GROUPS)
                return vkm_error(VKM_EINVAL, "%s: m=%u is too large", fn, pc.m);
        }
        rc = dispatch_windows(gpu, kern, &tw, wtype, n, n, args, 3, &pc, gx, gy, 1);
    }
    return rc;
}

int vkm_op_matmul(vkm_gpu *gpu, uint32_t wtype, vkm_gpu_buf *w, size_t w_off, int64_t k, int64_t m,
                  vkm_gpu_buf *x, size_t x_off, int64_t n, vkm_gpu_buf *y, size_t y_off) {
    return matmul_plain(gpu, wtype, w, w_off, m, 0, 0, k, x, x_off, n, y, y_off, 0, NULL);
}

int vkm_op_matmul_xq(vkm_gpu *gpu, uint32_t wtype, vkm_gpu_buf *w, size_t w_off, int64_t k,
                     int64_t m, vkm_gpu_buf *x, size_t x_off, int64_t n, vkm_gpu_buf *y,
                     size_t y_off, const vkm_q8x *xq) {
    return matmul_plain(gpu, wtype, w, w_off, m, 0, 0, k, x, x_off, n, y, y_off, 0, xq);
}

int vkm_op_matmul_pair(vkm_gpu *gpu, uint32_t wtype, int64_t k, vkm_gpu_buf *w, size_t w_off,
                       int64_t m, size_t w2_off, int64_t m2, vkm_gpu_buf *x, size_t x_off,
                       int64_t n, vkm_gpu_buf *y, size_t y_off, size_t y2_off, const vkm_q8x *xq) {
    if (m2 <= 0)
        return vkm_error(VKM_EINVAL, "vkm_op_matmul_pair: bad shape m2=%lld", (long long)m2);
    return matmul_plain(gpu, wtype, w, w_off, m, w2_off, m2, k, x, x_off, n, y, y_off, y2_off, xq);
}

/* vkm_op_matmul_id; up_off != 0 asks for the gated form (vkm_op_matmul_id_glu) in one dispatch,
 * `second` for a second matrix in the same dispatch (vkm_op_matmul_id_pair); either gives
 * VKM_MATMUL_UNFIT (nothing recorded, no error) where the kernels cannot. */
static int matmul_id(vkm_gpu *gpu, const vkm_matmul_id *a, int64_t up_off,
                     const vkm_matmul_second *second) {
    static const char fn[] = "vkm_op_matmul_id";
    if (!a) return vkm_error(VKM_EINVAL, "%s: no arguments", fn);
    size_t row_bytes = 0;
    int rc = check_weight(fn, a->wtype, a->k, a->m, &row_bytes);
    if (rc) return rc;
    if (a->n_mat <= 0 || a->n_mat > VKM_MM_MAX_GROUPS)
        return vkm_error(VKM_EINVAL, "%s: bad matrix count %lld", fn, (long long)a->n_mat);
    int64_t x_stride = a->x_stride ? a->x_stride : a->k,
            y_stride = a->y_stride ? a->y_stride : a->m;
    if (x_stride < a->k || y_stride < a->m || x_stride > UINT32_MAX / 4 ||
        y_stride > UINT32_MAX / 4)
        return vkm_error(VKM_EINVAL, "%s: bad strides x=%lld y=%lld", fn, (long long)x_stride,
                         (long long)y_stride);
    if (a->n_x <= 0 || a->n_y <= 0 || a->n_x > UINT32_MAX / 4 || a->n_y > UINT32_MAX / 4)
        return vkm_error(VKM_EINVAL, "%s: bad row counts n_x=%lld n_y=%lld", fn, (long long)a->n_x,
                         (long long)a->n_y);

    vkm_matmul_push pc = {0};
    vkm_gpu_arg args[5];
    int64_t per_mat; /* upper bound on entries per matrix */
    if (a->mode == VKM_MATMUL_ID_ROWS) {
        if (a->n_rows < 0 || a->n_rows > UINT32_MAX / 4 || a->max_per_mat < 0)
            return vkm_error(VKM_EINVAL, "%s: bad row count %lld", fn, (long long)a->n_rows);
        if (a->n_rows == 0) return second ? VKM_MATMUL_UNFIT : 0;
        if (a->n_y < a->n_rows)
            return vkm_error(VKM_EINVAL, "%s: Y has %lld rows, rows[] %lld entries", fn,
                             (long long)a->n_y, (long long)a->n_rows);
        per_mat = a->max_per_mat && a->max_per_mat < a->n_rows ? a->max_per_mat : a->n_rows;
        if ((rc = bind_window(fn, "rows", gpu, a->rows, a->rows_off, (uint64_t)a->n_rows * 4, 4,
                              &args[3], &pc.rows_off)) ||
            (rc = bind_window(fn, "mats", gpu, a->mats, a->mats_off,
                              (uint64_t)a->n_mat * (a->active_list ? 12 : 8) +
                                  (a->active_list ? 4 : 0),
                              4, &args[4], &pc.mats_off)))
            return rc;
        pc.n_rows = (uint32_t)a->n_rows;
        pc.act = a->active_list ? 1 : 0;
        pc.mode = VKM_MM_ID_ROWS;
    } else if (a->mode == VKM_MATMUL_ID_HEADS) {
        if (second) return VKM_MATMUL_UNFIT;
        if (a->n_tok < 0 || a->n_tok > UINT32_MAX / 4)
            return vkm_error(VKM_EINVAL, "%s: bad token count %lld", fn, (long long)a->n_tok);
        if (a->n_tok == 0) return 0;
        uint64_t need = (uint64_t)a->n_tok * (uint64_t)a->n_mat;
        if (need > (uint64_t)a->n_x || need > (uint64_t)a->n_y)
            return vkm_error(VKM_EINVAL, "%s: %lld tokens x %lld heads need more X/Y rows", fn,
                             (long long)a->n_tok, (long long)a->n_mat);
        per_mat = a->n_tok;
        pc.n = (uint32_t)a->n_tok;
        pc.mode = VKM_MM_ID_HEADS;
    } else {
        return vkm_error(VKM_EINVAL, "%s: bad mode %d", fn, a->mode);
    }

    uint64_t mat_bytes, wbytes, xbytes = rows_bytes(a->n_x, x_stride, a->k),
                                ybytes = rows_bytes(a->n_y, y_stride, a->m);
    if (__builtin_mul_overflow((uint64_t)a->m, (uint64_t)row_bytes, &mat_bytes) ||
        __builtin_mul_overflow(mat_bytes, (uint64_t)a->n_mat, &wbytes) || !xbytes || !ybytes)
        return vkm_error(VKM_EINVAL, "%s: tensors too large", fn);
    uint32_t wunit = a->wtype == VKM_F32 ? 4 : 2;
    /* the gated form and the second matrix bind one window over all the matrices (G, U, the
     * second and its up); W starts at w_off - lo inside it */
    size_t lo = a->w_off, ranges[4] = {a->w_off};
    uint64_t wspan = wbytes, lens[4] = {wbytes};
    int n_ranges = 1;
    if (up_off) {
        /* the separate form instead (whose own checks report bad ranges) when U starts outside
         * the buffer's address range, overlaps G (harmless there), or the window over both is
         * more than a binding holds (bind_window adds at most 255 + 3 bytes of alignment) */
        const uint64_t dist = up_off < 0 ? 0 - (uint64_t)up_off : (uint64_t)up_off;
        if (up_off < 0 ? dist > a->w_off : dist > SIZE_MAX - a->w_off) return VKM_MATMUL_UNFIT;
        const size_t u = up_off < 0 ? a->w_off - (size_t)dist : a->w_off + (size_t)dist;
        if (dist < wbytes || dist > UINT32_MAX || wbytes > UINT32_MAX) return VKM_MATMUL_UNFIT;
        ranges[n_ranges] = u;
        lens[n_ranges++] = wbytes;
    }
    if (second) { /* its entries must lie inside X and Y */
        if (second->n <= 0 || second->x_row < 0 || second->y_row < 0 ||
            second->n > a->n_x - second->x_row || second->n > a->n_y - second->y_row)
            return vkm_error(VKM_EINVAL,
                             "%s: second matrix entries %lld from X row %lld, Y row "
                             "%lld outside %lld / %lld rows",
                             fn, (long long)second->n, (long long)second->x_row,
                             (long long)second->y_row, (long long)a->n_x, (long long)a->n_y);
        ranges[n_ranges] = second->w_off;
        lens[n_ranges++] = mat_bytes;
        if (up_off) {
            ranges[n_ranges] = second->up_off;
            lens[n_ranges++] = mat_bytes;
        }
    }
    if (n_ranges > 1 && !union_window(gpu, n_ranges, ranges, lens, &lo, &wspan))
        return VKM_MATMUL_UNFIT;
    /* a stack larger than the weight window (one range only: the gated form and the second
     * matrix need one window over all theirs): groups of `group` whole matrices, or, for a matrix
     * larger than a window, one matrix at a time in ranges of `step` rows; a dispatch each */
    uint64_t group = (uint64_t)a->n_mat, step = (uint64_t)a->m;
    if (n_ranges == 1 && wbytes > window_bytes(gpu)) {
        group = window_bytes(gpu) / mat_bytes;
        if (!group && !(step = window_rows(gpu, row_bytes)))
            return row_too_large(gpu, fn, row_bytes);
        if (!group) group = 1;
    }
    if ((rc = bind_window(fn, "X", gpu, a->x, a->x_off, xbytes, 4, &args[1], &pc.x_off)) ||
        (rc = bind_window(fn, "Y", gpu, a->y, a->y_off, ybytes, 4, &args[2], &pc.y_off)))
        return rc;
    if (a->mode == VKM_MATMUL_ID_HEADS) args[3] = args[4] = args[1]; /* bound, never read */
    pc.glu = (uint32_t)up_off; /* modulo 2^32, as the shader adds */
    pc.x2_z = NO_SECOND;
    pc.m1 = NO_SECOND;
    pc.k = (uint32_t)a->k;
    pc.m = (uint32_t)a->m;
    pc.w_row_bytes = (uint32_t)row_bytes;
    pc.w_mat_bytes = (uint32_t)mat_bytes;
    pc.x_stride = (uint32_t)x_stride;
    pc.n_x = (uint32_t)a->n_x;
    pc.y_stride = (uint32_t)y_stride;
    pc.n_y = (uint32_t)a->n_y;
    pc.n_mat = (uint32_t)a->n_mat;

    /* with the active list, z numbers list entries: at most one matrix per entry of rows[] */
    uint32_t gz = (uint32_t)a->n_mat;
    if (pc.act && (uint64_t)a->n_rows < gz) gz = (uint32_t)a->n_rows;
    const uint32_t gz_all = second ? gz + 1 : gz; /* the second: one more z group */
    if (second && gz >= VKM_MM_MAX_GROUPS) return VKM_MATMUL_UNFIT;
    if (second && second->n > per_mat) per_mat = second->n;
    /* the kernel is chosen for the whole stack: every window gets the same one */
    const tuning t =
        get_tuning(gpu, (uint64_t)pc.m * gz_all,
                   pc.mode == VKM_MM_ID_ROWS ? pc.m : (uint64_t)pc.m * gz_all, a->wtype, per_mat);
    const bool gemv = per_mat <= VKM_MM_VEC_MAX_COLS || t.lane_rows;
    /* the gemv's columns per pass: the entries an active matrix is expected to have, not the
     * most it may have (passes cover any count): the routed experts of a decode step of several
     * sequences mostly have one token each (8 streams, top-6 of 64 experts: 48 entries over ~35
     * experts), and a pass of absent columns costs their arithmetic (CPU devices) and registers */
    int64_t nc_cols = per_mat;
    if (pc.mode == VKM_MM_ID_ROWS) {
        const int64_t spread = a->n_mat < a->n_rows ? a->n_mat : a->n_rows;
        const int64_t expect = (a->n_rows + spread - 1) / spread;
        if (expect < nc_cols) nc_cols = expect;
    }
    if (gemv && t.gemv && t.idot) { /* 8-bit X, once for every window (the UNFIT cases first) */
        const vkm_kernel_plan *plan = vkm_gpu_plan(gpu);
        if ((up_off && !plan->fuse.glu) || (second && !plan->fuse.shared_z))
            return VKM_MATMUL_UNFIT;
        if ((rc = quant_x(gpu, fn, a->k, a->n_x, &args[1], &pc, a->xq, a->x, a->x_off, x_stride)))
            return rc;
    }
    const vkm_matmul_push pc0 = pc;
    for (uint64_t e0 = 0; e0 < (uint64_t)a->n_mat && !rc; e0 += group)
        for (uint64_t r0 = 0; r0 < (uint64_t)a->m && !rc; r0 += step) {
            const bool whole = group == (uint64_t)a->n_mat && step == (uint64_t)a->m;
            const uint64_t mats = (uint64_t)a->n_mat - e0 < group ? (uint64_t)a->n_mat - e0 : group;
            const uint64_t rows = (uint64_t)a->m - r0 < step ? (uint64_t)a->m - r0 : step;
            pc = pc0;
            size_t w_lo = lo;
            uint64_t span = wspan;
            if (!whole) { /* matrices e0 .. e0 + mats - 1, rows r0 .. r0 + rows - 1 of each */
                w_lo = a->w_off + (size_t)(e0 * mat_bytes + r0 * row_bytes);
                span = rows < (uint64_t)a->m ? rows * row_bytes : mats * mat_bytes;
                pc.m = (uint32_t)rows;
                pc.y_off += (uint32_t)r0;
                gz = (uint32_t)mats;
                if (pc.mode == VKM_MM_ID_ROWS) { /* their (first, count) pairs, no active list */
                    pc.mats_off += 2u * (uint32_t)e0;
                    pc.n_mat = (uint32_t)mats;
                    pc.act = 0;
                } else { /* heads e0..: X and Y rows i * n_mat + e0 + z (n_mat stays the stride) */
                    pc.x_off += (uint32_t)(e0 * (uint64_t)x_stride);
                    pc.n_x -= (uint32_t)e0;
                    pc.y_off += (uint32_t)(e0 * (uint64_t)y_stride);
                    pc.n_y -= (uint32_t)e0;
                }
            }
            if ((rc = bind_window(fn, "weight", gpu, a->w, w_lo, span, wunit, &args[0], &pc.w_off)))
                return rc;
            const uint32_t base = pc.w_off * wunit;      /* of w_lo in the window */
            pc.w_off = base + (uint32_t)(a->w_off - lo); /* < the window size; whole: lo <= w_off */
            if (!whole) pc.w_off = base;
            uint32_t gzw = gz;
            if (second) { /* one more z group after the stack's */
                pc.x2_z = gzw++;
                pc.w2_off = base + (uint32_t)(second->w_off - lo);
                pc.glu2 = up_off ? (uint32_t)(second->up_off - second->w_off) : 0u; /* mod 2^32 */
                pc.n2 = (uint32_t)second->n;
                pc.x2_row = (uint32_t)second->x_row;
                pc.y2_row = (uint32_t)second->y_row;
            }
            /* the gated form and the second matrix: the plan's glu / shared_z forms (the texel
             * kernels, where the windows are texel buffers; gated: 2 rows per thread, gate and
             * up), and those of the gemv kernels (a subgroup per output, gate and up; the second
             * matrix as one more z group) */
            const vkm_kernel_plan *plan = vkm_gpu_plan(gpu);
            const bool lane_tex = gemv && t.lane_rows && vkm_op_cpu_texel(gpu, args);
            if ((up_off && !plan->fuse.glu) || (second && !plan->fuse.shared_z) ||
                (second && !lane_tex && !(gemv && t.gemv)) ||
                (up_off && !lane_tex && !(gemv && t.gemv)))
                return VKM_MATMUL_UNFIT;
            tuning tw = t;
            vkm_gpu_kernel *kern;
            if ((rc = get_kernel(gpu, &tw, gemv, true, a->wtype, gemv ? nc_cols : per_mat, &pc,
                                 args, &kern)))
                return rc;
            uint32_t gx, gy;
            if (gemv) {
                if ((rc = vec_grid(fn, &tw, up_off != 0, pc.m, &gx, &gy))) return rc;
            } else {
                gx = (pc.m + VKM_MM_BM - 1) / VKM_MM_BM;
                uint64_t tiles = ((uint64_t)per_mat + VKM_MM_BN - 1) / VKM_MM_BN;
                gy = tiles < VKM_MM_MAX_GROUPS ? (uint32_t)tiles : VKM_MM_MAX_GROUPS;
                if (gx > VKM_MM_MAX_GROUPS)
                    return vkm_error(VKM_EINVAL, "%s: m=%u is too large", fn, pc.m);
            }
            rc = dispatch_windows(gpu, kern, &tw, a->wtype, per_mat, gemv ? nc_cols : per_mat, args,
                                  5, &pc, gx, gy, gzw);
        }
    return rc;
}

int vkm_op_matmul_id(vkm_gpu *gpu, const vkm_matmul_id *a) {
    return matmul_id(gpu, a, 0, NULL);
}

int vkm_op_matmul_id_pair(vkm_gpu *gpu, const vkm_matmul_id *a, vkm_gpu_buf *up, size_t up_off,
                          const vkm_matmul_second *second) {
    if (!a || !second) return vkm_error(VKM_EINVAL, "vkm_op_matmul_id_pair: missing arguments");
    if (a->mode != VKM_MATMUL_ID_ROWS) return VKM_MATMUL_UNFIT;
    if (!up) return matmul_id(gpu, a, 0, second);
    if (up != a->w || up_off == a->w_off) return VKM_MATMUL_UNFIT;
    return matmul_id(gpu, a, (int64_t)up_off - (int64_t)a->w_off, second);
}

/* Whether the gated form's scratch range holds `bytes`. */
static bool scratch_holds(vkm_gpu_arg s, uint64_t bytes) {
    const size_t size = s.buf ? vkm_gpu_buf_size(s.buf) : 0;
    return s.buf && (!s.size || s.size >= bytes) && size >= s.offset && size - s.offset >= bytes;
}

int vkm_op_matmul_id_glu(vkm_gpu *gpu, const vkm_matmul_id *a, vkm_gpu_buf *up, size_t up_off,
                         vkm_gpu_arg scratch) {
    static const char fn[] = "vkm_op_matmul_id_glu";
    if (!a || !up) return vkm_error(VKM_EINVAL, "%s: missing arguments", fn);
    if (up == a->w && up_off != a->w_off) {
        const int rc = matmul_id(gpu, a, (int64_t)up_off - (int64_t)a->w_off, NULL);
        if (rc != VKM_MATMUL_UNFIT) return rc;
    }
    /* gate and up into the scratch, then swiglu into Y */
    const int64_t rows = a->mode == VKM_MATMUL_ID_ROWS ? a->n_rows : a->n_tok * a->n_mat;
    if (rows <= 0) return matmul_id(gpu, a, 0, NULL); /* records nothing, or reports the error */
    const uint64_t half = (uint64_t)rows * (uint64_t)a->m * 4;
    if (!scratch_holds(scratch, 2 * half) || a->y_stride > a->m)
        return vkm_error(VKM_EINVAL,
                         "%s: the separate form needs a scratch of 2 x %lld x %lld floats and a "
                         "contiguous Y",
                         fn, (long long)rows, (long long)a->m);
    vkm_matmul_id g = *a;
    g.y = scratch.buf;
    g.y_off = scratch.offset;
    g.n_y = rows;
    g.y_stride = 0;
    vkm_matmul_id u = g;
    u.w = up;
    u.w_off = up_off;
    u.y_off = scratch.offset + half;
    int rc;
    if ((rc = matmul_id(gpu, &g, 0, NULL)) || (rc = matmul_id(gpu, &u, 0, NULL))) return rc;
    const vkm_gpu_arg sa = {scratch.buf, scratch.offset, 2 * half}, ya = {a->y, a->y_off, half};
    return vkm_op_swiglu_in(gpu, sa, (uint32_t)(half / 4), (uint32_t)a->m, ya, (uint32_t)rows,
                            (uint32_t)a->m);
}

int vkm_op_matmul_glu(vkm_gpu *gpu, uint32_t wtype, int64_t k, int64_t m, vkm_gpu_buf *gate,
                      size_t gate_off, vkm_gpu_buf *up, size_t up_off, vkm_gpu_buf *x, size_t x_off,
                      int64_t n, vkm_gpu_buf *y, size_t y_off, vkm_gpu_arg scratch,
                      const vkm_q8x *xq) {
    static const char fn[] = "vkm_op_matmul_glu";
    size_t row_bytes = 0;
    int rc = check_plain(fn, wtype, k, m, n, &row_bytes);
    if (rc || n == 0) return rc;
    /* one matrix, X row i into Y row i: the HEADS form with one head */
    vkm_matmul_id a = {.wtype = wtype,
                       .w = gate,
                       .w_off = gate_off,
                       .k = k,
                       .m = m,
                       .n_mat = 1,
                       .x = x,
                       .x_off = x_off,
                       .n_x = n,
                       .y = y,
                       .y_off = y_off,
                       .n_y = n,
                       .mode = VKM_MATMUL_ID_HEADS,
                       .n_tok = n,
                       .xq = xq};
    if (gate && up == gate && up_off != gate_off) {
        rc = matmul_id(gpu, &a, (int64_t)up_off - (int64_t)gate_off, NULL);
        if (rc != VKM_MATMUL_UNFIT) return rc;
    }
    if (!x || !y) return vkm_error(VKM_EINVAL, "%s: missing buffers", fn);
    const uint64_t half = (uint64_t)n * (uint64_t)m * 4;
    if (!scratch_holds(scratch, 2 * half))
        return vkm_error(VKM_EINVAL,
                         "%s: the separate form needs a scratch of 2 x %lld x %lld floats", fn,
                         (long long)n, (long long)m);
    const vkm_gpu_arg ya = {y, y_off, half};
    if (gate && up == gate && up_off == gate_off + (size_t)m * row_bytes) {
        /* up's rows follow gate's: one matmul of 2m rows, scratch rows [gate | up] */
        if ((rc = vkm_op_matmul_xq(gpu, wtype, gate, gate_off, k, 2 * m, x, x_off, n, scratch.buf,
                                   scratch.offset, xq)))
            return rc;
        return vkm_op_swiglu_in(gpu, (vkm_gpu_arg){scratch.buf, scratch.offset, 2 * half},
                                (uint32_t)m, 2 * (uint32_t)m, ya, (uint32_t)n, (uint32_t)m);
    }
    if ((rc = vkm_op_matmul_xq(gpu, wtype, gate, gate_off, k, m, x, x_off, n, scratch.buf,
                               scratch.offset, xq)) ||
        (rc = vkm_op_matmul_xq(gpu, wtype, up, up_off, k, m, x, x_off, n, scratch.buf,
                               scratch.offset + half, xq)))
        return rc;
    return vkm_op_swiglu_in(gpu, (vkm_gpu_arg){scratch.buf, scratch.offset, 2 * half},
                            (uint32_t)(half / 4), (uint32_t)m, ya, (uint32_t)n, (uint32_t)m);
}
