/* cmd_bench_cpu.c - `vkmoe bench --micro --cpu`: the CPU expert kernels' GEMV GB/s per weight
 * type on expert shapes, against the machine's measured memory read bandwidth. No GPU needed.
 *
 * Method. Threads: one pool of (online CPUs - 1) workers plus the caller, as an engine would
 * run cold experts. Read bandwidth: every thread sums its share of a READ_BYTES buffer (larger
 * than any last-level cache) as 64-bit words; GB/s = bytes / time, the best of READ_REPS.
 * GEMV (n = 1 token, activations quantized once outside the timing, as per token in decode):
 * W {k, m} in several copies totalling ROTATE_BYTES, run in rotation so the weights come from
 * DRAM like an expert that is not in cache; GB/s = weight bytes / time, the median of about
 * TARGET_S seconds of runs (at least 3). Weights are PATTERN_ROWS random rows (vkm_ref_quant_row;
 * vkm_ref_random_iq_row for the IQ types it cannot quantize) repeated. Shapes: DeepSeek-V3 experts
 * 7168x2048 (gate/up) and 2048x7168 (down), DeepSeek-V2-Lite 2048x1408 and 1408x2048 (k x m); a
 * type whose block does not divide k is listed as skipped (1408 is not a multiple of 256). --quick:
 * Q4_K Q6_K Q8_0 on the V3 shapes, 64 MiB. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "cmd_bench.h"
#include "cpu_matmul.h"
#include "err.h"
#include "qtype.h"
#include "ref_quant.h"

#define READ_BYTES ((size_t)512 << 20)
#define READ_REPS 5
#define ROTATE_BYTES ((size_t)256 << 20)
#define MAX_COPIES 64
#define PATTERN_ROWS 16
#define TARGET_S 0.5

typedef struct cpu_shape {
    const char *name;
    int64_t k, m;
} cpu_shape;

static const cpu_shape g_cpu_shapes[] = {{"v3 ffn_gate/up_exps", 7168, 2048},
                                         {"v3 ffn_down_exps", 2048, 7168},
                                         {"v2-lite ffn_gate/up_exps", 2048, 1408},
                                         {"v2-lite ffn_down_exps", 1408, 2048}};
static const uint32_t g_cpu_types[] = {
    VKM_F32,     VKM_F16,   VKM_BF16,   VKM_Q8_0,    VKM_Q6_K,  VKM_Q5_K,   VKM_Q5_1,   VKM_Q5_0,
    VKM_Q4_K,    VKM_Q4_1,  VKM_Q4_0,   VKM_Q3_K,    VKM_Q2_K,  VKM_IQ4_XS, VKM_IQ4_NL, VKM_IQ3_S,
    VKM_IQ3_XXS, VKM_IQ2_S, VKM_IQ2_XS, VKM_IQ2_XXS, VKM_IQ1_M, VKM_IQ1_S};
static const uint32_t g_cpu_quick[] = {VKM_Q8_0, VKM_Q6_K, VKM_Q4_K};

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* ---- read bandwidth ---- */

typedef struct read_job {
    const uint64_t *buf;
    int64_t words_per_item;
    uint64_t sums[257]; /* one per item, so no two threads write the same word often */
} read_job;

static void read_items(void *ctx, int64_t b, int64_t e) {
    read_job *j = ctx;
    for (int64_t it = b; it < e; it++) {
        const uint64_t *p = j->buf + it * j->words_per_item;
        uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        for (int64_t i = 0; i < j->words_per_item; i += 4) {
            s0 += p[i];
            s1 += p[i + 1];
            s2 += p[i + 2];
            s3 += p[i + 3];
        }
        j->sums[it] = s0 + s1 + s2 + s3;
    }
}

static double read_gbps(vkm_cpu_pool *pool, size_t bytes) {
    uint64_t *buf = malloc(bytes);
    if (!buf) return 0;
    for (size_t i = 0; i < bytes / 8; i++) buf[i] = i * 0x9E3779B97F4A7C15ull;
    const int64_t items = 256; /* 2 MiB each of 512 MiB */
    read_job j = {buf, (int64_t)(bytes / 8 / (size_t)items), {0}};
    double best = 0;
    for (int r = 0; r < READ_REPS; r++) {
        double t0 = now_s();
        vkm_cpu_pool_run(pool, read_items, &j, items, 1);
        double g = (double)bytes / (now_s() - t0) / 1e9;
        if (g > best) best = g;
    }
    uint64_t s = 0;
    for (int i = 0; i < items; i++) s += j.sums[i];
    free(buf);
    return s == 1 ? 0 : best; /* uses the sums, so the loop is not optimized away */
}

/* ---- GEMV ---- */

