/* redis-server — a simplified Redis on evio: strings with expiry, RESP2,
 * pipelining, transactions.  Good enough for redis-cli, redis-benchmark,
 * client libraries and Redis's own test units for strings and keys.
 *
 *   redis-server [--port N] [--bind "ADDR ..."] [--unixsocket PATH] [--loops N]
 *                [--maxclients N] [--output-limit BYTES] [--enable-remote-admin]
 *
 * Listens on port N (default 6380; 0 lets the kernel choose, and the
 * address is printed) of 127.0.0.1 and ::1 only, as Redis does by default;
 * --bind lists other addresses ("*" for every IPv4 address, "::" for every
 * IPv6 one, a leading "-" for one that may be missing), and --unixsocket
 * adds a unix socket.  --loops N runs N event loops (threads; 0 = one per
 * CPU): they read, parse and write in parallel and take turns with the
 * keyspace under one lock, as Redis's I/O threads do.  Stops on SIGINT,
 * SIGTERM or the SHUTDOWN command, which like CONFIG SET and CLIENT KILL of
 * other clients is refused to clients that are not on loopback or the unix
 * socket unless --enable-remote-admin is given.
 *
 * The files, top-down:
 *   main.c      this: options, and the evio events that tie the rest together
 *   resp.c      the request parser (inline and multibulk, incremental)
 *   commands.c  the command table and dispatch; strings.c, keys.c, types.c,
 *               multi.c and server.c the handlers, by topic
 *   reply.c     replies, batched per event
 *   db.c        the keyspace: incrementally rehashed hash table, expiry */
#define _POSIX_C_SOURCE 200809L

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

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

/* Within one command (MGET of a thousand big values, KEYS on a big
 * keyspace) flow control cannot help: the reply is built at once.  Past
 * this much queued output the reply is cut off and the client closed, as
 * Redis's client-output-buffer-limit hard limit does; the client then has
 * OVER_LIMIT_GRACE_MS to read what was queued before it is dropped. */
#define OUTPUT_LIMIT (32u << 20)
#define OVER_LIMIT_GRACE_MS 5000

#define TICK_NS 100000000LL     /* housekeeping ten times a second, as Redis's hz */
#define TICK_BUSY_NS 10000000LL /* while a resize or a FLUSHDB is being worked off */
#define TICK_BUDGET_NS 1000000LL

typedef struct client {
    session s;
    resp_parser parser;
    char *backlog; /* input not executed yet (flow control) */
    size_t blen;
    bool paused;
} client;

static db *keyspace;
static pthread_mutex_t keyspace_lock = PTHREAD_MUTEX_INITIALIZER;
static bool shared_keyspace; /* several loops: take keyspace_lock */
static evio_server *volatile server; /* for the signal handler */
static atomic_llong now_ms;  /* a coarse clock, set by tick, for CLIENT LIST's idle */

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

static bool loopback_only; /* every listen address is loopback */

static evio_action serving(evio_server *srv)
{
    server = srv;
    server_info.srv = srv;
    printf("redis server (backend: %s)\n", evio_backend_name());
    for (size_t i = 0; i < evio_server_naddrs(srv); i++) {
        socklen_t len;
        const struct sockaddr *sa = evio_server_addr(srv, i, &len);
        char where[160];
        evio_addr_format(sa, len, where, sizeof where);
        printf("listening on %s\n", where);
    }
    if (loopback_only)
        printf("(loopback only: --bind '* ::' listens on every interface)\n");
    fflush(stdout);
    return EVIO_NONE;
}

/* Loopback and unix-socket peers may run admin commands. */
static bool is_local(const struct sockaddr *sa)
{
    if (!sa || sa->sa_family == AF_UNIX)
        return true;
    if (sa->sa_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
    if (sa->sa_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        if (IN6_IS_ADDR_LOOPBACK(a))
            return true;
        return IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127;
    }
    return false;
}

/* "ip:port" as CLIENT LIST shows addresses. */
static void format_addr(const struct sockaddr *sa, char *out, size_t size)
{
    char host[INET6_ADDRSTRLEN] = "";
    unsigned port = 0;
    if (sa && sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
        port = ntohs(in->sin_port);
    } else if (sa && sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &in->sin6_addr, host, sizeof host);
        port = ntohs(in->sin6_port);
    } else {
        snprintf(out, size, "/unixsocket:0");
        return;
    }
    snprintf(out, size, "%s:%u", host, port);
}

