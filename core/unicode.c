/* unicode.c - strict UTF-8 decoding/encoding helpers (see unicode.h).
 *
 * The validity rules are those of RFC 3629 table 3-7: lead bytes C2..F4, the second byte of
 * E0 / ED / F0 / F4 restricted so overlong forms, surrogates and values past U+10FFFF are
 * rejected, every other continuation byte 80..BF. */
#include "unicode.h"

#include <string.h>

/* Sequence length announced by a lead byte, 0 for bytes that cannot start a character. */
static size_t lead_len(uint8_t c) {
    if (c < 0x80) return 1;
    if (c < 0xC2) return 0;
    if (c < 0xE0) return 2;
    if (c < 0xF0) return 3;
    if (c < 0xF5) return 4;
    return 0;
}

/* Allowed range of the byte following lead byte c. */
static void second_range(uint8_t c, uint8_t *lo, uint8_t *hi) {
    *lo = 0x80;
    *hi = 0xBF;
    if (c == 0xE0) *lo = 0xA0;
    if (c == 0xED) *hi = 0x9F;
    if (c == 0xF0) *lo = 0x90;
    if (c == 0xF4) *hi = 0x8F;
}

/* Number of bytes of s[0..n) (n >= 1) that are a valid prefix of one character, and whether
 * that prefix is the complete character (*full). Returns 0 if s[0] is not a valid start. */
static size_t valid_prefix(const uint8_t *s, size_t n, bool *full) {
    size_t len = lead_len(s[0]);
    *full = false;
    if (len == 0) return 0;
    size_t i = 1;
    for (; i < len && i < n; i++) {
        uint8_t lo = 0x80, hi = 0xBF;
        if (i == 1) second_range(s[0], &lo, &hi);
        if (s[i] < lo || s[i] > hi) return 0;
    }
    *full = i == len;
    return i;
}

size_t vkm_utf8_decode(const char *s, size_t n, uint32_t *cp) {
    const uint8_t *u = (const uint8_t *)s;
    bool full;
    size_t len = valid_prefix(u, n, &full);
    if (!len || !full) return 0;
    uint32_t v;
    switch (len) {
    case 1:
        v = u[0];
        break;
    case 2:
        v = (uint32_t)(u[0] & 0x1F) << 6 | (u[1] & 0x3F);
        break;
    case 3:
        v = (uint32_t)(u[0] & 0x0F) << 12 | (uint32_t)(u[1] & 0x3F) << 6 | (u[2] & 0x3F);
        break;
    default:
        v = (uint32_t)(u[0] & 0x07) << 18 | (uint32_t)(u[1] & 0x3F) << 12 |
            (uint32_t)(u[2] & 0x3F) << 6 | (u[3] & 0x3F);
        break;
    }
    *cp = v;
    return len;
}

size_t vkm_utf8_encode(uint32_t cp, char *out) {
    uint8_t *o = (uint8_t *)out;
    if (cp < 0x80) {
        o[0] = (uint8_t)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (uint8_t)(0xC0 | cp >> 6);
        o[1] = (uint8_t)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (uint8_t)(0xE0 | cp >> 12);
        o[1] = (uint8_t)(0x80 | (cp >> 6 & 0x3F));
        o[2] = (uint8_t)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (uint8_t)(0xF0 | cp >> 18);
    o[1] = (uint8_t)(0x80 | (cp >> 12 & 0x3F));
    o[2] = (uint8_t)(0x80 | (cp >> 6 & 0x3F));
    o[3] = (uint8_t)(0x80 | (cp & 0x3F));
    return 4;
}

bool vkm_utf8_valid(const char *s, size_t n) {
    const uint8_t *u = (const uint8_t *)s;
    size_t i = 0;
    while (i < n) {
        if (u[i] < 0x80) {
            i++;
            continue;
        }
        bool full;
        size_t len = valid_prefix(u + i, n - i, &full);
        if (!len || !full) return false;
        i += len;
    }
    return true;
}

size_t vkm_utf8_sanitize(const char *s, size_t n, char *out) {
    const uint8_t *u = (const uint8_t *)s;
    size_t i = 0, o = 0;
    while (i < n) {
        bool full;
        size_t len = valid_prefix(u + i, n - i, &full);
        if (len && full) {
            memcpy(out + o, s + i, len);
            o += len;
            i += len;
        } else {
            o += vkm_utf8_encode(0xFFFD, out + o);
            i++;
        }
    }
    return o;
}

size_t vkm_utf8_complete_prefix(const char *s, size_t n) {
    const uint8_t *u = (const uint8_t *)s;
    /* An incomplete character is at most 3 bytes long: look for its lead in the last 3. */
    for (size_t back = 1; back <= 3 && back <= n; back++) {
        uint8_t c = u[n - back];
        if (c >= 0x80 && c < 0xC0) continue; /* continuation byte: keep looking for the lead */
        bool full;
        size_t len = valid_prefix(u + n - back, back, &full);
        /* Hold back only a valid-so-far sequence that needs more bytes than it has. */
        if (len == back && !full) return n - back;
        return n;
    }
    return n;
}
