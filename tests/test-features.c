/*
 * test-features.c — the features users of event-loop frameworks ask for
 * most (issue 8): evio_send/evio_close from any thread, idle timeouts,
 * max_conns and accept_filter, graceful drain, and evio_server_stats.
 *
 * Every test runs a real server on 127.0.0.1 (port 0) or a unique unix
 * path, drives it with real client sockets, and bounds every wait (x
 * h_slow).  Where a feature touches several loops the test runs once with
 * one loop and once with several (Check loop tests: _i picks the variant).
 */
#include "harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#define MIB (1024 * 1024)
#define MS 1000000LL /* ns per ms */

/* ================================================================ send from any thread */

#define SND_THREADS 8
#define SND_RECORDS 1000
#define SND_CONNS 10

static struct {
    evio_server *srv;
    uint64_t ids[SND_CONNS];
    atomic_long bad;
    atomic_int last_bad;
} snd;

#define SND_BIG_PAD (16 * 1024) /* every 250th record: bigger than a socket write */
#define SND_MAXREC (SND_BIG_PAD + 64)

/* Record seq of thread t: "<t:seq:" + padding that depends on both + ">\n",
 * 8 to ~110 bytes, and 16 KiB for every 250th, so a record split or
 * interleaved with another shows. */
static size_t snd_record(char *buf, size_t cap, int t, int seq)
{
    int pad = seq % 250 == 249 ? SND_BIG_PAD : (t * 31 + seq * 17) % 97;
    int n = snprintf(buf, cap, "<%d:%d:", t, seq);
    ck_assert((size_t)n + (size_t)pad + 2 < cap);
    memset(buf + n, 'a' + (t * 7 + seq) % 26, (size_t)pad);
    n += pad;
    buf[n++] = '>';
    buf[n++] = '\n';
    return (size_t)n;
}

static void *snd_thread(void *arg)
{
    int t = (int)(intptr_t)arg;
    char *rec = malloc(SND_MAXREC);
    if (!rec) {
        atomic_fetch_add(&snd.bad, 1);
        return NULL;
    }
    for (int seq = 0; seq < SND_RECORDS; seq++) {
        for (int k = 0; k < SND_CONNS; k++) {
            int conn = (k + t) % SND_CONNS; /* threads visit the connections in different orders */
            size_t len = snd_record(rec, SND_MAXREC, t, seq);
            int rc = evio_send(snd.srv, snd.ids[conn], rec, len);
            memset(rec, '#', len); /* the bytes were copied: scribbling must not show */
            if (rc != 0) {
                atomic_fetch_add(&snd.bad, 1);
                atomic_store(&snd.last_bad, rc);
            }
        }
    }
    free(rec);
    return NULL;
}

/* Every record of every thread, once, whole, in that thread's order. */
static void snd_check_stream(int k, const char *buf, size_t len)
{
    int next[SND_THREADS] = {0};
    size_t off = 0;
    long records = 0;
    char *want = malloc(SND_MAXREC);
    ck_assert(want != NULL);
    while (off < len) {
        const char *nl = memchr(buf + off, '\n', len - off);
        ck_assert_msg(nl != NULL, "connection %d: bytes after the last newline at offset %zu", k,
                      off);
        size_t rl = (size_t)(nl - (buf + off)) + 1;
        char head[40];
        size_t hl = rl < sizeof head - 1 ? rl : sizeof head - 1;
        memcpy(head, buf + off, hl);
        head[hl] = 0;
        int t = -1, seq = -1;
        ck_assert_msg(sscanf(head, "<%d:%d:", &t, &seq) == 2 && t >= 0 && t < SND_THREADS,
                      "connection %d: malformed record at offset %zu: \"%s...\"", k, off, head);
        ck_assert_msg(seq == next[t],
                      "connection %d: thread %d's record %d arrived where record %d was due "
                      "(lost, duplicated or reordered)", k, t, seq, next[t]);
        size_t wl = snd_record(want, SND_MAXREC, t, seq);
        ck_assert_msg(wl == rl && memcmp(want, buf + off, rl) == 0,
                      "connection %d: thread %d record %d is damaged (%zu bytes, expected %zu: "
                      "split or interleaved)", k, t, seq, rl, wl);
        next[t]++;
        records++;
        off += rl;
    }
    free(want);
    for (int t = 0; t < SND_THREADS; t++)
        ck_assert_msg(next[t] == SND_RECORDS, "connection %d: %d of thread %d's %d records", k,
                      next[t], t, SND_RECORDS);
    ck_assert_int_eq(records, (long)SND_THREADS * SND_RECORDS);
}

/* 8 threads x 1000 records to each of 10 connections: complete, whole and in
 * per-thread order; unknown and closed ids are refused.  _i: 1 or 4 loops. */
START_TEST(test_send_from_many_threads)
{
    int nloops = _i == 0 ? 1 : 4;
    h_reg_reset();
    memset(&snd, 0, sizeof snd);
    evio_events ev = {.opened = h_reg_opened, .data = h_data_echo, .closed = h_reg_closed,
                      .nloops = nloops};
    const char *addrs[] = {"tcp://127.0.0.1:0"};
    h_server hs = {0};
    h_start(&hs, &ev, addrs, 1);
    int rc;
    snd.srv = h_srv(&hs);

    int fds[SND_CONNS];
    bool loops_seen[16] = {false};
    int nseen = 0;
    for (int k = 0; k < SND_CONNS; k++) {
        fds[k] = h_connect(&hs, 0);
        h_reg_wait_opened(k + 1);
        h_conn f = h_reg_get(k);
        snd.ids[k] = f.id;
        ck_assert(f.loop >= 0 && f.loop < 16);
        if (!loops_seen[f.loop]) {
            loops_seen[f.loop] = true;
            nseen++;
        }
    }
    ck_assert_msg(nseen == nloops, "the %d connections live on %d loop threads, expected %d",
                  SND_CONNS, nseen, nloops);

    pthread_t th[SND_THREADS];
    for (int t = 0; t < SND_THREADS; t++)
        ck_assert_int_eq(pthread_create(&th[t], NULL, snd_thread, (void *)(intptr_t)t), 0);
    for (int t = 0; t < SND_THREADS; t++)
        pthread_join(th[t], NULL);
    ck_assert_msg(atomic_load(&snd.bad) == 0, "evio_send failed %ld times (last: %d, %s)",
                  atomic_load(&snd.bad), atomic_load(&snd.last_bad),
                  evio_strerror(atomic_load(&snd.last_bad)));

    size_t expect = 0;
    char *rec = (char *)h_xmalloc(SND_MAXREC);
    for (int t = 0; t < SND_THREADS; t++)
        for (int seq = 0; seq < SND_RECORDS; seq++)
            expect += snd_record(rec, SND_MAXREC, t, seq);
    free(rec);
    char *buf = (char *)h_xmalloc(expect + 1);
    for (int k = 0; k < SND_CONNS; k++) {
        h_recv_exact(fds[k], buf, expect);
        snd_check_stream(k, buf, expect);
    }
    h_sleep_ms(20);
    for (int k = 0; k < SND_CONNS; k++) {
        ssize_t n = recv(fds[k], buf, 1, MSG_DONTWAIT);
        ck_assert_msg(n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK),
                      "connection %d: bytes beyond the %zu sent (recv: %zd)", k, expect, n);
    }
    free(buf);
    ck_assert_msg(h_log_count(H_WAKE) == 0 && h_log_count(H_DATA) == 0,
                  "evio_send fired data() (%zu wake and %zu data events)", h_log_count(H_WAKE),
                  h_log_count(H_DATA));
    printf("%s[%d loops]: %d threads x %d records x %d connections arrived whole and in order\n",
           tcase_name(), nloops, SND_THREADS, SND_RECORDS, SND_CONNS);

    /* Unknown ids. */
    uint64_t unknown[] = {0, UINT64_MAX, 987654321, snd.ids[SND_CONNS - 1] + 4000};
    for (size_t u = 0; u < sizeof unknown / sizeof unknown[0]; u++) {
        rc = evio_send(snd.srv, unknown[u], "x", 1);
        ck_assert_msg(rc == EVIO_ENOTFOUND, "evio_send to unknown id %llu returned %d (%s)",
                      (unsigned long long)unknown[u], rc, evio_strerror(rc));
        rc = evio_close(snd.srv, unknown[u]);
        ck_assert_msg(rc == EVIO_ENOTFOUND, "evio_close of unknown id %llu returned %d (%s)",
                      (unsigned long long)unknown[u], rc, evio_strerror(rc));
    }
    /* A closed id. */
    close(fds[0]);
    H_WAIT(h_reg_get(0).nclosed == 1, 5000, "closed() of the first connection");
    rc = evio_send(snd.srv, snd.ids[0], "x", 1);
    ck_assert_msg(rc == EVIO_ENOTFOUND, "evio_send to a closed id returned %d (%s)", rc,
                  evio_strerror(rc));
    rc = evio_close(snd.srv, snd.ids[0]);
    ck_assert_msg(rc == EVIO_ENOTFOUND, "evio_close of a closed id returned %d (%s)", rc,
                  evio_strerror(rc));
    /* The others still take evio_send. */
    for (int k = 1; k < SND_CONNS; k++)
        ck_assert_int_eq(evio_send(snd.srv, snd.ids[k], "end\n", 4), 0);
    for (int k = 1; k < SND_CONNS; k++) {
        char e[4];
        h_recv_exact(fds[k], e, 4);
        ck_assert(memcmp(e, "end\n", 4) == 0);
        close(fds[k]);
    }
    h_reg_wait_closed(SND_CONNS);
    h_server_stop(&hs);
    h_log_check_sequences(true);
}
END_TEST

/* evio_close from other threads: everything queued by evio_send first, then
 * EOF; closed() fires once with 0.  _i: 1 or 4 loops. */
#define CL_CONNS 4
#define CL_BYTES (2 * MIB)
#define CL_CHUNK (64 * 1024)

typedef struct cl_job {
    evio_server *srv;
    uint64_t id;
    uint32_t seed;
    int bad_send, close_rc, close2_rc;
} cl_job;

static void *cl_thread(void *arg)
{
    cl_job *j = arg;
    uint8_t *p = malloc(CL_BYTES);
    if (!p) {
        j->bad_send = -1;
        return NULL;
    }
    h_fill(p, CL_BYTES, j->seed);
    for (size_t off = 0; off < CL_BYTES; off += CL_CHUNK)
        if (evio_send(j->srv, j->id, p + off, CL_CHUNK) != 0)
            j->bad_send++;
    j->close_rc = evio_close(j->srv, j->id);
    j->close2_rc = evio_close(j->srv, j->id); /* a second close changes nothing */
    free(p);
    return NULL;
}

