/*
 * soak.c — a long, many-connection run of an evio server against an
 * independent client, ending with every connection accounted for.
 *
 *   tests/soak [--seconds 600] [--conns 10000] [--loops 2] [--client-threads 2]
 *              [--seed N] [--rss-slack-mb M] [--progress S]
 *
 * The process forks.  The parent runs an evio server (the backend this
 * binary is linked with) on a thread, plus two helper threads that call
 * evio_wake, evio_send and evio_close by connection id; the child is the
 * client: plain sockets and epoll on a few threads, never evio, so it tests
 * the server from outside.  Two processes, because 10,000 connections need
 * 10,000 fds on each side.
 *
 * Wire format, both directions: a 16-byte header of four native-endian
 * uint32 (payload length, sequence, magic|kind or op, FNV-1a of the
 * payload), then the payload.  Every payload byte is a function of
 * (connection slot, lifetime, sequence) for requests, or of (kind, sequence,
 * length) for what the server sends on its own, so the client checks every
 * byte it receives, in order, without keeping copies.
 *
 * Client, per connection: a random pipeline depth (1-8 requests in flight),
 * random sizes (mostly small, some up to 256 KiB), idle spells, and after a
 * random number of requests one of these endings, then a reconnect:
 *   orderly  stop, read every reply, shutdown(SHUT_WR), read to EOF, close
 *   half     shutdown(SHUT_WR) at once with replies pending, read them all
 *            and EOF (the server's eof event: close, shutdown_write, or a
 *            deferred FIN frame sent after a wake)
 *   abort    SO_LINGER 0 and close, with requests in flight
 *   quit     a QUIT request: the server queues a tail of up to 512 KiB and
 *            returns EVIO_CLOSE; the client checks all of it, then EOF
 *   reset    a RESET request: the server calls evio_conn_reset; the client
 *            must see ECONNRESET, not EOF
 * Server, besides echoing: random evio_conn_pause, resumed from a wake sent
 * by a helper thread when the pause is due; random BYE frames followed by
 * evio_conn_shutdown_write (the client reads to EOF, then closes).  Helper
 * threads: evio_wake and evio_send (PUSH frames, checked for order per
 * thread) to random open ids, and now and then a TBYE frame plus
 * evio_close, at once or 200 ms later.
 *
 * At the end the client closes everything (orderly or abortive), reports
 * its counters through a pipe and exits; the server waits for stats.open
 * to reach 0 and checks: opened == closed (its own counters, and evio's
 * accepted/closed), output_buffers == 0, the client's connects == the
 * server's accepts, no mismatch anywhere, every feature exercised, RSS at
 * the end within --rss-slack-mb of RSS at the start (after malloc_trim(0)
 * with glibc malloc, or __sanitizer_purge_allocator() under ASan, whose
 * quarantine would otherwise hold freed memory), and no leaks (LSan's
 * recoverable check in the server, LSan at exit in the client).  It prints
 * a figure block and "soak: N passed, M failed".
 */
#define _GNU_SOURCE 1
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <malloc.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stddef.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "evio.h"

#if defined(__SANITIZE_ADDRESS__)
#define SOAK_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SOAK_ASAN 1
#endif
#endif
#ifdef SOAK_ASAN
#include <sanitizer/allocator_interface.h>
#include <sanitizer/lsan_interface.h>
#endif

/* ---------------------------------------------------------------- options */

static struct {
    int seconds, conns, loops, cthreads, progress;
    uint64_t seed;
    long rss_slack_mb;
} opt = { 600, 10000, 2, 2, 0, 0, -1 };

/* ---------------------------------------------------------------- shared bits */

#define HDR 16
#define MAGIC 0x5A000000u
#define MAX_REQ (256u * 1024u)
#define MAX_FRAME (512u * 1024u)

enum { OP_ECHO = 1, OP_QUIT, OP_RESET };
enum { K_REPLY = 1, K_PUSH0, K_PUSH1, K_BYE, K_TAIL, K_TBYE, K_FIN, K_HELLO, K_MAX };
static const char *const kind_name[K_MAX] = { "?", "REPLY", "PUSH0", "PUSH1", "BYE", "TAIL", "TBYE", "FIN", "HELLO" };

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {}
}

static uint64_t rng_next(uint64_t *s) /* xorshift64* */
{
    uint64_t x = *s;
    x ^= x >> 12, x ^= x << 25, x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1Dull;
}
static uint32_t rnd(uint64_t *s, uint32_t n) { return n ? (uint32_t)(rng_next(s) >> 32) % n : 0; }
static uint64_t seed_for(uint64_t salt)
{
    uint64_t s = (opt.seed ^ (salt * 0x9E3779B97F4A7C15ull)) | 1;
    for (int i = 0; i < 4; i++) rng_next(&s);
    return s;
}

static uint32_t mix3(uint32_t a, uint32_t b, uint32_t c)
{
    uint32_t h = a * 0x85EBCA77u ^ (b + 0x9E3779B9u) * 0xC2B2AE3Du ^ (c + 0x27D4EB2Fu) * 0x165667B1u;
    h ^= h >> 16, h *= 0x7FEB352Du, h ^= h >> 15, h *= 0x846CA68Bu, h ^= h >> 16;
    return h;
}
static inline uint8_t pat(uint32_t seed, uint32_t j)
{
    uint32_t x = seed + j * 0x9E3779B1u;
    return (uint8_t)((x >> 24) ^ (x >> 11));
}
static uint32_t fnv(uint32_t h, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 16777619u;
    return h;
}
#define FNV0 2166136261u

static void put_hdr(uint8_t *h, uint32_t len, uint32_t seq, uint32_t kind, uint32_t sum)
{
    uint32_t v[4] = { len, seq, MAGIC | kind, sum };
    memcpy(h, v, HDR);
}

/* A server frame of its own (not a reply): payload from (kind, seq, len). */
static uint8_t *make_frame(uint32_t kind, uint32_t seq, uint32_t len)
{
    uint8_t *f = malloc(HDR + (size_t)len);
    if (!f) return NULL;
    uint32_t seed = mix3(kind, seq, len);
    for (uint32_t j = 0; j < len; j++) f[HDR + j] = pat(seed, j);
    put_hdr(f, len, seq, kind, fnv(FNV0, f + HDR, len));
    return f;
}

static long rss_kb(const char *field)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = -1;
    size_t n = strlen(field);
    if (!f) return -1;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, field, n) && line[n] == ':') { v = atol(line + n + 1); break; }
    fclose(f);
    return v;
}

/* Bytes the allocator has handed out and not had back, or -1. */
static long heap_in_use(void)
{
#ifdef SOAK_ASAN
    return (long)__sanitizer_get_current_allocated_bytes();
#elif defined(__GLIBC__) && (__GLIBC__ > 2 || __GLIBC_MINOR__ >= 33)
    struct mallinfo2 mi = mallinfo2();
    return (long)(mi.uordblks + mi.hblkhd);
#else
    return -1;
#endif
}

static int write_all(int fd, const void *p, size_t n)
{
    const char *b = p;
    while (n) {
        ssize_t w = write(fd, b, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        b += w, n -= (size_t)w;
    }
    return 0;
}

/* Read exactly n bytes within ms; 0, or -1 on EOF, error or timeout. */
static int read_all(int fd, void *p, size_t n, int ms)
{
    char *b = p;
    int64_t end = now_ms() + ms;
    while (n) {
        struct pollfd pf = { fd, POLLIN, 0 };
        int64_t left = end - now_ms();
        if (left <= 0) return -1;
        int r = poll(&pf, 1, (int)(left > 1000 ? 1000 : left));
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) continue;
        ssize_t g = read(fd, b, n);
        if (g < 0 && errno == EINTR) continue;
        if (g <= 0) return -1;
        b += g, n -= (size_t)g;
    }
    return 0;
}

/* ================================================================ client */

