/* translate.c — what translators call, and how a connection gets one. */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "sys.h"

/* c cannot get its translator: it never opened, so closed() does not fire;
 * but a dial still owes one opened and one closed. */
static bool translate_refused(evio_conn *c, int err)
{
    if (c->listener < 0) {
        evio__dial_fail(c, err);
        return false;
    }
    evio__conn_unlink(c);
    evio__conn_close_fd(c, c->fd);
    return false;
}

/* Before opened(): ask the application which translator c gets and let it
 * set up.  false: the translator refused, c is gone. */
bool evio__translate_open(evio_conn *c, const evio_info *info)
{
    const evio_translator *t = c->loop->srv->ev->translate(c, info);
    if (!t)
        return true;
    if (!evio__conn_rare_get(c))
        return translate_refused(c, -ENOMEM);
    c->rare->xl = t;
    c->flags |= EVIO__CONN_TRANSLATED;
    int err = t->open(t, c, &c->rare->xstate);
    return err == 0 || translate_refused(c, err);
}

int evio_translator_deliver(evio_conn *c, const void *data, size_t len)
{
    if (c->flags & (EVIO__CONN_DEAD | EVIO__CONN_FAILED | EVIO__CONN_CLOSING))
        return EVIO_ESHUTDOWN;
    const evio_events *ev = c->loop->srv->ev;
    if (ev->data) {
        evio_action a = ev->data(c, data, len);
        if (a == EVIO_SHUTDOWN || a == EVIO_DRAIN)
            evio__server_act(c->loop->srv, a);
        else if (a == EVIO_CLOSE || a == EVIO_DETACH)
            c->flags |= EVIO__CONN_CLOSING; /* detach is a close here */
    }
    return c->flags & (EVIO__CONN_CLOSING | EVIO__CONN_FAILED) ? EVIO_ESHUTDOWN : 0;
}

int evio_translator_send(evio_conn *c, const void *wire, size_t len)
{
    if (c->flags & EVIO__CONN_DEAD)
        return EVIO_ESHUTDOWN;
    return evio__conn_queue(c, wire, len);
}

int evio_translator_close(evio_conn *c)
{
    if (c->flags & EVIO__CONN_DEAD)
        return EVIO_ESHUTDOWN;
    c->flags |= EVIO__CONN_CLOSING;
    if (c != c->loop->current && !(c->flags & EVIO__CONN_DIRTY))
        evio__loop_mark_dirty(c->loop, c);
    return 0;
}

void evio_translator_set_error(evio_conn *c, const char *msg)
{
    if (!evio__conn_rare_get(c))
        return; /* out of memory: the error code alone must do */
    free(c->rare->errmsg);
    c->rare->errmsg = msg ? strndup(msg, 255) : NULL;
}

int evio_translator_set_deadline(evio_conn *c, int ms)
{
    if (c->flags & EVIO__CONN_DEAD)
        return EVIO_ESHUTDOWN;
    if (ms < 0)
        return EVIO_EINVAL;
    if (!evio__conn_rare_get(c))
        return -ENOMEM;
    c->rare->xdeadline_set = ms > 0;
    c->rare->xdeadline = c->loop->ms + (evio__ms)(ms > EVIO__MAX_TIMEOUT_MS ? EVIO__MAX_TIMEOUT_MS : ms);
    evio__idle_arm(c);
    return 0;
}

const char *evio_conn_error(const evio_conn *c)
{
    return c->rare && c->rare->errmsg ? c->rare->errmsg : "";
}
