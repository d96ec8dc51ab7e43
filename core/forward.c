/* forward.c - records the deepseek2 forward pass of one batch on the GPU (spec §4), following
 * core/ref_forward.c step by step: embedding; per layer RMSNorm, attention (q / kv compression,
 * RoPE, latent cache store, absorbed MLA attention or the naive path of legacy files, output
 * projection), residual, RMSNorm, dense SwiGLU or routed MoE + shared experts, residual; final
 * norm and the output projection of the wanted rows.
 *
 * Everything is recorded with core/ops.h and core/ops_matmul.h into the caller's gpu batch; the
 * host only sees the result. The residual adds are fused into the next RMSNorm
 * (vkm_op_rmsnorm_add: x += o; a = norm(x)), after a MoE layer together with the combination of
 * the experts' outputs (vkm_op_moe_combine_norm). Where the kernels allow, fewer dispatches do
 * the same work: the kv path in one (vkm_op_mla_kv_rope), gate, up and SwiGLU in one
 * (vkm_op_matmul_glu / _id_glu), routing and grouping in one (vkm_op_router_group); lavapipe
 * spends 10-15 us per dispatch (thread wake-ups), so these count at decode.
 *
 * Invariants: the shapes of every array are those documented in forward.h; offsets passed to
 * non-matmul ops are multiples of VKM_FWD_ALIGN, so they respect any device's storage alignment. */
#include "forward.h"

#include <stdlib.h>
#include <string.h>

#include "../shaders/fwd_common.h"
#include "../shaders/matmul_common.h"
#include "err.h"
#include "ops_matmul.h"

/* A profiling mark after the kernel(s) just recorded. */
#define MARK(label)                                                                                \
    do {                                                                                           \
        if (f->b->profile) VKM_TRY(vkm_gpu_mark(f->gpu, label));                                   \
    } while (0)

/* Everything one recording needs. */
typedef struct fwd {
    vkm_gpu *gpu;
    const vkm_dmodel *m;
    const vkm_hparams *hp;
    const vkm_fwd_work *w;
    const vkm_fwd_batch *b;
    const vkm_fwd_seq *seqs; /* [n_seq]: b->seqs, or the batch as one sequence */
    uint32_t n_seq;
} fwd;

/* -------------------------------------------------------------------------- experts ---- */

vkm_expert_loc vkm_fwd_expert_where(const vkm_dmodel *m, uint32_t il, int kind, uint32_t e) {
    const vkm_dlayer *L = &m->layers[il];
    const vkm_dtensor *t = kind == VKM_EXPERT_GATE      ? &L->ffn_gate_exps
                           : kind == VKM_EXPERT_UP      ? &L->ffn_up_exps
                           : kind == VKM_EXPERT_GATE_UP ? &L->ffn_gate_up_exps
                                                        : &L->ffn_down_exps;
    const size_t mat = (size_t)t->ne[1] * t->row_bytes;
    return (vkm_expert_loc){t->buf, t->off + (size_t)e * mat, mat};
}

/* --------------------------------------------------------------------------- layouts ---- */

typedef struct planner {
    size_t off;
    bool overflow;
} planner;

/* The next span of count elements of esize bytes (at least one word, whole VKM_FWD_ALIGN units).
 */
static vkm_fwd_span take(planner *p, uint64_t count, uint64_t esize) {
    uint64_t bytes;
    if (__builtin_mul_overflow(count, esize, &bytes) || bytes > SIZE_MAX / 2) {
        p->overflow = true;
        return (vkm_fwd_span){0, 0};
    }
    if (bytes == 0) bytes = 4;
    bytes = (bytes + VKM_FWD_ALIGN - 1) / VKM_FWD_ALIGN * VKM_FWD_ALIGN;
    vkm_fwd_span s = {p->off, (size_t)bytes};
    if (p->off > SIZE_MAX / 2 - bytes) p->overflow = true;
    p->off += (size_t)bytes;
    return s;
}

int vkm_fwd_work_layout(const vkm_hparams *hp, uint32_t max_batch, vkm_fwd_work *w) {
    memset(w, 0, sizeof *w);
    if (max_batch == 0) return vkm_error(VKM_EINVAL, "forward: max_batch is 0");
    const uint64_t B = max_batch, E = hp->n_embd, H = hp->n_head, K = hp->n_expert_used;
    const uint64_t X = hp->n_expert, Fe = hp->n_ff_exp, Ckv = hp->n_lora_kv, D = hp->kv_dim;
    const uint64_t BK = B * (K ? K : 1);
    uint64_t Fx = hp->n_ff;
    if ((uint64_t)Fe * hp->n_expert_shared > Fx) Fx = (uint64_t)Fe * hp->n_expert_shared;
    planner p = {0, false};
    w->max_batch = max_batch;
    w->ids = take(&p, B, 4);
    w->pos = take(&p, B, 4);
    w->iota = take(&p, BK, 4);
    w->x = take(&p, B * E, 4);
    w->a = take(&p, B * E, 4);
    w->o = take(&p, B * E, 4);
    w->qa = take(&p, B * hp->n_lora_q, 4);
    /* the 8-bit forms of a and qa (decode batches: q8x) */
    const uint64_t B8 = B < VKM_MM_VEC_MAX_COLS ? B : VKM_MM_VEC_MAX_COLS;
    w->aq = take(&p, E % 32 ? 0 : B8 * (E / 32), VKM_Q8X_BLOCK_BYTES);
    w->qaq = take(&p, hp->n_lora_q % 32 ? 0 : B8 * (hp->n_lora_q / 32), VKM_Q8X_BLOCK_BYTES);
    w->q = take(&p, B * H * hp->d_qk, 4);
    w->kva = take(&p, B * D, 4);
    w->qabs = take(&p, hp->is_mla ? B * H * Ckv : 0, 4);
    w->ao = take(&p, hp->is_mla ? B * H * Ckv : 0, 4);
    w->ast = take(&p, B * H * 2, 4);
    w->kvb = take(&p, hp->is_mla ? 0 : B * H * (hp->d_nope + hp->d_v), 4);
    w->u = take(&p, B * H * hp->d_v, 4);
    w->fg = take(&p, B * Fx * 2, 4); /* [B][2F] for gate and up in one matmul (ffn) */
    w->fu = take(&p, B * Fx, 4);
    w->rlog = take(&p, B * X, 4);
    w->sel = take(&p, B * K, 4);
    w->wts = take(&p, B * K, 4);
    w->rows = take(&p, BK, 4);
    w->map = take(&p, BK, 4);
    w->mats = take(&p, 3 * X + 1, 4); /* + the active list (fwd_common.h) */
    w->gsel = take(&p, B * K, 4);
    w->gwts = take(&p, B * K, 4);
    w->eg = take(&p, BK * 2 * Fe, 4);
    w->eh = take(&p, (BK + B) * Fe, 4); /* + the shared expert's rows (moe: paired) */
    w->eo = take(&p, X ? (BK + B) * E : 0, 4);
    w->logits = take(&p, B * hp->n_vocab, 4);
    w->kvt = take(&p, 2 * B, 4);
    if (p.overflow)
        return vkm_error(VKM_ERANGE, "forward: work buffers for %u tokens overflow", max_batch);
    w->bytes = p.off;
    return 0;
}

