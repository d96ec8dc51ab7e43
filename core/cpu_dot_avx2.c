/* cpu_dot_avx2.c - AVX2 + FMA + F16C versions of the dot kernels of cpu_dot.h.
 *
 * Compiled without -mavx2: every function carries the target attribute, so the build runs on
 * any x86-64 and cpu_matmul.c calls these only when __builtin_cpu_supports says the CPU can.
 * On other architectures the file is empty apart from the "none" answers.
 *
 * Pattern shared by the quantized kernels: the weights of one activation block are decoded to
 * 32 unsigned bytes u (0..63), _mm256_maddubs_epi16(u, a.q) forms 16 pair sums (no int16
 * overflow: 2 * 63 * 127 < 32767, Q8_0 uses |w| with the sign moved onto a), _mm256_madd_epi16
 * with the run's scale (or ones) widens to 8 int32, which are converted and accumulated into a
 * float vector with one FMA by d_w * d_a. Offsets (the -8 / -16 / -32 of the signed formats and
 * the mins) are subtracted with the activation block's sums in scalar code. */
#include "cpu_dot.h"

#include <string.h>

#include "qtype.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))

#include <immintrin.h>

#include "fp16.h"

#define AVX2 __attribute__((target("avx2,fma,f16c")))

/* f16 -> f32 with the F16C instruction (exact, as vkm_fp16_to_f32). */
AVX2 static inline float f16(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return _cvtsh_ss(h);
}

AVX2 static inline float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

AVX2 static inline __m256i load32(const void *p) {
    return _mm256_loadu_si256((const __m256i *)p);
}

/* 8 int32 sums of u[i] * q[i] * (scale of i's half): u unsigned bytes, q signed. */
AVX2 static inline __m256i mul_sum(__m256i u, __m256i q, __m256i scale16) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(u, q), scale16);
}

/* Both halves' scales as int16 lanes: lanes 0-7 (elements 0-15) s0, lanes 8-15 s1. */
AVX2 static inline __m256i scales2(int s0, int s1) {
    return _mm256_setr_m128i(_mm_set1_epi16((short)s0), _mm_set1_epi16((short)s1));
}

/* 32 nibbles of Q4_0/Q4_1/Q5_x order from 16 bytes: low nibbles then high nibbles. */
AVX2 static inline __m256i nibbles16(const uint8_t *qs) {
    __m128i v = _mm_loadu_si128((const __m128i *)qs);
    const __m128i m = _mm_set1_epi8(0x0F);
    return _mm256_setr_m128i(_mm_and_si128(v, m), _mm_and_si128(_mm_srli_epi16(v, 4), m));
}

/* 32 bytes, byte i = 0x10 if bit i of qh is set, else 0. */
AVX2 static inline __m256i bits_to_0x10(uint32_t qh) {
    const __m256i shuf = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2,
                                          2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
    const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ull);
    __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32((int)qh), shuf);
    v = _mm256_cmpeq_epi8(_mm256_and_si256(v, bit), bit);
    return _mm256_and_si256(v, _mm256_set1_epi8(0x10));
}

/* ---- floats ---------------------------------------------------------------------------- */

AVX2 static float dot_f32(const uint8_t *w, const void *act, int64_t k) {
    const float *x = act;
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= k; i += 16) {
        a0 = _mm256_fmadd_ps(_mm256_loadu_ps((const float *)(w + 4 * i)), _mm256_loadu_ps(x + i),
                             a0);
        a1 = _mm256_fmadd_ps(_mm256_loadu_ps((const float *)(w + 4 * i + 32)),
                             _mm256_loadu_ps(x + i + 8), a1);
    }
    float s = hsum(_mm256_add_ps(a0, a1));
    for (; i < k; i++) {
        float v;
        memcpy(&v, w + 4 * i, 4);
        s += v * x[i];
    }
    return s;
}

AVX2 static float dot_f16(const uint8_t *w, const void *act, int64_t k) {
    const float *x = act;
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= k; i += 16) {
        __m256 w0 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(w + 2 * i)));
        __m256 w1 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(w + 2 * i + 16)));
        a0 = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x + i), a0);
        a1 = _mm256_fmadd_ps(w1, _mm256_loadu_ps(x + i + 8), a1);
    }
    float s = hsum(_mm256_add_ps(a0, a1));
    for (; i < k; i++) s += f16(w + 2 * i) * x[i];
    return s;
}

AVX2 static float dot_bf16(const uint8_t *w, const void *act, int64_t k) {
    const float *x = act;
    __m256 a0 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= k; i += 8) {
        __m256i h = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(w + 2 * i)));
        __m256 wv = _mm256_castsi256_ps(_mm256_slli_epi32(h, 16));
        a0 = _mm256_fmadd_ps(wv, _mm256_loadu_ps(x + i), a0);
    }
    float s = hsum(a0);
    for (; i < k; i++) s += vkm_bf16_to_f32((uint16_t)(w[2 * i] | w[2 * i + 1] << 8)) * x[i];
    return s;
}

