/* cmd_bench_micro.c - `vkmoe bench --micro`: device copy bandwidth, GEMV GB/s and GEMM GFLOP/s
 * per weight type on DeepSeek-V3 shapes, timed with GPU timestamps.
 *
 * Method. Every measurement records its runs in one batch with a timestamp mark after each run
 * (the per-dispatch barriers of gpu.h serialise them), after a warm-up batch of one run; the
 * result is the median run time. The number of timed runs adapts: at most -r, about
 * TARGET_S seconds in all, at least 3 (or 1 when a single run already takes TARGET_S / 2).
 * Without timestamp support the batch wall time divided by the runs is used instead.
 *   copy: bench_copy over COPY_BYTES; GB/s = (read + write bytes) / time.
 *   upload: host-visible memory -> a device buffer with vkm_gpu_copy (the transfer queue, as the
 *         expert pager's uploads), UPLOAD_BYTES per copy, wall-clock time (submit and wait
 *         included), median of UPLOAD_REPS; GB/s = bytes / time (over PCIe on a discrete GPU).
 *   GEMV: n = 1; GB/s = weight bytes / time; weights are rotated over several copies totalling
 *         ROTATE_BYTES so that small matrices are not served from the GPU's last-level cache.
 *   GEMM: n = 512 tokens; GFLOP/s = 2 * k * m * n / time.
 * Weights are PATTERN_ROWS random rows (vkm_ref_quant_row; the IQ types it has no quantizer for:
 * vkm_ref_random_iq_row) repeated. Matrices larger than one
 * bindable buffer are split by rows over several buffers (and Y by columns), as an engine
 * would. Measurements that do not fit in memory, or whose run is predicted (from the same
 * type's earlier shapes) to exceed --max-run, are skipped and listed under "skipped". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cmd_bench.h"
#include "err.h"
#include "ops_matmul.h"
#include "qtype.h"
#include "ref_quant.h"

#define MIB (1024.0 * 1024.0)
#define TARGET_S 1.0                      /* timed seconds per measurement, roughly */
#define UPLOAD_BYTES ((uint64_t)64 << 20) /* host -> device copy size */
#define UPLOAD_REPS 5
#define COPY_BYTES (256ull << 20)   /* per buffer; --quick: 64 MiB */
#define ROTATE_BYTES (256ull << 20) /* GEMV weight copies in rotation; --quick: 32 MiB */
#define MAX_COPIES 16
#define PATTERN_ROWS 16
#define UPLOAD_CHUNK (8u << 20)
#define COPY_LOCAL 256u
#define COPY_MAX_GROUPS 8192u
#define GEMM_TOKENS 512
#define PROBE_ROWS 64 /* rows of the first run that estimates a type's speed */

typedef struct shape {
    const char *name; /* tensor role in DeepSeek-V3 */
    int64_t k, m;     /* W {k, m}: k inputs, m outputs */
} shape;

static const shape g_shapes[] = {
    {"ffn_gate_up_exps", 7168, 2048}, {"ffn_down_exps", 2048, 7168}, {"attn_q_a", 7168, 1536},
    {"attn_kv_a_mqa", 7168, 576},     {"output", 7168, 129280},
};
enum { N_SHAPES = sizeof g_shapes / sizeof g_shapes[0], N_SHAPES_QUICK = 2 };

/* Display order: floats, then quants from wide to narrow. */
static const uint32_t g_type_order[] = {
    VKM_F32,  VKM_F16,   VKM_BF16,   VKM_Q8_0,    VKM_Q6_K,   VKM_Q5_K, VKM_Q5_1,  VKM_Q5_0,
    VKM_Q4_K, VKM_Q4_1,  VKM_Q4_0,   VKM_IQ4_NL,  VKM_IQ4_XS, VKM_Q3_K, VKM_IQ3_S, VKM_IQ3_XXS,
    VKM_Q2_K, VKM_IQ2_S, VKM_IQ2_XS, VKM_IQ2_XXS, VKM_IQ1_M,  VKM_IQ1_S};
static const uint32_t g_quick_types[] = {VKM_F16, VKM_Q8_0, VKM_Q4_K};

