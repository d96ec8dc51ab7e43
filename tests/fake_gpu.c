/* fake_gpu.c - the recording fake of core/gpu.h (tests/fake_gpu.h): host memory for every
 * buffer, kernels that record and never run, asynchronous copies that complete only when waited
 * for. Single-threaded use per gpu except vkm_gpu_copy_async, which the staging ring's threads
 * never call (they only memcpy), so no lock is taken. */
#include "fake_gpu.h"

#include <stdlib.h>
#include <string.h>

#include "err.h"

struct vkm_gpu_buf {
    size_t size;
    vkm_buf_kind kind;
    uint8_t *mem;  /* owned unless imported */
    bool imported; /* mem is the caller's (read-only) */
};

struct vkm_gpu_kernel {
    vkm_shader_id shader;
    uint32_t spec[16];
    int n_spec, n_bindings;
    uint32_t push_size;
};

typedef struct rec_arg {
    const vkm_gpu_buf *buf;
    size_t off, size;
} rec_arg;

typedef struct rec_copy {
    vkm_gpu_buf *src, *dst;
    size_t src_off, dst_off, size;
} rec_copy;

struct vkm_gpu {
    vkm_gpu_device_info info;
    vkm_kernel_plan plan;
    vkm_gpu_kernel **kernels;
    int n_kernels;
    bool dry, prime;
    fake_gpu_copy *copies; /* asynchronous copies in issue order */
    size_t n_copies, cap_copies;
    uint64_t next_ticket, wait_next;
    rec_arg *args; /* the open batch's bindings */
    size_t n_args, cap_args;
    rec_copy *rcopies; /* the open batch's recorded copies */
    size_t n_rcopies, cap_rcopies;
    uint64_t dispatches, host_waits, submits, torn, submit_waits;
    vkm_gpu_buf *consts[VKM_GPU_CONST_SLOTS];
    vkm_gpu_buf *scratch[VKM_GPU_SCRATCH_SLOTS];
    vkm_gpu_buf **retired;
    int n_retired;
};

static vkm_gpu_device_info g_config;
static bool g_config_set;
static int g_alloc_fault; /* vkm_gpu_fault_set(VKM_FAULT_DEVICE_ALLOC_NTH, n): countdown, 0 = off */

vkm_gpu_device_info *fake_gpu_config(void) {
    if (!g_config_set) {
        g_config = (vkm_gpu_device_info){
            .is_default = true,
            .vendor = VKM_VENDOR_NVIDIA,
            .vendor_id = 0x10de,
            .device_id = 0x2684,
            .type = VKM_DEV_DISCRETE,
            .api_version = (1u << 22) | (3u << 12),
            .device_local_bytes = 8ull << 30,
            .budget_bytes = 8ull << 30,
            .subgroup_size = 32,
            .max_buffer_bytes = 1ull << 30,
            .max_alloc_bytes = 4ull << 30,
            .weight_window_bytes = 1ull << 30,
            .max_shared_bytes = 48 << 10,
            .storage_align = 16,
            .fp16 = true,
            .storage8 = true,
            .storage16 = true,
            .int8 = true,
            .int64 = true,
            .int_dot = true,
            .int_dot_accel = true,
            .transfer_queue = true,
            .memory_budget = true,
            .external_memory_host = true,
            .import_align = 4096,
        };
        strcpy(g_config.name, "fake discrete GPU (tests/fake_gpu.c)");
        strcpy(g_config.driver, "fake");
        g_config_set = true;
    }
    return &g_config;
}

const char *vkm_gpu_vendor_name(int v) {
    return v == VKM_VENDOR_AMD      ? "AMD"
           : v == VKM_VENDOR_INTEL  ? "Intel"
           : v == VKM_VENDOR_NVIDIA ? "NVIDIA"
                                    : "other";
}

const char *vkm_gpu_type_name(int t) {
    return t == VKM_DEV_DISCRETE     ? "discrete"
           : t == VKM_DEV_INTEGRATED ? "integrated"
           : t == VKM_DEV_VIRTUAL    ? "virtual"
           : t == VKM_DEV_CPU        ? "cpu"
                                     : "other";
}

