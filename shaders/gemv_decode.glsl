// gemv_decode.glsl - the per-type row loops of gemv.comp: branch-free decoding of GGUF blocks
// (spec §1.4) from whole words, one type per variant (-DTYPE_*; the IQ types' units are
// gemv_iq.glsl's).
//
// With -DQ8X the block types' loops are gemv_q8.glsl's (8-bit X, integer dot products) instead.
// The includer declares `wdata` / `wdata4` (W as words / 16-byte pieces), the spec constants WAL
// and GLU, g_wlast (the W window's last word), NC, g_acc[NC], g_up[NC], swap_up() (exchanges
// them), xv(c, e) (X elements e..e+3 of column c), fdot(w, x, acc) and fma4(w, e) (g_acc[c] +=
// dot(w, X[c][e..e+3]) for every column). It provides
//   void gemv_row(uint rb, uint rb2, uint lane, uint S)
// which adds to g_acc this lane's share (units lane, lane + S, ...) of the row starting at byte rb
// and, with GLU, to g_up that of the row at rb2, over the same X loads.
//
// Blocks of 18/22/34/210 bytes sit at 2-byte aligned addresses: a block at even byte bb is read as
// the words from bb >> 2 on and realigned by s8 = (bb & 2) * 8 bits (0 or 16), computed per lane,
// never branched on: realign() gives the word at byte 4i + s8 / 8 from words i and i + 1,
// realign2() the one 2 bytes further (s8 + 16 = 32 is a whole word: written as two shifts, each <
// 32). Signed values come straight from bitfieldExtract: q - 8 (Q4_0) is the nibble of q ^ 8 read
// as 4-bit two's complement, q - 32 (Q6_K) the 6-bit field of q ^ 32.

#if defined(TYPE_IQ1_S) || defined(TYPE_IQ1_M) || defined(TYPE_IQ2_XXS) || defined(TYPE_IQ2_XS) || \
    defined(TYPE_IQ2_S) || defined(TYPE_IQ3_XXS) || defined(TYPE_IQ3_S) || defined(TYPE_IQ4_NL) || \
    defined(TYPE_IQ4_XS)
#define GEMV_IQ 1 // the IQ types' units: gemv_iq.glsl
#endif

uint realign(uint lo, uint hi, uint s8) {
    return s8 == 0u ? lo : (lo >> 16u) | (hi << 16u);
}
uint realign2(uint lo, uint hi, uint s8) {
    return s8 == 0u ? (lo >> 16u) | (hi << 16u) : hi;
}

// the 16 bytes at byte rb + 16q (rb even; rb % 16 == 0 when WAL is set)
uvec4 w16(uint rb, uint q) {
    if (WAL != 0u) return wdata4[(rb >> 4) + q];
    const uint b = rb + 16u * q, i = b >> 2;
#if defined(TYPE_F32)
    return uvec4(wdata[i], wdata[i + 1u], wdata[i + 2u], wdata[i + 3u]); // 4-aligned rows
#else
    const uint s8 = (b & 2u) * 8u;
    const uint a0 = wdata[i], a1 = wdata[i + 1u], a2 = wdata[i + 2u], a3 = wdata[i + 3u];
    const uint a4 = wdata[min(i + 4u, g_wlast)]; // past the data only when s8 = 0 (unused then)
    return uvec4(realign(a0, a1, s8), realign(a1, a2, s8), realign(a2, a3, s8),
                 realign(a3, a4, s8));
#endif
}

// the 8 bytes at byte 4i + s8 / 8 (s8 = 0 or 16), from words i .. i + 2
uvec2 w8(uint i, uint s8) {
    const uint a0 = wdata[i], a1 = wdata[i + 1u], a2 = wdata[i + 2u];
    return uvec2(realign(a0, a1, s8), realign(a1, a2, s8));
}

#if defined(Q8X)
// ---- the integer-dot variants: 8-bit X (gemv_q8.glsl) ----
#include "gemv_q8.glsl"

