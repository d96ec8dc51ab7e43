/* tmpdir.h - the scratch directory of a test program: tmpdir_make("name") creates
 * /tmp/vkmoe-name-XXXXXX in g_dir (exit 1 if it cannot), tmpdir_remove() deletes it and the plain
 * files in it. Header-only, for the tests that write GGUF files. */
#ifndef VKM_TMPDIR_H
#define VKM_TMPDIR_H

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static char g_dir[64];

static inline void tmpdir_make(const char *name) {
    snprintf(g_dir, sizeof g_dir, "/tmp/vkmoe-%s-XXXXXX", name);
    if (!mkdtemp(g_dir)) {
        perror("mkdtemp");
        exit(1);
    }
}

static inline void tmpdir_remove(void) {
    DIR *d = opendir(g_dir);
    if (!d) return;
    struct dirent *e;
    char path[512];
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        snprintf(path, sizeof path, "%s/%s", g_dir, e->d_name);
        unlink(path);
    }
    closedir(d);
    rmdir(g_dir);
}

#endif
