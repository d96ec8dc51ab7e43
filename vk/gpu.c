/* gpu.c - core/gpu.h implemented on the vk/ modules: instance.c, device.c, mem.c, pipeline.c,
 * cmd.c. This file only validates arguments and glues the modules together.
 *
 * Invariants: a vkm_gpu owns one instance, one device, one allocator, one kernel cache and one
 * command state, destroyed in reverse order. Host <-> device copies go straight through the
 * mapping when the buffer's memory is host visible and coherent (UMA, lavapipe, ReBAR), else in
 * chunks through one lazily created staging buffer on the transfer queue. Asynchronous copies
 * (tickets) are cmd.c's; this file checks their ranges. Imported buffers (vkm_gpu_buf_import:
 * the caller's host memory, possibly read-only) are sources only: no upload into them, no copy
 * to them. A device loss
 * (VKM_EDEVLOST from any module, real or injected by fault.c) is sticky: every later call except
 * the destroy functions fails at once with VKM_EDEVLOST, so nothing waits on a dead device.
 * While dry (vkm_gpu_set_dry) dispatches are checked and nothing is recorded or submitted; the
 * kernels asked for meanwhile are built when it ends (pipeline.c, on several threads). Not
 * thread-safe. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmd.h"
#include "cpu_threads.h"
#include "device.h"
#include "err.h"
#include "fault.h"
#include "gpu.h"
#include "instance.h"
#include "mem.h"
#include "pipeline.h"

#define STAGING_BYTES (16ull << 20)

struct vkm_gpu {
    vkm_vk_instance *inst;
    vkm_vk_device *dev;
    vkm_vk_mem *mem;
    vkm_vk_pipelines *pipes;
    vkm_vk_cmd *cmd;
    vkm_vk_buffer staging; /* host buffer of STAGING_BYTES, created on first use */
    bool force_staging;    /* never copy through a device buffer's own mapping */
    bool lost;             /* a call returned VKM_EDEVLOST: every later call fails fast */
    bool dry;              /* vkm_gpu_set_dry: record nothing, build pipelines at the end */
    bool prime;            /* vkm_gpu_set_prime: dispatches of no workgroups */
    bool compile_only;     /* options.compile_only: nothing runs (inert()), no command state */
    vkm_kernel_plan plan;  /* core/kernels.h, built at creation */
    uint64_t dispatches;   /* recorded so far, neither dry nor primed */
    vkm_gpu_buf *consts[VKM_GPU_CONST_SLOTS];    /* vkm_gpu_const_buf, created on first use */
    vkm_gpu_buf *scratch[VKM_GPU_SCRATCH_SLOTS]; /* vkm_gpu_scratch_buf: the current ones */
    vkm_gpu_buf **retired; /* [n_retired] scratch buffers replaced by larger ones */
    int n_retired;
};

struct vkm_gpu_buf {
    vkm_vk_buffer b; /* compile-only: only size (and a malloc'ed map for host buffers) */
    vkm_buf_kind kind;
};

/* Whether recording and running do nothing: dry recording, or a compile-only gpu. */
static bool inert(const vkm_gpu *g) {
    return g->dry || g->compile_only;
}

const char *vkm_gpu_vendor_name(int vendor) {
    switch (vendor) {
    case VKM_VENDOR_AMD:
        return "AMD";
    case VKM_VENDOR_INTEL:
        return "Intel";
    case VKM_VENDOR_NVIDIA:
        return "NVIDIA";
    default:
        return "other";
    }
}

const char *vkm_gpu_type_name(int type) {
    switch (type) {
    case VKM_DEV_DISCRETE:
        return "discrete";
    case VKM_DEV_INTEGRATED:
        return "integrated";
    case VKM_DEV_VIRTUAL:
        return "virtual";
    case VKM_DEV_CPU:
        return "cpu";
    default:
        return "other";
    }
}

