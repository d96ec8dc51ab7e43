/* cmd_bench_report.c - `vkmoe bench --report A.json B.json ...`: merges result files written by
 * `vkmoe bench --json` on several machines into a markdown table and, optionally, a PNG chart.
 *
 * Rows are entries, one per (device name, model file name) over all files: a machine's model
 * results and its micro results (separate files or one) merge into its rows, and the model of
 * each result is its own "model" (several models in one file give several rows) or the file's.
 * Columns are the model tests in first-seen order ("pp64 t/s", ...) then, when any file has
 * them, the micro copy GB/s and the Q4_K GEMV GB/s named with its shape (7168x2048, else the
 * first Q4_K row); a device's micro values go into each of its rows (a row of their own, model
 * "-", when it has no model results). The PNG has one panel per column with its own y scale
 * (units differ; a log scale when the values span two decades or more), the bars centred, one
 * colour per device, and a legend; drawing (5x7 bitmap font) is cmd_bench_draw.c's.
 * Every input is validated before anything is written: a file that cannot be read, is not
 * JSON, or lacks "device".name or a "results"/"micro" section is an error naming the file. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <stb/stb_image_write.h>

#include "cli.h"
#include "cmd_bench.h"
#include "cmd_bench_draw.h"

#define MAX_FILE_BYTES (64u << 20)
#define MAX_COLS 32
#define COL_COPY "copy GB/s"
#define COL_Q4K "Q4_K GEMV " /* + shape + " GB/s" */
#define MAX_ROWS 256

/* ---- the merged table ---- */

typedef struct entry {
    char label[264];  /* "device / model" */
    char device[128]; /* device name */
    char model[128];  /* model file name, or "-" */
    int colour;       /* index of the device among the devices, in first-seen order */
    double val[MAX_COLS], sd[MAX_COLS];
    bool has[MAX_COLS], has_sd[MAX_COLS];
} entry;

/* A device's micro results, applied to its rows once every file is read. */
typedef struct micro_vals {
    char device[128];
    char q4k_col[48];
    double copy, q4k;
    bool has_copy, has_q4k;
} micro_vals;

typedef struct table {
    char cols[MAX_COLS][48];
    int n_cols;
    entry *e; /* [MAX_ROWS] */
    int n;
    micro_vals *m; /* [MAX_ROWS] */
    int n_m;
    int n_devices;
} table;

/* The row of (device, model), added when new; NULL (message printed) past MAX_ROWS. */
static entry *row(table *t, const char *device, const char *model) {
    for (int i = 0; i < t->n; i++)
        if (!strcmp(t->e[i].device, device) && !strcmp(t->e[i].model, model)) return &t->e[i];
    if (t->n == MAX_ROWS) {
        cli_fail("bench --report: more than %d rows (device, model)", MAX_ROWS);
        return NULL;
    }
    entry *e = &t->e[t->n++];
    memset(e, 0, sizeof *e);
    snprintf(e->device, sizeof e->device, "%s", device);
    snprintf(e->model, sizeof e->model, "%s", model);
    snprintf(e->label, sizeof e->label, "%s / %s", e->device, e->model);
    e->colour = -1;
    for (int i = 0; i < t->n - 1 && e->colour < 0; i++)
        if (!strcmp(t->e[i].device, device)) e->colour = t->e[i].colour;
    if (e->colour < 0) e->colour = t->n_devices++;
    return e;
}

static int col_index(table *t, const char *name) {
    for (int i = 0; i < t->n_cols; i++)
        if (!strcmp(t->cols[i], name)) return i;
    if (t->n_cols == MAX_COLS) return -1;
    snprintf(t->cols[t->n_cols], sizeof t->cols[0], "%s", name);
    return t->n_cols++;
}

