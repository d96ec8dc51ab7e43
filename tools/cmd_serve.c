/* cmd_serve.c - `vkmoe serve`: an OpenAI-compatible HTTP server on one model.
 *
 * Lifecycle: the HTTP server starts first (GET /health answers 503 while the model loads, every
 * other path 503 with Retry-After), then the model is opened with the flags run and chat take
 * (gen.h; -c is the total context, each of the --parallel N slots gets -c / N), then this thread
 * becomes the worker that runs up to N requests at once, continuously batched (serve_worker.c,
 * gen_batch.h), until SIGINT or SIGTERM: then it stops taking requests, ends the ones in progress
 * at the next step, answers the queued ones 503, closes the connections and exits 0.
 *
 * The endpoint handlers run on the connection threads (serve_http.c): they parse and validate the
 * request (serve_api.c), render the chat template and tokenize (the tokenizer and template are
 * read-only once loaded), refuse a prompt longer than a slot's context, and queue the job; a
 * streamed answer is then pulled from the job as it is generated, a whole one waited for. */
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "err.h"
#include "gen.h"
#include "serve.h"
#include "serve_worker.h"

static const char *const USAGE =
    "vkmoe serve -m MODEL.gguf [--host ADDR] [--port N] [--parallel N] [-c CTX] [--api-key KEY] "
    "[--queue N] [--alias NAME] [-n N] [--temp T] [--top-k K] [--top-p P] [--min-p P] "
    "[--repeat-penalty R] [-s SEED] [--ignore-eos] [-t N] [--device N] [-sys TEXT] "
    "[--chat-template NAME] [--no-bos] [--kv-f32] [--vram-budget SIZE] [--expert-policy lru|lfu] "
    "[--prefetch on|off] [--profile] [--stats] [--quiet] "
    "[--expert-exec auto|gpu|cpu|upload] [--cpu-moe] [--n-cpu-moe N] [--cpu-threads N]";

enum {
    SERVE_MAX_BODY = 8 << 20,
    SERVE_DEFAULT_QUEUE = 16,
    SERVE_MAX_CONNECTIONS = 64,
    SERVE_MAX_PARALLEL = 64, /* slots: beyond, per-slot contexts and the step's batch get small */
};

static void print_help(void) {
    printf(
        "usage: %s\n\n"
        "Serves the model over HTTP with the OpenAI API, --parallel N requests at once (each\n"
        "step decodes one token of every one in one batch; later requests wait in a queue).\n"
        "Endpoints:\n"
        "  POST /v1/chat/completions  chat through the model's template; \"stream\": true for\n"
        "                             Server-Sent Events; R1 reasoning in reasoning_content\n"
        "                             (\"reasoning_format\": \"none\" keeps it in content)\n"
        "  POST /v1/completions       a raw prompt continued\n"
        "  GET  /v1/models            the model\n"
        "  GET  /health               200 when ready, 503 while the model loads\n"
        "  GET  /metrics              Prometheus counters: requests, tokens, speeds, queue,\n"
        "                             slots busy, decode steps and their tokens (the mean\n"
        "                             batch), expert cache hits/misses/uploaded bytes\n"
        "  POST /tokenize, /detokenize  {\"content\": text} <-> {\"tokens\": [ids]}\n"
        "Request fields: messages / prompt, max_tokens (or max_completion_tokens), temperature,\n"
        "top_p, top_k, min_p, seed, stop, stream, stream_options.include_usage; fields not\n"
        "given take the values of the flags below. n > 1, tools, logprobs and other options\n"
        "that would change the answer's shape are refused (400 naming the field). Bodies over\n"
        "8 MiB: 413. SIGINT or SIGTERM stops the server (exit status 0; a second one while it\n"
        "stops: at once, 130).\n\n"
        "  --host ADDR             address to listen on (default 127.0.0.1: this machine\n"
        "                          only; 0.0.0.0 for every interface)\n"
        "  --port N                TCP port (default 8080; 0 = any free port, printed)\n"
        "  --parallel N            slots: requests decoded at once, 1..%d (default 1); -c is\n"
        "                          the total context, each slot gets -c / N; a request goes\n"
        "                          to the free slot whose cache shares the longest prefix\n"
        "                          with its prompt and prefills only the rest\n"
        "  --api-key KEY           require \"Authorization: Bearer KEY\" (all but /health)\n"
        "  --queue N               requests that may wait (default %d; beyond: 503 with\n"
        "                          Retry-After)\n"
        "  --alias NAME            the model's name in the API (default: the file's name)\n"
        "  -sys, --system TEXT     system message for chats that have none\n",
        USAGE, SERVE_MAX_PARALLEL, SERVE_DEFAULT_QUEUE);
    gen_print_flags_help(stdout, -1);
    printf("  -h, --help              this help\n"
           "Of the flags shared with run, -r/--reverse-prompt/--stop (requests give \"stop\")\n"
           "and --hide-thinking (reasoning comes apart in reasoning_content) are refused; the\n"
           "\"(run: with --chat)\" notes do not apply; -n is the default of max_tokens.\n");
}