int vkm_fwd_work_init(vkm_gpu *gpu, const vkm_fwd_work *w) {
    const size_t n = w->iota.size / 4;
    int32_t *v = malloc(n * sizeof *v);
    if (!v) return vkm_error(VKM_ENOMEM, "forward: out of memory");
    for (size_t i = 0; i < n; i++) v[i] = (int32_t)i;
    int rc = vkm_gpu_upload(gpu, w->buf, w->iota.off, v, n * sizeof *v);
    free(v);
    return rc;
}

bool vkm_fwd_kv_scratch(vkm_gpu *gpu) {
    return vkm_gpu_plan(gpu)->attn_dec; /* its scores scratch */
}

int vkm_fwd_kv_layout(const vkm_hparams *hp, uint32_t n_ctx, bool f16, bool scores,
                      vkm_fwd_kv *kv) {
    memset(kv, 0, sizeof *kv);
    if (n_ctx == 0) return vkm_error(VKM_EINVAL, "forward: n_ctx is 0");
    const uint64_t es = f16 ? 2 : 4, H = hp->n_head;
    planner p = {0, false};
    vkm_fwd_span k, v = {0, 0};
    if (hp->is_mla) {
        k = take(&p, (uint64_t)n_ctx * hp->kv_dim, es);
    } else {
        k = take(&p, (uint64_t)n_ctx * H * hp->d_qk, es);
        v = take(&p, (uint64_t)n_ctx * H * hp->d_v, es);
    }
    const uint64_t layer = p.off;
    if (p.overflow || layer > SIZE_MAX / hp->n_layer)
        return vkm_error(VKM_ERANGE, "forward: a KV cache of %u positions overflows", n_ctx);
    (void)k;
    kv->f16 = f16;
    kv->n_ctx = n_ctx;
    kv->layer_bytes = kv->layer_stride = (size_t)layer;
    kv->pool_rows = n_ctx;
    kv->v_off = v.off;
    kv->bytes = (size_t)layer * hp->n_layer;
    if (hp->is_mla && scores) {
        p.off = kv->bytes;
        const vkm_fwd_span sc = take(&p, (uint64_t)n_ctx * ((H + 7) & ~(uint64_t)7), 4);
        if (p.overflow)
            return vkm_error(VKM_ERANGE, "forward: a KV cache of %u positions overflows", n_ctx);
        kv->scores_off = sc.off;
        kv->scores_bytes = sc.size;
        kv->bytes = p.off;
    }
    return 0;
}

int vkm_fwd_kv_pool_layout(const vkm_hparams *hp, uint32_t n_ctx, bool f16, bool scores,
                           uint32_t n_slots, uint32_t slot, vkm_fwd_kv *kv) {
    if (n_slots == 0 || slot >= n_slots)
        return vkm_error(VKM_EINVAL, "forward: KV pool slot %u of %u", slot, n_slots);
    uint32_t rows = n_ctx; /* MLA: a slot's rows fill whole VKM_FWD_ALIGN units */
    if (hp->is_mla && n_ctx) {
        const uint64_t row = (uint64_t)hp->kv_dim * (f16 ? 2 : 4);
        uint64_t g = VKM_FWD_ALIGN, r = row % VKM_FWD_ALIGN;
        while (r) { /* gcd(row, VKM_FWD_ALIGN) */
            const uint64_t t = g % r;
            g = r;
            r = t;
        }
        const uint64_t unit = VKM_FWD_ALIGN / g;
        const uint64_t up = ((uint64_t)n_ctx + unit - 1) / unit * unit;
        if (up > UINT32_MAX)
            return vkm_error(VKM_ERANGE, "forward: a KV cache of %u positions overflows", n_ctx);
        rows = (uint32_t)up;
    }
    VKM_TRY(vkm_fwd_kv_layout(hp, rows, f16, scores, kv));
    const size_t layer = kv->layer_bytes, sc = kv->scores_bytes;
    if (layer > SIZE_MAX / n_slots / hp->n_layer || (sc && sc > SIZE_MAX / 2 / n_slots))
        return vkm_error(VKM_ERANGE, "forward: a KV pool of %u x %u positions overflows", n_slots,
                         n_ctx);
    kv->n_ctx = n_ctx;
    kv->pooled = true;
    kv->layer_stride = layer * n_slots;
    kv->base = layer * slot;
    kv->row0 = rows * slot;
    kv->pool_rows =
        (uint32_t)((uint64_t)rows * n_slots > UINT32_MAX ? UINT32_MAX : (uint64_t)rows * n_slots);
    const size_t layers = kv->layer_stride * hp->n_layer;
    if (sc) kv->scores_off = layers + sc * slot;
    kv->bytes = layers + sc * n_slots;
    return 0;
}

