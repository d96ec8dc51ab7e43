/* err.h - the one error convention of vkmoe.
 *
 * Every fallible function returns int: 0 (VKM_OK) on success, a negative VKM_E* code on failure.
 * The failing function records a one-line human message with vkm_error(); callers print it with
 * vkm_errmsg(). The message is thread-local and only meaningful right after a failure.
 * Programmer errors (broken invariants) abort through VKM_ASSERT; bad input never does. */
#ifndef VKM_ERR_H
#define VKM_ERR_H

enum {
    VKM_OK = 0,
    VKM_EINVAL = -1,       /* invalid argument or option value */
    VKM_ENOMEM = -2,       /* host allocation failed */
    VKM_EIO = -3,          /* file system / read error */
    VKM_EFORMAT = -4,      /* malformed input file */
    VKM_EUNSUPPORTED = -5, /* well-formed, but not supported (type, feature) */
    VKM_ENODEV = -6,       /* no usable Vulkan device */
    VKM_EDEVICE = -7,      /* Vulkan call failed */
    VKM_EDEVMEM = -8,      /* device memory exhausted (recoverable) */
    VKM_EDEVLOST = -9,     /* VK_ERROR_DEVICE_LOST */
    VKM_EINTR = -10,       /* interrupted by the user */
    VKM_ERANGE = -11,      /* a value out of range (context overflow, index) */
};

/* Records a printf-style message for `code` and returns `code`, so callers write
 * `return vkm_error(VKM_EFORMAT, "%s: bad magic", path);`. */
int vkm_error(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The message recorded by the last vkm_error() on this thread ("" if none). */
const char *vkm_errmsg(void);
/* Clears the recorded message. */
void vkm_error_clear(void);
/* A short fixed name for a code ("malformed file", ...). */
const char *vkm_strerror(int code);

/* Returns the code of a failing call from the enclosing function (which returns int):
 * `VKM_TRY(vkm_op_add(gpu, ...));`. */
#define VKM_TRY(expr)                                                                              \
    do {                                                                                           \
        const int vkm_try_rc_ = (expr);                                                            \
        if (vkm_try_rc_) return vkm_try_rc_;                                                       \
    } while (0)

void vkm_assert_fail(const char *expr, const char *file, int line) __attribute__((noreturn));
#define VKM_ASSERT(x) ((x) ? (void)0 : vkm_assert_fail(#x, __FILE__, __LINE__))

#endif
