/* device.h - physical device capabilities, device selection, VkDevice creation and queues.
 *
 * Invariants: every device-level call goes through `vk` (a VolkDeviceTable loaded for `dev`);
 * compute_family always exists; transfer_family equals compute_family when the device has no
 * dedicated transfer-only family (then transfer_queue == compute_queue). Only devices with Vulkan
 * 1.2 and timeline semaphores can be created. */
#ifndef VKM_VK_DEVICE_H
#define VKM_VK_DEVICE_H

#include <stdbool.h>
#include <stdint.h>
#include <volk.h>

#include "gpu.h"
#include "instance.h"

/* What a physical device offers (queried without creating a VkDevice). */
typedef struct vkm_vk_caps {
    vkm_gpu_device_info info;
    VkPhysicalDevice phys;
    VkPhysicalDeviceProperties props; /* limits, pipelineCacheUUID, driverVersion */
    VkPhysicalDeviceMemoryProperties mem;
    uint8_t device_uuid[VK_UUID_SIZE];
    uint64_t max_alloc_bytes; /* maxMemoryAllocationSize, and maxBufferSize where smaller */
    int device_heap;          /* index of the largest device-local heap */
    uint32_t compute_family;  /* a compute family; compute-only preferred */
    uint32_t transfer_family; /* dedicated transfer-only family, else UINT32_MAX */
    uint32_t timestamp_bits;  /* timestampValidBits of the compute family */
    bool usable;              /* Vulkan >= 1.2 with timeline semaphores and a compute queue */
    bool ext_push_descriptor, ext_subgroup_size_control, ext_portability_subset;
    bool ext_pipeline_executable; /* VK_KHR_pipeline_executable_properties */
    bool shader_int16;
    bool subgroup_size_control; /* VK 1.3 feature or VK_EXT_subgroup_size_control */
    bool compute_full_subgroups;
    uint32_t min_subgroup_size, max_subgroup_size; /* from subgroup size control, else = size */
    uint32_t max_push_descriptors;                 /* 0 without VK_KHR_push_descriptor */
} vkm_vk_caps;

typedef struct vkm_vk_device {
    vkm_vk_caps caps;
    VkDevice dev;
    struct VolkDeviceTable vk;
    uint32_t transfer_family; /* == caps.compute_family without a dedicated transfer family */
    VkQueue compute_queue, transfer_queue;
    bool push_descriptor; /* VK_KHR_push_descriptor enabled */
    bool capture;         /* VK_KHR_pipeline_executable_properties enabled: pipelines keep their
                             statistics and internal representations (vkm_vk_device_create) */
    bool submitted;       /* a queue submission was made (destroy waits for idle only then) */
} vkm_vk_device;

/* Fills caps for the physical device at enumeration position `index`. */
int vkm_vk_device_query(VkPhysicalDevice phys, int index, vkm_vk_caps *caps);
/* Picks a device: `requested` >= 0 is an index (VKM_EINVAL if it does not exist or cannot run
 * vkmoe); -1 prefers discrete, then integrated, virtual, cpu. */
int vkm_vk_device_select(const vkm_vk_caps *caps, int n, int requested, int *out);
/* Enumerates, selects and creates the device with one compute queue and, when present, one
 * dedicated transfer queue; with `capture`, also VK_KHR_pipeline_executable_properties where the
 * driver offers it (d->capture). */
int vkm_vk_device_create(vkm_vk_instance *inst, int requested, bool capture, vkm_vk_device **out);
void vkm_vk_device_destroy(vkm_vk_device *d); /* accepts NULL */
/* Current budget and usage of the largest device-local heap (budget = heap size and usage = 0
 * without VK_EXT_memory_budget). */
void vkm_vk_device_budget(const vkm_vk_device *d, uint64_t *budget, uint64_t *usage);

#endif
