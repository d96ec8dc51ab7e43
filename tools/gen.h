/* gen.h - text generation shared by `vkmoe run`, `vkmoe chat` and `vkmoe serve`: the common
 * flags, opening engine + session + tokenizer + sampler, the per-sequence generation state
 * (gen_seq: session, token mirror, logits, sampler, detokenizer, stop strings; cmd_gen_seq.c),
 * prefill with KV-cache reuse, the sampling loop with streamed UTF-8-safe output, reasoning
 * display, SIGINT handling and the timing report.
 *
 * Invariant: gen_seq.cache[0..n_cache) are exactly the tokens in the session's KV cache
 * (n_cache == vkm_session_n_past), and when have_logits is set, logits are those after
 * cache[n_cache-1]. */
#ifndef VKM_GEN_H
#define VKM_GEN_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "chat.h"
#include "sampler.h"
#include "tokenizer.h"
#include "vkmoe.h"

enum { GEN_MAX_STOP = 8 };

/* The flags of routed experts on the CPU (tools/cmd_exec_flags.c), shared by run, chat, serve,
 * bench and logits. */
typedef struct gen_exec {
    int expert_exec; /* enum vkm_expert_exec (--expert-exec) */
    bool cpu_moe;    /* --cpu-moe */
    int n_cpu_moe;   /* --n-cpu-moe N */
    int cpu_threads; /* --cpu-threads N (0 = one per core) */
    bool any;        /* one of them was given */
} gen_exec;

/* Options shared by run and chat. */
typedef struct gen_opts {
    const char *model;
    vkm_sampler_opts sampling;
    long n_predict; /* tokens to generate; -1 = until EOS or the context end */
    long n_ctx;     /* 0 = min(n_ctx_train, 4096) */
    long device;    /* -1 = default */
    bool profile, kv_f32, quiet, no_bos;
    uint64_t vram_budget;      /* bytes for weights + expert cache; 0 = automatic */
    int expert_policy;         /* enum vkm_expert_policy */
    int prefetch;              /* enum vkm_prefetch (--prefetch on|off); 0 = auto */
    bool stats;                /* print the expert-paging counters after the run */
    const char *system;        /* system message, or NULL */
    const char *chat_template; /* template name, NULL = detect from the model */
    bool hide_thinking;
    bool seed_random; /* --seed -1: sampling.seed was drawn at random (printed at open) */
    bool ctx_model;   /* -c 0: the model's training context */
    bool ignore_eos;  /* never sample an end-of-generation token */
    const char *stop[GEN_MAX_STOP]; /* -r/--reverse-prompt, --stop: generation ends after any */
    int n_stop;
    gen_exec exec; /* --expert-exec, --cpu-moe, --n-cpu-moe, --cpu-threads */
    int n_seq;     /* sequences sharing the context (serve --parallel): gen_open's session gets
                      n_ctx / n_seq tokens, the engine's budget all n_ctx; 0 = 1 */
} gen_opts;

/* Defaults (n_predict as given: run uses 128, chat -1). */
void gen_opts_init(gen_opts *o, long n_predict);
/* Parses the shared flag at argv[*i] (advancing *i past its value). Returns CLI_OK if consumed,
 * GEN_NOT_MINE if it is not a shared flag, CLI_USAGE (message printed) for a bad value. */
enum { GEN_NOT_MINE = -1 };
int gen_parse_flag(gen_opts *o, int argc, char **argv, int *i, const char *usage);
/* The help lines of the shared flags. */
void gen_print_flags_help(FILE *f, long default_n);

/* Parses an expert-execution flag at argv[*i] like gen_parse_flag (CLI_OK, GEN_NOT_MINE or
 * CLI_USAGE with the message printed). */
int gen_parse_exec_flag(gen_exec *x, int argc, char **argv, int *i, const char *usage);
/* Sets the engine options of x. */
void gen_exec_apply(const gen_exec *x, vkm_engine_opts *eo);
/* The help lines of those flags. */
void gen_print_exec_help(FILE *f);

/* Why generation stopped. */
enum gen_stop { GEN_STOP_LIMIT, GEN_STOP_EOG, GEN_STOP_CTX, GEN_STOP_INTR, GEN_STOP_STRING };