typedef struct micro {
    vkm_gpu *gpu;
    const vkm_gpu_device_info *info;
    const bench_micro_opts *o;
    uint64_t max_buf; /* bytes of one buffer we create and bind */
    uint64_t mem_cap; /* bytes of device memory we allow ourselves at once */
    double copy_gbps;
    bool wall_clock;              /* timings fell back to wall clock */
    cJSON *gemv, *gemm, *skipped; /* arrays in the result */
    vkm_gpu_buf *x, *y;           /* X: GEMM_TOKENS x 7168 f32; Y: see y_cols */
    int64_t y_cols;               /* Y columns per dispatch: y holds GEMM_TOKENS x y_cols */
} micro;

/* One weight matrix W {k, m} of `type` in n_copies copies, each split by rows over n_parts
 * buffers of rows_per_part rows (the last may hold fewer). */
typedef struct wset {
    uint32_t type;
    int64_t k, m;
    size_t row_bytes;
    int64_t rows_per_part;
    int n_parts, n_copies;
    vkm_gpu_buf *bufs[MAX_COPIES * 64]; /* [copy * n_parts + part] */
} wset;

static bool g_quiet;

static void progress(const char *fmt, const char *a, const char *b) {
    if (g_quiet) return;
    fprintf(stderr, fmt, a, b);
    fflush(stderr);
}

/* ---- timing ---- */

typedef int (*record_fn)(micro *mc, void *ctx, int run);

/* Records `runs` runs (run ids first..first+runs-1) with a mark after each, submits, and fills
 * sec[runs] with per-run seconds. */
static int timed_batch(micro *mc, record_fn fn, void *ctx, int first, int runs, double *sec) {
    int rc = vkm_gpu_begin(mc->gpu);
    for (int r = 0; !rc && r < runs; r++) {
        rc = fn(mc, ctx, first + r);
        if (!rc) rc = vkm_gpu_mark(mc->gpu, "bench");
    }
    double t0 = bench_now_s();
    if (!rc) rc = vkm_gpu_submit(mc->gpu);
    double wall = bench_now_s() - t0;
    if (rc) return rc;
    vkm_gpu_timing *t = malloc((size_t)runs * sizeof *t);
    if (!t) return vkm_error(VKM_ENOMEM, "out of memory reading timings");
    int n = 0;
    rc = vkm_gpu_timings(mc->gpu, t, runs, &n);
    if (!rc) {
        if (n == runs) {
            for (int r = 0; r < runs; r++) sec[r] = 1e-9 * (double)t[r].ns;
        } else {
            mc->wall_clock = true;
            for (int r = 0; r < runs; r++) sec[r] = wall / runs;
        }
    }
    free(t);
    return rc;
}

/* Warm-up plus adaptive timed runs; *sec = median run time, *reps = timed runs. */
static int measure(micro *mc, record_fn fn, void *ctx, double *sec, int *reps) {
    double t1 = 0;
    int rc = timed_batch(mc, fn, ctx, 0, 1, &t1);
    if (rc) return rc;
    if (t1 * 2 >= TARGET_S || mc->o->reps == 1) {
        *sec = t1;
        *reps = 1;
        return VKM_OK;
    }
    int n = t1 > 0 ? (int)(TARGET_S / t1) : mc->o->reps;
    if (n < 3) n = 3;
    if (n > mc->o->reps) n = mc->o->reps;
    double *v = malloc((size_t)n * sizeof *v);
    if (!v) return vkm_error(VKM_ENOMEM, "out of memory timing");
    rc = timed_batch(mc, fn, ctx, 1, n, v);
    if (!rc) {
        *sec = bench_median(v, n);
        *reps = n;
    }
    free(v);
    return rc;
}

/* ---- copy bandwidth ---- */

typedef struct copy_ctx {
    vkm_gpu_kernel *k;
    vkm_gpu_buf *src, *dst;
    uint32_t words; /* 16-byte words */
} copy_ctx;

static int record_copy(micro *mc, void *ctx, int run) {
    copy_ctx *c = ctx;
    uint32_t groups = (c->words + COPY_LOCAL - 1) / COPY_LOCAL;
    if (groups > COPY_MAX_GROUPS) groups = COPY_MAX_GROUPS;
    vkm_gpu_arg args[2] = {{c->src, 0, 0}, {c->dst, 0, 0}};
    return vkm_gpu_dispatch(mc->gpu, c->k, args, 2, &c->words, groups, 1, 1);
}

