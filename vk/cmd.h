/* cmd.h - command recording and submission: the compute batch (dispatches, barriers,
 * timestamps), synchronous buffer copies and asynchronous ones (tickets) on the transfer queue.
 *
 * Invariants: one compute batch is recorded between begin and submit, in one command buffer or,
 * when flushed early (vkm_vk_cmd_flush), in a few submitted in order; a dispatch that follows
 * another in the batch is preceded by a compute->compute memory barrier; a batch ends with a
 * compute->host barrier so mapped buffers can be read after submit, which waits for all of it.
 * Outside begin..submit no compute work is in flight, except the submitted parts of a batch
 * abandoned after a flush: the next begin, mapped uploads and downloads (vk/gpu.c) and buffer
 * frees wait for those first. Queues are ordered by two timeline semaphores: every transfer
 * (synchronous or not) waits for the last compute submit (a flushed part counts);
 * every compute submit waits for the last synchronous transfer and for the largest ticket asked
 * for with vkm_vk_cmd_wait_ticket (the "need" value, which only grows), not for asynchronous
 * copies nobody asked for, so these may run on a dedicated transfer queue while the compute
 * batch runs. A ticket is the transfer timeline value its copy signals; tickets grow in
 * submission order and the signal of a value covers every earlier transfer submission, so
 * waiting for a ticket waits for all earlier ones. This is correct whether or not the transfer
 * queue is a separate, dedicated one. Submissions wait on the host with a 600 s limit.
 * Not thread-safe. */
#ifndef VKM_VK_CMD_H
#define VKM_VK_CMD_H

#include <stdbool.h>
#include <stdint.h>
#include <volk.h>

#include "device.h"
#include "gpu.h"
#include "pipeline.h"

enum { VKM_VK_MAX_MARKS = 4096 };

typedef struct vkm_vk_cmd vkm_vk_cmd;

int vkm_vk_cmd_create(vkm_vk_device *d, vkm_vk_cmd **out);
void vkm_vk_cmd_destroy(vkm_vk_cmd *c); /* accepts NULL; waits for the device */

/* Starts a batch, discarding anything recorded but not submitted. */
int vkm_vk_cmd_begin(vkm_vk_cmd *c);
/* Records one dispatch of k with k->n_bindings buffer ranges (already validated): bufs[i] for
 * storage-buffer bindings, views[i] for texel-buffer bindings (k->kinds; spirv_bindings.h). */
int vkm_vk_cmd_dispatch(vkm_vk_cmd *c, const vkm_gpu_kernel *k, const VkDescriptorBufferInfo *bufs,
                        const VkBufferView *views, const void *push, uint32_t gx, uint32_t gy,
                        uint32_t gz);
int vkm_vk_cmd_mark(vkm_vk_cmd *c, const char *label);
/* Submits what the batch recorded so far without waiting, so the device starts on it while the
 * host records the rest into the batch's next command buffer; a no-op once the batch has used
 * its last command buffer. The device sees one batch: the parts run in submission order, each
 * ordered after the ones before by the barrier of its first dispatch or copy. */
int vkm_vk_cmd_flush(vkm_vk_cmd *c);
/* Submits the batch and waits for it. */
int vkm_vk_cmd_submit(vkm_vk_cmd *c);
int vkm_vk_cmd_timings(const vkm_vk_cmd *c, vkm_gpu_timing *out, int max, int *n);
/* Copies size bytes between buffers on the transfer queue and waits; the result is visible to
 * the host and to later batches. */
int vkm_vk_cmd_copy(vkm_vk_cmd *c, VkBuffer src, uint64_t src_offset, VkBuffer dst,
                    uint64_t dst_offset, uint64_t size);
/* Submits the copy on the transfer queue (after the last compute submit) without waiting;
 * *ticket receives the transfer timeline value that signals its completion. */
int vkm_vk_cmd_copy_async(vkm_vk_cmd *c, VkBuffer src, uint64_t src_offset, VkBuffer dst,
                          uint64_t dst_offset, uint64_t size, uint64_t *ticket);
/* Whether a ticket has completed (no wait). */
int vkm_vk_cmd_ticket_done(vkm_vk_cmd *c, uint64_t ticket, bool *done);
/* Waits on the host for a ticket. */
int vkm_vk_cmd_ticket_wait(vkm_vk_cmd *c, uint64_t ticket);
/* Waits (best effort, errors ignored: also after a device loss) until every transfer issued so
 * far and every submitted part of a compute batch (also of one abandoned after a flush) has
 * completed, so that buffers they touch may be destroyed. */
void vkm_vk_cmd_drain(vkm_vk_cmd *c);
/* The compute half of vkm_vk_cmd_drain: the submitted parts of a batch abandoned after a flush
 * (outside begin..submit nothing else can be in flight on the compute queue). */
void vkm_vk_cmd_drain_compute(vkm_vk_cmd *c);
/* How many times the host waited for the device (a batch, a synchronous copy, a ticket, a
 * drain) since creation. */
uint64_t vkm_vk_cmd_host_waits(const vkm_vk_cmd *c);
/* Makes every later compute submit wait (on the device) for the ticket. */
void vkm_vk_cmd_wait_ticket(vkm_vk_cmd *c, uint64_t ticket);
/* Records a copy into the open compute batch, ordered after the dispatches before it and before
 * those after it; visible to the host after submit. */
int vkm_vk_cmd_record_copy(vkm_vk_cmd *c, VkBuffer src, uint64_t src_offset, VkBuffer dst,
                           uint64_t dst_offset, uint64_t size);

#endif