int vkm_gpu_list(vkm_gpu_device_info *out, int max, int *count) {
    if (max > 0) out[0] = *fake_gpu_config();
    *count = 1;
    return 0;
}

int vkm_gpu_create(const vkm_gpu_options *opt, vkm_gpu **out) {
    *out = NULL;
    if (opt->device > 0) return vkm_error(VKM_EINVAL, "fake gpu: no device %d", opt->device);
    vkm_gpu *g = calloc(1, sizeof *g);
    if (!g) return vkm_error(VKM_ENOMEM, "fake gpu: out of memory");
    g->info = *fake_gpu_config();
    g->next_ticket = 1;
    const vkm_gpu_device_info *i = &g->info;
    const vkm_kernels_caps caps = {i->vendor,      i->type,          i->device_id,
                                   i->name,        i->subgroup_size, i->int64,
                                   i->texel_bytes, i->int_dot,       i->int_dot_accel};
    int rc = vkm_kernels_plan(&caps, opt->kernels, &g->plan);
    if (rc < 0) {
        free(g);
        return rc;
    }
    *out = g;
    return 0;
}

void vkm_gpu_destroy(vkm_gpu *g) {
    if (!g) return;
    for (int i = 0; i < VKM_GPU_CONST_SLOTS; i++) vkm_gpu_buf_destroy(g, g->consts[i]);
    for (int i = 0; i < VKM_GPU_SCRATCH_SLOTS; i++) vkm_gpu_buf_destroy(g, g->scratch[i]);
    for (int i = 0; i < g->n_retired; i++) vkm_gpu_buf_destroy(g, g->retired[i]);
    for (int i = 0; i < g->n_kernels; i++) free(g->kernels[i]);
    free(g->retired);
    free(g->kernels);
    free(g->copies);
    free(g->args);
    free(g->rcopies);
    free(g);
}

const vkm_gpu_device_info *vkm_gpu_info(const vkm_gpu *g) {
    return &g->info;
}

const vkm_kernel_plan *vkm_gpu_plan(const vkm_gpu *g) {
    return &g->plan;
}

uint32_t vkm_gpu_validation_errors(const vkm_gpu *g) {
    (void)g;
    return 0;
}

/* ---- buffers ---- */

int vkm_gpu_buf_create(vkm_gpu *g, size_t size, vkm_buf_kind kind, vkm_gpu_buf **out) {
    *out = NULL;
    if (kind == VKM_BUF_IMPORTED || !size || size > g->info.max_alloc_bytes)
        return vkm_error(VKM_EINVAL, "fake gpu: bad buffer (%zu bytes, kind %d)", size, kind);
    if (g_alloc_fault && --g_alloc_fault == 0)
        return vkm_error(VKM_EDEVMEM, "fake gpu: injected out of device memory (%zu bytes)", size);
    vkm_gpu_buf *b = calloc(1, sizeof *b);
    uint8_t *mem = calloc(1, size);
    if (!b || !mem) {
        free(b);
        free(mem);
        return vkm_error(VKM_EDEVMEM, "fake gpu: out of memory for %zu bytes", size);
    }
    *b = (vkm_gpu_buf){size, kind, mem, false};
    *out = b;
    return 0;
}

int vkm_gpu_buf_import(vkm_gpu *g, const void *host, size_t size, vkm_gpu_buf **out) {
    *out = NULL;
    const size_t a = g->info.import_align;
    if (!a) return vkm_error(VKM_EUNSUPPORTED, "fake gpu: no host memory import");
    if (!host || !size || (uintptr_t)host % a || size % a || size > g->info.max_alloc_bytes)
        return vkm_error(VKM_EINVAL, "fake gpu: bad import (%p, %zu bytes)", host, size);
    vkm_gpu_buf *b = calloc(1, sizeof *b);
    if (!b) return vkm_error(VKM_ENOMEM, "fake gpu: out of memory");
    *b = (vkm_gpu_buf){size, VKM_BUF_IMPORTED, (uint8_t *)host, true};
    *out = b;
    return 0;
}

void vkm_gpu_buf_destroy(vkm_gpu *g, vkm_gpu_buf *b) {
    (void)g;
    if (!b) return;
    if (!b->imported) free(b->mem);
    free(b);
}

