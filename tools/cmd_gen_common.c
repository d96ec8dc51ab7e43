/* cmd_gen_common.c - the generation machinery shared by `vkmoe run`, `vkmoe chat` and `vkmoe
 * serve` (gen.h): shared flags, open/close, prefill with KV-cache reuse, the sampling loop over
 * one sequence (gen_seq, cmd_gen_seq.c), SIGINT, timings and the reasoning display.
 *
 * The token mirror gen_seq.cache is updated only after the session accepted the tokens, so it
 * always equals the KV cache's contents; every eval is bounded by n_ctx before it is made. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "err.h"
#include "gen.h"
#include "gguf.h"

volatile sig_atomic_t gen_interrupted;
volatile sig_atomic_t gen_at_prompt;
static volatile sig_atomic_t in_warmup; /* Ctrl-C then also arms the exit backstop */
static volatile sig_atomic_t backstop;  /* gen_sigint_install(warmup_backstop) */

static const char THINK_OPEN[] = "<think>";
static const char THINK_CLOSE[] = "</think>";

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ------------------------------------------------------------------------------------------ */
/* flags                                                                                        */

void gen_opts_init(gen_opts *o, long n_predict) {
    memset(o, 0, sizeof *o);
    o->sampling = vkm_sampler_defaults();
    o->sampling.seed = 0;
    o->n_predict = n_predict;
    o->device = -1;
    o->prefetch = VKM_PREFETCH_AUTO;
}

void gen_print_flags_help(FILE *f, long default_n) {
    fprintf(
        f,
        "  -m, --model FILE        the GGUF model (first part of a split model)\n"
        "  -n, --n-predict N       tokens to generate (default %ld; -1 = until end of text or\n"
        "                          the end of the context)\n"
        "  -c, --ctx-size N        context (KV cache) length in tokens (default: the model's\n"
        "                          training context, at most 4096; 0 = the model's training\n"
        "                          context whatever its length)\n"
        "  --temp T                temperature, >= 0 (default 0.8; 0 = greedy)\n"
        "  --top-k K               keep the K most likely tokens (default 40; 0 = off)\n"
        "  --top-p P               nucleus sampling, 0..1 (default 0.95; 1 = off)\n"
        "  --min-p P               drop tokens below P x the top probability, 0..1\n"
        "                          (default 0.05; 0 = off)\n"
        "  --repeat-penalty R      penalty for the last 64 tokens, >= 0 (default 1.0 = off)\n"
        "  -s, --seed S            sampling seed, >= 0 (default 0: runs are reproducible;\n"
        "                          the same seed and options give the same text); -1 = a\n"
        "                          random seed, printed on stderr\n"
        "  -r, --reverse-prompt T  stop generating after the text T (also --stop T; up to %d;\n"
        "                          in chat the answer ends there)\n"
        "  --ignore-eos            keep generating past end-of-text tokens (never sample them)\n"
        "  -t, --threads N         the CPU threads of a CPU Vulkan device (lavapipe's\n"
        "                          LP_NUM_THREADS); GPUs ignore it: the device runs the model,\n"
        "                          not host threads\n"
        "  -sys, --system TEXT     system message (run: with --chat)\n"
        "  --chat-template NAME    deepseek3 (V3, R1) or deepseek2 (V2); default: detected\n"
        "                          from the model's tokenizer.chat_template, or without one\n"
        "                          inferred from its vocabulary (<｜User｜> tokens: deepseek3,\n"
        "                          V2's User/Assistant: deepseek2) (run: with --chat)\n"
        "  --hide-thinking         do not show R1 reasoning, <think>...</think> (run: with "
        "--chat)\n"
        "  --no-bos                do not add BOS (default: as the model says)\n"
        "  --device N              Vulkan device index (see `vkmoe devices`)\n"
        "  --kv-f32                F32 KV cache instead of F16\n"
        "  --profile               print per-kernel GPU times, and the dispatches and host\n"
        "                          waits per decode step, after the run\n"
        "  --vram-budget SIZE      device bytes for weights + expert cache (K/M/G); routed\n"
        "                          experts beyond it are paged from host memory\n"
        "  --expert-policy P       expert cache eviction: lfu (default) or lru\n"
        "  --prefetch on|off       speculative expert prefetch while paging (default: on\n"
        "                          with a dedicated transfer queue)\n"
        "  --stats                 print the expert-paging counters after the run\n"
        "  --quiet                 no load progress, model line or timings on stderr\n",
        default_n, GEN_MAX_STOP);
    gen_print_exec_help(f);
}

