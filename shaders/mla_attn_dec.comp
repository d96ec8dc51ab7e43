// mla_attn_dec.comp - absorbed MLA attention of ONE query (decode) on CPU devices such as lavapipe,
// in three passes over the latent cache that every head shares (push constants and the exact
// formulas: ops_common.h vkm_push_attn_dec; the result is mla_attn.comp's):
//   PASS 0 (score):   lanes over keys, KL keys per lane: each lane converts its keys' cache rows
//                     once and scores them against 8 heads at a time; each fetch of the queries
//                     serves the KL keys;
//   PASS 1 (softmax): one subgroup per 4 heads, lanes over keys, turns the scores into
//                     probabilities in place (vec4 accesses: 4 heads per key);
//   PASS 2 (value):   lanes over the value dimension (8 values each, one f16 texel), 8 heads per
//                     workgroup; a key's 8 probabilities are two texel fetches.
// Why: mla_attn_lane.comp gives each lane a head, so every lane converts the same f16 cache
// values and a one-query dispatch is one workgroup on one core. Here the work of a key is done
// once and the passes spread over the cores (keys, head blocks, value blocks).
// Loads: llvmpipe (Mesa 22.3) turns every storage-buffer load into a loop over the lanes, even
// when all lanes read the same address, but fetches a texel with vector loads: the cache, the
// queries and the probabilities are read as uniform texel buffers of 16-byte texels (the cache
// as R32G32B32A32_UINT: f16 pairs with CACHE_F16, else f32 bit patterns; the others as floats).
// Workgroups are one subgroup (spec 0 = the subgroup size): no barrier, no shared memory.
// Loop trip counts stay far below lavapipe's 65535 iterations per invocation for
// n_kv <= VKM_ATTN_DEC_MAX_KEYS (the host checks).
#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_KHR_shader_subgroup_arithmetic : require
#extension GL_EXT_control_flow_attributes : require
#include "ops_common.h"

layout(local_size_x_id = 0) in;
layout(push_constant) uniform Push { vkm_push_attn_dec p; };

#ifdef CACHE_F16
#define EPT 8u // cache values per texel
#else
#define EPT 4u
#endif

#if PASS == 0
layout(set = 0, binding = 2) uniform usamplerBuffer kc;
#elif PASS == 2
layout(set = 0, binding = 1) uniform usamplerBuffer kc;
#endif
#if PASS != 1

// the 8 cache values from element e of the texel window (e a multiple of 8)
void load8(uint e, out float v[8]) {
    const uint t = p.k_tex0 + e / EPT;
#ifdef CACHE_F16
    const uvec4 w = texelFetch(kc, int(t));
    [[unroll]] for (uint i = 0u; i < 4u; i++) {
        const vec2 h = unpackHalf2x16(w[i]);
        v[2u * i] = h.x;
        v[2u * i + 1u] = h.y;
    }
#else
    const uvec4 a = texelFetch(kc, int(t)), b = texelFetch(kc, int(t + 1u));
    [[unroll]] for (uint i = 0u; i < 4u; i++) {
        v[i] = uintBitsToFloat(a[i]);
        v[4u + i] = uintBitsToFloat(b[i]);
    }
#endif
}
#endif

#if PASS == 0
#define KL 4u // keys per lane: the query fetches serve KL keys
layout(set = 0, binding = 0) uniform samplerBuffer qat; // q_abs in 16-byte texels
layout(set = 0, binding = 1) uniform samplerBuffer qbt; // q (q_pe inside) in 16-byte texels
layout(std430, set = 0, binding = 3) writeonly buffer S { vec4 s4[]; };

// values d .. d+7 of the KL keys' rows
void keys8(const uint row[KL], uint d, out vec4 k[KL][2]) {
    [[unroll]] for (uint i = 0u; i < KL; i++) {
        float v[8];
        load8(row[i] + d, v);
        k[i][0] = vec4(v[0], v[1], v[2], v[3]);
        k[i][1] = vec4(v[4], v[5], v[6], v[7]);
    }
}

