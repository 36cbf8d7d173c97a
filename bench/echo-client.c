/*
 * echo-client.c — closed-loop load generator for echo servers (bench/).
 *
 * Opens --conns TCP connections to --host:--port and keeps --pipeline
 * messages of --size bytes in flight on each: whenever a whole message has
 * come back, the next one is sent.  Every echoed byte is checked against
 * what was sent (a per-connection, per-message pattern), and the round trip
 * of every message is recorded in a log-linear histogram (~3% resolution).
 *
 * Two ways to end a run:
 *   --duration S [--warmup W]  measure for S seconds after W seconds of load
 *                              (default W=1); only the window is reported.
 *   --requests N               send exactly N messages in total, wait for
 *                              every echo, report the whole run.  For the
 *                              syscall/instruction counts of the driver.
 *
 * With --server-pid PID it also samples the server's CPU time at both ends
 * of the window (/proc/PID/stat utime+stime, and the ns-precise sum of
 * /proc/PID/task/<tid>/schedstat where the kernel has it), so the driver
 * gets server CPU per request over exactly the measured window.
 *
 * Output: one line of key=value pairs on stdout, e.g.
 *   requests=812345 seconds=3.000 rps=270781 p50_us=170.2 p99_us=260.1
 *   p999_us=... max_us=... errors=0 mismatches=0 conn_errors=0
 *   client_cpu_us_per_req=... [server_cpu_us_per_req=... server_user_us_per_req=...
 *   server_sys_us_per_req=... server_cpu_pct=...]
 * Exit status: 0, or 1 if anything went wrong (errors > 0, cannot connect).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* ---------------------------------------------------------------- histogram */
/* Exact below 64 ns, then 32 sub-buckets per power of two. */
#define SUB_BITS 5
#define SUB (1u << SUB_BITS)
#define NBUCKETS (2 * SUB + (64 - SUB_BITS - 1) * SUB)

typedef struct hist { uint64_t n[NBUCKETS]; uint64_t count; uint64_t max; } hist;

static unsigned hidx(uint64_t v)
{
    if (v < 2 * SUB) return (unsigned)v;
    unsigned e = 63u - (unsigned)__builtin_clzll(v);
    return 2 * SUB + (e - SUB_BITS - 1) * SUB + (unsigned)((v >> (e - SUB_BITS)) & (SUB - 1));
}

static uint64_t hval(unsigned i) /* midpoint of bucket i */
{
    if (i < 2 * SUB) return i;
    unsigned k = i - 2 * SUB, e = k / SUB + SUB_BITS + 1, m = k % SUB;
    uint64_t width = 1ull << (e - SUB_BITS);
    return (uint64_t)(SUB + m) * width + width / 2;
}

static void hadd(hist *h, uint64_t v)
{
    h->n[hidx(v)]++;
    h->count++;
    if (v > h->max) h->max = v;
}

static double hpct(const hist *h, double q) /* in ns */
{
    if (!h->count) return 0;
    uint64_t rank = (uint64_t)(q * (double)h->count + 0.999999), cum = 0;
    if (rank < 1) rank = 1;
    for (unsigned i = 0; i < NBUCKETS; i++)
        if ((cum += h->n[i]) >= rank) return (double)hval(i) > (double)h->max ? (double)h->max : (double)hval(i);
    return (double)h->max;
}

/* ---------------------------------------------------------------- state */

static struct {
    const char *host;
    int port, conns, pipeline, size, threads, nodelay;
    double duration, warmup, timeout;
    uint64_t requests;
    int server_pid;
} opt = { "127.0.0.1", 5000, 50, 1, 6, 1, 1, 0, 1.0, 60.0, 0, 0 };

typedef struct conn {
    int fd, dead;
    uint32_t idx;           /* global index, part of the byte pattern */
    uint32_t events;        /* current epoll interest */
    uint64_t issued, done;  /* messages queued for sending / fully echoed */
    size_t rx;              /* bytes of message `done` received so far */
    int bad;                /* message `done` has a wrong byte */
    uint64_t *stamp;        /* send time of message k at stamp[k % pipeline] */
    unsigned char *out;     /* queued, unsent bytes */
    size_t olen;
} conn;