/* Fills buf[0, size) with a byte pattern through bounded host chunks. */
static int fill_pattern(micro *mc, vkm_gpu_buf *buf, size_t size) {
    size_t chunk = size < UPLOAD_CHUNK ? size : UPLOAD_CHUNK;
    unsigned char *h = malloc(chunk ? chunk : 1);
    if (!h) return vkm_error(VKM_ENOMEM, "out of memory filling a buffer");
    for (size_t i = 0; i < chunk; i++) h[i] = (unsigned char)(i * 131u + 7u);
    int rc = VKM_OK;
    for (size_t off = 0; !rc && off < size; off += chunk)
        rc = vkm_gpu_upload(mc->gpu, buf, off, h, size - off < chunk ? size - off : chunk);
    free(h);
    return rc;
}

/* Host -> device copy bandwidth (see the top); *gbps = 0 when it cannot be measured. */
static int bench_upload(micro *mc, uint64_t bytes, double *gbps) {
    *gbps = 0;
    vkm_gpu_buf *h = NULL, *d = NULL;
    double t[UPLOAD_REPS];
    int rc = vkm_gpu_buf_create(mc->gpu, (size_t)bytes, VKM_BUF_HOST, &h);
    if (!rc) rc = vkm_gpu_buf_create(mc->gpu, (size_t)bytes, VKM_BUF_DEVICE, &d);
    if (!rc) memset(vkm_gpu_buf_map(h), 0x5A, (size_t)bytes);
    if (!rc) rc = vkm_gpu_copy(mc->gpu, h, 0, d, 0, (size_t)bytes); /* warm-up */
    for (int i = 0; !rc && i < UPLOAD_REPS; i++) {
        const double t0 = bench_now_s();
        rc = vkm_gpu_copy(mc->gpu, h, 0, d, 0, (size_t)bytes);
        t[i] = bench_now_s() - t0;
    }
    vkm_gpu_buf_destroy(mc->gpu, h);
    vkm_gpu_buf_destroy(mc->gpu, d);
    if (rc) return rc;
    const double med = bench_median(t, UPLOAD_REPS);
    *gbps = med > 0 ? (double)bytes / med * 1e-9 : 0;
    return VKM_OK;
}

static int bench_copy(micro *mc, cJSON *jm) {
    uint64_t bytes = mc->o->quick ? COPY_BYTES / 4 : COPY_BYTES;
    if (bytes > mc->max_buf) bytes = mc->max_buf;
    if (bytes > mc->mem_cap / 2) bytes = mc->mem_cap / 2;
    bytes &= ~(uint64_t)15;
    if (bytes < 16) return vkm_error(VKM_ENOMEM, "no room for the copy benchmark");
    copy_ctx c = {.words = (uint32_t)(bytes / 16)};
    uint32_t spec[1] = {COPY_LOCAL};
    double sec = 0;
    int reps = 0;
    progress("bench: %s copy bandwidth%s\n", "measuring", "");
    int rc = vkm_gpu_kernel_get(mc->gpu, VKM_SH_BENCH_COPY, spec, 1, 2, sizeof c.words, &c.k);
    if (!rc) rc = vkm_gpu_buf_create(mc->gpu, (size_t)bytes, VKM_BUF_DEVICE, &c.src);
    if (!rc) rc = vkm_gpu_buf_create(mc->gpu, (size_t)bytes, VKM_BUF_DEVICE, &c.dst);
    if (!rc) rc = fill_pattern(mc, c.src, (size_t)bytes);
    if (!rc) rc = fill_pattern(mc, c.dst, (size_t)bytes);
    if (!rc) rc = measure(mc, record_copy, &c, &sec, &reps);
    vkm_gpu_buf_destroy(mc->gpu, c.src);
    vkm_gpu_buf_destroy(mc->gpu, c.dst);
    if (rc) return rc;
    mc->copy_gbps = sec > 0 ? 2.0 * (double)bytes / sec * 1e-9 : 0;
    printf("copy %.0f MiB: %.2f GB/s (read + write, %.3f ms, %d rep%s)\n\n", (double)bytes / MIB,
           mc->copy_gbps, sec * 1e3, reps, reps == 1 ? "" : "s");
    fflush(stdout);
    if (!cJSON_AddNumberToObject(jm, "copy_bytes", (double)bytes) ||
        !cJSON_AddNumberToObject(jm, "copy_gbps", mc->copy_gbps) ||
        !cJSON_AddNumberToObject(jm, "copy_reps", reps))
        return vkm_error(VKM_ENOMEM, "out of memory");

    uint64_t ub = bytes < UPLOAD_BYTES ? bytes : UPLOAD_BYTES;
    double up = 0;
    progress("bench: %s upload bandwidth%s\n", "measuring", "");
    if ((rc = bench_upload(mc, ub, &up))) return rc;
    printf("upload %.0f MiB host -> device: %.2f GB/s (%s, median of %d)\n\n", (double)ub / MIB, up,
           vkm_gpu_info(mc->gpu)->transfer_queue
               ? "transfer queue"
               : "compute queue: the device has no transfer queue",
           UPLOAD_REPS);
    fflush(stdout);
    if (!cJSON_AddNumberToObject(jm, "upload_bytes", (double)ub) ||
        !cJSON_AddNumberToObject(jm, "upload_gbps", up))
        return vkm_error(VKM_ENOMEM, "out of memory");
    return VKM_OK;
}

