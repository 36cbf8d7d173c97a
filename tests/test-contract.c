/*
 * test-contract.c — the promises of evio.h and the README that no other
 * file checks, one named check each (issue 15, item 3).  docs/conformance.md
 * maps every promise to the check that covers it.
 *
 * Every test runs a real server on 127.0.0.1 (port 0), ::1 or a unique unix
 * path and asserts on what came back over real sockets; every wait is
 * bounded (x h_slow).  Nothing here depends on how a backend reports I/O
 * (readiness or completion): only on the public API and the bytes.
 */
#include "harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#define KIB 1024
#define MIB (1024 * 1024)
#define MS 1000000LL /* ns per ms */

/* What a timeout may fire early by (the loop's clock is read once per
 * iteration). */
#define EARLY_MS 25

/* Where a test that runs on several kinds of socket listens. */
enum { K_TCP, K_TCP6, K_UNIX, K_N };

typedef struct kaddr {
    const char *addr;
    char path[108];
    char buf[160];
} kaddr;

static const char *const kind_names[K_N] = {"tcp 127.0.0.1", "tcp6 ::1", "unix"};

/* The address for kind; false (after saying so) if this host lacks ::1. */
static bool kaddr_init(kaddr *ka, int kind)
{
    memset(ka, 0, sizeof *ka);
    switch (kind) {
    case K_UNIX:
        h_unix_path(ka->path, sizeof ka->path, "contract");
        snprintf(ka->buf, sizeof ka->buf, "unix://%s", ka->path);
        ka->addr = ka->buf;
        return true;
    case K_TCP6:
        if (!h_have_ipv6()) {
            printf("%s: this host cannot bind ::1; the tcp6 variant does not run\n",
                   tcase_name());
            return false;
        }
        ka->addr = "tcp6://[::1]:0";
        return true;
    default:
        ka->addr = "tcp://127.0.0.1:0";
        return true;
    }
}

/* evio_serve(addrs) must fail with want without serving. */
static void expect_serve_fails(const char *const *addrs, size_t n, int want)
{
    evio_events ev = {.opened = h_opened_log};
    h_server hs = {0};
    int rc = h_server_start(&hs, &ev, addrs, n);
    if (rc == 0) {
        h_server_stop(&hs);
        ck_abort_msg("evio_serve(\"%s\") served; expected %d (%s)", addrs[0], want,
                     evio_strerror(want));
    }
    ck_assert_msg(rc == want, "evio_serve(\"%s\") returned %d (%s), expected %d (%s)", addrs[0],
                  rc, evio_strerror(rc), want, evio_strerror(want));
}

/* ================================================================ errors and addresses */

/* evio_strerror: every EVIO_E* code has its own non-empty message, none of
 * them the message for a code evio does not know. */
START_TEST(test_strerror_names_every_evio_code)
{
    static const int codes[] = {EVIO_EADDR,    EVIO_ESCHEME,   EVIO_EOPTION,   EVIO_ENOADDR,
                                EVIO_EBACKEND, EVIO_ESHUTDOWN, EVIO_ENOTFOUND, EVIO_EINVAL,
                                EVIO_ENONAME,  EVIO_EUDP,      EVIO_ETRANSLATE};
    enum { N = sizeof codes / sizeof codes[0] };
    char msg[N][256], unknown[256];
    snprintf(unknown, sizeof unknown, "%s", evio_strerror(-10099));
    for (int i = 0; i < N; i++) {
        ck_assert_msg(codes[i] < -10000, "EVIO code %d is not below -10000", codes[i]);
        const char *m = evio_strerror(codes[i]);
        ck_assert_msg(m != NULL && m[0] != 0, "evio_strerror(%d) is empty", codes[i]);
        snprintf(msg[i], sizeof msg[i], "%s", m);
        ck_assert_msg(strcmp(msg[i], unknown) != 0,
                      "evio_strerror(%d) is the message for an unknown code (\"%s\")", codes[i],
                      unknown);
        ck_assert_msg(strcmp(msg[i], evio_strerror(-ECONNRESET)) != 0,
                      "evio_strerror(%d) reads like an errno message", codes[i]);
    }
    for (int i = 0; i < N; i++)
        for (int j = i + 1; j < N; j++)
            ck_assert_msg(strcmp(msg[i], msg[j]) != 0,
                          "evio_strerror(%d) and (%d) are both \"%s\"", codes[i], codes[j],
                          msg[i]);
}
END_TEST

/* evio_addr_format: EVIO_EINVAL when len is too short for sa's family (or
 * sa is NULL); the exact length is enough. */
