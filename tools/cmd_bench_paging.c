/* cmd_bench_paging.c - `vkmoe bench --paging -m MODEL`: decode speed and expert cache hit rate of
 * expert paging at VRAM budgets holding 100/75/50/25/10% of the routed expert bytes, for each
 * eviction policy (LRU, LFU), against the offline optimum (Belady's MIN) on the same requests.
 *
 * Budgets: the engine's budget arithmetic (vkmoe.h vkm_experts_budget) gives the bytes of the
 * non-expert weights (main) and of the routed experts (ffn_*_exps), each tensor padded as the
 * engine places them; the budget for p% is main + the engine's slot-range buffer + ceil(p% of
 * the expert bytes), raised to the paging minimum (main + that buffer + the top-k experts of one
 * MoE layer per expert size class) when below it ("clamped", said on stderr, the table and the
 * JSON). At 100% everything fits, the engine does not page and the hit rate is 1.
 *
 * One run per (budget, policy), each from a fresh engine (cold expert cache): a fixed prompt
 * of N_PROMPT pseudo-random token ids (seeded), fed one token per eval, then n greedy decode
 * steps (argmax of the last logits). tok/s is over the n decode evals (logits read back).
 * Every eval is one token, so each MoE layer makes exactly one pager request per step (the
 * top-k experts never exceed the slots), and the request sequence depends only on the tokens.
 * The engine's routing trace hook (vkm_engine_opts.expert_trace) records each run's requests
 * (layer, size class, class slots, the distinct experts); Belady's MIN is simulated on that
 * same sequence with the same slot counts, the experts of one request resident together
 * (pinned, as in core/pager.c), counting a hit or miss per requested expert. The hit rates
 * compared ("hit_rate", "belady_hit_rate") are over the whole run from the cold start, where
 * MIN's optimality makes belady >= policy a theorem; "decode_hit_rate" and the bytes moved per
 * token cover the decode steps only.
 *
 * Execution modes (vkmoe.h vkm_expert_exec): then, for each policy, at 75/50/25% each of gpu
 * (misses uploaded), cpu (misses computed on the CPU) and auto (the cost model per miss):
 * tokens/s, the hit rate, and per decode token the MB uploaded, the MB of experts computed on
 * the CPU and the CPU misses admitted into slots (core/pager.h vkm_pager_admit; "paging_exec"
 * in the JSON, with auto's measured rates). Belady is not simulated for these: CPU misses that
 * are not admitted take no slot, so the trace (the GPU's requests) is not the policy's whole
 * input. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <stb/stb_image_write.h>

#include "cli.h"
#include "cmd_bench.h"
#include "cmd_bench_draw.h"
#include "err.h"
#include "vkmoe.h"

#define N_PROMPT 8
#define N_BUDGETS 5
#define N_POLICIES 2
#define MAX_LAYERS 4096
#define NEVER UINT32_MAX

static const int k_pct[N_BUDGETS] = {100, 75, 50, 25, 10};
static const char *const k_policy_name[N_POLICIES] = {"lru", "lfu"};
static const int k_policy[N_POLICIES] = {VKM_EXPERT_LRU, VKM_EXPERT_LFU};
#define N_EXEC_BUDGETS 3
#define N_EXECS 3
static const int k_exec_pct[N_EXEC_BUDGETS] = {75, 50, 25};
static const int k_exec[N_EXECS] = {VKM_EXPERT_EXEC_GPU, VKM_EXPERT_EXEC_CPU, VKM_EXPERT_EXEC_AUTO};
static const char *const k_exec_name[N_EXECS] = {"gpu", "cpu", "auto"};

/* --------------------------------------------------------------- routing trace ---- */

/* Flat records: layer, class, class slots, n, then n experts. */
typedef struct trace {
    uint32_t *v;
    size_t len, cap;
    bool oom;
} trace;

static void trace_push(trace *t, uint32_t x) {
    if (t->oom) return;
    if (t->len == t->cap) {
        const size_t cap = t->cap ? 2 * t->cap : 4096;
        uint32_t *nv = realloc(t->v, cap * sizeof *nv);
        if (!nv) {
            t->oom = true;
            return;
        }
        t->v = nv;
        t->cap = cap;
    }
    t->v[t->len++] = x;
}

