/*
 * test-translate.c — translators: the zlib and TLS translators of
 * evio_zlib.h and evio_tls.h on a real server, against clients that speak
 * the protocol with the libraries directly (the test's own deflate/inflate,
 * a blocking OpenSSL client) and against evio's own dialed connections.
 *
 * Covered: byte-exact round trips of 0 B to 1 MiB; a translate choice that
 * declines leaves a connection plain; corrupt zlib and garbage TLS input end
 * that connection with EVIO_ETRANSLATE and a message while the server goes
 * on serving others; close_notify both ways; the client translator on
 * dialed connections (no verification; verification against the test's CA
 * file with SNI and by IP address; verification failing against the
 * system's store); output written before the handshake; renegotiation
 * refused; and wake, pause/resume and detach on translated connections.
 *
 * The certificate is made in-process with the OpenSSL API (an EC key and a
 * self-signed certificate for localhost and 127.0.0.1) and written to /tmp
 * for the file-based constructors.  Without OpenSSL or zlib at configure
 * time the tests say so by name and do nothing else.
 */
#include "harness.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MIB (1024 * 1024)

#if defined(EVIO_HAVE_OPENSSL) || defined(EVIO_HAVE_ZLIB)

/* ---------------------------------------------------------------- shared server side */

/* What a dialed connection carries as its context. */
typedef struct dialer {
    const evio_translator *xl; /* its translator, or NULL */
    const uint8_t *payload;    /* written in opened(), before any handshake */
    size_t len;
    uint8_t *got;              /* what came back */
    size_t ngot;
    atomic_int opened, closed;
    int dial_error, err;
    char msg[256];
} dialer;

static struct {
    const evio_translator *xl[2]; /* per listener */
    dialer *dials[2];             /* dialed from serving() */
    size_t ndials;
    atomic_uint_fast64_t last_id; /* the last accepted connection */
    atomic_int closed;            /* accepted connections closed */
    atomic_int xerrs;             /* ... of them with EVIO_ETRANSLATE */
    pthread_mutex_t mu;
    int last_err;
    char last_msg[256];           /* evio_conn_error() of the last closed */
} tx;

static void tx_reset(void)
{
    memset(&tx, 0, sizeof tx);
    pthread_mutex_init(&tx.mu, NULL);
}

static const evio_translator *tx_translate(evio_conn *c, const evio_info *info)
{
    if (info->dialed) {
        dialer *d = evio_conn_context(c);
        return d ? d->xl : NULL;
    }
    return info->listener >= 0 && info->listener < 2 ? tx.xl[info->listener] : NULL;
}

static evio_action tx_opened(evio_conn *c, const evio_info *info)
{
    if (info->dialed) {
        dialer *d = evio_conn_context(c);
        d->dial_error = info->dial_error;
        atomic_store(&d->opened, 1);
        if (!info->dial_error && d->len) {
            int rc = evio_write(c, d->payload, d->len);
            H_EXPECT(rc == 0, "evio_write on a dialed translated connection: %d", rc);
        }
        return EVIO_NONE;
    }
    atomic_store(&tx.last_id, evio_conn_id(c));
    return h_opened_log(c, info);
}

static evio_action tx_data(evio_conn *c, const void *in, size_t len)
{
    dialer *d = evio_conn_context(c);
    if (d && in) { /* a dialed connection: collect the echo */
        H_EXPECT(d->ngot + len <= d->len, "%zu bytes back for %zu sent", d->ngot + len, d->len);
        if (d->ngot + len <= d->len)
            memcpy(d->got + d->ngot, in, len);
        d->ngot += len;
        return d->ngot >= d->len ? EVIO_CLOSE : EVIO_NONE;
    }
    return h_data_echo(c, in, len);
}

static evio_action tx_closed(evio_conn *c, int err)
{
    dialer *d = evio_conn_context(c);
    if (err == EVIO_ETRANSLATE)
        H_EXPECT(evio_conn_error(c)[0] != 0, "EVIO_ETRANSLATE without a message");
    if (d) {
        d->err = err;
        snprintf(d->msg, sizeof d->msg, "%s", evio_conn_error(c));
        atomic_store(&d->closed, 1);
        return EVIO_NONE;
    }
    pthread_mutex_lock(&tx.mu);
    tx.last_err = err;
    snprintf(tx.last_msg, sizeof tx.last_msg, "%s", evio_conn_error(c));
    pthread_mutex_unlock(&tx.mu);
    if (err == EVIO_ETRANSLATE)
        atomic_fetch_add(&tx.xerrs, 1);
    h_closed_log(c, err);
    atomic_fetch_add(&tx.closed, 1);
    return EVIO_NONE;
}

/* Dial listener 0 once per prepared dialer. */
static evio_action tx_serving(evio_server *srv)
{
    if (!tx.ndials)
        return EVIO_NONE;
    socklen_t len;
    const struct sockaddr *sa = evio_server_addr(srv, 0, &len);
    char addr[128];
    evio_addr_format(sa, len, addr, sizeof addr);
    for (size_t i = 0; i < tx.ndials; i++) {
        uint64_t id;
        int rc = evio_dial(srv, addr, 5000 * h_slow, tx.dials[i], &id);
        H_EXPECT(rc == 0, "evio_dial(%s): %d (%s)", addr, rc, evio_strerror(rc));
    }
    return EVIO_NONE;
}

static void tx_start(h_server *hs, evio_events *extra)
{
    evio_events ev = {
        .serving = tx_serving,
        .opened = tx_opened,
        .data = tx_data,
        .closed = tx_closed,
        .detached = h_detached_log,
        .translate = tx_translate,
    };
    if (extra && extra->data)
        ev.data = extra->data;
    const char *addrs[] = {"tcp://127.0.0.1:0", "tcp://127.0.0.1:0"};
    int rc = h_server_start(hs, &ev, addrs, 2);
    ck_assert_msg(rc == 0, "evio_serve: %d (%s)", rc, evio_strerror(rc));
}

