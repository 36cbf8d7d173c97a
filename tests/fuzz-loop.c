/* fuzz-loop.c — libFuzzer target for the event loop itself, driven through
 * the fault layer (api/sys.h): the input chooses a small workload and which
 * system calls and allocations fail, and how.
 *
 *   make tests/fuzz-loop && tests/fuzz-loop -max_total_time=60 tests/fuzz-corpus/loop
 *   make fuzz FUZZ_SECONDS=600            (every target; see Makefile.am)
 *
 * One input is one server: evio_serve on unix://PATH and tcp://127.0.0.1:0,
 * one loop, on this thread, with the backend linked in (epoll), and raw
 * client sockets on the same thread.  Nothing sleeps and no other thread
 * runs: the loop's poll goes through this file's entry in the sys table,
 * which first performs one step of the workload (a client connects, sends,
 * reads, half-closes or closes; the server is woken, sent to or closed from
 * "another thread"; the loop dials; the server drains or shuts down) and
 * then polls without waiting.  Loopback unix and TCP sockets deliver within
 * the sending call, so a run is the same sequence of loop iterations every
 * time.  Server connections act on wakes: each wake carries actions for
 * the woken connection's data(NULL, 0) (write a little or a lot, close,
 * shut down writing, reset, pause, resume, detach, lower the high-water
 * mark, drain the server).  Every byte any side sends is the same
 * position-dependent pattern, so each receiver checks what arrives against
 * what must be there.
 *
 * Input:
 *   byte 0    options (OPT_* below)
 *   byte 1    number of workload steps, at most MAX_STEPS
 *   then      the steps, two bytes each: operation (OP_*, modulo their
 *             number) and argument
 *   the rest  the fault schedule, two bytes per fault: gap and kind.  Every
 *             call through the sys table (allocations, socket, connect,
 *             accept, recv, send, getsockopt SO_ERROR, the wakeup fd's read
 *             and write, interest changes that add or modify, poll) counts
 *             once faults are armed (at serving(), or before evio_serve
 *             with OPT_SETUP_FAULTS); a fault goes to the call `gap` calls
 *             after the previous fault's call, and its kind picks what that
 *             call suffers (see the f_* functions): ENOMEM, EMFILE and
 *             friends, EAGAIN, EINTR, ECONNRESET, EPIPE, short reads and
 *             writes, failed, refused or delayed connects, a failed
 *             SO_ERROR, poller ENOMEM/ENOSPC, an early wakeup, spurious or
 *             repeated readiness.
 *
 * After the steps comes a bounded drain: the clients read, half-close and
 * close once they see EOF, every still-open server connection gets
 * evio_close, then evio_server_shutdown; at most DRAIN_MAX iterations, so
 * no input can run long.
 *
 * Checked, during the run and after evio_serve returns (abort() with a
 * message on the first violation, so libFuzzer keeps the input):
 *  - every opened connection is closed or detached exactly once, never one
 *    that did not open; every id evio_dial returned opens and closes
 *    exactly once; no id opens twice;
 *  - bytes arrive whole and in order: each receiver (raw clients and evio
 *    connections) sees exactly the sender's pattern, never a byte more
 *    than the sender queued;
 *  - output queued before an orderly close arrives whole: when the server
 *    side closed with err 0 (not reset, not by shutdown) or detached
 *    after reading everything its client sent, a client that read to EOF
 *    got everything queued, and no such client is reset (with input left
 *    unread, close sends RST and the kernel drops unsent output: see
 *    check_run);
 *  - a client the server never opened receives nothing;
 *  - evio_wake, evio_send and evio_close know every open connection, and a
 *    wake that returned 0 fires data(NULL, 0) in that iteration unless the
 *    connection is closing; postwrite's remaining is evio_conn_pending();
 *  - nothing closes with ETIMEDOUT unless a fault said so: every timeout
 *    in play is 10 s or more;
 *  - the loop goes quiet after the workload (DRAIN_MAX), holds no output
 *    buffer once every connection closed, evio_serve returns 0 (or fails
 *    before serving() only under OPT_SETUP_FAULTS), and no fd is left
 *    open (memory: ASan/LSan, per input under libFuzzer).
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "sys.h"

#define MAX_STEPS 64
#define MAX_CLIENTS 8
#define MAX_DIALS 48
#define MAX_CONNS (MAX_CLIENTS + 2 * MAX_DIALS + 8)
#define MAX_ACTIONS 8
#define DRAIN_MAX 4000          /* loop iterations after the steps */
#define BYTE_BUDGET (3u << 20)  /* bytes written by all sides, per input */
#define MAX_WATCH 4096
#define CHUNK (256 * 1024)

enum { /* byte 0 */
    OPT_EOF = 1,           /* an eof callback (else peer EOF closes) */
    OPT_EOF_CLOSE = 2,     /* ... which returns EVIO_CLOSE (else NONE: half-open) */
    OPT_DETACHED = 4,      /* a detached callback (else DETACH closes) */
    OPT_SETUP_FAULTS = 8,  /* faults armed before evio_serve, not at serving() */
    OPT_LOW_WATER = 16,    /* output_high_water 4096 */
    OPT_WRITE_HOOKS = 32,  /* prewrite/postwrite; postwrite writes a little more */
    OPT_REPLY = 64,        /* accepted connections answer input with as many bytes */
    OPT_MAX_CONNS = 128,   /* max_conns 3 */
};

