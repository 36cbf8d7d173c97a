/* wake.c — evio_wake(): any thread asks the loop to fire data(c, NULL, 0).
 *
 * A woken id is queued at most once until the loop drains the queue (the
 * coalescing), and the poller is woken only by the first wake after a drain,
 * so a thousand wakes cost one system call. */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "sys.h"

static int enqueue(evio__loop *l, uint64_t id)
{
    if (l->wakeq_len == l->wakeq_cap) {
        size_t cap = l->wakeq_cap ? l->wakeq_cap * 2 : 64;
        if (cap > l->woken_cap) { /* the drain needs as much room */
            evio_conn **w = evio__sys.realloc(l->woken, cap * sizeof *w);
            if (!w)
                return -ENOMEM;
            l->woken = w;
            l->woken_cap = cap;
        }
        uint64_t *q = evio__sys.realloc(l->wakeq, cap * sizeof *q);
        if (!q)
            return -ENOMEM;
        l->wakeq = q;
        l->wakeq_cap = cap;
    }
    l->wakeq[l->wakeq_len++] = id;
    return 0;
}

static evio__loop *loop_of(evio_server *srv, uint64_t id)
{
    return &srv->loops[(id - 1) % (uint64_t)srv->nloops];
}

static int wake(evio_server *srv, uint64_t id);

int evio_wake(evio_server *srv, uint64_t id)
{
    int err = wake(evio__enter(srv), id);
    evio__leave(srv);
    return err;
}

static int wake(evio_server *srv, uint64_t id)
{
    if (!srv || !id)
        return EVIO_ENOTFOUND;
    evio__loop *l = loop_of(srv, id);
    int err = 0;
    pthread_mutex_lock(&l->lock);
    evio_conn *c = evio__idmap_get(&l->ids, id);
    if (!c)
        err = EVIO_ENOTFOUND;
    else if (c->is_udp)
        err = EVIO_EUDP;
    else if (!c->wake_queued && (err = enqueue(l, id)) == 0)
        c->wake_queued = true;
    pthread_mutex_unlock(&l->lock);
    if (!err)
        evio__loop_signal(l);
    return err;
}

int evio_server_shutdown(evio_server *srv)
{
    if (!srv)
        return EVIO_EINVAL;
    evio__server_act(evio__enter(srv), EVIO_SHUTDOWN);
    evio__leave(srv);
    return 0;
}

/* Open the connections loop 0 accepted for this loop, oldest first. */
static void drain_inbox(evio__loop *l)
{
    pthread_mutex_lock(&l->lock);
    evio__handoff *h = l->inbox, *fifo = NULL;
    l->inbox = NULL;
    pthread_mutex_unlock(&l->lock);
    while (h) {
        evio__handoff *next = h->next;
        h->next = fifo;
        fifo = h;
        h = next;
    }
    while (fifo) {
        evio__handoff *next = fifo->next;
        atomic_fetch_sub(&l->load, 1); /* conn_open counts it again */
        if (atomic_load(&l->srv->shutdown)) {
            atomic_fetch_sub(&l->srv->accepted_open, 1);
            evio__sys.close(fifo->fd);
        } else
            evio__conn_open(l, fifo->ln, fifo->fd, (struct sockaddr *)&fifo->ra, fifo->rlen);
        evio__sys.free(fifo);
        fifo = next;
    }
}

/* Queue a request for the loop owning id, if id is open there now. */
static int send_request(evio_server *srv, uint64_t id, const void *buf, size_t len, bool close)
{
    if (!srv || !id)
        return EVIO_ENOTFOUND;
    if (!buf && len)
        return EVIO_EINVAL;
    evio__sendreq *r = evio__sys.malloc(sizeof *r + len);
    if (!r)
        return -ENOMEM;
    *r = (evio__sendreq){.id = id, .close = close, .len = len};
    if (len)
        memcpy(r->data, buf, len);
    evio__loop *l = loop_of(srv, id);
    pthread_mutex_lock(&l->lock);
    bool known = evio__idmap_get(&l->ids, id) != NULL;
    if (known) { /* in call order, behind what is queued */
        if (l->sendq_tail)
            l->sendq_tail->next = r;
        else
            l->sendq = r;
        l->sendq_tail = r;
    }
    pthread_mutex_unlock(&l->lock);
    if (!known) {
        evio__sys.free(r);
        return EVIO_ENOTFOUND;
    }
    evio__loop_signal(l);
    return 0;
}

