/* serve.h - the parts of `vkmoe serve` (an OpenAI-compatible HTTP server), one module each:
 *
 *   serve_think.c   the output filter: stop strings, then the R1 reasoning split (pure)
 *   serve_api.c     the JSON shapes: request parsing and validation, responses, stream chunks,
 *                   SSE framing, error objects (pure, cJSON)
 *   serve_http.c    the HTTP glue over libmicrohttpd: body limits, API key, routing to a handler,
 *                   streamed responses pulled from a blocking source
 *   serve_worker.c  the job queue and the worker thread that owns the engine session
 *   cmd_serve.c     flags, lifecycle, signals, the endpoint handlers and /metrics
 *
 * The pure modules never touch the engine or the network, so tests/test_serve.c checks them
 * without a device. */
#ifndef VKM_SERVE_H
#define VKM_SERVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "chat.h"

enum { SERVE_MAX_STOP = 8, SERVE_MAX_STOP_LEN = 256 };

/* ---- serve_think.c: stop strings and the reasoning split ----
 * Generated text goes in as produced; out come runs of reasoning or answer text, in order.
 * Stop strings are matched on the raw text (before the split, as llama-server does); the text
 * from a match on is dropped and `stopped` set. Bytes that may begin a stop string are held back
 * until they cannot (never splitting a UTF-8 character), so a match across pieces is found and
 * nothing of it leaks out. With split, "<think>...</think>" at the start becomes reasoning runs
 * and the tags are never passed on, also when split across pieces (vkm_chat_think); without it
 * every run is answer text, tags included. */
typedef void (*serve_run_fn)(void *user, bool reasoning, const char *text, size_t len);

typedef struct serve_filter {
    const char *stop[SERVE_MAX_STOP]; /* not owned */
    int n_stop;
    size_t keep; /* longest stop string less one: bytes that may be held back */
    char *hold;  /* [cap] raw bytes not yet passed on */
    size_t n_hold, cap;
    bool stopped; /* a stop string was found: later text is ignored */
    bool split, oom;
    vkm_chat_think think;
    serve_run_fn fn;
    void *user;
} serve_filter;

void serve_filter_init(serve_filter *f, const char *const *stop, int n_stop, bool split,
                       serve_run_fn fn, void *user);
void serve_filter_feed(serve_filter *f, const char *text, size_t len);
/* End of output: passes on what is held back (no stop string completed). */
void serve_filter_end(serve_filter *f);
void serve_filter_free(serve_filter *f);

/* ---- serve_api.c: request and response JSON ---- */

/* An error in OpenAI's shape: {"error": {"message", "type", "param", "code"}}. */
typedef struct serve_error {
    int status;       /* HTTP status */
    const char *type; /* "invalid_request_error", "authentication_error", "server_error", ... */
    const char *code; /* NULL = null */
    char param[64];   /* "" = null */
    char message[512];
} serve_error;

/* Sets e (returns -1, for `return serve_fail(...)`). param may be NULL. */
int serve_fail(serve_error *e, int status, const char *type, const char *code, const char *param,
               const char *fmt, ...) __attribute__((format(printf, 6, 7)));
/* The JSON text of e (malloc'ed), NULL when out of memory. */
char *serve_error_json(const serve_error *e);

enum serve_kind { SERVE_CHAT = 0, SERVE_COMPLETION = 1 };

/* A parsed generation request; every string owned. Fields not given keep "has_" false, so the
 * server's own defaults (its command-line flags) apply. */
typedef struct serve_req {
    enum serve_kind kind;
    vkm_chat_msg *msgs; /* [n_msgs], chat; contents owned */
    size_t n_msgs;
    char *prompt; /* completion */
    size_t prompt_len;
    bool has_max_tokens, has_temperature, has_top_p, has_top_k, has_min_p, has_seed;
    long max_tokens;
    double temperature, top_p, min_p;
    long top_k;
    uint64_t seed;
    char *stop[SERVE_MAX_STOP];
    int n_stop;
    bool stream, include_usage;
    bool raw_reasoning; /* reasoning_format "none": <think> text stays in content */
} serve_req;

/* Parse and validate a request body (not necessarily NUL-terminated). 0, or -1 with e set
 * (400 naming the field). */
int serve_parse_chat(const char *body, size_t len, serve_req *r, serve_error *e);
int serve_parse_completion(const char *body, size_t len, serve_req *r, serve_error *e);
void serve_req_free(serve_req *r);

/* /tokenize {"content": string, "add_special": bool} and /detokenize {"tokens": [int]}:
 * *content malloc'ed; *ids malloc'ed, each checked in [0, n_vocab). 0 or -1 with e set. */