void main() {
    const uint j0 = gl_GlobalInvocationID.x * KL; // this lane's keys j0 .. j0 + KL - 1
    uint row[KL];
    [[unroll]] for (uint i = 0u; i < KL; i++) row[i] = min(j0 + i, p.n_kv - 1u) * p.row_elems;
    for (uint h0 = 0u; h0 < p.n_head; h0 += 8u) {
        float acc[8][KL];
        uint ab[8], bb[8];
        [[unroll]] for (uint u = 0u; u < 8u; u++) {
            const uint h = min(h0 + u, p.n_head - 1u); // past the last head: a copy, never read
            [[unroll]] for (uint i = 0u; i < KL; i++) acc[u][i] = 0.0;
            ab[u] = (p.qa_off + h * p.qa_head_stride) / 4u;
            bb[u] = (p.qb_off + h * p.qb_head_stride) / 4u;
        }
        // the q_abs part of the keys, then the q_pe part (two loops: llvmpipe runs both sides of
        // any branch)
        for (uint d = 0u; d < p.da; d += 8u) {
            vec4 k[KL][2];
            keys8(row, d, k);
            [[unroll]] for (uint u = 0u; u < 8u; u++) {
                const vec4 q0 = texelFetch(qat, int(ab[u] + d / 4u));
                const vec4 q1 = texelFetch(qat, int(ab[u] + d / 4u + 1u));
                [[unroll]] for (uint i = 0u; i < KL; i++)
                    acc[u][i] += dot(q0, k[i][0]) + dot(q1, k[i][1]);
            }
        }
        for (uint d = 0u; d < p.db; d += 8u) {
            vec4 k[KL][2];
            keys8(row, p.da + d, k);
            [[unroll]] for (uint u = 0u; u < 8u; u++) {
                const vec4 q0 = texelFetch(qbt, int(bb[u] + d / 4u));
                const vec4 q1 = texelFetch(qbt, int(bb[u] + d / 4u + 1u));
                [[unroll]] for (uint i = 0u; i < KL; i++)
                    acc[u][i] += dot(q0, k[i][0]) + dot(q1, k[i][1]);
            }
        }
        [[unroll]] for (uint i = 0u; i < KL; i++)
            if (j0 + i < p.n_kv) {
                const uint o4 = ((j0 + i) * p.s_stride + h0) / 4u;
                s4[o4] = p.kq_scale * vec4(acc[0][i], acc[1][i], acc[2][i], acc[3][i]);
                s4[o4 + 1u] = p.kq_scale * vec4(acc[4][i], acc[5][i], acc[6][i], acc[7][i]);
            }
    }
}
#elif PASS == 1
layout(std430, set = 0, binding = 0) buffer S { vec4 s4[]; };

void main() {
    const uint base = gl_WorkGroupID.x, st = p.s_stride / 4u; // heads 4x..4x+3
    const uint lane = gl_LocalInvocationID.x, step = gl_WorkGroupSize.x;
    vec4 m = vec4(-3.0e38);
    for (uint j = lane; j < p.n_kv; j += step) m = max(m, s4[base + j * st]);
    m = subgroupMax(m);
    vec4 l = vec4(0.0);
    for (uint j = lane; j < p.n_kv; j += step) {
        const vec4 e = exp(s4[base + j * st] - m);
        s4[base + j * st] = e;
        l += e;
    }
    const vec4 inv = 1.0 / subgroupAdd(l); // the largest term is exp(0) = 1: l >= 1
    for (uint j = lane; j < p.n_kv; j += step) s4[base + j * st] *= inv;
}
#else
layout(set = 0, binding = 0) uniform samplerBuffer st; // the probabilities in 16-byte texels
layout(std430, set = 0, binding = 2) writeonly buffer O { vec4 o4[]; };

void main() {
    const uint c0 = gl_GlobalInvocationID.x * 8u; // this lane's 8 values of every head
    const uint h0 = gl_WorkGroupID.y * 8u;
    const uint cr = min(c0, p.dv - 8u); // loads in range on every lane
    float acc[8][8];
    [[unroll]] for (uint u = 0u; u < 8u; u++)
        [[unroll]] for (uint e = 0u; e < 8u; e++) acc[u][e] = 0.0;
    uint sb = h0, vb = cr;
    for (uint j = 0u; j < p.n_kv; j++) {
        float v[8];
        load8(vb, v);
        const vec4 w0 = texelFetch(st, int(sb / 4u)), w1 = texelFetch(st, int(sb / 4u + 1u));
        [[unroll]] for (uint u = 0u; u < 8u; u++) {
            const float w = u < 4u ? w0[u] : w1[u - 4u];
            [[unroll]] for (uint e = 0u; e < 8u; e++) acc[u][e] += w * v[e];
        }
        sb += p.s_stride;
        vb += p.row_elems;
    }
    if (c0 < p.dv)
        [[unroll]] for (uint u = 0u; u < 8u; u++) {
            if (h0 + u >= p.n_head) break;
            const uint o = (p.o_off + (h0 + u) * p.o_head_stride + c0) / 4u;
            o4[o] = vec4(acc[u][0], acc[u][1], acc[u][2], acc[u][3]);
            o4[o + 1u] = vec4(acc[u][4], acc[u][5], acc[u][6], acc[u][7]);
        }
}
#endif
