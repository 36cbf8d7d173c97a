/* listener.c — binding and unbinding listening sockets. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "internal.h"

static int listener_socket(const evio__addr *a)
{
    int fd = socket(a->sa.ss_family, a->socktype, 0);
    if (fd < 0)
        return -errno;
    if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0 || fcntl(fd, F_SETFL, O_NONBLOCK) < 0)
        goto fail;
    int one = 1, zero = 0;
    if (a->sa.ss_family != AF_UNIX &&
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0)
        goto fail;
    if (a->reuseport) {
#ifdef SO_REUSEPORT
        if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0)
            goto fail;
#else
        close(fd);
        return -ENOTSUP;
#endif
    }
    if (a->sa.ss_family == AF_INET6 &&
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, a->dualstack ? &zero : &one, sizeof one) < 0)
        goto fail;
    return fd;
fail:;
    int err = -errno;
    close(fd);
    return err;
}

/* A socket file left by an earlier run would make bind fail with
 * EADDRINUSE.  Only a file nobody listens on is stale (connect refused):
 * a live server's file is never taken over, nor a file that is not a
 * socket. */
static int remove_stale_socket(const evio__addr *a)
{
    const struct sockaddr_un *sun = (const struct sockaddr_un *)&a->sa;
    struct stat st;
    if (lstat(sun->sun_path, &st) != 0 || !S_ISSOCK(st.st_mode))
        return 0; /* nothing there, or bind will say what is wrong */
    int fd = socket(AF_UNIX, SOCK_STREAM, 0); /* SOCK_NONBLOCK is Linux's */
    if (fd < 0)
        return -errno;
    if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0 || fcntl(fd, F_SETFL, O_NONBLOCK) < 0) {
        int err = -errno;
        close(fd);
        return err;
    }
    int rc = connect(fd, (const struct sockaddr *)&a->sa, a->len) == 0 ? 0 : errno;
    close(fd);
    if (rc != ECONNREFUSED)
        return -EADDRINUSE; /* accepted, or a full backlog (EAGAIN): live */
    unlink(sun->sun_path);
    return 0;
}

/* Unix: set ?mode= before listen(), so no client connects while the file
 * still has the umask's mode, and remember which file is ours. */
static int unix_file_setup(evio__listener *l, const evio__addr *a)
{
    const char *path = ((const struct sockaddr_un *)&a->sa)->sun_path;
    struct stat st;
    if (a->mode >= 0 && chmod(path, (mode_t)a->mode) < 0)
        return -errno;
    if (lstat(path, &st) < 0)
        return -errno;
    l->made_file = true;
    l->file_dev = st.st_dev;
    l->file_ino = st.st_ino;
    return 0;
}

int evio__listener_open(evio__listener *l, const evio__addr *a, int index)
{
    *l = (evio__listener){.fd = -1, .index = index, .addr = *a};
    int fd = listener_socket(a);
    if (fd < 0)
        return fd;
    int err = a->sa.ss_family == AF_UNIX ? remove_stale_socket(a) : 0;
    if (err) {
        close(fd);
        return err;
    }
    if (bind(fd, (const struct sockaddr *)&a->sa, a->len) < 0)
        goto fail;
    if (a->sa.ss_family == AF_UNIX && (err = unix_file_setup(l, a)) != 0) {
        close(fd);
        unlink(((const struct sockaddr_un *)&a->sa)->sun_path);
        l->made_file = false;
        return err;
    }
    if (a->socktype == SOCK_STREAM && listen(fd, SOMAXCONN) < 0)
        goto fail;
    if (a->sa.ss_family != AF_UNIX) {
        l->addr.len = sizeof l->addr.sa;
        if (getsockname(fd, (struct sockaddr *)&l->addr.sa, &l->addr.len) < 0)
            goto fail;
    }
    l->fd = fd;
    return 0;
fail:
    err = -errno;
    close(fd);
    if (l->made_file)
        unlink(((const struct sockaddr_un *)&a->sa)->sun_path);
    l->made_file = false;
    return err;
}

void evio__listener_close(evio__listener *l)
{
    if (l->fd < 0)
        return;
    close(l->fd);
    l->fd = -1;
    /* Only the file we made: another server may own the path by now. */
    const char *path = ((struct sockaddr_un *)&l->addr.sa)->sun_path;
    struct stat st;
    if (l->made_file && lstat(path, &st) == 0 && st.st_dev == l->file_dev &&
        st.st_ino == l->file_ino)
        unlink(path);
    l->made_file = false;
}
