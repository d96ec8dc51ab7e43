// matmul_vec.comp - the k-split GEMV of GPUs: Y[c][j] = sum_k W[j][k] * X[c][k] for NC columns
// at once (any count is covered in passes of NC), W in its GGUF encoding (quant.glsl, -DTYPE_*).
// With -DMUL_ID: the indexed form over a stack of matrices (matmul_common.h), matrix = z group.
// (CPU devices run cpu/matmul_lane.comp instead, where each invocation owns whole rows.)
//
// Workgroup: WG threads (spec 0) compute ROWS consecutive W rows (spec 1) for NC columns (spec 2;
// the C side picks the power of two >= the column count, as the code grows with NC). Each thread
// walks groups of 4 elements strided by WG, dequantizes each group of each row once in registers
// and multiplies it with every column; partial sums are reduced with subgroupAdd and then across
// subgroups through shared memory. Row blocks are numbered x + y * gridX (grids over 65535).
// Invariants: WG <= VKM_MM_VEC_MAX_WG, ROWS <= VKM_MM_VEC_MAX_ROWS, NC <= VKM_MM_VEC_MAX_COLS,
// WG >= ROWS * NC (checked on the C side).
#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_arithmetic : require

#include "matmul_common.h"

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint ROWS = 2;
layout(constant_id = 2) const uint NC = VKM_MM_VEC_MAX_COLS;

layout(std430, set = 0, binding = 0) readonly buffer W { uint wdata[]; };
layout(std430, set = 0, binding = 1) readonly buffer X { float xdata[]; };
#define WORD(i) wdata[i]
#define XVAL(i) xdata[i]
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
            if (e + j < p.k) v[j] = XVAL(b + e + j);
        return v;
    }
#endif
    return vec4(XVAL(b + e), XVAL(b + e + 1u), XVAL(b + e + 2u), XVAL(b + e + 3u));
}

void main() {
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
