// matmul_lane.comp - the matmul of CPU devices such as lavapipe (core/ops_cpu.c records it):
// Y[c][j] = sum_k W[j][k] * X[c][k], W in its GGUF encoding (quant.glsl, -DTYPE_*), in the layout
// where every invocation owns ROWS whole W rows: GEMV for any column count (passes of NC columns),
// so it is the CPU devices' GEMM too. With -DMUL_ID: the indexed form over a stack of matrices
// (matmul_common.h), matrix = z group; in ROWS mode the z group p.x2_z is a second matrix
// instead. Plain form: rows from p.m1 on may come from a second matrix (matmul_common.h).
// Push block: vkm_matmul_cpu_push (cpu/matmul_cpu.h), the GPU kernels' fields and the column
// window [c_begin, c_end) of lavapipe's loop limit.
//
// Variants (shaders.cmake), which differ only in how a 16-byte chunk of W or X is loaded
// (load_w16): -DLANE_TEX (matmul_tex_*, what CPU devices use by default) binds W and X as uniform
// texel buffers of 16-byte texels (binding 0: R32G32B32A32 uint, 1: R32G32B32A32 float), every
// chunk one texel fetch; -DLANE_I64 (matmul_lane_*, needs shaderInt64; where a window is too large
// for a texel buffer, and VKMOE_KERNELS=cpu64) makes a chunk of two 64-bit halves; neither
// (matmul_lane32_*, CPU devices without shaderInt64, VKMOE_KERNELS=cpu32) loads uvec4s.
//
// Workgroup: WG threads (spec 0), ROWS rows each (spec 1), NC columns a pass (spec 2; the C side
// picks the power of two >= the column count, as the code grows with NC). Spec 3-6 (XAL, WAL,
// IDH, GLU) are facts of the dispatch chosen on the C side: see below. Row blocks are numbered
// x + y * gridX (grids over 65535).
// Invariants: WG <= VKM_MM_VEC_MAX_WG, ROWS <= VKM_MM_VEC_MAX_ROWS, NC <= VKM_MM_VEC_MAX_COLS
// (checked on the C side); subgroups of 8..64 invocations (core/kernels.c).
#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_shuffle : require
#extension GL_EXT_control_flow_attributes : require
#ifdef LANE_I64
#extension GL_EXT_shader_explicit_arithmetic_types_int64 : require
#endif

#include "matmul_cpu.h"

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint ROWS = 2;
layout(constant_id = 2) const uint NC = VKM_MM_VEC_MAX_COLS;
// 1 when every X row of the dispatch starts 16-byte aligned (x_off and x_stride multiples of 4
// elements; chosen on the C side per dispatch), so lane_x loads whole chunks
layout(constant_id = 3) const uint XAL = 0;
// 1 when every step of every W row starts 16-byte aligned (the step's byte count, the row and
// matrix strides and w_off multiples of 16; chosen on the C side), so lane_fetch loads the step's
// whole chunks with no realignment
layout(constant_id = 4) const uint WAL = 0;
// Chosen on the C side per dispatch like XAL and WAL (llvmpipe runs both sides of every branch,
// so the code of the other form is compiled out instead: measured on llvmpipe, 1.13-1.17x for
// per-head GEMVs, 1.07-1.1x for the others): IDH = 1 when the indexed form runs in
// VKM_MM_ID_HEADS mode (p.mode), GLU = 1 for the gated form (p.glu != 0)
layout(constant_id = 5) const uint IDH = 0;
layout(constant_id = 6) const uint GLU = 0;

#ifdef LANE_TEX
layout(set = 0, binding = 0) uniform usamplerBuffer wtex; // W in 16-byte texels
layout(set = 0, binding = 1) uniform samplerBuffer xtex;  // X in 16-byte texels
#define WORD(i) texelFetch(wtex, int((i) >> 2u))[int((i) & 3u)]
#define XVAL(i) texelFetch(xtex, int((i) >> 2u))[int((i) & 3u)]
#else
layout(std430, set = 0, binding = 0) readonly buffer W { uint wdata[]; };
layout(std430, set = 0, binding = 1) readonly buffer X { float xdata[]; };
#define WORD(i) wdata[i]
#define XVAL(i) xdata[i]
#endif
layout(std430, set = 0, binding = 2) writeonly buffer Y { float ydata[]; };
#ifdef MUL_ID
layout(std430, set = 0, binding = 3) readonly buffer R { int rows[]; };
layout(std430, set = 0, binding = 4) readonly buffer M { int mats[]; };
#endif

#include "quant.glsl"

// ---- the layout ----
// Thread t of a workgroup owns rows row0 + t + WG * r (r < ROWS) and walks them whole, so there is
// no reduction, shared memory or barrier (a CPU driver runs a workgroup as one thread looping over
// SIMD chunks of a subgroup; every per-invocation load is a loop over the lanes, and barriers are
// coroutine switches). All threads need the same X values at the same time: a subgroup loads each
// once and shares it by shuffles (lane_x). Weights are read in whole blocks (32 elements for the
// float types, QK for the others) with their scales decoded once per block; each block is
// multiplied with all NC columns, so this also serves as the GEMM (passes of NC columns), and the
// X values of a block are loaded and prepared once for the ROWS rows of the thread.
// llvmpipe compiles every per-lane load into a loop over the lanes, with a bounds check and an
// insert per component, and runs both sides of any branch under a mask, so a block is fetched
// as 16-byte chunks (load_w16: two 64-bit components in the matmul_lane_* variants, four 32-bit
// ones otherwise) and realigned in registers (not at all with WAL), and the decoders (one per
// type) are branch-free. Measured on llvmpipe (2 cores, perf samples of the generated code), the
// weight and X load loops are still most of the time (about 60% with 32-bit components), the
// arithmetic per element (mask, convert, permute, multiply-add) about 15%. A texel fetch, by
// contrast, loads each lane's 16 bytes with one vector load: the matmul_tex_* variants (LANE_TEX)
// run the Q4_K GEMV 1.5-2x faster than the 64-bit loads (W and X both as texels; W alone
// 1.3-1.6x), with the same results.