/* A seed for --seed -1: clock and process id through splitmix64, 32 bits so that it is easy to
 * pass back to --seed. */
static uint64_t random_seed(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t z = (uint64_t)ts.tv_sec * 1000000007ull + (uint64_t)ts.tv_nsec +
                 ((uint64_t)getpid() << 32) + 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return (z ^ (z >> 31)) & 0xFFFFFFFFu;
}

/* Value of the flag at argv[*i] or NULL (then a usage error is due). */
static const char *flag_value(int argc, char **argv, int *i) {
    if (*i + 1 >= argc) return NULL;
    return argv[++*i];
}

int gen_parse_flag(gen_opts *o, int argc, char **argv, int *i, const char *usage) {
    const char *a = argv[*i];
    const char *v;
    double d;
    long l;
#define IS(x) (!strcmp(a, x))
    if (IS("-m") || IS("--model")) {
        if (!(v = flag_value(argc, argv, i))) return cli_usage_error(usage, "%s needs a file", a);
        o->model = v;
    } else if (IS("-n") || IS("--n-predict")) {
        if (!(v = flag_value(argc, argv, i)) || !cli_parse_long(v, -1, INT_MAX, &l))
            return cli_usage_error(usage,
                                   "%s needs a number of tokens -1..%d (-1 = until the end of "
                                   "text or of the context)",
                                   a, INT_MAX);
        o->n_predict = l;
    } else if (IS("-c") || IS("--ctx-size") || IS("--ctx")) {
        if (!(v = flag_value(argc, argv, i)) || !cli_parse_long(v, 0, 1L << 24, &l))
            return cli_usage_error(usage, "%s needs a context length 0..%ld (0 = the model's)", a,
                                   1L << 24);
        o->n_ctx = l;
        o->ctx_model = l == 0;
    } else if (IS("--temp") || IS("--temperature")) {
        if (!(v = flag_value(argc, argv, i)) || !cli_parse_float(v, 0, 1e6, &d))
            return cli_usage_error(usage, "%s needs a temperature >= 0", a);
        o->sampling.temperature = (float)d;
    } else if (IS("--top-k")) {
        if (!(v = flag_value(argc, argv, i)) || !cli_parse_long(v, 0, INT_MAX, &l))
            return cli_usage_error(usage, "%s needs a count >= 0", a);
        o->sampling.top_k = (int)l;
    } else if (IS("--top-p")) {
        if (!(v = flag_value(argc, argv, i)) || !cli_parse_float(v, 0, 1, &d))
            return cli_usage_error(usage, "%s needs a probability 0..1", a);
        o->sampling.top_p = (float)d;
    } else if (IS("--min-p")) {
        if (!(v = flag_value(argc, argv, i)) || !cli_parse_float(v, 0, 1, &d))
            return cli_usage_error(usage, "%s needs a probability 0..1", a);
        o->sampling.min_p = (float)d;
    } else if (IS("--repeat-penalty")) {
        if (!(v = flag_value(argc, argv, i)) || !cli_parse_float(v, 0, 1e6, &d))
            return cli_usage_error(usage, "%s needs a penalty >= 0", a);
        o->sampling.repeat_penalty = (float)d;
    } else if (IS("-s") || IS("--seed")) {
        if (!(v = flag_value(argc, argv, i)) || !cli_parse_long(v, -1, LONG_MAX, &l))
            return cli_usage_error(usage, "%s needs a seed >= 0, or -1 for a random one", a);
        o->seed_random = l < 0;
        o->sampling.seed = l < 0 ? random_seed() : (uint64_t)l;
    } else if (IS("-r") || IS("--reverse-prompt") || IS("--stop")) {
        if (!(v = flag_value(argc, argv, i)) || !v[0])
            return cli_usage_error(usage, "%s needs a non-empty text", a);
        if (o->n_stop == GEN_MAX_STOP)
            return cli_usage_error(usage, "at most %d stop texts (-r, --stop)", GEN_MAX_STOP);
        o->stop[o->n_stop++] = v;
    } else if (IS("--ignore-eos")) {
        o->ignore_eos = true;
    } else if (IS("-t") || IS("--threads")) {
        if (!(v = flag_value(argc, argv, i)) || !cli_parse_long(v, 1, 1024, &l))
            return cli_usage_error(usage, "%s needs a number of threads 1..1024", a);
        /* read by lavapipe when the device is opened; GPU drivers ignore it */
        char n[16];
        snprintf(n, sizeof n, "%ld", l);
        setenv("LP_NUM_THREADS", n, 1);
    } else if (IS("--device")) {
        if (!(v = flag_value(argc, argv, i))) return cli_usage_error(usage, "%s needs a value", a);
        if (!cli_parse_device(usage, v, &l)) return CLI_USAGE;
        o->device = l;
    } else if (IS("--system") || IS("-sys") || IS("--system-prompt")) {
        if (!(v = flag_value(argc, argv, i))) return cli_usage_error(usage, "%s needs a text", a);
        o->system = v;
    } else if (IS("--chat-template")) {
        if (!(v = flag_value(argc, argv, i)))
            return cli_usage_error(usage, "%s needs a name (deepseek3, deepseek2)", a);
        enum vkm_chat_template t;
        if (vkm_chat_template_from_name(v, &t)) return cli_usage_error(usage, "%s", vkm_errmsg());
        o->chat_template = v;
    } else if (IS("--hide-thinking")) {
        o->hide_thinking = true;
    } else if (IS("--no-bos")) {
        o->no_bos = true;
    } else if (IS("--kv-f32")) {
        o->kv_f32 = true;
    } else if (IS("--profile")) {
        o->profile = true;
    } else if (IS("--stats")) {
        o->stats = true;
    } else if (IS("--vram-budget")) {
        if (!(v = flag_value(argc, argv, i)) || !cli_parse_size(v, &o->vram_budget) ||
            !o->vram_budget)
            return cli_usage_error(usage, "%s needs a size such as 512M or 12G", a);
    } else if (IS("--expert-policy")) {
        if (!(v = flag_value(argc, argv, i)) || (strcmp(v, "lru") && strcmp(v, "lfu")))
            return cli_usage_error(usage, "%s needs lru or lfu", a);
        o->expert_policy = !strcmp(v, "lfu") ? VKM_EXPERT_LFU : VKM_EXPERT_LRU;
    } else if (IS("--prefetch")) {
        if (!(v = flag_value(argc, argv, i)) || (strcmp(v, "on") && strcmp(v, "off")))
            return cli_usage_error(usage, "%s needs on or off", a);
        o->prefetch = !strcmp(v, "on") ? VKM_PREFETCH_ON : VKM_PREFETCH_OFF;
    } else if (IS("--quiet")) {
        o->quiet = true;
    } else {
        return gen_parse_exec_flag(&o->exec, argc, argv, i, usage);
    }
#undef IS
    return CLI_OK;
}