typedef struct worker {
    pthread_t th;
    int ep;
    conn *c;
    int nc;
    uint64_t quota;         /* --requests: messages this worker sends; 0 = unlimited */
    uint64_t issued, done;
    uint64_t win_done0, win_done1;
    uint64_t t_win0, t_win1;
    uint64_t mismatches, conn_errors;
    int in_window, timed_out;
    hist h;
} worker;

static uint64_t t_start, t_warm, t_end, t_deadline;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static unsigned char pattern(uint32_t idx, uint64_t k, size_t j)
{
    return (unsigned char)(k * 0x9Du + (k >> 8) * 0x1Fu + j * 0x3Bu + idx * 0x65u + 1u);
}

/* ---------------------------------------------------------------- worker */

static void set_events(worker *w, conn *c, uint32_t ev)
{
    if (c->events == ev) return;
    struct epoll_event e = { .events = ev, .data.ptr = c };
    epoll_ctl(w->ep, EPOLL_CTL_MOD, c->fd, &e);
    c->events = ev;
}

static void kill_conn(worker *w, conn *c)
{
    if (c->dead) return;
    c->dead = 1;
    w->conn_errors++;
    epoll_ctl(w->ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
}

static int may_issue(worker *w) { return !w->quota || w->issued < w->quota; }

static void issue(worker *w, conn *c, uint64_t now)
{
    uint64_t k = c->issued++;
    for (size_t j = 0; j < (size_t)opt.size; j++) c->out[c->olen++] = pattern(c->idx, k, j);
    c->stamp[k % (uint64_t)opt.pipeline] = now;
    w->issued++;
}

static void flush_out(worker *w, conn *c)
{
    size_t off = 0;
    while (off < c->olen) {
        ssize_t n = send(c->fd, c->out + off, c->olen - off, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) break;
            kill_conn(w, c);
            return;
        }
        off += (size_t)n;
    }
    if (off) memmove(c->out, c->out + off, c->olen - off);
    c->olen -= off;
    set_events(w, c, c->olen ? EPOLLIN | EPOLLOUT : EPOLLIN);
}

static void on_bytes(worker *w, conn *c, const unsigned char *p, size_t n, uint64_t now)
{
    for (size_t i = 0; i < n; i++) {
        if (c->done >= c->issued) { /* more bytes than we ever sent */
            w->mismatches++;
            continue;
        }
        if (p[i] != pattern(c->idx, c->done, c->rx)) c->bad = 1;
        if (++c->rx < (size_t)opt.size) continue;
        if (c->bad) w->mismatches++;
        if (w->in_window) hadd(&w->h, now - c->stamp[c->done % (uint64_t)opt.pipeline]);
        c->done++, w->done++;
        c->rx = 0, c->bad = 0;
        if (may_issue(w)) issue(w, c, now);
    }
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    static __thread unsigned char buf[65536];
    struct epoll_event evs[256];
    uint64_t now = now_ns();

    for (int i = 0; i < w->nc; i++) {
        conn *c = &w->c[i];
        for (int k = 0; k < opt.pipeline && may_issue(w); k++) issue(w, c, now);
        flush_out(w, c);
    }
    if (opt.requests) w->in_window = 1; /* the whole run is the window */
    else if (now >= t_warm) {
        w->in_window = 1, w->win_done0 = w->done, w->t_win0 = now;
    }
    for (;;) {
        now = now_ns();
        if (opt.requests) {
            if (w->done >= w->quota) break;
            if (now >= t_deadline) { w->timed_out = 1; break; }
        } else {
            if (!w->in_window && now >= t_warm) {
                w->in_window = 1, w->win_done0 = w->done, w->t_win0 = now;
                memset(&w->h, 0, sizeof w->h);
            }
            if (now >= t_end) break;
        }
        int alive = 0;
        for (int i = 0; i < w->nc && !alive; i++) alive = !w->c[i].dead;
        if (!alive) break;

        uint64_t next = opt.requests ? t_deadline : (w->in_window ? t_end : t_warm);
        int ms = next > now ? (int)((next - now + 999999) / 1000000) : 0;
        if (ms > 100) ms = 100;
        int n = epoll_wait(w->ep, evs, 256, ms);
        if (n < 0) {
            if (errno == EINTR) continue;
            perror("echo-client: epoll_wait");
            break;
        }
        for (int e = 0; e < n; e++) {
            conn *c = evs[e].data.ptr;
            if (c->dead) continue;
            uint64_t t = now_ns();
            if (evs[e].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
                ssize_t r = recv(c->fd, buf, sizeof buf, 0);
                if (r > 0) {
                    on_bytes(w, c, buf, (size_t)r, t);
                } else if (r == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
                    kill_conn(w, c);
                    continue;
                }
            }
            if (c->olen) flush_out(w, c);
        }
    }
    now = now_ns();
    w->win_done1 = w->done, w->t_win1 = now;
    if (opt.requests) w->win_done0 = 0, w->t_win0 = t_start;
    return NULL;
}