/* ------------------------------------------------------------------------- arguments ---- */

static vkm_gpu_arg act(const fwd *f, vkm_fwd_span s) {
    return (vkm_gpu_arg){f->w->buf, s.off, s.size};
}

static vkm_gpu_arg wt(const vkm_dtensor *t) {
    return (vkm_gpu_arg){t->buf, t->off, (t->nbytes + 3) & ~(size_t)3};
}

/* The cache kv of layer il from byte `off` of the layer (K: 0, legacy V: kv->v_off). */
static vkm_gpu_arg cache(const vkm_fwd_kv *kv, uint32_t il, size_t off) {
    return (vkm_gpu_arg){kv->buf, (size_t)il * kv->layer_stride + kv->base + off,
                         kv->layer_bytes - off};
}

/* The one-query attention scratch of kv (vkm_fwd_kv.scores_off); empty for legacy files. */
static vkm_gpu_arg scores(const vkm_fwd_kv *kv) {
    return kv->scores_bytes ? (vkm_gpu_arg){kv->buf, kv->scores_off, kv->scores_bytes}
                            : (vkm_gpu_arg){0};
}

/* ---- 8-bit activations: where the plan's norms also write their output in the Q8X form that
 * the integer-dot GEMVs read (fuse.norm_q8; decode batches of at most VKM_MM_VEC_MAX_COLS tokens,
 * rows of a multiple of 32 values), every norm that writes a (or qa) writes aq (qaq) in the same
 * dispatch, so a matmul reading a or qa is given that and records no quantization of its own. */

/* *xq = the 8-bit form in span q of the batch's rows of d floats in span x, and xq; or NULL. */
static const vkm_q8x *q8x(const fwd *f, vkm_fwd_span x, vkm_fwd_span q, uint32_t d, vkm_q8x *xq) {
    const uint32_t n = f->b->n;
    if (!vkm_gpu_plan(f->gpu)->fuse.norm_q8 || n > VKM_MM_VEC_MAX_COLS || d == 0 || d % 32 ||
        q.size < (size_t)n * (d / 32) * VKM_Q8X_BLOCK_BYTES)
        return NULL;
    *xq = (vkm_q8x){f->w->buf, x.off, d, d, n, act(f, q)};
    return xq;
}

/* The 8-bit form of the activations at byte x_off of the work buffer: a's or qa's, or NULL. */
static const vkm_q8x *q8x_at(const fwd *f, size_t x_off, vkm_q8x *xq) {
    if (x_off == f->w->a.off) return q8x(f, f->w->a, f->w->aq, f->hp->n_embd, xq);
    if (x_off == f->w->qa.off) return q8x(f, f->w->qa, f->w->qaq, f->hp->n_lora_q, xq);
    return NULL;
}

/* y = rmsnorm(x) * nw for the batch's rows of d floats (y: a or qa, contiguous rows; x may be y),
 * with y's 8-bit form where q8x gives one. */
static int norm(const fwd *f, vkm_gpu_arg x, vkm_gpu_arg nw, vkm_fwd_span y, uint32_t d) {
    vkm_q8x xq;
    const uint32_t n = f->b->n;
    if (q8x_at(f, y.off, &xq))
        return vkm_op_rmsnorm_q8(f->gpu, x, nw, act(f, y), xq.q, n, d, d, d, f->hp->eps);
    return vkm_op_rmsnorm(f->gpu, x, nw, act(f, y), n, d, d, d, f->hp->eps);
}

/* x += o, then a = rmsnorm(x) * nw (with a's 8-bit form where q8x gives one). */
static int norm_add(const fwd *f, vkm_gpu_arg nw) {
    const vkm_fwd_work *w = f->w;
    const uint32_t n = f->b->n, E = f->hp->n_embd;
    vkm_q8x xq;
    if (q8x_at(f, w->a.off, &xq))
        return vkm_op_rmsnorm_add_q8(f->gpu, act(f, w->x), act(f, w->o), nw, act(f, w->a), xq.q, n,
                                     E, f->hp->eps);
    return vkm_op_rmsnorm_add(f->gpu, act(f, w->x), act(f, w->o), nw, act(f, w->a), n, E,
                              f->hp->eps);
}

/* y[n][ne1] = t · x[n][ne0] with x, y rows contiguous (y at byte y_off of the work buffer). */
static int matmul(const fwd *f, const vkm_dtensor *t, size_t x_off, size_t y_off, uint32_t n) {
    vkm_q8x xq;
    return vkm_op_matmul_xq(f->gpu, t->type, t->buf, t->off, t->ne[0], t->ne[1], f->w->buf, x_off,
                            n, f->w->buf, y_off, q8x_at(f, x_off, &xq));
}

/* Per-head matrices (t {k, m, n_mat}): Y[i][h] (m values, y_stride apart) = t[h] · X[i][h]
 * (the first k values of rows x_stride apart). */
static int matmul_heads(const fwd *f, const vkm_dtensor *t, vkm_fwd_span x, int64_t x_stride,
                        vkm_fwd_span y, uint32_t n) {
    const int64_t rows = (int64_t)n * t->ne[2];
    vkm_matmul_id a = {.wtype = t->type,
                       .w = t->buf,
                       .w_off = t->off,
                       .k = t->ne[0],
                       .m = t->ne[1],
                       .n_mat = t->ne[2],
                       .x = f->w->buf,
                       .x_off = x.off,
                       .n_x = rows,
                       .x_stride = x_stride,
                       .y = f->w->buf,
                       .y_off = y.off,
                       .n_y = rows,
                       .mode = VKM_MATMUL_ID_HEADS,
                       .n_tok = n};
    return vkm_op_matmul_id(f->gpu, &a);
}

/* Routed experts: entry p of the grouped rows (work.rows / work.mats) reads X row xrows[p] and
 * writes Y row p; matrix `kind` of the experts of layer il. */
