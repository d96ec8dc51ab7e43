/* cmd_devices.c - `vkmoe devices`: list every Vulkan device with the properties vkmoe cares
 * about, mark the default one with '*', and optionally (--test) run the smoke shader on one or
 * (--kernels) print the kernel plan the engine would use there (core/kernels.h), for a model's
 * weight types and shapes with -m.
 * Exit status per cli.h: 1 when there is no device or the requested one does not exist. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "err.h"
#include "gguf.h"
#include "gpu.h"
#include "kernels.h"

#define USAGE "vkmoe devices [--test] [--kernels [-m MODEL]] [--device N] [--json]"
#define MAX_DEVICES 64
#define SMOKE_N (1u << 20)
#define SMOKE_LOCAL 256u
/* VK_MAKE_API_VERSION fields (gpu.h is Vulkan-free). */
#define API_MAJOR(v) (((v) >> 22) & 0x7fu)
#define API_MINOR(v) (((v) >> 12) & 0x3ffu)
#define API_PATCH(v) ((v)&0xfffu)

static void print_help(void) {
    printf("usage: " USAGE "\n\n"
           "Lists the Vulkan devices; '*' marks the one used when --device is not given.\n\n"
           "  --test       run the smoke shader (y = a*x + b, 1M floats) on the device\n"
           "  --kernels    print the kernel plan for the device (the default one without\n"
           "               --device): op, kernel, spec constants, fused forms; VKMOE_KERNELS\n"
           "               forces a layout (gpu, cpu, ksplit, sg, cpu32, cpu64)\n"
           "  -m MODEL     with --kernels: the GEMV kernel of each weight type for the\n"
           "               model's largest matrix of that type\n"
           "  --device N   only this device (index from the list)\n"
           "  --json       machine-readable output\n");
}

static void print_bytes(uint64_t b) {
    if (b >= (1ull << 30))
        printf("%.1f GiB", (double)b / (double)(1ull << 30));
    else
        printf("%llu MiB", (unsigned long long)(b >> 20));
}

static void features_line(const vkm_gpu_device_info *d, char *out, size_t n) {
    const struct {
        bool on;
        const char *name;
    } f[] = {{d->fp16, "fp16"},
             {d->int8, "int8"},
             {d->int64, "int64"},
             {d->int_dot, "int-dot"},
             {d->int_dot_accel, "int-dot-accelerated"},
             {d->storage8, "storage8"},
             {d->storage16, "storage16"},
             {d->transfer_queue, "transfer-queue"},
             {d->memory_budget, "memory-budget"},
             {d->external_memory_host, "external-memory-host"},
             {d->timestamps, "timestamps"}};
    out[0] = 0;
    size_t len = 0;
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) {
        if (!f[i].on) continue;
        int w = snprintf(out + len, n - len, "%s%s", len ? " " : "", f[i].name);
        if (w < 0 || (size_t)w >= n - len) break;
        len += (size_t)w;
    }
    if (!len) snprintf(out, n, "(none)");
}

static void print_text(const vkm_gpu_device_info *d) {
    char feats[256];
    features_line(d, feats, sizeof feats);
    printf("%c %d: %s\n", d->is_default ? '*' : ' ', d->index, d->name);
    printf("     vendor %s (0x%04x), type %s, driver %s, Vulkan %u.%u.%u\n",
           vkm_gpu_vendor_name(d->vendor), d->vendor_id, vkm_gpu_type_name(d->type), d->driver,
           API_MAJOR(d->api_version), API_MINOR(d->api_version), API_PATCH(d->api_version));
    printf("     memory ");
    print_bytes(d->device_local_bytes);
    printf(" device-local, budget ");
    print_bytes(d->budget_bytes);
    printf(", subgroup size %u\n", d->subgroup_size);
    printf("     features: %s\n", feats);
}

static void json_string(const char *s) {
    putchar('"');
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            printf("\\%c", ch);
        else if (ch < 0x20)
            printf("\\u%04x", ch);
        else
            putchar(ch);
    }
    putchar('"');
}

