// quant_q8.comp - the 8-bit activations of gemv's integer-dot variants: each invocation turns 32
// consecutive values of an X row into one block of matmul_common.h's Q8X format (32 int8, then
// (d, d * sum of the first 16, d, d * sum of the last 16)), d = max |x| / 127, q = x / d rounded to
// nearest even (q8x.glsl). One block per invocation, blocks of a row consecutive, rows q_stride
// apart; the grid covers n * k / 32 invocations (VKM_Q8X_WG a workgroup, rows of gx workgroups).
// Reference: core/ref_matmul.c vkm_ref_quant_q8x.
#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require

#define VKM_QUANT_SHADER 1 // the quant push block of matmul_common.h
#include "matmul_common.h"

layout(local_size_x = VKM_Q8X_WG) in;

layout(std430, set = 0, binding = 0) readonly buffer X { float xdata[]; };
layout(std430, set = 0, binding = 1) writeonly buffer Q { uvec4 qdata[]; };
layout(std430, set = 0, binding = 1) writeonly buffer H { vec4 hdata[]; };

#include "q8x.glsl"

void main() {
    const uint kb = p.k / 32u;
    const uint id = gl_GlobalInvocationID.x + gl_WorkGroupID.y * p.gx * VKM_Q8X_WG;
    if (id >= kb * p.n) return;
    const uint r = id / kb, b = id - r * kb;
    const uint xb = p.x_off + r * p.x_stride + 32u * b;
    float v[32];
    [[unroll]] for (uint i = 0u; i < 32u; i++) v[i] = xdata[xb + i];
    q8x_store(v, r * p.q_stride + 3u * b);
}
