/* serve_api.c - the JSON of `vkmoe serve` (serve.h): OpenAI-shaped requests parsed and validated
 * into serve_req, responses, stream chunks, SSE framing and error objects; the llama-server
 * shapes of /tokenize and /detokenize.
 *
 * Every text put into JSON goes through serve_utf8_clean first: model output may hold bytes that
 * are not UTF-8 (a noise model, a byte token cut off by max_tokens), and JSON must not. A field
 * given as null counts as not given. Unsupported options are refused by name rather than ignored
 * when ignoring them would change the answer (n > 1, tools, logprobs, ...). */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "serve.h"

const char SERVE_SSE_DONE[] = "data: [DONE]\n\n";

int serve_fail(serve_error *e, int status, const char *type, const char *code, const char *param,
               const char *fmt, ...) {
    e->status = status;
    e->type = type;
    e->code = code;
    snprintf(e->param, sizeof e->param, "%s", param ? param : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
    return -1;
}

/* 400, invalid_request_error, naming param. */
#define BAD(e, param, ...) serve_fail(e, 400, "invalid_request_error", NULL, param, __VA_ARGS__)

char *serve_error_json(const serve_error *e) {
    cJSON *root = cJSON_CreateObject(), *err = cJSON_AddObjectToObject(root, "error");
    char *msg = serve_utf8_clean(e->message, strlen(e->message), NULL);
    if (!err || !msg) {
        free(msg);
        cJSON_Delete(root);
        return NULL;
    }
    cJSON_AddStringToObject(err, "message", msg);
    cJSON_AddStringToObject(err, "type", e->type ? e->type : "server_error");
    if (e->param[0])
        cJSON_AddStringToObject(err, "param", e->param);
    else
        cJSON_AddNullToObject(err, "param");
    if (e->code)
        cJSON_AddStringToObject(err, "code", e->code);
    else
        cJSON_AddNullToObject(err, "code");
    free(msg);
    char *s = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return s;
}

/* ------------------------------------------------------------------------------------------ */
/* UTF-8                                                                                        */

/* One step of decoding s[0..n): the bytes of a valid character (*valid), or of the longest start
 * of one (a lead byte and the continuation bytes allowed after it: Unicode's "maximal subpart",
 * the replacement rule of Python, WHATWG and ICU decoders) or one stray byte (not *valid). NUL
 * counts as invalid: JSON text from cJSON cannot hold it. */
static size_t utf8_step(const unsigned char *s, size_t n, bool *valid) {
    const unsigned c = s[0];
    *valid = false;
    if (c < 0x80) {
        *valid = c != 0;
        return 1;
    }
    size_t need;
    unsigned lo = 0x80, hi = 0xbf; /* allowed range of the second byte */
    if (c >= 0xc2 && c <= 0xdf) {
        need = 1;
    } else if (c >= 0xe0 && c <= 0xef) {
        need = 2;
        if (c == 0xe0) lo = 0xa0; /* no overlong forms */
        if (c == 0xed) hi = 0x9f; /* no surrogates */
    } else if (c >= 0xf0 && c <= 0xf4) {
        need = 3;
        if (c == 0xf0) lo = 0x90;
        if (c == 0xf4) hi = 0x8f; /* at most U+10FFFF */
    } else {
        return 1;
    }
    size_t i = 1;
    for (; i <= need && i < n; i++) {
        const unsigned b = s[i];
        if (b < (i == 1 ? lo : 0x80) || b > (i == 1 ? hi : 0xbf)) break;
    }
    *valid = i == need + 1;
    return i;
}

char *serve_utf8_clean(const char *text, size_t len, size_t *out_len) {
    if (len > (SIZE_MAX - 1) / 3) return NULL;
    char *out = malloc(len * 3 + 1), *o = out;
    if (!out) return NULL;
    const unsigned char *s = (const unsigned char *)text;
    for (size_t i = 0; i < len;) {
        bool valid;
        const size_t l = utf8_step(s + i, len - i, &valid);
        if (valid) {
            memcpy(o, s + i, l);
            o += l;
        } else {
            memcpy(o, "\xef\xbf\xbd", 3);
            o += 3;
        }
        i += l;
    }
    *o = 0;
    if (out_len) *out_len = (size_t)(o - out);
    return out;
}

/* Adds text[0..len) as a string field; false when out of memory. */
static bool add_text(cJSON *obj, const char *name, const char *text, size_t len) {
    char *clean = serve_utf8_clean(text ? text : "", text ? len : 0, NULL);
    if (!clean) return false;
    const bool ok = cJSON_AddStringToObject(obj, name, clean) != NULL;
    free(clean);
    return ok;
}

/* ------------------------------------------------------------------------------------------ */
/* request fields                                                                               */

static cJSON *parse_object(const char *body, size_t len, serve_error *e) {
    cJSON *root = cJSON_ParseWithLength(body, len);
    if (!root) {
        const char *at = cJSON_GetErrorPtr();
        const long off = at && at >= body && at <= body + len ? (long)(at - body) : -1;
        if (off >= 0)
            BAD(e, NULL, "the request body is not valid JSON (error near byte %ld)", off);
        else
            BAD(e, NULL, "the request body is not valid JSON");
        return NULL;
    }
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        BAD(e, NULL, "the request body must be a JSON object");
        return NULL;
    }
    return root;
}

