/*
 * test-wake.c — evio_wake: from many threads nothing is lost, from one
 * callback wakes coalesce, unknown and closed ids are refused, and output
 * written after a wake arrives, in order.
 */
#include "harness.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MIB (1024 * 1024)

/* ---------------------------------------------------------------- threads */

#define WAKE_THREADS 8
#define WAKES_PER_THREAD 10000

static struct {
    atomic_uint_fast64_t id;
    atomic_long counter; /* bumped before every wake */
    atomic_long seen;    /* counter as the last wake event saw it */
    atomic_long wakes;   /* wake events */
    atomic_long bad_rc;
    atomic_int last_bad_rc;
    evio_server *srv;
} wt;

static evio_action wt_opened(evio_conn *c, const evio_info *info)
{
    atomic_store(&wt.id, evio_conn_id(c));
    return h_opened_log(c, info);
}

static evio_action wt_data(evio_conn *c, const void *in, size_t len)
{
    if (in == NULL) {
        H_EXPECT(len == 0, "data(NULL, %zu)", len);
        atomic_fetch_add(&wt.wakes, 1);
        atomic_store(&wt.seen, atomic_load(&wt.counter));
        return EVIO_NONE;
    }
    return h_data_echo(c, in, len);
}

static void *wt_thread(void *arg)
{
    (void)arg;
    uint64_t id = atomic_load(&wt.id);
    for (int i = 0; i < WAKES_PER_THREAD; i++) {
        atomic_fetch_add(&wt.counter, 1);
        int rc = evio_wake(wt.srv, id);
        if (rc != 0) {
            atomic_fetch_add(&wt.bad_rc, 1);
            atomic_store(&wt.last_bad_rc, rc);
        }
    }
    return NULL;
}

START_TEST(test_wake_from_many_threads_loses_nothing)
{
    memset(&wt, 0, sizeof wt);
    evio_events ev = {.opened = wt_opened, .data = wt_data, .closed = h_closed_log};
    const char *addrs[] = {"tcp://127.0.0.1:0"};
    h_server hs = {0};
    int rc = h_server_start(&hs, &ev, addrs, 1);
    ck_assert_msg(rc == 0, "evio_serve: %d (%s)", rc, evio_strerror(rc));
    wt.srv = atomic_load(&hs.srv);
    int fd = h_connect(&hs, 0);
    H_WAIT(atomic_load(&wt.id) != 0, 5000, "opened");

    pthread_t th[WAKE_THREADS];
    for (int i = 0; i < WAKE_THREADS; i++)
        ck_assert_int_eq(pthread_create(&th[i], NULL, wt_thread, NULL), 0);
    for (int i = 0; i < WAKE_THREADS; i++)
        pthread_join(th[i], NULL);
    const long total = (long)WAKE_THREADS * WAKES_PER_THREAD;
    ck_assert_msg(atomic_load(&wt.bad_rc) == 0, "evio_wake failed %ld times (last: %d, %s)",
                  atomic_load(&wt.bad_rc), atomic_load(&wt.last_bad_rc),
                  evio_strerror(atomic_load(&wt.last_bad_rc)));
    H_WAIT(atomic_load(&wt.seen) == total, 5000,
           "a wake event after the last wake (the last one saw %ld of %ld)",
           atomic_load(&wt.seen), total);
    long wakes = atomic_load(&wt.wakes);
    ck_assert_msg(wakes >= 1 && wakes <= total, "%ld wake events for %ld wakes", wakes, total);
    printf("%s: %ld wakes from %d threads -> %ld wake events\n", tcase_name(), total,
           WAKE_THREADS, wakes);

    /* The connection still works normally. */
    char buf[2];
    h_send_all(fd, "ok", 2);
    h_recv_exact(fd, buf, 2);
    close(fd);
    H_WAIT(h_log_count(H_CLOSED) == 1, 5000, "closed");
    h_server_stop(&hs);
    h_log_check_sequences(true);
}
END_TEST

/* ---------------------------------------------------------------- coalescing */

#define COALESCE_N 100

static struct {
    atomic_uint_fast64_t ids[2];
    atomic_int nconns;
    atomic_int bad_rc;
} co;

