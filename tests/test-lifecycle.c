/*
 * test-lifecycle.c — a connection's life: opened first, exactly one closed
 * (with the right error), ids, flushing on CLOSE and on the peer's EOF, and
 * handing the fd over with DETACH.
 */
#include "harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MIB (1024 * 1024)

/* A client that reads slowly: a small receive buffer (set before connect,
 * so the window stays small) keeps most output pending in the server. */
static int connect_small_rcvbuf(h_server *hs, size_t i)
{
    socklen_t len;
    const struct sockaddr *sa = h_server_addr(hs, i, &len);
    int fd = h_socket_for(sa);
    int sz = 16 * 1024;
    ck_assert(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz) == 0);
    int rc = h_try_connect(fd, sa, len);
    ck_assert_msg(rc == 0, "connect: %s", strerror(-rc));
    return fd;
}

/* ---------------------------------------------------------------- many ways to close */

enum { T_CLOSE, T_RST, T_QUIT, T_SHUTWR, T_SILENT, T_KINDS };
static const char *kind_name[] = {"client close", "client RST", "server CLOSE action",
                                  "client shutdown(SHUT_WR)", "client close without data"};

#define LC_CONNS 60
static struct {
    pthread_mutex_t mu;
    struct {
        int port;
        uint64_t id;
    } peers[LC_CONNS];
    int npeers;
    atomic_int write_in_closed_ok, write_in_closed_bad;
} lc = {.mu = PTHREAD_MUTEX_INITIALIZER};

static evio_action lc_opened(evio_conn *c, const evio_info *info)
{
    h_opened_log(c, info);
    const struct sockaddr_in *sin = (const struct sockaddr_in *)info->remote;
    pthread_mutex_lock(&lc.mu);
    if (lc.npeers < LC_CONNS && info->remote && sin->sin_family == AF_INET) {
        lc.peers[lc.npeers].port = ntohs(sin->sin_port);
        lc.peers[lc.npeers].id = evio_conn_id(c);
        lc.npeers++;
    }
    pthread_mutex_unlock(&lc.mu);
    return EVIO_NONE;
}

static evio_action lc_data(evio_conn *c, const void *in, size_t len)
{
    if (in && len >= 4 && memcmp(in, "quit", 4) == 0) {
        h_log(c, H_DATA, (int64_t)len);
        return EVIO_CLOSE;
    }
    return h_data_echo(c, in, len);
}

static evio_action lc_closed(evio_conn *c, int err)
{
    h_closed_log(c, err);
    /* "No output can be written any more": EVIO_ESHUTDOWN inside closed(). */
    int rc = evio_write(c, "late", 4);
    if (rc != EVIO_ESHUTDOWN)
        atomic_fetch_add(&lc.write_in_closed_bad, 1);
    else
        atomic_fetch_add(&lc.write_in_closed_ok, 1);
    return EVIO_NONE;
}

static uint64_t lc_id_of_port(int port)
{
    uint64_t id = 0;
    pthread_mutex_lock(&lc.mu);
    for (int i = 0; i < lc.npeers; i++)
        if (lc.peers[i].port == port)
            id = lc.peers[i].id;
    pthread_mutex_unlock(&lc.mu);
    return id;
}