static void tx_last(int *err, char *msg, size_t size)
{
    pthread_mutex_lock(&tx.mu);
    *err = tx.last_err;
    snprintf(msg, size, "%s", tx.last_msg);
    pthread_mutex_unlock(&tx.mu);
}

#endif /* either translator */

/* ================================================================ zlib */

#ifdef EVIO_HAVE_ZLIB
#include <zlib.h>

#include "evio_zlib.h"

/* A blocking zlib client: its own deflate and inflate over a socket. */
typedef struct zcli {
    int fd;
    z_stream d, i;
    uint8_t in[65536];
} zcli;

static void zcli_open(zcli *z, h_server *hs, size_t listener)
{
    memset(z, 0, sizeof *z);
    z->fd = h_connect(hs, listener);
    ck_assert_int_eq(deflateInit(&z->d, 1), Z_OK);
    ck_assert_int_eq(inflateInit(&z->i), Z_OK);
}

static void zcli_send(zcli *z, const uint8_t *buf, size_t len)
{
    uint8_t out[65536];
    z->d.next_in = (Bytef *)(uintptr_t)buf;
    z->d.avail_in = (uInt)len;
    do {
        z->d.next_out = out;
        z->d.avail_out = sizeof out;
        ck_assert_int_ne(deflate(&z->d, Z_SYNC_FLUSH), Z_STREAM_ERROR);
        h_send_all(z->fd, out, sizeof out - z->d.avail_out);
    } while (z->d.avail_out == 0);
}

/* Receive and inflate until exactly len decoded bytes are in buf. */
static void zcli_recv(zcli *z, uint8_t *buf, size_t len)
{
    size_t got = 0;
    while (got < len) {
        if (z->i.avail_in == 0) {
            ssize_t n = recv(z->fd, z->in, sizeof z->in, 0);
            ck_assert_msg(n > 0, "recv: %s after %zu of %zu decoded bytes",
                          n == 0 ? "EOF" : strerror(errno), got, len);
            z->i.next_in = z->in;
            z->i.avail_in = (uInt)n;
        }
        z->i.next_out = buf + got;
        z->i.avail_out = (uInt)(len - got);
        int rc = inflate(&z->i, Z_SYNC_FLUSH);
        ck_assert_msg(rc == Z_OK || rc == Z_BUF_ERROR, "inflate: %d (%s)", rc,
                      z->i.msg ? z->i.msg : "");
        got = len - z->i.avail_out;
    }
}

static void zcli_close(zcli *z)
{
    deflateEnd(&z->d);
    inflateEnd(&z->i);
    close(z->fd);
}

/* Sizes from nothing to 1 MiB, across zlib's and evio's buffer sizes. */
static const size_t zsizes[] = {0, 1, 100, 16383, 16384, 16385, 65537, 300000, MIB};

START_TEST(test_zlib_round_trip_and_plain_listener)
{
    tx_reset();
    evio_translator z;
    ck_assert_int_eq(evio_zlib(-1, &z), 0);
    ck_assert_int_eq(evio_zlib(10, &z), EVIO_EINVAL);
    ck_assert_int_eq(evio_zlib(6, &z), 0);
    tx.xl[0] = &z; /* listener 1 stays plain: the choice declined */
    h_server hs = {0};
    tx_start(&hs, NULL);

    zcli zc;
    zcli_open(&zc, &hs, 0);
    uint8_t *buf = h_xmalloc(MIB), *back = h_xmalloc(MIB);
    size_t total = 0;
    for (size_t k = 0; k < sizeof zsizes / sizeof zsizes[0]; k++) {
        size_t n = zsizes[k];
        h_fill(buf, n, (uint32_t)k);
        zcli_send(&zc, buf, n);
        zcli_recv(&zc, back, n);
        size_t bad = h_mismatch(back, n, (uint32_t)k);
        ck_assert_msg(bad == (size_t)-1, "zlib echo of %zu bytes differs at %zu", n, bad);
        total += n;
    }
    zcli_close(&zc);

    /* The plain listener echoes raw bytes. */
    int fd = h_connect(&hs, 1);
    h_send_all(fd, "plain bytes", 11);
    char raw[11];
    h_recv_exact(fd, raw, sizeof raw);
    ck_assert(memcmp(raw, "plain bytes", 11) == 0);
    close(fd);

    H_WAIT(atomic_load(&tx.closed) == 2, 5000, "both connections closed");
    int err;
    char msg[256];
    tx_last(&err, msg, sizeof msg);
    ck_assert_int_eq(atomic_load(&tx.xerrs), 0);
    printf("%s: %zu bytes in %zu round trips, byte-exact; plain listener untouched\n",
           tcase_name(), total, sizeof zsizes / sizeof zsizes[0]);
    free(buf);
    free(back);
    h_server_stop(&hs);
    h_log_check_sequences(true);
}
END_TEST

