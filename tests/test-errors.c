/*
 * test-errors.c — error codes, messages, the backend's name, address
 * formatting, and evio_serve's answers to addresses it cannot serve.
 */
#include "harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#ifdef __linux__
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#endif

#include "backend.h"

START_TEST(test_backend_name)
{
    const char *name = evio_backend_name();
    ck_assert_ptr_nonnull(name);
    ck_assert_msg(strcmp(name, "epoll") == 0 || strcmp(name, "kqueue") == 0 ||
                      strcmp(name, "poll") == 0 || strcmp(name, "libev") == 0 ||
                      strcmp(name, "libuv") == 0 || strcmp(name, "io_uring") == 0,
                  "evio_backend_name() = \"%s\", not one of epoll, kqueue, poll, libev, libuv, io_uring",
                  name);
    ck_assert_str_eq(name, evio__backend.name);
    ck_assert_ptr_eq(evio_backend_name(), name);
}
END_TEST

/* Where io_uring is refused (a seccomp profile such as Docker's default,
 * here made by the test; kernel.io_uring_disabled fails the same way),
 * evio_serve on the io_uring backend fails with EVIO_EUNAVAILABLE and a
 * message naming the causes; a readiness backend does not notice. */
static evio_action unavail_serving(evio_server *srv)
{
    (void)srv;
    return EVIO_SHUTDOWN;
}

START_TEST(test_backend_unavailable_is_an_error)
{
#if defined(__linux__) && defined(__NR_io_uring_setup)
    int pfd[2];
    ck_assert(pipe(pfd) == 0);
    pid_t pid = fork();
    ck_assert(pid >= 0);
    if (pid == 0) {
        struct sock_filter f[] = {
            BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
            BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
            BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
            BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        };
        struct sock_fprog prog = {.len = sizeof f / sizeof f[0], .filter = f};
        int rc = -1;
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0 &&
            prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) == 0) {
            evio_events ev = {.serving = unavail_serving};
            const char *addrs[] = {"tcp://127.0.0.1:0"};
            rc = evio_serve(&ev, addrs, 1);
        } else {
            rc = 1; /* no seccomp here */
        }
        (void)!write(pfd[1], &rc, sizeof rc);
        _exit(0);
    }
    close(pfd[1]);
    int rc = 0;
    ssize_t n = read(pfd[0], &rc, sizeof rc);
    close(pfd[0]);
    int st;
    waitpid(pid, &st, 0);
    ck_assert_int_eq(n, (ssize_t)sizeof rc);
    if (rc == 1) {
        printf("%s: no seccomp filters here: not checked\n", tcase_name());
        return;
    }
    if (evio__backend.caps & EVIO__CAP_COMPLETION) {
        ck_assert_msg(rc == EVIO_EUNAVAILABLE, "evio_serve with io_uring_setup refused: %d (%s)", rc,
                      evio_strerror(rc));
        ck_assert_msg(strstr(evio_strerror(rc), "io_uring") && strstr(evio_strerror(rc), "seccomp"),
                      "the message does not name the causes: %s", evio_strerror(rc));
        printf("%s: %s\n", tcase_name(), evio_strerror(rc));
    } else {
        ck_assert_msg(rc == 0, "evio_serve on %s with io_uring refused: %d (%s)", evio_backend_name(),
                      rc, evio_strerror(rc));
    }
#endif
}
END_TEST

