// bench_copy.comp - dst[i] = src[i] over n 16-byte words: the device-to-device copy that
// `vkmoe bench --micro` times to get the memory bandwidth roofline for decode.
// Grid-stride loop: any number of workgroups covers any n (the dispatch stays under the
// 65535-group limit some devices have). Push: n = number of uvec4 words to copy.
#version 450

layout(local_size_x_id = 0) in;
layout(std430, set = 0, binding = 0) readonly buffer Src { uvec4 src[]; };
layout(std430, set = 0, binding = 1) writeonly buffer Dst { uvec4 dst[]; };
layout(push_constant) uniform Push {
    uint n;
} p;

void main() {
    uint stride = gl_NumWorkGroups.x * gl_WorkGroupSize.x;
    for (uint i = gl_GlobalInvocationID.x; i < p.n; i += stride) dst[i] = src[i];
}
