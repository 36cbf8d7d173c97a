/*
 * sys.h — the system calls and allocations of the socket paths (internal).
 *
 * Every call the frontend makes on a connection's way (accept, read, write,
 * connect, close, the output queue's and the fd table's memory) and the
 * backend's poll and interest changes go through this one table, so that a
 * test build can replace entries with a seeded fault schedule (tests/fault.c:
 * short reads and writes, EAGAIN, EINTR, resets, EMFILE, ENOMEM, failed
 * connects, spurious readiness) and check that the library survives them.
 *
 * The default table holds the C library's functions themselves: a call
 * costs one load and one indirect call, and nothing else changes.  Backends
 * use it for their own memory and wakeup fds; their wait call (epoll_wait,
 * kevent, uv_run...) is reached through poll here, which calls
 * evio__backend.poll, because its type differs per backend.
 *
 * Only a test replaces entries, before any loop runs or while its loops run
 * (each entry is one pointer, read once per call).
 */
#ifndef EVIO_SYS_H
#define EVIO_SYS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "backend.h"

typedef struct evio__sys_ops {
    void *(*malloc)(size_t n);
    void *(*calloc)(size_t n, size_t size);
    void *(*realloc)(void *p, size_t n);
    void (*free)(void *p);

    int (*socket)(int domain, int type, int protocol);
    int (*connect)(int fd, const struct sockaddr *sa, socklen_t len);
    /* accept4 where the system has it (flags as accept4's), else accept
     * (flags must be 0). */
    int (*accept)(int fd, struct sockaddr *sa, socklen_t *len, int flags);
    int (*getsockopt)(int fd, int level, int name, void *val, socklen_t *len);
    int (*shutdown)(int fd, int how);
    int (*close)(int fd);
    ssize_t (*recv)(int fd, void *buf, size_t len, int flags);
    ssize_t (*send)(int fd, const void *buf, size_t len, int flags);
    ssize_t (*recvfrom)(int fd, void *buf, size_t len, int flags, struct sockaddr *sa,
                        socklen_t *salen);
    ssize_t (*sendto)(int fd, const void *buf, size_t len, int flags, const struct sockaddr *sa,
                      socklen_t salen);
    ssize_t (*read)(int fd, void *buf, size_t len);   /* backends' wakeup fds */
    ssize_t (*write)(int fd, const void *buf, size_t len);

    /* evio__backend.set and .poll. */
    int (*set)(evio__poller *p, int fd, unsigned old_mask, unsigned new_mask);
    int (*poll)(evio__poller *p, evio__event *out, int max, int64_t timeout_ns);
} evio__sys_ops;

extern evio__sys_ops evio__sys;
/* The C library's table, for a replacement to call through. */
extern const evio__sys_ops evio__sys_default;

#endif /* EVIO_SYS_H */