START_TEST(test_opened_first_closed_once)
{
    evio_events ev = {.opened = lc_opened, .data = lc_data, .closed = lc_closed};
    const char *addrs[] = {"tcp://127.0.0.1:0"};
    h_server hs = {0};
    int rc = h_server_start(&hs, &ev, addrs, 1);
    ck_assert_msg(rc == 0, "evio_serve: %d (%s)", rc, evio_strerror(rc));

    int fds[LC_CONNS], ports[LC_CONNS];
    for (int i = 0; i < LC_CONNS; i++) {
        fds[i] = h_connect(&hs, 0);
        ports[i] = h_local_port(fds[i]);
    }
    H_WAIT(h_log_count(H_OPENED) == LC_CONNS, 5000, "%d opened events", LC_CONNS);

    /* Close them every which way, interleaved. */
    for (int i = 0; i < LC_CONNS; i++) {
        char buf[8];
        switch (i % T_KINDS) {
        case T_CLOSE:
            h_send_all(fds[i], "hello", 5);
            h_recv_exact(fds[i], buf, 5);
            ck_assert_mem_eq(buf, "hello", 5);
            close(fds[i]);
            break;
        case T_RST:
            h_send_all(fds[i], "hello", 5);
            h_recv_exact(fds[i], buf, 5);
            h_close_rst(fds[i]);
            break;
        case T_QUIT:
            h_send_all(fds[i], "quit", 4);
            ck_assert_uint_eq(h_recv_until_eof(fds[i], buf, 0), 0);
            close(fds[i]);
            break;
        case T_SHUTWR:
            h_send_all(fds[i], "hello", 5);
            ck_assert(shutdown(fds[i], SHUT_WR) == 0);
            ck_assert_uint_eq(h_recv_until_eof(fds[i], buf, sizeof buf), 5);
            ck_assert_mem_eq(buf, "hello", 5);
            close(fds[i]);
            break;
        case T_SILENT:
            close(fds[i]);
            break;
        }
    }
    H_WAIT(h_log_count(H_CLOSED) == LC_CONNS, 5000, "%d closed events (have %zu)", LC_CONNS,
           h_log_count(H_CLOSED));

    for (int i = 0; i < LC_CONNS; i++) {
        int kind = i % T_KINDS;
        uint64_t id = lc_id_of_port(ports[i]);
        ck_assert_msg(id != 0, "no opened() with the remote port of client %d", i);
        ck_assert_uint_eq(h_log_count_id(id, H_CLOSED), 1);
        int64_t err = h_log_last_arg(id, H_CLOSED);
        if (kind == T_RST)
            ck_assert_msg(err == -ECONNRESET, "%s: closed err %lld (%s), expected -ECONNRESET",
                          kind_name[kind], (long long)err, evio_strerror((int)err));
        else
            ck_assert_msg(err == 0, "%s: closed err %lld (%s), expected 0", kind_name[kind],
                          (long long)err, evio_strerror((int)err));
        if (kind == T_SILENT)
            ck_assert_uint_eq(h_log_count_id(id, H_DATA), 0);
        else
            ck_assert_uint_ge(h_log_count_id(id, H_DATA), 1);
    }
    h_server_stop(&hs);
    ck_assert_uint_eq(h_log_check_sequences(true), LC_CONNS);
    ck_assert_msg(atomic_load(&lc.write_in_closed_bad) == 0,
                  "evio_write inside closed() did not return EVIO_ESHUTDOWN %d times",
                  atomic_load(&lc.write_in_closed_bad));
}
END_TEST

/* ---------------------------------------------------------------- ids */

#define ID_CONNS 1000
#define ID_BATCH 25

START_TEST(test_ids_unique_never_reused)
{
    evio_events ev = {.opened = h_opened_log, .data = h_data_echo, .closed = h_closed_log};
    const char *addrs[] = {"tcp://127.0.0.1:0"};
    h_server hs = {0};
    int rc = h_server_start(&hs, &ev, addrs, 1);
    ck_assert_msg(rc == 0, "evio_serve: %d (%s)", rc, evio_strerror(rc));
    for (int done = 0; done < ID_CONNS; done += ID_BATCH) {
        int fds[ID_BATCH];
        for (int i = 0; i < ID_BATCH; i++)
            fds[i] = h_connect(&hs, 0);
        H_WAIT(h_log_count(H_OPENED) == (size_t)(done + ID_BATCH), 5000, "%d opened",
               done + ID_BATCH);
        for (int i = 0; i < ID_BATCH; i++)
            close(fds[i]);
        /* Wait for the closes so the server's fds are reused next batch. */
        H_WAIT(h_log_count(H_CLOSED) == (size_t)(done + ID_BATCH), 5000, "%d closed",
               done + ID_BATCH);
    }
    h_server_stop(&hs);
    /* One opened per id (the checker fails on a repeated opened), so 1000
     * connections whose fds were reused over and over had 1000 distinct,
     * non-zero ids: ids are not fds and are never reused. */
    ck_assert_uint_eq(h_log_check_sequences(true), ID_CONNS);
}
END_TEST

