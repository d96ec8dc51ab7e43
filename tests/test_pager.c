/* test_pager.c - the expert cache bookkeeping (core/pager.c), CPU only: LRU order, LFU with and
 * without decay, pinning of the current request's experts (a miss never evicts a unit the same
 * request needs), requests larger than the cache, bad arguments leaving the state unchanged,
 * counters, the admission of misses computed on the CPU (hotness against the victim, pins), the
 * expert ranges of the grouping, and the residency map's consistency under a long random request
 * stream for both policies. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "pager.h"

static vkm_pager *make(uint32_t n_layer, uint32_t n_expert, uint32_t n_slots, int policy,
                       double half_life) {
    vkm_pager *p = NULL;
    vkm_pager_opts o = {n_layer, n_expert, n_slots, policy, half_life};
    CHECK_OK(vkm_pager_create(&o, &p));
    return p;
}

/* One request of experts[] of layer il; returns the number of misses (-1 on error). */
static int req(vkm_pager *p, uint32_t il, const int32_t *experts, int n) {
    int32_t slots[64];
    bool miss[64];
    if (vkm_pager_request(p, il, experts, n, slots, miss)) return -1;
    int m = 0;
    for (int i = 0; i < n; i++) {
        m += miss[i];
        CHECK(slots[i] >= 0 && (uint32_t)slots[i] < vkm_pager_n_slots(p));
        CHECK(vkm_pager_slot_of(p, il, (uint32_t)experts[i]) == slots[i]);
    }
    return m;
}

static int req1(vkm_pager *p, uint32_t il, int32_t x) {
    return req(p, il, &x, 1);
}

static bool resident(const vkm_pager *p, uint32_t il, uint32_t x) {
    return vkm_pager_slot_of(p, il, x) >= 0;
}

/* slot_of and unit_in agree and no unit sits in two slots. */
static void check_consistent(const vkm_pager *p, uint32_t n_layer, uint32_t n_expert) {
    uint32_t n_res = 0;
    for (uint32_t il = 0; il < n_layer; il++)
        for (uint32_t x = 0; x < n_expert; x++) {
            int32_t s = vkm_pager_slot_of(p, il, x);
            if (s < 0) continue;
            n_res++;
            CHECK(vkm_pager_unit_in(p, (uint32_t)s) == (int64_t)il * n_expert + x);
        }
    uint32_t n_used = 0;
    for (uint32_t s = 0; s < vkm_pager_n_slots(p); s++) n_used += vkm_pager_unit_in(p, s) >= 0;
    CHECK(n_res == n_used);
}

static void test_create(void) {
    vkm_pager *p = NULL;
    CHECK_ERR(vkm_pager_create(&(vkm_pager_opts){0, 4, 1, VKM_EXPERT_LRU, 0}, &p));
    CHECK_ERR(vkm_pager_create(&(vkm_pager_opts){2, 4, 0, VKM_EXPERT_LRU, 0}, &p));
    CHECK_ERR(vkm_pager_create(&(vkm_pager_opts){2, 4, 9, VKM_EXPERT_LRU, 0}, &p));
    CHECK_ERR(vkm_pager_create(&(vkm_pager_opts){2, 4, 4, 7, 0}, &p));
    /* the engine resolves the default before it creates a pager */
    CHECK_ERR(vkm_pager_create(&(vkm_pager_opts){2, 4, 4, VKM_EXPERT_POLICY_DEFAULT, 0}, &p));
    CHECK_ERR(vkm_pager_create(&(vkm_pager_opts){2, 4, 4, VKM_EXPERT_LFU, -1.0}, &p));
    CHECK(p == NULL);
    vkm_pager_destroy(NULL);
}

static void test_lru(void) {
    vkm_pager *p = make(2, 8, 3, VKM_EXPERT_LRU, 0);
    if (!p) return;
    CHECK(req1(p, 0, 0) == 1 && req1(p, 0, 1) == 1 && req1(p, 0, 2) == 1);
    CHECK(req1(p, 0, 0) == 0); /* hit; now 1 is the least recently used */
    CHECK(req1(p, 1, 5) == 1); /* evicts 1 */
    CHECK(!resident(p, 0, 1) && resident(p, 0, 0) && resident(p, 0, 2) && resident(p, 1, 5));
    CHECK(req1(p, 0, 3) == 1); /* evicts 2 (used before 0 and 5) */
    CHECK(!resident(p, 0, 2) && resident(p, 0, 0));
    vkm_expert_stats st = {0};
    vkm_pager_add_stats(p, &st);
    CHECK(st.hits == 1 && st.misses == 5);
    check_consistent(p, 2, 8);
    vkm_pager_destroy(p);
}

