// gemv_iq.glsl - gemv.comp's units for the IQ types (ggml's importance-matrix quants; block
// layouts in core/ref_quant.c's top comment), included by gemv_decode.glsl for -DTYPE_IQ*.
//
// A unit is one run of 32 weights (block u / 8, run ib = u % 8; IQ4_NL: one whole 18-byte block),
// X slot t = elements 32u + 4t .. + 3. Every block sits at a 2-byte aligned address: a unit reads
// the whole words that hold its run's fields (the f16 d, the run's index / sign / scale bytes,
// never the rest of the block) once, then realigns them by the block's parity s8 = (bb & 2) * 8
// with shifts (realign / realign2 of gemv_decode.glsl: a field at a multiple of 4 bytes from the
// block / 2 bytes past one), or, for a single byte or u16 at a per-lane offset, shifts the word
// that holds it. Every scale, sign and index field of the run is decoded from those registers
// with bit operations; the grid points (shaders/iq_grids.h) are words of the grid buffer
// iq_grid (core/iq_gpu.c, bound after gemv.comp's bindings), looked up once per 8 (IQ2_*), 4
// (IQ3_*, IQ1_*) or 2 (IQ4_*: a byte of two nibbles) weights after all of the unit's block
// loads. Signs are applied to the grid's bytes as integers (iq_neg: the negated bytes' two's
// complement, no carries since no grid byte is 0), so each weight costs one signed-byte extract
// and one conversion. The run's scale multiplies its dot product once (twice for the types with
// a scale per 16 weights).
// With -DQ8X (gemv_q8_<type>, included by gemv_q8.glsl) X is 8-bit (matmul_common.h's Q8X: unit
// u is X block u) and those signed grid bytes (IQ1: the values + 1, with X's group sums for the
// offset; IQ4: the int8 levels) meet it in 4x8-bit dot products (fin1 / fin2 / fin_iq1: exact
// int32 sums, scaled once by the run's and X's scales); the units' loads and decoding are the
// same in both modes.

#ifdef MUL_ID
#define IQ_GRID_BINDING 5
#else
#define IQ_GRID_BINDING 3
#endif
layout(std430, set = 0, binding = IQ_GRID_BINDING) readonly buffer IQG {
    uint iq_grid[];
};

// the byte / u16 at even or odd byte address b (u16: b even)
uint iq_b8(uint b) {
    return (wdata[b >> 2] >> ((b & 3u) * 8u)) & 0xFFu;
}
uint iq_b16(uint b) {
    return (wdata[b >> 2] >> ((b & 2u) * 8u)) & 0xFFFFu;
}
// the 4 signed bytes of v as floats
vec4 i8v(uint v) {
    const int s = int(v);
    return vec4(bitfieldExtract(s, 0, 8), bitfieldExtract(s, 8, 8), bitfieldExtract(s, 16, 8),
                bitfieldExtract(s, 24, 8));
}
// the 4 unsigned bytes of v as floats
vec4 u8v(uint v) {
    return vec4(uvec4(v, v >> 8, v >> 16, v >> 24) & 0xFFu);
}
// the bytes of g negated where bits 0..3 of s are set (bit j: byte j); bytes of g never 0
uint iq_neg(uint g, uint s) {
    const uint m = ((s & 15u) * 0x00204081u) & 0x01010101u;
    return (g ^ (m * 255u)) + m;
}
// the 8 sign bits of a 7-bit sign index (bit 7 = parity: ggml's ksigns_iq2xs)
uint iq_ks(uint s7) {
    s7 &= 127u;
    return s7 | ((uint(bitCount(s7)) & 1u) << 7);
}
#define IQ_ZERO(s)                                                                                 \
    float s[NC];                                                                                   \
    [[unroll]] for (uint c = 0u; c < NC; c++) s[c] = 0.0
