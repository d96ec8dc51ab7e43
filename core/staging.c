/* staging.c - the staging ring of paged experts (staging.h): RING_CHUNKS host-visible chunks of
 * up to STAGING_CHUNK bytes, reused in turn, through which experts.c uploads a unit's matrices
 * from the file mapping into its slot when they are not imported. Each chunk's memcpy is split
 * into pieces of >= 1 MiB shared by a small persistent pool of staging threads, min(4, online
 * CPUs - 1) by default (VKMOE_STAGING_THREADS overrides, 0 = the calling thread alone), and the
 * memcpy of one chunk overlaps the device copy of the previous one.
 *
 * Invariants: a chunk is written only after the copy that last read it (ring_ticket) is done;
 * one copy job at a time, from the thread that owns the engine. */
#include "staging.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "err.h"

#define STAGING_CHUNK ((size_t)8 << 20) /* bytes per staging ring chunk, at most */
#define RING_CHUNKS 4                   /* staging ring chunks */
#define STAGING_PIECE ((size_t)1 << 20) /* parallel staging copy: bytes per piece, at least */
#define MAX_STAGING_THREADS 16          /* VKMOE_STAGING_THREADS: at most */
#define DEFAULT_STAGING_THREADS 4       /* default: min(this, online CPUs - 1) */

/* The persistent workers that copy a staging chunk from the file mapping in pieces together
 * with the thread that asks (staging_copy). One job at a time; every field past the threads is
 * read and written under mu only (the pieces' bytes are disjoint and the asking thread sees them
 * complete through mu once finished == n_pieces). */
typedef struct staging_pool {
    pthread_t th[MAX_STAGING_THREADS]; /* [n_threads] started workers */
    int n_threads;
    pthread_mutex_t mu;
    pthread_cond_t work; /* a job was posted, or stop */
    pthread_cond_t done; /* finished reached n_pieces */
    bool stop;
    char *dst;
    const char *src;
    size_t min_piece;        /* bytes per piece at least: STAGING_PIECE (tests: env) */
    size_t len, piece;       /* the job: len bytes in pieces of `piece` (the last shorter) */
    uint32_t n_pieces, next; /* pieces of the job; first not yet taken */
    uint32_t finished;       /* pieces copied */
} staging_pool;

struct vkm_staging {
    vkm_gpu *gpu;
    vkm_gpu_buf *ring[RING_CHUNKS];    /* host staging chunks of chunk_bytes, reused in turn */
    uint64_t ring_ticket[RING_CHUNKS]; /* ticket of the copy reading each chunk, 0 = none */
    int ring_next;
    size_t chunk_bytes;
    staging_pool *pool; /* NULL: each chunk is copied by the calling thread alone */
};

/* ---------------------------------------------------------------- staging threads ---- */

/* Copies the pieces of the posted job that nobody has taken yet; called and returns with mu
 * held. */
static void staging_run_pieces(staging_pool *p) {
    while (p->next < p->n_pieces) {
        const size_t i = p->next++;
        const size_t at = i * p->piece, n = p->len - at < p->piece ? p->len - at : p->piece;
        char *dst = p->dst + at;
        const char *src = p->src + at;
        pthread_mutex_unlock(&p->mu);
        memcpy(dst, src, n);
        pthread_mutex_lock(&p->mu);
        if (++p->finished == p->n_pieces) pthread_cond_signal(&p->done);
    }
}

static void *staging_worker(void *arg) {
    staging_pool *p = arg;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->stop && p->next >= p->n_pieces) pthread_cond_wait(&p->work, &p->mu);
        if (p->stop) break;
        staging_run_pieces(p);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

/* Stops and joins the workers; accepts NULL. */
static void staging_destroy(staging_pool *p) {
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    p->stop = true;
    pthread_cond_broadcast(&p->work);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->n_threads; i++) pthread_join(p->th[i], NULL);
    pthread_cond_destroy(&p->done);
    pthread_cond_destroy(&p->work);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

/* A non-negative integer environment variable up to max: *out unchanged when unset or empty,
 * VKM_EINVAL when malformed. */
static int env_count(const char *name, long max, long *out) {
    const char *v = getenv(name);
    if (!v || !*v) return 0;
    char *end;
    errno = 0;
    const long n = strtol(v, &end, 10);
    if (*end || errno || n < 0 || n > max)
        return vkm_error(VKM_EINVAL, "%s='%s' must be 0..%ld", name, v, max);
    *out = n;
    return 0;
}

/* Starts the staging workers (*out stays NULL for none). Failing to start threads is not an
 * error: the copies then use the workers that did start, or none. */
