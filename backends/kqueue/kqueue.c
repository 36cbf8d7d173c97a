/*
 * kqueue.c — the kqueue backend: FreeBSD, macOS, NetBSD, OpenBSD, DragonFly.
 *
 * kqueue is the cleaner design next to epoll, and it has its own quirks:
 *
 * - One knote per (fd, filter).  Interest in reading and in writing are two
 *   registrations, EVFILT_READ and EVFILT_WRITE, and readiness comes back as
 *   two kevents for one fd, not necessarily adjacent.  poll() merges them
 *   into one evio__event per fd with slot[fd], "where this fd sits in this
 *   batch", so merging costs O(1) per kevent and is undone after the batch.
 *
 * - Changes ride in a changelist, and a failed change comes back in the
 *   eventlist as an entry flagged EV_ERROR with the errno in data, which is
 *   not readiness.  libevent batches every change into the next wait; that
 *   saves syscalls but set() must return the errno of its own change, so
 *   set() makes one kevent() call with the (at most two) filters that
 *   change, each flagged EV_RECEIPT: every change then answers with an
 *   EV_ERROR entry (data 0 on success), and since the receipts fill the
 *   eventlist no pending event is drained.  FreeBSD overwrites the flags of
 *   a receipt with EV_ERROR, so we match receipts to changes by filter.
 *   Deleting a filter that is not there (ENOENT) is tolerated: the fd is
 *   then as the caller wants it.  Where EV_RECEIPT is missing, set() makes
 *   one kevent() per change, where an error is simply -1 and errno.
 *
 * - Socket errors are not EV_ERROR: a reset or refused socket reports
 *   EV_EOF on its filters, with the pending so_error in fflags.  We report
 *   that as plain readiness (READ and/or WRITE, per filter) and ignore
 *   fflags: the frontend's own read(), write() or getsockopt(SO_ERROR)
 *   finds the error, exactly as with epoll's EPOLLERR.
 *
 * - Filters are level-triggered unless EV_CLEAR is given; we keep READ and
 *   WRITE level-triggered, as the frontend expects.  The wakeup is
 *   EVFILT_USER (FreeBSD 8.1, macOS 10.6, NetBSD 10, DragonFly; OpenBSD
 *   only since 2025) registered with EV_CLEAR, so a thousand NOTE_TRIGGERs
 *   coalesce into one event that resets when retrieved, and wake() is a
 *   single kevent() call: thread-safe and async-signal-safe.  Without
 *   EVFILT_USER a non-blocking self-pipe does the same job.
 *
 * - A kqueue is not inherited by fork(): the child must make its own.  We
 *   still set FD_CLOEXEC, since exec without fork keeps the descriptor.
 *
 * - Timeouts are a timespec: nanoseconds, so nothing to round here (the
 *   kernel sleeps at least that long).  macOS fails with EINVAL beyond
 *   10^8 seconds (libevent, netty and swift-nio met it), so we cap there;
 *   waking early is harmless.
 *
 * On Linux this file is built against compat/sys/event.h, an emulation
 * over epoll (compat/kqueue-epoll.c) that exists only to test it here.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <sys/types.h>
#include <sys/event.h>
#include <sys/time.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include "backend.h"
#include "sys.h"

/* EVIO_KQUEUE_PIPE_WAKE forces the self-pipe, to test it where
 * EVFILT_USER exists. */
#if defined(EVFILT_USER) && defined(NOTE_TRIGGER) && !defined(EVIO_KQUEUE_PIPE_WAKE)
#define KQ_USER_WAKE 1
#else
#define KQ_USER_WAKE 0
#endif

/* The emulation cannot see close(2); it has its own. */
#ifdef EVIO_KQUEUE_EMULATED
#define kq_close(fd) evio__kqueue_close(fd)
#define KQ_CAPS EVIO__CAP_EMULATED
#else
#define kq_close(fd) close(fd)
#define KQ_CAPS EVIO__CAP_NATIVE
#endif

#define KQ_MAX_SEC 100000000 /* macOS: EINVAL beyond 10^8 s */

struct evio__poller {
    int kq;
    int cap; /* entries in kev */
    struct kevent *kev; /* poll()'s eventlist */
    int nslot;
    int *slot; /* slot[fd]: 1 + index in poll()'s out[] during a batch, else 0 */
#if !KQ_USER_WAKE
    int pipe[2]; /* [0] registered for EVFILT_READ; wake() writes [1] */
#endif
};

static void kq_destroy(evio__poller *p)
{
    if (p->kq >= 0)
        kq_close(p->kq);
#if !KQ_USER_WAKE
    if (p->pipe[0] >= 0)
        close(p->pipe[0]);
    if (p->pipe[1] >= 0)
        close(p->pipe[1]);
#endif
    evio__sys.free(p->kev);
    evio__sys.free(p->slot);
    evio__sys.free(p);
}

static int cloexec(int fd, int nonblock)
{
    if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
        return -1;
    return nonblock ? fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) : 0;
}

static evio__poller *kq_create(void)
{
    evio__poller *p = evio__sys.calloc(1, sizeof *p);
    struct kevent ev;
    int err;
    if (p == NULL)
        return NULL;
    p->kq = -1;
    p->cap = 64;
    /* udata is 0, not NULL, throughout: it is an intptr_t before NetBSD 10. */
#if KQ_USER_WAKE
    EV_SET(&ev, 0, EVFILT_USER, EV_ADD | EV_CLEAR, 0, 0, 0);
#else
    p->pipe[0] = p->pipe[1] = -1;
#endif
    if ((p->kev = evio__sys.malloc((size_t)p->cap * sizeof *p->kev)) == NULL
        || (p->kq = kqueue()) < 0 || cloexec(p->kq, 0) < 0)
        goto fail;
#if !KQ_USER_WAKE
    if (pipe(p->pipe) < 0 || cloexec(p->pipe[0], 1) < 0 || cloexec(p->pipe[1], 1) < 0)
        goto fail;
    EV_SET(&ev, p->pipe[0], EVFILT_READ, EV_ADD, 0, 0, 0);
#endif
    if (kevent(p->kq, &ev, 1, NULL, 0, NULL) < 0)
        goto fail;
    return p;
fail:
    err = errno;
    kq_destroy(p);
    errno = err;
    return NULL;
}

