/*
 * harness.c — helpers for the evio conformance suite; see harness.h.
 */
#include "harness.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* ---------------------------------------------------------------- timing */

int h_slow = 1;
static int runner_pid;

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define H_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) ||             \
    __has_feature(memory_sanitizer)
#define H_SANITIZED 1
#endif
#endif

void h_init_slow(void)
{
    runner_pid = (int)getpid();
#ifdef H_SANITIZED
    h_slow = 3;
#endif
    const char *env = getenv("EVIO_TEST_SLOW");
    if (env && atoi(env) > 0)
        h_slow = atoi(env);
}

int64_t h_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t h_now_ms(void) { return h_now_ns() / 1000000; }

void h_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

int64_t h_thread_cpu_ns(pthread_t t)
{
    clockid_t cid;
    struct timespec ts;
    int rc = pthread_getcpuclockid(t, &cid);
    ck_assert_msg(rc == 0, "pthread_getcpuclockid: %s", strerror(rc));
    ck_assert_msg(clock_gettime(cid, &ts) == 0, "clock_gettime(thread): %s",
                  strerror(errno));
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ---------------------------------------------------------------- failures */

static pthread_mutex_t fail_mu = PTHREAD_MUTEX_INITIALIZER;
static int fail_count;
static char fail_first[1024];

void h_fail_record(const char *file, int line, const char *expr, const char *fmt, ...)
{
    char body[512], msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(body, sizeof body, fmt, ap);
    va_end(ap);
    if (expr)
        snprintf(msg, sizeof msg, "expected %s: %s", expr, body);
    else
        snprintf(msg, sizeof msg, "%s", body);
    pthread_mutex_lock(&fail_mu);
    if (fail_count++ == 0)
        snprintf(fail_first, sizeof fail_first, "%s:%d: %s", file, line, msg);
    if (fail_count <= 10)
        fprintf(stderr, "callback failure: %s:%d: %s\n", file, line, msg);
    pthread_mutex_unlock(&fail_mu);
}

int h_failures(void)
{
    pthread_mutex_lock(&fail_mu);
    int n = fail_count;
    pthread_mutex_unlock(&fail_mu);
    return n;
}

const char *h_first_failure(void) { return fail_first; }

/* ---------------------------------------------------------------- server */

h_server *h_of(const evio_server *srv) { return evio_server_udata(srv); }
void *h_user(const evio_server *srv) { return h_of(srv)->user; }
void *h_user_c(const evio_conn *c) { return h_user(evio_conn_server(c)); }

static evio_action h_serving(evio_server *srv)
{
    h_server *hs = evio_server_udata(srv);
    if (!hs) {
        h_fail_record(__FILE__, __LINE__, NULL, "evio_server_udata() returned NULL in serving()");
        return EVIO_SHUTDOWN;
    }
    hs->serving_ns = h_now_ns();
    hs->serving_thread = pthread_self();
    atomic_fetch_add(&hs->serving_count, 1);
    atomic_store(&hs->srv, srv);
    return hs->user_serving ? hs->user_serving(srv) : EVIO_NONE;
}

static void *h_serve_thread(void *arg)
{
    h_server *hs = arg;
    hs->rc = evio_serve(&hs->ev, hs->addrs, hs->naddrs);
    hs->returned_ns = h_now_ns();
    atomic_store(&hs->returned, true);
    return NULL;
}

int h_server_start(h_server *hs, const evio_events *ev, const char *const addrs[],
                   size_t n)
{
    ck_assert_msg(n <= sizeof hs->addrs / sizeof hs->addrs[0], "too many addresses");
    void *user = hs->user; /* a test may set it before starting */
    memset(hs, 0, sizeof *hs);
    hs->user = user;
    hs->ev = *ev;
    hs->user_serving = ev->serving;
    hs->ev.serving = h_serving;
    hs->ev.udata = hs;
    for (size_t i = 0; i < n; i++)
        hs->addrs[i] = addrs[i];
    hs->naddrs = n;
    int rc = pthread_create(&hs->thread, NULL, h_serve_thread, hs);
    ck_assert_msg(rc == 0, "pthread_create: %s", strerror(rc));
    hs->started = true;
    H_WAIT(atomic_load(&hs->srv) != NULL || atomic_load(&hs->returned), 5000,
           "serving() or evio_serve() to return");
    if (atomic_load(&hs->srv) == NULL) {
        pthread_join(hs->thread, NULL);
        hs->started = false;
        ck_assert_msg(hs->rc != 0, "evio_serve returned 0 without serving()");
        return hs->rc;
    }
    return 0;
}

void h_server_join(h_server *hs)
{
    ck_assert_msg(hs->started, "h_server_join: server not running");
    H_WAIT(atomic_load(&hs->returned), 5000, "evio_serve() to return after shutdown");
    pthread_join(hs->thread, NULL);
    hs->started = false;
    ck_assert_msg(hs->rc == 0, "evio_serve returned %d (%s) after a shutdown, expected 0",
                  hs->rc, evio_strerror(hs->rc));
    ck_assert_msg(atomic_load(&hs->serving_count) == 1, "serving() fired %d times",
                  atomic_load(&hs->serving_count));
    h_assert_no_callback_failures();
}

void h_server_stop(h_server *hs)
{
    ck_assert_msg(hs->started, "h_server_stop: server not running");
    if (!atomic_load(&hs->returned)) {
        int rc = evio_server_shutdown(atomic_load(&hs->srv));
        ck_assert_msg(rc == 0, "evio_server_shutdown returned %d", rc);
    }
    h_server_join(hs);
}

const struct sockaddr *h_server_addr(h_server *hs, size_t i, socklen_t *len)
{
    const struct sockaddr *sa = evio_server_addr(atomic_load(&hs->srv), i, len);
    ck_assert_msg(sa != NULL, "evio_server_addr(%zu) returned NULL", i);
    return sa;
}

int h_server_port(h_server *hs, size_t i)
{
    socklen_t len;
    const struct sockaddr *sa = h_server_addr(hs, i, &len);
    if (sa->sa_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)sa)->sin_port);
    if (sa->sa_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
    return -1;
}

