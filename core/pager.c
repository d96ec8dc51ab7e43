/* pager.c - the expert cache bookkeeping of core/pager.h: residency map, pins, LRU and LFU with
 * decay, counters, and the expert ranges of the grouped router choices.
 *
 * Time is the request counter `tick` (one per vkm_pager_request). LRU compares the tick of each
 * slot's last request; LFU compares each unit's count decayed to now,
 * count * 2^(-(tick - count_tick) / half_life), ties broken by LRU. Counts are kept for every
 * unit, resident or not, so an evicted hot unit keeps its history; a miss computed elsewhere
 * (vkm_pager_admit) counts as a use too, so a unit the CPU computes can grow hot enough to be
 * admitted.
 *
 * Invariants: see pager.h; pin[s] == tick marks slot s as needed by the current request. */
#include "pager.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"

#define DEFAULT_HALF_LIFE 64.0
/* LFU admission: a candidate's count must exceed the victim's by more than this. Without it
 * units of nearly equal counts kept replacing each other: on bench-small with skewed routing at
 * 25% of the experts (--expert-exec cpu) a margin of 1 use uploaded 95 MB instead of 211 and hit
 * 781 requests instead of 756; 2 and 4 uploaded less but hit fewer (763, 734). */
#define ADMIT_MARGIN 1.0

struct vkm_pager {
    uint32_t n_layer, n_expert, n_slots;
    int policy;
    double half_life;
    uint64_t tick;        /* requests so far */
    int32_t *slot_of;     /* [n_layer * n_expert] slot or -1 */
    double *count;        /* [n_layer * n_expert] LFU count as of count_tick */
    uint64_t *count_tick; /* [n_layer * n_expert] */
    int64_t *unit_in;     /* [n_slots] unit or -1 */
    uint64_t *last_use;   /* [n_slots] tick of the last request that used the slot */
    uint64_t *pin;        /* [n_slots] == tick while the current request needs it */
    bool *pf;             /* [n_slots] holds a prefetched unit not yet requested */
    uint64_t *guard;      /* [n_slots] == tick: holds a unit guessed since the last request */
    vkm_expert_stats st;
};

int vkm_pager_create(const vkm_pager_opts *o, vkm_pager **out) {
    *out = NULL;
    const uint64_t units = (uint64_t)o->n_layer * o->n_expert;
    if (units == 0 || units > (1u << 30))
        return vkm_error(VKM_EINVAL, "pager: %u layers x %u experts", o->n_layer, o->n_expert);
    if (o->n_slots == 0 || o->n_slots > units)
        return vkm_error(VKM_EINVAL, "pager: %u slots for %llu units", o->n_slots,
                         (unsigned long long)units);
    if (o->policy != VKM_EXPERT_LRU && o->policy != VKM_EXPERT_LFU)
        return vkm_error(VKM_EINVAL, "pager: unknown policy %d", o->policy);
    if (!(o->lfu_half_life >= 0.0) || o->lfu_half_life > 1e12)
        return vkm_error(VKM_EINVAL, "pager: LFU half-life %g", o->lfu_half_life);
    vkm_pager *p = calloc(1, sizeof *p);
    if (!p) return vkm_error(VKM_ENOMEM, "out of memory");
    p->n_layer = o->n_layer;
    p->n_expert = o->n_expert;
    p->n_slots = o->n_slots;
    p->policy = o->policy;
    p->half_life = o->lfu_half_life > 0 ? o->lfu_half_life : DEFAULT_HALF_LIFE;
    p->slot_of = malloc(units * sizeof *p->slot_of);
    p->count = calloc(units, sizeof *p->count);
    p->count_tick = calloc(units, sizeof *p->count_tick);
    p->unit_in = malloc(o->n_slots * sizeof *p->unit_in);
    p->last_use = calloc(o->n_slots, sizeof *p->last_use);
    p->pin = calloc(o->n_slots, sizeof *p->pin);
    p->pf = calloc(o->n_slots, sizeof *p->pf);
    p->guard = calloc(o->n_slots, sizeof *p->guard);
    if (!p->guard || !p->slot_of || !p->count || !p->count_tick || !p->unit_in || !p->last_use ||
        !p->pin || !p->pf) {
        vkm_pager_destroy(p);
        return vkm_error(VKM_ENOMEM, "out of memory");
    }
    for (uint64_t u = 0; u < units; u++) p->slot_of[u] = -1;
    for (uint32_t s = 0; s < o->n_slots; s++) p->unit_in[s] = -1;
    *out = p;
    return 0;
}

