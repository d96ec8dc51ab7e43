// gemv.comp - GEMV for decode on GPUs with a straight-line main loop: Y[c][j] = sum_k W[j][k] *
// X[c][k] for NC columns at once (any count is covered in passes of NC), W in its GGUF encoding
// (-DTYPE_*: all 22 types of quant.glsl; the block decoders are in gemv_decode.glsl, the IQ
// types' in gemv_iq.glsl, whose grids are a buffer bound after the others: binding 3, or 5 with
// MUL_ID). With -DMUL_ID: the indexed form over a stack of matrices (matmul_common.h),
// matrix = z group (routed experts in ROWS mode, per-head matrices in HEADS mode). With GLU (spec
// 5, indexed form only) the gated form: each subgroup computes gate row j and up row j (p.glu bytes
// after it, modulo 2^32: it may lie before) over the same X loads and writes silu(gate) * up, as
// swiglu.comp computes it.
// Two matrices in one dispatch (matmul_common.h): the plain form's rows from p.m1 on are those of
// a second matrix at p.w2_off written at p.y2_off / p.y2_stride (q_a and kv_a of the same X), and
// the indexed form's z group p.x2_z computes a second matrix at p.w2_off (its up matrix p.glu2
// further) for p.n2 entries, X rows p.x2_row + i, Y rows p.y2_row + i (the shared expert beside
// the routed ones). Both are decided per workgroup or subgroup, outside the main loop.
//
// Layout: one subgroup per W row; a workgroup of WG threads (spec 0) has WG / S subgroups (S =
// the subgroup size) for as many consecutive rows (the C side sizes the grid by RPW = WG / S, spec
// 1; any other subgroup count still covers every row). Lane l of a row handles the units l,
// l + S, l + 2S, ... of the row: 32 weights of a block type (a whole Q4_0 .. Q8_0 block, a 16-byte
// slice of a Q4_K / Q5_K sub-block pair, an 8-position slice of a Q2_K / Q3_K / Q6_K half-block,
// see gemv_decode.glsl), so neighbouring lanes read neighbouring bytes and k = 2048 (64 units)
// fills a 64-lane subgroup with one whole loop trip, k = 7168 with 3.5; the float types step by
// PT pieces of 16 bytes a trip
// (F16/BF16 2, F32 4: 2 KiB of weights per 64-lane trip), pieces S apart, with a tail of single
// pieces and then of single elements (rows of any length). The row's sum is one subgroupAdd: no
// shared memory and no barrier.
//
// Nothing in the main loop tests a fact that is uniform over the dispatch: W alignment is spec 3
// (WAL = 1: w_off, the row and matrix strides are multiples of 16 bytes, so the 16-byte pieces of
// the float types and of Q4_K / Q5_K are single 128-bit loads; WAL = 0: they are read as five
// words joined by shifts by the piece's parity, computed, not branched on), X alignment is spec 4
// (XAL = 1: every X row starts 16-byte aligned, vec4 loads), the column count is spec 2 and
// columns that are absent in a pass (or X rows out of range) read X row 0 instead and write
// nothing (or 0 for a bad X row, as the other GEMVs do). Blocks at 2-byte aligned addresses (the
// 18/22/34/210-byte types) are read as whole words from the word below and realigned by the
// block's parity, (b & 2) * 8 bits, with shifts: no per-lane branch. The K-quant scales are
// decoded with bit operations from one load of the block's header. Each unit's loads come first
// (one basic block per trip, so the compiler issues them together).
// With -DQ8X (the integer-dot variants gemv_q8_<type>, gemv_q8_id_<type>): X is 8-bit, in
// matmul_common.h's Q8X format (quant_q8.comp), and the block types' loops are gemv_q8.glsl's.
// Invariants: NC <= VKM_MM_VEC_MAX_COLS, WG <= VKM_MM_VEC_MAX_WG (checked on the C side); W offsets
// are even (4-aligned for F32), as for the other matmul kernels.
#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_arithmetic : require
#extension GL_EXT_control_flow_attributes : require
#ifdef Q8X
#extension GL_EXT_spirv_intrinsics : require
#endif