static void test_pinning(void) {
    /* 0 is the least recently used when {3, 0} comes: the hit on 0 is pinned first, so the miss
     * on 3 takes 1's slot instead */
    vkm_pager *p = make(1, 8, 3, VKM_EXPERT_LRU, 0);
    if (!p) return;
    req1(p, 0, 0);
    req1(p, 0, 1);
    req1(p, 0, 2);
    CHECK(req(p, 0, (int32_t[]){3, 0}, 2) == 1);
    CHECK(resident(p, 0, 0) && resident(p, 0, 3) && !resident(p, 0, 1) && resident(p, 0, 2));
    /* a request filling every slot: all its units resident at once, none evicting another */
    CHECK(req(p, 0, (int32_t[]){4, 5, 0}, 3) == 2);
    CHECK(resident(p, 0, 4) && resident(p, 0, 5) && resident(p, 0, 0));
    /* LFU: the pinned hit is the least frequent, still not evicted */
    vkm_pager *q = make(1, 8, 2, VKM_EXPERT_LFU, 1e9);
    if (q) {
        for (int i = 0; i < 5; i++) req1(q, 0, 1);
        req1(q, 0, 0);
        CHECK(req(q, 0, (int32_t[]){0, 2}, 2) == 1); /* 2 must evict 1 (count 5), not 0 */
        CHECK(resident(q, 0, 0) && resident(q, 0, 2) && !resident(q, 0, 1));
        vkm_pager_destroy(q);
    }
    vkm_pager_destroy(p);
}

static void test_lfu(void) {
    /* no decay: 0 used five times survives 1 used once, although 1 is more recent */
    vkm_pager *p = make(1, 8, 2, VKM_EXPERT_LFU, 1e9);
    if (!p) return;
    for (int i = 0; i < 5; i++) req1(p, 0, 0);
    req1(p, 0, 1);
    CHECK(req1(p, 0, 2) == 1);
    CHECK(resident(p, 0, 0) && !resident(p, 0, 1));
    vkm_pager_destroy(p);
    /* LRU on the same sequence evicts 0 */
    p = make(1, 8, 2, VKM_EXPERT_LRU, 0);
    if (!p) return;
    for (int i = 0; i < 5; i++) req1(p, 0, 0);
    req1(p, 0, 1);
    req1(p, 0, 2);
    CHECK(!resident(p, 0, 0) && resident(p, 0, 1));
    vkm_pager_destroy(p);
    /* decay (half-life 1 request): five old uses of 0 weigh less than one recent use of 1 */
    p = make(1, 8, 2, VKM_EXPERT_LFU, 1.0);
    if (!p) return;
    for (int i = 0; i < 5; i++) req1(p, 0, 0);
    for (int i = 0; i < 12; i++) CHECK(req(p, 0, NULL, 0) == 0); /* time passes */
    req1(p, 0, 1);
    CHECK(req1(p, 0, 2) == 1);
    CHECK(!resident(p, 0, 0) && resident(p, 0, 1));
    /* 0 comes back (evicting the older of 1 and 2) and, used often again, outlives 2 */
    for (int i = 0; i < 6; i++) req1(p, 0, 0);
    CHECK(req1(p, 0, 3) == 1);
    CHECK(resident(p, 0, 0) && resident(p, 0, 3));
    vkm_pager_destroy(p);
}

