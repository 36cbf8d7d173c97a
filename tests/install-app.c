/*
 * install-app.c — a user's program, built against an *installed* evio with
 * nothing but `cc app.c $(pkg-config --cflags --libs ...)`, by
 * tests/install.test (once per evio-BACKEND.pc) and scripts/check-deb.
 *
 * It serves on a loopback port the kernel picks, dials itself, sends
 * "ping" and waits for the echo, so the backend really runs a loop; then it
 * prints the backend it ran on.  Built with -DWITH_ZLIB (evio-zlib) both
 * ends of the connection are compressed; with -DWITH_TLS (evio-tls) it also
 * makes and frees a TLS translator, so that library is loaded and called.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include <evio.h>
#ifdef WITH_ZLIB
#include <evio_zlib.h>
static evio_translator zlib;
#endif
#ifdef WITH_TLS
#include <evio_tls.h>
#endif

static int echoed;
static char got[8];
static size_t ngot;

static const evio_translator *translate(evio_conn *c, const evio_info *info)
{
    (void)c;
    (void)info;
#ifdef WITH_ZLIB
    return &zlib;
#else
    return NULL;
#endif
}

static evio_action serving(evio_server *srv)
{
    const struct sockaddr_in *sin = (const void *)evio_server_addr(srv, 0, NULL);
    char addr[64];
    uint64_t id;
    snprintf(addr, sizeof addr, "tcp://127.0.0.1:%u", (unsigned)ntohs(sin->sin_port));
    return evio_dial(srv, addr, 2000, NULL, &id) == 0 ? EVIO_NONE : EVIO_SHUTDOWN;
}

static evio_action opened(evio_conn *c, const evio_info *info)
{
    if (!info->dialed)
        return EVIO_NONE;
    if (info->dial_error)
        return EVIO_SHUTDOWN;
    evio_conn_set_context(c, &echoed); /* marks the client end */
    evio_write(c, "ping", 4);
    return EVIO_NONE;
}

static evio_action data(evio_conn *c, const void *in, size_t len)
{
    if (!in)
        return EVIO_NONE;
    if (!evio_conn_context(c)) { /* the server end echoes */
        evio_write(c, in, len);
        return EVIO_NONE;
    }
    if (len > sizeof got - ngot)
        return EVIO_SHUTDOWN;
    memcpy(got + ngot, in, len);
    ngot += len;
    if (ngot < 4)
        return EVIO_NONE;
    echoed = memcmp(got, "ping", 4) == 0;
    return EVIO_SHUTDOWN;
}

static evio_action tick(evio_server *srv, int64_t *delay_ns)
{
    static int fired;
    (void)srv;
    *delay_ns = 5000000000; /* the first tick comes at once; the second is the time limit */
    return fired++ ? EVIO_SHUTDOWN : EVIO_NONE;
}

int main(void)
{
#ifdef WITH_ZLIB
    if (evio_zlib(-1, &zlib) != 0)
        return fprintf(stderr, "evio_zlib failed\n"), 1;
#endif
#ifdef WITH_TLS
    evio_translator tls;
    char err[256];
    if (evio_tls_client(NULL, NULL, EVIO_TLS_NO_VERIFY, &tls, err, sizeof err) != 0)
        return fprintf(stderr, "evio_tls_client: %s\n", err), 1;
    evio_tls_free(&tls);
#endif
    evio_events ev = {
        .serving = serving, .opened = opened, .data = data, .tick = tick, .translate = translate};
    const char *addrs[] = {"tcp://127.0.0.1:0"};
    int rc = evio_serve(&ev, addrs, 1);
    if (rc != 0)
        return fprintf(stderr, "evio_serve: %s\n", evio_strerror(rc)), 1;
    printf("backend=%s echo=%s\n", evio_backend_name(), echoed ? "ok" : "FAILED");
    return echoed ? 0 : 1;
}
