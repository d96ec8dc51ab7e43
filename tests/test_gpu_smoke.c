/* test_gpu_smoke.c - end-to-end GPU check with validation (and synchronization validation) on:
 * the smoke shader (y = a*x + b) at awkward sizes and two workgroup sizes set by specialization
 * constant, chained dispatches in one batch (barriers), timestamps, the kernel cache, and zero
 * validation errors at the end; on a CPU device (Linux, 2+ cores), that the driver's threads were
 * pinned (vk/cpu_threads.c), and which windows a texel-buffer binding takes (a bad one is an
 * error at dispatch, not a crash). Skips (77) without a Vulkan device. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <sched.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../shaders/cpu/matmul_cpu.h"
#include "check.h"
#include "gpu.h"

typedef struct smoke_push {
    uint32_t n;
    float a, b;
} smoke_push;

static float input(uint32_t i) {
    return (float)(i % 977) * 0.5f - 200.0f;
}

static void run_size(vkm_gpu *gpu, uint32_t local, uint32_t n) {
    uint32_t spec[1] = {local};
    vkm_gpu_kernel *k = NULL;
    CHECK_OK(vkm_gpu_kernel_get(gpu, VKM_SH_SMOKE, spec, 1, 2, sizeof(smoke_push), &k));
    if (!k) return;
    float *hx = malloc(n * sizeof *hx), *hy = malloc(n * sizeof *hy);
    vkm_gpu_buf *x = NULL, *y = NULL, *z = NULL;
    CHECK(hx && hy);
    if (!hx || !hy) goto out;
    for (uint32_t i = 0; i < n; i++) hx[i] = input(i);
    CHECK_OK(vkm_gpu_buf_create(gpu, n * sizeof(float), VKM_BUF_DEVICE, &x));
    CHECK_OK(vkm_gpu_buf_create(gpu, n * sizeof(float), VKM_BUF_DEVICE, &y));
    CHECK_OK(vkm_gpu_buf_create(gpu, n * sizeof(float), VKM_BUF_DEVICE, &z));
    if (!x || !y || !z) goto out;
    CHECK_OK(vkm_gpu_upload(gpu, x, 0, hx, n * sizeof(float)));
    smoke_push p1 = {n, 3.0f, -1.0f}, p2 = {n, 0.5f, 2.0f};
    uint32_t groups = (n + local - 1) / local;
    /* Two dependent dispatches in one batch: z = p2(p1(x)) needs the barrier between them. */
    CHECK_OK(vkm_gpu_begin(gpu));
    CHECK_OK(vkm_gpu_dispatch(gpu, k, (vkm_gpu_arg[]){{x, 0, 0}, {y, 0, 0}}, 2, &p1, groups, 1, 1));
    CHECK_OK(vkm_gpu_mark(gpu, "first"));
    CHECK_OK(vkm_gpu_dispatch(gpu, k, (vkm_gpu_arg[]){{y, 0, 0}, {z, 0, 0}}, 2, &p2, groups, 1, 1));
    CHECK_OK(vkm_gpu_mark(gpu, "second"));
    CHECK_OK(vkm_gpu_submit(gpu));
    CHECK_OK(vkm_gpu_download(gpu, z, 0, hy, n * sizeof(float)));
    int bad = 0;
    for (uint32_t i = 0; i < n; i++) {
        float want = p2.a * (p1.a * hx[i] + p1.b) + p2.b;
        if (fabsf(hy[i] - want) > 1e-4f * (1.0f + fabsf(want)) && bad++ < 5)
            fprintf(stderr, "local %u n %u: z[%u] = %g, expected %g\n", local, n, i, (double)hy[i],
                    (double)want);
    }
    CHECK_MSG(bad == 0, "local %u n %u: %d wrong values", local, n, bad);

    vkm_gpu_timing t[4];
    int nt = -1;
    CHECK_OK(vkm_gpu_timings(gpu, t, 4, &nt));
    if (vkm_gpu_info(gpu)->timestamps) {
        CHECK(nt == 2);
        if (nt == 2) CHECK(!strcmp(t[0].label, "first") && !strcmp(t[1].label, "second"));
    } else {
        CHECK(nt == 0);
    }
