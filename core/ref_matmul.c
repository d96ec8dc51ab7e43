/* ref_matmul.c - reference matmul on ggml weights: dequantize a weight row, dot it with every
 * activation row in double; the 8-bit activations of the integer-dot GEMVs and their matmul.
 * Simple loops; the oracle for GPU kernels, not a fast path.
 * Invariant: all size arithmetic is overflow-checked before any pointer is formed. */
#include "ref_matmul.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "qtype.h"
#include "ref_quant.h"

/* Checks a stacked {k, m, n_mat} shape and returns the bytes of one row and of one matrix. */
static int check_shape(const char *what, uint32_t wtype, int64_t k, int64_t m, int64_t n_mat,
                       size_t *row_bytes, size_t *mat_bytes) {
    const vkm_qtype_info *t = vkm_qtype_get(wtype);
    if (!t) return vkm_error(VKM_EUNSUPPORTED, "%s: unknown weight type %u", what, wtype);
    if (k <= 0 || m < 0 || n_mat < 0)
        return vkm_error(VKM_EINVAL, "%s: bad shape {%lld, %lld, %lld}", what, (long long)k,
                         (long long)m, (long long)n_mat);
    size_t rb = vkm_ref_row_bytes(wtype, k);
    if (!rb)
        return vkm_error(VKM_EINVAL, "%s: k = %lld is not a multiple of the %s block (%u)", what,
                         (long long)k, t->name, t->block);
    if ((uint64_t)m > SIZE_MAX / rb || (m && (uint64_t)n_mat > SIZE_MAX / (rb * (size_t)m)))
        return vkm_error(VKM_ERANGE, "%s: {%lld, %lld, %lld} %s is too large", what, (long long)k,
                         (long long)m, (long long)n_mat, t->name);
    *row_bytes = rb;
    *mat_bytes = rb * (size_t)m;
    return 0;
}

static float dot(const float *a, const float *b, int64_t k) {
    double s = 0.0;
    for (int64_t i = 0; i < k; i++) s += (double)a[i] * (double)b[i];
    return (float)s;
}

/* The weight types vkm_ref_dequant_row handles; checked up front so the error does not depend
 * on m or n being 0. */
static int check_type(const char *what, uint32_t wtype) {
    const vkm_qtype_info *t = vkm_qtype_get(wtype);
    if (t && t->supported) return 0;
    return vkm_error(VKM_EUNSUPPORTED, "%s: weight type %s (%u) not supported", what,
                     t ? t->name : "unknown", wtype);
}

int vkm_ref_matmul(uint32_t wtype, const void *w, int64_t k, int64_t m, const float *x, int64_t n,
                   float *y) {
    size_t rb = 0, mb = 0;
    int rc = check_type("matmul", wtype);
    if (!rc) rc = check_shape("matmul", wtype, k, m, 1, &rb, &mb);
    if (rc) return rc;
    if (n < 0) return vkm_error(VKM_EINVAL, "matmul: n = %lld", (long long)n);
    if (m == 0 || n == 0) return 0;
    float *row = malloc((size_t)k * sizeof *row); /* [k]: one dequantized weight row */
    if (!row) return vkm_error(VKM_ENOMEM, "matmul: out of memory for a row of %lld", (long long)k);
    const uint8_t *wb = w;
    for (int64_t r = 0; r < m; r++) {
        rc = vkm_ref_dequant_row(wtype, wb + (size_t)r * rb, row, k);
        if (rc) break;
        for (int64_t j = 0; j < n; j++) y[j * m + r] = dot(row, x + j * k, k);
    }
    free(row);
    return rc;
}

int vkm_ref_matmul_id(uint32_t wtype, const void *w, int64_t k, int64_t m, int64_t n_mat,
                      const float *x, int64_t n_rows, const int32_t *mat_of_row, float *y) {
    size_t rb = 0, mb = 0;
    int rc = check_type("matmul_id", wtype);
    if (!rc) rc = check_shape("matmul_id", wtype, k, m, n_mat, &rb, &mb);
    if (rc) return rc;
    if (n_rows < 0) return vkm_error(VKM_EINVAL, "matmul_id: n_rows = %lld", (long long)n_rows);
    for (int64_t j = 0; j < n_rows; j++)
        if (mat_of_row[j] < 0 || mat_of_row[j] >= n_mat)
            return vkm_error(VKM_EINVAL, "matmul_id: row %lld uses matrix %d, have %lld",
                             (long long)j, (int)mat_of_row[j], (long long)n_mat);
    if (m == 0 || n_rows == 0) return 0;
    float *row = malloc((size_t)k * sizeof *row); /* [k]: one dequantized weight row */
    if (!row)
        return vkm_error(VKM_ENOMEM, "matmul_id: out of memory for a row of %lld", (long long)k);
    const uint8_t *wb = w;
    for (int64_t e = 0; e < n_mat && !rc; e++) {
        int64_t used = 0; /* skip matrices no row selects: they are never dequantized */
        for (int64_t j = 0; j < n_rows; j++) used += mat_of_row[j] == e;
        if (!used) continue;
        for (int64_t r = 0; r < m; r++) {
            rc = vkm_ref_dequant_row(wtype, wb + (size_t)e * mb + (size_t)r * rb, row, k);
            if (rc) break;
            for (int64_t j = 0; j < n_rows; j++)
                if (mat_of_row[j] == e) y[j * m + r] = dot(row, x + j * k, k);
        }
    }
    free(row);
    return rc;
}

