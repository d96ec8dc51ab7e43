/* test_gpu_windows.c - weights larger than the device's largest binding, bound in windows
 * (core/ops_matmul.c, vkm_op_get_rows, core/weights.c's placement), end to end on the first
 * Vulkan device (lavapipe on CI) with validation on; skips (77) without a device.
 *
 * 1. The fixture models with the weight window capped (VKMOE_WEIGHT_WINDOW, gpu.h) far below
 *    their tensors, so that every tensor kind is bound in windows: the embedding table (rows),
 *    dense and attention matrices (rows), per-head matrices (heads, and rows within one), the
 *    routed expert stacks (groups of experts, and rows within one expert); the fused forms that
 *    need one window over two matrices (q_a + kv_a, gate + up, the shared expert beside the
 *    routed ones) fall back to separate dispatches. In each kernel layout (the device's own and
 *    the forced gpu / cpu64 / cpu32 ones), resident and paged, imported in place and uploaded:
 *    logits equal the uncapped run of the same layout (the same arithmetic per output, so equal
 *    bit for bit on lavapipe; 1e-4 allows a GPU's fused multiply-adds to differ between the
 *    fused and the separate forms).
 * 2. A V2-Lite-shaped 2-layer Q4_K_M model (gen-model's v2-lite preset), whose 187 MiB expert
 *    down stack exceeds lavapipe's 128 MiB range without any cap: resident (imported in place,
 *    and uploaded into a buffer larger than the range) and paged (slot stacks larger than the
 *    range) give the same logits, and they match the CPU reference (core/ref_forward.c). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "engine.h"
#include "genmodel.h"
#include "gpu.h"
#include "gpu_keep.h"
#include "logits_check.h"
#include "ref_forward.h"
#include "tmpdir.h"
#include "vkmoe.h"

#define N_PROMPT 33
#define N_CTX 64

static int32_t g_ids[N_PROMPT];

static int open_engine(const char *path, uint64_t budget, vkm_engine **e) {
    vkm_engine_opts o = {.model_path = path,
                         .device = -1,
                         .validation = true,
                         .quiet = true,
                         .vram_budget = budget,
                         .prefetch = VKM_PREFETCH_OFF};
    return vkm_engine_open(&o, e);
}

/* Sets (value) or clears (NULL) an environment variable the engine reads at open. */
static void env(const char *name, const char *value) {
    if (value)
        setenv(name, value, 1);
    else
        unsetenv(name);
}

/* Opens path, runs ids[0..n) (the first n - n_step as one eval, then one at a time; F32 cache)
 * into out [n][V], checks that the experts are paged or not as asked and no validation error. */
