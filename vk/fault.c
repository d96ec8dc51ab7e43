/* fault.c - fault injection for tests and diagnostics (core/gpu.h: vkm_gpu_fault_set).
 *
 * Three kinds of faults, each armed with a count n >= 1 ("the nth event from now fails, once"):
 *   VKM_FAULT_DEVICE_ALLOC_NTH  the nth buffer creation (vk/mem.c) fails as if vkAllocateMemory
 *                               had returned VK_ERROR_OUT_OF_DEVICE_MEMORY: VKM_EDEVMEM. Every
 *                               buffer counts (weights, KV cache, staging), whether or not it
 *                               would have needed a new VkDeviceMemory block, so each
 *                               vkm_gpu_buf_create of a caller is a failure point.
 *   VKM_FAULT_DEVICE_LOST_NTH   the nth queue submission (vk/cmd.c: compute batches and transfer
 *                               copies) is not submitted and returns VK_ERROR_DEVICE_LOST:
 *                               VKM_EDEVLOST. vk/gpu.c then treats the gpu as lost, exactly as
 *                               after a real loss: every later call on it fails at once with
 *                               VKM_EDEVLOST; destroying buffers and the gpu still works.
 *   VKM_FAULT_IMPORT_NTH        the nth host-memory import (vk/mem.c vkm_vk_mem_import, reached
 *                               through vkm_gpu_buf_import) fails as if the driver had refused the
 *                               memory (VK_ERROR_INVALID_EXTERNAL_HANDLE): VKM_EUNSUPPORTED, so the
 *                               callers' fallback to uploads is tested on any device.
 * The environment variable VKMOE_FAULT="device_alloc:N" / "device_lost:N" / "import:N"
 * (comma-separated for several) arms the same faults at the first vkm_gpu_create of the process,
 * for CLI tests.
 *
 * Invariants: vkm_vk_fault_armed has bit (1 << kind) set exactly while countdown[kind] > 0; when
 * it is 0 (no fault, the normal case) the hooks cost one load and branch on paths that are
 * already slow (buffer creation, queue submission, import). Process-wide, not thread-safe. */
#include "fault.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { N_KINDS = VKM_FAULT_IMPORT_NTH + 1 };

int vkm_vk_fault_armed;
static long countdown[N_KINDS]; /* events left until the fault fires, 0 = disarmed */
static bool env_read;

static bool kind_ok(int kind) {
    return kind == VKM_FAULT_DEVICE_ALLOC_NTH || kind == VKM_FAULT_DEVICE_LOST_NTH ||
           kind == VKM_FAULT_IMPORT_NTH;
}

void vkm_gpu_fault_set(vkm_gpu_fault kind, int n) {
    if (kind == VKM_FAULT_NONE) {
        memset(countdown, 0, sizeof countdown);
        vkm_vk_fault_armed = 0;
        return;
    }
    if (!kind_ok(kind)) return;
    countdown[kind] = n > 0 ? n : 0;
    if (n > 0)
        vkm_vk_fault_armed |= 1 << kind;
    else
        vkm_vk_fault_armed &= ~(1 << kind);
}

bool vkm_gpu_fault_pending(vkm_gpu_fault kind) {
    return kind_ok(kind) && countdown[kind] > 0;
}

bool vkm_vk_fault_hit(int kind) {
    if (!kind_ok(kind) || countdown[kind] <= 0) return false;
    if (--countdown[kind] > 0) return false;
    vkm_vk_fault_armed &= ~(1 << kind);
    return true;
}

void vkm_vk_fault_from_env(void) {
    if (env_read) return;
    env_read = true;
    const char *env = getenv("VKMOE_FAULT");
    if (!env || !*env) return;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", env);
    char *save = NULL;
    for (char *item = strtok_r(buf, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
        int kind = VKM_FAULT_NONE;
        const char *num = NULL;
        if (!strncmp(item, "device_alloc:", 13)) {
            kind = VKM_FAULT_DEVICE_ALLOC_NTH;
            num = item + 13;
        } else if (!strncmp(item, "device_lost:", 12)) {
            kind = VKM_FAULT_DEVICE_LOST_NTH;
            num = item + 12;
        } else if (!strncmp(item, "import:", 7)) {
            kind = VKM_FAULT_IMPORT_NTH;
            num = item + 7;
        }
        char *end = NULL;
        long n = num ? strtol(num, &end, 10) : 0;
        if (kind == VKM_FAULT_NONE || end == num || *end || n < 1 || n > 1000000000) {
            fprintf(stderr,
                    "vkmoe: ignoring VKMOE_FAULT item '%s' (expected device_alloc:N, "
                    "device_lost:N or import:N, N >= 1)\n",
                    item);
            continue;
        }
        vkm_gpu_fault_set(kind, (int)n);
    }
}