/* ---------------------------------------------------------------- clients */

void h_set_timeouts(int fd, int ms)
{
    ms *= h_slow;
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    ck_assert(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) == 0);
    ck_assert(setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) == 0);
}

int h_socket_for(const struct sockaddr *sa)
{
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_msg(fd >= 0, "socket: %s", strerror(errno));
    h_set_timeouts(fd, H_IO_TIMEOUT_MS);
    return fd;
}

int h_try_connect(int fd, const struct sockaddr *sa, socklen_t len)
{
    while (connect(fd, sa, len) != 0) {
        if (errno != EINTR)
            return -errno;
    }
    return 0;
}

int h_connect_addr(const struct sockaddr *sa, socklen_t len)
{
    int fd = h_socket_for(sa);
    int rc = h_try_connect(fd, sa, len);
    char buf[160];
    ck_assert_msg(rc == 0, "connect to %s: %s", h_sockaddr_str(sa, len, buf, sizeof buf),
                  strerror(-rc));
    return fd;
}

int h_connect(h_server *hs, size_t i)
{
    socklen_t len;
    const struct sockaddr *sa = h_server_addr(hs, i, &len);
    return h_connect_addr(sa, len);
}

void h_send_all(int fd, const void *buf, size_t len)
{
    const uint8_t *p = buf;
    size_t done = 0;
    while (done < len) {
        ssize_t n = send(fd, p + done, len - done, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        ck_assert_msg(n > 0, "send: %s after %zu of %zu bytes",
                      errno == EAGAIN ? "timed out" : strerror(errno), done, len);
        done += (size_t)n;
    }
}

void h_recv_exact(int fd, void *buf, size_t len)
{
    uint8_t *p = buf;
    size_t done = 0;
    while (done < len) {
        ssize_t n = recv(fd, p + done, len - done, 0);
        if (n < 0 && errno == EINTR)
            continue;
        ck_assert_msg(n != 0, "recv: EOF after %zu of %zu bytes", done, len);
        ck_assert_msg(n > 0, "recv: %s after %zu of %zu bytes",
                      errno == EAGAIN ? "timed out" : strerror(errno), done, len);
        done += (size_t)n;
    }
}

size_t h_recv_until_eof(int fd, void *buf, size_t cap)
{
    uint8_t *p = buf;
    size_t done = 0;
    for (;;) {
        uint8_t extra;
        ssize_t n = done < cap ? recv(fd, p + done, cap - done, 0) : recv(fd, &extra, 1, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n == 0)
            return done;
        ck_assert_msg(n > 0, "recv: %s after %zu bytes, before EOF",
                      errno == EAGAIN ? "timed out" : strerror(errno), done);
        ck_assert_msg(done < cap, "recv: more than the %zu bytes expected before EOF", cap);
        done += (size_t)n;
    }
}

int h_drain(int fd)
{
    static uint8_t sink[65536];
    for (;;) {
        ssize_t n = recv(fd, sink, sizeof sink, 0);
        if (n > 0)
            continue;
        if (n == 0)
            return 0;
        if (errno == EINTR)
            continue;
        ck_assert_msg(errno != EAGAIN && errno != EWOULDBLOCK,
                      "recv timed out waiting for the server to close the connection");
        return -errno;
    }
}

void h_close_rst(int fd)
{
    struct linger lg = {1, 0};
    ck_assert(setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg) == 0);
    close(fd);
}

