/* http-server — "Hello World!" over HTTP/1.1, plain and over TLS.
 *
 *   http-server [--host ADDR] [--port N] [--tlsport N] [--tlscert FILE --tlskey FILE]
 *               [--dev-cert] [--loops N] [--header-timeout MS] [--keepalive-timeout MS]
 *
 * Listens on tcp://ADDR:N (default 127.0.0.1: loopback only; --host 0.0.0.0
 * or --host :: for every address; port 8080) in plain HTTP
 * and on tcp://ADDR:TLSPORT (default 4443) over TLS; --tlsport -1 leaves TLS
 * out, and port 0 lets the kernel choose (the addresses are printed).  One evio server serves both: the translate choice gives the second
 * listener the TLS translator.  Keep-alive and pipelining: every complete
 * request in what arrives is answered, in order, in one write.
 *
 * Without --tlscert/--tlskey it uses a development certificate: quietly
 * with --dev-cert, else with a loud warning.  That is the one the build
 * made (examples/http-server/dev-cert.pem and dev-key.pem, relative to the
 * current directory) if you own it and its directory and nobody else can
 * write them, or else one made on first run with the openssl tool in
 * $TMPDIR/evio-http-dev-UID, which must be your own directory with mode
 * 0700: a certificate someone else planted is never used.  Never use the
 * development certificate for anything real.
 *
 * Try:  curl http://localhost:8080/   curl -k https://localhost:4443/
 *
 * Slow clients are bounded as nginx bounds them: a request head must
 * arrive whole within --header-timeout ms of its first byte (of the
 * connection, for the first request; default 10000, nginx's
 * client_header_timeout is 60 s), an idle keep-alive connection is closed
 * after --keepalive-timeout ms (default 75000, nginx's keepalive_timeout),
 * and the TLS handshake has evio_tls's 10 s.  A client that pipelines
 * requests and never reads meets evio's output high-water mark: it is not
 * read until it reads.
 *
 * --loops N runs N loops (threads; 0 = one per CPU).  Stops on
 * SIGINT/SIGTERM. */
#define _POSIX_C_SOURCE 200809L /* sigaction under -std=c11 */

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <evio.h>
#include <evio_tls.h>

#include "http.h"

static evio_server *volatile server; /* for the signal handler */
static evio_translator tls;
static int tls_listener = -1; /* which listen address is TLS */

/* ---------------------------------------------------------------- connections */

typedef struct client {
    char *buf; /* a request head that has not fully arrived */
    size_t len, cap;
    unsigned long long body_left; /* body bytes of the last request still to skip */
    bool head_timed; /* the header timeout runs */
} client;

static int header_timeout_ms = 10000;
static int keepalive_timeout_ms = 75000;

#define HELLO "Hello World!"
#define HEADERS "Server: evio\r\nContent-Type: text/plain\r\n"

static const char ok_keep[] = "HTTP/1.1 200 OK\r\n" HEADERS "Content-Length: 12\r\n\r\n" HELLO;
static const char ok_keep10[] =
    "HTTP/1.1 200 OK\r\n" HEADERS "Connection: keep-alive\r\nContent-Length: 12\r\n\r\n" HELLO;
static const char ok_close[] =
    "HTTP/1.1 200 OK\r\n" HEADERS "Connection: close\r\nContent-Length: 12\r\n\r\n" HELLO;
static const char bad_request[] = "HTTP/1.1 400 Bad Request\r\n" HEADERS
                                  "Connection: close\r\nContent-Length: 12\r\n\r\nBad Request\n";
static const char too_large[] = "HTTP/1.1 431 Request Header Fields Too Large\r\n" HEADERS
                                "Connection: close\r\nContent-Length: 0\r\n\r\n";
static const char bad_version[] = "HTTP/1.1 505 HTTP Version Not Supported\r\n" HEADERS
                                  "Connection: close\r\nContent-Length: 0\r\n\r\n";
static const char not_impl[] = "HTTP/1.1 501 Not Implemented\r\n" HEADERS
                               "Connection: close\r\nContent-Length: 0\r\n\r\n";

/* Responses to everything one data() event brought, sent with one write
 * (over TLS: one record rather than one per request). */
typedef struct outbuf {
    char small[4096];
    char *p;
    size_t len, cap;
    bool failed;
} outbuf;

