/*
 * libev.c — the reference backend: readiness through libev.
 *
 * What a shim has to know about libev:
 *
 * - The default loop is a process singleton that also owns SIGCHLD; each
 *   poller gets its own ev_loop_new() instead.
 * - Left alone, libev picks a backend from ev_recommended_backends(), which
 *   depends on its build (EV_RECOMMEND_IOURING prefers io_uring) and on
 *   LIBEV_FLAGS.  We name one (epoll where it exists, or what
 *   EVIO_LIBEV_BACKEND says) with EVFLAG_NOENV, so a run knows what it tested.
 *   (libev 4.33's io_uring backend, which it does not recommend, fails an
 *   assertion in iouring_enter under fd churn; epoll, poll, select pass.)
 * - epoll forgets an fd when its last descriptor closes, yet keeps reporting
 *   one whose file lives on in a dup.  libev copes: per-fd generation
 *   counters drop stale events, and ev_io_set() makes it re-register an fd
 *   that may be a new file.  So set() always goes stop / ev_io_set / start.
 *   A watched fd that is closed is a usage error to libev (it asserts on
 *   EBADF from epoll_ctl or POLLNVAL): the contract's remove-before-close
 *   avoids that, and set() checks each new fd.
 * - On a syscall error it cannot handle (epoll_wait failing, no fd left for
 *   its wakeup pipe) libev calls the syserr callback, which per the manual
 *   must remedy the problem or not return; if it returns libev retries, in
 *   places forever.  We cannot fix EMFILE or a broken epoll fd, so the
 *   callback longjmps back to the poll() or create() that entered libev,
 *   which returns -errno.  The loop is dead then (ev_run was left mid-
 *   iteration): poll() keeps returning the error; destroy() still works.
 *   Out of memory is not covered: libev aborts.
 * - libev never issues EPOLL_CTL_DEL: a stopped fd stays in its epoll set
 *   until the file closes, and a later event for it makes libev drop the
 *   registration by fd number.  After EVIO_DETACH that fd number belongs
 *   to the application, so libev may epoll_ctl it on the loop thread while
 *   the application uses or closes it.  Only libev's own epoll set is
 *   touched, but if the application dup()s the detached fd, closes the
 *   original and evio reuses the number, that late DEL can hit the new
 *   registration.  ThreadSanitizer reports the first case as a race on the
 *   fd; the suite's TSan run covers the threaded tests, not detach.
 * - ev_now() is cached per iteration; a timer started between iterations
 *   counts from that stale time unless ev_now_update() comes first.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ev.h>

#include "backend.h"
#include "sys.h"

/* The watcher for one fd; io comes first so libev's ev_io * is the watch. */
struct watch {
    ev_io io;
    unsigned backlog; /* readiness fetched but not yet handed out */
};

struct evio__poller {
    struct ev_loop *loop;
    ev_async wakeup;
    ev_timer timer;
    struct watch **io; /* io[fd]: made on first use, kept until destroy */
    int nio;
    int *backlog; /* fds whose readiness did not fit in out, oldest first */
    int nbacklog, backlog_size;
    evio__event *out; /* the poll() in progress: its array, size, fill */
    int max, count;
    int woke, expired;
    int failed; /* -errno once libev hit a fatal syscall error */
};

/* ------------------------------------------------------------ syserr */

/* libev's syserr callback is process-wide (ours replaces any the program
 * set) and is not told the loop, so the way back is kept per thread, set
 * only while libev runs on our behalf. */
struct landing {
    jmp_buf env;
    evio__poller *p;
};
static _Thread_local struct landing *landing;

static void on_syserr(const char *msg)
{
    if (!landing) { /* not called from evio: do what libev does by default */
        perror(msg);
        abort();
    }
    landing->p->failed = -(errno ? errno : EIO);
    longjmp(landing->env, 1);
}

static pthread_once_t syserr_once = PTHREAD_ONCE_INIT;
static void install_syserr(void) { ev_set_syserr_cb(on_syserr); }

/* fn(p, arg) with a landing pad under it: 0, or -errno if libev gave up. */
static int guarded(void (*fn)(evio__poller *, int), evio__poller *p, int arg)
{
    struct landing pad;

    pad.p = p;
    if (setjmp(pad.env)) {
        landing = NULL;
        return p->failed;
    }
    landing = &pad;
    fn(p, arg);
    landing = NULL;
    return 0;
}

static void start_wakeup(evio__poller *p, int unused)
{
    (void)unused;
    ev_async_start(p->loop, &p->wakeup); /* makes libev's eventfd or pipe */
}

static void run(evio__poller *p, int flags) { ev_run(p->loop, flags); }

