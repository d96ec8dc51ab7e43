// rope.comp - RoPE, NORMAL mode (consecutive pairs), with YaRN, in place (spec §4.5).
// For token t (position pos[t]), head h and pair k < n_rot/2 the pair at
// x[t*tok_stride + h*head_stride + off + 2k .. +1] is rotated by θ_k and scaled by mscale.
// The angle is rope.glsl's (shared with mla_kv_rope.comp).
// Bindings: 0 x (f32, read-write), 1 pos (int32 [n_tok]). Grid: x over head*pair, y over tokens.
#version 450
#extension GL_GOOGLE_include_directive : require
#include "ops_common.h"

layout(local_size_x = VKM_OPS_WG) in;
layout(std430, set = 0, binding = 0) buffer X { float x[]; };
layout(std430, set = 0, binding = 1) readonly buffer P { int pos[]; };
layout(push_constant) uniform Push { vkm_push_rope p; };

#include "rope.glsl"

void main() {
    const uint half_rot = p.n_rot / 2;
    const uint idx = gl_GlobalInvocationID.x;
    if (idx >= half_rot * p.n_head) return;
    const uint h = idx / half_rot, k = idx % half_rot;
    for (uint t = gl_WorkGroupID.y; t < p.n_tok; t += gl_NumWorkGroups.y) {
        const vec2 cs = rope_cs(pos[t], k);
        const float c = cs.x, s = cs.y;
        const uint b = t * p.tok_stride + h * p.head_stride + p.off + 2 * k;
        const float x0 = x[b], x1 = x[b + 1];
        x[b] = x0 * c - x1 * s;
        x[b + 1] = x0 * s + x1 * c;
    }
}