int h_local_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    ck_assert(getsockname(fd, (struct sockaddr *)&ss, &len) == 0);
    if (ss.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return -1;
}

bool h_sockaddr_eq(const struct sockaddr *a, socklen_t alen, const struct sockaddr *b,
                   socklen_t blen)
{
    if (!a || !b || a->sa_family != b->sa_family)
        return false;
    switch (a->sa_family) {
    case AF_INET: {
        const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
        return alen >= sizeof *x && blen >= sizeof *y && x->sin_port == y->sin_port &&
               x->sin_addr.s_addr == y->sin_addr.s_addr;
    }
    case AF_INET6: {
        const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
        return alen >= sizeof *x && blen >= sizeof *y && x->sin6_port == y->sin6_port &&
               memcmp(&x->sin6_addr, &y->sin6_addr, sizeof x->sin6_addr) == 0;
    }
    case AF_UNIX: {
        const struct sockaddr_un *x = (const void *)a, *y = (const void *)b;
        size_t off = offsetof(struct sockaddr_un, sun_path);
        size_t xl = alen > off ? strnlen(x->sun_path, alen - off) : 0;
        size_t yl = blen > off ? strnlen(y->sun_path, blen - off) : 0;
        return xl == yl && memcmp(x->sun_path, y->sun_path, xl) == 0;
    }
    default:
        return false;
    }
}

const char *h_sockaddr_str(const struct sockaddr *sa, socklen_t len, char *buf,
                           size_t size)
{
    char host[INET6_ADDRSTRLEN] = "?";
    if (!sa) {
        snprintf(buf, size, "(null)");
    } else if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const void *)sa;
        inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
        snprintf(buf, size, "%s:%d", host, ntohs(in->sin_port));
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const void *)sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
        snprintf(buf, size, "[%s]:%d", host, ntohs(in6->sin6_port));
    } else if (sa->sa_family == AF_UNIX) {
        const struct sockaddr_un *un = (const void *)sa;
        size_t off = offsetof(struct sockaddr_un, sun_path);
        int n = len > off ? (int)strnlen(un->sun_path, len - off) : 0;
        snprintf(buf, size, "unix:%.*s", n, un->sun_path);
    } else {
        snprintf(buf, size, "family %d", sa->sa_family);
    }
    return buf;
}

const char *h_unix_path(char *buf, size_t size, const char *tag)
{
    static atomic_int counter;
    /* The runner's pid (unique among parallel runs) plus the child's and a
     * counter (unique within one run). */
    snprintf(buf, size, "/tmp/evio-t%d-%d-%s-%d.sock", runner_pid, (int)getpid(), tag,
             atomic_fetch_add(&counter, 1));
    unlink(buf);
    return buf;
}