static vkm_matmul_id experts_args(const fwd *f, uint32_t il, int kind, int64_t k, int64_t m,
                                  vkm_fwd_span x, int64_t n_x, vkm_fwd_span xrows, vkm_fwd_span y,
                                  const vkm_fwd_expert_plan *plan, vkm_q8x *xq) {
    const vkm_dlayer *L = &f->m->layers[il];
    const vkm_dtensor *t = kind == VKM_EXPERT_DOWN      ? &L->ffn_down_exps
                           : kind == VKM_EXPERT_GATE_UP ? &L->ffn_gate_up_exps
                           : kind == VKM_EXPERT_UP      ? &L->ffn_up_exps
                                                        : &L->ffn_gate_exps;
    /* the stack (paged: the slots from plan->base on) */
    const vkm_expert_loc loc = vkm_fwd_expert_where(f->m, il, kind, plan ? plan->base : 0);
    const int64_t n_rows = (int64_t)f->b->n * f->hp->n_expert_used;
    return (vkm_matmul_id){.wtype = t->type,
                           .w = loc.buf,
                           .w_off = loc.off,
                           .k = k,
                           .m = m,
                           .n_mat = plan ? plan->n_mat : f->hp->n_expert,
                           .x = f->w->buf,
                           .x_off = x.off,
                           .n_x = n_x,
                           .y = f->w->buf,
                           .y_off = y.off,
                           .n_y = n_rows,
                           .mode = VKM_MATMUL_ID_ROWS,
                           .rows = f->w->buf,
                           .rows_off = xrows.off,
                           .n_rows = n_rows,
                           .mats = plan ? plan->mats : f->w->buf,
                           .mats_off = plan ? plan->mats_off : f->w->mats.off,
                           .max_per_mat = f->b->n, /* a token picks an expert at most once */
                           .active_list = !plan,   /* moe_group writes it; paging plans do not */
                           .xq = q8x_at(f, x.off, xq)};
}

/* ------------------------------------------------------------------------- attention ---- */

/* The shape of sequence q's attention call (its rows of the batch against its own cache); pooled,
 * of the one call for every row of the batch against the pool's rows (pooled()). */
static vkm_attn_shape attn_shape(const fwd *f, const vkm_fwd_seq *q, bool pool) {
    if (pool)
        return (vkm_attn_shape){.n_q = f->b->n,
                                .n_head = f->hp->n_head,
                                .n_kv = q->kv->pool_rows,
                                .kq_scale = f->hp->kq_scale,
                                .cache_f16 = q->kv->f16,
                                .state = act(f, f->w->ast),
                                .kvt = act(f, f->w->kvt)};
    return (vkm_attn_shape){.n_q = q->n,
                            .n_head = f->hp->n_head,
                            .q_pos0 = q->pos0,
                            .n_kv = q->pos0 + q->n,
                            .kq_scale = f->hp->kq_scale,
                            .cache_f16 = q->kv->f16,
                            .state = act(f, f->w->ast),
                            .scores = scores(q->kv),
                            .q_row0 = q->row0};
}

/* The cache binding of an MLA attention call in layer il: kv's rows, or pooled every slot's. */
static vkm_gpu_arg attn_cache(const vkm_fwd_kv *kv, uint32_t il, bool pool) {
    return pool ? (vkm_gpu_arg){kv->buf, (size_t)il * kv->layer_stride, kv->layer_stride}
                : cache(kv, il, 0);
}

/* Whether the batch's sequences take each layer's attention in one dispatch: several, every
 * cache a slot of the same pool, work.kvt filled, and the plan's kernels do it. */
static bool pooled(const fwd *f) {
    if (f->n_seq < 2 || !f->b->kvt || !vkm_gpu_plan(f->gpu)->fuse.attn_pool) return false;
    const vkm_fwd_kv *k0 = f->seqs[0].kv;
    for (uint32_t i = 0; i < f->n_seq; i++) {
        const vkm_fwd_kv *k = f->seqs[i].kv;
        if (!k->pooled || k->buf != k0->buf || k->layer_stride != k0->layer_stride ||
            k->f16 != k0->f16 || k->pool_rows != k0->pool_rows)
            return false;
    }
    return true;
}

/* o[n][E] = Attention(a[n][E]) of layer il (spec §4.3-§4.4); writes the cache rows of the batch.
 * Everything but the cache stores and the attention itself is computed for the whole batch at
 * once; those two per sequence (each has its own cache). */
