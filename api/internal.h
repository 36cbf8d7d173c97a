/*
 * internal.h — the frontend's own types (internal; never installed).
 *
 * A server owns its listeners and one or more loops.  A loop owns a poller
 * (the backend), an fd table, its connections, a wake queue and a read
 * buffer, and everything in it is touched by the loop thread only, except
 * the id map and the wake queue, which other threads reach through
 * evio_wake() under loop->lock.
 */
#ifndef EVIO_INTERNAL_H
#define EVIO_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "backend.h"
#include "evio.h"

#define EVIO__READ_BUFFER (64 * 1024) /* one read per ready conn per iteration */
#define EVIO__SEND_MAX (64 * 1024) /* completion mode: bytes per send, so progress shows */
#define EVIO__MAX_EVENTS 1024         /* readiness entries fetched per poll */
#define EVIO__ACCEPT_BUDGET 128       /* accepts per listener per iteration */
#define EVIO__ACCEPT_RETRY_NS 100000000LL /* after EMFILE, try again in 100 ms */
#define EVIO__MIN_TICK_NS 1000000LL       /* ticks below 1 ms would spin */
#define EVIO__WHEEL_SLOTS 256             /* idle-timeout wheel: 256 x 50 ms */
#define EVIO__WHEEL_NS ((int64_t)EVIO_IDLE_RESOLUTION_MS * 1000000)
#define EVIO__DEFAULT_DRAIN_MS 30000

/* For the few functions of the echo path that more than one caller shares:
 * a call there costs more than the function (see docs/bench.md, callgrind). */
#if defined(__GNUC__)
#define EVIO__ALWAYS_INLINE inline __attribute__((always_inline))
#else
#define EVIO__ALWAYS_INLINE inline
#endif

/* A counter one loop writes and any thread reads: relaxed, and no locked
 * instruction on the hot path since there is a single writer. */
typedef _Atomic uint64_t evio__counter;
static inline void evio__count(evio__counter *c, uint64_t n)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
                          memory_order_relaxed);
}

/* ---------------------------------------------------------------- output */

/* A connection's output queue: bytes live in data[head, tail).  A
 * connection holds one only while it has bytes the socket did not take;
 * the common block size comes from and goes back to a small per-loop
 * cache, so the write path neither allocates nor keeps memory per idle
 * connection. */
typedef struct evio__outq {
    size_t head, tail, cap;
    /* In the loop's cache.  In a queue: the block a completion backend
     * still sends from, which the queue outgrew (evio__outq_unpin). */
    struct evio__outq *next;
    bool counted;            /* in evio_stats.output_* */
    bool pinned;             /* a completion backend sends from it: no moving */
    char data[];
} evio__outq;

#define EVIO__OUTQ_BLOCK (4096 - sizeof(evio__outq)) /* one page with its header */
#define EVIO__OUTQ_CACHE 64                           /* blocks a loop keeps spare */

typedef struct evio__loop evio__loop;
static inline size_t evio__outq_len(const evio__outq *q) { return q ? q->tail - q->head : 0; }
int evio__outq_append_slow(evio__loop *l, evio__outq **q, const void *p, size_t n);
void evio__outq_consume(evio__loop *l, evio__outq **q, size_t n);
void evio__outq_free_slow(evio__loop *l, evio__outq **q);
void evio__outq_held(evio__loop *l, evio__outq *q); /* outlived its flush: count it */
void evio__outq_cache_free(evio__loop *l);
void evio__outq_unpin(evio__loop *l, evio__outq *q); /* the send from it completed */

/* ---------------------------------------------------------------- id map */

/* uint64 id -> pointer, open addressing; id 0 marks an empty slot. */
typedef struct evio__idmap {
    uint64_t *keys;
    void **vals;
    size_t cap, len; /* cap is 0 or a power of two */
} evio__idmap;

int evio__idmap_put(evio__idmap *m, uint64_t id, void *val);
void *evio__idmap_get(const evio__idmap *m, uint64_t id);
void evio__idmap_del(evio__idmap *m, uint64_t id);
void evio__idmap_free(evio__idmap *m);

/* ---------------------------------------------------------------- addresses */

