// matmul_mm.comp - tiled GEMM for prefill: Y[c][j] = sum_k W[j][k] * X[c][k], W in its GGUF
// encoding (quant.glsl, -DTYPE_*). With -DMUL_ID: the indexed form over a stack of matrices
// (matmul_common.h), matrix = z group.
//
// A workgroup owns VKM_MM_BM weight rows (x group) and walks column tiles of VKM_MM_BN X columns
// (y group, strided by the grid height, so any column count is covered). Per step of VKM_MM_BK
// elements it dequantizes the W tile into shared memory as float, loads the X tile, and every
// thread accumulates a 4x4 register tile (rows ty + 16 i, columns tx + 16 j). Rows past m and
// columns past the count are computed as zeros and not stored; the float types also mask k.
#version 450
#extension GL_GOOGLE_include_directive : require

#include "matmul_common.h"

layout(local_size_x = VKM_MM_WG) in;

layout(std430, set = 0, binding = 0) readonly buffer W { uint wdata[]; };
layout(std430, set = 0, binding = 1) readonly buffer X { float xdata[]; };
layout(std430, set = 0, binding = 2) writeonly buffer Y { float ydata[]; };
#ifdef MUL_ID
layout(std430, set = 0, binding = 3) readonly buffer R { int rows[]; };
layout(std430, set = 0, binding = 4) readonly buffer M { int mats[]; };
#endif

#include "quant.glsl"

#define BM VKM_MM_BM
#define BN VKM_MM_BN
#define BK VKM_MM_BK
#define TM (BM / 16)
#define TN (BN / 16)

shared float ws[BK][BM + 1];
shared float xs[BK][BN + 1];

void main() {
    const uint tid = gl_LocalInvocationIndex;
    const uint tx = tid % 16u, ty = tid / 16u;
    const uint row0 = gl_WorkGroupID.x * BM;

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

    // W tile loading: thread handles groups g = tid + s * WG of the BM x (BK/4) groups;
    // 8 consecutive threads read one row's BK elements (contiguous bytes).
    const uint GPR = BK / 4u; // groups per row
    // X tile loading: thread handles column tid / (BK/8) and 8 elements at ((tid % 4) * 8).
    const uint xcol = tid / (BK / 8u), xk = (tid % (BK / 8u)) * 8u;

    for (uint tile = gl_WorkGroupID.y; tile * BN < count; tile += gl_NumWorkGroups.y) {
        const uint col0 = tile * BN;

        // where this thread's X column comes from
        uint ci = col0 + xcol, xr = ci;
#ifdef MUL_ID
        if (ci < count) {
            if (p.mode == VKM_MM_ID_ROWS) {
                int r = rows[p.rows_off + first + ci];
                xr = r < 0 ? 0xFFFFFFFFu : uint(r);
            } else {
                xr = ci * p.n_mat + e;
            }
        }
#endif
        const bool xok = ci < count && xr < p.n_x;
        const uint xb = xok ? p.x_off + xr * p.x_stride : 0u;

        float acc[TM][TN];
        for (uint i = 0u; i < TM; i++)
            for (uint j = 0u; j < TN; j++) acc[i][j] = 0.0;

        for (uint k0 = 0u; k0 < p.k; k0 += BK) {
            for (uint g = tid; g < BM * GPR; g += VKM_MM_WG) {
                const uint r = g / GPR, kk = (g % GPR) * 4u;
                vec4 w = vec4(0.0);
                if (row0 + r < p.m && k0 + kk < p.k)
                    w = dq4(wbase + (row0 + r) * p.w_row_bytes, k0 + kk);
                ws[kk][r] = w.x;
                ws[kk + 1u][r] = w.y;
                ws[kk + 2u][r] = w.z;
                ws[kk + 3u][r] = w.w;
            }
            for (uint j = 0u; j < 8u; j++) {
                const uint kj = k0 + xk + j;
                xs[xk + j][xcol] = (xok && kj < p.k) ? xdata[xb + kj] : 0.0;
            }
            barrier();
            for (uint kk = 0u; kk < BK; kk++) {
                float a[TM], b[TN];
                for (uint i = 0u; i < TM; i++) a[i] = ws[kk][ty + 16u * i];
                for (uint j = 0u; j < TN; j++) b[j] = xs[kk][tx + 16u * j];
                for (uint i = 0u; i < TM; i++)
                    for (uint j = 0u; j < TN; j++) acc[i][j] += a[i] * b[j];
            }
            barrier();
        }

        for (uint j = 0u; j < TN; j++) {
            const uint c = col0 + tx + 16u * j;
            if (c >= count) continue;
            uint yr = c;
#ifdef MUL_ID
            yr = p.mode == VKM_MM_ID_ROWS ? first + c : c * p.n_mat + e;
#endif
            if (yr >= p.n_y) continue;
            for (uint i = 0u; i < TM; i++) {
                const uint r = row0 + ty + 16u * i;
                if (r < p.m) ydata[p.y_off + yr * p.y_stride + r] = acc[i][j];
            }
        }
    }
}