START_TEST(test_strerror)
{
    const int evio_codes[] = {EVIO_EADDR,     EVIO_ESCHEME, EVIO_EOPTION, EVIO_ENOADDR,
                              EVIO_EBACKEND,  EVIO_ESHUTDOWN, EVIO_ENOTFOUND, EVIO_EINVAL,
                              EVIO_ENONAME,   -ECONNRESET,  -EADDRINUSE,  -EPIPE,
                              -EMFILE};
    const size_t n = sizeof evio_codes / sizeof evio_codes[0];
    char copies[sizeof evio_codes / sizeof evio_codes[0]][256];
    for (size_t i = 0; i < n; i++) {
        const char *m = evio_strerror(evio_codes[i]);
        ck_assert_msg(m != NULL, "evio_strerror(%d) returned NULL", evio_codes[i]);
        ck_assert_msg(m[0] != 0, "evio_strerror(%d) returned \"\"", evio_codes[i]);
        snprintf(copies[i], sizeof copies[i], "%s", m);
    }
    /* Different codes, different messages (copies: a message may live in a
     * static buffer). */
    for (size_t i = 0; i < n; i++)
        for (size_t j = i + 1; j < n; j++)
            ck_assert_msg(strcmp(copies[i], copies[j]) != 0,
                          "evio_strerror(%d) and evio_strerror(%d) are both \"%s\"",
                          evio_codes[i], evio_codes[j], copies[i]);
    /* Codes evio never returns still get a message. */
    const int odd[] = {0, 1, 12345, -9999, -10000, -10099, -20000, INT_MIN, INT_MAX};
    for (size_t i = 0; i < sizeof odd / sizeof odd[0]; i++) {
        const char *m = evio_strerror(odd[i]);
        ck_assert_msg(m != NULL, "evio_strerror(%d) returned NULL", odd[i]);
    }
}
END_TEST

START_TEST(test_addr_format)
{
    char buf[256];
    struct sockaddr_in in = {.sin_family = AF_INET, .sin_port = htons(8080)};
    in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int n = evio_addr_format((struct sockaddr *)&in, sizeof in, buf, sizeof buf);
    ck_assert_str_eq(buf, "tcp://127.0.0.1:8080");
    ck_assert_int_eq(n, (int)strlen("tcp://127.0.0.1:8080"));

    struct sockaddr_in6 in6 = {.sin6_family = AF_INET6, .sin6_port = htons(443),
                               .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    n = evio_addr_format((struct sockaddr *)&in6, sizeof in6, buf, sizeof buf);
    ck_assert_str_eq(buf, "tcp://[::1]:443");
    ck_assert_int_eq(n, (int)strlen("tcp://[::1]:443"));

    struct sockaddr_un un = {.sun_family = AF_UNIX};
    strcpy(un.sun_path, "/tmp/evio.sock");
    socklen_t unlen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(un.sun_path) + 1);
    n = evio_addr_format((struct sockaddr *)&un, unlen, buf, sizeof buf);
    ck_assert_str_eq(buf, "unix:///tmp/evio.sock");
    ck_assert_int_eq(n, (int)strlen("unix:///tmp/evio.sock"));

    /* Truncation works as snprintf's: NUL-terminated, full length returned. */
    memset(buf, 'Z', sizeof buf);
    n = evio_addr_format((struct sockaddr *)&in, sizeof in, buf, 5);
    ck_assert_int_eq(n, (int)strlen("tcp://127.0.0.1:8080"));
    ck_assert_str_eq(buf, "tcp:");
    ck_assert_int_eq(buf[5], 'Z');
    memset(buf, 'Z', sizeof buf);
    n = evio_addr_format((struct sockaddr *)&in, sizeof in, buf, 0);
    ck_assert_int_eq(n, (int)strlen("tcp://127.0.0.1:8080"));
    ck_assert_int_eq(buf[0], 'Z');

    /* An unsupported family is an error, not a crash. */
    struct sockaddr_storage ss = {.ss_family = AF_APPLETALK};
    n = evio_addr_format((struct sockaddr *)&ss, sizeof ss, buf, sizeof buf);
    ck_assert_msg(n < 0, "evio_addr_format(AF_APPLETALK) returned %d", n);
}
END_TEST

/* ---------------------------------------------------------------- serve errors */

static atomic_int served_events;

static evio_action count_opened(evio_conn *c, const evio_info *info)
{
    (void)c, (void)info;
    atomic_fetch_add(&served_events, 1);
    return EVIO_NONE;
}

static evio_action count_tick(evio_server *srv, int64_t *delay)
{
    (void)srv, (void)delay;
    atomic_fetch_add(&served_events, 1);
    return EVIO_NONE;
}

/* evio_serve(addrs) must fail with want (or any negative code if want is
 * 0) without ever serving. */
