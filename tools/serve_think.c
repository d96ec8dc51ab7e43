/* serve_think.c - the output filter of `vkmoe serve` (serve.h): stop strings on the raw generated
 * text, then the R1 reasoning split into reasoning and answer runs.
 *
 * Invariant: hold[0..n_hold) are the raw bytes received and not yet passed on; they contain no
 * complete stop string unless a longer one starting earlier may still complete (the earliest
 * match wins, however the text was split), and otherwise n_hold <= keep + 3 after each feed (the
 * kept tail, plus at most the start of a UTF-8 character the release point backed off from). */
#include <stdlib.h>
#include <string.h>

#include "serve.h"

static void think_run(void *user, bool reasoning, const char *text, size_t len) {
    serve_filter *f = user;
    if (len) f->fn(f->user, reasoning, text, len);
}

static void pass_on(serve_filter *f, const char *text, size_t len) {
    if (!len) return;
    if (f->split)
        vkm_chat_think_feed(&f->think, text, len, think_run, f);
    else
        f->fn(f->user, false, text, len);
}

void serve_filter_init(serve_filter *f, const char *const *stop, int n_stop, bool split,
                       serve_run_fn fn, void *user) {
    memset(f, 0, sizeof *f);
    f->fn = fn;
    f->user = user;
    f->split = split;
    vkm_chat_think_init(&f->think, false);
    for (int i = 0; i < n_stop && i < SERVE_MAX_STOP; i++) {
        const size_t l = strlen(stop[i]);
        if (!l) continue;
        f->stop[f->n_stop++] = stop[i];
        if (l - 1 > f->keep) f->keep = l - 1;
    }
}

/* Earliest position of any stop string in hold, or -1. */
static long find_stop(const serve_filter *f) {
    long best = -1;
    for (int i = 0; i < f->n_stop; i++) {
        const size_t l = strlen(f->stop[i]);
        for (size_t p = 0; p + l <= f->n_hold; p++) {
            if (best >= 0 && (long)p >= best) break;
            if (!memcmp(f->hold + p, f->stop[i], l)) {
                best = (long)p;
                break;
            }
        }
    }
    return best;
}

/* Whether a stop string could still match from before `at`: the held text from some q < at to
 * its end is the start of one (then the earliest match is not known yet). */
static bool pending_before(const serve_filter *f, size_t at) {
    for (size_t q = 0; q < at; q++)
        for (int i = 0; i < f->n_stop; i++) {
            const size_t l = strlen(f->stop[i]), rest = f->n_hold - q;
            if (rest < l && !memcmp(f->hold + q, f->stop[i], rest)) return true;
        }
    return false;
}

/* Passes on what can no longer be part of a match; at the end (final) everything. */
static void process(serve_filter *f, bool final) {
    const long at = find_stop(f);
    if (at >= 0 && (final || !pending_before(f, (size_t)at))) {
        pass_on(f, f->hold, (size_t)at);
        f->n_hold = 0;
        f->stopped = true;
        return;
    }
    if (at >= 0) return; /* an earlier, longer match may still complete */
    if (final) {
        pass_on(f, f->hold, f->n_hold);
        f->n_hold = 0;
        return;
    }
    if (f->n_hold <= f->keep) return;
    size_t out = f->n_hold - f->keep;
    /* never end a piece inside a UTF-8 character: back off over continuation bytes */
    while (out > 0 && ((unsigned char)f->hold[out] & 0xc0) == 0x80 && f->n_hold - out < f->keep + 4)
        out--;
    pass_on(f, f->hold, out);
    memmove(f->hold, f->hold + out, f->n_hold - out);
    f->n_hold -= out;
}

void serve_filter_feed(serve_filter *f, const char *text, size_t len) {
    if (f->stopped || f->oom || !len) return;
    if (!f->n_stop) {
        pass_on(f, text, len);
        return;
    }
    if (f->n_hold + len > f->cap) {
        size_t cap = f->cap ? f->cap : 256;
        while (cap < f->n_hold + len) cap *= 2;
        char *h = realloc(f->hold, cap);
        if (!h) {
            f->oom = true; /* nothing more can be matched: pass the rest on unfiltered */
            pass_on(f, f->hold, f->n_hold);
            pass_on(f, text, len);
            f->n_hold = 0;
            return;
        }
        f->hold = h;
        f->cap = cap;
    }
    memcpy(f->hold + f->n_hold, text, len);
    f->n_hold += len;
    process(f, false);
}

void serve_filter_end(serve_filter *f) {
    if (!f->stopped && f->n_hold) process(f, true);
    f->n_hold = 0;
    if (f->split) vkm_chat_think_flush(&f->think, think_run, f);
}

void serve_filter_free(serve_filter *f) {
    free(f->hold);
    f->hold = NULL;
    f->n_hold = f->cap = 0;
}
