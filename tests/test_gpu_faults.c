/* test_gpu_faults.c - clean handling of injected GPU faults (core/gpu.h vkm_gpu_fault_set) on
 * the tiny fixture model, on the first Vulkan device with validation on; skips (77) without one.
 *
 *   - out of device memory at the 1st, 2nd, ... buffer creation of vkm_engine_open (until an
 *     open no longer reaches the armed allocation) and of vkm_session_create: every failure is
 *     VKM_EDEVMEM with a message, leaves nothing behind (ASan in CI checks the leaks), and the
 *     next open / create without a fault works;
 *   - device lost at the 1st, 2nd, ... queue submission of vkm_session_eval, with resident and
 *     with paged experts: VKM_EDEVLOST with a message, every later call fails fast with
 *     VKM_EDEVLOST, the session is unchanged, and destroying everything is clean;
 *   - the same for the gpu layer's staging buffer and transfer submissions (force_staging);
 *   - afterwards, the logits of a fault-free run equal those of the first run.
 * An alarm turns any hang into a failure. One gpu stays open for the whole test, so the Vulkan
 * loader keeps the driver loaded between the many engines: reloading NVIDIA's driver some twenty
 * times in one process exhausts glibc's static TLS ("cannot allocate memory in static TLS block").
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "engine.h"
#include "gpu.h"
#include "gpu_keep.h"
#include "vkmoe.h"

#define TINY VKMOE_FIXTURES_DIR "/tiny-v3-f32.gguf"
#define MAX_N 1000 /* no loop over fault positions runs longer than this */
#define N_TOK 10
#define BATCH 4 /* 3 chunks: 3 submissions per eval with resident experts */

static size_t g_vocab; /* n_vocab of the model */
static const int32_t k_tokens[N_TOK] = {1, 17, 42, 7, 99, 3, 64, 5, 12, 200};

static void on_alarm(int sig) {
    (void)sig;
    static const char msg[] = "test_gpu_faults: timed out: a fault led to a hang\n";
    if (write(STDERR_FILENO, msg, sizeof msg - 1) < 0) _exit(1);
    _exit(1);
}

static int open_engine(uint64_t budget, vkm_engine **e) {
    vkm_engine_opts o = {
        .model_path = TINY, .device = -1, .validation = true, .quiet = true, .vram_budget = budget};
    return vkm_engine_open(&o, e);
}

static int open_session(vkm_engine *e, vkm_session **s) {
    vkm_session_opts so = {.n_ctx = 64, .kv_f32 = true, .max_batch = BATCH};
    return vkm_session_create(e, &so, s);
}

static bool has(const char *needle) {
    return strstr(vkm_errmsg(), needle) != NULL;
}

/* Opens engine + session and evaluates the tokens (all logits); 0 or the first error. */
static int run_clean(uint64_t budget, float *logits) {
    vkm_engine *e = NULL;
    vkm_session *s = NULL;
    int rc = open_engine(budget, &e);
    if (!rc) rc = open_session(e, &s);
    if (!rc) rc = vkm_session_eval(s, k_tokens, N_TOK, true, logits);
    if (!rc) CHECK(vkm_gpu_validation_errors(vkm_engine_gpu(e)) == 0);
    vkm_session_destroy(s);
    vkm_engine_close(e);
    return rc;
}

/* Out of device memory at every buffer creation of vkm_engine_open. A failure while creating
 * the paged expert cache may instead shrink the cache (the "the pager shrinks its cache
 * and continues"): then the open succeeds with fewer slots than without the fault. */