/* What the client process reports to the server process. */
typedef struct client_result {
    uint64_t connects, hellos, connect_fail, lifetimes, end_orderly, end_half, end_abort, end_quit, end_reset;
    uint64_t requests, bytes_out, bytes_in, pushes, push_bytes, byes, tails, tbyes, fins;
    uint64_t mismatches, proto_errors, unexpected_eof, reset_as_eof, unexplained_reset, tbye_reset,
        bye_reset, other_errors, stuck, open_min, open_max;
    uint64_t connect_errno[8]; /* a few errno values seen by connect, for the figures */
    uint64_t nbad, bad_id[8];  /* server ids (from HELLO) of connections that went wrong */
    uint64_t nbye, bye_id[64]; /* server ids of resets after a BYE: the server checks them */
} client_result;

enum { C_DOWN, C_CONNECTING, C_OPEN };
enum { E_NONE, E_ORDERLY, E_HALF, E_ABORT, E_QUIT, E_RESET };

typedef struct cconn {
    int fd;
    uint8_t state, end, depth, idle;
    uint8_t wr_shut, shut_pending, final_sent, end_seen; /* end_seen: kind of BYE/TAIL/TBYE/FIN */
    uint8_t hello; /* the server's first frame arrived: it has accepted us */
    uint32_t slot, gen, id;
    uint32_t sent, acked, budget, final_seq;
    uint32_t lens[64];
    uint32_t push_last[2];
    int64_t next_at; /* DOWN: reconnect at; OPEN+idle: resume issuing at */
    /* receive state */
    uint8_t hdr[HDR];
    uint32_t hl, blen, bgot, bkind, bseq, bsum, bseed, run, bad;
    /* send state */
    uint8_t *out;
    size_t olen, ocap, ooff;
} cconn;

typedef struct cthread {
    pthread_t th;
    int ep, idx;
    cconn *c;
    int nc;
    uint64_t rng;
    atomic_int open;
    client_result r; /* this thread's share, read after join */
} cthread;

static struct sockaddr_in srv_addr;
static atomic_int client_stop;

static void cfail(cthread *t, cconn *c, uint64_t *counter, const char *fmt, ...)
{
    (*counter)++;
    if (c->hello && t->r.nbad < 8) t->r.bad_id[t->r.nbad++] = c->id;
    if (t->r.mismatches + t->r.proto_errors + t->r.unexpected_eof + t->r.reset_as_eof + t->r.other_errors > 20)
        return;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "soak client: id %u slot %u gen %u (end %d, sent %u acked %u, depth %u): ",
            c->hello ? c->id : 0, c->slot, c->gen, c->end, c->sent, c->acked, c->depth);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static uint32_t req_size(cthread *t)
{
    uint32_t r = rnd(&t->rng, 1000);
    if (r < 700) return rnd(&t->rng, 257);
    if (r < 950) return 257 + rnd(&t->rng, 4096 - 257);
    if (r < 999) return 4096 + rnd(&t->rng, 65536 - 4096);
    return 65536 + rnd(&t->rng, MAX_REQ - 65536 + 1);
}

static int out_reserve(cconn *c, size_t n)
{
    if (c->ooff && c->ooff == c->olen) c->ooff = c->olen = 0;
    if (c->olen + n <= c->ocap) return 0;
    if (c->ooff) {
        memmove(c->out, c->out + c->ooff, c->olen - c->ooff);
        c->olen -= c->ooff, c->ooff = 0;
        if (c->olen + n <= c->ocap) return 0;
    }
    size_t cap = c->ocap ? c->ocap : 1024;
    while (cap < c->olen + n) cap *= 2;
    uint8_t *p = realloc(c->out, cap);
    if (!p) return -1;
    c->out = p, c->ocap = cap;
    return 0;
}

static void cconn_close(cthread *t, cconn *c, int abortive)
{
    if (abortive) {
        struct linger lg = { 1, 0 };
        setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    }
    epoll_ctl(t->ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->fd = -1;
    if (c->state == C_OPEN) {
        atomic_fetch_sub(&t->open, 1);
        t->r.lifetimes++;
        switch (c->end) {
        case E_ORDERLY: t->r.end_orderly++; break;
        case E_HALF: t->r.end_half++; break;
        case E_ABORT: t->r.end_abort++; break;
        case E_QUIT: t->r.end_quit++; break;
        case E_RESET: t->r.end_reset++; break;
        default: break;
        }
    }
    c->state = C_DOWN;
    free(c->out);
    c->out = NULL, c->olen = c->ocap = c->ooff = 0;
    c->next_at = now_ms() + (atomic_load(&client_stop) ? 0 : (int64_t)rnd(&t->rng, 30));
}

static void update_interest(cthread *t, cconn *c)
{
    uint32_t ev = EPOLLIN | (c->olen > c->ooff ? EPOLLOUT : 0);
    struct epoll_event e = { .events = ev, .data.u32 = (uint32_t)(c - t->c) };
    epoll_ctl(t->ep, EPOLL_CTL_MOD, c->fd, &e);
}

static void flush_out(cthread *t, cconn *c)
{
    while (c->ooff < c->olen) {
        ssize_t n = send(c->fd, c->out + c->ooff, c->olen - c->ooff, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) break;
            /* The server may have reset us (RESET) or closed; reading
             * tells the rest, so stop writing and keep reading. */
            c->ooff = c->olen = 0;
            break;
        }
        c->ooff += (size_t)n;
        t->r.bytes_out += (uint64_t)n;
    }
    if (c->ooff == c->olen && c->shut_pending && !c->wr_shut) {
        shutdown(c->fd, SHUT_WR);
        c->wr_shut = 1, c->shut_pending = 0;
    }
    update_interest(t, c);
}

static void issue(cthread *t, cconn *c, uint32_t op)
{
    uint32_t len = op == OP_ECHO ? req_size(t) : 0, seq = c->sent++;
    if (out_reserve(c, HDR + (size_t)len) < 0) { perror("soak client: realloc"); exit(1); }
    uint8_t *h = c->out + c->olen, *p = h + HDR;
    uint32_t seed = mix3(c->slot, c->gen, seq);
    for (uint32_t j = 0; j < len; j++) p[j] = pat(seed, j);
    put_hdr(h, len, seq, op, fnv(FNV0, p, len));
    c->olen += HDR + (size_t)len;
    c->lens[seq % 64] = op == OP_ECHO ? len : UINT32_MAX;
}

/* Choose how this lifetime ends and start ending it. */
static void begin_end(cthread *t, cconn *c, int mode)
{
    if (!mode) {
        uint32_t r = rnd(&t->rng, 100);
        mode = r < 30 ? E_ORDERLY : r < 55 ? E_HALF : r < 75 ? E_ABORT : r < 90 ? E_QUIT : E_RESET;
    }
    c->end = (uint8_t)mode;
    switch (mode) {
    case E_ABORT: cconn_close(t, c, 1); return;
    case E_HALF: c->shut_pending = 1; break;
    case E_QUIT:
    case E_RESET:
        c->final_seq = c->sent;
        issue(t, c, mode == E_QUIT ? OP_QUIT : OP_RESET);
        c->final_sent = 1;
        break;
    default: break;
    }
}

static int may_send(const cconn *c) { return c->state == C_OPEN && !c->end && !c->end_seen; }

/* Keep the pipeline full, or move towards the end. */
static void pump(cthread *t, cconn *c, int64_t now)
{
    if (c->state != C_OPEN) return;
    if (may_send(c) && c->idle && now >= c->next_at) c->idle = 0;
    while (may_send(c) && !c->idle && c->budget && c->sent - c->acked < c->depth) {
        issue(t, c, OP_ECHO);
        c->budget--;
    }
    if (may_send(c) && !c->budget) begin_end(t, c, 0);
    if (c->state != C_OPEN) return;
    if (c->end == E_ORDERLY && c->acked == c->sent && !c->wr_shut) c->shut_pending = 1;
    flush_out(t, c);
}

