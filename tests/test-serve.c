/*
 * test-serve.c — serving: bound addresses, several listeners on one serve,
 * what opened() learns, SO_REUSEPORT, unix socket files, and every way of
 * shutting a server down.
 */
#include "harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/* The addresses most tests here serve: tcp4, tcp6 (when the host has ::1),
 * unix, and tcp without a scheme. */
typedef struct addr_set {
    const char *addrs[4];
    size_t n;
    int unix_index, v6_index;
    char path[108];
    char uaddr[128];
} addr_set;

static void addr_set_init(addr_set *as, const char *tag)
{
    memset(as, 0, sizeof *as);
    h_unix_path(as->path, sizeof as->path, tag);
    snprintf(as->uaddr, sizeof as->uaddr, "unix://%s", as->path);
    as->addrs[as->n++] = "tcp4://127.0.0.1:0";
    as->v6_index = -1;
    if (h_have_ipv6()) {
        as->v6_index = (int)as->n;
        as->addrs[as->n++] = "tcp6://[::1]:0";
    } else {
        printf("%s: this host cannot bind ::1; the tcp6 listener is left out\n", tcase_name());
    }
    as->unix_index = (int)as->n;
    as->addrs[as->n++] = as->uaddr;
    as->addrs[as->n++] = "127.0.0.1:0";
}

/* After a shutdown: TCP listeners refuse, the unix file is gone. */
static void expect_listeners_closed(const struct sockaddr_storage *saved, const socklen_t *lens,
                                    size_t n, const char *path)
{
    for (size_t i = 0; i < n; i++) {
        const struct sockaddr *sa = (const struct sockaddr *)&saved[i];
        int fd = h_socket_for(sa);
        int rc = h_try_connect(fd, sa, lens[i]);
        char buf[160];
        ck_assert_msg(rc < 0, "connect to %s succeeded after shutdown",
                      h_sockaddr_str(sa, lens[i], buf, sizeof buf));
        close(fd);
    }
    if (path)
        ck_assert_msg(!h_path_exists(path), "unix socket file %s not removed on shutdown", path);
}

/* ---------------------------------------------------------------- serving */

static struct {
    atomic_int serving_naddrs;
    atomic_bool serving_saw_addrs;
    atomic_int ticks_before_serving;
    atomic_bool serving_fired;
} sv;

static evio_action rec_serving(evio_server *srv)
{
    size_t n = evio_server_naddrs(srv);
    bool all = true;
    for (size_t i = 0; i < n; i++)
        all = all && evio_server_addr(srv, i, NULL) != NULL;
    atomic_store(&sv.serving_naddrs, (int)n);
    atomic_store(&sv.serving_saw_addrs, all);
    atomic_store(&sv.serving_fired, true);
    return EVIO_NONE;
}

static evio_action rec_tick(evio_server *srv, int64_t *delay)
{
    (void)srv;
    if (!atomic_load(&sv.serving_fired))
        atomic_fetch_add(&sv.ticks_before_serving, 1);
    *delay = 1000000000;
    return EVIO_NONE;
}

