/* device.c - physical device capabilities (vkm_gpu_device_info), selection, VkDevice creation.
 *
 * Invariants: features are enabled only when the device reports them; extensions only when
 * present. Queries chain the Vulkan 1.1/1.2(/1.3) feature structs, so a device below 1.2 is
 * listed (name, type, memory) but marked unusable. */
#include "device.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "vk_check.h"

static bool has_ext(const VkExtensionProperties *exts, uint32_t n, const char *name) {
    for (uint32_t i = 0; i < n; i++)
        if (!strcmp(exts[i].extensionName, name)) return true;
    return false;
}

static int vendor_of(uint32_t id) {
    switch (id) {
    case 0x1002:
        return VKM_VENDOR_AMD;
    case 0x8086:
        return VKM_VENDOR_INTEL;
    case 0x10DE:
        return VKM_VENDOR_NVIDIA;
    default:
        return VKM_VENDOR_OTHER;
    }
}

static int type_of(VkPhysicalDeviceType t) {
    switch (t) {
    case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU:
        return VKM_DEV_DISCRETE;
    case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU:
        return VKM_DEV_INTEGRATED;
    case VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU:
        return VKM_DEV_VIRTUAL;
    case VK_PHYSICAL_DEVICE_TYPE_CPU:
        return VKM_DEV_CPU;
    default:
        return VKM_DEV_OTHER;
    }
}

/* The import alignment vkm_gpu_buf_import uses: minImportedHostPointerAlignment when the device
 * has VK_EXT_external_memory_host and can import host allocations into storage + transfer-source
 * buffers, a power of two up to 1 GiB; else 0 (no import). */
static uint32_t import_alignment(const vkm_vk_caps *c, VkDeviceSize align) {
    if (!c->info.external_memory_host || align == 0 || (align & (align - 1)) || align > (1u << 30))
        return 0;
    VkPhysicalDeviceExternalBufferInfo bi = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_EXTERNAL_BUFFER_INFO,
        .usage = VK_BUFFER_USAGE_STORAGE_BUFFER_BIT | VK_BUFFER_USAGE_TRANSFER_SRC_BIT,
        .handleType = VK_EXTERNAL_MEMORY_HANDLE_TYPE_HOST_ALLOCATION_BIT_EXT};
    VkExternalBufferProperties bp = {.sType = VK_STRUCTURE_TYPE_EXTERNAL_BUFFER_PROPERTIES};
    vkGetPhysicalDeviceExternalBufferProperties(c->phys, &bi, &bp);
    if (!(bp.externalMemoryProperties.externalMemoryFeatures &
          VK_EXTERNAL_MEMORY_FEATURE_IMPORTABLE_BIT))
        return 0;
    return (uint32_t)align;
}

static void query_queues(vkm_vk_caps *c) {
    c->compute_family = UINT32_MAX;
    c->transfer_family = UINT32_MAX;
    uint32_t n = 0;
    vkGetPhysicalDeviceQueueFamilyProperties(c->phys, &n, NULL);
    if (n == 0) return;
    VkQueueFamilyProperties *q = calloc(n, sizeof *q);
    if (!q) return;
    vkGetPhysicalDeviceQueueFamilyProperties(c->phys, &n, q);
    const VkQueueFlags gc = VK_QUEUE_GRAPHICS_BIT | VK_QUEUE_COMPUTE_BIT;
    for (uint32_t i = 0; i < n; i++) {
        if (q[i].queueCount == 0) continue;
        VkQueueFlags f = q[i].queueFlags;
        /* A compute-only family (async compute on AMD/NVIDIA) is preferred over graphics. */
        if ((f & VK_QUEUE_COMPUTE_BIT) &&
            (c->compute_family == UINT32_MAX ||
             ((q[c->compute_family].queueFlags & VK_QUEUE_GRAPHICS_BIT) &&
              !(f & VK_QUEUE_GRAPHICS_BIT))))
            c->compute_family = i;
        if ((f & VK_QUEUE_TRANSFER_BIT) && !(f & gc) && c->transfer_family == UINT32_MAX)
            c->transfer_family = i;
    }
    if (c->compute_family != UINT32_MAX)
        c->timestamp_bits = q[c->compute_family].timestampValidBits;
    free(q);
}