static void on_request(void *user, uint32_t layer, uint32_t cls, uint32_t cls_slots,
                       const int32_t *experts, uint32_t n) {
    trace *t = user;
    trace_push(t, layer);
    trace_push(t, cls);
    trace_push(t, cls_slots);
    trace_push(t, n);
    for (uint32_t i = 0; i < n; i++) trace_push(t, (uint32_t)experts[i]);
}

/* Belady's MIN over the trace: per size class `slots` units; each request's units are made
 * resident together (pinned); a miss fills a free slot, else evicts the unpinned unit whose next
 * request is furthest (never = furthest). Counts a hit or miss per requested unit. */
static int belady(const trace *t, uint32_t n_layer, uint32_t n_expert, uint64_t *hits,
                  uint64_t *misses) {
    *hits = *misses = 0;
    const size_t units = (size_t)n_layer * n_expert;
    uint32_t *next = malloc((t->len + 1) * sizeof *next); /* per trace word: next request */
    uint32_t *last = malloc(units * sizeof *last), *nu = malloc(units * sizeof *nu);
    uint32_t *pin = calloc(units, sizeof *pin);
    bool *res = calloc(units, sizeof *res);
    uint32_t *starts = NULL, *cls_used = calloc(MAX_LAYERS, sizeof *cls_used);
    uint32_t **slot = calloc(MAX_LAYERS, sizeof *slot); /* per class: resident units */
    size_t n_req = 0;
    int rc = 0;
    if (!next || !last || !nu || !pin || !res || !cls_used || !slot) {
        rc = vkm_error(VKM_ENOMEM, "out of memory");
        goto out;
    }
    for (size_t at = 0; at + 4 <= t->len; at += 4 + t->v[at + 3]) n_req++;
    if (!(starts = malloc((n_req + 1) * sizeof *starts))) {
        rc = vkm_error(VKM_ENOMEM, "out of memory");
        goto out;
    }
    n_req = 0;
    for (size_t at = 0; at + 4 <= t->len; at += 4 + t->v[at + 3]) {
        const uint32_t *r = t->v + at;
        if (at + 4 + r[3] > t->len || r[0] >= n_layer || r[1] >= MAX_LAYERS || r[2] == 0 ||
            r[3] > r[2]) {
            rc = vkm_error(VKM_EINVAL, "routing trace: malformed request %zu", n_req);
            goto out;
        }
        for (uint32_t i = 0; i < r[3]; i++)
            if (r[4 + i] >= n_expert) {
                rc = vkm_error(VKM_EINVAL, "routing trace: expert %u", r[4 + i]);
                goto out;
            }
        starts[n_req++] = (uint32_t)at;
    }
    for (size_t u = 0; u < units; u++) last[u] = NEVER;
    for (size_t q = n_req; q-- > 0;) { /* next use of each request's units */
        const uint32_t *r = t->v + starts[q];
        for (uint32_t i = 0; i < r[3]; i++) {
            const size_t u = (size_t)r[0] * n_expert + r[4 + i];
            next[starts[q] + 4 + i] = last[u];
            last[u] = (uint32_t)q;
        }
    }
    for (size_t q = 0; q < n_req; q++) {
        const uint32_t *r = t->v + starts[q];
        const uint32_t c = r[1], cap = r[2];
        if (!slot[c] && !(slot[c] = malloc(cap * sizeof **slot))) {
            rc = vkm_error(VKM_ENOMEM, "out of memory");
            goto out;
        }
        for (uint32_t i = 0; i < r[3]; i++) { /* hits first: pin them */
            const size_t u = (size_t)r[0] * n_expert + r[4 + i];
            pin[u] = (uint32_t)q + 1;
            if (res[u]) (*hits)++;
            nu[u] = next[starts[q] + 4 + i];
        }
        for (uint32_t i = 0; i < r[3]; i++) {
            const size_t u = (size_t)r[0] * n_expert + r[4 + i];
            if (res[u]) continue;
            (*misses)++;
            if (cls_used[c] < cap) {
                slot[c][cls_used[c]++] = (uint32_t)u;
            } else {
                int best = -1;
                for (uint32_t s = 0; s < cap; s++) {
                    const uint32_t v = slot[c][s];
                    if (pin[v] == q + 1) continue;
                    if (best < 0 || nu[v] > nu[slot[c][best]]) best = (int)s;
                }
                if (best < 0) { /* cannot happen: n <= cap and only this request is pinned */
                    rc = vkm_error(VKM_EINVAL, "routing trace: request %zu exceeds its slots", q);
                    goto out;
                }
                res[slot[c][best]] = false;
                slot[c][best] = (uint32_t)u;
            }
            res[u] = true;
        }
    }
out:
    for (int c = 0; slot && c < MAX_LAYERS; c++) free(slot[c]);
    free(slot);
    free(cls_used);
    free(starts);
    free(next);
    free(last);
    free(nu);
    free(pin);
    free(res);
    return rc;
}