START_TEST(test_close_from_thread_flushes_first)
{
    int nloops = _i == 0 ? 1 : 4;
    h_reg_reset();
    evio_events ev = {.opened = h_reg_opened, .data = h_data_echo, .closed = h_reg_closed,
                      .nloops = nloops};
    const char *addrs[] = {"tcp://127.0.0.1:0"};
    h_server hs = {0};
    h_start(&hs, &ev, addrs, 1);
    int rc;

    int fds[CL_CONNS];
    cl_job jobs[CL_CONNS];
    for (int k = 0; k < CL_CONNS; k++) {
        fds[k] = h_client(&hs, 0, 32 * 1024);
        h_reg_wait_opened(k + 1);
        jobs[k] = (cl_job){.srv = h_srv(&hs), .id = h_reg_get(k).id, .seed = 100u + (uint32_t)k};
    }
    pthread_t th[CL_CONNS];
    for (int k = 0; k < CL_CONNS; k++)
        ck_assert_int_eq(pthread_create(&th[k], NULL, cl_thread, &jobs[k]), 0);
    for (int k = 0; k < CL_CONNS; k++)
        pthread_join(th[k], NULL);
    for (int k = 0; k < CL_CONNS; k++) {
        ck_assert_msg(jobs[k].bad_send == 0, "connection %d: %d evio_send calls failed", k,
                      jobs[k].bad_send);
        ck_assert_msg(jobs[k].close_rc == 0, "connection %d: evio_close returned %d (%s)", k,
                      jobs[k].close_rc, evio_strerror(jobs[k].close_rc));
        ck_assert_msg(jobs[k].close2_rc == 0 || jobs[k].close2_rc == EVIO_ENOTFOUND,
                      "connection %d: a second evio_close returned %d (%s)", k,
                      jobs[k].close2_rc, evio_strerror(jobs[k].close2_rc));
    }
    uint8_t *buf = h_xmalloc(CL_BYTES);
    for (int k = 0; k < CL_CONNS; k++) {
        size_t n = h_recv_until_eof(fds[k], buf, CL_BYTES);
        ck_assert_msg(n == CL_BYTES, "connection %d: %zu bytes before EOF, expected %d", k, n,
                      CL_BYTES);
        size_t bad = h_mismatch(buf, CL_BYTES, jobs[k].seed);
        ck_assert_msg(bad == (size_t)-1, "connection %d: wrong byte at %zu", k, bad);
    }
    free(buf);
    h_reg_wait_closed(CL_CONNS);
    h_sleep_ms(20);
    for (int k = 0; k < CL_CONNS; k++) {
        h_conn f = h_reg_get(k);
        ck_assert_msg(f.nclosed == 1, "connection %d: closed() fired %d times", k, f.nclosed);
        ck_assert_msg(f.err == 0, "connection %d: closed(err = %d, %s), expected 0", k, f.err,
                      evio_strerror(f.err));
        rc = evio_send(h_srv(&hs), f.id, "x", 1);
        ck_assert_msg(rc == EVIO_ENOTFOUND, "evio_send after evio_close returned %d", rc);
        close(fds[k]);
    }
    h_server_stop(&hs);
    h_log_check_sequences(true);
}
END_TEST

/* evio_send racing with closes (the peer's reset, and evio_close from
 * another thread), 4 loops: every call returns 0 or EVIO_ENOTFOUND, nothing
 * crashes, and once closed() fired the id is refused. */
#define RACE_CONNS 10
#define RACE_THREADS 4

static struct {
    evio_server *srv;
    uint64_t ids[RACE_CONNS];
    atomic_bool closing[RACE_CONNS];
    atomic_bool stop;
    atomic_long ok, notfound, other;
    atomic_int last_other;
} race;

static void *race_thread(void *arg)
{
    (void)arg;
    char msg[32];
    memset(msg, 'z', sizeof msg);
    while (!atomic_load(&race.stop)) {
        for (int k = 0; k < RACE_CONNS; k++) {
            if (atomic_load(&race.closing[k]) && k % 2 == 1)
                continue; /* evio_close'd: let the flush finish */
            int rc = evio_send(race.srv, race.ids[k], msg, sizeof msg);
            if (rc == 0)
                atomic_fetch_add(&race.ok, 1);
            else if (rc == EVIO_ENOTFOUND)
                atomic_fetch_add(&race.notfound, 1);
            else {
                atomic_fetch_add(&race.other, 1);
                atomic_store(&race.last_other, rc);
            }
        }
        h_sleep_ms(1);
    }
    return NULL;
}

START_TEST(test_send_races_close)
{
    h_reg_reset();
    memset(&race, 0, sizeof race);
    evio_events ev = {.opened = h_reg_opened, .data = h_data_echo, .closed = h_reg_closed,
                      .nloops = 4};
    const char *addrs[] = {"tcp://127.0.0.1:0"};
    h_server hs = {0};
    h_start(&hs, &ev, addrs, 1);
    int rc;
    race.srv = h_srv(&hs);
    int fds[RACE_CONNS];
    for (int k = 0; k < RACE_CONNS; k++) {
        fds[k] = h_connect(&hs, 0);
        h_reg_wait_opened(k + 1);
        race.ids[k] = h_reg_get(k).id;
    }
    pthread_t th[RACE_THREADS];
    for (int t = 0; t < RACE_THREADS; t++)
        ck_assert_int_eq(pthread_create(&th[t], NULL, race_thread, NULL), 0);
    h_sleep_ms(20);
    for (int k = 0; k < RACE_CONNS; k++) {
        atomic_store(&race.closing[k], true);
        if (k % 2 == 0) {
            h_close_rst(fds[k]); /* the peer goes away mid-stream */
            fds[k] = -1;
        } else {
            rc = evio_close(race.srv, race.ids[k]);
            ck_assert_msg(rc == 0, "evio_close: %d (%s)", rc, evio_strerror(rc));
        }
        h_sleep_ms(5);
    }
    for (int k = 1; k < RACE_CONNS; k += 2) {
        int r = h_drain(fds[k]); /* what was queued, then EOF */
        ck_assert_msg(r == 0, "client %d after evio_close: %s", k, strerror(-r));
        close(fds[k]);
    }
    h_reg_wait_closed(RACE_CONNS);
    h_sleep_ms(20);
    atomic_store(&race.stop, true);
    for (int t = 0; t < RACE_THREADS; t++)
        pthread_join(th[t], NULL);
    ck_assert_msg(atomic_load(&race.other) == 0, "evio_send returned %d (%s) %ld times",
                  atomic_load(&race.last_other), evio_strerror(atomic_load(&race.last_other)),
                  atomic_load(&race.other));
    for (int k = 0; k < RACE_CONNS; k++) {
        h_conn f = h_reg_get(k);
        ck_assert_msg(f.nclosed == 1, "connection %d: closed() fired %d times", k, f.nclosed);
        if (k % 2 == 1)
            ck_assert_msg(f.err == 0, "connection %d: closed(err = %d) after evio_close", k,
                          f.err);
        ck_assert_int_eq(evio_send(race.srv, race.ids[k], "x", 1), EVIO_ENOTFOUND);
        ck_assert_int_eq(evio_close(race.srv, race.ids[k]), EVIO_ENOTFOUND);
    }
    ck_assert(atomic_load(&race.ok) > 0);
    h_server_stop(&hs);
    h_log_check_sequences(true);
}
END_TEST

/* evio_send/evio_close also reach a dialed connection that has not opened
 * yet (its id is known at once) and a UDP session (one datagram per call).
 * Two loops. */
START_TEST(test_send_to_dialed_and_udp)
{
    h_reg_reset();
    evio_events ev = {.opened = h_reg_opened, .data = h_data_echo, .closed = h_reg_closed,
                      .nloops = 2};
    const char *addrs[] = {"udp://127.0.0.1:0"};
    h_server hs = {0};
    h_start(&hs, &ev, addrs, 1);
    int rc;
    evio_server *srv = h_srv(&hs);

    /* UDP: the session opens on the first datagram (echoed). */
    int u = h_udp_client(&hs, 0);
    char b[32];
    h_send_all(u, "hi", 2);
    ck_assert_msg(recv(u, b, sizeof b, 0) == 2, "udp echo: %s", strerror(errno));
    h_reg_wait_opened(1);
    uint64_t uid = h_reg_get(0).id;
    ck_assert_int_eq(evio_send(srv, uid, "dgram-1", 7), 0);
    ck_assert_int_eq(evio_send(srv, uid, "dgram-22", 8), 0);
    ssize_t n = recv(u, b, sizeof b, 0);
    ck_assert_msg(n == 7 && memcmp(b, "dgram-1", 7) == 0, "first datagram: %zd bytes \"%.*s\"",
                  n, n > 0 ? (int)n : 0, b);
    n = recv(u, b, sizeof b, 0);
    ck_assert_msg(n == 8 && memcmp(b, "dgram-22", 8) == 0, "second datagram: %zd bytes", n);
    ck_assert_int_eq(evio_close(srv, uid), 0);
    H_WAIT(h_reg_get(0).nclosed == 1, 5000, "closed() of the UDP session after evio_close");
    ck_assert_msg(h_reg_get(0).err == 0, "UDP session closed(err = %d)", h_reg_get(0).err);
    ck_assert_int_eq(evio_send(srv, uid, "x", 1), EVIO_ENOTFOUND);

    /* Dialed: send and close before it has connected. */
    int port, lfd = h_test_listener(&port);
    char dial_addr[64];
    snprintf(dial_addr, sizeof dial_addr, "tcp://127.0.0.1:%d", port);
    for (int k = 0; k < 2; k++) { /* spread over both loops */
        uint64_t id;
        rc = evio_dial(srv, dial_addr, 2000 * h_slow, NULL, &id);
        ck_assert_msg(rc == 0, "evio_dial: %d (%s)", rc, evio_strerror(rc));
        rc = evio_send(srv, id, "early ", 6);
        ck_assert_msg(rc == 0, "evio_send to a dialed id before opened(): %d (%s)", rc,
                      evio_strerror(rc));
        ck_assert_int_eq(evio_send(srv, id, "bytes", 5), 0);
        ck_assert_int_eq(evio_close(srv, id), 0);
        int peer = h_accept_within(lfd, 2000);
        h_set_timeouts(peer, H_IO_TIMEOUT_MS);
        char got[32];
        size_t len = h_recv_until_eof(peer, got, sizeof got);
        ck_assert_msg(len == 11 && memcmp(got, "early bytes", 11) == 0,
                      "dialed peer %d got %zu bytes \"%.*s\" before EOF, expected \"early "
                      "bytes\"", k, len, (int)len, got);
        close(peer);
        H_WAIT(h_reg_get(1 + k).nclosed == 1, 5000, "closed() of dialed connection %d", k);
        h_conn f = h_reg_get(1 + k);
        ck_assert(f.dialed && f.id == id);
        ck_assert_msg(f.err == 0, "dialed connection %d: closed(err = %d)", k, f.err);
    }
    close(lfd);
    close(u);
    h_server_stop(&hs);
    h_log_check_sequences(true);
}
END_TEST

/* ================================================================ idle timeouts */

#define IDLE_SLACK_MS (100 * h_slow) /* scheduling, on top of one resolution step */

static void expect_between(const char *what, int64_t dt_ns, int64_t lo_ms, int64_t hi_ms)
{
    ck_assert_msg(dt_ns >= lo_ms * MS && dt_ns <= hi_ms * MS,
                  "%s after %.1f ms, expected within [%lld, %lld] ms", what,
                  (double)dt_ns / MS, (long long)lo_ms, (long long)hi_ms);
}