START_TEST(test_serving_and_bound_addresses)
{
    memset(&sv, 0, sizeof sv);
    addr_set as;
    addr_set_init(&as, "addrs");
    evio_events ev = {.serving = rec_serving, .tick = rec_tick, .opened = h_opened_log,
                      .data = h_data_echo, .closed = h_closed_log};
    h_server hs = {0};
    int rc = h_server_start(&hs, &ev, as.addrs, as.n);
    ck_assert_msg(rc == 0, "evio_serve: %d (%s)", rc, evio_strerror(rc));
    evio_server *srv = atomic_load(&hs.srv);

    ck_assert_int_eq(atomic_load(&sv.serving_naddrs), (int)as.n);
    ck_assert_msg(atomic_load(&sv.serving_saw_addrs), "evio_server_addr NULL inside serving()");
    ck_assert_int_eq(atomic_load(&sv.ticks_before_serving), 0);
    ck_assert_ptr_eq(evio_server_udata(srv), &hs);
    ck_assert_uint_eq(evio_server_naddrs(srv), as.n);

    struct sockaddr_storage saved[4];
    socklen_t lens[4];
    for (size_t i = 0; i < as.n; i++) {
        socklen_t len = 0;
        const struct sockaddr *sa = evio_server_addr(srv, i, &len);
        ck_assert_ptr_nonnull(sa);
        ck_assert_ptr_eq(evio_server_addr(srv, i, NULL), sa);
        ck_assert_msg(len > 0 && len <= sizeof saved[i], "address %zu: len %u", i, len);
        memcpy(&saved[i], sa, len);
        lens[i] = len;
        char want[256], got[256];
        if ((int)i == as.unix_index) {
            ck_assert_int_eq(sa->sa_family, AF_UNIX);
            snprintf(want, sizeof want, "unix://%s", as.path);
        } else if ((int)i == as.v6_index) {
            ck_assert_int_eq(sa->sa_family, AF_INET6);
            ck_assert_int_ne(h_server_port(&hs, i), 0);
            snprintf(want, sizeof want, "tcp://[::1]:%d", h_server_port(&hs, i));
        } else {
            ck_assert_int_eq(sa->sa_family, AF_INET);
            ck_assert_int_ne(h_server_port(&hs, i), 0);
            snprintf(want, sizeof want, "tcp://127.0.0.1:%d", h_server_port(&hs, i));
        }
        int n = evio_addr_format(sa, len, got, sizeof got);
        ck_assert_str_eq(got, want);
        ck_assert_int_eq(n, (int)strlen(want));
    }
    ck_assert_ptr_null(evio_server_addr(srv, as.n, NULL));
    ck_assert_ptr_null(evio_server_addr(srv, (size_t)-1, NULL));
    ck_assert_int_ne(h_server_port(&hs, 0), h_server_port(&hs, as.n - 1));

    struct stat st;
    ck_assert_msg(lstat(as.path, &st) == 0 && S_ISSOCK(st.st_mode),
                  "%s is not a socket while serving", as.path);

    /* Every listener serves. */
    for (size_t i = 0; i < as.n; i++) {
        int fd = h_connect(&hs, i);
        char buf[8];
        h_send_all(fd, "ping", 4);
        h_recv_exact(fd, buf, 4);
        ck_assert_mem_eq(buf, "ping", 4);
        close(fd);
    }
    H_WAIT(h_log_count(H_CLOSED) == as.n, 5000, "%zu closed events", as.n);

    h_server_stop(&hs);
    h_log_check_sequences(true);
    expect_listeners_closed(saved, lens, as.n, as.path);
}
END_TEST

/* ---------------------------------------------------------------- info */

typedef struct opened_rec {
    uint64_t id;
    int listener;
    struct sockaddr_storage local, remote;
    socklen_t local_len, remote_len;
    bool server_ok, context_ok;
} opened_rec;

static struct {
    opened_rec recs[8];
    atomic_int n;
} oi;

static evio_action info_opened(evio_conn *c, const evio_info *info)
{
    int i = atomic_load(&oi.n);
    H_EXPECT(i < 8, "too many connections");
    if (i >= 8)
        return EVIO_CLOSE;
    opened_rec *r = &oi.recs[i];
    r->id = evio_conn_id(c);
    r->listener = info->listener;
    H_EXPECT(info->local != NULL && info->remote != NULL, "info without addresses");
    if (info->local && info->local_len <= sizeof r->local) {
        memcpy(&r->local, info->local, info->local_len);
        r->local_len = info->local_len;
    }
    if (info->remote && info->remote_len <= sizeof r->remote) {
        memcpy(&r->remote, info->remote, info->remote_len);
        r->remote_len = info->remote_len;
    }
    h_server *hs = h_of(evio_conn_server(c));
    r->server_ok = evio_conn_server(c) == atomic_load(&hs->srv);
    /* The context is the application's: NULL first, then what was set. */
    r->context_ok = evio_conn_context(c) == NULL;
    evio_conn_set_context(c, r);
    r->context_ok = r->context_ok && evio_conn_context(c) == r;
    h_log(c, H_OPENED, info->listener);
    atomic_store(&oi.n, i + 1);
    return EVIO_NONE;
}

