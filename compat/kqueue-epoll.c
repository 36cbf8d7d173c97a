/*
 * kqueue-epoll.c — kqueue() and kevent() emulated over epoll and an eventfd,
 * so that backends/kqueue/kqueue.c can be built and tested on Linux.  For
 * testing only: never installed, never the default backend.  It covers what
 * that backend uses and rejects the rest, as a kernel rejects what it does
 * not know: an unknown filter, flag or fflag, a second EVFILT_USER ident,
 * EV_CLEAR on READ/WRITE or a non-NULL udata on READ/WRITE fail with EINVAL
 * (an EV_ERROR entry if the eventlist has room, else -1 with errno).
 *
 * Design.  kqueue() returns a real fd, the epoll fd, so the caller can poll
 * or close it.  Beside it lives a struct kq: an eventfd for EVFILT_USER,
 * which is always in the epoll set, and a per-fd byte recording which of
 * READ/WRITE are on, because epoll has one registration per fd where kqueue
 * has one knote per (fd, filter): READ|WRITE become EPOLLIN|EPOLLRDHUP|
 * EPOLLOUT with EPOLL_CTL_ADD/MOD/DEL.  The registration also carries the
 * filter bits in its epoll data, so translating events needs no table.  The
 * structs are found by fd in a fixed open-addressed registry read without
 * locks, because the backend's wake() triggers EVFILT_USER from any thread
 * or a signal handler: a trigger is a lookup, atomic loads and an eventfd
 * write, all async-signal-safe.  Changes to READ/WRITE take a per-kqueue
 * mutex, so several threads may call kevent() on one kqueue.
 *
 * How it differs from a real kqueue (also docs/kqueue-emulation.md):
 * - close(2) cannot be seen: close a kqueue with evio__kqueue_close(), or
 *   its eventfd and memory stay until kqueue() returns the same number.
 * - fork(): the child inherits the epoll fd and the eventfd, sharing their
 *   state with the parent; a real kqueue is not inherited at all.
 * - EV_CLEAR only on EVFILT_USER; READ/WRITE are level-triggered only.
 *   No EV_ONESHOT, EV_DISPATCH, EV_DISABLE, NOTE_LOWAT, NOTE_FF* nor any
 *   other filter (timers, signals, processes, vnodes, AIO).
 * - One EVFILT_USER ident per kqueue.
 * - data: FIONREAD for EVFILT_READ (0 on a listening socket, where kqueue
 *   gives the accept backlog); always 0 for EVFILT_WRITE (kqueue: the free
 *   space in the send buffer) and EVFILT_USER.
 * - fflags of an EV_EOF entry is 0, not the socket error: reading SO_ERROR
 *   here would clear it, and the caller's own read/write/getsockopt must
 *   find it.  EV_EOF is set on READ for EPOLLRDHUP/EPOLLHUP and on WRITE
 *   for EPOLLHUP; EPOLLERR alone makes both ready without EV_EOF, as
 *   kqueue's socket filters do for a pending so_error.
 * - A regular file cannot be registered (epoll gives EPERM; kqueue accepts
 *   it and reports it always ready).
 * - epoll tracks open files, not fds: an fd closed without EV_DELETE while
 *   a dup of it stays open keeps reporting events.  A closed fd's leftover
 *   record is harmless: the next EV_ADD on that number starts afresh.
 * - Timeouts are rounded up to whole milliseconds and capped at INT_MAX ms
 *   (~24.8 days), after which kevent() returns 0 early.
 * - Order: up to 256 epoll events a call, each fd's READ before its WRITE;
 *   when only one of them fits the eventlist, they alternate between calls
 *   (the other is still level-triggered and comes next time).
 * - Two threads waiting on one kqueue may both see one EV_CLEAR trigger;
 *   kevent() may return 0 early if only a deleted user event was pending.
 * - At most 1024 kqueues open at once (EMFILE beyond).
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sys/event.h"

#define F_READ 1u
#define F_WRITE 2u
#define F_USER 4u /* tags the eventfd's registration */

struct kq {
    int epfd, evfd;
    pthread_mutex_t mu; /* guards filt and EVFILT_USER add/delete */
    unsigned char *filt; /* filt[fd]: F_READ|F_WRITE as registered */
    size_t nfilt;
    _Atomic int user; /* 0 none, 1 level-triggered, 2 EV_CLEAR */
    _Atomic uintptr_t user_ident;
    _Atomic(void *) user_udata;
    _Atomic unsigned flip; /* which half goes out when one fits */
};

