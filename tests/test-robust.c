/*
 * test-robust.c — the pitfalls: events fetched in one batch for
 * connections that are gone, fd numbers reused within a batch, accept()
 * failing with EMFILE, one busy peer against the rest, peers that reset or
 * vanish while output is pending, and SIGPIPE.
 *
 * Several tests block the loop on purpose ("the gate": a data callback that
 * waits until the test releases it) so that everything the clients do in
 * the meantime reaches the server in one batch of readiness events.
 */
#include "harness.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#define MIB (1024 * 1024)

/* ---------------------------------------------------------------- the gate */

static struct {
    atomic_bool in_gate;
    atomic_bool release;
} gate;

static void gate_reset(void)
{
    atomic_store(&gate.in_gate, false);
    atomic_store(&gate.release, false);
}

/* On the loop thread: block until the test releases the gate. */
static void gate_block(void)
{
    atomic_store(&gate.release, false);
    atomic_store(&gate.in_gate, true);
    int64_t deadline = h_now_ms() + 10000 * h_slow;
    while (!atomic_load(&gate.release) && h_now_ms() < deadline)
        h_sleep_ms(1);
    H_EXPECT(atomic_load(&gate.release), "the gate was never released");
    atomic_store(&gate.in_gate, false);
}

/* On the test thread: send "gate" on fd and wait until the loop is held. */
static void gate_close(int fd)
{
    h_send_all(fd, "gate", 4);
    H_WAIT(atomic_load(&gate.in_gate), 5000, "the loop to enter the gate");
}

static void gate_open(void)
{
    h_sleep_ms(20); /* let loopback deliver everything */
    atomic_store(&gate.release, true);
}

static bool is_cmd(const void *in, size_t len, const char *cmd)
{
    size_t n = strlen(cmd);
    return in && len >= n && memcmp(in, cmd, n) == 0;
}

static int connect_small_rcvbuf(const struct sockaddr *sa, socklen_t len)
{
    int fd = h_socket_for(sa);
    int sz = 16 * 1024;
    ck_assert(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz) == 0);
    int rc = h_try_connect(fd, sa, len);
    ck_assert_msg(rc == 0, "connect: %s", strerror(-rc));
    return fd;
}

static uint8_t chunk[64 * 1024];

/* ---------------------------------------------------------------- shutdown mid-batch */

#define MB_CONNS 20

static struct {
    atomic_int data_events;
} mb;

static evio_action mb_data(evio_conn *c, const void *in, size_t len)
{
    if (is_cmd(in, len, "gate")) {
        h_log(c, H_DATA, (int64_t)len);
        gate_block();
        return EVIO_NONE;
    }
    h_log(c, in ? H_DATA : H_WAKE, (int64_t)len);
    /* The first of a batch of MB_CONNS readable connections shuts the
     * server down: the others' events, already fetched, must be dropped. */
    atomic_fetch_add(&mb.data_events, 1);
    return EVIO_SHUTDOWN;
}

START_TEST(test_shutdown_drops_fetched_events)
{
    gate_reset();
    atomic_store(&mb.data_events, 0);
    evio_events ev = {.opened = h_opened_log, .data = mb_data, .closed = h_closed_log};
    const char *addrs[] = {"tcp://127.0.0.1:0"};
    h_server hs = {0};
    int rc = h_server_start(&hs, &ev, addrs, 1);
    ck_assert_msg(rc == 0, "evio_serve: %d (%s)", rc, evio_strerror(rc));
    int s = h_connect(&hs, 0), fds[MB_CONNS];
    for (int i = 0; i < MB_CONNS; i++)
        fds[i] = h_connect(&hs, 0);
    H_WAIT(h_log_count(H_OPENED) == MB_CONNS + 1, 5000, "%d opened", MB_CONNS + 1);
    gate_close(s);
    for (int i = 0; i < MB_CONNS; i++)
        h_send_all(fds[i], "x", 1);
    gate_open();
    h_server_join(&hs);
    ck_assert_msg(atomic_load(&mb.data_events) == 1,
                  "%d data events after the first returned EVIO_SHUTDOWN (expected 1)",
                  atomic_load(&mb.data_events));
    ck_assert_uint_eq(h_log_count(H_CLOSED), MB_CONNS + 1);
    h_log_check_sequences(true);
    close(s);
    for (int i = 0; i < MB_CONNS; i++)
        close(fds[i]);
}
END_TEST

