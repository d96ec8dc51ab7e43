/* session.c - vkm_session: one sequence on an engine (core/vkmoe.h): its latent KV cache on the
 * device, the work buffer of a batch, and evaluation.
 *
 * vkm_session_eval() splits the tokens into chunks of up to max_batch; per chunk it records the
 * whole forward pass (core/forward.c) into one gpu batch and submits it. Where the work buffer is
 * host-visible (CPU devices, integrated GPUs) the host writes the token ids and positions into it
 * and reads the logits from it; elsewhere they go through a host-visible buffer (io): the batch
 * begins with the copy of the ids and positions into the work buffer and, for one logit row, ends
 * with the row's copy back into io. Either way a decode step is one submit and one host wait
 * (more logit rows are downloaded after it). With paged experts the batch is cut after each MoE
 * router: page_layer() copies the choices (and, with prefetch, forward.c's guess of the next MoE
 * layer's choices in work.gsel) into a host-visible readback buffer at the end of the batch,
 * submits, lets the engine page the layer's experts in (asynchronous uploads the next batch waits
 * for on the device), starts the prefetch of the guessed experts and begins the next batch.
 * vkm_session_eval_multi() evaluates several sessions' tokens in one such batch through the work
 * buffer of one of them (forward.h's multi-sequence batch: ids and positions of every sequence's
 * rows, each sequence's own cache; io grows to hold one logit row per sequence).
 * vkm_session_warmup() records the passes an eval and the decode steps after it would record, dry
 * (gpu.h vkm_gpu_set_dry: nothing runs, the pipelines they use are built at the end; paged layers
 * get a plan over every slot and page nothing).
 *
 * Invariants: cache rows 0..n_past-1 of every layer hold the tokens evaluated so far; n_past only
 * grows when a whole eval succeeded, so a failed or refused eval (context overflow, bad token
 * id) leaves the session as it was (rows past n_past are scratch). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine.h"
#include "err.h"
#include "../shaders/fwd_common.h"
#include "forward.h"
#include "vkmoe.h"

#define MAX_CTX (1 << 24)   /* RoPE positions must stay below 2^24 (ops.h) */
#define MAX_BATCH (1 << 16) /* tokens per gpu batch */
#define MIB (1024.0 * 1024.0)
#define IO_IDS 0
#define IO_POS(s) ((size_t)(s)->max_batch * 4)
#define IO_KVT(s) ((size_t)(s)->max_batch * 8)
#define IO_LOGITS(s) ((size_t)(s)->max_batch * 16)

/* A KV pool: one device buffer for the caches of n_slots sessions (vkm_fwd_kv_pool_layout), so
 * that a batch of several of them takes each layer's attention in one dispatch on GPUs. */
struct vkm_kv_pool {
    vkm_engine *e;
    vkm_gpu_buf *buf;
    int n_slots, n_ctx, users;
    bool kv_f32;
    bool closed; /* vkm_kv_pool_destroy was called: freed with its last session */
    bool *used;  /* [n_slots] */
};

struct vkm_session {
    vkm_engine *e;
    vkm_gpu *gpu;
    const vkm_dmodel *dm;
    int n_ctx;     /* cache capacity in tokens */
    int max_batch; /* tokens per gpu batch */
    int n_past;    /* cached positions */
    vkm_fwd_kv kv;
    vkm_fwd_work w;
    vkm_kv_pool *pool; /* the pool whose slot `slot` kv is, or NULL (a cache of its own) */
    int slot;
    /* host-visible, mapped: int32 ids [max_batch], int32 positions [max_batch], int32 pairs
     * [max_batch][2] for work.kvt, then one row of float logits [n_vocab] (IO_* offsets) */
    vkm_gpu_buf *io;
    uint32_t io_rows; /* logit rows io holds (more for batched evaluations, io_grow) */
    int32_t *sel;     /* [max_batch * n_expert_used] router choices read back (paged experts) */
    vkm_gpu_buf *readback; /* host int32 [2][max_batch * n_expert_used]: choices, guess */
    uint32_t n;            /* tokens of the batch being recorded */
    vkm_dispatch_stats ds; /* vkm_session_dispatch_stats */
    uint64_t batch_gpu_ns; /* GPU time of the eval_chunk being run (profiling) */
    /* routed experts on the CPU (engine.h vkm_engine_expert_cpu_*), when the engine may use it:
     * the layer's FFN input and the CPU's rows of eo in host memory, [max_batch][E] and
     * [max_batch * K][E] floats; where the work buffer is not host-visible both live in cpu_io
     * (host-visible, a then eo), copied from / into the work buffer inside the batches; else in
     * cpu_a / cpu_eo (malloc), copied by the host */
    bool cpu;
    float *cpu_a, *cpu_eo;
    vkm_gpu_buf *cpu_io;
    int32_t *cpu_spans; /* [2 * n_expert] */
};

