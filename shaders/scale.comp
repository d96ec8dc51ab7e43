// scale.comp - y[i] = s * x[i] for i < n. y may be the same buffer as x.
// Bindings: 0 x (f32), 1 y (f32). Grid: x (grid-stride over n).
#version 450
#extension GL_GOOGLE_include_directive : require
#include "ops_common.h"

layout(local_size_x = VKM_OPS_WG) in;
layout(std430, set = 0, binding = 0) buffer X { float x[]; };
layout(std430, set = 0, binding = 1) buffer Y { float y[]; };
layout(push_constant) uniform Push { vkm_push_eltwise p; };

void main() {
    const uint stride = gl_NumWorkGroups.x * VKM_OPS_WG;
    for (uint i = gl_GlobalInvocationID.x; i < p.n; i += stride) y[i] = p.s * x[i];
}