/* ---------------------------------------------------------------- fd reuse in a batch */

#define CH_K 12
#define CH_ROUNDS 5

typedef struct ch_conn {
    int port;  /* the peer's port */
    char kind; /* 'A' filled then reset, 'B' quits, 'N' new, 'S' the gate */
    size_t sent; /* 'A': bytes of the fill the socket has taken */
} ch_conn;

/* What an A reader takes while the loop is held: it must be in the socket
 * before the gate closes. */
#define CH_TAKE (16 * 1024)

static struct {
    atomic_int filled;
    atomic_int closed_kind[128];
    atomic_int bad_err_kind[128];
    atomic_int last_bad_err;
} ch;

static evio_action ch_opened(evio_conn *c, const evio_info *info)
{
    ch_conn *cc = calloc(1, sizeof *cc);
    H_EXPECT(cc != NULL, "calloc");
    if (cc && info->remote && info->remote->sa_family == AF_INET)
        cc->port = ntohs(((const struct sockaddr_in *)info->remote)->sin_port);
    evio_conn_set_context(c, cc);
    return h_opened_log(c, info);
}

static evio_action ch_data(evio_conn *c, const void *in, size_t len)
{
    ch_conn *cc = evio_conn_context(c);
    h_log(c, in ? H_DATA : H_WAKE, (int64_t)len);
    if (!in || !cc)
        return EVIO_NONE;
    if (is_cmd(in, len, "gate")) {
        cc->kind = 'S';
        gate_block();
    } else if (is_cmd(in, len, "fill")) {
        cc->kind = 'A';
        for (int i = 0; i < 16; i++)
            evio_write(c, chunk, sizeof chunk);
        /* Filled once CH_TAKE bytes have been sent (ch_postwrite), not
         * when queued: the first send may take less (a short write, an
         * EINTR or EAGAIN under the fault layer), the rest following on a
         * writable event. */
    } else if (is_cmd(in, len, "quit")) {
        cc->kind = 'B';
        return EVIO_CLOSE;
    } else {
        /* "N<port>;" from a new client: the bytes must come from the peer
         * this connection was opened for. */
        cc->kind = 'N';
        char msg[32];
        int n = snprintf(msg, sizeof msg, "N%d;", cc->port);
        H_EXPECT(len == (size_t)n && memcmp(in, msg, (size_t)n) == 0,
                 "connection %llu (peer port %d) got \"%.*s\"",
                 (unsigned long long)evio_conn_id(c), cc->port, (int)len, (const char *)in);
        evio_write(c, in, len);
    }
    return EVIO_NONE;
}

static evio_action ch_postwrite(evio_conn *c, size_t written, size_t remaining)
{
    ch_conn *cc = evio_conn_context(c);
    (void)remaining;
    if (cc && cc->kind == 'A' && cc->sent < CH_TAKE && (cc->sent += written) >= CH_TAKE)
        atomic_fetch_add(&ch.filled, 1);
    return EVIO_NONE;
}

static evio_action ch_closed(evio_conn *c, int err)
{
    ch_conn *cc = evio_conn_context(c);
    int kind = cc ? cc->kind : 0;
    atomic_fetch_add(&ch.closed_kind[kind], 1);
    bool ok = kind == 'A' ? err < 0 : err == 0;
    if (!ok) {
        atomic_fetch_add(&ch.bad_err_kind[kind], 1);
        atomic_store(&ch.last_bad_err, err);
    }
    free(cc);
    return h_closed_log(c, err);
}

