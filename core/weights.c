/* weights.c - the resident weights of an engine (weights.h): every tensor of the model is placed
 * once in a few big device buffers (two pools: the routed experts, ffn_*_exps, in their own
 * buffers, reached through vkm_fwd_expert_where(), and everything else; a shared expert of the
 * routed ones' shapes and types is placed right after its layer's routed experts, in their
 * buffer, so that the kernels compute it as one more matrix of the routed dispatches, but counts
 * and falls back as the other weights), checked against what
 * the kernels handle, and uploaded from the mapping in chunks (pages already uploaded are dropped
 * from memory, so the host never holds a second copy). When the weights exceed the VRAM budget
 * the experts are paged instead (experts.c) and get no buffer here.
 *
 * Imports (VKMOE_IMPORT, engine.h; imports.c): on cpu/integrated devices the resident tensors
 * point into imported regions of the file mapping (no device copy; a tensor whose address is not
 * a multiple of the device's storage offset alignment is uploaded instead); with VKMOE_IMPORT=on
 * on discrete devices, or copy, the regions are only the source of device copies, one imported
 * at a time. A region the driver refuses falls back to the upload path for its tensors.
 *
 * Invariants: each uploaded tensor starts at a multiple of VKM_FWD_ALIGN in its buffer and its
 * padded size (a multiple of VKM_FWD_ALIGN, so whole words) lies inside it; a tensor used in
 * place starts at a multiple of the device's storage offset alignment (and of 4) in its region,
 * which holds its bytes padded to VKM_FWD_ALIGN (or, at the very end of the mapping, to whole
 * words); buffers and regions shared by several tensors stay within the device's weight window
 * (its largest binding), one holding a single larger tensor within its largest buffer, and none
 * exceeds 4 GiB (the kernels bind larger tensors in windows). */
#include "weights.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "err.h"
#include "experts.h"
#include "imports.h"
#include "ops_matmul.h"
#include "qtype.h"

#define UPLOAD_CHUNK ((size_t)64 << 20)    /* bytes per upload call */
#define PROGRESS_MIN ((uint64_t)256 << 20) /* show progress for weights above this */

/* POOL_PAGED: a paged expert (no buffer); POOL_IMPORTED: used in place from an imported region */
enum { POOL_MAIN, POOL_EXPERT, N_POOLS, POOL_PAGED = N_POOLS, POOL_IMPORTED };

/* Where one resident tensor goes (a tensor's "placement"; "slot" means an expert's device slot). */
typedef struct placement {
    const vkm_tensor *src;
    vkm_dtensor *dst;
    int pool;
    int buf;       /* index into vkm_engine.bufs */
    size_t off;    /* in that buffer */
    int region;    /* imports: index into vkm_engine.regions covering the tensor, -1 = none */
    size_t roff;   /* offset of the tensor's data in that region */
    bool with_exp; /* POOL_MAIN, placed with the expert pool after its layer's routed experts */
} placement;

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

/* Whether layer L's shared expert can be computed with its routed experts (forward.c pairs
 * them when they share a buffer): separate gate and up stacks, and the shared matrices of their
 * shapes and types. */
static bool shared_pairs(const vkm_layer *L) {
    const vkm_tensor *g = &L->ffn_gate_exps, *u = &L->ffn_up_exps, *d = &L->ffn_down_exps;
    const vkm_tensor *gs = &L->ffn_gate_shexp, *us = &L->ffn_up_shexp, *ds = &L->ffn_down_shexp;
    return g->data && u->data && d->data && !L->ffn_gate_up_exps.data && gs->data && us->data &&
           ds->data && gs->type == g->type && us->type == u->type && ds->type == d->type &&
           gs->ne[0] == g->ne[0] && gs->ne[1] == g->ne[1] && us->ne[0] == u->ne[0] &&
           us->ne[1] == u->ne[1] && ds->ne[0] == d->ne[0] && ds->ne[1] == d->ne[1] &&
           gs->ne[2] <= 1 && us->ne[2] <= 1 && ds->ne[2] <= 1;
}

/* Lists every tensor of the model once (a tied output is the embedding's descriptor). */
static int list_placements(const vkm_model *m, vkm_dmodel *dm, placement **out, int *n_out) {
    const uint32_t nl = m->hp.n_layer;
    placement *s = calloc((size_t)nl * N_LAYER_FIELDS + 3, sizeof *s);
    if (!s) return vkm_error(VKM_ENOMEM, "out of memory");
    int n = 0;
    s[n++] = (placement){&m->token_embd, &dm->token_embd, POOL_MAIN, 0, 0, -1, 0, false};
    s[n++] = (placement){&m->output_norm, &dm->output_norm, POOL_MAIN, 0, 0, -1, 0, false};
    if (!m->tied_output)
        s[n++] = (placement){&m->output, &dm->output, POOL_MAIN, 0, 0, -1, 0, false};
    for (uint32_t il = 0; il < nl; il++) {
        const char *src = (const char *)&m->layers[il];
        char *dst = (char *)&dm->layers[il];
        const bool pairs = shared_pairs(&m->layers[il]);
        for (int f = 0; f < N_LAYER_FIELDS; f++) {
            const vkm_tensor *t = (const vkm_tensor *)(src + k_layer_fields[f].src);
            if (!t->data) continue;
            const bool shexp = t == &m->layers[il].ffn_gate_shexp ||
                               t == &m->layers[il].ffn_up_shexp ||
                               t == &m->layers[il].ffn_down_shexp;
            s[n++] = (placement){t,
                                 (vkm_dtensor *)(dst + k_layer_fields[f].dst),
                                 k_layer_fields[f].pool,
                                 0,
                                 0,
                                 -1,
                                 0,
                                 pairs && shexp};
        }
    }
    *out = s;
    *n_out = n;
    return 0;
}