static void out_add(outbuf *o, const char *s, size_t n)
{
    if (o->len + n > o->cap) {
        size_t cap = o->cap * 2 > o->len + n ? o->cap * 2 : o->len + n;
        char *p = o->p == o->small ? malloc(cap) : realloc(o->p, cap);
        if (!p) {
            o->failed = true;
            return;
        }
        if (o->p == o->small)
            memcpy(p, o->small, o->len);
        o->p = p;
        o->cap = cap;
    }
    memcpy(o->p + o->len, s, n);
    o->len += n;
}

#define OUT_LIT(o, lit) out_add((o), (lit), sizeof(lit) - 1)

static void answer(outbuf *o, const http_request *req)
{
    bool head = req->method_len == 4 && memcmp(req->method, "HEAD", 4) == 0;
    const char *r = !req->keep_alive ? ok_close : req->minor == 0 ? ok_keep10 : ok_keep;
    size_t n = strlen(r);
    out_add(o, r, head ? n - (sizeof HELLO - 1) : n);
}

/* Answer every complete request in p[0..len); returns how many bytes were
 * used (the rest is an incomplete head) and sets *close when the
 * connection must end after the output. */
static size_t serve_requests(client *cl, const char *p, size_t len, outbuf *o, bool *close)
{
    size_t used = 0;
    while (used < len && !*close) {
        if (cl->body_left) {
            size_t skip = len - used < cl->body_left ? len - used : (size_t)cl->body_left;
            cl->body_left -= skip;
            used += skip;
            continue;
        }
        http_request req;
        long n = http_parse(p + used, len - used, HTTP_MAX_HEAD, &req);
        if (n == HTTP_AGAIN)
            break;
        if (n < 0) {
            if (n == HTTP_ETOOBIG)
                OUT_LIT(o, too_large);
            else if (n == HTTP_EVERSION)
                OUT_LIT(o, bad_version);
            else
                OUT_LIT(o, bad_request);
            *close = true;
            break;
        }
        used += (size_t)n;
        if (req.chunked) {
            OUT_LIT(o, not_impl);
            *close = true;
            break;
        }
        answer(o, &req); /* before its body is read: the body does not change it */
        cl->body_left = req.content_length;
        if (!req.keep_alive)
            *close = true;
    }
    return used;
}

static evio_action opened(evio_conn *c, const evio_info *info)
{
    (void)info;
    client *cl = calloc(1, sizeof *cl);
    if (!cl)
        return EVIO_CLOSE;
    evio_conn_set_context(c, cl);
    evio_conn_set_deadline(c, header_timeout_ms); /* for the first request's head */
    cl->head_timed = true;
    return EVIO_NONE;
}

static evio_action closed(evio_conn *c, int err)
{
    client *cl = evio_conn_context(c);
    if (cl) {
        free(cl->buf);
        free(cl);
    }
    const char *why = evio_conn_error(c);
    if (err && *why)
        fprintf(stderr, "http-server: connection %llu: %s\n",
                (unsigned long long)evio_conn_id(c), why);
    return EVIO_NONE;
}

static evio_action data(evio_conn *c, const void *in, size_t len)
{
    client *cl = evio_conn_context(c);
    if (!in || !cl)
        return EVIO_NONE;
    outbuf o = {.p = NULL, .cap = sizeof o.small};
    o.p = o.small;
    bool close = false;
    if (cl->len == 0) { /* the usual case: parse the input where it is */
        size_t used = serve_requests(cl, in, len, &o, &close);
        if (!close && used < len) {
            if (len - used > cl->cap) {
                char *b = realloc(cl->buf, len - used);
                if (!b)
                    return EVIO_CLOSE;
                cl->buf = b;
                cl->cap = len - used;
            }
            memcpy(cl->buf, (const char *)in + used, len - used);
            cl->len = len - used;
        }
    } else {
        if (cl->len + len > cl->cap) {
            size_t cap = cl->len + len;
            char *b = realloc(cl->buf, cap);
            if (!b)
                return EVIO_CLOSE;
            cl->buf = b;
            cl->cap = cap;
        }
        memcpy(cl->buf + cl->len, in, len);
        cl->len += len;
        size_t used = serve_requests(cl, cl->buf, cl->len, &o, &close);
        memmove(cl->buf, cl->buf + used, cl->len - used);
        cl->len -= used;
    }
    /* A head that has begun must end in time; between requests only the
     * keep-alive (idle) timeout runs. */
    bool in_head = cl->len > 0;
    if (in_head != cl->head_timed) {
        evio_conn_set_deadline(c, in_head ? header_timeout_ms : 0);
        cl->head_timed = in_head;
    }
    if (o.len && !o.failed && evio_write(c, o.p, o.len) != 0)
        close = true;
    if (o.p != o.small)
        free(o.p);
    return close || o.failed ? EVIO_CLOSE : EVIO_NONE;
}