int gen_read_file(const char *path, char **out, size_t *len) {
    FILE *f = strcmp(path, "-") ? fopen(path, "rb") : stdin;
    if (!f) return cli_fail("%s: %s", path, strerror(errno));
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        n += fread(buf + n, 1, cap - 1 - n, f);
        if (n < cap - 1) break;
        char *b = cap <= SIZE_MAX / 2 ? realloc(buf, cap * 2) : NULL;
        if (!b) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = b;
        cap *= 2;
    }
    int rc = CLI_OK;
    if (!buf)
        rc = cli_fail("%s: out of memory", path);
    else if (ferror(f))
        rc = cli_fail("%s: read error", path);
    if (f != stdin) fclose(f);
    if (rc) {
        free(buf);
        return rc;
    }
    buf[n] = 0;
    *out = buf;
    *len = n;
    return CLI_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* open / close                                                                                 */

/* A file that cannot be run fails here, before its vocabulary or chat template is looked at: a
 * vocabulary-only file, another architecture. */
static int check_weights(const vkm_gguf *gg, const char *path) {
    const char *arch = NULL;
    if (vkm_gguf_get_str(gg, "general.architecture", &arch, NULL)) arch = NULL;
    if (vkm_gguf_n_tensors(gg) == 0)
        return cli_fail("%s: no deepseek2 weights: the file holds no tensors (a vocabulary only? "
                        "`vkmoe tokenize` reads it)",
                        path);
    if (!arch || strcmp(arch, "deepseek2"))
        return cli_fail("%s: no deepseek2 weights: general.architecture is %s%s%s, vkmoe runs "
                        "deepseek2 models (DeepSeek-V2, V2.5, V3, R1)",
                        path, arch ? "\"" : "", arch ? arch : "missing", arch ? "\"" : "");
    return CLI_OK;
}

