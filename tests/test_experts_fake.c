/* test_experts_fake.c - the expert scheduler's decisions (core/experts.c over core/pager.c) and the
 * host side of decode steps, on the recording fake of gpu.h (tests/fake_gpu.h): a discrete GPU
 * with a transfer queue that does not exist, so this runs without Vulkan (CPU-only label, also
 * under ASan). The fake queues asynchronous copies until someone waits for them, so a slot read
 * before its upload completed, or a staging chunk reused before its copy ran, shows.
 *
 * For the fixture models paged at their minimum budget and at half of their experts, with LRU and
 * LFU, prefetch on and off, the experts imported from the file mapping or copied through the
 * staging ring (VKMOE_IMPORT=off): seeded random choices of 1-8 tokens per MoE layer are paged
 * round by round through vkm_engine_expert_page, as forward.c does. After each round, for the
 * batch that reads the round's slots (submitted as the forward pass would): no slot it uses is
 * still being written (the plan made that batch wait for every upload into them), the slots hold
 * exactly their experts' bytes from the file, every chosen expert is in exactly one round, and the
 * counters add up (hits + misses = distinct choices, uploaded bytes = bytes the copies moved).
 * Then whole decode steps through a session: unpaged, one submit and one host wait per step on a
 * discrete GPU; the dispatches per decode step of the GPU layout on NVIDIA- and AMD-like devices
 * (what the kernel plan's fused forms give) pinned per fixture, paged or not, so a fusion cannot
 * silently fall back. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "engine.h"
#include "fake_gpu.h"
#include "model.h"
#include "pager.h"
#include "vkmoe.h"

#define MAX_TOK 8

static uint64_t g_rng = 0x9e3779b97f4a7c15ull;
static uint32_t rnd(uint32_t n) {
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return (uint32_t)(g_rng % n);
}

static int open_fake(const char *path, uint64_t budget, int policy, int prefetch, vkm_engine **e) {
    vkm_engine_opts o = {.model_path = path,
                         .device = -1,
                         .quiet = true,
                         .vram_budget = budget,
                         .expert_policy = policy,
                         .prefetch = prefetch,
                         .kernels = VKM_KERNELS_AUTO};
    return vkm_engine_open(&o, e);
}

/* The expert matrices of layer il (host tensors from the file, device slot stacks). */
typedef struct stacks {
    int n;
    const vkm_tensor *t[4];
    const vkm_dtensor *d[4];
    size_t mat[4];
} stacks;

static void layer_stacks(vkm_engine *e, uint32_t il, stacks *s) {
    const vkm_layer *L = &vkm_engine_model(e)->layers[il];
    const vkm_dlayer *D = &vkm_engine_dmodel(e)->layers[il];
    const vkm_tensor *t[4] = {&L->ffn_gate_exps, &L->ffn_up_exps, &L->ffn_gate_up_exps,
                              &L->ffn_down_exps};
    const vkm_dtensor *d[4] = {&D->ffn_gate_exps, &D->ffn_up_exps, &D->ffn_gate_up_exps,
                               &D->ffn_down_exps};
    s->n = 0;
    for (int k = 0; k < 4; k++) {
        if (!t[k]->data || !d[k]->buf) continue;
        s->t[s->n] = t[k];
        s->d[s->n] = d[k];
        s->mat[s->n] = (size_t)t[k]->ne[1] * t[k]->row_bytes;
        s->n++;
    }
}

typedef struct tally {
    uint64_t requests; /* distinct (layer call, expert) */
    uint64_t rounds, multi_round_layers;
} tally;