size_t vkm_gpu_buf_size(const vkm_gpu_buf *b) {
    return b ? b->size : 0;
}

void *vkm_gpu_buf_map(vkm_gpu_buf *b) {
    return b && b->kind == VKM_BUF_HOST ? b->mem : NULL;
}

vkm_buf_kind vkm_gpu_buf_kind(const vkm_gpu_buf *b) {
    return b->kind;
}

bool vkm_gpu_buf_direct(const vkm_gpu *g, const vkm_gpu_buf *b) {
    (void)g;
    return b && b->kind == VKM_BUF_HOST;
}

const uint8_t *fake_gpu_buf_bytes(const vkm_gpu_buf *b) {
    return b ? b->mem : NULL;
}

int vkm_gpu_const_buf(vkm_gpu *g, int slot, const void *data, size_t bytes, vkm_gpu_buf **out) {
    *out = NULL;
    if (slot < 0 || slot >= VKM_GPU_CONST_SLOTS || !bytes)
        return vkm_error(VKM_EINVAL, "constant buffer: bad slot %d or size 0", slot);
    if (g->consts[slot]) {
        if (g->consts[slot]->size != bytes)
            return vkm_error(VKM_EINVAL, "constant buffer %d: %zu bytes, not %zu", slot,
                             g->consts[slot]->size, bytes);
        *out = g->consts[slot];
        return 0;
    }
    int rc = vkm_gpu_buf_create(g, bytes, VKM_BUF_DEVICE, &g->consts[slot]);
    if (rc) return rc;
    memcpy(g->consts[slot]->mem, data, bytes);
    *out = g->consts[slot];
    return 0;
}

int vkm_gpu_scratch_buf(vkm_gpu *g, int slot, size_t bytes, vkm_gpu_buf **out) {
    *out = NULL;
    if (slot < 0 || slot >= VKM_GPU_SCRATCH_SLOTS || !bytes)
        return vkm_error(VKM_EINVAL, "scratch buffer: bad slot %d or size 0", slot);
    vkm_gpu_buf *b = g->scratch[slot];
    if (b && b->size >= bytes) {
        *out = b;
        return 0;
    }
    size_t size = b ? 2 * b->size : 0;
    if (size < bytes) size = bytes;
    vkm_gpu_buf *nb = NULL;
    int rc = vkm_gpu_buf_create(g, size, VKM_BUF_DEVICE, &nb);
    if (rc) return rc;
    if (b) {
        vkm_gpu_buf **r = realloc(g->retired, ((size_t)g->n_retired + 1) * sizeof *r);
        if (!r) {
            vkm_gpu_buf_destroy(g, nb);
            return vkm_error(VKM_ENOMEM, "scratch buffer: out of memory");
        }
        g->retired = r;
        g->retired[g->n_retired++] = b;
    }
    *out = g->scratch[slot] = nb;
    return 0;
}

static int check_range(const vkm_gpu_buf *b, size_t off, size_t size, const char *what) {
    if (!b) return vkm_error(VKM_EINVAL, "%s: NULL buffer", what);
    if (off > b->size || size > b->size - off)
        return vkm_error(VKM_EINVAL, "%s: range [%zu, +%zu) outside a buffer of %zu bytes", what,
                         off, size, b->size);
    return 0;
}

static bool overlaps(size_t a, size_t an, size_t b, size_t bn) {
    return a < b + bn && b < a + an;
}

bool fake_gpu_range_pending(const vkm_gpu *g, const vkm_gpu_buf *buf, size_t off, size_t size) {
    for (size_t i = 0; i < g->n_copies; i++) {
        const fake_gpu_copy *c = &g->copies[i];
        if (!c->done && c->dst == buf && overlaps(c->dst_off, c->size, off, size)) return true;
    }
    return false;
}

/* Completes every queued copy with a ticket <= t, in issue order. */
static void complete_to(vkm_gpu *g, uint64_t t) {
    for (size_t i = 0; i < g->n_copies; i++) {
        fake_gpu_copy *c = &g->copies[i];
        if (c->done || c->ticket > t) continue;
        memmove(((vkm_gpu_buf *)c->dst)->mem + c->dst_off, c->src->mem + c->src_off, c->size);
        c->done = true;
    }
}

