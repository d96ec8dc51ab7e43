/* ops_common.h - push-constant layouts and limits of the non-matmul kernels (core/ops.c), shared
 * by C and GLSL so the two sides cannot drift apart.
 *
 * Included from C (core/ops.c, tests) and from the shaders in this folder (rmsnorm.comp, rope.comp,
 * mla_attn.comp, mla_attn_dec.comp, kv_store.comp, mla_kv_rope.comp, router.comp,
 * moe_combine.comp, swiglu.comp, add.comp, scale.comp, get_rows.comp). Every struct holds only
 * 32-bit scalars, so its std430 layout in a push-constant block equals the C layout; the C side
 * asserts each size (Vulkan guarantees 128 bytes of push constants, every struct here must stay
 * within that). Strides and offsets are in elements. In GLSL a shader declares
 * `layout(push_constant) uniform Push { vkm_push_X p; };`. */
#ifndef VKM_OPS_COMMON_H
#define VKM_OPS_COMMON_H

#ifdef __STDC__
#include <stdint.h>
#define VKM_PC_U32 uint32_t
#define VKM_PC_I32 int32_t
#define VKM_PC_F32 float
#define VKM_PC_STRUCT(name)                                                                        \
    typedef struct name name;                                                                      \
    struct name
#else
#define VKM_PC_U32 uint
#define VKM_PC_I32 int
#define VKM_PC_F32 float
#define VKM_PC_STRUCT(name) struct name
#endif

/* ---- workgroup sizes and limits (compile-time on both sides) ---- */
#define VKM_OPS_WG 256      /* elementwise kernels: invocations per workgroup */
#define VKM_OPS_RED_WG 128  /* row reductions (rmsnorm, router): one workgroup per row */
#define VKM_ATTN_WG 64      /* attention: invocations per (query, head); also the key block size */
#define VKM_ATTN_MAX_DK 576 /* largest score dimension (Ckv 512 + R 64) */
#define VKM_ATTN_MAX_DV 512 /* largest value dimension (Ckv) */
/* mla_attn_lane.comp: keys per pass. lavapipe ends any shader invocation after 65535 loop
 * iterations in all (gallivm's loop limiter), so longer contexts take several passes */
#define VKM_ATTN_LANE_KEYS 512
/* mla_attn_dec.comp: most keys of one call (its value pass loops over all of them) */
#define VKM_ATTN_DEC_MAX_KEYS 32768
#define VKM_ROUTER_MAX_EXPERT 512
#define VKM_ROUTER_MAX_USED 16
#define VKM_ROUTER_MAX_GROUP 64
#define VKM_ROUTER_LANE_WG 64     /* router_lane.comp: invocations (tokens) per workgroup */
#define VKM_OPS_MAX_GROUPS 65535u /* dispatch size limit per dimension used by the host */

/* rmsnorm.comp: per row r < n_rows: y[r*y_stride + i] = x[r] / sqrt(mean(x[r]^2) + eps) * w[i]
 * for i < d. Variant rmsnorm_add first does x[r*x_stride + i] += res[r*res_stride + i] in place. */
VKM_PC_STRUCT(vkm_push_rmsnorm) {
    VKM_PC_U32 n_rows;
    VKM_PC_U32 d;
    VKM_PC_U32 x_stride;
    VKM_PC_U32 res_stride;
    VKM_PC_U32 y_stride;
    VKM_PC_F32 eps;
};

/* rope.comp: NORMAL-mode RoPE with YaRN, in place on x[t*tok_stride + h*head_stride + off + i],
 * i < n_rot, for t < n_tok, h < n_head, position pos[t]. */
VKM_PC_STRUCT(vkm_push_rope) {
    VKM_PC_U32 n_tok;
    VKM_PC_U32 n_head;
    VKM_PC_U32 n_rot;
    VKM_PC_U32 off;
    VKM_PC_U32 tok_stride;
    VKM_PC_U32 head_stride;
    VKM_PC_F32 theta_scale; /* powf(base, -2/n_rot) */
    VKM_PC_F32 freq_scale;
    VKM_PC_F32 ext_factor;
    VKM_PC_F32 mscale; /* attn_factor, times (1 + 0.1 ln(1/freq_scale)) when ext_factor != 0 */
    VKM_PC_F32 corr_low;
    VKM_PC_F32 corr_high;
};

/* kv_store.comp: dst[(row0 + t)*dst_row_stride + h*dst_head_stride + dst_off + i] =
 *   src[t*src_tok_stride + h*src_head_stride + src_off + i] for t < n_tok, h < n_head, i < d.
 * src is f32; dst is f16 (kv_store_f16, all dst offsets/strides and d even) or f32. */
