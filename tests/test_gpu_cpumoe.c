/* test_gpu_cpumoe.c - routed experts computed on the CPU in the forward pass (core/moe_cpu.c,
 * experts.c, session.c's host hook), on the first Vulkan device with validation on; skips (77)
 * without a device.
 *
 * For the tiny F32 fixture and the Q4_K_M one, the logits of the prompt (one batch, then the
 * last tokens one at a time) with --cpu-moe (1 and 2 CPU threads), --n-cpu-moe 1, and
 * --expert-exec cpu / auto under a paging budget of half the experts, against the resident run
 * (the Q4_K_M one: --cpu-moe with 1 thread, --n-cpu-moe 1 and cpu under paging, for CI time).
 * Tolerance (moe_cpu.h): F32 experts take float activations, so only the float accumulation
 * order differs: max abs <= 1e-4. Quantized experts round the activations to 8-bit blocks
 * (core/cpu_matmul.h), which is what llama.cpp's CPU backend does; on these random-weight models
 * a small difference can flip the router's choices, so the fixtures' tolerance for two correct
 * implementations applies (fixtures/README.md): mean KL <= 0.03 and top-1 >= 85%. The GPU path
 * (--expert-exec gpu) under the same budget stays exact (<= 1e-4), with VKMOE_IMPORT=off too.
 * VKMOE_FORCE_STAGING=1 covers the path of a work buffer that is not host-visible.
 * --expert-exec cpu runs with the default policy (LFU: CPU misses admitted into slots over colder
 * units) and, on the F32 fixture, with LRU (free slots only).
 * The IQ1_M and IQ2_XXS fixtures (experts of those types) with --cpu-moe, 1 thread, within the
 * quantized tolerance. The counters: experts computed on the CPU > 0, none with gpu, no upload
 * with --cpu-moe, admissions with cpu under paging (LRU: at most the slots); bad options are
 * VKM_EINVAL. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "engine.h"
#include "gpu.h"
#include "gpu_keep.h"
#include "logits_check.h"
#include "vkmoe.h"

#define N_PROMPT 33
#define N_STEP 4 /* the last tokens one at a time: the decode path */
#define N_CTX 64

static int32_t g_ids[N_PROMPT];

typedef struct mode {
    const char *name;
    bool cpu_moe;
    int n_cpu_moe, exec, threads;
    bool half;  /* the paging budget of half the experts */
    int policy; /* enum vkm_expert_policy (0: the default, LFU) */
} mode;

static int open_engine(const char *path, const mode *m, uint64_t budget, vkm_engine **e) {
    vkm_engine_opts o = {.model_path = path,
                         .device = -1,
                         .validation = true,
                         .quiet = true,
                         .vram_budget = budget,
                         .prefetch = VKM_PREFETCH_OFF,
                         .expert_policy = (vkm_expert_policy)m->policy,
                         .expert_exec = (vkm_expert_exec)m->exec,
                         .cpu_moe = m->cpu_moe,
                         .n_cpu_moe = m->n_cpu_moe,
                         .cpu_threads = m->threads};
    return vkm_engine_open(&o, e);
}