/* ---------------------------------------------------------------- CLOSE flushes */

#define BIG (8 * MIB)
static uint8_t *pattern; /* BIG bytes of h_fill(seed 7) */

static struct {
    atomic_size_t pending_at_return;
    atomic_bool ending;        /* CLOSE or DETACH was returned */
    atomic_bool late_tried;    /* evio_write was tried during the final flush */
    atomic_int late_rc;        /* and returned this */
    atomic_int ended_write_rc; /* evio_write inside closed()/detached() */
    atomic_int detached_fd;
    atomic_int detached_flags;
    atomic_size_t detached_pending;
    atomic_uint_fast64_t id;
} fl;

static void fl_reset(void)
{
    memset(&fl, 0, sizeof fl);
    atomic_store(&fl.detached_fd, -1);
    if (!pattern) {
        pattern = h_xmalloc(BIG);
        h_fill(pattern, BIG, 7);
    }
}

static evio_action fl_opened(evio_conn *c, const evio_info *info)
{
    atomic_store(&fl.id, evio_conn_id(c));
    if (info->local->sa_family != AF_UNIX) {
        int rc = evio_conn_set_keepalive(c, 30);
        H_EXPECT(rc == 0, "evio_conn_set_keepalive(30) on TCP: %d (%s)", rc, evio_strerror(rc));
    }
    return h_opened_log(c, info);
}

/* "close N" / "detach N" / "write N": write N MiB of the pattern, then
 * CLOSE / DETACH / nothing. */
static evio_action fl_data(evio_conn *c, const void *in, size_t len)
{
    if (!in)
        return h_data_echo(c, in, len);
    h_log(c, H_DATA, (int64_t)len);
    char cmd[32] = "";
    memcpy(cmd, in, len < sizeof cmd - 1 ? len : sizeof cmd - 1);
    int mib = 0;
    evio_action action;
    if (sscanf(cmd, "detach %d", &mib) == 1)
        action = EVIO_DETACH;
    else if (sscanf(cmd, "close %d", &mib) == 1)
        action = EVIO_CLOSE;
    else if (sscanf(cmd, "write %d", &mib) == 1)
        action = EVIO_NONE;
    else {
        H_EXPECT(false, "unexpected input \"%s\"", cmd);
        return EVIO_CLOSE;
    }
    for (int i = 0; i < mib; i++) {
        int rc = evio_write(c, pattern + (size_t)i * MIB, MIB);
        H_EXPECT(rc == 0, "evio_write: %d (%s)", rc, evio_strerror(rc));
    }
    /* Nothing is sent before the event returns. */
    atomic_store(&fl.pending_at_return, evio_conn_pending(c));
    atomic_store(&fl.ending, action != EVIO_NONE);
    return action;
}

/* Once, while the final flush after CLOSE/DETACH runs: try to write. */
static void fl_late_write(evio_conn *c)
{
    if (!atomic_load(&fl.ending) || atomic_load(&fl.late_tried))
        return;
    atomic_store(&fl.late_rc, evio_write(c, "X", 1));
    atomic_store(&fl.late_tried, true);
}

static evio_action fl_prewrite(evio_conn *c, size_t amount)
{
    (void)amount;
    fl_late_write(c);
    return EVIO_NONE;
}

static evio_action fl_postwrite(evio_conn *c, size_t written, size_t remaining)
{
    (void)written, (void)remaining;
    fl_late_write(c);
    return EVIO_NONE;
}

