/* fwd_common.h - push-constant layouts and limits of the kernels owned by the forward pass
 * (core/forward.c), shared by C and GLSL like ops_common.h (whose VKM_PC_* macros this reuses).
 *
 * moe_group.comp groups the router's choices by expert on the GPU so the grouped expert matmuls
 * (vkm_op_matmul_id, VKM_MATMUL_ID_ROWS) and vkm_op_moe_combine need no host round trip:
 *   ids  int32 [n_tok][n_used]   (from vkm_op_router)
 *   rows int32 [n_tok*n_used]    X row (= token) of each grouped entry, entries grouped by expert
 *                                 in expert order, tokens ascending inside an expert
 *   mats int32 [3*n_expert+1]    (first entry, count) of each expert in rows[]; then the active
 *                                 list: mats[2*n_expert] = A, the number of experts with
 *                                 entries, mats[2*n_expert+1 ..+A) those experts ascending
 *                                 (vkm_matmul_id.active_list)
 *   map  int32 [n_tok][n_used]   entry of rows[] holding token t's j-th choice (-1 for an id
 *                                 outside [0, n_expert), which moe_combine then skips)
 * One workgroup does everything; the result is deterministic. */
#ifndef VKM_FWD_COMMON_H
#define VKM_FWD_COMMON_H

#include "ops_common.h"

#define VKM_MOE_GROUP_WG 256
#define VKM_MOE_GROUP_MAX_EXPERT VKM_ROUTER_MAX_EXPERT

VKM_PC_STRUCT(vkm_push_moe_group) {
    VKM_PC_U32 n_tok;
    VKM_PC_U32 n_used;
    VKM_PC_U32 n_expert; /* <= VKM_MOE_GROUP_MAX_EXPERT */
};

#ifdef __STDC__
_Static_assert(sizeof(vkm_push_moe_group) == 12, "vkm_push_moe_group layout");
#endif

#endif
