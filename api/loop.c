/* loop.c — one event loop: the fd table, the poll/dispatch cycle, timers. */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"
#include "sys.h"

/* The loop this thread runs, so evio_dial() from a callback stays on it. */
static _Thread_local evio__loop *current_loop;

evio__loop *evio__loop_current(const evio_server *srv)
{
    return current_loop && current_loop->srv == srv ? current_loop : NULL;
}

uint64_t evio__loop_next_id(evio__loop *l)
{
    /* Unique per server: loop i hands out i+1, i+1+n, i+1+2n, ... */
    return l->next_seq++ * (uint64_t)l->srv->nloops + (uint64_t)l->index + 1;
}

/* Make the loop's poll return; the first caller since the last drain pays. */
void evio__loop_signal(evio__loop *l)
{
    if (!atomic_exchange(&l->wake_signaled, 1))
        evio__backend.wake(l->poller);
}

void evio__loop_mark_dirty(evio__loop *l, evio_conn *c)
{
    c->flags |= EVIO__CONN_DIRTY;
    c->qnext = l->dirty;
    l->dirty = c;
}

/* Bring connections changed from outside their own events up to date. */
static void flush_dirty(evio__loop *l)
{
    while (l->dirty) {
        evio_conn *c = l->dirty;
        l->dirty = c->qnext;
        c->qnext = NULL;
        c->flags &= ~EVIO__CONN_DIRTY;
        evio__conn_update(c);
    }
}

int64_t evio__now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int evio__loop_init(evio__loop *l, evio_server *srv, int index)
{
    l->srv = srv;
    l->index = index;
    l->completion = (evio__backend.caps & EVIO__CAP_COMPLETION) != 0;
    atomic_init(&l->wake_signaled, 0);
    int err = pthread_mutex_init(&l->lock, NULL);
    if (err)
        return -err;
    l->poller = evio__backend.create();
    if (!l->poller) {
        err = errno == ENOSYS || errno == EPERM ? EVIO_EUNAVAILABLE : errno ? -errno : EVIO_EBACKEND;
        pthread_mutex_destroy(&l->lock);
        return err;
    }
    return 0;
}

/* A dead connection's memory, and in completion mode the fd it held for
 * its last results (evio__conn_close). */
static void free_conn(evio_conn *c)
{
    if ((c->flags & EVIO__CONN_RING) && c->fd >= 0)
        evio__sys.close(c->fd);
    evio__conn_free(c);
}

void evio__loop_destroy(evio__loop *l)
{
    if (l->poller)
        evio__backend.destroy(l->poller); /* no result comes after this */
    l->poller = NULL;
    while (l->limbo) {
        evio_conn *c = l->limbo;
        l->limbo = c->next;
        free_conn(c);
    }
    pthread_mutex_destroy(&l->lock);
    evio__idmap_free(&l->ids);
    evio__heap_free(&l->timers);
    while (l->resolved) { /* answers that came after the loop stopped */
        evio__resolved *r = l->resolved;
        l->resolved = r->next;
        evio__sys.free(r);
    }
    while (l->sendq) { /* e.g. evio_send from closed() during shutdown */
        evio__sendreq *r = l->sendq;
        l->sendq = r->next;
        evio__sys.free(r);
    }
    evio__sys.free(l->slots);
    evio__sys.free(l->wakeq);
    evio__sys.free(l->wakeq_spare);
    evio__sys.free(l->woken);
    evio__udp_free_table(l);
    evio__outq_cache_free(l);
}

static int ensure_slot(evio__loop *l, int fd)
{
    if (fd < l->nslots)
        return 0;
    int n = l->nslots ? l->nslots : 256;
    while (n <= fd)
        n *= 2;
    evio__slot *s = evio__sys.realloc(l->slots, (size_t)n * sizeof *s);
    if (!s)
        return -ENOMEM;
    memset(s + l->nslots, 0, (size_t)(n - l->nslots) * sizeof *s);
    l->slots = s;
    l->nslots = n;
    return 0;
}

int evio__loop_watch(evio__loop *l, int fd, int kind, void *ptr, unsigned mask)
{
    int err = ensure_slot(l, fd);
    if (!err && mask)
        err = evio__sys.set(l->poller, fd, 0, mask);
    if (err)
        return err;
    l->slots[fd] = (evio__slot){.ptr = ptr, .since = (uint32_t)l->batch, .kind = (uint32_t)kind};
    return 0;
}

int evio__loop_rewatch(evio__loop *l, int fd, unsigned old_mask, unsigned new_mask)
{
    return evio__sys.set(l->poller, fd, old_mask, new_mask);
}

void evio__loop_unwatch(evio__loop *l, int fd, unsigned old_mask)
{
    if (old_mask)
        evio__sys.set(l->poller, fd, old_mask, 0);
    if (fd < l->nslots)
        l->slots[fd] = (evio__slot){0};
}

/* Watch listener ln for new connections, or stop: readiness for UDP and
 * readiness backends; a completion backend's accept, which ends only with
 * its last result (ln->armed). */
