/* gpu_keep.h - for tests that open many engines one after another: one gpu held open for the
 * whole test, so that the Vulkan loader keeps the driver loaded between the engines (reloading
 * NVIDIA's driver some twenty times in one process exhausts glibc's static TLS: "cannot allocate
 * memory in static TLS block", then no driver is found). Include after gpu.h. */
#ifndef VKM_TEST_GPU_KEEP_H
#define VKM_TEST_GPU_KEEP_H

static vkm_gpu *g_gpu_keep; /* NULL when no device could be opened */

static void gpu_keep_open(void) {
    vkm_gpu_options o = {.device = -1, .validation = true};
    if (vkm_gpu_create(&o, &g_gpu_keep)) g_gpu_keep = NULL;
}

static void gpu_keep_close(void) {
    vkm_gpu_destroy(g_gpu_keep);
    g_gpu_keep = NULL;
}

#endif
