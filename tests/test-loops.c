/*
 * test-loops.c — several loops (evio_events.nloops): a connection lives on
 * one loop thread for its whole life, connections are spread as the
 * balance policy says, wakes and shutdown reach every loop, tick runs on
 * loop 0.
 */
#include "harness.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LP_MAX 32

typedef struct lp_conn {
    pthread_t thread; /* where opened() ran */
    int index;        /* order of opened() */
} lp_conn;

static struct {
    pthread_mutex_t mu;
    pthread_t threads[LP_MAX]; /* thread of the i-th opened connection */
    uint64_t ids[LP_MAX];
    int n;
    atomic_int wrong_thread;
    atomic_int tick_off_loop0;
    atomic_int ticks;
    atomic_int closed;
} lp = {.mu = PTHREAD_MUTEX_INITIALIZER};

static evio_action lp_opened(evio_conn *c, const evio_info *info)
{
    lp_conn *lc = calloc(1, sizeof *lc);
    H_EXPECT(lc != NULL, "calloc");
    if (!lc)
        return EVIO_CLOSE;
    lc->thread = pthread_self();
    pthread_mutex_lock(&lp.mu);
    lc->index = lp.n;
    if (lp.n < LP_MAX) {
        lp.threads[lp.n] = lc->thread;
        lp.ids[lp.n] = evio_conn_id(c);
        lp.n++;
    }
    pthread_mutex_unlock(&lp.mu);
    evio_conn_set_context(c, lc);
    return h_opened_log(c, info);
}

static void lp_check_thread(evio_conn *c)
{
    lp_conn *lc = evio_conn_context(c);
    if (!lc || !pthread_equal(lc->thread, pthread_self()))
        atomic_fetch_add(&lp.wrong_thread, 1);
}

static evio_action lp_data(evio_conn *c, const void *in, size_t len)
{
    lp_check_thread(c);
    return h_data_echo(c, in, len);
}

static evio_action lp_closed(evio_conn *c, int err)
{
    lp_check_thread(c);
    free(evio_conn_context(c));
    atomic_fetch_add(&lp.closed, 1);
    return h_closed_log(c, err);
}

static evio_action lp_tick(evio_server *srv, int64_t *delay)
{
    if (!pthread_equal(pthread_self(), h_of(srv)->serving_thread))
        atomic_fetch_add(&lp.tick_off_loop0, 1);
    atomic_fetch_add(&lp.ticks, 1);
    *delay = 20 * 1000000;
    return EVIO_NONE;
}

static void lp_start(h_server *hs, int nloops, evio_balance balance, const char *addr)
{
    pthread_mutex_lock(&lp.mu);
    lp.n = 0;
    pthread_mutex_unlock(&lp.mu);
    atomic_store(&lp.wrong_thread, 0);
    atomic_store(&lp.tick_off_loop0, 0);
    atomic_store(&lp.ticks, 0);
    atomic_store(&lp.closed, 0);
    evio_events ev = {.opened = lp_opened, .data = lp_data, .closed = lp_closed,
                      .nloops = nloops, .balance = balance};
    const char *addrs[] = {addr};
    int rc = h_server_start(hs, &ev, addrs, 1);
    ck_assert_msg(rc == 0, "evio_serve(%s, nloops %d): %d (%s)", addr, nloops, rc,
                  evio_strerror(rc));
}

static int lp_count(void)
{
    pthread_mutex_lock(&lp.mu);
    int n = lp.n;
    pthread_mutex_unlock(&lp.mu);
    return n;
}

static pthread_t lp_thread(int i)
{
    pthread_mutex_lock(&lp.mu);
    pthread_t t = lp.threads[i];
    pthread_mutex_unlock(&lp.mu);
    return t;
}

static void echo_once(int fd)
{
    char buf[3];
    h_send_all(fd, "abc", 3);
    h_recv_exact(fd, buf, 3);
    ck_assert_mem_eq(buf, "abc", 3);
}

START_TEST(test_loops_round_robin)
{
    const int nloops = 4, nconns = 16;
    h_server hs = {0};
    lp_start(&hs, nloops, EVIO_ROUND_ROBIN, "tcp://127.0.0.1:0");
    int fds[16];
    for (int i = 0; i < nconns; i++) {
        fds[i] = h_connect(&hs, 0);
        H_WAIT(lp_count() == i + 1, 5000, "opened #%d", i + 1);
    }
    /* Exact shares: connection i and i + nloops share a loop, and the
     * first nloops are on distinct threads, one of them the caller's. */
    bool caller_seen = false;
    for (int i = 0; i < nloops; i++) {
        caller_seen = caller_seen || pthread_equal(lp_thread(i), hs.thread);
        for (int k = 0; k < i; k++)
            ck_assert_msg(!pthread_equal(lp_thread(i), lp_thread(k)),
                          "connections %d and %d on one loop with round robin over %d", k, i,
                          nloops);
    }
    ck_assert_msg(caller_seen, "no connection on loop 0 (evio_serve's own thread)");
    for (int i = nloops; i < nconns; i++)
        ck_assert_msg(pthread_equal(lp_thread(i), lp_thread(i - nloops)),
                      "round robin: connection %d not on the loop of connection %d", i,
                      i - nloops);
    for (int i = 0; i < nconns; i++)
        echo_once(fds[i]);
    for (int i = 0; i < nconns; i++)
        close(fds[i]);
    H_WAIT(atomic_load(&lp.closed) == nconns, 5000, "%d closed", nconns);
    h_server_stop(&hs);
    ck_assert_int_eq(atomic_load(&lp.wrong_thread), 0);
    ck_assert_uint_eq(h_log_check_sequences(true), (size_t)nconns);
}
END_TEST

