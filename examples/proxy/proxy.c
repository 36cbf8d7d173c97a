/* proxy — a TCP proxy: every client gets its own connection to the backend.
 *
 *   proxy [--port N] [--bind HOST] [--backend HOST:PORT] [--loops N]
 *
 * Listens on tcp://HOST:N (default 127.0.0.1, port 7000: loopback only;
 * --bind 0.0.0.0 or --bind :: for every address; port 0 lets the kernel
 * choose and the chosen port is printed) and relays each client
 * to --backend (default 127.0.0.1:6379; any address evio_dial takes, e.g.
 * unix:///path).  --loops N runs N loops (threads; 0 = one per CPU).  Stops
 * on SIGINT/SIGTERM.
 *
 * A client and its backend connection are a pair on one loop: the backend
 * is dialed from the client's opened(), so no locking is needed.
 *
 * Flow control: after relaying input to the other side, a side whose peer
 * has more than HIGH_WATER bytes queued stops reading (evio_conn_pause);
 * the peer's postwrite resumes it once fewer than LOW_WATER remain.  So a
 * pair holds at most HIGH_WATER plus one read per direction, however slow
 * either end.  evio's own output high-water mark is off
 * (output_high_water = -1): it stops reading a side whose *own* output is
 * queued, so with a backend that echoes (it writes before it reads again)
 * each would wait for the other once the socket buffers between them
 * fill.  Bytes a client sends before the backend is connected are held
 * (one read at most: the client is paused until the backend opens).
 * Closing: a side's end-of-file is passed on as end-of-file (eof() and
 * evio_conn_shutdown_write), so a client that shuts down its write side
 * still gets the backend's late reply; a connection closes by itself once
 * both of its directions are finished.  A side that is reset (RST) or
 * fails has its peer reset too (evio_conn_reset), so a client can tell a
 * cut-short reply from a complete one; any other close closes the peer
 * after its queued output is flushed. */
#include <errno.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <evio.h>

#define HIGH_WATER (1024 * 1024) /* peer's queued output that pauses reading */
#define LOW_WATER (256 * 1024)   /* ... and that resumes it */
#define DIAL_TIMEOUT_MS 10000

typedef struct pair {
    evio_conn *client;  /* NULL once closed */
    evio_conn *backend; /* NULL until its opened() and after its closed() */
    uint64_t client_id, backend_id;
    bool dialing;        /* the backend's opened() has not fired yet */
    bool client_paused;  /* by flow control, or waiting for the backend */
    bool backend_paused; /* by flow control */
    bool client_eof;     /* the client finished sending while we were dialing */
    int refs;            /* open (or dialing) sides */
    char *held;          /* client input that arrived while dialing */
    size_t held_len;
} pair;

static evio_server *volatile server; /* for the signal handler */
static atomic_bool stopping;         /* set by the signal handler */
static const char *backend = "127.0.0.1:6379";

static evio_action serving(evio_server *srv)
{
    server = srv;
    printf("proxy (backend: %s)\n", evio_backend_name());
    socklen_t len;
    const struct sockaddr *sa = evio_server_addr(srv, 0, &len);
    char where[160];
    evio_addr_format(sa, len, where, sizeof where);
    printf("listening on %s\n", where);
    if (sa && ((sa->sa_family == AF_INET &&
                (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127) ||
               (sa->sa_family == AF_INET6 &&
                IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)sa)->sin6_addr))))
        printf("(loopback only: --bind 0.0.0.0 or --bind :: listens on every interface)\n");
    printf("forwarding to %s\n", backend);
    fflush(stdout);
    return atomic_load(&stopping) ? EVIO_SHUTDOWN : EVIO_NONE; /* signalled already */
}

static void pair_release(pair *p)
{
    if (--p->refs == 0) {
        free(p->held);
        free(p);
    }
}

static evio_action client_opened(evio_conn *c)
{
    pair *p = calloc(1, sizeof *p);
    if (!p)
        return EVIO_CLOSE;
    p->client = c;
    p->client_id = evio_conn_id(c);
    p->refs = 1;
    evio_conn_set_context(c, p);
    /* From the loop thread: the backend connection joins this loop. */
    int err = evio_dial(evio_conn_server(c), backend, DIAL_TIMEOUT_MS, p, &p->backend_id);
    if (err) {
        fprintf(stderr, "proxy: cannot dial %s: %s\n", backend, evio_strerror(err));
        return EVIO_CLOSE; /* closed() frees p */
    }
    p->refs++;
    p->dialing = true;
    return EVIO_NONE;
}

static evio_action backend_opened(evio_conn *c, const evio_info *info)
{
    pair *p = evio_conn_context(c);
    p->dialing = false;
    p->backend = c;
    if (info->dial_error) { /* closed() follows at once and closes the client */
        fprintf(stderr, "proxy: backend %s: %s\n", backend, evio_strerror(info->dial_error));
        return EVIO_NONE;
    }
    if (!p->client) /* the client left while we were dialing */
        return EVIO_CLOSE;
    if (p->held_len) {
        int err = evio_write(c, p->held, p->held_len);
        free(p->held);
        p->held = NULL;
        p->held_len = 0;
        if (err)
            return EVIO_CLOSE;
    }
    if (p->client_paused) {
        evio_conn_resume(p->client);
        p->client_paused = false;
    }
    if (p->client_eof)
        evio_conn_shutdown_write(c);
    return EVIO_NONE;
}

