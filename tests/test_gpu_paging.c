/* test_gpu_paging.c - expert paging end to end (core/experts.c, pager.c, session.c, forward.c) and
 * vkm_gpu_copy, on the first Vulkan device with validation on; skips (77) without a device.
 *
 * For each fixture model, the logits under VRAM budgets that keep every expert resident, half of
 * them, exactly the minimum (the top-k experts of one MoE layer per size class), and one byte
 * less (VKM_EDEVMEM naming the minimum), with both eviction policies, for the prompt as one
 * batch and for a batch followed by single-token steps, against the unpaged engine. Paging runs
 * the same kernels on the same data in the same order, so the logits must agree to 1e-4 (in
 * practice exactly). The counters: hits + misses is the number of (eval, MoE layer, distinct
 * chosen expert) requests (the same for every budget and policy; n_moe_layers * top-k per
 * single-token eval), misses > 0 when paged, uploaded_bytes = the misses' unit bytes.
 *
 * Parallel staging copies: the whole test runs with VKMOE_STAGING_PIECE=256 (unless set) so the
 * fixtures' small expert matrices are split among the staging threads too (their count from
 * VKMOE_STAGING_THREADS as the test is run, e.g. 0 and 3); test_staging_threads also checks
 * 0, 1 and 3 threads explicitly against the unpaged logits and that bad values are refused. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "engine.h"
#include "gpu.h"
#include "gpu_keep.h"
#include "logits_check.h"
#include "gguf.h"
#include "model.h"
#include "vkmoe.h"

#define N_PROMPT 33
#define N_CTX 64
#define ALIGN 256u

static int32_t g_ids[N_PROMPT];

static uint64_t align_up(uint64_t v) {
    return (v + ALIGN - 1) / ALIGN * ALIGN;
}

static int open_engine_pf(const char *path, uint64_t budget, int policy, int prefetch,
                          vkm_engine **e) {
    vkm_engine_opts o = {.model_path = path,
                         .device = -1,
                         .validation = true,
                         .quiet = true,
                         .vram_budget = budget,
                         .expert_policy = policy,
                         .prefetch = prefetch};
    return vkm_engine_open(&o, e);
}

static int open_engine(const char *path, uint64_t budget, int policy, vkm_engine **e) {
    return open_engine_pf(path, budget, policy, VKM_PREFETCH_OFF, e);
}

/* The first N_PROMPT - n_step tokens as one eval, then the rest one at a time (F32 cache). */
static int run_prompt(vkm_engine *e, int n_step, float *out) {
    return logits_gpu_prompt(e, g_ids, N_PROMPT, N_CTX, true, 0, n_step, out);
}

/* ---------------------------------------------------------------------------- sizes ---- */

/* What the budget rules of vkmoe.h come to for a model: the bytes of the resident weights and of
 * all experts, the size classes, and the minimum budget. */
typedef struct sizes {
    uint64_t main, experts, minimum, slots_min;
    int n_classes, n_moe;
    size_t mat[8][4]; /* per class and kind (gate, up, gate_up, down) */
    uint64_t unit_min, unit_max;
} sizes;