int vkm_gpu_list(vkm_gpu_device_info *out, int max, int *count) {
    *count = 0;
    vkm_vk_instance *inst = NULL;
    VkPhysicalDevice *phys = NULL;
    vkm_vk_caps *caps = NULL;
    uint32_t n = 0;
    int rc = vkm_vk_instance_create(false, &inst);
    if (rc < 0) return rc;
    if ((rc = vkm_vk_instance_devices(inst, &phys, &n)) < 0) goto out;
    caps = calloc(n, sizeof *caps);
    if (!caps) {
        rc = vkm_error(VKM_ENOMEM, "out of memory listing devices");
        goto out;
    }
    for (uint32_t i = 0; i < n; i++)
        if ((rc = vkm_vk_device_query(phys[i], (int)i, &caps[i])) < 0) goto out;
    int def = -1;
    if (vkm_vk_device_select(caps, (int)n, -1, &def) < 0) def = -1;
    for (uint32_t i = 0; i < n; i++) {
        caps[i].info.is_default = (int)i == def;
        if ((int)i < max) out[i] = caps[i].info;
    }
    *count = (int)n;
    rc = VKM_OK;
out:
    free(caps);
    free(phys);
    vkm_vk_instance_destroy(inst);
    return rc;
}

/* Marks the gpu lost when rc says so (the first time, prefixing the message). */
static int track(vkm_gpu *g, int rc) {
    if (rc == VKM_EDEVLOST && !g->lost) {
        g->lost = true;
        char why[512]; /* vkm_error() reuses the buffer vkm_errmsg() points to */
        snprintf(why, sizeof why, "%s", vkm_errmsg());
        rc = vkm_error(VKM_EDEVLOST, "the GPU device was lost: %s", why);
    }
    return rc;
}

#define LOST_GUARD(g)                                                                              \
    do {                                                                                           \
        if ((g)->lost)                                                                             \
            return vkm_error(VKM_EDEVLOST, "the GPU device was lost earlier; close the engine "    \
                                           "and open it again");                                   \
    } while (0)

/* A size from the environment variable `name` (K/M/G suffixes, at least 4 KiB) into *out;
 * unset or empty leaves *out alone. */
static int size_from_env(const char *name, uint64_t *out) {
    const char *env = getenv(name);
    if (!env || !*env) return VKM_OK;
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(env, &end, 10);
    uint64_t mul = 1;
    if (end && (*end == 'K' || *end == 'k')) mul = 1024;
    if (end && (*end == 'M' || *end == 'm')) mul = 1024 * 1024;
    if (end && (*end == 'G' || *end == 'g')) mul = 1024 * 1024 * 1024;
    if (end && mul > 1) end++;
    if (errno || end == env || !end || *end || *env == '-' || v > UINT64_MAX / mul ||
        v * mul < 4096)
        return vkm_error(VKM_EINVAL, "%s=%s: expected a size of at least 4K (K/M/G suffixes)", name,
                         env);
    *out = v * mul;
    return VKM_OK;
}

/* Test hooks: $VKMOE_WEIGHT_WINDOW=SIZE caps info->weight_window_bytes (the kernels then bind
 * weights in windows as on a device with that range), $VKMOE_DEVICE_MEMORY=SIZE the device-local
 * memory and budget the device reports (the engine's automatic VRAM budget plans for a device of
 * that size); $VKMOE_FORCE_STAGING=1 copies through staging as where device memory is not
 * host-visible (a discrete GPU without resizable BAR). */
static int caps_from_env(vkm_gpu_device_info *info, bool *force_staging) {
    uint64_t win = 0, mem = 0;
    int rc;
    const char *fs = getenv("VKMOE_FORCE_STAGING");
    if (fs && *fs && strcmp(fs, "0") && strcmp(fs, "1"))
        return vkm_error(VKM_EINVAL, "VKMOE_FORCE_STAGING=%s: expected 0 or 1", fs);
    if (fs && !strcmp(fs, "1")) *force_staging = true;
    if ((rc = size_from_env("VKMOE_WEIGHT_WINDOW", &win)) ||
        (rc = size_from_env("VKMOE_DEVICE_MEMORY", &mem)))
        return rc;
    if (win && win < info->weight_window_bytes) info->weight_window_bytes = win;
    if (mem && mem < info->device_local_bytes) info->device_local_bytes = mem;
    if (mem && mem < info->budget_bytes) info->budget_bytes = mem;
    return VKM_OK;
}

