/* error.c — one error convention: 0 or a negative code (-errno or EVIO_E*). */
#include "config.h"

#include <string.h>

#include "internal.h"

const char *evio_strerror(int err)
{
    switch (err) {
    case 0: return "success";
    case EVIO_EADDR: return "malformed address (expected e.g. tcp://127.0.0.1:5000, tcp6://[::1]:5000 or unix:///path)";
    case EVIO_ESCHEME: return "unknown address scheme (use tcp, tcp4, tcp6, udp, udp4, udp6 or unix)";
    case EVIO_EOPTION: return "unknown or malformed address option (supported: ?reuseport=true|false)";
    case EVIO_ENOADDR: return "no address to serve";
    case EVIO_EBACKEND: return "the event backend failed and cannot continue";
    case EVIO_ESHUTDOWN: return "the connection or server is shutting down";
    case EVIO_ENOTFOUND: return "no open connection with that id";
    case EVIO_EINVAL: return "invalid argument";
    case EVIO_ENONAME: return "host name not found";
    case EVIO_EUDP: return "not available for UDP sessions (wake, dial)";
    case EVIO_ETRANSLATE: return "the connection's translator failed (evio_conn_error() says why)";
    case EVIO_EUNAVAILABLE: return "the backend this library was built with cannot run here (io_uring: disabled by the sysctl kernel.io_uring_disabled, refused by a seccomp profile such as Docker's default, or a kernel older than 6.1); rebuild with --with-backend=epoll or run where io_uring is allowed";
    }
    if (err < 0 && err > -4096)
        return strerror(-err); /* glibc and the BSDs return static strings */
    return "unknown evio error code";
}

const char *evio_backend_name(void)
{
    return evio__backend.name;
}
