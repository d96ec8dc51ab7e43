/* cmd_gen_batch.c - continuous batching of several sequences of one engine (gen_batch.h): the
 * slots, choosing a slot by prefix, and the step that evaluates every decoding slot's next token
 * and the prompt chunks together in one vkm_session_eval_multi call.
 *
 * Invariants: a slot is FREE, PREFILL (its mirror holds n_kept + n_prefill prompt tokens, fewer
 * than n_ids) or DECODE (have_logits, generating); every request started is done() exactly once,
 * after which its slot is FREE. The mirrors change only after the engine accepted a step. */
#include "gen_batch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int gen_batch_init(gen_batch *b, gen_ctx *g, int n_slots, int prefill_chunk) {
    memset(b, 0, sizeof *b);
    b->g = g;
    if (n_slots < 1 || prefill_chunk < 1) return cli_fail("internal: gen_batch_init");
    b->max_batch = vkm_session_max_batch(g->seq.session);
    if (n_slots > b->max_batch)
        return cli_fail("%d slots need a batch of %d tokens, but the context of %d tokens per "
                        "slot allows %d (raise -c)",
                        n_slots, n_slots, g->n_ctx, b->max_batch);
    b->prefill_chunk = prefill_chunk;
    b->slots = calloc((size_t)n_slots, sizeof *b->slots);
    b->ev = calloc((size_t)n_slots, sizeof *b->ev);
    b->ev_slot = calloc((size_t)n_slots, sizeof *b->ev_slot);
    if (!b->slots || !b->ev || !b->ev_slot) return cli_fail("out of memory");
    b->slots[0].seq = &g->seq;
    b->n_slots = 1;
    /* the other slots evaluate only through slot 0's work buffer: a one-token one each */
    const vkm_session_opts so = {
        .n_ctx = g->n_ctx, .kv_f32 = g->opts->kv_f32, .max_batch = 1, .kv_pool = g->kv_pool};
    for (int i = 1; i < n_slots; i++) {
        gen_seq *q = calloc(1, sizeof *q);
        if (!q) return cli_fail("out of memory");
        b->slots[b->n_slots++].seq = q;
        if (gen_seq_open(q, g, &so, &g->opts->sampling)) return CLI_ERROR;
    }
    /* the kernels of decode steps of 2 .. n_slots streams, built now rather than in the first
     * steps that have that many */
    if (vkm_session_warmup_batched(g->seq.session, n_slots, NULL, NULL)) return cli_fail_last();
    return CLI_OK;
}

/* Ends slot s's request: the text held back goes out, then done(). */
static void end_req(gen_batch *b, gen_slot *s, enum gen_stop why, int rc) {
    gen_seq_end(s->seq);
    b->st.generated += (uint64_t)s->seq->n_out;
    b->g->n_gen += s->seq->n_out;
    if (s->req.done) s->req.done(s->req.user, s, why, rc);
    s->state = GEN_SLOT_FREE;
    s->req = (gen_req){0};
}

void gen_batch_free(gen_batch *b) {
    for (int i = 0; b->slots && i < b->n_slots; i++)
        if (b->slots[i].state != GEN_SLOT_FREE) end_req(b, &b->slots[i], GEN_STOP_INTR, CLI_OK);
    for (int i = 1; b->slots && i < b->n_slots; i++) {
        if (!b->slots[i].seq) continue;
        gen_seq_close(b->slots[i].seq);
        free(b->slots[i].seq);
    }
    free(b->slots);
    free(b->ev);
    free(b->ev_slot);
    memset(b, 0, sizeof *b);
}

int gen_batch_busy(const gen_batch *b) {
    int n = 0;
    for (int i = 0; i < b->n_slots; i++) n += b->slots[i].state != GEN_SLOT_FREE;
    return n;
}

int gen_batch_pick(const gen_batch *b, const int32_t *ids, int n) {
    int best = -1, best_common = -1;
    for (int i = 0; i < b->n_slots; i++) {
        const gen_slot *s = &b->slots[i];
        if (s->state != GEN_SLOT_FREE) continue;
        const int c = gen_seq_common(s->seq, ids, n);
        if (c > best_common || (c == best_common && s->start < b->slots[best].start))
            best = i, best_common = c;
    }
    return best;
}

