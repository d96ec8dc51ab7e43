// matmul_vec.comp - GEMV for decode: Y[c][j] = sum_k W[j][k] * X[c][k] for NC columns at once
// (any count is covered in passes of NC), W in its GGUF encoding (quant.glsl, -DTYPE_*).
// With -DMUL_ID: the indexed form over a stack of matrices (matmul_common.h), matrix = z group.
//
// Workgroup: WG threads (spec 0) compute ROWS consecutive W rows (spec 1) for NC columns (spec 2;
// the C side picks the power of two >= the column count, as the code grows with NC). Each thread
// walks groups of 4 elements strided by WG, dequantizes each group of each row once in registers
// and multiplies it with every column; partial sums are reduced with subgroupAdd and then across
// subgroups through shared memory. Row blocks are numbered x + y * gridX (grids over 65535).
// With LANE_ROWS (spec 3, CPU devices) the layout is transposed instead: see main_lane_rows.
// Invariants: WG <= VKM_MM_VEC_MAX_WG, ROWS <= VKM_MM_VEC_MAX_ROWS, NC <= VKM_MM_VEC_MAX_COLS
// (checked on the C side).
#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_arithmetic : require
#extension GL_KHR_shader_subgroup_shuffle : require
#extension GL_EXT_control_flow_attributes : require

#include "matmul_common.h"

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint ROWS = 2;
layout(constant_id = 2) const uint NC = VKM_MM_VEC_MAX_COLS;
// 0: threads split k (GPUs); 1: every thread owns ROWS whole rows (CPU devices, see below)
layout(constant_id = 3) const uint LANE_ROWS = 0;

layout(std430, set = 0, binding = 0) readonly buffer W { uint wdata[]; };
layout(std430, set = 0, binding = 1) readonly buffer X { float xdata[]; };
layout(std430, set = 0, binding = 2) writeonly buffer Y { float ydata[]; };
#ifdef MUL_ID
layout(std430, set = 0, binding = 3) readonly buffer R { int rows[]; };
layout(std430, set = 0, binding = 4) readonly buffer M { int mats[]; };
#endif

#include "quant.glsl"

shared float red[VKM_MM_VEC_MAX_SUBGROUPS][VKM_MM_VEC_MAX_ROWS * VKM_MM_VEC_MAX_COLS];

vec4 load_x4(uint b, uint e) {
#ifdef QFLOAT
    if (e + 4u > p.k) {
        vec4 v = vec4(0.0);
        for (uint j = 0u; j < 4u; j++)
            if (e + j < p.k) v[j] = xdata[b + e + j];
        return v;
    }
#endif
    return vec4(xdata[b + e], xdata[b + e + 1u], xdata[b + e + 2u], xdata[b + e + 3u]);
}

// ---- LANE_ROWS layout (CPU devices such as lavapipe) ----
// Thread t of a workgroup owns rows row0 + t + WG * r (r < ROWS) and walks them whole, so there is
// no reduction, shared memory or barrier (a CPU driver runs a workgroup as one thread looping over
// SIMD chunks of a subgroup; every per-invocation load is a loop over the lanes, and barriers are
// coroutine switches). All threads need the same X values at the same time: a subgroup loads each
// once and shares it by shuffles (lane_x). Weights are read in whole blocks (32 elements for the
// float types, QK for the others) with their scales decoded once per block; each block is
// multiplied with all NC columns, so this also serves as the GEMM (passes of NC columns).
// Dedicated block decoders for F16/BF16, Q8_0, Q5_0, Q4_K and Q6_K (the types of q4_k_m / q8_0
// files) cost one 32-bit load per word of weights; the other types go through dq4 per 4 values.
// llvmpipe compiles every per-lane load into a loop over the lanes and runs both sides of any
// branch under a mask, so these decoders are branch-free and count loads, not arithmetic.

uint g_xb[NC];  // element offset of column c's X row (0 when absent: reads are masked)
bool g_xok[NC]; // column c is present and its X row is in range
float g_acc[ROWS][NC];

