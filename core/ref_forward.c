/* ref_forward.c - the reference deepseek2 forward pass on the CPU (spec §4).
 *
 * Reads top to bottom like the model: embedding, then per layer attention (q / kv compression,
 * RoPE, latent cache, MLA absorbed or naive attention, output projection) and the dense FFN or the
 * routed MoE plus shared experts, with the residual order of §4.2; then the final norm and the
 * output (or tied embedding) projection.
 *
 * Invariants: the cache holds, for every layer and cached position p, kv[layer][p][0..Ckv) = the
 * normalised c and kv[layer][p][Ckv..Ckv+R) = k_pe rotated at p (both F16-rounded when kv_f16).
 * Every buffer an eval needs comes from a per-call arena that is freed before returning; a failed
 * eval leaves n_past unchanged. */
#include "ref_forward.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "fp16.h"
#include "qtype.h"
#include "ref_matmul.h"
#include "ref_ops.h"
#include "ref_quant.h"

struct vkm_ref_fwd {
    const vkm_model *m;
    vkm_ref_fwd_opts o;
    int n_ctx;     /* capacity in tokens */
    int n_past;    /* cached positions */
    size_t kv_dim; /* Ckv + R */
    float *kv;     /* [n_layer][n_ctx][kv_dim] latent cache */
    vkm_ref_rope rope;
    uint64_t *expert_counts; /* [n_layer][n_expert] routing counts, or NULL */
};

/* ------------------------------------------------------------------------------- arena ---- */

/* Per-eval scratch: every allocation is linked and released together. */
typedef struct arena_blk {
    struct arena_blk *next;
    float data[];
} arena_blk;

typedef struct arena {
    arena_blk *head;
} arena;

/* count floats, zeroed; NULL on failure. */
static float *arena_floats(arena *ar, size_t count) {
    if (count > (SIZE_MAX - sizeof(arena_blk)) / sizeof(float)) return NULL;
    arena_blk *b = calloc(1, sizeof *b + (count ? count : 1) * sizeof(float));
    if (!b) return NULL;
    b->next = ar->head;
    ar->head = b;
    return b->data;
}

static void arena_free(arena *ar) {
    while (ar->head) {
        arena_blk *n = ar->head->next;
        free(ar->head);
        ar->head = n;
    }
}

static int oom(void) {
    return vkm_error(VKM_ENOMEM, "reference forward: out of memory");
}

/* ---------------------------------------------------------------------------- matmuls ---- */

/* Rounds x[n][k] to what llama.cpp's CPU backend feeds a `wtype` dot product (spec §4.8). */
static int quantize_act(uint32_t wtype, const float *x, float *xq, int n, int64_t k, arena *ar) {
    const size_t nk = (size_t)n * (size_t)k;
    switch (wtype) {
    case VKM_F32:
        memcpy(xq, x, nk * sizeof *x);
        return 0;
    case VKM_F16:
        for (size_t i = 0; i < nk; i++) xq[i] = vkm_fp16_round(x[i]);
        return 0;
    case VKM_BF16:
        for (size_t i = 0; i < nk; i++) xq[i] = vkm_bf16_to_f32(vkm_bf16_from_f32(x[i]));
        return 0;
    default:
        break;
    }
    const int64_t blk = vkm_qtype_get(wtype)->block;
    int8_t *q = (int8_t *)arena_floats(ar, nk / 4 + 1);
    float *d = arena_floats(ar, nk / 32 + 1);
    if (!q || !d) return oom();
    int rc = blk == 256 ? vkm_ref_quant_q8_k_act(x, q, d, (int64_t)nk)
                        : vkm_ref_quant_q8_0_act(x, q, d, (int64_t)nk);
    if (rc) return rc;
    for (size_t i = 0; i < nk; i++) xq[i] = (float)q[i] * d[i / (size_t)blk];
    return 0;
}

/* y[n][m] = rows r0..r0+m of matrix i2 of w, times x[n][k] (k = w->ne[0]). */
static int mm(const vkm_ref_fwd *f, arena *ar, const vkm_tensor *w, int64_t i2, int64_t r0,
              int64_t m, const float *x, int n, float *y) {
    const int64_t k = w->ne[0];
    VKM_ASSERT(r0 >= 0 && m > 0 && r0 + m <= w->ne[1]);
    if (f->o.act_quant && w->type != VKM_F32) {
        float *xq = arena_floats(ar, (size_t)n * (size_t)k);
        if (!xq) return oom();
        int rc = quantize_act(w->type, x, xq, n, k, ar);
        if (rc) return rc;
        x = xq;
    }
    return vkm_ref_matmul(w->type, vkm_model_row(w, r0, i2), k, m, x, n, y);
}