/* ---- weights ---- */

static void wset_free(micro *mc, wset *w) {
    for (int i = 0; i < w->n_copies * w->n_parts; i++) vkm_gpu_buf_destroy(mc->gpu, w->bufs[i]);
    w->n_copies = 0;
}

static uint32_t lcg_next(uint32_t *s) {
    *s = *s * 1664525u + 1013904223u;
    return *s;
}

/* PATTERN_ROWS rows of k random values in [-1, 1) encoded as `type`. */
static int make_pattern(uint32_t type, int64_t k, size_t row_bytes, unsigned char **out) {
    *out = NULL;
    float *f = malloc((size_t)k * sizeof *f);
    unsigned char *p = malloc(row_bytes * PATTERN_ROWS);
    int rc = VKM_OK;
    if (!f || !p) rc = vkm_error(VKM_ENOMEM, "out of memory making weights");
    uint32_t seed = 12345u + type;
    for (int r = 0; !rc && r < PATTERN_ROWS; r++) {
        for (int64_t i = 0; i < k; i++)
            f[i] = (float)(lcg_next(&seed) >> 8) * (2.0f / 16777216.0f) - 1.0f;
        rc = vkm_ref_quant_row(type, f, p + (size_t)r * row_bytes, k);
        if (rc == VKM_EUNSUPPORTED) { /* the IQ types without a quantizer: random valid blocks */
            uint64_t st = seed | (uint64_t)(r + 1) << 32;
            rc = vkm_ref_random_iq_row(type, &st, 0.5f, p + (size_t)r * row_bytes, k);
        }
    }
    free(f);
    if (rc) {
        free(p);
        return rc;
    }
    *out = p;
    return VKM_OK;
}

