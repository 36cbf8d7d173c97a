/* sys.c — the default system-call table: the C library's own functions.
 *
 * Calls whose prototypes glibc declares with a transparent union for the
 * address (under _GNU_SOURCE) get a one-line wrapper so the table's types
 * stay plain; recv and send, the hot ones, are the libc functions
 * themselves. */
#include "config.h"

#include <stdlib.h>
#include <unistd.h>

#include "sys.h"

static int sys_connect(int fd, const struct sockaddr *sa, socklen_t len)
{
    return connect(fd, sa, len);
}

static int sys_accept(int fd, struct sockaddr *sa, socklen_t *len, int flags)
{
#ifdef HAVE_ACCEPT4
    return accept4(fd, sa, len, flags);
#else
    (void)flags; /* always 0 without accept4 */
    return accept(fd, sa, len);
#endif
}

static ssize_t sys_recvfrom(int fd, void *buf, size_t len, int flags, struct sockaddr *sa,
                            socklen_t *salen)
{
    return recvfrom(fd, buf, len, flags, sa, salen);
}

static ssize_t sys_sendto(int fd, const void *buf, size_t len, int flags,
                          const struct sockaddr *sa, socklen_t salen)
{
    return sendto(fd, buf, len, flags, sa, salen);
}

static int sys_set(evio__poller *p, int fd, unsigned old_mask, unsigned new_mask)
{
    return evio__backend.set(p, fd, old_mask, new_mask);
}

static int sys_poll(evio__poller *p, evio__event *out, int max, int64_t timeout_ns)
{
    return evio__backend.poll(p, out, max, timeout_ns);
}

#define EVIO__SYS_DEFAULT                                                                  \
    {                                                                                      \
        .malloc = malloc, .calloc = calloc, .realloc = realloc, .free = free,              \
        .socket = socket, .connect = sys_connect, .accept = sys_accept,                    \
        .getsockopt = getsockopt, .shutdown = shutdown, .close = close, .recv = recv,      \
        .send = send, .recvfrom = sys_recvfrom, .sendto = sys_sendto, .read = read,        \
        .write = write, .set = sys_set, .poll = sys_poll,                                  \
    }

const evio__sys_ops evio__sys_default = EVIO__SYS_DEFAULT;
evio__sys_ops evio__sys = EVIO__SYS_DEFAULT;
