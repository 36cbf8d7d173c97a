/* conn.c — a connection's life: accept, read, write, actions, close, detach.
 *
 * Output is queued by evio_write() and flushed once, after the event that
 * wrote it returns: one send() per event at most, and write interest is
 * armed only when the socket would not take everything, so a request that
 * fits pays one read and one write and nothing else.
 *
 * What a peer can make us hold is bounded here: output past the
 * high-water mark stops reading (conn_high_water), output that makes no
 * progress meets the write timeout (idle.c), and a drained queue is given
 * back at once (buf.c).
 *
 * With a completion backend (EVIO__CONN_RING) the same rules run on
 * results instead of readiness: a receive stays armed while the connection
 * wants input and its results go where read()'s bytes go; the flush hands
 * the queue to one send at a time and its result consumes it.  Closing
 * cancels what is outstanding, and the connection is freed only after the
 * last result (loop->limbo). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <unistd.h>

#include "internal.h"
#include "sys.h"

#ifndef MSG_NOSIGNAL
#define MSG_NOSIGNAL 0 /* the BSDs: SO_NOSIGPIPE is set on the socket instead */
#endif


static const evio_events *events_of(const evio_conn *c)
{
    return c->loop->srv->ev;
}

/* Record what an action asks; the I/O it implies happens in conn_update. */
static void conn_apply(evio_conn *c, evio_action a)
{
    switch (a) {
    case EVIO_NONE:
        break;
    case EVIO_CLOSE:
        c->flags |= EVIO__CONN_CLOSING;
        break;
    case EVIO_DETACH: /* a translated stream is no use to the application */
        c->flags |= (c->flags & EVIO__CONN_TRANSLATED) ? EVIO__CONN_CLOSING : EVIO__CONN_DETACHING;
        break;
    case EVIO_SHUTDOWN:
    case EVIO_DRAIN:
        evio__server_act(c->loop->srv, a);
        break;
    }
}

evio__conn_rare *evio__conn_rare_get(evio_conn *c)
{
    if (!c->rare && (c->rare = evio__sys.calloc(1, sizeof *c->rare))) {
        c->rare->conn = c;
        c->rare->dial_timer.slot = SIZE_MAX;
    }
    return c->rare;
}

void evio__conn_unlink(evio_conn *c)
{
    evio__loop *l = c->loop;
    c->flags |= EVIO__CONN_DEAD;
    if (c->is_udp) {
        evio__udp_forget(c);
    } else if (c->flags & EVIO__CONN_RING) { /* interest stays: what is outstanding */
        unsigned ops = (c->interest & EVIO__WRITE ? EVIO__OP_SEND : 0) |
                       ((c->interest & EVIO__READ) && !(c->flags & EVIO__CONN_RCANCEL) ? EVIO__OP_RECV : 0);
        if (ops)
            evio__backend.cancel(l->poller, c, ops);
        c->flags |= EVIO__CONN_RCANCEL;
    } else if (c->fd >= 0) {
        evio__loop_unwatch(l, c->fd, c->interest);
    }
    evio__idle_disarm(c);
    evio__count(&l->stats.closed, 1);
    if (c->flags & EVIO__CONN_INBOUND)
        atomic_fetch_sub(&l->srv->accepted_open, 1);
    if (!(c->flags & EVIO__CONN_RING))
        c->interest = 0;
    pthread_mutex_lock(&l->lock);
    evio__idmap_del(&l->ids, c->id);
    pthread_mutex_unlock(&l->lock);
    if (c->prev)
        c->prev->next = c->next;
    else
        l->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    l->nconns--;
    atomic_fetch_sub(&l->load, 1);
    c->prev = NULL;
    c->next = l->graves; /* freed after the batch: callers may still hold c */
    l->graves = c;
    if (l->accept_paused) /* an fd just came free */
        evio__loop_resume_accept(l);
}

/* What closed() and detached() return is ignored unless it is EVIO_SHUTDOWN
 * (evio.h): the connection is gone, so CLOSE and DETACH mean nothing, and a
 * drain is asked for with evio_server_drain(), not by ending a connection. */
static void act_after_end(evio_server *srv, evio_action a)
{
    if (a == EVIO_SHUTDOWN)
        evio__server_act(srv, a);
}

/* Close a dead connection's fd.  In completion mode a send or receive the
 * backend has not submitted yet names the socket by fd number, and another
 * loop's accept may take that number the moment it is free: the bytes
 * would go to a stranger.  So while results are outstanding the fd stays
 * open, and the loop closes it with the last one (evio__loop_bury). */
void evio__conn_close_fd(evio_conn *c, int fd)
{
    bool held = (c->flags & EVIO__CONN_RING) && c->interest;
    if (fd >= 0 && !held)
        evio__sys.close(fd);
    c->fd = held ? fd : -1;
}

