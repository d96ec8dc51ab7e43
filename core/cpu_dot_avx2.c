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
 * float vector with one FMA by d_w * d_a (for the K-quants once per super-block, their 8 runs
 * summed in int32 lanes first). Offsets (the -4 / -8 / -16 / -32 of the signed formats and the
 * mins) are subtracted with the activation block's sums in scalar code. */
#include "cpu_dot.h"

#include <string.h>

#include "qtype.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))

#include <cpuid.h>
#include <immintrin.h>
#include <stdbool.h>

#include "fp16.h"
#include "iq_tables.h"

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

/* ---- K-quants: one vkm_cpu_q8k per super-block, summed in int32 lanes, scaled once ---------- */

/* The 8 6-bit scales (bytes of sc) and mins (bytes of m) of a Q4_K/Q5_K super-block from its
 * 12 packed bytes, four at a time in 32-bit words: scale j < 4 is the low 6 bits of byte j,
 * scale j >= 4 the low nibble of byte j + 4 with the top 2 bits of byte j - 4 above it; the
 * mins likewise from bytes j + 4, the high nibble of byte j + 4 and bytes j. */
static inline void k_scales_mins(const uint8_t *b, uint64_t *sc, uint64_t *m) {
    uint32_t w0, w1, w2;
    memcpy(&w0, b, 4);
    memcpy(&w1, b + 4, 4);
    memcpy(&w2, b + 8, 4);
    const uint32_t lo6 = 0x3F3F3F3Fu, nib = 0x0F0F0F0Fu, top2 = 0x30303030u;
    *sc = (w0 & lo6) | (uint64_t)((w2 & nib) | ((w0 >> 2) & top2)) << 32;
    *m = (w1 & lo6) | (uint64_t)(((w2 >> 4) & nib) | ((w1 >> 2) & top2)) << 32;
}

/* sum over the 8 runs j of m_j * (s[2j] + s[2j + 1]): the mins term of Q4_K/Q5_K. */
AVX2 static inline int k_mins(uint64_t m, const int16_t *s) {
    const __m128i lo = _mm_loadu_si128((const __m128i *)s),
                  hi = _mm_loadu_si128((const __m128i *)(s + 8));
    const __m128i pairs = _mm_hadd_epi16(lo, hi); /* s[2j] + s[2j+1], j = 0..7 */
    const __m128i mv = _mm_cvtepu8_epi16(_mm_cvtsi64_si128((long long)m));
    __m128i p = _mm_madd_epi16(pairs, mv);
    p = _mm_add_epi32(p, _mm_shuffle_epi32(p, 0x4E));
    p = _mm_add_epi32(p, _mm_shuffle_epi32(p, 0xB1));
    return _mm_cvtsi128_si32(p);
}

/* 16 signed scales (int8 in sc) widened to int16 and the sum of sc[j] * s[j] (the offset term of
 * Q3_K/Q6_K); *lo / *hi get scales 0-7 / 8-15 in both 128-bit lanes, for pick2. */
AVX2 static inline int scales16(__m128i sc, const int16_t *s, __m256i *lo, __m256i *hi) {
    const __m256i w = _mm256_cvtepi8_epi16(sc);
    *lo = _mm256_permute2x128_si256(w, w, 0x00);
    *hi = _mm256_permute2x128_si256(w, w, 0x11);
    __m256i p = _mm256_madd_epi16(w, _mm256_loadu_si256((const __m256i *)s));
    __m128i q = _mm_add_epi32(_mm256_castsi256_si128(p), _mm256_extracti128_si256(p, 1));
    q = _mm_add_epi32(q, _mm_shuffle_epi32(q, 0x4E));
    q = _mm_add_epi32(q, _mm_shuffle_epi32(q, 0xB1));
    return _mm_cvtsi128_si32(q);
}

/* int16 lanes 0-7 = element i0 of b, lanes 8-15 = element i1 (b holds 8 int16 in both lanes). */
AVX2 static inline __m256i pick2(__m256i b, int i0, int i1) {
    const __m256i m = _mm256_setr_m128i(_mm_set1_epi16((short)(0x0100 + 0x0202 * i0)),
                                        _mm_set1_epi16((short)(0x0100 + 0x0202 * i1)));
    return _mm256_shuffle_epi8(b, m);
}

