/* cmd_logits.c - `vkmoe logits`: runs token ids through the model on the GPU and writes the
 * logits of every position as little-endian float32, n_tokens x n_vocab, position-major (the
 * layout of the llama.cpp fixtures), for comparisons against other implementations.
 *
 * Without --step the whole prompt is one batch; with --step the tokens go one at a time through
 * the KV cache (the decode path). --vram-budget / --expert-policy set the expert paging of the
 * engine, --stats prints its counters. Exit codes: 0, 1 (runtime: model, device, token out of
 * range, output file), 2 (usage, including a token that is not a number). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "err.h"
#include "gen.h"
#include "vkmoe.h"

static const char *const USAGE =
    "vkmoe logits -m MODEL.gguf (--tokens \"ID ID ...\" | --tokens-file FILE) -o OUT.f32 "
    "[--step] [--device N] [--kv-f32] [-c N] [--profile] [--vram-budget SIZE] "
    "[--expert-policy lru|lfu] [--prefetch on|off] [--stats] "
    "[--expert-exec auto|gpu|cpu|upload] [--cpu-moe] [--n-cpu-moe N] [--cpu-threads N]";

static void print_help(void) {
    printf("usage: %s\n\n"
           "Evaluates token ids on the GPU and writes the logits of every position to OUT.f32:\n"
           "n_tokens x n_vocab little-endian float32, one row per position.\n\n"
           "  -m, --model FILE      the GGUF model (first part of a split model)\n"
           "  --tokens \"ID ...\"     whitespace-separated token ids\n"
           "  --tokens-file FILE    a file of whitespace-separated token ids\n"
           "  -o, --output FILE     where the logits go (- = stdout, when it is not a terminal)\n"
           "  --step                one token at a time through the KV cache (default: one batch)\n"
           "  --device N            Vulkan device index (see `vkmoe devices`)\n"
           "  --kv-f32              F32 KV cache instead of the default F16\n"
           "  -c, --ctx-size N      KV cache length in tokens (default: the model's training\n"
           "                        context, at most 4096; 0 = the model's, whatever its\n"
           "                        length; also --ctx)\n"
           "  --profile             print per-kernel GPU times to stderr\n"
           "  --vram-budget SIZE    device bytes for weights + expert cache (K/M/G suffix);\n"
           "                        experts beyond it are paged from host memory (default: auto)\n"
           "  --expert-policy P     eviction of paged experts: lfu (default) or lru\n"
           "  --prefetch on|off     speculative expert prefetch while paging (default: on with\n"
           "                        a dedicated transfer queue)\n"
           "  --stats               print the expert cache counters to stderr (one line)\n"
           "  -h, --help            this help\n",
           USAGE);
    gen_print_exec_help(stdout);
}

/* Parses whitespace-separated ids from text into a growing array. CLI_USAGE on a bad id. */
static int parse_ids(const char *text, int32_t **ids, int *n, int *cap) {
    const char *p = text;
    for (;;) {
        while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') p++;
        if (!*p) return CLI_OK;
        const char *q = p;
        while (*q && *q != ' ' && *q != '\t' && *q != '\n' && *q != '\r') q++;
        char word[32];
        long v;
        if ((size_t)(q - p) >= sizeof word)
            return cli_usage_error(USAGE, "bad token id '%.*s'", (int)(q - p > 40 ? 40 : q - p), p);
        memcpy(word, p, (size_t)(q - p));
        word[q - p] = 0;
        if (!cli_parse_long(word, INT32_MIN, INT32_MAX, &v))
            return cli_usage_error(USAGE, "bad token id '%s'", word);
        if (*n == *cap) {
            int nc = *cap ? *cap * 2 : 64;
            int32_t *g = realloc(*ids, (size_t)nc * sizeof *g);
            if (!g) return cli_fail("out of memory");
            *ids = g;
            *cap = nc;
        }
        (*ids)[(*n)++] = (int32_t)v;
        p = q;
    }
}