void vkm_pager_destroy(vkm_pager *p) {
    if (!p) return;
    free(p->slot_of);
    free(p->count);
    free(p->count_tick);
    free(p->unit_in);
    free(p->last_use);
    free(p->pin);
    free(p->pf);
    free(p->guard);
    free(p);
}

/* A unit's LFU count decayed to the current tick. */
static double decayed(const vkm_pager *p, int64_t u) {
    const double age = (double)(p->tick - p->count_tick[u]);
    return p->count[u] * exp2(-age / p->half_life);
}

/* The slot to (re)use for a miss: a free one first, else the policy's victim among the slots
 * the current request has not pinned. -1 when every slot is pinned. For a prefetch (and an
 * admission), also skips slots holding a unit guessed since the last request or a prefetched
 * unit not yet requested. (Sparing every unit of the guessed layer instead measured worse: with
 * one layer per size class its slots could then never take a guess.) */
static int32_t victim(const vkm_pager *p, bool prefetch) {
    int32_t best = -1;
    double best_score = 0.0;
    for (uint32_t s = 0; s < p->n_slots; s++) {
        if (p->pin[s] == p->tick) continue;
        if (p->unit_in[s] < 0) return (int32_t)s;
        if (prefetch && (p->pf[s] || p->guard[s] == p->tick)) continue;
        const double score = p->policy == VKM_EXPERT_LFU ? decayed(p, p->unit_in[s]) : 0.0;
        if (best < 0 || score < best_score ||
            (score == best_score && p->last_use[s] < p->last_use[best])) {
            best = (int32_t)s;
            best_score = score;
        }
    }
    return best;
}

int vkm_pager_request(vkm_pager *p, uint32_t layer, const int32_t *experts, int n, int32_t *slots,
                      bool *miss) {
    if (layer >= p->n_layer || n < 0)
        return vkm_error(VKM_EINVAL, "pager: request of %d experts of layer %u (%u layers)", n,
                         layer, p->n_layer);
    if ((uint32_t)n > p->n_slots)
        return vkm_error(VKM_ERANGE, "pager: %d experts requested at once, only %u slots", n,
                         p->n_slots);
    for (int i = 0; i < n; i++) {
        if (experts[i] < 0 || (uint32_t)experts[i] >= p->n_expert)
            return vkm_error(VKM_EINVAL, "pager: expert %d outside [0, %u)", experts[i],
                             p->n_expert);
        for (int j = 0; j < i; j++)
            if (experts[j] == experts[i])
                return vkm_error(VKM_EINVAL, "pager: expert %d requested twice", experts[i]);
    }
    p->tick++; /* releases the previous request's pins */
    const int64_t base = (int64_t)layer * p->n_expert;
    /* hits first, so that no miss can evict a unit this request needs */
    for (int i = 0; i < n; i++) {
        const int32_t s = p->slot_of[base + experts[i]];
        miss[i] = s < 0;
        slots[i] = s;
        if (s >= 0) p->pin[s] = p->tick;
        if (s >= 0 && p->pf[s]) {
            p->st.prefetch_used++;
            p->pf[s] = false;
        }
    }
    /* this layer's other prefetched units were guessed wrong: ordinary residents from now on */
    for (uint32_t s = 0; s < p->n_slots; s++)
        if (p->pf[s] && p->unit_in[s] / p->n_expert == (int64_t)layer) p->pf[s] = false;
    for (int i = 0; i < n; i++) {
        const int64_t u = base + experts[i];
        if (miss[i]) {
            const int32_t s = victim(p, false);
            VKM_ASSERT(s >= 0); /* n <= n_slots and only this request's slots are pinned */
            if (p->unit_in[s] >= 0) p->slot_of[p->unit_in[s]] = -1;
            p->pf[s] = false;
            p->unit_in[s] = u;
            p->slot_of[u] = s;
            p->pin[s] = p->tick;
            slots[i] = s;
            p->st.misses++;
        } else {
            p->st.hits++;
        }
        p->last_use[slots[i]] = p->tick;
        p->count[u] = decayed(p, u) + 1.0;
        p->count_tick[u] = p->tick;
    }
    return 0;
}