static void start_connect(cthread *t, cconn *c)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        t->r.connect_fail++;
        t->r.connect_errno[0]++;
        c->next_at = now_ms() + 100;
        return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->fd = fd;
    c->gen++;
    c->end = c->idle = c->wr_shut = c->shut_pending = c->final_sent = c->end_seen = c->hello = 0;
    c->sent = c->acked = 0;
    c->push_last[0] = c->push_last[1] = 0;
    c->hl = c->blen = c->bgot = 0;
    c->depth = (uint8_t)(1 + rnd(&t->rng, 8));
    uint32_t r = rnd(&t->rng, 100);
    c->budget = r < 20 ? rnd(&t->rng, 4) : r < 90 ? 1 + rnd(&t->rng, 200) : 200 + rnd(&t->rng, 2000);
    int rc = connect(fd, (struct sockaddr *)&srv_addr, sizeof srv_addr);
    struct epoll_event e = { .events = EPOLLIN | EPOLLOUT, .data.u32 = (uint32_t)(c - t->c) };
    if (rc < 0 && errno != EINPROGRESS) {
        int err = errno;
        close(fd);
        c->fd = -1;
        t->r.connect_fail++;
        t->r.connect_errno[err == EADDRNOTAVAIL ? 1 : err == ECONNREFUSED ? 2 : err == EAGAIN ? 3 : 7]++;
        c->next_at = now_ms() + 100 + rnd(&t->rng, 400);
        return;
    }
    epoll_ctl(t->ep, EPOLL_CTL_ADD, fd, &e);
    c->state = C_CONNECTING;
}

static void connected(cthread *t, cconn *c)
{
    int err = 0;
    socklen_t l = sizeof err;
    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l);
    if (err) {
        t->r.connect_fail++;
        t->r.connect_errno[err == ECONNREFUSED ? 2 : err == ETIMEDOUT ? 4 : err == ECONNRESET ? 5 : 7]++;
        epoll_ctl(t->ep, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
        c->fd = -1, c->state = C_DOWN;
        c->next_at = now_ms() + 100 + rnd(&t->rng, 400);
        return;
    }
    c->state = C_OPEN;
    t->r.connects++;
    int o = atomic_fetch_add(&t->open, 1) + 1;
    (void)o;
    if (atomic_load(&client_stop)) begin_end(t, c, rnd(&t->rng, 2) ? E_ORDERLY : E_ABORT);
    else pump(t, c, now_ms());
}

/* A whole frame arrived (header checked, payload verified byte by byte). */
static void frame_done(cthread *t, cconn *c)
{
    if (c->bad || c->run != c->bsum) {
        cfail(t, c, &t->r.mismatches, "%s seq %u len %u: payload or checksum mismatch", kind_name[c->bkind],
              c->bseq, c->blen);
    }
    if (c->bkind == K_HELLO) {
        t->r.hellos++;
        c->hello = 1;
        c->id = c->bseq;
    } else if (!c->hello) {
        cfail(t, c, &t->r.proto_errors, "%s before HELLO", kind_name[c->bkind]);
    }
    switch (c->bkind) {
    case K_REPLY:
        t->r.requests++;
        c->acked++;
        break;
    case K_PUSH0:
    case K_PUSH1: {
        uint32_t *last = &c->push_last[c->bkind - K_PUSH0];
        if (c->bseq <= *last)
            cfail(t, c, &t->r.proto_errors, "push from thread %u out of order: %u after %u", c->bkind - K_PUSH0,
                  c->bseq, *last);
        *last = c->bseq;
        t->r.pushes++;
        t->r.push_bytes += c->blen;
        break;
    }
    case K_BYE: t->r.byes++; c->end_seen = K_BYE; break;
    case K_TBYE: t->r.tbyes++; if (!c->end_seen) c->end_seen = K_TBYE; break;
    case K_TAIL:
        t->r.tails++;
        if (c->end != E_QUIT || c->acked != c->final_seq)
            cfail(t, c, &t->r.proto_errors, "TAIL without QUIT, or before all replies (final %u)", c->final_seq);
        c->end_seen = K_TAIL;
        break;
    case K_FIN:
        t->r.fins++;
        if (!c->wr_shut || c->acked != c->sent)
            cfail(t, c, &t->r.proto_errors, "FIN before our EOF or before all replies");
        c->end_seen = K_FIN;
        break;
    }
    c->hl = c->bgot = 0;
}

/* Returns -1 if the connection was closed (protocol error). */
static int on_bytes(cthread *t, cconn *c, const uint8_t *p, size_t n)
{
    while (n) {
        if (c->hl < HDR) {
            size_t k = HDR - c->hl < n ? HDR - c->hl : n;
            memcpy(c->hdr + c->hl, p, k);
            c->hl += (uint32_t)k, p += k, n -= k;
            if (c->hl < HDR) break;
            uint32_t v[4];
            memcpy(v, c->hdr, HDR);
            c->blen = v[0], c->bseq = v[1], c->bkind = v[2] & 0xFFFFFFu, c->bsum = v[3];
            if ((v[2] & 0xFF000000u) != MAGIC || !c->bkind || c->bkind >= K_MAX || c->blen > MAX_FRAME) {
                cfail(t, c, &t->r.proto_errors, "bad frame header %08x %08x %08x", v[0], v[1], v[2]);
                cconn_close(t, c, 1);
                return -1;
            }
            if (c->bkind == K_REPLY) {
                if (c->bseq != c->acked || c->acked == c->sent || c->blen != c->lens[c->bseq % 64]) {
                    cfail(t, c, &t->r.proto_errors, "reply seq %u len %u, expected seq %u len %u", c->bseq,
                          c->blen, c->acked, c->lens[c->acked % 64]);
                    cconn_close(t, c, 1);
                    return -1;
                }
                c->bseed = mix3(c->slot, c->gen, c->bseq);
            } else {
                c->bseed = mix3(c->bkind, c->bseq, c->blen);
            }
            if (c->end_seen == K_TAIL || c->end_seen == K_FIN) {
                cfail(t, c, &t->r.proto_errors, "%s after %s", kind_name[c->bkind], kind_name[c->end_seen]);
            }
            c->run = FNV0, c->bad = 0, c->bgot = 0;
            if (!c->blen) frame_done(t, c);
            continue;
        }
        size_t k = c->blen - c->bgot < n ? c->blen - c->bgot : n;
        for (size_t i = 0; i < k; i++)
            if (p[i] != pat(c->bseed, c->bgot + (uint32_t)i)) { c->bad = 1; break; }
        c->run = fnv(c->run, p, k);
        c->bgot += (uint32_t)k, p += k, n -= k;
        if (c->bgot == c->blen) frame_done(t, c);
    }
    return 0;
}

static void on_eof(cthread *t, cconn *c)
{
    int ok = c->end_seen == K_BYE || c->end_seen == K_TBYE || c->end_seen == K_TAIL || c->end_seen == K_FIN ||
             (c->wr_shut && c->acked == c->sent && !c->final_sent);
    if (c->hl)
        cfail(t, c, &t->r.proto_errors, "EOF inside a frame (%u header bytes; %s seq %u, %u/%u payload bytes)",
              c->hl, c->hl == HDR ? kind_name[c->bkind] : "?", c->bseq, c->bgot, c->blen);
    else if (c->end == E_RESET && !c->end_seen)
        cfail(t, c, &t->r.reset_as_eof, "asked for a reset (evio_conn_reset), got EOF");
    else if (!ok)
        cfail(t, c, &t->r.unexpected_eof, "unexpected EOF (end_seen %d wr_shut %d)", c->end_seen, c->wr_shut);
    cconn_close(t, c, 0);
}

static void on_error(cthread *t, cconn *c, int err)
{
    if (err == ECONNRESET || err == EPIPE) {
        if (c->end == E_RESET && c->final_sent) {
            /* asked for it */
        } else if (c->end_seen == K_TBYE) {
            t->r.tbye_reset++;
        } else if (c->end_seen == K_BYE && c->hello && t->r.nbye < 64) {
            /* Explained only if a helper's evio_close (its TBYE dropped
             * after the BYE's shutdown_write) closed it with our requests
             * unread: the server looks at its trail. */
            t->r.bye_reset++;
            t->r.bye_id[t->r.nbye++] = c->id;
        } else {
            t->r.unexplained_reset++;
            if (c->hello && t->r.nbad < 8) t->r.bad_id[t->r.nbad++] = c->id;
        }
    } else {
        cfail(t, c, &t->r.other_errors, "recv: %s", strerror(err));
    }
    cconn_close(t, c, 0);
}