static evio_action co_opened(evio_conn *c, const evio_info *info)
{
    int i = atomic_load(&co.nconns);
    if (i < 2)
        atomic_store(&co.ids[i], evio_conn_id(c));
    evio_conn_set_context(c, calloc(1, sizeof(int)));
    atomic_store(&co.nconns, i + 1);
    return h_opened_log(c, info);
}

static evio_action co_data(evio_conn *c, const void *in, size_t len)
{
    int *wakes = evio_conn_context(c);
    evio_server *srv = evio_conn_server(c);
    if (in == NULL) {
        h_log(c, H_WAKE, 0);
        (*wakes)++;
        evio_write(c, "W", 1);
        return EVIO_NONE;
    }
    h_log(c, H_DATA, (int64_t)len);
    if (len == 2 && memcmp(in, "go", 2) == 0) {
        /* N wakes of ourselves and of the other connection, all before the
         * loop can get to them: each connection gets exactly one wake. */
        for (int i = 0; i < COALESCE_N; i++)
            for (int k = 0; k < 2; k++)
                if (evio_wake(srv, atomic_load(&co.ids[k])) != 0)
                    atomic_fetch_add(&co.bad_rc, 1);
    } else if (len == 1 && memcmp(in, "?", 1) == 0) {
        char out[16];
        int n = snprintf(out, sizeof out, "%d\n", *wakes);
        evio_write(c, out, (size_t)n);
    }
    return EVIO_NONE;
}

static evio_action co_closed(evio_conn *c, int err)
{
    free(evio_conn_context(c));
    return h_closed_log(c, err);
}

START_TEST(test_wakes_in_one_callback_coalesce)
{
    memset(&co, 0, sizeof co);
    evio_events ev = {.opened = co_opened, .data = co_data, .closed = co_closed};
    const char *addrs[] = {"tcp://127.0.0.1:0"};
    h_server hs = {0};
    int rc = h_server_start(&hs, &ev, addrs, 1);
    ck_assert_msg(rc == 0, "evio_serve: %d (%s)", rc, evio_strerror(rc));
    int a = h_connect(&hs, 0);
    H_WAIT(atomic_load(&co.nconns) == 1, 5000, "opened a");
    int b = h_connect(&hs, 0);
    H_WAIT(atomic_load(&co.nconns) == 2, 5000, "opened b");

    char buf[16];
    h_send_all(a, "go", 2);
    h_recv_exact(a, buf, 1);
    ck_assert_int_eq(buf[0], 'W');
    h_recv_exact(b, buf, 1);
    ck_assert_int_eq(buf[0], 'W');
    ck_assert_int_eq(atomic_load(&co.bad_rc), 0);
    h_sleep_ms(50 * h_slow); /* a second wake event would have come by now */
    for (int k = 0; k < 2; k++) {
        int fd = k ? b : a;
        h_send_all(fd, "?", 1);
        h_recv_exact(fd, buf, 2);
        ck_assert_msg(buf[0] == '1' && buf[1] == '\n',
                      "connection %c: %.2s wake events after %d wakes in one callback, "
                      "expected 1", 'a' + k, buf, COALESCE_N);
    }
    close(a);
    close(b);
    H_WAIT(h_log_count(H_CLOSED) == 2, 5000, "closed");
    h_server_stop(&hs);
    ck_assert_uint_eq(h_log_count(H_WAKE), 2);
    h_log_check_sequences(true);
}
END_TEST

/* ---------------------------------------------------------------- unknown ids */

static struct {
    atomic_uint_fast64_t ids[2];
    atomic_int nconns;
    atomic_uint_fast64_t probe_id; /* woken from inside a callback */
    atomic_int probe_rc;
    atomic_bool probed;
} uk;

static evio_action uk_opened(evio_conn *c, const evio_info *info)
{
    int i = atomic_load(&uk.nconns);
    if (i < 2)
        atomic_store(&uk.ids[i], evio_conn_id(c));
    atomic_store(&uk.nconns, i + 1);
    return h_opened_log(c, info);
}

