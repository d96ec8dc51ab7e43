// moe_combine.comp - weighted sum of the routed experts' outputs (spec §4.7 step 9):
//   y[t*y_stride + c] = (accumulate ? y[..] : 0) + sum_{j<n_used} w[t][j] * eo[map[t][j]*eo_stride + c]
// The expert outputs come from the grouped matmul (rows grouped by expert); map[t][j] is the row
// holding token t's j-th expert. Rows outside [0, n_rows) contribute nothing (bad input never
// reads out of bounds). Terms are added in order j = 0..n_used-1, like llama.cpp's add chain.
// Bindings: 0 eo (f32 [n_rows][eo_stride]), 1 map (int32 [n_tok][n_used]),
// 2 w (f32 [n_tok][n_used]), 3 y (f32 [n_tok][y_stride], read-write).
// Grid: x over c, y over tokens (grid-stride).
#version 450
#extension GL_GOOGLE_include_directive : require
#include "ops_common.h"

layout(local_size_x = VKM_OPS_WG) in;
layout(std430, set = 0, binding = 0) readonly buffer E { float eo[]; };
layout(std430, set = 0, binding = 1) readonly buffer M { int map[]; };
layout(std430, set = 0, binding = 2) readonly buffer W { float w[]; };
layout(std430, set = 0, binding = 3) buffer Y { float y[]; };
layout(push_constant) uniform Push { vkm_push_moe_combine p; };

void main() {
    const uint c = gl_GlobalInvocationID.x;
    if (c >= p.d) return;
    for (uint t = gl_WorkGroupID.y; t < p.n_tok; t += gl_NumWorkGroups.y) {
        float s = 0.0;
        for (uint j = 0; j < p.n_used; j++) {
            const int r = map[t * p.n_used + j];
            if (r >= 0 && uint(r) < p.n_rows) s += w[t * p.n_used + j] * eo[uint(r) * p.eo_stride + c];
        }
        const uint yi = t * p.y_stride + c;
        y[yi] = p.accumulate != 0 ? y[yi] + s : s;
    }
}
