/* test_gpu_iq_forward.c - the GPU forward pass on the IQ fixtures (fixtures/iq: the small-v3 model
 * quantized by llama-quantize with an importance matrix to IQ1_S, IQ1_M, IQ2_XXS, IQ2_M, IQ3_XXS
 * and IQ4_XS mixes, which also hold IQ2_S, IQ3_S, IQ4_NL and K-quant tensors) against llama.cpp's
 * logits, on the first Vulkan device (lavapipe on CI) with validation on, in the kernel layout
 * VKMOE_KERNELS picks (ctest runs every layout); skips (77) without one.
 *
 * Lean on purpose (every model compiles its kernels on lavapipe; test_gpu_iq checks each IQ kernel
 * in every layout): per fixture, the 33-token prompt as one batch (F32 KV cache, as the fixtures
 * were made) with the README's quantized tolerance (mean KL <= 0.03, top-1 >= 85%); the last 5
 * tokens decoded one at a time against the batch (1e-3: the GEMV and GEMM kernels sum in other
 * orders; where the plan has integer-dot GEMVs, layout idot, decode multiplies 8-bit rounded
 * activations (the K-quant and IQ tensors), so the two are compared as distributions as
 * in test_gpu_forward: mean KL <= 0.01, top-1 >= 90%); and the batch again under a VRAM budget that
 * pages half of the experts, which must give the resident engine's logits (1e-4: the same kernels
 * on the same data). IQ1_M's top-1 is 80%: the CPU reference agrees with llama.cpp at 27 of 33
 * positions there too (its margins are tiny and llama.cpp rounds the activations to Q8_K; see
 * test_ref_forward). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "engine.h"
#include "gguf.h"
#include "gpu.h"
#include "kernels.h"
#include "logits_check.h"
#include "model.h"
#include "vkmoe.h"

#define N_PROMPT 33
#define N_CTX 64
#define N_STEP 5

static int32_t g_ids[N_PROMPT];

static int open_engine(const char *path, uint64_t budget, vkm_engine **e) {
    vkm_engine_opts o = {
        .model_path = path, .device = -1, .validation = true, .quiet = true, .vram_budget = budget};
    int rc = vkm_kernels_env(&o.kernels); /* a ctest variant may force a layout */
    return rc ? rc : vkm_engine_open(&o, e);
}

/* A budget that keeps the non-expert weights and about half of the expert bytes resident. */
static uint64_t half_budget(const vkm_model *m) {
    uint64_t main = 0, experts = 0;
    for (int64_t i = 0; i < vkm_gguf_n_tensors(m->gguf); i++) {
        const vkm_gguf_tensor *t = vkm_gguf_tensor_at(m->gguf, i);
        const uint64_t b = (t->nbytes + 4095) / 4096 * 4096;
        if (strstr(t->name, "_exps"))
            experts += b;
        else
            main += b;
    }
    return main + 8ull * m->hp.n_layer * m->hp.n_expert + 65536 + experts / 2;
}