int vkm_vk_device_query(VkPhysicalDevice phys, int index, vkm_vk_caps *c) {
    memset(c, 0, sizeof *c);
    c->phys = phys;
    vkm_gpu_device_info *info = &c->info;
    info->index = index;

    uint32_t n_ext = 0;
    VK_CHECK(vkEnumerateDeviceExtensionProperties(phys, NULL, &n_ext, NULL));
    VkExtensionProperties *exts = calloc(n_ext ? n_ext : 1, sizeof *exts);
    if (!exts) return vkm_error(VKM_ENOMEM, "out of memory querying device extensions");
    VkResult r = vkEnumerateDeviceExtensionProperties(phys, NULL, &n_ext, exts);
    if (r < 0) {
        free(exts);
        return vkm_vk_fail(r, "vkEnumerateDeviceExtensionProperties", __FILE__, __LINE__);
    }
    c->ext_push_descriptor = has_ext(exts, n_ext, VK_KHR_PUSH_DESCRIPTOR_EXTENSION_NAME);
    c->ext_subgroup_size_control =
        has_ext(exts, n_ext, VK_EXT_SUBGROUP_SIZE_CONTROL_EXTENSION_NAME);
    c->ext_portability_subset = has_ext(exts, n_ext, "VK_KHR_portability_subset");
    c->ext_pipeline_executable =
        has_ext(exts, n_ext, VK_KHR_PIPELINE_EXECUTABLE_PROPERTIES_EXTENSION_NAME);
    info->memory_budget = has_ext(exts, n_ext, VK_EXT_MEMORY_BUDGET_EXTENSION_NAME);
    info->external_memory_host = has_ext(exts, n_ext, VK_EXT_EXTERNAL_MEMORY_HOST_EXTENSION_NAME);
    free(exts);

    vkGetPhysicalDeviceProperties(phys, &c->props);
    const VkPhysicalDeviceProperties *p = &c->props;
    bool v12 = p->apiVersion >= VK_API_VERSION_1_2;
    bool v13 = p->apiVersion >= VK_API_VERSION_1_3;

    /* ---- properties ---- */
    VkPhysicalDeviceSubgroupProperties sg = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_PROPERTIES};
    VkPhysicalDeviceMaintenance3Properties m3 = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MAINTENANCE_3_PROPERTIES, .pNext = &sg};
    VkPhysicalDeviceIDProperties idp = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_ID_PROPERTIES,
                                        .pNext = &m3};
    VkPhysicalDeviceDriverProperties drv = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_DRIVER_PROPERTIES, .pNext = &idp};
    VkPhysicalDevicePushDescriptorPropertiesKHR pd = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PUSH_DESCRIPTOR_PROPERTIES_KHR};
    VkPhysicalDeviceSubgroupSizeControlProperties sgc = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_SIZE_CONTROL_PROPERTIES};
    VkPhysicalDeviceExternalMemoryHostPropertiesEXT emh = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_EXTERNAL_MEMORY_HOST_PROPERTIES_EXT};
    VkPhysicalDeviceProperties2 p2 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2,
                                      .pNext = v12 ? (void *)&drv : (void *)&idp};
    if (c->ext_push_descriptor) {
        pd.pNext = p2.pNext;
        p2.pNext = &pd;
    }
    if (v13 || c->ext_subgroup_size_control) {
        sgc.pNext = p2.pNext;
        p2.pNext = &sgc;
    }
    if (info->external_memory_host) {
        emh.pNext = p2.pNext;
        p2.pNext = &emh;
    }
    VkPhysicalDeviceMaintenance4Properties m4 = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MAINTENANCE_4_PROPERTIES};
    VkPhysicalDeviceShaderIntegerDotProductProperties idp13 = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_INTEGER_DOT_PRODUCT_PROPERTIES};
    if (v13) {
        m4.pNext = p2.pNext;
        idp13.pNext = &m4;
        p2.pNext = &idp13;
    }
    vkGetPhysicalDeviceProperties2(phys, &p2);

    snprintf(info->name, sizeof info->name, "%s", p->deviceName);
    info->vendor_id = p->vendorID;
    info->device_id = p->deviceID;
    info->vendor = vendor_of(p->vendorID);
    info->type = type_of(p->deviceType);
    info->api_version = p->apiVersion;
    if (v12 && drv.driverName[0])
        snprintf(info->driver, sizeof info->driver, "%.120s %.120s", drv.driverName,
                 drv.driverInfo);
    else
        snprintf(info->driver, sizeof info->driver, "driver version 0x%08x", p->driverVersion);
    memcpy(c->device_uuid, idp.deviceUUID, VK_UUID_SIZE);
    info->subgroup_size = sg.subgroupSize;
    c->min_subgroup_size = c->max_subgroup_size = sg.subgroupSize;
    if (sgc.minSubgroupSize) {
        c->min_subgroup_size = sgc.minSubgroupSize;
        c->max_subgroup_size = sgc.maxSubgroupSize;
    }
    c->max_push_descriptors = c->ext_push_descriptor ? pd.maxPushDescriptors : 0;
    c->max_alloc_bytes = m3.maxMemoryAllocationSize ? m3.maxMemoryAllocationSize : UINT64_MAX;
    if (v13 && m4.maxBufferSize && m4.maxBufferSize < c->max_alloc_bytes)
        c->max_alloc_bytes = m4.maxBufferSize;
    info->max_alloc_bytes = c->max_alloc_bytes;
    info->max_shared_bytes = p->limits.maxComputeSharedMemorySize;
    info->storage_align = (uint32_t)p->limits.minStorageBufferOffsetAlignment;
    uint64_t max_buf = p->limits.maxStorageBufferRange;
    info->max_buffer_bytes = max_buf < c->max_alloc_bytes ? max_buf : c->max_alloc_bytes;
    info->weight_window_bytes = info->max_buffer_bytes; /* vkm_gpu_create: $VKMOE_WEIGHT_WINDOW */
    info->import_align = import_alignment(c, emh.minImportedHostPointerAlignment);
    info->int_dot_accel = v13 && idp13.integerDotProduct4x8BitPackedSignedAccelerated;

    /* ---- features ---- */
    VkPhysicalDeviceVulkan13Features f13 = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_3_FEATURES};
    VkPhysicalDeviceSubgroupSizeControlFeaturesEXT fsgc = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_SIZE_CONTROL_FEATURES_EXT};
    VkPhysicalDeviceVulkan12Features f12 = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES};
    VkPhysicalDeviceVulkan11Features f11 = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_1_FEATURES, .pNext = &f12};
    VkPhysicalDeviceFeatures2 f2 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2};
    if (v12) {
        f2.pNext = &f11;
        if (v13)
            f12.pNext = &f13;
        else if (c->ext_subgroup_size_control)
            f12.pNext = &fsgc;
    }
    vkGetPhysicalDeviceFeatures2(phys, &f2);
    c->shader_int16 = f2.features.shaderInt16;
    info->int64 = f2.features.shaderInt64;
    if (v12) {
        info->storage16 = f11.storageBuffer16BitAccess;
        info->storage8 = f12.storageBuffer8BitAccess;
        info->fp16 = f12.shaderFloat16;
        info->int8 = f12.shaderInt8;
        c->subgroup_size_control = v13 ? f13.subgroupSizeControl : fsgc.subgroupSizeControl;
        c->compute_full_subgroups = v13 ? f13.computeFullSubgroups : fsgc.computeFullSubgroups;
        info->int_dot = v13 && f13.shaderIntegerDotProduct;
    }
    if (!info->int_dot) info->int_dot_accel = false;

    /* ---- memory ---- */
    VkPhysicalDeviceMemoryBudgetPropertiesEXT budget = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MEMORY_BUDGET_PROPERTIES_EXT};
    VkPhysicalDeviceMemoryProperties2 mp2 = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MEMORY_PROPERTIES_2,
        .pNext = info->memory_budget ? &budget : NULL};
    vkGetPhysicalDeviceMemoryProperties2(phys, &mp2);
    c->mem = mp2.memoryProperties;
    c->device_heap = -1;
    for (uint32_t h = 0; h < c->mem.memoryHeapCount; h++) {
        const VkMemoryHeap *heap = &c->mem.memoryHeaps[h];
        if (!(heap->flags & VK_MEMORY_HEAP_DEVICE_LOCAL_BIT)) continue;
        if (c->device_heap < 0 || heap->size > c->mem.memoryHeaps[c->device_heap].size)
            c->device_heap = (int)h;
    }
    if (c->device_heap < 0 && c->mem.memoryHeapCount > 0) c->device_heap = 0;
    if (c->device_heap >= 0) {
        info->device_local_bytes = c->mem.memoryHeaps[c->device_heap].size;
        info->budget_bytes = info->memory_budget && budget.heapBudget[c->device_heap]
                                 ? budget.heapBudget[c->device_heap]
                                 : info->device_local_bytes;
    }

    /* ---- uniform texel buffers of 16-byte texels: the CPU-device matmuls (core/ops_matmul.c) ----
     */
    VkFormatProperties fu, ff;
    vkGetPhysicalDeviceFormatProperties(phys, VK_FORMAT_R32G32B32A32_UINT, &fu);
    vkGetPhysicalDeviceFormatProperties(phys, VK_FORMAT_R32G32B32A32_SFLOAT, &ff);
    const VkFormatFeatureFlags tb = VK_FORMAT_FEATURE_UNIFORM_TEXEL_BUFFER_BIT;
    if (info->type == VKM_DEV_CPU && (fu.bufferFeatures & tb) && (ff.bufferFeatures & tb) &&
        p->limits.minTexelBufferOffsetAlignment <= 256)
        info->texel_bytes = (uint64_t)p->limits.maxTexelBufferElements * 16;

    /* ---- queues ---- */
    query_queues(c);
    info->transfer_queue = c->transfer_family != UINT32_MAX;
    info->timestamps = c->timestamp_bits > 0 && p->limits.timestampPeriod > 0;
    info->timestamp_period_ns = p->limits.timestampPeriod;
    c->usable = v12 && f12.timelineSemaphore && c->compute_family != UINT32_MAX;
    return VKM_OK;
}

