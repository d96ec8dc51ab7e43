/* experts.c - the routed experts of an engine: residency, uploads, prefetch, statistics, the
 * routing trace hook, and the budget arithmetic of expert paging (vkmoe.h vkm_experts_budget),
 * with core/pager.c as the pure policy underneath.
 *
 * Expert paging: when the weights exceed the VRAM budget (vkmoe.h), the experts are not uploaded
 * (weights.c gives them no buffer). MoE layers whose expert matrices have equal types and sizes
 * form a size class; each class gets a number of device slots (the same resident fraction for
 * every class, at least top-k), one stack buffer per matrix kind ([n_slots][matrix bytes]), and a
 * pager (core/pager.c) deciding residency. The forward pass calls vkm_engine_expert_page()
 * (through the session's hook) after each MoE router: the chosen experts are made resident in
 * rounds of at most n_slots, misses are copied into their slots with asynchronous copies (gpu.h
 * tickets), straight from imported regions of the file mapping (imports.c) or through the
 * staging ring (staging.c), the next batch waits on the device for the tickets of the round's
 * slots, and the slots' row ranges go to the GPU through a host-visible buffer. With prefetch
 * on, vkm_engine_expert_prefetch() then uploads the experts forward.c guessed for the next MoE
 * layer into free or cold slots (pager.h) without the next batch waiting for them. Misses
 * computed on the CPU (expert_exec cpu/auto) are offered to the pager for admission
 * (pager.h vkm_pager_admit) in round 0; the admitted ones are uploaded once the layer's GPU part
 * is submitted and its CPU experts computed, and a later round using such a slot waits for its
 * ticket like any other. When everything fits nothing of this exists and the forward is
 * unchanged.
 *
 * Invariants: a slot's ticket covers every copy into it still in flight, and a slot is
 * overwritten only after it; the range buffer is written only while no batch is in flight (its
 * two regions alternate by round); classes, slots and pagers do not change after setup. */
#include "experts.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cpu_matmul.h"
#include "err.h"
#include "imports.h"
#include "pager.h"
#include "weights.h"

#define AUTO_MARGIN ((uint64_t)512 << 20) /* automatic budget: most kept free besides a session */
/* LFU: forward passes after which a count has decayed to half. On bench-small with skewed
 * routing (40 passes) 8 to 10^9 passes gave the same hit rates within 1%, 2 passes 6% fewer
 * hits at 25% of the experts; 32 keeps counts long enough without freezing them. */
#define LFU_HALF_LIFE_PASSES 32.0

/* Paged experts of one size class: the MoE layers whose expert matrices have the same types and
 * sizes share device slots (a slot holds one (layer, expert) unit: its matrices of every kind). */
struct expert_class {
    uint32_t type[N_KINDS]; /* ggml type per kind (enum vkm_expert_kind) */
    size_t mat[N_KINDS];    /* bytes of one expert's matrix per kind, 0 = kind absent */
    size_t unit_bytes;      /* sum of mat[] */
    uint32_t n_layers;      /* MoE layers in the class */
    uint32_t n_slots;
    vkm_gpu_buf *buf[N_KINDS]; /* per present kind: the buffer of its slot stack [n_slots][mat] */
    size_t off[N_KINDS];       /* the stack's offset in it: gate and up share one buffer (the up
                                  stack after the gate stack) where both fit one weight window,
                                  so that the gated GEMV (gate, up and SwiGLU in one dispatch)
                                  runs on paged experts as on resident ones */
    uint64_t *ticket;          /* [n_slots] ticket of the last upload into the slot, 0 = none */
    vkm_pager *pager;          /* units (layer, expert) of the whole model; this class's only */
};

/* ------------------------------------------------------- size classes and budgets ---- */

/* A size as "%.2f MiB", or in bytes where that would round to 0.00 (a --vram-budget of 1K). */
static const char *size_text(char buf[48], uint64_t bytes) {
    if (bytes < 5243) /* 0.005 MiB */
        snprintf(buf, 48, "%llu bytes", (unsigned long long)bytes);
    else
        snprintf(buf, 48, "%.2f MiB", (double)bytes / MIB);
    return buf;
}

static const vkm_tensor *expert_tensor(const vkm_layer *L, int kind) {
    return kind == VKM_EXPERT_GATE      ? &L->ffn_gate_exps
           : kind == VKM_EXPERT_UP      ? &L->ffn_up_exps
           : kind == VKM_EXPERT_GATE_UP ? &L->ffn_gate_up_exps
                                        : &L->ffn_down_exps;
}

static vkm_dtensor *expert_dtensor(vkm_dlayer *L, int kind) {
    return kind == VKM_EXPERT_GATE      ? &L->ffn_gate_exps
           : kind == VKM_EXPERT_UP      ? &L->ffn_up_exps
           : kind == VKM_EXPERT_GATE_UP ? &L->ffn_gate_up_exps
                                        : &L->ffn_down_exps;
}

/* Device bytes of n slots of class c (each kind's stack padded to VKM_FWD_ALIGN). */
static uint64_t class_cost(const expert_class *c, uint64_t n) {
    uint64_t b = 0;
    for (int k = 0; k < N_KINDS; k++)
        if (c->mat[k]) b += (n * c->mat[k] + VKM_FWD_ALIGN - 1) / VKM_FWD_ALIGN * VKM_FWD_ALIGN;
    return b;
}

/* Sorts the MoE layers of m into size classes: *classes [n_layer] (the first *n_classes used),
 * *layer_class [n_layer] the class of each layer, -1 for dense ones and those skip[] names (CPU
 * layers; skip may be NULL). Both are set as soon as allocated (the caller frees them, on
 * failure too). */
static int build_classes(const vkm_model *m, const bool *skip, expert_class **classes,
                         int *n_classes, int **layer_class) {
    const vkm_hparams *hp = &m->hp;
    int *lc = *layer_class = malloc(hp->n_layer * sizeof *lc);
    if (!lc) return vkm_error(VKM_ENOMEM, "out of memory");
    expert_class *cl = *classes = calloc(hp->n_layer, sizeof *cl);
    if (!cl) return vkm_error(VKM_ENOMEM, "out of memory");
    int n = 0;
    for (uint32_t il = 0; il < hp->n_layer; il++) {
        const vkm_layer *L = &m->layers[il];
        lc[il] = -1;
        if (!L->moe || hp->n_expert == 0 || (skip && skip[il])) continue;
        expert_class key = {0};
        for (int k = 0; k < N_KINDS; k++) {
            const vkm_tensor *t = expert_tensor(L, k);
            if (!t->data) continue;
            key.type[k] = t->type;
            key.mat[k] = (size_t)t->ne[1] * t->row_bytes;
            key.unit_bytes += key.mat[k];
        }
        int c = 0;
        while (c < n && (memcmp(cl[c].type, key.type, sizeof key.type) ||
                         memcmp(cl[c].mat, key.mat, sizeof key.mat)))
            c++;
        if (c == n) cl[n++] = key;
        cl[c].n_layers++;
        lc[il] = c;
        *n_classes = n;
    }
    return 0;
}

