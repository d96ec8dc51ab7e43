/* mem.c - block sub-allocator for buffers, and buffers over imported host memory (see mem.h for
 * the layout and invariants). */
#include "mem.h"

#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "fault.h"
#include "vk_check.h"

#define MIB (1024ull * 1024ull)

typedef struct vkm_vk_range {
    uint64_t offset, size;
} vkm_vk_range;

struct vkm_vk_block {
    VkDeviceMemory memory;
    uint64_t size;      /* bytes of memory */
    uint64_t used;      /* bytes handed out */
    uint32_t type;      /* memory type index */
    void *map;          /* whole-block mapping, or NULL */
    bool dedicated;     /* holds exactly one buffer */
    vkm_vk_range *free; /* [n_free], sorted by offset */
    int n_free, cap_free;
    vkm_vk_block *next;
};

struct vkm_vk_mem {
    vkm_vk_device *d;
    uint64_t block_size;
    vkm_vk_block *blocks[VK_MAX_MEMORY_TYPES]; /* per memory type */
    uint64_t allocated, used;
};

int vkm_vk_mem_create(vkm_vk_device *d, vkm_vk_mem **out) {
    *out = NULL;
    vkm_vk_mem *m = calloc(1, sizeof *m);
    if (!m) return vkm_error(VKM_ENOMEM, "out of memory creating the memory allocator");
    m->d = d;
    m->block_size = d->caps.info.device_local_bytes >= 8192 * MIB ? 256 * MIB : 64 * MIB;
    if (m->block_size > d->caps.max_alloc_bytes) m->block_size = d->caps.max_alloc_bytes;
    *out = m;
    return VKM_OK;
}

static void block_free(vkm_vk_mem *m, vkm_vk_block *b) {
    const struct VolkDeviceTable *vk = &m->d->vk;
    if (b->map) vk->vkUnmapMemory(m->d->dev, b->memory);
    if (b->memory) vk->vkFreeMemory(m->d->dev, b->memory, NULL);
    m->allocated -= b->size;
    free(b->free);
    free(b);
}

void vkm_vk_mem_destroy(vkm_vk_mem *m) {
    if (!m) return;
    for (unsigned t = 0; t < VK_MAX_MEMORY_TYPES; t++) {
        vkm_vk_block *b = m->blocks[t];
        while (b) {
            vkm_vk_block *next = b->next;
            block_free(m, b);
            b = next;
        }
    }
    free(m);
}

void vkm_vk_mem_stats(const vkm_vk_mem *m, uint64_t *allocated, uint64_t *used) {
    *allocated = m->allocated;
    *used = m->used;
}

/* First memory type allowed by `bits` having `need`, preferring one that also has `want`. */
static int pick_type(const VkPhysicalDeviceMemoryProperties *mp, uint32_t bits,
                     VkMemoryPropertyFlags need, VkMemoryPropertyFlags want) {
    for (int pass = 0; pass < 2; pass++) {
        VkMemoryPropertyFlags f = pass == 0 ? need | want : need;
        for (uint32_t i = 0; i < mp->memoryTypeCount; i++)
            if ((bits & (1u << i)) && (mp->memoryTypes[i].propertyFlags & f) == f) return (int)i;
    }
    return -1;
}

static int ranges_reserve(vkm_vk_block *b, int n) {
    if (n <= b->cap_free) return VKM_OK;
    int cap = b->cap_free ? b->cap_free * 2 : 8;
    while (cap < n) cap *= 2;
    vkm_vk_range *r = realloc(b->free, (size_t)cap * sizeof *r);
    if (!r) return vkm_error(VKM_ENOMEM, "out of memory in the block allocator");
    b->free = r;
    b->cap_free = cap;
    return VKM_OK;
}

