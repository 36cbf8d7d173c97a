/*
 * test-output.c — output: order and integrity under concurrency, output
 * written in opened(), and the prewrite/postwrite accounting.
 */
#include "harness.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MIB (1024 * 1024)

/* ---------------------------------------------------------------- concurrent echo */

#define ECHO_CLIENTS 10

typedef struct echo_client {
    h_server *hs;
    int index;
    size_t size;
    uint32_t seed;
    char error[256];
    size_t received;
} echo_client;

/* One client: send the payload while reading the echo (poll, so neither
 * side's buffers can deadlock us), half-close, read to EOF, compare. */
static void *echo_client_run(void *arg)
{
    echo_client *ec = arg;
    uint8_t *out = malloc(ec->size + 1), *in = malloc(ec->size + 1);
    socklen_t len;
    const struct sockaddr *sa = evio_server_addr(atomic_load(&ec->hs->srv), 0, &len);
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (!out || !in || fd < 0) {
        snprintf(ec->error, sizeof ec->error, "setup failed");
        goto done;
    }
    h_fill(out, ec->size, ec->seed);
    if (connect(fd, sa, len) != 0 && errno != EINPROGRESS) {
        snprintf(ec->error, sizeof ec->error, "connect: %s", strerror(errno));
        goto done;
    }
    size_t sent = 0;
    bool shut = false;
    int64_t deadline = h_now_ms() + 10000 * h_slow;
    for (;;) {
        if (sent == ec->size && !shut) {
            if (shutdown(fd, SHUT_WR) != 0) {
                snprintf(ec->error, sizeof ec->error, "shutdown: %s", strerror(errno));
                goto done;
            }
            shut = true;
        }
        struct pollfd p = {fd, (short)(POLLIN | (shut ? 0 : POLLOUT)), 0};
        int64_t left = deadline - h_now_ms();
        if (left <= 0 || poll(&p, 1, (int)left) == 0) {
            snprintf(ec->error, sizeof ec->error, "timed out: sent %zu, received %zu of %zu",
                     sent, ec->received, ec->size);
            goto done;
        }
        if ((p.revents & POLLOUT) && !shut) {
            size_t chunk = ec->size - sent < 65536 ? ec->size - sent : 65536;
            ssize_t n = send(fd, out + sent, chunk, MSG_NOSIGNAL);
            if (n > 0)
                sent += (size_t)n;
            else if (n < 0 && errno != EAGAIN && errno != EINTR) {
                snprintf(ec->error, sizeof ec->error, "send: %s", strerror(errno));
                goto done;
            }
        }
        if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
            ssize_t n = recv(fd, in + ec->received, ec->size + 1 - ec->received, 0);
            if (n == 0)
                break;
            if (n < 0 && errno != EAGAIN && errno != EINTR) {
                snprintf(ec->error, sizeof ec->error, "recv: %s after %zu bytes",
                         strerror(errno), ec->received);
                goto done;
            }
            if (n > 0)
                ec->received += (size_t)n;
            if (ec->received > ec->size) {
                snprintf(ec->error, sizeof ec->error, "received more than was sent");
                goto done;
            }
        }
    }
    if (!shut || ec->received != ec->size)
        snprintf(ec->error, sizeof ec->error, "EOF after %zu of %zu bytes (sent %zu)",
                 ec->received, ec->size, sent);
    else if (h_mismatch(in, ec->size, ec->seed) != (size_t)-1)
        snprintf(ec->error, sizeof ec->error, "echo corrupted at byte %zu",
                 h_mismatch(in, ec->size, ec->seed));
done:
    if (fd >= 0)
        close(fd);
    free(out);
    free(in);
    return NULL;
}

