/* cmd_bench.c - `vkmoe bench`: flag parsing, the JSON/CSV writers and helpers shared by the
 * benchmark modes (see cmd_bench.h). --micro and -m may be combined into one result file;
 * --report, --tokenizer (CPU only: no device is looked up or created) and --paging are modes
 * of their own. Exit status per cli.h: 2 for bad flags, 1 for runtime errors. */
#include "cmd_bench.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "err.h"
#include "vkmoe.h"

#define USAGE                                                                                      \
    "vkmoe bench --micro [--cpu [--cpu-isa LIST] [--cpu-threads N]] [--quick] [--device N] "       \
    "[-r REPS] [--max-run S] [--json F] [--quiet]\n"                                               \
    "       vkmoe bench -m MODEL[,MODEL...] [-p N[,N...]] [-n N[,N...]] [-pg P,N] [-d N[,N...]] "  \
    "[-r REPS] [-o md|json|csv] [--device N] [--json F] [--csv F] [--vram-budget SIZE] "           \
    "[--expert-policy lru|lfu] [--prefetch on|off] [--stats] [--quiet] [--expert-exec MODE] "      \
    "[--cpu-moe] [--n-cpu-moe N] [--cpu-threads N]\n"                                              \
    "       vkmoe bench --tokenizer -m MODEL [-r REPS] [--json F] [--quiet]\n"                     \
    "       vkmoe bench --paging -m MODEL [-n N] [--device N] [--prefetch on|off] [--json F] "     \
    "[--png F] [--quiet]\n"                                                                        \
    "       vkmoe bench --shaders -m MODEL [--device N] [--json F]\n"                              \
    "       vkmoe bench --serve -m MODEL [--parallel-list 1,2,4,8] [-p N] [-n N] "                 \
    "[--vram-budget SIZE] [--no-paging] [--device N] [--json F] [--quiet]\n"                       \
    "       vkmoe bench --report A.json [B.json ...] [--md F] [--png F]"

#define MAX_DEVICES 64
#define MAX_REPORT_INPUTS 64

/* VK_MAKE_API_VERSION fields (gpu.h is Vulkan-free). */
#define API_MAJOR(v) (((v) >> 22) & 0x7fu)
#define API_MINOR(v) (((v) >> 12) & 0x3ffu)
#define API_PATCH(v) ((v)&0xfffu)