START_TEST(test_zlib_corrupt_input_closes_with_message)
{
    tx_reset();
    evio_translator z;
    ck_assert_int_eq(evio_zlib(-1, &z), 0);
    tx.xl[0] = &z;
    h_server hs = {0};
    tx_start(&hs, NULL);

    zcli good;
    zcli_open(&good, &hs, 0); /* open across the failure */
    int fd = h_connect(&hs, 0);
    h_send_all(fd, "this is certainly not a zlib stream\n", 36);
    int rc = h_drain(fd);
    ck_assert_msg(rc == 0 || rc == -ECONNRESET, "corrupt client: %s", strerror(-rc));
    close(fd);
    H_WAIT(atomic_load(&tx.xerrs) == 1, 5000, "closed(EVIO_ETRANSLATE)");
    int err;
    char msg[256];
    tx_last(&err, msg, sizeof msg);
    ck_assert_int_eq(err, EVIO_ETRANSLATE);
    ck_assert_msg(strstr(msg, "zlib: ") == msg, "message: '%s'", msg);
    printf("%s: closed(%s): \"%s\"\n", tcase_name(), evio_strerror(err), msg);

    /* The server keeps serving: the connection open before, and a new one. */
    uint8_t buf[5000], back[5000];
    h_fill(buf, sizeof buf, 7);
    zcli_send(&good, buf, sizeof buf);
    zcli_recv(&good, back, sizeof back);
    ck_assert(memcmp(buf, back, sizeof buf) == 0);
    zcli_close(&good);
    zcli_open(&good, &hs, 0);
    zcli_send(&good, buf, 10);
    zcli_recv(&good, back, 10);
    ck_assert(memcmp(buf, back, 10) == 0);
    zcli_close(&good);

    H_WAIT(atomic_load(&tx.closed) == 3, 5000, "all three closed");
    h_server_stop(&hs);
    h_log_check_sequences(true);
}
END_TEST

START_TEST(test_zlib_dialed_round_trip)
{
    /* Both ends are evio: a dialed connection with the zlib translator
     * talks to an accepted one with the same translator. */
    tx_reset();
    evio_translator z;
    ck_assert_int_eq(evio_zlib(1, &z), 0);
    tx.xl[0] = &z;
    static const size_t sizes[] = {70000, MIB};
    dialer d[2];
    uint8_t *pay[2];
    for (size_t k = 0; k < 2; k++) {
        pay[k] = h_xmalloc(sizes[k]);
        h_fill(pay[k], sizes[k], (uint32_t)(100 + k));
        d[k] = (dialer){.xl = &z, .payload = pay[k], .len = sizes[k], .got = h_xmalloc(sizes[k])};
        tx.dials[k] = &d[k];
    }
    tx.ndials = 2;
    h_server hs = {0};
    tx_start(&hs, NULL);
    H_WAIT(atomic_load(&d[0].closed) && atomic_load(&d[1].closed), 10000, "dialed round trips");
    h_server_stop(&hs);
    for (size_t k = 0; k < 2; k++) {
        ck_assert_msg(d[k].dial_error == 0 && d[k].err == 0, "dial %zu: dial_error %d, closed %d (%s)",
                      k, d[k].dial_error, d[k].err, d[k].msg);
        ck_assert_uint_eq(d[k].ngot, sizes[k]);
        ck_assert(h_mismatch(d[k].got, sizes[k], (uint32_t)(100 + k)) == (size_t)-1);
    }
    printf("%s: %zu and %zu bytes through evio_dial and back, byte-exact\n", tcase_name(),
           sizes[0], sizes[1]);
    for (size_t k = 0; k < 2; k++) {
        free(pay[k]);
        free(d[k].got);
    }
}
END_TEST
#endif /* EVIO_HAVE_ZLIB */

/* ================================================================ TLS */

#ifdef EVIO_HAVE_OPENSSL
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "evio_tls.h"

/* A self-signed certificate for localhost and 127.0.0.1, made in-process
 * and written to /tmp; the paths are removed by cert_remove(). */
static char cert_path[128], key_path[128];

static void cert_make_with(EVP_PKEY *pkey);

static void cert_make(void)
{
    cert_make_with(EVP_EC_gen("P-256"));
}

/* With the given key (freed here), e.g. RSA for the RSA cipher suites. */
static void cert_make_with(EVP_PKEY *pkey)
{
    static atomic_int n;
    int k = atomic_fetch_add(&n, 1);
    snprintf(cert_path, sizeof cert_path, "/tmp/evio-t%d-%d-cert.pem", (int)getpid(), k);
    snprintf(key_path, sizeof key_path, "/tmp/evio-t%d-%d-key.pem", (int)getpid(), k);
    ck_assert_msg(pkey != NULL, "key generation failed");
    X509 *x = X509_new();
    ck_assert(x != NULL);
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400);
    X509_set_pubkey(x, pkey);
    X509_NAME *name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"localhost", -1,
                               -1, 0);
    X509_set_issuer_name(x, name);
    X509V3_CTX v3;
    X509V3_set_ctx_nodb(&v3);
    X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
    static const struct { int nid; const char *value; } exts[] = {
        {NID_subject_alt_name, "DNS:localhost,IP:127.0.0.1"},
        {NID_basic_constraints, "critical,CA:TRUE"},
    };
    for (size_t i = 0; i < sizeof exts / sizeof exts[0]; i++) {
        X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, &v3, exts[i].nid, exts[i].value);
        ck_assert(e != NULL);
        X509_add_ext(x, e, -1);
        X509_EXTENSION_free(e);
    }
    ck_assert(X509_sign(x, pkey, EVP_sha256()) > 0);
    FILE *f = fopen(cert_path, "w");
    ck_assert(f != NULL);
    PEM_write_X509(f, x);
    fclose(f);
    f = fopen(key_path, "w");
    ck_assert(f != NULL);
    PEM_write_PrivateKey(f, pkey, NULL, NULL, 0, NULL, NULL);
    fclose(f);
    X509_free(x);
    EVP_PKEY_free(pkey);
}

static void cert_remove(void)
{
    unlink(cert_path);
    unlink(key_path);
}

static void tls_server(evio_translator *t)
{
    char err[256] = "";
    int rc = evio_tls_server(cert_path, key_path, t, err, sizeof err);
    ck_assert_msg(rc == 0, "evio_tls_server: %d: %s", rc, err);
}

