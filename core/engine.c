/* engine.c - vkm_engine: a deepseek2 GGUF file loaded onto one Vulkan device (core/vkmoe.h).
 *
 * Opening maps and validates the file (gguf.c, model.c), checks that every tensor type and shape
 * is within what the kernels handle, creates the gpu and uploads every tensor once into a few big
 * device buffers, reading from the mapping in chunks (pages already uploaded are dropped from
 * memory, so the host never holds a second copy). Two pools: the routed experts (ffn_*_exps) in
 * their own buffers, reached through vkm_fwd_expert_where(), and everything else.
 *
 * Expert paging: when the weights exceed the VRAM budget (vkmoe.h), the experts are not uploaded.
 * MoE layers whose expert matrices have equal types and sizes form a size class; each class gets
 * a number of device slots (the same resident fraction for every class, at least top-k), one
 * stack buffer per matrix kind ([n_slots][matrix bytes]), and a pager (core/pager.c) deciding
 * residency. The forward pass calls vkm_engine_expert_page() (through the session's hook) after
 * each MoE router: the chosen experts are made resident in rounds of at most n_slots, misses are
 * copied from the file mapping into a ring of host staging chunks and from there into their
 * slots with asynchronous copies (gpu.h tickets; the memcpy of one chunk overlaps the copy of
 * the previous one; each chunk's memcpy is split into pieces of >= 1 MiB shared by a small
 * persistent pool of staging threads, min(4, online CPUs - 1) by default, VKMOE_STAGING_THREADS
 * overrides, 0 = the calling thread alone), the next batch waits on the device for the tickets of
 * the round's slots, and the slots' row ranges go to the GPU through a host-visible buffer. With
 * prefetch on, vkm_engine_expert_prefetch() then uploads the experts forward.c guessed for the next
 * MoE layer into free or cold slots (pager.h) without the next batch waiting for them. When
 * everything fits nothing of this exists and the forward is unchanged.
 *
 * Imports (VKMOE_IMPORT, engine.h): tensors are grouped into page-aligned regions of the file
 * mapping (each within the largest buffer, a tensor wholly inside one, a gap above IMPORT_GAP
 * starting a new one, neighbours possibly sharing a boundary page) and imported as buffers
 * (gpu.h vkm_gpu_buf_import). On cpu/integrated devices the resident tensors then point into
 * their regions (no device copy; a tensor whose address is not a multiple of the device's
 * storage offset alignment is uploaded instead); with VKMOE_IMPORT=on on discrete devices, or
 * copy, the regions are only the source of device copies, one imported at a time. Paged experts
 * are copied into their slots straight from imported regions, with one asynchronous copy per
 * matrix and no staging ring. A region the driver refuses falls back to the upload path for
 * its tensors; imported pages are never dropped with madvise.
 *
 * Invariants: each uploaded tensor starts at a multiple of VKM_FWD_ALIGN in its buffer and its
 * padded size (a multiple of VKM_FWD_ALIGN, so whole words) lies inside it; a tensor used in
 * place starts at a multiple of the device's storage offset alignment (and of 4) in its region,
 * which holds its bytes padded to VKM_FWD_ALIGN (or, at the very end of the mapping, to whole
 * words); buffers and regions shared by several tensors stay within the device's weight window
 * (its largest binding), one holding a single larger tensor within its largest buffer, and none
 * exceeds 4 GiB (the kernels bind larger tensors in windows). The gguf mapping
 * outlives the model, which outlives the device tensors and the imported regions. */
#include "engine.h"

#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "err.h"
#include "gguf.h"
#include "ops_matmul.h"
#include "pager.h"
#include "qtype.h"

#define MIB (1024.0 * 1024.0)

/* A size as "%.2f MiB", or in bytes where that would round to 0.00 (a --vram-budget of 1K). */
static const char *size_text(char buf[48], uint64_t bytes) {
    if (bytes < 5243) /* 0.005 MiB */
        snprintf(buf, 48, "%llu bytes", (unsigned long long)bytes);
    else
        snprintf(buf, 48, "%.2f MiB", (double)bytes / MIB);
    return buf;
}
#define UPLOAD_CHUNK ((size_t)64 << 20)    /* bytes per upload call */
#define PROGRESS_MIN ((uint64_t)256 << 20) /* show progress for weights above this */
#define MAX_BUF_BYTES ((uint64_t)4 << 30)  /* shaders address 32-bit ranges */
#define MAX_PROFILE_LABELS 64
#define MAX_MARKS 4096                    /* gpu.h: marks per batch */
#define STAGING_CHUNK ((size_t)8 << 20)   /* bytes per staging ring chunk, at most */
#define RING_CHUNKS 4                     /* staging ring chunks */
#define AUTO_MARGIN ((uint64_t)512 << 20) /* automatic budget: most kept free besides a session */
#define N_KINDS 4                         /* enum vkm_expert_kind */
#define STAGING_PIECE ((size_t)1 << 20)   /* parallel staging copy: bytes per piece, at least */
#define MAX_STAGING_THREADS 16            /* VKMOE_STAGING_THREADS: at most */
#define DEFAULT_STAGING_THREADS 4         /* default: min(this, online CPUs - 1) */

#define IMPORT_GAP ((uintptr_t)1 << 20) /* a gap above this between tensors starts a new region */

/* POOL_PAGED: a paged expert (no buffer); POOL_IMPORTED: used in place from an imported region */
enum { POOL_MAIN, POOL_EXPERT, N_POOLS, POOL_PAGED = N_POOLS, POOL_IMPORTED };

/* Where one resident tensor goes ("slot" in this file means an expert's device slot). */
typedef struct placement {
    const vkm_tensor *src;
    vkm_dtensor *dst;
    int pool;
    int buf;     /* index into vkm_engine.bufs */
    size_t off;  /* in that buffer */
    int region;  /* imports: index into vkm_engine.regions covering the tensor, -1 = none */
    size_t roff; /* offset of the tensor's data in that region */
} placement;

/* A page-aligned range of the file mapping of one part, imported as a buffer (gpu.h
 * vkm_gpu_buf_import). Regions may share a boundary page; each is at most the largest buffer. */
typedef struct region {
    vkm_gpu_buf *buf; /* NULL: not imported (refused, or released after use as a copy source) */
    int file;         /* split part */
    const char *base; /* start in that part's mapping, a multiple of the import granule */
    size_t size;      /* bytes, a multiple of the import granule */
} region;

/* Paged experts: the persistent workers that copy a staging chunk from the file mapping in
 * pieces together with the thread that asks (staging_copy). One job at a time; every field past
 * the threads is read and written under mu only (the pieces' bytes are disjoint and the asking
 * thread sees them complete through mu once finished == n_pieces). */
typedef struct staging_pool {
    pthread_t th[MAX_STAGING_THREADS]; /* [n_threads] started workers */
    int n_threads;
    pthread_mutex_t mu;
    pthread_cond_t work; /* a job was posted, or stop */
    pthread_cond_t done; /* finished reached n_pieces */
    bool stop;
    char *dst;
    const char *src;
    size_t min_piece;        /* bytes per piece at least: STAGING_PIECE (tests: env) */
    size_t len, piece;       /* the job: len bytes in pieces of `piece` (the last shorter) */
    uint32_t n_pieces, next; /* pieces of the job; first not yet taken */
    uint32_t finished;       /* pieces copied */
} staging_pool;

typedef struct prof_entry {
    const char *label;
    uint64_t calls, ns;
} prof_entry;

/* Paged experts of one size class: the MoE layers whose expert matrices have the same types and
 * sizes share device slots (a slot holds one (layer, expert) unit: its matrices of every kind). */
typedef struct expert_class {
    uint32_t type[N_KINDS]; /* ggml type per kind (enum vkm_expert_kind) */
    size_t mat[N_KINDS];    /* bytes of one expert's matrix per kind, 0 = kind absent */
    size_t unit_bytes;      /* sum of mat[] */
    uint32_t n_layers;      /* MoE layers in the class */
    uint32_t n_slots;
    vkm_gpu_buf *buf[N_KINDS]; /* per present kind: the slot stack [n_slots][mat] */
    uint64_t *ticket;          /* [n_slots] ticket of the last upload into the slot, 0 = none */
    vkm_pager *pager;          /* units (layer, expert) of the whole model; this class's only */
} expert_class;

