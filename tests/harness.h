/*
 * harness.h — helpers for the evio conformance suite.
 *
 * The suite runs a real server (evio_serve on a thread of the test process)
 * against real client sockets.  Everything here exists to keep each test
 * short and bounded in time:
 *
 *  - h_server_*: run evio_serve on a thread, wait for serving(), stop it and
 *    check that it returned 0 in time.
 *  - H_EXPECT: an assertion usable from callbacks on the loop thread.  It
 *    records the first failure instead of exiting under the loop's feet; the
 *    test thread reports it (h_server_stop and the fixture's teardown do).
 *  - H_WAIT: poll a condition with a deadline, so a server that never
 *    delivers an event fails the test instead of hanging it.
 *  - h_connect & co: blocking client sockets that carry receive and send
 *    timeouts, so a hung server fails the test instead of hanging it.
 *  - h_log_*: a thread-safe log of (id, event) pairs and a checker for the
 *    per-connection sequence opened, data*, closed|detached.
 *  - h_fixture_*: the checked fixture; the teardown asserts that the test
 *    left as many fds open as it found (listeners, pollers, wakeup fds,
 *    detached fds and client sockets all count).
 *
 * Every time bound is multiplied by h_slow, which is 3 in sanitizer builds
 * (or whatever EVIO_TEST_SLOW says), because ASan/UBSan/TSan make the loop
 * two to three times slower.
 */
#ifndef EVIO_TESTS_HARNESS_H
#define EVIO_TESTS_HARNESS_H

#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

#include <check.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "evio.h"

/* ---------------------------------------------------------------- timing */

/* 1, or 3 in sanitizer builds; EVIO_TEST_SLOW=<n> overrides. */
extern int h_slow;
/* Once, in main() before the tests fork: sets h_slow and remembers the
 * runner's pid, which names every unix socket path the tests make. */
void h_init_slow(void);
/* At the end of main(): remove the unix socket files that tests which
 * failed (and so never shut their server down) left in /tmp. */
void h_cleanup_unix_paths(void);

int64_t h_now_ns(void); /* CLOCK_MONOTONIC */
int64_t h_now_ms(void);
void h_sleep_ms(int ms);

/* CPU time consumed so far by a (running) thread, in nanoseconds. */
int64_t h_thread_cpu_ns(pthread_t t);

/* Poll cond every millisecond until it holds or ms (times h_slow) pass;
 * ok (a bool lvalue) tells which. */
#define H_WAIT_FOR(ok, cond, ms)                                               \
    do {                                                                       \
        int64_t h_deadline_ = h_now_ms() + (int64_t)(ms) * h_slow;             \
        while (!((ok) = (cond)) && h_now_ms() < h_deadline_)                   \
            h_sleep_ms(1);                                                     \
    } while (0)

/* As H_WAIT_FOR, but a timeout fails the test and names what was awaited
 * (and the first callback failure, if any, which is usually the cause). */
#define H_WAIT(cond, ms, ...)                                                  \
    do {                                                                       \
        bool h_ok_;                                                            \
        H_WAIT_FOR(h_ok_, cond, ms);                                           \
        if (!h_ok_) {                                                          \
            char h_what_[512];                                                 \
            snprintf(h_what_, sizeof h_what_, __VA_ARGS__);                    \
            ck_abort_msg("timed out after %d ms waiting for %s (callback "     \
                         "failures: %d%s%s)",                                  \
                         (int)(ms) * h_slow, h_what_, h_failures(),            \
                         h_failures() ? ", first: " : "", h_first_failure());  \
        }                                                                      \
    } while (0)

/* ---------------------------------------------------------------- failures
 * from callbacks: recorded, reported by the test thread. */