static bool vocab_has(void *user, const char *text) {
    return vkm_tok_find(user, text, strlen(text)) >= 0;
}

/* --chat-template, else tokenizer.chat_template, else the vocabulary's special tokens (said on
 * stderr). */
static int choose_template(gen_ctx *g, const gen_opts *o) {
    const char *text = vkm_tok_chat_template(g->tok);
    if (o->chat_template || text) {
        if (vkm_chat_template_select(o->chat_template, text, &g->tmpl)) return cli_fail_last();
        return CLI_OK;
    }
    const char *why = "";
    if (vkm_chat_template_infer(vocab_has, g->tok, &g->tmpl, &why)) return cli_fail_last();
    if (!o->quiet)
        fprintf(stderr,
                "vkmoe: the model has no tokenizer.chat_template; using %s, inferred from the "
                "vocabulary's %s tokens (--chat-template to choose)\n",
                vkm_chat_template_name(g->tmpl), why);
    return CLI_OK;
}

int gen_open(gen_ctx *g, const gen_opts *o, bool want_template) {
    memset(g, 0, sizeof *g);
    g->opts = o;
    g->think_open = g->think_close = -1;
    const double t0 = now_s();

    vkm_gguf *gg = NULL;
    if (vkm_gguf_open(o->model, &gg)) return cli_fail_last();
    int rc = check_weights(gg, o->model);
    if (!rc && vkm_tok_load(gg, &g->tok)) rc = cli_fail_last();
    vkm_gguf_close(gg);
    if (rc) return rc;
    if (want_template && (rc = choose_template(g, o))) return rc;

    vkm_engine_opts eo = {.model_path = o->model,
                          .device = (int)o->device,
                          .profile = o->profile,
                          .quiet = o->quiet,
                          .vram_budget = o->vram_budget,
                          .expert_policy = o->expert_policy,
                          .prefetch = o->prefetch,
                          .n_ctx = (int)o->n_ctx, /* serve: all its slots' contexts */
                          .kv_f32 = o->kv_f32};
    gen_exec_apply(&o->exec, &eo);
    if (vkm_kernels_env(&eo.kernels) || vkm_engine_open(&eo, &g->engine)) return cli_fail_last();
    vkm_engine_info info;
    vkm_engine_get_info(g->engine, &info);
    g->n_vocab = info.n_vocab;
    if (g->n_vocab <= 0 || g->n_vocab > vkm_tok_n_vocab(g->tok))
        return cli_fail("%s: the model has %d logits but the tokenizer %d tokens", o->model,
                        g->n_vocab, (int)vkm_tok_n_vocab(g->tok));

    int n_ctx = (int)o->n_ctx;
    if (o->ctx_model) n_ctx = info.n_ctx_train < (1 << 24) ? info.n_ctx_train : 1 << 24;
    if (o->n_seq > 1) { /* -c is the total: each sequence gets its share */
        if (!n_ctx) n_ctx = info.n_ctx_train < 4096 ? info.n_ctx_train : 4096;
        if (n_ctx / o->n_seq < 1)
            return cli_fail("a context of %d tokens cannot be shared by %d sequences (raise -c)",
                            n_ctx, o->n_seq);
        n_ctx /= o->n_seq;
    }
    vkm_session_opts so = {.n_ctx = n_ctx, .kv_f32 = o->kv_f32};
    /* several sequences (serve's slots): their caches in one pool, so that a step's attention is
     * one dispatch per layer for all of them on GPUs */
    if (o->n_seq > 1 && vkm_kv_pool_create(g->engine, o->n_seq, &so, &g->kv_pool))
        return cli_fail_last();
    so.kv_pool = g->kv_pool;
    if (gen_seq_open(&g->seq, g, &so, &o->sampling)) return CLI_ERROR;
    g->n_ctx = g->seq.n_ctx;

    if (o->ignore_eos) {
        if (!(g->eog = malloc((size_t)g->n_vocab * sizeof *g->eog)))
            return cli_fail("out of memory");
        for (int32_t id = 0; id < g->n_vocab; id++)
            if (vkm_tok_is_eog(g->tok, id)) g->eog[g->n_eog++] = id;
    }
    g->think_open = vkm_tok_find(g->tok, THINK_OPEN, sizeof THINK_OPEN - 1);
    g->think_close = vkm_tok_find(g->tok, THINK_CLOSE, sizeof THINK_CLOSE - 1);
    g->t_load = now_s() - t0;
    if (!o->quiet) {
        fprintf(stderr, "vkmoe: %s on %s, context %d", info.model_desc, info.device_name, g->n_ctx);
        if (want_template) fprintf(stderr, ", chat template %s", vkm_chat_template_name(g->tmpl));
        fprintf(stderr, ", loaded in %.2f s\n", g->t_load);
    }
    if (o->seed_random && !o->quiet)
        fprintf(stderr, "vkmoe: seed %llu (random; --seed %llu repeats this run)\n",
                (unsigned long long)o->sampling.seed, (unsigned long long)o->sampling.seed);
    return CLI_OK;
}