/* y[n][ne1] = w · x[n][ne0] for a 2-D weight. */
static int mm2(const vkm_ref_fwd *f, arena *ar, const vkm_tensor *w, const float *x, int n,
               float *y) {
    return mm(f, ar, w, 0, 0, w->ne[1], x, n, y);
}

static float dotf(const float *a, const float *b, size_t k) {
    double s = 0.0;
    for (size_t i = 0; i < k; i++) s += (double)a[i] * (double)b[i];
    return (float)s;
}

static float maybe_f16(const vkm_ref_fwd *f, float v) {
    return f->o.kv_f16 ? vkm_fp16_round(v) : v;
}

/* ------------------------------------------------------------------------- attention ---- */

/* Softmax-weighted scores of one query row over cached keys 0..n_kv: probs[j] =
 * softmax(kq_scale · dot(Q, K_j)), K_j = key(j) of length dk. */
static void attend_probs(const vkm_ref_fwd *f, const float *Q, const float *keys, size_t kstride,
                         size_t dk, int n_kv, float *probs) {
    for (int j = 0; j < n_kv; j++) probs[j] = dotf(Q, keys + (size_t)j * kstride, dk);
    vkm_ref_softmax(probs, n_kv, f->m->hp.kq_scale);
    if (f->o.kv_f16)
        for (int j = 0; j < n_kv; j++) probs[j] = vkm_fp16_round(probs[j]);
}

/* MLA absorbed attention (spec §4.4a) for the n new tokens; q[n][H*Dqk] (rotated), cache layer
 * kvl already holds positions 0..n_past+n. Writes u[n][H*Dv]. */
static int attn_mla(const vkm_ref_fwd *f, arena *ar, const vkm_layer *L, const float *q,
                    const float *kvl, int n, float *u) {
    const vkm_hparams *hp = &f->m->hp;
    const size_t H = hp->n_head, Dqk = hp->d_qk, Dn = hp->d_nope, R = hp->n_rot, Dv = hp->d_v;
    const size_t Ckv = hp->n_lora_kv, D = f->kv_dim;
    const int n_kv = f->n_past + n;
    float *Q = arena_floats(ar, (size_t)n * H * D);   /* [n][H][Ckv+R] absorbed queries */
    float *O = arena_floats(ar, (size_t)n * H * Ckv); /* [n][H][Ckv] attention outputs */
    const size_t tin_w = Dn > Ckv ? Dn : Ckv, tout_w = Dv > Ckv ? Dv : Ckv;
    float *tin = arena_floats(ar, (size_t)n * tin_w);   /* [n][max(Dn,Ckv)] one head's inputs */
    float *tout = arena_floats(ar, (size_t)n * tout_w); /* [n][max(Ckv,Dv)] one head's outputs */
    float *probs = arena_floats(ar, (size_t)n_kv);      /* [n_kv] */
    if (!Q || !O || !tin || !tout || !probs) return oom();
    int rc;
    for (size_t h = 0; h < H; h++) { /* q_abs_h = attn_k_b[h] · q_nope_h */
        for (int i = 0; i < n; i++) memcpy(tin + i * Dn, q + i * H * Dqk + h * Dqk, Dn * 4);
        if ((rc = mm(f, ar, &L->attn_k_b, (int64_t)h, 0, (int64_t)Ckv, tin, n, tout))) return rc;
        for (int i = 0; i < n; i++) {
            float *Qh = Q + ((size_t)i * H + h) * D;
            memcpy(Qh, tout + i * Ckv, Ckv * 4);
            memcpy(Qh + Ckv, q + i * H * Dqk + h * Dqk + Dn, R * 4);
            for (size_t c = 0; c < D; c++) Qh[c] = maybe_f16(f, Qh[c]);
        }
    }
    for (int i = 0; i < n; i++) {
        const int cnt = f->n_past + i + 1; /* causal: positions 0..n_past+i */
        for (size_t h = 0; h < H; h++) {
            attend_probs(f, Q + ((size_t)i * H + h) * D, kvl, D, D, cnt, probs);
            float *o = O + ((size_t)i * H + h) * Ckv;
            for (size_t c = 0; c < Ckv; c++) {
                double s = 0.0;
                for (int j = 0; j < cnt; j++) s += (double)probs[j] * kvl[(size_t)j * D + c];
                o[c] = (float)s;
            }
        }
    }
    for (size_t h = 0; h < H; h++) { /* u_h = attn_v_b[h] · o_h */
        for (int i = 0; i < n; i++) memcpy(tin + i * Ckv, O + ((size_t)i * H + h) * Ckv, Ckv * 4);
        if ((rc = mm(f, ar, &L->attn_v_b, (int64_t)h, 0, (int64_t)Dv, tin, n, tout))) return rc;
        for (int i = 0; i < n; i++) memcpy(u + i * H * Dv + h * Dv, tout + i * Dv, Dv * 4);
    }
    return 0;
}

