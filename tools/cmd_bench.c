/* cmd_bench.c - `vkmoe bench`: flag parsing, the JSON/CSV writers and helpers shared by the
 * benchmark modes (see cmd_bench.h). --micro and -m may be combined into one result file;
 * --report, --tokenizer (CPU only: no device is looked up or created) and --paging are modes
 * of their own. Exit status per cli.h: 2 for bad flags, 1 for runtime errors. */
#include "cmd_bench.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "err.h"
#include "vkmoe.h"

#define USAGE                                                                                      \
    "vkmoe bench --micro [--quick] [--device N] [-r REPS] [--max-run S] [--json F] [--quiet]\n"    \
    "       vkmoe bench -m MODEL [-p N] [-n N] [-d N] [-r REPS] [--device N] [--json F] [--csv "   \
    "F] "                                                                                          \
    "[--vram-budget SIZE] [--expert-policy lru|lfu] [--prefetch on|off] [--stats] [--quiet]\n"     \
    "       vkmoe bench --tokenizer -m MODEL [-r REPS] [--json F] [--quiet]\n"                     \
    "       vkmoe bench --paging -m MODEL [-n N] [--device N] [--prefetch on|off] [--json F] "     \
    "[--png F] [--quiet]\n"                                                                        \
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
        "  --max-run S   seconds (default 5)\n\n"
        "model benchmark (-m MODEL), like llama-bench:\n"
        "  -p N          prefill test ppN: N tokens in one eval from an empty cache (default 64,\n"
        "                0 = none)\n"
        "  -n N          decode test tgN: N evals of one token each (default 32, 0 = none)\n"
        "  -d N          depth: both tests start with N tokens already in the KV cache\n"
        "                (default 0; named \"pp64 @ d512\" as llama-bench does). The N tokens\n"
        "                are evaluated once, untimed; each repetition cuts the cache back to\n"
        "                them\n"
        "  -r REPS       repetitions of each test (default 3), after one warm-up; reports\n"
        "                tokens/s mean and standard deviation over the repetitions\n"
        "  --csv F       also write the results as CSV (one row per test)\n"
        "  --vram-budget SIZE  device bytes for weights + expert cache (K/M/G suffixes);\n"
        "                routed experts beyond it are paged from host memory (default: the\n"
        "                device's memory budget)\n"
        "  --expert-policy P   expert cache eviction: lru (default) or lfu\n"
        "  --prefetch on|off   speculative expert prefetch while paging (default: on with a\n"
        "                      dedicated transfer queue)\n"
        "  --stats       print the expert-paging counters on stderr after the run\n\n"
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
        "  -n N          decode steps per run (default 32, at least 1)\n"
        "  --png F       also draw tok/s and hit rate against the budget as PNG\n\n"
        "report (--report FILES...): merges result files from several machines into a markdown\n"
        "table (rows = device + model, columns = each test's t/s, copy GB/s and Q4_K GEMV GB/s\n"
        "when present)\n"
        "  --md F        write the table to F instead of stdout\n"
        "  --png F       also draw a grouped bar chart (one colour per device) as PNG\n\n"
        "common:\n"
        "  --device N    Vulkan device index (vkmoe devices); default: the '*' device\n"
        "  --json F      write the results as JSON to F\n"
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