static evio_action info_data(evio_conn *c, const void *in, size_t len)
{
    opened_rec *r = evio_conn_context(c);
    H_EXPECT(r != NULL && r->id == evio_conn_id(c), "context lost between events");
    return h_data_echo(c, in, len);
}

START_TEST(test_listener_index_and_addresses)
{
    memset(&oi, 0, sizeof oi);
    addr_set as;
    addr_set_init(&as, "info");
    evio_events ev = {.opened = info_opened, .data = info_data, .closed = h_closed_log};
    h_server hs = {0};
    int rc = h_server_start(&hs, &ev, as.addrs, as.n);
    ck_assert_msg(rc == 0, "evio_serve: %d (%s)", rc, evio_strerror(rc));

    int fds[4];
    for (size_t i = 0; i < as.n; i++) {
        fds[i] = h_connect(&hs, i);
        H_WAIT(atomic_load(&oi.n) == (int)i + 1, 5000, "opened for listener %zu", i);
        opened_rec *r = &oi.recs[i];
        ck_assert_msg(r->listener == (int)i, "connection to listener %zu: info->listener = %d",
                      i, r->listener);
        ck_assert_msg(r->server_ok, "evio_conn_server() is not the serving server");
        ck_assert_msg(r->context_ok, "evio_conn_context/set_context round trip failed");
        struct sockaddr_storage mine, peer;
        socklen_t mlen = sizeof mine, plen = sizeof peer;
        ck_assert(getsockname(fds[i], (struct sockaddr *)&mine, &mlen) == 0);
        ck_assert(getpeername(fds[i], (struct sockaddr *)&peer, &plen) == 0);
        char a[160], b[160];
        if ((int)i == as.unix_index) {
            ck_assert_int_eq(r->local.ss_family, AF_UNIX);
            socklen_t blen;
            const struct sockaddr *bound = h_server_addr(&hs, i, &blen);
            ck_assert_msg(h_sockaddr_eq((struct sockaddr *)&r->local, r->local_len, bound, blen),
                          "unix info->local is %s, expected %s",
                          h_sockaddr_str((struct sockaddr *)&r->local, r->local_len, a, sizeof a),
                          as.path);
            ck_assert_msg(r->remote_len == 0 || r->remote.ss_family == AF_UNIX,
                          "unix info->remote has family %d", r->remote.ss_family);
        } else {
            ck_assert_msg(h_sockaddr_eq((struct sockaddr *)&r->remote, r->remote_len,
                                        (struct sockaddr *)&mine, mlen),
                          "listener %zu: info->remote %s, client is %s", i,
                          h_sockaddr_str((struct sockaddr *)&r->remote, r->remote_len, a, sizeof a),
                          h_sockaddr_str((struct sockaddr *)&mine, mlen, b, sizeof b));
            ck_assert_msg(h_sockaddr_eq((struct sockaddr *)&r->local, r->local_len,
                                        (struct sockaddr *)&peer, plen),
                          "listener %zu: info->local %s, client's peer is %s", i,
                          h_sockaddr_str((struct sockaddr *)&r->local, r->local_len, a, sizeof a),
                          h_sockaddr_str((struct sockaddr *)&peer, plen, b, sizeof b));
        }
        char buf[4];
        h_send_all(fds[i], "abc", 3);
        h_recv_exact(fds[i], buf, 3);
        ck_assert_mem_eq(buf, "abc", 3);
    }
    for (size_t i = 0; i < as.n; i++)
        close(fds[i]);
    H_WAIT(h_log_count(H_CLOSED) == as.n, 5000, "%zu closed events", as.n);
    h_server_stop(&hs);
    h_log_check_sequences(true);
}
END_TEST