/* only_first: the first mode alone (--cpu-moe, 1 thread), for the IQ fixtures' CI time */
static void run_fixture(const char *name, bool quantized, bool only_first) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s.gguf", VKMOE_FIXTURES_DIR, name);
    vkm_paging_budget pb;
    CHECK_OK(vkm_experts_budget(path, 0, &pb));
    const uint64_t half = pb.minimum_bytes + (pb.expert_bytes - pb.min_slot_bytes) / 2;
    const mode ref_mode = {"resident", false, 0, VKM_EXPERT_EXEC_GPU, 0, false, 0};
    vkm_engine *e = NULL;
    CHECK_OK(open_engine(path, &ref_mode, 0, &e));
    if (!e) return;
    const int V = (int)vkm_engine_model(e)->hp.n_vocab;
    const size_t nl = (size_t)N_PROMPT * V;
    float *ref = xmalloc(nl * sizeof *ref), *out = xmalloc(nl * sizeof *out);
    CHECK_OK(logits_gpu_prompt(e, g_ids, N_PROMPT, N_CTX, true, 0, N_STEP, ref));
    vkm_engine_close(e);
    const mode modes[] = {
        {"--cpu-moe, 1 thread", true, 0, VKM_EXPERT_EXEC_GPU, 1, false, 0},
        {"--cpu-moe, 2 threads", true, 0, VKM_EXPERT_EXEC_GPU, 2, false, 0},
        {"--n-cpu-moe 1", false, 1, VKM_EXPERT_EXEC_GPU, 2, false, 0},
        {"--expert-exec cpu, half", false, 0, VKM_EXPERT_EXEC_CPU, 2, true, 0},
        {"--expert-exec auto, half", false, 0, VKM_EXPERT_EXEC_AUTO, 1, true, 0},
        {"--expert-exec gpu, half", false, 0, VKM_EXPERT_EXEC_GPU, 2, true, 0},
        {"--expert-exec cpu, half, lru", false, 0, VKM_EXPERT_EXEC_CPU, 2, true, VKM_EXPERT_LRU},
    };
    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
        const mode *m = &modes[i];
        /* CI time: the quantized model takes 1 thread, --n-cpu-moe 1 and cpu under paging */
        if (quantized && i != 0 && i != 2 && i != 3) continue;
        if (only_first && i != 0) continue;
        e = NULL;
        CHECK_OK(open_engine(path, m, m->half ? half : 0, &e));
        if (!e) continue;
        CHECK_OK(logits_gpu_prompt(e, g_ids, N_PROMPT, N_CTX, true, 0, N_STEP, out));
        vkm_expert_stats st;
        vkm_engine_expert_stats(e, &st);
        vkm_engine_close(e);
        const logits_stats ls = logits_compare(ref, out, N_PROMPT, V, false);
        printf("%s %s: max abs %.3g, mean KL %.3g, top-1 %.3f; cpu_experts %llu, misses %llu, "
               "admitted %llu (%u slots), uploaded %llu bytes\n",
               name, m->name, ls.max_abs, ls.mean_kl, ls.top1, (unsigned long long)st.cpu_experts,
               (unsigned long long)st.misses, (unsigned long long)st.admitted, st.n_slots,
               (unsigned long long)st.uploaded_bytes);
        /* cpu: every slot is filled by admissions (the GPU's experts are all hits); LRU only
         * fills free slots, LFU also replaces colder units */
        if (m->exec == VKM_EXPERT_EXEC_CPU && m->half) CHECK(st.admitted > 0);
        if (m->exec == VKM_EXPERT_EXEC_CPU && m->policy == VKM_EXPERT_LRU)
            CHECK(st.admitted <= st.n_slots);
        if (m->exec == VKM_EXPERT_EXEC_GPU && !m->cpu_moe && !m->n_cpu_moe) {
            CHECK_MSG(ls.max_abs <= 1e-4, "%s %s: max abs %g", name, m->name, ls.max_abs);
            CHECK(st.cpu_experts == 0 && st.misses > 0);
            continue;
        }
        if (m->exec != VKM_EXPERT_EXEC_AUTO) CHECK_MSG(st.cpu_experts > 0, "%s", m->name);
        if (m->cpu_moe) CHECK(st.paged && st.n_slots == 0 && st.uploaded_bytes == 0);
        if (m->cpu_moe || m->n_cpu_moe) CHECK(st.cpu_layers == (m->cpu_moe ? 2u : 1u));
        if (quantized)
            CHECK_MSG(ls.mean_kl <= 0.03 && ls.top1 >= 0.85, "%s %s: mean KL %g, top-1 %g", name,
                      m->name, ls.mean_kl, ls.top1);
        else
            CHECK_MSG(ls.max_abs <= 1e-4, "%s %s: max abs %g", name, m->name, ls.max_abs);
    }
    free(ref);
    free(out);
}