static void test_alloc_open(uint64_t budget, const char *what) {
    uint32_t full_slots = 0;
    {
        vkm_engine *e = NULL;
        if (!open_engine(budget, &e)) {
            vkm_expert_stats st;
            vkm_engine_expert_stats(e, &st);
            full_slots = st.paged ? st.n_slots : 0;
        }
        vkm_engine_close(e);
    }
    int n = 1, shrunk = 0;
    for (; n <= MAX_N; n++) {
        vkm_engine *e = NULL;
        vkm_gpu_fault_set(VKM_FAULT_DEVICE_ALLOC_NTH, n);
        int rc = open_engine(budget, &e);
        const bool fired = !vkm_gpu_fault_pending(VKM_FAULT_DEVICE_ALLOC_NTH);
        vkm_gpu_fault_set(VKM_FAULT_NONE, 0);
        if (rc == 0 && fired) { /* the expert cache absorbed the failure by shrinking */
            vkm_expert_stats st;
            vkm_engine_expert_stats(e, &st);
            CHECK_MSG(full_slots && st.paged && st.n_slots < full_slots,
                      "%s: open succeeded although allocation %d failed (slots %u of %u)", what, n,
                      st.n_slots, full_slots);
            shrunk++;
            vkm_engine_close(e);
            continue;
        }
        if (rc == 0) { /* fewer than n buffers: done */
            vkm_engine_close(e);
            break;
        }
        CHECK_MSG(fired, "%s: open failed before allocation %d: %s", what, n, vkm_errmsg());
        CHECK_MSG(rc == VKM_EDEVMEM, "%s: alloc %d: rc %d: %s", what, n, rc, vkm_errmsg());
        CHECK_MSG(has("out of device memory"), "%s: alloc %d: message '%s'", what, n, vkm_errmsg());
        CHECK(e == NULL);
    }
    printf("engine open, %s: %d buffer creations failed one by one (%d shrank the expert cache)\n",
           what, n - 1, shrunk);
    CHECK(n > 1 && n <= MAX_N);
    vkm_engine *e = NULL;
    CHECK_OK(open_engine(budget, &e)); /* and without a fault it works again */
    vkm_engine_close(e);
}

/* Out of device memory at every buffer creation of vkm_session_create. */
static void test_alloc_session(void) {
    vkm_engine *e = NULL;
    CHECK_OK(open_engine(0, &e));
    if (!e) return;
    int n = 1;
    for (; n <= MAX_N; n++) {
        vkm_session *s = NULL;
        vkm_gpu_fault_set(VKM_FAULT_DEVICE_ALLOC_NTH, n);
        int rc = open_session(e, &s);
        const bool fired = !vkm_gpu_fault_pending(VKM_FAULT_DEVICE_ALLOC_NTH);
        vkm_gpu_fault_set(VKM_FAULT_NONE, 0);
        if (rc == 0) {
            CHECK_MSG(!fired, "session create succeeded although allocation %d failed", n);
            vkm_session_destroy(s);
            break;
        }
        CHECK_MSG(fired, "session create failed before allocation %d: %s", n, vkm_errmsg());
        CHECK_MSG(rc == VKM_EDEVMEM, "alloc %d: rc %d: %s", n, rc, vkm_errmsg());
        CHECK_MSG(has("out of device memory"), "alloc %d: message '%s'", n, vkm_errmsg());
        CHECK(s == NULL);
        /* the engine is intact: a session without a fault works */
        float *logits = malloc((size_t)vkm_engine_model(e)->hp.n_vocab * sizeof *logits);
        CHECK(logits != NULL);
        if (logits && !open_session(e, &s)) {
            CHECK_OK(vkm_session_eval(s, k_tokens, N_TOK, false, logits));
            vkm_session_destroy(s);
        }
        free(logits);
    }
    printf("session create: %d buffer creations failed one by one\n", n - 1);
    CHECK(n > 1 && n <= MAX_N);
    CHECK(vkm_gpu_validation_errors(vkm_engine_gpu(e)) == 0);
    vkm_engine_close(e);
}

/* Device lost at queue submission n of one vkm_session_eval, for every n (every 4th past 16, to
 * bound the time with paged experts); returns the number of submissions of the eval. */
