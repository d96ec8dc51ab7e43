// quant.glsl - dequantization of GGUF weight rows (spec §1.4), one type per shader variant,
// selected by -DTYPE_F32, -DTYPE_F16, -DTYPE_BF16, -DTYPE_Q4_0, ... -DTYPE_Q6_K, -DTYPE_IQ1_S ...
// -DTYPE_IQ4_XS (the IQ types: see their section, which also provides IQ_DQ4 and QBYTES, and
// declares the grid buffer at binding IQ_GRID_BINDING).
//
// The includer declares, before including this file:
//   - `wdata`: a readonly storage buffer `uint wdata[]` holding the raw GGUF bytes (read as 32-bit
//     words and unpacked, so no 8/16-bit storage feature is needed; blocks of 18/22/34/110/210
//     bytes are only 2-byte aligned, hence the w_u32 that joins two words), or else a macro
//     WORD(i) that returns word i of them (cpu/matmul_lane.comp's texel-buffer variants),
//   - the push constants `p` (matmul_common.h; cpu/matmul_cpu.h), of which the float types use
//     p.k.
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

#elif defined(TYPE_IQ2_XXS) || defined(TYPE_IQ2_XS) || defined(TYPE_IQ2_S) ||                     \
    defined(TYPE_IQ3_XXS) || defined(TYPE_IQ3_S) || defined(TYPE_IQ1_S) || defined(TYPE_IQ1_M) ||  \
    defined(TYPE_IQ4_NL) || defined(TYPE_IQ4_XS)
// The IQ types (ggml's importance-matrix quants; block layouts in core/ref_quant.c's top comment).
// Grids (shaders/iq_grids.h, data from ggml): the type's own grid in a read-only storage buffer
// bound after the includer's bindings (IQ_GRID_BINDING: 3, or 5 with MUL_ID; the host binds it,
// core/iq_gpu.c). Not a constant array: lavapipe keeps such an array in every invocation's
// coroutine frame, and LLVM takes over ten minutes to build the frame of one with 2048 entries.
// IQ_DQ4(U8, U16, U32, g) gives elements 4g..4g+3 of a block (g < QK / 4) from byte reads of the
// block through the accessor macros U8(B), U16(B) (B even), U32(B) (B even; bytes B..B+3 as a
// little-endian word), B the byte offset inside the block: dq4 (every kernel's IQ path) reads them
// from the buffer, matmul_sg's units through the same accessors at their block. (Reading a run's
// bytes once into registers instead would cut the loads, and lavapipe's compile time of the
// storage-buffer variants: future work.) Groups of 4 never straddle a grid point's half, a sign
// byte's nibble or a sub-block, so each reads one grid word.
#define QIQ 1 // an IQ type (the matmul kernels' generic IQ paths)
#if !defined(TYPE_IQ4_NL) && !defined(TYPE_IQ4_XS)
#ifndef IQ_GRID_BINDING
#ifdef MUL_ID
#define IQ_GRID_BINDING 5
#else
#define IQ_GRID_BINDING 3
#endif
#endif
layout(std430, set = 0, binding = IQ_GRID_BINDING) readonly buffer IQG { uint iq_grid[]; };
#endif

// the 8 sign bits of a 7-bit sign index (bit 7 = parity: ggml's ksigns_iq2xs)
uint iq_ks(uint s7) {
    s7 &= 127u;
    return s7 | ((uint(bitCount(s7)) & 1u) << 7);
}
// +-1 from bits 0..3 of s (set = negative)
vec4 iq_sgn4(uint s) {
    return vec4(1.0) - 2.0 * vec4((uvec4(s) >> uvec4(0u, 1u, 2u, 3u)) & 1u);
}

#if defined(TYPE_IQ2_XXS)
#define QK 256u
#define QBYTES 66u
// d @0; run ib = g / 8 at byte 2 + 8ib: 4 grid indices, then u32 aux (signs s7 at 7l, scale 28-31)
vec4 iq_dq4_f(float d, uint qa, uint aux, uint q) {
    const uint l = q >> 1, hf = q & 1u, idx = (qa >> (8u * l)) & 255u;
    const float db = d * (0.5 + float(aux >> 28)) * 0.25;
    return db * vec4(u8x4(iq_grid[2u * idx + hf])) *
           iq_sgn4(iq_ks(aux >> (7u * l)) >> (4u * hf));
}
#define IQ_DQ4(U8, U16, U32, g)                                                                    \
    iq_dq4_f(unpackHalf2x16(U16(0u)).x, U32(2u + 8u * ((g) >> 3)), U32(6u + 8u * ((g) >> 3)),      \
             (g) & 7u)