VKM_PC_STRUCT(vkm_push_kv_store) {
    VKM_PC_U32 n_tok;
    VKM_PC_U32 n_head;
    VKM_PC_U32 d;
    VKM_PC_U32 src_off;
    VKM_PC_U32 src_tok_stride;
    VKM_PC_U32 src_head_stride;
    VKM_PC_U32 dst_off;
    VKM_PC_U32 dst_row0;
    VKM_PC_U32 dst_row_stride;
    VKM_PC_U32 dst_head_stride;
};

/* mla_kv_rope.comp: for t < n_tok and u = tok0 + t (the token's row in kva, pos and q), cache row
 * (row0 + t) (ckv + n_rot values) = [the rmsnorm of kva[u*kva_stride + 0..ckv) times w,
 * kva[u*kva_stride + ckv + 0..n_rot) roped at pos[u]], and q[u*q_tok_stride + h*q_head_stride +
 * q_off + 0..n_rot) roped in place for h < n_head. The rope fields are vkm_push_rope's. */
VKM_PC_STRUCT(vkm_push_mla_kv_rope) {
    VKM_PC_U32 n_tok;
    VKM_PC_U32 ckv;
    VKM_PC_U32 n_rot;
    VKM_PC_U32 kva_stride;
    VKM_PC_U32 row0;
    VKM_PC_U32 n_head;
    VKM_PC_U32 q_off;
    VKM_PC_U32 q_tok_stride;
    VKM_PC_U32 q_head_stride;
    VKM_PC_F32 eps;
    VKM_PC_F32 theta_scale;
    VKM_PC_F32 freq_scale;
    VKM_PC_F32 ext_factor;
    VKM_PC_F32 mscale;
    VKM_PC_F32 corr_low;
    VKM_PC_F32 corr_high;
    VKM_PC_U32 tok0;
};

/* mla_attn.comp: for query i < n_q at position q_pos0 + i and head h < n_head:
 *   Q = [qa[qa_off + i*qa_tok_stride + h*qa_head_stride + 0..da),
 *        qb[qb_off + i*qb_tok_stride + h*qb_head_stride + 0..db)]
 *   K_p = k[p*k_row_stride + h*k_head_stride + 0..da+db)      (cache, f16 or f32)
 *   V_p = v[v_off + p*v_row_stride + h*v_head_stride + 0..dv) (cache, same type)
 *   o[o_off + i*o_tok_stride + h*o_head_stride + c] = sum_p softmax_p(kq_scale * Q.K_p) V_p[c]
 * over p <= q_pos0 + i and p < n_kv. Every offset, stride and dimension of the cache side is even.
 * The CPU devices' kernel (cpu/mla_attn_lane.comp) takes this block and a pass's key range
 * (cpu/attn_lane.h). */
VKM_PC_STRUCT(vkm_push_attn) {
    VKM_PC_U32 n_q;
    VKM_PC_U32 n_head;
    VKM_PC_U32 q_pos0;
    VKM_PC_U32 n_kv;
    VKM_PC_U32 da;
    VKM_PC_U32 db;
    VKM_PC_U32 dv;
    VKM_PC_U32 qa_off;
    VKM_PC_U32 qa_tok_stride;
    VKM_PC_U32 qa_head_stride;
    VKM_PC_U32 qb_off;
    VKM_PC_U32 qb_tok_stride;
    VKM_PC_U32 qb_head_stride;
    VKM_PC_U32 k_row_stride;
    VKM_PC_U32 k_head_stride;
    VKM_PC_U32 v_off;
    VKM_PC_U32 v_row_stride;
    VKM_PC_U32 v_head_stride;
    VKM_PC_U32 o_tok_stride;
    VKM_PC_U32 o_head_stride;
    VKM_PC_F32 kq_scale;
    VKM_PC_U32 o_off; /* o[o_off + i*o_tok_stride + h*o_head_stride + c] */
};

/* mla_attn_dec.comp (CPU devices, one query, heads sharing the cache rows): with
 *   Q_h = [qa[qa_off + h*qa_head_stride + 0..da), qb[qb_off + h*qb_head_stride + 0..db)],
 *   K_p = cache elements [p*row_elems, + da+db), V_p = its first dv (element e of the cache is in
 *   texel k_tex0 + e / (16 / element size) of the texel binding),
 * pass 0 writes s[p*s_stride + h] = kq_scale * Q_h.K_p for p < n_kv, pass 1 replaces every column
 * h by its softmax over p, pass 2 writes o[o_off + h*o_head_stride + c] = sum_p s[p*s_stride + h]
 * V_p[c]. da, db, dv and row_elems are multiples of 8, s_stride of 8 (>= n_head; the columns past
 * n_head are scratch), o_head_stride of 4; 1 <= n_kv <= VKM_ATTN_DEC_MAX_KEYS. */
