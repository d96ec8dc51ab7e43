/* cpu_threads.h - spreads a CPU Vulkan driver's compute worker threads over the cores.
 *
 * Why: lavapipe runs each dispatch on a pool of worker threads (one per core) that sleep between
 * dispatches. When a dispatch lasts well under a millisecond, Linux wakes the workers onto the core
 * they last ran on, both on the same one, and does not move the second to the idle core (a task
 * that ran that recently counts as cache-hot), so the dispatch runs on one core while the other
 * idles. Measured with `perf sched timehist` on a 2-core machine (llvmpipe, Mesa 22.3): in decode
 * the second worker waited in the first one's run queue for the whole dispatch. Pinned one per
 * core, both run at once.
 *
 * How: the threads the driver creates while the instance and device are made are found by
 * listing /proc/self/task before and after; those named like the process (the driver's unnamed
 * threads: compute workers, its queue thread) get one allowed core each, round robin in creation
 * order. Named helper threads (llvmpipe's rasterizer "llvmpipe-N", the shader cache's disk thread)
 * are left alone. Linux only; elsewhere, or with VKMOE_PIN_THREADS=0, nothing is done. Failures
 * are ignored: this changes speed only, never results. */
#ifndef VKM_VK_CPU_THREADS_H
#define VKM_VK_CPU_THREADS_H

#define VKM_VK_THREADS_MAX 256

typedef struct vkm_vk_threads {
    int n;                       /* entries in tid */
    int tid[VKM_VK_THREADS_MAX]; /* thread ids, ascending */
} vkm_vk_threads;

/* Lists the process's threads into `t` (empty where that is not possible). */
void vkm_vk_threads_snapshot(vkm_vk_threads *t);

/* Pins the unnamed threads that are not in `before` one allowed core each; returns how many were
 * pinned (0 when disabled, unsupported, or when fewer than 2 cores are allowed). */
int vkm_vk_threads_pin_new(const vkm_vk_threads *before);

#endif
