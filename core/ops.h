/* ops.h - the GPU kernels of the deepseek2 forward pass other than weight matmuls: RMSNorm (with an
 * optional fused residual add), RoPE with YaRN, KV-cache stores, causal attention over the MLA
 * latent cache (and the legacy per-head K/V layout), the MoE router, expert combination, SwiGLU,
 * add, scale and the embedding lookup (spec §4).
 *
 * Each vkm_op_* records one dispatch through core/gpu.h; the caller brackets them with
 * vkm_gpu_begin()/vkm_gpu_submit() (gpu.h inserts the barriers between dispatches). Buffers are
 * passed as vkm_gpu_arg ranges (buf, byte offset, size 0 = to the end); every op checks that the
 * elements it will touch lie inside its ranges and that shapes respect the kernel limits
 * (VKM_EINVAL / VKM_ERANGE with a message, nothing recorded). Activations are f32; strides and
 * offsets are in elements, shapes are row-major with the last index fastest.
 * Push-constant layouts and limits: shaders/ops_common.h. Reference semantics: core/ref_ops.h. */
#ifndef VKM_OPS_H
#define VKM_OPS_H

#include <stdbool.h>
#include <stdint.h>

#include "gpu.h"
#include "../shaders/ops_common.h"

/* ---- norms and element-wise ---- */

/* y[r*y_stride + i] = x[r*x_stride + i] / sqrt(mean_i(x[r]^2) + eps) * w[i], r < n_rows, i < d.
 * x f32, w f32 [d], y f32. y may be the same range as x (in place). */
int vkm_op_rmsnorm(vkm_gpu *gpu, vkm_gpu_arg x, vkm_gpu_arg w, vkm_gpu_arg y, uint32_t n_rows,
                   uint32_t d, uint32_t x_stride, uint32_t y_stride, float eps);

/* Residual add then norm: x += res (in place, x and res f32 [n_rows][d]), then
 * y = rmsnorm(x) * w (y f32 [n_rows][d]). */
int vkm_op_rmsnorm_add(vkm_gpu *gpu, vkm_gpu_arg x, vkm_gpu_arg res, vkm_gpu_arg w, vkm_gpu_arg y,
                       uint32_t n_rows, uint32_t d, float eps);

/* The same two with y also written in the 8-bit form that gemv's integer-dot variants read (the
 * Q8X format of shaders/matmul_common.h: row r of y as d / 32 blocks of VKM_Q8X_BLOCK_BYTES at
 * byte 48 r d / 32 of q; d a multiple of 32), in the same dispatch: a matmul given it as its X
 * (ops_matmul.h vkm_q8x) records no quantization of its own. */
int vkm_op_rmsnorm_q8(vkm_gpu *gpu, vkm_gpu_arg x, vkm_gpu_arg w, vkm_gpu_arg y, vkm_gpu_arg q,
                      uint32_t n_rows, uint32_t d, uint32_t x_stride, uint32_t y_stride, float eps);
int vkm_op_rmsnorm_add_q8(vkm_gpu *gpu, vkm_gpu_arg x, vkm_gpu_arg res, vkm_gpu_arg w,
                          vkm_gpu_arg y, vkm_gpu_arg q, uint32_t n_rows, uint32_t d, float eps);

/* y[i] = a[i] + b[i], i < n (y may be a or b). */
int vkm_op_add(vkm_gpu *gpu, vkm_gpu_arg a, vkm_gpu_arg b, vkm_gpu_arg y, uint32_t n);

/* y[i] = s * x[i], i < n (y may be x). */
int vkm_op_scale(vkm_gpu *gpu, vkm_gpu_arg x, vkm_gpu_arg y, uint32_t n, float s);

/* y[r][i] = silu(g[r*g_stride + i]) * u[r*u_stride + i], r < n_rows, i < d; y f32 [n_rows][d]. */
int vkm_op_swiglu(vkm_gpu *gpu, vkm_gpu_arg g, vkm_gpu_arg u, vkm_gpu_arg y, uint32_t n_rows,
                  uint32_t d, uint32_t g_stride, uint32_t u_stride);

/* The same with gate and up in one array: y[r][i] = silu(gu[r*stride + i]) *
 * gu[u_off + r*stride + i], r < n_rows, i < d (u_off d, stride 2d: rows of [gate | up], as one
 * matmul over the gate and up rows writes them). gu needs no alignment beyond the buffer's. */