/* Allocates and fills the copies; a "skip" reason (not an error) comes back in why. */
static int wset_make(micro *mc, uint32_t type, const shape *s, bool rotate, wset *w, char *why,
                     size_t why_n) {
    memset(w, 0, sizeof *w);
    why[0] = 0;
    w->type = type;
    w->k = s->k;
    w->m = s->m;
    w->row_bytes = vkm_ref_row_bytes(type, s->k);
    if (!w->row_bytes) return vkm_error(VKM_EINVAL, "%s: bad row length", vkm_qtype_name(type));
    uint64_t total = (uint64_t)w->row_bytes * (uint64_t)s->m;
    if (total > mc->mem_cap) {
        snprintf(why, why_n, "needs %.0f MiB, memory cap %.0f MiB", (double)total / MIB,
                 (double)mc->mem_cap / MIB);
        return VKM_OK;
    }
    w->rows_per_part = (int64_t)((mc->max_buf - 4) / w->row_bytes);
    if (w->rows_per_part < 1) {
        snprintf(why, why_n, "one row exceeds the largest buffer");
        return VKM_OK;
    }
    if (w->rows_per_part > s->m) w->rows_per_part = s->m;
    int64_t parts = (s->m + w->rows_per_part - 1) / w->rows_per_part;
    if (parts > 64) {
        snprintf(why, why_n, "needs %lld buffers", (long long)parts);
        return VKM_OK;
    }
    w->n_parts = (int)parts;
    uint64_t rot = mc->o->quick ? ROTATE_BYTES / 8 : ROTATE_BYTES;
    int copies = rotate ? (int)((rot + total - 1) / total) : 1;
    if (copies > MAX_COPIES) copies = MAX_COPIES;
    while (copies > 1 && total * (uint64_t)copies > mc->mem_cap) copies--;

    unsigned char *pat = NULL, *chunk = NULL;
    int rc = make_pattern(type, s->k, w->row_bytes, &pat);
    int64_t chunk_rows = (int64_t)(UPLOAD_CHUNK / w->row_bytes);
    if (chunk_rows < 1) chunk_rows = 1;
    if (chunk_rows > w->rows_per_part) chunk_rows = w->rows_per_part;
    if (!rc) {
        chunk = malloc((size_t)chunk_rows * w->row_bytes);
        if (!chunk) rc = vkm_error(VKM_ENOMEM, "out of memory making weights");
    }
    for (int64_t r = 0; !rc && r < chunk_rows; r++)
        memcpy(chunk + (size_t)r * w->row_bytes, pat + (size_t)(r % PATTERN_ROWS) * w->row_bytes,
               w->row_bytes);
    for (int c = 0; !rc && c < copies; c++) {
        for (int p = 0; !rc && p < w->n_parts; p++) {
            int64_t r0 = (int64_t)p * w->rows_per_part;
            int64_t rows = s->m - r0 < w->rows_per_part ? s->m - r0 : w->rows_per_part;
            size_t bytes = (size_t)rows * w->row_bytes;
            vkm_gpu_buf **b = &w->bufs[c * w->n_parts + p];
            rc = vkm_gpu_buf_create(mc->gpu, (bytes + 3) & ~(size_t)3, VKM_BUF_DEVICE, b);
            if (rc) break;
            w->n_copies = c + 1; /* so wset_free sees this copy's buffers */
            for (int64_t done = 0; !rc && done < rows; done += chunk_rows) {
                int64_t n = rows - done < chunk_rows ? rows - done : chunk_rows;
                rc = vkm_gpu_upload(mc->gpu, *b, (size_t)done * w->row_bytes, chunk,
                                    (size_t)n * w->row_bytes);
            }
        }
    }
    free(pat);
    free(chunk);
    if (rc == VKM_EDEVMEM && w->n_copies > 1) { /* fewer copies will do */
        int keep = w->n_copies - 1;
        for (int i = keep * w->n_parts; i < w->n_copies * w->n_parts; i++) {
            vkm_gpu_buf_destroy(mc->gpu, w->bufs[i]);
            w->bufs[i] = NULL;
        }
        w->n_copies = keep;
        rc = VKM_OK;
    } else if (rc == VKM_EDEVMEM) {
        wset_free(mc, w);
        snprintf(why, why_n, "out of device memory (%s)", vkm_errmsg());
        rc = VKM_OK;
    }
    if (rc) wset_free(mc, w);
    return rc;
}

typedef struct mm_ctx {
    wset *w;
    int64_t n;        /* X rows */
    int64_t max_rows; /* > 0: only the first max_rows rows of W (a speed probe) */
} mm_ctx;

/* One full matmul: every part of the copy this run uses, Y in y_cols slices. */
static int record_matmul(micro *mc, void *ctx, int run) {
    mm_ctx *c = ctx;
    wset *w = c->w;
    int copy = run % w->n_copies;
    int64_t cols = c->n == 1 ? GEMM_TOKENS * mc->y_cols : mc->y_cols; /* fits Y either way */
    int64_t m = c->max_rows > 0 && c->max_rows < w->m ? c->max_rows : w->m;
    for (int p = 0; p < w->n_parts && (int64_t)p * w->rows_per_part < m; p++) {
        int64_t r0 = (int64_t)p * w->rows_per_part;
        int64_t rows = m - r0 < w->rows_per_part ? m - r0 : w->rows_per_part;
        for (int64_t j = 0; j < rows; j += cols) {
            int64_t mcnt = rows - j < cols ? rows - j : cols;
            int rc = vkm_op_matmul(mc->gpu, w->type, w->bufs[copy * w->n_parts + p],
                                   (size_t)j * w->row_bytes, w->k, mcnt, mc->x, 0, c->n, mc->y, 0);
            if (rc) return rc;
        }
    }
    return VKM_OK;
}

static int add_skip(micro *mc, const char *kind, uint32_t type, const shape *s, const char *why) {
    char sh[64];
    snprintf(sh, sizeof sh, "%lldx%lld", (long long)s->k, (long long)s->m);
    printf("  %-5s %-5s %-12s skipped: %s\n", kind, vkm_qtype_name(type), sh, why);
    fflush(stdout);
    cJSON *o = cJSON_CreateObject();
    if (!o || !cJSON_AddStringToObject(o, "kind", kind) ||
        !cJSON_AddStringToObject(o, "type", vkm_qtype_name(type)) ||
        !cJSON_AddStringToObject(o, "shape", sh) || !cJSON_AddStringToObject(o, "reason", why) ||
        !cJSON_AddItemToArray(mc->skipped, o)) {
        cJSON_Delete(o);
        return vkm_error(VKM_ENOMEM, "out of memory");
    }
    return VKM_OK;
}

