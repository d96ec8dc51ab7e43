/* mem.h - device memory: buffers sub-allocated from large VkDeviceMemory blocks.
 *
 * Each memory type has a list of blocks (64 MiB, or 256 MiB on devices with >= 8 GiB of local
 * memory); a buffer takes a first-fit range of a block's free list, or gets a dedicated
 * allocation when it is larger than half a block. Host-visible blocks are persistently mapped.
 * Invariants: a block's free ranges are sorted by offset, disjoint and never adjacent (merged on
 * free); every buffer is a VkBuffer of its own (offsets in descriptors are relative to it),
 * shared CONCURRENTly between the compute and transfer families when they differ. Device OOM is
 * returned as VKM_EDEVMEM and leaves the allocator unchanged. Imported host memory
 * (vkm_vk_mem_import) is outside the blocks: each such buffer owns its own VkDeviceMemory
 * (`imported`, block NULL), freed with the buffer, and is counted in no block statistic.
 * Not thread-safe. */
#ifndef VKM_VK_MEM_H
#define VKM_VK_MEM_H

#include <stdbool.h>
#include <stdint.h>
#include <volk.h>

#include "device.h"

typedef struct vkm_vk_block vkm_vk_block;
typedef struct vkm_vk_mem vkm_vk_mem;

enum vkm_vk_mem_role {
    VKM_VK_MEM_DEVICE, /* DEVICE_LOCAL (may also be host visible: UMA, lavapipe, ReBAR) */
    VKM_VK_MEM_HOST,   /* HOST_VISIBLE | HOST_COHERENT, HOST_CACHED preferred (readback) */
};

typedef struct vkm_vk_view vkm_vk_view;

typedef struct vkm_vk_buffer {
    VkBuffer buf;
    uint64_t size;           /* bytes requested */
    vkm_vk_block *block;     /* the memory it lives in */
    uint64_t offset;         /* of the range in block */
    uint64_t range;          /* bytes of block reserved (>= size) */
    void *map;               /* host pointer to byte 0 if the memory is host visible+coherent */
    bool device_local;       /* memory type is DEVICE_LOCAL */
    VkDeviceMemory imported; /* vkm_vk_mem_import: the import of the caller's memory, else 0 */
    vkm_vk_view *views;      /* [n_views] texel views made by vkm_vk_mem_view, freed with it */
    int n_views, cap_views;
} vkm_vk_buffer;

int vkm_vk_mem_create(vkm_vk_device *d, vkm_vk_mem **out);
/* Frees every block; all buffers must have been destroyed. Accepts NULL. */
void vkm_vk_mem_destroy(vkm_vk_mem *m);
/* Creates a storage buffer (+ transfer src/dst, + uniform texel buffer when the device's
 * info.texel_bytes is nonzero) of `size` bytes with the role's memory. */
int vkm_vk_mem_buffer_create(vkm_vk_mem *m, uint64_t size, int role, vkm_vk_buffer *out);
/* A storage + transfer-source buffer over host memory [host, host + size) imported with
 * VK_EXT_external_memory_host (HOST_ALLOCATION handle type); map stays NULL. The caller checks
 * the alignment (device.h caps: info.import_align) and size limits. VKM_EUNSUPPORTED when the
 * driver refuses the memory (or VKM_FAULT_IMPORT_NTH fires), VKM_EDEVMEM when it is out of
 * memory; nothing is left behind on failure. */
int vkm_vk_mem_import(vkm_vk_mem *m, const void *host, uint64_t size, vkm_vk_buffer *out);
/* A view of [offset, offset + range) of b as texels of `format` (a uniform texel buffer), made
 * on first use and kept with the buffer until it is destroyed, so a window bound at every token
 * costs one lookup. The buffer must have been created while the device's info.texel_bytes was
 * nonzero (texel usage); offset and range must suit the format and device limits. */
int vkm_vk_mem_view(vkm_vk_mem *m, vkm_vk_buffer *b, VkFormat format, uint64_t offset,
                    uint64_t range, VkBufferView *out);
/* Releases the buffer, its views and its range. Accepts a zeroed buffer. */
void vkm_vk_mem_buffer_destroy(vkm_vk_mem *m, vkm_vk_buffer *b);
/* Bytes of VkDeviceMemory allocated, and bytes of it handed to buffers. */
void vkm_vk_mem_stats(const vkm_vk_mem *m, uint64_t *allocated, uint64_t *used);

#endif