int vkm_gpu_create(const vkm_gpu_options *opt, vkm_gpu **out) {
    *out = NULL;
    vkm_vk_fault_from_env();
    vkm_gpu_options def = {.device = -1};
    if (!opt) opt = &def;
    if (opt->device < -1) return vkm_error(VKM_EINVAL, "device %d does not exist", opt->device);
    vkm_gpu *g = calloc(1, sizeof *g);
    if (!g) return vkm_error(VKM_ENOMEM, "out of memory creating the GPU");
    int rc;
    vkm_vk_threads before;
    vkm_vk_threads_snapshot(&before);
    if ((rc = vkm_vk_instance_create(opt->validation, &g->inst)) < 0 ||
        (rc = vkm_vk_device_create(g->inst, opt->device, opt->compile_only, &g->dev)) < 0 ||
        (rc = vkm_vk_mem_create(g->dev, &g->mem)) < 0 ||
        (rc = vkm_vk_pipeline_create(g->dev, !opt->no_pipeline_cache && !opt->compile_only,
                                     &g->pipes)) < 0 ||
        (!opt->compile_only && (rc = vkm_vk_cmd_create(g->dev, &g->cmd)) < 0)) {
        vkm_gpu_destroy(g);
        return rc;
    }
    g->dev->caps.info.is_default = opt->device == -1;
    g->compile_only = opt->compile_only;
    if (g->compile_only) g->dev->caps.info.import_align = 0; /* no imports: no memory */
    vkm_gpu_device_info *info = &g->dev->caps.info;
    const vkm_kernels_caps caps = {info->vendor,      info->type,          info->device_id,
                                   info->name,        info->subgroup_size, info->int64,
                                   info->texel_bytes, info->int_dot,       info->int_dot_accel};
    if ((rc = vkm_kernels_plan(&caps, opt->kernels, &g->plan)) < 0) {
        vkm_gpu_destroy(g);
        return rc;
    }
    if (!g->plan.texel) info->texel_bytes = 0; /* no buffer gets texel usage then */
    g->force_staging = opt->force_staging;
    if ((rc = caps_from_env(info, &g->force_staging))) {
        vkm_gpu_destroy(g);
        return rc;
    }
    if (info->type == VKM_DEV_CPU) vkm_vk_threads_pin_new(&before);
    *out = g;
    return VKM_OK;
}

void vkm_gpu_destroy(vkm_gpu *g) {
    if (!g) return;
    for (int i = 0; i < VKM_GPU_CONST_SLOTS; i++) vkm_gpu_buf_destroy(g, g->consts[i]);
    for (int i = 0; i < VKM_GPU_SCRATCH_SLOTS; i++) vkm_gpu_buf_destroy(g, g->scratch[i]);
    for (int i = 0; i < g->n_retired; i++) vkm_gpu_buf_destroy(g, g->retired[i]);
    free(g->retired);
    vkm_vk_cmd_destroy(g->cmd);
    if (g->mem) vkm_vk_mem_buffer_destroy(g->mem, &g->staging);
    vkm_vk_pipeline_destroy(g->pipes);
    vkm_vk_mem_destroy(g->mem);
    vkm_vk_device_destroy(g->dev);
    vkm_vk_instance_destroy(g->inst);
    free(g);
}

const vkm_gpu_device_info *vkm_gpu_info(const vkm_gpu *g) {
    return &g->dev->caps.info;
}

const vkm_kernel_plan *vkm_gpu_plan(const vkm_gpu *g) {
    return &g->plan;
}

uint64_t vkm_gpu_dispatch_count(const vkm_gpu *g) {
    return g->dispatches;
}

uint64_t vkm_gpu_host_waits(const vkm_gpu *g) {
    return vkm_vk_cmd_host_waits(g->cmd);
}

uint32_t vkm_gpu_validation_errors(const vkm_gpu *g) {
    return g ? vkm_vk_instance_errors(g->inst) : 0;
}

/* ---- buffers ---- */