#elif defined(TYPE_F32) || defined(TYPE_F16) || defined(TYPE_BF16)
float sx(uint c, uint e) { // X element e of column c
    return xdata[g_xb[c] + e];
}
// ---- float types: pieces of 16 bytes (PW elements), PT pieces a trip ----
#if defined(TYPE_F32)
#define PW 4u
#define PT 4u
void piece(uvec4 a, uint e) {
    fma4(uintBitsToFloat(a), e);
}
float elem(uint rb, uint k0) {
    return uintBitsToFloat(wdata[(rb >> 2) + k0]);
}
#else
#define PW 8u
#define PT 2u
#if defined(TYPE_F16)
vec2 h2f(uint v) {
    return unpackHalf2x16(v);
}
#else
vec2 h2f(uint v) {
    return vec2(uintBitsToFloat(v << 16), uintBitsToFloat(v & 0xFFFF0000u));
}
#endif
void piece(uvec4 a, uint e) {
    fma4(vec4(h2f(a.x), h2f(a.y)), e);
    fma4(vec4(h2f(a.z), h2f(a.w)), e + 4u);
}
float elem(uint rb, uint k0) {
    const uint b = rb + 2u * k0;
    return h2f(wdata[b >> 2] >> ((b & 2u) * 8u)).x;
}
#endif
void gemv_row(uint rb, uint rb2, uint lane, uint S) {
    const uint n = p.k / PW; // whole pieces
    uint t = 0u;
    for (; t + PT * S <= n; t += PT * S) { // uniform trip count
        uvec4 a[PT], b[PT];
        [[unroll]] for (uint j = 0u; j < PT; j++) a[j] = w16(rb, t + j * S + lane);
        if (GLU != 0u) [[unroll]]
            for (uint j = 0u; j < PT; j++) b[j] = w16(rb2, t + j * S + lane);
        [[unroll]] for (uint j = 0u; j < PT; j++) piece(a[j], PW * (t + j * S + lane));
        if (GLU != 0u) {
            swap_up();
            [[unroll]] for (uint j = 0u; j < PT; j++) piece(b[j], PW * (t + j * S + lane));
            swap_up();
        }
    }
    for (uint u = t + lane; u < n; u += S) {
        piece(w16(rb, u), PW * u);
        if (GLU != 0u) {
            swap_up();
            piece(w16(rb2, u), PW * u);
            swap_up();
        }
    }
    for (uint k0 = n * PW + lane; k0 < p.k; k0 += S) { // the last k % PW elements
        const float w = elem(rb, k0), w2 = GLU != 0u ? elem(rb2, k0) : 0.0;
        [[unroll]] for (uint c = 0u; c < NC; c++) {
            const float x = sx(c, k0);
            g_acc[c] += w * x;
            if (GLU != 0u) g_up[c] += w2 * x;
        }
    }
}

#else
// ---- block types: units of 32 weights, lane, lane + S, ... ----
// A unit's 32 X values per column are 8 slots of 4, slot t = X elements 4 xq(u, t) .. + 3. With
// one column they are loaded before the unit's weights are decoded, so that every load of a trip
// is issued before its first use (RADV's scheduler keeps that order; navi21 otherwise splits
// them, 2-4 vmcnt(0) a trip); with more columns they would take 32 VGPRs each, so they are loaded
// at use.
vec4 g_x[8];
uint g_u;
uint xq(uint u, uint t);
// X elements 4q .. 4q + 3 of column c. The aligned load indexes by the slot q itself: from an
// element index the compiler cannot fold (4q) >> 2 back into q (it wraps), so each slot got a
// shift and an add where it now gets an immediate load offset (~2.7 VALU per 256 weights).
vec4 xslot(uint c, uint q) {
    if (XAL != 0u) return xdata4[(g_xb[c] >> 2) + q];
    return xv(c, 4u * q);
}
void load_x(uint u) {
    g_u = u;
    if (NC == 1u) [[unroll]]
        for (uint t = 0u; t < 8u; t++) g_x[t] = xslot(0u, xq(u, t));
}
vec4 xs(uint c, uint t) { // X slot t of column c
    return NC == 1u ? g_x[t] : xslot(c, xq(g_u, t));
}
// g_acc[c] += dot(w, X slot t of column c)
void fmax(vec4 w, uint t) {
    [[unroll]] for (uint c = 0u; c < NC; c++) g_acc[c] = fdot(w, xs(c, t), g_acc[c]);
}
#if defined(GEMV_IQ) || defined(TYPE_Q4_0) || defined(TYPE_Q8_0) || defined(TYPE_Q4_1) ||          \
    defined(TYPE_Q5_0) || defined(TYPE_Q5_1)
