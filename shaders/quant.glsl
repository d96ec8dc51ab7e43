// quant.glsl - dequantization of GGUF weight rows (spec §1.4), one type per shader variant,
// selected by -DTYPE_F32, -DTYPE_F16, -DTYPE_BF16, -DTYPE_Q4_0, ... -DTYPE_Q6_K.
//
// The includer declares, before including this file:
//   - `wdata`: a readonly storage buffer `uint wdata[]` holding the raw GGUF bytes (read as 32-bit
//     words and unpacked, so no 8/16-bit storage feature is needed; blocks of 18/22/34/110/210
//     bytes are only 2-byte aligned, hence the w_u32 that joins two words), or else a macro
//     WORD(i) that returns word i of them (matmul_vec.comp's texel-buffer variants),
//   - the push constants `p` (matmul_common.h), of which the float types use p.k.
// It provides:
//   QK                        elements per block (float types: a virtual block of 4)
//   vec4 dq4(uint rb, uint e) elements e..e+3 (e % 4 == 0) of the W row starting at byte rb
//                             (rb even; 4-aligned for F32). For the float types elements at
//                             index >= p.k read as 0 (rows of any length); the block types need
//                             p.k to be a multiple of QK.
// Every group of 4 consecutive elements lies in one block and one sub-block of every format, so
// dq4 reads one scale and 4 contiguous quant bytes.

#ifndef WORD
#define WORD(i) wdata[i]
#endif

uint w_u8(uint b) { return (WORD(b >> 2) >> ((b & 3u) * 8u)) & 0xFFu; }
// b even
uint w_u16(uint b) { return (WORD(b >> 2) >> ((b & 2u) * 8u)) & 0xFFFFu; }
// b even: the 4 bytes at b..b+3 as a little-endian word
uint w_u32(uint b) {
    uint i = b >> 2;
    if ((b & 2u) == 0u) return WORD(i);
    return (WORD(i) >> 16) | (WORD(i + 1u) << 16);
}
float w_f16(uint b) { return unpackHalf2x16(w_u16(b)).x; }
uvec4 u8x4(uint v) { return uvec4(v & 0xFFu, (v >> 8) & 0xFFu, (v >> 16) & 0xFFu, v >> 24); }
ivec4 i8x4(uint v) {
    int s = int(v);
    return ivec4(bitfieldExtract(s, 0, 8), bitfieldExtract(s, 8, 8), bitfieldExtract(s, 16, 8),
                 bitfieldExtract(s, 24, 8));
}

#if defined(TYPE_F32)
#define QK 4u
#define QFLOAT 1
vec4 dq4(uint rb, uint e) {
    uint i = (rb >> 2) + e;
    if (e + 4u <= p.k) return vec4(uintBitsToFloat(WORD(i)), uintBitsToFloat(WORD(i + 1u)),
                                   uintBitsToFloat(WORD(i + 2u)), uintBitsToFloat(WORD(i + 3u)));
    vec4 v = vec4(0.0);
    for (uint j = 0u; j < 4u; j++)
        if (e + j < p.k) v[j] = uintBitsToFloat(WORD(i + j));
    return v;
}

#elif defined(TYPE_F16) || defined(TYPE_BF16)
#define QK 4u
#define QFLOAT 1
#if defined(TYPE_F16)
vec2 h2f(uint v) { return unpackHalf2x16(v); }
float h1f(uint v) { return unpackHalf2x16(v).x; }
#else
vec2 h2f(uint v) { return vec2(uintBitsToFloat(v << 16), uintBitsToFloat(v & 0xFFFF0000u)); }
float h1f(uint v) { return uintBitsToFloat(v << 16); }
#endif
vec4 dq4(uint rb, uint e) {
    uint b = rb + 2u * e;
    if (e + 4u <= p.k) {
        if ((b & 2u) == 0u) return vec4(h2f(WORD(b >> 2)), h2f(WORD((b >> 2) + 1u)));
        return vec4(h2f(w_u32(b)), h2f(w_u32(b + 4u)));
    }
    vec4 v = vec4(0.0);
    for (uint j = 0u; j < 4u; j++)
        if (e + j < p.k) v[j] = h1f(w_u16(b + 2u * j));
    return v;
}

#elif defined(TYPE_Q4_0)
// d:f16, qs[16]; low nibbles are elements 0..15, high nibbles 16..31; x = d * (q - 8)
#define QK 32u
vec4 dq4(uint rb, uint e) {
    uint bb = rb + (e >> 5) * 18u, j = e & 31u;
    uvec4 q = (u8x4(w_u32(bb + 2u + (j & 15u))) >> (j & 16u) / 4u) & 0xFu;
    return w_f16(bb) * (vec4(q) - 8.0);
}

#elif defined(TYPE_Q4_1)
// d:f16, m:f16, qs[16]; x = d * q + m
#define QK 32u
vec4 dq4(uint rb, uint e) {
    uint bb = rb + (e >> 5) * 20u, j = e & 31u;
    uvec4 q = (u8x4(w_u32(bb + 4u + (j & 15u))) >> (j & 16u) / 4u) & 0xFu;
    return w_f16(bb) * vec4(q) + w_f16(bb + 2u);
}

#elif defined(TYPE_Q5_0)
// d:f16, qh:u32 (bit j = 5th bit of element j), qs[16]; x = d * (q - 16)
#define QK 32u
vec4 dq4(uint rb, uint e) {
    uint bb = rb + (e >> 5) * 22u, j = e & 31u;
    uvec4 q = (u8x4(w_u32(bb + 6u + (j & 15u))) >> (j & 16u) / 4u) & 0xFu;
    uvec4 h = (uvec4(w_u32(bb + 2u)) >> (uvec4(0u, 1u, 2u, 3u) + j)) & 1u;
    return w_f16(bb) * (vec4(q | (h << 4)) - 16.0);
}