static int run(const char *path, uint64_t budget, bool paged, const int32_t *ids, int n, int n_step,
               float *out) {
    vkm_engine *e = NULL;
    int rc = open_engine(path, budget, &e);
    if (!rc) {
        CHECK_MSG(vkm_engine_paged(e) == paged, "%s: paged %d, expected %d", path,
                  vkm_engine_paged(e), paged);
        rc = logits_gpu_prompt(e, ids, n, N_CTX, true, 0, n_step, out);
        CHECK(vkm_gpu_validation_errors(vkm_engine_gpu(e)) == 0);
    }
    vkm_engine_close(e);
    return rc;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ------------------------------------------------------------------ capped windows ---- */

/* The fixture `name` (budget: one that pages its experts) in the kernel layout `kernels` (NULL:
 * the device's own): uncapped and resident, then with the weight window capped at windows[0] and
 * windows[1], resident and paged (paged logits equal the resident ones: test_gpu_paging),
 * imported in place where the device does that and uploaded. The forced layouts only at
 * windows[0] in place, resident and paged: uploads and imports bind the same windows, and every
 * engine open costs lavapipe a second of pipeline loading. */
static void run_capped(const char *name, uint64_t budget, const char *const windows[2],
                       const char *kernels) {
    static const struct {
        bool paged;
        int window;
        const char *import;
        bool forced; /* also in the forced layouts */
    } cases[] = {{false, 0, NULL, true},
                 {false, 0, "off", false},
                 {false, 1, NULL, false},
                 {true, 0, NULL, true},
                 {true, 1, "off", false}};
    char path[512];
    snprintf(path, sizeof path, "%s/%s.gguf", VKMOE_FIXTURES_DIR, name);
    env("VKMOE_KERNELS", kernels);
    const size_t nl = (size_t)N_PROMPT * 268;
    float *want = xmalloc(nl * 4), *got = xmalloc(nl * 4);
    env("VKMOE_WEIGHT_WINDOW", NULL);
    env("VKMOE_IMPORT", NULL);
    CHECK_OK(run(path, 0, false, g_ids, N_PROMPT, 1, want));
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        if (kernels && !cases[c].forced) continue;
        const char *w = windows[cases[c].window], *im = cases[c].import;
        env("VKMOE_WEIGHT_WINDOW", w);
        env("VKMOE_IMPORT", im);
        memset(got, 0, nl * 4);
        CHECK_OK(run(path, cases[c].paged ? budget : 0, cases[c].paged, g_ids, N_PROMPT, 1, got));
        const double d = logits_max_abs_diff(want, got, nl);
        printf("%-16s %-7s %-8s window %-4s import %-4s: max abs %.3g vs uncapped\n", name,
               kernels ? kernels : "device", cases[c].paged ? "paged" : "resident", w,
               im ? im : "auto", d);
        CHECK_MSG(d <= 1e-4, "%s %s: windowed logits differ by %g", name,
                  kernels ? kernels : "device", d);
    }
    env("VKMOE_WEIGHT_WINDOW", NULL);
    env("VKMOE_IMPORT", NULL);
    env("VKMOE_KERNELS", NULL);
    free(want);
    free(got);
}

/* ----------------------------------------------------------------------- V2-Lite ---- */

#define LITE_N 9 /* prompt tokens: 8 as one batch (the GEMM kernels' 8-column pass), 1 step */