/* The field, or NULL when absent or null. */
static cJSON *field(const cJSON *o, const char *name) {
    cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    return v && !cJSON_IsNull(v) ? v : NULL;
}

static int opt_number(const cJSON *o, const char *name, double min, double max, bool *has,
                      double *out, serve_error *e) {
    const cJSON *v = field(o, name);
    if (!v) return 0;
    if (!cJSON_IsNumber(v)) return BAD(e, name, "'%s' must be a number", name);
    if (!isfinite(v->valuedouble) || v->valuedouble < min || v->valuedouble > max)
        return BAD(e, name, "'%s' must be between %g and %g", name, min, max);
    *has = true;
    *out = v->valuedouble;
    return 0;
}

static int opt_integer(const cJSON *o, const char *name, double min, double max, bool *has,
                       double *out, serve_error *e) {
    bool h = false;
    double d = 0;
    if (opt_number(o, name, min, max, &h, &d, e)) {
        if (field(o, name) && cJSON_IsNumber(field(o, name)))
            return BAD(e, name, "'%s' must be an integer between %.0f and %.0f", name, min, max);
        return -1;
    }
    if (h && d != floor(d)) return BAD(e, name, "'%s' must be an integer", name);
    if (h) {
        *has = true;
        *out = d;
    }
    return 0;
}

static int opt_bool(const cJSON *o, const char *name, bool *out, serve_error *e) {
    const cJSON *v = field(o, name);
    if (!v) return 0;
    if (!cJSON_IsBool(v)) return BAD(e, name, "'%s' must be true or false", name);
    *out = cJSON_IsTrue(v);
    return 0;
}

static char *dup_text(const char *s, size_t len) {
    char *d = malloc(len + 1);
    if (d) {
        memcpy(d, s, len);
        d[len] = 0;
    }
    return d;
}

static int oom(serve_error *e) {
    return serve_fail(e, 500, "server_error", NULL, NULL, "out of memory");
}