/* Naive attention of legacy files (spec §4.4b): K/V re-expanded from the cached c. */
static int attn_naive(const vkm_ref_fwd *f, arena *ar, const vkm_layer *L, const float *q,
                      const float *kvl, int n, float *u) {
    const vkm_hparams *hp = &f->m->hp;
    const size_t H = hp->n_head, Dqk = hp->d_qk, Dn = hp->d_nope, R = hp->n_rot, Dv = hp->d_v;
    const size_t Ckv = hp->n_lora_kv, D = f->kv_dim, W = Dn + Dv;
    const int n_kv = f->n_past + n;
    float *C = arena_floats(ar, (size_t)n_kv * Ckv);    /* [n_kv][Ckv] cached c */
    float *KV = arena_floats(ar, (size_t)n_kv * H * W); /* [n_kv][H][Dn+Dv] */
    float *K = arena_floats(ar, (size_t)n_kv * Dqk);    /* [n_kv][Dqk] one head's keys */
    float *Qh = arena_floats(ar, Dqk);                  /* [Dqk] */
    float *probs = arena_floats(ar, (size_t)n_kv);      /* [n_kv] */
    if (!C || !KV || !K || !Qh || !probs) return oom();
    for (int j = 0; j < n_kv; j++) memcpy(C + (size_t)j * Ckv, kvl + (size_t)j * D, Ckv * 4);
    int rc = mm2(f, ar, &L->attn_kv_b, C, n_kv, KV);
    if (rc) return rc;
    for (size_t h = 0; h < H; h++) {
        for (int j = 0; j < n_kv; j++) {
            float *k = K + (size_t)j * Dqk;
            for (size_t d = 0; d < Dn; d++) k[d] = maybe_f16(f, KV[((size_t)j * H + h) * W + d]);
            memcpy(k + Dn, kvl + (size_t)j * D + Ckv, R * 4);
        }
        for (int i = 0; i < n; i++) {
            const int cnt = f->n_past + i + 1;
            for (size_t d = 0; d < Dqk; d++) Qh[d] = maybe_f16(f, q[i * H * Dqk + h * Dqk + d]);
            attend_probs(f, Qh, K, Dqk, Dqk, cnt, probs);
            for (size_t d = 0; d < Dv; d++) {
                double s = 0.0;
                for (int j = 0; j < cnt; j++)
                    s += (double)probs[j] * maybe_f16(f, KV[((size_t)j * H + h) * W + Dn + d]);
                u[i * H * Dv + h * Dv + d] = (float)s;
            }
        }
    }
    return 0;
}

