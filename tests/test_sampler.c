/* test_sampler.c - greedy, determinism by seed, each filter, repeat penalty. */
#include <string.h>

#include "check.h"
#include "sampler.h"

enum { V = 100 };

static int32_t draw(const vkm_sampler_opts *o, const float *logits, int n, int32_t *out) {
    vkm_sampler *s;
    if (vkm_sampler_create(o, V, &s)) return -1;
    for (int i = 0; i < n; i++) out[i] = vkm_sampler_sample(s, logits);
    vkm_sampler_destroy(s);
    return 0;
}

int main(void) {
    float logits[V];
    for (int i = 0; i < V; i++)
        logits[i] = (float)((i * 37) % V) / 10.0f; /* max at id 62 (9.9)... */
    int best = 0;
    for (int i = 1; i < V; i++)
        if (logits[i] > logits[best]) best = i;

    /* Greedy. */
    vkm_sampler_opts o = vkm_sampler_defaults();
    o.temperature = 0;
    int32_t out[200], out2[200];
    CHECK_OK(draw(&o, logits, 5, out));
    for (int i = 0; i < 5; i++) CHECK(out[i] == best);

    /* Same seed, same sequence; other seed, other sequence. */
    o = vkm_sampler_defaults();
    o.temperature = 5.0f;
    o.top_k = 0;
    o.top_p = 1.0f;
    o.min_p = 0;
    o.seed = 42;
    CHECK_OK(draw(&o, logits, 200, out));
    CHECK_OK(draw(&o, logits, 200, out2));
    CHECK(!memcmp(out, out2, sizeof out));
    o.seed = 43;
    CHECK_OK(draw(&o, logits, 200, out2));
    CHECK(memcmp(out, out2, sizeof out) != 0);
    int distinct = 0;
    for (int t = 0; t < V; t++)
        for (int i = 0; i < 200; i++)
            if (out[i] == t) {
                distinct++;
                break;
            }
    CHECK_MSG(distinct > 20, "high temperature drew only %d distinct tokens", distinct);

    /* top-k = 3: only the 3 best ids. */
    o.top_k = 3;
    CHECK_OK(draw(&o, logits, 200, out));
    for (int i = 0; i < 200; i++) CHECK(logits[out[i]] >= 9.7f);

    /* top-p tiny: only the best. min-p 1: only the best. */
    o.top_k = 0;
    o.top_p = 1e-6f;
    CHECK_OK(draw(&o, logits, 50, out));
    for (int i = 0; i < 50; i++) CHECK(out[i] == best);
    o.top_p = 1.0f;
    o.min_p = 1.0f;
    CHECK_OK(draw(&o, logits, 50, out));
    for (int i = 0; i < 50; i++) CHECK(out[i] == best);

    /* Repeat penalty moves greedy off a seen token. */
    o = vkm_sampler_defaults();
    o.temperature = 0;
    o.repeat_penalty = 2.0f;
    vkm_sampler *s;
    CHECK_OK(vkm_sampler_create(&o, V, &s));
    vkm_sampler_accept(s, best);
    CHECK(vkm_sampler_sample(s, logits) != best);
    vkm_sampler_destroy(s);

    /* NaN logits are never chosen; bad vocabulary size is an error. */
    logits[3] = NAN;
    o.repeat_penalty = 1.0f;
    CHECK_OK(draw(&o, logits, 1, out));
    CHECK(out[0] == best);
    CHECK_ERR(vkm_sampler_create(&o, 0, &s));
    return check_done();
}