static void model_sizes(const vkm_model *m, sizes *z) {
    memset(z, 0, sizeof *z);
    const vkm_gguf *g = m->gguf;
    for (int64_t i = 0; i < vkm_gguf_n_tensors(g); i++) {
        const vkm_gguf_tensor *t = vkm_gguf_tensor_at(g, i);
        if (strstr(t->name, "_exps"))
            z->experts += align_up(t->nbytes);
        else
            z->main += align_up(t->nbytes);
    }
    const uint32_t K = m->hp.n_expert_used;
    z->unit_min = UINT64_MAX;
    for (uint32_t il = 0; il < m->hp.n_layer; il++) {
        const vkm_layer *L = &m->layers[il];
        if (!L->moe) continue;
        z->n_moe++;
        const vkm_tensor *ts[4] = {&L->ffn_gate_exps, &L->ffn_up_exps, &L->ffn_gate_up_exps,
                                   &L->ffn_down_exps};
        size_t key[4] = {0};
        uint64_t unit = 0;
        for (int k = 0; k < 4; k++) {
            key[k] = ts[k]->data ? (size_t)ts[k]->ne[1] * ts[k]->row_bytes : 0;
            unit += key[k];
        }
        z->unit_min = unit < z->unit_min ? unit : z->unit_min;
        z->unit_max = unit > z->unit_max ? unit : z->unit_max;
        int c = 0; /* types differ only along with sizes in the fixtures */
        while (c < z->n_classes && memcmp(z->mat[c], key, sizeof key)) c++;
        if (c == z->n_classes) {
            memcpy(z->mat[z->n_classes++], key, sizeof key);
            for (int k = 0; k < 4; k++)
                if (key[k]) z->slots_min += align_up((uint64_t)K * key[k]);
        }
    }
    z->minimum = z->main + align_up(8ull * m->hp.n_layer * m->hp.n_expert) + z->slots_min;
}

/* ------------------------------------------------------------------------- fixtures ---- */

