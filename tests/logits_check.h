/* logits_check.h - shared helpers of the tests that compare logits (test_ref_forward.c,
 * test_gpu_forward.c, test_gpu_variants.c): reading llama.cpp's .f32 logits files and
 * fixtures/prompt.ids, running a prompt through a GPU session, log-softmax, argmax, and the
 * per-position comparison (mean KL(ref || ours), top-1 agreement, max abs difference).
 *
 * Invariants: every function is static inline and header-only (each test is one executable);
 * logits are row-major [n_pos][n_vocab] float arrays; a NaN difference counts as an infinite
 * max abs difference, never as "no difference". Needs VKMOE_FIXTURES_DIR (set for every test). */
#ifndef VKMOE_TESTS_LOGITS_CHECK_H
#define VKMOE_TESTS_LOGITS_CHECK_H

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "check.h"
#include "engine.h" /* vkm_engine_model */

/* Reads exactly n floats from the file at path (it must hold nothing more): 0, or -1. */
static inline int logits_read_f32(const char *path, float *buf, size_t n) {
    if (n > SIZE_MAX / sizeof *buf) return -1;
    FILE *fp = fopen(path, "rb");
    if (!fp) return -1;
    size_t got = fread(buf, 1, n * sizeof *buf, fp);
    int extra = fgetc(fp);
    fclose(fp);
    return got == n * sizeof *buf && extra == EOF ? 0 : -1;
}

/* fixtures/prompt.ids (whitespace-separated decimal ids) into ids[0..max): the count read, or -1
 * when the file cannot be opened. */
static inline int logits_read_prompt(int32_t *ids, int max) {
    FILE *fp = fopen(VKMOE_FIXTURES_DIR "/prompt.ids", "r");
    if (!fp) return -1;
    int n = 0, v;
    while (n < max && fscanf(fp, "%d", &v) == 1) ids[n++] = v;
    fclose(fp);
    return n;
}

/* Index of the first largest of x[0..n). */
static inline int logits_argmax(const float *x, int n) {
    int b = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[b]) b = i;
    return b;
}

/* out[i] = log softmax(x)[i] in double precision. */
static inline void logits_log_softmax(const float *x, int n, double *out) {
    double mx = x[0], s = 0.0;
    for (int i = 1; i < n; i++) mx = x[i] > mx ? x[i] : mx;
    for (int i = 0; i < n; i++) s += exp((double)x[i] - mx);
    for (int i = 0; i < n; i++) out[i] = (double)x[i] - mx - log(s);
}

typedef struct logits_stats {
    double mean_kl, max_abs, top1;
    long n_nonfinite; /* NaN/Inf values in either input (counted only with skip_nonfinite) */
} logits_stats;

/* KL(ref || ours) averaged over the n_pos positions, top-1 agreement, max abs difference (NaN =
 * inf). With skip_nonfinite, a position holding a NaN/Inf in either input is counted in
 * n_nonfinite, sets mean_kl and max_abs to inf, and counts as a top-1 disagreement. */
static inline logits_stats logits_compare(const float *ref, const float *ours, int n_pos,
                                          int n_vocab, bool skip_nonfinite) {
    logits_stats st = {0, 0, 0, 0};
    double *lp = xmalloc((size_t)n_vocab * sizeof *lp);
    double *lq = xmalloc((size_t)n_vocab * sizeof *lq);
    int agree = 0;
    for (int p = 0; p < n_pos; p++) {
        const float *r = ref + (size_t)p * n_vocab, *o = ours + (size_t)p * n_vocab;
        if (skip_nonfinite) {
            bool finite = true;
            for (int i = 0; i < n_vocab; i++)
                if (!isfinite(o[i]) || !isfinite(r[i])) {
                    st.n_nonfinite++;
                    finite = false;
                }
            if (!finite) {
                st.mean_kl = INFINITY;
                st.max_abs = INFINITY;
                continue;
            }
        }
        logits_log_softmax(r, n_vocab, lp);
        logits_log_softmax(o, n_vocab, lq);
        double kl = 0.0;
        for (int i = 0; i < n_vocab; i++) {
            kl += exp(lp[i]) * (lp[i] - lq[i]);
            double d = fabs((double)r[i] - o[i]);
            if (!(d <= st.max_abs)) st.max_abs = d != d ? INFINITY : d;
        }
        st.mean_kl += kl / n_pos;
        agree += logits_argmax(r, n_vocab) == logits_argmax(o, n_vocab);
    }
    st.top1 = (double)agree / n_pos;
    free(lp);
    free(lq);
    return st;
}