/* The automatic budget (vkmoe.h) and what it is made of. */
typedef struct auto_budget {
    uint64_t heap;     /* the device heap's budget */
    uint64_t kv, work; /* the session's KV cache and work buffer */
    uint64_t margin;
    int n_ctx, max_batch; /* of the session */
    uint64_t budget;      /* heap - kv - work - margin, or 0 */
} auto_budget;

/* The device heap's budget less the KV cache and work buffer of the session the engine options
 * describe and a margin of 1/16 of the heap budget (at most AUTO_MARGIN). */
static int automatic_budget(vkm_engine *e, auto_budget *ab) {
    const vkm_gpu_device_info *di = vkm_gpu_info(e->gpu);
    const vkm_session_opts so = {e->opts.n_ctx, e->opts.kv_f32, e->opts.max_batch, NULL};
    vkm_session_layout lay;
    int rc = vkm_session_plan(&e->model->hp, e->gpu, &so, &lay);
    if (rc) return rc;
    memset(ab, 0, sizeof *ab);
    ab->heap = di->budget_bytes;
    ab->kv = lay.kv.bytes;
    ab->work = lay.w.bytes;
    ab->margin = ab->heap / 16 < AUTO_MARGIN ? ab->heap / 16 : AUTO_MARGIN;
    ab->n_ctx = lay.n_ctx;
    ab->max_batch = lay.max_batch;
    const uint64_t session = ab->kv + ab->work + ab->margin;
    ab->budget = ab->heap > session ? ab->heap - session : 0;
    return 0;
}

/* The paging figures of the size classes cls[n] of a model hp whose other weights take main
 * bytes and routed experts `experts` (vkmoe.h vkm_paging_budget; budget fields left 0); *all
 * receives the bytes of every (layer, expert) unit of the classes. */
static void budget_figures(const vkm_hparams *hp, const expert_class *cls, int n, uint64_t main,
                           uint64_t experts, vkm_paging_budget *b, uint64_t *all) {
    const uint64_t X = hp->n_expert, K = hp->n_expert_used ? hp->n_expert_used : 1;
    memset(b, 0, sizeof *b);
    b->main_bytes = main;
    b->expert_bytes = experts;
    b->ranges_bytes =
        (2 * 4 * (uint64_t)hp->n_layer * X + VKM_FWD_ALIGN - 1) / VKM_FWD_ALIGN * VKM_FWD_ALIGN;
    b->n_classes = n;
    b->top_k = (uint32_t)K;
    *all = 0;
    for (int c = 0; c < n; c++) {
        b->min_slot_bytes += class_cost(&cls[c], K);
        *all += cls[c].n_layers * X * cls[c].unit_bytes;
    }
    b->minimum_bytes = main + b->ranges_bytes + b->min_slot_bytes;
}

/* Gives each class of cls[n] its slots for `avail` bytes of slot stacks, `extra` of them above
 * the top-k minimum, stacks of at most cap bytes: the same fraction of every class's `all`
 * units' bytes resident, at least top-k. VKM_EUNSUPPORTED (naming path) when top-k of a
 * class's largest matrix exceed cap. */
static int assign_slots(const char *path, const vkm_hparams *hp, expert_class *cls, int n_cls,
                        uint64_t all, uint64_t avail, uint64_t extra, uint64_t cap) {
    const uint64_t X = hp->n_expert, K = hp->n_expert_used ? hp->n_expert_used : 1;
    uint64_t used = 0;
    for (int c = 0; c < n_cls; c++) {
        expert_class *ec = &cls[c];
        const uint64_t units = ec->n_layers * X;
        size_t biggest = 0;
        for (int k = 0; k < N_KINDS; k++) biggest = ec->mat[k] > biggest ? ec->mat[k] : biggest;
        const uint64_t fit = cap / biggest; /* slots one stack buffer can hold */
        if (fit < K)
            return vkm_error(VKM_EUNSUPPORTED,
                             "%s: an expert matrix of %.1f MiB: %u of them exceed a buffer", path,
                             (double)biggest / MIB, (unsigned)K);
        /* the same fraction of every class resident */
        uint64_t n = K + (uint64_t)((double)extra * ((double)units / (double)all));
        if (n > units) n = units;
        if (n > fit) n = fit;
        while (n > K && used + class_cost(ec, n) > avail) n--;
        ec->n_slots = (uint32_t)n;
        used += class_cost(ec, n);
    }
    return 0;
}

/* The MoE layers whose routed experts all run on the CPU (opts.cpu_moe, n_cpu_moe): e->layer_cpu
 * and n_layer_cpu. Layers whose expert types have no CPU kernel stay on the GPU (with a note). */
static int plan_cpu_layers(vkm_engine *e) {
    const vkm_hparams *hp = &e->model->hp;
    if (e->layer_cpu || (!e->opts.cpu_moe && e->opts.n_cpu_moe <= 0)) return 0;
    if (!(e->layer_cpu = calloc(hp->n_layer, sizeof *e->layer_cpu)))
        return vkm_error(VKM_ENOMEM, "out of memory");
    uint32_t moe = 0, skipped = 0;
    for (uint32_t il = 0; il < hp->n_layer; il++) {
        const vkm_layer *L = &e->model->layers[il];
        if (!L->moe || hp->n_expert == 0) continue;
        if (!e->opts.cpu_moe && moe++ >= (uint32_t)e->opts.n_cpu_moe) break;
        if (!vkm_moe_cpu_supported(L)) {
            skipped++;
            continue;
        }
        e->layer_cpu[il] = true;
        e->n_layer_cpu++;
    }
    if (skipped && !e->opts.quiet)
        fprintf(stderr,
                "vkmoe: %u MoE layer%s of --cpu-moe / --n-cpu-moe stay on the GPU: their expert "
                "types have no CPU kernel\n",
                skipped, skipped > 1 ? "s" : "");
    return 0;
}