// The 16-byte chunk q of W and of X. llvmpipe turns a load whose address differs across lanes
// into a loop over the lanes, with a bounds check and an insert per component: two 64-bit
// components cost less than four 32-bit ones (GEMV 1.2-1.25x in all, measured).
#if defined(LANE_TEX)
// llvmpipe fetches a texel of every lane with vector loads (Q4_K GEMV 1.5-2x the 64-bit loads
// below, measured on llvmpipe 22.3, 2 cores)
uvec4 load_w16(uint q) { return texelFetch(wtex, int(q)); }
vec4 load_x16(uint q) { return texelFetch(xtex, int(q)); }
#elif defined(LANE_I64)
layout(std430, set = 0, binding = 0) readonly buffer W8 { u64vec2 wdata8[]; }; // = wdata
layout(std430, set = 0, binding = 1) readonly buffer X8 { u64vec2 xdata8[]; }; // = xdata
uvec4 load_w16(uint q) {
    const u64vec2 v = wdata8[q];
    return uvec4(unpackUint2x32(v.x), unpackUint2x32(v.y));
}
vec4 load_x16(uint q) {
    const u64vec2 v = xdata8[q];
    return uintBitsToFloat(uvec4(unpackUint2x32(v.x), unpackUint2x32(v.y)));
}
#else
layout(std430, set = 0, binding = 0) readonly buffer W4 { uvec4 wdata4[]; }; // = wdata
layout(std430, set = 0, binding = 1) readonly buffer X4 { vec4 xdata4[]; };  // = xdata
uvec4 load_w16(uint q) { return wdata4[q]; }
vec4 load_x16(uint q) { return xdata4[q]; }
#endif

uint g_xb[NC];  // element offset of column c's X row (0 when absent: reads are masked)
bool g_xok[NC]; // column c is present and its X row is in range
float g_acc[ROWS][NC];
uint g_rb[ROWS]; // byte offset of each row of the thread (clamped to the last row)

// X values: for a run of 32 elements at e0, lane l of the subgroup holds elements e0 + 4l .. +3
// and the others take them with subgroupShuffle by a constant lane (XB), which on a CPU device is
// one register permute (subgroupBroadcast, by contrast, compiles to a loop over the lanes on
// llvmpipe). Lane l loads the 16-byte chunk of X holding element e0 + 4l (one load loop instead
// of four) and takes the next chunk from lane l + 1; lane 7 loads its next chunk itself (masked),
// and the pair is shifted by the column's (uniform) misalignment with selects. The chunks reach
// at most 7 elements past the run, which are inside the row's next step; the row's last step
// (`last`, no next step) loads its 4 elements one by one instead. With XAL (aligned rows) lane l
// simply loads the chunk at e0 + 4l, which lies inside the run (e0 + 32 <= k): one load, no
// shuffle, no shifts, in range at every step. Needs subgroups of >= 8 invocations, all of them
// active: the callers only use these in uniform control flow.
vec4 lane_x(uint c, uint e0, bool last) {
    if (!g_xok[c]) return vec4(0.0);
    const uint l = gl_SubgroupInvocationID & 7u, a = g_xb[c] + e0;
    if (XAL != 0u) return load_x16((a >> 2) + l); // a % 4 == 0 (g_xb[c] % 4 == 0, e0 % 32 == 0)
    if (last) {
        const uint b = a + 4u * l;
        return vec4(XVAL(b), XVAL(b + 1u), XVAL(b + 2u), XVAL(b + 3u));
    }
    const uint q = (a >> 2) + l, s = a & 3u;
    const vec4 c0 = load_x16(q);
    vec4 c1 = subgroupShuffle(c0, (l + 1u) & 7u);
    if (l == 7u) c1 = load_x16(q + 1u);
    const vec4 h = (s & 2u) != 0u ? vec4(c0.zw, c1.xy) : c0; // shifted by 2 elements
    const float n = (s & 2u) != 0u ? c1.z : c1.x;              // the element after h
    return (s & 1u) != 0u ? vec4(h.yzw, n) : h;
}
#define XB(v, l) subgroupShuffle(v, l)

// sum of the 32 X values of which every lane of a group of 8 holds 4 (lane_x), on every lane
float lane_xsum(vec4 v) {
    float s = (v.x + v.y) + (v.z + v.w);
    s += subgroupShuffleXor(s, 1u);
    s += subgroupShuffleXor(s, 2u);
    return s + subgroupShuffleXor(s, 4u);
}
// the sums of the first and the second 16 of those 32 X values, on every lane
vec2 lane_xsum16(vec4 v) {
    float s = (v.x + v.y) + (v.z + v.w);
    s += subgroupShuffleXor(s, 1u);
    s += subgroupShuffleXor(s, 2u);
    return vec2(subgroupShuffle(s, 0u), subgroupShuffle(s, 4u));
}