/* ---------------------------------------------------------------- reuseport */

static int bind_reuseport(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert(fd >= 0);
    int one = 1;
    ck_assert(setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) == 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int rc = bind(fd, (struct sockaddr *)&sin, sizeof sin) == 0 ? 0 : -errno;
    close(fd);
    return rc;
}

START_TEST(test_reuseport)
{
    evio_events ev = {.opened = h_opened_log, .data = h_data_echo, .closed = h_closed_log};
    const char *a_addrs[] = {"tcp://127.0.0.1:0?reuseport=true"};
    h_server a = {0}, b = {0}, c = {0};
    int rc = h_server_start(&a, &ev, a_addrs, 1);
    ck_assert_msg(rc == 0, "evio_serve(%s): %d (%s)", a_addrs[0], rc, evio_strerror(rc));
    int port = h_server_port(&a, 0);

    /* Our own SO_REUSEPORT socket may share the port... */
    rc = bind_reuseport(port);
    ck_assert_msg(rc == 0, "bind with SO_REUSEPORT to a ?reuseport=true port: %s",
                  strerror(-rc));

    /* ...and so may a second server. */
    char b_addr[64];
    snprintf(b_addr, sizeof b_addr, "tcp://127.0.0.1:%d?reuseport=true", port);
    const char *b_addrs[] = {b_addr};
    rc = h_server_start(&b, &ev, b_addrs, 1);
    ck_assert_msg(rc == 0, "a second evio_serve(%s): %d (%s)", b_addr, rc, evio_strerror(rc));
    ck_assert_int_eq(h_server_port(&b, 0), port);
    for (int i = 0; i < 4; i++) {
        int fd = h_connect(&a, 0);
        char buf[2];
        h_send_all(fd, "ok", 2);
        h_recv_exact(fd, buf, 2);
        ck_assert_mem_eq(buf, "ok", 2);
        close(fd);
    }

    /* Without the option the port is not shared. */
    const char *c_addrs[] = {"tcp://127.0.0.1:0"};
    rc = h_server_start(&c, &ev, c_addrs, 1);
    ck_assert_msg(rc == 0, "evio_serve(%s): %d (%s)", c_addrs[0], rc, evio_strerror(rc));
    rc = bind_reuseport(h_server_port(&c, 0));
    ck_assert_msg(rc == -EADDRINUSE, "SO_REUSEPORT bind to a port served without "
                  "?reuseport=true: %s, expected EADDRINUSE", rc ? strerror(-rc) : "success");

    H_WAIT(h_log_count(H_CLOSED) == 4, 5000, "4 closed events");
    h_server_stop(&c);
    h_server_stop(&b);
    h_server_stop(&a);
    h_log_check_sequences(true);
}
END_TEST

/* ---------------------------------------------------------------- unix files */

START_TEST(test_unix_stale_file_replaced)
{
    char path[108], uaddr[128];
    h_unix_path(path, sizeof path, "stale");
    snprintf(uaddr, sizeof uaddr, "unix://%s", path);
    /* A socket file an earlier run left behind. */
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un un = {.sun_family = AF_UNIX};
    snprintf(un.sun_path, sizeof un.sun_path, "%s", path);
    ck_assert(bind(fd, (struct sockaddr *)&un, sizeof un) == 0);
    close(fd);
    ck_assert(h_path_exists(path));

    evio_events ev = {.opened = h_opened_log, .data = h_data_echo, .closed = h_closed_log};
    const char *addrs[] = {uaddr};
    h_server hs = {0};
    int rc = h_server_start(&hs, &ev, addrs, 1);
    ck_assert_msg(rc == 0, "evio_serve over a stale socket file: %d (%s)", rc,
                  evio_strerror(rc));
    fd = h_connect(&hs, 0);
    char buf[3];
    h_send_all(fd, "abc", 3);
    h_recv_exact(fd, buf, 3);
    ck_assert_mem_eq(buf, "abc", 3);
    close(fd);
    H_WAIT(h_log_count(H_CLOSED) == 1, 5000, "closed");
    h_server_stop(&hs);
    ck_assert_msg(!h_path_exists(path), "%s not removed on shutdown", path);
}
END_TEST