int vkm_op_swiglu_in(vkm_gpu *gpu, vkm_gpu_arg gu, uint32_t u_off, uint32_t stride, vkm_gpu_arg y,
                     uint32_t n_rows, uint32_t d);

/* Embedding lookup: y[i][0..d) = dequantized row ids[i] of table (GGUF type `type`, n_vocab rows
 * of vkm_qtype_row_bytes(type, d) bytes). ids int32 [n_ids]; y f32 [n_ids][d]. Ids outside
 * [0, n_vocab) give zero rows. Types: F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K..Q6_K.
 * A table larger than the device's weight window (gpu.h weight_window_bytes) is bound in windows
 * of rows, one dispatch each. */
int vkm_op_get_rows(vkm_gpu *gpu, uint32_t type, vkm_gpu_arg table, vkm_gpu_arg ids, vkm_gpu_arg y,
                    uint32_t n_ids, uint32_t d, uint32_t n_vocab);

/* ---- RoPE ---- */

/* Per-model RoPE constants, computed on the host like ggml (spec §4.5). */
typedef struct vkm_rope_params {
    uint32_t n_rot;            /* R: rotated dims (even) */
    float theta_scale;         /* powf(freq_base, -2/R) */
    float freq_scale;          /* 1/s */
    float ext_factor;          /* 1 for YaRN, else 0 */
    float mscale;              /* attn_factor · (1 + 0.1 ln(1/freq_scale)) if ext_factor != 0 */
    float corr_low, corr_high; /* YaRN correction dims */
} vkm_rope_params;

/* Fills *out; beta_fast/beta_slow are 32/1 for deepseek2. Fails on odd or zero n_rot,
 * non-positive base, freq_scale or n_ctx_orig. */
int vkm_op_rope_params(vkm_rope_params *out, uint32_t n_rot, float freq_base, float freq_scale,
                       float ext_factor, float attn_factor, uint32_t n_ctx_orig, float beta_fast,
                       float beta_slow);

/* In-place NORMAL-mode RoPE of x[t*tok_stride + h*head_stride + off + 0..R) for t < n_tok,
 * h < n_head at position pos[t] (int32 [n_tok], positions in [0, 2^24)). For q: off = Dn,
 * head_stride = Dqk, tok_stride = H*Dqk; for k_pe: n_head 1, off = Ckv, tok_stride = Ckv+R. */
int vkm_op_rope(vkm_gpu *gpu, const vkm_rope_params *rp, vkm_gpu_arg x, vkm_gpu_arg pos,
                uint32_t n_tok, uint32_t n_head, uint32_t off, uint32_t tok_stride,
                uint32_t head_stride);

/* ---- KV cache and attention ---- */

/* Strided row copy into a cache, f32 -> f16 (dst_f16) or f32; the fields are those of
 * vkm_push_kv_store (ops_common.h). With dst_f16, d, dst_off and the dst strides must be even. */
int vkm_op_kv_store(vkm_gpu *gpu, bool dst_f16, vkm_gpu_arg src, vkm_gpu_arg dst,
                    const vkm_push_kv_store *p);

/* MLA cache store: cache rows pos..pos+n_tok-1 (each `width` = Ckv+R values, f16 or f32) get
 * src[t*src_stride + 0..width) (f32: the normed c followed by the roped k_pe). */
int vkm_op_mla_kv_store(vkm_gpu *gpu, bool cache_f16, vkm_gpu_arg src, vkm_gpu_arg cache,
                        uint32_t n_tok, uint32_t width, uint32_t src_stride, uint32_t pos);

/* The MLA kv path of a batch in one dispatch (spec §4.3-§4.5), what vkm_op_rmsnorm (c in place),
 * vkm_op_rope (k_pe, then q_pe) and vkm_op_mla_kv_store do, except that kva is left unchanged:
 * for t < n_tok and u = tok0 + t, cache row row0 + t (ckv + R values, f16 or f32) =
 * [rmsnorm(kva[u*kva_stride + 0..ckv)) * w, kva[u*kva_stride + ckv + 0..R) roped at pos[u]], and
 * q[u*q_tok_stride + h*q_head_stride + q_off + 0..R) roped in place for h < n_head
 * (R = rp->n_rot). kva and q must not overlap. With cache_f16, ckv must be even. */
