/* cmd.c - compute batches and transfer copies (see cmd.h for the synchronisation scheme).
 * A batch is recorded into up to PARTS command buffers of one pool (vkm_vk_cmd_flush submits the
 * current one early); begin resets them all, which is safe because submit waited for the last.
 * Asynchronous copies each get a command buffer of a small ring (async[]), reused once the
 * ticket it signalled has completed (waiting for the oldest when all are in flight). */
#include "cmd.h"

#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "fault.h"
#include "vk_check.h"

#define WAIT_NS (600ull * 1000000000ull)
#define POOL_SETS 1024 /* descriptor sets per pool when push descriptors are unavailable */
#define ASYNC_CBS 64   /* command buffers for asynchronous copies */
#define PARTS 8        /* command buffers of one compute batch (vkm_vk_cmd_flush) */

struct vkm_vk_cmd {
    vkm_vk_device *d;
    VkCommandPool pool, xfer_pool;
    VkCommandBuffer parts[PARTS];       /* the batch's command buffers, in submission order */
    int part;                           /* the one being recorded */
    VkCommandBuffer cb, xfer_cb;        /* cb = parts[part] */
    VkSemaphore compute_sem, xfer_sem;  /* timelines */
    uint64_t compute_value, xfer_value; /* last values signalled */
    uint64_t compute_done;              /* compute value last waited for (<= compute_value) */
    uint64_t need_value;                /* compute submits wait for xfer_sem >= this */
    VkCommandPool async_pool;           /* transfer family, resettable command buffers */
    VkCommandBuffer async_cb[ASYNC_CBS];
    uint64_t async_ticket[ASYNC_CBS]; /* ticket each command buffer signalled last, 0 = none */
    int async_next;                   /* next command buffer to (re)use, round robin */
    /* descriptor pools (only without VK_KHR_push_descriptor): [n_pools], [0, pool_used) in use */
    VkDescriptorPool *pools;
    int n_pools, pool_used;
    /* timestamps: query 0 = start of batch, query i = mark i-1 */
    VkQueryPool queries;
    const char *labels[VKM_VK_MAX_MARKS]; /* [n_marks] */
    int n_marks;
    vkm_gpu_timing timings[VKM_VK_MAX_MARKS]; /* [n_timings] of the last submitted batch */
    int n_timings;
    /* recording state */
    bool recording;
    uint32_t n_dispatch; /* dispatches and copies recorded */
    bool copied;         /* a copy was recorded into the batch */
    VkPipeline bound;
    uint64_t host_waits; /* waits of the host on the device (vkm_vk_cmd_host_waits) */
};

static int make_semaphore(vkm_vk_device *d, VkSemaphore *out) {
    VkSemaphoreTypeCreateInfo tci = {
        .sType = VK_STRUCTURE_TYPE_SEMAPHORE_TYPE_CREATE_INFO,
        .semaphoreType = VK_SEMAPHORE_TYPE_TIMELINE,
        .initialValue = 0,
    };
    VkSemaphoreCreateInfo sci = {VK_STRUCTURE_TYPE_SEMAPHORE_CREATE_INFO, &tci, 0};
    VK_CHECK(d->vk.vkCreateSemaphore(d->dev, &sci, NULL, out));
    return VKM_OK;
}

static int make_pool(vkm_vk_device *d, uint32_t family, VkCommandPool *pool, VkCommandBuffer *cb,
                     uint32_t n) {
    VkCommandPoolCreateInfo pci = {
        .sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO,
        .flags = VK_COMMAND_POOL_CREATE_TRANSIENT_BIT,
        .queueFamilyIndex = family,
    };
    VK_CHECK(d->vk.vkCreateCommandPool(d->dev, &pci, NULL, pool));
    VkCommandBufferAllocateInfo ai = {
        .sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO,
        .commandPool = *pool,
        .level = VK_COMMAND_BUFFER_LEVEL_PRIMARY,
        .commandBufferCount = n,
    };
    VK_CHECK(d->vk.vkAllocateCommandBuffers(d->dev, &ai, cb));
    return VKM_OK;
}

