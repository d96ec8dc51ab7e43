/* test_gpu_multi.c - continuous batching: vkm_session_eval_multi (core/session.c, forward.c's
 * multi-sequence batches) against each sequence evaluated alone, on the first Vulkan device with
 * validation on; skips (77) without a device. ctest runs it in the device's own kernel layout and
 * in the GPU layout (VKMOE_KERNELS=gpu).
 *
 * Four sequences of different prompts (slices of fixtures/prompt.ids) and lengths: a first pass
 * prefilling three of them together, then passes mixing single decode tokens with a prompt chunk
 * of a fourth sequence, in changing orders and subsets (sequences left out of a pass). Every
 * sequence's logits after each pass must equal those of its own session evaluating the same tokens
 * alone, up to the rounding of batched kernels: max abs difference <= 5e-4 (1 + max |logit|) and
 * the same argmax (the tokens fed are the alone run's greedy choices, so a near tie cannot make the
 * runs diverge; with the integer-dot GEMVs of accelerating GPUs, whose 8-bit activations only
 * some batch shapes get, mean KL <= 0.01 instead). The same with the experts paged at the minimum
 * budget, and with every routed expert computed on the CPU (cpu_moe: its 8-bit activations are
 * quantized per token, so batching changes nothing there). Every batched run again with the
 * sessions' caches in one KV pool (vkm_kv_pool_create): the same checks, and where the plan has
 * the pooled attention (GPU layout, MLA) each pass of N sequences records 2 (N - 1) dispatches per
 * layer fewer (one cache store and one attention for all); a full pool refuses a session. Bad
 * calls (the same session twice, more
 * tokens than the batch, a token outside the vocabulary, a context overflow) are refused and change
 * nothing. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "engine.h"
#include "gpu.h"
#include "kernels.h"
#include "logits_check.h"
#include "vkmoe.h"

#define N_IDS 33
#define N_CTX 48
#define N_SEQ 4
#define N_PASS 5

static int32_t g_ids[N_IDS];

/* What each sequence evaluates in pass p (n tokens from its token list, 0 = not in the pass). */
static const int g_plan[N_PASS][N_SEQ] = {
    {7, 9, 1, 0}, /* prefill three prompts together */
    {1, 1, 1, 5}, /* decode, with a prompt chunk of the fourth */
    {1, 0, 1, 1}, /* the second one is left out (evaluated alone after this pass) */
    {1, 1, 0, 4}, /* a chunk after decode tokens */
    {1, 1, 1, 1}, /* all decoding */
};
/* The order of the sequences in each pass (a permutation). */
static const int g_order[N_PASS][N_SEQ] = {
    {0, 1, 2, 3}, {0, 3, 1, 2}, {2, 0, 3, 1}, {3, 1, 0, 2}, {1, 3, 2, 0}};

typedef struct seqdata {
    int32_t toks[N_CTX]; /* the sequence's tokens: its prompt, then the alone run's choices */
    int n_toks;
    float *want[N_PASS]; /* [V]: the logits alone after each pass it takes part in */
} seqdata;

static int open_engine(const char *path, uint64_t budget, bool cpu_moe, vkm_engine **e) {
    vkm_engine_opts o = {.model_path = path,
                         .device = -1,
                         .validation = true,
                         .quiet = true,
                         .vram_budget = budget,
                         .prefetch = VKM_PREFETCH_OFF,
                         .cpu_moe = cpu_moe};
    int rc = vkm_kernels_env(&o.kernels); /* the ctest variant forces a layout */
    return rc ? rc : vkm_engine_open(&o, e);
}

/* The prompt of sequence i: the first tokens it evaluates are these ids. */
static const int32_t *prompt_of(int i) {
    static const int start[N_SEQ] = {0, 3, 5, 11};
    return g_ids + start[i];
}

/* Each sequence alone: for every pass, its tokens of that pass in one eval; a pass's later tokens
 * are the argmax of the previous logits while the sequence decodes (n == 1 after its prompt). */