/* A device buffer of `bytes`, with a message naming the purpose on failure. */
static int make_buf(vkm_gpu *gpu, size_t bytes, const char *what, vkm_gpu_buf **out) {
    int rc = vkm_gpu_buf_create(gpu, bytes, VKM_BUF_DEVICE, out);
    if (rc != VKM_EDEVMEM) return rc;
    char why[512]; /* vkm_error() reuses the buffer vkm_errmsg() points to */
    snprintf(why, sizeof why, "%s", vkm_errmsg());
    return vkm_error(VKM_EDEVMEM, "session: the %s needs %.1f MiB of device memory: %s", what,
                     (double)bytes / MIB, why);
}

int vkm_session_plan(const vkm_hparams *hp, vkm_gpu *gpu, const vkm_session_opts *opts,
                     vkm_session_layout *out) {
    vkm_session_opts o = {0};
    if (opts) o = *opts;
    memset(out, 0, sizeof *out);
    int n_ctx = o.n_ctx;
    if (n_ctx == 0) n_ctx = hp->n_ctx_train < 4096 ? (int)hp->n_ctx_train : 4096;
    if (n_ctx <= 0 || n_ctx > MAX_CTX)
        return vkm_error(VKM_EINVAL, "session: n_ctx = %d, expected 1..%d", o.n_ctx, MAX_CTX);
    int max_batch = o.max_batch ? o.max_batch : 512;
    if (max_batch <= 0 || max_batch > MAX_BATCH)
        return vkm_error(VKM_EINVAL, "session: max_batch = %d, expected 1..%d", o.max_batch,
                         MAX_BATCH);
    if (max_batch > n_ctx) max_batch = n_ctx;
    if (vkm_gpu_plan(gpu)->loop_limit) {
        /* lavapipe ends a shader invocation after 65535 loop iterations in all, silently; the
         * expert grouping (moe_group.comp) scans every (token, choice) entry twice per expert an
         * invocation owns, so a batch stays below that (the matmul and attention kernels split
         * their own loops, core/ops*.c) */
        const uint64_t per_tok = 2ull * (hp->n_expert_used ? hp->n_expert_used : 1) *
                                 ((hp->n_expert + VKM_MOE_GROUP_WG - 1) / VKM_MOE_GROUP_WG + 1);
        const uint64_t cap = (60000 - VKM_MOE_GROUP_MAX_EXPERT) / per_tok;
        if ((uint64_t)max_batch > cap) max_batch = (int)cap;
    }
    out->n_ctx = n_ctx;
    out->max_batch = max_batch;
    int rc;
    if ((rc = vkm_fwd_kv_layout(hp, (uint32_t)n_ctx, !o.kv_f32, vkm_fwd_kv_scratch(gpu),
                                &out->kv)) ||
        (rc = vkm_fwd_work_layout(hp, (uint32_t)max_batch, &out->w)))
        return rc;
    out->device_bytes = (uint64_t)out->kv.bytes + out->w.bytes;
    return 0;
}

/* The host buffers of the experts computed on the CPU, when the engine may compute any. */
static int cpu_buffers(vkm_session *s) {
    const vkm_hparams *hp = s->dm->hp;
    for (uint32_t il = 0; il < hp->n_layer && !s->cpu; il++)
        s->cpu = vkm_engine_expert_cpu_possible(s->e, il);
    if (!s->cpu) return 0;
    const size_t a = (size_t)s->max_batch * hp->n_embd * sizeof(float);
    const size_t eo = a * (hp->n_expert_used ? hp->n_expert_used : 1);
    if (!(s->cpu_spans = malloc(2 * (size_t)hp->n_expert * sizeof *s->cpu_spans)))
        return vkm_error(VKM_ENOMEM, "out of memory");
    if (!vkm_gpu_buf_direct(s->gpu, s->w.buf))
        return vkm_gpu_buf_create(s->gpu, a + eo, VKM_BUF_HOST, &s->cpu_io);
    if (!(s->cpu_a = malloc(a)) || !(s->cpu_eo = malloc(eo)))
        return vkm_error(VKM_ENOMEM, "session: out of memory for the CPU experts' %.1f MiB",
                         (double)(a + eo) / MIB);
    return 0;
}

static void pool_free(vkm_kv_pool *p) {
    vkm_gpu_buf_destroy(vkm_engine_gpu(p->e), p->buf);
    free(p->used);
    free(p);
}