static evio_action fl_closed(evio_conn *c, int err)
{
    atomic_store(&fl.ended_write_rc, evio_write(c, "Z", 1));
    return h_closed_log(c, err);
}

static evio_action fl_detached(evio_conn *c, int fd)
{
    h_log(c, H_DETACHED, fd);
    atomic_store(&fl.ended_write_rc, evio_write(c, "Z", 1));
    atomic_store(&fl.detached_flags, fd >= 0 ? fcntl(fd, F_GETFL) : -1);
    atomic_store(&fl.detached_pending, evio_conn_pending(c));
    atomic_store(&fl.detached_fd, fd);
    return EVIO_NONE;
}

static void fl_start(h_server *hs, const char *addr, bool late_writes)
{
    fl_reset();
    evio_events ev = {.opened = fl_opened, .data = fl_data, .closed = fl_closed,
                      .detached = fl_detached};
    if (late_writes) {
        ev.prewrite = fl_prewrite;
        ev.postwrite = fl_postwrite;
    }
    const char *addrs[] = {addr};
    int rc = h_server_start(hs, &ev, addrs, 1);
    ck_assert_msg(rc == 0, "evio_serve(%s): %d (%s)", addr, rc, evio_strerror(rc));
}


START_TEST(test_close_flushes_pending_output)
{
    h_server hs = {0};
    fl_start(&hs, "tcp://127.0.0.1:0", false);
    int fd = connect_small_rcvbuf(&hs, 0);
    h_send_all(fd, "close 8", 7);
    H_WAIT(atomic_load(&fl.ending), 5000, "the CLOSE action");
    ck_assert_uint_eq(atomic_load(&fl.pending_at_return), BIG);

    /* Read nothing for a while, then slowly, then as fast as we can. */
    h_sleep_ms(300);
    uint8_t *buf = h_xmalloc(BIG);
    size_t got = 0;
    for (int i = 0; i < 40; i++) {
        ssize_t n = recv(fd, buf + got, 4096, 0);
        ck_assert_msg(n > 0, "slow read %d: %zd (%s)", i, n, n < 0 ? strerror(errno) : "EOF");
        got += (size_t)n;
        h_sleep_ms(3);
    }
    got += h_recv_until_eof(fd, buf + got, BIG - got);
    ck_assert_msg(got == BIG, "received %zu bytes before EOF, expected %d", got, BIG);
    size_t bad = h_mismatch(buf, BIG, 7);
    ck_assert_msg(bad == (size_t)-1, "output corrupted at byte %zu", bad);
    free(buf);
    close(fd);

    H_WAIT(h_log_count(H_CLOSED) == 1, 5000, "closed");
    uint64_t id = atomic_load(&fl.id);
    ck_assert_int_eq(h_log_last_arg(id, H_CLOSED), 0);
    h_server_stop(&hs);
    h_log_check_sequences(true);
}
END_TEST

START_TEST(test_peer_eof_flushes_then_closes)
{
    /* The client half-closes right after its request: the server still
     * writes the whole reply, then closes cleanly. */
    h_server hs = {0};
    fl_start(&hs, "tcp://127.0.0.1:0", false);
    int fd = connect_small_rcvbuf(&hs, 0);
    h_send_all(fd, "write 8", 7);
    ck_assert(shutdown(fd, SHUT_WR) == 0);
    h_sleep_ms(200);
    uint8_t *buf = h_xmalloc(BIG);
    size_t got = h_recv_until_eof(fd, buf, BIG);
    ck_assert_msg(got == BIG, "received %zu bytes before EOF, expected %d", got, BIG);
    ck_assert_msg(h_mismatch(buf, BIG, 7) == (size_t)-1, "output corrupted");
    free(buf);
    close(fd);
    H_WAIT(h_log_count(H_CLOSED) == 1, 5000, "closed");
    ck_assert_int_eq(h_log_last_arg(atomic_load(&fl.id), H_CLOSED), 0);
    h_server_stop(&hs);
    h_log_check_sequences(true);
}
END_TEST

