// matmul_sg.comp - GEMV for decode on GPUs: Y[c][j] = sum_k W[j][k] * X[c][k] for NC columns at
// once (any count is covered in passes of NC), W in its GGUF encoding (quant.glsl, -DTYPE_*).
// With -DMUL_ID: the indexed form over a stack of matrices (matmul_common.h), matrix = z group.
//
// Layout: KS subgroups per W row (spec 3: 1, or 2-4 for matrices of few rows, where one subgroup
// per row would leave the GPU mostly idle). A workgroup of WG threads (spec 0) computes RPW
// consecutive rows (spec 1): its subgroups form groups of KS (slots), and slot s takes rows s,
// s + slots, ... (the C side sizes RPW = WG / (KS * the device's subgroup size); any other
// subgroup count still covers every row). Within a row, lane l of part q (< KS) handles the units
// (q * S + l) + i * KS * S (S = subgroup size) of UNIT consecutive elements: 16 bytes of a float
// row (one 128-bit load when the rows are 16-byte aligned), half a Q8_0 block, a whole 32-element
// block (Q4_0 .. Q5_1) or a 32-element sub-block (the K-quants), decoded from whole words (every
// byte of the unit loaded once, neighbouring lanes reading neighbouring bytes) with its scales
// read once; X is read as vec4 when its rows
// are 16-byte aligned; two units per loop step, so that their loads are in flight together. With
// KS = 1 the row's sum is one subgroupAdd: no shared memory and no barrier; with KS > 1 the parts'
// sums meet in shared memory. Rows are numbered by workgroup x + y * gridX (grids over 65535).
// Float rows whose length is not a multiple of UNIT end with a tail of dq4 groups.
// Invariants: NC <= VKM_MM_VEC_MAX_COLS (checked on the C side); W offsets are even (4-aligned
// for F32), as quant.glsl requires.
#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_arithmetic : require
#extension GL_EXT_control_flow_attributes : require

#include "matmul_common.h"

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint RPW = 4;
layout(constant_id = 2) const uint NC = 1;
layout(constant_id = 3) const uint KS = 1;

layout(std430, set = 0, binding = 0) readonly buffer W { uint wdata[]; };
layout(std430, set = 0, binding = 0) readonly buffer W4 { uvec4 wdata4[]; };
layout(std430, set = 0, binding = 1) readonly buffer X { float xdata[]; };
layout(std430, set = 0, binding = 1) readonly buffer X4 { vec4 xdata4[]; };
layout(std430, set = 0, binding = 2) writeonly buffer Y { float ydata[]; };
#ifdef MUL_ID
layout(std430, set = 0, binding = 3) readonly buffer R { int rows[]; };
layout(std430, set = 0, binding = 4) readonly buffer M { int mats[]; };
#endif

#include "quant.glsl"

shared float red[VKM_MM_VEC_MAX_SUBGROUPS][VKM_MM_VEC_MAX_COLS]; // KS > 1: the parts' sums

// Elements per unit: 16 bytes of weights for the float types (neighbouring lanes read
// neighbouring 16-byte pieces: one 128-bit load each when aligned), half a block for Q8_0.
#if defined(TYPE_F32)
#define UNIT 4u
#elif defined(TYPE_F16) || defined(TYPE_BF16)
#define UNIT 8u
#elif defined(TYPE_Q8_0)
#define UNIT 16u
#else
#define UNIT 32u
#endif

bool g_w16; // W rows and matrices start 16-byte aligned: w_16a may use 128-bit loads

// The 4 little-endian words at byte b (b even): one load per word when b is 4-aligned, else
// five loads joined by shifts.
uvec4 w_16(uint b) {
    const uint i = b >> 2;
    const uvec4 a = uvec4(wdata[i], wdata[i + 1u], wdata[i + 2u], wdata[i + 3u]);
    if ((b & 2u) == 0u) return a;
    const uint e = wdata[i + 4u];
    return uvec4((a.x >> 16) | (a.y << 16), (a.y >> 16) | (a.z << 16), (a.z >> 16) | (a.w << 16),
                 (a.w >> 16) | (e << 16));
}

// w_16(b) for b % 16 == 0 when g_w16 holds (the K-quant and float layouts keep that alignment
// inside their rows): one 128-bit load
uvec4 w_16a(uint b) {
    if (g_w16) return wdata4[b >> 4];
    return w_16(b);
}

vec4 nib_lo(uint v) {
    return vec4(u8x4(v & 0x0F0F0F0Fu));
}
vec4 nib_hi(uint v) {
    return vec4(u8x4((v >> 4) & 0x0F0F0F0Fu));
}