out:
    vkm_gpu_buf_destroy(gpu, x);
    vkm_gpu_buf_destroy(gpu, y);
    vkm_gpu_buf_destroy(gpu, z);
    free(hx);
    free(hy);
}

/* Dry recording: kernels come unbuilt, dispatches are checked but not recorded and the other
 * recording calls do nothing; turning it off builds the kernels (several at once), which then
 * run like any other. Priming: dispatches run no workgroups. */
static void dry_record(vkm_gpu *gpu) {
    const int before = vkm_gpu_kernel_count(gpu);
    const uint32_t locals[3] = {32, 16, 8};
    vkm_gpu_kernel *k[3] = {0}, *again = NULL;
    vkm_gpu_buf *x = NULL, *y = NULL;
    float h[1024];
    CHECK_OK(vkm_gpu_buf_create(gpu, sizeof h, VKM_BUF_DEVICE, &x));
    CHECK_OK(vkm_gpu_buf_create(gpu, sizeof h, VKM_BUF_DEVICE, &y));
    if (!x || !y) goto out;
    for (int i = 0; i < 1024; i++) h[i] = 7.0f;
    CHECK_OK(vkm_gpu_upload(gpu, y, 0, h, sizeof h));
    CHECK_OK(vkm_gpu_set_dry(gpu, true));
    CHECK_OK(vkm_gpu_set_dry(gpu, true));
    for (int i = 0; i < 3; i++)
        CHECK_OK(
            vkm_gpu_kernel_get(gpu, VKM_SH_SMOKE, &locals[i], 1, 2, sizeof(smoke_push), &k[i]));
    CHECK_OK(vkm_gpu_kernel_get(gpu, VKM_SH_SMOKE, &locals[0], 1, 2, sizeof(smoke_push), &again));
    CHECK(k[0] && k[1] && k[2] && again == k[0]);
    CHECK(vkm_gpu_kernel_count(gpu) == before + 3);
    if (!k[0]) goto out;
    const smoke_push p = {1024, 2.0f, 1.0f};
    CHECK_OK(vkm_gpu_begin(gpu));
    CHECK_OK(vkm_gpu_dispatch(gpu, k[0], (vkm_gpu_arg[]){{x, 0, 0}, {y, 0, 0}}, 2, &p, 32, 1, 1));
    CHECK_OK(vkm_gpu_mark(gpu, "dry"));
    CHECK_OK(vkm_gpu_flush(gpu));
    CHECK_OK(vkm_gpu_record_copy(gpu, x, 0, y, 0, 64));
    /* still checked while dry */
    CHECK_ERR(vkm_gpu_dispatch(gpu, k[0], (vkm_gpu_arg[]){{x, 0, 0}}, 1, &p, 32, 1, 1));
    CHECK_ERR(
        vkm_gpu_dispatch(gpu, k[0], (vkm_gpu_arg[]){{x, sizeof h, 0}, {y, 0, 0}}, 2, &p, 32, 1, 1));
    CHECK_ERR(
        vkm_gpu_dispatch(gpu, k[0], (vkm_gpu_arg[]){{x, 0, 0}, {y, 0, 0}}, 2, NULL, 32, 1, 1));
    CHECK_OK(vkm_gpu_submit(gpu));
    CHECK_OK(vkm_gpu_set_dry(gpu, false));
    CHECK(vkm_gpu_kernel_count(gpu) == before + 3);
    /* nothing ran: y is as uploaded */
    CHECK_OK(vkm_gpu_download(gpu, y, 0, h, sizeof h));
    int changed = 0;
    for (int i = 0; i < 1024; i++) changed += h[i] != 7.0f;
    CHECK_MSG(changed == 0, "a dry recording changed %d values", changed);
    for (int i = 0; i < 3; i++) run_size(gpu, locals[i], 1000);
    CHECK(vkm_gpu_kernel_count(gpu) == before + 3);

    /* primed (vkm_gpu_set_prime): the dispatch is recorded and submitted with no workgroups, so
     * y stays as uploaded; unprimed, the same dispatch writes it (2 * 1 + 1) */
    float ones[1024];
    for (int i = 0; i < 1024; i++) ones[i] = 1.0f;
    CHECK_OK(vkm_gpu_upload(gpu, x, 0, ones, sizeof ones));
    for (int primed = 1; primed >= 0; primed--) {
        CHECK_OK(vkm_gpu_upload(gpu, y, 0, h, sizeof h));
        CHECK_OK(vkm_gpu_set_prime(gpu, primed));
        CHECK_OK(vkm_gpu_begin(gpu));
        CHECK_OK(
            vkm_gpu_dispatch(gpu, k[0], (vkm_gpu_arg[]){{x, 0, 0}, {y, 0, 0}}, 2, &p, 32, 1, 1));
        CHECK_OK(vkm_gpu_submit(gpu));
        CHECK_OK(vkm_gpu_set_prime(gpu, false));
        float g[1024];
        CHECK_OK(vkm_gpu_download(gpu, y, 0, g, sizeof g));
        changed = 0;
        for (int i = 0; i < 1024; i++) changed += g[i] != (primed ? h[i] : 3.0f);
        if (primed)
            CHECK_MSG(changed == 0, "a primed dispatch changed %d values", changed);
        else
            CHECK_MSG(changed == 0, "the dispatch left %d values wrong", changed);
    }
out:
    vkm_gpu_buf_destroy(gpu, x);
    vkm_gpu_buf_destroy(gpu, y);
}

