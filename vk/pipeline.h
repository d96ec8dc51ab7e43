/* pipeline.h - compute kernels: shader modules from the embedded SPIR-V table, descriptor set
 * layouts, pipeline layouts with push constants, specialization constants, and the on-disk
 * VkPipelineCache.
 *
 * Invariants: a kernel is created once per (shader id, spec constants, bindings, push size)
 * and lives until vkm_vk_pipeline_destroy; constant_id i = spec[i] (4 bytes each). Kernels
 * requested while deferred (vkm_vk_pipeline_defer) are the last ones of the cache and have no
 * pipeline until the deferral ends. The disk
 * cache ($XDG_CACHE_HOME/vkmoe, else ~/.cache/vkmoe; file named by device UUID and driver
 * version) is validated against the device's pipelineCacheUUID, and a missing, unreadable or
 * foreign file is ignored: the cache is never a reason to fail. */
#ifndef VKM_VK_PIPELINE_H
#define VKM_VK_PIPELINE_H

#include <stdbool.h>
#include <stdint.h>
#include <volk.h>

#include "device.h"
#include "gpu.h"
#include "spirv_bindings.h"

enum { VKM_VK_MAX_BINDINGS = 32, VKM_VK_MAX_SPEC = 16 };

struct vkm_gpu_kernel {
    char name[64];                  /* shader variant name */
    int shader;                     /* enum vkm_shader_id */
    struct vkm_gpu_kernel *next;    /* the next kernel of the same shader in the cache */
    uint32_t spec[VKM_VK_MAX_SPEC]; /* [n_spec] specialization constants */
    int n_spec;
    int n_bindings;                     /* buffers at set 0, bindings 0..n_bindings-1 */
    uint8_t kinds[VKM_VK_MAX_BINDINGS]; /* per binding: enum vkm_vk_binding_kind (from SPIR-V) */
    uint32_t push_size;                 /* bytes of push constants */
    bool push_descriptor;               /* set layout uses VK_KHR_push_descriptor */
    VkDescriptorSetLayout set_layout;
    VkPipelineLayout layout;
    VkPipeline pipeline;
    bool primed; /* dispatched once while priming (gpu.h vkm_gpu_set_prime) */
};

/* The descriptor type of a binding of kind `kind` (enum vkm_vk_binding_kind). */
static inline VkDescriptorType vkm_vk_descriptor_type(uint8_t kind) {
    return kind == VKM_VK_BIND_STORAGE ? VK_DESCRIPTOR_TYPE_STORAGE_BUFFER
                                       : VK_DESCRIPTOR_TYPE_UNIFORM_TEXEL_BUFFER;
}

typedef struct vkm_vk_pipelines vkm_vk_pipelines;

int vkm_vk_pipeline_create(vkm_vk_device *d, bool disk_cache, vkm_vk_pipelines **out);
/* Writes the disk cache if new pipelines were built, destroys every kernel. Accepts NULL. */
void vkm_vk_pipeline_destroy(vkm_vk_pipelines *p);
int vkm_vk_pipeline_get(vkm_vk_pipelines *p, int shader, const uint32_t *spec, int n_spec,
                        int n_bindings, uint32_t push_size, vkm_gpu_kernel **out);
/* Deferred building: with on, vkm_vk_pipeline_get hands out new kernels unbuilt (pipeline
 * VK_NULL_HANDLE; they must not be dispatched); with off, they are built on up to `threads`
 * threads at once, those that fail are dropped (a later get tries again), and the first
 * failure is returned. */
int vkm_vk_pipeline_count(const vkm_vk_pipelines *p); /* kernels in the cache, built or not */
int vkm_vk_pipeline_defer(vkm_vk_pipelines *p, bool on, int threads);
/* The warm-up's progress hook (gpu.h vkm_gpu_set_progress): called by the deferred builds and by
 * vkm_vk_pipeline_primed. */
void vkm_vk_pipeline_set_progress(vkm_vk_pipelines *p, vkm_gpu_progress_fn fn, void *user);
/* Priming starts: the total of its progress is the built kernels not primed yet. */
void vkm_vk_pipeline_prime_begin(vkm_vk_pipelines *p);
/* k's first primed dispatch ran: marks it and reports the progress; VKM_EINTR when the hook
 * asks to stop. */
int vkm_vk_pipeline_primed(vkm_vk_pipelines *p, vkm_gpu_kernel *k);
/* What the driver reports of kernel `index` (creation order): gpu.h vkm_gpu_kernel_describe. */
int vkm_vk_pipeline_report(vkm_vk_pipelines *p, int index, vkm_gpu_kernel_report *out);

#endif
