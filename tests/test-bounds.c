/*
 * test-bounds.c — bounded resources (issue 11): output buffers that go away
 * when the queue is empty, the output high-water mark, write timeouts,
 * deadlines (the application's and a translator's), half-close (the eof
 * event and evio_conn_shutdown_write), abortive close (evio_conn_reset), and
 * the evio_stats counters that go with them (output_buffers, output_bytes,
 * high_water, timeouts).
 *
 * Every test runs a real server on 127.0.0.1 (port 0), ::1 or a unique unix
 * path and drives it with real client sockets.  Waits are bounded (x
 * h_slow); "eventually" means within 5 s x h_slow, and a "not before" check
 * (a timeout that must not fire early) allows a few milliseconds for the
 * loop's cached clock.  Peers that must not read use a small SO_RCVBUF (set
 * before connect) so the server has to keep most of its output queued.
 */
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define KIB 1024
#define MIB (1024 * 1024)
#define MS 1000000LL /* ns per ms */

/* What a timeout may fire early by: evio reads the clock once per loop
 * iteration, so its "now" may lag our opened()/data() timestamps a little. */
#define EARLY_MS 25

/* ---------------------------------------------------------------- small helpers */

static bool stats_queue_empty(h_server *hs)
{
    evio_stats s = h_stats(hs);
    return s.output_buffers == 0 && s.output_bytes == 0;
}

/* Wait until no connection holds an output buffer; fail naming what is held. */
static void expect_no_output_buffers(h_server *hs, const char *when)
{
    bool ok;
    H_WAIT_FOR(ok, stats_queue_empty(hs), 2000);
    evio_stats s = h_stats(hs);
    ck_assert_msg(ok, "%s: evio_stats.output_buffers = %llu, output_bytes = %llu with every "
                  "output queue empty (open connections: %llu), expected 0 and 0",
                  when, (unsigned long long)s.output_buffers,
                  (unsigned long long)s.output_bytes, (unsigned long long)s.open);
}

/* Where the server listens in a test that runs on several kinds of socket. */
enum { K_TCP, K_UNIX, K_TCP6 };

typedef struct kaddr {
    const char *addr;
    char path[108];
    char buf[128];
} kaddr;

static const char *kind_name(int kind)
{
    return kind == K_TCP ? "tcp 127.0.0.1" : kind == K_UNIX ? "unix" : "tcp6 ::1";
}