void gen_close(gen_ctx *g) {
    gen_seq_close(&g->seq);
    vkm_kv_pool_destroy(g->kv_pool); /* after every session of it (gen_batch_free's first) */
    vkm_engine_close(g->engine);
    vkm_tok_free(g->tok);
    free(g->eog);
    memset(g, 0, sizeof *g);
}

int gen_reset(gen_ctx *g) {
    if (vkm_session_truncate(g->seq.session, 0)) return cli_fail_last();
    g->seq.n_cache = 0;
    g->seq.have_logits = false;
    return gen_seq_set_sampler(&g->seq, &g->opts->sampling);
}

/* ------------------------------------------------------------------------------------------ */
/* prompt and generation                                                                        */

int gen_tokenize(gen_ctx *g, const char *text, size_t len, int32_t **ids, int *n) {
    size_t cnt = 0;
    *ids = NULL;
    *n = 0;
    if (vkm_tok_encode(g->tok, text, len, !g->opts->no_bos, true, ids, &cnt))
        return cli_fail_last();
    if (cnt > INT_MAX) {
        free(*ids);
        *ids = NULL;
        return cli_fail("the prompt has too many tokens");
    }
    *n = (int)cnt;
    return CLI_OK;
}

/* The warm-up's progress line (stderr, a terminal): shown once it has taken a moment. */
typedef struct warmup_view {
    double t0, last;
    bool show, shown;
} warmup_view;

static bool warmup_progress(void *user, int stage, int done, int total) {
    warmup_view *v = user;
    if (v->show && !gen_interrupted) {
        const double t = now_s();
        if (t - v->t0 >= 0.3 && (t - v->last >= 0.1 || done == total)) {
            fprintf(stderr, "\rvkmoe: warm-up: %d/%d pipelines %s, %.0f s\x1b[K", done, total,
                    stage == VKM_WARMUP_BUILD ? "built" : "compiled", t - v->t0);
            v->last = t;
            v->shown = true;
        }
    }
    return gen_interrupted != 0;
}