/* Median seconds of one n = 1 GEMV of type on shape s, weights in rotation; 0 if skipped. */
static int time_gemv(vkm_cpu_pool *pool, uint32_t type, const cpu_shape *s, bool quick, double *sec,
                     size_t *wbytes) {
    const size_t rb = vkm_qtype_row_bytes(type, (uint64_t)s->k), size = rb * (size_t)s->m;
    *sec = 0;
    *wbytes = size;
    if (!rb || !vkm_cpu_act_bytes(type, s->k)) return 0;
    size_t rot = quick ? ROTATE_BYTES / 4 : ROTATE_BYTES;
    int copies = (int)(rot / size) + 1;
    if (copies > MAX_COPIES) copies = MAX_COPIES;
    uint8_t *w = malloc(size * (size_t)copies), *pat = malloc(rb * PATTERN_ROWS);
    float *x = malloc(sizeof(float) * (size_t)s->k), *y = malloc(sizeof(float) * (size_t)s->m);
    void *act = malloc(vkm_cpu_act_bytes(type, s->k));
    int rc = 0;
    if (!w || !pat || !x || !y || !act) {
        rc = vkm_error(VKM_ENOMEM, "out of memory for %s weights", vkm_qtype_name(type));
        goto done;
    }
    uint32_t seed = 12345;
    for (int r = 0; r < PATTERN_ROWS && !rc; r++) {
        for (int64_t i = 0; i < s->k; i++) {
            seed = seed * 1664525u + 1013904223u;
            x[i] = ((float)(seed >> 8) / 16777216.0f - 0.5f) * 0.1f;
        }
        rc = vkm_ref_quant_row(type, x, pat + (size_t)r * rb, s->k);
        if (rc == VKM_EUNSUPPORTED) { /* IQ types without a quantizer: random valid blocks */
            uint64_t st = seed | 1u;
            rc = vkm_ref_random_iq_row(type, &st, 0.03f, pat + (size_t)r * rb, s->k);
        }
    }
    for (size_t off = 0; !rc && off < size * (size_t)copies; off += rb)
        memcpy(w + off, pat + (off / rb % PATTERN_ROWS) * rb, rb);
    for (int64_t i = 0; i < s->k; i++) x[i] = (float)((i * 37) % 101) / 50.0f - 1.0f;
    if (!rc) rc = vkm_cpu_quant_act(type, x, s->k, act);
    if (rc) goto done;
    double times[256];
    int n = 0;
    double t_start = now_s();
    /* one warm-up pass over every copy, then timed runs */
    for (int c = 0; c < copies && !rc; c++)
        rc = vkm_cpu_matmul_q(pool, type, w + (size_t)c * size, s->k, s->m, act, 1, y);
    t_start = now_s();
    while (!rc && n < 256 && (n < 3 || now_s() - t_start < TARGET_S)) {
        double t0 = now_s();
        rc = vkm_cpu_matmul_q(pool, type, w + (size_t)(n % copies) * size, s->k, s->m, act, 1, y);
        times[n++] = now_s() - t0;
    }
    if (!rc) {
        qsort(times, (size_t)n, sizeof times[0], cmp_double);
        *sec = times[n / 2];
    }
done:
    free(w);
    free(pat);
    free(x);
    free(y);
    free(act);
    return rc;
}

static void cpu_model_name(char *buf, size_t n) {
    snprintf(buf, n, "unknown CPU");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        char *c = strchr(line, ':');
        if (!strncmp(line, "model name", 10) && c) {
            c += 1 + (c[1] == ' ');
            c[strcspn(c, "\n")] = 0;
            snprintf(buf, n, "%s", c);
            break;
        }
    }
    fclose(f);
}

int bench_cpu_parse_isas(const char *list, int *out) {
    int n = 0;
    char buf[128];
    if (!list || !*list || strlen(list) >= sizeof buf) return 0;
    snprintf(buf, sizeof buf, "%s", list);
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        const bool all = !strcmp(t, "all");
        const int isa = all ? 0 : vkm_cpu_isa_from_name(t);
        if (isa < 0) return 0;
        for (int c = all ? VKM_CPU_ISA_PORTABLE : isa; c <= (all ? VKM_CPU_ISA_AVX512 : isa); c++) {
            if (all && !vkm_cpu_isa_available(c)) continue;
            if (n == 4) return 0;
            if (out) out[n] = c;
            n++;
        }
    }
    return list[strlen(list) - 1] == ',' ? 0 : n;
}