static void run_alone(vkm_engine *e, seqdata *sd, int V) {
    for (int i = 0; i < N_SEQ; i++) {
        vkm_session *s = NULL;
        vkm_session_opts so = {N_CTX, false, 16, NULL};
        CHECK_OK(vkm_session_create(e, &so, &s));
        if (!s) return;
        const int32_t *pr = prompt_of(i);
        sd[i].n_toks = 0;
        for (int p = 0; p < N_PASS; p++) {
            const int n = g_plan[p][i];
            if (!n) continue;
            const bool prompt = n > 1 || (p == 0 && n == 1);
            int32_t *dst = sd[i].toks + sd[i].n_toks;
            if (prompt) {
                memcpy(dst, pr, (size_t)n * 4);
                pr += n;
            } else {
                float *prev = NULL;
                for (int q = p - 1; q >= 0 && !prev; q--) prev = sd[i].want[q];
                dst[0] = (int32_t)logits_argmax(prev, V);
            }
            sd[i].want[p] = xmalloc((size_t)V * sizeof(float));
            CHECK_OK(vkm_session_eval(s, dst, n, false, sd[i].want[p]));
            sd[i].n_toks += n;
        }
        vkm_session_destroy(s);
    }
}

/* The same passes batched, each in one vkm_session_eval_multi through the first session; with
 * `pooled` the sessions' caches are the slots of one KV pool. last[p]: the dispatches of pass p. */
static void run_batched(vkm_engine *e, seqdata *sd, int V, const char *what, bool pooled,
                        uint64_t *last) {
    vkm_session *s[N_SEQ] = {0};
    vkm_kv_pool *pool = NULL;
    if (pooled) {
        const vkm_session_opts po = {N_CTX, false, 0, NULL};
        CHECK_OK(vkm_kv_pool_create(e, N_SEQ, &po, &pool));
        if (!pool) return;
    }
    for (int i = 0; i < N_SEQ; i++) {
        /* the first session carries the batch (its work buffer); the others only their caches */
        vkm_session_opts so = {N_CTX, false, i == 0 ? 24 : 1, pool};
        CHECK_OK(vkm_session_create(e, &so, &s[i]));
        if (!s[i]) goto out;
    }
    if (pooled) { /* every slot is taken */
        vkm_session *extra = NULL;
        const vkm_session_opts so = {0, false, 1, pool};
        CHECK(vkm_session_create(e, &so, &extra) == VKM_EINVAL && !extra);
    }
    /* a plan with integer-dot GEMVs (accelerating GPUs) quantizes the activations of the GEMVs
     * but not of the batched GEMMs, so batch shapes change the logits by more than rounding */
    bool idot = false;
    for (int t = 0; t < VKM_QTYPE_COUNT; t++) idot |= vkm_gpu_plan(vkm_engine_gpu(e))->gemv_idot[t];
    int done[N_SEQ] = {0};
    float *got = xmalloc((size_t)N_SEQ * V * sizeof(float));
    for (int p = 0; p < N_PASS; p++) {
        vkm_seq_eval q[N_SEQ];
        int nq = 0;
        for (int k = 0; k < N_SEQ; k++) {
            const int i = g_order[p][k], n = g_plan[p][i];
            if (!n) continue;
            q[nq++] = (vkm_seq_eval){s[i], sd[i].toks + done[i], n, got + (size_t)i * V};
        }
        CHECK_OK(vkm_session_eval_multi(s[0], q, nq));
        vkm_dispatch_stats ds;
        vkm_session_dispatch_stats(s[0], &ds);
        last[p] = ds.last;
        for (int k = 0; k < nq; k++) {
            const int i = (int)(q[k].logits - got) / V;
            done[i] += q[k].n;
            CHECK_MSG(vkm_session_n_past(s[i]) == done[i], "%s pass %d seq %d: n_past %d, want %d",
                      what, p, i, vkm_session_n_past(s[i]), done[i]);
            const float *want = sd[i].want[p];
            double mx = 0.0;
            for (int v = 0; v < V; v++) mx = fmax(mx, fabs(want[v]));
            const double d = logits_max_abs_diff(want, q[k].logits, (size_t)V);
            const int a = logits_argmax(want, V), b = logits_argmax(q[k].logits, V);
            if (idot) { /* 8-bit activations in some matmuls and not others: distributions */
                const logits_stats st = logits_compare(want, q[k].logits, 1, V, false);
                CHECK_MSG(st.mean_kl <= 0.01, "%s pass %d seq %d: KL %g against alone (int dot)",
                          what, p, i, st.mean_kl);
                continue;
            }
            CHECK_MSG(d <= 5e-4 * (1.0 + mx) && a == b,
                      "%s pass %d seq %d (%d tokens): max abs diff %g (max |logit| %g), argmax "
                      "%d vs %d alone",
                      what, p, i, q[k].n, d, mx, b, a);
        }
    }
    free(got);
out:
    for (int i = 0; i < N_SEQ; i++) vkm_session_destroy(s[i]);
    vkm_kv_pool_destroy(pool);
}

