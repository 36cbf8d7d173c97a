/*
 * io_uring.c — the completion backend (Linux 6.1 or later, liburing).
 *
 * The frontend asks for operations (accept, receive, send) and this file
 * queues them in a ring; poll() submits everything queued and waits in the
 * same io_uring_enter, then reports each result.  So a batch of requests
 * costs one system call, where a readiness backend pays a recv and a send
 * per request as well.  What this file does, and why:
 *  - One ring per loop, IORING_SETUP_SINGLE_ISSUER | DEFER_TASKRUN: the
 *    kernel runs completion work only when the loop enters it, in poll().
 *    A single-issuer ring belongs to the thread that enables it, and loops
 *    are created by evio_serve's thread but run on their own, so the ring
 *    starts disabled (R_DISABLED) and the first poll() enables it.
 *  - Receives are multishot, into one provided-buffer ring per loop
 *    (NBUFS x BUFSIZE): no connection owns a receive buffer.  A result's
 *    buffer is lent to the frontend until the next poll(), which gives it
 *    back.  When all are lent, a receive ends with -ENOBUFS and the frontend
 *    starts another, which runs after they came back (a batch later if
 *    it took some: start_recvs, so that a flood starves no one).  The
 *    ring is small,
 *    so the pages it touches stay few (idle memory, docs/idle-memory.md).
 *  - Readiness (set) is a one-shot poll request, armed again by each poll()
 *    while the interest remains: level-triggered, as the frontend expects.
 *    It serves dials until they connect, and UDP.
 *  - The wakeup is an eventfd the ring itself reads.
 *  - ThreadSanitizer sees a socket's send as a release and its recv as an
 *    acquire (of one object shared by every socket made by socket()); the
 *    ring's I/O bypasses both, so a TSan build stands in for them each
 *    poll() with a send that fails on an unconnected UDP socket and a peek
 *    at a datagram a second one keeps queued to itself on 127.0.0.1.
 *  - user_data is the ctx pointer with the operation in its low three bits
 *    (a ctx is at least 8-aligned), or for readiness an fd and the
 *    generation of its registration, so a late result of a poll for a
 *    closed fd is never taken for its successor's.
 */
#include "config.h"

#include <errno.h>
#include <arpa/inet.h>
#include <liburing.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "backend.h"
#include "sys.h"

#if defined(__SANITIZE_THREAD__)
#define UR_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define UR_TSAN 1
#endif
#endif

#define RING_ENTRIES 1024
#define NBUFS 32       /* provided buffers, a power of two.  Each one in use
                        * touches a page, and each reply sent from it holds
                        * an output block until sent: 128 cost 234 bytes per
                        * idle connection at 10,000 (docs/idle-memory.md),
                        * 32 cost 181, for the same CPU and system calls
                        * per echo request (0.104 against 0.097) */
#define BUFSIZE 16384  /* each */
#define BGID 0

enum { TAG_ACCEPT = 1, TAG_RECV, TAG_SEND, TAG_POLL, TAG_WAKE, TAG_IGNORE };

typedef struct recv_req {
    int fd;
    void *ctx;
} recv_req;

typedef struct fd_state {
    unsigned mask; /* EVIO__READ | EVIO__WRITE wanted */
    bool armed;    /* a poll request is outstanding */
    uint32_t gen;  /* registrations of this fd so far */
} fd_state;

struct evio__poller {
    struct io_uring ring;
    bool enabled;
    int wakefd;
    uint64_t wakebuf;
    bool wake_armed;
    struct io_uring_buf_ring *br;
    char *bufs;
    unsigned short lent[NBUFS]; /* buffer ids lent in the last batch (the
                                 * ring holds no more: none can be lent twice) */
    void *lent_to[NBUFS];       /* and the ctx each went to */
    int nlent;
    recv_req *recvs; /* receives asked for since the last submission */
    int nrecvs, recvs_cap;
    fd_state *fds; /* readiness, by fd */
    int nfds;
    int *rearm; /* fds whose poll fired in the last batch */
    int nrearm, rearm_cap;
#ifdef UR_TSAN
    int tsan_fds[2];
#endif
};

