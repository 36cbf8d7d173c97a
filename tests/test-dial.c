/*
 * test-dial.c — evio_dial: outbound connections get exactly one opened()
 * (connected, or with dial_error) and one closed(); malformed and UDP
 * addresses are refused at once; names go through the resolver, off the
 * loop, within the timeout; and pause/resume of reading.
 */
#include "harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct dial_rec {
    uint64_t id;
    int listener, dialed, dial_error;
    bool had_local, had_remote;
    struct sockaddr_storage remote;
    socklen_t remote_len;
    void *ctx_at_open;
    int64_t opened_ns;
    int64_t closed_err;
} dial_rec;

#define DIAL_MAX 16

static struct {
    pthread_mutex_t mu;
    dial_rec recs[DIAL_MAX];
    int n;
    atomic_int closed_dialed;
    atomic_bool resolver_on_loop;
    atomic_int resolver_calls;
    pthread_t loop_thread;
} dl = {.mu = PTHREAD_MUTEX_INITIALIZER};

static int ctx_token;

static dial_rec *dl_find(uint64_t id)
{
    for (int i = 0; i < dl.n; i++)
        if (dl.recs[i].id == id)
            return &dl.recs[i];
    return NULL;
}

static evio_action dl_opened(evio_conn *c, const evio_info *info)
{
    h_opened_log(c, info);
    pthread_mutex_lock(&dl.mu);
    dial_rec *r = dl.n < DIAL_MAX ? &dl.recs[dl.n++] : NULL;
    if (r) {
        r->id = evio_conn_id(c);
        r->listener = info->listener;
        r->dialed = info->dialed;
        r->dial_error = info->dial_error;
        r->had_local = info->local != NULL;
        r->had_remote = info->remote != NULL;
        if (info->remote && info->remote_len <= sizeof r->remote) {
            memcpy(&r->remote, info->remote, info->remote_len);
            r->remote_len = info->remote_len;
        }
        r->ctx_at_open = evio_conn_context(c);
        r->opened_ns = h_now_ns();
        r->closed_err = INT64_MIN;
    }
    pthread_mutex_unlock(&dl.mu);
    if (info->dialed && !info->dial_error)
        evio_write(c, "hello", 5);
    return EVIO_NONE;
}

static evio_action dl_data(evio_conn *c, const void *in, size_t len)
{
    if (in && evio_conn_context(c) == &ctx_token) {
        /* The dialed side: the echo came back, done. */
        h_log(c, H_DATA, (int64_t)len);
        return EVIO_CLOSE;
    }
    return h_data_echo(c, in, len);
}

static evio_action dl_closed(evio_conn *c, int err)
{
    h_closed_log(c, err);
    pthread_mutex_lock(&dl.mu);
    dial_rec *r = dl_find(evio_conn_id(c));
    if (r)
        r->closed_err = err;
    bool dialed = r && r->dialed;
    pthread_mutex_unlock(&dl.mu);
    if (dialed)
        atomic_fetch_add(&dl.closed_dialed, 1);
    return EVIO_NONE;
}

/* "name.test" resolves to 127.0.0.1, "slow.test" after 1 s, anything else
 * is not found. */
static int dl_resolve(void *udata, const char *host, int family, struct sockaddr_storage *out,
                      socklen_t *outlen)
{
    (void)udata, (void)family;
    atomic_fetch_add(&dl.resolver_calls, 1);
    if (pthread_equal(pthread_self(), dl.loop_thread))
        atomic_store(&dl.resolver_on_loop, true);
    if (strcmp(host, "slow.test") == 0)
        h_sleep_ms(1000);
    if (strcmp(host, "name.test") != 0 && strcmp(host, "slow.test") != 0)
        return EVIO_ENONAME;
    struct sockaddr_in *sin = (struct sockaddr_in *)out;
    memset(sin, 0, sizeof *sin);
    sin->sin_family = AF_INET;
    sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    *outlen = sizeof *sin;
    return 0;
}