/* A blocking OpenSSL client over a socket with the harness's timeouts. */
typedef struct tcli {
    int fd;
    SSL_CTX *ctx;
    SSL *ssl;
} tcli;

static void tcli_open_v(tcli *t, h_server *hs, size_t listener, int max_version)
{
    t->fd = h_connect(hs, listener);
    t->ctx = SSL_CTX_new(TLS_client_method());
    ck_assert(t->ctx != NULL);
    SSL_CTX_set_verify(t->ctx, SSL_VERIFY_NONE, NULL);
    if (max_version)
        SSL_CTX_set_max_proto_version(t->ctx, max_version);
    t->ssl = SSL_new(t->ctx);
    ck_assert(t->ssl != NULL);
    SSL_set_fd(t->ssl, t->fd);
    int r = SSL_connect(t->ssl);
    char e[256] = "";
    ERR_error_string_n(ERR_peek_error(), e, sizeof e);
    ck_assert_msg(r == 1, "SSL_connect: %d (%s)", SSL_get_error(t->ssl, r), e);
}

static void tcli_open(tcli *t, h_server *hs, size_t listener)
{
    tcli_open_v(t, hs, listener, 0);
}

static void tcli_write(tcli *t, const void *buf, size_t len)
{
    size_t n;
    ck_assert_msg(SSL_write_ex(t->ssl, buf, len, &n) == 1 && n == len, "SSL_write of %zu bytes",
                  len);
}

static void tcli_read(tcli *t, void *buf, size_t len)
{
    size_t got = 0;
    while (got < len) {
        size_t n;
        int r = SSL_read_ex(t->ssl, (char *)buf + got, len - got, &n);
        ck_assert_msg(r == 1, "SSL_read: error %d (errno %s) after %zu of %zu bytes",
                      SSL_get_error(t->ssl, r), strerror(errno), got, len);
        got += n;
    }
}

static void tcli_close(tcli *t)
{
    SSL_free(t->ssl);
    SSL_CTX_free(t->ctx);
    close(t->fd);
}

START_TEST(test_tls_echo_1mib)
{
    tx_reset();
    cert_make();
    evio_translator t;
    tls_server(&t);
    tx.xl[0] = &t;
    h_server hs = {0};
    tx_start(&hs, NULL);

    tcli c;
    tcli_open(&c, &hs, 0);
    printf("%s: %s, %s\n", tcase_name(), SSL_get_version(c.ssl), SSL_get_cipher(c.ssl));
    uint8_t *buf = h_xmalloc(MIB), *back = h_xmalloc(MIB);
    static const size_t sizes[] = {1, 16384, 16385, 100000, MIB};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        h_fill(buf, sizes[k], (uint32_t)k);
        tcli_write(&c, buf, sizes[k]);
        tcli_read(&c, back, sizes[k]);
        size_t bad = h_mismatch(back, sizes[k], (uint32_t)k);
        ck_assert_msg(bad == (size_t)-1, "TLS echo of %zu bytes differs at %zu", sizes[k], bad);
    }
    tcli_close(&c);
    H_WAIT(atomic_load(&tx.closed) == 1, 5000, "closed");
    ck_assert_int_eq(atomic_load(&tx.xerrs), 0);
    free(buf);
    free(back);
    h_server_stop(&hs);
    h_log_check_sequences(true);
    evio_tls_free(&t);
    evio_tls_free(&t); /* zeroed: harmless */
    cert_remove();
}
END_TEST

START_TEST(test_tls_garbage_closes_that_connection_only)
{
    tx_reset();
    cert_make();
    evio_translator t;
    tls_server(&t);
    tx.xl[0] = &t;
    h_server hs = {0};
    tx_start(&hs, NULL);

    tcli good;
    tcli_open(&good, &hs, 0); /* handshake done before the garbage */

    /* Garbage instead of a hello. */
    int fd = h_connect(&hs, 0);
    h_send_all(fd, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 27);
    int rc = h_drain(fd);
    ck_assert_msg(rc == 0 || rc == -ECONNRESET, "garbage client: %s", strerror(-rc));
    close(fd);
    H_WAIT(atomic_load(&tx.xerrs) == 1, 5000, "closed(EVIO_ETRANSLATE) after garbage");
    int err;
    char msg[256];
    tx_last(&err, msg, sizeof msg);
    ck_assert_int_eq(err, EVIO_ETRANSLATE);
    ck_assert_msg(strstr(msg, "TLS handshake: ") == msg, "message: '%s'", msg);
    printf("%s: garbage hello: \"%s\"\n", tcase_name(), msg);

    /* Garbage after a completed handshake: a bad record. */
    tcli c2;
    tcli_open(&c2, &hs, 0);
    tcli_write(&c2, "x", 1);
    char x;
    tcli_read(&c2, &x, 1);
    h_send_all(c2.fd, "\x17\x03\x03\x00\x10" "0123456789abcdef", 21); /* forged record */
    rc = h_drain(c2.fd);
    ck_assert_msg(rc == 0 || rc == -ECONNRESET, "bad record client: %s", strerror(-rc));
    tcli_close(&c2);
    H_WAIT(atomic_load(&tx.xerrs) == 2, 5000, "closed(EVIO_ETRANSLATE) after a bad record");
    tx_last(&err, msg, sizeof msg);
    ck_assert_msg(strstr(msg, "TLS read: ") == msg, "message: '%s'", msg);
    printf("%s: forged record: \"%s\"\n", tcase_name(), msg);

    /* The good client is still served. */
    uint8_t buf[3000], back[3000];
    h_fill(buf, sizeof buf, 3);
    tcli_write(&good, buf, sizeof buf);
    tcli_read(&good, back, sizeof back);
    ck_assert(memcmp(buf, back, sizeof buf) == 0);
    tcli_close(&good);
    H_WAIT(atomic_load(&tx.closed) == 3, 5000, "all closed");
    h_server_stop(&hs);
    h_log_check_sequences(true);
    evio_tls_free(&t);
    cert_remove();
}
END_TEST

