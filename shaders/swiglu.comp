// swiglu.comp - y = silu(g) * u with silu(a) = a / (1 + e^-a) (spec §4.1), over n_rows rows of d
// values with independent strides and offsets, so gate and up may be two halves of one fused
// matmul output. y may be the same buffer as g or u (each element is read before it is written
// by the same invocation). Bindings: 0 g (f32), 1 u (f32), 2 y (f32).
// Grid: x over elements of a row, y over rows (grid-stride).
#version 450
#extension GL_GOOGLE_include_directive : require
#include "ops_common.h"

layout(local_size_x = VKM_OPS_WG) in;
layout(std430, set = 0, binding = 0) buffer G { float g[]; };
layout(std430, set = 0, binding = 1) buffer U { float u[]; };
layout(std430, set = 0, binding = 2) buffer Y { float y[]; };
layout(push_constant) uniform Push { vkm_push_swiglu p; };

void main() {
    const uint i = gl_GlobalInvocationID.x;
    if (i >= p.d) return;
    for (uint r = gl_WorkGroupID.y; r < p.n_rows; r += gl_NumWorkGroups.y) {
        const float a = g[p.g_off + r * p.g_stride + i];
        const float b = u[p.u_off + r * p.u_stride + i];
        y[r * p.y_stride + i] = a / (1.0 + exp(-a)) * b;
    }
}