static evio_action uk_data(evio_conn *c, const void *in, size_t len)
{
    if (in && len == 5 && memcmp(in, "probe", 5) == 0) {
        h_log(c, H_DATA, (int64_t)len);
        atomic_store(&uk.probe_rc, evio_wake(evio_conn_server(c), atomic_load(&uk.probe_id)));
        atomic_store(&uk.probed, true);
        evio_write(c, "k", 1);
        return EVIO_NONE;
    }
    return h_data_echo(c, in, len);
}

START_TEST(test_wake_unknown_or_closed_id)
{
    memset(&uk, 0, sizeof uk);
    evio_events ev = {.opened = uk_opened, .data = uk_data, .closed = h_closed_log};
    const char *addrs[] = {"tcp://127.0.0.1:0"};
    h_server hs = {0};
    int rc = h_server_start(&hs, &ev, addrs, 1);
    ck_assert_msg(rc == 0, "evio_serve: %d (%s)", rc, evio_strerror(rc));
    evio_server *srv = atomic_load(&hs.srv);

    ck_assert_int_eq(evio_wake(srv, 0), EVIO_ENOTFOUND);
    ck_assert_int_eq(evio_wake(srv, UINT64_MAX), EVIO_ENOTFOUND);
    ck_assert_int_eq(evio_wake(srv, 987654321), EVIO_ENOTFOUND);

    int a = h_connect(&hs, 0);
    H_WAIT(atomic_load(&uk.nconns) == 1, 5000, "opened");
    uint64_t ida = atomic_load(&uk.ids[0]);
    ck_assert_int_eq(evio_wake(srv, ida), 0);
    H_WAIT(h_log_count_id(ida, H_WAKE) == 1, 5000, "the wake event");
    close(a);
    H_WAIT(h_log_count_id(ida, H_CLOSED) == 1, 5000, "closed");
    ck_assert_msg(evio_wake(srv, ida) == EVIO_ENOTFOUND,
                  "evio_wake on a closed connection's id returned %d, expected EVIO_ENOTFOUND",
                  evio_wake(srv, ida));

    /* The same, asked from inside a callback on the loop thread. */
    int b = h_connect(&hs, 0);
    H_WAIT(atomic_load(&uk.nconns) == 2, 5000, "opened");
    atomic_store(&uk.probe_id, ida);
    h_send_all(b, "probe", 5);
    char k;
    h_recv_exact(b, &k, 1);
    ck_assert(atomic_load(&uk.probed));
    ck_assert_msg(atomic_load(&uk.probe_rc) == EVIO_ENOTFOUND,
                  "evio_wake(closed id) in a callback returned %d", atomic_load(&uk.probe_rc));
    uint64_t idb = atomic_load(&uk.ids[1]);
    ck_assert_uint_ne(ida, idb);
    ck_assert_int_eq(evio_wake(srv, idb), 0);
    H_WAIT(h_log_count_id(idb, H_WAKE) == 1, 5000, "the wake event");
    close(b);
    H_WAIT(h_log_count(H_CLOSED) == 2, 5000, "closed");
    h_server_stop(&hs);
    ck_assert_uint_eq(h_log_count_id(ida, H_WAKE), 1);
    h_log_check_sequences(true);
}
END_TEST

/* ---------------------------------------------------------------- output after a wake */

/* A background "job" queue: the test thread pushes replies and wakes the
 * connection; data(NULL, 0) writes whatever is queued. */
typedef struct job {
    struct job *next;
    size_t len;
    uint32_t seed;
} job;

static struct {
    pthread_mutex_t mu;
    job *head, **tail;
    atomic_uint_fast64_t id;
    atomic_size_t pending_after_big;
} wo = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void wo_push(size_t len, uint32_t seed)
{
    job *j = calloc(1, sizeof *j);
    ck_assert(j != NULL);
    j->len = len;
    j->seed = seed;
    pthread_mutex_lock(&wo.mu);
    *wo.tail = j;
    wo.tail = &j->next;
    pthread_mutex_unlock(&wo.mu);
}

static evio_action wo_opened(evio_conn *c, const evio_info *info)
{
    atomic_store(&wo.id, evio_conn_id(c));
    return h_opened_log(c, info);
}

