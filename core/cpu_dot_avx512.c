/* cpu_dot_avx512.c - AVX-512 (F, BW, VL, DQ) + VNNI versions of the dot kernels of cpu_dot.h
 * for the types where they beat the AVX2 ones: Q8_0, Q4_0, Q4_K and Q6_K. Any other type
 * returns NULL here and uses the AVX2 kernel.
 *
 * Compiled without -mavx512*: every function carries the target attribute, and cpu_matmul.c
 * calls these only when vkm_cpu_avx512_usable() says the CPU has all five extensions and the OS
 * saves the ZMM state (XCR0 bits 1, 2, 5, 6, 7). On other architectures the file is empty apart
 * from the "none" answers.
 *
 * Pattern: 64 bytes of weights per instruction. The blocks of 32 (Q8_0, Q4_0) go two at a time
 * (the tail block with the 256-bit VNNI form), the unsigned weight bytes times the signed
 * activations summed by vpdpbusd (_mm512_dpbusd_epi32: 4 products per int32 lane, no int16
 * step), the two blocks' int32 lanes converted and scaled by their own d_w * d_a in one FMA. The
 * K-quants take two runs of 32 per instruction: maddubs to int16 pair sums, then vpdpwssd
 * (_mm512_dpwssd_epi32) multiplies by the run's scale and accumulates in int32 in one step, the
 * super-block scaled once. Offsets and mins as in cpu_dot_avx2.c. */
#include "cpu_dot.h"

#include <string.h>

#include "qtype.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))

#include <cpuid.h>
#include <immintrin.h>
#include <stdbool.h>

#define AVX512                                                                                     \
    __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512dq,avx512vnni")))

AVX512 static inline float f16(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return _cvtsh_ss(h);
}

AVX512 static inline __m256i load32(const void *p) {
    return _mm256_loadu_si256((const __m256i *)p);
}

AVX512 static inline __m512i join(__m256i lo, __m256i hi) {
    return _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
}

/* 8 lanes of a then 8 lanes of b */
AVX512 static inline __m512 join_ps(float a, float b) {
    return _mm512_insertf32x8(_mm512_set1_ps(a), _mm256_set1_ps(b), 1);
}

AVX512 static inline float hsum256(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* Q4_0's 32 nibbles of a block (low nibbles = elements 0-15, high = 16-31) as bytes */
AVX512 static inline __m256i nibbles16(const uint8_t *qs) {
    __m128i v = _mm_loadu_si128((const __m128i *)qs);
    const __m128i m = _mm_set1_epi8(0x0F);
    return _mm256_setr_m128i(_mm_and_si128(v, m), _mm_and_si128(_mm_srli_epi16(v, 4), m));
}

/* ---- blocks of 32 ---------------------------------------------------------------------- */

/* |w| and a with w's sign, for vpdpbusd's unsigned x signed product (|w| <= 128 fits a byte) */
AVX512 static inline __m512i dot64_signed(__m512i wq, __m512i aq) {
    const __mmask64 neg = _mm512_movepi8_mask(wq);
    const __m512i aw = _mm512_mask_sub_epi8(aq, neg, _mm512_setzero_si512(), aq);
    return _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_abs_epi8(wq), aw);
}

AVX512 static float dot_q8_0(const uint8_t *w, const void *act, int64_t k) {
    const vkm_cpu_q8 *a = act;
    const int64_t nb = k / 32;
    __m512 acc = _mm512_setzero_ps();
    int64_t b = 0;
    for (; b + 2 <= nb; b += 2, w += 68) {
        const __m512i wq = join(load32(w + 2), load32(w + 36));
        const __m512i aq = join(load32(a[b].q), load32(a[b + 1].q));
        const __m512 dd = join_ps(f16(w) * a[b].d, f16(w + 34) * a[b + 1].d);
        acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot64_signed(wq, aq)), dd, acc);
    }
    float s = _mm512_reduce_add_ps(acc);
    if (b < nb) {
        const __m256i wq = load32(w + 2), aq = load32(a[b].q);
        __m256i p = _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_sign_epi8(wq, wq),
                                        _mm256_sign_epi8(aq, wq));
        s += hsum256(_mm256_cvtepi32_ps(p)) * f16(w) * a[b].d;
    }
    return s;
}