typedef struct evio__addr {
    struct sockaddr_storage sa;
    socklen_t len;
    int socktype;  /* SOCK_STREAM */
    bool reuseport;
    bool dualstack; /* tcp:// with no host: [::] with IPV6_V6ONLY off */
    bool anyhost;   /* the host was empty: every local address (serve only) */
    int mode;       /* unix: ?mode= permissions of the socket file; -1: umask */
    /* A host name left for the resolver (parse without resolve): */
    bool unresolved;
    int family; /* AF_UNSPEC, AF_INET or AF_INET6, from the scheme */
    in_port_t port; /* network order */
    char host[256];
} evio__addr;

/* Parse an address string.  resolve: look names up now (blocking);
 * otherwise leave them in host with unresolved set. */
int evio__addr_parse(const char *s, evio__addr *out, bool resolve);
void evio__addr_set_port(evio__addr *a, in_port_t port);
/* evio_addr_format with the scheme of socktype (udp:// for SOCK_DGRAM). */
int evio__addr_format(const struct sockaddr *sa, socklen_t len, int socktype, char *buf,
                      size_t size);

/* ---------------------------------------------------------------- listeners */

typedef struct evio__listener {
    int fd;
    int index;       /* position in serve's addrs[] */
    int loop;        /* the loop that watches it */
    bool per_loop;   /* one copy per loop (?reuseport): accept locally */
    evio__addr addr; /* as bound: port 0 resolved */
    bool active;     /* registered for READ with the poller (completion
                      * mode: should be accepting) */
    bool armed;      /* completion mode: an accept is outstanding */
    bool made_file;  /* unix: we created the socket file, identified by: */
    dev_t file_dev;
    ino_t file_ino;
} evio__listener;

int evio__listener_open(evio__listener *l, const evio__addr *a, int index);
void evio__listener_close(evio__listener *l);

/* ---------------------------------------------------------------- loops */

enum { EVIO__SLOT_FREE, EVIO__SLOT_LISTENER, EVIO__SLOT_CONN };

/* What the loop knows about one fd.  since is the poll batch in which the
 * slot was filled: readiness fetched in that batch or earlier predates the
 * current owner of the fd number and is dropped (the reused-fd problem). */
typedef struct evio__slot {
    void *ptr;
    uint32_t since; /* the batch's low bits: only "this very batch" matters */
    uint32_t kind;
} evio__slot;

enum {
    EVIO__CONN_CLOSING = 1u,    /* CLOSE asked (or peer EOF): flush, then close */
    EVIO__CONN_DETACHING = 2u,  /* DETACH asked: flush, then hand over */
    EVIO__CONN_DEAD = 4u,       /* closed or detached; freed after the batch */
    EVIO__CONN_CONNECTING = 8u, /* dialed, not opened yet */
    EVIO__CONN_PAUSED = 16u,    /* evio_conn_pause(): not reading */
    EVIO__CONN_DIRTY = 32u,     /* on the loop's dirty list */
    EVIO__CONN_FAILED = 64u,    /* close at once with fail_err */
    EVIO__CONN_FINISHED = 128u, /* the translator's finish() ran */
    EVIO__CONN_UDP = 256u,      /* a UDP session (also in is_udp, for other threads) */
    EVIO__CONN_TRANSLATED = 512u, /* rare->xl is set */
    EVIO__CONN_FULL = 1024u,      /* output past the high-water mark: not reading */
    EVIO__CONN_RDONE = 2048u,     /* the peer sent EOF (with an eof callback) */
    EVIO__CONN_WSHUT = 4096u,     /* shutdown_write asked: FIN after the queue */
    EVIO__CONN_WDONE = 8192u,     /* FIN sent */
    EVIO__CONN_RESET = 16384u,    /* evio_conn_reset(): close with RST */
    EVIO__CONN_DEADLINE = 32768u, /* deadline_ms is set */
    EVIO__CONN_INBOUND = 65536u,  /* accepted: counts against max_conns */
    EVIO__CONN_UNIX = 131072u,    /* a unix socket (no TCP options) */
    /* Completion mode: the backend does this connection's I/O, and
     * interest says which operations are outstanding (READ: a receive,
     * WRITE: a send), so the connection outlives them (loop->limbo). */
    EVIO__CONN_RING = 262144u,
    EVIO__CONN_RCANCEL = 524288u, /* the receive was asked to end */
    EVIO__CONN_WPROBE = 1048576u, /* the write timeout is due: send cancelled to probe */
};

/* Milliseconds on a 32-bit clock that wraps every 49 days: per-connection
 * times are kept this small (memory per idle connection), and compared
 * only as differences, which stay valid for timeouts under 24 days. */