int vkm_experts_plan(vkm_engine *e, uint64_t main, uint64_t experts, uint64_t cap, uint64_t forced,
                     bool in_place) {
    const vkm_hparams *hp = &e->model->hp;
    const char *path = e->opts.model_path;
    uint64_t budget = forced ? forced : e->opts.vram_budget;
    const bool automatic = budget == 0;
    if (automatic && e->opts.compile_only) return 0; /* no memory to plan for: all resident */
    int rc = plan_cpu_layers(e);
    if (rc) return rc;
    /* CPU layers: their experts never go to the device, the others' are paged (in slots for
     * all of them where the budget allows) so that every MoE layer goes through the hook */
    const bool cpu_layers = e->n_layer_cpu > 0;
    auto_budget ab = {0};
    if (automatic) {
        if ((rc = automatic_budget(e, &ab))) return rc;
        budget = ab.budget;
        if (in_place && !cpu_layers) return 0; /* no device memory for the weights: no paging */
    }
    if (main + experts <= budget && !cpu_layers) return 0;
    if ((rc = build_classes(e->model, e->layer_cpu, &e->classes, &e->n_classes, &e->layer_class)))
        return rc;
    if (e->n_classes == 0 && cpu_layers) { /* every MoE layer on the CPU: no slots */
        e->paged = true;
        snprintf(e->page_why, sizeof e->page_why, "; %u MoE layers on the CPU", e->n_layer_cpu);
        return 0;
    }
    if (e->n_classes == 0) {
        if (automatic) return 0; /* nothing to page: the allocation will tell */
        char bt[48];
        return vkm_error(VKM_EDEVMEM,
                         "%s: the weights need %.1f MiB of device memory, above the budget of "
                         "%s (--vram-budget)",
                         path, (double)(main + experts) / MIB, size_text(bt, budget));
    }
    const uint64_t K = hp->n_expert_used ? hp->n_expert_used : 1;
    vkm_paging_budget fig;
    uint64_t all = 0;
    budget_figures(hp, e->classes, e->n_classes, main, experts, &fig, &all);
    const uint64_t mats = fig.ranges_bytes, min_slots = fig.min_slot_bytes;
    const uint64_t minimum = fig.minimum_bytes;
    e->page_main = main;
    e->page_minimum = minimum;
    if (budget < minimum && automatic)
        return vkm_error(
            VKM_EDEVMEM,
            "%s: the weights need %.1f MiB of device memory and paging the experts at least "
            "%.1f MiB (%.1f MiB of other weights + the top-%u experts of one MoE layer%s), but "
            "%s leaves %.1f MiB for weights: its memory budget of %.1f MiB less the KV cache "
            "of a %d-token context (%.1f MiB), the work buffers of %d-token batches (%.1f MiB) "
            "and a margin of %.1f MiB. Paging needs %.1f MiB in all; a smaller context (-c, --ctx) "
            "shrinks the KV cache (and below %d tokens the batches), and --vram-budget SIZE (at "
            "least %.1f MiB) sets the weights' share directly",
            path, (double)(main + experts) / MIB, (double)minimum / MIB, (double)main / MIB,
            (unsigned)K, e->n_classes > 1 ? " per expert size class" : "",
            vkm_gpu_info(e->gpu)->name, (double)budget / MIB, (double)ab.heap / MIB, ab.n_ctx,
            (double)ab.kv / MIB, ab.max_batch, (double)ab.work / MIB, (double)ab.margin / MIB,
            (double)(minimum + ab.kv + ab.work + ab.margin) / MIB, ab.max_batch,
            (double)minimum / MIB);
    char bt[48];
    if (budget < minimum)
        return vkm_error(VKM_EDEVMEM,
                         "%s: the weights need %.1f MiB of device memory, above the budget of "
                         "%s (--vram-budget), and paging the experts needs a minimum of "
                         "%.2f MiB (%.2f MiB of other weights + the top-%u experts of one MoE "
                         "layer%s: %.2f MiB)",
                         path, (double)(main + experts) / MIB, size_text(bt, budget),
                         (double)minimum / MIB, (double)main / MIB, (unsigned)K,
                         e->n_classes > 1 ? " per expert size class" : "", (double)min_slots / MIB);
    if (automatic)
        snprintf(e->page_why, sizeof e->page_why,
                 "; automatic budget %.1f MiB (a %.1f MiB device budget less %.1f MiB of KV cache "
                 "and work buffers and a %.1f MiB margin; --vram-budget sets it)",
                 (double)budget / MIB, (double)ab.heap / MIB, (double)(ab.kv + ab.work) / MIB,
                 (double)ab.margin / MIB);
    const uint64_t avail = budget - main - mats, extra = avail - min_slots;
    if ((rc = assign_slots(path, hp, e->classes, e->n_classes, all, avail, extra, cap))) return rc;
    if (cpu_layers) {
        const size_t k = strlen(e->page_why);
        snprintf(e->page_why + k, sizeof e->page_why - k, "; %u MoE layers on the CPU",
                 e->n_layer_cpu);
    }
    e->paged = true;
    return 0;
}

/* -------------------------------------------------------------------------- setup ---- */

/* Creates the slot stacks of every class. When the device is out of memory, frees them, halves
 * the slots above the minimum (top-k) of every class and tries again; at the minimum, a clear
 * VKM_EDEVMEM naming it. */
/* Frees the slot buffers of class c (gate and up may share one). */
static void destroy_slot_bufs(vkm_engine *e, expert_class *c) {
    for (int k = 0; k < N_KINDS; k++) {
        const bool shared = k == VKM_EXPERT_UP && c->buf[k] == c->buf[VKM_EXPERT_GATE];
        if (!shared) vkm_gpu_buf_destroy(e->gpu, c->buf[k]);
    }
    for (int k = 0; k < N_KINDS; k++) {
        c->buf[k] = NULL;
        c->off[k] = 0;
    }
}

/* The slot buffers of class c at its n_slots: a buffer per kind, except gate and up together in
 * one where both stacks fit one weight window (the gated GEMV binds them as one). */
