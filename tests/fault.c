/* fault.c — the seeded fault schedule (see fault.h for what a seed fixes). */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "fault.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "sys.h"

#define MAX_FD 65536
#define MAX_POLLERS 64

/* The kinds of call, each a stream per object (fd life, poller, thread). */
enum kind { K_RECV, K_SEND, K_RECVFROM, K_SENDTO, K_ACCEPT, K_CONNECT, K_SET, K_FD_KINDS,
            K_POLL = K_FD_KINDS, K_ALLOC, K_SOCKET };
static const char *const kind_name[] = {"recv",    "send", "recvfrom", "sendto", "accept",
                                        "connect", "set",  "poll",     "alloc",  "socket"};

/* The decisions one call can draw, each independent of the others. */
enum what { W_EAGAIN, W_EINTR, W_RESET, W_RESET_KIND, W_SHORT, W_SHORT_LEN, W_ACCEPT,
            W_ACCEPT_KIND, W_ENOMEM, W_REFUSE, W_DELAY, W_WAKEUP, W_SPURIOUS, W_SPURIOUS_FD };

static atomic_bool active;
static atomic_uint run; /* bumped by every fault_start: per-thread counters restart */
static uint64_t seed;
static fault_rates rates;
static atomic_uint_fast64_t injected, digest;
static FILE *trace;

/* Per fd number: how many lives it has had since fault_start, and the
 * calls of each kind in its current life. */
static struct fdstate {
    atomic_uint life;
    atomic_uint calls[K_FD_KINDS];
} fds[MAX_FD];

/* Pollers in the order they first reached us, with their poll count. */
static pthread_mutex_t pollers_mu = PTHREAD_MUTEX_INITIALIZER;
static evio__poller *pollers[MAX_POLLERS];
static int npollers;
static atomic_uint poll_calls[MAX_POLLERS];

/* Per thread: the alloc and socket streams. */
static _Thread_local unsigned thread_run;
static _Thread_local unsigned thread_calls[2];

/* What each fd is registered for, so poll can report one spuriously.  An
 * fd number is watched by at most one poller at a time. */
static pthread_mutex_t watch_mu = PTHREAD_MUTEX_INITIALIZER;
static struct {
    evio__poller *p;
    unsigned mask;
} watch[MAX_FD];
static int watch_max;

