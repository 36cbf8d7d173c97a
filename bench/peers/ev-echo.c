/*
 * ev-echo.c — a plain echo server written directly on libev, a peer for
 * bench/echo-bench.sh (compare it with evio's libev backend).
 *
 * What a careful programmer writes against libev: the default loop
 * (EVFLAG_AUTO: epoll on Linux), one ev_io read watcher per connection,
 * one read() per readiness into a 64 KiB static buffer, written straight
 * back with send(MSG_NOSIGNAL).  Only after a short write is the rest kept
 * in the connection's own buffer; then the read watcher is stopped and a
 * write watcher started until the buffer drains (back-pressure: we stop
 * reading a peer that does not read).  At pipeline 1 that is epoll_wait
 * (shared by every ready fd) + read + send per request, as in epoll-echo.
 *
 * Usage: ev-echo [--port N] [--no-nodelay]   (default 5003; 127.0.0.1 only)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ev.h>

typedef struct client {
    ev_io rd, wr;
    char *pend;         /* unsent bytes after a short write */
    size_t plen, poff, pcap;
} client;

static char rbuf[65536];
static int nodelay = 1;

static void die(const char *what) { perror(what); exit(1); }

static void drop(struct ev_loop *loop, client *c)
{
    ev_io_stop(loop, &c->rd);
    ev_io_stop(loop, &c->wr);
    close(c->rd.fd);
    free(c->pend);
    free(c);
}

static int is_again(void) { return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR; }

static void on_writable(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)revents;
    client *c = w->data;
    ssize_t n = send(w->fd, c->pend + c->poff, c->plen - c->poff, MSG_NOSIGNAL);
    if (n < 0) { if (!is_again()) drop(loop, c); return; }
    c->poff += (size_t)n;
    if (c->poff == c->plen) {
        c->plen = c->poff = 0;
        ev_io_stop(loop, &c->wr);
        ev_io_start(loop, &c->rd);
    }
}

static void on_readable(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)revents;
    client *c = w->data;
    ssize_t r = read(w->fd, rbuf, sizeof rbuf);
    if (r <= 0) {
        if (r < 0 && is_again()) return;
        drop(loop, c);
        return;
    }
    ssize_t n = send(w->fd, rbuf, (size_t)r, MSG_NOSIGNAL);
    if (n == r) return;
    if (n < 0 && !is_again()) { drop(loop, c); return; }
    size_t done = n < 0 ? 0 : (size_t)n, rest = (size_t)r - done;
    if (rest > c->pcap) {
        char *p = realloc(c->pend, rest);
        if (!p) { drop(loop, c); return; }
        c->pend = p, c->pcap = rest;
    }
    memcpy(c->pend, rbuf + done, rest);
    c->plen = rest, c->poff = 0;
    ev_io_stop(loop, &c->rd);
    ev_io_start(loop, &c->wr);
}

static void on_accept(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)revents;
    int fd, one = 1;
    while ((fd = accept4(w->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
        if (nodelay) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        client *c = calloc(1, sizeof *c);
        if (!c) { close(fd); continue; }
        ev_io_init(&c->rd, on_readable, fd, EV_READ);
        ev_io_init(&c->wr, on_writable, fd, EV_WRITE);
        c->rd.data = c->wr.data = c;
        ev_io_start(loop, &c->rd);
    }
}

int main(int argc, char **argv)
{
    int port = 5003;
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

    struct ev_loop *loop = ev_default_loop(EVFLAG_AUTO);
    if (!loop) { fprintf(stderr, "ev-echo: no libev loop\n"); return 1; }
    static const char *const names[] = { "select", "poll", "epoll", "kqueue", "devpoll", "port",
                                         "linuxaio", "iouring" };
    unsigned b = ev_backend(loop), k = 0;
    while (k < 8 && !(b & (1u << k))) k++;
    ev_io lw;
    ev_io_init(&lw, on_accept, ls, EV_READ);
    ev_io_start(loop, &lw);
    printf("ev-echo: plain libev %d.%d (%s), listening on 127.0.0.1:%d\n", ev_version_major(),
           ev_version_minor(), k < 8 ? names[k] : "?", port);
    fflush(stdout);
    ev_run(loop, 0);
    return 0;
}