uint xq(uint u, uint t) {
    return 8u * u + t;
}
#elif defined(TYPE_Q4_K) || defined(TYPE_Q5_K)
uint xq(uint u, uint t) { // slots 0..3: the low sub-block's 16, 4..7: the high one's (see unit)
    return 64u * (u >> 3) + 16u * ((u >> 1) & 3u) + 4u * (u & 1u) + 8u * (t >> 2) + (t & 3u);
}
#else // Q2_K, Q3_K, Q6_K: slot 2g + j = group g, word j (see unit)
uint xq(uint u, uint t) {
    const uint v = u & 7u;
    return 64u * (u >> 3) + 32u * (v >> 2) + 2u * (v & 3u) + 8u * (t >> 1) + (t & 1u);
}
#endif

#if defined(GEMV_IQ)
#include "gemv_iq.glsl"

#elif defined(TYPE_Q4_0) || defined(TYPE_Q8_0)
// one block: d:f16, then Q4_0 qs[16] (low nibbles elements 0..15, high 16..31, x = d * (q - 8))
// or Q8_0 qs[32] int8 (x = d * q); the quants start 2 bytes into the block
#if defined(TYPE_Q4_0)
#define BB 18u
#define NW 5u
#else
#define BB 34u
#define NW 9u
#endif
void unit(uint rb, uint u) {
    const uint bb = rb + BB * u, i = bb >> 2, s8 = (bb & 2u) * 8u;
    uint w[NW];
    [[unroll]] for (uint j = 0u; j < NW; j++) w[j] = wdata[i + j];
    const float d = unpackHalf2x16(w[0] >> s8).x;
    float s[NC];
    [[unroll]] for (uint c = 0u; c < NC; c++) s[c] = 0.0;
    [[unroll]] for (uint j = 0u; j < NW - 1u; j++) {
        const uint q = realign2(w[j], w[j + 1u], s8);
#if defined(TYPE_Q4_0)
        const int v = int(q ^ 0x88888888u);
        const vec4 lo = vec4(bitfieldExtract(v, 0, 4), bitfieldExtract(v, 8, 4),
                             bitfieldExtract(v, 16, 4), bitfieldExtract(v, 24, 4));
        const vec4 hi = vec4(bitfieldExtract(v, 4, 4), bitfieldExtract(v, 12, 4),
                             bitfieldExtract(v, 20, 4), bitfieldExtract(v, 28, 4));
        [[unroll]] for (uint c = 0u; c < NC; c++) s[c] =
            fdot(hi, xs(c, 4u + j), fdot(lo, xs(c, j), s[c]));
#else
        const int v = int(q);
        const vec4 qv = vec4(bitfieldExtract(v, 0, 8), bitfieldExtract(v, 8, 8),
                             bitfieldExtract(v, 16, 8), bitfieldExtract(v, 24, 8));
        [[unroll]] for (uint c = 0u; c < NC; c++) s[c] = fdot(qv, xs(c, j), s[c]);
#endif
    }
    [[unroll]] for (uint c = 0u; c < NC; c++) g_acc[c] += d * s[c];
}