static int block_new(vkm_vk_mem *m, uint32_t type, uint64_t size, bool dedicated,
                     vkm_vk_block **out) {
    vkm_vk_device *d = m->d;
    vkm_vk_block *b = calloc(1, sizeof *b);
    if (!b || ranges_reserve(b, 8) < 0) {
        free(b);
        return vkm_error(VKM_ENOMEM, "out of memory in the block allocator");
    }
    VkMemoryAllocateInfo ai = {
        .sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO,
        .allocationSize = size,
        .memoryTypeIndex = type,
    };
    VkResult r = d->vk.vkAllocateMemory(d->dev, &ai, NULL, &b->memory);
    if (r < 0) {
        free(b->free);
        free(b);
        if (r == VK_ERROR_OUT_OF_DEVICE_MEMORY || r == VK_ERROR_OUT_OF_HOST_MEMORY)
            return vkm_error(VKM_EDEVMEM, "out of device memory allocating %llu MiB (type %u): %s",
                             (unsigned long long)(size / MIB), type, vkm_vk_result_name(r));
        return vkm_vk_fail(r, "vkAllocateMemory", __FILE__, __LINE__);
    }
    b->size = size;
    b->type = type;
    b->dedicated = dedicated;
    m->allocated += size;
    VkMemoryPropertyFlags f = d->caps.mem.memoryTypes[type].propertyFlags;
    if (f & VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT) {
        r = d->vk.vkMapMemory(d->dev, b->memory, 0, VK_WHOLE_SIZE, 0, &b->map);
        if (r < 0) {
            b->map = NULL;
            int rc = vkm_vk_fail(r, "vkMapMemory", __FILE__, __LINE__);
            block_free(m, b);
            return rc;
        }
    }
    b->free[0] = (vkm_vk_range){0, size};
    b->n_free = 1;
    b->next = m->blocks[type];
    m->blocks[type] = b;
    *out = b;
    return VKM_OK;
}

/* Takes `size` bytes aligned to `align` from the block's first fitting free range. */
static bool block_take(vkm_vk_block *b, uint64_t size, uint64_t align, uint64_t *offset) {
    for (int i = 0; i < b->n_free; i++) {
        vkm_vk_range r = b->free[i];
        uint64_t start = (r.offset + align - 1) & ~(align - 1);
        if (start < r.offset || start - r.offset > r.size || r.size - (start - r.offset) < size)
            continue;
        uint64_t pad = start - r.offset, end = start + size, tail = r.offset + r.size - end;
        if (pad && tail) {
            if (ranges_reserve(b, b->n_free + 1) < 0) return false;
            memmove(&b->free[i + 2], &b->free[i + 1],
                    (size_t)(b->n_free - i - 1) * sizeof *b->free);
            b->free[i] = (vkm_vk_range){r.offset, pad};
            b->free[i + 1] = (vkm_vk_range){end, tail};
            b->n_free++;
        } else if (pad) {
            b->free[i].size = pad;
        } else if (tail) {
            b->free[i] = (vkm_vk_range){end, tail};
        } else {
            memmove(&b->free[i], &b->free[i + 1], (size_t)(b->n_free - i - 1) * sizeof *b->free);
            b->n_free--;
        }
        b->used += size;
        *offset = start;
        return true;
    }
    return false;
}

/* The texel-buffer usage the CPU-device matmul kernels need (device.h info.texel_bytes). */
static VkBufferUsageFlags texel_usage(const vkm_vk_device *d) {
    return d->caps.info.texel_bytes ? VK_BUFFER_USAGE_UNIFORM_TEXEL_BUFFER_BIT : 0;
}

/* Creates a buffer of `size` bytes with `usage` (and pNext, e.g. external-memory info), shared by
 * the compute and transfer queue families (concurrent when they differ), and gets its memory
 * requirements; no memory is bound. */
static int create_buffer(vkm_vk_device *d, uint64_t size, VkBufferUsageFlags usage,
                         const void *pnext, VkBuffer *buf, VkMemoryRequirements *req) {
    uint32_t families[2] = {d->caps.compute_family, d->transfer_family};
    bool concurrent = families[0] != families[1];
    VkBufferCreateInfo bci = {
        .sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO,
        .pNext = pnext,
        .size = size,
        .usage = usage,
        .sharingMode = concurrent ? VK_SHARING_MODE_CONCURRENT : VK_SHARING_MODE_EXCLUSIVE,
        .queueFamilyIndexCount = concurrent ? 2 : 0,
        .pQueueFamilyIndices = concurrent ? families : NULL,
    };
    VK_CHECK(d->vk.vkCreateBuffer(d->dev, &bci, NULL, buf));
    d->vk.vkGetBufferMemoryRequirements(d->dev, *buf, req);
    return VKM_OK;
}

