/* fuzz_gguf.c - fuzz entry point over the untrusted-file path: the GGUF reader (vkm_gguf_open and
 * every accessor), the model loader's validation (vkm_model_load) and the tokenizer's loading
 * (vkm_tok_load, plus a short encode/decode with the loaded vocabulary).
 *
 * Built twice from this one file:
 *   - fuzz_gguf (VKMOE_FUZZ=ON, clang): a libFuzzer target, -fsanitize=fuzzer,address,undefined;
 *   - fuzz_gguf_regress (every build, VKM_FUZZ_MAIN): a plain main() that feeds each file given
 *     (or every file of each directory given) to LLVMFuzzerTestOneInput, so the saved crash inputs
 *     of tests/fuzz/regress/ and the seeds of tests/fuzz/corpus/ run in the normal gcc build too.
 *
 * Input format: an input that does not contain SPLIT_SEP is one GGUF file, written to a memfd and
 * opened as /proc/self/fd/N. An input that contains SPLIT_SEP is a split model: the pieces between
 * separators (at most 4) become the parts m-0000K-of-0000N.gguf of a private temp directory
 * ($TMPDIR or /tmp, removed again after each input), and part 1 is opened.
 *
 * Invariants checked (abort() on violation, which the fuzzer reports like a crash): a failing call
 * returns a negative code, leaves its out pointer NULL and sets a message; after a successful open
 * every key, string and tensor can be read in full (the first and last byte of each tensor's data
 * are touched, so ASan catches any tensor the reader let run past its mapping), names are unique
 * and found again by lookup. Nothing may crash, hang or leak. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "err.h"
#include "gguf.h"
#include "model.h"
#include "qtype.h"
#include "tokenizer.h"

#define SPLIT_SEP "\n--VKM-SPLIT-PART--\n"
enum { MAX_PARTS = 4 };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static FILE *g_err; /* where fail() reports; stderr unless LLVMFuzzerInitialize redirected it */

static void fail(const char *what) {
    fprintf(g_err ? g_err : stderr, "fuzz_gguf: invariant broken: %s (last message: '%s')\n", what,
            vkm_errmsg());
    abort();
}

/* The harness itself failed (temp file I/O): not a finding about the input, but stop loudly. */
static void sys_fail(const char *what) {
    fprintf(g_err ? g_err : stderr, "fuzz_gguf: %s: %s\n", what, strerror(errno));
    abort();
}