void evio__conn_close(evio_conn *c, int err)
{
    if (c->flags & EVIO__CONN_DEAD)
        return;
    int fd = c->is_udp ? -1 : c->fd; /* a session's fd is its listener's */
    evio__conn_unlink(c);
    if (fd >= 0 && (c->flags & EVIO__CONN_RESET)) { /* RST, not FIN */
        struct linger lg = {.l_onoff = 1, .l_linger = 0};
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    }
    evio__conn_close_fd(c, fd);
    const evio_events *ev = events_of(c);
    if (ev->closed)
        act_after_end(c->loop->srv, ev->closed(c, err));
}

static void conn_detach(evio_conn *c)
{
    int fd = c->fd;
    const evio_events *ev = events_of(c);
    if (!ev->detached) { /* nobody to hand the fd to */
        evio__conn_close(c, 0);
        return;
    }
    evio__conn_unlink(c);
    c->fd = -1;
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0)
        fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    act_after_end(c->loop->srv, ev->detached(c, fd));
}

/* Completion mode: hand the queue to one send; conn_sent takes its result. */
static void conn_send(evio_conn *c, size_t len)
{
    evio__loop *l = c->loop;
    evio__outq *q = c->out;
    int err = evio__backend.send(l->poller, c->fd, q->data + q->head, len, c);
    if (err) {
        evio__conn_close(c, err);
        return;
    }
    q->pinned = true;
    c->interest |= EVIO__WRITE;
    c->last_output = l->ms; /* the write timeout counts from here */
    /* Onto the wheel for the write timeout.  One already there for it
     * stays (the wheel looks again when its slot comes), so a busy
     * connection pays this about once per timeout, not per send. */
    if ((!c->wslot || c->idle_ms || c->rare || (c->flags & EVIO__CONN_DEADLINE)) &&
        evio__conn_write_ms(c) > 0)
        evio__idle_arm(c);
}

static EVIO__ALWAYS_INLINE void conn_write(evio_conn *c, size_t len);

/* One write attempt, wrapped in prewrite/postwrite. */
static void conn_flush(evio_conn *c)
{
    const evio_events *ev = events_of(c);
    if (ev->prewrite)
        conn_apply(c, ev->prewrite(c, evio__outq_len(c->out)));
    size_t len = evio__outq_len(c->out);
    if (len == 0)
        return;
    if (c->flags & EVIO__CONN_RING)
        conn_send(c, len < EVIO__SEND_MAX ? len : EVIO__SEND_MAX); /* postwrite: with the result */
    else
        conn_write(c, len);
}

/* One send(), and its postwrite. */
static EVIO__ALWAYS_INLINE void conn_write(evio_conn *c, size_t len)
{
    const evio_events *ev = events_of(c);
    ssize_t n = evio__sys.send(c->fd, c->out->data + c->out->head, len, MSG_NOSIGNAL);
    if (n < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
            evio__conn_close(c, -errno);
            return;
        }
        n = 0;
    }
    evio__loop *l = c->loop;
    evio__count(&l->stats.bytes_out, (uint64_t)n);
    if ((size_t)n == len) {
        evio__outq_free(l, &c->out);
    } else { /* progress, or the start of a wait: the write timeout counts from here */
        evio__outq_consume(l, &c->out, (size_t)n);
        evio__outq_held(l, c->out);
        if (n > 0 || !(c->interest & EVIO__WRITE))
            c->last_output = l->ms;
    }
    if (ev->postwrite)
        conn_apply(c, ev->postwrite(c, (size_t)n, evio__outq_len(c->out)));
}

/* Input from the peer, to the translator or the application. */
static EVIO__ALWAYS_INLINE void conn_input(evio_conn *c, const char *in, size_t n)
{
    evio__loop *l = c->loop;
    evio__count(&l->stats.bytes_in, (uint64_t)n);
    if (c->idle_ms)
        c->last_input = l->ms;
    const evio_events *ev = events_of(c);
    if (c->flags & EVIO__CONN_TRANSLATED) {
        int err = c->rare->xl->input(c->rare->xstate, c, in, n);
        if (err)
            evio__conn_fail(c, err);
    } else if (ev->data) {
        conn_apply(c, ev->data(c, in, n));
    }
}

/* The peer is done sending. */
static void conn_eof(evio_conn *c)
{
    const evio_events *ev = events_of(c);
    if (!ev->eof) {
        c->flags |= EVIO__CONN_CLOSING; /* Go evio's way: flush, then close */
    } else {
        c->flags |= EVIO__CONN_RDONE;
        conn_apply(c, ev->eof(c));
    }
}

static void conn_read(evio_conn *c)
{
    evio__loop *l = c->loop;
    ssize_t n = evio__sys.recv(c->fd, l->rbuf, sizeof l->rbuf, 0);
    if (n > 0)
        conn_input(c, l->rbuf, (size_t)n);
    else if (n == 0)
        conn_eof(c);
    else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
        evio__conn_close(c, -errno);
}