// Nibbles or bit fields masked in place: byte b of a word holds q * 2^(8b); X values pre-scaled
// by the inverse powers of two (exact) make dot() give the unscaled sum(q * x). XS_HI is for the
// high nibbles (q * 2^(8b+4), the top one shifted down to q).
const vec4 XS_LO = vec4(1.0, 1.0 / 256.0, 1.0 / 65536.0, 1.0 / 16777216.0);
const vec4 XS_HI = vec4(1.0 / 16.0, 1.0 / 4096.0, 1.0 / 1048576.0, 1.0);
vec4 lo4(uint v) {
    return vec4(ivec4(uvec4(v & 0xFu, v & 0xF00u, v & 0xF0000u, v & 0xF000000u)));
}
vec4 hi4(uint v) {
    return vec4(ivec4(uvec4(v & 0xF0u, v & 0xF000u, v & 0xF00000u, v >> 28)));
}
// the 4 bytes of v (each < 128), in place (scale with XS_LO)
vec4 b4(uint v) {
    return vec4(ivec4(uvec4(v & 0xFFu, v & 0xFF00u, v & 0xFF0000u, v & 0x7F000000u)));
}
// bits sh of the 4 bytes of qh moved to bit 4 (5-bit quants: Q5_K)
uint hbit4(uint qh, uint sh) { return ((qh >> sh) & 0x01010101u) << 4; }
// the 32 bits from bit 16 of a (low half) and b: the word 2 bytes into a
uint w16(uint a, uint b) { return (a >> 16) | (b << 16); }

#if defined(TYPE_F32)
#define LB 32u      // elements per step
#define LBYTES 128u // bytes per step
#define LB16        // LBYTES is a multiple of 16
#elif defined(TYPE_F16) || defined(TYPE_BF16)
#define LB 32u
#define LBYTES 64u
#define LB16
#else
#define LB QK
#if defined(TYPE_Q4_0)
#define LBYTES 18u
#elif defined(TYPE_Q4_1)
#define LBYTES 20u
#elif defined(TYPE_Q5_0)
#define LBYTES 22u
#elif defined(TYPE_Q5_1)
#define LBYTES 24u
#elif defined(TYPE_Q8_0)
#define LBYTES 34u
#elif defined(TYPE_Q2_K)
#define LBYTES 84u
#elif defined(TYPE_Q3_K)
#define LBYTES 110u
#elif defined(TYPE_Q4_K)
#define LBYTES 144u
#define LB16
#elif defined(TYPE_Q5_K)
#define LBYTES 176u
#define LB16
#elif defined(QIQ)
#define LBYTES QBYTES // no IQ block is a multiple of 16 bytes
#else
#define LBYTES 210u // Q6_K
#endif
#endif
#define NW ((LBYTES + 3u) / 4u)         // words of a step
#define NCH ((LBYTES + 13u) / 16u + 1u) // 16-byte chunks that hold it, at any (even) offset
#define NSAFE (LBYTES / 16u)            // of which always wholly inside the step
#define NF (4u * NCH + 8u)

// w[j] = bytes bb + 4j .. bb + 4j + 3 of the row's step at byte bb (even): chunks from bb / 16,
// shifted down by bb % 16 bytes in three branch-free stages (8, 4, 2 bytes). Bytes past the step
// in the last word are unspecified. Range: a chunk that the step needs ends at most 14 bytes past
// it, which is inside the next step of the row; the ones it does not need are clamped to the last
// chunk wholly before the end of the next step. With `last` (the row's last step, no next step)
// the chunks that may reach past the step are read as words clamped to its last word instead.
void lane_fetch(uint bb, bool last, out uint w[NW]) {
#ifdef LB16 // LBYTES % 16 == 0
    if (WAL != 0u) { // bb % 16 == 0: the step is exactly its NW / 4 chunks
        [[unroll]] for (uint k = 0u; k < NW / 4u; k++) {
            const uvec4 v = load_w16((bb >> 4) + k);
            w[4u * k] = v.x;
            w[4u * k + 1u] = v.y;
            w[4u * k + 2u] = v.z;
            w[4u * k + 3u] = v.w;
        }
        return;
    }
#endif
    const uint q0 = bb >> 4, lw = (bb + LBYTES - 1u) >> 2;
    const uint qmax = ((bb + 2u * LBYTES) >> 4) - 1u;
    uint f[NF];
    [[unroll]] for (uint k = 0u; k < NCH; k++) {
        uvec4 v;
        if (last && k >= NSAFE) {
            const uint i = 4u * (q0 + k);
            v = uvec4(WORD(min(i, lw)), WORD(min(i + 1u, lw)), WORD(min(i + 2u, lw)),
                      WORD(min(i + 3u, lw)));
        } else {
            v = load_w16(k < NSAFE ? q0 + k : min(q0 + k, qmax));
        }
        f[4u * k] = v.x;
        f[4u * k + 1u] = v.y;
        f[4u * k + 2u] = v.z;
        f[4u * k + 3u] = v.w;
    }
    [[unroll]] for (uint i = 4u * NCH; i < NF; i++) f[i] = 0u;
    const bool s8 = (bb & 8u) != 0u, s4 = (bb & 4u) != 0u, s2 = (bb & 2u) != 0u;
    uint g1[NW + 2u], g2[NW + 1u];
    [[unroll]] for (uint i = 0u; i < NW + 2u; i++) g1[i] = s8 ? f[i + 2u] : f[i];
    [[unroll]] for (uint i = 0u; i < NW + 1u; i++) g2[i] = s4 ? g1[i + 1u] : g1[i];
    [[unroll]] for (uint i = 0u; i < NW; i++) w[i] = s2 ? w16(g2[i], g2[i + 1u]) : g2[i];
}

