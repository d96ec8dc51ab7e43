/* gpu.h - the only interface through which core/ reaches a GPU. vk/ implements it with Vulkan;
 * nothing here mentions Vulkan types, so core/ and its tests stay readable and CPU-only.
 *
 * Model: one vkm_gpu per device. Buffers are device-local (or host-visible for staging), or
 * read-only views of imported host memory (vkm_gpu_buf_import: VK_EXT_external_memory_host).
 * Kernels are compiled compute pipelines looked up by shader variant id (enum vkm_shader_id,
 * generated from shaders/shaders.cmake) with optional specialization constants. Work is recorded
 * between vkm_gpu_begin() and vkm_gpu_submit(); every dispatch gets the barrier it needs against
 * earlier dispatches in the batch. All functions follow err.h: 0 ok, negative VKM_E* with a
 * message. */
#ifndef VKM_GPU_H
#define VKM_GPU_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kernels.h"
#include "shader_ids.h"

typedef struct vkm_gpu vkm_gpu;
typedef struct vkm_gpu_buf vkm_gpu_buf;
typedef struct vkm_gpu_kernel vkm_gpu_kernel;

typedef enum vkm_gpu_vendor {
    VKM_VENDOR_OTHER,
    VKM_VENDOR_AMD,
    VKM_VENDOR_INTEL,
    VKM_VENDOR_NVIDIA
} vkm_gpu_vendor;
typedef enum vkm_gpu_type {
    VKM_DEV_OTHER,
    VKM_DEV_DISCRETE,
    VKM_DEV_INTEGRATED,
    VKM_DEV_VIRTUAL,
    VKM_DEV_CPU
} vkm_gpu_type;

typedef struct vkm_gpu_device_info {
    int index;       /* position in Vulkan enumeration order (--device N) */
    bool is_default; /* the device vkm_gpu_create picks for device = -1 */
    char name[256];  /* "NVIDIA GeForce RTX 4090", "llvmpipe (LLVM 15.0.6, 256 bits)" */
    vkm_gpu_vendor vendor;
    uint32_t vendor_id, device_id;
    vkm_gpu_type type;
    char driver[256];     /* driver name and info, e.g. "llvmpipe Mesa 22.3.6 (LLVM 15.0.6)" */
    uint32_t api_version; /* VK_MAKE_API_VERSION encoding */
    uint64_t device_local_bytes; /* size of the largest device-local heap */
    uint64_t budget_bytes;       /* VK_EXT_memory_budget budget of that heap, else = its size
                                    (both capped by $VKMOE_DEVICE_MEMORY=SIZE: tests) */
    uint32_t subgroup_size;
    uint64_t max_buffer_bytes; /* largest single storage buffer range we may bind */
    uint64_t max_alloc_bytes;  /* largest buffer we may create or import (maxMemoryAllocationSize,
                                  maxBufferSize): buffers above max_buffer_bytes are bound in
                                  windows of at most that range */
    uint64_t weight_window_bytes; /* largest window of a weight tensor one dispatch binds:
                                     max_buffer_bytes, or less with $VKMOE_WEIGHT_WINDOW=SIZE
                                     (tests: the kernels then split their work over windows as on
                                     a device with that range) */
    uint32_t max_shared_bytes;    /* maxComputeSharedMemorySize */
    uint32_t storage_align;       /* minStorageBufferOffsetAlignment: vkm_gpu_arg.offset unit */
    bool fp16;                    /* shaderFloat16 */
    bool storage8, storage16;     /* 8/16-bit storage buffer access */
    bool int8;                    /* shaderInt8 */
    bool int64;                   /* shaderInt64 */
    bool int_dot;                 /* shaderIntegerDotProduct (Vulkan 1.3): the 4x8-bit packed dot
                                     products of SPV_KHR_integer_dot_product (enabled when present) */
    bool int_dot_accel;           /* integerDotProduct4x8BitPackedSignedAccelerated */
    bool transfer_queue;          /* a dedicated transfer-only queue family exists */
    bool memory_budget;           /* VK_EXT_memory_budget */
    bool external_memory_host;    /* VK_EXT_external_memory_host */
    uint32_t import_align;        /* minImportedHostPointerAlignment where vkm_gpu_buf_import works
                                     (extension present, storage + transfer-source buffers importable),
                                     else 0 */
    bool timestamps;              /* compute queue supports timestamps */
    float timestamp_period_ns;    /* nanoseconds per timestamp tick */
    uint64_t texel_bytes;         /* CPU devices: the largest uniform texel buffer of 16-byte texels
                                     (R32G32B32A32 uint and float) the buffers can be viewed as, for the
                                     matmul_tex_* kernels; 0 = none (not a CPU device, no support, or
                                     turned off with kernels CPU32 / CPU64) */
} vkm_gpu_device_info;