struct vkm_engine {
    vkm_engine_opts opts;
    vkm_gguf *gguf;
    vkm_model *model;
    vkm_gpu *gpu;
    vkm_dmodel dm;
    vkm_gpu_buf **bufs; /* [n_bufs] weight buffers */
    int n_bufs;
    vkm_engine_info info;
    prof_entry prof[MAX_PROFILE_LABELS]; /* [n_prof] totals since the last print */
    int n_prof;
    vkm_gpu_timing *timings; /* [4096] scratch for vkm_gpu_timings */
    /* expert paging (paged false: every expert resident in the POOL_EXPERT buffers) */
    bool paged;
    expert_class *classes; /* [n_classes] */
    int n_classes;
    int *layer_class;                  /* [n_layer] class of each MoE layer, -1 for dense layers */
    vkm_gpu_buf *ring[RING_CHUNKS];    /* host staging chunks of chunk_bytes, reused in turn */
    uint64_t ring_ticket[RING_CHUNKS]; /* ticket of the copy reading each chunk, 0 = none */
    int ring_next;
    size_t chunk_bytes;
    staging_pool *staging; /* NULL: each chunk is copied by the calling thread alone */
    vkm_gpu_buf *mats_buf; /* host-visible int32 [2][2 * max n_slots] (regions mats_region
                              bytes apart): the slot ranges of a round, alternating */
    size_t mats_region;
    uint32_t mats_flip;       /* region of the next round */
    int32_t *ranges;          /* [2 * n_expert] (first, count) of each expert in the grouping */
    int32_t *todo;            /* [n_expert] the current layer's chosen experts, in round order */
    int32_t *round_slots;     /* [n_expert] */
    bool *round_miss;         /* [n_expert] */
    uint32_t n_todo, todo_at; /* chosen experts of the current layer; first not yet paged */
    bool prefetch;            /* speculative prefetch on (opts.prefetch resolved) */
    int32_t *votes;           /* [n_expert] prefetch: tokens guessing each expert */
    uint64_t page_main, page_minimum; /* plan_paging: other weights, minimum budget (bytes) */
    char page_why[256]; /* plan_paging: the automatic budget that pages, for the paging line */
    /* imports of the file mapping (engine.h vkm_import_mode) */
    int import_mode; /* enum vkm_import_mode from VKMOE_IMPORT */
    region *regions; /* [n_regions] every region planned (resident and experts) */
    int n_regions, cap_regions;
    int32_t *exp_region; /* [n_layer * N_KINDS] region holding each paged expert tensor, -1 =
                            staging ring; NULL when no expert is imported */
    size_t *exp_off;     /* [n_layer * N_KINDS] offset of its data in that region */
    vkm_engine_import_stats imp;
};

/* The tensors of a layer, with the pool each goes to. */
#define LAYER_FIELD(f, pool)                                                                       \
    { offsetof(vkm_layer, f), offsetof(vkm_dlayer, f), pool }
static const struct {
    size_t src, dst;
    int pool;
} k_layer_fields[] = {
    LAYER_FIELD(attn_norm, POOL_MAIN),       LAYER_FIELD(attn_q_a, POOL_MAIN),
    LAYER_FIELD(attn_q_a_norm, POOL_MAIN),   LAYER_FIELD(attn_q_b, POOL_MAIN),
    LAYER_FIELD(attn_q, POOL_MAIN),          LAYER_FIELD(attn_kv_a_mqa, POOL_MAIN),
    LAYER_FIELD(attn_kv_a_norm, POOL_MAIN),  LAYER_FIELD(attn_k_b, POOL_MAIN),
    LAYER_FIELD(attn_v_b, POOL_MAIN),        LAYER_FIELD(attn_kv_b, POOL_MAIN),
    LAYER_FIELD(attn_output, POOL_MAIN),     LAYER_FIELD(ffn_norm, POOL_MAIN),
    LAYER_FIELD(ffn_gate, POOL_MAIN),        LAYER_FIELD(ffn_up, POOL_MAIN),
    LAYER_FIELD(ffn_down, POOL_MAIN),        LAYER_FIELD(ffn_gate_inp, POOL_MAIN),
    LAYER_FIELD(exp_probs_b, POOL_MAIN),     LAYER_FIELD(ffn_gate_exps, POOL_EXPERT),
    LAYER_FIELD(ffn_up_exps, POOL_EXPERT),   LAYER_FIELD(ffn_gate_up_exps, POOL_EXPERT),
    LAYER_FIELD(ffn_down_exps, POOL_EXPERT), LAYER_FIELD(ffn_gate_shexp, POOL_MAIN),
    LAYER_FIELD(ffn_up_shexp, POOL_MAIN),    LAYER_FIELD(ffn_down_shexp, POOL_MAIN),
};
enum { N_LAYER_FIELDS = sizeof k_layer_fields / sizeof k_layer_fields[0] };

static size_t align_up(size_t v) {
    return (v + VKM_FWD_ALIGN - 1) / VKM_FWD_ALIGN * VKM_FWD_ALIGN;
}

/* ------------------------------------------------------------------------- checks ---- */

/* Everything the GPU kernels cannot do is refused here, with the model's numbers. */
static int check_supported(const vkm_engine *e, const placement *pl, int n_pl) {
    const vkm_hparams *hp = &e->model->hp;
    const char *path = e->opts.model_path;
    for (int i = 0; i < n_pl; i++) {
        const vkm_tensor *t = pl[i].src;
        if (t->ne[1] > 1 && !vkm_op_matmul_supported(t->type))
            return vkm_error(VKM_EUNSUPPORTED,
                             "%s: tensor %s has type %s, which the GPU kernels "
                             "do not support",
                             path, t->name, vkm_qtype_name(t->type));
        if (align_up(t->nbytes) > MAX_BUF_BYTES)
            return vkm_error(VKM_EUNSUPPORTED, "%s: tensor %s (%.0f MiB) is larger than 4 GiB",
                             path, t->name, (double)t->nbytes / MIB);
    }
    if (hp->n_expert > VKM_ROUTER_MAX_EXPERT || hp->n_expert_used > VKM_ROUTER_MAX_USED ||
        (hp->n_group > 1 && hp->n_group > VKM_ROUTER_MAX_GROUP))
        return vkm_error(VKM_EUNSUPPORTED, "%s: %u experts top-%u in %u groups (limits %u, %u, %u)",
                         path, hp->n_expert, hp->n_expert_used, hp->n_group, VKM_ROUTER_MAX_EXPERT,
                         VKM_ROUTER_MAX_USED, VKM_ROUTER_MAX_GROUP);
    if (hp->gating != 1 && hp->gating != 2)
        return vkm_error(VKM_EUNSUPPORTED, "%s: expert gating function %u", path, hp->gating);
    const uint32_t dk = hp->is_mla ? hp->kv_dim : hp->d_qk;
    const uint32_t dv = hp->is_mla ? hp->n_lora_kv : hp->d_v;
    if (dk > VKM_ATTN_MAX_DK || dv > VKM_ATTN_MAX_DV || hp->n_lora_kv % 2 || hp->n_rot % 2 ||
        hp->d_nope % 2 || hp->d_v % 2)
        return vkm_error(VKM_EUNSUPPORTED,
                         "%s: attention dims %u/%u (kv_lora %u, rope %u, nope "
                         "%u, v %u): the kernels need even dims within %u/%u",
                         path, dk, dv, hp->n_lora_kv, hp->n_rot, hp->d_nope, hp->d_v,
                         VKM_ATTN_MAX_DK, VKM_ATTN_MAX_DV);
    return 0;
}

/* ----------------------------------------------------------------------- weights ---- */

/* Lists every tensor of the model once (a tied output is the embedding's descriptor). */
static int list_placements(vkm_engine *e, placement **out, int *n_out) {
    const vkm_model *m = e->model;
    const uint32_t nl = m->hp.n_layer;
    placement *s = calloc((size_t)nl * N_LAYER_FIELDS + 3, sizeof *s);
    if (!s) return vkm_error(VKM_ENOMEM, "out of memory");
    int n = 0;
    s[n++] = (placement){&m->token_embd, &e->dm.token_embd, POOL_MAIN, 0, 0, -1, 0};
    s[n++] = (placement){&m->output_norm, &e->dm.output_norm, POOL_MAIN, 0, 0, -1, 0};
    if (!m->tied_output) s[n++] = (placement){&m->output, &e->dm.output, POOL_MAIN, 0, 0, -1, 0};
    for (uint32_t il = 0; il < nl; il++) {
        const char *src = (const char *)&m->layers[il];
        char *dst = (char *)&e->dm.layers[il];
        for (int f = 0; f < N_LAYER_FIELDS; f++) {
            const vkm_tensor *t = (const vkm_tensor *)(src + k_layer_fields[f].src);
            if (!t->data) continue;
            s[n++] = (placement){
                t, (vkm_dtensor *)(dst + k_layer_fields[f].dst), k_layer_fields[f].pool, 0, 0, -1,
                0};
        }
    }
    *out = s;
    *n_out = n;
    return 0;
}

