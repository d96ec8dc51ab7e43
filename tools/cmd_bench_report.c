/* cmd_bench_report.c - `vkmoe bench --report A.json B.json ...`: merges result files written by
 * `vkmoe bench --json` on several machines into a markdown table and, optionally, a PNG chart.
 *
 * Rows are entries (one per file: its device name and model file name); columns are the
 * model tests in first-seen order ("pp64 t/s", ...) then, when any file has them, the micro
 * copy GB/s and Q4_K GEMV GB/s (shape 7168x2048, else the first Q4_K row). The PNG has one
 * panel per column with its own y scale (units differ between columns), one bar per entry in
 * the entry's colour, and a legend; drawing (5x7 bitmap font) is cmd_bench_draw.c's.
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
#define COL_Q4K "Q4_K GEMV GB/s"

/* ---- the merged table ---- */

typedef struct entry {
    const char *file;
    char label[264];  /* "device / model" */
    char device[128]; /* device name */
    char model[128];  /* model file name, or "-" */
    double val[MAX_COLS], sd[MAX_COLS];
    bool has[MAX_COLS], has_sd[MAX_COLS];
} entry;

typedef struct table {
    char cols[MAX_COLS][48];
    int n_cols;
    entry *e;
    int n;
} table;

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
    entry *e = &t->e[t->n];
    memset(e, 0, sizeof *e);
    e->file = path;
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
    snprintf(e->device, sizeof e->device, "%s", name->valuestring);
    snprintf(e->model, sizeof e->model, "%s",
             cJSON_IsString(mpath) ? base_name(mpath->valuestring) : "-");
    snprintf(e->label, sizeof e->label, "%s / %s", e->device, e->model);
    int i = 0;
    const cJSON *r;
    cJSON_ArrayForEach(r, results) {
        const cJSON *test = cJSON_GetObjectItemCaseSensitive(r, "test");
        const cJSON *tps = cJSON_GetObjectItemCaseSensitive(r, "tokens_per_s");
        const cJSON *sd = cJSON_GetObjectItemCaseSensitive(r, "stddev");
        if (!cJSON_IsString(test) || !cJSON_IsNumber(tps) || !isfinite(tps->valuedouble)) {
            cli_fail("bench --report: %s: results[%d] needs a \"test\" string and a finite "
                     "\"tokens_per_s\" number",
                     path, i);
            goto out;
        }
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
        const cJSON *copy = cJSON_GetObjectItemCaseSensitive(micro, "copy_gbps");
        if (cJSON_IsNumber(copy) && isfinite(copy->valuedouble)) {
            int c = col_index(t, COL_COPY);
            if (c >= 0) {
                e->val[c] = copy->valuedouble;
                e->has[c] = true;
            }
        }
        const cJSON *gemv = cJSON_GetObjectItemCaseSensitive(micro, "gemv"), *best = NULL;
        cJSON_ArrayForEach(r, gemv) {
            const cJSON *ty = cJSON_GetObjectItemCaseSensitive(r, "type");
            const cJSON *sh = cJSON_GetObjectItemCaseSensitive(r, "shape");
            const cJSON *gb = cJSON_GetObjectItemCaseSensitive(r, "gbps");
            if (!cJSON_IsString(ty) || strcmp(ty->valuestring, "Q4_K") || !cJSON_IsNumber(gb) ||
                !isfinite(gb->valuedouble))
                continue;
            if (!best || (cJSON_IsString(sh) && !strcmp(sh->valuestring, "7168x2048"))) best = gb;
            if (cJSON_IsString(sh) && !strcmp(sh->valuestring, "7168x2048")) break;
        }
        if (best) {
            int c = col_index(t, COL_Q4K);
            if (c >= 0) {
                e->val[c] = best->valuedouble;
                e->has[c] = true;
            }
        }
    }
    t->n++;
    rc = CLI_OK;
out:
    cJSON_Delete(root);
    return rc;
}