static int attention(const fwd *f, uint32_t il) {
    const vkm_hparams *hp = f->hp;
    const vkm_dlayer *L = &f->m->layers[il];
    const vkm_fwd_work *w = f->w;
    const uint32_t n = f->b->n;
    const uint32_t H = hp->n_head, Dqk = hp->d_qk, Dn = hp->d_nope, R = hp->n_rot, Dv = hp->d_v;
    const uint32_t Cq = hp->n_lora_q, Ckv = hp->n_lora_kv, D = hp->kv_dim;

    /* q_a and kv_a in one dispatch where the kernels allow it (they read the same a) */
    int kv_rc = VKM_MATMUL_UNFIT;
    const vkm_dtensor *qa_t = &L->attn_q_a, *kv_t = &L->attn_kv_a_mqa;
    if (vkm_gpu_plan(f->gpu)->fuse.qa_kva && Cq > 0 && qa_t->type == kv_t->type &&
        qa_t->buf == kv_t->buf) {
        vkm_q8x xq;
        kv_rc = vkm_op_matmul_pair(f->gpu, qa_t->type, qa_t->ne[0], qa_t->buf, qa_t->off,
                                   qa_t->ne[1], kv_t->off, kv_t->ne[1], w->buf, w->a.off, n, w->buf,
                                   w->qa.off, w->kva.off, q8x_at(f, w->a.off, &xq));
        if (kv_rc < 0) return kv_rc;
    }
    /* q [n][H][Dqk] = W_q_b · norm(W_q_a · a), or W_q · a */
    if (Cq > 0) {
        if (kv_rc) VKM_TRY(matmul(f, &L->attn_q_a, w->a.off, w->qa.off, n)); /* qa [n][Cq] */
        VKM_TRY(norm(f, act(f, w->qa), wt(&L->attn_q_a_norm), w->qa, Cq));
        VKM_TRY(matmul(f, &L->attn_q_b, w->qa.off, w->q.off, n));
    } else {
        VKM_TRY(matmul(f, &L->attn_q, w->a.off, w->q.off, n));
    }
    MARK("attn_q");
    /* kva [n][Ckv+R] = W_kv_a_mqa · a */
    if (kv_rc) {
        VKM_TRY(matmul(f, &L->attn_kv_a_mqa, w->a.off, w->kva.off, n));
        MARK("attn_kv");
    }

    if (hp->is_mla) { /* spec §4.4a */
        /* per sequence, its cache rows pos0.. = [norm(c), rope(k_pe)]; every q_pe rotated in
         * place. Pooled: one call for every sequence (work.kvt gives each token its rows). */
        const bool pool = pooled(f);
        const uint32_t calls = pool ? 1 : f->n_seq;
        for (uint32_t i = 0; i < calls; i++) {
            const vkm_fwd_seq *q = &f->seqs[i];
            const vkm_mla_kv_shape ks = {pool ? n : q->n,
                                         Ckv,
                                         D,
                                         pool ? 0 : q->pos0,
                                         H,
                                         Dn,
                                         H * Dqk,
                                         Dqk,
                                         hp->eps,
                                         pool ? 0 : q->row0,
                                         pool ? act(f, w->kvt) : (vkm_gpu_arg){0}};
            VKM_TRY(vkm_op_mla_kv_rope(f->gpu, &f->m->rope, q->kv->f16, &ks, act(f, w->kva),
                                       wt(&L->attn_kv_a_norm), act(f, w->pos), act(f, w->q),
                                       attn_cache(q->kv, il, pool)));
        }
        MARK("kv_rope");
        /* qabs [n][H][Ckv]: head h's q_nope (first Dn of each Dqk) times attn_k_b[h] */
        VKM_TRY(matmul_heads(f, &L->attn_k_b, w->q, Dqk, w->qabs, n));
        MARK("attn_qabs");
        for (uint32_t i = 0; i < calls; i++) { /* ao [n][H][Ckv] */
            const vkm_attn_shape shape = attn_shape(f, &f->seqs[i], pool);
            VKM_TRY(vkm_op_mla_attn(f->gpu, &shape, Ckv, R, Dqk, act(f, w->qabs), act(f, w->q),
                                    attn_cache(f->seqs[i].kv, il, pool), act(f, w->ao)));
        }
        MARK("attn");
        VKM_TRY(matmul_heads(f, &L->attn_v_b, w->ao, Ckv, w->u, n)); /* u [n][H][Dv] */
        MARK("attn_vb");
    } else { /* spec §4.4b: K/V of the new tokens expanded once and cached per head */
        /* c normalised in place; k_pe and every q_pe rotated */
        VKM_TRY(vkm_op_rmsnorm(f->gpu, act(f, w->kva), wt(&L->attn_kv_a_norm), act(f, w->kva), n,
                               Ckv, D, D, hp->eps));
        VKM_TRY(vkm_op_rope(f->gpu, &f->m->rope, act(f, w->kva), act(f, w->pos), n, 1, Ckv, D, 0));
        VKM_TRY(
            vkm_op_rope(f->gpu, &f->m->rope, act(f, w->q), act(f, w->pos), n, H, Dn, H * Dqk, Dqk));
        MARK("rope");
        /* kvb [n][H][Dn+Dv] = W_kv_b · c (c = the first Ckv of each kva row) */
        vkm_dtensor kvb = L->attn_kv_b;
        kvb.ne[2] = 1;
        VKM_TRY(matmul_heads(f, &kvb, w->kva, D, w->kvb, n));
        const uint32_t W = Dn + Dv;
        for (uint32_t i = 0; i < f->n_seq; i++) { /* each sequence's rows into its cache */
            const vkm_fwd_seq *q = &f->seqs[i];
            const uint32_t r = q->row0, p0 = q->pos0;
            const bool f16 = q->kv->f16;
            vkm_push_kv_store kn = {q->n, H, Dn, r * H * W, H * W, W, 0, p0, H * Dqk, Dqk};
            vkm_push_kv_store kp = {q->n, H, R, Ckv + r * D, D, 0, Dn, p0, H * Dqk, Dqk};
            vkm_push_kv_store vv = {q->n, H, Dv, Dn + r * H * W, H * W, W, 0, p0, H * Dv, Dv};
            VKM_TRY(vkm_op_kv_store(f->gpu, f16, act(f, w->kvb), cache(q->kv, il, 0), &kn));
            VKM_TRY(vkm_op_kv_store(f->gpu, f16, act(f, w->kva), cache(q->kv, il, 0), &kp));
            VKM_TRY(
                vkm_op_kv_store(f->gpu, f16, act(f, w->kvb), cache(q->kv, il, q->kv->v_off), &vv));
        }
        MARK("kv_store");
        for (uint32_t i = 0; i < f->n_seq; i++) {
            const vkm_fwd_seq *q = &f->seqs[i];
            const vkm_attn_shape shape = attn_shape(f, q, false);
            VKM_TRY(vkm_op_naive_attn(f->gpu, &shape, Dqk, Dv, act(f, w->q), cache(q->kv, il, 0),
                                      cache(q->kv, il, q->kv->v_off), act(f, w->u)));
        }
        MARK("attn");
    }
    /* o [n][E] = W_attn_output · u */
    VKM_TRY(matmul(f, &L->attn_output, w->u.off, w->o.off, n));
    MARK("attn_out");
    return 0;
}

/* ---------------------------------------------------------------------- FFN and MoE ---- */

/* o[n][E] = down · swiglu(gate · a, up · a) (dense layers, shared experts): gate, up and swiglu
 * in one dispatch where the kernels allow it (vkm_op_matmul_glu; fg is its scratch otherwise). */