int vkm_gpu_buf_create(vkm_gpu *g, size_t size, vkm_buf_kind kind, vkm_gpu_buf **out) {
    *out = NULL;
    if (kind != VKM_BUF_DEVICE && kind != VKM_BUF_HOST)
        return vkm_error(VKM_EINVAL, "buffer kind %d is not valid", kind);
    LOST_GUARD(g);
    vkm_gpu_buf *b = calloc(1, sizeof *b);
    if (!b) return vkm_error(VKM_ENOMEM, "out of memory creating a buffer");
    if (g->compile_only) {
        b->b.size = size;
        b->kind = kind;
        if (kind == VKM_BUF_HOST && !(b->b.map = calloc(1, size ? size : 1))) {
            free(b);
            return vkm_error(VKM_ENOMEM, "out of memory creating a host buffer of %zu bytes", size);
        }
        *out = b;
        return VKM_OK;
    }
    int rc = vkm_vk_mem_buffer_create(
        g->mem, size, kind == VKM_BUF_HOST ? VKM_VK_MEM_HOST : VKM_VK_MEM_DEVICE, &b->b);
    if (rc < 0) {
        free(b);
        return track(g, rc);
    }
    b->kind = kind;
    *out = b;
    return VKM_OK;
}

int vkm_gpu_buf_import(vkm_gpu *g, const void *host, size_t size, vkm_gpu_buf **out) {
    *out = NULL;
    LOST_GUARD(g);
    const vkm_gpu_device_info *info = &g->dev->caps.info;
    const uint64_t align = info->import_align;
    if (!align)
        return vkm_error(VKM_EUNSUPPORTED,
                         "%s cannot import host memory (no VK_EXT_external_memory_host with "
                         "importable storage buffers)",
                         info->name);
    if (!host || size == 0)
        return vkm_error(VKM_EINVAL, "import of host memory: %s", host ? "size 0" : "NULL pointer");
    if ((uintptr_t)host % align || size % align)
        return vkm_error(VKM_EINVAL,
                         "import of host memory at %p (%zu bytes): pointer and size must be "
                         "multiples of the device's import alignment of %llu bytes",
                         host, size, (unsigned long long)align);
    if ((uintptr_t)host > UINTPTR_MAX - size)
        return vkm_error(VKM_EINVAL, "import of host memory at %p: %zu bytes wrap around", host,
                         size);
    if (size > info->max_alloc_bytes)
        return vkm_error(VKM_EINVAL,
                         "import of %zu bytes of host memory: larger than the device's largest "
                         "buffer (%llu bytes)",
                         size, (unsigned long long)info->max_alloc_bytes);
    vkm_gpu_buf *b = calloc(1, sizeof *b);
    if (!b) return vkm_error(VKM_ENOMEM, "out of memory creating a buffer");
    int rc = vkm_vk_mem_import(g->mem, host, size, &b->b);
    if (rc < 0) {
        free(b);
        return track(g, rc);
    }
    b->kind = VKM_BUF_IMPORTED;
    *out = b;
    return VKM_OK;
}

void vkm_gpu_buf_destroy(vkm_gpu *g, vkm_gpu_buf *b) {
    if (!b) return;
    if (g->compile_only) {
        if (b->kind == VKM_BUF_HOST) free(b->b.map);
        free(b);
        return;
    }
    vkm_vk_cmd_drain(g->cmd); /* no asynchronous copy may still touch it (free when none) */
    vkm_vk_mem_buffer_destroy(g->mem, &b->b);
    free(b);
}

/* The range of `a` rounded up to whole 16-byte texels. */
static uint64_t texel_range(const vkm_gpu_arg *a) {
    const uint64_t range = a->size ? a->size : a->buf->b.size - a->offset;
    return (range + 15) & ~(uint64_t)15;
}

bool vkm_gpu_texel_window(const vkm_gpu *g, const vkm_gpu_arg *a) {
    const uint64_t limit = g->dev->caps.info.texel_bytes, bsize = a->buf ? a->buf->b.size : 0;
    return limit && a->buf && a->offset % 256 == 0 && a->offset <= bsize &&
           texel_range(a) <= bsize - a->offset && texel_range(a) <= limit;
}

size_t vkm_gpu_buf_size(const vkm_gpu_buf *b) {
    return b ? (size_t)b->b.size : 0;
}

void *vkm_gpu_buf_map(vkm_gpu_buf *b) {
    return b && b->kind == VKM_BUF_HOST ? b->b.map : NULL;
}

vkm_buf_kind vkm_gpu_buf_kind(const vkm_gpu_buf *b) {
    return b ? b->kind : VKM_BUF_DEVICE;
}