/* One row per model result: device, driver, model, size, type, test, n_tokens, t/s, sd, reps. */
static int write_csv(const char *path, const cJSON *root) {
    FILE *f = fopen(path, "wb");
    if (!f) return cli_fail("bench: cannot write '%s'", path);
    const cJSON *dev = cJSON_GetObjectItemCaseSensitive(root, "device");
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    const cJSON *res = cJSON_GetObjectItemCaseSensitive(root, "results");
    fputs("device,driver,model,model_size_bytes,model_type,test,n_tokens,n_depth,tokens_per_s,"
          "stddev,reps\n",
          f);
    const cJSON *r;
    cJSON_ArrayForEach(r, res) {
        char num[64];
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
        csv_field(f, num, true);
    }
    bool ok = !ferror(f);
    if (fclose(f) != 0) ok = false;
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

int cmd_bench(int argc, char **argv) {
    bool micro = false, quick = false, quiet = false, report = false;
    const char *model = NULL, *json = NULL, *csv = NULL, *md = NULL, *png = NULL;
    long device = -1, n_prompt = 64, n_gen = 32, n_depth = 0, reps = -1;
    double max_run = 5.0;
    const char *inputs[MAX_REPORT_INPUTS];
    int n_inputs = 0;
    bool have_p = false, have_n = false, have_d = false, have_max_run = false, stats = false;
    bool tokenizer = false, have_policy = false, paging = false, have_r = false;
    uint64_t vram_budget = 0;
    int policy = VKM_EXPERT_LRU, prefetch = VKM_PREFETCH_AUTO;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = NULL;
        if (cli_is_help(a)) {
            print_help();
            return CLI_OK;
        } else if (!strcmp(a, "--micro")) {
            micro = true;
        } else if (!strcmp(a, "--quick")) {
            quick = true;
        } else if (!strcmp(a, "--quiet")) {
            quiet = true;
        } else if (!strcmp(a, "--report")) {
            report = true;
        } else if (!strcmp(a, "--tokenizer")) {
            tokenizer = true;
        } else if (!strcmp(a, "--paging")) {
            paging = true;
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
            if (!take_value(argc, argv, &i, &model))
                return cli_usage_error(USAGE, "%s needs a file", a);
        } else if (!strcmp(a, "--json") || !strcmp(a, "--csv") || !strcmp(a, "--md") ||
                   !strcmp(a, "--png")) {
            if (!take_value(argc, argv, &i, &v))
                return cli_usage_error(USAGE, "%s needs a file", a);
            if (!*v) return cli_usage_error(USAGE, "%s: empty file name", a);
            *(!strcmp(a, "--json")  ? &json
              : !strcmp(a, "--csv") ? &csv
              : !strcmp(a, "--md")  ? &md
                                    : &png) = v;
        } else if (!strcmp(a, "--device")) {
            if (!take_value(argc, argv, &i, &v))
                return cli_usage_error(USAGE, "--device needs a value");
            if (!cli_parse_device(USAGE, v, &device)) return CLI_USAGE;
        } else if (!strcmp(a, "-p") || !strcmp(a, "--n-prompt")) {
            if (!take_value(argc, argv, &i, &v) || !cli_parse_long(v, 0, 65536, &n_prompt))
                return cli_usage_error(USAGE, "%s needs a token count in 0..65536", a);
            have_p = true;
        } else if (!strcmp(a, "-n") || !strcmp(a, "--n-gen")) {
            if (!take_value(argc, argv, &i, &v) || !cli_parse_long(v, 0, 65536, &n_gen))
                return cli_usage_error(USAGE, "%s needs a token count in 0..65536", a);
            have_n = true;
        } else if (!strcmp(a, "-d") || !strcmp(a, "--n-depth")) {
            if (!take_value(argc, argv, &i, &v) || !cli_parse_long(v, 0, 65536, &n_depth))
                return cli_usage_error(USAGE, "%s needs a token count in 0..65536", a);
            have_d = true;
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

    if (paging) {
        if (micro || tokenizer || report || quick || have_p || have_d || have_r || csv || md ||
            have_max_run || stats || vram_budget || have_policy)
            return cli_usage_error(USAGE, "--paging takes only -m, -n, --device, --prefetch, "
                                          "--json, --png and --quiet");
        if (!model) return cli_usage_error(USAGE, "--paging needs -m MODEL");
        if (n_gen < 1) return cli_usage_error(USAGE, "--paging needs -n of at least 1");
    }
    if (report) {
        if (micro || model || json || csv || quick || have_p || have_n || have_d || reps > 0 ||
            have_max_run || device >= 0 || tokenizer)
            return cli_usage_error(USAGE, "--report takes only result files, --md and --png");
        if (n_inputs == 0) return cli_usage_error(USAGE, "--report needs at least one file");
        return bench_report_run(inputs, n_inputs, md, png);
    }
    if (md || (png && !paging))
        return cli_usage_error(USAGE, "--md goes with --report, --png with --report or --paging");
    if (tokenizer) {
        if (!model) return cli_usage_error(USAGE, "--tokenizer needs -m MODEL");
        if (micro || quick || have_p || have_n || have_d || csv || have_max_run || device >= 0 ||
            stats || vram_budget || have_policy)
            return cli_usage_error(USAGE, "--tokenizer takes only -m, -r, --json and --quiet");
    }
    if ((stats || vram_budget) && !model)
        return cli_usage_error(USAGE, "--stats and --vram-budget go with -m MODEL");
    if (!micro && !model)
        return cli_usage_error(USAGE,
                               "bench: give --micro, -m MODEL, --tokenizer -m MODEL or --report");
    if (quick && !micro) return cli_usage_error(USAGE, "--quick goes with --micro");
    if (have_max_run && !micro) return cli_usage_error(USAGE, "--max-run goes with --micro");
    if ((have_p || have_n || have_d || csv) && !model)
        return cli_usage_error(USAGE, "-p, -n, -d and --csv go with -m MODEL");
    if (model && n_prompt == 0 && n_gen == 0)
        return cli_usage_error(USAGE, "-p 0 and -n 0: nothing to run");

    vkm_gpu_device_info dev;
    int rc = tokenizer ? CLI_OK : bench_find_device((int)device, &dev);
    if (rc) return rc;
    cJSON *root = cJSON_CreateObject();
    if (!root || (!tokenizer && !bench_json_add(root, "device", bench_json_device(&dev))) ||
        !bench_json_add(root, "build", bench_json_build())) {
        cJSON_Delete(root);
        return cli_fail("bench: out of memory");
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
                               .max_run_s = max_run};
        rc = bench_micro_run(&mo, root);
    }
    if (paging) {
        bench_model_opts po = {.model = model,
                               .device = (int)device,
                               .n_gen = (int)n_gen,
                               .quiet = quiet,
                               .prefetch = prefetch};
        rc = bench_paging_run(&po, png, root);
    }
    if (!rc && model && !tokenizer && !paging) {
        bench_model_opts bo = {.model = model,
                               .device = (int)device,
                               .n_prompt = (int)n_prompt,
                               .n_gen = (int)n_gen,
                               .n_depth = (int)n_depth,
                               .reps = reps > 0 ? (int)reps : 3,
                               .quiet = quiet,
                               .vram_budget = vram_budget,
                               .expert_policy = policy,
                               .stats = stats,
                               .prefetch = prefetch};
        rc = bench_model_run(&bo, root);
    }
    if (!rc && json) rc = write_json(json, root);
    if (!rc && csv) rc = write_csv(csv, root);
    cJSON_Delete(root);
    return rc;
}