static int create_class_bufs(vkm_engine *e, expert_class *c) {
    size_t stack[N_KINDS];
    for (int k = 0; k < N_KINDS; k++)
        stack[k] =
            ((size_t)c->n_slots * c->mat[k] + VKM_FWD_ALIGN - 1) / VKM_FWD_ALIGN * VKM_FWD_ALIGN;
    const int G = VKM_EXPERT_GATE, U = VKM_EXPERT_UP;
    const bool pair =
        c->mat[G] && c->mat[U] && stack[G] + stack[U] <= vkm_gpu_info(e->gpu)->weight_window_bytes;
    int rc = 0;
    for (int k = 0; !rc && k < N_KINDS; k++) {
        if (!c->mat[k]) continue;
        if (pair && k == U) {
            c->buf[U] = c->buf[G];
            c->off[U] = stack[G];
            continue;
        }
        const size_t bytes = pair && k == G ? stack[G] + stack[U] : stack[k];
        rc = vkm_gpu_buf_create(e->gpu, bytes, VKM_BUF_DEVICE, &c->buf[k]);
    }
    return rc;
}

static int create_slot_bufs(vkm_engine *e) {
    const uint32_t K = e->model->hp.n_expert_used ? e->model->hp.n_expert_used : 1;
    bool shrunk = false;
    for (;;) {
        int rc = 0;
        for (int c = 0; !rc && c < e->n_classes; c++) rc = create_class_bufs(e, &e->classes[c]);
        if (!rc) break;
        for (int c = 0; c < e->n_classes; c++) destroy_slot_bufs(e, &e->classes[c]);
        if (rc != VKM_EDEVMEM) return rc;
        bool any = false;
        for (int c = 0; c < e->n_classes; c++) {
            expert_class *ec = &e->classes[c];
            if (ec->n_slots <= K) continue;
            ec->n_slots = K + (ec->n_slots - K) / 2;
            any = true;
        }
        if (!any) {
            char why[512]; /* vkm_error() reuses the buffer vkm_errmsg() points to */
            snprintf(why, sizeof why, "%s", vkm_errmsg());
            return vkm_error(VKM_EDEVMEM,
                             "%s: out of device memory for the expert cache at the paging minimum "
                             "of %.2f MiB (%.2f MiB of other weights + the top-%u experts of one "
                             "MoE layer%s): %s",
                             e->opts.model_path, (double)e->page_minimum / MIB,
                             (double)e->page_main / MIB, (unsigned)K,
                             e->n_classes > 1 ? " per expert size class" : "", why);
        }
        shrunk = true;
    }
    if (shrunk && !e->opts.quiet) {
        uint32_t slots = 0;
        for (int c = 0; c < e->n_classes; c++) slots += e->classes[c].n_slots;
        fprintf(stderr, "vkmoe: device memory short: expert cache shrunk to %u slots\n", slots);
    }
    vkm_error_clear();
    return 0;
}

/* Paged experts: imports the regions of the paged expert tensors, so that upload_unit copies a
 * unit into its slot straight from them. Without import support, with VKMOE_IMPORT=off, or (auto)
 * when the expert bytes exceed half the physical memory, nothing happens: the staging ring
 * serves every upload. A region the driver refuses leaves its tensors to the ring too. */
static int import_experts(vkm_engine *e) {
    const size_t gran = vkm_import_granule(e);
    if (e->import_mode == VKM_IMPORT_OFF || !gran) return 0;
    const vkm_hparams *hp = &e->model->hp;
    const int n_idx = (int)hp->n_layer * N_KINDS;
    vkm_import_item *it = malloc((size_t)n_idx * sizeof *it);
    if (!it) return vkm_error(VKM_ENOMEM, "out of memory");
    int n = 0;
    uint64_t bytes = 0;
    for (uint32_t il = 0; il < hp->n_layer; il++) {
        if (e->layer_class[il] < 0) continue;
        for (int k = 0; k < N_KINDS; k++) {
            const vkm_tensor *t = expert_tensor(&e->model->layers[il], k);
            if (!t->data) continue;
            it[n++] = vkm_import_item_of(e, t, t->nbytes, (int)il * N_KINDS + k);
            bytes += t->nbytes;
        }
    }
    const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    const uint64_t phys = pages > 0 && page > 0 ? (uint64_t)pages * (uint64_t)page : 0;
    if (e->import_mode == VKM_IMPORT_AUTO && phys && bytes > phys / 2) {
        if (!e->opts.quiet)
            fprintf(stderr,
                    "vkmoe: paged experts (%.0f MiB) exceed half the memory: not imported, "
                    "staged (VKMOE_IMPORT=on imports them)\n",
                    (double)bytes / MIB);
        free(it);
        return 0;
    }
    const int first = e->n_regions;
    int rc = vkm_import_group_regions(e, it, n, gran, vkm_weights_pack_cap(e) / gran * gran,
                                      vkm_weights_big_cap(e) / gran * gran, 1);
    for (int r = first; !rc && r < e->n_regions; r++) rc = vkm_import_region(e, r);
    if (!rc && !(e->exp_region = malloc((size_t)n_idx * sizeof *e->exp_region)))
        rc = vkm_error(VKM_ENOMEM, "out of memory");
    if (!rc && !(e->exp_off = calloc((size_t)n_idx, sizeof *e->exp_off)))
        rc = vkm_error(VKM_ENOMEM, "out of memory");
    if (!rc) {
        for (int i = 0; i < n_idx; i++) e->exp_region[i] = -1;
        for (int i = 0; i < n; i++)
            if (it[i].region >= 0 && e->regions[it[i].region].buf) {
                e->exp_region[it[i].idx] = it[i].region;
                e->exp_off[it[i].idx] = it[i].roff;
            }
    }
    free(it);
    return rc;
}

static int upload_unit(vkm_engine *e, expert_class *c, uint32_t il, uint32_t x, uint32_t s);

static const char *exec_name(int x) {
    return x == VKM_EXPERT_EXEC_AUTO ? "auto" : x == VKM_EXPERT_EXEC_CPU ? "cpu" : "gpu";
}

static double now_ms(void);

/* The CPU executor, when anything may run there (CPU layers, or paged misses with expert_exec
 * auto/cpu), and the probe of AUTO's cost model: one expert of the first paged layer computed
 * for one token, and uploaded into slot 0 of its class (still free: the pager does not know),
 * the best of two or three each. */