const char *vkm_gpu_vendor_name(int vendor); /* "AMD", "Intel", "NVIDIA", "other" */
const char *vkm_gpu_type_name(int type); /* "discrete", "integrated", "virtual", "cpu", "other" */

/* Enumerates every Vulkan device. Fills up to `max` entries, sets *count to the total. */
int vkm_gpu_list(vkm_gpu_device_info *out, int max, int *count);

typedef struct vkm_gpu_options {
    int device;      /* index from vkm_gpu_list, or -1: first discrete, then integrated, then cpu */
    bool validation; /* enable VK_LAYER_KHRONOS_validation (if installed); errors are counted */
    bool no_pipeline_cache; /* do not read/write $XDG_CACHE_HOME/vkmoe/pipelines-*.bin */
    bool force_staging;     /* tests: upload/download through the staging buffer and transfer queue
                               even when device memory is host visible (lavapipe, UMA) */
    vkm_kernels_layout kernels; /* the kernel layouts (core/kernels.h; 0 = AUTO: the device's
                                   own). The tools take $VKMOE_KERNELS (vkm_kernels_env). */
    /* Compile only (`vkmoe bench --shaders`; works on drivers that cannot run work, e.g. RADV's
     * null device): no command state; buffers are sizes without memory (host ones get host
     * memory for their mapping); dispatches are checked and the kernels built, as in a dry
     * recording; uploads, downloads, copies, batches and tickets do nothing; imports are refused.
     * Pipelines keep the driver's statistics and disassembly (vkm_gpu_kernel_describe) where it
     * offers VK_KHR_pipeline_executable_properties; no disk pipeline cache. */
    bool compile_only;
} vkm_gpu_options;

int vkm_gpu_create(const vkm_gpu_options *opt, vkm_gpu **out);
void vkm_gpu_destroy(vkm_gpu *gpu); /* accepts NULL */
const vkm_gpu_device_info *vkm_gpu_info(const vkm_gpu *gpu);
/* The kernel plan vkm_gpu_create built for this device (core/kernels.h): which kernel every op
 * runs and which fused forms exist. */
const vkm_kernel_plan *vkm_gpu_plan(const vkm_gpu *gpu);
/* Number of validation-layer errors reported since creation (0 if validation is off). */
uint32_t vkm_gpu_validation_errors(const vkm_gpu *gpu);

/* ---- buffers ---- */
typedef enum vkm_buf_kind {
    VKM_BUF_DEVICE,   /* device-local storage buffer */
    VKM_BUF_HOST,     /* host-visible, persistently mapped (staging, readback) */
    VKM_BUF_IMPORTED, /* vkm_gpu_buf_import only (vkm_gpu_buf_create refuses it) */
} vkm_buf_kind;
int vkm_gpu_buf_create(vkm_gpu *gpu, size_t size, vkm_buf_kind kind, vkm_gpu_buf **out);
/* A storage + transfer-source buffer over the caller's host memory [host, host + size)
 * (VK_EXT_external_memory_host, HOST_ALLOCATION handle): no copy is made, kernels and copies read
 * those bytes in place. host and size must be multiples of vkm_gpu_device_info.import_align and
 * size at most max_alloc_bytes. The memory may be read-only (e.g. a PROT_READ MAP_PRIVATE file
 * mapping): the buffer is a read-only source, so uploads into it and copies to it are refused
 * (VKM_EINVAL); kernels must not write it. The memory must stay mapped, and its contents
 * unchanged, until the buffer is destroyed. Errors: VKM_EUNSUPPORTED when the device cannot
 * import (import_align 0) or the driver refuses this memory (then fall back to an upload),
 * VKM_EINVAL for a NULL/misaligned pointer, a size of 0, not a multiple of import_align or above
 * max_alloc_bytes, VKM_EDEVMEM when the driver runs out of memory. */
