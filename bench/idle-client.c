/*
 * idle-client.c — what an idle connection costs a server (bench/idle-memory.sh).
 *
 * Opens --conns TCP connections to --host:--port (non-blocking connects, a
 * batch at a time, waited for with poll), sends one 6-byte message on each
 * and reads the echo back (with --silent: never writes), then holds them all
 * open.  Before connecting and again once every connection is established
 * (echoed, or for --silent accepted: the server's /proc/PID/fd has grown by
 * --conns) plus --settle-ms, it reads the server's resident set size
 * (VmRSS in /proc/PID/status, else Rss in /proc/PID/smaps_rollup), and
 * prints the growth per connection.  One connection is echoed and closed
 * first (--no-warmup: not), so the first read buffer the server touches is
 * not counted as a per-connection cost.  The connections are then reset
 * (SO_LINGER 0), leaving no TIME_WAIT behind for the next run.
 *
 * Output: one line of key=value pairs on stdout, e.g.
 *   conns=10000 mode=echo rss_before_kib=1480 rss_after_kib=3924
 *   bytes_per_conn=250.3 seconds=0.812
 * Exit status: 0, or 1 if a connection failed, the server closed one, or a
 * step took longer than --timeout seconds.
 *
 * RLIMIT_NOFILE is raised to its hard limit; the server needs the same
 * (bench/idle-memory.sh raises ulimit -n before starting it).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MSG "hello\n"
#define MSGLEN 6

static struct sockaddr_in addr;
static int silent, timeout_s = 30;
static pid_t server_pid;

__attribute__((format(printf, 1, 2), noreturn)) static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "idle-client: ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The server's resident set size in KiB, or -1. */
static long rss_kib(void)
{
    static const char *const files[] = {"status", "smaps_rollup"};
    static const char *const keys[] = {"VmRSS:", "Rss:"};
    for (int i = 0; i < 2; i++) {
        char path[64], line[256];
        snprintf(path, sizeof path, "/proc/%ld/%s", (long)server_pid, files[i]);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        long v = -1;
        while (v < 0 && fgets(line, sizeof line, f))
            if (strncmp(line, keys[i], strlen(keys[i])) == 0)
                v = strtol(line + strlen(keys[i]), NULL, 10);
        fclose(f);
        if (v >= 0)
            return v;
    }
    return -1;
}

/* How many fds the server holds, or -1 if /proc does not say. */
static long server_fds(void)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%ld/fd", (long)server_pid);
    DIR *d = opendir(path);
    if (!d)
        return -1;
    long n = 0;
    for (struct dirent *e; (e = readdir(d));)
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

/* Connect fds[0..n), then (unless silent) echo one message on each. */
static void open_batch(int *fds, int n)
{
    enum { CONNECTING, ECHOING, DONE };
    int state[1024], got[1024];
    struct pollfd pf[1024];
    for (int i = 0; i < n; i++) {
        fds[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fds[i] < 0)
            die("socket: %s (raise ulimit -n)", strerror(errno));
        if (connect(fds[i], (struct sockaddr *)&addr, sizeof addr) < 0 && errno != EINPROGRESS)
            die("connect: %s", strerror(errno));
        state[i] = CONNECTING, got[i] = 0;
    }
    double deadline = now() + timeout_s;
    for (int left = n; left > 0;) {
        int m = 0, idx[1024];
        for (int i = 0; i < n; i++)
            if (state[i] != DONE) {
                pf[m] = (struct pollfd){fds[i], state[i] == CONNECTING ? POLLOUT : POLLIN, 0};
                idx[m++] = i;
            }
        double wait = deadline - now();
        if (wait <= 0)
            die("timed out %s", silent ? "connecting" : "waiting for echoes");
        int r = poll(pf, (nfds_t)m, (int)(wait * 1000) + 1);
        if (r < 0 && errno != EINTR)
            die("poll: %s", strerror(errno));
        for (int k = 0; r > 0 && k < m; k++) {
            int i = idx[k];
            if (!pf[k].revents)
                continue;
            if (state[i] == CONNECTING) {
                int err = 0;
                socklen_t len = sizeof err;
                getsockopt(fds[i], SOL_SOCKET, SO_ERROR, &err, &len);
                if (err)
                    die("connect: %s", strerror(err));
                if (silent) {
                    state[i] = DONE, left--;
                } else {
                    if (send(fds[i], MSG, MSGLEN, MSG_NOSIGNAL) != MSGLEN)
                        die("send: %s", strerror(errno));
                    state[i] = ECHOING;
                }
            } else {
                char buf[64];
                ssize_t k2 = read(fds[i], buf, sizeof buf);
                if (k2 == 0)
                    die("%s", "the server closed a connection");
                if (k2 < 0 && errno != EAGAIN && errno != EINTR)
                    die("read: %s", strerror(errno));
                if (k2 > 0) {
                    if (got[i] + k2 > MSGLEN || memcmp(buf, &MSG[got[i]], (size_t)k2) != 0)
                        die("%s", "the echo differs from what was sent");
                    if ((got[i] += (int)k2) == MSGLEN)
                        state[i] = DONE, left--;
                }
            }
        }
    }
}

