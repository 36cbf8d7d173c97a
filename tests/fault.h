/*
 * fault.h — a seeded fault schedule behind evio's system-call table
 * (api/sys.h), for tests.
 *
 * fault_install() puts the wrappers in the table once, before any server
 * runs; they pass every call straight through until fault_start(seed)
 * and again after fault_stop().  While active, each call draws from a
 * per-thread splitmix64 stream derived from the seed, so a run with a
 * single loop thread meets the same faults, call for call, every time it
 * sees the same traffic (EVIO_FAULT_SEED=N reproduces a run).
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
} fault_rates;

void fault_install(void);
void fault_start(uint64_t seed, const fault_rates *r);
void fault_stop(void);
uint64_t fault_injected(void); /* faults injected since fault_start */

#endif /* EVIO_TESTS_FAULT_H */