START_TEST(test_fd_reuse_within_a_batch)
{
    gate_reset();
    memset(&ch, 0, sizeof ch);
    evio_events ev = {
        .opened = ch_opened, .data = ch_data, .postwrite = ch_postwrite, .closed = ch_closed};
    const char *addrs[] = {"tcp://127.0.0.1:0"};
    h_server hs = {0};
    int rc = h_server_start(&hs, &ev, addrs, 1);
    ck_assert_msg(rc == 0, "evio_serve: %d (%s)", rc, evio_strerror(rc));
    socklen_t salen;
    const struct sockaddr *sa = h_server_addr(&hs, 0, &salen);
    int s = h_connect(&hs, 0);
    size_t opened = 1, closed = 0;

    for (int round = 0; round < CH_ROUNDS; round++) {
        int a[CH_K], b[CH_K], n[CH_K];
        for (int i = 0; i < CH_K; i++) {
            a[i] = connect_small_rcvbuf(sa, salen);
            h_send_all(a[i], "fill", 4);
            b[i] = h_connect(&hs, 0);
            n[i] = h_socket_for(sa); /* its fd exists before the gate */
        }
        opened += 2 * CH_K;
        H_WAIT(h_log_count(H_OPENED) == opened, 5000, "%zu opened", opened);
        H_WAIT(atomic_load(&ch.filled) == (round + 1) * CH_K, 5000, "fills");

        /* While the loop is held: A readers take some output (their
         * server sockets turn writable) and reset; B ask the server to
         * close; N connect and speak.  Released, the loop sees all of
         * it in one batch: closes free fds that accepts in the same batch
         * reuse. */
        gate_close(s);
        char sink[CH_TAKE];
        for (int i = 0; i < CH_K; i++) {
            h_recv_exact(a[i], sink, sizeof sink);
            h_close_rst(a[i]);
            h_send_all(b[i], "quit", 4);
        }
        char msgs[CH_K][32];
        for (int i = 0; i < CH_K; i++) {
            ck_assert_int_eq(h_try_connect(n[i], sa, salen), 0);
            int len = snprintf(msgs[i], sizeof msgs[i], "N%d;", h_local_port(n[i]));
            h_send_all(n[i], msgs[i], (size_t)len);
        }
        gate_open();

        for (int i = 0; i < CH_K; i++) {
            char echo[32];
            size_t len = strlen(msgs[i]);
            h_recv_exact(n[i], echo, len);
            ck_assert_mem_eq(echo, msgs[i], len);
            ck_assert_uint_eq(h_recv_until_eof(b[i], echo, 0), 0);
            close(b[i]);
        }
        opened += CH_K;
        closed += 2 * CH_K;
        H_WAIT(h_log_count(H_CLOSED) == closed, 5000, "%zu closed (have %zu)", closed,
               h_log_count(H_CLOSED));
        for (int i = 0; i < CH_K; i++)
            close(n[i]);
        closed += CH_K;
        H_WAIT(h_log_count(H_CLOSED) == closed, 5000, "%zu closed", closed);
        h_assert_no_callback_failures();
    }
    close(s);
    H_WAIT(h_log_count(H_CLOSED) == closed + 1, 5000, "all closed");
    h_server_stop(&hs);
    ck_assert_uint_eq(h_log_check_sequences(true), opened);
    ck_assert_int_eq(atomic_load(&ch.closed_kind['A']), CH_ROUNDS * CH_K);
    ck_assert_int_eq(atomic_load(&ch.closed_kind['B']), CH_ROUNDS * CH_K);
    ck_assert_int_eq(atomic_load(&ch.closed_kind['N']), CH_ROUNDS * CH_K);
    ck_assert_msg(atomic_load(&ch.bad_err_kind['A']) == 0,
                  "%d reset connections closed with err >= 0 (last %d)",
                  atomic_load(&ch.bad_err_kind['A']), atomic_load(&ch.last_bad_err));
    ck_assert_msg(atomic_load(&ch.bad_err_kind['B']) + atomic_load(&ch.bad_err_kind['N']) == 0,
                  "clean closes reported an error (last %d: %s)", atomic_load(&ch.last_bad_err),
                  evio_strerror(atomic_load(&ch.last_bad_err)));
}
END_TEST

/* ---------------------------------------------------------------- EMFILE */

#define EM_CLIENTS 4