#include "matmul_common.h"

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint RPW = 4; // rows per workgroup the C side assumes (WG / S)
layout(constant_id = 2) const uint NC = 1;  // X columns per pass
layout(constant_id = 3) const uint WAL = 0; // W offsets and strides are multiples of 16 bytes
layout(constant_id = 4) const uint XAL = 0; // X offset and row stride are multiples of 4 elements
layout(constant_id = 5) const uint GLU = 0; // the gated form (p.glu != 0)

layout(std430, set = 0, binding = 0) readonly buffer W { uint wdata[]; };
layout(std430, set = 0, binding = 0) readonly buffer W4 { uvec4 wdata4[]; };
#ifdef Q8X // X in matmul_common.h's Q8X format (quant_q8.comp); x_off / x_stride in 16-byte units
layout(std430, set = 0, binding = 1) readonly buffer XQ4 { uvec4 xq4[]; };
layout(std430, set = 0, binding = 1) readonly buffer XH4 { vec4 xh4[]; };
layout(std430, set = 0, binding = 1) readonly buffer XQ2 { uvec2 xq2[]; };
layout(std430, set = 0, binding = 1) readonly buffer XH2 { vec2 xh2[]; };
#else
layout(std430, set = 0, binding = 1) readonly buffer X { float xdata[]; };
layout(std430, set = 0, binding = 1) readonly buffer X4 { vec4 xdata4[]; };
#endif
layout(std430, set = 0, binding = 2) writeonly buffer Y { float ydata[]; };
#ifdef MUL_ID
layout(std430, set = 0, binding = 3) readonly buffer R { int rows[]; };
layout(std430, set = 0, binding = 4) readonly buffer M { int mats[]; };
#endif

uint g_wlast;    // the last word of the W window (the realigning loads never read past it)
uint g_xb[NC];   // element offset of column c's X row (row 0 for absent columns; Q8X: 16-byte unit)
float g_acc[NC]; // this lane's partial sums of the current row
float g_up[NC];  // GLU: those of its up row

void swap_up() { // exchanges g_acc and g_up (register renaming once compiled)
    [[unroll]] for (uint c = 0u; c < NC; c++) {
        const float t = g_acc[c];
        g_acc[c] = g_up[c];
        g_up[c] = t;
    }
}

#ifndef Q8X
// elements e..e+3 (e % 4 == 0) of column c
vec4 xv(uint c, uint e) {
    if (XAL != 0u) return xdata4[(g_xb[c] >> 2) + (e >> 2)];
    const uint b = g_xb[c] + e;
    return vec4(xdata[b], xdata[b + 1u], xdata[b + 2u], xdata[b + 3u]);
}
// acc + dot(w, x) as a chain of multiply-adds (no separate product and sum)
float fdot(vec4 w, vec4 x, float acc) {
    return fma(w.w, x.w, fma(w.z, x.z, fma(w.y, x.y, fma(w.x, x.x, acc))));
}
// g_acc[c] += dot(w, X[c][e..e+3]) for every column
void fma4(vec4 w, uint e) {
    [[unroll]] for (uint c = 0u; c < NC; c++) g_acc[c] = fdot(w, xv(c, e), g_acc[c]);
}
#endif

#include "gemv_decode.glsl"