static void run_fixture(const char *name, int n_step) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s.gguf", VKMOE_FIXTURES_DIR, name);
    vkm_engine *e = NULL;
    CHECK_OK(open_engine(path, 0, VKM_EXPERT_LRU, &e));
    if (!e) return;
    const vkm_hparams *hp = &vkm_engine_model(e)->hp;
    const int V = (int)hp->n_vocab;
    const uint32_t K = hp->n_expert_used;
    const size_t nl = (size_t)N_PROMPT * V;
    float *ref_batch = xmalloc(nl * 4), *ref_step = xmalloc(nl * 4), *out = xmalloc(nl * 4);
    sizes z;
    model_sizes(vkm_engine_model(e), &z);
    vkm_expert_stats st;
    vkm_engine_expert_stats(e, &st);
    CHECK(!st.paged && st.hits == 0 && st.n_slots == 0); /* automatic budget: everything fits */
    CHECK_OK(run_prompt(e, 0, ref_batch));
    CHECK_OK(run_prompt(e, n_step, ref_step));
    vkm_engine_close(e);
    printf("%s: resident weights %.3f MiB, experts %.3f MiB in %d size class(es), minimum "
           "budget %.3f MiB\n",
           name, z.main / 1048576.0, z.experts / 1048576.0, z.n_classes, z.minimum / 1048576.0);

    /* below the minimum: a clear error naming it */
    CHECK(open_engine(path, z.minimum - 1, VKM_EXPERT_LRU, &e) == VKM_EDEVMEM && !e);
    CHECK_MSG(strstr(vkm_errmsg(), "minimum of") != NULL, "message: %s", vkm_errmsg());
    printf("%s: budget minimum - 1: %s\n", name, vkm_errmsg());

    const struct {
        const char *label;
        uint64_t budget;
        bool paged;
    } budgets[] = {
        {"all resident", z.main + z.experts, false},
        {"half", z.minimum + (z.experts - z.slots_min) / 2, true},
        {"minimum", z.minimum, true},
    };
    uint64_t req_batch = 0, req_step = 0; /* requests of the first paged run, for the others */
    uint64_t pf_total = 0, pf_used = 0;   /* over the runs with prefetch */
    for (size_t b = 0; b < sizeof budgets / sizeof budgets[0]; b++) {
        for (int pv = 0; pv < (budgets[b].paged ? 4 : 2); pv++) {
            const int policy = pv & 1 ? VKM_EXPERT_LFU : VKM_EXPERT_LRU;
            const bool pf = pv >= 2;
            const char *pol = pf ? (policy == VKM_EXPERT_LFU ? "lfu+pf" : "lru+pf")
                                 : (policy == VKM_EXPERT_LFU ? "lfu" : "lru");
            CHECK_OK(open_engine_pf(path, budgets[b].budget, policy,
                                    pf ? VKM_PREFETCH_ON : VKM_PREFETCH_OFF, &e));
            if (!e) continue;
            vkm_engine_expert_stats(e, &st);
            CHECK(st.paged == budgets[b].paged);
            if (b == 2) CHECK(st.n_slots == K * (uint32_t)z.n_classes);
            const uint32_t n_slots = st.n_slots;
            for (int mode = 0; mode < 2; mode++) {
                const int steps = mode ? n_step : 0;
                vkm_engine_expert_stats_reset(e);
                CHECK_OK(run_prompt(e, steps, out));
                const double d = logits_max_abs_diff(mode ? ref_step : ref_batch, out, nl);
                vkm_engine_expert_stats(e, &st);
                char line[256];
                vkm_expert_stats_line(&st, line, sizeof line);
                const uint64_t req = st.hits + st.misses;
                printf("%-16s %-12s %-6s %-19s slots %4u  max abs vs unpaged %.3g  hit rate "
                       "%5.1f%%  %s\n",
                       name, budgets[b].label, pol, mode ? "batch + steps" : "one batch", n_slots,
                       d, req ? 100.0 * (double)st.hits / (double)req : 0.0, line);
                CHECK_MSG(d <= 1e-4, "%s %s %s mode %d: max abs %g", name, budgets[b].label, pol,
                          mode, d);
                if (!budgets[b].paged) {
                    CHECK(req == 0 && st.uploaded_bytes == 0);
                    continue;
                }
                uint64_t *want = mode ? &req_step : &req_batch;
                if (!*want) *want = req;
                CHECK_MSG(req == *want, "%s: %llu requests, expected %llu", name,
                          (unsigned long long)req, (unsigned long long)*want);
                /* every single-token eval asks each MoE layer for exactly K distinct experts;
                 * a batch for at least K */
                const uint64_t n_batch_evals = (N_PROMPT - steps) > 0 ? 1 : 0;
                CHECK(req >= (uint64_t)z.n_moe * K * ((uint64_t)steps + n_batch_evals));
                if (steps == N_PROMPT) CHECK(req == (uint64_t)z.n_moe * K * N_PROMPT);
                CHECK(st.misses > 0 && st.stall_ms >= 0.0);
                CHECK(pf || st.prefetched == 0);
                CHECK(st.prefetch_used <= st.prefetched && st.prefetch_used <= st.hits);
                /* a budget of exactly one layer's top-k: with one size class no slot is ever
                 * free for a guess (they are all pinned by the current layer) */
                if (b == 2 && z.n_classes == 1) CHECK(st.prefetched == 0);
                pf_total += st.prefetched;
                pf_used += st.prefetch_used;
                const uint64_t units = st.misses + st.prefetched;
                CHECK(st.uploaded_bytes >= units * z.unit_min &&
                      st.uploaded_bytes <= units * z.unit_max);
                if (z.n_classes == 1) CHECK(st.uploaded_bytes == units * z.unit_min);
            }
            CHECK(vkm_gpu_validation_errors(vkm_engine_gpu(e)) == 0);
            vkm_engine_close(e);
        }
    }
    printf("%s: prefetch: %llu units prefetched, %llu used\n", name, (unsigned long long)pf_total,
           (unsigned long long)pf_used);
    CHECK(pf_total > 0); /* the half budget leaves room for guesses */

    /* the warm-up with paged experts (prefetch on) pages nothing and builds every kernel the
     * batch and the steps use; the last logits are the unpaged ones */
    CHECK_OK(open_engine_pf(path, budgets[1].budget, VKM_EXPERT_LRU, VKM_PREFETCH_ON, &e));
    vkm_session *s = NULL;
    if (e) CHECK_OK(vkm_session_create(e, &(vkm_session_opts){N_CTX, true, 0, NULL}, &s));
    if (s) {
        vkm_gpu *gpu = vkm_engine_gpu(e);
        const int k0 = vkm_gpu_kernel_count(gpu), n_batch = N_PROMPT - n_step;
        CHECK_OK(vkm_session_warmup(s, n_batch));
        const int k1 = vkm_gpu_kernel_count(gpu);
        vkm_engine_expert_stats(e, &st);
        CHECK(k1 > k0 && vkm_session_n_past(s) == 0);
        /* a dry plan only for paged MoE layers */
        vkm_fwd_expert_plan dry;
        const uint32_t n_layer = vkm_engine_model(e)->hp.n_layer;
        CHECK(vkm_engine_expert_plan_dry(e, n_layer, &dry) == VKM_EINVAL);
        CHECK(vkm_engine_expert_plan_dry(e, 0, &dry) == VKM_EINVAL); /* the dense layer */
        CHECK_OK(vkm_engine_expert_plan_dry(e, n_layer - 1, &dry));
        CHECK(dry.base == 0 && dry.n_mat >= 1 && dry.last);
        CHECK(st.hits + st.misses == 0 && st.uploaded_bytes == 0 && st.prefetched == 0);
        if (n_batch > 0) CHECK_OK(vkm_session_eval(s, g_ids, n_batch, false, out));
        for (int i = n_batch; i < N_PROMPT; i++)
            CHECK_OK(vkm_session_eval(s, g_ids + i, 1, false, out));
        CHECK_MSG(vkm_gpu_kernel_count(gpu) == k1, "%s: %d kernels built after the warm-up", name,
                  vkm_gpu_kernel_count(gpu) - k1);
        const double d = logits_max_abs_diff(ref_step + (size_t)(N_PROMPT - 1) * V, out, V);
        CHECK_MSG(d <= 1e-4, "%s: paged after the warm-up: max abs %g", name, d);
        CHECK(vkm_gpu_validation_errors(gpu) == 0);
    }
    vkm_session_destroy(s);
    vkm_engine_close(e);
    free(ref_batch);
    free(ref_step);
    free(out);
}