// g_acc[r][c] += the dot products of the LB elements of step `blk` of every row r (at byte
// g_rb[r]). The X values of the step are loaded and prepared once for all ROWS rows (X loads,
// one loop over the lanes per element run, cost more than the weights' chunk loads); each row's
// words are fetched whole first.
#define FETCH(w)                                                                                   \
    uint w[ROWS][NW];                                                                              \
    [[unroll]] for (uint r = 0u; r < ROWS; r++) lane_fetch(g_rb[r] + blk * LBYTES, last, w[r])

#if defined(TYPE_F32) || defined(TYPE_F16) || defined(TYPE_BF16)
void lane_block(uint blk, bool last) {
    FETCH(w);
    vec4 xl[NC];
    [[unroll]] for (uint c = 0u; c < NC; c++) xl[c] = lane_x(c, blk * 32u, last);
    [[unroll]] for (uint L = 0u; L < 8u; L++)
        [[unroll]] for (uint c = 0u; c < NC; c++) {
            const vec4 xv = XB(xl[c], L);
            [[unroll]] for (uint r = 0u; r < ROWS; r++) {
#if defined(TYPE_F32)
                const vec4 v = uintBitsToFloat(
                    uvec4(w[r][4u * L], w[r][4u * L + 1u], w[r][4u * L + 2u], w[r][4u * L + 3u]));
#else
                const vec4 v = vec4(h2f(w[r][2u * L]), h2f(w[r][2u * L + 1u]));
#endif
                g_acc[r][c] += dot(v, xv);
            }
        }
}
#elif defined(TYPE_Q8_0)
void lane_block(uint blk, bool last) {
    FETCH(w);
    vec4 xl[NC];
    [[unroll]] for (uint c = 0u; c < NC; c++) xl[c] = lane_x(c, blk * 32u, last);
    float t[ROWS][NC];
    [[unroll]] for (uint r = 0u; r < ROWS; r++)
        [[unroll]] for (uint c = 0u; c < NC; c++) t[r][c] = 0.0;
    [[unroll]] for (uint L = 0u; L < 8u; L++)
        [[unroll]] for (uint c = 0u; c < NC; c++) {
            const vec4 xv = XB(xl[c], L);
            [[unroll]] for (uint r = 0u; r < ROWS; r++)
                t[r][c] += dot(vec4(i8x4(w16(w[r][L], w[r][L + 1u]))), xv);
        }
    [[unroll]] for (uint r = 0u; r < ROWS; r++) {
        const float d = unpackHalf2x16(w[r][0]).x;
        [[unroll]] for (uint c = 0u; c < NC; c++) g_acc[r][c] += d * t[r][c];
    }
}
#elif defined(TYPE_Q4_0) || defined(TYPE_Q4_1) || defined(TYPE_Q5_0) || defined(TYPE_Q5_1)
// 32-element blocks: qs word L (bytes 4L..4L+3 of qs) holds elements 4L+b in its low nibbles and
// 16+4L+b in its high ones; the 5-bit types add bit 4 from qh (bit j = element j), spread to
// bit 4 of 4 bytes by a multiply (bit b to bit 8b). Value = d * q + m: d * sum(q x) + m * sum(x)
// (m = -8d, -16d for the symmetric types).
uint q5_spread(uint qh, uint sh) { return (((qh >> sh) & 15u) * 0x00204081u & 0x01010101u) << 4; }

#if defined(TYPE_Q4_0)
#define QS(w, L) w16(w[L], w[L + 1u]) // qs from byte 2
#elif defined(TYPE_Q5_0)
#define QS(w, L) w16(w[L + 1u], w[L + 2u]) // byte 6; qh from byte 2
#elif defined(TYPE_Q4_1)
#define QS(w, L) w[L + 1u]
#else
#define QS(w, L) w[L + 2u]
#endif

