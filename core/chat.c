/* chat.c - DeepSeek chat templates (spec §6) and the streaming <think> parser (chat.h).
 *
 * Rendering appends to one growing buffer whose length is checked before every append, so it
 * cannot overflow; the result is always NUL-terminated. The think parser is a byte-at-a-time
 * state machine that never looks back further than the tag being matched: a partially matched
 * tag is "held" as a count (its bytes are known, they are a prefix of the tag constant) and
 * released from the constant when the match fails, so nothing is buffered or allocated. */
#include "chat.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"

#define TAG_USER "<｜User｜>"
#define TAG_ASSISTANT "<｜Assistant｜>"
#define TAG_EOS "<｜end▁of▁sentence｜>"
#define V2_MARKER "'Assistant: ' + message['content'] + eos_token"

static const char THINK_OPEN[] = "<think>";
static const char THINK_CLOSE[] = "</think>";
enum { OPEN_LEN = sizeof THINK_OPEN - 1, CLOSE_LEN = sizeof THINK_CLOSE - 1 };

/* ------------------------------------------------------------------------------------------ */
/* template choice                                                                              */

const char *vkm_chat_template_name(enum vkm_chat_template t) {
    switch (t) {
    case VKM_CHAT_DEEPSEEK3:
        return "deepseek3";
    case VKM_CHAT_DEEPSEEK2:
        return "deepseek2";
    default:
        return "none";
    }
}

int vkm_chat_template_from_name(const char *name, enum vkm_chat_template *out) {
    if (name && !strcmp(name, "deepseek3")) {
        *out = VKM_CHAT_DEEPSEEK3;
        return VKM_OK;
    }
    if (name && !strcmp(name, "deepseek2")) {
        *out = VKM_CHAT_DEEPSEEK2;
        return VKM_OK;
    }
    return vkm_error(VKM_EINVAL, "unknown chat template '%s' (known: deepseek3, deepseek2)",
                     name ? name : "(null)");
}

int vkm_chat_template_detect(const char *text, enum vkm_chat_template *out) {
    if (!text)
        return vkm_error(VKM_EUNSUPPORTED, "the model has no tokenizer.chat_template; choose one "
                                           "with --chat-template deepseek3|deepseek2");
    if (strstr(text, TAG_ASSISTANT) && strstr(text, TAG_USER) && strstr(text, TAG_EOS)) {
        *out = VKM_CHAT_DEEPSEEK3;
        return VKM_OK;
    }
    if (strstr(text, V2_MARKER)) {
        *out = VKM_CHAT_DEEPSEEK2;
        return VKM_OK;
    }
    return vkm_error(VKM_EUNSUPPORTED, "the model's chat template is not one vkmoe knows; choose "
                                       "one with --chat-template deepseek3|deepseek2");
}

int vkm_chat_template_infer(bool (*has_token)(void *user, const char *text), void *user,
                            enum vkm_chat_template *out, const char **why) {
    const bool eos = has_token(user, TAG_EOS);
    if (eos && has_token(user, TAG_USER) && has_token(user, TAG_ASSISTANT)) {
        *out = VKM_CHAT_DEEPSEEK3;
        if (why) *why = TAG_USER "/" TAG_ASSISTANT;
        return VKM_OK;
    }
    if (eos && has_token(user, "User") && has_token(user, "Assistant")) {
        *out = VKM_CHAT_DEEPSEEK2;
        if (why) *why = "User/Assistant";
        return VKM_OK;
    }
    return vkm_error(VKM_EUNSUPPORTED,
                     "the model has no tokenizer.chat_template and its vocabulary is not "
                     "DeepSeek's; choose a template with --chat-template deepseek3|deepseek2");
}

/* Written by vkmoe gen-model; each renders exactly as vkm_chat_render does. */
static const char JINJA_V3[] =
    "{{ bos_token }}{% for message in messages %}{% if message['role'] == 'system' %}"
    "{{ message['content'] + '\n\n' }}{% elif message['role'] == 'user' %}"
    "{{ '" TAG_USER "' + message['content'] }}{% elif message['role'] == 'assistant' %}"
    "{% set content = message['content'] %}{% if '</think>' in content %}"
    "{% set content = content.split('</think>')[-1].lstrip() %}{% endif %}"
    "{{ '" TAG_ASSISTANT "' + content + '" TAG_EOS "' }}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ '" TAG_ASSISTANT "' }}{% endif %}";
