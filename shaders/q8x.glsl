// q8x.glsl - one block of matmul_common.h's Q8X format (the 8-bit activations of gemv's
// integer-dot variants) from 32 floats: 32 int8 q = x / d rounded to nearest even, d = max |x| /
// 127, then (d, d * sum of the first 16 q, d, d * sum of the last 16). The one copy of the
// rounding, so that quant_q8.comp and the norms that write their output in this form too
// (rmsnorm.comp and moe_combine.comp with -DQ8X_OUT, through norm_q8_row) give the same bytes.
// Reference: core/ref_matmul.c vkm_ref_quant_q8x. The including shader declares the write-only
// buffers qdata (uvec4[]) and hdata (vec4[]) on one binding.

// writes the block of v at 16-byte unit o of the Q8X binding (3 units a block)
void q8x_store(float v[32], uint o) {
    float amax = 0.0;
    [[unroll]] for (uint i = 0u; i < 32u; i++) amax = max(amax, abs(v[i]));
    const float d = amax / 127.0, inv = amax > 0.0 ? 127.0 / amax : 0.0;
    uint w[8];
    int s[2] = {0, 0};
    [[unroll]] for (uint j = 0u; j < 8u; j++) {
        w[j] = 0u;
        [[unroll]] for (uint t = 0u; t < 4u; t++) {
            const int q = clamp(int(roundEven(v[4u * j + t] * inv)), -127, 127);
            w[j] |= (uint(q) & 0xFFu) << (8u * t);
            s[j >> 2] += q;
        }
    }
    qdata[o] = uvec4(w[0], w[1], w[2], w[3]);
    qdata[o + 1u] = uvec4(w[4], w[5], w[6], w[7]);
    hdata[o + 2u] = vec4(d, d * float(s[0]), d, d * float(s[1]));
}

#ifdef Q8X_NORM
// The norms' Q8X output (-DQ8X_OUT; Q8X_NORM: the includer's macros NQ_X(i) and NQ_W(i), its
// row's values and the norm weights): the blocks of (NQ_X(xb + i) * scale) * NQ_W(i), i < d (d a
// multiple of 32; the same expression as the float output, so the same values), split over the
// workgroup a block per invocation, rows of 3 d / 32 units from unit qrow. Call in uniform control
// flow after a barrier that makes every invocation's writes of the row visible.
void norm_q8_row(uint xb, uint d, float scale, uint qrow) {
    for (uint b = gl_LocalInvocationID.x; b < d / 32u; b += gl_WorkGroupSize.x) {
        float v[32];
        [[unroll]] for (uint i = 0u; i < 32u; i++)
            v[i] = (NQ_X(xb + 32u * b + i) * scale) * NQ_W(32u * b + i);
        q8x_store(v, qrow + 3u * b);
    }
}
#endif