int vkm_kv_pool_create(vkm_engine *e, int n_slots, const vkm_session_opts *opts,
                       vkm_kv_pool **out) {
    *out = NULL;
    if (n_slots < 1 || n_slots > MAX_BATCH)
        return vkm_error(VKM_EINVAL, "KV pool: %d slots, expected 1..%d", n_slots, MAX_BATCH);
    const vkm_hparams *hp = &vkm_engine_model(e)->hp;
    vkm_gpu *gpu = vkm_engine_gpu(e);
    vkm_session_opts o = {0};
    if (opts) o = *opts;
    o.kv_pool = NULL;
    vkm_session_layout lay;
    VKM_TRY(vkm_session_plan(hp, gpu, &o, &lay));
    vkm_fwd_kv kv;
    VKM_TRY(vkm_fwd_kv_pool_layout(hp, (uint32_t)lay.n_ctx, !o.kv_f32, vkm_fwd_kv_scratch(gpu),
                                   (uint32_t)n_slots, 0, &kv));
    vkm_kv_pool *p = calloc(1, sizeof *p);
    if (!p || !(p->used = calloc((size_t)n_slots, sizeof *p->used))) {
        free(p);
        return vkm_error(VKM_ENOMEM, "out of memory");
    }
    p->e = e;
    p->n_slots = n_slots;
    p->n_ctx = lay.n_ctx;
    p->kv_f32 = o.kv_f32;
    int rc = make_buf(gpu, kv.bytes, "KV pool", &p->buf);
    if (rc) {
        pool_free(p);
        return rc;
    }
    *out = p;
    return 0;
}

/* With sessions still in its slots the pool goes when the last of them does. */
void vkm_kv_pool_destroy(vkm_kv_pool *p) {
    if (!p) return;
    p->closed = true;
    if (p->users == 0) pool_free(p);
}

/* Slot `slot` of pool p as s's cache. */
static int pool_take(vkm_session *s, vkm_kv_pool *p) {
    if (p->e != s->e) return vkm_error(VKM_EINVAL, "session: the KV pool is another engine's");
    int slot = 0;
    while (slot < p->n_slots && p->used[slot]) slot++;
    if (slot == p->n_slots)
        return vkm_error(VKM_EINVAL, "session: all %d slots of the KV pool are in use", p->n_slots);
    VKM_TRY(vkm_fwd_kv_pool_layout(s->dm->hp, (uint32_t)p->n_ctx, !p->kv_f32,
                                   vkm_fwd_kv_scratch(s->gpu), (uint32_t)p->n_slots, (uint32_t)slot,
                                   &s->kv));
    s->kv.buf = p->buf;
    s->n_ctx = p->n_ctx;
    s->pool = p;
    s->slot = slot;
    p->used[slot] = true;
    p->users++;
    return 0;
}

int vkm_session_create(vkm_engine *e, const vkm_session_opts *opts, vkm_session **out) {
    *out = NULL;
    const vkm_hparams *hp = &vkm_engine_model(e)->hp;
    vkm_session_layout lay;
    vkm_session_opts o = {0};
    if (opts) o = *opts;
    if (o.kv_pool) { /* the pool's context and cache type */
        o.n_ctx = o.kv_pool->n_ctx;
        o.kv_f32 = o.kv_pool->kv_f32;
    }
    int rc = vkm_session_plan(hp, vkm_engine_gpu(e), &o, &lay);
    if (rc) return rc;
    const int max_batch = lay.max_batch;

    vkm_session *s = calloc(1, sizeof *s);
    if (!s) return vkm_error(VKM_ENOMEM, "out of memory");
    s->e = e;
    s->gpu = vkm_engine_gpu(e);
    s->dm = vkm_engine_dmodel(e);
    s->n_ctx = lay.n_ctx;
    s->max_batch = max_batch;
    s->kv = lay.kv;
    s->w = lay.w;
    const size_t n_sel = (size_t)max_batch * (hp->n_expert_used ? hp->n_expert_used : 1);
    if (!(s->sel = malloc(n_sel * sizeof *s->sel))) {
        rc = vkm_error(VKM_ENOMEM, "out of memory");
        goto fail;
    }
    if ((rc = o.kv_pool ? pool_take(s, o.kv_pool)
                        : make_buf(s->gpu, s->kv.bytes, "KV cache", &s->kv.buf)) ||
        (rc = make_buf(s->gpu, s->w.bytes, "work buffer", &s->w.buf)) ||
        (rc = vkm_fwd_work_init(s->gpu, &s->w)) ||
        (rc = vkm_gpu_buf_create(s->gpu, IO_LOGITS(s) + (size_t)hp->n_vocab * sizeof(float),
                                 VKM_BUF_HOST, &s->io)))
        goto fail;
    s->io_rows = 1;
    if (vkm_engine_paged(e) &&
        (rc = vkm_gpu_buf_create(s->gpu, 2 * n_sel * sizeof *s->sel, VKM_BUF_HOST, &s->readback)))
        goto fail;
    if ((rc = cpu_buffers(s))) goto fail;
    *out = s;
    return 0;
fail:
    vkm_session_destroy(s);
    return rc;
}