/* ---------------------------------------------------------------- close_notify */

static evio_action cn_data(evio_conn *c, const void *in, size_t len)
{
    if (in && len == 3 && memcmp(in, "bye", 3) == 0) {
        h_log(c, H_DATA, (int64_t)len);
        evio_write(c, "ok", 2);
        return EVIO_CLOSE;
    }
    if (in && len == 6 && memcmp(in, "detach", 6) == 0) {
        h_log(c, H_DATA, (int64_t)len);
        evio_write(c, "gone", 4);
        return EVIO_DETACH; /* on a translated connection: a close */
    }
    return h_data_echo(c, in, len);
}

/* After the server's close_notify: SSL_read returns 0 with ZERO_RETURN. */
static void expect_close_notify(tcli *c)
{
    char b;
    size_t n;
    int r = SSL_read_ex(c->ssl, &b, 1, &n);
    ck_assert_msg(r == 0 && SSL_get_error(c->ssl, r) == SSL_ERROR_ZERO_RETURN,
                  "expected close_notify: SSL_read %d, error %d", r, SSL_get_error(c->ssl, r));
}

START_TEST(test_tls_close_notify_both_ways_and_detach)
{
    tx_reset();
    cert_make();
    evio_translator t;
    tls_server(&t);
    tx.xl[0] = &t;
    h_server hs = {0};
    evio_events extra = {.data = cn_data};
    tx_start(&hs, &extra);

    /* The server closes (EVIO_CLOSE): "ok", then close_notify. */
    tcli c;
    tcli_open(&c, &hs, 0);
    tcli_write(&c, "bye", 3);
    char ok[2];
    tcli_read(&c, ok, 2);
    ck_assert(memcmp(ok, "ok", 2) == 0);
    expect_close_notify(&c);
    tcli_close(&c);
    H_WAIT(atomic_load(&tx.closed) == 1, 5000, "closed after EVIO_CLOSE");
    int err;
    char msg[256];
    tx_last(&err, msg, sizeof msg);
    ck_assert_int_eq(err, 0);

    /* The client closes: its close_notify is answered, the close is clean. */
    tcli_open(&c, &hs, 0);
    tcli_write(&c, "x", 1);
    tcli_read(&c, ok, 1);
    ck_assert_int_eq(SSL_shutdown(c.ssl), 0); /* sent ours */
    int r = SSL_shutdown(c.ssl);              /* wait for theirs */
    ck_assert_msg(r == 1, "second SSL_shutdown: %d (error %d)", r, SSL_get_error(c.ssl, r));
    tcli_close(&c);
    H_WAIT(atomic_load(&tx.closed) == 2, 5000, "closed after the client's close_notify");
    tx_last(&err, msg, sizeof msg);
    ck_assert_msg(err == 0, "closed(%d: %s) \"%s\"", err, evio_strerror(err), msg);

    /* EVIO_DETACH on a translated connection closes it, with close_notify. */
    tcli_open(&c, &hs, 0);
    tcli_write(&c, "detach", 6);
    char gone[4];
    tcli_read(&c, gone, 4);
    ck_assert(memcmp(gone, "gone", 4) == 0);
    expect_close_notify(&c);
    tcli_close(&c);
    H_WAIT(atomic_load(&tx.closed) == 3, 5000, "closed after EVIO_DETACH");
    tx_last(&err, msg, sizeof msg);
    ck_assert_int_eq(err, 0);
    ck_assert_int_eq(h_log_count(H_DETACHED), 0);
    printf("%s: close_notify sent on EVIO_CLOSE and EVIO_DETACH, answered when received\n",
           tcase_name());
    h_server_stop(&hs);
    h_log_check_sequences(true);
    evio_tls_free(&t);
    cert_remove();
}
END_TEST

START_TEST(test_tls_renegotiation_refused)
{
    tx_reset();
    cert_make();
    evio_translator t;
    tls_server(&t);
    tx.xl[0] = &t;
    h_server hs = {0};
    tx_start(&hs, NULL);

    tcli c;
    tcli_open_v(&c, &hs, 0, TLS1_2_VERSION); /* TLS 1.3 has no renegotiation */
    ck_assert_int_eq(SSL_renegotiate(c.ssl), 1);
    ERR_clear_error();
    int r = SSL_do_handshake(c.ssl);
    unsigned long e = ERR_peek_error();
    char es[256] = "";
    ERR_error_string_n(e, es, sizeof es);
    ck_assert_msg(r != 1 && ERR_GET_REASON(e) == SSL_R_NO_RENEGOTIATION,
                  "renegotiation: SSL_do_handshake %d, error \"%s\"", r, es);
    printf("%s: client sees \"%s\"\n", tcase_name(), es);
    tcli_close(&c);
    H_WAIT(atomic_load(&tx.closed) == 1, 5000, "closed");
    h_server_stop(&hs);
    evio_tls_free(&t);
    cert_remove();
}
END_TEST

/* ---------------------------------------------------------------- dialed */

/* Server names (SNI) seen by the server, "-" for none. */
static atomic_int sni_localhost, sni_none, sni_other;

static int sni_seen(SSL *ssl, int *alert, void *arg)
{
    (void)alert, (void)arg;
    const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    if (!name)
        atomic_fetch_add(&sni_none, 1);
    else if (strcmp(name, "localhost") == 0)
        atomic_fetch_add(&sni_localhost, 1);
    else
        atomic_fetch_add(&sni_other, 1);
    return SSL_TLSEXT_ERR_OK;
}