/* The prompt ids[0..n_prompt) through a new session of e (n_ctx, kv_f32, max_batch; 0 = the
 * default): the first n_prompt - n_step tokens as one eval, then the rest one at a time (the
 * decode path); out [n_prompt][n_vocab]. 0 or the first error. */
static inline int logits_gpu_prompt(vkm_engine *e, const int32_t *ids, int n_prompt, int n_ctx,
                                    bool kv_f32, int max_batch, int n_step, float *out) {
    vkm_session *s = NULL;
    vkm_session_opts so = {n_ctx, kv_f32, max_batch, NULL};
    int rc = vkm_session_create(e, &so, &s);
    if (rc) return rc;
    const int V = (int)vkm_engine_model(e)->hp.n_vocab, n_batch = n_prompt - n_step;
    if (n_batch > 0) rc = vkm_session_eval(s, ids, n_batch, true, out);
    for (int i = n_batch; !rc && i < n_prompt; i++)
        rc = vkm_session_eval(s, ids + i, 1, false, out + (size_t)i * V);
    vkm_session_destroy(s);
    return rc;
}

/* vkm_session_warmup on a new session of e (F16 cache, max_batch; 0 = the default) for
 * ids[0..n_prompt - 2), then that prompt in one eval and the last two tokens one at a time:
 * checks that the warm-up built kernels, left the session empty, and that the evaluations
 * built none; `last` [n_vocab] gets the final logits. */
static inline void logits_check_warmup(vkm_engine *e, const int32_t *ids, int n_prompt, int n_ctx,
                                       int max_batch, float *last) {
    vkm_session *s = NULL;
    vkm_session_opts so = {n_ctx, false, max_batch, NULL};
    CHECK_OK(vkm_session_create(e, &so, &s));
    if (!s) return;
    vkm_gpu *gpu = vkm_engine_gpu(e);
    const int k0 = vkm_gpu_kernel_count(gpu), n_batch = n_prompt - 2;
    CHECK_OK(vkm_session_warmup(s, n_batch));
    const int k1 = vkm_gpu_kernel_count(gpu);
    CHECK_MSG(k1 > k0 && vkm_session_n_past(s) == 0, "warm-up: %d kernels built, %d past", k1 - k0,
              vkm_session_n_past(s));
    CHECK_OK(vkm_session_eval(s, ids, n_batch, false, last));
    for (int i = n_batch; i < n_prompt; i++) CHECK_OK(vkm_session_eval(s, ids + i, 1, false, last));
    CHECK_MSG(vkm_gpu_kernel_count(gpu) == k1, "%d kernels were built after the warm-up",
              vkm_gpu_kernel_count(gpu) - k1);
    CHECK_OK(vkm_session_warmup(s, 1)); /* decoding further on: nothing new */
    CHECK_MSG(vkm_gpu_kernel_count(gpu) == k1, "a second warm-up built %d kernels",
              vkm_gpu_kernel_count(gpu) - k1);
    vkm_session_destroy(s);
}

/* max |a[i] - b[i]| over n values; inf if any difference is NaN. */
static inline double logits_max_abs_diff(const float *a, const float *b, size_t n) {
    double m = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (!(d <= m)) m = d != d ? INFINITY : d;
    }
    return m;
}

#endif