/* The states conn_update rarely meets; false when nothing is left to do. */
static bool conn_update_unusual(evio_conn *c)
{
    if (c->flags & (EVIO__CONN_DEAD | EVIO__CONN_CONNECTING))
        return false;
    if (c->flags & EVIO__CONN_FAILED) {
        /* A failing translator's last words (a TLS alert) get one try, so
         * the peer learns why instead of seeing an EOF. */
        size_t len = evio__outq_len(c->out);
        if (c->interest & EVIO__WRITE && (c->flags & EVIO__CONN_RING))
            len = 0; /* a send is in flight: these bytes would overtake it */
        ssize_t n = (c->flags & EVIO__CONN_TRANSLATED) && len
                        ? evio__sys.send(c->fd, c->out->data + c->out->head, len, MSG_NOSIGNAL)
                        : 0;
        if (n > 0)
            evio__count(&c->loop->stats.bytes_out, (uint64_t)n);
        evio__conn_close(c, c->fail_err);
        return false;
    }
    if (c->flags & EVIO__CONN_RESET) { /* queued output is dropped */
        evio__conn_close(c, 0);
        return false;
    }
    if (c->flags & EVIO__CONN_UDP) { /* sent as written; only a close is left to do */
        if (c->flags & (EVIO__CONN_CLOSING | EVIO__CONN_DETACHING))
            evio__conn_close(c, 0);
        return false;
    }
    if ((c->flags & EVIO__CONN_TRANSLATED) && (c->flags & (EVIO__CONN_CLOSING | EVIO__CONN_WSHUT)) &&
        !(c->flags & EVIO__CONN_FINISHED)) {
        c->flags |= EVIO__CONN_FINISHED; /* last words before the last flush */
        const evio_translator *xl = c->rare->xl;
        int err = xl->finish ? xl->finish(c->rare->xstate, c) : 0;
        if (err) {
            evio__conn_close(c, err);
            return false;
        }
    }
    return true;
}

/* Our direction is finished once the queue is empty: send FIN, and close
 * if the peer's direction is finished too.  false when c is gone. */
static bool conn_finish_write(evio_conn *c)
{
    if (!(c->flags & EVIO__CONN_WDONE)) {
        c->flags |= EVIO__CONN_WDONE;
        if (evio__sys.shutdown(c->fd, SHUT_WR) < 0 && errno != ENOTCONN) {
            evio__conn_close(c, -errno);
            return false;
        }
    }
    if (c->flags & EVIO__CONN_RDONE) {
        evio__conn_close(c, 0);
        return false;
    }
    return true;
}

/* Stop reading while the queue is past the high-water mark; read again
 * once it is down to half. */
static void conn_high_water(evio_conn *c, size_t pending)
{
    int mark = c->rare && c->rare->high_water ? c->rare->high_water : c->loop->srv->high_water;
    if (mark > 0 && pending >= (size_t)mark) {
        if (!(c->flags & EVIO__CONN_FULL)) {
            c->flags |= EVIO__CONN_FULL;
            evio__count(&c->loop->stats.high_water, 1);
        }
    } else if (mark <= 0 || pending <= (size_t)mark / 2) {
        c->flags &= ~EVIO__CONN_FULL;
    }
}

static void conn_replay(evio_conn *c);

/* Completion mode: keep a receive outstanding exactly while c wants input.
 * A receive asked to end may still deliver (conn_received stashes it); a
 * new one starts only after its last result. */
static void conn_watch_ring(evio_conn *c, bool read)
{
    evio__loop *l = c->loop;
    if (read && c->rare && (c->rare->stash || c->rare->stash_eof)) {
        conn_replay(c);
    } else if (read && !(c->interest & EVIO__READ)) {
        int err = evio__backend.recv(l->poller, c->fd, c);
        if (err) {
            evio__conn_close(c, err);
            return;
        }
        c->interest |= EVIO__READ;
    } else if (!read && (c->interest & EVIO__READ) && !(c->flags & EVIO__CONN_RCANCEL)) {
        c->flags |= EVIO__CONN_RCANCEL;
        evio__backend.cancel(l->poller, c, EVIO__OP_RECV);
    }
}

/* Bring the socket in line with the connection's state: flush new output,
 * finish a close or detach, and watch exactly what is needed. */