/* Pages one MoE layer's choices sel[n_tok][K] as forward.c does and checks every round. */
static void page_layer(vkm_engine *e, uint32_t il, const int32_t *sel, uint32_t n_tok, tally *ty) {
    const vkm_hparams *hp = &vkm_engine_model(e)->hp;
    const uint32_t X = hp->n_expert, K = hp->n_expert_used, n_sel = n_tok * K;
    vkm_gpu *g = vkm_engine_gpu(e);
    int32_t *ranges = xmalloc(2 * X * sizeof *ranges);
    int *seen = xmalloc(X * sizeof *seen);
    vkm_pager_expert_ranges(sel, n_sel, X, ranges);
    uint32_t distinct = 0;
    for (uint32_t x = 0; x < X; x++) distinct += ranges[2 * x + 1] > 0;
    ty->requests += distinct;
    stacks st;
    layer_stacks(e, il, &st);
    CHECK(st.n >= 2);
    bool last = false;
    uint32_t round = 0;
    for (; !last && round <= X; round++) {
        vkm_fwd_expert_plan plan;
        int rc = vkm_engine_expert_page(e, il, round, round == 0 ? sel : NULL, n_sel, &plan);
        CHECK_MSG(rc == 0, "layer %u round %u: %s", il, round, vkm_errmsg());
        if (rc) break;
        last = plan.last;
        /* the batch of this round: it waits for what the plan asked (submit applies it) */
        CHECK_OK(vkm_gpu_begin(g));
        CHECK_OK(vkm_gpu_submit(g));
        const int32_t *mats =
            (const int32_t *)((const char *)vkm_gpu_buf_map(plan.mats) + plan.mats_off);
        for (uint32_t j = 0; j < plan.n_mat; j++) {
            const int32_t first = mats[2 * j], count = mats[2 * j + 1];
            if (count <= 0) continue;
            int32_t x = -1;
            for (uint32_t y = 0; y < X; y++)
                if (ranges[2 * y + 1] == count && ranges[2 * y] == first) x = (int32_t)y;
            CHECK_MSG(x >= 0, "layer %u round %u slot %u: range (%d, %d) of no chosen expert", il,
                      round, plan.base + j, first, count);
            if (x < 0) continue;
            seen[x]++;
            const uint32_t s = plan.base + j;
            for (int k = 0; k < st.n; k++) {
                const size_t off = st.d[k]->off + (size_t)s * st.mat[k];
                CHECK_MSG(!fake_gpu_range_pending(g, st.d[k]->buf, off, st.mat[k]),
                          "layer %u expert %d: slot %u read while its upload is in flight", il, x,
                          s);
                const uint8_t *dev = fake_gpu_buf_bytes(st.d[k]->buf) + off;
                const uint8_t *host = (const uint8_t *)st.t[k]->data + (size_t)x * st.mat[k];
                CHECK_MSG(!memcmp(dev, host, st.mat[k]),
                          "layer %u expert %d: slot %u does not hold its bytes (kind %d)", il, x, s,
                          k);
            }
        }
    }
    CHECK_MSG(last, "layer %u: no last round after %u", il, round);
    ty->rounds += round;
    ty->multi_round_layers += round > 1;
    for (uint32_t x = 0; x < X; x++)
        CHECK_MSG(seen[x] == (ranges[2 * x + 1] > 0),
                  "layer %u expert %u: in %d rounds, chosen by %d entries", il, x, seen[x],
                  ranges[2 * x + 1]);
    free(ranges);
    free(seen);
}

/* Random choices: per token K distinct experts (a skewed draw: half of the picks from the first
 * quarter of the experts, so that there are hits and evictions). */
static void random_sel(uint32_t X, uint32_t K, uint32_t n_tok, int32_t *sel) {
    for (uint32_t t = 0; t < n_tok; t++)
        for (uint32_t k = 0; k < K; k++) {
            int32_t x;
            bool dup;
            do {
                x = (int32_t)(rnd(2) ? rnd(X / 4 ? X / 4 : 1) : rnd(X));
                dup = false;
                for (uint32_t j = 0; j < k; j++) dup |= sel[t * K + j] == x;
            } while (dup);
            sel[t * K + k] = x;
        }
}

