/* cpu_threads.c - spreads a CPU Vulkan driver's compute workers over the cores (cpu_threads.h).
 *
 * Invariants: only threads created between the snapshot and the pin call are touched, only
 * unnamed ones (named like the main thread), and only by narrowing their CPU affinity to one core
 * of the set this thread is allowed; every failure (no /proc, a thread gone meanwhile, a refused
 * affinity) is skipped silently. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "cpu_threads.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#ifdef __linux__
#include <dirent.h>
#include <sched.h>
#include <stdio.h>
#include <unistd.h>

static int cmp_int(const void *a, const void *b) {
    const int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

/* Reads a thread's name (/proc/self/task/TID/comm, or the process's for tid 0) into `name`. */
static int thread_name(int tid, char *name, size_t size) {
    char path[64];
    if (tid)
        snprintf(path, sizeof path, "/proc/self/task/%d/comm", tid);
    else
        snprintf(path, sizeof path, "/proc/self/comm");
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    const bool ok = fgets(name, (int)size, f) != NULL;
    fclose(f);
    if (!ok) return -1;
    name[strcspn(name, "\n")] = 0;
    return 0;
}

void vkm_vk_threads_snapshot(vkm_vk_threads *t) {
    t->n = 0;
    DIR *d = opendir("/proc/self/task");
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d)) && t->n < VKM_VK_THREADS_MAX) {
        char *end;
        const long tid = strtol(e->d_name, &end, 10);
        if (*end || tid <= 0 || tid > 0x7fffffff) continue;
        t->tid[t->n++] = (int)tid;
    }
    closedir(d);
    qsort(t->tid, (size_t)t->n, sizeof t->tid[0], cmp_int);
}

static bool contains(const vkm_vk_threads *t, int tid) {
    return bsearch(&tid, t->tid, (size_t)t->n, sizeof t->tid[0], cmp_int) != NULL;
}

int vkm_vk_threads_pin_new(const vkm_vk_threads *before) {
    const char *env = getenv("VKMOE_PIN_THREADS");
    if (env && !strcmp(env, "0")) return 0;
    cpu_set_t allowed;
    if (sched_getaffinity(0, sizeof allowed, &allowed)) return 0;
    int cpus[CPU_SETSIZE], n_cpus = 0;
    for (int c = 0; c < CPU_SETSIZE; c++)
        if (CPU_ISSET(c, &allowed)) cpus[n_cpus++] = c;
    if (n_cpus < 2) return 0;
    char self[64];
    if (thread_name(0, self, sizeof self)) return 0;
    vkm_vk_threads *now = malloc(sizeof *now);
    if (!now) return 0;
    vkm_vk_threads_snapshot(now);
    int pinned = 0;
    for (int i = 0; i < now->n; i++) {
        char name[64];
        if (contains(before, now->tid[i]) || thread_name(now->tid[i], name, sizeof name) ||
            strcmp(name, self))
            continue;
        cpu_set_t one;
        CPU_ZERO(&one);
        CPU_SET(cpus[pinned % n_cpus], &one);
        if (!sched_setaffinity(now->tid[i], sizeof one, &one)) pinned++;
    }
    free(now);
    return pinned;
}

#else

void vkm_vk_threads_snapshot(vkm_vk_threads *t) {
    t->n = 0;
}

int vkm_vk_threads_pin_new(const vkm_vk_threads *before) {
    (void)before;
    return 0;
}

#endif
