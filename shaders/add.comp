// add.comp - y[i] = a[i] + b[i] for i < n (residual adds). y may be the same buffer as a or b.
// Bindings: 0 a (f32), 1 b (f32), 2 y (f32). Grid: x (grid-stride over n).
#version 450
#extension GL_GOOGLE_include_directive : require
#include "ops_common.h"

layout(local_size_x = VKM_OPS_WG) in;
layout(std430, set = 0, binding = 0) buffer A { float a[]; };
layout(std430, set = 0, binding = 1) buffer B { float b[]; };
layout(std430, set = 0, binding = 2) buffer Y { float y[]; };
layout(push_constant) uniform Push { vkm_push_eltwise p; };

void main() {
    const uint stride = gl_NumWorkGroups.x * VKM_OPS_WG;
    for (uint i = gl_GlobalInvocationID.x; i < p.n; i += stride) y[i] = a[i] + b[i];
}
