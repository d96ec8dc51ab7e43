// rms.glsl - the workgroup sum of squares of the RMSNorm kernels (rmsnorm.comp, mla_kv_rope.comp,
// moe_combine.comp's NORM variant), one copy so all of them sum in the same order and give the
// same values. The including shader declares the spec constant SG (1: the workgroup is one whole
// subgroup, the sum is a subgroupAdd with no shared memory or barrier, which on llvmpipe is a
// switch between the SIMD chunks of the workgroup; 0: a shared-memory tree over at most
// VKM_OPS_RED_WG invocations, a power of two) and enables GL_KHR_shader_subgroup_arithmetic.
// Call in uniform control flow.

shared float rms_red[VKM_OPS_RED_WG];

// the sum of `part` over the workgroup, on every invocation
float rms_total(float part) {
    if (SG != 0u) return subgroupAdd(part);
    const uint tid = gl_LocalInvocationID.x;
    rms_red[tid] = part;
    barrier();
    for (uint s = gl_WorkGroupSize.x / 2; s > 0; s >>= 1) {
        if (tid < s) rms_red[tid] += rms_red[tid + s];
        barrier();
    }
    const float total = rms_red[0];
    barrier(); // rms_red[0] is read by everyone before the next call overwrites it
    return total;
}
