/* instance.h - the Vulkan loader, the VkInstance and validation-layer reporting.
 *
 * Invariants: volk is initialised once per process; instance-level entry points are loaded with
 * volkLoadInstanceOnly (device-level calls go through per-device VolkDeviceTable, see device.h).
 * When validation is on, every ERROR message of the validation layer is printed to stderr as
 * "vulkan validation: ..." and counted; the count is read with vkm_vk_instance_errors(). */
#ifndef VKM_VK_INSTANCE_H
#define VKM_VK_INSTANCE_H

#include <stdbool.h>
#include <stdint.h>
#include <volk.h>

typedef struct vkm_vk_instance {
    VkInstance instance;
    uint32_t api_version; /* the version requested (>= 1.2) */
    bool validation;      /* VK_LAYER_KHRONOS_validation is enabled */
    VkDebugUtilsMessengerEXT messenger;
    uint32_t validation_errors; /* updated atomically by the messenger callback */
} vkm_vk_instance;

/* Creates the instance. `validation` asks for the validation layer (also enabled when the
 * environment variable VKMOE_VALIDATION=1 is set); a missing layer only warns, once.
 * VKM_ENODEV when no loader or no driver is installed. */
int vkm_vk_instance_create(bool validation, vkm_vk_instance **out);
void vkm_vk_instance_destroy(vkm_vk_instance *inst); /* accepts NULL */
uint32_t vkm_vk_instance_errors(const vkm_vk_instance *inst);

/* Enumerates physical devices into a malloc'ed array (*out, freed by the caller); VKM_ENODEV if
 * there are none. */
int vkm_vk_instance_devices(vkm_vk_instance *inst, VkPhysicalDevice **out, uint32_t *count);

#endif
