/*
 * uv-echo.c — a plain echo server written directly on libuv, a peer for
 * bench/echo-bench.sh (compare it with evio's libuv backend).
 *
 * What a careful programmer writes against libuv: one loop, one thread,
 * uv_tcp_t per connection, uv_read_start with an alloc callback that hands
 * out one static 64 KiB buffer (the read callback consumes it before the
 * loop reads again), and the data written straight back with uv_try_write
 * (no uv_write_t, no copy).  Only when the socket does not take it all is
 * the rest copied into the connection's own buffer and queued with uv_write
 * (a uv_write_t embedded in the connection); reading stops until that write
 * completes (back-pressure: we stop reading a peer that does not read).
 * Per request that is no malloc at all; per connection, one.
 *
 * Usage: uv-echo [--port N] [--no-nodelay]   (default 5002; 127.0.0.1 only)
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

typedef struct client {
    uv_tcp_t tcp;       /* first: the handle's address is the client's */
    uv_write_t wr;      /* the one write in flight after a short try_write */
    char *pend;         /* its bytes (grown, kept for the connection's life) */
    size_t pcap;
} client;

static char rbuf[65536];
static uv_tcp_t listener;
static int nodelay = 1;

static void die(const char *what, int err)
{
    fprintf(stderr, "uv-echo: %s: %s\n", what, uv_strerror(err));
    exit(1);
}

static void on_close(uv_handle_t *h)
{
    client *c = (client *)h;
    free(c->pend);
    free(c);
}

static void drop(client *c)
{
    if (!uv_is_closing((uv_handle_t *)&c->tcp))
        uv_close((uv_handle_t *)&c->tcp, on_close);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    (void)h, (void)hint;
    *buf = uv_buf_init(rbuf, sizeof rbuf);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf);

static void on_written(uv_write_t *req, int status)
{
    client *c = req->data;
    if (status < 0) { drop(c); return; }
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) < 0) drop(c);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    client *c = (client *)s;
    if (n == 0) return;                     /* EAGAIN */
    if (n < 0) { drop(c); return; }         /* UV_EOF or an error */
    uv_buf_t out = uv_buf_init(buf->base, (unsigned)n);
    int w = uv_try_write(s, &out, 1);
    if (w == n) return;
    if (w < 0 && w != UV_EAGAIN) { drop(c); return; }
    size_t done = w < 0 ? 0 : (size_t)w, rest = (size_t)n - done;
    if (rest > c->pcap) {
        char *p = realloc(c->pend, rest);
        if (!p) { drop(c); return; }
        c->pend = p, c->pcap = rest;
    }
    memcpy(c->pend, buf->base + done, rest);
    uv_buf_t q = uv_buf_init(c->pend, (unsigned)rest);
    c->wr.data = c;
    uv_read_stop(s);
    if (uv_write(&c->wr, s, &q, 1, on_written) < 0) drop(c);
}

static void on_connection(uv_stream_t *server, int status)
{
    if (status < 0) return;
    client *c = calloc(1, sizeof *c);
    if (!c) return;
    uv_tcp_init(server->loop, &c->tcp);
    if (uv_accept(server, (uv_stream_t *)&c->tcp) < 0) { drop(c); return; }
    if (nodelay) uv_tcp_nodelay(&c->tcp, 1);
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) < 0) drop(c);
}

int main(int argc, char **argv)
{
    int port = 5002;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--port") && i + 1 < argc) port = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--no-nodelay")) nodelay = 0;
        else { fprintf(stderr, "usage: %s [--port N] [--no-nodelay]\n", argv[0]); return 2; }
    }
    signal(SIGPIPE, SIG_IGN);

    uv_loop_t *loop = uv_default_loop();
    struct sockaddr_in sa;
    int err;
    if ((err = uv_ip4_addr("127.0.0.1", port, &sa)) < 0) die("address", err);
    uv_tcp_init(loop, &listener);
    if ((err = uv_tcp_bind(&listener, (const struct sockaddr *)&sa, 0)) < 0) die("bind", err);
    if ((err = uv_listen((uv_stream_t *)&listener, 1024, on_connection)) < 0) die("listen", err);
    printf("uv-echo: plain libuv %s, listening on 127.0.0.1:%d\n", uv_version_string(), port);
    fflush(stdout);
    return uv_run(loop, UV_RUN_DEFAULT);
}