AVX2 static float dot_q2_k(const uint8_t *w, const void *act, int64_t k) {
    const vkm_cpu_q8k *a = act;
    const __m256i m3 = _mm256_set1_epi8(3);
    const __m128i m4 = _mm_set1_epi8(0x0F);
    __m256 acc = _mm256_setzero_ps();
    float off = 0;
    for (int64_t sb = 0; sb < k / 256; sb++, w += 84, a++) {
        const __m128i raw = _mm_loadu_si128((const __m128i *)w); /* scale | min << 4, per 16 */
        __m256i slo, shi, unused_lo, unused_hi;
        scales16(_mm_and_si128(raw, m4), a->s, &slo, &shi);
        const int mins =
            scales16(_mm_and_si128(_mm_srli_epi16(raw, 4), m4), a->s, &unused_lo, &unused_hi);
        __m256i isum = _mm256_setzero_si256();
        /* unrolled, so every shift count is a constant */
#pragma GCC unroll 2
        for (int h = 0; h < 2; h++) {
            __m256i qs = load32(w + 16 + 32 * h);
#pragma GCC unroll 4
            for (int j = 0; j < 4; j++) {
                const int ib = 4 * h + j;
                __m256i u = _mm256_and_si256(_mm256_srli_epi16(qs, 2 * j), m3);
                __m256i scv = pick2(h == 0 ? slo : shi, (2 * ib) % 8, (2 * ib + 1) % 8);
                isum = _mm256_add_epi32(isum, mul_sum(u, load32(a->q + 32 * ib), scv));
            }
        }
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_set1_ps(f16(w + 80) * a->d), acc);
        off += f16(w + 82) * a->d * (float)mins;
    }
    return hsum(acc) - off;
}

AVX2 static float dot_q3_k(const uint8_t *w, const void *act, int64_t k) {
    const vkm_cpu_q8k *a = act;
    const __m256i m3 = _mm256_set1_epi8(3), four = _mm256_set1_epi8(4);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t sb = 0; sb < k / 256; sb++, w += 110, a++) {
        /* scales j: low nibble (j < 8: of byte j, else the high nibble of byte j - 8), bits 4-5
         * from bits 2(j/4), +1 of byte 8 + j%4; in 32-bit words, four scales at a time */
        uint32_t a0, a1, hb;
        memcpy(&a0, w + 96, 4);
        memcpy(&a1, w + 100, 4);
        memcpy(&hb, w + 104, 4);
        const uint32_t n4 = 0x0F0F0F0Fu, n2 = 0x03030303u;
        const __m128i sc =
            _mm_sub_epi8(_mm_setr_epi32((int)((a0 & n4) | (hb & n2) << 4),
                                        (int)((a1 & n4) | ((hb >> 2) & n2) << 4),
                                        (int)(((a0 >> 4) & n4) | ((hb >> 4) & n2) << 4),
                                        (int)(((a1 >> 4) & n4) | ((hb >> 6) & n2) << 4)),
                         _mm_set1_epi8(32));
        __m256i slo, shi;
        const int corr = scales16(sc, a->s, &slo, &shi);
        __m256i hm = load32(w), isum = _mm256_setzero_si256();
#pragma GCC unroll 2
        for (int h = 0; h < 2; h++) {
            __m256i qs = load32(w + 32 + 32 * h);
#pragma GCC unroll 4
            for (int j = 0; j < 4; j++) {
                const int ib = 4 * h + j;
                __m256i q2 = _mm256_and_si256(_mm256_srli_epi16(qs, 2 * j), m3);
                /* hbit ib of each byte moved to bit 2 */
                __m256i hbit = _mm256_and_si256(
                    ib >= 2 ? _mm256_srli_epi16(hm, ib - 2) : _mm256_slli_epi16(hm, 2 - ib), four);
                __m256i u = _mm256_or_si256(q2, hbit);
                __m256i scv = pick2(ib < 4 ? slo : shi, (2 * ib) % 8, (2 * ib + 1) % 8);
                isum = _mm256_add_epi32(isum, mul_sum(u, load32(a->q + 32 * ib), scv));
            }
        }
        isum = _mm256_sub_epi32(isum, _mm256_setr_epi32(4 * corr, 0, 0, 0, 0, 0, 0, 0));
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_set1_ps(f16(w + 108) * a->d), acc);
    }
    return hsum(acc);
}