void vkm_session_destroy(vkm_session *s) {
    if (!s) return;
    if (s->pool) {
        s->pool->used[s->slot] = false;
        if (--s->pool->users == 0 && s->pool->closed) pool_free(s->pool);
    } else {
        vkm_gpu_buf_destroy(s->gpu, s->kv.buf);
    }
    vkm_gpu_buf_destroy(s->gpu, s->w.buf);
    vkm_gpu_buf_destroy(s->gpu, s->readback);
    vkm_gpu_buf_destroy(s->gpu, s->io);
    vkm_gpu_buf_destroy(s->gpu, s->cpu_io);
    free(s->cpu_a);
    free(s->cpu_eo);
    free(s->cpu_spans);
    free(s->sel);
    free(s);
}

/* vkm_fwd_page_fn with paged experts: ends the open batch, (round 0) reads the layer's router
 * choices back, lets the engine page the round's experts in, (round 0, prefetch on) starts the
 * prefetch of the next MoE layer's guessed experts, and opens the next batch. */
static int page_layer(void *ctx, uint32_t il, uint32_t round, vkm_fwd_expert_plan *plan) {
    vkm_session *s = ctx;
    const size_t n_sel = (size_t)s->n * s->dm->hp->n_expert_used, bytes = n_sel * sizeof *s->sel;
    /* with prefetch on (vkm_fwd_batch.guess) forward.c recorded the guess into work.gsel
     * whenever the engine names a target (router_guess) */
    const int target = round == 0 ? vkm_engine_prefetch_target(s->e, il) : -1;
    const bool guess = target >= 0;
    /* the layer's FFN input for the experts the CPU may compute (not host-visible: copied) */
    const size_t a_bytes = (size_t)s->n * s->dm->hp->n_embd * sizeof(float);
    const bool cpu = round == 0 && s->cpu && vkm_engine_expert_cpu_possible(s->e, il);
    int rc;
    if (round == 0 &&
        ((rc = vkm_gpu_record_copy(s->gpu, s->w.buf, s->w.sel.off, s->readback, 0, bytes)) ||
         (guess &&
          (rc = vkm_gpu_record_copy(s->gpu, s->w.buf, s->w.gsel.off, s->readback, bytes, bytes)))))
        return rc;
    if (cpu && s->cpu_io &&
        (rc = vkm_gpu_record_copy(s->gpu, s->w.buf, s->w.a.off, s->cpu_io, 0, a_bytes)))
        return rc;
    if ((rc = vkm_gpu_submit(s->gpu))) return rc;
    if (vkm_engine_profiling(s->e) && (rc = vkm_engine_profile_collect(s->e, &s->batch_gpu_ns)))
        return rc;
    const int32_t *back = vkm_gpu_buf_map(s->readback);
    if (round == 0) memcpy(s->sel, back, bytes);
    if ((rc = vkm_engine_expert_page(s->e, il, round, s->sel, (uint32_t)n_sel, plan))) return rc;
    if (cpu && !s->cpu_io && vkm_engine_expert_cpu_pending(s->e) &&
        (rc = vkm_gpu_download(s->gpu, s->w.buf, s->w.a.off, s->cpu_a, a_bytes)))
        return rc;
    if (guess &&
        (rc = vkm_engine_expert_prefetch(s->e, (uint32_t)target, back + n_sel, (uint32_t)n_sel)))
        return rc;
    return vkm_gpu_begin(s->gpu);
}

/* vkm_fwd_host_fn: after the GPU work of MoE layer il is recorded, starts the device on it and
 * meanwhile computes the experts the engine left to the CPU, then puts their rows into work.eo
 * (host-visible: directly; else copies from cpu_io recorded into the batch, before the
 * combination). */
