/*
 * uring-echo.c — the io_uring echo reference: what a careful programmer
 * writes by hand against liburing, and nothing more (issue 14's "minimal
 * io_uring echo server").
 *
 * One ring, IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN; one
 * multishot accept; one multishot recv per connection into a ring of
 * provided buffers; each received buffer is sent back as it is, straight
 * from the ring, and given back to the ring when its send completes; one
 * io_uring_submit_and_wait per loop iteration.  A short send sends the rest
 * from the same buffer.  At pipeline 1 a batch of requests costs one
 * system call.  Single-threaded, TCP_NODELAY, no per-request allocation.
 *
 * Usage: uring-echo [--port N]   (default 5001; 127.0.0.1 only)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

enum { NBUFS = 4096, BUFSIZE = 2048, BGID = 1, RING_ENTRIES = 4096 };
enum { OP_ACCEPT, OP_RECV, OP_SEND };

/* What a send in flight sends: a provided buffer, by its id. */
typedef struct sending { int fd; unsigned off, len; } sending;

static struct io_uring ring;
static struct io_uring_buf_ring *br;
static char *bufs;
static sending sends[NBUFS];
static int listen_fd;
/* Per fd: sends in flight, and whether its receive has ended.  The fd is
 * closed when both say so, never under a send still naming its number. */
enum { MAXFD = 65536 };
static unsigned short inflight[MAXFD];
static bool ended[MAXFD];

static void die(const char *what, int err) { fprintf(stderr, "uring-echo: %s: %s\n", what, strerror(err)); exit(1); }

static uint64_t data(unsigned op, unsigned fd, unsigned bid) { return (uint64_t)op << 48 | (uint64_t)bid << 32 | fd; }

static struct io_uring_sqe *sqe_get(void)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
    if (!sqe) { /* the queue is full: submit it, then there is room */
        io_uring_submit(&ring);
        sqe = io_uring_get_sqe(&ring);
        if (!sqe) die("io_uring_get_sqe", EBUSY);
    }
    return sqe;
}

static void arm_accept(void)
{
    struct io_uring_sqe *sqe = sqe_get();
    io_uring_prep_multishot_accept(sqe, listen_fd, NULL, NULL, SOCK_CLOEXEC);
    io_uring_sqe_set_data64(sqe, data(OP_ACCEPT, (unsigned)listen_fd, 0));
}

static void arm_recv(int fd)
{
    struct io_uring_sqe *sqe = sqe_get();
    io_uring_prep_recv_multishot(sqe, fd, NULL, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = BGID;
    io_uring_sqe_set_data64(sqe, data(OP_RECV, (unsigned)fd, 0));
}

static void send_buf(unsigned bid)
{
    sending *s = &sends[bid];
    struct io_uring_sqe *sqe = sqe_get();
    io_uring_prep_send(sqe, s->fd, bufs + (size_t)bid * BUFSIZE + s->off, s->len - s->off, MSG_NOSIGNAL);
    io_uring_sqe_set_data64(sqe, data(OP_SEND, (unsigned)s->fd, bid));
    inflight[s->fd]++;
}

static void close_if_done(int fd)
{
    if (ended[fd] && !inflight[fd]) {
        ended[fd] = false;
        close(fd);
    }
}

static void give_back(unsigned bid)
{
    io_uring_buf_ring_add(br, bufs + (size_t)bid * BUFSIZE, BUFSIZE, (unsigned short)bid,
                          io_uring_buf_ring_mask(NBUFS), 0);
    io_uring_buf_ring_advance(br, 1);
}

static void on_cqe(const struct io_uring_cqe *cqe)
{
    unsigned op = (unsigned)(cqe->user_data >> 48);
    int fd = (int)(uint32_t)cqe->user_data;
    unsigned bid = (unsigned)(cqe->user_data >> 32) & 0xffff;
    bool more = cqe->flags & IORING_CQE_F_MORE;
    switch (op) {
    case OP_ACCEPT:
        if (cqe->res >= MAXFD) {
            close(cqe->res);
        } else if (cqe->res >= 0) {
            int one = 1;
            setsockopt(cqe->res, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            arm_recv(cqe->res);
        }
        if (!more)
            arm_accept();
        break;
    case OP_RECV:
        if (cqe->res > 0) {
            bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
            sends[bid] = (sending){fd, 0, (unsigned)cqe->res};
            send_buf(bid);
            if (!more)
                arm_recv(fd);
        } else if (cqe->res == -ENOBUFS) {
            if (!more)
                arm_recv(fd); /* the buffers come back as sends complete */
        } else if (!more) { /* end of stream or an error */
            ended[fd] = true;
            close_if_done(fd);
        }
        break;
    case OP_SEND:
        inflight[fd]--;
        if (cqe->res > 0 && sends[bid].off + (unsigned)cqe->res < sends[bid].len) {
            sends[bid].off += (unsigned)cqe->res;
            send_buf(bid);
        } else {
            give_back(bid);
            close_if_done(fd);
        }
        break;
    }
}

int main(int argc, char **argv)
{
    int port = 5001;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--port") && i + 1 < argc) port = atoi(argv[++i]);
        else { fprintf(stderr, "usage: %s [--port N]\n", argv[0]); return 2; }
    }
    signal(SIGPIPE, SIG_IGN);

    listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (listen_fd < 0) die("socket", errno);
    int one = 1;
    setsockopt(listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    if (bind(listen_fd, (struct sockaddr *)&sa, sizeof sa) < 0) die("bind", errno);
    if (listen(listen_fd, 1024) < 0) die("listen", errno);

    struct io_uring_params params = { .flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN };
    int err = io_uring_queue_init_params(RING_ENTRIES, &ring, &params);
    if (err < 0) die("io_uring_queue_init_params", -err);

    /* The provided-buffer ring (liburing 2.3: registered by hand). */
    size_t ring_bytes = NBUFS * sizeof(struct io_uring_buf);
    if (posix_memalign((void **)&br, 4096, ring_bytes)) die("posix_memalign", ENOMEM);
    memset(br, 0, ring_bytes);
    struct io_uring_buf_reg reg = { .ring_addr = (unsigned long)br, .ring_entries = NBUFS, .bgid = BGID };
    if ((err = io_uring_register_buf_ring(&ring, &reg, 0)) < 0) die("io_uring_register_buf_ring", -err);
    io_uring_buf_ring_init(br);
    if (!(bufs = malloc((size_t)NBUFS * BUFSIZE))) die("malloc", ENOMEM);
    for (unsigned bid = 0; bid < NBUFS; bid++)
        give_back(bid);

    arm_accept();
    printf("uring-echo: plain io_uring, listening on 127.0.0.1:%d\n", port);
    fflush(stdout);

    for (;;) {
        err = io_uring_submit_and_wait(&ring, 1);
        if (err < 0 && err != -EINTR) die("io_uring_submit_and_wait", -err);
        unsigned head, seen = 0;
        struct io_uring_cqe *cqe;
        io_uring_for_each_cqe(&ring, head, cqe) {
            on_cqe(cqe);
            seen++;
        }
        io_uring_cq_advance(&ring, seen);
    }
}