/* The registry: key is fd + 1, 0 never used, -1 removed (so probes go on). */
#define KQ_MAX 1024
static struct {
    _Atomic int key;
    _Atomic(struct kq *) kq;
} reg[KQ_MAX];
static pthread_mutex_t reg_mu = PTHREAD_MUTEX_INITIALIZER;

static struct kq *lookup(int fd)
{
    unsigned h = (unsigned)fd % KQ_MAX;
    for (int i = 0; i < KQ_MAX; i++, h = (h + 1) % KQ_MAX) {
        int key = atomic_load(&reg[h].key);
        if (key == 0)
            break;
        if (key == fd + 1)
            return atomic_load(&reg[h].kq);
    }
    return NULL;
}

static void kq_free(struct kq *k)
{
    close(k->evfd);
    pthread_mutex_destroy(&k->mu);
    free(k->filt);
    free(k);
}

/* Insert k under its epoll fd.  An entry already there was left by a plain
 * close() of an older kqueue with the same number: reclaim it. */
static int reg_insert(struct kq *k)
{
    int slot = -1;
    unsigned h = (unsigned)k->epfd % KQ_MAX;
    pthread_mutex_lock(&reg_mu);
    for (int i = 0; i < KQ_MAX; i++, h = (h + 1) % KQ_MAX) {
        int key = atomic_load(&reg[h].key);
        if (key == k->epfd + 1) {
            kq_free(atomic_exchange(&reg[h].kq, k));
            slot = -2;
            break;
        }
        if (key <= 0 && slot < 0)
            slot = (int)h;
        if (key == 0)
            break;
    }
    if (slot >= 0) {
        atomic_store(&reg[slot].kq, k);
        atomic_store(&reg[slot].key, k->epfd + 1);
    }
    pthread_mutex_unlock(&reg_mu);
    return slot == -1 ? EMFILE : 0;
}

int evio__kqueue(void)
{
    struct kq *k = calloc(1, sizeof *k);
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = (uint64_t)F_USER << 32};
    int err;
    if (k == NULL)
        return -1;
    atomic_init(&k->user, 0);
    atomic_init(&k->user_ident, 0);
    atomic_init(&k->user_udata, NULL);
    atomic_init(&k->flip, 0);
    k->epfd = epoll_create1(EPOLL_CLOEXEC);
    k->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (k->epfd < 0 || k->evfd < 0 || epoll_ctl(k->epfd, EPOLL_CTL_ADD, k->evfd, &ev) < 0)
        err = errno;
    else if ((err = pthread_mutex_init(&k->mu, NULL)) == 0 && (err = reg_insert(k)) != 0)
        pthread_mutex_destroy(&k->mu);
    if (err == 0)
        return k->epfd;
    if (k->epfd >= 0)
        close(k->epfd);
    if (k->evfd >= 0)
        close(k->evfd);
    free(k);
    errno = err;
    return -1;
}

int evio__kqueue_close(int kq)
{
    struct kq *k = NULL;
    unsigned h = (unsigned)kq % KQ_MAX;
    pthread_mutex_lock(&reg_mu);
    for (int i = 0; kq >= 0 && i < KQ_MAX; i++, h = (h + 1) % KQ_MAX) {
        int key = atomic_load(&reg[h].key);
        if (key == 0)
            break;
        if (key == kq + 1) {
            atomic_store(&reg[h].key, -1);
            k = atomic_exchange(&reg[h].kq, NULL);
            break;
        }
    }
    pthread_mutex_unlock(&reg_mu);
    if (k != NULL)
        kq_free(k);
    return close(kq);
}

static void drain(struct kq *k)
{
    uint64_t v;
    if (read(k->evfd, &v, sizeof v) < 0) {
        /* EAGAIN: nothing was pending */
    }
}

/* The flags each filter accepts; EV_ADD with EV_DELETE is refused too. */
#define FD_FLAGS (unsigned)(EV_ADD | EV_DELETE | EV_ENABLE | EV_RECEIPT)
#define USER_FLAGS (FD_FLAGS | EV_CLEAR)
#define ADD_DEL (EV_ADD | EV_DELETE)

