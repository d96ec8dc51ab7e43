// mla_kv_rope.comp - the MLA kv path of a batch in one kernel (spec §4.3-§4.5): for token
// t < n_tok, in row u = tok0 + t of kva, pos and q (one sequence of a multi-sequence batch), at
// position pos[u]
//   cache row (row0 + t) = [ rmsnorm(kva[u][0..ckv)) * w , rope(kva[u][ckv..ckv+n_rot)) ]
//   q[u*q_tok_stride + h*q_head_stride + q_off + 0..n_rot) roped in place, h < n_head.
// It does what rmsnorm.comp, rope.comp (k_pe, then q_pe) and kv_store.comp do in four dispatches,
// with the same arithmetic: the sum of squares of rms.glsl with rmsnorm.comp's workgroup, the
// angles of rope.glsl (each pair's cos/sin computed once for k_pe and every head).
// kva is only read. The cache is f16 pairs (-DDST_F16, variant mla_kv_rope_f16: ckv and the row
// width even, checked on the host) or f32 (mla_kv_rope_f32).
// Bindings: 0 kva (f32 [n_tok][kva_stride]), 1 w (f32 [ckv]), 2 pos (int32 [n_tok]),
// 3 q (f32, read-write), 4 cache (f16 pairs as uint, or f32; rows of ckv + n_rot values).
// With -DPOOL (variants mla_kv_rope_pool_f16 / _f32: the sequences of a multi-sequence batch
// whose caches share one buffer, core/session.c's KV pools) token u's cache row is
// kvt[2u] + kvt[2u + 1] - 1 (binding 5, int32 kvt[][2]: its cache's first row, its position + 1,
// as mla_attn.comp's POOL variant reads them), written only below row0, then the number of cache
// rows bound.
// One workgroup per token (grid-stride). Spec 0: invocations per workgroup (at most
// VKM_OPS_RED_WG); spec 1 SG = 1 when that is one whole subgroup (subgroupAdd, no barriers).
#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_KHR_shader_subgroup_arithmetic : require
#include "ops_common.h"

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint SG = 0;
layout(std430, set = 0, binding = 0) readonly buffer KV { float kva[]; };
layout(std430, set = 0, binding = 1) readonly buffer W { float w[]; };
layout(std430, set = 0, binding = 2) readonly buffer P { int pos[]; };
layout(std430, set = 0, binding = 3) buffer Q { float q[]; };
#ifdef DST_F16
layout(std430, set = 0, binding = 4) writeonly buffer C { uint cache[]; };
#else
layout(std430, set = 0, binding = 4) writeonly buffer C { float cache[]; };
#endif
#ifdef POOL
layout(std430, set = 0, binding = 5) readonly buffer T { int kvt[]; };
#endif
layout(push_constant) uniform Push { vkm_push_mla_kv_rope p; };

#include "rms.glsl"
#include "rope.glsl"

void main() {
    const uint tid = gl_LocalInvocationID.x, nt = gl_WorkGroupSize.x;
    const uint width = p.ckv + p.n_rot;
    for (uint t = gl_WorkGroupID.x; t < p.n_tok; t += gl_NumWorkGroups.x) {
        const uint u = p.tok0 + t;
        const uint xb = u * p.kva_stride;
        float sum = 0.0;
        for (uint i = tid; i < p.ckv; i += nt) {
            float v = kva[xb + i];
            sum += v * v;
        }
        const float total = rms_total(sum);
        const float scale = 1.0 / sqrt(total / float(p.ckv) + p.eps);
#ifdef POOL
        const uint crow = uint(kvt[2u * u]) + uint(kvt[2u * u + 1u]) - 1u;
        const bool put = crow < p.row0 && uint(kvt[2u * u + 1u]) > 0u; // uniform per workgroup
        const uint cb = put ? crow * width : 0u;
#else
        const bool put = true;
        const uint cb = (p.row0 + t) * width;
#endif
#ifdef DST_F16
        for (uint i = 2 * tid; put && i < p.ckv; i += 2 * nt) {
            const vec2 v = vec2((kva[xb + i] * scale) * w[i], (kva[xb + i + 1] * scale) * w[i + 1]);
            cache[(cb + i) / 2] = packHalf2x16(v);
        }
#else
        for (uint i = tid; put && i < p.ckv; i += nt) cache[cb + i] = (kva[xb + i] * scale) * w[i];
#endif
        const int ps = pos[u];
        for (uint k = tid; k < p.n_rot / 2; k += nt) {
            const vec2 cs = rope_cs(ps, k);
            const float c = cs.x, s = cs.y;
            const uint b = xb + p.ckv + 2 * k;
            const float x0 = kva[b], x1 = kva[b + 1];
            const vec2 r = vec2(x0 * c - x1 * s, x0 * s + x1 * c);
            if (put) {
#ifdef DST_F16
                cache[(cb + p.ckv + 2 * k) / 2] = packHalf2x16(r);
#else
                cache[cb + p.ckv + 2 * k] = r.x;
                cache[cb + p.ckv + 2 * k + 1] = r.y;
#endif
            }
            for (uint h = 0; h < p.n_head; h++) {
                const uint qb = u * p.q_tok_stride + h * p.q_head_stride + p.q_off + 2 * k;
                const float q0 = q[qb], q1 = q[qb + 1];
                q[qb] = q0 * c - q1 * s;
                q[qb + 1] = q0 * s + q1 * c;
            }
        }
    }
}
