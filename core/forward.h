/* forward.h - the deepseek2 forward pass of one batch, recorded on the GPU (spec §4).
 *
 * The engine (core/weights.c) uploads the weights into device buffers and describes them with a
 * vkm_dmodel; a session (core/session.c) owns a latent KV cache (vkm_fwd_kv) and a work buffer of
 * activations (vkm_fwd_work), both laid out here. vkm_fwd_record() records one batch of n tokens
 * into the current gpu batch (between vkm_gpu_begin and vkm_gpu_submit) without any host round
 * trip (except with paged experts: one per MoE layer, through vkm_fwd_batch.page): embedding, the
 * layers, the final norm and the output projection of the rows whose logits are wanted. The order
 * of the forward pass is readable top to bottom in forward.c.
 *
 * Invariants: every device tensor and every work/cache array starts at a multiple of
 * VKM_FWD_ALIGN bytes (256, the largest minStorageBufferOffsetAlignment Vulkan allows) and owns
 * whole 32-bit words up to the next such multiple; the routed expert matrices (ffn_*_exps) live in
 * their own buffers and are reached only through vkm_fwd_expert_where(). */
#ifndef VKM_FORWARD_H
#define VKM_FORWARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gpu.h"
#include "model.h"
#include "ops.h"

#define VKM_FWD_ALIGN 256u

/* A weight tensor resident on the device. */
typedef struct vkm_dtensor {
    vkm_gpu_buf *buf; /* NULL when the tensor is absent */
    size_t off;       /* byte offset in buf, a multiple of VKM_FWD_ALIGN */
    uint32_t type;    /* ggml type */
    int64_t ne[4];    /* shape, ne[0] innermost */
    size_t nbytes;    /* bytes of data (the buffer owns whole words past it) */
    size_t row_bytes; /* bytes of one ne[0]-row */
} vkm_dtensor;

/* The device tensors of one layer (shapes as in vkm_layer; letters of spec §3). */
typedef struct vkm_dlayer {
    bool moe;
    vkm_dtensor attn_norm;        /* {E} */
    vkm_dtensor attn_q_a;         /* {E, Cq}            Cq > 0 */
    vkm_dtensor attn_q_a_norm;    /* {Cq}               Cq > 0 */
    vkm_dtensor attn_q_b;         /* {Cq, H*Dqk}        Cq > 0 */
    vkm_dtensor attn_q;           /* {E, H*Dqk}         Cq == 0 */
    vkm_dtensor attn_kv_a_mqa;    /* {E, Ckv+R} */
    vkm_dtensor attn_kv_a_norm;   /* {Ckv} */
    vkm_dtensor attn_k_b;         /* {Dn, Ckv, H}       MLA */
    vkm_dtensor attn_v_b;         /* {Ckv, Dv, H}       MLA */
    vkm_dtensor attn_kv_b;        /* {Ckv, H*(Dn+Dv)}   legacy */
    vkm_dtensor attn_output;      /* {H*Dv, E} */
    vkm_dtensor ffn_norm;         /* {E} */
    vkm_dtensor ffn_gate;         /* {E, F}             dense */
    vkm_dtensor ffn_up;           /* {E, F}             dense */
    vkm_dtensor ffn_down;         /* {F, E}             dense */
    vkm_dtensor ffn_gate_inp;     /* {E, X}             router */
    vkm_dtensor exp_probs_b;      /* {X}                optional */
    vkm_dtensor ffn_gate_exps;    /* {E, Fe, X}         use vkm_fwd_expert_where() */
    vkm_dtensor ffn_up_exps;      /* {E, Fe, X} */
    vkm_dtensor ffn_gate_up_exps; /* {E, 2*Fe, X}       fused */
    vkm_dtensor ffn_down_exps;    /* {Fe, E, X} */
    vkm_dtensor ffn_gate_shexp;   /* {E, Fe*S} */
    vkm_dtensor ffn_up_shexp;     /* {E, Fe*S} */
    vkm_dtensor ffn_down_shexp;   /* {Fe*S, E} */
} vkm_dlayer;