static int test_lost_eval(uint64_t budget, const char *what) {
    const size_t V = g_vocab;
    float *logits = malloc(N_TOK * V * sizeof *logits);
    CHECK(logits != NULL);
    if (!logits) return 0;
    int n = 1;
    for (; n <= MAX_N; n += n < 16 ? 1 : 4) {
        vkm_engine *e = NULL;
        vkm_session *s = NULL;
        int rc = open_engine(budget, &e);
        CHECK_OK(rc);
        if (!rc) CHECK_OK(rc = open_session(e, &s));
        if (rc) {
            vkm_engine_close(e);
            break;
        }
        vkm_gpu_fault_set(VKM_FAULT_DEVICE_LOST_NTH, n);
        alarm(60);
        rc = vkm_session_eval(s, k_tokens, N_TOK, true, logits);
        const bool fired = !vkm_gpu_fault_pending(VKM_FAULT_DEVICE_LOST_NTH);
        vkm_gpu_fault_set(VKM_FAULT_NONE, 0);
        if (rc == 0) {
            CHECK_MSG(!fired, "%s: eval succeeded although submission %d was lost", what, n);
            alarm(0);
            vkm_session_destroy(s);
            vkm_engine_close(e);
            break;
        }
        CHECK_MSG(fired, "%s: eval failed before submission %d: %s", what, n, vkm_errmsg());
        CHECK_MSG(rc == VKM_EDEVLOST, "%s: lost %d: rc %d: %s", what, n, rc, vkm_errmsg());
        CHECK_MSG(has("lost"), "%s: lost %d: message '%s'", what, n, vkm_errmsg());
        CHECK(vkm_session_n_past(s) == 0);
        /* everything later fails fast, nothing waits */
        CHECK(vkm_session_eval(s, k_tokens, 1, false, logits) == VKM_EDEVLOST);
        CHECK(has("lost"));
        vkm_session *s2 = NULL;
        CHECK(open_session(e, &s2) == VKM_EDEVLOST);
        CHECK(s2 == NULL);
        vkm_gpu *gpu = vkm_engine_gpu(e);
        CHECK(vkm_gpu_begin(gpu) == VKM_EDEVLOST);
        CHECK(vkm_gpu_submit(gpu) == VKM_EDEVLOST);
        vkm_gpu_buf *b = NULL;
        CHECK(vkm_gpu_buf_create(gpu, 256, VKM_BUF_DEVICE, &b) == VKM_EDEVLOST);
        CHECK(b == NULL);
        CHECK(vkm_gpu_validation_errors(gpu) == 0);
        vkm_session_destroy(s);
        vkm_engine_close(e);
        alarm(0);
    }
    free(logits);
    printf("%s: device lost at submission n of an eval, n = 1..%d\n", what, n - 1);
    CHECK(n > 1 && n <= MAX_N);
    return n - 1;
}

/* Device lost during vkm_engine_open (only where uploads are submitted: not on UMA devices). */
static void test_lost_open(void) {
    int n = 1;
    for (; n <= MAX_N; n++) {
        vkm_engine *e = NULL;
        vkm_gpu_fault_set(VKM_FAULT_DEVICE_LOST_NTH, n);
        alarm(60);
        int rc = open_engine(0, &e);
        const bool fired = !vkm_gpu_fault_pending(VKM_FAULT_DEVICE_LOST_NTH);
        vkm_gpu_fault_set(VKM_FAULT_NONE, 0);
        alarm(0);
        vkm_engine_close(e);
        if (rc == 0) {
            CHECK(!fired);
            break;
        }
        CHECK_MSG(rc == VKM_EDEVLOST && fired, "lost %d in open: rc %d: %s", n, rc, vkm_errmsg());
    }
    printf("engine open: device lost at each of %d submissions\n", n - 1);
}

/* The gpu layer directly, copying through staging and the transfer queue as discrete GPUs do:
 * device OOM for the lazily created staging buffer, device lost at a transfer submission. */
static void test_gpu_staging(void) {
    vkm_gpu_options go = {.device = -1, .validation = true, .force_staging = true};
    vkm_gpu *gpu = NULL;
    CHECK_OK(vkm_gpu_create(&go, &gpu));
    if (!gpu) return;
    uint32_t data[256], back[256];
    for (int i = 0; i < 256; i++) data[i] = (uint32_t)i * 2654435761u;
    vkm_gpu_buf *b = NULL;
    CHECK_OK(vkm_gpu_buf_create(gpu, sizeof data, VKM_BUF_DEVICE, &b));
    if (b) {
        vkm_gpu_fault_set(VKM_FAULT_DEVICE_ALLOC_NTH, 1); /* the staging buffer */
        CHECK(vkm_gpu_upload(gpu, b, 0, data, sizeof data) == VKM_EDEVMEM);
        CHECK(has("out of device memory"));
        CHECK(!vkm_gpu_fault_pending(VKM_FAULT_DEVICE_ALLOC_NTH));
        CHECK_OK(vkm_gpu_upload(gpu, b, 0, data, sizeof data)); /* fine again */
        CHECK_OK(vkm_gpu_download(gpu, b, 0, back, sizeof back));
        CHECK(memcmp(data, back, sizeof data) == 0);
        vkm_gpu_fault_set(VKM_FAULT_DEVICE_LOST_NTH, 2); /* the download after one upload */
        alarm(60);
        CHECK_OK(vkm_gpu_upload(gpu, b, 0, data, sizeof data));
        CHECK(vkm_gpu_download(gpu, b, 0, back, sizeof back) == VKM_EDEVLOST);
        CHECK(has("device was lost"));
        CHECK(vkm_gpu_upload(gpu, b, 0, data, sizeof data) == VKM_EDEVLOST);
        CHECK(vkm_gpu_copy(gpu, b, 0, b, 512, 256) == VKM_EDEVLOST);
        vkm_gpu_kernel *k = NULL;
        CHECK(vkm_gpu_kernel_get(gpu, VKM_SHADER_COUNT, NULL, 0, 1, 0, &k) == VKM_EDEVLOST);
        vkm_gpu_timing t;
        int n = -1;
        CHECK(vkm_gpu_timings(gpu, &t, 1, &n) == VKM_EDEVLOST && n == 0);
        alarm(0);
        vkm_gpu_fault_set(VKM_FAULT_NONE, 0);
    }
    CHECK(vkm_gpu_validation_errors(gpu) == 0);
    vkm_gpu_buf_destroy(gpu, b);
    vkm_gpu_destroy(gpu);
}