START_TEST(test_loops_least_connections)
{
    h_server hs = {0};
    lp_start(&hs, 2, EVIO_LEAST_CONNECTIONS, "tcp://127.0.0.1:0");
    int a = h_connect(&hs, 0);
    H_WAIT(lp_count() == 1, 5000, "opened a");
    int b = h_connect(&hs, 0);
    H_WAIT(lp_count() == 2, 5000, "opened b");
    ck_assert_msg(!pthread_equal(lp_thread(0), lp_thread(1)),
                  "least connections put the second connection on the busy loop");
    close(a);
    H_WAIT(atomic_load(&lp.closed) == 1, 5000, "a closed");
    int c = h_connect(&hs, 0);
    H_WAIT(lp_count() == 3, 5000, "opened c");
    ck_assert_msg(pthread_equal(lp_thread(2), lp_thread(0)),
                  "least connections did not pick the loop left empty");
    echo_once(b);
    echo_once(c);
    close(b);
    close(c);
    H_WAIT(atomic_load(&lp.closed) == 3, 5000, "closed");
    h_server_stop(&hs);
    ck_assert_int_eq(atomic_load(&lp.wrong_thread), 0);
    h_log_check_sequences(true);
}
END_TEST

START_TEST(test_loops_wake_tick_shutdown)
{
    const int nconns = 9;
    h_server hs = {0};
    pthread_mutex_lock(&lp.mu);
    lp.n = 0;
    pthread_mutex_unlock(&lp.mu);
    atomic_store(&lp.wrong_thread, 0);
    atomic_store(&lp.tick_off_loop0, 0);
    atomic_store(&lp.ticks, 0);
    atomic_store(&lp.closed, 0);
    evio_events ev = {.opened = lp_opened, .data = lp_data, .closed = lp_closed,
                      .tick = lp_tick, .nloops = 3};
    const char *addrs[] = {"tcp://127.0.0.1:0"};
    int rc = h_server_start(&hs, &ev, addrs, 1);
    ck_assert_msg(rc == 0, "evio_serve: %d (%s)", rc, evio_strerror(rc));
    ck_assert(pthread_equal(hs.serving_thread, hs.thread));
    int fds[9];
    for (int i = 0; i < nconns; i++) {
        fds[i] = h_connect(&hs, 0);
        H_WAIT(lp_count() == i + 1, 5000, "opened #%d", i + 1);
    }
    int t0 = atomic_load(&lp.ticks);
    evio_server *srv = atomic_load(&hs.srv);
    for (int i = 0; i < nconns; i++) {
        pthread_mutex_lock(&lp.mu);
        uint64_t id = lp.ids[i];
        pthread_mutex_unlock(&lp.mu);
        ck_assert_int_eq(evio_wake(srv, id), 0);
        H_WAIT(h_log_count_id(id, H_WAKE) == 1, 5000, "the wake of connection %d", i);
    }
    H_WAIT(atomic_load(&lp.ticks) >= t0 + 3, 2000, "ticks");
    /* Shutdown closes the connections of every loop. */
    h_server_stop(&hs);
    ck_assert_int_eq(atomic_load(&lp.closed), nconns);
    ck_assert_int_eq(atomic_load(&lp.wrong_thread), 0);
    ck_assert_msg(atomic_load(&lp.tick_off_loop0) == 0, "tick ran off loop 0 %d times",
                  atomic_load(&lp.tick_off_loop0));
    h_log_check_sequences(true);
    for (int i = 0; i < nconns; i++) {
        h_drain(fds[i]);
        close(fds[i]);
    }
}
END_TEST

START_TEST(test_loops_per_cpu_and_reuseport)
{
    h_server hs = {0};
    lp_start(&hs, EVIO_LOOPS_PER_CPU, EVIO_ROUND_ROBIN, "tcp://127.0.0.1:0?reuseport=true");
    for (int i = 0; i < 8; i++) {
        int fd = h_connect(&hs, 0);
        echo_once(fd);
        close(fd);
    }
    H_WAIT(atomic_load(&lp.closed) == 8, 5000, "8 closed");
    h_server_stop(&hs);
    ck_assert_int_eq(atomic_load(&lp.wrong_thread), 0);
    h_log_check_sequences(true);

    /* A loop count below EVIO_LOOPS_PER_CPU is out of range. */
    evio_events ev = {.nloops = EVIO_LOOPS_PER_CPU - 1};
    const char *addrs[] = {"tcp://127.0.0.1:0"};
    h_server bad = {0};
    int rc = h_server_start(&bad, &ev, addrs, 1);
    if (rc == 0)
        h_server_stop(&bad);
    ck_assert_msg(rc == EVIO_EINVAL, "nloops %d: evio_serve returned %d (%s)",
                  EVIO_LOOPS_PER_CPU - 1, rc, evio_strerror(rc));
}
END_TEST

TCase *tcase_loops(void)
{
    TCase *tc = h_tcase("loops", 20);
    tcase_add_test(tc, test_loops_round_robin);
    tcase_add_test(tc, test_loops_least_connections);
    tcase_add_test(tc, test_loops_wake_tick_shutdown);
    tcase_add_test(tc, test_loops_per_cpu_and_reuseport);
    return tc;
}