void h_cleanup_unix_paths(void)
{
    char prefix[32];
    int n = snprintf(prefix, sizeof prefix, "evio-t%d-", runner_pid);
    DIR *d = opendir("/tmp");
    struct dirent *de;
    while (d && (de = readdir(d)) != NULL) {
        if (strncmp(de->d_name, prefix, (size_t)n) == 0) {
            char path[300];
            snprintf(path, sizeof path, "/tmp/%s", de->d_name);
            unlink(path);
        }
    }
    if (d)
        closedir(d);
}

bool h_path_exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

static inline uint32_t h_mix(uint32_t x)
{
    x ^= x >> 16;
    x *= 0x7feb352dU;
    x ^= x >> 15;
    x *= 0x846ca68bU;
    x ^= x >> 16;
    return x;
}

void h_fill(uint8_t *buf, size_t len, uint32_t seed)
{
    for (size_t i = 0; i < len; i += 4) {
        uint32_t w = h_mix((uint32_t)(i >> 2) * 0x9e3779b9U ^ seed);
        for (size_t k = 0; k < 4 && i + k < len; k++)
            buf[i + k] = (uint8_t)(w >> (8 * k));
    }
}

size_t h_mismatch(const uint8_t *buf, size_t len, uint32_t seed)
{
    for (size_t i = 0; i < len; i += 4) {
        uint32_t w = h_mix((uint32_t)(i >> 2) * 0x9e3779b9U ^ seed);
        for (size_t k = 0; k < 4 && i + k < len; k++)
            if (buf[i + k] != (uint8_t)(w >> (8 * k)))
                return i + k;
    }
    return (size_t)-1;
}

uint8_t *h_xmalloc(size_t n)
{
    uint8_t *p = malloc(n ? n : 1);
    ck_assert_msg(p != NULL, "out of memory (%zu bytes)", n);
    return p;
}

bool h_have_ipv6(void)
{
    int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return false;
    struct sockaddr_in6 sin6 = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    bool ok = bind(fd, (struct sockaddr *)&sin6, sizeof sin6) == 0;
    close(fd);
    return ok;
}

/* ---------------------------------------------------------------- event log */

static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static h_event *log_ev;
static size_t log_n, log_cap;

void h_log(evio_conn *c, int type, int64_t arg)
{
    const evio_server *srv = evio_conn_server(c);
    uint64_t id = evio_conn_id(c);
    pthread_mutex_lock(&log_mu);
    if (log_n == log_cap) {
        size_t cap = log_cap ? log_cap * 2 : 4096;
        h_event *p = realloc(log_ev, cap * sizeof *p);
        if (!p) {
            pthread_mutex_unlock(&log_mu);
            h_fail_record(__FILE__, __LINE__, NULL, "event log: out of memory");
            return;
        }
        log_ev = p;
        log_cap = cap;
    }
    log_ev[log_n] = (h_event){srv, id, type, arg, log_n};
    log_n++;
    pthread_mutex_unlock(&log_mu);
}

size_t h_log_count(int type)
{
    size_t n = 0;
    pthread_mutex_lock(&log_mu);
    for (size_t i = 0; i < log_n; i++)
        n += log_ev[i].type == type;
    pthread_mutex_unlock(&log_mu);
    return n;
}

size_t h_log_count_id(uint64_t id, int type)
{
    size_t n = 0;
    pthread_mutex_lock(&log_mu);
    for (size_t i = 0; i < log_n; i++)
        n += log_ev[i].type == type && log_ev[i].id == id;
    pthread_mutex_unlock(&log_mu);
    return n;
}

int64_t h_log_last_arg(uint64_t id, int type)
{
    int64_t arg = INT64_MIN;
    pthread_mutex_lock(&log_mu);
    for (size_t i = 0; i < log_n; i++)
        if (log_ev[i].type == type && log_ev[i].id == id)
            arg = log_ev[i].arg;
    pthread_mutex_unlock(&log_mu);
    return arg;
}

h_event *h_log_copy(size_t *n)
{
    pthread_mutex_lock(&log_mu);
    h_event *p = malloc((log_n ? log_n : 1) * sizeof *p);
    if (p) {
        if (log_n)
            memcpy(p, log_ev, log_n * sizeof *p);
        *n = log_n;
    }
    pthread_mutex_unlock(&log_mu);
    ck_assert(p != NULL);
    return p;
}

