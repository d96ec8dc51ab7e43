// gemv_q8.glsl - the per-type row loops of gemv.comp's integer-dot variants (-DQ8X): X is in
// matmul_common.h's Q8X format (32 int8 a block, then (d, d * sum of the first 16, d, d * sum of
// the last 16)), quantized once per matmul input by quant_q8.comp, and the weights' integer codes
// meet it in 4x8-bit packed dot products (SPV_KHR_integer_dot_product OpSDot: v_dot4_i32_i8 /
// v_dot4_i32_iu8 on RDNA). Included by gemv_decode.glsl after its word readers (realign, w16, w8).
//
// Each type keeps the float variant's unit of 32 weights per lane (so W is read the same way);
// the dot product of a unit's integer codes with the 8-bit X is exact in int32, scaled once by
// the weight's and X's block scales; a constant offset of the codes (Q4_0's 8, Q5_0's 16) and a
// type's min (Q4_1, Q5_1, Q4_K, Q5_K) take X's sums instead of a per-weight subtraction; where
// the scale changes every 8 weights of a lane (Q2_K, Q3_K) the X sums come from a dot product
// with ones, and Q6_K's codes are made signed (q - 32 as int8) with two bit operations per word.
// The IQ types (gemv_iq.glsl, one X block a run): the grid bytes with their signs applied are
// int8 already (IQ1: values + 1, the offset from X's group sums), and IQ4_NL / IQ4_XS's levels
// are int8 values looked up as bytes, so a unit is 8 dot products.
// The includer declares xq4 / xh4 / xq2 / xh2 (the X window as uvec4 / vec4 / uvec2 / vec2), g_xb
// (column c's X row, in 16-byte units), NC, g_acc, g_up, swap_up(), GLU and the W readers;
// this provides the units and load_x that gemv_decode.glsl's row loop calls. With one column, a unit's X loads (load_x) come
// before its weight loads; with more, X is loaded at use (32 VGPRs a column otherwise).

spirv_instruction(extensions = ["SPV_KHR_integer_dot_product"], capabilities = [ 6019, 6018 ],
                  id = 4450) // OpSDot, capabilities DotProduct, DotProductInput4x8BitPacked
    int sdot_packed(uint a, uint b, spirv_literal uint packed_format);

// acc + the dot product of the 4 signed bytes of a and of b
int dot4(uint a, uint b, int acc) {
    return acc + sdot_packed(a, b, 0u); // 0 = PackedVectorFormat4x8Bit
}

uint g_u; // the current unit

#if defined(GEMV_IQ) || defined(TYPE_Q4_0) || defined(TYPE_Q8_0) || defined(TYPE_Q4_1) ||         \
    defined(TYPE_Q5_0) || defined(TYPE_Q5_1)
// ---- unit u = X block u (the 32-weight blocks, the IQ types' runs of 32): its codes, scales ----
uvec4 g_q[2];
vec4 g_h;
void load_x(uint u) {
    g_u = u;
    if (NC == 1u) {
        const uint o = g_xb[0] + 3u * u;
        g_q[0] = xq4[o];
        g_q[1] = xq4[o + 1u];
        g_h = xh4[o + 2u];
    }
}
uint xw(uint c, uint j) { // X word j (elements 4j .. 4j + 3) of column c
    return NC == 1u ? g_q[j >> 2][j & 3u] : xq4[g_xb[c] + 3u * g_u + (j >> 2)][j & 3u];
}
#endif

#if defined(GEMV_IQ) // the IQ types: int8 grid bytes or levels, gemv_iq.glsl
#include "gemv_iq.glsl"

#elif defined(TYPE_Q4_0) || defined(TYPE_Q8_0) || defined(TYPE_Q4_1) || defined(TYPE_Q5_0) ||      \
    defined(TYPE_Q5_1)
// ---- 32-weight blocks: unit u = block u = X block u ----
vec2 xds(uint c) { // (d, d * sum of the 32 q) of column c
    const vec4 h = NC == 1u ? g_h : xh4[g_xb[c] + 3u * g_u + 2u];
    return vec2(h.x, h.y + h.w);
}
uint hbytes(uint qh, uint j) { // bits j..j+3 of qh at bit 4 of bytes 0..3 (gemv_decode.glsl)
    return ((((qh >> j) & 0xFu) * 0x00204081u) & 0x01010101u) << 4;
}