AVX2 static float dot_q4_k(const uint8_t *w, const void *act, int64_t k) {
    const vkm_cpu_q8k *a = act;
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    __m256 acc = _mm256_setzero_ps();
    float off = 0;
    for (int64_t sb = 0; sb < k / 256; sb++, w += 144, a++) {
        uint64_t scw, mw;
        k_scales_mins(w + 4, &scw, &mw);
        const int mins = k_mins(mw, a->s);
        __m256i isum = _mm256_setzero_si256();
        for (int c = 0; c < 4; c++) {
            __m256i qs = load32(w + 16 + 32 * c);
            __m256i p0 = mul_sum(_mm256_and_si256(qs, m4), load32(a->q + 64 * c),
                                 _mm256_set1_epi16((short)((scw >> (16 * c)) & 0xFF)));
            __m256i p1 =
                mul_sum(_mm256_and_si256(_mm256_srli_epi16(qs, 4), m4), load32(a->q + 64 * c + 32),
                        _mm256_set1_epi16((short)((scw >> (16 * c + 8)) & 0xFF)));
            isum = _mm256_add_epi32(isum, _mm256_add_epi32(p0, p1));
        }
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_set1_ps(f16(w) * a->d), acc);
        off += f16(w + 2) * a->d * (float)mins;
    }
    return hsum(acc) - off;
}

AVX2 static float dot_q5_k(const uint8_t *w, const void *act, int64_t k) {
    const vkm_cpu_q8k *a = act;
    const __m256i m4 = _mm256_set1_epi8(0x0F), b4 = _mm256_set1_epi8(0x10);
    __m256 acc = _mm256_setzero_ps();
    float off = 0;
    for (int64_t sb = 0; sb < k / 256; sb++, w += 176, a++) {
        uint64_t scw, mw;
        k_scales_mins(w + 4, &scw, &mw);
        const int mins = k_mins(mw, a->s);
        __m256i qh = load32(w + 16), isum = _mm256_setzero_si256();
        for (int c = 0; c < 4; c++) {
            __m256i qs = load32(w + 48 + 32 * c);
            /* qh bits 2c and 2c + 1 moved to bit 4: the shift is the same for every byte */
            __m256i h0 = _mm256_and_si256(
                c >= 2 ? _mm256_srli_epi16(qh, 2 * c - 4) : _mm256_slli_epi16(qh, 4 - 2 * c), b4);
            __m256i h1 = _mm256_and_si256(
                c >= 2 ? _mm256_srli_epi16(qh, 2 * c - 3) : _mm256_slli_epi16(qh, 3 - 2 * c), b4);
            __m256i u0 = _mm256_or_si256(_mm256_and_si256(qs, m4), h0);
            __m256i u1 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(qs, 4), m4), h1);
            __m256i p0 = mul_sum(u0, load32(a->q + 64 * c),
                                 _mm256_set1_epi16((short)((scw >> (16 * c)) & 0xFF)));
            __m256i p1 = mul_sum(u1, load32(a->q + 64 * c + 32),
                                 _mm256_set1_epi16((short)((scw >> (16 * c + 8)) & 0xFF)));
            isum = _mm256_add_epi32(isum, _mm256_add_epi32(p0, p1));
        }
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_set1_ps(f16(w) * a->d), acc);
        off += f16(w + 2) * a->d * (float)mins;
    }
    return hsum(acc) - off;
}

AVX2 static float dot_q6_k(const uint8_t *w, const void *act, int64_t k) {
    const vkm_cpu_q8k *a = act;
    const __m256i m4 = _mm256_set1_epi8(0x0F), m2 = _mm256_set1_epi8(0x30);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t sb = 0; sb < k / 256; sb++, w += 210, a++) {
        __m256i slo, shi;
        const int corr = scales16(_mm_loadu_si128((const __m128i *)(w + 192)), a->s, &slo, &shi);
        __m256i isum = _mm256_setzero_si256();
#pragma GCC unroll 2
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
#pragma GCC unroll 4
            for (int g = 0; g < 4; g++) {
                const int ib = 4 * h + g;
                __m256i u = _mm256_or_si256(lo[g], hi[g]);
                __m256i scv = pick2(h == 0 ? slo : shi, (2 * ib) % 8, (2 * ib + 1) % 8);
                isum = _mm256_add_epi32(isum, mul_sum(u, load32(a->q + 32 * ib), scv));
            }
        }
        isum = _mm256_sub_epi32(isum, _mm256_setr_epi32(32 * corr, 0, 0, 0, 0, 0, 0, 0));
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_set1_ps(f16(w + 208) * a->d), acc);
    }
    return hsum(acc);
}