START_TEST(test_emfile_pauses_accept)
{
    /* The limit is lowered before the server starts: io_uring takes it
     * when an accept is submitted, not when a connection comes. */
    struct rlimit old, low;
    ck_assert(getrlimit(RLIMIT_NOFILE, &old) == 0);
    low = old;
    if (low.rlim_cur > 512)
        low.rlim_cur = 512;
    ck_assert(setrlimit(RLIMIT_NOFILE, &low) == 0);

    evio_events ev = {.opened = h_opened_log, .data = h_data_echo, .closed = h_closed_log};
    const char *addrs[] = {"tcp://127.0.0.1:0"};
    h_server hs = {0};
    int rc = h_server_start(&hs, &ev, addrs, 1);
    ck_assert_msg(rc == 0, "evio_serve: %d (%s)", rc, evio_strerror(rc));
    socklen_t salen;
    const struct sockaddr *sa = h_server_addr(&hs, 0, &salen);

    /* Client sockets first: connect() needs no new fd. */
    int cl[EM_CLIENTS];
    for (int i = 0; i < EM_CLIENTS; i++)
        cl[i] = h_socket_for(sa);

    /* Then use up every fd this process may have. */
    static int dups[1024];
    int ndups = 0;
    for (;;) {
        int d = dup(cl[0]);
        if (d < 0) {
            ck_assert_msg(errno == EMFILE, "dup: %s", strerror(errno));
            break;
        }
        ck_assert_msg(ndups < 1024, "could not exhaust the fd table");
        dups[ndups++] = d;
    }

    for (int i = 0; i < EM_CLIENTS; i++) {
        rc = h_try_connect(cl[i], sa, salen);
        ck_assert_msg(rc == 0, "connect with the fd table full: %s", strerror(-rc));
    }
    /* The server's accept() now fails with EMFILE; it must not spin. */
    h_sleep_ms(50);
    int64_t c0 = h_thread_cpu_ns(hs.thread), w0 = h_now_ns();
    h_sleep_ms(500);
    int64_t c1 = h_thread_cpu_ns(hs.thread), w1 = h_now_ns();
    double cpu = (double)(c1 - c0) / (double)(w1 - w0);
    size_t opened_while_full = h_log_count(H_OPENED);

    for (int i = 0; i < ndups; i++)
        close(dups[i]);
    ck_assert(setrlimit(RLIMIT_NOFILE, &old) == 0);
    printf("%s: loop thread CPU %.1f%% while accept() failed with EMFILE\n", tcase_name(),
           cpu * 100);
    ck_assert_msg(cpu < 0.30, "the loop used %.0f%% CPU while accept() failed with EMFILE",
                  cpu * 100);
    ck_assert_uint_eq(opened_while_full, 0);

    /* With fds free again, the waiting clients are served. */
    int64_t t0 = h_now_ms();
    for (int i = 0; i < EM_CLIENTS; i++) {
        char buf[4];
        h_send_all(cl[i], "ping", 4);
        h_recv_exact(cl[i], buf, 4);
        ck_assert_mem_eq(buf, "ping", 4);
    }
    int64_t took = h_now_ms() - t0;
    ck_assert_msg(took < 2000 * h_slow, "clients waited %lld ms to be served after fds were "
                  "freed", (long long)took);
    for (int i = 0; i < EM_CLIENTS; i++)
        close(cl[i]);
    H_WAIT(h_log_count(H_CLOSED) == EM_CLIENTS, 5000, "closed");
    h_server_stop(&hs);
    h_log_check_sequences(true);
}
END_TEST

/* ---------------------------------------------------------------- starvation */

#define FLOODERS 1

static struct {
    atomic_llong flood_bytes;
    atomic_bool stop;
    const struct sockaddr *sa;
    socklen_t salen;
    char error[128];
} st;

static evio_action st_opened(evio_conn *c, const evio_info *info)
{
    evio_conn_set_context(c, (void *)(intptr_t)(info->listener + 1));
    return h_opened_log(c, info);
}

static evio_action st_data(evio_conn *c, const void *in, size_t len)
{
    if ((intptr_t)evio_conn_context(c) == 1) {
        /* Flood: count, drop, and take a millisecond over it, so that a
         * loop reading until EAGAIN never gets there: the flooder refills
         * the socket faster than that. */
        atomic_fetch_add(&st.flood_bytes, (long long)len);
        h_sleep_ms(1);
        return EVIO_NONE;
    }
    return h_data_echo(c, in, len);
}

