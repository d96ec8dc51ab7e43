/* chat.h - chat templates of DeepSeek models (spec §6) and the <think> parser of R1 output.
 *
 * Pure string work, no I/O: choose a template (by name, or detected from the GGUF's
 * tokenizer.chat_template text the way llama.cpp's built-in templates are), render a message
 * list into the prompt text (no BOS: that comes from tokenization with add_special), and split
 * streamed model output into reasoning (between <think> and </think>) and answer.
 *
 * Templates reproduce llama.cpp's built-in "deepseek3" (V3, R1) and "deepseek2" (V2, V2-Lite)
 * byte for byte, with one R1 behaviour on top (on by default, like the official R1 Jinja
 * template): earlier assistant turns are re-sent without their reasoning. */
#ifndef VKM_CHAT_H
#define VKM_CHAT_H

#include <stdbool.h>
#include <stddef.h>

enum vkm_chat_template {
    VKM_CHAT_NONE = 0,
    VKM_CHAT_DEEPSEEK3 = 1, /* V3 / R1: <｜User｜>…<｜Assistant｜>…<｜end▁of▁sentence｜> */
    VKM_CHAT_DEEPSEEK2 = 2, /* V2: "User: …\n\nAssistant: …<｜end▁of▁sentence｜>" */
};

enum vkm_chat_role { VKM_CHAT_SYSTEM = 0, VKM_CHAT_USER = 1, VKM_CHAT_ASSISTANT = 2 };

typedef struct vkm_chat_msg {
    enum vkm_chat_role role;
    const char *content; /* NUL-terminated UTF-8 */
} vkm_chat_msg;

/* Template by name ("deepseek3", "deepseek2"); VKM_EINVAL naming the known ones otherwise. */
int vkm_chat_template_from_name(const char *name, enum vkm_chat_template *out);
/* Template detected from a tokenizer.chat_template text (spec §6); VKM_EUNSUPPORTED when text is
 * NULL or matches no known template (the message suggests --chat-template). */
int vkm_chat_template_detect(const char *text, enum vkm_chat_template *out);
/* For a file without tokenizer.chat_template: the template its vocabulary implies.
 * has_token(user, text) says whether a token with exactly that text exists. <｜User｜> and
 * <｜Assistant｜> (V3, R1) -> deepseek3; otherwise the words "User" and "Assistant" of the
 * DeepSeek-LLM / V2 vocabulary -> deepseek2; both need <｜end▁of▁sentence｜>. *why gets the
 * tokens that decided ("<｜User｜>/<｜Assistant｜>" or "User/Assistant"). VKM_EUNSUPPORTED
 * (suggesting --chat-template) when neither fits. */
int vkm_chat_template_infer(bool (*has_token)(void *user, const char *text), void *user,
                            enum vkm_chat_template *out, const char **why);
/* A Jinja tokenizer.chat_template text that renders as t does here (and that
 * vkm_chat_template_detect recognises), for files vkmoe writes; NULL for VKM_CHAT_NONE. */
const char *vkm_chat_template_jinja(enum vkm_chat_template t);
/* name if not NULL, else detection from text: the choice a tool makes. */
int vkm_chat_template_select(const char *name, const char *text, enum vkm_chat_template *out);
/* "deepseek3", "deepseek2" or "none". */
const char *vkm_chat_template_name(enum vkm_chat_template t);

typedef struct vkm_chat_render_opts {
    bool add_generation_prompt; /* end with the assistant prefix the model continues from */
    bool keep_thinking;         /* re-send earlier assistant turns verbatim (default: strip) */
} vkm_chat_render_opts;

/* Renders msgs[0..n) with template t into a malloc'ed NUL-terminated string (*len bytes) the
 * caller frees. opts NULL = zero options. VKM_EINVAL for a bad template, role or NULL content,
 * VKM_ENOMEM. */
int vkm_chat_render(enum vkm_chat_template t, const vkm_chat_msg *msgs, size_t n,
                    const vkm_chat_render_opts *opts, char **out, size_t *len);

/* The answer part of an assistant message as R1's template re-sends it: everything after the
 * last "</think>", minus the whitespace that follows it; content itself if it has no
 * "</think>". Returns a pointer into content. */
const char *vkm_chat_strip_thinking(const char *content);

/* ---- streaming <think> parser ----
 * Feed output text in pieces of any size; the callback receives it split into reasoning and
 * answer runs, in order. Tags may be split across pieces at any byte. "<think>" opens reasoning
 * only at the start of the output (after leading whitespace, as R1 emits it); "</think>" closes
 * it. Tags are not passed on, and whitespace right after a tag and at the very start of the
 * output is dropped, so runs start with visible text. Nothing is allocated. */
typedef void (*vkm_chat_think_cb)(void *user, bool reasoning, const char *text, size_t len);

typedef struct vkm_chat_think {
    int state;    /* private: start / reasoning / answer */
    int matched;  /* private: bytes of the tag being matched, held back */
    bool skip_ws; /* private: dropping whitespace after a tag */
} vkm_chat_think;

/* in_reasoning: the prompt already ended with "<think>" (output starts inside reasoning). */
void vkm_chat_think_init(vkm_chat_think *p, bool in_reasoning);
void vkm_chat_think_feed(vkm_chat_think *p, const char *text, size_t len, vkm_chat_think_cb cb,
                         void *user);
/* Passes on any held-back partial tag (end of output). The parser may then be re-initialised. */
void vkm_chat_think_flush(vkm_chat_think *p, vkm_chat_think_cb cb, void *user);
/* True while inside <think>…</think>. */
bool vkm_chat_think_in_reasoning(const vkm_chat_think *p);

#endif
