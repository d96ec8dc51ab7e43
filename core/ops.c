/* ops.c - host side of the non-matmul kernels (core/ops.h): argument checks, push constants and
 * dispatch sizes.
 *
 * Invariants: nothing is recorded unless every check passed; every element a kernel may touch is
 * inside the bound range (computed in 64-bit, so no size overflows), and every element index
 * fits the kernels' 32-bit arithmetic. Dispatch dimensions are capped at 65535 groups; the
 * kernels loop (grid-stride) over the rest. */
#include "ops.h"

#include <math.h>
#include <stdio.h>

#include "../shaders/fwd_common.h"
#include "../shaders/cpu/attn_lane.h"
#include "../shaders/matmul_common.h"
#include "err.h"
#include "iq_gpu.h"
#include "qtype.h"
#include "ref_ops.h"

#define MAX_GROUPS VKM_OPS_MAX_GROUPS

static uint32_t groups(uint64_t n, uint32_t per) {
    uint64_t g = (n + per - 1) / per;
    if (g == 0) g = 1;
    return g > MAX_GROUPS ? MAX_GROUPS : (uint32_t)g;
}

/* The x dimension of element-wise grids does not loop: n invocations must fit one dispatch. */
static int fits_x(const char *op, uint64_t n) {
    if (n > (uint64_t)MAX_GROUPS * VKM_OPS_WG)
        return vkm_error(VKM_ERANGE, "%s: %llu invocations per row exceed one dispatch", op,
                         (unsigned long long)n);
    return 0;
}

/* Checks that `arg` holds at least `elems` elements of `esize` bytes, within 32-bit indexing. */
static int need(const char *op, const char *name, vkm_gpu_arg arg, uint64_t elems, uint32_t esize) {
    if (!arg.buf) return vkm_error(VKM_EINVAL, "%s: buffer %s missing", op, name);
    size_t size = vkm_gpu_buf_size(arg.buf);
    if (arg.offset > size || (arg.size && arg.size > size - arg.offset))
        return vkm_error(VKM_EINVAL, "%s: range of %s outside its buffer", op, name);
    uint64_t avail = arg.size ? arg.size : size - arg.offset;
    if (elems > UINT32_MAX)
        return vkm_error(VKM_ERANGE, "%s: %s needs %llu elements, beyond 32-bit indexing", op, name,
                         (unsigned long long)elems);
    if (elems * esize > avail)
        return vkm_error(VKM_EINVAL, "%s: %s needs %llu bytes, range has %llu", op, name,
                         (unsigned long long)(elems * esize), (unsigned long long)avail);
    return 0;
}

/* Elements spanned by n rows of d values with the given stride and offset (0 if n or d is 0). */
static uint64_t span(uint64_t n, uint64_t stride, uint64_t d, uint64_t off) {
    if (n == 0 || d == 0) return 0;
    return (n - 1) * stride + off + d;
}

/* Elements spanned by a [n_tok][n_head][d] view with strides. */
static uint64_t span3(uint64_t n_tok, uint64_t tok_stride, uint64_t n_head, uint64_t head_stride,
                      uint64_t d, uint64_t off) {
    if (n_tok == 0 || n_head == 0 || d == 0) return 0;
    return (n_tok - 1) * tok_stride + (n_head - 1) * head_stride + off + d;
}

static int dispatch(vkm_gpu *gpu, vkm_shader_id shader, const vkm_gpu_arg *args, int n_args,
                    const void *push, uint32_t push_size, uint32_t gx, uint32_t gy) {
    vkm_gpu_kernel *k = NULL;
    int rc = vkm_gpu_kernel_get(gpu, shader, NULL, 0, n_args, push_size, &k);
    if (rc) return rc;
    return vkm_gpu_dispatch(gpu, k, args, n_args, push, gx, gy, 1);
}

/* ------------------------------------------------------------------ norms, element-wise ---- */

/* The rmsnorm kernels with their workgroup size: VKM_OPS_RED_WG and a shared-memory reduction, or
 * on CPU devices one subgroup and subgroupAdd (no barriers: each one is a switch between the SIMD
 * chunks of the workgroup on llvmpipe). One workgroup per row. */
static void norm_spec(vkm_gpu *gpu, uint32_t spec[2]) {
    const vkm_kernel_plan *plan = vkm_gpu_plan(gpu);
    spec[0] = plan->norm_subgroup ? plan->subgroup : VKM_OPS_RED_WG;
    spec[1] = plan->norm_subgroup;
}

static int dispatch_norm(vkm_gpu *gpu, vkm_shader_id shader, const vkm_gpu_arg *args, int n_args,
                         const vkm_push_rmsnorm *p, uint32_t n_rows) {
    uint32_t spec[2];
    norm_spec(gpu, spec);
    vkm_gpu_kernel *k = NULL;
    int rc = vkm_gpu_kernel_get(gpu, shader, spec, 2, n_args, sizeof *p, &k);
    if (rc) return rc;
    return vkm_gpu_dispatch(gpu, k, args, n_args, p, groups(n_rows, 1), 1, 1);
}

/* The Q8X output of the _q8 norms: d a multiple of 32, q holds n_rows rows of d / 32 blocks. */
static int need_q8(const char *op, vkm_gpu_arg q, uint32_t n_rows, uint32_t d) {
    if (d % 32)
        return vkm_error(VKM_EINVAL, "%s: d %u is not a multiple of 32 (8-bit output)", op, d);
    return need(op, "q", q, (uint64_t)n_rows * (d / 32) * (VKM_Q8X_BLOCK_BYTES / 4), 4);
}

static int rmsnorm(vkm_gpu *gpu, const char *op, vkm_gpu_arg x, vkm_gpu_arg w, vkm_gpu_arg y,
                   vkm_gpu_arg q, uint32_t n_rows, uint32_t d, uint32_t x_stride, uint32_t y_stride,
                   float eps) {
    if (d == 0 || x_stride < d || y_stride < d)
        return vkm_error(VKM_EINVAL, "%s: d %u, strides %u/%u", op, d, x_stride, y_stride);
    if (n_rows == 0) return 0;
    VKM_TRY(need(op, "x", x, span(n_rows, x_stride, d, 0), 4));
    VKM_TRY(need(op, "w", w, d, 4));
    VKM_TRY(need(op, "y", y, span(n_rows, y_stride, d, 0), 4));
    if (q.buf) VKM_TRY(need_q8(op, q, n_rows, d));
    vkm_push_rmsnorm p = {n_rows, d, x_stride, 0, y_stride, eps};
    /* binding 3 (res) does not exist in this variant: the 8-bit output is binding 3 */
    vkm_gpu_arg args[4] = {x, w, y, q};
    return dispatch_norm(gpu, q.buf ? VKM_SH_RMSNORM_Q8 : VKM_SH_RMSNORM, args, q.buf ? 4 : 3, &p,
                         n_rows);
}