static evio_action opened(evio_conn *c, const evio_info *info)
{
    return info->dialed ? backend_opened(c, info) : client_opened(c);
}

/* Queue in on to; stop reading from if to's output is past the mark. */
static evio_action relay(evio_conn *from, evio_conn *to, bool *from_paused, const void *in,
                         size_t len)
{
    if (evio_write(to, in, len) != 0)
        return EVIO_CLOSE; /* out of memory, or to is gone: give up the pair */
    if (!*from_paused && evio_conn_pending(to) >= HIGH_WATER) {
        evio_conn_pause(from);
        *from_paused = true;
    }
    return EVIO_NONE;
}

static evio_action data(evio_conn *c, const void *in, size_t len)
{
    pair *p = evio_conn_context(c);
    if (!in || !p)
        return EVIO_NONE;
    if (c != p->client) /* the backend */
        return p->client ? relay(c, p->client, &p->backend_paused, in, len) : EVIO_CLOSE;
    if (p->backend)
        return relay(c, p->backend, &p->client_paused, in, len);
    if (!p->dialing) /* the backend is gone; we are closing */
        return EVIO_CLOSE;
    char *held = realloc(p->held, p->held_len + len);
    if (!held)
        return EVIO_CLOSE;
    memcpy(held + p->held_len, in, len);
    p->held = held;
    p->held_len += len;
    if (!p->client_paused) {
        evio_conn_pause(c);
        p->client_paused = true;
    }
    return EVIO_NONE;
}

/* One side finished sending: finish the other side's output the same way. */
static evio_action eof(evio_conn *c)
{
    pair *p = evio_conn_context(c);
    if (!p)
        return EVIO_CLOSE;
    evio_conn *peer = c == p->client ? p->backend : p->client;
    if (peer)
        evio_conn_shutdown_write(peer);
    else if (c == p->client && p->dialing)
        p->client_eof = true; /* once connected, after the held bytes */
    else
        return EVIO_CLOSE; /* the other side is gone */
    return EVIO_NONE;
}

/* c's output drained some: let its peer read again once below the mark. */
static evio_action postwrite(evio_conn *c, size_t written, size_t remaining)
{
    (void)written;
    pair *p = evio_conn_context(c);
    if (!p || remaining >= LOW_WATER)
        return EVIO_NONE;
    if (c == p->client) {
        if (p->backend_paused && p->backend) {
            evio_conn_resume(p->backend);
            p->backend_paused = false;
        }
    } else if (p->client_paused && p->client) {
        evio_conn_resume(p->client);
        p->client_paused = false;
    }
    return EVIO_NONE;
}

/* Close the peer of c: reset it if c was reset, so the cut shows; else
 * after what is queued for it. */
static void close_peer(evio_conn *c, evio_conn *peer, uint64_t peer_id, int err)
{
    if (!peer || atomic_load(&stopping)) /* shutting down: all close anyway */
        return;
    if (err == -ECONNRESET || err == -EPIPE)
        evio_conn_reset(peer);
    else
        evio_close(evio_conn_server(c), peer_id);
}

static evio_action closed(evio_conn *c, int err)
{
    pair *p = evio_conn_context(c);
    if (!p)
        return EVIO_NONE;
    if (c == p->client) {
        p->client = NULL;
        close_peer(c, p->backend, p->backend_id, err);
        /* still dialing: its opened() sees the client gone and closes it */
    } else {
        p->backend = NULL;
        close_peer(c, p->client, p->client_id, err);
    }
    pair_release(p);
    return EVIO_NONE;
}

static void on_signal(int sig)
{
    (void)sig;
    /* Once: a second signal may come while the server is being freed.
     * atomic_bool is lock-free, so this is async-signal-safe. */
    if (!atomic_exchange(&stopping, true) && server)
        evio_server_shutdown(server); /* async-signal-safe: a flag and a wake */
}

static void usage(const char *argv0)
{
    fprintf(stderr, "usage: %s [--port N] [--bind HOST] [--backend HOST:PORT] [--loops N]\n",
            argv0);
    exit(2);
}

int main(int argc, char **argv)
{
    int port = 7000, loops = 1;
    const char *host = "127.0.0.1";
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--port") == 0 && i + 1 < argc)
            port = atoi(argv[++i]);
        else if (strcmp(argv[i], "--bind") == 0 && i + 1 < argc)
            host = argv[++i];
        else if (strcmp(argv[i], "--backend") == 0 && i + 1 < argc)
            backend = argv[++i];
        else if (strcmp(argv[i], "--loops") == 0 && i + 1 < argc)
            loops = atoi(argv[++i]);
        else
            usage(argv[0]);
    }
    if (port < 0 || port > 65535 || loops < 0 || !*backend)
        usage(argv[0]);

    char addr[300];
    bool v6 = strchr(host, ':') && host[0] != '[';
    snprintf(addr, sizeof addr, v6 ? "tcp://[%s]:%d" : "tcp://%s:%d", host, port);
    const char *addrs[1] = {addr};

    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    evio_events events = {
        .serving = serving,
        .opened = opened,
        .data = data,
        .eof = eof,
        .postwrite = postwrite,
        .closed = closed,
        .output_high_water = -1, /* the pair's flow control instead: see the top */
        .nloops = loops == 0 ? EVIO_LOOPS_PER_CPU : loops,
    };
    int err = evio_serve(&events, addrs, 1);
    server = NULL;
    if (err) {
        fprintf(stderr, "proxy: %s: %s\n", addr, evio_strerror(err));
        return 1;
    }
    return 0;
}
