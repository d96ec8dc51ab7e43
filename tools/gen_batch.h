/* gen_batch.h - continuous batching of several sequences of one engine (cmd_gen_batch.c), for
 * `vkmoe serve --parallel N` and `vkmoe bench --serve`.
 *
 * N slots, each a gen_seq (gen.h) with its own session and KV cache: slot 0 is the gen_ctx's own
 * session (max_batch as opened, its work buffer holds every batch), the others are created with
 * max_batch 1 and take part only through vkm_session_eval_multi with via = slot 0's session.
 * A request starts in a free slot (gen_batch_pick: the one whose cache shares the longest prefix
 * with its prompt; the rest of that cache is cut and only the remainder prefilled) and leaves when
 * it ends; both happen between steps. Each gen_batch_step samples the next token of every
 * decoding slot, then evaluates them (one token each) together with a chunk of the prompts
 * being prefilled, in one vkm_session_eval_multi call: decoding streams keep going while a long
 * prompt is prefilled.
 *
 * Prefill chunks: while any slot decodes, the prompts being prefilled get at most prefill_chunk
 * tokens per step together (oldest request first), so a decode step grows by at most that many
 * tokens; with nothing decoding a prompt takes the whole batch (vkm_session_max_batch of slot
 * 0). Single-threaded: the caller owns the batch. */
#ifndef VKM_GEN_BATCH_H
#define VKM_GEN_BATCH_H

#include "gen.h"

/* The prefill chunk of `vkmoe serve` and `bench --serve`: prompt tokens per step while other
 * slots decode. A decode step grows by at most this many tokens (on a GPU a 128-token pass costs
 * a few decode steps, as the weights are read once for all; prefill runs near its full speed),
 * so streams slow down but do not stall while a long prompt is prefilled. */
enum { GEN_BATCH_PREFILL_CHUNK = 128 };

enum gen_slot_state { GEN_SLOT_FREE = 0, GEN_SLOT_PREFILL, GEN_SLOT_DECODE };

struct gen_slot;

/* A request as a slot runs it. ids are not copied: they must outlive the request. */
typedef struct gen_req {
    const int32_t *ids; /* [n_ids] the prompt, 1 <= n_ids <= the slot context */
    int n_ids;
    vkm_sampler_opts sampling; /* a fresh sampler, fed the whole prompt */
    long n_predict;            /* -1 = until end of text or of the context */
    const char *const *stop;   /* [n_stop] stop strings (kept by pointer), or none */
    int n_stop;
    gen_text_fn text;         /* the generated text, as produced */
    bool (*halt)(void *user); /* asked every step and after each token's text: true ends the
                                 request (GEN_STOP_INTR); NULL = never */
    /* The end, once: why, and rc CLI_OK or CLI_ERROR (an engine error, message printed). The
     * slot tells what was done (state PREFILL: no token generated yet). */
    void (*done)(void *user, const struct gen_slot *slot, enum gen_stop why, int rc);
    void *user;
} gen_req;

typedef struct gen_slot {
    gen_seq *seq; /* slot 0: &gen_ctx.seq; the others owned */
    enum gen_slot_state state;
    gen_req req;
    int n_kept;                 /* prompt tokens reused from the cache */
    long n_prefill;             /* prompt tokens evaluated for this request */
    double t_prefill, t_decode; /* this request's share of the step times */
    int32_t next;               /* DECODE: the token sampled, evaluated at this step */
    uint64_t start; /* the step its last request started at (least recently used first) */
} gen_slot;

/* Counters since gen_batch_init (every slot together). */
typedef struct gen_batch_stats {
    uint64_t steps;             /* vkm_session_eval_multi calls */
    uint64_t decode_steps;      /* of those, with decode tokens */
    uint64_t decode_tokens;     /* tokens decoded in them (their mean batch: / decode_steps) */
    uint64_t prefill_tokens;    /* prompt tokens evaluated */
    uint64_t mixed_steps;       /* steps that prefilled a prompt chunk while slots decoded */
    uint64_t generated;         /* tokens generated (sampled), by finished requests */
    double prefill_s, decode_s; /* step times, split by their tokens */
    double pure_decode_s;       /* the steps with decode tokens only */
    uint64_t pure_decode_tokens;
} gen_batch_stats;

typedef struct gen_batch {
    gen_ctx *g;
    gen_slot *slots; /* [n_slots] */
    int n_slots;
    int max_batch;     /* tokens per step: vkm_session_max_batch of slot 0 */
    int prefill_chunk; /* prompt tokens per step while slots decode */
    vkm_seq_eval *ev;  /* [n_slots] one step's sequences */
    int *ev_slot;      /* [n_slots] their slots */
    uint64_t tick;     /* requests started */
    gen_batch_stats st;
} gen_batch;

/* n_slots sequences on g (whose seq is slot 0; the others get g->n_ctx tokens each).
 * prefill_chunk >= 1. CLI_OK/CLI_ERROR (printed); gen_batch_free is safe either way. */
int gen_batch_init(gen_batch *b, gen_ctx *g, int n_slots, int prefill_chunk);
/* Ends every request still running (done with GEN_STOP_INTR) and frees the slots but slot 0. */
void gen_batch_free(gen_batch *b);
/* The free slot for a prompt: the longest common prefix with its cache, ties to the least
 * recently used. -1 when every slot is busy. */
int gen_batch_pick(const gen_batch *b, const int32_t *ids, int n);
/* Starts r in free slot i: keeps the common prefix of its cache (at most n_ids - 1 tokens, so the
 * last prompt token is evaluated for fresh logits), cuts the rest. On an error (printed) r.done
 * has been called with CLI_ERROR and the slot is free again. */
int gen_batch_start(gen_batch *b, int i, const gen_req *r);
/* Slots with a request. */
int gen_batch_busy(const gen_batch *b);
/* One step (see the top). Requests that end are done() within it. Engine errors end the requests
 * of the step with CLI_ERROR (the sessions are unchanged); the batch stays usable. */
void gen_batch_step(gen_batch *b);

#endif