void evio__conn_update(evio_conn *c)
{
    if ((c->flags & (EVIO__CONN_DEAD | EVIO__CONN_CONNECTING | EVIO__CONN_FAILED | EVIO__CONN_RESET |
                     EVIO__CONN_UDP | EVIO__CONN_CLOSING | EVIO__CONN_WSHUT)) &&
        !conn_update_unusual(c))
        return;
    if (c->out && !(c->interest & EVIO__WRITE)) {
        conn_flush(c);
        if (c->flags & EVIO__CONN_DEAD)
            return;
    }
    size_t pending = evio__outq_len(c->out);
    if (!pending && (c->flags & (EVIO__CONN_DETACHING | EVIO__CONN_CLOSING | EVIO__CONN_WSHUT))) {
        if ((c->flags & EVIO__CONN_DETACHING) && (c->flags & EVIO__CONN_RING) &&
            (c->interest || (c->rare && (c->rare->stash || c->rare->stash_eof)))) {
            /* The fd is handed over only once the backend has let go of it;
             * input it took meanwhile goes to data() first. */
            if (c->interest)
                conn_watch_ring(c, false);
            else
                conn_replay(c);
            return;
        }
        if (c->flags & EVIO__CONN_DETACHING) {
            conn_detach(c);
            return;
        }
        if (c->flags & EVIO__CONN_CLOSING) {
            evio__conn_close(c, 0);
            return;
        }
        if (!conn_finish_write(c))
            return;
    }
    if (pending || (c->flags & EVIO__CONN_FULL))
        conn_high_water(c, pending);
    unsigned want = (c->flags & (EVIO__CONN_CLOSING | EVIO__CONN_DETACHING | EVIO__CONN_PAUSED |
                                 EVIO__CONN_FULL | EVIO__CONN_RDONE))
                        ? 0
                        : EVIO__READ;
    if (c->flags & EVIO__CONN_RING) {
        conn_watch_ring(c, want);
        return;
    }
    if (pending)
        want |= EVIO__WRITE;
    if (want != c->interest) {
        int err = evio__loop_rewatch(c->loop, c->fd, c->interest, want);
        if (err) {
            evio__conn_close(c, err);
            return;
        }
        bool stalled = (want & EVIO__WRITE) && !(c->interest & EVIO__WRITE);
        c->interest = (uint8_t)want;
        if (stalled) {
            /* The write timeout starts now.  conn_flush stamps only a
             * partial write: output queued after a whole one (postwrite
             * writing more) kept the last stall's stamp, or none, and
             * closed the connection with ETIMEDOUT at once. */
            c->last_output = c->loop->ms;
            if (evio__conn_write_ms(c) > 0)
                evio__idle_arm(c);
        }
    }
}

/* The write timeout is due.  The kernel reports a TCP socket writable only
 * once a third of its buffer is free, so a peer that reads slowly but
 * steadily can drain megabytes unseen: try to write before giving up.
 * true if the socket took something (c may have closed meanwhile). */
bool evio__conn_retry_write(evio_conn *c)
{
    if (c->flags & EVIO__CONN_RING) {
        /* A send waits for the same wakeup: cancel it, and decide once its
         * result is in (conn_sent), with a write of our own. */
        if (!(c->interest & EVIO__WRITE))
            return false;
        if (!(c->flags & EVIO__CONN_WPROBE)) {
            c->flags |= EVIO__CONN_WPROBE;
            evio__backend.cancel(c->loop->poller, c, EVIO__OP_SEND);
        }
        return true;
    }
    size_t before = evio__outq_len(c->out);
    c->loop->current = c;
    conn_flush(c);
    bool progress = !(c->flags & EVIO__CONN_DEAD) && evio__outq_len(c->out) < before;
    if (progress || (c->flags & EVIO__CONN_DEAD))
        evio__conn_update(c);
    c->loop->current = NULL;
    return progress;
}

void evio__conn_shutdown(evio_conn *c)
{
    /* One last non-blocking attempt (never past a send in flight). */
    if (c->out && !(c->flags & EVIO__CONN_RESET)) {
        if (!(c->flags & EVIO__CONN_RING))
            conn_flush(c);
        else if (!(c->interest & EVIO__WRITE))
            conn_write(c, evio__outq_len(c->out));
    }
    evio__conn_close(c, 0);
}

void evio__conn_after(evio_conn *c, evio_action a)
{
    if (c->flags & EVIO__CONN_DEAD)
        return;
    conn_apply(c, a);
    evio__conn_update(c);
}

void evio__conn_ready(evio_conn *c, unsigned mask)
{
    /* Never a completion-mode connection: it has no fd slot (a dial leaves
     * its slot when it connects, evio__conn_use_ring). */
    if (c->flags & EVIO__CONN_CONNECTING) {
        evio__dial_ready(c);
        return;
    }
    c->loop->current = c;
    if ((mask & EVIO__WRITE) && (c->interest & EVIO__WRITE))
        conn_flush(c);
    /* conn_flush may have closed it (interest is 0 then); another
     * connection's event may have paused it since the poll. */
    if ((mask & EVIO__READ) && (c->interest & EVIO__READ) && !(c->flags & EVIO__CONN_PAUSED))
        conn_read(c);
    evio__conn_update(c);
    c->loop->current = NULL;
}

/* ---------------------------------------------------------------- completion mode */

/* Input received while c did not want it, kept for when it does. */
static void conn_stash(evio_conn *c, const char *in, size_t n)
{
    evio__conn_rare *r = evio__conn_rare_get(c);
    if (!r || evio__outq_append_slow(c->loop, &r->stash, in, n) != 0)
        evio__conn_fail(c, -ENOMEM); /* dropping it would corrupt the stream */
}