int vkm_gpu_upload(vkm_gpu *g, vkm_gpu_buf *dst, size_t off, const void *src, size_t size) {
    int rc = check_range(dst, off, size, "upload");
    if (rc) return rc;
    if (dst->imported) return vkm_error(VKM_EINVAL, "upload: into an imported buffer");
    if (fake_gpu_range_pending(g, dst, off, size)) g->torn++;
    memcpy(dst->mem + off, src, size);
    if (dst->kind != VKM_BUF_HOST) g->host_waits++;
    return 0;
}

int vkm_gpu_download(vkm_gpu *g, vkm_gpu_buf *src, size_t off, void *dst, size_t size) {
    int rc = check_range(src, off, size, "download");
    if (rc) return rc;
    if (fake_gpu_range_pending(g, src, off, size)) g->torn++;
    memcpy(dst, src->mem + off, size);
    if (src->kind != VKM_BUF_HOST) g->host_waits++;
    return 0;
}

static int check_copy(vkm_gpu_buf *src, size_t so, vkm_gpu_buf *dst, size_t d_o, size_t size,
                      const char *what) {
    int rc;
    if ((rc = check_range(src, so, size, what)) || (rc = check_range(dst, d_o, size, what)))
        return rc;
    if (dst->imported) return vkm_error(VKM_EINVAL, "%s: into an imported buffer", what);
    if (src == dst && overlaps(so, size, d_o, size))
        return vkm_error(VKM_EINVAL, "%s: overlapping ranges in one buffer", what);
    return 0;
}

int vkm_gpu_copy(vkm_gpu *g, vkm_gpu_buf *src, size_t so, vkm_gpu_buf *dst, size_t d_o,
                 size_t size) {
    int rc = check_copy(src, so, dst, d_o, size, "copy");
    if (rc) return rc;
    memcpy(dst->mem + d_o, src->mem + so, size);
    g->host_waits++;
    return 0;
}

int vkm_gpu_copy_async(vkm_gpu *g, vkm_gpu_buf *src, size_t so, vkm_gpu_buf *dst, size_t d_o,
                       size_t size, uint64_t *ticket) {
    int rc = check_copy(src, so, dst, d_o, size, "copy_async");
    if (rc) return rc;
    if (g->n_copies == g->cap_copies) {
        const size_t cap = g->cap_copies ? 2 * g->cap_copies : 64;
        fake_gpu_copy *c = realloc(g->copies, cap * sizeof *c);
        if (!c) return vkm_error(VKM_ENOMEM, "copy_async: out of memory");
        g->copies = c;
        g->cap_copies = cap;
    }
    *ticket = g->next_ticket++;
    g->copies[g->n_copies++] = (fake_gpu_copy){*ticket, src, dst, so, d_o, size, false};
    return 0;
}

int vkm_gpu_wait_ticket_on_next_submit(vkm_gpu *g, uint64_t ticket) {
    if (ticket >= g->next_ticket)
        return vkm_error(VKM_EINVAL, "wait on next submit: ticket %llu not issued",
                         (unsigned long long)ticket);
    if (ticket > g->wait_next) g->wait_next = ticket;
    return 0;
}

int vkm_gpu_ticket_wait(vkm_gpu *g, uint64_t ticket) {
    if (ticket >= g->next_ticket)
        return vkm_error(VKM_EINVAL, "ticket wait: ticket %llu not issued",
                         (unsigned long long)ticket);
    complete_to(g, ticket);
    g->host_waits++;
    return 0;
}

int vkm_gpu_ticket_done(vkm_gpu *g, uint64_t ticket, bool *done) {
    if (ticket >= g->next_ticket)
        return vkm_error(VKM_EINVAL, "ticket done: ticket %llu not issued",
                         (unsigned long long)ticket);
    complete_to(g, ticket);
    *done = true;
    return 0;
}

const fake_gpu_copy *fake_gpu_copies(const vkm_gpu *g, size_t *n) {
    *n = g->n_copies;
    return g->copies;
}

void fake_gpu_forget_copies(vkm_gpu *g) {
    size_t k = 0;
    for (size_t i = 0; i < g->n_copies; i++)
        if (!g->copies[i].done) g->copies[k++] = g->copies[i];
    g->n_copies = k;
}

