/* tokenizer.h - the byte-level BPE tokenizer of DeepSeek GGUFs (spec §5, llama.cpp's "gpt2"
 * vocabulary type): load from a GGUF (a full model or a vocab-only file), encode text to token
 * ids, decode ids to bytes, and decode a stream of ids without ever splitting a UTF-8 character.
 *
 * A loaded vkm_tok owns copies of everything it needs; the vkm_gguf may be closed afterwards.
 * A vkm_tok is immutable after load, so one may be used from several threads at once (every
 * call allocates its own scratch). Token ids are int32 in [0, vkm_tok_n_vocab()). */
#ifndef VKM_TOKENIZER_H
#define VKM_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gguf.h"

/* Token types (tokenizer.ggml.token_type values). */
enum vkm_tok_type {
    VKM_TOK_UNDEFINED = 0,
    VKM_TOK_NORMAL = 1,
    VKM_TOK_UNKNOWN = 2,
    VKM_TOK_CONTROL = 3,
    VKM_TOK_USER_DEFINED = 4,
    VKM_TOK_UNUSED = 5,
    VKM_TOK_BYTE = 6,
};

/* Pre-tokenizer regex sets (tokenizer.ggml.pre). */
enum vkm_tok_pre {
    VKM_TOK_PRE_DEFAULT = 0, /* llama.cpp's default (missing or unknown `pre`) */
    VKM_TOK_PRE_DEEPSEEK_LLM = 1,
    VKM_TOK_PRE_DEEPSEEK_V3 = 2,
};

typedef struct vkm_tok vkm_tok;

/* Loads the tokenizer described by g's tokenizer.* keys. VKM_EUNSUPPORTED if the model type is
 * not "gpt2", VKM_EFORMAT for a missing or malformed vocabulary (message names the key),
 * VKM_ENOMEM. An unknown or missing tokenizer.ggml.pre selects the default regexes and prints
 * one warning line on stderr. */
int vkm_tok_load(const vkm_gguf *g, vkm_tok **out);
void vkm_tok_free(vkm_tok *t);

/* Encodes text[0..len) (any bytes; invalid UTF-8 outside special tokens becomes U+FFFD, like
 * llama.cpp). add_special: prepend BOS / append EOS as the model's add_bos/add_eos flags say.
 * parse_special: CONTROL and UNKNOWN token texts in `text` become their ids (USER_DEFINED ones
 * always do). On success *ids is a malloc'ed array of *n ids (NULL when *n == 0) the caller
 * frees with free(). VKM_ENOMEM, or VKM_EINVAL if the regex engine fails on the input. */
int vkm_tok_encode(const vkm_tok *t, const char *text, size_t len, bool add_special,
                   bool parse_special, int32_t **ids, size_t *n);

/* Decodes ids into a malloc'ed, NUL-terminated byte string (*len bytes, not counting the NUL;
 * it may contain NUL bytes) the caller frees with free(). NORMAL tokens give their bytes
 * (inverse GPT-2 byte mapping), USER_DEFINED and UNKNOWN tokens their text, CONTROL tokens their
 * text only if render_special, other types nothing. VKM_ERANGE for an id out of range. */
int vkm_tok_decode(const vkm_tok *t, const int32_t *ids, size_t n, bool render_special, char **text,
                   size_t *len);

/* The bytes one token decodes to (see vkm_tok_decode), valid for the life of t; *len gets the
 * length. VKM_ASSERTs that id is in range. */
const char *vkm_tok_piece(const vkm_tok *t, int32_t id, bool render_special, size_t *len);

/* ---- streaming decode: feed ids one at a time, get only complete UTF-8 characters ----
 * A trailing incomplete (but so far valid) UTF-8 sequence is held back until the next token
 * completes it; bytes that can never form a character are passed through. */
typedef struct vkm_tok_stream vkm_tok_stream;

int vkm_tok_stream_create(const vkm_tok *t, bool render_special, vkm_tok_stream **out);
void vkm_tok_stream_destroy(vkm_tok_stream *s);
/* Appends token `id`; *text and *len get the bytes ready to print (possibly none), valid until the
 * next call on s. VKM_ERANGE for an id out of range (nothing is consumed). */
int vkm_tok_stream_put(vkm_tok_stream *s, int32_t id, const char **text, size_t *len);
/* Returns whatever is held back (an incomplete character at the end of the output) and resets
 * the stream. */
void vkm_tok_stream_flush(vkm_tok_stream *s, const char **text, size_t *len);

/* ---- vocabulary ---- */
int32_t vkm_tok_n_vocab(const vkm_tok *t);
int32_t vkm_tok_bos(const vkm_tok *t); /* -1 if none */
int32_t vkm_tok_eos(const vkm_tok *t); /* -1 if none */
int32_t vkm_tok_eot(const vkm_tok *t); /* `<｜end▁of▁sentence｜>` or tokenizer.ggml.eot_token_id */
int32_t vkm_tok_pad(const vkm_tok *t); /* -1 if none */
/* True for end-of-generation tokens (EOS, EOT). */
bool vkm_tok_is_eog(const vkm_tok *t, int32_t id);
bool vkm_tok_add_bos(const vkm_tok *t);
bool vkm_tok_add_eos(const vkm_tok *t);
enum vkm_tok_pre vkm_tok_pre_type(const vkm_tok *t);
/* Token text as stored in the vocabulary (byte-level encoded for NORMAL tokens). NUL-terminated;
 * *len (optional) gets the length. NULL if id is out of range. */
const char *vkm_tok_text(const vkm_tok *t, int32_t id, size_t *len);
/* enum vkm_tok_type of id; VKM_TOK_UNDEFINED if out of range. */
int vkm_tok_type(const vkm_tok *t, int32_t id);
/* Exact lookup of a token text; -1 if absent. */
int32_t vkm_tok_find(const vkm_tok *t, const char *text, size_t len);
/* tokenizer.chat_template, or NULL if the file has none. */
const char *vkm_tok_chat_template(const vkm_tok *t);

#endif