// X values: for a run of 32 elements at e0, lane l of the subgroup loads elements e0 + 4l .. +3
// (all of them distinct, no redundant loads) and the others take them with subgroupShuffle by a
// constant lane, which on a CPU device is one register permute (subgroupBroadcast, by contrast,
// compiles to a loop over the lanes on llvmpipe). Needs subgroups of >= 8 invocations, all of them
// active: the callers only use these in uniform control flow.
vec4 lane_x(uint c, uint e0) {
    if (!g_xok[c]) return vec4(0.0);
    const uint b = g_xb[c] + e0 + 4u * (gl_SubgroupInvocationID & 7u);
    return vec4(xdata[b], xdata[b + 1u], xdata[b + 2u], xdata[b + 3u]);
}
#define XB(v, l) subgroupShuffle(v, l)

#if defined(TYPE_F16) || defined(TYPE_BF16) || defined(TYPE_F32)
#define LB 32u // elements per step
#else
#define LB QK
#endif

// g_acc[r][c] += the dot products of the LB elements of block `blk` of the row at byte rb
// (generic form, through dq4).
void lane_block_generic(uint rb, uint blk, uint r) {
    for (uint g = 0u; g < LB; g += 32u) {
        const uint e0 = blk * LB + g;
        vec4 xl[NC];
        [[unroll]] for (uint c = 0u; c < NC; c++) xl[c] = lane_x(c, e0);
#define G(L)                                                                                       \
    {                                                                                              \
        const vec4 w = dq4(rb, e0 + 4u * L);                                                       \
        [[unroll]] for (uint c = 0u; c < NC; c++) g_acc[r][c] += dot(w, XB(xl[c], L));             \
    }
        G(0u) G(1u) G(2u) G(3u) G(4u) G(5u) G(6u) G(7u)
#undef G
    }
}

#if defined(TYPE_F16) || defined(TYPE_BF16)
void lane_block(uint rb, uint blk, uint r) {
    // 64 bytes at b (2-byte aligned): words i..i+15, and i+16 when b is not 4-aligned; a row
    // of either alignment is read without branches
    const uint b = rb + blk * 64u, i = b >> 2, e0 = blk * 32u;
    const bool al = (b & 2u) == 0u;
    vec4 xl[NC];
    [[unroll]] for (uint c = 0u; c < NC; c++) xl[c] = lane_x(c, e0);
    uint w0 = wdata[i], w1, w2;
#define G(L)                                                                                       \
    {                                                                                              \
        w1 = wdata[i + 2u * L + 1u];                                                               \
        w2 = wdata[L == 7u ? i + (al ? 15u : 16u) : i + 2u * L + 2u];                              \
        const uint a0 = al ? w0 : (w0 >> 16) | (w1 << 16);                                         \
        const uint a1 = al ? w1 : (w1 >> 16) | (w2 << 16);                                         \
        w0 = w2;                                                                                   \
        const vec4 w = vec4(h2f(a0), h2f(a1));                                                     \
        [[unroll]] for (uint c = 0u; c < NC; c++) g_acc[r][c] += dot(w, XB(xl[c], L));             \
    }
    G(0u) G(1u) G(2u) G(3u) G(4u) G(5u) G(6u) G(7u)
#undef G
}
#elif defined(TYPE_Q8_0)
void lane_block(uint rb, uint blk, uint r) {
    const uint bb = rb + blk * 34u, i = bb >> 2, e0 = blk * 32u;
    const bool al = (bb & 2u) == 0u;
    vec4 xl[NC];
    float sc[NC];
    [[unroll]] for (uint c = 0u; c < NC; c++) {
        xl[c] = lane_x(c, e0);
        sc[c] = 0.0;
    }
    uint w0 = wdata[i], w1;
    const float d = unpackHalf2x16(al ? w0 : (w0 >> 16)).x;
#define G(L)                                                                                       \
    {                                                                                              \
        w1 = wdata[i + L + 1u];                                                                    \
        const vec4 q = vec4(i8x4(al ? ((w0 >> 16) | (w1 << 16)) : w1));                            \
        w0 = w1;                                                                                   \
        [[unroll]] for (uint c = 0u; c < NC; c++) sc[c] += dot(q, XB(xl[c], L));                   \
    }
    G(0u) G(1u) G(2u) G(3u) G(4u) G(5u) G(6u) G(7u)
#undef G
    [[unroll]] for (uint c = 0u; c < NC; c++) g_acc[r][c] += d * sc[c];
}
#elif defined(TYPE_Q5_0)
// 22-byte blocks: raw words 0..5 from the word holding byte 0 cover the block either way. The
// 5th bits of 4 elements are spread to bit 4 of 4 bytes by a multiply (bit b to bit 8b), giving
// words of four 5-bit values; q - 16 is the value with bit 4 flipped, sign-extended.
uint q5_spread(uint qh, uint sh) { return (((qh >> sh) & 15u) * 0x00204081u & 0x01010101u) << 4; }

