/* cpu_pool.c - the pthread pool of cpu_pool.h.
 *
 * A job is published under the mutex with a new generation number; workers sleep on `wake`
 * until the generation changes, then claim chunks from the atomic `next` counter until the
 * range is exhausted, and report on `done` when they leave the job. The caller claims chunks
 * too and then waits until every worker has joined the job and left it again, so no worker can
 * still touch the job (or claim from a later job's counter with this job's function) after
 * vkm_cpu_pool_run returns. */
#include "cpu_pool.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"

struct vkm_cpu_pool {
    pthread_mutex_t mu;
    pthread_cond_t wake; /* a new job or stop */
    pthread_cond_t done; /* a worker left the job */
    uint64_t gen;        /* job generation, under mu */
    int busy;            /* workers inside the current job, under mu */
    int joined;          /* workers that picked up the current job, under mu */
    bool stop;
    /* the current job (written under mu before gen changes) */
    vkm_cpu_pool_fn fn;
    void *ctx;
    int64_t n, chunk;
    atomic_int_fast64_t next; /* first item not yet claimed */
    int n_workers;
    pthread_t *threads; /* [n_workers] */
};

static void work(vkm_cpu_pool *p, vkm_cpu_pool_fn fn, void *ctx, int64_t n, int64_t chunk) {
    for (;;) {
        int64_t b = atomic_fetch_add(&p->next, chunk);
        if (b >= n) return;
        fn(ctx, b, b + chunk < n ? b + chunk : n);
    }
}

static void *worker_main(void *arg) {
    vkm_cpu_pool *p = arg;
    uint64_t seen = 0;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->stop && p->gen == seen) pthread_cond_wait(&p->wake, &p->mu);
        if (p->stop) break;
        seen = p->gen;
        vkm_cpu_pool_fn fn = p->fn;
        void *ctx = p->ctx;
        int64_t n = p->n, chunk = p->chunk;
        p->busy++;
        p->joined++;
        pthread_mutex_unlock(&p->mu);
        work(p, fn, ctx, n, chunk);
        pthread_mutex_lock(&p->mu);
        if (--p->busy == 0 && p->joined == p->n_workers) pthread_cond_signal(&p->done);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

int vkm_cpu_pool_create(int n_workers, vkm_cpu_pool **out) {
    *out = NULL;
    if (n_workers < 0 || n_workers > 256)
        return vkm_error(VKM_EINVAL, "CPU thread pool: %d workers (0..256)", n_workers);
    vkm_cpu_pool *p = calloc(1, sizeof *p);
    if (!p || (n_workers && !(p->threads = calloc((size_t)n_workers, sizeof *p->threads)))) {
        free(p);
        return vkm_error(VKM_ENOMEM, "CPU thread pool: out of memory");
    }
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->wake, NULL);
    pthread_cond_init(&p->done, NULL);
    atomic_init(&p->next, 0);
    for (int i = 0; i < n_workers; i++) {
        int e = pthread_create(&p->threads[i], NULL, worker_main, p);
        if (e) {
            vkm_cpu_pool_destroy(p);
            return vkm_error(VKM_EIO, "CPU thread pool: starting thread %d of %d failed: %s", i + 1,
                             n_workers, strerror(e));
        }
        p->n_workers = i + 1;
    }
    *out = p;
    return 0;
}

void vkm_cpu_pool_destroy(vkm_cpu_pool *p) {
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    p->stop = true;
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->n_workers; i++) pthread_join(p->threads[i], NULL);
    pthread_cond_destroy(&p->done);
    pthread_cond_destroy(&p->wake);
    pthread_mutex_destroy(&p->mu);
    free(p->threads);
    free(p);
}

int vkm_cpu_pool_workers(const vkm_cpu_pool *p) {
    return p ? p->n_workers : 0;
}

void vkm_cpu_pool_run(vkm_cpu_pool *p, vkm_cpu_pool_fn fn, void *ctx, int64_t n, int64_t chunk) {
    if (n <= 0) return;
    if (chunk < 1) chunk = 1;
    if (!p || p->n_workers == 0 || n <= chunk) {
        for (int64_t b = 0; b < n; b += chunk) fn(ctx, b, b + chunk < n ? b + chunk : n);
        return;
    }
    pthread_mutex_lock(&p->mu);
    p->fn = fn;
    p->ctx = ctx;
    p->n = n;
    p->chunk = chunk;
    atomic_store(&p->next, 0);
    p->joined = 0;
    p->gen++;
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    work(p, fn, ctx, n, chunk);
    /* Workers that wake late find the counter exhausted and leave at once. */
    pthread_mutex_lock(&p->mu);
    while (p->joined < p->n_workers || p->busy > 0) pthread_cond_wait(&p->done, &p->mu);
    pthread_mutex_unlock(&p->mu);
}