int vkm_gpu_buf_import(vkm_gpu *gpu, const void *host, size_t size, vkm_gpu_buf **out);
void vkm_gpu_buf_destroy(vkm_gpu *gpu, vkm_gpu_buf *buf); /* accepts NULL */
size_t vkm_gpu_buf_size(const vkm_gpu_buf *buf);
void *vkm_gpu_buf_map(vkm_gpu_buf *buf); /* the mapping of a VKM_BUF_HOST buffer, else NULL */
vkm_buf_kind vkm_gpu_buf_kind(const vkm_gpu_buf *buf);
/* Whether vkm_gpu_upload / _download of this buffer are plain memcpys through its own mapping
 * (host-visible device memory: CPU devices, integrated GPUs, resizable BAR), needing no staging
 * copy and no wait. */
bool vkm_gpu_buf_direct(const vkm_gpu *gpu, const vkm_gpu_buf *buf);
/* A device buffer of constant data for the kernels (e.g. the IQ grids, core/iq_gpu.c): created
 * and filled with `bytes` bytes of `data` by the first call for `slot` (< VKM_GPU_CONST_SLOTS),
 * the same buffer for every later call with that slot, destroyed with the gpu. Kernels must not
 * write it. VKM_EINVAL for a bad slot or a size other than the slot's. */
#define VKM_GPU_CONST_SLOTS 8
int vkm_gpu_const_buf(vkm_gpu *gpu, int slot, const void *data, size_t bytes, vkm_gpu_buf **out);
/* A device scratch buffer the kernels of one op write and later ones of the same batch read (the
 * GEMVs' 8-bit activations, core/ops_matmul.c): at least `bytes` bytes, the same buffer for every
 * call for `slot` (< VKM_GPU_SCRATCH_SLOTS) until a call needs more; a larger one then replaces
 * it, and the old one stays alive (work recorded before may use it) until the gpu is destroyed.
 * Sizes grow at least twofold, so that costs less than the last size. Its contents are undefined
 * between batches. */
#define VKM_GPU_SCRATCH_SLOTS 2
int vkm_gpu_scratch_buf(vkm_gpu *gpu, int slot, size_t bytes, vkm_gpu_buf **out);
/* Synchronous copies between host memory and a buffer (through staging where needed). */
int vkm_gpu_upload(vkm_gpu *gpu, vkm_gpu_buf *dst, size_t offset, const void *src, size_t size);
int vkm_gpu_download(vkm_gpu *gpu, vkm_gpu_buf *src, size_t offset, void *dst, size_t size);
/* Copies size bytes from src (at src_offset) to dst (at dst_offset) on the transfer queue and
 * waits: ordered after every batch submitted before, visible to every batch submitted after (and
 * to the host). The ranges must lie inside the buffers and must not overlap within one buffer. */
int vkm_gpu_copy(vkm_gpu *gpu, vkm_gpu_buf *src, size_t src_offset, vkm_gpu_buf *dst,
                 size_t dst_offset, size_t size);

/* Asynchronous copies (the expert pager's uploads). vkm_gpu_copy_async submits the copy on the
 * transfer queue (the compute queue where the device has no dedicated transfer family) and
 * returns at once with a ticket (> 0): ordered after every batch submitted before, it runs while
 * the host goes on (e.g. fills another staging buffer) and, on a dedicated transfer queue, while
 * later batches compute. Tickets grow in issue order and completing one completes every earlier
 * one. The source range must not be written by the host, nor the destination range read or
 * written by anything, until the ticket completed (or a batch that waited for it ran). Same
 * range rules as vkm_gpu_copy. */
int vkm_gpu_copy_async(vkm_gpu *gpu, vkm_gpu_buf *src, size_t src_offset, vkm_gpu_buf *dst,
                       size_t dst_offset, size_t size, uint64_t *ticket);
/* Makes every batch submitted from now on wait (on the device, not the host) for the ticket,
 * so it sees the copied bytes. Ticket 0 is a no-op. */
int vkm_gpu_wait_ticket_on_next_submit(vkm_gpu *gpu, uint64_t ticket);
/* Waits on the host until the ticket completed (its source may then be reused). */
int vkm_gpu_ticket_wait(vkm_gpu *gpu, uint64_t ticket);
/* Whether the ticket completed, without waiting. */
int vkm_gpu_ticket_done(vkm_gpu *gpu, uint64_t ticket, bool *done);
/* Records a copy into the open batch (vkm_gpu_begin .. vkm_gpu_submit): after the dispatches
 * recorded before it, before those after it, its result visible to the host after submit (e.g.
 * device results into a VKM_BUF_HOST buffer for readback without a transfer-queue round trip).
 * Same range rules as vkm_gpu_copy. */