START_TEST(test_concurrent_echo)
{
    evio_events ev = {.opened = h_opened_log, .data = h_data_echo, .closed = h_closed_log};
    const char *addrs[] = {"tcp://127.0.0.1:0"};
    h_server hs = {0};
    int rc = h_server_start(&hs, &ev, addrs, 1);
    ck_assert_msg(rc == 0, "evio_serve: %d (%s)", rc, evio_strerror(rc));

    echo_client ec[ECHO_CLIENTS];
    pthread_t th[ECHO_CLIENTS];
    unsigned rnd = 20240601;
    for (int i = 0; i < ECHO_CLIENTS; i++) {
        memset(&ec[i], 0, sizeof ec[i]);
        ec[i].hs = &hs;
        ec[i].index = i;
        ec[i].seed = 1000u + (uint32_t)i;
        /* 0 bytes, exactly 1 MiB, and random sizes up to 1 MiB. */
        ec[i].size = i == 0 ? 0 : i == 1 ? MIB : (size_t)rand_r(&rnd) % (MIB + 1);
        ck_assert_int_eq(pthread_create(&th[i], NULL, echo_client_run, &ec[i]), 0);
    }
    for (int i = 0; i < ECHO_CLIENTS; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < ECHO_CLIENTS; i++)
        ck_assert_msg(ec[i].error[0] == 0, "client %d (%zu bytes): %s", i, ec[i].size,
                      ec[i].error);
    H_WAIT(h_log_count(H_CLOSED) == ECHO_CLIENTS, 5000, "%d closed", ECHO_CLIENTS);
    h_server_stop(&hs);
    ck_assert_uint_eq(h_log_check_sequences(true), ECHO_CLIENTS);
    size_t n;
    h_event *evs = h_log_copy(&n);
    for (size_t i = 0; i < n; i++)
        if (evs[i].type == H_CLOSED)
            ck_assert_msg(evs[i].arg == 0, "closed err %lld after a clean half-close",
                          (long long)evs[i].arg);
    free(evs);
}
END_TEST

/* ---------------------------------------------------------------- write in opened */

static evio_action greet_opened(evio_conn *c, const evio_info *info)
{
    h_opened_log(c, info);
    char msg[64];
    int n = snprintf(msg, sizeof msg, "hello %llu\n", (unsigned long long)evio_conn_id(c));
    int rc = evio_write(c, msg, (size_t)n);
    H_EXPECT(rc == 0, "evio_write in opened: %d (%s)", rc, evio_strerror(rc));
    return EVIO_NONE;
}

START_TEST(test_write_in_opened)
{
    char path[108], uaddr[128];
    h_unix_path(path, sizeof path, "greet");
    snprintf(uaddr, sizeof uaddr, "unix://%s", path);
    const char *addrs[] = {"tcp://127.0.0.1:0", uaddr};
    evio_events ev = {.opened = greet_opened, .data = h_data_echo, .closed = h_closed_log};
    h_server hs = {0};
    int rc = h_server_start(&hs, &ev, addrs, 2);
    ck_assert_msg(rc == 0, "evio_serve: %d (%s)", rc, evio_strerror(rc));
    for (size_t i = 0; i < 2; i++) {
        int fd = h_connect(&hs, i);
        /* The greeting arrives before we say anything. */
        char buf[64] = "";
        size_t got = 0;
        while (got == 0 || buf[got - 1] != '\n') {
            ck_assert(got < sizeof buf - 1);
            ssize_t n = recv(fd, buf + got, sizeof buf - 1 - got, 0);
            ck_assert_msg(n > 0, "no greeting from opened(): %s",
                          n < 0 ? strerror(errno) : "EOF");
            got += (size_t)n;
        }
        ck_assert_msg(strncmp(buf, "hello ", 6) == 0, "greeting \"%s\"", buf);
        h_send_all(fd, "x", 1);
        h_recv_exact(fd, buf, 1);
        ck_assert_int_eq(buf[0], 'x');
        close(fd);
        H_WAIT(h_log_count(H_CLOSED) == i + 1, 5000, "closed");
    }
    h_server_stop(&hs);
    h_log_check_sequences(true);
}
END_TEST

/* ---------------------------------------------------------------- prewrite/postwrite */

#define PW_SIZE (8 * MIB) /* more than a socket buffer takes at once */
static const char trailer[] = "-- the end --";

static struct {
    bool in_write;            /* between prewrite and postwrite */
    size_t amount;            /* of the current attempt */
    size_t pairs;
    size_t written_total;
    size_t last_remaining;
    bool trailer_sent;
    bool started;
    atomic_bool done;
    uint8_t *payload;
} pw;