static void reset(int fd)
{
    struct linger l = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    close(fd);
}

static void usage(void)
{
    fprintf(stderr, "usage: idle-client --port N --server-pid PID [--host 127.0.0.1] [--conns 10000]\n"
                    "       [--silent] [--settle-ms 300] [--batch 256] [--timeout S] [--hold-ms 0]\n"
                    "       [--no-warmup]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1";
    int port = 0, conns = 10000, settle_ms = 300, batch = 256, hold_ms = 0, warmup = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--silent")) silent = 1;
        else if (!strcmp(a, "--no-warmup")) warmup = 0;
        else if (!v) usage();
        else if (!strcmp(a, "--host")) host = v, i++;
        else if (!strcmp(a, "--port")) port = atoi(v), i++;
        else if (!strcmp(a, "--server-pid")) server_pid = (pid_t)atol(v), i++;
        else if (!strcmp(a, "--conns")) conns = atoi(v), i++;
        else if (!strcmp(a, "--settle-ms")) settle_ms = atoi(v), i++;
        else if (!strcmp(a, "--batch")) batch = atoi(v), i++;
        else if (!strcmp(a, "--timeout")) timeout_s = atoi(v), i++;
        else if (!strcmp(a, "--hold-ms")) hold_ms = atoi(v), i++;
        else usage();
    }
    if (port <= 0 || port > 65535 || server_pid <= 0 || conns <= 0 || batch <= 0 || timeout_s <= 0)
        usage();
    if (batch > 1024)
        batch = 1024;
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1)
        die("--host wants a numeric IPv4 address, not '%s'", host);
    signal(SIGPIPE, SIG_IGN);

    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
        rl.rlim_cur < (rlim_t)conns + 16) {
        die("RLIMIT_NOFILE is %llu (the hard limit), too few for --conns %d",
            (unsigned long long)rl.rlim_cur, conns);
    }

    if (warmup) {
        int fd;
        int s = silent;
        silent = 0;
        open_batch(&fd, 1);
        silent = s;
        close(fd);
        usleep(100 * 1000);
    }
    long fds0 = server_fds();
    long before = rss_kib();
    if (before < 0)
        die("%s", "cannot read the server's VmRSS in /proc (--server-pid?)");

    int *fds = malloc((size_t)conns * sizeof *fds);
    if (!fds)
        die("%s", "out of memory");
    double t0 = now();
    for (int i = 0; i < conns; i += batch)
        open_batch(fds + i, conns - i < batch ? conns - i : batch);
    /* Connected is not yet accepted: wait until the server holds them all. */
    if (fds0 >= 0) {
        double deadline = now() + timeout_s;
        while (server_fds() < fds0 + conns) {
            if (now() > deadline)
                die("%s", "the server did not accept every connection in time");
            usleep(10 * 1000);
        }
    }
    double secs = now() - t0;
    usleep((useconds_t)settle_ms * 1000);
    long after = rss_kib();
    if (after < 0)
        die("%s", "the server has gone");
    printf("conns=%d mode=%s rss_before_kib=%ld rss_after_kib=%ld bytes_per_conn=%.1f seconds=%.3f\n",
           conns, silent ? "silent" : "echo", before, after,
           (double)(after - before) * 1024.0 / conns, secs);
    fflush(stdout);
    if (hold_ms > 0)
        usleep((useconds_t)hold_ms * 1000);
    for (int i = 0; i < conns; i++)
        reset(fds[i]);
    free(fds);
    return 0;
}
