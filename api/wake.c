/* wake.c — evio_wake(): any thread asks the loop to fire data(c, NULL, 0).
 *
 * A woken id is queued at most once until the loop drains the queue (the
 * coalescing), and the poller is woken only by the first wake after a drain,
 * so a thousand wakes cost one system call. */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include "internal.h"

static int enqueue(evio__loop *l, uint64_t id)
{
    if (l->wakeq_len == l->wakeq_cap) {
        size_t cap = l->wakeq_cap ? l->wakeq_cap * 2 : 64;
        if (cap > l->woken_cap) { /* the drain needs as much room */
            evio_conn **w = realloc(l->woken, cap * sizeof *w);
            if (!w)
                return -ENOMEM;
            l->woken = w;
            l->woken_cap = cap;
        }
        uint64_t *q = realloc(l->wakeq, cap * sizeof *q);
        if (!q)
            return -ENOMEM;
        l->wakeq = q;
        l->wakeq_cap = cap;
    }
    l->wakeq[l->wakeq_len++] = id;
    return 0;
}

int evio_wake(evio_server *srv, uint64_t id)
{
    if (!srv || !id)
        return EVIO_ENOTFOUND;
    evio__loop *l = &srv->loops[(id - 1) % (uint64_t)srv->nloops];
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
    evio__server_act(srv, EVIO_SHUTDOWN);
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
        if (atomic_load(&l->srv->shutdown))
            close(fifo->fd);
        else
            evio__conn_open(l, fifo->ln, fifo->fd, (struct sockaddr *)&fifo->ra, fifo->rlen);
        free(fifo);
        fifo = next;
    }
}

void evio__loop_process_wakes(evio__loop *l)
{
    /* Reset before draining: a wake that lands after the drain sees 0 and
     * signals again, so none is lost. */
    atomic_store(&l->wake_signaled, 0);
    drain_inbox(l);
    evio__dial_process(l);

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
        else if (!(c->flags & (EVIO__CONN_DEAD | EVIO__CONN_CLOSING | EVIO__CONN_DETACHING)))
            evio__conn_after(c, ev->data ? ev->data(c, NULL, 0) : EVIO_NONE);
    }
}