/* The warm-up's progress hook (vkm_gpu_set_progress): a call per pipeline built when a dry
 * recording ends and per kernel's first primed dispatch; returning true stops both with
 * VKM_EINTR, the kernels not built are dropped and built by a later request. */
typedef struct progress_log {
    int calls, stage, done, total;
    int stop_after; /* return true from this call on (0 = never) */
} progress_log;

static bool on_progress(void *user, int stage, int done, int total) {
    progress_log *l = user;
    l->calls++;
    l->stage = stage;
    l->done = done;
    l->total = total;
    CHECK(done >= 1 && done <= total);
    return l->stop_after && l->calls >= l->stop_after;
}

static void warmup_progress(vkm_gpu *gpu) {
    const int before = vkm_gpu_kernel_count(gpu);
    const uint32_t locals[3] = {4, 2, 1};
    vkm_gpu_kernel *k[3] = {0};
    vkm_gpu_buf *x = NULL, *y = NULL;
    CHECK_OK(vkm_gpu_buf_create(gpu, 4096, VKM_BUF_DEVICE, &x));
    CHECK_OK(vkm_gpu_buf_create(gpu, 4096, VKM_BUF_DEVICE, &y));
    if (!x || !y) goto out;
    /* building: stopped after the first pipeline (the other thread may finish one more) */
    progress_log l = {.stop_after = 1};
    vkm_gpu_set_progress(gpu, on_progress, &l);
    CHECK_OK(vkm_gpu_set_dry(gpu, true));
    for (int i = 0; i < 3; i++)
        CHECK_OK(
            vkm_gpu_kernel_get(gpu, VKM_SH_SMOKE, &locals[i], 1, 2, sizeof(smoke_push), &k[i]));
    CHECK(vkm_gpu_set_dry(gpu, false) == VKM_EINTR);
    CHECK(l.stage == VKM_GPU_STAGE_BUILD && l.total == 3 && l.calls >= 1 && l.calls < 3);
    const int kept = vkm_gpu_kernel_count(gpu) - before;
    CHECK_MSG(kept >= 1 && kept < 3, "%d of 3 kernels kept after the stop", kept);
    /* without the stop the rest is built */
    l = (progress_log){0};
    CHECK_OK(vkm_gpu_set_dry(gpu, true));
    for (int i = 0; i < 3; i++)
        CHECK_OK(
            vkm_gpu_kernel_get(gpu, VKM_SH_SMOKE, &locals[i], 1, 2, sizeof(smoke_push), &k[i]));
    CHECK_OK(vkm_gpu_set_dry(gpu, false));
    CHECK(vkm_gpu_kernel_count(gpu) == before + 3);
    CHECK(l.calls == 3 - kept && l.done == l.total && l.total == 3 - kept);
    /* priming: one call for a kernel's first primed dispatch, none for the next ones */
    const smoke_push p = {1024, 2.0f, 1.0f};
    const vkm_gpu_arg args[2] = {{x, 0, 0}, {y, 0, 0}};
    l = (progress_log){0};
    CHECK_OK(vkm_gpu_set_prime(gpu, true));
    CHECK_OK(vkm_gpu_begin(gpu));
    CHECK_OK(vkm_gpu_dispatch(gpu, k[0], args, 2, &p, 1, 1, 1));
    CHECK_OK(vkm_gpu_dispatch(gpu, k[0], args, 2, &p, 1, 1, 1));
    CHECK_OK(vkm_gpu_submit(gpu));
    CHECK(l.calls == 1 && l.stage == VKM_GPU_STAGE_PRIME && l.done == 1 && l.total >= 3);
    /* a stop request fails the first dispatch of the next unprimed kernel */
    l = (progress_log){.stop_after = 1};
    CHECK_OK(vkm_gpu_begin(gpu));
    CHECK_OK(vkm_gpu_dispatch(gpu, k[0], args, 2, &p, 1, 1, 1));
    CHECK(vkm_gpu_dispatch(gpu, k[1], args, 2, &p, 1, 1, 1) == VKM_EINTR);
    CHECK(l.calls == 1);
    CHECK_OK(vkm_gpu_set_prime(gpu, false));
    vkm_gpu_set_progress(gpu, NULL, NULL);
    /* the kernels still run normally */
    for (int i = 0; i < 3; i++) run_size(gpu, locals[i], 100);
out:
    vkm_gpu_buf_destroy(gpu, x);
    vkm_gpu_buf_destroy(gpu, y);
}

