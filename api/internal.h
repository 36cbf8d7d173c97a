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
#include <sys/socket.h>

#include "backend.h"
#include "evio.h"

#define EVIO__READ_BUFFER (64 * 1024) /* one read per ready conn per iteration */
#define EVIO__MAX_EVENTS 1024         /* readiness entries fetched per poll */
#define EVIO__ACCEPT_BUDGET 128       /* accepts per listener per iteration */
#define EVIO__ACCEPT_RETRY_NS 100000000LL /* after EMFILE, try again in 100 ms */
#define EVIO__MIN_TICK_NS 1000000LL       /* ticks below 1 ms would spin */

/* ---------------------------------------------------------------- buffer */

/* A growable byte queue: bytes live in data[head, tail). */
typedef struct evio__buf {
    char *data;
    size_t head, tail, cap;
} evio__buf;

static inline size_t evio__buf_len(const evio__buf *b) { return b->tail - b->head; }
int evio__buf_append(evio__buf *b, const void *p, size_t n);
void evio__buf_consume(evio__buf *b, size_t n);
void evio__buf_free(evio__buf *b);

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
} evio__addr;

int evio__addr_parse(const char *s, evio__addr *out);

/* ---------------------------------------------------------------- listeners */

typedef struct evio__listener {
    int fd;
    int index;       /* position in serve's addrs[] */
    evio__addr addr; /* as bound: port 0 resolved */
    bool active;     /* registered for READ with the poller */
} evio__listener;

int evio__listener_open(evio__listener *l, const evio__addr *a, int index);
void evio__listener_close(evio__listener *l);

/* ---------------------------------------------------------------- loops */

typedef struct evio__loop evio__loop;

enum { EVIO__SLOT_FREE, EVIO__SLOT_LISTENER, EVIO__SLOT_CONN };

/* What the loop knows about one fd.  since is the poll batch in which the
 * slot was filled: readiness fetched in that batch or earlier predates the
 * current owner of the fd number and is dropped (the reused-fd problem). */
typedef struct evio__slot {
    void *ptr;
    uint64_t since;
    int kind;
} evio__slot;

enum {
    EVIO__CONN_CLOSING = 1u,   /* CLOSE asked (or peer EOF): flush, then close */
    EVIO__CONN_DETACHING = 2u, /* DETACH asked: flush, then hand over */
    EVIO__CONN_DEAD = 4u,      /* closed or detached; freed after the batch */
};

struct evio_conn {
    evio__loop *loop;
    uint64_t id;
    int fd;
    int listener;
    unsigned interest; /* what the poller watches: EVIO__READ|EVIO__WRITE */
    unsigned flags;
    bool wake_queued; /* under loop->lock */
    bool is_unix;
    void *ctx;
    evio__buf out;
    evio_conn *prev, *next; /* the loop's list of live connections */
};

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
    size_t nconns;
    uint64_t next_seq;

    pthread_mutex_t lock; /* guards ids and wakeq against other threads */
    evio__idmap ids;
    uint64_t *wakeq, *wakeq_spare;
    size_t wakeq_len, wakeq_cap, wakeq_spare_cap;
    atomic_int wake_signaled; /* the poller has been (or is being) woken */

    bool accept_paused;
    int64_t accept_retry_at;

    char rbuf[EVIO__READ_BUFFER];
};

struct evio_server {
    const evio_events *ev;
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
void evio__loop_pause_accept(evio__loop *l);
void evio__loop_resume_accept(evio__loop *l);
void evio__loop_process_wakes(evio__loop *l);
void evio__loop_bury(evio__loop *l);

/* connections (conn.c) */
void evio__accept(evio__loop *l, evio__listener *ln);
void evio__conn_ready(evio_conn *c, unsigned mask);
void evio__conn_after(evio_conn *c, evio_action a);
void evio__conn_close(evio_conn *c, int err);
void evio__conn_shutdown(evio_conn *c);

/* server-wide (server.c) */
void evio__server_act(evio_server *srv, evio_action a);

#endif /* EVIO_INTERNAL_H */