static void on_ready(cthread *t, cconn *c, uint32_t ev, uint8_t *buf, size_t bufsz)
{
    if (c->state == C_CONNECTING) {
        if (!(ev & (EPOLLOUT | EPOLLERR | EPOLLHUP))) return;
        connected(t, c);
        return;
    }
    if (c->state != C_OPEN) return;
    if (ev & (EPOLLIN | EPOLLERR | EPOLLHUP | EPOLLRDHUP)) {
        for (int rounds = 0; rounds < 4; rounds++) {
            ssize_t r = recv(c->fd, buf, bufsz, 0);
            if (r > 0) {
                t->r.bytes_in += (uint64_t)r;
                if (on_bytes(t, c, buf, (size_t)r) < 0) return;
                if ((size_t)r < bufsz) break;
                continue;
            }
            if (r == 0) { on_eof(t, c); return; }
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) break;
            on_error(t, c, errno);
            return;
        }
    }
    if (ev & EPOLLOUT) flush_out(t, c);
    if (c->state != C_OPEN) return;
    /* Occasionally go idle after a reply. */
    if (may_send(c) && !c->idle && rnd(&t->rng, 40) == 0) {
        c->idle = 1;
        c->next_at = now_ms() + 1 + rnd(&t->rng, 1000);
    }
    pump(t, c, now_ms());
}

static void *client_thread(void *arg)
{
    cthread *t = arg;
    static __thread uint8_t buf[65536];
    struct epoll_event evs[512];
    int64_t last_scan = 0;
    int stopping = 0;
    for (;;) {
        int64_t now = now_ms();
        if (!stopping && atomic_load(&client_stop)) {
            stopping = 1;
            /* Close everything: half orderly, half abortive. */
            for (int i = 0; i < t->nc; i++) {
                cconn *c = &t->c[i];
                if (c->state == C_CONNECTING) continue; /* ended in connected() */
                if (c->state != C_OPEN || c->end) continue;
                if (rnd(&t->rng, 2)) begin_end(t, c, E_ABORT);
                else {
                    begin_end(t, c, E_ORDERLY);
                    pump(t, c, now);
                }
            }
        }
        if (now - last_scan >= 10) {
            last_scan = now;
            int alive = 0;
            for (int i = 0; i < t->nc; i++) {
                cconn *c = &t->c[i];
                if (c->state == C_DOWN && !stopping && now >= c->next_at) start_connect(t, c);
                else if (c->state == C_OPEN && c->idle && now >= c->next_at) pump(t, c, now);
                alive += c->state != C_DOWN;
            }
            if (stopping && !alive) break;
        }
        int n = epoll_wait(t->ep, evs, 512, 10);
        if (n < 0 && errno != EINTR) { perror("soak client: epoll_wait"); exit(1); }
        for (int i = 0; i < n; i++) on_ready(t, &t->c[evs[i].data.u32], evs[i].events, buf, sizeof buf);
    }
    return NULL;
}

static int client_main(int ctl_in, int res_out)
{
    uint16_t port;
    if (read_all(ctl_in, &port, sizeof port, 120000) < 0) {
        fprintf(stderr, "soak client: no port from the server\n");
        return 1;
    }
    srv_addr.sin_family = AF_INET;
    srv_addr.sin_port = htons(port);
    srv_addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);

    cconn *all = calloc((size_t)opt.conns, sizeof *all);
    cthread *ts = calloc((size_t)opt.cthreads, sizeof *ts);
    if (!all || !ts) { perror("soak client: calloc"); return 1; }
    for (int i = 0; i < opt.conns; i++) {
        all[i].fd = -1, all[i].slot = (uint32_t)i;
        all[i].next_at = now_ms() + i / 50; /* ramp: ~50 connects per ms per process */
    }
    for (int k = 0, first = 0; k < opt.cthreads; k++) {
        cthread *t = &ts[k];
        t->idx = k;
        t->nc = opt.conns / opt.cthreads + (k < opt.conns % opt.cthreads);
        t->c = all + first, first += t->nc;
        t->rng = seed_for(1000 + (uint64_t)k);
        t->ep = epoll_create1(EPOLL_CLOEXEC);
        if (t->ep < 0) { perror("soak client: epoll_create1"); return 1; }
    }
    for (int k = 0; k < opt.cthreads; k++)
        if (pthread_create(&ts[k].th, NULL, client_thread, &ts[k])) { perror("soak client: pthread_create"); return 1; }

    /* Wait for 'S' (stop) from the server; meanwhile sample how many are open. */
    uint64_t omin = UINT64_MAX, omax = 0;
    int64_t t0 = now_ms();
    for (;;) {
        struct pollfd pf = { ctl_in, POLLIN, 0 };
        int r = poll(&pf, 1, 200);
        if (r > 0) break; /* 'S', or the server died (EOF): stop either way */
        uint64_t o = 0;
        for (int k = 0; k < opt.cthreads; k++) o += (uint64_t)atomic_load(&ts[k].open);
        if (o > omax) omax = o;
        if (now_ms() - t0 > 15000 && o < omin) omin = o; /* after the ramp */
    }
    atomic_store(&client_stop, 1);
    for (int k = 0; k < opt.cthreads; k++) pthread_join(ts[k].th, NULL);

    client_result res;
    memset(&res, 0, sizeof res);
    for (int k = 0; k < opt.cthreads; k++) {
        uint64_t *d = (uint64_t *)&res, *s = (uint64_t *)&ts[k].r;
        for (size_t i = 0; i < offsetof(client_result, nbad) / sizeof *d; i++) d[i] += s[i];
        for (uint64_t i = 0; i < ts[k].r.nbad && res.nbad < 8; i++) res.bad_id[res.nbad++] = ts[k].r.bad_id[i];
        for (uint64_t i = 0; i < ts[k].r.nbye && res.nbye < 64; i++) res.bye_id[res.nbye++] = ts[k].r.bye_id[i];
        close(ts[k].ep);
    }
    for (int i = 0; i < opt.conns; i++) {
        if (all[i].state != C_DOWN) res.stuck++;
        if (all[i].fd >= 0) close(all[i].fd);
        free(all[i].out);
    }
    res.open_min = omin == UINT64_MAX ? 0 : omin;
    res.open_max = omax;
    free(all);
    free(ts);
    if (write_all(res_out, &res, sizeof res) < 0) return 1;
    return 0;
}

/* ================================================================ server */

typedef struct sconn {
    uint32_t magic;
    uint64_t id;
    size_t slot; /* in the id table; under idt.mu */
    uint8_t hdr[HDR];
    uint32_t hl, rlen, rgot, rseq, rop, rsum, expect_seq;
    uint8_t *req; /* HDR + rlen: the reply is built in place */
    int64_t pause_until;
    uint8_t paused, wr_shut, input_done, eof_pending;
} sconn;
#define SCONN_MAGIC 0x50AC0417u

/* Open ids, for the helper threads to pick from. */
static struct {
    pthread_mutex_t mu;
    sconn **v;
    size_t n, cap;
} idt = { PTHREAD_MUTEX_INITIALIZER, NULL, 0, 0 };

/* Timed actions for the helper thread: wake a paused connection when its
 * pause is due, or close one some time after a TBYE. */
enum { Q_WAKE, Q_CLOSE };
typedef struct qent { uint64_t id; int64_t due; int what; } qent;
static struct {
    pthread_mutex_t mu;
    qent *v;
    size_t n, cap;
} tq = { PTHREAD_MUTEX_INITIALIZER, NULL, 0, 0 };

static evio_server *server;
static atomic_int serving_done, helpers_stop;
static int serve_rc = 1;