int vkm_vk_cmd_create(vkm_vk_device *d, vkm_vk_cmd **out) {
    *out = NULL;
    vkm_vk_cmd *c = calloc(1, sizeof *c);
    if (!c) return vkm_error(VKM_ENOMEM, "out of memory creating command state");
    c->d = d;
    int rc;
    if ((rc = make_pool(d, d->caps.compute_family, &c->pool, c->parts, PARTS)) < 0 ||
        (rc = make_pool(d, d->transfer_family, &c->xfer_pool, &c->xfer_cb, 1)) < 0 ||
        (rc = make_semaphore(d, &c->compute_sem)) < 0 || (rc = make_semaphore(d, &c->xfer_sem)) < 0)
        goto fail;
    VkCommandPoolCreateInfo pci = {
        .sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO,
        .flags =
            VK_COMMAND_POOL_CREATE_TRANSIENT_BIT | VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT,
        .queueFamilyIndex = d->transfer_family,
    };
    VK_CHECK_GOTO(d->vk.vkCreateCommandPool(d->dev, &pci, NULL, &c->async_pool), rc, fail);
    VkCommandBufferAllocateInfo ai = {
        .sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO,
        .commandPool = c->async_pool,
        .level = VK_COMMAND_BUFFER_LEVEL_PRIMARY,
        .commandBufferCount = ASYNC_CBS,
    };
    VK_CHECK_GOTO(d->vk.vkAllocateCommandBuffers(d->dev, &ai, c->async_cb), rc, fail);
    if (d->caps.info.timestamps) {
        VkQueryPoolCreateInfo qci = {
            .sType = VK_STRUCTURE_TYPE_QUERY_POOL_CREATE_INFO,
            .queryType = VK_QUERY_TYPE_TIMESTAMP,
            .queryCount = VKM_VK_MAX_MARKS + 1,
        };
        VK_CHECK_GOTO(d->vk.vkCreateQueryPool(d->dev, &qci, NULL, &c->queries), rc, fail);
    }
    *out = c;
    return VKM_OK;
fail:
    vkm_vk_cmd_destroy(c);
    return rc;
}

void vkm_vk_cmd_destroy(vkm_vk_cmd *c) {
    if (!c) return;
    vkm_vk_device *d = c->d;
    if (d->submitted) d->vk.vkDeviceWaitIdle(d->dev);
    for (int i = 0; i < c->n_pools; i++) d->vk.vkDestroyDescriptorPool(d->dev, c->pools[i], NULL);
    free(c->pools);
    if (c->queries) d->vk.vkDestroyQueryPool(d->dev, c->queries, NULL);
    if (c->compute_sem) d->vk.vkDestroySemaphore(d->dev, c->compute_sem, NULL);
    if (c->xfer_sem) d->vk.vkDestroySemaphore(d->dev, c->xfer_sem, NULL);
    if (c->pool) d->vk.vkDestroyCommandPool(d->dev, c->pool, NULL);
    if (c->xfer_pool) d->vk.vkDestroyCommandPool(d->dev, c->xfer_pool, NULL);
    if (c->async_pool) d->vk.vkDestroyCommandPool(d->dev, c->async_pool, NULL);
    free(c);
}

static int wait_value(vkm_vk_cmd *c, VkSemaphore sem, uint64_t value, const char *what) {
    VkSemaphoreWaitInfo wi = {
        .sType = VK_STRUCTURE_TYPE_SEMAPHORE_WAIT_INFO,
        .semaphoreCount = 1,
        .pSemaphores = &sem,
        .pValues = &value,
    };
    c->host_waits++;
    VkResult r = c->d->vk.vkWaitSemaphores(c->d->dev, &wi, WAIT_NS);
    if (r == VK_TIMEOUT)
        return vkm_error(VKM_EDEVICE, "%s did not complete within %llu s", what,
                         (unsigned long long)(WAIT_NS / 1000000000ull));
    VK_CHECK(r);
    return VKM_OK;
}

/* Submits cb on queue, waiting for wait_sem >= wait_value at stage (if wait_value > 0) and
 * signalling signal_sem = signal_value. */