/* ------------------------------------------------------------- device memory short ---- */

/* A paged budget (half the experts) with out of device memory at the nth buffer creation of the
 * open, n = 1, 2, ...: a slot stack fails -> the cache shrinks (fewer slots) and the logits still
 * equal the unpaged ones; any other buffer -> a clean VKM_EDEVMEM. Stops at the first n beyond
 * the open's buffer creations. */
static void test_shrink(const char *name) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s.gguf", VKMOE_FIXTURES_DIR, name);
    vkm_engine *e = NULL;
    CHECK_OK(open_engine(path, 0, VKM_EXPERT_LRU, &e));
    if (!e) return;
    const size_t nl = (size_t)N_PROMPT * vkm_engine_model(e)->hp.n_vocab;
    const uint32_t K = vkm_engine_model(e)->hp.n_expert_used;
    float *ref = xmalloc(nl * 4), *out = xmalloc(nl * 4);
    sizes z;
    model_sizes(vkm_engine_model(e), &z);
    CHECK_OK(run_prompt(e, 0, ref));
    vkm_engine_close(e);
    const uint64_t budget = z.minimum + (z.experts - z.slots_min) / 2;
    vkm_expert_stats st;
    CHECK_OK(open_engine(path, budget, VKM_EXPERT_LRU, &e));
    if (!e) goto out;
    vkm_engine_expert_stats(e, &st);
    vkm_engine_close(e);
    const uint32_t full = st.n_slots;
    CHECK(st.paged && full > K * (uint32_t)z.n_classes); /* room to shrink */
    int n = 1, n_shrunk = 0, n_failed = 0;
    for (; n <= 64; n++) {
        e = NULL;
        vkm_gpu_fault_set(VKM_FAULT_DEVICE_ALLOC_NTH, n);
        const int rc = open_engine(path, budget, VKM_EXPERT_LRU, &e);
        const bool fired = !vkm_gpu_fault_pending(VKM_FAULT_DEVICE_ALLOC_NTH);
        vkm_gpu_fault_set(VKM_FAULT_NONE, 0);
        if (rc) {
            CHECK_MSG(rc == VKM_EDEVMEM && fired && !e, "alloc %d: rc %d: %s", n, rc, vkm_errmsg());
            n_failed++;
            continue;
        }
        if (!fired) { /* beyond the open's buffer creations */
            vkm_engine_close(e);
            break;
        }
        vkm_engine_expert_stats(e, &st);
        CHECK_MSG(st.paged && st.n_slots < full, "alloc %d: opened with %u slots of %u", n,
                  st.n_slots, full);
        CHECK_OK(run_prompt(e, 0, out));
        const double d = logits_max_abs_diff(ref, out, nl);
        printf("%s: out of device memory at allocation %d: cache shrunk to %u of %u slots, max abs "
               "vs unpaged %.3g\n",
               name, n, st.n_slots, full, d);
        CHECK_MSG(d <= 1e-4, "alloc %d: max abs %g", n, d);
        CHECK(vkm_gpu_validation_errors(vkm_engine_gpu(e)) == 0);
        vkm_engine_close(e);
        n_shrunk++;
    }
    printf("%s: %d allocations shrank the cache, %d failed cleanly\n", name, n_shrunk, n_failed);
    CHECK(n_shrunk >= 1 && n <= 64);
