/* server.c — evio_serve(): bind, run the loops, shut everything down.
 *
 * The thread that calls evio_serve runs loop 0; loops 1..n-1 get threads of
 * their own.  A listener without ?reuseport is watched by loop 0, which
 * hands accepted connections to the loop the balance policy picks; with
 * ?reuseport every loop binds its own copy and the kernel spreads
 * connections.  On shutdown every loop closes its own connections, on its
 * own thread, before serve returns. */
#include "config.h"

#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

void evio__server_act(evio_server *srv, evio_action a)
{
    if (a == EVIO_DRAIN)
        evio_server_drain(srv, srv->ev->drain_timeout_ms);
    if (a != EVIO_SHUTDOWN || atomic_exchange(&srv->shutdown, 1))
        return;
    for (int i = 0; i < srv->nloops; i++) /* the others may be asleep */
        evio__loop_signal(&srv->loops[i]);
}

int evio_server_drain(evio_server *srv, int timeout_ms)
{
    if (!srv || timeout_ms < 0)
        return EVIO_EINVAL;
    int64_t ms = timeout_ms ? timeout_ms : EVIO__DEFAULT_DRAIN_MS;
    evio__enter(srv);
    /* The deadline first: a loop that sees draining reads it. */
    int64_t deadline = evio__now_ns() + ms * 1000000, unset = 0;
    atomic_compare_exchange_strong(&srv->drain_deadline, &unset, deadline);
    if (!atomic_exchange(&srv->draining, 1)) /* the first deadline stands */
        for (int i = 0; i < srv->nloops; i++)
            evio__loop_signal(&srv->loops[i]);
    evio__leave(srv);
    return 0;
}

static void stats_of(const evio__loop *l, evio_stats *s)
{
    const evio__loop_stats *c = &l->stats;
    uint64_t linked = atomic_load_explicit(&c->linked, memory_order_relaxed);
    *s = (evio_stats){
        .closed = atomic_load_explicit(&c->closed, memory_order_relaxed),
        .accepted = atomic_load_explicit(&c->accepted, memory_order_relaxed),
        .refused = atomic_load_explicit(&c->refused, memory_order_relaxed),
        .filtered = atomic_load_explicit(&c->filtered, memory_order_relaxed),
        .bytes_in = atomic_load_explicit(&c->bytes_in, memory_order_relaxed),
        .bytes_out = atomic_load_explicit(&c->bytes_out, memory_order_relaxed),
        .wakes = atomic_load_explicit(&c->wakes, memory_order_relaxed),
        .output_buffers = atomic_load_explicit(&c->output_buffers, memory_order_relaxed),
        .output_bytes = atomic_load_explicit(&c->output_bytes, memory_order_relaxed),
        .high_water = atomic_load_explicit(&c->high_water, memory_order_relaxed),
        .timeouts = atomic_load_explicit(&c->timeouts, memory_order_relaxed),
    };
    s->open = linked > s->closed ? linked - s->closed : 0;
}

int evio_server_stats(const evio_server *srv, evio_stats *total, evio_stats *per_loop,
                      int nloops)
{
    if (!srv)
        return EVIO_EINVAL;
    evio_stats sum = {0};
    for (int i = 0; i < srv->nloops; i++) {
        evio_stats s;
        stats_of(&srv->loops[i], &s);
        if (per_loop && i < nloops)
            per_loop[i] = s;
        sum.open += s.open;
        sum.accepted += s.accepted;
        sum.closed += s.closed;
        sum.refused += s.refused;
        sum.filtered += s.filtered;
        sum.bytes_in += s.bytes_in;
        sum.bytes_out += s.bytes_out;
        sum.wakes += s.wakes;
        sum.output_buffers += s.output_buffers;
        sum.output_bytes += s.output_bytes;
        sum.high_water += s.high_water;
        sum.timeouts += s.timeouts;
    }
    if (total)
        *total = sum;
    return srv->nloops;
}

bool evio__admit(evio__loop *l, const struct sockaddr *ra, socklen_t rlen)
{
    evio_server *srv = l->srv;
    const evio_events *ev = srv->ev;
    /* Reserve first: loops admitting at once each take a slot or see the
     * limit, never both pass a check made before either counted. */
    int before = atomic_fetch_add(&srv->accepted_open, 1);
    if (ev->max_conns > 0 && before >= ev->max_conns) {
        atomic_fetch_sub(&srv->accepted_open, 1);
        evio__count(&l->stats.refused, 1);
        return false;
    }
    if (ev->accept_filter && !ev->accept_filter(ev->udata, ra, rlen)) {
        atomic_fetch_sub(&srv->accepted_open, 1);
        evio__count(&l->stats.filtered, 1);
        return false;
    }
    return true;
}