enum { /* workload steps */
    OP_CONNECT,     /* arg&1: tcp, else unix */
    OP_SEND,        /* client arg&7, size index arg>>5 */
    OP_READ,        /* client arg&7 */
    OP_SHUT_WR,     /* client arg&7 */
    OP_CLOSE,       /* client arg&7 */
    OP_WAKE,        /* connection arg&7, action arg>>3 */
    OP_EVIO_SEND,   /* connection arg&7, size index arg>>5 */
    OP_EVIO_CLOSE,  /* connection arg&7 */
    OP_DIAL,        /* arg&1 tcp; arg>>1&3 where; arg>>3&1 timeout; arg>>4 greeting */
    OP_IDLE,
    OP_DRAIN,
    OP_SHUTDOWN,
    NOPS
};

enum { /* what a wake asks of the woken connection, in data(NULL, 0) */
    ACT_WRITE,
    ACT_WRITE_BIG,
    ACT_CLOSE,
    ACT_SHUT_WR,
    ACT_RESET,
    ACT_PAUSE,
    ACT_RESUME,
    ACT_DETACH,
    ACT_HIGH_WATER,
    ACT_NONE,
    ACT_WRITE_CLOSE,
    ACT_DRAIN,
    NACTS
};

static const size_t send_sizes[8] = {1, 10, 100, 1000, 5000, 20000, 70000, 300000};

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("fuzz-loop: ", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    abort();
}

/* The byte at offset i of every stream. */
static uint8_t pat(uint64_t i)
{
    uint64_t x = (i + 1) * 0x9e3779b97f4a7c15ull;
    return (uint8_t)((x >> 32) ^ (x >> 56));
}

static void fill(uint8_t *p, uint64_t off, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = pat(off + i);
}

/* The offset of the first byte of p[0, n) that is not the pattern from
 * off, or n. */
static size_t mismatch(const uint8_t *p, uint64_t off, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != pat(off + i))
            return i;
    return n;
}

/* ---------------------------------------------------------------- the run's state */

typedef struct client {
    int fd;        /* -1 once closed */
    bool tcp;
    bool wshut;    /* shutdown(SHUT_WR) done */
    bool eof;      /* read EOF */
    bool early;    /* closed by us before its EOF */
    int err;       /* a failed recv's errno */
    uint64_t tx, rx;
    struct sockaddr_storage local;
    socklen_t llen;
    int conn;      /* the server side (conns[]), -1 */
} client;

typedef struct sconn {
    uint64_t id;
    evio_conn *c;   /* while open */
    bool dialed, dial_failed;
    int client;     /* matched raw client, -1 */
    int dial;       /* dials[] index, -1 */
    uint64_t rx;    /* bytes data() saw */
    uint64_t tx;    /* pattern bytes handed to evio_write/evio_send */
    uint64_t tx_sure; /* of which surely in the queue (an evio_send may be dropped
                       * if the connection was closing already) */
    uint64_t owed;  /* replies held back while an evio_send is in flight */
    int closed, detached, err;
    bool by_shutdown, reset, out_done, send_pending, wake_pending;
    int extra;      /* postwrite's writes */
    uint8_t act[MAX_ACTIONS];
    int nact;
} sconn;

typedef struct dialrec {
    uint64_t id;
    int opened, closed;
    size_t greet;
} dialrec;

static struct run {
    unsigned opts;
    const uint8_t *steps;
    size_t nsteps, step;
    bool active;     /* inside evio_serve, our poll drives */
    evio_server *srv;
    bool serving, shutting, closing_all;
    int drain_iter, idle, last_events;
    int64_t started_ms;
    uint64_t budget;
    client cl[MAX_CLIENTS];
    int ncl;
    sconn sc[MAX_CONNS];
    int nsc;
    dialrec dl[MAX_DIALS];
    int ndl;
} R;

static uint8_t wbuf[CHUNK];
static uint8_t rbuf[64 * 1024];
static char unix_path[96], unix_addr[128];
static bool verbose;
static struct sockaddr_in tcp_sa;

/* ---------------------------------------------------------------- the fault layer */

static const uint8_t *fault_p, *fault_end;
static bool armed, have_next;
static uint64_t ncalls, next_at;
static uint8_t next_kind;
static unsigned watch[MAX_WATCH]; /* interest per fd, as set through the table */

static void load_fault(void)
{
    have_next = fault_end - fault_p >= 2;
    if (!have_next)
        return;
    next_at = ncalls + fault_p[0];
    next_kind = fault_p[1];
    fault_p += 2;
}

/* The kind of fault this call gets, or -1. */
static int draw(void)
{
    if (!armed)
        return -1;
    uint64_t n = ncalls++;
    if (!have_next || n != next_at)
        return -1;
    int k = next_kind;
    load_fault();
    return k;
}

static bool injected_timeout; /* a fault said ETIMEDOUT this run */

static int fail_with(int err)
{
    injected_timeout |= err == ETIMEDOUT;
    errno = err;
    return -1;
}

static void *f_malloc(size_t n)
{
    if (draw() >= 0) {
        errno = ENOMEM;
        return NULL;
    }
    return evio__sys_default.malloc(n);
}

static void *f_calloc(size_t n, size_t size)
{
    if (draw() >= 0) {
        errno = ENOMEM;
        return NULL;
    }
    return evio__sys_default.calloc(n, size);
}

static void *f_realloc(void *p, size_t n)
{
    if (draw() >= 0) {
        errno = ENOMEM;
        return NULL;
    }
    return evio__sys_default.realloc(p, n);
}

static int f_socket(int domain, int type, int protocol)
{
    static const int errs[] = {EMFILE, ENFILE, ENOBUFS, ENOMEM};
    int k = draw();
    if (k >= 0)
        return fail_with(errs[k % 4]);
    return evio__sys_default.socket(domain, type, protocol);
}