typedef uint32_t evio__ms;
static inline int32_t evio__ms_diff(evio__ms a, evio__ms b) { return (int32_t)(a - b); }
#define EVIO__MAX_TIMEOUT_MS (INT32_MAX / 2) /* longer timeouts are clamped */

typedef struct evio__udp_session evio__udp_session;

/* ---------------------------------------------------------------- timers */

/* A min-heap of deadlines; each timer knows its slot so it can leave early. */
typedef struct evio__timer {
    int64_t due; /* monotonic ns */
    size_t slot; /* position in the heap, or SIZE_MAX when not queued */
} evio__timer;

typedef struct evio__heap {
    evio__timer **items;
    size_t len, cap;
} evio__heap;

int evio__heap_push(evio__heap *h, evio__timer *t);
void evio__heap_remove(evio__heap *h, evio__timer *t);
static inline evio__timer *evio__heap_top(const evio__heap *h) { return h->len ? h->items[0] : NULL; }
void evio__heap_free(evio__heap *h);

/* What few connections need: a dial, a translator, an error message,
 * overrides of the server's settings.  Made on first use, so a plain
 * connection stays small. */
typedef struct evio__conn_rare {
    evio_conn *conn;
    evio__addr *dial;       /* while connecting: where to */
    evio__timer dial_timer;
    const evio_translator *xl; /* with EVIO__CONN_TRANSLATED */
    void *xstate;
    char *errmsg; /* evio_translator_set_error() */
    int high_water;    /* 0: the server's; < 0: off */
    int write_ms;      /* 0: the server's; < 0: off */
    bool xdeadline_set;
    evio__ms xdeadline; /* evio_translator_set_deadline() */
    /* Completion mode: input the backend received while we did not want
     * to read (paused, full, detaching), given to data() once we do. */
    evio__outq *stash;
    bool stash_eof;
} evio__conn_rare;

/* One connection.  Kept small: it is most of what an idle connection
 * costs (see docs/idle-memory.md). */
struct evio_conn {
    evio__loop *loop;
    uint64_t id;
    evio__outq *out;        /* NULL while nothing is queued */
    void *ctx;
    evio_conn *prev, *next; /* the loop's list of live connections */
    evio_conn *qnext;       /* the dial queue, then the dirty list */
    /* Timeouts (idle, write, deadlines) share one coarse wheel: input and
     * output only stamp a time; the wheel looks when the slot comes round. */
    evio_conn *wprev, *wnext;
    evio__conn_rare *rare;
    int fd;
    unsigned flags;
    int listener;
    int32_t idle_ms; /* 0: none */
    int fail_err;    /* with EVIO__CONN_FAILED */
    evio__ms last_input, last_output, deadline;
    uint16_t wslot; /* slot + 1; 0 when not on the wheel */
    uint8_t interest; /* what the poller watches: EVIO__READ|EVIO__WRITE */
    bool wake_queued;   /* under loop->lock */
    bool wake_deferred; /* woken before it opened: data(NULL, 0) after opened */
    bool is_udp; /* set before the id is published: read by other threads */
};

evio__conn_rare *evio__conn_rare_get(evio_conn *c); /* NULL when out of memory */

/* evio_send()/evio_close() from another thread, queued for the loop. */
typedef struct evio__sendreq {
    struct evio__sendreq *next;
    uint64_t id;
    evio_conn *conn; /* looked up under the lock when drained */
    bool close;
    size_t len;
    char data[];
} evio__sendreq;

typedef struct evio__loop_stats {
    evio__counter linked, accepted, closed, refused, filtered;
    evio__counter bytes_in, bytes_out, wakes;
    evio__counter output_buffers, output_bytes, high_water, timeouts;
} evio__loop_stats;

struct evio__loop {
    evio_server *srv;
    int index;
    evio__poller *poller;
    evio__event fired[EVIO__MAX_EVENTS];
    uint64_t batch;

    evio__slot *slots; /* indexed by fd */
    int nslots;

    evio_conn *conns;  /* live connections */
    evio_conn *graves; /* dead this batch, freed after it */
    evio_conn *limbo;  /* dead, waiting for their operations' last results */
    bool completion;   /* the backend does socket I/O (EVIO__CAP_COMPLETION) */
    size_t nconns;
    uint64_t next_seq;