void fake_gpu_stats_get(const vkm_gpu *g, fake_gpu_stats *out) {
    *out = (fake_gpu_stats){.submits = g->submits,
                            .dispatches = g->dispatches,
                            .torn_reads = g->torn,
                            .submit_waits = g->submit_waits};
    for (size_t i = 0; i < g->n_copies; i++) {
        out->async_copies++;
        out->async_bytes += g->copies[i].size;
        out->pending += !g->copies[i].done;
    }
}

int vkm_gpu_record_copy(vkm_gpu *g, vkm_gpu_buf *src, size_t so, vkm_gpu_buf *dst, size_t d_o,
                        size_t size) {
    int rc = check_copy(src, so, dst, d_o, size, "record_copy");
    if (rc || g->dry) return rc;
    if (g->n_rcopies == g->cap_rcopies) {
        const size_t cap = g->cap_rcopies ? 2 * g->cap_rcopies : 16;
        rec_copy *c = realloc(g->rcopies, cap * sizeof *c);
        if (!c) return vkm_error(VKM_ENOMEM, "record_copy: out of memory");
        g->rcopies = c;
        g->cap_rcopies = cap;
    }
    g->rcopies[g->n_rcopies++] = (rec_copy){src, dst, so, d_o, size};
    return 0;
}

/* ---- kernels ---- */

int vkm_gpu_kernel_get(vkm_gpu *g, vkm_shader_id shader, const uint32_t *spec, int n_spec,
                       int n_bindings, uint32_t push_size, vkm_gpu_kernel **out) {
    *out = NULL;
    if ((unsigned)shader >= VKM_SHADER_COUNT || n_spec < 0 || n_spec > 16 || n_bindings < 0 ||
        push_size > 256)
        return vkm_error(VKM_EINVAL, "kernel: bad shader %d or layout", (int)shader);
    for (int i = 0; i < g->n_kernels; i++) {
        vkm_gpu_kernel *k = g->kernels[i];
        if (k->shader == shader && k->n_spec == n_spec &&
            (!n_spec || !memcmp(k->spec, spec, (size_t)n_spec * sizeof *spec))) {
            *out = k;
            return 0;
        }
    }
    vkm_gpu_kernel **ks = realloc(g->kernels, ((size_t)g->n_kernels + 1) * sizeof *ks);
    if (!ks) return vkm_error(VKM_ENOMEM, "kernel: out of memory");
    g->kernels = ks;
    vkm_gpu_kernel *k = calloc(1, sizeof *k);
    if (!k) return vkm_error(VKM_ENOMEM, "kernel: out of memory");
    *k = (vkm_gpu_kernel){
        .shader = shader, .n_spec = n_spec, .n_bindings = n_bindings, .push_size = push_size};
    if (n_spec) memcpy(k->spec, spec, (size_t)n_spec * sizeof *spec);
    g->kernels[g->n_kernels++] = *out = k;
    return 0;
}

int vkm_gpu_kernel_count(const vkm_gpu *g) {
    return g->n_kernels;
}

int vkm_gpu_kernel_describe(vkm_gpu *g, int index, vkm_gpu_kernel_report *out) {
    if (index < 0 || index >= g->n_kernels)
        return vkm_error(VKM_EINVAL, "kernel describe: no kernel %d", index);
    const vkm_gpu_kernel *k = g->kernels[index];
    memset(out, 0, sizeof *out);
    out->shader = k->shader;
    out->n_spec = k->n_spec;
    memcpy(out->spec, k->spec, sizeof out->spec);
    out->built = true;
    return 0;
}

bool vkm_gpu_texel_window(const vkm_gpu *g, const vkm_gpu_arg *a) {
    (void)g;
    (void)a;
    return false; /* no texel kernels: not a CPU device */
}

/* ---- recording and submission ---- */

int vkm_gpu_begin(vkm_gpu *g) {
    if (g->dry) return 0;
    g->n_args = g->n_rcopies = 0;
    return 0;
}