/* ------------------------------------------------------------------------ runs ---- */

typedef struct row {
    int pct;
    uint64_t budget;
    bool clamped, paged;
    int policy; /* index into k_policy */
    uint32_t slots;
    double tok_s;
    uint64_t hits, misses, b_hits, b_misses, dec_hits, dec_misses, dec_bytes;
    uint64_t layer_steps; /* pager requests: one per (eval, MoE layer) */
    double hit_rate, belady_rate, dec_rate, mb_per_token;
    double tok_s_sd; /* standard deviation of the decode steps' tokens/s */
    double frac;     /* the fraction of the expert bytes the budget really holds (clamped) */
    char device[256];
    int exec;                  /* index into k_exec (0 = gpu, the policy sweep's) */
    uint64_t dec_cpu_bytes;    /* expert bytes computed on the CPU in the decode steps */
    double mb_cpu_per_token;   /* the same per token, MB */
    double admitted_per_token; /* CPU misses admitted into slots per decode token */
    double auto_cpu_gbps, auto_upload_gbps;
    uint32_t auto_max_tokens;
} row;

static double rate(uint64_t h, uint64_t m) {
    return h + m ? (double)h / (double)(h + m) : 1.0;
}

/* One run: fresh engine at r->budget (0 = automatic) with r->policy. */
static int run_one(const bench_model_opts *o, int n_gen, row *r) {
    trace tr = {0};
    vkm_engine_opts eo = {.model_path = o->model,
                          .device = o->device,
                          .quiet = true,
                          .vram_budget = r->budget,
                          .expert_policy = (vkm_expert_policy)k_policy[r->policy],
                          .prefetch = o->prefetch,
                          .expert_trace = on_request,
                          .expert_trace_user = &tr,
                          .expert_exec = (vkm_expert_exec)k_exec[r->exec]};
    vkm_engine *e = NULL;
    vkm_session *s = NULL;
    float *logits = NULL;
    int rc = vkm_kernels_env(&eo.kernels);
    if (!rc) rc = vkm_engine_open(&eo, &e);
    vkm_engine_info info;
    memset(&info, 0, sizeof info);
    if (!rc) vkm_engine_get_info(e, &info);
    if (!rc) {
        vkm_session_opts so = {.n_ctx = N_PROMPT + n_gen + 1, .max_batch = 1};
        rc = vkm_session_create(e, &so, &s);
    }
    if (!rc && !(logits = malloc((size_t)info.n_vocab * sizeof *logits)))
        rc = vkm_error(VKM_ENOMEM, "out of memory");
    uint32_t seed = 7654321u;
    for (int i = 0; !rc && i < N_PROMPT; i++) {
        seed = seed * 1664525u + 1013904223u;
        const int32_t tok = (int32_t)((seed >> 8) % (uint32_t)info.n_vocab);
        rc = vkm_session_eval(s, &tok, 1, false, logits);
    }
    vkm_expert_stats st0, st1;
    if (!rc) vkm_engine_expert_stats(e, &st0);
    const double t0 = bench_now_s();
    double sum = 0, sq = 0; /* of the steps' tokens/s */
    for (int i = 0; !rc && i < n_gen; i++) {
        int32_t best = 0;
        for (int v = 1; v < info.n_vocab; v++)
            if (logits[v] > logits[best]) best = v;
        const double ts = bench_now_s();
        rc = vkm_session_eval(s, &best, 1, false, logits);
        const double step = bench_now_s() - ts, x = step > 0 ? 1.0 / step : 0;
        sum += x;
        sq += x * x;
    }
    const double dt = bench_now_s() - t0;
    if (!rc && n_gen > 1) {
        const double mean = sum / n_gen, var = (sq - n_gen * mean * mean) / (n_gen - 1);
        r->tok_s_sd = var > 0 ? sqrt(var) : 0;
    }
    if (!rc) snprintf(r->device, sizeof r->device, "%s", info.device_name);
    if (!rc && tr.oom) rc = vkm_error(VKM_ENOMEM, "out of memory recording the routing trace");
    if (!rc) {
        vkm_engine_expert_stats(e, &st1);
        r->paged = st1.paged;
        r->slots = st1.n_slots;
        r->tok_s = dt > 0 ? n_gen / dt : 0;
        r->hits = st1.hits;
        r->misses = st1.misses;
        r->dec_hits = st1.hits - st0.hits;
        r->dec_misses = st1.misses - st0.misses;
        r->dec_bytes = st1.uploaded_bytes - st0.uploaded_bytes;
        r->hit_rate = rate(r->hits, r->misses);
        r->dec_rate = rate(r->dec_hits, r->dec_misses);
        r->mb_per_token = (double)r->dec_bytes / n_gen / 1e6;
        r->dec_cpu_bytes = st1.cpu_bytes - st0.cpu_bytes;
        r->mb_cpu_per_token = (double)r->dec_cpu_bytes / n_gen / 1e6;
        r->admitted_per_token = (double)(st1.admitted - st0.admitted) / n_gen;
        r->auto_cpu_gbps = st1.auto_cpu_gbps;
        r->auto_upload_gbps = st1.auto_upload_gbps;
        r->auto_max_tokens = st1.auto_max_tokens;
        rc = belady(&tr, (uint32_t)info.n_layer, (uint32_t)info.n_expert, &r->b_hits, &r->b_misses);
        for (size_t at = 0; at + 4 <= tr.len; at += 4 + tr.v[at + 3]) r->layer_steps++;
        r->belady_rate = rate(r->b_hits, r->b_misses);
        if (!o->quiet && st1.prefetched)
            fprintf(stderr, "bench --paging: prefetched %llu, used %llu\n",
                    (unsigned long long)st1.prefetched, (unsigned long long)st1.prefetch_used);
        if (!rc && r->paged && r->exec == 0 && r->b_hits + r->b_misses != r->hits + r->misses)
            rc = vkm_error(VKM_EINVAL,
                           "routing trace: %llu requested experts, the pager counted "
                           "%llu",
                           (unsigned long long)(r->b_hits + r->b_misses),
                           (unsigned long long)(r->hits + r->misses));
    }
    free(tr.v);
    free(logits);
    vkm_session_destroy(s);
    vkm_engine_close(e);
    return rc;
}