bool vkm_gpu_buf_direct(const vkm_gpu *g, const vkm_gpu_buf *b) {
    return b && b->b.map && b->kind != VKM_BUF_IMPORTED && !g->compile_only &&
           !(g->force_staging && b->kind == VKM_BUF_DEVICE);
}

static int check_range(const vkm_gpu_buf *b, size_t offset, size_t size, const char *what) {
    if (!b) return vkm_error(VKM_EINVAL, "%s: NULL buffer", what);
    if (offset > b->b.size || size > b->b.size - offset)
        return vkm_error(VKM_EINVAL, "%s: range [%zu, +%zu) outside a buffer of %llu bytes", what,
                         offset, size, (unsigned long long)b->b.size);
    return VKM_OK;
}

static int staging_get(vkm_gpu *g) {
    if (g->staging.buf) return VKM_OK;
    int rc = vkm_vk_mem_buffer_create(g->mem, STAGING_BYTES, VKM_VK_MEM_HOST, &g->staging);
    if (rc < 0) return rc;
    if (!g->staging.map) {
        vkm_vk_mem_buffer_destroy(g->mem, &g->staging);
        return vkm_error(VKM_EUNSUPPORTED, "staging memory is not host visible");
    }
    return VKM_OK;
}

static int upload(vkm_gpu *g, vkm_gpu_buf *dst, size_t offset, const void *src, size_t size) {
    int rc = check_range(dst, offset, size, "upload");
    if (rc < 0 || size == 0) return rc;
    if (dst->kind == VKM_BUF_IMPORTED)
        return vkm_error(VKM_EINVAL, "upload: the destination is imported host memory (read only)");
    if (dst->b.map && !(g->force_staging && dst->kind == VKM_BUF_DEVICE)) {
        vkm_vk_cmd_drain_compute(g->cmd); /* after what was submitted (the staging copies wait
                                              for it on the device) */
        memcpy((char *)dst->b.map + offset, src, size);
        return VKM_OK;
    }
    if ((rc = staging_get(g)) < 0) return rc;
    for (size_t done = 0; done < size;) {
        size_t n = size - done < STAGING_BYTES ? size - done : (size_t)STAGING_BYTES;
        memcpy(g->staging.map, (const char *)src + done, n);
        rc = vkm_vk_cmd_copy(g->cmd, g->staging.buf, 0, dst->b.buf, offset + done, n);
        if (rc < 0) return rc;
        done += n;
    }
    return VKM_OK;
}

int vkm_gpu_upload(vkm_gpu *g, vkm_gpu_buf *dst, size_t offset, const void *src, size_t size) {
    LOST_GUARD(g);
    if (g->compile_only) return check_range(dst, offset, size, "upload");
    return track(g, upload(g, dst, offset, src, size));
}

int vkm_gpu_const_buf(vkm_gpu *g, int slot, const void *data, size_t bytes, vkm_gpu_buf **out) {
    *out = NULL;
    if (slot < 0 || slot >= VKM_GPU_CONST_SLOTS || !data || !bytes)
        return vkm_error(VKM_EINVAL, "constant buffer: bad slot %d or no data", slot);
    vkm_gpu_buf *b = g->consts[slot];
    if (b) {
        if (vkm_gpu_buf_size(b) != bytes)
            return vkm_error(VKM_EINVAL, "constant buffer %d holds %zu bytes, not %zu", slot,
                             vkm_gpu_buf_size(b), bytes);
        *out = b;
        return 0;
    }
    int rc = vkm_gpu_buf_create(g, bytes, VKM_BUF_DEVICE, &b);
    if (!rc) rc = vkm_gpu_upload(g, b, 0, data, bytes);
    if (rc) {
        vkm_gpu_buf_destroy(g, b);
        return rc;
    }
    *out = g->consts[slot] = b;
    return 0;
}