#if defined(Q8X)
// ---- 8-bit X (gemv_q8.glsl's Q8X format): unit u = X block u, slot t = its word t (load_x, xw:
// gemv_q8.glsl) ----
float xd(uint c) { // X's block scale of column c
    return NC == 1u ? g_h.x : xh4[g_xb[c] + 3u * g_u + 2u].x;
}
// g_acc[c] += X's scale * (a0 * dot(wq[0..3], X words 0..3) + a1 * dot(wq[4..7], X words 4..7)),
// wq the unit's weights as 4 signed bytes a word (exact int32 sums)
void fin2(uint wq[8], float a0, float a1) {
    [[unroll]] for (uint c = 0u; c < NC; c++) {
        int s0 = 0, s1 = 0;
        [[unroll]] for (uint t = 0u; t < 4u; t++) {
            s0 = dot4(wq[t], xw(c, t), s0);
            s1 = dot4(wq[4u + t], xw(c, 4u + t), s1);
        }
        g_acc[c] += xd(c) * (a0 * float(s0) + a1 * float(s1));
    }
}
void fin1(uint wq[8], float a) {
    [[unroll]] for (uint c = 0u; c < NC; c++) {
        int s = 0;
        [[unroll]] for (uint t = 0u; t < 8u; t++) s = dot4(wq[t], xw(c, t), s);
        g_acc[c] += xd(c) * a * float(s);
    }
}
// IQ1: wq the grid values + 1 (bytes 0..2), off[l] the offset of group l (slots 2l, 2l + 1: delta
// - 1), a0 / a1 the scales of groups 0-1 / 2-3; X's sum over a group from a dot product with ones
void fin_iq1(uint wq[8], float off[4], float a0, float a1) {
    [[unroll]] for (uint c = 0u; c < NC; c++) {
        float r0 = 0.0, r1 = 0.0;
        [[unroll]] for (uint l = 0u; l < 4u; l++) {
            const uint x0 = xw(c, 2u * l), x1 = xw(c, 2u * l + 1u);
            const int v = dot4(wq[2u * l + 1u], x1, dot4(wq[2u * l], x0, 0));
            const int n = dot4(0x01010101u, x1, dot4(0x01010101u, x0, 0));
            const float g = float(v) + off[l] * float(n);
            if (l < 2u)
                r0 += g;
            else
                r1 += g;
        }
        g_acc[c] += xd(c) * (a0 * r0 + a1 * r1);
    }
}
#else
// ---- float X ----
// s[c] += dot(w, X slot t of column c)
void sdot(inout float s[NC], vec4 w, uint t) {
    [[unroll]] for (uint c = 0u; c < NC; c++) s[c] = fdot(w, xs(c, t), s[c]);
}
// g_acc[c] += a * s[c]
void acc1(float s[NC], float a) {
    [[unroll]] for (uint c = 0u; c < NC; c++) g_acc[c] += a * s[c];
}
// g_acc[c] += a0 * dot(wq[0..3], X slots 0..3) + a1 * dot(wq[4..7], X slots 4..7), wq the unit's
// weights as 4 signed bytes a word
void fin2(uint wq[8], float a0, float a1) {
    IQ_ZERO(s0);
    IQ_ZERO(s1);
    [[unroll]] for (uint t = 0u; t < 4u; t++) {
        sdot(s0, i8v(wq[t]), t);
        sdot(s1, i8v(wq[4u + t]), 4u + t);
    }
    acc1(s0, a0);
    acc1(s1, a1);
}
void fin1(uint wq[8], float a) {
    IQ_ZERO(s);
    [[unroll]] for (uint t = 0u; t < 8u; t++) sdot(s, i8v(wq[t]), t);
    acc1(s, a);
}
// IQ1: wq the grid values + 1 (bytes 0..2), off[l] the offset of group l (slots 2l, 2l + 1: delta
// - 1), a0 / a1 the scales of groups 0-1 / 2-3
void fin_iq1(uint wq[8], float off[4], float a0, float a1) {
    IQ_ZERO(s0);
    IQ_ZERO(s1);
    [[unroll]] for (uint t = 0u; t < 4u; t++) {
        sdot(s0, u8v(wq[t]) + off[t >> 1], t);
        sdot(s1, u8v(wq[4u + t]) + off[2u + (t >> 1)], 4u + t);
    }
    acc1(s0, a0);
    acc1(s1, a1);
}
#endif

