// mla_attn_lane.comp - the attention of mla_attn.comp (same bindings 0-4, push constants and
// result, see ops_common.h vkm_push_attn) in the layout for CPU devices such as lavapipe: every
// invocation owns QL queries (spec 1: 1, 2 or 4 consecutive ones) of one head whole, so there is
// no shared memory, no barrier and no reduction across invocations (a CPU driver runs a workgroup
// as SIMD chunks of one subgroup, a barrier is a coroutine switch and every shared-memory access a
// loop over the lanes), and the QL queries share every cache load.
//
// Invocation t takes query group g = t / n_head and head h = t % n_head: the lanes of a subgroup
// are consecutive heads of one group (or of two neighbouring ones), so with MLA's shared K/V rows
// (k_head_stride = v_head_stride = 0) the cache addresses of a key are the same on every lane.
// The key loop runs to the subgroup's largest key count (uniform control flow, uniform key index),
// keys past a query's own causal limit are masked, and the driver turns each cache load into one
// scalar load broadcast to the lanes. The queries live in a private array, the output
// accumulators too; keys are taken in blocks of KB: scores first, then one online-softmax rescale
// per block (running max m, running sum l), then the block's values. Same math as the reference
// in float (exp of score - running max).
// Passes: lavapipe ends an invocation after 65535 loop iterations in all, so the host splits the
// keys into passes [k_begin, k_end) of VKM_ATTN_LANE_KEYS; between passes the unnormalised output
// stays in o and (running max, running sum) in `state`, and the last pass normalises.
// Chunked loads (spec 2 CH = 1; the host sets it when the heads share the cache rows, every
// row and the two dimensions are whole 16-byte chunks): llvmpipe loads a value at the same
// address on every lane once per lane, so instead lane l loads chunk l of each 128-byte span of
// a key (value) row and the subgroup passes the chunks around with shuffles by constant lanes.
// Needs subgroups of >= 8 invocations, all active (the loops here are uniform).
// Grid: x = pair blocks of WG (grid-stride over x * y). Limits as mla_attn.comp.
#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_KHR_shader_subgroup_arithmetic : require
#extension GL_KHR_shader_subgroup_shuffle : require
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
layout(std430, set = 0, binding = 2) readonly buffer KC4 { uvec4 kc4[]; }; // = kc
layout(std430, set = 0, binding = 3) readonly buffer VC4 { uvec4 vc4[]; }; // = vc
#ifdef CACHE_F16
#define PPL 4u // (value) pairs per 16-byte chunk
vec2 pair_of(uvec4 w, uint m) { return unpackHalf2x16(w[m]); }
uvec4 k_chunk(uint e) { return kc4[e >> 3]; } // the chunk starting at element e
uvec4 v_chunk(uint e) { return vc4[e >> 3]; }
#else
#define PPL 2u
vec2 pair_of(uvec4 w, uint m) { return uintBitsToFloat(uvec2(w[2u * m], w[2u * m + 1u])); }
uvec4 k_chunk(uint e) { return kc4[e >> 2]; }
uvec4 v_chunk(uint e) { return vc4[e >> 2]; }
#endif
#define CW (8u * PPL) // pairs per span of 8 chunks
layout(std430, set = 0, binding = 4) buffer O { float o[]; };
layout(std430, set = 0, binding = 5) buffer S { vec2 state[]; }; // [query][head] (max, sum)
#include "attn_lane.h" // the push block: p (vkm_push_attn), k_begin, k_end

#define KB 16u // keys per online-softmax block (16: 1.3x 8 with chunked loads)
#define MAX_QL 4u // queries per invocation, at most
// queries per invocation (1, 2 or 4): the queries of one head share every cache load
layout(constant_id = 1) const uint QL = 1;
layout(constant_id = 2) const uint CH = 0; // chunked cache loads (see the top)

vec2 g_q[MAX_QL][VKM_ATTN_MAX_DK / 2];   // this lane's queries, in pairs
vec2 g_acc[MAX_QL][VKM_ATTN_MAX_DV / 2]; // their output accumulators, in pairs