int vkm_pager_prefetch(vkm_pager *p, uint32_t layer, int32_t expert, int32_t *slot, bool *placed) {
    *slot = -1;
    *placed = false;
    if (layer >= p->n_layer || expert < 0 || (uint32_t)expert >= p->n_expert)
        return vkm_error(VKM_EINVAL, "pager: prefetch of expert %d of layer %u", expert, layer);
    const int64_t u = (int64_t)layer * p->n_expert + expert;
    if (p->slot_of[u] >= 0) {
        *slot = p->slot_of[u];
        p->guard[*slot] = p->tick;
        return 0;
    }
    const int32_t s = victim(p, true);
    if (s < 0) return 0;
    p->guard[s] = p->tick;
    if (p->unit_in[s] >= 0) p->slot_of[p->unit_in[s]] = -1;
    p->unit_in[s] = u;
    p->slot_of[u] = s;
    p->pf[s] = true;
    p->last_use[s] = p->tick; /* as recent as the current request */
    p->st.prefetched++;
    *slot = s;
    *placed = true;
    return 0;
}

int vkm_pager_admit(vkm_pager *p, uint32_t layer, int32_t expert, int32_t *slot) {
    *slot = -1;
    if (layer >= p->n_layer || expert < 0 || (uint32_t)expert >= p->n_expert)
        return vkm_error(VKM_EINVAL, "pager: admission of expert %d of layer %u", expert, layer);
    const int64_t u = (int64_t)layer * p->n_expert + expert;
    if (p->slot_of[u] >= 0)
        return vkm_error(VKM_EINVAL, "pager: admission of expert %d of layer %u, resident", expert,
                         layer);
    p->st.misses++;
    p->count[u] = decayed(p, u) + 1.0;
    p->count_tick[u] = p->tick;
    const int32_t s = victim(p, true);
    if (s < 0) return 0;
    if (p->unit_in[s] >= 0) {
        /* LRU: free slots only; LFU: only over a unit colder by more than ADMIT_MARGIN */
        if (p->policy != VKM_EXPERT_LFU ||
            !(p->count[u] > decayed(p, p->unit_in[s]) + ADMIT_MARGIN))
            return 0;
        p->slot_of[p->unit_in[s]] = -1;
    }
    p->unit_in[s] = u;
    p->slot_of[u] = s;
    p->pf[s] = false;
    p->pin[s] = p->tick;
    p->last_use[s] = p->tick;
    p->st.admitted++;
    *slot = s;
    return 0;
}

int32_t vkm_pager_slot_of(const vkm_pager *p, uint32_t layer, uint32_t expert) {
    if (layer >= p->n_layer || expert >= p->n_expert) return -1;
    return p->slot_of[(int64_t)layer * p->n_expert + expert];
}

int64_t vkm_pager_unit_in(const vkm_pager *p, uint32_t s) {
    return s < p->n_slots ? p->unit_in[s] : -1;
}

uint32_t vkm_pager_n_slots(const vkm_pager *p) {
    return p->n_slots;
}

void vkm_pager_note_upload(vkm_pager *p, uint64_t bytes, double ms) {
    p->st.uploaded_bytes += bytes;
    p->st.stall_ms += ms;
}

void vkm_pager_add_stats(const vkm_pager *p, vkm_expert_stats *st) {
    st->hits += p->st.hits;
    st->misses += p->st.misses;
    st->prefetched += p->st.prefetched;
    st->prefetch_used += p->st.prefetch_used;
    st->admitted += p->st.admitted;
    st->uploaded_bytes += p->st.uploaded_bytes;
    st->stall_ms += p->st.stall_ms;
}

void vkm_pager_reset_stats(vkm_pager *p) {
    memset(&p->st, 0, sizeof p->st);
}

void vkm_pager_expert_ranges(const int32_t *sel, uint32_t n, uint32_t n_expert, int32_t *ranges) {
    for (uint32_t x = 0; x < n_expert; x++) ranges[2 * x] = ranges[2 * x + 1] = 0;
    for (uint32_t r = 0; r < n; r++)
        if (sel[r] >= 0 && (uint32_t)sel[r] < n_expert) ranges[2 * sel[r] + 1]++;
    int32_t first = 0;
    for (uint32_t x = 0; x < n_expert; x++) {
        ranges[2 * x] = first;
        first += ranges[2 * x + 1];
    }
}