/* The automatic budget less a quarter of the experts: paged, if the minimum allows. */
static uint64_t paged_budget(void) {
    vkm_engine *e = NULL;
    if (open_engine(0, &e)) return 0;
    vkm_engine_info in;
    vkm_engine_get_info(e, &in);
    vkm_engine_close(e);
    for (uint64_t b = in.weight_bytes * 3 / 4; b > in.weight_bytes / 8; b = b * 7 / 8) {
        if (open_engine(b, &e)) continue;
        vkm_expert_stats st;
        vkm_engine_expert_stats(e, &st);
        vkm_engine_close(e);
        if (st.paged) return b;
    }
    vkm_error_clear();
    return 0;
}

int main(void) {
    signal(SIGALRM, on_alarm);
    gpu_keep_open();
    vkm_engine *e = NULL;
    int rc = open_engine(0, &e);
    if (rc == VKM_ENODEV) check_skip(vkm_errmsg());
    CHECK_OK(rc);
    if (rc) {
        gpu_keep_close();
        return check_done();
    }
    const size_t V = g_vocab = (size_t)vkm_engine_model(e)->hp.n_vocab;
    vkm_engine_close(e);
    float *ref = malloc(N_TOK * V * sizeof *ref), *again = malloc(N_TOK * V * sizeof *again);
    CHECK(ref && again);
    if (!ref || !again) {
        gpu_keep_close();
        return check_done();
    }
    CHECK_OK(run_clean(0, ref));

    /* arming and disarming */
    CHECK(!vkm_gpu_fault_pending(VKM_FAULT_DEVICE_ALLOC_NTH));
    vkm_gpu_fault_set(VKM_FAULT_DEVICE_ALLOC_NTH, 3);
    CHECK(vkm_gpu_fault_pending(VKM_FAULT_DEVICE_ALLOC_NTH));
    vkm_gpu_fault_set(VKM_FAULT_DEVICE_ALLOC_NTH, 0);
    CHECK(!vkm_gpu_fault_pending(VKM_FAULT_DEVICE_ALLOC_NTH));
    vkm_gpu_fault_set(VKM_FAULT_DEVICE_LOST_NTH, 1);
    vkm_gpu_fault_set(VKM_FAULT_NONE, 0);
    CHECK(!vkm_gpu_fault_pending(VKM_FAULT_DEVICE_LOST_NTH));
    vkm_gpu_fault_set(99, 1); /* unknown kinds are ignored */
    CHECK(!vkm_gpu_fault_pending(99));

    test_gpu_staging();
    test_alloc_open(0, "resident experts");
    test_alloc_session();
    test_lost_open();
    CHECK(test_lost_eval(0, "resident experts") >= N_TOK / BATCH);
    const uint64_t budget = paged_budget();
    if (budget) {
        test_alloc_open(budget, "paged experts");
        test_lost_eval(budget, "paged experts");
    } else {
        printf("paged experts: no budget pages the tiny model; skipped\n");
    }

    /* nothing of the faults is left behind */
    CHECK_OK(run_clean(0, again));
    CHECK(memcmp(ref, again, N_TOK * V * sizeof *ref) == 0);
    free(ref);
    free(again);
    gpu_keep_close();
    return check_done();
}
