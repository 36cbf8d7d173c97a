/*
 * poll.c — the portable fallback backend, over POSIX poll(2).
 *
 * Quirks of poll, and what this file does about them:
 *  - Every call hands the kernel the whole set and the kernel walks it: the
 *    cost is O(registered fds) per wait, not O(ready fds) as with epoll or
 *    kqueue.  This backend is for systems that have neither (and for
 *    comparison), as libevent's and libev's poll backends are.
 *  - The set is a dense array (what poll() wants) plus an fd -> position
 *    table, so adding, changing and removing interest are O(1): a removed
 *    entry's slot is filled by the last one.
 *  - POLLERR, POLLHUP and POLLNVAL are reported whatever was asked; they
 *    become readiness for read and write, as epoll's backend does, so the
 *    frontend's own read() or write() meets the error and reports it.
 *    POLLNVAL (an fd closed while registered) cannot happen while the
 *    frontend removes before it closes, but would then end in EBADF
 *    rather than a busy loop.
 *  - The timeout counts milliseconds: rounded up, never down, or a loop
 *    waiting for a deadline 0.4 ms away would spin (Redis #8764).
 *  - More ready fds than the caller's array holds: the rest stay ready
 *    (level-triggered) and the next scan starts where this one stopped, so
 *    the fds at the end of the array are not starved.
 *  - The wakeup is a non-blocking pipe at position 0 (eventfd is Linux-only
 *    and pipe2() is missing on some systems, hence pipe() and fcntl()): a
 *    full pipe (EAGAIN) still means "woken"; poll drains it.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdlib.h>
#include <unistd.h>

#include "backend.h"
#include "sys.h"

struct evio__poller {
    struct pollfd *fds; /* fds[0] is the wake pipe's read end */
    int nfds, cap;
    int *pos; /* pos[fd]: index of fd in fds, or -1 */
    int npos;
    int wake[2];
    int start; /* where the next scan of the user fds (fds[1..]) begins */
};

static int set_flags(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 || fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
        return -1;
    return 0;
}

static void poll_destroy_poller(evio__poller *p)
{
    if (p->wake[0] >= 0)
        close(p->wake[0]);
    if (p->wake[1] >= 0)
        close(p->wake[1]);
    evio__sys.free(p->fds);
    evio__sys.free(p->pos);
    evio__sys.free(p);
}

static evio__poller *poll_create_poller(void)
{
    evio__poller *p = evio__sys.calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->wake[0] = p->wake[1] = -1;
    p->cap = 64;
    p->fds = evio__sys.malloc((size_t)p->cap * sizeof *p->fds);
    if (!p->fds || pipe(p->wake) < 0 || set_flags(p->wake[0]) < 0 || set_flags(p->wake[1]) < 0) {
        int err = errno;
        poll_destroy_poller(p);
        errno = err;
        return NULL;
    }
    p->fds[0] = (struct pollfd){.fd = p->wake[0], .events = POLLIN};
    p->nfds = 1;
    return p;
}

/* Room for one more entry and for pos[fd]. */
static int grow(evio__poller *p, int fd)
{
    if (p->nfds == p->cap) {
        struct pollfd *f = evio__sys.realloc(p->fds, (size_t)p->cap * 2 * sizeof *f);
        if (!f)
            return -ENOMEM;
        p->fds = f;
        p->cap *= 2;
    }
    if (fd >= p->npos) {
        int n = p->npos ? p->npos : 64;
        while (n <= fd)
            n *= 2;
        int *q = evio__sys.realloc(p->pos, (size_t)n * sizeof *q);
        if (!q)
            return -ENOMEM;
        for (int i = p->npos; i < n; i++)
            q[i] = -1;
        p->pos = q;
        p->npos = n;
    }
    return 0;
}

static int poll_set(evio__poller *p, int fd, unsigned old_mask, unsigned new_mask)
{
    short events = (short)((new_mask & EVIO__READ ? POLLIN : 0) | (new_mask & EVIO__WRITE ? POLLOUT : 0));
    if (fd < 0)
        return -EBADF;
    int i = fd < p->npos ? p->pos[fd] : -1;
    if (!old_mask && !new_mask)
        return 0;
    if (!old_mask) { /* new to the poller */
        if (i >= 0)
            return -EEXIST;
        int err = grow(p, fd);
        if (err)
            return err;
        p->pos[fd] = p->nfds;
        p->fds[p->nfds++] = (struct pollfd){.fd = fd, .events = events};
        return 0;
    }
    if (i < 0)
        return -ENOENT;
    if (new_mask) {
        p->fds[i].events = events;
        return 0;
    }
    /* Forget fd: the last entry takes its place. */
    p->fds[i] = p->fds[--p->nfds];
    p->pos[p->fds[i].fd] = i;
    p->pos[fd] = -1;
    return 0;
}

static int poll_poll(evio__poller *p, evio__event *out, int max, int64_t timeout_ns)
{
    int ms = -1;
    if (timeout_ns >= 0) {
        int64_t r = (timeout_ns + 999999) / 1000000;
        ms = r > INT_MAX ? INT_MAX : (int)r;
    }
    int n = poll(p->fds, (nfds_t)p->nfds, ms);
    if (n < 0)
        return errno == EINTR ? 0 : -errno;
    if (n > 0 && p->fds[0].revents) { /* our pipe: drain it, report nothing */
        char buf[256];
        ssize_t r;
        while ((r = evio__sys.read(p->wake[0], buf, sizeof buf)) > 0 || (r < 0 && errno == EINTR))
            ;
        n--;
    }
    int k = 0, m = p->nfds - 1; /* user fds are fds[1..m] */
    for (int i = 0; i < m && n > 0 && k < max; i++) {
        int j = 1 + (p->start + i) % m;
        short re = p->fds[j].revents;
        if (!re)
            continue;
        n--;
        unsigned mask = 0;
        if (re & (POLLIN | POLLERR | POLLHUP | POLLNVAL))
            mask |= EVIO__READ;
        if (re & (POLLOUT | POLLERR | POLLHUP | POLLNVAL))
            mask |= EVIO__WRITE;
        out[k].fd = p->fds[j].fd; /* the rest is read only from a completion backend */
        out[k++].mask = mask;
        if (k == max) /* the caller is full: start after j next time */
            p->start = j % m;
    }
    return k;
}

static int poll_wake(evio__poller *p)
{
    char one = 1;
    ssize_t n;
    int saved = errno; /* wake may run in a signal handler */
    while ((n = evio__sys.write(p->wake[1], &one, 1)) < 0 && errno == EINTR)
        ;
    int err = n < 0 && errno != EAGAIN ? -errno : 0;
    errno = saved;
    return err;
}

const evio__backend_ops evio__backend = {
    .name = "poll",
    .caps = EVIO__CAP_NATIVE,
    .create = poll_create_poller,
    .destroy = poll_destroy_poller,
    .set = poll_set,
    .poll = poll_poll,
    .wake = poll_wake,
};