/* Give data() what was stashed, as if it had just been received: at most
 * one read buffer's worth at a time, as a readiness backend would. */
static void conn_replay(evio_conn *c)
{
    evio__loop *l = c->loop;
    evio__conn_rare *r = c->rare;
    evio_conn *was = l->current;
    l->current = c;
    if (r->stash) {
        size_t n = evio__outq_len(r->stash);
        if (n > EVIO__READ_BUFFER)
            n = EVIO__READ_BUFFER;
        memcpy(l->rbuf, r->stash->data + r->stash->head, n); /* data() may stash again */
        evio__outq_consume(l, &r->stash, n);
        conn_input(c, l->rbuf, n);
    } else if (r->stash_eof) {
        r->stash_eof = false;
        conn_eof(c);
    }
    l->current = was;
    evio__conn_update(c);
}

static void conn_received(evio_conn *c, const evio__event *e)
{
    bool wanted = !(c->flags & (EVIO__CONN_CLOSING | EVIO__CONN_DETACHING | EVIO__CONN_PAUSED |
                                EVIO__CONN_FULL | EVIO__CONN_RDONE)) &&
                  !(c->rare && (c->rare->stash || c->rare->stash_eof)); /* keeps order */
    if (e->res > 0) {
        if (c->flags & EVIO__CONN_CLOSING)
            return; /* what a readiness backend would never have read */
        if (wanted)
            conn_input(c, e->data, (size_t)e->res);
        else
            conn_stash(c, e->data, (size_t)e->res);
    } else if (e->res == 0) {
        if (wanted)
            conn_eof(c);
        else if (evio__conn_rare_get(c))
            c->rare->stash_eof = true;
        else
            evio__conn_fail(c, -ENOMEM);
    } else if (e->res != -ENOBUFS && e->res != -ECANCELED && e->res != -EINTR &&
               e->res != -EAGAIN) {
        evio__conn_close(c, e->res); /* ENOBUFS: out of buffers; update starts another */
    }
}

static void conn_sent(evio_conn *c, int res)
{
    evio__loop *l = c->loop;
    if (res < 0) {
        if (res != -EAGAIN && res != -EINTR && !(res == -ECANCELED && (c->flags & EVIO__CONN_WPROBE))) {
            evio__conn_close(c, res);
            return;
        }
        res = 0;
    }
    size_t n = (size_t)res;
    evio__count(&l->stats.bytes_out, n);
    evio__outq_consume(l, &c->out, n);
    if (c->out) {
        evio__outq_held(l, c->out);
        if (n)
            c->last_output = l->ms;
    }
    const evio_events *ev = events_of(c);
    if (ev->postwrite)
        conn_apply(c, ev->postwrite(c, n, evio__outq_len(c->out)));
    if ((c->flags & EVIO__CONN_WPROBE) && !(c->flags & EVIO__CONN_DEAD)) {
        /* The write timeout's probe (evio__conn_retry_write): the kernel
         * wakes a waiting send only once a third of the buffer is free, so
         * a slow but steady reader gets a write of ours before we give up. */
        c->flags &= ~EVIO__CONN_WPROBE;
        size_t before = evio__outq_len(c->out);
        if (!n && before)
            conn_write(c, before);
        if (!n && !(c->flags & EVIO__CONN_DEAD) && evio__outq_len(c->out) == before) {
            evio__count(&l->stats.timeouts, 1);
            evio__conn_close(c, -ETIMEDOUT);
        }
    }
}

/* What a result of c's ends: only this, when the loop is stopping. */
void evio__conn_note_result(evio_conn *c, const evio__event *e)
{
    if (e->op == EVIO__OP_SEND) {
        c->interest &= (uint8_t)~EVIO__WRITE;
        evio__outq_unpin(c->loop, c->out);
    } else if (!e->more) {
        c->interest &= (uint8_t)~EVIO__READ;
        c->flags &= ~EVIO__CONN_RCANCEL;
    }
}

/* A result of c's receive or send. */
void evio__conn_complete(evio_conn *c, const evio__event *e)
{
    evio__loop *l = c->loop;
    evio__conn_note_result(c, e);
    if (c->flags & EVIO__CONN_DEAD)
        return; /* a last result: loop->limbo frees c once it has them all */
    l->current = c;
    if (e->op == EVIO__OP_SEND)
        conn_sent(c, e->res);
    else
        conn_received(c, e);
    evio__conn_update(c);
    l->current = NULL;
}

/* A dialed connection has connected: from now on the backend does its I/O. */
void evio__conn_use_ring(evio_conn *c)
{
    evio__loop_unwatch(c->loop, c->fd, c->interest);
    c->interest = 0;
    c->flags |= EVIO__CONN_RING;
}