int vkm_op_rmsnorm(vkm_gpu *gpu, vkm_gpu_arg x, vkm_gpu_arg w, vkm_gpu_arg y, uint32_t n_rows,
                   uint32_t d, uint32_t x_stride, uint32_t y_stride, float eps) {
    return rmsnorm(gpu, "rmsnorm", x, w, y, (vkm_gpu_arg){0}, n_rows, d, x_stride, y_stride, eps);
}

int vkm_op_rmsnorm_q8(vkm_gpu *gpu, vkm_gpu_arg x, vkm_gpu_arg w, vkm_gpu_arg y, vkm_gpu_arg q,
                      uint32_t n_rows, uint32_t d, uint32_t x_stride, uint32_t y_stride,
                      float eps) {
    if (!q.buf) return vkm_error(VKM_EINVAL, "rmsnorm_q8: no 8-bit output");
    return rmsnorm(gpu, "rmsnorm_q8", x, w, y, q, n_rows, d, x_stride, y_stride, eps);
}

static int rmsnorm_add(vkm_gpu *gpu, const char *op, vkm_gpu_arg x, vkm_gpu_arg res, vkm_gpu_arg w,
                       vkm_gpu_arg y, vkm_gpu_arg q, uint32_t n_rows, uint32_t d, float eps) {
    if (d == 0) return vkm_error(VKM_EINVAL, "%s: d is 0", op);
    if (n_rows == 0) return 0;
    uint64_t n = (uint64_t)n_rows * d;
    VKM_TRY(need(op, "x", x, n, 4));
    VKM_TRY(need(op, "res", res, n, 4));
    VKM_TRY(need(op, "w", w, d, 4));
    VKM_TRY(need(op, "y", y, n, 4));
    if (q.buf) VKM_TRY(need_q8(op, q, n_rows, d));
    vkm_push_rmsnorm p = {n_rows, d, d, d, d, eps};
    vkm_gpu_arg args[5] = {x, w, y, res, q};
    return dispatch_norm(gpu, q.buf ? VKM_SH_RMSNORM_ADD_Q8 : VKM_SH_RMSNORM_ADD, args,
                         q.buf ? 5 : 4, &p, n_rows);
}

int vkm_op_rmsnorm_add(vkm_gpu *gpu, vkm_gpu_arg x, vkm_gpu_arg res, vkm_gpu_arg w, vkm_gpu_arg y,
                       uint32_t n_rows, uint32_t d, float eps) {
    return rmsnorm_add(gpu, "rmsnorm_add", x, res, w, y, (vkm_gpu_arg){0}, n_rows, d, eps);
}

int vkm_op_rmsnorm_add_q8(vkm_gpu *gpu, vkm_gpu_arg x, vkm_gpu_arg res, vkm_gpu_arg w,
                          vkm_gpu_arg y, vkm_gpu_arg q, uint32_t n_rows, uint32_t d, float eps) {
    if (!q.buf) return vkm_error(VKM_EINVAL, "rmsnorm_add_q8: no 8-bit output");
    return rmsnorm_add(gpu, "rmsnorm_add_q8", x, res, w, y, q, n_rows, d, eps);
}

int vkm_op_add(vkm_gpu *gpu, vkm_gpu_arg a, vkm_gpu_arg b, vkm_gpu_arg y, uint32_t n) {
    if (n == 0) return 0;
    VKM_TRY(need("add", "a", a, n, 4));
    VKM_TRY(need("add", "b", b, n, 4));
    VKM_TRY(need("add", "y", y, n, 4));
    vkm_push_eltwise p = {n, 0.0f};
    vkm_gpu_arg args[3] = {a, b, y};
    return dispatch(gpu, VKM_SH_ADD, args, 3, &p, sizeof p, groups(n, VKM_OPS_WG), 1);
}

int vkm_op_scale(vkm_gpu *gpu, vkm_gpu_arg x, vkm_gpu_arg y, uint32_t n, float s) {
    if (n == 0) return 0;
    VKM_TRY(need("scale", "x", x, n, 4));
    VKM_TRY(need("scale", "y", y, n, 4));
    vkm_push_eltwise p = {n, s};
    vkm_gpu_arg args[2] = {x, y};
    return dispatch(gpu, VKM_SH_SCALE, args, 2, &p, sizeof p, groups(n, VKM_OPS_WG), 1);
}

/* y[r][i] = silu(g[r*g_stride + i]) * u[u_off + r*u_stride + i] (both swiglu ops) */
static int swiglu(vkm_gpu *gpu, const char *op, vkm_gpu_arg g, uint32_t g_stride, vkm_gpu_arg u,
                  uint32_t u_off, uint32_t u_stride, vkm_gpu_arg y, uint32_t n_rows, uint32_t d) {
    if (d == 0 || g_stride < d || u_stride < d)
        return vkm_error(VKM_EINVAL, "%s: d %u, strides %u/%u", op, d, g_stride, u_stride);
    if (n_rows == 0) return 0;
    VKM_TRY(fits_x(op, d));
    VKM_TRY(need(op, "g", g, span(n_rows, g_stride, d, 0), 4));
    VKM_TRY(need(op, "u", u, span(n_rows, u_stride, d, u_off), 4));
    VKM_TRY(need(op, "y", y, (uint64_t)n_rows * d, 4));
    vkm_push_swiglu p = {n_rows, d, 0, g_stride, u_off, u_stride, d};
    vkm_gpu_arg args[3] = {g, u, y};
    return dispatch(gpu, VKM_SH_SWIGLU, args, 3, &p, sizeof p, groups(d, VKM_OPS_WG),
                    groups(n_rows, 1));
}

int vkm_op_swiglu(vkm_gpu *gpu, vkm_gpu_arg g, vkm_gpu_arg u, vkm_gpu_arg y, uint32_t n_rows,
                  uint32_t d, uint32_t g_stride, uint32_t u_stride) {
    return swiglu(gpu, "swiglu", g, g_stride, u, 0, u_stride, y, n_rows, d);
}

/* both inputs bound to gu, up at element offset u_off (no storage alignment needed) */
int vkm_op_swiglu_in(vkm_gpu *gpu, vkm_gpu_arg gu, uint32_t u_off, uint32_t stride, vkm_gpu_arg y,
                     uint32_t n_rows, uint32_t d) {
    return swiglu(gpu, "swiglu_in", gu, stride, gu, u_off, stride, y, n_rows, d);
}