#ifndef VKM_FUZZ_MAIN
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* Runs before libFuzzer parses its flags, so before -close_fd_mask=2 closes stderr (which
 * silences the tokenizer's per-file warnings): keep a copy of stderr for fail(). */
int LLVMFuzzerInitialize(int *argc, char ***argv) {
    int fd = dup(2);
    g_err = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (g_err) setvbuf(g_err, NULL, _IONBF, 0);
    return 0;
}
#endif

/* A failed call must return a negative code with a message and leave *out NULL. */
static void check_failure(int rc, const void *out, const char *what) {
    if (rc >= 0) fail(what);
    if (out != NULL) fail("out pointer set on failure");
    if (vkm_errmsg()[0] == '\0') fail("failure without a message");
}

static volatile uint8_t g_sink; /* keeps the tensor byte reads from being optimised away */
static bool g_verbose;          /* the regression runner prints what each stage returned */

static void note(const char *stage, int rc) {
    if (g_verbose) printf("  %s: %s\n", stage, rc < 0 ? vkm_errmsg() : "ok");
}

/* ---- walking an open file ---- */

static void walk_kvs(const vkm_gguf *g) {
    char buf[512], tiny[8];
    int64_t n = vkm_gguf_n_kv(g);
    if (n < 0) fail("negative KV count");
    for (int64_t kv = 0; kv < n; kv++) {
        const char *key = vkm_gguf_key(g, kv);
        if (!key || !key[0]) fail("empty key");
        if (vkm_gguf_find_key(g, key) != kv) fail("key not found again (duplicate?)");
        uint32_t type = vkm_gguf_kv_type(g, kv);
        if (type >= VKM_GGUF_TYPE_COUNT) fail("KV type out of range");
        (void)vkm_gguf_type_name(type);
        vkm_gguf_kv_format(g, kv, buf, sizeof buf);
        if (!memchr(buf, 0, sizeof buf)) fail("kv_format without NUL");
        vkm_gguf_kv_format(g, kv, tiny, sizeof tiny);
        vkm_gguf_kv_format(g, kv, tiny, 1);
        if (tiny[0] != '\0') fail("kv_format into 1 byte is not empty");
        if (type == VKM_GGUF_STRING) {
            const char *s = NULL;
            uint64_t len = 0;
            if (vkm_gguf_get_str(g, key, &s, &len)) fail("get_str on a STRING KV");
            if (len) g_sink ^= (uint8_t)s[len - 1];
            if (s[len] != '\0') fail("string not NUL-terminated");
        } else if (type == VKM_GGUF_ARRAY) {
            uint32_t et = vkm_gguf_arr_type(g, kv);
            uint64_t count = vkm_gguf_arr_count(g, kv);
            int64_t kv2 = -1;
            uint64_t count2 = 0;
            if (vkm_gguf_get_arr(g, key, et, &kv2, &count2) || kv2 != kv || count2 != count)
                fail("get_arr disagrees with the KV");
            if (count == 0) continue;
            uint64_t idx[2] = {0, count - 1};
            for (int j = 0; j < 2; j++) {
                if (et == VKM_GGUF_STRING) {
                    uint64_t len = 0;
                    const char *s = vkm_gguf_arr_str(g, kv, idx[j], &len);
                    if (!s || s[len] != '\0') fail("array string not NUL-terminated");
                } else if (et != VKM_GGUF_ARRAY) {
                    g_sink ^= (uint8_t)vkm_gguf_arr_i64(g, kv, idx[j]);
                    g_sink ^= (uint8_t)(vkm_gguf_arr_f64(g, kv, idx[j]) != 0.0);
                }
            }
        } else if (!vkm_gguf_kv_data(g, kv)) {
            fail("numeric KV without data");
        }
    }
}

static void walk_tensors(const vkm_gguf *g) {
    int64_t n = vkm_gguf_n_tensors(g);
    if (n < 0) fail("negative tensor count");
    for (int64_t i = 0; i < n; i++) {
        const vkm_gguf_tensor *t = vkm_gguf_tensor_at(g, i);
        if (!t || !t->name || strlen(t->name) > VKM_GGUF_MAX_NAME) fail("bad tensor name");
        if (vkm_gguf_tensor_index(g, t->name) != i || vkm_gguf_find_tensor(g, t->name) != t)
            fail("tensor not found again (duplicate?)");
        if (t->n_dims < 1 || t->n_dims > VKM_GGUF_MAX_DIMS) fail("tensor dims out of range");
        if (!vkm_qtype_get(t->type)) fail("unknown tensor type after open");
        if (t->file < 0 || t->file >= vkm_gguf_n_files(g)) fail("tensor part out of range");
        uint64_t fsize = vkm_gguf_file_size(g, t->file);
        if (t->file_offset > fsize || t->nbytes > fsize - t->file_offset)
            fail("tensor data past the end of its part");
        if (t->nbytes) {
            const uint8_t *p = t->data;
            g_sink ^= p[0];
            g_sink ^= p[t->nbytes - 1];
        }
    }
}

static void walk_file(const vkm_gguf *g) {
    (void)vkm_gguf_version(g);
    (void)vkm_gguf_alignment(g);
    int nf = vkm_gguf_n_files(g);
    if (nf < 1) fail("no parts");
    for (int f = 0; f < nf; f++) {
        if (!vkm_gguf_file_path(g, f) || vkm_gguf_file_fd(g, f) < 0) fail("part without path/fd");
        (void)vkm_gguf_file_size(g, f);
    }
    (void)vkm_gguf_total_bytes(g);
    walk_kvs(g);
    walk_tensors(g);
}

static void load_model(const vkm_gguf *g) {
    vkm_model *m = NULL;
    vkm_error_clear();
    int rc = vkm_model_load(g, &m);
    note("model", rc);
    if (rc < 0) {
        check_failure(rc, m, "model_load failed with rc >= 0");
        return;
    }
    char buf[512];
    vkm_model_describe(m, buf, sizeof buf);
    vkm_model_free(m);
}

static void load_tokenizer(const vkm_gguf *g) {
    vkm_tok *t = NULL;
    vkm_error_clear();
    int rc = vkm_tok_load(g, &t);
    note("tokenizer", rc);
    if (rc < 0) {
        check_failure(rc, t, "tok_load failed with rc >= 0");
        return;
    }
    /* A short encode/decode round with the loaded vocabulary: merges, special tokens, bytes. */
    static const char text[] = "Hello world, the quick\n<\xef\xbd\x9cUser\xef\xbd\x9c>\xff 123";
    int32_t *ids = NULL;
    size_t n = 0;
    if (vkm_tok_encode(t, text, sizeof text - 1, true, true, &ids, &n) == 0) {
        char *out = NULL;
        size_t len = 0;
        if (vkm_tok_decode(t, ids, n, true, &out, &len) == 0) free(out);
        free(ids);
    }
    int32_t nv = vkm_tok_n_vocab(t);
    vkm_tok_stream *s = NULL;
    if (vkm_tok_stream_create(t, false, &s) == 0) {
        const char *p;
        size_t len;
        for (int32_t id = 0; id < nv && id < 64; id++) (void)vkm_tok_stream_put(s, id, &p, &len);
        vkm_tok_stream_flush(s, &p, &len);
        vkm_tok_stream_destroy(s);
    }
    (void)vkm_tok_chat_template(t);
    vkm_tok_free(t);
}

/* Opens `path` and runs everything on it. */
static void run_path(const char *path) {
    vkm_gguf *g = NULL;
    vkm_error_clear();
    int rc = vkm_gguf_open(path, &g);
    note("open", rc);
    if (rc < 0) {
        check_failure(rc, g, "gguf_open failed with rc >= 0");
        return;
    }
    walk_file(g);
    load_model(g);
    load_tokenizer(g);
    vkm_gguf_close(g);
}

/* ---- single files: one memfd, reused ---- */

static int g_memfd = -1;

static void run_single(const uint8_t *data, size_t size) {
    if (g_memfd < 0) {
        g_memfd = memfd_create("fuzz.gguf", MFD_CLOEXEC);
        if (g_memfd < 0) sys_fail("memfd_create");
    }
    if (ftruncate(g_memfd, 0) || (size && pwrite(g_memfd, data, size, 0) != (ssize_t)size))
        sys_fail("writing the memfd");
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", g_memfd);
    run_path(path);
}

/* ---- split models: parts in a private temp directory, created and removed per input (libFuzzer
 * ends with _Exit, so nothing may be left for an atexit handler) ---- */

static char g_dir[64];

static void part_path(char *buf, size_t n, int k, int count) {
    snprintf(buf, n, "%s/m-%05d-of-%05d.gguf", g_dir, k, count);
}

static void write_file(const char *path, const uint8_t *p, size_t n) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 || (n && write(fd, p, n) != (ssize_t)n) || close(fd)) sys_fail(path);
}