/* Returns [offset, offset+size) to the free list, merging with its neighbours. */
static int block_give(vkm_vk_block *b, uint64_t offset, uint64_t size) {
    int i = 0;
    while (i < b->n_free && b->free[i].offset < offset) i++;
    bool merge_prev = i > 0 && b->free[i - 1].offset + b->free[i - 1].size == offset;
    bool merge_next = i < b->n_free && offset + size == b->free[i].offset;
    if (merge_prev && merge_next) {
        b->free[i - 1].size += size + b->free[i].size;
        memmove(&b->free[i], &b->free[i + 1], (size_t)(b->n_free - i - 1) * sizeof *b->free);
        b->n_free--;
    } else if (merge_prev) {
        b->free[i - 1].size += size;
    } else if (merge_next) {
        b->free[i].offset = offset;
        b->free[i].size += size;
    } else {
        if (ranges_reserve(b, b->n_free + 1) < 0) return VKM_ENOMEM; /* range leaks; harmless */
        memmove(&b->free[i + 1], &b->free[i], (size_t)(b->n_free - i) * sizeof *b->free);
        b->free[i] = (vkm_vk_range){offset, size};
        b->n_free++;
    }
    b->used -= size;
    return VKM_OK;
}

int vkm_vk_mem_buffer_create(vkm_vk_mem *m, uint64_t size, int role, vkm_vk_buffer *out) {
    memset(out, 0, sizeof *out);
    vkm_vk_device *d = m->d;
    const vkm_vk_caps *c = &d->caps;
    if (size == 0) return vkm_error(VKM_EINVAL, "buffer size 0");
    if (size > c->info.device_local_bytes && role == VKM_VK_MEM_DEVICE)
        return vkm_error(VKM_EDEVMEM,
                         "buffer of %llu MiB is larger than the %llu MiB of device "
                         "memory",
                         (unsigned long long)(size / MIB),
                         (unsigned long long)(c->info.device_local_bytes / MIB));
    if (size > c->max_alloc_bytes)
        return vkm_error(VKM_EINVAL,
                         "buffer of %llu MiB exceeds the device's largest allocation "
                         "(%llu MiB)",
                         (unsigned long long)(size / MIB),
                         (unsigned long long)(c->max_alloc_bytes / MIB));

    VkMemoryRequirements req;
    int brc = create_buffer(d, size,
                            VK_BUFFER_USAGE_STORAGE_BUFFER_BIT | VK_BUFFER_USAGE_TRANSFER_SRC_BIT |
                                VK_BUFFER_USAGE_TRANSFER_DST_BIT | texel_usage(d),
                            NULL, &out->buf, &req);
    if (brc) return brc;

    const VkMemoryPropertyFlags hv =
        VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT;
    int type = role == VKM_VK_MEM_HOST
                   ? pick_type(&c->mem, req.memoryTypeBits, hv, VK_MEMORY_PROPERTY_HOST_CACHED_BIT)
                   : pick_type(&c->mem, req.memoryTypeBits, VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT, 0);
    if (type < 0 && role == VKM_VK_MEM_DEVICE) type = pick_type(&c->mem, req.memoryTypeBits, 0, 0);
    int rc;
    if (type < 0) {
        rc = vkm_error(VKM_EUNSUPPORTED, "no suitable memory type for a %s buffer",
                       role == VKM_VK_MEM_HOST ? "host" : "device");
        goto fail;
    }
    uint64_t align = req.alignment ? req.alignment : 1;
    if (align & (align - 1)) {
        rc = vkm_error(VKM_EDEVICE, "memory alignment %llu is not a power of two",
                       (unsigned long long)align);
        goto fail;
    }
    if (VKM_VK_FAULT(VKM_FAULT_DEVICE_ALLOC_NTH)) { /* fault.c: as if vkAllocateMemory failed */
        rc = vkm_error(VKM_EDEVMEM,
                       "out of device memory allocating %llu bytes (type %d): "
                       "VK_ERROR_OUT_OF_DEVICE_MEMORY (injected fault)",
                       (unsigned long long)req.size, type);
        goto fail;
    }
    vkm_vk_block *blk = NULL;
    uint64_t offset = 0;
    if (req.size > m->block_size / 2) {
        if ((rc = block_new(m, (uint32_t)type, req.size, true, &blk)) < 0) goto fail;
        block_take(blk, req.size, 1, &offset);
    } else {
        for (vkm_vk_block *b = m->blocks[type]; b && !blk; b = b->next)
            if (!b->dedicated && block_take(b, req.size, align, &offset)) blk = b;
        if (!blk) {
            if ((rc = block_new(m, (uint32_t)type, m->block_size, false, &blk)) < 0) goto fail;
            if (!block_take(blk, req.size, align, &offset)) {
                rc = vkm_error(VKM_ENOMEM, "out of memory in the block allocator");
                goto fail;
            }
        }
    }
    VkResult r = d->vk.vkBindBufferMemory(d->dev, out->buf, blk->memory, offset);
    if (r < 0) {
        block_give(blk, offset, req.size);
        rc = vkm_vk_fail(r, "vkBindBufferMemory", __FILE__, __LINE__);
        goto fail;
    }
    VkMemoryPropertyFlags f = c->mem.memoryTypes[type].propertyFlags;
    out->size = size;
    out->block = blk;
    out->offset = offset;
    out->range = req.size;
    out->map = blk->map && (f & hv) == hv ? (char *)blk->map + offset : NULL;
    out->device_local = (f & VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT) != 0;
    m->used += req.size;
    return VKM_OK;
fail:
    d->vk.vkDestroyBuffer(d->dev, out->buf, NULL);
    memset(out, 0, sizeof *out);
    return rc;
}