void evio__conn_link(evio__loop *l, evio_conn *c)
{
    c->prev = NULL;
    c->next = l->conns;
    if (l->conns)
        l->conns->prev = c;
    l->conns = c;
    l->nconns++;
    atomic_fetch_add(&l->load, 1);
    evio__count(&l->stats.linked, 1);
}

void evio__conn_open(evio__loop *l, evio__listener *ln, int fd, const struct sockaddr *ra,
                     socklen_t rlen)
{
    evio_server *srv = l->srv;
    evio_conn *c = evio__sys.calloc(1, sizeof *c);
    if (!c) {
        atomic_fetch_sub(&srv->accepted_open, 1);
        evio__sys.close(fd);
        return;
    }
    c->flags = EVIO__CONN_INBOUND; /* counted in accepted_open by evio__accept */
    int one = 1;
    if (ln->addr.sa.ss_family == AF_UNIX)
        c->flags |= EVIO__CONN_UNIX;
    else /* small replies must not wait for Nagle */
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
#ifdef SO_NOSIGPIPE
    setsockopt(fd, SOL_SOCKET, SO_NOSIGPIPE, &one, sizeof one);
#endif
    c->loop = l;
    c->fd = fd;
    c->listener = ln->index;

    pthread_mutex_lock(&l->lock);
    c->id = evio__loop_next_id(l);
    int err = evio__idmap_put(&l->ids, c->id, c);
    pthread_mutex_unlock(&l->lock);
    if (!err && l->completion) {
        c->flags |= EVIO__CONN_RING;
        err = evio__backend.recv(l->poller, fd, c);
    } else if (!err) {
        err = evio__loop_watch(l, fd, EVIO__SLOT_CONN, c, EVIO__READ);
    }
    if (err) {
        pthread_mutex_lock(&l->lock);
        evio__idmap_del(&l->ids, c->id);
        pthread_mutex_unlock(&l->lock);
        atomic_fetch_sub(&srv->accepted_open, 1);
        evio__sys.close(fd);
        evio__sys.free(c);
        return;
    }
    c->interest = EVIO__READ;
    evio__conn_link(l, c);
    evio__count(&l->stats.accepted, 1);
    if (srv->ev->idle_timeout_ms > 0) {
        c->idle_ms = srv->ev->idle_timeout_ms;
        c->last_input = l->ms;
        evio__idle_arm(c);
    }

    const evio_events *ev = srv->ev;
    if (!ev->opened && !ev->translate)
        return;
    struct sockaddr_storage local;
    socklen_t llen = sizeof local;
    if (getsockname(fd, (struct sockaddr *)&local, &llen) < 0)
        llen = 0;
    evio_info info = {
        .listener = ln->index,
        .local = (const struct sockaddr *)&local,
        .local_len = llen,
        .remote = ra,
        .remote_len = rlen,
    };
    if (ev->translate && !evio__translate_open(c, &info))
        return;
    l->current = c;
    evio__conn_after(c, ev->opened ? ev->opened(c, &info) : EVIO_NONE);
    l->current = NULL;
}

static bool accept_paused_by(int err)
{
    switch (err) {
    case EAGAIN:
#if EWOULDBLOCK != EAGAIN
    case EWOULDBLOCK:
#endif
    case EINTR:
    case ECONNABORTED:
    case EPROTO:
        return false;
    }
    /* EMFILE, ENFILE, ENOBUFS, ENOMEM and anything unexpected: retrying at
     * once would fail again and, level-triggered, spin. */
    return true;
}

/* max_conns and accept_filter (evio__admit): close at once what may not
 * open. */
static bool admit(evio__loop *l, int fd, const struct sockaddr_storage *ra, socklen_t rlen)
{
    if (evio__admit(l, (const struct sockaddr *)ra, rlen))
        return true;
    evio__sys.close(fd);
    return false;
}

/* Pass an accepted fd to the loop that will own it; it opens it there. */
static void handoff(evio__loop *to, evio__listener *ln, int fd, const struct sockaddr_storage *ra,
                    socklen_t rlen)
{
    evio__handoff *h = evio__sys.malloc(sizeof *h);
    if (!h) {
        atomic_fetch_sub(&to->srv->accepted_open, 1);
        evio__sys.close(fd);
        return;
    }
    *h = (evio__handoff){.fd = fd, .ln = ln, .ra = *ra, .rlen = rlen};
    atomic_fetch_add(&to->load, 1); /* counts now, so least-connections sees it */
    pthread_mutex_lock(&to->lock);
    h->next = to->inbox;
    to->inbox = h;
    pthread_mutex_unlock(&to->lock);
    evio__loop_signal(to);
}

/* A new connection: admitted, then opened here or on the loop that gets it. */
static void accepted(evio__loop *l, evio__listener *ln, int fd, const struct sockaddr_storage *ra,
                     socklen_t rlen)
{
    if (!admit(l, fd, ra, rlen))
        return;
    evio__loop *to = ln->per_loop || l->srv->nloops == 1 ? l : evio__server_pick_loop(l->srv);
    if (to == l)
        evio__conn_open(l, ln, fd, (const struct sockaddr *)ra, rlen);
    else
        handoff(to, ln, fd, ra, rlen);
}

