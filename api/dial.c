/* dial.c — outbound connections.
 *
 * evio_dial() may run on any thread, so it only creates the connection,
 * gives it an id (so evio_wake works at once) and queues it for its loop.
 * The loop starts it: a numeric address is connected straight away, a name
 * goes to the resolver pool first.  The connect completes when the socket
 * turns writable; either way, opened() fires once and closed() follows. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <unistd.h>

#include "internal.h"
#include "sys.h"

static int dial(evio_server *srv, const char *addr, int timeout_ms, void *ctx, uint64_t *id);

int evio_dial(evio_server *srv, const char *addr, int timeout_ms, void *ctx, uint64_t *id)
{
    int err = dial(evio__enter(srv), addr, timeout_ms, ctx, id);
    evio__leave(srv);
    return err;
}

static int dial(evio_server *srv, const char *addr, int timeout_ms, void *ctx, uint64_t *id)
{
    if (!srv || !addr || !id || timeout_ms < 0)
        return EVIO_EINVAL;
    if (atomic_load(&srv->shutdown) || atomic_load(&srv->draining))
        return EVIO_ESHUTDOWN;
    evio__addr a;
    int err = evio__addr_parse(addr, &a, false);
    if (err)
        return err;
    if (a.socktype != SOCK_STREAM)
        return EVIO_EUDP;
    if (a.anyhost)
        return EVIO_EADDR; /* "tcp://:80": every address to serve, nowhere to dial */

    evio_conn *c = evio__sys.calloc(1, sizeof *c);
    evio__addr *dial = evio__sys.malloc(sizeof *dial);
    if (!c || !dial || !evio__conn_rare_get(c)) {
        if (c)
            evio__sys.free(c->rare);
        evio__sys.free(c);
        evio__sys.free(dial);
        return -ENOMEM;
    }
    *dial = a;
    evio__loop *l = evio__loop_current(srv);
    if (!l)
        l = evio__server_pick_loop(srv);
    c->loop = l;
    c->fd = -1;
    c->listener = -1;
    c->flags = EVIO__CONN_CONNECTING;
    if (a.sa.ss_family == AF_UNIX)
        c->flags |= EVIO__CONN_UNIX;
    c->ctx = ctx;
    c->rare->dial = dial;
    c->rare->dial_timer.due = timeout_ms ? evio__now_ns() + (int64_t)timeout_ms * 1000000 : 0;

    pthread_mutex_lock(&l->lock);
    if (!l->closed) {
        c->id = evio__loop_next_id(l);
        err = evio__idmap_put(&l->ids, c->id, c);
    } else {
        err = EVIO_ESHUTDOWN;
    }
    if (!err) {
        /* Read before c is the loop's: it may fail the dial and free c
         * as soon as the lock is let go (ASan, a faulted socket()). */
        *id = c->id;
        c->qnext = l->dialq;
        l->dialq = c;
        /* Counts on its loop from now, as a handoff does, so that
         * least-connections sees dials the loop has not started yet. */
        atomic_fetch_add(&l->load, 1);
    }
    pthread_mutex_unlock(&l->lock);
    if (err) {
        evio__sys.free(dial);
        evio__sys.free(c->rare);
        evio__sys.free(c);
        return err;
    }
    evio__loop_signal(l);
    return 0;
}

static void dial_connect(evio_conn *c, const struct sockaddr *sa, socklen_t len)
{
    int fd = evio__sys.socket(sa->sa_family, SOCK_STREAM, 0);
    if (fd < 0) {
        evio__dial_fail(c, -errno);
        return;
    }
    int one = 1;
    if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0 || fcntl(fd, F_SETFL, O_NONBLOCK) < 0)
        goto fail;
    if (sa->sa_family != AF_UNIX)
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
#ifdef SO_NOSIGPIPE
    setsockopt(fd, SOL_SOCKET, SO_NOSIGPIPE, &one, sizeof one);
#endif
    /* A connect that completes at once (unix sockets) is still finished by
     * the writable event, so there is one path. */
    if (evio__sys.connect(fd, sa, len) < 0 && errno != EINPROGRESS)
        goto fail;
    int err = evio__loop_watch(c->loop, fd, EVIO__SLOT_CONN, c, EVIO__WRITE);
    if (err) {
        evio__sys.close(fd);
        evio__dial_fail(c, err);
        return;
    }
    c->fd = fd;
    c->interest = EVIO__WRITE;
    return;
fail:;
    int e = -errno;
    evio__sys.close(fd);
    evio__dial_fail(c, e);
}

/* Start one dial taken off the queue. */
static void dial_start(evio__loop *l, evio_conn *c)
{
    atomic_fetch_sub(&l->load, 1); /* conn_link counts it again */
    evio__conn_link(l, c);
    if (c->rare->dial_timer.due && evio__heap_push(&l->timers, &c->rare->dial_timer) != 0) {
        evio__dial_fail(c, -ENOMEM);
        return;
    }
    if (!c->rare->dial->unresolved) {
        dial_connect(c, (const struct sockaddr *)&c->rare->dial->sa, c->rare->dial->len);
        return;
    }
    int err = evio__resolver_submit(l->srv, l, c);
    if (err)
        evio__dial_fail(c, err);
}

static evio_conn *lookup(evio__loop *l, uint64_t id)
{
    pthread_mutex_lock(&l->lock);
    evio_conn *c = evio__idmap_get(&l->ids, id);
    pthread_mutex_unlock(&l->lock);
    return c;
}

