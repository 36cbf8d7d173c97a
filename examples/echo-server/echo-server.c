/* echo-server — writes back whatever it receives.
 *
 *   echo-server [--port N] [--bind HOST] [--unixsocket PATH] [--reuseport] [--udp]
 *               [--loops N]
 *
 * Listens on tcp://HOST:N (default 127.0.0.1, port 5000: loopback only;
 * --bind 0.0.0.0 or --bind :: for every address); with --udp on
 * udp://HOST:N too, with --unixsocket on a unix socket too.  --loops N runs N
 * loops (threads; 0 = one per CPU).  SIGTERM drains, SIGINT stops. */
#define _POSIX_C_SOURCE 200809L /* sigaction under -std=c11 */

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <evio.h>

static evio_server *volatile server; /* for the signal handler */
static const char *schemes[3];       /* what each listen address is */
static int loopback_only;

static evio_action serving(evio_server *srv)
{
    server = srv;
    printf("echo server (backend: %s)\n", evio_backend_name());
    for (size_t i = 0; i < evio_server_naddrs(srv); i++) {
        socklen_t len;
        const struct sockaddr *sa = evio_server_addr(srv, i, &len);
        char where[160];
        evio_addr_format(sa, len, where, sizeof where);
        /* evio_addr_format names every IP address tcp://; say what it is */
        const char *rest = strstr(where, "://");
        printf("listening on %s%s\n", schemes[i], rest ? rest : where);
    }
    if (loopback_only)
        printf("(loopback only: --bind 0.0.0.0 or --bind :: listens on every interface)\n");
    fflush(stdout);
    return EVIO_NONE;
}

static evio_action data(evio_conn *c, const void *in, size_t len)
{
    if (in && evio_write(c, in, len) != 0)
        return EVIO_CLOSE; /* out of memory: drop this client, keep serving */
    return EVIO_NONE;
}

/* SIGTERM drains (clients finish, for up to 5 s); SIGINT stops at once.
 * Both calls are async-signal-safe: a flag and a wake. */
static void on_signal(int sig)
{
    if (!server)
        return;
    if (sig == SIGTERM)
        evio_server_drain(server, 5000);
    else
        evio_server_shutdown(server);
}

static void usage(const char *argv0)
{
    fprintf(stderr,
            "usage: %s [--port N] [--bind HOST] [--unixsocket PATH] [--reuseport] [--udp] "
            "[--loops N]\n",
            argv0);
    exit(2);
}

int main(int argc, char **argv)
{
    int port = 5000;
    const char *unixsocket = NULL, *host = "127.0.0.1";
    int reuseport = 0, udp = 0, loops = 1;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--port") == 0 && i + 1 < argc)
            port = atoi(argv[++i]);
        else if (strcmp(argv[i], "--bind") == 0 && i + 1 < argc)
            host = argv[++i];
        else if (strcmp(argv[i], "--unixsocket") == 0 && i + 1 < argc)
            unixsocket = argv[++i];
        else if (strcmp(argv[i], "--reuseport") == 0)
            reuseport = 1;
        else if (strcmp(argv[i], "--udp") == 0)
            udp = 1;
        else if (strcmp(argv[i], "--loops") == 0 && i + 1 < argc)
            loops = atoi(argv[++i]);
        else
            usage(argv[0]);
    }

    const char *opt = reuseport ? "?reuseport=true" : "";
    char tcp[320], udpaddr[320], unx[1100];
    /* A literal IPv6 address needs brackets in an evio address. */
    const char *lb = strchr(host, ':') && host[0] != '[' ? "[" : "", *rb = *lb ? "]" : "";
    loopback_only = strncmp(host, "127.", 4) == 0 || strcmp(host, "::1") == 0 ||
                    strcmp(host, "[::1]") == 0 || strcmp(host, "localhost") == 0;
    snprintf(tcp, sizeof tcp, "tcp://%s%s%s:%d%s", lb, host, rb, port, opt);
    const char *addrs[3] = {tcp};
    size_t naddrs = 1;
    schemes[0] = "tcp";
    if (udp) {
        snprintf(udpaddr, sizeof udpaddr, "udp://%s%s%s:%d%s", lb, host, rb, port, opt);
        schemes[naddrs] = "udp";
        addrs[naddrs++] = udpaddr;
    }
    if (unixsocket) {
        snprintf(unx, sizeof unx, "unix://%s", unixsocket);
        schemes[naddrs] = "unix";
        addrs[naddrs++] = unx;
    }

    /* sigaction, not signal(): under -std=c11 glibc's signal() resets the
     * handler after one signal, and a second SIGTERM would kill us. */
    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    evio_events events = {
        .serving = serving,
        .data = data,
        .nloops = loops == 0 ? EVIO_LOOPS_PER_CPU : loops,
    };
    int err = evio_serve(&events, addrs, naddrs);
    if (err) {
        fprintf(stderr, "echo-server: %s\n", evio_strerror(err));
        return 1;
    }
    return 0;
}
