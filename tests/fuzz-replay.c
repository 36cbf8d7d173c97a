/* fuzz-replay.c — run a libFuzzer target's inputs without libFuzzer.
 *
 *   tests/fuzz-addr-replay NAME DIR|FILE...
 *
 * Linked with one fuzz target (tests/fuzz-*.c) by the regular compiler, so
 * make check replays every committed corpus (tests/fuzz-corpus/NAME) with
 * or without clang.  LLVMFuzzerInitialize runs first when the target has
 * one; then each input (the files of each DIR, in name order, or each
 * FILE) runs once, in a child process of its own so that an abort, a
 * sanitizer report or a signal fails that input alone and the rest still
 * run.  Prints one line per failed input and a summary:
 *
 *   fuzz-addr: 39 passed, 0 failed
 *
 * Exit status: 0 if every input passed, 1 otherwise (or with no input at
 * all: an empty corpus replays nothing and proves nothing). */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));

static const char *name;
static unsigned passed, failed;

static int read_file(const char *path, uint8_t **data, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -errno;
    size_t cap = 4096, n = 0;
    uint8_t *buf = malloc(cap);
    for (;;) {
        if (!buf) {
            fclose(f);
            return -ENOMEM;
        }
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap)
            break;
        uint8_t *p = realloc(buf, cap * 2);
        if (!p)
            free(buf);
        buf = p;
        cap *= 2;
    }
    int err = ferror(f) ? -EIO : 0;
    fclose(f);
    if (err) {
        free(buf);
        return err;
    }
    /* An exact copy, so that a read past the end hits ASan's redzone. */
    uint8_t *exact = malloc(n ? n : 1);
    if (exact)
        memcpy(exact, buf, n);
    free(buf);
    if (!exact)
        return -ENOMEM;
    *data = exact;
    *size = n;
    return 0;
}

static void run_one(const char *path)
{
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "%s: fork: %s\n", name, strerror(errno));
        failed++;
        return;
    }
    if (pid == 0) {
        uint8_t *data;
        size_t size;
        int err = read_file(path, &data, &size);
        if (err) {
            fprintf(stderr, "%s: %s: %s\n", name, path, strerror(-err));
            _exit(2);
        }
        LLVMFuzzerTestOneInput(data, size);
        free(data);
        exit(0); /* exit, not _exit: LeakSanitizer runs at exit */
    }
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) {
            status = -1;
            break;
        }
    if (status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        passed++;
        return;
    }
    failed++;
    if (status != -1 && WIFSIGNALED(status))
        printf("%s: FAIL %s (signal %d)\n", name, path, WTERMSIG(status));
    else
        printf("%s: FAIL %s (exit %d)\n", name, path, status == -1 ? -1 : WEXITSTATUS(status));
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void run_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) {
        printf("%s: FAIL %s: %s\n", name, dir, strerror(errno));
        failed++;
        return;
    }
    char **paths = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        size_t len = strlen(dir) + strlen(e->d_name) + 2;
        char *p = malloc(len);
        if (!p)
            break;
        snprintf(p, len, "%s/%s", dir, e->d_name);
        struct stat st;
        if (stat(p, &st) != 0 || !S_ISREG(st.st_mode)) {
            free(p);
            continue;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            char **q = realloc(paths, cap * sizeof *q);
            if (!q) {
                free(p);
                break;
            }
            paths = q;
        }
        paths[n++] = p;
    }
    closedir(d);
    qsort(paths, n, sizeof *paths, by_name);
    for (size_t i = 0; i < n; i++) {
        run_one(paths[i]);
        free(paths[i]);
    }
    free(paths);
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s NAME DIR|FILE...\n", argv[0]);
        return 2;
    }
    name = argv[1];
    if (LLVMFuzzerInitialize)
        LLVMFuzzerInitialize(&argc, &argv);
    for (int i = 2; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) == 0 && S_ISDIR(st.st_mode))
            run_dir(argv[i]);
        else
            run_one(argv[i]);
    }
    printf("%s: %u passed, %u failed\n", name, passed, failed);
    return failed == 0 && passed > 0 ? 0 : 1;
}