/* The address for kind; false (after saying so) if this host lacks ::1. */
static bool kaddr_init(kaddr *ka, int kind)
{
    memset(ka, 0, sizeof *ka);
    switch (kind) {
    case K_UNIX:
        h_unix_path(ka->path, sizeof ka->path, "bounds");
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

static void set_nonblock(int fd, bool on)
{
    int fl = fcntl(fd, F_GETFL);
    ck_assert(fl >= 0);
    ck_assert(fcntl(fd, F_SETFL, on ? fl | O_NONBLOCK : fl & ~O_NONBLOCK) == 0);
}

/* Read (blocking, with the socket's timeout) until EOF or an error; returns
 * 0 for EOF or -errno, and the byte count in *got.  A timeout fails. */
static int read_to_end(int fd, size_t *got)
{
    static uint8_t sink[65536];
    *got = 0;
    for (;;) {
        ssize_t n = recv(fd, sink, sizeof sink, 0);
        if (n > 0) {
            *got += (size_t)n;
            continue;
        }
        if (n == 0)
            return 0;
        if (errno == EINTR)
            continue;
        ck_assert_msg(errno != EAGAIN && errno != EWOULDBLOCK,
                      "recv timed out after %zu bytes waiting for the server to end the "
                      "connection", *got);
        return -errno;
    }
}

/* Non-blocking fd: send out[*sent..total) without reading until the server
 * stops taking bytes (no progress for stall_ms; with need_hw only once the
 * server's stats show the high-water mark hit), everything is sent, or
 * max_ms pass (all x h_slow). */
static void send_until_stalled(int fd, const uint8_t *out, size_t total, size_t *sent,
                               h_server *hs, bool need_hw, int stall_ms, int max_ms)
{
    int64_t last = h_now_ms(), deadline = h_now_ms() + (int64_t)max_ms * h_slow;
    while (*sent < total && h_now_ms() < deadline) {
        struct pollfd p = {fd, POLLOUT, 0};
        if (poll(&p, 1, 20) == 1 && (p.revents & POLLOUT)) {
            size_t chunk = total - *sent < 65536 ? total - *sent : 65536;
            ssize_t n = send(fd, out + *sent, chunk, MSG_NOSIGNAL);
            if (n > 0) {
                *sent += (size_t)n;
                last = h_now_ms();
            } else {
                ck_assert_msg(n < 0 && (errno == EAGAIN || errno == EINTR),
                              "send after %zu bytes: %s", *sent,
                              n == 0 ? "returned 0" : strerror(errno));
            }
        } else {
            ck_assert_msg(!(p.revents & (POLLERR | POLLHUP)),
                          "the connection failed after %zu bytes sent (revents 0x%x)", *sent,
                          p.revents);
        }
        if (h_now_ms() - last >= (int64_t)stall_ms * h_slow &&
            (!need_hw || h_stats(hs).high_water >= 1))
            break;
    }
}

/* Non-blocking fd: send the rest of out (up to total) and receive into in
 * until *got == want, both ways at once so neither side's buffers can
 * deadlock.  EOF, an error or ms x h_slow fail the test. */
static void pump(int fd, const uint8_t *out, size_t total, size_t *sent, uint8_t *in,
                 size_t want, size_t *got, int ms)
{
    int64_t deadline = h_now_ms() + (int64_t)ms * h_slow;
    while (*got < want) {
        int64_t left = deadline - h_now_ms();
        ck_assert_msg(left > 0, "timed out: sent %zu of %zu, received %zu of %zu", *sent,
                      total, *got, want);
        struct pollfd p = {fd, (short)(POLLIN | (*sent < total ? POLLOUT : 0)), 0};
        if (poll(&p, 1, (int)(left < 100 ? left : 100)) <= 0)
            continue;
        if ((p.revents & POLLOUT) && *sent < total) {
            size_t chunk = total - *sent < 65536 ? total - *sent : 65536;
            ssize_t n = send(fd, out + *sent, chunk, MSG_NOSIGNAL);
            if (n > 0)
                *sent += (size_t)n;
            else
                ck_assert_msg(n < 0 && (errno == EAGAIN || errno == EINTR),
                              "send after %zu bytes: %s", *sent, strerror(errno));
        }
        if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
            ssize_t n = recv(fd, in + *got, want - *got, 0);
            ck_assert_msg(n != 0, "EOF after receiving %zu of %zu bytes (sent %zu)", *got,
                          want, *sent);
            if (n > 0)
                *got += (size_t)n;
            else
                ck_assert_msg(errno == EAGAIN || errno == EINTR,
                              "recv after %zu bytes: %s", *got, strerror(errno));
        }
    }
}

static size_t first_diff(const uint8_t *a, const uint8_t *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (a[i] != b[i])
            return i;
    return (size_t)-1;
}

/* ================================================================ 1. output buffers */

static struct {
    const uint8_t *payload; /* what "big" and friends write */
    size_t len;
} big;

static evio_action q_data(evio_conn *c, const void *in, size_t len)
{
    if (in && len >= 3 && memcmp(in, "big", 3) == 0) {
        h_log(c, H_DATA, (int64_t)len);
        int rc = evio_write(c, big.payload, big.len);
        H_EXPECT(rc == 0, "evio_write(%zu bytes): %d (%s)", big.len, rc, evio_strerror(rc));
        return EVIO_NONE;
    }
    return h_data_echo(c, in, len);
}

#define Q_CONNS 50
#define Q_BIG (8 * MIB)

/* A connection whose output queue is empty holds no buffer: output_buffers
 * and output_bytes are 0 after an echo, and with 51 connections open that
 * each echoed once; a big reply to a peer that does not read shows as a
 * buffer, and once the peer has read it all the buffer is gone again. */
START_TEST(test_empty_queue_holds_no_buffer)
{
    h_reg_reset();
    uint8_t *payload = h_xmalloc(Q_BIG);
    h_fill(payload, Q_BIG, 11);
    big.payload = payload;
    big.len = Q_BIG;
    evio_events ev = {.opened = h_reg_opened, .data = q_data, .closed = h_reg_closed};
    const char *addrs[] = {"tcp://127.0.0.1:0"};
    h_server hs = {0};
    h_start(&hs, &ev, addrs, 1);

    evio_stats s = h_stats(&hs);
    ck_assert_msg(s.output_buffers == 0 && s.output_bytes == 0 && s.high_water == 0 &&
                      s.timeouts == 0,
                  "stats before any connection: output_buffers %llu, output_bytes %llu, "
                  "high_water %llu, timeouts %llu",
                  (unsigned long long)s.output_buffers, (unsigned long long)s.output_bytes,
                  (unsigned long long)s.high_water, (unsigned long long)s.timeouts);

    int fd = h_connect(&hs, 0);
    h_reg_wait_opened(1);
    h_echo_check(fd, "hello, one round trip");
    expect_no_output_buffers(&hs, "after one echo round trip");

    int fds[Q_CONNS];
    for (int k = 0; k < Q_CONNS; k++) {
        char msg[32];
        fds[k] = h_connect(&hs, 0);
        snprintf(msg, sizeof msg, "message %d", k);
        h_echo_check(fds[k], msg);
    }
    h_reg_wait_opened(Q_CONNS + 1);
    ck_assert_uint_eq(h_stats(&hs).open, Q_CONNS + 1);
    expect_no_output_buffers(&hs, "51 open connections, each after one echo");
    for (int k = 0; k < Q_CONNS; k++)
        close(fds[k]);
    h_reg_wait_closed(Q_CONNS);
    expect_no_output_buffers(&hs, "after 50 connections closed");

    /* A reply the peer does not read stays queued: a buffer is held. */
    int q = h_client(&hs, 0, 16 * KIB);
    h_reg_wait_opened(Q_CONNS + 2);
    h_send_all(q, "big", 3);
    H_WAIT((s = h_stats(&hs)).output_buffers >= 1 && s.output_bytes > 0, 5000,
           "output_buffers >= 1 while %d MiB are queued to a peer that does not read "
           "(output_buffers %llu, output_bytes %llu)", Q_BIG / MIB,
           (unsigned long long)s.output_buffers, (unsigned long long)s.output_bytes);

    uint8_t *got = h_xmalloc(Q_BIG);
    h_recv_exact(q, got, Q_BIG);
    size_t d = first_diff(got, payload, Q_BIG);
    ck_assert_msg(d == (size_t)-1, "the big reply differs at byte %zu", d);
    free(got);
    expect_no_output_buffers(&hs, "after the peer read the whole queued reply");
    h_echo_check(q, "and after that an echo");
    expect_no_output_buffers(&hs, "after an echo on the drained connection");

    close(q);
    close(fd);
    h_reg_wait_closed(Q_CONNS + 2);
    h_server_stop(&hs);
    h_log_check_sequences(true);
    free(payload);
}
END_TEST

/* ================================================================ 2. high-water mark */

/* What opened() does with evio_conn_set_high_water: up to two calls. */
static struct {
    int nset;
    int set[2];
    atomic_int cmd;      /* for the pause test: 1 pause, 2 resume (on a wake) */
    atomic_bool paused;  /* the application has the connection paused */
} hw;

static evio_action hw_opened(evio_conn *c, const evio_info *info)
{
    h_reg_open(c, info);
    for (int k = 0; k < hw.nset; k++)
        h_reg_rc(c, k, evio_conn_set_high_water(c, hw.set[k]));
    return EVIO_NONE;
}

/* Echo, recording what is queued before and after each write. */
static evio_action hw_data(evio_conn *c, const void *in, size_t len)
{
    if (!in) {
        h_log(c, H_WAKE, 0);
        int cmd = atomic_exchange(&hw.cmd, 0);
        if (cmd == 1) {
            int rc = evio_conn_pause(c);
            H_EXPECT(rc == 0, "evio_conn_pause: %d (%s)", rc, evio_strerror(rc));
            atomic_store(&hw.paused, true);
        } else if (cmd == 2) {
            atomic_store(&hw.paused, false);
            int rc = evio_conn_resume(c);
            H_EXPECT(rc == 0, "evio_conn_resume: %d (%s)", rc, evio_strerror(rc));
        }
        return EVIO_NONE;
    }
    H_EXPECT(!atomic_load(&hw.paused),
             "data() with %zu bytes of input while the application has the connection "
             "paused (the high-water mark's release must not undo evio_conn_pause)", len);
    h_log(c, H_DATA, (int64_t)len);
    size_t before = evio_conn_pending(c);
    int rc = evio_write(c, in, len);
    H_EXPECT(rc == 0, "evio_write: %d (%s)", rc, evio_strerror(rc));
    size_t after = evio_conn_pending(c);
    h_conn *f = h_reg_lock(c);
    if (f) {
        f->in += len;
        if (len > f->max_read)
            f->max_read = len;
        if (before > f->max_before)
            f->max_before = before;
        if (after > f->max_pending)
            f->max_pending = after;
        h_reg_unlock();
    }
    return EVIO_NONE;
}

#define HW_MARK (16 * KIB)
/* More than the kernel holds: on loopback the server's send buffer alone
 * autotunes to ~4 MB even towards a 16 KiB window. */
#define HW_TOTAL (24 * MIB)
#define HW_SEED 77u

/* Variants of the bounded test: where the mark comes from. */
typedef struct hw_variant {
    int kind;
    int server_mark;   /* evio_events.output_high_water */
    int nset, set[2];  /* evio_conn_set_high_water calls in opened() */
    int mark;          /* the mark in effect */
    const char *what;
} hw_variant;

static const hw_variant hw_variants[] = {
    {K_TCP, HW_MARK, 0, {0, 0}, HW_MARK, "output_high_water = 16 KiB"},
    {K_UNIX, HW_MARK, 0, {0, 0}, HW_MARK, "unix, output_high_water = 16 KiB"},
    {K_TCP, 0, 0, {0, 0}, EVIO_DEFAULT_HIGH_WATER, "output_high_water = 0 (the default)"},
    {K_TCP, -1, 1, {HW_MARK, 0}, HW_MARK,
     "server off, evio_conn_set_high_water(c, 16 KiB)"},
    {K_TCP, HW_MARK, 2, {-1, 0}, HW_MARK,
     "server 16 KiB, evio_conn_set_high_water(c, -1) then (c, 0): the server's again"},
    {K_TCP6, HW_MARK, 0, {0, 0}, HW_MARK, "tcp6 ::1, output_high_water = 16 KiB"},
};

/* A client that sends and does not read: the server stops reading once
 * its queue reaches the mark (stats.high_water counts it), so its queue
 * stays within the mark plus one read; then the client reads, and every
 * byte comes back once, in order. */
START_TEST(test_high_water_bounds_queue)
{
    const hw_variant *v = &hw_variants[_i];
    kaddr ka;
    if (!kaddr_init(&ka, v->kind))
        return;
    h_reg_reset();
    memset(&hw, 0, sizeof hw);
    hw.nset = v->nset;
    hw.set[0] = v->set[0];
    hw.set[1] = v->set[1];
    evio_events ev = {.opened = hw_opened, .data = hw_data, .closed = h_reg_closed,
                      .output_high_water = v->server_mark};
    const char *addrs[] = {ka.addr};
    h_server hs = {0};
    h_start(&hs, &ev, addrs, 1);

    uint8_t *out = h_xmalloc(HW_TOTAL), *in = h_xmalloc(HW_TOTAL);
    h_fill(out, HW_TOTAL, HW_SEED);
    int fd = h_client(&hs, 0, 16 * KIB);
    h_reg_wait_opened(1);
    set_nonblock(fd, true);
    size_t sent = 0, got = 0;
    send_until_stalled(fd, out, HW_TOTAL, &sent, &hs, true, 300, 10000);

    evio_stats s = h_stats(&hs);
    h_conn f = h_reg_get(0);
    for (int k = 0; k < v->nset; k++)
        ck_assert_msg(f.rc[k] == 0, "evio_conn_set_high_water(c, %d) returned %d (%s)",
                      v->set[k], f.rc[k], evio_strerror(f.rc[k]));
    ck_assert_msg(s.high_water >= 1,
                  "[%s] the client sent %zu bytes and never read; the server read %zu and "
                  "holds %llu bytes of output, yet stats.high_water is %llu (the mark never "
                  "stopped a read)", v->what, sent, f.in, (unsigned long long)s.output_bytes,
                  (unsigned long long)s.high_water);
    size_t one_read = f.max_read > 64 * KIB ? f.max_read : 64 * KIB;
    size_t bound = (size_t)v->mark + one_read + 16 * KIB;
    ck_assert_msg(f.max_pending <= bound,
                  "[%s] the server's queue reached %zu bytes (largest read %zu): more than "
                  "the mark %d plus one read (bound %zu)", v->what, f.max_pending, f.max_read,
                  v->mark, bound);
    ck_assert_msg(f.max_before < (size_t)v->mark + one_read,
                  "[%s] data() fired with %zu bytes already queued, mark %d", v->what,
                  f.max_before, v->mark);
    ck_assert_msg(s.output_bytes <= 4 * bound,
                  "[%s] stats.output_bytes %llu while the queue is bounded by %zu",
                  v->what, (unsigned long long)s.output_bytes, bound);
    printf("%s[%s]: stalled after sending %zu bytes; the server read %zu, queued at most "
           "%zu (largest read %zu), high_water %llu\n", tcase_name(), v->what, sent, f.in,
           f.max_pending, f.max_read, (unsigned long long)s.high_water);

    /* Now read: everything comes back, complete and in order. */
    pump(fd, out, HW_TOTAL, &sent, in, HW_TOTAL, &got, 30000);
    size_t d = h_mismatch(in, HW_TOTAL, HW_SEED);
    ck_assert_msg(d == (size_t)-1, "[%s] the echo differs from what was sent at byte %zu",
                  v->what, d);
    set_nonblock(fd, false);
    ck_assert_int_eq(shutdown(fd, SHUT_WR), 0);
    size_t extra;
    ck_assert_int_eq(read_to_end(fd, &extra), 0);
    ck_assert_msg(extra == 0, "[%s] %zu bytes more than were sent came back", v->what, extra);
    h_reg_wait_closed(1);
    f = h_reg_get(0);
    ck_assert_uint_eq(f.in, HW_TOTAL);
    ck_assert_msg(f.err == 0, "closed(err = %d) after a clean half-close", f.err);
    ck_assert_msg(f.max_pending <= bound, "[%s] the queue reached %zu bytes while echoing "
                  "the rest (bound %zu)", v->what, f.max_pending, bound);
    expect_no_output_buffers(&hs, "after the echo completed");
    close(fd);
    h_server_stop(&hs);
    h_log_check_sequences(true);
    free(out);
    free(in);
}
END_TEST

/* evio_conn_set_high_water(c, -1) turns the mark off for c: a client that
 * never reads makes the server queue far more than the server's mark, and
 * stats.high_water stays 0; every byte still comes back. */
START_TEST(test_high_water_off_per_connection)
{
    const size_t total = 8 * MIB;
    h_reg_reset();
    memset(&hw, 0, sizeof hw);
    hw.nset = 1;
    hw.set[0] = -1;
    evio_events ev = {.opened = hw_opened, .data = hw_data, .closed = h_reg_closed,
                      .output_high_water = HW_MARK};
    const char *addrs[] = {"tcp://127.0.0.1:0"};
    h_server hs = {0};
    h_start(&hs, &ev, addrs, 1);

    uint8_t *out = h_xmalloc(total), *in = h_xmalloc(total);
    h_fill(out, total, HW_SEED + 1);
    int fd = h_client(&hs, 0, 16 * KIB);
    h_reg_wait_opened(1);
    set_nonblock(fd, true);
    size_t sent = 0, got = 0;
    send_until_stalled(fd, out, total, &sent, &hs, false, 1000, 15000);
    h_conn f = h_reg_get(0);
    ck_assert_msg(f.rc[0] == 0, "evio_conn_set_high_water(c, -1): %d (%s)", f.rc[0],
                  evio_strerror(f.rc[0]));
    evio_stats s = h_stats(&hs);
    ck_assert_msg(sent == total,
                  "with the mark off for the connection the server stopped reading: it took "
                  "%zu of %zu bytes (queued at most %zu, stats.high_water %llu)", sent, total,
                  f.max_pending, (unsigned long long)s.high_water);
    H_WAIT((f = h_reg_get(0)).in == total, 5000, "the server to read all %zu bytes (it read %zu)",
           total, f.in);
    ck_assert_msg(f.max_pending >= 1 * MIB,
                  "with the mark off the server's queue reached only %zu bytes of the %zu "
                  "echoed to a client that does not read", f.max_pending, total);
    s = h_stats(&hs);
    ck_assert_msg(s.high_water == 0, "stats.high_water %llu with the mark off",
                  (unsigned long long)s.high_water);
    ck_assert_msg(s.output_buffers >= 1, "%zu bytes queued but output_buffers is 0",
                  f.max_pending);

    pump(fd, out, total, &sent, in, total, &got, 30000);
    size_t d = h_mismatch(in, total, HW_SEED + 1);
    ck_assert_msg(d == (size_t)-1, "the echo differs at byte %zu", d);
    close(fd);
    h_reg_wait_closed(1);
    expect_no_output_buffers(&hs, "after the connection closed");
    h_server_stop(&hs);
    h_log_check_sequences(true);
    free(out);
    free(in);
}
END_TEST

static void hw_command(h_server *hs, uint64_t id, int cmd)
{
    atomic_store(&hw.cmd, cmd);
    int rc = evio_wake(h_srv(hs), id);
    ck_assert_msg(rc == 0, "evio_wake: %d (%s)", rc, evio_strerror(rc));
    if (cmd == 1)
        H_WAIT(atomic_load(&hw.paused), 5000, "the wake that pauses the connection");
    else
        H_WAIT(atomic_load(&hw.cmd) == 0, 5000, "the wake that resumes the connection");
}

/* The mark and evio_conn_pause are independent: a connection stopped by
 * the mark and then paused by the application stays unread after its queue
 * drains, until the application resumes it. */
START_TEST(test_high_water_and_app_pause_independent)
{
    h_reg_reset();
    memset(&hw, 0, sizeof hw);
    evio_events ev = {.opened = hw_opened, .data = hw_data, .closed = h_reg_closed,
                      .output_high_water = HW_MARK};
    const char *addrs[] = {"tcp://127.0.0.1:0"};
    h_server hs = {0};
    h_start(&hs, &ev, addrs, 1);

    uint8_t *out = h_xmalloc(HW_TOTAL), *in = h_xmalloc(HW_TOTAL);
    h_fill(out, HW_TOTAL, HW_SEED + 2);
    int fd = h_client(&hs, 0, 16 * KIB);
    h_reg_wait_opened(1);
    uint64_t id = h_reg_get(0).id;
    set_nonblock(fd, true);
    size_t sent = 0, got = 0;

    /* 1. The mark stops the reads. */
    send_until_stalled(fd, out, HW_TOTAL, &sent, &hs, true, 300, 10000);
    ck_assert_msg(h_stats(&hs).high_water >= 1, "the mark never stopped the reads (sent "
                  "%zu)", sent);
    /* 2. The application pauses too. */
    hw_command(&hs, id, 1);
    size_t echoed = h_reg_get(0).in;
    /* 3. The client reads everything echoed: the queue drains below the
     * low mark, but the application's pause holds. */
    pump(fd, out, sent, &sent, in, echoed, &got, 10000);
    ck_assert_msg(memcmp(in, out, echoed) == 0, "the first %zu bytes echoed differ", echoed);
    expect_no_output_buffers(&hs, "after the client read all that was echoed");
    h_sleep_ms(300 * h_slow);
    h_conn f = h_reg_get(0);
    ck_assert_msg(f.in == echoed,
                  "the server read %zu more bytes after its queue drained although the "
                  "application had paused the connection", f.in - echoed);
    h_assert_no_callback_failures();
    /* Nothing more arrived either. */
    uint8_t b;
    ck_assert_msg(recv(fd, &b, 1, 0) < 0 && errno == EAGAIN,
                  "bytes arrived while the connection was paused");
    /* 4. Resume: the rest flows. */
    hw_command(&hs, id, 2);
    pump(fd, out, HW_TOTAL, &sent, in, HW_TOTAL, &got, 30000);
    size_t d = h_mismatch(in, HW_TOTAL, HW_SEED + 2);
    ck_assert_msg(d == (size_t)-1, "the echo differs at byte %zu", d);
    close(fd);
    h_reg_wait_closed(1);
    h_server_stop(&hs);
    h_log_check_sequences(true);
    free(out);
    free(in);
}
END_TEST

/* ================================================================ 3. write timeout */

static struct {
    int nset[4];
    int set[4][2];        /* evio_conn_set_write_timeout calls in opened(), per listener */
    bool write_in_opened; /* opened() writes big.payload */
} wt;

static evio_action wt_opened(evio_conn *c, const evio_info *info)
{
    h_reg_open(c, info);
    int l = info->listener;
    if (l >= 0 && l < 4)
        for (int k = 0; k < wt.nset[l]; k++)
            h_reg_rc(c, k, evio_conn_set_write_timeout(c, wt.set[l][k]));
    if (wt.write_in_opened) {
        int rc = evio_write(c, big.payload, big.len);
        H_EXPECT(rc == 0, "evio_write in opened(): %d (%s)", rc, evio_strerror(rc));
    }
    return EVIO_NONE;
}

/* "close" / "detach": write big.payload, then return that action. */
static evio_action wt_data(evio_conn *c, const void *in, size_t len)
{
    if (in && ((len >= 5 && memcmp(in, "close", 5) == 0) ||
               (len >= 6 && memcmp(in, "detach", 6) == 0))) {
        h_log(c, H_DATA, (int64_t)len);
        int rc = evio_write(c, big.payload, big.len);
        H_EXPECT(rc == 0, "evio_write: %d (%s)", rc, evio_strerror(rc));
        h_conn *f = h_reg_lock(c);
        if (f) {
            f->mark_ns = h_now_ns();
            h_reg_unlock();
        }
        return *(const char *)in == 'c' ? EVIO_CLOSE : EVIO_DETACH;
    }
    return h_data_echo(c, in, len);
}

static void expect_timed_out(h_conn f, int64_t from_ns, int ms, const char *what)
{
    ck_assert_msg(f.nclosed == 1, "%s: closed() fired %d times", what, f.nclosed);
    ck_assert_msg(f.err == -ETIMEDOUT, "%s: closed(err = %d, %s), expected -ETIMEDOUT", what,
                  f.err, evio_strerror(f.err));
    int64_t dt = f.closed_ns - from_ns;
    ck_assert_msg(dt >= (int64_t)(ms - EARLY_MS) * MS,
                  "%s: closed %.1f ms after its last chance of progress, before the %d ms "
                  "timeout", what, (double)dt / MS, ms);
    ck_assert_msg(dt <= (int64_t)(ms + EVIO_IDLE_RESOLUTION_MS + 2000 * h_slow) * MS,
                  "%s: closed %.1f ms after its last chance of progress, the timeout is %d ms",
                  what, (double)dt / MS, ms);
}

#define WT_BIG (8 * MIB)
#define WT_MS 300

/* A peer that never reads: the connection is closed with -ETIMEDOUT once
 * its queued output has made no progress for write_timeout_ms, whether the
 * output was written in opened() or before EVIO_CLOSE / EVIO_DETACH (their
 * flush is bounded; a timed-out DETACH ends in closed(), not detached()).
 * _i: 0 tcp opened, 1 unix opened, 2 tcp CLOSE, 3 unix CLOSE, 4 tcp DETACH. */
START_TEST(test_write_timeout_nonreader)
{
    static const struct {
        int kind;
        const char *cmd;
    } var[] = {{K_TCP, NULL}, {K_UNIX, NULL}, {K_TCP, "close"}, {K_UNIX, "close"},
               {K_TCP, "detach"}};
    kaddr ka;
    kaddr_init(&ka, var[_i].kind);
    h_reg_reset();
    memset(&wt, 0, sizeof wt);
    uint8_t *payload = h_xmalloc(WT_BIG);
    memset(payload, 'w', WT_BIG);
    big.payload = payload;
    big.len = WT_BIG;
    wt.write_in_opened = var[_i].cmd == NULL;
    evio_events ev = {.opened = wt_opened, .data = wt_data, .closed = h_reg_closed,
                      .detached = h_reg_detached, .write_timeout_ms = WT_MS};
    const char *addrs[] = {ka.addr};
    h_server hs = {0};
    h_start(&hs, &ev, addrs, 1);

    int fd = h_client(&hs, 0, 16 * KIB);
    h_reg_wait_opened(1);
    if (var[_i].cmd)
        h_send_all(fd, var[_i].cmd, strlen(var[_i].cmd));
    H_WAIT(atomic_load(&h_reg.closed) >= 1, 5000,
           "the connection to time out: %d MiB queued to a peer that never reads, "
           "write_timeout_ms = %d (%s%s)", WT_BIG / MIB, WT_MS, kind_name(var[_i].kind),
           var[_i].cmd ? var[_i].cmd : ", written in opened()");
    h_conn f = h_reg_get(0);
    char what[96];
    snprintf(what, sizeof what, "%s, %s", kind_name(var[_i].kind),
             var[_i].cmd ? var[_i].cmd : "written in opened()");
    ck_assert_msg(f.ndetached == 0, "%s: detached() fired although the flush never finished",
                  what);
    expect_timed_out(f, var[_i].cmd ? f.mark_ns : f.opened_ns, WT_MS, what);
    evio_stats s = h_stats(&hs);
    ck_assert_msg(s.timeouts == 1, "stats.timeouts = %llu after one write timeout",
                  (unsigned long long)s.timeouts);
    expect_no_output_buffers(&hs, "after the timed-out connection closed");
    close(fd);
    h_server_stop(&hs);
    h_log_check_sequences(true);
    free(payload);
}
END_TEST

#define SR_SEED 5u

/* When the server's queue first went empty (postwrite with remaining 0). */
static evio_action sr_postwrite(evio_conn *c, size_t written, size_t remaining)
{
    (void)written;
    h_conn *f = h_reg_lock(c);
    if (f) {
        if (remaining == 0 && f->mark_ns == 0)
            f->mark_ns = h_now_ns();
        if (remaining > f->max_pending)
            f->max_pending = remaining;
        h_reg_unlock();
    }
    return EVIO_NONE;
}

/* A slow peer that keeps taking bytes (tcp: at most 256 KiB every 100 ms,
 * 8 MiB, over 3 s; unix: 96 KiB, 2 MiB, over 2 s; while evio's queue stays
 * non-empty for longer than the 500 ms write timeout, which the test
 * checks) is never cut and gets every byte.  _i: tcp, unix. */
START_TEST(test_write_timeout_spares_slow_reader)
{
    const int T = 500;
    const int kind = _i == 0 ? K_TCP : K_UNIX;
    /* Loopback TCP: the kernel takes ~4 MB at once; unix sockets ~200 KiB. */
    const size_t SR_TOTAL = kind == K_TCP ? 8 * MIB : 2 * MIB;
    const size_t SR_PER_TICK = kind == K_TCP ? 256 * KIB : 96 * KIB;
    kaddr ka;
    kaddr_init(&ka, kind);
    h_reg_reset();
    memset(&wt, 0, sizeof wt);
    uint8_t *payload = h_xmalloc(SR_TOTAL), *in = h_xmalloc(SR_TOTAL);
    h_fill(payload, SR_TOTAL, SR_SEED);
    big.payload = payload;
    big.len = SR_TOTAL;
    wt.write_in_opened = true;
    evio_events ev = {.opened = wt_opened, .data = wt_data, .closed = h_reg_closed,
                      .postwrite = sr_postwrite, .write_timeout_ms = T};
    const char *addrs[] = {ka.addr};
    h_server hs = {0};
    h_start(&hs, &ev, addrs, 1);

    int fd = h_client(&hs, 0, 32 * KIB);
    set_nonblock(fd, true);
    int64_t t0 = h_now_ms(), deadline = t0 + 60000LL * h_slow;
    size_t got = 0;
    while (got < SR_TOTAL) {
        ck_assert_msg(h_now_ms() < deadline, "slow reader: only %zu of %zu bytes", got,
                      SR_TOTAL);
        size_t budget = SR_PER_TICK;
        while (budget > 0 && got < SR_TOTAL) {
            size_t want = SR_TOTAL - got < budget ? SR_TOTAL - got : budget;
            ssize_t n = recv(fd, in + got, want, 0);
            if (n > 0) {
                got += (size_t)n;
                budget -= (size_t)n;
                continue;
            }
            if (n < 0 && (errno == EAGAIN || errno == EINTR))
                break;
            h_conn f = atomic_load(&h_reg.opened) ? h_reg_get(0) : (h_conn){0};
            ck_abort_msg("slow reader (%s, write_timeout_ms %d, reading %zu bytes every "
                         "100 ms): the server ended the connection after %zu of %zu bytes, "
                         "%lld ms in (%s; closed(err = %d, %s)); the peer kept taking bytes "
                         "(the kernel's send buffer may hide that progress from evio: the "
                         "socket reports writable only once a third of it is free)",
                         kind_name(kind), T, SR_PER_TICK, got, SR_TOTAL,
                         (long long)(h_now_ms() - t0), n == 0 ? "EOF" : strerror(errno),
                         f.err, evio_strerror(f.err));
        }
        if (got < SR_TOTAL)
            h_sleep_ms(100);
    }
    int64_t elapsed = h_now_ms() - t0;
    size_t d = h_mismatch(in, SR_TOTAL, SR_SEED);
    ck_assert_msg(d == (size_t)-1, "slow reader: the bytes differ at %zu", d);
    ck_assert_msg(elapsed > T, "the slow read took %lld ms, not longer than the %d ms timeout: "
                  "the test proves nothing", (long long)elapsed, T);
    h_conn f = h_reg_get(0);
    ck_assert_msg(f.nclosed == 0, "the slow reader's connection was closed (err %d)", f.err);
    ck_assert_msg(f.mark_ns != 0 && f.mark_ns - f.opened_ns > (int64_t)T * MS,
                  "evio's queue was empty %.1f ms after opened(), not longer than the %d ms "
                  "write timeout (the kernel took the rest): the test proves nothing",
                  f.mark_ns ? (double)(f.mark_ns - f.opened_ns) / MS : -1.0, T);
    ck_assert_msg(h_stats(&hs).timeouts == 0, "stats.timeouts counts a timeout");
    close(fd);
    h_reg_wait_closed(1);
    f = h_reg_get(0);
    ck_assert_msg(f.err == 0, "closed(err = %d, %s) after the peer closed", f.err,
                  evio_strerror(f.err));
    h_server_stop(&hs);
    h_log_check_sequences(true);
    printf("%s[%s]: %zu bytes in %lld ms with a %d ms write timeout; evio's queue held up to "
           "%zu bytes and emptied after %.0f ms\n", tcase_name(), kind_name(kind), SR_TOTAL,
           (long long)elapsed, T, f.max_pending, (double)(f.mark_ns - f.opened_ns) / MS);
    free(payload);
    free(in);
}
END_TEST

/* evio_conn_set_write_timeout overrides the server's: four listeners, a
 * never-reading peer on each, server write_timeout_ms = 250.  L0 keeps the
 * server's (times out), L1 sets -1 (never times out), L2 sets 1000 (times
 * out, not before 1 s), L3 sets -1 then 0 (back to the server's). */
START_TEST(test_write_timeout_per_connection)
{
    const int T = 250, LONG = 1000;
    h_reg_reset();
    memset(&wt, 0, sizeof wt);
    uint8_t *payload = h_xmalloc(WT_BIG);
    memset(payload, 'p', WT_BIG);
    big.payload = payload;
    big.len = WT_BIG;
    wt.write_in_opened = true;
    wt.nset[1] = 1;
    wt.set[1][0] = -1;
    wt.nset[2] = 1;
    wt.set[2][0] = LONG;
    wt.nset[3] = 2;
    wt.set[3][0] = -1;
    wt.set[3][1] = 0;
    evio_events ev = {.opened = wt_opened, .data = wt_data, .closed = h_reg_closed,
                      .write_timeout_ms = T};
    const char *addrs[] = {"tcp://127.0.0.1:0", "tcp://127.0.0.1:0", "tcp://127.0.0.1:0",
                           "tcp://127.0.0.1:0"};
    h_server hs = {0};
    h_start(&hs, &ev, addrs, 4);
    int fds[4];
    for (int l = 0; l < 4; l++) {
        fds[l] = h_client(&hs, (size_t)l, 16 * KIB);
        h_reg_wait_opened(l + 1);
    }
    H_WAIT(atomic_load(&h_reg.closed) >= 3, 5000, "L0, L2 and L3 to time out (%d closed)",
           atomic_load(&h_reg.closed));
    h_conn f[4];
    for (int l = 0; l < 4; l++) {
        f[l] = h_reg_get(h_reg_by_listener(l));
        for (int k = 0; k < wt.nset[l]; k++)
            ck_assert_msg(f[l].rc[k] == 0, "L%d: evio_conn_set_write_timeout(c, %d): %d (%s)",
                          l, wt.set[l][k], f[l].rc[k], evio_strerror(f[l].rc[k]));
    }
    expect_timed_out(f[0], f[0].opened_ns, T, "L0 (the server's 250 ms)");
    expect_timed_out(f[2], f[2].opened_ns, LONG, "L2 (its own 1000 ms)");
    expect_timed_out(f[3], f[3].opened_ns, T, "L3 (-1, then 0: the server's 250 ms)");
    ck_assert_msg(f[1].nclosed == 0, "L1 (write timeout off with -1) was closed (err %d, %s)",
                  f[1].err, evio_strerror(f[1].err));
    /* L1 outlived the others' timeouts by far: give it some more. */
    h_sleep_ms(2 * T);
    ck_assert_msg(h_reg_get(h_reg_by_listener(1)).nclosed == 0,
                  "L1 (write timeout off) was closed %d ms after the others timed out", 2 * T);
    evio_stats s = h_stats(&hs);
    ck_assert_msg(s.timeouts == 3, "stats.timeouts = %llu after three write timeouts",
                  (unsigned long long)s.timeouts);
    for (int l = 0; l < 4; l++)
        close(fds[l]);
    h_reg_wait_closed(4);
    h_server_stop(&hs);
    h_log_check_sequences(true);
    free(payload);
}
END_TEST

/* ================================================================ 4. deadlines */

/* A client that keeps talking: every tick it sends "x" and swallows what
 * came back, until the server ends the connection. */
typedef struct chatter {
    int fd;
    bool ended;
    int64_t ended_ns;
    size_t sent, recvd;
} chatter;

static void chat_tick(chatter *ch)
{
    if (ch->ended)
        return;
    if (send(ch->fd, "x", 1, MSG_NOSIGNAL | MSG_DONTWAIT) == 1)
        ch->sent++;
    char buf[256];
    for (;;) {
        ssize_t n = recv(ch->fd, buf, sizeof buf, MSG_DONTWAIT);
        if (n > 0) {
            ch->recvd += (size_t)n;
            continue;
        }
        if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
            ch->ended = true;
            ch->ended_ns = h_now_ns();
        }
        return;
    }
}