START_TEST(test_addr_format_rejects_short_lengths)
{
    char buf[128];
    struct sockaddr_in in = {.sin_family = AF_INET, .sin_port = htons(80)};
    in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct sockaddr_in6 in6 = {.sin6_family = AF_INET6, .sin6_port = htons(80),
                               .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    const struct {
        const struct sockaddr *sa;
        socklen_t len;
        const char *what;
    } bad[] = {
        {(struct sockaddr *)&in, sizeof in - 1, "AF_INET, len one short"},
        {(struct sockaddr *)&in, sizeof(sa_family_t), "AF_INET, len of the family only"},
        {(struct sockaddr *)&in, 0, "AF_INET, len 0"},
        {(struct sockaddr *)&in6, sizeof in6 - 1, "AF_INET6, len one short"},
        {(struct sockaddr *)&in6, sizeof in, "AF_INET6, len of an AF_INET"},
        {NULL, sizeof in, "NULL"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = evio_addr_format(bad[i].sa, bad[i].len, buf, sizeof buf);
        ck_assert_msg(rc == EVIO_EINVAL, "evio_addr_format(%s) returned %d (%s), expected "
                      "EVIO_EINVAL", bad[i].what, rc, rc >= 0 ? buf : evio_strerror(rc));
    }
    ck_assert_int_eq(evio_addr_format((struct sockaddr *)&in, sizeof in, buf, sizeof buf),
                     (int)strlen("tcp://127.0.0.1:80"));
    ck_assert_str_eq(buf, "tcp://127.0.0.1:80");
    ck_assert_int_eq(evio_addr_format((struct sockaddr *)&in6, sizeof in6, buf, sizeof buf),
                     (int)strlen("tcp://[::1]:80"));
    ck_assert_str_eq(buf, "tcp://[::1]:80");
}
END_TEST

/* Round trip: the bound address, formatted (evio_addr_format and
 * evio_server_addr_format agree), is a string evio_dial accepts, and the
 * dial reaches this very listener.  _i: tcp 127.0.0.1, tcp6 ::1, unix. */
static evio_action rt_opened(evio_conn *c, const evio_info *info)
{
    h_reg_open(c, info);
    h_reg_rc(c, 0, info->dial_error);
    if (info->dialed && !info->dial_error) {
        int rc = evio_write(c, "round trip", 10);
        H_EXPECT(rc == 0, "evio_write in a dialed opened(): %d (%s)", rc, evio_strerror(rc));
    }
    return EVIO_NONE;
}

static evio_action rt_data(evio_conn *c, const void *in, size_t len)
{
    int i = h_reg_index(c);
    if (in && i >= 0 && h_reg_get(i).dialed) {
        h_log(c, H_DATA, (int64_t)len);
        h_reg_note_input(c, in, len);
        return h_reg_get(i).in >= 10 ? EVIO_CLOSE : EVIO_NONE;
    }
    return h_data_echo(c, in, len);
}

START_TEST(test_addr_format_round_trip)
{
    kaddr ka;
    if (!kaddr_init(&ka, _i))
        return;
    h_reg_reset();
    evio_events ev = {.opened = rt_opened, .data = rt_data, .closed = h_reg_closed};
    const char *addrs[] = {ka.addr};
    h_server hs = {0};
    h_start(&hs, &ev, addrs, 1);
    evio_server *srv = h_srv(&hs);

    char want[200], got[200], got2[200];
    if (_i == K_TCP)
        snprintf(want, sizeof want, "tcp://127.0.0.1:%d", h_server_port(&hs, 0));
    else if (_i == K_TCP6)
        snprintf(want, sizeof want, "tcp://[::1]:%d", h_server_port(&hs, 0));
    else
        snprintf(want, sizeof want, "unix://%s", ka.path);
    socklen_t len;
    const struct sockaddr *sa = h_server_addr(&hs, 0, &len);
    int n = evio_addr_format(sa, len, got, sizeof got);
    ck_assert_msg(n == (int)strlen(want) && strcmp(got, want) == 0,
                  "[%s] evio_addr_format gave \"%s\" (%d), expected \"%s\"", kind_names[_i],
                  n >= 0 ? got : evio_strerror(n), n, want);
    n = evio_server_addr_format(srv, 0, got2, sizeof got2);
    ck_assert_msg(n == (int)strlen(want) && strcmp(got2, want) == 0,
                  "[%s] evio_server_addr_format gave \"%s\" (%d), expected \"%s\"",
                  kind_names[_i], n >= 0 ? got2 : evio_strerror(n), n, want);

    uint64_t id = 0;
    int rc = evio_dial(srv, got, 2000 * h_slow, NULL, &id);
    ck_assert_msg(rc == 0, "[%s] evio_dial(\"%s\"): %d (%s)", kind_names[_i], got, rc,
                  evio_strerror(rc));
    h_reg_wait_closed(2); /* the dialed end and the accepted end */
    int dialed = -1, accepted = -1;
    for (int i = 0; i < 2; i++)
        if (h_reg_get(i).dialed)
            dialed = i;
        else
            accepted = i;
    ck_assert_msg(dialed >= 0 && accepted >= 0, "[%s] expected one dialed and one accepted "
                  "connection", kind_names[_i]);
    h_conn d = h_reg_get(dialed), a = h_reg_get(accepted);
    ck_assert_msg(d.id == id && d.rc[0] == 0 && d.listener == -1,
                  "[%s] the dial to \"%s\": dial_error %d (%s), listener %d", kind_names[_i],
                  got, d.rc[0], evio_strerror(d.rc[0]), d.listener);
    ck_assert_msg(a.listener == 0, "[%s] the dial arrived on listener %d", kind_names[_i],
                  a.listener);
    ck_assert_msg(d.reqlen == 10 && memcmp(d.req, "round trip", 10) == 0,
                  "[%s] the echo through the formatted address came back as \"%.*s\"",
                  kind_names[_i], (int)d.reqlen, d.req);
    ck_assert_msg(d.err == 0 && a.err == 0, "[%s] closed(err = %d, %d)", kind_names[_i], d.err,
                  a.err);
    h_server_stop(&hs);
    h_log_check_sequences(true);
}
END_TEST

/* evio_server_naddrs counts the addresses; evio_server_addr is NULL and
 * evio_server_addr_format EVIO_EINVAL past the last one. */
START_TEST(test_server_addr_index_out_of_range)
{
    evio_events ev = {.opened = h_opened_log, .closed = h_closed_log};
    const char *addrs[] = {"tcp://127.0.0.1:0", "udp://127.0.0.1:0"};
    h_server hs = {0};
    h_start(&hs, &ev, addrs, 2);
    evio_server *srv = h_srv(&hs);
    char buf[128];
    ck_assert_uint_eq(evio_server_naddrs(srv), 2);
    static const size_t out[] = {2, 3, 1000, SIZE_MAX};
    for (size_t k = 0; k < sizeof out / sizeof out[0]; k++) {
        socklen_t len = 77;
        ck_assert_msg(evio_server_addr(srv, out[k], &len) == NULL,
                      "evio_server_addr(srv, %zu) of 2 addresses is not NULL", out[k]);
        ck_assert_msg(evio_server_addr(srv, out[k], NULL) == NULL,
                      "evio_server_addr(srv, %zu, NULL) is not NULL", out[k]);
        int rc = evio_server_addr_format(srv, out[k], buf, sizeof buf);
        ck_assert_msg(rc == EVIO_EINVAL, "evio_server_addr_format(srv, %zu) returned %d, "
                      "expected EVIO_EINVAL", out[k], rc);
    }
    socklen_t len = 0;
    ck_assert_ptr_nonnull(evio_server_addr(srv, 1, &len));
    ck_assert_uint_eq(len, sizeof(struct sockaddr_in));
    int n = evio_server_addr_format(srv, 1, buf, sizeof buf);
    ck_assert_msg(n > 0 && strncmp(buf, "udp://127.0.0.1:", 16) == 0,
                  "evio_server_addr_format of a UDP listener: \"%s\"", n > 0 ? buf : "");
    h_server_stop(&hs);
}
END_TEST

/* No scheme means tcp; tcp4/udp4 bind AF_INET and tcp6/udp6 AF_INET6; udp
 * listeners format as udp://; each answers on its own transport. */
START_TEST(test_schemes_bind_their_family)
{
    bool v6 = h_have_ipv6();
    if (!v6)
        printf("%s: this host cannot bind ::1; tcp6:// and udp6:// are not checked\n",
               tcase_name());
    h_reg_reset();
    evio_events ev = {.opened = h_reg_opened, .data = h_data_echo, .closed = h_reg_closed};
    const char *addrs[] = {"127.0.0.1:0", "tcp4://127.0.0.1:0", "udp4://127.0.0.1:0",
                           "tcp6://[::1]:0", "udp6://[::1]:0"};
    static const int family[] = {AF_INET, AF_INET, AF_INET, AF_INET6, AF_INET6};
    static const bool udp[] = {false, false, true, false, true};
    size_t n = v6 ? 5 : 3;
    h_server hs = {0};
    h_start(&hs, &ev, addrs, n);
    int fds[5];
    for (size_t i = 0; i < n; i++) {
        socklen_t len;
        const struct sockaddr *sa = h_server_addr(&hs, i, &len);
        ck_assert_msg(sa->sa_family == family[i], "\"%s\" bound family %d, expected %d",
                      addrs[i], sa->sa_family, family[i]);
        char buf[128], want[128];
        int port = h_server_port(&hs, i);
        snprintf(want, sizeof want, "%s://%s:%d", udp[i] ? "udp" : "tcp",
                 family[i] == AF_INET ? "127.0.0.1" : "[::1]", port);
        int r = evio_server_addr_format(h_srv(&hs), i, buf, sizeof buf);
        ck_assert_msg(r > 0 && strcmp(buf, want) == 0, "\"%s\" formats as \"%s\", expected "
                      "\"%s\"", addrs[i], r > 0 ? buf : "", want);
        char msg[64];
        snprintf(msg, sizeof msg, "via %s", addrs[i]);
        if (udp[i]) {
            fds[i] = h_udp_client(&hs, i);
            char back[64];
            h_send_all(fds[i], msg, strlen(msg));
            ssize_t got = recv(fds[i], back, sizeof back, 0);
            ck_assert_msg(got == (ssize_t)strlen(msg) && memcmp(back, msg, strlen(msg)) == 0,
                          "UDP echo %s: %zd bytes", addrs[i], got);
        } else {
            fds[i] = h_connect(&hs, i);
            h_echo_check(fds[i], msg);
        }
        h_reg_wait_opened((int)i + 1);
        ck_assert_int_eq(h_reg_get((int)i).listener, (int)i);
    }
    for (size_t i = 0; i < n; i++)
        close(fds[i]);
    h_server_stop(&hs);
    h_log_check_sequences(true);
}
END_TEST

/* ?mode= takes octal permissions up to 0777 and nothing else:
 * EVIO_EOPTION, and no socket file is left behind. */
START_TEST(test_unix_mode_option_out_of_range)
{
    static const char *const bad[] = {"1000", "0778", "8", "", "-1", "0x1ff", "07777", "rw"};
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        char path[108], addr[200];
        h_unix_path(path, sizeof path, "mode");
        snprintf(addr, sizeof addr, "unix://%s?mode=%s", path, bad[k]);
        const char *addrs[] = {addr};
        expect_serve_fails(addrs, 1, EVIO_EOPTION);
        ck_assert_msg(!h_path_exists(path), "\"%s\" left %s behind", addr, path);
    }
}
END_TEST

/* ================================================================ connections */

static struct {
    evio_server *_Atomic srv; /* from serving() */
    atomic_int bad;
    atomic_int opened, data, closed;
} gt;

static int gt_token[4];

static evio_action gt_serving(evio_server *srv)
{
    atomic_store(&gt.srv, srv);
    return EVIO_NONE;
}

static evio_action gt_opened(evio_conn *c, const evio_info *info)
{
    h_opened_log(c, info);
    H_EXPECT(evio_conn_context(c) == NULL, "the context of a new accepted connection is %p, "
             "expected NULL until set", evio_conn_context(c));
    H_EXPECT(evio_conn_server(c) == atomic_load(&gt.srv), "evio_conn_server in opened() is "
             "not the server serving() saw");
    H_EXPECT(evio_conn_loop(c) == 0, "evio_conn_loop = %d with one loop", evio_conn_loop(c));
    H_EXPECT(evio_conn_id(c) != 0, "id 0");
    evio_conn_set_context(c, &gt_token[info->listener]);
    atomic_fetch_add(&gt.opened, 1);
    return EVIO_NONE;
}

static void gt_check(evio_conn *c, const char *where)
{
    void *ctx = evio_conn_context(c);
    H_EXPECT(ctx == &gt_token[0] || ctx == &gt_token[1],
             "evio_conn_context in %s is %p, not what opened() set", where, ctx);
    H_EXPECT(evio_conn_server(c) == atomic_load(&gt.srv), "evio_conn_server in %s", where);
    H_EXPECT(evio_conn_loop(c) == 0, "evio_conn_loop in %s = %d", where, evio_conn_loop(c));
}

static evio_action gt_data(evio_conn *c, const void *in, size_t len)
{
    gt_check(c, "data()");
    atomic_fetch_add(&gt.data, 1);
    return h_data_echo(c, in, len);
}

static evio_action gt_closed(evio_conn *c, int err)
{
    gt_check(c, "closed()");
    atomic_fetch_add(&gt.closed, 1);
    return h_closed_log(c, err);
}

/* evio_conn_context is NULL until set and keeps what was set through
 * data() and closed(); evio_conn_server is the serving() server;
 * evio_conn_loop is 0 with one loop; ids are never 0 (TCP and unix). */
START_TEST(test_conn_getters_in_every_callback)
{
    memset(&gt, 0, sizeof gt);
    char path[108], uaddr[160];
    h_unix_path(path, sizeof path, "getters");
    snprintf(uaddr, sizeof uaddr, "unix://%s", path);
    evio_events ev = {.serving = gt_serving, .opened = gt_opened, .data = gt_data,
                      .closed = gt_closed};
    const char *addrs[] = {"tcp://127.0.0.1:0", uaddr};
    h_server hs = {0};
    h_start(&hs, &ev, addrs, 2);
    ck_assert_ptr_eq(atomic_load(&gt.srv), h_srv(&hs));
    for (int round = 0; round < 2; round++) {
        int a = h_connect(&hs, 0), b = h_connect(&hs, 1);
        h_echo_check(a, "context over tcp");
        h_echo_check(b, "context over unix");
        close(a);
        close(b);
    }
    H_WAIT(atomic_load(&gt.closed) == 4, 5000, "4 closed() (%d)", atomic_load(&gt.closed));
    ck_assert_int_eq(atomic_load(&gt.opened), 4);
    ck_assert_int_ge(atomic_load(&gt.data), 4);
    h_server_stop(&hs);
    ck_assert_uint_eq(h_log_check_sequences(true), 4);
}
END_TEST

/* EVIO_RANDOM spreads connections over the loops; evio_conn_loop is the
 * index of the loop (thread) a connection lives on, 0 .. nloops-1. */
static evio_action lp_opened(evio_conn *c, const evio_info *info)
{
    h_reg_open(c, info);
    h_reg_rc(c, 0, evio_conn_loop(c));
    return EVIO_NONE;
}

START_TEST(test_balance_random_spreads_over_loops)
{
    enum { NLOOPS = 4, CONNS = 32 };
    h_reg_reset();
    evio_events ev = {.opened = lp_opened, .data = h_data_echo, .closed = h_reg_closed,
                      .nloops = NLOOPS, .balance = EVIO_RANDOM};
    const char *addrs[] = {"tcp://127.0.0.1:0"};
    h_server hs = {0};
    h_start(&hs, &ev, addrs, 1);
    ck_assert_int_eq(evio_server_stats(h_srv(&hs), NULL, NULL, 0), NLOOPS);
    int fds[CONNS];
    for (int k = 0; k < CONNS; k++) {
        fds[k] = h_connect(&hs, 0);
        h_echo_check(fds[k], "random");
    }
    h_reg_wait_opened(CONNS);
    int slot_of_index[NLOOPS] = {-1, -1, -1, -1}, used = 0;
    for (int k = 0; k < CONNS; k++) {
        h_conn f = h_reg_get(k);
        int idx = f.rc[0];
        ck_assert_msg(idx >= 0 && idx < NLOOPS, "evio_conn_loop = %d with %d loops", idx, NLOOPS);
        if (slot_of_index[idx] < 0) {
            slot_of_index[idx] = f.loop;
            used++;
        }
        ck_assert_msg(slot_of_index[idx] == f.loop, "connections with evio_conn_loop %d run on "
                      "different threads", idx);
    }
    ck_assert_msg(used >= 2, "EVIO_RANDOM put all %d connections on one of %d loops", CONNS,
                  NLOOPS);
    for (int k = 0; k < CONNS; k++)
        close(fds[k]);
    h_reg_wait_closed(CONNS);
    h_server_stop(&hs);
    h_log_check_sequences(true);
}
END_TEST

/* In closed() pause, resume and set_idle_timeout say EVIO_ESHUTDOWN
 * (closed by the peer, and by EVIO_CLOSE). */
static evio_action es_closed(evio_conn *c, int err)
{
    h_reg_rc(c, 0, evio_conn_pause(c));
    h_reg_rc(c, 1, evio_conn_resume(c));
    h_reg_rc(c, 2, evio_conn_set_idle_timeout(c, 100));
    return h_reg_closed(c, err);
}

static evio_action es_data(evio_conn *c, const void *in, size_t len)
{
    if (in && len >= 4 && memcmp(in, "quit", 4) == 0)
        return EVIO_CLOSE;
    return h_data_echo(c, in, len);
}

START_TEST(test_conn_calls_in_closed_say_shutdown)
{
    h_reg_reset();
    evio_events ev = {.opened = h_reg_opened, .data = es_data, .closed = es_closed};
    const char *addrs[] = {"tcp://127.0.0.1:0"};
    h_server hs = {0};
    h_start(&hs, &ev, addrs, 1);
    int a = h_connect(&hs, 0);
    h_reg_wait_opened(1);
    close(a);
    h_reg_wait_closed(1);
    int b = h_connect(&hs, 0);
    h_reg_wait_opened(2);
    h_send_all(b, "quit", 4);
    h_reg_wait_closed(2);
    ck_assert_int_eq(h_drain(b), 0);
    close(b);
    static const char *const names[] = {"evio_conn_pause", "evio_conn_resume",
                                        "evio_conn_set_idle_timeout"};
    for (int i = 0; i < 2; i++)
        for (int k = 0; k < 3; k++)
            ck_assert_msg(h_reg_get(i).rc[k] == EVIO_ESHUTDOWN, "%s inside closed() (%s) "
                          "returned %d (%s), expected EVIO_ESHUTDOWN", names[k],
                          i == 0 ? "peer closed" : "EVIO_CLOSE", h_reg_get(i).rc[k],
                          evio_strerror(h_reg_get(i).rc[k]));
    h_server_stop(&hs);
    h_log_check_sequences(true);
}
END_TEST

/* evio_conn_pending: evio_write queues (the write is attempted after the
 * event returns), so pending grows by exactly what was written; what a
 * peer does not read stays pending; once it has read everything, 0. */
#define PD_BIG (8 * MIB)

static struct {
    uint8_t *big;
    atomic_int wakes;
    _Atomic long long pending_at_wake;
} pd;

static evio_action pd_data(evio_conn *c, const void *in, size_t len)
{
    if (!in) {
        h_log(c, H_WAKE, 0);
        atomic_store(&pd.pending_at_wake, (long long)evio_conn_pending(c));
        atomic_fetch_add(&pd.wakes, 1);
        return EVIO_NONE;
    }
    h_log(c, H_DATA, (int64_t)len);
    size_t before = evio_conn_pending(c);
    if (len == 3 && memcmp(in, "big", 3) == 0) {
        H_EXPECT(evio_write(c, pd.big, PD_BIG) == 0, "evio_write(8 MiB)");
        H_EXPECT(evio_conn_pending(c) == before + PD_BIG, "pending %zu after writing %d bytes "
                 "to a queue of %zu", evio_conn_pending(c), PD_BIG, before);
        return EVIO_NONE;
    }
    H_EXPECT(evio_write(c, in, len) == 0, "evio_write");
    size_t mid = evio_conn_pending(c);
    H_EXPECT(evio_write(c, in, len) == 0, "evio_write");
    size_t after = evio_conn_pending(c);
    H_EXPECT(mid == before + len && after == mid + len,
             "evio_conn_pending %zu, %zu, %zu around two writes of %zu bytes", before, mid,
             after, len);
    return EVIO_NONE;
}

static long long pd_wake(h_server *hs, uint64_t id)
{
    int n = atomic_load(&pd.wakes);
    int rc = evio_wake(h_srv(hs), id);
    ck_assert_msg(rc == 0, "evio_wake: %d (%s)", rc, evio_strerror(rc));
    H_WAIT(atomic_load(&pd.wakes) > n, 5000, "the wake");
    return atomic_load(&pd.pending_at_wake);
}

START_TEST(test_conn_pending_counts_queued_output)
{
    h_reg_reset();
    memset(&pd, 0, sizeof pd);
    pd.big = h_xmalloc(PD_BIG);
    h_fill(pd.big, PD_BIG, 5);
    evio_events ev = {.opened = h_reg_opened, .data = pd_data, .closed = h_reg_closed};
    const char *addrs[] = {"tcp://127.0.0.1:0"};
    h_server hs = {0};
    h_start(&hs, &ev, addrs, 1);
    int a = h_connect(&hs, 0);
    char back[16];
    h_send_all(a, "abc", 3);
    h_recv_exact(a, back, 6);
    ck_assert_msg(memcmp(back, "abcabc", 6) == 0, "two writes came back as \"%.6s\"", back);
    h_reg_wait_opened(1);
    ck_assert_int_eq(pd_wake(&hs, h_reg_get(0).id), 0);

    int q = h_client(&hs, 0, 16 * KIB);
    h_reg_wait_opened(2);
    uint64_t qid = h_reg_get(1).id;
    h_send_all(q, "big", 3);
    H_WAIT(h_log_count_id(qid, H_DATA) == 1, 5000, "data() for \"big\"");
    long long p = pd_wake(&hs, qid);
    ck_assert_msg(p > 0 && p <= PD_BIG, "evio_conn_pending is %lld with %d MiB written to a "
                  "peer that does not read", p, PD_BIG / MIB);
    uint8_t *got = h_xmalloc(PD_BIG);
    h_recv_exact(q, got, PD_BIG);
    size_t bad = h_mismatch(got, PD_BIG, 5);
    ck_assert_msg(bad == (size_t)-1, "the 8 MiB reply differs at byte %zu", bad);
    free(got);
    p = pd_wake(&hs, qid);
    ck_assert_msg(p == 0, "evio_conn_pending is %lld after the peer read everything", p);
    close(a);
    close(q);
    h_reg_wait_closed(2);
    h_server_stop(&hs);
    h_log_check_sequences(true);
    free(pd.big);
}
END_TEST

/* evio_write to another open connection of the loop (a proxy): the bytes
 * reach that connection's peer, whole and in order, and only it. */
#define XW_BIG (1 * MIB)

static evio_conn *xw_conn[H_REG_MAX]; /* loop thread only (one loop) */
static uint8_t *xw_big;

static evio_action xw_opened(evio_conn *c, const evio_info *info)
{
    int i = h_reg_open(c, info);
    if (i >= 0)
        xw_conn[i] = c;
    return EVIO_NONE;
}

static evio_action xw_data(evio_conn *c, const void *in, size_t len)
{
    if (!in)
        return EVIO_NONE;
    h_log(c, H_DATA, (int64_t)len);
    int me = h_reg_index(c), other = 1 - me;
    H_EXPECT(me == 0 || me == 1, "a third connection");
    if (me != 0 && me != 1)
        return EVIO_CLOSE;
    evio_conn *to = xw_conn[other];
    int rc;
    if (len == 3 && memcmp(in, "big", 3) == 0)
        rc = evio_write(to, xw_big, XW_BIG);
    else
        rc = evio_write(to, in, len);
    H_EXPECT(rc == 0, "evio_write to the other connection: %d (%s)", rc, evio_strerror(rc));
    return EVIO_NONE;
}

static evio_action xw_closed(evio_conn *c, int err)
{
    int i = h_reg_index(c);
    if (i >= 0 && i < H_REG_MAX)
        xw_conn[i] = NULL;
    return h_reg_closed(c, err);
}

START_TEST(test_write_to_another_connection_of_the_loop)
{
    h_reg_reset();
    memset(xw_conn, 0, sizeof xw_conn);
    xw_big = h_xmalloc(XW_BIG);
    h_fill(xw_big, XW_BIG, 9);
    evio_events ev = {.opened = xw_opened, .data = xw_data, .closed = xw_closed};
    const char *addrs[] = {"tcp://127.0.0.1:0"};
    h_server hs = {0};
    h_start(&hs, &ev, addrs, 1);
    int a = h_connect(&hs, 0);
    h_reg_wait_opened(1);
    int b = h_connect(&hs, 0);
    h_reg_wait_opened(2);
    char buf[32];
    h_send_all(a, "to b", 4);
    h_recv_exact(b, buf, 4);
    ck_assert_msg(memcmp(buf, "to b", 4) == 0, "b got \"%.4s\"", buf);
    h_send_all(b, "big", 3);
    uint8_t *got = h_xmalloc(XW_BIG);
    h_recv_exact(a, got, XW_BIG);
    size_t bad = h_mismatch(got, XW_BIG, 9);
    ck_assert_msg(bad == (size_t)-1, "a's 1 MiB from b's event differs at byte %zu", bad);
    free(got);
    h_send_all(a, "and back", 8);
    h_recv_exact(b, buf, 8);
    ck_assert_msg(memcmp(buf, "and back", 8) == 0, "b got \"%.8s\"", buf);
    /* Nothing went to the connection whose event ran. */
    ssize_t n = recv(a, buf, sizeof buf, MSG_DONTWAIT);
    ck_assert_msg(n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK), "a got %zd stray bytes", n);
    close(a);
    close(b);
    h_reg_wait_closed(2);
    h_server_stop(&hs);
    h_log_check_sequences(true);
    free(xw_big);
}
END_TEST

