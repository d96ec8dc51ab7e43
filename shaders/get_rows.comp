// get_rows.comp - embedding lookup: y[i*y_stride + e] = dequant(row ids[i] of the table)[e] for
// e < k (spec §4.1: row t of token_embd, dequantized, no scaling). The weight format comes from
// quant.glsl (-DTYPE_<T>, variants get_rows_<t>), which reads the raw GGUF bytes as uint words;
// each invocation produces 4 consecutive elements. Block types need k % QK == 0 (host-checked).
// Ids outside [0, n_vocab) give a zero row, so bad token ids never read out of bounds. A table
// larger than one binding comes in windows of rows (p.row0, p.rows; one dispatch each): a window
// writes the rows of the ids it holds, the window of row 0 also the zero rows.
// Bindings: 0 wdata (raw table bytes of the window's rows), 1 ids (int32 [n_ids]),
// 2 y (f32 [n_ids][y_stride]). Grid: x over groups of 4 in a row, y over ids (grid-stride).
#version 450
#extension GL_GOOGLE_include_directive : require
#include "ops_common.h"

layout(local_size_x = VKM_OPS_WG) in;
layout(std430, set = 0, binding = 0) readonly buffer WD { uint wdata[]; };
layout(std430, set = 0, binding = 1) readonly buffer I { int ids[]; };
layout(std430, set = 0, binding = 2) writeonly buffer Y { float y[]; };
layout(push_constant) uniform Push { vkm_push_get_rows p; };

#include "quant.glsl"

void main() {
    const uint e = gl_GlobalInvocationID.x * 4u;
    if (e >= p.k) return;
    for (uint i = gl_WorkGroupID.y; i < p.n_ids; i += gl_NumWorkGroups.y) {
        const int id = ids[i];
        const bool valid = id >= 0 && uint(id) < p.n_vocab;
        const uint r = uint(id) - p.row0; // wraps for ids below the window
        if (valid ? r >= p.rows : p.row0 != 0u) continue; // another window's
        vec4 v = vec4(0.0);
        if (valid) v = dq4(p.w_off + r * p.row_bytes, e);
        const uint yb = i * p.y_stride + e;
        for (uint j = 0u; j < 4u && e + j < p.k; j++) y[yb + j] = v[j];
    }
}
