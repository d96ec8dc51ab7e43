/* staging.h - the staging ring of paged experts (core/staging.c): a few host-visible chunks
 * through which bytes of the file mapping reach device buffers with asynchronous copies, the
 * memcpy into each chunk shared by a small pool of persistent threads. */
#ifndef VKM_STAGING_H
#define VKM_STAGING_H

#include <stddef.h>
#include <stdint.h>

#include "gpu.h"

typedef struct vkm_staging vkm_staging;

/* Starts the staging threads (VKMOE_STAGING_THREADS, default min(4, online CPUs - 1); failing
 * to start threads is not an error) and creates the ring on gpu, chunks of min(max_copy, 8 MiB)
 * bytes. VKM_EINVAL for a malformed VKMOE_STAGING_THREADS or VKMOE_STAGING_PIECE,
 * VKM_EUNSUPPORTED when a chunk is not host visible. */
int vkm_staging_create(vkm_gpu *gpu, size_t max_copy, vkm_staging **out);
void vkm_staging_destroy(vkm_staging *s); /* accepts NULL */

/* Copies `bytes` bytes from `from` into dst at off: in pieces of up to a chunk, each memcpy'd into
 * the next ring chunk (waiting first for the copy that last read it) and copied asynchronously, so
 * the memcpy of one piece overlaps the copies of the previous ones. *ticket receives each copy's
 * ticket as it is issued (the last covers the earlier ones); unchanged for 0 bytes. */
int vkm_staging_upload(vkm_staging *s, const void *from, size_t bytes, vkm_gpu_buf *dst, size_t off,
                       uint64_t *ticket);

#endif
