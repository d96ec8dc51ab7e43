/* serve_worker.c - the job queue and the worker of `vkmoe serve` (serve_worker.h).
 *
 * The worker owns the slots (gen_batch.h: continuous batching). Between steps it moves queued
 * jobs into free slots (the one whose cache shares the longest prefix with the prompt), each with
 * the server's options overridden by the request's sampling fields and a fresh sampler seeded per
 * request and fed the whole prompt, as run's is; then one step evaluates every slot together.
 * Generated text passes through the slot's output filter (stop strings, reasoning split;
 * serve_think.c) into the job's buffer. A stop string, a cancelled client or shutdown ends a
 * request at the next step (gen_req.halt); its end answers it and frees the slot. */
#include "serve_worker.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "gen_batch.h"

static atomic_ullong job_counter;

serve_job *serve_job_new(serve_req *req, int32_t *ids, int n_ids, const char *model) {
    serve_job *j = calloc(1, sizeof *j);
    if (!j) {
        serve_req_free(req);
        free(ids);
        return NULL;
    }
    j->req = *req;
    memset(req, 0, sizeof *req);
    j->ids = ids;
    j->n_ids = n_ids;
    j->refs = 1;
    j->status = 200;
    atomic_init(&j->cancel, false);
    pthread_mutex_init(&j->mu, NULL);
    pthread_cond_init(&j->cv, NULL);
    const unsigned long long n = atomic_fetch_add(&job_counter, 1) + 1;
    snprintf(j->meta.id, sizeof j->meta.id, "%s-%llx%06llx",
             j->req.kind == SERVE_CHAT ? "chatcmpl" : "cmpl", (unsigned long long)time(NULL), n);
    j->meta.created = (long long)time(NULL);
    j->meta.model = model;
    return j;
}

void serve_job_unref(serve_job *j) {
    if (!j) return;
    pthread_mutex_lock(&j->mu);
    const int refs = --j->refs;
    pthread_mutex_unlock(&j->mu);
    if (refs) return;
    serve_req_free(&j->req);
    free(j->ids);
    free(j->out);
    pthread_mutex_destroy(&j->mu);
    pthread_cond_destroy(&j->cv);
    free(j);
}

/* Appends to the output (caller holds mu). False when out of memory. */
static bool out_append(serve_job *j, const char *s, size_t n) {
    if (j->out_len + n + 1 > j->out_cap) {
        size_t cap = j->out_cap ? j->out_cap : 1024;
        while (cap < j->out_len + n + 1) cap *= 2;
        char *o = realloc(j->out, cap);
        if (!o) return false;
        j->out = o;
        j->out_cap = cap;
    }
    memcpy(j->out + j->out_len, s, n);
    j->out_len += n;
    j->out[j->out_len] = 0;
    return true;
}

/* Appends one SSE event (taking json) and wakes the reader. */
static void emit_event(serve_job *j, char *json) {
    size_t n = 0;
    char *ev = json ? serve_sse_event(json, &n) : NULL;
    free(json);
    pthread_mutex_lock(&j->mu);
    if (ev) out_append(j, ev, n);
    pthread_cond_broadcast(&j->cv);
    pthread_mutex_unlock(&j->mu);
    free(ev);
}

/* Ends the job: status and, for a non-streamed one, its body (taken over). */
static void finish(serve_job *j, int status, char *body) {
    pthread_mutex_lock(&j->mu);
    if (body) {
        if (j->req.stream) {
            size_t n = 0;
            char *ev = serve_sse_event(body, &n);
            if (ev) out_append(j, ev, n);
            free(ev);
        } else {
            j->out_len = 0;
            out_append(j, body, strlen(body));
        }
    }
    if (j->req.stream) out_append(j, SERVE_SSE_DONE, strlen(SERVE_SSE_DONE));
    j->status = status;
    j->done = true;
    pthread_cond_broadcast(&j->cv);
    pthread_mutex_unlock(&j->mu);
    free(body);
}

static void finish_error(serve_job *j, int status, const char *type, const char *msg) {
    serve_error e;
    serve_fail(&e, status, type, NULL, NULL, "%s", msg);
    finish(j, status, serve_error_json(&e));
}