out:
    free(ref);
    free(out);
}

/* ------------------------------------------------------------------ staging threads ---- */

/* Paged logits (minimum budget, prefetch on and off) with 0, 1 and 3 staging threads equal the
 * unpaged ones exactly; malformed VKMOE_STAGING_THREADS / VKMOE_STAGING_PIECE values are
 * VKM_EINVAL naming the variable. The caller's environment is restored. */
static void test_staging_threads(void) {
    const char *path = VKMOE_FIXTURES_DIR "/tiny-v3-f32.gguf";
    const char *saved = getenv("VKMOE_STAGING_THREADS");
    char *keep = saved ? strdup(saved) : NULL;
    vkm_engine *e = NULL;
    CHECK_OK(open_engine(path, 0, VKM_EXPERT_LRU, &e));
    if (!e) return;
    const int V = (int)vkm_engine_model(e)->hp.n_vocab;
    const size_t nl = (size_t)N_PROMPT * V;
    float *ref = xmalloc(nl * 4), *out = xmalloc(nl * 4);
    sizes z;
    model_sizes(vkm_engine_model(e), &z);
    CHECK_OK(run_prompt(e, 8, ref));
    vkm_engine_close(e);
    const char *counts[] = {"0", "1", "3"};
    for (int i = 0; i < 3; i++)
        for (int pf = 0; pf < 2; pf++) {
            setenv("VKMOE_STAGING_THREADS", counts[i], 1);
            e = NULL;
            CHECK_OK(open_engine_pf(path, z.minimum, VKM_EXPERT_LRU,
                                    pf ? VKM_PREFETCH_ON : VKM_PREFETCH_OFF, &e));
            if (!e) continue;
            memset(out, 0, nl * 4);
            CHECK_OK(run_prompt(e, 8, out));
            vkm_expert_stats st;
            vkm_engine_expert_stats(e, &st);
            CHECK(st.paged && st.misses > 0);
            CHECK_MSG(!memcmp(ref, out, nl * 4), "%s staging threads, prefetch %d: max diff %g",
                      counts[i], pf, logits_max_abs_diff(ref, out, nl));
            CHECK(vkm_gpu_validation_errors(vkm_engine_gpu(e)) == 0);
            vkm_engine_close(e);
        }
    const char *bad[] = {"x", "-1", "17", "3 "};
    for (int i = 0; i < 4; i++) {
        setenv("VKMOE_STAGING_THREADS", bad[i], 1);
        e = NULL;
        CHECK(open_engine(path, z.minimum, VKM_EXPERT_LRU, &e) == VKM_EINVAL && !e);
        CHECK_MSG(strstr(vkm_errmsg(), "VKMOE_STAGING_THREADS") != NULL, "message: %s",
                  vkm_errmsg());
    }
    /* not paged: the variable is not read */
    CHECK_OK(open_engine(path, 0, VKM_EXPERT_LRU, &e));
    vkm_engine_close(e);
    if (keep)
        setenv("VKMOE_STAGING_THREADS", keep, 1);
    else
        unsetenv("VKMOE_STAGING_THREADS");
    free(keep);
    free(ref);
    free(out);
}