static int f_connect(int fd, const struct sockaddr *sa, socklen_t len)
{
    static const int errs[] = {ECONNREFUSED, ENETUNREACH, EAGAIN, EADDRNOTAVAIL};
    int k = draw();
    if (k >= 0 && k % 5 < 4)
        return fail_with(errs[k % 5]);
    int rc = evio__sys_default.connect(fd, sa, len);
    if (k >= 0 && rc == 0)
        return fail_with(EINPROGRESS); /* completes "later": on the writable event */
    return rc;
}

/* Errors accept may return with the connection still in the backlog. */
static int f_accept(int fd, struct sockaddr *sa, socklen_t *len, int flags)
{
    static const int errs[] = {EAGAIN, EINTR,   ECONNABORTED, EPROTO, EMFILE,
                               ENFILE, ENOBUFS, ENOMEM,       EPERM};
    int k = draw();
    if (k >= 0)
        return fail_with(errs[k % 9]);
    return evio__sys_default.accept(fd, sa, len, flags);
}

/* A connect reported failed by SO_ERROR, or getsockopt itself failing. */
static int f_getsockopt(int fd, int level, int name, void *val, socklen_t *len)
{
    static const int errs[] = {ECONNREFUSED, ETIMEDOUT, EHOSTUNREACH};
    int rc = evio__sys_default.getsockopt(fd, level, name, val, len);
    if (level != SOL_SOCKET || name != SO_ERROR || rc < 0)
        return rc;
    int k = draw();
    if (k < 0)
        return rc;
    if (k % 4 == 3)
        return fail_with(ENOBUFS);
    int v = 0;
    if (*len >= (socklen_t)sizeof v) {
        memcpy(&v, val, sizeof v);
        if (!v)
            v = errs[k % 4];
        injected_timeout |= v == ETIMEDOUT;
        memcpy(val, &v, sizeof v);
    }
    return rc;
}

/* Short: 1..32 bytes, or a fraction of len. */
static size_t shorten(size_t len, int k)
{
    size_t n = (k & 8) ? 1 + (size_t)(k >> 4) : 1 + len * (size_t)(k >> 4) / 16;
    return n < len ? n : len;
}

static ssize_t f_recv(int fd, void *buf, size_t len, int flags)
{
    static const int errs[] = {EAGAIN, EINTR, ECONNRESET, ETIMEDOUT};
    int k = draw();
    if (k >= 0 && k % 8 < 4)
        return fail_with(errs[k % 8]);
    return evio__sys_default.recv(fd, buf, k >= 0 ? shorten(len, k) : len, flags);
}

static ssize_t f_send(int fd, const void *buf, size_t len, int flags)
{
    static const int errs[] = {EAGAIN, EINTR, EPIPE, ECONNRESET, ENOBUFS};
    int k = draw();
    if (k >= 0 && k % 8 < 5)
        return fail_with(errs[k % 8]);
    return evio__sys_default.send(fd, buf, k >= 0 ? shorten(len, k) : len, flags);
}

/* The wakeup fd: a read may be interrupted or find nothing (the count
 * stays, level-triggered polling reports it again); a write may only be
 * interrupted (an EAGAIN that did not add to the count would lose a wake
 * no real eventfd loses). */
static ssize_t f_read(int fd, void *buf, size_t len)
{
    int k = draw();
    if (k >= 0)
        return fail_with(k % 2 ? EINTR : EAGAIN);
    return evio__sys_default.read(fd, buf, len);
}

static ssize_t f_write(int fd, const void *buf, size_t len)
{
    if (draw() >= 0)
        return fail_with(EINTR);
    return evio__sys_default.write(fd, buf, len);
}

/* Adding or changing interest may fail (epoll_ctl: ENOMEM, ENOSPC for a
 * new watch); removing it may not, or the backend would watch an fd about
 * to be closed. */
static int f_set(evio__poller *p, int fd, unsigned old_mask, unsigned new_mask)
{
    if (new_mask) {
        int k = draw();
        if (k >= 0)
            return !old_mask && k % 2 ? -ENOSPC : -ENOMEM;
    }
    int err = evio__sys_default.set(p, fd, old_mask, new_mask);
    if (!err && fd >= 0 && fd < MAX_WATCH)
        watch[fd] = new_mask;
    return err;
}

/* Readiness for a watched fd that need not be ready at all. */
static int spurious(evio__event *out, int n, int max, int k)
{
    int count = 0;
    for (int fd = 0; fd < MAX_WATCH; fd++)
        count += watch[fd] != 0;
    if (k % 4 == 3 && n > 0) { /* the first entry again */
        out[n] = out[0];
        return n + 1;
    }
    if (!count || n >= max)
        return n;
    int pick = (k >> 2) % count;
    for (int fd = 0; fd < MAX_WATCH; fd++) {
        if (watch[fd] && pick-- == 0) {
            out[n++] = (evio__event){.fd = fd,
                                     .mask = k % 4 == 2 ? EVIO__READ | EVIO__WRITE : watch[fd]};
            break;
        }
    }
    return n;
}

static void workload(void);

/* Every loop iteration: one step of the workload, then a poll that never
 * waits (so no input can block), with the schedule's early wakeup or
 * spurious readiness. */
static int f_poll(evio__poller *p, evio__event *out, int max, int64_t timeout_ns)
{
    if (!R.active)
        return evio__sys_default.poll(p, out, max, timeout_ns);
    workload();
    int k = draw();
    if (k >= 0 && k % 4 == 0) {
        R.last_events = -1; /* not a sign of quiet */
        return 0;
    }
    int n = evio__sys_default.poll(p, out, max - 1, 0);
    R.last_events = n;
    if (k >= 0 && n >= 0)
        n = spurious(out, n, max, k);
    return n;
}