typedef struct serve_app {
    gen_opts o;
    gen_ctx g;
    serve_worker w;
    atomic_bool ready;
    const char *model_name;
    long long started;
    atomic_ullong http_requests;
} serve_app;

static volatile sig_atomic_t g_stop;

/* The first SIGINT/SIGTERM stops the server in order (exit 0); a second one while it stops exits
 * at once (130), should a connection or the device hold the stop up. */
static void on_stop(int sig) {
    (void)sig;
    if (g_stop) {
        static const char msg[] = "\nvkmoe: serve: stopped at once (second signal)\n";
        if (write(STDERR_FILENO, msg, sizeof msg - 1) < 0) {
            /* nothing to do: exiting anyway */
        }
        _exit(130);
    }
    g_stop = 1;
    gen_interrupted = 1;
}

/* ---- responses ---- */

static void resp_json(serve_http_resp *rs, int status, char *json) {
    rs->status = json ? status : 500;
    rs->body = json;
    rs->body_len = json ? strlen(json) : 0;
}

static void resp_error(serve_http_resp *rs, const serve_error *e) {
    resp_json(rs, e->status, serve_error_json(e));
}

static void resp_fail(serve_http_resp *rs, int status, const char *type, const char *code,
                      const char *param, const char *msg) {
    serve_error e;
    serve_fail(&e, status, type, code, param, "%s", msg);
    resp_error(rs, &e);
}

/* ---- generation endpoints ---- */

static bool conn_alive(const void *arg) {
    const serve_http_req *r = arg;
    return r->connected(r);
}

/* The prompt text of a chat request: its messages (the server's system message first when they
 * have none) through the chat template. NULL with e set. */
static char *render_chat(serve_app *a, const serve_req *q, size_t *len, serve_error *e) {
    bool has_system = false;
    for (size_t i = 0; i < q->n_msgs; i++) has_system |= q->msgs[i].role == VKM_CHAT_SYSTEM;
    const bool add = a->o.system && !has_system;
    vkm_chat_msg *msgs = malloc((q->n_msgs + 1) * sizeof *msgs);
    if (!msgs) {
        serve_fail(e, 500, "server_error", NULL, NULL, "out of memory");
        return NULL;
    }
    size_t n = 0;
    if (add) msgs[n++] = (vkm_chat_msg){VKM_CHAT_SYSTEM, a->o.system};
    for (size_t i = 0; i < q->n_msgs; i++) msgs[n++] = q->msgs[i];
    char *text = NULL;
    vkm_chat_render_opts ro = {.add_generation_prompt = true};
    if (vkm_chat_render(a->g.tmpl, msgs, n, &ro, &text, len)) {
        serve_fail(e, 400, "invalid_request_error", NULL, "messages", "%s", vkm_errmsg());
        text = NULL;
    }
    free(msgs);
    return text;
}