/* The options chat and completions share. */
static int parse_common(const cJSON *root, serve_req *r, serve_error *e) {
    const cJSON *v;
    if ((v = field(root, "model")) && !cJSON_IsString(v))
        return BAD(e, "model", "'model' must be a string");
    double d;
    bool has = false;
    if (opt_integer(root, "n", 1, 1e9, &has, &d, e)) return -1;
    if (has && d != 1) return BAD(e, "n", "'n' must be 1: one choice per request is supported");
    /* max_completion_tokens is the newer name; either may be given */
    static const char *const max_names[] = {"max_tokens", "max_completion_tokens", "n_predict"};
    for (int i = 0; i < 3; i++) {
        has = false;
        if (opt_integer(root, max_names[i], i == 2 ? -1 : 0, 2147483647.0, &has, &d, e)) return -1;
        if (has) {
            r->has_max_tokens = true;
            r->max_tokens = (long)d;
        }
    }
    if (opt_number(root, "temperature", 0, 1e6, &r->has_temperature, &r->temperature, e) ||
        opt_number(root, "top_p", 0, 1, &r->has_top_p, &r->top_p, e) ||
        opt_number(root, "min_p", 0, 1, &r->has_min_p, &r->min_p, e))
        return -1;
    has = false;
    if (opt_integer(root, "top_k", 0, 2147483647.0, &has, &d, e)) return -1;
    if (has) r->has_top_k = true, r->top_k = (long)d;
    has = false;
    if (opt_integer(root, "seed", -9.2e18, 9.2e18, &has, &d, e)) return -1;
    if (has) r->has_seed = true, r->seed = d < 0 ? (uint64_t)(-(long long)d) : (uint64_t)d;
    if ((v = field(root, "stop"))) {
        if (cJSON_IsString(v)) {
            if (v->valuestring[0]) {
                if (strlen(v->valuestring) > SERVE_MAX_STOP_LEN)
                    return BAD(e, "stop", "'stop' strings may be at most %d bytes",
                               SERVE_MAX_STOP_LEN);
                if (!(r->stop[r->n_stop++] = strdup(v->valuestring))) return oom(e);
            }
        } else if (cJSON_IsArray(v)) {
            const cJSON *s;
            cJSON_ArrayForEach(s, v) {
                if (!cJSON_IsString(s))
                    return BAD(e, "stop", "'stop' must be a string or an array of strings");
                if (!s->valuestring[0]) continue;
                if (r->n_stop == SERVE_MAX_STOP)
                    return BAD(e, "stop", "'stop' may hold at most %d strings", SERVE_MAX_STOP);
                if (strlen(s->valuestring) > SERVE_MAX_STOP_LEN)
                    return BAD(e, "stop", "'stop' strings may be at most %d bytes",
                               SERVE_MAX_STOP_LEN);
                if (!(r->stop[r->n_stop++] = strdup(s->valuestring))) return oom(e);
            }
        } else {
            return BAD(e, "stop", "'stop' must be a string or an array of strings");
        }
    }
    if (opt_bool(root, "stream", &r->stream, e)) return -1;
    if ((v = field(root, "stream_options"))) {
        if (!cJSON_IsObject(v))
            return BAD(e, "stream_options", "'stream_options' must be an object");
        if (opt_bool(v, "include_usage", &r->include_usage, e)) {
            snprintf(e->param, sizeof e->param, "stream_options.include_usage");
            return -1;
        }
    }
    /* options that would change the answer's shape: refused rather than ignored */
    static const char *const refused[] = {"tools", "functions", "logprobs", "top_logprobs",
                                          "echo",  "suffix",    "best_of",  "logit_bias"};
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        v = field(root, refused[i]);
        if (!v || cJSON_IsFalse(v) || (cJSON_IsArray(v) && !cJSON_GetArraySize(v))) continue;
        if (cJSON_IsObject(v) && !v->child) continue;
        if (cJSON_IsNumber(v) && v->valuedouble == 0) continue;
        if (!strcmp(refused[i], "best_of") && cJSON_IsNumber(v) && v->valuedouble == 1) continue;
        return BAD(e, refused[i], "'%s' is not supported by vkmoe serve", refused[i]);
    }
    if ((v = field(root, "tool_choice")) && !(cJSON_IsString(v) && !strcmp(v->valuestring, "none")))
        return BAD(e, "tool_choice", "'tool_choice' is not supported by vkmoe serve");
    if ((v = field(root, "response_format"))) {
        const cJSON *t = cJSON_IsObject(v) ? field(v, "type") : NULL;
        if (!t || !cJSON_IsString(t) || strcmp(t->valuestring, "text"))
            return BAD(e, "response_format",
                       "'response_format' is not supported by vkmoe serve (only {\"type\": "
                       "\"text\"})");
    }
    if ((v = field(root, "reasoning_format"))) {
        if (!cJSON_IsString(v) ||
            (strcmp(v->valuestring, "none") && strcmp(v->valuestring, "deepseek") &&
             strcmp(v->valuestring, "auto")))
            return BAD(e, "reasoning_format",
                       "'reasoning_format' must be \"none\", \"deepseek\" or \"auto\"");
        r->raw_reasoning = !strcmp(v->valuestring, "none");
    }
    return 0;
}

/* A message content: a string, or an array of {"type": "text", "text": ...} parts (joined). */
static int message_content(const cJSON *c, size_t i, bool may_be_null, char **out, serve_error *e) {
    char param[64];
    snprintf(param, sizeof param, "messages[%zu].content", i);
    if (!c) {
        if (!may_be_null) return BAD(e, param, "'%s' is missing", param);
        return (*out = strdup("")) ? 0 : oom(e);
    }
    if (cJSON_IsString(c)) return (*out = strdup(c->valuestring)) ? 0 : oom(e);
    if (!cJSON_IsArray(c))
        return BAD(e, param, "'%s' must be a string or an array of text parts", param);
    size_t len = 0;
    const cJSON *p;
    cJSON_ArrayForEach(p, c) {
        const cJSON *t = cJSON_IsObject(p) ? field(p, "type") : NULL;
        const cJSON *x = cJSON_IsObject(p) ? field(p, "text") : NULL;
        if (!t || !cJSON_IsString(t) || strcmp(t->valuestring, "text") || !x || !cJSON_IsString(x))
            return BAD(e, param, "'%s' parts must be {\"type\": \"text\", \"text\": string}",
                       param);
        len += strlen(x->valuestring);
    }
    char *s = malloc(len + 1);
    if (!s) return oom(e);
    size_t at = 0;
    cJSON_ArrayForEach(p, c) {
        const char *x = field(p, "text")->valuestring;
        const size_t l = strlen(x);
        memcpy(s + at, x, l);
        at += l;
    }
    s[at] = 0;
    *out = s;
    return 0;
}