/* An idle connection is closed with -ETIMEDOUT between the timeout and the
 * timeout plus one resolution step; a chatty one (input every 50 ms for 3
 * timeouts) stays open until it falls silent.  The timeout is 200 ms (x
 * h_slow, so a slow build's stalls cannot starve the chatty client). */
START_TEST(test_idle_timeout_idle_vs_chatty)
{
    const int T = 200 * h_slow;
    h_reg_reset();
    evio_events ev = {.opened = h_reg_opened, .data = h_data_echo, .closed = h_reg_closed,
                      .idle_timeout_ms = T};
    const char *addrs[] = {"tcp://127.0.0.1:0"};
    h_server hs = {0};
    h_start(&hs, &ev, addrs, 1);

    int64_t idle_start = h_now_ns();
    int idle = h_connect(&hs, 0);
    h_reg_wait_opened(1);
    int chatty = h_connect(&hs, 0);
    h_reg_wait_opened(2);
    /* Output is not input: a client that only receives (evio_send every
     * 50 ms) times out like the idle one. */
    int64_t hear_start = h_now_ns();
    int hear = h_connect(&hs, 0);
    h_reg_wait_opened(3);
    uint64_t hear_id = h_reg_get(2).id;
    size_t heard_sent = 0;

    /* The chatty client sends every 50 ms for 3 T; meanwhile watch for
     * the idle one's EOF. */
    int64_t idle_eof = 0, last_send = 0, t0 = h_now_ns();
    for (int k = 1; h_now_ns() - t0 < 3 * T * MS; k++) {
        int64_t due = t0 + k * 50 * MS;
        while (h_now_ns() < due) {
            struct pollfd p = {.fd = idle, .events = POLLIN};
            int wait = (int)((due - h_now_ns()) / MS) + 1;
            if (!idle_eof && poll(&p, 1, wait) == 1) {
                char b;
                ssize_t n = recv(idle, &b, 1, 0);
                ck_assert_msg(n == 0, "idle client: recv returned %zd (%s), expected EOF", n,
                              n < 0 ? strerror(errno) : "data");
                idle_eof = h_now_ns();
            } else if (idle_eof) {
                h_sleep_ms(wait);
            }
        }
        last_send = h_now_ns();
        h_echo_check(chatty, "x");
        if (evio_send(h_srv(&hs), hear_id, "o", 1) == 0)
            heard_sent++;
    }
    ck_assert_msg(h_reg_get(1).nclosed == 0,
                  "the chatty connection (input every 50 ms) was closed (err %d) by a %d ms "
                  "idle timeout", h_reg_get(1).err, T);

    h_conn f = h_reg_get(0);
    ck_assert_msg(f.nclosed == 1, "the idle connection was not closed within %d ms by a %d ms "
                  "idle timeout", 3 * T, T);
    ck_assert_msg(f.err == -ETIMEDOUT, "idle connection: closed(err = %d, %s), expected "
                  "-ETIMEDOUT", f.err, evio_strerror(f.err));
    ck_assert_msg(f.closed_ns - idle_start >= T * MS,
                  "idle connection closed %.1f ms after connect() began, before the %d ms "
                  "timeout", (double)(f.closed_ns - idle_start) / MS, T);
    expect_between("idle connection closed", f.closed_ns - f.opened_ns, 0,
                   T + EVIO_IDLE_RESOLUTION_MS + IDLE_SLACK_MS);
    if (!idle_eof) {
        ck_assert_int_eq(h_drain(idle), 0);
        idle_eof = h_now_ns();
    }
    expect_between("idle client saw EOF", idle_eof - idle_start, T,
                   T + EVIO_IDLE_RESOLUTION_MS + IDLE_SLACK_MS);

    f = h_reg_get(2);
    ck_assert_msg(f.nclosed == 1 && f.err == -ETIMEDOUT,
                  "a connection that only receives output: closed %d times (err %d) within "
                  "%d ms, expected closed by the %d ms idle timeout (output is not input)",
                  f.nclosed, f.err, 3 * T, T);
    ck_assert_msg(f.closed_ns - hear_start >= T * MS, "output-only connection closed %.1f ms "
                  "after connect() began", (double)(f.closed_ns - hear_start) / MS);
    expect_between("output-only connection closed", f.closed_ns - f.opened_ns, 0,
                   T + EVIO_IDLE_RESOLUTION_MS + IDLE_SLACK_MS);
    {
        char ob[64];
        size_t got = h_recv_until_eof(hear, ob, sizeof ob);
        ck_assert_msg(got >= 1 && got <= heard_sent, "output-only client got %zu bytes of the "
                      "%zu sent before its close", got, heard_sent);
        for (size_t k = 0; k < got; k++)
            ck_assert_msg(ob[k] == 'o', "output-only client: byte %zu is %d", k, ob[k]);
    }

    /* Silent now, the chatty one goes the same way. */
    H_WAIT(h_reg_get(1).nclosed == 1, 2000, "the chatty connection to time out once silent");
    f = h_reg_get(1);
    ck_assert_msg(f.err == -ETIMEDOUT, "chatty connection: closed(err = %d), expected "
                  "-ETIMEDOUT", f.err);
    expect_between("chatty connection closed after its last input", f.closed_ns - last_send, T,
                   T + EVIO_IDLE_RESOLUTION_MS + IDLE_SLACK_MS);
    ck_assert_int_eq(h_drain(chatty), 0);
    close(idle);
    close(chatty);
    close(hear);
    h_server_stop(&hs);
    h_log_check_sequences(true);
}
END_TEST

/* Listeners of the per-connection test and what opened() does on each. */
enum { IL_DEFAULT, IL_LONG, IL_OFF_THEN_SET, IL_SHORT, IL_UDP, IL_UNIX, IL_N };
#define IL_LONG_MS 500
#define IL_SHORT_MS 100
#define IL_LATER_MS 150

static evio_action il_opened(evio_conn *c, const evio_info *info)
{
    int i = h_reg_open(c, info);
    int rc = 0;
    switch (info->listener) {
    case IL_LONG:
        rc = evio_conn_set_idle_timeout(c, IL_LONG_MS);
        break;
    case IL_OFF_THEN_SET:
        rc = evio_conn_set_idle_timeout(c, 0);
        break;
    case IL_SHORT:
        rc = evio_conn_set_idle_timeout(c, IL_SHORT_MS);
        break;
    case IL_UDP:
        rc = evio_conn_set_idle_timeout(c, IL_SHORT_MS);
        break;
    default:
        break;
    }
    pthread_mutex_lock(&h_reg.mu);
    if (i >= 0)
        h_reg.c[i].rc[0] = rc; /* evio_conn_set_idle_timeout's answer */
    pthread_mutex_unlock(&h_reg.mu);
    return EVIO_NONE;
}

static evio_action il_data(evio_conn *c, const void *in, size_t len)
{
    int i = h_reg_index(c);
    if (in && len == 1 && *(const char *)in == 't' && i >= 0) {
        h_log(c, H_DATA, (int64_t)len);
        int64_t now = h_now_ns();
        int rc = evio_conn_set_idle_timeout(c, IL_LATER_MS);
        H_EXPECT(rc == 0, "evio_conn_set_idle_timeout in data(): %d (%s)", rc, evio_strerror(rc));
        pthread_mutex_lock(&h_reg.mu);
        h_reg.c[i].set_ns = now;
        pthread_mutex_unlock(&h_reg.mu);
        evio_write(c, "k", 1);
        return EVIO_NONE;
    }
    return h_data_echo(c, in, len);
}

/* Per-connection idle timeouts set in opened() override the server's (0
 * disables), one set later in data() applies from then, UDP sessions say
 * EVIO_EUDP and keep to udp_idle_ms, unix sockets time out like TCP.
 * _i: 0: server default 200 ms, 1 loop; 1: server default off; 2: 200 ms
 * with 2 loops. */
START_TEST(test_idle_timeout_per_connection)
{
    const int D = _i == 1 ? 0 : 200;
    const int nloops = _i == 2 ? 2 : 1;
    const int slack = EVIO_IDLE_RESOLUTION_MS + IDLE_SLACK_MS;
    h_reg_reset();
    char path[128], unix_addr[160];
    h_unix_path(path, sizeof path, "idle");
    snprintf(unix_addr, sizeof unix_addr, "unix://%s", path);
    evio_events ev = {.opened = il_opened, .data = il_data, .closed = h_reg_closed,
                      .idle_timeout_ms = D, .nloops = nloops};
    const char *addrs[IL_N] = {"tcp://127.0.0.1:0", "tcp://127.0.0.1:0", "tcp://127.0.0.1:0",
                               "tcp://127.0.0.1:0", "udp://127.0.0.1:0", unix_addr};
    h_server hs = {0};
    h_start(&hs, &ev, addrs, IL_N);

    int fds[IL_N];
    int64_t start[IL_N];
    for (int l = 0; l < IL_N; l++) {
        start[l] = h_now_ns();
        if (l == IL_UDP) {
            fds[l] = h_udp_client(&hs, l);
            char b;
            h_send_all(fds[l], "u", 1);
            ck_assert_msg(recv(fds[l], &b, 1, 0) == 1 && b == 'u', "udp echo: %s",
                          strerror(errno));
        } else {
            fds[l] = h_connect(&hs, (size_t)l);
        }
        h_reg_wait_opened(l + 1);
    }
    for (int l = 0; l < IL_N; l++) {
        h_conn f = h_reg_get(h_reg_by_listener(l));
        if (l == IL_UDP)
            ck_assert_msg(f.rc[0] == EVIO_EUDP, "evio_conn_set_idle_timeout on a UDP session "
                          "returned %d (%s), expected EVIO_EUDP", f.rc[0],
                          evio_strerror(f.rc[0]));
        else
            ck_assert_msg(f.rc[0] == 0, "listener %d: evio_conn_set_idle_timeout returned %d "
                          "(%s)", l, f.rc[0], evio_strerror(f.rc[0]));
    }

    /* The short, default and long ones go, each within its bound; the
     * others stay (checked at least 800 ms in). */
    struct {
        int l, ms;
    } expire[] = {{IL_SHORT, IL_SHORT_MS}, {IL_DEFAULT, D}, {IL_UNIX, D}, {IL_LONG, IL_LONG_MS}};
    const int nexp = (int)(sizeof expire / sizeof expire[0]);
    int64_t connected = h_now_ns();
    for (int k = 0; k < nexp; k++) {
        int l = expire[k].l, ms = expire[k].ms;
        if (ms)
            H_WAIT(h_reg_get(h_reg_by_listener(l)).nclosed > 0, ms + 2000,
                   "listener %d's connection to time out after %d ms", l, ms);
    }
    int64_t quiet_until = connected + 800 * MS;
    if (h_now_ns() < quiet_until)
        h_sleep_ms((int)((quiet_until - h_now_ns()) / MS) + 1);
    for (int k = 0; k < nexp; k++) {
        int l = expire[k].l, ms = expire[k].ms;
        char what[96];
        h_conn f = h_reg_get(h_reg_by_listener(l));
        if (ms == 0) {
            ck_assert_msg(f.nclosed == 0, "listener %d: closed (err %d) with idle timeouts off",
                          l, f.err);
            continue;
        }
        ck_assert_msg(f.nclosed == 1, "listener %d: closed() fired %d times", l, f.nclosed);
        ck_assert_msg(f.err == -ETIMEDOUT, "listener %d: closed(err = %d, %s), expected "
                      "-ETIMEDOUT", l, f.err, evio_strerror(f.err));
        snprintf(what, sizeof what, "listener %d (%d ms): closed since connect() began", l, ms);
        ck_assert_msg(f.closed_ns - start[l] >= ms * MS, "%s %.1f ms ago, before its timeout",
                      what, (double)(f.closed_ns - start[l]) / MS);
        snprintf(what, sizeof what, "listener %d (%d ms): closed after opened()", l, ms);
        expect_between(what, f.closed_ns - f.opened_ns, 0, ms + slack);
        ck_assert_int_eq(h_drain(fds[l]), 0);
    }
    int off = h_reg_by_listener(IL_OFF_THEN_SET);
    ck_assert_msg(h_reg_get(off).nclosed == 0, "a connection whose idle timeout was set to 0 "
                  "was closed (err %d)", h_reg_get(off).err);
    int udp = h_reg_by_listener(IL_UDP);
    ck_assert_msg(h_reg_get(udp).nclosed == 0, "a UDP session was closed (err %d) by the TCP "
                  "idle timeout", h_reg_get(udp).err);

    /* Set later, from data(): counts from then. */
    int64_t t_send = h_now_ns();
    char k;
    h_send_all(fds[IL_OFF_THEN_SET], "t", 1);
    h_recv_exact(fds[IL_OFF_THEN_SET], &k, 1);
    H_WAIT(h_reg_get(off).nclosed == 1, 2000, "the connection given %d ms in data() to time out",
           IL_LATER_MS);
    h_conn f = h_reg_get(off);
    ck_assert_msg(f.err == -ETIMEDOUT, "closed(err = %d), expected -ETIMEDOUT", f.err);
    ck_assert_msg(f.closed_ns - t_send >= IL_LATER_MS * MS,
                  "closed %.1f ms after its input, before the %d ms set in data()",
                  (double)(f.closed_ns - t_send) / MS, IL_LATER_MS);
    expect_between("timeout set in data(): closed", f.closed_ns - f.set_ns, 0,
                   IL_LATER_MS + slack);
    ck_assert_int_eq(h_drain(fds[IL_OFF_THEN_SET]), 0);
    ck_assert_msg(h_reg_get(udp).nclosed == 0, "the UDP session was closed");

    for (int l = 0; l < IL_N; l++)
        close(fds[l]);
    h_reg_wait_closed(IL_N - 1); /* all but the UDP session, which goes at shutdown */
    h_server_stop(&hs);
    ck_assert_int_eq(atomic_load(&h_reg.closed), IL_N);
    ck_assert(!h_path_exists(path));
    h_log_check_sequences(true);
}
END_TEST