static void h_generate(serve_app *a, const serve_http_req *rq, serve_http_resp *rs,
                       enum serve_kind kind) {
    serve_req q;
    serve_error e;
    const int prc = kind == SERVE_CHAT ? serve_parse_chat(rq->body, rq->body_len, &q, &e)
                                       : serve_parse_completion(rq->body, rq->body_len, &q, &e);
    if (prc) return resp_error(rs, &e);
    char *rendered = NULL;
    size_t len = q.prompt_len;
    const char *text = q.prompt;
    if (kind == SERVE_CHAT) {
        if (!(rendered = render_chat(a, &q, &len, &e))) {
            serve_req_free(&q);
            return resp_error(rs, &e);
        }
        text = rendered;
    }
    int32_t *ids = NULL;
    size_t n = 0;
    const int trc = vkm_tok_encode(a->g.tok, text, len, !a->o.no_bos, true, &ids, &n);
    free(rendered);
    const char *param = kind == SERVE_CHAT ? "messages" : "prompt";
    if (trc || n == 0 || n > (size_t)a->g.n_ctx) {
        char msg[256];
        if (trc)
            snprintf(msg, sizeof msg, "the prompt cannot be tokenized: %s", vkm_errmsg());
        else if (!n)
            snprintf(msg, sizeof msg, "the prompt is empty (no tokens)");
        else if (a->w.n_slots > 1)
            snprintf(msg, sizeof msg,
                     "the prompt is %zu tokens, longer than the context of %d tokens of a slot "
                     "(-c %ld shared by --parallel %d)",
                     n, a->g.n_ctx, (long)a->g.n_ctx * a->w.n_slots, a->w.n_slots);
        else
            snprintf(msg, sizeof msg,
                     "the prompt is %zu tokens, longer than the context of %d tokens", n,
                     a->g.n_ctx);
        free(ids);
        serve_req_free(&q);
        return resp_fail(rs, trc ? 500 : 400, trc ? "server_error" : "invalid_request_error",
                         n ? "context_length_exceeded" : NULL, param, msg);
    }
    const bool stream = q.stream;
    serve_job *j = serve_job_new(&q, ids, (int)n, a->model_name);
    if (!j) return resp_fail(rs, 500, "server_error", NULL, NULL, "out of memory");
    if (serve_worker_submit(&a->w, j)) {
        serve_job_unref(j);
        rs->retry_after = 1;
        return resp_fail(rs, 503, "server_error", "queue_full", NULL,
                         g_stop ? "the server is shutting down"
                                : "the server is busy: the request queue is full; retry");
    }
    if (stream) {
        rs->status = 200;
        rs->stream = (serve_stream){serve_job_pull, serve_job_release, j};
        return;
    }
    serve_job_wait(j, conn_alive, rq);
    pthread_mutex_lock(&j->mu);
    rs->status = j->status;
    rs->body = j->out;
    rs->body_len = j->out_len;
    j->out = NULL;
    j->out_len = j->out_cap = 0;
    pthread_mutex_unlock(&j->mu);
    serve_job_unref(j);
}

/* ---- the other endpoints ---- */

static void h_tokenize(serve_app *a, const serve_http_req *rq, serve_http_resp *rs) {
    char *content;
    size_t len;
    bool add_special;
    serve_error e;
    if (serve_parse_tokenize(rq->body, rq->body_len, &content, &len, &add_special, &e))
        return resp_error(rs, &e);
    int32_t *ids = NULL;
    size_t n = 0;
    const int rc = vkm_tok_encode(a->g.tok, content, len, add_special, true, &ids, &n);
    free(content);
    if (rc) return resp_fail(rs, 500, "server_error", NULL, NULL, vkm_errmsg());
    resp_json(rs, 200, serve_tokens_json(ids, n));
    free(ids);
}

static void h_detokenize(serve_app *a, const serve_http_req *rq, serve_http_resp *rs) {
    int32_t *ids;
    size_t n;
    serve_error e;
    if (serve_parse_detokenize(rq->body, rq->body_len, vkm_tok_n_vocab(a->g.tok), &ids, &n, &e))
        return resp_error(rs, &e);
    char *text = NULL;
    size_t len = 0;
    const int rc = vkm_tok_decode(a->g.tok, ids, n, true, &text, &len);
    free(ids);
    if (rc) return resp_fail(rs, 500, "server_error", NULL, NULL, vkm_errmsg());
    resp_json(rs, 200, serve_content_json(text, len));
    free(text);
}

static void h_models(serve_app *a, const serve_http_req *rq, serve_http_resp *rs) {
    (void)rq;
    resp_json(rs, 200, serve_models_json(a->model_name, a->started, a->g.n_ctx));
}

