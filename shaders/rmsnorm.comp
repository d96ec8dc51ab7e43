// rmsnorm.comp - RMSNorm of rows: y = x / sqrt(mean(x^2) + eps) * w (spec §4.1), one workgroup
// per row (grid-stride over rows). With -DADD_RESIDUAL (variant rmsnorm_add) the row is first
// updated in place, x += res, and the sum is what gets normalised (the residual add of §4.2).
// The sum of squares is a float tree reduction (llama.cpp sums in double; see tests for the
// tolerance). Bindings: 0 x (f32, read, or read-write with ADD_RESIDUAL), 1 w (f32 [d]),
// 2 y (f32), 3 res (f32, ADD_RESIDUAL only).
// Spec 0: invocations per workgroup (at most VKM_OPS_RED_WG); spec 1 SG = 1 when that is one
// whole subgroup (CPU devices): the sum is a subgroupAdd, with no shared memory and no barrier
// (on llvmpipe every barrier switches between the SIMD chunks of the workgroup).
// With -DQ8X_OUT (variants rmsnorm_q8, rmsnorm_add_q8: decode steps on devices whose GEMVs take
// 8-bit activations) y is also written in matmul_common.h's Q8X form (q8x.glsl) to the binding
// after the others, row r at 16-byte unit 3 r d / 32 (d a multiple of 32), so the matmuls that
// read y need no quantization dispatch of their own. Its blocks are split over the workgroup a
// block per invocation, so X is coherent there and the row is complete before they are read; a
// second barrier keeps y (which may be x) from being written before they are.
#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_KHR_shader_subgroup_arithmetic : require
#extension GL_EXT_control_flow_attributes : require
#include "ops_common.h"

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint SG = 0;
#ifdef Q8X_OUT
layout(std430, set = 0, binding = 0) coherent buffer X { float x[]; };
#else
layout(std430, set = 0, binding = 0) buffer X { float x[]; };
#endif
layout(std430, set = 0, binding = 1) readonly buffer W { float w[]; };
layout(std430, set = 0, binding = 2) writeonly buffer Y { float y[]; };
#ifdef ADD_RESIDUAL
layout(std430, set = 0, binding = 3) readonly buffer R { float res[]; };
#define Q8X_BINDING 4
#else
#define Q8X_BINDING 3
#endif
#ifdef Q8X_OUT
layout(std430, set = 0, binding = Q8X_BINDING) writeonly buffer Q { uvec4 qdata[]; };
layout(std430, set = 0, binding = Q8X_BINDING) writeonly buffer H { vec4 hdata[]; };
#define Q8X_NORM 1
#define NQ_X(i) x[i]
#define NQ_W(i) w[i]
#include "q8x.glsl"
#endif
layout(push_constant) uniform Push { vkm_push_rmsnorm p; };

#include "rms.glsl"

void main() {
    const uint tid = gl_LocalInvocationID.x;
    for (uint r = gl_WorkGroupID.x; r < p.n_rows; r += gl_NumWorkGroups.x) {
        const uint xb = r * p.x_stride;
        float sum = 0.0;
        for (uint i = tid; i < p.d; i += gl_WorkGroupSize.x) {
#ifdef ADD_RESIDUAL
            float v = x[xb + i] + res[r * p.res_stride + i];
            x[xb + i] = v;
#else
            float v = x[xb + i];
#endif
            sum += v * v;
        }
        const float total = rms_total(sum);
        const float scale = 1.0 / sqrt(total / float(p.d) + p.eps);
#ifdef Q8X_OUT
        memoryBarrierBuffer();
        barrier();
        norm_q8_row(xb, p.d, scale, r * 3u * (p.d / 32u));
        barrier();
#endif
        const uint yb = r * p.y_stride;
        for (uint i = tid; i < p.d; i += gl_WorkGroupSize.x) y[yb + i] = (x[xb + i] * scale) * w[i];
    }
}