int gen_batch_start(gen_batch *b, int i, const gen_req *r) {
    gen_slot *s = &b->slots[i];
    gen_seq *q = s->seq;
    int rc = CLI_OK;
    s->req = *r;
    s->n_prefill = 0;
    s->t_prefill = s->t_decode = 0;
    s->start = ++b->tick;
    q->n_out = 0;
    if (s->state != GEN_SLOT_FREE || r->n_ids < 1 || r->n_ids > q->n_ctx)
        rc = cli_fail("internal: a request of %d tokens for slot %d (context %d)", r->n_ids, i,
                      q->n_ctx);
    int keep = rc ? 0 : gen_seq_common(q, r->ids, r->n_ids);
    if (keep > r->n_ids - 1) keep = r->n_ids - 1;
    s->n_kept = keep;
    if (!rc) rc = gen_seq_truncate(q, keep);
    if (!rc) rc = gen_seq_set_sampler(q, &r->sampling);
    for (int k = 0; !rc && k < r->n_ids; k++) vkm_sampler_accept(q->sampler, r->ids[k]);
    if (!rc) rc = gen_seq_begin(q, b->g, r->n_predict, r->stop, r->n_stop, r->text, r->user);
    /* the kernels of this prompt's chunks and of decode steps, built now rather than inside
     * the timed steps (as gen_prefill does; a no-op once they are built) */
    const int first = r->n_ids - keep < b->max_batch ? r->n_ids - keep : b->max_batch;
    if (!rc && vkm_session_warmup(b->g->seq.session, first)) rc = cli_fail_last();
    s->state = GEN_SLOT_PREFILL;
    if (rc) end_req(b, s, GEN_STOP_LIMIT, CLI_ERROR);
    return rc;
}

void gen_batch_step(gen_batch *b) {
    gen_ctx *g = b->g;
    int n = 0, n_dec = 0, n_pf = 0;
    /* 1. every decoding slot's next token */
    for (int i = 0; i < b->n_slots; i++) {
        gen_slot *s = &b->slots[i];
        if (s->state != GEN_SLOT_DECODE) continue;
        if (s->req.halt && s->req.halt(s->req.user)) {
            end_req(b, s, GEN_STOP_INTR, CLI_OK);
            continue;
        }
        enum gen_stop why;
        const int more = gen_seq_next(s->seq, g, &s->next, &why);
        if (more <= 0) {
            end_req(b, s, why, more < 0 ? CLI_ERROR : CLI_OK);
            continue;
        }
        if (s->req.halt && s->req.halt(s->req.user)) { /* its text ended it (a stop string) */
            end_req(b, s, GEN_STOP_INTR, CLI_OK);
            continue;
        }
        b->ev[n] = (vkm_seq_eval){s->seq->session, &s->next, 1, s->seq->logits};
        b->ev_slot[n++] = i;
        n_dec++;
    }
    /* 2. prompt chunks, oldest request first */
    int cap = b->max_batch - n_dec;
    if (n_dec && cap > b->prefill_chunk) cap = b->prefill_chunk;
    for (;;) {
        gen_slot *s = NULL;
        int si = -1;
        for (int i = 0; i < b->n_slots; i++) {
            gen_slot *t = &b->slots[i];
            bool queued = false;
            for (int k = n_dec; k < n; k++) queued |= b->ev_slot[k] == i;
            if (t->state == GEN_SLOT_PREFILL && !queued && (!s || t->start < s->start))
                s = t, si = i;
        }
        if (!s) break;
        if (s->req.halt && s->req.halt(s->req.user)) {
            end_req(b, s, GEN_STOP_INTR, CLI_OK);
            continue;
        }
        if (cap <= 0) break;
        const int at = s->seq->n_cache, left = s->req.n_ids - at, c = left < cap ? left : cap;
        b->ev[n] =
            (vkm_seq_eval){s->seq->session, s->req.ids + at, c, c == left ? s->seq->logits : NULL};
        b->ev_slot[n++] = si;
        cap -= c;
        n_pf += c;
    }
    if (!n) return;

    const double t0 = now_s();
    const int rc = vkm_session_eval_multi(g->seq.session, b->ev, n);
    const double dt = now_s() - t0, tot = (double)(n_dec + n_pf);
    if (rc) {
        cli_fail_last();
        for (int k = 0; k < n; k++) end_req(b, &b->slots[b->ev_slot[k]], GEN_STOP_LIMIT, CLI_ERROR);
        return;
    }
    for (int k = 0; k < n; k++) {
        gen_slot *s = &b->slots[b->ev_slot[k]];
        const double share = dt * (double)b->ev[k].n / tot;
        if (s->state == GEN_SLOT_DECODE) {
            gen_seq_push(s->seq, &s->next, 1, true);
            s->t_decode += share;
        } else {
            const bool last = b->ev[k].logits != NULL;
            gen_seq_push(s->seq, b->ev[k].tokens, b->ev[k].n, last);
            s->n_prefill += b->ev[k].n;
            s->t_prefill += share;
            if (last) s->state = GEN_SLOT_DECODE;
        }
    }
    gen_batch_stats *st = &b->st;
    st->steps++;
    st->prefill_tokens += (uint64_t)n_pf;
    st->prefill_s += dt * n_pf / tot;
    st->decode_s += dt * n_dec / tot;
    if (n_dec) {
        st->decode_steps++;
        st->decode_tokens += (uint64_t)n_dec;
    }
    if (n_dec && n_pf) st->mixed_steps++;
    if (n_dec && !n_pf) {
        st->pure_decode_s += dt;
        st->pure_decode_tokens += (uint64_t)n_dec;
    }
    g->n_prompt += n_pf;
    g->t_prompt += dt * n_pf / tot;
    g->t_gen += dt * n_dec / tot;
}