static void h_health(serve_app *a, const serve_http_req *rq, serve_http_resp *rs) {
    (void)a, (void)rq;
    resp_json(rs, 200, strdup("{\"status\":\"ok\"}"));
}

/* Appends a formatted line to the growing text *s (NULL after a failure). */
static void addf(char **s, size_t *len, size_t *cap, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void addf(char **s, size_t *len, size_t *cap, const char *fmt, ...) {
    if (!*s) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        const int n = vsnprintf(*s + *len, *cap - *len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            free(*s);
            *s = NULL;
            return;
        }
        if ((size_t)n < *cap - *len) {
            *len += (size_t)n;
            return;
        }
        char *t = realloc(*s, *cap * 2);
        if (!t) {
            free(*s);
            *s = NULL;
            return;
        }
        *s = t;
        *cap *= 2;
    }
}

static void h_metrics(serve_app *a, const serve_http_req *rq, serve_http_resp *rs) {
    (void)rq;
    pthread_mutex_lock(&a->w.mu);
    const serve_metrics m = a->w.m;
    const int queued = a->w.q_len;
    pthread_mutex_unlock(&a->w.mu);
    size_t len = 0, cap = 4096;
    char *s = malloc(cap);
    if (s) s[0] = 0;
#define METRIC(name, type, help, fmt, ...)                                                         \
    addf(&s, &len, &cap, "# HELP vkmoe_" name " " help "\n# TYPE vkmoe_" name " " type "\n" fmt,   \
         __VA_ARGS__)
    METRIC("http_requests_total", "counter", "HTTP requests received.",
           "vkmoe_http_requests_total %llu\n", (unsigned long long)atomic_load(&a->http_requests));
    METRIC("requests_total", "counter", "Generation requests finished, by result.",
           "vkmoe_requests_total{result=\"ok\"} %llu\nvkmoe_requests_total{result=\"failed\"} "
           "%llu\nvkmoe_requests_total{result=\"cancelled\"} %llu\n",
           m.requests_ok, m.requests_failed, m.requests_cancelled);
    METRIC("requests_rejected_total", "counter", "Requests refused because the queue was full.",
           "vkmoe_requests_rejected_total %llu\n", m.rejected_full);
    METRIC("queue_length", "gauge", "Requests waiting.", "vkmoe_queue_length %d\n", queued);
    METRIC("requests_processing", "gauge", "Requests being generated (slots busy).",
           "vkmoe_requests_processing %d\n", m.slots_busy);
    METRIC("slots_busy", "gauge", "Slots with a request.", "vkmoe_slots_busy %d\n", m.slots_busy);
    METRIC("slots_total", "gauge", "Slots (--parallel).", "vkmoe_slots_total %d\n", m.slots_total);
    METRIC("decode_steps_total", "counter",
           "Batched steps that decoded (one engine call each, every decoding slot together).",
           "vkmoe_decode_steps_total %llu\n", m.decode_steps);
    METRIC("decode_step_tokens_total", "counter",
           "Tokens decoded in those steps (/ decode_steps_total = the mean batch).",
           "vkmoe_decode_step_tokens_total %llu\n", m.decode_step_tokens);
    METRIC("mixed_steps_total", "counter",
           "Decode steps that also prefilled a prompt chunk (prefill interleaved with decoding).",
           "vkmoe_mixed_steps_total %llu\n", m.mixed_steps);
    METRIC("prompt_tokens_total", "counter", "Prompt tokens of the requests served.",
           "vkmoe_prompt_tokens_total %llu\n", m.prompt_tokens);
    METRIC("prefill_tokens_total", "counter",
           "Prompt tokens evaluated (the rest was reused from the KV cache).",
           "vkmoe_prefill_tokens_total %llu\n", m.prefill_tokens);
    METRIC("generated_tokens_total", "counter", "Tokens generated.",
           "vkmoe_generated_tokens_total %llu\n", m.generated_tokens);
    METRIC("prefill_tokens_per_second", "gauge", "Prompt evaluation speed, over all requests.",
           "vkmoe_prefill_tokens_per_second %.3f\n",
           m.prefill_s > 0 ? (double)m.prefill_tokens / m.prefill_s : 0.0);
    METRIC("decode_tokens_per_second", "gauge", "Generation speed, over all requests.",
           "vkmoe_decode_tokens_per_second %.3f\n",
           m.decode_s > 0 ? (double)m.generated_tokens / m.decode_s : 0.0);
    METRIC("expert_paging", "gauge", "1 when routed experts are paged from host memory.",
           "vkmoe_expert_paging %d\n", m.experts.paged ? 1 : 0);
    METRIC("expert_hits_total", "counter", "Expert cache hits (as of the last step).",
           "vkmoe_expert_hits_total %llu\n", (unsigned long long)m.experts.hits);
    METRIC("expert_misses_total", "counter", "Expert cache misses (as of the last step).",
           "vkmoe_expert_misses_total %llu\n", (unsigned long long)m.experts.misses);
    METRIC("expert_uploaded_bytes_total", "counter", "Expert bytes uploaded host to device.",
           "vkmoe_expert_uploaded_bytes_total %llu\n",
           (unsigned long long)m.experts.uploaded_bytes);
#undef METRIC
    rs->status = s ? 200 : 500;
    rs->content_type = "text/plain; version=0.0.4";
    rs->body = s;
    rs->body_len = s ? len : 0;
}