/* Micro columns go last, in a fixed order. */
static void order_columns(table *t) {
    const char *last[] = {COL_COPY, COL_Q4K};
    for (size_t k = 0; k < 2; k++) {
        int c = -1;
        for (int i = 0; i < t->n_cols; i++)
            if (!strcmp(t->cols[i], last[k])) c = i;
        if (c < 0) continue;
        char name[48];
        memcpy(name, t->cols[c], sizeof name);
        for (int j = 0; j < t->n; j++) {
            entry *e = &t->e[j];
            double v = e->val[c], s = e->sd[c];
            bool h = e->has[c], hs = e->has_sd[c];
            for (int i = c; i + 1 < t->n_cols; i++) {
                e->val[i] = e->val[i + 1];
                e->sd[i] = e->sd[i + 1];
                e->has[i] = e->has[i + 1];
                e->has_sd[i] = e->has_sd[i + 1];
            }
            e->val[t->n_cols - 1] = v;
            e->sd[t->n_cols - 1] = s;
            e->has[t->n_cols - 1] = h;
            e->has_sd[t->n_cols - 1] = hs;
        }
        for (int i = c; i + 1 < t->n_cols; i++) memcpy(t->cols[i], t->cols[i + 1], sizeof name);
        memcpy(t->cols[t->n_cols - 1], name, sizeof name);
    }
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

static int write_png(const table *t, const char *path) {
    static const unsigned char black[3] = {0, 0, 0}, grey[3] = {200, 200, 200};
    int panel_w = AXIS_X + BAR_GAP + t->n * (BAR_W + BAR_GAP);
    int min_w = 0;
    for (int c = 0; c < t->n_cols; c++) {
        int tw = bench_draw_text_width(t->cols[c], 1) + AXIS_X;
        min_w = tw > min_w ? tw : min_w;
    }
    if (panel_w < min_w) panel_w = min_w;
    if (panel_w < 160) panel_w = 160;
    int n_panels = t->n_cols > 0 ? t->n_cols : 1;
    int legend_w = 0;
    for (int i = 0; i < t->n; i++) {
        int tw = 20 + bench_draw_text_width(t->e[i].label, 1);
        legend_w = tw > legend_w ? tw : legend_w;
    }
    int w = 20 + n_panels * (panel_w + 10);
    if (w < legend_w + 20) w = legend_w + 20;
    if (w > 4000) w = 4000;
    int top = 40, panel_y = top + 20, legend_y = panel_y + PANEL_H + 30;
    int h = legend_y + t->n * 14 + 10;
    bench_canvas cv = {malloc((size_t)w * (size_t)h * 3), w, h};
    if (!cv.px) return cli_fail("bench --report: out of memory drawing the chart");
    memset(cv.px, 255, (size_t)w * (size_t)h * 3);
    bench_draw_text(&cv, 10, 10, "vkmoe bench", 2, 0, black);
    for (int c = 0; c < t->n_cols; c++) {
        int px = 10 + c * (panel_w + 10), ax = px + AXIS_X, base = panel_y + PANEL_H;
        double vmax = 0;
        for (int i = 0; i < t->n; i++)
            if (t->e[i].has[c] && t->e[i].val[c] > vmax) vmax = t->e[i].val[c];
        double top_v = vmax > 0 ? bench_draw_nice_max(vmax) : 1;
        char lab[32];
        for (int k = 0; k <= 4; k++) { /* grid lines and scale labels */
            int y = base - (PANEL_H - 20) * k / 4;
            bench_draw_rect(&cv, ax, y, panel_w - AXIS_X - 4, 1, k ? grey : black);
            bench_draw_fmt_value(lab, sizeof lab, top_v * k / 4);
            bench_draw_text(&cv, ax - 4 - bench_draw_text_width(lab, 1), y - 3, lab, 1, 0, black);
        }
        bench_draw_rect(&cv, ax, base - (PANEL_H - 20), 1, PANEL_H - 20 + 1, black);
        for (int i = 0; i < t->n; i++) {
            if (!t->e[i].has[c]) continue;
            double v = t->e[i].val[c] > 0 ? t->e[i].val[c] : 0;
            int bh = (int)((PANEL_H - 20) * (v / top_v) + 0.5);
            int bx = ax + BAR_GAP + i * (BAR_W + BAR_GAP);
            bench_draw_rect(&cv, bx, base - bh, BAR_W, bh,
                            bench_draw_palette[i % BENCH_DRAW_N_PALETTE]);
            bench_draw_fmt_value(lab, sizeof lab, t->e[i].val[c]);
            int lw = bench_draw_text_width(lab, 1);
            bench_draw_text(&cv, bx + (BAR_W - lw) / 2, base - bh - 10, lab, 1, 0, black);
        }
        int tw = bench_draw_text_width(t->cols[c], 1);
        bench_draw_text(&cv, ax + (panel_w - AXIS_X - tw) / 2, base + 10, t->cols[c], 1, 0, black);
    }
    for (int i = 0; i < t->n; i++) {
        bench_draw_rect(&cv, 10, legend_y + i * 14, 10, 10,
                        bench_draw_palette[i % BENCH_DRAW_N_PALETTE]);
        bench_draw_text(&cv, 26, legend_y + i * 14 + 2, t->e[i].label, 1, w - 36, black);
    }
    int ok = stbi_write_png(path, w, h, 3, cv.px, w * 3);
    free(cv.px);
    if (!ok) return cli_fail("bench --report: cannot write '%s'", path);
    return CLI_OK;
}

int bench_report_run(const char *const *inputs, int n_inputs, const char *md, const char *png) {
    table t = {.e = calloc((size_t)n_inputs, sizeof(entry))};
    if (!t.e) return cli_fail("bench --report: out of memory");
    int rc = CLI_OK;
    for (int i = 0; !rc && i < n_inputs; i++) rc = load(&t, inputs[i]);
    if (!rc) {
        order_columns(&t);
        rc = write_md(&t, md);
    }
    if (!rc && png) rc = write_png(&t, png);
    free(t.e);
    return rc;
}
