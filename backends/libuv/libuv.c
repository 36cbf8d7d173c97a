/*
 * libuv.c — the comparison backend: readiness through libuv's uv_poll_t.
 *
 * uv_poll_t exists so that c-ares and friends can share a libuv loop; using
 * it for everything is slower than uv_tcp_t, which is the point of a
 * comparison.  What a shim has to know:
 *
 * - One handle per fd.  libuv keeps one watcher slot per fd; a second
 *   uv_poll_t on the same fd fails with UV_EEXIST or, per the manual, makes
 *   the loop busy-loop or malfunction.  We keep poller->io[fd] and never
 *   make a second handle while the first is active.
 * - uv_close() is asynchronous: the handle's memory belongs to libuv until
 *   the close callback runs, at the end of a later uv_run().  A handle lives
 *   exactly as long as the frontend's interest in its fd: set(fd, x, 0)
 *   closes it (the fd is still open then, which is what libuv requires) and
 *   the close callback frees it.  uv_close() takes the fd out of libuv's
 *   slot at once, so re-adding the fd number before the close completes
 *   simply makes a fresh handle.  A fresh handle per fd also means
 *   uv_poll_init() checks every new fd (it tries epoll_ctl on it): a bad or
 *   regular-file fd fails set() instead of hitting the abort() libuv does
 *   when epoll_ctl fails inside uv_run().  uv_poll_init() also makes the fd
 *   non-blocking, which the frontend wants anyway.
 * - libuv aborts on errors it deems impossible (epoll_wait failing, for
 *   one) and has no hook to stop it, so poll() never returns -errno here.
 * - POLLERR arrives as status UV_EBADF and libuv stops the handle; we
 *   report it as readiness for the interest so the frontend's own read or
 *   write finds the error.
 * - uv_run(UV_RUN_ONCE) blocks only while the loop is alive (an active,
 *   referenced handle), may return having run nothing for us, and reads the
 *   clock once per iteration.  Timers count in milliseconds from that
 *   cached time, which may come from CLOCK_MONOTONIC_COARSE, so a timer can
 *   fire a little before its deadline on the precise clock: we update the
 *   loop time, round the timeout up to whole milliseconds, and check the
 *   deadline ourselves with uv_hrtime().
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <uv.h>

#include "backend.h"
#include "sys.h"

/* A poll handle and what it is for; poll comes first so the uv_handle_t a
 * close callback gets is the watch. */
struct watch {
    uv_poll_t poll;
    evio__poller *p;
    int fd;
    unsigned interest;
    unsigned backlog; /* readiness fetched but not yet handed out */
};

struct evio__poller {
    uv_loop_t loop;
    uv_async_t wakeup;
    uv_timer_t timer;
    struct watch **io; /* io[fd]: the live handle while fd has interest */
    int nio;
    int *backlog; /* fds whose readiness did not fit in out, oldest first */
    int nbacklog, backlog_size;
    evio__event *out; /* the poll() in progress: its array, size, fill */
    int max, count;
    int woke;
};

/* ------------------------------------------------------------ backlog */

/* When more fds are ready than out holds, the rest wait in the backlog and
 * the next poll() hands them out first.  Dropping them would be safe, as
 * the fds are level-triggered, but not fair: libuv calls back in epoll's
 * order, the same every time when all fit, so the same fds would miss out. */
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
        p->backlog[p->nbacklog++] = w->fd;
    }
    w->backlog |= mask;
}

/* Backlog to out.  An fd removed since (io[fd] gone or new), or queued
 * twice, is skipped: the mask tells. */
static void drain(evio__poller *p)
{
    int i;

    for (i = 0; i < p->nbacklog && p->count < p->max; i++) {
        struct watch *w = p->io[p->backlog[i]];
        if (w && w->backlog)
            p->out[p->count++] = (evio__event){ .fd = w->fd, .mask = w->backlog };
        if (w)
            w->backlog = 0;
    }
    p->nbacklog -= i;
    if (p->nbacklog) /* memmove with a NULL pointer is undefined even for 0 bytes */
        memmove(p->backlog, p->backlog + i, (size_t)p->nbacklog * sizeof *p->backlog);
}

/* ------------------------------------------------------------ callbacks */

static void on_poll(uv_poll_t *handle, int status, int events)
{
    struct watch *w = (struct watch *)handle;
    evio__poller *p = w->p;
    unsigned mask = 0;

    if (status < 0) { /* UV_EBADF for POLLERR: libuv has stopped the handle */
        mask = w->interest;
        /* Watch on: if the frontend's read or write does not meet the
         * error this time (EINTR, a short read), the fd must be reported
         * again, as the other backends' level triggering would. */
        uv_poll_start(handle, (w->interest & EVIO__READ ? UV_READABLE : 0) |
                                  (w->interest & EVIO__WRITE ? UV_WRITABLE : 0),
                      on_poll);
    }
    if (events & UV_READABLE)
        mask |= EVIO__READ;
    if (events & UV_WRITABLE)
        mask |= EVIO__WRITE;
    mask &= w->interest;
    if (!mask || !p->out)
        return;
    if (p->count < p->max)
        p->out[p->count++] = (evio__event){ .fd = w->fd, .mask = mask };
    else
        defer(p, w, mask);
}