/* ---- routing ---- */

typedef void (*handler_fn)(serve_app *a, const serve_http_req *rq, serve_http_resp *rs);

static void h_chat(serve_app *a, const serve_http_req *rq, serve_http_resp *rs) {
    h_generate(a, rq, rs, SERVE_CHAT);
}

static void h_completions(serve_app *a, const serve_http_req *rq, serve_http_resp *rs) {
    h_generate(a, rq, rs, SERVE_COMPLETION);
}

static const struct route {
    const char *path, *method;
    handler_fn fn;
} ROUTES[] = {
    {"/v1/chat/completions", "POST", h_chat},
    {"/chat/completions", "POST", h_chat},
    {"/v1/completions", "POST", h_completions},
    {"/completions", "POST", h_completions},
    {"/v1/models", "GET", h_models},
    {"/models", "GET", h_models},
    {"/health", "GET", h_health},
    {"/v1/health", "GET", h_health},
    {"/metrics", "GET", h_metrics},
    {"/tokenize", "POST", h_tokenize},
    {"/detokenize", "POST", h_detokenize},
};

static void on_http(void *app, const serve_http_req *rq, serve_http_resp *rs) {
    serve_app *a = app;
    atomic_fetch_add(&a->http_requests, 1);
    const struct route *r = NULL;
    for (size_t i = 0; i < sizeof ROUTES / sizeof ROUTES[0]; i++)
        if (!strcmp(rq->path, ROUTES[i].path)) r = &ROUTES[i];
    if (!r)
        return resp_fail(rs, 404, "invalid_request_error", "not_found", NULL,
                         "no such endpoint (see `vkmoe serve --help`)");
    const bool head = !strcmp(rq->method, "HEAD") && !strcmp(r->method, "GET");
    if (strcmp(rq->method, r->method) && !head) {
        rs->allow = r->method;
        char msg[128];
        snprintf(msg, sizeof msg, "%s takes %s, not %.16s", r->path, r->method, rq->method);
        return resp_fail(rs, 405, "invalid_request_error", "method_not_allowed", NULL, msg);
    }
    if (!atomic_load(&a->ready)) {
        rs->retry_after = 5;
        return resp_fail(rs, 503, "unavailable_error", "loading", NULL, "the model is loading");
    }
    r->fn(a, rq, rs);
}

/* ---- the command ---- */