/* ---- blocks of 32 ---------------------------------------------------------------------- */

AVX2 static float dot_q8_0(const uint8_t *w, const void *act, int64_t k) {
    const vkm_cpu_q8 *a = act;
    const __m256i ones = _mm256_set1_epi16(1);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t b = 0; b < k / 32; b++, w += 34) {
        __m256i wq = load32(w + 2), aq = load32(a[b].q);
        __m256i p = mul_sum(_mm256_sign_epi8(wq, wq), _mm256_sign_epi8(aq, wq), ones);
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_set1_ps(f16(w) * a[b].d), acc);
    }
    return hsum(acc);
}

AVX2 static float dot_q4_0(const uint8_t *w, const void *act, int64_t k) {
    const vkm_cpu_q8 *a = act;
    const __m256i ones = _mm256_set1_epi16(1);
    __m256 acc = _mm256_setzero_ps();
    float off = 0;
    for (int64_t b = 0; b < k / 32; b++, w += 18) {
        const float dd = f16(w) * a[b].d;
        __m256i p = mul_sum(nibbles16(w + 2), load32(a[b].q), ones);
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_set1_ps(dd), acc);
        off += dd * (float)(8 * (a[b].s[0] + a[b].s[1]));
    }
    return hsum(acc) - off;
}

AVX2 static float dot_q4_1(const uint8_t *w, const void *act, int64_t k) {
    const vkm_cpu_q8 *a = act;
    const __m256i ones = _mm256_set1_epi16(1);
    __m256 acc = _mm256_setzero_ps();
    float off = 0;
    for (int64_t b = 0; b < k / 32; b++, w += 20) {
        __m256i p = mul_sum(nibbles16(w + 4), load32(a[b].q), ones);
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_set1_ps(f16(w) * a[b].d), acc);
        off += f16(w + 2) * a[b].d * (float)(a[b].s[0] + a[b].s[1]);
    }
    return hsum(acc) + off;
}

AVX2 static float dot_q5_0(const uint8_t *w, const void *act, int64_t k) {
    const vkm_cpu_q8 *a = act;
    const __m256i ones = _mm256_set1_epi16(1);
    __m256 acc = _mm256_setzero_ps();
    float off = 0;
    for (int64_t b = 0; b < k / 32; b++, w += 22) {
        uint32_t qh;
        memcpy(&qh, w + 2, 4);
        const float dd = f16(w) * a[b].d;
        __m256i u = _mm256_or_si256(nibbles16(w + 6), bits_to_0x10(qh));
        __m256i p = mul_sum(u, load32(a[b].q), ones);
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_set1_ps(dd), acc);
        off += dd * (float)(16 * (a[b].s[0] + a[b].s[1]));
    }
    return hsum(acc) - off;
}

AVX2 static float dot_q5_1(const uint8_t *w, const void *act, int64_t k) {
    const vkm_cpu_q8 *a = act;
    const __m256i ones = _mm256_set1_epi16(1);
    __m256 acc = _mm256_setzero_ps();
    float off = 0;
    for (int64_t b = 0; b < k / 32; b++, w += 24) {
        uint32_t qh;
        memcpy(&qh, w + 4, 4);
        __m256i u = _mm256_or_si256(nibbles16(w + 8), bits_to_0x10(qh));
        __m256i p = mul_sum(u, load32(a[b].q), ones);
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_set1_ps(f16(w) * a[b].d), acc);
        off += f16(w + 2) * a[b].d * (float)(a[b].s[0] + a[b].s[1]);
    }
    return hsum(acc) + off;
}

/* ---- K-quants -------------------------------------------------------------------------- */

/* The 8 6-bit scales and mins of a Q4_K/Q5_K super-block from its 12 packed bytes. */
static inline void k_scales_mins(const uint8_t *b, int *sc, int *m) {
    for (int j = 0; j < 4; j++) {
        sc[j] = b[j] & 63;
        m[j] = b[j + 4] & 63;
        sc[j + 4] = (b[j + 8] & 0xF) | ((b[j] >> 6) << 4);
        m[j + 4] = (b[j + 8] >> 4) | ((b[j + 4] >> 6) << 4);
    }
}

/* sum over the 8 activation blocks of a super-block of d_a * m * (s0 + s1). */
static inline float k_mins(const vkm_cpu_q8 *a, const int *m) {
    float r = 0;
    for (int j = 0; j < 8; j++) r += a[j].d * (float)(m[j] * (a[j].s[0] + a[j].s[1]));
    return r;
}

