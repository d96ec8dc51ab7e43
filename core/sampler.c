/* sampler.c - token sampling (see sampler.h). Candidates are (id, logit) pairs; each filter
 * shrinks the candidate list, which stays sorted by logit (descending) once sorted. */
#include "sampler.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"

typedef struct cand {
    int32_t id;
    float logit;
} cand;

struct vkm_sampler {
    vkm_sampler_opts o;
    int n_vocab;
    cand *c;         /* [n_vocab] scratch */
    float *p;        /* [n_vocab] probabilities of the kept candidates */
    int32_t *recent; /* ring of the last repeat_last_n accepted tokens */
    int n_recent, head;
    uint64_t rng;
};

vkm_sampler_opts vkm_sampler_defaults(void) {
    return (vkm_sampler_opts){.temperature = 0.8f,
                              .top_k = 40,
                              .top_p = 0.95f,
                              .min_p = 0.05f,
                              .repeat_penalty = 1.0f,
                              .repeat_last_n = 64,
                              .seed = 0};
}

int vkm_sampler_create(const vkm_sampler_opts *opts, int n_vocab, vkm_sampler **out) {
    *out = NULL;
    if (n_vocab <= 0) return vkm_error(VKM_EINVAL, "sampler: vocabulary size %d", n_vocab);
    vkm_sampler *s = calloc(1, sizeof *s);
    if (!s) return vkm_error(VKM_ENOMEM, "sampler: out of memory");
    s->o = opts ? *opts : vkm_sampler_defaults();
    if (s->o.repeat_last_n < 0) s->o.repeat_last_n = 0;
    s->n_vocab = n_vocab;
    s->c = malloc((size_t)n_vocab * sizeof *s->c);
    s->p = malloc((size_t)n_vocab * sizeof *s->p);
    s->recent = malloc((size_t)(s->o.repeat_last_n + 1) * sizeof *s->recent);
    if (!s->c || !s->p || !s->recent) {
        vkm_sampler_destroy(s);
        return vkm_error(VKM_ENOMEM, "sampler: out of memory");
    }
    s->rng = s->o.seed ^ 0x9E3779B97F4A7C15ull;
    *out = s;
    return VKM_OK;
}

void vkm_sampler_destroy(vkm_sampler *s) {
    if (!s) return;
    free(s->c);
    free(s->p);
    free(s->recent);
    free(s);
}

void vkm_sampler_accept(vkm_sampler *s, int32_t token) {
    if (s->o.repeat_last_n <= 0) return;
    s->recent[s->head] = token;
    s->head = (s->head + 1) % s->o.repeat_last_n;
    if (s->n_recent < s->o.repeat_last_n) s->n_recent++;
}

/* splitmix64: a small, well-distributed PRNG; uniform in [0, 1). */
static double next_uniform(vkm_sampler *s) {
    uint64_t z = (s->rng += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return (double)(z >> 11) * (1.0 / 9007199254740992.0);
}

static int cmp_cand(const void *a, const void *b) {
    const cand *x = a, *y = b;
    if (x->logit != y->logit) return x->logit < y->logit ? 1 : -1;
    return x->id < y->id ? -1 : x->id > y->id;
}

/* Softmax of the first n candidates into p (sorted descending, so c[0] is the max). */
static void softmax(const cand *c, float *p, int n) {
    double sum = 0;
    for (int i = 0; i < n; i++) sum += p[i] = expf(c[i].logit - c[0].logit);
    for (int i = 0; i < n; i++) p[i] = (float)(p[i] / sum);
}

int32_t vkm_sampler_sample(vkm_sampler *s, const float *logits) {
    const vkm_sampler_opts *o = &s->o;
    int n = s->n_vocab;
    for (int i = 0; i < n; i++) s->c[i] = (cand){i, isnan(logits[i]) ? -INFINITY : logits[i]};

    /* Repeat penalty (llama.cpp style: divide positive logits, multiply negative ones). */
    if (o->repeat_penalty > 0 && o->repeat_penalty != 1.0f) {
        for (int r = 0; r < s->n_recent; r++) {
            int32_t t = s->recent[r];
            if (t < 0 || t >= n) continue;
            bool seen = false; /* penalise each token once */
            for (int q = 0; q < r; q++) seen |= s->recent[q] == t;
            if (seen) continue;
            float *l = &s->c[t].logit;
            *l = *l > 0 ? *l / o->repeat_penalty : *l * o->repeat_penalty;
        }
    }

    if (o->temperature <= 0) { /* greedy */
        int best = 0;
        for (int i = 1; i < n; i++)
            if (s->c[i].logit > s->c[best].logit) best = i;
        return s->c[best].id;
    }

    /* top-k: partial selection would be faster; a full sort of the vocabulary is fine here
     * (~1 ms for 130k tokens) and keeps the code obvious. */
    qsort(s->c, (size_t)n, sizeof *s->c, cmp_cand);
    if (o->top_k > 0 && o->top_k < n) n = o->top_k;

    /* top-p over the kept candidates. */
    softmax(s->c, s->p, n);
    if (o->top_p < 1.0f) {
        double cum = 0;
        int keep = n;
        for (int i = 0; i < n; i++) {
            cum += s->p[i];
            if (cum >= o->top_p) {
                keep = i + 1;
                break;
            }
        }
        n = keep;
    }
    /* min-p: keep candidates with p >= min_p * p_max. */
    if (o->min_p > 0) {
        int keep = 1;
        while (keep < n && s->p[keep] >= o->min_p * s->p[0]) keep++;
        n = keep;
    }

    /* Temperature, then a draw. */
    for (int i = 0; i < n; i++) s->c[i].logit /= o->temperature;
    softmax(s->c, s->p, n);
    double u = next_uniform(s), cum = 0;
    for (int i = 0; i < n; i++) {
        cum += s->p[i];
        if (u < cum) return s->c[i].id;
    }
    return s->c[n - 1].id;
}