static void run_schedule(const char *path, uint64_t budget, int policy, int prefetch,
                         const char *what) {
    vkm_engine *e = NULL;
    int rc = open_fake(path, budget, policy, prefetch, &e);
    CHECK_MSG(rc == 0, "%s: open: %s", what, vkm_errmsg());
    if (rc) return;
    CHECK(vkm_engine_paged(e));
    const vkm_hparams *hp = &vkm_engine_model(e)->hp;
    const uint32_t X = hp->n_expert, K = hp->n_expert_used;
    vkm_gpu *g = vkm_engine_gpu(e);
    fake_gpu_stats s0;
    fake_gpu_stats_get(g, &s0);
    vkm_engine_expert_stats_reset(e);
    int32_t sel[MAX_TOK * 64];
    tally ty = {0};
    for (int step = 0; step < 40; step++) {
        const uint32_t n_tok = step % 3 == 0 ? 1 + rnd(MAX_TOK) : 1;
        for (uint32_t il = 0; il < hp->n_layer; il++) {
            if (!vkm_engine_model(e)->layers[il].moe) continue;
            random_sel(X, K, n_tok, sel);
            page_layer(e, il, sel, n_tok, &ty);
            /* speculative prefetch of the next MoE layer's guess, as the session does */
            const int next = vkm_engine_prefetch_target(e, il);
            if (next >= 0) {
                int32_t guess[64];
                random_sel(X, K, 1, guess);
                CHECK_OK(vkm_engine_expert_prefetch(e, (uint32_t)next, guess, K));
            }
        }
    }
    vkm_expert_stats es;
    vkm_engine_expert_stats(e, &es);
    fake_gpu_stats s1;
    fake_gpu_stats_get(g, &s1);
    CHECK_MSG(es.hits + es.misses == ty.requests, "%s: hits %llu + misses %llu != %llu requests",
              what, (unsigned long long)es.hits, (unsigned long long)es.misses,
              (unsigned long long)ty.requests);
    CHECK_MSG(es.misses > 0 && (es.hits > 0 || strstr(what, "minimum")),
              "%s: %llu hits, %llu misses", what, (unsigned long long)es.hits,
              (unsigned long long)es.misses);
    CHECK_MSG(es.uploaded_bytes == s1.async_bytes - s0.async_bytes,
              "%s: %llu bytes counted uploaded, the copies moved %llu", what,
              (unsigned long long)es.uploaded_bytes,
              (unsigned long long)(s1.async_bytes - s0.async_bytes));
    CHECK_MSG(s1.torn_reads == 0, "%s: %llu torn reads", what, (unsigned long long)s1.torn_reads);
    if (prefetch == VKM_PREFETCH_ON) CHECK_MSG(es.prefetched > 0, "%s: nothing prefetched", what);
    printf("%s: %llu requests, %llu rounds (%llu layers in several), hits %llu misses %llu "
           "prefetched %llu used %llu, %llu copies (%llu still in flight)\n",
           what, (unsigned long long)ty.requests, (unsigned long long)ty.rounds,
           (unsigned long long)ty.multi_round_layers, (unsigned long long)es.hits,
           (unsigned long long)es.misses, (unsigned long long)es.prefetched,
           (unsigned long long)es.prefetch_used,
           (unsigned long long)(s1.async_copies - s0.async_copies), (unsigned long long)s1.pending);
    if (budget && strstr(what, "minimum")) CHECK(ty.multi_round_layers > 0);
    vkm_engine_close(e);
}

static void test_schedules(const char *path, const char *name) {
    vkm_paging_budget pb;
    CHECK_OK(vkm_experts_budget(path, 0, &pb));
    const uint64_t half = pb.main_bytes + pb.ranges_bytes + pb.expert_bytes / 2;
    const uint64_t budgets[2] = {pb.minimum_bytes, half};
    const char *bname[2] = {"minimum", "half"};
    const char *imports[2] = {"auto", "off"};
    for (int im = 0; im < 2; im++) {
        setenv("VKMOE_IMPORT", imports[im], 1);
        for (int b = 0; b < 2; b++)
            for (int pol = 0; pol < 2; pol++)
                for (int pf = 0; pf < 2; pf++) {
                    char what[160];
                    snprintf(what, sizeof what, "%s %s budget %s import %s prefetch %s", name,
                             bname[b], pol ? "LFU" : "LRU", imports[im], pf ? "on" : "off");
                    run_schedule(path, budgets[b], pol ? VKM_EXPERT_LFU : VKM_EXPERT_LRU,
                                 pf ? VKM_PREFETCH_ON : VKM_PREFETCH_OFF, what);
                }
    }
    unsetenv("VKMOE_IMPORT");
}

