/* test_experts_budget.c - the expert paging arithmetic without a device (vkmoe.h
 * vkm_experts_budget, core/experts.c), CPU only: for the tiny fixture the figures and budgets
 * that `vkmoe bench --paging -m tiny-v3-f32.gguf` printed on lavapipe before the budget API
 * existed (bytes of the weights, the paging minimum, the budget of each row and the slots the
 * engine gave it), for both fixtures the figures against an independent count from the GGUF
 * tensor list (the arithmetic tools/cmd_bench_paging.c carried before), and bad arguments. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "forward.h"
#include "gguf.h"
#include "vkmoe.h"

#define MAX_KINDS 4
#define MAX_LAYERS 64

static uint64_t pad(uint64_t v) {
    return (v + VKM_FWD_ALIGN - 1) / VKM_FWD_ALIGN * VKM_FWD_ALIGN;
}

/* The kind (0..3) of an expert tensor "blk.N.ffn_*_exps.weight" of layer *il, or -1. */
static int expert_kind(const char *name, uint32_t *il) {
    static const char *const kinds[MAX_KINDS] = {"ffn_gate_exps", "ffn_up_exps", "ffn_gate_up_exps",
                                                 "ffn_down_exps"};
    char *end = NULL;
    if (strncmp(name, "blk.", 4)) return -1;
    const unsigned long l = strtoul(name + 4, &end, 10);
    if (end == name + 4 || *end != '.' || l >= MAX_LAYERS) return -1;
    for (int k = 0; k < MAX_KINDS; k++) {
        const size_t n = strlen(kinds[k]);
        if (!strncmp(end + 1, kinds[k], n) && end[1 + n] == '.') {
            *il = (uint32_t)l;
            return k;
        }
    }
    return -1;
}

/* The oracle: main/expert bytes from the tensor list, the range buffer, and the minimum with one
 * size class per distinct (types, matrix bytes) of the MoE layers' experts. */
static void count(const char *path, uint64_t *main, uint64_t *experts, uint64_t *minimum) {
    vkm_gguf *g = NULL;
    uint32_t type[MAX_LAYERS][MAX_KINDS] = {{0}};
    uint64_t mat[MAX_LAYERS][MAX_KINDS] = {{0}};
    uint32_t n_layer = 0, n_expert = 0, k = 0;
    *main = *experts = *minimum = 0;
    CHECK_OK(vkm_gguf_open(path, &g));
    if (!g) return;
    for (int64_t i = 0; i < vkm_gguf_n_tensors(g); i++) {
        const vkm_gguf_tensor *t = vkm_gguf_tensor_at(g, i);
        uint32_t il = 0;
        const int kind = expert_kind(t->name, &il);
        if (kind < 0 || t->ne[2] <= 0) {
            *main += pad(t->nbytes);
            continue;
        }
        *experts += pad(t->nbytes);
        type[il][kind] = t->type;
        mat[il][kind] = t->nbytes / (uint64_t)t->ne[2];
        n_layer = il + 1 > n_layer ? il + 1 : n_layer;
        n_expert = (uint32_t)t->ne[2];
    }
    uint64_t v = 0;
    CHECK_OK(vkm_gguf_get_uint(g, "deepseek2.block_count", &v));
    n_layer = (uint32_t)v;
    CHECK_OK(vkm_gguf_get_uint(g, "deepseek2.expert_used_count", &v));
    k = (uint32_t)v;
    vkm_gguf_close(g);
    uint64_t min_slots = 0;
    for (uint32_t il = 0; il < n_layer && il < MAX_LAYERS; il++) {
        bool any = false, seen = false;
        for (int kd = 0; kd < MAX_KINDS; kd++) any |= mat[il][kd] != 0;
        for (uint32_t j = 0; any && j < il; j++)
            seen |= !memcmp(mat[j], mat[il], sizeof mat[il]) &&
                    !memcmp(type[j], type[il], sizeof type[il]);
        if (!any || seen) continue;
        for (int kd = 0; kd < MAX_KINDS; kd++)
            if (mat[il][kd]) min_slots += pad((uint64_t)k * mat[il][kd]);
    }
    *minimum = *main + pad(2ull * 4 * n_layer * n_expert) + min_slots;
}