/* EVIO_DETACH without a detached callback closes like EVIO_CLOSE: pending
 * output first, then EOF, and closed(c, 0). */
static evio_action dn_data(evio_conn *c, const void *in, size_t len)
{
    if (in && len == 6 && memcmp(in, "detach", 6) == 0) {
        h_log(c, H_DATA, (int64_t)len);
        evio_write(c, "last words", 10);
        return EVIO_DETACH;
    }
    return h_data_echo(c, in, len);
}

START_TEST(test_detach_without_callback_closes)
{
    h_reg_reset();
    char path[108], uaddr[160];
    h_unix_path(path, sizeof path, "detach");
    snprintf(uaddr, sizeof uaddr, "unix://%s", path);
    evio_events ev = {.opened = h_reg_opened, .data = dn_data, .closed = h_reg_closed};
    const char *addrs[] = {"tcp://127.0.0.1:0", uaddr};
    h_server hs = {0};
    h_start(&hs, &ev, addrs, 2);
    for (int l = 0; l < 2; l++) {
        int fd = h_connect(&hs, (size_t)l);
        h_echo_check(fd, "before");
        h_send_all(fd, "detach", 6);
        char got[32];
        size_t n = h_recv_until_eof(fd, got, sizeof got);
        ck_assert_msg(n == 10 && memcmp(got, "last words", 10) == 0,
                      "listener %d: %zu bytes \"%.*s\" before EOF, expected \"last words\"", l,
                      n, (int)n, got);
        h_reg_wait_closed(l + 1);
        h_conn f = h_reg_get(l);
        ck_assert_msg(f.nclosed == 1 && f.err == 0, "listener %d: closed %d times, err %d", l,
                      f.nclosed, f.err);
        close(fd);
    }
    ck_assert_uint_eq(h_log_count(H_DETACHED), 0);
    ck_assert_uint_eq(h_stats(&hs).closed, 2);
    h_server_stop(&hs);
    h_log_check_sequences(true);
}
END_TEST

