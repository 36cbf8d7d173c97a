/*
 * event-echo.c — a plain echo server written directly on libevent 2, a peer
 * for bench/echo-bench.sh.
 *
 * Two idioms, chosen at start:
 *   (default)       raw events: event_new(fd, EV_READ|EV_PERSIST) per
 *                   connection, one read() per readiness into a 64 KiB
 *                   static buffer, written straight back with send().  Only
 *                   after a short write is the rest kept in the connection's
 *                   buffer; the read event is then deleted and an EV_WRITE
 *                   event added until it drains (back-pressure).  At
 *                   pipeline 1: epoll_wait (shared) + read + send per request.
 *   --bufferevent   the textbook way: bufferevent_socket_new per connection,
 *                   the read callback moves the input evbuffer to the output
 *                   one (evbuffer_add_buffer, no copy), reading is disabled
 *                   while more than 64 KiB are queued.  Costlier per request:
 *                   evbuffer_read asks the kernel how much is readable
 *                   (ioctl FIONREAD) before each readv, and the reply
 *                   is written (writev) once the write event, added for
 *                   it and removed after it, fires: two epoll_ctl more.
 * The bench runs the default, which measured the faster of the two
 * (5 system calls per request against 2 at P=1, ~1.5x the server CPU;
 * docs/bench.md); --bufferevent is there to check.
 *
 * Usage: event-echo [--port N] [--no-nodelay] [--bufferevent]
 *        (default 5004; 127.0.0.1 only)
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

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#define BEV_HIGH 65536

typedef struct client {
    int fd;
    struct event *rd, *wr;
    char *pend;         /* unsent bytes after a short write */
    size_t plen, poff, pcap;
} client;

static char rbuf[65536];
static int nodelay = 1, use_bev = 0;
static struct event_base *base;

static void die(const char *what) { perror(what); exit(1); }

static int is_again(void) { return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR; }

/* ---------------------------------------------------------------- raw events */

static void drop(client *c)
{
    event_free(c->rd);
    event_free(c->wr);
    close(c->fd);
    free(c->pend);
    free(c);
}

static void on_writable(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    client *c = arg;
    ssize_t n = send(fd, c->pend + c->poff, c->plen - c->poff, MSG_NOSIGNAL);
    if (n < 0) { if (!is_again()) drop(c); return; }
    c->poff += (size_t)n;
    if (c->poff == c->plen) {
        c->plen = c->poff = 0;
        event_del(c->wr);
        event_add(c->rd, NULL);
    }
}

static void on_readable(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    client *c = arg;
    ssize_t r = read(fd, rbuf, sizeof rbuf);
    if (r <= 0) {
        if (r < 0 && is_again()) return;
        drop(c);
        return;
    }
    ssize_t n = send(fd, rbuf, (size_t)r, MSG_NOSIGNAL);
    if (n == r) return;
    if (n < 0 && !is_again()) { drop(c); return; }
    size_t done = n < 0 ? 0 : (size_t)n, rest = (size_t)r - done;
    if (rest > c->pcap) {
        char *p = realloc(c->pend, rest);
        if (!p) { drop(c); return; }
        c->pend = p, c->pcap = rest;
    }
    memcpy(c->pend, rbuf + done, rest);
    c->plen = rest, c->poff = 0;
    event_del(c->rd);
    event_add(c->wr, NULL);
}

/* ---------------------------------------------------------------- bufferevents */

static void bev_read(struct bufferevent *bev, void *arg)
{
    (void)arg;
    struct evbuffer *out = bufferevent_get_output(bev);
    evbuffer_add_buffer(out, bufferevent_get_input(bev));
    if (evbuffer_get_length(out) > BEV_HIGH) bufferevent_disable(bev, EV_READ);
}

static void bev_write(struct bufferevent *bev, void *arg)
{
    (void)arg;  /* output drained (write low watermark 0) */
    bufferevent_enable(bev, EV_READ);
}

static void bev_event(struct bufferevent *bev, short what, void *arg)
{
    (void)arg;
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) bufferevent_free(bev);
}

/* ---------------------------------------------------------------- accept */

static void on_accept(evutil_socket_t ls, short what, void *arg)
{
    (void)what, (void)arg;
    int fd, one = 1;
    while ((fd = accept4(ls, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
        if (nodelay) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (use_bev) {
            struct bufferevent *bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
            if (!bev) { close(fd); continue; }
            bufferevent_setcb(bev, bev_read, bev_write, bev_event, NULL);
            bufferevent_enable(bev, EV_READ);
            continue;
        }
        client *c = calloc(1, sizeof *c);
        if (!c) { close(fd); continue; }
        c->fd = fd;
        c->rd = event_new(base, fd, EV_READ | EV_PERSIST, on_readable, c);
        c->wr = event_new(base, fd, EV_WRITE | EV_PERSIST, on_writable, c);
        if (!c->rd || !c->wr || event_add(c->rd, NULL) < 0) {
            if (c->rd) event_free(c->rd);
            if (c->wr) event_free(c->wr);
            close(fd);
            free(c);
        }
    }
}

int main(int argc, char **argv)
{
    int port = 5004;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--port") && i + 1 < argc) port = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--no-nodelay")) nodelay = 0;
        else if (!strcmp(argv[i], "--bufferevent")) use_bev = 1;
        else {
            fprintf(stderr, "usage: %s [--port N] [--no-nodelay] [--bufferevent]\n", argv[0]);
            return 2;
        }
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

    /* single-threaded: no locks */
    struct event_config *cfg = event_config_new();
    if (!cfg) die("event_config_new");
    event_config_set_flag(cfg, EVENT_BASE_FLAG_NOLOCK);
    base = event_base_new_with_config(cfg);
    event_config_free(cfg);
    if (!base) { fprintf(stderr, "event-echo: no event base\n"); return 1; }
    struct event *lev = event_new(base, ls, EV_READ | EV_PERSIST, on_accept, NULL);
    if (!lev || event_add(lev, NULL) < 0) { fprintf(stderr, "event-echo: event_add\n"); return 1; }
    printf("event-echo: plain libevent %s (%s, %s), listening on 127.0.0.1:%d\n",
           event_get_version(), event_base_get_method(base),
           use_bev ? "bufferevent" : "raw events", port);
    fflush(stdout);
    event_base_dispatch(base);
    return 0;
}