/* Decode steps through a session: returns the dispatches of one step (0 on failure). */
static uint64_t decode_steps(const char *path, uint64_t budget, const char *what) {
    vkm_engine *e = NULL;
    int rc = open_fake(path, budget, VKM_EXPERT_LRU, VKM_PREFETCH_OFF, &e);
    CHECK_MSG(rc == 0, "%s: open: %s", what, vkm_errmsg());
    if (rc) return 0;
    vkm_session *s = NULL;
    vkm_session_opts so = {.n_ctx = 64, .max_batch = 16};
    rc = vkm_session_create(e, &so, &s);
    CHECK_MSG(rc == 0, "%s: session: %s", what, vkm_errmsg());
    uint64_t per_step = 0;
    if (!rc) {
        vkm_engine_info info;
        vkm_engine_get_info(e, &info);
        float *logits = xmalloc((size_t)info.n_vocab * sizeof *logits);
        const int32_t prompt[5] = {1, 2, 3, 4, 5};
        CHECK_OK(vkm_session_eval(s, prompt, 5, false, logits));
        vkm_gpu *g = vkm_engine_gpu(e);
        fake_gpu_stats f0, f1;
        fake_gpu_stats_get(g, &f0);
        for (int i = 0; i < 4; i++) {
            const int32_t t = 6 + i;
            CHECK_OK(vkm_session_eval(s, &t, 1, false, logits));
        }
        fake_gpu_stats_get(g, &f1);
        vkm_dispatch_stats ds;
        vkm_session_dispatch_stats(s, &ds);
        CHECK(ds.decode_steps == 4);
        per_step = ds.decode_steps ? ds.decode_dispatches / ds.decode_steps : 0;
        CHECK(ds.decode_dispatches == 4 * per_step);
        CHECK(f1.dispatches - f0.dispatches == ds.decode_dispatches);
        CHECK(f1.torn_reads == 0);
        if (!budget) {
            CHECK_MSG(f1.submits - f0.submits == 4, "%s: %llu submits for 4 steps", what,
                      (unsigned long long)(f1.submits - f0.submits));
            CHECK_MSG(ds.decode_waits == 4, "%s: %llu host waits for 4 steps", what,
                      (unsigned long long)ds.decode_waits);
        }
        printf("%s: %llu dispatches, %.2f host waits, %.2f submits per decode step\n", what,
               (unsigned long long)per_step, ds.decode_waits / 4.0,
               (double)(f1.submits - f0.submits) / 4.0);
        free(logits);
    }
    vkm_session_destroy(s);
    vkm_engine_close(e);
    return per_step;
}

/* Every buffer creation of an engine open failing in turn (out of device memory): the open fails
 * cleanly or goes on (paging the experts when the expert pool's buffers failed), and a decode step
 * then runs; ASan checks the error paths free what they made. */
static void test_alloc_faults(const char *path, const char *name) {
    int opened = 0, paged = 0, failed = 0;
    /* small buffers (a 64 KiB weight window), so that the pools take several each and the
     * experts' can fail after the others' were made */
    vkm_gpu_device_info *cfg = fake_gpu_config();
    const vkm_gpu_device_info saved = *cfg;
    cfg->weight_window_bytes = 64 << 10;
    for (int nth = 1; nth < 400; nth++) {
        vkm_gpu_fault_set(VKM_FAULT_DEVICE_ALLOC_NTH, nth);
        vkm_engine *e = NULL;
        int rc = open_fake(path, 0, VKM_EXPERT_LRU, VKM_PREFETCH_OFF, &e);
        const bool fired = !vkm_gpu_fault_pending(VKM_FAULT_DEVICE_ALLOC_NTH);
        vkm_gpu_fault_set(VKM_FAULT_NONE, 0);
        if (rc) {
            CHECK_MSG(rc == VKM_EDEVMEM, "%s: fault %d: open gave %d (%s)", name, nth, rc,
                      vkm_errmsg());
            failed++;
            continue;
        }
        opened++;
        paged += vkm_engine_paged(e);
        vkm_session *s = NULL;
        vkm_session_opts so = {.n_ctx = 16, .max_batch = 4};
        if (vkm_session_create(e, &so, &s) == 0) {
            const int32_t t[2] = {1, 2};
            CHECK_OK(vkm_session_eval(s, t, 2, false, NULL));
            vkm_session_destroy(s);
        }
        vkm_engine_close(e);
        if (!fired) break; /* the open creates fewer buffers: every one has failed once */
    }
    *cfg = saved;
    printf("%s: buffer faults at open: %d failed cleanly, %d opened (%d paging the experts)\n",
           name, failed, opened, paged);
    CHECK(failed > 0 && paged > 0);
}