void unit(uint rb, uint u) {
#if defined(TYPE_Q8_0)
    // d:f16, qs[32] int8 (34-byte blocks at 2-byte aligned addresses)
    const uint bb = rb + 34u * u, i = bb >> 2, s8 = (bb & 2u) * 8u;
    uint w[9];
    [[unroll]] for (uint j = 0u; j < 9u; j++) w[j] = wdata[i + j];
    const float d = unpackHalf2x16(w[0] >> s8).x;
    uint q[8];
    [[unroll]] for (uint j = 0u; j < 8u; j++) q[j] = realign2(w[j], w[j + 1u], s8);
    [[unroll]] for (uint c = 0u; c < NC; c++) {
        int s = 0;
        [[unroll]] for (uint j = 0u; j < 8u; j++) s = dot4(q[j], xw(c, j), s);
        g_acc[c] += d * xds(c).x * float(s);
    }
#elif defined(TYPE_Q4_0) || defined(TYPE_Q5_0)
    // Q4_0: d:f16, qs[16] (low nibbles elements 0..15, high 16..31), x = d * (q - 8); Q5_0: d,
    // qh:u32 (bit j = 5th bit of element j), qs[16], x = d * (q - 16). The offset takes X's sum.
#if defined(TYPE_Q4_0)
#define NW 5u
#define QW 0u // the word (from the block's) where qs starts, realigned
#define OFF 8.0
#else
#define NW 6u
#define QW 1u
#define OFF 16.0
#endif
    const uint bb = rb + (NW == 5u ? 18u : 22u) * u, i = bb >> 2, s8 = (bb & 2u) * 8u;
    uint w[NW];
    [[unroll]] for (uint j = 0u; j < NW; j++) w[j] = wdata[i + j];
    const float d = unpackHalf2x16(w[0] >> s8).x;
    uint lo[4], hi[4];
#if defined(TYPE_Q5_0)
    const uint qh = realign2(w[0], w[1], s8);
#endif
    [[unroll]] for (uint j = 0u; j < 4u; j++) {
        const uint q = realign2(w[QW + j], w[QW + j + 1u], s8);
        lo[j] = q & 0x0F0F0F0Fu;
        hi[j] = (q >> 4) & 0x0F0F0F0Fu;
#if defined(TYPE_Q5_0)
        lo[j] |= hbytes(qh, 4u * j);
        hi[j] |= hbytes(qh, 16u + 4u * j);
#endif
    }
    [[unroll]] for (uint c = 0u; c < NC; c++) {
        int s = 0;
        [[unroll]] for (uint j = 0u; j < 4u; j++) s =
            dot4(hi[j], xw(c, 4u + j), dot4(lo[j], xw(c, j), s));
        const vec2 x = xds(c);
        g_acc[c] += d * (x.x * float(s) - OFF * x.y);
    }
#else
    // Q4_1: d:f16, m:f16, qs[16] (20-byte blocks); Q5_1: d, m, qh:u32, qs[16] (24 bytes); x = d * q
    // + m: the min takes X's sum.
#if defined(TYPE_Q4_1)
#define NW 6u
#define QW 1u
#else
#define NW 7u
#define QW 2u
#endif
    const uint bb = rb + (NW == 6u ? 20u : 24u) * u, i = bb >> 2, s8 = (bb & 2u) * 8u;
    uint w[NW];
    [[unroll]] for (uint j = 0u; j < NW - 1u; j++) w[j] = wdata[i + j];
    w[NW - 1u] = wdata[min(i + NW - 1u, g_wlast)]; // past the data only when s8 = 0 (unused then)
    const vec2 dm = unpackHalf2x16(realign(w[0], w[1], s8));
#if defined(TYPE_Q5_1)
    const uint qh = realign(w[1], w[2], s8);
#endif
    uint lo[4], hi[4];
    [[unroll]] for (uint j = 0u; j < 4u; j++) {
        const uint q = realign(w[QW + j], w[QW + j + 1u], s8);
        lo[j] = q & 0x0F0F0F0Fu;
        hi[j] = (q >> 4) & 0x0F0F0F0Fu;
#if defined(TYPE_Q5_1)
        lo[j] |= hbytes(qh, 4u * j);
        hi[j] |= hbytes(qh, 16u + 4u * j);
#endif
    }
    [[unroll]] for (uint c = 0u; c < NC; c++) {
        int s = 0;
        [[unroll]] for (uint j = 0u; j < 4u; j++) s =
            dot4(hi[j], xw(c, 4u + j), dot4(lo[j], xw(c, j), s));
        const vec2 x = xds(c);
        g_acc[c] += dm.x * x.x * float(s) + dm.y * x.y;
    }
#endif
}