void h_fail_record(const char *file, int line, const char *expr, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
int h_failures(void);
const char *h_first_failure(void); /* "" when there is none */

#define H_EXPECT(cond, ...)                                                    \
    do {                                                                       \
        if (!(cond))                                                           \
            h_fail_record(__FILE__, __LINE__, #cond, __VA_ARGS__);             \
    } while (0)

/* Fail the test if any callback recorded a failure. */
#define h_assert_no_callback_failures()                                        \
    ck_assert_msg(h_failures() == 0, "%d failure(s) inside callbacks, first: %s", \
                  h_failures(), h_first_failure())

/* ---------------------------------------------------------------- server */

typedef struct h_server {
    evio_events ev;                  /* what evio_serve runs; udata == this */
    evio_action (*user_serving)(evio_server *srv);
    void *user;                      /* the test's own context */
    const char *addrs[8];
    size_t naddrs;
    pthread_t thread;
    bool started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    evio_server *_Atomic srv;        /* set by serving(), valid until serve returns */
    atomic_int serving_count;
    atomic_bool returned;
    int rc;                          /* evio_serve's return value */
    int64_t serving_ns;              /* when serving() fired */
    pthread_t serving_thread;        /* where (evio_serve's thread: loop 0) */
    int64_t returned_ns;
} h_server;

/* Start evio_serve(ev, addrs, n) on a new thread and wait (up to 5 s) until
 * serving() fired or evio_serve returned.  ev is copied; its udata is
 * replaced by hs (the test's udata is kept in hs->user; get it back with
 * h_user()).  Returns 0 once serving, or evio_serve's return value. */
int h_server_start(h_server *hs, const evio_events *ev, const char *const addrs[],
                   size_t n);

/* evio_server_shutdown() from the test thread, then h_server_join(). */
void h_server_stop(h_server *hs);

/* Wait (bounded) for evio_serve to return, join its thread, and assert it
 * returned 0 and that no callback recorded a failure. */
void h_server_join(h_server *hs);

/* The test context of a server or connection. */
void *h_user(const evio_server *srv);
void *h_user_c(const evio_conn *c);
h_server *h_of(const evio_server *srv);

/* The i-th bound address. */
const struct sockaddr *h_server_addr(h_server *hs, size_t i, socklen_t *len);
int h_server_port(h_server *hs, size_t i);

/* ---------------------------------------------------------------- clients */

/* Default client timeout for SO_RCVTIMEO/SO_SNDTIMEO, in ms (x h_slow). */
#define H_IO_TIMEOUT_MS 5000

void h_set_timeouts(int fd, int ms);
/* A socket of sa's family with timeouts set, not connected. */
int h_socket_for(const struct sockaddr *sa);
/* connect(); returns 0 or -errno. */
int h_try_connect(int fd, const struct sockaddr *sa, socklen_t len);
/* A connected blocking client socket with timeouts; asserts success. */
int h_connect_addr(const struct sockaddr *sa, socklen_t len);
int h_connect(h_server *hs, size_t i);

/* Blocking I/O helpers that assert success (timeouts fail the test). */
void h_send_all(int fd, const void *buf, size_t len);
void h_recv_exact(int fd, void *buf, size_t len);
/* Read until EOF into buf (at most cap bytes); returns the byte count.
 * Fails the test on a timeout, an error, or more than cap bytes. */
size_t h_recv_until_eof(int fd, void *buf, size_t cap);
/* Read and discard until EOF or an error; returns 0 on EOF, -errno on an
 * error other than a timeout; a timeout fails the test. */
int h_drain(int fd);
/* Close with SO_LINGER {1, 0}: the peer gets an RST. */
void h_close_rst(int fd);
int h_local_port(int fd);

/* Compare two socket addresses (family, address, port / path). */
bool h_sockaddr_eq(const struct sockaddr *a, socklen_t alen, const struct sockaddr *b,
                   socklen_t blen);
const char *h_sockaddr_str(const struct sockaddr *sa, socklen_t len, char *buf,
                           size_t size);

/* A unique unix socket path under /tmp (pid, test and counter in the name). */
const char *h_unix_path(char *buf, size_t size, const char *tag);
/* A "unix://..." address for a path made by h_unix_path. */
bool h_path_exists(const char *path);

/* Deterministic byte patterns for byte-exact transfer checks. */
void h_fill(uint8_t *buf, size_t len, uint32_t seed);
/* Offset of the first mismatch, or (size_t)-1 when buf is exactly the
 * pattern. */
size_t h_mismatch(const uint8_t *buf, size_t len, uint32_t seed);
uint8_t *h_xmalloc(size_t n);

/* Whether this host can bind ::1 (tests needing it say so when it can't). */
bool h_have_ipv6(void);

/* ---------------------------------------------------------------- event log */

enum h_ev { H_OPENED = 1, H_DATA, H_WAKE, H_CLOSED, H_DETACHED, H_PREWRITE, H_POSTWRITE };

typedef struct h_event {
    const evio_server *srv; /* ids are unique per server */
    uint64_t id;
    int type;
    int64_t arg;  /* data: len; closed: err; detached: fd; opened: listener */
    size_t seq;
} h_event;

/* Log an event of c (its server and id).  Loop thread. */
void h_log(evio_conn *c, int type, int64_t arg);
size_t h_log_count(int type);            /* events of that type so far */
size_t h_log_count_id(uint64_t id, int type);
int64_t h_log_last_arg(uint64_t id, int type); /* INT64_MIN if none */
/* Forget every event (between two servers run one after the other: the
 * second may reuse the first's address, and ids start over). */
void h_log_reset(void);
/* Copy of the log; caller frees. */
h_event *h_log_copy(size_t *n);

/* Check every connection's sequence: opened first, then data/wake/pre/post
 * write, then exactly one closed or detached, nothing after it.  With
 * all_ended, every opened connection must have ended.  Returns the number
 * of connections seen; on a violation fails the test describing it. */
size_t h_log_check_sequences(bool all_ended);

/* Ready-made callbacks: log the event (and echo, for data).  Data after a
 * wake (NULL, 0) is logged as H_WAKE; real data must be non-NULL and
 * non-empty. */
evio_action h_opened_log(evio_conn *c, const evio_info *info);
evio_action h_data_echo(evio_conn *c, const void *in, size_t len);
evio_action h_closed_log(evio_conn *c, int err);
evio_action h_detached_log(evio_conn *c, int fd); /* logs, then closes fd */

/* ---------------------------------------------------------------- registry
 * The connections a server opened, in opened() order, and what their
 * callbacks saw: shared by the test files whose tests watch individual
 * connections (features, bounds, contract).  Loop threads write it and the
 * test thread reads copies, both under h_reg.mu.  A registered connection's
 * context is its index + 1 (so tests that register must not set another). */

#define H_REG_MAX 64
#define H_REG_RCS 8

typedef struct h_conn {
    uint64_t id;
    int listener;       /* info->listener (-2 without info) */
    int loop;           /* 0: the serving thread (loop 0); 1, 2, ...: other loop threads,
                         * numbered in the order they were first seen */
    bool dialed;
    int64_t opened_ns, closed_ns, eof_ns, mark_ns;
    int64_t set_ns;     /* per-test: when a later call happened */
    int err;            /* closed()'s err */
    int nclosed, neof, ndetached;
    size_t in;          /* input bytes data() saw */
    size_t max_read;    /* the largest single input */
    size_t max_before;  /* evio_conn_pending() before data()'s write, at most */
    size_t max_pending; /* evio_conn_pending() after data()'s write, at most */
    char req[64];       /* the first bytes of input */
    size_t reqlen;
    int rc[H_REG_RCS];  /* return codes of calls the callbacks made; 1: not called */
    bool flag;          /* per-test: replied, shut down, ... */
    bool woken;         /* per-test */
    struct sockaddr_storage remote; /* a copy of info->remote (family 0 if none) */
    socklen_t remote_len;
} h_conn;

typedef struct h_registry {
    pthread_mutex_t mu;
    h_conn c[H_REG_MAX];
    int n;
    pthread_t threads[16];
    int nthreads;       /* loop threads seen; [0] is the serving thread's slot */
    atomic_int opened, closed; /* closed counts detached too */
} h_registry;

extern h_registry h_reg;

void h_reg_reset(void);
/* Register c (opened() order), set its context, log H_OPENED; returns its
 * index, or -1 (after recording a failure) past H_REG_MAX. */
int h_reg_open(evio_conn *c, const evio_info *info);
int h_reg_index(const evio_conn *c); /* from the context; -1 if none */
/* Lock the registry and return c's entry (NULL, and unlocked, if c was
 * never registered).  Pair with h_reg_unlock(). */
h_conn *h_reg_lock(evio_conn *c);
void h_reg_unlock(void);
void h_reg_rc(evio_conn *c, int k, int rc); /* rc[k] = rc */
void h_reg_note_input(evio_conn *c, const void *in, size_t len);
h_conn h_reg_get(int i);          /* a copy; fails the test if i never opened */
int h_reg_by_listener(int listener); /* the (last) connection from it */
/* Ready-made callbacks: register / record closed() (and log). */
evio_action h_reg_opened(evio_conn *c, const evio_info *info);
evio_action h_reg_closed(evio_conn *c, int err);
evio_action h_reg_detached(evio_conn *c, int fd); /* logs, then closes fd */
/* Bounded waits for h_reg.opened / h_reg.closed to reach n. */
void h_reg_wait_opened(int n);
void h_reg_wait_closed(int n);

/* ---------------------------------------------------------------- scaffolding
 * The server/client set-up the test files share. */

evio_server *h_srv(h_server *hs);
/* h_server_start that must succeed. */
void h_start(h_server *hs, const evio_events *ev, const char *const addrs[], size_t n);
/* evio_server_stats' total (fails unless it returns >= 1). */
evio_stats h_stats(h_server *hs);
/* Send msg and expect it echoed back whole. */
void h_echo_check(int fd, const char *msg);
/* A connected client of the i-th address; rcvbuf > 0 sets SO_RCVBUF before
 * connect, so the TCP window stays that small. */
int h_client(h_server *hs, size_t i, int rcvbuf);
/* A UDP socket connected to the i-th address, with timeouts. */
int h_udp_client(h_server *hs, size_t i);
/* A copy of the i-th bound address (evio_server_addr's is valid only while
 * the server runs). */
socklen_t h_copy_addr(h_server *hs, size_t i, struct sockaddr_storage *ss);
/* A plain listener on 127.0.0.1, port 0 (for dial tests); *port gets its
 * port.  accept within ms (x h_slow) or fail. */
int h_test_listener(int *port);
int h_accept_within(int lfd, int ms);

/* A client the server closes at once must see EOF (or a reset) promptly. */
void h_expect_closed_at_once(int fd, const char *what);
/* Connect attempts to sa until one is refused (ECONNREFUSED, or ENOENT for
 * a removed unix socket); returns how long that took in ms, failing the
 * test past ms x h_slow. */
int64_t h_wait_refused(const struct sockaddr *sa, socklen_t len, int ms, const char *what);

/* ---------------------------------------------------------------- fixture */

void h_fixture_setup(void);
void h_fixture_teardown(void);
int h_count_fds(void);

/* ---------------------------------------------------------------- the suite
 * Each tests/test-*.c file contributes test cases; conformance.c builds the
 * suite from them.  A test case's timeout is scaled by h_slow. */

TCase *h_tcase(const char *name, double timeout_s);
TCase *tcase_errors(void);    /* test-errors.c */
TCase *tcase_serve(void);     /* test-serve.c */
TCase *tcase_lifecycle(void); /* test-lifecycle.c */
TCase *tcase_output(void);    /* test-output.c */
TCase *tcase_wake(void);      /* test-wake.c */
TCase *tcase_tick(void);      /* test-tick.c */
TCase *tcase_robust(void);    /* test-robust.c */
TCase *tcase_dial(void);      /* test-dial.c */
TCase *tcase_loops(void);     /* test-loops.c: many loops and UDP */
TCase *tcase_features(void);  /* test-features.c: send, idle, limits, drain, stats */
TCase *tcase_translate(void); /* test-translate.c */
TCase *tcase_bounds(void);    /* test-bounds.c: high water, write timeout, deadlines, half-close, reset */
TCase *tcase_contract(void);  /* test-contract.c: the rest of evio.h's promises, one check each */
TCase *tcase_contract_threads(void); /* test-contract.c: those where threads meet */

#endif /* EVIO_TESTS_HARNESS_H */
