/* test_gpu_variants.c - the GPU forward (vkm_session_eval) against the CPU reference forward
 * (vkm_ref_fwd) on models written by core/genmodel.c, on the first Vulkan device (lavapipe on CI)
 * with validation on; skips (77) without a device.
 *
 * Cases: the `tiny` preset (E 64) written with every quantization mix (its K-quant mixes fall
 * back to 32-element block types since 64 is not a multiple of 256); a widened tiny (E 256, all
 * matrix rows multiples of 256) with every K-quant mix, checked to really hold Q2_K..Q6_K
 * tensors, and with random IQ1_S blocks (gen-model's iq1_s); and a 300-token prompt (longer than
 * the YaRN original context of 256) fed as 128 + 128 + 44 token batches, every logit row compared.
 *
 * Both sides use an F32 KV cache and float activations, so they compute the same math in a
 * different summation order (f32 GPU vs double CPU accumulators). Random-weight routers are
 * chaotic, though: a near-tied expert choice may flip, which changes a whole row. Hence the
 * thresholds per case: mean KL(cpu || gpu) <= 1e-3 and top-1 agreement >= 97%; max abs is
 * printed, and any NaN/Inf in the GPU logits fails. Model files live in a mkdtemp directory
 * under /tmp that is removed at the end. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "engine.h"
#include "genmodel.h"
#include "gguf.h"
#include "logits_check.h"
#include "model.h"
#include "qtype.h"
#include "ref_forward.h"
#include "vkmoe.h"

#define MAX_KL 1e-3
#define MIN_TOP1 0.97
#define N_SHORT 16 /* tokens of each quant-mix case (lavapipe and the reference are slow) */
#define N_LONG 300 /* > yarn_orig_ctx 256 of the tiny preset */
#define SEED 1234

static char g_dir[64];

/* ------------------------------------------------------------------------------ helpers ---- */

/* n token ids in [0, V) from a xorshift generator seeded by seed. */
static void rand_tokens(uint64_t seed, int32_t *ids, int n, int V) {
    uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
    for (int i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        ids[i] = (int32_t)(x % (uint64_t)V);
    }
}

/* Counts the tensors of each type in the file at path into counts[VKM_Q6_K + 1...]. */
static int count_types(const char *path, int64_t *counts, int n_counts) {
    vkm_gguf *g = NULL;
    int rc = vkm_gguf_open(path, &g);
    for (int64_t i = 0; !rc && i < vkm_gguf_n_tensors(g); i++) {
        uint32_t t = vkm_gguf_tensor_at(g, i)->type;
        if (t < (uint32_t)n_counts) counts[t]++;
    }
    vkm_gguf_close(g);
    return rc;
}

/* ---------------------------------------------------------------------------- one case ---- */

/* Writes (hp, mix) to the temp dir, runs tokens[0..n) through the GPU in batches of
 * batch[0..n_batch) (the last repeated as needed) and through the CPU reference as one eval,
 * and compares every logit row. need_type: a ggml type the file must contain (-1: none). */
static void run_case(const char *label, const vkm_genmodel_hparams *hp, uint32_t mix, int n,
                     const int *batch, int n_batch, int need_type) {
    char path[128];
    snprintf(path, sizeof path, "%s/model.gguf", g_dir);
    int rc = vkm_genmodel_write(hp, mix, SEED, path, NULL, NULL);
    CHECK_MSG(rc == 0, "%s: write: %s", label, vkm_errmsg());
    if (rc) return;
    if (need_type >= 0) {
        int64_t counts[64] = {0};
        CHECK_OK(count_types(path, counts, 64));
        printf("%-22s %lld %s tensors\n", label, (long long)counts[need_type],
               vkm_qtype_name((uint32_t)need_type));
        CHECK_MSG(counts[need_type] > 0, "%s: no %s tensor in the file", label,
                  vkm_qtype_name((uint32_t)need_type));
    }

    vkm_engine *e = NULL;
    vkm_engine_opts eo = {.model_path = path, .device = -1, .validation = true, .quiet = true};
    rc = vkm_kernels_env(&eo.kernels); /* the ctest variants force a layout */
    if (!rc) rc = vkm_engine_open(&eo, &e);
    if (rc == VKM_ENODEV) {
        remove(path);
        rmdir(g_dir);
        check_skip(vkm_errmsg());
    }
    CHECK_MSG(rc == 0, "%s: open: %s", label, vkm_errmsg());
    if (rc) {
        remove(path);
        return;
    }
    const vkm_model *m = vkm_engine_model(e);
    const int V = (int)m->hp.n_vocab;
    int32_t *ids = xmalloc((size_t)n * sizeof *ids);
    rand_tokens(SEED + (uint64_t)n, ids, n, V);
    float *gpu = xmalloc((size_t)n * V * sizeof(float)), *ref = xmalloc((size_t)n * V * 4);

    /* GPU: F32 cache, the given batch split */
    vkm_session *s = NULL;
    vkm_session_opts so = {.n_ctx = n, .kv_f32 = true, .max_batch = batch[0]};
    CHECK_OK(rc = vkm_session_create(e, &so, &s));
    for (int done = 0, b = 0; !rc && done < n; b += b + 1 < n_batch) {
        int k = batch[b] < n - done ? batch[b] : n - done;
        rc = vkm_session_eval(s, ids + done, k, true, gpu + (size_t)done * V);
        CHECK_MSG(rc == 0, "%s: eval at %d: %s", label, done, vkm_errmsg());
        done += k;
    }
    vkm_session_destroy(s);

    /* CPU reference: F32 cache, float activations, one eval */
    vkm_ref_fwd *f = NULL;
    vkm_ref_fwd_opts ro = {.n_ctx = n, .kv_f16 = false, .act_quant = false};
    int rrc = vkm_ref_fwd_create(m, &ro, &f);
    if (!rrc) rrc = vkm_ref_fwd_eval(f, ids, n, ref);
    CHECK_MSG(rrc == 0, "%s: reference: %s", label, vkm_errmsg());
    vkm_ref_fwd_destroy(f);

    if (!rc && !rrc) {
        logits_stats st = logits_compare(ref, gpu, n, V, true);
        printf("%-22s %3d tok: mean KL %.3g  top-1 %.1f%%  max abs %.4g\n", label, n, st.mean_kl,
               100.0 * st.top1, st.max_abs);
        CHECK_MSG(st.n_nonfinite == 0, "%s: %ld NaN/Inf logits", label, st.n_nonfinite);
        CHECK_MSG(st.mean_kl <= MAX_KL, "%s: mean KL %g > %g", label, st.mean_kl, MAX_KL);
        CHECK_MSG(st.top1 >= MIN_TOP1, "%s: top-1 %g < %g", label, st.top1, MIN_TOP1);
    }
    uint32_t verr = vkm_gpu_validation_errors(vkm_engine_gpu(e));
    CHECK_MSG(verr == 0, "%s: %u validation errors", label, verr);
    vkm_engine_close(e);
    free(ids);
    free(gpu);
    free(ref);
    remove(path);
}