static void print_json(const vkm_gpu_device_info *d, bool last) {
    printf("  {\"index\": %d, \"default\": %s, \"name\": ", d->index,
           d->is_default ? "true" : "false");
    json_string(d->name);
    printf(", \"vendor\": \"%s\", \"vendor_id\": %u, \"device_id\": %u, \"type\": \"%s\", "
           "\"driver\": ",
           vkm_gpu_vendor_name(d->vendor), d->vendor_id, d->device_id, vkm_gpu_type_name(d->type));
    json_string(d->driver);
    printf(
        ", \"api_version\": \"%u.%u.%u\", \"device_local_bytes\": %llu, \"budget_bytes\": %llu, "
        "\"subgroup_size\": %u, \"max_buffer_bytes\": %llu, \"max_shared_bytes\": %u, "
        "\"fp16\": %s, \"int8\": %s, \"int64\": %s, \"int_dot\": %s, \"int_dot_accelerated\": %s, "
        "\"storage8\": %s, \"storage16\": %s, "
        "\"transfer_queue\": %s, \"memory_budget\": %s, \"external_memory_host\": %s, "
        "\"import_align\": %u, \"timestamps\": %s}%s\n",
        API_MAJOR(d->api_version), API_MINOR(d->api_version), API_PATCH(d->api_version),
        (unsigned long long)d->device_local_bytes, (unsigned long long)d->budget_bytes,
        d->subgroup_size, (unsigned long long)d->max_buffer_bytes, d->max_shared_bytes,
        d->fp16 ? "true" : "false", d->int8 ? "true" : "false", d->int64 ? "true" : "false",
        d->int_dot ? "true" : "false", d->int_dot_accel ? "true" : "false",
        d->storage8 ? "true" : "false", d->storage16 ? "true" : "false",
        d->transfer_queue ? "true" : "false", d->memory_budget ? "true" : "false",
        d->external_memory_host ? "true" : "false", d->import_align,
        d->timestamps ? "true" : "false", last ? "" : ",");
}

/* The weight types of a model's matrices (2-D or more) with the rows of the largest matrix of
 * each type (the GEMV shape the plan table shows). */
static int model_types(const char *path, uint32_t *types, uint64_t *rows, int *n) {
    vkm_gguf *g = NULL;
    if (vkm_gguf_open(path, &g)) return cli_fail_last();
    *n = 0;
    for (int64_t i = 0; i < vkm_gguf_n_tensors(g); i++) {
        const vkm_gguf_tensor *t = vkm_gguf_tensor_at(g, i);
        if (t->n_dims < 2) continue;
        int j = 0;
        while (j < *n && types[j] != t->type) j++;
        if (j == *n) {
            if (*n == VKM_QTYPE_COUNT) continue;
            types[j] = t->type;
            rows[j] = 0;
            (*n)++;
        }
        if ((uint64_t)t->ne[1] > rows[j]) rows[j] = (uint64_t)t->ne[1];
    }
    vkm_gguf_close(g);
    return CLI_OK;
}

/* Prints the kernel plan of the device (as the engine builds it, VKMOE_KERNELS included). */
static int print_plan(int device, const char *model) {
    uint32_t types[VKM_QTYPE_COUNT];
    uint64_t rows[VKM_QTYPE_COUNT];
    int n_types = 0;
    if (model && model_types(model, types, rows, &n_types)) return CLI_ERROR;
    /* compile-only: the plan needs no queues or memory (also drivers that cannot run work) */
    vkm_gpu_options opt = {.device = device, .compile_only = true};
    vkm_gpu *gpu = NULL;
    if (vkm_kernels_env(&opt.kernels) < 0 || vkm_gpu_create(&opt, &gpu) < 0)
        return cli_fail("devices --kernels: %s", vkm_errmsg());
    printf("device: %s\n", vkm_gpu_info(gpu)->name);
    vkm_kernels_print(vkm_gpu_plan(gpu), stdout, types, rows, n_types);
    vkm_gpu_destroy(gpu);
    return CLI_OK;
}