/* The return value of closed() and detached() is ignored unless it is
 * EVIO_SHUTDOWN: returning EVIO_CLOSE, EVIO_DETACH or EVIO_DRAIN keeps the
 * server accepting; EVIO_SHUTDOWN from closed() ends it. */
static atomic_int rv_closed_ret, rv_detached_ret;

static evio_action rv_data(evio_conn *c, const void *in, size_t len)
{
    if (in && len == 6 && memcmp(in, "detach", 6) == 0) {
        h_log(c, H_DATA, (int64_t)len);
        return EVIO_DETACH;
    }
    return h_data_echo(c, in, len);
}

static evio_action rv_closed(evio_conn *c, int err)
{
    h_reg_closed(c, err);
    return (evio_action)atomic_load(&rv_closed_ret);
}

static evio_action rv_detached(evio_conn *c, int fd)
{
    h_reg_detached(c, fd);
    return (evio_action)atomic_load(&rv_detached_ret);
}

/* After an event whose action must be ignored: the loop has run on (a
 * round trip on the probe), and a new client is still accepted. */
static void rv_still_serving(h_server *hs, int probe, const char *after)
{
    char msg[96];
    for (int k = 0; k < 2; k++) {
        snprintf(msg, sizeof msg, "probe %d after %s", k, after);
        h_echo_check(probe, msg);
    }
    ck_assert_msg(!atomic_load(&hs->returned), "evio_serve returned after %s", after);
    socklen_t len;
    const struct sockaddr *sa = h_server_addr(hs, 0, &len);
    int fd = h_socket_for(sa);
    int rc = h_try_connect(fd, sa, len);
    ck_assert_msg(rc == 0, "after %s a new client could not connect: %s (the listener was "
                  "closed: the action was not ignored)", after, strerror(-rc));
    snprintf(msg, sizeof msg, "new client after %s", after);
    int before = atomic_load(&h_reg.closed);
    h_echo_check(fd, msg);
    close(fd);
    H_WAIT(atomic_load(&h_reg.closed) > before, 5000, "the new client's closed() after %s",
           after);
}

START_TEST(test_closed_and_detached_return_values)
{
    h_reg_reset();
    evio_events ev = {.opened = h_reg_opened, .data = rv_data, .closed = rv_closed,
                      .detached = rv_detached};
    const char *addrs[] = {"tcp://127.0.0.1:0"};
    h_server hs = {0};
    h_start(&hs, &ev, addrs, 1);
    int probe = h_connect(&hs, 0);
    h_echo_check(probe, "probe");
    static const struct {
        evio_action ret;
        bool detach;
        const char *what;
    } steps[] = {
        {EVIO_CLOSE, false, "closed() returned EVIO_CLOSE"},
        {EVIO_DETACH, false, "closed() returned EVIO_DETACH"},
        {EVIO_DRAIN, false, "closed() returned EVIO_DRAIN"},
        {EVIO_CLOSE, true, "detached() returned EVIO_CLOSE"},
        {EVIO_DRAIN, true, "detached() returned EVIO_DRAIN"},
    };
    for (size_t k = 0; k < sizeof steps / sizeof steps[0]; k++) {
        atomic_store(steps[k].detach ? &rv_detached_ret : &rv_closed_ret, (int)steps[k].ret);
        int before = atomic_load(&h_reg.closed);
        int fd = h_connect(&hs, 0);
        h_echo_check(fd, "victim");
        if (steps[k].detach) {
            h_send_all(fd, "detach", 6);
            ck_assert_int_eq(h_drain(fd), 0); /* detached() closed the fd */
        }
        close(fd);
        H_WAIT(atomic_load(&h_reg.closed) > before, 5000, "the event before: %s",
               steps[k].what);
        atomic_store(&rv_closed_ret, EVIO_NONE);
        atomic_store(&rv_detached_ret, EVIO_NONE);
        rv_still_serving(&hs, probe, steps[k].what);
    }
    /* EVIO_SHUTDOWN is not ignored. */
    atomic_store(&rv_closed_ret, EVIO_SHUTDOWN);
    close(probe);
    H_WAIT(atomic_load(&hs.returned), 5000, "evio_serve to return after closed() returned "
           "EVIO_SHUTDOWN");
    h_server_join(&hs);
    atomic_store(&rv_closed_ret, EVIO_NONE);
    h_log_check_sequences(true);
}
END_TEST

/* opened() may write and return EVIO_CLOSE: the client gets the bytes,
 * then EOF; closed(c, 0) fires; data() never does.  TCP and unix. */
static evio_action oc_opened(evio_conn *c, const evio_info *info)
{
    h_reg_open(c, info);
    int rc = evio_write(c, "bye from opened\n", 16);
    H_EXPECT(rc == 0, "evio_write in opened(): %d", rc);
    return EVIO_CLOSE;
}

START_TEST(test_close_action_from_opened_flushes)
{
    h_reg_reset();
    char path[108], uaddr[160];
    h_unix_path(path, sizeof path, "oclose");
    snprintf(uaddr, sizeof uaddr, "unix://%s", path);
    evio_events ev = {.opened = oc_opened, .data = h_data_echo, .closed = h_reg_closed};
    const char *addrs[] = {"tcp://127.0.0.1:0", uaddr};
    h_server hs = {0};
    h_start(&hs, &ev, addrs, 2);
    for (int l = 0; l < 2; l++) {
        int fd = h_connect(&hs, (size_t)l);
        char got[64];
        size_t n = h_recv_until_eof(fd, got, sizeof got);
        ck_assert_msg(n == 16 && memcmp(got, "bye from opened\n", 16) == 0,
                      "listener %d: %zu bytes before EOF", l, n);
        close(fd);
        h_reg_wait_closed(l + 1);
        ck_assert_msg(h_reg_get(l).err == 0, "closed(err = %d)", h_reg_get(l).err);
    }
    ck_assert_uint_eq(h_log_count(H_DATA), 0);
    h_server_stop(&hs);
    h_log_check_sequences(true);
}
END_TEST

/* EVIO_DRAIN from tick(): the listener closes, the open client is served
 * to the end, and evio_serve returns 0 once it leaves. */
static atomic_bool dt_arm;
static atomic_int dt_drains;

static evio_action dt_tick(evio_server *srv, int64_t *delay)
{
    (void)srv;
    *delay = 5 * MS;
    if (atomic_exchange(&dt_arm, false)) {
        atomic_fetch_add(&dt_drains, 1);
        return EVIO_DRAIN;
    }
    return EVIO_NONE;
}