static int host_layer(void *ctx, uint32_t il) {
    vkm_session *s = ctx;
    if (!vkm_engine_expert_cpu_pending(s->e)) return 0;
    const size_t E = s->dm->hp->n_embd, a_bytes = (size_t)s->max_batch * E * sizeof(float);
    char *io = s->cpu_io ? vkm_gpu_buf_map(s->cpu_io) : NULL;
    const float *a = io ? (const float *)io : s->cpu_a;
    float *eo = io ? (float *)(io + a_bytes) : s->cpu_eo;
    uint32_t n_spans = 0;
    int rc;
    if ((rc = vkm_gpu_flush(s->gpu)) ||
        (rc = vkm_engine_expert_cpu_run(s->e, il, a, s->sel, s->n, eo, s->cpu_spans, &n_spans)))
        return rc;
    for (uint32_t i = 0; i < n_spans; i++) {
        const size_t off = (size_t)s->cpu_spans[2 * i] * E * sizeof(float);
        const size_t size = (size_t)s->cpu_spans[2 * i + 1] * E * sizeof(float);
        if (size == 0) continue;
        rc = io ? vkm_gpu_record_copy(s->gpu, s->cpu_io, a_bytes + off, s->w.buf, s->w.eo.off + off,
                                      size)
                : vkm_gpu_upload(s->gpu, s->w.buf, s->w.eo.off + off, (const char *)eo + off, size);
        if (rc) return rc;
    }
    return 0;
}

/* vkm_fwd_page_fn of a dry recording (vkm_session_warmup): every slot, nothing paged. */
static int page_dry(void *ctx, uint32_t il, uint32_t round, vkm_fwd_expert_plan *plan) {
    (void)round;
    return vkm_engine_expert_plan_dry(((vkm_session *)ctx)->e, il, plan);
}

static uint64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

/* The forward pass of n tokens at positions pos0.., logits of rows row0..row0+n_logits-1. */
static vkm_fwd_batch chunk_batch(vkm_session *s, int n, int pos0, int row0, int n_logits,
                                 bool dry) {
    const bool paged = vkm_engine_paged(s->e);
    return (vkm_fwd_batch){.n = (uint32_t)n,
                           .pos0 = (uint32_t)pos0,
                           .logit_row0 = (uint32_t)row0,
                           .n_logits = (uint32_t)n_logits,
                           .profile = !dry && vkm_engine_profiling(s->e),
                           .page = !paged ? NULL
                                   : dry  ? page_dry
                                          : page_layer,
                           .page_ctx = paged ? s : NULL,
                           .guess = paged && vkm_engine_prefetching(s->e),
                           .host = paged && !dry && s->cpu ? host_layer : NULL};
}

/* Runs one recorded forward pass b (ids and positions already in io) through s's work buffer,
 * against the cache kv (NULL for a multi-sequence b): one submit. The b->n_logits logit rows go
 * to logits ([n_logits][V] contiguous) or, with `rows`, row i to rows[i] (NULL: not wanted).
 * Where the work buffer is host-visible (CPU devices, integrated GPUs) the host writes the ids
 * and positions and reads the logits directly; else they go through io inside the batch (the
 * logits when io holds that many rows). */