/* ================================================================ 5,000 idle connections */

#define MANY 5000

static struct {
    atomic_int opened, closed, timed_out;
    atomic_int tid;
} many;

static evio_action many_serving(evio_server *srv)
{
    (void)srv;
    atomic_store(&many.tid, (int)syscall(SYS_gettid));
    return EVIO_NONE;
}

static evio_action many_opened(evio_conn *c, const evio_info *info)
{
    (void)c, (void)info;
    atomic_fetch_add(&many.opened, 1);
    return EVIO_NONE;
}

static evio_action many_closed(evio_conn *c, int err)
{
    (void)c;
    if (err == -ETIMEDOUT)
        atomic_fetch_add(&many.timed_out, 1);
    atomic_fetch_add(&many.closed, 1);
    return EVIO_NONE;
}

/* Voluntary context switches of a thread: each is the loop going to sleep
 * in its poller after a wake-up. */
static long thread_sleeps(int tid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/self/task/%d/status", tid);
    FILE *f = fopen(path, "re");
    if (!f)
        return -1;
    long v = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "voluntary_ctxt_switches: %ld", &v) == 1)
            break;
    fclose(f);
    return v;
}

START_TEST(test_idle_many_connections_cost_little_cpu)
{
    memset(&many, 0, sizeof many);
    struct rlimit rl;
    ck_assert(getrlimit(RLIMIT_NOFILE, &rl) == 0);
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        ck_assert_msg(setrlimit(RLIMIT_NOFILE, &rl) == 0, "setrlimit: %s", strerror(errno));
    }
    int n = MANY;
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < 2 * MANY + 256) {
        n = (int)(rl.rlim_cur - 256) / 2;
        printf("%s: RLIMIT_NOFILE is %llu: %d connections instead of %d\n", tcase_name(),
               (unsigned long long)rl.rlim_cur, n, MANY);
    }
    ck_assert_msg(n >= 1000, "RLIMIT_NOFILE %llu is too low for this test",
                  (unsigned long long)rl.rlim_cur);

    evio_events ev = {.serving = many_serving, .opened = many_opened, .closed = many_closed,
                      .idle_timeout_ms = 60000};
    const char *addrs[] = {"tcp://127.0.0.1:0"};
    h_server hs = {0};
    h_start(&hs, &ev, addrs, 1);
    int rc;
    socklen_t salen;
    const struct sockaddr *sa = h_server_addr(&hs, 0, &salen);

    int *fds = malloc((size_t)n * sizeof *fds);
    ck_assert(fds != NULL);
    int64_t t0 = h_now_ms(), deadline = t0 + 15000LL * h_slow;
    for (int i = 0; i < n; i++) {
        /* Stay well inside the listen backlog: a full one drops SYNs and
         * connect() would wait a second for the retransmission. */
        while (i - atomic_load(&many.opened) > 512) {
            ck_assert_msg(h_now_ms() < deadline, "only %d of %d connections opened",
                          atomic_load(&many.opened), i);
            h_sleep_ms(1);
        }
        fds[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        ck_assert_msg(fds[i] >= 0, "socket %d: %s", i, strerror(errno));
        rc = h_try_connect(fds[i], sa, salen);
        ck_assert_msg(rc == 0, "connect %d: %s", i, strerror(-rc));
    }
    H_WAIT(atomic_load(&many.opened) == n, 10000, "%d connections to open (%d did)", n,
           atomic_load(&many.opened));
    int64_t setup_ms = h_now_ms() - t0;

    h_sleep_ms(200); /* let the accept burst settle */
    int tid = atomic_load(&many.tid);
    int64_t cpu0 = h_thread_cpu_ns(hs.thread), wall0 = h_now_ns();
    long sleeps0 = thread_sleeps(tid);
    h_sleep_ms(2000);
    int64_t cpu1 = h_thread_cpu_ns(hs.thread), wall1 = h_now_ns();
    long sleeps1 = thread_sleeps(tid);
    double cpu_ms = (double)(cpu1 - cpu0) / MS, wall_ms = (double)(wall1 - wall0) / MS;
    long wakeups = sleeps0 >= 0 && sleeps1 >= 0 ? sleeps1 - sleeps0 : -1;
    printf("%s[%s]: %d idle connections (set up in %lld ms): loop CPU %.2f ms over %.0f ms "
           "(%.3f%%), %ld wake-ups\n",
           tcase_name(), evio_backend_name(), n, (long long)setup_ms, cpu_ms, wall_ms,
           100.0 * cpu_ms / wall_ms, wakeups);

    evio_stats s = h_stats(&hs);
    ck_assert_msg(s.open == (uint64_t)n && s.accepted == (uint64_t)n && s.closed == 0,
                  "stats: open %llu accepted %llu closed %llu, expected %d, %d, 0",
                  (unsigned long long)s.open, (unsigned long long)s.accepted,
                  (unsigned long long)s.closed, n, n);
    ck_assert_int_eq(atomic_load(&many.closed), 0);
    ck_assert_msg(cpu_ms <= 0.05 * wall_ms * h_slow,
                  "the loop used %.1f ms of CPU in %.0f ms with %d idle connections (%.1f%%, "
                  "bound %d%%)", cpu_ms, wall_ms, n, 100.0 * cpu_ms / wall_ms, 5 * h_slow);
    /* An idle wheel wakes at most once per resolution step. */
    if (wakeups >= 0)
        ck_assert_msg(wakeups <= (long)(wall_ms / EVIO_IDLE_RESOLUTION_MS) + 10,
                      "the idle loop woke %ld times in %.0f ms (resolution %d ms)", wakeups,
                      wall_ms, EVIO_IDLE_RESOLUTION_MS);

    h_server_stop(&hs);
    ck_assert_int_eq(atomic_load(&many.closed), n);
    ck_assert_int_eq(atomic_load(&many.timed_out), 0);
    for (int i = 0; i < n; i++)
        close(fds[i]);
    free(fds);
}
END_TEST

/* ================================================================ connection limit */

/* max_conns = 5: the 6th, 7th and 8th are closed before opened() and
 * counted; a freed slot admits one more, and only one; dialed connections
 * do not count.  _i: 1 or 2 loops (the limit is server-wide). */
START_TEST(test_max_conns_enforced_exactly)
{
    const int nloops = _i + 1, LIMIT = 5;
    h_reg_reset();
    evio_events ev = {.opened = h_reg_opened, .data = h_data_echo, .closed = h_reg_closed,
                      .max_conns = LIMIT, .nloops = nloops};
    const char *addrs[] = {"tcp://127.0.0.1:0"};
    h_server hs = {0};
    h_start(&hs, &ev, addrs, 1);
    int rc;
    evio_server *srv = h_srv(&hs);

    /* Two dialed connections first: they do not use up the limit. */
    int port, lfd = h_test_listener(&port);
    char dial_addr[64];
    snprintf(dial_addr, sizeof dial_addr, "tcp://127.0.0.1:%d", port);
    int dialed_peer[2];
    for (int d = 0; d < 2; d++) {
        uint64_t id;
        rc = evio_dial(srv, dial_addr, 2000 * h_slow, NULL, &id);
        ck_assert_msg(rc == 0, "evio_dial: %d (%s)", rc, evio_strerror(rc));
        dialed_peer[d] = h_accept_within(lfd, 2000);
    }
    h_reg_wait_opened(2);
    ck_assert(h_reg_get(0).dialed && h_reg_get(1).dialed);

    int fds[5];
    for (int i = 0; i < LIMIT; i++) {
        fds[i] = h_connect(&hs, 0);
        h_reg_wait_opened(2 + i + 1);
    }
    for (int i = 0; i < LIMIT; i++)
        h_echo_check(fds[i], "under the limit");

    for (int j = 0; j < 3; j++) {
        int fd = h_connect(&hs, 0);
        char what[64];
        snprintf(what, sizeof what, "connection %d over a limit of %d", j + 1, LIMIT);
        h_expect_closed_at_once(fd, what);
        close(fd);
    }
    H_WAIT(h_stats(&hs).refused == 3, 2000, "refused == 3 (it is %llu)",
           (unsigned long long)h_stats(&hs).refused);
    h_sleep_ms(50);
    ck_assert_msg(atomic_load(&h_reg.opened) == 2 + LIMIT,
                  "opened() fired for a connection over the limit (%d opened)",
                  atomic_load(&h_reg.opened));
    ck_assert_msg(atomic_load(&h_reg.closed) == 0, "closed() fired for a refused connection");
    evio_stats s = h_stats(&hs);
    ck_assert_msg(s.refused == 3 && s.filtered == 0 && s.accepted == (uint64_t)LIMIT &&
                      s.open == (uint64_t)LIMIT + 2 && s.closed == 0,
                  "stats: refused %llu filtered %llu accepted %llu open %llu closed %llu; "
                  "expected 3 0 %d %d 0", (unsigned long long)s.refused,
                  (unsigned long long)s.filtered, (unsigned long long)s.accepted,
                  (unsigned long long)s.open, (unsigned long long)s.closed, LIMIT, LIMIT + 2);

    /* A slot comes free: one more is admitted, and then the limit holds again. */
    close(fds[0]);
    h_reg_wait_closed(1);
    fds[0] = h_connect(&hs, 0);
    h_reg_wait_opened(2 + LIMIT + 1);
    h_echo_check(fds[0], "in the freed slot");
    int fd = h_connect(&hs, 0);
    h_expect_closed_at_once(fd, "a connection over the limit after a slot was reused");
    close(fd);
    H_WAIT(h_stats(&hs).refused == 4, 2000, "refused == 4");
    h_sleep_ms(50);
    ck_assert_int_eq(atomic_load(&h_reg.opened), 2 + LIMIT + 1);
    s = h_stats(&hs);
    ck_assert_msg(s.refused == 4 && s.accepted == (uint64_t)LIMIT + 1 &&
                      s.open == (uint64_t)LIMIT + 2 && s.closed == 1,
                  "stats: refused %llu accepted %llu open %llu closed %llu; expected 4 %d %d 1",
                  (unsigned long long)s.refused, (unsigned long long)s.accepted,
                  (unsigned long long)s.open, (unsigned long long)s.closed, LIMIT + 1,
                  LIMIT + 2);

    for (int i = 0; i < LIMIT; i++)
        close(fds[i]);
    for (int d = 0; d < 2; d++)
        close(dialed_peer[d]);
    h_reg_wait_closed(1 + LIMIT + 2); /* the first one, the five, the dialed two */
    h_server_stop(&hs);
    close(lfd);
    h_log_check_sequences(true);
}
END_TEST