int main(void) {
    const char *tiny = VKMOE_FIXTURES_DIR "/tiny-v3-f32.gguf";
    const char *small = VKMOE_FIXTURES_DIR "/small-v3-q4_k_m.gguf";
    FILE *f = fopen(tiny, "rb");
    if (!f) {
        check_skip("fixtures not found");
    }
    fclose(f);
    test_schedules(tiny, "tiny-v3-f32");
    test_schedules(small, "small-v3-q4_k_m");
    setenv("VKMOE_IMPORT", "off", 1);
    test_alloc_faults(tiny, "tiny-v3-f32");
    test_alloc_faults(small, "small-v3-q4_k_m");
    unsetenv("VKMOE_IMPORT");

    /* The GPU layout's decode step on discrete devices: dispatches pinned per fixture (the
     * kernel plan's fused forms: the shared expert as one more matrix of the routed dispatches,
     * its tensors placed after the routed ones; the integer-dot GEMVs of the quantized fixture
     * add one activation quantization per matmul input that no norm wrote in 8-bit form (the
     * norms' q8 variants: attention's and the FFN's inputs, q_a's norm and the output's), 4 per
     * layer: the F32 fixture has none), one submit and one host wait per step unpaged; paged at
     * half the experts, one more of each per MoE layer, the gated form (gate and up slot stacks
     * in one buffer) and the shared expert apart (2 more dispatches per MoE layer, 3 with integer
     * dot products: its down projection quantizes its own input). */
    struct {
        const char *path, *name;
        uint64_t idot, flt; /* dispatches per decode step: int-dot accelerated or not */
        uint64_t paged;     /* idot, half the experts paged */
    } pins[] = {{tiny, "tiny-v3-f32", 43, 43, 47}, {small, "small-v3-q4_k_m", 55, 43, 61}};
    vkm_gpu_device_info *cfg = fake_gpu_config();
    const vkm_gpu_device_info saved = *cfg;
    for (size_t i = 0; i < sizeof pins / sizeof *pins; i++) {
        char what[128];
        for (int dev = 0; dev < 3; dev++) {
            *cfg = saved;
            const char *dname = "NVIDIA-like";
            if (dev == 1) {
                cfg->vendor = VKM_VENDOR_AMD;
                cfg->vendor_id = 0x1002;
                cfg->device_id = 0x744c;
                cfg->subgroup_size = 64;
                snprintf(cfg->name, sizeof cfg->name, "fake AMD Radeon RX 7900 XTX (RADV GFX1100)");
                dname = "AMD-like";
            } else if (dev == 2) {
                cfg->int_dot = cfg->int_dot_accel = false;
                dname = "NVIDIA-like without integer dot products";
            }
            snprintf(what, sizeof what, "%s %s", pins[i].name, dname);
            const uint64_t n = decode_steps(pins[i].path, 0, what);
            const uint64_t want = dev == 2 ? pins[i].flt : pins[i].idot;
            CHECK_MSG(n == want, "%s: %llu dispatches per decode step, pinned %llu", what,
                      (unsigned long long)n, (unsigned long long)want);
        }
        *cfg = saved;
        snprintf(what, sizeof what, "%s NVIDIA-like, half the experts paged", pins[i].name);
        vkm_paging_budget pb;
        CHECK_OK(vkm_experts_budget(pins[i].path, 0, &pb));
        const uint64_t paged =
            decode_steps(pins[i].path, pb.main_bytes + pb.ranges_bytes + pb.expert_bytes / 2, what);
        CHECK_MSG(paged == pins[i].paged, "%s: %llu dispatches per decode step, pinned %llu", what,
                  (unsigned long long)paged, (unsigned long long)pins[i].paged);
    }
    return check_done();
}
