// moe_group.comp - groups the router's expert choices by expert (layout in fwd_common.h): one
// workgroup running moe_group.glsl.
// Bindings: 0 ids (int32 [n_tok*n_used]), 1 rows, 2 mats (int32 [3*n_expert+1]), 3 map.
#version 450
#extension GL_GOOGLE_include_directive : require
#include "fwd_common.h"

#define WG VKM_MOE_GROUP_WG

layout(local_size_x = WG) in;
layout(std430, set = 0, binding = 0) readonly buffer I { int ids[]; };
layout(std430, set = 0, binding = 1) writeonly buffer R { int rows[]; };
layout(std430, set = 0, binding = 2) writeonly buffer M { int mats[]; };
layout(std430, set = 0, binding = 3) writeonly buffer P { int map[]; };
layout(push_constant) uniform Push { vkm_push_moe_group p; };

#include "moe_group.glsl"

void main() { moe_group(WG); }