int vkm_gpu_scratch_buf(vkm_gpu *g, int slot, size_t bytes, vkm_gpu_buf **out) {
    *out = NULL;
    if (slot < 0 || slot >= VKM_GPU_SCRATCH_SLOTS || !bytes)
        return vkm_error(VKM_EINVAL, "scratch buffer: bad slot %d or size 0", slot);
    vkm_gpu_buf *b = g->scratch[slot];
    if (b && vkm_gpu_buf_size(b) >= bytes) {
        *out = b;
        return 0;
    }
    size_t size = b && vkm_gpu_buf_size(b) <= SIZE_MAX / 2 ? 2 * vkm_gpu_buf_size(b) : 0;
    if (size < bytes) size = bytes;
    if (b) { /* keep the old one alive: work recorded before may still use it */
        vkm_gpu_buf **r = realloc(g->retired, ((size_t)g->n_retired + 1) * sizeof *r);
        if (!r) return vkm_error(VKM_ENOMEM, "scratch buffer: out of memory");
        g->retired = r;
    }
    vkm_gpu_buf *nb = NULL;
    int rc = vkm_gpu_buf_create(g, size, VKM_BUF_DEVICE, &nb);
    if (rc) return rc;
    if (b) g->retired[g->n_retired++] = b;
    *out = g->scratch[slot] = nb;
    return 0;
}

static int download(vkm_gpu *g, vkm_gpu_buf *src, size_t offset, void *dst, size_t size) {
    int rc = check_range(src, offset, size, "download");
    if (rc < 0 || size == 0) return rc;
    if (src->b.map && !(g->force_staging && src->kind == VKM_BUF_DEVICE)) {
        vkm_vk_cmd_drain_compute(g->cmd);
        memcpy(dst, (const char *)src->b.map + offset, size);
        return VKM_OK;
    }
    if ((rc = staging_get(g)) < 0) return rc;
    for (size_t done = 0; done < size;) {
        size_t n = size - done < STAGING_BYTES ? size - done : (size_t)STAGING_BYTES;
        rc = vkm_vk_cmd_copy(g->cmd, src->b.buf, offset + done, g->staging.buf, 0, n);
        if (rc < 0) return rc;
        memcpy((char *)dst + done, g->staging.map, n);
        done += n;
    }
    return VKM_OK;
}

int vkm_gpu_download(vkm_gpu *g, vkm_gpu_buf *src, size_t offset, void *dst, size_t size) {
    LOST_GUARD(g);
    if (g->compile_only) {
        const int rc = check_range(src, offset, size, "download");
        if (!rc && size) memset(dst, 0, size);
        return rc;
    }
    return track(g, download(g, src, offset, dst, size));
}

/* The range checks of every copy; 1 when there is nothing to copy. */
static int check_copy(const vkm_gpu_buf *src, size_t src_offset, const vkm_gpu_buf *dst,
                      size_t dst_offset, size_t size) {
    int rc;
    if ((rc = check_range(src, src_offset, size, "copy source")) < 0 ||
        (rc = check_range(dst, dst_offset, size, "copy destination")) < 0)
        return rc;
    if (dst->kind == VKM_BUF_IMPORTED)
        return vkm_error(VKM_EINVAL, "copy: the destination is imported host memory (read only)");
    if (size == 0) return 1;
    if (src == dst && src_offset < dst_offset + size && dst_offset < src_offset + size)
        return vkm_error(VKM_EINVAL, "copy: overlapping ranges [%zu, +%zu) and [%zu, +%zu)",
                         src_offset, size, dst_offset, size);
    return VKM_OK;
}

int vkm_gpu_copy(vkm_gpu *g, vkm_gpu_buf *src, size_t src_offset, vkm_gpu_buf *dst,
                 size_t dst_offset, size_t size) {
    LOST_GUARD(g);
    int rc = check_copy(src, src_offset, dst, dst_offset, size);
    if (rc || g->compile_only) return rc < 0 ? rc : VKM_OK;
    return track(g, vkm_vk_cmd_copy(g->cmd, src->b.buf, src_offset, dst->b.buf, dst_offset, size));
}

int vkm_gpu_copy_async(vkm_gpu *g, vkm_gpu_buf *src, size_t src_offset, vkm_gpu_buf *dst,
                       size_t dst_offset, size_t size, uint64_t *ticket) {
    *ticket = 0;
    LOST_GUARD(g);
    int rc = check_copy(src, src_offset, dst, dst_offset, size);
    if (rc || g->compile_only) return rc < 0 ? rc : VKM_OK;
    return track(g, vkm_vk_cmd_copy_async(g->cmd, src->b.buf, src_offset, dst->b.buf, dst_offset,
                                          size, ticket));
}