#define C(name) static atomic_ulong name
C(s_opened); C(s_closed); C(s_closed_ok); C(s_closed_reset); C(s_closed_other); C(s_double);
C(s_requests); C(s_bad_sum); C(s_bad_seq); C(s_bad_hdr); C(s_write_err); C(s_pauses); C(s_resumes);
C(s_wake_events); C(s_eofs); C(s_eof_close); C(s_eof_shut); C(s_eof_defer); C(s_quits); C(s_resets);
C(s_byes); C(s_fins); C(s_oom);
C(h_wake_ok); C(h_wake_nf); C(h_push_ok); C(h_push_nf); C(h_push_bytes); C(h_close_ok); C(h_close_nf);
C(h_tbye); C(h_qwake_ok); C(h_other_err);
#undef C
#define INC(x) atomic_fetch_add_explicit(&(x), 1, memory_order_relaxed)
#define GET(x) atomic_load(&(x))

/* What happened to each connection, by id, to explain a client's complaint. */
enum { T_PAUSE = 1, T_BYE = 2, T_TBYE = 4, T_TCLOSE = 8, T_EOF = 16, T_QUIT = 32, T_RESET = 64, T_PUSH = 128 };
static atomic_uchar *trail;
static size_t trail_cap;
static void mark(uint64_t id, unsigned what)
{
    if (id < trail_cap) atomic_fetch_or_explicit(&trail[id], (unsigned char)what, memory_order_relaxed);
}

static _Thread_local uint64_t loop_rng;
static uint32_t lrnd(uint32_t n)
{
    if (!loop_rng) loop_rng = seed_for((uint64_t)(uintptr_t)&loop_rng);
    return rnd(&loop_rng, n);
}

static void tq_push(uint64_t id, int64_t due, int what)
{
    pthread_mutex_lock(&tq.mu);
    if (tq.n == tq.cap) {
        size_t cap = tq.cap ? tq.cap * 2 : 256;
        qent *v = realloc(tq.v, cap * sizeof *v);
        if (!v) { pthread_mutex_unlock(&tq.mu); INC(s_oom); return; }
        tq.v = v, tq.cap = cap;
    }
    tq.v[tq.n++] = (qent){ id, due, what };
    pthread_mutex_unlock(&tq.mu);
}

static int swrite(evio_conn *c, const void *p, size_t n)
{
    int rc = evio_write(c, p, n);
    if (rc) INC(s_write_err);
    return rc;
}

static evio_action ev_serving(evio_server *srv)
{
    server = srv;
    atomic_store(&serving_done, 1);
    return EVIO_NONE;
}

static evio_action ev_opened(evio_conn *c, const evio_info *info)
{
    (void)info;
    sconn *s = calloc(1, sizeof *s);
    if (!s) { INC(s_oom); return EVIO_CLOSE; }
    s->magic = SCONN_MAGIC;
    s->id = evio_conn_id(c);
    pthread_mutex_lock(&idt.mu);
    if (idt.n == idt.cap) {
        size_t cap = idt.cap ? idt.cap * 2 : 1024;
        sconn **v = realloc(idt.v, cap * sizeof *v);
        if (!v) { pthread_mutex_unlock(&idt.mu); free(s); INC(s_oom); return EVIO_CLOSE; }
        idt.v = v, idt.cap = cap;
    }
    s->slot = idt.n;
    idt.v[idt.n++] = s;
    pthread_mutex_unlock(&idt.mu);
    evio_conn_set_context(c, s);
    INC(s_opened);
    /* HELLO, whose sequence is the id's low half: the client counts the
     * connections the server has really accepted. */
    uint32_t len = lrnd(64);
    uint8_t *f = make_frame(K_HELLO, (uint32_t)s->id, len);
    if (!f) { INC(s_oom); return EVIO_CLOSE; }
    swrite(c, f, HDR + (size_t)len);
    free(f);
    return EVIO_NONE;
}

static evio_action ev_closed(evio_conn *c, int err)
{
    sconn *s = evio_conn_context(c);
    INC(s_closed);
    if (!s || s->magic != SCONN_MAGIC) { INC(s_double); return EVIO_NONE; }
    if (err == 0) INC(s_closed_ok);
    else if (err == -ECONNRESET || err == -EPIPE) INC(s_closed_reset);
    else if (atomic_fetch_add(&s_closed_other, 1) < 5)
        fprintf(stderr, "soak server: closed(%" PRIu64 ", %d: %s)\n", s->id, err, evio_strerror(err));
    pthread_mutex_lock(&idt.mu);
    size_t i = s->slot;
    idt.v[i] = idt.v[--idt.n];
    idt.v[i]->slot = i;
    pthread_mutex_unlock(&idt.mu);
    s->magic = 0;
    free(s->req);
    free(s);
    evio_conn_set_context(c, NULL);
    return EVIO_NONE;
}

static void send_frame(evio_conn *c, uint32_t kind, uint32_t len)
{
    uint8_t *f = make_frame(kind, lrnd(1u << 30), len);
    if (!f) { INC(s_oom); return; }
    swrite(c, f, HDR + (size_t)len);
    free(f);
}

/* One whole request: answer it.  Returns the action for the event. */
static evio_action s_request(evio_conn *c, sconn *s)
{
    uint8_t *p = s->req + HDR;
    if (fnv(FNV0, p, s->rlen) != s->rsum) INC(s_bad_sum);
    if (s->rseq != s->expect_seq) INC(s_bad_seq);
    s->expect_seq = s->rseq + 1;
    INC(s_requests);
    switch (s->rop) {
    case OP_ECHO:
        if (s->wr_shut) break; /* after our BYE: nothing more to say */
        put_hdr(s->req, s->rlen, s->rseq, K_REPLY, fnv(FNV0, p, s->rlen));
        swrite(c, s->req, HDR + (size_t)s->rlen);
        break;
    case OP_QUIT:
        INC(s_quits);
        mark(s->id, T_QUIT);
        s->input_done = 1;
        if (!s->wr_shut) send_frame(c, K_TAIL, 1 + lrnd(MAX_FRAME));
        return EVIO_CLOSE;
    case OP_RESET:
        INC(s_resets);
        mark(s->id, T_RESET);
        s->input_done = 1;
        evio_conn_reset(c);
        return EVIO_NONE;
    default:
        INC(s_bad_hdr);
        s->input_done = 1;
        return EVIO_CLOSE;
    }
    return EVIO_NONE;
}

static evio_action ev_data(evio_conn *c, const void *in, size_t len)
{
    sconn *s = evio_conn_context(c);
    if (!s) return EVIO_CLOSE;
    if (!in) {
        INC(s_wake_events);
        if (s->paused && now_ms() >= s->pause_until) {
            s->paused = 0;
            evio_conn_resume(c);
            INC(s_resumes);
        }
        if (s->eof_pending && !s->wr_shut) {
            s->eof_pending = 0;
            send_frame(c, K_FIN, lrnd(4096));
            INC(s_fins);
            evio_conn_shutdown_write(c);
            s->wr_shut = 1;
        }
        return EVIO_NONE;
    }
    const uint8_t *p = in;
    while (len && !s->input_done) {
        if (s->hl < HDR) {
            size_t k = HDR - s->hl < len ? HDR - s->hl : len;
            memcpy(s->hdr + s->hl, p, k);
            s->hl += (uint32_t)k, p += k, len -= k;
            if (s->hl < HDR) break;
            uint32_t v[4];
            memcpy(v, s->hdr, HDR);
            if ((v[2] & 0xFF000000u) != MAGIC || v[0] > MAX_REQ) {
                INC(s_bad_hdr);
                s->input_done = 1;
                return EVIO_CLOSE;
            }
            s->rlen = v[0], s->rseq = v[1], s->rop = v[2] & 0xFFFFFFu, s->rsum = v[3], s->rgot = 0;
            s->req = malloc(HDR + (size_t)s->rlen);
            if (!s->req) { INC(s_oom); return EVIO_CLOSE; }
        }
        size_t k = s->rlen - s->rgot < len ? s->rlen - s->rgot : len;
        memcpy(s->req + HDR + s->rgot, p, k);
        s->rgot += (uint32_t)k, p += k, len -= k;
        if (s->rgot < s->rlen) break;
        evio_action a = s_request(c, s);
        free(s->req);
        s->req = NULL, s->hl = 0;
        if (a != EVIO_NONE) return a;
    }
    if (s->input_done || s->wr_shut) return EVIO_NONE;
    uint32_t r = lrnd(10000);
    if (r < 25 && !s->paused) { /* pause for 1-300 ms; the helper's wake resumes */
        s->paused = 1;
        s->pause_until = now_ms() + 1 + lrnd(300);
        evio_conn_pause(c);
        INC(s_pauses);
        mark(s->id, T_PAUSE);
        tq_push(s->id, s->pause_until, Q_WAKE);
    } else if (r >= 9997) { /* a BYE and our half of the close */
        send_frame(c, K_BYE, lrnd(256 * 1024));
        INC(s_byes);
        mark(s->id, T_BYE);
        evio_conn_shutdown_write(c);
        s->wr_shut = 1;
    }
    return EVIO_NONE;
}