int serve_parse_chat(const char *body, size_t len, serve_req *r, serve_error *e) {
    memset(r, 0, sizeof *r);
    r->kind = SERVE_CHAT;
    cJSON *root = parse_object(body, len, e);
    if (!root) return -1;
    int rc = parse_common(root, r, e);
    const cJSON *msgs = field(root, "messages");
    if (!rc && !msgs) rc = BAD(e, "messages", "'messages' is missing");
    if (!rc && !cJSON_IsArray(msgs)) rc = BAD(e, "messages", "'messages' must be an array");
    const int n = rc ? 0 : cJSON_GetArraySize(msgs);
    if (!rc && n == 0) rc = BAD(e, "messages", "'messages' is empty");
    if (!rc && !(r->msgs = calloc((size_t)n, sizeof *r->msgs))) rc = oom(e);
    for (int i = 0; !rc && i < n; i++) {
        const cJSON *m = cJSON_GetArrayItem(msgs, i);
        char param[64];
        snprintf(param, sizeof param, "messages[%d]", i);
        if (!cJSON_IsObject(m)) {
            rc = BAD(e, param, "'%s' must be an object with role and content", param);
            break;
        }
        snprintf(param, sizeof param, "messages[%d].role", i);
        const cJSON *role = field(m, "role");
        if (!role || !cJSON_IsString(role)) {
            rc = BAD(e, param, "'%s' must be a string (system, user or assistant)", param);
            break;
        }
        enum vkm_chat_role rl;
        const char *rs = role->valuestring;
        if (!strcmp(rs, "system") || !strcmp(rs, "developer"))
            rl = VKM_CHAT_SYSTEM;
        else if (!strcmp(rs, "user"))
            rl = VKM_CHAT_USER;
        else if (!strcmp(rs, "assistant"))
            rl = VKM_CHAT_ASSISTANT;
        else {
            char shown[40];
            snprintf(shown, sizeof shown, "%s", rs);
            rc = BAD(e, param, "'%s' is \"%s\": the roles are system, user and assistant", param,
                     shown);
            break;
        }
        char *content = NULL;
        if ((rc = message_content(field(m, "content"), (size_t)i, rl == VKM_CHAT_ASSISTANT,
                                  &content, e)))
            break;
        r->msgs[r->n_msgs++] = (vkm_chat_msg){rl, content};
    }
    cJSON_Delete(root);
    if (rc) serve_req_free(r);
    return rc;
}

int serve_parse_completion(const char *body, size_t len, serve_req *r, serve_error *e) {
    memset(r, 0, sizeof *r);
    r->kind = SERVE_COMPLETION;
    cJSON *root = parse_object(body, len, e);
    if (!root) return -1;
    int rc = parse_common(root, r, e);
    const cJSON *p = field(root, "prompt");
    if (!rc && p && cJSON_IsArray(p) && cJSON_GetArraySize(p) == 1 &&
        cJSON_IsString(cJSON_GetArrayItem(p, 0)))
        p = cJSON_GetArrayItem(p, 0); /* ["text"]: one prompt */
    if (!rc && !p) rc = BAD(e, "prompt", "'prompt' is missing");
    if (!rc && !cJSON_IsString(p))
        rc = BAD(e, "prompt", "'prompt' must be a string (or an array of one string)");
    if (!rc && !(r->prompt = strdup(p->valuestring))) rc = oom(e);
    if (!rc) r->prompt_len = strlen(r->prompt);
    if (!rc && !r->prompt_len) rc = BAD(e, "prompt", "'prompt' is empty");
    cJSON_Delete(root);
    if (rc) serve_req_free(r);
    return rc;
}