int vkm_gpu_record_copy(vkm_gpu *gpu, vkm_gpu_buf *src, size_t src_offset, vkm_gpu_buf *dst,
                        size_t dst_offset, size_t size);

/* ---- kernels ---- */
/* Gets (creating and caching on first use) the pipeline for a shader variant with the given
 * specialization constants (constant_id i = spec[i]). n_bindings storage buffers at set 0,
 * bindings 0..n_bindings-1; push_size bytes of push constants. An id outside the enum is
 * VKM_EINVAL. */
int vkm_gpu_kernel_get(vkm_gpu *gpu, vkm_shader_id shader, const uint32_t *spec, int n_spec,
                       int n_bindings, uint32_t push_size, vkm_gpu_kernel **out);
/* How many kernels the cache holds (tests: what a warm-up left to build later). */
int vkm_gpu_kernel_count(const vkm_gpu *gpu);

/* What the driver says of one compiled kernel (VK_KHR_pipeline_executable_properties, on a gpu
 * created with options.compile_only where the driver offers it; else only the identity):
 * vkm_gpu_kernel_describe. */
enum { VKM_GPU_MAX_STATS = 48 };
typedef struct vkm_gpu_stat {
    char name[64]; /* the driver's name: "VGPRs", "Code size", "Subgroups per SIMD", ... */
    double value;
} vkm_gpu_stat;
typedef struct vkm_gpu_kernel_report {
    char name[64]; /* shader variant */
    vkm_shader_id shader;
    uint32_t spec[16]; /* [n_spec] specialization constants */
    int n_spec;
    bool built;             /* it has a pipeline (a deferred or failed build has none) */
    uint32_t subgroup_size; /* of its executable, 0 = not reported */
    vkm_gpu_stat stats[VKM_GPU_MAX_STATS];
    int n_stats;
    char *isa; /* the driver's disassembly (malloc'ed: free() it), NULL where it gives none */
} vkm_gpu_kernel_report;
/* Kernel `index` (0 .. vkm_gpu_kernel_count - 1, in creation order). */
int vkm_gpu_kernel_describe(vkm_gpu *gpu, int index, vkm_gpu_kernel_report *out);

typedef struct vkm_gpu_arg {
    vkm_gpu_buf *buf;
    size_t offset; /* bytes; must respect minStorageBufferOffsetAlignment */
    size_t size;   /* bytes; 0 = to the end of the buffer */
} vkm_gpu_arg;

/* Whether a kernel binding declared as a texel buffer (the matmul_tex_* kernels, CPU devices) can
 * take `a`: the device has texel kernels on (info.texel_bytes), the offset is a multiple of 256,
 * and the range rounded up to whole 16-byte texels lies inside the buffer and within
 * info.texel_bytes. vkm_gpu_dispatch refuses such a binding otherwise. */
bool vkm_gpu_texel_window(const vkm_gpu *gpu, const vkm_gpu_arg *a);

/* ---- recording and submission ---- */
/* Starts a batch; anything recorded but not submitted (e.g. after a failed dispatch) is dropped. */
int vkm_gpu_begin(vkm_gpu *gpu);
int vkm_gpu_dispatch(vkm_gpu *gpu, vkm_gpu_kernel *k, const vkm_gpu_arg *args, int n_args,
                     const void *push, uint32_t gx, uint32_t gy, uint32_t gz);
/* Dispatches recorded since creation, not counting dry or primed ones (what a pass costs in
 * dispatches: the difference before and after recording it). */
uint64_t vkm_gpu_dispatch_count(const vkm_gpu *gpu);
/* Times the host has waited for the device since creation: each batch submitted, each
 * synchronous copy (uploads and downloads through staging), each ticket waited for. */
uint64_t vkm_gpu_host_waits(const vkm_gpu *gpu);
/* Records a timestamp labelled `label` (a static string) when timestamps are enabled: after the
 * next submit, the label's time is the GPU time between the previous mark (or vkm_gpu_begin) and
 * this one. A no-op without timestamp support or past the per-batch limit (4096 marks). */