/* ---------------------------------------------------------------- DETACH */

START_TEST(test_detach_hands_over_the_fd)
{
    h_server hs = {0};
    fl_start(&hs, "tcp://127.0.0.1:0", false);
    int fd = connect_small_rcvbuf(&hs, 0);
    h_send_all(fd, "detach 4", 8);
    uint8_t *buf = h_xmalloc(4 * MIB);
    h_sleep_ms(100);
    h_recv_exact(fd, buf, 4 * MIB);
    ck_assert_msg(h_mismatch(buf, 4 * MIB, 7) == (size_t)-1, "output corrupted");
    free(buf);

    H_WAIT(atomic_load(&fl.detached_fd) >= 0 || h_log_count(H_CLOSED) > 0, 5000, "detached");
    ck_assert_uint_eq(h_log_count(H_CLOSED), 0);
    int dfd = atomic_load(&fl.detached_fd);
    ck_assert_uint_eq(atomic_load(&fl.pending_at_return), 4 * MIB);
    ck_assert_msg(atomic_load(&fl.detached_pending) == 0,
                  "evio_conn_pending() = %zu in detached(): output not flushed first",
                  atomic_load(&fl.detached_pending));
    ck_assert_msg((atomic_load(&fl.detached_flags) & O_NONBLOCK) == 0,
                  "the detached fd is still non-blocking");

    /* The fd is ours: a blocking conversation, then close. */
    int flags = fcntl(dfd, F_GETFL);
    ck_assert_msg(flags >= 0 && !(flags & O_NONBLOCK), "detached fd flags 0x%x", flags);
    int ka = 0;
    socklen_t kl = sizeof ka;
    ck_assert(getsockopt(dfd, SOL_SOCKET, SO_KEEPALIVE, &ka, &kl) == 0);
    ck_assert_msg(ka == 1, "SO_KEEPALIVE = %d after evio_conn_set_keepalive(c, 30)", ka);
    h_set_timeouts(dfd, H_IO_TIMEOUT_MS);
    char msg[4];
    h_send_all(fd, "ping", 4);
    h_recv_exact(dfd, msg, 4);
    ck_assert_mem_eq(msg, "ping", 4);
    h_send_all(dfd, "pong", 4);
    h_recv_exact(fd, msg, 4);
    ck_assert_mem_eq(msg, "pong", 4);
    close(dfd);
    ck_assert_uint_eq(h_recv_until_eof(fd, msg, sizeof msg), 0);
    close(fd);

    h_server_stop(&hs);
    uint64_t id = atomic_load(&fl.id);
    ck_assert_uint_eq(h_log_count_id(id, H_DETACHED), 1);
    ck_assert_uint_eq(h_log_count_id(id, H_CLOSED), 0);
    ck_assert_uint_eq(h_log_count_id(id, H_DATA), 1); /* "ping" went to us, not the loop */
    h_log_check_sequences(true);
}
END_TEST

START_TEST(test_detach_unix)
{
    char path[108], uaddr[128];
    h_unix_path(path, sizeof path, "detach");
    snprintf(uaddr, sizeof uaddr, "unix://%s", path);
    h_server hs = {0};
    fl_start(&hs, uaddr, false);
    int fd = h_connect(&hs, 0);
    h_send_all(fd, "detach 2", 8);
    uint8_t *buf = h_xmalloc(2 * MIB);
    h_recv_exact(fd, buf, 2 * MIB);
    ck_assert_msg(h_mismatch(buf, 2 * MIB, 7) == (size_t)-1, "output corrupted");
    free(buf);
    H_WAIT(atomic_load(&fl.detached_fd) >= 0, 5000, "detached");
    int dfd = atomic_load(&fl.detached_fd);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    ck_assert(getsockname(dfd, (struct sockaddr *)&ss, &sl) == 0);
    ck_assert_int_eq(ss.ss_family, AF_UNIX);
    h_set_timeouts(dfd, H_IO_TIMEOUT_MS);
    char msg[4];
    h_send_all(dfd, "pong", 4);
    h_recv_exact(fd, msg, 4);
    ck_assert_mem_eq(msg, "pong", 4);
    close(dfd);
    close(fd);
    h_server_stop(&hs);
    ck_assert_uint_eq(h_log_count(H_CLOSED), 0);
    h_log_check_sequences(true);
}
END_TEST