/* att[n][E] = Attention(a[n][E]) of layer il (spec §4.3-§4.4), appending to the cache. */
static int attention(vkm_ref_fwd *f, arena *ar, int il, const float *a, int n, float *att) {
    const vkm_hparams *hp = &f->m->hp;
    const vkm_layer *L = &f->m->layers[il];
    const size_t H = hp->n_head, Dqk = hp->d_qk, Dn = hp->d_nope, R = hp->n_rot, Dv = hp->d_v;
    const size_t Cq = hp->n_lora_q, Ckv = hp->n_lora_kv, D = f->kv_dim;
    float *q = arena_floats(ar, (size_t)n * H * Dqk); /* [n][H][Dqk]: q_nope | q_pe per head */
    float *t = arena_floats(ar, (size_t)n * D);       /* [n][Ckv+R]: c | k_pe */
    float *u = arena_floats(ar, (size_t)n * H * Dv);  /* [n][H*Dv] per-head outputs */
    float *cs = arena_floats(ar, R);                  /* [R] rope cos/sin */
    if (!q || !t || !u || !cs) return oom();
    int rc;
    if (Cq > 0) {
        float *qa = arena_floats(ar, (size_t)n * Cq); /* [n][Cq] */
        if (!qa) return oom();
        if ((rc = mm2(f, ar, &L->attn_q_a, a, n, qa))) return rc;
        for (int i = 0; i < n; i++)
            vkm_ref_rmsnorm(qa + i * Cq, qa + i * Cq, L->attn_q_a_norm.data, (int)Cq, hp->eps);
        if ((rc = mm2(f, ar, &L->attn_q_b, qa, n, q))) return rc;
    } else if ((rc = mm2(f, ar, &L->attn_q, a, n, q))) {
        return rc;
    }
    if ((rc = mm2(f, ar, &L->attn_kv_a_mqa, a, n, t))) return rc;

    float *kvl = f->kv + (size_t)il * (size_t)f->n_ctx * D; /* [n_ctx][Ckv+R] this layer */
    for (int i = 0; i < n; i++) {
        const int pos = f->n_past + i;
        float *ti = t + i * D;
        vkm_ref_rmsnorm(ti, ti, L->attn_kv_a_norm.data, (int)Ckv, hp->eps);
        vkm_ref_rope_cache(cs, pos, &f->rope);
        vkm_ref_rope_apply(ti + Ckv, cs, (int)R);
        for (size_t h = 0; h < H; h++)
            vkm_ref_rope_apply(q + i * H * Dqk + h * Dqk + Dn, cs, (int)R);
        float *dst = kvl + (size_t)pos * D;
        for (size_t c = 0; c < D; c++) dst[c] = maybe_f16(f, ti[c]);
    }
    rc = hp->is_mla ? attn_mla(f, ar, L, q, kvl, n, u) : attn_naive(f, ar, L, q, kvl, n, u);
    if (rc) return rc;
    return mm2(f, ar, &L->attn_output, u, n, att);
}

/* ------------------------------------------------------------------------ FFN and MoE ---- */

/* out[n][E] = down · swiglu(gate · h, up · h) with 2-D weights (dense layer, shared experts). */
static int ffn(const vkm_ref_fwd *f, arena *ar, const vkm_tensor *gate, const vkm_tensor *up,
               const vkm_tensor *down, const float *h, int n, float *out) {
    const size_t F = (size_t)gate->ne[1];
    float *g = arena_floats(ar, (size_t)n * F); /* [n][F] */
    float *v = arena_floats(ar, (size_t)n * F); /* [n][F] */
    if (!g || !v) return oom();
    int rc;
    if ((rc = mm2(f, ar, gate, h, n, g)) || (rc = mm2(f, ar, up, h, n, v))) return rc;
    for (int i = 0; i < n; i++) vkm_ref_swiglu(g + i * F, g + i * F, v + i * F, (int)F);
    return mm2(f, ar, down, g, n, out);
}

/* out[n][E] = routed MoE(h) + shared experts(h) (spec §4.7). Tokens are grouped by expert so
 * each expert's weights are dequantized once per call. */