static int run_batch(vkm_session *s, const vkm_fwd_batch *b, const vkm_fwd_kv *kv, float *logits,
                     float *const *rows) {
    char *io = vkm_gpu_buf_map(s->io);
    const uint32_t n = b->n, n_logits = b->n_logits;
    s->n = n;
    const size_t V = s->dm->hp->n_vocab, row_bytes = V * sizeof(float);
    const bool direct = vkm_gpu_buf_direct(s->gpu, s->w.buf);
    const bool in_batch = !direct && n_logits >= 1 && n_logits <= s->io_rows;
    const uint64_t d0 = vkm_gpu_dispatch_count(s->gpu), w0 = vkm_gpu_host_waits(s->gpu);
    const uint64_t t0 = now_ns();
    s->batch_gpu_ns = 0;
    int rc;
    const size_t kvt = b->kvt ? (size_t)n * 8 : 0; /* work.kvt's rows, when the batch has them */
    if (direct &&
        ((rc = vkm_gpu_upload(s->gpu, s->w.buf, s->w.ids.off, io + IO_IDS, (size_t)n * 4)) ||
         (rc = vkm_gpu_upload(s->gpu, s->w.buf, s->w.pos.off, io + IO_POS(s), (size_t)n * 4)) ||
         (kvt && (rc = vkm_gpu_upload(s->gpu, s->w.buf, s->w.kvt.off, io + IO_KVT(s), kvt)))))
        return rc;
    if ((rc = vkm_gpu_begin(s->gpu)) ||
        (!direct && ((rc = vkm_gpu_record_copy(s->gpu, s->io, IO_IDS, s->w.buf, s->w.ids.off,
                                               (size_t)n * 4)) ||
                     (rc = vkm_gpu_record_copy(s->gpu, s->io, IO_POS(s), s->w.buf, s->w.pos.off,
                                               (size_t)n * 4)) ||
                     (kvt && (rc = vkm_gpu_record_copy(s->gpu, s->io, IO_KVT(s), s->w.buf,
                                                       s->w.kvt.off, kvt))))) ||
        (rc = vkm_fwd_record(s->gpu, s->dm, &s->w, kv, b)) ||
        (in_batch && (rc = vkm_gpu_record_copy(s->gpu, s->w.buf, s->w.logits.off, s->io,
                                               IO_LOGITS(s), n_logits * row_bytes))) ||
        (rc = vkm_gpu_submit(s->gpu)))
        return rc;
    s->ds.last = vkm_gpu_dispatch_count(s->gpu) - d0;
    if (b->profile && (rc = vkm_engine_profile_collect(s->e, &s->batch_gpu_ns))) return rc;
    if (!in_batch && !rows && n_logits > 0) { /* contiguous rows: one download */
        if ((rc = vkm_gpu_download(s->gpu, s->w.buf, s->w.logits.off, logits,
                                   (size_t)n_logits * row_bytes)))
            return rc;
    } else {
        for (uint32_t i = 0; i < n_logits; i++) {
            float *dst = rows ? rows[i] : logits + i * V;
            if (!dst) continue;
            if (in_batch)
                memcpy(dst, io + IO_LOGITS(s) + i * row_bytes, row_bytes);
            else if ((rc = vkm_gpu_download(s->gpu, s->w.buf, s->w.logits.off + i * row_bytes, dst,
                                            row_bytes)))
                return rc;
        }
    }
    if (n == (b->n_seq ? b->n_seq : 1)) { /* one token per sequence: a decode step */
        s->ds.decode_steps++;
        s->ds.decode_dispatches += s->ds.last;
        s->ds.decode_waits += vkm_gpu_host_waits(s->gpu) - w0;
        s->ds.decode_wall_ns += now_ns() - t0;
        s->ds.decode_gpu_ns += s->batch_gpu_ns;
    }
    return 0;
}

/* Evaluates tokens[0..n) (n <= max_batch) at positions pos0.. in one gpu batch; the logits of
 * rows row0..row0+n_logits-1 go to logits. */
static int eval_chunk(vkm_session *s, const int32_t *tokens, int n, int pos0, int row0,
                      int n_logits, float *logits) {
    char *io = vkm_gpu_buf_map(s->io);
    int32_t *pos = (int32_t *)(io + IO_POS(s));
    memcpy(io + IO_IDS, tokens, (size_t)n * 4);
    for (int i = 0; i < n; i++) pos[i] = pos0 + i;
    const vkm_fwd_batch b = chunk_batch(s, n, pos0, row0, n_logits, false);
    return run_batch(s, &b, &s->kv, logits, NULL);
}

/* Makes s->io hold `rows` logit rows (it is made with one). */
static int io_grow(vkm_session *s, uint32_t rows) {
    if (rows <= s->io_rows) return 0;
    vkm_gpu_buf *io = NULL;
    const size_t bytes = IO_LOGITS(s) + (size_t)rows * s->dm->hp->n_vocab * sizeof(float);
    VKM_TRY(vkm_gpu_buf_create(s->gpu, bytes, VKM_BUF_HOST, &io));
    vkm_gpu_buf_destroy(s->gpu, s->io);
    s->io = io;
    s->io_rows = rows;
    return 0;
}

int vkm_session_eval(vkm_session *s, const int32_t *tokens, int n, bool all_logits, float *logits) {
    if (n <= 0 || !tokens) return vkm_error(VKM_EINVAL, "session: eval of %d tokens", n);
    if (n > s->n_ctx - s->n_past)
        return vkm_error(VKM_ERANGE,
                         "session: %d tokens at position %d exceed the %d-token context", n,
                         s->n_past, s->n_ctx);
    const uint32_t V = s->dm->hp->n_vocab;
    for (int i = 0; i < n; i++)
        if (tokens[i] < 0 || (uint32_t)tokens[i] >= V)
            return vkm_error(VKM_ERANGE, "session: token %d = %d is outside the vocabulary (%u)", i,
                             tokens[i], V);
    for (int done = 0; done < n;) {
        const int c = n - done < s->max_batch ? n - done : s->max_batch;
        const bool last = done + c == n;
        int row0 = 0, n_logits = 0;
        float *dst = NULL;
        if (logits && all_logits) {
            n_logits = c;
            dst = logits + (size_t)done * V;
        } else if (logits && last) {
            row0 = c - 1;
            n_logits = 1;
            dst = logits;
        }
        int rc = eval_chunk(s, tokens + done, c, s->n_past + done, row0, n_logits, dst);
        if (rc) return rc;
        done += c;
    }
    s->n_past += n;
    return 0;
}