static evio_action opened(evio_conn *c, const evio_info *info)
{
    lock_keyspace();
    bool full = server_info.clients >= server_info.maxclients;
    if (full)
        server_info.rejected_conns++;
    unlock_keyspace();
    if (full) { /* what Redis says, rather than leaving the client waiting */
        static const char msg[] = "-ERR max number of clients reached\r\n";
        evio_write(c, msg, sizeof msg - 1);
        return EVIO_CLOSE;
    }
    client *cl = calloc(1, sizeof *cl);
    if (!cl)
        return EVIO_CLOSE;
    cl->s.id = evio_conn_id(c);
    cl->s.conn = c;
    cl->s.admin = server_info.remote_admin || is_local(info->remote);
    format_addr(info->remote, cl->s.addr, sizeof cl->s.addr);
    format_addr(info->local, cl->s.laddr, sizeof cl->s.laddr);
    evio_conn_set_context(c, cl);
    lock_keyspace();
    session_register(&cl->s);
    unlock_keyspace();
    return EVIO_NONE;
}

static evio_action closed(evio_conn *c, int err)
{
    (void)err;
    client *cl = evio_conn_context(c);
    if (cl) {
        lock_keyspace();
        multi_reset(keyspace, &cl->s);
        session_unregister(&cl->s);
        unlock_keyspace();
        free(cl->s.name);
        free(cl->s.lib_name);
        free(cl->s.lib_ver);
        resp_free(&cl->parser);
        free(cl->backlog);
        free(cl);
    }
    return EVIO_NONE;
}

/* Execute the commands in[0, len) completes, answering into r, until the
 * bytes run out, a command asks for an action, or the client has more
 * output queued than OUTPUT_HIGH.  Returns the bytes consumed. */
static size_t execute(client *cl, const char *in, size_t len, reply *r, evio_action *act)
{
    const char *p = in, *end = in + len;
    while (*act == EVIO_NONE && p < end && r->queued + reply_size(r) <= OUTPUT_HIGH && !r->err) {
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
            *act = commands_exec(keyspace, &cl->s, &cmd, r);
            if (cl->s.closing)
                *act = EVIO_CLOSE;
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
    reply_init(&r, c, evio_conn_pending(c), server_info.output_limit);
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

    cl->s.last_ms = atomic_load_explicit(&now_ms, memory_order_relaxed);
    lock_keyspace(); /* held while replies are copied out of the keyspace */
    size_t used = execute(cl, p, len, &r, &act);
    unlock_keyspace();
    reply_flush(&r);
    resp_idle(&cl->parser); /* an idle connection keeps no big request buffer */
    if (r.err == REPLY_OVER_LIMIT) {
        /* Send what was queued if the client reads it, then close; one
         * that does not read is dropped after the grace period. */
        evio_conn_set_idle_timeout(c, OVER_LIMIT_GRACE_MS);
        evio_conn_pause(c);
        return EVIO_CLOSE;
    }
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
    atomic_store_explicit(&now_ms, db_now_ms(), memory_order_relaxed);
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
    fprintf(stderr,
            "usage: %s [--port N] [--bind \"ADDR ...\"] [--unixsocket PATH] [--loops N]\n"
            "       [--maxclients N] [--output-limit BYTES] [--enable-remote-admin]\n",
            argv0);
    exit(2);
}

static long number(const char *argv0, const char *s, long min, long max)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (*end || end == s || v < min || v > max)
        usage(argv0);
    return v;
}

/* Can this host bind an address of this family at all (is IPv6 on)? */
static bool can_bind(const char *host)
{
    struct sockaddr_in6 a6 = {.sin6_family = AF_INET6};
    struct sockaddr_in a4 = {.sin_family = AF_INET};
    bool v6 = strchr(host, ':') != NULL;
    if (v6 ? inet_pton(AF_INET6, host, &a6.sin6_addr) != 1 : inet_pton(AF_INET, host, &a4.sin_addr) != 1)
        return true; /* not numeric: let evio_serve judge */
    int fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return false;
    bool ok = v6 ? bind(fd, (struct sockaddr *)&a6, sizeof a6) == 0
                 : bind(fd, (struct sockaddr *)&a4, sizeof a4) == 0;
    close(fd);
    return ok;
}