int vkm_vk_mem_import(vkm_vk_mem *m, const void *host, uint64_t size, vkm_vk_buffer *out) {
    memset(out, 0, sizeof *out);
    vkm_vk_device *d = m->d;
    const vkm_vk_caps *c = &d->caps;
    const VkExternalMemoryHandleTypeFlagBits ht =
        VK_EXTERNAL_MEMORY_HANDLE_TYPE_HOST_ALLOCATION_BIT_EXT;
    if (!d->vk.vkGetMemoryHostPointerPropertiesEXT)
        return vkm_error(VKM_EUNSUPPORTED, "%s: VK_EXT_external_memory_host is not enabled",
                         c->info.name);
    VkExternalMemoryBufferCreateInfo ext = {
        .sType = VK_STRUCTURE_TYPE_EXTERNAL_MEMORY_BUFFER_CREATE_INFO, .handleTypes = ht};
    VkMemoryRequirements req;
    int brc = create_buffer(d, size,
                            VK_BUFFER_USAGE_STORAGE_BUFFER_BIT | VK_BUFFER_USAGE_TRANSFER_SRC_BIT |
                                texel_usage(d),
                            &ext, &out->buf, &req);
    if (brc) return brc;
    VkMemoryHostPointerPropertiesEXT hp = {
        .sType = VK_STRUCTURE_TYPE_MEMORY_HOST_POINTER_PROPERTIES_EXT};
    int rc;
    VkResult r = d->vk.vkGetMemoryHostPointerPropertiesEXT(d->dev, ht, host, &hp);
    if (r < 0) {
        rc = vkm_error(VKM_EUNSUPPORTED, "%s refuses to import host memory at %p (%llu bytes): %s",
                       c->info.name, host, (unsigned long long)size, vkm_vk_result_name(r));
        goto fail;
    }
    const uint32_t bits = hp.memoryTypeBits & req.memoryTypeBits;
    const int type = pick_type(&c->mem, bits, 0, 0);
    if (type < 0 || req.size > size) {
        rc = vkm_error(VKM_EUNSUPPORTED,
                       "%s cannot import host memory into a buffer (memory types 0x%x of the "
                       "pointer, 0x%x of the buffer; %llu of %llu bytes needed)",
                       c->info.name, hp.memoryTypeBits, req.memoryTypeBits,
                       (unsigned long long)req.size, (unsigned long long)size);
        goto fail;
    }
    if (VKM_VK_FAULT(VKM_FAULT_IMPORT_NTH)) { /* fault.c: as if the driver refused the memory */
        rc = vkm_error(VKM_EUNSUPPORTED,
                       "%s refuses to import host memory at %p (%llu bytes): "
                       "VK_ERROR_INVALID_EXTERNAL_HANDLE (injected fault)",
                       c->info.name, host, (unsigned long long)size);
        goto fail;
    }
    VkImportMemoryHostPointerInfoEXT imp = {
        .sType = VK_STRUCTURE_TYPE_IMPORT_MEMORY_HOST_POINTER_INFO_EXT,
        .handleType = ht,
        .pHostPointer = (void *)(uintptr_t)host, /* read only: the buffer is a source only */
    };
    VkMemoryAllocateInfo ai = {
        .sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO,
        .pNext = &imp,
        .allocationSize = size,
        .memoryTypeIndex = (uint32_t)type,
    };
    r = d->vk.vkAllocateMemory(d->dev, &ai, NULL, &out->imported);
    if (r < 0) {
        out->imported = VK_NULL_HANDLE;
        if (r == VK_ERROR_OUT_OF_DEVICE_MEMORY || r == VK_ERROR_OUT_OF_HOST_MEMORY)
            rc = vkm_error(VKM_EDEVMEM, "out of memory importing %llu MiB of host memory: %s",
                           (unsigned long long)(size / MIB), vkm_vk_result_name(r));
        else
            rc = vkm_error(VKM_EUNSUPPORTED,
                           "%s refuses to import host memory at %p (%llu bytes): %s", c->info.name,
                           host, (unsigned long long)size, vkm_vk_result_name(r));
        goto fail;
    }
    r = d->vk.vkBindBufferMemory(d->dev, out->buf, out->imported, 0);
    if (r < 0) {
        rc = vkm_vk_fail(r, "vkBindBufferMemory (imported host memory)", __FILE__, __LINE__);
        goto fail;
    }
    out->size = size;
    out->range = size;
    out->device_local =
        (c->mem.memoryTypes[type].propertyFlags & VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT) != 0;
    return VKM_OK;
fail:
    d->vk.vkDestroyBuffer(d->dev, out->buf, NULL);
    if (out->imported) d->vk.vkFreeMemory(d->dev, out->imported, NULL);
    memset(out, 0, sizeof *out);
    return rc;
}

