/* vk_check.h - checking Vulkan calls under the err.h convention.
 *
 * VK_CHECK(call) evaluates a Vulkan call; on a negative VkResult it records a message naming the
 * call text, the VkResult and file:line, and returns the mapped VKM_E* code from the enclosing
 * function. VK_CHECK_GOTO does the same but stores the code in `rc` and jumps to a cleanup label.
 * Mapping: OUT_OF_DEVICE_MEMORY -> VKM_EDEVMEM, OUT_OF_HOST_MEMORY -> VKM_ENOMEM,
 * DEVICE_LOST -> VKM_EDEVLOST, INCOMPATIBLE_DRIVER / INITIALIZATION_FAILED -> VKM_ENODEV,
 * anything else -> VKM_EDEVICE. Non-negative results (VK_INCOMPLETE, VK_TIMEOUT) are not errors. */
#ifndef VKM_VK_CHECK_H
#define VKM_VK_CHECK_H

#include <volk.h>

#include "err.h"

/* "VK_ERROR_DEVICE_LOST", ... ("VK_RESULT(<n>)" style for unknown values is not needed: "unknown").
 */
const char *vkm_vk_result_name(VkResult r);
/* The VKM_E* code for a failed VkResult. */
int vkm_vk_result_code(VkResult r);
/* Records "<call> failed: <result> (<file>:<line>)" and returns vkm_vk_result_code(r). */
int vkm_vk_fail(VkResult r, const char *call, const char *file, int line);

#define VK_CHECK(call)                                                                             \
    do {                                                                                           \
        VkResult vk_check_r_ = (call);                                                             \
        if (vk_check_r_ < 0) return vkm_vk_fail(vk_check_r_, #call, __FILE__, __LINE__);           \
    } while (0)

#define VK_CHECK_GOTO(call, rc, label)                                                             \
    do {                                                                                           \
        VkResult vk_check_r_ = (call);                                                             \
        if (vk_check_r_ < 0) {                                                                     \
            (rc) = vkm_vk_fail(vk_check_r_, #call, __FILE__, __LINE__);                            \
            goto label;                                                                            \
        }                                                                                          \
    } while (0)

#endif
