/* test_gpu_import.c - host memory imported into Vulkan (gpu.h vkm_gpu_buf_import,
 * VK_EXT_external_memory_host) and the engine's use of it for the weights (engine.h
 * vkm_import_mode, VKMOE_IMPORT), on the first Vulkan device with validation on; skips (77)
 * without a device.
 *
 *   - vkm_gpu_buf_import directly: a read-only anonymous mapping, an aligned malloc block and a
 *     read-only MAP_PRIVATE file mapping (the GGUF case) are imported, copied into a device
 *     buffer (synchronously and asynchronously) and read back byte for byte; the buffer has no
 *     host mapping, refuses uploads and copies into it; misaligned pointers and sizes, size 0,
 *     NULL and sizes above the largest buffer are VKM_EINVAL; an injected refusal
 *     (VKM_FAULT_IMPORT_NTH) is VKM_EUNSUPPORTED; a device without the extension gives
 *     VKM_EUNSUPPORTED for every import.
 *   - the engine: for each fixture, the logits (one batch, then single-token steps) with
 *     VKMOE_IMPORT=auto, on and copy equal those with off, bitwise (reported as max abs),
 *     fully resident, with half the experts paged, and at the minimum budget (one layer's top-k
 *     per size class) that test_gpu_paging uses; where the device imports, the import stats say
 *     where each byte came from (in place on cpu/integrated devices, device copies for copy),
 *     and the pager's counters (uploaded_bytes included) equal those of the off run.
 *   - fallback: an import refused at the 1st, 2nd, ... import of an open (resident and paged)
 *     falls back to uploads with the same logits; a bad VKMOE_IMPORT is VKM_EINVAL naming it.
 * The caller's VKMOE_IMPORT is restored at the end. */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "check.h"
#include "engine.h"
#include "gguf.h"
#include "gpu.h"
#include "gpu_keep.h"
#include "logits_check.h"
#include "model.h"
#include "tmpdir.h"
#include "vkmoe.h"

#define N_PROMPT 33
#define N_CTX 64
#define ALIGN 256u

static int32_t g_ids[N_PROMPT];
static const char *const k_modes[] = {"off", "auto", "on", "copy"};
enum { N_MODES = 4 };

static uint64_t align_up(uint64_t v) {
    return (v + ALIGN - 1) / ALIGN * ALIGN;
}

/* ----------------------------------------------------------------- direct imports ---- */

static void fill(unsigned char *p, size_t n, unsigned seed) {
    for (size_t i = 0; i < n; i++) p[i] = (unsigned char)(i * 13 + seed + (i >> 12));
}

/* Imports [host, host + size), copies it into a device buffer (synchronously, then a second
 * time asynchronously at another offset) and reads both back, and reads the imported buffer
 * itself back. */
static void import_roundtrip(vkm_gpu *gpu, const unsigned char *host, size_t size,
                             const char *what) {
    vkm_gpu_buf *imp = NULL, *dev = NULL;
    CHECK_MSG(vkm_gpu_buf_import(gpu, host, size, &imp) == 0, "%s: %s", what, vkm_errmsg());
    CHECK_OK(vkm_gpu_buf_create(gpu, 2 * size, VKM_BUF_DEVICE, &dev));
    unsigned char *got = xmalloc(2 * size);
    if (imp && dev) {
        CHECK(vkm_gpu_buf_size(imp) == size && vkm_gpu_buf_kind(imp) == VKM_BUF_IMPORTED);
        CHECK(vkm_gpu_buf_map(imp) == NULL);
        CHECK_OK(vkm_gpu_copy(gpu, imp, 0, dev, 0, size));
        uint64_t t = 0;
        CHECK_OK(vkm_gpu_copy_async(gpu, imp, 100, dev, size + 100, size - 200, &t));
        CHECK(t > 0);
        CHECK_OK(vkm_gpu_ticket_wait(gpu, t));
        CHECK_OK(vkm_gpu_wait_ticket_on_next_submit(gpu, t));
        CHECK_OK(vkm_gpu_download(gpu, dev, 0, got, 2 * size));
        CHECK_MSG(!memcmp(got, host, size), "%s: synchronous copy differs", what);
        CHECK_MSG(!memcmp(got + size + 100, host + 100, size - 200),
                  "%s: asynchronous copy differs", what);
        memset(got, 0, size);
        CHECK_OK(vkm_gpu_download(gpu, imp, 0, got, size));
        CHECK_MSG(!memcmp(got, host, size), "%s: download of the imported buffer differs", what);
        /* a read-only source */
        CHECK(vkm_gpu_upload(gpu, imp, 0, got, 16) == VKM_EINVAL);
        CHECK(vkm_gpu_copy(gpu, dev, 0, imp, 0, 16) == VKM_EINVAL);
        CHECK(vkm_gpu_copy_async(gpu, dev, 0, imp, 0, 16, &t) == VKM_EINVAL);
    }
    free(got);
    vkm_gpu_buf_destroy(gpu, imp);
    vkm_gpu_buf_destroy(gpu, dev);
}