#elif defined(TYPE_Q4_K) || defined(TYPE_Q5_K)
// ---- Q4_K / Q5_K (gemv_decode.glsl's layout): unit u = block u / 8, sub-block pair c = (u / 2) %
// 4, half h = u % 2: 16 weights of sub-block 2c (low nibbles) against half h of X block 8 (u / 8)
// + 2c, 16 of sub-block 2c + 1 (high nibbles) against half h of the next X block. x = d * sc * q
// - dmin * m: the min takes the X half's sum. ----
#if defined(TYPE_Q4_K)
#define BQ 9u // 16-byte pieces per block
#define QS 1u // the piece where qs starts
#else
#define BQ 11u
#define QS 3u
#endif
uvec4 g_q[2];
vec2 g_h[2];
uint xo(uint c, uint u, uint t) { // 16-byte unit of the X block of sub-block 2c + t
    return g_xb[c] + 3u * (8u * (u >> 3) + 2u * ((u >> 1) & 3u) + t);
}
void load_x(uint u) {
    g_u = u;
    if (NC == 1u) [[unroll]]
        for (uint t = 0u; t < 2u; t++) {
            const uint o = xo(0u, u, t);
            g_q[t] = xq4[o + (u & 1u)];
            g_h[t] = xh2[2u * (o + 2u) + (u & 1u)];
        }
}
uvec4 xq(uint c, uint t) {
    return NC == 1u ? g_q[t] : xq4[xo(c, g_u, t) + (g_u & 1u)];
}
vec2 xds(uint c, uint t) { // (d, d * sum of the half)
    return NC == 1u ? g_h[t] : xh2[2u * (xo(c, g_u, t) + 2u) + (g_u & 1u)];
}

void unit(uint rb, uint u) {
    const uint bq = BQ * (u >> 3), c = (u >> 1) & 3u, h = u & 1u;
    const uvec4 hd = w16(rb, bq);
    const uvec4 q = w16(rb, bq + QS + 2u * c + h);
#if defined(TYPE_Q5_K)
    const uvec4 qh = w16(rb, bq + 1u + h);
#endif
    const vec2 dm = unpackHalf2x16(hd.x);
    const bool up = c >= 2u;
    const uint ss = up ? (hd.w & 0x0F0F0F0Fu) | ((hd.y >> 2) & 0x30303030u) : hd.y & 0x3F3F3F3Fu;
    const uint ms =
        up ? ((hd.w >> 4) & 0x0F0F0F0Fu) | ((hd.z >> 2) & 0x30303030u) : hd.z & 0x3F3F3F3Fu;
    const int sh = int(16u * (c & 1u));
    const float a0 = dm.x * float(bitfieldExtract(ss, sh, 8));
    const float a1 = dm.x * float(bitfieldExtract(ss, sh + 8, 8));
    const float b0 = dm.y * float(bitfieldExtract(ms, sh, 8));
    const float b1 = dm.y * float(bitfieldExtract(ms, sh + 8, 8));
    uint lo[4], hi[4];
    [[unroll]] for (uint j = 0u; j < 4u; j++) {
        lo[j] = q[j] & 0x0F0F0F0Fu;
        hi[j] = (q[j] >> 4) & 0x0F0F0F0Fu;
#if defined(TYPE_Q5_K)
        lo[j] |= ((qh[j] >> (2u * c)) & 0x01010101u) << 4;
        hi[j] |= ((qh[j] >> (2u * c + 1u)) & 0x01010101u) << 4;
#endif
    }
    [[unroll]] for (uint cc = 0u; cc < NC; cc++) {
        const uvec4 x0 = xq(cc, 0u), x1 = xq(cc, 1u);
        int s0 = 0, s1 = 0;
        [[unroll]] for (uint j = 0u; j < 4u; j++) {
            s0 = dot4(lo[j], x0[j], s0);
            s1 = dot4(hi[j], x1[j], s1);
        }
        const vec2 h0 = xds(cc, 0u), h1 = xds(cc, 1u);
        g_acc[cc] += a0 * h0.x * float(s0) + a1 * h1.x * float(s1) - (b0 * h0.y + b1 * h1.y);
    }
}