static const char JINJA_V2[] =
    "{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}"
    "{{ 'User: ' + message['content'] + '\n\n' }}{% elif message['role'] == 'assistant' %}"
    "{{ " V2_MARKER " }}{% elif message['role'] == 'system' %}"
    "{{ message['content'] + '\n\n' }}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}";

const char *vkm_chat_template_jinja(enum vkm_chat_template t) {
    return t == VKM_CHAT_DEEPSEEK3 ? JINJA_V3 : t == VKM_CHAT_DEEPSEEK2 ? JINJA_V2 : NULL;
}

int vkm_chat_template_select(const char *name, const char *text, enum vkm_chat_template *out) {
    return name ? vkm_chat_template_from_name(name, out) : vkm_chat_template_detect(text, out);
}

/* ------------------------------------------------------------------------------------------ */
/* rendering                                                                                    */

typedef struct strbuf {
    char *p;    /* [cap] bytes, NUL-terminated at len */
    size_t len; /* bytes used, not counting the NUL */
    size_t cap;
    int err; /* first failure; later appends are no-ops */
} strbuf;

static void sb_append(strbuf *b, const char *s, size_t n) {
    if (b->err) return;
    if (n >= SIZE_MAX - b->len) {
        b->err = VKM_ENOMEM;
        return;
    }
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1) cap = cap > SIZE_MAX / 2 ? b->len + n + 1 : cap * 2;
        char *q = realloc(b->p, cap);
        if (!q) {
            b->err = VKM_ENOMEM;
            return;
        }
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
}

static void sb_puts(strbuf *b, const char *s) {
    sb_append(b, s, strlen(s));
}