static int submit(vkm_vk_cmd *c, VkQueue q, VkCommandBuffer cb, VkSemaphore wait_sem,
                  uint64_t wait_value, VkPipelineStageFlags stage, VkSemaphore signal_sem,
                  uint64_t signal_value) {
    VkTimelineSemaphoreSubmitInfo ti = {
        .sType = VK_STRUCTURE_TYPE_TIMELINE_SEMAPHORE_SUBMIT_INFO,
        .waitSemaphoreValueCount = wait_value ? 1 : 0,
        .pWaitSemaphoreValues = &wait_value,
        .signalSemaphoreValueCount = 1,
        .pSignalSemaphoreValues = &signal_value,
    };
    VkSubmitInfo si = {
        .sType = VK_STRUCTURE_TYPE_SUBMIT_INFO,
        .pNext = &ti,
        .waitSemaphoreCount = wait_value ? 1 : 0,
        .pWaitSemaphores = &wait_sem,
        .pWaitDstStageMask = &stage,
        .commandBufferCount = 1,
        .pCommandBuffers = &cb,
        .signalSemaphoreCount = 1,
        .pSignalSemaphores = &signal_sem,
    };
    if (VKM_VK_FAULT(VKM_FAULT_DEVICE_LOST_NTH)) /* fault.c: not submitted, reported lost */
        return vkm_error(VKM_EDEVLOST,
                         "vkQueueSubmit failed: VK_ERROR_DEVICE_LOST (injected fault)");
    c->d->submitted = true;
    VK_CHECK(c->d->vk.vkQueueSubmit(q, 1, &si, VK_NULL_HANDLE));
    return VKM_OK;
}

/* ---- compute batches ---- */

/* Begins recording the batch's command buffer c->cb. */
static int begin_part(vkm_vk_cmd *c) {
    VkCommandBufferBeginInfo bi = {
        .sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO,
        .flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT,
    };
    VK_CHECK(c->d->vk.vkBeginCommandBuffer(c->cb, &bi));
    return VKM_OK;
}

/* Ends c->cb and submits it (after the transfers the batch needs), signalling the next compute
 * value. */
static int submit_part(vkm_vk_cmd *c) {
    vkm_vk_device *d = c->d;
    VK_CHECK(d->vk.vkEndCommandBuffer(c->cb));
    int rc = submit(c, d->compute_queue, c->cb, c->xfer_sem, c->need_value,
                    VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT,
                    c->compute_sem, c->compute_value + 1);
    if (rc < 0) return rc;
    c->compute_value++;
    return VKM_OK;
}

/* Waits for every compute part submitted so far. */
static int wait_compute(vkm_vk_cmd *c) {
    if (c->compute_done == c->compute_value) return VKM_OK;
    int rc = wait_value(c, c->compute_sem, c->compute_value, "the GPU batch");
    if (rc == VKM_OK) c->compute_done = c->compute_value;
    return rc;
}

int vkm_vk_cmd_begin(vkm_vk_cmd *c) {
    vkm_vk_device *d = c->d;
    c->recording = false;
    /* The previous batch was waited for in submit, so the pools are idle, unless it was abandoned
     * after a flush (an error while recording): then its submitted parts are waited for here. */
    int rc = wait_compute(c);
    if (rc < 0) return rc;
    VK_CHECK(d->vk.vkResetCommandPool(d->dev, c->pool, 0));
    for (int i = 0; i < c->pool_used; i++)
        VK_CHECK(d->vk.vkResetDescriptorPool(d->dev, c->pools[i], 0));
    c->pool_used = 0;
    c->part = 0;
    c->cb = c->parts[0];
    if ((rc = begin_part(c)) < 0) return rc;
    c->n_marks = 0;
    c->n_dispatch = 0;
    c->copied = false;
    c->bound = VK_NULL_HANDLE;
    if (c->queries) {
        d->vk.vkCmdResetQueryPool(c->cb, c->queries, 0, VKM_VK_MAX_MARKS + 1);
        d->vk.vkCmdWriteTimestamp(c->cb, VK_PIPELINE_STAGE_TOP_OF_PIPE_BIT, c->queries, 0);
    }
    c->recording = true;
    return VKM_OK;
}