int vkm_gpu_wait_ticket_on_next_submit(vkm_gpu *g, uint64_t ticket) {
    LOST_GUARD(g);
    if (g->compile_only) return VKM_OK;
    vkm_vk_cmd_wait_ticket(g->cmd, ticket);
    return VKM_OK;
}

int vkm_gpu_ticket_wait(vkm_gpu *g, uint64_t ticket) {
    LOST_GUARD(g);
    if (g->compile_only) return VKM_OK;
    return track(g, vkm_vk_cmd_ticket_wait(g->cmd, ticket));
}

int vkm_gpu_ticket_done(vkm_gpu *g, uint64_t ticket, bool *done) {
    *done = g->compile_only; /* nothing is ever in flight */
    LOST_GUARD(g);
    if (g->compile_only) return VKM_OK;
    return track(g, vkm_vk_cmd_ticket_done(g->cmd, ticket, done));
}

int vkm_gpu_record_copy(vkm_gpu *g, vkm_gpu_buf *src, size_t src_offset, vkm_gpu_buf *dst,
                        size_t dst_offset, size_t size) {
    LOST_GUARD(g);
    if (inert(g)) return VKM_OK;
    int rc = check_copy(src, src_offset, dst, dst_offset, size);
    if (rc) return rc < 0 ? rc : VKM_OK;
    return track(
        g, vkm_vk_cmd_record_copy(g->cmd, src->b.buf, src_offset, dst->b.buf, dst_offset, size));
}

/* ---- kernels and batches ---- */

int vkm_gpu_kernel_get(vkm_gpu *g, vkm_shader_id shader, const uint32_t *spec, int n_spec,
                       int n_bindings, uint32_t push_size, vkm_gpu_kernel **out) {
    LOST_GUARD(g);
    return track(
        g, vkm_vk_pipeline_get(g->pipes, (int)shader, spec, n_spec, n_bindings, push_size, out));
}

int vkm_gpu_kernel_count(const vkm_gpu *g) {
    return vkm_vk_pipeline_count(g->pipes);
}

int vkm_gpu_begin(vkm_gpu *g) {
    LOST_GUARD(g);
    if (inert(g)) return VKM_OK;
    return track(g, vkm_vk_cmd_begin(g->cmd));
}

