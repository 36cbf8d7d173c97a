/* echo-server — writes back whatever it receives.
 *
 *   echo-server [--port N] [--unixsocket PATH] [--reuseport]
 *
 * Listens on tcp://:N (default 5000, every address) and, with --unixsocket,
 * on a unix socket too.  Stops on SIGINT/SIGTERM. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <evio.h>

static evio_server *volatile server; /* for the signal handler */

static evio_action serving(evio_server *srv)
{
    server = srv;
    printf("echo server (backend: %s)\n", evio_backend_name());
    for (size_t i = 0; i < evio_server_naddrs(srv); i++) {
        socklen_t len;
        const struct sockaddr *sa = evio_server_addr(srv, i, &len);
        char where[160];
        evio_addr_format(sa, len, where, sizeof where);
        printf("listening on %s\n", where);
    }
    fflush(stdout);
    return EVIO_NONE;
}

static evio_action data(evio_conn *c, const void *in, size_t len)
{
    if (in && evio_write(c, in, len) != 0)
        return EVIO_CLOSE; /* out of memory: drop this client, keep serving */
    return EVIO_NONE;
}

static void on_signal(int sig)
{
    (void)sig;
    if (server)
        evio_server_shutdown(server); /* async-signal-safe: a flag and a wake */
}

static void usage(const char *argv0)
{
    fprintf(stderr, "usage: %s [--port N] [--unixsocket PATH] [--reuseport]\n", argv0);
    exit(2);
}

int main(int argc, char **argv)
{
    int port = 5000;
    const char *unixsocket = NULL;
    int reuseport = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--port") == 0 && i + 1 < argc)
            port = atoi(argv[++i]);
        else if (strcmp(argv[i], "--unixsocket") == 0 && i + 1 < argc)
            unixsocket = argv[++i];
        else if (strcmp(argv[i], "--reuseport") == 0)
            reuseport = 1;
        else
            usage(argv[0]);
    }

    char tcp[64], unx[1100];
    snprintf(tcp, sizeof tcp, "tcp://:%d%s", port, reuseport ? "?reuseport=true" : "");
    const char *addrs[2] = {tcp, NULL};
    size_t naddrs = 1;
    if (unixsocket) {
        snprintf(unx, sizeof unx, "unix://%s", unixsocket);
        addrs[naddrs++] = unx;
    }

    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    evio_events events = {.serving = serving, .data = data};
    int err = evio_serve(&events, addrs, naddrs);
    if (err) {
        fprintf(stderr, "echo-server: %s\n", evio_strerror(err));
        return 1;
    }
    return 0;
}