void serve_req_free(serve_req *r) {
    for (size_t i = 0; i < r->n_msgs; i++) free((char *)r->msgs[i].content);
    free(r->msgs);
    free(r->prompt);
    for (int i = 0; i < r->n_stop; i++) free(r->stop[i]);
    memset(r, 0, sizeof *r);
}

int serve_parse_tokenize(const char *body, size_t len, char **content, size_t *content_len,
                         bool *add_special, serve_error *e) {
    *content = NULL;
    *add_special = false;
    cJSON *root = parse_object(body, len, e);
    if (!root) return -1;
    const cJSON *c = field(root, "content");
    int rc = 0;
    if (!c)
        rc = BAD(e, "content", "'content' is missing");
    else if (!cJSON_IsString(c))
        rc = BAD(e, "content", "'content' must be a string");
    if (!rc) rc = opt_bool(root, "add_special", add_special, e);
    if (!rc && !(*content = dup_text(c->valuestring, strlen(c->valuestring)))) rc = oom(e);
    if (!rc) *content_len = strlen(*content);
    cJSON_Delete(root);
    return rc;
}

int serve_parse_detokenize(const char *body, size_t len, int32_t n_vocab, int32_t **ids, size_t *n,
                           serve_error *e) {
    *ids = NULL;
    *n = 0;
    cJSON *root = parse_object(body, len, e);
    if (!root) return -1;
    const cJSON *t = field(root, "tokens");
    int rc = 0;
    if (!t)
        rc = BAD(e, "tokens", "'tokens' is missing");
    else if (!cJSON_IsArray(t))
        rc = BAD(e, "tokens", "'tokens' must be an array of token ids");
    const int cnt = rc ? 0 : cJSON_GetArraySize(t);
    if (!rc && !(*ids = malloc((size_t)(cnt ? cnt : 1) * sizeof **ids))) rc = oom(e);
    for (int i = 0; !rc && i < cnt; i++) {
        const cJSON *v = cJSON_GetArrayItem(t, i);
        if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || v->valuedouble < 0 ||
            v->valuedouble >= n_vocab) {
            rc = BAD(e, "tokens", "'tokens[%d]' is not a token id 0..%d", i, (int)n_vocab - 1);
            break;
        }
        (*ids)[(*n)++] = (int32_t)v->valuedouble;
    }
    if (rc) {
        free(*ids);
        *ids = NULL;
        *n = 0;
    }
    cJSON_Delete(root);
    return rc;
}

char *serve_tokens_json(const int32_t *ids, size_t n) {
    cJSON *root = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(root, "tokens");
    bool ok = arr != NULL;
    for (size_t i = 0; ok && i < n; i++) ok = cJSON_AddItemToArray(arr, cJSON_CreateNumber(ids[i]));
    char *s = ok ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    return s;
}

char *serve_content_json(const char *text, size_t len) {
    cJSON *root = cJSON_CreateObject();
    char *s = root && add_text(root, "content", text, len) ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    return s;
}

/* ------------------------------------------------------------------------------------------ */
/* responses                                                                                    */

static cJSON *base(const serve_meta *m, const char *object) {
    cJSON *root = cJSON_CreateObject();
    if (!root) return NULL;
    cJSON_AddStringToObject(root, "id", m->id);
    cJSON_AddStringToObject(root, "object", object);
    cJSON_AddNumberToObject(root, "created", (double)m->created);
    cJSON_AddStringToObject(root, "model", m->model ? m->model : "");
    return root;
}

static bool add_usage(cJSON *root, const serve_usage *u) {
    cJSON *o = cJSON_AddObjectToObject(root, "usage");
    if (!o) return false;
    cJSON_AddNumberToObject(o, "prompt_tokens", (double)u->prompt_tokens);
    cJSON_AddNumberToObject(o, "completion_tokens", (double)u->completion_tokens);
    cJSON_AddNumberToObject(o, "total_tokens", (double)(u->prompt_tokens + u->completion_tokens));
    return true;
}

static void add_finish(cJSON *o, const char *finish) {
    if (finish)
        cJSON_AddStringToObject(o, "finish_reason", finish);
    else
        cJSON_AddNullToObject(o, "finish_reason");
}

/* Prints and frees root; NULL if building it failed (ok false) or printing does. */
static char *finish_json(cJSON *root, bool ok) {
    char *s = root && ok ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    return s;
}

