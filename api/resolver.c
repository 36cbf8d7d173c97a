/* resolver.c — name resolution for evio_dial(), off the loop.
 *
 * getaddrinfo() blocks, so names are looked up on a small private pool of
 * threads, started on the first dial of a name and shared with nothing
 * else.  An answer goes back to the dialing loop's queue and wakes it, the
 * same way evio_wake() does. */
#include "config.h"

#include <errno.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define RESOLVER_THREADS 2

typedef struct job {
    struct job *next;
    evio__loop *loop;
    uint64_t id;
    int family;
    char host[256];
} job;

struct evio__resolver {
    evio_server *srv;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    job *head, *tail;
    bool stop;
    int nthreads;
    pthread_t threads[RESOLVER_THREADS];
};

static int system_resolve(void *udata, const char *host, int family,
                          struct sockaddr_storage *out, socklen_t *outlen)
{
    (void)udata;
    struct addrinfo hints = {.ai_family = family, .ai_socktype = SOCK_STREAM}, *res;
    int rc = getaddrinfo(host, NULL, &hints, &res);
    if (rc == EAI_SYSTEM)
        return errno ? -errno : EVIO_ENONAME;
    if (rc != 0)
        return EVIO_ENONAME;
    memcpy(out, res->ai_addr, res->ai_addrlen);
    *outlen = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

static void answer(const job *j, int err, const struct sockaddr_storage *sa, socklen_t len)
{
    evio__resolved *r = calloc(1, sizeof *r);
    if (!r)
        return; /* the dial's timeout, if any, still ends it */
    r->id = j->id;
    r->err = err;
    if (!err) {
        r->sa = *sa;
        r->len = len;
    }
    evio__loop *l = j->loop;
    pthread_mutex_lock(&l->lock);
    r->next = l->resolved;
    l->resolved = r;
    pthread_mutex_unlock(&l->lock);
    evio__loop_signal(l);
}

static void *worker(void *arg)
{
    evio__resolver *r = arg;
    const evio_events *ev = r->srv->ev;
    evio_resolver resolve = ev->resolve ? ev->resolve : system_resolve;
    pthread_mutex_lock(&r->mu);
    for (;;) {
        while (!r->head && !r->stop)
            pthread_cond_wait(&r->cv, &r->mu);
        if (r->stop)
            break;
        job *j = r->head;
        r->head = j->next;
        if (!r->head)
            r->tail = NULL;
        pthread_mutex_unlock(&r->mu);

        struct sockaddr_storage sa = {0};
        socklen_t len = 0;
        int err = resolve(ev->udata, j->host, j->family, &sa, &len);
        if (!err && (len == 0 || len > sizeof sa ||
                     (sa.ss_family != AF_INET && sa.ss_family != AF_INET6)))
            err = EVIO_ENONAME; /* a resolver answer we cannot connect to */
        answer(j, err, &sa, len);
        free(j);

        pthread_mutex_lock(&r->mu);
    }
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

static evio__resolver *resolver_start(evio_server *srv)
{
    evio__resolver *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->srv = srv;
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    for (int i = 0; i < RESOLVER_THREADS; i++)
        if (pthread_create(&r->threads[r->nthreads], NULL, worker, r) == 0)
            r->nthreads++;
    if (r->nthreads == 0) {
        pthread_cond_destroy(&r->cv);
        pthread_mutex_destroy(&r->mu);
        free(r);
        return NULL;
    }
    return r;
}

int evio__resolver_submit(evio_server *srv, evio__loop *l, evio_conn *c)
{
    pthread_mutex_lock(&srv->resolver_lock);
    if (!srv->resolver)
        srv->resolver = resolver_start(srv);
    evio__resolver *r = srv->resolver;
    pthread_mutex_unlock(&srv->resolver_lock);
    job *j = r ? calloc(1, sizeof *j) : NULL;
    if (!j)
        return -ENOMEM;
    j->loop = l;
    j->id = c->id;
    j->family = c->rare->dial->family;
    memcpy(j->host, c->rare->dial->host, sizeof j->host);
    pthread_mutex_lock(&r->mu);
    if (r->tail)
        r->tail->next = j;
    else
        r->head = j;
    r->tail = j;
    pthread_cond_signal(&r->cv);
    pthread_mutex_unlock(&r->mu);
    return 0;
}

/* After the loops stopped: let lookups in progress finish (their answers
 * land in queues nobody drains and are freed with the loops), drop the
 * rest. */
void evio__resolver_stop(evio_server *srv)
{
    evio__resolver *r = srv->resolver;
    if (!r)
        return;
    pthread_mutex_lock(&r->mu);
    r->stop = true;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    for (int i = 0; i < r->nthreads; i++)
        pthread_join(r->threads[i], NULL);
    while (r->head) {
        job *j = r->head;
        r->head = j->next;
        free(j);
    }
    pthread_cond_destroy(&r->cv);
    pthread_mutex_destroy(&r->mu);
    free(r);
    srv->resolver = NULL;
}