static void dl_start_with(h_server *hs, const char *const *addrs, size_t n, evio_resolver resolve)
{
    pthread_mutex_lock(&dl.mu);
    memset(dl.recs, 0, sizeof dl.recs);
    dl.n = 0;
    pthread_mutex_unlock(&dl.mu);
    atomic_store(&dl.closed_dialed, 0);
    atomic_store(&dl.resolver_on_loop, false);
    atomic_store(&dl.resolver_calls, 0);
    evio_events ev = {.opened = dl_opened, .data = dl_data, .closed = dl_closed,
                      .resolve = resolve};
    int rc = h_server_start(hs, &ev, addrs, n);
    ck_assert_msg(rc == 0, "evio_serve: %d (%s)", rc, evio_strerror(rc));
    dl.loop_thread = hs->thread;
}

static void dl_start(h_server *hs, const char *const *addrs, size_t n)
{
    dl_start_with(hs, addrs, n, dl_resolve);
}

static dial_rec dl_get(uint64_t id)
{
    dial_rec copy = {0};
    pthread_mutex_lock(&dl.mu);
    dial_rec *r = dl_find(id);
    if (r)
        copy = *r;
    pthread_mutex_unlock(&dl.mu);
    return copy;
}

/* Dial addr and wait until the dialed connection has closed. */
static dial_rec dial_and_wait(h_server *hs, const char *addr, int timeout_ms)
{
    uint64_t id = 0;
    int before = atomic_load(&dl.closed_dialed);
    int rc = evio_dial(atomic_load(&hs->srv), addr, timeout_ms, &ctx_token, &id);
    ck_assert_msg(rc == 0, "evio_dial(%s): %d (%s)", addr, rc, evio_strerror(rc));
    ck_assert_msg(id != 0, "evio_dial(%s) gave id 0", addr);
    H_WAIT(atomic_load(&dl.closed_dialed) > before, 5000, "the dial to %s to end", addr);
    dial_rec r = dl_get(id);
    ck_assert_msg(r.id == id, "no opened() for dialed id %llu", (unsigned long long)id);
    ck_assert_msg(r.dialed == 1, "opened() of a dialed connection has dialed = %d", r.dialed);
    ck_assert_int_eq(r.listener, -1);
    ck_assert_msg(r.ctx_at_open == &ctx_token, "the dial's ctx was not the context in opened()");
    ck_assert_uint_eq(h_log_count_id(id, H_OPENED), 1);
    ck_assert_uint_eq(h_log_count_id(id, H_CLOSED), 1);
    return r;
}

START_TEST(test_dial_connects)
{
    char path[108], uaddr[128];
    h_unix_path(path, sizeof path, "dial");
    snprintf(uaddr, sizeof uaddr, "unix://%s", path);
    const char *addrs[] = {"tcp://127.0.0.1:0", uaddr};
    h_server hs = {0};
    dl_start(&hs, addrs, 2);
    char target[64];
    snprintf(target, sizeof target, "tcp://127.0.0.1:%d", h_server_port(&hs, 0));

    const char *targets[] = {target, uaddr};
    for (int t = 0; t < 2; t++) {
        dial_rec r = dial_and_wait(&hs, targets[t], 2000);
        ck_assert_msg(r.dial_error == 0, "dial %s: dial_error %d (%s)", targets[t],
                      r.dial_error, evio_strerror(r.dial_error));
        ck_assert_msg(r.had_local && r.had_remote, "a connected dial without addresses");
        ck_assert_msg(r.closed_err == 0, "dial %s: closed err %lld", targets[t],
                      (long long)r.closed_err);
        if (t == 0) {
            socklen_t len;
            const struct sockaddr *sa = h_server_addr(&hs, 0, &len);
            ck_assert_msg(h_sockaddr_eq((struct sockaddr *)&r.remote, r.remote_len, sa, len),
                          "a dialed connection's remote is not the address dialed");
        }
    }
    /* The accepted ends closed too: 2 dialed + 2 accepted. */
    H_WAIT(h_log_count(H_CLOSED) == 4, 5000, "4 closed");
    h_server_stop(&hs);
    ck_assert_uint_eq(h_log_check_sequences(true), 4);
}
END_TEST