static int by_id_seq(const void *a, const void *b)
{
    const h_event *x = a, *y = b;
    if (x->srv != y->srv)
        return (uintptr_t)x->srv < (uintptr_t)y->srv ? -1 : 1;
    if (x->id != y->id)
        return x->id < y->id ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static const char *ev_name(int t)
{
    static const char *names[] = {"?",      "opened",   "data",     "wake",
                                  "closed", "detached", "prewrite", "postwrite"};
    return t > 0 && t <= H_POSTWRITE ? names[t] : "?";
}

size_t h_log_check_sequences(bool all_ended)
{
    size_t n;
    h_event *ev = h_log_copy(&n);
    qsort(ev, n, sizeof *ev, by_id_seq);
    size_t conns = 0;
    for (size_t i = 0; i < n;) {
        uint64_t id = ev[i].id;
        const evio_server *srv = ev[i].srv;
        size_t j = i;
        bool ended = false;
        ck_assert_msg(id != 0, "an event for connection id 0 (ids are never 0)");
        ck_assert_msg(ev[i].type == H_OPENED,
                      "connection %llu: first event is %s, not opened",
                      (unsigned long long)id, ev_name(ev[i].type));
        conns++;
        for (j = i + 1; j < n && ev[j].id == id && ev[j].srv == srv; j++) {
            ck_assert_msg(!ended, "connection %llu: %s after it was closed/detached",
                          (unsigned long long)id, ev_name(ev[j].type));
            ck_assert_msg(ev[j].type != H_OPENED, "connection %llu: opened twice",
                          (unsigned long long)id);
            if (ev[j].type == H_CLOSED || ev[j].type == H_DETACHED)
                ended = true;
        }
        ck_assert_msg(ended || !all_ended, "connection %llu: never closed",
                      (unsigned long long)id);
        i = j;
    }
    free(ev);
    return conns;
}

void h_log_reset(void)
{
    pthread_mutex_lock(&log_mu);
    free(log_ev);
    log_ev = NULL;
    log_n = log_cap = 0;
    pthread_mutex_unlock(&log_mu);
}

/* ---------------------------------------------------------------- registry */

h_registry h_reg = {.mu = PTHREAD_MUTEX_INITIALIZER};

void h_reg_reset(void)
{
    pthread_mutex_lock(&h_reg.mu);
    memset(h_reg.c, 0, sizeof h_reg.c);
    h_reg.n = 0;
    h_reg.nthreads = 1;
    atomic_store(&h_reg.opened, 0);
    atomic_store(&h_reg.closed, 0);
    pthread_mutex_unlock(&h_reg.mu);
}

/* Under h_reg.mu. */
static int h_reg_loop_of_self(evio_conn *c)
{
    pthread_t self = pthread_self();
    if (pthread_equal(self, h_of(evio_conn_server(c))->serving_thread))
        return 0;
    for (int i = 1; i < h_reg.nthreads; i++)
        if (pthread_equal(self, h_reg.threads[i]))
            return i;
    if (h_reg.nthreads >= 16)
        return -1;
    h_reg.threads[h_reg.nthreads] = self;
    return h_reg.nthreads++;
}

int h_reg_index(const evio_conn *c)
{
    return (int)(intptr_t)evio_conn_context(c) - 1;
}

int h_reg_open(evio_conn *c, const evio_info *info)
{
    pthread_mutex_lock(&h_reg.mu);
    int i = h_reg.n < H_REG_MAX ? h_reg.n++ : -1;
    if (i >= 0) {
        h_conn *f = &h_reg.c[i];
        f->id = evio_conn_id(c);
        f->listener = info ? info->listener : -2;
        f->dialed = info && info->dialed;
        f->loop = h_reg_loop_of_self(c);
        f->opened_ns = h_now_ns();
        for (int k = 0; k < H_REG_RCS; k++)
            f->rc[k] = 1; /* "not called" */
        if (info && info->remote && info->remote_len <= sizeof f->remote) {
            memcpy(&f->remote, info->remote, info->remote_len);
            f->remote_len = info->remote_len;
        }
    }
    pthread_mutex_unlock(&h_reg.mu);
    H_EXPECT(i >= 0, "more than %d connections", H_REG_MAX);
    evio_conn_set_context(c, (void *)(intptr_t)(i + 1));
    h_opened_log(c, info);
    atomic_fetch_add(&h_reg.opened, 1);
    return i;
}

h_conn *h_reg_lock(evio_conn *c)
{
    int i = h_reg_index(c);
    if (i < 0 || i >= H_REG_MAX) {
        H_EXPECT(i >= 0 && i < H_REG_MAX, "a connection the registry does not know");
        return NULL;
    }
    pthread_mutex_lock(&h_reg.mu);
    return &h_reg.c[i];
}

void h_reg_unlock(void) { pthread_mutex_unlock(&h_reg.mu); }

void h_reg_rc(evio_conn *c, int k, int rc)
{
    h_conn *f = h_reg_lock(c);
    if (f) {
        f->rc[k] = rc;
        h_reg_unlock();
    }
}

void h_reg_note_input(evio_conn *c, const void *in, size_t len)
{
    h_conn *f = h_reg_lock(c);
    if (f) {
        f->in += len;
        if (len > f->max_read)
            f->max_read = len;
        size_t room = sizeof f->req - 1 - f->reqlen;
        size_t k = len < room ? len : room;
        memcpy(f->req + f->reqlen, in, k);
        f->reqlen += k;
        h_reg_unlock();
    }
}

h_conn h_reg_get(int i)
{
    ck_assert_msg(i >= 0 && i < H_REG_MAX, "registry index %d", i);
    pthread_mutex_lock(&h_reg.mu);
    int n = h_reg.n;
    h_conn f = i < n ? h_reg.c[i] : (h_conn){0};
    pthread_mutex_unlock(&h_reg.mu);
    ck_assert_msg(i < n, "connection %d never opened (%d did)", i, n);
    return f;
}

int h_reg_by_listener(int listener)
{
    int found = -1;
    pthread_mutex_lock(&h_reg.mu);
    for (int i = 0; i < h_reg.n; i++)
        if (h_reg.c[i].listener == listener)
            found = i;
    pthread_mutex_unlock(&h_reg.mu);
    ck_assert_msg(found >= 0, "no connection opened from listener %d", listener);
    return found;
}

evio_action h_reg_opened(evio_conn *c, const evio_info *info)
{
    h_reg_open(c, info);
    return EVIO_NONE;
}

evio_action h_reg_closed(evio_conn *c, int err)
{
    int64_t now = h_now_ns();
    h_conn *f = h_reg_lock(c);
    if (f) {
        f->closed_ns = now;
        f->err = err;
        f->nclosed++;
        h_reg_unlock();
    }
    h_closed_log(c, err);
    atomic_fetch_add(&h_reg.closed, 1);
    return EVIO_NONE;
}

evio_action h_reg_detached(evio_conn *c, int fd)
{
    h_conn *f = h_reg_lock(c);
    if (f) {
        f->ndetached++;
        h_reg_unlock();
    }
    h_detached_log(c, fd);
    atomic_fetch_add(&h_reg.closed, 1);
    return EVIO_NONE;
}

void h_reg_wait_opened(int n)
{
    H_WAIT(atomic_load(&h_reg.opened) >= n, 5000, "opened() to fire %d times (it fired %d)", n,
           atomic_load(&h_reg.opened));
}

void h_reg_wait_closed(int n)
{
    H_WAIT(atomic_load(&h_reg.closed) >= n, 5000, "closed() to fire %d times (it fired %d)", n,
           atomic_load(&h_reg.closed));
}

/* ---------------------------------------------------------------- scaffolding */

evio_server *h_srv(h_server *hs) { return atomic_load(&hs->srv); }

void h_start(h_server *hs, const evio_events *ev, const char *const addrs[], size_t n)
{
    int rc = h_server_start(hs, ev, addrs, n);
    ck_assert_msg(rc == 0, "evio_serve: %d (%s)", rc, evio_strerror(rc));
}

evio_stats h_stats(h_server *hs)
{
    evio_stats s;
    memset(&s, 0xA5, sizeof s);
    int n = evio_server_stats(h_srv(hs), &s, NULL, 0);
    ck_assert_msg(n >= 1, "evio_server_stats returned %d", n);
    return s;
}

void h_echo_check(int fd, const char *msg)
{
    size_t len = strlen(msg);
    char buf[256];
    ck_assert(len <= sizeof buf);
    h_send_all(fd, msg, len);
    h_recv_exact(fd, buf, len);
    ck_assert_msg(memcmp(buf, msg, len) == 0, "echo of \"%s\" came back as \"%.*s\"", msg,
                  (int)len, buf);
}

int h_client(h_server *hs, size_t i, int rcvbuf)
{
    socklen_t len;
    const struct sockaddr *sa = h_server_addr(hs, i, &len);
    int fd = h_socket_for(sa);
    if (rcvbuf > 0)
        ck_assert(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf) == 0);
    int rc = h_try_connect(fd, sa, len);
    ck_assert_msg(rc == 0, "connect: %s", strerror(-rc));
    return fd;
}