// ---- X ----
bool g_x4;       // X rows start 16-byte aligned: vec4 loads
uint g_xb[NC];   // element offset of column c's X row
bool g_xok[NC];  // column c is present and its X row is in range
float g_acc[NC]; // this lane's partial sums of the current row

vec4 x4(uint c, uint e) { // elements e..e+3 (e % 4 == 0, e + 4 <= k) of column c
    if (!g_xok[c]) return vec4(0.0);
    const uint b = g_xb[c] + e;
    if (g_x4) return xdata4[b >> 2];
    return vec4(xdata[b], xdata[b + 1u], xdata[b + 2u], xdata[b + 3u]);
}

// g_acc[c] += dot(w, X[c][e..e+3]) for every column
void fma4(vec4 w, uint e) {
    [[unroll]] for (uint c = 0u; c < NC; c++) g_acc[c] += dot(w, x4(c, e));
}
// g_acc[c] += s * dot(q, X[c][e..e+3]) + mn * sum(X[c][e..e+3]): the scale applied per 4
void fma4s(vec4 q, float s, float mn, uint e) {
    fma4(q * s + mn, e);
}

// ---- units: g_acc += the products of unit u (elements UNIT*u ..) of the row at byte rb ----
#if defined(TYPE_F32)
void unit(uint rb, uint u) {
    fma4(uintBitsToFloat(w_16a(rb + 16u * u)), 4u * u);
}
#elif defined(TYPE_F16) || defined(TYPE_BF16)
void unit(uint rb, uint u) {
    const uvec4 a = w_16a(rb + 16u * u);
    fma4(vec4(h2f(a.x), h2f(a.y)), 8u * u);
    fma4(vec4(h2f(a.z), h2f(a.w)), 8u * u + 4u);
}
#elif defined(TYPE_Q4_0) || defined(TYPE_Q4_1)
#if defined(TYPE_Q4_0)
#define BB 18u
#define QO 2u
#else
#define BB 20u
#define QO 4u
#endif
void unit(uint rb, uint u) {
    const uint bb = rb + BB * u, e = 32u * u;
    const uvec4 q = w_16(bb + QO);
#if defined(TYPE_Q4_0)
    const float d = w_f16(bb), mn = -8.0 * d;
#else
    const vec2 dm = unpackHalf2x16(w_u32(bb));
    const float d = dm.x, mn = dm.y;
#endif
    [[unroll]] for (uint j = 0u; j < 4u; j++) {
        fma4s(nib_lo(q[j]), d, mn, e + 4u * j);
        fma4s(nib_hi(q[j]), d, mn, e + 16u + 4u * j);
    }
}
#elif defined(TYPE_Q5_0) || defined(TYPE_Q5_1)
#if defined(TYPE_Q5_0)
#define BB 22u
#define HO 2u
#else
#define BB 24u
#define HO 4u
#endif
// the 5th bits of elements j..j+3 (bits j..j+3 of qh) as 16s
vec4 hbits(uint qh, uint j) {
    return vec4((uvec4(qh) >> (uvec4(0u, 1u, 2u, 3u) + j)) & 1u) * 16.0;
}
void unit(uint rb, uint u) {
    const uint bb = rb + BB * u, e = 32u * u;
    const uvec4 q = w_16(bb + HO + 4u);
    const uint qh = w_u32(bb + HO);
#if defined(TYPE_Q5_0)
    const float d = w_f16(bb), mn = -16.0 * d;
#else
    const vec2 dm = unpackHalf2x16(w_u32(bb));
    const float d = dm.x, mn = dm.y;
#endif
    [[unroll]] for (uint j = 0u; j < 4u; j++) {
        fma4s(nib_lo(q[j]) + hbits(qh, 4u * j), d, mn, e + 4u * j);
        fma4s(nib_hi(q[j]) + hbits(qh, 16u + 4u * j), d, mn, e + 16u + 4u * j);
    }
}
#elif defined(TYPE_Q8_0)
void unit(uint rb, uint u) { // half u % 2 of block u / 2
    const uint bb = rb + 34u * (u >> 1);
    const float d = w_f16(bb);
    const uvec4 q = w_16(bb + 2u + 16u * (u & 1u));
    [[unroll]] for (uint j = 0u; j < 4u; j++) fma4(d * vec4(i8x4(q[j])), 16u * u + 4u * j);
}
#elif defined(TYPE_Q2_K)
// unit = 32 elements j0 = 32 * (u % 8) of block u / 8: 2 scale bytes, 32 quant bytes (2 bits each)
void unit(uint rb, uint u) {
    const uint bb = rb + 84u * (u >> 3), j0 = 32u * (u & 7u), e = 32u * u;
    const uint h = j0 >> 7, s = ((j0 >> 5) & 3u) * 2u;
    const vec2 dm = unpackHalf2x16(w_u32(bb + 80u));
    [[unroll]] for (uint half_ = 0u; half_ < 2u; half_++) {
        const uint sc = w_u8(bb + (j0 >> 4) + half_);
        const float d = dm.x * float(sc & 15u), mn = -dm.y * float(sc >> 4);
        const uvec4 q = w_16(bb + 16u + 32u * h + 16u * half_);
        [[unroll]] for (uint j = 0u; j < 4u; j++)
            fma4s(vec4(u8x4((q[j] >> s) & 0x03030303u)), d, mn, e + 16u * half_ + 4u * j);
    }
}
#elif defined(TYPE_Q3_K)
void unit(uint rb, uint u) {
    const uint bb = rb + 110u * (u >> 3), j0 = 32u * (u & 7u), e = 32u * u;
    const uint h = j0 >> 7, jj = (j0 >> 5) & 3u;
    const float dd = w_f16(bb + 108u);
    [[unroll]] for (uint half_ = 0u; half_ < 2u; half_++) {
        const uint sb = (j0 >> 4) + half_;
        const uint low4 = sb < 8u ? (w_u8(bb + 96u + sb) & 15u) : (w_u8(bb + 88u + sb) >> 4);
        const uint hi2 = (w_u8(bb + 104u + (sb & 3u)) >> (2u * (sb >> 2))) & 3u;
        const float d = dd * float(int(low4 | (hi2 << 4)) - 32);
        const uvec4 q = w_16(bb + 32u + 32u * h + 16u * half_);
        const uvec4 m = w_16(bb + 16u * half_);
        [[unroll]] for (uint j = 0u; j < 4u; j++) {
            const vec4 q2 = vec4(u8x4((q[j] >> (2u * jj)) & 0x03030303u));
            const vec4 hb = vec4(u8x4((m[j] >> (4u * h + jj)) & 0x01010101u));
            fma4s(q2 + 4.0 * hb, d, -4.0 * d, e + 16u * half_ + 4u * j);
        }
    }
}
#elif defined(TYPE_Q4_K) || defined(TYPE_Q5_K)
void unit(uint rb, uint u) {
    const uint bb = rb + QBYTES * (u >> 3), sb = u & 7u, e = 32u * u;
    const uint c = sb >> 1, sh = (sb & 1u) * 4u;
    const uvec2 sm = scale_min_k4(bb + 4u, sb);
    const vec2 dm = unpackHalf2x16(w_u32(bb));
    const float d = dm.x * float(sm.x), mn = -dm.y * float(sm.y);
    [[unroll]] for (uint half_ = 0u; half_ < 2u; half_++) {
        const uvec4 q = w_16a(bb + QS_OFF + 32u * c + 16u * half_);
#if defined(TYPE_Q5_K)
        const uvec4 qh = w_16a(bb + 16u + 16u * half_);
#endif
        [[unroll]] for (uint j = 0u; j < 4u; j++) {
            vec4 v = vec4(u8x4((q[j] >> sh) & 0x0F0F0F0Fu));
#if defined(TYPE_Q5_K)
            v += 16.0 * vec4(u8x4((qh[j] >> sb) & 0x01010101u));
#endif
            fma4s(v, d, mn, e + 16u * half_ + 4u * j);
        }
    }
}
#elif defined(TYPE_Q6_K)
void unit(uint rb, uint u) {
    const uint bb = rb + 210u * (u >> 3), j0 = 32u * (u & 7u), e = 32u * u;
    const uint h = j0 >> 7, g = (j0 >> 5) & 3u;
    const float dd = w_f16(bb + 208u);
    [[unroll]] for (uint half_ = 0u; half_ < 2u; half_++) {
        const float d = dd * float(bitfieldExtract(int(w_u8(bb + 192u + (j0 >> 4) + half_)), 0, 8));
        const uvec4 ql = w_16(bb + 64u * h + 32u * (g & 1u) + 16u * half_);
        const uvec4 qh = w_16(bb + 128u + 32u * h + 16u * half_);
        [[unroll]] for (uint j = 0u; j < 4u; j++) {
            const uvec4 lo = u8x4((ql[j] >> (4u * (g >> 1))) & 0x0F0F0F0Fu);
            const uvec4 hi = u8x4((qh[j] >> (2u * g)) & 0x03030303u);
            fma4s(vec4(lo | (hi << 4)), d, -32.0 * d, e + 16u * half_ + 4u * j);
        }
    }
}
#elif defined(QIQ)
// a run of 32 elements: its 8 groups of 4 decoded from the block's bytes (quant.glsl's IQ_DQ4
// with its buffer accessors IQ_B*, which read at byte bb)
void unit(uint rb, uint u) {
    const uint bb = rb + QBYTES * (u / (QK / 32u)), g0 = 8u * (u % (QK / 32u)), e = 32u * u;
    [[unroll]] for (uint j = 0u; j < 8u; j++)
        fma4(IQ_DQ4(IQ_B8, IQ_B16, IQ_B32, g0 + j), e + 4u * j);
}
#endif