AVX512 static float dot_q4_0(const uint8_t *w, const void *act, int64_t k) {
    const vkm_cpu_q8 *a = act;
    const int64_t nb = k / 32;
    const __m512i eight = _mm512_set1_epi8(8);
    __m512 acc = _mm512_setzero_ps();
    int64_t b = 0;
    for (; b + 2 <= nb; b += 2, w += 36) {
        const float d0 = f16(w) * a[b].d, d1 = f16(w + 18) * a[b + 1].d;
        const __m512i u = join(nibbles16(w + 2), nibbles16(w + 20));
        const __m512i aq = join(load32(a[b].q), load32(a[b + 1].q));
        /* sum (u - 8) * a as sum u * a - sum 8 * a, both by vpdpbusd */
        const __m512i p = _mm512_sub_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), u, aq),
                                           _mm512_dpbusd_epi32(_mm512_setzero_si512(), eight, aq));
        acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p), join_ps(d0, d1), acc);
    }
    float s = _mm512_reduce_add_ps(acc);
    if (b < nb) {
        const float dd = f16(w) * a[b].d;
        __m256i p = _mm256_dpbusd_epi32(_mm256_setzero_si256(), nibbles16(w + 2), load32(a[b].q));
        s += dd * (hsum256(_mm256_cvtepi32_ps(p)) - (float)(8 * (a[b].s[0] + a[b].s[1])));
    }
    return s;
}

/* ---- K-quants: two runs of 32 per instruction, scaled in int32 by vpdpwssd ------------------ */

/* int16 lane i of the result = scale (i / 16) + 2c of the 8 scales in sc8 (int16 lanes 0-7):
 * runs 2c and 2c + 1, each 16 int16 pair-sum lanes */
AVX512 static inline __m512i two_run_scales(__m512i sc8, int c) {
    const __m512i idx = _mm512_inserti64x4(_mm512_set1_epi16((short)(2 * c)),
                                           _mm256_set1_epi16((short)(2 * c + 1)), 1);
    return _mm512_permutexvar_epi16(idx, sc8);
}

/* The 8 6-bit scales and mins of a Q4_K super-block (as cpu_dot_avx2.c's k_scales_mins). */
static inline void k_scales_mins(const uint8_t *b, uint64_t *sc, uint64_t *m) {
    uint32_t w0, w1, w2;
    memcpy(&w0, b, 4);
    memcpy(&w1, b + 4, 4);
    memcpy(&w2, b + 8, 4);
    const uint32_t lo6 = 0x3F3F3F3Fu, nib = 0x0F0F0F0Fu, top2 = 0x30303030u;
    *sc = (w0 & lo6) | (uint64_t)((w2 & nib) | ((w0 >> 2) & top2)) << 32;
    *m = (w1 & lo6) | (uint64_t)(((w2 >> 4) & nib) | ((w1 >> 2) & top2)) << 32;
}

/* sum over the 8 runs j of m_j * (s[2j] + s[2j + 1]) */
AVX512 static inline int k_mins(uint64_t m, const int16_t *s) {
    const __m128i lo = _mm_loadu_si128((const __m128i *)s),
                  hi = _mm_loadu_si128((const __m128i *)(s + 8));
    const __m128i pairs = _mm_hadd_epi16(lo, hi);
    const __m128i mv = _mm_cvtepu8_epi16(_mm_cvtsi64_si128((long long)m));
    __m128i p = _mm_madd_epi16(pairs, mv);
    p = _mm_add_epi32(p, _mm_shuffle_epi32(p, 0x4E));
    p = _mm_add_epi32(p, _mm_shuffle_epi32(p, 0xB1));
    return _mm_cvtsi128_si32(p);
}

AVX512 static float dot_q4_k(const uint8_t *w, const void *act, int64_t k) {
    const vkm_cpu_q8k *a = act;
    const __m512i m4 = _mm512_set1_epi8(0x0F);
    __m512 acc = _mm512_setzero_ps();
    float off = 0;
    for (int64_t sb = 0; sb < k / 256; sb++, w += 144, a++) {
        uint64_t scw, mw;
        k_scales_mins(w + 4, &scw, &mw);
        const int mins = k_mins(mw, a->s);
        const __m512i sc8 =
            _mm512_castsi128_si512(_mm_cvtepu8_epi16(_mm_cvtsi64_si128((long long)scw)));
        __m512i isum = _mm512_setzero_si512();
#pragma GCC unroll 4
        for (int c = 0; c < 4; c++) {
            /* chunk c: low nibbles are run 2c, high nibbles run 2c + 1 (elements 64c ..) */
            const __m256i qs = load32(w + 16 + 32 * c);
            const __m512i u = _mm512_and_si512(join(qs, _mm256_srli_epi16(qs, 4)), m4);
            const __m512i aq = _mm512_loadu_si512((const void *)(a->q + 64 * c));
            isum = _mm512_dpwssd_epi32(isum, _mm512_maddubs_epi16(u, aq), two_run_scales(sc8, c));
        }
        acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_set1_ps(f16(w) * a->d), acc);
        off += f16(w + 2) * a->d * (float)mins;
    }
    return _mm512_reduce_add_ps(acc) - off;
}

/* sum of sc[j] * s[j] over the 16 signed scales (the -32 offset of Q6_K) */
AVX512 static inline int scale_dot16(__m256i sc16, const int16_t *s) {
    __m256i p = _mm256_madd_epi16(sc16, _mm256_loadu_si256((const __m256i *)s));
    __m128i q = _mm_add_epi32(_mm256_castsi256_si128(p), _mm256_extracti128_si256(p, 1));
    q = _mm_add_epi32(q, _mm_shuffle_epi32(q, 0x4E));
    q = _mm_add_epi32(q, _mm_shuffle_epi32(q, 0xB1));
    return _mm_cvtsi128_si32(q);
}