void lane_block(uint rb, uint blk, uint r) {
    const uint bb = rb + blk * 22u, i = bb >> 2;
    const bool al = (bb & 2u) == 0u;
    vec4 xl[NC];
    float t[NC];
    [[unroll]] for (uint c = 0u; c < NC; c++) {
        xl[c] = lane_x(c, blk * 32u);
        t[c] = 0.0;
    }
    const uint r0 = wdata[i], r1 = wdata[i + 1u];
    const float d = unpackHalf2x16(al ? r0 : r0 >> 16).x;
    const uint qh = al ? (r0 >> 16) | (r1 << 16) : r1;
    uint wp = r1;
#define G(L)                                                                                       \
    {                                                                                              \
        const uint wn = wdata[i + L + 2u];                                                         \
        const uint v = al ? (wp >> 16) | (wn << 16) : wn; /* qs bytes 4L..4L+3 */                  \
        wp = wn;                                                                                   \
        const int lo = int(((v & 0x0F0F0F0Fu) | q5_spread(qh, 4u * L)) ^ 0x10101010u);             \
        const int hi = int((((v >> 4) & 0x0F0F0F0Fu) | q5_spread(qh, 16u + 4u * L)) ^ 0x10101010u);\
        const vec4 wl = vec4(bitfieldExtract(lo, 0, 5), bitfieldExtract(lo, 8, 5),                 \
                             bitfieldExtract(lo, 16, 5), bitfieldExtract(lo, 24, 5));              \
        const vec4 wh = vec4(bitfieldExtract(hi, 0, 5), bitfieldExtract(hi, 8, 5),                 \
                             bitfieldExtract(hi, 16, 5), bitfieldExtract(hi, 24, 5));              \
        [[unroll]] for (uint c = 0u; c < NC; c++)                                                  \
            t[c] += dot(wl, XB(xl[c], L)) + dot(wh, XB(xl[c], L + 4u));                            \
    }
    G(0u) G(1u) G(2u) G(3u)
#undef G
    [[unroll]] for (uint c = 0u; c < NC; c++) g_acc[r][c] += d * t[c];
}
#elif defined(TYPE_Q4_K) || defined(TYPE_Q6_K)
// The block types are read a 32-bit word at a time, each word loaded once and its 8 (Q4_K) or
// 4 (Q6_K) values taken out of it with masks. Blocks that start 2 bytes past a word boundary are
// handled without branches (llvmpipe runs both sides of a branch under a lane mask, even a
// uniform one): raw words j and j + 1 are joined by JW, so every word costs one load in a chain.
#define JW(al, a, b) ((al) ? (a) : ((a) >> 16) | ((b) << 16))