START_TEST(test_drain_action_from_tick)
{
    h_reg_reset();
    atomic_store(&dt_arm, false);
    atomic_store(&dt_drains, 0);
    evio_events ev = {.opened = h_reg_opened, .data = h_data_echo, .closed = h_reg_closed,
                      .tick = dt_tick};
    const char *addrs[] = {"tcp://127.0.0.1:0"};
    h_server hs = {0};
    h_start(&hs, &ev, addrs, 1);
    struct sockaddr_storage sa;
    socklen_t salen = h_copy_addr(&hs, 0, &sa);
    int a = h_connect(&hs, 0);
    h_echo_check(a, "before the drain");
    atomic_store(&dt_arm, true);
    H_WAIT(atomic_load(&dt_drains) == 1, 2000, "tick() to return EVIO_DRAIN");
    h_wait_refused((struct sockaddr *)&sa, salen, 2000, "EVIO_DRAIN from tick()");
    h_echo_check(a, "during the drain");
    ck_assert_msg(!atomic_load(&hs.returned), "evio_serve returned with a client open");
    close(a);
    H_WAIT(atomic_load(&hs.returned), 3000, "evio_serve to return once the client left");
    h_server_join(&hs);
    ck_assert_msg(h_reg_get(0).err == 0, "closed(err = %d)", h_reg_get(0).err);
    h_log_check_sequences(true);
}
END_TEST

/* ================================================================ UDP */

/* udp_idle_ms: _i 0: 150 closes a silent session with -ETIMEDOUT, not
 * before; 1: negative never closes it. */
START_TEST(test_udp_idle_ms)
{
    const int T = 150 * h_slow;
    h_reg_reset();
    evio_events ev = {.opened = h_reg_opened, .data = h_data_echo, .closed = h_reg_closed,
                      .udp_idle_ms = _i == 0 ? T : -1};
    const char *addrs[] = {"udp://127.0.0.1:0"};
    h_server hs = {0};
    h_start(&hs, &ev, addrs, 1);
    int u = h_udp_client(&hs, 0);
    char b[8];
    h_send_all(u, "ping", 4);
    ck_assert_msg(recv(u, b, sizeof b, 0) == 4, "udp echo: %s", strerror(errno));
    int64_t last = h_now_ns();
    h_reg_wait_opened(1);
    if (_i == 0) {
        H_WAIT(h_reg_get(0).nclosed == 1, T + 2000, "the silent session to close after %d ms",
               T);
        h_conn f = h_reg_get(0);
        ck_assert_msg(f.err == -ETIMEDOUT, "closed(err = %d, %s), expected -ETIMEDOUT", f.err,
                      evio_strerror(f.err));
        ck_assert_msg(f.closed_ns - last >= (int64_t)(T - EARLY_MS) * MS,
                      "closed %.1f ms after its last datagram, before udp_idle_ms = %d",
                      (double)(f.closed_ns - last) / MS, T);
        ck_assert_msg(h_stats(&hs).timeouts >= 1, "stats.timeouts did not count the idle UDP session");
    } else {
        h_sleep_ms(4 * T);
        ck_assert_msg(h_reg_get(0).nclosed == 0, "udp_idle_ms < 0 closed a session (err %d)",
                      h_reg_get(0).err);
        h_send_all(u, "pong", 4);
        ck_assert_msg(recv(u, b, sizeof b, 0) == 4 && memcmp(b, "pong", 4) == 0,
                      "udp echo after %d ms of silence", 4 * T);
        ck_assert_int_eq(atomic_load(&h_reg.opened), 1);
    }
    close(u);
    h_server_stop(&hs);
    h_log_check_sequences(true);
}
END_TEST

/* evio_wake on a UDP session's id says EVIO_EUDP (and fires nothing); once
 * the session is gone, EVIO_ENOTFOUND. */
START_TEST(test_wake_udp_session_says_eudp)
{
    h_reg_reset();
    evio_events ev = {.opened = h_reg_opened, .data = h_data_echo, .closed = h_reg_closed};
    const char *addrs[] = {"udp://127.0.0.1:0"};
    h_server hs = {0};
    h_start(&hs, &ev, addrs, 1);
    int u = h_udp_client(&hs, 0);
    char b[8];
    h_send_all(u, "hi", 2);
    ck_assert_msg(recv(u, b, sizeof b, 0) == 2, "udp echo: %s", strerror(errno));
    h_reg_wait_opened(1);
    uint64_t id = h_reg_get(0).id;
    int rc = evio_wake(h_srv(&hs), id);
    ck_assert_msg(rc == EVIO_EUDP, "evio_wake on a UDP session: %d (%s), expected EVIO_EUDP",
                  rc, evio_strerror(rc));
    /* The session still works, and no wake was delivered. */
    h_send_all(u, "again", 5);
    ck_assert_msg(recv(u, b, sizeof b, 0) == 5, "udp echo after the wake: %s", strerror(errno));
    ck_assert_uint_eq(h_log_count(H_WAKE), 0);
    ck_assert_int_eq(evio_close(h_srv(&hs), id), 0);
    H_WAIT(h_reg_get(0).nclosed == 1, 5000, "the session to close");
    rc = evio_wake(h_srv(&hs), id);
    ck_assert_msg(rc == EVIO_ENOTFOUND, "evio_wake on a closed UDP session: %d (%s)", rc,
                  evio_strerror(rc));
    close(u);
    h_server_stop(&hs);
    h_log_check_sequences(true);
}
END_TEST

/* Every evio_write on a UDP session is one datagram, in order; opened()
 * fires once per peer address, not per datagram. */
static evio_action ud_data(evio_conn *c, const void *in, size_t len)
{
    if (!in)
        return EVIO_NONE;
    h_log(c, H_DATA, (int64_t)len);
    H_EXPECT(evio_write(c, "one", 3) == 0, "write one");
    H_EXPECT(evio_write(c, "two!", 4) == 0, "write two");
    H_EXPECT(evio_write(c, in, len) == 0, "write echo");
    return EVIO_NONE;
}

START_TEST(test_udp_one_datagram_per_write)
{
    h_reg_reset();
    evio_events ev = {.opened = h_reg_opened, .data = ud_data, .closed = h_reg_closed};
    const char *addrs[] = {"udp://127.0.0.1:0"};
    h_server hs = {0};
    h_start(&hs, &ev, addrs, 1);
    int u[2] = {h_udp_client(&hs, 0), h_udp_client(&hs, 0)};
    for (int round = 0; round < 2; round++) {
        for (int p = 0; p < 2; p++) {
            char msg[32], b[64];
            int ml = snprintf(msg, sizeof msg, "peer %d round %d", p, round);
            h_send_all(u[p], msg, (size_t)ml);
            static const char *const want[] = {"one", "two!"};
            for (int k = 0; k < 3; k++) {
                const char *w = k < 2 ? want[k] : msg;
                ssize_t n = recv(u[p], b, sizeof b, 0);
                ck_assert_msg(n == (ssize_t)strlen(w) && memcmp(b, w, strlen(w)) == 0,
                              "peer %d datagram %d: %zd bytes \"%.*s\", expected \"%s\"", p, k,
                              n, n > 0 ? (int)n : 0, b, w);
            }
        }
    }
    ck_assert_int_eq(atomic_load(&h_reg.opened), 2);
    ck_assert_msg(h_reg_get(0).id != h_reg_get(1).id, "two peers share a session id");
    ck_assert_uint_eq(h_log_count(H_DATA), 4);
    close(u[0]);
    close(u[1]);
    h_server_stop(&hs);
    h_log_check_sequences(true);
}
END_TEST

/* UDP sessions never see translate, prewrite, postwrite or eof; a TCP
 * connection of the same server does (so the counters can tell). */
static atomic_int sk_translate, sk_pre, sk_post, sk_eof;

static const evio_translator *sk_translate_fn(evio_conn *c, const evio_info *info)
{
    (void)c, (void)info;
    atomic_fetch_add(&sk_translate, 1);
    return NULL;
}

static evio_action sk_prewrite(evio_conn *c, size_t amount)
{
    (void)c, (void)amount;
    atomic_fetch_add(&sk_pre, 1);
    return EVIO_NONE;
}

static evio_action sk_postwrite(evio_conn *c, size_t written, size_t remaining)
{
    (void)c, (void)written, (void)remaining;
    atomic_fetch_add(&sk_post, 1);
    return EVIO_NONE;
}

static evio_action sk_eof_fn(evio_conn *c)
{
    (void)c;
    atomic_fetch_add(&sk_eof, 1);
    return EVIO_CLOSE;
}

static evio_action sk_data(evio_conn *c, const void *in, size_t len)
{
    if (in && len == 0) { /* an empty datagram */
        h_log(c, H_DATA, 0);
        H_EXPECT(evio_write(c, in, 0) == 0, "evio_write of an empty datagram");
        return EVIO_NONE;
    }
    return h_data_echo(c, in, len);
}

START_TEST(test_udp_skips_translate_and_write_events)
{
    h_reg_reset();
    atomic_store(&sk_translate, 0);
    atomic_store(&sk_pre, 0);
    atomic_store(&sk_post, 0);
    atomic_store(&sk_eof, 0);
    evio_events ev = {.opened = h_reg_opened, .data = sk_data, .closed = h_reg_closed,
                      .translate = sk_translate_fn, .prewrite = sk_prewrite,
                      .postwrite = sk_postwrite, .eof = sk_eof_fn};
    const char *addrs[] = {"udp://127.0.0.1:0", "tcp://127.0.0.1:0"};
    h_server hs = {0};
    h_start(&hs, &ev, addrs, 2);
    int u = h_udp_client(&hs, 0);
    for (int k = 0; k < 3; k++) {
        char b[16];
        h_send_all(u, "datagram", 8);
        ck_assert_msg(recv(u, b, sizeof b, 0) == 8, "udp echo %d: %s", k, strerror(errno));
    }
    /* An empty datagram is one (empty) data event, not an end-of-file. */
    ck_assert_int_eq(send(u, "", 0, 0), 0);
    char b[16];
    ssize_t n = recv(u, b, sizeof b, 0);
    ck_assert_msg(n == 0, "the empty datagram came back as %zd bytes (%s)", n,
                  n < 0 ? strerror(errno) : "data");
    h_send_all(u, "last", 4);
    ck_assert_msg(recv(u, b, sizeof b, 0) == 4, "udp echo after an empty datagram");
    ck_assert_int_eq(atomic_load(&h_reg.opened), 1);
    ck_assert_msg(atomic_load(&sk_translate) == 0 && atomic_load(&sk_pre) == 0 &&
                      atomic_load(&sk_post) == 0 && atomic_load(&sk_eof) == 0,
                  "a UDP session saw translate %d, prewrite %d, postwrite %d, eof %d times",
                  atomic_load(&sk_translate), atomic_load(&sk_pre), atomic_load(&sk_post),
                  atomic_load(&sk_eof));
    int t = h_connect(&hs, 1);
    h_echo_check(t, "tcp");
    ck_assert_int_eq(shutdown(t, SHUT_WR), 0);
    ck_assert_int_eq(h_drain(t), 0);
    h_reg_wait_closed(1);
    ck_assert_msg(atomic_load(&sk_translate) == 1 && atomic_load(&sk_pre) >= 1 &&
                      atomic_load(&sk_post) >= 1 && atomic_load(&sk_eof) == 1,
                  "a TCP connection saw translate %d, prewrite %d, postwrite %d, eof %d times",
                  atomic_load(&sk_translate), atomic_load(&sk_pre), atomic_load(&sk_post),
                  atomic_load(&sk_eof));
    close(t);
    close(u);
    h_server_stop(&hs);
    h_log_check_sequences(true);
}
END_TEST