void evio__accept(evio__loop *l, evio__listener *ln)
{
    for (int i = 0; i < EVIO__ACCEPT_BUDGET && !atomic_load(&l->srv->shutdown); i++) {
        struct sockaddr_storage ra;
        socklen_t rlen = sizeof ra;
#ifdef HAVE_ACCEPT4
        int fd = evio__sys.accept(ln->fd, (struct sockaddr *)&ra, &rlen,
                                  SOCK_NONBLOCK | SOCK_CLOEXEC);
#else
        int fd = evio__sys.accept(ln->fd, (struct sockaddr *)&ra, &rlen, 0);
        if (fd >= 0 && (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0 || fcntl(fd, F_SETFL, O_NONBLOCK) < 0)) {
            evio__sys.close(fd);
            continue;
        }
#endif
        if (fd < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return;
            if (accept_paused_by(errno)) {
                evio__loop_pause_accept(l);
                return;
            }
            continue;
        }
        accepted(l, ln, fd, &ra, rlen);
    }
}

/* Completion mode: a result of ln's accept. */
void evio__accept_complete(evio__loop *l, evio__listener *ln, const evio__event *e)
{
    if (!e->more)
        ln->armed = false;
    if (e->res >= 0) {
        struct sockaddr_storage ra;
        socklen_t rlen = sizeof ra;
        if (ln->fd < 0 || atomic_load(&l->srv->shutdown) ||
            getpeername(e->res, (struct sockaddr *)&ra, &rlen) < 0) /* closed, or reset already */
            evio__sys.close(e->res);
        else
            accepted(l, ln, e->res, &ra, rlen);
    } else if (e->res != -ECANCELED && accept_paused_by(-e->res)) {
        evio__loop_pause_accept(l);
    }
    if (!ln->armed && ln->active && ln->fd >= 0 && !atomic_load(&l->srv->shutdown))
        evio__loop_listen(l, ln, true); /* a multishot accept ended: again */
}

/* ---------------------------------------------------------------- public */

/* Into the socket's queue as it is. */
int evio__conn_queue(evio_conn *c, const void *buf, size_t len)
{
    /* Written from another connection's event (a proxy), a timer or a
     * queue: flush it after the batch, since no conn_update of its own
     * follows. */
    if (c != c->loop->current && !(c->flags & EVIO__CONN_DIRTY))
        evio__loop_mark_dirty(c->loop, c);
    return evio__outq_append(c->loop, &c->out, buf, len);
}

/* Close with err as soon as the running event returns: closing inside it
 * would fire closed() in the middle of the application's callback. */
void evio__conn_fail(evio_conn *c, int err)
{
    if (c->flags & (EVIO__CONN_DEAD | EVIO__CONN_FAILED))
        return;
    c->flags |= EVIO__CONN_FAILED;
    c->fail_err = err;
    if (!(c->flags & EVIO__CONN_DIRTY))
        evio__loop_mark_dirty(c->loop, c);
}

void evio__conn_free(evio_conn *c)
{
    evio__conn_rare *r = c->rare;
    if (r) {
        if (r->xl && r->xl->free && r->xstate)
            r->xl->free(r->xstate);
        evio__sys.free(r->errmsg);
        evio__sys.free(r->dial);
        evio__outq_free(c->loop, &r->stash); /* input a closed connection never read */
        evio__sys.free(r);
    }
    evio__outq_free(c->loop, &c->out);
    evio__sys.free(c); /* a UDP session's conn is its first member */
}

int evio_write(evio_conn *c, const void *buf, size_t len)
{
    if (c->flags & (EVIO__CONN_DEAD | EVIO__CONN_FAILED | EVIO__CONN_WSHUT | EVIO__CONN_RESET |
                    EVIO__CONN_UDP | EVIO__CONN_TRANSLATED)) {
        if (c->flags & (EVIO__CONN_DEAD | EVIO__CONN_FAILED | EVIO__CONN_WSHUT | EVIO__CONN_RESET))
            return EVIO_ESHUTDOWN;
        if (!buf && len)
            return EVIO_EINVAL;
        if (c->is_udp)
            return evio__udp_write(c, buf, len);
        int err = c->rare->xl->output(c->rare->xstate, c, buf, len);
        if (err)
            evio__conn_fail(c, err);
        return err;
    }
    return evio__conn_queue(c, buf, len);
}

static int conn_set_paused(evio_conn *c, bool paused)
{
    if (c->flags & EVIO__CONN_DEAD)
        return EVIO_ESHUTDOWN;
    if (paused)
        c->flags |= EVIO__CONN_PAUSED;
    else
        c->flags &= ~EVIO__CONN_PAUSED;
    if (!(c->flags & EVIO__CONN_DIRTY))
        evio__loop_mark_dirty(c->loop, c);
    return 0;
}