#elif defined(TYPE_Q4_1)
// d:f16, m:f16, qs[16]; x = d * q + m (20-byte blocks: at 2-byte aligned addresses too)
void unit(uint rb, uint u) {
    const uint bb = rb + 20u * u, i = bb >> 2, s8 = (bb & 2u) * 8u;
    uint w[6];
    [[unroll]] for (uint j = 0u; j < 5u; j++) w[j] = wdata[i + j];
    w[5] = wdata[min(i + 5u, g_wlast)]; // past the data only when s8 = 0 (unused then)
    const vec2 dm = unpackHalf2x16(realign(w[0], w[1], s8));
    [[unroll]] for (uint j = 0u; j < 4u; j++) {
        const uint q = realign(w[j + 1u], w[j + 2u], s8);
        fmax(vec4(uvec4(q, q >> 8, q >> 16, q >> 24) & 0xFu) * dm.x + dm.y, j);
        fmax(vec4(uvec4(q >> 4, q >> 12, q >> 20, q >> 28) & 0xFu) * dm.x + dm.y, 4u + j);
    }
}

#elif defined(TYPE_Q5_0) || defined(TYPE_Q5_1)
// Q5_0: d:f16, qh:u32 (bit j = 5th bit of element j), qs[16]; x = d * (q - 16) (22-byte blocks).
// Q5_1: d:f16, m:f16, qh, qs; x = d * q + m (24-byte blocks). The 4 bits of qh for 4 elements
// go to bit 4 of their bytes by one multiply: bit b of h lands at b + 7b (the copies at 0, 7, 14,
// 21 never overlap). Q5_0 reads q - 16 as the 5-bit field of q ^ 16 (qh inverted once).
uint hbytes(uint qh, uint j) { // bits j..j+3 of qh at bit 4 of bytes 0..3
    return ((((qh >> j) & 0xFu) * 0x00204081u) & 0x01010101u) << 4;
}
void unit(uint rb, uint u) {
#if defined(TYPE_Q5_0)
    const uint bb = rb + 22u * u, i = bb >> 2, s8 = (bb & 2u) * 8u;
    uint w[6];
    [[unroll]] for (uint j = 0u; j < 6u; j++) w[j] = wdata[i + j];
    const float d = unpackHalf2x16(w[0] >> s8).x;
    const uint qh = ~realign2(w[0], w[1], s8);
    float s[NC];
    [[unroll]] for (uint c = 0u; c < NC; c++) s[c] = 0.0;
    [[unroll]] for (uint j = 0u; j < 4u; j++) {
        const uint q = realign2(w[j + 1u], w[j + 2u], s8);
        const int lo = int((q & 0x0F0F0F0Fu) | hbytes(qh, 4u * j));
        const int hi = int(((q >> 4) & 0x0F0F0F0Fu) | hbytes(qh, 16u + 4u * j));
        const vec4 vl = vec4(bitfieldExtract(lo, 0, 5), bitfieldExtract(lo, 8, 5),
                             bitfieldExtract(lo, 16, 5), bitfieldExtract(lo, 24, 5));
        const vec4 vh = vec4(bitfieldExtract(hi, 0, 5), bitfieldExtract(hi, 8, 5),
                             bitfieldExtract(hi, 16, 5), bitfieldExtract(hi, 24, 5));
        [[unroll]] for (uint c = 0u; c < NC; c++) s[c] =
            fdot(vh, xs(c, 4u + j), fdot(vl, xs(c, j), s[c]));
    }
    [[unroll]] for (uint c = 0u; c < NC; c++) g_acc[c] += d * s[c];
#else
    const uint bb = rb + 24u * u, i = bb >> 2, s8 = (bb & 2u) * 8u;
    uint w[7];
    [[unroll]] for (uint j = 0u; j < 6u; j++) w[j] = wdata[i + j];
    w[6] = wdata[min(i + 6u, g_wlast)]; // past the data only when s8 = 0 (unused then)
    const vec2 dm = unpackHalf2x16(realign(w[0], w[1], s8));
    const uint qh = realign(w[1], w[2], s8);
    [[unroll]] for (uint j = 0u; j < 4u; j++) {
        const uint q = realign(w[j + 2u], w[j + 3u], s8);
        const uint lo = (q & 0x0F0F0F0Fu) | hbytes(qh, 4u * j);
        const uint hi = ((q >> 4) & 0x0F0F0F0Fu) | hbytes(qh, 16u + 4u * j);
        fmax(vec4(uvec4(lo, lo >> 8, lo >> 16, lo >> 24) & 0xFFu) * dm.x + dm.y, j);
        fmax(vec4(uvec4(hi, hi >> 8, hi >> 16, hi >> 24) & 0xFFu) * dm.x + dm.y, 4u + j);
    }
#endif
}