enum { DL_FIRES, DL_CANCELLED, DL_REPLACED, DL_N };
#define DL_MS 200
#define DL_SHORT 100
#define DL_LONG 700

static evio_action dl_opened(evio_conn *c, const evio_info *info)
{
    h_reg_open(c, info);
    switch (info->listener) {
    case DL_FIRES:
        h_reg_rc(c, 0, evio_conn_set_deadline(c, -1));
        h_reg_rc(c, 1, evio_conn_set_deadline(c, DL_MS));
        break;
    case DL_CANCELLED:
        h_reg_rc(c, 0, evio_conn_set_deadline(c, DL_MS));
        h_reg_rc(c, 1, evio_conn_set_deadline(c, 0));
        break;
    case DL_REPLACED:
        h_reg_rc(c, 0, evio_conn_set_deadline(c, DL_SHORT));
        h_reg_rc(c, 1, evio_conn_set_deadline(c, DL_LONG));
        break;
    }
    return EVIO_NONE;
}

/* evio_conn_set_deadline closes a connection however busy it is: three
 * chatty clients (input every 20 ms).  L0: 200 ms fires with -ETIMEDOUT (a
 * negative ms first says EVIO_EINVAL); L1: 200 then 0 never fires; L2: 100
 * then 700 fires at 700 (a new call replaces the old).  stats.timeouts. */
