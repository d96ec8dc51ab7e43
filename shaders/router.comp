// router.comp - MoE routing (spec §4.7), one workgroup per token (grid-stride over tokens):
//   probs = softmax(logits) (gating 1) or sigmoid(logits) (gating 2)
//   sel = probs + bias (has_bias), used only for selection
//   n_group > 1: group score = sum of the two largest sel of each contiguous group; all but the
//     n_group_used best groups get sel = -inf
//   ids = top-n_used of sel, descending; ties go to the lowest index (experts and groups alike)
//   w = probs[ids]; norm: w /= max(sum w, 2^-14) (summed in order j = 0..n_used-1); w *= scale
//     when scale is neither 0 nor 1.
// -inf entries are ordinary candidates (as in the CPU reference), so top-k never runs dry.
// Bindings: 0 logits (f32 [n_tok][logit_stride]), 1 bias (f32 [n_expert], ignored unless
// has_bias), 2 ids (int32 [n_tok][n_used]), 3 weights (f32 [n_tok][n_used]).
// With -DGROUP (variant router_group, GPUs' decode: one workgroup, every token routed by it in
// turn) the workgroup then groups the choices by expert as moe_group.comp does (moe_group.glsl),
// saving that dispatch; extra bindings 4 rows, 5 mats, 6 map (fwd_common.h).
#version 450
#extension GL_GOOGLE_include_directive : require
#include "fwd_common.h"

#define WG VKM_OPS_RED_WG
#define NONE 0xffffffffu

layout(local_size_x = WG) in;
layout(std430, set = 0, binding = 0) readonly buffer L { float logits[]; };
layout(std430, set = 0, binding = 1) readonly buffer B { float bias[]; };
#ifdef GROUP
layout(std430, set = 0, binding = 2) buffer I { int ids[]; };
layout(std430, set = 0, binding = 4) writeonly buffer R { int rows[]; };
layout(std430, set = 0, binding = 5) writeonly buffer M { int mats[]; };
layout(std430, set = 0, binding = 6) writeonly buffer P { int map[]; };
#else
layout(std430, set = 0, binding = 2) writeonly buffer I { int ids[]; };
#endif
layout(std430, set = 0, binding = 3) writeonly buffer W { float wts[]; };
layout(push_constant) uniform Push { vkm_push_router p; };

shared float probs[VKM_ROUTER_MAX_EXPERT];
shared float sel[VKM_ROUTER_MAX_EXPERT];
shared uint taken[VKM_ROUTER_MAX_EXPERT];
shared float gscore[VKM_ROUTER_MAX_GROUP];
shared uint gkeep[VKM_ROUTER_MAX_GROUP];
shared float red_v[WG];
shared uint red_i[WG];
shared int chosen[VKM_ROUTER_MAX_USED];

// true if candidate (v, i) beats (bv, bi): larger value, ties to the lower index; NONE loses.
bool better(float v, uint i, float bv, uint bi) {
    return i != NONE && (bi == NONE || v > bv || (v == bv && i < bi));
}

float reduce_max(float v) {
    const uint tid = gl_LocalInvocationID.x;
    red_v[tid] = v;
    barrier();
    for (uint r = WG / 2; r > 0; r >>= 1) {
        if (tid < r) red_v[tid] = max(red_v[tid], red_v[tid + r]);
        barrier();
    }
    const float res = red_v[0];
    barrier();
    return res;
}

float reduce_sum(float v) {
    const uint tid = gl_LocalInvocationID.x;
    red_v[tid] = v;
    barrier();
    for (uint r = WG / 2; r > 0; r >>= 1) {
        if (tid < r) red_v[tid] += red_v[tid + r];
        barrier();
    }
    const float res = red_v[0];
    barrier();
    return res;
}