static uint64_t mix(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* One call: its stream and position. */
typedef struct call {
    enum kind kind;
    int obj;       /* fd, poller number, or -1 for a thread's stream */
    unsigned life; /* of the fd */
    unsigned n;
    bool on; /* made while active: only such a call meets faults */
} call;

/* A number in [0, n) for decision w of call c: a function of the seed,
 * the stream, the position and w, and of nothing else. */
static uint64_t draw(const call *c, enum what w, uint64_t n)
{
    uint64_t stream = (uint64_t)c->kind << 56 ^ (uint64_t)(uint32_t)c->obj << 24 ^ c->life;
    uint64_t x = mix(seed + 0x9e3779b97f4a7c15ull * (stream + 1));
    x = mix(x ^ ((uint64_t)c->n << 8 | (uint64_t)w));
    return x % n;
}

static const char *const what_name[] = {"EAGAIN", "EINTR", "reset", "reset", "short",
                                        "short", "accept error", "accept error", "ENOMEM",
                                        "ECONNREFUSED", "EINPROGRESS", "early wakeup",
                                        "spurious readiness", "spurious readiness"};

/* true, once in 1000/rate calls, while active. */
static bool roll(const call *c, enum what w, int rate)
{
    if (rate <= 0 || !c->on || !atomic_load_explicit(&active, memory_order_acquire))
        return false;
    if (draw(c, w, 1000) >= (uint64_t)rate)
        return false;
    atomic_fetch_add(&injected, 1);
    uint64_t stream = (uint64_t)c->kind << 56 ^ (uint64_t)(uint32_t)c->obj << 24 ^ c->life;
    atomic_fetch_add(&digest, mix(mix(stream) ^ ((uint64_t)c->n << 8 | (uint64_t)w)));
    if (trace) {
        if (c->kind < K_FD_KINDS)
            fprintf(trace, "fault %s fd %d life %u call %u: %s\n", kind_name[c->kind], c->obj,
                    c->life, c->n, what_name[w]);
        else if (c->kind == K_POLL)
            fprintf(trace, "fault poll poller %d call %u: %s\n", c->obj, c->n, what_name[w]);
        else
            fprintf(trace, "fault %s thread call %u: %s\n", kind_name[c->kind], c->n,
                    what_name[w]);
    }
    return true;
}

/* The next call of kind on fd's current life. */
static call fd_call(enum kind k, int fd)
{
    call c = {.kind = k, .obj = fd};
    if (!atomic_load_explicit(&active, memory_order_acquire))
        return c;
    c.on = true;
    if (fd >= 0 && fd < MAX_FD) {
        c.life = atomic_load_explicit(&fds[fd].life, memory_order_relaxed);
        c.n = atomic_fetch_add_explicit(&fds[fd].calls[k], 1, memory_order_relaxed);
    }
    return c;
}

/* fd was just born (socket, accept) or closed: a new life, its counts
 * from 0. */
static void fd_born(int fd)
{
    if (fd < 0 || fd >= MAX_FD || !atomic_load_explicit(&active, memory_order_acquire))
        return;
    for (int k = 0; k < K_FD_KINDS; k++)
        atomic_store_explicit(&fds[fd].calls[k], 0, memory_order_relaxed);
    atomic_fetch_add_explicit(&fds[fd].life, 1, memory_order_relaxed);
}

static call thread_call(enum kind k)
{
    call c = {.kind = k, .obj = -1, .on = true};
    unsigned r = atomic_load(&run);
    if (thread_run != r) {
        thread_run = r;
        thread_calls[0] = thread_calls[1] = 0;
    }
    c.n = thread_calls[k == K_SOCKET]++;
    return c;
}

static call poll_call(evio__poller *p)
{
    call c = {.kind = K_POLL, .obj = -1, .on = true};
    pthread_mutex_lock(&pollers_mu);
    int i = 0;
    while (i < npollers && pollers[i] != p)
        i++;
    if (i == npollers && npollers < MAX_POLLERS)
        pollers[npollers++] = p;
    pthread_mutex_unlock(&pollers_mu);
    if (i < MAX_POLLERS) {
        c.obj = i;
        c.n = atomic_fetch_add_explicit(&poll_calls[i], 1, memory_order_relaxed);
    }
    return c;
}

static int fail(int err)
{
    errno = err;
    return -1;
}

static bool alloc_fails(void)
{
    if (!atomic_load_explicit(&active, memory_order_acquire))
        return false;
    call c = thread_call(K_ALLOC);
    if (!roll(&c, W_ENOMEM, rates.enomem))
        return false;
    errno = ENOMEM;
    return true;
}

static void *f_malloc(size_t n)
{
    return alloc_fails() ? NULL : evio__sys_default.malloc(n);
}

static void *f_calloc(size_t n, size_t size)
{
    return alloc_fails() ? NULL : evio__sys_default.calloc(n, size);
}

static void *f_realloc(void *p, size_t n)
{
    return alloc_fails() ? NULL : evio__sys_default.realloc(p, n);
}

/* EAGAIN or EINTR, or 0 for neither. */
static int would_block(const call *c)
{
    if (roll(c, W_EAGAIN, rates.eagain))
        return EAGAIN;
    if (roll(c, W_EINTR, rates.eintr))
        return EINTR;
    return 0;
}

static size_t shorten(const call *c, size_t len)
{
    return len > 1 && roll(c, W_SHORT, rates.short_io) ? 1 + (size_t)draw(c, W_SHORT_LEN, len - 1)
                                                        : len;
}

static ssize_t f_recv(int fd, void *buf, size_t len, int flags)
{
    call c = fd_call(K_RECV, fd);
    int e = would_block(&c);
    if (e)
        return fail(e);
    if (roll(&c, W_RESET, rates.reset))
        return fail(ECONNRESET);
    return evio__sys_default.recv(fd, buf, shorten(&c, len), flags);
}

static ssize_t f_send(int fd, const void *buf, size_t len, int flags)
{
    call c = fd_call(K_SEND, fd);
    int e = would_block(&c);
    if (e)
        return fail(e);
    if (roll(&c, W_RESET, rates.reset))
        return fail(draw(&c, W_RESET_KIND, 2) ? EPIPE : ECONNRESET);
    return evio__sys_default.send(fd, buf, shorten(&c, len), flags);
}

static ssize_t f_recvfrom(int fd, void *buf, size_t len, int flags, struct sockaddr *sa,
                          socklen_t *salen)
{
    call c = fd_call(K_RECVFROM, fd);
    int e = would_block(&c);
    return e ? fail(e) : evio__sys_default.recvfrom(fd, buf, len, flags, sa, salen);
}

static ssize_t f_sendto(int fd, const void *buf, size_t len, int flags,
                        const struct sockaddr *sa, socklen_t salen)
{
    call c = fd_call(K_SENDTO, fd);
    int e = would_block(&c);
    if (e == EAGAIN && rates.no_sendto_eagain)
        e = 0;
    return e ? fail(e) : evio__sys_default.sendto(fd, buf, len, flags, sa, salen);
}

static int f_accept(int fd, struct sockaddr *sa, socklen_t *len, int flags)
{
    static const int errs[] = {EMFILE, ENFILE, ENOBUFS, ECONNABORTED};
    call c = fd_call(K_ACCEPT, fd);
    int e = would_block(&c);
    if (e)
        return fail(e);
    if (roll(&c, W_ACCEPT, rates.accept_err))
        return fail(errs[draw(&c, W_ACCEPT_KIND, 4)]);
    int nfd = evio__sys_default.accept(fd, sa, len, flags);
    fd_born(nfd);
    return nfd;
}

static int f_socket(int domain, int type, int protocol)
{
    if (atomic_load_explicit(&active, memory_order_acquire)) {
        call c = thread_call(K_SOCKET);
        if (roll(&c, W_ACCEPT, rates.accept_err))
            return fail(EMFILE);
    }
    int fd = evio__sys_default.socket(domain, type, protocol);
    fd_born(fd);
    return fd;
}

static int f_close(int fd)
{
    fd_born(fd); /* whoever gets the number next starts afresh */
    return evio__sys_default.close(fd);
}

static int f_connect(int fd, const struct sockaddr *sa, socklen_t len)
{
    call c = fd_call(K_CONNECT, fd);
    if (roll(&c, W_REFUSE, rates.connect_fail))
        return fail(ECONNREFUSED);
    int rc = evio__sys_default.connect(fd, sa, len);
    if (rc == 0 && roll(&c, W_DELAY, rates.connect_delay))
        return fail(EINPROGRESS); /* completes "later": on the writable event */
    return rc;
}

static int f_set(evio__poller *p, int fd, unsigned old_mask, unsigned new_mask)
{
    /* Only adding or changing interest can fail; a removal that failed
     * would leave the backend watching an fd about to be closed. */
    if (new_mask) {
        call c = fd_call(K_SET, fd);
        if (roll(&c, W_ENOMEM, rates.enomem))
            return -ENOMEM;
    }
    int err = evio__sys_default.set(p, fd, old_mask, new_mask);
    if (!err && fd >= 0 && fd < MAX_FD) {
        pthread_mutex_lock(&watch_mu);
        watch[fd].p = new_mask ? p : NULL;
        watch[fd].mask = new_mask;
        if (new_mask && fd >= watch_max)
            watch_max = fd + 1;
        pthread_mutex_unlock(&watch_mu);
    }
    return err;
}

static int f_poll(evio__poller *p, evio__event *out, int max, int64_t timeout_ns)
{
    call c = {.kind = K_POLL, .obj = -1};
    if (atomic_load_explicit(&active, memory_order_acquire))
        c = poll_call(p);
    if (roll(&c, W_WAKEUP, rates.wakeup))
        return 0;
    int n = evio__sys_default.poll(p, out, max, timeout_ns);
    if (n < 0 || n >= max || !roll(&c, W_SPURIOUS, rates.spurious))
        return n;
    /* Readiness for a watched fd that need not be ready at all (or a second
     * entry for one that was). */
    pthread_mutex_lock(&watch_mu);
    int lim = watch_max;
    int start = lim ? (int)draw(&c, W_SPURIOUS_FD, (uint64_t)lim) : 0;
    for (int i = 0; i < lim; i++) {
        int fd = (start + i) % lim;
        if (watch[fd].p == p && watch[fd].mask) {
            out[n++] = (evio__event){.fd = fd, .mask = watch[fd].mask};
            break;
        }
    }
    pthread_mutex_unlock(&watch_mu);
    return n;
}

const fault_rates fault_profile_transparent = {
    .short_io = 200,
    .eagain = 50,
    .eintr = 50,
    .connect_delay = 500,
    .spurious = 100,
    .wakeup = 50,
    .no_sendto_eagain = 1,
};

void fault_install(void)
{
    evio__sys.malloc = f_malloc;
    evio__sys.calloc = f_calloc;
    evio__sys.realloc = f_realloc;
    evio__sys.socket = f_socket;
    evio__sys.connect = f_connect;
    evio__sys.close = f_close;
    evio__sys.accept = f_accept;
    evio__sys.recv = f_recv;
    evio__sys.send = f_send;
    evio__sys.recvfrom = f_recvfrom;
    evio__sys.sendto = f_sendto;
    evio__sys.set = f_set;
    evio__sys.poll = f_poll;
}

static void open_trace(void)
{
    const char *t = getenv("EVIO_FAULT_TRACE");
    if (trace && trace != stderr)
        fclose(trace);
    trace = NULL;
    if (!t || !*t || strcmp(t, "0") == 0)
        return;
    if (strcmp(t, "1") == 0 || strcmp(t, "-") == 0)
        trace = stderr;
    else if ((trace = fopen(t, "a")) != NULL)
        setvbuf(trace, NULL, _IOLBF, 0);
}

void fault_start(uint64_t s, const fault_rates *r)
{
    atomic_store(&active, false);
    seed = s;
    rates = *r;
    for (int fd = 0; fd < MAX_FD; fd++) {
        atomic_store_explicit(&fds[fd].life, 0, memory_order_relaxed);
        for (int k = 0; k < K_FD_KINDS; k++)
            atomic_store_explicit(&fds[fd].calls[k], 0, memory_order_relaxed);
    }
    pthread_mutex_lock(&pollers_mu);
    npollers = 0;
    for (int i = 0; i < MAX_POLLERS; i++)
        atomic_store_explicit(&poll_calls[i], 0, memory_order_relaxed);
    pthread_mutex_unlock(&pollers_mu);
    open_trace();
    if (trace)
        fprintf(trace, "fault seed %llu\n", (unsigned long long)s);
    atomic_store(&injected, 0);
    atomic_store(&digest, 0);
    atomic_fetch_add(&run, 1);
    atomic_store_explicit(&active, true, memory_order_release);
}

void fault_stop(void)
{
    atomic_store(&active, false);
}

uint64_t fault_injected(void)
{
    return atomic_load(&injected);
}

uint64_t fault_digest(void)
{
    return atomic_load(&digest);
}