AVX2 static float dot_q2_k(const uint8_t *w, const void *act, int64_t k) {
    const vkm_cpu_q8 *a = act;
    const __m256i m3 = _mm256_set1_epi8(3);
    __m256 acc = _mm256_setzero_ps();
    float off = 0;
    for (int64_t sb = 0; sb < k / 256; sb++, w += 84, a += 8) {
        const uint8_t *sc = w;
        const float d = f16(w + 80), dmin = f16(w + 82);
        for (int h = 0; h < 2; h++) {
            __m256i qs = load32(w + 16 + 32 * h);
            for (int j = 0; j < 4; j++) {
                const int ib = 4 * h + j;
                __m256i u = _mm256_and_si256(_mm256_srli_epi16(qs, 2 * j), m3);
                __m256i p =
                    mul_sum(u, load32(a[ib].q), scales2(sc[2 * ib] & 0xF, sc[2 * ib + 1] & 0xF));
                acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_set1_ps(d * a[ib].d), acc);
                off += dmin * a[ib].d *
                       (float)((sc[2 * ib] >> 4) * a[ib].s[0] + (sc[2 * ib + 1] >> 4) * a[ib].s[1]);
            }
        }
    }
    return hsum(acc) - off;
}

AVX2 static float dot_q3_k(const uint8_t *w, const void *act, int64_t k) {
    const vkm_cpu_q8 *a = act;
    const __m256i m3 = _mm256_set1_epi8(3), four = _mm256_set1_epi8(4);
    __m256 acc = _mm256_setzero_ps();
    float off = 0;
    for (int64_t sb = 0; sb < k / 256; sb++, w += 110, a += 8) {
        const uint8_t *p = w + 96;
        int s[16];
        for (int j = 0; j < 16; j++) {
            int low4 = j < 8 ? (p[j] & 0xF) : (p[j - 8] >> 4);
            s[j] = (low4 | ((p[8 + j % 4] >> (2 * (j / 4))) & 3) << 4) - 32;
        }
        const float d = f16(w + 108);
        __m256i hm = load32(w);
        for (int h = 0; h < 2; h++) {
            __m256i qs = load32(w + 32 + 32 * h);
            for (int j = 0; j < 4; j++) {
                const int ib = 4 * h + j;
                __m256i q2 = _mm256_and_si256(_mm256_srli_epi16(qs, 2 * j), m3);
                /* hbit ib of each byte moved to bit 2 */
                __m256i hb = _mm256_and_si256(
                    ib >= 2 ? _mm256_srli_epi16(hm, ib - 2) : _mm256_slli_epi16(hm, 2 - ib), four);
                __m256i u = _mm256_or_si256(q2, hb);
                __m256i pr = mul_sum(u, load32(a[ib].q), scales2(s[2 * ib], s[2 * ib + 1]));
                const float dd = d * a[ib].d;
                acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(pr), _mm256_set1_ps(dd), acc);
                off += dd * (float)(4 * (s[2 * ib] * a[ib].s[0] + s[2 * ib + 1] * a[ib].s[1]));
            }
        }
    }
    return hsum(acc) - off;
}

AVX2 static float dot_q4_k(const uint8_t *w, const void *act, int64_t k) {
    const vkm_cpu_q8 *a = act;
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    __m256 acc = _mm256_setzero_ps();
    float off = 0;
    for (int64_t sb = 0; sb < k / 256; sb++, w += 144, a += 8) {
        const float d = f16(w), dmin = f16(w + 2);
        int scs[8], ms[8];
        k_scales_mins(w + 4, scs, ms);
        off += dmin * k_mins(a, ms);
        for (int c = 0; c < 4; c++) {
            __m256i qs = load32(w + 16 + 32 * c);
            const int sc0 = scs[2 * c], sc1 = scs[2 * c + 1];
            const vkm_cpu_q8 *a0 = &a[2 * c], *a1 = &a[2 * c + 1];
            __m256i p0 =
                mul_sum(_mm256_and_si256(qs, m4), load32(a0->q), _mm256_set1_epi16((short)sc0));
            __m256i p1 = mul_sum(_mm256_and_si256(_mm256_srli_epi16(qs, 4), m4), load32(a1->q),
                                 _mm256_set1_epi16((short)sc1));
            acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p0), _mm256_set1_ps(d * a0->d), acc);
            acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p1), _mm256_set1_ps(d * a1->d), acc);
        }
    }
    return hsum(acc) - off;
}