/* A model on the device. */
typedef struct vkm_dmodel {
    const vkm_hparams *hp;  /* of the host model */
    vkm_rope_params rope;   /* RoPE constants of hp */
    vkm_dtensor token_embd; /* {E, V} */
    vkm_dtensor output_norm;
    vkm_dtensor output; /* {E, V}; a copy of token_embd's descriptor when tied */
    vkm_dlayer *layers; /* [hp->n_layer] */
} vkm_dmodel;

/* The matrices of a routed expert. */
enum vkm_expert_kind { VKM_EXPERT_GATE, VKM_EXPERT_UP, VKM_EXPERT_GATE_UP, VKM_EXPERT_DOWN };

typedef struct vkm_expert_loc {
    vkm_gpu_buf *buf;
    size_t off;       /* byte offset of the matrix */
    size_t mat_bytes; /* bytes of one expert's matrix: expert e+1 follows at off + mat_bytes */
} vkm_expert_loc;

/* Where matrix `kind` of stack entry e of layer il lives (entry e at stack + e*mat_bytes). When
 * every expert is resident the stack is the layer's tensor and e the expert; when experts are
 * paged (core/experts.c) the ffn_*_exps descriptors point at the slot stacks of the layer's size
 * class and e is a slot. */
vkm_expert_loc vkm_fwd_expert_where(const vkm_dmodel *m, uint32_t il, int kind, uint32_t e);

/* Paged experts: what the pager tells the forward pass about one round of one MoE layer after it
 * made some of the layer's chosen experts resident in slots. work.rows / work.map come from
 * moe_group as always (grouped by expert); mats holds, for stack entries (slots) base ..
 * base+n_mat-1, the (first, count) range in work.rows of the expert in that slot if this round
 * computes it, else (0, 0) (int32 [2*n_mat]). When the layer chose more experts than there are
 * slots it takes several rounds; each computes its experts' rows of eg/eh/eo. n_mat 0: the
 * round computes nothing on the GPU (its experts are all computed on the CPU, whose rows of eo
 * vkm_fwd_batch.host writes). */
typedef struct vkm_fwd_expert_plan {
    vkm_gpu_buf *mats;
    size_t mats_off; /* multiple of 4 */
    uint32_t base;   /* first stack entry (slot) the round uses */
    uint32_t n_mat;  /* 0 = no GPU work this round */
    bool last;       /* the layer's last round */
} vkm_fwd_expert_plan;

/* The pager hook, called for round 0, 1, ... of MoE layer il: round 0 right after the router and
 * moe_group have been recorded into the open batch, later rounds after the previous round's
 * expert matmuls. It must submit that batch, (round 0) read the choices work.sel back, make the
 * round's experts resident, write the plan's mats and begin a new batch. */
typedef int (*vkm_fwd_page_fn)(void *ctx, uint32_t il, uint32_t round, vkm_fwd_expert_plan *plan);

/* The host hook of a paged MoE layer il (vkm_fwd_batch.host), called after its GPU expert rounds
 * and its shared expert have been recorded into the open batch, before the combination: it may
 * start the device on them (vkm_gpu_flush) and write the eo rows of the experts the pager left to
 * the CPU (directly, or by copies recorded into the batch). */
typedef int (*vkm_fwd_host_fn)(void *ctx, uint32_t il);

/* A byte range of a work or cache buffer. */
typedef struct vkm_fwd_span {
    size_t off, size;
} vkm_fwd_span;

/* The activations of one batch of up to max_batch (B) tokens, all in one device buffer.
 * Letters of spec §3; K = n_expert_used, Fx = max(F, Fe*S). */
