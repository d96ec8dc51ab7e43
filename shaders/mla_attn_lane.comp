// mla_attn_lane.comp - the attention of mla_attn.comp (same bindings, push constants and result,
// see ops_common.h vkm_push_attn) in the layout for CPU devices such as lavapipe: every invocation
// owns one (query, head) pair whole, so there is no shared memory, no barrier and no reduction
// across invocations (a CPU driver runs a workgroup as SIMD chunks of one subgroup, a barrier is a
// coroutine switch and every shared-memory access a loop over the lanes).
//
// Pair t = i * n_head + h: the lanes of a subgroup are consecutive heads of one query (or of two
// neighbouring ones), so with MLA's shared K/V rows (k_head_stride = v_head_stride = 0) the cache
// addresses of a key are the same on every lane. The key loop runs to the subgroup's largest key
// count (uniform control flow, uniform key index), keys past a lane's own causal limit are
// masked, and the driver turns each cache load into one scalar load broadcast to the lanes. The
// query lives in a private array, the output accumulator too; keys are taken in blocks of KB:
// scores first, then one online-softmax rescale per block (running max m, running sum l), then the
// block's values. Exactly the reference's math in float (exp of score - running max).
// Passes: lavapipe ends an invocation after 65535 loop iterations in all, so the host splits the
// keys into passes [k_begin, k_end) of VKM_ATTN_LANE_KEYS; between passes the unnormalised output
// stays in o and (running max, running sum) in `state`, and the last pass normalises.
// Grid: x = pair blocks of WG (grid-stride over x * y). Limits as mla_attn.comp.
#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_KHR_shader_subgroup_arithmetic : require
#extension GL_EXT_control_flow_attributes : require
#include "ops_common.h"

layout(local_size_x_id = 0) in;
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
layout(std430, set = 0, binding = 4) buffer O { float o[]; };
layout(std430, set = 0, binding = 5) buffer S { vec2 state[]; }; // [pair] (running max, sum)
layout(push_constant) uniform Push { vkm_push_attn p; };

#define KB 8u // keys per online-softmax block

vec2 g_q[VKM_ATTN_MAX_DK / 2];   // this lane's query, in pairs
vec2 g_acc[VKM_ATTN_MAX_DV / 2]; // this lane's output accumulator, in pairs

void main() {
    const uint n_pairs = p.n_q * p.n_head;
    const uint stride = gl_NumWorkGroups.x * gl_NumWorkGroups.y * gl_WorkGroupSize.x;
    const uint first = (gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x) *
                           gl_WorkGroupSize.x + gl_LocalInvocationID.x;
    const uint dk2 = (p.da + p.db) / 2, da2 = p.da / 2, dv2 = p.dv / 2;
    // every lane runs the same number of rounds, so the subgroup stays converged
    const uint rounds = (n_pairs + stride - 1u - (first - gl_LocalInvocationID.x)) / stride;
    for (uint r = 0u; r < rounds; r++) {
        const uint t = first + r * stride;
        const bool live = t < n_pairs;
        const uint i = live ? t / p.n_head : 0u, h = live ? t % p.n_head : 0u;
        const uint qa_b = p.qa_off + i * p.qa_tok_stride + h * p.qa_head_stride;
        const uint qb_b = p.qb_off + i * p.qb_tok_stride + h * p.qb_head_stride;
        for (uint e2 = 0u; e2 < da2; e2++)
            g_q[e2] = live ? vec2(qa[qa_b + 2u * e2], qa[qa_b + 2u * e2 + 1u]) : vec2(0.0);
        for (uint e2 = da2; e2 < dk2; e2++) {
            const uint e = 2u * e2 - p.da;
            g_q[e2] = live ? vec2(qb[qb_b + e], qb[qb_b + e + 1u]) : vec2(0.0);
        }
        const uint ob = i * p.o_tok_stride + h * p.o_head_stride;
        const bool first_pass = p.k_begin == 0u, last_pass = p.k_end >= p.n_kv;
        float m = -3.0e38, l = 0.0;
        if (first_pass) {
            for (uint c2 = 0u; c2 < dv2; c2++) g_acc[c2] = vec2(0.0);
        } else { // the unnormalised output and (m, l) of the earlier passes
            for (uint c2 = 0u; c2 < dv2; c2++)
                g_acc[c2] = live ? vec2(o[ob + 2u * c2], o[ob + 2u * c2 + 1u]) : vec2(0.0);
            const vec2 ml = live ? state[t] : vec2(-3.0e38, 0.0);
            m = ml.x;
            l = ml.y;
        }

        const uint n_keys = live ? min(min(p.q_pos0 + i + 1u, p.n_kv), p.k_end) : 0u;
        const uint n_loop = subgroupMax(n_keys);
        const uint kh = h * p.k_head_stride, vh = p.v_off + h * p.v_head_stride;
        for (uint blk = p.k_begin; blk < n_loop; blk += KB) {
            float s[KB];
            uint kb[KB];
            [[unroll]] for (uint jj = 0u; jj < KB; jj++) {
                s[jj] = 0.0;
                kb[jj] = min(blk + jj, n_loop - 1u) * p.k_row_stride + kh; // in range on every lane
            }
            for (uint e2 = 0u; e2 < dk2; e2++) {
                const vec2 q = g_q[e2];
                [[unroll]] for (uint jj = 0u; jj < KB; jj++) s[jj] += dot(q, load_k(kb[jj] + 2u * e2));
            }
            float m_blk = m;
            [[unroll]] for (uint jj = 0u; jj < KB; jj++) {
                s[jj] = blk + jj < n_keys ? p.kq_scale * s[jj] : -3.0e38;
                m_blk = max(m_blk, s[jj]);
            }
            const float corr = exp(m - m_blk);
            float pj[KB];
            float psum = 0.0;
            [[unroll]] for (uint jj = 0u; jj < KB; jj++) {
                pj[jj] = blk + jj < n_keys ? exp(s[jj] - m_blk) : 0.0;
                psum += pj[jj];
            }
            l = l * corr + psum;
            m = m_blk;
            const uint nb = min(KB, n_loop - blk);
            for (uint c2 = 0u; c2 < dv2; c2++) {
                vec2 a = g_acc[c2] * corr;
                uint vb = blk * p.v_row_stride + vh + 2u * c2;
                [[unroll]] for (uint jj = 0u; jj < KB; jj++) {
                    if (jj < nb) a += pj[jj] * load_v(vb);
                    vb += p.v_row_stride;
                }
                g_acc[c2] = a;
            }
        }
        if (live) {
            const float inv = !last_pass ? 1.0 : l > 0.0 ? 1.0 / l : 0.0;
            for (uint c2 = 0u; c2 < dv2; c2++) {
                o[ob + 2u * c2] = g_acc[c2].x * inv;
                o[ob + 2u * c2 + 1u] = g_acc[c2].y * inv;
            }
            if (!last_pass) state[t] = vec2(m, l);
        }
    }
}