int vkm_session_eval_multi(vkm_session *via, const vkm_seq_eval *seqs, int n_seq) {
    if (!via || n_seq <= 0 || !seqs)
        return vkm_error(VKM_EINVAL, "session: batched eval of %d sequences", n_seq);
    const uint32_t V = via->dm->hp->n_vocab;
    long total = 0;
    bool want = false;
    for (int i = 0; i < n_seq; i++) {
        const vkm_seq_eval *q = &seqs[i];
        if (!q->s || q->s->e != via->e || q->n <= 0 || !q->tokens)
            return vkm_error(VKM_EINVAL,
                             "session: batched eval: sequence %d is not a session of "
                             "this engine with tokens",
                             i);
        for (int j = 0; j < i; j++)
            if (seqs[j].s == q->s)
                return vkm_error(VKM_EINVAL,
                                 "session: batched eval: sequences %d and %d are "
                                 "the same session",
                                 j, i);
        if (q->n > q->s->n_ctx - q->s->n_past)
            return vkm_error(VKM_ERANGE,
                             "session: batched eval: sequence %d: %d tokens at position %d "
                             "exceed the %d-token context",
                             i, q->n, q->s->n_past, q->s->n_ctx);
        for (int t = 0; t < q->n; t++)
            if (q->tokens[t] < 0 || (uint32_t)q->tokens[t] >= V)
                return vkm_error(VKM_ERANGE,
                                 "session: batched eval: sequence %d: token %d = %d is outside "
                                 "the vocabulary (%u)",
                                 i, t, q->tokens[t], V);
        total += q->n;
        want |= q->logits != NULL;
    }
    if (total > via->max_batch)
        return vkm_error(VKM_EINVAL,
                         "session: batched eval of %ld tokens exceeds the batch size "
                         "%d",
                         total, via->max_batch);
    vkm_fwd_seq *fs = malloc((size_t)n_seq * sizeof *fs);
    float **rows = malloc((size_t)n_seq * sizeof *rows);
    int rc = 0;
    if (!fs || !rows) rc = vkm_error(VKM_ENOMEM, "out of memory");
    if (!rc && want && !vkm_gpu_buf_direct(via->gpu, via->w.buf))
        rc = io_grow(via, (uint32_t)n_seq);
    if (!rc) {
        char *io = vkm_gpu_buf_map(via->io);
        int32_t *ids = (int32_t *)(io + IO_IDS), *pos = (int32_t *)(io + IO_POS(via));
        int32_t *kvt = (int32_t *)(io + IO_KVT(via));
        uint32_t row = 0;
        for (int i = 0; i < n_seq; i++) {
            const vkm_seq_eval *q = &seqs[i];
            memcpy(ids + row, q->tokens, (size_t)q->n * 4);
            for (int t = 0; t < q->n; t++) {
                pos[row + t] = q->s->n_past + t;
                kvt[2 * (row + t)] = (int32_t)q->s->kv.row0;
                kvt[2 * (row + t) + 1] = q->s->n_past + t + 1;
            }
            fs[i] = (vkm_fwd_seq){&q->s->kv, row, (uint32_t)q->n, (uint32_t)q->s->n_past};
            rows[i] = q->logits;
            row += (uint32_t)q->n;
        }
        vkm_fwd_batch b = chunk_batch(via, (int)total, 0, 0, want ? n_seq : 0, false);
        b.seqs = fs;
        b.n_seq = (uint32_t)n_seq;
        b.kvt = true;
        rc = run_batch(via, &b, NULL, NULL, rows);
    }
    if (!rc)
        for (int i = 0; i < n_seq; i++) seqs[i].s->n_past += seqs[i].n;
    free(fs);
    free(rows);
    return rc;
}

static int warmup(vkm_session *s, int n_prompt);

int vkm_session_warmup_progress(vkm_session *s, int n_prompt, vkm_progress_fn fn, void *user) {
    _Static_assert((int)VKM_WARMUP_BUILD == VKM_GPU_STAGE_BUILD &&
                       (int)VKM_WARMUP_COMPILE == VKM_GPU_STAGE_PRIME,
                   "the warm-up stages are gpu.h's");
    vkm_gpu_set_progress(s->gpu, fn, user);
    const int rc = warmup(s, n_prompt);
    vkm_gpu_set_progress(s->gpu, NULL, NULL);
    return rc;
}

int vkm_session_warmup(vkm_session *s, int n_prompt) {
    return vkm_session_warmup_progress(s, n_prompt, NULL, NULL);
}