static bool is_ws(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

const char *vkm_chat_strip_thinking(const char *content) {
    const char *last = NULL;
    for (const char *p = strstr(content, THINK_CLOSE); p; p = strstr(p + 1, THINK_CLOSE)) last = p;
    if (!last) return content;
    last += CLOSE_LEN;
    while (is_ws(*last)) last++;
    return last;
}

int vkm_chat_render(enum vkm_chat_template t, const vkm_chat_msg *msgs, size_t n,
                    const vkm_chat_render_opts *opts, char **out, size_t *len) {
    vkm_chat_render_opts o = {0};
    if (opts) o = *opts;
    if (t != VKM_CHAT_DEEPSEEK3 && t != VKM_CHAT_DEEPSEEK2)
        return vkm_error(VKM_EINVAL, "chat: no chat template chosen");
    for (size_t i = 0; i < n; i++) {
        if (!msgs[i].content) return vkm_error(VKM_EINVAL, "chat: message %zu has no content", i);
        if (msgs[i].role != VKM_CHAT_SYSTEM && msgs[i].role != VKM_CHAT_USER &&
            msgs[i].role != VKM_CHAT_ASSISTANT)
            return vkm_error(VKM_EINVAL, "chat: message %zu has an unknown role %d", i,
                             (int)msgs[i].role);
    }
    const bool v3 = t == VKM_CHAT_DEEPSEEK3;
    strbuf b = {0};
    sb_append(&b, "", 0); /* an empty conversation still gives "" */
    for (size_t i = 0; i < n; i++) {
        const char *c = msgs[i].content;
        switch (msgs[i].role) {
        case VKM_CHAT_SYSTEM:
            sb_puts(&b, c);
            sb_puts(&b, "\n\n");
            break;
        case VKM_CHAT_USER:
            sb_puts(&b, v3 ? TAG_USER : "User: ");
            sb_puts(&b, c);
            if (!v3) sb_puts(&b, "\n\n");
            break;
        case VKM_CHAT_ASSISTANT:
            sb_puts(&b, v3 ? TAG_ASSISTANT : "Assistant: ");
            sb_puts(&b, o.keep_thinking ? c : vkm_chat_strip_thinking(c));
            sb_puts(&b, TAG_EOS);
            break;
        }
    }
    if (o.add_generation_prompt) sb_puts(&b, v3 ? TAG_ASSISTANT : "Assistant:");
    if (b.err) {
        free(b.p);
        return vkm_error(VKM_ENOMEM, "chat: out of memory rendering %zu messages", n);
    }
    *out = b.p;
    if (len) *len = b.len;
    return VKM_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* <think> parser                                                                               */

enum { ST_START = 0, ST_REASON = 1, ST_ANSWER = 2 };

/* The run of input bytes being collected for one callback. */
typedef struct run {
    const char *text;
    size_t start, end; /* text[start..end) */
    bool reasoning;
    vkm_chat_think_cb cb;
    void *user;
} run;

static void run_flush(run *r) {
    if (r->end > r->start) r->cb(r->user, r->reasoning, r->text + r->start, r->end - r->start);
    r->start = r->end = 0;
}

/* Adds input byte i to the current run, starting a new one if it is not contiguous. */
static void run_add(run *r, size_t i, bool reasoning) {
    if (r->end > r->start && r->end == i && r->reasoning == reasoning) {
        r->end = i + 1;
        return;
    }
    run_flush(r);
    r->start = i;
    r->end = i + 1;
    r->reasoning = reasoning;
}

/* Emits bytes that are not part of the input (a released partial tag). */
static void run_emit_const(run *r, bool reasoning, const char *s, size_t n) {
    run_flush(r);
    if (n) r->cb(r->user, reasoning, s, n);
}

void vkm_chat_think_init(vkm_chat_think *p, bool in_reasoning) {
    p->state = in_reasoning ? ST_REASON : ST_START;
    p->matched = 0;
    p->skip_ws = true;
}

bool vkm_chat_think_in_reasoning(const vkm_chat_think *p) {
    return p->state == ST_REASON;
}

void vkm_chat_think_feed(vkm_chat_think *p, const char *text, size_t len, vkm_chat_think_cb cb,
                         void *user) {
    run r = {.text = text, .cb = cb, .user = user};
    for (size_t i = 0; i < len; i++) {
        const char c = text[i];
        if (p->state == ST_START) {
            if (p->matched == 0 && is_ws(c)) continue;
            if (c == THINK_OPEN[p->matched]) {
                if (++p->matched == OPEN_LEN) {
                    p->state = ST_REASON;
                    p->matched = 0;
                    p->skip_ws = true;
                }
                continue;
            }
            /* not a <think>: the output is all answer; release what was held */
            run_emit_const(&r, false, THINK_OPEN, (size_t)p->matched);
            p->matched = 0;
            p->state = ST_ANSWER;
            p->skip_ws = false;
        }
        if (p->state == ST_REASON) {
            if (p->skip_ws && is_ws(c)) continue;
            p->skip_ws = false;
            if (c == THINK_CLOSE[p->matched]) {
                if (++p->matched == CLOSE_LEN) {
                    run_flush(&r);
                    p->state = ST_ANSWER;
                    p->matched = 0;
                    p->skip_ws = true;
                }
                continue;
            }
            if (p->matched) {
                /* '<' occurs only at the start of "</think>", so a failed match can only
                 * restart at this byte */
                run_emit_const(&r, true, THINK_CLOSE, (size_t)p->matched);
                p->matched = 0;
                if (c == THINK_CLOSE[0]) {
                    p->matched = 1;
                    continue;
                }
            }
            run_add(&r, i, true);
            continue;
        }
        /* ST_ANSWER */
        if (p->skip_ws && is_ws(c)) continue;
        p->skip_ws = false;
        run_add(&r, i, false);
    }
    run_flush(&r);
}

void vkm_chat_think_flush(vkm_chat_think *p, vkm_chat_think_cb cb, void *user) {
    if (p->matched > 0) {
        if (p->state == ST_START)
            cb(user, false, THINK_OPEN, (size_t)p->matched);
        else if (p->state == ST_REASON)
            cb(user, true, THINK_CLOSE, (size_t)p->matched);
    }
    p->matched = 0;
}
