/* moe_cpu.c - routed experts of a MoE layer computed on the CPU (moe_cpu.h): gathers each
 * expert's token rows of the layer's FFN input, runs core/cpu_matmul.h's expert FFN on the
 * thread pool, and writes the outputs as the expert's grouped rows of work.eo's layout; plus
 * the cost model of VKM_EXPERT_EXEC_AUTO and its probe.
 *
 * Invariant: the gather scratch x holds at least x_rows rows of n_embd floats. */
#include "moe_cpu.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cpu_matmul.h"
#include "err.h"

#define MAX_TOKENS 65536u /* vkm_moe_cpu_max_tokens caps here (a batch's largest) */

uint32_t vkm_moe_cpu_max_tokens(const vkm_moe_cpu_costs *c) {
    if (!(c->cpu_gbps > 0) || !(c->upload_gbps > 0)) return 0;
    const double t = c->cpu_gbps / c->upload_gbps;
    return t >= MAX_TOKENS ? MAX_TOKENS : (uint32_t)t;
}

bool vkm_moe_cpu_prefer(const vkm_moe_cpu_costs *c, uint32_t tokens) {
    return tokens >= 1 && tokens <= vkm_moe_cpu_max_tokens(c);
}

struct vkm_moe_cpu {
    vkm_cpu_pool *pool; /* NULL with one thread */
    int threads;
    int64_t n_embd;
    float *x; /* [x_rows][n_embd] the gathered rows of one expert */
    uint32_t x_rows;
};

int vkm_moe_cpu_create(int threads, int64_t n_embd, vkm_moe_cpu **out) {
    *out = NULL;
    if (threads < 0 || threads > 257 || n_embd <= 0)
        return vkm_error(VKM_EINVAL, "CPU experts: %d threads (expected 0..257), n_embd %lld",
                         threads, (long long)n_embd);
    if (threads == 0) {
        const long n = sysconf(_SC_NPROCESSORS_ONLN);
        threads = n < 1 ? 1 : n > 257 ? 257 : (int)n;
    }
    vkm_moe_cpu *mc = calloc(1, sizeof *mc);
    if (!mc) return vkm_error(VKM_ENOMEM, "out of memory");
    mc->threads = threads;
    mc->n_embd = n_embd;
    if (threads > 1) {
        const int rc = vkm_cpu_pool_create(threads - 1, &mc->pool);
        if (rc) {
            free(mc);
            return rc;
        }
    }
    *out = mc;
    return 0;
}

void vkm_moe_cpu_destroy(vkm_moe_cpu *mc) {
    if (!mc) return;
    vkm_cpu_pool_destroy(mc->pool);
    free(mc->x);
    free(mc);
}

int vkm_moe_cpu_threads(const vkm_moe_cpu *mc) {
    return mc->threads;
}

bool vkm_moe_cpu_supported(const vkm_layer *L) {
    if (!L->moe || !L->ffn_down_exps.data || !vkm_cpu_has_type(L->ffn_down_exps.type)) return false;
    if (L->ffn_gate_up_exps.data) return vkm_cpu_has_type(L->ffn_gate_up_exps.type);
    return L->ffn_gate_exps.data && L->ffn_up_exps.data &&
           vkm_cpu_has_type(L->ffn_gate_exps.type) && vkm_cpu_has_type(L->ffn_up_exps.type);
}

static uint64_t mat_bytes(const vkm_tensor *t) {
    return t->data ? (uint64_t)t->ne[1] * t->row_bytes : 0;
}

uint64_t vkm_moe_cpu_expert_bytes(const vkm_layer *L) {
    return mat_bytes(&L->ffn_gate_exps) + mat_bytes(&L->ffn_up_exps) +
           mat_bytes(&L->ffn_gate_up_exps) + mat_bytes(&L->ffn_down_exps);
}

/* Grows the gather scratch to rows rows. */
static int reserve(vkm_moe_cpu *mc, uint32_t rows) {
    if (rows <= mc->x_rows) return 0;
    float *x = realloc(mc->x, (size_t)rows * (size_t)mc->n_embd * sizeof *x);
    if (!x) return vkm_error(VKM_ENOMEM, "CPU experts: out of memory for %u rows", rows);
    mc->x = x;
    mc->x_rows = rows;
    return 0;
}

int vkm_moe_cpu_layer(vkm_moe_cpu *mc, const vkm_layer *L, const float *a, const int32_t *sel,
                      uint32_t n_tok, uint32_t K, uint32_t n_expert, const int32_t *ranges,
                      const int32_t *xs, uint32_t n_x, float *eo) {
    const int64_t E = mc->n_embd;
    int rc;
    if (!vkm_moe_cpu_supported(L))
        return vkm_error(VKM_EUNSUPPORTED, "CPU experts: the layer's expert types have no CPU "
                                           "kernel");
    for (uint32_t i = 0; i < n_x; i++) {
        const int32_t x = xs[i];
        if (x < 0 || (uint32_t)x >= n_expert)
            return vkm_error(VKM_EINVAL, "CPU experts: expert %d of %u", x, n_expert);
        const int32_t first = ranges[2 * x], count = ranges[2 * x + 1];
        if (count <= 0) continue;
        if ((rc = reserve(mc, (uint32_t)count))) return rc;
        int32_t c = 0; /* the tokens that chose x, ascending: entries first .. first+count-1 */
        for (uint32_t t = 0; t < n_tok && c < count; t++)
            for (uint32_t j = 0; j < K; j++)
                if (sel[(size_t)t * K + j] == x) {
                    memcpy(mc->x + (size_t)c++ * (size_t)E, a + (size_t)t * (size_t)E,
                           (size_t)E * sizeof *a);
                    break;
                }
        if (c != count)
            return vkm_error(VKM_EINVAL, "CPU experts: expert %d has %d of its %d tokens", x, c,
                             count);
        vkm_cpu_expert ex;
        if ((rc = vkm_cpu_expert_of_layer(L, x, &ex)) ||
            (rc = vkm_cpu_expert_ffn(mc->pool, &ex, mc->x, count, eo + (size_t)first * (size_t)E)))
            return rc;
    }
    return 0;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int vkm_moe_cpu_probe(vkm_moe_cpu *mc, const vkm_layer *L, double *gbps) {
    *gbps = 0;
    const int64_t E = mc->n_embd;
    vkm_cpu_expert ex;
    int rc = vkm_cpu_expert_of_layer(L, 0, &ex);
    if (rc) return rc;
    float *x = malloc(2 * (size_t)E * sizeof *x);
    if (!x) return vkm_error(VKM_ENOMEM, "out of memory");
    uint32_t s = 12345;
    for (int64_t i = 0; i < E; i++) {
        s = s * 1664525u + 1013904223u;
        x[i] = (float)((double)(s >> 8) / (double)(1u << 24) - 0.5);
    }
    double best = 0;
    for (int r = 0; r < 3 && !rc; r++) {
        const double t0 = now_s();
        rc = vkm_cpu_expert_ffn(mc->pool, &ex, x, 1, x + E);
        const double dt = now_s() - t0;
        if (!rc && dt > 0 && (best == 0 || dt < best)) best = dt;
    }
    free(x);
    if (!rc && best > 0) *gbps = (double)vkm_moe_cpu_expert_bytes(L) / best * 1e-9;
    return rc;
}