static void *flood(void *arg)
{
    (void)arg;
    int fd = socket(st.sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct timeval tv = {5 * h_slow, 0};
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (fd < 0 || connect(fd, st.sa, st.salen) != 0) {
        snprintf(st.error, sizeof st.error, "flood connect: %s", strerror(errno));
        if (fd >= 0)
            close(fd);
        return NULL;
    }
    static uint8_t junk[64 * 1024];
    while (!atomic_load(&st.stop)) {
        if (send(fd, junk, sizeof junk, MSG_NOSIGNAL) < 0 && errno != EINTR) {
            snprintf(st.error, sizeof st.error, "flood send: %s", strerror(errno));
            break;
        }
    }
    close(fd);
    return NULL;
}

START_TEST(test_busy_peer_does_not_starve_others)
{
    memset(&st, 0, sizeof st);
    evio_events ev = {.opened = st_opened, .data = st_data, .closed = h_closed_log};
    const char *addrs[] = {"tcp://127.0.0.1:0", "tcp://127.0.0.1:0"};
    h_server hs = {0};
    int rc = h_server_start(&hs, &ev, addrs, 2);
    ck_assert_msg(rc == 0, "evio_serve: %d (%s)", rc, evio_strerror(rc));
    st.sa = h_server_addr(&hs, 0, &st.salen);
    int ping = h_connect(&hs, 1);

    pthread_t th[FLOODERS];
    for (int i = 0; i < FLOODERS; i++)
        ck_assert_int_eq(pthread_create(&th[i], NULL, flood, NULL), 0);
    H_WAIT(atomic_load(&st.flood_bytes) > 4 * MIB, 5000, "the flood to start");

    long long before = atomic_load(&st.flood_bytes);
    int64_t worst = 0, total = 0;
    const int rounds = 50;
    for (int i = 0; i < rounds; i++) {
        char msg[16], buf[16];
        snprintf(msg, sizeof msg, "ping %08d", i);
        int64_t t0 = h_now_ns();
        h_send_all(ping, msg, 13);
        h_recv_exact(ping, buf, 13);
        int64_t dt = h_now_ns() - t0;
        ck_assert_mem_eq(buf, msg, 13);
        worst = dt > worst ? dt : worst;
        total += dt;
        h_sleep_ms(5);
    }
    long long during = atomic_load(&st.flood_bytes) - before;
    atomic_store(&st.stop, true);
    for (int i = 0; i < FLOODERS; i++)
        pthread_join(th[i], NULL);
    ck_assert_msg(st.error[0] == 0, "%s", st.error);
    printf("%s: ping round trip avg %.2f ms, worst %.2f ms, while %lld MiB of flood "
           "arrived\n", tcase_name(), total / 1e6 / rounds, worst / 1e6, during / MIB);
    ck_assert_msg(during > 1 * MIB, "the flood stalled during the test (%lld bytes)", during);
    ck_assert_msg(worst < 250LL * 1000000 * h_slow,
                  "a ping waited %.1f ms behind a flooding peer", worst / 1e6);
    close(ping);
    H_WAIT(h_log_count(H_CLOSED) == FLOODERS + 1, 5000, "closed");
    h_server_stop(&hs);
    h_log_check_sequences(true);
}
END_TEST

/* ---------------------------------------------------------------- peers that vanish */

static struct {
    atomic_bool got_request;
    atomic_bool peer_gone;
    atomic_size_t pending;
    atomic_uint_fast64_t id;
} pv;

/* "big": 8 MiB of output.  "wait": block until the test says the peer has
 * gone, then write 1 MiB to it. */
static evio_action pv_data(evio_conn *c, const void *in, size_t len)
{
    if (is_cmd(in, len, "big")) {
        h_log(c, H_DATA, (int64_t)len);
        atomic_store(&pv.id, evio_conn_id(c));
        for (int i = 0; i < 128; i++)
            evio_write(c, chunk, sizeof chunk);
        atomic_store(&pv.pending, evio_conn_pending(c));
        atomic_store(&pv.got_request, true);
        return EVIO_NONE;
    }
    if (is_cmd(in, len, "wait")) {
        h_log(c, H_DATA, (int64_t)len);
        atomic_store(&pv.id, evio_conn_id(c));
        atomic_store(&pv.got_request, true);
        int64_t deadline = h_now_ms() + 5000 * h_slow;
        while (!atomic_load(&pv.peer_gone) && h_now_ms() < deadline)
            h_sleep_ms(1);
        h_sleep_ms(20); /* the FIN or RST has arrived */
        for (int i = 0; i < 16; i++)
            evio_write(c, chunk, sizeof chunk);
        return EVIO_NONE;
    }
    return h_data_echo(c, in, len);
}

static void pv_start(h_server *hs, const char *addr)
{
    memset(&pv, 0, sizeof pv);
    evio_events ev = {.opened = h_opened_log, .data = pv_data, .closed = h_closed_log};
    const char *addrs[] = {addr};
    int rc = h_server_start(hs, &ev, addrs, 1);
    ck_assert_msg(rc == 0, "evio_serve(%s): %d (%s)", addr, rc, evio_strerror(rc));
}

static void expect_still_serving(h_server *hs)
{
    int fd = h_connect(hs, 0);
    char buf[5];
    h_send_all(fd, "alive", 5);
    h_recv_exact(fd, buf, 5);
    ck_assert_mem_eq(buf, "alive", 5);
    close(fd);
}

START_TEST(test_reset_while_writing)
{
    h_server hs = {0};
    pv_start(&hs, "tcp://127.0.0.1:0");
    socklen_t salen;
    const struct sockaddr *sa = h_server_addr(&hs, 0, &salen);
    int fd = connect_small_rcvbuf(sa, salen);
    h_send_all(fd, "big", 3);
    H_WAIT(atomic_load(&pv.got_request), 5000, "the request");
    ck_assert_uint_eq(atomic_load(&pv.pending), 8 * MIB);
    char sink[16 * 1024];
    h_recv_exact(fd, sink, sizeof sink);
    h_close_rst(fd);
    uint64_t id = atomic_load(&pv.id);
    H_WAIT(h_log_count_id(id, H_CLOSED) == 1, 5000, "closed after the reset");
    int64_t err = h_log_last_arg(id, H_CLOSED);
    ck_assert_msg(err < 0, "closed err %lld after the peer reset with 8 MiB pending",
                  (long long)err);
    printf("%s: closed(%lld: %s)\n", tcase_name(), (long long)err, evio_strerror((int)err));
    expect_still_serving(&hs);
    H_WAIT(h_log_count(H_CLOSED) == 2, 5000, "closed");
    h_server_stop(&hs);
    h_log_check_sequences(true);
}
END_TEST

/* Writing to a peer that is gone must fail with EPIPE, never raise SIGPIPE
 * (this process does not ignore SIGPIPE: it would die of it). */
static void run_write_to_gone_peer(const char *addr, bool rst, bool expect_error)
{
    size_t base = h_log_count(H_CLOSED);
    h_server hs = {0};
    pv_start(&hs, addr);
    int fd = h_connect(&hs, 0);
    h_send_all(fd, "wait", 4);
    H_WAIT(atomic_load(&pv.got_request), 5000, "the request");
    if (rst)
        h_close_rst(fd);
    else
        close(fd);
    atomic_store(&pv.peer_gone, true);
    uint64_t id = atomic_load(&pv.id);
    H_WAIT(h_log_count_id(id, H_CLOSED) == 1, 5000, "closed");
    int64_t err = h_log_last_arg(id, H_CLOSED);
    if (expect_error)
        ck_assert_msg(err < 0, "%s: closed err %lld after writing to a closed peer", addr,
                      (long long)err);
    expect_still_serving(&hs);
    H_WAIT(h_log_count(H_CLOSED) == base + 2, 5000, "closed");
    h_server_stop(&hs);
    h_log_check_sequences(true);
}

START_TEST(test_no_sigpipe_unix)
{
    char path[108], uaddr[128];
    h_unix_path(path, sizeof path, "pipe");
    snprintf(uaddr, sizeof uaddr, "unix://%s", path);
    run_write_to_gone_peer(uaddr, false, true);
}
END_TEST

START_TEST(test_no_sigpipe_tcp)
{
    run_write_to_gone_peer("tcp://127.0.0.1:0", true, true);
    h_log_reset(); /* the next server may get the same address, and ids start over */
    run_write_to_gone_peer("tcp://127.0.0.1:0", false, false);
}
END_TEST

TCase *tcase_robust(void)
{
    TCase *tc = h_tcase("robust", 30);
    tcase_add_test(tc, test_shutdown_drops_fetched_events);
    tcase_add_test(tc, test_fd_reuse_within_a_batch);
    tcase_add_test(tc, test_emfile_pauses_accept);
    tcase_add_test(tc, test_busy_peer_does_not_starve_others);
    tcase_add_test(tc, test_reset_while_writing);
    tcase_add_test(tc, test_no_sigpipe_unix);
    tcase_add_test(tc, test_no_sigpipe_tcp);
    return tc;
}