/* ================================================================ accept filter */

static struct {
    h_server *hs;
    atomic_int calls, refusals, off_loop0, bad_udata, bad_addr;
} af;

static int af_filter(void *udata, const struct sockaddr *sa, socklen_t len)
{
    atomic_fetch_add(&af.calls, 1);
    if (udata != af.hs)
        atomic_fetch_add(&af.bad_udata, 1);
    else if (!pthread_equal(pthread_self(), af.hs->serving_thread))
        atomic_fetch_add(&af.off_loop0, 1);
    if (!sa || sa->sa_family != AF_INET || len < (socklen_t)sizeof(struct sockaddr_in)) {
        atomic_fetch_add(&af.bad_addr, 1);
        return 1;
    }
    const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
    bool refuse = in->sin_addr.s_addr == htonl(0x7f000002); /* 127.0.0.2 */
    if (refuse)
        atomic_fetch_add(&af.refusals, 1);
    return !refuse;
}

static int connect_from(h_server *hs, const char *ip)
{
    socklen_t len;
    const struct sockaddr *sa = h_server_addr(hs, 0, &len);
    int fd = h_socket_for(sa);
    struct sockaddr_in me = {.sin_family = AF_INET};
    ck_assert(inet_pton(AF_INET, ip, &me.sin_addr) == 1);
    ck_assert_msg(bind(fd, (struct sockaddr *)&me, sizeof me) == 0, "bind %s: %s", ip,
                  strerror(errno));
    int rc = h_try_connect(fd, sa, len);
    ck_assert_msg(rc == 0, "connect from %s: %s", ip, strerror(-rc));
    return fd;
}

/* The filter refuses 127.0.0.2: those close before opened() and count in
 * filtered; 127.0.0.1 works.  _i: 1 or 2 loops (the filter runs on loop 0). */