/* The pool whose buffers hold placement p (below N_POOLS: it is uploaded). */
static int buffer_pool(const placement *p) {
    return p->pool == POOL_MAIN && p->with_exp ? POOL_EXPERT : p->pool;
}

/* Assigns buffers and offsets from buffer nb0 on, pool by pool (in list order, so a shared
 * expert placed with the experts follows its layer's routed ones), starting a new buffer when one
 * would exceed `cap` (a tensor larger than cap gets a buffer of its own). sizes[] receives the
 * buffer sizes, *n_bufs the buffer count. */
static void plan(placement *s, int n, uint64_t cap, size_t *sizes, int nb0, int *n_bufs) {
    int nb = nb0;
    for (int pool = 0; pool < N_POOLS; pool++) {
        int cur = -1;
        for (int i = 0; i < n; i++) {
            if (buffer_pool(&s[i]) != pool) continue;
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

int vkm_weights_pool_bytes(const vkm_model *m, uint64_t *main, uint64_t *experts) {
    *main = *experts = 0;
    vkm_dmodel dm = {.hp = &m->hp};
    if (!(dm.layers = calloc(m->hp.n_layer + 1, sizeof *dm.layers)))
        return vkm_error(VKM_ENOMEM, "out of memory");
    placement *s = NULL;
    int n = 0, rc = list_placements(m, &dm, &s, &n);
    for (int i = 0; !rc && i < n; i++) {
        if (s[i].pool == POOL_EXPERT)
            *experts += align_up(s[i].src->nbytes);
        else
            *main += align_up(s[i].src->nbytes);
    }
    free(s);
    free(dm.layers);
    return rc;
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

uint64_t vkm_weights_pack_cap(const vkm_engine *e) {
    const uint64_t w = vkm_gpu_info(e->gpu)->weight_window_bytes;
    return (w && w < MAX_BUF_BYTES ? w : MAX_BUF_BYTES) / VKM_FWD_ALIGN * VKM_FWD_ALIGN;
}

uint64_t vkm_weights_big_cap(const vkm_engine *e) {
    const uint64_t a = vkm_gpu_info(e->gpu)->max_alloc_bytes;
    const uint64_t b = (a && a < MAX_BUF_BYTES ? a : MAX_BUF_BYTES) / VKM_FWD_ALIGN * VKM_FWD_ALIGN;
    return b > vkm_weights_pack_cap(e) ? b : vkm_weights_pack_cap(e);
}

/* ----------------------------------------------------------------------- upload ---- */

/* After the expert pool's buffers were given up for paging: the shared experts placed with them
 * get buffers of their own, after the other weights' (e->bufs grows for them). */
static int replace_shared(vkm_engine *e, placement *s, int n, uint64_t cap) {
    int any = 0;
    for (int i = 0; i < n; i++) {
        any |= s[i].with_exp && s[i].pool == POOL_MAIN;
        s[i].with_exp = false;
    }
    if (!any) return 0;
    /* only the re-placed ones: mark the others as placed already */
    const size_t max_bufs = (size_t)e->n_bufs + (size_t)n + 1;
    size_t *sizes = calloc(max_bufs, sizeof *sizes);
    int *keep = malloc(((size_t)n + 1) * sizeof *keep);
    vkm_gpu_buf **bufs = realloc(e->bufs, max_bufs * sizeof *bufs);
    if (bufs) e->bufs = bufs;
    if (!sizes || !keep || !bufs) {
        free(sizes);
        free(keep);
        return vkm_error(VKM_ENOMEM, "out of memory");
    }
    for (size_t b = (size_t)e->n_bufs; b < max_bufs; b++) e->bufs[b] = NULL;
    for (int i = 0; i < n; i++) {
        keep[i] = s[i].pool;
        if (s[i].pool == POOL_MAIN && s[i].buf < e->n_bufs) s[i].pool = POOL_IMPORTED;
    }
    int nb = 0;
    plan(s, n, cap, sizes, e->n_bufs, &nb);
    for (int i = 0; i < n; i++) s[i].pool = keep[i];
    int rc = 0;
    for (int b = e->n_bufs; !rc && b < nb; b++)
        if (!(rc = vkm_gpu_buf_create(e->gpu, sizes[b], VKM_BUF_DEVICE, &e->bufs[b])))
            e->n_bufs = b + 1;
    free(sizes);
    free(keep);
    return rc;
}

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
    int rc = allocated ? vkm_experts_plan(e, pool_bytes[POOL_MAIN], pool_bytes[POOL_EXPERT], cap,
                                          allocated, false)
                       : VKM_EDEVMEM;
    if (!rc && !e->paged) rc = VKM_EDEVMEM; /* no MoE layer to page */
    if (!rc) {
        for (int i = 0; i < n; i++)
            if (s[i].pool == POOL_EXPERT) s[i].pool = POOL_PAGED;
        rc = vkm_experts_setup(e);
    }
    if (!rc) rc = replace_shared(e, s, n, cap);
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
        if (!vkm_import_covers(e, src, len)) release_pages(src, len);
        *done_bytes += len;
        if (progress)
            fprintf(stderr, "\rvkmoe: uploading weights %.0f / %.0f MiB", *done_bytes / MIB,
                    (double)total / MIB);
    }
    e->imp.uploaded_bytes += t->nbytes;
    return 0;
}

/* Places the tensors still to upload (pools below N_POOLS) in regions (s[i].region, s[i].roff)
 * of at most vkm_weights_pack_cap bytes, or one tensor of up to vkm_weights_big_cap bytes, appended
 * to e->regions, not imported yet; item_align as in vkm_import_group_regions. Each region covers
 * its tensors' bytes padded to VKM_FWD_ALIGN where the mapping allows, else to whole words. */
static int group_resident(vkm_engine *e, placement *s, int n, size_t item_align) {
    const size_t gran = vkm_import_granule(e);
    vkm_import_item *it = malloc(((size_t)n + 1) * sizeof *it);
    if (!it) return vkm_error(VKM_ENOMEM, "out of memory");
    int m = 0;
    for (int i = 0; i < n; i++) {
        if (s[i].pool >= N_POOLS) continue;
        const vkm_tensor *t = s[i].src;
        vkm_import_item x = vkm_import_item_of(e, t, align_up(t->nbytes), i);
        const uintptr_t a = (uintptr_t)t->data;
        if (a <= x.map_end && x.need > x.map_end - a) x.need = (t->nbytes + 3) & ~(size_t)3;
        it[m++] = x;
    }
    int rc = vkm_import_group_regions(e, it, m, gran, vkm_weights_pack_cap(e) / gran * gran,
                                      vkm_weights_big_cap(e) / gran * gran, item_align);
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

int vkm_weights_upload(vkm_engine *e) {
    placement *s = NULL;
    int n = 0, rc = list_placements(e->model, &e->dm, &s, &n);
    if (rc) return rc;
    size_t *sizes = calloc((size_t)n + 1, sizeof *sizes);
    if (!sizes) {
        free(s);
        return vkm_error(VKM_ENOMEM, "out of memory");
    }
    if ((rc = check_supported(e, s, n))) goto done;
    const vkm_gpu_device_info *di = vkm_gpu_info(e->gpu);
    /* tensors share buffers of up to cap bytes; a larger one gets its own, up to big */
    const uint64_t cap = vkm_weights_pack_cap(e), big = vkm_weights_big_cap(e);
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
    const size_t gran = vkm_import_granule(e);
    const bool uma = di->type == VKM_DEV_CPU || di->type == VKM_DEV_INTEGRATED;
    const int mode = e->import_mode;
    const bool in_place = gran && uma && (mode == VKM_IMPORT_AUTO || mode == VKM_IMPORT_ON);
    const bool copy_src = gran && (mode == VKM_IMPORT_COPY || (mode == VKM_IMPORT_ON && !uma));
    if ((rc =
             vkm_experts_plan(e, pool_bytes[POOL_MAIN], pool_bytes[POOL_EXPERT], big, 0, in_place)))
        goto done;
    if (e->paged) { /* the experts stay in the mapping: no buffer, no upload */
        for (int i = 0; i < n; i++) {
            if (s[i].pool == POOL_EXPERT) s[i].pool = POOL_PAGED;
            s[i].with_exp = false;
        }
        total = pool_bytes[POOL_MAIN];
        if ((rc = vkm_experts_setup(e))) goto done;
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
            if ((rc = vkm_import_region(e, r))) goto done;
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
    plan(s, n, cap, sizes, 0, &e->n_bufs);
    if (!(e->bufs = calloc((size_t)e->n_bufs + 1, sizeof *e->bufs))) {
        rc = vkm_error(VKM_ENOMEM, "out of memory");
        goto done;
    }
    /* the expert pool's buffers follow the others (plan() goes pool by pool) */
    int first_exp = e->n_bufs;
    for (int i = 0; i < n; i++)
        if (buffer_pool(&s[i]) == POOL_EXPERT && s[i].buf < first_exp) first_exp = s[i].buf;
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
        if (s[i].pool >= N_POOLS) continue; /* paged (vkm_experts_setup) or imported in place */
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
        if ((rc = vkm_import_region(e, r))) goto done;
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
        vkm_import_release(e, r);
        for (int i = 0; i < n; i++)
            if (s[i].region == r && s[i].pool < N_POOLS &&
                !vkm_import_covers(e, s[i].src->data, s[i].src->nbytes))
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
