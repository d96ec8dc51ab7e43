/* cmd_bench_serve.c - `vkmoe bench --serve`: the aggregate decode rate of continuously batched
 * streams, as `vkmoe serve --parallel N` runs them, measured in-process (no HTTP) through the same
 * scheduler (gen_batch.h: every step one vkm_session_eval_multi call with one token of each
 * stream).
 *
 * Per stream count P (--parallel-list): a fresh engine and P slots; an untimed round of P short
 * requests (pipelines built, expert cache warm), then the timed round: P requests with distinct
 * seeded pseudo-random prompts of -p tokens, -n greedy tokens each (end-of-text never sampled).
 * Only the steps after every prompt is prefilled count: tokens/s = tokens decoded in them / their
 * time. Paging: at a VRAM budget holding 50% of the routed expert bytes (the budget arithmetic of
 * bench --paging) the same at 1 and at the largest P streams, with the expert bytes uploaded per
 * decoded token over those steps (vkm_engine_expert_stats). The process's resident anonymous
 * memory after each run is shown too (on a CPU device such as lavapipe device memory is host
 * memory: the rows' difference is what the slots' KV caches and work buffers take). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "cmd_bench.h"
#include "gen.h"
#include "gen_batch.h"

typedef struct serve_row {
    int streams;
    bool paged;
    uint64_t budget;
    double tps;      /* aggregate decode tokens/s */
    uint64_t tokens; /* decoded in the timed steps */
    uint64_t steps;  /* those steps */
    double seconds;
    uint64_t uploaded;     /* expert bytes over those steps */
    uint64_t hits, misses; /* over those steps */
    double anon_mib;       /* resident anonymous host memory at the end of the timed round */
    char device[256];
} serve_row;

/* Resident anonymous memory (resident less file-backed: the mapped model is not counted). */
static double anon_mib(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long size = 0, res = 0, shared = 0;
    if (!f) return 0;
    if (fscanf(f, "%lu %lu %lu", &size, &res, &shared) != 3) res = shared = 0;
    fclose(f);
    return (double)(res - shared) * (double)sysconf(_SC_PAGESIZE) / (1024.0 * 1024.0);
}