#elif defined(TYPE_Q2_K) || defined(TYPE_Q3_K)
// Element 128h + 32g + l of a block (h < 2, g < 4, l < 32) has its 2 low bits at bits 2g of
// qs[32h + l]. Unit u: block u / 8, v = u % 8, h = v / 4, positions l = 8i .. 8i + 7 (i = v % 4) of
// the four groups g: 8 bytes of qs; its 4 (sub-block) scales are bytes 2g + i / 2 of 8 from 8h
// (Q2_K) or decoded from the 12 scale bytes (Q3_K). Every piece starts at a multiple of 4 bytes
// from the block, so one s8 realigns all of them (as for Q6_K).
#if defined(TYPE_Q2_K)
// scales[16] (low nibble scale, high nibble min), qs[64], d:f16, dmin:f16 (84 bytes);
// x = d * (sc & 15) * q - dmin * (sc >> 4)
void unit(uint rb, uint u) {
    const uint bb = rb + 84u * (u >> 3), v = u & 7u, h = v >> 2, i = v & 3u;
    const uint wi = bb >> 2, s8 = (bb & 2u) * 8u;
    const uvec2 q = w8(wi + 4u + 8u * h + 2u * i, s8);
    const uvec2 sc = w8(wi + 2u * h, s8);
    const vec2 dm = unpackHalf2x16(realign(wdata[wi + 20u], wdata[min(wi + 21u, g_wlast)], s8));
    const int so = int(8u * (i >> 1));
    [[unroll]] for (uint g = 0u; g < 4u; g++) {
        const uint b = uint(bitfieldExtract(g < 2u ? sc.x : sc.y, so + int(16u * (g & 1u)), 8));
        const float a = dm.x * float(b & 15u), m = -dm.y * float(b >> 4);
        [[unroll]] for (uint j = 0u; j < 2u; j++) {
            const uint t = (q[j] >> (2u * g)) & 0x03030303u;
            fmax(vec4(uvec4(t, t >> 8, t >> 16, t >> 24) & 0xFFu) * a + m, 2u * g + j);
        }
    }
}
#else
// hmask[32], qs[64], scales[12] (16 6-bit signed scales), d:f16 (110 bytes);
// x = d * s * (q2 + 4 * hbit - 4), read as the 3-bit field of q2 | (!hbit << 2). The scale of
// sub-block sb = 8h + 2g + i / 2: low 4 bits from byte 2g + i / 2 of the first 8 (nibble h), high
// 2 bits from byte 8 + (2g + i / 2) % 4 at bit 2 (2h + g / 2).
void unit(uint rb, uint u) {
    const uint bb = rb + 110u * (u >> 3), v = u & 7u, h = v >> 2, i = v & 3u;
    const uint wi = bb >> 2, s8 = (bb & 2u) * 8u;
    const uvec2 q = w8(wi + 8u + 8u * h + 2u * i, s8);
    const uvec2 hm = ~w8(wi + 2u * i, s8);
    const uint a24 = wdata[wi + 24u], a25 = wdata[wi + 25u], a26 = wdata[wi + 26u];
    const uint a27 = wdata[wi + 27u];
    const uint s0 = realign(a24, a25, s8), s1 = realign(a25, a26, s8), s2 = realign(a26, a27, s8);
    const float d = unpackHalf2x16(a27 >> s8).x;
    [[unroll]] for (uint g = 0u; g < 4u; g++) {
        const uint k = 2u * g + (i >> 1); // byte of the first 8 scale bytes (g < 2: s0, else s1)
        const uint lo4 = ((g < 2u ? s0 : s1) >> (8u * (k & 3u) + 4u * h)) & 15u;
        const uint hi2 = (s2 >> (8u * (k & 3u) + 2u * (2u * h + (g >> 1)))) & 3u;
        const float a = d * float(int(lo4 | (hi2 << 4)) - 32);
        float sg[NC];
        [[unroll]] for (uint c = 0u; c < NC; c++) sg[c] = 0.0;
        [[unroll]] for (uint j = 0u; j < 2u; j++) {
            const int t = int(((q[j] >> (2u * g)) & 0x03030303u) |
                              (((hm[j] >> (4u * h + g)) & 0x01010101u) << 2));
            const vec4 qv = vec4(bitfieldExtract(t, 0, 3), bitfieldExtract(t, 8, 3),
                                 bitfieldExtract(t, 16, 3), bitfieldExtract(t, 24, 3));
            [[unroll]] for (uint c = 0u; c < NC; c++) sg[c] = fdot(qv, xs(c, 2u * g + j), sg[c]);
        }
        [[unroll]] for (uint c = 0u; c < NC; c++) g_acc[c] += a * sg[c];
    }
}
#endif