#elif defined(TYPE_IQ2_XS)
#define QK 256u
#define QBYTES 74u
// d @0; qs u16 [4ib + l] = index (9 bits) | s7 << 9; scales[ib] @66: nibble l / 2
vec4 iq_dq4_f(float d, uint q16, uint sc, uint q) {
    const uint l = q >> 1, hf = q & 1u;
    const float db = d * (0.5 + float((sc >> (4u * (l >> 1))) & 15u)) * 0.25;
    return db * vec4(u8x4(iq_grid[2u * (q16 & 511u) + hf])) *
           iq_sgn4(iq_ks(q16 >> 9) >> (4u * hf));
}
#define IQ_DQ4(U8, U16, U32, g)                                                                    \
    iq_dq4_f(unpackHalf2x16(U16(0u)).x, U16(2u + 8u * ((g) >> 3) + 2u * (((g) & 7u) >> 1)),        \
             U8(66u + ((g) >> 3)), (g) & 7u)

#elif defined(TYPE_IQ2_S)
#define QK 256u
#define QBYTES 82u
// d @0; qs[4ib + l] @2 (index bits 0-7), signs[4ib + l] @34, qh[ib] @66 (bits 2l, 2l + 1: index
// bits 8-9), scales[ib] @74 (nibble l / 2)
vec4 iq_dq4_f(float d, uint qs, uint sg, uint qh, uint sc, uint q) {
    const uint l = q >> 1, hf = q & 1u, idx = qs | (((qh >> (2u * l)) & 3u) << 8);
    const float db = d * (0.5 + float((sc >> (4u * (l >> 1))) & 15u)) * 0.25;
    return db * vec4(u8x4(iq_grid[2u * idx + hf])) * iq_sgn4(sg >> (4u * hf));
}
#define IQ_DQ4(U8, U16, U32, g)                                                                    \
    iq_dq4_f(unpackHalf2x16(U16(0u)).x, U8(2u + 4u * ((g) >> 3) + (((g) & 7u) >> 1)),              \
             U8(34u + 4u * ((g) >> 3) + (((g) & 7u) >> 1)), U8(66u + ((g) >> 3)),                  \
             U8(74u + ((g) >> 3)), (g) & 7u)

#elif defined(TYPE_IQ3_XXS)
#define QK 256u
#define QBYTES 98u
// d @0; qs[8ib + 2l + hf] = qs[g] @2: the grid index of the 4 elements; u32 aux @66 + 4ib (signs s7 at
// bits 7l, scale 28-31)
vec4 iq_dq4_f(float d, uint idx, uint aux, uint q) {
    const uint l = q >> 1, hf = q & 1u;
    const float db = d * (0.5 + float(aux >> 28)) * 0.5;
    return db * vec4(u8x4(iq_grid[idx])) * iq_sgn4(iq_ks(aux >> (7u * l)) >> (4u * hf));
}
#define IQ_DQ4(U8, U16, U32, g)                                                                    \
    iq_dq4_f(unpackHalf2x16(U16(0u)).x, U8(2u + (g)), U32(66u + 4u * ((g) >> 3)), (g) & 7u)

#elif defined(TYPE_IQ3_S)
#define QK 256u
#define QBYTES 110u
// d @0; qs[8ib + 2l + hf] = qs[g] @2 (index bits 0-7), qh[ib] @66 (bit 2l + hf: index bit 8), signs[4ib
// + l] @74, scales[ib / 2] @106 (nibble ib % 2): db = d (1 + 2s)
vec4 iq_dq4_f(float d, uint qs, uint qh, uint sg, uint sc, uint g) {
    const uint q = g & 7u, idx = qs | (((qh >> q) & 1u) << 8);
    const float db = d * float(1u + 2u * ((sc >> (4u * ((g >> 3) & 1u))) & 15u));
    return db * vec4(u8x4(iq_grid[idx])) * iq_sgn4(sg >> (4u * (q & 1u)));
}
#define IQ_DQ4(U8, U16, U32, g)                                                                    \
    iq_dq4_f(unpackHalf2x16(U16(0u)).x, U8(2u + (g)), U8(66u + ((g) >> 3)),                        \
             U8(74u + 4u * ((g) >> 3) + (((g) & 7u) >> 1)), U8(106u + ((g) >> 4)), (g))

#elif defined(TYPE_IQ1_S) || defined(TYPE_IQ1_M)
#define QK 256u
// elements 4hf..4hf+3 of IQ1 grid point idx (nibbles value + 1), + delta, times dl
vec4 iq1_dq4(uint idx, uint hf, float dl, float delta) {
    const uint v = (iq_grid[idx] >> (4u * hf)) & 0x0F0F0F0Fu;
    return dl * (vec4(u8x4(v)) + (delta - 1.0));
}
#if defined(TYPE_IQ1_S)
#define QBYTES 50u
// d @0; qs[4ib + l] @2 (index bits 0-7); qh u16 [ib] @34: index bits 8-10 of group l at 3l,
// scale 12-14 (dl = d (2s + 1)), bit 15 the sign of delta = 1/8
vec4 iq_dq4_f(float d, uint qs, uint h, uint q) {
    const uint l = q >> 1, idx = qs | (((h >> (3u * l)) & 7u) << 8);
    const float dl = d * float(2u * ((h >> 12) & 7u) + 1u);
    return iq1_dq4(idx, q & 1u, dl, (h & 0x8000u) != 0u ? -0.125 : 0.125);
}
#define IQ_DQ4(U8, U16, U32, g)                                                                    \
    iq_dq4_f(unpackHalf2x16(U16(0u)).x, U8(2u + 4u * ((g) >> 3) + (((g) & 7u) >> 1)),              \
             U16(34u + 2u * ((g) >> 3)), (g) & 7u)