/* ---------------------------------------------------------------- output during the final flush */

/* "After EVIO_CLOSE or EVIO_DETACH, output written from the events that
 * still fire (prewrite/postwrite during the final flush) is sent before the
 * close or hand-over"; inside closed() and detached() evio_write returns
 * EVIO_ESHUTDOWN. */
static void run_late_write(const char *cmd)
{
    h_server hs = {0};
    fl_start(&hs, "tcp://127.0.0.1:0", true);
    int fd = connect_small_rcvbuf(&hs, 0);
    h_send_all(fd, cmd, strlen(cmd));
    uint8_t *buf = h_xmalloc(2 * MIB + 1);
    h_recv_exact(fd, buf, 2 * MIB + 1);
    ck_assert_msg(h_mismatch(buf, 2 * MIB, 7) == (size_t)-1, "output corrupted");
    ck_assert_msg(buf[2 * MIB] == 'X', "%s: the byte written during the final flush is 0x%02x, "
                  "not 'X'", cmd, buf[2 * MIB]);
    free(buf);
    H_WAIT(h_log_count(H_CLOSED) + h_log_count(H_DETACHED) == 1, 5000, "the action to end");
    ck_assert_msg(atomic_load(&fl.late_tried), "%s: no prewrite/postwrite during the final "
                  "flush", cmd);
    int rc = atomic_load(&fl.late_rc);
    ck_assert_msg(rc == 0, "%s: evio_write during the final flush returned %d (%s)", cmd, rc,
                  evio_strerror(rc));
    rc = atomic_load(&fl.ended_write_rc);
    ck_assert_msg(rc == EVIO_ESHUTDOWN, "%s: evio_write inside %s returned %d (%s), expected "
                  "EVIO_ESHUTDOWN", cmd, h_log_count(H_CLOSED) ? "closed()" : "detached()", rc,
                  evio_strerror(rc));
    int dfd = atomic_load(&fl.detached_fd);
    if (dfd >= 0)
        close(dfd); /* nothing else was queued: the client sees EOF next */
    char extra;
    ck_assert_msg(h_recv_until_eof(fd, &extra, 0) == 0, "bytes after the final flush");
    close(fd);
    h_server_stop(&hs);
    h_log_check_sequences(true);
}

START_TEST(test_write_during_close_flush) { run_late_write("close 2"); }
END_TEST

START_TEST(test_write_during_detach_flush) { run_late_write("detach 2"); }
END_TEST

/* ---------------------------------------------------------------- keep-alive */

static struct {
    atomic_int n;
    int rc_on[3], rc_off[3], listener[3];
    atomic_int fd[3];
} ka;

static evio_action ka_opened(evio_conn *c, const evio_info *info)
{
    int i = atomic_load(&ka.n);
    if (i >= 3)
        return EVIO_CLOSE;
    evio_conn_set_context(c, (void *)(intptr_t)i);
    ka.listener[i] = info->listener;
    ka.rc_on[i] = evio_conn_set_keepalive(c, 30);
    ka.rc_off[i] = i == 1 ? evio_conn_set_keepalive(c, 0) : 0;
    h_opened_log(c, info);
    atomic_store(&ka.n, i + 1);
    return EVIO_DETACH; /* nothing pending: the fd is handed over at once */
}