static void expect_serve_error(const char *const *addrs, size_t n, int want, const char *what)
{
    evio_events ev = {.opened = count_opened, .tick = count_tick};
    h_server hs = {0};
    int rc = h_server_start(&hs, &ev, addrs, n);
    if (rc == 0) {
        /* It serves: stop it, then fail. */
        h_server_stop(&hs);
        ck_abort_msg("evio_serve(%s) served; expected %d (%s)", what, want,
                     want ? evio_strerror(want) : "an error");
    }
    if (want)
        ck_assert_msg(rc == want, "evio_serve(%s) returned %d (%s), expected %d (%s)", what,
                      rc, evio_strerror(rc), want, evio_strerror(want));
    else
        ck_assert_msg(rc < 0, "evio_serve(%s) returned %d", what, rc);
    ck_assert_ptr_nonnull(evio_strerror(rc));
    ck_assert_int_eq(atomic_load(&served_events), 0);
}

static char *repeat(const char *prefix, char c, size_t count, const char *suffix)
{
    size_t pl = strlen(prefix), sl = strlen(suffix);
    char *s = (char *)h_xmalloc(pl + count + sl + 1);
    memcpy(s, prefix, pl);
    memset(s + pl, c, count);
    memcpy(s + pl + count, suffix, sl + 1);
    return s;
}