static const char *base_name(const char *path) {
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

int cmd_serve(int argc, char **argv) {
    static serve_app a; /* the HTTP threads see it until they are joined */
    memset(&a, 0, sizeof a);
    gen_opts_init(&a.o, -1);
    const char *host = "127.0.0.1", *api_key = NULL, *alias = NULL;
    long port = 8080, parallel = 1, queue = SERVE_DEFAULT_QUEUE;
    for (int i = 1; i < argc; i++) {
        const char *a1 = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (cli_is_help(a1)) {
            print_help();
            return CLI_OK;
        }
        if (!strcmp(a1, "-r") || !strcmp(a1, "--reverse-prompt") || !strcmp(a1, "--stop") ||
            !strcmp(a1, "--hide-thinking"))
            return cli_usage_error(USAGE,
                                   "%s is not a serve option (requests give \"stop\"; "
                                   "reasoning comes apart in reasoning_content)",
                                   a1);
        int rc = gen_parse_flag(&a.o, argc, argv, &i, USAGE);
        if (rc != GEN_NOT_MINE) {
            if (rc) return rc;
        } else if (!strcmp(a1, "--host")) {
            if (!v || !v[0]) return cli_usage_error(USAGE, "--host needs an address");
            host = argv[++i];
        } else if (!strcmp(a1, "--port")) {
            if (!cli_parse_long(v, 0, 65535, &port))
                return cli_usage_error(USAGE, "--port needs a port number 0..65535");
            i++;
        } else if (!strcmp(a1, "--parallel") || !strcmp(a1, "-np")) {
            if (!cli_parse_long(v, 1, SERVE_MAX_PARALLEL, &parallel))
                return cli_usage_error(USAGE, "%s needs a number of slots 1..%d", a1,
                                       SERVE_MAX_PARALLEL);
            i++;
        } else if (!strcmp(a1, "--api-key")) {
            if (!v || !v[0]) return cli_usage_error(USAGE, "--api-key needs a key");
            api_key = argv[++i];
        } else if (!strcmp(a1, "--queue")) {
            if (!cli_parse_long(v, 1, 4096, &queue))
                return cli_usage_error(USAGE, "--queue needs a number of requests 1..4096");
            i++;
        } else if (!strcmp(a1, "--alias")) {
            if (!v || !v[0]) return cli_usage_error(USAGE, "--alias needs a name");
            alias = argv[++i];
        } else if (a1[0] == '-') {
            return cli_usage_error(USAGE, "unknown option '%s'", a1);
        } else {
            return cli_usage_error(USAGE, "unexpected argument '%s'", a1);
        }
    }
    if (!a.o.model) return cli_usage_error(USAGE, "missing -m MODEL.gguf");
    a.model_name = alias ? alias : base_name(a.o.model);
    a.started = (long long)time(NULL);

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = on_stop;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);

    a.o.n_seq = (int)parallel; /* -c is the total context: each slot gets -c / N */
    int rc = serve_worker_init(&a.w, &a.g, &a.o, (int)queue, (int)parallel);
    if (rc) return rc;
    serve_http_opts ho = {.host = host,
                          .port = (int)port,
                          .api_key = api_key,
                          .max_body = SERVE_MAX_BODY,
                          .max_connections = SERVE_MAX_CONNECTIONS,
                          .handler = on_http,
                          .app = &a};
    serve_http *h = NULL;
    if (serve_http_start(&ho, &h)) {
        serve_worker_destroy(&a.w);
        return CLI_ERROR;
    }
    const bool v6 = strchr(host, ':') != NULL;
    fprintf(stderr, "vkmoe: serve: listening on http://%s%s%s:%d/ (loading the model)\n",
            v6 ? "[" : "", host, v6 ? "]" : "", serve_http_port(h));
    rc = gen_open(&a.g, &a.o, true);
    if (!rc && !g_stop) {
        atomic_store(&a.ready, true);
        if (!a.o.quiet)
            fprintf(stderr,
                    "vkmoe: serve: ready (model \"%s\"; %ld slot%s, context %d tokens each, "
                    "%ld in all)\n",
                    a.model_name, parallel, parallel == 1 ? "" : "s", a.g.n_ctx,
                    parallel * a.g.n_ctx);
    }
    if (!rc) rc = serve_worker_run(&a.w, &g_stop);
    if (!a.o.quiet) fprintf(stderr, "vkmoe: serve: stopping\n");
    serve_http_quiesce(h, 3000); /* the answers just finished get out */
    serve_http_stop(h);
    if (!rc && a.g.seq.session) gen_print_timings(&a.g);
    gen_close(&a.g);
    serve_worker_destroy(&a.w);
    return rc;
}