static void on_wakeup(uv_async_t *handle)
{
    ((evio__poller *)handle->data)->woke = 1;
}

static void on_timer(uv_timer_t *handle)
{
    (void)handle; /* poll() watches the clock itself */
}

static void free_watch(uv_handle_t *handle)
{
    evio__sys.free(handle);
}

/* ------------------------------------------------------------ the ops */

static evio__poller *backend_create(void)
{
    evio__poller *p = evio__sys.calloc(1, sizeof *p);
    int err;

    if (!p)
        return NULL;
    if ((err = uv_loop_init(&p->loop)) < 0) {
        /* libuv before 1.51 leaves its epoll fd open here (libuv #4755).
         * Only ENOMEM can come before it sets backend_fd to -1. */
        if (uv_version() < 0x013300 && err != UV_ENOMEM && uv_backend_fd(&p->loop) >= 0)
            close(uv_backend_fd(&p->loop));
        goto fail;
    }
    /* The async handle stays referenced: a loop with no referenced handle
     * is not alive and uv_run does not block, but poll(-1) with no fds must
     * wait for wake(). */
    if ((err = uv_async_init(&p->loop, &p->wakeup, on_wakeup)) < 0) {
        uv_loop_close(&p->loop);
        goto fail;
    }
    p->wakeup.data = p;
    uv_timer_init(&p->loop, &p->timer); /* cannot fail */
    return p;
fail:
    evio__sys.free(p);
    errno = -err;
    return NULL;
}

static void backend_destroy(evio__poller *p)
{
    if (!p)
        return;
    for (int fd = 0; fd < p->nio; fd++)
        if (p->io[fd])
            uv_close((uv_handle_t *)p->io[fd], free_watch);
    uv_close((uv_handle_t *)&p->wakeup, NULL);
    uv_close((uv_handle_t *)&p->timer, NULL);
    /* Run the close callbacks, ours and those of handles set() closed. */
    uv_run(&p->loop, UV_RUN_DEFAULT);
    uv_loop_close(&p->loop);
    evio__sys.free(p->io);
    evio__sys.free(p->backlog);
    evio__sys.free(p);
}

static int backend_set(evio__poller *p, int fd, unsigned old_mask, unsigned new_mask)
{
    int events = (new_mask & EVIO__READ ? UV_READABLE : 0)
        | (new_mask & EVIO__WRITE ? UV_WRITABLE : 0);
    struct watch *w;
    int err;

    (void)old_mask; /* io[fd] knows */
    if (fd < 0)
        return -EBADF;
    w = fd < p->nio ? p->io[fd] : NULL;
    if (!events) {
        if (w) {
            uv_close((uv_handle_t *)w, free_watch); /* frees w later */
            p->io[fd] = NULL;
        }
        return 0;
    }
    if (fd >= p->nio) {
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
    if (!w) {
        if (!(w = evio__sys.malloc(sizeof *w)))
            return -ENOMEM;
        if ((err = uv_poll_init(&p->loop, &w->poll, fd)) < 0) {
            evio__sys.free(w); /* init failed before the handle joined the loop */
            return err;
        }
        w->p = p;
        w->fd = fd;
        w->backlog = 0;
        p->io[fd] = w;
    }
    w->interest = new_mask & (EVIO__READ | EVIO__WRITE);
    w->backlog &= w->interest; /* deferred readiness the frontend still wants */
    return uv_poll_start(&w->poll, events, on_poll); /* also restarts it */
}

static int backend_poll(evio__poller *p, evio__event *out, int max, int64_t timeout_ns)
{
    uv_run_mode mode = timeout_ns == 0 ? UV_RUN_NOWAIT : UV_RUN_ONCE;
    uint64_t deadline = timeout_ns > 0 ? uv_hrtime() + (uint64_t)timeout_ns : 0;

    p->out = out;
    p->max = max;
    p->count = p->woke = 0;
    drain(p);
    while (!p->count && !p->woke) { /* nothing from the backlog: ask libuv */
        if (timeout_ns > 0) {
            uint64_t now = uv_hrtime();
            if (now >= deadline) {
                mode = UV_RUN_NOWAIT; /* one last look, without waiting */
            } else {
                /* Count from now, not from the last iteration's start. */
                uv_update_time(&p->loop);
                uv_timer_start(&p->timer, on_timer, (deadline - now + 999999) / 1000000, 0);
            }
        }
        /* ONCE may return with nothing for us (EINTR, a closing handle, a
         * timer early on the precise clock): go round until something. */
        uv_run(&p->loop, mode);
        if (mode == UV_RUN_NOWAIT)
            break;
    }
    uv_timer_stop(&p->timer);
    p->out = NULL;
    return p->count;
}

static int backend_wake(evio__poller *p)
{
    /* Thread- and signal-safe and coalescing (libuv manual); it may touch
     * errno on a full eventfd, which a signal handler's caller must not see. */
    int saved = errno;
    int err = uv_async_send(&p->wakeup);

    errno = saved;
    return err;
}

const evio__backend_ops evio__backend = {
    .name = "libuv",
    .caps = 0, /* neither talks to the kernel itself nor uses compat/ */
    .create = backend_create,
    .destroy = backend_destroy,
    .set = backend_set,
    .poll = backend_poll,
    .wake = backend_wake,
};