/* Estimates the speed (units per second) of a full matmul from the faster of two runs over the
 * first PROBE_ROWS rows, when *rate is still unknown; `units` is what the full matmul does (bytes
 * or flops). Dispatch overhead makes the probe pessimistic, which errs towards skipping; the
 * first run also pays what a driver does at a kernel's first use (lavapipe may compile it then),
 * hence the second. */
static int probe_rate(micro *mc, wset *w, int64_t n, double units, double *rate) {
    if (*rate > 0 || w->m <= PROBE_ROWS) return VKM_OK;
    mm_ctx c = {w, n, PROBE_ROWS};
    double sec = 0, again = 0;
    int rc = timed_batch(mc, record_matmul, &c, 0, 1, &sec);
    if (!rc) rc = timed_batch(mc, record_matmul, &c, 0, 1, &again);
    if (!rc && again > 0 && again < sec) sec = again;
    if (!rc && sec > 0) *rate = units * ((double)PROBE_ROWS / (double)w->m) / sec;
    return rc;
}

/* GEMV then GEMM of one (type, shape); rates carry the type's speeds for skip predictions. */
static int bench_type_shape(micro *mc, uint32_t type, const shape *s, double *gemv_bps,
                            double *gemm_fps) {
    char sh[64], why[160];
    snprintf(sh, sizeof sh, "%lldx%lld", (long long)s->k, (long long)s->m);
    uint64_t wbytes = (uint64_t)vkm_ref_row_bytes(type, s->k) * (uint64_t)s->m;
    double flops = 2.0 * (double)s->k * (double)s->m * GEMM_TOKENS;
    bool do_gemv = !(*gemv_bps > 0 && (double)wbytes / *gemv_bps > mc->o->max_run_s);
    bool do_gemm = !(*gemm_fps > 0 && flops / *gemm_fps > mc->o->max_run_s);
    if (!do_gemv && !do_gemm) {
        snprintf(why, sizeof why, "predicted %.1f s per run > --max-run %g",
                 (double)wbytes / *gemv_bps, mc->o->max_run_s);
        int rc = add_skip(mc, "gemv", type, s, why);
        if (rc) return rc;
        snprintf(why, sizeof why, "predicted %.1f s per run > --max-run %g", flops / *gemm_fps,
                 mc->o->max_run_s);
        return add_skip(mc, "gemm", type, s, why);
    }
    progress("bench: %s %s: preparing weights\n", vkm_qtype_name(type), sh);
    wset w;
    int rc = wset_make(mc, type, s, do_gemv, &w, why, sizeof why);
    if (rc) return rc;
    if (why[0]) {
        if (do_gemv) rc = add_skip(mc, "gemv", type, s, why);
        if (!rc && do_gemm) rc = add_skip(mc, "gemm", type, s, why);
        return rc;
    }
    if (do_gemv) rc = probe_rate(mc, &w, 1, (double)wbytes, gemv_bps);
    if (!rc && *gemv_bps > 0 && (double)wbytes / *gemv_bps > mc->o->max_run_s) {
        snprintf(why, sizeof why, "predicted %.1f s per run > --max-run %g",
                 (double)wbytes / *gemv_bps, mc->o->max_run_s);
        rc = add_skip(mc, "gemv", type, s, why);
        do_gemv = false;
    }
    if (!rc && do_gemv) {
        mm_ctx c = {&w, 1, 0};
        double sec = 0;
        int reps = 0;
        rc = measure(mc, record_matmul, &c, &sec, &reps);
        if (!rc) {
            double gbps = sec > 0 ? (double)wbytes / sec * 1e-9 : 0;
            double pct = mc->copy_gbps > 0 ? 100.0 * gbps / mc->copy_gbps : 0;
            if (sec > 0) *gemv_bps = (double)wbytes / sec;
            printf("  gemv  %-5s %-12s %-17s %10.1f us %9.2f GB/s %6.1f%% of copy  (%d cop%s, "
                   "%d rep%s)\n",
                   vkm_qtype_name(type), sh, s->name, sec * 1e6, gbps, pct, w.n_copies,
                   w.n_copies == 1 ? "y" : "ies", reps, reps == 1 ? "" : "s");
            fflush(stdout);
            cJSON *o = cJSON_CreateObject();
            if (!o || !cJSON_AddStringToObject(o, "type", vkm_qtype_name(type)) ||
                !cJSON_AddStringToObject(o, "shape", sh) ||
                !cJSON_AddStringToObject(o, "tensor", s->name) ||
                !cJSON_AddNumberToObject(o, "k", (double)s->k) ||
                !cJSON_AddNumberToObject(o, "m", (double)s->m) ||
                !cJSON_AddNumberToObject(o, "weight_bytes", (double)wbytes) ||
                !cJSON_AddNumberToObject(o, "time_us", sec * 1e6) ||
                !cJSON_AddNumberToObject(o, "gbps", gbps) ||
                !cJSON_AddNumberToObject(o, "pct_copy", pct) ||
                !cJSON_AddNumberToObject(o, "copies", w.n_copies) ||
                !cJSON_AddNumberToObject(o, "reps", reps) || !cJSON_AddItemToArray(mc->gemv, o)) {
                cJSON_Delete(o);
                rc = vkm_error(VKM_ENOMEM, "out of memory");
            }
        }
    }
    if (!rc && do_gemm) rc = probe_rate(mc, &w, GEMM_TOKENS, flops, gemm_fps);
    if (!rc && *gemm_fps > 0 && flops / *gemm_fps > mc->o->max_run_s) {
        snprintf(why, sizeof why, "predicted %.1f s per run > --max-run %g", flops / *gemm_fps,
                 mc->o->max_run_s);
        rc = add_skip(mc, "gemm", type, s, why);
        do_gemm = false;
    }
    if (!rc && do_gemm) {
        mm_ctx c = {&w, GEMM_TOKENS, 0};
        double sec = 0;
        int reps = 0;
        rc = measure(mc, record_matmul, &c, &sec, &reps);
        if (!rc) {
            double gflops = sec > 0 ? flops / sec * 1e-9 : 0;
            if (sec > 0) *gemm_fps = flops / sec;
            printf("  gemm  %-5s %-12s %-17s %10.3f ms %9.1f GFLOP/s  (n = %d, %d rep%s)\n",
                   vkm_qtype_name(type), sh, s->name, sec * 1e3, gflops, GEMM_TOKENS, reps,
                   reps == 1 ? "" : "s");
            fflush(stdout);
            cJSON *o = cJSON_CreateObject();
            if (!o || !cJSON_AddStringToObject(o, "type", vkm_qtype_name(type)) ||
                !cJSON_AddStringToObject(o, "shape", sh) ||
                !cJSON_AddStringToObject(o, "tensor", s->name) ||
                !cJSON_AddNumberToObject(o, "k", (double)s->k) ||
                !cJSON_AddNumberToObject(o, "m", (double)s->m) ||
                !cJSON_AddNumberToObject(o, "n_tokens", GEMM_TOKENS) ||
                !cJSON_AddNumberToObject(o, "time_us", sec * 1e6) ||
                !cJSON_AddNumberToObject(o, "gflops", gflops) ||
                !cJSON_AddNumberToObject(o, "reps", reps) || !cJSON_AddItemToArray(mc->gemm, o)) {
                cJSON_Delete(o);
                rc = vkm_error(VKM_ENOMEM, "out of memory");
            }
        }
    }
    wset_free(mc, &w);
    return rc;
}

