// router_lane.comp - the MoE routing of router.comp (same bindings, push constants and results,
// see there and spec §4.7) in the layout for CPU devices such as lavapipe: one invocation per
// token does the whole routing alone, with no shared memory, barrier or reduction (router.comp's
// workgroup per token costs a barrier per reduction step on a CPU driver, where a barrier is a
// coroutine switch of every invocation). Invocation t = gl_GlobalInvocationID.x owns token t;
// the host dispatches ceil(n_tok / WG) workgroups (no grid stride), so one invocation's loops
// stay below lavapipe's 65535 iterations: at most (n_group_used + n_used + 3) * n_expert +
// n_group * n_group_used, about 46000 at the limits (512 experts, 64 groups, top-16).
//
// Nothing per expert is stored: a probability is recomputed from its logit where it is needed
// (the same expressions as router.comp, so the same values). Top-k takes the n_used best
// (selection value, index) pairs in the order "larger value, then lower index": pick j is the
// best pair ranked after pick j - 1, so no "taken" set is needed; groups are picked the same way
// and kept in a 64-bit mask (VKM_ROUTER_MAX_GROUP = 64).
//
// With -DGROUP (variant router_lane_group, for batches of at most VKM_ROUTER_LANE_WG tokens, one
// workgroup) the workgroup then groups the choices by expert as moe_group.comp does
// (moe_group.glsl), saving that dispatch; extra bindings 4 rows, 5 mats, 6 map (fwd_common.h).
#version 450
#extension GL_GOOGLE_include_directive : require
#include "fwd_common.h"

layout(local_size_x = VKM_ROUTER_LANE_WG) in;
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

// (v, i) ranks before (bv, bi): larger value, ties to the lower index
bool before(float v, uint i, float bv, uint bi) { return v > bv || (v == bv && i < bi); }

// routes token t
void route(uint t) {
    const uint X = p.n_expert, lb = t * p.logit_stride;
    const float NEG_INF = uintBitsToFloat(0xff800000u);

    // softmax gating: the max and the sum of exp(logit - max), summed in index order (router.comp
    // sums as a tree: the probabilities differ in rounding only)
    float mx = NEG_INF, inv = 1.0;
    if (p.gating != 2) {
        for (uint e = 0u; e < X; e++) mx = max(mx, logits[lb + e]);
        float sum = 0.0;
        for (uint e = 0u; e < X; e++) sum += exp(logits[lb + e] - mx);
        inv = 1.0 / sum;
    }

    // group limiting: score = sum of the two largest selection values of each group
    uvec2 keep = uvec2(0xffffffffu);
    const uint G = p.n_group, per = G > 1u ? X / G : X;
    if (G > 1u) {
        keep = uvec2(0u);
        float pv = 0.0;
        uint pg = 0xffffffffu; // the previous pick (none yet)
        for (uint j = 0u; j < p.n_group_used; j++) {
            float bv = 0.0;
            uint bg = 0xffffffffu;
            for (uint g = 0u; g < G; g++) {
                float b1 = NEG_INF, b2 = NEG_INF;
                for (uint e = g * per; e < (g + 1u) * per; e++) {
                    const float l = logits[lb + e];
                    const float pr = p.gating == 2 ? 1.0 / (1.0 + exp(-l)) : exp(l - mx) * inv;
                    const float v = p.has_bias != 0 ? pr + bias[e] : pr;
                    const bool first = e == g * per, second = e == g * per + 1u;
                    if (first || v > b1) {
                        b2 = b1;
                        b1 = v;
                    } else if (second || v > b2) {
                        b2 = v;
                    }
                }
                const float s = b1 + b2;
                const bool after = pg == 0xffffffffu || before(pv, pg, s, g);
                if (after && (bg == 0xffffffffu || before(s, g, bv, bg))) {
                    bv = s;
                    bg = g;
                }
            }
            if (bg < 32u) keep.x |= 1u << bg;
            else if (bg < 64u) keep.y |= 1u << (bg - 32u);
            pv = bv;
            pg = bg;
        }
    }

    // top-k over the selection values (-inf outside the kept groups), then the weights
    uint chosen[VKM_ROUTER_MAX_USED];
    float pv = 0.0, wsum = 0.0;
    uint pi = 0xffffffffu;
    for (uint j = 0u; j < p.n_used; j++) {
        float bv = 0.0;
        uint bi = 0xffffffffu;
        for (uint e = 0u; e < X; e++) {
            const uint g = e / per;
            const bool kept = ((g < 32u ? keep.x >> g : keep.y >> (g - 32u)) & 1u) != 0u;
            const float l = logits[lb + e];
            const float pr = p.gating == 2 ? 1.0 / (1.0 + exp(-l)) : exp(l - mx) * inv;
            float v = p.has_bias != 0 ? pr + bias[e] : pr;
            if (!kept) v = NEG_INF;
            const bool after = pi == 0xffffffffu || before(pv, pi, v, e);
            if (after && (bi == 0xffffffffu || before(v, e, bv, bi))) {
                bv = v;
                bi = e;
            }
        }
        chosen[j] = bi;
        const float l = logits[lb + bi];
        wsum += p.gating == 2 ? 1.0 / (1.0 + exp(-l)) : exp(l - mx) * inv; // in order j = 0..
        pv = bv;
        pi = bi;
    }
    const float div = max(wsum, 6.103515625e-5);
    const bool scaled = p.scale != 0.0 && p.scale != 1.0;
    for (uint j = 0u; j < p.n_used; j++) {
        const float l = logits[lb + chosen[j]];
        float v = p.gating == 2 ? 1.0 / (1.0 + exp(-l)) : exp(l - mx) * inv;
        if (p.norm != 0) v /= div;
        if (scaled) v *= p.scale;
        ids[t * p.n_used + j] = int(chosen[j]);
        wts[t * p.n_used + j] = v;
    }
}

#ifdef GROUP
#include "moe_group.glsl"

void main() {
    const uint t = gl_LocalInvocationID.x; // one workgroup: n_tok <= VKM_ROUTER_LANE_WG
    if (t < p.n_tok) route(t);
    memoryBarrierBuffer(); // the ids written above are read by every invocation
    barrier();
    moe_group(VKM_ROUTER_LANE_WG);
}
#else
void main() {
    const uint t = gl_GlobalInvocationID.x;
    if (t < p.n_tok) route(t);
}
#endif