static evio_action ev_eof(evio_conn *c)
{
    sconn *s = evio_conn_context(c);
    INC(s_eofs);
    if (s) mark(s->id, T_EOF);
    if (!s || s->wr_shut || s->input_done) return EVIO_NONE; /* closes by itself */
    switch (lrnd(3)) {
    case 0: INC(s_eof_close); return EVIO_CLOSE;
    case 1:
        INC(s_eof_shut);
        evio_conn_shutdown_write(c);
        s->wr_shut = 1;
        return EVIO_NONE;
    default:
        INC(s_eof_defer);
        s->eof_pending = 1;
        tq_push(s->id, now_ms() + lrnd(50), Q_WAKE);
        return EVIO_NONE;
    }
}

static uint64_t pick_id(uint64_t *rng)
{
    uint64_t id = 0;
    pthread_mutex_lock(&idt.mu);
    if (idt.n) id = idt.v[rnd(rng, (uint32_t)idt.n)]->id;
    pthread_mutex_unlock(&idt.mu);
    return id;
}

static void *helper(void *arg)
{
    int k = (int)(intptr_t)arg;
    uint64_t rng = seed_for(77 + (uint64_t)k);
    uint32_t push_seq = 0;
    while (!atomic_load(&helpers_stop)) {
        sleep_ms(1);
        if (k == 0) { /* due timed actions */
            int64_t now = now_ms();
            qent due[64];
            size_t nd = 0;
            pthread_mutex_lock(&tq.mu);
            for (size_t i = 0; i < tq.n && nd < 64;)
                if (tq.v[i].due <= now) due[nd++] = tq.v[i], tq.v[i] = tq.v[--tq.n];
                else i++;
            pthread_mutex_unlock(&tq.mu);
            for (size_t i = 0; i < nd; i++) {
                int rc = due[i].what == Q_WAKE ? evio_wake(server, due[i].id) : evio_close(server, due[i].id);
                if (rc == 0 && due[i].what == Q_WAKE) INC(h_qwake_ok);
                else if (rc == 0) INC(h_close_ok), mark(due[i].id, T_TCLOSE);
                else if (rc == EVIO_ENOTFOUND && due[i].what == Q_CLOSE) INC(h_close_nf);
                else if (rc != EVIO_ENOTFOUND) INC(h_other_err);
            }
        }
        for (int j = 0; j < 4; j++) {
            uint64_t id = pick_id(&rng);
            if (!id) break;
            uint32_t r = rnd(&rng, 10000);
            if (r < 4000) {
                int rc = evio_wake(server, id);
                if (!rc) INC(h_wake_ok);
                else if (rc == EVIO_ENOTFOUND) INC(h_wake_nf);
                else INC(h_other_err);
            } else if (r < 9995 || k == 0) {
                uint32_t len = rnd(&rng, 2048);
                uint8_t *f = make_frame((uint32_t)(K_PUSH0 + k), ++push_seq, len);
                if (!f) continue;
                int rc = evio_send(server, id, f, HDR + (size_t)len);
                free(f);
                if (!rc) INC(h_push_ok), atomic_fetch_add(&h_push_bytes, len), mark(id, T_PUSH);
                else if (rc == EVIO_ENOTFOUND) INC(h_push_nf);
                else INC(h_other_err);
            } else { /* helper 1: TBYE, then evio_close now or 200 ms later */
                uint32_t len = rnd(&rng, 64 * 1024);
                uint8_t *f = make_frame(K_TBYE, rnd(&rng, 1u << 30), len);
                if (!f) continue;
                int rc = evio_send(server, id, f, HDR + (size_t)len);
                free(f);
                if (rc) continue;
                INC(h_tbye);
                mark(id, T_TBYE);
                if (rnd(&rng, 2)) tq_push(id, now_ms() + 200, Q_CLOSE);
                else if ((rc = evio_close(server, id)) == 0) INC(h_close_ok), mark(id, T_TCLOSE);
                else if (rc == EVIO_ENOTFOUND) INC(h_close_nf);
                else INC(h_other_err);
            }
        }
    }
    return NULL;
}

static void *serve_thread(void *arg)
{
    static const char *const addrs[] = { "tcp4://127.0.0.1:0" };
    serve_rc = evio_serve(arg, addrs, 1);
    atomic_store(&serving_done, 1);
    return NULL;
}

/* ================================================================ main */

static int passed, failed;
static void check(int ok, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("  %s ", ok ? "ok  " : "FAIL");
    vprintf(fmt, ap);
    putchar('\n');
    va_end(ap);
    ok ? passed++ : failed++;
}