// sum of the 32 X values of which every lane of a group of 8 holds 4 (lane_x), on every lane
float lane_xsum(vec4 v) {
    float s = (v.x + v.y) + (v.z + v.w);
    s += subgroupShuffleXor(s, 1u);
    s += subgroupShuffleXor(s, 2u);
    return s + subgroupShuffleXor(s, 4u);
}
#if defined(TYPE_Q4_K)
// The low nibble of byte b of a qs word, masked in place, is q * 2^(8b) (element 4L+b of
// sub-block 2ch), the high one q * 2^(8b+4) (sub-block 2ch+1; the top one is shifted down). The
// X values are pre-scaled by the inverse powers of two (exact), so a sub-block's sum(q * x) comes
// out unscaled; it is multiplied by d * sc once, and dmin * m * sum(x) subtracted.
const vec4 XS_LO = vec4(1.0, 1.0 / 256.0, 1.0 / 65536.0, 1.0 / 16777216.0);
const vec4 XS_HI = vec4(1.0 / 16.0, 1.0 / 4096.0, 1.0 / 1048576.0, 1.0);

void lane_block(uint rb, uint blk, uint r) {
    const uint bb = rb + blk * 144u, i = bb >> 2, e0 = blk * 256u;
    const bool al = (bb & 2u) == 0u;
    uint w0 = wdata[i], w1 = wdata[i + 1u], w2 = wdata[i + 2u], w3 = wdata[i + 3u];
    uint wp = wdata[i + 4u]; // raw word 4 + j, j = the next qs word
    const vec2 dm = unpackHalf2x16(JW(al, w0, w1));
    const uvec4 s0 = u8x4(JW(al, w1, w2)), s1 = u8x4(JW(al, w2, w3)), s2 = u8x4(JW(al, w3, wp));
    // scales and mins of sub-blocks 0..3 and 4..7
    const vec4 sc_lo = dm.x * vec4(s0 & 63u), mn_lo = dm.y * vec4(s1 & 63u);
    const vec4 sc_hi = dm.x * vec4((s2 & 15u) | ((s0 >> 6) << 4));
    const vec4 mn_hi = dm.y * vec4((s2 >> 4) | ((s1 >> 6) << 4));
    [[unroll]] for (uint ch = 0u; ch < 4u; ch++) { // sub-blocks 2ch (low nibbles) and 2ch+1 (high)
        const float sa = ch < 2u ? sc_lo[2u * ch] : sc_hi[2u * ch - 4u];
        const float sb = ch < 2u ? sc_lo[2u * ch + 1u] : sc_hi[2u * ch - 3u];
        const float ma = ch < 2u ? mn_lo[2u * ch] : mn_hi[2u * ch - 4u];
        const float mb = ch < 2u ? mn_lo[2u * ch + 1u] : mn_hi[2u * ch - 3u];
        vec4 xa[NC], xb[NC];
        float ta[NC], tb[NC], mx[NC];
        [[unroll]] for (uint c = 0u; c < NC; c++) {
            xa[c] = lane_x(c, e0 + 64u * ch);
            xb[c] = lane_x(c, e0 + 64u * ch + 32u);
            mx[c] = ma * lane_xsum(xa[c]) + mb * lane_xsum(xb[c]);
            xa[c] *= XS_LO;
            xb[c] *= XS_HI;
            ta[c] = 0.0;
            tb[c] = 0.0;
        }
        const uint qi = i + 5u + 8u * ch; // raw word after the first of this chunk
#define G(L)                                                                                       \
    {                                                                                              \
        /* the block's last raw word is only needed (and only in range) when unaligned */          \
        const uint wn = wdata[ch == 3u && L == 7u ? qi + (al ? 6u : 7u) : qi + L];                 \
        const uint v = JW(al, wp, wn);                                                             \
        wp = wn;                                                                                   \
        const vec4 qa = vec4(ivec4(uvec4(v & 0xFu, v & 0xF00u, v & 0xF0000u, v & 0xF000000u)));   \
        const vec4 qb = vec4(ivec4(uvec4(v & 0xF0u, v & 0xF000u, v & 0xF00000u, v >> 28)));       \
        [[unroll]] for (uint c = 0u; c < NC; c++) {                                                \
            ta[c] += dot(qa, XB(xa[c], L));                                                        \
            tb[c] += dot(qb, XB(xb[c], L));                                                        \
        }                                                                                          \
    }
        G(0u) G(1u) G(2u) G(3u) G(4u) G(5u) G(6u) G(7u)
#undef G
        [[unroll]] for (uint c = 0u; c < NC; c++) g_acc[r][c] += (sa * ta[c] + sb * tb[c]) - mx[c];
    }
}
#else // Q6_K
// Per half h (128 elements) and word L: ql words A (16h+L) and B (16h+8+L) and qh word H
// (32+8h+L) hold elements 128h + 32g + 4L + b (b = byte) for g = 0..3, combined four at a time
// into words of 6-bit values; q - 32 is the value with bit 5 flipped, sign-extended.
void lane_block(uint rb, uint blk, uint r) {
    const uint bb = rb + blk * 210u, i = bb >> 2, e0 = blk * 256u;
    const bool al = (bb & 2u) == 0u;
    const uint r48 = wdata[i + 48u], r49 = wdata[i + 49u], r50 = wdata[i + 50u];
    const uint r51 = wdata[i + 51u], r52 = wdata[i + 52u];
    const float d = unpackHalf2x16(al ? r52 : r52 >> 16).x;
    const vec4 sc[4] = vec4[4](d * vec4(i8x4(JW(al, r48, r49))), d * vec4(i8x4(JW(al, r49, r50))),
                               d * vec4(i8x4(JW(al, r50, r51))), d * vec4(i8x4(JW(al, r51, r52))));
    [[unroll]] for (uint h = 0u; h < 2u; h++) {
        vec4 x[4][NC];
        [[unroll]] for (uint g = 0u; g < 4u; g++)
            [[unroll]] for (uint c = 0u; c < NC; c++) x[g][c] = lane_x(c, e0 + 128u * h + 32u * g);
        const uint ia = i + 16u * h, ih = i + 32u + 8u * h;
        uint pa = wdata[ia], pb = wdata[ia + 8u], ph = wdata[ih];
        [[unroll]] for (uint lh = 0u; lh < 2u; lh++) { // elements 0..15 / 16..31 of each 32
            float t[4][NC];
            [[unroll]] for (uint g = 0u; g < 4u; g++)
                [[unroll]] for (uint c = 0u; c < NC; c++) t[g][c] = 0.0;
            [[unroll]] for (uint l4 = 0u; l4 < 4u; l4++) {
                const uint L = 4u * lh + l4;
                const uint na = wdata[ia + L + 1u], nb = wdata[ia + L + 9u];
                const uint nh = wdata[ih + L + 1u];
                const uint A = JW(al, pa, na), B = JW(al, pb, nb), H = JW(al, ph, nh);
                pa = na;
                pb = nb;
                ph = nh;
                uint q[4];
                q[0] = (A & 0x0F0F0F0Fu) | ((H << 4) & 0x30303030u);
                q[1] = (B & 0x0F0F0F0Fu) | ((H << 2) & 0x30303030u);
                q[2] = ((A >> 4) & 0x0F0F0F0Fu) | (H & 0x30303030u);
                q[3] = ((B >> 4) & 0x0F0F0F0Fu) | ((H >> 2) & 0x30303030u);
                [[unroll]] for (uint g = 0u; g < 4u; g++) {
                    const int v = int(q[g] ^ 0x20202020u);
                    const vec4 w = vec4(bitfieldExtract(v, 0, 6), bitfieldExtract(v, 8, 6),
                                        bitfieldExtract(v, 16, 6), bitfieldExtract(v, 24, 6));
                    [[unroll]] for (uint c = 0u; c < NC; c++)
                        t[g][c] += dot(w, subgroupShuffle(x[g][c], L));
                }
            }
            [[unroll]] for (uint g = 0u; g < 4u; g++) { // scale 8h + 2g + lh
                const float s = sc[2u * h + g / 2u][2u * (g & 1u) + lh];
                [[unroll]] for (uint c = 0u; c < NC; c++) g_acc[r][c] += s * t[g][c];
            }
        }
    }
}
#endif
#else
void lane_block(uint rb, uint blk, uint r) { lane_block_generic(rb, blk, r); }
#endif