AVX2 static float dot_q5_k(const uint8_t *w, const void *act, int64_t k) {
    const vkm_cpu_q8 *a = act;
    const __m256i m4 = _mm256_set1_epi8(0x0F), b4 = _mm256_set1_epi8(0x10);
    __m256 acc = _mm256_setzero_ps();
    float off = 0;
    for (int64_t sb = 0; sb < k / 256; sb++, w += 176, a += 8) {
        const float d = f16(w), dmin = f16(w + 2);
        __m256i qh = load32(w + 16);
        int scs[8], ms[8];
        k_scales_mins(w + 4, scs, ms);
        off += dmin * k_mins(a, ms);
        for (int c = 0; c < 4; c++) {
            __m256i qs = load32(w + 48 + 32 * c);
            const int sc0 = scs[2 * c], sc1 = scs[2 * c + 1];
            const int i0 = 2 * c, i1 = 2 * c + 1; /* qh bit i moved to bit 4 */
            __m256i h0 = _mm256_and_si256(
                i0 >= 4 ? _mm256_srli_epi16(qh, i0 - 4) : _mm256_slli_epi16(qh, 4 - i0), b4);
            __m256i h1 = _mm256_and_si256(
                i1 >= 4 ? _mm256_srli_epi16(qh, i1 - 4) : _mm256_slli_epi16(qh, 4 - i1), b4);
            const vkm_cpu_q8 *a0 = &a[i0], *a1 = &a[i1];
            __m256i u0 = _mm256_or_si256(_mm256_and_si256(qs, m4), h0);
            __m256i u1 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(qs, 4), m4), h1);
            __m256i p0 = mul_sum(u0, load32(a0->q), _mm256_set1_epi16((short)sc0));
            __m256i p1 = mul_sum(u1, load32(a1->q), _mm256_set1_epi16((short)sc1));
            acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p0), _mm256_set1_ps(d * a0->d), acc);
            acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p1), _mm256_set1_ps(d * a1->d), acc);
        }
    }
    return hsum(acc) - off;
}

AVX2 static float dot_q6_k(const uint8_t *w, const void *act, int64_t k) {
    const vkm_cpu_q8 *a = act;
    const __m256i m4 = _mm256_set1_epi8(0x0F), m2 = _mm256_set1_epi8(0x30);
    __m256 acc = _mm256_setzero_ps();
    float off = 0;
    for (int64_t sb = 0; sb < k / 256; sb++, w += 210, a += 8) {
        const int8_t *sc = (const int8_t *)(w + 192);
        const float d = f16(w + 208);
        for (int h = 0; h < 2; h++) {
            __m256i l0 = load32(w + 64 * h), l1 = load32(w + 64 * h + 32);
            __m256i qh = load32(w + 128 + 32 * h);
            /* g = 0..3: low nibble of l0, l1, high nibble of l0, l1; qh bits 2g, 2g+1 -> 4, 5 */
            __m256i lo[4] = {_mm256_and_si256(l0, m4), _mm256_and_si256(l1, m4),
                             _mm256_and_si256(_mm256_srli_epi16(l0, 4), m4),
                             _mm256_and_si256(_mm256_srli_epi16(l1, 4), m4)};
            __m256i hi[4] = {_mm256_and_si256(_mm256_slli_epi16(qh, 4), m2),
                             _mm256_and_si256(_mm256_slli_epi16(qh, 2), m2),
                             _mm256_and_si256(qh, m2),
                             _mm256_and_si256(_mm256_srli_epi16(qh, 2), m2)};
            for (int g = 0; g < 4; g++) {
                const int ib = 4 * h + g;
                __m256i u = _mm256_or_si256(lo[g], hi[g]);
                __m256i p = mul_sum(u, load32(a[ib].q), scales2(sc[2 * ib], sc[2 * ib + 1]));
                const float dd = d * a[ib].d;
                acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_set1_ps(dd), acc);
                off += dd * (float)(32 * (sc[2 * ib] * a[ib].s[0] + sc[2 * ib + 1] * a[ib].s[1]));
            }
        }
    }
    return hsum(acc) - off;
}

vkm_cpu_dot_fn vkm_cpu_dot_avx2(uint32_t type) {
    switch (type) {
    case VKM_F32:
        return dot_f32;
    case VKM_F16:
        return dot_f16;
    case VKM_BF16:
        return dot_bf16;
    case VKM_Q4_0:
        return dot_q4_0;
    case VKM_Q4_1:
        return dot_q4_1;
    case VKM_Q5_0:
        return dot_q5_0;
    case VKM_Q5_1:
        return dot_q5_1;
    case VKM_Q8_0:
        return dot_q8_0;
    case VKM_Q2_K:
        return dot_q2_k;
    case VKM_Q3_K:
        return dot_q3_k;
    case VKM_Q4_K:
        return dot_q4_k;
    case VKM_Q5_K:
        return dot_q5_k;
    case VKM_Q6_K:
        return dot_q6_k;
    default:
        return NULL;
    }
}

int vkm_cpu_avx2_usable(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
           __builtin_cpu_supports("f16c");
}

#else

vkm_cpu_dot_fn vkm_cpu_dot_avx2(uint32_t type) {
    (void)type;
    return NULL;
}

int vkm_cpu_avx2_usable(void) {
    return 0;
}

#endif