int vkm_op_get_rows(vkm_gpu *gpu, uint32_t type, vkm_gpu_arg table, vkm_gpu_arg ids, vkm_gpu_arg y,
                    uint32_t n_ids, uint32_t d, uint32_t n_vocab) {
    const char *op = "get_rows";
    const vkm_qtype_info *qi = vkm_qtype_get(type);
    if (!qi || !qi->name || vkm_kernels_get_rows_shader(type) == VKM_SHADER_COUNT)
        return vkm_error(VKM_EUNSUPPORTED, "%s: type %s", op, vkm_qtype_name(type));
    size_t row_bytes = vkm_qtype_row_bytes(type, d);
    if (d == 0 || row_bytes == 0)
        return vkm_error(VKM_EINVAL, "%s: row of %u elements is not a whole number of %s blocks",
                         op, d, qi->name);
    if (n_ids == 0) return 0;
    uint64_t table_bytes = (uint64_t)n_vocab * row_bytes;
    if (table_bytes > UINT32_MAX)
        return vkm_error(VKM_ERANGE, "%s: table of %llu bytes beyond 32-bit indexing", op,
                         (unsigned long long)table_bytes);
    VKM_TRY(need(op, "table", table, (table_bytes + 3) / 4, 4));
    VKM_TRY(fits_x(op, (d + 3) / 4));
    VKM_TRY(need(op, "ids", ids, n_ids, 4));
    VKM_TRY(need(op, "y", y, (uint64_t)n_ids * d, 4));
    const vkm_shader_id name = vkm_kernels_get_rows_shader(type);
    vkm_push_get_rows p = {n_ids, d, n_vocab, (uint32_t)row_bytes, d, 0, 0, n_vocab};
    vkm_gpu_arg args[4] = {table, ids, y};
    int n_args = 3 + vkm_iq_grid_arg(gpu, type, &args[3]); /* the IQ types' grid (iq_gpu.h) */
    if (n_args < 3) return n_args;
    /* a table larger than the weight window (gpu.h): windows of whole rows starting at multiples
     * of 256 bytes (any storage offset alignment), a dispatch each */
    const uint64_t win = vkm_gpu_info(gpu)->weight_window_bytes;
    if (!win || (table_bytes + 3) / 4 * 4 <= win)
        return dispatch(gpu, name, args, n_args, &p, sizeof p, groups((d + 3) / 4, VKM_OPS_WG),
                        groups(n_ids, 1));
    const uint64_t per = win > 512 ? (win - 512) / row_bytes : 0;
    if (!per)
        return vkm_error(
            VKM_EUNSUPPORTED,
            "%s: a table row of %zu bytes does not fit the weight window of %llu bytes", op,
            row_bytes, (unsigned long long)win);
    int rc = 0;
    for (uint64_t r0 = 0; r0 < n_vocab && !rc; r0 += per) {
        const uint64_t rows = n_vocab - r0 < per ? n_vocab - r0 : per;
        const uint64_t at = table.offset + r0 * row_bytes, start = at - at % 256;
        args[0] = (vkm_gpu_arg){table.buf, (size_t)start,
                                (size_t)((at + rows * row_bytes + 3) / 4 * 4 - start)};
        p.w_off = (uint32_t)(at - start);
        p.row0 = (uint32_t)r0;
        p.rows = (uint32_t)rows;
        rc = dispatch(gpu, name, args, n_args, &p, sizeof p, groups((d + 3) / 4, VKM_OPS_WG),
                      groups(n_ids, 1));
    }
    return rc;
}

/* ---------------------------------------------------------------------------------- RoPE ---- */

int vkm_op_rope_params(vkm_rope_params *out, uint32_t n_rot, float freq_base, float freq_scale,
                       float ext_factor, float attn_factor, uint32_t n_ctx_orig, float beta_fast,
                       float beta_slow) {
    if (n_rot == 0 || n_rot % 2 || n_rot > 1024)
        return vkm_error(VKM_EINVAL, "rope: n_rot %u must be even, 2..1024", n_rot);
    if (!(freq_base > 0.0f) || !(freq_scale > 0.0f) || !isfinite(attn_factor))
        return vkm_error(VKM_EINVAL, "rope: base %g, freq_scale %g, attn_factor %g",
                         (double)freq_base, (double)freq_scale, (double)attn_factor);
    if (ext_factor != 0.0f && (n_ctx_orig == 0 || !(beta_fast > 0.0f) || !(beta_slow > 0.0f)))
        return vkm_error(VKM_EINVAL, "rope: YaRN needs n_ctx_orig and positive betas");
    out->n_rot = n_rot;
    out->theta_scale = powf(freq_base, -2.0f / (float)n_rot);
    out->freq_scale = freq_scale;
    out->ext_factor = ext_factor;
    out->mscale = attn_factor;
    out->corr_low = 0.0f;
    out->corr_high = 0.0f;
    if (ext_factor != 0.0f) {
        float dims[2];
        vkm_ref_rope_corr_dims((int)n_rot, (int)n_ctx_orig, freq_base, beta_fast, beta_slow, dims);
        out->corr_low = dims[0];
        out->corr_high = dims[1];
        out->mscale *= 1.0f + 0.1f * logf(1.0f / freq_scale);
    }
    return 0;
}

int vkm_op_rope(vkm_gpu *gpu, const vkm_rope_params *rp, vkm_gpu_arg x, vkm_gpu_arg pos,
                uint32_t n_tok, uint32_t n_head, uint32_t off, uint32_t tok_stride,
                uint32_t head_stride) {
    const char *op = "rope";
    if (rp->n_rot == 0 || rp->n_rot % 2)
        return vkm_error(VKM_EINVAL, "%s: n_rot %u must be even and positive", op, rp->n_rot);
    if (n_tok == 0 || n_head == 0) return 0;
    VKM_TRY(need(op, "x", x, span3(n_tok, tok_stride, n_head, head_stride, rp->n_rot, off), 4));
    VKM_TRY(need(op, "pos", pos, n_tok, 4));
    VKM_TRY(fits_x(op, (uint64_t)n_head * (rp->n_rot / 2)));
    vkm_push_rope p = {n_tok,          n_head,      rp->n_rot,       off,
                       tok_stride,     head_stride, rp->theta_scale, rp->freq_scale,
                       rp->ext_factor, rp->mscale,  rp->corr_low,    rp->corr_high};
    vkm_gpu_arg args[2] = {x, pos};
    return dispatch(gpu, VKM_SH_ROPE, args, 2, &p, sizeof p,
                    groups((uint64_t)n_head * (rp->n_rot / 2), VKM_OPS_WG), groups(n_tok, 1));
}

/* ----------------------------------------------------------------- KV cache, attention ---- */