static int setup_cpu(vkm_engine *e) {
    const bool misses = e->n_classes > 0 && e->opts.expert_exec != VKM_EXPERT_EXEC_GPU;
    if (!e->n_layer_cpu && !misses) return 0;
    int rc = vkm_moe_cpu_create(e->opts.cpu_threads, e->model->hp.n_embd, &e->moe_cpu);
    if (rc || e->opts.expert_exec != VKM_EXPERT_EXEC_AUTO || !e->n_classes) return rc;
    uint32_t il = 0;
    while (e->layer_class[il] != 0) il++;
    const vkm_layer *L = &e->model->layers[il];
    if (!vkm_moe_cpu_supported(L)) return 0; /* AUTO then uploads every miss */
    if ((rc = vkm_moe_cpu_probe(e->moe_cpu, L, &e->costs.cpu_gbps))) return rc;
    expert_class *c = &e->classes[0];
    double best = 0;
    for (int r = 0; r < 2; r++) {
        const double t0 = now_ms();
        if ((rc = upload_unit(e, c, il, 0, 0)) ||
            (c->ticket[0] && (rc = vkm_gpu_ticket_wait(e->gpu, c->ticket[0]))))
            return rc;
        const double dt = now_ms() - t0;
        if (dt > 0 && (best == 0 || dt < best)) best = dt;
    }
    if (best > 0) e->costs.upload_gbps = (double)c->unit_bytes / best * 1e-6;
    return 0;
}

int vkm_experts_setup(vkm_engine *e) {
    const vkm_hparams *hp = &e->model->hp;
    uint32_t max_slots = 0;
    size_t biggest = 0;
    int rc = create_slot_bufs(e);
    if (rc) return rc;
    for (int c = 0; c < e->n_classes; c++) {
        expert_class *ec = &e->classes[c];
        for (int k = 0; k < N_KINDS; k++) biggest = ec->mat[k] > biggest ? ec->mat[k] : biggest;
        /* each of the class's layers makes one request per forward pass */
        vkm_pager_opts po = {hp->n_layer, hp->n_expert, ec->n_slots, e->opts.expert_policy,
                             LFU_HALF_LIFE_PASSES * ec->n_layers};
        if ((rc = vkm_pager_create(&po, &ec->pager))) return rc;
        max_slots = ec->n_slots > max_slots ? ec->n_slots : max_slots;
    }
    if (biggest && (rc = vkm_staging_create(e->gpu, biggest, &e->staging))) return rc;
    e->mats_region = align_up((size_t)(max_slots ? max_slots : 1) * 8);
    if ((rc = vkm_gpu_buf_create(e->gpu, 2 * e->mats_region, VKM_BUF_HOST, &e->mats_buf)))
        return rc;
    if (!vkm_gpu_buf_map(e->mats_buf))
        return vkm_error(VKM_EUNSUPPORTED, "the expert range buffer is not host visible");
    for (int c = 0; c < e->n_classes; c++) {
        if (!(e->classes[c].ticket = calloc(e->classes[c].n_slots, sizeof(uint64_t))))
            return vkm_error(VKM_ENOMEM, "out of memory");
    }
    const size_t X = hp->n_expert;
    if (!(e->ranges = malloc(2 * X * sizeof *e->ranges)) ||
        !(e->todo = malloc(X * sizeof *e->todo)) ||
        !(e->round_slots = malloc(X * sizeof *e->round_slots)) ||
        !(e->round_miss = malloc(X * sizeof *e->round_miss)) ||
        !(e->votes = malloc(X * sizeof *e->votes)) ||
        !(e->cpu_list = malloc(X * sizeof *e->cpu_list)) ||
        !(e->admit = malloc(X * sizeof *e->admit)) ||
        !(e->admit_slot = malloc(X * sizeof *e->admit_slot)))
        return vkm_error(VKM_ENOMEM, "out of memory");
    for (uint32_t il = 0; il < hp->n_layer; il++) {
        if (e->layer_class[il] < 0) continue;
        const expert_class *ec = &e->classes[e->layer_class[il]];
        for (int k = 0; k < N_KINDS; k++) {
            const vkm_tensor *t = expert_tensor(&e->model->layers[il], k);
            if (!t->data) continue;
            *expert_dtensor(&e->dm.layers[il], k) =
                (vkm_dtensor){ec->buf[k],
                              ec->off[k],
                              t->type,
                              {t->ne[0], t->ne[1], ec->n_slots, 1},
                              (size_t)ec->n_slots * ec->mat[k],
                              t->row_bytes};
        }
    }
    if ((rc = import_experts(e)) || (rc = setup_cpu(e))) return rc;
    if (!e->opts.quiet) {
        uint32_t slots = 0;
        uint64_t bytes = 0;
        for (int c = 0; c < e->n_classes; c++) {
            slots += e->classes[c].n_slots;
            bytes += class_cost(&e->classes[c], e->classes[c].n_slots);
        }
        fprintf(stderr, "vkmoe: paging experts: %u slots (%.1f MiB) in %d size class%s, %s%s\n",
                slots, (double)bytes / MIB, e->n_classes, e->n_classes != 1 ? "es" : "",
                e->opts.expert_policy == VKM_EXPERT_LRU ? "LRU" : "LFU", e->page_why);
        if (e->moe_cpu)
            fprintf(stderr, "vkmoe: experts on the CPU: %d threads, %s kernels, misses: %s\n",
                    vkm_moe_cpu_threads(e->moe_cpu), vkm_cpu_isa_name(vkm_cpu_isa()),
                    exec_name(e->opts.expert_exec));
        if (e->opts.expert_exec == VKM_EXPERT_EXEC_AUTO && e->costs.cpu_gbps > 0)
            fprintf(stderr,
                    "vkmoe: auto: CPU expert %.2f GB/s, upload %.2f GB/s: a miss of up to %u "
                    "tokens is computed on the CPU\n",
                    e->costs.cpu_gbps, e->costs.upload_gbps, vkm_moe_cpu_max_tokens(&e->costs));
    }
    return 0;
}

void vkm_experts_destroy(vkm_engine *e) {
    vkm_staging_destroy(e->staging);
    e->staging = NULL;
    for (int c = 0; c < e->n_classes; c++) {
        destroy_slot_bufs(e, &e->classes[c]);
        vkm_pager_destroy(e->classes[c].pager);
        free(e->classes[c].ticket);
    }
    free(e->classes);
    free(e->layer_class);
    vkm_gpu_buf_destroy(e->gpu, e->mats_buf);
    free(e->ranges);
    free(e->todo);
    free(e->round_slots);
    free(e->round_miss);
    free(e->votes);
    free(e->exp_region);
    free(e->exp_off);
    free(e->layer_cpu);
    free(e->cpu_list);
    free(e->admit);
    free(e->admit_slot);
    vkm_moe_cpu_destroy(e->moe_cpu);
}

/* ------------------------------------------------------------------------- paging ---- */

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