int evio_conn_set_idle_timeout(evio_conn *c, int ms)
{
    if (c->flags & EVIO__CONN_DEAD)
        return EVIO_ESHUTDOWN;
    if (c->is_udp)
        return EVIO_EUDP;
    if (ms < 0)
        return EVIO_EINVAL;
    c->idle_ms = ms > EVIO__MAX_TIMEOUT_MS ? EVIO__MAX_TIMEOUT_MS : ms;
    c->last_input = c->loop->ms; /* counts from now */
    evio__idle_arm(c);
    return 0;
}

/* The checks the per-connection settings share. */
static int conn_settable(const evio_conn *c)
{
    if (c->flags & EVIO__CONN_DEAD)
        return EVIO_ESHUTDOWN;
    return c->is_udp ? EVIO_EUDP : 0;
}

int evio_conn_set_high_water(evio_conn *c, int bytes)
{
    int err = conn_settable(c);
    if (err)
        return err;
    if (!bytes && !c->rare)
        return 0;
    if (!evio__conn_rare_get(c))
        return -ENOMEM;
    c->rare->high_water = bytes;
    if (!(c->flags & EVIO__CONN_DIRTY) && c != c->loop->current)
        evio__loop_mark_dirty(c->loop, c); /* may read again at once */
    return 0;
}

int evio_conn_set_write_timeout(evio_conn *c, int ms)
{
    int err = conn_settable(c);
    if (err)
        return err;
    if (!ms && !c->rare)
        return 0;
    if (!evio__conn_rare_get(c))
        return -ENOMEM;
    c->rare->write_ms = ms > EVIO__MAX_TIMEOUT_MS ? EVIO__MAX_TIMEOUT_MS : ms;
    evio__idle_arm(c);
    return 0;
}

int evio_conn_set_deadline(evio_conn *c, int ms)
{
    int err = conn_settable(c);
    if (err)
        return err;
    if (ms < 0)
        return EVIO_EINVAL;
    if (ms == 0) {
        c->flags &= ~EVIO__CONN_DEADLINE;
    } else {
        c->flags |= EVIO__CONN_DEADLINE;
        c->deadline = c->loop->ms + (evio__ms)(ms > EVIO__MAX_TIMEOUT_MS ? EVIO__MAX_TIMEOUT_MS : ms);
    }
    evio__idle_arm(c);
    return 0;
}

/* Apply a state change made outside the running event of c soon. */
static void conn_touch(evio_conn *c)
{
    if (c != c->loop->current && !(c->flags & EVIO__CONN_DIRTY))
        evio__loop_mark_dirty(c->loop, c);
}

int evio_conn_shutdown_write(evio_conn *c)
{
    int err = conn_settable(c);
    if (err)
        return err;
    c->flags |= EVIO__CONN_WSHUT;
    conn_touch(c);
    return 0;
}

int evio_conn_reset(evio_conn *c)
{
    int err = conn_settable(c);
    if (err)
        return err;
    c->flags |= EVIO__CONN_RESET;
    conn_touch(c);
    return 0;
}

int evio_conn_pause(evio_conn *c)
{
    return conn_set_paused(c, true);
}

int evio_conn_resume(evio_conn *c)
{
    return conn_set_paused(c, false);
}

size_t evio_conn_pending(const evio_conn *c)
{
    return evio__outq_len(c->out);
}

uint64_t evio_conn_id(const evio_conn *c)
{
    return c->id;
}

void *evio_conn_context(const evio_conn *c)
{
    return c->ctx;
}

void evio_conn_set_context(evio_conn *c, void *ctx)
{
    c->ctx = ctx;
}

evio_server *evio_conn_server(const evio_conn *c)
{
    return c->loop->srv;
}

int evio_conn_loop(const evio_conn *c)
{
    return c->loop->index;
}

int evio_conn_set_keepalive(evio_conn *c, int seconds)
{
    if (c->flags & EVIO__CONN_DEAD)
        return EVIO_ESHUTDOWN;
    if (c->flags & EVIO__CONN_UNIX)
        return -ENOTSUP;
    if (seconds < 0)
        return EVIO_EINVAL;
    int on = seconds > 0;
    if (setsockopt(c->fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof on) < 0)
        return -errno;
    if (!on)
        return 0;
#if defined(TCP_KEEPIDLE)
    if (setsockopt(c->fd, IPPROTO_TCP, TCP_KEEPIDLE, &seconds, sizeof seconds) < 0)
        return -errno;
#elif defined(TCP_KEEPALIVE) /* macOS */
    if (setsockopt(c->fd, IPPROTO_TCP, TCP_KEEPALIVE, &seconds, sizeof seconds) < 0)
        return -errno;
#endif
#ifdef TCP_KEEPINTVL
    if (setsockopt(c->fd, IPPROTO_TCP, TCP_KEEPINTVL, &seconds, sizeof seconds) < 0)
        return -errno;
#endif
    return 0;
}