START_TEST(test_deadline_closes_chatty_connection)
{
    h_reg_reset();
    evio_events ev = {.opened = dl_opened, .data = h_data_echo, .closed = h_reg_closed};
    const char *addrs[] = {"tcp://127.0.0.1:0", "tcp://127.0.0.1:0", "tcp://127.0.0.1:0"};
    h_server hs = {0};
    h_start(&hs, &ev, addrs, DL_N);
    chatter ch[DL_N];
    for (int l = 0; l < DL_N; l++) {
        ch[l] = (chatter){.fd = h_client(&hs, (size_t)l, 0)};
        h_reg_wait_opened(l + 1);
    }
    int64_t deadline = h_now_ms() + 5000LL * h_slow;
    while ((!ch[DL_FIRES].ended || !ch[DL_REPLACED].ended) && h_now_ms() < deadline) {
        for (int l = 0; l < DL_N; l++)
            chat_tick(&ch[l]);
        h_sleep_ms(20);
    }
    /* The clients may see EOF a moment before closed() has run. */
    bool ok;
    H_WAIT_FOR(ok, h_reg_get(h_reg_by_listener(DL_FIRES)).nclosed == 1 &&
                       h_reg_get(h_reg_by_listener(DL_REPLACED)).nclosed == 1, 2000);
    (void)ok;
    h_conn f0 = h_reg_get(h_reg_by_listener(DL_FIRES));
    h_conn f1 = h_reg_get(h_reg_by_listener(DL_CANCELLED));
    h_conn f2 = h_reg_get(h_reg_by_listener(DL_REPLACED));
    ck_assert_msg(f0.rc[0] == EVIO_EINVAL, "evio_conn_set_deadline(c, -1) returned %d (%s), "
                  "expected EVIO_EINVAL", f0.rc[0], evio_strerror(f0.rc[0]));
    ck_assert_msg(f0.rc[1] == 0 && f1.rc[0] == 0 && f1.rc[1] == 0 && f2.rc[0] == 0 &&
                      f2.rc[1] == 0,
                  "evio_conn_set_deadline returned %d, %d, %d, %d, %d", f0.rc[1], f1.rc[0],
                  f1.rc[1], f2.rc[0], f2.rc[1]);
    ck_assert_msg(ch[DL_FIRES].ended && f0.nclosed == 1,
                  "a chatty connection with a %d ms deadline was not closed within 5 s "
                  "(closed %d)", DL_MS, f0.nclosed);
    expect_timed_out(f0, f0.opened_ns, DL_MS, "the 200 ms deadline");
    ck_assert_msg(ch[DL_REPLACED].ended && f2.nclosed == 1,
                  "a connection whose deadline was replaced by 700 ms was not closed "
                  "within 5 s");
    expect_timed_out(f2, f2.opened_ns, DL_LONG, "the deadline replaced by 700 ms");
    ck_assert_msg(!ch[DL_CANCELLED].ended && f1.nclosed == 0,
                  "a cancelled deadline closed its connection (err %d, %s) %.1f ms after "
                  "opened", f1.err, evio_strerror(f1.err),
                  (double)(f1.closed_ns - f1.opened_ns) / MS);
    /* Swallow the echoes still on their way, then one more round trip. */
    {
        chatter *c1 = &ch[DL_CANCELLED];
        char sink[256];
        ck_assert(c1->sent >= c1->recvd && c1->sent - c1->recvd <= sizeof sink);
        h_recv_exact(c1->fd, sink, c1->sent - c1->recvd);
        h_echo_check(c1->fd, "still open");
    }
    evio_stats s = h_stats(&hs);
    ck_assert_msg(s.timeouts == 2, "stats.timeouts = %llu after two deadlines fired",
                  (unsigned long long)s.timeouts);
    for (int l = 0; l < DL_N; l++)
        close(ch[l].fd);
    h_reg_wait_closed(DL_N);
    ck_assert_msg(h_reg_get(h_reg_by_listener(DL_CANCELLED)).err == 0,
                  "the cancelled connection closed by its peer: err %d",
                  h_reg_get(h_reg_by_listener(DL_CANCELLED)).err);
    h_server_stop(&hs);
    h_log_check_sequences(true);
}
END_TEST