/* Assigns buffers and offsets, pool by pool, starting a new buffer when one would exceed `cap`
 * (a tensor larger than cap gets a buffer of its own).
 * sizes[] receives the buffer sizes (at most n_slots of them). */
static void plan(placement *s, int n, uint64_t cap, size_t *sizes, int *n_bufs) {
    int nb = 0;
    for (int pool = 0; pool < N_POOLS; pool++) {
        int cur = -1;
        for (int i = 0; i < n; i++) {
            if (s[i].pool != pool) continue;
            const size_t sz = align_up(s[i].src->nbytes);
            if (cur < 0 || sizes[cur] + sz > cap) {
                cur = nb++;
                sizes[cur] = 0;
            }
            s[i].buf = cur;
            s[i].off = sizes[cur];
            sizes[cur] += sz;
        }
    }
    *n_bufs = nb;
}

/* Drops the (already uploaded) pages of [p, p+n) from this process's memory; the mapping stays
 * valid and faults them back in from the file if read again. */
static void release_pages(const void *p, size_t n) {
    const long page = sysconf(_SC_PAGESIZE);
    if (page <= 0) return;
    uintptr_t a = ((uintptr_t)p + (uintptr_t)page - 1) & ~((uintptr_t)page - 1);
    uintptr_t b = ((uintptr_t)p + n) & ~((uintptr_t)page - 1);
    if (b > a) madvise((void *)a, b - a, MADV_DONTNEED);
}

/* Bytes that the tensors packed into one weight buffer (or imported region) may take: the
 * device's weight window (gpu.h: its largest binding), at most 4 GiB, in whole VKM_FWD_ALIGN
 * units. */
static uint64_t pack_cap(const vkm_engine *e) {
    const uint64_t w = vkm_gpu_info(e->gpu)->weight_window_bytes;
    return (w && w < MAX_BUF_BYTES ? w : MAX_BUF_BYTES) / VKM_FWD_ALIGN * VKM_FWD_ALIGN;
}

/* The largest weight buffer: a tensor (or expert slot stack) above pack_cap gets a buffer of its
 * own of up to this many bytes (the device's largest buffer, at most 4 GiB), which the kernels
 * bind in windows (core/ops_matmul.c, vkm_op_get_rows). */
static uint64_t big_cap(const vkm_engine *e) {
    const uint64_t a = vkm_gpu_info(e->gpu)->max_alloc_bytes;
    const uint64_t b = (a && a < MAX_BUF_BYTES ? a : MAX_BUF_BYTES) / VKM_FWD_ALIGN * VKM_FWD_ALIGN;
    return b > pack_cap(e) ? b : pack_cap(e);
}

/* ------------------------------------------------------------------------ imports ---- */

static const vkm_tensor *expert_tensor(const vkm_layer *L, int kind);

/* VKMOE_IMPORT (engine.h): *out = the mode; VKM_EINVAL naming the variable when malformed. */
static int import_mode_from_env(int *out) {
    static const char *const names[] = {[VKM_IMPORT_AUTO] = "auto",
                                        [VKM_IMPORT_ON] = "on",
                                        [VKM_IMPORT_OFF] = "off",
                                        [VKM_IMPORT_COPY] = "copy"};
    const char *v = getenv("VKMOE_IMPORT");
    *out = VKM_IMPORT_AUTO;
    if (!v || !*v) return 0;
    for (int i = 0; i < (int)(sizeof names / sizeof names[0]); i++)
        if (!strcmp(v, names[i])) {
            *out = i;
            return 0;
        }
    return vkm_error(VKM_EINVAL, "VKMOE_IMPORT='%s' must be auto, on, off or copy", v);
}

/* The unit of imported regions: the device's import alignment, at least the page size (both
 * powers of two); 0 when the device cannot import host memory. */
static size_t import_granule(const vkm_engine *e) {
    const size_t a = vkm_gpu_info(e->gpu)->import_align;
    const long page = sysconf(_SC_PAGESIZE);
    if (!a) return 0;
    return page > 0 && (size_t)page > a ? (size_t)page : a;
}

/* A tensor to place in a region: need bytes from data, in the mapping of part `file`, which
 * ends (its last page included) at map_end. */
typedef struct imp_item {
    const char *data;
    size_t need;
    uintptr_t map_end;
    int file;
    int idx;     /* the caller's index (placement, or layer * N_KINDS + kind) */
    int region;  /* out: index into e->regions, -1 = not in any */
    size_t roff; /* out: offset of data in the region */
} imp_item;

static int item_cmp(const void *a, const void *b) {
    const imp_item *x = a, *y = b;
    if (x->file != y->file) return x->file < y->file ? -1 : 1;
    const uintptr_t p = (uintptr_t)x->data, q = (uintptr_t)y->data;
    return p < q ? -1 : p > q ? 1 : 0;
}

/* The item of tensor t (need: bytes from its data that the region must cover). */
static imp_item item_of(const vkm_engine *e, const vkm_tensor *t, size_t need, int idx) {
    const long page = sysconf(_SC_PAGESIZE);
    const uint64_t ps = page > 0 ? (uint64_t)page : 4096;
    const uint64_t fsize = vkm_gguf_file_size(e->gguf, t->file);
    const uint64_t mapped = fsize > UINT64_MAX - ps ? fsize : (fsize + ps - 1) / ps * ps;
    /* the part is mapped whole from offset 0: its mapping starts file_offset bytes before data */
    const uintptr_t base = (uintptr_t)t->data - (uintptr_t)t->file_offset;
    return (imp_item){t->data, need, base + (uintptr_t)mapped, t->file, idx, -1, 0};
}

/* Sorts the items by (part, address) and groups them into regions of whole granules of at most
 * cap bytes, appended to e->regions (not imported yet): consecutive items share a region while
 * it stays within cap and no gap above IMPORT_GAP separates them; a new region may start on the
 * last granule of the previous one. An item whose rounded-out range exceeds cap gets a region of
 * its own, up to big bytes (the largest buffer: the kernels bind it in windows). An item whose
 * address is not a multiple of item_align, or whose rounded-out range exceeds big or its
 * mapping, stays in none (region -1). */
static int group_regions(vkm_engine *e, imp_item *it, int n, size_t gran, uint64_t cap,
                         uint64_t big, size_t item_align) {
    qsort(it, (size_t)n, sizeof *it, item_cmp);
    int cur = -1;
    for (int i = 0; i < n; i++) {
        imp_item *t = &it[i];
        t->region = -1;
        const uintptr_t a = (uintptr_t)t->data;
        if ((item_align > 1 && a % item_align) || a > t->map_end || t->need > t->map_end - a)
            continue;
        const uintptr_t lo = a & ~(uintptr_t)(gran - 1);
        const uintptr_t hi = (a + t->need + gran - 1) & ~(uintptr_t)(gran - 1);
        if (hi > t->map_end || hi <= lo || hi - lo > big) continue;
        const region *r = cur >= 0 ? &e->regions[cur] : NULL;
        const uintptr_t rb = r ? (uintptr_t)r->base : 0, re = r ? rb + r->size : 0;
        if (r && r->file == t->file && lo <= re + IMPORT_GAP && hi - rb <= cap) {
            if (hi > re) e->regions[cur].size = hi - rb;
        } else {
            if (e->n_regions == e->cap_regions) {
                const int ncap = e->cap_regions ? 2 * e->cap_regions : 16;
                region *g = realloc(e->regions, (size_t)ncap * sizeof *g);
                if (!g) return vkm_error(VKM_ENOMEM, "out of memory");
                e->regions = g;
                e->cap_regions = ncap;
            }
            cur = e->n_regions++;
            e->regions[cur] = (region){NULL, t->file, (const char *)lo, hi - lo};
        }
        t->region = cur;
        t->roff = a - (uintptr_t)e->regions[cur].base;
    }
    return 0;
}

/* Imports region r. A refusal (or any failure but a lost device) leaves its buf NULL, counted
 * in imp.n_failed (the first one noted on stderr unless quiet): its tensors are uploaded. */
static int import_region(vkm_engine *e, int r) {
    region *g = &e->regions[r];
    const int rc = vkm_gpu_buf_import(e->gpu, g->base, g->size, &g->buf);
    if (!rc) {
        e->imp.n_regions++;
        return 0;
    }
    g->buf = NULL;
    if (rc == VKM_EDEVLOST) return rc;
    if (e->imp.n_failed++ == 0 && !e->opts.quiet)
        fprintf(stderr, "vkmoe: importing the file mapping failed, uploading instead: %s\n",
                vkm_errmsg());
    vkm_error_clear();
    return 0;
}