START_TEST(test_dial_failures_fire_opened_then_closed)
{
    /* A bound, not listening, port refuses. */
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert(bind(fd, (struct sockaddr *)&sin, sizeof sin) == 0);
    socklen_t sl = sizeof sin;
    ck_assert(getsockname(fd, (struct sockaddr *)&sin, &sl) == 0);
    char refused[64], nopath[108], unix_none[128];
    snprintf(refused, sizeof refused, "tcp://127.0.0.1:%d", ntohs(sin.sin_port));
    h_unix_path(nopath, sizeof nopath, "none");
    snprintf(unix_none, sizeof unix_none, "unix://%s", nopath);

    const char *addrs[] = {"tcp://127.0.0.1:0"};
    h_server hs = {0};
    dl_start(&hs, addrs, 1);

    dial_rec r = dial_and_wait(&hs, refused, 2000);
    ck_assert_msg(r.dial_error == -ECONNREFUSED, "dial to a closed port: dial_error %d (%s)",
                  r.dial_error, evio_strerror(r.dial_error));
    ck_assert_msg(r.closed_err == r.dial_error, "closed err %lld, dial_error %d",
                  (long long)r.closed_err, r.dial_error);
    ck_assert_msg(!r.had_local && !r.had_remote, "a failed dial with addresses");

    r = dial_and_wait(&hs, unix_none, 2000);
    ck_assert_msg(r.dial_error < 0, "dial to a missing unix path: dial_error %d", r.dial_error);
    ck_assert_int_eq(r.closed_err, r.dial_error);

    /* Names: through the resolver, never on the loop thread. */
    char name[64], noname[64], slow[64];
    snprintf(name, sizeof name, "tcp://name.test:%d", h_server_port(&hs, 0));
    snprintf(noname, sizeof noname, "tcp://nowhere.test:%d", h_server_port(&hs, 0));
    snprintf(slow, sizeof slow, "tcp://slow.test:%d", h_server_port(&hs, 0));
    r = dial_and_wait(&hs, name, 2000);
    ck_assert_msg(r.dial_error == 0, "dial %s: %d (%s)", name, r.dial_error,
                  evio_strerror(r.dial_error));
    r = dial_and_wait(&hs, noname, 2000);
    ck_assert_msg(r.dial_error == EVIO_ENONAME, "dial %s: dial_error %d (%s)", noname,
                  r.dial_error, evio_strerror(r.dial_error));
    ck_assert_int_eq(r.closed_err, EVIO_ENONAME);

    /* The timeout covers resolution: a 1 s resolver against 200 ms. */
    int64_t t0 = h_now_ns();
    r = dial_and_wait(&hs, slow, 200);
    double ms = (r.opened_ns - t0) / 1e6;
    ck_assert_msg(r.dial_error == -ETIMEDOUT, "dial %s with 200 ms: dial_error %d (%s)", slow,
                  r.dial_error, evio_strerror(r.dial_error));
    ck_assert_msg(ms >= 190 && ms < 900, "the 200 ms dial timed out after %.0f ms", ms);
    ck_assert_msg(atomic_load(&dl.resolver_calls) >= 3, "the resolver was not used");
    ck_assert_msg(!atomic_load(&dl.resolver_on_loop), "the resolver ran on the loop thread");
    evio_stats st;
    evio_server_stats(atomic_load(&hs.srv), &st, NULL, 0);
    ck_assert_msg(st.timeouts == 1, "stats.timeouts %llu after one timed-out dial",
                  (unsigned long long)st.timeouts);

    H_WAIT(h_log_count(H_CLOSED) == h_log_count(H_OPENED), 5000, "every connection closed");
    h_server_stop(&hs);
    h_log_check_sequences(true);
    close(fd);
}
END_TEST