/* A delete of a filter that is not there leaves the fd as wanted. */
static int tolerable(const struct kevent *ch, int n, short filter, int err)
{
    for (int i = 0; i < n; i++)
        if (ch[i].filter == filter)
            return err == ENOENT && (ch[i].flags & EV_DELETE);
    return 0;
}

static int kq_set(evio__poller *p, int fd, unsigned old_mask, unsigned new_mask)
{
    struct kevent ch[2];
    int n = 0, err = 0;
    if (fd < 0)
        return -EBADF;
    if (new_mask != 0 && fd >= p->nslot) {
        int m = p->nslot ? p->nslot : 64, *s;
        while (m <= fd)
            m *= 2;
        if ((s = evio__sys.realloc(p->slot, (size_t)m * sizeof *s)) == NULL)
            return -ENOMEM;
        for (int i = p->nslot; i < m; i++)
            s[i] = 0;
        p->slot = s;
        p->nslot = m;
    }
    if ((old_mask ^ new_mask) & EVIO__READ)
        EV_SET(&ch[n++], fd, EVFILT_READ, (new_mask & EVIO__READ) ? EV_ADD : EV_DELETE, 0, 0, 0);
    if ((old_mask ^ new_mask) & EVIO__WRITE)
        EV_SET(&ch[n++], fd, EVFILT_WRITE, (new_mask & EVIO__WRITE) ? EV_ADD : EV_DELETE, 0, 0, 0);
#ifdef EV_RECEIPT
    if (n > 0) {
        struct kevent res[2];
        struct timespec zero = {0, 0};
        for (int i = 0; i < n; i++)
            ch[i].flags |= EV_RECEIPT;
        int r = kevent(p->kq, ch, n, res, n, &zero);
        if (r < 0)
            return -errno;
        for (int i = 0; i < r; i++)
            if ((res[i].flags & EV_ERROR) && res[i].data != 0
                && !tolerable(ch, n, res[i].filter, (int)res[i].data))
                err = (int)res[i].data;
    }
#else
    for (int i = 0; i < n; i++)
        if (kevent(p->kq, &ch[i], 1, NULL, 0, NULL) < 0
            && !tolerable(&ch[i], 1, ch[i].filter, errno))
            err = errno;
#endif
    return -err;
}

static int kq_poll(evio__poller *p, evio__event *out, int max, int64_t timeout_ns)
{
    struct timespec ts, *tsp = NULL;
    int n, m = 0;
    if (max <= 0)
        return -EINVAL;
    if (timeout_ns >= 0) {
        int64_t s = timeout_ns / 1000000000;
        ts.tv_sec = s > KQ_MAX_SEC ? KQ_MAX_SEC : (time_t)s;
        ts.tv_nsec = s > KQ_MAX_SEC ? 0 : (long)(timeout_ns % 1000000000);
        tsp = &ts;
    }
    if (max > p->cap) { /* on failure, a smaller batch does */
        struct kevent *k = evio__sys.realloc(p->kev, (size_t)max * sizeof *k);
        if (k != NULL) {
            p->kev = k;
            p->cap = max;
        }
    }
    n = kevent(p->kq, NULL, 0, p->kev, max < p->cap ? max : p->cap, tsp);
    if (n < 0)
        return errno == EINTR ? 0 : -errno;
    for (int i = 0; i < n; i++) {
        const struct kevent *e = &p->kev[i];
        int fd = (int)e->ident;
        unsigned bit;
        if (e->flags & EV_ERROR) /* never readiness (none expected: no changes here) */
            continue;
        if (e->filter == EVFILT_READ)
            bit = EVIO__READ;
        else if (e->filter == EVFILT_WRITE)
            bit = EVIO__WRITE;
        else
            continue; /* EVFILT_USER: the wake; EV_CLEAR has reset it */
#if !KQ_USER_WAKE
        if (fd == p->pipe[0]) {
            char buf[64];
            while (evio__sys.read(fd, buf, sizeof buf) > 0)
                ;
            continue;
        }
#endif
        if (fd < p->nslot && p->slot[fd] != 0) {
            out[p->slot[fd] - 1].mask |= bit;
            continue;
        }
        if (fd < p->nslot)
            p->slot[fd] = m + 1;
        out[m].fd = fd;
        out[m].mask = bit;
        m++;
    }
    for (int i = 0; i < m; i++)
        if (out[i].fd < p->nslot)
            p->slot[out[i].fd] = 0;
    return m;
}

static int kq_wake(evio__poller *p)
{
    int saved = errno, r = 0;
#if KQ_USER_WAKE
    struct kevent ev;
    EV_SET(&ev, 0, EVFILT_USER, 0, NOTE_TRIGGER, 0, 0);
    if (kevent(p->kq, &ev, 1, NULL, 0, NULL) < 0)
        r = -errno;
#else
    if (evio__sys.write(p->pipe[1], "", 1) < 0 && errno != EAGAIN)
        r = -errno;
#endif
    errno = saved;
    return r;
}

const evio__backend_ops evio__backend = {
    .name = "kqueue",
    .caps = KQ_CAPS,
    .create = kq_create,
    .destroy = kq_destroy,
    .set = kq_set,
    .poll = kq_poll,
    .wake = kq_wake,
};