/* Reads a whole text file (NUL-terminated) into *out. */
static int read_text(const char *path, char **out) {
    FILE *fp = fopen(path, "rb");
    if (!fp) return cli_fail("cannot open tokens file '%s'", path);
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (!buf) break;
        if (n + 1 >= cap) {
            char *g = cap > ((size_t)1 << 30) ? NULL : realloc(buf, cap * 2);
            if (!g) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = g;
            cap *= 2;
        }
        size_t got = fread(buf + n, 1, cap - 1 - n, fp);
        n += got;
        if (got == 0) break;
    }
    int bad = ferror(fp);
    fclose(fp);
    if (!buf) return cli_fail("tokens file '%s' is too large", path);
    if (bad) {
        free(buf);
        return cli_fail("cannot read tokens file '%s'", path);
    }
    buf[n] = 0;
    *out = buf;
    return CLI_OK;
}

static int write_logits(const char *path, const float *logits, size_t count) {
    const bool to_stdout = !strcmp(path, "-");
    FILE *fp = to_stdout ? stdout : fopen(path, "wb");
    if (!fp) return cli_fail("cannot create '%s'", path);
    size_t put = fwrite(logits, sizeof *logits, count, fp);
    if ((to_stdout ? fflush(fp) : fclose(fp)) != 0 || put != count)
        return cli_fail("cannot write '%s'", to_stdout ? "stdout" : path);
    return CLI_OK;
}

