/*
 * epoll.c — the native Linux backend.
 *
 * Quirks of epoll, and what this file does about them:
 *  - Interest is per (epoll instance, open file description), not per fd
 *    number: an fd closed while registered disappears from the set only
 *    when every dup of it is closed.  The frontend always removes an fd
 *    (set(fd, old, 0)) before it closes it, so stale registrations never
 *    survive here.
 *  - Level-triggered, as Redis and libev use it: a socket we did not drain
 *    is reported again, which is what the frontend's per-iteration read
 *    budget relies on.  Edge triggering would save an epoll_ctl now and then
 *    but make every partial read a bug.
 *  - EPOLLERR and EPOLLHUP are always reported, whatever was asked; they
 *    become readiness for the fd's interest so the frontend's own read() or
 *    write() meets the error and reports it.
 *  - epoll_wait counts milliseconds: a timeout is rounded up, never down,
 *    or a loop waiting for a deadline 0.4 ms away would spin (Redis #8764).
 *  - The wakeup is an eventfd in the same set: write() adds to its counter
 *    and a full counter (EAGAIN) still means "woken"; poll drains it.
 *  - An epoll fd is shared with a forked child; evio does not support using
 *    a loop across fork().
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "backend.h"
#include "sys.h"

#define MAX_EVENTS 1024

struct evio__poller {
    int epfd;
    int wakefd;
    struct epoll_event events[MAX_EVENTS];
};

static evio__poller *epoll_create_poller(void)
{
    evio__poller *p = evio__sys.malloc(sizeof *p);
    if (!p)
        return NULL;
    p->epfd = epoll_create1(EPOLL_CLOEXEC);
    p->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = -1};
    if (p->epfd < 0 || p->wakefd < 0 || epoll_ctl(p->epfd, EPOLL_CTL_ADD, p->wakefd, &ev) < 0) {
        int err = errno;
        if (p->epfd >= 0)
            close(p->epfd);
        if (p->wakefd >= 0)
            close(p->wakefd);
        evio__sys.free(p);
        errno = err;
        return NULL;
    }
    return p;
}

static void epoll_destroy_poller(evio__poller *p)
{
    close(p->wakefd);
    close(p->epfd);
    evio__sys.free(p);
}

static int epoll_set(evio__poller *p, int fd, unsigned old_mask, unsigned new_mask)
{
    struct epoll_event ev = {.data.fd = fd};
    if (new_mask & EVIO__READ)
        ev.events |= EPOLLIN;
    if (new_mask & EVIO__WRITE)
        ev.events |= EPOLLOUT;
    int op = !old_mask ? EPOLL_CTL_ADD : !new_mask ? EPOLL_CTL_DEL : EPOLL_CTL_MOD;
    if (!old_mask && !new_mask)
        return 0;
    return epoll_ctl(p->epfd, op, fd, &ev) < 0 ? -errno : 0;
}

static int epoll_poll(evio__poller *p, evio__event *out, int max, int64_t timeout_ns)
{
    int ms = timeout_ns < 0 ? -1 : (int)((timeout_ns + 999999) / 1000000);
    if (max > MAX_EVENTS)
        max = MAX_EVENTS;
    int n = epoll_wait(p->epfd, p->events, max, ms);
    if (n < 0)
        return errno == EINTR ? 0 : -errno;
    int k = 0;
    for (int i = 0; i < n; i++) {
        const struct epoll_event *e = &p->events[i];
        if (e->data.fd == -1) { /* our eventfd: drain it, report nothing */
            uint64_t count;
            while (evio__sys.read(p->wakefd, &count, sizeof count) < 0 && errno == EINTR)
                ;
            continue;
        }
        unsigned mask = 0;
        if (e->events & (EPOLLIN | EPOLLERR | EPOLLHUP))
            mask |= EVIO__READ;
        if (e->events & (EPOLLOUT | EPOLLERR | EPOLLHUP))
            mask |= EVIO__WRITE;
        out[k].fd = e->data.fd; /* the rest is read only from a completion backend */
        out[k++].mask = mask;
    }
    return k;
}

static int epoll_wake(evio__poller *p)
{
    uint64_t one = 1;
    ssize_t n;
    int saved = errno; /* wake may run in a signal handler */
    while ((n = evio__sys.write(p->wakefd, &one, sizeof one)) < 0 && errno == EINTR)
        ;
    int err = n < 0 && errno != EAGAIN ? -errno : 0;
    errno = saved;
    return err;
}

const evio__backend_ops evio__backend = {
    .name = "epoll",
    .caps = EVIO__CAP_NATIVE,
    .create = epoll_create_poller,
    .destroy = epoll_destroy_poller,
    .set = epoll_set,
    .poll = epoll_poll,
    .wake = epoll_wake,
};