int evio_send(evio_server *srv, uint64_t id, const void *buf, size_t len)
{
    int err = send_request(evio__enter(srv), id, buf, len, false);
    evio__leave(srv);
    return err;
}

int evio_close(evio_server *srv, uint64_t id)
{
    int err = send_request(evio__enter(srv), id, NULL, 0, true);
    evio__leave(srv);
    return err;
}

/* Apply what evio_send/evio_close queued: output goes into the
 * connection's buffer (flushed with the dirty list), closes become CLOSE. */
static void drain_sends(evio__loop *l)
{
    pthread_mutex_lock(&l->lock);
    evio__sendreq *r = l->sendq;
    l->sendq = l->sendq_tail = NULL;
    for (evio__sendreq *p = r; p; p = p->next)
        p->conn = evio__idmap_get(&l->ids, p->id);
    pthread_mutex_unlock(&l->lock);
    while (r) {
        evio__sendreq *next = r->next;
        evio_conn *c = r->conn;
        /* After a close (evio_close, EVIO_CLOSE, peer EOF) new bytes are
         * dropped: a writer that never stops must not postpone it forever. */
        /* After our side finished (shutdown_write, reset, a failure), new
         * bytes cannot go out either: they are dropped, and the connection
         * lives on.  A detach is a close for this: bytes queued behind it
         * would go to the fd's new owner unasked, and would postpone the
         * hand-over for as long as a writer keeps sending. */
        unsigned no_more = r->close ? 0
                                    : EVIO__CONN_WSHUT | EVIO__CONN_RESET | EVIO__CONN_FAILED |
                                          EVIO__CONN_DETACHING;
        if (c && !(c->flags & (EVIO__CONN_DEAD | EVIO__CONN_CLOSING | no_more))) {
            if (r->close) {
                c->flags |= EVIO__CONN_CLOSING;
                if (!(c->flags & EVIO__CONN_DIRTY))
                    evio__loop_mark_dirty(l, c);
            } else if (evio_write(c, r->data, r->len) != 0 && !c->is_udp) {
                evio__conn_close(c, -ENOMEM); /* a hole in the stream is worse */
            }
        }
        evio__sys.free(r);
        r = next;
    }
}

void evio__loop_process_wakes(evio__loop *l)
{
    /* Reset before draining: a wake that lands after the drain sees 0 and
     * signals again, so none is lost. */
    atomic_store(&l->wake_signaled, 0);
    drain_inbox(l);
    evio__dial_process(l);
    drain_sends(l);

    pthread_mutex_lock(&l->lock);
    uint64_t *ids = l->wakeq; /* swap in the spare: wakers never wait on callbacks */
    size_t n = l->wakeq_len, cap = l->wakeq_cap;
    l->wakeq = l->wakeq_spare;
    l->wakeq_cap = l->wakeq_spare_cap;
    l->wakeq_len = 0;
    l->wakeq_spare = ids;
    l->wakeq_spare_cap = cap;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        evio_conn *c = evio__idmap_get(&l->ids, ids[i]);
        if (c) {
            c->wake_queued = false;
            l->woken[k++] = c;
        }
    }
    pthread_mutex_unlock(&l->lock);

    /* Connections closed by an earlier callback here are dead, not freed:
     * they are buried after the batch. */
    const evio_events *ev = l->srv->ev;
    for (size_t i = 0; i < k && !atomic_load(&l->srv->shutdown); i++) {
        evio_conn *c = l->woken[i];
        if (c->flags & EVIO__CONN_CONNECTING)
            c->wake_deferred = true; /* data(NULL, 0) after opened() */
        else if (!(c->flags & (EVIO__CONN_DEAD | EVIO__CONN_CLOSING | EVIO__CONN_DETACHING))) {
            evio__count(&l->stats.wakes, 1);
            l->current = c;
            evio__conn_after(c, ev->data ? ev->data(c, NULL, 0) : EVIO_NONE);
            l->current = NULL;
        }
    }
}
