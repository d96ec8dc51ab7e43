// smoke.comp - y[i] = a * x[i] + b: the smallest end-to-end check that the device, the shader
// pipeline and buffer bindings work (tests/test_gpu_smoke.c, `vkmoe devices --test`).
#version 450

layout(local_size_x_id = 0) in;
layout(std430, set = 0, binding = 0) readonly buffer X { float x[]; };
layout(std430, set = 0, binding = 1) writeonly buffer Y { float y[]; };
layout(push_constant) uniform Push {
    uint n;
    float a;
    float b;
} p;

void main() {
    uint i = gl_GlobalInvocationID.x;
    if (i < p.n) y[i] = p.a * x[i] + p.b;
}