int serve_parse_tokenize(const char *body, size_t len, char **content, size_t *content_len,
                         bool *add_special, serve_error *e);
int serve_parse_detokenize(const char *body, size_t len, int32_t n_vocab, int32_t **ids, size_t *n,
                           serve_error *e);
char *serve_tokens_json(const int32_t *ids, size_t n);
char *serve_content_json(const char *text, size_t len);

/* Identity of one response: every chunk of a stream carries the same. */
typedef struct serve_meta {
    char id[48];
    long long created;
    const char *model;
} serve_meta;

typedef struct serve_usage {
    long prompt_tokens, completion_tokens;
} serve_usage;

/* Whole responses. reasoning NULL or empty: no reasoning_content field. finish "stop"/"length". */
char *serve_chat_json(const serve_meta *m, const char *content, size_t content_len,
                      const char *reasoning, size_t reasoning_len, const char *finish,
                      const serve_usage *u);
char *serve_completion_json(const serve_meta *m, const char *text, size_t len, const char *finish,
                            const serve_usage *u);
/* Stream chunks (the JSON of one "data:" line). Chat: role set on the first chunk only; text NULL
 * and finish set for the last one. usage != NULL: the usage chunk (no choices). */
char *serve_chat_chunk_json(const serve_meta *m, bool role, bool reasoning, const char *text,
                            size_t len, const char *finish);
char *serve_completion_chunk_json(const serve_meta *m, const char *text, size_t len,
                                  const char *finish);
char *serve_usage_chunk_json(const serve_meta *m, enum serve_kind kind, const serve_usage *u);
char *serve_models_json(const char *model, long long created, long n_ctx);

/* Server-Sent Events: "data: <json>\n\n" (malloc'ed; *len its length); the terminator. */
char *serve_sse_event(const char *json, size_t *len);
extern const char SERVE_SSE_DONE[]; /* "data: [DONE]\n\n" */

/* text[0..len) as valid UTF-8 without NUL bytes (malloc'ed, NUL-terminated): each maximal invalid
 * subpart (one stray byte, or the start of a character cut short: the rule of Python's and the
 * WHATWG decoders, so clients decoding the raw bytes agree) and each NUL become U+FFFD. */
char *serve_utf8_clean(const char *text, size_t len, size_t *out_len);

/* ---- serve_http.c: the HTTP server ---- */

typedef struct serve_http serve_http;

/* A request as the handler sees it. */
typedef struct serve_http_req {
    const char *method, *path;
    const char *body; /* [body_len], NUL-terminated */
    size_t body_len;
    /* the client is still connected (a non-streamed answer may poll it while it waits) */
    bool (*connected)(const struct serve_http_req *r);
    void *conn; /* private */
} serve_http_req;

/* A streamed body: pull() blocks until it has bytes (returns how many, <= max), returns 0 at the
 * end and -1 on an error (the connection is closed); while it waits it may ask alive(conn)
 * whether the client is still connected. release() is called once when the response is over,
 * also when the client went away first. */
typedef struct serve_stream {
    ssize_t (*pull)(void *src, char *buf, size_t max, bool (*alive)(void *conn), void *conn);
    void (*release)(void *src);
    void *src;
} serve_stream;

typedef struct serve_http_resp {
    int status;
    const char *content_type; /* default application/json */
    char *body;               /* malloc'ed, taken over; or */
    size_t body_len;
    serve_stream stream; /* stream.pull set: a streamed body (text/event-stream) */
    int retry_after;     /* seconds, > 0: a Retry-After header */
    const char *allow;   /* 405: the Allow header */
} serve_http_resp;

/* Fills resp (status 0 = 500). Called from the connection's thread; may block. */
typedef void (*serve_handler_fn)(void *app, const serve_http_req *req, serve_http_resp *resp);

typedef struct serve_http_opts {
    const char *host; /* address or name to bind; "127.0.0.1" by default */
    int port;         /* 0 = any free port */
    const char *api_key;
    size_t max_body;     /* larger bodies: 413 */
    int max_connections; /* beyond: refused */
    serve_handler_fn handler;
    void *app;
} serve_http_opts;

/* Binds and starts serving (threads of its own). 0, or -1 with the message printed. */
int serve_http_start(const serve_http_opts *o, serve_http **out);
int serve_http_port(const serve_http *h);
/* Stops accepting new connections and waits, at most max_wait_ms, for the open ones to end (the
 * answers being sent get out). NULL is fine. */
void serve_http_quiesce(serve_http *h, int max_wait_ms);
/* Stops accepting; closes every connection (waits for their threads). NULL is fine. */
void serve_http_stop(serve_http *h);

#endif