static char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        if (n + 1 >= cap) {
            if (cap >= MAX_FILE_BYTES) {
                free(buf);
                buf = NULL;
                break;
            }
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
        size_t got = fread(buf + n, 1, cap - 1 - n, f);
        n += got;
        if (got == 0) break;
    }
    if (buf && ferror(f)) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf) buf[n] = 0;
    *len = n;
    return buf;
}

static const char *base_name(const char *path) {
    const char *b = strrchr(path, '/');
    return b ? b + 1 : path;
}

/* Reads one result file into a new row of t; 1 on error (printed, naming the file). */
static int load(table *t, const char *path) {
    size_t len = 0;
    char *text = read_file(path, &len);
    if (!text)
        return cli_fail("bench --report: %s: cannot read the file (or it is over %u MiB)", path,
                        MAX_FILE_BYTES >> 20);
    if (strlen(text) != len) {
        free(text);
        return cli_fail("bench --report: %s: not a JSON text (contains a NUL byte)", path);
    }
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithOpts(text, &end, true);
    if (!root) {
        size_t at = end && end >= text ? (size_t)(end - text) : 0;
        free(text);
        return cli_fail("bench --report: %s: invalid JSON near byte %zu", path, at);
    }
    free(text);
    int rc = CLI_ERROR;
    const cJSON *dev = cJSON_GetObjectItemCaseSensitive(root, "device");
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(dev, "name");
    const cJSON *results = cJSON_GetObjectItemCaseSensitive(root, "results");
    const cJSON *micro = cJSON_GetObjectItemCaseSensitive(root, "micro");
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    const cJSON *mpath = cJSON_GetObjectItemCaseSensitive(model, "path");
    if (!cJSON_IsObject(root)) {
        cli_fail("bench --report: %s: the top level is not an object", path);
        goto out;
    }
    if (!cJSON_IsString(name)) {
        cli_fail("bench --report: %s: no \"device\" object with a \"name\" string", path);
        goto out;
    }
    if (!cJSON_IsArray(results) && !cJSON_IsObject(micro)) {
        cli_fail("bench --report: %s: neither a \"results\" array nor a \"micro\" object", path);
        goto out;
    }
    const char *file_model = cJSON_IsString(mpath) ? base_name(mpath->valuestring) : "-";
    int i = 0;
    const cJSON *r;
    cJSON_ArrayForEach(r, results) {
        const cJSON *test = cJSON_GetObjectItemCaseSensitive(r, "test");
        const cJSON *tps = cJSON_GetObjectItemCaseSensitive(r, "tokens_per_s");
        const cJSON *sd = cJSON_GetObjectItemCaseSensitive(r, "stddev");
        const cJSON *rm = cJSON_GetObjectItemCaseSensitive(r, "model");
        if (!cJSON_IsString(test) || !cJSON_IsNumber(tps) || !isfinite(tps->valuedouble)) {
            cli_fail("bench --report: %s: results[%d] needs a \"test\" string and a finite "
                     "\"tokens_per_s\" number",
                     path, i);
            goto out;
        }
        entry *e =
            row(t, name->valuestring, cJSON_IsString(rm) ? base_name(rm->valuestring) : file_model);
        if (!e) goto out;
        char col[48];
        snprintf(col, sizeof col, "%.36s t/s", test->valuestring);
        int c = col_index(t, col);
        if (c < 0) {
            cli_fail("bench --report: more than %d different columns", MAX_COLS);
            goto out;
        }
        e->val[c] = tps->valuedouble;
        e->has[c] = true;
        if (cJSON_IsNumber(sd) && isfinite(sd->valuedouble)) {
            e->sd[c] = sd->valuedouble;
            e->has_sd[c] = true;
        }
        i++;
    }
    if (cJSON_IsObject(micro)) {
        if (t->n_m == MAX_ROWS) {
            cli_fail("bench --report: more than %d micro results", MAX_ROWS);
            goto out;
        }
        micro_vals *mv = &t->m[t->n_m++];
        memset(mv, 0, sizeof *mv);
        snprintf(mv->device, sizeof mv->device, "%s", name->valuestring);
        const cJSON *copy = cJSON_GetObjectItemCaseSensitive(micro, "copy_gbps");
        if (cJSON_IsNumber(copy) && isfinite(copy->valuedouble)) {
            mv->copy = copy->valuedouble;
            mv->has_copy = true;
        }
        const cJSON *gemv = cJSON_GetObjectItemCaseSensitive(micro, "gemv"), *best = NULL;
        const char *best_shape = "";
        cJSON_ArrayForEach(r, gemv) {
            const cJSON *ty = cJSON_GetObjectItemCaseSensitive(r, "type");
            const cJSON *sh = cJSON_GetObjectItemCaseSensitive(r, "shape");
            const cJSON *gb = cJSON_GetObjectItemCaseSensitive(r, "gbps");
            if (!cJSON_IsString(ty) || strcmp(ty->valuestring, "Q4_K") || !cJSON_IsNumber(gb) ||
                !isfinite(gb->valuedouble))
                continue;
            if (!best || (cJSON_IsString(sh) && !strcmp(sh->valuestring, "7168x2048"))) {
                best = gb;
                best_shape = cJSON_IsString(sh) ? sh->valuestring : "";
            }
            if (cJSON_IsString(sh) && !strcmp(sh->valuestring, "7168x2048")) break;
        }
        if (best) {
            mv->q4k = best->valuedouble;
            mv->has_q4k = true;
            snprintf(mv->q4k_col, sizeof mv->q4k_col, COL_Q4K "%.20s%sGB/s", best_shape,
                     best_shape[0] ? " " : "");
        }
    }
    rc = CLI_OK;
out:
    cJSON_Delete(root);
    return rc;
}