/* vkm_session_warmup_batched builds what batched decode steps of up to N_SEQ sequences use. */
static void check_warmup(vkm_engine *e) {
    vkm_session *s[N_SEQ] = {0};
    vkm_gpu *gpu = vkm_engine_gpu(e);
    for (int i = 0; i < N_SEQ; i++) {
        vkm_session_opts so = {N_CTX, false, i == 0 ? 24 : 1, NULL};
        CHECK_OK(vkm_session_create(e, &so, &s[i]));
        if (!s[i]) goto out;
    }
    CHECK_OK(vkm_session_warmup(s[0], 0));
    const int k0 = vkm_gpu_kernel_count(gpu);
    CHECK_OK(vkm_session_warmup_batched(s[0], N_SEQ, NULL, NULL));
    const int k1 = vkm_gpu_kernel_count(gpu);
    CHECK_MSG(vkm_session_n_past(s[0]) == 0, "warm-up: %d past", vkm_session_n_past(s[0]));
    vkm_seq_eval q[N_SEQ];
    const size_t V = vkm_engine_model(e)->hp.n_vocab;
    float *lg = xmalloc(N_SEQ * V * sizeof *lg);
    for (int n = 2; n <= N_SEQ; n++) {
        for (int i = 0; i < n; i++) q[i] = (vkm_seq_eval){s[i], g_ids + i, 1, lg + i * V};
        CHECK_OK(vkm_session_eval_multi(s[0], q, n));
        for (int i = 0; i < n; i++) CHECK_OK(vkm_session_truncate(s[i], 0));
    }
    CHECK_MSG(vkm_gpu_kernel_count(gpu) == k1,
              "batched warm-up built %d kernels, the steps %d more", k1 - k0,
              vkm_gpu_kernel_count(gpu) - k1);
    free(lg);
out:
    for (int i = 0; i < N_SEQ; i++) vkm_session_destroy(s[i]);
}

/* Refused calls change nothing. */
static void bad_calls(vkm_engine *e) {
    vkm_session *a = NULL, *b = NULL;
    vkm_session_opts big = {8, false, 4, NULL}, one = {8, false, 1, NULL};
    CHECK_OK(vkm_session_create(e, &big, &a));
    CHECK_OK(vkm_session_create(e, &one, &b));
    if (!a || !b) goto out;
    const int32_t t[4] = {g_ids[0], g_ids[1], g_ids[2], g_ids[3]};
    const int32_t bad_tok[1] = {(int32_t)vkm_engine_model(e)->hp.n_vocab};
    vkm_seq_eval twice[2] = {{a, t, 1, NULL}, {a, t, 1, NULL}};
    CHECK(vkm_session_eval_multi(a, twice, 2) == VKM_EINVAL);
    vkm_seq_eval over[2] = {{a, t, 3, NULL}, {b, t, 2, NULL}}; /* 5 tokens, batch of 4 */
    CHECK(vkm_session_eval_multi(a, over, 2) == VKM_EINVAL);
    vkm_seq_eval via_small[2] = {{a, t, 1, NULL}, {b, t, 1, NULL}}; /* b's batch is 1 */
    CHECK(vkm_session_eval_multi(b, via_small, 2) == VKM_EINVAL);
    vkm_seq_eval vocab[2] = {{a, t, 1, NULL}, {b, bad_tok, 1, NULL}};
    CHECK(vkm_session_eval_multi(a, vocab, 2) == VKM_ERANGE);
    CHECK(vkm_session_eval_multi(a, NULL, 1) == VKM_EINVAL);
    CHECK(vkm_session_eval_multi(a, twice, 0) == VKM_EINVAL);
    CHECK_OK(vkm_session_eval(b, t, 1, false, NULL)); /* b: 7 positions left */
    for (int i = 0; i < 6; i++) CHECK_OK(vkm_session_eval(b, t, 1, false, NULL));
    vkm_seq_eval full[2] = {{a, t, 1, NULL}, {b, t, 2, NULL}}; /* b has one position left */
    CHECK(vkm_session_eval_multi(a, full, 2) == VKM_ERANGE);
    CHECK(vkm_session_n_past(a) == 0 && vkm_session_n_past(b) == 7);
    vkm_seq_eval ok[2] = {{b, t, 1, NULL}, {a, t, 3, NULL}};
    CHECK_OK(vkm_session_eval_multi(a, ok, 2));
    CHECK(vkm_session_n_past(a) == 3 && vkm_session_n_past(b) == 8);
    /* KV pools: bad slot counts or context refused; a pool destroyed with a session still in it
     * goes with that session (it keeps working until then) */
    vkm_kv_pool *pool = NULL;
    CHECK(vkm_kv_pool_create(e, 0, NULL, &pool) == VKM_EINVAL && !pool);
    CHECK(vkm_kv_pool_create(e, 65537, NULL, &pool) == VKM_EINVAL && !pool);
    const vkm_session_opts bad_ctx = {-1, false, 0, NULL};
    CHECK(vkm_kv_pool_create(e, 2, &bad_ctx, &pool) == VKM_EINVAL && !pool);
    CHECK_OK(vkm_kv_pool_create(e, 1, &one, &pool));
    vkm_session *c = NULL;
    const vkm_session_opts in_pool = {0, false, 1, pool};
    if (pool) CHECK_OK(vkm_session_create(e, &in_pool, &c));
    vkm_kv_pool_destroy(pool);
    if (c) {
        CHECK_OK(vkm_session_eval(c, t, 2, false, NULL));
        CHECK(vkm_session_n_past(c) == 2 && vkm_session_n_ctx(c) == 8);
    }
    vkm_session_destroy(c);
out:
    vkm_session_destroy(a);
    vkm_session_destroy(b);
}