int serve_worker_init(serve_worker *w, gen_ctx *g, const gen_opts *base, int queue_cap,
                      int n_slots) {
    memset(w, 0, sizeof *w);
    w->g = g;
    w->n_slots = n_slots > 0 ? n_slots : 1;
    w->m.slots_total = w->n_slots;
    w->base = base;
    w->q_cap = queue_cap > 0 ? queue_cap : 1;
    if (!(w->q = calloc((size_t)w->q_cap, sizeof *w->q))) return cli_fail("out of memory");
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    return CLI_OK;
}

void serve_worker_destroy(serve_worker *w) {
    if (!w->q) return;
    free(w->q);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    memset(w, 0, sizeof *w);
}

int serve_worker_submit(serve_worker *w, serve_job *j) {
    pthread_mutex_lock(&w->mu);
    if (w->stopping || w->q_len == w->q_cap) {
        w->m.rejected_full += !w->stopping;
        pthread_mutex_unlock(&w->mu);
        return -1;
    }
    pthread_mutex_lock(&j->mu);
    j->refs++;
    pthread_mutex_unlock(&j->mu);
    w->q[(w->q_head + w->q_len++) % w->q_cap] = j;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    return 0;
}

/* ---- one request in a slot ---- */

struct job_run {
    serve_worker *w;
    serve_job *j; /* NULL: the slot is free */
    serve_filter filter;
    volatile sig_atomic_t *stop;
    bool first;                /* no chunk sent yet (the first carries the role) */
    char *content, *reasoning; /* non-streamed answer parts */
    size_t n_content, n_reasoning, cap_content, cap_reasoning;
    bool oom;
};

static void grow_append(char **buf, size_t *n, size_t *cap, const char *s, size_t len, bool *oom) {
    if (*n + len + 1 > *cap) {
        size_t c = *cap ? *cap : 1024;
        while (c < *n + len + 1) c *= 2;
        char *b = realloc(*buf, c);
        if (!b) {
            *oom = true;
            return;
        }
        *buf = b;
        *cap = c;
    }
    memcpy(*buf + *n, s, len);
    *n += len;
    (*buf)[*n] = 0;
}

/* Filter output: a chunk (stream) or the answer so far. */
static void on_run(void *user, bool reasoning, const char *text, size_t len) {
    job_run *r = user;
    serve_job *j = r->j;
    if (j->req.stream) {
        char *json = j->req.kind == SERVE_CHAT
                         ? serve_chat_chunk_json(&j->meta, r->first, reasoning, text, len, NULL)
                         : serve_completion_chunk_json(&j->meta, text, len, NULL);
        r->first = false;
        emit_event(j, json);
    } else if (reasoning) {
        grow_append(&r->reasoning, &r->n_reasoning, &r->cap_reasoning, text, len, &r->oom);
    } else {
        grow_append(&r->content, &r->n_content, &r->cap_content, text, len, &r->oom);
    }
}

/* The generated text: into the filter. */
static void on_text(void *user, const char *text, size_t len) {
    job_run *r = user;
    serve_filter_feed(&r->filter, text, len);
}

/* A stop string, a cancelled client or shutdown ends the request at the next step. */
static bool on_halt(void *user) {
    job_run *r = user;
    return r->filter.stopped || atomic_load(&r->j->cancel) || *r->stop;
}