#if defined(TYPE_IQ2_XXS) || defined(TYPE_IQ2_XS) || defined(TYPE_IQ3_XXS)
// IQ2_XXS (66 bytes): d @0, run ib @2 + 8ib: 4 grid index bytes, u32 aux (signs s7 of group l at
// bits 7l, scale 28-31); x = d (0.5 + s) / 4 grid sign.
// IQ2_XS (74): d @0, the same 8 bytes are 4 u16 q (index q & 511, signs s7 = q >> 9), scales[ib]
// @66 + ib (nibble l / 2); x = d (0.5 + s) / 4 grid sign.
// IQ3_XXS (98): d @0, run ib's 8 index bytes (grid points of 4) @2 + 8ib, u32 aux @66 + 4ib
// (signs s7 of group l at bits 7l, scale 28-31); x = d (0.5 + s) / 2 grid sign.
#if defined(TYPE_IQ2_XXS)
#define QB 66u
#elif defined(TYPE_IQ2_XS)
#define QB 74u
#else
#define QB 98u
#endif
void unit(uint rb, uint u, bool lx) {
    const uint bb = rb + QB * (u >> 3), ib = u & 7u, wi = bb >> 2, s8 = (bb & 2u) * 8u;
    const uint a0 = wdata[wi], b0 = wdata[wi + 2u * ib], b1 = wdata[wi + 2u * ib + 1u];
    const uint b2 = wdata[wi + 2u * ib + 2u];
#if defined(TYPE_IQ2_XS)
    const uint sc = iq_b8(bb + 66u + ib);
#elif defined(TYPE_IQ3_XXS)
    const uint c0 = wdata[wi + 16u + ib], c1 = wdata[wi + 17u + ib];
#endif
    if (lx) load_x(u); // X after the weights: one wait for both before the grid loads
    const float d = unpackHalf2x16(a0 >> s8).x;
    const uint q0 = realign2(b0, b1, s8), q1 = realign2(b1, b2, s8);
#if defined(TYPE_IQ2_XXS)
    uint gw[8]; // every grid load of the unit first: one wait for them all
    [[unroll]] for (uint l = 0u; l < 4u; l++) {
        const uint idx = (q0 >> (8u * l)) & 255u;
        gw[2u * l] = iq_grid[2u * idx];
        gw[2u * l + 1u] = iq_grid[2u * idx + 1u];
    }
    uint wq[8];
    [[unroll]] for (uint l = 0u; l < 4u; l++) {
        const uint sg = iq_ks(q1 >> (7u * l));
        wq[2u * l] = iq_neg(gw[2u * l], sg);
        wq[2u * l + 1u] = iq_neg(gw[2u * l + 1u], sg >> 4);
    }
    fin1(wq, d * (0.5 + float(q1 >> 28)) * 0.25);
#elif defined(TYPE_IQ2_XS)
    uint gw[8]; // every grid load of the unit first: one wait for them all
    [[unroll]] for (uint l = 0u; l < 4u; l++) {
        const uint idx = ((l < 2u ? q0 : q1) >> (16u * (l & 1u))) & 511u;
        gw[2u * l] = iq_grid[2u * idx];
        gw[2u * l + 1u] = iq_grid[2u * idx + 1u];
    }
    uint wq[8];
    [[unroll]] for (uint l = 0u; l < 4u; l++) {
        const uint sg = iq_ks(((l < 2u ? q0 : q1) >> (16u * (l & 1u))) >> 9);
        wq[2u * l] = iq_neg(gw[2u * l], sg);
        wq[2u * l + 1u] = iq_neg(gw[2u * l + 1u], sg >> 4);
    }
    fin2(wq, d * (0.5 + float(sc & 15u)) * 0.25, d * (0.5 + float(sc >> 4)) * 0.25);
#else
    const uint aux = realign2(c0, c1, s8);
    uint gw[8]; // every grid load of the unit first: one wait for them all
    [[unroll]] for (uint q = 0u; q < 8u; q++) gw[q] =
        iq_grid[((q < 4u ? q0 : q1) >> (8u * (q & 3u))) & 255u];
    uint wq[8];
    [[unroll]] for (uint l = 0u; l < 4u; l++) {
        const uint sg = iq_ks(aux >> (7u * l));
        wq[2u * l] = iq_neg(gw[2u * l], sg);
        wq[2u * l + 1u] = iq_neg(gw[2u * l + 1u], sg >> 4);
    }
    fin1(wq, d * (0.5 + float(aux >> 28)) * 0.5);
#endif
}