static int ffn(const fwd *f, const vkm_dtensor *gate, const vkm_dtensor *up,
               const vkm_dtensor *down) {
    const vkm_fwd_work *w = f->w;
    const uint32_t n = f->b->n, F = (uint32_t)gate->ne[1];
    if (gate->type == up->type && gate->ne[0] == up->ne[0] && gate->ne[1] == up->ne[1]) {
        vkm_q8x xq;
        VKM_TRY(vkm_op_matmul_glu(f->gpu, gate->type, gate->ne[0], F, gate->buf, gate->off, up->buf,
                                  up->off, w->buf, w->a.off, n, w->buf, w->fu.off, act(f, w->fg),
                                  q8x_at(f, w->a.off, &xq)));
        return matmul(f, down, w->fu.off, w->o.off, n); /* fu [n][F] */
    }
    VKM_TRY(matmul(f, gate, w->a.off, w->fg.off, n)); /* fg [n][F] */
    VKM_TRY(matmul(f, up, w->a.off, w->fu.off, n));   /* fu [n][F] */
    VKM_TRY(vkm_op_swiglu(f->gpu, act(f, w->fg), act(f, w->fu), act(f, w->fg), n, F, F, F));
    return matmul(f, down, w->fg.off, w->o.off, n);
}

/* Paged experts, expert prefetch (vkm_fwd_batch.guess): the next MoE layer's router (its
 * ffn_gate_inp, exp_probs_b and top-k) applied to this layer's FFN input a, recorded before the
 * pager hook so the guess comes back with the layer's own choices: rlog (free once the router
 * ran) takes the logits, the guessed ids go to work.gsel as int32 [n][K] and their weights to
 * work.gwts (spans of their own, nothing else touches them). core/session.c reads work.gsel back.
 * Skipped without a next MoE layer or router; the session then gets no prefetch target from the
 * engine (vkm_engine_prefetch_target) and does not read gsel. */
/* The router of layer L on the batch's normed input a (spec §4.7): rlog [n][X] = W_gate_inp · a,
 * then the choices sel [n][K] and their weights wts [n][K]; with `group`, also grouped by expert
 * into work.rows / mats / map (shaders/fwd_common.h). */
static int route(const fwd *f, const vkm_dlayer *L, vkm_fwd_span sel, vkm_fwd_span wts,
                 bool group) {
    const vkm_hparams *hp = f->hp;
    const vkm_fwd_work *w = f->w;
    VKM_TRY(matmul(f, &L->ffn_gate_inp, w->a.off, w->rlog.off, f->b->n));
    const vkm_router_cfg cfg = {hp->n_expert,
                                hp->n_expert_used,
                                hp->n_group,
                                hp->n_group_used,
                                hp->gating,
                                hp->expert_weights_norm,
                                hp->expert_weights_scale};
    const vkm_gpu_arg bias = L->exp_probs_b.buf ? wt(&L->exp_probs_b) : (vkm_gpu_arg){0};
    if (!group)
        return vkm_op_router(f->gpu, &cfg, act(f, w->rlog), bias, act(f, sel), act(f, wts),
                             f->b->n);
    const vkm_moe_grouping g = {act(f, w->rows), act(f, w->mats), act(f, w->map)};
    return vkm_op_router_group(f->gpu, &cfg, act(f, w->rlog), bias, act(f, sel), act(f, wts), &g,
                               f->b->n);
}

static int router_guess(const fwd *f, uint32_t il) {
    const vkm_hparams *hp = f->hp;
    uint32_t nl = il + 1;
    while (nl < hp->n_layer && !f->m->layers[nl].moe) nl++;
    if (nl >= hp->n_layer) return 0;
    const vkm_dlayer *N = &f->m->layers[nl];
    if (!N->ffn_gate_inp.buf) return 0;
    VKM_TRY(route(f, N, f->w->gsel, f->w->gwts, false));
    MARK("router_guess");
    return 0;
}

/* Whether the shared expert of layer L can go with the routed experts ("paired": its rows after
 * theirs in eh and eo, computed as the second matrix of their dispatches where the kernels allow,
 * vkm_op_matmul_id_pair): one shared expert of the routed ones' shape and types, in their
 * buffers, separate gate and up stacks, no paging. */
static bool shared_paired(const fwd *f, const vkm_dlayer *L) {
    const vkm_dtensor *g = &L->ffn_gate_exps, *u = &L->ffn_up_exps, *d = &L->ffn_down_exps;
    const vkm_dtensor *gs = &L->ffn_gate_shexp, *us = &L->ffn_up_shexp, *ds = &L->ffn_down_shexp;
    return f->hp->n_expert_shared > 0 && !f->b->page && !L->ffn_gate_up_exps.buf && g->buf &&
           gs->buf && gs->type == g->type && us->type == u->type && ds->type == d->type &&
           gs->buf == g->buf && us->buf == u->buf && ds->buf == d->buf && gs->ne[0] == g->ne[0] &&
           gs->ne[1] == g->ne[1] && us->ne[0] == u->ne[0] && us->ne[1] == u->ne[1] &&
           ds->ne[0] == d->ne[0] && ds->ne[1] == d->ne[1];
}

/* o[n][E] = routed MoE(a) + shared experts(a) (spec §4.7). With next_norm, the residual add and
 * the next RMSNorm are done too (x += o; a = norm(x) * next_norm) and o is left partial. */
