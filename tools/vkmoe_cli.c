/* vkmoe_cli.c - helpers shared by every subcommand (see cli.h). */
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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

/* Whether `path` can be written ("-" = stdout): an existing file must be writable, a new one
 * needs a writable directory. Nothing is created. Prints the error (exit 1) otherwise. */
int cli_check_output(const char *who, const char *flag, const char *path) {
    if (!path || !strcmp(path, "-")) return CLI_OK;
    struct stat st;
    if (stat(path, &st) == 0) {
        if (S_ISDIR(st.st_mode))
            return cli_fail("%s: %s %s: a directory, not a file", who, flag, path);
        if (access(path, W_OK) != 0)
            return cli_fail("%s: %s %s: not writable: %s", who, flag, path, strerror(errno));
        return CLI_OK;
    }
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else if (slash == dir)
        dir[1] = 0;
    else
        *slash = 0;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return cli_fail("%s: %s %s: the directory %s does not exist", who, flag, path, dir);
    if (access(dir, W_OK) != 0)
        return cli_fail("%s: %s %s: the directory %s is not writable", who, flag, path, dir);
    return CLI_OK;
}