/* The request's end: its answer (or the stream's last events), the counters. */
static void on_done(void *user, const gen_slot *slot, enum gen_stop why, int rc) {
    job_run *r = user;
    serve_job *j = r->j;
    serve_worker *w = r->w;
    serve_filter_end(&r->filter);
    const long n_gen = slot->seq->n_out;
    const serve_usage u = {.prompt_tokens = j->n_ids, .completion_tokens = n_gen};
    const bool cancelled_early = !rc && slot->state == GEN_SLOT_PREFILL;
    const bool cancelled = atomic_load(&j->cancel) || cancelled_early;
    const char *fin =
        r->filter.stopped || why == GEN_STOP_EOG || why == GEN_STOP_STRING || why == GEN_STOP_INTR
            ? "stop"
            : "length";
    if (rc) {
        finish_error(j, 500, "server_error", "generation failed (see the server's log)");
    } else if (cancelled && !j->req.stream) {
        finish_error(j, 503, "server_error", "the request was cancelled");
    } else if (r->oom || r->filter.oom) {
        finish_error(j, 500, "server_error", "out of memory");
    } else if (j->req.stream) {
        char *json = j->req.kind == SERVE_CHAT
                         ? serve_chat_chunk_json(&j->meta, r->first, false, NULL, 0, fin)
                         : serve_completion_chunk_json(&j->meta, NULL, 0, fin);
        emit_event(j, json);
        finish(j, 200,
               j->req.include_usage ? serve_usage_chunk_json(&j->meta, j->req.kind, &u) : NULL);
    } else {
        char *body = j->req.kind == SERVE_CHAT
                         ? serve_chat_json(&j->meta, r->content, r->n_content, r->reasoning,
                                           r->n_reasoning, fin, &u)
                         : serve_completion_json(&j->meta, r->content, r->n_content, fin, &u);
        if (body)
            finish(j, 200, body);
        else
            finish_error(j, 500, "server_error", "out of memory");
    }
    serve_filter_free(&r->filter);
    free(r->content);
    free(r->reasoning);

    pthread_mutex_lock(&w->mu);
    serve_metrics *m = &w->m;
    if (rc)
        m->requests_failed++;
    else if (cancelled)
        m->requests_cancelled++;
    else
        m->requests_ok++;
    m->prompt_tokens += (unsigned long long)j->n_ids;
    m->prefill_tokens += (unsigned long long)slot->n_prefill;
    m->generated_tokens += (unsigned long long)n_gen;
    m->prefill_s += slot->t_prefill;
    m->decode_s += slot->t_decode;
    pthread_mutex_unlock(&w->mu);
    serve_job_unref(j);
    memset(r, 0, sizeof *r);
}

/* Sampling options of the request over the server's. */
static void request_opts(const serve_req *q, const gen_opts *base, gen_opts *o) {
    *o = *base;
    if (q->has_temperature) o->sampling.temperature = (float)q->temperature;
    if (q->has_top_p) o->sampling.top_p = (float)q->top_p;
    if (q->has_top_k) o->sampling.top_k = (int)q->top_k;
    if (q->has_min_p) o->sampling.min_p = (float)q->min_p;
    if (q->has_seed) o->sampling.seed = q->seed;
    if (q->has_max_tokens) o->n_predict = q->max_tokens;
}

/* Starts j in the free slot that shares the longest prefix with its prompt. */
static void start_job(serve_worker *w, gen_batch *b, serve_job *j, volatile sig_atomic_t *stop) {
    const int i = gen_batch_pick(b, j->ids, j->n_ids);
    job_run *r = &w->runs[i];
    *r = (job_run){.w = w, .j = j, .stop = stop, .first = true};
    serve_filter_init(&r->filter, (const char *const *)j->req.stop, j->req.n_stop,
                      j->req.kind == SERVE_CHAT && !j->req.raw_reasoning, on_run, r);
    gen_opts o;
    request_opts(&j->req, w->base, &o);
    /* stop strings are the filter's: they are not part of the answer */
    const gen_req q = {.ids = j->ids,
                       .n_ids = j->n_ids,
                       .sampling = o.sampling,
                       .n_predict = o.n_predict,
                       .text = on_text,
                       .halt = on_halt,
                       .done = on_done,
                       .user = r};
    gen_batch_start(b, i, &q); /* an error is done() already */
}