AVX512 static float dot_q6_k(const uint8_t *w, const void *act, int64_t k) {
    const vkm_cpu_q8k *a = act;
    const __m512i m4 = _mm512_set1_epi8(0x0F), m2 = _mm512_set1_epi8(0x30);
    /* qh bits 2g, 2g + 1 to bits 4, 5: g = 0 / 1 in the two halves, then g = 2 / 3 */
    const __m512i sh01 = _mm512_inserti64x4(_mm512_set1_epi16(4), _mm256_set1_epi16(2), 1);
    const __m512i sh23 = _mm512_inserti64x4(_mm512_set1_epi16(0), _mm256_set1_epi16(2), 1);
    __m512 acc = _mm512_setzero_ps();
    float off = 0;
    for (int64_t sb = 0; sb < k / 256; sb++, w += 210, a++) {
        const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(w + 192)));
        const int corr = scale_dot16(sc16, a->s);
        const __m512i scz = _mm512_castsi256_si512(sc16);
        __m512i isum = _mm512_setzero_si512();
#pragma GCC unroll 2
        for (int h = 0; h < 2; h++) {
            /* runs 4h + g: g = 0, 1 low nibbles of ql[64h ..+32], [64h + 32 ..+32]; 2, 3 high */
            const __m512i l = _mm512_loadu_si512((const void *)(w + 64 * h));
            const __m512i qh = _mm512_broadcast_i64x4(load32(w + 128 + 32 * h));
            const __m512i u01 = _mm512_or_si512(_mm512_and_si512(l, m4),
                                                _mm512_and_si512(_mm512_sllv_epi16(qh, sh01), m2));
            const __m512i u23 = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(l, 4), m4),
                                                _mm512_and_si512(_mm512_srlv_epi16(qh, sh23), m2));
            /* int16 pair-sum lane i of runs ib, ib + 1 takes scale 2 ib + i / 8 */
            const int ib = 4 * h;
            const __m512i i01 = _mm512_add_epi16(
                _mm512_srli_epi16(_mm512_set_epi16(31, 30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 20,
                                                   19, 18, 17, 16, 15, 14, 13, 12, 11, 10, 9, 8, 7,
                                                   6, 5, 4, 3, 2, 1, 0),
                                  3),
                _mm512_set1_epi16((short)(2 * ib)));
            const __m512i i23 = _mm512_add_epi16(i01, _mm512_set1_epi16(4));
            const __m512i a01 = _mm512_loadu_si512((const void *)(a->q + 32 * ib));
            const __m512i a23 = _mm512_loadu_si512((const void *)(a->q + 32 * ib + 64));
            isum = _mm512_dpwssd_epi32(isum, _mm512_maddubs_epi16(u01, a01),
                                       _mm512_permutexvar_epi16(i01, scz));
            isum = _mm512_dpwssd_epi32(isum, _mm512_maddubs_epi16(u23, a23),
                                       _mm512_permutexvar_epi16(i23, scz));
        }
        const float dd = f16(w + 208) * a->d;
        acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_set1_ps(dd), acc);
        off += dd * (float)(32 * corr);
    }
    return _mm512_reduce_add_ps(acc) - off;
}

vkm_cpu_dot_fn vkm_cpu_dot_avx512(uint32_t type) {
    switch (type) {
    case VKM_Q4_0:
        return dot_q4_0;
    case VKM_Q8_0:
        return dot_q8_0;
    case VKM_Q4_K:
        return dot_q4_k;
    case VKM_Q6_K:
        return dot_q6_k;
    default:
        return NULL;
    }
}

int vkm_cpu_avx512_usable(void) {
    if (!vkm_cpu_avx2_usable()) return 0;
    unsigned eax, ebx, ecx, edx;
    if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx) || !(ecx >> 27 & 1u)) return 0; /* OSXSAVE */
    unsigned xlo, xhi;
    __asm__ volatile("xgetbv" : "=a"(xlo), "=d"(xhi) : "c"(0));
    if ((xlo & 0xE6u) != 0xE6u) return 0; /* XMM, YMM, opmask, ZMM_Hi256, Hi16_ZMM saved */
    if (!__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx)) return 0;
    const bool f = ebx >> 16 & 1u, dq = ebx >> 17 & 1u, bw = ebx >> 30 & 1u, vl = ebx >> 31 & 1u;
    const bool vnni = ecx >> 11 & 1u;
    return f && dq && bw && vl && vnni;
}

#else

vkm_cpu_dot_fn vkm_cpu_dot_avx512(uint32_t type) {
    (void)type;
    return NULL;
}

int vkm_cpu_avx512_usable(void) {
    return 0;
}

#endif