static void block_unlink(vkm_vk_mem *m, vkm_vk_block *b) {
    vkm_vk_block **p = &m->blocks[b->type];
    while (*p && *p != b) p = &(*p)->next;
    if (*p) *p = b->next;
}

struct vkm_vk_view {
    VkBufferView view;
    VkFormat format;
    uint64_t offset, range;
};

int vkm_vk_mem_view(vkm_vk_mem *m, vkm_vk_buffer *b, VkFormat format, uint64_t offset,
                    uint64_t range, VkBufferView *out) {
    for (int i = 0; i < b->n_views; i++) {
        const vkm_vk_view *v = &b->views[i];
        if (v->format == format && v->offset == offset && v->range == range) {
            *out = v->view;
            return VKM_OK;
        }
    }
    if (b->n_views == b->cap_views) {
        const int cap = b->cap_views ? 2 * b->cap_views : 16;
        vkm_vk_view *vs = realloc(b->views, (size_t)cap * sizeof *vs);
        if (!vs) return vkm_error(VKM_ENOMEM, "out of memory for buffer views");
        b->views = vs;
        b->cap_views = cap;
    }
    VkBufferViewCreateInfo vi = {
        .sType = VK_STRUCTURE_TYPE_BUFFER_VIEW_CREATE_INFO,
        .buffer = b->buf,
        .format = format,
        .offset = offset,
        .range = range,
    };
    VK_CHECK(m->d->vk.vkCreateBufferView(m->d->dev, &vi, NULL, out));
    b->views[b->n_views++] = (vkm_vk_view){*out, format, offset, range};
    return VKM_OK;
}

void vkm_vk_mem_buffer_destroy(vkm_vk_mem *m, vkm_vk_buffer *b) {
    if (!b || !b->buf) return;
    for (int i = 0; i < b->n_views; i++)
        m->d->vk.vkDestroyBufferView(m->d->dev, b->views[i].view, NULL);
    free(b->views);
    m->d->vk.vkDestroyBuffer(m->d->dev, b->buf, NULL);
    if (b->imported) m->d->vk.vkFreeMemory(m->d->dev, b->imported, NULL);
    vkm_vk_block *blk = b->block;
    if (blk) {
        block_give(blk, b->offset, b->range);
        m->used -= b->range;
        /* Dedicated blocks go at once; an empty shared block goes unless it is the only
         * shared block of its type (kept to avoid allocation churn). */
        if (blk->used == 0) {
            bool keep = !blk->dedicated;
            for (vkm_vk_block *o = m->blocks[blk->type]; o && keep; o = o->next)
                if (o != blk && !o->dedicated) keep = false;
            if (!keep) {
                block_unlink(m, blk);
                block_free(m, blk);
            }
        }
    }
    memset(b, 0, sizeof *b);
}