/* ---------------------------------------------------------------- server CPU */

typedef struct cpu_sample { double stat_user, stat_sys, sched; int ok, sched_ok; } cpu_sample;

static cpu_sample sample_server(int pid)
{
    cpu_sample s = { 0, 0, 0, 0, 0 };
    char path[64], line[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (f) {
        if (fgets(line, sizeof line, f)) {
            char *p = strrchr(line, ')'); /* comm may contain spaces */
            unsigned long ut, st;
            if (p && sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) == 2) {
                double hz = (double)sysconf(_SC_CLK_TCK);
                s.stat_user = (double)ut / hz, s.stat_sys = (double)st / hz, s.ok = 1;
            }
        }
        fclose(f);
    }
    snprintf(path, sizeof path, "/proc/%d/task", pid);
    DIR *d = opendir(path);
    if (d) {
        struct dirent *de;
        s.sched_ok = 1;
        while ((de = readdir(d))) {
            if (de->d_name[0] == '.') continue;
            char p2[300];
            snprintf(p2, sizeof p2, "/proc/%d/task/%s/schedstat", pid, de->d_name);
            FILE *g = fopen(p2, "r");
            unsigned long long ns;
            if (g && fscanf(g, "%llu", &ns) == 1) s.sched += (double)ns / 1e9;
            else s.sched_ok = 0;
            if (g) fclose(g);
        }
        closedir(d);
    }
    return s;
}

