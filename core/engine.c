/* engine.c - vkm_engine: a deepseek2 GGUF file loaded onto one Vulkan device (core/vkmoe.h).
 *
 * Opening maps and validates the file (gguf.c, model.c), checks that every tensor type and shape
 * is within what the kernels handle, creates the gpu and uploads every tensor once into a few big
 * device buffers, reading from the mapping in chunks (pages already uploaded are dropped from
 * memory, so the host never holds a second copy). Two pools: the routed experts (ffn_*_exps) in
 * their own buffers, reached through vkm_fwd_expert_where(), and everything else.
 *
 * Invariants: each tensor starts at a multiple of VKM_FWD_ALIGN in its buffer and its padded size
 * (a multiple of VKM_FWD_ALIGN, so whole words) lies inside it; no buffer exceeds the device's
 * largest bindable range or 4 GiB. The gguf mapping outlives the model, which outlives the
 * device tensors. */
#include "engine.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "err.h"
#include "gguf.h"
#include "ops_matmul.h"
#include "qtype.h"

#define MIB (1024.0 * 1024.0)
#define UPLOAD_CHUNK ((size_t)64 << 20)    /* bytes per upload call */
#define PROGRESS_MIN ((uint64_t)256 << 20) /* show progress for weights above this */
#define MAX_BUF_BYTES ((uint64_t)4 << 30)  /* shaders address 32-bit ranges */
#define MAX_PROFILE_LABELS 64
#define MAX_MARKS 4096 /* gpu.h: marks per batch */

enum { POOL_MAIN, POOL_EXPERT, N_POOLS };

/* One tensor to upload. */
typedef struct slot {
    const vkm_tensor *src;
    vkm_dtensor *dst;
    int pool;
    int buf;    /* index into vkm_engine.bufs */
    size_t off; /* in that buffer */
} slot;