START_TEST(test_dial_refused_at_once)
{
    const char *addrs[] = {"tcp://127.0.0.1:0"};
    h_server hs = {0};
    dl_start(&hs, addrs, 1);
    evio_server *srv = atomic_load(&hs.srv);
    static const struct {
        const char *addr;
        int want;
    } bad[] = {
        {"foo://x:1", EVIO_ESCHEME},
        {"tcp://", EVIO_EADDR},
        {"tcp://127.0.0.1:99999", EVIO_EADDR},
        {"tcp://127.0.0.1:1?bogus=1", EVIO_EOPTION},
        {"udp://127.0.0.1:9", EVIO_EUDP},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint64_t id = 12345;
        int rc = evio_dial(srv, bad[i].addr, 1000, NULL, &id);
        ck_assert_msg(rc == bad[i].want, "evio_dial(\"%s\") = %d (%s), expected %d (%s)",
                      bad[i].addr, rc, evio_strerror(rc), bad[i].want,
                      evio_strerror(bad[i].want));
    }
    /* An empty host names every local address when serving; for a dial it
     * names nothing, even with a live listener on that port. */
    static const char *const empty_host[] = {"tcp://:%d", "tcp4://:%d", "tcp6://:%d", ":%d"};
    for (size_t i = 0; i < sizeof empty_host / sizeof empty_host[0]; i++) {
        char addr[64];
        snprintf(addr, sizeof addr, empty_host[i], h_server_port(&hs, 0));
        uint64_t id = 12345;
        int rc = evio_dial(srv, addr, 1000, NULL, &id);
        ck_assert_msg(rc == EVIO_EADDR, "evio_dial(\"%s\") = %d (%s), expected EVIO_EADDR",
                      addr, rc, evio_strerror(rc));
    }
    h_sleep_ms(50);
    ck_assert_uint_eq(h_log_count(H_OPENED), 0);
    h_server_stop(&hs);
}
END_TEST

/* "localhost" is in /etc/hosts: the system resolver answers it without
 * leaving the machine (no other name is ever given to it). */
START_TEST(test_dial_localhost_system_resolver)
{
    const char *addrs[] = {"tcp://127.0.0.1:0"};
    h_server hs = {0};
    dl_start_with(&hs, addrs, 1, NULL);
    char target[64];
    snprintf(target, sizeof target, "tcp4://localhost:%d", h_server_port(&hs, 0));
    dial_rec r = dial_and_wait(&hs, target, 5000);
    ck_assert_msg(r.dial_error == 0, "dial %s: %d (%s)", target, r.dial_error,
                  evio_strerror(r.dial_error));
    ck_assert_msg(r.closed_err == 0, "closed err %lld", (long long)r.closed_err);
    H_WAIT(h_log_count(H_CLOSED) == 2, 5000, "both ends closed");
    h_server_stop(&hs);
    h_log_check_sequences(true);
}
END_TEST

/* While a name takes a second to resolve, the loop serves everyone else. */
START_TEST(test_dial_slow_resolution_keeps_serving)
{
    const char *addrs[] = {"tcp://127.0.0.1:0"};
    h_server hs = {0};
    dl_start(&hs, addrs, 1);
    char slow[64];
    snprintf(slow, sizeof slow, "tcp://slow.test:%d", h_server_port(&hs, 0));
    uint64_t id = 0;
    int before = atomic_load(&dl.closed_dialed);
    int rc = evio_dial(atomic_load(&hs.srv), slow, 5000, &ctx_token, &id);
    ck_assert_msg(rc == 0, "evio_dial: %d (%s)", rc, evio_strerror(rc));
    int fd = h_connect(&hs, 0);
    int64_t worst = 0;
    for (int i = 0; i < 20; i++) { /* about 0.4 s, inside the resolver's second */
        char buf[4];
        int64_t t0 = h_now_ns();
        h_send_all(fd, "ping", 4);
        h_recv_exact(fd, buf, 4);
        int64_t dt = h_now_ns() - t0;
        worst = dt > worst ? dt : worst;
        h_sleep_ms(20);
    }
    ck_assert_msg(atomic_load(&dl.closed_dialed) == before,
                  "the slow dial ended before the echo rounds did");
    ck_assert_msg(worst < 100000000LL * h_slow,
                  "an echo took %.1f ms while a resolution was in flight", worst / 1e6);
    H_WAIT(atomic_load(&dl.closed_dialed) > before, 5000, "the slow dial to end");
    dial_rec r = dl_get(id);
    ck_assert_msg(r.dial_error == 0, "slow dial: %d (%s)", r.dial_error,
                  evio_strerror(r.dial_error));
    close(fd);
    h_server_stop(&hs);
}
END_TEST

