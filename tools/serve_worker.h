/* serve_worker.h - the job queue of `vkmoe serve` and the worker that owns the engine sessions
 * (serve_worker.c).
 *
 * HTTP threads build a job (a parsed request and its prompt tokens) and submit it to a bounded
 * queue; the worker (the main thread, after the model is loaded) runs up to N jobs at once in N
 * slots (--parallel), continuously batched (gen_batch.h): every step decodes one token of each
 * slot in one engine call, a job joins or leaves between steps, a new prompt is prefilled in
 * chunks within the steps. A job goes to the free slot whose KV cache shares the longest prefix
 * with its prompt (the previous prompt and answer: a chat's next turn), which evaluates only the
 * rest. Output goes into the job's buffer: SSE events while it streams, or the whole JSON answer
 * at the end.
 *
 * Ownership: a job is referenced by its HTTP thread and, once submitted, by the worker; the last
 * serve_job_unref frees it. Everything in a job below `mu` is guarded by it. */
#ifndef VKM_SERVE_WORKER_H
#define VKM_SERVE_WORKER_H

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>

#include "gen.h"
#include "serve.h"

typedef struct serve_job {
    serve_req req;
    int32_t *ids; /* [n_ids] prompt tokens */
    int n_ids;
    serve_meta meta;
    atomic_bool cancel; /* the client went away: stop at the next token */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int refs;
    char *out; /* [out_cap]: SSE bytes (stream) or the JSON body */
    size_t out_len, out_cap, out_sent;
    bool done;
    int status; /* HTTP status of a non-streamed answer */
} serve_job;

/* A job taking over req (zeroed) and ids; refs = 1. NULL when out of memory (both freed). */
serve_job *serve_job_new(serve_req *req, int32_t *ids, int n_ids, const char *model);
void serve_job_unref(serve_job *j);

/* Counters for /metrics, read under serve_worker.mu. */
typedef struct serve_metrics {
    unsigned long long requests_ok, requests_failed, requests_cancelled, rejected_full;
    unsigned long long prompt_tokens;  /* tokens of the prompts served */
    unsigned long long prefill_tokens; /* of those, evaluated (not reused from the cache) */
    unsigned long long generated_tokens;
    double prefill_s, decode_s;
    vkm_expert_stats experts; /* as of the last step */
    int slots_busy, slots_total;
    unsigned long long decode_steps;       /* steps that decoded */
    unsigned long long decode_step_tokens; /* tokens decoded in them: / decode_steps = mean batch */
    unsigned long long mixed_steps;        /* of those, steps that also prefilled a prompt chunk */
} serve_metrics;

typedef struct job_run job_run;

typedef struct serve_worker {
    gen_ctx *g;
    const gen_opts *base; /* the server's flags: defaults of every request */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    serve_job **q; /* [q_cap] ring */
    int q_cap, q_head, q_len;
    bool stopping;
    serve_metrics m;
    int n_slots;
    job_run *runs; /* [n_slots] the worker's: the request in each slot */
} serve_worker;

/* n_slots: --parallel (the slots are made when the worker runs, on the opened g). */
int serve_worker_init(serve_worker *w, gen_ctx *g, const gen_opts *base, int queue_cap,
                      int n_slots);
void serve_worker_destroy(serve_worker *w);
/* Queues j (taking a reference). -1 when the queue is full or the worker is stopping. */
int serve_worker_submit(serve_worker *w, serve_job *j);
/* Runs queued jobs until *stop is set; then the requests in the slots end at the next step, every
 * queued job is answered 503 and later submits are refused. CLI_ERROR (printed) when the slots
 * cannot be made. */
int serve_worker_run(serve_worker *w, volatile sig_atomic_t *stop);

/* HTTP side: a stream source over j's output (serve_stream.pull / release). */
ssize_t serve_job_pull(void *job, char *buf, size_t max, bool (*alive)(void *conn), void *conn);
void serve_job_release(void *job);
/* Waits for a non-streamed job; polls still_there(arg) and cancels the job if it says false. */
void serve_job_wait(serve_job *j, bool (*still_there)(const void *arg), const void *arg);

#endif
