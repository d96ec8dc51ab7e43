/* cmd_bench_model.c - `vkmoe bench -m MODEL`: llama-bench style prefill and decode speed
 * through the public API (core/vkmoe.h) only; the GGUF reader is used just to describe the file.
 *
 * Tests, for each depth D of the -d list, each from a KV cache holding D tokens (default 0:
 * empty; they are evaluated once, untimed, and vkm_session_truncate(s, D) restores them before
 * every repetition, as cache rows below n_past are never touched):
 *   ppN      one vkm_session_eval of N tokens (last-token logits read back), per -p value
 *   tgN      N evals of one token each (logits read back after each), per -n value
 *   ppP+tgN  one eval of P tokens then N single-token evals, t/s over all P + N (-pg P,N)
 * named "ppN @ dD" etc. with a depth (llama-bench's names). Token ids are pseudo-random
 * in [0, n_vocab) with a fixed seed. One untimed warm-up (vkm_session_warmup for every prompt
 * size's pipelines, then an eval of each size and a single-token eval) comes first. Times are wall
 * clock around the evals, which include the logits download. t/s per repetition, reported as mean
 * and sample stddev.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cmd_bench.h"
#include "err.h"
#include "gguf.h"
#include "qtype.h"
#include "vkmoe.h"

#define MAX_BATCH 512 /* largest eval batch asked of the session */

/* Adds "model" {path, size_bytes, weight_bytes, params, type, n_tensors} from the GGUF file;
 * type = the tensor type holding the most bytes. */
static int describe_model(const char *path, cJSON *jmodel, char *type_out, size_t type_n,
                          uint64_t *size_out) {
    vkm_gguf *g = NULL;
    int rc = vkm_gguf_open(path, &g);
    if (rc) return rc;
    uint64_t by_type[VKM_QTYPE_COUNT] = {0}, weight_bytes = 0;
    double params = 0;
    int64_t n = vkm_gguf_n_tensors(g);
    for (int64_t i = 0; i < n; i++) {
        const vkm_gguf_tensor *t = vkm_gguf_tensor_at(g, i);
        if (t->type < VKM_QTYPE_COUNT) by_type[t->type] += t->nbytes;
        weight_bytes += t->nbytes;
        params += (double)t->ne[0] * (double)t->ne[1] * (double)t->ne[2] * (double)t->ne[3];
    }
    uint32_t best = 0;
    for (uint32_t ty = 0; ty < VKM_QTYPE_COUNT; ty++)
        if (by_type[ty] > by_type[best]) best = ty;
    snprintf(type_out, type_n, "%s", vkm_qtype_name(best));
    *size_out = vkm_gguf_total_bytes(g);
    bool ok = cJSON_AddStringToObject(jmodel, "path", path) &&
              cJSON_AddNumberToObject(jmodel, "size_bytes", (double)*size_out) &&
              cJSON_AddNumberToObject(jmodel, "weight_bytes", (double)weight_bytes) &&
              cJSON_AddNumberToObject(jmodel, "params", params) &&
              cJSON_AddStringToObject(jmodel, "type", type_out) &&
              cJSON_AddNumberToObject(jmodel, "n_tensors", (double)n);
    vkm_gguf_close(g);
    return ok ? VKM_OK : vkm_error(VKM_ENOMEM, "out of memory");
}

typedef struct test_result {
    char name[40];
    int n_tokens, n_depth, n_gen; /* n_gen: the tg part of a ppP+tgN test */
    double mean, sd;
    int reps;
} test_result;

enum test_kind { TEST_PP, TEST_TG, TEST_PG };

/* Runs one test `reps` times from the `depth` tokens in the cache: ppN = one eval of n tokens,
 * tgN = n evals of one token, ppP+tgN = one eval of n tokens then n_gen evals of one; t/s =
 * all its tokens / time. */