void route() {
    const uint tid = gl_LocalInvocationID.x;
    const uint X = p.n_expert;
    const float NEG_INF = uintBitsToFloat(0xff800000u);
    for (uint t = gl_WorkGroupID.x; t < p.n_tok; t += gl_NumWorkGroups.x) {
        const uint lb = t * p.logit_stride;
        // probabilities
        if (p.gating == 2) {
            for (uint e = tid; e < X; e += WG) probs[e] = 1.0 / (1.0 + exp(-logits[lb + e]));
        } else {
            float mx = NEG_INF;
            for (uint e = tid; e < X; e += WG) mx = max(mx, logits[lb + e]);
            mx = reduce_max(mx);
            float sum = 0.0;
            for (uint e = tid; e < X; e += WG) {
                const float v = exp(logits[lb + e] - mx);
                probs[e] = v;
                sum += v;
            }
            const float inv = 1.0 / reduce_sum(sum);
            for (uint e = tid; e < X; e += WG) probs[e] *= inv;
        }
        for (uint e = tid; e < X; e += WG) {
            sel[e] = p.has_bias != 0 ? probs[e] + bias[e] : probs[e];
            taken[e] = 0;
        }
        barrier();

        // group limiting
        if (p.n_group > 1) {
            const uint per = X / p.n_group;
            if (tid < p.n_group) {
                float b1 = NEG_INF, b2 = NEG_INF;
                uint n = 0;
                for (uint e = tid * per; e < (tid + 1) * per; e++) {
                    const float v = sel[e];
                    if (n == 0 || v > b1) {
                        b2 = b1;
                        b1 = v;
                    } else if (n == 1 || v > b2) {
                        b2 = v;
                    }
                    n++;
                }
                gscore[tid] = b1 + b2;
                gkeep[tid] = 0;
            }
            barrier();
            if (tid == 0) {
                for (uint j = 0; j < p.n_group_used; j++) {
                    uint bi = NONE;
                    for (uint g = 0; g < p.n_group; g++)
                        if (gkeep[g] == 0 && (bi == NONE || gscore[g] > gscore[bi])) bi = g;
                    gkeep[bi] = 1;
                }
            }
            barrier();
            for (uint e = tid; e < X; e += WG)
                if (gkeep[e / per] == 0) sel[e] = NEG_INF;
            barrier();
        }

        // top-k, one arg-max reduction per pick
        for (uint j = 0; j < p.n_used; j++) {
            float bv = NEG_INF;
            uint bi = NONE;
            for (uint e = tid; e < X; e += WG)
                if (taken[e] == 0 && better(sel[e], e, bv, bi)) {
                    bv = sel[e];
                    bi = e;
                }
            red_v[tid] = bv;
            red_i[tid] = bi;
            barrier();
            for (uint r = WG / 2; r > 0; r >>= 1) {
                if (tid < r && better(red_v[tid + r], red_i[tid + r], red_v[tid], red_i[tid])) {
                    red_v[tid] = red_v[tid + r];
                    red_i[tid] = red_i[tid + r];
                }
                barrier();
            }
            if (tid == 0) {
                chosen[j] = red_i[0] == NONE ? 0 : int(red_i[0]); // NONE: only if n_used > X
                if (red_i[0] != NONE) taken[red_i[0]] = 1;
            }
            barrier();
        }

        // weights
        if (tid == 0) {
            float w[VKM_ROUTER_MAX_USED];
            float sum = 0.0;
            for (uint j = 0; j < p.n_used; j++) {
                w[j] = probs[chosen[j]];
                sum += w[j];
            }
            const float div = max(sum, 6.103515625e-5);
            const bool scaled = p.scale != 0.0 && p.scale != 1.0;
            for (uint j = 0; j < p.n_used; j++) {
                float v = w[j];
                if (p.norm != 0) v /= div;
                if (scaled) v *= p.scale;
                ids[t * p.n_used + j] = chosen[j];
                wts[t * p.n_used + j] = v;
            }
        }
        barrier();
    }
}

#ifdef GROUP
#include "moe_group.glsl"

void main() {
    route(); // one workgroup: every token
    memoryBarrierBuffer(); // the ids written by invocation 0 are read by every invocation
    barrier();
    moe_group(WG);
}
#else
void main() { route(); }
#endif
