/* attn_lane.h - the push-constant layout of the CPU devices' attention kernel, shared by C
 * (core/ops.c) and GLSL (cpu/mla_attn_lane.comp, which includes this instead of declaring its
 * own block).
 *
 * vkm_push_attn_lane is the GPU kernel's vkm_push_attn (its fields and their meaning:
 * ops_common.h) followed by the key range of one pass: lavapipe ends an invocation after 65535
 * loop iterations in all, silently, so the host splits the keys into passes of VKM_ATTN_LANE_KEYS
 * (core/ops.c attn_lane), each taking keys k_begin <= p < k_end and carrying the running max and
 * sum to the next through the state buffer. Invariant: 96 bytes (within the 128 of push constants
 * every Vulkan device has). */
#ifndef VKM_ATTN_LANE_H
#define VKM_ATTN_LANE_H

#include "../ops_common.h"

#ifdef __STDC__
#include <stddef.h>

typedef struct vkm_push_attn_lane {
    vkm_push_attn a;
    uint32_t k_begin, k_end; /* this pass takes keys k_begin <= p < k_end */
} vkm_push_attn_lane;
_Static_assert(sizeof(vkm_push_attn_lane) == 96, "vkm_push_attn_lane layout");
_Static_assert(offsetof(vkm_push_attn_lane, k_begin) == sizeof(vkm_push_attn),
               "vkm_push_attn_lane layout");
#else
layout(push_constant) uniform Push {
    vkm_push_attn p;
    uint k_begin;
    uint k_end;
};
#endif

#endif
