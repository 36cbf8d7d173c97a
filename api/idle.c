/* idle.c — every per-connection timeout on one coarse timer wheel.
 *
 * A connection has up to four clocks: the idle timeout (no input), the
 * write timeout (queued output that makes no progress), the application's
 * deadline and its translator's.  It sits in the slot of the 50 ms step in
 * which the earliest of them would fire.  Input and output only stamp a
 * time; when the slot comes round, a connection whose clocks moved goes to
 * its new slot and one that is due is closed.  So an event costs a store
 * and no timer work, each connection is looked at about once per timeout,
 * and an idle server wakes only for the steps that hold someone. */
#include "config.h"

#include <errno.h>

#include "internal.h"

int evio__conn_write_ms(const evio_conn *c)
{
    int ms = c->rare && c->rare->write_ms ? c->rare->write_ms : c->loop->srv->write_ms;
    return ms;
}

/* The earliest of c's clocks, as a wrapping millisecond time; false when
 * none runs. */
static bool conn_due(const evio_conn *c, evio__ms *due)
{
    bool any = false;
    evio__ms d = 0;
#define EARLIEST(t)                                                                          \
    do {                                                                                     \
        evio__ms t_ = (t);                                                                   \
        if (!any || evio__ms_diff(t_, d) < 0)                                                \
            d = t_;                                                                          \
        any = true;                                                                          \
    } while (0)
    if (c->idle_ms > 0)
        EARLIEST(c->last_input + (evio__ms)c->idle_ms);
    if (c->out && (c->interest & EVIO__WRITE)) {
        int ms = evio__conn_write_ms(c);
        if (ms > 0)
            EARLIEST(c->last_output + (evio__ms)ms);
    }
    if (c->flags & EVIO__CONN_DEADLINE)
        EARLIEST(c->deadline);
    if (c->rare && c->rare->xdeadline_set)
        EARLIEST(c->rare->xdeadline);
#undef EARLIEST
    *due = d;
    return any;
}

/* The write timeout is what is due now. */
static bool write_stalled(const evio_conn *c)
{
    int ms = c->out && (c->interest & EVIO__WRITE) ? evio__conn_write_ms(c) : -1;
    return ms > 0 && evio__ms_diff(c->last_output + (evio__ms)ms, c->loop->ms) <= 0;
}

/* A wrapping millisecond time as the loop's monotonic nanoseconds. */
static int64_t ms_to_ns(const evio__loop *l, evio__ms t)
{
    return l->now + (int64_t)evio__ms_diff(t, l->ms) * 1000000;
}

static void wheel_insert(evio__loop *l, evio_conn *c, int64_t step)
{
    if (step < l->wheel_step) /* due in a step already passed: the next one */
        step = l->wheel_step;
    int slot = (int)(step % EVIO__WHEEL_SLOTS);
    c->wslot = (uint16_t)(slot + 1);
    c->wprev = NULL;
    c->wnext = l->wheel[slot];
    if (c->wnext)
        c->wnext->wprev = c;
    l->wheel[slot] = c;
    l->wheel_count++;
}

void evio__idle_disarm(evio_conn *c)
{
    evio__loop *l = c->loop;
    if (!c->wslot)
        return;
    if (c->wprev)
        c->wprev->wnext = c->wnext;
    else
        l->wheel[c->wslot - 1] = c->wnext;
    if (c->wnext)
        c->wnext->wprev = c->wprev;
    c->wslot = 0;
    c->wprev = c->wnext = NULL;
    l->wheel_count--;
}

void evio__idle_arm(evio_conn *c)
{
    evio__loop *l = c->loop;
    evio__idle_disarm(c);
    evio__ms due;
    if ((c->flags & EVIO__CONN_DEAD) || !conn_due(c, &due))
        return;
    if (l->wheel_count == 0) /* an empty wheel's cursor may be stale */
        l->wheel_step = l->now / EVIO__WHEEL_NS;
    wheel_insert(l, c, ms_to_ns(l, due) / EVIO__WHEEL_NS + 1);
}

int64_t evio__idle_expire(evio__loop *l, int64_t now)
{
    if (l->wheel_count == 0)
        return -1;
    int64_t step_now = now / EVIO__WHEEL_NS;
    for (; l->wheel_step <= step_now && l->wheel_count; l->wheel_step++) {
        int slot = (int)(l->wheel_step % EVIO__WHEEL_SLOTS);
        evio_conn *c = l->wheel[slot];
        l->wheel[slot] = NULL;
        while (c) { /* detach the whole slot first: closing edits lists */
            evio_conn *next = c->wnext;
            c->wslot = 0;
            c->wprev = c->wnext = NULL;
            l->wheel_count--;
            evio__ms due;
            bool any = conn_due(c, &due);
            if (any && evio__ms_diff(due, l->ms) <= 0 && write_stalled(c)) {
                /* the socket may have taken bytes unseen: if so, go on */
                if (evio__conn_retry_write(c) || (c->flags & EVIO__CONN_DEAD) || c->wslot) {
                    /* Look again next step: arming now could put it back in
                     * the slot being emptied, not seen for a whole round. */
                    if (!(c->flags & EVIO__CONN_DEAD) && !c->wslot)
                        wheel_insert(l, c, l->wheel_step + 1);
                    c = next;
                    continue;
                }
            }
            if (!any) {
                /* every clock stopped: off the wheel */
            } else if (evio__ms_diff(due, l->ms) <= 0) {
                evio__count(&l->stats.timeouts, 1);
                evio__conn_close(c, -ETIMEDOUT);
            } else { /* its clocks moved, or a later round */
                wheel_insert(l, c, ms_to_ns(l, due) / EVIO__WHEEL_NS + 1);
            }
            c = next;
        }
    }
    /* The next step that holds anyone (at most one scan of the wheel). */
    for (int64_t k = 0; k < EVIO__WHEEL_SLOTS && l->wheel_count; k++)
        if (l->wheel[(l->wheel_step + k) % EVIO__WHEEL_SLOTS])
            return (l->wheel_step + k) * EVIO__WHEEL_NS;
    return -1;
}