/* Starts the upload of unit (il, x) of class c into slot s, each matrix either with one
 * asynchronous copy straight from its imported region of the file mapping (import_experts), or
 * through the staging ring (staging.h vkm_staging_upload). c->ticket[s] receives the last
 * copy's ticket (which covers the earlier ones). A slot whose previous upload is still in flight
 * is waited for first (its bytes are about to be overwritten). */
static int upload_unit(vkm_engine *e, expert_class *c, uint32_t il, uint32_t x, uint32_t s) {
    int rc;
    if (c->ticket[s] && (rc = vkm_gpu_ticket_wait(e->gpu, c->ticket[s]))) return rc;
    for (int k = 0; k < N_KINDS; k++) {
        if (!c->mat[k]) continue;
        const int ri = e->exp_region ? e->exp_region[il * N_KINDS + (uint32_t)k] : -1;
        if (ri >= 0) {
            uint64_t t = 0;
            if ((rc = vkm_gpu_copy_async(
                     e->gpu, e->regions[ri].buf,
                     e->exp_off[il * N_KINDS + (uint32_t)k] + (size_t)x * c->mat[k], c->buf[k],
                     c->off[k] + (size_t)s * c->mat[k], c->mat[k], &t)))
                return rc;
            c->ticket[s] = t;
            e->imp.expert_bytes += c->mat[k];
            continue;
        }
        const char *src =
            (const char *)expert_tensor(&e->model->layers[il], k)->data + (size_t)x * c->mat[k];
        if ((rc = vkm_staging_upload(e->staging, src, c->mat[k], c->buf[k],
                                     c->off[k] + (size_t)s * c->mat[k], &c->ticket[s])))
            return rc;
    }
    return 0;
}

bool vkm_engine_paged(const vkm_engine *e) {
    return e->paged;
}

bool vkm_engine_prefetching(const vkm_engine *e) {
    return e->paged && e->prefetch;
}

/* Round 0 of paged layer il of class c: sorts the chosen experts (ranges) into e->todo, the GPU's
 * (resident first, so that this layer's misses cannot evict them before use, then the misses
 * to upload), and e->cpu_list, the misses computed on the CPU (expert_exec cpu, or auto where
 * the cost model prefers it). */
static void sort_round0(vkm_engine *e, expert_class *c, uint32_t il) {
    const uint32_t X = e->model->hp.n_expert;
    const int mode = e->opts.expert_exec;
    const bool cpu =
        e->moe_cpu && mode != VKM_EXPERT_EXEC_GPU && vkm_moe_cpu_supported(&e->model->layers[il]);
    e->n_todo = e->todo_at = e->n_cpu = 0;
    for (int pass = 0; pass < 2; pass++)
        for (uint32_t x = 0; x < X; x++) {
            const int32_t count = e->ranges[2 * x + 1];
            if (count <= 0 || (vkm_pager_slot_of(c->pager, il, x) >= 0) != (pass == 0)) continue;
            if (pass == 1 && cpu &&
                (mode == VKM_EXPERT_EXEC_CPU || vkm_moe_cpu_prefer(&e->costs, (uint32_t)count)))
                e->cpu_list[e->n_cpu++] = (int32_t)x;
            else
                e->todo[e->n_todo++] = (int32_t)x;
        }
}

/* Round 0, after the pager request of the GPU's experts: offers each CPU miss to the pager
 * (pager.h vkm_pager_admit: free slots, or with LFU a colder unit the round does not use) and
 * keeps the admitted ones in e->admit / e->admit_slot, uploaded by upload_admitted once the
 * layer's GPU part is submitted and its CPU experts computed. A layer of several rounds admits
 * nothing: its later rounds need the slots. */
static int admit_round0(vkm_engine *e, expert_class *c, uint32_t il) {
    const bool one_round = e->n_todo <= c->n_slots;
    for (uint32_t i = 0; i < e->n_cpu; i++) {
        int32_t sl = -1;
        if (!one_round) {
            e->cpu_misses++;
            continue;
        }
        int rc = vkm_pager_admit(c->pager, il, e->cpu_list[i], &sl);
        if (rc) return rc;
        if (sl < 0) continue;
        e->admit[e->n_admit] = e->cpu_list[i];
        e->admit_slot[e->n_admit++] = sl;
    }
    e->admit_layer = il;
    return 0;
}

/* Issues the uploads of the units admitted in round 0 of layer e->admit_layer (asynchronous
 * copies; nothing waits for them: a later round using the slot waits for its ticket on the
 * device). A unit the pager has moved out of its slot since is skipped. */
static int upload_admitted(vkm_engine *e) {
    const uint32_t n = e->n_admit, il = e->admit_layer;
    e->n_admit = 0;
    if (!n) return 0;
    expert_class *c = &e->classes[e->layer_class[il]];
    const double t0 = now_ms();
    uint64_t bytes = 0;
    for (uint32_t i = 0; i < n; i++) {
        const uint32_t x = (uint32_t)e->admit[i], sl = (uint32_t)e->admit_slot[i];
        if (vkm_pager_slot_of(c->pager, il, x) != (int32_t)sl) continue;
        int rc = upload_unit(e, c, il, x, sl);
        if (rc) return rc;
        bytes += c->unit_bytes;
    }
    if (bytes) vkm_pager_note_upload(c->pager, bytes, now_ms() - t0);
    return 0;
}

