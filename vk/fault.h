/* fault.h - the vk/ side of the fault-injection hooks of core/gpu.h (vkm_gpu_fault_set).
 *
 * Call sites test VKM_VK_FAULT(kind) right where the real Vulkan call would fail: it is a single
 * load of a process-wide flag when no fault is armed, and true exactly once, for the nth event of
 * that kind after arming. Process-wide and not thread-safe (tests and diagnostics only). */
#ifndef VKM_VK_FAULT_H
#define VKM_VK_FAULT_H

#include <stdbool.h>

#include "gpu.h"

/* Nonzero while any fault is armed (bit (1 << kind) per kind). */
extern int vkm_vk_fault_armed;

/* Counts one event of `kind`; true if it is the one that must fail (the fault then disarms). */
bool vkm_vk_fault_hit(int kind);
/* Arms faults from the environment variable VKMOE_FAULT ("device_alloc:N", "device_lost:N",
 * "import:N", or a comma-separated list of them); only the first call in the process reads it. */
void vkm_vk_fault_from_env(void);

#define VKM_VK_FAULT(kind) (vkm_vk_fault_armed && vkm_vk_fault_hit(kind))

#endif