START_TEST(test_accept_filter_by_address)
{
    const int nloops = _i + 1, N = 6;
    h_reg_reset();
    memset(&af, 0, sizeof af);
    h_server hs = {0};
    af.hs = &hs;
    evio_events ev = {.opened = h_reg_opened, .data = h_data_echo, .closed = h_reg_closed,
                      .accept_filter = af_filter, .nloops = nloops};
    const char *addrs[] = {"tcp://127.0.0.1:0"};
    h_start(&hs, &ev, addrs, 1);

    int fds[6], ports[6], good = 0;
    for (int i = 0; i < N; i++) {
        bool refused = i % 2 == 1;
        fds[i] = connect_from(&hs, refused ? "127.0.0.2" : "127.0.0.1");
        ports[i] = h_local_port(fds[i]);
        if (refused) {
            h_expect_closed_at_once(fds[i], "a client from 127.0.0.2");
            close(fds[i]);
            fds[i] = -1;
        } else {
            h_reg_wait_opened(++good);
            h_echo_check(fds[i], "from 127.0.0.1");
            h_conn f = h_reg_get(good - 1);
            const struct sockaddr_in *rin = (const struct sockaddr_in *)&f.remote;
            ck_assert(f.remote.ss_family == AF_INET && f.remote_len >= sizeof *rin);
            ck_assert_msg(rin->sin_addr.s_addr == htonl(INADDR_LOOPBACK) &&
                              ntohs(rin->sin_port) == ports[i],
                          "opened() for client %d (127.0.0.1:%d) shows remote port %d", i,
                          ports[i], ntohs(rin->sin_port));
        }
    }
    H_WAIT(h_stats(&hs).filtered == 3, 2000, "filtered == 3");
    h_sleep_ms(50);
    evio_stats s = h_stats(&hs);
    ck_assert_msg(s.filtered == 3 && s.refused == 0 && s.accepted == 3 && s.open == 3,
                  "stats: filtered %llu refused %llu accepted %llu open %llu; expected 3 0 3 3",
                  (unsigned long long)s.filtered, (unsigned long long)s.refused,
                  (unsigned long long)s.accepted, (unsigned long long)s.open);
    ck_assert_int_eq(atomic_load(&h_reg.opened), 3);
    ck_assert_int_eq(atomic_load(&h_reg.closed), 0);
    ck_assert_int_eq(atomic_load(&af.calls), N);
    ck_assert_int_eq(atomic_load(&af.refusals), 3);
    ck_assert_msg(atomic_load(&af.bad_udata) == 0, "the filter got a udata other than "
                  "evio_events.udata");
    ck_assert_msg(atomic_load(&af.bad_addr) == 0, "the filter got no or a malformed address");
    ck_assert_msg(atomic_load(&af.off_loop0) == 0, "the filter ran off loop 0 %d times",
                  atomic_load(&af.off_loop0));
    for (int i = 0; i < N; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    h_reg_wait_closed(3);
    h_server_stop(&hs);
    h_log_check_sequences(true);
}
END_TEST

/* ================================================================ graceful drain */

#define BIG (10 * MIB)
#define BIG_SEED 0xB16u

static uint8_t *big;
static _Atomic int64_t dr_drain_ns; /* when data() returned EVIO_DRAIN */

static evio_action dr_data(evio_conn *c, const void *in, size_t len)
{
    if (in && len == 4 && memcmp(in, "GET\n", 4) == 0) {
        h_log(c, H_DATA, (int64_t)len);
        int rc = evio_write(c, big, BIG);
        H_EXPECT(rc == 0, "evio_write(10 MiB): %d", rc);
        return EVIO_NONE;
    }
    if (in && len == 6 && memcmp(in, "DRAIN\n", 6) == 0) {
        h_log(c, H_DATA, (int64_t)len);
        evio_write(c, "draining\n", 9);
        atomic_store(&dr_drain_ns, h_now_ns());
        return EVIO_DRAIN;
    }
    return h_data_echo(c, in, len);
}

static void big_setup(void)
{
    big = h_xmalloc(BIG);
    h_fill(big, BIG, BIG_SEED);
    atomic_store(&dr_drain_ns, 0);
}

/* A 10 MiB reply in flight when evio_server_drain is called from the test
 * thread: the listener closes at once, the reply arrives whole, the
 * connection still works, and serve returns 0 only once it closed.
 * _i: 1 or 2 loops (one client per loop). */
START_TEST(test_drain_lets_inflight_response_finish)
{
    const int nloops = _i + 1, nc = nloops;
    h_reg_reset();
    big_setup();
    evio_events ev = {.opened = h_reg_opened, .data = dr_data, .closed = h_reg_closed,
                      .nloops = nloops};
    const char *addrs[] = {"tcp://127.0.0.1:0"};
    h_server hs = {0};
    h_start(&hs, &ev, addrs, 1);
    struct sockaddr_storage sa;
    socklen_t salen = h_copy_addr(&hs, 0, &sa);

    int fds[2];
    uint8_t *rx[2];
    size_t got[2] = {0, 0};
    for (int i = 0; i < nc; i++) {
        fds[i] = h_client(&hs, 0, 16 * 1024);
        h_reg_wait_opened(i + 1);
        rx[i] = h_xmalloc(BIG);
        h_send_all(fds[i], "GET\n", 4);
    }
    if (nc == 2)
        ck_assert_msg(h_reg_get(0).loop != h_reg_get(1).loop, "both clients on one loop");
    /* Read slowly at first. */
    for (int round = 0; round < 5; round++) {
        for (int i = 0; i < nc; i++) {
            h_recv_exact(fds[i], rx[i] + got[i], 16 * 1024);
            got[i] += 16 * 1024;
        }
        h_sleep_ms(20);
    }

    ck_assert_int_eq(evio_server_drain(h_srv(&hs), 10000), 0);
    int64_t refused_ms = h_wait_refused((struct sockaddr *)&sa, salen, 1000, "drain");
    ck_assert_msg(!atomic_load(&hs.returned), "evio_serve returned with %d replies in flight",
                  nc);

    for (int i = 0; i < nc; i++) {
        h_recv_exact(fds[i], rx[i] + got[i], BIG - got[i]);
        size_t bad = h_mismatch(rx[i], BIG, BIG_SEED);
        ck_assert_msg(bad == (size_t)-1, "client %d: the 10 MiB reply is wrong at byte %zu", i,
                      bad);
        free(rx[i]);
        h_echo_check(fds[i], "still served while draining");
    }
    h_sleep_ms(100);
    ck_assert_msg(!atomic_load(&hs.returned), "evio_serve returned with connections open");
    /* (the connect probes above may have been accepted before the listener
     * closed: they are registered after the clients and close at once) */
    for (int i = 0; i < nc; i++)
        ck_assert_msg(h_reg_get(i).nclosed == 0, "client %d was closed during the drain", i);
    for (int i = 0; i < nc; i++) {
        if (i == nc - 1)
            break;
        close(fds[i]);
        H_WAIT(h_reg_get(i).nclosed == 1, 5000, "closed() of client %d", i);
        h_sleep_ms(50);
        ck_assert_msg(!atomic_load(&hs.returned), "evio_serve returned with a connection open "
                      "on another loop");
    }
    int64_t last_close = h_now_ns();
    close(fds[nc - 1]);
    H_WAIT(atomic_load(&hs.returned), 3000, "evio_serve to return once drained");
    h_server_join(&hs);
    ck_assert(hs.returned_ns >= last_close);
    printf("%s[%d loops]: listener refused %lld ms after evio_server_drain; serve returned "
           "%.1f ms after the last close\n", tcase_name(), nloops, (long long)refused_ms,
           (double)(hs.returned_ns - last_close) / MS);
    for (int i = 0; i < nc; i++) {
        h_conn f = h_reg_get(i);
        ck_assert_msg(f.nclosed == 1 && f.err == 0, "client %d: closed %d times, err %d", i,
                      f.nclosed, f.err);
    }
    free(big);
    h_log_check_sequences(true);
}
END_TEST

/* EVIO_DRAIN returned from data(), with 2 loops: the listener closes, both
 * connections go on working until their clients close them. */
START_TEST(test_drain_from_event)
{
    h_reg_reset();
    big_setup();
    evio_events ev = {.opened = h_reg_opened, .data = dr_data, .closed = h_reg_closed,
                      .nloops = 2, .drain_timeout_ms = 10000};
    const char *addrs[] = {"tcp://127.0.0.1:0"};
    h_server hs = {0};
    h_start(&hs, &ev, addrs, 1);
    struct sockaddr_storage sa;
    socklen_t salen = h_copy_addr(&hs, 0, &sa);

    int a = h_connect(&hs, 0);
    h_reg_wait_opened(1);
    int b = h_connect(&hs, 0);
    h_reg_wait_opened(2);
    ck_assert_msg(h_reg_get(0).loop != h_reg_get(1).loop, "both clients on one loop");

    char buf[16];
    h_send_all(a, "DRAIN\n", 6);
    h_recv_exact(a, buf, 9);
    ck_assert(memcmp(buf, "draining\n", 9) == 0);
    h_wait_refused((struct sockaddr *)&sa, salen, 1000, "EVIO_DRAIN");
    h_echo_check(b, "b while draining");
    h_echo_check(a, "a while draining");
    close(a);
    H_WAIT(h_reg_get(0).nclosed == 1, 5000, "closed() of a");
    h_sleep_ms(100);
    ck_assert_msg(!atomic_load(&hs.returned), "evio_serve returned with a connection open");
    h_echo_check(b, "b after a left");
    int64_t last_close = h_now_ns();
    close(b);
    H_WAIT(atomic_load(&hs.returned), 3000, "evio_serve to return once drained");
    h_server_join(&hs);
    ck_assert(hs.returned_ns >= last_close);
    ck_assert_msg(hs.returned_ns - last_close <= 1000 * MS * h_slow,
                  "evio_serve returned %.1f ms after the last connection closed",
                  (double)(hs.returned_ns - last_close) / MS);
    for (int i = 0; i < 2; i++)
        ck_assert_msg(h_reg_get(i).err == 0, "client %d: closed(err = %d)", i, h_reg_get(i).err);
    free(big);
    h_log_check_sequences(true);
}
END_TEST

/* The drain deadline closes what never finishes with -ETIMEDOUT and serve
 * returns right after it.  _i: 0: evio_server_drain(srv, 400); 1: EVIO_DRAIN
 * with drain_timeout_ms = 400. */
START_TEST(test_drain_deadline_closes_stragglers)
{
    const int DEADLINE = 400;
    h_reg_reset();
    big_setup();
    evio_events ev = {.opened = h_reg_opened, .data = dr_data, .closed = h_reg_closed,
                      .drain_timeout_ms = _i == 1 ? DEADLINE : 0};
    const char *addrs[] = {"tcp://127.0.0.1:0"};
    h_server hs = {0};
    h_start(&hs, &ev, addrs, 1);

    int x = h_connect(&hs, 0); /* never finishes */
    h_reg_wait_opened(1);
    int z = h_connect(&hs, 0); /* finishes on its own */
    h_reg_wait_opened(2);
    int64_t t_drain;
    if (_i == 0) {
        t_drain = h_now_ns();
        ck_assert_int_eq(evio_server_drain(h_srv(&hs), DEADLINE), 0);
    } else {
        char buf[9];
        h_send_all(z, "DRAIN\n", 6);
        h_recv_exact(z, buf, 9);
        t_drain = atomic_load(&dr_drain_ns);
        ck_assert(t_drain != 0);
    }
    h_sleep_ms(100);
    close(z);
    H_WAIT(atomic_load(&hs.returned), DEADLINE + 3000, "evio_serve to return after the "
           "drain deadline");
    h_server_join(&hs);
    h_conn fx = h_reg_get(0), fz = h_reg_get(1);
    ck_assert_msg(fz.nclosed == 1 && fz.err == 0, "the client that left: closed(err = %d)",
                  fz.err);
    ck_assert_msg(fx.nclosed == 1 && fx.err == -ETIMEDOUT,
                  "the straggler: closed %d times, err %d (%s), expected -ETIMEDOUT",
                  fx.nclosed, fx.err, evio_strerror(fx.err));
    expect_between("the straggler closed after the drain began", fx.closed_ns - t_drain,
                   DEADLINE, DEADLINE + 300 * h_slow);
    expect_between("evio_serve returned after the drain began", hs.returned_ns - t_drain,
                   DEADLINE, DEADLINE + 300 * h_slow);
    int r = h_drain(x);
    ck_assert_msg(r == 0 || r == -ECONNRESET, "straggler client: %s", strerror(-r));
    close(x);
    free(big);
    h_log_check_sequences(true);
}
END_TEST

/* Draining a unix listener removes its socket file at once; connections on
 * it go on. */
START_TEST(test_drain_unix_removes_socket_file)
{
    h_reg_reset();
    char path[128], unix_addr[160];
    h_unix_path(path, sizeof path, "drain");
    snprintf(unix_addr, sizeof unix_addr, "unix://%s", path);
    evio_events ev = {.opened = h_reg_opened, .data = h_data_echo, .closed = h_reg_closed};
    const char *addrs[] = {unix_addr, "tcp://127.0.0.1:0"};
    h_server hs = {0};
    h_start(&hs, &ev, addrs, 2);
    ck_assert(h_path_exists(path));
    struct sockaddr_storage usa, tsa;
    socklen_t ulen = h_copy_addr(&hs, 0, &usa), tlen = h_copy_addr(&hs, 1, &tsa);

    int u = h_connect(&hs, 0);
    h_reg_wait_opened(1);
    h_echo_check(u, "over unix");
    ck_assert_int_eq(evio_server_drain(h_srv(&hs), 10000), 0);
    H_WAIT(!h_path_exists(path), 1000, "the socket file %s to be removed", path);
    h_wait_refused((struct sockaddr *)&usa, ulen, 1000, "unix drain");
    h_wait_refused((struct sockaddr *)&tsa, tlen, 1000, "tcp drain");
    h_echo_check(u, "over unix while draining");
    ck_assert(!atomic_load(&hs.returned));
    close(u);
    H_WAIT(atomic_load(&hs.returned), 3000, "evio_serve to return once drained");
    h_server_join(&hs);
    ck_assert_int_eq(h_reg_get(0).err, 0);
    ck_assert(!h_path_exists(path));
    h_log_check_sequences(true);
}
END_TEST

/* With nothing open, a drain returns at once; EVIO_SHUTDOWN (here
 * evio_server_shutdown) during a drain closes everything at once. */
START_TEST(test_drain_idle_server_and_shutdown_during_drain)
{
    h_reg_reset();
    evio_events ev = {.opened = h_reg_opened, .data = h_data_echo, .closed = h_reg_closed};
    const char *addrs[] = {"tcp://127.0.0.1:0"};
    h_server hs = {0};
    h_start(&hs, &ev, addrs, 1);
    int64_t t0 = h_now_ns();
    ck_assert_int_eq(evio_server_drain(h_srv(&hs), 10000), 0);
    H_WAIT(atomic_load(&hs.returned), 1000, "evio_serve to return: drained with nothing open");
    h_server_join(&hs);
    ck_assert_msg(hs.returned_ns - t0 <= 500 * MS * h_slow, "an empty drain took %.1f ms",
                  (double)(hs.returned_ns - t0) / MS);

    h_log_reset();
    h_reg_reset();
    h_start(&hs, &ev, addrs, 1);
    int c = h_connect(&hs, 0);
    h_reg_wait_opened(1);
    ck_assert_int_eq(evio_server_drain(h_srv(&hs), 10000), 0);
    ck_assert_int_eq(evio_server_drain(h_srv(&hs), 20000), 0); /* again: changes nothing */
    struct sockaddr_storage sa;
    socklen_t salen = h_copy_addr(&hs, 0, &sa);
    h_wait_refused((struct sockaddr *)&sa, salen, 1000, "drain");
    h_echo_check(c, "while draining");
    int64_t t1 = h_now_ns();
    ck_assert_int_eq(evio_server_shutdown(h_srv(&hs)), 0);
    H_WAIT(atomic_load(&hs.returned), 1000, "evio_serve to return after a shutdown during "
           "a drain");
    h_server_join(&hs);
    ck_assert_msg(hs.returned_ns - t1 <= 500 * MS * h_slow, "shutdown during a drain took %.1f "
                  "ms", (double)(hs.returned_ns - t1) / MS);
    ck_assert_int_eq(h_reg_get(0).nclosed, 1);
    int r = h_drain(c);
    ck_assert_msg(r == 0 || r == -ECONNRESET, "client: %s", strerror(-r));
    close(c);
    h_log_check_sequences(true);
}
END_TEST

/* evio_server_drain from a signal handler (SIGUSR1 delivered to the loop
 * thread itself, the way a SIGTERM handler would run), with 2 loops. */
static evio_server *_Atomic sig_srv;
static atomic_int sig_rc = 1;

static void sig_drain(int signo)
{
    (void)signo;
    atomic_store(&sig_rc, evio_server_drain(atomic_load(&sig_srv), 5000));
}

START_TEST(test_drain_from_signal_handler)
{
    h_reg_reset();
    evio_events ev = {.opened = h_reg_opened, .data = h_data_echo, .closed = h_reg_closed,
                      .nloops = 2};
    const char *addrs[] = {"tcp://127.0.0.1:0"};
    h_server hs = {0};
    h_start(&hs, &ev, addrs, 1);
    struct sockaddr_storage sa;
    socklen_t salen = h_copy_addr(&hs, 0, &sa);
    atomic_store(&sig_srv, h_srv(&hs));
    atomic_store(&sig_rc, 1);
    struct sigaction act, old;
    memset(&act, 0, sizeof act);
    act.sa_handler = sig_drain;
    sigemptyset(&act.sa_mask);
    ck_assert(sigaction(SIGUSR1, &act, &old) == 0);

    int a = h_connect(&hs, 0);
    h_reg_wait_opened(1);
    int b = h_connect(&hs, 0);
    h_reg_wait_opened(2);
    h_echo_check(a, "before the signal");
    ck_assert_int_eq(pthread_kill(hs.thread, SIGUSR1), 0);
    H_WAIT(atomic_load(&sig_rc) != 1, 2000, "the signal handler to run");
    ck_assert_msg(atomic_load(&sig_rc) == 0, "evio_server_drain in a signal handler returned %d",
                  atomic_load(&sig_rc));
    h_wait_refused((struct sockaddr *)&sa, salen, 1000, "drain from a signal handler");
    h_echo_check(a, "a after the signal");
    h_echo_check(b, "b after the signal");
    close(a);
    close(b);
    H_WAIT(atomic_load(&hs.returned), 3000, "evio_serve to return once drained");
    h_server_join(&hs);
    ck_assert(sigaction(SIGUSR1, &old, NULL) == 0);
    ck_assert_msg(h_reg_get(0).err == 0 && h_reg_get(1).err == 0, "closed(err = %d, %d)",
                  h_reg_get(0).err, h_reg_get(1).err);
    h_log_check_sequences(true);
}
END_TEST

/* ================================================================ statistics */

#define ST_TCP 6

static evio_action st_opened(evio_conn *c, const evio_info *info)
{
    h_reg_open(c, info);
    if (info->listener == 0)
        evio_write(c, "hi\n", 3);
    return EVIO_NONE;
}

static evio_action st_data(evio_conn *c, const void *in, size_t len)
{
    if (in == NULL) {
        h_log(c, H_WAKE, 0);
        evio_write(c, "W", 1);
        return EVIO_NONE;
    }
    if (len == 7 && memcmp(in, "detach!", 7) == 0) {
        h_log(c, H_DATA, (int64_t)len);
        return EVIO_DETACH;
    }
    return h_data_echo(c, in, len);
}

static evio_action st_detached(evio_conn *c, int fd)
{
    int i = h_reg_index(c);
    pthread_mutex_lock(&h_reg.mu);
    if (i >= 0 && i < H_REG_MAX) {
        h_reg.c[i].nclosed++;
        h_reg.c[i].closed_ns = h_now_ns();
    }
    pthread_mutex_unlock(&h_reg.mu);
    h_detached_log(c, fd); /* closes fd */
    atomic_fetch_add(&h_reg.closed, 1);
    return EVIO_NONE;
}

static void st_format(char *buf, size_t size, const char *name, const evio_stats *s)
{
    snprintf(buf, size,
             "%s{open %llu accepted %llu closed %llu refused %llu filtered %llu in %llu out "
             "%llu wakes %llu}",
             name, (unsigned long long)s->open, (unsigned long long)s->accepted,
             (unsigned long long)s->closed, (unsigned long long)s->refused,
             (unsigned long long)s->filtered, (unsigned long long)s->bytes_in,
             (unsigned long long)s->bytes_out, (unsigned long long)s->wakes);
}

static bool st_eq(const evio_stats *a, const evio_stats *b)
{
    return a->open == b->open && a->accepted == b->accepted && a->closed == b->closed &&
           a->refused == b->refused && a->filtered == b->filtered &&
           a->bytes_in == b->bytes_in && a->bytes_out == b->bytes_out && a->wakes == b->wakes;
}

/* Known traffic: N connections with greetings, echoes of known sizes, K
 * wakes, one UDP exchange, two closes: the totals and (with 2 loops) the
 * per-loop figures match exactly.  _i: 1 or 2 loops. */
START_TEST(test_stats_match_traffic)
{
    const int nloops = _i + 1;
    h_reg_reset();
    evio_events ev = {.opened = st_opened, .data = st_data, .closed = h_reg_closed,
                      .detached = st_detached, .nloops = nloops};
    const char *addrs[] = {"tcp://127.0.0.1:0", "udp://127.0.0.1:0"};
    h_server hs = {0};
    h_start(&hs, &ev, addrs, 2);
    evio_server *srv = h_srv(&hs);

    evio_stats zero = {0}, tot, per[4];
    ck_assert_int_eq(evio_server_stats(srv, &tot, NULL, 0), nloops);
    char m1[300], m2[300];
    st_format(m1, sizeof m1, "", &tot);
    ck_assert_msg(st_eq(&tot, &zero), "stats before any traffic: %s", m1);

    /* What each connection did: [ST_TCP] is the UDP session. */
    uint64_t in[ST_TCP + 1] = {0}, out[ST_TCP + 1] = {0}, wakes[ST_TCP + 1] = {0};
    bool gone[ST_TCP + 1] = {false};
    int fds[ST_TCP];
    for (int i = 0; i < ST_TCP; i++) {
        char hi[3];
        fds[i] = h_connect(&hs, 0);
        h_reg_wait_opened(i + 1);
        h_recv_exact(fds[i], hi, 3);
        out[i] += 3;
        size_t m = 1000u * (size_t)(i + 1) + 7u * (size_t)i;
        uint8_t *p = h_xmalloc(m), *q = h_xmalloc(m);
        h_fill(p, m, (uint32_t)i);
        h_send_all(fds[i], p, m);
        h_recv_exact(fds[i], q, m);
        ck_assert(memcmp(p, q, m) == 0);
        in[i] += m;
        out[i] += m;
        free(p);
        free(q);
    }
    for (int i = 0; i < ST_TCP; i++) {
        uint64_t id = h_reg_get(i).id;
        for (int w = 0; w < i % 3 + 1; w++) { /* one at a time: none coalesce */
            char W;
            ck_assert_int_eq(evio_wake(srv, id), 0);
            h_recv_exact(fds[i], &W, 1);
            ck_assert_int_eq(W, 'W');
            wakes[i]++;
            out[i]++;
        }
    }
    int u = h_udp_client(&hs, 1);
    uint8_t dg[100], back[100];
    h_fill(dg, sizeof dg, 99);
    h_send_all(u, dg, sizeof dg);
    ck_assert_msg(recv(u, back, sizeof back, 0) == (ssize_t)sizeof back, "udp echo: %s",
                  strerror(errno));
    ck_assert(memcmp(dg, back, sizeof dg) == 0);
    h_reg_wait_opened(ST_TCP + 1);
    in[ST_TCP] = out[ST_TCP] = sizeof dg;
    /* evio_send output counts in bytes_out, not in wakes. */
    for (int k = 0; k < 3; k++)
        ck_assert_int_eq(evio_send(srv, h_reg_get(3).id, "S", 1), 0);
    char sss[3];
    h_recv_exact(fds[3], sss, 3);
    ck_assert(memcmp(sss, "SSS", 3) == 0);
    out[3] += 3;
    /* Two close, one detaches: "closed" counts both kinds. */
    for (int i = 0; i < 2; i++) {
        close(fds[i]);
        gone[i] = true;
    }
    h_reg_wait_closed(2);
    h_send_all(fds[2], "detach!", 7);
    in[2] += 7;
    gone[2] = true;
    h_reg_wait_closed(3);
    ck_assert_int_eq(h_drain(fds[2]), 0);

    /* Expected, in total and per loop (by the thread each connection ran on). */
    evio_stats want = {0}, want_per[4];
    memset(want_per, 0, sizeof want_per);
    for (int i = 0; i <= ST_TCP; i++) {
        h_conn f = h_reg_get(i);
        ck_assert(f.loop >= 0 && f.loop < nloops);
        if (i < ST_TCP)
            ck_assert_msg(f.loop == i % nloops, "round robin: connection %d opened on loop %d",
                          i, f.loop);
        evio_stats *w = &want_per[f.loop];
        w->accepted++;
        w->open += !gone[i];
        w->closed += gone[i];
        w->bytes_in += in[i];
        w->bytes_out += out[i];
        w->wakes += wakes[i];
    }
    for (int l = 0; l < nloops; l++) {
        want.accepted += want_per[l].accepted;
        want.open += want_per[l].open;
        want.closed += want_per[l].closed;
        want.bytes_in += want_per[l].bytes_in;
        want.bytes_out += want_per[l].bytes_out;
        want.wakes += want_per[l].wakes;
    }
    /* bytes_out is counted after send() returns, which may be after the
     * client read the bytes: give the counters a moment. */
    bool ok;
    H_WAIT_FOR(ok, (evio_server_stats(srv, &tot, per, nloops), st_eq(&tot, &want)), 2000);
    (void)ok;
    ck_assert_int_eq(evio_server_stats(srv, &tot, per, nloops), nloops);
    st_format(m1, sizeof m1, "got ", &tot);
    st_format(m2, sizeof m2, "want ", &want);
    ck_assert_msg(st_eq(&tot, &want), "total: %s, %s", m1, m2);
    evio_stats sum = {0};
    for (int l = 0; l < nloops; l++) {
        st_format(m1, sizeof m1, "got ", &per[l]);
        st_format(m2, sizeof m2, "want ", &want_per[l]);
        ck_assert_msg(st_eq(&per[l], &want_per[l]), "loop %d: %s, %s", l, m1, m2);
        sum.open += per[l].open;
        sum.accepted += per[l].accepted;
        sum.closed += per[l].closed;
        sum.refused += per[l].refused;
        sum.filtered += per[l].filtered;
        sum.bytes_in += per[l].bytes_in;
        sum.bytes_out += per[l].bytes_out;
        sum.wakes += per[l].wakes;
    }
    ck_assert_msg(st_eq(&sum, &tot), "the per-loop figures do not add up to the total");
    st_format(m1, sizeof m1, "", &tot);
    printf("%s[%d loops]: %s\n", tcase_name(), nloops, m1);

    /* per_loop is filled only up to the nloops passed. */
    evio_stats few[3];
    memset(few, 0x5A, sizeof few);
    evio_stats pattern;
    memset(&pattern, 0x5A, sizeof pattern);
    ck_assert_int_eq(evio_server_stats(srv, NULL, few, 1), nloops);
    ck_assert_msg(st_eq(&few[0], &per[0]), "per_loop[0] with nloops = 1");
    ck_assert_msg(memcmp(&few[1], &pattern, sizeof pattern) == 0,
                  "evio_server_stats wrote past the nloops it was given");

    for (int i = 2; i < ST_TCP; i++)
        close(fds[i]);
    close(u);
    h_reg_wait_closed(ST_TCP);
    ck_assert_int_eq(h_log_count(H_DETACHED), 1);
    h_server_stop(&hs);
    h_log_check_sequences(true);
}
END_TEST

/* ================================================================ admission everywhere (issue 12) */

static atomic_int ad_filter_calls;

static int ad_deny_all(void *udata, const struct sockaddr *sa, socklen_t len)
{
    (void)udata, (void)sa, (void)len;
    atomic_fetch_add(&ad_filter_calls, 1);
    return 0;
}

/* UDP peers are admitted like TCP clients: a filter that refuses everyone
 * is called for a new UDP peer and no session opens (counted in filtered);
 * with max_conns = 1 only one of three peers gets a session.  _i: 0: the
 * filter; 1: the limit. */
START_TEST(test_udp_admission_filter_and_limit)
{
    h_reg_reset();
    atomic_store(&ad_filter_calls, 0);
    evio_events ev = {.opened = h_reg_opened, .data = h_data_echo, .closed = h_reg_closed};
    if (_i == 0)
        ev.accept_filter = ad_deny_all;
    else
        ev.max_conns = 1;
    const char *addrs[] = {"udp://127.0.0.1:0"};
    h_server hs = {0};
    h_start(&hs, &ev, addrs, 1);

    int u[3];
    for (int i = 0; i < 3; i++) {
        u[i] = h_udp_client(&hs, 0);
        h_send_all(u[i], "hi", 2);
    }
    bool ok;
    H_WAIT_FOR(ok, h_stats(&hs).filtered + h_stats(&hs).refused >= (_i == 0 ? 3 : 2),
               2000);
    evio_stats s = h_stats(&hs);
    ck_assert_msg(ok, "UDP peers were not admitted through the filter/limit: filter called "
                  "%d times, %d sessions opened, stats accepted %llu filtered %llu refused "
                  "%llu", atomic_load(&ad_filter_calls), atomic_load(&h_reg.opened),
                  (unsigned long long)s.accepted, (unsigned long long)s.filtered,
                  (unsigned long long)s.refused);
    h_sleep_ms(50);
    s = h_stats(&hs);
    int want = _i == 0 ? 0 : 1;
    ck_assert_msg(atomic_load(&h_reg.opened) == want && s.accepted == (uint64_t)want &&
                      s.open == (uint64_t)want,
                  "%d sessions opened (accepted %llu, open %llu), expected %d",
                  atomic_load(&h_reg.opened), (unsigned long long)s.accepted,
                  (unsigned long long)s.open, want);
    if (_i == 0)
        ck_assert_int_ge(atomic_load(&ad_filter_calls), 3);
    for (int i = 0; i < 3; i++)
        close(u[i]);
    h_server_stop(&hs);
    h_log_check_sequences(true);
}
END_TEST

static int ad_slow_filter(void *udata, const struct sockaddr *sa, socklen_t len)
{
    (void)udata, (void)sa, (void)len;
    atomic_fetch_add(&ad_filter_calls, 1);
    h_sleep_ms(30); /* widens the window in which loops admit at once */
    return 1;
}

/* max_conns = 1 holds with four loops accepting at once (?reuseport): the
 * admission is one atomic step, so exactly one of eight clients opens. */
START_TEST(test_max_conns_atomic_across_loops)
{
    h_reg_reset();
    atomic_store(&ad_filter_calls, 0);
    evio_events ev = {.opened = h_reg_opened, .data = h_data_echo, .closed = h_reg_closed,
                      .max_conns = 1, .nloops = 4, .accept_filter = ad_slow_filter};
    const char *addrs[] = {"tcp://127.0.0.1:0?reuseport=true"};
    h_server hs = {0};
    h_start(&hs, &ev, addrs, 1);
    enum { N = 8 };
    int fds[N];
    for (int i = 0; i < N; i++)
        fds[i] = h_connect(&hs, 0);
    H_WAIT(h_stats(&hs).accepted + h_stats(&hs).refused >= N, 5000,
           "all %d clients to be admitted or refused", N);
    h_sleep_ms(50);
    evio_stats s = h_stats(&hs);
    ck_assert_msg(s.accepted == 1 && s.refused == N - 1 && atomic_load(&h_reg.opened) == 1,
                  "max_conns = 1 with 4 loops: %d opened, accepted %llu, refused %llu",
                  atomic_load(&h_reg.opened), (unsigned long long)s.accepted,
                  (unsigned long long)s.refused);
    for (int i = 0; i < N; i++)
        close(fds[i]);
    h_reg_wait_closed(1);
    h_server_stop(&hs);
    h_log_check_sequences(true);
}
END_TEST

static atomic_int lc_per_loop[4];

static evio_action lc_opened(evio_conn *c, const evio_info *info)
{
    int k = evio_conn_loop(c);
    if (k >= 0 && k < 4)
        atomic_fetch_add(&lc_per_loop[k], 1);
    return h_reg_opened(c, info);
}

/* Least connections counts a dial on its loop as soon as evio_dial picks
 * the loop: eight quick dials from one thread spread 2/2/2/2 over four
 * loops. */
START_TEST(test_least_connections_counts_dials_in_flight)
{
    h_reg_reset();
    for (int i = 0; i < 4; i++)
        atomic_store(&lc_per_loop[i], 0);
    evio_events ev = {.opened = lc_opened, .data = h_data_echo, .closed = h_reg_closed,
                      .nloops = 4, .balance = EVIO_LEAST_CONNECTIONS};
    const char *addrs[] = {"tcp://127.0.0.1:0"};
    h_server hs = {0};
    h_start(&hs, &ev, addrs, 1);
    int rc;
    int port, lfd = h_test_listener(&port);
    char dial_addr[64];
    snprintf(dial_addr, sizeof dial_addr, "tcp://127.0.0.1:%d", port);
    int peers[8];
    for (int i = 0; i < 8; i++) {
        uint64_t id;
        rc = evio_dial(h_srv(&hs), dial_addr, 2000 * h_slow, NULL, &id);
        ck_assert_msg(rc == 0, "evio_dial: %d (%s)", rc, evio_strerror(rc));
    }
    for (int i = 0; i < 8; i++)
        peers[i] = h_accept_within(lfd, 2000);
    h_reg_wait_opened(8);
    ck_assert_msg(atomic_load(&lc_per_loop[0]) == 2 && atomic_load(&lc_per_loop[1]) == 2 &&
                      atomic_load(&lc_per_loop[2]) == 2 && atomic_load(&lc_per_loop[3]) == 2,
                  "8 dials spread %d/%d/%d/%d over 4 loops, expected 2/2/2/2",
                  atomic_load(&lc_per_loop[0]), atomic_load(&lc_per_loop[1]),
                  atomic_load(&lc_per_loop[2]), atomic_load(&lc_per_loop[3]));
    for (int i = 0; i < 8; i++)
        close(peers[i]);
    close(lfd);
    h_reg_wait_closed(8);
    h_server_stop(&hs);
    h_log_check_sequences(true);
}
END_TEST

/* A drain ends UDP sessions at once (closed() with 0): they have nothing
 * to finish, and their socket is closed.  evio_send to one then says
 * EVIO_ENOTFOUND instead of dropping the datagram silently. */
START_TEST(test_drain_ends_udp_sessions)
{
    h_reg_reset();
    evio_events ev = {.opened = h_reg_opened, .data = h_data_echo, .closed = h_reg_closed};
    const char *addrs[] = {"udp://127.0.0.1:0", "tcp://127.0.0.1:0"};
    h_server hs = {0};
    h_start(&hs, &ev, addrs, 2);
    int t = h_connect(&hs, 1); /* keeps the drain going */
    h_reg_wait_opened(1);
    int u = h_udp_client(&hs, 0);
    char b[8];
    h_send_all(u, "hi", 2);
    ck_assert_msg(recv(u, b, sizeof b, 0) == 2, "udp echo: %s", strerror(errno));
    h_reg_wait_opened(2);
    uint64_t uid = h_reg_get(1).id;
    ck_assert_int_eq(evio_server_drain(h_srv(&hs), 10000), 0);
    H_WAIT(h_reg_get(1).nclosed == 1, 1000, "the UDP session to close when the drain began");
    ck_assert_msg(h_reg_get(1).err == 0, "UDP session closed(err = %d)", h_reg_get(1).err);
    ck_assert_int_eq(evio_send(h_srv(&hs), uid, "x", 1), EVIO_ENOTFOUND);
    h_echo_check(t, "tcp goes on while draining");
    close(t);
    H_WAIT(atomic_load(&hs.returned), 3000, "evio_serve to return once drained");
    h_server_join(&hs);
    close(u);
    h_log_check_sequences(true);
}
END_TEST

/* The README's local_only filter, as printed there: on a dual-stack
 * listener ("tcp://:PORT") IPv4 peers arrive as ::ffff:a.b.c.d. */
static int local_only(void *udata, const struct sockaddr *sa, socklen_t len)
{
    (void)udata, (void)len;
    static const unsigned char mapped_lo[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff,
                                                127, 0, 0, 1};
    if (sa->sa_family == AF_UNIX)
        return 1;
    if (sa->sa_family == AF_INET)
        return ((const struct sockaddr_in *)sa)->sin_addr.s_addr == htonl(INADDR_LOOPBACK);
    if (sa->sa_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        return IN6_IS_ADDR_LOOPBACK(a) || memcmp(a, mapped_lo, 16) == 0;
    }
    return 0;
}

START_TEST(test_readme_local_only_filter_on_dual_stack)
{
    h_reg_reset();
    evio_events ev = {.opened = h_reg_opened, .data = h_data_echo, .closed = h_reg_closed,
                      .accept_filter = local_only};
    const char *addrs[] = {"tcp://:0"};
    h_server hs = {0};
    h_start(&hs, &ev, addrs, 1);
    int rc;
    int port = h_server_port(&hs, 0);
    struct sockaddr_in lo = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int fd = h_connect_addr((struct sockaddr *)&lo, sizeof lo);
    h_reg_wait_opened(1);
    h_echo_check(fd, "127.0.0.1 on a dual-stack listener");
    close(fd);
    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert(fd >= 0);
    h_set_timeouts(fd, H_IO_TIMEOUT_MS);
    struct sockaddr_in me = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000002)};
    ck_assert_msg(bind(fd, (struct sockaddr *)&me, sizeof me) == 0, "bind: %s", strerror(errno));
    rc = h_try_connect(fd, (struct sockaddr *)&lo, sizeof lo);
    ck_assert_msg(rc == 0, "connect from 127.0.0.2: %s", strerror(-rc));
    h_expect_closed_at_once(fd, "a client from 127.0.0.2");
    close(fd);
    h_reg_wait_closed(1);
    ck_assert_int_eq(h_stats(&hs).filtered, 1);
    h_server_stop(&hs);
    h_log_check_sequences(true);
}
END_TEST

