/* vkmoe_cli.c - helpers shared by every subcommand (see cli.h). */
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "gpu.h"

int cli_usage_error(const char *usage, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("vkmoe: ", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nusage: %s\n", usage);
    return CLI_USAGE;
}

int cli_fail(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("vkmoe: ", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return CLI_ERROR;
}

int cli_fail_last(void) {
    return cli_fail("%s", vkm_errmsg());
}

bool cli_parse_long(const char *s, long min, long max, long *out) {
    if (!s || !*s) return false;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || v < min || v > max) return false;
    *out = v;
    return true;
}

bool cli_parse_float(const char *s, double min, double max, double *out) {
    if (!s || !*s) return false;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end || !isfinite(v) || v < min || v > max) return false;
    *out = v;
    return true;
}

bool cli_parse_size(const char *s, uint64_t *out) {
    if (!s || !*s || *s == '-' || *s == '+') return false;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s) return false;
    unsigned shift = 0;
    switch (*end) {
    case 0:
        break;
    case 'k':
    case 'K':
        shift = 10;
        break;
    case 'm':
    case 'M':
        shift = 20;
        break;
    case 'g':
    case 'G':
        shift = 30;
        break;
    case 't':
    case 'T':
        shift = 40;
        break;
    default:
        return false;
    }
    if (*end && end[1] && !((end[1] == 'B' || end[1] == 'b') && !end[2])) return false;
    if (shift && v > (UINT64_MAX >> shift)) return false;
    *out = (uint64_t)v << shift;
    return true;
}

bool cli_is_help(const char *a) {
    return !strcmp(a, "-h") || !strcmp(a, "--help");
}

bool cli_parse_device(const char *usage, const char *s, long *out) {
    if (!cli_parse_long(s, 0, 1000000, out)) {
        cli_usage_error(usage, "--device: '%s' is not a device index", s ? s : "");
        return false;
    }
    int count = 0;
    if (vkm_gpu_list(NULL, 0, &count) < 0 || count == 0) return true; /* reported later */
    if (*out >= count) {
        cli_usage_error(usage, "--device %ld does not exist: %d device%s (see `vkmoe devices`)",
                        *out, count, count == 1 ? "" : "s");
        return false;
    }
    return true;
}