int vkm_op_kv_store(vkm_gpu *gpu, bool dst_f16, vkm_gpu_arg src, vkm_gpu_arg dst,
                    const vkm_push_kv_store *p) {
    const char *op = "kv_store";
    if (p->d == 0) return vkm_error(VKM_EINVAL, "%s: d is 0", op);
    if (dst_f16 && (p->d % 2 || p->dst_off % 2 || p->dst_row_stride % 2 || p->dst_head_stride % 2))
        return vkm_error(VKM_EINVAL, "%s: f16 cache needs even d, offset and strides", op);
    if (p->n_tok == 0 || p->n_head == 0) return 0;
    VKM_TRY(need(
        op, "src", src,
        span3(p->n_tok, p->src_tok_stride, p->n_head, p->src_head_stride, p->d, p->src_off), 4));
    uint64_t rows = (uint64_t)p->dst_row0 + p->n_tok;
    uint64_t dst_elems =
        span3(rows, p->dst_row_stride, p->n_head, p->dst_head_stride, p->d, p->dst_off);
    VKM_TRY(need(op, "dst", dst, dst_f16 ? dst_elems / 2 : dst_elems, 4));
    vkm_gpu_arg args[2] = {src, dst};
    uint64_t per_head = dst_f16 ? p->d / 2 : p->d;
    VKM_TRY(fits_x(op, per_head * p->n_head));
    return dispatch(gpu, dst_f16 ? VKM_SH_KV_STORE_F16 : VKM_SH_KV_STORE_F32, args, 2, p, sizeof *p,
                    groups(per_head * p->n_head, VKM_OPS_WG), groups(p->n_tok, 1));
}

int vkm_op_mla_kv_store(vkm_gpu *gpu, bool cache_f16, vkm_gpu_arg src, vkm_gpu_arg cache,
                        uint32_t n_tok, uint32_t width, uint32_t src_stride, uint32_t pos) {
    if (src_stride < width)
        return vkm_error(VKM_EINVAL, "mla_kv_store: src stride %u < width %u", src_stride, width);
    vkm_push_kv_store p = {.n_tok = n_tok,
                           .n_head = 1,
                           .d = width,
                           .src_tok_stride = src_stride,
                           .dst_row0 = pos,
                           .dst_row_stride = width};
    return vkm_op_kv_store(gpu, cache_f16, src, cache, &p);
}

int vkm_op_mla_kv_rope(vkm_gpu *gpu, const vkm_rope_params *rp, bool cache_f16,
                       const vkm_mla_kv_shape *s, vkm_gpu_arg kva, vkm_gpu_arg w, vkm_gpu_arg pos,
                       vkm_gpu_arg q, vkm_gpu_arg cache) {
    const char *op = "mla_kv_rope";
    const uint32_t R = rp->n_rot;
    if (R == 0 || R % 2 || s->ckv == 0 || (cache_f16 && s->ckv % 2) ||
        s->kva_stride < (uint64_t)s->ckv + R)
        return vkm_error(VKM_EINVAL, "%s: ckv %u, n_rot %u, kva stride %u%s", op, s->ckv, R,
                         s->kva_stride, cache_f16 ? " (f16 cache: ckv and n_rot even)" : "");
    if (s->n_tok == 0) return 0;
    const uint64_t width = (uint64_t)s->ckv + R;
    const uint64_t rows = (uint64_t)s->tok0 + s->n_tok; /* the rows of kva, pos and q read */
    if (rows > UINT32_MAX) return vkm_error(VKM_ERANGE, "%s: rows overflow", op);
    VKM_TRY(need(op, "kva", kva, span(rows, s->kva_stride, width, 0), 4));
    VKM_TRY(need(op, "w", w, s->ckv, 4));
    VKM_TRY(need(op, "pos", pos, rows, 4));
    VKM_TRY(need(op, "q", q, span3(rows, s->q_tok_stride, s->n_head, s->q_head_stride, R, s->q_off),
                 4));
    const bool pool = s->kvt.buf != NULL;
    uint32_t row0 = s->row0;
    if (pool) { /* row0: the cache rows bound, the kernel writes none past them */
        if (vkm_gpu_plan(gpu)->cpu_family)
            return vkm_error(VKM_EUNSUPPORTED, "%s: pooled caches need the GPU kernels", op);
        VKM_TRY(need(op, "kvt", s->kvt, 2 * rows, 4));
        const size_t size = cache.size ? cache.size : vkm_gpu_buf_size(cache.buf) - cache.offset;
        const uint64_t r = (uint64_t)size / ((cache_f16 ? 2 : 4) * width);
        row0 = r < UINT32_MAX ? (uint32_t)r : UINT32_MAX;
    } else {
        const uint64_t cells = ((uint64_t)s->row0 + s->n_tok) * width;
        VKM_TRY(need(op, "cache", cache, cache_f16 ? cells / 2 : cells, 4));
    }
    vkm_push_mla_kv_rope p = {s->n_tok,
                              s->ckv,
                              R,
                              s->kva_stride,
                              row0,
                              s->n_head,
                              s->q_off,
                              s->q_tok_stride,
                              s->q_head_stride,
                              s->eps,
                              rp->theta_scale,
                              rp->freq_scale,
                              rp->ext_factor,
                              rp->mscale,
                              rp->corr_low,
                              rp->corr_high,
                              s->tok0};
    vkm_gpu_arg args[6] = {kva, w, pos, q, cache, s->kvt};
    uint32_t spec[2]; /* the rmsnorm kernels' workgroup, so the sums of squares are the same */
    norm_spec(gpu, spec);
    vkm_gpu_kernel *k = NULL;
    const vkm_shader_id sh =
        pool ? (cache_f16 ? VKM_SH_MLA_KV_ROPE_POOL_F16 : VKM_SH_MLA_KV_ROPE_POOL_F32)
             : (cache_f16 ? VKM_SH_MLA_KV_ROPE_F16 : VKM_SH_MLA_KV_ROPE_F32);
    VKM_TRY(vkm_gpu_kernel_get(gpu, sh, spec, 2, pool ? 6 : 5, sizeof p, &k));
    return vkm_gpu_dispatch(gpu, k, args, pool ? 6 : 5, &p, groups(s->n_tok, 1), 1, 1);
}

/* Attention on CPU devices (mla_attn_lane.comp): 1, 2 or 4 queries of one head per invocation,
 * the keys in passes of VKM_ATTN_LANE_KEYS (the first pass starts each query's running max and
 * sum, the later ones continue them from `state`, the last one normalises the output). */