typedef struct vkm_fwd_work {
    vkm_gpu_buf *buf; /* set by the owner: at least `bytes` bytes */
    uint32_t max_batch;
    size_t bytes;
    vkm_fwd_span ids;    /* int32 [B] token ids (uploaded by the host) */
    vkm_fwd_span pos;    /* int32 [B] positions (uploaded by the host) */
    vkm_fwd_span iota;   /* int32 [B*K] 0, 1, 2, ... (uploaded once, vkm_fwd_work_init) */
    vkm_fwd_span x;      /* f32 [B][E] residual stream */
    vkm_fwd_span a;      /* f32 [B][E] normalised block input */
    vkm_fwd_span o;      /* f32 [B][E] block output */
    vkm_fwd_span qa;     /* f32 [B][Cq] compressed q */
    vkm_fwd_span aq;     /* a, qa in the 8-bit form of the integer-dot GEMVs (Q8X of */
    vkm_fwd_span qaq;    /* shaders/matmul_common.h), min(B, 8) rows, where the norms write it */
    vkm_fwd_span q;      /* f32 [B][H][Dqk] q_nope | q_pe per head */
    vkm_fwd_span kva;    /* f32 [B][Ckv+R] c | k_pe */
    vkm_fwd_span qabs;   /* f32 [B][H][Ckv] absorbed q (MLA) */
    vkm_fwd_span ast;    /* f32 [B][H][2] attention state between key passes (ops.h) */
    vkm_fwd_span ao;     /* f32 [B][H][Ckv] attention output (MLA) */
    vkm_fwd_span kvb;    /* f32 [B][H][Dn+Dv] expanded k_nope | v (legacy) */
    vkm_fwd_span u;      /* f32 [B][H][Dv] per-head outputs */
    vkm_fwd_span fg, fu; /* f32 [B][2*Fx] (gate and up: the scratch of vkm_op_matmul_glu), [B][Fx]:
                            dense / shared FFN */
    vkm_fwd_span rlog;   /* f32 [B][X] router logits */
    vkm_fwd_span sel;    /* int32 [B][K] selected experts */
    vkm_fwd_span wts;    /* f32 [B][K] their weights */
    vkm_fwd_span rows;   /* int32 [B*K] token of each grouped entry */
    vkm_fwd_span map;    /* int32 [B][K] entry of each choice */
    vkm_fwd_span mats;   /* int32 [2*X] (first, count) per expert */
    vkm_fwd_span gsel;   /* int32 [B][K] paged prefetch: the next MoE layer's guessed experts
                            (router_guess in forward.c, read back by core/session.c) */
    vkm_fwd_span gwts;   /* f32 [B][K] their weights (written by the router kernel, unused) */
    vkm_fwd_span eg;     /* f32 [B*K][2*Fe] expert gate and up (a fused gate_up stack's output,
                            or the scratch of vkm_op_matmul_id_glu) */
    vkm_fwd_span eh;     /* f32 [B*K + B][Fe] swiglu (rows B*K..: the shared expert's, paired) */
    vkm_fwd_span eo;     /* f32 [B*K + B][E] expert outputs (likewise) */
    vkm_fwd_span logits; /* f32 [B][V] */
    vkm_fwd_span kvt;    /* int32 [B][2] per row: its cache's first row in the pool's layer, its
                            position + 1 (written by the host: vkm_fwd_batch.kvt) */
} vkm_fwd_work;

/* The KV cache of a session: per layer, MLA files keep the latent rows [n_ctx][Ckv+R]
 * (c normalised | k_pe rotated); legacy files keep K [n_ctx][H][Dqk] then V [n_ctx][H][Dv]. */
typedef struct vkm_fwd_kv {
    vkm_gpu_buf *buf; /* set by the owner: at least `bytes` bytes */
    bool f16;         /* elements are f16 (default) or f32 */
    uint32_t n_ctx;
    /* layer il of this cache: layer_bytes at byte il * layer_stride + base (multiples of
     * VKM_FWD_ALIGN); a cache of its own has base 0 and layer_stride = layer_bytes */
    size_t layer_bytes, layer_stride, base;
    size_t v_off; /* legacy: byte offset of V inside a layer */
    /* A slot of a KV pool (vkm_fwd_kv_pool_layout): the pool's slots lie side by side in every
     * layer (slot s at base = s * layer_bytes), so one binding of layer_stride bytes from
     * il * layer_stride holds all of them: pool_rows cache rows, this slot's from row0. A cache of
     * its own: pooled false, row0 0, pool_rows n_ctx. */
    bool pooled;
    uint32_t row0, pool_rows;
    /* MLA with `scores` (vkm_fwd_kv_layout): the f32 [n_ctx][round_up(H, 8)] scratch of
     * one-query attention on CPU devices (ops.h vkm_attn_shape.scores), after the layers; else
     * 0 bytes */
    size_t scores_off, scores_bytes;
    size_t bytes;
} vkm_fwd_kv;