static void print_help(void) {
    printf(
        "usage: " USAGE "\n\n"
        "Benchmarks the device and the engine; results go to stdout as a table, and with --json\n"
        "to a file that `--report` merges across machines.\n\n"
        "micro-benchmarks (--micro):\n"
        "  device copy GB/s (read + write bytes / time, the decode roofline; 256 MiB, less when\n"
        "  the device's largest buffer or half its memory budget is smaller); GEMV GB/s (weight\n"
        "  bytes / time, n = 1) and its %% of the copy rate for every weight type the kernels\n"
        "  support on DeepSeek-V3 shapes (k x m: 7168x2048 expert gate/up, 2048x7168 down,\n"
        "  7168x1536 q_a, 7168x576 kv_a, 7168x129280 output); GEMM GFLOP/s (2*k*m*n) on the same\n"
        "  shapes with 512 tokens. Times are GPU timestamps, the median of the repetitions.\n"
        "  A measurement whose single run would exceed --max-run seconds (predicted from a\n"
        "  64-row probe run or the same type's earlier shapes) or whose weights exceed half the\n"
        "  device memory budget is skipped; the table and JSON list what was skipped and why.\n"
        "  --quick       types F16 Q8_0 Q4_K, shapes 7168x2048 and 2048x7168, 64 MiB copy\n"
        "  -r REPS       most timed repetitions per measurement (default 20; fewer when one\n"
        "                run is long, at least 1)\n"
        "  --max-run S   seconds (default 5)\n"
        "  --cpu         instead of the device: the CPU expert kernels' GEMV GB/s (n = 1, weights\n"
        "                in rotation beyond the caches) per type on the V3 expert shapes\n"
        "                7168x2048, 2048x7168 and V2-Lite's 2048x1408, 1408x2048, against the\n"
        "                measured memory read GB/s, with all online CPUs (no GPU needed;\n"
        "                --quick: Q8_0 Q6_K Q4_K on the V3 shapes)\n"
        "  --cpu-isa LIST  with --cpu: the kernel paths to measure, one table each, separated\n"
        "                by commas: portable, avx2, avx512, auto (the best this CPU runs, the\n"
        "                default) or all (every path this CPU runs)\n"
        "  --cpu-threads N with --cpu: computing threads (the caller's included; default 0 =\n"
        "                one per online CPU)\n\n"
        "model benchmark (-m MODEL), like llama-bench; every list flag takes values separated\n"
        "by commas and may be repeated (-p 16,32 -p 64), and every model runs every test:\n"
        "  -m MODEL      the GGUF model; several: -m a.gguf,b.gguf or -m a.gguf -m b.gguf\n"
        "  -p N          prefill test ppN: N tokens in one eval from an empty cache (default 64,\n"
        "                0 = none)\n"
        "  -n N          decode test tgN: N evals of one token each (default 32, 0 = none)\n"
        "  -pg P,N       prefill then decode, ppP+tgN: one eval of P tokens, then N of one\n"
        "                token; t/s over all P + N tokens (none by default)\n"
        "  -d N          depth: the tests start with N tokens already in the KV cache\n"
        "                (default 0; named \"pp64 @ d512\" as llama-bench does). The N tokens\n"
        "                are evaluated once, untimed; each repetition cuts the cache back to\n"
        "                them\n"
        "  -r REPS       repetitions of each test (default 3), after one warm-up; reports\n"
        "                tokens/s mean and standard deviation over the repetitions\n"
        "  -o FORMAT     stdout gets md (the table, default), json or csv (the --json / --csv\n"
        "                document; the table then goes to stderr)\n"
        "  --csv F       also write the results as CSV (one row per test; - = stdout)\n"
        "  --vram-budget SIZE  device bytes for weights + expert cache (K/M/G suffixes);\n"
        "                routed experts beyond it are paged from host memory (default: the\n"
        "                device's memory budget)\n"
        "  --expert-policy P   expert cache eviction: lfu (default) or lru\n"
        "  --prefetch on|off   speculative expert prefetch while paging (default: on with a\n"
        "                      dedicated transfer queue)\n"
        "  --stats       print the expert-paging counters on stderr after the run\n"
        "  --expert-exec, --cpu-moe, --n-cpu-moe, --cpu-threads: routed experts on the CPU, as\n"
        "                for `vkmoe run` (see `vkmoe run --help`)\n\n"
        "tokenizer benchmark (--tokenizer -m MODEL), CPU only:\n"
        "  needs no Vulkan device, and a vocab-only GGUF is enough. Encodes ~1 MB of generated\n"
        "  English-like text (prose with punctuation, numbers and some non-ASCII words) with\n"
        "  the model's tokenizer on one core (special token texts parsed, no BOS/EOS added),\n"
        "  then decodes the ids back; reports the token count, encode MB/s (input bytes,\n"
        "  MB = 10^6 bytes) and tokens/s, and decode MB/s (output bytes), mean and standard\n"
        "  deviation over the repetitions. The JSON has \"build\" and \"tokenizer\" (no\n"
        "  \"device\", so --report does not take it)\n"
        "  -r REPS       timed repetitions (default 3), after a short warm-up encode\n\n"
        "expert paging (--paging -m MODEL): a fresh engine per VRAM budget (100, 75, 50, 25\n"
        "  and 10%% of the routed expert bytes, plus the non-expert weights; a budget below the\n"
        "  paging minimum is raised to it, marked '*') and eviction policy (lru, lfu). Each run:\n"
        "  8 seeded pseudo-random prompt tokens then N greedy decode steps, one token per eval.\n"
        "  Prints budget %%, budget bytes, policy, slots, decode tok/s, expert hit rate, the hit\n"
        "  rate of Belady's MIN (the offline optimum, simulated on the same routing trace with\n"
        "  the same slots; never below the policy's), and MB moved per decode token. Hit rates\n"
        "  count every request from a cold cache; at 100%% nothing is paged (hit rate 1).\n"
        "  The JSON has \"paging_info\" and \"paging\": [one object per budget and policy]\n"
        "  Then, at 75, 50 and 25%% for each policy, the execution modes (--expert-exec gpu,\n"
        "  cpu, auto): tok/s, hit rate, MB uploaded and MB computed on the CPU per decode token,\n"
        "  and CPU misses admitted into slots per token (\"paging_exec\" in the JSON)\n"
        "  -n N          decode steps per run (default 32, at least 1)\n"
        "  JSON rows also give expert_fraction (the share of the expert bytes the budget really\n"
        "  holds), tokens_per_s_sd (over the decode steps) and layer_steps (pager requests:\n"
        "  one per eval and MoE layer)\n"
        "  --png F       also draw tok/s (+- 1 sd), hit rate and MB moved per token against the\n"
        "                fraction of the expert bytes held, the device in the title, as PNG\n\n"
        "continuous batching (--serve -m MODEL): the aggregate decode rate of N streams decoded\n"
        "  together as `vkmoe serve --parallel N` does (in-process through the engine API, no\n"
        "  HTTP: the server's scheduler, one vkm_session_eval_multi call per step with one token\n"
        "  of every stream). Per N a fresh engine and N slots; an untimed round, then N requests\n"
        "  with distinct seeded pseudo-random prompts of -p tokens (default 16) and -n greedy\n"
        "  tokens each (default 32); tokens/s over the steps after every prompt is prefilled.\n"
        "  Prints tok/s, per stream, the ratio to 1 stream, the mean batch and the resident\n"
        "  anonymous host memory after the run (lavapipe: device memory too). Then, unless "
        "--no-paging, at a VRAM budget holding 50%% of the routed\n"
        "  expert bytes (as --paging) 1 and the largest N streams: tok/s, expert MB uploaded per\n"
        "  decoded token, hit rate and the bytes per token against 1 stream's. The JSON has\n"
        "  \"serve\" {throughput [...], paging_50pct [...]}\n"
        "  --parallel-list N,...  stream counts (default 1,2,4,8; each 1..64)\n"
        "  --vram-budget SIZE     the budget of the throughput runs (default automatic)\n\n"
        "pipelines (--shaders -m MODEL): opens the engine compile-only (no weights uploaded,\n"
        "  nothing run), builds every pipeline a 512-token prompt and a decode step of the\n"
        "  model would use with the kernel plan's specialization constants (VKMOE_KERNELS\n"
        "  forces a layout), and prints what the driver reports of each through\n"
        "  VK_KHR_pipeline_executable_properties: VGPRs, SGPRs, code size, occupancy\n"
        "  (subgroups per SIMD), spills; where the driver gives its disassembly (RADV), the\n"
        "  main loop's instructions, VALU, SALU, vector memory loads, branches besides the\n"
        "  back edge and vmcnt(0) drains (counted over the loop's text). Works without the\n"
        "  GPU on Mesa's RADV null device, e.g.\n"
        "    VK_ICD_FILENAMES=/usr/share/vulkan/icd.d/radeon_icd.x86_64.json \\\n"
        "    RADV_FORCE_FAMILY=gfx1100 vkmoe bench --shaders -m MODEL\n"
        "  (gfx1100 = RX 7900 XTX, navi21 = RX 6800/6900, polaris10 = RX 480/580). The JSON\n"
        "  has \"pipelines\": [{name, type, spec, built, subgroup_size, stats, loop}]\n\n"
        "report (--report FILES...): merges result files from several machines into a markdown\n"
        "table: one row per device and model (a machine's model and --micro files merge into\n"
        "its rows), columns = each test's t/s, copy GB/s and the Q4_K GEMV GB/s with its shape\n"
        "when present\n"
        "  --md F        write the table to F instead of stdout\n"
        "  --png F       also draw a bar chart per column as PNG: one colour per device, bars\n"
        "                numbered as in the legend, a log scale when values span two decades\n\n"
        "common:\n"
        "  --device N    Vulkan device index (vkmoe devices); default: the '*' device\n"
        "  --json F      write the results as JSON to F (- = stdout); the --json, --csv and\n"
        "                --png paths are checked before anything runs\n"
        "  --quiet       no progress on stderr\n");
}