static int run_test(vkm_session *s, const int32_t *tok, enum test_kind kind, int n, int n_gen,
                    int depth, int reps, bool quiet, float *logits, test_result *r) {
    char base[32];
    if (kind == TEST_PG)
        snprintf(base, sizeof base, "pp%d+tg%d", n, n_gen);
    else
        snprintf(base, sizeof base, "%s%d", kind == TEST_TG ? "tg" : "pp", n);
    if (depth)
        snprintf(r->name, sizeof r->name, "%s @ d%d", base, depth);
    else
        snprintf(r->name, sizeof r->name, "%s", base);
    const int total = kind == TEST_PG ? n + n_gen : n;
    r->n_tokens = n;
    r->n_gen = kind == TEST_PG ? n_gen : 0;
    r->n_depth = depth;
    r->reps = reps;
    double *ts = malloc((size_t)reps * sizeof *ts);
    if (!ts) return vkm_error(VKM_ENOMEM, "out of memory");
    int rc = VKM_OK;
    for (int k = 0; !rc && k < reps; k++) {
        rc = vkm_session_truncate(s, depth);
        double t0 = bench_now_s();
        if (kind == TEST_TG)
            for (int i = 0; !rc && i < n; i++) rc = vkm_session_eval(s, &tok[i], 1, false, logits);
        else if (!rc)
            rc = vkm_session_eval(s, tok, n, false, logits);
        if (kind == TEST_PG)
            for (int i = 0; !rc && i < n_gen; i++)
                rc = vkm_session_eval(s, &tok[n + i], 1, false, logits);
        double dt = bench_now_s() - t0;
        if (rc) break;
        ts[k] = dt > 0 ? total / dt : 0;
        if (!quiet) {
            fprintf(stderr, "bench: %s rep %d/%d: %.2f t/s\n", r->name, k + 1, reps, ts[k]);
            fflush(stderr);
        }
    }
    if (!rc) {
        double sum = 0, sq = 0;
        for (int k = 0; k < reps; k++) sum += ts[k];
        r->mean = sum / reps;
        for (int k = 0; k < reps; k++) sq += (ts[k] - r->mean) * (ts[k] - r->mean);
        r->sd = reps > 1 ? sqrt(sq / (reps - 1)) : 0;
    }
    free(ts);
    return rc;
}

static const char *base_name(const char *path) {
    const char *b = strrchr(path, '/');
    return b ? b + 1 : path;
}

static int max_of(const int *v, int n) {
    int m = 0;
    for (int i = 0; i < n; i++)
        if (v[i] > m) m = v[i];
    return m;
}

/* The untimed warm-up: the pipelines of every prompt size (several built at once), one eval
 * of each size and one single-token eval. */
static int warm_up(vkm_session *s, const bench_model_opts *o, const int32_t *tok, float *logits) {
    int sizes[2 * BENCH_MAX_LIST], n = 0;
    for (int i = 0; i < o->n_prompts; i++) sizes[n++] = o->prompts[i];
    for (int i = 0; i < o->n_pg; i++) sizes[n++] = o->pg[i][0];
    int rc = VKM_OK;
    for (int i = 0; !rc && i < n; i++) {
        bool seen = sizes[i] == 0;
        for (int j = 0; j < i; j++) seen = seen || sizes[j] == sizes[i];
        if (seen) continue;
        rc = vkm_session_warmup(s, sizes[i]);
        if (!rc) rc = vkm_session_eval(s, tok, sizes[i], false, logits);
        if (!rc) rc = vkm_session_truncate(s, 0);
    }
    if (!rc) rc = vkm_session_warmup(s, 0);
    if (!rc) rc = vkm_session_eval(s, tok, 1, false, logits);
    if (!rc) rc = vkm_session_truncate(s, 0);
    return rc;
}

enum { MAX_TESTS = BENCH_MAX_LIST * 3 * BENCH_MAX_LIST };