static void run_model(const char *path, bool paged, bool cpu_moe) {
    vkm_engine *e = NULL;
    uint64_t budget = 0;
    if (paged) {
        vkm_paging_budget pb;
        CHECK_OK(vkm_experts_budget(path, 0, &pb));
        budget = pb.minimum_bytes;
    }
    int rc = open_engine(path, budget, cpu_moe, &e);
    if (rc == VKM_ENODEV) check_skip(vkm_errmsg());
    CHECK_OK(rc);
    if (!e) return;
    CHECK_MSG(cpu_moe || vkm_engine_paged(e) == paged, "%s: paged %d", path, vkm_engine_paged(e));
    const int V = (int)vkm_engine_model(e)->hp.n_vocab;
    seqdata sd[N_SEQ];
    memset(sd, 0, sizeof sd);
    check_warmup(e); /* first: the other passes would build the kernels */
    run_alone(e, sd, V);
    char what[64];
    snprintf(what, sizeof what, "%s%s%s", strrchr(path, '/') + 1, paged ? " paged" : "",
             cpu_moe ? " cpu-moe" : "");
    uint64_t last[N_PASS], last_pooled[N_PASS];
    run_batched(e, sd, V, what, false, last);
    /* the same with the caches in one KV pool: the same logits; where the plan has the pooled
     * attention (GPU kernels), each MLA layer records one cache store and one attention for all
     * of a pass's sequences instead of one each */
    char pw[80];
    snprintf(pw, sizeof pw, "%s pooled", what);
    run_batched(e, sd, V, pw, true, last_pooled);
    const vkm_hparams *hp = &vkm_engine_model(e)->hp;
    const bool one = vkm_gpu_plan(vkm_engine_gpu(e))->fuse.attn_pool && hp->is_mla;
    for (int p = 0; p < N_PASS; p++) {
        int nq = 0;
        for (int i = 0; i < N_SEQ; i++) nq += g_plan[p][i] > 0;
        const uint64_t fewer = one ? 2ull * (uint64_t)(nq - 1) * hp->n_layer : 0;
        CHECK_MSG(last_pooled[p] + fewer == last[p],
                  "%s pass %d (%d sequences): %llu dispatches pooled, %llu apart", what, p, nq,
                  (unsigned long long)last_pooled[p], (unsigned long long)last[p]);
    }
    if (!paged && !cpu_moe) bad_calls(e);
    for (int i = 0; i < N_SEQ; i++)
        for (int p = 0; p < N_PASS; p++) free(sd[i].want[p]);
    vkm_engine_close(e);
}

int main(void) {
    if (logits_read_prompt(g_ids, N_IDS) != N_IDS) {
        CHECK(!"prompt.ids");
        return check_done();
    }
    run_model(VKMOE_FIXTURES_DIR "/tiny-v3-f32.gguf", false, false);
    run_model(VKMOE_FIXTURES_DIR "/tiny-v3-f32.gguf", true, false);
    run_model(VKMOE_FIXTURES_DIR "/tiny-v3-f32.gguf", false, true); /* experts on the CPU */
    run_model(VKMOE_FIXTURES_DIR "/small-v3-q4_k_m.gguf", false, false);
    return check_done();
}