static uint64_t op_data(void *ctx, unsigned tag) { return (uint64_t)(uintptr_t)ctx | tag; }
static uint64_t poll_data(int fd, uint32_t gen)
{
    return ((uint64_t)gen << 35) | ((uint64_t)(uint32_t)fd << 3) | TAG_POLL;
}

/* A free submission entry; a full queue is submitted first (rare). */
static struct io_uring_sqe *sqe_get(evio__poller *p)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&p->ring);
    if (!sqe && p->enabled && io_uring_submit(&p->ring) >= 0)
        sqe = io_uring_get_sqe(&p->ring);
    return sqe;
}

static int arm_poll(evio__poller *p, int fd)
{
    fd_state *s = &p->fds[fd];
    struct io_uring_sqe *sqe = sqe_get(p);
    if (!sqe)
        return -EBUSY;
    unsigned events = (s->mask & EVIO__READ ? POLLIN : 0) | (s->mask & EVIO__WRITE ? POLLOUT : 0);
    io_uring_prep_poll_add(sqe, fd, events);
    io_uring_sqe_set_data64(sqe, poll_data(fd, s->gen));
    s->armed = true;
    return 0;
}

static int arm_wake(evio__poller *p)
{
    struct io_uring_sqe *sqe = sqe_get(p);
    if (!sqe)
        return -EBUSY;
    io_uring_prep_read(sqe, p->wakefd, &p->wakebuf, sizeof p->wakebuf, 0);
    io_uring_sqe_set_data64(sqe, TAG_WAKE);
    p->wake_armed = true;
    return 0;
}

static void ur_destroy(evio__poller *p)
{
    if (p->ring.ring_fd >= 0) /* with the buffer ring registered in it */
        io_uring_queue_exit(&p->ring);
    if (p->wakefd >= 0)
        close(p->wakefd);
#ifdef UR_TSAN
    close(p->tsan_fds[0]);
    close(p->tsan_fds[1]);
#endif
    free(p->br);
    free(p->bufs);
    evio__sys.free(p->recvs);
    evio__sys.free(p->fds);
    evio__sys.free(p->rearm);
    evio__sys.free(p);
}

static evio__poller *ur_create(void)
{
    evio__poller *p = evio__sys.calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->ring.ring_fd = -1;
    p->wakefd = -1;
#ifdef UR_TSAN
    p->tsan_fds[0] = p->tsan_fds[1] = -1;
#endif
    struct io_uring_params params = {
        .flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN |
                 IORING_SETUP_R_DISABLED | IORING_SETUP_CQSIZE,
        .cq_entries = 4 * RING_ENTRIES,
    };
    int err = io_uring_queue_init_params(RING_ENTRIES, &p->ring, &params);
    if (err < 0) {
        /* EPERM: kernel.io_uring_disabled or a seccomp profile; ENOSYS:
         * compiled out; EINVAL: a kernel too old for these flags.  All
         * mean "not here" (EVIO_EUNAVAILABLE), not a transient failure. */
        p->ring.ring_fd = -1;
        if (err == -EPERM || err == -EINVAL || err == -EACCES)
            err = -ENOSYS;
        goto fail;
    }
#ifdef UR_TSAN
    struct sockaddr_in me = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t mlen = sizeof me;
    p->tsan_fds[0] = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    p->tsan_fds[1] = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (bind(p->tsan_fds[0], (struct sockaddr *)&me, sizeof me) < 0 ||
        getsockname(p->tsan_fds[0], (struct sockaddr *)&me, &mlen) < 0 ||
        connect(p->tsan_fds[0], (struct sockaddr *)&me, mlen) < 0 ||
        send(p->tsan_fds[0], "t", 1, 0) != 1) {
        err = -errno;
        goto fail;
    }
#endif
    err = -ENOMEM;
    if (posix_memalign((void **)&p->br, 4096, NBUFS * sizeof(struct io_uring_buf)) != 0) {
        p->br = NULL;
        goto fail;
    }
    if (posix_memalign((void **)&p->bufs, 4096, (size_t)NBUFS * BUFSIZE) != 0) {
        p->bufs = NULL;
        goto fail;
    }
    io_uring_buf_ring_init(p->br);
    struct io_uring_buf_reg reg = {.ring_addr = (uintptr_t)p->br, .ring_entries = NBUFS, .bgid = BGID};
    err = io_uring_register_buf_ring(&p->ring, &reg, 0);
    if (err < 0) {
        free(p->br);
        p->br = NULL;
        goto fail;
    }
    for (unsigned i = 0; i < NBUFS; i++)
        io_uring_buf_ring_add(p->br, p->bufs + (size_t)i * BUFSIZE, BUFSIZE, (unsigned short)i,
                              io_uring_buf_ring_mask(NBUFS), (int)i);
    io_uring_buf_ring_advance(p->br, NBUFS);
    p->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (p->wakefd < 0 || (err = arm_wake(p)) < 0) {
        err = p->wakefd < 0 ? -errno : err;
        goto fail;
    }
    return p;
fail:
    ur_destroy(p);
    errno = -err;
    return NULL;
}

