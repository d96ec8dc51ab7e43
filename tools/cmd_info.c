/* cmd_info.c - `vkmoe info -m FILE.gguf [--tensors]`: a GGUF file's header, every KV, a summary
 * of tensors by type and, with --tensors, one line per tensor. Read-only; validates the file
 * through vkm_gguf_open_header(), so a malformed header is reported (exit 1) rather than shown;
 * a file whose tensor data is cut short (an interrupted download) is shown with the truncation
 * as a warning on stderr (exit 0), its missing tensors marked in --tensors. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "err.h"
#include "gguf.h"
#include "qtype.h"

static const char *const USAGE = "vkmoe info -m FILE.gguf [--tensors]";

static void print_help(void) {
    printf("usage: %s\n\n"
           "Prints a GGUF file's version, parts, size and alignment, every metadata key, and the\n"
           "tensors grouped by type with their sizes.\n\n"
           "  -m, --model FILE   the GGUF file (the first part of a split model)\n"
           "  --tensors          also list every tensor: name, type, shape, offset\n"
           "  -h, --help         this help\n",
           USAGE);
}

static void human(uint64_t bytes, char *buf, size_t n) {
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = (double)bytes;
    int u = 0;
    while (v >= 1024 && u < 4) v /= 1024, u++;
    if (u == 0)
        snprintf(buf, n, "%" PRIu64 " B", bytes);
    else
        snprintf(buf, n, "%.2f %s", v, units[u]);
}

static void print_file(const vkm_gguf *g, const char *path) {
    char sz[32];
    human(vkm_gguf_total_bytes(g), sz, sizeof sz);
    printf("file:      %s\n", path);
    printf("version:   %u\n", vkm_gguf_version(g));
    printf("parts:     %d\n", vkm_gguf_n_files(g));
    if (vkm_gguf_n_files(g) > 1)
        for (int i = 0; i < vkm_gguf_n_files(g); i++)
            printf("  part %d:  %s (%" PRIu64 " bytes)\n", i + 1, vkm_gguf_file_path(g, i),
                   vkm_gguf_file_size(g, i));
    printf("size:      %" PRIu64 " bytes (%s)\n", vkm_gguf_total_bytes(g), sz);
    printf("alignment: %u\n", vkm_gguf_alignment(g));
}

static void print_kvs(const vkm_gguf *g) {
    printf("\nmetadata: %" PRId64 " keys\n", vkm_gguf_n_kv(g));
    char val[256];
    for (int64_t i = 0; i < vkm_gguf_n_kv(g); i++) {
        vkm_gguf_kv_format(g, i, val, sizeof val);
        const char *type = vkm_gguf_type_name(vkm_gguf_kv_type(g, i));
        printf("  %-44s %-7s %s\n", vkm_gguf_key(g, i), type, val);
    }
}

static void print_tensor_summary(const vkm_gguf *g) {
    int64_t count[VKM_QTYPE_COUNT] = {0};
    uint64_t bytes[VKM_QTYPE_COUNT] = {0}, total = 0;
    int64_t n = vkm_gguf_n_tensors(g);
    for (int64_t i = 0; i < n; i++) {
        const vkm_gguf_tensor *t = vkm_gguf_tensor_at(g, i);
        count[t->type]++; /* type < VKM_QTYPE_COUNT: the reader rejects unknown ids */
        bytes[t->type] += t->nbytes;
        total += t->nbytes;
    }
    char sz[32];
    human(total, sz, sizeof sz);
    printf("\ntensors: %" PRId64 " (%" PRIu64 " bytes, %s)\n", n, total, sz);
    for (uint32_t ty = 0; ty < VKM_QTYPE_COUNT; ty++) {
        if (!count[ty]) continue;
        human(bytes[ty], sz, sizeof sz);
        const vkm_qtype_info *q = vkm_qtype_get(ty);
        const char *note = !q->supported ? "  [unsupported by vkmoe]"
                           : !q->gpu     ? "  [CPU reference only, no GPU kernels]"
                                         : "";
        printf("  %-8s %6" PRId64 " tensors %14" PRIu64 " bytes (%s)%s\n", q->name, count[ty],
               bytes[ty], sz, note);
    }
}

static void print_tensors(const vkm_gguf *g) {
    printf("\n  %-48s %-6s %-28s %4s %14s\n", "name", "type", "shape (ne0 first)", "part",
           "offset");
    for (int64_t i = 0; i < vkm_gguf_n_tensors(g); i++) {
        const vkm_gguf_tensor *t = vkm_gguf_tensor_at(g, i);
        char shape[96];
        size_t pos = 0;
        for (uint32_t j = 0; j < t->n_dims && pos < sizeof shape; j++)
            pos += (size_t)snprintf(shape + pos, sizeof shape - pos, "%s%" PRId64, j ? ", " : "{",
                                    t->ne[j]);
        if (pos < sizeof shape) snprintf(shape + pos, sizeof shape - pos, "}");
        printf("  %-48s %-6s %-28s %4d %14" PRIu64 "%s\n", t->name, vkm_qtype_name(t->type), shape,
               t->file + 1, t->file_offset, t->data ? "" : "  [missing: past the end]");
    }
}

int cmd_info(int argc, char **argv) {
    const char *path = NULL;
    bool tensors = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (cli_is_help(a)) {
            print_help();
            return CLI_OK;
        } else if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
            if (i + 1 >= argc) return cli_usage_error(USAGE, "%s needs a file", a);
            path = argv[++i];
        } else if (!strcmp(a, "--tensors")) {
            tensors = true;
        } else if (a[0] == '-') {
            return cli_usage_error(USAGE, "unknown option '%s'", a);
        } else {
            return cli_usage_error(USAGE, "unexpected argument '%s'", a);
        }
    }
    if (!path) return cli_usage_error(USAGE, "missing -m FILE.gguf");

    vkm_gguf *g;
    if (vkm_gguf_open_header(path, &g)) return cli_fail_last();
    int64_t missing = 0;
    const char *cut = vkm_gguf_truncated(g, &missing);
    print_file(g, path);
    print_kvs(g);
    print_tensor_summary(g);
    if (tensors) print_tensors(g);
    if (cut) {
        fflush(stdout);
        fprintf(stderr,
                "vkmoe: warning: %s; the data of %" PRId64 " of %" PRId64
                " tensors is missing (the metadata above is whole; run and the other commands "
                "refuse the file)\n",
                cut, missing, vkm_gguf_n_tensors(g));
    }
    vkm_gguf_close(g);
    return fflush(stdout) ? cli_fail("info: cannot write output") : CLI_OK;
}