/* ------------------------------------------------------------------------- PNG ---- */

#define PANEL_W 330
#define PANEL_H 240
#define AXIS_X 48

enum panel_kind { PANEL_TOKS, PANEL_HIT, PANEL_MB };

static double panel_value(const row *r, enum panel_kind kind, bool belady) {
    if (kind == PANEL_HIT) return belady ? r->belady_rate : r->hit_rate;
    return kind == PANEL_TOKS ? r->tok_s : r->mb_per_token;
}

/* One panel: y against x = the fraction of the expert bytes the budget holds (numeric, 0 to
 * 100%; a clamped budget sits at its real fraction), one line per series; tokens/s with +-
 * one standard deviation of the decode steps. */
static void panel(bench_canvas *cv, int px, int py, const char *title, const row *rows,
                  enum panel_kind kind) {
    static const unsigned char black[3] = {0, 0, 0}, grey[3] = {200, 200, 200};
    const int ax = px + AXIS_X, aw = PANEL_W - AXIS_X - 16, base = py + PANEL_H;
    double vmax = 0;
    for (int i = 0; i < N_BUDGETS * N_POLICIES; i++) {
        double v = panel_value(&rows[i], kind, false);
        if (kind == PANEL_TOKS) v += rows[i].tok_s_sd;
        vmax = v > vmax ? v : vmax;
    }
    const double top = kind == PANEL_HIT ? 1.0 : vmax > 0 ? bench_draw_nice_max(vmax) : 1.0;
    char lab[32];
    for (int k = 0; k <= 4; k++) {
        const int y = base - PANEL_H * k / 4;
        bench_draw_rect(cv, ax, y, aw, 1, k ? grey : black);
        bench_draw_fmt_value(lab, sizeof lab, top * k / 4);
        bench_draw_text(cv, ax - 4 - bench_draw_text_width(lab, 1), y - 3, lab, 1, 0, black);
    }
    bench_draw_rect(cv, ax, base - PANEL_H, 1, PANEL_H + 1, black);
    for (int pct = 0; pct <= 100; pct += 25) {
        const int x = ax + aw * pct / 100;
        bench_draw_rect(cv, x, base, 1, 4, black);
        snprintf(lab, sizeof lab, "%d", pct);
        bench_draw_text(cv, x - bench_draw_text_width(lab, 1) / 2, base + 6, lab, 1, 0, black);
    }
    static const char xlab[] = "% of the expert bytes held";
    bench_draw_text(cv, ax + (aw - bench_draw_text_width(xlab, 1)) / 2, base + 18, xlab, 1, 0,
                    black);
    bench_draw_text(cv, ax + (aw - bench_draw_text_width(title, 1)) / 2, py - 14, title, 1, 0,
                    black);
    for (int series = 0; series < (kind == PANEL_HIT ? 3 : 2); series++) {
        const unsigned char *col = bench_draw_palette[series];
        int lx = 0, ly = 0;
        for (int b = 0; b < N_BUDGETS; b++) {
            const row *r = &rows[b * N_POLICIES + (series < 2 ? series : 0)];
            const double v = panel_value(r, kind, series == 2);
            const int x = ax + (int)lround(aw * r->frac) + (series == 1 ? 2 : 0);
            const int y = base - (int)lround(PANEL_H * (v > 0 ? v : 0) / top);
            if (kind == PANEL_TOKS && r->tok_s_sd > 0) { /* +- one standard deviation */
                const int dy = (int)lround(PANEL_H * r->tok_s_sd / top);
                bench_draw_rect(cv, x, y - dy, 1, 2 * dy + 1, col);
                bench_draw_rect(cv, x - 3, y - dy, 7, 1, col);
                bench_draw_rect(cv, x - 3, y + dy, 7, 1, col);
            }
            bench_draw_rect(cv, x - 3, y - 3, 7, 7, col);
            if (b) bench_draw_line(cv, lx, ly, x, y, 2, col);
            lx = x;
            ly = y;
        }
    }
}

