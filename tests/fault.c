/* fault.c — the seeded fault schedule (see fault.h). */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "fault.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "sys.h"

#define MAX_FD 65536

static atomic_bool active;
static atomic_uint gen; /* bumped by every fault_start: threads restart their stream */
static uint64_t seed;
static fault_rates rates;
static atomic_uint_fast64_t injected;

/* What each fd is registered for, so poll can report one spuriously.  An
 * fd number is watched by at most one poller at a time. */
static pthread_mutex_t watch_mu = PTHREAD_MUTEX_INITIALIZER;
static struct {
    evio__poller *p;
    unsigned mask;
} watch[MAX_FD];
static int watch_max;

static _Thread_local uint64_t state;
static _Thread_local unsigned state_gen;

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* A number in [0, n) from this thread's stream. */
static uint64_t draw(uint64_t n)
{
    unsigned g = atomic_load(&gen);
    if (state_gen != g) {
        state_gen = g;
        state = seed;
    }
    return splitmix(&state) % n;
}

/* true, once in 1000/rate calls while active. */
static bool roll(int rate)
{
    if (rate <= 0 || !atomic_load_explicit(&active, memory_order_acquire))
        return false;
    if (draw(1000) >= (uint64_t)rate)
        return false;
    atomic_fetch_add(&injected, 1);
    return true;
}

static int fail(int err)
{
    errno = err;
    return -1;
}

static void *f_malloc(size_t n)
{
    if (roll(rates.enomem)) {
        errno = ENOMEM;
        return NULL;
    }
    return evio__sys_default.malloc(n);
}

static void *f_calloc(size_t n, size_t size)
{
    if (roll(rates.enomem)) {
        errno = ENOMEM;
        return NULL;
    }
    return evio__sys_default.calloc(n, size);
}

static void *f_realloc(void *p, size_t n)
{
    if (roll(rates.enomem)) {
        errno = ENOMEM;
        return NULL;
    }
    return evio__sys_default.realloc(p, n);
}

/* EAGAIN or EINTR, or 0 for neither. */
static int would_block(void)
{
    if (roll(rates.eagain))
        return EAGAIN;
    if (roll(rates.eintr))
        return EINTR;
    return 0;
}

static size_t shorten(size_t len)
{
    return len > 1 && roll(rates.short_io) ? 1 + (size_t)draw(len - 1) : len;
}

static ssize_t f_recv(int fd, void *buf, size_t len, int flags)
{
    int e = would_block();
    if (e)
        return fail(e);
    if (roll(rates.reset))
        return fail(ECONNRESET);
    return evio__sys_default.recv(fd, buf, shorten(len), flags);
}

static ssize_t f_send(int fd, const void *buf, size_t len, int flags)
{
    int e = would_block();
    if (e)
        return fail(e);
    if (roll(rates.reset))
        return fail(draw(2) ? EPIPE : ECONNRESET);
    return evio__sys_default.send(fd, buf, shorten(len), flags);
}

static ssize_t f_recvfrom(int fd, void *buf, size_t len, int flags, struct sockaddr *sa,
                          socklen_t *salen)
{
    int e = would_block();
    return e ? fail(e) : evio__sys_default.recvfrom(fd, buf, len, flags, sa, salen);
}

static ssize_t f_sendto(int fd, const void *buf, size_t len, int flags,
                        const struct sockaddr *sa, socklen_t salen)
{
    int e = would_block();
    return e ? fail(e) : evio__sys_default.sendto(fd, buf, len, flags, sa, salen);
}

static int f_accept(int fd, struct sockaddr *sa, socklen_t *len, int flags)
{
    static const int errs[] = {EMFILE, ENFILE, ENOBUFS, ECONNABORTED};
    int e = would_block();
    if (e)
        return fail(e);
    if (roll(rates.accept_err))
        return fail(errs[draw(4)]);
    return evio__sys_default.accept(fd, sa, len, flags);
}

static int f_socket(int domain, int type, int protocol)
{
    if (roll(rates.accept_err))
        return fail(EMFILE);
    return evio__sys_default.socket(domain, type, protocol);
}

static int f_connect(int fd, const struct sockaddr *sa, socklen_t len)
{
    if (roll(rates.connect_fail))
        return fail(ECONNREFUSED);
    int rc = evio__sys_default.connect(fd, sa, len);
    if (rc == 0 && roll(rates.connect_delay))
        return fail(EINPROGRESS); /* completes "later": on the writable event */
    return rc;
}

static int f_set(evio__poller *p, int fd, unsigned old_mask, unsigned new_mask)
{
    /* Only adding or changing interest can fail; a removal that failed
     * would leave the backend watching an fd about to be closed. */
    if (new_mask && roll(rates.enomem))
        return -ENOMEM;
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
    if (roll(rates.wakeup))
        return 0;
    int n = evio__sys_default.poll(p, out, max, timeout_ns);
    if (n < 0 || n >= max || !roll(rates.spurious))
        return n;
    /* Readiness for a watched fd that need not be ready at all (or a second
     * entry for one that was). */
    pthread_mutex_lock(&watch_mu);
    int lim = watch_max;
    int start = lim ? (int)draw((uint64_t)lim) : 0;
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

void fault_install(void)
{
    evio__sys.malloc = f_malloc;
    evio__sys.calloc = f_calloc;
    evio__sys.realloc = f_realloc;
    evio__sys.socket = f_socket;
    evio__sys.connect = f_connect;
    evio__sys.accept = f_accept;
    evio__sys.recv = f_recv;
    evio__sys.send = f_send;
    evio__sys.recvfrom = f_recvfrom;
    evio__sys.sendto = f_sendto;
    evio__sys.set = f_set;
    evio__sys.poll = f_poll;
}

void fault_start(uint64_t s, const fault_rates *r)
{
    seed = s;
    rates = *r;
    atomic_store(&injected, 0);
    atomic_fetch_add(&gen, 1);
    atomic_store(&active, true);
}

void fault_stop(void)
{
    atomic_store(&active, false);
}

uint64_t fault_injected(void)
{
    return atomic_load(&injected);
}