/* Dials from 4 threads at once each get a distinct id and one opened and
 * one closed; a dial after shutdown began is refused. */
#define DT_THREADS 4
#define DT_EACH 25
static struct {
    atomic_int opened_ok, opened_failed, closed;
    atomic_int after_shutdown_rc;
    uint64_t ids[DT_THREADS][DT_EACH];
    int rcs[DT_THREADS][DT_EACH];
    char target[64];
    evio_server *srv;
} dt;

static evio_action dt_opened(evio_conn *c, const evio_info *info)
{
    if (info->dialed) {
        atomic_fetch_add(info->dial_error ? &dt.opened_failed : &dt.opened_ok, 1);
        if (!info->dial_error)
            evio_write(c, "hi", 2);
    }
    return EVIO_NONE;
}

static evio_action dt_data(evio_conn *c, const void *in, size_t len)
{
    if (!in)
        return EVIO_NONE;
    if (evio_conn_context(c) == &ctx_token)
        return EVIO_CLOSE; /* the dialed side got its echo */
    if (len == 4 && memcmp(in, "stop", 4) == 0) {
        evio_server *srv = evio_conn_server(c);
        evio_server_shutdown(srv);
        uint64_t id = 0;
        atomic_store(&dt.after_shutdown_rc, evio_dial(srv, dt.target, 1000, NULL, &id));
        return EVIO_NONE;
    }
    evio_write(c, in, len);
    return EVIO_NONE;
}

static evio_action dt_closed(evio_conn *c, int err)
{
    (void)err;
    if (evio_conn_context(c) == &ctx_token)
        atomic_fetch_add(&dt.closed, 1);
    return EVIO_NONE;
}

static void *dt_thread(void *arg)
{
    int t = (int)(intptr_t)arg;
    for (int i = 0; i < DT_EACH; i++)
        dt.rcs[t][i] = evio_dial(dt.srv, dt.target, 5000, &ctx_token, &dt.ids[t][i]);
    return NULL;
}

START_TEST(test_dial_from_threads)
{
    memset(&dt, 0, sizeof dt);
    evio_events ev = {.opened = dt_opened, .data = dt_data, .closed = dt_closed};
    const char *addrs[] = {"tcp://127.0.0.1:0"};
    h_server hs = {0};
    int rc = h_server_start(&hs, &ev, addrs, 1);
    ck_assert_msg(rc == 0, "evio_serve: %d (%s)", rc, evio_strerror(rc));
    dt.srv = atomic_load(&hs.srv);
    snprintf(dt.target, sizeof dt.target, "tcp://127.0.0.1:%d", h_server_port(&hs, 0));
    pthread_t th[DT_THREADS];
    for (int t = 0; t < DT_THREADS; t++)
        ck_assert(pthread_create(&th[t], NULL, dt_thread, (void *)(intptr_t)t) == 0);
    for (int t = 0; t < DT_THREADS; t++)
        pthread_join(th[t], NULL);
    for (int t = 0; t < DT_THREADS; t++)
        for (int i = 0; i < DT_EACH; i++) {
            ck_assert_msg(dt.rcs[t][i] == 0, "thread %d dial %d: %d (%s)", t, i, dt.rcs[t][i],
                          evio_strerror(dt.rcs[t][i]));
            for (int u = 0; u <= t; u++)
                for (int k = 0; k < (u == t ? i : DT_EACH); k++)
                    ck_assert_msg(dt.ids[u][k] != dt.ids[t][i], "two dials got id %llu",
                                  (unsigned long long)dt.ids[t][i]);
        }
    int total = DT_THREADS * DT_EACH;
    H_WAIT(atomic_load(&dt.closed) == total, 10000, "%d dialed connections to close", total);
    ck_assert_int_eq(atomic_load(&dt.opened_ok), total);
    ck_assert_int_eq(atomic_load(&dt.opened_failed), 0);

    atomic_store(&dt.after_shutdown_rc, 1);
    int fd = h_connect(&hs, 0);
    h_send_all(fd, "stop", 4);
    H_WAIT(atomic_load(&dt.after_shutdown_rc) != 1, 5000, "the dial after shutdown");
    ck_assert_msg(atomic_load(&dt.after_shutdown_rc) == EVIO_ESHUTDOWN,
                  "evio_dial after shutdown: %d, expected EVIO_ESHUTDOWN",
                  atomic_load(&dt.after_shutdown_rc));
    close(fd);
    h_server_join(&hs); /* it shut itself down */
}
END_TEST