/* The weight types to run: --quick's three, else every supported one in display order. */
static int pick_types(bool quick, uint32_t *out) {
    int n = 0;
    if (quick) {
        for (size_t i = 0; i < sizeof g_quick_types / sizeof g_quick_types[0]; i++)
            if (vkm_op_matmul_supported(g_quick_types[i])) out[n++] = g_quick_types[i];
        return n;
    }
    for (size_t i = 0; i < sizeof g_type_order / sizeof g_type_order[0]; i++)
        if (vkm_op_matmul_supported(g_type_order[i])) out[n++] = g_type_order[i];
    for (uint32_t t = 0; t < VKM_QTYPE_COUNT; t++) { /* supported types not in the list */
        bool listed = false;
        for (int i = 0; i < n; i++) listed |= out[i] == t;
        if (!listed && vkm_op_matmul_supported(t) && vkm_ref_row_bytes(t, 256)) out[n++] = t;
    }
    return n;
}

static int run_all(micro *mc, cJSON *jm) {
    const vkm_gpu_device_info *d = mc->info;
    mc->max_buf = d->max_buffer_bytes;
    if (mc->max_buf > (1ull << 32) - 4096) mc->max_buf = (1ull << 32) - 4096;
    mc->mem_cap = d->budget_bytes / 2;
    printf("device: %s (%s, %s)\n", d->name, vkm_gpu_type_name(d->type), d->driver);
    int rc = bench_copy(mc, jm);
    if (rc) return rc;

    /* X: GEMM_TOKENS x 7168 f32 random; Y: GEMM_TOKENS x y_cols f32 */
    int64_t kmax = 0;
    for (int i = 0; i < N_SHAPES; i++) kmax = g_shapes[i].k > kmax ? g_shapes[i].k : kmax;
    size_t xbytes = (size_t)kmax * GEMM_TOKENS * sizeof(float);
    mc->y_cols = (int64_t)(mc->max_buf / (GEMM_TOKENS * sizeof(float)));
    if (mc->y_cols > 16384) mc->y_cols = 16384;
    if (mc->y_cols < 1) return vkm_error(VKM_ENOMEM, "buffers too small for the benchmark");
    float *hx = malloc(xbytes);
    if (!hx) return vkm_error(VKM_ENOMEM, "out of memory");
    uint32_t seed = 99;
    for (size_t i = 0; i < xbytes / sizeof(float); i++)
        hx[i] = (float)(lcg_next(&seed) >> 8) * (2.0f / 16777216.0f) - 1.0f;
    rc = vkm_gpu_buf_create(mc->gpu, xbytes, VKM_BUF_DEVICE, &mc->x);
    if (!rc) rc = vkm_gpu_upload(mc->gpu, mc->x, 0, hx, xbytes);
    free(hx);
    if (!rc)
        rc = vkm_gpu_buf_create(mc->gpu, (size_t)mc->y_cols * GEMM_TOKENS * sizeof(float),
                                VKM_BUF_DEVICE, &mc->y);
    if (rc) return rc;

    uint32_t types[VKM_QTYPE_COUNT];
    int n_types = pick_types(mc->o->quick, types);
    int n_shapes = mc->o->quick ? N_SHAPES_QUICK : N_SHAPES;
    printf("GEMV (n = 1): weight bytes / time;  GEMM (n = %d): 2*k*m*n / time;  shape = k x m\n",
           GEMM_TOKENS);
    for (int t = 0; !rc && t < n_types; t++) {
        double gemv_bps = 0, gemm_fps = 0;
        for (int s = 0; !rc && s < n_shapes; s++)
            rc = bench_type_shape(mc, types[t], &g_shapes[s], &gemv_bps, &gemm_fps);
    }
    if (!rc && mc->wall_clock)
        printf("note: no GPU timestamps on this device; times are wall clock per batch\n");
    return rc;
}