static int attn_lane(vkm_gpu *gpu, bool cache_f16, const vkm_push_attn *p, vkm_gpu_arg *args,
                     vkm_gpu_arg state) {
    const char *op = "attn";
    /* up to 4 queries of one head per invocation share every cache load (prefill: measured on
     * llvmpipe 2 cores, 298 queries, 4 per invocation 1.6-2x 1 per invocation) */
    const uint32_t ql = p->n_q >= 4 ? 4 : p->n_q >= 2 ? 2 : 1;
    const uint64_t pairs = ((uint64_t)p->n_q + ql - 1) / ql * p->n_head;
    if ((uint64_t)p->n_q * p->n_head > UINT32_MAX / 2)
        return vkm_error(VKM_ERANGE, "%s: %u queries x %u heads", op, p->n_q, p->n_head);
    const uint32_t passes =
        p->n_kv > VKM_ATTN_LANE_KEYS ? (p->n_kv + VKM_ATTN_LANE_KEYS - 1) / VKM_ATTN_LANE_KEYS : 1;
    if (passes > 1 || state.buf)
        VKM_TRY(need(op, "state", state, (uint64_t)p->n_q * p->n_head * 2, 4));
    if (!state.buf) state = args[4]; /* bound but unused: one pass */
    /* chunked cache loads (the shader's CH): shared rows, whole 16-byte chunks, 8-lane groups */
    const vkm_gpu_device_info *info = vkm_gpu_info(gpu);
    const uint32_t es = cache_f16 ? 2 : 4, span = 128 / es; /* elements per 8 chunks */
    const bool ch = info->subgroup_size >= 8 && p->k_head_stride == 0 && p->v_head_stride == 0 &&
                    (p->da + p->db) % span == 0 && p->dv % span == 0 &&
                    (uint64_t)p->k_row_stride * es % 16 == 0 &&
                    (uint64_t)p->v_row_stride * es % 16 == 0 && (uint64_t)p->v_off * es % 16 == 0 &&
                    args[2].offset % 16 == 0 && args[3].offset % 16 == 0;
    /* one subgroup per workgroup when that holds every (query group, head) pair: the lanes of
     * the other subgroups would run the whole setup for nothing (one query, one key: 89 -> 56 us
     * on llvmpipe, measured) */
    const uint32_t sgw = pairs <= info->subgroup_size ? 1 : 4;
    const uint32_t spec[3] = {info->subgroup_size * sgw, ql, ch};
    const uint64_t blocks = (pairs + spec[0] - 1) / spec[0];
    const uint32_t gx = blocks < MAX_GROUPS ? (uint32_t)blocks : MAX_GROUPS;
    const uint64_t gy = (blocks + gx - 1) / gx;
    if (gy > MAX_GROUPS)
        return vkm_error(VKM_ERANGE, "%s: %llu pairs", op, (unsigned long long)pairs);
    vkm_gpu_kernel *k = NULL;
    vkm_push_attn_lane q = {*p, 0, 0};
    VKM_TRY(vkm_gpu_kernel_get(gpu, cache_f16 ? VKM_SH_MLA_ATTN_LANE_F16 : VKM_SH_MLA_ATTN_LANE_F32,
                               spec, 3, 6, sizeof q, &k));
    const vkm_gpu_arg all[6] = {args[0], args[1], args[2], args[3], args[4], state};
    for (uint32_t i = 0; i < passes; i++) {
        q.k_begin = i * VKM_ATTN_LANE_KEYS;
        q.k_end = i + 1 == passes ? p->n_kv : q.k_begin + VKM_ATTN_LANE_KEYS;
        VKM_TRY(vkm_gpu_dispatch(gpu, k, all, 6, &q, gx, (uint32_t)gy, 1));
    }
    return 0;
}

/* The shape and buffer checks of every attention call; 1 when there is nothing to do. */
static int attn_check(bool cache_f16, const vkm_push_attn *p, vkm_gpu_arg qa, vkm_gpu_arg qb,
                      vkm_gpu_arg k, vkm_gpu_arg v, vkm_gpu_arg o) {
    const char *op = "attn";
    uint64_t dk = (uint64_t)p->da + p->db;
    if (p->da % 2 || p->db % 2 || p->dv % 2 || dk == 0 || p->dv == 0)
        return vkm_error(VKM_EINVAL, "%s: dims %u+%u, %u must be even and non-zero", op, p->da,
                         p->db, p->dv);
    if (dk > VKM_ATTN_MAX_DK || p->dv > VKM_ATTN_MAX_DV)
        return vkm_error(VKM_EUNSUPPORTED, "%s: dims %llu/%u above the kernel limits %u/%u", op,
                         (unsigned long long)dk, p->dv, VKM_ATTN_MAX_DK, VKM_ATTN_MAX_DV);
    if (p->k_row_stride % 2 || p->k_head_stride % 2 || p->v_off % 2 || p->v_row_stride % 2 ||
        p->v_head_stride % 2)
        return vkm_error(VKM_EINVAL, "%s: cache offsets and strides must be even", op);
    if (p->n_head > MAX_GROUPS)
        return vkm_error(VKM_ERANGE, "%s: %u heads above %u", op, p->n_head, MAX_GROUPS);
    if ((uint64_t)p->q_pos0 + p->n_q > UINT32_MAX)
        return vkm_error(VKM_ERANGE, "%s: positions overflow", op);
    if (p->n_q == 0 || p->n_head == 0) return 1;
    VKM_TRY(need(op, "qa", qa,
                 span3(p->n_q, p->qa_tok_stride, p->n_head, p->qa_head_stride, p->da, p->qa_off),
                 4));
    if (p->db)
        VKM_TRY(need(
            op, "qb", qb,
            span3(p->n_q, p->qb_tok_stride, p->n_head, p->qb_head_stride, p->db, p->qb_off), 4));
    if (p->n_kv) {
        uint32_t es = cache_f16 ? 2 : 4;
        uint64_t ke = span3(p->n_kv, p->k_row_stride, p->n_head, p->k_head_stride, dk, 0);
        uint64_t ve = span3(p->n_kv, p->v_row_stride, p->n_head, p->v_head_stride, p->dv, p->v_off);
        /* need() counts elements of `es` bytes; the kernel indexes f16 caches by word */
        VKM_TRY(need(op, "k", k, ke, es));
        VKM_TRY(need(op, "v", v, ve, es));
    }
    VKM_TRY(need(op, "o", o,
                 span3(p->n_q, p->o_tok_stride, p->n_head, p->o_head_stride, p->dv, p->o_off), 4));
    return 0;
}

/* The checked call of vkm_op_attn: the CPU-device (lane) or the GPU kernel. */
static int attn_run(vkm_gpu *gpu, bool cache_f16, const vkm_push_attn *p, vkm_gpu_arg qa,
                    vkm_gpu_arg qb, vkm_gpu_arg k, vkm_gpu_arg v, vkm_gpu_arg o,
                    vkm_gpu_arg state) {
    vkm_gpu_arg args[5] = {qa, p->db ? qb : qa, k, v, o};
    if (vkm_gpu_plan(gpu)->attn_lane) return attn_lane(gpu, cache_f16, p, args, state);
    return dispatch(gpu, cache_f16 ? VKM_SH_MLA_ATTN_F16 : VKM_SH_MLA_ATTN_F32, args, 5, p,
                    sizeof *p, p->n_head, groups(p->n_q, 1));
}

int vkm_op_attn(vkm_gpu *gpu, bool cache_f16, const vkm_push_attn *p, vkm_gpu_arg qa,
                vkm_gpu_arg qb, vkm_gpu_arg k, vkm_gpu_arg v, vkm_gpu_arg o, vkm_gpu_arg state) {
    int rc = attn_check(cache_f16, p, qa, qb, k, v, o);
    if (rc) return rc < 0 ? rc : 0;
    return attn_run(gpu, cache_f16, p, qa, qb, k, v, o, state);
}