/* A pass-through translator whose open() sets a deadline (its udata: the
 * ms) and whose first input cancels it, like a handshake deadline. */
typedef struct dlx_state {
    bool got_input;
} dlx_state;

static int dlx_open(const evio_translator *t, evio_conn *c, void **state)
{
    int ms = *(const int *)t->udata;
    int rc = evio_translator_set_deadline(c, -1);
    H_EXPECT(rc == EVIO_EINVAL, "evio_translator_set_deadline(c, -1): %d (%s), expected "
             "EVIO_EINVAL", rc, evio_strerror(rc));
    rc = evio_translator_set_deadline(c, ms);
    H_EXPECT(rc == 0, "evio_translator_set_deadline(c, %d): %d (%s)", ms, rc,
             evio_strerror(rc));
    dlx_state *st = calloc(1, sizeof *st);
    if (!st)
        return -ENOMEM;
    *state = st;
    return 0;
}

static int dlx_input(void *state, evio_conn *c, const void *wire, size_t len)
{
    dlx_state *st = state;
    if (!st->got_input) {
        st->got_input = true;
        int rc = evio_translator_set_deadline(c, 0);
        H_EXPECT(rc == 0, "evio_translator_set_deadline(c, 0): %d (%s)", rc, evio_strerror(rc));
    }
    int rc = evio_translator_deliver(c, wire, len);
    return rc == EVIO_ESHUTDOWN ? 0 : rc;
}

static int dlx_output(void *state, evio_conn *c, const void *data, size_t len)
{
    (void)state;
    return evio_translator_send(c, data, len);
}

static int dlx_finish(void *state, evio_conn *c)
{
    (void)state, (void)c;
    return 0;
}

static void dlx_free(void *state) { free(state); }

/* Listeners: L0 silent, translator 200 ms; L1 chatty, translator 1000 ms
 * (cancelled by the first input), application 1500 ms; L2 silent,
 * translator 200 ms, application (set after it) a long one. */
enum { DX_SILENT, DX_BOTH, DX_APP_LONG, DX_N };
static int dx_ms[DX_N];
static evio_translator dx_tr[DX_N];

static const evio_translator *dx_translate(evio_conn *c, const evio_info *info)
{
    (void)c;
    return info->listener >= 0 && info->listener < DX_N ? &dx_tr[info->listener] : NULL;
}

static struct {
    int app_both, app_long;
} dxa;

static evio_action dx_opened(evio_conn *c, const evio_info *info)
{
    h_reg_open(c, info);
    if (info->listener == DX_BOTH)
        h_reg_rc(c, 0, evio_conn_set_deadline(c, dxa.app_both));
    else if (info->listener == DX_APP_LONG)
        h_reg_rc(c, 0, evio_conn_set_deadline(c, dxa.app_long));
    return EVIO_NONE;
}

/* evio_translator_set_deadline: set in the translator's open() (before
 * opened()), it closes a silent connection with -ETIMEDOUT after opened();
 * the translator's deadline and the application's are independent: the
 * application's does not replace the translator's, and the translator
 * cancelling its own leaves the application's in force. */