static void install(void)
{
    evio__sys.malloc = f_malloc;
    evio__sys.calloc = f_calloc;
    evio__sys.realloc = f_realloc;
    evio__sys.socket = f_socket;
    evio__sys.connect = f_connect;
    evio__sys.accept = f_accept;
    evio__sys.getsockopt = f_getsockopt;
    evio__sys.recv = f_recv;
    evio__sys.send = f_send;
    evio__sys.read = f_read;
    evio__sys.write = f_write;
    evio__sys.set = f_set;
    evio__sys.poll = f_poll;
}

/* ---------------------------------------------------------------- the server's side */

static sconn *conn_of(evio_conn *c)
{
    return evio_conn_context(c);
}

static int find_dial(uint64_t id)
{
    for (int i = 0; i < R.ndl; i++)
        if (R.dl[i].id == id)
            return i;
    return -1;
}

/* Queue n more pattern bytes on s, held back while an evio_send is in
 * flight so that the stream stays in call order. */
static void swrite(sconn *s, size_t n)
{
    if (!n || s->out_done || !s->c)
        return;
    if (s->send_pending) {
        s->owed += n;
        return;
    }
    while (n && R.budget) {
        size_t k = n < CHUNK ? n : CHUNK;
        if (k > R.budget)
            k = (size_t)R.budget;
        R.budget -= k;
        fill(wbuf, s->tx, k);
        int err = evio_write(s->c, wbuf, k);
        if (err == -ENOMEM)
            return; /* nothing queued; the stream goes on from here */
        if (err)
            fail("connection %llu: evio_write on an open connection: %s",
                 (unsigned long long)s->id, evio_strerror(err));
        s->tx += k;
        s->tx_sure = s->tx;
        n -= k;
    }
}

static void check_input(sconn *s, const void *in, size_t len)
{
    size_t at = mismatch(in, s->rx, len);
    if (at < len)
        fail("connection %llu: byte %llu of its input is wrong (%zu bytes arrived at once)",
             (unsigned long long)s->id, (unsigned long long)(s->rx + at), len);
    s->rx += len;
}

static evio_action on_serving(evio_server *srv)
{
    R.srv = srv;
    R.serving = true;
    socklen_t len = 0;
    const struct sockaddr *sa = evio_server_addr(srv, 1, &len);
    if (!sa || len != sizeof tcp_sa)
        fail("serving: no IPv4 address for the tcp listener");
    memcpy(&tcp_sa, sa, sizeof tcp_sa);
    if (!armed) {
        armed = true;
        load_fault();
    }
    return EVIO_NONE;
}

static bool same_addr(const struct sockaddr *a, socklen_t alen, const struct sockaddr_storage *b,
                      socklen_t blen)
{
    if (!a || alen != blen || a->sa_family != b->ss_family)
        return false;
    if (a->sa_family == AF_INET) {
        const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
        return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
    }
    /* unix: the client's autobound abstract name */
    return alen > offsetof(struct sockaddr_un, sun_path) + 1 && memcmp(a, b, alen) == 0;
}

/* Both ends of a TCP dial to ourselves are evio's, and whichever closes
 * first in order would leave a TIME_WAIT socket: a million runs would use
 * up the ephemeral ports that tcp://127.0.0.1:0 binds from.  So such a
 * connection closes with RST (reaching into the connection for its fd:
 * the API hands out none).  Raw TCP clients do the same from their side. */
static void no_time_wait(evio_conn *c, const struct sockaddr *local)
{
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    if (local && local->sa_family == AF_INET && c->fd >= 0)
        setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
}

static evio_action on_opened(evio_conn *c, const evio_info *info)
{
    uint64_t id = evio_conn_id(c);
    for (int i = 0; i < R.nsc; i++)
        if (R.sc[i].id == id)
            fail("connection %llu opened twice", (unsigned long long)id);
    if (R.nsc == MAX_CONNS)
        fail("more than %d connections opened", MAX_CONNS);
    sconn *s = &R.sc[R.nsc++];
    *s = (sconn){.id = id, .c = c, .client = -1, .dial = -1};
    evio_conn_set_context(c, s);
    if (info->dialed) {
        s->dialed = true;
        s->dial = find_dial(id);
        if (s->dial < 0)
            fail("opened: dialed connection %llu is no id evio_dial returned",
                 (unsigned long long)id);
        R.dl[s->dial].opened++;
        if (info->dial_error) {
            s->dial_failed = true;
            s->out_done = true;
            return EVIO_NONE;
        }
        no_time_wait(c, info->local);
        swrite(s, R.dl[s->dial].greet); /* sent once connected */
        return EVIO_NONE;
    }
    if (info->listener < 0 || info->listener > 1)
        fail("connection %llu: listener %d", (unsigned long long)id, info->listener);
    for (int i = R.ncl - 1; i >= 0; i--) {
        client *cl = &R.cl[i];
        if (cl->conn < 0 && same_addr(info->remote, info->remote_len, &cl->local, cl->llen)) {
            cl->conn = (int)(s - R.sc);
            s->client = i;
            break;
        }
    }
    if (s->client < 0)
        no_time_wait(c, info->local);
    return EVIO_NONE;
}

