/*
 * backend.h — the contract between the frontend and a backend (internal).
 *
 * A backend reports readiness and nothing else: it never calls user code,
 * never touches a connection, never reads or writes a socket other than its
 * own wakeup primitive.  Exactly one backend is linked into a build of the
 * library; it exports one symbol, evio__backend.  The frontend owns the fd
 * table and the array poll() fills, as in Redis's ae.
 *
 * All operations are called on the loop thread except wake(), which may be
 * called from any thread and must be async-signal-safe.
 */
#ifndef EVIO_BACKEND_H
#define EVIO_BACKEND_H

#include <stdint.h>

/* Interest and readiness bits. An error or hang-up on an fd is reported as
 * readiness for whatever the fd is interested in, so the frontend's read or
 * write finds the error itself. */
#define EVIO__READ 1u
#define EVIO__WRITE 2u

/* One ready fd, as poll() reports it.  A backend merges read and write
 * readiness of one fd into a single entry where it can; the frontend copes
 * with two entries for the same fd. */
typedef struct evio__event {
    int fd;
    unsigned mask; /* EVIO__READ | EVIO__WRITE */
} evio__event;

/* Capability bits: what a backend can do, so tests name what it cannot. */
#define EVIO__CAP_NATIVE 1u /* talks to the kernel directly */
#define EVIO__CAP_EMULATED 2u /* runs over an emulation layer (compat/) */

typedef struct evio__poller evio__poller; /* defined by each backend */

typedef struct evio__backend_ops {
    const char *name;
    unsigned caps;

    /* A new poller, or NULL with errno set. */
    evio__poller *(*create)(void);

    /* Release everything create() made.  fds the frontend registered are
     * the frontend's to close. */
    void (*destroy)(evio__poller *p);

    /* Change the interest in fd from old_mask to new_mask (each 0, READ,
     * WRITE or both).  old 0 means the fd is new to the poller; new 0 means
     * forget it (called before the frontend closes the fd).  Returns 0 or
     * -errno. */
    int (*set)(evio__poller *p, int fd, unsigned old_mask, unsigned new_mask);

    /* Wait until some fd is ready, wake() was called, or timeout_ns passes
     * (-1: no timeout; 0: do not wait).  A timeout that is not a whole
     * number of the backend's ticks is rounded up, never down, so the loop
     * cannot wake before a deadline and spin.  Writes at most max entries to
     * out.  Returns the number written (0 on timeout, wakeup or EINTR) or
     * -errno when the poller itself has failed (the loop then stops). */
    int (*poll)(evio__poller *p, evio__event *out, int max, int64_t timeout_ns);

    /* Make a concurrent or the next poll() return.  Any thread; async-signal
     * safe; may be called many times (it need not coalesce: the frontend
     * calls it once per batch of wakes).  Returns 0 or -errno; a full
     * wakeup channel (EAGAIN) counts as success. */
    int (*wake)(evio__poller *p);
} evio__backend_ops;

/* The backend linked into this build. */
extern const evio__backend_ops evio__backend;

#endif /* EVIO_BACKEND_H */