/* Lays out the work arrays for batches of up to max_batch tokens (sets everything but buf).
 * VKM_EINVAL for max_batch 0, VKM_ERANGE when the sizes overflow. */
int vkm_fwd_work_layout(const vkm_hparams *hp, uint32_t max_batch, vkm_fwd_work *w);
/* Uploads the constant arrays (iota) into w->buf. */
int vkm_fwd_work_init(vkm_gpu *gpu, const vkm_fwd_work *w);
/* Lays out the KV cache for n_ctx positions (sets everything but buf); `scores`: with the scratch
 * of one-query attention on CPU devices (MLA files; vkm_fwd_kv_scratch says when). */
int vkm_fwd_kv_layout(const vkm_hparams *hp, uint32_t n_ctx, bool f16, bool scores, vkm_fwd_kv *kv);
/* The same for slot `slot` of a pool of n_slots caches in one buffer of kv->bytes (the whole
 * pool's; every slot's layout differs only in base, row0 and scores_off). MLA slots hold a whole
 * number of rows a layer (n_ctx rounded up so that they fill whole VKM_FWD_ALIGN units). */
int vkm_fwd_kv_pool_layout(const vkm_hparams *hp, uint32_t n_ctx, bool f16, bool scores,
                           uint32_t n_slots, uint32_t slot, vkm_fwd_kv *kv);
/* Whether a KV cache on `gpu` wants the one-query attention scratch: CPU devices with the texel
 * kernels (ops.h vkm_attn_shape.scores); elsewhere the scratch would never be read. */
bool vkm_fwd_kv_scratch(vkm_gpu *gpu);

/* One sequence of a multi-sequence batch (continuous batching): its tokens are the batch rows
 * row0 .. row0+n-1, at positions pos0 .. pos0+n-1 of its own KV cache. */
typedef struct vkm_fwd_seq {
    const vkm_fwd_kv *kv;
    uint32_t row0, n, pos0; /* pos0 + n <= kv->n_ctx */
} vkm_fwd_seq;

typedef struct vkm_fwd_batch {
    uint32_t n;          /* tokens, 1..max_batch; ids and positions already uploaded */
    uint32_t pos0;       /* position of token 0; token i is at pos0 + i, pos0 + n <= n_ctx */
    uint32_t logit_row0; /* logits of tokens logit_row0 .. +n_logits go to work.logits rows 0.. */
    uint32_t n_logits;   /* 0 = no final norm / output projection */
    /* Several sequences (n_seq >= 1): seqs[0..n_seq) cover the rows 0..n-1 in order, each with
     * its own cache (the kv argument of vkm_fwd_record and pos0 are then unused); every row's
     * position is in work.pos. Everything is computed for all rows at once except the cache
     * stores and attention, per sequence. With n_logits, the logits of the last token of each
     * sequence go to work.logits rows 0..n_seq-1 (n_logits must be n_seq, logit_row0 0). */
    const vkm_fwd_seq *seqs;
    uint32_t n_seq;
    /* with seqs: work.kvt holds every row's (first cache row, position + 1); where every
     * sequence's cache is a slot of the same pool and the plan has fuse.attn_pool, each MLA layer
     * then records one kv_rope and one attention dispatch for all of them */
    bool kvt;
    bool profile;         /* vkm_gpu_mark after each kernel */
    vkm_fwd_page_fn page; /* NULL: every expert resident, the whole batch is one recording */
    void *page_ctx;
    bool guess; /* with page: before each MoE layer's hook, also apply the next MoE layer's router
                   to this layer's FFN input, writing its choices to work.gsel (expert prefetch;
                   false when prefetch is off) */
    vkm_fwd_host_fn host; /* with page, or NULL: the experts computed on the CPU (page_ctx) */
} vkm_fwd_batch;

/* Records the forward pass of batch b into the current gpu batch. The cache rows pos0..pos0+n-1
 * of every layer are overwritten; rows below pos0 must hold the earlier tokens (per sequence of a
 * multi-sequence batch; kv may then be NULL). */
int vkm_fwd_record(vkm_gpu *gpu, const vkm_dmodel *m, const vkm_fwd_work *w, const vkm_fwd_kv *kv,
                   const vkm_fwd_batch *b);

#endif