#elif defined(TYPE_Q2_K) || defined(TYPE_Q3_K) || defined(TYPE_Q6_K)
// ---- Q2_K, Q3_K, Q6_K (gemv_decode.glsl's layout): unit u = block u / 8, v = u % 8, half
// hh = v / 4, positions 8i .. 8i + 7 (i = v % 4) of the four groups g: X words 2i, 2i + 1 of X
// block 8 (u / 8) + 4hh + g. Scales change every 16 weights, X has sums per 16 only, so a group's
// 8 weights take their offset or min from the dot product of X with ones (Q2_K, Q3_K), or become
// signed codes (Q6_K: q - 32 as int8, by ((q | 0x80) - 0x20) ^ 0x80 per byte, no borrow between
// bytes). ----
uvec2 g_q[4];
float g_d[4];
uint xo(uint c, uint u, uint g) { // 16-byte unit of X block 4hh + g of the unit's super-block
    return g_xb[c] + 3u * (8u * (u >> 3) + 4u * ((u >> 2) & 1u) + g);
}
void load_x(uint u) {
    g_u = u;
    if (NC == 1u) [[unroll]]
        for (uint g = 0u; g < 4u; g++) {
            const uint o = xo(0u, u, g);
            g_q[g] = xq2[2u * o + (u & 3u)];
            g_d[g] = xh4[o + 2u].x;
        }
}
uvec2 xq(uint c, uint g) {
    return NC == 1u ? g_q[g] : xq2[2u * xo(c, g_u, g) + (g_u & 3u)];
}
float xd(uint c, uint g) {
    return NC == 1u ? g_d[g] : xh4[xo(c, g_u, g) + 2u].x;
}