int evio__loop_listen(evio__loop *l, evio__listener *ln, bool on)
{
    if (!l->completion || ln->addr.socktype != SOCK_STREAM) {
        if (on == ln->active)
            return 0;
        int err = evio__loop_rewatch(l, ln->fd, on ? 0 : EVIO__READ, on ? EVIO__READ : 0);
        if (!err)
            ln->active = on;
        return err;
    }
    ln->active = on;
    if (on && !ln->armed) {
        int err = evio__backend.accept(l->poller, ln->fd, ln);
        if (err) {
            ln->active = false;
            return err;
        }
        ln->armed = true;
    } else if (!on && ln->armed) {
        evio__backend.cancel(l->poller, ln, EVIO__OP_ACCEPT);
    }
    return 0;
}

/* accept() failed for want of fds or memory: under level triggering the
 * listener would stay ready and spin the loop, so stop watching it and try
 * again on a timer or as soon as one of our connections closes. */
void evio__loop_pause_accept(evio__loop *l)
{
    evio_server *srv = l->srv;
    for (size_t i = 0; i < srv->nlisteners; i++) {
        evio__listener *ln = &srv->listeners[i];
        if (ln->loop == l->index && ln->addr.socktype == SOCK_STREAM && ln->active)
            evio__loop_listen(l, ln, false);
    }
    l->accept_paused = true;
    l->accept_retry_at = evio__now_ns() + EVIO__ACCEPT_RETRY_NS;
}

void evio__loop_resume_accept(evio__loop *l)
{
    evio_server *srv = l->srv;
    bool all = true;
    for (size_t i = 0; i < srv->nlisteners; i++) {
        evio__listener *ln = &srv->listeners[i];
        if (ln->loop != l->index || ln->active || ln->fd < 0)
            continue;
        if (evio__loop_listen(l, ln, true) != 0)
            all = false;
    }
    /* A listener the poller would not take back (epoll_ctl: ENOMEM) stays
     * paused and is tried again on the retry timer; unpaused, nothing would
     * ever watch it again and the server would stop accepting (fault run). */
    l->accept_paused = !all;
    if (!all)
        l->accept_retry_at = evio__now_ns() + EVIO__ACCEPT_RETRY_NS;
}

static void fire_tick(evio_server *srv, int64_t now)
{
    int64_t delay = 0;
    evio_action a = srv->ev->tick(srv, &delay);
    if (delay < EVIO__MIN_TICK_NS)
        delay = EVIO__MIN_TICK_NS;
    /* From when it was due, so the period does not drift; but a loop that
     * fell a whole period behind starts afresh rather than firing a burst. */
    int64_t from = srv->tick_due <= now - delay ? now : srv->tick_due;
    srv->tick_due = delay > INT64_MAX - from ? INT64_MAX : from + delay; /* saturate */
    evio__server_act(srv, a);
}

/* Draining: close this loop's listeners once; past the deadline, close
 * what is still open. */
static void drain_step(evio__loop *l, int64_t now)
{
    evio_server *srv = l->srv;
    if (!l->listeners_closed) {
        for (size_t i = 0; i < srv->nlisteners; i++) {
            evio__listener *ln = &srv->listeners[i];
            if (ln->loop != l->index || ln->fd < 0)
                continue;
            if (ln->addr.socktype == SOCK_DGRAM)
                evio__udp_close_sessions(l, ln);
            evio__loop_listen(l, ln, false);
            evio__loop_unwatch(l, ln->fd, 0);
            evio__listener_close(ln);
        }
        l->listeners_closed = true;
        l->accept_paused = false;
    }
    if (now >= atomic_load(&srv->drain_deadline))
        while (l->conns)
            evio__conn_close(l->conns, -ETIMEDOUT);
}

/* A draining loop is done when nothing is open or on its way to it. */
static bool drained(evio__loop *l)
{
    if (!atomic_load(&l->srv->draining) || !l->listeners_closed || l->conns)
        return false;
    pthread_mutex_lock(&l->lock);
    bool empty = !l->dialq && !l->inbox && !l->sendq;
    pthread_mutex_unlock(&l->lock);
    return empty;
}

/* Fire what is due; return how long poll may sleep (-1: indefinitely). */
static int64_t run_timers(evio__loop *l)
{
    evio_server *srv = l->srv;
    bool ticks = l->index == 0 && srv->tick_due;
    bool draining = atomic_load(&srv->draining);
    if (!ticks && !l->accept_paused && !evio__heap_top(&l->timers) && !l->udp_oldest &&
        !l->wheel_count && !draining)
        return -1;
    int64_t now = l->now, timeout = -1;
    if (draining)
        drain_step(l, now);
    if (l->accept_paused && now >= l->accept_retry_at)
        evio__loop_resume_accept(l);
    evio__dial_expire(l, now);
    if (ticks && now >= srv->tick_due)
        fire_tick(srv, now);
    flush_dirty(l); /* tick and expiry callbacks may have written */
    if (ticks)
        timeout = srv->tick_due - now;
    if (l->accept_paused && (timeout < 0 || l->accept_retry_at - now < timeout))
        timeout = l->accept_retry_at - now;
    const evio__timer *t = evio__heap_top(&l->timers);
    if (t && (timeout < 0 || t->due - now < timeout))
        timeout = t->due - now;
    int64_t due = evio__udp_expire(l, now);
    if (due >= 0 && (timeout < 0 || due - now < timeout))
        timeout = due - now;
    due = evio__idle_expire(l, now);
    if (due >= 0 && (timeout < 0 || due - now < timeout))
        timeout = due - now;
    if (draining && (timeout < 0 || atomic_load(&srv->drain_deadline) - now < timeout))
        timeout = atomic_load(&srv->drain_deadline) - now;
    return timeout < 0 ? 0 : timeout;
}