/* The micro values go into every row of their device (a row of its own when it has none), in
 * columns after the model tests'. */
static int apply_micro(table *t) {
    for (int k = 0; k < t->n_m; k++) {
        const micro_vals *mv = &t->m[k];
        bool any = false;
        for (int i = 0; i < t->n && !any; i++) any = !strcmp(t->e[i].device, mv->device);
        if (!any && !row(t, mv->device, "-")) return CLI_ERROR;
        const int cc = mv->has_copy ? col_index(t, COL_COPY) : -2;
        const int cq = mv->has_q4k ? col_index(t, mv->q4k_col) : -2;
        if (cc == -1 || cq == -1)
            return cli_fail("bench --report: more than %d different columns", MAX_COLS);
        for (int i = 0; i < t->n; i++) {
            entry *e = &t->e[i];
            if (strcmp(e->device, mv->device)) continue;
            if (cc >= 0) e->val[cc] = mv->copy, e->has[cc] = true;
            if (cq >= 0) e->val[cq] = mv->q4k, e->has[cq] = true;
        }
    }
    return CLI_OK;
}

/* A markdown cell must not contain '|' or a newline. */
static void md_text(FILE *f, const char *s) {
    for (; *s; s++) fputc(*s == '|' || *s == '\n' || *s == '\r' ? ' ' : *s, f);
}

static int write_md(const table *t, const char *path) {
    FILE *f = path ? fopen(path, "wb") : stdout;
    if (!f) return cli_fail("bench --report: cannot write '%s'", path);
    fputs("| device | model |", f);
    for (int c = 0; c < t->n_cols; c++) fprintf(f, " %s |", t->cols[c]);
    fputs("\n|---|---|", f);
    for (int c = 0; c < t->n_cols; c++) fputs("---:|", f);
    fputc('\n', f);
    for (int i = 0; i < t->n; i++) {
        const entry *e = &t->e[i];
        fputs("| ", f);
        md_text(f, e->device);
        fputs(" | ", f);
        md_text(f, e->model);
        fputs(" |", f);
        for (int c = 0; c < t->n_cols; c++) {
            if (!e->has[c])
                fputs(" - |", f);
            else if (e->has_sd[c])
                fprintf(f, " %.2f ± %.2f |", e->val[c], e->sd[c]);
            else
                fprintf(f, " %.2f |", e->val[c]);
        }
        fputc('\n', f);
    }
    bool ok = !ferror(f);
    if (path && fclose(f) != 0) ok = false;
    if (!path) fflush(f);
    if (!ok) return cli_fail("bench --report: error writing '%s'", path ? path : "stdout");
    return CLI_OK;
}