#else
#define QBYTES 56u
// qs[4ib + l] @0; qh[2ib + l / 2] @32, nibble l % 2: index bits 8-10, bit 3 the sign of delta;
// u16 sc[4] @48: s of group l of run ib at bits 6 (ib % 2) + 3 (l / 2) of sc[ib / 2]; bits 12-15
// of sc[0..3] are the 4 nibbles of the f16 d
vec4 iq_dq4_f(uint s01, uint s23, uint qs, uint qh, uint sc, uint g) {
    const uint q = g & 7u, l = q >> 1;
    const uint db = ((s01 >> 12) & 0xFu) | ((s01 >> 24) & 0xF0u) | ((s23 >> 4) & 0xF00u) |
                    ((s23 >> 16) & 0xF000u);
    const uint hb = qh >> (4u * (l & 1u)), idx = qs | ((hb & 7u) << 8);
    const uint s = (sc >> (6u * ((g >> 3) & 1u) + 3u * (l >> 1))) & 7u;
    const float dl = unpackHalf2x16(db).x * float(2u * s + 1u);
    return iq1_dq4(idx, q & 1u, dl, (hb & 8u) != 0u ? -0.125 : 0.125);
}
#define IQ_DQ4(U8, U16, U32, g)                                                                    \
    iq_dq4_f(U32(48u), U32(52u), U8(4u * ((g) >> 3) + (((g) & 7u) >> 1)),                          \
             U8(32u + 2u * ((g) >> 3) + (((g) & 7u) >> 2)), U16(48u + 2u * ((g) >> 4)), (g))
#endif

#else // IQ4_NL, IQ4_XS
// the 16 levels (kvalues_iq4nl: -127 -104 -83 -65, -49 -35 -22 -10, 1 13 25 38, 53 69 89 113) as
// int8 bytes of 4 words: a level is a byte of one of 4 words (a float array of 16 took GPUs a
// select chain per element: 230 instructions per 256 weights in matmul_sg on gfx1100, against 76)
const uvec4 IQ4_LV = uvec4(0xBFAD9881u, 0xF6EADDCFu, 0x26190D01u, 0x71594535u);
float iq4_level(uint n) {
    return float(bitfieldExtract(int(IQ4_LV[n >> 2]), int(8u * (n & 3u)), 8));
}
// the levels of the 4 nibbles at bit 4hi of the bytes of v
vec4 iq4_levels(uint v, uint hi) {
    const uvec4 n = (u8x4(v) >> (4u * hi)) & 15u;
    return vec4(iq4_level(n.x), iq4_level(n.y), iq4_level(n.z), iq4_level(n.w));
}
#if defined(TYPE_IQ4_NL)
#define QK 32u
#define QBYTES 18u
// d @0, qs[16] @2: element j < 16 the low nibble of qs[j], 16 + j its high nibble
#define IQ_DQ4(U8, U16, U32, g)                                                                    \
    (unpackHalf2x16(U16(0u)).x * iq4_levels(U32(2u + 4u * ((g) & 3u)), (g) >> 2))
#else
#define QK 256u
#define QBYTES 136u
// d @0, scales_h u16 @2 (bits 2ib, 2ib + 1: scale bits 4-5), scales_l[ib / 2] @4 (nibble ib % 2),
// qs @8 + 16ib as IQ4_NL's; x = d (s - 32) level
float iq4xs_scale(float d, uint sh, uint sl, uint ib) {
    const uint s = ((sl >> (4u * (ib & 1u))) & 15u) | (((sh >> (2u * ib)) & 3u) << 4);
    return d * (float(s) - 32.0);
}
#define IQ_DQ4(U8, U16, U32, g)                                                                    \
    (iq4xs_scale(unpackHalf2x16(U16(0u)).x, U16(2u), U8(4u + ((g) >> 4)), (g) >> 3) *             \
     iq4_levels(U32(8u + 16u * ((g) >> 3) + 4u * ((g) & 3u)), ((g) >> 2) & 1u))
#endif
#endif

// dq4 through the buffer: accessors over the bytes of the block of element e (at byte bb)
#define IQ_B8(B) w_u8(bb + (B))
#define IQ_B16(B) w_u16(bb + (B))
#define IQ_B32(B) w_u32(bb + (B))
vec4 dq4(uint rb, uint e) {
    const uint bb = rb + (e / QK) * QBYTES, g = (e % QK) >> 2;
    return IQ_DQ4(IQ_B8, IQ_B16, IQ_B32, g);
}

#else
#error "quant.glsl: define one TYPE_*"
#endif
