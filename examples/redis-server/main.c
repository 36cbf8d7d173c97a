/* redis-server — a simplified Redis on evio: strings with expiry, RESP2,
 * pipelining.  Good enough for redis-cli and redis-benchmark.
 *
 *   redis-server [--port N] [--bind HOST] [--unixsocket PATH] [--loops N]
 *
 * Listens on tcp://HOST:N (default port 6380, every address; --port 0 lets
 * the kernel choose, and the address is printed) and, with --unixsocket, on
 * a unix socket too.  --loops N runs N event loops (threads; 0 = one per
 * CPU): they read, parse and write in parallel and take turns with the
 * keyspace under one lock, as Redis's I/O threads do.  Stops on SIGINT,
 * SIGTERM or the SHUTDOWN command.
 *
 * The files, top-down:
 *   main.c      this: options, and the evio events that tie the rest together
 *   resp.c      the request parser (inline and multibulk, incremental)
 *   commands.c  the command table and handlers
 *   reply.c     replies, batched per event
 *   db.c        the keyspace: incrementally rehashed hash table, expiry */
#define _POSIX_C_SOURCE 200809L

#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <evio.h>

#include "commands.h"
#include "db.h"
#include "reply.h"
#include "resp.h"

/* Output flow control.  A client that sends faster than it reads stops
 * being served once this much output is queued for it: the commands not
 * executed yet wait in its backlog, reading pauses, and both resume when
 * it has taken most of the output.  So memory stays bounded however long
 * the pipeline and however big the values it asks for (a few bytes of
 * "GET big" can ask for megabytes). */
#define OUTPUT_HIGH (4u << 20)
#define OUTPUT_LOW (1u << 20)

#define TICK_NS 100000000LL     /* housekeeping ten times a second, as Redis's hz */
#define TICK_BUSY_NS 10000000LL /* while a resize or a FLUSHDB is being worked off */
#define TICK_BUDGET_NS 1000000LL

typedef struct client {
    resp_parser parser;
    char *backlog; /* input not executed yet (flow control) */
    size_t blen;
    bool paused;
} client;

static db *keyspace;
static pthread_mutex_t keyspace_lock = PTHREAD_MUTEX_INITIALIZER;
static bool shared_keyspace; /* several loops: take keyspace_lock */
static evio_server *volatile server; /* for the signal handler */

static void lock_keyspace(void)
{
    if (shared_keyspace)
        pthread_mutex_lock(&keyspace_lock);
}

static void unlock_keyspace(void)
{
    if (shared_keyspace)
        pthread_mutex_unlock(&keyspace_lock);
}

static evio_action serving(evio_server *srv)
{
    server = srv;
    printf("redis server (backend: %s)\n", evio_backend_name());
    for (size_t i = 0; i < evio_server_naddrs(srv); i++) {
        socklen_t len;
        const struct sockaddr *sa = evio_server_addr(srv, i, &len);
        char where[160];
        evio_addr_format(sa, len, where, sizeof where);
        printf("listening on %s\n", where);
    }
    fflush(stdout);
    return EVIO_NONE;
}

static evio_action opened(evio_conn *c, const evio_info *info)
{
    (void)info;
    client *cl = calloc(1, sizeof *cl);
    if (!cl)
        return EVIO_CLOSE;
    evio_conn_set_context(c, cl);
    return EVIO_NONE;
}

static evio_action closed(evio_conn *c, int err)
{
    (void)err;
    client *cl = evio_conn_context(c);
    if (cl) {
        resp_free(&cl->parser);
        free(cl->backlog);
        free(cl);
    }
    return EVIO_NONE;
}

/* Execute the commands in[0, len) completes, answering into r, until the
 * bytes run out, a command asks for an action, or the client has more
 * output queued than OUTPUT_HIGH.  Returns the bytes consumed. */
static size_t execute(client *cl, const char *in, size_t len, size_t queued, reply *r,
                      evio_action *act)
{
    const char *p = in, *end = in + len;
    while (*act == EVIO_NONE && p < end && queued + reply_size(r) <= OUTPUT_HIGH) {
        resp_cmd cmd;
        size_t used;
        int st = resp_feed(&cl->parser, p, (size_t)(end - p), &used, &cmd);
        p += used;
        if (st == RESP_AGAIN)
            break;
        if (st == RESP_ERROR) {
            reply_error(r, "ERR Protocol error: %s", resp_error(&cl->parser));
            *act = EVIO_CLOSE;
        } else if (cmd.argc > 0) {
            *act = commands_exec(keyspace, &cmd, r);
        }
    }
    return (size_t)(p - in);
}

/* Bytes arrived (or, after a wake, the backlog may go on): execute what
 * they complete, answering in one batch.  The common case runs on the
 * bytes where evio read them; the backlog is only for a client that
 * outran its output. */
