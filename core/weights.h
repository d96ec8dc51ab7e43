/* weights.h - the resident weights of an engine (core/weights.c): where each tensor goes, the
 * device buffers, the uploads, and the device limits they are packed within. */
#ifndef VKM_WEIGHTS_H
#define VKM_WEIGHTS_H

#include "engine_impl.h"

/* Places and uploads every tensor of e->model (or uses it in place from an imported region),
 * pages the routed experts when they do not fit (experts.h vkm_experts_plan, with a fall back to
 * paging when the resident expert buffers run out of device memory), fills e->dm and prints the
 * line saying where the weights came from (unless quiet). Errors as vkm_engine_open's. */
int vkm_weights_upload(vkm_engine *e);

/* The bytes of model m's weights as the engine places them (each tensor padded to VKM_FWD_ALIGN):
 * *main those of every tensor but the routed experts (ffn_*_exps), *experts the routed experts'. */
int vkm_weights_pool_bytes(const vkm_model *m, uint64_t *main, uint64_t *experts);

/* Bytes that the tensors packed into one weight buffer (or imported region) may take: the
 * device's weight window (gpu.h: its largest binding), at most 4 GiB, in whole VKM_FWD_ALIGN
 * units. */
uint64_t vkm_weights_pack_cap(const vkm_engine *e);

/* The largest weight buffer: a tensor (or expert slot stack) above vkm_weights_pack_cap gets a
 * buffer of its own of up to this many bytes (the device's largest buffer, at most 4 GiB), which
 * the kernels bind in windows (core/ops_matmul.c, vkm_op_get_rows). */
uint64_t vkm_weights_big_cap(const vkm_engine *e);

#endif