int vkm_engine_expert_page(vkm_engine *e, uint32_t il, uint32_t round, const int32_t *sel,
                           uint32_t n_sel, vkm_fwd_expert_plan *plan) {
    const vkm_hparams *hp = &e->model->hp;
    const bool cpu_layer = e->layer_cpu && il < hp->n_layer && e->layer_cpu[il];
    if (!e->paged || il >= hp->n_layer || (e->layer_class[il] < 0 && !cpu_layer) ||
        (round == 0 && !sel))
        return vkm_error(VKM_EINVAL, "expert paging: layer %u round %u is not a paged MoE layer",
                         il, round);
    const uint32_t X = hp->n_expert;
    int rc = upload_admitted(e); /* left by a layer whose CPU part did not run: issued now */
    if (rc) return rc;
    if (cpu_layer) { /* every chosen expert on the CPU, nothing on the GPU */
        if (round != 0)
            return vkm_error(VKM_EINVAL, "expert paging: layer %u has no round %u", il, round);
        vkm_pager_expert_ranges(sel, n_sel, X, e->ranges);
        e->n_todo = e->todo_at = e->n_cpu = 0;
        for (uint32_t x = 0; x < X; x++)
            if (e->ranges[2 * x + 1] > 0) e->cpu_list[e->n_cpu++] = (int32_t)x;
        *plan = (vkm_fwd_expert_plan){e->mats_buf, 0, 0, 0, true};
        return 0;
    }
    expert_class *c = &e->classes[e->layer_class[il]];
    if (round == 0) {
        vkm_pager_expert_ranges(sel, n_sel, X, e->ranges);
        sort_round0(e, c, il);
    } else if (e->todo_at >= e->n_todo) {
        return vkm_error(VKM_EINVAL, "expert paging: layer %u has no round %u", il, round);
    }
    const uint32_t left = e->n_todo - e->todo_at;
    const uint32_t n = left < c->n_slots ? left : c->n_slots;
    const int32_t *xs = e->todo + e->todo_at;
    /* round 0 always requests (n may be 0), so that the pager's time and pins are this layer's */
    if ((n || round == 0) &&
        (rc = vkm_pager_request(c->pager, il, xs, (int)n, e->round_slots, e->round_miss)))
        return rc;
    if (round == 0 && e->n_cpu && (rc = admit_round0(e, c, il))) return rc;
    if (e->opts.expert_trace && n) /* routing trace hook (vkmoe.h): the GPU's experts */
        e->opts.expert_trace(e->opts.expert_trace_user, il, (uint32_t)e->layer_class[il],
                             c->n_slots, xs, n);
    const double t0 = now_ms();
    uint64_t bytes = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (!e->round_miss[i]) continue;
        if ((rc = upload_unit(e, c, il, (uint32_t)xs[i], (uint32_t)e->round_slots[i]))) return rc;
        bytes += c->unit_bytes;
    }
    if (bytes) vkm_pager_note_upload(c->pager, bytes, now_ms() - t0);
    e->todo_at += n;
    const bool last = e->todo_at >= e->n_todo;
    if (n == 0) { /* every chosen expert on the CPU */
        *plan = (vkm_fwd_expert_plan){e->mats_buf, 0, 0, 0, last};
        return 0;
    }
    uint32_t lo = (uint32_t)e->round_slots[0], hi = lo;
    for (uint32_t i = 1; i < n; i++) {
        const uint32_t sl = (uint32_t)e->round_slots[i];
        lo = sl < lo ? sl : lo;
        hi = sl > hi ? sl : hi;
    }
    const uint32_t n_mat = hi - lo + 1;
    /* the round's batch waits (on the device) for the uploads of its slots, including
     * prefetched ones still in flight */
    uint64_t need = 0;
    for (uint32_t i = 0; i < n; i++) {
        const uint64_t t = c->ticket[e->round_slots[i]];
        need = t > need ? t : need;
    }
    if ((rc = vkm_gpu_wait_ticket_on_next_submit(e->gpu, need))) return rc;
    /* no batch is in flight now, so the host-visible range buffer can be written */
    const size_t mats_off = (size_t)(e->mats_flip++ & 1) * e->mats_region;
    int32_t *mats = (int32_t *)((char *)vkm_gpu_buf_map(e->mats_buf) + mats_off);
    memset(mats, 0, (size_t)n_mat * 2 * sizeof *mats);
    for (uint32_t i = 0; i < n; i++) {
        const uint32_t j = (uint32_t)e->round_slots[i] - lo;
        mats[2 * j] = e->ranges[2 * xs[i]];
        mats[2 * j + 1] = e->ranges[2 * xs[i] + 1];
    }
    *plan = (vkm_fwd_expert_plan){e->mats_buf, mats_off, lo, n_mat, last};
    return 0;
}

bool vkm_engine_expert_cpu_possible(const vkm_engine *e, uint32_t il) {
    if (!e->paged || !e->moe_cpu || il >= e->model->hp.n_layer) return false;
    if (e->layer_cpu && e->layer_cpu[il]) return true;
    return e->layer_class[il] >= 0 && e->opts.expert_exec != VKM_EXPERT_EXEC_GPU &&
           vkm_moe_cpu_supported(&e->model->layers[il]);
}

uint32_t vkm_engine_expert_cpu_pending(const vkm_engine *e) {
    return e->paged ? e->n_cpu : 0;
}

int vkm_engine_expert_cpu_run(vkm_engine *e, uint32_t il, const float *a, const int32_t *sel,
                              uint32_t n_tok, float *eo, int32_t *spans, uint32_t *n_spans) {
    *n_spans = 0;
    if (!e->n_cpu) return 0;
    const vkm_hparams *hp = &e->model->hp;
    const vkm_layer *L = &e->model->layers[il];
    const uint32_t n = e->n_cpu;
    e->n_cpu = 0;
    const double t0 = now_ms();
    int rc = vkm_moe_cpu_layer(e->moe_cpu, L, a, sel, n_tok, hp->n_expert_used, hp->n_expert,
                               e->ranges, e->cpu_list, n, eo);
    if (rc) return rc;
    /* the layer's GPU part is submitted and its CPU part done: the admitted units' copies now */
    if ((rc = upload_admitted(e))) return rc;
    e->cpu_ms += now_ms() - t0;
    e->cpu_experts += n;
    e->cpu_bytes += n * vkm_moe_cpu_expert_bytes(L);
    for (uint32_t i = 0; i < n; i++) {
        const int32_t x = e->cpu_list[i];
        spans[2 * i] = e->ranges[2 * x];
        spans[2 * i + 1] = e->ranges[2 * x + 1];
        e->cpu_tokens += (uint64_t)e->ranges[2 * x + 1];
    }
    *n_spans = n;
    return 0;
}

int vkm_engine_expert_plan_dry(const vkm_engine *e, uint32_t il, vkm_fwd_expert_plan *plan) {
    if (e->paged && il < e->model->hp.n_layer && e->layer_cpu && e->layer_cpu[il]) {
        *plan = (vkm_fwd_expert_plan){e->mats_buf, 0, 0, 0, true}; /* nothing on the GPU */
        return 0;
    }
    if (!e->paged || il >= e->model->hp.n_layer || e->layer_class[il] < 0)
        return vkm_error(VKM_EINVAL, "expert paging: layer %u is not a paged MoE layer", il);
    const expert_class *c = &e->classes[e->layer_class[il]];
    *plan = (vkm_fwd_expert_plan){e->mats_buf, 0, 0, c->n_slots, true};
    return 0;
}

int vkm_engine_prefetch_target(const vkm_engine *e, uint32_t il) {
    if (!e->paged || !e->prefetch) return -1;
    const uint32_t nl = e->model->hp.n_layer;
    for (uint32_t j = il + 1; j < nl; j++)
        if (e->model->layers[j].moe)
            return e->layer_class[j] >= 0 && e->model->layers[j].ffn_gate_inp.data ? (int)j : -1;
    return -1;
}