/* ------------------------------------------------------------ backlog */

/* When more fds are ready than out holds, the rest wait in the backlog and
 * the next poll() hands them out first.  Dropping them would be safe, as
 * the fds are level-triggered, but not fair: libev calls back in the same
 * order every iteration, so the same fds would always miss out. */
static void defer(evio__poller *p, struct watch *w, unsigned mask)
{
    if (!w->backlog) {
        if (p->nbacklog == p->backlog_size) {
            int n = p->backlog_size ? 2 * p->backlog_size : 64;
            int *b = evio__sys.realloc(p->backlog, (size_t)n * sizeof *b);
            if (!b)
                return; /* dropped after all: reported again next time */
            p->backlog = b;
            p->backlog_size = n;
        }
        p->backlog[p->nbacklog++] = w->io.fd;
    }
    w->backlog |= mask;
}

/* Backlog to out.  An fd whose mask set() cleared, or queued twice, is
 * skipped: the mask tells. */
static void drain(evio__poller *p)
{
    int i;

    for (i = 0; i < p->nbacklog && p->count < p->max; i++) {
        struct watch *w = p->io[p->backlog[i]];
        if (w->backlog)
            p->out[p->count++] = (evio__event){ .fd = w->io.fd, .mask = w->backlog };
        w->backlog = 0;
    }
    p->nbacklog -= i;
    if (p->nbacklog) /* memmove with a NULL pointer is undefined even for 0 bytes */
        memmove(p->backlog, p->backlog + i, (size_t)p->nbacklog * sizeof *p->backlog);
}

/* ------------------------------------------------------------ callbacks */

static void on_io(struct ev_loop *loop, ev_io *io, int revents)
{
    struct watch *w = (struct watch *)io;
    evio__poller *p = io->data;
    int want = io->events & (EV_READ | EV_WRITE);
    unsigned mask = 0;

    (void)loop;
    /* EV_ERROR: libev could not watch the fd (epoll_ctl failed) and has
     * stopped the watcher; report the interest so the frontend's own read
     * or write meets the error. */
    if (revents & EV_ERROR)
        revents |= want;
    revents &= want;
    if (revents & EV_READ)
        mask |= EVIO__READ;
    if (revents & EV_WRITE)
        mask |= EVIO__WRITE;
    /* One callback per watcher per iteration, read and write merged. */
    if (!mask || !p->out)
        return;
    if (p->count < p->max)
        p->out[p->count++] = (evio__event){ .fd = io->fd, .mask = mask };
    else
        defer(p, w, mask);
}

static void on_wakeup(struct ev_loop *loop, ev_async *w, int revents)
{
    evio__poller *p = w->data;

    (void)loop, (void)revents;
    p->woke = 1;
}

static void on_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    evio__poller *p = w->data;

    (void)loop, (void)revents;
    p->expired = 1;
}

/* ------------------------------------------------------------ the ops */

/* The libev backend flags to ask for: EVIO_LIBEV_BACKEND if set, else epoll
 * where libev has it, else libev's recommendation.  0 with errno on error. */
static unsigned pick_backend(void)
{
    static const struct { const char *name; unsigned flag; } names[] = {
        { "select", EVBACKEND_SELECT }, { "poll", EVBACKEND_POLL },
        { "epoll", EVBACKEND_EPOLL }, { "linuxaio", EVBACKEND_LINUXAIO },
        { "io_uring", EVBACKEND_IOURING }, { "kqueue", EVBACKEND_KQUEUE },
    };
    const char *want = getenv("EVIO_LIBEV_BACKEND");

    if (!want || !*want)
        return ev_supported_backends() & EVBACKEND_EPOLL
            ? EVBACKEND_EPOLL : ev_recommended_backends();
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (strcmp(want, names[i].name) == 0) {
            if (ev_supported_backends() & names[i].flag)
                return names[i].flag;
            errno = ENOSYS; /* not compiled into this libev */
            return 0;
        }
    }
    errno = EINVAL;
    return 0;
}