void lane_block(uint blk, bool last) {
    FETCH(w);
    vec4 xs[NC], xh[NC];
    float xsum[NC];
    [[unroll]] for (uint c = 0u; c < NC; c++) {
        const vec4 xl = lane_x(c, blk * 32u, last);
        xsum[c] = lane_xsum(xl);
        xs[c] = xl * XS_LO;
#if defined(TYPE_Q4_0) || defined(TYPE_Q4_1)
        xh[c] = xl * XS_HI;
#else
        xh[c] = xs[c];
#endif
    }
    float t[ROWS][NC];
    [[unroll]] for (uint r = 0u; r < ROWS; r++)
        [[unroll]] for (uint c = 0u; c < NC; c++) t[r][c] = 0.0;
    [[unroll]] for (uint L = 0u; L < 4u; L++) {
        vec4 yl[NC], yh[NC]; // shuffled once for all rows
        [[unroll]] for (uint c = 0u; c < NC; c++) {
            yl[c] = XB(xs[c], L);
            yh[c] = XB(xh[c], L + 4u);
        }
        [[unroll]] for (uint r = 0u; r < ROWS; r++) {
            const uint v = QS(w[r], L);
#if defined(TYPE_Q4_0) || defined(TYPE_Q4_1)
            const vec4 wl = lo4(v), wh = hi4(v);
#else
#if defined(TYPE_Q5_0)
            const uint qh = w16(w[r][0], w[r][1]);
#else
            const uint qh = w[r][1];
#endif
            const vec4 wl = b4((v & 0x0F0F0F0Fu) | q5_spread(qh, 4u * L));
            const vec4 wh = b4(((v >> 4) & 0x0F0F0F0Fu) | q5_spread(qh, 16u + 4u * L));
#endif
            [[unroll]] for (uint c = 0u; c < NC; c++) t[r][c] += dot(wl, yl[c]) + dot(wh, yh[c]);
        }
    }
    [[unroll]] for (uint r = 0u; r < ROWS; r++) {
#if defined(TYPE_Q4_0) || defined(TYPE_Q5_0)
        const float d = unpackHalf2x16(w[r][0]).x;
#if defined(TYPE_Q4_0)
        const float m = -8.0 * d;
#else
        const float m = -16.0 * d;
#endif
#else
        const vec2 dm = unpackHalf2x16(w[r][0]);
        const float d = dm.x, m = dm.y;
#endif
        [[unroll]] for (uint c = 0u; c < NC; c++) g_acc[r][c] += d * t[r][c] + m * xsum[c];
    }
}
#undef QS
#elif defined(TYPE_Q4_K) || defined(TYPE_Q5_K)
// Per chunk ch of 64 elements, qs word L holds elements 64ch + 4L + b in its low nibbles
// (sub-block 2ch) and 64ch + 32 + 4L + b in its high ones (sub-block 2ch + 1); Q5_K adds bit 4 of
// each from qh word L (bits 2ch and 2ch + 1 of each byte). A sub-block's sum(q * x) is multiplied
// by d * sc once, and dmin * m * sum(x) subtracted.
void lane_block(uint blk, bool last) {
    FETCH(w);
    const uint e0 = blk * 256u;
    vec4 sc[ROWS][2], mn[ROWS][2]; // scales and mins of sub-blocks 0..3 and 4..7
    [[unroll]] for (uint r = 0u; r < ROWS; r++) {
        const vec2 dm = unpackHalf2x16(w[r][0]);
        const uvec4 s0 = u8x4(w[r][1]), s1 = u8x4(w[r][2]), s2 = u8x4(w[r][3]);
        sc[r][0] = dm.x * vec4(s0 & 63u);
        mn[r][0] = dm.y * vec4(s1 & 63u);
        sc[r][1] = dm.x * vec4((s2 & 15u) | ((s0 >> 6) << 4));
        mn[r][1] = dm.y * vec4((s2 >> 4) | ((s1 >> 6) << 4));
    }
    [[unroll]] for (uint ch = 0u; ch < 4u; ch++) {
        vec4 xa[NC], xb[NC];
        float sa[NC], sb[NC];
        [[unroll]] for (uint c = 0u; c < NC; c++) {
            xa[c] = lane_x(c, e0 + 64u * ch, last);
            xb[c] = lane_x(c, e0 + 64u * ch + 32u, last);
            sa[c] = lane_xsum(xa[c]);
            sb[c] = lane_xsum(xb[c]);
            xa[c] *= XS_LO;
#if defined(TYPE_Q4_K)
            xb[c] *= XS_HI;
#else
            xb[c] *= XS_LO;
#endif
        }
        float ta[ROWS][NC], tb[ROWS][NC];
        [[unroll]] for (uint r = 0u; r < ROWS; r++)
            [[unroll]] for (uint c = 0u; c < NC; c++) {
                ta[r][c] = 0.0;
                tb[r][c] = 0.0;
            }
        [[unroll]] for (uint L = 0u; L < 8u; L++) {
            vec4 ya[NC], yb[NC]; // shuffled once for all rows
            [[unroll]] for (uint c = 0u; c < NC; c++) {
                ya[c] = XB(xa[c], L);
                yb[c] = XB(xb[c], L);
            }
            [[unroll]] for (uint r = 0u; r < ROWS; r++) {
#if defined(TYPE_Q4_K)
                const uint v = w[r][4u + 8u * ch + L];
                const vec4 qa = lo4(v), qb = hi4(v);
#else
                const uint v = w[r][12u + 8u * ch + L], h = w[r][4u + L];
                const vec4 qa = b4((v & 0x0F0F0F0Fu) | hbit4(h, 2u * ch));
                const vec4 qb = b4(((v >> 4) & 0x0F0F0F0Fu) | hbit4(h, 2u * ch + 1u));
#endif
                [[unroll]] for (uint c = 0u; c < NC; c++) {
                    ta[r][c] += dot(qa, ya[c]);
                    tb[r][c] += dot(qb, yb[c]);
                }
            }
        }
        const uint i = ch / 2u, j = 2u * (ch % 2u); // sub-blocks 2ch, 2ch + 1
        [[unroll]] for (uint r = 0u; r < ROWS; r++)
            [[unroll]] for (uint c = 0u; c < NC; c++)
                g_acc[r][c] += (sc[r][i][j] * ta[r][c] + sc[r][i][j + 1u] * tb[r][c]) -
                               (mn[r][i][j] * sa[c] + mn[r][i][j + 1u] * sb[c]);
    }
}
#elif defined(TYPE_Q2_K) || defined(TYPE_Q3_K)
// Per half h (128 elements) and group g (32 elements at 128h + 32g), qs word 8h + L holds the
// 2-bit quants of elements 128h + 32g + 4L + b at bits 2g of its bytes; Q3_K adds bit 2 from
// hmask word L (bit 4h + g of each byte) and subtracts 4. Words L < 4 are sub-block 8h + 2g, the
// others 8h + 2g + 1: sum(q * x) per sub-block times its scale, minus its min (Q2_K: dmin * m;
// Q3_K: 4 d s) times the sub-block's sum(x).
void lane_block(uint blk, bool last) {
    FETCH(w);
    const uint e0 = blk * 256u;
    vec4 sc[ROWS][4], mn[ROWS][4]; // sub-block 4i + j: sc[r][i][j], mn[r][i][j]
    [[unroll]] for (uint r = 0u; r < ROWS; r++) {
#if defined(TYPE_Q2_K)
        const vec2 dm = unpackHalf2x16(w[r][20]);
        [[unroll]] for (uint i = 0u; i < 4u; i++) {
            const uvec4 s = u8x4(w[r][i]);
            sc[r][i] = dm.x * vec4(s & 15u);
            mn[r][i] = dm.y * vec4(s >> 4);
        }
#else
        const float d = unpackHalf2x16(w[r][27]).x;
        const uvec4 a = u8x4(w[r][24]), b = u8x4(w[r][25]), s = u8x4(w[r][26]);
        sc[r][0] = d * (vec4((a & 15u) | ((s & 3u) << 4)) - 32.0);
        sc[r][1] = d * (vec4((b & 15u) | (((s >> 2) & 3u) << 4)) - 32.0);
        sc[r][2] = d * (vec4((a >> 4) | (((s >> 4) & 3u) << 4)) - 32.0);
        sc[r][3] = d * (vec4((b >> 4) | ((s >> 6) << 4)) - 32.0);
        [[unroll]] for (uint i = 0u; i < 4u; i++) mn[r][i] = 4.0 * sc[r][i];
#endif
    }
    [[unroll]] for (uint h = 0u; h < 2u; h++)
        [[unroll]] for (uint g = 0u; g < 4u; g++) {
            const uint i = h * 2u + g / 2u, j = 2u * (g % 2u); // sub-blocks 4i + j, 4i + j + 1
            vec4 xl[NC];
            vec2 s16[NC];
            [[unroll]] for (uint c = 0u; c < NC; c++) {
                xl[c] = lane_x(c, e0 + 128u * h + 32u * g, last);
                s16[c] = lane_xsum16(xl[c]);
                xl[c] *= XS_LO;
            }
            float t[2][ROWS][NC]; // sub-blocks 4i + j, 4i + j + 1
            [[unroll]] for (uint r = 0u; r < ROWS; r++)
                [[unroll]] for (uint c = 0u; c < NC; c++) {
                    t[0][r][c] = 0.0;
                    t[1][r][c] = 0.0;
                }
            [[unroll]] for (uint L = 0u; L < 8u; L++) {
                vec4 y[NC]; // shuffled once for all rows
                [[unroll]] for (uint c = 0u; c < NC; c++) y[c] = XB(xl[c], L);
                [[unroll]] for (uint r = 0u; r < ROWS; r++) {
#if defined(TYPE_Q2_K)
                    const uint q = (w[r][4u + 8u * h + L] >> (2u * g)) & 0x03030303u;
#else
                    const uint q = ((w[r][8u + 8u * h + L] >> (2u * g)) & 0x03030303u) |
                                   (((w[r][L] >> (4u * h + g)) & 0x01010101u) << 2);
#endif
                    const vec4 v = b4(q);
                    [[unroll]] for (uint c = 0u; c < NC; c++) t[L / 4u][r][c] += dot(v, y[c]);
                }
            }
            [[unroll]] for (uint r = 0u; r < ROWS; r++)
                [[unroll]] for (uint c = 0u; c < NC; c++)
                    g_acc[r][c] += (sc[r][i][j] * t[0][r][c] + sc[r][i][j + 1u] * t[1][r][c]) -
                                   (mn[r][i][j] * s16[c].x + mn[r][i][j + 1u] * s16[c].y);
        }
}
#elif defined(QIQ)
// The IQ types: per run of 32 elements (a loop, not unrolled: lavapipe's compile time grows with
// the code), lane_x spreads X over the lanes (4 each), and each row's 8 groups of 4 are decoded
// from the buffer by quant.glsl's dq4 (per-lane loads of the run's words, the same for its 8
// groups, and of the grid buffer), unrolled in the texel variants (LANE_TEX, what CPU devices
// run: about 1 s a variant to compile cold on lavapipe), a loop of 8 in the storage-buffer ones
// (LANE_I64, matmul_lane32: unrolled they took 5-10 s a variant, so many that test_gpu_iq needed
// minutes; the loop runs 2.3x slower). The host counts 9 loop steps a run against lavapipe's
// loop limit (core/ops_cpu.c), the loop's, also for the texel variants.
void lane_block(uint blk, bool last) {
    const uint e0 = blk * QK;
    uint run = 0u;
    do {
        const uint er = e0 + 32u * run;
        vec4 xl[NC];
        [[unroll]] for (uint c = 0u; c < NC; c++) xl[c] = lane_x(c, er, last);
#ifdef LANE_TEX
        [[unroll]] for (uint L = 0u; L < 8u; L++) {
#else
        uint L = 0u;
        do { // a loop too (XB by a uniform lane index): 2.3x slower to run, 5-10x faster to compile
#endif
            vec4 y[NC]; // shuffled once for all rows
            [[unroll]] for (uint c = 0u; c < NC; c++) y[c] = XB(xl[c], L);
            [[unroll]] for (uint r = 0u; r < ROWS; r++) {
                const vec4 v = dq4(g_rb[r], er + 4u * L);
                [[unroll]] for (uint c = 0u; c < NC; c++) g_acc[r][c] += dot(v, y[c]);
            }
#ifdef LANE_TEX
        }
#else
        } while (++L < 8u);
#endif
    } while (++run < QK / 32u);
}
#else // Q6_K
// Per half h (128 elements), group g (32 elements at 128h + 32g) and word L: ql words A (16h+L)
// and B (16h+8+L) and qh word H (32+8h+L) hold elements 128h + 32g + 4L + b (b = byte), combined
// into a word of four 6-bit values q (bits masked in place, scaled back by XS_LO). Words L < 4
// are sub-block 8h + 2g, the others 8h + 2g + 1 (int8 scales): value = d * s * (q - 32), so a
// sub-block gives d * s * (sum(q * x) - 32 * sum(x)). The X shuffles are shared by all rows.
uint q6_word(uint A, uint B, uint H, uint g) {
    const uint Q = g % 2u == 0u ? A : B;
    const uint Hs = g == 0u ? H << 4 : g == 1u ? H << 2 : g == 2u ? H : H >> 2;
    return ((g < 2u ? Q : Q >> 4) & 0x0F0F0F0Fu) | (Hs & 0x30303030u);
}
void lane_block(uint blk, bool last) {
    FETCH(w);
    const uint e0 = blk * 256u;
    float d[ROWS];
    [[unroll]] for (uint r = 0u; r < ROWS; r++) d[r] = unpackHalf2x16(w[r][52]).x;
    [[unroll]] for (uint h = 0u; h < 2u; h++)
        [[unroll]] for (uint g = 0u; g < 4u; g++) {
            vec4 xs[NC];
            vec2 s16[NC];
            [[unroll]] for (uint c = 0u; c < NC; c++) {
                const vec4 xl = lane_x(c, e0 + 128u * h + 32u * g, last);
                s16[c] = 32.0 * lane_xsum16(xl);
                xs[c] = xl * XS_LO;
            }
            float t[2][ROWS][NC]; // sub-blocks 8h + 2g, 8h + 2g + 1
            [[unroll]] for (uint r = 0u; r < ROWS; r++)
                [[unroll]] for (uint c = 0u; c < NC; c++) {
                    t[0][r][c] = 0.0;
                    t[1][r][c] = 0.0;
                }
            [[unroll]] for (uint L = 0u; L < 8u; L++) {
                vec4 y[NC]; // shuffled once for all rows
                [[unroll]] for (uint c = 0u; c < NC; c++) y[c] = XB(xs[c], L);
                [[unroll]] for (uint r = 0u; r < ROWS; r++) {
                    const vec4 v = b4(q6_word(w[r][16u * h + L], w[r][16u * h + 8u + L],
                                              w[r][32u + 8u * h + L], g));
                    [[unroll]] for (uint c = 0u; c < NC; c++) t[L / 4u][r][c] += dot(v, y[c]);
                }
            }
            [[unroll]] for (uint r = 0u; r < ROWS; r++) {
                const uint sb = 8u * h + 2u * g; // int8 scales sb, sb + 1 (same word)
                const int sw = int(w[r][48u + sb / 4u]);
                const float s0 = d[r] * float(bitfieldExtract(sw, int(8u * (sb % 4u)), 8));
                const float s1 = d[r] * float(bitfieldExtract(sw, int(8u * (sb % 4u) + 8u), 8));
                [[unroll]] for (uint c = 0u; c < NC; c++)
                    g_acc[r][c] += s0 * (t[0][r][c] - s16[c].x) + s1 * (t[1][r][c] - s16[c].y);
            }
        }
}
#endif
#undef FETCH