#elif defined(TYPE_IQ2_S)
// 82 bytes: d @0, qs[4ib + l] @2 + 4ib (index bits 0-7), signs[4ib + l] @34 + 4ib (8 sign bits),
// qh[ib] @66 + ib (bits 2l, 2l + 1: index bits 8-9), scales[ib] @74 + ib (nibble l / 2)
void unit(uint rb, uint u, bool lx) {
    const uint bb = rb + 82u * (u >> 3), ib = u & 7u, wi = bb >> 2, s8 = (bb & 2u) * 8u;
    const uint a0 = wdata[wi], b0 = wdata[wi + ib], b1 = wdata[wi + ib + 1u];
    const uint c0 = wdata[wi + 8u + ib], c1 = wdata[wi + 9u + ib];
    const uint qh = iq_b8(bb + 66u + ib), sc = iq_b8(bb + 74u + ib);
    if (lx) load_x(u); // X after the weights: one wait for both before the grid loads
    const float d = unpackHalf2x16(a0 >> s8).x;
    const uint qs = realign2(b0, b1, s8), sgn = realign2(c0, c1, s8);
    uint gw[8]; // every grid load of the unit first: one wait for them all
    [[unroll]] for (uint l = 0u; l < 4u; l++) {
        const uint idx = ((qs >> (8u * l)) & 255u) | (((qh >> (2u * l)) & 3u) << 8);
        gw[2u * l] = iq_grid[2u * idx];
        gw[2u * l + 1u] = iq_grid[2u * idx + 1u];
    }
    uint wq[8];
    [[unroll]] for (uint l = 0u; l < 4u; l++) {
        const uint sg = sgn >> (8u * l);
        wq[2u * l] = iq_neg(gw[2u * l], sg);
        wq[2u * l + 1u] = iq_neg(gw[2u * l + 1u], sg >> 4);
    }
    fin2(wq, d * (0.5 + float(sc & 15u)) * 0.25, d * (0.5 + float(sc >> 4)) * 0.25);
}

#elif defined(TYPE_IQ3_S)
// 110 bytes: d @0, qs[8ib + q] @2 + 8ib (index bits 0-7 of grid point q of the run), qh[ib]
// @66 + ib (bit q: index bit 8), signs[4ib + l] @74 + 4ib, scales[ib / 2] @106 + ib / 2 (nibble
// ib % 2); x = d (1 + 2s) grid sign
void unit(uint rb, uint u, bool lx) {
    const uint bb = rb + 110u * (u >> 3), ib = u & 7u, wi = bb >> 2, s8 = (bb & 2u) * 8u;
    const uint a0 = wdata[wi], b0 = wdata[wi + 2u * ib], b1 = wdata[wi + 2u * ib + 1u];
    const uint b2 = wdata[wi + 2u * ib + 2u];
    const uint c0 = wdata[wi + 18u + ib], c1 = wdata[wi + 19u + ib];
    const uint qh = iq_b8(bb + 66u + ib), sc = iq_b8(bb + 106u + (ib >> 1));
    if (lx) load_x(u); // X after the weights: one wait for both before the grid loads
    const float d = unpackHalf2x16(a0 >> s8).x;
    const uint q0 = realign2(b0, b1, s8), q1 = realign2(b1, b2, s8), sgn = realign2(c0, c1, s8);
    uint gw[8]; // every grid load of the unit first: one wait for them all
    [[unroll]] for (uint q = 0u; q < 8u; q++) gw[q] =
        iq_grid[(((q < 4u ? q0 : q1) >> (8u * (q & 3u))) & 255u) | (((qh >> q) & 1u) << 8)];
    uint wq[8];
    [[unroll]] for (uint q = 0u; q < 8u; q++) wq[q] = iq_neg(gw[q], sgn >> (4u * q));
    fin1(wq, d * float(1u + 2u * ((sc >> (4u * (ib & 1u))) & 15u)));
}