static int ensure_fd(evio__poller *p, int fd)
{
    if (fd < p->nfds)
        return 0;
    int n = p->nfds ? p->nfds : 64;
    while (n <= fd)
        n *= 2;
    fd_state *f = evio__sys.realloc(p->fds, (size_t)n * sizeof *f);
    if (!f)
        return -ENOMEM;
    memset(f + p->nfds, 0, (size_t)(n - p->nfds) * sizeof *f);
    p->fds = f;
    p->nfds = n;
    return 0;
}

static int ur_set(evio__poller *p, int fd, unsigned old_mask, unsigned new_mask)
{
    (void)old_mask;
    int err = ensure_fd(p, fd);
    if (err)
        return err;
    fd_state *s = &p->fds[fd];
    if (s->armed) { /* its result, if it still comes, is stale by gen */
        struct io_uring_sqe *sqe = sqe_get(p);
        if (!sqe)
            return -EBUSY;
        io_uring_prep_poll_remove(sqe, poll_data(fd, s->gen));
        io_uring_sqe_set_data64(sqe, TAG_IGNORE);
        s->armed = false;
    }
    s->gen++;
    s->mask = new_mask;
    return new_mask ? arm_poll(p, fd) : 0;
}

static int ur_accept(evio__poller *p, int fd, void *ctx)
{
    struct io_uring_sqe *sqe = sqe_get(p);
    if (!sqe)
        return -EBUSY;
    io_uring_prep_multishot_accept(sqe, fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    io_uring_sqe_set_data64(sqe, op_data(ctx, TAG_ACCEPT));
    return 0;
}

/* A receive is queued at the next submission (start_recvs), not now: the
 * order in which they start is what keeps a flooding peer from starving
 * the others. */
static int ur_recv(evio__poller *p, int fd, void *ctx)
{
    if (p->nrecvs == p->recvs_cap) {
        int n = p->recvs_cap ? 2 * p->recvs_cap : 16;
        recv_req *r = evio__sys.realloc(p->recvs, (size_t)n * sizeof *r);
        if (!r)
            return -ENOMEM;
        p->recvs = r;
        p->recvs_cap = n;
    }
    p->recvs[p->nrecvs++] = (recv_req){fd, ctx};
    return 0;
}

static bool got_buffers(const evio__poller *p, const void *ctx)
{
    for (int i = 0; i < p->nlent; i++)
        if (p->lent_to[i] == ctx)
            return true;
    return false;
}

/* Queue the receives asked for since the last submission; returns how many
 * wait for the next one, or -EBUSY.  A multishot receive that starts on a
 * full socket takes up to 32 buffers at once (the kernel's retries for one
 * wakeup), a few such peers the whole ring, and one that finds none ends
 * with -ENOBUFS: started as asked, flooding peers would take every buffer
 * before each other connection's turn, for ever.  So a
 * receive that got buffers in the last batch (it ended for want of more)
 * waits one batch, unless all must start now (a cancel is coming). */
static int start_recvs(evio__poller *p, bool all)
{
    int kept = 0;
    for (int i = 0; i < p->nrecvs; i++) {
        recv_req r = p->recvs[i];
        if (!all && got_buffers(p, r.ctx)) {
            p->recvs[kept++] = r;
            continue;
        }
        struct io_uring_sqe *sqe = sqe_get(p);
        if (!sqe) {
            memmove(p->recvs + kept, p->recvs + i, (size_t)(p->nrecvs - i) * sizeof r);
            p->nrecvs = kept + p->nrecvs - i;
            return -EBUSY;
        }
        io_uring_prep_recv_multishot(sqe, r.fd, NULL, 0, 0);
        sqe->flags |= IOSQE_BUFFER_SELECT;
        sqe->buf_group = BGID;
        io_uring_sqe_set_data64(sqe, op_data(r.ctx, TAG_RECV));
    }
    p->nrecvs = kept;
    return kept;
}

static int ur_send(evio__poller *p, int fd, const void *buf, size_t len, void *ctx)
{
    struct io_uring_sqe *sqe = sqe_get(p);
    if (!sqe)
        return -EBUSY;
    io_uring_prep_send(sqe, fd, buf, len, MSG_NOSIGNAL);
    io_uring_sqe_set_data64(sqe, op_data(ctx, TAG_SEND));
    return 0;
}

static int ur_cancel(evio__poller *p, void *ctx, unsigned ops)
{
    static const struct { unsigned op, tag; } tags[] = {
        {EVIO__OP_ACCEPT, TAG_ACCEPT}, {EVIO__OP_RECV, TAG_RECV}, {EVIO__OP_SEND, TAG_SEND}};
    int err = start_recvs(p, true); /* a receive to cancel must have started */
    if (err < 0)
        return err;
    for (size_t i = 0; i < sizeof tags / sizeof tags[0]; i++) {
        if (!(ops & tags[i].op))
            continue;
        struct io_uring_sqe *sqe = sqe_get(p);
        if (!sqe)
            return -EBUSY;
        io_uring_prep_cancel64(sqe, op_data(ctx, tags[i].tag), 0);
        io_uring_sqe_set_data64(sqe, TAG_IGNORE);
    }
    return 0;
}

static int ur_wake(evio__poller *p)
{
    uint64_t one = 1;
    if (evio__sys.write(p->wakefd, &one, sizeof one) < 0 && errno != EAGAIN)
        return -errno;
    return 0;
}

/* One result as the frontend sees it; false for ours (wake, cancels) and
 * stale polls. */
static bool translate(evio__poller *p, const struct io_uring_cqe *cqe, evio__event *e)
{
    uint64_t ud = cqe->user_data;
    unsigned tag = (unsigned)(ud & 7);
    switch (tag) {
    case TAG_WAKE:
        p->wake_armed = false;
        return false;
    case TAG_POLL: {
        int fd = (int)(uint32_t)(ud >> 3);
        uint32_t gen = (uint32_t)(ud >> 35);
        if (fd >= p->nfds || p->fds[fd].gen != gen || !p->fds[fd].armed)
            return false;
        fd_state *s = &p->fds[fd];
        s->armed = false;
        if (p->nrearm < p->rearm_cap)
            p->rearm[p->nrearm++] = fd;
        unsigned m = (cqe->res & POLLIN ? EVIO__READ : 0) | (cqe->res & POLLOUT ? EVIO__WRITE : 0);
        if (cqe->res < 0 || (cqe->res & (POLLERR | POLLHUP)))
            m = s->mask; /* the frontend's own call meets the error */
        *e = (evio__event){.fd = fd, .mask = m & s->mask};
        return e->mask != 0;
    }
    case TAG_ACCEPT:
    case TAG_RECV:
    case TAG_SEND:
        *e = (evio__event){
            .fd = -1,
            .op = tag == TAG_ACCEPT ? EVIO__OP_ACCEPT : tag == TAG_RECV ? EVIO__OP_RECV : EVIO__OP_SEND,
            .res = cqe->res,
            .more = (cqe->flags & IORING_CQE_F_MORE) != 0,
            .ctx = (void *)(uintptr_t)(ud & ~(uint64_t)7),
        };
        if (cqe->flags & IORING_CQE_F_BUFFER) {
            unsigned short bid = (unsigned short)(cqe->flags >> IORING_CQE_BUFFER_SHIFT);
            e->data = p->bufs + (size_t)bid * BUFSIZE;
            p->lent_to[p->nlent] = e->ctx;
            p->lent[p->nlent++] = bid;
        }
        return true;
    }
    return false; /* TAG_IGNORE */
}

static int ur_poll(evio__poller *p, evio__event *out, int max, int64_t timeout_ns)
{
    if (!p->enabled) { /* liburing 2.3 declares io_uring_enable_rings but lacks it */
        if (syscall(__NR_io_uring_register, p->ring.ring_fd, IORING_REGISTER_ENABLE_RINGS, NULL, 0) < 0)
            return -errno;
        p->enabled = true;
    }
    int waiting = start_recvs(p, false);
    if (waiting < 0)
        return -EBUSY;
    if (waiting)
        timeout_ns = 0; /* they start at the next poll(), which must come */
    /* What the last batch was lent or reported comes back now. */
    for (int i = 0; i < p->nlent; i++)
        io_uring_buf_ring_add(p->br, p->bufs + (size_t)p->lent[i] * BUFSIZE, BUFSIZE, p->lent[i],
                              io_uring_buf_ring_mask(NBUFS), i);
    io_uring_buf_ring_advance(p->br, p->nlent);
    p->nlent = 0;
    for (int i = 0; i < p->nrearm; i++) {
        int fd = p->rearm[i];
        if (p->fds[fd].mask && !p->fds[fd].armed && arm_poll(p, fd) < 0)
            return -EBUSY;
    }
    p->nrearm = 0;
    if (max > p->rearm_cap) {
        int *r = evio__sys.realloc(p->rearm, (size_t)max * sizeof *r);
        if (!r)
            return -ENOMEM;
        p->rearm = r;
        p->rearm_cap = max;
    }
    if (!p->wake_armed && arm_wake(p) < 0)
        return -EBUSY;

#ifdef UR_TSAN
    (void)!send(p->tsan_fds[1], "", 0, MSG_DONTWAIT); /* fails; the sends below: a release */
#endif
    int err;
    if (io_uring_cq_ready(&p->ring)) { /* left from the last batch: no wait */
        err = 0;
    } else if (timeout_ns == 0) {
        err = io_uring_submit_and_get_events(&p->ring);
    } else {
        struct io_uring_cqe *cqe;
        struct __kernel_timespec ts = {.tv_sec = timeout_ns / 1000000000,
                                       .tv_nsec = timeout_ns % 1000000000};
        err = io_uring_submit_and_wait_timeout(&p->ring, &cqe, 1, timeout_ns < 0 ? NULL : &ts, NULL);
    }
    if (err < 0 && err != -ETIME && err != -EINTR && err != -EBUSY && err != -EAGAIN)
        return err;

    int n = 0;
    unsigned head, seen = 0;
    struct io_uring_cqe *cqe;
    io_uring_for_each_cqe(&p->ring, head, cqe) {
        if (n == max)
            break;
        seen++;
        if (translate(p, cqe, &out[n]))
            n++;
    }
    io_uring_cq_advance(&p->ring, seen);
#ifdef UR_TSAN
    char b;
    (void)!recv(p->tsan_fds[0], &b, 1, MSG_PEEK | MSG_DONTWAIT); /* the receives: an acquire */
#endif
    return n;
}

const evio__backend_ops evio__backend = {
    .name = "io_uring",
    .caps = EVIO__CAP_NATIVE | EVIO__CAP_COMPLETION,
    .create = ur_create,
    .destroy = ur_destroy,
    .set = ur_set,
    .poll = ur_poll,
    .wake = ur_wake,
    .accept = ur_accept,
    .recv = ur_recv,
    .send = ur_send,
    .cancel = ur_cancel,
};