static evio_action act(sconn *s, int a)
{
    evio_conn *c = s->c;
    int err = 0;
    switch (a) {
    case ACT_WRITE:
        swrite(s, 1 + (size_t)((s->tx * 7 + s->id * 131) % 3000));
        break;
    case ACT_WRITE_BIG:
        swrite(s, 64 * 1024 + (size_t)((s->tx + s->id * 4099) % (192 * 1024)));
        break;
    case ACT_WRITE_CLOSE:
        swrite(s, 1 + (size_t)((s->tx * 13 + s->id) % (160 * 1024)));
        /* fall through */
    case ACT_CLOSE:
        s->out_done = true;
        return EVIO_CLOSE;
    case ACT_DETACH:
        s->out_done = true;
        return EVIO_DETACH;
    case ACT_SHUT_WR:
        if (!s->reset) {
            err = evio_conn_shutdown_write(c);
            s->out_done = true;
        }
        break;
    case ACT_RESET:
        err = evio_conn_reset(c);
        s->reset = s->out_done = true;
        break;
    case ACT_PAUSE:
        err = evio_conn_pause(c);
        break;
    case ACT_RESUME:
        err = evio_conn_resume(c);
        break;
    case ACT_HIGH_WATER:
        err = evio_conn_set_high_water(c, s->id % 2 ? 1024 : 0);
        if (err == -ENOMEM)
            err = 0;
        break;
    case ACT_DRAIN:
        return EVIO_DRAIN;
    default:
        break;
    }
    if (err)
        fail("connection %llu: action %d on an open connection: %s", (unsigned long long)s->id,
             a, evio_strerror(err));
    return EVIO_NONE;
}

static evio_action on_data(evio_conn *c, const void *in, size_t len)
{
    sconn *s = conn_of(c);
    if (!s || s->c != c)
        fail("data on a connection that is not open");
    if (in) {
        check_input(s, in, len);
        if ((R.opts & OPT_REPLY) && !s->dialed)
            swrite(s, len);
        return EVIO_NONE;
    }
    /* A wake: what an evio_send queued before it is in the stream now. */
    s->wake_pending = false;
    if (s->send_pending) {
        s->send_pending = false;
        s->tx_sure = s->tx;
        uint64_t owed = s->owed;
        s->owed = 0;
        swrite(s, (size_t)owed);
    }
    int n = s->nact;
    s->nact = 0;
    for (int i = 0; i < n; i++) {
        evio_action a = act(s, s->act[i]);
        if (a != EVIO_NONE)
            return a;
    }
    return EVIO_NONE;
}

static evio_action on_eof(evio_conn *c)
{
    sconn *s = conn_of(c);
    if (!s || s->c != c)
        fail("eof on a connection that is not open");
    return (R.opts & OPT_EOF_CLOSE) ? EVIO_CLOSE : EVIO_NONE;
}