/* The server dials its own TLS listener with three client translators. */
START_TEST(test_tls_dialed_connections)
{
    tx_reset();
    cert_make();
    /* The server side from a user's SSL_CTX, to see the SNI that arrives. */
    SSL_CTX *sctx = SSL_CTX_new(TLS_server_method());
    ck_assert(sctx != NULL);
    ck_assert(SSL_CTX_use_certificate_chain_file(sctx, cert_path) == 1);
    ck_assert(SSL_CTX_use_PrivateKey_file(sctx, key_path, SSL_FILETYPE_PEM) == 1);
    SSL_CTX_set_tlsext_servername_callback(sctx, sni_seen);
    evio_translator srv;
    ck_assert_int_eq(evio_tls_server_ctx(sctx, &srv), 0);
    SSL_CTX_free(sctx); /* the translator keeps its own reference */
    tx.xl[0] = &srv;

    evio_translator noverify, byname, byip;
    char err[256];
    ck_assert_int_eq(evio_tls_client(NULL, NULL, EVIO_TLS_NO_VERIFY, &noverify, err, sizeof err), 0);
    ck_assert_int_eq(evio_tls_client(NULL, NULL, 0, &byname, err, sizeof err), EVIO_EINVAL);
    ck_assert_msg(strstr(err, "server name") != NULL, "err: %s", err);
    ck_assert_int_eq(evio_tls_client("localhost", "/nonexistent/ca.pem", 0, &byname, err, sizeof err),
                     EVIO_ETRANSLATE);
    printf("%s: missing CA file: \"%s\"\n", tcase_name(), err);
    ck_assert_int_eq(evio_tls_client("localhost", cert_path, 0, &byname, err, sizeof err), 0);
    ck_assert_int_eq(evio_tls_client("127.0.0.1", cert_path, 0, &byip, err, sizeof err), 0);

    static const char hello[] = "hello, written before the handshake";
    dialer d[3];
    const evio_translator *xls[3] = {&noverify, &byname, &byip};
    for (int k = 0; k < 3; k++)
        d[k] = (dialer){.xl = xls[k], .payload = (const uint8_t *)hello, .len = sizeof hello,
                        .got = h_xmalloc(sizeof hello)};
    for (int round = 0; round < 2; round++) { /* two per server: tx.dials has two slots */
        tx_reset();
        tx.xl[0] = &srv;
        tx.dials[0] = &d[round == 0 ? 0 : 1];
        if (round == 1) {
            tx.dials[1] = &d[2];
            tx.ndials = 2;
        } else {
            tx.ndials = 1;
        }
        h_server hs = {0};
        tx_start(&hs, NULL);
        for (size_t i = 0; i < tx.ndials; i++)
            H_WAIT(atomic_load(&tx.dials[i]->closed), 5000, "dialed connection %zu to end", i);
        h_server_stop(&hs);
        h_log_reset();
    }
    for (int k = 0; k < 3; k++) {
        ck_assert_msg(d[k].dial_error == 0 && d[k].err == 0,
                      "dial %d: dial_error %d, closed(%d) \"%s\"", k, d[k].dial_error, d[k].err,
                      d[k].msg);
        ck_assert_uint_eq(d[k].ngot, sizeof hello);
        ck_assert(memcmp(d[k].got, hello, sizeof hello) == 0);
        free(d[k].got);
    }
    ck_assert_msg(atomic_load(&sni_localhost) == 1 && atomic_load(&sni_none) == 2 &&
                      atomic_load(&sni_other) == 0,
                  "SNI seen: localhost %d, none %d, other %d (expected 1, 2, 0)",
                  atomic_load(&sni_localhost), atomic_load(&sni_none), atomic_load(&sni_other));
    printf("%s: dialed with verification off, by name with SNI, by IP address (no SNI): "
           "all echoed\n",
           tcase_name());
    evio_tls_free(&noverify);
    evio_tls_free(&byname);
    evio_tls_free(&byip);
    evio_tls_free(&srv);
    cert_remove();
}
END_TEST

START_TEST(test_tls_dialed_untrusted_certificate_fails)
{
    tx_reset();
    cert_make();
    evio_translator srv, strict;
    tls_server(&srv);
    tx.xl[0] = &srv;
    char err[256];
    /* The system's CA store, which does not trust the test's certificate. */
    ck_assert_int_eq(evio_tls_client("localhost", NULL, 0, &strict, err, sizeof err), 0);
    dialer d = {.xl = &strict, .payload = (const uint8_t *)"never sent", .len = 10,
                .got = h_xmalloc(10)};
    tx.dials[0] = &d;
    tx.ndials = 1;
    h_server hs = {0};
    tx_start(&hs, NULL);
    H_WAIT(atomic_load(&d.closed), 5000, "the dialed connection to fail");
    H_WAIT(atomic_load(&tx.closed) == 1, 5000, "the accepted side to close");
    h_server_stop(&hs);
    ck_assert_int_eq(d.dial_error, 0);
    ck_assert_int_eq(d.err, EVIO_ETRANSLATE);
    ck_assert_uint_eq(d.ngot, 0);
    ck_assert_msg(strstr(d.msg, "certificate verify failed") != NULL, "message: '%s'", d.msg);
    printf("%s: \"%s\"\n", tcase_name(), d.msg);
    free(d.got);
    evio_tls_free(&srv);
    evio_tls_free(&strict);
    cert_remove();
}
END_TEST

/* ---------------------------------------------------------------- wake, pause */