/* ---------------------------------------------------------------------- gpu copies ---- */

static void test_copy(void) {
    vkm_engine *e = NULL;
    CHECK_OK(open_engine(VKMOE_FIXTURES_DIR "/tiny-v3-f32.gguf", 0, 0, &e));
    if (!e) return;
    vkm_gpu *gpu = vkm_engine_gpu(e);
    vkm_gpu_buf *h = NULL, *d = NULL;
    CHECK_OK(vkm_gpu_buf_create(gpu, 4096, VKM_BUF_HOST, &h));
    CHECK_OK(vkm_gpu_buf_create(gpu, 4096, VKM_BUF_DEVICE, &d));
    unsigned char *map = h ? vkm_gpu_buf_map(h) : NULL;
    CHECK(map != NULL);
    if (map && d) {
        for (int i = 0; i < 4096; i++) map[i] = (unsigned char)(i * 7 + 3);
        unsigned char zero[4096] = {0}, got[4096];
        CHECK_OK(vkm_gpu_upload(gpu, d, 0, zero, sizeof zero));
        CHECK_OK(vkm_gpu_copy(gpu, h, 100, d, 1000, 1234));  /* host -> device */
        CHECK_OK(vkm_gpu_copy(gpu, d, 1000, d, 3000, 1000)); /* within a buffer, disjoint */
        CHECK_OK(vkm_gpu_download(gpu, d, 0, got, sizeof got));
        bool ok = true;
        for (int i = 0; i < 4096; i++) {
            unsigned char want = 0;
            if (i >= 1000 && i < 2234) want = map[i - 900];
            if (i >= 3000 && i < 4000) want = map[i - 2900];
            ok &= got[i] == want;
        }
        CHECK(ok);
        CHECK_OK(vkm_gpu_copy(gpu, h, 0, d, 0, 0)); /* empty */
        CHECK(vkm_gpu_copy(gpu, h, 4000, d, 0, 100) == VKM_EINVAL);
        CHECK(vkm_gpu_copy(gpu, h, 0, d, 4095, 2) == VKM_EINVAL);
        CHECK(vkm_gpu_copy(gpu, d, 0, d, 100, 200) == VKM_EINVAL); /* overlapping */
        CHECK(vkm_gpu_copy(gpu, NULL, 0, d, 0, 4) == VKM_EINVAL);
    }
    vkm_gpu_buf_destroy(gpu, h);
    vkm_gpu_buf_destroy(gpu, d);
    CHECK(vkm_gpu_validation_errors(gpu) == 0);
    vkm_engine_close(e);
}

/* vkm_gpu_copy_async and friends: host -> device copies through several staging buffers
 * without host waits, a batch that waits for their tickets and reads the bytes back in-batch
 * (vkm_gpu_record_copy), more copies than the command buffer ring holds, and bad arguments. */
