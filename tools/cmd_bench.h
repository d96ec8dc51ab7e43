/* cmd_bench.h - the pieces of `vkmoe bench` (tools/cmd_bench*.c) and what they share.
 *
 * cmd_bench.c parses the flags and picks a mode; each mode fills a cJSON document whose top level
 * always has "device" and "build" (bench_json_device / bench_json_build), so the report mode can
 * merge files from different machines (--tokenizer, which uses no GPU, has "build" only):
 *   --micro  cmd_bench_micro.c   device copy bandwidth, GEMV GB/s and GEMM GFLOP/s per weight type
 *   -m FILE  cmd_bench_model.c   prefill / decode tokens per second through core/vkmoe.h
 *   --tokenizer -m FILE  cmd_bench_tok.c  tokenizer encode / decode MB/s on one CPU core
 *   --shaders -m FILE  cmd_bench_shaders.c  every pipeline the model uses, compiled only, with the
 *            driver's statistics and the main loop's instruction mix (RADV's null device too)
 *   --report cmd_bench_report.c  markdown table and PNG bar chart over several result files
 *   --serve -m FILE  cmd_bench_serve.c  aggregate decode tok/s of 1..N continuously batched
 *            streams (as `vkmoe serve --parallel N`), and expert bytes per token when paging
 *   --paging -m FILE  cmd_bench_paging.c  expert paging: tok/s and hit rate per VRAM budget and
 *            eviction policy, against Belady's MIN; PNG line chart (cmd_bench_draw.c draws)
 * Every function returns a CLI exit status (cli.h): 0 ok, 1 runtime error (already printed). */
#ifndef VKM_CMD_BENCH_H
#define VKM_CMD_BENCH_H

#include <stdbool.h>
#include <stdint.h>

#include "gen.h"

#include <cjson/cJSON.h>

#include "gpu.h"

typedef struct bench_micro_opts {
    int device;          /* -1 = default device */
    int reps;            /* most timed repetitions per measurement (adaptive below that) */
    bool quick;          /* fewer types and shapes, smaller copy */
    bool quiet;          /* no progress on stderr */
    double max_run_s;    /* skip a measurement whose single run is predicted to take longer */
    bool cpu;            /* --cpu: the CPU expert kernels instead of the device (cmd_bench_cpu.c) */
    const char *cpu_isa; /* --cpu-isa LIST (NULL = auto) */
    int cpu_threads;     /* --cpu-threads N (0 = one per online CPU) */
} bench_micro_opts;

enum { BENCH_MAX_LIST = 16 }; /* values of one list flag (-p 16,32 -p 64 ...) */

typedef struct bench_model_opts {
    const char *model; /* GGUF path */
    int device;        /* -1 = default device */
    int n_gen;         /* --paging: decode steps */
    /* the model benchmark (like llama-bench): for each depth, a ppN test per prompts[] entry, a
     * tgN test per gens[] entry and a ppP+tgN test per pg[] pair (0 entries make no test) */
    int prompts[BENCH_MAX_LIST], n_prompts;
    int gens[BENCH_MAX_LIST], n_gens;
    int depths[BENCH_MAX_LIST], n_depths; /* tokens already in the KV cache (-d); >= 1 entry */
    int pg[BENCH_MAX_LIST][2], n_pg;      /* -pg P,N */
    bool multi;  /* one of several models: JSON under "models", table without header */
    bool header; /* print the table header */
    int reps;    /* repetitions of each test */
    bool quiet;
    uint64_t vram_budget; /* bytes for weights + expert cache; 0 = automatic */
    int expert_policy;    /* enum vkm_expert_policy */
    bool stats;           /* print the expert-paging stats line on stderr */
    int prefetch;         /* enum vkm_prefetch */
    gen_exec exec;        /* --expert-exec, --cpu-moe, --n-cpu-moe, --cpu-threads */
} bench_model_opts;