static int alloc_set(vkm_vk_cmd *c, VkDescriptorSetLayout layout, VkDescriptorSet *set) {
    vkm_vk_device *d = c->d;
    for (;;) {
        if (c->pool_used > 0) {
            VkDescriptorSetAllocateInfo ai = {
                .sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO,
                .descriptorPool = c->pools[c->pool_used - 1],
                .descriptorSetCount = 1,
                .pSetLayouts = &layout,
            };
            VkResult r = d->vk.vkAllocateDescriptorSets(d->dev, &ai, set);
            if (r == VK_SUCCESS) return VKM_OK;
            if (r != VK_ERROR_OUT_OF_POOL_MEMORY && r != VK_ERROR_FRAGMENTED_POOL) VK_CHECK(r);
        }
        if (c->pool_used == c->n_pools) { /* grow: one more pool */
            VkDescriptorPool *ps = realloc(c->pools, (size_t)(c->n_pools + 1) * sizeof *ps);
            if (!ps) return vkm_error(VKM_ENOMEM, "out of memory growing descriptor pools");
            c->pools = ps;
            VkDescriptorPoolSize sizes[2] = {
                {VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, POOL_SETS * VKM_VK_MAX_BINDINGS / 4},
                {VK_DESCRIPTOR_TYPE_UNIFORM_TEXEL_BUFFER, POOL_SETS * 2}};
            VkDescriptorPoolCreateInfo pci = {
                .sType = VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO,
                .maxSets = POOL_SETS,
                .poolSizeCount = 2,
                .pPoolSizes = sizes,
            };
            VK_CHECK(d->vk.vkCreateDescriptorPool(d->dev, &pci, NULL, &c->pools[c->n_pools]));
            c->n_pools++;
        }
        c->pool_used++;
    }
}

int vkm_vk_cmd_dispatch(vkm_vk_cmd *c, const vkm_gpu_kernel *k, const VkDescriptorBufferInfo *bufs,
                        const VkBufferView *views, const void *push, uint32_t gx, uint32_t gy,
                        uint32_t gz) {
    vkm_vk_device *d = c->d;
    if (!c->recording) return vkm_error(VKM_EINVAL, "dispatch of %s outside begin/submit", k->name);
    const uint32_t *maxg = d->caps.props.limits.maxComputeWorkGroupCount;
    if (gx > maxg[0] || gy > maxg[1] || gz > maxg[2])
        return vkm_error(VKM_EINVAL, "dispatch of %s: %u x %u x %u groups exceeds %u x %u x %u",
                         k->name, gx, gy, gz, maxg[0], maxg[1], maxg[2]);
    if (c->n_dispatch > 0) {
        VkMemoryBarrier mb = {
            .sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
            .srcAccessMask =
                VK_ACCESS_SHADER_WRITE_BIT | (c->copied ? VK_ACCESS_TRANSFER_WRITE_BIT : 0),
            .dstAccessMask = VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT,
        };
        d->vk.vkCmdPipelineBarrier(
            c->cb,
            VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | (c->copied ? VK_PIPELINE_STAGE_TRANSFER_BIT : 0),
            VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, 0, 1, &mb, 0, NULL, 0, NULL);
    }
    if (c->bound != k->pipeline) {
        d->vk.vkCmdBindPipeline(c->cb, VK_PIPELINE_BIND_POINT_COMPUTE, k->pipeline);
        c->bound = k->pipeline;
    }
    if (k->n_bindings > 0) {
        VkWriteDescriptorSet w[VKM_VK_MAX_BINDINGS];
        VkDescriptorSet set = VK_NULL_HANDLE;
        if (!k->push_descriptor) {
            int rc = alloc_set(c, k->set_layout, &set);
            if (rc < 0) return rc;
        }
        for (int i = 0; i < k->n_bindings; i++)
            w[i] = (VkWriteDescriptorSet){
                .sType = VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET,
                .dstSet = set,
                .dstBinding = (uint32_t)i,
                .descriptorCount = 1,
                .descriptorType = vkm_vk_descriptor_type(k->kinds[i]),
                .pBufferInfo = k->kinds[i] == VKM_VK_BIND_STORAGE ? &bufs[i] : NULL,
                .pTexelBufferView = k->kinds[i] == VKM_VK_BIND_STORAGE ? NULL : &views[i],
            };
        if (k->push_descriptor) {
            d->vk.vkCmdPushDescriptorSetKHR(c->cb, VK_PIPELINE_BIND_POINT_COMPUTE, k->layout, 0,
                                            (uint32_t)k->n_bindings, w);
        } else {
            d->vk.vkUpdateDescriptorSets(d->dev, (uint32_t)k->n_bindings, w, 0, NULL);
            d->vk.vkCmdBindDescriptorSets(c->cb, VK_PIPELINE_BIND_POINT_COMPUTE, k->layout, 0, 1,
                                          &set, 0, NULL);
        }
    }
    if (k->push_size)
        d->vk.vkCmdPushConstants(c->cb, k->layout, VK_SHADER_STAGE_COMPUTE_BIT, 0, k->push_size,
                                 push);
    d->vk.vkCmdDispatch(c->cb, gx, gy, gz);
    c->n_dispatch++;
    return VKM_OK;
}