static void test_errors(void) {
    vkm_pager *p = make(2, 8, 2, VKM_EXPERT_LRU, 0);
    if (!p) return;
    int32_t slots[4];
    bool miss[4];
    req(p, 0, (int32_t[]){0, 1}, 2);
    CHECK(vkm_pager_request(p, 0, (int32_t[]){2, 3, 4}, 3, slots, miss) == VKM_ERANGE);
    CHECK(vkm_pager_request(p, 0, (int32_t[]){2, 2}, 2, slots, miss) == VKM_EINVAL);
    CHECK(vkm_pager_request(p, 0, (int32_t[]){8}, 1, slots, miss) == VKM_EINVAL);
    CHECK(vkm_pager_request(p, 0, (int32_t[]){-1}, 1, slots, miss) == VKM_EINVAL);
    CHECK(vkm_pager_request(p, 2, (int32_t[]){0}, 1, slots, miss) == VKM_EINVAL);
    CHECK(vkm_pager_request(p, 0, NULL, -1, slots, miss) == VKM_EINVAL);
    CHECK(resident(p, 0, 0) && resident(p, 0, 1) && !resident(p, 0, 2)); /* unchanged */
    CHECK(vkm_pager_slot_of(p, 5, 0) == -1 && vkm_pager_slot_of(p, 0, 99) == -1);
    CHECK(vkm_pager_unit_in(p, 7) == -1);
    vkm_expert_stats st = {0};
    vkm_pager_add_stats(p, &st);
    CHECK(st.hits == 0 && st.misses == 2);
    vkm_pager_note_upload(p, 1000, 1.5);
    vkm_pager_note_upload(p, 24, 0.5);
    memset(&st, 0, sizeof st);
    vkm_pager_add_stats(p, &st);
    CHECK(st.uploaded_bytes == 1024 && st.stall_ms == 2.0 && st.prefetched == 0);
    vkm_pager_reset_stats(p);
    memset(&st, 0, sizeof st);
    vkm_pager_add_stats(p, &st);
    CHECK(st.hits == 0 && st.misses == 0 && st.uploaded_bytes == 0);
    vkm_pager_destroy(p);
}

/* Admission of misses computed on the CPU (vkm_pager_admit): every candidate counts a miss and
 * a use; LRU takes free slots only; LFU also replaces the coldest unit the current request has
 * not pinned, and only when the candidate's count exceeds it by more than one use; an admitted
 * unit is pinned until the next request. */
static void test_admit(void) {
    int32_t sl = -2;
    /* LRU: a free slot, then none: never over a resident unit, however often it misses */
    vkm_pager *p = make(1, 8, 2, VKM_EXPERT_LRU, 0);
    if (!p) return;
    req1(p, 0, 0);
    CHECK_OK(vkm_pager_admit(p, 0, 1, &sl));
    CHECK(sl >= 0 && vkm_pager_slot_of(p, 0, 1) == sl && resident(p, 0, 0));
    CHECK_OK(vkm_pager_admit(p, 0, 2, &sl)); /* both slots pinned (request, admission) */
    CHECK(sl == -1 && !resident(p, 0, 2));
    for (int i = 0; i < 10; i++) {
        CHECK(req(p, 0, NULL, 0) == 0);
        CHECK_OK(vkm_pager_admit(p, 0, 3, &sl));
        CHECK(sl == -1);
    }
    CHECK(resident(p, 0, 0) && resident(p, 0, 1) && !resident(p, 0, 3));
    CHECK(vkm_pager_admit(p, 0, 1, &sl) == VKM_EINVAL && sl == -1); /* resident */
    CHECK(vkm_pager_admit(p, 0, 8, &sl) == VKM_EINVAL);
    CHECK(vkm_pager_admit(p, 1, 0, &sl) == VKM_EINVAL);
    vkm_expert_stats st = {0};
    vkm_pager_add_stats(p, &st);
    CHECK(st.hits == 0 && st.misses == 13 && st.admitted == 1);
    check_consistent(p, 1, 8);
    vkm_pager_destroy(p);

    /* LFU without decay. 2 is used five times, then evicted by {0, 1} (its slot the only one
     * unpinned); 1 is used four times in all, 0 once */
    p = make(1, 8, 2, VKM_EXPERT_LFU, 1e9);
    if (!p) return;
    for (int i = 0; i < 5; i++) req1(p, 0, 2);
    CHECK(req(p, 0, (int32_t[]){0, 1}, 2) == 2 && !resident(p, 0, 2));
    for (int i = 0; i < 3; i++) req1(p, 0, 1);
    /* a request pins 0 (count 2); 2 (count 6) replaces 1 (count 4), not the colder pinned 0 */
    req1(p, 0, 0);
    CHECK_OK(vkm_pager_admit(p, 0, 2, &sl));
    CHECK(sl >= 0 && vkm_pager_slot_of(p, 0, 2) == sl && resident(p, 0, 0) && !resident(p, 0, 1));
    /* in the same request every slot is pinned: 3 is refused */
    CHECK_OK(vkm_pager_admit(p, 0, 3, &sl));
    CHECK(sl == -1);
    /* while 0 (count 2) is pinned again, 3 (count 2) is colder than the only unpinned unit, 2
     * (count 6): refused */
    req1(p, 0, 0);
    CHECK_OK(vkm_pager_admit(p, 0, 3, &sl));
    CHECK(sl == -1 && resident(p, 0, 0) && resident(p, 0, 2));
    /* nothing pinned: 3 at count 3 is not more than one use above 0 (count 3), refused; at 4 a
     * tie with 3 + 1 (either way), at 5 it replaces 0, not 2 */
    CHECK(req(p, 0, NULL, 0) == 0);
    CHECK_OK(vkm_pager_admit(p, 0, 3, &sl));
    CHECK(sl == -1 && resident(p, 0, 0));
    int offers = 4; /* admissions offered: 2 once, 3 three times so far */
    for (int i = 0; i < 2 && !resident(p, 0, 3); i++, offers++) {
        CHECK(req(p, 0, NULL, 0) == 0);
        CHECK_OK(vkm_pager_admit(p, 0, 3, &sl));
    }
    CHECK(resident(p, 0, 3) && !resident(p, 0, 0) && resident(p, 0, 2));
    /* an admitted unit is an ordinary resident for later requests: a hit */
    CHECK(req1(p, 0, 3) == 0);
    memset(&st, 0, sizeof st);
    vkm_pager_add_stats(p, &st);
    CHECK(st.admitted == 2 && st.misses == (uint64_t)(3 + offers) && st.hits == 4 + 3 + 2 + 1);
    check_consistent(p, 1, 8);
    vkm_pager_destroy(p);

    /* LFU with decay (half-life 1 request): a unit used long ago is replaced by a recent one */
    p = make(1, 8, 1, VKM_EXPERT_LFU, 1.0);
    if (!p) return;
    for (int i = 0; i < 5; i++) req1(p, 0, 0);
    for (int i = 0; i < 12; i++) CHECK(req(p, 0, NULL, 0) == 0);
    CHECK_OK(vkm_pager_admit(p, 0, 4, &sl)); /* count 1: not above 0's ~0 + 1 */
    CHECK(sl == -1 && resident(p, 0, 0));
    CHECK(req(p, 0, NULL, 0) == 0);
    CHECK_OK(vkm_pager_admit(p, 0, 4, &sl)); /* count 1.5 */
    CHECK(sl == 0 && resident(p, 0, 4) && !resident(p, 0, 0));
    vkm_pager_destroy(p);
}

