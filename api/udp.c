/* udp.c — UDP sessions: one connection per remote address.
 *
 * A session shares its listener's socket.  It is found by the peer's
 * address in a per-loop hash table and kept on a list ordered by when the
 * peer was last heard, so expiring idle sessions looks only at the oldest:
 * the table cannot grow forever (the Go seed's did). */
#include "config.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "internal.h"
#include "sys.h"

#define UDP_READ_BUDGET 64 /* datagrams per listener per iteration */

struct evio__udp_session {
    evio_conn conn; /* first: a session is a connection, freed as one */
    evio__listener *ln;
    struct sockaddr_storage peer;
    socklen_t peerlen;
    uint64_t hash;
    evio__udp_session *hnext;        /* same bucket */
    evio__udp_session *older, *newer; /* by last heard */
    int64_t last;
};

static evio__udp_session *session_of(evio_conn *c)
{
    return (evio__udp_session *)c;
}

/* FNV-1a over the listener and the parts of the address that name the peer
 * (a sockaddr has padding we must not hash). */
static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

static uint64_t peer_hash(const evio__listener *ln, const struct sockaddr *sa)
{
    uint64_t h = fnv(0xcbf29ce484222325ull, &ln, sizeof ln);
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *s = (const struct sockaddr_in *)sa;
        h = fnv(h, &s->sin_addr, sizeof s->sin_addr);
        return fnv(h, &s->sin_port, sizeof s->sin_port);
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)sa;
        h = fnv(h, &s->sin6_addr, sizeof s->sin6_addr);
        return fnv(h, &s->sin6_port, sizeof s->sin6_port);
    }
    return h;
}

static bool same_peer(const evio__udp_session *s, const evio__listener *ln,
                      const struct sockaddr *sa, uint64_t hash)
{
    if (s->hash != hash || s->ln != ln || s->peer.ss_family != sa->sa_family)
        return false;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)&s->peer;
        const struct sockaddr_in *b = (const struct sockaddr_in *)sa;
        return a->sin_port == b->sin_port && a->sin_addr.s_addr == b->sin_addr.s_addr;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&s->peer;
        const struct sockaddr_in6 *b = (const struct sockaddr_in6 *)sa;
        return a->sin6_port == b->sin6_port &&
               memcmp(&a->sin6_addr, &b->sin6_addr, sizeof a->sin6_addr) == 0;
    }
    return true;
}

static int table_grow(evio__loop *l)
{
    size_t cap = l->udp_cap ? l->udp_cap * 2 : 64;
    evio__udp_session **t = evio__sys.calloc(cap, sizeof *t);
    if (!t)
        return -ENOMEM;
    for (size_t i = 0; i < l->udp_cap; i++) {
        while (l->udp_table[i]) {
            evio__udp_session *s = l->udp_table[i];
            l->udp_table[i] = s->hnext;
            s->hnext = t[s->hash & (cap - 1)];
            t[s->hash & (cap - 1)] = s;
        }
    }
    evio__sys.free(l->udp_table);
    l->udp_table = t;
    l->udp_cap = cap;
    return 0;
}

/* Most recently heard goes last. */
static void lru_unlink(evio__loop *l, evio__udp_session *s)
{
    if (s->older)
        s->older->newer = s->newer;
    else
        l->udp_oldest = s->newer;
    if (s->newer)
        s->newer->older = s->older;
    else
        l->udp_newest = s->older;
    s->older = s->newer = NULL;
}

static void lru_append(evio__loop *l, evio__udp_session *s)
{
    s->older = l->udp_newest;
    s->newer = NULL;
    if (l->udp_newest)
        l->udp_newest->newer = s;
    else
        l->udp_oldest = s;
    l->udp_newest = s;
}

static evio__udp_session *session_open(evio__loop *l, evio__listener *ln,
                                       const struct sockaddr_storage *ra, socklen_t rlen,
                                       uint64_t hash)
{
    if ((l->udp_len + 1) > l->udp_cap && table_grow(l) != 0)
        return NULL;
    if (!evio__admit(l, (const struct sockaddr *)ra, rlen))
        return NULL; /* refused or filtered: the datagram is dropped */
    evio__udp_session *s = evio__sys.calloc(1, sizeof *s);
    if (!s) {
        atomic_fetch_sub(&l->srv->accepted_open, 1);
        return NULL;
    }
    evio_conn *c = &s->conn;
    c->loop = l;
    c->fd = ln->fd;
    c->listener = ln->index;
    c->is_udp = true;
    c->flags = EVIO__CONN_UDP | EVIO__CONN_INBOUND; /* holds a slot of max_conns, like an accepted one */
    s->ln = ln;
    s->peer = *ra;
    s->peerlen = rlen;
    s->hash = hash;
    pthread_mutex_lock(&l->lock);
    c->id = evio__loop_next_id(l);
    int err = evio__idmap_put(&l->ids, c->id, c);
    pthread_mutex_unlock(&l->lock);
    if (err) {
        atomic_fetch_sub(&l->srv->accepted_open, 1);
        evio__sys.free(s);
        return NULL;
    }
    s->hnext = l->udp_table[hash & (l->udp_cap - 1)];
    l->udp_table[hash & (l->udp_cap - 1)] = s;
    l->udp_len++;
    lru_append(l, s);
    evio__conn_link(l, c);
    evio__count(&l->stats.accepted, 1);
    return s;
}

