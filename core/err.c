/* err.c - thread-local error message storage behind the 0 / negative-code convention. */
#include "err.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

static _Thread_local char g_msg[1024];

int vkm_error(int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_msg, sizeof g_msg, fmt, ap);
    va_end(ap);
    return code;
}

const char *vkm_errmsg(void) {
    return g_msg[0] ? g_msg : "(no details)";
}

void vkm_error_clear(void) {
    g_msg[0] = 0;
}

const char *vkm_strerror(int code) {
    switch (code) {
    case VKM_OK:
        return "ok";
    case VKM_EINVAL:
        return "invalid argument";
    case VKM_ENOMEM:
        return "out of host memory";
    case VKM_EIO:
        return "i/o error";
    case VKM_EFORMAT:
        return "malformed file";
    case VKM_EUNSUPPORTED:
        return "unsupported";
    case VKM_ENODEV:
        return "no usable device";
    case VKM_EDEVICE:
        return "device error";
    case VKM_EDEVMEM:
        return "out of device memory";
    case VKM_EDEVLOST:
        return "device lost";
    case VKM_EINTR:
        return "interrupted";
    case VKM_ERANGE:
        return "out of range";
    default:
        return "unknown error";
    }
}

void vkm_assert_fail(const char *expr, const char *file, int line) {
    fprintf(stderr, "vkmoe: internal error: assertion '%s' failed at %s:%d\n", expr, file, line);
    abort();
}