/* The one-query MLA attention of CPU devices (mla_attn_dec.comp: score, softmax and value passes;
 * llvmpipe 2 cores, bench-small dims, against mla_attn_lane.comp: 1.9x at 64 keys, 2.2x at 2048)
 * for a checked call `p` of vkm_op_mla_attn. 1 when it does not apply (then the general kernel
 * runs): not a CPU device with texel kernels, more than one query, a key count past
 * VKM_ATTN_DEC_MAX_KEYS, dimensions or windows (cache, queries, scratch) that texel buffers
 * cannot take, or no (large enough) scores scratch. */
static int attn_dec(vkm_gpu *gpu, const vkm_attn_shape *s, const vkm_push_attn *p, vkm_gpu_arg qa,
                    vkm_gpu_arg q, vkm_gpu_arg cache, vkm_gpu_arg o) {
    const vkm_gpu_device_info *info = vkm_gpu_info(gpu);
    const uint32_t sg = info->subgroup_size, es = s->cache_f16 ? 2 : 4, H = p->n_head;
    const uint32_t s_stride = (H + 7u) & ~7u, row = p->da + p->db;
    /* attn_check bounds H */
    if (!vkm_gpu_plan(gpu)->attn_dec || p->n_q != 1 || p->n_kv == 0 ||
        p->n_kv > VKM_ATTN_DEC_MAX_KEYS || p->q_pos0 + 1u < p->n_kv || p->da % 8 || p->db % 8 ||
        p->dv % 8 || p->o_head_stride % 4 || p->qa_head_stride % 4 || p->qb_off % 4 ||
        p->qb_head_stride % 4 || p->qa_off % 4 || p->o_off % 4 || !s->scores.buf)
        return 1;
    const uint64_t s_elems = (uint64_t)p->n_kv * s_stride;
    const size_t s_buf = vkm_gpu_buf_size(s->scores.buf);
    if (s_elems > UINT32_MAX / 4 || s->scores.offset > s_buf ||
        (s->scores.size ? s->scores.size : s_buf - s->scores.offset) < s_elems * 4)
        return 1;
    vkm_gpu_arg kc = cache; /* the rows the call reads, whole texels */
    kc.size = (size_t)((uint64_t)p->n_kv * row * es);
    if (!vkm_gpu_texel_window(gpu, &kc)) return 1;
    vkm_gpu_arg sc = s->scores, qat = qa, qbt = q;
    sc.size = (size_t)(s_elems * 4);
    /* the queries as texels: the heads' rows, rounded up to whole texels */
    qat.size = (size_t)(((uint64_t)(H - 1) * p->qa_head_stride + p->qa_off + p->da) * 4);
    qbt.size = (size_t)(((uint64_t)(H - 1) * p->qb_head_stride + p->qb_off + p->db) * 4);
    if (!vkm_gpu_texel_window(gpu, &qat) || !vkm_gpu_texel_window(gpu, &qbt) ||
        !vkm_gpu_texel_window(gpu, &sc))
        return 1;
    const vkm_push_attn_dec d = {
        H,           p->n_kv,           p->da,   p->db, p->dv,    p->qa_head_stride,
        p->qb_off,   p->qb_head_stride, 0,       row,   s_stride, p->o_head_stride,
        p->kq_scale, p->qa_off,         p->o_off};
    const uint32_t spec[1] = {sg};
    vkm_gpu_kernel *k = NULL;
    VKM_TRY(vkm_gpu_kernel_get(
        gpu, s->cache_f16 ? VKM_SH_MLA_ATTN_DEC_SCORE_F16 : VKM_SH_MLA_ATTN_DEC_SCORE_F32, spec, 1,
        4, sizeof d, &k));
    const vkm_gpu_arg a0[4] = {qat, qbt, kc, sc};
    VKM_TRY(vkm_gpu_dispatch(gpu, k, a0, 4, &d, groups(p->n_kv, 4u * sg), 1, 1));
    VKM_TRY(vkm_gpu_kernel_get(gpu, VKM_SH_MLA_ATTN_DEC_SOFTMAX, spec, 1, 1, sizeof d, &k));
    VKM_TRY(vkm_gpu_dispatch(gpu, k, &sc, 1, &d, groups(H, 4), 1, 1));
    VKM_TRY(vkm_gpu_kernel_get(
        gpu, s->cache_f16 ? VKM_SH_MLA_ATTN_DEC_VALUE_F16 : VKM_SH_MLA_ATTN_DEC_VALUE_F32, spec, 1,
        3, sizeof d, &k));
    const vkm_gpu_arg a2[3] = {sc, kc, o};
    return vkm_gpu_dispatch(gpu, k, a2, 3, &d, groups(p->dv, 8u * sg), groups(H, 8), 1);
}

/* Moves the query and output offsets of p to query row q_row0 (vkm_attn_shape.q_row0). */
static int attn_rows(vkm_push_attn *p, uint32_t q_row0) {
    const uint64_t qa = p->qa_off + (uint64_t)q_row0 * p->qa_tok_stride;
    const uint64_t qb = p->qb_off + (uint64_t)q_row0 * p->qb_tok_stride;
    const uint64_t o = p->o_off + (uint64_t)q_row0 * p->o_tok_stride;
    if (qa > UINT32_MAX || qb > UINT32_MAX || o > UINT32_MAX)
        return vkm_error(VKM_ERANGE, "attn: query row %u overflows the offsets", q_row0);
    p->qa_off = (uint32_t)qa;
    p->qb_off = (uint32_t)qb;
    p->o_off = (uint32_t)o;
    return 0;
}