/* ---- IQ types ------------------------------------------------------------------------------
 * A run of 32 weights is built as 32 bytes of grid values (the grid points of its 4 groups, or 8
 * half-groups for IQ3, loaded by index as 64/32-bit words), the signs are moved onto the
 * activations (_mm256_sign_epi8 with +-1 from the run's 32 sign bits), and the run is summed like
 * the K-quants' runs: maddubs to pair sums, madd with the run's odd scale 2s + 1 (per pair of
 * groups for IQ2_XS / IQ2_S / IQ1_M: lanes 0-7 hold groups 0-1, lanes 8-15 groups 2-3), scaled
 * once per super-block. IQ1 values g + delta are summed in eighths as 8g + delta (|.| <= 9, signed,
 * so |v| times sign(a, v) as Q8_0); IQ4 levels come from a byte shuffle of the 16 levels. */

/* 32 bytes, byte i = -1 if bit i of bits is set, else +1 */
AVX2 static inline __m256i signs_pm1(uint32_t bits) {
    const __m256i shuf = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2,
                                          2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
    const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ull);
    __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32((int)bits), shuf);
    v = _mm256_cmpeq_epi8(_mm256_and_si256(v, bit), bit); /* 0xFF where set */
    return _mm256_or_si256(v, _mm256_set1_epi8(1));
}

/* For a 7-bit sign index s: the 8 bytes +-1 of a group, byte j = -1 where bit j of
 * vkm_iq_signs(s) is set (s with its parity as bit 7), else +1. */
static const uint64_t k_signs_pm1[128] = {
    0x0101010101010101ull, 0xff010101010101ffull, 0xff0101010101ff01ull, 0x010101010101ffffull,
    0xff01010101ff0101ull, 0x0101010101ff01ffull, 0x0101010101ffff01ull, 0xff01010101ffffffull,
    0xff010101ff010101ull, 0x01010101ff0101ffull, 0x01010101ff01ff01ull, 0xff010101ff01ffffull,
    0x01010101ffff0101ull, 0xff010101ffff01ffull, 0xff010101ffffff01ull, 0x01010101ffffffffull,
    0xff0101ff01010101ull, 0x010101ff010101ffull, 0x010101ff0101ff01ull, 0xff0101ff0101ffffull,
    0x010101ff01ff0101ull, 0xff0101ff01ff01ffull, 0xff0101ff01ffff01ull, 0x010101ff01ffffffull,
    0x010101ffff010101ull, 0xff0101ffff0101ffull, 0xff0101ffff01ff01ull, 0x010101ffff01ffffull,
    0xff0101ffffff0101ull, 0x010101ffffff01ffull, 0x010101ffffffff01ull, 0xff0101ffffffffffull,
    0xff01ff0101010101ull, 0x0101ff01010101ffull, 0x0101ff010101ff01ull, 0xff01ff010101ffffull,
    0x0101ff0101ff0101ull, 0xff01ff0101ff01ffull, 0xff01ff0101ffff01ull, 0x0101ff0101ffffffull,
    0x0101ff01ff010101ull, 0xff01ff01ff0101ffull, 0xff01ff01ff01ff01ull, 0x0101ff01ff01ffffull,
    0xff01ff01ffff0101ull, 0x0101ff01ffff01ffull, 0x0101ff01ffffff01ull, 0xff01ff01ffffffffull,
    0x0101ffff01010101ull, 0xff01ffff010101ffull, 0xff01ffff0101ff01ull, 0x0101ffff0101ffffull,
    0xff01ffff01ff0101ull, 0x0101ffff01ff01ffull, 0x0101ffff01ffff01ull, 0xff01ffff01ffffffull,
    0xff01ffffff010101ull, 0x0101ffffff0101ffull, 0x0101ffffff01ff01ull, 0xff01ffffff01ffffull,
    0x0101ffffffff0101ull, 0xff01ffffffff01ffull, 0xff01ffffffffff01ull, 0x0101ffffffffffffull,
    0xffff010101010101ull, 0x01ff0101010101ffull, 0x01ff01010101ff01ull, 0xffff01010101ffffull,
    0x01ff010101ff0101ull, 0xffff010101ff01ffull, 0xffff010101ffff01ull, 0x01ff010101ffffffull,
    0x01ff0101ff010101ull, 0xffff0101ff0101ffull, 0xffff0101ff01ff01ull, 0x01ff0101ff01ffffull,
    0xffff0101ffff0101ull, 0x01ff0101ffff01ffull, 0x01ff0101ffffff01ull, 0xffff0101ffffffffull,
    0x01ff01ff01010101ull, 0xffff01ff010101ffull, 0xffff01ff0101ff01ull, 0x01ff01ff0101ffffull,
    0xffff01ff01ff0101ull, 0x01ff01ff01ff01ffull, 0x01ff01ff01ffff01ull, 0xffff01ff01ffffffull,
    0xffff01ffff010101ull, 0x01ff01ffff0101ffull, 0x01ff01ffff01ff01ull, 0xffff01ffff01ffffull,
    0x01ff01ffffff0101ull, 0xffff01ffffff01ffull, 0xffff01ffffffff01ull, 0x01ff01ffffffffffull,
    0x01ffff0101010101ull, 0xffffff01010101ffull, 0xffffff010101ff01ull, 0x01ffff010101ffffull,
    0xffffff0101ff0101ull, 0x01ffff0101ff01ffull, 0x01ffff0101ffff01ull, 0xffffff0101ffffffull,
    0xffffff01ff010101ull, 0x01ffff01ff0101ffull, 0x01ffff01ff01ff01ull, 0xffffff01ff01ffffull,
    0x01ffff01ffff0101ull, 0xffffff01ffff01ffull, 0xffffff01ffffff01ull, 0x01ffff01ffffffffull,
    0xffffffff01010101ull, 0x01ffffff010101ffull, 0x01ffffff0101ff01ull, 0xffffffff0101ffffull,
    0x01ffffff01ff0101ull, 0xffffffff01ff01ffull, 0xffffffff01ffff01ull, 0x01ffffff01ffffffull,
    0x01ffffffff010101ull, 0xffffffffff0101ffull, 0xffffffffff01ff01ull, 0x01ffffffff01ffffull,
    0xffffffffffff0101ull, 0x01ffffffffff01ffull, 0x01ffffffffffff01ull, 0xffffffffffffffffull,
};