static int change_user(struct kq *k, const struct kevent *kev)
{
    unsigned fl = kev->flags;
    int err = 0;
    if ((kev->fflags & ~(unsigned)NOTE_TRIGGER) || (fl & ~USER_FLAGS) || (fl & ADD_DEL) == ADD_DEL)
        return EINVAL;
    if (fl & (EV_ADD | EV_DELETE)) {
        pthread_mutex_lock(&k->mu);
        int mine = atomic_load(&k->user) && atomic_load(&k->user_ident) == kev->ident;
        if (fl & EV_ADD) {
            if (atomic_load(&k->user) && !mine) {
                err = EINVAL; /* one EVFILT_USER ident per kqueue */
            } else {
                atomic_store(&k->user_ident, kev->ident);
                atomic_store(&k->user_udata, kev->udata);
                atomic_store(&k->user, (fl & EV_CLEAR) ? 2 : 1);
            }
        } else if (!mine) {
            err = ENOENT;
        } else {
            atomic_store(&k->user, 0);
            drain(k); /* a trigger left behind must not fire a later add */
        }
        pthread_mutex_unlock(&k->mu);
        if (err || (fl & EV_DELETE))
            return err;
    } else if (!atomic_load(&k->user) || atomic_load(&k->user_ident) != kev->ident) {
        return ENOENT; /* lock-free path: a trigger, maybe from a signal handler */
    } else {
        atomic_store(&k->user_udata, kev->udata);
    }
    if (kev->fflags & NOTE_TRIGGER) {
        uint64_t one = 1;
        /* EAGAIN: the counter is saturated, so it is triggered already */
        if (write(k->evfd, &one, sizeof one) < 0 && errno != EAGAIN)
            return errno;
    }
    return 0;
}

static int ep_ctl(struct kq *k, int op, int fd, unsigned want)
{
    struct epoll_event ev = {
        .events = ((want & F_READ) ? EPOLLIN | EPOLLRDHUP : 0) | ((want & F_WRITE) ? EPOLLOUT : 0),
        .data.u64 = (uint32_t)fd | (uint64_t)want << 32,
    };
    return epoll_ctl(k->epfd, op, fd, &ev);
}

static int grow(struct kq *k, int fd)
{
    size_t n = k->nfilt ? k->nfilt : 64;
    unsigned char *p;
    if ((size_t)fd < k->nfilt)
        return 0;
    while (n <= (size_t)fd)
        n *= 2;
    if ((p = realloc(k->filt, n)) == NULL)
        return ENOMEM;
    memset(p + k->nfilt, 0, n - k->nfilt);
    k->filt = p;
    k->nfilt = n;
    return 0;
}

/* Called with k->mu held. */
static int change_fd_locked(struct kq *k, int fd, unsigned fl, unsigned bit)
{
    unsigned old = (size_t)fd < k->nfilt ? k->filt[fd] : 0, want = old;
    int op, r, err;
    if (!(fl & EV_ADD) && !(old & bit))
        return fcntl(fd, F_GETFD) < 0 ? EBADF : ENOENT; /* kqueue checks the fd first */
    if ((err = grow(k, fd)) != 0)
        return err;
    if (fl & EV_ADD)
        want |= bit;
    else if (fl & EV_DELETE)
        want &= ~bit;
    op = want == 0 ? EPOLL_CTL_DEL : old == 0 ? EPOLL_CTL_ADD : EPOLL_CTL_MOD;
    r = ep_ctl(k, op, fd, want);
    if (r < 0 && errno == ENOENT && op == EPOLL_CTL_MOD && (fl & EV_ADD)) {
        /* Our record outlived the fd: it was closed (epoll forgot it as
         * kqueue forgets the knotes) and its number reused.  Start afresh. */
        want = bit;
        r = ep_ctl(k, EPOLL_CTL_ADD, fd, want);
    }
    if (r < 0) {
        err = errno;
        if (err == ENOENT || err == EBADF)
            k->filt[fd] = 0; /* whatever was registered is gone */
        return err;
    }
    k->filt[fd] = (unsigned char)want;
    return 0;
}

static int change_fd(struct kq *k, const struct kevent *kev)
{
    unsigned fl = kev->flags;
    int err;
    if (kev->fflags != 0 || kev->udata != NULL || (fl & ~FD_FLAGS) || (fl & ADD_DEL) == ADD_DEL)
        return EINVAL;
    if (kev->ident > INT_MAX)
        return EBADF;
    pthread_mutex_lock(&k->mu);
    err = change_fd_locked(k, (int)kev->ident, fl, kev->filter == EVFILT_READ ? F_READ : F_WRITE);
    pthread_mutex_unlock(&k->mu);
    return err;
}