int vkm_engine_expert_prefetch(vkm_engine *e, uint32_t il, const int32_t *sel, uint32_t n_sel) {
    const vkm_hparams *hp = &e->model->hp;
    if (!e->paged || !e->prefetch) return 0;
    if (il >= hp->n_layer || e->layer_class[il] < 0 || !sel)
        return vkm_error(VKM_EINVAL, "expert prefetch: layer %u is not a paged MoE layer", il);
    /* while the current layer has rounds left, its next experts need the slots */
    if (e->todo_at < e->n_todo) return 0;
    expert_class *c = &e->classes[e->layer_class[il]];
    const uint32_t X = hp->n_expert;
    memset(e->votes, 0, X * sizeof *e->votes);
    uint32_t n_guess = 0;
    for (uint32_t i = 0; i < n_sel; i++)
        if (sel[i] >= 0 && (uint32_t)sel[i] < X && e->votes[sel[i]]++ == 0) n_guess++;
    const double t0 = now_ms();
    uint64_t bytes = 0;
    /* most voted first (ties: lower expert); stops when no slot may take another */
    for (uint32_t done = 0; done < n_guess && done < c->n_slots; done++) {
        int32_t best = -1;
        for (uint32_t x = 0; x < X; x++)
            if (e->votes[x] > 0 && (best < 0 || e->votes[x] > e->votes[best])) best = (int32_t)x;
        e->votes[best] = 0;
        int32_t sl;
        bool placed;
        int rc = vkm_pager_prefetch(c->pager, il, best, &sl, &placed);
        if (rc) return rc;
        if (sl < 0) break;
        if (!placed) continue;
        if ((rc = upload_unit(e, c, il, (uint32_t)best, (uint32_t)sl))) return rc;
        bytes += c->unit_bytes;
    }
    if (bytes) vkm_pager_note_upload(c->pager, bytes, now_ms() - t0);
    return 0;
}

/* --------------------------------------------------------------------- statistics ---- */

void vkm_engine_expert_stats(const vkm_engine *e, vkm_expert_stats *out) {
    memset(out, 0, sizeof *out);
    if (!e->paged) return;
    out->paged = true;
    for (int c = 0; c < e->n_classes; c++) {
        out->n_slots += e->classes[c].n_slots;
        out->slot_bytes += class_cost(&e->classes[c], e->classes[c].n_slots);
        vkm_pager_add_stats(e->classes[c].pager, out);
    }
    out->misses += e->cpu_misses;
    out->cpu_experts = e->cpu_experts;
    out->cpu_bytes = e->cpu_bytes;
    out->cpu_tokens = e->cpu_tokens;
    out->cpu_ms = e->cpu_ms;
    out->cpu_layers = e->n_layer_cpu;
    out->auto_cpu_gbps = e->costs.cpu_gbps;
    out->auto_upload_gbps = e->costs.upload_gbps;
    out->auto_max_tokens = vkm_moe_cpu_max_tokens(&e->costs);
}

void vkm_engine_expert_stats_reset(vkm_engine *e) {
    for (int c = 0; c < e->n_classes; c++)
        if (e->classes[c].pager) vkm_pager_reset_stats(e->classes[c].pager);
    e->cpu_experts = e->cpu_bytes = e->cpu_tokens = e->cpu_misses = 0;
    e->cpu_ms = 0;
}

void vkm_expert_stats_line(const vkm_expert_stats *st, char *buf, size_t n) {
    int k = snprintf(buf, n,
                     "experts: hits=%llu misses=%llu prefetched=%llu prefetch_used=%llu "
                     "uploaded_bytes=%llu stall_ms=%.3f cpu_experts=%llu cpu_bytes=%llu "
                     "cpu_ms=%.3f admitted=%llu",
                     (unsigned long long)st->hits, (unsigned long long)st->misses,
                     (unsigned long long)st->prefetched, (unsigned long long)st->prefetch_used,
                     (unsigned long long)st->uploaded_bytes, st->stall_ms,
                     (unsigned long long)st->cpu_experts, (unsigned long long)st->cpu_bytes,
                     st->cpu_ms, (unsigned long long)st->admitted);
    if (st->auto_cpu_gbps > 0 && k > 0 && (size_t)k < n)
        snprintf(buf + k, n - (size_t)k,
                 " auto_cpu_gbps=%.3f auto_upload_gbps=%.3f auto_max_tokens=%u", st->auto_cpu_gbps,
                 st->auto_upload_gbps, st->auto_max_tokens);
}

/* --------------------------------------------------------------------- budget API ---- */

int vkm_experts_budget(const char *model_path, uint64_t budget, vkm_paging_budget *out) {
    memset(out, 0, sizeof *out);
    if (!model_path) return vkm_error(VKM_EINVAL, "vkm_experts_budget: no model path");
    vkm_gguf *g = NULL;
    vkm_model *m = NULL;
    expert_class *classes = NULL;
    int *layer_class = NULL, n_classes = 0;
    uint64_t main = 0, experts = 0, all = 0;
    int rc = vkm_gguf_open(model_path, &g);
    if (!rc) rc = vkm_model_load(g, &m);
    if (!rc) rc = vkm_weights_pool_bytes(m, &main, &experts);
    if (!rc) rc = build_classes(m, NULL, &classes, &n_classes, &layer_class);
    if (!rc) budget_figures(&m->hp, classes, n_classes, main, experts, out, &all);
    out->budget = budget;
    if (!rc && budget && n_classes && main + experts > budget && budget >= out->minimum_bytes) {
        /* as vkm_experts_plan for that budget, stacks within MAX_BUF_BYTES */
        const uint64_t avail = budget - main - out->ranges_bytes,
                       extra = avail - out->min_slot_bytes;
        rc = assign_slots(model_path, &m->hp, classes, n_classes, all, avail, extra,
                          MAX_BUF_BYTES / VKM_FWD_ALIGN * VKM_FWD_ALIGN);
        for (int c = 0; !rc && c < n_classes; c++) {
            out->n_slots += classes[c].n_slots;
            out->slot_bytes += class_cost(&classes[c], classes[c].n_slots);
            if (c < VKM_PAGING_MAX_CLASSES) out->class_slots[c] = classes[c].n_slots;
        }
        out->paged = !rc;
    }
    free(classes);
    free(layer_class);
    vkm_model_free(m);
    vkm_gguf_close(g);
    return rc;
}