/* the +-1 bytes of a run's 4 groups from their 7-bit sign indices s0..s3 */
AVX2 static inline __m256i signs7_pm1(uint32_t s0, uint32_t s1, uint32_t s2, uint32_t s3) {
    return _mm256_setr_epi64x((long long)k_signs_pm1[s0 & 127u], (long long)k_signs_pm1[s1 & 127u],
                              (long long)k_signs_pm1[s2 & 127u], (long long)k_signs_pm1[s3 & 127u]);
}

/* the same from the sign indices at bits 7l of aux (IQ2_XXS, IQ3_XXS) */
AVX2 static inline __m256i signs_of_aux(uint32_t aux) {
    return signs7_pm1(aux, aux >> 7, aux >> 14, aux >> 21);
}

/* the 8 bytes of point i of a two-words-per-point grid */
static inline long long grid64(const uint32_t *grid, uint32_t i) {
    uint64_t v;
    memcpy(&v, grid + 2 * i, 8);
    return (long long)v;
}

/* int32 lanes += sum of g * sign * q over the run, times scale16 per int16 lane pair; pm1 the
 * signs as +-1 bytes */
AVX2 static inline __m256i run_sum(__m256i g, __m256i pm1, const int8_t *q, __m256i scale16) {
    return mul_sum(g, _mm256_sign_epi8(load32(q), pm1), scale16);
}

AVX2 static inline __m256i pair_scales(int s01, int s23) {
    return _mm256_setr_m128i(_mm_set1_epi16((short)s01), _mm_set1_epi16((short)s23));
}

AVX2 static float dot_iq2_xxs(const uint8_t *w, const void *act, int64_t k) {
    const vkm_cpu_q8k *a = act;
    __m256 acc = _mm256_setzero_ps();
    for (int64_t sb = 0; sb < k / 256; sb++, w += 66, a++) {
        __m256i isum = _mm256_setzero_si256();
        for (int ib = 0; ib < 8; ib++) {
            const uint8_t *run = w + 2 + 8 * ib;
            uint32_t aux;
            memcpy(&aux, run + 4, 4);
            const __m256i g = _mm256_setr_epi64x(
                grid64(vkm_iq2xxs_grid, run[0]), grid64(vkm_iq2xxs_grid, run[1]),
                grid64(vkm_iq2xxs_grid, run[2]), grid64(vkm_iq2xxs_grid, run[3]));
            isum = _mm256_add_epi32(isum, run_sum(g, signs_of_aux(aux), a->q + 32 * ib,
                                                  _mm256_set1_epi16((short)(2 * (aux >> 28) + 1))));
        }
        acc =
            _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_set1_ps(f16(w) * a->d * 0.125f), acc);
    }
    return hsum(acc);
}