#elif defined(TYPE_IQ1_S) || defined(TYPE_IQ1_M)
// wq[2l + hf]: elements 4hf .. 4hf + 3 of grid point gw[l] (nibbles value + 1) as bytes
void iq1_bytes(uint gw[4], out uint wq[8]) {
    [[unroll]] for (uint l = 0u; l < 4u; l++) {
        wq[2u * l] = gw[l] & 0x0F0F0F0Fu;
        wq[2u * l + 1u] = (gw[l] >> 4) & 0x0F0F0F0Fu;
    }
}
#if defined(TYPE_IQ1_S)
// 50 bytes: d @0, qs[4ib + l] @2 + 4ib (index bits 0-7), qh u16 [ib] @34 + 2ib (index bits 8-10
// of group l at 3l, scale s at 12-14, bit 15 the sign of delta = 1/8); x = d (2s + 1) (grid +-
// 1/8)
void unit(uint rb, uint u, bool lx) {
    const uint bb = rb + 50u * (u >> 3), ib = u & 7u, wi = bb >> 2, s8 = (bb & 2u) * 8u;
    const uint a0 = wdata[wi], b0 = wdata[wi + ib], b1 = wdata[wi + ib + 1u];
    const uint h = iq_b16(bb + 34u + 2u * ib);
    if (lx) load_x(u); // X after the weights: one wait for both before the grid loads
    const float d = unpackHalf2x16(a0 >> s8).x;
    const uint qs = realign2(b0, b1, s8);
    const float off = (h & 0x8000u) != 0u ? -1.125 : -0.875;
    uint gw[4]; // every grid load of the unit first: one wait for them all
    [[unroll]] for (uint l = 0u; l < 4u; l++) gw[l] =
        iq_grid[((qs >> (8u * l)) & 255u) | (((h >> (3u * l)) & 7u) << 8)];
    uint wq[8];
    iq1_bytes(gw, wq);
    const float offs[4] = float[4](off, off, off, off), dl = d * float(2u * ((h >> 12) & 7u) + 1u);
    fin_iq1(wq, offs, dl, dl);
}
#else
// 56 bytes: qs[4ib + l] @4ib, qh[2ib + l / 2] @32 + 2ib (nibble l % 2: index bits 8-10, bit 3
// the sign of delta), u16 sc[4] @48 (3-bit s of group l of run ib at bits 6 (ib % 2) + 3 (l / 2)
// of sc[ib / 2]; bits 12-15 of sc[0..3] are the nibbles of the f16 d); x = d (2s + 1) (grid +-
// 1/8)
void unit(uint rb, uint u, bool lx) {
    const uint bb = rb + 56u * (u >> 3), ib = u & 7u, wi = bb >> 2, s8 = (bb & 2u) * 8u;
    const uint b0 = wdata[wi + ib], b1 = wdata[wi + ib + 1u];
    const uint h = iq_b16(bb + 32u + 2u * ib);
    const uint e0 = wdata[wi + 12u], e1 = wdata[wi + 13u];
    const uint e2 = wdata[min(wi + 14u, g_wlast)]; // past the data only when s8 = 0 (unused then)
    if (lx) load_x(u); // X after the weights: one wait for both before the grid loads
    const uint qs = realign(b0, b1, s8), s01 = realign(e0, e1, s8), s23 = realign(e1, e2, s8);
    const uint db = ((s01 >> 12) & 0xFu) | ((s01 >> 24) & 0xF0u) | ((s23 >> 4) & 0xF00u) |
                    ((s23 >> 16) & 0xF000u);
    const float d = unpackHalf2x16(db).x;
    const uint sc = ((ib < 4u ? s01 : s23) >> (16u * ((ib >> 1) & 1u) + 6u * (ib & 1u)));
    uint gw[4]; // every grid load of the unit first: one wait for them all
    [[unroll]] for (uint l = 0u; l < 4u; l++) gw[l] =
        iq_grid[((qs >> (8u * l)) & 255u) | (((h >> (4u * l)) & 7u) << 8)];
    uint wq[8];
    iq1_bytes(gw, wq);
    float offs[4];
    [[unroll]] for (uint l = 0u; l < 4u; l++) offs[l] =
        ((h >> (4u * l)) & 8u) != 0u ? -1.125 : -0.875;
    fin_iq1(wq, offs, d * float(2u * (sc & 7u) + 1u), d * float(2u * ((sc >> 3) & 7u) + 1u));
}
#endif