VKM_PC_STRUCT(vkm_push_attn_dec) {
    VKM_PC_U32 n_head;
    VKM_PC_U32 n_kv;
    VKM_PC_U32 da;
    VKM_PC_U32 db;
    VKM_PC_U32 dv;
    VKM_PC_U32 qa_head_stride;
    VKM_PC_U32 qb_off;
    VKM_PC_U32 qb_head_stride;
    VKM_PC_U32 k_tex0;
    VKM_PC_U32 row_elems;
    VKM_PC_U32 s_stride;
    VKM_PC_U32 o_head_stride;
    VKM_PC_F32 kq_scale;
    VKM_PC_U32 qa_off; /* multiples of 4: the query's and the output's first element */
    VKM_PC_U32 o_off;
};

/* router.comp: one workgroup per token; see core/ops.h vkm_op_router. */
VKM_PC_STRUCT(vkm_push_router) {
    VKM_PC_U32 n_tok;
    VKM_PC_U32 n_expert;
    VKM_PC_U32 n_used;
    VKM_PC_U32 n_group; /* grouping only if > 1 */
    VKM_PC_U32 n_group_used;
    VKM_PC_U32 gating; /* 1 softmax, 2 sigmoid */
    VKM_PC_U32 has_bias;
    VKM_PC_U32 norm;
    VKM_PC_F32 scale; /* applied when != 0 and != 1 */
    VKM_PC_U32 logit_stride;
};

/* moe_combine.comp: y[t*y_stride + c] = (accumulate ? y : 0) +
 *   sum_{j < n_used} w[t*n_used + j] * eo[map[t*n_used + j]*eo_stride + c], c < d.
 * Map entries outside [0, n_rows) contribute nothing. */
VKM_PC_STRUCT(vkm_push_moe_combine) {
    VKM_PC_U32 n_tok;
    VKM_PC_U32 n_used;
    VKM_PC_U32 d;
    VKM_PC_U32 n_rows;
    VKM_PC_U32 eo_stride;
    VKM_PC_U32 y_stride;
    VKM_PC_U32 accumulate;
    VKM_PC_F32 eps; /* moe_combine_norm only */
};

/* swiglu.comp: y[r*y_stride + i] = silu(g[g_off + r*g_stride + i]) * u[u_off + r*u_stride + i]. */
VKM_PC_STRUCT(vkm_push_swiglu) {
    VKM_PC_U32 n_rows;
    VKM_PC_U32 d;
    VKM_PC_U32 g_off;
    VKM_PC_U32 g_stride;
    VKM_PC_U32 u_off;
    VKM_PC_U32 u_stride;
    VKM_PC_U32 y_stride;
};

/* add.comp / scale.comp over n contiguous floats: y[i] = a[i] + b[i]; y[i] = s * x[i]. */
VKM_PC_STRUCT(vkm_push_eltwise) {
    VKM_PC_U32 n;
    VKM_PC_F32 s;
};

/* get_rows.comp: y[i*y_stride + e] = dequant(table row ids[i])[e], e < k; ids outside
 * [0, n_vocab) give a zero row. row_bytes is the byte size of one table row. The bound window
 * holds the rows row0 .. row0 + rows - 1, row row0 at byte w_off (a table larger than a binding
 * is looked up in several dispatches, one per window): only ids in that range are written, and
 * the zero rows only by the window with row0 = 0. */
VKM_PC_STRUCT(vkm_push_get_rows) {
    VKM_PC_U32 n_ids;
    VKM_PC_U32 k; /* d, the row length (named k for quant.glsl, which reads p.k) */
    VKM_PC_U32 n_vocab;
    VKM_PC_U32 row_bytes;
    VKM_PC_U32 y_stride;
    VKM_PC_U32 w_off; /* even */
    VKM_PC_U32 row0;
    VKM_PC_U32 rows;
};

#ifdef __STDC__
_Static_assert(sizeof(vkm_push_rmsnorm) == 24, "vkm_push_rmsnorm layout");
_Static_assert(sizeof(vkm_push_rope) == 48, "vkm_push_rope layout");
_Static_assert(sizeof(vkm_push_kv_store) == 40, "vkm_push_kv_store layout");
_Static_assert(sizeof(vkm_push_mla_kv_rope) == 68, "vkm_push_mla_kv_rope layout");
_Static_assert(sizeof(vkm_push_attn) == 88, "vkm_push_attn layout");
_Static_assert(sizeof(vkm_push_attn_dec) == 60, "vkm_push_attn_dec layout");
_Static_assert(sizeof(vkm_push_router) == 40, "vkm_push_router layout");
_Static_assert(sizeof(vkm_push_moe_combine) == 32, "vkm_push_moe_combine layout");
_Static_assert(sizeof(vkm_push_swiglu) == 28, "vkm_push_swiglu layout");
_Static_assert(sizeof(vkm_push_eltwise) == 8, "vkm_push_eltwise layout");
_Static_assert(sizeof(vkm_push_get_rows) == 32, "vkm_push_get_rows layout");
#endif

#endif