void main_lane_rows() {
    const uint tid = gl_LocalInvocationIndex;
    const uint RW = gl_WorkGroupSize.x * ROWS; // rows per workgroup
    const uint row0 = (gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x) * RW;
    if (row0 >= p.m) return; // uniform over the workgroup

    uint wbase = p.w_off;
    uint count = p.n, first = 0u, e = 0u;
#ifdef MUL_ID
    e = gl_WorkGroupID.z;
    if (p.mode == VKM_MM_ID_ROWS && p.act != 0u) { // z = entry of the active list
        const int na = mats[p.mats_off + 2u * p.n_mat];
        if (na < 0 || e >= uint(na)) return; // uniform over the workgroup
        const int ae = mats[p.mats_off + 2u * p.n_mat + 1u + e];
        if (ae < 0 || uint(ae) >= p.n_mat) return;
        e = uint(ae);
    }
    wbase += e * p.w_mat_bytes;
    if (p.mode == VKM_MM_ID_ROWS) {
        int f = mats[p.mats_off + 2u * e], c = mats[p.mats_off + 2u * e + 1u];
        bool ok = f >= 0 && c >= 0 && uint(c) <= p.n_rows && uint(f) <= p.n_rows - uint(c);
        first = ok ? uint(f) : 0u;
        count = ok ? uint(c) : 0u;
    }
#endif
#if defined(QFLOAT)
    const uint nblk = p.k / LB; // full steps; the tail is done 4 at a time (dq4 masks k)
#else
    const uint nblk = p.k / QK;
#endif
    uint rbs[ROWS];
    [[unroll]] for (uint r = 0u; r < ROWS; r++)
        rbs[r] = wbase + min(row0 + tid + gl_WorkGroupSize.x * r, p.m - 1u) * p.w_row_bytes;

    for (uint base = 0u; base < count; base += NC) {
        const uint nc = min(NC, count - base);
        uint yrow[NC];
        [[unroll]] for (uint c = 0u; c < NC; c++) {
            uint i = base + c, xr = i, yr = i;
#ifdef MUL_ID
            if (p.mode == VKM_MM_ID_ROWS) {
                int rr = c < nc ? rows[p.rows_off + first + i] : 0;
                xr = rr < 0 ? 0xFFFFFFFFu : uint(rr);
                yr = first + i;
            } else {
                xr = i * p.n_mat + e;
                yr = xr;
            }
#endif
            g_xok[c] = c < nc && xr < p.n_x;
            g_xb[c] = g_xok[c] ? p.x_off + xr * p.x_stride : 0u;
            yrow[c] = c < nc ? yr : 0xFFFFFFFFu;
        }
        [[unroll]] for (uint r = 0u; r < ROWS; r++)
            [[unroll]] for (uint c = 0u; c < NC; c++) g_acc[r][c] = 0.0;

        for (uint blk = 0u; blk < nblk; blk++)
            [[unroll]] for (uint r = 0u; r < ROWS; r++) lane_block(rbs[r], blk, r);
#if defined(QFLOAT)
        for (uint k0 = nblk * LB; k0 < p.k; k0 += 4u)
            [[unroll]] for (uint r = 0u; r < ROWS; r++) {
                const vec4 w = dq4(rbs[r], k0);
                [[unroll]] for (uint c = 0u; c < NC; c++) {
                    vec4 xv = vec4(0.0);
                    if (g_xok[c])
                        for (uint j = 0u; j < 4u; j++)
                            if (k0 + j < p.k) xv[j] = xdata[g_xb[c] + k0 + j];
                    g_acc[r][c] += dot(w, xv);
                }
            }
#endif
        [[unroll]] for (uint r = 0u; r < ROWS; r++) {
            const uint row = row0 + tid + gl_WorkGroupSize.x * r;
            if (row >= p.m) continue;
            [[unroll]] for (uint c = 0u; c < NC; c++)
                if (c < nc && yrow[c] < p.n_y)
                    ydata[p.y_off + yrow[c] * p.y_stride + row] = g_acc[r][c];
        }
    }
}