#elif defined(TYPE_Q4_K) || defined(TYPE_Q5_K)
// d:f16, dmin:f16, scales[12] (8 6-bit scales and mins), [Q5_K: qh[32]], qs[128]; x = d * sc * q -
// dmin * m. Unit u: block u / 8, sub-block pair c = (u / 2) % 4 (qs bytes 32c .. 32c + 31: low
// nibbles sub-block 2c, high 2c + 1), half h = u % 2 of those bytes: 16 elements of each sub-block.
// The header (d, dmin, the 12 scale bytes) is one 16-byte piece: the 6-bit scale and min of
// sub-block sb are byte sb of s = y & 0x3F3F3F3F, m = z & ... (sb < 4) or, for sb >= 4, of
// (w & 0x0F0F0F0F) | ((y >> 2) & 0x30303030) and ((w >> 4) & 0x0F0F0F0F) | ((z >> 2) & ...).
#if defined(TYPE_Q4_K)
#define BQ 9u // 16-byte pieces per block
#define QS 1u // the piece where qs starts
#else
#define BQ 11u
#define QS 3u
#endif
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
    const float b0 = -dm.y * float(bitfieldExtract(ms, sh, 8));
    const float b1 = -dm.y * float(bitfieldExtract(ms, sh + 8, 8));
    [[unroll]] for (uint j = 0u; j < 4u; j++) {
        uint lo = q[j] & 0x0F0F0F0Fu, hi = (q[j] >> 4) & 0x0F0F0F0Fu;
#if defined(TYPE_Q5_K)
        lo |= ((qh[j] >> (2u * c)) & 0x01010101u) << 4;
        hi |= ((qh[j] >> (2u * c + 1u)) & 0x01010101u) << 4;
#endif
        fmax(vec4(uvec4(lo, lo >> 8, lo >> 16, lo >> 24) & 0xFFu) * a0 + b0, j);
        fmax(vec4(uvec4(hi, hi >> 8, hi >> 16, hi >> 24) & 0xFFu) * a1 + b1, 4u + j);
    }
}