static void gone(sconn *s, evio_conn *c, const char *what)
{
    if (!s || s < R.sc || s >= R.sc + R.nsc)
        fail("%s for a connection that never opened (id %llu)", what,
             (unsigned long long)evio_conn_id(c));
    if (s->c != c || s->closed || s->detached)
        fail("connection %llu: %s again (closed %d, detached %d)", (unsigned long long)s->id,
             what, s->closed, s->detached);
    s->c = NULL;
    s->by_shutdown = R.shutting;
    if (s->dial >= 0)
        R.dl[s->dial].closed++;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static evio_action on_closed(evio_conn *c, int err)
{
    sconn *s = conn_of(c);
    gone(s, c, "closed");
    /* The shortest timeout in play is 10 s (drains, dials; the write
     * timeout is 60 s), and a run takes milliseconds. */
    if (err == -ETIMEDOUT && !injected_timeout && now_ms() - R.started_ms < 5000)
        fail("connection %llu: closed with ETIMEDOUT %lld ms into the run",
             (unsigned long long)s->id, (long long)(now_ms() - R.started_ms));
    s->closed++;
    s->err = err;
    return EVIO_NONE;
}

static evio_action on_detached(evio_conn *c, int fd)
{
    sconn *s = conn_of(c);
    gone(s, c, "detached");
    s->detached++;
    int fl = fcntl(fd, F_GETFL);
    if (fd < 0 || fl < 0 || (fl & O_NONBLOCK))
        fail("connection %llu: detached fd %d is not an open blocking fd",
             (unsigned long long)s->id, fd);
    close(fd);
    return EVIO_NONE;
}

static evio_action on_prewrite(evio_conn *c, size_t amount)
{
    if (amount != evio_conn_pending(c))
        fail("prewrite: amount %zu, pending %zu", amount, evio_conn_pending(c));
    return EVIO_NONE;
}

static evio_action on_postwrite(evio_conn *c, size_t written, size_t remaining)
{
    sconn *s = conn_of(c);
    if (remaining != evio_conn_pending(c))
        fail("connection %llu: postwrite says %zu remaining, evio_conn_pending %zu",
             (unsigned long long)s->id, remaining, evio_conn_pending(c));
    if (written && s->extra < 4) { /* output from postwrite goes out in order too */
        s->extra++;
        swrite(s, 1 + (size_t)(s->tx % 64));
    }
    return EVIO_NONE;
}

/* ---------------------------------------------------------------- clients */

/* Read what client i has; true if anything changed. */
static bool client_read(int i)
{
    client *cl = &R.cl[i];
    bool progress = false;
    for (int rounds = 0; cl->fd >= 0 && !cl->eof && !cl->err && rounds < 64; rounds++) {
        ssize_t n = recv(cl->fd, rbuf, sizeof rbuf, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        progress = true;
        if (n < 0) {
            cl->err = errno;
            break;
        }
        if (n == 0) {
            cl->eof = true;
            break;
        }
        size_t at = mismatch(rbuf, cl->rx, (size_t)n);
        if (at < (size_t)n)
            fail("client %d: byte %llu of what it received is wrong", i,
                 (unsigned long long)(cl->rx + at));
        cl->rx += (uint64_t)n;
    }
    return progress;
}

static void client_close(int i)
{
    client *cl = &R.cl[i];
    if (cl->fd < 0)
        return;
    if (!cl->eof)
        cl->early = true;
    close(cl->fd);
    cl->fd = -1;
}

static void client_connect(bool tcp)
{
    if (R.ncl == MAX_CLIENTS)
        return;
    client *cl = &R.cl[R.ncl];
    *cl = (client){.fd = -1, .conn = -1, .tcp = tcp};
    int fd = socket(tcp ? AF_INET : AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        fail("client socket: %s", strerror(errno));
    int rc;
    if (tcp) {
        /* Closed with RST, so no TIME_WAIT piles up over millions of runs. */
        struct linger lg = {.l_onoff = 1, .l_linger = 0};
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        rc = connect(fd, (const struct sockaddr *)&tcp_sa, sizeof tcp_sa);
    } else {
        /* An autobound abstract name, so the server can tell clients apart. */
        struct sockaddr_un me = {.sun_family = AF_UNIX};
        if (bind(fd, (const struct sockaddr *)&me, sizeof(sa_family_t)) < 0)
            fail("client autobind: %s", strerror(errno));
        struct sockaddr_un to = {.sun_family = AF_UNIX};
        memcpy(to.sun_path, unix_path, strlen(unix_path) + 1);
        rc = connect(fd, (const struct sockaddr *)&to, sizeof to);
    }
    if (rc < 0 && errno != EINPROGRESS) { /* e.g. the listener is gone (drain) */
        close(fd);
        return;
    }
    cl->llen = sizeof cl->local;
    if (getsockname(fd, (struct sockaddr *)&cl->local, &cl->llen) < 0)
        fail("client getsockname: %s", strerror(errno));
    cl->fd = fd;
    R.ncl++;
}

static void client_send(int i, size_t n)
{
    client *cl = &R.cl[i];
    if (cl->fd < 0 || cl->wshut)
        return;
    while (n && R.budget) {
        size_t k = n < CHUNK ? n : CHUNK;
        if (k > R.budget)
            k = (size_t)R.budget;
        fill(wbuf, cl->tx, k);
        ssize_t m = send(cl->fd, wbuf, k, MSG_NOSIGNAL);
        if (m < 0 && errno == EINTR)
            continue;
        if (m <= 0)
            return; /* full, or the server side is gone */
        cl->tx += (uint64_t)m;
        R.budget -= (uint64_t)m;
        n -= (size_t)m;
    }
}

/* ---------------------------------------------------------------- the workload */

/* The k-th open server connection (modulo their number), or NULL. */
static sconn *open_conn(unsigned k)
{
    int n = 0;
    for (int i = 0; i < R.nsc; i++)
        n += R.sc[i].c != NULL;
    if (!n)
        return NULL;
    k %= (unsigned)n;
    for (int i = 0; i < R.nsc; i++)
        if (R.sc[i].c && k-- == 0)
            return &R.sc[i];
    return NULL;
}

static client *a_client(unsigned k)
{
    return R.ncl ? &R.cl[k % (unsigned)R.ncl] : NULL;
}

/* evio_wake/evio_send/evio_close must know every open connection. */
static void known(sconn *s, int err, const char *call)
{
    if (err == EVIO_ENOTFOUND)
        fail("%s: connection %llu is open but not found", call, (unsigned long long)s->id);
    if (err && err != -ENOMEM)
        fail("%s: connection %llu: %s", call, (unsigned long long)s->id, evio_strerror(err));
}

static void do_wake(uint8_t arg)
{
    sconn *s = open_conn(arg & 7);
    if (!s) { /* ids that are not open: never found */
        uint64_t id = R.nsc ? R.sc[arg % R.nsc].id : 1000000;
        if (evio_wake(R.srv, id) != EVIO_ENOTFOUND)
            fail("evio_wake found id %llu, which is not open", (unsigned long long)id);
        return;
    }
    if (s->nact < MAX_ACTIONS)
        s->act[s->nact++] = (uint8_t)((arg >> 3) % NACTS);
    int err = evio_wake(R.srv, s->id);
    known(s, err, "evio_wake");
    if (!err)
        s->wake_pending = true;
}

static void do_evio_send(uint8_t arg)
{
    sconn *s = open_conn(arg & 7);
    if (!s)
        return;
    size_t n = send_sizes[arg >> 5];
    if (n > R.budget)
        n = (size_t)R.budget;
    R.budget -= n;
    fill(wbuf, s->tx, n < CHUNK ? n : CHUNK);
    if (n > CHUNK)
        n = CHUNK;
    int err = evio_send(R.srv, s->id, wbuf, n);
    known(s, err, "evio_send");
    /* After our side finished the bytes are dropped: not counted, so a
     * client receiving them fails the "more than queued" check. */
    if (err || s->out_done)
        return;
    s->tx += n;
    s->send_pending = true;
    err = evio_wake(R.srv, s->id); /* its data(NULL, 0) marks the bytes applied */
    known(s, err, "evio_wake");
    if (!err)
        s->wake_pending = true;
}

static void do_dial(uint8_t arg)
{
    if (R.ndl == MAX_DIALS)
        return;
    char addr[160];
    bool tcp = arg & 1;
    switch ((arg >> 1) & 3) {
    case 0:
    case 1: /* our own listener */
        if (tcp)
            snprintf(addr, sizeof addr, "tcp://127.0.0.1:%u", (unsigned)ntohs(tcp_sa.sin_port));
        else
            snprintf(addr, sizeof addr, "%s", unix_addr);
        break;
    case 2: /* nobody there */
        snprintf(addr, sizeof addr, tcp ? "tcp://127.0.0.1:1" : "%s.none", unix_addr);
        break;
    default: /* malformed: no id */
        snprintf(addr, sizeof addr, tcp ? "tcp://127.0.0.1:" : "unix://");
        break;
    }
    uint64_t id = 0;
    int err = evio_dial(R.srv, addr, (arg >> 3) & 1 ? 10000 : 0, NULL, &id);
    if (err)
        return;
    if (((arg >> 1) & 3) == 3)
        fail("evio_dial(\"%s\") returned an id", addr);
    R.dl[R.ndl++] = (dialrec){.id = id, .greet = send_sizes[(arg >> 4) & 7] % 100000};
}

static void step(uint8_t op, uint8_t arg)
{
    client *cl = a_client(arg & 7);
    sconn *s;
    switch (op % NOPS) {
    case OP_CONNECT:
        client_connect(arg & 1);
        break;
    case OP_SEND:
        if (cl)
            client_send((int)(cl - R.cl), send_sizes[arg >> 5]);
        break;
    case OP_READ:
        if (cl)
            client_read((int)(cl - R.cl));
        break;
    case OP_SHUT_WR:
        if (cl && cl->fd >= 0 && !cl->wshut) {
            shutdown(cl->fd, SHUT_WR);
            cl->wshut = true;
        }
        break;
    case OP_CLOSE:
        if (cl)
            client_close((int)(cl - R.cl));
        break;
    case OP_WAKE:
        do_wake(arg);
        break;
    case OP_EVIO_SEND:
        do_evio_send(arg);
        break;
    case OP_EVIO_CLOSE:
        if ((s = open_conn(arg & 7)) != NULL) {
            int err = evio_close(R.srv, s->id);
            known(s, err, "evio_close");
            s->out_done |= err == 0; /* -ENOMEM: nothing changes */
        }
        break;
    case OP_DIAL:
        do_dial(arg);
        break;
    case OP_DRAIN:
        evio_server_drain(R.srv, 10000);
        break;
    case OP_SHUTDOWN:
        R.shutting = true;
        evio_server_shutdown(R.srv);
        break;
    default:
        break;
    }
}

/* A wake that returned 0 fired data(NULL, 0) in the iteration that
 * followed, unless the connection is on its way out (or not open yet). */
static void check_wakes(void)
{
    for (int i = 0; i < R.nsc; i++) {
        sconn *s = &R.sc[i];
        if (!s->c || !s->wake_pending)
            continue;
        if (!(s->c->flags & (EVIO__CONN_CLOSING | EVIO__CONN_DETACHING | EVIO__CONN_DEAD)))
            fail("connection %llu: evio_wake returned 0 but data(NULL, 0) did not follow",
                 (unsigned long long)s->id);
        s->wake_pending = false;
    }
}

/* After the steps: the clients read everything and finish; what the server
 * still holds open is closed; then the server shuts down. */
static void drain(void)
{
    bool progress = R.last_events != 0;
    for (int i = 0; i < R.ncl; i++) {
        client *cl = &R.cl[i];
        if (cl->fd < 0)
            continue;
        progress |= client_read(i);
        if (cl->eof || cl->err) {
            client_close(i);
            progress = true;
        } else if (!cl->wshut) {
            shutdown(cl->fd, SHUT_WR);
            cl->wshut = true;
            progress = true;
        }
    }
    if (++R.drain_iter > DRAIN_MAX)
        fail("the loop was still busy %d iterations after the workload", DRAIN_MAX);
    R.idle = progress ? 0 : R.idle + 1;
    if (R.idle < 2)
        return;
    if (!R.closing_all) {
        R.closing_all = true;
        R.idle = 0;
        for (int i = 0; i < R.nsc; i++) {
            sconn *s = &R.sc[i];
            if (s->c) {
                int err = evio_close(R.srv, s->id);
                known(s, err, "evio_close");
                s->out_done |= err == 0;
            }
        }
        return;
    }
    bool all_closed = true;
    for (int i = 0; i < R.nsc; i++)
        all_closed &= !R.sc[i].c;
    for (int i = 0; i < R.ndl; i++)
        all_closed &= R.dl[i].closed > 0;
    if (all_closed) {
        evio_stats st;
        evio_server_stats(R.srv, &st, NULL, 0);
        if (st.open || st.output_buffers || st.output_bytes)
            fail("every connection closed, but stats say %llu open, %llu output buffers "
                 "(%llu bytes)",
                 (unsigned long long)st.open, (unsigned long long)st.output_buffers,
                 (unsigned long long)st.output_bytes);
    }
    R.shutting = true;
    evio_server_shutdown(R.srv);
}

static void workload(void)
{
    check_wakes();
    if (R.shutting)
        return;
    if (R.step < R.nsteps) {
        const uint8_t *p = R.steps + 2 * R.step++;
        step(p[0], p[1]);
    } else {
        drain();
    }
}

/* ---------------------------------------------------------------- one input */

static int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return -1;
    int n = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        n += e->d_name[0] != '.';
    closedir(d);
    return n - 1; /* the directory's own */
}

/* EVIO_FUZZ_LOOP_VERBOSE=1: what each input did, for writing seeds. */
static void report(int rc)
{
    fprintf(stderr, "fuzz-loop: serve %d, %zu steps, %d drain iterations, %llu calls, %s\n", rc,
            R.nsteps, R.drain_iter, (unsigned long long)ncalls,
            have_next ? "faults left over" : "schedule used up");
    for (int i = 0; i < R.nsc; i++) {
        const sconn *s = &R.sc[i];
        fprintf(stderr, "  conn %llu%s: rx %llu tx %llu (sure %llu), %s %d%s%s, client %d\n",
                (unsigned long long)s->id, s->dialed ? " dialed" : "", (unsigned long long)s->rx,
                (unsigned long long)s->tx, (unsigned long long)s->tx_sure,
                s->detached ? "detached" : "closed", s->err, s->reset ? " reset" : "",
                s->by_shutdown ? " by shutdown" : "", s->client);
    }
    for (int i = 0; i < R.ncl; i++) {
        const client *cl = &R.cl[i];
        fprintf(stderr, "  client %d %s: tx %llu rx %llu%s%s%s %s\n", i, cl->tcp ? "tcp" : "unix",
                (unsigned long long)cl->tx, (unsigned long long)cl->rx, cl->eof ? " eof" : "",
                cl->early ? " early" : "", cl->wshut ? " wshut" : "",
                cl->err ? strerror(cl->err) : "");
    }
    for (int i = 0; i < R.ndl; i++)
        fprintf(stderr, "  dial %llu: opened %d closed %d\n", (unsigned long long)R.dl[i].id,
                R.dl[i].opened, R.dl[i].closed);
}

static void check_run(int rc)
{
    if (!R.serving) {
        /* bind() is not in the sys table: a host out of ports is not a
         * fault of ours (other tests' TIME_WAIT sockets, say). */
        if (rc == -EADDRINUSE || rc == -EADDRNOTAVAIL)
            return;
        if (!(R.opts & OPT_SETUP_FAULTS))
            fail("evio_serve failed without faults: %s", evio_strerror(rc));
        if (rc == 0)
            fail("evio_serve returned 0 without serving");
        return;
    }
    if (rc != 0)
        fail("evio_serve returned %d (%s)", rc, evio_strerror(rc));
    for (int i = 0; i < R.nsc; i++) {
        const sconn *s = &R.sc[i];
        if (s->closed + s->detached != 1)
            fail("connection %llu: closed %d, detached %d times", (unsigned long long)s->id,
                 s->closed, s->detached);
    }
    for (int i = 0; i < R.ndl; i++)
        if (R.dl[i].opened != 1 || R.dl[i].closed != 1)
            fail("dial %llu: opened %d, closed %d times", (unsigned long long)R.dl[i].id,
                 R.dl[i].opened, R.dl[i].closed);
    for (int i = 0; i < R.ncl; i++) {
        const client *cl = &R.cl[i];
        if (cl->conn < 0) {
            if (cl->rx)
                fail("client %d received %llu bytes from no connection the server opened", i,
                     (unsigned long long)cl->rx);
            continue;
        }
        const sconn *s = &R.sc[cl->conn];
        if (cl->rx > s->tx)
            fail("client %d received %llu bytes; the server queued %llu", i,
                 (unsigned long long)cl->rx, (unsigned long long)s->tx);
        /* A socket closed with input it never read sends RST, and the
         * kernel drops what it had not sent yet: TCP's truncation, not
         * evio's (a close cannot be orderly then; only a lingering close
         * would help).  So the promise is checked where the server had
         * read everything the client sent. */
        bool orderly = s->detached || (s->closed && s->err == 0 && !s->reset && !s->by_shutdown);
        if (!orderly || cl->early || s->rx != cl->tx)
            continue;
        if (cl->eof && cl->rx < s->tx_sure)
            fail("client %d: connection %llu closed in order (err 0) after queuing %llu bytes, "
                 "but %llu arrived before EOF",
                 i, (unsigned long long)s->id, (unsigned long long)s->tx_sure,
                 (unsigned long long)cl->rx);
        if (cl->err)
            fail("client %d: %s, although connection %llu closed in order and had read all "
                 "%llu bytes sent to it",
                 i, strerror(cl->err), (unsigned long long)s->id, (unsigned long long)cl->tx);
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    signal(SIGPIPE, SIG_IGN);
    const char *v = getenv("EVIO_FUZZ_LOOP_VERBOSE");
    verbose = v && *v && *v != '0';
    snprintf(unix_path, sizeof unix_path, "/tmp/evio-fuzz-loop-%d.sock", (int)getpid());
    snprintf(unix_addr, sizeof unix_addr, "unix://%s", unix_path);
    install();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    if (!unix_path[0]) /* a driver that skips LLVMFuzzerInitialize */
        LLVMFuzzerInitialize(NULL, NULL);
    memset(&R, 0, sizeof R);
    memset(watch, 0, sizeof watch);
    R.opts = data[0];
    R.nsteps = data[1] % (MAX_STEPS + 1);
    if (R.nsteps > (size - 2) / 2)
        R.nsteps = (size - 2) / 2;
    R.steps = data + 2;
    R.budget = BYTE_BUDGET;
    R.started_ms = now_ms();
    fault_p = data + 2 + 2 * R.nsteps;
    fault_end = data + size;
    ncalls = 0;
    armed = false;
    injected_timeout = false;
    if (R.opts & OPT_SETUP_FAULTS) {
        armed = true;
        load_fault();
    }

    int fds_before = count_fds();
    evio_events ev = {
        .serving = on_serving,
        .opened = on_opened,
        .data = on_data,
        .closed = on_closed,
        .eof = (R.opts & OPT_EOF) ? on_eof : NULL,
        .detached = (R.opts & OPT_DETACHED) ? on_detached : NULL,
        .prewrite = (R.opts & OPT_WRITE_HOOKS) ? on_prewrite : NULL,
        .postwrite = (R.opts & OPT_WRITE_HOOKS) ? on_postwrite : NULL,
        .output_high_water = (R.opts & OPT_LOW_WATER) ? 4096 : 0,
        .max_conns = (R.opts & OPT_MAX_CONNS) ? 3 : 0,
    };
    /* The TCP listener's port is known once bound: serving() reads it,
     * before any step. */
    const char *addrs[] = {unix_addr, "tcp://127.0.0.1:0"};
    R.active = true;
    int rc = evio_serve(&ev, addrs, 2);
    R.active = false;
    armed = false;

    /* What the clients still have to read, then they close. */
    for (int i = 0; i < R.ncl; i++) {
        client_read(i);
        if (R.cl[i].fd >= 0 && !R.cl[i].eof && !R.cl[i].err)
            R.cl[i].early = true;
        client_close(i);
    }
    if (verbose)
        report(rc);
    check_run(rc);
    int fds_after = count_fds();
    if (fds_after != fds_before)
        fail("%d fds open before the run, %d after", fds_before, fds_after);
    return 0;
}