/* ---------------------------------------------------------------- shutdown */

static struct {
    atomic_int where; /* which event returns EVIO_SHUTDOWN */
    atomic_int opened;
    atomic_size_t big_written;
} sd;

enum { SD_NONE, SD_DATA, SD_OPENED, SD_CLOSED, SD_SERVING, SD_CALL };

static evio_action sd_serving(evio_server *srv)
{
    (void)srv;
    return atomic_load(&sd.where) == SD_SERVING ? EVIO_SHUTDOWN : EVIO_NONE;
}

static evio_action sd_opened(evio_conn *c, const evio_info *info)
{
    h_opened_log(c, info);
    atomic_fetch_add(&sd.opened, 1);
    return atomic_load(&sd.where) == SD_OPENED ? EVIO_SHUTDOWN : EVIO_NONE;
}

static evio_action sd_data(evio_conn *c, const void *in, size_t len)
{
    if (in && len >= 3 && memcmp(in, "big", 3) == 0) {
        h_log(c, H_DATA, (int64_t)len);
        static uint8_t chunk[1 << 16];
        for (int i = 0; i < 64; i++)
            H_EXPECT(evio_write(c, chunk, sizeof chunk) == 0, "evio_write");
        atomic_store(&sd.big_written, evio_conn_pending(c));
        return EVIO_NONE;
    }
    if (in && len >= 4 && memcmp(in, "stop", 4) == 0 && atomic_load(&sd.where) == SD_DATA) {
        h_log(c, H_DATA, (int64_t)len);
        return EVIO_SHUTDOWN;
    }
    if (in && len >= 4 && memcmp(in, "stop", 4) == 0 && atomic_load(&sd.where) == SD_CALL) {
        /* evio_server_shutdown works from the loop thread too. */
        h_log(c, H_DATA, (int64_t)len);
        int rc = evio_server_shutdown(evio_conn_server(c));
        H_EXPECT(rc == 0, "evio_server_shutdown in a callback: %d", rc);
        return EVIO_NONE;
    }
    return h_data_echo(c, in, len);
}

static evio_action sd_closed(evio_conn *c, int err)
{
    h_closed_log(c, err);
    return atomic_load(&sd.where) == SD_CLOSED ? EVIO_SHUTDOWN : EVIO_NONE;
}

/* Serve tcp + unix; open three TCP and two unix clients (one has 4 MiB of
 * output pending); shut down the way sd.where says; check that every
 * connection got closed(0), serve returned 0, and every listener is gone. */