int vkm_gpu_dispatch(vkm_gpu *g, vkm_gpu_kernel *k, const vkm_gpu_arg *args, int n_args,
                     const void *push, uint32_t gx, uint32_t gy, uint32_t gz) {
    LOST_GUARD(g);
    if (!k) return vkm_error(VKM_EINVAL, "dispatch: NULL kernel");
    if (!g->dry && !k->pipeline)
        return vkm_error(VKM_EINVAL, "dispatch of %s: the kernel was not built", k->name);
    if (n_args != k->n_bindings || (n_args && !args))
        return vkm_error(VKM_EINVAL, "dispatch of %s: %d buffers given, the kernel has %d", k->name,
                         n_args, k->n_bindings);
    if (k->push_size && !push)
        return vkm_error(VKM_EINVAL, "dispatch of %s: missing push constants", k->name);
    const VkPhysicalDeviceLimits *lim = &g->dev->caps.props.limits;
    uint64_t align =
        lim->minStorageBufferOffsetAlignment ? lim->minStorageBufferOffsetAlignment : 1;
    VkDescriptorBufferInfo bi[VKM_VK_MAX_BINDINGS];
    VkBufferView views[VKM_VK_MAX_BINDINGS];
    for (int i = 0; i < n_args; i++) {
        const vkm_gpu_arg *a = &args[i];
        if (!a->buf) return vkm_error(VKM_EINVAL, "dispatch of %s: buffer %d is NULL", k->name, i);
        uint64_t bsize = a->buf->b.size;
        if (a->offset % align)
            return vkm_error(VKM_EINVAL,
                             "dispatch of %s: buffer %d offset %zu is not a multiple of the "
                             "device's storage buffer alignment %llu",
                             k->name, i, a->offset, (unsigned long long)align);
        if (a->offset >= bsize || a->size > bsize - a->offset)
            return vkm_error(VKM_EINVAL,
                             "dispatch of %s: buffer %d range [%zu, +%zu) outside its %llu bytes",
                             k->name, i, a->offset, a->size, (unsigned long long)bsize);
        uint64_t range = a->size ? a->size : bsize - a->offset;
        if (range > lim->maxStorageBufferRange)
            return vkm_error(VKM_EINVAL,
                             "dispatch of %s: buffer %d range of %llu bytes exceeds the device "
                             "limit of %u",
                             k->name, i, (unsigned long long)range, lim->maxStorageBufferRange);
        bi[i] = (VkDescriptorBufferInfo){a->buf->b.buf, a->offset, range};
        views[i] = VK_NULL_HANDLE;
        if (k->kinds[i] != VKM_VK_BIND_STORAGE) { /* a view of 16-byte texels */
            if (!vkm_gpu_texel_window(g, a))
                return vkm_error(VKM_EINVAL,
                                 "dispatch of %s: buffer %d range [%zu, +%llu) cannot be viewed as "
                                 "16-byte texels (offset a multiple of 256, whole texels inside "
                                 "the buffer, at most %llu bytes)",
                                 k->name, i, a->offset, (unsigned long long)range,
                                 (unsigned long long)g->dev->caps.info.texel_bytes);
            const VkFormat f = k->kinds[i] == VKM_VK_BIND_TEXEL_U32 ? VK_FORMAT_R32G32B32A32_UINT
                                                                    : VK_FORMAT_R32G32B32A32_SFLOAT;
            if (inert(g)) continue;
            int rc = vkm_vk_mem_view(g->mem, &a->buf->b, f, a->offset, texel_range(a), &views[i]);
            if (rc) return track(g, rc);
        }
    }
    if (inert(g)) return VKM_OK;
    if (!g->prime) {
        const int rc = track(g, vkm_vk_cmd_dispatch(g->cmd, k, bi, views, push, gx, gy, gz));
        if (!rc) g->dispatches++;
        return rc;
    }
    /* primed: no workgroups; a kernel's first such dispatch runs at once (its compile is one
     * step of the warm-up's progress, and a stop request is seen between two kernels) */
    int rc = track(g, vkm_vk_cmd_dispatch(g->cmd, k, bi, views, push, 0, 0, 0));
    if (rc || k->primed) return rc;
    if ((rc = track(g, vkm_vk_cmd_submit(g->cmd))) || (rc = track(g, vkm_vk_cmd_begin(g->cmd))))
        return rc;
    return vkm_vk_pipeline_primed(g->pipes, k);
}

int vkm_gpu_mark(vkm_gpu *g, const char *label) {
    LOST_GUARD(g);
    if (inert(g)) return VKM_OK;
    return vkm_vk_cmd_mark(g->cmd, label);
}

int vkm_gpu_flush(vkm_gpu *g) {
    LOST_GUARD(g);
    if (inert(g)) return VKM_OK;
    return track(g, vkm_vk_cmd_flush(g->cmd));
}

int vkm_gpu_submit(vkm_gpu *g) {
    LOST_GUARD(g);
    if (inert(g)) return VKM_OK;
    return track(g, vkm_vk_cmd_submit(g->cmd));
}

int vkm_gpu_set_dry(vkm_gpu *g, bool dry) {
    LOST_GUARD(g);
    if (dry == g->dry) return VKM_OK;
    g->dry = dry;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    return track(g, vkm_vk_pipeline_defer(g->pipes, dry, cores < 1 ? 1 : (int)cores));
}

int vkm_gpu_set_prime(vkm_gpu *g, bool prime) {
    LOST_GUARD(g);
    if (prime && !g->prime) vkm_vk_pipeline_prime_begin(g->pipes);
    g->prime = prime;
    return VKM_OK;
}

void vkm_gpu_set_progress(vkm_gpu *g, vkm_gpu_progress_fn fn, void *user) {
    vkm_vk_pipeline_set_progress(g->pipes, fn, user);
}

int vkm_gpu_timings(vkm_gpu *g, vkm_gpu_timing *out, int max, int *n) {
    *n = 0;
    LOST_GUARD(g);
    if (g->compile_only) return VKM_OK;
    return vkm_vk_cmd_timings(g->cmd, out, max, n);
}

int vkm_gpu_kernel_describe(vkm_gpu *g, int index, vkm_gpu_kernel_report *out) {
    return vkm_vk_pipeline_report(g->pipes, index, out);
}
