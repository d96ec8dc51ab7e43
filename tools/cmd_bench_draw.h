/* cmd_bench_draw.h - the small raster drawing kit of `vkmoe bench`'s PNG charts (--report,
 * --paging): an RGB canvas, rectangles, lines, text in a 5x7 bitmap font (upper case; lower case
 * is drawn upper case, unknown characters as '?'), value formatting and axis scaling.
 * Everything clips to the canvas, so any coordinates are safe. */
#ifndef VKM_CMD_BENCH_DRAW_H
#define VKM_CMD_BENCH_DRAW_H

#include <stddef.h>

typedef struct bench_canvas {
    unsigned char *px; /* [h][w][3] RGB */
    int w, h;
} bench_canvas;

void bench_draw_rect(bench_canvas *cv, int x, int y, int w, int h, const unsigned char rgb[3]);
/* A line `thick` pixels wide from (x0, y0) to (x1, y1). */
void bench_draw_line(bench_canvas *cv, int x0, int y0, int x1, int y1, int thick,
                     const unsigned char rgb[3]);
/* Draws text with its top-left corner at (x, y), each font pixel scale x scale; stops at
 * max_w pixels (0 = no limit). Returns the width drawn. */
int bench_draw_text(bench_canvas *cv, int x, int y, const char *s, int scale, int max_w,
                    const unsigned char rgb[3]);
int bench_draw_text_width(const char *s, int scale);
/* A value in at most ~6 characters. */
void bench_draw_fmt_value(char *buf, size_t n, double v);
/* The smallest 1, 2 or 5 times a power of ten that is >= v (v > 0). */
double bench_draw_nice_max(double v);

extern const unsigned char bench_draw_palette[][3];
enum { BENCH_DRAW_N_PALETTE = 10 };

#endif