/* ---- the chart ---- */

#define BAR_W 30
#define BAR_GAP 12
#define PANEL_H 220
#define AXIS_X 48 /* y axis offset inside a panel (room for the scale labels) */

/* The y scale of a panel: linear from 0 to a nice maximum, or logarithmic over whole decades
 * when the positive values span two decades or more. */
typedef struct yscale {
    bool log;
    double top, lo_exp, hi_exp; /* linear: 0..top; log: 10^lo_exp..10^hi_exp */
} yscale;

static yscale panel_scale(const table *t, int c) {
    double vmax = 0, vmin = 0;
    for (int i = 0; i < t->n; i++) {
        if (!t->e[i].has[c] || !(t->e[i].val[c] > 0)) continue;
        const double v = t->e[i].val[c];
        if (v > vmax) vmax = v;
        if (vmin == 0 || v < vmin) vmin = v;
    }
    yscale y = {.top = vmax > 0 ? bench_draw_nice_max(vmax) : 1};
    if (vmin > 0 && vmax / vmin >= 100) {
        y.log = true;
        y.lo_exp = floor(log10(vmin));
        y.hi_exp = ceil(log10(vmax));
        if (y.hi_exp <= y.lo_exp) y.hi_exp = y.lo_exp + 1;
    }
    return y;
}

/* Bar height in pixels of value v on scale y, for a plot area `h` pixels high. */
static int bar_height(const yscale *y, double v, int h) {
    if (!(v > 0)) return 0;
    double f = y->log ? (log10(v) - y->lo_exp) / (y->hi_exp - y->lo_exp) : v / y->top;
    if (f < 0) f = 0;
    if (f > 1) f = 1;
    return (int)(h * f + 0.5);
}

