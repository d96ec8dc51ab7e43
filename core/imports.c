/* imports.c - imports of the file mapping (imports.h, VKMOE_IMPORT in engine.h): tensors are
 * grouped into page-aligned regions of the mapping (each within the largest buffer, a tensor
 * wholly inside one, a gap above IMPORT_GAP starting a new one, neighbours possibly sharing a
 * boundary page) and imported as buffers (gpu.h vkm_gpu_buf_import). A region the driver
 * refuses is left without a buffer: its tensors take the upload path (weights.c) or the staging
 * ring (experts.c); imported pages are never dropped with madvise.
 *
 * Invariants: a region is a whole number of import granules, starts on one, and lies within its
 * part's mapping; e->imp.n_regions counts the regions holding a buffer. */
#include "imports.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "err.h"

#define IMPORT_GAP ((uintptr_t)1 << 20) /* a gap above this between tensors starts a new region */

int vkm_import_mode_from_env(int *out) {
    static const char *const names[] = {[VKM_IMPORT_AUTO] = "auto",
                                        [VKM_IMPORT_ON] = "on",
                                        [VKM_IMPORT_OFF] = "off",
                                        [VKM_IMPORT_COPY] = "copy"};
    const char *v = getenv("VKMOE_IMPORT");
    *out = VKM_IMPORT_AUTO;
    if (!v || !*v) return 0;
    for (int i = 0; i < (int)(sizeof names / sizeof names[0]); i++)
        if (!strcmp(v, names[i])) {
            *out = i;
            return 0;
        }
    return vkm_error(VKM_EINVAL, "VKMOE_IMPORT='%s' must be auto, on, off or copy", v);
}

size_t vkm_import_granule(const vkm_engine *e) {
    const size_t a = vkm_gpu_info(e->gpu)->import_align;
    const long page = sysconf(_SC_PAGESIZE);
    if (!a) return 0;
    return page > 0 && (size_t)page > a ? (size_t)page : a;
}

static int item_cmp(const void *a, const void *b) {
    const vkm_import_item *x = a, *y = b;
    if (x->file != y->file) return x->file < y->file ? -1 : 1;
    const uintptr_t p = (uintptr_t)x->data, q = (uintptr_t)y->data;
    return p < q ? -1 : p > q ? 1 : 0;
}

vkm_import_item vkm_import_item_of(const vkm_engine *e, const vkm_tensor *t, size_t need, int idx) {
    const long page = sysconf(_SC_PAGESIZE);
    const uint64_t ps = page > 0 ? (uint64_t)page : 4096;
    const uint64_t fsize = vkm_gguf_file_size(e->gguf, t->file);
    const uint64_t mapped = fsize > UINT64_MAX - ps ? fsize : (fsize + ps - 1) / ps * ps;
    /* the part is mapped whole from offset 0: its mapping starts file_offset bytes before data */
    const uintptr_t base = (uintptr_t)t->data - (uintptr_t)t->file_offset;
    return (vkm_import_item){t->data, need, base + (uintptr_t)mapped, t->file, idx, -1, 0};
}

int vkm_import_group_regions(vkm_engine *e, vkm_import_item *it, int n, size_t gran, uint64_t cap,
                             uint64_t big, size_t item_align) {
    qsort(it, (size_t)n, sizeof *it, item_cmp);
    int cur = -1;
    for (int i = 0; i < n; i++) {
        vkm_import_item *t = &it[i];
        t->region = -1;
        const uintptr_t a = (uintptr_t)t->data;
        if ((item_align > 1 && a % item_align) || a > t->map_end || t->need > t->map_end - a)
            continue;
        const uintptr_t lo = a & ~(uintptr_t)(gran - 1);
        const uintptr_t hi = (a + t->need + gran - 1) & ~(uintptr_t)(gran - 1);
        if (hi > t->map_end || hi <= lo || hi - lo > big) continue;
        const region *r = cur >= 0 ? &e->regions[cur] : NULL;
        const uintptr_t rb = r ? (uintptr_t)r->base : 0, re = r ? rb + r->size : 0;
        if (r && r->file == t->file && lo <= re + IMPORT_GAP && hi - rb <= cap) {
            if (hi > re) e->regions[cur].size = hi - rb;
        } else {
            if (e->n_regions == e->cap_regions) {
                const int ncap = e->cap_regions ? 2 * e->cap_regions : 16;
                region *g = realloc(e->regions, (size_t)ncap * sizeof *g);
                if (!g) return vkm_error(VKM_ENOMEM, "out of memory");
                e->regions = g;
                e->cap_regions = ncap;
            }
            cur = e->n_regions++;
            e->regions[cur] = (region){NULL, t->file, (const char *)lo, hi - lo};
        }
        t->region = cur;
        t->roff = a - (uintptr_t)e->regions[cur].base;
    }
    return 0;
}

int vkm_import_region(vkm_engine *e, int r) {
    region *g = &e->regions[r];
    const int rc = vkm_gpu_buf_import(e->gpu, g->base, g->size, &g->buf);
    if (!rc) {
        e->imp.n_regions++;
        return 0;
    }
    g->buf = NULL;
    if (rc == VKM_EDEVLOST) return rc;
    if (e->imp.n_failed++ == 0 && !e->opts.quiet)
        fprintf(stderr, "vkmoe: importing the file mapping failed, uploading instead: %s\n",
                vkm_errmsg());
    vkm_error_clear();
    return 0;
}

void vkm_import_release(vkm_engine *e, int r) {
    if (!e->regions[r].buf) return;
    vkm_gpu_buf_destroy(e->gpu, e->regions[r].buf);
    e->regions[r].buf = NULL;
    e->imp.n_regions--;
}

bool vkm_import_covers(const vkm_engine *e, const void *p, size_t n) {
    const uintptr_t a = (uintptr_t)p;
    for (int r = 0; r < e->n_regions; r++) {
        const uintptr_t b = (uintptr_t)e->regions[r].base;
        if (e->regions[r].buf && a < b + e->regions[r].size && b < a + n) return true;
    }
    return false;
}
