/* cpu_pool.h - a small pthread pool that splits a range of work items into chunks.
 *
 * The CPU expert kernels run their rows through it. A pool of n workers computes with n + 1
 * threads: the caller takes chunks too, so a pool of 0 workers (or a NULL pool) runs everything
 * on the calling thread. One job at a time: vkm_cpu_pool_run returns when every chunk is done.
 * Chunks are claimed from an atomic counter, so uneven chunk costs balance themselves. */
#ifndef VKM_CPU_POOL_H
#define VKM_CPU_POOL_H

#include <stdint.h>

typedef struct vkm_cpu_pool vkm_cpu_pool;

/* fn(ctx, begin, end) computes items [begin, end); called concurrently for disjoint ranges. */
typedef void (*vkm_cpu_pool_fn)(void *ctx, int64_t begin, int64_t end);

/* Starts n_workers helper threads (0..256). VKM_EINVAL for a bad count, VKM_ENOMEM / VKM_EIO
 * (thread creation failed; the message says so) with *out = NULL. */
int vkm_cpu_pool_create(int n_workers, vkm_cpu_pool **out);
/* Stops and joins the workers; accepts NULL. */
void vkm_cpu_pool_destroy(vkm_cpu_pool *pool);
/* Helper threads of the pool (0 for NULL). */
int vkm_cpu_pool_workers(const vkm_cpu_pool *pool);
/* Runs fn over [0, n) in chunks of `chunk` items (the last may be shorter); pool may be NULL.
 * n <= 0 does nothing; chunk < 1 counts as 1. Not reentrant: one caller at a time per pool. */
void vkm_cpu_pool_run(vkm_cpu_pool *pool, vkm_cpu_pool_fn fn, void *ctx, int64_t n, int64_t chunk);

#endif