static void test_copy_async(void) {
    vkm_engine *e = NULL;
    CHECK_OK(open_engine(VKMOE_FIXTURES_DIR "/tiny-v3-f32.gguf", 0, 0, &e));
    if (!e) return;
    vkm_gpu *gpu = vkm_engine_gpu(e);
    enum { N = 200, PIECE = 1024, RING = 3 };
    vkm_gpu_buf *h[RING] = {0}, *d = NULL, *back = NULL;
    for (int i = 0; i < RING; i++) CHECK_OK(vkm_gpu_buf_create(gpu, PIECE, VKM_BUF_HOST, &h[i]));
    CHECK_OK(vkm_gpu_buf_create(gpu, (size_t)N * PIECE, VKM_BUF_DEVICE, &d));
    CHECK_OK(vkm_gpu_buf_create(gpu, (size_t)N * PIECE, VKM_BUF_HOST, &back));
    uint64_t tickets[RING] = {0}, last = 0;
    bool ok = d && back;
    for (int p = 0; ok && p < N; p++) { /* piece p through ring buffer p % RING */
        const int r = p % RING;
        if (tickets[r]) CHECK_OK(vkm_gpu_ticket_wait(gpu, tickets[r]));
        unsigned char *m = vkm_gpu_buf_map(h[r]);
        for (int i = 0; i < PIECE; i++) m[i] = (unsigned char)(p * 31 + i * 7 + 1);
        uint64_t t = 0;
        CHECK_OK(vkm_gpu_copy_async(gpu, h[r], 0, d, (size_t)p * PIECE, PIECE, &t));
        ok &= t > last; /* tickets grow */
        tickets[r] = last = t;
    }
    CHECK(ok);
    /* a batch that waits on the device for the last ticket sees every piece */
    CHECK_OK(vkm_gpu_wait_ticket_on_next_submit(gpu, last));
    CHECK_OK(vkm_gpu_begin(gpu));
    CHECK_OK(vkm_gpu_record_copy(gpu, d, 0, back, 0, (size_t)N * PIECE));
    CHECK_OK(vkm_gpu_submit(gpu));
    const unsigned char *got = back ? vkm_gpu_buf_map(back) : NULL;
    for (int p = 0; got && p < N; p++)
        for (int i = 0; i < PIECE; i++)
            ok &= got[(size_t)p * PIECE + i] == (unsigned char)(p * 31 + i * 7 + 1);
    CHECK(ok && got);
    bool done = false;
    CHECK_OK(vkm_gpu_ticket_done(gpu, last, &done));
    CHECK(done); /* the batch waited for it */
    CHECK_OK(vkm_gpu_ticket_wait(gpu, last));
    CHECK_OK(vkm_gpu_ticket_wait(gpu, 0));
    CHECK(vkm_gpu_ticket_wait(gpu, last + 1000) == VKM_EINVAL); /* never issued */
    uint64_t t = 7;
    CHECK_OK(vkm_gpu_copy_async(gpu, h[0], 0, d, 0, 0, &t)); /* empty: ticket 0 */
    CHECK(t == 0);
    CHECK(vkm_gpu_copy_async(gpu, h[0], 1000, d, 0, 100, &t) == VKM_EINVAL);
    CHECK(vkm_gpu_copy_async(gpu, d, 0, d, 10, 100, &t) == VKM_EINVAL); /* overlapping */
    CHECK(vkm_gpu_record_copy(gpu, d, 0, back, 0, 16) == VKM_EINVAL);   /* no batch open */
    for (int i = 0; i < RING; i++) vkm_gpu_buf_destroy(gpu, h[i]);
    vkm_gpu_buf_destroy(gpu, d);
    vkm_gpu_buf_destroy(gpu, back);
    CHECK(vkm_gpu_validation_errors(gpu) == 0);
    vkm_engine_close(e);
}

int main(void) {
    if (logits_read_prompt(g_ids, N_PROMPT) != N_PROMPT) {
        CHECK(!"prompt.ids");
        return check_done();
    }
    setenv("VKMOE_STAGING_PIECE", "256", 0); /* split the fixtures' small matrices too */
    gpu_keep_open();                         /* many engines follow */
    vkm_engine *e = NULL;
    int rc = open_engine(VKMOE_FIXTURES_DIR "/tiny-v3-f32.gguf", 0, 0, &e);
    if (rc == VKM_ENODEV) check_skip(vkm_errmsg());
    CHECK_OK(rc);
    vkm_engine_close(e);
    /* a bad policy, a bad prefetch mode */
    CHECK(open_engine(VKMOE_FIXTURES_DIR "/tiny-v3-f32.gguf", 700000, 9, &e) == VKM_EINVAL);
    CHECK(open_engine_pf(VKMOE_FIXTURES_DIR "/tiny-v3-f32.gguf", 700000, 0, 3, &e) == VKM_EINVAL);
    test_copy();
    test_copy_async();
    test_staging_threads();
    run_fixture("tiny-v3-f32", N_PROMPT); /* every token stepped */
    test_shrink("tiny-v3-f32");
    run_fixture("small-v3-q4_k_m", 13); /* 20 + 13: lavapipe is slow */
    gpu_keep_close();
    return check_done();
}