/* REPS chained dispatches of the smoke kernel (+1 each, ping-ponging a -> b -> a ...) from
 * h[i] = i, flushing every `flush_every` dispatches (0: never); with `abandon` the batch is left
 * unsubmitted half way. Returns the number of wrong values (0 when abandoned). */
static int chain(vkm_gpu *gpu, vkm_gpu_kernel *k, vkm_gpu_buf *a, vkm_gpu_buf *b, int n, int reps,
                 int flush_every, bool abandon) {
    float h[256];
    for (int i = 0; i < n; i++) h[i] = (float)i;
    CHECK_OK(vkm_gpu_upload(gpu, a, 0, h, (size_t)n * sizeof *h));
    smoke_push p = {(uint32_t)n, 1.0f, 1.0f};
    CHECK_OK(vkm_gpu_begin(gpu));
    for (int r = 0; r < reps; r++) {
        vkm_gpu_arg args[2] = {{r % 2 ? b : a, 0, 0}, {r % 2 ? a : b, 0, 0}};
        int rc = vkm_gpu_dispatch(gpu, k, args, 2, &p, (uint32_t)n / 64, 1, 1);
        if (!rc && flush_every && r % flush_every == flush_every - 1) rc = vkm_gpu_flush(gpu);
        if (rc < 0) {
            CHECK_OK(rc);
            return n;
        }
        if (abandon && r == reps / 2) return 0;
    }
    CHECK_OK(vkm_gpu_submit(gpu));
    CHECK_OK(vkm_gpu_download(gpu, reps % 2 ? b : a, 0, h, (size_t)n * sizeof *h));
    int bad = 0;
    for (int i = 0; i < n; i++) bad += h[i] != (float)(i + reps);
    return bad;
}

