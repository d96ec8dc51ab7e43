/* test_moe_cpu.c - the CPU side of a MoE layer (core/moe_cpu.c), no GPU: AUTO's cost model
 * (vkm_moe_cpu_max_tokens / _prefer), and vkm_moe_cpu_layer on the tiny fixture's first MoE
 * layer (and the IQ1_M fixture's, with 2 threads): each computed expert's output lands in the
 * grouped rows of moe_group's layout (shaders/fwd_common.h: entries by expert, tokens ascending)
 * equal to the expert FFN of that token alone, the rows of experts not asked for stay untouched,
 * with 1, 2 and the default number of threads; bad arguments are errors. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "cpu_matmul.h"
#include "gguf.h"
#include "model.h"
#include "moe_cpu.h"
#include "pager.h"

#define N_TOK 5

static void test_cost_model(void) {
    const vkm_moe_cpu_costs none = {0, 1}, four = {4, 1}, slow = {1, 4}, frac = {2.5, 1};
    const vkm_moe_cpu_costs nan_c = {NAN, 1}, huge = {1e12, 1e-3};
    CHECK(vkm_moe_cpu_max_tokens(&none) == 0 && !vkm_moe_cpu_prefer(&none, 1));
    CHECK(vkm_moe_cpu_max_tokens(&four) == 4);
    CHECK(vkm_moe_cpu_prefer(&four, 1) && vkm_moe_cpu_prefer(&four, 4));
    CHECK(!vkm_moe_cpu_prefer(&four, 5) && !vkm_moe_cpu_prefer(&four, 0));
    CHECK(vkm_moe_cpu_max_tokens(&slow) == 0 && !vkm_moe_cpu_prefer(&slow, 1));
    CHECK(vkm_moe_cpu_max_tokens(&frac) == 2);
    CHECK(vkm_moe_cpu_max_tokens(&nan_c) == 0);
    CHECK(vkm_moe_cpu_max_tokens(&huge) == 65536);
}

static void test_layer(const vkm_model *m, int threads) {
    const vkm_hparams *hp = &m->hp;
    uint32_t il = 0;
    while (!m->layers[il].moe) il++;
    const vkm_layer *L = &m->layers[il];
    const uint32_t E = hp->n_embd, K = hp->n_expert_used, X = hp->n_expert;
    CHECK(vkm_moe_cpu_supported(L) && vkm_moe_cpu_expert_bytes(L) > 0);
    float *a = malloc((size_t)N_TOK * E * sizeof *a);
    float *eo = malloc((size_t)N_TOK * K * E * sizeof *eo), *y = malloc(E * sizeof *y);
    int32_t sel[N_TOK * 8], ranges[2 * 64], xs[64];
    CHECK(K <= 8 && X <= 64);
    uint32_t s = 7u + (uint32_t)threads;
    for (size_t i = 0; i < (size_t)N_TOK * E; i++) {
        s = s * 1664525u + 1013904223u;
        a[i] = (float)((double)(s >> 8) / (double)(1u << 24) - 0.5);
    }
    for (uint32_t t = 0; t < N_TOK; t++) /* K distinct experts per token */
        for (uint32_t j = 0; j < K; j++) sel[t * K + j] = (int32_t)((t * 3 + j * 5) % X);
    vkm_pager_expert_ranges(sel, N_TOK * K, X, ranges);
    uint32_t n_x = 0; /* the even experts chosen: the odd ones' rows must stay untouched */
    for (uint32_t x = 0; x < X; x += 2)
        if (ranges[2 * x + 1] > 0) xs[n_x++] = (int32_t)x;
    for (size_t i = 0; i < (size_t)N_TOK * K * E; i++) eo[i] = NAN;
    vkm_moe_cpu *mc = NULL;
    CHECK_OK(vkm_moe_cpu_create(threads, E, &mc));
    if (!mc) goto done;
    CHECK(vkm_moe_cpu_threads(mc) >= 1 && (threads == 0 || vkm_moe_cpu_threads(mc) == threads));
    CHECK_OK(vkm_moe_cpu_layer(mc, L, a, sel, N_TOK, K, X, ranges, xs, n_x, eo));
    double worst = 0;
    for (uint32_t t = 0; t < N_TOK; t++)
        for (uint32_t j = 0; j < K; j++) {
            const int32_t x = sel[t * K + j];
            int32_t rank = 0; /* earlier tokens with x: tokens ascending inside an expert */
            for (uint32_t u = 0; u < t; u++)
                for (uint32_t q = 0; q < K; q++) rank += sel[u * K + q] == x;
            const float *row = eo + (size_t)(ranges[2 * x] + rank) * E;
            if (x % 2) {
                CHECK_MSG(isnan(row[0]) && isnan(row[E - 1]), "expert %d's row was written", x);
                continue;
            }
            vkm_cpu_expert ex;
            CHECK_OK(vkm_cpu_expert_of_layer(L, x, &ex));
            CHECK_OK(vkm_cpu_expert_ffn(NULL, &ex, a + (size_t)t * E, 1, y));
            for (uint32_t i = 0; i < E; i++) {
                const double d = fabs((double)row[i] - y[i]) / (1e-3 + fabs((double)y[i]));
                worst = d > worst || d != d ? d : worst;
            }
        }
    CHECK_MSG(worst <= 1e-5, "threads %d: relative difference %g", threads, worst);
    /* bad expert ids */
    const int32_t bad[2] = {(int32_t)X, -1};
    CHECK(vkm_moe_cpu_layer(mc, L, a, sel, N_TOK, K, X, ranges, bad, 1, eo) == VKM_EINVAL);
    CHECK(vkm_moe_cpu_layer(mc, L, a, sel, N_TOK, K, X, ranges, bad + 1, 1, eo) == VKM_EINVAL);
    /* the probe measures something */
    double gbps = 0;
    CHECK_OK(vkm_moe_cpu_probe(mc, L, &gbps));
    CHECK(gbps > 0);
done:
    vkm_moe_cpu_destroy(mc);
    free(a);
    free(eo);
    free(y);
}

int main(void) {
    test_cost_model();
    vkm_moe_cpu *mc = NULL;
    CHECK(vkm_moe_cpu_create(-1, 64, &mc) == VKM_EINVAL && !mc);
    CHECK(vkm_moe_cpu_create(1, 0, &mc) == VKM_EINVAL && !mc);
    vkm_moe_cpu_destroy(NULL);
    vkm_gguf *g = NULL;
    vkm_model *m = NULL;
    CHECK_OK(vkm_gguf_open(VKMOE_FIXTURES_DIR "/tiny-v3-f32.gguf", &g));
    if (g) CHECK_OK(vkm_model_load(g, &m));
    if (m) {
        test_layer(m, 1);
        test_layer(m, 2);
        test_layer(m, 0);
    }
    vkm_model_free(m);
    vkm_gguf_close(g);
    /* IQ experts (the IQ1_M fixture: IQ1_M gate, up and down) take the same path */
    g = NULL;
    m = NULL;
    CHECK_OK(vkm_gguf_open(VKMOE_FIXTURES_DIR "/iq/small-v3-iq1_m.gguf", &g));
    if (g) CHECK_OK(vkm_model_load(g, &m));
    if (m) test_layer(m, 2);
    vkm_model_free(m);
    vkm_gguf_close(g);
    return check_done();
}