/* --serve: continuously batched streams (cmd_bench_serve.c). */
typedef struct bench_serve_opts {
    const char *model;
    int device;
    int parallel[BENCH_MAX_LIST], n_parallel; /* stream counts (--parallel-list) */
    int n_prompt, n_gen;                      /* tokens per stream */
    uint64_t vram_budget;                     /* of the throughput runs; 0 = automatic */
    bool no_paging;                           /* skip the 50% expert budget comparison */
    int expert_policy, prefetch;
    bool quiet;
} bench_serve_opts;

typedef struct bench_shaders_opts {
    const char *model;          /* GGUF path */
    int device;                 /* -1 = default device */
    vkm_kernels_layout kernels; /* VKMOE_KERNELS (0 = the device's own plan) */
} bench_shaders_opts;

typedef struct bench_tok_opts {
    const char *model; /* GGUF path (a vocab-only file is enough) */
    int reps;          /* timed encode + decode repetitions */
    bool quiet;
} bench_tok_opts;

/* Each mode prints its table on stdout and adds its sections to `root` (which it owns not). The
 * model benchmark adds "results" (each with its "model" path) and "model" {path, size_bytes,
 * ..., "experts"?} for one model, or "models" [...] with each model's "experts" for several. */
int bench_micro_run(const bench_micro_opts *o, cJSON *root);
/* --micro --cpu: uses o->quick, o->quiet, o->cpu_isa and o->cpu_threads; adds "cpu_micro" {cpu,
 * isa (the first path measured), isas [...], threads, read_gbps, gemv [{type, shape, k, m, isa,
 * gbps, of_read, seconds}], skipped [...]}. */
int bench_cpu_run(const bench_micro_opts *o, cJSON *root);
/* Parses a --cpu-isa list into out[0..n) (VKM_CPU_ISA_*, n <= 4; out may be NULL): the number of
 * paths, 0 for a bad list. "all" expands to the paths this CPU runs, "auto" to the best. */
int bench_cpu_parse_isas(const char *list, int *out);
int bench_model_run(const bench_model_opts *o, cJSON *root);
/* --serve: the table on stdout, "serve" {model, n_prompt, n_gen, prefill_chunk, throughput
 * [{streams, tokens_per_s, ...}], paging_50pct [...]} in root. */
int bench_serve_run(const bench_serve_opts *o, cJSON *root);
int bench_tok_run(const bench_tok_opts *o, cJSON *root);
/* --shaders: adds "pipelines" [{name, type?, spec, built, subgroup_size, stats {driver's}, loop?}].
 */
int bench_shaders_run(const bench_shaders_opts *o, cJSON *root);
/* Uses o->model, o->device, o->n_gen (>= 1) and o->quiet; png: chart path or NULL. */
int bench_paging_run(const bench_model_opts *o, const char *png, cJSON *root);
/* inputs[n_inputs] are result files; md/png are output paths or NULL (md NULL = stdout). */
int bench_report_run(const char *const *inputs, int n_inputs, const char *md, const char *png);

/* ---- shared helpers (cmd_bench.c) ---- */
/* {"name","vendor","type","driver","api_version","memory_bytes"} of a device. */
cJSON *bench_json_device(const vkm_gpu_device_info *d);
/* {"version","commit"} of this build. */
cJSON *bench_json_build(void);
/* Adds item under key (taking ownership; deletes it on failure). False if item is NULL or on
 * failure (out of memory). */
bool bench_json_add(cJSON *o, const char *key, cJSON *item);
/* Finds the device vkm_gpu_create would use for `device` (-1 = default); 1 on error (printed). */
int bench_find_device(int device, vkm_gpu_device_info *out);
/* Writes `text` to `path`; 1 on error (printed). */
int bench_write_file(const char *path, const char *text);
/* Median of v[n] (sorts v in place); 0 for n == 0. */
double bench_median(double *v, int n);
/* Seconds on the monotonic clock (differences only). */
double bench_now_s(void);

#endif