static void run_lite(void) {
    tmpdir_make("windows");
    char path[sizeof g_dir + 16];
    snprintf(path, sizeof path, "%s/v2l.gguf", g_dir);
    vkm_genmodel_hparams hp;
    uint32_t mix = 0;
    CHECK_OK(vkm_genmodel_preset("v2-lite", &hp));
    CHECK_OK(vkm_genmodel_set_layers(&hp, 2, VKM_GENMODEL_AUTO, NULL, 0));
    CHECK_OK(vkm_genmodel_mix_parse("q4_k_m", &mix));
    double t = now_s();
    CHECK_OK(vkm_genmodel_write(&hp, mix, 42, path, NULL, NULL));
    printf("(v2-lite written: %.1f s)\n", now_s() - t);
    t = now_s();

    int32_t ids[LITE_N];
    for (int i = 0; i < LITE_N; i++) ids[i] = g_ids[i] % VKM_GENMODEL_N_VOCAB;
    const size_t nl = (size_t)LITE_N * VKM_GENMODEL_N_VOCAB;
    float *res = xmalloc(nl * 4), *got = xmalloc(nl * 4), *ref = xmalloc(nl * 4);

    /* the expert stacks exceed the device's range (lavapipe: 128 MiB): windows without a cap */
    vkm_engine *e = NULL;
    CHECK_OK(open_engine(path, 0, &e));
    if (!e) goto out;
    const vkm_model *m = vkm_engine_model(e);
    const uint64_t range = vkm_gpu_info(vkm_engine_gpu(e))->max_buffer_bytes;
    const uint64_t down = m->layers[1].ffn_down_exps.nbytes;
    printf("v2-lite 2 layers: ffn_down_exps %.1f MiB, device range %.1f MiB\n", down / 1048576.0,
           range / 1048576.0);
    vkm_ref_fwd *f = NULL;
    vkm_ref_fwd_opts ro = {N_CTX, false, false};
    CHECK_OK(vkm_ref_fwd_create(m, &ro, &f));
    if (f) CHECK_OK(vkm_ref_fwd_eval(f, ids, LITE_N, ref));
    vkm_ref_fwd_destroy(f);
    vkm_engine_close(e);
    printf("(v2-lite CPU reference: %.1f s)\n", now_s() - t);
    t = now_s();

    CHECK_OK(run(path, 0, false, ids, LITE_N, 1, res));
    /* paged, with slot stacks larger than 128 MiB: 60 of the 64 experts (Q8_0 down 3 MiB each) */
    const uint64_t budget = (uint64_t)430 << 20;
    CHECK_OK(run(path, budget, true, ids, LITE_N, 1, got));
    double d = logits_max_abs_diff(res, got, nl);
    printf("v2-lite paged (430 MiB) vs resident: max abs %.3g\n", d);
    CHECK_MSG(d <= 1e-4, "v2-lite paged vs resident %g", d);
    printf("(v2-lite resident and paged: %.1f s)\n", now_s() - t);
    /* resident uploaded: the expert stacks in device buffers larger than the range */
    env("VKMOE_IMPORT", "off");
    CHECK_OK(run(path, 0, false, ids, LITE_N, 1, got));
    env("VKMOE_IMPORT", NULL);
    d = logits_max_abs_diff(res, got, nl);
    printf("v2-lite uploaded vs imported: max abs %.3g\n", d);
    CHECK_MSG(d <= 1e-4, "v2-lite uploaded vs imported %g", d);
    /* vs the CPU reference: the same dequantized weights, f32 GPU against double CPU
     * accumulators over rows of up to 10944 elements, F32 caches: 1e-3 as for the fixtures
     * (measured 4e-6 on lavapipe) */
    d = logits_max_abs_diff(res, ref, nl);
    logits_stats st = logits_compare(ref, res, LITE_N, VKM_GENMODEL_N_VOCAB, false);
    printf("v2-lite GPU vs CPU reference: max abs %.3g (KL %.3g, top-1 %.1f%%)\n", d, st.mean_kl,
           100.0 * st.top1);
    CHECK_MSG(d <= 1e-3, "v2-lite GPU vs CPU reference %g", d);
out:
    free(res);
    free(got);
    free(ref);
    tmpdir_remove();
}

int main(void) {
    if (logits_read_prompt(g_ids, N_PROMPT) != N_PROMPT) {
        CHECK(!"prompt.ids");
        return check_done();
    }
    gpu_keep_open(); /* many engines follow */
    if (!g_gpu_keep) check_skip("no Vulkan device");
    static const char *const layouts[] = {NULL, "gpu", "cpu64", "cpu32"};
    for (int l = 0; l < 4; l++) {
        const double t0 = now_s();
        /* tiny (F32): 4 KiB is below every matrix and table but the per-head ones (2 KiB: one
         * head per window) and below one expert matrix (8 KiB: rows within it); 16 KiB holds two
         * experts. small (Q4_K_M): 16 KiB is below every matrix, table and head (22 KiB) and one
         * expert (36 KiB); 128 KiB holds three experts. */
        static const char *const tiny_w[2] = {"4K", "16K"}, *const small_w[2] = {"16K", "128K"};
        run_capped("tiny-v3-f32", 800 << 10, tiny_w, layouts[l]);
        run_capped("small-v3-q4_k_m", 3 << 20, small_w, layouts[l]);
        printf("(%s layout: %.1f s)\n", layouts[l] ? layouts[l] : "device", now_s() - t0);
    }
    const double t0 = now_s();
    run_lite();
    printf("(v2-lite: %.1f s)\n", now_s() - t0);
    gpu_keep_close();
    return check_done();
}