static int moe(const fwd *f, uint32_t il, const vkm_dtensor *next_norm) {
    const vkm_hparams *hp = f->hp;
    const vkm_dlayer *L = &f->m->layers[il];
    const vkm_fwd_work *w = f->w;
    const uint32_t n = f->b->n, E = hp->n_embd, K = hp->n_expert_used, Fe = hp->n_ff_exp;
    const bool paired = next_norm && shared_paired(f, L); /* moe_combine_norm reads it there */
    const int64_t sh_row = (int64_t)n * K; /* paired: the shared expert's first row in eh, eo */
    const bool fuse_z = vkm_gpu_plan(f->gpu)->fuse.shared_z; /* ... in the routed dispatches */

    /* rlog [n][X] = W_gate_inp · a; sel, wts [n][K]; rows, mats, map */
    VKM_TRY(route(f, L, w->sel, w->wts, true));
    MARK("router");
    if (f->b->page && f->b->guess) VKM_TRY(router_guess(f, il)); /* gsel = next layer's guess */

    /* eh [n*K][Fe] = swiglu(gate_e · a_t, up_e · a_t) for every grouped (token t, expert e);
     * eo [n*K][E] = down_e · eh (entry p reads eh row p). Paged experts: in rounds of what fits
     * the slots (vkm_fwd_page_fn), each computing its own entries' rows. */
    vkm_fwd_expert_plan plan_s, *plan = NULL;
    vkm_q8x axq; /* a's 8-bit form, where it has one (q8x) */
    for (uint32_t round = 0;; round++) {
        if (f->b->page) {
            plan = &plan_s;
            VKM_TRY(f->b->page(f->b->page_ctx, il, round, plan));
            if (plan->n_mat == 0) { /* every expert of the round on the CPU */
                if (plan->last) break;
                continue;
            }
        }
        if (L->ffn_gate_up_exps.buf) { /* one stack of [gate; up] matrices */
            vkm_matmul_id a = experts_args(f, il, VKM_EXPERT_GATE_UP, E, 2 * (int64_t)Fe, w->a, n,
                                           w->rows, w->eg, plan, &axq);
            VKM_TRY(vkm_op_matmul_id(f->gpu, &a));
            MARK("moe_gate_up");
            VKM_TRY(vkm_op_swiglu_in(f->gpu, act(f, w->eg), Fe, 2 * Fe, act(f, w->eh), n * K, Fe));
            MARK("moe_swiglu");
        } else { /* gate, up and swiglu in one dispatch where the kernels allow it */
            vkm_matmul_id a =
                experts_args(f, il, VKM_EXPERT_GATE, E, Fe, w->a, n, w->rows, w->eh, plan, &axq);
            const vkm_expert_loc up =
                vkm_fwd_expert_where(f->m, il, VKM_EXPERT_UP, plan ? plan->base : 0);
            int rc = VKM_MATMUL_UNFIT;
            if (paired && fuse_z) { /* the shared expert's rows: X rows 0..n-1, eh rows sh_row.. */
                const vkm_matmul_second s = {L->ffn_gate_shexp.off, L->ffn_up_shexp.off, n, 0,
                                             sh_row};
                a.n_y += n;
                rc = vkm_op_matmul_id_pair(f->gpu, &a, up.buf, up.off, &s);
                if (rc < 0) return rc;
                a.n_y -= n;
            }
            if (rc == VKM_MATMUL_UNFIT) {
                VKM_TRY(vkm_op_matmul_id_glu(f->gpu, &a, up.buf, up.off, act(f, w->eg)));
                if (paired) {
                    const vkm_dtensor *g = &L->ffn_gate_shexp, *u = &L->ffn_up_shexp;
                    VKM_TRY(vkm_op_matmul_glu(f->gpu, g->type, E, Fe, g->buf, g->off, u->buf,
                                              u->off, w->buf, w->a.off, n, w->buf,
                                              w->eh.off + (size_t)sh_row * Fe * 4, act(f, w->eg),
                                              q8x_at(f, w->a.off, &axq)));
                }
            }
            MARK("moe_gate_up");
        }
        vkm_matmul_id d = experts_args(f, il, VKM_EXPERT_DOWN, Fe, E, w->eh, (int64_t)n * K,
                                       w->iota, w->eo, plan, &axq);
        int rc = VKM_MATMUL_UNFIT;
        if (paired && fuse_z) { /* eh rows sh_row.. into eo rows sh_row.. */
            const vkm_matmul_second s = {L->ffn_down_shexp.off, 0, n, sh_row, sh_row};
            d.n_x += n;
            d.n_y += n;
            rc = vkm_op_matmul_id_pair(f->gpu, &d, NULL, 0, &s);
            if (rc < 0) return rc;
            d.n_x -= n;
            d.n_y -= n;
        }
        if (rc == VKM_MATMUL_UNFIT) {
            VKM_TRY(vkm_op_matmul_id(f->gpu, &d));
            if (paired)
                VKM_TRY(matmul(f, &L->ffn_down_shexp, w->eh.off + (size_t)sh_row * Fe * 4,
                               w->eo.off + (size_t)sh_row * E * 4, n));
        }
        MARK("moe_down");
        if (!plan || plan->last) break;
    }

    /* o = shared experts(a) + sum_j wts[t][j] eo[map[t][j]] (paired: the shared experts' output
     * is eo from row sh_row) */
    const bool shared = hp->n_expert_shared > 0;
    const vkm_gpu_arg so =
        paired ? (vkm_gpu_arg){w->buf, w->eo.off + (size_t)sh_row * E * 4, (size_t)n * E * 4}
               : act(f, w->o);
    if (shared && !paired) {
        VKM_TRY(ffn(f, &L->ffn_gate_shexp, &L->ffn_up_shexp, &L->ffn_down_shexp));
        MARK("moe_shared");
    }
    if (f->b->page && f->b->host) VKM_TRY(f->b->host(f->b->page_ctx, il)); /* the CPU's rows */
    if (next_norm) {
        const vkm_moe_combine_norm c = {act(f, w->eo),
                                        act(f, w->map),
                                        act(f, w->wts),
                                        so,
                                        act(f, w->x),
                                        wt(next_norm),
                                        act(f, w->a),
                                        n,
                                        K,
                                        E,
                                        n * K,
                                        shared,
                                        hp->eps,
                                        q8x_at(f, w->a.off, &axq) ? axq.q : (vkm_gpu_arg){0}};
        VKM_TRY(vkm_op_moe_combine_norm(f->gpu, &c));
    } else {
        VKM_TRY(vkm_op_moe_combine(f->gpu, act(f, w->eo), act(f, w->map), act(f, w->wts),
                                   act(f, w->o), n, K, E, n * K, shared));
    }
    MARK("moe_combine");
    return 0;
}