static void region_release(vkm_engine *e, int r) {
    if (!e->regions[r].buf) return;
    vkm_gpu_buf_destroy(e->gpu, e->regions[r].buf);
    e->regions[r].buf = NULL;
    e->imp.n_regions--;
}

/* Whether [p, p + n) overlaps an imported region (then its pages must stay mapped as they are). */
static bool in_imported_region(const vkm_engine *e, const void *p, size_t n) {
    const uintptr_t a = (uintptr_t)p;
    for (int r = 0; r < e->n_regions; r++) {
        const uintptr_t b = (uintptr_t)e->regions[r].base;
        if (e->regions[r].buf && a < b + e->regions[r].size && b < a + n) return true;
    }
    return false;
}

/* Paged experts: imports the regions of the paged expert tensors, so that upload_unit copies a
 * unit into its slot straight from them. Without import support, with VKMOE_IMPORT=off, or (auto)
 * when the expert bytes exceed half the physical memory, nothing happens: the staging ring
 * serves every upload. A region the driver refuses leaves its tensors to the ring too. */
static int import_experts(vkm_engine *e) {
    const size_t gran = import_granule(e);
    if (e->import_mode == VKM_IMPORT_OFF || !gran) return 0;
    const vkm_hparams *hp = &e->model->hp;
    const int n_idx = (int)hp->n_layer * N_KINDS;
    imp_item *it = malloc((size_t)n_idx * sizeof *it);
    if (!it) return vkm_error(VKM_ENOMEM, "out of memory");
    int n = 0;
    uint64_t bytes = 0;
    for (uint32_t il = 0; il < hp->n_layer; il++) {
        if (e->layer_class[il] < 0) continue;
        for (int k = 0; k < N_KINDS; k++) {
            const vkm_tensor *t = expert_tensor(&e->model->layers[il], k);
            if (!t->data) continue;
            it[n++] = item_of(e, t, t->nbytes, (int)il * N_KINDS + k);
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
    int rc = group_regions(e, it, n, gran, pack_cap(e) / gran * gran, big_cap(e) / gran * gran, 1);
    for (int r = first; !rc && r < e->n_regions; r++) rc = import_region(e, r);
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

/* ------------------------------------------------------------------ expert paging ---- */

/* Copies the pieces of the posted job that nobody has taken yet; called and returns with mu
 * held. */
static void staging_run_pieces(staging_pool *p) {
    while (p->next < p->n_pieces) {
        const size_t i = p->next++;
        const size_t at = i * p->piece, n = p->len - at < p->piece ? p->len - at : p->piece;
        char *dst = p->dst + at;
        const char *src = p->src + at;
        pthread_mutex_unlock(&p->mu);
        memcpy(dst, src, n);
        pthread_mutex_lock(&p->mu);
        if (++p->finished == p->n_pieces) pthread_cond_signal(&p->done);
    }
}

static void *staging_worker(void *arg) {
    staging_pool *p = arg;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->stop && p->next >= p->n_pieces) pthread_cond_wait(&p->work, &p->mu);
        if (p->stop) break;
        staging_run_pieces(p);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

/* Stops and joins the workers; accepts NULL. */
static void staging_destroy(staging_pool *p) {
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    p->stop = true;
    pthread_cond_broadcast(&p->work);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->n_threads; i++) pthread_join(p->th[i], NULL);
    pthread_cond_destroy(&p->done);
    pthread_cond_destroy(&p->work);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

/* A non-negative integer environment variable up to max: *out unchanged when unset or empty,
 * VKM_EINVAL when malformed. */
static int env_count(const char *name, long max, long *out) {
    const char *v = getenv(name);
    if (!v || !*v) return 0;
    char *end;
    errno = 0;
    const long n = strtol(v, &end, 10);
    if (*end || errno || n < 0 || n > max)
        return vkm_error(VKM_EINVAL, "%s='%s' must be 0..%ld", name, v, max);
    *out = n;
    return 0;
}

/* Starts the staging workers (e->staging stays NULL for none). Failing to start threads is not an
 * error: the copies then use the workers that did start, or none. */
static int staging_create(vkm_engine *e) {
    /* workers: VKMOE_STAGING_THREADS, else min(DEFAULT_STAGING_THREADS, online CPUs - 1);
     * VKMOE_STAGING_PIECE (bytes, tests only) lowers the piece size so small models split too */
    const long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    long n = cpus <= 1                            ? 0
             : cpus - 1 < DEFAULT_STAGING_THREADS ? cpus - 1
                                                  : DEFAULT_STAGING_THREADS;
    long piece = (long)STAGING_PIECE;
    int rc;
    if ((rc = env_count("VKMOE_STAGING_THREADS", MAX_STAGING_THREADS, &n)) ||
        (rc = env_count("VKMOE_STAGING_PIECE", (long)STAGING_PIECE, &piece)))
        return rc;
    if (n == 0) return 0;
    staging_pool *p = calloc(1, sizeof *p);
    if (!p) return vkm_error(VKM_ENOMEM, "out of memory");
    if (pthread_mutex_init(&p->mu, NULL)) {
        free(p);
        return 0;
    }
    if (pthread_cond_init(&p->work, NULL)) {
        pthread_mutex_destroy(&p->mu);
        free(p);
        return 0;
    }
    if (pthread_cond_init(&p->done, NULL)) {
        pthread_cond_destroy(&p->work);
        pthread_mutex_destroy(&p->mu);
        free(p);
        return 0;
    }
    p->min_piece = piece > 64 ? (size_t)piece : 64;
    while (p->n_threads < n && !pthread_create(&p->th[p->n_threads], NULL, staging_worker, p))
        p->n_threads++;
    if (p->n_threads == 0) {
        staging_destroy(p);
        return 0;
    }
    e->staging = p;
    return 0;
}

/* memcpy(dst, src, len), split into pieces of at least min_piece bytes copied by the staging
 * workers and the calling thread; returns when every byte is in place. */
static void staging_copy(vkm_engine *e, void *dst, const void *src, size_t len) {
    staging_pool *p = e->staging;
    const size_t most = p ? (size_t)p->n_threads + 1 : 1;
    size_t n = p ? len / p->min_piece : 0;
    n = n < most ? n : most;
    if (n < 2) {
        memcpy(dst, src, len);
        return;
    }
    size_t piece = (len + n - 1) / n;
    piece = (piece + 63) & ~(size_t)63; /* whole cache lines */
    pthread_mutex_lock(&p->mu);
    p->dst = dst;
    p->src = src;
    p->len = len;
    p->piece = piece;
    p->n_pieces = (uint32_t)((len + piece - 1) / piece);
    p->next = p->finished = 0;
    pthread_cond_broadcast(&p->work);
    staging_run_pieces(p);
    while (p->finished < p->n_pieces) pthread_cond_wait(&p->done, &p->mu);
    p->n_pieces = p->next = p->finished = 0;
    pthread_mutex_unlock(&p->mu);
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

/* Sorts the MoE layers into size classes (e->classes, e->layer_class). */
static int build_classes(vkm_engine *e) {
    const vkm_hparams *hp = &e->model->hp;
    if (!(e->layer_class = malloc(hp->n_layer * sizeof *e->layer_class)) ||
        !(e->classes = calloc(hp->n_layer, sizeof *e->classes)))
        return vkm_error(VKM_ENOMEM, "out of memory");
    for (uint32_t il = 0; il < hp->n_layer; il++) {
        const vkm_layer *L = &e->model->layers[il];
        e->layer_class[il] = -1;
        if (!L->moe || hp->n_expert == 0) continue;
        expert_class key = {0};
        for (int k = 0; k < N_KINDS; k++) {
            const vkm_tensor *t = expert_tensor(L, k);
            if (!t->data) continue;
            key.type[k] = t->type;
            key.mat[k] = (size_t)t->ne[1] * t->row_bytes;
            key.unit_bytes += key.mat[k];
        }
        int c = 0;
        while (c < e->n_classes && (memcmp(e->classes[c].type, key.type, sizeof key.type) ||
                                    memcmp(e->classes[c].mat, key.mat, sizeof key.mat)))
            c++;
        if (c == e->n_classes) e->classes[e->n_classes++] = key;
        e->classes[c].n_layers++;
        e->layer_class[il] = c;
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
    const vkm_session_opts so = {e->opts.n_ctx, e->opts.kv_f32, e->opts.max_batch};
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

/* Decides whether the experts are paged and, if so, how many slots each class gets, from the
 * budget (see vkmoe.h; `forced`, when not 0, replaces opts.vram_budget), the bytes of the other
 * weights (main) and of all experts (experts). `in_place`: the resident weights will be used in
 * place from the imported file mapping, so that they take no device memory (the automatic budget
 * does not count them). */
static int plan_paging(vkm_engine *e, uint64_t main, uint64_t experts, uint64_t cap,
                       uint64_t forced, bool in_place) {
    const vkm_hparams *hp = &e->model->hp;
    const char *path = e->opts.model_path;
    uint64_t budget = forced ? forced : e->opts.vram_budget;
    const bool automatic = budget == 0;
    if (automatic && e->opts.compile_only) return 0; /* no memory to plan for: all resident */
    auto_budget ab = {0};
    if (automatic) {
        int rc = automatic_budget(e, &ab);
        if (rc) return rc;
        budget = ab.budget;
        if (in_place) return 0; /* no device memory for the weights: nothing to page */
    }
    if (main + experts <= budget) return 0;
    int rc = build_classes(e);
    if (rc) return rc;
    if (e->n_classes == 0) {
        if (automatic) return 0; /* nothing to page: the allocation will tell */
        char bt[48];
        return vkm_error(VKM_EDEVMEM,
                         "%s: the weights need %.1f MiB of device memory, above the budget of "
                         "%s (--vram-budget)",
                         path, (double)(main + experts) / MIB, size_text(bt, budget));
    }
    const uint64_t X = hp->n_expert, K = hp->n_expert_used ? hp->n_expert_used : 1;
    const uint64_t mats =
        (2 * 4 * (uint64_t)hp->n_layer * X + VKM_FWD_ALIGN - 1) / VKM_FWD_ALIGN * VKM_FWD_ALIGN;
    uint64_t min_slots = 0, all = 0;
    for (int c = 0; c < e->n_classes; c++) {
        min_slots += class_cost(&e->classes[c], K);
        all += e->classes[c].n_layers * X * e->classes[c].unit_bytes;
    }
    const uint64_t minimum = main + mats + min_slots;
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
    uint64_t used = 0;
    for (int c = 0; c < e->n_classes; c++) {
        expert_class *ec = &e->classes[c];
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
    e->paged = true;
    return 0;
}

/* Creates the slot stacks of every class. When the device is out of memory, frees them, halves
 * the slots above the minimum (top-k) of every class and tries again; at the minimum, a clear
 * VKM_EDEVMEM naming it. */
static int create_slot_bufs(vkm_engine *e) {
    const uint32_t K = e->model->hp.n_expert_used ? e->model->hp.n_expert_used : 1;
    bool shrunk = false;
    for (;;) {
        int rc = 0;
        for (int c = 0; !rc && c < e->n_classes; c++) {
            expert_class *ec = &e->classes[c];
            for (int k = 0; !rc && k < N_KINDS; k++) {
                if (!ec->mat[k]) continue;
                const size_t bytes = ((size_t)ec->n_slots * ec->mat[k] + VKM_FWD_ALIGN - 1) /
                                     VKM_FWD_ALIGN * VKM_FWD_ALIGN;
                rc = vkm_gpu_buf_create(e->gpu, bytes, VKM_BUF_DEVICE, &ec->buf[k]);
            }
        }
        if (!rc) break;
        for (int c = 0; c < e->n_classes; c++)
            for (int k = 0; k < N_KINDS; k++) {
                vkm_gpu_buf_destroy(e->gpu, e->classes[c].buf[k]);
                e->classes[c].buf[k] = NULL;
            }
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

/* Creates the slot stacks, the staging and range buffers and the pagers, and points the expert
 * descriptors of every MoE layer at its class's stacks. */
static int setup_paging(vkm_engine *e) {
    const vkm_hparams *hp = &e->model->hp;
    uint32_t max_slots = 0;
    size_t biggest = 0;
    int rc = create_slot_bufs(e);
    if (rc) return rc;
    for (int c = 0; c < e->n_classes; c++) {
        expert_class *ec = &e->classes[c];
        for (int k = 0; k < N_KINDS; k++) biggest = ec->mat[k] > biggest ? ec->mat[k] : biggest;
        vkm_pager_opts po = {hp->n_layer, hp->n_expert, ec->n_slots, e->opts.expert_policy, 0};
        if ((rc = vkm_pager_create(&po, &ec->pager))) return rc;
        max_slots = ec->n_slots > max_slots ? ec->n_slots : max_slots;
    }
    e->chunk_bytes = biggest < STAGING_CHUNK ? biggest : STAGING_CHUNK;
    if ((rc = staging_create(e))) return rc;
    for (int i = 0; i < RING_CHUNKS; i++) {
        if ((rc = vkm_gpu_buf_create(e->gpu, e->chunk_bytes, VKM_BUF_HOST, &e->ring[i]))) return rc;
        if (!vkm_gpu_buf_map(e->ring[i]))
            return vkm_error(VKM_EUNSUPPORTED, "the expert staging buffer is not host visible");
    }
    e->mats_region = align_up((size_t)max_slots * 8);
    if ((rc = vkm_gpu_buf_create(e->gpu, 2 * e->mats_region, VKM_BUF_HOST, &e->mats_buf)))
        return rc;
    if (!vkm_gpu_buf_map(e->mats_buf))
        return vkm_error(VKM_EUNSUPPORTED, "the expert range buffer is not host visible");
    for (int c = 0; c < e->n_classes; c++)
        if (!(e->classes[c].ticket = calloc(e->classes[c].n_slots, sizeof(uint64_t))))
            return vkm_error(VKM_ENOMEM, "out of memory");
    const size_t X = hp->n_expert;
    if (!(e->ranges = malloc(2 * X * sizeof *e->ranges)) ||
        !(e->todo = malloc(X * sizeof *e->todo)) ||
        !(e->round_slots = malloc(X * sizeof *e->round_slots)) ||
        !(e->round_miss = malloc(X * sizeof *e->round_miss)) ||
        !(e->votes = malloc(X * sizeof *e->votes)))
        return vkm_error(VKM_ENOMEM, "out of memory");
    for (uint32_t il = 0; il < hp->n_layer; il++) {
        if (e->layer_class[il] < 0) continue;
        const expert_class *ec = &e->classes[e->layer_class[il]];
        for (int k = 0; k < N_KINDS; k++) {
            const vkm_tensor *t = expert_tensor(&e->model->layers[il], k);
            if (!t->data) continue;
            *expert_dtensor(&e->dm.layers[il], k) =
                (vkm_dtensor){ec->buf[k],
                              0,
                              t->type,
                              {t->ne[0], t->ne[1], ec->n_slots, 1},
                              (size_t)ec->n_slots * ec->mat[k],
                              t->row_bytes};
        }
    }
    if ((rc = import_experts(e))) return rc;
    if (!e->opts.quiet) {
        uint32_t slots = 0;
        uint64_t bytes = 0;
        for (int c = 0; c < e->n_classes; c++) {
            slots += e->classes[c].n_slots;
            bytes += class_cost(&e->classes[c], e->classes[c].n_slots);
        }
        fprintf(stderr, "vkmoe: paging experts: %u slots (%.1f MiB) in %d size class%s, %s%s\n",
                slots, (double)bytes / MIB, e->n_classes, e->n_classes > 1 ? "es" : "",
                e->opts.expert_policy == VKM_EXPERT_LFU ? "LFU" : "LRU", e->page_why);
    }
    return 0;
}

static void destroy_paging(vkm_engine *e) {
    staging_destroy(e->staging);
    e->staging = NULL;
    for (int c = 0; c < e->n_classes; c++) {
        for (int k = 0; k < N_KINDS; k++) vkm_gpu_buf_destroy(e->gpu, e->classes[c].buf[k]);
        vkm_pager_destroy(e->classes[c].pager);
        free(e->classes[c].ticket);
    }
    free(e->classes);
    free(e->layer_class);
    for (int i = 0; i < RING_CHUNKS; i++) vkm_gpu_buf_destroy(e->gpu, e->ring[i]);
    vkm_gpu_buf_destroy(e->gpu, e->mats_buf);
    free(e->ranges);
    free(e->todo);
    free(e->round_slots);
    free(e->round_miss);
    free(e->votes);
    free(e->exp_region);
    free(e->exp_off);
}

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

/* Starts the upload of unit (il, x) of class c into slot s, each matrix either with one
 * asynchronous copy straight from its imported region of the file mapping (import_experts), or
 * from the mapping in pieces of up to chunk_bytes, memcpy'd into the next staging ring chunk
 * (waiting first for the copy that last read it) and copied asynchronously into the slot, so the
 * memcpy of one piece overlaps the copy of the previous ones. c->ticket[s] receives the last
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
            if ((rc = vkm_gpu_copy_async(e->gpu, e->regions[ri].buf,
                                         e->exp_off[il * N_KINDS + (uint32_t)k] +
                                             (size_t)x * c->mat[k],
                                         c->buf[k], (size_t)s * c->mat[k], c->mat[k], &t)))
                return rc;
            c->ticket[s] = t;
            e->imp.expert_bytes += c->mat[k];
            continue;
        }
        const char *src =
            (const char *)expert_tensor(&e->model->layers[il], k)->data + (size_t)x * c->mat[k];
        for (size_t at = 0; at < c->mat[k]; at += e->chunk_bytes) {
            const size_t len = c->mat[k] - at < e->chunk_bytes ? c->mat[k] - at : e->chunk_bytes;
            const int r = e->ring_next;
            if (e->ring_ticket[r] && (rc = vkm_gpu_ticket_wait(e->gpu, e->ring_ticket[r])))
                return rc;
            staging_copy(e, vkm_gpu_buf_map(e->ring[r]), src + at, len);
            uint64_t t = 0;
            if ((rc = vkm_gpu_copy_async(e->gpu, e->ring[r], 0, c->buf[k],
                                         (size_t)s * c->mat[k] + at, len, &t)))
                return rc;
            e->ring_ticket[r] = t;
            e->ring_next = (r + 1) % RING_CHUNKS;
            c->ticket[s] = t;
        }
    }
    return 0;
}

bool vkm_engine_paged(const vkm_engine *e) {
    return e->paged;
}

bool vkm_engine_prefetching(const vkm_engine *e) {
    return e->paged && e->prefetch;
}

int vkm_engine_expert_page(vkm_engine *e, uint32_t il, uint32_t round, const int32_t *sel,
                           uint32_t n_sel, vkm_fwd_expert_plan *plan) {
    const vkm_hparams *hp = &e->model->hp;
    if (!e->paged || il >= hp->n_layer || e->layer_class[il] < 0 || (round == 0 && !sel))
        return vkm_error(VKM_EINVAL, "expert paging: layer %u round %u is not a paged MoE layer",
                         il, round);
    expert_class *c = &e->classes[e->layer_class[il]];
    const uint32_t X = hp->n_expert;
    if (round == 0) {
        vkm_pager_expert_ranges(sel, n_sel, X, e->ranges);
        /* resident experts first, so that this layer's misses cannot evict them before use */
        e->n_todo = e->todo_at = 0;
        for (int pass = 0; pass < 2; pass++)
            for (uint32_t x = 0; x < X; x++)
                if (e->ranges[2 * x + 1] > 0 &&
                    (vkm_pager_slot_of(c->pager, il, x) >= 0) == (pass == 0))
                    e->todo[e->n_todo++] = (int32_t)x;
    } else if (e->todo_at >= e->n_todo) {
        return vkm_error(VKM_EINVAL, "expert paging: layer %u has no round %u", il, round);
    }
    const uint32_t left = e->n_todo - e->todo_at;
    const uint32_t n = left < c->n_slots ? left : c->n_slots;
    const int32_t *xs = e->todo + e->todo_at;
    int rc = vkm_pager_request(c->pager, il, xs, (int)n, e->round_slots, e->round_miss);
    if (rc) return rc;
    if (e->opts.expert_trace) /* routing trace hook (vkmoe.h): the request just counted */
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
    uint32_t lo = n ? (uint32_t)e->round_slots[0] : 0, hi = lo;
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
    e->todo_at += n;
    *plan = (vkm_fwd_expert_plan){e->mats_buf, mats_off, lo, n_mat, e->todo_at >= e->n_todo};
    return 0;
}

int vkm_engine_expert_plan_dry(const vkm_engine *e, uint32_t il, vkm_fwd_expert_plan *plan) {
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

void vkm_engine_expert_stats(const vkm_engine *e, vkm_expert_stats *out) {
    memset(out, 0, sizeof *out);
    if (!e->paged) return;
    out->paged = true;
    for (int c = 0; c < e->n_classes; c++) {
        out->n_slots += e->classes[c].n_slots;
        out->slot_bytes += class_cost(&e->classes[c], e->classes[c].n_slots);
        vkm_pager_add_stats(e->classes[c].pager, out);
    }
}

void vkm_engine_expert_stats_reset(vkm_engine *e) {
    for (int c = 0; c < e->n_classes; c++)
        if (e->classes[c].pager) vkm_pager_reset_stats(e->classes[c].pager);
}

void vkm_expert_stats_line(const vkm_expert_stats *st, char *buf, size_t n) {
    snprintf(buf, n,
             "experts: hits=%llu misses=%llu prefetched=%llu prefetch_used=%llu "
             "uploaded_bytes=%llu stall_ms=%.3f",
             (unsigned long long)st->hits, (unsigned long long)st->misses,
             (unsigned long long)st->prefetched, (unsigned long long)st->prefetch_used,
             (unsigned long long)st->uploaded_bytes, st->stall_ms);
}

/* ----------------------------------------------------------------------- upload ---- */

/* The resident plan ran out of device memory at buffer b of the expert pool (its buffers are
 * [first_exp, n_bufs), the other weights' [0, first_exp) are created): frees the expert buffers
 * and pages the experts instead, planned for a budget of the bytes that were allocated. The
 * caller has set the message of the allocation failure; on failure it is kept, with the reason
 * paging cannot help appended. */
static int fall_back_to_paging(vkm_engine *e, placement *s, int n, const size_t *sizes, int b,
                               int first_exp, const uint64_t *pool_bytes, uint64_t cap) {
    char orig[1024];
    snprintf(orig, sizeof orig, "%s", vkm_errmsg());
    if (e->layer_class) return VKM_EDEVMEM; /* classes built: nothing to page */
    uint64_t allocated = 0;
    for (int i = 0; i < b; i++) allocated += sizes[i];
    for (int i = first_exp; i < b; i++) {
        vkm_gpu_buf_destroy(e->gpu, e->bufs[i]);
        e->bufs[i] = NULL;
    }
    e->n_bufs = first_exp;
    int rc = allocated ? plan_paging(e, pool_bytes[POOL_MAIN], pool_bytes[POOL_EXPERT], cap,
                                     allocated, false)
                       : VKM_EDEVMEM;
    if (!rc && !e->paged) rc = VKM_EDEVMEM; /* no MoE layer to page */
    if (!rc) {
        for (int i = 0; i < n; i++)
            if (s[i].pool == POOL_EXPERT) s[i].pool = POOL_PAGED;
        rc = setup_paging(e);
    }
    if (!rc) return 0;
    if (rc != VKM_EDEVMEM) return rc;
    const bool why = strcmp(vkm_errmsg(), "(no details)") && !strstr(orig, vkm_errmsg());
    char tail[1024];
    snprintf(tail, sizeof tail, "%s", why ? vkm_errmsg() : "");
    return vkm_error(VKM_EDEVMEM, "%s%s%s", orig, why ? "; paging the experts instead: " : "",
                     tail);
}

/* Uploads the tensor of placement pl (its dst set) from the mapping in chunks; the pages uploaded
 * are dropped from memory unless an imported region holds them. */
static int upload_tensor(vkm_engine *e, const placement *pl, bool progress, uint64_t total,
                         uint64_t *done_bytes) {
    const vkm_tensor *t = pl->src;
    const vkm_dtensor *d = pl->dst;
    for (size_t at = 0; at < t->nbytes; at += UPLOAD_CHUNK) {
        const size_t len = t->nbytes - at < UPLOAD_CHUNK ? t->nbytes - at : UPLOAD_CHUNK;
        const char *src = (const char *)t->data + at;
        int rc = vkm_gpu_upload(e->gpu, d->buf, d->off + at, src, len);
        if (rc) return rc;
        if (!in_imported_region(e, src, len)) release_pages(src, len);
        *done_bytes += len;
        if (progress)
            fprintf(stderr, "\rvkmoe: uploading weights %.0f / %.0f MiB", *done_bytes / MIB,
                    (double)total / MIB);
    }
    e->imp.uploaded_bytes += t->nbytes;
    return 0;
}

/* Places the tensors still to upload (pools below N_POOLS) in regions (s[i].region, s[i].roff)
 * of at most pack_cap bytes, or one tensor of up to big_cap bytes, appended to e->regions, not
 * imported yet; item_align as in group_regions. Each region covers its tensors' bytes padded to
 * VKM_FWD_ALIGN where the mapping allows, else to whole words. */
static int group_resident(vkm_engine *e, placement *s, int n, size_t item_align) {
    const size_t gran = import_granule(e);
    imp_item *it = malloc(((size_t)n + 1) * sizeof *it);
    if (!it) return vkm_error(VKM_ENOMEM, "out of memory");
    int m = 0;
    for (int i = 0; i < n; i++) {
        if (s[i].pool >= N_POOLS) continue;
        const vkm_tensor *t = s[i].src;
        imp_item x = item_of(e, t, align_up(t->nbytes), i);
        const uintptr_t a = (uintptr_t)t->data;
        if (a <= x.map_end && x.need > x.map_end - a) x.need = (t->nbytes + 3) & ~(size_t)3;
        it[m++] = x;
    }
    int rc = group_regions(e, it, m, gran, pack_cap(e) / gran * gran, big_cap(e) / gran * gran,
                           item_align);
    for (int j = 0; !rc && j < m; j++) {
        s[it[j].idx].region = it[j].region;
        s[it[j].idx].roff = it[j].roff;
    }
    free(it);
    return rc;
}

/* One line on stderr (unless quiet) saying where the weights came from. */
static void print_load_line(const vkm_engine *e) {
    if (e->opts.quiet) return;
    const vkm_engine_import_stats *m = &e->imp;
    char line[512];
    int k = snprintf(line, sizeof line, "vkmoe: weights");
    const char *sep = ":";
    if (m->in_place_bytes) {
        k += snprintf(line + k, sizeof line - (size_t)k,
                      "%s %.1f MiB imported from the file mapping (used in place)", sep,
                      (double)m->in_place_bytes / MIB);
        sep = ",";
    }
    if (m->copied_bytes && k < (int)sizeof line) {
        k += snprintf(line + k, sizeof line - (size_t)k,
                      "%s %.1f MiB uploaded by device copies from the imported file mapping", sep,
                      (double)m->copied_bytes / MIB);
        sep = ",";
    }
    if ((m->uploaded_bytes || sep[0] == ':') && k < (int)sizeof line) {
        k += snprintf(line + k, sizeof line - (size_t)k, "%s %.1f MiB uploaded%s", sep,
                      (double)m->uploaded_bytes / MIB,
                      e->import_mode == VKM_IMPORT_OFF ? " (VKMOE_IMPORT=off)" : "");
        sep = ",";
    }
    if (e->paged && k < (int)sizeof line)
        snprintf(line + k, sizeof line - (size_t)k, "; paged experts %s",
                 e->exp_region ? "copied to their slots from the imported file mapping"
                               : "uploaded through the staging ring");
    fprintf(stderr, "%s\n", line);
}

static int upload_weights(vkm_engine *e) {
    placement *s = NULL;
    int n = 0, rc = list_placements(e, &s, &n);
    if (rc) return rc;
    size_t *sizes = calloc((size_t)n + 1, sizeof *sizes);
    if (!sizes) {
        free(s);
        return vkm_error(VKM_ENOMEM, "out of memory");
    }
    if ((rc = check_supported(e, s, n))) goto done;
    const vkm_gpu_device_info *di = vkm_gpu_info(e->gpu);
    /* tensors share buffers of up to cap bytes; a larger one gets its own, up to big */
    const uint64_t cap = pack_cap(e), big = big_cap(e);
    uint64_t total = 0, pool_bytes[N_POOLS] = {0};
    for (int i = 0; i < n; i++) {
        if (align_up(s[i].src->nbytes) > big) {
            rc = vkm_error(VKM_EUNSUPPORTED,
                           "%s: tensor %s (%.1f MiB) exceeds the largest buffer of %s (%.1f MiB)",
                           e->opts.model_path, s[i].src->name, (double)s[i].src->nbytes / MIB,
                           di->name, (double)big / MIB);
            goto done;
        }
        total += align_up(s[i].src->nbytes);
        pool_bytes[s[i].pool] += align_up(s[i].src->nbytes);
    }
    /* imports (engine.h): resident tensors in place where device memory is host memory, or
     * imported regions as the source of device copies */
    const size_t gran = import_granule(e);
    const bool uma = di->type == VKM_DEV_CPU || di->type == VKM_DEV_INTEGRATED;
    const int mode = e->import_mode;
    const bool in_place = gran && uma && (mode == VKM_IMPORT_AUTO || mode == VKM_IMPORT_ON);
    const bool copy_src = gran && (mode == VKM_IMPORT_COPY || (mode == VKM_IMPORT_ON && !uma));
    if ((rc = plan_paging(e, pool_bytes[POOL_MAIN], pool_bytes[POOL_EXPERT], big, 0, in_place)))
        goto done;
    if (e->paged) { /* the experts stay in the mapping: no buffer, no upload */
        for (int i = 0; i < n; i++)
            if (s[i].pool == POOL_EXPERT) s[i].pool = POOL_PAGED;
        total = pool_bytes[POOL_MAIN];
        if ((rc = setup_paging(e))) goto done;
    }
    if (mode == VKM_IMPORT_ON && !gran && !e->opts.quiet)
        fprintf(stderr, "vkmoe: VKMOE_IMPORT=on: %s cannot import host memory; uploading\n",
                di->name);
    const int first_res = e->n_regions;
    if (in_place || copy_src) {
        /* in place, a tensor's offset in its region is a descriptor offset */
        const size_t salign = di->storage_align > 4 ? di->storage_align : 4;
        if ((rc = group_resident(e, s, n, in_place ? salign : 1))) goto done;
    }
    const int end_res = e->n_regions;
    if (in_place) {
        for (int r = first_res; r < end_res; r++)
            if ((rc = import_region(e, r))) goto done;
        for (int i = 0; i < n; i++) {
            if (s[i].region < 0 || !e->regions[s[i].region].buf) continue;
            const vkm_tensor *t = s[i].src;
            *s[i].dst = (vkm_dtensor){e->regions[s[i].region].buf,
                                      s[i].roff,
                                      t->type,
                                      {t->ne[0], t->ne[1], t->ne[2], t->ne[3]},
                                      t->nbytes,
                                      t->row_bytes};
            s[i].pool = POOL_IMPORTED;
            total -= align_up(t->nbytes);
            e->imp.in_place_bytes += t->nbytes;
        }
    }
    plan(s, n, cap, sizes, &e->n_bufs);
    if (!(e->bufs = calloc((size_t)e->n_bufs + 1, sizeof *e->bufs))) {
        rc = vkm_error(VKM_ENOMEM, "out of memory");
        goto done;
    }
    /* the expert pool's buffers follow the others (plan() goes pool by pool) */
    int first_exp = e->n_bufs;
    for (int i = 0; i < n; i++)
        if (s[i].pool == POOL_EXPERT && s[i].buf < first_exp) first_exp = s[i].buf;
    for (int b = 0; b < e->n_bufs; b++) {
        if ((rc = vkm_gpu_buf_create(e->gpu, sizes[b], VKM_BUF_DEVICE, &e->bufs[b]))) {
            char why[512]; /* vkm_error() reuses the buffer vkm_errmsg() points to */
            snprintf(why, sizeof why, "%s", vkm_errmsg());
            if (rc != VKM_EDEVMEM) goto done;
            rc = vkm_error(VKM_EDEVMEM,
                           "%s: the weights need %.0f MiB of device memory (%d buffers), "
                           "%s has %.0f MiB: %s",
                           e->opts.model_path, (double)total / MIB, e->n_bufs, di->name,
                           (double)di->device_local_bytes / MIB, why);
            if (b < first_exp) goto done;
            rc = fall_back_to_paging(e, s, n, sizes, b, first_exp, pool_bytes, big);
            if (rc) goto done;
            break;
        }
    }
    uint64_t up_total = 0, done_bytes = 0;
    for (int i = 0; i < n; i++)
        if (s[i].pool < N_POOLS) up_total += s[i].src->nbytes;
    const bool progress = !e->opts.quiet && up_total >= PROGRESS_MIN;
    for (int i = 0; i < n; i++) {
        if (s[i].pool >= N_POOLS) continue; /* paged (setup_paging) or imported in place */
        const vkm_tensor *t = s[i].src;
        vkm_dtensor *d = s[i].dst;
        *d = (vkm_dtensor){e->bufs[s[i].buf], s[i].off,
                           t->type,           {t->ne[0], t->ne[1], t->ne[2], t->ne[3]},
                           t->nbytes,         t->row_bytes};
        if (copy_src && s[i].region >= 0) continue; /* below, region by region */
        if ((rc = upload_tensor(e, &s[i], progress, up_total, &done_bytes))) goto done;
    }
    /* copy_src: one region imported at a time, its tensors copied on the device, released */
    for (int r = first_res; copy_src && r < end_res; r++) {
        if ((rc = import_region(e, r))) goto done;
        uint64_t last = 0;
        for (int i = 0; i < n; i++) {
            if (s[i].region != r || s[i].pool >= N_POOLS) continue;
            const vkm_tensor *t = s[i].src;
            if (!e->regions[r].buf) {
                if ((rc = upload_tensor(e, &s[i], progress, up_total, &done_bytes))) goto done;
                continue;
            }
            if ((rc = vkm_gpu_copy_async(e->gpu, e->regions[r].buf, s[i].roff, s[i].dst->buf,
                                         s[i].dst->off, t->nbytes, &last)))
                goto done;
            e->imp.copied_bytes += t->nbytes;
            done_bytes += t->nbytes;
        }
        if (!e->regions[r].buf) continue;
        /* every later batch waits for the copies; the region goes once they are done */
        if ((rc = vkm_gpu_wait_ticket_on_next_submit(e->gpu, last)) ||
            (rc = vkm_gpu_ticket_wait(e->gpu, last)))
            goto done;
        region_release(e, r);
        for (int i = 0; i < n; i++)
            if (s[i].region == r && s[i].pool < N_POOLS &&
                !in_imported_region(e, s[i].src->data, s[i].src->nbytes))
                release_pages(s[i].src->data, s[i].src->nbytes);
        if (progress)
            fprintf(stderr, "\rvkmoe: uploading weights %.0f / %.0f MiB", done_bytes / MIB,
                    (double)up_total / MIB);
    }
    if (progress) fprintf(stderr, "\n");
    if (e->model->tied_output) e->dm.output = e->dm.token_embd;
    print_load_line(e);
done:
    free(sizes);
    free(s);
    return rc;
}

/* ------------------------------------------------------------------------- public ---- */

int vkm_engine_open(const vkm_engine_opts *opts, vkm_engine **out) {
    *out = NULL;
    if (!opts || !opts->model_path) return vkm_error(VKM_EINVAL, "vkm_engine_open: no model path");
    if (opts->expert_policy != VKM_EXPERT_LRU && opts->expert_policy != VKM_EXPERT_LFU)
        return vkm_error(VKM_EINVAL, "vkm_engine_open: unknown expert policy %d",
                         opts->expert_policy);
    if (opts->prefetch < VKM_PREFETCH_AUTO || opts->prefetch > VKM_PREFETCH_OFF)
        return vkm_error(VKM_EINVAL, "vkm_engine_open: unknown prefetch mode %d", opts->prefetch);
    vkm_engine *e = calloc(1, sizeof *e);
    if (!e) return vkm_error(VKM_ENOMEM, "out of memory");
    e->opts = *opts;
    int rc;
    if ((rc = vkm_gguf_open(opts->model_path, &e->gguf)) ||
        (rc = vkm_model_load(e->gguf, &e->model)))
        goto fail;
    const vkm_hparams *hp = &e->model->hp;
    e->dm.hp = hp;
    if (!(e->dm.layers = calloc(hp->n_layer, sizeof *e->dm.layers)) ||
        !(e->timings = calloc(MAX_MARKS, sizeof *e->timings))) {
        rc = vkm_error(VKM_ENOMEM, "out of memory");
        goto fail;
    }
    for (uint32_t il = 0; il < hp->n_layer; il++) e->dm.layers[il].moe = e->model->layers[il].moe;
    if ((rc = vkm_op_rope_params(&e->dm.rope, hp->n_rot, hp->rope_freq_base, hp->freq_scale,
                                 hp->ext_factor, hp->attn_factor, hp->n_ctx_orig, 32.0f, 1.0f)))
        goto fail;
    if ((rc = import_mode_from_env(&e->import_mode))) goto fail;
    e->imp.mode = e->import_mode;
    vkm_gpu_options go = {.device = opts->device,
                          .validation = opts->validation,
                          .kernels = opts->kernels,
                          .compile_only = opts->compile_only};
    if ((rc = vkm_gpu_create(&go, &e->gpu))) goto fail;
    if ((rc = upload_weights(e))) goto fail;
    e->prefetch = opts->prefetch == VKM_PREFETCH_ON ||
                  (opts->prefetch == VKM_PREFETCH_AUTO && vkm_gpu_info(e->gpu)->transfer_queue);

    vkm_engine_info *in = &e->info;
    in->n_vocab = (int)hp->n_vocab;
    in->n_ctx_train = (int)hp->n_ctx_train;
    in->n_layer = (int)hp->n_layer;
    in->n_embd = (int)hp->n_embd;
    in->n_expert = (int)hp->n_expert;
    in->n_expert_used = (int)hp->n_expert_used;
    for (int64_t i = 0; i < vkm_gguf_n_tensors(e->gguf); i++)
        in->weight_bytes += vkm_gguf_tensor_at(e->gguf, i)->nbytes;
    snprintf(in->device_name, sizeof in->device_name, "%s", vkm_gpu_info(e->gpu)->name);
    vkm_model_describe(e->model, in->model_desc, sizeof in->model_desc);
    *out = e;
    return 0;
fail:
    vkm_engine_close(e);
    return rc;
}

void vkm_engine_close(vkm_engine *e) {
    if (!e) return;
    for (int b = 0; b < e->n_bufs; b++) vkm_gpu_buf_destroy(e->gpu, e->bufs[b]);
    free(e->bufs);
    destroy_paging(e);
    for (int r = 0; r < e->n_regions; r++) vkm_gpu_buf_destroy(e->gpu, e->regions[r].buf);
    free(e->regions);
    vkm_gpu_destroy(e->gpu);
    free(e->dm.layers);
    free(e->timings);
    vkm_model_free(e->model);
    vkm_gguf_close(e->gguf);
    free(e);
}

void vkm_engine_get_info(const vkm_engine *e, vkm_engine_info *out) {
    *out = e->info;
}

vkm_gpu *vkm_engine_gpu(vkm_engine *e) {
    return e->gpu;
}

const vkm_model *vkm_engine_model(const vkm_engine *e) {
    return e->model;
}

const vkm_dmodel *vkm_engine_dmodel(const vkm_engine *e) {
    return &e->dm;
}

void vkm_engine_import_stats_get(const vkm_engine *e, vkm_engine_import_stats *out) {
    *out = e->imp;
}

bool vkm_engine_profiling(const vkm_engine *e) {
    return e->opts.profile;
}

/* ------------------------------------------------------------------------ profile ---- */

int vkm_engine_profile_collect(vkm_engine *e, uint64_t *gpu_ns) {
    int n = 0;
    int rc = vkm_gpu_timings(e->gpu, e->timings, MAX_MARKS, &n);
    if (rc) return rc;
    if (n > MAX_MARKS) n = MAX_MARKS;
    for (int i = 0; i < n; i++) {
        if (gpu_ns) *gpu_ns += e->timings[i].ns;
        const char *label = e->timings[i].label;
        int j = 0;
        while (j < e->n_prof && e->prof[j].label != label && strcmp(e->prof[j].label, label)) j++;
        if (j == e->n_prof) {
            if (e->n_prof == MAX_PROFILE_LABELS) continue; /* more labels than we track */
            e->prof[e->n_prof++] = (prof_entry){label, 0, 0};
        }
        e->prof[j].calls++;
        e->prof[j].ns += e->timings[i].ns;
    }
    return 0;
}

static int prof_cmp(const void *a, const void *b) {
    const prof_entry *x = a, *y = b;
    return x->ns < y->ns ? 1 : x->ns > y->ns ? -1 : 0;
}

int vkm_engine_profile_print(vkm_engine *e, void *file) {
    FILE *fp = file;
    if (!e->opts.profile)
        return vkm_error(VKM_EINVAL, "profiling is off (open the engine with opts.profile)");
    uint64_t total = 0;
    for (int i = 0; i < e->n_prof; i++) total += e->prof[i].ns;
    qsort(e->prof, (size_t)e->n_prof, sizeof e->prof[0], prof_cmp);
    fprintf(fp, "%-16s %8s %12s %7s\n", "kernel", "calls", "total ms", "%");
    for (int i = 0; i < e->n_prof; i++)
        fprintf(fp, "%-16s %8llu %12.3f %6.1f%%\n", e->prof[i].label,
                (unsigned long long)e->prof[i].calls, (double)e->prof[i].ns / 1e6,
                total ? 100.0 * (double)e->prof[i].ns / (double)total : 0.0);
    fprintf(fp, "%-16s %8s %12.3f %6.1f%%\n", "total", "", (double)total / 1e6, 100.0);
    e->n_prof = 0;
    return 0;
}