evio__loop *evio__server_pick_loop(evio_server *srv)
{
    int n = srv->nloops;
    if (n == 1)
        return &srv->loops[0];
    switch (srv->ev->balance) {
    case EVIO_RANDOM: {
        /* xorshift on a shared word: racing threads may draw the same
         * number, which is still a fair pick */
        unsigned x = atomic_load(&srv->balance_next);
        x ^= x << 13, x ^= x >> 17, x ^= x << 5;
        atomic_store(&srv->balance_next, x);
        return &srv->loops[x % (unsigned)n];
    }
    case EVIO_LEAST_CONNECTIONS: {
        int best = 0, best_load = atomic_load(&srv->loops[0].load);
        for (int i = 1; i < n; i++) {
            int load = atomic_load(&srv->loops[i].load);
            if (load < best_load)
                best = i, best_load = load;
        }
        return &srv->loops[best];
    }
    case EVIO_ROUND_ROBIN:
    default:
        return &srv->loops[atomic_fetch_add(&srv->balance_next, 1) % (unsigned)n];
    }
}

/* On the loop's own thread, after it stopped: every connection it owns
 * gets its closed(), and connections handed to it but not opened go. */
static void loop_close_all(evio__loop *l)
{
    pthread_mutex_lock(&l->lock);
    evio__handoff *h = l->inbox;
    l->inbox = NULL;
    pthread_mutex_unlock(&l->lock);
    while (h) {
        evio__handoff *next = h->next;
        atomic_fetch_sub(&l->srv->accepted_open, 1);
        close(h->fd);
        free(h);
        h = next;
    }
    evio__dial_close_all(l);
    while (l->conns)
        evio__conn_shutdown(l->conns);
    l->dirty = NULL; /* every connection on it is dead now */
    evio__loop_bury(l);
    evio__loop_settle(l);
}

static int loop_serve(evio__loop *l)
{
    int err = evio__loop_run(l);
    if (err) /* a failed poller takes the whole server down */
        evio__server_act(l->srv, EVIO_SHUTDOWN);
    loop_close_all(l);
    return err;
}

typedef struct loop_thread {
    evio__loop *loop;
    pthread_t thread;
    int err;
    bool started;
} loop_thread;

static void *loop_thread_main(void *arg)
{
    loop_thread *t = arg;
    t->err = loop_serve(t->loop);
    return NULL;
}

static void server_free(evio_server *srv)
{
    for (size_t i = 0; i < srv->nlisteners; i++)
        evio__listener_close(&srv->listeners[i]);
    for (int i = 0; i < srv->nloops; i++)
        evio__loop_destroy(&srv->loops[i]);
    pthread_mutex_destroy(&srv->resolver_lock);
    free(srv->loops);
    free(srv->listeners);
    free(srv);
}

/* Parse everything first, so a malformed address binds nothing; then bind
 * each address once, and again for every other loop where it asks for
 * reuseport (unix sockets cannot share a path, so never for them). */
static int server_bind(evio_server *srv, const char *const addrs[], size_t naddrs)
{
    evio__addr *parsed = calloc(naddrs, sizeof *parsed);
    if (!parsed)
        return -ENOMEM;
    int err = 0;
    for (size_t i = 0; i < naddrs && !err; i++)
        err = evio__addr_parse(addrs[i], &parsed[i], true);
    for (size_t i = 0; i < naddrs && !err; i++) {
        evio__listener *first = &srv->listeners[srv->nlisteners];
        err = evio__listener_open(first, &parsed[i], (int)i);
        if (err)
            break;
        srv->nlisteners++;
        first->per_loop = parsed[i].reuseport && srv->nloops > 1 &&
                          parsed[i].sa.ss_family != AF_UNIX;
        for (int k = 1; first->per_loop && k < srv->nloops && !err; k++) {
            evio__addr bound = first->addr; /* port 0 resolved: all share it */
            evio__listener *copy = &srv->listeners[srv->nlisteners];
            err = evio__listener_open(copy, &bound, (int)i);
            if (!err) {
                copy->loop = k;
                copy->per_loop = true;
                srv->nlisteners++;
            }
        }
    }
    free(parsed);
    return err;
}