#elif defined(TYPE_Q6_K)
// ql[128], qh[64], scales[16] int8, d:f16 (210-byte blocks); x = d * sc * (q - 32). Element
// 128h + 32g + l (h < 2, g < 4, l < 32): low 4 bits from ql[64h + l + 32 (g & 1)] (nibble g / 2),
// high 2 from qh[32h + l] (bits 2g), scale sc[8h + 2g + l / 16]. Unit u: block u / 8, v = u % 8,
// h = v / 4, positions l = 8i .. 8i + 7 (i = v % 4) of the four groups g: 8 bytes of each ql half,
// 8 of qh; its 4 scales lie in the 8 bytes from 192 + 8h. Every piece starts at a multiple of 4
// bytes from the block, so one s8 realigns all of them.
void unit(uint rb, uint u) {
    const uint bb = rb + 210u * (u >> 3), v = u & 7u, h = v >> 2, i = v & 3u;
    const uint wi = bb >> 2, s8 = (bb & 2u) * 8u;
    const uvec2 qa = w8(wi + 16u * h + 2u * i, s8);
    const uvec2 qb = w8(wi + 16u * h + 8u + 2u * i, s8);
    const uvec2 qh = w8(wi + 32u + 8u * h + 2u * i, s8);
    const uvec2 sc = w8(wi + 48u + 2u * h, s8);
    const float d = unpackHalf2x16(wdata[wi + 52u] >> s8).x;
    float s[4][NC];
    [[unroll]] for (uint g = 0u; g < 4u; g++) [[unroll]] for (uint c = 0u; c < NC; c++) s[g][c] =
        0.0;
    [[unroll]] for (uint j = 0u; j < 2u; j++) {
        const uint A = qa[j], B = qb[j], H = qh[j] ^ 0xAAAAAAAAu; // bit 5 of every q flipped
        uint g4[4];
        g4[0] = (A & 0x0F0F0F0Fu) | ((H << 4) & 0x30303030u);
        g4[1] = (B & 0x0F0F0F0Fu) | ((H << 2) & 0x30303030u);
        g4[2] = ((A >> 4) & 0x0F0F0F0Fu) | (H & 0x30303030u);
        g4[3] = ((B >> 4) & 0x0F0F0F0Fu) | ((H >> 2) & 0x30303030u);
        [[unroll]] for (uint g = 0u; g < 4u; g++) {
            const int t = int(g4[g]);
            const vec4 qv = vec4(bitfieldExtract(t, 0, 6), bitfieldExtract(t, 8, 6),
                                 bitfieldExtract(t, 16, 6), bitfieldExtract(t, 24, 6));
            [[unroll]] for (uint c = 0u; c < NC; c++) s[g][c] =
                fdot(qv, xs(c, 2u * g + j), s[g][c]);
        }
    }
    const int so = int(8u * (i >> 1));
    const float d0 = d * float(bitfieldExtract(int(sc.x), so, 8));
    const float d1 = d * float(bitfieldExtract(int(sc.x), so + 16, 8));
    const float d2 = d * float(bitfieldExtract(int(sc.y), so, 8));
    const float d3 = d * float(bitfieldExtract(int(sc.y), so + 16, 8));
    [[unroll]] for (uint c = 0u; c < NC; c++) g_acc[c] +=
        d0 * s[0][c] + d1 * s[1][c] + d2 * s[2][c] + d3 * s[3][c];
}

#else
#error "gemv_decode.glsl: no gemv kernel for this type"
#endif
#endif

#if defined(Q8X) || !(defined(TYPE_F32) || defined(TYPE_F16) || defined(TYPE_BF16))
// ---- the block types' row loop (float or 8-bit X): units lane, lane + S, ..., GEMV_UPT of them
// a lane per trip (gemv_q8.glsl sets 2 for its smallest units), the rest single after it ----
#ifndef GEMV_UPT
#define GEMV_UPT 1u
#endif
void row_unit(uint rb, uint rb2, uint u) {
#if defined(GEMV_IQ) // the IQ units load X themselves, after their weight words (gemv_iq.glsl)
    unit(rb, u, true);
    if (GLU != 0u) {
        swap_up();
        unit(rb2, u, false);
        swap_up();
    }
#else
    load_x(u);
    unit(rb, u);
    if (GLU != 0u) {
        swap_up();
        unit(rb2, u);
        swap_up();
    }
#endif
}
void gemv_row(uint rb, uint rb2, uint lane, uint S) {
    const uint n = p.k / 32u;
    uint t = 0u;
    if (GEMV_UPT > 1u)
        for (; t + GEMV_UPT * S <= n; t += GEMV_UPT * S) // uniform trip count
            [[unroll]] for (uint j = 0u; j < GEMV_UPT; j++) row_unit(rb, rb2, t + j * S + lane);
    for (uint u = t + lane; u < n; u += S) row_unit(rb, rb2, u);
}
#endif