static void run_fixture(const char *name, double min_top1) {
    char path[512], lpath[512];
    snprintf(path, sizeof path, "%s/iq/%s.gguf", VKMOE_FIXTURES_DIR, name);
    snprintf(lpath, sizeof lpath, "%s/iq/%s.logits.f32", VKMOE_FIXTURES_DIR, name);
    vkm_engine *e = NULL;
    CHECK_OK(open_engine(path, 0, &e));
    if (!e) return;
    const int V = (int)vkm_engine_model(e)->hp.n_vocab;
    const size_t nl = (size_t)N_PROMPT * V;
    float *llama = xmalloc(nl * 4), *batch = xmalloc(nl * 4), *other = xmalloc(nl * 4);
    CHECK(logits_read_f32(lpath, llama, nl) == 0);
    CHECK_OK(logits_gpu_prompt(e, g_ids, N_PROMPT, N_CTX, true, 0, 0, batch));
    const logits_stats st = logits_compare(llama, batch, N_PROMPT, V, false);
    printf("%-18s batch: mean KL %.3g  top-1 %.1f%%  max abs %.4g (vs llama.cpp)\n", name,
           st.mean_kl, 100.0 * st.top1, st.max_abs);
    CHECK_MSG(st.mean_kl <= 0.03, "%s: mean KL %g > 0.03", name, st.mean_kl);
    CHECK_MSG(st.top1 >= min_top1, "%s: top-1 %g < %g", name, st.top1, min_top1);

    CHECK_OK(logits_gpu_prompt(e, g_ids, N_PROMPT, N_CTX, true, 0, N_STEP, other));
    const double ds = logits_max_abs_diff(batch, other, nl);
    printf("%-18s %d batch + %d steps vs batch: max abs %.3g\n", name, N_PROMPT - N_STEP, N_STEP,
           ds);
    bool q8 = false; /* integer-dot GEMVs in the plan (layout idot): 8-bit X at decode only */
    for (uint32_t t = 0; t < VKM_QTYPE_COUNT; t++)
        q8 |= vkm_gpu_plan(vkm_engine_gpu(e))->gemv_idot[t];
    if (q8) {
        const logits_stats sq = logits_compare(batch, other, N_PROMPT, V, false);
        printf("%-18s idot steps vs batch: mean KL %.3g  top-1 %.1f%%\n", name, sq.mean_kl,
               100.0 * sq.top1);
        CHECK_MSG(sq.mean_kl <= 1e-2 && sq.top1 >= 0.9, "%s: steps vs batch KL %g top-1 %g", name,
                  sq.mean_kl, sq.top1);
    } else {
        CHECK_MSG(ds <= 1e-3, "%s: steps vs batch %g", name, ds);
    }
    const uint64_t budget = half_budget(vkm_engine_model(e));
    CHECK(vkm_gpu_validation_errors(vkm_engine_gpu(e)) == 0);
    vkm_engine_close(e);

    e = NULL;
    CHECK_OK(open_engine(path, budget, &e));
    if (e) {
        vkm_expert_stats es;
        vkm_engine_expert_stats(e, &es);
        CHECK_MSG(es.paged, "%s: a budget of %.2f MiB does not page", name, budget / 1048576.0);
        CHECK_OK(logits_gpu_prompt(e, g_ids, N_PROMPT, N_CTX, true, 0, 0, other));
        const double dp = logits_max_abs_diff(batch, other, nl);
        vkm_engine_expert_stats(e, &es);
        printf("%-18s paged (%.2f MiB budget, %u slots, %llu misses): vs resident max abs %.3g\n",
               name, budget / 1048576.0, es.n_slots, (unsigned long long)es.misses, dp);
        CHECK_MSG(dp <= 1e-4, "%s: paged vs resident %g", name, dp);
        CHECK(vkm_gpu_validation_errors(vkm_engine_gpu(e)) == 0);
        vkm_engine_close(e);
    }
    free(llama);
    free(batch);
    free(other);
}

int main(void) {
    if (logits_read_prompt(g_ids, N_PROMPT) != N_PROMPT) {
        CHECK(!"prompt.ids");
        return check_done();
    }
    vkm_engine *e = NULL;
    int rc = open_engine(VKMOE_FIXTURES_DIR "/iq/small-v3-iq4_xs.gguf", 0, &e);
    if (rc == VKM_ENODEV) check_skip(vkm_errmsg());
    CHECK_OK(rc);
    vkm_engine_close(e);
    static const struct {
        const char *name;
        double min_top1;
    } fx[] = {{"small-v3-iq1_s", 0.85}, {"small-v3-iq1_m", 0.80},   {"small-v3-iq2_xxs", 0.85},
              {"small-v3-iq2_m", 0.85}, {"small-v3-iq3_xxs", 0.85}, {"small-v3-iq4_xs", 0.85}};
    for (size_t i = 0; i < sizeof fx / sizeof fx[0]; i++) run_fixture(fx[i].name, fx[i].min_top1);
    return check_done();
}