START_TEST(test_translator_deadline_independent)
{
    h_reg_reset();
    const int tr_short = 200, tr_both = 1000 * h_slow;
    dxa.app_both = 1500 * h_slow;
    dxa.app_long = 20000 * h_slow;
    dx_ms[DX_SILENT] = tr_short;
    dx_ms[DX_BOTH] = tr_both;
    dx_ms[DX_APP_LONG] = tr_short;
    for (int l = 0; l < DX_N; l++)
        dx_tr[l] = (evio_translator){.udata = &dx_ms[l], .open = dlx_open, .input = dlx_input,
                                     .output = dlx_output, .finish = dlx_finish,
                                     .free = dlx_free};
    evio_events ev = {.opened = dx_opened, .data = h_data_echo, .closed = h_reg_closed,
                      .translate = dx_translate};
    const char *addrs[] = {"tcp://127.0.0.1:0", "tcp://127.0.0.1:0", "tcp://127.0.0.1:0"};
    h_server hs = {0};
    h_start(&hs, &ev, addrs, DX_N);
    chatter ch[DX_N];
    for (int l = 0; l < DX_N; l++) {
        ch[l] = (chatter){.fd = h_client(&hs, (size_t)l, 0)};
        if (l == DX_BOTH)
            chat_tick(&ch[l]); /* the first input comes at once */
        h_reg_wait_opened(l + 1);
    }
    int64_t deadline = h_now_ms() + 5000LL * h_slow;
    while (atomic_load(&h_reg.closed) < DX_N && h_now_ms() < deadline) {
        chat_tick(&ch[DX_BOTH]);
        h_sleep_ms(20);
    }
    h_conn f[DX_N];
    for (int l = 0; l < DX_N; l++)
        f[l] = h_reg_get(h_reg_by_listener(l));
    ck_assert_msg(f[DX_BOTH].rc[0] == 0 && f[DX_APP_LONG].rc[0] == 0,
                  "evio_conn_set_deadline on a translated connection: %d, %d",
                  f[DX_BOTH].rc[0], f[DX_APP_LONG].rc[0]);
    ck_assert_msg(f[DX_SILENT].nclosed == 1, "a silent connection whose translator set a %d "
                  "ms deadline in open() was not closed within 5 s", tr_short);
    expect_timed_out(f[DX_SILENT], f[DX_SILENT].opened_ns, tr_short - 10,
                     "the translator's deadline");
    ck_assert_msg(f[DX_APP_LONG].nclosed == 1,
                  "the translator's %d ms deadline did not fire within 5 s on a connection "
                  "whose application set its own (%d ms) after it: did the application's "
                  "replace the translator's?", tr_short, dxa.app_long);
    expect_timed_out(f[DX_APP_LONG], f[DX_APP_LONG].opened_ns, tr_short - 10,
                     "the translator's deadline beside a longer application deadline");
    ck_assert_msg(f[DX_BOTH].nclosed == 1,
                  "the application's %d ms deadline did not fire within 5 s after the "
                  "translator cancelled its own: did the translator's cancel clear the "
                  "application's?", dxa.app_both);
    expect_timed_out(f[DX_BOTH], f[DX_BOTH].opened_ns, dxa.app_both,
                     "the application's deadline (the translator's was cancelled)");
    evio_stats s = h_stats(&hs);
    ck_assert_msg(s.timeouts == 3, "stats.timeouts = %llu after three deadlines",
                  (unsigned long long)s.timeouts);
    for (int l = 0; l < DX_N; l++)
        close(ch[l].fd);
    h_server_stop(&hs);
    h_log_check_sequences(true);
}
END_TEST

/* ================================================================ 5. half-close */

/* eof == NULL: the peer's shutdown(SHUT_WR) makes evio flush and close, as
 * Go evio does.  _i: tcp, unix, tcp6. */
START_TEST(test_half_close_default_flushes_and_closes)
{
    static const int kinds[] = {K_TCP, K_UNIX, K_TCP6};
    kaddr ka;
    if (!kaddr_init(&ka, kinds[_i]))
        return;
    h_reg_reset();
    evio_events ev = {.opened = h_reg_opened, .data = h_data_echo, .closed = h_reg_closed};
    const char *addrs[] = {ka.addr};
    h_server hs = {0};
    h_start(&hs, &ev, addrs, 1);
    for (int k = 0; k < 3; k++) {
        int fd = h_connect(&hs, 0);
        h_send_all(fd, "ping", 4);
        ck_assert_int_eq(shutdown(fd, SHUT_WR), 0);
        char buf[16];
        size_t n = h_recv_until_eof(fd, buf, sizeof buf);
        ck_assert_msg(n == 4 && memcmp(buf, "ping", 4) == 0,
                      "%s: got %zu bytes \"%.*s\" before EOF, expected \"ping\"",
                      kind_name(kinds[_i]), n, (int)n, buf);
        h_reg_wait_closed(k + 1);
        h_conn f = h_reg_get(k);
        ck_assert_msg(f.err == 0, "closed(err = %d, %s) after the peer's half-close", f.err,
                      evio_strerror(f.err));
        close(fd);
    }
    h_server_stop(&hs);
    h_log_check_sequences(true);
}
END_TEST

/* The eof event set: the connection stays open for writing and the
 * application answers later. */
enum { HC_SEND_CLOSE, HC_WAKE_WRITE_CLOSE, HC_EOF_CLOSE };

static struct {
    int how;
    evio_server *srv;
    atomic_bool stop;
    atomic_int replies;
    int delay_ms;
} hc;

static size_t hc_reply(char *buf, size_t size, const h_conn *f)
{
    return (size_t)snprintf(buf, size, "reply:%.*s", (int)f->reqlen, f->req);
}

static evio_action hc_data(evio_conn *c, const void *in, size_t len)
{
    if (in) {
        h_conn *f = h_reg_lock(c);
        bool after_eof = f && f->neof > 0;
        if (f)
            h_reg_unlock();
        H_EXPECT(!after_eof, "data() with %zu bytes after eof()", len);
        h_log(c, H_DATA, (int64_t)len);
        h_reg_note_input(c, in, len);
        return EVIO_NONE;
    }
    /* A wake: answer, then close (HC_WAKE_WRITE_CLOSE). */
    h_log(c, H_WAKE, 0);
    char reply[128];
    size_t n = 0;
    bool due = false;
    h_conn *f = h_reg_lock(c);
    if (f) {
        due = f->neof > 0 && !f->flag;
        if (due) {
            f->flag = true;
            n = hc_reply(reply, sizeof reply, f);
        }
        h_reg_unlock();
    }
    H_EXPECT(hc.how == HC_WAKE_WRITE_CLOSE && due, "an unexpected wake");
    if (!due)
        return EVIO_NONE;
    int rc = evio_write(c, reply, n);
    H_EXPECT(rc == 0, "evio_write after eof(): %d (%s)", rc, evio_strerror(rc));
    atomic_fetch_add(&hc.replies, 1);
    return EVIO_CLOSE;
}

static evio_action hc_eof(evio_conn *c)
{
    char reply[128];
    size_t n = 0;
    h_conn *f = h_reg_lock(c);
    if (f) {
        f->neof++;
        f->eof_ns = h_now_ns();
        n = hc_reply(reply, sizeof reply, f);
        h_reg_unlock();
    }
    if (hc.how != HC_EOF_CLOSE)
        return EVIO_NONE;
    int rc = evio_write(c, reply, n);
    H_EXPECT(rc == 0, "evio_write in eof(): %d (%s)", rc, evio_strerror(rc));
    atomic_fetch_add(&hc.replies, 1);
    return EVIO_CLOSE;
}

/* Another thread: delay_ms after a connection's eof, answer it with
 * evio_send + evio_close, or wake it (it answers itself). */
static void *hc_replier(void *arg)
{
    (void)arg;
    if (hc.how == HC_EOF_CLOSE)
        return NULL; /* eof() answers by itself */
    while (!atomic_load(&hc.stop)) {
        int64_t now = h_now_ns();
        uint64_t id = 0;
        char reply[128];
        size_t n = 0;
        pthread_mutex_lock(&h_reg.mu);
        for (int i = 0; i < h_reg.n && !id; i++) {
            h_conn *f = &h_reg.c[i];
            if (f->neof > 0 && !f->flag && !f->woken && now - f->eof_ns >= hc.delay_ms * MS) {
                id = f->id;
                if (hc.how == HC_SEND_CLOSE) {
                    f->flag = true;
                    n = hc_reply(reply, sizeof reply, f);
                } else {
                    f->woken = true; /* once: wakes are never lost */
                }
            }
        }
        pthread_mutex_unlock(&h_reg.mu);
        if (!id) {
            h_sleep_ms(5);
            continue;
        }
        if (hc.how == HC_SEND_CLOSE) {
            int rc = evio_send(hc.srv, id, reply, n);
            H_EXPECT(rc == 0, "evio_send to a half-closed connection: %d (%s)", rc,
                     evio_strerror(rc));
            rc = evio_close(hc.srv, id);
            H_EXPECT(rc == 0, "evio_close of a half-closed connection: %d (%s)", rc,
                     evio_strerror(rc));
            atomic_fetch_add(&hc.replies, 1);
        } else {
            int rc = evio_wake(hc.srv, id);
            H_EXPECT(rc == 0, "evio_wake of a half-closed connection: %d (%s)", rc,
                     evio_strerror(rc));
        }
    }
    return NULL;
}

#define HC_CONNS 10

/* With eof set and returning EVIO_NONE, a peer that sent its request and
 * shut down its write side still gets an answer written later (~100 ms
 * after eof) from another thread with evio_send + evio_close, or through a
 * wake whose data(NULL, 0) writes and returns EVIO_CLOSE; or eof() itself
 * writes and returns EVIO_CLOSE.  10 connections at once, all answered, in
 * full, then EOF; closed(c, 0) once each.
 * _i: 0 tcp send+close, 1 unix send+close, 2 tcp wake, 3 tcp eof CLOSE. */