int vkm_op_mla_attn(vkm_gpu *gpu, const vkm_attn_shape *s, uint32_t ckv, uint32_t n_rot,
                    uint32_t dqk, vkm_gpu_arg q_abs, vkm_gpu_arg q, vkm_gpu_arg cache,
                    vkm_gpu_arg o) {
    if (n_rot > dqk) return vkm_error(VKM_EINVAL, "mla_attn: n_rot %u > head dim %u", n_rot, dqk);
    uint64_t h = s->n_head;
    if (h * ckv > UINT32_MAX || h * dqk > UINT32_MAX)
        return vkm_error(VKM_ERANGE, "mla_attn: head sizes overflow");
    vkm_push_attn p = {
        .n_q = s->n_q,
        .n_head = s->n_head,
        .q_pos0 = s->q_pos0,
        .n_kv = s->n_kv,
        .da = ckv,
        .db = n_rot,
        .dv = ckv,
        .qa_tok_stride = (uint32_t)(h * ckv),
        .qa_head_stride = ckv,
        .qb_off = dqk - n_rot,
        .qb_tok_stride = (uint32_t)(h * dqk),
        .qb_head_stride = dqk,
        .k_row_stride = ckv + n_rot,
        .k_head_stride = 0,
        .v_off = 0,
        .v_row_stride = ckv + n_rot,
        .v_head_stride = 0,
        .o_tok_stride = (uint32_t)(h * ckv),
        .o_head_stride = ckv,
        .kq_scale = s->kq_scale,
    };
    VKM_TRY(attn_rows(&p, s->q_row0));
    int rc = attn_check(s->cache_f16, &p, q_abs, q, cache, cache, o);
    if (rc) return rc < 0 ? rc : 0;
    if (s->kvt.buf) { /* every query's own cache rows (the GPU kernel's POOL variant) */
        if (vkm_gpu_plan(gpu)->attn_lane)
            return vkm_error(VKM_EUNSUPPORTED, "mla_attn: pooled caches need the GPU kernels");
        VKM_TRY(need("mla_attn", "kvt", s->kvt, 2 * ((uint64_t)s->q_row0 + s->n_q), 4));
        vkm_gpu_arg kvt = s->kvt; /* rows q_row0.. are this call's queries */
        kvt.offset += (size_t)s->q_row0 * 8;
        if (kvt.size) kvt.size -= (size_t)s->q_row0 * 8;
        if (kvt.offset % vkm_gpu_info(gpu)->storage_align)
            return vkm_error(VKM_EINVAL, "mla_attn: kvt rows from %u are not aligned", s->q_row0);
        vkm_gpu_arg args[6] = {q_abs, q, cache, cache, o, kvt};
        return dispatch(gpu, s->cache_f16 ? VKM_SH_MLA_ATTN_POOL_F16 : VKM_SH_MLA_ATTN_POOL_F32,
                        args, 6, &p, sizeof p, p.n_head, groups(p.n_q, 1));
    }
    if ((rc = attn_dec(gpu, s, &p, q_abs, q, cache, o)) <= 0) return rc;
    return attn_run(gpu, s->cache_f16, &p, q_abs, q, cache, cache, o, s->state);
}

int vkm_op_naive_attn(vkm_gpu *gpu, const vkm_attn_shape *s, uint32_t dqk, uint32_t dv,
                      vkm_gpu_arg q, vkm_gpu_arg k_cache, vkm_gpu_arg v_cache, vkm_gpu_arg o) {
    uint64_t h = s->n_head;
    if (h * dqk > UINT32_MAX || h * dv > UINT32_MAX)
        return vkm_error(VKM_ERANGE, "naive_attn: head sizes overflow");
    vkm_push_attn p = {
        .n_q = s->n_q,
        .n_head = s->n_head,
        .q_pos0 = s->q_pos0,
        .n_kv = s->n_kv,
        .da = dqk,
        .db = 0,
        .dv = dv,
        .qa_tok_stride = (uint32_t)(h * dqk),
        .qa_head_stride = dqk,
        .k_row_stride = (uint32_t)(h * dqk),
        .k_head_stride = dqk,
        .v_row_stride = (uint32_t)(h * dv),
        .v_head_stride = dv,
        .o_tok_stride = (uint32_t)(h * dv),
        .o_head_stride = dv,
        .kq_scale = s->kq_scale,
    };
    VKM_TRY(attn_rows(&p, s->q_row0));
    return vkm_op_attn(gpu, s->cache_f16, &p, q, q, k_cache, v_cache, o, s->state);
}

/* ------------------------------------------------------------------------------------ MoE ---- */

/* GPUs route and group in one dispatch (router.comp GROUP: one workgroup routing the tokens in
 * turn) for batches of up to this many tokens, decode steps and short batches; larger batches
 * route a token per workgroup and group in a dispatch of its own */
#define VKM_ROUTER_GROUP_MAX_TOK 4

/* router_group may group whatever the router accepts */
_Static_assert(VKM_MOE_GROUP_MAX_EXPERT >= VKM_ROUTER_MAX_EXPERT, "moe_group expert limit");

/* The grouping buffers hold n_tok x n_used entries of n_expert experts (fwd_common.h). */
static int group_need(const char *op, const vkm_moe_grouping *g, uint32_t n_tok, uint32_t n_used,
                      uint32_t n_expert) {
    const uint64_t n = (uint64_t)n_tok * n_used;
    VKM_TRY(need(op, "rows", g->rows, n, 4));
    VKM_TRY(need(op, "mats", g->mats, 3 * (uint64_t)n_expert + 1, 4));
    return need(op, "map", g->map, n, 4);
}

/* vkm_op_router, then (group) the grouping of vkm_op_moe_group */
static int router(vkm_gpu *gpu, const vkm_router_cfg *cfg, vkm_gpu_arg logits, vkm_gpu_arg bias,
                  vkm_gpu_arg ids, vkm_gpu_arg weights, uint32_t n_tok,
                  const vkm_moe_grouping *group) {
    const char *op = group ? "router_group" : "router";
    const uint32_t X = cfg->n_expert, K = cfg->n_used;
    if (X == 0 || X > VKM_ROUTER_MAX_EXPERT || K == 0 || K > VKM_ROUTER_MAX_USED || K > X)
        return vkm_error(VKM_EUNSUPPORTED, "%s: %u experts, top-%u (limits %u, %u)", op, X, K,
                         VKM_ROUTER_MAX_EXPERT, VKM_ROUTER_MAX_USED);
    if (cfg->gating != 1 && cfg->gating != 2)
        return vkm_error(VKM_EUNSUPPORTED, "%s: gating function %u", op, cfg->gating);
    if (cfg->n_group > 1) {
        uint32_t G = cfg->n_group, per = X / G;
        if (G > VKM_ROUTER_MAX_GROUP || X % G || per < 2 || cfg->n_group_used == 0 ||
            cfg->n_group_used > G || (uint64_t)cfg->n_group_used * per < K)
            return vkm_error(VKM_EINVAL, "%s: %u experts in %u groups, %u used, top-%u", op, X, G,
                             cfg->n_group_used, K);
    }
    if (n_tok == 0) return 0;
    VKM_TRY(need(op, "logits", logits, (uint64_t)n_tok * X, 4));
    if (bias.buf) VKM_TRY(need(op, "bias", bias, X, 4));
    VKM_TRY(need(op, "ids", ids, (uint64_t)n_tok * K, 4));
    VKM_TRY(need(op, "weights", weights, (uint64_t)n_tok * K, 4));
    vkm_push_router p = {n_tok,
                         X,
                         K,
                         cfg->n_group > 1 ? cfg->n_group : 1,
                         cfg->n_group_used,
                         cfg->gating,
                         bias.buf != NULL,
                         cfg->norm,
                         cfg->scale,
                         X};
    vkm_gpu_arg args[7] = {logits, bias.buf ? bias : logits, ids, weights};
    if (group) VKM_TRY(group_need(op, group, n_tok, K, X)); /* before anything is recorded */
    const vkm_kernel_plan *plan = vkm_gpu_plan(gpu);
    const bool lane = plan->router_lane;
    if (group && plan->fuse.router_group && lane &&
        n_tok <= VKM_ROUTER_LANE_WG) { /* X <= VKM_MOE_GROUP_MAX_EXPERT */
        /* one workgroup routes and groups (router_lane.comp, GROUP) */
        args[4] = group->rows, args[5] = group->mats, args[6] = group->map;
        return dispatch(gpu, VKM_SH_ROUTER_LANE_GROUP, args, 7, &p, sizeof p, 1, 1);
    }
    if (group && plan->fuse.router_group && !lane && n_tok <= VKM_ROUTER_GROUP_MAX_TOK) {
        /* decode: one workgroup routes its token(s) and groups (router.comp, GROUP) */
        args[4] = group->rows, args[5] = group->mats, args[6] = group->map;
        return dispatch(gpu, VKM_SH_ROUTER_GROUP, args, 7, &p, sizeof p, 1, 1);
    }
    int rc;
    if (lane) { /* an invocation per token, no grid loop */
        if (n_tok > (uint64_t)MAX_GROUPS * VKM_ROUTER_LANE_WG)
            return vkm_error(VKM_ERANGE, "%s: %u tokens exceed one dispatch", op, n_tok);
        rc = dispatch(gpu, VKM_SH_ROUTER_LANE, args, 4, &p, sizeof p,
                      (n_tok + VKM_ROUTER_LANE_WG - 1) / VKM_ROUTER_LANE_WG, 1);
    } else {
        rc = dispatch(gpu, VKM_SH_ROUTER, args, 4, &p, sizeof p, groups(n_tok, 1), 1);
    }
    return rc || !group ? rc : vkm_op_moe_group(gpu, ids, group, n_tok, K, X);
}