static void test_ranges(void) {
    const int32_t sel[] = {3, 1, 0, 3, 7, 1, 99, -2, 3};
    int32_t r[2 * 8];
    vkm_pager_expert_ranges(sel, 9, 8, r);
    const int32_t want[2 * 8] = {0, 1, 1, 2, 3, 0, 3, 3, 6, 0, 6, 0, 6, 0, 6, 1};
    CHECK(memcmp(r, want, sizeof want) == 0);
}

/* Random streams: consistency, hits + misses = requests, misses never exceed the requests. */
static void test_random(int policy) {
    const uint32_t L = 3, X = 16, S = 10;
    vkm_pager *p = make(L, X, S, policy, 8.0);
    if (!p) return;
    const bool lfu = policy == VKM_EXPERT_LFU;
    uint32_t seed = 12345u;
    uint64_t n_req = 0;
    for (int it = 0; it < 2000; it++) {
        seed = seed * 1664525u + 1013904223u;
        const uint32_t il = (seed >> 8) % L;
        int32_t xs[8];
        int n = 0;
        const int want = 1 + (int)((seed >> 16) % 8);
        while (n < want) {
            seed = seed * 1664525u + 1013904223u;
            int32_t x = (int32_t)((seed >> 10) % (lfu ? 6 : X)); /* LFU: a skewed set */
            bool dup = false;
            for (int j = 0; j < n; j++) dup |= xs[j] == x;
            if (!dup) xs[n++] = x;
            if (lfu && n == 6) break;
        }
        CHECK(req(p, il, xs, n) >= 0);
        for (int j = 0; j < n; j++) CHECK(resident(p, il, (uint32_t)xs[j]));
        n_req += (uint64_t)n;
    }
    check_consistent(p, L, X);
    vkm_expert_stats st = {0};
    vkm_pager_add_stats(p, &st);
    CHECK(st.hits + st.misses == n_req);
    CHECK(st.misses >= S && st.hits > 0);
    printf("random %s: %llu requests, hit rate %.1f%%\n", lfu ? "lfu" : "lru",
           (unsigned long long)n_req, 100.0 * (double)st.hits / (double)n_req);
    vkm_pager_destroy(p);
}

int main(void) {
    test_create();
    test_lru();
    test_pinning();
    test_lfu();
    test_errors();
    test_admit();
    test_ranges();
    test_random(VKM_EXPERT_LRU);
    test_random(VKM_EXPERT_LFU);
    return check_done();
}