int bench_micro_run(const bench_micro_opts *o, cJSON *root) {
    g_quiet = o->quiet;
    micro mc = {.o = o};
    vkm_gpu_options gopt = {.device = o->device};
    cJSON *jm = cJSON_CreateObject();
    if (!jm || !bench_json_add(root, "micro", jm)) return cli_fail("bench: out of memory");
    mc.gemv = cJSON_CreateArray();
    mc.gemm = cJSON_CreateArray();
    mc.skipped = cJSON_CreateArray();
    bool ok = cJSON_AddBoolToObject(jm, "quick", o->quick) &&
              cJSON_AddNumberToObject(jm, "max_reps", o->reps) &&
              bench_json_add(jm, "gemv", mc.gemv) && bench_json_add(jm, "gemm", mc.gemm) &&
              bench_json_add(jm, "skipped", mc.skipped);
    if (!ok) return cli_fail("bench: out of memory");
    int rc = vkm_kernels_env(&gopt.kernels);
    if (!rc) rc = vkm_gpu_create(&gopt, &mc.gpu);
    if (!rc) {
        mc.info = vkm_gpu_info(mc.gpu);
        rc = run_all(&mc, jm);
    }
    if (!rc && !cJSON_AddStringToObject(jm, "timing", mc.wall_clock ? "wall" : "gpu_timestamps"))
        rc = vkm_error(VKM_ENOMEM, "out of memory");
    vkm_gpu_buf_destroy(mc.gpu, mc.x);
    vkm_gpu_buf_destroy(mc.gpu, mc.y);
    vkm_gpu_destroy(mc.gpu);
    return rc ? cli_fail("bench --micro: %s", vkm_errmsg()) : CLI_OK;
}