/* --------------------------------------------------------------------------------- main ---- */

int main(void) {
    snprintf(g_dir, sizeof g_dir, "/tmp/vkm_variants_XXXXXX");
    if (!mkdtemp(g_dir)) {
        CHECK(!"mkdtemp");
        return check_done();
    }
    vkm_genmodel_hparams tiny;
    CHECK_OK(vkm_genmodel_preset("tiny", &tiny));
    const int one[] = {N_SHORT};

    /* 1. the tiny preset in every mix (E 64: K-quants fall back to 32-block types; the IQ mixes
     * other than iq4_nl all fall back to its IQ4_NL there, so they are not run twice) */
    for (uint32_t mix = 0; mix < VKM_GENMODEL_MIX_COUNT; mix++) {
        if (mix == VKM_GENMODEL_IQ4_XS || mix == VKM_GENMODEL_IQ1_S ||
            mix == VKM_GENMODEL_IQ2_XXS || mix == VKM_GENMODEL_IQ3_XXS)
            continue;
        char label[48];
        snprintf(label, sizeof label, "tiny %s", vkm_genmodel_mix_name(mix));
        run_case(label, &tiny, mix, N_SHORT, one, 1, -1);
    }

    /* 1b. a widened tiny: every matrix row except attn_k_b's (Dn 16) is a multiple of 256, so
     * the K-quant mixes write real K-quant tensors */
    vkm_genmodel_hparams wide = tiny;
    wide.n_embd = 256;
    wide.n_ff = 512;
    wide.n_ff_exp = 256;
    wide.q_lora = 256;
    wide.kv_lora = 256;
    wide.d_v = 64; /* H * Dv = 256: attn_output */
    CHECK_OK(vkm_genmodel_check(&wide));
    static const struct {
        uint32_t mix;
        int type;
    } kmix[] = {{VKM_GENMODEL_Q2_K, VKM_Q2_K},  {VKM_GENMODEL_Q3_K, VKM_Q3_K},
                {VKM_GENMODEL_Q4_K, VKM_Q4_K},  {VKM_GENMODEL_Q5_K, VKM_Q5_K},
                {VKM_GENMODEL_Q6_K, VKM_Q6_K},  {VKM_GENMODEL_Q4_K_M, VKM_Q6_K},
                {VKM_GENMODEL_IQ1_S, VKM_IQ1_S}}; /* random IQ1_S blocks, IQ4_NL attn_k_b */
    for (size_t i = 0; i < sizeof kmix / sizeof kmix[0]; i++) {
        char label[48];
        snprintf(label, sizeof label, "wide %s", vkm_genmodel_mix_name(kmix[i].mix));
        run_case(label, &wide, kmix[i].mix, N_SHORT, one, 1, kmix[i].type);
    }
    /* q4_k_m's base type too (its output and some ffn_down are Q6_K, checked above) */
    {
        int64_t counts[64] = {0};
        char path[128];
        snprintf(path, sizeof path, "%s/model.gguf", g_dir);
        CHECK_OK(vkm_genmodel_write(&wide, VKM_GENMODEL_Q4_K_M, SEED, path, NULL, NULL));
        CHECK_OK(count_types(path, counts, 64));
        CHECK_MSG(counts[VKM_Q4_K] > 0, "wide q4_k_m: no Q4_K tensor");
        remove(path);
    }

    /* 2. a prompt longer than the YaRN original context, in batches of 128 + 128 + 44 */
    CHECK(tiny.yarn_orig_ctx < N_LONG && tiny.n_ctx >= N_LONG);
    const int split[] = {128, 128, 44};
    run_case("tiny f32 long", &tiny, VKM_GENMODEL_F32, N_LONG, split, 3, -1);
    run_case("tiny q4_k_m long", &tiny, VKM_GENMODEL_Q4_K_M, N_LONG, split, 3, -1);

    CHECK(rmdir(g_dir) == 0);
    return check_done();
}