static int write_png(const char *path, const char *model, const row *rows) {
    static const unsigned char black[3] = {0, 0, 0};
    const int w = 20 + 3 * (PANEL_W + 20), h = 60 + PANEL_H + 50 + 3 * 14 + 10;
    bench_canvas cv = {malloc((size_t)w * (size_t)h * 3), w, h};
    if (!cv.px) return cli_fail("bench --paging: out of memory drawing the chart");
    memset(cv.px, 255, (size_t)w * (size_t)h * 3);
    char title[600];
    snprintf(title, sizeof title, "vkmoe bench --paging: %s on %s", model, rows[0].device);
    bench_draw_text(&cv, 10, 10, title, 2, w - 20, black);
    panel(&cv, 10, 60, "decode tokens/s (+- 1 sd of the steps)", rows, PANEL_TOKS);
    panel(&cv, 10 + PANEL_W + 20, 60, "expert hit rate", rows, PANEL_HIT);
    panel(&cv, 10 + 2 * (PANEL_W + 20), 60, "MB moved per decode token", rows, PANEL_MB);
    const char *names[3] = {"LRU", "LFU", "Belady MIN (offline optimum, hit rate)"};
    const int ly = 60 + PANEL_H + 40;
    for (int i = 0; i < 3; i++) {
        bench_draw_rect(&cv, 10, ly + i * 14, 10, 10, bench_draw_palette[i]);
        bench_draw_text(&cv, 26, ly + i * 14 + 2, names[i], 1, w - 36, black);
    }
    const int ok = stbi_write_png(path, w, h, 3, cv.px, w * 3);
    free(cv.px);
    return ok ? CLI_OK : cli_fail("bench --paging: cannot write '%s'", path);
}