AVX2 static float dot_iq2_xs(const uint8_t *w, const void *act, int64_t k) {
    const vkm_cpu_q8k *a = act;
    __m256 acc = _mm256_setzero_ps();
    for (int64_t sb = 0; sb < k / 256; sb++, w += 74, a++) {
        __m256i isum = _mm256_setzero_si256();
        for (int ib = 0; ib < 8; ib++) {
            uint16_t q[4];
            memcpy(q, w + 2 + 8 * ib, 8);
            const __m256i g = _mm256_setr_epi64x(
                grid64(vkm_iq2xs_grid, q[0] & 511u), grid64(vkm_iq2xs_grid, q[1] & 511u),
                grid64(vkm_iq2xs_grid, q[2] & 511u), grid64(vkm_iq2xs_grid, q[3] & 511u));
            const __m256i sg = signs7_pm1(q[0] >> 9, q[1] >> 9, q[2] >> 9, q[3] >> 9);
            const int sc = w[66 + ib];
            isum =
                _mm256_add_epi32(isum, run_sum(g, sg, a->q + 32 * ib,
                                               pair_scales(2 * (sc & 0xF) + 1, 2 * (sc >> 4) + 1)));
        }
        acc =
            _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_set1_ps(f16(w) * a->d * 0.125f), acc);
    }
    return hsum(acc);
}

AVX2 static float dot_iq2_s(const uint8_t *w, const void *act, int64_t k) {
    const vkm_cpu_q8k *a = act;
    __m256 acc = _mm256_setzero_ps();
    for (int64_t sb = 0; sb < k / 256; sb++, w += 82, a++) {
        const uint8_t *qs = w + 2, *sgs = w + 34, *qh = w + 66, *scs = w + 74;
        __m256i isum = _mm256_setzero_si256();
        for (int ib = 0; ib < 8; ib++) {
            const uint32_t h = qh[ib];
            const __m256i g =
                _mm256_setr_epi64x(grid64(vkm_iq2s_grid, qs[4 * ib] | (h & 3u) << 8),
                                   grid64(vkm_iq2s_grid, qs[4 * ib + 1] | (h << 6 & 0x300u)),
                                   grid64(vkm_iq2s_grid, qs[4 * ib + 2] | (h << 4 & 0x300u)),
                                   grid64(vkm_iq2s_grid, qs[4 * ib + 3] | (h << 2 & 0x300u)));
            uint32_t sg;
            memcpy(&sg, sgs + 4 * ib, 4);
            const int sc = scs[ib];
            isum =
                _mm256_add_epi32(isum, run_sum(g, signs_pm1(sg), a->q + 32 * ib,
                                               pair_scales(2 * (sc & 0xF) + 1, 2 * (sc >> 4) + 1)));
        }
        acc =
            _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_set1_ps(f16(w) * a->d * 0.125f), acc);
    }
    return hsum(acc);
}

AVX2 static float dot_iq3_xxs(const uint8_t *w, const void *act, int64_t k) {
    const vkm_cpu_q8k *a = act;
    __m256 acc = _mm256_setzero_ps();
    for (int64_t sb = 0; sb < k / 256; sb++, w += 98, a++) {
        const uint8_t *qs = w + 2;
        __m256i isum = _mm256_setzero_si256();
        for (int ib = 0; ib < 8; ib++) {
            const uint8_t *p = qs + 8 * ib;
            uint32_t aux;
            memcpy(&aux, w + 66 + 4 * ib, 4);
            const __m256i g = _mm256_setr_epi32(
                (int)vkm_iq3xxs_grid[p[0]], (int)vkm_iq3xxs_grid[p[1]], (int)vkm_iq3xxs_grid[p[2]],
                (int)vkm_iq3xxs_grid[p[3]], (int)vkm_iq3xxs_grid[p[4]], (int)vkm_iq3xxs_grid[p[5]],
                (int)vkm_iq3xxs_grid[p[6]], (int)vkm_iq3xxs_grid[p[7]]);
            isum = _mm256_add_epi32(isum, run_sum(g, signs_of_aux(aux), a->q + 32 * ib,
                                                  _mm256_set1_epi16((short)(2 * (aux >> 28) + 1))));
        }
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_set1_ps(f16(w) * a->d * 0.25f), acc);
    }
    return hsum(acc);
}