/* ================================================================ dial */

/* A wake for a dialed id before it has opened (its name is still being
 * resolved) returns 0 and is delivered right after opened(). */
static int late_resolve(void *udata, const char *host, int family, struct sockaddr_storage *out,
                        socklen_t *outlen)
{
    (void)udata;
    if (strcmp(host, "later.test") != 0 || family == AF_INET6)
        return EVIO_ENONAME;
    h_sleep_ms(200);
    struct sockaddr_in sin = {.sin_family = AF_INET};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    memcpy(out, &sin, sizeof sin);
    *outlen = sizeof sin;
    return 0;
}

static evio_action wb_data(evio_conn *c, const void *in, size_t len)
{
    int i = h_reg_index(c);
    if (!in && i >= 0 && h_reg_get(i).dialed) {
        h_log(c, H_WAKE, 0);
        evio_write(c, "woken", 5); /* the accepted side echoes it */
        return EVIO_NONE;
    }
    if (in && i >= 0 && h_reg_get(i).dialed) {
        h_log(c, H_DATA, (int64_t)len);
        h_reg_note_input(c, in, len);
        return h_reg_get(i).in >= 5 ? EVIO_CLOSE : EVIO_NONE;
    }
    return h_data_echo(c, in, len);
}

static evio_action wb_opened(evio_conn *c, const evio_info *info)
{
    h_reg_open(c, info);
    h_reg_rc(c, 0, info->dial_error);
    return EVIO_NONE;
}

START_TEST(test_dial_wake_before_opened)
{
    h_reg_reset();
    evio_events ev = {.opened = wb_opened, .data = wb_data, .closed = h_reg_closed,
                      .resolve = late_resolve};
    const char *addrs[] = {"tcp://127.0.0.1:0"};
    h_server hs = {0};
    h_start(&hs, &ev, addrs, 1);
    char target[64];
    snprintf(target, sizeof target, "tcp://later.test:%d", h_server_port(&hs, 0));
    uint64_t id = 0;
    int rc = evio_dial(h_srv(&hs), target, 5000 * h_slow, NULL, &id);
    ck_assert_msg(rc == 0, "evio_dial: %d (%s)", rc, evio_strerror(rc));
    rc = evio_wake(h_srv(&hs), id);
    ck_assert_msg(rc == 0, "evio_wake for a dialed id before opened(): %d (%s)", rc,
                  evio_strerror(rc));
    ck_assert_msg(h_log_count_id(id, H_OPENED) == 0, "the dial opened before its name resolved");
    h_reg_wait_closed(2);
    ck_assert_msg(h_log_count_id(id, H_WAKE) == 1, "the early wake fired data(NULL, 0) %zu "
                  "times, expected once after opened()", h_log_count_id(id, H_WAKE));
    int d = h_reg_get(0).dialed ? 0 : 1;
    h_conn f = h_reg_get(d);
    ck_assert_msg(f.id == id && f.rc[0] == 0, "dialed: id %llu, dial_error %d",
                  (unsigned long long)f.id, f.rc[0]);
    ck_assert_msg(f.reqlen == 5 && memcmp(f.req, "woken", 5) == 0,
                  "what the wake wrote came back as \"%.*s\"", (int)f.reqlen, f.req);
    h_server_stop(&hs);
    h_log_check_sequences(true);
}
END_TEST

/* Called on a loop thread, evio_dial's connection joins that loop (two
 * loops, a dial from a connection on each). */
static pthread_mutex_t dj_mu = PTHREAD_MUTEX_INITIALIZER;
static struct {
    uint64_t id;
    int loop;
} dj_dials[8];
static int dj_n;
static char dj_target[64];

static evio_action dj_opened(evio_conn *c, const evio_info *info)
{
    h_reg_open(c, info);
    h_reg_rc(c, 0, evio_conn_loop(c));
    h_reg_rc(c, 1, info->dial_error);
    return info->dialed ? EVIO_CLOSE : EVIO_NONE;
}

static evio_action dj_data(evio_conn *c, const void *in, size_t len)
{
    if (in && len == 4 && memcmp(in, "dial", 4) == 0) {
        h_log(c, H_DATA, (int64_t)len);
        uint64_t id = 0;
        int rc = evio_dial(evio_conn_server(c), dj_target, 2000 * h_slow, NULL, &id);
        H_EXPECT(rc == 0, "evio_dial on a loop: %d (%s)", rc, evio_strerror(rc));
        pthread_mutex_lock(&dj_mu);
        if (dj_n < 8)
{
            dj_dials[dj_n].id = id;
            dj_dials[dj_n++].loop = evio_conn_loop(c);
        }
        pthread_mutex_unlock(&dj_mu);
        evio_write(c, "ok", 2);
        return EVIO_NONE;
    }
    return h_data_echo(c, in, len);
}

START_TEST(test_dial_from_loop_joins_that_loop)
{
    h_reg_reset();
    dj_n = 0;
    evio_events ev = {.opened = dj_opened, .data = dj_data, .closed = h_reg_closed,
                      .nloops = 2};
    const char *addrs[] = {"tcp://127.0.0.1:0"};
    h_server hs = {0};
    h_start(&hs, &ev, addrs, 1);
    snprintf(dj_target, sizeof dj_target, "tcp://127.0.0.1:%d", h_server_port(&hs, 0));
    int fds[2];
    for (int k = 0; k < 2; k++) { /* round robin: one client per loop */
        fds[k] = h_connect(&hs, 0);
        h_reg_wait_opened(k + 1);
    }
    ck_assert_msg(h_reg_get(0).rc[0] != h_reg_get(1).rc[0], "both clients on loop %d",
                  h_reg_get(0).rc[0]);
    for (int k = 0; k < 2; k++) {
        char ok[2];
        h_send_all(fds[k], "dial", 4);
        h_recv_exact(fds[k], ok, 2);
    }
    /* Each dial: its dialed end (closes in opened) and the accepted end. */
    h_reg_wait_closed(4);
    pthread_mutex_lock(&dj_mu);
    int n = dj_n;
    pthread_mutex_unlock(&dj_mu);
    ck_assert_int_eq(n, 2);
    for (int k = 0; k < n; k++) {
        int found = -1;
        for (int i = 0; i < atomic_load(&h_reg.opened); i++)
            if (h_reg_get(i).id == dj_dials[k].id)
                found = i;
        ck_assert_msg(found >= 0, "dial %d never opened", k);
        h_conn f = h_reg_get(found);
        ck_assert_msg(f.dialed && f.rc[1] == 0, "dial %d: dial_error %d", k, f.rc[1]);
        ck_assert_msg(f.rc[0] == dj_dials[k].loop, "a dial made on loop %d opened on loop %d",
                      dj_dials[k].loop, f.rc[0]);
    }
    close(fds[0]);
    close(fds[1]);
    h_reg_wait_closed(6);
    h_server_stop(&hs);
    h_log_check_sequences(true);
}
END_TEST

/* ================================================================ send and close */

/* Bytes evio_send queues after evio_close are dropped: the peer gets what
 * came before the close, then EOF (ten connections). */
START_TEST(test_send_after_close_is_dropped)
{
    h_reg_reset();
    evio_events ev = {.opened = h_reg_opened, .data = h_data_echo, .closed = h_reg_closed};
    const char *addrs[] = {"tcp://127.0.0.1:0"};
    h_server hs = {0};
    h_start(&hs, &ev, addrs, 1);
    evio_server *srv = h_srv(&hs);
    for (int k = 0; k < 10; k++) {
        int fd = h_connect(&hs, 0);
        h_reg_wait_opened(k + 1);
        uint64_t id = h_reg_get(k).id;
        ck_assert_int_eq(evio_send(srv, id, "before close", 12), 0);
        ck_assert_int_eq(evio_close(srv, id), 0);
        int rc = evio_send(srv, id, "AFTER", 5);
        ck_assert_msg(rc == 0 || rc == EVIO_ENOTFOUND, "evio_send after evio_close: %d (%s)",
                      rc, evio_strerror(rc));
        char got[64];
        size_t n = h_recv_until_eof(fd, got, sizeof got);
        ck_assert_msg(n == 12 && memcmp(got, "before close", 12) == 0,
                      "connection %d got %zu bytes \"%.*s\" before EOF, expected \"before "
                      "close\"", k, n, (int)n, got);
        close(fd);
        h_reg_wait_closed(k + 1);
        ck_assert_int_eq(h_reg_get(k).err, 0);
        ck_assert_int_eq(evio_send(srv, id, "x", 1), EVIO_ENOTFOUND);
    }
    h_server_stop(&hs);
    h_log_check_sequences(true);
}
END_TEST

/* evio_server_shutdown from a signal handler (on a loop thread): every
 * connection is closed, evio_serve returns 0. */
