/*
 * fault.h — a seeded fault schedule behind evio's system-call table
 * (api/sys.h), for tests.
 *
 * fault_install() puts the wrappers in the table once, before any server
 * runs; they pass every call straight through until fault_start(seed) and
 * again after fault_stop().
 *
 * What a seed fixes, exactly
 * --------------------------
 * No decision depends on a shared random stream, on the order in which
 * threads call, or on the clock.  Each call belongs to a stream, and
 * whether the n-th call of a stream meets a fault (and which, and how
 * short a short read is) is a pure function of (seed, stream, n):
 *
 *   recv, send, recvfrom, sendto, connect, accept, poller set
 *       one stream per call kind per fd *life*: the fd number and how many
 *       times, since fault_start, evio's table has returned that number
 *       (socket, accept) or closed it.  n counts that kind of
 *       call on that life.  So "the 3rd recv on the connection that is the
 *       2nd life of fd 9 gets EINTR" holds whatever other connections,
 *       loops or threads do meanwhile.
 *   poll (early wakeups, spurious readiness)
 *       one stream per poller, numbered in the order the pollers first
 *       reach the fault layer; n counts that poller's polls.
 *   malloc, calloc, realloc, socket
 *       one stream per thread; n counts the thread's calls since
 *       fault_start.  Every thread's stream is the same sequence, so the
 *       loop thread meets the same allocation failures, call for call.
 *
 * Every rate draws its own independent decision, so setting one rate to 0
 * leaves the others' schedule unchanged.
 *
 * What it cannot fix
 * ------------------
 * Which streams exist and how long they are is the kernel's business:
 * how a peer's bytes are split among reads, when a socket turns readable
 * or writable, whether a wake lands before or after a poll, and which fd
 * number an accepted connection gets when several clients connect at
 * once.  A run whose traffic is sequential (one client at a time, one
 * loop) meets the same faults in the same places every time; a run with
 * concurrent clients meets the same fault at the same position of each
 * stream, but the streams themselves (how many calls each connection
 * makes, which fd life a given client's connection is) follow the
 * kernel's timing.  fault_digest() tells two runs' schedules apart.
 *
 * Tracing: with EVIO_FAULT_TRACE set in the environment when fault_start
 * runs ("1" or "-" for stderr, or a file name to append to), every
 * injected fault is logged as one line naming its stream and position,
 * e.g. "fault recv fd 9 life 2 call 3: EINTR".
 *
 * API: fault_install, fault_start, fault_stop and fault_injected are as
 * they were; fault_digest and fault_profile_transparent are new.
 */
#ifndef EVIO_TESTS_FAULT_H
#define EVIO_TESTS_FAULT_H

#include <stdint.h>

/* Rates in parts per thousand calls. */
typedef struct fault_rates {
    int short_io;   /* recv/send: ask for 1..len bytes instead of len */
    int eagain;     /* recv/send/recvfrom/sendto/accept: EAGAIN */
    int eintr;      /* the same calls: EINTR */
    int reset;      /* recv: ECONNRESET; send: EPIPE or ECONNRESET */
    int accept_err; /* accept: EMFILE, ENFILE, ENOBUFS or ECONNABORTED; socket: EMFILE */
    int enomem;     /* malloc/calloc/realloc: NULL; poller set (add/modify): -ENOMEM */
    int connect_fail;  /* connect: ECONNREFUSED at once */
    int connect_delay; /* connect that completed: reported as EINPROGRESS */
    int spurious;   /* poll: also report a watched fd that may have nothing */
    int wakeup;     /* poll: return at once with nothing (an EINTR'd wait) */
    /* Added last, so that initializers written before stay valid: */
    int no_sendto_eagain; /* nonzero: eagain spares sendto (see the profile below) */
} fault_rates;

/* The transparent profile: only faults a correct library hides from the
 * application, so every promise of the contract still holds under it and
 * the conformance suite must pass unchanged (make check runs it so):
 *   short reads and writes    200/1000 recv and send calls
 *   EAGAIN                     50/1000 recv, send, recvfrom, accept
 *   EINTR                      50/1000 recv, send, recvfrom, sendto, accept
 *   delayed connect           500/1000 connects that completed at once
 *   spurious readiness        100/1000 polls
 *   early wakeup               50/1000 polls
 * and none of what the application is meant to see: resets, accept errors
 * (EMFILE...), ENOMEM, refused connects.  EAGAIN is not injected on
 * sendto here, since a full UDP socket drops the datagram (as the kernel
 * may), which a UDP test would see. */
extern const fault_rates fault_profile_transparent;

void fault_install(void);
/* Start injecting with this seed and these rates; every stream starts
 * again at call 0.  Call it while no wrapped call is in flight (before the
 * traffic starts), or the first calls may count against the previous run. */
void fault_start(uint64_t seed, const fault_rates *r);
void fault_stop(void);
uint64_t fault_injected(void); /* faults injected since fault_start */
/* A digest of the faults injected since fault_start (which stream, which
 * call, which fault), independent of the order they happened in: two runs
 * with the same digest met the same faults. */
uint64_t fault_digest(void);

#endif /* EVIO_TESTS_FAULT_H */
