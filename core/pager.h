/* pager.h - the bookkeeping of the expert cache: which (layer, expert) unit sits in which device
 * slot, which unit to evict (LRU, or LFU with exponentially decaying counts), and the counters.
 * Pure host code: the engine (core/experts.c) owns the slot memory and does the uploads; this
 * module only decides. Also the expert ranges of shaders/moe_group.comp's grouping, computed on
 * the host from the router's choices (which the paged forward reads back anyway).
 *
 * A request names the distinct experts one MoE layer needs for one batch; every one of them ends
 * up with a slot, and they stay pinned (never evicted) until the next request, so a request can
 * never evict a unit it needs itself. Units of other layers are evicted by the policy; free slots
 * are used first.
 *
 * Speculative prefetch (vkm_pager_prefetch) places a guessed unit of the next layer into a free
 * or cold slot (the policy's victim among the rest): never one the current request pinned, one
 * holding a unit guessed since that request, or an earlier prefetched unit not yet requested.
 * Counters: hits = requested units found resident (prefetched ones included); prefetched = units
 * placed by vkm_pager_prefetch; prefetch_used = of those, the ones requested before they were
 * evicted. A prefetched unit stays marked until its layer's next request (used or not) or its
 * eviction.
 *
 * Admission (vkm_pager_admit): a miss computed outside the slots (on the CPU) during the current
 * request may be placed into a free slot or, with LFU, over the coldest slot the request has not
 * pinned (nor a prefetched unit not yet requested) when its decayed count exceeds that unit's
 * by more than one use (pager.c ADMIT_MARGIN: no churn among units of nearly equal counts);
 * with LRU free slots only (recency alone says nothing about whether the newcomer is worth the
 * upload). An admitted unit is pinned with the request's. Counters: every admission candidate is
 * a miss; admitted = those placed.
 *
 * Invariants: slot_of[unit] == s  <=>  unit_in[s] == unit, for every resident unit; a slot holds
 * at most one unit; n_slots >= 1; pf[s] only for an occupied slot. */
#ifndef VKM_PAGER_H
#define VKM_PAGER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vkmoe.h"

typedef struct vkm_pager vkm_pager;

typedef struct vkm_pager_opts {
    uint32_t n_layer; /* units are (layer < n_layer, expert < n_expert) */
    uint32_t n_expert;
    uint32_t n_slots;     /* 1 .. n_layer * n_expert */
    int policy;           /* enum vkm_expert_policy */
    double lfu_half_life; /* LFU: requests after which a count has decayed to half; 0 = 64 */
} vkm_pager_opts;

/* VKM_EINVAL for an empty unit space, a bad slot count or policy. */
int vkm_pager_create(const vkm_pager_opts *o, vkm_pager **out);
void vkm_pager_destroy(vkm_pager *p); /* accepts NULL */

/* Makes the n distinct experts[] of `layer` resident: slots[i] receives expert i's slot and
 * miss[i] whether it must be uploaded (it was not resident; its slot may have held another unit,
 * now evicted). Releases the pins of the previous request and pins these. Counts one hit or miss
 * per expert. VKM_EINVAL for a bad layer, an expert out of range or given twice; VKM_ERANGE when
 * n exceeds the slots. On error nothing changes. */
int vkm_pager_request(vkm_pager *p, uint32_t layer, const int32_t *experts, int n, int32_t *slots,
                      bool *miss);
/* Speculatively makes (layer, expert) resident without pinning it: *slot receives its slot
 * (-1 when no slot may be used: see above), *placed whether it must be uploaded (false when it
 * was resident already, or no slot). Counts one prefetched unit when placed. VKM_EINVAL for a
 * bad layer or expert. */
int vkm_pager_prefetch(vkm_pager *p, uint32_t layer, int32_t expert, int32_t *slot, bool *placed);
/* A miss of (layer, expert) computed outside the slots during the current request (after its
 * vkm_pager_request): counts a miss and one use, then admits the unit as above. *slot receives
 * its slot (to be uploaded; the caller must not let the GPU read it before the copy completed)
 * or -1 when it is not admitted. VKM_EINVAL for a bad layer or expert, or a resident unit. */
int vkm_pager_admit(vkm_pager *p, uint32_t layer, int32_t expert, int32_t *slot);
/* The slot of a unit, or -1 when it is not resident. */
int32_t vkm_pager_slot_of(const vkm_pager *p, uint32_t layer, uint32_t expert);
/* The unit in slot s as layer * n_expert + expert, or -1 when the slot is free. */
int64_t vkm_pager_unit_in(const vkm_pager *p, uint32_t s);
uint32_t vkm_pager_n_slots(const vkm_pager *p);

/* Adds an upload of `bytes` that kept the host waiting `ms` milliseconds to the counters. */
void vkm_pager_note_upload(vkm_pager *p, uint64_t bytes, double ms);
/* Adds this pager's counters to *st (paged, n_slots and slot_bytes are left alone). */
void vkm_pager_add_stats(const vkm_pager *p, vkm_expert_stats *st);
void vkm_pager_reset_stats(vkm_pager *p);

/* The (first, count) of each expert x < n_expert in moe_group.comp's grouping of the choices
 * sel[n] (entries grouped by expert in expert order): ranges[2*x], ranges[2*x+1]. Ids outside
 * [0, n_expert) take no entry, as in the kernel. */
void vkm_pager_expert_ranges(const int32_t *sel, uint32_t n, uint32_t n_expert, int32_t *ranges);

#endif