typedef struct vkm_mla_kv_shape {
    uint32_t n_tok, ckv, kva_stride, row0;
    uint32_t n_head, q_off, q_tok_stride, q_head_stride;
    float eps;
    uint32_t tok0; /* the tokens' first row in kva, pos and q (a sequence of a larger batch) */
    /* Optional (kvt.buf NULL: none), GPU kernels only (plan fuse.attn_pool): int32 [tok0 +
     * n_tok][2], row u = (the first cache row of token u's sequence, its position + 1); token u
     * then goes to cache row kvt[2u] + kvt[2u + 1] - 1 (row0 unused; rows outside the cache bound
     * are not written): the tokens of several sequences whose caches share a buffer in one
     * dispatch. */
    vkm_gpu_arg kvt;
} vkm_mla_kv_shape;
int vkm_op_mla_kv_rope(vkm_gpu *gpu, const vkm_rope_params *rp, bool cache_f16,
                       const vkm_mla_kv_shape *s, vkm_gpu_arg kva, vkm_gpu_arg w, vkm_gpu_arg pos,
                       vkm_gpu_arg q, vkm_gpu_arg cache);

/* What every attention call shares. */
typedef struct vkm_attn_shape {
    uint32_t n_q;    /* query tokens */
    uint32_t n_head; /* H */
    uint32_t q_pos0; /* position of query 0; query i attends to cache rows p <= q_pos0 + i */
    uint32_t n_kv;   /* valid cache rows (keys at p >= n_kv are ignored) */
    float kq_scale;  /* spec §4.6 */
    bool cache_f16;  /* cache holds f16 (default of llama.cpp) instead of f32 */
    /* f32 [n_q][H][2] scratch: the running max and sum between passes of the CPU-device kernel
     * (mla_attn_lane.comp), needed there when n_kv > VKM_ATTN_LANE_KEYS; may be empty else */
    vkm_gpu_arg state;
    /* f32 [n_kv][round_up(H, 8)] scratch of the one-query kernel of CPU devices (mla_attn_dec.comp,
     * vkm_op_mla_attn with n_q 1); may be empty: then the general kernel runs */
    vkm_gpu_arg scores;
    /* the queries' first row in the query and output arrays (one sequence of a multi-sequence
     * batch: rows q_row0 .. q_row0 + n_q - 1 are this call's; the state scratch starts at 0) */
    uint32_t q_row0;
    /* Optional (kvt.buf NULL: none), MLA and the GPU kernels only (plan fuse.attn_pool): int32
     * [q_row0 + n_q][2] as vkm_mla_kv_shape.kvt: query i attends to cache rows kvt[2i] ..
     * kvt[2i] + kvt[2i + 1] - 1 (clamped to the n_kv rows of the cache; q_pos0 unused): the
     * queries of several sequences whose caches share a buffer in one dispatch. */
    vkm_gpu_arg kvt;
} vkm_attn_shape;

/* Absorbed MLA attention (spec §4.4a) over the latent cache [n_ctx][ckv + n_rot]:
 * q_abs f32 [n_q][H][ckv]; q f32 [n_q][H][dqk] whose last n_rot values per head are q_pe;
 * o f32 [n_q][H][ckv] = per head sum_p softmax_p(kq_scale [q_abs, q_pe]·cache_p) cache_p[0..ckv).
 * Limits: ckv + n_rot <= VKM_ATTN_MAX_DK, ckv <= VKM_ATTN_MAX_DV, all even. */
int vkm_op_mla_attn(vkm_gpu *gpu, const vkm_attn_shape *s, uint32_t ckv, uint32_t n_rot,
                    uint32_t dqk, vkm_gpu_arg q_abs, vkm_gpu_arg q, vkm_gpu_arg cache,
                    vkm_gpu_arg o);

/* Naive (legacy attn_kv_b) attention (spec §4.4b): q f32 [n_q][H][dqk] = [q_nope, q_pe];
 * k_cache [n_ctx][H][dqk] = [k_nope_h, k_pe]; v_cache [n_ctx][H][dv]; o f32 [n_q][H][dv]. */
int vkm_op_naive_attn(vkm_gpu *gpu, const vkm_attn_shape *s, uint32_t dqk, uint32_t dv,
                      vkm_gpu_arg q, vkm_gpu_arg k_cache, vkm_gpu_arg v_cache, vkm_gpu_arg o);

/* The general form behind both (fields of vkm_push_attn in ops_common.h). */
int vkm_op_attn(vkm_gpu *gpu, bool cache_f16, const vkm_push_attn *p, vkm_gpu_arg qa,
                vkm_gpu_arg qb, vkm_gpu_arg k, vkm_gpu_arg v, vkm_gpu_arg o, vkm_gpu_arg state);