/* ---------------------------------------------------------------- pause / resume */

static struct {
    atomic_bool paused;
    atomic_int data_while_paused;
    atomic_int pause_rc, resume_rc;
    atomic_uint_fast64_t id;
} pr;

static evio_action pr_opened(evio_conn *c, const evio_info *info)
{
    atomic_store(&pr.id, evio_conn_id(c));
    return h_opened_log(c, info);
}

static evio_action pr_data(evio_conn *c, const void *in, size_t len)
{
    if (!in) {
        /* The wake still fires while paused: write, then resume. */
        h_log(c, H_WAKE, 0);
        evio_write(c, "W", 1);
        atomic_store(&pr.paused, false);
        atomic_store(&pr.resume_rc, evio_conn_resume(c));
        return EVIO_NONE;
    }
    if (atomic_load(&pr.paused))
        atomic_fetch_add(&pr.data_while_paused, 1);
    if (len == 5 && memcmp(in, "pause", 5) == 0) {
        h_log(c, H_DATA, (int64_t)len);
        atomic_store(&pr.pause_rc, evio_conn_pause(c));
        atomic_store(&pr.paused, true);
        evio_write(c, "P", 1);
        return EVIO_NONE;
    }
    return h_data_echo(c, in, len);
}

START_TEST(test_pause_resume)
{
    memset(&pr, 0, sizeof pr);
    evio_events ev = {.opened = pr_opened, .data = pr_data, .closed = h_closed_log};
    const char *addrs[] = {"tcp://127.0.0.1:0"};
    h_server hs = {0};
    int rc = h_server_start(&hs, &ev, addrs, 1);
    ck_assert_msg(rc == 0, "evio_serve: %d (%s)", rc, evio_strerror(rc));
    int fd = h_connect(&hs, 0);
    char buf[8];
    h_send_all(fd, "pause", 5);
    h_recv_exact(fd, buf, 1);
    ck_assert_int_eq(buf[0], 'P');
    ck_assert_int_eq(atomic_load(&pr.pause_rc), 0);
    /* Input waits while paused. */
    h_send_all(fd, "later", 5);
    h_sleep_ms(200);
    ck_assert_int_eq(atomic_load(&pr.data_while_paused), 0);
    ck_assert_uint_eq(h_log_count(H_DATA), 1);
    /* A wake fires (and its output flows), it resumes, the input comes. */
    ck_assert_int_eq(evio_wake(atomic_load(&hs.srv), atomic_load(&pr.id)), 0);
    h_recv_exact(fd, buf, 6);
    ck_assert_mem_eq(buf, "Wlater", 6);
    ck_assert_int_eq(atomic_load(&pr.resume_rc), 0);
    ck_assert_int_eq(atomic_load(&pr.data_while_paused), 0);
    close(fd);
    H_WAIT(h_log_count(H_CLOSED) == 1, 5000, "closed");
    h_server_stop(&hs);
    h_log_check_sequences(true);
}
END_TEST