void evio__udp_forget(evio_conn *c)
{
    evio__udp_session *s = session_of(c);
    evio__loop *l = c->loop;
    evio__udp_session **p = &l->udp_table[s->hash & (l->udp_cap - 1)];
    while (*p && *p != s)
        p = &(*p)->hnext;
    if (*p)
        *p = s->hnext;
    l->udp_len--;
    lru_unlink(l, s);
}

void evio__udp_read(evio__loop *l, evio__listener *ln)
{
    const evio_events *ev = l->srv->ev;
    for (int i = 0; i < UDP_READ_BUDGET && !atomic_load(&l->srv->shutdown); i++) {
        struct sockaddr_storage ra;
        socklen_t rlen = sizeof ra;
        ssize_t n = evio__sys.recvfrom(ln->fd, l->rbuf, sizeof l->rbuf, 0, (struct sockaddr *)&ra,
                                       &rlen);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return;
            continue; /* e.g. ECONNREFUSED from an ICMP reply to a send */
        }
        evio__count(&l->stats.bytes_in, (uint64_t)n);
        uint64_t hash = peer_hash(ln, (struct sockaddr *)&ra);
        evio__udp_session *s = NULL;
        if (l->udp_cap)
            for (s = l->udp_table[hash & (l->udp_cap - 1)]; s; s = s->hnext)
                if (same_peer(s, ln, (struct sockaddr *)&ra, hash))
                    break;
        if (!s) {
            s = session_open(l, ln, &ra, rlen, hash);
            if (!s)
                continue; /* refused, or out of memory: drop the datagram */
            if (ev->opened) {
                evio_info info = {
                    .listener = ln->index,
                    .local = (const struct sockaddr *)&ln->addr.sa,
                    .local_len = ln->addr.len,
                    .remote = (const struct sockaddr *)&s->peer,
                    .remote_len = s->peerlen,
                };
                evio__conn_after(&s->conn, ev->opened(&s->conn, &info));
            }
        }
        if (s->conn.flags & EVIO__CONN_DEAD)
            continue;
        s->last = evio__now_ns();
        lru_unlink(l, s);
        lru_append(l, s);
        if (ev->data)
            evio__conn_after(&s->conn, ev->data(&s->conn, l->rbuf, (size_t)n));
    }
}

int evio__udp_write(evio_conn *c, const void *buf, size_t len)
{
    evio__udp_session *s = session_of(c);
    ssize_t n;
    do /* a signal is no reason to lose the datagram */
        n = evio__sys.sendto(s->ln->fd, buf, len, 0, (const struct sockaddr *)&s->peer,
                             s->peerlen);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS
                   ? 0 /* dropped because the socket is full: UDP may lose */
                   : -errno;
    evio__count(&c->loop->stats.bytes_out, (uint64_t)n);
    return 0;
}

int64_t evio__udp_expire(evio__loop *l, int64_t now)
{
    int64_t idle = l->srv->udp_idle_ns;
    if (idle < 0)
        return -1;
    while (l->udp_oldest && l->udp_oldest->last + idle <= now) {
        evio__count(&l->stats.timeouts, 1); /* a close with -ETIMEDOUT, as idle.c counts */
        evio__conn_close(&l->udp_oldest->conn, -ETIMEDOUT);
    }
    return l->udp_oldest ? l->udp_oldest->last + idle : -1;
}

void evio__udp_close_sessions(evio__loop *l, const evio__listener *ln)
{
    for (evio__udp_session *s = l->udp_oldest, *next; s; s = next) {
        next = s->newer; /* closed() cannot close another session at once */
        if (s->ln == ln)
            evio__conn_close(&s->conn, 0);
    }
}

void evio__udp_free_table(evio__loop *l)
{
    evio__sys.free(l->udp_table);
    l->udp_table = NULL;
    l->udp_cap = l->udp_len = 0;
}