/* ----------------------------------------------------------------------- public ---- */

static const char *base_name(const char *path) {
    const char *b = strrchr(path, '/');
    return b ? b + 1 : path;
}

static cJSON *row_json(const row *r, double mib) {
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    if (!cJSON_AddNumberToObject(o, "budget_pct", r->pct) ||
        !cJSON_AddNumberToObject(o, "budget_bytes", (double)r->budget) ||
        !cJSON_AddBoolToObject(o, "clamped", r->clamped) ||
        !cJSON_AddStringToObject(o, "policy", k_policy_name[r->policy]) ||
        !cJSON_AddBoolToObject(o, "paged", r->paged) ||
        !cJSON_AddNumberToObject(o, "slots", r->slots) ||
        !cJSON_AddNumberToObject(o, "tokens_per_s", r->tok_s) ||
        !cJSON_AddNumberToObject(o, "tokens_per_s_sd", r->tok_s_sd) ||
        !cJSON_AddNumberToObject(o, "expert_fraction", r->frac) ||
        !cJSON_AddNumberToObject(o, "layer_steps", (double)r->layer_steps) ||
        !cJSON_AddNumberToObject(o, "hits", (double)r->hits) ||
        !cJSON_AddNumberToObject(o, "misses", (double)r->misses) ||
        !cJSON_AddNumberToObject(o, "hit_rate", r->hit_rate) ||
        !cJSON_AddNumberToObject(o, "belady_hits", (double)r->b_hits) ||
        !cJSON_AddNumberToObject(o, "belady_misses", (double)r->b_misses) ||
        !cJSON_AddNumberToObject(o, "belady_hit_rate", r->belady_rate) ||
        !cJSON_AddNumberToObject(o, "decode_hit_rate", r->dec_rate) ||
        !cJSON_AddNumberToObject(o, "decode_uploaded_bytes", (double)r->dec_bytes) ||
        !cJSON_AddNumberToObject(o, "mb_per_token", r->mb_per_token) ||
        !cJSON_AddNumberToObject(o, "budget_mib", (double)r->budget / mib)) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

static int run(const bench_model_opts *o, const char *png, cJSON *root, bool *png_failed) {
    const int n_gen = o->n_gen;
    /* the 100% runs first: resident, and they tell the model's shape */
    row rows[N_BUDGETS * N_POLICIES];
    memset(rows, 0, sizeof rows);
    vkm_paging_budget sz = {0};
    int rc = 0;
    for (int b = 0; !rc && b < N_BUDGETS; b++) {
        for (int p = 0; !rc && p < N_POLICIES; p++) {
            row *r = &rows[b * N_POLICIES + p];
            r->pct = k_pct[b];
            r->policy = p;
            if (b == 0 && p == 0) { /* shape first: an automatic-budget engine */
                vkm_engine_opts eo = {.model_path = o->model, .device = o->device, .quiet = true};
                vkm_engine *e = NULL;
                if ((rc = vkm_kernels_env(&eo.kernels)) || (rc = vkm_engine_open(&eo, &e))) break;
                vkm_engine_info in;
                vkm_engine_get_info(e, &in);
                vkm_engine_close(e);
                if (in.n_expert < 2 || in.n_expert_used < 1)
                    return vkm_error(VKM_EUNSUPPORTED,
                                     "%s: %d routed experts: nothing to page (needs several "
                                     "experts per layer)",
                                     o->model, in.n_expert);
                if ((rc = vkm_experts_budget(o->model, 0, &sz))) break;
            }
            const uint64_t want = sz.main_bytes + sz.ranges_bytes +
                                  (uint64_t)ceil((double)sz.expert_bytes * r->pct / 100.0);
            r->budget = want < sz.minimum_bytes ? sz.minimum_bytes : want;
            r->clamped = want < sz.minimum_bytes;
            r->frac = sz.expert_bytes ? (double)(r->budget - sz.main_bytes - sz.ranges_bytes) /
                                            (double)sz.expert_bytes
                                      : 1;
            if (r->frac > 1) r->frac = 1;
            if (r->frac < 0) r->frac = 0;
            if (r->clamped && p == 0)
                fprintf(stderr,
                        "bench --paging: %d%% of the expert bytes is below the paging minimum; "
                        "clamped to %llu bytes\n",
                        r->pct, (unsigned long long)sz.minimum_bytes);
            if (!o->quiet) {
                fprintf(stderr, "bench --paging: %d%% (%llu bytes) %s ...\n", r->pct,
                        (unsigned long long)r->budget, k_policy_name[p]);
                fflush(stderr);
            }
            rc = run_one(o, n_gen, r);
        }
    }
    if (rc) return rc;
    row xrows[N_EXEC_BUDGETS * N_POLICIES * N_EXECS];
    memset(xrows, 0, sizeof xrows);
    for (int b = 0; !rc && b < N_EXEC_BUDGETS; b++) {
        for (int xp = 0; !rc && xp < N_POLICIES * N_EXECS; xp++) {
            const int p = xp / N_EXECS, x = xp % N_EXECS;
            row *r = &xrows[b * N_POLICIES * N_EXECS + xp];
            for (int i = 0; i < N_BUDGETS; i++) /* the policy sweep's budget of that % */
                if (rows[i * N_POLICIES].pct == k_exec_pct[b]) {
                    r->budget = rows[i * N_POLICIES].budget;
                    r->clamped = rows[i * N_POLICIES].clamped;
                }
            r->pct = k_exec_pct[b];
            r->policy = p;
            r->exec = x;
            if (!o->quiet) {
                fprintf(stderr, "bench --paging: %d%% %s --expert-exec %s ...\n", r->pct,
                        k_policy_name[p], k_exec_name[x]);
                fflush(stderr);
            }
            rc = run_one(o, n_gen, r);
        }
    }
    if (rc) return rc;

    const double mib = 1024.0 * 1024.0;
    printf("expert paging: %s, %d prompt + %d decode tokens (greedy), non-expert weights %.2f "
           "MiB, routed experts %.2f MiB, paging minimum %.2f MiB\n",
           base_name(o->model), N_PROMPT, n_gen, (double)sz.main_bytes / mib,
           (double)sz.expert_bytes / mib, (double)sz.minimum_bytes / mib);
    printf("| %8s | %14s | %6s | %5s | %9s | %8s | %10s | %13s |\n", "budget %", "budget bytes",
           "policy", "slots", "tok/s", "hit rate", "Belady hit", "MB moved/tok");
    printf("|---------:|---------------:|--------|------:|----------:|---------:|-----------:|"
           "--------------:|\n");
    bool any_clamped = false;
    for (int i = 0; i < N_BUDGETS * N_POLICIES; i++) {
        const row *r = &rows[i];
        char pct[16];
        snprintf(pct, sizeof pct, "%d%s", r->pct, r->clamped ? "*" : "");
        any_clamped |= r->clamped;
        char slots[16];
        snprintf(slots, sizeof slots, r->paged ? "%u" : "all", r->slots);
        printf("| %8s | %14llu | %6s | %5s | %9.2f | %8.4f | %10.4f | %13.4f |\n", pct,
               (unsigned long long)r->budget, k_policy_name[r->policy], slots, r->tok_s,
               r->hit_rate, r->belady_rate, r->mb_per_token);
    }
    if (any_clamped)
        printf("* below the paging minimum: clamped to it (%llu bytes)\n",
               (unsigned long long)sz.minimum_bytes);
    printf("hit rates: all %d steps from a cold cache (Belady on the same requests); 100%% = not "
           "paged; MB moved/tok: decode steps, MB = 10^6 bytes\n",
           N_PROMPT + n_gen);
    printf(
        "\nexecution modes: where misses run (cpu/auto: misses admitted into slots per token)\n");
    printf("| %8s | %6s | %5s | %9s | %8s | %12s | %11s | %9s |\n", "budget %", "policy", "exec",
           "tok/s", "hit rate", "MB up/tok", "MB CPU/tok", "admit/tok");
    printf("|---------:|--------|-------|----------:|---------:|-------------:|------------:|"
           "----------:|\n");
    const int n_x = N_EXEC_BUDGETS * N_POLICIES * N_EXECS;
    for (int i = 0; i < n_x; i++) {
        const row *r = &xrows[i];
        printf("| %7d%s | %6s | %5s | %9.2f | %8.4f | %12.4f | %11.4f | %9.2f |\n", r->pct,
               r->clamped ? "*" : " ", k_policy_name[r->policy], k_exec_name[r->exec], r->tok_s,
               r->hit_rate, r->mb_per_token, r->mb_cpu_per_token, r->admitted_per_token);
    }
    for (int i = 0; i < n_x; i++) /* each auto run probed its own */
        if (xrows[i].exec == 2 && xrows[i].auto_cpu_gbps > 0)
            printf("auto at %d%% (%s): probe CPU expert %.3f GB/s, upload %.3f GB/s: misses of up "
                   "to %u tokens on the CPU\n",
                   xrows[i].pct, k_policy_name[xrows[i].policy], xrows[i].auto_cpu_gbps,
                   xrows[i].auto_upload_gbps, xrows[i].auto_max_tokens);
    fflush(stdout);

    cJSON *info = cJSON_CreateObject(), *arr = cJSON_CreateArray();
    if (!bench_json_add(root, "paging_info", info) || !bench_json_add(root, "paging", arr) ||
        !cJSON_AddStringToObject(info, "model", o->model) ||
        !cJSON_AddNumberToObject(info, "n_prompt", N_PROMPT) ||
        !cJSON_AddNumberToObject(info, "n_gen", n_gen) ||
        !cJSON_AddNumberToObject(info, "main_bytes", (double)sz.main_bytes) ||
        !cJSON_AddNumberToObject(info, "expert_bytes", (double)sz.expert_bytes) ||
        !cJSON_AddNumberToObject(info, "minimum_bytes", (double)sz.minimum_bytes))
        return vkm_error(VKM_ENOMEM, "out of memory");
    for (int i = 0; i < N_BUDGETS * N_POLICIES; i++) {
        cJSON *j = row_json(&rows[i], mib);
        if (!j || !cJSON_AddItemToArray(arr, j)) {
            cJSON_Delete(j);
            return vkm_error(VKM_ENOMEM, "out of memory");
        }
    }
    cJSON *xarr = cJSON_CreateArray();
    if (!bench_json_add(root, "paging_exec", xarr)) return vkm_error(VKM_ENOMEM, "out of memory");
    for (int i = 0; i < n_x; i++) {
        const row *r = &xrows[i];
        cJSON *j = row_json(r, mib);
        if (!j || !cJSON_AddItemToArray(xarr, j) ||
            !cJSON_AddStringToObject(j, "exec", k_exec_name[r->exec]) ||
            !cJSON_AddNumberToObject(j, "decode_cpu_bytes", (double)r->dec_cpu_bytes) ||
            !cJSON_AddNumberToObject(j, "mb_cpu_per_token", r->mb_cpu_per_token) ||
            !cJSON_AddNumberToObject(j, "admitted_per_token", r->admitted_per_token) ||
            !cJSON_AddNumberToObject(j, "auto_cpu_gbps", r->auto_cpu_gbps) ||
            !cJSON_AddNumberToObject(j, "auto_upload_gbps", r->auto_upload_gbps) ||
            !cJSON_AddNumberToObject(j, "auto_max_tokens", r->auto_max_tokens))
            return vkm_error(VKM_ENOMEM, "out of memory");
    }
    if (png && write_png(png, base_name(o->model), rows)) *png_failed = true;
    return 0;
}

int bench_paging_run(const bench_model_opts *o, const char *png, cJSON *root) {
    bool png_failed = false; /* write_png printed why */
    const int rc = run(o, png, root, &png_failed);
    if (rc) return cli_fail("bench --paging -m %s: %s", o->model, vkm_errmsg());
    return png_failed ? CLI_ERROR : CLI_OK;
}