void evio__dial_process(evio__loop *l)
{
    pthread_mutex_lock(&l->lock);
    evio_conn *q = l->dialq;
    evio__resolved *answers = l->resolved;
    l->dialq = NULL;
    l->resolved = NULL;
    pthread_mutex_unlock(&l->lock);

    evio_conn *fifo = NULL; /* the queue is newest first: start oldest first */
    while (q) {
        evio_conn *next = q->qnext;
        q->qnext = fifo;
        fifo = q;
        q = next;
    }
    while (fifo) {
        evio_conn *c = fifo;
        fifo = c->qnext;
        c->qnext = NULL;
        dial_start(l, c);
    }
    while (answers) {
        evio__resolved *r = answers;
        answers = r->next;
        evio_conn *c = lookup(l, r->id);
        /* Gone (timed out) or already connecting: the answer is stale. */
        if (c && (c->flags & EVIO__CONN_CONNECTING) && c->fd < 0 && !(c->flags & EVIO__CONN_DEAD)) {
            if (r->err) {
                evio__dial_fail(c, r->err);
            } else {
                evio__addr *d = c->rare->dial;
                d->sa = r->sa;
                d->len = r->len;
                evio__addr_set_port(d, d->port);
                dial_connect(c, (const struct sockaddr *)&d->sa, d->len);
            }
        }
        evio__sys.free(r);
    }
}

static void dial_done(evio_conn *c)
{
    evio__heap_remove(&c->loop->timers, &c->rare->dial_timer);
    c->flags &= ~EVIO__CONN_CONNECTING;
    evio__sys.free(c->rare->dial);
    c->rare->dial = NULL;
}

void evio__dial_fail(evio_conn *c, int err)
{
    dial_done(c);
    c->flags |= EVIO__CONN_CLOSING; /* output written in opened() goes nowhere */
    const evio_events *ev = c->loop->srv->ev;
    if (ev->opened) {
        evio_info info = {.listener = -1, .dialed = 1, .dial_error = err};
        evio__server_act(c->loop->srv, ev->opened(c, &info));
    }
    evio__conn_close(c, err);
}

/* The socket turned writable (or failed) while connecting. */
void evio__dial_ready(evio_conn *c)
{
    int soerr = 0;
    socklen_t slen = sizeof soerr;
    if (evio__sys.getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &soerr, &slen) < 0)
        soerr = errno;
    if (soerr) {
        evio__dial_fail(c, -soerr);
        return;
    }
    dial_done(c);
    if (c->loop->completion) /* connected: the backend does its I/O now */
        evio__conn_use_ring(c);
    const evio_events *ev = c->loop->srv->ev;
    if (ev->idle_timeout_ms > 0) { /* opened() may still change it */
        c->idle_ms = ev->idle_timeout_ms;
        c->last_input = c->loop->ms;
        evio__idle_arm(c);
    }
    evio_action a = EVIO_NONE;
    if (ev->opened || ev->translate) {
        struct sockaddr_storage local, remote;
        socklen_t llen = sizeof local, rlen = sizeof remote;
        if (getsockname(c->fd, (struct sockaddr *)&local, &llen) < 0)
            llen = 0;
        if (getpeername(c->fd, (struct sockaddr *)&remote, &rlen) < 0)
            rlen = 0;
        evio_info info = {
            .listener = -1,
            .local = (const struct sockaddr *)&local,
            .local_len = llen,
            .remote = (const struct sockaddr *)&remote,
            .remote_len = rlen,
            .dialed = 1,
        };
        if (ev->translate && !evio__translate_open(c, &info))
            return;
        a = ev->opened ? ev->opened(c, &info) : EVIO_NONE;
    }
    evio__conn_after(c, a); /* now watching for input, output flushed */
    if (c->wake_deferred && !(c->flags & EVIO__CONN_DEAD)) {
        c->wake_deferred = false;
        evio__conn_after(c, ev->data ? ev->data(c, NULL, 0) : EVIO_NONE);
    }
}

void evio__dial_expire(evio__loop *l, int64_t now)
{
    evio__timer *t;
    while ((t = evio__heap_top(&l->timers)) && t->due <= now) {
        evio_conn *c = ((evio__conn_rare *)((char *)t - offsetof(evio__conn_rare, dial_timer)))->conn;
        evio__count(&l->stats.timeouts, 1);
        evio__dial_fail(c, -ETIMEDOUT); /* removes t from the heap */
    }
}

/* Shutdown: dials not started yet and dials in flight end as failed. */
void evio__dial_close_all(evio__loop *l)
{
    pthread_mutex_lock(&l->lock);
    l->closed = true;
    evio_conn *q = l->dialq;
    l->dialq = NULL;
    pthread_mutex_unlock(&l->lock);
    while (q) {
        evio_conn *c = q;
        q = c->qnext;
        c->qnext = NULL;
        atomic_fetch_sub(&l->load, 1); /* conn_link counts it again */
        evio__conn_link(l, c);
        evio__dial_fail(c, EVIO_ESHUTDOWN);
    }
    for (evio_conn *c = l->conns, *next; c; c = next) {
        next = c->next;
        if (c->flags & EVIO__CONN_CONNECTING)
            evio__dial_fail(c, EVIO_ESHUTDOWN);
    }
}