static int online_cpus(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

int evio_serve(const evio_events *events, const char *const addrs[], size_t naddrs)
{
    if (!events)
        return EVIO_EINVAL;
    if (!addrs || naddrs == 0)
        return EVIO_ENOADDR;
    int nloops = events->nloops == EVIO_LOOPS_PER_CPU ? online_cpus()
                 : events->nloops <= 0                ? 1
                                                      : events->nloops;
    if (events->nloops < EVIO_LOOPS_PER_CPU || nloops > 1024)
        return EVIO_EINVAL;
    evio_server *srv = calloc(1, sizeof *srv);
    if (!srv)
        return -ENOMEM;
    srv->ev = events;
    atomic_init(&srv->shutdown, 0);
    atomic_init(&srv->balance_next, (unsigned)time(NULL) | 1u);
    if (events->balance == EVIO_ROUND_ROBIN)
        atomic_init(&srv->balance_next, 0);
    srv->udp_idle_ns = events->udp_idle_ms < 0    ? -1
                       : events->udp_idle_ms == 0 ? 60000LL * 1000000
                                                  : (int64_t)events->udp_idle_ms * 1000000;
    srv->high_water = events->output_high_water == 0 ? EVIO_DEFAULT_HIGH_WATER
                                                     : events->output_high_water;
    srv->write_ms = events->write_timeout_ms == 0 ? EVIO_DEFAULT_WRITE_TIMEOUT_MS
                    : events->write_timeout_ms > EVIO__MAX_TIMEOUT_MS ? EVIO__MAX_TIMEOUT_MS
                                                                      : events->write_timeout_ms;
    pthread_mutex_init(&srv->resolver_lock, NULL);
    srv->nloops = nloops;
    srv->listeners = calloc(naddrs * (size_t)nloops, sizeof *srv->listeners);
    srv->loops = calloc((size_t)nloops, sizeof *srv->loops);
    loop_thread *threads = calloc((size_t)nloops, sizeof *threads);
    if (!srv->listeners || !srv->loops || !threads) {
        srv->nloops = 0;
        free(threads);
        server_free(srv);
        return -ENOMEM;
    }

    int err = server_bind(srv, addrs, naddrs);
    int ready = 0;
    for (; !err && ready < nloops; ready++)
        err = evio__loop_init(&srv->loops[ready], srv, ready);
    srv->nloops = ready; /* only what exists gets destroyed */
    for (size_t i = 0; i < srv->nlisteners && !err; i++) {
        evio__listener *ln = &srv->listeners[i];
        evio__loop *l = &srv->loops[ln->loop];
        err = evio__loop_watch(l, ln->fd, EVIO__SLOT_LISTENER, ln, 0);
        if (!err)
            err = evio__loop_listen(l, ln, true);
    }
    if (err) {
        free(threads);
        server_free(srv);
        return err;
    }

    if (events->serving)
        evio__server_act(srv, events->serving(srv));
    if (events->tick)
        srv->tick_due = evio__now_ns(); /* the first tick comes right away */
    for (int i = 1; i < nloops; i++) {
        threads[i].loop = &srv->loops[i];
        threads[i].started =
            pthread_create(&threads[i].thread, NULL, loop_thread_main, &threads[i]) == 0;
        if (!threads[i].started) { /* run what we have, then stop */
            err = -EAGAIN;
            evio__server_act(srv, EVIO_SHUTDOWN);
            break;
        }
    }
    int err0 = loop_serve(&srv->loops[0]);
    if (!err)
        err = err0;
    for (int i = 1; i < nloops; i++) {
        if (!threads[i].started) {
            loop_close_all(&srv->loops[i]); /* never ran: nothing is open */
            continue;
        }
        pthread_join(threads[i].thread, NULL);
        if (!err)
            err = threads[i].err;
    }
    free(threads);
    evio__resolver_stop(srv); /* its threads signal the loops: stop it first */
    while (atomic_load(&srv->callers)) /* e.g. the evio_server_shutdown() that */
        sched_yield();                 /* stopped us, still signalling loops */
    server_free(srv);
    return err;
}

void *evio_server_udata(const evio_server *srv)
{
    return srv->ev->udata;
}

/* Listeners are stored address by address, each followed by its per-loop
 * copies; the first of each is the one to report. */
static const evio__listener *first_listener(const evio_server *srv, size_t i)
{
    for (size_t k = 0; k < srv->nlisteners; k++)
        if (srv->listeners[k].index == (int)i)
            return &srv->listeners[k];
    return NULL;
}

size_t evio_server_naddrs(const evio_server *srv)
{
    return srv->nlisteners ? (size_t)srv->listeners[srv->nlisteners - 1].index + 1 : 0;
}

const struct sockaddr *evio_server_addr(const evio_server *srv, size_t i, socklen_t *len)
{
    const evio__listener *ln = first_listener(srv, i);
    if (!ln)
        return NULL;
    if (len)
        *len = ln->addr.len;
    return (const struct sockaddr *)&ln->addr.sa;
}

int evio_server_addr_format(const evio_server *srv, size_t i, char *buf, size_t size)
{
    const evio__listener *ln = srv ? first_listener(srv, i) : NULL;
    if (!ln)
        return EVIO_EINVAL;
    return evio__addr_format((const struct sockaddr *)&ln->addr.sa, ln->addr.len,
                             ln->addr.socktype, buf, size);
}
