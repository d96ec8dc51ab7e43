// moe_group.glsl - groups the router's expert choices by expert (layout in fwd_common.h), the body
// of moe_group.comp, also run by router_lane.comp's router_lane_group variant right after the
// routing. The including shader declares the buffers ids (int32 [n_tok*n_used], readable), rows,
// mats (int32 [3*n_expert+1]) and map, and the push block `p` with n_tok, n_used and n_expert.
// The whole workgroup calls moe_group(its size): invocation e (strided over experts) counts the entries
// choosing e, invocation 0 turns the counts into first offsets (exclusive prefix sum), then
// invocation e scatters its entries in token order. Every entry is scanned by every invocation,
// which is cheap for the n_tok*n_used <= a few thousand entries of one batch and keeps the result
// deterministic. Invocation 0 also writes the list of experts with entries
// (mats[2*n_expert..], fwd_common.h).

shared uint cnt[VKM_MOE_GROUP_MAX_EXPERT];
shared uint first[VKM_MOE_GROUP_MAX_EXPERT];

void moe_group(uint nt) {
    const uint tid = gl_LocalInvocationID.x;
    const uint n = p.n_tok * p.n_used;
    const uint X = min(p.n_expert, uint(VKM_MOE_GROUP_MAX_EXPERT));
    for (uint e = tid; e < X; e += nt) {
        uint c = 0;
        for (uint r = 0; r < n; r++) c += ids[r] == int(e) ? 1u : 0u;
        cnt[e] = c;
    }
    barrier();
    if (tid == 0) {
        uint s = 0, a = 0;
        for (uint e = 0; e < X; e++) {
            first[e] = s;
            s += cnt[e];
            if (cnt[e] > 0u) mats[2u * p.n_expert + 1u + a++] = int(e);
        }
        mats[2u * p.n_expert] = int(a);
    }
    barrier();
    for (uint e = tid; e < X; e += nt) {
        uint k = first[e];
        mats[2 * e] = int(k);
        mats[2 * e + 1] = int(cnt[e]);
        for (uint r = 0; r < n; r++) {
            if (ids[r] == int(e)) {
                rows[k] = int(r / p.n_used);
                map[r] = int(k);
                k++;
            }
        }
    }
    for (uint r = tid; r < n; r += nt)
        if (ids[r] < 0 || ids[r] >= int(X)) map[r] = -1;
}
