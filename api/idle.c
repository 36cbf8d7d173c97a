/* idle.c — idle timeouts on a coarse timer wheel.
 *
 * A connection sits in the slot of the 50 ms step in which it would time
 * out if no input came.  Input only stamps conn->last_input; when the slot
 * comes round, a connection that heard something since moves to its new
 * slot, and one that did not is closed.  So an event costs one store, each
 * connection is looked at about once per timeout, and an idle server wakes
 * only for the steps that hold someone. */
#include "config.h"

#include <errno.h>

#include "internal.h"

static void wheel_insert(evio__loop *l, evio_conn *c, int64_t step)
{
    if (step < l->wheel_step) /* due in a step already passed: the next one */
        step = l->wheel_step;
    int slot = (int)(step % EVIO__WHEEL_SLOTS);
    c->wslot = slot + 1;
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
    if (c->idle_ns <= 0)
        return;
    int64_t now = evio__now_ns();
    if (l->wheel_count == 0) /* an empty wheel's cursor may be stale */
        l->wheel_step = now / EVIO__WHEEL_NS;
    c->last_input = now;
    wheel_insert(l, c, (now + c->idle_ns) / EVIO__WHEEL_NS + 1);
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
            int64_t due = c->last_input + c->idle_ns;
            if (due <= now)
                evio__conn_close(c, -ETIMEDOUT);
            else /* heard from, or a later round: due in the step after due */
                wheel_insert(l, c, due / EVIO__WHEEL_NS + 1);
            c = next;
        }
    }
    /* The next step that holds anyone (at most one scan of the wheel). */
    for (int64_t k = 0; k < EVIO__WHEEL_SLOTS && l->wheel_count; k++)
        if (l->wheel[(l->wheel_step + k) % EVIO__WHEEL_SLOTS])
            return (l->wheel_step + k) * EVIO__WHEEL_NS;
    return -1;
}