#define ONES 0x01010101u
#if defined(TYPE_Q2_K)
// scales[16] (low nibble scale, high nibble min), qs[64], d:f16, dmin:f16 (84 bytes);
// x = d * (sc & 15) * q - dmin * (sc >> 4), q the 2 bits at 2g of qs[32h + l]
void unit(uint rb, uint u) {
    const uint bb = rb + 84u * (u >> 3), v = u & 7u, h = v >> 2, i = v & 3u;
    const uint wi = bb >> 2, s8 = (bb & 2u) * 8u;
    const uvec2 q = w8(wi + 4u + 8u * h + 2u * i, s8);
    const uvec2 sc = w8(wi + 2u * h, s8);
    const vec2 dm = unpackHalf2x16(realign(wdata[wi + 20u], wdata[min(wi + 21u, g_wlast)], s8));
    const int so = int(8u * (i >> 1));
    float a[4], m[4];
    uint t[4][2];
    [[unroll]] for (uint g = 0u; g < 4u; g++) {
        const uint b = uint(bitfieldExtract(g < 2u ? sc.x : sc.y, so + int(16u * (g & 1u)), 8));
        a[g] = dm.x * float(b & 15u);
        m[g] = dm.y * float(b >> 4);
        [[unroll]] for (uint j = 0u; j < 2u; j++) t[g][j] = (q[j] >> (2u * g)) & 0x03030303u;
    }
    [[unroll]] for (uint c = 0u; c < NC; c++) {
        float s = 0.0;
        [[unroll]] for (uint g = 0u; g < 4u; g++) {
            const uvec2 x = xq(c, g);
            const int sq = dot4(t[g][1], x.y, dot4(t[g][0], x.x, 0));
            const int s1 = dot4(ONES, x.y, dot4(ONES, x.x, 0));
            s += xd(c, g) * (a[g] * float(sq) - m[g] * float(s1));
        }
        g_acc[c] += s;
    }
}
#elif defined(TYPE_Q3_K)
// hmask[32], qs[64], scales[12] (16 6-bit signed scales), d:f16 (110 bytes); x = d * s * (c - 4)
// with the code c = q2 | hbit << 2 (0..7); the scale of sub-block 8h + 2g + i / 2 as in
// gemv_decode.glsl
void unit(uint rb, uint u) {
    const uint bb = rb + 110u * (u >> 3), v = u & 7u, h = v >> 2, i = v & 3u;
    const uint wi = bb >> 2, s8 = (bb & 2u) * 8u;
    const uvec2 q = w8(wi + 8u + 8u * h + 2u * i, s8);
    const uvec2 hm = w8(wi + 2u * i, s8);
    const uint a24 = wdata[wi + 24u], a25 = wdata[wi + 25u], a26 = wdata[wi + 26u];
    const uint a27 = wdata[wi + 27u];
    const uint s0 = realign(a24, a25, s8), s1 = realign(a25, a26, s8), s2 = realign(a26, a27, s8);
    const float d = unpackHalf2x16(a27 >> s8).x;
    float a[4];
    uint t[4][2];
    [[unroll]] for (uint g = 0u; g < 4u; g++) {
        const uint k = 2u * g + (i >> 1); // byte of the first 8 scale bytes (g < 2: s0, else s1)
        const uint lo4 = ((g < 2u ? s0 : s1) >> (8u * (k & 3u) + 4u * h)) & 15u;
        const uint hi2 = (s2 >> (8u * (k & 3u) + 2u * (2u * h + (g >> 1)))) & 3u;
        a[g] = d * float(int(lo4 | (hi2 << 4)) - 32);
        [[unroll]] for (uint j = 0u; j < 2u; j++) t[g][j] =
            ((q[j] >> (2u * g)) & 0x03030303u) | (((hm[j] >> (4u * h + g)) & 0x01010101u) << 2);
    }
    [[unroll]] for (uint c = 0u; c < NC; c++) {
        float s = 0.0;
        [[unroll]] for (uint g = 0u; g < 4u; g++) {
            const uvec2 x = xq(c, g);
            const int sq = dot4(t[g][1], x.y, dot4(t[g][0], x.x, 0));
            const int s1 = dot4(ONES, x.y, dot4(ONES, x.x, 0));
            s += xd(c, g) * a[g] * float(sq - 4 * s1);
        }
        g_acc[c] += s;
    }
}
#else
void unit(uint rb, uint u) {
    const uint bb = rb + 210u * (u >> 3), v = u & 7u, h = v >> 2, i = v & 3u;
    const uint wi = bb >> 2, s8 = (bb & 2u) * 8u;
    const uvec2 qa = w8(wi + 16u * h + 2u * i, s8);
    const uvec2 qb = w8(wi + 16u * h + 8u + 2u * i, s8);
    const uvec2 qh = w8(wi + 32u + 8u * h + 2u * i, s8);
    const uvec2 sc = w8(wi + 48u + 2u * h, s8);
    const float d = unpackHalf2x16(wdata[wi + 52u] >> s8).x;
    uint t[4][2];
    [[unroll]] for (uint j = 0u; j < 2u; j++) {
        const uint A = qa[j], B = qb[j], H = qh[j];
        t[0][j] = (A & 0x0F0F0F0Fu) | ((H << 4) & 0x30303030u) | 0x80808080u;
        t[1][j] = (B & 0x0F0F0F0Fu) | ((H << 2) & 0x30303030u) | 0x80808080u;
        t[2][j] = ((A >> 4) & 0x0F0F0F0Fu) | (H & 0x30303030u) | 0x80808080u;
        t[3][j] = ((B >> 4) & 0x0F0F0F0Fu) | ((H >> 2) & 0x30303030u) | 0x80808080u;
        [[unroll]] for (uint g = 0u; g < 4u; g++) t[g][j] = (t[g][j] - 0x20202020u) ^ 0x80808080u;
    }
    const int so = int(8u * (i >> 1));
    const float d0 = d * float(bitfieldExtract(int(sc.x), so, 8));
    const float d1 = d * float(bitfieldExtract(int(sc.x), so + 16, 8));
    const float d2 = d * float(bitfieldExtract(int(sc.y), so, 8));
    const float d3 = d * float(bitfieldExtract(int(sc.y), so + 16, 8));
    [[unroll]] for (uint c = 0u; c < NC; c++) {
        int s[4];
        [[unroll]] for (uint g = 0u; g < 4u; g++) {
            const uvec2 x = xq(c, g);
            s[g] = dot4(t[g][1], x.y, dot4(t[g][0], x.x, 0));
        }
        g_acc[c] += d0 * xd(c, 0u) * float(s[0]) + d1 * xd(c, 1u) * float(s[1]) +
                    d2 * xd(c, 2u) * float(s[2]) + d3 * xd(c, 3u) * float(s[3]);
    }
}
#endif

#else
#error "gemv_q8.glsl: no integer-dot gemv kernel for this type"
#endif

// Units a lane takes per loop trip (GEMV_UPT, gemv_decode.glsl's row loop): 2 for the types
// whose unit is at most 13.75 bytes (Q2_K 10.5, Q3_K 13.75, IQ1_S .. IQ3_S 6.25-13.75: with one
// unit a trip, a 64-lane row waits for all its loads once per 400-880 bytes), 1 otherwise; the
// rest of the row in single units after the loop (all of it at k = 2048, 64 units: one trip of
// single units, as before). Where X is float its 32 VGPRs a unit leave no room for a second unit's.
#if defined(TYPE_Q2_K) || defined(TYPE_Q3_K) || defined(TYPE_IQ1_S) || defined(TYPE_IQ1_M) ||     \
    defined(TYPE_IQ2_XXS) || defined(TYPE_IQ2_XS) || defined(TYPE_IQ2_S) || defined(TYPE_IQ3_XXS) || \
    defined(TYPE_IQ3_S)
#define GEMV_UPT 2u
#endif