char *serve_chat_json(const serve_meta *m, const char *content, size_t content_len,
                      const char *reasoning, size_t reasoning_len, const char *finish,
                      const serve_usage *u) {
    cJSON *root = base(m, "chat.completion");
    cJSON *choices = root ? cJSON_AddArrayToObject(root, "choices") : NULL;
    cJSON *c = cJSON_CreateObject();
    bool ok = choices && c && cJSON_AddItemToArray(choices, c);
    if (!ok) cJSON_Delete(c);
    cJSON *msg = ok ? cJSON_AddObjectToObject(c, "message") : NULL;
    ok = ok && msg;
    if (ok) {
        cJSON_AddNumberToObject(c, "index", 0);
        cJSON_AddStringToObject(msg, "role", "assistant");
        ok = add_text(msg, "content", content, content_len);
        if (ok && reasoning && reasoning_len)
            ok = add_text(msg, "reasoning_content", reasoning, reasoning_len);
        add_finish(c, finish);
    }
    return finish_json(root, ok && add_usage(root, u));
}

char *serve_completion_json(const serve_meta *m, const char *text, size_t len, const char *finish,
                            const serve_usage *u) {
    cJSON *root = base(m, "text_completion");
    cJSON *choices = root ? cJSON_AddArrayToObject(root, "choices") : NULL;
    cJSON *c = cJSON_CreateObject();
    bool ok = choices && c && cJSON_AddItemToArray(choices, c);
    if (!ok) cJSON_Delete(c);
    if (ok) {
        ok = add_text(c, "text", text, len);
        cJSON_AddNumberToObject(c, "index", 0);
        cJSON_AddNullToObject(c, "logprobs");
        add_finish(c, finish);
    }
    return finish_json(root, ok && (!u || add_usage(root, u)));
}

char *serve_chat_chunk_json(const serve_meta *m, bool role, bool reasoning, const char *text,
                            size_t len, const char *finish) {
    cJSON *root = base(m, "chat.completion.chunk");
    cJSON *choices = root ? cJSON_AddArrayToObject(root, "choices") : NULL;
    cJSON *c = cJSON_CreateObject();
    bool ok = choices && c && cJSON_AddItemToArray(choices, c);
    if (!ok) cJSON_Delete(c);
    cJSON *delta = ok ? cJSON_AddObjectToObject(c, "delta") : NULL;
    ok = ok && delta;
    if (ok) {
        cJSON_AddNumberToObject(c, "index", 0);
        if (role) cJSON_AddStringToObject(delta, "role", "assistant");
        if (text)
            ok = add_text(delta, reasoning ? "reasoning_content" : "content", text, len);
        else if (role)
            cJSON_AddStringToObject(delta, "content", "");
        add_finish(c, finish);
    }
    return finish_json(root, ok);
}

char *serve_completion_chunk_json(const serve_meta *m, const char *text, size_t len,
                                  const char *finish) {
    return serve_completion_json(m, text ? text : "", text ? len : 0, finish, NULL);
}

char *serve_usage_chunk_json(const serve_meta *m, enum serve_kind kind, const serve_usage *u) {
    cJSON *root = base(m, kind == SERVE_CHAT ? "chat.completion.chunk" : "text_completion");
    bool ok = root && cJSON_AddArrayToObject(root, "choices") && add_usage(root, u);
    return finish_json(root, ok);
}

char *serve_models_json(const char *model, long long created, long n_ctx) {
    cJSON *root = cJSON_CreateObject();
    cJSON *data = root ? cJSON_AddArrayToObject(root, "data") : NULL;
    cJSON *mo = cJSON_CreateObject();
    bool ok = data && mo && cJSON_AddItemToArray(data, mo);
    if (!ok) cJSON_Delete(mo);
    if (ok) {
        cJSON_AddStringToObject(root, "object", "list");
        cJSON_AddStringToObject(mo, "id", model);
        cJSON_AddStringToObject(mo, "object", "model");
        cJSON_AddNumberToObject(mo, "created", (double)created);
        cJSON_AddStringToObject(mo, "owned_by", "vkmoe");
        cJSON *meta = cJSON_AddObjectToObject(mo, "meta");
        if (meta) cJSON_AddNumberToObject(meta, "n_ctx", (double)n_ctx);
    }
    return finish_json(root, ok);
}

char *serve_sse_event(const char *json, size_t *len) {
    const size_t n = strlen(json);
    char *s = malloc(n + 9);
    if (!s) return NULL;
    memcpy(s, "data: ", 6);
    memcpy(s + 6, json, n);
    memcpy(s + 6 + n, "\n\n", 3);
    if (len) *len = n + 8;
    return s;
}