START_TEST(test_malformed_addresses)
{
    static const struct {
        const char *addr;
        int want; /* 0: any negative code */
    } cases[] = {
        {"tcp://", EVIO_EADDR},
        {"tcp://127.0.0.1:99999", EVIO_EADDR},
        {"tcp://127.0.0.1:65536", EVIO_EADDR},
        {"tcp://127.0.0.1:-1", EVIO_EADDR},
        {"tcp://127.0.0.1:12ab", EVIO_EADDR},
        {"tcp://[::1:0", EVIO_EADDR},
        {"tcp6://[::1:0", EVIO_EADDR},
        {"unix://", EVIO_EADDR},
        {"foo://x:1", EVIO_ESCHEME},
        {"tcpx://127.0.0.1:0", EVIO_ESCHEME},
        {"tcp://127.0.0.1:0?bogus=1", EVIO_EOPTION},
        {"tcp://127.0.0.1:0?reuseport=maybe", EVIO_EOPTION},
        {"tcp://127.0.0.1:0?reuseport=true&bogus", EVIO_EOPTION},
        {"tcp://127.0.0.1", 0},
        {"", 0},
        {"://127.0.0.1:0", 0},
        {"tcp4://[::1]:0", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *addrs[] = {cases[i].addr};
        char what[128];
        snprintf(what, sizeof what, "\"%s\"", cases[i].addr);
        expect_serve_error(addrs, 1, cases[i].want, what);
    }

    /* Huge strings: each part of an address overlong.  A string too long
     * to be any address may be refused as a whole (EVIO_EADDR) or by the
     * part that is wrong; 500-byte parts must be judged by the part. */
    struct {
        char *addr;
        int want, alt;
    } huge[] = {
        {repeat("tcp://127.0.0.1:", '9', 100000, ""), EVIO_EADDR, EVIO_EADDR},
        {repeat("", 'x', 100000, "://127.0.0.1:0"), EVIO_ESCHEME, EVIO_EADDR},
        {repeat("tcp://127.0.0.1:0?", 'o', 100000, "=1"), EVIO_EOPTION, EVIO_EADDR},
        {repeat("unix:///tmp/", 'u', 100000, ".sock"), EVIO_EADDR, EVIO_EADDR},
        {repeat("tcp://[", ':', 100000, "]:0"), EVIO_EADDR, EVIO_EADDR},
        {repeat("tcp://127.0.0.1:", '9', 500, ""), EVIO_EADDR, EVIO_EADDR},
        {repeat("", 'x', 500, "://127.0.0.1:0"), EVIO_ESCHEME, EVIO_ESCHEME},
        {repeat("tcp://127.0.0.1:0?", 'o', 500, "=1"), EVIO_EOPTION, EVIO_EOPTION},
        {repeat("tcp://127.0.0.1:0?reuseport=", 't', 500, ""), EVIO_EOPTION, EVIO_EOPTION},
        {repeat("unix:///tmp/", 'u', 200, ".sock"), EVIO_EADDR, EVIO_EADDR}, /* > sun_path */
    };
    for (size_t i = 0; i < sizeof huge / sizeof huge[0]; i++) {
        const char *addrs[] = {huge[i].addr};
        char what[128];
        snprintf(what, sizeof what, "\"%.24s...\" (%zu bytes)", huge[i].addr,
                 strlen(huge[i].addr));
        evio_events ev = {.opened = count_opened, .tick = count_tick};
        h_server hs = {0};
        int rc = h_server_start(&hs, &ev, addrs, 1);
        if (rc == 0)
            h_server_stop(&hs);
        ck_assert_msg(rc == huge[i].want || rc == huge[i].alt,
                      "evio_serve(%s) returned %d (%s), expected %d (%s)", what, rc,
                      evio_strerror(rc), huge[i].want, evio_strerror(huge[i].want));
        free(huge[i].addr);
    }

    /* A bad address after a good one: nothing is left bound (the fixture
     * checks the fds, the unix file must not linger). */
    char path[108], uaddr[128];
    h_unix_path(path, sizeof path, "bad");
    snprintf(uaddr, sizeof uaddr, "unix://%s", path);
    const char *two[] = {uaddr, "tcp://127.0.0.1:0?bogus=1"};
    expect_serve_error(two, 2, EVIO_EOPTION, "unix + malformed");
    ck_assert_msg(!h_path_exists(path), "%s left behind by a failed evio_serve", path);
}
END_TEST

START_TEST(test_no_address)
{
    const char *addrs[] = {"tcp://127.0.0.1:0"};
    expect_serve_error(addrs, 0, EVIO_ENOADDR, "0 addresses");
    expect_serve_error(NULL, 0, EVIO_ENOADDR, "NULL, 0 addresses");
    /* No events at all is a NULL argument (callbacks may be NULL, the
     * table may not). */
    ck_assert_int_eq(evio_serve(NULL, addrs, 1), EVIO_EINVAL);
}
END_TEST

START_TEST(test_address_in_use)
{
    /* Our own listener, without SO_REUSEPORT, holds a port. */
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert(fd >= 0);
    struct sockaddr_in sin = {.sin_family = AF_INET};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert(bind(fd, (struct sockaddr *)&sin, sizeof sin) == 0);
    ck_assert(listen(fd, 8) == 0);
    socklen_t len = sizeof sin;
    ck_assert(getsockname(fd, (struct sockaddr *)&sin, &len) == 0);
    char addr[64];
    snprintf(addr, sizeof addr, "tcp://127.0.0.1:%d", ntohs(sin.sin_port));

    const char *one[] = {addr};
    expect_serve_error(one, 1, -EADDRINUSE, addr);
    char with_reuse[96];
    snprintf(with_reuse, sizeof with_reuse, "%s?reuseport=true", addr);
    const char *reuse[] = {with_reuse};
    expect_serve_error(reuse, 1, -EADDRINUSE, with_reuse);

    /* Bound first, failing second: the first is unbound again. */
    char path[108], uaddr[128];
    h_unix_path(path, sizeof path, "inuse");
    snprintf(uaddr, sizeof uaddr, "unix://%s", path);
    const char *two[] = {uaddr, addr};
    expect_serve_error(two, 2, -EADDRINUSE, "unix + port in use");
    ck_assert_msg(!h_path_exists(path), "%s left behind by a failed evio_serve", path);
    close(fd);
}
END_TEST

TCase *tcase_errors(void)
{
    TCase *tc = h_tcase("errors", 20);
    tcase_add_test(tc, test_backend_name);
    tcase_add_test(tc, test_strerror);
    tcase_add_test(tc, test_backend_unavailable_is_an_error);
    tcase_add_test(tc, test_addr_format);
    tcase_add_test(tc, test_malformed_addresses);
    tcase_add_test(tc, test_no_address);
    tcase_add_test(tc, test_address_in_use);
    return tc;
}