/* Many small dispatches in one batch, as the model records: exercises descriptor growth; then
 * the same batch flushed every 100 dispatches (more flushes than a batch has command buffers:
 * the last takes the rest), and a flushed batch abandoned half way, after which uploads, a new
 * batch and freeing the buffers must wait for its submitted parts (validation would say). */
static void many_dispatches(vkm_gpu *gpu) {
    enum { N = 256, REPS = 3000 };
    uint32_t spec[1] = {64};
    vkm_gpu_kernel *k = NULL;
    vkm_gpu_buf *a = NULL, *b = NULL;
    CHECK_OK(vkm_gpu_kernel_get(gpu, VKM_SH_SMOKE, spec, 1, 2, sizeof(smoke_push), &k));
    CHECK_OK(vkm_gpu_buf_create(gpu, N * sizeof(float), VKM_BUF_DEVICE, &a));
    CHECK_OK(vkm_gpu_buf_create(gpu, N * sizeof(float), VKM_BUF_DEVICE, &b));
    if (!k || !a || !b) goto out;
    int bad = chain(gpu, k, a, b, N, REPS, 0, false);
    CHECK_MSG(bad == 0, "%d wrong values after %d chained dispatches", bad, REPS);
    bad = chain(gpu, k, a, b, N, REPS, 100, false);
    CHECK_MSG(bad == 0, "%d wrong values after %d chained dispatches, flushed", bad, REPS);
    chain(gpu, k, a, b, N, REPS, 100, true);
    bad = chain(gpu, k, a, b, N, REPS, 0, false);
    CHECK_MSG(bad == 0, "%d wrong values after an abandoned flushed batch", bad);
    chain(gpu, k, a, b, N, REPS, 100, true); /* left in flight for the frees below */
out:
    vkm_gpu_buf_destroy(gpu, a);
    vkm_gpu_buf_destroy(gpu, b);
}

/* Threads of this process allowed on exactly one core (-1 where /proc cannot be read). */
static int pinned_threads(void) {
    DIR *d = opendir("/proc/self/task");
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        cpu_set_t s;
        const int tid = atoi(e->d_name);
        if (tid > 0 && !sched_getaffinity(tid, sizeof s, &s) && CPU_COUNT(&s) == 1) n++;
    }
    closedir(d);
    return n;
}

/* Texel-buffer bindings (CPU devices, vk/gpu.c): the windows vkm_gpu_texel_window accepts, and a
 * dispatch of a texel kernel with one it refuses fails with an error. */
static void texel_windows(vkm_gpu *gpu) {
    if (!vkm_gpu_info(gpu)->texel_bytes) return;
    vkm_gpu_buf *b = NULL;
    CHECK_OK(vkm_gpu_buf_create(gpu, 4096, VKM_BUF_DEVICE, &b));
    if (!b) return;
    CHECK(vkm_gpu_texel_window(gpu, &(vkm_gpu_arg){b, 0, 4096}));
    CHECK(vkm_gpu_texel_window(gpu, &(vkm_gpu_arg){b, 256, 1000}));  /* rounded up to 1008 */
    CHECK(vkm_gpu_texel_window(gpu, &(vkm_gpu_arg){b, 256, 0}));     /* to the end */
    CHECK(!vkm_gpu_texel_window(gpu, &(vkm_gpu_arg){b, 16, 64}));    /* offset not 256-aligned */
    CHECK(!vkm_gpu_texel_window(gpu, &(vkm_gpu_arg){b, 3840, 260})); /* 272 > 256 left */
    CHECK(!vkm_gpu_texel_window(gpu, &(vkm_gpu_arg){b, 4352, 16}));  /* outside the buffer */
    const uint32_t spec[7] = {32, 2, 1, 0, 0, 0, 0}; /* WG, ROWS, NC, XAL, WAL, IDH, GLU */
    vkm_gpu_kernel *k = NULL;
    CHECK_OK(vkm_gpu_kernel_get(gpu, VKM_SH_MATMUL_TEX_Q4_K, spec, 7, 3,
                                sizeof(vkm_matmul_cpu_push), &k));
    if (k) {
        vkm_matmul_cpu_push pc = {.c_end = 0};
        CHECK_OK(vkm_gpu_begin(gpu));
        CHECK_ERR(vkm_gpu_dispatch(gpu, k, (vkm_gpu_arg[]){{b, 16, 64}, {b, 0, 256}, {b, 0, 256}},
                                   3, &pc, 1, 1, 1));
        CHECK_OK(vkm_gpu_submit(gpu));
    }
    vkm_gpu_buf_destroy(gpu, b);
}