/* While the client is not taking our output, its next head is not being
 * read (evio's high-water mark), so the header timeout must not count:
 * the write timeout governs instead, as nginx's send_timeout does. */
static evio_action postwrite(evio_conn *c, size_t written, size_t remaining)
{
    (void)written;
    client *cl = evio_conn_context(c);
    if (!cl)
        return EVIO_NONE;
    bool in_head = cl->len > 0 && remaining == 0;
    if (in_head != cl->head_timed) {
        evio_conn_set_deadline(c, in_head ? header_timeout_ms : 0);
        cl->head_timed = in_head;
    }
    return EVIO_NONE;
}

static const evio_translator *translate(evio_conn *c, const evio_info *info)
{
    (void)c;
    return info->listener >= 0 && info->listener == tls_listener ? &tls : NULL;
}

/* ---------------------------------------------------------------- setup */

static bool loopback_only;

static evio_action serving(evio_server *srv)
{
    server = srv;
    printf("http server (backend: %s)\n", evio_backend_name());
    for (size_t i = 0; i < evio_server_naddrs(srv); i++) {
        socklen_t len;
        const struct sockaddr *sa = evio_server_addr(srv, i, &len);
        char where[160];
        evio_addr_format(sa, len, where, sizeof where);
        const char *rest = strstr(where, "://");
        printf("listening on %s%s\n", (int)i == tls_listener ? "https" : "http",
               rest ? rest : where);
    }
    if (loopback_only)
        printf("(loopback only: --host 0.0.0.0 or --host :: listens on every interface)\n");
    fflush(stdout);
    return EVIO_NONE;
}

static void on_signal(int sig)
{
    (void)sig;
    if (server)
        evio_server_shutdown(server); /* async-signal-safe: a flag and a wake */
}

static bool exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* Is path ours, of the right kind (no symlink), and writable by us alone?
 * A directory for our private files must moreover be mode 0700. */
static bool ours(const char *path, bool dir, bool private_dir)
{
    struct stat st;
    if (lstat(path, &st) != 0 || st.st_uid != getuid() ||
        !(dir ? S_ISDIR(st.st_mode) : S_ISREG(st.st_mode)))
        return false;
    return private_dir ? (st.st_mode & 0777) == 0700 : (st.st_mode & 022) == 0;
}

/* The development certificate: the build's, or one made now. */
static bool dev_cert(char *cert, char *key, size_t size)
{
    snprintf(cert, size, "examples/http-server/dev-cert.pem");
    snprintf(key, size, "examples/http-server/dev-key.pem");
    if (exists(cert) && exists(key)) {
        if (ours("examples", true, false) && ours("examples/http-server", true, false) &&
            ours(cert, false, false) && ours(key, false, false))
            return true;
        fprintf(stderr, "http-server: not using %s: it or its directory is not yours, or "
                        "others can write it\n", cert);
    }
    const char *tmp = getenv("TMPDIR");
    char dir[512];
    snprintf(dir, sizeof dir, "%s/evio-http-dev-%u", tmp && *tmp ? tmp : "/tmp",
             (unsigned)getuid());
    snprintf(cert, size, "%s/cert.pem", dir);
    snprintf(key, size, "%s/key.pem", dir);
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        fprintf(stderr, "http-server: mkdir %s: %s\n", dir, strerror(errno));
        return false;
    }
    if (!ours(dir, true, true)) { /* someone else may have made it first */
        fprintf(stderr, "http-server: not using %s: it is not a directory of yours with mode "
                        "0700; remove it, or pass --tlscert and --tlskey\n", dir);
        return false;
    }
    if (exists(cert) && exists(key)) {
        if (ours(cert, false, false) && ours(key, false, false))
            return true;
        fprintf(stderr, "http-server: not using %s: not yours, or others can write it\n", cert);
        return false;
    }
    fprintf(stderr, "http-server: making a development certificate in %s\n", dir);
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj /CN=localhost "
             "-addext 'subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1' "
             "-keyout '%s' -out '%s' 2>/dev/null",
             key, cert);
    if (system(cmd) != 0 || !exists(cert)) {
        fprintf(stderr, "http-server: could not run the openssl tool to make a certificate "
                        "(Debian: apt-get install openssl), or pass --tlscert and --tlskey\n");
        return false;
    }
    return true;
}