    /* Reached from other threads, under lock: the id map (written by dial
     * too), the wake queue, dials to start and resolver answers. */
    pthread_mutex_t lock;
    evio__idmap ids;
    uint64_t *wakeq, *wakeq_spare;
    size_t wakeq_len, wakeq_cap, wakeq_spare_cap;
    evio_conn **woken; /* the drained wake queue, as connections */
    size_t woken_cap;
    evio_conn *dialq;  /* dialed, not started yet (newest first) */
    struct evio__resolved *resolved;
    bool closed;       /* the server is past accepting dials */
    atomic_int wake_signaled; /* the poller has been (or is being) woken */

    struct evio__handoff *inbox; /* accepted by loop 0 for this loop, under lock */
    evio__sendreq *sendq, *sendq_tail; /* from evio_send/evio_close, under lock */
    atomic_int load;     /* live connections plus handoffs on their way */

    evio_conn *dirty;   /* connections whose state changed outside their own event */
    evio_conn *current; /* whose event runs: updated right after it anyway */
    evio__heap timers; /* dial deadlines */

    int64_t now; /* monotonic ns, read once per iteration */
    evio__ms ms; /* the same, in wrapping milliseconds */
    evio__outq *spare; /* the output block cache */
    int nspare;
    evio__loop_stats stats;

    /* The idle-timeout wheel: slot i holds connections due in the 50 ms
     * step that is i modulo the wheel's size. */
    evio_conn *wheel[EVIO__WHEEL_SLOTS];
    size_t wheel_count;
    int64_t wheel_step; /* next step to look at: time / EVIO__WHEEL_NS */
    bool listeners_closed; /* draining: this loop closed its listeners */

    /* UDP sessions: by remote address, and least recently heard first. */
    evio__udp_session **udp_table;
    size_t udp_cap, udp_len;
    evio__udp_session *udp_oldest, *udp_newest;

    bool accept_paused;
    int64_t accept_retry_at;

    char rbuf[EVIO__READ_BUFFER];
};

/* The output queue's fast paths, inline because every reply takes them:
 * a block from the cache, filled, sent whole and given back. */
static inline int evio__outq_append(evio__loop *l, evio__outq **qp, const void *p, size_t n)
{
    evio__outq *q = *qp;
    if (!q && n <= EVIO__OUTQ_BLOCK && (q = l->spare)) {
        l->spare = q->next;
        l->nspare--;
        q->head = q->tail = 0;
        q->next = NULL;
        *qp = q;
    } else if (!q || q->cap - q->tail < n) {
        return evio__outq_append_slow(l, qp, p, n);
    }
    memcpy(q->data + q->tail, p, n);
    q->tail += n;
    return 0;
}

static inline void evio__outq_free(evio__loop *l, evio__outq **qp)
{
    evio__outq *q = *qp;
    if (q && !q->counted && !q->next && q->cap == EVIO__OUTQ_BLOCK &&
        l->nspare < EVIO__OUTQ_CACHE) {
        q->next = l->spare;
        l->spare = q;
        l->nspare++;
        *qp = NULL;
    } else if (q) {
        evio__outq_free_slow(l, qp);
    }
}

typedef struct evio__resolver evio__resolver;

struct evio_server {
    const evio_events *ev;
    atomic_uint balance_next; /* round robin position / random state */
    atomic_int accepted_open; /* for max_conns */
    atomic_int callers;       /* other threads inside evio_* calls on it */
    atomic_int draining;
    _Atomic int64_t drain_deadline;
    int64_t udp_idle_ns;      /* < 0: never */
    int high_water;           /* bytes; < 0: off */
    int write_ms;             /* < 0: off */
    pthread_mutex_t resolver_lock;
    evio__resolver *resolver; /* started on the first dial of a name */
    evio__listener *listeners;
    size_t nlisteners;
    evio__loop *loops;
    int nloops;
    atomic_int shutdown; /* asked by an action or evio_server_shutdown() */
    int64_t tick_due;    /* monotonic ns; 0 when there is no tick */
};

int64_t evio__now_ns(void);

int evio__loop_init(evio__loop *l, evio_server *srv, int index);
void evio__loop_destroy(evio__loop *l);
int evio__loop_run(evio__loop *l);
int evio__loop_watch(evio__loop *l, int fd, int kind, void *ptr, unsigned mask);
int evio__loop_rewatch(evio__loop *l, int fd, unsigned old_mask, unsigned new_mask);
void evio__loop_unwatch(evio__loop *l, int fd, unsigned old_mask);
int evio__loop_listen(evio__loop *l, evio__listener *ln, bool on);
void evio__loop_pause_accept(evio__loop *l);
void evio__loop_resume_accept(evio__loop *l);
void evio__loop_process_wakes(evio__loop *l);
void evio__loop_signal(evio__loop *l);
void evio__loop_mark_dirty(evio__loop *l, evio_conn *c);
evio__loop *evio__loop_current(const evio_server *srv);
uint64_t evio__loop_next_id(evio__loop *l); /* under l->lock */
void evio__loop_bury(evio__loop *l);
void evio__loop_settle(evio__loop *l); /* completion mode: as the loop stops */