AVX2 static float dot_iq3_s(const uint8_t *w, const void *act, int64_t k) {
    const vkm_cpu_q8k *a = act;
    __m256 acc = _mm256_setzero_ps();
    for (int64_t sb = 0; sb < k / 256; sb++, w += 110, a++) {
        const uint8_t *qs = w + 2, *qh = w + 66, *sgs = w + 74, *scs = w + 106;
        __m256i isum = _mm256_setzero_si256();
        for (int ib = 0; ib < 8; ib++) {
            const uint8_t *p = qs + 8 * ib;
            const uint32_t h = qh[ib];
            /* half-group i's index: qs[8ib + i] with bit i of qh[ib] as bit 8 */
            const __m256i g = _mm256_setr_epi32((int)vkm_iq3s_grid[p[0] | (h << 8 & 256u)],
                                                (int)vkm_iq3s_grid[p[1] | (h << 7 & 256u)],
                                                (int)vkm_iq3s_grid[p[2] | (h << 6 & 256u)],
                                                (int)vkm_iq3s_grid[p[3] | (h << 5 & 256u)],
                                                (int)vkm_iq3s_grid[p[4] | (h << 4 & 256u)],
                                                (int)vkm_iq3s_grid[p[5] | (h << 3 & 256u)],
                                                (int)vkm_iq3s_grid[p[6] | (h << 2 & 256u)],
                                                (int)vkm_iq3s_grid[p[7] | (h << 1 & 256u)]);
            uint32_t sg;
            memcpy(&sg, sgs + 4 * ib, 4);
            const int s = ib % 2 == 0 ? scs[ib / 2] & 0xF : scs[ib / 2] >> 4;
            isum = _mm256_add_epi32(isum, run_sum(g, signs_pm1(sg), a->q + 32 * ib,
                                                  _mm256_set1_epi16((short)(2 * s + 1))));
        }
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_set1_ps(f16(w) * a->d), acc);
    }
    return hsum(acc);
}

/* the 8 bytes g + 1 (0..2) of IQ1 grid point i */
static inline long long iq1_grid64(uint32_t i) {
    const uint32_t g = vkm_iq1s_grid[i];
    return (long long)((g & 0x0F0F0F0Fu) | (uint64_t)((g >> 4) & 0x0F0F0F0Fu) << 32);
}

/* sum over a run of (8g + delta) * q times scale16: u = g + 1 bytes, off = delta - 8 bytes */
AVX2 static inline __m256i iq1_run(__m256i u, __m256i off, const int8_t *q, __m256i scale16) {
    const __m256i v = _mm256_add_epi8(_mm256_slli_epi16(u, 3), off); /* 8u <= 16: no carry */
    return mul_sum(_mm256_sign_epi8(v, v), _mm256_sign_epi8(load32(q), v), scale16);
}

AVX2 static float dot_iq1_s(const uint8_t *w, const void *act, int64_t k) {
    const vkm_cpu_q8k *a = act;
    __m256 acc = _mm256_setzero_ps();
    for (int64_t sb = 0; sb < k / 256; sb++, w += 50, a++) {
        const uint8_t *qs = w + 2;
        __m256i isum = _mm256_setzero_si256();
        for (int ib = 0; ib < 8; ib++) {
            uint16_t h16;
            memcpy(&h16, w + 34 + 2 * ib, 2);
            const uint32_t h = h16;
            const __m256i u = _mm256_setr_epi64x(iq1_grid64(qs[4 * ib] | (h << 8 & 0x700u)),
                                                 iq1_grid64(qs[4 * ib + 1] | (h << 5 & 0x700u)),
                                                 iq1_grid64(qs[4 * ib + 2] | (h << 2 & 0x700u)),
                                                 iq1_grid64(qs[4 * ib + 3] | (h >> 1 & 0x700u)));
            const __m256i off = _mm256_set1_epi8(h & 0x8000u ? -9 : -7);
            isum =
                _mm256_add_epi32(isum, iq1_run(u, off, a->q + 32 * ib,
                                               _mm256_set1_epi16((short)(2 * (h >> 12 & 7u) + 1))));
        }
        acc =
            _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_set1_ps(f16(w) * a->d * 0.125f), acc);
    }
    return hsum(acc);
}

