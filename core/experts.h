/* experts.h - what the other files implementing an engine use of its routed experts
 * (core/experts.c); the forward pass and the session see them through engine.h. */
#ifndef VKM_EXPERTS_H
#define VKM_EXPERTS_H

#include "engine_impl.h"

/* Decides whether the experts are paged and, if so, how many slots each class gets, from the
 * budget (see vkmoe.h; `forced`, when not 0, replaces opts.vram_budget), the bytes of the other
 * weights (main) and of all experts (experts). `in_place`: the resident weights will be used in
 * place from the imported file mapping, so that they take no device memory (the automatic budget
 * does not count them). `cap`: the bytes one slot stack may take (weights.h vkm_weights_big_cap).
 * Errors as vkm_engine_open's for a budget below the paging minimum. */
int vkm_experts_plan(vkm_engine *e, uint64_t main, uint64_t experts, uint64_t cap, uint64_t forced,
                     bool in_place);

/* Creates the slot stacks, the staging and range buffers and the pagers, and points the expert
 * descriptors of every MoE layer at its class's stacks. */
int vkm_experts_setup(vkm_engine *e);

/* Frees the expert cache (slot stacks, pagers, staging ring, range buffer, expert imports'
 * bookkeeping); safe on an engine that does not page, or pages partly set up. */
void vkm_experts_destroy(vkm_engine *e);

#endif