void main() {
    const uint rblock = gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x;
    const uint row0 = rblock * RPW;
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
    const uint lane = gl_SubgroupInvocationID, S = gl_SubgroupSize;
    const uint n_unit = p.k / UNIT;
    g_x4 = ((p.x_off | p.x_stride) & 3u) == 0u;
    g_w16 = ((p.w_off | p.w_row_bytes | p.w_mat_bytes) & 15u) == 0u;

    for (uint base = 0u; base < count; base += NC) {
        const uint nc = min(NC, count - base);
        uint yrow[NC];
        [[unroll]] for (uint c = 0u; c < NC; c++) {
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
            g_xok[c] = c < nc && xr < p.n_x;
            g_xb[c] = g_xok[c] ? p.x_off + xr * p.x_stride : 0u;
            yrow[c] = c < nc ? yr : 0xFFFFFFFFu;
        }

        // KS subgroups per row when the subgroup count allows it (else 1); every subgroup runs
        // the same number of steps, so the barriers below are in uniform control flow
        const uint ks = (KS > 1u && gl_NumSubgroups % KS == 0u) ? KS : 1u;
        const uint slots = gl_NumSubgroups / ks, slot = gl_SubgroupID / ks;
        const uint part = gl_SubgroupID % ks, stride = ks * S, u0 = part * S + lane;
        for (uint r0 = 0u; r0 < RPW; r0 += slots) {
            const uint row = row0 + r0 + slot;
            const bool live = r0 + slot < RPW && row < p.m; // uniform over the subgroup
            [[unroll]] for (uint c = 0u; c < NC; c++) g_acc[c] = 0.0;
            if (live) {
                const uint rb = wbase + row * p.w_row_bytes;
                uint u = u0;
#if defined(QIQ) // one unit a step: a third of the code (lavapipe compiles it slowly)
                for (; u < n_unit; u += stride) unit(rb, u);
#else
                for (; u + stride < n_unit; u += 2u * stride) {
                    unit(rb, u);
                    unit(rb, u + stride);
                }
                if (u < n_unit) unit(rb, u);
#endif
#if defined(QFLOAT)
                // the row's last k % UNIT elements, 4 per lane (dq4 reads elements >= k as 0)
                for (uint k0 = n_unit * UNIT + 4u * (part * S + lane); k0 < p.k;
                     k0 += 4u * stride) {
                    const vec4 w = dq4(rb, k0);
                    [[unroll]] for (uint c = 0u; c < NC; c++) {
                        vec4 xv = vec4(0.0);
                        if (g_xok[c])
                            for (uint j = 0u; j < 4u; j++)
                                if (k0 + j < p.k) xv[j] = xdata[g_xb[c] + k0 + j];
                        g_acc[c] += dot(w, xv);
                    }
                }
#endif
            }
            float sum[NC];
            [[unroll]] for (uint c = 0u; c < NC; c++) sum[c] = subgroupAdd(g_acc[c]);
            if (ks > 1u) {
                if (lane == 0u) [[unroll]]
                    for (uint c = 0u; c < NC; c++) red[gl_SubgroupID][c] = sum[c];
                barrier();
                if (part == 0u)
                    for (uint q = 1u; q < ks; q++)
                        [[unroll]] for (uint c = 0u; c < NC; c++) sum[c] +=
                            red[gl_SubgroupID + q][c];
                barrier();
            }
            if (live && part == 0u && lane == 0u) [[unroll]]
                for (uint c = 0u; c < NC; c++)
                    if (c < nc && yrow[c] < p.n_y)
                        ydata[p.y_off + yrow[c] * p.y_stride + row] = sum[c];
        }
    }
}