static int staging_create(staging_pool **out) {
    /* workers: VKMOE_STAGING_THREADS, else min(DEFAULT_STAGING_THREADS, online CPUs - 1);
     * VKMOE_STAGING_PIECE (bytes, tests only) lowers the piece size so small models split too */
    const long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    long n = cpus <= 1                            ? 0
             : cpus - 1 < DEFAULT_STAGING_THREADS ? cpus - 1
                                                  : DEFAULT_STAGING_THREADS;
    long piece = (long)STAGING_PIECE;
    int rc;
    if ((rc = env_count("VKMOE_STAGING_THREADS", MAX_STAGING_THREADS, &n)) ||
        (rc = env_count("VKMOE_STAGING_PIECE", (long)STAGING_PIECE, &piece)))
        return rc;
    if (n == 0) return 0;
    staging_pool *p = calloc(1, sizeof *p);
    if (!p) return vkm_error(VKM_ENOMEM, "out of memory");
    if (pthread_mutex_init(&p->mu, NULL)) {
        free(p);
        return 0;
    }
    if (pthread_cond_init(&p->work, NULL)) {
        pthread_mutex_destroy(&p->mu);
        free(p);
        return 0;
    }
    if (pthread_cond_init(&p->done, NULL)) {
        pthread_cond_destroy(&p->work);
        pthread_mutex_destroy(&p->mu);
        free(p);
        return 0;
    }
    p->min_piece = piece > 64 ? (size_t)piece : 64;
    while (p->n_threads < n && !pthread_create(&p->th[p->n_threads], NULL, staging_worker, p))
        p->n_threads++;
    if (p->n_threads == 0) {
        staging_destroy(p);
        return 0;
    }
    *out = p;
    return 0;
}

/* memcpy(dst, src, len), split into pieces of at least min_piece bytes copied by the staging
 * workers and the calling thread; returns when every byte is in place. */
static void staging_copy(staging_pool *p, void *dst, const void *src, size_t len) {
    const size_t most = p ? (size_t)p->n_threads + 1 : 1;
    size_t n = p ? len / p->min_piece : 0;
    n = n < most ? n : most;
    if (n < 2) {
        memcpy(dst, src, len);
        return;
    }
    size_t piece = (len + n - 1) / n;
    piece = (piece + 63) & ~(size_t)63; /* whole cache lines */
    pthread_mutex_lock(&p->mu);
    p->dst = dst;
    p->src = src;
    p->len = len;
    p->piece = piece;
    p->n_pieces = (uint32_t)((len + piece - 1) / piece);
    p->next = p->finished = 0;
    pthread_cond_broadcast(&p->work);
    staging_run_pieces(p);
    while (p->finished < p->n_pieces) pthread_cond_wait(&p->done, &p->mu);
    p->n_pieces = p->next = p->finished = 0;
    pthread_mutex_unlock(&p->mu);
}

/* ----------------------------------------------------------------------- the ring ---- */

int vkm_staging_create(vkm_gpu *gpu, size_t max_copy, vkm_staging **out) {
    *out = NULL;
    vkm_staging *s = calloc(1, sizeof *s);
    if (!s) return vkm_error(VKM_ENOMEM, "out of memory");
    s->gpu = gpu;
    s->chunk_bytes = max_copy < STAGING_CHUNK ? max_copy : STAGING_CHUNK;
    int rc = staging_create(&s->pool);
    for (int i = 0; !rc && i < RING_CHUNKS; i++) {
        if ((rc = vkm_gpu_buf_create(gpu, s->chunk_bytes, VKM_BUF_HOST, &s->ring[i]))) break;
        if (!vkm_gpu_buf_map(s->ring[i]))
            rc = vkm_error(VKM_EUNSUPPORTED, "the expert staging buffer is not host visible");
    }
    if (rc) {
        vkm_staging_destroy(s);
        return rc;
    }
    *out = s;
    return 0;
}

void vkm_staging_destroy(vkm_staging *s) {
    if (!s) return;
    staging_destroy(s->pool);
    for (int i = 0; i < RING_CHUNKS; i++) vkm_gpu_buf_destroy(s->gpu, s->ring[i]);
    free(s);
}

int vkm_staging_upload(vkm_staging *s, const void *from, size_t bytes, vkm_gpu_buf *dst, size_t off,
                       uint64_t *ticket) {
    const char *src = from;
    int rc;
    for (size_t at = 0; at < bytes; at += s->chunk_bytes) {
        const size_t len = bytes - at < s->chunk_bytes ? bytes - at : s->chunk_bytes;
        const int r = s->ring_next;
        if (s->ring_ticket[r] && (rc = vkm_gpu_ticket_wait(s->gpu, s->ring_ticket[r]))) return rc;
        staging_copy(s->pool, vkm_gpu_buf_map(s->ring[r]), src + at, len);
        uint64_t t = 0;
        if ((rc = vkm_gpu_copy_async(s->gpu, s->ring[r], 0, dst, off + at, len, &t))) return rc;
        s->ring_ticket[r] = t;
        s->ring_next = (r + 1) % RING_CHUNKS;
        *ticket = t;
    }
    return 0;
}
