/* unicode.h - small UTF-8 helpers for the tokenizer: strict decoding, encoding, sanitising and
 * the "how much of this buffer is complete characters" question streaming output needs.
 *
 * "Valid" here is strict UTF-8: no overlong forms, no surrogates (U+D800..U+DFFF), nothing above
 * U+10FFFF. Invalid input is never an error: the decoders report it so callers can substitute
 * U+FFFD for each bad byte (what llama.cpp does). */
#ifndef VKM_UNICODE_H
#define VKM_UNICODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Decodes one character at s[0..n), n >= 1. Returns its byte length (1..4) and sets *cp, or
 * returns 0 if the bytes there do not start a valid, complete character. */
size_t vkm_utf8_decode(const char *s, size_t n, uint32_t *cp);

/* Writes the UTF-8 form of cp (<= 0x10FFFF) to out (room for 4 bytes); returns its length. */
size_t vkm_utf8_encode(uint32_t cp, char *out);

/* True if s[0..n) is entirely valid UTF-8. */
bool vkm_utf8_valid(const char *s, size_t n);

/* Copies s[0..n) to out with every byte that does not belong to a valid character replaced by
 * U+FFFD (3 bytes). out needs room for 3*n bytes; returns the bytes written. */
size_t vkm_utf8_sanitize(const char *s, size_t n, char *out);

/* Length of the longest prefix of s[0..n) that does not end inside a character which could
 * still be completed by more bytes: a trailing valid-so-far but incomplete sequence (at most 3
 * bytes) is excluded, anything else (including invalid bytes) is included. */
size_t vkm_utf8_complete_prefix(const char *s, size_t n);

#endif