int gen_prefill(gen_ctx *g, const int32_t *ids, int n) {
    gen_seq *q = &g->seq;
    if (n <= 0) return cli_fail("the prompt is empty (no tokens to evaluate)");
    if (n > g->n_ctx)
        return cli_fail("the prompt is %d tokens, longer than the context of %d tokens "
                        "(raise it with -c)",
                        n, g->n_ctx);
    int common = gen_seq_common(q, ids, n);
    if (common == n && n == q->n_cache && q->have_logits) return CLI_OK;
    if (common == n) common = n - 1; /* evaluate the last token again for its logits */
    if (gen_seq_truncate(q, common)) return CLI_ERROR;
    q->have_logits = false;
    /* the kernels of this prompt and of decoding, all built now (several at once) rather than
     * one by one inside the timed evaluations; progress on a terminal, Ctrl-C stops it */
    warmup_view wv = {.t0 = now_s(), .show = !g->opts->quiet && isatty(STDERR_FILENO)};
    in_warmup = 1;
    int wrc = gen_interrupted
                  ? VKM_EINTR
                  : vkm_session_warmup_progress(q->session, n - common, warmup_progress, &wv);
    in_warmup = 0;
    alarm(0); /* the backstop of a Ctrl-C in the warm-up: it stopped in time */
    if (wv.shown) fputs("\r\x1b[K", stderr);
    g->t_warmup += now_s() - wv.t0;
    if (wrc == VKM_EINTR && gen_interrupted) return CLI_OK; /* no logits: interrupted */
    if (wrc) return cli_fail_last();
    double t0;
    /* the chunks vkm_session_eval would make, one call each: progress and Ctrl-C in between */
    const int step = vkm_session_max_batch(q->session), total = n - common;
    const bool show = !g->opts->quiet && total > step && isatty(STDERR_FILENO);
    int rc = 0;
    t0 = now_s();
    while (q->n_cache < n) {
        const int at = q->n_cache, c = n - at < step ? n - at : step;
        if (gen_interrupted) break;
        rc = vkm_session_eval(q->session, ids + at, c, false, at + c == n ? q->logits : NULL);
        if (rc) break;
        gen_seq_push(q, ids + at, c, at + c == n);
        for (int i = at; i < at + c; i++) vkm_sampler_accept(q->sampler, ids[i]);
        g->n_prompt += c;
        if (show) fprintf(stderr, "\rvkmoe: prompt %d/%d tokens", q->n_cache - common, total);
    }
    g->t_prompt += now_s() - t0;
    if (show) fputs("\r\x1b[K", stderr);
    if (rc) return cli_fail_last(); /* the session holds the chunks done: so does the mirror */
    return CLI_OK;
}

int gen_generate(gen_ctx *g, long n_predict, gen_text_fn fn, void *user, enum gen_stop *why) {
    gen_seq *q = &g->seq;
    *why = GEN_STOP_LIMIT;
    if (n_predict == 0) return CLI_OK;
    if (!q->have_logits) return cli_fail("internal: generation without a prefill");
    if (gen_seq_begin(q, g, n_predict, g->opts->stop, g->opts->n_stop, fn, user)) return CLI_ERROR;
    const double t0 = now_s();
    int rc = CLI_OK;
    for (;;) {
        if (gen_interrupted) {
            *why = GEN_STOP_INTR;
            break;
        }
        int32_t id;
        const int more = gen_seq_next(q, g, &id, why);
        if (more <= 0) {
            rc = more < 0 ? CLI_ERROR : CLI_OK;
            break;
        }
        if (gen_interrupted) {
            *why = GEN_STOP_INTR;
            break;
        }
        q->have_logits = false;
        if (vkm_session_eval(q->session, &id, 1, false, q->logits)) {
            fflush(stdout); /* start the message on its own line after streamed text */
            if (isatty(STDOUT_FILENO) && isatty(STDERR_FILENO)) fputc('\n', stderr);
            rc = cli_fail_last();
            break;
        }
        gen_seq_push(q, &id, 1, true);
    }
    g->n_gen += q->n_out;
    gen_seq_end(q);
    g->t_gen += now_s() - t0;
    if (*why == GEN_STOP_CTX) {
        fflush(stdout);
        fprintf(stderr,
                "\nvkmoe: the context is full (%d tokens); generation stopped "
                "(raise it with -c)\n",
                g->n_ctx);
    }
    return rc;
}