int serve_worker_run(serve_worker *w, volatile sig_atomic_t *stop) {
    gen_batch b;
    int rc = gen_batch_init(&b, w->g, w->n_slots, GEN_BATCH_PREFILL_CHUNK);
    if (!rc && !(w->runs = calloc((size_t)w->n_slots, sizeof *w->runs)))
        rc = cli_fail("out of memory");
    serve_job **admit = rc ? NULL : calloc((size_t)w->n_slots, sizeof *admit);
    if (!rc && !admit) rc = cli_fail("out of memory");
    if (!rc) {
        vkm_expert_stats es;
        vkm_engine_expert_stats(w->g->engine, &es);
        pthread_mutex_lock(&w->mu);
        w->m.experts = es; /* paged or not, before the first request */
        pthread_mutex_unlock(&w->mu);
    }
    while (!rc) {
        pthread_mutex_lock(&w->mu);
        const int busy = gen_batch_busy(&b);
        if (!busy && (!w->q_len || *stop)) {
            if (*stop) {
                pthread_mutex_unlock(&w->mu);
                break;
            }
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += 100 * 1000 * 1000; /* signals cannot wake a condition: poll the flag */
            if (ts.tv_nsec >= 1000000000) ts.tv_sec++, ts.tv_nsec -= 1000000000;
            pthread_cond_timedwait(&w->cv, &w->mu, &ts);
            pthread_mutex_unlock(&w->mu);
            continue;
        }
        /* requests join between steps, as many as there are free slots */
        int n_admit = 0;
        while (!*stop && w->q_len && busy + n_admit < w->n_slots) {
            admit[n_admit++] = w->q[w->q_head];
            w->q_head = (w->q_head + 1) % w->q_cap;
            w->q_len--;
        }
        pthread_mutex_unlock(&w->mu);
        for (int k = 0; k < n_admit; k++) {
            serve_job *j = admit[k];
            if (atomic_load(&j->cancel)) { /* gone while it waited */
                finish_error(j, 503, "server_error", "the request was cancelled");
                pthread_mutex_lock(&w->mu);
                w->m.requests_cancelled++;
                pthread_mutex_unlock(&w->mu);
                serve_job_unref(j);
            } else {
                start_job(w, &b, j, stop); /* the slot's reference now */
            }
        }
        gen_batch_step(&b);
        vkm_expert_stats es;
        vkm_engine_expert_stats(w->g->engine, &es);
        pthread_mutex_lock(&w->mu);
        w->m.experts = es;
        w->m.slots_busy = gen_batch_busy(&b);
        w->m.decode_steps = b.st.decode_steps;
        w->m.decode_step_tokens = b.st.decode_tokens;
        w->m.mixed_steps = b.st.mixed_steps;
        pthread_mutex_unlock(&w->mu);
    }
    gen_batch_free(&b); /* (every request has ended: nothing is done() here) */
    free(admit);
    free(w->runs);
    w->runs = NULL;
    pthread_mutex_lock(&w->mu);
    w->stopping = true;
    w->m.slots_busy = 0;
    while (w->q_len) {
        serve_job *j = w->q[w->q_head];
        w->q_head = (w->q_head + 1) % w->q_cap;
        w->q_len--;
        finish_error(j, 503, "server_error", "the server is shutting down");
        serve_job_unref(j);
    }
    pthread_mutex_unlock(&w->mu);
    return rc;
}

/* ---- the HTTP side ---- */

static void deadline_ms(struct timespec *ts, long ms) {
    clock_gettime(CLOCK_REALTIME, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000) ts->tv_sec++, ts->tv_nsec -= 1000000000;
}

ssize_t serve_job_pull(void *job, char *buf, size_t max, bool (*alive)(void *conn), void *conn) {
    serve_job *j = job;
    pthread_mutex_lock(&j->mu);
    while (j->out_sent == j->out_len && !j->done) {
        struct timespec ts;
        deadline_ms(&ts, 250);
        pthread_cond_timedwait(&j->cv, &j->mu, &ts);
        if (j->out_sent == j->out_len && !j->done && alive && !alive(conn)) {
            /* gone while waiting (queued, or a long prompt): nothing to send it any more */
            atomic_store(&j->cancel, true);
            pthread_mutex_unlock(&j->mu);
            return -1;
        }
    }
    size_t n = j->out_len - j->out_sent;
    if (n > max) n = max;
    memcpy(buf, j->out + j->out_sent, n);
    j->out_sent += n;
    pthread_mutex_unlock(&j->mu);
    return (ssize_t)n;
}

void serve_job_release(void *job) {
    serve_job *j = job;
    atomic_store(&j->cancel, true); /* a no-op when it has finished */
    serve_job_unref(j);
}

void serve_job_wait(serve_job *j, bool (*still_there)(const void *arg), const void *arg) {
    pthread_mutex_lock(&j->mu);
    while (!j->done) {
        struct timespec ts;
        deadline_ms(&ts, 250);
        pthread_cond_timedwait(&j->cv, &j->mu, &ts);
        if (!j->done && still_there && !atomic_load(&j->cancel) && !still_there(arg)) {
            atomic_store(&j->cancel, true);
        }
    }
    pthread_mutex_unlock(&j->mu);
}