static int user_event(struct kq *k, struct kevent *out)
{
    int mode = atomic_load(&k->user);
    if (mode != 1)
        drain(k); /* EV_CLEAR resets on retrieval; with no user event it is a leftover */
    if (mode == 0)
        return 0;
    EV_SET(out, atomic_load(&k->user_ident), EVFILT_USER, mode == 2 ? EV_CLEAR : 0, 0, 0,
           atomic_load(&k->user_udata));
    return 1;
}

static int collect(struct kq *k, struct kevent *out, int max, int ms)
{
    struct epoll_event eb[256];
    int n = epoll_wait(k->epfd, eb, max < 256 ? max : 256, ms), m = 0;
    for (int i = 0; i < n && m < max; i++) {
        unsigned bits = (unsigned)(eb[i].data.u64 >> 32), ev = eb[i].events;
        int fd = (int)(uint32_t)eb[i].data.u64, avail = 0, eof;
        if (bits & F_USER) {
            m += user_event(k, out + m);
            continue;
        }
        int rd = (bits & F_READ) && (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR));
        int wr = (bits & F_WRITE) && (ev & (EPOLLOUT | EPOLLHUP | EPOLLERR));
        if (rd && wr && m + 1 == max) {
            if (atomic_fetch_add(&k->flip, 1) & 1)
                rd = 0;
            else
                wr = 0;
        }
        if (rd) {
            if (ioctl(fd, FIONREAD, &avail) < 0)
                avail = 0;
            eof = (ev & (EPOLLRDHUP | EPOLLHUP)) ? EV_EOF : 0;
            EV_SET(&out[m++], fd, EVFILT_READ, eof, 0, avail, NULL);
        }
        if (wr) {
            eof = (ev & EPOLLHUP) ? EV_EOF : 0;
            EV_SET(&out[m++], fd, EVFILT_WRITE, eof, 0, 0, NULL);
        }
    }
    return n < 0 ? -1 : m;
}

static int fail(int err)
{
    errno = err;
    return -1;
}

int evio__kevent(int kq, const struct kevent *changelist, int nchanges,
                 struct kevent *eventlist, int nevents,
                 const struct timespec *timeout)
{
    int saved = errno, nerr = 0, ms = -1, n;
    struct kq *k = kq >= 0 ? lookup(kq) : NULL;
    if (k == NULL)
        return fail(EBADF);
    if (nchanges < 0 || nevents < 0)
        return fail(EINVAL);
    if (timeout != NULL) {
        if (timeout->tv_sec < 0 || timeout->tv_nsec < 0 || timeout->tv_nsec >= 1000000000L)
            return fail(EINVAL);
        /* Round up, so the caller never wakes before its deadline. */
        long long t = timeout->tv_sec >= INT_MAX / 1000 ? INT_MAX
                    : timeout->tv_sec * 1000LL + (timeout->tv_nsec + 999999) / 1000000;
        ms = t > INT_MAX ? INT_MAX : (int)t;
    }
    /* Changes first, in order.  Results go to eventlist[nerr] with nerr <= i,
     * so a changelist that is also the eventlist is read before written. */
    for (int i = 0; i < nchanges; i++) {
        struct kevent kev = changelist[i];
        int err;
        kev.flags &= (unsigned short)~EV_SYSFLAGS;
        if (kev.filter == EVFILT_READ || kev.filter == EVFILT_WRITE)
            err = change_fd(k, &kev);
        else if (kev.filter == EVFILT_USER)
            err = change_user(k, &kev);
        else
            err = EINVAL;
        if (err == 0 && !(kev.flags & EV_RECEIPT))
            continue;
        if (nerr == nevents) {
            if (err != 0)
                return fail(err); /* no room: like the kernel, stop here */
            continue;
        }
        kev.flags = EV_ERROR; /* as FreeBSD: the other flags are not kept */
        kev.data = err;
        eventlist[nerr++] = kev;
    }
    if (nerr > 0 || nevents == 0) {
        errno = saved;
        return nerr;
    }
    if ((n = collect(k, eventlist, nevents, ms)) >= 0)
        errno = saved;
    return n;
}