// The gated form (p.glu != 0, ROWS = 2, chosen on the C side): thread t's two rows are gate row
// j = row0 + t and up row j (p.glu bytes after it, modulo 2^32: it may lie before), and it writes
// silu(gate) * up, as swiglu.comp computes it, into Y[.][j].
void main() {
    const uint tid = gl_LocalInvocationIndex;
    const bool glu = GLU != 0u;
    const uint RW = gl_WorkGroupSize.x * (glu ? 1u : ROWS); // rows (outputs) per workgroup
    const uint row0 = (gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x) * RW;
    if (row0 >= p.m) return; // uniform over the workgroup

    uint wbase = p.w_off, up = p.glu;
    uint count = p.n, first = 0u, e = 0u;
    bool second = false; // the dispatch's second matrix (p.x2_z)
#ifdef MUL_ID
    e = gl_WorkGroupID.z;
    second = IDH == 0u && e == p.x2_z;
    if (second) {
        wbase = p.w2_off;
        up = p.glu2;
        count = p.n2;
    } else {
        if (IDH == 0u && p.act != 0u) { // z = entry of the active list
            const int na = mats[p.mats_off + 2u * p.n_mat];
            if (na < 0 || e >= uint(na)) return; // uniform over the workgroup
            const int ae = mats[p.mats_off + 2u * p.n_mat + 1u + e];
            if (ae < 0 || uint(ae) >= p.n_mat) return;
            e = uint(ae);
        }
        wbase += e * p.w_mat_bytes;
        if (IDH == 0u) {
            int f = mats[p.mats_off + 2u * e], c = mats[p.mats_off + 2u * e + 1u];
            bool ok = f >= 0 && c >= 0 && uint(c) <= p.n_rows && uint(f) <= p.n_rows - uint(c);
            first = ok ? uint(f) : 0u;
            count = ok ? uint(c) : 0u;
        }
    }
#endif
#if defined(QFLOAT)
    const uint nblk = p.k / LB; // full steps; the tail is done 4 at a time (dq4 masks k)
#else
    const uint nblk = p.k / QK;
#endif
    [[unroll]] for (uint r = 0u; r < ROWS; r++) {
        const uint j = min(row0 + tid + (glu ? 0u : gl_WorkGroupSize.x * r), p.m - 1u);
#ifdef MUL_ID
        g_rb[r] = wbase + j * p.w_row_bytes + (glu && r != 0u ? up : 0u);
#else // rows from m1 on: the second matrix (p.m1)
        g_rb[r] = j < p.m1 ? wbase + j * p.w_row_bytes + (glu && r != 0u ? up : 0u)
                           : p.w2_off + (j - p.m1) * p.w_row_bytes;
#endif
    }

    // llvmpipe runs every loop as a do-while under a lane mask: a `for` loop executes its body
    // once more with all lanes off after the last iteration (and once when it has none), and an
    // `if` never skips code, it only masks it. So the loops here test at the end: a pass of NC
    // columns is not paid twice, nor a block step once more per pass. With no columns at all
    // the one pass still runs, but reads no X and stores nothing (nc = 0).
    const uint cend = min(count, p.c_end);
    uint base = p.c_begin;
    do {
        const bool live = base < cend;
        const uint nc = live ? min(NC, count - base) : 0u;
        uint yrow[NC];
        [[unroll]] for (uint c = 0u; c < NC; c++) {
            uint i = base + c, xr = i, yr = i;
#ifdef MUL_ID
            if (second) {
                xr = p.x2_row + i;
                yr = p.y2_row + i;
            } else if (IDH == 0u) {
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

        if (XAL != 0u && WAL != 0u) {
            // aligned X and W: no step reads past its end, so one loop takes them all (one copy
            // of the step's code: llvmpipe runs both of the branches below under masks)
            if (nblk != 0u) {
                uint blk = 0u;
                do {
                    lane_block(blk, false);
                } while (++blk < nblk);
            }
        } else {
            // the row's last step is peeled off: it may not read past its end (lane_fetch)
            if (nblk > 1u) {
                uint blk = 0u;
                do {
                    lane_block(blk, false);
                } while (++blk + 1u < nblk);
            }
            if (nblk != 0u) lane_block(nblk - 1u, true);
        }
#if defined(QFLOAT)
        for (uint k0 = nblk * LB; k0 < p.k; k0 += 4u)
            [[unroll]] for (uint r = 0u; r < ROWS; r++) {
                const vec4 w = dq4(g_rb[r], k0);
                [[unroll]] for (uint c = 0u; c < NC; c++) {
                    vec4 xv = vec4(0.0);
                    if (g_xok[c])
                        for (uint j = 0u; j < 4u; j++)
                            if (k0 + j < p.k) xv[j] = XVAL(g_xb[c] + k0 + j);
                    g_acc[r][c] += dot(w, xv);
                }
            }
#endif
        if (glu) {
            const uint row = row0 + tid;
            [[unroll]] for (uint c = 0u; c < NC; c++)
                if (row < p.m && c < nc && yrow[c] < p.n_y) {
                    const float a = g_acc[0][c];
                    ydata[p.y_off + yrow[c] * p.y_stride + row] =
                        a / (1.0 + exp(-a)) * g_acc[ROWS - 1u][c];
                }
        } else {
            [[unroll]] for (uint r = 0u; r < ROWS; r++) {
                const uint row = row0 + tid + gl_WorkGroupSize.x * r;
                if (row >= p.m) continue;
#ifdef MUL_ID
                const uint yb = p.y_off, ys = p.y_stride, yj = row;
#else
                const bool two = row >= p.m1;
                const uint yb = two ? p.y2_off : p.y_off, ys = two ? p.y2_stride : p.y_stride;
                const uint yj = two ? row - p.m1 : row;
#endif
                [[unroll]] for (uint c = 0u; c < NC; c++)
                    if (c < nc && yrow[c] < p.n_y) ydata[yb + yrow[c] * ys + yj] = g_acc[r][c];
            }
        }
        base += NC;
    } while (base < cend);
}
