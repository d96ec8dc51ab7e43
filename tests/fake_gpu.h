/* fake_gpu.h - a recording fake of core/gpu.h for CPU-only tests of what core/ decides (the
 * expert scheduler's uploads, the waits and dispatches of a step) on a device that does not
 * exist: tests/fake_gpu.c implements every gpu.h function in host memory, so a test links
 * vkmoe_core with it instead of vk/.
 *
 * The fake device is a discrete GPU (fake_gpu_config(), changeable before vkm_gpu_create) with a
 * dedicated transfer queue. Buffers of every kind are host memory: uploads, downloads and
 * synchronous copies are memcpys at once. Kernels are handles that record their shader id and
 * specialization constants; dispatches are checked (bindings inside their buffers, offsets
 * aligned) and recorded, never run: what the kernels would write stays as it was (zero for new
 * buffers). Recorded copies (vkm_gpu_record_copy) run at submit, in recording order.
 *
 * Asynchronous copies are adversarial: vkm_gpu_copy_async only queues the copy, which reads its
 * source and writes its destination when it completes, and it completes only when the host waits
 * for its ticket (vkm_gpu_ticket_wait, vkm_gpu_ticket_done) or a submitted batch waits for it
 * (vkm_gpu_wait_ticket_on_next_submit): a caller that reuses a source before completion copies
 * the wrong bytes, and a batch that binds a range an unfinished copy writes is counted as a torn
 * read (fake_gpu_stats.torn_reads), as are uploads and downloads of such a range.
 * vkm_gpu_fault_set(VKM_FAULT_DEVICE_ALLOC_NTH, n) makes the nth buffer creation from then on
 * fail with VKM_EDEVMEM, once; the other faults are not simulated. */
#ifndef VKM_FAKE_GPU_H
#define VKM_FAKE_GPU_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gpu.h"

/* The device info the next vkm_gpu_create presents (a discrete NVIDIA-like GPU by default). */
vkm_gpu_device_info *fake_gpu_config(void);

typedef struct fake_gpu_stats {
    uint64_t submits;      /* batches submitted */
    uint64_t dispatches;   /* recorded (not dry, not primed) */
    uint64_t async_copies; /* vkm_gpu_copy_async calls */
    uint64_t async_bytes;  /* their bytes */
    uint64_t pending;      /* of those, not completed */
    uint64_t torn_reads;   /* bindings, uploads or downloads of a range an unfinished copy
                              writes */
    uint64_t submit_waits; /* submits that waited for a ticket */
} fake_gpu_stats;
void fake_gpu_stats_get(const vkm_gpu *gpu, fake_gpu_stats *out);

/* One queued or completed asynchronous copy, in issue order (index 0 = the first since
 * creation, or since fake_gpu_forget_copies). */
typedef struct fake_gpu_copy {
    uint64_t ticket;
    const vkm_gpu_buf *src, *dst;
    size_t src_off, dst_off, size;
    bool done;
} fake_gpu_copy;
/* The asynchronous copies recorded so far (*n of them); valid until the next gpu call. */
const fake_gpu_copy *fake_gpu_copies(const vkm_gpu *gpu, size_t *n);
/* Drops the record of completed copies (pending ones stay queued, at the front). */
void fake_gpu_forget_copies(vkm_gpu *gpu);
/* Whether [off, off + size) of buf is written by a copy that has not completed. */
bool fake_gpu_range_pending(const vkm_gpu *gpu, const vkm_gpu_buf *buf, size_t off, size_t size);
/* The bytes of a buffer of any kind (device buffers too), for checking what copies wrote. */
const uint8_t *fake_gpu_buf_bytes(const vkm_gpu_buf *buf);

#endif