/* VKMOE_IMPORT=off (staged uploads, no imported mapping): the GPU path under a paging budget
 * stays exact, --cpu-moe within the F32 tolerance; and with VKMOE_FORCE_STAGING=1 (the work buffer
 * treated as not host-visible: the CPU rows go through a host buffer and copies recorded into
 * the batch, the FFN input is copied back in it) --cpu-moe and --expert-exec cpu too. */
static void test_import_off(void) {
    const char *path = VKMOE_FIXTURES_DIR "/tiny-v3-f32.gguf";
    setenv("VKMOE_IMPORT", "off", 1);
    vkm_paging_budget pb;
    CHECK_OK(vkm_experts_budget(path, 0, &pb));
    const mode modes[] = {{"resident", false, 0, VKM_EXPERT_EXEC_GPU, 0, false, 0},
                          {"gpu, minimum", false, 0, VKM_EXPERT_EXEC_GPU, 0, true, 0},
                          {"--cpu-moe", true, 0, VKM_EXPERT_EXEC_GPU, 2, false, 0},
                          {"--cpu-moe, staged", true, 0, VKM_EXPERT_EXEC_GPU, 2, false, 0},
                          {"cpu, minimum, staged", false, 0, VKM_EXPERT_EXEC_CPU, 2, true, 0}};
    float *ref = NULL, *out = NULL;
    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
        if (i == 3) setenv("VKMOE_FORCE_STAGING", "1", 1); /* the work buffer not host-visible */
        vkm_engine *e = NULL;
        CHECK_OK(open_engine(path, &modes[i], modes[i].half ? pb.minimum_bytes : 0, &e));
        if (!e) break;
        const int V = (int)vkm_engine_model(e)->hp.n_vocab;
        float *dst = xmalloc((size_t)N_PROMPT * V * sizeof *dst);
        CHECK_OK(logits_gpu_prompt(e, g_ids, N_PROMPT, N_CTX, true, 0, N_STEP, dst));
        vkm_engine_close(e);
        if (!ref) {
            ref = dst;
            continue;
        }
        out = dst;
        const double d = logits_max_abs_diff(ref, out, (size_t)N_PROMPT * V);
        printf("VKMOE_IMPORT=off %s: max abs %.3g\n", modes[i].name, d);
        CHECK_MSG(d <= 1e-4, "VKMOE_IMPORT=off %s: max abs %g", modes[i].name, d);
        free(out);
    }
    free(ref);
    unsetenv("VKMOE_IMPORT");
    unsetenv("VKMOE_FORCE_STAGING");
}

int main(void) {
    if (logits_read_prompt(g_ids, N_PROMPT) != N_PROMPT) {
        CHECK(!"prompt.ids");
        return check_done();
    }
    gpu_keep_open(); /* many engines follow */
    const char *tiny = VKMOE_FIXTURES_DIR "/tiny-v3-f32.gguf";
    const mode bad[] = {{"exec 7", false, 0, 7, 0, false, 0},
                        {"n_cpu_moe -1", false, -1, 0, 0, false, 0},
                        {"threads -1", true, 0, 0, -1, false, 0},
                        {"threads 300", true, 0, 0, 300, false, 0},
                        {"policy 3", false, 0, 0, 0, false, 3}};
    vkm_engine *e = NULL;
    const mode ok = {"ok", true, 0, 0, 0, false, 0};
    const int rc = open_engine(tiny, &ok, 0, &e);
    if (rc == VKM_ENODEV) check_skip(vkm_errmsg());
    CHECK_OK(rc);
    vkm_engine_close(e);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK_MSG(open_engine(tiny, &bad[i], 0, &e) == VKM_EINVAL && !e, "%s", bad[i].name);
    run_fixture("tiny-v3-f32", false, false);
    run_fixture("small-v3-q4_k_m", true, false);
    /* IQ experts on the CPU: IQ1_M (grid offsets per group) and IQ2_XXS (signed grids) */
    run_fixture("iq/small-v3-iq1_m", true, true);
    run_fixture("iq/small-v3-iq2_xxs", true, true);
    test_import_off();
    gpu_keep_close();
    return check_done();
}
