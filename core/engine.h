/* engine.h - what core/session.c (and tests) may use of an engine beyond the public API of
 * vkmoe.h: its GPU, its host and device models, and the profile accumulator. Internal: tools use
 * vkmoe.h only. */
#ifndef VKM_ENGINE_H
#define VKM_ENGINE_H

#include "forward.h"
#include "gpu.h"
#include "model.h"
#include "vkmoe.h"

vkm_gpu *vkm_engine_gpu(vkm_engine *e);
const vkm_model *vkm_engine_model(const vkm_engine *e);
const vkm_dmodel *vkm_engine_dmodel(const vkm_engine *e);
bool vkm_engine_profiling(const vkm_engine *e);
/* Adds the marks of the batch just submitted to the per-label profile totals. */
int vkm_engine_profile_collect(vkm_engine *e);

#endif