static void run_shutdown(int where)
{
    memset(&sd, 0, sizeof sd);
    atomic_store(&sd.where, where);
    char path[108], uaddr[128];
    h_unix_path(path, sizeof path, "shut");
    snprintf(uaddr, sizeof uaddr, "unix://%s", path);
    const char *addrs[] = {"tcp://127.0.0.1:0", uaddr};
    evio_events ev = {.serving = sd_serving, .opened = sd_opened, .data = sd_data,
                      .closed = sd_closed};
    h_server hs = {0};
    int rc = h_server_start(&hs, &ev, addrs, 2);
    ck_assert_msg(rc == 0, "evio_serve: %d (%s)", rc, evio_strerror(rc));
    if (where == SD_SERVING) {
        h_server_join(&hs);
        ck_assert_msg(!h_path_exists(path), "%s not removed on shutdown", path);
        return;
    }
    struct sockaddr_storage saved[2];
    socklen_t lens[2];
    for (size_t i = 0; i < 2; i++) {
        const struct sockaddr *sa = h_server_addr(&hs, i, &lens[i]);
        memcpy(&saved[i], sa, lens[i]);
    }
    int fds[5], nfds = where == SD_OPENED ? 1 : 5;
    for (int i = 0; i < nfds; i++) {
        fds[i] = h_connect_addr((struct sockaddr *)&saved[i < 3 ? 0 : 1], lens[i < 3 ? 0 : 1]);
        if (where != SD_OPENED)
            H_WAIT(atomic_load(&sd.opened) == i + 1, 5000, "opened #%d", i + 1);
    }
    if (where != SD_OPENED) {
        h_send_all(fds[0], "big", 3);
        H_WAIT(atomic_load(&sd.big_written) > 0, 5000, "4 MiB written");
        h_send_all(fds[3], "echo", 4);
        char buf[4];
        h_recv_exact(fds[3], buf, 4);
    }
    switch (where) {
    case SD_NONE:
        h_server_stop(&hs);
        break;
    case SD_DATA:
    case SD_CALL:
        h_send_all(fds[4], "stop", 4);
        h_server_join(&hs);
        break;
    case SD_OPENED:
        h_server_join(&hs);
        break;
    case SD_CLOSED:
        close(fds[1]);
        fds[1] = -1;
        h_server_join(&hs);
        break;
    }
    ck_assert_uint_eq(h_log_count(H_OPENED), (size_t)nfds);
    ck_assert_uint_eq(h_log_count(H_CLOSED), (size_t)nfds);
    size_t n;
    h_event *evs = h_log_copy(&n);
    for (size_t i = 0; i < n; i++)
        if (evs[i].type == H_CLOSED)
            ck_assert_msg(evs[i].arg == 0, "connection %llu closed by shutdown with err %lld (%s)",
                          (unsigned long long)evs[i].id, (long long)evs[i].arg,
                          evio_strerror((int)evs[i].arg));
    free(evs);
    h_log_check_sequences(true);
    /* The clients see their connections end. */
    for (int i = 0; i < nfds; i++) {
        if (fds[i] < 0)
            continue;
        h_drain(fds[i]);
        close(fds[i]);
    }
    expect_listeners_closed(saved, lens, 2, path);
}

START_TEST(test_shutdown_from_another_thread) { run_shutdown(SD_NONE); }
END_TEST

START_TEST(test_shutdown_action_from_data) { run_shutdown(SD_DATA); }
END_TEST

START_TEST(test_shutdown_action_from_opened) { run_shutdown(SD_OPENED); }
END_TEST

START_TEST(test_shutdown_action_from_closed) { run_shutdown(SD_CLOSED); }
END_TEST

START_TEST(test_shutdown_action_from_serving) { run_shutdown(SD_SERVING); }
END_TEST

START_TEST(test_shutdown_called_in_a_callback) { run_shutdown(SD_CALL); }
END_TEST

/* ---------------------------------------------------------------- empty host */