static void check_against_count(const char *path) {
    uint64_t main, experts, minimum;
    count(path, &main, &experts, &minimum);
    vkm_paging_budget b;
    CHECK_OK(vkm_experts_budget(path, 0, &b));
    CHECK_MSG(b.main_bytes == main, "%s: main %llu, counted %llu", path,
              (unsigned long long)b.main_bytes, (unsigned long long)main);
    CHECK_MSG(b.expert_bytes == experts, "%s: experts %llu, counted %llu", path,
              (unsigned long long)b.expert_bytes, (unsigned long long)experts);
    CHECK_MSG(b.minimum_bytes == minimum, "%s: minimum %llu, counted %llu", path,
              (unsigned long long)b.minimum_bytes, (unsigned long long)minimum);
    CHECK(b.minimum_bytes == b.main_bytes + b.ranges_bytes + b.min_slot_bytes);
    CHECK(b.n_classes >= 1 && b.top_k >= 1);
    CHECK(!b.paged && b.n_slots == 0 && b.budget == 0);
}

/* What bench --paging printed for the tiny fixture (lavapipe, before the budget API): the
 * budget of each row (p% of the expert bytes, clamped to the minimum at 10%) and its slots. */
static void check_tiny_bench(const char *path) {
    static const int pct[5] = {100, 75, 50, 25, 10};
    static const uint64_t bytes[5] = {1304832, 1108224, 911616, 715008, 616704};
    static const uint32_t slots[5] = {0, 24, 16, 8, 4}; /* 0: not paged ("all") */
    vkm_paging_budget b;
    CHECK_OK(vkm_experts_budget(path, 0, &b));
    CHECK(b.main_bytes == 517888);
    CHECK(b.expert_bytes == 786432);
    CHECK(b.minimum_bytes == 616704);
    for (int i = 0; i < 5; i++) {
        const uint64_t want =
            b.main_bytes + b.ranges_bytes + (uint64_t)ceil((double)b.expert_bytes * pct[i] / 100.0);
        const uint64_t budget = want < b.minimum_bytes ? b.minimum_bytes : want;
        CHECK_MSG(budget == bytes[i], "%d%%: budget %llu, bench printed %llu", pct[i],
                  (unsigned long long)budget, (unsigned long long)bytes[i]);
        vkm_paging_budget at;
        CHECK_OK(vkm_experts_budget(path, budget, &at));
        CHECK(at.budget == budget && at.minimum_bytes == b.minimum_bytes);
        CHECK_MSG(at.paged == (slots[i] != 0) && at.n_slots == slots[i],
                  "%d%%: paged %d with %u slots, the engine had %u", pct[i], at.paged, at.n_slots,
                  slots[i]);
        if (at.paged) {
            uint32_t sum = 0;
            for (int c = 0; c < at.n_classes && c < VKM_PAGING_MAX_CLASSES; c++)
                sum += at.class_slots[c];
            CHECK(sum == at.n_slots);
            CHECK(at.slot_bytes >= at.min_slot_bytes);
            CHECK(at.main_bytes + at.ranges_bytes + at.slot_bytes <= budget);
        }
    }
    vkm_paging_budget below;
    CHECK_OK(vkm_experts_budget(path, b.minimum_bytes - 1, &below));
    CHECK(!below.paged && below.n_slots == 0);
}

int main(void) {
    const char *tiny = VKMOE_FIXTURES_DIR "/tiny-v3-f32.gguf";
    const char *small = VKMOE_FIXTURES_DIR "/small-v3-q4_k_m.gguf";
    check_tiny_bench(tiny);
    check_against_count(tiny);
    check_against_count(small);
    vkm_paging_budget b;
    CHECK(vkm_experts_budget(NULL, 0, &b) == VKM_EINVAL);
    CHECK_ERR(vkm_experts_budget(VKMOE_FIXTURES_DIR "/no-such-file.gguf", 0, &b));
    return check_done();
}