static evio__poller *backend_create(void)
{
    evio__poller *p;
    unsigned backend;
    int err;

    pthread_once(&syserr_once, install_syserr);
    if (!(backend = pick_backend()))
        return NULL;
    if (!(p = evio__sys.calloc(1, sizeof *p)))
        return NULL;
    /* NOSIGMASK: we use no signal watchers, so libev has no reason to
     * touch the application's signal mask. */
    errno = 0;
    p->loop = ev_loop_new(backend | EVFLAG_NOENV | EVFLAG_NOSIGMASK);
    if (!p->loop) {
        err = errno ? errno : ENOSYS; /* e.g. io_uring refused by the kernel */
        evio__sys.free(p);
        errno = err;
        return NULL;
    }
    ev_async_init(&p->wakeup, on_wakeup);
    p->wakeup.data = p;
    ev_init(&p->timer, on_timer);
    p->timer.data = p;
    /* The wakeup watcher stays referenced: with no active watcher ev_run
     * does not block at all, and poll(-1) with no fds must wait for wake(). */
    if ((err = guarded(start_wakeup, p, 0)) < 0) {
        ev_loop_destroy(p->loop);
        evio__sys.free(p);
        errno = -err;
        return NULL;
    }
    return p;
}

static void backend_destroy(evio__poller *p)
{
    if (!p)
        return;
    ev_loop_destroy(p->loop); /* closes libev's own fds; ours are just memory */
    for (int fd = 0; fd < p->nio; fd++)
        evio__sys.free(p->io[fd]);
    evio__sys.free(p->io);
    evio__sys.free(p->backlog);
    evio__sys.free(p);
}

static int backend_set(evio__poller *p, int fd, unsigned old_mask, unsigned new_mask)
{
    int events = (new_mask & EVIO__READ ? EV_READ : 0)
        | (new_mask & EVIO__WRITE ? EV_WRITE : 0);
    struct watch *w;

    /* libev asserts on a negative fd, and on EBADF from epoll_ctl: check an
     * fd when it is new; it then stays open until the frontend removes it. */
    if (fd < 0)
        return -EBADF;
    if (!old_mask && events && fcntl(fd, F_GETFD) < 0)
        return -errno;
    if (fd >= p->nio) {
        if (!events)
            return 0;
        /* An array of pointers, because libev keeps pointers to watchers. */
        int n = p->nio ? p->nio : 64;
        while (n <= fd)
            n *= 2;
        struct watch **io = evio__sys.realloc(p->io, (size_t)n * sizeof *io);
        if (!io)
            return -ENOMEM;
        memset(io + p->nio, 0, (size_t)(n - p->nio) * sizeof *io);
        p->io = io;
        p->nio = n;
    }
    if (!(w = p->io[fd])) {
        if (!events)
            return 0;
        if (!(w = p->io[fd] = evio__sys.calloc(1, sizeof *w)))
            return -ENOMEM;
        ev_init(&w->io, on_io);
        w->io.data = p;
    }
    /* Deferred readiness is for the interest it was fetched for, and none
     * of it belongs to a new file that reuses the fd number. */
    w->backlog = old_mask ? w->backlog & new_mask : 0;
    ev_io_stop(p->loop, &w->io);
    ev_io_set(&w->io, fd, events); /* also tells libev the fd may be new */
    if (events)
        ev_io_start(p->loop, &w->io);
    return 0;
}

static int backend_poll(evio__poller *p, evio__event *out, int max, int64_t timeout_ns)
{
    int flags = timeout_ns == 0 ? EVRUN_NOWAIT : EVRUN_ONCE;
    int err;

    if (p->failed)
        return p->failed;
    p->out = out;
    p->max = max;
    p->count = p->woke = p->expired = 0;
    drain(p);
    if (p->count) { /* ready already: no need to ask libev */
        p->out = NULL;
        return p->count;
    }
    if (timeout_ns > 0) {
        /* Count from now, not from the end of the last iteration. */
        ev_now_update(p->loop);
        ev_timer_set(&p->timer, (ev_tstamp)timeout_ns / 1e9, 0.);
        ev_timer_start(p->loop, &p->timer);
    }
    /* EVRUN_ONCE may return with nothing for us: an EINTR, libev's own
     * watchers, its once-a-minute check for clock jumps.  Go round until
     * there is an event, a wakeup or the timer; the timer fires only once
     * its time is past on the monotonic clock, so a timed poll never
     * returns early. */
    do
        err = guarded(run, p, flags);
    while (!err && flags == EVRUN_ONCE && !p->count && !p->woke && !p->expired);
    if (!err)
        ev_timer_stop(p->loop, &p->timer);
    p->out = NULL;
    return err ? err : p->count;
}

static int backend_wake(evio__poller *p)
{
    /* Thread- and signal-safe and coalescing (manual); ev.c saves errno. */
    ev_async_send(p->loop, &p->wakeup);
    return 0;
}

const evio__backend_ops evio__backend = {
    .name = "libev",
    .caps = 0, /* neither talks to the kernel itself nor uses compat/ */
    .create = backend_create,
    .destroy = backend_destroy,
    .set = backend_set,
    .poll = backend_poll,
    .wake = backend_wake,
};