void evio__loop_bury(evio__loop *l)
{
    while (l->graves) {
        evio_conn *c = l->graves;
        l->graves = c->next;
        if ((c->flags & EVIO__CONN_RING) && c->interest) { /* results still to come */
            c->next = l->limbo;
            l->limbo = c;
        } else {
            free_conn(c);
        }
    }
    for (evio_conn **p = &l->limbo; *p;) {
        evio_conn *c = *p;
        if (c->interest) {
            p = &c->next;
        } else {
            *p = c->next;
            free_conn(c);
        }
    }
}

/* Completion mode: a result that comes as the loop stops ends what it
 * ends and nothing more (an accepted fd is closed). */
static void loop_note_result(evio__loop *l, const evio__event *e)
{
    (void)l;
    if (e->op == EVIO__OP_ACCEPT) {
        evio__listener *ln = e->ctx;
        if (e->res >= 0)
            evio__sys.close(e->res);
        if (!e->more)
            ln->armed = false;
    } else if (e->op) {
        evio__conn_note_result(e->ctx, e);
    }
}

/* Completion mode, on the loop's thread as it stops: cancel what is still
 * outstanding and take the last results, so that nothing the backend
 * started outlives the loop (an fd accepted meanwhile, a listener the ring
 * holds open, a send reading a freed queue).  Bounded in time; what never
 * answers is left to destroy(). */
void evio__loop_settle(evio__loop *l)
{
    if (!l->completion)
        return;
    evio_server *srv = l->srv;
    int armed = 0;
    for (size_t i = 0; i < srv->nlisteners; i++) {
        evio__listener *ln = &srv->listeners[i];
        if (ln->loop == l->index && ln->armed) {
            evio__loop_listen(l, ln, false);
            armed++;
        }
    }
    int64_t end = evio__now_ns() + 2000000000;
    while ((l->limbo || armed) && evio__now_ns() < end) {
        int n = evio__sys.poll(l->poller, l->fired, EVIO__MAX_EVENTS, 50000000);
        if (n < 0)
            break;
        for (int i = 0; i < n; i++)
            loop_note_result(l, &l->fired[i]);
        evio__loop_bury(l);
        armed = 0;
        for (size_t i = 0; i < srv->nlisteners; i++)
            armed += srv->listeners[i].loop == l->index && srv->listeners[i].armed;
    }
}

/* Completion mode: a result for a listener or a connection. */
static void loop_complete(evio__loop *l, const evio__event *e)
{
    if (e->op == EVIO__OP_ACCEPT)
        evio__accept_complete(l, e->ctx, e);
    else
        evio__conn_complete(e->ctx, e);
}

int evio__loop_run(evio__loop *l)
{
    evio_server *srv = l->srv;
    current_loop = l;
    l->now = evio__now_ns();
    l->ms = (evio__ms)(l->now / 1000000);
    while (!atomic_load(&srv->shutdown)) {
        int64_t timeout = run_timers(l);
        if (atomic_load(&srv->shutdown) || drained(l))
            break;
        int n = evio__sys.poll(l->poller, l->fired, EVIO__MAX_EVENTS, timeout);
        if (n < 0) { /* a broken poller fails fast instead of spinning */
            current_loop = NULL;
            return n;
        }
        l->batch++;
        l->now = evio__now_ns();
        l->ms = (evio__ms)(l->now / 1000000);
        int i = 0;
        const bool completion = l->completion;
        for (; i < n && !atomic_load(&srv->shutdown); i++) {
            const evio__event *e = &l->fired[i];
            if (completion && e->op) {
                loop_complete(l, e);
                continue;
            }
            if (e->fd < 0 || e->fd >= l->nslots)
                continue;
            const evio__slot *s = &l->slots[e->fd];
            /* Empty: closed by an earlier callback in this batch.  Filled in
             * this batch: the fd number was reused and the event is stale. */
            if (!s->ptr || s->since == (uint32_t)l->batch)
                continue;
            if (s->kind == EVIO__SLOT_LISTENER) {
                evio__listener *ln = s->ptr;
                if (ln->addr.socktype == SOCK_DGRAM)
                    evio__udp_read(l, ln);
                else
                    evio__accept(l, ln);
            } else
                evio__conn_ready(s->ptr, e->mask);
        }
        for (; i < n && l->completion; i++) /* shut down mid-batch: take note */
            loop_note_result(l, &l->fired[i]);
        if (atomic_load(&l->wake_signaled))
            evio__loop_process_wakes(l);
        flush_dirty(l);
        evio__loop_bury(l);
    }
    current_loop = NULL;
    return 0;
}