static evio_action data(evio_conn *c, const void *in, size_t len)
{
    client *cl = evio_conn_context(c);
    if (!cl || (!in && !cl->blen))
        return EVIO_NONE;
    reply r;
    reply_init(&r, c);
    size_t queued = evio_conn_pending(c);
    evio_action act = EVIO_NONE;
    if (cl->blen && in) { /* the backlog goes first, new bytes after it */
        char *b = realloc(cl->backlog, cl->blen + len);
        if (!b)
            return EVIO_CLOSE;
        memcpy(b + cl->blen, in, len);
        cl->backlog = b;
        cl->blen += len;
    }
    const char *p = cl->blen ? cl->backlog : in;
    if (cl->blen)
        len = cl->blen;

    lock_keyspace(); /* held while replies are copied out of the keyspace */
    size_t used = execute(cl, p, len, queued, &r, &act);
    unlock_keyspace();
    reply_flush(&r);
    if (r.err)
        return EVIO_CLOSE; /* out of memory: drop this client, keep serving */

    size_t rest = act == EVIO_NONE ? len - used : 0;
    if (rest && p == cl->backlog) {
        memmove(cl->backlog, cl->backlog + used, rest);
    } else if (rest) {
        if (!(cl->backlog = malloc(rest)))
            return EVIO_CLOSE;
        memcpy(cl->backlog, p + used, rest);
    } else {
        free(cl->backlog);
        cl->backlog = NULL;
    }
    cl->blen = rest;
    if (act == EVIO_NONE && !cl->paused && (rest || evio_conn_pending(c) > OUTPUT_HIGH)) {
        evio_conn_pause(c);
        cl->paused = true;
    }
    return act;
}

static evio_action postwrite(evio_conn *c, size_t written, size_t remaining)
{
    (void)written;
    client *cl = evio_conn_context(c);
    if (cl && cl->paused && remaining < OUTPUT_LOW) {
        evio_conn_resume(c);
        cl->paused = false;
        if (cl->blen) /* go on with the backlog in data(c, NULL, 0) */
            evio_wake(evio_conn_server(c), evio_conn_id(c));
    }
    return EVIO_NONE;
}

static evio_action tick(evio_server *srv, int64_t *delay_ns)
{
    (void)srv;
    lock_keyspace();
    bool busy = db_cron(keyspace, TICK_BUDGET_NS);
    unlock_keyspace();
    *delay_ns = busy ? TICK_BUSY_NS : TICK_NS;
    return EVIO_NONE;
}

static void on_signal(int sig)
{
    (void)sig;
    if (server)
        evio_server_shutdown(server); /* async-signal-safe: a flag and a wake */
}

static void usage(const char *argv0)
{
    fprintf(stderr, "usage: %s [--port N] [--bind HOST] [--unixsocket PATH] [--loops N]\n",
            argv0);
    exit(2);
}

int main(int argc, char **argv)
{
    long port = 6380, loops = 1;
    const char *host = "", *unixsocket = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--port") == 0 && i + 1 < argc) {
            char *end;
            port = strtol(argv[++i], &end, 10);
            if (*end || port < 0 || port > 65535)
                usage(argv[0]);
        } else if (strcmp(argv[i], "--bind") == 0 && i + 1 < argc) {
            host = argv[++i];
        } else if (strcmp(argv[i], "--unixsocket") == 0 && i + 1 < argc) {
            unixsocket = argv[++i];
        } else if (strcmp(argv[i], "--loops") == 0 && i + 1 < argc) {
            char *end;
            loops = strtol(argv[++i], &end, 10);
            if (*end || loops < 0 || loops > 1024)
                usage(argv[0]);
        } else {
            usage(argv[0]);
        }
    }

    char tcp[300], unx[1100];
    bool v6 = strchr(host, ':') != NULL && host[0] != '[';
    snprintf(tcp, sizeof tcp, v6 ? "tcp://[%s]:%ld" : "tcp://%s:%ld", host, port);
    const char *addrs[2] = {tcp, NULL};
    size_t naddrs = 1;
    if (unixsocket) {
        snprintf(unx, sizeof unx, "unix://%s", unixsocket);
        addrs[naddrs++] = unx;
    }

    keyspace = db_new();
    if (!keyspace) {
        fprintf(stderr, "redis-server: out of memory\n");
        return 1;
    }
    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    shared_keyspace = loops != 1;
    evio_events events = {
        .nloops = loops == 0 ? EVIO_LOOPS_PER_CPU : (int)loops,
        .serving = serving,
        .opened = opened,
        .closed = closed,
        .data = data,
        .postwrite = postwrite,
        .tick = tick,
    };
    int err = evio_serve(&events, addrs, naddrs);
    db_free(keyspace);
    if (err) {
        fprintf(stderr, "redis-server: %s\n", evio_strerror(err));
        return 1;
    }
    return 0;
}