/* y = a*x + b over SMOKE_N floats on the device, checked on the host. */
static int smoke_test(int device) {
    vkm_gpu_options opt = {.device = device};
    vkm_gpu *gpu = NULL;
    vkm_gpu_buf *x = NULL, *y = NULL;
    float *hx = malloc(SMOKE_N * sizeof *hx), *hy = malloc(SMOKE_N * sizeof *hy);
    int rc = CLI_ERROR;
    if (!hx || !hy) {
        cli_fail("devices --test: out of memory");
        goto out;
    }
    for (uint32_t i = 0; i < SMOKE_N; i++) hx[i] = (float)(i % 1000) * 0.25f - 100.0f;
    const struct {
        uint32_t n;
        float a, b;
    } push = {SMOKE_N, 2.0f, 0.5f};
    uint32_t spec[1] = {SMOKE_LOCAL};
    vkm_gpu_kernel *k;
    if (vkm_kernels_env(&opt.kernels) < 0 || vkm_gpu_create(&opt, &gpu) < 0 ||
        vkm_gpu_buf_create(gpu, SMOKE_N * sizeof(float), VKM_BUF_DEVICE, &x) < 0 ||
        vkm_gpu_buf_create(gpu, SMOKE_N * sizeof(float), VKM_BUF_DEVICE, &y) < 0 ||
        vkm_gpu_upload(gpu, x, 0, hx, SMOKE_N * sizeof(float)) < 0 ||
        vkm_gpu_kernel_get(gpu, VKM_SH_SMOKE, spec, 1, 2, sizeof push, &k) < 0 ||
        vkm_gpu_begin(gpu) < 0 ||
        vkm_gpu_dispatch(gpu, k, (vkm_gpu_arg[]){{x, 0, 0}, {y, 0, 0}}, 2, &push,
                         (SMOKE_N + SMOKE_LOCAL - 1) / SMOKE_LOCAL, 1, 1) < 0 ||
        vkm_gpu_submit(gpu) < 0 || vkm_gpu_download(gpu, y, 0, hy, SMOKE_N * sizeof(float)) < 0) {
        cli_fail("devices --test: %s", vkm_errmsg());
        goto out;
    }
    for (uint32_t i = 0; i < SMOKE_N; i++) {
        float want = push.a * hx[i] + push.b;
        if (fabsf(hy[i] - want) > 1e-5f * (1.0f + fabsf(want))) {
            cli_fail("smoke test: wrong result on %s: y[%u] = %g, expected %g",
                     vkm_gpu_info(gpu)->name, i, (double)hy[i], (double)want);
            goto out;
        }
    }
    printf("smoke test: ok on %s\n", vkm_gpu_info(gpu)->name);
    rc = CLI_OK;
out:
    vkm_gpu_buf_destroy(gpu, x);
    vkm_gpu_buf_destroy(gpu, y);
    vkm_gpu_destroy(gpu);
    free(hx);
    free(hy);
    return rc;
}

int cmd_devices(int argc, char **argv) {
    bool test = false, json = false, kernels = false;
    const char *model = NULL;
    long device = -1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (cli_is_help(a)) {
            print_help();
            return CLI_OK;
        } else if (!strcmp(a, "--test")) {
            test = true;
        } else if (!strcmp(a, "--json")) {
            json = true;
        } else if (!strcmp(a, "--kernels")) {
            kernels = true;
        } else if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
            if (i + 1 >= argc) return cli_usage_error(USAGE, "%s needs a value", a);
            model = argv[++i];
        } else if (!strcmp(a, "--device")) {
            if (i + 1 >= argc) return cli_usage_error(USAGE, "--device needs a value");
            if (!cli_parse_device(USAGE, argv[++i], &device)) return CLI_USAGE;
        } else {
            return cli_usage_error(USAGE, "devices: unknown option '%s'", a);
        }
    }
    if (model && !kernels) return cli_usage_error(USAGE, "-m needs --kernels");
    if (kernels && (test || json))
        return cli_usage_error(USAGE, "--kernels does not combine with --test or --json");
    static vkm_gpu_device_info list[MAX_DEVICES];
    int n = 0;
    if (vkm_gpu_list(list, MAX_DEVICES, &n) < 0) return cli_fail_last();
    if (n > MAX_DEVICES) n = MAX_DEVICES;
    if (device >= n)
        return cli_fail("device %ld does not exist (%d device%s)", device, n, n == 1 ? "" : "s");
    if (kernels) return print_plan((int)device, model);
    int first = device >= 0 ? (int)device : 0, last = device >= 0 ? (int)device : n - 1;
    if (json) printf("[\n");
    for (int i = first; i <= last; i++) {
        if (json)
            print_json(&list[i], i == last);
        else
            print_text(&list[i]);
    }
    if (json) printf("]\n");
    if (!test) return CLI_OK;
    fflush(stdout);
    return smoke_test((int)device);
}