START_TEST(test_half_close_reply_later)
{
    static const struct {
        int kind, how;
    } var[] = {{K_TCP, HC_SEND_CLOSE}, {K_UNIX, HC_SEND_CLOSE}, {K_TCP, HC_WAKE_WRITE_CLOSE},
               {K_TCP, HC_EOF_CLOSE}};
    kaddr ka;
    kaddr_init(&ka, var[_i].kind);
    h_reg_reset();
    memset(&hc, 0, sizeof hc);
    hc.how = var[_i].how;
    hc.delay_ms = 100;
    evio_events ev = {.opened = h_reg_opened, .data = hc_data, .closed = h_reg_closed,
                      .eof = hc_eof};
    const char *addrs[] = {ka.addr};
    h_server hs = {0};
    h_start(&hs, &ev, addrs, 1);
    hc.srv = h_srv(&hs);
    pthread_t replier;
    ck_assert_int_eq(pthread_create(&replier, NULL, hc_replier, NULL), 0);

    int fds[HC_CONNS];
    for (int k = 0; k < HC_CONNS; k++) {
        char req[32];
        int n = snprintf(req, sizeof req, "req-%d", k);
        fds[k] = h_connect(&hs, 0);
        h_send_all(fds[k], req, (size_t)n);
        ck_assert_int_eq(shutdown(fds[k], SHUT_WR), 0);
    }
    for (int k = 0; k < HC_CONNS; k++) {
        char want[64], buf[64];
        int wn = snprintf(want, sizeof want, "reply:req-%d", k);
        size_t n = h_recv_until_eof(fds[k], buf, sizeof buf);
        ck_assert_msg(n == (size_t)wn && memcmp(buf, want, n) == 0,
                      "client %d (%s): got \"%.*s\" before EOF, expected \"%s\"", k,
                      kind_name(var[_i].kind), (int)n, buf, want);
    }
    h_reg_wait_closed(HC_CONNS);
    atomic_store(&hc.stop, true);
    pthread_join(replier, NULL);
    ck_assert_int_eq(atomic_load(&hc.replies), HC_CONNS);
    for (int k = 0; k < HC_CONNS; k++) {
        h_conn f = h_reg_get(k);
        ck_assert_msg(f.neof == 1, "connection %d: eof() fired %d times", k, f.neof);
        ck_assert_msg(f.nclosed == 1 && f.err == 0, "connection %d: closed %d times, err %d "
                      "(%s)", k, f.nclosed, f.err, evio_strerror(f.err));
        if (hc.how != HC_EOF_CLOSE)
            ck_assert_msg(f.closed_ns - f.eof_ns >= (hc.delay_ms - 5) * MS,
                          "connection %d closed %.1f ms after eof(), before the answer due "
                          "%d ms later", k, (double)(f.closed_ns - f.eof_ns) / MS,
                          hc.delay_ms);
    }
    for (int k = 0; k < HC_CONNS; k++)
        close(fds[k]);
    expect_no_output_buffers(&hs, "after the half-closed connections closed");
    h_server_stop(&hs);
    h_log_check_sequences(true);
}
END_TEST

/* evio_conn_shutdown_write: data() answers "bye?" with "bye" and finishes
 * its direction; evio_write then fails with EVIO_ESHUTDOWN.  */
static evio_action sw_data(evio_conn *c, const void *in, size_t len)
{
    if (!in)
        return EVIO_NONE;
    h_log(c, H_DATA, (int64_t)len);
    h_reg_note_input(c, in, len);
    h_conn *f = h_reg_lock(c);
    bool first = false, shut = false;
    if (f) {
        shut = f->flag;
        first = !f->flag && f->reqlen >= 4 && memcmp(f->req, "bye?", 4) == 0;
        if (first)
            f->flag = true;
        h_reg_unlock();
    }
    if (first) {
        int rc = evio_write(c, "bye", 3);
        H_EXPECT(rc == 0, "evio_write: %d (%s)", rc, evio_strerror(rc));
        h_reg_rc(c, 0, evio_conn_shutdown_write(c));
        h_reg_rc(c, 1, evio_write(c, "late", 4));
    } else if (shut) {
        h_reg_rc(c, 2, evio_write(c, in, len));
    }
    return EVIO_NONE;
}

static evio_action sw_eof(evio_conn *c)
{
    h_conn *f = h_reg_lock(c);
    if (f) {
        f->neof++;
        f->eof_ns = h_now_ns();
        h_reg_unlock();
    }
    return EVIO_NONE;
}

/* After evio_conn_shutdown_write the peer reads "bye" then EOF while the
 * connection stays open; the peer can still send and data() still fires;
 * evio_write says EVIO_ESHUTDOWN; once the peer shuts down its side too the
 * connection closes by itself: closed(c, 0).
 * _i: 0 tcp with eof set, 1 unix with eof set, 2 tcp with eof NULL. */
START_TEST(test_shutdown_write)
{
    const int kind = _i == 1 ? K_UNIX : K_TCP;
    const bool with_eof = _i != 2;
    kaddr ka;
    kaddr_init(&ka, kind);
    h_reg_reset();
    evio_events ev = {.opened = h_reg_opened, .data = sw_data, .closed = h_reg_closed,
                      .eof = with_eof ? sw_eof : NULL};
    const char *addrs[] = {ka.addr};
    h_server hs = {0};
    h_start(&hs, &ev, addrs, 1);

    int fd = h_connect(&hs, 0);
    h_send_all(fd, "bye?", 4);
    char buf[8];
    h_recv_exact(fd, buf, 3);
    ck_assert_msg(memcmp(buf, "bye", 3) == 0, "got \"%.3s\", expected \"bye\"", buf);
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    ck_assert_msg(n == 0, "after \"bye\" and evio_conn_shutdown_write, recv returned %zd (%s), "
                  "expected EOF", n, n < 0 ? strerror(errno) : "more bytes");
    h_conn f = h_reg_get(0);
    ck_assert_msg(f.rc[0] == 0, "evio_conn_shutdown_write: %d (%s)", f.rc[0],
                  evio_strerror(f.rc[0]));
    ck_assert_msg(f.rc[1] == EVIO_ESHUTDOWN, "evio_write after evio_conn_shutdown_write "
                  "returned %d (%s), expected EVIO_ESHUTDOWN", f.rc[1], evio_strerror(f.rc[1]));
    ck_assert_msg(f.nclosed == 0, "the connection closed (err %d) when only our side was "
                  "finished", f.err);

    /* Our side is finished; the peer's is not. */
    h_send_all(fd, "more", 4);
    H_WAIT((f = h_reg_get(0)).in == 8, 5000, "data() for the peer's bytes after our "
           "shutdown_write (the server got %zu of 8 bytes; closed %d)", f.in, f.nclosed);
    ck_assert_msg(memcmp(f.req, "bye?more", 8) == 0, "the server got \"%.*s\"",
                  (int)f.reqlen, f.req);
    H_WAIT((f = h_reg_get(0)).rc[2] != 1, 5000, "data() to try evio_write");
    ck_assert_msg(f.rc[2] == EVIO_ESHUTDOWN, "evio_write in a later data() returned %d (%s), "
                  "expected EVIO_ESHUTDOWN", f.rc[2], evio_strerror(f.rc[2]));
    h_sleep_ms(50);
    ck_assert_msg(h_reg_get(0).nclosed == 0, "closed before the peer finished its side");

    /* The peer finishes: both directions done, the connection closes. */
    ck_assert_int_eq(shutdown(fd, SHUT_WR), 0);
    h_reg_wait_closed(1);
    f = h_reg_get(0);
    ck_assert_msg(f.err == 0, "closed(err = %d, %s), expected 0 once both sides finished",
                  f.err, evio_strerror(f.err));
    if (with_eof)
        ck_assert_msg(f.neof == 1, "eof() fired %d times", f.neof);
    n = recv(fd, buf, sizeof buf, 0);
    ck_assert_msg(n == 0, "recv after the close: %zd", n);
    close(fd);
    expect_no_output_buffers(&hs, "after the close");
    h_server_stop(&hs);
    h_log_check_sequences(true);
}
END_TEST

/* A pass-through translator whose finish() says "<fin>" (like TLS's
 * close_notify), counting its calls. */
static atomic_int fin_calls;

static int fin_open(const evio_translator *t, evio_conn *c, void **state)
{
    (void)t, (void)c;
    *state = NULL;
    return 0;
}

static int fin_input(void *state, evio_conn *c, const void *wire, size_t len)
{
    (void)state;
    int rc = evio_translator_deliver(c, wire, len);
    return rc == EVIO_ESHUTDOWN ? 0 : rc;
}

static int fin_finish(void *state, evio_conn *c)
{
    (void)state;
    atomic_fetch_add(&fin_calls, 1);
    return evio_translator_send(c, "<fin>", 5);
}

static void fin_free(void *state) { (void)state; }

static const evio_translator fin_tr = {.open = fin_open, .input = fin_input,
                                       .output = dlx_output, .finish = fin_finish,
                                       .free = fin_free};

static const evio_translator *fin_translate(evio_conn *c, const evio_info *info)
{
    (void)c, (void)info;
    return &fin_tr;
}

/* On a translated connection evio_conn_shutdown_write runs the translator's
 * finish() first (its last words reach the peer before EOF), and only once:
 * not again when the peer's EOF then closes the connection. */
START_TEST(test_shutdown_write_translated_runs_finish_once)
{
    h_reg_reset();
    atomic_store(&fin_calls, 0);
    evio_events ev = {.opened = h_reg_opened, .data = sw_data, .closed = h_reg_closed,
                      .eof = sw_eof, .translate = fin_translate};
    const char *addrs[] = {"tcp://127.0.0.1:0"};
    h_server hs = {0};
    h_start(&hs, &ev, addrs, 1);
    int fd = h_connect(&hs, 0);
    h_send_all(fd, "bye?", 4);
    char buf[32];
    ssize_t n = (ssize_t)h_recv_until_eof(fd, buf, sizeof buf);
    ck_assert_msg(n == 8 && memcmp(buf, "bye<fin>", 8) == 0,
                  "after evio_conn_shutdown_write on a translated connection the peer got "
                  "\"%.*s\" before EOF, expected \"bye<fin>\" (finish() first)", (int)n, buf);
    ck_assert_int_eq(atomic_load(&fin_calls), 1);
    h_conn f = h_reg_get(0);
    ck_assert_msg(f.rc[0] == 0, "evio_conn_shutdown_write: %d (%s)", f.rc[0],
                  evio_strerror(f.rc[0]));
    ck_assert_msg(f.nclosed == 0, "closed (err %d) with only our side finished", f.err);
    h_send_all(fd, "more", 4);
    H_WAIT((f = h_reg_get(0)).in == 8, 5000, "data() after our side finished (got %zu of 8 "
           "bytes)", f.in);
    ck_assert_int_eq(shutdown(fd, SHUT_WR), 0);
    h_reg_wait_closed(1);
    f = h_reg_get(0);
    ck_assert_msg(f.err == 0 && f.neof == 1, "closed(err = %d), eof() %d times", f.err,
                  f.neof);
    ck_assert_msg(atomic_load(&fin_calls) == 1, "finish() ran %d times, expected once",
                  atomic_load(&fin_calls));
    close(fd);
    h_server_stop(&hs);
    h_log_check_sequences(true);
}
END_TEST