static evio_action wk_data(evio_conn *c, const void *in, size_t len)
{
    if (!in) {
        h_log(c, H_WAKE, 0);
        if (evio_conn_context(c)) { /* paused by "p": resume */
            evio_conn_set_context(c, NULL);
            evio_conn_resume(c);
            evio_write(c, "R", 1);
        } else {
            evio_write(c, "woken", 5);
        }
        return EVIO_NONE;
    }
    if (len == 1 && *(const char *)in == 'p') {
        h_log(c, H_DATA, (int64_t)len);
        int rc = evio_conn_pause(c);
        H_EXPECT(rc == 0, "evio_conn_pause: %d", rc);
        evio_conn_set_context(c, c); /* a marker: paused */
        evio_write(c, "P", 1);
        return EVIO_NONE;
    }
    return h_data_echo(c, in, len);
}

START_TEST(test_translated_wake_and_pause)
{
    tx_reset();
    cert_make();
    evio_translator t;
    tls_server(&t);
    tx.xl[0] = &t;
#ifdef EVIO_HAVE_ZLIB
    evio_translator z;
    evio_zlib(-1, &z);
    tx.xl[1] = &z;
#endif
    h_server hs = {0};
    evio_events extra = {.data = wk_data};
    tx_start(&hs, &extra);
    evio_server *srv = atomic_load(&hs.srv);

    /* Output written in opened() or from a wake before the handshake
     * completes is held and sent after it: wake at once. */
    tcli c;
    c.fd = -1;
    int fd = h_connect(&hs, 0);
    H_WAIT(atomic_load(&tx.last_id) != 0, 5000, "opened");
    uint64_t id = atomic_load(&tx.last_id);
    ck_assert_int_eq(evio_wake(srv, id), 0);
    H_WAIT(h_log_count(H_WAKE) == 1, 5000, "the wake before the handshake");
    c.fd = fd;
    c.ctx = SSL_CTX_new(TLS_client_method());
    c.ssl = SSL_new(c.ctx);
    SSL_set_fd(c.ssl, fd);
    ck_assert_int_eq(SSL_connect(c.ssl), 1);
    char w[5];
    tcli_read(&c, w, 5);
    ck_assert(memcmp(w, "woken", 5) == 0);

    /* A wake after the handshake: data(NULL, 0), output encrypted. */
    ck_assert_int_eq(evio_wake(srv, id), 0);
    tcli_read(&c, w, 5);
    ck_assert(memcmp(w, "woken", 5) == 0);
    ck_assert_int_eq((int)h_log_count(H_WAKE), 2);

    /* Pause: input sent meanwhile waits; a wake resumes. */
    tcli_write(&c, "p", 1);
    char p;
    tcli_read(&c, &p, 1);
    ck_assert_int_eq(p, 'P');
    size_t before = h_log_count(H_DATA);
    tcli_write(&c, "x1", 2);
    h_sleep_ms(200 * h_slow);
    ck_assert_msg(h_log_count(H_DATA) == before, "data() fired on a paused connection");
    ck_assert_int_eq(evio_wake(srv, id), 0);
    char rx[3];
    tcli_read(&c, rx, 3);
    ck_assert_msg(memcmp(rx, "Rx1", 3) == 0, "got %.3s", rx);
    tcli_close(&c);

#ifdef EVIO_HAVE_ZLIB
    /* The same on the zlib listener. */
    atomic_store(&tx.last_id, 0);
    zcli zc;
    zcli_open(&zc, &hs, 1);
    H_WAIT(atomic_load(&tx.last_id) != 0, 5000, "opened");
    ck_assert_int_eq(evio_wake(srv, atomic_load(&tx.last_id)), 0);
    uint8_t zw[5];
    zcli_recv(&zc, zw, 5);
    ck_assert(memcmp(zw, "woken", 5) == 0);
    zcli_send(&zc, (const uint8_t *)"abc", 3);
    zcli_recv(&zc, zw, 3);
    ck_assert(memcmp(zw, "abc", 3) == 0);
    zcli_close(&zc);
    H_WAIT(atomic_load(&tx.closed) == 2, 5000, "both closed");
#else
    H_WAIT(atomic_load(&tx.closed) == 1, 5000, "closed");
#endif
    printf("%s: wake before and after the handshake, pause/resume: ok\n", tcase_name());
    h_server_stop(&hs);
    h_log_check_sequences(true);
    evio_tls_free(&t);
    cert_remove();
}
END_TEST

/* ---------------------------------------------------------------- TLS policy (issue 12)
 * Checked with the openssl command-line client, as a user would: a refused
 * protocol or cipher gets an alert (not an EOF), and TLS 1.2 offers only
 * forward-secret AEAD suites unless the application chooses otherwise. */

/* Run openssl s_client against port with args; its output goes to out. */
static void s_client(int port, const char *args, char *out, size_t size)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd,
             "timeout %d openssl s_client -connect 127.0.0.1:%d %s </dev/null 2>&1",
             10 * h_slow, port, args);
    FILE *p = popen(cmd, "r");
    ck_assert_msg(p != NULL, "popen: %s", strerror(errno));
    size_t n = fread(out, 1, size - 1, p);
    out[n] = '\0';
    pclose(p);
}

static void expect_alert(int port, const char *args, const char *alert)
{
    char out[16384];
    s_client(port, args, out, sizeof out);
    ck_assert_msg(strstr(out, "unexpected eof") == NULL && strstr(out, alert) != NULL,
                  "openssl s_client %s: expected \"%s\", got:\n%s", args, alert, out);
}

static void expect_cipher(int port, const char *args, const char *cipher)
{
    char out[16384], want[128];
    s_client(port, args, out, sizeof out);
    snprintf(want, sizeof want, "Cipher is %s", cipher);
    ck_assert_msg(strstr(out, want) != NULL, "openssl s_client %s: expected \"%s\", got:\n%s",
                  args, want, out);
}