/* Receives generated text (whole UTF-8 characters) as it is produced. */
typedef void (*gen_text_fn)(void *user, const char *text, size_t len);

/* Passes text on and watches it for stop strings (cmd_gen_seq.c). */
typedef struct gen_stop_watch {
    const char *const *stop; /* [n_stop], not owned */
    int n_stop;
    gen_text_fn fn;
    void *user;
    char tail[512]; /* the last n bytes passed on */
    size_t n, keep;
    bool hit;
} gen_stop_watch;

/* One sequence: a session and what generating into it needs. Between gen_seq_begin and
 * gen_seq_end it is generating (st set). */
typedef struct gen_seq {
    vkm_session *session; /* owned */
    vkm_sampler *sampler; /* owned */
    int n_vocab;
    int n_ctx;
    float *logits; /* [n_vocab] after cache[n_cache-1] */
    bool have_logits;
    int32_t *cache; /* [n_ctx] token ids in the KV cache */
    int n_cache;
    /* generation in progress */
    vkm_tok_stream *st;
    gen_stop_watch w;
    long n_predict, n_out; /* limit (-1 = none), tokens sampled so far */
} gen_seq;

typedef struct gen_ctx {
    const gen_opts *opts;
    vkm_engine *engine;
    vkm_tok *tok;
    enum vkm_chat_template tmpl; /* VKM_CHAT_NONE unless gen_open was asked for one */
    int n_vocab;
    int n_ctx;                       /* of seq (serve: of each slot) */
    gen_seq seq;                     /* the session of run and chat; serve's first slot */
    vkm_kv_pool *kv_pool;            /* serve (n_seq > 1): every slot's KV cache, else NULL */
    int32_t think_open, think_close; /* ids of "<think>" / "</think>", -1 if absent */
    int32_t *eog;                    /* [n_eog] end-of-generation ids, masked by --ignore-eos */
    int n_eog;
    /* timings */
    double t_load;          /* seconds to open everything */
    double t_warmup;        /* seconds building device pipelines (vkm_session_warmup) */
    long n_prompt, n_gen;   /* tokens evaluated as prompt / generated */
    double t_prompt, t_gen; /* seconds */
} gen_ctx;

/* ---- one sequence (cmd_gen_seq.c) ---- */
/* Creates q's session (so), sampler (sp) and buffers for g's model. CLI_OK/CLI_ERROR (printed);
 * gen_seq_close is safe either way. */
int gen_seq_open(gen_seq *q, gen_ctx *g, const vkm_session_opts *so, const vkm_sampler_opts *sp);
void gen_seq_close(gen_seq *q);
/* A fresh sampler (a new request's, or after /reset). */
int gen_seq_set_sampler(gen_seq *q, const vkm_sampler_opts *sp);
/* The length of the common prefix of the cache and ids[0..n). */
int gen_seq_common(const gen_seq *q, const int32_t *ids, int n);
/* Keeps the first n tokens of the cache (no-op when it holds no more). CLI_OK/CLI_ERROR. */
int gen_seq_truncate(gen_seq *q, int n);
/* The session took ids[0..n) (a prompt chunk, or the token gen_seq_next chose): the mirror
 * follows; logits says whether q->logits are now those after them. */
void gen_seq_push(gen_seq *q, const int32_t *ids, int n, bool logits);
/* Starts generating up to n_predict tokens (-1: no limit) whose text goes to fn(user), ending
 * after any of stop[0..n_stop) (kept by pointer). CLI_OK/CLI_ERROR. */
int gen_seq_begin(gen_seq *q, const gen_ctx *g, long n_predict, const char *const *stop, int n_stop,
                  gen_text_fn fn, void *user);
/* One token from the logits (end-of-generation ids masked with --ignore-eos): sampled, accepted by
 * the sampler, its text passed on. Returns 1 when *id is to be evaluated (gen_seq_push after)
 * for generation to go on; 0 when it ended: *why = EOG (not emitted), STRING (a stop string
 * completed), LIMIT (n_predict reached: *id is not evaluated), CTX (the context is full);
 * -1 (message printed) without logits. */