static evio_server *_Atomic sd_srv;
static atomic_int sd_rc = 1;

static void sd_handler(int signo)
{
    (void)signo;
    atomic_store(&sd_rc, evio_server_shutdown(atomic_load(&sd_srv)));
}

START_TEST(test_shutdown_from_signal_handler)
{
    h_reg_reset();
    evio_events ev = {.opened = h_reg_opened, .data = h_data_echo, .closed = h_reg_closed,
                      .nloops = 2};
    const char *addrs[] = {"tcp://127.0.0.1:0"};
    h_server hs = {0};
    h_start(&hs, &ev, addrs, 1);
    atomic_store(&sd_srv, h_srv(&hs));
    atomic_store(&sd_rc, 1);
    struct sigaction act, old;
    memset(&act, 0, sizeof act);
    act.sa_handler = sd_handler;
    sigemptyset(&act.sa_mask);
    ck_assert(sigaction(SIGUSR2, &act, &old) == 0);
    int a = h_connect(&hs, 0), b = h_connect(&hs, 0);
    h_echo_check(a, "a");
    h_echo_check(b, "b");
    h_reg_wait_opened(2);
    ck_assert_int_eq(pthread_kill(hs.thread, SIGUSR2), 0);
    H_WAIT(atomic_load(&sd_rc) != 1, 2000, "the signal handler to run");
    ck_assert_msg(atomic_load(&sd_rc) == 0, "evio_server_shutdown in a signal handler: %d",
                  atomic_load(&sd_rc));
    ck_assert_int_eq(h_drain(a), 0);
    ck_assert_int_eq(h_drain(b), 0);
    H_WAIT(atomic_load(&hs.returned), 3000, "evio_serve to return");
    h_server_join(&hs);
    ck_assert(sigaction(SIGUSR2, &old, NULL) == 0);
    ck_assert_int_eq(atomic_load(&h_reg.closed), 2);
    close(a);
    close(b);
    h_log_check_sequences(true);
}
END_TEST

/* ================================================================ options */

/* Zero means the default, never "at once": nloops 0 runs one loop on the
 * caller's thread; idle_timeout_ms 0 never closes; udp_idle_ms 0,
 * write_timeout_ms 0 and drain_timeout_ms 0 are long (60 s, 60 s, 30 s),
 * so nothing is cut within a second. */
static atomic_bool zo_off_thread;
static uint8_t *zo_big;

static evio_action zo_opened(evio_conn *c, const evio_info *info)
{
    if (!pthread_equal(pthread_self(), h_of(evio_conn_server(c))->thread))
        atomic_store(&zo_off_thread, true);
    h_reg_open(c, info);
    return EVIO_NONE;
}

static evio_action zo_data(evio_conn *c, const void *in, size_t len)
{
    if (in && len == 3 && memcmp(in, "big", 3) == 0) {
        h_log(c, H_DATA, (int64_t)len);
        H_EXPECT(evio_write(c, zo_big, PD_BIG) == 0, "evio_write");
        return EVIO_NONE;
    }
    return h_data_echo(c, in, len);
}

START_TEST(test_zero_options_mean_defaults)
{
    const int QUIET = 1000;
    h_reg_reset();
    atomic_store(&zo_off_thread, false);
    zo_big = h_xmalloc(PD_BIG);
    h_fill(zo_big, PD_BIG, 3);
    evio_events ev = {.opened = zo_opened, .data = zo_data, .closed = h_reg_closed};
    const char *addrs[] = {"tcp://127.0.0.1:0", "udp://127.0.0.1:0"};
    h_server hs = {0};
    h_start(&hs, &ev, addrs, 2);
    ck_assert_int_eq(evio_server_stats(h_srv(&hs), NULL, NULL, 0), 1);
    int idle = h_connect(&hs, 0);
    h_reg_wait_opened(1);
    int stuck = h_client(&hs, 0, 16 * KIB);
    h_reg_wait_opened(2);
    h_send_all(stuck, "big", 3);
    int u = h_udp_client(&hs, 1);
    char b[8];
    h_send_all(u, "dg", 2);
    ck_assert_msg(recv(u, b, sizeof b, 0) == 2, "udp echo: %s", strerror(errno));
    h_reg_wait_opened(3);
    H_WAIT(h_stats(&hs).output_bytes > 0, 5000, "the 8 MiB reply to queue up");
    h_sleep_ms(QUIET);
    ck_assert_msg(atomic_load(&h_reg.closed) == 0, "with every option 0, a connection was "
                  "closed within %d ms (closed() fired %d times, first err %d)", QUIET,
                  atomic_load(&h_reg.closed), h_reg_get(0).err);
    ck_assert_msg(!atomic_load(&zo_off_thread), "nloops = 0 ran opened() off the serving "
                  "thread");
    /* drain_timeout_ms 0: the drain waits (30 s), it does not cut the
     * open connections at once; the UDP session ends at once (closed 0). */
    ck_assert_int_eq(evio_server_drain(h_srv(&hs), 0), 0);
    H_WAIT(atomic_load(&h_reg.closed) >= 1, 2000, "the drain to end the UDP session");
    h_sleep_ms(QUIET);
    ck_assert_msg(atomic_load(&h_reg.closed) == 1, "a drain with drain_timeout_ms 0 closed "
                  "%d connections within %d ms", atomic_load(&h_reg.closed) - 1, QUIET);
    int ui = h_reg_by_listener(1);
    ck_assert_msg(h_reg_get(ui).nclosed == 1 && h_reg_get(ui).err == 0,
                  "the UDP session: closed %d times, err %d", h_reg_get(ui).nclosed,
                  h_reg_get(ui).err);
    h_echo_check(idle, "still served while draining");
    close(idle);
    close(stuck);
    close(u);
    h_reg_wait_closed(3);
    H_WAIT(atomic_load(&hs.returned), 3000, "evio_serve to return once drained");
    h_server_join(&hs);
    h_log_check_sequences(true);
    free(zo_big);
}
END_TEST

/* accept_filter gets the peer's address as the kernel gives it: AF_UNIX on
 * a unix listener, AF_INET6 ::1 on tcp6, AF_INET on tcp4; a refused one is
 * closed before opened() and counted in stats.filtered. */
static struct {
    pthread_mutex_t mu;
    int families[8];
    bool v6_loopback;
    int n;
} af = {.mu = PTHREAD_MUTEX_INITIALIZER};

static int af_filter(void *udata, const struct sockaddr *sa, socklen_t len)
{
    (void)udata, (void)len;
    pthread_mutex_lock(&af.mu);
    if (af.n < 8)
        af.families[af.n++] = sa->sa_family;
    if (sa->sa_family == AF_INET6)
        af.v6_loopback = IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)sa)->sin6_addr);
    pthread_mutex_unlock(&af.mu);
    return sa->sa_family != AF_INET6; /* refuse the ::1 client */
}

START_TEST(test_accept_filter_sees_each_family)
{
    bool v6 = h_have_ipv6();
    if (!v6)
        printf("%s: this host cannot bind ::1; the tcp6 listener is left out\n", tcase_name());
    h_reg_reset();
    memset(af.families, 0, sizeof af.families);
    af.n = 0;
    af.v6_loopback = false;
    char path[108], uaddr[160];
    h_unix_path(path, sizeof path, "filter");
    snprintf(uaddr, sizeof uaddr, "unix://%s", path);
    evio_events ev = {.opened = h_reg_opened, .data = h_data_echo, .closed = h_reg_closed,
                      .accept_filter = af_filter};
    const char *addrs[] = {uaddr, "tcp4://127.0.0.1:0", "tcp6://[::1]:0"};
    size_t n = v6 ? 3 : 2;
    h_server hs = {0};
    h_start(&hs, &ev, addrs, n);
    static const int want[] = {AF_UNIX, AF_INET, AF_INET6};
    for (size_t l = 0; l < n; l++) {
        int fd = h_connect(&hs, l);
        if (want[l] == AF_INET6) {
            h_expect_closed_at_once(fd, "the ::1 client the filter refused");
        } else {
            h_echo_check(fd, "admitted");
        }
        close(fd);
        pthread_mutex_lock(&af.mu);
        int fam = af.n == (int)l + 1 ? af.families[l] : -1, calls = af.n;
        pthread_mutex_unlock(&af.mu);
        ck_assert_msg(calls == (int)l + 1, "accept_filter called %d times for %zu clients",
                      calls, l + 1);
        ck_assert_msg(fam == want[l], "listener %zu: accept_filter saw family %d, expected %d",
                      l, fam, want[l]);
    }
    if (v6)
        ck_assert_msg(af.v6_loopback, "the tcp6 client's address was not ::1");
    h_reg_wait_closed(2);
    evio_stats s = h_stats(&hs);
    ck_assert_msg(s.filtered == (v6 ? 1u : 0u) && s.accepted == 2,
                  "filtered %llu, accepted %llu", (unsigned long long)s.filtered,
                  (unsigned long long)s.accepted);
    ck_assert_int_eq(atomic_load(&h_reg.opened), 2);
    h_server_stop(&hs);
    h_log_check_sequences(true);
}
END_TEST

/* ================================================================ translators */

/* A translator that passes bytes through, and on "bye" answers and closes
 * in order (evio_translator_close), on "err" fails with a message
 * (evio_translator_set_error); closed() reads evio_conn_error. */
static atomic_int xt_finish, xt_free, xt_close_rc = 1;
static pthread_mutex_t xt_mu = PTHREAD_MUTEX_INITIALIZER;
static char xt_errmsg[H_REG_MAX][64];

static int xt_open(const evio_translator *t, evio_conn *c, void **state)
{
    (void)t, (void)c;
    *state = malloc(1);
    return *state ? 0 : -ENOMEM;
}