static int write_png(const table *t, const char *path) {
    static const unsigned char black[3] = {0, 0, 0}, grey[3] = {200, 200, 200};
    int panel_w = AXIS_X + BAR_GAP + t->n * (BAR_W + BAR_GAP);
    int min_w = 0;
    for (int c = 0; c < t->n_cols; c++) {
        int tw = bench_draw_text_width(t->cols[c], 1) + bench_draw_text_width(" (LOG)", 1) + AXIS_X;
        min_w = tw > min_w ? tw : min_w;
    }
    if (panel_w < min_w) panel_w = min_w;
    if (panel_w < 160) panel_w = 160;
    int n_panels = t->n_cols > 0 ? t->n_cols : 1;
    int legend_w = 0;
    char lab[300];
    for (int i = 0; i < t->n; i++) {
        snprintf(lab, sizeof lab, "%d  %s", i + 1, t->e[i].label);
        int tw = 20 + bench_draw_text_width(lab, 1);
        legend_w = tw > legend_w ? tw : legend_w;
    }
    int w = 20 + n_panels * (panel_w + 10);
    if (w < legend_w + 20) w = legend_w + 20;
    if (w > 4000) w = 4000;
    int top = 40, panel_y = top + 20, legend_y = panel_y + PANEL_H + 40;
    int h = legend_y + t->n * 14 + 10;
    bench_canvas cv = {malloc((size_t)w * (size_t)h * 3), w, h};
    if (!cv.px) return cli_fail("bench --report: out of memory drawing the chart");
    memset(cv.px, 255, (size_t)w * (size_t)h * 3);
    bench_draw_text(&cv, 10, 10, "vkmoe bench", 2, 0, black);
    const int plot_h = PANEL_H - 20;
    for (int c = 0; c < t->n_cols; c++) {
        int px = 10 + c * (panel_w + 10), ax = px + AXIS_X, base = panel_y + PANEL_H;
        const yscale y = panel_scale(t, c);
        const int n_grid = y.log ? (int)(y.hi_exp - y.lo_exp) : 4;
        for (int k = 0; k <= n_grid; k++) { /* grid lines and scale labels */
            int gy = base - plot_h * k / n_grid;
            bench_draw_rect(&cv, ax, gy, panel_w - AXIS_X - 4, 1, k ? grey : black);
            bench_draw_fmt_value(lab, sizeof lab,
                                 y.log ? pow(10, y.lo_exp + k) : y.top * k / n_grid);
            bench_draw_text(&cv, ax - 4 - bench_draw_text_width(lab, 1), gy - 3, lab, 1, 0, black);
        }
        bench_draw_rect(&cv, ax, base - plot_h, 1, plot_h + 1, black);
        /* the bars centred in the plot area, one colour per device, numbered as in the legend */
        const int area = panel_w - AXIS_X - 4, bars = t->n * (BAR_W + BAR_GAP) - BAR_GAP;
        const int x0 = ax + (area > bars ? (area - bars) / 2 : BAR_GAP);
        for (int i = 0; i < t->n; i++) {
            if (!t->e[i].has[c]) continue;
            int bh = bar_height(&y, t->e[i].val[c], plot_h);
            int bx = x0 + i * (BAR_W + BAR_GAP);
            bench_draw_rect(&cv, bx, base - bh, BAR_W, bh,
                            bench_draw_palette[t->e[i].colour % BENCH_DRAW_N_PALETTE]);
            bench_draw_fmt_value(lab, sizeof lab, t->e[i].val[c]);
            int lw = bench_draw_text_width(lab, 1);
            bench_draw_text(&cv, bx + (BAR_W - lw) / 2, base - bh - 10, lab, 1, 0, black);
            snprintf(lab, sizeof lab, "%d", i + 1);
            lw = bench_draw_text_width(lab, 1);
            bench_draw_text(&cv, bx + (BAR_W - lw) / 2, base + 4, lab, 1, 0, black);
        }
        snprintf(lab, sizeof lab, "%s%s", t->cols[c], y.log ? " (log)" : "");
        int tw = bench_draw_text_width(lab, 1);
        bench_draw_text(&cv, ax + (panel_w - AXIS_X - tw) / 2, base + 18, lab, 1, 0, black);
    }
    for (int i = 0; i < t->n; i++) {
        bench_draw_rect(&cv, 10, legend_y + i * 14, 10, 10,
                        bench_draw_palette[t->e[i].colour % BENCH_DRAW_N_PALETTE]);
        snprintf(lab, sizeof lab, "%d  %s", i + 1, t->e[i].label);
        bench_draw_text(&cv, 26, legend_y + i * 14 + 2, lab, 1, w - 36, black);
    }
    int ok = stbi_write_png(path, w, h, 3, cv.px, w * 3);
    free(cv.px);
    if (!ok) return cli_fail("bench --report: cannot write '%s'", path);
    return CLI_OK;
}

int bench_report_run(const char *const *inputs, int n_inputs, const char *md, const char *png) {
    table t = {.e = calloc(MAX_ROWS, sizeof(entry)), .m = calloc(MAX_ROWS, sizeof(micro_vals))};
    int rc = t.e && t.m ? CLI_OK : cli_fail("bench --report: out of memory");
    for (int i = 0; !rc && i < n_inputs; i++) rc = load(&t, inputs[i]);
    if (!rc) rc = apply_micro(&t);
    if (!rc) rc = write_md(&t, md);
    if (!rc && png) rc = write_png(&t, png);
    free(t.e);
    free(t.m);
    return rc;
}