int vkm_vk_cmd_mark(vkm_vk_cmd *c, const char *label) {
    if (!c->recording) return vkm_error(VKM_EINVAL, "mark '%s' outside begin/submit", label);
    if (!c->queries || c->n_marks >= VKM_VK_MAX_MARKS) return VKM_OK;
    c->d->vk.vkCmdWriteTimestamp(c->cb, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, c->queries,
                                 (uint32_t)c->n_marks + 1);
    c->labels[c->n_marks++] = label;
    return VKM_OK;
}

static int read_timings(vkm_vk_cmd *c) {
    c->n_timings = 0;
    if (!c->queries || c->n_marks == 0) return VKM_OK;
    uint64_t *ts = malloc(((size_t)c->n_marks + 1) * sizeof *ts);
    if (!ts) return vkm_error(VKM_ENOMEM, "out of memory reading timestamps");
    VkResult r = c->d->vk.vkGetQueryPoolResults(
        c->d->dev, c->queries, 0, (uint32_t)c->n_marks + 1, ((size_t)c->n_marks + 1) * sizeof *ts,
        ts, sizeof *ts, VK_QUERY_RESULT_64_BIT | VK_QUERY_RESULT_WAIT_BIT);
    if (r < 0) {
        free(ts);
        return vkm_vk_fail(r, "vkGetQueryPoolResults", __FILE__, __LINE__);
    }
    uint32_t bits = c->d->caps.timestamp_bits;
    uint64_t mask = bits >= 64 ? UINT64_MAX : (1ull << bits) - 1;
    double period = c->d->caps.info.timestamp_period_ns;
    for (int i = 0; i < c->n_marks; i++) {
        uint64_t dt = ((ts[i + 1] & mask) - (ts[i] & mask)) & mask;
        c->timings[i] = (vkm_gpu_timing){c->labels[i], (uint64_t)((double)dt * period + 0.5)};
    }
    c->n_timings = c->n_marks;
    free(ts);
    return VKM_OK;
}

int vkm_vk_cmd_submit(vkm_vk_cmd *c) {
    vkm_vk_device *d = c->d;
    if (!c->recording) return vkm_error(VKM_EINVAL, "submit without begin");
    c->recording = false;
    if (c->n_dispatch > 0) { /* make shader (and copy) writes visible to the host */
        VkMemoryBarrier mb = {
            .sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
            .srcAccessMask =
                VK_ACCESS_SHADER_WRITE_BIT | (c->copied ? VK_ACCESS_TRANSFER_WRITE_BIT : 0),
            .dstAccessMask = VK_ACCESS_HOST_READ_BIT,
        };
        d->vk.vkCmdPipelineBarrier(c->cb,
                                   VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT |
                                       (c->copied ? VK_PIPELINE_STAGE_TRANSFER_BIT : 0),
                                   VK_PIPELINE_STAGE_HOST_BIT, 0, 1, &mb, 0, NULL, 0, NULL);
    }
    int rc;
    if ((rc = submit_part(c)) < 0 || (rc = wait_compute(c)) < 0) return rc;
    return read_timings(c);
}