/* dialing (dial.c) and resolving (resolver.c) */
typedef struct evio__resolved {
    struct evio__resolved *next;
    uint64_t id;
    int err;
    struct sockaddr_storage sa;
    socklen_t len;
} evio__resolved;

void evio__dial_process(evio__loop *l);
void evio__dial_ready(evio_conn *c);
void evio__dial_fail(evio_conn *c, int err);
void evio__dial_expire(evio__loop *l, int64_t now);
void evio__dial_close_all(evio__loop *l);
int evio__resolver_submit(evio_server *srv, evio__loop *l, evio_conn *c);
void evio__resolver_stop(evio_server *srv);

/* connections (conn.c) */
void evio__accept(evio__loop *l, evio__listener *ln);
void evio__conn_ready(evio_conn *c, unsigned mask);
void evio__conn_complete(evio_conn *c, const evio__event *e); /* completion mode */
void evio__conn_note_result(evio_conn *c, const evio__event *e);
void evio__accept_complete(evio__loop *l, evio__listener *ln, const evio__event *e);
void evio__conn_use_ring(evio_conn *c); /* completion mode: the backend does c's I/O */
void evio__conn_after(evio_conn *c, evio_action a);
void evio__conn_close(evio_conn *c, int err);
void evio__conn_shutdown(evio_conn *c);
void evio__conn_update(evio_conn *c);
bool evio__conn_retry_write(evio_conn *c);
void evio__conn_link(evio__loop *l, evio_conn *c);
void evio__conn_unlink(evio_conn *c);
void evio__conn_close_fd(evio_conn *c, int fd); /* now, or after its last results */
void evio__conn_fail(evio_conn *c, int err);
int evio__conn_queue(evio_conn *c, const void *buf, size_t len);
bool evio__translate_open(evio_conn *c, const evio_info *info);
void evio__conn_free(evio_conn *c);
void evio__conn_open(evio__loop *l, evio__listener *ln, int fd, const struct sockaddr *ra,
                     socklen_t rlen);

/* server-wide (server.c) */
void evio__server_act(evio_server *srv, evio_action a);
/* Admit a new peer (accepted, or a UDP peer without a session): max_conns
 * and accept_filter in one atomic step.  true: it holds a slot in
 * accepted_open until it closes; false: counted as refused or filtered. */
bool evio__admit(evio__loop *l, const struct sockaddr *ra, socklen_t rlen);

/* Around every public call other threads make on a server: evio_serve
 * frees the server only once no such call is still inside it. */
static inline evio_server *evio__enter(evio_server *srv)
{
    if (srv)
        atomic_fetch_add(&srv->callers, 1);
    return srv;
}
static inline void evio__leave(evio_server *srv)
{
    if (srv)
        atomic_fetch_sub(&srv->callers, 1);
}
evio__loop *evio__server_pick_loop(evio_server *srv);

/* A connection accepted on loop 0 for another loop. */
typedef struct evio__handoff {
    struct evio__handoff *next;
    int fd;
    evio__listener *ln;
    struct sockaddr_storage ra;
    socklen_t rlen;
} evio__handoff;

/* timeouts: idle, write, deadlines (idle.c) */
void evio__idle_arm(evio_conn *c); /* after any timeout setting changed */
void evio__idle_disarm(evio_conn *c);
int64_t evio__idle_expire(evio__loop *l, int64_t now); /* next due or -1 */
int evio__conn_write_ms(const evio_conn *c);           /* < 0: none */

/* UDP (udp.c) */
void evio__udp_read(evio__loop *l, evio__listener *ln);
int evio__udp_write(evio_conn *c, const void *buf, size_t len);
void evio__udp_forget(evio_conn *c);
int64_t evio__udp_expire(evio__loop *l, int64_t now); /* next deadline or -1 */
void evio__udp_free_table(evio__loop *l);
/* Draining: a session has nothing to finish, so it ends with its socket. */
void evio__udp_close_sessions(evio__loop *l, const evio__listener *ln);

#endif /* EVIO_INTERNAL_H */