/* _i: 0: the defaults; 1: evio_tls_set_ciphers() lets a CBC suite back in. */
START_TEST(test_tls_policy_with_s_client)
{
    if (system("openssl version >/dev/null 2>&1") != 0) {
        printf("%s: SKIPPED, no openssl command (apt-get install openssl)\n", tcase_name());
        return;
    }
    tx_reset();
    cert_make_with(EVP_RSA_gen(2048));
    evio_translator t;
    tls_server(&t);
    if (_i == 1) {
        char err[256] = "";
        int rc = evio_tls_set_ciphers(&t, TLS1_2_VERSION, "ECDHE-RSA-AES128-SHA", NULL, err,
                                      sizeof err);
        ck_assert_msg(rc == 0, "evio_tls_set_ciphers: %d: %s", rc, err);
        ck_assert_int_eq(evio_tls_set_ciphers(&t, 0, "NO-SUCH-CIPHER", NULL, err, sizeof err),
                         EVIO_ETRANSLATE);
        ck_assert_msg(strstr(err, "NO-SUCH-CIPHER") != NULL, "err: %s", err);
    }
    tx.xl[0] = &t;
    h_server hs = {0};
    tx_start(&hs, NULL);
    int port = h_server_port(&hs, 0);

    expect_alert(port, "-tls1", "alert protocol version");
    expect_alert(port, "-tls1_1", "alert protocol version");
    expect_alert(port, "-tls1_2 -cipher AES128-SHA", "alert handshake failure");
    expect_alert(port, "-tls1_2 -cipher AES128-GCM-SHA256", "alert handshake failure");
    if (_i == 0) {
        expect_alert(port, "-tls1_2 -cipher ECDHE-RSA-AES128-SHA", "alert handshake failure");
        expect_alert(port, "-tls1_2 -cipher ECDHE-RSA-AES256-SHA384", "alert handshake failure");
        expect_cipher(port, "-tls1_2 -cipher ECDHE-RSA-AES128-GCM-SHA256",
                      "ECDHE-RSA-AES128-GCM-SHA256");
        expect_cipher(port, "-tls1_2 -cipher ECDHE-RSA-CHACHA20-POLY1305",
                      "ECDHE-RSA-CHACHA20-POLY1305");
        expect_cipher(port, "-tls1_3", "TLS_AES_256_GCM_SHA384");
    } else {
        expect_cipher(port, "-tls1_2 -cipher ECDHE-RSA-AES128-SHA", "ECDHE-RSA-AES128-SHA");
        expect_alert(port, "-tls1_2 -cipher ECDHE-RSA-AES128-GCM-SHA256",
                     "alert handshake failure");
    }
    H_WAIT(atomic_load(&tx.closed) == (_i == 0 ? 9 : 6), 5000, "every s_client's closed()");
    h_server_stop(&hs);
    evio_tls_free(&t);
    cert_remove();
}
END_TEST

START_TEST(test_tls_server_config_errors)
{
    evio_translator t;
    char err[256];
    cert_make();
    ck_assert_int_eq(evio_tls_server("/nonexistent/cert.pem", key_path, &t, err, sizeof err),
                     EVIO_ETRANSLATE);
    ck_assert_msg(strstr(err, "/nonexistent/cert.pem") != NULL, "err: %s", err);
    printf("%s: \"%s\"\n", tcase_name(), err);
    ck_assert_int_eq(evio_tls_server(cert_path, cert_path, &t, err, sizeof err), EVIO_ETRANSLATE);
    printf("%s: \"%s\"\n", tcase_name(), err);
    ck_assert_int_eq(evio_tls_server(NULL, key_path, &t, err, sizeof err), EVIO_EINVAL);
    ck_assert_int_eq(evio_tls_server_ctx(NULL, &t), EVIO_EINVAL);
    ck_assert(evio_tls_bio_new(NULL) == NULL);
    ck_assert_int_eq(evio_tls_bio_feed(NULL, "x", 1), EVIO_EINVAL);
    cert_remove();
}
END_TEST
#endif /* EVIO_HAVE_OPENSSL */

/* ================================================================ not built */

#ifndef EVIO_HAVE_OPENSSL
START_TEST(test_tls_not_built)
{
    printf("%s: TLS translator tests NOT RUN: configure found no OpenSSL >= 3 "
           "(apt-get install libssl-dev, or it was configured --without-openssl)\n",
           tcase_name());
}
END_TEST
#endif
#ifndef EVIO_HAVE_ZLIB
START_TEST(test_zlib_not_built)
{
    printf("%s: zlib translator tests NOT RUN: configure found no zlib "
           "(apt-get install zlib1g-dev, or it was configured --without-zlib)\n",
           tcase_name());
}
END_TEST
#endif

TCase *tcase_translate(void)
{
    TCase *tc = h_tcase("translate", 60);
#ifdef EVIO_HAVE_ZLIB
    tcase_add_test(tc, test_zlib_round_trip_and_plain_listener);
    tcase_add_test(tc, test_zlib_corrupt_input_closes_with_message);
    tcase_add_test(tc, test_zlib_dialed_round_trip);
#else
    tcase_add_test(tc, test_zlib_not_built);
#endif
#ifdef EVIO_HAVE_OPENSSL
    tcase_add_test(tc, test_tls_echo_1mib);
    tcase_add_test(tc, test_tls_garbage_closes_that_connection_only);
    tcase_add_test(tc, test_tls_close_notify_both_ways_and_detach);
    tcase_add_test(tc, test_tls_renegotiation_refused);
    tcase_add_test(tc, test_tls_dialed_connections);
    tcase_add_test(tc, test_tls_dialed_untrusted_certificate_fails);
    tcase_add_test(tc, test_translated_wake_and_pause);
    tcase_add_test(tc, test_tls_server_config_errors);
    tcase_add_loop_test(tc, test_tls_policy_with_s_client, 0, 2);
#else
    tcase_add_test(tc, test_tls_not_built);
#endif
    return tc;
}