static void usage(void)
{
    fprintf(stderr, "usage: soak [--seconds 600] [--conns 10000] [--loops 2] [--client-threads 2]\n"
                    "            [--seed N] [--rss-slack-mb M] [--progress SECONDS]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) usage();
        i++;
        if (!strcmp(a, "--seconds")) opt.seconds = atoi(v);
        else if (!strcmp(a, "--conns")) opt.conns = atoi(v);
        else if (!strcmp(a, "--loops")) opt.loops = atoi(v);
        else if (!strcmp(a, "--client-threads")) opt.cthreads = atoi(v);
        else if (!strcmp(a, "--seed")) opt.seed = strtoull(v, NULL, 0);
        else if (!strcmp(a, "--rss-slack-mb")) opt.rss_slack_mb = atol(v);
        else if (!strcmp(a, "--progress")) opt.progress = atoi(v);
        else usage();
    }
    if (opt.seconds < 1 || opt.conns < 1 || opt.loops < 1 || opt.cthreads < 1) usage();
    if (!opt.seed) opt.seed = (uint64_t)time(NULL) ^ (uint64_t)getpid() << 20;
    if (!opt.progress) opt.progress = opt.seconds > 120 ? 30 : 10;
#ifdef SOAK_ASAN
    /* ASan's shadow (an eighth of all heap ever touched) is not returned
     * by the purge, so the bound grows by peak/8. */
    const char *memnote = "ASan: __sanitizer_purge_allocator() before the end figure";
    int shadow_div = 8;
    if (opt.rss_slack_mb < 0) opt.rss_slack_mb = 64;
#else
    const char *memnote = "malloc_trim(0) before the end figure";
    int shadow_div = 0;
    if (opt.rss_slack_mb < 0) opt.rss_slack_mb = 20;
#endif
    signal(SIGPIPE, SIG_IGN);
    setvbuf(stdout, NULL, _IOLBF, 0);
    trail_cap = (size_t)opt.conns * 4 + (size_t)opt.seconds * 2000;

    /* Each process needs one fd per connection, plus a few. */
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    getrlimit(RLIMIT_NOFILE, &rl);
    rlim_t need = (rlim_t)opt.conns + 256;
    if (rl.rlim_cur < need) {
        fprintf(stderr, "soak: %d connections need %lu fds per process, but RLIMIT_NOFILE is %lu (hard %lu);\n"
                        "      raise it (ulimit -Hn) or lower --conns\n",
                opt.conns, (unsigned long)need, (unsigned long)rl.rlim_cur, (unsigned long)rl.rlim_max);
        printf("soak: 0 passed, 1 failed\n");
        return 1;
    }

    int ctl[2], res[2];
    if (pipe2(ctl, O_CLOEXEC) < 0 || pipe2(res, O_CLOEXEC) < 0) { perror("soak: pipe"); return 1; }
    fflush(NULL);
    pid_t child = fork();
    if (child < 0) { perror("soak: fork"); return 1; }
    if (child == 0) {
        close(ctl[1]), close(res[0]);
        int rc = client_main(ctl[0], res[1]);
        close(ctl[0]), close(res[1]);
        return rc;
    }
    close(ctl[0]), close(res[1]);

    printf("soak: backend %s, %d connections, %d s, %d loops, %d client threads, seed %" PRIu64 "%s\n",
           evio_backend_name(), opt.conns, opt.seconds, opt.loops, opt.cthreads, opt.seed,
#ifdef SOAK_ASAN
           ", ASan"
#else
           ""
#endif
    );

    evio_events ev;
    memset(&ev, 0, sizeof ev);
    ev.serving = ev_serving, ev.opened = ev_opened, ev.closed = ev_closed, ev.data = ev_data, ev.eof = ev_eof;
    ev.nloops = opt.loops;
    pthread_t st, ht[2];
    if (pthread_create(&st, NULL, serve_thread, &ev)) { perror("soak: pthread_create"); return 1; }
    while (!atomic_load(&serving_done)) sleep_ms(1);
    if (!server) {
        fprintf(stderr, "soak: evio_serve failed: %s\n", evio_strerror(serve_rc));
        pthread_join(st, NULL);
        close(ctl[1]);
        waitpid(child, NULL, 0);
        printf("soak: 0 passed, 1 failed\n");
        return 1;
    }
    socklen_t alen;
    const struct sockaddr_in *sa = (const struct sockaddr_in *)evio_server_addr(server, 0, &alen);
    uint16_t port = ntohs(sa->sin_port);

    sleep_ms(200);
    trail = calloc(trail_cap, sizeof *trail); /* before the start figures */
    if (!trail) trail_cap = 0;
    long rss_start = rss_kb("VmRSS");
    long heap_start = heap_in_use();
    long rss_peak = rss_start;
    for (int k = 0; k < 2; k++) pthread_create(&ht[k], NULL, helper, (void *)(intptr_t)k);
    write_all(ctl[1], &port, sizeof port);

    int64_t t0 = now_ms(), end = t0 + (int64_t)opt.seconds * 1000, next_report = t0 + opt.progress * 1000;
    uint64_t open_min = UINT64_MAX, open_max = 0;
    evio_stats stt;
    while (now_ms() < end) {
        sleep_ms(250);
        long r = rss_kb("VmRSS");
        if (r > rss_peak) rss_peak = r;
        evio_server_stats(server, &stt, NULL, 0);
        if (stt.open > open_max) open_max = stt.open;
        if (now_ms() - t0 > 15000 && stt.open < open_min) open_min = stt.open;
        if (now_ms() >= next_report) {
            next_report += opt.progress * 1000;
            printf("soak: %3" PRId64 " s: open %" PRIu64 ", accepted %" PRIu64 ", closed %" PRIu64
                   ", requests %lu, in %.1f MB, out %.1f MB, wakes %" PRIu64 ", out buffers %" PRIu64
                   " (%.1f MB), RSS %.1f MB\n",
                   (now_ms() - t0) / 1000, stt.open, stt.accepted, stt.closed, GET(s_requests),
                   (double)stt.bytes_in / 1e6, (double)stt.bytes_out / 1e6, stt.wakes, stt.output_buffers,
                   (double)stt.output_bytes / 1e6, (double)r / 1024);
        }
    }

    /* The end: the client closes everything and reports. */
    int64_t t_stop = now_ms();
    write_all(ctl[1], "S", 1);
    client_result cr;
    memset(&cr, 0, sizeof cr);
    int got_result = read_all(res[0], &cr, sizeof cr, 300000) == 0;
    int64_t t_client_done = now_ms();
    int64_t close_deadline = now_ms() + 120000;
    do {
        evio_server_stats(server, &stt, NULL, 0);
        if (!stt.open) break;
        sleep_ms(20);
    } while (now_ms() < close_deadline);
    int64_t t_all_closed = now_ms();
    atomic_store(&helpers_stop, 1);
    for (int k = 0; k < 2; k++) pthread_join(ht[k], NULL);
    sleep_ms(1000); /* settle */
    evio_server_stats(server, &stt, NULL, 0);
#ifdef SOAK_ASAN
    __sanitizer_purge_allocator();
#else
    malloc_trim(0);
#endif
    long rss_end = rss_kb("VmRSS");
    long heap_end = heap_in_use();
    long hwm = rss_kb("VmHWM");
    if (hwm > rss_peak) rss_peak = hwm;

    evio_server_shutdown(server);
    pthread_join(st, NULL);
    int status = 0;
    int64_t reap_deadline = now_ms() + 60000;
    while (waitpid(child, &status, WNOHANG) == 0) {
        if (now_ms() > reap_deadline) { kill(child, SIGKILL); waitpid(child, &status, 0); break; }
        sleep_ms(20);
    }
    close(ctl[1]), close(res[0]);
    int child_ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;

    uint64_t opened = GET(s_opened), closed = GET(s_closed);
    double secs = (double)(t_stop - t0) / 1000;
    printf("\nsoak figures (%s backend, %d loops, seed %" PRIu64 ")\n", evio_backend_name(), opt.loops, opt.seed);
    printf("  duration          %.1f s of traffic; the client closed all in %.1f s, the server saw the last "
           "close %.1f s after the stop\n",
           secs, (double)(t_client_done - t_stop) / 1000, (double)(t_all_closed - t_stop) / 1000);
    printf("  connections       target %d; open during the run (after a 15 s ramp): server min %" PRIu64
           " max %" PRIu64 ", client min %" PRIu64 " max %" PRIu64 "\n",
           opt.conns, open_min == UINT64_MAX ? 0 : open_min, open_max, cr.open_min, cr.open_max);
    printf("                    opened %" PRIu64 " closed %" PRIu64 " (clean %lu, reset %lu, other %lu); "
           "client connects %" PRIu64 ", HELLOs %" PRIu64 " (failed attempts %" PRIu64 ": fd %" PRIu64 " addrnotavail %" PRIu64
           " refused %" PRIu64 " timeout %" PRIu64 " other %" PRIu64 ")\n",
           opened, closed, GET(s_closed_ok), GET(s_closed_reset), GET(s_closed_other), cr.connects,
           cr.hellos, cr.connect_fail, cr.connect_errno[0], cr.connect_errno[1], cr.connect_errno[2], cr.connect_errno[4],
           cr.connect_errno[3] + cr.connect_errno[5] + cr.connect_errno[7]);
    printf("  client endings    orderly %" PRIu64 ", half-close %" PRIu64 ", abortive %" PRIu64 ", quit %" PRIu64
           ", reset %" PRIu64 "\n",
           cr.end_orderly, cr.end_half, cr.end_abort, cr.end_quit, cr.end_reset);
    printf("  requests          %" PRIu64 " verified (%.0f/s); server answered %lu\n", cr.requests,
           secs > 0 ? (double)cr.requests / secs : 0, GET(s_requests));
    printf("  bytes             client sent %.1f MB, received %.1f MB; server in %.1f MB, out %.1f MB\n",
           (double)cr.bytes_out / 1e6, (double)cr.bytes_in / 1e6, (double)stt.bytes_in / 1e6,
           (double)stt.bytes_out / 1e6);
    printf("  server actions    pauses %lu (resumed %lu), wake events %lu, eof %lu (close %lu, shutdown_write %lu,"
           " deferred FIN %lu), quit %lu, reset %lu, BYE %lu\n",
           GET(s_pauses), GET(s_resumes), GET(s_wake_events), GET(s_eofs), GET(s_eof_close), GET(s_eof_shut),
           GET(s_eof_defer), GET(s_quits), GET(s_resets), GET(s_byes));
    printf("  other threads     evio_wake %lu (+%lu resume wakes, %lu gone), evio_send %lu (%.1f MB, %lu gone), "
           "TBYE+evio_close %lu (%lu gone)\n",
           GET(h_wake_ok), GET(h_qwake_ok), GET(h_wake_nf), GET(h_push_ok), (double)GET(h_push_bytes) / 1e6,
           GET(h_push_nf), GET(h_close_ok), GET(h_close_nf));
    /* A reset after a BYE is explained by a helper's evio_close only. */
    uint64_t bye_explained = 0;
    for (uint64_t i = 0; i < cr.nbye; i++) {
        unsigned tr = cr.bye_id[i] < trail_cap ? atomic_load(&trail[cr.bye_id[i]]) : 0;
        if (tr & T_TCLOSE) {
            bye_explained++;
        } else if (cr.nbad < 8) {
            cr.bad_id[cr.nbad++] = cr.bye_id[i];
        }
    }
    cr.unexplained_reset += cr.bye_reset - bye_explained; /* and any not in bye_id */
    printf("  client saw        pushes %" PRIu64 ", BYE %" PRIu64 ", TAIL %" PRIu64 ", TBYE %" PRIu64 ", FIN %" PRIu64
           "; resets after TBYE %" PRIu64 ", after BYE and a helper's evio_close %" PRIu64 "\n",
           cr.pushes, cr.byes, cr.tails, cr.tbyes, cr.fins, cr.tbye_reset, bye_explained);
    printf("  errors            mismatches %" PRIu64 ", protocol %" PRIu64 ", unexpected EOF %" PRIu64
           ", reset-as-EOF %" PRIu64 ", unexplained resets %" PRIu64 ", other %" PRIu64
           "; server: bad sum %lu, bad seq %lu, bad header %lu, write errors %lu, out of memory %lu\n",
           cr.mismatches, cr.proto_errors, cr.unexpected_eof, cr.reset_as_eof, cr.unexplained_reset,
           cr.other_errors, GET(s_bad_sum), GET(s_bad_seq), GET(s_bad_hdr), GET(s_write_err), GET(s_oom));
    long rss_bound = rss_start + opt.rss_slack_mb * 1024 + (shadow_div ? (rss_peak - rss_start) / shadow_div : 0);
    printf("  RSS (server)      start %.1f MB, peak %.1f MB, end %.1f MB (%s; bound: start + %ld MB%s = %.1f MB)\n",
           (double)rss_start / 1024, (double)rss_peak / 1024, (double)rss_end / 1024, memnote, opt.rss_slack_mb,
           shadow_div ? " + (peak - start)/8 for ASan shadow" : "", (double)rss_bound / 1024);
    /* What evio may keep after its peak: tables sized for the most
     * connections it had (ids, fds) and a small cache of output blocks. */
    long heap_bound = heap_start < 0 ? -1 : heap_start + 1024L * 1024 + (long)opt.conns * 200;
    printf("  heap in use       start %.2f MB, end %.2f MB (bound %.2f MB: start + 1 MB + 200 B per connection)\n",
           (double)heap_start / 1048576, (double)heap_end / 1048576, (double)heap_bound / 1048576);
    for (uint64_t i = 0; i < cr.nbad; i++) {
        unsigned tr = cr.bad_id[i] < trail_cap ? atomic_load(&trail[cr.bad_id[i]]) : 0;
        printf("  bad connection    id %" PRIu64 ": server trail%s%s%s%s%s%s%s%s%s\n", cr.bad_id[i],
               tr & T_PAUSE ? " paused" : "", tr & T_BYE ? " BYE+shutdown_write" : "",
               tr & T_TBYE ? " TBYE" : "", tr & T_TCLOSE ? " evio_close" : "", tr & T_EOF ? " eof" : "",
               tr & T_QUIT ? " quit" : "", tr & T_RESET ? " reset" : "", tr & T_PUSH ? " evio_send" : "",
               tr ? "" : " (none)");
    }
    printf("  evio stats end    open %" PRIu64 " accepted %" PRIu64 " closed %" PRIu64 " output_buffers %" PRIu64
           " output_bytes %" PRIu64 " timeouts %" PRIu64 " high_water %" PRIu64 " wakes %" PRIu64 "\n",
           stt.open, stt.accepted, stt.closed, stt.output_buffers, stt.output_bytes, stt.timeouts, stt.high_water,
           stt.wakes);

    printf("\nsoak checks\n");
    check(serve_rc == 0, "evio_serve returned 0 (%d)", serve_rc);
    check(got_result, "the client reported its figures");
    check(child_ok, "the client process exited 0 (LSan clean under ASan)");
    check(cr.stuck == 0, "every client connection ended (%" PRIu64 " stuck)", cr.stuck);
    check(opened == closed, "opened == closed (%" PRIu64 " / %" PRIu64 ")", opened, closed);
    check(GET(s_double) == 0, "closed fired once per connection (%lu unknown)", GET(s_double));
    check(stt.open == 0, "stats.open == 0 (%" PRIu64 ")", stt.open);
    check(stt.accepted == opened && stt.closed == closed,
          "stats accepted/closed match the callbacks (%" PRIu64 "/%" PRIu64 ")", stt.accepted, stt.closed);
    /* A connection the kernel completed but the client ended before the
     * server accepted it (a full accept queue) is a connect, and may never
     * be an open; one that got its HELLO certainly was. */
    check(cr.hellos <= opened && opened <= cr.connects,
          "client HELLOs <= server opened <= client connects (%" PRIu64 " <= %" PRIu64 " <= %" PRIu64 ")",
          cr.hellos, opened, cr.connects);
    check(stt.output_buffers == 0 && stt.output_bytes == 0, "no output buffers left (%" PRIu64 ", %" PRIu64 " B)",
          stt.output_buffers, stt.output_bytes);
    check(stt.timeouts == 0, "no timeouts (%" PRIu64 ")", stt.timeouts);
    check(cr.mismatches == 0 && GET(s_bad_sum) == 0, "every byte verified (%" PRIu64 " client, %lu server mismatches)",
          cr.mismatches, GET(s_bad_sum));
    check(cr.proto_errors + cr.unexpected_eof + cr.reset_as_eof + cr.other_errors == 0,
          "client saw no protocol error, unexpected EOF or lost reset");
    check(GET(s_bad_seq) + GET(s_bad_hdr) + GET(s_write_err) + GET(s_oom) + GET(h_other_err) == 0,
          "server saw requests in order, no write or API error");
    check(cr.unexplained_reset == 0, "no reset the client did not ask for (%" PRIu64 ")", cr.unexplained_reset);
    check(GET(s_closed_other) == 0, "closed() errors are 0 or a reset (%lu others)", GET(s_closed_other));
    check(cr.requests > 0 && cr.end_orderly && cr.end_half && cr.end_abort && cr.end_quit && cr.end_reset &&
              GET(s_pauses) && GET(s_resumes) && GET(h_wake_ok) && cr.pushes && GET(h_tbye) && cr.fins &&
              (cr.byes || opt.seconds < 30),
          "every feature was exercised");
    check(rss_end <= rss_bound, "RSS end %.1f MB <= bound %.1f MB", (double)rss_end / 1024,
          (double)rss_bound / 1024);
    if (heap_start >= 0)
        check(heap_end <= heap_bound, "heap in use at the end %.2f MB <= bound %.2f MB", (double)heap_end / 1048576,
              (double)heap_bound / 1048576);

    free(idt.v);
    free(tq.v);
    free(trail);
#ifdef SOAK_ASAN
    int leaks = __lsan_do_recoverable_leak_check();
    check(leaks == 0, "LeakSanitizer: no leaks in the server process");
#else
    printf("  (no LeakSanitizer in this build: leaks not checked)\n");
#endif
    printf("soak: %d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