int gen_seq_next(gen_seq *q, const gen_ctx *g, int32_t *id, enum gen_stop *why);
/* Ends generating: passes on the text held back, frees the detokenizer stream. */
void gen_seq_end(gen_seq *q);

/* Opens everything; with want_template, also chooses the chat template (errors as chat.h says).
 * Returns CLI_OK or CLI_ERROR (message printed); gen_close() is safe either way. */
int gen_open(gen_ctx *g, const gen_opts *o, bool want_template);
void gen_close(gen_ctx *g);

/* Tokenizes text[0..len) (BOS per the model unless --no-bos, special tokens parsed) into a
 * malloc'ed array. CLI_OK/CLI_ERROR. */
int gen_tokenize(gen_ctx *g, const char *text, size_t len, int32_t **ids, int *n);
/* Reads a whole file ("-" = stdin) into a malloc'ed NUL-terminated buffer. CLI_OK/CLI_ERROR. */
int gen_read_file(const char *path, char **out, size_t *len);
/* Makes the KV cache hold exactly ids[0..n): keeps the longest common prefix with what is cached,
 * truncates the rest and evaluates the remainder (at least one token, for fresh logits), in
 * chunks of the session's batch size: a remainder of several chunks shows its progress on a
 * terminal, and a Ctrl-C (gen_interrupted) stops it after the current chunk, with CLI_OK and no
 * logits (have_logits false; the cache holds the chunks done). CLI_ERROR (message printed) if n
 * is 0 or larger than the context, or on an engine error; the cache mirror stays correct. */
int gen_prefill(gen_ctx *g, const int32_t *ids, int n);
/* Samples up to n_predict tokens (-1: no limit) after a prefill, passing their text to fn.
 * Stops at EOS/EOT (unless --ignore-eos), the limit, the context end (a note on stderr), a stop
 * string (-r/--stop: after the text that completes it) or SIGINT. */
int gen_generate(gen_ctx *g, long n_predict, gen_text_fn fn, void *user, enum gen_stop *why);
/* Forgets the conversation: empty KV cache, fresh sampler. */
int gen_reset(gen_ctx *g);
/* Load/prompt/generation timings on stderr (unless --quiet); --profile table. */
void gen_print_timings(gen_ctx *g);

/* ---- SIGINT ----
 * After gen_sigint_install(): a Ctrl-C sets gen_interrupted (generation stops at the next
 * token, a prompt evaluation after its current chunk, the warm-up after the pipeline in
 * progress); a second one before it is cleared, or any while gen_at_prompt is set, exits 130.
 * With warmup_backstop (run, which exits after an interruption anyway), a Ctrl-C during the
 * warm-up also exits 130 one second later if the warm-up has not stopped by then (one pipeline
 * can take several seconds to compile on lavapipe). */
extern volatile sig_atomic_t gen_interrupted;
extern volatile sig_atomic_t gen_at_prompt;
void gen_sigint_install(bool warmup_backstop);

/* ---- reasoning display ----
 * Chat output goes through the <think> parser: reasoning is dimmed on a terminal, framed as
 * "[thinking]\n...\n[/thinking]\n" otherwise, or dropped with --hide-thinking; the answer is
 * printed as is. Without chat the text is printed unchanged. On a terminal, bytes that are not
 * printable UTF-8 are shown as \xNN (piped output stays raw). */
typedef struct gen_display {
    FILE *out;
    bool chat, tty, hide;
    vkm_chat_think think;
    bool reasoning_open; /* a dim span / [thinking] block has started and not been closed */
    bool last_nl;        /* the last byte written was '\n' (or nothing written yet) */
    bool wrote;          /* anything written */
} gen_display;

void gen_display_init(gen_display *d, FILE *out, bool chat, bool hide_thinking);
/* A gen_text_fn: user is a gen_display. */
void gen_display_text(void *user, const char *text, size_t len);
/* End of output: releases held text, closes a reasoning block, and (on a terminal, or always in
 * chat) ends the line. */
void gen_display_end(gen_display *d, bool newline);
/* True when stdout and stderr are the same terminal, file or pipe (2>&1): then the timing lines
 * need the text's line ended first. */
bool gen_same_stream(void);

#endif