/* Pausing another connection of the loop must hold back a read already
 * fetched for it in the same poll batch (the proxy pattern). */
static struct {
    evio_conn *conn[3]; /* 0: the one that blocks the loop, 1 and 2: the pair */
    atomic_uint_fast64_t id[3];
    atomic_int nopen, first, paused, paused_data;
} po;

static evio_action po_opened(evio_conn *c, const evio_info *info)
{
    (void)info;
    int i = atomic_fetch_add(&po.nopen, 1);
    if (i < 3) {
        po.conn[i] = c;
        atomic_store(&po.id[i], evio_conn_id(c));
    }
    return EVIO_NONE;
}

static evio_action po_data(evio_conn *c, const void *in, size_t len)
{
    (void)len;
    int me = c == po.conn[1] ? 1 : c == po.conn[2] ? 2 : 0;
    if (!in) { /* the wake: resume ourselves */
        evio_conn_resume(c);
        return EVIO_NONE;
    }
    if (me == 0) { /* keep the loop busy while both peers send */
        h_sleep_ms(150);
        return EVIO_NONE;
    }
    if (atomic_load(&po.first) == 0) { /* the first of the pair pauses the other */
        atomic_store(&po.first, me);
        atomic_store(&po.paused, 3 - me);
        H_EXPECT(evio_conn_pause(po.conn[3 - me]) == 0, "pause the other");
    } else if (atomic_load(&po.paused) == me) {
        atomic_fetch_add(&po.paused_data, 1); /* must wait for the resume */
    }
    evio_write(c, in, len);
    return EVIO_NONE;
}

START_TEST(test_pause_other_in_same_batch)
{
    memset(&po, 0, sizeof po);
    evio_events ev = {.opened = po_opened, .data = po_data};
    const char *addrs[] = {"tcp://127.0.0.1:0"};
    h_server hs = {0};
    int rc = h_server_start(&hs, &ev, addrs, 1);
    ck_assert_msg(rc == 0, "evio_serve: %d (%s)", rc, evio_strerror(rc));
    int fd[3];
    for (int i = 0; i < 3; i++) {
        fd[i] = h_connect(&hs, 0);
        H_WAIT(atomic_load(&po.nopen) == i + 1, 5000, "opened %d", i);
    }
    char buf[4];
    h_send_all(fd[0], "hold", 4); /* the loop sleeps 150 ms in data() */
    h_sleep_ms(50);
    h_send_all(fd[1], "x", 1);
    h_send_all(fd[2], "y", 1); /* both ready in the batch after the sleep */
    H_WAIT(atomic_load(&po.first) != 0, 5000, "the first of the pair");
    int first = atomic_load(&po.first), other = 3 - first;
    h_recv_exact(fd[first], buf, 1);
    h_sleep_ms(200);
    /* The paused one's byte was already readable in that batch: it waits. */
    ck_assert_int_eq(atomic_load(&po.paused_data), 0);
    ck_assert_int_eq(evio_wake(atomic_load(&hs.srv), atomic_load(&po.id[other])), 0);
    h_recv_exact(fd[other], buf, 1); /* resumed: now it arrives */
    ck_assert_int_eq(atomic_load(&po.paused_data), 1);
    for (int i = 0; i < 3; i++)
        close(fd[i]);
    h_server_stop(&hs);
}
END_TEST

TCase *tcase_dial(void)
{
    TCase *tc = h_tcase("dial", 20);
    tcase_add_test(tc, test_dial_connects);
    tcase_add_test(tc, test_dial_failures_fire_opened_then_closed);
    tcase_add_test(tc, test_dial_refused_at_once);
    tcase_add_test(tc, test_dial_localhost_system_resolver);
    tcase_add_test(tc, test_dial_slow_resolution_keeps_serving);
    tcase_add_test(tc, test_dial_from_threads);
    tcase_add_test(tc, test_pause_resume);
    tcase_add_test(tc, test_pause_other_in_same_batch);
    return tc;
}