static int type_rank(int type) {
    switch (type) {
    case VKM_DEV_DISCRETE:
        return 0;
    case VKM_DEV_INTEGRATED:
        return 1;
    case VKM_DEV_VIRTUAL:
        return 2;
    case VKM_DEV_CPU:
        return 3;
    default:
        return 4;
    }
}

int vkm_vk_device_select(const vkm_vk_caps *caps, int n, int requested, int *out) {
    if (requested >= 0) {
        if (requested >= n)
            return vkm_error(VKM_EINVAL, "device %d does not exist (%d device%s)", requested, n,
                             n == 1 ? "" : "s");
        if (!caps[requested].usable)
            return vkm_error(VKM_EUNSUPPORTED,
                             "device %d (%s) cannot run vkmoe: it needs Vulkan 1.2 with timeline "
                             "semaphores and a compute queue",
                             requested, caps[requested].info.name);
        *out = requested;
        return VKM_OK;
    }
    int best = -1;
    for (int i = 0; i < n; i++) {
        if (!caps[i].usable) continue;
        if (best < 0 || type_rank(caps[i].info.type) < type_rank(caps[best].info.type)) best = i;
    }
    if (best < 0)
        return vkm_error(VKM_ENODEV,
                         "none of the %d Vulkan device%s supports Vulkan 1.2 compute "
                         "with timeline semaphores; install mesa-vulkan-drivers or a "
                         "newer GPU driver",
                         n, n == 1 ? "" : "s");
    *out = best;
    return VKM_OK;
}

