/* ref_ops.c - reference RMSNorm, SiLU/SwiGLU, softmax, RoPE (NORMAL + YaRN) and MoE routing.
 *
 * Each function restates llama.cpp/ggml CPU semantics (spec §4.1, §4.5-§4.7) in plain loops,
 * including the float/double choices that matter for matching its logits:
 *   - rms_norm: squares formed in float, summed in double, mean rounded to float;
 *   - softmax: exp in float, sum in double, multiplied by the float reciprocal;
 *   - rope: θ advanced by repeated float multiplication with powf(base, -2/R);
 *   - routing: bias used only for selection, group score = sum of the group's two best. */
#include "ref_ops.h"

#include <math.h>

#include "err.h"

/* ---------------------------------------------------------------- norms and activations ---- */

void vkm_ref_rmsnorm(float *y, const float *x, const float *w, int n, float eps) {
    VKM_ASSERT(n > 0);
    double sum = 0.0;
    for (int i = 0; i < n; i++) sum += (double)(x[i] * x[i]);
    const float mean = (float)(sum / n);
    const float scale = 1.0f / sqrtf(mean + eps);
    for (int i = 0; i < n; i++) {
        float v = x[i] * scale;
        y[i] = w ? v * w[i] : v;
    }
}

float vkm_ref_silu(float a) {
    return a / (1.0f + expf(-a));
}

void vkm_ref_swiglu(float *y, const float *gate, const float *up, int n) {
    for (int i = 0; i < n; i++) y[i] = vkm_ref_silu(gate[i]) * up[i];
}

void vkm_ref_softmax(float *x, int n, float scale) {
    VKM_ASSERT(n > 0);
    float max = -INFINITY;
    for (int i = 0; i < n; i++) {
        x[i] *= scale;
        if (x[i] > max) max = x[i];
    }
    VKM_ASSERT(max > -INFINITY);
    double sum = 0.0;
    for (int i = 0; i < n; i++) {
        float v = x[i] == -INFINITY ? 0.0f : expf(x[i] - max);
        x[i] = v;
        sum += (double)v;
    }
    const float inv = (float)(1.0 / sum);
    for (int i = 0; i < n; i++) x[i] *= inv;
}

/* --------------------------------------------------------------------------------- RoPE ---- */

static float rope_corr_dim(int n_rot, int n_ctx_orig, float beta, float base) {
    return (float)n_rot * logf((float)n_ctx_orig / (beta * 2.0f * (float)M_PI)) /
           (2.0f * logf(base));
}

void vkm_ref_rope_corr_dims(int n_rot, int n_ctx_orig, float freq_base, float beta_fast,
                            float beta_slow, float dims[2]) {
    float start = floorf(rope_corr_dim(n_rot, n_ctx_orig, beta_fast, freq_base));
    float end = ceilf(rope_corr_dim(n_rot, n_ctx_orig, beta_slow, freq_base));
    dims[0] = start > 0.0f ? start : 0.0f;
    dims[1] = end < (float)(n_rot - 1) ? end : (float)(n_rot - 1);
}

static float rope_ramp(float low, float high, int k) {
    float y = ((float)k - low) / fmaxf(0.001f, high - low);
    return 1.0f - fminf(1.0f, fmaxf(0.0f, y));
}

void vkm_ref_rope_cache(float *cs, int64_t pos, const vkm_ref_rope *r) {
    VKM_ASSERT(r->n_rot > 0 && r->n_rot % 2 == 0);
    const float theta_scale = powf(r->freq_base, -2.0f / (float)r->n_rot);
    float theta_extrap = (float)pos;
    for (int k = 0; k < r->n_rot / 2; k++) {
        float theta_interp = r->freq_scale * theta_extrap;
        float theta = theta_interp;
        float m = r->attn_factor;
        if (r->ext_factor != 0.0f) {
            float ramp_mix = rope_ramp(r->corr_low, r->corr_high, k) * r->ext_factor;
            theta = theta_interp * (1.0f - ramp_mix) + theta_extrap * ramp_mix;
            m *= 1.0f + 0.1f * logf(1.0f / r->freq_scale);
        }
        cs[2 * k] = cosf(theta) * m;
        cs[2 * k + 1] = sinf(theta) * m;
        theta_extrap *= theta_scale;
    }
}