int vkm_gpu_dispatch(vkm_gpu *g, vkm_gpu_kernel *k, const vkm_gpu_arg *args, int n_args,
                     const void *push, uint32_t gx, uint32_t gy, uint32_t gz) {
    if (!k || n_args != k->n_bindings || (k->push_size && !push))
        return vkm_error(VKM_EINVAL, "dispatch: %d bindings for a kernel of %d", n_args,
                         k ? k->n_bindings : -1);
    if (!gx || !gy || !gz) return vkm_error(VKM_EINVAL, "dispatch: empty grid");
    for (int i = 0; i < n_args; i++) {
        const vkm_gpu_arg *a = &args[i];
        const size_t size = a->size ? a->size : (a->buf ? a->buf->size - a->offset : 0);
        int rc = check_range(a->buf, a->offset, size, "dispatch");
        if (rc) return rc;
        if (a->offset % g->info.storage_align)
            return vkm_error(VKM_EINVAL, "dispatch: binding %d offset %zu not a multiple of %u", i,
                             a->offset, g->info.storage_align);
        if (size > g->info.max_buffer_bytes)
            return vkm_error(VKM_EINVAL, "dispatch: binding %d range %zu above the device's %llu",
                             i, size, (unsigned long long)g->info.max_buffer_bytes);
    }
    if (g->dry || g->prime) return 0;
    if (g->n_args + (size_t)n_args > g->cap_args) {
        size_t cap = g->cap_args ? 2 * g->cap_args : 256;
        while (cap < g->n_args + (size_t)n_args) cap *= 2;
        rec_arg *r = realloc(g->args, cap * sizeof *r);
        if (!r) return vkm_error(VKM_ENOMEM, "dispatch: out of memory");
        g->args = r;
        g->cap_args = cap;
    }
    for (int i = 0; i < n_args; i++) {
        const vkm_gpu_arg *a = &args[i];
        g->args[g->n_args++] =
            (rec_arg){a->buf, a->offset, a->size ? a->size : a->buf->size - a->offset};
    }
    g->dispatches++;
    return 0;
}

uint64_t vkm_gpu_dispatch_count(const vkm_gpu *g) {
    return g->dispatches;
}

uint64_t vkm_gpu_host_waits(const vkm_gpu *g) {
    return g->host_waits;
}

int vkm_gpu_mark(vkm_gpu *g, const char *label) {
    (void)g;
    (void)label;
    return 0;
}

int vkm_gpu_flush(vkm_gpu *g) {
    (void)g;
    return 0;
}

int vkm_gpu_submit(vkm_gpu *g) {
    if (g->dry) return 0;
    if (g->wait_next) {
        complete_to(g, g->wait_next);
        g->submit_waits++;
        g->wait_next = 0;
    }
    for (size_t i = 0; i < g->n_args; i++)
        if (fake_gpu_range_pending(g, g->args[i].buf, g->args[i].off, g->args[i].size)) g->torn++;
    for (size_t i = 0; i < g->n_rcopies; i++) {
        const rec_copy *c = &g->rcopies[i];
        if (fake_gpu_range_pending(g, c->src, c->src_off, c->size)) g->torn++;
        memmove(c->dst->mem + c->dst_off, c->src->mem + c->src_off, c->size);
    }
    g->n_args = g->n_rcopies = 0;
    g->submits++;
    g->host_waits++;
    return 0;
}

int vkm_gpu_set_dry(vkm_gpu *g, bool dry) {
    g->dry = dry;
    return 0;
}

int vkm_gpu_set_prime(vkm_gpu *g, bool prime) {
    g->prime = prime;
    return 0;
}

void vkm_gpu_set_progress(vkm_gpu *g, vkm_gpu_progress_fn fn, void *user) {
    (void)g;
    (void)fn;
    (void)user;
}

int vkm_gpu_timings(vkm_gpu *g, vkm_gpu_timing *out, int max, int *n) {
    (void)g;
    (void)out;
    (void)max;
    *n = 0;
    return 0;
}

void vkm_gpu_fault_set(vkm_gpu_fault kind, int n) {
    if (kind == VKM_FAULT_NONE || kind == VKM_FAULT_DEVICE_ALLOC_NTH) g_alloc_fault = n > 0 ? n : 0;
}

bool vkm_gpu_fault_pending(vkm_gpu_fault kind) {
    return kind == VKM_FAULT_DEVICE_ALLOC_NTH && g_alloc_fault > 0;
}