/* ================================================================ 6. reset */

#define RST_BIG (4 * MIB)

static evio_action rst_data(evio_conn *c, const void *in, size_t len)
{
    if (in && len >= 5 && memcmp(in, "reset", 5) == 0) {
        h_log(c, H_DATA, (int64_t)len);
        int rc = evio_write(c, big.payload, big.len);
        H_EXPECT(rc == 0, "evio_write: %d (%s)", rc, evio_strerror(rc));
        h_reg_rc(c, 0, evio_conn_reset(c));
        return EVIO_NONE;
    }
    return h_data_echo(c, in, len);
}

/* evio_conn_reset with output queued: the peer's recv fails with
 * ECONNRESET (not a clean EOF) without the queued output, closed() fires
 * once, with 0. */
START_TEST(test_reset_sends_rst)
{
    h_reg_reset();
    uint8_t *payload = h_xmalloc(RST_BIG);
    memset(payload, 'r', RST_BIG);
    big.payload = payload;
    big.len = RST_BIG;
    evio_events ev = {.opened = h_reg_opened, .data = rst_data, .closed = h_reg_closed};
    const char *addrs[] = {"tcp://127.0.0.1:0"};
    h_server hs = {0};
    h_start(&hs, &ev, addrs, 1);

    int fd = h_client(&hs, 0, 16 * KIB);
    h_echo_check(fd, "before");
    h_send_all(fd, "reset", 5);
    h_reg_wait_closed(1);
    size_t got;
    int rc = read_to_end(fd, &got);
    ck_assert_msg(rc == -ECONNRESET, "after evio_conn_reset the peer's recv %s after %zu "
                  "bytes, expected ECONNRESET", rc == 0 ? "saw a clean EOF" : strerror(-rc),
                  got);
    ck_assert_msg(got < RST_BIG, "the peer got all %zu bytes queued before the reset: queued "
                  "output must be dropped", got);
    h_conn f = h_reg_get(0);
    ck_assert_msg(f.rc[0] == 0, "evio_conn_reset: %d (%s)", f.rc[0], evio_strerror(f.rc[0]));
    ck_assert_msg(f.err == 0, "closed(err = %d, %s) after evio_conn_reset, expected 0", f.err,
                  evio_strerror(f.err));
    h_sleep_ms(50);
    ck_assert_int_eq(h_reg_get(0).nclosed, 1);
    expect_no_output_buffers(&hs, "after the reset dropped the queue");
    close(fd);
    h_server_stop(&hs);
    h_log_check_sequences(true);
    free(payload);
}
END_TEST

static evio_action udp_opened(evio_conn *c, const evio_info *info)
{
    h_reg_open(c, info);
    h_reg_rc(c, 0, evio_conn_reset(c));
    h_reg_rc(c, 1, evio_conn_set_high_water(c, 4096));
    h_reg_rc(c, 2, evio_conn_set_write_timeout(c, 100));
    h_reg_rc(c, 3, evio_conn_set_deadline(c, 100));
    h_reg_rc(c, 4, evio_conn_shutdown_write(c));
    return EVIO_NONE;
}

/* A UDP session refuses reset, high water, write timeout, deadline and
 * shutdown_write with EVIO_EUDP, and carries on. */
START_TEST(test_udp_session_refuses_tcp_bounds)
{
    h_reg_reset();
    evio_events ev = {.opened = udp_opened, .data = h_data_echo, .closed = h_reg_closed};
    const char *addrs[] = {"udp://127.0.0.1:0"};
    h_server hs = {0};
    h_start(&hs, &ev, addrs, 1);
    int u = h_udp_client(&hs, 0);
    for (int k = 0; k < 3; k++) {
        char b[8] = {0};
        h_send_all(u, "dg", 2);
        ck_assert_msg(recv(u, b, sizeof b, 0) == 2 && memcmp(b, "dg", 2) == 0,
                      "udp echo %d: %s", k, strerror(errno));
        h_sleep_ms(k == 1 ? 200 : 0); /* past the refused 100 ms deadline */
    }
    h_conn f = h_reg_get(0);
    static const char *const names[] = {"evio_conn_reset", "evio_conn_set_high_water",
                                        "evio_conn_set_write_timeout", "evio_conn_set_deadline",
                                        "evio_conn_shutdown_write"};
    for (int k = 0; k < 5; k++)
        ck_assert_msg(f.rc[k] == EVIO_EUDP, "%s on a UDP session returned %d (%s), expected "
                      "EVIO_EUDP", names[k], f.rc[k], evio_strerror(f.rc[k]));
    ck_assert_msg(f.nclosed == 0, "the UDP session closed (err %d)", f.err);
    ck_assert_int_eq(atomic_load(&h_reg.opened), 1);
    close(u);
    h_server_stop(&hs);
    ck_assert_int_eq(h_reg_get(0).nclosed, 1);
    h_log_check_sequences(true);
}
END_TEST

static evio_action late_closed(evio_conn *c, int err)
{
    h_reg_rc(c, 0, evio_conn_set_high_water(c, 4096));
    h_reg_rc(c, 1, evio_conn_set_write_timeout(c, 100));
    h_reg_rc(c, 2, evio_conn_set_deadline(c, 100));
    h_reg_rc(c, 3, evio_conn_shutdown_write(c));
    h_reg_rc(c, 4, evio_conn_reset(c));
    h_reg_rc(c, 5, evio_write(c, "x", 1));
    return h_reg_closed(c, err);
}

static evio_action late_data(evio_conn *c, const void *in, size_t len)
{
    if (in && len >= 4 && memcmp(in, "quit", 4) == 0)
        return EVIO_CLOSE;
    return h_data_echo(c, in, len);
}

/* Inside closed() every one of the new calls says EVIO_ESHUTDOWN (the peer
 * closed, and we closed). */
START_TEST(test_bounds_calls_in_closed_say_shutdown)
{
    h_reg_reset();
    evio_events ev = {.opened = h_reg_opened, .data = late_data, .closed = late_closed};
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
    static const char *const names[] = {"evio_conn_set_high_water",
                                        "evio_conn_set_write_timeout", "evio_conn_set_deadline",
                                        "evio_conn_shutdown_write", "evio_conn_reset",
                                        "evio_write"};
    for (int i = 0; i < 2; i++) {
        h_conn f = h_reg_get(i);
        for (int k = 0; k < 6; k++)
            ck_assert_msg(f.rc[k] == EVIO_ESHUTDOWN, "%s inside closed() (%s) returned %d "
                          "(%s), expected EVIO_ESHUTDOWN", names[k],
                          i == 0 ? "peer closed" : "EVIO_CLOSE", f.rc[k],
                          evio_strerror(f.rc[k]));
    }
    h_server_stop(&hs);
    h_log_check_sequences(true);
}
END_TEST

/* stats.timeouts counts every close with -ETIMEDOUT: idle ones too. */
START_TEST(test_stats_timeouts_counts_idle)
{
    h_reg_reset();
    evio_events ev = {.opened = h_reg_opened, .data = h_data_echo, .closed = h_reg_closed,
                      .idle_timeout_ms = 100};
    const char *addrs[] = {"tcp://127.0.0.1:0"};
    h_server hs = {0};
    h_start(&hs, &ev, addrs, 1);
    int a = h_connect(&hs, 0), b = h_connect(&hs, 0);
    h_reg_wait_closed(2);
    ck_assert_int_eq(h_reg_get(0).err, -ETIMEDOUT);
    ck_assert_int_eq(h_reg_get(1).err, -ETIMEDOUT);
    evio_stats s = h_stats(&hs);
    ck_assert_msg(s.timeouts == 2, "stats.timeouts = %llu after two idle timeouts",
                  (unsigned long long)s.timeouts);
    ck_assert_int_eq(h_drain(a), 0);
    ck_assert_int_eq(h_drain(b), 0);
    close(a);
    close(b);
    h_server_stop(&hs);
    h_log_check_sequences(true);
}
END_TEST

/* ---------------------------------------------------------------- the case */

TCase *tcase_bounds(void)
{
    TCase *tc = h_tcase("bounds", 60);
    tcase_add_test(tc, test_empty_queue_holds_no_buffer);
    tcase_add_loop_test(tc, test_high_water_bounds_queue, 0,
                        (int)(sizeof hw_variants / sizeof hw_variants[0]));
    tcase_add_test(tc, test_high_water_off_per_connection);
    tcase_add_test(tc, test_high_water_and_app_pause_independent);
    tcase_add_loop_test(tc, test_write_timeout_nonreader, 0, 5);
    tcase_add_loop_test(tc, test_write_timeout_spares_slow_reader, 0, 2);
    tcase_add_test(tc, test_write_timeout_per_connection);
    tcase_add_test(tc, test_deadline_closes_chatty_connection);
    tcase_add_test(tc, test_translator_deadline_independent);
    tcase_add_loop_test(tc, test_half_close_default_flushes_and_closes, 0, 3);
    tcase_add_loop_test(tc, test_half_close_reply_later, 0, 4);
    tcase_add_loop_test(tc, test_shutdown_write, 0, 3);
    tcase_add_test(tc, test_shutdown_write_translated_runs_finish_once);
    tcase_add_test(tc, test_reset_sends_rst);
    tcase_add_test(tc, test_udp_session_refuses_tcp_bounds);
    tcase_add_test(tc, test_bounds_calls_in_closed_say_shutdown);
    tcase_add_test(tc, test_stats_timeouts_counts_idle);
    return tc;
}