void main() {
    const uint n_groups = (p.n_q + QL - 1u) / QL, n_pairs = n_groups * p.n_head;
    const uint stride = gl_NumWorkGroups.x * gl_NumWorkGroups.y * gl_WorkGroupSize.x;
    const uint first = (gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x) *
                           gl_WorkGroupSize.x + gl_LocalInvocationID.x;
    const uint dk2 = (p.da + p.db) / 2, da2 = p.da / 2, dv2 = p.dv / 2;
    const bool first_pass = k_begin == 0u, last_pass = k_end >= p.n_kv;
    // every lane runs the same number of rounds, so the subgroup stays converged
    const uint rounds = (n_pairs + stride - 1u - (first - gl_LocalInvocationID.x)) / stride;
    for (uint r = 0u; r < rounds; r++) {
        const uint t = first + r * stride;
        const uint g = t < n_pairs ? t / p.n_head : 0u, h = t < n_pairs ? t % p.n_head : 0u;
        const uint kh = h * p.k_head_stride, vh = p.v_off + h * p.v_head_stride;
        bool live[MAX_QL];
        uint ob[MAX_QL], n_keys[MAX_QL], n_max = 0u;
        float m[MAX_QL], l[MAX_QL];
        [[unroll]] for (uint u = 0u; u < QL; u++) {
            const uint i = g * QL + u;
            live[u] = t < n_pairs && i < p.n_q;
            const uint qa_b = p.qa_off + i * p.qa_tok_stride + h * p.qa_head_stride;
            const uint qb_b = p.qb_off + i * p.qb_tok_stride + h * p.qb_head_stride;
            for (uint e2 = 0u; e2 < da2; e2++)
                g_q[u][e2] = live[u] ? vec2(qa[qa_b + 2u * e2], qa[qa_b + 2u * e2 + 1u]) : vec2(0.0);
            for (uint e2 = da2; e2 < dk2; e2++) {
                const uint e = 2u * e2 - p.da;
                g_q[u][e2] = live[u] ? vec2(qb[qb_b + e], qb[qb_b + e + 1u]) : vec2(0.0);
            }
            ob[u] = p.o_off + i * p.o_tok_stride + h * p.o_head_stride;
            m[u] = -3.0e38;
            l[u] = 0.0;
            if (first_pass) {
                for (uint c2 = 0u; c2 < dv2; c2++) g_acc[u][c2] = vec2(0.0);
            } else { // the unnormalised output and (m, l) of the earlier passes
                for (uint c2 = 0u; c2 < dv2; c2++)
                    g_acc[u][c2] =
                        live[u] ? vec2(o[ob[u] + 2u * c2], o[ob[u] + 2u * c2 + 1u]) : vec2(0.0);
                const vec2 ml = live[u] ? state[i * p.n_head + h] : vec2(-3.0e38, 0.0);
                m[u] = ml.x;
                l[u] = ml.y;
            }
            n_keys[u] = live[u] ? min(min(p.q_pos0 + i + 1u, p.n_kv), k_end) : 0u;
            n_max = max(n_max, n_keys[u]);
        }

        const uint n_loop = subgroupMax(n_max);
        for (uint blk = k_begin; blk < n_loop; blk += KB) {
            float s[MAX_QL][KB];
            uint kb[KB];
            [[unroll]] for (uint jj = 0u; jj < KB; jj++) {
                [[unroll]] for (uint u = 0u; u < QL; u++) s[u][jj] = 0.0;
                kb[jj] = min(blk + jj, n_loop - 1u) * p.k_row_stride + kh; // in range on every lane
            }
            if (CH != 0u) {
                const uint lq = gl_SubgroupInvocationID & 7u;
                for (uint c = 0u; c < dk2; c += CW) {
                    uvec4 wk[KB];
                    [[unroll]] for (uint jj = 0u; jj < KB; jj++)
                        wk[jj] = k_chunk(kb[jj] + 2u * (c + PPL * lq));
                    [[unroll]] for (uint L = 0u; L < 8u; L++) {
                        uvec4 kw[KB];
                        [[unroll]] for (uint jj = 0u; jj < KB; jj++)
                            kw[jj] = subgroupShuffle(wk[jj], L);
                        [[unroll]] for (uint m = 0u; m < PPL; m++) {
                            vec2 q[MAX_QL];
                            [[unroll]] for (uint u = 0u; u < QL; u++)
                                q[u] = g_q[u][c + PPL * L + m];
                            [[unroll]] for (uint jj = 0u; jj < KB; jj++) {
                                const vec2 k = pair_of(kw[jj], m);
                                [[unroll]] for (uint u = 0u; u < QL; u++) s[u][jj] += dot(q[u], k);
                            }
                        }
                    }
                }
            } else {
                for (uint e2 = 0u; e2 < dk2; e2++) {
                    vec2 q[MAX_QL];
                    [[unroll]] for (uint u = 0u; u < QL; u++) q[u] = g_q[u][e2];
                    [[unroll]] for (uint jj = 0u; jj < KB; jj++) {
                        const vec2 k = load_k(kb[jj] + 2u * e2);
                        [[unroll]] for (uint u = 0u; u < QL; u++) s[u][jj] += dot(q[u], k);
                    }
                }
            }
            float pj[MAX_QL][KB], corr[MAX_QL];
            [[unroll]] for (uint u = 0u; u < QL; u++) {
                float m_blk = m[u];
                [[unroll]] for (uint jj = 0u; jj < KB; jj++) {
                    s[u][jj] = blk + jj < n_keys[u] ? p.kq_scale * s[u][jj] : -3.0e38;
                    m_blk = max(m_blk, s[u][jj]);
                }
                corr[u] = exp(m[u] - m_blk);
                float psum = 0.0;
                [[unroll]] for (uint jj = 0u; jj < KB; jj++) {
                    pj[u][jj] = blk + jj < n_keys[u] ? exp(s[u][jj] - m_blk) : 0.0;
                    psum += pj[u][jj];
                }
                l[u] = l[u] * corr[u] + psum;
                m[u] = m_blk;
            }
            const uint nb = min(KB, n_loop - blk);
            if (CH != 0u) { // rows past n_loop are clamped to the last one: their pj are 0
                const uint lq = gl_SubgroupInvocationID & 7u;
                for (uint c = 0u; c < dv2; c += CW) {
                    uvec4 wv[KB];
                    [[unroll]] for (uint jj = 0u; jj < KB; jj++)
                        wv[jj] = v_chunk(min(blk + jj, n_loop - 1u) * p.v_row_stride + vh +
                                         2u * (c + PPL * lq));
                    [[unroll]] for (uint L = 0u; L < 8u; L++) {
                        uvec4 vw[KB];
                        [[unroll]] for (uint jj = 0u; jj < KB; jj++)
                            vw[jj] = subgroupShuffle(wv[jj], L);
                        [[unroll]] for (uint m = 0u; m < PPL; m++) {
                            const uint c2 = c + PPL * L + m;
                            vec2 a[MAX_QL];
                            [[unroll]] for (uint u = 0u; u < QL; u++) a[u] = g_acc[u][c2] * corr[u];
                            [[unroll]] for (uint jj = 0u; jj < KB; jj++) {
                                const vec2 v = pair_of(vw[jj], m);
                                [[unroll]] for (uint u = 0u; u < QL; u++) a[u] += pj[u][jj] * v;
                            }
                            [[unroll]] for (uint u = 0u; u < QL; u++) g_acc[u][c2] = a[u];
                        }
                    }
                }
            } else
            for (uint c2 = 0u; c2 < dv2; c2++) {
                vec2 a[MAX_QL];
                [[unroll]] for (uint u = 0u; u < QL; u++) a[u] = g_acc[u][c2] * corr[u];
                uint vb = blk * p.v_row_stride + vh + 2u * c2;
                [[unroll]] for (uint jj = 0u; jj < KB; jj++) {
                    if (jj < nb) {
                        const vec2 v = load_v(vb);
                        [[unroll]] for (uint u = 0u; u < QL; u++) a[u] += pj[u][jj] * v;
                    }
                    vb += p.v_row_stride;
                }
                [[unroll]] for (uint u = 0u; u < QL; u++) g_acc[u][c2] = a[u];
            }
        }
        [[unroll]] for (uint u = 0u; u < QL; u++) {
            if (!live[u]) continue;
            const float inv = !last_pass ? 1.0 : l[u] > 0.0 ? 1.0 / l[u] : 0.0;
            for (uint c2 = 0u; c2 < dv2; c2++) {
                o[ob[u] + 2u * c2] = g_acc[u][c2].x * inv;
                o[ob[u] + 2u * c2 + 1u] = g_acc[u][c2].y * inv;
            }
            if (!last_pass) state[(g * QL + u) * p.n_head + h] = vec2(m[u], l[u]);
        }
    }
}