static evio_action wo_data(evio_conn *c, const void *in, size_t len)
{
    if (in)
        return h_data_echo(c, in, len);
    h_log(c, H_WAKE, 0);
    for (;;) {
        pthread_mutex_lock(&wo.mu);
        job *j = wo.head;
        if (j) {
            wo.head = j->next;
            if (!wo.head)
                wo.tail = &wo.head;
        }
        pthread_mutex_unlock(&wo.mu);
        if (!j)
            break;
        uint8_t *p = malloc(j->len);
        H_EXPECT(p != NULL, "malloc");
        if (p) {
            h_fill(p, j->len, j->seed);
            int rc = evio_write(c, p, j->len);
            H_EXPECT(rc == 0, "evio_write after a wake: %d", rc);
            free(p);
        }
        if (j->len >= MIB)
            atomic_store(&wo.pending_after_big, evio_conn_pending(c));
        free(j);
    }
    return EVIO_NONE;
}

static void expect_job(int fd, size_t len, uint32_t seed)
{
    uint8_t *buf = h_xmalloc(len);
    h_recv_exact(fd, buf, len);
    size_t bad = h_mismatch(buf, len, seed);
    ck_assert_msg(bad == (size_t)-1, "reply %u (%zu bytes) wrong at byte %zu", seed, len, bad);
    free(buf);
}

START_TEST(test_wake_output_arrives)
{
    wo.head = NULL;
    wo.tail = &wo.head;
    atomic_store(&wo.id, 0);
    atomic_store(&wo.pending_after_big, 0);
    evio_events ev = {.opened = wo_opened, .data = wo_data, .closed = h_closed_log};
    const char *addrs[] = {"tcp://127.0.0.1:0"};
    h_server hs = {0};
    int rc = h_server_start(&hs, &ev, addrs, 1);
    ck_assert_msg(rc == 0, "evio_serve: %d (%s)", rc, evio_strerror(rc));
    evio_server *srv = atomic_load(&hs.srv);
    socklen_t len;
    const struct sockaddr *sa = h_server_addr(&hs, 0, &len);
    int fd = h_socket_for(sa);
    int sz = 16 * 1024;
    ck_assert(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz) == 0);
    ck_assert(h_try_connect(fd, sa, len) == 0);
    H_WAIT(atomic_load(&wo.id) != 0, 5000, "opened");
    uint64_t id = atomic_load(&wo.id);

    /* Request/response through wakes. */
    for (uint32_t k = 1; k <= 200; k++) {
        size_t n = 1 + (k * 7919) % 4096;
        wo_push(n, k);
        ck_assert_int_eq(evio_wake(srv, id), 0);
        expect_job(fd, n, k);
    }

    /* Output queued behind a large pending write is not lost either: 4 MiB
     * the client does not read yet, then two more replies woken in. */
    wo_push(4 * MIB, 1000);
    ck_assert_int_eq(evio_wake(srv, id), 0);
    H_WAIT(atomic_load(&wo.pending_after_big) > 0, 5000, "the 4 MiB reply");
    wo_push(100, 1001);
    ck_assert_int_eq(evio_wake(srv, id), 0);
    h_sleep_ms(20);
    wo_push(200, 1002);
    ck_assert_int_eq(evio_wake(srv, id), 0);
    h_sleep_ms(50);
    expect_job(fd, 4 * MIB, 1000);
    expect_job(fd, 100, 1001);
    expect_job(fd, 200, 1002);

    close(fd);
    H_WAIT(h_log_count(H_CLOSED) == 1, 5000, "closed");
    h_server_stop(&hs);
    h_log_check_sequences(true);
}
END_TEST

TCase *tcase_wake(void)
{
    TCase *tc = h_tcase("wake", 30);
    tcase_add_test(tc, test_wake_from_many_threads_loses_nothing);
    tcase_add_test(tc, test_wakes_in_one_callback_coalesce);
    tcase_add_test(tc, test_wake_unknown_or_closed_id);
    tcase_add_test(tc, test_wake_output_arrives);
    return tc;
}