START_TEST(test_empty_host_means_any_address)
{
    /* ":0" and "tcp://:0": every local address, port chosen by the kernel;
     * loopback reaches it. */
    const char *forms[] = {":0", "tcp://:0"};
    for (size_t f = 0; f < 2; f++) {
        h_log_reset();
        evio_events ev = {.opened = h_opened_log, .data = h_data_echo, .closed = h_closed_log};
        const char *addrs[] = {forms[f]};
        h_server hs = {0};
        int rc = h_server_start(&hs, &ev, addrs, 1);
        ck_assert_msg(rc == 0, "evio_serve(\"%s\"): %d (%s)", forms[f], rc, evio_strerror(rc));
        socklen_t len;
        const struct sockaddr *sa = h_server_addr(&hs, 0, &len);
        int port = h_server_port(&hs, 0);
        ck_assert_int_ne(port, 0);
        if (sa->sa_family == AF_INET) {
            ck_assert_msg(((const struct sockaddr_in *)sa)->sin_addr.s_addr == htonl(INADDR_ANY),
                          "\"%s\" bound a specific IPv4 address", forms[f]);
        } else {
            ck_assert_int_eq(sa->sa_family, AF_INET6);
            ck_assert_msg(IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)sa)->sin6_addr),
                          "\"%s\" bound a specific IPv6 address", forms[f]);
        }
        struct sockaddr_in lo = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
        lo.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        int fd = h_connect_addr((struct sockaddr *)&lo, sizeof lo);
        char buf[2];
        h_send_all(fd, "hi", 2);
        h_recv_exact(fd, buf, 2);
        ck_assert_mem_eq(buf, "hi", 2);
        close(fd);
        H_WAIT(h_log_count(H_CLOSED) == 1, 5000, "closed");
        h_server_stop(&hs);
        h_log_check_sequences(true);
    }
}
END_TEST

/* ---------------------------------------------------------------- issue 12 */

/* A listener's address formats with its own scheme: a UDP listener's
 * string binds UDP again, not TCP. */
START_TEST(test_server_addr_format_keeps_scheme)
{
    char path[108], uaddr[128];
    h_unix_path(path, sizeof path, "fmt");
    snprintf(uaddr, sizeof uaddr, "unix://%s", path);
    evio_events ev = {.data = h_data_echo};
    const char *addrs[] = {"udp://127.0.0.1:0", "tcp://127.0.0.1:0", uaddr};
    h_server hs = {0};
    int rc = h_server_start(&hs, &ev, addrs, 3);
    ck_assert_msg(rc == 0, "evio_serve: %d (%s)", rc, evio_strerror(rc));
    evio_server *srv = atomic_load(&hs.srv);
    char buf[160], want[160];
    snprintf(want, sizeof want, "udp://127.0.0.1:%d", h_server_port(&hs, 0));
    rc = evio_server_addr_format(srv, 0, buf, sizeof buf);
    ck_assert_msg(rc == (int)strlen(want) && strcmp(buf, want) == 0,
                  "UDP listener formats as \"%s\" (%d), expected \"%s\"", buf, rc, want);
    snprintf(want, sizeof want, "tcp://127.0.0.1:%d", h_server_port(&hs, 1));
    rc = evio_server_addr_format(srv, 1, buf, sizeof buf);
    ck_assert_msg(strcmp(buf, want) == 0, "TCP listener: \"%s\", expected \"%s\"", buf, want);
    rc = evio_server_addr_format(srv, 2, buf, sizeof buf);
    ck_assert_msg(strcmp(buf, uaddr) == 0, "unix listener: \"%s\", expected \"%s\"", buf, uaddr);
    ck_assert_int_eq(evio_server_addr_format(srv, 3, buf, sizeof buf), EVIO_EINVAL);
    h_server_stop(&hs);
}
END_TEST

static void unix_echo(h_server *hs)
{
    int fd = h_connect(hs, 0);
    char buf[3];
    h_send_all(fd, "abc", 3);
    h_recv_exact(fd, buf, 3);
    ck_assert_mem_eq(buf, "abc", 3);
    close(fd);
}

/* A second server on a live unix socket's path gets -EADDRINUSE and leaves
 * the first alone; a server removes at exit only the file it created. */