static uint64_t splitmix(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static void no_text(void *user, const char *text, size_t len) {
    (void)user, (void)text, (void)len;
}

static void on_done(void *user, const gen_slot *slot, enum gen_stop why, int rc) {
    (void)slot, (void)why;
    if (rc) *(int *)user = rc;
}

/* One round: P requests of n_prompt tokens (round's seed), n_gen tokens each; steps until all
 * end. timed: r gets the steps after all prompts are prefilled. */
static int round_run(gen_batch *b, const bench_serve_opts *o, int round, int n_gen, bool timed,
                     serve_row *r) {
    const int P = b->n_slots, np = o->n_prompt;
    int32_t *ids = malloc((size_t)P * (size_t)np * sizeof *ids);
    if (!ids) return cli_fail("out of memory");
    uint64_t seed = 0x5e7e + (uint64_t)round * 1000003u;
    for (int i = 0; i < P * np; i++) ids[i] = (int32_t)(splitmix(&seed) % (uint64_t)b->g->n_vocab);
    int err = CLI_OK;
    for (int i = 0; i < P && !err; i++) {
        const gen_req q = {.ids = ids + (size_t)i * (size_t)np,
                           .n_ids = np,
                           .sampling = b->g->opts->sampling,
                           .n_predict = n_gen,
                           .text = no_text,
                           .done = on_done,
                           .user = &err};
        if (gen_batch_start(b, i, &q)) err = CLI_ERROR;
    }
    bool started = false;
    double t_dec0 = 0;
    uint64_t tok0 = 0, steps0 = 0;
    vkm_expert_stats e0 = {0}, e1 = {0};
    while (!err && gen_batch_busy(b)) {
        gen_batch_step(b);
        bool all_decoding = true;
        for (int i = 0; i < P; i++) all_decoding &= b->slots[i].state == GEN_SLOT_DECODE;
        if (timed && !started && all_decoding) {
            started = true;
            t_dec0 = b->st.pure_decode_s;
            tok0 = b->st.pure_decode_tokens;
            steps0 = b->st.decode_steps;
            vkm_engine_expert_stats(b->g->engine, &e0);
        }
    }
    free(ids);
    if (err) return err;
    if (timed) {
        vkm_engine_expert_stats(b->g->engine, &e1);
        r->seconds = b->st.pure_decode_s - t_dec0;
        r->tokens = b->st.pure_decode_tokens - tok0;
        r->steps = b->st.decode_steps - steps0;
        r->tps = r->seconds > 0 ? (double)r->tokens / r->seconds : 0;
        r->paged = e1.paged;
        r->uploaded = e1.uploaded_bytes - e0.uploaded_bytes;
        r->hits = e1.hits - e0.hits;
        r->misses = e1.misses - e0.misses;
    }
    return CLI_OK;
}

/* A fresh engine at budget (0 = automatic) with P slots: the warm-up round, the timed one. */
static int run_streams(const bench_serve_opts *o, int P, uint64_t budget, serve_row *r) {
    memset(r, 0, sizeof *r);
    r->streams = P;
    r->budget = budget;
    gen_opts go;
    gen_opts_init(&go, o->n_gen);
    go.model = o->model;
    go.device = o->device;
    go.quiet = true;
    go.vram_budget = budget;
    go.expert_policy = o->expert_policy;
    go.prefetch = o->prefetch;
    go.ignore_eos = true;
    go.sampling.temperature = 0;
    int per_slot = o->n_prompt + 2 * o->n_gen + 16;
    if (per_slot < 256) per_slot = 256;
    go.n_ctx = (long)per_slot * P;
    go.n_seq = P;
    gen_ctx g;
    gen_batch b;
    memset(&b, 0, sizeof b);
    int rc = gen_open(&g, &go, false);
    if (!rc) {
        vkm_engine_info info;
        vkm_engine_get_info(g.engine, &info);
        snprintf(r->device, sizeof r->device, "%s", info.device_name);
        rc = gen_batch_init(&b, &g, P, GEN_BATCH_PREFILL_CHUNK);
    }
    if (!rc) rc = round_run(&b, o, 0, 4, false, r);
    if (!rc) rc = round_run(&b, o, 1, o->n_gen, true, r);
    r->anon_mib = anon_mib();
    gen_batch_free(&b);
    gen_close(&g);
    return rc;
}

static cJSON *row_json(const serve_row *r) {
    cJSON *j = cJSON_CreateObject();
    if (!j) return NULL;
    const uint64_t req = r->hits + r->misses;
    if (!cJSON_AddNumberToObject(j, "streams", r->streams) ||
        !cJSON_AddNumberToObject(j, "tokens_per_s", r->tps) ||
        !cJSON_AddNumberToObject(j, "decode_tokens", (double)r->tokens) ||
        !cJSON_AddNumberToObject(j, "decode_steps", (double)r->steps) ||
        !cJSON_AddNumberToObject(j, "seconds", r->seconds) ||
        !cJSON_AddBoolToObject(j, "paged", r->paged) ||
        !cJSON_AddNumberToObject(j, "budget_bytes", (double)r->budget) ||
        !cJSON_AddNumberToObject(j, "uploaded_bytes", (double)r->uploaded) ||
        !cJSON_AddNumberToObject(j, "uploaded_bytes_per_token",
                                 r->tokens ? (double)r->uploaded / (double)r->tokens : 0) ||
        !cJSON_AddNumberToObject(j, "hit_rate", req ? (double)r->hits / (double)req : 1) ||
        !cJSON_AddNumberToObject(j, "host_anon_mib", r->anon_mib)) {
        cJSON_Delete(j);
        return NULL;
    }
    return j;
}

int bench_serve_run(const bench_serve_opts *o, cJSON *root) {
    serve_row rows[BENCH_MAX_LIST], paged[2];
    int rc = CLI_OK, max_p = 1;
    for (int k = 0; k < o->n_parallel; k++)
        if (o->parallel[k] > max_p) max_p = o->parallel[k];
    for (int k = 0; !rc && k < o->n_parallel; k++) {
        if (!o->quiet) fprintf(stderr, "bench --serve: %d stream(s) ...\n", o->parallel[k]);
        rc = run_streams(o, o->parallel[k], o->vram_budget, &rows[k]);
    }
    if (rc) return rc;
    /* the paging comparison: 50% of the routed expert bytes */
    vkm_paging_budget sz = {0};
    bool do_paging = !o->no_paging;
    if (do_paging && vkm_experts_budget(o->model, 0, &sz)) return cli_fail_last();
    uint64_t budget = 0;
    if (do_paging && sz.expert_bytes == 0) do_paging = false;
    if (do_paging) {
        const uint64_t want =
            sz.main_bytes + sz.ranges_bytes + (uint64_t)ceil((double)sz.expert_bytes * 0.5);
        budget = want < sz.minimum_bytes ? sz.minimum_bytes : want;
        const int ps[2] = {1, max_p};
        for (int k = 0; !rc && k < 2; k++) {
            if (!o->quiet)
                fprintf(stderr, "bench --serve: %d stream(s) at a 50%% expert budget ...\n", ps[k]);
            rc = run_streams(o, ps[k], budget, &paged[k]);
        }
        if (rc) return rc;
    }

    const double base = rows[0].streams == 1 ? rows[0].tps : 0;
    printf("serve batching: %s on %s; %d-token prompts, %d greedy tokens per stream, all streams "
           "in one vkm_session_eval_multi per step (prefill chunk %d)\n\n",
           o->model, rows[0].device, o->n_prompt, o->n_gen, GEN_BATCH_PREFILL_CHUNK);
    printf("| %7s | %13s | %16s | %10s | %10s | %13s |\n", "streams", "decode tok/s",
           "tok/s per stream", "x 1 stream", "mean batch", "host MiB anon");
    printf(
        "| ------: | ------------: | ---------------: | ---------: | ---------: | ------------: |"
        "\n");
    for (int k = 0; k < o->n_parallel; k++) {
        const serve_row *r = &rows[k];
        char x[32] = "-";
        if (base > 0) snprintf(x, sizeof x, "%.2f", r->tps / base);
        printf("| %7d | %13.2f | %16.2f | %10s | %10.2f | %13.1f |\n", r->streams, r->tps,
               r->tps / r->streams, x, r->steps ? (double)r->tokens / (double)r->steps : 0,
               r->anon_mib);
    }
    if (do_paging) {
        printf("\nexpert paging at 50%% of the routed expert bytes (budget %.2f MiB%s):\n\n",
               (double)budget / (1024.0 * 1024.0),
               budget == sz.minimum_bytes ? ", raised to the paging minimum" : "");
        printf("| %7s | %13s | %18s | %8s | %20s |\n", "streams", "decode tok/s",
               "MB uploaded / tok", "hit rate", "bytes/tok x 1 stream");
        printf("| ------: | ------------: | -----------------: | -------: | -------------------: |"
               "\n");
        const double b1 = paged[0].tokens ? (double)paged[0].uploaded / (double)paged[0].tokens : 0;
        for (int k = 0; k < 2; k++) {
            const serve_row *r = &paged[k];
            const double bpt = r->tokens ? (double)r->uploaded / (double)r->tokens : 0;
            const uint64_t req = r->hits + r->misses;
            char x[32] = "-";
            if (b1 > 0) snprintf(x, sizeof x, "%.2f", bpt / b1);
            printf("| %7d | %13.2f | %18.3f | %8.3f | %20s |\n", r->streams, r->tps, bpt / 1e6,
                   req ? (double)r->hits / (double)req : 1.0, x);
        }
        if (!paged[0].paged) printf("(the budget held every expert: nothing was paged)\n");
    }

    cJSON *s = cJSON_CreateObject();
    cJSON *t = s ? cJSON_AddArrayToObject(s, "throughput") : NULL;
    cJSON *p = s ? cJSON_AddArrayToObject(s, "paging_50pct") : NULL;
    bool ok = t && p && cJSON_AddStringToObject(s, "model", o->model) &&
              cJSON_AddNumberToObject(s, "n_prompt", o->n_prompt) &&
              cJSON_AddNumberToObject(s, "n_gen", o->n_gen) &&
              cJSON_AddNumberToObject(s, "prefill_chunk", GEN_BATCH_PREFILL_CHUNK);
    for (int k = 0; ok && k < o->n_parallel; k++) {
        cJSON *j = row_json(&rows[k]);
        ok = j && cJSON_AddItemToArray(t, j);
    }
    for (int k = 0; ok && do_paging && k < 2; k++) {
        cJSON *j = row_json(&paged[k]);
        ok = j && cJSON_AddItemToArray(p, j);
    }
    if (!ok) {
        cJSON_Delete(s);
        return cli_fail("bench: out of memory");
    }
    if (!bench_json_add(root, "serve", s)) return cli_fail("bench: out of memory");
    return CLI_OK;
}
