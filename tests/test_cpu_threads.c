/* test_cpu_threads.c - vk/cpu_threads.c: the threads started after a snapshot, and only the
 * unnamed ones, get one allowed core each, round robin in creation order; VKMOE_PIN_THREADS=0
 * turns it off. Uses its own threads (no Vulkan device needed); skipped where the process may
 * run on fewer than 2 cores or there is no /proc. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "check.h"
#include "cpu_threads.h"

#define N_WORKERS 3

static atomic_int g_tids[N_WORKERS + 1];
static atomic_int g_started;
static atomic_bool g_stop;

/* Worker i publishes its thread id and waits; the last one names itself. */
static void *worker(void *arg) {
    const int i = (int)(intptr_t)arg;
    if (i == N_WORKERS) pthread_setname_np(pthread_self(), "named-helper");
    g_tids[i] = (int)syscall(SYS_gettid);
    atomic_fetch_add(&g_started, 1);
    while (!g_stop) usleep(1000);
    return NULL;
}

/* The one core a thread may run on, -1 if it may run on several (or on error). */
static int single_cpu(int tid) {
    cpu_set_t s;
    if (sched_getaffinity(tid, sizeof s, &s)) return -1;
    if (CPU_COUNT(&s) != 1) return -1;
    for (int c = 0; c < CPU_SETSIZE; c++)
        if (CPU_ISSET(c, &s)) return c;
    return -1;
}

/* Starts the workers (the last one named), runs pin_new against a snapshot taken before them,
 * and returns its result; the workers stay up until stop_workers. */
static pthread_t g_threads[N_WORKERS + 1];
static int start_and_pin(void) {
    vkm_vk_threads before;
    vkm_vk_threads_snapshot(&before);
    g_started = 0;
    g_stop = false;
    for (int i = 0; i <= N_WORKERS; i++)
        if (pthread_create(&g_threads[i], NULL, worker, (void *)(intptr_t)i)) {
            fprintf(stderr, "pthread_create failed\n");
            exit(1);
        }
    while (g_started < N_WORKERS + 1) usleep(1000);
    return vkm_vk_threads_pin_new(&before);
}

static void stop_workers(void) {
    g_stop = true;
    for (int i = 0; i <= N_WORKERS; i++) pthread_join(g_threads[i], NULL);
}

int main(void) {
    cpu_set_t allowed;
    if (sched_getaffinity(0, sizeof allowed, &allowed) || CPU_COUNT(&allowed) < 2 ||
        access("/proc/self/task", R_OK))
        check_skip("needs Linux /proc and at least 2 allowed cores");
    int cpus[CPU_SETSIZE], n_cpus = 0;
    for (int c = 0; c < CPU_SETSIZE; c++)
        if (CPU_ISSET(c, &allowed)) cpus[n_cpus++] = c;

    /* the snapshot holds this thread */
    vkm_vk_threads t;
    vkm_vk_threads_snapshot(&t);
    CHECK(t.n >= 1);
    bool found = false;
    for (int i = 0; i < t.n; i++) found |= t.tid[i] == (int)syscall(SYS_gettid);
    CHECK(found);
    for (int i = 1; i < t.n; i++) CHECK(t.tid[i - 1] < t.tid[i]);

    /* pinned: the unnamed new threads, one core each, round robin in thread-id order */
    unsetenv("VKMOE_PIN_THREADS");
    CHECK(start_and_pin() == N_WORKERS);
    int order[N_WORKERS];
    for (int i = 0; i < N_WORKERS; i++) order[i] = g_tids[i];
    for (int i = 0; i < N_WORKERS; i++) /* thread ids ascending */
        for (int j = i + 1; j < N_WORKERS; j++)
            if (order[j] < order[i]) {
                const int x = order[i];
                order[i] = order[j];
                order[j] = x;
            }
    for (int i = 0; i < N_WORKERS; i++)
        CHECK_MSG(single_cpu(order[i]) == cpus[i % n_cpus], "thread %d on %d, expected %d", i,
                  single_cpu(order[i]), cpus[i % n_cpus]);
    CHECK(single_cpu(g_tids[N_WORKERS]) == -1);        /* the named thread is left alone */
    CHECK(single_cpu((int)syscall(SYS_gettid)) == -1); /* so is this one */
    stop_workers();

    /* disabled: nothing pinned */
    setenv("VKMOE_PIN_THREADS", "0", 1);
    CHECK(start_and_pin() == 0);
    for (int i = 0; i <= N_WORKERS; i++) CHECK(single_cpu(g_tids[i]) == -1);
    stop_workers();
    unsetenv("VKMOE_PIN_THREADS");
    return check_done();
}