/* --------------------------------------------------------------------------- forward ---- */

/* The checks of a multi-sequence batch: the sequences cover the rows in order, each fits its
 * cache, and the logits are one row per sequence. */
static int check_seqs(const vkm_fwd_batch *b) {
    uint32_t row = 0;
    for (uint32_t i = 0; i < b->n_seq; i++) {
        const vkm_fwd_seq *q = &b->seqs[i];
        if (!q->kv || q->n == 0 || q->row0 != row || (uint64_t)q->pos0 + q->n > q->kv->n_ctx)
            return vkm_error(VKM_EINVAL,
                             "forward: sequence %u (rows %u+%u at %u) does not follow row %u or "
                             "fit its cache",
                             i, q->row0, q->n, q->pos0, row);
        row += q->n;
    }
    if (row != b->n || (b->n_logits && (b->n_logits != b->n_seq || b->logit_row0 != 0)))
        return vkm_error(VKM_EINVAL,
                         "forward: %u sequences of %u rows for a batch of %u (logits "
                         "%u+%u)",
                         b->n_seq, row, b->n, b->logit_row0, b->n_logits);
    return 0;
}

/* logits [n_logits][V] = output · a rows: logit_row0 .. of a one-sequence batch, the last row of
 * each sequence of a multi-sequence batch (one matmul per run of consecutive rows). */
static int output(const fwd *f) {
    const vkm_dtensor *o = &f->m->output;
    const uint32_t E = f->hp->n_embd, V = f->hp->n_vocab;
    const vkm_fwd_work *w = f->w;
    vkm_q8x xq;
    const vkm_q8x *axq = q8x_at(f, w->a.off, &xq); /* the matmuls read rows of a */
    if (!f->b->n_seq)
        return vkm_op_matmul_xq(f->gpu, o->type, o->buf, o->off, E, V, w->buf,
                                w->a.off + (size_t)f->b->logit_row0 * E * 4, f->b->n_logits, w->buf,
                                w->logits.off, axq);
    for (uint32_t i = 0; i < f->n_seq;) {
        const uint32_t last = f->seqs[i].row0 + f->seqs[i].n - 1;
        uint32_t j = i + 1; /* seqs i..j-1: consecutive last rows */
        while (j < f->n_seq && f->seqs[j].n == 1) j++;
        VKM_TRY(vkm_op_matmul_xq(f->gpu, o->type, o->buf, o->off, E, V, w->buf,
                                 w->a.off + (size_t)last * E * 4, j - i, w->buf,
                                 w->logits.off + (size_t)i * V * 4, axq));
        i = j;
    }
    return 0;
}

int vkm_fwd_record(vkm_gpu *gpu, const vkm_dmodel *m, const vkm_fwd_work *w, const vkm_fwd_kv *kv,
                   const vkm_fwd_batch *b) {
    const vkm_hparams *hp = m->hp;
    if (b->n == 0 || b->n > w->max_batch ||
        (!b->n_seq && (!kv || (uint64_t)b->pos0 + b->n > kv->n_ctx)) ||
        (uint64_t)b->logit_row0 + b->n_logits > b->n)
        return vkm_error(VKM_EINVAL,
                         "forward: batch of %u tokens at %u (logits %u+%u) does not "
                         "fit max_batch %u / n_ctx %u",
                         b->n, b->pos0, b->logit_row0, b->n_logits, w->max_batch,
                         kv ? kv->n_ctx : 0);
    if (b->n_seq) VKM_TRY(check_seqs(b));
    const vkm_fwd_seq one = {kv, 0, b->n, b->pos0};
    const fwd fs = {gpu, m, hp, w, b, b->n_seq ? b->seqs : &one, b->n_seq ? b->n_seq : 1};
    const fwd *f = &fs;
    const uint32_t n = b->n, E = hp->n_embd;

    /* x [n][E] = token_embd rows */
    VKM_TRY(vkm_op_get_rows(gpu, m->token_embd.type, wt(&m->token_embd), act(f, w->ids),
                            act(f, w->x), n, E, hp->n_vocab));
    MARK("embd");
    bool normed = false; /* the previous MoE layer did the residual add and this norm */
    for (uint32_t il = 0; il < hp->n_layer; il++) {
        const vkm_dlayer *L = &m->layers[il];
        /* a = norm(x) (adding the previous layer's FFN output o first: x = ffo + f_in) */
        if (il == 0)
            VKM_TRY(norm(f, act(f, w->x), wt(&L->attn_norm), w->a, E));
        else if (!normed)
            VKM_TRY(norm_add(f, wt(&L->attn_norm)));
        MARK("norm");
        VKM_TRY(attention(f, il)); /* o = att */
        /* x = f_in = att + x_in; a = h = norm(f_in) */
        VKM_TRY(norm_add(f, wt(&L->ffn_norm)));
        MARK("norm");
        if (L->moe) { /* o = ffo, with the next norm: x = ffo + f_in, a = norm(x) */
            const vkm_dtensor *next = il + 1 < hp->n_layer ? &m->layers[il + 1].attn_norm
                                      : b->n_logits        ? &m->output_norm
                                                           : NULL;
            VKM_TRY(moe(f, il, next));
            normed = next != NULL;
        } else {
            VKM_TRY(ffn(f, &L->ffn_gate, &L->ffn_up, &L->ffn_down));
            MARK("ffn_dense");
            normed = false;
        }
        /* the device starts on layers 0, 1-2, 3-6, ... while the host records the next ones
         * (no host wait: vkm_gpu_flush); the first parts are short so it starts early */
        if (((il + 1) & il) == 0 && il + 1 < hp->n_layer) VKM_TRY(vkm_gpu_flush(gpu));
    }
    if (b->n_logits == 0) return 0;
    /* a = norm(x + o); logits [n_logits][V] = output · a[logit_row0 ..] */
    if (!normed) VKM_TRY(norm_add(f, wt(&m->output_norm)));
    VKM_TRY(output(f));
    MARK("output");
    return 0;
}