static int xt_input(void *state, evio_conn *c, const void *wire, size_t len)
{
    (void)state;
    if (len >= 3 && memcmp(wire, "bye", 3) == 0) {
        int rc = evio_translator_send(c, "ciao", 4);
        if (rc)
            return rc;
        atomic_store(&xt_close_rc, evio_translator_close(c));
        return 0;
    }
    if (len >= 3 && memcmp(wire, "err", 3) == 0) {
        evio_translator_set_error(c, "bad frame from the peer");
        return EVIO_ETRANSLATE;
    }
    int rc = evio_translator_deliver(c, wire, len);
    return rc == EVIO_ESHUTDOWN ? 0 : rc;
}

static int xt_output(void *state, evio_conn *c, const void *data, size_t len)
{
    (void)state;
    return evio_translator_send(c, data, len);
}

static int xt_finish_fn(void *state, evio_conn *c)
{
    (void)state;
    atomic_fetch_add(&xt_finish, 1);
    return evio_translator_send(c, "[fin]", 5);
}

static void xt_free_fn(void *state)
{
    free(state);
    atomic_fetch_add(&xt_free, 1);
}

static const evio_translator xt_tr = {.open = xt_open, .input = xt_input, .output = xt_output,
                                      .finish = xt_finish_fn, .free = xt_free_fn};

static const evio_translator *xt_translate(evio_conn *c, const evio_info *info)
{
    (void)c, (void)info;
    return &xt_tr;
}

static evio_action xt_closed(evio_conn *c, int err)
{
    int i = h_reg_index(c);
    if (i >= 0 && i < H_REG_MAX) {
        pthread_mutex_lock(&xt_mu);
        snprintf(xt_errmsg[i], sizeof xt_errmsg[i], "%s", evio_conn_error(c));
        pthread_mutex_unlock(&xt_mu);
    }
    return h_reg_closed(c, err);
}

static void xt_reset(void)
{
    h_reg_reset();
    atomic_store(&xt_finish, 0);
    atomic_store(&xt_free, 0);
    atomic_store(&xt_close_rc, 1);
    memset(xt_errmsg, 0, sizeof xt_errmsg);
}

START_TEST(test_translator_close_and_error_message)
{
    xt_reset();
    evio_events ev = {.opened = h_reg_opened, .data = h_data_echo, .closed = xt_closed,
                      .translate = xt_translate};
    const char *addrs[] = {"tcp://127.0.0.1:0"};
    h_server hs = {0};
    h_start(&hs, &ev, addrs, 1);
    char got[64];

    /* 0: "bye": the answer, finish's last words, EOF; closed(c, 0). */
    int a = h_connect(&hs, 0);
    h_echo_check(a, "through the translator");
    h_send_all(a, "bye", 3);
    size_t n = h_recv_until_eof(a, got, sizeof got);
    ck_assert_msg(n == 9 && memcmp(got, "ciao[fin]", 9) == 0,
                  "after evio_translator_close the client got %zu bytes \"%.*s\", expected "
                  "\"ciao[fin]\"", n, (int)n, got);
    h_reg_wait_closed(1);
    ck_assert_int_eq(atomic_load(&xt_close_rc), 0);
    ck_assert_int_eq(atomic_load(&xt_finish), 1);
    h_conn f = h_reg_get(0);
    ck_assert_msg(f.err == 0, "closed(err = %d) after evio_translator_close", f.err);
    pthread_mutex_lock(&xt_mu);
    ck_assert_msg(xt_errmsg[0][0] == 0, "evio_conn_error is \"%s\" with no error", xt_errmsg[0]);
    pthread_mutex_unlock(&xt_mu);
    close(a);

    /* 1: "err": closed(c, EVIO_ETRANSLATE) and the message. */
    int b = h_connect(&hs, 0);
    h_send_all(b, "err", 3);
    int rc = h_drain(b);
    ck_assert_msg(rc == 0 || rc == -ECONNRESET, "client of the failed translator: %s",
                  strerror(-rc));
    h_reg_wait_closed(2);
    f = h_reg_get(1);
    ck_assert_msg(f.err == EVIO_ETRANSLATE, "closed(err = %d, %s), expected EVIO_ETRANSLATE",
                  f.err, evio_strerror(f.err));
    pthread_mutex_lock(&xt_mu);
    ck_assert_msg(strcmp(xt_errmsg[1], "bad frame from the peer") == 0,
                  "evio_conn_error in closed() is \"%s\"", xt_errmsg[1]);
    pthread_mutex_unlock(&xt_mu);
    close(b);
    H_WAIT(atomic_load(&xt_free) == 2, 2000, "free() for both connections (%d)",
           atomic_load(&xt_free));
    h_server_stop(&hs);
    h_log_check_sequences(true);
}
END_TEST

/* evio_translator_deliver says EVIO_ESHUTDOWN once the application closed
 * the connection (data() returned EVIO_CLOSE), 0 before; in closed(),
 * evio_translator_send, _set_deadline and _close say EVIO_ESHUTDOWN. */
static atomic_int dv_first_rc = 1, dv_close_rc = 1;

static int dv_input(void *state, evio_conn *c, const void *wire, size_t len)
{
    (void)state;
    int rc = evio_translator_deliver(c, wire, len);
    if (len >= 5 && memcmp(wire, "close", 5) == 0)
        atomic_store(&dv_close_rc, rc);
    else
        atomic_store(&dv_first_rc, rc);
    return rc == EVIO_ESHUTDOWN ? 0 : rc;
}

static const evio_translator dv_tr = {.open = xt_open, .input = dv_input, .output = xt_output,
                                      .free = xt_free_fn};

static const evio_translator *dv_translate(evio_conn *c, const evio_info *info)
{
    (void)c, (void)info;
    return &dv_tr;
}

static evio_action dv_data(evio_conn *c, const void *in, size_t len)
{
    if (in && len >= 5 && memcmp(in, "close", 5) == 0) {
        h_log(c, H_DATA, (int64_t)len);
        return EVIO_CLOSE;
    }
    return h_data_echo(c, in, len);
}

static evio_action dv_closed(evio_conn *c, int err)
{
    h_reg_rc(c, 0, evio_translator_send(c, "x", 1));
    h_reg_rc(c, 1, evio_translator_set_deadline(c, 100));
    h_reg_rc(c, 2, evio_translator_close(c));
    return h_reg_closed(c, err);
}

START_TEST(test_translator_calls_after_close_say_shutdown)
{
    xt_reset();
    atomic_store(&dv_first_rc, 1);
    atomic_store(&dv_close_rc, 1);
    evio_events ev = {.opened = h_reg_opened, .data = dv_data, .closed = dv_closed,
                      .translate = dv_translate};
    const char *addrs[] = {"tcp://127.0.0.1:0"};
    h_server hs = {0};
    h_start(&hs, &ev, addrs, 1);
    int a = h_connect(&hs, 0);
    h_echo_check(a, "hello");
    ck_assert_int_eq(atomic_load(&dv_first_rc), 0);
    h_send_all(a, "close", 5);
    ck_assert_int_eq(h_drain(a), 0);
    h_reg_wait_closed(1);
    ck_assert_msg(atomic_load(&dv_close_rc) == EVIO_ESHUTDOWN,
                  "evio_translator_deliver after data() returned EVIO_CLOSE: %d (%s), expected "
                  "EVIO_ESHUTDOWN", atomic_load(&dv_close_rc),
                  evio_strerror(atomic_load(&dv_close_rc)));
    static const char *const names[] = {"evio_translator_send", "evio_translator_set_deadline",
                                        "evio_translator_close"};
    h_conn f = h_reg_get(0);
    for (int k = 0; k < 3; k++)
        ck_assert_msg(f.rc[k] == EVIO_ESHUTDOWN, "%s in closed(): %d (%s), expected "
                      "EVIO_ESHUTDOWN", names[k], f.rc[k], evio_strerror(f.rc[k]));
    ck_assert_int_eq(f.err, 0);
    close(a);
    h_server_stop(&hs);
    h_log_check_sequences(true);
}
END_TEST

/* ================================================================ the suite */

TCase *tcase_contract(void)
{
    TCase *tc = h_tcase("contract", 30);
    tcase_add_test(tc, test_strerror_names_every_evio_code);
    tcase_add_test(tc, test_addr_format_rejects_short_lengths);
    tcase_add_loop_test(tc, test_addr_format_round_trip, 0, K_N);
    tcase_add_test(tc, test_server_addr_index_out_of_range);
    tcase_add_test(tc, test_schemes_bind_their_family);
    tcase_add_test(tc, test_unix_mode_option_out_of_range);
    tcase_add_test(tc, test_conn_getters_in_every_callback);
    tcase_add_test(tc, test_conn_calls_in_closed_say_shutdown);
    tcase_add_test(tc, test_conn_pending_counts_queued_output);
    tcase_add_test(tc, test_write_to_another_connection_of_the_loop);
    tcase_add_test(tc, test_detach_without_callback_closes);
    tcase_add_test(tc, test_closed_and_detached_return_values);
    tcase_add_test(tc, test_close_action_from_opened_flushes);
    tcase_add_test(tc, test_drain_action_from_tick);
    tcase_add_loop_test(tc, test_udp_idle_ms, 0, 2);
    tcase_add_test(tc, test_udp_one_datagram_per_write);
    tcase_add_test(tc, test_udp_skips_translate_and_write_events);
    tcase_add_test(tc, test_zero_options_mean_defaults);
    tcase_add_test(tc, test_accept_filter_sees_each_family);
    tcase_add_test(tc, test_translator_close_and_error_message);
    tcase_add_test(tc, test_translator_calls_after_close_say_shutdown);
    return tc;
}

/* Where other threads meet the server on purpose (several loops, calls
 * from the test thread, a signal): the TSan run selects these. */
TCase *tcase_contract_threads(void)
{
    TCase *tc = h_tcase("contract-threads", 30);
    tcase_add_test(tc, test_balance_random_spreads_over_loops);
    tcase_add_test(tc, test_wake_udp_session_says_eudp);
    tcase_add_test(tc, test_dial_wake_before_opened);
    tcase_add_test(tc, test_dial_from_loop_joins_that_loop);
    tcase_add_test(tc, test_send_after_close_is_dropped);
    tcase_add_test(tc, test_shutdown_from_signal_handler);
    return tc;
}
