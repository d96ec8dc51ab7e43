// mla_attn.comp - causal softmax attention over a KV cache with online softmax (flash-attention
// style): no score matrix is materialised, each workgroup streams the keys of one (query, head)
// in blocks of VKM_ATTN_WG, keeping a running max m, running sum l and the output accumulator.
//
// Serves both layouts of spec §4.4 through strides (vkm_push_attn in ops_common.h):
//   MLA absorbed (§4.4a): Q_h = [q_abs_h (da = Ckv), q_pe_h (db = R)], K_p = cache row [c, k_pe]
//     shared by all heads (k_head_stride 0), V_p = first Ckv entries of the same row (v buffer =
//     k buffer, dv = Ckv, v_head_stride 0).
//   naive (§4.4b): Q_h = [q_nope_h, q_pe_h], per-head K cache rows and a separate V cache.
// Query i sits at position q_pos0 + i and sees keys p <= q_pos0 + i (and p < n_kv).
// Cache type: -DCACHE_F16 (variant mla_attn_f16, halves packed in uint words) or f32
// (mla_attn_f32). Elements are read in pairs: da, db, dv and all cache offsets/strides are even.
// Bindings: 0 qa (f32), 1 qb (f32), 2 k cache, 3 v cache, 4 o (f32).
// Grid: x = head, y = query (grid-stride). Limits: da+db <= VKM_ATTN_MAX_DK, dv <= VKM_ATTN_MAX_DV.
// With -DPOOL (variants mla_attn_pool_f16 / _f32: the sequences of a multi-sequence batch whose
// caches share one buffer, core/session.c's KV pools) each query has a cache of its own: binding
// 5, int32 kvt[n_q][2], gives query i's first cache row and its key count (position + 1), so
// query i sees rows kvt[2i] .. kvt[2i] + kvt[2i + 1] - 1 (clamped to the n_kv rows bound);
// q_pos0 is unused.
// Performance (correctness first): each invocation computes one key's full dot product, and every
// (query, head) workgroup re-reads the keys; with MLA all heads share K, so handling several heads
// per workgroup (and splitting long decodes over workgroups) is the obvious next step.
#version 450
#extension GL_GOOGLE_include_directive : require
#include "ops_common.h"

layout(local_size_x = VKM_ATTN_WG) in;
layout(std430, set = 0, binding = 0) readonly buffer QA { float qa[]; };
layout(std430, set = 0, binding = 1) readonly buffer QB { float qb[]; };
#ifdef CACHE_F16
layout(std430, set = 0, binding = 2) readonly buffer KC { uint kc[]; };
layout(std430, set = 0, binding = 3) readonly buffer VC { uint vc[]; };
vec2 load_k(uint e) { return unpackHalf2x16(kc[e >> 1]); }
vec2 load_v(uint e) { return unpackHalf2x16(vc[e >> 1]); }
#else
layout(std430, set = 0, binding = 2) readonly buffer KC { float kc[]; };
layout(std430, set = 0, binding = 3) readonly buffer VC { float vc[]; };
vec2 load_k(uint e) { return vec2(kc[e], kc[e + 1]); }
vec2 load_v(uint e) { return vec2(vc[e], vc[e + 1]); }
#endif
layout(std430, set = 0, binding = 4) writeonly buffer O { float o[]; };
#ifdef POOL
layout(std430, set = 0, binding = 5) readonly buffer T { int kvt[]; };
#endif
layout(push_constant) uniform Push { vkm_push_attn p; };

#define WG VKM_ATTN_WG
#define NV (VKM_ATTN_MAX_DV / 2 / VKM_ATTN_WG) // value pairs owned by one invocation

shared vec2 q_s[VKM_ATTN_MAX_DK / 2]; // the query of this (token, head)
shared float p_s[WG];                 // exp(score - m) of the current key block
shared float red[WG];                 // reduction scratch

void main() {
    const uint tid = gl_LocalInvocationID.x;
    const uint h = gl_WorkGroupID.x;
    const uint dk2 = (p.da + p.db) / 2, dv2 = p.dv / 2;
    for (uint i = gl_WorkGroupID.y; i < p.n_q; i += gl_NumWorkGroups.y) {
        const uint qa_b = p.qa_off + i * p.qa_tok_stride + h * p.qa_head_stride;
        const uint qb_b = p.qb_off + i * p.qb_tok_stride + h * p.qb_head_stride;
        for (uint e2 = tid; e2 < dk2; e2 += WG) {
            const uint e = 2 * e2;
            q_s[e2] = e < p.da ? vec2(qa[qa_b + e], qa[qa_b + e + 1])
                               : vec2(qb[qb_b + e - p.da], qb[qb_b + e - p.da + 1]);
        }
        barrier();

#ifdef POOL
        const uint kbase = min(uint(kvt[2u * i]), p.n_kv); // uniform over the workgroup
        const uint n_keys = min(uint(kvt[2u * i + 1u]), p.n_kv - kbase);
#else
        const uint kbase = 0u;
        const uint n_keys = min(p.q_pos0 + i + 1, p.n_kv);
#endif
        float m = -3.0e38, l = 0.0;
        vec2 acc[NV];
        for (uint a = 0; a < NV; a++) acc[a] = vec2(0.0);

        for (uint blk = 0; blk < n_keys; blk += WG) {
            const uint j = blk + tid;
            float s = -3.0e38;
            if (j < n_keys) {
                const uint kb = (kbase + j) * p.k_row_stride + h * p.k_head_stride;
                float d = 0.0;
                for (uint e2 = 0; e2 < dk2; e2++) d += dot(q_s[e2], load_k(kb + 2 * e2));
                s = p.kq_scale * d;
            }
            red[tid] = s;
            barrier();
            for (uint r = WG / 2; r > 0; r >>= 1) {
                if (tid < r) red[tid] = max(red[tid], red[tid + r]);
                barrier();
            }
            const float m_new = max(m, red[0]);
            barrier();
            const float corr = exp(m - m_new);
            const float pj = j < n_keys ? exp(s - m_new) : 0.0;
            p_s[tid] = pj;
            red[tid] = pj;
            barrier();
            for (uint r = WG / 2; r > 0; r >>= 1) {
                if (tid < r) red[tid] += red[tid + r];
                barrier();
            }
            l = l * corr + red[0];
            const uint nb = min(uint(WG), n_keys - blk);
            for (uint a = 0; a < NV; a++) {
                const uint c2 = tid + a * WG;
                if (c2 >= dv2) break;
                vec2 v = acc[a] * corr;
                uint vb = p.v_off + (kbase + blk) * p.v_row_stride + h * p.v_head_stride + 2 * c2;
                for (uint jj = 0; jj < nb; jj++, vb += p.v_row_stride) v += p_s[jj] * load_v(vb);
                acc[a] = v;
            }
            m = m_new;
            barrier(); // p_s, red and q_s are rewritten by the next block / query
        }

        const float inv = l > 0.0 ? 1.0 / l : 0.0;
        const uint ob = p.o_off + i * p.o_tok_stride + h * p.o_head_stride;
        for (uint a = 0; a < NV; a++) {
            const uint c2 = tid + a * WG;
            if (c2 >= dv2) break;
            o[ob + 2 * c2] = acc[a].x * inv;
            o[ob + 2 * c2 + 1] = acc[a].y * inv;
        }
    }
}