/* Records the batches b[0..nb) dry (building their pipelines) and, on CPU devices, once more
 * with no workgroups (compiling them). */
static int warm_batches(vkm_session *s, const vkm_fwd_batch *b, int nb) {
    int rc = vkm_gpu_set_dry(s->gpu, true);
    if (rc) return rc;
    for (int i = 0; i < nb && !rc; i++)
        rc = vkm_fwd_record(s->gpu, s->dm, &s->w, b[i].n_seq ? NULL : &s->kv, &b[i]);
    const int built = vkm_gpu_set_dry(s->gpu, false);
    if (rc || built) return rc ? rc : built;
    /* CPU devices (lavapipe) compile a pipeline's code at its first dispatch: the same passes
     * again, with no workgroups, so that happens here rather than in the first evaluations
     * (a cold Mesa shader cache: 30-60 s for bench-small's prompt on 2 cores) */
    if (!vkm_gpu_plan(s->gpu)->prime_warmup) return 0;
    rc = vkm_gpu_set_prime(s->gpu, true);
    for (int i = 0; i < nb && !rc; i++) {
        rc = vkm_gpu_begin(s->gpu);
        if (!rc) rc = vkm_fwd_record(s->gpu, s->dm, &s->w, b[i].n_seq ? NULL : &s->kv, &b[i]);
        if (!rc) rc = vkm_gpu_submit(s->gpu);
    }
    const int off = vkm_gpu_set_prime(s->gpu, false);
    return rc ? rc : off;
}

int vkm_session_warmup_batched(vkm_session *s, int n_seq, vkm_progress_fn fn, void *user) {
    if (n_seq > s->max_batch) n_seq = s->max_batch;
    if (n_seq < 2) return 0;
    vkm_fwd_seq *fs = malloc((size_t)n_seq * sizeof *fs);
    vkm_fwd_batch *b = malloc((size_t)(n_seq - 1) * sizeof *b);
    int rc = 0;
    if (!fs || !b) rc = vkm_error(VKM_ENOMEM, "out of memory");
    /* every sequence's rows against this session's cache, at its last position (a dry
     * recording reads and writes nothing) */
    const uint32_t pos = (uint32_t)(s->n_past < s->n_ctx ? s->n_past : s->n_ctx - 1);
    for (int i = 0; !rc && i < n_seq; i++) fs[i] = (vkm_fwd_seq){&s->kv, (uint32_t)i, 1, pos};
    for (int k = 2; !rc && k <= n_seq; k++) {
        b[k - 2] = chunk_batch(s, k, 0, 0, k, true);
        b[k - 2].seqs = fs;
        b[k - 2].n_seq = (uint32_t)k;
        b[k - 2].kvt = s->pool != NULL; /* a pool's sessions: its one-dispatch attention */
    }
    if (!rc) {
        vkm_gpu_set_progress(s->gpu, fn, user);
        rc = warm_batches(s, b, n_seq - 1);
        vkm_gpu_set_progress(s->gpu, NULL, NULL);
    }
    free(fs);
    free(b);
    return rc;
}

static int warmup(vkm_session *s, int n_prompt) {
    /* the chunks vkm_session_eval would record: full ones, the last one with its logit row;
     * then one token after them */
    int n = n_prompt < s->n_ctx - s->n_past ? n_prompt : s->n_ctx - s->n_past;
    if (n < 0) n = 0;
    const int last = n == 0 ? 0 : (n - 1) % s->max_batch + 1;
    vkm_fwd_batch b[3];
    int nb = 0;
    if (n > s->max_batch) b[nb++] = chunk_batch(s, s->max_batch, s->n_past, 0, 0, true);
    if (n > 0) b[nb++] = chunk_batch(s, last, s->n_past + n - last, last - 1, 1, true);
    const int pos = s->n_past + n < s->n_ctx ? s->n_past + n : s->n_ctx - 1;
    b[nb++] = chunk_batch(s, 1, pos, 0, 1, true);
    return warm_batches(s, b, nb);
}

void vkm_session_dispatch_stats(const vkm_session *s, vkm_dispatch_stats *out) {
    *out = s->ds;
}

int vkm_session_n_past(const vkm_session *s) {
    return s->n_past;
}

int vkm_session_n_ctx(const vkm_session *s) {
    return s->n_ctx;
}

int vkm_session_max_batch(const vkm_session *s) {
    return s->max_batch;
}

int vkm_session_truncate(vkm_session *s, int n_past) {
    if (n_past < 0 || n_past > s->n_past)
        return vkm_error(VKM_ERANGE, "session: cannot truncate to %d of %d positions", n_past,
                         s->n_past);
    s->n_past = n_past;
    return 0;
}