int h_udp_client(h_server *hs, size_t i)
{
    socklen_t len;
    const struct sockaddr *sa = h_server_addr(hs, i, &len);
    int fd = socket(sa->sa_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ck_assert_msg(fd >= 0, "socket: %s", strerror(errno));
    h_set_timeouts(fd, H_IO_TIMEOUT_MS);
    ck_assert_msg(connect(fd, sa, len) == 0, "connect udp: %s", strerror(errno));
    return fd;
}

socklen_t h_copy_addr(h_server *hs, size_t i, struct sockaddr_storage *ss)
{
    socklen_t len;
    const struct sockaddr *sa = h_server_addr(hs, i, &len);
    ck_assert(len <= sizeof *ss);
    memcpy(ss, sa, len);
    return len;
}

int h_test_listener(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert(fd >= 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    ck_assert(bind(fd, (struct sockaddr *)&sin, sizeof sin) == 0);
    ck_assert(listen(fd, 16) == 0);
    *port = h_local_port(fd);
    return fd;
}

int h_accept_within(int lfd, int ms)
{
    struct pollfd p = {.fd = lfd, .events = POLLIN};
    ck_assert_msg(poll(&p, 1, ms * h_slow) == 1, "nothing to accept within %d ms", ms * h_slow);
    int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    ck_assert_msg(fd >= 0, "accept: %s", strerror(errno));
    return fd;
}

/* A client the server closes at once must see EOF (or a reset) promptly. */
void h_expect_closed_at_once(int fd, const char *what)
{
    int64_t t0 = h_now_ms();
    int rc = h_drain(fd);
    int64_t dt = h_now_ms() - t0;
    ck_assert_msg(rc == 0 || rc == -ECONNRESET, "%s: recv failed with %s, expected EOF",
                  what, strerror(-rc));
    ck_assert_msg(dt <= 1000 * h_slow, "%s: EOF took %lld ms, expected at once", what,
                  (long long)dt);
}

/* Connect attempts to sa until one is refused (ECONNREFUSED, or ENOENT for a
 * removed unix socket); returns how long that took in ms, failing the test
 * past ms x h_slow. */
int64_t h_wait_refused(const struct sockaddr *sa, socklen_t len, int ms, const char *what)
{
    int64_t t0 = h_now_ms(), deadline = t0 + (int64_t)ms * h_slow;
    int rc;
    for (;;) {
        int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        ck_assert_msg(fd >= 0, "socket: %s", strerror(errno));
        rc = h_try_connect(fd, sa, len);
        close(fd);
        if (rc == -ECONNREFUSED || rc == -ENOENT)
            return h_now_ms() - t0;
        if (h_now_ms() > deadline)
            break;
        h_sleep_ms(2);
    }
    ck_abort_msg("%s: a new connection was still %s %d ms after the drain began, "
                 "expected the listener closed (ECONNREFUSED)",
                 what, rc == 0 ? "accepted by the kernel" : strerror(-rc), ms * h_slow);
    return -1;
}

/* ---------------------------------------------------------------- fixture */

#define H_MAX_FDS 4096
static int fds_before;
static char *fd_names[H_MAX_FDS];

static int scan_fds(bool remember)
{
    DIR *d = opendir("/proc/self/fd");
    ck_assert_msg(d != NULL, "opendir /proc/self/fd: %s", strerror(errno));
    int self = dirfd(d), n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        int fd = atoi(de->d_name);
        if (fd == self)
            continue;
        n++;
        if (remember && fd < H_MAX_FDS) {
            char path[64], target[256];
            snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
            ssize_t l = readlink(path, target, sizeof target - 1);
            target[l > 0 ? l : 0] = 0;
            free(fd_names[fd]);
            fd_names[fd] = strdup(target);
        }
    }
    closedir(d);
    return n;
}

int h_count_fds(void) { return scan_fds(false); }

void h_fixture_setup(void)
{
    pthread_mutex_lock(&fail_mu);
    fail_count = 0;
    fail_first[0] = 0;
    pthread_mutex_unlock(&fail_mu);
    h_log_reset();
    for (int i = 0; i < H_MAX_FDS; i++) {
        free(fd_names[i]);
        fd_names[i] = NULL;
    }
    fds_before = scan_fds(true);
}

void h_fixture_teardown(void)
{
    int after = h_count_fds();
    if (after != fds_before) {
        /* Name the fds that appeared, so the leak is easy to find. */
        char list[1024] = "";
        size_t used = 0;
        DIR *d = opendir("/proc/self/fd");
        struct dirent *de;
        while (d && (de = readdir(d)) != NULL) {
            int fd = atoi(de->d_name);
            if (de->d_name[0] == '.' || fd == dirfd(d) || fd >= H_MAX_FDS)
                continue;
            char path[64], target[256];
            snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
            ssize_t l = readlink(path, target, sizeof target - 1);
            target[l > 0 ? l : 0] = 0;
            if (fd_names[fd] && strcmp(fd_names[fd], target) == 0)
                continue;
            if (used < sizeof list - 1)
                used += (size_t)snprintf(list + used, sizeof list - used, " %d->%s", fd,
                                         target);
        }
        if (d)
            closedir(d);
        ck_abort_msg("fd leak: %d fds open before the test, %d after; new:%s", fds_before,
                     after, list);
    }
    h_assert_no_callback_failures();
    h_log_reset();
}

TCase *h_tcase(const char *name, double timeout_s)
{
    TCase *tc = tcase_create(name);
    tcase_set_timeout(tc, timeout_s * h_slow);
    tcase_add_checked_fixture(tc, h_fixture_setup, h_fixture_teardown);
    return tc;
}

/* ---------------------------------------------------------------- ready-made callbacks */

evio_action h_opened_log(evio_conn *c, const evio_info *info)
{
    uint64_t id = evio_conn_id(c);
    H_EXPECT(id != 0, "connection id 0");
    H_EXPECT(info != NULL, "opened() without info");
    h_log(c, H_OPENED, info ? info->listener : -1);
    return EVIO_NONE;
}

evio_action h_data_echo(evio_conn *c, const void *in, size_t len)
{
    if (in == NULL) {
        H_EXPECT(len == 0, "data(NULL, %zu)", len);
        h_log(c, H_WAKE, 0);
        return EVIO_NONE;
    }
    H_EXPECT(len > 0, "data(%p, 0): empty input that is not a wake", in);
    h_log(c, H_DATA, (int64_t)len);
    int rc = evio_write(c, in, len);
    H_EXPECT(rc == 0, "evio_write returned %d (%s)", rc, evio_strerror(rc));
    return EVIO_NONE;
}

evio_action h_closed_log(evio_conn *c, int err)
{
    h_log(c, H_CLOSED, err);
    return EVIO_NONE;
}

evio_action h_detached_log(evio_conn *c, int fd)
{
    h_log(c, H_DETACHED, fd);
    H_EXPECT(fd >= 0, "detached(fd = %d)", fd);
    if (fd >= 0)
        close(fd);
    return EVIO_NONE;
}
