/*
 * compat/sys/event.h — the part of <sys/event.h> that compat/kqueue-epoll.c
 * emulates over epoll, so that backends/kqueue/kqueue.c can be built and
 * tested on Linux.  For testing only: never installed, never the default
 * backend.  Constants have FreeBSD's values.  What is not declared here is
 * not emulated; see the top of kqueue-epoll.c and docs/kqueue-emulation.md.
 */
#ifndef EVIO_COMPAT_SYS_EVENT_H
#define EVIO_COMPAT_SYS_EVENT_H

#include <stdint.h>
#include <time.h>

/* Tells the kqueue backend it is running over this emulation. */
#define EVIO_KQUEUE_EMULATED 1

#define EVFILT_READ (-1)
#define EVFILT_WRITE (-2)
#define EVFILT_USER (-11)

/* Actions and flags accepted in a changelist. */
#define EV_ADD 0x0001
#define EV_DELETE 0x0002
#define EV_ENABLE 0x0004 /* a no-op on an existing event: nothing is ever disabled */
#define EV_CLEAR 0x0020 /* EVFILT_USER only */
#define EV_RECEIPT 0x0040

/* Returned flags; ignored on input, as by the kernel. */
#define EV_SYSFLAGS 0xF000
#define EV_ERROR 0x4000
#define EV_EOF 0x8000

/* EVFILT_USER fflags: only the trigger; no NOTE_FF* operations. */
#define NOTE_TRIGGER 0x01000000

struct kevent {
    uintptr_t ident; /* fd, or the EVFILT_USER identifier */
    short filter;
    unsigned short flags;
    unsigned int fflags;
    int64_t data;
    void *udata; /* must be NULL for EVFILT_READ/EVFILT_WRITE */
};

#define EV_SET(kevp, a, b, c, d, e, f)                                       \
    do {                                                                     \
        struct kevent *evio__kevp = (kevp);                                  \
        evio__kevp->ident = (a);                                             \
        evio__kevp->filter = (b);                                            \
        evio__kevp->flags = (c);                                             \
        evio__kevp->fflags = (d);                                            \
        evio__kevp->data = (e);                                              \
        evio__kevp->udata = (f);                                             \
    } while (0)

/* Our own names, so nothing clashes with a libkqueue or libc that has them. */
int evio__kqueue(void);
int evio__kevent(int kq, const struct kevent *changelist, int nchanges,
                 struct kevent *eventlist, int nevents,
                 const struct timespec *timeout);
/* close(2) for a kqueue made here: the emulation keeps state beside the
 * epoll fd and cannot see a plain close(). */
int evio__kqueue_close(int kq);

#define kqueue() evio__kqueue()
#define kevent(kq, cl, nc, el, ne, ts) evio__kevent(kq, cl, nc, el, ne, ts)

#endif /* EVIO_COMPAT_SYS_EVENT_H */