static double proc_cpu(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_until(uint64_t t)
{
    struct timespec ts = { (time_t)(t / 1000000000ull), (long)(t % 1000000000ull) };
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {}
}

/* ---------------------------------------------------------------- main */

static void usage(const char *argv0)
{
    fprintf(stderr,
            "usage: %s [--host 127.0.0.1] [--port 5000] [--conns 50] [--pipeline 1]\n"
            "          [--size 6] (--duration S [--warmup 1] | --requests N [--timeout 60])\n"
            "          [--threads 1] [--server-pid PID] [--no-nodelay]\n", argv0);
    exit(2);
}

static int connect_one(const struct addrinfo *ai)
{
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    struct timeval tv = { 5, 0 };
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
        close(fd);
        return -1;
    }
    int one = 1;
    if (opt.nodelay) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    return fd;
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--no-nodelay")) { opt.nodelay = 0; continue; }
        if (!v) usage(argv[0]);
        i++;
        if (!strcmp(a, "--host")) opt.host = v;
        else if (!strcmp(a, "--port")) opt.port = atoi(v);
        else if (!strcmp(a, "--conns")) opt.conns = atoi(v);
        else if (!strcmp(a, "--pipeline")) opt.pipeline = atoi(v);
        else if (!strcmp(a, "--size")) opt.size = atoi(v);
        else if (!strcmp(a, "--threads")) opt.threads = atoi(v);
        else if (!strcmp(a, "--duration")) opt.duration = atof(v);
        else if (!strcmp(a, "--warmup")) opt.warmup = atof(v);
        else if (!strcmp(a, "--timeout")) opt.timeout = atof(v);
        else if (!strcmp(a, "--requests")) opt.requests = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--server-pid")) opt.server_pid = atoi(v);
        else usage(argv[0]);
    }
    if (opt.conns < 1 || opt.pipeline < 1 || opt.size < 1 || opt.threads < 1 ||
        opt.port < 1 || opt.port > 65535 || opt.warmup < 0 ||
        (opt.duration <= 0) == (opt.requests == 0)) {
        fprintf(stderr, "echo-client: need positive --conns/--pipeline/--size/--threads/--port "
                        "and exactly one of --duration and --requests\n");
        usage(argv[0]);
    }
    if (opt.threads > opt.conns) opt.threads = opt.conns;
    signal(SIGPIPE, SIG_IGN);

    char port[16];
    snprintf(port, sizeof port, "%d", opt.port);
    struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *ai;
    int gai = getaddrinfo(opt.host, port, &hints, &ai);
    if (gai) {
        fprintf(stderr, "echo-client: %s: %s\n", opt.host, gai_strerror(gai));
        return 1;
    }

    conn *conns = calloc((size_t)opt.conns, sizeof *conns);
    worker *ws = calloc((size_t)opt.threads, sizeof *ws);
    if (!conns || !ws) { perror("echo-client: calloc"); return 1; }
    for (int i = 0; i < opt.conns; i++) {
        conn *c = &conns[i];
        c->idx = (uint32_t)i;
        c->stamp = calloc((size_t)opt.pipeline, sizeof *c->stamp);
        c->out = malloc((size_t)opt.pipeline * (size_t)opt.size);
        if (!c->stamp || !c->out) { perror("echo-client: malloc"); return 1; }
        if ((c->fd = connect_one(ai)) < 0) {
            fprintf(stderr, "echo-client: connect %s:%d (connection %d): %s\n", opt.host, opt.port,
                    i, strerror(errno));
            printf("requests=0 seconds=0 rps=0 p50_us=0 p99_us=0 errors=1 connect_failed=1\n");
            freeaddrinfo(ai);
            for (int j = 0; j <= i; j++) {
                if (j < i) close(conns[j].fd);
                free(conns[j].stamp), free(conns[j].out);
            }
            free(conns), free(ws);
            return 1;
        }
    }
    freeaddrinfo(ai);

    for (int t = 0, first = 0; t < opt.threads; t++) {
        worker *w = &ws[t];
        int nc = opt.conns / opt.threads + (t < opt.conns % opt.threads);
        w->c = &conns[first], w->nc = nc, first += nc;
        if (opt.requests)
            w->quota = opt.requests / (uint64_t)opt.threads + ((uint64_t)t < opt.requests % (uint64_t)opt.threads);
        if ((w->ep = epoll_create1(EPOLL_CLOEXEC)) < 0) { perror("echo-client: epoll_create1"); return 1; }
        for (int i = 0; i < nc; i++) {
            struct epoll_event e = { .events = EPOLLIN, .data.ptr = &w->c[i] };
            w->c[i].events = EPOLLIN;
            if (epoll_ctl(w->ep, EPOLL_CTL_ADD, w->c[i].fd, &e) < 0) { perror("echo-client: epoll_ctl"); return 1; }
        }
    }

    t_start = now_ns();
    t_warm = t_start + (uint64_t)(opt.warmup * 1e9);
    t_end = t_warm + (uint64_t)(opt.duration * 1e9);
    t_deadline = t_start + (uint64_t)(opt.timeout * 1e9);

    cpu_sample s0 = { 0, 0, 0, 0, 0 }, s1 = s0;
    double c0 = 0, c1 = 0;
    if (opt.requests) {
        if (opt.server_pid) s0 = sample_server(opt.server_pid);
        c0 = proc_cpu();
    }
    for (int t = 0; t < opt.threads; t++)
        if (pthread_create(&ws[t].th, NULL, worker_main, &ws[t])) { perror("echo-client: pthread_create"); return 1; }
    if (!opt.requests) {
        sleep_until(t_warm);
        if (opt.server_pid) s0 = sample_server(opt.server_pid);
        c0 = proc_cpu();
        sleep_until(t_end);
        if (opt.server_pid) s1 = sample_server(opt.server_pid);
        c1 = proc_cpu();
    }
    for (int t = 0; t < opt.threads; t++) pthread_join(ws[t].th, NULL);
    if (opt.requests) {
        if (opt.server_pid) s1 = sample_server(opt.server_pid);
        c1 = proc_cpu();
    }

    static hist h;
    uint64_t reqs = 0, mism = 0, cerr = 0, missing = 0;
    double secs = 0;
    int timed_out = 0;
    for (int t = 0; t < opt.threads; t++) {
        worker *w = &ws[t];
        reqs += w->win_done1 - w->win_done0;
        mism += w->mismatches, cerr += w->conn_errors;
        if (opt.requests && w->done < w->quota) missing += w->quota - w->done;
        timed_out |= w->timed_out;
        double s = (double)(w->t_win1 - w->t_win0) / 1e9;
        if (s > secs) secs = s;
        for (unsigned i = 0; i < NBUCKETS; i++) h.n[i] += w->h.n[i];
        h.count += w->h.count;
        if (w->h.max > h.max) h.max = w->h.max;
    }
    uint64_t errors = mism + cerr + missing;
    double per = reqs ? 1e6 / (double)reqs : 0;
    printf("requests=%" PRIu64 " seconds=%.3f rps=%.0f p50_us=%.1f p99_us=%.1f p999_us=%.1f max_us=%.1f"
           " errors=%" PRIu64 " mismatches=%" PRIu64 " conn_errors=%" PRIu64 " missing=%" PRIu64
           " client_cpu_us_per_req=%.3f",
           reqs, secs, secs > 0 ? (double)reqs / secs : 0, hpct(&h, 0.50) / 1e3, hpct(&h, 0.99) / 1e3,
           hpct(&h, 0.999) / 1e3, (double)h.max / 1e3, errors, mism, cerr, missing, (c1 - c0) * per);
    if (opt.server_pid && s0.ok && s1.ok) {
        double u = s1.stat_user - s0.stat_user, k = s1.stat_sys - s0.stat_sys;
        int precise = s0.sched_ok && s1.sched_ok && s1.sched >= s0.sched;
        double cpu = precise ? s1.sched - s0.sched : u + k;
        printf(" server_cpu_us_per_req=%.3f server_user_us_per_req=%.3f server_sys_us_per_req=%.3f"
               " server_cpu_pct=%.1f server_cpu_source=%s",
               cpu * per, u * per, k * per, secs > 0 ? 100.0 * cpu / secs : 0,
               precise ? "schedstat" : "stat");
    } else if (opt.server_pid) {
        printf(" server_cpu_us_per_req=nan");
    }
    printf("%s\n", timed_out ? " timeout=1" : "");
    if (errors) fprintf(stderr, "echo-client: %" PRIu64 " error(s): %" PRIu64 " mismatched message(s), %" PRIu64
                                " connection(s) lost, %" PRIu64 " request(s) never answered\n",
                        errors, mism, cerr, missing);
    for (int i = 0; i < opt.conns; i++) {
        if (!conns[i].dead) close(conns[i].fd);
        free(conns[i].stamp), free(conns[i].out);
    }
    for (int t = 0; t < opt.threads; t++) close(ws[t].ep);
    free(conns), free(ws);
    return errors ? 1 : 0;
}