int cmd_logits(int argc, char **argv) {
    const char *model = NULL, *tokens = NULL, *tokens_file = NULL, *out = NULL;
    bool step = false, kv_f32 = false, profile = false, stats = false, ctx_model = false;
    long device = -1, ctx = 0;
    uint64_t budget = 0;
    int policy = VKM_EXPERT_POLICY_DEFAULT, prefetch = VKM_PREFETCH_AUTO;
    gen_exec exec = {0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool has_val = i + 1 < argc;
        const int xr = gen_parse_exec_flag(&exec, argc, argv, &i, USAGE);
        if (xr == CLI_OK) continue;
        if (xr != GEN_NOT_MINE) return xr;
        if (cli_is_help(a)) {
            print_help();
            return CLI_OK;
        } else if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
            if (!has_val) return cli_usage_error(USAGE, "%s needs a file", a);
            model = argv[++i];
        } else if (!strcmp(a, "--tokens")) {
            if (!has_val) return cli_usage_error(USAGE, "%s needs token ids", a);
            tokens = argv[++i];
        } else if (!strcmp(a, "--tokens-file")) {
            if (!has_val) return cli_usage_error(USAGE, "%s needs a file", a);
            tokens_file = argv[++i];
        } else if (!strcmp(a, "-o") || !strcmp(a, "--output")) {
            if (!has_val) return cli_usage_error(USAGE, "%s needs a file", a);
            out = argv[++i];
        } else if (!strcmp(a, "--device")) {
            if (!has_val) return cli_usage_error(USAGE, "%s needs a device index", a);
            if (!cli_parse_device(USAGE, argv[i + 1], &device)) return CLI_USAGE;
            i++;
        } else if (!strcmp(a, "-c") || !strcmp(a, "--ctx-size") || !strcmp(a, "--ctx")) {
            if (!has_val || !cli_parse_long(argv[i + 1], 0, 1 << 24, &ctx))
                return cli_usage_error(USAGE, "%s needs a context length 0..%d (0 = the model's)",
                                       a, 1 << 24);
            ctx_model = ctx == 0;
            i++;
        } else if (!strcmp(a, "--vram-budget")) {
            if (!has_val || !cli_parse_size(argv[i + 1], &budget) || budget == 0)
                return cli_usage_error(USAGE, "%s needs a size such as 512M or 12G", a);
            i++;
        } else if (!strcmp(a, "--expert-policy")) {
            if (!has_val || (strcmp(argv[i + 1], "lru") && strcmp(argv[i + 1], "lfu")))
                return cli_usage_error(USAGE, "%s needs lru or lfu", a);
            policy = !strcmp(argv[++i], "lfu") ? VKM_EXPERT_LFU : VKM_EXPERT_LRU;
        } else if (!strcmp(a, "--prefetch")) {
            if (!has_val || (strcmp(argv[i + 1], "on") && strcmp(argv[i + 1], "off")))
                return cli_usage_error(USAGE, "%s needs on or off", a);
            prefetch = !strcmp(argv[++i], "on") ? VKM_PREFETCH_ON : VKM_PREFETCH_OFF;
        } else if (!strcmp(a, "--stats")) {
            stats = true;
        } else if (!strcmp(a, "--step")) {
            step = true;
        } else if (!strcmp(a, "--kv-f32")) {
            kv_f32 = true;
        } else if (!strcmp(a, "--profile")) {
            profile = true;
        } else if (a[0] == '-') {
            return cli_usage_error(USAGE, "unknown option '%s'", a);
        } else {
            return cli_usage_error(USAGE, "unexpected argument '%s'", a);
        }
    }
    if (!model) return cli_usage_error(USAGE, "missing -m MODEL.gguf");
    if (!out) return cli_usage_error(USAGE, "missing -o OUT.f32");
    if (!tokens == !tokens_file)
        return cli_usage_error(USAGE, "give exactly one of --tokens and --tokens-file");
    if (!strcmp(out, "-") && isatty(STDOUT_FILENO))
        return cli_usage_error(USAGE, "-o -: stdout is a terminal; the logits are binary "
                                      "(redirect them, or give a file)");
    if (cli_check_output("logits", "-o", out)) return CLI_ERROR;

    int32_t *ids = NULL;
    int n = 0, cap = 0, rc;
    if (tokens) {
        rc = parse_ids(tokens, &ids, &n, &cap);
    } else {
        char *text = NULL;
        rc = read_text(tokens_file, &text);
        if (rc == CLI_OK) rc = parse_ids(text, &ids, &n, &cap);
        free(text);
    }
    if (rc == CLI_OK && n == 0) rc = cli_usage_error(USAGE, "no token ids given");
    if (rc != CLI_OK) {
        free(ids);
        return rc;
    }

    vkm_engine *e = NULL;
    vkm_session *s = NULL;
    float *logits = NULL;
    vkm_engine_opts eo = {.model_path = model,
                          .device = (int)device,
                          .profile = profile,
                          .vram_budget = budget,
                          .expert_policy = policy,
                          .prefetch = prefetch};
    gen_exec_apply(&exec, &eo);
    /* the automatic budget leaves room for this session (-c 0: the model's context, below) */
    eo.n_ctx = ctx_model ? 0 : (int)ctx;
    eo.kv_f32 = kv_f32;
    eo.max_batch = step ? 1 : (n < 65536 ? n : 65536);
    vkm_engine_info info;
    if (vkm_kernels_env(&eo.kernels) || vkm_engine_open(&eo, &e)) {
        rc = cli_fail_last();
        goto done;
    }
    vkm_engine_get_info(e, &info);
    if (ctx_model) ctx = info.n_ctx_train < (1 << 24) ? info.n_ctx_train : 1 << 24;
    vkm_session_opts so = {
        .n_ctx = (int)ctx, .kv_f32 = kv_f32, .max_batch = step ? 1 : (n < 65536 ? n : 65536)};
    if (vkm_session_create(e, &so, &s)) {
        rc = cli_fail_last();
        goto done;
    }
    const size_t V = (size_t)info.n_vocab;
    for (int i = 0; i < n; i++) /* named by its place in the input, also with --step */
        if (ids[i] < 0 || (size_t)ids[i] >= V) {
            rc = cli_fail("token %d = %d is outside the vocabulary (ids 0..%zu)", i, ids[i], V - 1);
            goto done;
        }
    if (!(logits = malloc((size_t)n * V * sizeof *logits))) {
        rc = cli_fail("out of memory for %d x %zu logits", n, V);
        goto done;
    }
    if (step) {
        for (int i = 0; i < n && rc == CLI_OK; i++)
            if (vkm_session_eval(s, ids + i, 1, false, logits + (size_t)i * V))
                rc = cli_fail_last();
    } else if (vkm_session_eval(s, ids, n, true, logits)) {
        rc = cli_fail_last();
    }
    if (rc == CLI_OK) rc = write_logits(out, logits, (size_t)n * V);
    if (rc == CLI_OK && profile) vkm_engine_profile_print(e, stderr);
    if (rc == CLI_OK && stats) {
        vkm_expert_stats st;
        char line[256];
        vkm_engine_expert_stats(e, &st);
        vkm_expert_stats_line(&st, line, sizeof line);
        fprintf(stderr, "%s\n", line);
    }
done:
    free(logits);
    vkm_session_destroy(s);
    vkm_engine_close(e);
    free(ids);
    return rc;
}
