// moe_combine.comp - weighted sum of the routed experts' outputs (spec §4.7 step 9):
//   y[t*y_stride + c] = (accumulate ? y[..] : 0) + sum_{j<n_used} w[t][j] * eo[map[t][j]*eo_stride + c]
// The expert outputs come from the grouped matmul (rows grouped by expert); map[t][j] is the row
// holding token t's j-th expert. Rows outside [0, n_rows) contribute nothing (bad input never
// reads out of bounds). Terms are added in order j = 0..n_used-1, like llama.cpp's add chain.
// Bindings: 0 eo (f32 [n_rows][eo_stride]), 1 map (int32 [n_tok][n_used]),
// 2 w (f32 [n_tok][n_used]), 3 y (f32 [n_tok][y_stride], read-write).
// Grid: x over c, y over tokens (grid-stride).
//
// With -DNORM (variant moe_combine_norm) the sum goes on into the residual add and the RMSNorm
// that follow it (what rmsnorm.comp's rmsnorm_add does next, with the same arithmetic and order):
//   v = (accumulate ? y[t][c] : 0) + sum (y itself is only read);  x[t][c] += v;
//   a[t][c] = x[t][c] / sqrt(mean(x[t]^2) + eps) * nw[c]
// Extra bindings: 4 x (f32 [n_tok][d], read-write), 5 nw (f32 [d]), 6 a (f32 [n_tok][d]). One
// workgroup per token (grid-stride); spec 0: invocations per workgroup (at most VKM_OPS_RED_WG),
// spec 1 SG = 1 when that is one whole subgroup (subgroupAdd, no barriers), as in rmsnorm.comp.
// With -DQ8X_OUT as well (variant moe_combine_norm_q8) a is also written in the Q8X form, binding
// 7, as rmsnorm.comp's rmsnorm_q8 writes y (the next layer's first matmuls read it).
#version 450
#extension GL_GOOGLE_include_directive : require
#ifdef NORM
#extension GL_KHR_shader_subgroup_arithmetic : require
#extension GL_EXT_control_flow_attributes : require
#endif
#include "ops_common.h"

#ifdef NORM
layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint SG = 0;
// spec 2 NU: 0, or p.n_used when that is at most VKM_ROUTER_MAX_USED (every token's rows and
// weights are then loaded once, not once per column: llvmpipe loads storage buffers lane by lane)
layout(constant_id = 2) const uint NU = 0;
#else
layout(local_size_x = VKM_OPS_WG) in;
#endif
layout(std430, set = 0, binding = 0) readonly buffer E { float eo[]; };
layout(std430, set = 0, binding = 1) readonly buffer M { int map[]; };
layout(std430, set = 0, binding = 2) readonly buffer W { float w[]; };
#ifdef NORM
layout(std430, set = 0, binding = 3) readonly buffer Y { float y[]; };
#ifdef Q8X_OUT
layout(std430, set = 0, binding = 4) coherent buffer X { float x[]; };
#else
layout(std430, set = 0, binding = 4) buffer X { float x[]; };
#endif
layout(std430, set = 0, binding = 5) readonly buffer NW { float nw[]; };
layout(std430, set = 0, binding = 6) writeonly buffer A { float a[]; };
#ifdef Q8X_OUT
layout(std430, set = 0, binding = 7) writeonly buffer Q { uvec4 qdata[]; };
layout(std430, set = 0, binding = 7) writeonly buffer H { vec4 hdata[]; };
#define Q8X_NORM 1
#define NQ_X(i) x[i]
#define NQ_W(i) nw[i]
#include "q8x.glsl"
#endif
#else
layout(std430, set = 0, binding = 3) buffer Y { float y[]; };
#endif
layout(push_constant) uniform Push { vkm_push_moe_combine p; };

// the combined value of token t, column c
float combined(uint t, uint c) {
    float s = 0.0;
    for (uint j = 0; j < p.n_used; j++) {
        const int r = map[t * p.n_used + j];
        if (r >= 0 && uint(r) < p.n_rows) s += w[t * p.n_used + j] * eo[uint(r) * p.eo_stride + c];
    }
    return p.accumulate != 0 ? y[t * p.y_stride + c] + s : s;
}

#ifdef NORM
#include "rms.glsl"

void main() {
    const uint tid = gl_LocalInvocationID.x, nt = gl_WorkGroupSize.x;
    for (uint t = gl_WorkGroupID.x; t < p.n_tok; t += gl_NumWorkGroups.x) {
        const uint xb = t * p.d;
        int rr[VKM_ROUTER_MAX_USED]; // with NU: token t's rows (-1: none) and weights
        float ww[VKM_ROUTER_MAX_USED];
        if (NU != 0u)
            [[unroll]] for (uint j = 0u; j < NU; j++) {
                const int r = map[t * NU + j];
                rr[j] = r >= 0 && uint(r) < p.n_rows ? r : -1;
                ww[j] = w[t * NU + j];
            }
        float sum = 0.0;
        for (uint c = tid; c < p.d; c += nt) {
            float cv;
            if (NU != 0u) { // combined(t, c), the same terms in the same order
                float s = 0.0;
                [[unroll]] for (uint j = 0u; j < NU; j++)
                    if (rr[j] >= 0) s += ww[j] * eo[uint(rr[j]) * p.eo_stride + c];
                cv = p.accumulate != 0 ? y[t * p.y_stride + c] + s : s;
            } else {
                cv = combined(t, c);
            }
            const float v = x[xb + c] + cv;
            x[xb + c] = v;
            sum += v * v;
        }
        const float total = rms_total(sum);
        const float scale = 1.0 / sqrt(total / float(p.d) + p.eps);
#ifdef Q8X_OUT
        memoryBarrierBuffer();
        barrier();
        norm_q8_row(xb, p.d, scale, t * 3u * (p.d / 32u));
#endif
        for (uint c = tid; c < p.d; c += nt) a[xb + c] = (x[xb + c] * scale) * nw[c];
    }
}
#else
void main() {
    const uint c = gl_GlobalInvocationID.x;
    if (c >= p.d) return;
    for (uint t = gl_WorkGroupID.y; t < p.n_tok; t += gl_NumWorkGroups.y)
        y[t * p.y_stride + c] = combined(t, c);
}
#endif
