// rope.comp - RoPE, NORMAL mode (consecutive pairs), with YaRN, in place (spec §4.5).
// For token t (position pos[t]), head h and pair k < n_rot/2 the pair at
// x[t*tok_stride + h*head_stride + off + 2k .. +1] is rotated by θ_k and scaled by mscale.
// θ_extrap is p * theta_scale^k computed like ggml's rope cache: k repeated float multiplications
// starting from float(p), so the angles match the CPU reference bit for bit before cos/sin.
// The angle is reduced to [-π, π] (three-part 2π, Cody-Waite) before cos/sin, because GPU sin/cos
// are only accurate on that range and θ grows with the position.
// Bindings: 0 x (f32, read-write), 1 pos (int32 [n_tok]). Grid: x over head*pair, y over tokens.
#version 450
#extension GL_GOOGLE_include_directive : require
#include "ops_common.h"

layout(local_size_x = VKM_OPS_WG) in;
layout(std430, set = 0, binding = 0) buffer X { float x[]; };
layout(std430, set = 0, binding = 1) readonly buffer P { int pos[]; };
layout(push_constant) uniform Push { vkm_push_rope p; };

// 2π = C1 + C2 + C3; C1 = 201/32 has 8 significant bits, so k * C1 is exact for k < 2^16.
const float TWO_PI_INV = 0.15915494309189535;
const float C1 = 6.28125;
const float C2 = 1.9353071693331003e-3; // float(2π - C1)
const float C3 = 1.0253131677018246e-11; // 2π - C1 - C2

float reduce_angle(float t) {
    float k = round(t * TWO_PI_INV);
    return ((t - k * C1) - k * C2) - k * C3;
}

float ramp(uint k) {
    float y = (float(k) - p.corr_low) / max(0.001, p.corr_high - p.corr_low);
    return 1.0 - min(1.0, max(0.0, y));
}

void main() {
    const uint half_rot = p.n_rot / 2;
    const uint idx = gl_GlobalInvocationID.x;
    if (idx >= half_rot * p.n_head) return;
    const uint h = idx / half_rot, k = idx % half_rot;
    for (uint t = gl_WorkGroupID.y; t < p.n_tok; t += gl_NumWorkGroups.y) {
        // `precise`: no fused multiply-add, so θ rounds exactly like the CPU's separate ops
        precise float theta_extrap = float(pos[t]);
        for (uint i = 0; i < k; i++) theta_extrap *= p.theta_scale;
        precise float theta_interp = p.freq_scale * theta_extrap;
        precise float theta = theta_interp;
        if (p.ext_factor != 0.0) {
            precise float mix = ramp(k) * p.ext_factor;
            theta = theta_interp * (1.0 - mix) + theta_extrap * mix;
        }
        theta = reduce_angle(theta);
        const float c = cos(theta) * p.mscale, s = sin(theta) * p.mscale;
        const uint b = t * p.tok_stride + h * p.head_stride + p.off + 2 * k;
        const float x0 = x[b], x1 = x[b + 1];
        x[b] = x0 * c - x1 * s;
        x[b + 1] = x0 * s + x1 * c;
    }
}