int vkm_ref_slice_bytes(uint32_t wtype, int64_t k, int64_t m, int64_t n_mat, int64_t e,
                        size_t *offset, size_t *size) {
    size_t rb = 0, mb = 0;
    int rc = check_shape("slice_bytes", wtype, k, m, n_mat, &rb, &mb);
    if (rc) return rc;
    if (e < 0 || e >= n_mat)
        return vkm_error(VKM_EINVAL, "slice_bytes: slice %lld of %lld", (long long)e,
                         (long long)n_mat);
    *offset = (size_t)e * mb; /* e < n_mat and n_mat * mb fits: no overflow */
    *size = mb;
    return 0;
}

/* ---- 8-bit activations (the integer-dot GEMVs) ---- */

int vkm_ref_quant_q8x(const float *x, int64_t k, void *out) {
    if (k <= 0 || k % 32)
        return vkm_error(VKM_EINVAL, "quant_q8x: k = %lld is not a positive multiple of 32",
                         (long long)k);
    uint8_t *o = out;
    for (int64_t b = 0; b < k / 32; b++, o += VKM_REF_Q8X_BLOCK) {
        const float *v = x + 32 * b;
        float amax = 0.0f;
        for (int i = 0; i < 32; i++) amax = fmaxf(amax, fabsf(v[i]));
        const float d = amax / 127.0f, inv = amax > 0.0f ? 127.0f / amax : 0.0f;
        int s[2] = {0, 0};
        for (int i = 0; i < 32; i++) {
            long q = lrintf(v[i] * inv); /* nearest even: the default rounding mode */
            q = q < -127 ? -127 : q > 127 ? 127 : q;
            o[i] = (uint8_t)(int8_t)q;
            s[i >> 4] += (int)q;
        }
        const float h[4] = {d, d * (float)s[0], d, d * (float)s[1]};
        memcpy(o + 32, h, sizeof h);
    }
    return 0;
}

int vkm_ref_dequant_q8x(const void *q, int64_t k, float *x) {
    if (k <= 0 || k % 32)
        return vkm_error(VKM_EINVAL, "dequant_q8x: k = %lld is not a positive multiple of 32",
                         (long long)k);
    const uint8_t *o = q;
    for (int64_t b = 0; b < k / 32; b++, o += VKM_REF_Q8X_BLOCK) {
        float d;
        memcpy(&d, o + 32, sizeof d);
        for (int i = 0; i < 32; i++) x[32 * b + i] = d * (float)(int8_t)o[i];
    }
    return 0;
}

int vkm_ref_matmul_q8x(uint32_t wtype, const void *w, int64_t k, int64_t m, const float *x,
                       int64_t n, float *y) {
    if (k <= 0 || k % 32 || n < 0 || (uint64_t)n > SIZE_MAX / 4 / (uint64_t)k)
        return vkm_error(VKM_EINVAL, "matmul_q8x: bad shape k=%lld n=%lld", (long long)k,
                         (long long)n);
    if (n == 0) return vkm_ref_matmul(wtype, w, k, m, x, n, y);
    float *xq = malloc((size_t)(n * k) * sizeof *xq);            /* [n][k] */
    uint8_t *blk = malloc((size_t)(k / 32) * VKM_REF_Q8X_BLOCK); /* one row's blocks */
    int rc = xq && blk ? 0 : vkm_error(VKM_ENOMEM, "matmul_q8x: out of memory");
    for (int64_t j = 0; j < n && !rc; j++)
        if (!(rc = vkm_ref_quant_q8x(x + j * k, k, blk)))
            rc = vkm_ref_dequant_q8x(blk, k, xq + j * k);
    if (!rc) rc = vkm_ref_matmul(wtype, w, k, m, xq, n, y);
    free(xq);
    free(blk);
    return rc;
}