int vkm_vk_cmd_flush(vkm_vk_cmd *c) {
    if (!c->recording) return vkm_error(VKM_EINVAL, "flush without begin");
    if (c->part + 1 >= PARTS) return VKM_OK; /* the batch's last part takes the rest */
    int rc = submit_part(c);
    if (rc < 0) {
        c->recording = false; /* begin starts over */
        return rc;
    }
    c->cb = c->parts[++c->part];
    c->bound = VK_NULL_HANDLE;
    if ((rc = begin_part(c)) < 0) return rc;
    /* n_dispatch stays: the next dispatch or copy begins with the barrier after the work of the
     * parts before (a barrier's first scope takes in everything earlier in submission order) */
    return VKM_OK;
}

int vkm_vk_cmd_timings(const vkm_vk_cmd *c, vkm_gpu_timing *out, int max, int *n) {
    *n = c->n_timings;
    for (int i = 0; i < c->n_timings && i < max; i++) out[i] = c->timings[i];
    return VKM_OK;
}

/* ---- transfers ---- */

int vkm_vk_cmd_copy(vkm_vk_cmd *c, VkBuffer src, uint64_t src_offset, VkBuffer dst,
                    uint64_t dst_offset, uint64_t size) {
    vkm_vk_device *d = c->d;
    VK_CHECK(d->vk.vkResetCommandPool(d->dev, c->xfer_pool, 0));
    VkCommandBufferBeginInfo bi = {
        .sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO,
        .flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT,
    };
    VK_CHECK(d->vk.vkBeginCommandBuffer(c->xfer_cb, &bi));
    VkBufferCopy region = {src_offset, dst_offset, size};
    d->vk.vkCmdCopyBuffer(c->xfer_cb, src, dst, 1, &region);
    VkMemoryBarrier mb = {
        .sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
        .srcAccessMask = VK_ACCESS_TRANSFER_WRITE_BIT,
        .dstAccessMask = VK_ACCESS_HOST_READ_BIT,
    };
    d->vk.vkCmdPipelineBarrier(c->xfer_cb, VK_PIPELINE_STAGE_TRANSFER_BIT,
                               VK_PIPELINE_STAGE_HOST_BIT, 0, 1, &mb, 0, NULL, 0, NULL);
    VK_CHECK(d->vk.vkEndCommandBuffer(c->xfer_cb));
    int rc = submit(c, d->transfer_queue, c->xfer_cb, c->compute_sem, c->compute_value,
                    VK_PIPELINE_STAGE_TRANSFER_BIT, c->xfer_sem, c->xfer_value + 1);
    if (rc < 0) return rc;
    c->xfer_value++;
    c->need_value = c->xfer_value; /* later batches see it (and every earlier transfer) */
    return wait_value(c, c->xfer_sem, c->xfer_value, "a buffer copy");
}

int vkm_vk_cmd_ticket_done(vkm_vk_cmd *c, uint64_t ticket, bool *done) {
    uint64_t v = 0;
    VK_CHECK(c->d->vk.vkGetSemaphoreCounterValue(c->d->dev, c->xfer_sem, &v));
    *done = v >= ticket;
    return VKM_OK;
}

int vkm_vk_cmd_ticket_wait(vkm_vk_cmd *c, uint64_t ticket) {
    if (ticket == 0) return VKM_OK;
    if (ticket > c->xfer_value)
        return vkm_error(VKM_EINVAL, "ticket %llu was never issued (last %llu)",
                         (unsigned long long)ticket, (unsigned long long)c->xfer_value);
    return wait_value(c, c->xfer_sem, ticket, "an asynchronous copy");
}

/* Waits (best effort) until `sem` reaches `value`. */
static void drain_sem(vkm_vk_cmd *c, VkSemaphore sem, uint64_t value) {
    uint64_t v = 0;
    if (!sem || !value || c->d->vk.vkGetSemaphoreCounterValue(c->d->dev, sem, &v) != VK_SUCCESS ||
        v >= value)
        return;
    VkSemaphoreWaitInfo wi = {
        .sType = VK_STRUCTURE_TYPE_SEMAPHORE_WAIT_INFO,
        .semaphoreCount = 1,
        .pSemaphores = &sem,
        .pValues = &value,
    };
    c->host_waits++;
    (void)c->d->vk.vkWaitSemaphores(c->d->dev, &wi, WAIT_NS);
}