typedef struct prof_entry {
    const char *label;
    uint64_t calls, ns;
} prof_entry;

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
static int check_supported(const vkm_engine *e, const slot *slots, int n_slots) {
    const vkm_hparams *hp = &e->model->hp;
    const char *path = e->opts.model_path;
    for (int i = 0; i < n_slots; i++) {
        const vkm_tensor *t = slots[i].src;
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
static int list_slots(vkm_engine *e, slot **out, int *n_out) {
    const vkm_model *m = e->model;
    const uint32_t nl = m->hp.n_layer;
    slot *s = calloc((size_t)nl * N_LAYER_FIELDS + 3, sizeof *s);
    if (!s) return vkm_error(VKM_ENOMEM, "out of memory");
    int n = 0;
    s[n++] = (slot){&m->token_embd, &e->dm.token_embd, POOL_MAIN, 0, 0};
    s[n++] = (slot){&m->output_norm, &e->dm.output_norm, POOL_MAIN, 0, 0};
    if (!m->tied_output) s[n++] = (slot){&m->output, &e->dm.output, POOL_MAIN, 0, 0};
    for (uint32_t il = 0; il < nl; il++) {
        const char *src = (const char *)&m->layers[il];
        char *dst = (char *)&e->dm.layers[il];
        for (int f = 0; f < N_LAYER_FIELDS; f++) {
            const vkm_tensor *t = (const vkm_tensor *)(src + k_layer_fields[f].src);
            if (!t->data) continue;
            s[n++] = (slot){t, (vkm_dtensor *)(dst + k_layer_fields[f].dst), k_layer_fields[f].pool,
                            0, 0};
        }
    }
    *out = s;
    *n_out = n;
    return 0;
}

/* Assigns buffers and offsets, pool by pool, starting a new buffer when one would exceed `cap`.
 * sizes[] receives the buffer sizes (at most n_slots of them). */
static void plan(slot *s, int n, uint64_t cap, size_t *sizes, int *n_bufs) {
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

static int upload_weights(vkm_engine *e) {
    slot *s = NULL;
    int n = 0, rc = list_slots(e, &s, &n);
    if (rc) return rc;
    size_t *sizes = calloc((size_t)n + 1, sizeof *sizes);
    if (!sizes) {
        free(s);
        return vkm_error(VKM_ENOMEM, "out of memory");
    }
    if ((rc = check_supported(e, s, n))) goto done;
    const vkm_gpu_device_info *di = vkm_gpu_info(e->gpu);
    uint64_t cap = di->max_buffer_bytes && di->max_buffer_bytes < MAX_BUF_BYTES
                       ? di->max_buffer_bytes
                       : MAX_BUF_BYTES;
    cap = cap / VKM_FWD_ALIGN * VKM_FWD_ALIGN;
    uint64_t total = 0;
    for (int i = 0; i < n; i++) {
        if (align_up(s[i].src->nbytes) > cap) {
            rc = vkm_error(VKM_EUNSUPPORTED,
                           "%s: tensor %s (%.1f MiB) exceeds the largest buffer range of %s "
                           "(%.1f MiB)",
                           e->opts.model_path, s[i].src->name, (double)s[i].src->nbytes / MIB,
                           di->name, (double)cap / MIB);
            goto done;
        }
        total += align_up(s[i].src->nbytes);
    }
    if (e->opts.vram_budget && total > e->opts.vram_budget) { /* no expert paging yet */
        rc = vkm_error(VKM_EDEVMEM,
                       "%s: the weights need %.1f MiB of device memory, above the budget of "
                       "%.1f MiB (expert paging is not implemented yet)",
                       e->opts.model_path, (double)total / MIB, (double)e->opts.vram_budget / MIB);
        goto done;
    }
    plan(s, n, cap, sizes, &e->n_bufs);
    if (!(e->bufs = calloc((size_t)e->n_bufs, sizeof *e->bufs))) {
        rc = vkm_error(VKM_ENOMEM, "out of memory");
        goto done;
    }
    for (int b = 0; b < e->n_bufs; b++) {
        if ((rc = vkm_gpu_buf_create(e->gpu, sizes[b], VKM_BUF_DEVICE, &e->bufs[b]))) {
            char why[512]; /* vkm_error() reuses the buffer vkm_errmsg() points to */
            snprintf(why, sizeof why, "%s", vkm_errmsg());
            if (rc == VKM_EDEVMEM)
                rc = vkm_error(VKM_EDEVMEM,
                               "%s: the weights need %.0f MiB of device memory (%d buffers), "
                               "%s has %.0f MiB: %s",
                               e->opts.model_path, (double)total / MIB, e->n_bufs, di->name,
                               (double)di->device_local_bytes / MIB, why);
            goto done;
        }
    }
    const bool progress = !e->opts.quiet && total >= PROGRESS_MIN;
    uint64_t done_bytes = 0;
    for (int i = 0; i < n; i++) {
        const vkm_tensor *t = s[i].src;
        vkm_dtensor *d = s[i].dst;
        *d = (vkm_dtensor){e->bufs[s[i].buf], s[i].off,
                           t->type,           {t->ne[0], t->ne[1], t->ne[2], t->ne[3]},
                           t->nbytes,         t->row_bytes};
        for (size_t at = 0; at < t->nbytes; at += UPLOAD_CHUNK) {
            const size_t len = t->nbytes - at < UPLOAD_CHUNK ? t->nbytes - at : UPLOAD_CHUNK;
            const char *src = (const char *)t->data + at;
            if ((rc = vkm_gpu_upload(e->gpu, d->buf, d->off + at, src, len))) goto done;
            release_pages(src, len);
            done_bytes += len;
            if (progress)
                fprintf(stderr, "\rvkmoe: uploading weights %.0f / %.0f MiB", done_bytes / MIB,
                        (double)total / MIB);
        }
    }
    if (progress) fprintf(stderr, "\n");
    if (e->model->tied_output) e->dm.output = e->dm.token_embd;
done:
    free(sizes);
    free(s);
    return rc;
}

/* ------------------------------------------------------------------------- public ---- */

int vkm_engine_open(const vkm_engine_opts *opts, vkm_engine **out) {
    *out = NULL;
    if (!opts || !opts->model_path) return vkm_error(VKM_EINVAL, "vkm_engine_open: no model path");
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
    vkm_gpu_options go = {.device = opts->device, .validation = opts->validation};
    if ((rc = vkm_gpu_create(&go, &e->gpu))) goto fail;
    if ((rc = upload_weights(e))) goto fail;

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

bool vkm_engine_profiling(const vkm_engine *e) {
    return e->opts.profile;
}

/* ------------------------------------------------------------------------ profile ---- */

int vkm_engine_profile_collect(vkm_engine *e) {
    int n = 0;
    int rc = vkm_gpu_timings(e->gpu, e->timings, MAX_MARKS, &n);
    if (rc) return rc;
    if (n > MAX_MARKS) n = MAX_MARKS;
    for (int i = 0; i < n; i++) {
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