START_TEST(test_unix_live_socket_not_taken_over)
{
    char path[108], uaddr[128];
    h_unix_path(path, sizeof path, "live");
    snprintf(uaddr, sizeof uaddr, "unix://%s", path);
    evio_events ev = {.opened = h_opened_log, .data = h_data_echo, .closed = h_closed_log};
    const char *addrs[] = {uaddr};
    h_server a = {0}, b = {0};
    int rc = h_server_start(&a, &ev, addrs, 1);
    ck_assert_msg(rc == 0, "evio_serve: %d (%s)", rc, evio_strerror(rc));
    rc = h_server_start(&b, &ev, addrs, 1);
    if (rc == 0)
        h_server_stop(&b);
    ck_assert_msg(rc == -EADDRINUSE, "a second server on a live socket's path: %d (%s), "
                  "expected -EADDRINUSE", rc, evio_strerror(rc));
    if (b.started)
        pthread_join(b.thread, NULL);
    ck_assert_msg(h_path_exists(path), "the live socket's file was removed");
    unix_echo(&a);

    /* The file is replaced under a running server (by hand): that server
     * must not remove the new owner's file when it exits. */
    ck_assert(unlink(path) == 0);
    h_server c = {0};
    rc = h_server_start(&c, &ev, addrs, 1);
    ck_assert_msg(rc == 0, "evio_serve on a freed path: %d (%s)", rc, evio_strerror(rc));
    h_server_stop(&a);
    ck_assert_msg(h_path_exists(path), "the first server removed the second one's file");
    unix_echo(&c);
    h_server_stop(&c);
    ck_assert_msg(!h_path_exists(path), "%s not removed by the server that made it", path);
}
END_TEST

/* ?mode=0660 sets the socket file's permissions, whatever the umask. */
START_TEST(test_unix_mode_option)
{
    char path[108], uaddr[140];
    h_unix_path(path, sizeof path, "mode");
    snprintf(uaddr, sizeof uaddr, "unix://%s?mode=0660", path);
    evio_events ev = {.data = h_data_echo};
    const char *addrs[] = {uaddr};
    h_server hs = {0};
    int rc = h_server_start(&hs, &ev, addrs, 1);
    ck_assert_msg(rc == 0, "evio_serve(\"%s\"): %d (%s)", uaddr, rc, evio_strerror(rc));
    struct stat st;
    ck_assert(lstat(path, &st) == 0);
    ck_assert_msg((st.st_mode & 07777) == 0660, "mode %o, expected 0660",
                  (unsigned)(st.st_mode & 07777));
    h_server_stop(&hs);
    static const char *const bad[] = {"unix:///tmp/x?mode=999", "unix:///tmp/x?mode=",
                                      "unix:///tmp/x?mode=01777", "tcp://127.0.0.1:0?mode=0600"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *one[] = {bad[i]};
        h_server x = {0};
        rc = h_server_start(&x, &ev, one, 1);
        if (rc == 0)
            h_server_stop(&x);
        else if (x.started)
            pthread_join(x.thread, NULL);
        ck_assert_msg(rc == EVIO_EOPTION, "evio_serve(\"%s\") = %d (%s), expected EVIO_EOPTION",
                      bad[i], rc, evio_strerror(rc));
    }
}
END_TEST

TCase *tcase_serve(void)
{
    TCase *tc = h_tcase("serve", 20);
    tcase_add_test(tc, test_serving_and_bound_addresses);
    tcase_add_test(tc, test_listener_index_and_addresses);
    tcase_add_test(tc, test_reuseport);
    tcase_add_test(tc, test_unix_stale_file_replaced);
    tcase_add_test(tc, test_shutdown_from_another_thread);
    tcase_add_test(tc, test_shutdown_action_from_data);
    tcase_add_test(tc, test_shutdown_action_from_opened);
    tcase_add_test(tc, test_shutdown_action_from_closed);
    tcase_add_test(tc, test_shutdown_action_from_serving);
    tcase_add_test(tc, test_shutdown_called_in_a_callback);
    tcase_add_test(tc, test_empty_host_means_any_address);
    tcase_add_test(tc, test_server_addr_format_keeps_scheme);
    tcase_add_test(tc, test_unix_live_socket_not_taken_over);
    tcase_add_test(tc, test_unix_mode_option);
    return tc;
}
