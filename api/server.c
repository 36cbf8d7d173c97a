/* server.c — evio_serve(): bind, run the loop, shut everything down. */
#include "config.h"

#include <errno.h>
#include <stdlib.h>

#include "internal.h"

void evio__server_act(evio_server *srv, evio_action a)
{
    if (a == EVIO_SHUTDOWN)
        atomic_store(&srv->shutdown, 1);
}

/* Close every connection (closed fires for each, after one last attempt to
 * send what is queued), then every listener. */
static void server_close_all(evio_server *srv)
{
    for (int i = 0; i < srv->nloops; i++) {
        evio__loop *l = &srv->loops[i];
        evio__dial_close_all(l);
        while (l->conns)
            evio__conn_shutdown(l->conns);
        l->dirty = NULL; /* every connection on it is dead now */
        evio__loop_bury(l);
    }
    for (size_t i = 0; i < srv->nlisteners; i++)
        evio__listener_close(&srv->listeners[i]);
}

static void server_free(evio_server *srv)
{
    pthread_mutex_destroy(&srv->resolver_lock);
    for (int i = 0; i < srv->nloops; i++)
        evio__loop_destroy(&srv->loops[i]);
    free(srv->loops);
    free(srv->listeners);
    free(srv);
}

static int server_bind(evio_server *srv, const char *const addrs[], size_t naddrs)
{
    evio__addr *parsed = calloc(naddrs, sizeof *parsed);
    if (!parsed)
        return -ENOMEM;
    int err = 0;
    /* Parse everything first, so a malformed address binds nothing. */
    for (size_t i = 0; i < naddrs && !err; i++)
        err = evio__addr_parse(addrs[i], &parsed[i], true);
    for (size_t i = 0; i < naddrs && !err; i++) {
        err = evio__listener_open(&srv->listeners[i], &parsed[i], (int)i);
        if (!err)
            srv->nlisteners++;
    }
    free(parsed);
    return err;
}

int evio_serve(const evio_events *events, const char *const addrs[], size_t naddrs)
{
    if (!events)
        return EVIO_EINVAL;
    if (!addrs || naddrs == 0)
        return EVIO_ENOADDR;
    evio_server *srv = calloc(1, sizeof *srv);
    if (!srv)
        return -ENOMEM;
    srv->ev = events;
    atomic_init(&srv->shutdown, 0);
    pthread_mutex_init(&srv->resolver_lock, NULL);
    srv->listeners = calloc(naddrs, sizeof *srv->listeners);
    srv->nloops = 1;
    srv->loops = calloc((size_t)srv->nloops, sizeof *srv->loops);
    if (!srv->listeners || !srv->loops) {
        server_free(srv);
        return -ENOMEM;
    }

    int err = server_bind(srv, addrs, naddrs);
    int nloops = 0;
    for (; !err && nloops < srv->nloops; nloops++)
        err = evio__loop_init(&srv->loops[nloops], srv, nloops);
    srv->nloops = nloops;
    evio__loop *l = &srv->loops[0];
    for (size_t i = 0; i < srv->nlisteners && !err; i++) {
        err = evio__loop_watch(l, srv->listeners[i].fd, EVIO__SLOT_LISTENER,
                               &srv->listeners[i], EVIO__READ);
        srv->listeners[i].active = !err;
    }
    if (err) {
        server_close_all(srv);
        server_free(srv);
        return err;
    }

    if (events->serving)
        evio__server_act(srv, events->serving(srv));
    if (events->tick)
        srv->tick_due = evio__now_ns(); /* the first tick comes right away */
    err = evio__loop_run(l);
    evio__resolver_stop(srv); /* its threads signal the loops: stop it first */
    server_close_all(srv);
    server_free(srv);
    return err;
}

void *evio_server_udata(const evio_server *srv)
{
    return srv->ev->udata;
}

size_t evio_server_naddrs(const evio_server *srv)
{
    return srv->nlisteners;
}

const struct sockaddr *evio_server_addr(const evio_server *srv, size_t i, socklen_t *len)
{
    if (i >= srv->nlisteners)
        return NULL;
    if (len)
        *len = srv->listeners[i].addr.len;
    return (const struct sockaddr *)&srv->listeners[i].addr.sa;
}