void main() {
    if (LANE_ROWS != 0u) {
        main_lane_rows();
        return;
    }
    const uint tid = gl_LocalInvocationIndex;
    const uint row0 = (gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x) * ROWS;
    if (row0 >= p.m) return; // uniform over the workgroup

    uint wbase = p.w_off;
    uint count = p.n, first = 0u, e = 0u;
#ifdef MUL_ID
    e = gl_WorkGroupID.z;
    if (p.mode == VKM_MM_ID_ROWS && p.act != 0u) { // z = entry of the active list
        const int na = mats[p.mats_off + 2u * p.n_mat];
        if (na < 0 || e >= uint(na)) return; // uniform over the workgroup
        const int ae = mats[p.mats_off + 2u * p.n_mat + 1u + e];
        if (ae < 0 || uint(ae) >= p.n_mat) return;
        e = uint(ae);
    }
    wbase += e * p.w_mat_bytes;
    if (p.mode == VKM_MM_ID_ROWS) {
        int f = mats[p.mats_off + 2u * e], c = mats[p.mats_off + 2u * e + 1u];
        bool ok = f >= 0 && c >= 0 && uint(c) <= p.n_rows && uint(f) <= p.n_rows - uint(c);
        first = ok ? uint(f) : 0u;
        count = ok ? uint(c) : 0u;
    }
#endif
    const uint groups = (p.k + 3u) / 4u;

    for (uint base = 0u; base < count; base += NC) {
        const uint nc = min(NC, count - base);
        uint xb[NC];
        bool xok[NC];
        uint yrow[NC];
        for (uint c = 0u; c < NC; c++) {
            uint i = base + c, xr = i, yr = i;
#ifdef MUL_ID
            if (p.mode == VKM_MM_ID_ROWS) {
                int r = c < nc ? rows[p.rows_off + first + i] : 0;
                xr = r < 0 ? 0xFFFFFFFFu : uint(r);
                yr = first + i;
            } else {
                xr = i * p.n_mat + e;
                yr = xr;
            }
#endif
            xok[c] = c < nc && xr < p.n_x;
            xb[c] = xok[c] ? p.x_off + xr * p.x_stride : 0u;
            yrow[c] = c < nc ? yr : 0xFFFFFFFFu;
        }

        float acc[ROWS][NC];
        for (uint r = 0u; r < ROWS; r++)
            for (uint c = 0u; c < NC; c++) acc[r][c] = 0.0;

        for (uint g = tid; g < groups; g += gl_WorkGroupSize.x) {
            const uint k0 = 4u * g;
            vec4 xv[NC];
            for (uint c = 0u; c < NC; c++)
                xv[c] = (c < nc && xok[c]) ? load_x4(xb[c], k0) : vec4(0.0);
            for (uint r = 0u; r < ROWS; r++) {
                const uint row = min(row0 + r, p.m - 1u);
                const vec4 w = dq4(wbase + row * p.w_row_bytes, k0);
                for (uint c = 0u; c < NC; c++) acc[r][c] += dot(w, xv[c]);
            }
        }

        for (uint r = 0u; r < ROWS; r++)
            for (uint c = 0u; c < NC; c++) {
                if (c >= nc) break;
                float s = subgroupAdd(acc[r][c]);
                if (subgroupElect()) red[gl_SubgroupID][r * NC + c] = s;
            }
        barrier();
        if (tid < ROWS * NC) {
            const uint r = tid / NC, c = tid % NC;
            if (c < nc && row0 + r < p.m && yrow[c] < p.n_y) {
                float s = 0.0;
                for (uint sg = 0u; sg < gl_NumSubgroups; sg++) s += red[sg][r * NC + c];
                ydata[p.y_off + yrow[c] * p.y_stride + row0 + r] = s;
            }
        }
        barrier();
    }
}