static int create_logical(vkm_vk_device *d) {
    const vkm_vk_caps *c = &d->caps;
    bool v13 = c->props.apiVersion >= VK_API_VERSION_1_3;
    const char *exts[8];
    uint32_t n_ext = 0;
    if (c->ext_push_descriptor && c->max_push_descriptors >= 8)
        exts[n_ext++] = VK_KHR_PUSH_DESCRIPTOR_EXTENSION_NAME;
    if (c->info.memory_budget) exts[n_ext++] = VK_EXT_MEMORY_BUDGET_EXTENSION_NAME;
    if (c->info.external_memory_host) exts[n_ext++] = VK_EXT_EXTERNAL_MEMORY_HOST_EXTENSION_NAME;
    if (!v13 && c->ext_subgroup_size_control && c->subgroup_size_control)
        exts[n_ext++] = VK_EXT_SUBGROUP_SIZE_CONTROL_EXTENSION_NAME;
    if (c->ext_portability_subset) exts[n_ext++] = "VK_KHR_portability_subset";
    if (d->capture) exts[n_ext++] = VK_KHR_PIPELINE_EXECUTABLE_PROPERTIES_EXTENSION_NAME;
    d->push_descriptor = c->ext_push_descriptor && c->max_push_descriptors >= 8;

    VkPhysicalDeviceVulkan13Features f13 = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_3_FEATURES};
    f13.subgroupSizeControl = c->subgroup_size_control;
    f13.computeFullSubgroups = c->compute_full_subgroups;
    f13.shaderIntegerDotProduct = c->info.int_dot;
    VkPhysicalDeviceSubgroupSizeControlFeaturesEXT fsgc = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_SIZE_CONTROL_FEATURES_EXT};
    fsgc.subgroupSizeControl = c->subgroup_size_control;
    fsgc.computeFullSubgroups = c->compute_full_subgroups;
    VkPhysicalDeviceVulkan12Features f12 = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES};
    f12.storageBuffer8BitAccess = c->info.storage8;
    f12.shaderFloat16 = c->info.fp16;
    f12.shaderInt8 = c->info.int8;
    f12.timelineSemaphore = VK_TRUE;
    if (v13)
        f12.pNext = &f13;
    else if (c->ext_subgroup_size_control && c->subgroup_size_control)
        f12.pNext = &fsgc;
    VkPhysicalDevicePipelineExecutablePropertiesFeaturesKHR fpe = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PIPELINE_EXECUTABLE_PROPERTIES_FEATURES_KHR,
        .pNext = &f12,
        .pipelineExecutableInfo = VK_TRUE};
    VkPhysicalDeviceVulkan11Features f11 = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_1_FEATURES,
        .pNext = d->capture ? (void *)&fpe : (void *)&f12};
    f11.storageBuffer16BitAccess = c->info.storage16;
    VkPhysicalDeviceFeatures2 f2 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2,
                                    .pNext = &f11};
    f2.features.shaderInt16 = c->shader_int16;
    f2.features.shaderInt64 = c->info.int64;

    float prio = 1.0f;
    VkDeviceQueueCreateInfo qci[2] = {
        {.sType = VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO,
         .queueFamilyIndex = c->compute_family,
         .queueCount = 1,
         .pQueuePriorities = &prio},
        {.sType = VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO,
         .queueFamilyIndex = c->transfer_family,
         .queueCount = 1,
         .pQueuePriorities = &prio},
    };
    bool transfer = c->transfer_family != UINT32_MAX;
    VkDeviceCreateInfo ci = {
        .sType = VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO,
        .pNext = &f2,
        .queueCreateInfoCount = transfer ? 2 : 1,
        .pQueueCreateInfos = qci,
        .enabledExtensionCount = n_ext,
        .ppEnabledExtensionNames = exts,
    };
    VK_CHECK(vkCreateDevice(c->phys, &ci, NULL, &d->dev));
    volkLoadDeviceTable(&d->vk, d->dev);
    d->vk.vkGetDeviceQueue(d->dev, c->compute_family, 0, &d->compute_queue);
    d->transfer_family = transfer ? c->transfer_family : c->compute_family;
    d->transfer_queue = d->compute_queue;
    if (transfer) d->vk.vkGetDeviceQueue(d->dev, c->transfer_family, 0, &d->transfer_queue);
    return VKM_OK;
}