void gen_print_timings(gen_ctx *g) {
    fflush(stdout);
    if (!g->opts->quiet) {
        fprintf(stderr, "vkmoe: load      %8.2f s\n", g->t_load);
        fprintf(stderr,
                "vkmoe: warm-up   %8.2f s  (device pipelines for the prompt and decoding)\n",
                g->t_warmup);
        fprintf(stderr, "vkmoe: prompt    %8.2f s  %6ld tokens  %9.2f tokens/s\n", g->t_prompt,
                g->n_prompt, g->t_prompt > 0 ? (double)g->n_prompt / g->t_prompt : 0.0);
        fprintf(stderr, "vkmoe: generate  %8.2f s  %6ld tokens  %9.2f tokens/s\n", g->t_gen,
                g->n_gen, g->t_gen > 0 ? (double)g->n_gen / g->t_gen : 0.0);
    }
    if (g->opts->profile && g->engine) {
        vkm_engine_profile_print(g->engine, stderr);
        vkm_dispatch_stats ds = {0};
        if (g->seq.session) vkm_session_dispatch_stats(g->seq.session, &ds);
        if (ds.decode_steps)
            fprintf(stderr,
                    "dispatches per decode step: %.1f, host waits per decode step: %.1f "
                    "(%llu steps)\n",
                    (double)ds.decode_dispatches / (double)ds.decode_steps,
                    (double)ds.decode_waits / (double)ds.decode_steps,
                    (unsigned long long)ds.decode_steps);
        if (ds.decode_steps && ds.decode_gpu_ns) {
            const double steps = (double)ds.decode_steps, wall = ds.decode_wall_ns / steps / 1e6,
                         gpu = ds.decode_gpu_ns / steps / 1e6;
            fprintf(stderr,
                    "decode step: %.3f ms wall, %.3f ms GPU (timestamps), %.3f ms on the host "
                    "(recording, submit, wait, copies)\n",
                    wall, gpu, wall - gpu);
        }
    }
    if (g->opts->stats && g->engine) {
        vkm_expert_stats st;
        char line[256];
        vkm_engine_expert_stats(g->engine, &st);
        vkm_expert_stats_line(&st, line, sizeof line);
        fprintf(stderr, "%s\n", line);
    }
}

/* ------------------------------------------------------------------------------------------ */
/* SIGINT                                                                                       */

static void on_sigint(int sig) {
    (void)sig;
    if (gen_at_prompt || gen_interrupted) {
        if (write(STDERR_FILENO, "\n", 1) < 0) {
            /* nothing to do: exiting anyway */
        }
        _exit(130);
    }
    gen_interrupted = 1;
    /* the warm-up stops after the pipeline being compiled; should a driver take longer than a
     * second over it, the process exits then */
    if (in_warmup && backstop) alarm(1);
}

static void on_sigalrm(int sig) {
    (void)sig;
    static const char msg[] = "\nvkmoe: interrupted (during the warm-up)\n";
    if (write(STDERR_FILENO, msg, sizeof msg - 1) < 0) {
        /* nothing to do: exiting anyway */
    }
    _exit(130);
}

void gen_sigint_install(bool warmup_backstop) {
    backstop = warmup_backstop;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;
    sigaction(SIGINT, &sa, NULL);
    sa.sa_handler = on_sigalrm;
    sigaction(SIGALRM, &sa, NULL);
}

/* ------------------------------------------------------------------------------------------ */
/* display                                                                                      */

static const char DIM[] = "\x1b[2m";
static const char UNDIM[] = "\x1b[0m";

/* Length of the printable UTF-8 character at s[0..n): 1..4, or 0 for a byte that is not one
 * (a control byte other than newline and tab, DEL, a C1 control, an invalid or overlong
 * sequence, a surrogate). */