static void usage(const char *argv0)
{
    fprintf(stderr,
            "usage: %s [--host ADDR] [--port N] [--tlsport N] [--tlscert FILE --tlskey FILE] "
            "[--dev-cert] [--loops N] [--header-timeout MS] [--keepalive-timeout MS]\n",
            argv0);
    exit(2);
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1", *certfile = NULL, *keyfile = NULL;
    int port = 8080, tlsport = 4443, loops = 1;
    bool devcert = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--host") == 0 && i + 1 < argc)
            host = argv[++i];
        else if (strcmp(argv[i], "--port") == 0 && i + 1 < argc)
            port = atoi(argv[++i]);
        else if (strcmp(argv[i], "--tlsport") == 0 && i + 1 < argc)
            tlsport = atoi(argv[++i]);
        else if (strcmp(argv[i], "--tlscert") == 0 && i + 1 < argc)
            certfile = argv[++i];
        else if (strcmp(argv[i], "--tlskey") == 0 && i + 1 < argc)
            keyfile = argv[++i];
        else if (strcmp(argv[i], "--dev-cert") == 0)
            devcert = true;
        else if (strcmp(argv[i], "--loops") == 0 && i + 1 < argc)
            loops = atoi(argv[++i]);
        else if (strcmp(argv[i], "--header-timeout") == 0 && i + 1 < argc)
            header_timeout_ms = atoi(argv[++i]);
        else if (strcmp(argv[i], "--keepalive-timeout") == 0 && i + 1 < argc)
            keepalive_timeout_ms = atoi(argv[++i]);
        else
            usage(argv[0]);
    }
    if (header_timeout_ms < 0 || keepalive_timeout_ms < 0)
        usage(argv[0]); /* 0 turns a timeout off */
    if (!certfile != !keyfile) {
        fprintf(stderr, "http-server: --tlscert and --tlskey go together\n");
        return 2;
    }
    /* A literal IPv6 address needs brackets in an evio address. */
    const char *lb = strchr(host, ':') ? "[" : "", *rb = strchr(host, ':') ? "]" : "";
    loopback_only = strncmp(host, "127.", 4) == 0 || strcmp(host, "::1") == 0 ||
                    strcmp(host, "localhost") == 0;
    char plain[300], secure[300];
    snprintf(plain, sizeof plain, "tcp://%s%s%s:%d", lb, host, rb, port);
    snprintf(secure, sizeof secure, "tcp://%s%s%s:%d", lb, host, rb, tlsport);
    const char *addrs[2] = {plain, secure};
    size_t naddrs = 1;

    char cert[600], key[600];
    if (tlsport >= 0) {
        if (!certfile) {
            if (!dev_cert(cert, key, sizeof cert))
                return 1;
            if (!devcert)
                fprintf(stderr,
                        "\n"
                        "*** WARNING: TLS is served with the DEVELOPMENT certificate %s,\n"
                        "*** whose private key is no secret.  Pass --tlscert and --tlskey for\n"
                        "*** anything real, --dev-cert to ask for this one, or --tlsport -1.\n\n",
                        cert);
            certfile = cert;
            keyfile = key;
        }
        char err[512];
        if (evio_tls_server(certfile, keyfile, &tls, err, sizeof err) != 0) {
            fprintf(stderr, "http-server: %s\n", err);
            return 1;
        }
        tls_listener = 1;
        naddrs = 2;
    }

    /* sigaction, not signal(): under strict C11 glibc's signal() resets the
     * handler after one signal, so a second SIGTERM (GNU timeout sends
     * two) would kill the process in the middle of its shutdown. */
    struct sigaction sa = {.sa_handler = on_signal, .sa_flags = SA_RESTART};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    evio_events events = {
        .serving = serving,
        .opened = opened,
        .closed = closed,
        .data = data,
        .postwrite = postwrite,
        .translate = translate,
        .idle_timeout_ms = keepalive_timeout_ms,
        .nloops = loops == 0 ? EVIO_LOOPS_PER_CPU : loops,
    };
    int err = evio_serve(&events, addrs, naddrs);
    server = NULL; /* gone: a late signal must not touch it */
    evio_tls_free(&tls);
    if (err) {
        fprintf(stderr, "http-server: %s\n", evio_strerror(err));
        return 1;
    }
    return 0;
}
