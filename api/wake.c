/* wake.c — evio_wake(): any thread asks the loop to fire data(c, NULL, 0).
 *
 * A woken id is queued at most once until the loop drains the queue (the
 * coalescing), and the poller is woken only by the first wake after a drain,
 * so a thousand wakes cost one system call. */
#include "config.h"

#include <errno.h>
#include <stdlib.h>

#include "internal.h"

static int enqueue(evio__loop *l, uint64_t id)
{
    if (l->wakeq_len == l->wakeq_cap) {
        size_t cap = l->wakeq_cap ? l->wakeq_cap * 2 : 64;
        uint64_t *q = realloc(l->wakeq, cap * sizeof *q);
        if (!q)
            return -ENOMEM;
        l->wakeq = q;
        l->wakeq_cap = cap;
    }
    l->wakeq[l->wakeq_len++] = id;
    return 0;
}

/* Make the loop's poll return; the first caller since the last drain pays. */
static void signal_loop(evio__loop *l)
{
    if (!atomic_exchange(&l->wake_signaled, 1))
        evio__backend.wake(l->poller);
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
    else if (!c->wake_queued && (err = enqueue(l, id)) == 0)
        c->wake_queued = true;
    pthread_mutex_unlock(&l->lock);
    if (!err)
        signal_loop(l);
    return err;
}

int evio_server_shutdown(evio_server *srv)
{
    if (!srv)
        return EVIO_EINVAL;
    atomic_store(&srv->shutdown, 1);
    for (int i = 0; i < srv->nloops; i++)
        signal_loop(&srv->loops[i]);
    return 0;
}

void evio__loop_process_wakes(evio__loop *l)
{
    /* Reset before draining: a wake that lands after the drain sees 0 and
     * signals again, so none is lost. */
    atomic_store(&l->wake_signaled, 0);

    pthread_mutex_lock(&l->lock);
    uint64_t *ids = l->wakeq; /* swap in the spare: wakers never wait on callbacks */
    size_t n = l->wakeq_len, cap = l->wakeq_cap;
    l->wakeq = l->wakeq_spare;
    l->wakeq_cap = l->wakeq_spare_cap;
    l->wakeq_len = 0;
    l->wakeq_spare = ids;
    l->wakeq_spare_cap = cap;
    for (size_t i = 0; i < n; i++) {
        evio_conn *c = evio__idmap_get(&l->ids, ids[i]);
        if (c)
            c->wake_queued = false;
    }
    pthread_mutex_unlock(&l->lock);

    const evio_events *ev = l->srv->ev;
    for (size_t i = 0; i < n && !atomic_load(&l->srv->shutdown); i++) {
        /* Only this thread changes the map, so reading it unlocked is safe. */
        evio_conn *c = evio__idmap_get(&l->ids, ids[i]);
        if (!c || (c->flags & (EVIO__CONN_DEAD | EVIO__CONN_CLOSING | EVIO__CONN_DETACHING)))
            continue;
        evio__conn_after(c, ev->data ? ev->data(c, NULL, 0) : EVIO_NONE);
    }
}
