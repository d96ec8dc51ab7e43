// kv_store.comp - strided copy of f32 rows into a KV cache (or any buffer), converting to f16
// with -DDST_F16 (variant kv_store_f16) or keeping f32 (kv_store_f32). For t < n_tok, h < n_head,
// i < d: dst[(row0 + t)*dst_row_stride + h*dst_head_stride + dst_off + i] =
// src[t*src_tok_stride + h*src_head_stride + src_off + i]. src_head_stride 0 broadcasts one source
// row to every head (k_pe in the naive layout). The f16 variant writes whole 32-bit words, one pair
// of elements per invocation, so d, dst_off and the dst strides must be even (checked on the host).
// Bindings: 0 src (f32), 1 dst (f16 pairs as uint, or f32). Grid: x over head*element(pair),
// y over tokens (grid-stride).
#version 450
#extension GL_GOOGLE_include_directive : require
#include "ops_common.h"

layout(local_size_x = VKM_OPS_WG) in;
layout(std430, set = 0, binding = 0) readonly buffer S { float src[]; };
#ifdef DST_F16
layout(std430, set = 0, binding = 1) writeonly buffer D { uint dst[]; };
#define PER 2u
#else
layout(std430, set = 0, binding = 1) writeonly buffer D { float dst[]; };
#define PER 1u
#endif
layout(push_constant) uniform Push { vkm_push_kv_store p; };

void main() {
    const uint per_head = p.d / PER;
    const uint idx = gl_GlobalInvocationID.x;
    if (idx >= per_head * p.n_head) return;
    const uint h = idx / per_head, i = (idx % per_head) * PER;
    for (uint t = gl_WorkGroupID.y; t < p.n_tok; t += gl_NumWorkGroups.y) {
        const uint s = t * p.src_tok_stride + h * p.src_head_stride + p.src_off + i;
        const uint d = (p.dst_row0 + t) * p.dst_row_stride + h * p.dst_head_stride + p.dst_off + i;
#ifdef DST_F16
        dst[d / 2] = packHalf2x16(vec2(src[s], src[s + 1]));
#else
        dst[d] = src[s];
#endif
    }
}
