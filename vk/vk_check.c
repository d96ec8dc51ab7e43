/* vk_check.c - VkResult names and their mapping onto VKM_E* codes (see vk_check.h). */
#include "vk_check.h"

const char *vkm_vk_result_name(VkResult r) {
    switch (r) {
#define R(x)                                                                                       \
    case x:                                                                                        \
        return #x;
        R(VK_SUCCESS)
        R(VK_NOT_READY)
        R(VK_TIMEOUT)
        R(VK_EVENT_SET)
        R(VK_EVENT_RESET)
        R(VK_INCOMPLETE)
        R(VK_ERROR_OUT_OF_HOST_MEMORY)
        R(VK_ERROR_OUT_OF_DEVICE_MEMORY)
        R(VK_ERROR_INITIALIZATION_FAILED)
        R(VK_ERROR_DEVICE_LOST)
        R(VK_ERROR_MEMORY_MAP_FAILED)
        R(VK_ERROR_LAYER_NOT_PRESENT)
        R(VK_ERROR_EXTENSION_NOT_PRESENT)
        R(VK_ERROR_FEATURE_NOT_PRESENT)
        R(VK_ERROR_INCOMPATIBLE_DRIVER)
        R(VK_ERROR_TOO_MANY_OBJECTS)
        R(VK_ERROR_FORMAT_NOT_SUPPORTED)
        R(VK_ERROR_FRAGMENTED_POOL)
        R(VK_ERROR_UNKNOWN)
        R(VK_ERROR_OUT_OF_POOL_MEMORY)
        R(VK_ERROR_INVALID_EXTERNAL_HANDLE)
        R(VK_ERROR_FRAGMENTATION)
        R(VK_ERROR_INVALID_OPAQUE_CAPTURE_ADDRESS)
        R(VK_PIPELINE_COMPILE_REQUIRED)
        R(VK_ERROR_VALIDATION_FAILED_EXT)
#undef R
    default:
        return "VK_ERROR_(unknown)";
    }
}

int vkm_vk_result_code(VkResult r) {
    switch (r) {
    case VK_ERROR_OUT_OF_DEVICE_MEMORY:
        return VKM_EDEVMEM;
    case VK_ERROR_OUT_OF_HOST_MEMORY:
        return VKM_ENOMEM;
    case VK_ERROR_DEVICE_LOST:
        return VKM_EDEVLOST;
    case VK_ERROR_INCOMPATIBLE_DRIVER:
    case VK_ERROR_INITIALIZATION_FAILED:
        return VKM_ENODEV;
    default:
        return VKM_EDEVICE;
    }
}

int vkm_vk_fail(VkResult r, const char *call, const char *file, int line) {
    /* Keep only the function name of the call text: "vkAllocateMemory(dev, &ai, ...)" is noise. */
    int n = 0, start = 0;
    while (call[n] && call[n] != '(') {
        if (call[n] == '.' || call[n] == '>' || call[n] == ' ') start = n + 1;
        n++;
    }
    return vkm_error(vkm_vk_result_code(r), "%.*s failed: %s (%s:%d)", n - start, call + start,
                     vkm_vk_result_name(r), file, line);
}
