/* sampler.h - picks the next token from logits: repeat penalty, temperature, top-k, top-p,
 * min-p, then a draw from a seeded PRNG (same seed, same choices). temperature <= 0 is greedy
 * (argmax, lowest id on ties). The order of the filters follows llama.cpp's default chain. */
#ifndef VKM_SAMPLER_H
#define VKM_SAMPLER_H

#include <stdint.h>

typedef struct vkm_sampler vkm_sampler;

typedef struct vkm_sampler_opts {
    float temperature;    /* <= 0: greedy */
    int top_k;            /* <= 0: off */
    float top_p;          /* >= 1: off */
    float min_p;          /* <= 0: off */
    float repeat_penalty; /* 1 (or <= 0): off */
    int repeat_last_n;    /* how many recent tokens the penalty looks at */
    uint64_t seed;
} vkm_sampler_opts;

/* Defaults: temperature 0.8, top_k 40, top_p 0.95, min_p 0.05, repeat 1.0 over 64, seed 0. */
vkm_sampler_opts vkm_sampler_defaults(void);

int vkm_sampler_create(const vkm_sampler_opts *opts, int n_vocab, vkm_sampler **out);
void vkm_sampler_destroy(vkm_sampler *s); /* accepts NULL */
/* Records a token as seen (prompt and generated), for the repeat penalty. */
void vkm_sampler_accept(vkm_sampler *s, int32_t token);
/* Chooses a token from logits[n_vocab] (not modified). Returns the id (>= 0). */
int32_t vkm_sampler_sample(vkm_sampler *s, const float *logits);

#endif