#else // IQ4_NL, IQ4_XS
// The 16 levels (kvalues_iq4nl) through iq_grid = core/iq_tables.c's vkm_iq4_grid, indexed by a
// qs byte b (nibbles b & 15: element j of the run, b >> 4: element 16 + j): words 0..255 hold the
// two levels as f16 (float X: each meets X in a mixed-precision multiply-add, v_fma_mix_f32 on
// RDNA), words 256..511 as int8 at bits 0 and 16 (8-bit X: the entries of a qs word's 4 bytes
// joined into the int8 words of its low and high nibbles by 6 shifts / ors, then 4x8-bit dot
// products). One load per 2 weights (16 a unit, after its block and X loads) replaces the
// selects per weight of the 16 levels as 4 constant words: gfx1100 VALU per 256 weights 57.8 ->
// 15.8 (IQ4_NL, float X), 11.4 with 8-bit X (README).
#if defined(Q8X)
#define IQ4_T 256u
#else
#define IQ4_T 0u
#endif
// the grid words of the 4 bytes of q (byte n_lo | n_hi << 4 -> the levels of n_lo and n_hi)
uvec4 iq4_look(uint q) {
    return uvec4(iq_grid[IQ4_T + (q & 255u)], iq_grid[IQ4_T + ((q >> 8) & 255u)],
                 iq_grid[IQ4_T + ((q >> 16) & 255u)], iq_grid[IQ4_T + (q >> 24)]);
}
// g_acc[c] += a * the unit's dot product, g[j] the grid words of the bytes of its qs word j
void iq4_fin(uvec4 g[4], float a) {
#if defined(Q8X)
    uint wq[8];
    [[unroll]] for (uint j = 0u; j < 4u; j++) {
        const uint lo = g[j].x | (g[j].y << 8), hi = g[j].z | (g[j].w << 8);
        wq[j] = (lo & 0xFFFFu) | (hi << 16);
        wq[4u + j] = (lo >> 16) | (hi & 0xFFFF0000u);
    }
    fin1(wq, a);
#else
    IQ_ZERO(s);
    [[unroll]] for (uint j = 0u; j < 4u; j++) {
        const vec2 h0 = unpackHalf2x16(g[j].x), h1 = unpackHalf2x16(g[j].y);
        const vec2 h2 = unpackHalf2x16(g[j].z), h3 = unpackHalf2x16(g[j].w);
        sdot(s, vec4(h0.x, h1.x, h2.x, h3.x), j);
        sdot(s, vec4(h0.y, h1.y, h2.y, h3.y), 4u + j);
    }
    acc1(s, a);
#endif
}
#if defined(TYPE_IQ4_NL)
// 18 bytes per 32 (unit = block): d @0, qs[16] @2 as Q4_0's nibbles; x = d level
void unit(uint rb, uint u, bool lx) {
    const uint bb = rb + 18u * u, i = bb >> 2, s8 = (bb & 2u) * 8u;
    uint w[5];
    [[unroll]] for (uint j = 0u; j < 5u; j++) w[j] = wdata[i + j];
    if (lx) load_x(u); // X after the weights: one wait for both before the grid loads
    uvec4 g[4]; // every grid load of the unit first: one wait for them all
    [[unroll]] for (uint j = 0u; j < 4u; j++) g[j] = iq4_look(realign2(w[j], w[j + 1u], s8));
    iq4_fin(g, unpackHalf2x16(w[0] >> s8).x);
}
#else
// 136 bytes: d @0, scales_h u16 @2 (bits 2ib, 2ib + 1: scale bits 4-5), scales_l[4] @4 (nibble
// ib % 2 of byte ib / 2: bits 0-3), run ib's 16 bytes of nibbles @8 + 16ib (Q4_0's order);
// x = d (s - 32) level
void unit(uint rb, uint u, bool lx) {
    const uint bb = rb + 136u * (u >> 3), ib = u & 7u, wi = bb >> 2, s8 = (bb & 2u) * 8u;
    uint w[5];
    [[unroll]] for (uint j = 0u; j < 4u; j++) w[j] = wdata[wi + 2u + 4u * ib + j];
    w[4] = wdata[min(wi + 6u + 4u * ib, g_wlast)]; // past the data only when s8 = 0 (unused then)
    // the header words and X written after the grid loads: RADV still issues them with the
    // weights, and the gated form then waits once a trip for both rows' loads (twice otherwise)
    uvec4 g[4]; // every grid load of the unit first: one wait for them all
    [[unroll]] for (uint j = 0u; j < 4u; j++) g[j] = iq4_look(realign(w[j], w[j + 1u], s8));
    const uint a0 = wdata[wi], a1 = wdata[wi + 1u], a2 = wdata[wi + 2u];
    if (lx) load_x(u);
    const float d = unpackHalf2x16(a0 >> s8).x;
    const uint sh = realign2(a0, a1, s8), sl = realign(a1, a2, s8);
    const uint sc = ((sl >> (4u * ib)) & 15u) | (((sh >> (2u * ib)) & 3u) << 4);
    iq4_fin(g, d * (float(sc) - 32.0));
}
#endif
#endif