static int run(const bench_model_opts *o, cJSON *root) {
    cJSON *jmodel = cJSON_CreateObject();
    if (!jmodel) return vkm_error(VKM_ENOMEM, "out of memory");
    if (o->multi) {
        cJSON *models = cJSON_GetObjectItemCaseSensitive(root, "models");
        if (!models && !bench_json_add(root, "models", models = cJSON_CreateArray())) {
            cJSON_Delete(jmodel);
            return vkm_error(VKM_ENOMEM, "out of memory");
        }
        if (!cJSON_AddItemToArray(models, jmodel)) {
            cJSON_Delete(jmodel);
            return vkm_error(VKM_ENOMEM, "out of memory");
        }
    } else if (!bench_json_add(root, "model", jmodel)) {
        return vkm_error(VKM_ENOMEM, "out of memory");
    }
    char type[32];
    uint64_t size = 0;
    int rc = describe_model(o->model, jmodel, type, sizeof type, &size);
    if (rc) return rc;

    vkm_engine_opts eo = {.model_path = o->model,
                          .device = o->device,
                          .quiet = o->quiet,
                          .vram_budget = o->vram_budget,
                          .expert_policy = o->expert_policy,
                          .prefetch = o->prefetch};
    gen_exec_apply(&o->exec, &eo);
    int n_test = max_of(o->prompts, o->n_prompts), max_p = n_test;
    if (max_of(o->gens, o->n_gens) > n_test) n_test = max_of(o->gens, o->n_gens);
    for (int i = 0; i < o->n_pg; i++) {
        if (o->pg[i][0] + o->pg[i][1] > n_test) n_test = o->pg[i][0] + o->pg[i][1];
        if (o->pg[i][0] > max_p) max_p = o->pg[i][0];
    }
    const int max_d = max_of(o->depths, o->n_depths);
    const int n_max = n_test > max_d ? n_test : max_d; /* token ids needed */
    const vkm_session_opts so = {
        .n_ctx = max_d + n_test + 1,
        .max_batch = max_p > MAX_BATCH ? MAX_BATCH : (max_p > 0 ? max_p : 1),
    };
    eo.n_ctx = so.n_ctx; /* the automatic budget leaves room for this session */
    eo.max_batch = so.max_batch;
    vkm_engine *e = NULL;
    vkm_session *s = NULL;
    int32_t *tok = NULL;
    float *logits = NULL;
    test_result *res = calloc(MAX_TESTS, sizeof *res);
    int n_res = 0;
    if (!res) return vkm_error(VKM_ENOMEM, "out of memory");
    rc = vkm_kernels_env(&eo.kernels);
    if (!rc) rc = vkm_engine_open(&eo, &e);
    vkm_engine_info info;
    memset(&info, 0, sizeof info);
    if (!rc) {
        vkm_engine_get_info(e, &info);
        if (info.n_vocab <= 0) rc = vkm_error(VKM_EFORMAT, "%s: no vocabulary", o->model);
    }
    if (!rc && !cJSON_AddStringToObject(jmodel, "desc", info.model_desc))
        rc = vkm_error(VKM_ENOMEM, "out of memory");
    if (!rc) rc = vkm_session_create(e, &so, &s);
    if (!rc) {
        tok = malloc((size_t)(n_max > 0 ? n_max : 1) * sizeof *tok);
        logits = malloc((size_t)info.n_vocab * sizeof *logits);
        if (!tok || !logits) rc = vkm_error(VKM_ENOMEM, "out of memory");
    }
    if (!rc) {
        uint32_t seed = 1234567u;
        for (int i = 0; i < n_max; i++) {
            seed = seed * 1664525u + 1013904223u;
            tok[i] = (int32_t)((seed >> 8) % (uint32_t)info.n_vocab);
        }
        if (!o->quiet) fprintf(stderr, "bench: warm-up\n");
        rc = warm_up(s, o, tok, logits);
    }
    for (int di = 0; !rc && di < o->n_depths; di++) {
        const int d = o->depths[di];
        rc = vkm_session_truncate(s, 0);
        if (!rc && d > 0) { /* the depth's tokens, once (the session cuts batches) */
            if (!o->quiet) fprintf(stderr, "bench: filling the KV cache to depth %d\n", d);
            rc = vkm_session_eval(s, tok, d, false, logits);
        }
        for (int i = 0; !rc && i < o->n_prompts; i++)
            if (o->prompts[i] > 0)
                rc = run_test(s, tok, TEST_PP, o->prompts[i], 0, d, o->reps, o->quiet, logits,
                              &res[n_res++]);
        for (int i = 0; !rc && i < o->n_gens; i++)
            if (o->gens[i] > 0)
                rc = run_test(s, tok, TEST_TG, o->gens[i], 0, d, o->reps, o->quiet, logits,
                              &res[n_res++]);
        for (int i = 0; !rc && i < o->n_pg; i++)
            rc = run_test(s, tok, TEST_PG, o->pg[i][0], o->pg[i][1], d, o->reps, o->quiet, logits,
                          &res[n_res++]);
    }

    if (!rc) {
        cJSON *jres = cJSON_GetObjectItemCaseSensitive(root, "results");
        if (!jres && !bench_json_add(root, "results", jres = cJSON_CreateArray()))
            rc = vkm_error(VKM_ENOMEM, "oom");
        for (int i = 0; !rc && i < n_res; i++) {
            cJSON *r = cJSON_CreateObject();
            if (!r || !cJSON_AddStringToObject(r, "test", res[i].name) ||
                !cJSON_AddStringToObject(r, "model", o->model) ||
                !cJSON_AddNumberToObject(r, "n_tokens", res[i].n_tokens) ||
                (res[i].n_gen && !cJSON_AddNumberToObject(r, "n_gen", res[i].n_gen)) ||
                !cJSON_AddNumberToObject(r, "n_depth", res[i].n_depth) ||
                !cJSON_AddNumberToObject(r, "tokens_per_s", res[i].mean) ||
                !cJSON_AddNumberToObject(r, "stddev", res[i].sd) ||
                !cJSON_AddNumberToObject(r, "reps", res[i].reps) ||
                !cJSON_AddItemToArray(jres, r)) {
                cJSON_Delete(r);
                rc = vkm_error(VKM_ENOMEM, "out of memory");
            }
        }
    }
    if (!rc) { /* expert paging counters over warm-up and tests ("paged": false = all resident) */
        vkm_expert_stats st;
        vkm_engine_expert_stats(e, &st);
        if (o->stats) {
            char line[256];
            vkm_expert_stats_line(&st, line, sizeof line);
            fprintf(stderr, "%s\n", line);
        }
        cJSON *jx = cJSON_CreateObject();
        if (!jx || !bench_json_add(o->multi ? jmodel : root, "experts", jx) ||
            !cJSON_AddBoolToObject(jx, "paged", st.paged) ||
            !cJSON_AddNumberToObject(jx, "slots", st.n_slots) ||
            !cJSON_AddNumberToObject(jx, "hits", (double)st.hits) ||
            !cJSON_AddNumberToObject(jx, "misses", (double)st.misses) ||
            !cJSON_AddNumberToObject(jx, "prefetched", (double)st.prefetched) ||
            !cJSON_AddNumberToObject(jx, "prefetch_used", (double)st.prefetch_used) ||
            !cJSON_AddNumberToObject(jx, "uploaded_bytes", (double)st.uploaded_bytes) ||
            !cJSON_AddNumberToObject(jx, "stall_ms", st.stall_ms))
            rc = vkm_error(VKM_ENOMEM, "out of memory");
    }
    if (!rc) {
        char sz[32];
        if (size >= (1ull << 30))
            snprintf(sz, sizeof sz, "%.2f GiB", (double)size / (double)(1ull << 30));
        else
            snprintf(sz, sizeof sz, "%.2f MiB", (double)size / (double)(1ull << 20));
        const int tw = 16; /* the test column fits "pp512+tg128 @ d1024" mostly */
        if (o->header) {
            printf("| %-30s | %10s | %-6s | %-32s | %*s | %20s |\n", "model", "size", "type",
                   "device", tw, "test", "t/s");
            printf("| %.30s | %.10s | %.6s | %.32s | %.*s | %.20s |\n",
                   "------------------------------------------", "------------------------------",
                   "----------------", "----------------------------------------", tw,
                   "--------------------------------", "--------------------------------");
        }
        for (int i = 0; i < n_res; i++) {
            char ts[64];
            snprintf(ts, sizeof ts, "%.2f ± %.2f", res[i].mean, res[i].sd);
            printf("| %-30.30s | %10s | %-6s | %-32.32s | %*s | %21s |\n", base_name(o->model), sz,
                   type, info.device_name, tw, res[i].name, ts);
        }
        fflush(stdout);
    }
    free(res);
    free(tok);
    free(logits);
    vkm_session_destroy(s);
    vkm_engine_close(e);
    return rc;
}

int bench_model_run(const bench_model_opts *o, cJSON *root) {
    int rc = run(o, root);
    if (!rc) return CLI_OK;
    /* the path once: most messages name the file already */
    if (strstr(vkm_errmsg(), o->model)) return cli_fail("bench: %s", vkm_errmsg());
    return cli_fail("bench -m %s: %s", o->model, vkm_errmsg());
}