int bench_cpu_run(const bench_micro_opts *o, cJSON *root) {
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    int workers = ncpu > 1 ? (int)(ncpu > 257 ? 256 : ncpu - 1) : 0;
    if (o->cpu_threads > 0) workers = o->cpu_threads - 1;
    int isas[4], n_isa = bench_cpu_parse_isas(o->cpu_isa ? o->cpu_isa : "auto", isas);
    for (int i = 0; i < n_isa; i++) {
        if (isas[i] == VKM_CPU_ISA_AUTO) {
            if (vkm_cpu_set_isa(VKM_CPU_ISA_AUTO)) return cli_fail("bench: %s", vkm_errmsg());
            isas[i] = vkm_cpu_isa();
        }
        if (!vkm_cpu_isa_available(isas[i]))
            return cli_fail("bench --micro --cpu: kernels %s are not available on this CPU",
                            vkm_cpu_isa_name(isas[i]));
    }
    vkm_cpu_pool *pool = NULL;
    if (vkm_cpu_pool_create(workers, &pool))
        return cli_fail("bench --micro --cpu: %s", vkm_errmsg());
    char cpu[256];
    cpu_model_name(cpu, sizeof cpu);
    const char *isa = vkm_cpu_isa_name(isas[0]);
    cJSON *jc = cJSON_CreateObject(), *jg = cJSON_CreateArray(), *js = cJSON_CreateArray();
    cJSON *ji = cJSON_CreateArray();
    int rc = 0;
    if (!jc || !jg || !js || !bench_json_add(root, "cpu_micro", jc)) {
        cJSON_Delete(jg);
        cJSON_Delete(js);
        vkm_cpu_pool_destroy(pool);
        return cli_fail("bench: out of memory");
    }
    for (int i = 0; ji && i < n_isa; i++)
        cJSON_AddItemToArray(ji, cJSON_CreateString(vkm_cpu_isa_name(isas[i])));
    if (!bench_json_add(jc, "gemv", jg) || !bench_json_add(jc, "skipped", js) ||
        !bench_json_add(jc, "isas", ji)) {
        vkm_cpu_pool_destroy(pool);
        return cli_fail("bench: out of memory");
    }
    if (!o->quiet) fprintf(stderr, "measuring read bandwidth ...\n");
    const double rd = read_gbps(pool, o->quick ? READ_BYTES / 4 : READ_BYTES);
    if (!cJSON_AddStringToObject(jc, "cpu", cpu) || !cJSON_AddStringToObject(jc, "isa", isa) ||
        !cJSON_AddNumberToObject(jc, "threads", workers + 1) ||
        !cJSON_AddNumberToObject(jc, "read_gbps", rd) ||
        !cJSON_AddBoolToObject(jc, "quick", o->quick))
        rc = vkm_error(VKM_ENOMEM, "out of memory");
    printf("CPU: %s, %d threads, kernels %s\nmemory read: %.2f GB/s\n", cpu, workers + 1, isa, rd);
    const uint32_t *types = o->quick ? g_cpu_quick : g_cpu_types;
    const int nt = o->quick ? 3 : (int)(sizeof g_cpu_types / sizeof g_cpu_types[0]);
    const int ns = o->quick ? 2 : 4;
    for (int ii = 0; ii < n_isa && !rc; ii++) {
        if ((rc = vkm_cpu_set_isa(isas[ii]))) break;
        if (n_isa > 1 || ii > 0) printf("\nkernels %s:\n", vkm_cpu_isa_name(isas[ii]));
        printf("\n| type | shape | k x m | GEMV GB/s | of read | us/GEMV "
               "|\n|---|---|---|---:|---:|---:|\n");
        for (int ti = 0; ti < nt && !rc; ti++)
            for (int si = 0; si < ns && !rc; si++) {
                const cpu_shape *s = &g_cpu_shapes[si];
                double sec;
                size_t bytes;
                if (!o->quiet)
                    fprintf(stderr, "GEMV %s %s ...\n", vkm_qtype_name(types[ti]), s->name);
                rc = time_gemv(pool, types[ti], s, o->quick, &sec, &bytes);
                if (rc) break;
                cJSON *e = cJSON_CreateObject();
                if (!e || !cJSON_AddItemToArray(sec > 0 ? jg : js, e) ||
                    !cJSON_AddStringToObject(e, "type", vkm_qtype_name(types[ti])) ||
                    !cJSON_AddStringToObject(e, "shape", s->name) ||
                    !cJSON_AddNumberToObject(e, "k", (double)s->k) ||
                    !cJSON_AddNumberToObject(e, "m", (double)s->m) ||
                    !cJSON_AddStringToObject(e, "isa", vkm_cpu_isa_name(isas[ii]))) {
                    rc = vkm_error(VKM_ENOMEM, "out of memory");
                    break;
                }
                if (sec <= 0) {
                    cJSON_AddStringToObject(e, "why", "k is not a multiple of the type's block");
                    continue;
                }
                const double g = (double)bytes / sec / 1e9;
                cJSON_AddNumberToObject(e, "gbps", g);
                cJSON_AddNumberToObject(e, "of_read", rd > 0 ? g / rd : 0);
                cJSON_AddNumberToObject(e, "seconds", sec);
                printf("| %s | %s | %lldx%lld | %.2f | %.0f%% | %.0f |\n",
                       vkm_qtype_name(types[ti]), s->name, (long long)s->k, (long long)s->m, g,
                       rd > 0 ? 100 * g / rd : 0, sec * 1e6);
            }
    }
    vkm_cpu_set_isa(VKM_CPU_ISA_AUTO);
    vkm_cpu_pool_destroy(pool);
    return rc ? cli_fail("bench --micro --cpu: %s", vkm_errmsg()) : CLI_OK;
}