static evio_action ka_detached(evio_conn *c, int fd)
{
    h_log(c, H_DETACHED, fd);
    atomic_store(&ka.fd[(intptr_t)evio_conn_context(c)], fd);
    return EVIO_NONE;
}

static int getopt_int(int fd, int level, int name)
{
    int v = -1;
    socklen_t l = sizeof v;
    ck_assert(getsockopt(fd, level, name, &v, &l) == 0);
    return v;
}

START_TEST(test_keepalive)
{
    memset(&ka, 0, sizeof ka);
    for (int i = 0; i < 3; i++)
        atomic_store(&ka.fd[i], -1);
    char path[108], uaddr[128];
    h_unix_path(path, sizeof path, "ka");
    snprintf(uaddr, sizeof uaddr, "unix://%s", path);
    const char *addrs[] = {"tcp://127.0.0.1:0", uaddr};
    evio_events ev = {.opened = ka_opened, .detached = ka_detached, .closed = h_closed_log};
    h_server hs = {0};
    int rc = h_server_start(&hs, &ev, addrs, 2);
    ck_assert_msg(rc == 0, "evio_serve: %d (%s)", rc, evio_strerror(rc));
    int fds[3];
    for (int i = 0; i < 3; i++) {
        fds[i] = h_connect(&hs, i == 2 ? 1 : 0);
        H_WAIT(atomic_load(&ka.fd[i]) >= 0, 5000, "detached #%d", i);
    }
    /* TCP, on: SO_KEEPALIVE with idle time and interval 30 s. */
    ck_assert_msg(ka.rc_on[0] == 0, "set_keepalive(30) on TCP: %d (%s)", ka.rc_on[0],
                  evio_strerror(ka.rc_on[0]));
    int d0 = atomic_load(&ka.fd[0]);
    ck_assert_int_eq(getopt_int(d0, SOL_SOCKET, SO_KEEPALIVE), 1);
    ck_assert_int_eq(getopt_int(d0, IPPROTO_TCP, TCP_KEEPIDLE), 30);
    ck_assert_int_eq(getopt_int(d0, IPPROTO_TCP, TCP_KEEPINTVL), 30);
    /* TCP, on then off. */
    ck_assert_int_eq(ka.rc_on[1], 0);
    ck_assert_msg(ka.rc_off[1] == 0, "set_keepalive(0): %d (%s)", ka.rc_off[1],
                  evio_strerror(ka.rc_off[1]));
    ck_assert_int_eq(getopt_int(atomic_load(&ka.fd[1]), SOL_SOCKET, SO_KEEPALIVE), 0);
    /* unix: not supported. */
    ck_assert_int_eq(ka.listener[2], 1);
    ck_assert_msg(ka.rc_on[2] == -ENOTSUP, "set_keepalive on a unix socket: %d (%s), "
                  "expected -ENOTSUP", ka.rc_on[2], evio_strerror(ka.rc_on[2]));
    for (int i = 0; i < 3; i++) {
        close(atomic_load(&ka.fd[i]));
        close(fds[i]);
    }
    h_server_stop(&hs);
    ck_assert_uint_eq(h_log_count(H_CLOSED), 0);
    ck_assert_uint_eq(h_log_count(H_DETACHED), 3);
    h_log_check_sequences(true);
}
END_TEST

TCase *tcase_lifecycle(void)
{
    TCase *tc = h_tcase("lifecycle", 30);
    tcase_add_test(tc, test_opened_first_closed_once);
    tcase_add_test(tc, test_ids_unique_never_reused);
    tcase_add_test(tc, test_close_flushes_pending_output);
    tcase_add_test(tc, test_peer_eof_flushes_then_closes);
    tcase_add_test(tc, test_detach_hands_over_the_fd);
    tcase_add_test(tc, test_detach_unix);
    tcase_add_test(tc, test_write_during_close_flush);
    tcase_add_test(tc, test_write_during_detach_flush);
    tcase_add_test(tc, test_keepalive);
    return tc;
}