void main() {
    const uint rblock = gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x;
    const uint row0 = rblock * RPW;
    if (row0 >= p.m) return; // uniform over the workgroup

    uint wbase = p.w_off, up = p.glu;
    uint count = p.n, first = 0u, e = 0u;
    bool second = false; // the dispatch's second matrix (p.x2_z): uniform over the workgroup
#ifdef MUL_ID
    e = gl_WorkGroupID.z;
    second = p.mode == VKM_MM_ID_ROWS && e == p.x2_z;
    if (second) {
        up = p.glu2;
        count = p.n2;
    } else if (p.mode == VKM_MM_ID_ROWS && p.act != 0u) { // z = entry of the active list
        const int na = mats[p.mats_off + 2u * p.n_mat];
        if (na < 0 || e >= uint(na)) return; // uniform over the workgroup
        const int ae = mats[p.mats_off + 2u * p.n_mat + 1u + e];
        if (ae < 0 || uint(ae) >= p.n_mat) return;
        e = uint(ae);
    }
    wbase = second ? p.w2_off : wbase + e * p.w_mat_bytes;
    if (p.mode == VKM_MM_ID_ROWS && !second) {
        int f = mats[p.mats_off + 2u * e], c = mats[p.mats_off + 2u * e + 1u];
        bool ok = f >= 0 && c >= 0 && uint(c) <= p.n_rows && uint(f) <= p.n_rows - uint(c);
        first = ok ? uint(f) : 0u;
        count = ok ? uint(c) : 0u;
    }
#endif
    const uint lane = gl_SubgroupInvocationID, S = gl_SubgroupSize;
    g_wlast = uint(wdata.length()) - 1u;

    for (uint base = 0u; base < count; base += NC) {
        const uint nc = min(NC, count - base);
        uint yrow[NC];
        bool xok[NC];
        [[unroll]] for (uint c = 0u; c < NC; c++) {
            uint i = base + c, xr = i, yr = i;
#ifdef MUL_ID
            if (second) {
                xr = p.x2_row + i;
                yr = p.y2_row + i;
            } else if (p.mode == VKM_MM_ID_ROWS) {
                int r = c < nc ? rows[p.rows_off + first + i] : 0;
                xr = r < 0 ? 0xFFFFFFFFu : uint(r);
                yr = first + i;
            } else {
                xr = i * p.n_mat + e;
                yr = xr;
            }
#endif
            xok[c] = c < nc && xr < p.n_x;
            g_xb[c] = p.x_off + (xok[c] ? xr * p.x_stride : 0u);
            yrow[c] = c < nc && yr < p.n_y ? yr : 0xFFFFFFFFu;
        }

        for (uint r = gl_SubgroupID; r < RPW; r += gl_NumSubgroups) {
            const uint row = row0 + r;
            const bool live = row < p.m; // uniform over the subgroup
            const uint j = min(row, p.m - 1u);
#ifdef MUL_ID
            const uint rb = wbase + j * p.w_row_bytes;
#else // rows from m1 on: the second matrix (p.m1; 0xFFFFFFFF = none)
            const bool two = j >= p.m1;
            const uint rb = two ? p.w2_off + (j - p.m1) * p.w_row_bytes : wbase + j * p.w_row_bytes;
#endif
            [[unroll]] for (uint c = 0u; c < NC; c++) g_acc[c] = g_up[c] = 0.0;
            gemv_row(rb, rb + (GLU != 0u ? up : 0u), lane, S);
            float sum[NC];
            [[unroll]] for (uint c = 0u; c < NC; c++) sum[c] = subgroupAdd(g_acc[c]);
            if (GLU != 0u) [[unroll]]
                for (uint c = 0u; c < NC; c++) {
                    const float a = sum[c];
                    sum[c] = a / (1.0 + exp(-a)) * subgroupAdd(g_up[c]);
                }
#ifdef MUL_ID
            const uint yb = p.y_off, ys = p.y_stride, yj = row;
#else
            const uint yb = two ? p.y2_off : p.y_off, ys = two ? p.y2_stride : p.y_stride;
            const uint yj = two ? row - p.m1 : row;
#endif
            if (live && lane == 0u) [[unroll]]
                for (uint c = 0u; c < NC; c++)
                    if (yrow[c] != 0xFFFFFFFFu) ydata[yb + yrow[c] * ys + yj] = xok[c] ? sum[c] : 0.0;
        }
    }
}