static int moe(const vkm_ref_fwd *f, arena *ar, const vkm_layer *L, const float *h, int n,
               float *out) {
    const vkm_hparams *hp = &f->m->hp;
    const size_t E = hp->n_embd, X = hp->n_expert, K = hp->n_expert_used, Fe = hp->n_ff_exp;
    float *logits = arena_floats(ar, (size_t)n * X);    /* [n][X] router outputs */
    float *w = arena_floats(ar, (size_t)n * K);         /* [n][K] expert weights */
    int *sel = (int *)arena_floats(ar, (size_t)n * K);  /* [n][K] selected experts */
    int *rows = (int *)arena_floats(ar, (size_t)n * K); /* [<=n*K] (token*K + slot) of one expert */
    float *xin = arena_floats(ar, (size_t)n * E);       /* [cnt][E] gathered inputs */
    float *g = arena_floats(ar, (size_t)n * Fe);        /* [cnt][Fe] */
    float *v = arena_floats(ar, (size_t)n * Fe);        /* [cnt][Fe] */
    float *y = arena_floats(ar, (size_t)n * E);         /* [cnt][E] */
    float *ey = arena_floats(ar, (size_t)n * K * E);    /* [n][K][E] weighted expert outputs */
    if (!logits || !w || !sel || !rows || !xin || !g || !v || !y || !ey) return oom();
    int rc;
    if ((rc = mm2(f, ar, &L->ffn_gate_inp, h, n, logits))) return rc;
    const vkm_ref_router cfg = {(int)X,
                                (int)K,
                                (int)hp->n_group,
                                (int)hp->n_group_used,
                                (int)hp->gating,
                                hp->expert_weights_norm,
                                hp->expert_weights_scale};
    for (int i = 0; i < n; i++)
        vkm_ref_moe_route(logits + i * X, L->exp_probs_b.data, &cfg, sel + i * K, w + i * K);
    if (f->expert_counts) {
        uint64_t *cnt = f->expert_counts + (size_t)(L - f->m->layers) * X;
        for (size_t r = 0; r < (size_t)n * K; r++) cnt[sel[r]]++;
    }

    const bool fused = L->ffn_gate_up_exps.data != NULL;
    for (size_t e = 0; e < X; e++) {
        int cnt = 0;
        for (size_t r = 0; r < (size_t)n * K; r++)
            if ((size_t)sel[r] == e) rows[cnt++] = (int)r;
        if (!cnt) continue;
        for (int j = 0; j < cnt; j++)
            memcpy(xin + j * E, h + (size_t)(rows[j] / (int)K) * E, E * 4);
        const int64_t ie = (int64_t)e;
        if (fused) {
            if ((rc = mm(f, ar, &L->ffn_gate_up_exps, ie, 0, (int64_t)Fe, xin, cnt, g)) ||
                (rc = mm(f, ar, &L->ffn_gate_up_exps, ie, (int64_t)Fe, (int64_t)Fe, xin, cnt, v)))
                return rc;
        } else if ((rc = mm(f, ar, &L->ffn_gate_exps, ie, 0, (int64_t)Fe, xin, cnt, g)) ||
                   (rc = mm(f, ar, &L->ffn_up_exps, ie, 0, (int64_t)Fe, xin, cnt, v))) {
            return rc;
        }
        for (int j = 0; j < cnt; j++) vkm_ref_swiglu(g + j * Fe, g + j * Fe, v + j * Fe, (int)Fe);
        if ((rc = mm(f, ar, &L->ffn_down_exps, ie, 0, (int64_t)E, g, cnt, y))) return rc;
        for (int j = 0; j < cnt; j++) {
            const float wj = w[rows[j]];
            float *dst = ey + (size_t)rows[j] * E;
            for (size_t c = 0; c < E; c++) dst[c] = y[j * E + c] * wj;
        }
    }
    for (int i = 0; i < n; i++) { /* summed in selection order, like llama.cpp's add chain */
        float *o = out + i * E;
        memcpy(o, ey + (size_t)i * K * E, E * 4);
        for (size_t s = 1; s < K; s++)
            for (size_t c = 0; c < E; c++) o[c] += ey[((size_t)i * K + s) * E + c];
    }
    if (hp->n_expert_shared > 0) {
        if ((rc = ffn(f, ar, &L->ffn_gate_shexp, &L->ffn_up_shexp, &L->ffn_down_shexp, h, n, y)))
            return rc;
        for (size_t c = 0; c < (size_t)n * E; c++) out[c] += y[c];
    }
    return 0;
}

/* ---------------------------------------------------------------------------- forward ---- */

static int forward(vkm_ref_fwd *f, arena *ar, const int32_t *tokens, int n, float *logits) {
    const vkm_model *m = f->m;
    const vkm_hparams *hp = &m->hp;
    const size_t E = hp->n_embd;
    float *x = arena_floats(ar, (size_t)n * E); /* [n][E] residual stream */
    float *a = arena_floats(ar, (size_t)n * E); /* [n][E] normalised input of a block */
    float *o = arena_floats(ar, (size_t)n * E); /* [n][E] block output */
    if (!x || !a || !o) return oom();
    int rc;
    for (int i = 0; i < n; i++)
        if ((rc = vkm_ref_dequant_row(m->token_embd.type,
                                      vkm_model_row(&m->token_embd, tokens[i], 0), x + i * E,
                                      (int64_t)E)))
            return rc;

    for (uint32_t il = 0; il < hp->n_layer; il++) {
        const vkm_layer *L = &m->layers[il];
        for (int i = 0; i < n; i++)
            vkm_ref_rmsnorm(a + i * E, x + i * E, L->attn_norm.data, (int)E, hp->eps);
        if ((rc = attention(f, ar, (int)il, a, n, o))) return rc;
        for (size_t c = 0; c < (size_t)n * E; c++) x[c] += o[c]; /* f_in = att + x_in */
        for (int i = 0; i < n; i++)
            vkm_ref_rmsnorm(a + i * E, x + i * E, L->ffn_norm.data, (int)E, hp->eps);
        rc = L->moe ? moe(f, ar, L, a, n, o)
                    : ffn(f, ar, &L->ffn_gate, &L->ffn_up, &L->ffn_down, a, n, o);
        if (rc) return rc;
        for (size_t c = 0; c < (size_t)n * E; c++) x[c] += o[c]; /* x = ffo + f_in */
    }
    for (int i = 0; i < n; i++)
        vkm_ref_rmsnorm(a + i * E, x + i * E, m->output_norm.data, (int)E, hp->eps);
    return logits ? mm2(f, ar, &m->output, a, n, logits) : 0;
}

