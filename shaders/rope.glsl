// rope.glsl - the RoPE angle of NORMAL mode with YaRN (spec §4.5), shared by rope.comp and
// mla_kv_rope.comp so both rotate by exactly the same cos/sin. The including shader declares the
// push block `p` with the rope fields of vkm_push_rope (theta_scale, freq_scale, ext_factor,
// mscale, corr_low, corr_high).
// θ_extrap is pos * theta_scale^k computed like ggml's rope cache: k repeated float
// multiplications starting from float(pos), so the angles match the CPU reference bit for bit
// before cos/sin. The angle is reduced to [-π, π] (three-part 2π, Cody-Waite) before cos/sin,
// because GPU sin/cos are only accurate on that range and θ grows with the position.

// 2π = C1 + C2 + C3; C1 = 201/32 has 8 significant bits, so k * C1 is exact for k < 2^16.
const float ROPE_TWO_PI_INV = 0.15915494309189535;
const float ROPE_C1 = 6.28125;
const float ROPE_C2 = 1.9353071693331003e-3;  // float(2π - C1)
const float ROPE_C3 = 1.0253131677018246e-11; // 2π - C1 - C2

float rope_reduce_angle(float t) {
    float k = round(t * ROPE_TWO_PI_INV);
    return ((t - k * ROPE_C1) - k * ROPE_C2) - k * ROPE_C3;
}

float rope_ramp(uint k) {
    float y = (float(k) - p.corr_low) / max(0.001, p.corr_high - p.corr_low);
    return 1.0 - min(1.0, max(0.0, y));
}

// (cos θ, sin θ) · mscale for pair k at position `pos`
vec2 rope_cs(int pos, uint k) {
    // `precise`: no fused multiply-add, so θ rounds exactly like the CPU's separate ops
    precise float theta_extrap = float(pos);
    for (uint i = 0; i < k; i++) theta_extrap *= p.theta_scale;
    precise float theta_interp = p.freq_scale * theta_extrap;
    precise float theta = theta_interp;
    if (p.ext_factor != 0.0) {
        precise float mix = rope_ramp(k) * p.ext_factor;
        theta = theta_interp * (1.0 - mix) + theta_extrap * mix;
    }
    theta = rope_reduce_angle(theta);
    return vec2(cos(theta), sin(theta)) * p.mscale;
}