int vkm_vk_device_create(vkm_vk_instance *inst, int requested, bool capture, vkm_vk_device **out) {
    *out = NULL;
    VkPhysicalDevice *phys = NULL;
    uint32_t n = 0;
    int rc = vkm_vk_instance_devices(inst, &phys, &n);
    if (rc < 0) return rc;
    vkm_vk_caps *caps = calloc(n, sizeof *caps);
    vkm_vk_device *d = calloc(1, sizeof *d);
    if (!caps || !d) {
        rc = vkm_error(VKM_ENOMEM, "out of memory creating the Vulkan device");
        goto fail;
    }
    for (uint32_t i = 0; i < n; i++)
        if ((rc = vkm_vk_device_query(phys[i], (int)i, &caps[i])) < 0) goto fail;
    int sel;
    if ((rc = vkm_vk_device_select(caps, (int)n, requested, &sel)) < 0) goto fail;
    d->caps = caps[sel];
    d->capture = capture && d->caps.ext_pipeline_executable;
    if ((rc = create_logical(d)) < 0) goto fail;
    free(caps);
    free(phys);
    *out = d;
    return VKM_OK;
fail:
    free(caps);
    free(phys);
    vkm_vk_device_destroy(d);
    return rc;
}

void vkm_vk_device_destroy(vkm_vk_device *d) {
    if (!d) return;
    if (d->dev) {
        if (d->submitted) d->vk.vkDeviceWaitIdle(d->dev);
        d->vk.vkDestroyDevice(d->dev, NULL);
    }
    free(d);
}

void vkm_vk_device_budget(const vkm_vk_device *d, uint64_t *budget, uint64_t *usage) {
    const vkm_vk_caps *c = &d->caps;
    *budget = c->info.device_local_bytes;
    *usage = 0;
    if (!c->info.memory_budget || c->device_heap < 0) return;
    VkPhysicalDeviceMemoryBudgetPropertiesEXT b = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MEMORY_BUDGET_PROPERTIES_EXT};
    VkPhysicalDeviceMemoryProperties2 mp2 = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MEMORY_PROPERTIES_2, .pNext = &b};
    vkGetPhysicalDeviceMemoryProperties2(c->phys, &mp2);
    if (b.heapBudget[c->device_heap]) *budget = b.heapBudget[c->device_heap];
    *usage = b.heapUsage[c->device_heap];
}