static size_t printable_len(const unsigned char *s, size_t n) {
    const unsigned c = s[0];
    if (c < 0x80) return c == '\n' || c == '\t' || (c >= 0x20 && c != 0x7f) ? 1 : 0;
    size_t len;
    uint32_t cp, min;
    if ((c & 0xe0) == 0xc0)
        len = 2, cp = c & 0x1f, min = 0x80;
    else if ((c & 0xf0) == 0xe0)
        len = 3, cp = c & 0x0f, min = 0x800;
    else if ((c & 0xf8) == 0xf0)
        len = 4, cp = c & 0x07, min = 0x10000;
    else
        return 0;
    if (len > n) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80) return 0;
        cp = cp << 6 | (s[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff) || (cp >= 0x80 && cp < 0xa0))
        return 0;
    return len;
}

/* On a terminal, bytes that are not printable UTF-8 (ESC, DEL, other control bytes, invalid
 * sequences: a noise model emits them) are shown as \xNN, so the model cannot drive the
 * terminal; elsewhere the text is written as it is. */
static void out_write(gen_display *d, const char *s, size_t n) {
    if (!n) return;
    if (!d->tty) {
        fwrite(s, 1, n, d->out);
    } else {
        const unsigned char *u = (const unsigned char *)s;
        for (size_t i = 0; i < n;) {
            size_t run = 0, l;
            while (i + run < n && (l = printable_len(u + i + run, n - i - run)) > 0) run += l;
            if (run) fwrite(s + i, 1, run, d->out);
            i += run;
            if (i < n) fprintf(d->out, "\\x%02x", u[i++]);
        }
    }
    d->last_nl = s[n - 1] == '\n';
    d->wrote = true;
}

/* Ends a reasoning block: a line end, then a blank line (terminal) or "[/thinking]". */
static void close_reasoning(gen_display *d, bool at_end) {
    if (!d->reasoning_open) return;
    d->reasoning_open = false;
    if (!d->last_nl) out_write(d, "\n", 1);
    if (!d->tty)
        out_write(d, "[/thinking]\n", 12);
    else if (!at_end)
        out_write(d, "\n", 1);
}

static void on_think_run(void *user, bool reasoning, const char *text, size_t len) {
    gen_display *d = user;
    if (reasoning) {
        if (d->hide) return;
        if (!d->reasoning_open) {
            d->reasoning_open = true;
            if (!d->tty) out_write(d, "[thinking]\n", 11);
        }
        if (d->tty) fputs(DIM, d->out);
        out_write(d, text, len);
        if (d->tty) fputs(UNDIM, d->out);
    } else {
        close_reasoning(d, false);
        out_write(d, text, len);
    }
}

void gen_display_init(gen_display *d, FILE *out, bool chat, bool hide_thinking) {
    memset(d, 0, sizeof *d);
    d->out = out;
    d->chat = chat;
    d->hide = hide_thinking;
    d->tty = isatty(fileno(out));
    d->last_nl = true;
    vkm_chat_think_init(&d->think, false);
}

void gen_display_text(void *user, const char *text, size_t len) {
    gen_display *d = user;
    if (d->chat)
        vkm_chat_think_feed(&d->think, text, len, on_think_run, d);
    else
        out_write(d, text, len);
    fflush(d->out);
}

bool gen_same_stream(void) {
    struct stat a, b;
    if (fstat(STDOUT_FILENO, &a) || fstat(STDERR_FILENO, &b)) return false;
    if (a.st_dev == b.st_dev && a.st_ino == b.st_ino) return true;
    return isatty(STDOUT_FILENO) && isatty(STDERR_FILENO); /* two names of one terminal */
}

void gen_display_end(gen_display *d, bool newline) {
    if (d->chat) {
        vkm_chat_think_flush(&d->think, on_think_run, d);
        close_reasoning(d, true);
        vkm_chat_think_init(&d->think, false);
    }
    if (newline && !d->last_nl) out_write(d, "\n", 1);
    fflush(d->out);
}