static void test_direct(vkm_gpu *gpu) {
    const vkm_gpu_device_info *di = vkm_gpu_info(gpu);
    const size_t al = di->import_align;
    printf("%s: external_memory_host %d, import alignment %zu, largest buffer %llu\n", di->name,
           di->external_memory_host, al, (unsigned long long)di->max_buffer_bytes);
    vkm_gpu_buf *b = NULL;
    CHECK(vkm_gpu_buf_create(gpu, 4096, VKM_BUF_IMPORTED, &b) == VKM_EINVAL && !b);
    if (!al) { /* no support: every import is refused cleanly */
        static char page[8192];
        CHECK(vkm_gpu_buf_import(gpu, page, 4096, &b) == VKM_EUNSUPPORTED && !b);
        printf("import unsupported: %s\n", vkm_errmsg());
        return;
    }
    CHECK((al & (al - 1)) == 0);
    const long ps = sysconf(_SC_PAGESIZE);
    const size_t page = ps > 0 && (size_t)ps > al ? (size_t)ps : al;

    /* a read-only anonymous mapping */
    unsigned char *anon =
        mmap(NULL, 4 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(anon != MAP_FAILED);
    if (anon != MAP_FAILED) {
        fill(anon, 4 * page, 1);
        CHECK(mprotect(anon, 4 * page, PROT_READ) == 0);
        import_roundtrip(gpu, anon + page, 3 * page, "read-only anonymous mapping");
        /* misaligned pointer and size, size 0, NULL */
        CHECK(vkm_gpu_buf_import(gpu, anon + 16, page, &b) == VKM_EINVAL && !b);
        CHECK_MSG(strstr(vkm_errmsg(), "alignment") != NULL, "message: %s", vkm_errmsg());
        CHECK(vkm_gpu_buf_import(gpu, anon, page + 16, &b) == VKM_EINVAL && !b);
        CHECK(vkm_gpu_buf_import(gpu, anon, 0, &b) == VKM_EINVAL && !b);
        CHECK(vkm_gpu_buf_import(gpu, NULL, page, &b) == VKM_EINVAL && !b);
        /* an injected refusal, once */
        vkm_gpu_fault_set(VKM_FAULT_IMPORT_NTH, 1);
        CHECK(vkm_gpu_buf_import(gpu, anon, page, &b) == VKM_EUNSUPPORTED && !b);
        CHECK_MSG(strstr(vkm_errmsg(), "injected") != NULL, "message: %s", vkm_errmsg());
        CHECK(!vkm_gpu_fault_pending(VKM_FAULT_IMPORT_NTH));
        CHECK_OK(vkm_gpu_buf_import(gpu, anon, page, &b));
        vkm_gpu_buf_destroy(gpu, b);
        b = NULL;
        munmap(anon, 4 * page);
    }

    /* larger than the largest buffer: refused before the driver sees it (address space only) */
    const uint64_t big = (di->max_alloc_bytes / page + 1) * page;
    if (big <= (uint64_t)1 << 40) {
        void *res = mmap(NULL, (size_t)big + page, PROT_NONE,
                         MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (res != MAP_FAILED) {
            const uintptr_t a = ((uintptr_t)res + page - 1) & ~(uintptr_t)(page - 1);
            CHECK(vkm_gpu_buf_import(gpu, (void *)a, (size_t)big, &b) == VKM_EINVAL && !b);
            CHECK_MSG(strstr(vkm_errmsg(), "largest buffer") != NULL, "message: %s", vkm_errmsg());
            munmap(res, (size_t)big + page);
        }
    }

    /* an aligned heap block */
    unsigned char *heap = aligned_alloc(page, 2 * page);
    CHECK(heap != NULL);
    if (heap) {
        fill(heap, 2 * page, 7);
        import_roundtrip(gpu, heap, 2 * page, "aligned malloc block");
        free(heap);
    }

    /* a read-only private file mapping, as vkm_gguf maps a model */
    tmpdir_make("import");
    char path[128];
    snprintf(path, sizeof path, "%s/data.bin", g_dir);
    unsigned char *data = xmalloc(3 * page);
    fill(data, 3 * page, 42);
    FILE *fp = fopen(path, "wb");
    CHECK(fp && fwrite(data, 1, 3 * page, fp) == 3 * page);
    if (fp) fclose(fp);
    const int fd = open(path, O_RDONLY);
    CHECK(fd >= 0);
    if (fd >= 0) {
        unsigned char *map = mmap(NULL, 3 * page, PROT_READ, MAP_PRIVATE, fd, 0);
        CHECK(map != MAP_FAILED);
        if (map != MAP_FAILED) {
            CHECK(!memcmp(map, data, 3 * page));
            import_roundtrip(gpu, map, 3 * page, "read-only file mapping");
            munmap(map, 3 * page);
        }
        close(fd);
    }
    free(data);
    tmpdir_remove();
    CHECK(vkm_gpu_validation_errors(gpu) == 0);
}

/* -------------------------------------------------------------------------- engine ---- */

static int open_engine(const char *path, const char *mode, uint64_t budget, vkm_engine **e) {
    setenv("VKMOE_IMPORT", mode, 1);
    vkm_engine_opts o = {.model_path = path,
                         .device = -1,
                         .validation = true,
                         .quiet = true,
                         .vram_budget = budget,
                         .prefetch = VKM_PREFETCH_OFF};
    return vkm_engine_open(&o, e);
}

/* The budgets of test_gpu_paging: everything resident, half the experts, the minimum. */
typedef struct sizes {
    uint64_t main, experts, minimum, slots_min;
} sizes;

static void model_sizes(const vkm_model *m, sizes *z) {
    memset(z, 0, sizeof *z);
    for (int64_t i = 0; i < vkm_gguf_n_tensors(m->gguf); i++) {
        const vkm_gguf_tensor *t = vkm_gguf_tensor_at(m->gguf, i);
        *(strstr(t->name, "_exps") ? &z->experts : &z->main) += align_up(t->nbytes);
    }
    size_t seen[8][4];
    int n_seen = 0;
    for (uint32_t il = 0; il < m->hp.n_layer; il++) {
        const vkm_layer *L = &m->layers[il];
        if (!L->moe) continue;
        const vkm_tensor *ts[4] = {&L->ffn_gate_exps, &L->ffn_up_exps, &L->ffn_gate_up_exps,
                                   &L->ffn_down_exps};
        size_t key[4];
        for (int k = 0; k < 4; k++)
            key[k] = ts[k]->data ? (size_t)ts[k]->ne[1] * ts[k]->row_bytes : 0;
        int c = 0;
        while (c < n_seen && memcmp(seen[c], key, sizeof key)) c++;
        if (c < n_seen || n_seen == 8) continue;
        memcpy(seen[n_seen++], key, sizeof key);
        for (int k = 0; k < 4; k++)
            if (key[k]) z->slots_min += align_up((uint64_t)m->hp.n_expert_used * key[k]);
    }
    z->minimum = z->main + align_up(8ull * m->hp.n_layer * m->hp.n_expert) + z->slots_min;
}

/* Batch, then n_step single tokens (F32 cache). */
static int run_prompt(vkm_engine *e, int n_step, float *out) {
    return logits_gpu_prompt(e, g_ids, N_PROMPT, N_CTX, true, 0, n_step, out);
}

static void run_fixture(const char *name, int n_step, bool all_modes) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s.gguf", VKMOE_FIXTURES_DIR, name);
    vkm_engine *e = NULL;
    CHECK_OK(open_engine(path, "off", 0, &e));
    if (!e) return;
    const vkm_gpu_device_info *di = vkm_gpu_info(vkm_engine_gpu(e));
    const bool can = di->import_align != 0;
    const bool uma = di->type == VKM_DEV_CPU || di->type == VKM_DEV_INTEGRATED;
    const size_t nl = (size_t)N_PROMPT * vkm_engine_model(e)->hp.n_vocab;
    float *ref = xmalloc(nl * 4), *out = xmalloc(nl * 4);
    sizes z;
    model_sizes(vkm_engine_model(e), &z);
    vkm_engine_import_stats im;
    vkm_engine_import_stats_get(e, &im);
    CHECK(im.mode == VKM_IMPORT_OFF && im.n_regions == 0 && im.in_place_bytes == 0 &&
          im.copied_bytes == 0 && im.uploaded_bytes > 0);
    CHECK_OK(run_prompt(e, n_step, ref));
    vkm_engine_close(e);
    const uint64_t resident_bytes = im.uploaded_bytes; /* every tensor, experts included */

    const struct {
        const char *label;
        uint64_t budget;
    } budgets[] = {
        {"resident", 0},
        {"half", z.minimum + (z.experts - z.slots_min) / 2},
        {"minimum", z.minimum},
    };
    for (size_t b = 0; b < sizeof budgets / sizeof budgets[0]; b++) {
        vkm_expert_stats st_off = {0};
        for (int m = 0; m < N_MODES; m++) {
            if (!all_modes && m == 2) continue; /* "on" equals "auto" except on discrete GPUs */
            e = NULL;
            CHECK_MSG(open_engine(path, k_modes[m], budgets[b].budget, &e) == 0, "%s %s: %s",
                      budgets[b].label, k_modes[m], vkm_errmsg());
            if (!e) continue;
            vkm_expert_stats st;
            vkm_engine_expert_stats(e, &st);
            vkm_engine_import_stats_get(e, &im);
            CHECK(st.paged == (b > 0));
            CHECK(im.n_failed == 0);
            /* where the bytes came from */
            const bool in_place = can && uma && (m == 1 || m == 2);
            const bool copied = can && (m == 3 || (m == 2 && !uma));
            if (!st.paged)
                CHECK_MSG(
                    im.in_place_bytes + im.copied_bytes + im.uploaded_bytes == resident_bytes,
                    "%s %s: %llu + %llu + %llu bytes of %llu", budgets[b].label, k_modes[m],
                    (unsigned long long)im.in_place_bytes, (unsigned long long)im.copied_bytes,
                    (unsigned long long)im.uploaded_bytes, (unsigned long long)resident_bytes);
            CHECK(in_place ? im.in_place_bytes > 0 : im.in_place_bytes == 0);
            CHECK(copied ? im.copied_bytes > 0 : im.copied_bytes == 0);
            if (m == 0) CHECK(im.n_regions == 0 && im.uploaded_bytes > 0);
            vkm_engine_expert_stats_reset(e);
            memset(out, 0, nl * 4);
            CHECK_OK(run_prompt(e, n_step, out));
            vkm_engine_expert_stats(e, &st);
            vkm_engine_import_stats_get(e, &im);
            const double d = logits_max_abs_diff(ref, out, nl);
            printf("%-16s %-9s VKMOE_IMPORT=%-4s regions %3d  in place %8.3f MiB  device copies "
                   "%8.3f MiB  uploaded %8.3f MiB  experts from imports %8.3f MiB  "
                   "max abs vs off %.3g%s\n",
                   name, budgets[b].label, k_modes[m], im.n_regions, im.in_place_bytes / 1048576.0,
                   im.copied_bytes / 1048576.0, im.uploaded_bytes / 1048576.0,
                   im.expert_bytes / 1048576.0, d, memcmp(ref, out, nl * 4) ? "" : " (bitwise)");
            CHECK_MSG(d <= 1e-4, "%s %s %s: max abs %g", name, budgets[b].label, k_modes[m], d);
            if (st.paged) {
                /* the pager's counters do not depend on where the bytes came from */
                if (m == 0) st_off = st;
                CHECK(st.misses > 0 && st.hits == st_off.hits && st.misses == st_off.misses &&
                      st.uploaded_bytes == st_off.uploaded_bytes);
                if (m == 0 || !can)
                    CHECK(im.expert_bytes == 0);
                else
                    CHECK_MSG(im.expert_bytes == st.uploaded_bytes,
                              "%s %s: %llu expert bytes from imports of %llu uploaded",
                              budgets[b].label, k_modes[m], (unsigned long long)im.expert_bytes,
                              (unsigned long long)st.uploaded_bytes);
            } else {
                CHECK(im.expert_bytes == 0);
            }
            CHECK(vkm_gpu_validation_errors(vkm_engine_gpu(e)) == 0);
            vkm_engine_close(e);
        }
    }

    /* an import refused at the nth import of the open: that region's tensors are uploaded */
    for (int pb = 0; can && pb < 2; pb++) {
        const uint64_t budget = pb ? z.minimum : 0;
        int n = 1, n_fired = 0;
        for (; n <= 64; n++) {
            e = NULL;
            vkm_gpu_fault_set(VKM_FAULT_IMPORT_NTH, n);
            const int rc = open_engine(path, all_modes ? "copy" : "auto", budget, &e);
            const bool fired = !vkm_gpu_fault_pending(VKM_FAULT_IMPORT_NTH);
            vkm_gpu_fault_set(VKM_FAULT_NONE, 0);
            CHECK_MSG(rc == 0, "import fault %d: %s", n, vkm_errmsg());
            if (!e) continue;
            if (!fired) {
                vkm_engine_close(e);
                break;
            }
            n_fired++;
            vkm_engine_import_stats_get(e, &im);
            CHECK(im.n_failed == 1);
            memset(out, 0, nl * 4);
            CHECK_OK(run_prompt(e, n_step, out));
            const double d = logits_max_abs_diff(ref, out, nl);
            CHECK_MSG(d <= 1e-4, "import fault %d (budget %llu): max abs %g", n,
                      (unsigned long long)budget, d);
            CHECK(vkm_gpu_validation_errors(vkm_engine_gpu(e)) == 0);
            vkm_engine_close(e);
        }
        printf("%s: %s, %d refused imports fell back to uploads (same logits)\n", name,
               pb ? "minimum budget" : "resident", n_fired);
        CHECK(n_fired >= 1 && n <= 64);
    }
    free(ref);
    free(out);
}

int main(void) {
    if (logits_read_prompt(g_ids, N_PROMPT) != N_PROMPT) {
        CHECK(!"prompt.ids");
        return check_done();
    }
    const char *saved = getenv("VKMOE_IMPORT");
    char *keep = saved ? strdup(saved) : NULL;
    gpu_keep_open(); /* many engines follow */
    if (!g_gpu_keep) check_skip("no Vulkan device");
    test_direct(g_gpu_keep);

    /* a bad mode */
    vkm_engine *e = NULL;
    CHECK(open_engine(VKMOE_FIXTURES_DIR "/tiny-v3-f32.gguf", "yes", 0, &e) == VKM_EINVAL && !e);
    CHECK_MSG(strstr(vkm_errmsg(), "VKMOE_IMPORT") != NULL, "message: %s", vkm_errmsg());

    run_fixture("tiny-v3-f32", N_PROMPT - 8, true);
    run_fixture("small-v3-q4_k_m", 4, false); /* lavapipe is slow */
    gpu_keep_close();
    if (keep)
        setenv("VKMOE_IMPORT", keep, 1);
    else
        unsetenv("VKMOE_IMPORT");
    free(keep);
    return check_done();
}
