/* imports.h - regions of the file mapping imported as device buffers through
 * VK_EXT_external_memory_host (core/imports.c; gpu.h vkm_gpu_buf_import), for the resident
 * weights (weights.c: used in place, or the source of device copies) and the paged experts
 * (experts.c: the source of their slot uploads). The modes are engine.h's vkm_import_mode. */
#ifndef VKM_IMPORTS_H
#define VKM_IMPORTS_H

#include "engine_impl.h"

/* A tensor to place in a region: need bytes from data, in the mapping of part `file`, which
 * ends (its last page included) at map_end. */
typedef struct vkm_import_item {
    const char *data;
    size_t need;
    uintptr_t map_end;
    int file;
    int idx;     /* the caller's index (placement, or layer * N_KINDS + kind) */
    int region;  /* out: index into e->regions, -1 = not in any */
    size_t roff; /* out: offset of data in the region */
} vkm_import_item;

/* VKMOE_IMPORT (engine.h): *out = the mode; VKM_EINVAL naming the variable when malformed. */
int vkm_import_mode_from_env(int *out);

/* The unit of imported regions: the device's import alignment, at least the page size (both
 * powers of two); 0 when the device cannot import host memory. */
size_t vkm_import_granule(const vkm_engine *e);

/* The item of tensor t (need: bytes from its data that the region must cover). */
vkm_import_item vkm_import_item_of(const vkm_engine *e, const vkm_tensor *t, size_t need, int idx);

/* Sorts the items by (part, address) and groups them into regions of whole granules of at most
 * cap bytes, appended to e->regions (not imported yet): consecutive items share a region while
 * it stays within cap and no gap above IMPORT_GAP separates them; a new region may start on the
 * last granule of the previous one. An item whose rounded-out range exceeds cap gets a region of
 * its own, up to big bytes (the largest buffer: the kernels bind it in windows). An item whose
 * address is not a multiple of item_align, or whose rounded-out range exceeds big or its
 * mapping, stays in none (region -1). */
int vkm_import_group_regions(vkm_engine *e, vkm_import_item *it, int n, size_t gran, uint64_t cap,
                             uint64_t big, size_t item_align);

/* Imports region r. A refusal (or any failure but a lost device) leaves its buf NULL, counted
 * in imp.n_failed (the first one noted on stderr unless quiet): its tensors are uploaded. */
int vkm_import_region(vkm_engine *e, int r);

/* Destroys region r's import (its buf NULL afterwards); nothing when it has none. */
void vkm_import_release(vkm_engine *e, int r);

/* Whether [p, p + n) overlaps an imported region (then its pages must stay mapped as they are). */
bool vkm_import_covers(const vkm_engine *e, const void *p, size_t n);

#endif