int vkm_op_router(vkm_gpu *gpu, const vkm_router_cfg *cfg, vkm_gpu_arg logits, vkm_gpu_arg bias,
                  vkm_gpu_arg ids, vkm_gpu_arg weights, uint32_t n_tok) {
    return router(gpu, cfg, logits, bias, ids, weights, n_tok, NULL);
}

int vkm_op_router_group(vkm_gpu *gpu, const vkm_router_cfg *cfg, vkm_gpu_arg logits,
                        vkm_gpu_arg bias, vkm_gpu_arg ids, vkm_gpu_arg weights,
                        const vkm_moe_grouping *group, uint32_t n_tok) {
    if (!group) return vkm_error(VKM_EINVAL, "router_group: no grouping buffers");
    return router(gpu, cfg, logits, bias, ids, weights, n_tok, group);
}

int vkm_op_moe_group(vkm_gpu *gpu, vkm_gpu_arg ids, const vkm_moe_grouping *group, uint32_t n_tok,
                     uint32_t n_used, uint32_t n_expert) {
    const char *op = "moe_group";
    if (n_expert == 0 || n_expert > VKM_MOE_GROUP_MAX_EXPERT || n_used == 0)
        return vkm_error(VKM_EINVAL, "%s: %u experts (at most %u), %u used", op, n_expert,
                         VKM_MOE_GROUP_MAX_EXPERT, n_used);
    if (n_tok == 0) return 0;
    VKM_TRY(need(op, "ids", ids, (uint64_t)n_tok * n_used, 4));
    VKM_TRY(group_need(op, group, n_tok, n_used, n_expert));
    vkm_push_moe_group p = {n_tok, n_used, n_expert};
    vkm_gpu_arg args[4] = {ids, group->rows, group->mats, group->map};
    return dispatch(gpu, VKM_SH_MOE_GROUP, args, 4, &p, sizeof p, 1, 1);
}

int vkm_op_moe_combine(vkm_gpu *gpu, vkm_gpu_arg eo, vkm_gpu_arg map, vkm_gpu_arg w, vkm_gpu_arg y,
                       uint32_t n_tok, uint32_t n_used, uint32_t d, uint32_t n_rows,
                       bool accumulate) {
    const char *op = "moe_combine";
    if (d == 0 || n_used == 0) return vkm_error(VKM_EINVAL, "%s: d %u, n_used %u", op, d, n_used);
    if (n_tok == 0) return 0;
    if (n_rows) VKM_TRY(need(op, "eo", eo, (uint64_t)n_rows * d, 4));
    VKM_TRY(fits_x(op, d));
    VKM_TRY(need(op, "map", map, (uint64_t)n_tok * n_used, 4));
    VKM_TRY(need(op, "w", w, (uint64_t)n_tok * n_used, 4));
    VKM_TRY(need(op, "y", y, (uint64_t)n_tok * d, 4));
    vkm_push_moe_combine p = {n_tok, n_used, d, n_rows, d, d, accumulate, 0.0f};
    vkm_gpu_arg args[4] = {n_rows ? eo : y, map, w, y};
    return dispatch(gpu, VKM_SH_MOE_COMBINE, args, 4, &p, sizeof p, groups(d, VKM_OPS_WG),
                    groups(n_tok, 1));
}

int vkm_op_moe_combine_norm(vkm_gpu *gpu, const vkm_moe_combine_norm *c) {
    const char *op = "moe_combine_norm";
    const uint32_t n_tok = c->n_tok, K = c->n_used, d = c->d;
    if (d == 0 || K == 0) return vkm_error(VKM_EINVAL, "%s: d %u, n_used %u", op, d, K);
    if (n_tok == 0) return 0;
    const uint64_t n = (uint64_t)n_tok * d;
    if (c->n_rows) VKM_TRY(need(op, "eo", c->eo, (uint64_t)c->n_rows * d, 4));
    VKM_TRY(need(op, "map", c->map, (uint64_t)n_tok * K, 4));
    VKM_TRY(need(op, "w", c->w, (uint64_t)n_tok * K, 4));
    if (c->accumulate) VKM_TRY(need(op, "y", c->y, n, 4));
    VKM_TRY(need(op, "x", c->x, n, 4));
    VKM_TRY(need(op, "norm_w", c->norm_w, d, 4));
    VKM_TRY(need(op, "a", c->a, n, 4));
    const bool q8 = c->q.buf != NULL;
    if (q8) VKM_TRY(need_q8(op, c->q, n_tok, d));
    vkm_push_moe_combine p = {n_tok, K, d, c->n_rows, d, d, c->accumulate, c->eps};
    /* unused bindings get a bound range all the same */
    vkm_gpu_arg args[8] = {c->n_rows ? c->eo : c->x,
                           c->map,
                           c->w,
                           c->accumulate ? c->y : c->x,
                           c->x,
                           c->norm_w,
                           c->a,
                           c->q};
    uint32_t spec[3];
    norm_spec(gpu, spec);
    spec[2] = K <= VKM_ROUTER_MAX_USED ? K : 0; /* NU: the token's rows loaded once */
    vkm_gpu_kernel *k = NULL;
    const int n_args = q8 ? 8 : 7;
    VKM_TRY(vkm_gpu_kernel_get(gpu, q8 ? VKM_SH_MOE_COMBINE_NORM_Q8 : VKM_SH_MOE_COMBINE_NORM, spec,
                               3, n_args, sizeof p, &k));
    return vkm_gpu_dispatch(gpu, k, args, n_args, &p, groups(n_tok, 1), 1, 1);
}
