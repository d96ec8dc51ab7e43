/* cmd_gen_seq.c - one sequence's generation state (gen.h gen_seq), shared by run and chat (one
 * sequence, cmd_gen_common.c) and serve (one per slot, cmd_gen_batch.c): the session with its
 * token mirror and logits, the sampler, and while generating the detokenizer stream and the
 * stop-string watch.
 *
 * Invariants: cache[0..n_cache) equal the session's KV cache (the mirror is updated only after
 * the session accepted the tokens: gen_seq_push); have_logits only when logits follow
 * cache[n_cache-1]. Evaluating is the caller's (vkm_session_eval, or vkm_session_eval_multi for
 * several sequences in one pass); this module only decides what to evaluate next. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "gen.h"

static const char THINK_OPEN[] = "<think>";
static const char THINK_CLOSE[] = "</think>";

int gen_seq_open(gen_seq *q, gen_ctx *g, const vkm_session_opts *so, const vkm_sampler_opts *sp) {
    memset(q, 0, sizeof *q);
    q->n_vocab = g->n_vocab;
    if (vkm_session_create(g->engine, so, &q->session)) return cli_fail_last();
    q->n_ctx = vkm_session_n_ctx(q->session);
    if (vkm_sampler_create(sp, q->n_vocab, &q->sampler)) return cli_fail_last();
    q->logits = malloc((size_t)q->n_vocab * sizeof *q->logits);
    q->cache = malloc((size_t)(q->n_ctx > 0 ? q->n_ctx : 1) * sizeof *q->cache);
    if (!q->logits || !q->cache) return cli_fail("out of memory");
    return CLI_OK;
}

void gen_seq_close(gen_seq *q) {
    vkm_tok_stream_destroy(q->st);
    vkm_sampler_destroy(q->sampler);
    vkm_session_destroy(q->session);
    free(q->logits);
    free(q->cache);
    memset(q, 0, sizeof *q);
}

int gen_seq_set_sampler(gen_seq *q, const vkm_sampler_opts *sp) {
    vkm_sampler_destroy(q->sampler);
    q->sampler = NULL;
    if (vkm_sampler_create(sp, q->n_vocab, &q->sampler)) return cli_fail_last();
    return CLI_OK;
}

int gen_seq_common(const gen_seq *q, const int32_t *ids, int n) {
    int c = 0;
    while (c < q->n_cache && c < n && q->cache[c] == ids[c]) c++;
    return c;
}

int gen_seq_truncate(gen_seq *q, int n) {
    if (n >= q->n_cache) return CLI_OK;
    if (vkm_session_truncate(q->session, n)) return cli_fail_last();
    q->n_cache = n;
    q->have_logits = false;
    return CLI_OK;
}

void gen_seq_push(gen_seq *q, const int32_t *ids, int n, bool logits) {
    memcpy(q->cache + q->n_cache, ids, (size_t)n * sizeof *ids);
    q->n_cache += n;
    q->have_logits = logits;
}

/* tail + text, searched for each stop string (text itself may be long: searched in pieces) */
static void watch_text(void *user, const char *text, size_t len) {
    gen_stop_watch *w = user;
    w->fn(w->user, text, len);
    if (!w->n_stop || w->hit) return;
    char buf[1024];
    size_t off = 0;
    while (off < len && !w->hit) {
        size_t take = len - off < sizeof buf - w->n ? len - off : sizeof buf - w->n;
        memcpy(buf, w->tail, w->n);
        memcpy(buf + w->n, text + off, take);
        const size_t m = w->n + take;
        for (int i = 0; i < w->n_stop && !w->hit; i++) {
            const size_t sl = strlen(w->stop[i]);
            for (size_t p = 0; p + sl <= m && !w->hit; p++)
                w->hit = !memcmp(buf + p, w->stop[i], sl);
        }
        off += take;
        w->n = m < w->keep ? m : w->keep;
        memcpy(w->tail, buf + m - w->n, w->n);
    }
}

int gen_seq_begin(gen_seq *q, const gen_ctx *g, long n_predict, const char *const *stop, int n_stop,
                  gen_text_fn fn, void *user) {
    vkm_tok_stream_destroy(q->st);
    q->st = NULL;
    memset(&q->w, 0, sizeof q->w);
    q->w = (gen_stop_watch){.stop = stop, .n_stop = n_stop, .fn = fn, .user = user};
    for (int i = 0; i < n_stop; i++) {
        const size_t sl = strlen(stop[i]);
        if (sl - 1 > q->w.keep) q->w.keep = sl - 1 < sizeof q->w.tail ? sl - 1 : sizeof q->w.tail;
    }
    q->n_predict = n_predict;
    q->n_out = 0;
    if (vkm_tok_stream_create(g->tok, false, &q->st)) return cli_fail_last();
    return CLI_OK;
}

static void emit_token(gen_seq *q, const gen_ctx *g, int32_t id) {
    const char *text;
    size_t len;
    if (id >= 0 && (id == g->think_open || id == g->think_close)) {
        /* the tags reach the think parser even when they are CONTROL tokens */
        vkm_tok_stream_flush(q->st, &text, &len);
        if (len) watch_text(&q->w, text, len);
        if (id == g->think_open)
            watch_text(&q->w, THINK_OPEN, sizeof THINK_OPEN - 1);
        else
            watch_text(&q->w, THINK_CLOSE, sizeof THINK_CLOSE - 1);
        return;
    }
    if (vkm_tok_stream_put(q->st, id, &text, &len) == 0 && len) watch_text(&q->w, text, len);
}

int gen_seq_next(gen_seq *q, const gen_ctx *g, int32_t *id, enum gen_stop *why) {
    *why = GEN_STOP_LIMIT;
    if (q->n_predict >= 0 && q->n_out >= q->n_predict) return 0;
    if (!q->have_logits || !q->st) {
        cli_fail("internal: generation without a prefill");
        return -1;
    }
    for (int e = 0; e < g->n_eog; e++) q->logits[g->eog[e]] = -INFINITY; /* --ignore-eos */
    *id = vkm_sampler_sample(q->sampler, q->logits);
    if (vkm_tok_is_eog(g->tok, *id)) {
        *why = GEN_STOP_EOG;
        return 0;
    }
    vkm_sampler_accept(q->sampler, *id);
    q->n_out++;
    emit_token(q, g, *id);
    if (q->w.hit) {
        *why = GEN_STOP_STRING;
        return 0;
    }
    if (q->n_predict >= 0 && q->n_out >= q->n_predict) return 0; /* the last needs no eval */
    if (q->n_cache >= q->n_ctx) {
        *why = GEN_STOP_CTX;
        return 0;
    }
    return 1;
}

void gen_seq_end(gen_seq *q) {
    if (!q->st) return;
    const char *text;
    size_t len;
    vkm_tok_stream_flush(q->st, &text, &len);
    if (len) watch_text(&q->w, text, len);
    vkm_tok_stream_destroy(q->st);
    q->st = NULL;
}