/* ---------------------------------------------------------------- the case */

TCase *tcase_features(void)
{
    TCase *tc = h_tcase("features", 40);
    tcase_add_loop_test(tc, test_send_from_many_threads, 0, 2);
    tcase_add_loop_test(tc, test_close_from_thread_flushes_first, 0, 2);
    tcase_add_test(tc, test_send_races_close);
    tcase_add_test(tc, test_send_to_dialed_and_udp);
    tcase_add_test(tc, test_idle_timeout_idle_vs_chatty);
    tcase_add_loop_test(tc, test_idle_timeout_per_connection, 0, 3);
    tcase_add_test(tc, test_idle_many_connections_cost_little_cpu);
    tcase_add_loop_test(tc, test_max_conns_enforced_exactly, 0, 2);
    tcase_add_loop_test(tc, test_accept_filter_by_address, 0, 2);
    tcase_add_loop_test(tc, test_drain_lets_inflight_response_finish, 0, 2);
    tcase_add_test(tc, test_drain_from_event);
    tcase_add_loop_test(tc, test_drain_deadline_closes_stragglers, 0, 2);
    tcase_add_test(tc, test_drain_unix_removes_socket_file);
    tcase_add_test(tc, test_drain_idle_server_and_shutdown_during_drain);
    tcase_add_test(tc, test_drain_from_signal_handler);
    tcase_add_loop_test(tc, test_stats_match_traffic, 0, 2);
    tcase_add_loop_test(tc, test_udp_admission_filter_and_limit, 0, 2);
    tcase_add_test(tc, test_max_conns_atomic_across_loops);
    tcase_add_test(tc, test_least_connections_counts_dials_in_flight);
    tcase_add_test(tc, test_drain_ends_udp_sessions);
    tcase_add_test(tc, test_readme_local_only_filter_on_dual_stack);
    return tc;
}