#define MAX_ADDRS 16

int main(int argc, char **argv)
{
    long port = 6380, loops = 1, maxclients = 10000;
    long long output_limit = OUTPUT_LIMIT;
    const char *unixsocket = NULL;
    char binds[1024] = "127.0.0.1 -::1"; /* Redis's default */
    bool remote_admin = false;
    for (int i = 1; i < argc; i++) {
        bool next = i + 1 < argc;
        if (strcmp(argv[i], "--port") == 0 && next) {
            port = number(argv[0], argv[++i], 0, 65535);
        } else if (strcmp(argv[i], "--bind") == 0 && next) {
            snprintf(binds, sizeof binds, "%s", argv[++i]);
        } else if (strcmp(argv[i], "--unixsocket") == 0 && next) {
            unixsocket = argv[++i];
        } else if (strcmp(argv[i], "--loops") == 0 && next) {
            loops = number(argv[0], argv[++i], 0, 1024);
        } else if (strcmp(argv[i], "--maxclients") == 0 && next) {
            maxclients = number(argv[0], argv[++i], 1, 1000000);
        } else if (strcmp(argv[i], "--output-limit") == 0 && next) {
            output_limit = number(argv[0], argv[++i], 0, 1L << 40);
        } else if (strcmp(argv[i], "--enable-remote-admin") == 0) {
            remote_admin = true;
        } else {
            usage(argv[0]);
        }
    }

    /* The addresses: "--bind '127.0.0.1 -::1'" as Redis's bind directive. */
    static char addrbuf[MAX_ADDRS + 1][300];
    const char *addrs[MAX_ADDRS + 1];
    size_t naddrs = 0;
    loopback_only = true;
    for (char *save = NULL, *h = strtok_r(binds, " ", &save); h; h = strtok_r(NULL, " ", &save)) {
        bool optional = h[0] == '-';
        h += optional;
        if (strcmp(h, "*") == 0)
            h = "0.0.0.0";
        if (naddrs == MAX_ADDRS || !*h)
            usage(argv[0]);
        if (optional && !can_bind(h))
            continue;
        if (strcmp(h, "localhost") != 0 && strncmp(h, "127.", 4) != 0 && strcmp(h, "::1") != 0)
            loopback_only = false;
        bool v6 = strchr(h, ':') != NULL && h[0] != '[';
        snprintf(addrbuf[naddrs], sizeof addrbuf[naddrs], v6 ? "tcp://[%s]:%ld" : "tcp://%s:%ld", h, port);
        addrs[naddrs] = addrbuf[naddrs];
        naddrs++;
    }
    if (unixsocket) {
        snprintf(addrbuf[naddrs], sizeof addrbuf[naddrs], "unix://%s", unixsocket);
        addrs[naddrs] = addrbuf[naddrs];
        naddrs++;
    }
    if (!naddrs)
        usage(argv[0]);

    /* Room for maxclients descriptors, as Redis: raise the soft limit if
     * the hard one allows, else serve fewer clients. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rlim_t want = (rlim_t)maxclients + 32;
        if (rl.rlim_cur < want) {
            rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > want ? want : rl.rlim_max;
            setrlimit(RLIMIT_NOFILE, &rl);
            getrlimit(RLIMIT_NOFILE, &rl);
        }
        if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < (rlim_t)maxclients + 32)
            maxclients = rl.rlim_cur > 64 ? (long)rl.rlim_cur - 32 : 32;
    }

    server_info.start_ms = db_now_ms();
    server_info.maxclients = (size_t)maxclients;
    server_info.output_limit = (size_t)output_limit;
    server_info.remote_admin = remote_admin;
    server_info.port = port;
    server_info.executable = argv[0];
    config_init();
    atomic_store(&now_ms, server_info.start_ms);

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