/* ------------------------------------------------------------------------------ public ---- */

void vkm_ref_fwd_count_experts(vkm_ref_fwd *f, uint64_t *counts) {
    f->expert_counts = counts;
}

int vkm_ref_fwd_create(const vkm_model *m, const vkm_ref_fwd_opts *opts, vkm_ref_fwd **out) {
    *out = NULL;
    vkm_ref_fwd_opts o = {0};
    if (opts) o = *opts;
    const vkm_hparams *hp = &m->hp;
    int n_ctx = o.n_ctx;
    if (n_ctx == 0) n_ctx = hp->n_ctx_train < 4096 ? (int)hp->n_ctx_train : 4096;
    if (n_ctx <= 0 || n_ctx > (1 << 20))
        return vkm_error(VKM_EINVAL, "reference forward: n_ctx = %d, expected 1..%d", o.n_ctx,
                         1 << 20);
    vkm_ref_fwd *f = calloc(1, sizeof *f);
    if (!f) return oom();
    f->m = m;
    f->o = o;
    f->n_ctx = n_ctx;
    f->kv_dim = (size_t)hp->kv_dim;
    const size_t per_layer = (size_t)n_ctx * f->kv_dim;
    if (per_layer > SIZE_MAX / sizeof(float) / hp->n_layer ||
        !(f->kv = calloc(per_layer * hp->n_layer, sizeof(float)))) {
        free(f);
        return oom();
    }
    f->rope = (vkm_ref_rope){(int)hp->n_rot,  hp->rope_freq_base, hp->freq_scale, hp->ext_factor,
                             hp->attn_factor, hp->corr_low,       hp->corr_high};
    *out = f;
    return 0;
}

void vkm_ref_fwd_destroy(vkm_ref_fwd *f) {
    if (!f) return;
    free(f->kv);
    free(f);
}

int vkm_ref_fwd_eval(vkm_ref_fwd *f, const int32_t *tokens, int n, float *logits) {
    if (n <= 0) return vkm_error(VKM_EINVAL, "reference forward: n = %d tokens", n);
    if (n > f->n_ctx - f->n_past)
        return vkm_error(VKM_ERANGE,
                         "reference forward: %d tokens at position %d exceed the %d-token context",
                         n, f->n_past, f->n_ctx);
    for (int i = 0; i < n; i++)
        if (tokens[i] < 0 || (uint32_t)tokens[i] >= f->m->hp.n_vocab)
            return vkm_error(VKM_ERANGE,
                             "reference forward: token %d = %d is outside the vocabulary (%u)", i,
                             tokens[i], f->m->hp.n_vocab);
    arena ar = {0};
    int rc = forward(f, &ar, tokens, n, logits);
    arena_free(&ar);
    if (rc) return rc;
    f->n_past += n;
    return 0;
}

int vkm_ref_fwd_n_past(const vkm_ref_fwd *f) {
    return f->n_past;
}

int vkm_ref_fwd_n_ctx(const vkm_ref_fwd *f) {
    return f->n_ctx;
}

int vkm_ref_fwd_truncate(vkm_ref_fwd *f, int n_past) {
    if (n_past < 0 || n_past > f->n_past)
        return vkm_error(VKM_ERANGE, "reference forward: cannot truncate to %d of %d positions",
                         n_past, f->n_past);
    f->n_past = n_past;
    return 0;
}