cJSON *bench_json_device(const vkm_gpu_device_info *d) {
    char api[32];
    snprintf(api, sizeof api, "%u.%u.%u", API_MAJOR(d->api_version), API_MINOR(d->api_version),
             API_PATCH(d->api_version));
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    if (!cJSON_AddStringToObject(o, "name", d->name) ||
        !cJSON_AddStringToObject(o, "vendor", vkm_gpu_vendor_name(d->vendor)) ||
        !cJSON_AddStringToObject(o, "type", vkm_gpu_type_name(d->type)) ||
        !cJSON_AddStringToObject(o, "driver", d->driver) ||
        !cJSON_AddStringToObject(o, "api_version", api) ||
        !cJSON_AddNumberToObject(o, "memory_bytes", (double)d->device_local_bytes)) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

cJSON *bench_json_build(void) {
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    if (!cJSON_AddStringToObject(o, "version", VKMOE_VERSION) ||
        !cJSON_AddStringToObject(o, "commit", VKMOE_GIT_COMMIT)) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

bool bench_json_add(cJSON *o, const char *key, cJSON *item) {
    if (!item) return false;
    if (!cJSON_AddItemToObject(o, key, item)) {
        cJSON_Delete(item);
        return false;
    }
    return true;
}

int bench_find_device(int device, vkm_gpu_device_info *out) {
    static vkm_gpu_device_info list[MAX_DEVICES];
    int n = 0;
    if (vkm_gpu_list(list, MAX_DEVICES, &n) < 0) return cli_fail_last();
    if (n > MAX_DEVICES) n = MAX_DEVICES;
    if (n == 0) return cli_fail("bench: no Vulkan device found");
    if (device >= n)
        return cli_fail("bench: device %d does not exist (%d device%s)", device, n,
                        n == 1 ? "" : "s");
    int pick = device;
    for (int i = 0; pick < 0 && i < n; i++)
        if (list[i].is_default) pick = i;
    if (pick < 0) pick = 0;
    *out = list[pick];
    return CLI_OK;
}

int bench_write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    if (!f) return cli_fail("bench: cannot write '%s'", path);
    size_t len = strlen(text);
    bool ok = fwrite(text, 1, len, f) == len;
    if (fclose(f) != 0) ok = false;
    if (!ok) return cli_fail("bench: error writing '%s'", path);
    return CLI_OK;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

double bench_median(double *v, int n) {
    if (n <= 0) return 0;
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

double bench_now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Appends a CSV field, quoted when it holds a comma, quote or newline. */
static void csv_field(FILE *f, const char *s, bool last) {
    if (strpbrk(s, ",\"\n\r")) {
        fputc('"', f);
        for (; *s; s++) {
            if (*s == '"') fputc('"', f);
            fputc(*s, f);
        }
        fputc('"', f);
    } else {
        fputs(s, f);
    }
    fputc(last ? '\n' : ',', f);
}

static const char *json_str(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : "";
}

static double json_num(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

/* The model object (root "model", or in "models") whose path is `path`; NULL if none. */
static const cJSON *find_model(const cJSON *root, const char *path) {
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(root, "model");
    if (m && !strcmp(json_str(m, "path"), path)) return m;
    cJSON_ArrayForEach(m, cJSON_GetObjectItemCaseSensitive(root, "models")) {
        if (!strcmp(json_str(m, "path"), path)) return m;
    }
    return NULL;
}

/* One row per model result: device, driver, model, size, type, test, n_tokens, t/s, sd, reps.
 * path "-" = stdout. */
static int write_csv(const char *path, const cJSON *root) {
    const bool to_stdout = !strcmp(path, "-");
    FILE *f = to_stdout ? stdout : fopen(path, "wb");
    if (!f) return cli_fail("bench: cannot write '%s'", path);
    const cJSON *dev = cJSON_GetObjectItemCaseSensitive(root, "device");
    const cJSON *res = cJSON_GetObjectItemCaseSensitive(root, "results");
    fputs("device,driver,model,model_size_bytes,model_type,test,n_tokens,n_depth,tokens_per_s,"
          "stddev,reps,n_gen\n",
          f);
    const cJSON *r;
    cJSON_ArrayForEach(r, res) {
        char num[64];
        const cJSON *model = find_model(root, json_str(r, "model"));
        csv_field(f, json_str(dev, "name"), false);
        csv_field(f, json_str(dev, "driver"), false);
        csv_field(f, json_str(model, "path"), false);
        snprintf(num, sizeof num, "%.0f", json_num(model, "size_bytes"));
        csv_field(f, num, false);
        csv_field(f, json_str(model, "type"), false);
        csv_field(f, json_str(r, "test"), false);
        snprintf(num, sizeof num, "%.0f", json_num(r, "n_tokens"));
        csv_field(f, num, false);
        snprintf(num, sizeof num, "%.0f", json_num(r, "n_depth"));
        csv_field(f, num, false);
        snprintf(num, sizeof num, "%.3f", json_num(r, "tokens_per_s"));
        csv_field(f, num, false);
        snprintf(num, sizeof num, "%.3f", json_num(r, "stddev"));
        csv_field(f, num, false);
        snprintf(num, sizeof num, "%.0f", json_num(r, "reps"));
        csv_field(f, num, false);
        snprintf(num, sizeof num, "%.0f", json_num(r, "n_gen")); /* ppP+tgN: N, else 0 */
        csv_field(f, num, true);
    }
    bool ok = !ferror(f);
    if (to_stdout ? fflush(f) != 0 : fclose(f) != 0) ok = false;
    if (!ok) return cli_fail("bench: error writing '%s'", path);
    return CLI_OK;
}

static int write_json(const char *path, const cJSON *root) {
    char *text = cJSON_Print(root);
    if (!text) return cli_fail("bench: out of memory rendering JSON");
    size_t len = strlen(text);
    char *withnl = malloc(len + 2);
    int rc;
    if (!withnl) {
        rc = cli_fail("bench: out of memory rendering JSON");
    } else {
        memcpy(withnl, text, len);
        withnl[len] = '\n';
        withnl[len + 1] = 0;
        if (!strcmp(path, "-"))
            rc = fputs(withnl, stdout) < 0 || fflush(stdout) ? cli_fail("bench: error writing JSON")
                                                             : CLI_OK;
        else
            rc = bench_write_file(path, withnl);
    }
    free(withnl);
    cJSON_free(text);
    return rc;
}

/* Fetches the value of option argv[*i] into *val, or reports a usage error. */
static bool take_value(int argc, char **argv, int *i, const char **val) {
    if (*i + 1 >= argc) return false;
    *val = argv[++*i];
    return true;
}

/* Appends the comma-separated numbers of s (each in [min, max]) to out[*n] (at most
 * BENCH_MAX_LIST in all). False on a bad or empty value or too many. */
static bool parse_list(const char *s, long min, long max, int *out, int *n) {
    char buf[256];
    if (!s || !*s || strlen(s) >= sizeof buf) return false;
    snprintf(buf, sizeof buf, "%s", s);
    char *save = NULL;
    for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        long v;
        if (*n == BENCH_MAX_LIST || !cli_parse_long(t, min, max, &v)) return false;
        out[(*n)++] = (int)v;
    }
    return s[strlen(s) - 1] != ',' && s[0] != ',' && !strstr(s, ",,");
}

int cmd_bench(int argc, char **argv) {
    bool micro = false, quick = false, quiet = false, report = false;
    const char *json = NULL, *csv = NULL, *md = NULL, *png = NULL, *format = NULL;
    const char *models[BENCH_MAX_LIST];
    int n_models = 0;
    static char split[8192]; /* the names of -m a,b */
    size_t split_used = 0;
    long device = -1, reps = -1;
    double max_run = 5.0;
    const char *inputs[MAX_REPORT_INPUTS];
    int n_inputs = 0;
    bool have_max_run = false, stats = false, cpu = false;
    bool tokenizer = false, have_policy = false, paging = false, have_r = false, shaders = false;
    bool serve = false, no_paging = false;
    const char *cpu_isa = NULL;
    int par[BENCH_MAX_LIST], n_par = 0;
    uint64_t vram_budget = 0;
    int policy = VKM_EXPERT_POLICY_DEFAULT, prefetch = VKM_PREFETCH_AUTO;
    bench_model_opts bo = {.device = -1};
    gen_exec exec = {0};

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = NULL;
        const int xr = gen_parse_exec_flag(&exec, argc, argv, &i, USAGE);
        if (xr == CLI_OK) continue;
        if (xr != GEN_NOT_MINE) return xr;
        if (cli_is_help(a)) {
            print_help();
            return CLI_OK;
        } else if (!strcmp(a, "--micro")) {
            micro = true;
        } else if (!strcmp(a, "--quick")) {
            quick = true;
        } else if (!strcmp(a, "--cpu")) {
            cpu = true;
        } else if (!strcmp(a, "--cpu-isa")) {
            if (!take_value(argc, argv, &i, &v) || !bench_cpu_parse_isas(v, NULL))
                return cli_usage_error(USAGE, "--cpu-isa needs portable, avx2, avx512, auto or "
                                              "all, separated by commas");
            cpu_isa = v;
        } else if (!strcmp(a, "--quiet")) {
            quiet = true;
        } else if (!strcmp(a, "--report")) {
            report = true;
        } else if (!strcmp(a, "--tokenizer")) {
            tokenizer = true;
        } else if (!strcmp(a, "--paging")) {
            paging = true;
        } else if (!strcmp(a, "--shaders")) {
            shaders = true;
        } else if (!strcmp(a, "--serve")) {
            serve = true;
        } else if (!strcmp(a, "--no-paging")) {
            no_paging = true;
        } else if (!strcmp(a, "--parallel-list")) {
            if (!take_value(argc, argv, &i, &v) || !parse_list(v, 1, 64, par, &n_par))
                return cli_usage_error(USAGE,
                                       "--parallel-list needs stream counts in 1..64, separated "
                                       "by commas (at most %d)",
                                       BENCH_MAX_LIST);
        } else if (!strcmp(a, "--stats")) {
            stats = true;
        } else if (!strcmp(a, "--vram-budget")) {
            if (!take_value(argc, argv, &i, &v) || !cli_parse_size(v, &vram_budget) || !vram_budget)
                return cli_usage_error(USAGE, "--vram-budget needs a size such as 512M or 12G");
        } else if (!strcmp(a, "--expert-policy")) {
            if (!take_value(argc, argv, &i, &v) || (strcmp(v, "lru") && strcmp(v, "lfu")))
                return cli_usage_error(USAGE, "--expert-policy needs lru or lfu");
            policy = !strcmp(v, "lfu") ? VKM_EXPERT_LFU : VKM_EXPERT_LRU;
            have_policy = true;
        } else if (!strcmp(a, "--prefetch")) {
            if (!take_value(argc, argv, &i, &v) || (strcmp(v, "on") && strcmp(v, "off")))
                return cli_usage_error(USAGE, "--prefetch needs on or off");
            prefetch = !strcmp(v, "on") ? VKM_PREFETCH_ON : VKM_PREFETCH_OFF;
        } else if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
            if (!take_value(argc, argv, &i, &v) || !*v)
                return cli_usage_error(USAGE, "%s needs a file", a);
            /* a,b,c: several models (not split when the whole value names a file) */
            if (access(v, F_OK) == 0 || !strchr(v, ',')) {
                if (n_models == BENCH_MAX_LIST)
                    return cli_usage_error(USAGE, "at most %d models", BENCH_MAX_LIST);
                models[n_models++] = v;
                continue;
            }
            for (const char *t = v; *t;) {
                const size_t len = strcspn(t, ",");
                if (!len || len >= sizeof split - split_used)
                    return cli_usage_error(USAGE, "%s %s: an empty or too long file name", a, v);
                if (n_models == BENCH_MAX_LIST)
                    return cli_usage_error(USAGE, "at most %d models", BENCH_MAX_LIST);
                memcpy(split + split_used, t, len);
                split[split_used + len] = 0;
                models[n_models++] = split + split_used;
                split_used += len + 1;
                t += len;
                if (*t == ',') t++;
            }
        } else if (!strcmp(a, "--json") || !strcmp(a, "--csv") || !strcmp(a, "--md") ||
                   !strcmp(a, "--png")) {
            if (!take_value(argc, argv, &i, &v))
                return cli_usage_error(USAGE, "%s needs a file", a);
            if (!*v) return cli_usage_error(USAGE, "%s: empty file name", a);
            *(!strcmp(a, "--json")  ? &json
              : !strcmp(a, "--csv") ? &csv
              : !strcmp(a, "--md")  ? &md
                                    : &png) = v;
        } else if (!strcmp(a, "-o") || !strcmp(a, "--output")) {
            if (!take_value(argc, argv, &i, &v) ||
                (strcmp(v, "md") && strcmp(v, "json") && strcmp(v, "csv")))
                return cli_usage_error(USAGE, "%s needs md, json or csv", a);
            format = v;
        } else if (!strcmp(a, "--device")) {
            if (!take_value(argc, argv, &i, &v))
                return cli_usage_error(USAGE, "--device needs a value");
            if (!cli_parse_device(USAGE, v, &device)) return CLI_USAGE;
        } else if (!strcmp(a, "-p") || !strcmp(a, "--n-prompt")) {
            if (!take_value(argc, argv, &i, &v) ||
                !parse_list(v, 0, 65536, bo.prompts, &bo.n_prompts))
                return cli_usage_error(USAGE,
                                       "%s needs token counts in 0..65536, separated by commas "
                                       "(at most %d)",
                                       a, BENCH_MAX_LIST);
        } else if (!strcmp(a, "-n") || !strcmp(a, "--n-gen")) {
            if (!take_value(argc, argv, &i, &v) || !parse_list(v, 0, 65536, bo.gens, &bo.n_gens))
                return cli_usage_error(USAGE,
                                       "%s needs token counts in 0..65536, separated by commas "
                                       "(at most %d)",
                                       a, BENCH_MAX_LIST);
        } else if (!strcmp(a, "-d") || !strcmp(a, "--n-depth")) {
            if (!take_value(argc, argv, &i, &v) ||
                !parse_list(v, 0, 65536, bo.depths, &bo.n_depths))
                return cli_usage_error(USAGE,
                                       "%s needs token counts in 0..65536, separated by commas "
                                       "(at most %d)",
                                       a, BENCH_MAX_LIST);
        } else if (!strcmp(a, "-pg")) {
            int pair[BENCH_MAX_LIST], n = 0;
            if (!take_value(argc, argv, &i, &v) || !parse_list(v, 0, 65536, pair, &n) || n != 2 ||
                pair[0] < 1 || pair[1] < 1 || bo.n_pg == BENCH_MAX_LIST)
                return cli_usage_error(USAGE,
                                       "-pg needs P,N: prompt and generated token counts, each "
                                       "1..65536");
            bo.pg[bo.n_pg][0] = pair[0];
            bo.pg[bo.n_pg++][1] = pair[1];
        } else if (!strcmp(a, "-r") || !strcmp(a, "--reps")) {
            if (!take_value(argc, argv, &i, &v) || !cli_parse_long(v, 1, 1000, &reps))
                return cli_usage_error(USAGE, "%s needs a repetition count in 1..1000", a);
            have_r = true;
        } else if (!strcmp(a, "--max-run")) {
            if (!take_value(argc, argv, &i, &v) || !cli_parse_float(v, 0.001, 3600, &max_run))
                return cli_usage_error(USAGE, "--max-run needs seconds in 0.001..3600");
            have_max_run = true;
        } else if (report && a[0] != '-') {
            if (n_inputs == MAX_REPORT_INPUTS)
                return cli_usage_error(USAGE, "--report: at most %d files", MAX_REPORT_INPUTS);
            inputs[n_inputs++] = a;
        } else {
            return cli_usage_error(USAGE, "bench: unknown option '%s'", a);
        }
    }
    const char *model = n_models ? models[0] : NULL;
    const bool have_p = bo.n_prompts > 0, have_n = bo.n_gens > 0, have_d = bo.n_depths > 0;
    const bool have_pg = bo.n_pg > 0;

    if (n_models > 1 && (paging || tokenizer || shaders || serve))
        return cli_usage_error(USAGE,
                               "--paging, --serve, --shaders and --tokenizer take one model");
    if ((n_par || no_paging) && !serve)
        return cli_usage_error(USAGE, "--parallel-list and --no-paging go with --serve");
    if (serve) {
        if (micro || tokenizer || report || paging || shaders || quick || have_d || have_pg ||
            have_r || csv || md || png || have_max_run || stats || format)
            return cli_usage_error(USAGE, "--serve takes only -m, -p, -n, --parallel-list, "
                                          "--vram-budget, --expert-policy, --prefetch, "
                                          "--no-paging, --device, --json and --quiet");
        if (!model) return cli_usage_error(USAGE, "--serve needs -m MODEL");
        if (bo.n_prompts > 1 || bo.n_gens > 1)
            return cli_usage_error(USAGE, "--serve takes one -p and one -n value");
        if ((have_p && bo.prompts[0] < 1) || (have_n && bo.gens[0] < 2))
            return cli_usage_error(USAGE, "--serve needs -p of at least 1 and -n of at least 2");
    }
    if (shaders) {
        if (micro || tokenizer || report || paging || quick || have_p || have_n || have_d ||
            have_pg || have_r || csv || md || png || have_max_run || stats || vram_budget ||
            have_policy || format)
            return cli_usage_error(USAGE, "--shaders takes only -m, --device, --json and --quiet");
        if (!model) return cli_usage_error(USAGE, "--shaders needs -m MODEL");
    }
    if (paging) {
        if (micro || tokenizer || report || quick || have_p || have_d || have_pg || have_r || csv ||
            md || have_max_run || stats || vram_budget || have_policy || format || exec.any)
            return cli_usage_error(USAGE, "--paging takes only -m, -n, --device, --prefetch, "
                                          "--json, --png and --quiet");
        if (!model) return cli_usage_error(USAGE, "--paging needs -m MODEL");
        if (bo.n_gens > 1) return cli_usage_error(USAGE, "--paging takes one -n value");
        if (have_n && bo.gens[0] < 1)
            return cli_usage_error(USAGE, "--paging needs -n of at least 1");
    }
    if (report) {
        if (micro || model || json || csv || quick || have_p || have_n || have_d || have_pg ||
            reps > 0 || have_max_run || device >= 0 || tokenizer || format)
            return cli_usage_error(USAGE, "--report takes only result files, --md and --png");
        if (n_inputs == 0) return cli_usage_error(USAGE, "--report needs at least one file");
        if (cli_check_output("bench", "--md", md) || cli_check_output("bench", "--png", png))
            return CLI_ERROR;
        return bench_report_run(inputs, n_inputs, md, png);
    }
    if (md || (png && !paging))
        return cli_usage_error(USAGE, "--md goes with --report, --png with --report or --paging");
    if (tokenizer) {
        if (!model) return cli_usage_error(USAGE, "--tokenizer needs -m MODEL");
        if (micro || quick || have_p || have_n || have_d || have_pg || csv || have_max_run ||
            device >= 0 || stats || vram_budget || have_policy)
            return cli_usage_error(USAGE, "--tokenizer takes only -m, -r, --json and --quiet");
    }
    const bool cpu_threads_only = exec.any && !exec.cpu_moe && !exec.n_cpu_moe &&
                                  exec.expert_exec == 0 && cpu && micro && !model;
    if (cpu_isa && !(cpu && micro))
        return cli_usage_error(USAGE, "--cpu-isa goes with --micro --cpu");
    if (exec.any && !cpu_threads_only && (!model || tokenizer || shaders))
        return cli_usage_error(USAGE, "--expert-exec, --cpu-moe, --n-cpu-moe and --cpu-threads "
                                      "go with -m MODEL (the model benchmark)");
    if ((stats || vram_budget) && !model)
        return cli_usage_error(USAGE, "--stats and --vram-budget go with -m MODEL");
    if (!micro && !model)
        return cli_usage_error(USAGE,
                               "bench: give --micro, -m MODEL, --tokenizer -m MODEL or --report");
    if (cpu && !micro) return cli_usage_error(USAGE, "--cpu goes with --micro");
    if (cpu && model) return cli_usage_error(USAGE, "--cpu measures the CPU kernels alone: no -m");
    if (quick && !micro) return cli_usage_error(USAGE, "--quick goes with --micro");
    if (have_max_run && !micro) return cli_usage_error(USAGE, "--max-run goes with --micro");
    if ((have_p || have_n || have_d || have_pg || csv) && !model)
        return cli_usage_error(USAGE, "-p, -n, -pg, -d and --csv go with -m MODEL");
    if (!have_p) bo.prompts[bo.n_prompts++] = 64;
    if (!have_n) bo.gens[bo.n_gens++] = 32;
    if (!have_d) bo.depths[bo.n_depths++] = 0;
    bool any = have_pg;
    for (int i = 0; i < bo.n_prompts; i++) any = any || bo.prompts[i] > 0;
    for (int i = 0; i < bo.n_gens; i++) any = any || bo.gens[i] > 0;
    if (model && !paging && !tokenizer && !any)
        return cli_usage_error(USAGE, "-p 0 and -n 0: nothing to run");
    if (format && !strcmp(format, "csv") && (!model || paging || tokenizer))
        return cli_usage_error(USAGE, "-o csv goes with -m MODEL (the model benchmark)");
    if (format && ((!strcmp(format, "json") && json) || (!strcmp(format, "csv") && csv)))
        return cli_usage_error(USAGE, "-o %s and --%s: give one of them", format, format);
    const int n_stdout = (json && !strcmp(json, "-")) + (csv && !strcmp(csv, "-")) +
                         (format && strcmp(format, "md"));
    if (n_stdout > 1)
        return cli_usage_error(USAGE, "only one of -o, --json - and --csv - can go to stdout");
    if (format && !strcmp(format, "json")) json = "-";
    if (format && !strcmp(format, "csv")) csv = "-";
    /* an output that cannot be written fails now, not after a long benchmark */
    if (cli_check_output("bench", "--json", json) || cli_check_output("bench", "--csv", csv) ||
        cli_check_output("bench", "--png", png))
        return CLI_ERROR;

    vkm_gpu_device_info dev;
    const bool no_dev = tokenizer || cpu;
    int rc = no_dev ? CLI_OK : bench_find_device((int)device, &dev);
    if (rc) return rc;
    cJSON *root = cJSON_CreateObject();
    if (!root || (!no_dev && !bench_json_add(root, "device", bench_json_device(&dev))) ||
        !bench_json_add(root, "build", bench_json_build())) {
        cJSON_Delete(root);
        return cli_fail("bench: out of memory");
    }
    /* stdout holds the JSON or CSV document: the tables go to stderr meanwhile */
    int saved_stdout = -1;
    if (n_stdout) {
        fflush(stdout);
        saved_stdout = dup(STDOUT_FILENO);
        if (saved_stdout < 0 || dup2(STDERR_FILENO, STDOUT_FILENO) < 0) {
            cJSON_Delete(root);
            return cli_fail("bench: cannot redirect the tables: %s", strerror(errno));
        }
    }
    if (tokenizer) {
        bench_tok_opts to = {.model = model, .reps = reps > 0 ? (int)reps : 3, .quiet = quiet};
        rc = bench_tok_run(&to, root);
    }
    if (micro) {
        bench_micro_opts mo = {.device = (int)device,
                               .reps = reps > 0 ? (int)reps : 20,
                               .quick = quick,
                               .quiet = quiet,
                               .max_run_s = max_run,
                               .cpu = cpu,
                               .cpu_isa = cpu_isa,
                               .cpu_threads = exec.cpu_threads};
        rc = cpu ? bench_cpu_run(&mo, root) : bench_micro_run(&mo, root);
    }
    if (shaders) {
        vkm_kernels_layout kl = VKM_KERNELS_AUTO;
        rc = vkm_kernels_env(&kl) ? cli_fail_last() : CLI_OK;
        bench_shaders_opts so = {.model = model, .device = (int)device, .kernels = kl};
        if (!rc) rc = bench_shaders_run(&so, root);
    }
    if (paging) {
        bench_model_opts po = {.model = model,
                               .device = (int)device,
                               .n_gen = have_n ? bo.gens[0] : 32,
                               .quiet = quiet,
                               .prefetch = prefetch};
        rc = bench_paging_run(&po, png, root);
    }
    if (serve) {
        bench_serve_opts so = {.model = model,
                               .device = (int)device,
                               .n_prompt = have_p ? bo.prompts[0] : 16,
                               .n_gen = have_n ? bo.gens[0] : 32,
                               .vram_budget = vram_budget,
                               .no_paging = no_paging,
                               .expert_policy = policy,
                               .prefetch = prefetch,
                               .quiet = quiet};
        static const int def_par[] = {1, 2, 4, 8};
        so.n_parallel = n_par ? n_par : 4;
        for (int k = 0; k < so.n_parallel; k++) so.parallel[k] = n_par ? par[k] : def_par[k];
        rc = bench_serve_run(&so, root);
    }
    for (int m = 0; !rc && !tokenizer && !paging && !shaders && !serve && m < n_models; m++) {
        bo.model = models[m];
        bo.device = (int)device;
        bo.reps = reps > 0 ? (int)reps : 3;
        bo.quiet = quiet;
        bo.vram_budget = vram_budget;
        bo.expert_policy = policy;
        bo.stats = stats;
        bo.prefetch = prefetch;
        bo.exec = exec;
        bo.multi = n_models > 1;
        bo.header = m == 0;
        rc = bench_model_run(&bo, root);
    }
    if (saved_stdout >= 0) {
        fflush(stdout);
        dup2(saved_stdout, STDOUT_FILENO);
        close(saved_stdout);
    }
    if (!rc && json) rc = write_json(json, root);
    if (!rc && csv) rc = write_csv(csv, root);
    cJSON_Delete(root);
    return rc;
}