void vkm_ref_rope_apply(float *x, const float *cs, int n_rot) {
    for (int k = 0; k < n_rot / 2; k++) {
        const float c = cs[2 * k], s = cs[2 * k + 1];
        const float x0 = x[2 * k], x1 = x[2 * k + 1];
        x[2 * k] = x0 * c - x1 * s;
        x[2 * k + 1] = x0 * s + x1 * c;
    }
}

/* ---------------------------------------------------------------------------- MoE router ---- */

/* Writes the indices of the k largest v[0..n) to idx in descending order (ties: lower index
 * first). -INFINITY entries are ordinary values here (they sort last). */
static void top_k(const float *v, int n, int k, int *idx) {
    for (int j = 0; j < k; j++) {
        int best = -1;
        for (int i = 0; i < n; i++) {
            bool taken = false;
            for (int t = 0; t < j; t++) taken |= idx[t] == i;
            if (taken) continue;
            if (best < 0 || v[i] > v[best]) best = i;
        }
        idx[j] = best;
    }
}

void vkm_ref_moe_route(const float *logits, const float *bias, const vkm_ref_router *cfg, int *sel,
                       float *w) {
    const int X = cfg->n_expert, K = cfg->n_used;
    VKM_ASSERT(X > 0 && X <= VKM_REF_MAX_EXPERT && K > 0 && K <= X);
    float probs[VKM_REF_MAX_EXPERT]; /* [X] gating probabilities */
    float score[VKM_REF_MAX_EXPERT]; /* [X] selection scores (probs + bias, groups masked) */

    for (int i = 0; i < X; i++) probs[i] = logits[i];
    if (cfg->gating == VKM_GATING_SIGMOID) {
        for (int i = 0; i < X; i++) probs[i] = 1.0f / (1.0f + expf(-probs[i]));
    } else {
        VKM_ASSERT(cfg->gating == VKM_GATING_SOFTMAX);
        vkm_ref_softmax(probs, X, 1.0f);
    }
    for (int i = 0; i < X; i++) score[i] = bias ? probs[i] + bias[i] : probs[i];

    if (cfg->n_group > 1) {
        const int G = cfg->n_group, per = X / G;
        VKM_ASSERT(X % G == 0 && per >= 2 && cfg->n_group_used > 0 && cfg->n_group_used < G);
        float gscore[VKM_REF_MAX_EXPERT]; /* [G] sum of the two best scores of each group */
        int gsel[VKM_REF_MAX_EXPERT];     /* [n_group_used] kept groups */
        for (int g = 0; g < G; g++) {
            int two[2];
            top_k(score + g * per, per, 2, two);
            gscore[g] = score[g * per + two[0]] + score[g * per + two[1]];
        }
        top_k(gscore, G, cfg->n_group_used, gsel);
        for (int g = 0; g < G; g++) {
            bool keep = false;
            for (int t = 0; t < cfg->n_group_used; t++) keep |= gsel[t] == g;
            if (!keep)
                for (int i = 0; i < per; i++) score[g * per + i] = -INFINITY;
        }
    }

    top_k(score, X, K, sel);
    for (int j = 0; j < K; j++) w[j] = probs[sel[j]];
    if (cfg->norm) {
        float sum = 0.0f;
        for (int j = 0; j < K; j++) sum += w[j];
        if (sum < 6.103515625e-5f) sum = 6.103515625e-5f;
        for (int j = 0; j < K; j++) w[j] /= sum;
    }
    if (cfg->scale != 0.0f && cfg->scale != 1.0f)
        for (int j = 0; j < K; j++) w[j] *= cfg->scale;
}