void vkm_vk_cmd_drain(vkm_vk_cmd *c) {
    if (!c) return;
    drain_sem(c, c->xfer_sem, c->xfer_value);
    vkm_vk_cmd_drain_compute(c);
}

uint64_t vkm_vk_cmd_host_waits(const vkm_vk_cmd *c) {
    return c ? c->host_waits : 0;
}

void vkm_vk_cmd_drain_compute(vkm_vk_cmd *c) {
    if (!c || c->compute_done == c->compute_value) return; /* nothing unwaited: no driver call */
    drain_sem(c, c->compute_sem, c->compute_value);        /* an abandoned batch's parts */
}

void vkm_vk_cmd_wait_ticket(vkm_vk_cmd *c, uint64_t ticket) {
    if (ticket > c->xfer_value) ticket = c->xfer_value;
    if (ticket > c->need_value) c->need_value = ticket;
}

int vkm_vk_cmd_copy_async(vkm_vk_cmd *c, VkBuffer src, uint64_t src_offset, VkBuffer dst,
                          uint64_t dst_offset, uint64_t size, uint64_t *ticket) {
    vkm_vk_device *d = c->d;
    *ticket = 0;
    const int i = c->async_next;
    int rc;
    /* the command buffer's previous copy must have completed before it is reset */
    if (c->async_ticket[i] && (rc = vkm_vk_cmd_ticket_wait(c, c->async_ticket[i])) < 0) return rc;
    VkCommandBuffer cb = c->async_cb[i];
    VK_CHECK(d->vk.vkResetCommandBuffer(cb, 0));
    VkCommandBufferBeginInfo bi = {
        .sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO,
        .flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT,
    };
    VK_CHECK(d->vk.vkBeginCommandBuffer(cb, &bi));
    VkBufferCopy region = {src_offset, dst_offset, size};
    d->vk.vkCmdCopyBuffer(cb, src, dst, 1, &region);
    VK_CHECK(d->vk.vkEndCommandBuffer(cb));
    rc = submit(c, d->transfer_queue, cb, c->compute_sem, c->compute_value,
                VK_PIPELINE_STAGE_TRANSFER_BIT, c->xfer_sem, c->xfer_value + 1);
    if (rc < 0) return rc;
    c->xfer_value++;
    c->async_ticket[i] = c->xfer_value;
    c->async_next = (i + 1) % ASYNC_CBS;
    *ticket = c->xfer_value;
    return VKM_OK;
}

int vkm_vk_cmd_record_copy(vkm_vk_cmd *c, VkBuffer src, uint64_t src_offset, VkBuffer dst,
                           uint64_t dst_offset, uint64_t size) {
    vkm_vk_device *d = c->d;
    if (!c->recording) return vkm_error(VKM_EINVAL, "copy recorded outside begin/submit");
    if (c->n_dispatch > 0) { /* after the writes (and reads) of everything before */
        VkMemoryBarrier mb = {
            .sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
            .srcAccessMask =
                VK_ACCESS_SHADER_WRITE_BIT | (c->copied ? VK_ACCESS_TRANSFER_WRITE_BIT : 0),
            .dstAccessMask = VK_ACCESS_TRANSFER_READ_BIT | VK_ACCESS_TRANSFER_WRITE_BIT,
        };
        d->vk.vkCmdPipelineBarrier(c->cb,
                                   VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT |
                                       (c->copied ? VK_PIPELINE_STAGE_TRANSFER_BIT : 0),
                                   VK_PIPELINE_STAGE_TRANSFER_BIT, 0, 1, &mb, 0, NULL, 0, NULL);
    }
    VkBufferCopy region = {src_offset, dst_offset, size};
    d->vk.vkCmdCopyBuffer(c->cb, src, dst, 1, &region);
    c->copied = true;
    c->n_dispatch++;
    return VKM_OK;
}
