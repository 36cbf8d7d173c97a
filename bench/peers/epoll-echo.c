/*
 * epoll-echo.c — the reference echo server for bench/echo-bench.sh.
 *
 * What a careful programmer writes by hand against epoll, and nothing more:
 * one thread, level-triggered, non-blocking accept, one read() per readiness
 * into a 64 KiB static buffer, written straight back with send(MSG_NOSIGNAL).
 * Only after a short write is the remainder kept in a per-fd pending buffer;
 * the fd then waits for EPOLLOUT instead of EPOLLIN until the buffer drains
 * (back-pressure: we stop reading a peer that does not read).  At pipeline 1
 * that is epoll_wait (shared by every ready fd) + read + send per request.
 *
 * Accepted sockets get TCP_NODELAY unless --no-nodelay (which is harmless
 * for an echo at pipeline 1 either way, since a reply never waits on an ACK).
 *
 * Usage: epoll-echo [--port N] [--no-nodelay]   (default 5001; 127.0.0.1 only)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

typedef struct pending { char *buf; size_t len, off; } pending;

static char rbuf[65536];
static pending *pend;     /* indexed by fd */
static int npend;

static void die(const char *what) { perror(what); exit(1); }

static pending *pend_of(int fd)
{
    if (fd >= npend) {
        int n = npend ? npend : 64;
        while (n <= fd) n *= 2;
        pending *p = realloc(pend, (size_t)n * sizeof *p);
        if (!p) die("realloc");
        memset(p + npend, 0, (size_t)(n - npend) * sizeof *p);
        pend = p, npend = n;
    }
    return &pend[fd];
}

static void drop(int ep, int fd)
{
    pending *p = pend_of(fd);
    free(p->buf);
    memset(p, 0, sizeof *p);
    epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
    close(fd);
}

static void arm(int ep, int fd, uint32_t events)
{
    struct epoll_event ev = { .events = events, .data.fd = fd };
    if (epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev) < 0) die("epoll_ctl MOD");
}

/* Send buf; keep what the socket does not take.  Returns -1 on a dead peer. */
static int send_or_keep(int ep, int fd, const char *buf, size_t len)
{
    ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return -1;
    size_t done = n < 0 ? 0 : (size_t)n;
    if (done == len) return 0;
    pending *p = pend_of(fd);
    p->buf = malloc(len - done);
    if (!p->buf) die("malloc");
    memcpy(p->buf, buf + done, len - done);
    p->len = len - done, p->off = 0;
    arm(ep, fd, EPOLLOUT);
    return 0;
}

static int flush(int ep, int fd)
{
    pending *p = pend_of(fd);
    ssize_t n = send(fd, p->buf + p->off, p->len - p->off, MSG_NOSIGNAL);
    if (n < 0) return (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) ? 0 : -1;
    p->off += (size_t)n;
    if (p->off == p->len) {
        free(p->buf);
        memset(p, 0, sizeof *p);
        arm(ep, fd, EPOLLIN);
    }
    return 0;
}

int main(int argc, char **argv)
{
    int port = 5001, nodelay = 1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--port") && i + 1 < argc) port = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--no-nodelay")) nodelay = 0;
        else { fprintf(stderr, "usage: %s [--port N] [--no-nodelay]\n", argv[0]); return 2; }
    }
    signal(SIGPIPE, SIG_IGN);

    int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (ls < 0) die("socket");
    int one = 1;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    if (bind(ls, (struct sockaddr *)&sa, sizeof sa) < 0) die("bind");
    if (listen(ls, 1024) < 0) die("listen");

    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) die("epoll_create1");
    struct epoll_event lev = { .events = EPOLLIN, .data.fd = ls };
    if (epoll_ctl(ep, EPOLL_CTL_ADD, ls, &lev) < 0) die("epoll_ctl ADD");
    printf("epoll-echo: plain epoll, listening on 127.0.0.1:%d\n", port);
    fflush(stdout);

    struct epoll_event evs[256];
    for (;;) {
        int n = epoll_wait(ep, evs, 256, -1);
        if (n < 0) { if (errno == EINTR) continue; die("epoll_wait"); }
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (fd == ls) {
                int c;
                while ((c = accept4(ls, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
                    if (nodelay) setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    struct epoll_event cev = { .events = EPOLLIN, .data.fd = c };
                    if (epoll_ctl(ep, EPOLL_CTL_ADD, c, &cev) < 0) close(c);
                }
                continue;
            }
            if (pend_of(fd)->buf) {                   /* waiting for EPOLLOUT */
                if (flush(ep, fd) < 0) drop(ep, fd);
                continue;
            }
            ssize_t r = read(fd, rbuf, sizeof rbuf);
            if (r > 0) {
                if (send_or_keep(ep, fd, rbuf, (size_t)r) < 0) drop(ep, fd);
            } else if (r == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
                drop(ep, fd);
            }
        }
    }
}