/* ---- MoE ---- */

typedef struct vkm_router_cfg {
    uint32_t n_expert;     /* X <= VKM_ROUTER_MAX_EXPERT */
    uint32_t n_used;       /* top-k <= VKM_ROUTER_MAX_USED */
    uint32_t n_group;      /* grouping only if > 1 (X % n_group == 0, <= VKM_ROUTER_MAX_GROUP) */
    uint32_t n_group_used; /* groups kept */
    uint32_t gating;       /* 1 softmax, 2 sigmoid */
    bool norm;             /* w /= max(sum w, 2^-14) */
    float scale;           /* applied if != 0 and != 1 */
} vkm_router_cfg;

/* Routes n_tok tokens (spec §4.7): logits f32 [n_tok][n_expert]; bias f32 [n_expert] or
 * bias.buf == NULL; ids int32 [n_tok][n_used] in descending selection score, ties to the lowest
 * expert index (groups likewise); weights f32 [n_tok][n_used]. */
int vkm_op_router(vkm_gpu *gpu, const vkm_router_cfg *cfg, vkm_gpu_arg logits, vkm_gpu_arg bias,
                  vkm_gpu_arg ids, vkm_gpu_arg weights, uint32_t n_tok);

/* Where the grouping of the choices by expert goes (layouts in shaders/fwd_common.h): rows and
 * map int32 [n_tok * n_used], mats int32 [3 * n_expert + 1]. */
typedef struct vkm_moe_grouping {
    vkm_gpu_arg rows, mats, map;
} vkm_moe_grouping;

/* Groups ids (int32 [n_tok][n_used], a router's choices) by expert into *group
 * (shaders/moe_group.comp); n_expert <= VKM_MOE_GROUP_MAX_EXPERT. */
int vkm_op_moe_group(vkm_gpu *gpu, vkm_gpu_arg ids, const vkm_moe_grouping *group, uint32_t n_tok,
                     uint32_t n_used, uint32_t n_expert);

/* vkm_op_router followed by vkm_op_moe_group of its choices: one dispatch on CPU devices for
 * batches of at most VKM_ROUTER_LANE_WG tokens (router_lane.comp's GROUP variant), two
 * elsewhere. */
int vkm_op_router_group(vkm_gpu *gpu, const vkm_router_cfg *cfg, vkm_gpu_arg logits,
                        vkm_gpu_arg bias, vkm_gpu_arg ids, vkm_gpu_arg weights,
                        const vkm_moe_grouping *group, uint32_t n_tok);

/* y[t][c] = (accumulate ? y[t][c] : 0) + sum_j w[t][j] * eo[map[t][j]][c]: eo f32 [n_rows][d]
 * (the expert outputs, rows grouped by expert), map int32 [n_tok][n_used] (row of token t's j-th
 * expert; rows outside [0, n_rows) are skipped), w f32 [n_tok][n_used], y f32 [n_tok][d]. */
int vkm_op_moe_combine(vkm_gpu *gpu, vkm_gpu_arg eo, vkm_gpu_arg map, vkm_gpu_arg w, vkm_gpu_arg y,
                       uint32_t n_tok, uint32_t n_used, uint32_t d, uint32_t n_rows,
                       bool accumulate);

/* vkm_op_moe_combine followed by the residual add and RMSNorm of vkm_op_rmsnorm_add, in one
 * dispatch: with o[t][c] = (accumulate ? y[t][c] : 0) + sum_j w[t][j] * eo[map[t][j]][c],
 * x[t][c] += o[t][c] and a[t] = rmsnorm(x[t]) * norm_w (the same values as the two ops; y is only
 * read). x, y, a f32 [n_tok][d]; eo, map, w as there. */
typedef struct vkm_moe_combine_norm {
    vkm_gpu_arg eo, map, w, y; /* y may be empty without accumulate */
    vkm_gpu_arg x, norm_w, a;
    uint32_t n_tok, n_used, d, n_rows;
    bool accumulate;
    float eps;
    vkm_gpu_arg q; /* optional (q.buf NULL: none): a in 8-bit form too, as vkm_op_rmsnorm_q8's y */
} vkm_moe_combine_norm;
int vkm_op_moe_combine_norm(vkm_gpu *gpu, const vkm_moe_combine_norm *c);

#endif
