// rmsnorm.comp - RMSNorm of rows: y = x / sqrt(mean(x^2) + eps) * w (spec §4.1), one workgroup
// per row (grid-stride over rows). With -DADD_RESIDUAL (variant rmsnorm_add) the row is first
// updated in place, x += res, and the sum is what gets normalised (the residual add of §4.2).
// The sum of squares is a float tree reduction (llama.cpp sums in double; see tests for the
// tolerance). Bindings: 0 x (f32, read, or read-write with ADD_RESIDUAL), 1 w (f32 [d]),
// 2 y (f32), 3 res (f32, ADD_RESIDUAL only).
// Spec 0: invocations per workgroup (at most VKM_OPS_RED_WG); spec 1 SG = 1 when that is one
// whole subgroup (CPU devices): the sum is a subgroupAdd, with no shared memory and no barrier
// (on llvmpipe every barrier switches between the SIMD chunks of the workgroup).
#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_KHR_shader_subgroup_arithmetic : require
#include "ops_common.h"

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint SG = 0;
layout(std430, set = 0, binding = 0) buffer X { float x[]; };
layout(std430, set = 0, binding = 1) readonly buffer W { float w[]; };
layout(std430, set = 0, binding = 2) writeonly buffer Y { float y[]; };
#ifdef ADD_RESIDUAL
layout(std430, set = 0, binding = 3) readonly buffer R { float res[]; };
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
        const uint yb = r * p.y_stride;
        for (uint i = tid; i < p.d; i += gl_WorkGroupSize.x) y[yb + i] = (x[xb + i] * scale) * w[i];
    }
}