#elif defined(TYPE_Q5_1)
// d:f16, m:f16, qh:u32, qs[16]; x = d * q + m
#define QK 32u
vec4 dq4(uint rb, uint e) {
    uint bb = rb + (e >> 5) * 24u, j = e & 31u;
    uvec4 q = (u8x4(w_u32(bb + 8u + (j & 15u))) >> (j & 16u) / 4u) & 0xFu;
    uvec4 h = (uvec4(w_u32(bb + 4u)) >> (uvec4(0u, 1u, 2u, 3u) + j)) & 1u;
    return w_f16(bb) * vec4(q | (h << 4)) + w_f16(bb + 2u);
}

#elif defined(TYPE_Q8_0)
// d:f16, qs[32] int8; x = d * q
#define QK 32u
vec4 dq4(uint rb, uint e) {
    uint bb = rb + (e >> 5) * 34u, j = e & 31u;
    return w_f16(bb) * vec4(i8x4(w_u32(bb + 2u + j)));
}

#elif defined(TYPE_Q2_K)
// scales[16], qs[64], d:f16, dmin:f16; x = d * (sc & 15) * q - dmin * (sc >> 4)
#define QK 256u
vec4 dq4(uint rb, uint e) {
    uint bb = rb + (e >> 8) * 84u, j = e & 255u;
    uint h = j >> 7, s = ((j >> 5) & 3u) * 2u, l = j & 31u;
    uint sc = w_u8(bb + (j >> 4));
    uvec4 q = (u8x4(w_u32(bb + 16u + 32u * h + l)) >> s) & 3u;
    uint dd = w_u32(bb + 80u);
    vec2 d = unpackHalf2x16(dd);
    return d.x * float(sc & 15u) * vec4(q) - d.y * float(sc >> 4);
}

#elif defined(TYPE_Q3_K)
// hmask[32], qs[64], scales[12] (16 6-bit signed scales), d:f16; x = d * s * (q2 - (hbit ? 0 : 4))
#define QK 256u
vec4 dq4(uint rb, uint e) {
    uint bb = rb + (e >> 8) * 110u, j = e & 255u;
    uint h = j >> 7, jj = (j >> 5) & 3u, l = j & 31u, sb = j >> 4;
    uint low4 = sb < 8u ? (w_u8(bb + 96u + sb) & 15u) : (w_u8(bb + 88u + sb) >> 4);
    uint hi2 = (w_u8(bb + 104u + (sb & 3u)) >> (2u * (sb >> 2))) & 3u;
    int s = int(low4 | (hi2 << 4)) - 32;
    ivec4 q2 = ivec4((u8x4(w_u32(bb + 32u + 32u * h + l)) >> (2u * jj)) & 3u);
    ivec4 hb = ivec4((u8x4(w_u32(bb + l)) >> (4u * h + jj)) & 1u);
    return (w_f16(bb + 108u) * float(s)) * vec4(q2 - 4 + 4 * hb);
}

#elif defined(TYPE_Q4_K) || defined(TYPE_Q5_K)
// d:f16, dmin:f16, scales[12] (8 6-bit scales and mins), [Q5_K: qh[32]], qs[128];
// x = d * sc * q - dmin * m
#define QK 256u
// scale and min of sub-block sb from the 12 scale bytes at byte b
uvec2 scale_min_k4(uint b, uint sb) {
    if (sb < 4u) return uvec2(w_u8(b + sb) & 63u, w_u8(b + sb + 4u) & 63u);
    uint a = w_u8(b + sb + 4u);
    return uvec2((a & 15u) | ((w_u8(b + sb - 4u) >> 6) << 4),
                 (a >> 4) | ((w_u8(b + sb) >> 6) << 4));
}
#if defined(TYPE_Q4_K)
#define QBYTES 144u
#define QS_OFF 16u
#else
#define QBYTES 176u
#define QS_OFF 48u
#endif
vec4 dq4(uint rb, uint e) {
    uint bb = rb + (e >> 8) * QBYTES, j = e & 255u;
    uint c = j >> 6, l = j & 31u, sb = j >> 5;
    uvec2 sm = scale_min_k4(bb + 4u, sb);
    uvec4 q = (u8x4(w_u32(bb + QS_OFF + 32u * c + l)) >> (j & 32u) / 8u) & 15u;
#if defined(TYPE_Q5_K)
    q |= ((u8x4(w_u32(bb + 16u + l)) >> sb) & 1u) << 4;
#endif
    vec2 d = unpackHalf2x16(w_u32(bb));
    return (d.x * float(sm.x)) * vec4(q) - d.y * float(sm.y);
}

#elif defined(TYPE_Q6_K)
// ql[128], qh[64], scales[16] int8, d:f16; x = d * sc * (q - 32)
#define QK 256u
vec4 dq4(uint rb, uint e) {
    uint bb = rb + (e >> 8) * 210u, j = e & 255u;
    uint h = j >> 7, g = (j >> 5) & 3u, l = j & 31u;
    uvec4 lo = (u8x4(w_u32(bb + 64u * h + l + 32u * (g & 1u))) >> (4u * (g >> 1))) & 15u;
    uvec4 hi = (u8x4(w_u32(bb + 128u + 32u * h + l)) >> (2u * g)) & 3u;
    int sc = bitfieldExtract(int(w_u8(bb + 192u + (j >> 4))), 0, 8);
    return (w_f16(bb + 208u) * float(sc)) * (vec4(lo | (hi << 4)) - 32.0);
}

#else
#error "quant.glsl: define one TYPE_*"
#endif