int vkm_gpu_mark(vkm_gpu *gpu, const char *label);
/* Starts the device on what was recorded so far in the batch, without waiting: the host records
 * the rest while it runs (vkm_gpu_submit still submits and waits for the whole batch; the
 * batch's order is kept). A few per batch at most: past that, a no-op. */
int vkm_gpu_flush(vkm_gpu *gpu);
/* Submits what was recorded since vkm_gpu_begin and waits for completion. */
int vkm_gpu_submit(vkm_gpu *gpu);
/* Dry recording (warm-up): while on, vkm_gpu_dispatch checks its arguments and records nothing,
 * and vkm_gpu_begin, _mark, _record_copy, _flush and _submit do nothing, so that recording a
 * pass only creates the pipelines it uses (vkm_gpu_kernel_get). Turning it off builds the
 * pipelines requested meanwhile, several at once on the host's cores (vkm_gpu_kernel_get hands
 * out their handles at once while dry); a failed build is its return value then. */
int vkm_gpu_set_dry(vkm_gpu *gpu, bool dry);

/* Priming: while on, dispatches are recorded with no workgroups (they run nothing). lavapipe
 * compiles a pipeline's code (LLVM) at its first dispatch, not when the pipeline is created, so
 * a primed recording of the passes to come, submitted, does that compiling ahead of them
 * (vkm_session_warmup on CPU devices). */
int vkm_gpu_set_prime(vkm_gpu *gpu, bool prime);

/* Progress of the warm-up's pipeline work: fn(user, stage, done, total) after each pipeline built
 * when a dry recording ends (VKM_GPU_STAGE_BUILD, from the building threads, one call at a
 * time) and after the first primed dispatch of each kernel, which is submitted on its own and
 * waited for (VKM_GPU_STAGE_PRIME; total = the built kernels not primed before). When fn returns
 * true no further pipeline is built or primed: vkm_gpu_set_dry(gpu, false) or the dispatch then
 * fails with VKM_EINTR (the kernels not built are dropped; a later request builds them). NULL fn
 * = none. */
enum { VKM_GPU_STAGE_BUILD = 0, VKM_GPU_STAGE_PRIME = 1 };
typedef bool (*vkm_gpu_progress_fn)(void *user, int stage, int done, int total);
void vkm_gpu_set_progress(vkm_gpu *gpu, vkm_gpu_progress_fn fn, void *user);

typedef struct vkm_gpu_timing {
    const char *label; /* as passed to vkm_gpu_mark */
    uint64_t ns;       /* GPU time since the previous mark (or the start of the batch) */
} vkm_gpu_timing;
/* The marks of the last submitted batch, in recording order: fills up to `max` entries and sets
 * *n to the number available (0 without timestamp support). */
int vkm_gpu_timings(vkm_gpu *gpu, vkm_gpu_timing *out, int max, int *n);

/* ---- fault injection (tests and diagnostics only; vk/fault.c) ----
 * Process-wide, not thread-safe, free when nothing is armed. vkm_gpu_fault_set(kind, n) with
 * n >= 1 arms `kind`: the nth event of that kind from now fails, once; n = 0 disarms it and
 * VKM_FAULT_NONE disarms everything. The environment variable VKMOE_FAULT="device_alloc:N",
 * "device_lost:N" or "import:N" (comma-separated for several) arms them at the first
 * vkm_gpu_create. After a
 * device loss (injected or real) every later call on that gpu fails at once with VKM_EDEVLOST,
 * except the destroy functions, which still free everything. */
typedef enum vkm_gpu_fault {
    VKM_FAULT_NONE = 0,
    VKM_FAULT_DEVICE_ALLOC_NTH = 1, /* nth buffer creation: out of device memory, VKM_EDEVMEM */
    VKM_FAULT_DEVICE_LOST_NTH = 2,  /* nth queue submission: VK_ERROR_DEVICE_LOST, VKM_EDEVLOST */
    VKM_FAULT_IMPORT_NTH = 3,       /* nth vkm_gpu_buf_import: the driver refuses the host memory,
                                       VKM_EUNSUPPORTED (callers fall back to uploads) */
} vkm_gpu_fault;
void vkm_gpu_fault_set(vkm_gpu_fault kind, int n);
/* True while the armed fault of `kind` has not fired yet. */
bool vkm_gpu_fault_pending(vkm_gpu_fault kind);

#endif
