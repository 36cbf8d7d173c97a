/*
 * backend.h — the contract between the frontend and a backend (internal).
 *
 * One contract, two modes.  A readiness backend (epoll, kqueue, poll, libev,
 * libuv) reports readiness and nothing else: it never calls user code,
 * never touches a connection, never reads or writes a socket other than its
 * own wakeup primitive.  A completion backend (io_uring, caps has
 * EVIO__CAP_COMPLETION) also does a connection's socket I/O when asked:
 * accept, receive into buffers it provides, send the bytes it is given;
 * and reports each result.  In both modes the frontend decides everything
 * else (what to read, when to close, pause, detach, time out...), once.
 * Exactly one backend is linked into a build of the library; it exports one
 * symbol, evio__backend.  The frontend owns the fd table and the array
 * poll() fills, as in Redis's ae.
 *
 * All operations are called on the loop thread except wake(), which may be
 * called from any thread and must be async-signal-safe.
 */
#ifndef EVIO_BACKEND_H
#define EVIO_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Interest and readiness bits. An error or hang-up on an fd is reported as
 * readiness for whatever the fd is interested in, so the frontend's read or
 * write finds the error itself. */
#define EVIO__READ 1u
#define EVIO__WRITE 2u

/* The operations of completion mode, as bits (cancel takes several). */
#define EVIO__OP_ACCEPT 1u
#define EVIO__OP_RECV 2u
#define EVIO__OP_SEND 4u

/* One entry poll() reports: a ready fd (op 0), or in completion mode the
 * result of an operation (op one of EVIO__OP_*).  A backend merges read and
 * write readiness of one fd into a single entry where it can; the frontend
 * copes with two entries for the same fd.  Readiness backends fill fd and
 * mask only; the frontend reads the rest only from a completion backend. */
typedef struct evio__event {
    int fd;
    unsigned mask; /* readiness: EVIO__READ | EVIO__WRITE */
    unsigned op;   /* 0: readiness; else the operation that completed */
    int res;       /* ACCEPT: the new fd; RECV, SEND: bytes (RECV 0: EOF); or -errno */
    bool more;     /* ACCEPT, RECV: the operation goes on (multishot) */
    void *ctx;     /* what the operation was started with */
    const char *data; /* RECV: res bytes, the backend's until the next poll() */
} evio__event;

/* Capability bits: what a backend can do, so tests name what it cannot. */
#define EVIO__CAP_NATIVE 1u /* talks to the kernel directly */
#define EVIO__CAP_EMULATED 2u /* runs over an emulation layer (compat/) */
#define EVIO__CAP_COMPLETION 4u /* does socket I/O itself: the ops below */

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

    /* Completion mode: NULL in a readiness backend.  set() and readiness
     * still serve the fds the frontend does its own I/O on (a dial until it
     * connects, UDP).  Each operation is identified by its ctx (a listener
     * or a connection, never two operations of one kind on one ctx at
     * once) and reported by poll() as many times as it completes; the
     * last report has more false.  The frontend keeps ctx and any buffer
     * given to send() alive until that last report, so no completion ever
     * touches freed memory.  Each returns 0 or -errno. */

    /* Accept on listening socket fd until cancelled: each new connection is
     * an ACCEPT result with its fd (non-blocking, close-on-exec). */
    int (*accept)(evio__poller *p, int fd, void *ctx);
    /* Receive from fd until cancelled, EOF or an error: each RECV result
     * lends data, in a buffer of the backend's, until the next poll(). */
    int (*recv)(evio__poller *p, int fd, void *ctx);
    /* Send len bytes of buf on fd, once: the SEND result says how many
     * went (perhaps fewer: the frontend sends the rest). */
    int (*send)(evio__poller *p, int fd, const void *buf, size_t len, void *ctx);
    /* Ask the operations ops (EVIO__OP_* bits) of ctx to end.  Their last
     * results still come, with -ECANCELED or what completed first. */
    int (*cancel)(evio__poller *p, void *ctx, unsigned ops);
} evio__backend_ops;

/* The backend linked into this build. */
extern const evio__backend_ops evio__backend;

#endif /* EVIO_BACKEND_H */