static evio_action pw_data(evio_conn *c, const void *in, size_t len)
{
    h_log(c, in ? H_DATA : H_WAKE, (int64_t)len);
    if (in && !pw.started) {
        pw.started = true;
        int rc = evio_write(c, pw.payload, PW_SIZE);
        H_EXPECT(rc == 0, "evio_write: %d", rc);
        H_EXPECT(evio_conn_pending(c) == PW_SIZE, "pending %zu after writing %d",
                 evio_conn_pending(c), PW_SIZE);
    }
    return EVIO_NONE;
}

static evio_action pw_prewrite(evio_conn *c, size_t amount)
{
    if (!pw.started)
        return EVIO_NONE;
    H_EXPECT(!pw.in_write, "two prewrites without a postwrite");
    H_EXPECT(amount == evio_conn_pending(c), "prewrite amount %zu, pending %zu", amount,
             evio_conn_pending(c));
    pw.in_write = true;
    pw.amount = amount;
    return EVIO_NONE;
}

static evio_action pw_postwrite(evio_conn *c, size_t written, size_t remaining)
{
    if (!pw.started)
        return EVIO_NONE;
    H_EXPECT(pw.in_write, "postwrite without a prewrite");
    pw.in_write = false;
    pw.pairs++;
    H_EXPECT(written + remaining == pw.amount,
             "postwrite(written %zu, remaining %zu) after prewrite(%zu)", written, remaining,
             pw.amount);
    H_EXPECT(remaining == evio_conn_pending(c), "postwrite remaining %zu, pending %zu",
             remaining, evio_conn_pending(c));
    pw.written_total += written;
    pw.last_remaining = remaining;
    if (remaining == 0 && !pw.trailer_sent) {
        /* Output written from postwrite is sent too, after the rest. */
        pw.trailer_sent = true;
        int rc = evio_write(c, trailer, sizeof trailer - 1);
        H_EXPECT(rc == 0, "evio_write in postwrite: %d", rc);
    } else if (remaining == 0) {
        atomic_store(&pw.done, true);
    }
    return EVIO_NONE;
}

START_TEST(test_prewrite_postwrite)
{
    memset(&pw, 0, sizeof pw);
    pw.payload = h_xmalloc(PW_SIZE);
    h_fill(pw.payload, PW_SIZE, 3);
    evio_events ev = {.opened = h_opened_log, .data = pw_data, .closed = h_closed_log,
                      .prewrite = pw_prewrite, .postwrite = pw_postwrite};
    const char *addrs[] = {"tcp://127.0.0.1:0"};
    h_server hs = {0};
    int rc = h_server_start(&hs, &ev, addrs, 1);
    ck_assert_msg(rc == 0, "evio_serve: %d (%s)", rc, evio_strerror(rc));
    socklen_t len;
    const struct sockaddr *sa = h_server_addr(&hs, 0, &len);
    int fd = h_socket_for(sa);
    int sz = 16 * 1024;
    ck_assert(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz) == 0);
    ck_assert(h_try_connect(fd, sa, len) == 0);
    h_send_all(fd, "go", 2);
    h_sleep_ms(100); /* let the server's socket fill up */
    size_t total = PW_SIZE + sizeof trailer - 1;
    uint8_t *buf = h_xmalloc(total);
    h_recv_exact(fd, buf, total);
    ck_assert_msg(h_mismatch(buf, PW_SIZE, 3) == (size_t)-1, "payload corrupted");
    ck_assert_mem_eq(buf + PW_SIZE, trailer, sizeof trailer - 1);
    free(buf);
    H_WAIT(atomic_load(&pw.done), 5000, "the trailer's postwrite");
    close(fd);
    H_WAIT(h_log_count(H_CLOSED) == 1, 5000, "closed");
    h_server_stop(&hs);
    free(pw.payload);
    h_log_check_sequences(true);
    /* The loop thread is gone: its plain fields are safe to read. */
    ck_assert_msg(pw.pairs >= 3, "only %zu prewrite/postwrite pairs for an 8 MiB reply "
                  "to a slow reader", pw.pairs);
    ck_assert_uint_eq(pw.written_total, total);
    ck_assert_uint_eq(pw.last_remaining, 0);
    ck_assert(!pw.in_write);
}
END_TEST

TCase *tcase_output(void)
{
    TCase *tc = h_tcase("output", 30);
    tcase_add_test(tc, test_concurrent_echo);
    tcase_add_test(tc, test_write_in_opened);
    tcase_add_test(tc, test_prewrite_postwrite);
    return tc;
}