AVX2 static float dot_iq1_m(const uint8_t *w, const void *act, int64_t k) {
    const vkm_cpu_q8k *a = act;
    __m256 acc = _mm256_setzero_ps();
    for (int64_t sb = 0; sb < k / 256; sb++, w += 56, a++) {
        const uint8_t *qs = w, *qh = w + 32;
        uint16_t sc[4];
        memcpy(sc, w + 48, 8);
        const uint16_t db = (uint16_t)((sc[0] >> 12) | ((sc[1] >> 8) & 0xF0u) |
                                       ((sc[2] >> 4) & 0xF00u) | (sc[3] & 0xF000u));
        __m256i isum = _mm256_setzero_si256();
        for (int ib = 0; ib < 8; ib++) {
            const uint32_t h0 = qh[2 * ib], h1 = qh[2 * ib + 1];
            const __m256i u = _mm256_setr_epi64x(iq1_grid64(qs[4 * ib] | (h0 << 8 & 0x700u)),
                                                 iq1_grid64(qs[4 * ib + 1] | (h0 << 4 & 0x700u)),
                                                 iq1_grid64(qs[4 * ib + 2] | (h1 << 8 & 0x700u)),
                                                 iq1_grid64(qs[4 * ib + 3] | (h1 << 4 & 0x700u)));
            const long long m9 = (long long)0xF7F7F7F7F7F7F7F7ull,
                            m7 = (long long)0xF9F9F9F9F9F9F9F9ull;
            const __m256i off = _mm256_setr_epi64x(h0 & 8u ? m9 : m7, h0 & 0x80u ? m9 : m7,
                                                   h1 & 8u ? m9 : m7, h1 & 0x80u ? m9 : m7);
            const uint32_t s = (uint32_t)sc[ib / 2] >> (6 * (ib % 2));
            isum = _mm256_add_epi32(
                isum, iq1_run(u, off, a->q + 32 * ib,
                              pair_scales((int)(2 * (s & 7u) + 1), (int)(2 * (s >> 3 & 7u) + 1))));
        }
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum),
                              _mm256_set1_ps(vkm_fp16_to_f32(db) * a->d * 0.125f), acc);
    }
    return hsum(acc);
}

/* the 32 IQ4 levels of a 16-byte run in Q4_0's nibble order, as signed bytes */
AVX2 static inline __m256i iq4_levels(const uint8_t *qs) {
    const __m256i lut =
        _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)vkm_iq4nl_values));
    return _mm256_shuffle_epi8(lut, nibbles16(qs));
}

AVX2 static float dot_iq4_nl(const uint8_t *w, const void *act, int64_t k) {
    const vkm_cpu_q8 *a = act;
    const __m256i ones = _mm256_set1_epi16(1);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t b = 0; b < k / 32; b++, w += 18) {
        const __m256i v = iq4_levels(w + 2); /* no level is 0 */
        __m256i p = mul_sum(_mm256_sign_epi8(v, v), _mm256_sign_epi8(load32(a[b].q), v), ones);
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_set1_ps(f16(w) * a[b].d), acc);
    }
    return hsum(acc);
}

AVX2 static float dot_iq4_xs(const uint8_t *w, const void *act, int64_t k) {
    const vkm_cpu_q8k *a = act;
    __m256 acc = _mm256_setzero_ps();
    for (int64_t sb = 0; sb < k / 256; sb++, w += 136, a++) {
        uint16_t sh;
        memcpy(&sh, w + 2, 2);
        __m256i isum = _mm256_setzero_si256();
        for (int ib = 0; ib < 8; ib++) {
            const int s = (int)(((uint32_t)(w[4 + ib / 2] >> (4 * (ib % 2))) & 0xFu) |
                                ((uint32_t)(sh >> (2 * ib)) & 3u) << 4) -
                          32;
            const __m256i v = iq4_levels(w + 8 + 16 * ib);
            isum = _mm256_add_epi32(isum, mul_sum(_mm256_sign_epi8(v, v),
                                                  _mm256_sign_epi8(load32(a->q + 32 * ib), v),
                                                  _mm256_set1_epi16((short)s)));
        }
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_set1_ps(f16(w) * a->d), acc);
    }
    return hsum(acc);
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
    case VKM_IQ1_S:
        return dot_iq1_s;
    case VKM_IQ1_M:
        return dot_iq1_m;
    case VKM_IQ2_XXS:
        return dot_iq2_xxs;
    case VKM_IQ2_XS:
        return dot_iq2_xs;
    case VKM_IQ2_S:
        return dot_iq2_s;
    case VKM_IQ3_XXS:
        return dot_iq3_xxs;
    case VKM_IQ3_S:
        return dot_iq3_s;
    case VKM_IQ4_NL:
        return dot_iq4_nl;
    case VKM_IQ4_XS:
        return dot_iq4_xs;
    default:
        return NULL;
    }
}

int vkm_cpu_avx2_usable(void) {
    __builtin_cpu_init();
    /* F16C from CPUID leaf 1, ECX bit 29 (clang's __builtin_cpu_supports does not know "f16c") */
    unsigned eax, ebx, ecx = 0, edx;
    const bool f16c = __get_cpuid(1, &eax, &ebx, &ecx, &edx) && (ecx >> 29 & 1u);
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && f16c;
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