int main(void) {
    cpu_set_t allowed;
    const bool multicore =
        !sched_getaffinity(0, sizeof allowed, &allowed) && CPU_COUNT(&allowed) > 1;
    const bool pin_off = getenv("VKMOE_PIN_THREADS") && !strcmp(getenv("VKMOE_PIN_THREADS"), "0");
    const int pinned_before = pinned_threads();
    vkm_gpu_options opt = {.device = -1, .validation = true, .no_pipeline_cache = true};
    vkm_gpu *gpu = NULL;
    int rc = vkm_gpu_create(&opt, &gpu);
    if (rc == VKM_ENODEV) check_skip(vkm_errmsg());
    CHECK_OK(rc);
    if (!gpu) return check_done();
    const vkm_gpu_device_info *info = vkm_gpu_info(gpu);
    printf("device: %s (%s, subgroup %u)\n", info->name, info->driver, info->subgroup_size);
    CHECK(info->name[0] != 0);
    CHECK(info->storage_align >= 1);
    if (info->type == VKM_DEV_CPU && multicore && !pin_off && pinned_before == 0)
        CHECK_MSG(pinned_threads() >= 1, "no driver thread was pinned on the CPU device");

    const uint32_t sizes[] = {1, 63, 64, 65, 100000};
    const uint32_t locals[] = {64, 256};
    for (size_t l = 0; l < 2; l++)
        for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++)
            run_size(gpu, locals[l], sizes[s]);
    many_dispatches(gpu);
    texel_windows(gpu);
    dry_record(gpu);
    warmup_progress(gpu);

    /* The kernel cache returns the same kernel for the same key, another for other spec. */
    vkm_gpu_kernel *k1 = NULL, *k2 = NULL, *k3 = NULL;
    uint32_t s64 = 64, s128 = 128;
    CHECK_OK(vkm_gpu_kernel_get(gpu, VKM_SH_SMOKE, &s64, 1, 2, sizeof(smoke_push), &k1));
    CHECK_OK(vkm_gpu_kernel_get(gpu, VKM_SH_SMOKE, &s64, 1, 2, sizeof(smoke_push), &k2));
    CHECK_OK(vkm_gpu_kernel_get(gpu, VKM_SH_SMOKE, &s128, 1, 2, sizeof(smoke_push), &k3));
    CHECK(k1 && k1 == k2 && k3 && k3 != k1);
    /* Bad kernel requests are errors, not crashes. */
    vkm_gpu_kernel *kb = NULL;
    CHECK_ERR(vkm_gpu_kernel_get(gpu, VKM_SHADER_COUNT, NULL, 0, 2, 12, &kb));
    CHECK_ERR(vkm_gpu_kernel_get(gpu, VKM_SH_SMOKE, NULL, 0, 2, 13, &kb));
    CHECK_ERR(vkm_gpu_kernel_get(gpu, VKM_SH_SMOKE, NULL, 0, 1000, 12, &kb));
    /* Wrong use of the recording API. */
    CHECK_ERR(vkm_gpu_submit(gpu));
    CHECK_ERR(vkm_gpu_flush(gpu));
    CHECK_ERR(vkm_gpu_dispatch(gpu, k1, NULL, 0, NULL, 1, 1, 1));

    CHECK_MSG(vkm_gpu_validation_errors(gpu) == 0, "%u validation errors",
              vkm_gpu_validation_errors(gpu));
    vkm_gpu_destroy(gpu);
    vkm_gpu_destroy(NULL);
    return check_done();
}