static void run_split(const uint8_t *data, size_t size) {
    const char *tmp = getenv("TMPDIR");
    snprintf(g_dir, sizeof g_dir, "%s/vkm-fuzz-XXXXXX", tmp && strlen(tmp) < 32 ? tmp : "/tmp");
    if (!mkdtemp(g_dir)) sys_fail("mkdtemp");
    const size_t sep = sizeof SPLIT_SEP - 1;
    const uint8_t *start[MAX_PARTS];
    size_t len[MAX_PARTS];
    int count = 0;
    const uint8_t *p = data, *end = data + size;
    while (count < MAX_PARTS) {
        const uint8_t *s =
            count + 1 < MAX_PARTS ? memmem(p, (size_t)(end - p), SPLIT_SEP, sep) : NULL;
        start[count] = p;
        len[count] = s ? (size_t)(s - p) : (size_t)(end - p);
        count++;
        if (!s) break;
        p = s + sep;
    }
    char path[128];
    for (int k = 0; k < count; k++) {
        part_path(path, sizeof path, k + 1, count);
        write_file(path, start[k], len[k]);
    }
    part_path(path, sizeof path, 1, count);
    run_path(path);
    for (int k = 0; k < count; k++) {
        part_path(path, sizeof path, k + 1, count);
        unlink(path);
    }
    rmdir(g_dir);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size && memmem(data, size, SPLIT_SEP, sizeof SPLIT_SEP - 1))
        run_split(data, size);
    else
        run_single(data, size);
    return 0;
}

#ifdef VKM_FUZZ_MAIN
/* ---- the regression runner: fuzz_gguf_regress FILE|DIR... ---- */

static int run_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        return 1;
    }
    uint8_t *buf = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (n == cap) {
            cap = cap ? cap * 2 : 1 << 16;
            uint8_t *nb = realloc(buf, cap);
            if (!nb) {
                free(buf);
                fclose(f);
                fprintf(stderr, "%s: out of memory\n", path);
                return 1;
            }
            buf = nb;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0) break;
    }
    int err = ferror(f);
    fclose(f);
    if (err) {
        free(buf);
        fprintf(stderr, "%s: read error\n", path);
        return 1;
    }
    printf("%s (%zu bytes)\n", path, n);
    fflush(stdout);
    LLVMFuzzerTestOneInput(buf, n);
    free(buf);
    return 0;
}

static int name_cmp(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Runs every regular file of dir (sorted, dot files skipped). */
static int run_dir(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) {
        perror(dir);
        return 1;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    int bad = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            char **nn = realloc(names, cap * sizeof *names);
            if (!nn) {
                bad = 1;
                break;
            }
            names = nn;
        }
        size_t len = strlen(dir) + strlen(e->d_name) + 2;
        if (!(names[n] = malloc(len))) {
            bad = 1;
            break;
        }
        snprintf(names[n++], len, "%s/%s", dir, e->d_name);
    }
    closedir(d);
    if (n) qsort(names, n, sizeof *names, name_cmp);
    for (size_t i = 0; i < n; i++) {
        struct stat st;
        if (!bad && stat(names[i], &st) == 0 && S_ISREG(st.st_mode)) bad |= run_file(names[i]);
        free(names[i]);
    }
    free(names);
    return bad;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s FILE|DIR...\n", argv[0]);
        return 2;
    }
    int bad = 0;
    g_verbose = true;
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st)) {
            perror(argv[i]);
            bad = 1;
        } else {
            bad |= S_ISDIR(st.st_mode) ? run_dir(argv[i]) : run_file(argv[i]);
        }
    }
    if (g_memfd >= 0) close(g_memfd);
    printf(bad ? "fuzz_gguf_regress: FAILED\n" : "fuzz_gguf_regress: all inputs ran clean\n");
    return bad;
}
#endif
