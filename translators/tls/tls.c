/* tls.c — the TLS translator over OpenSSL 3; see evio_tls.h.
 *
 * Each translated connection owns an SSL whose only BIO is ours: evio_tls's
 * "NopConn".  Its read side is a buffer fed with the bytes input() receives;
 * its write side queues straight onto the connection with
 * evio_translator_send(), and never refuses, so OpenSSL never sees a
 * short or retried write (no SSL_ERROR_WANT_WRITE, no moving-buffer rules).
 * Everything runs inside the connection's events on its loop: OpenSSL is
 * never entered from two threads for one SSL, and the SSL_CTX it shares
 * between loops is thread-safe.
 *
 * OpenSSL keeps its error queue per thread, and one loop thread serves many
 * connections, so the queue is cleared before each SSL call whose failure
 * we report: a stale error of another connection must never become this
 * one's message. */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "evio_tls.h"

/* ---------------------------------------------------------------- buffers */

typedef struct tls_buf {
    unsigned char *data;
    size_t head, len, cap;
} tls_buf;

static int buf_append(tls_buf *b, const void *p, size_t n)
{
    if (n == 0)
        return 0;
    if (b->head + b->len + n > b->cap) {
        if (b->head) { /* slide down first: most appends follow a full read */
            memmove(b->data, b->data + b->head, b->len);
            b->head = 0;
        }
        if (b->len + n > b->cap) {
            size_t cap = b->cap ? b->cap : 4096;
            while (cap < b->len + n)
                cap *= 2;
            unsigned char *d = realloc(b->data, cap);
            if (!d)
                return -ENOMEM;
            b->data = d;
            b->cap = cap;
        }
    }
    memcpy(b->data + b->head + b->len, p, n);
    b->len += n;
    return 0;
}

static void buf_free(tls_buf *b)
{
    free(b->data);
    *b = (tls_buf){0};
}

/* ---------------------------------------------------------------- the BIO */

typedef struct bio_state {
    evio_conn *c;
    tls_buf in; /* wire bytes fed, not read by OpenSSL yet */
    int err;    /* why the last write failed (evio_translator_send's code) */
} bio_state;

static BIO_METHOD *bio_method;
static int bio_type;
static pthread_once_t bio_once = PTHREAD_ONCE_INIT;

static int bio_write_ex(BIO *b, const char *data, size_t len, size_t *written)
{
    bio_state *s = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    int err = evio_translator_send(s->c, data, len);
    if (err) {
        s->err = err;
        return 0;
    }
    *written = len;
    return 1;
}

static int bio_read_ex(BIO *b, char *data, size_t len, size_t *readbytes)
{
    bio_state *s = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    if (s->in.len == 0) {
        BIO_set_retry_read(b); /* no more for now: more comes with the next input() */
        return 0;
    }
    size_t n = len < s->in.len ? len : s->in.len;
    memcpy(data, s->in.data + s->in.head, n);
    s->in.head += n;
    s->in.len -= n;
    if (s->in.len == 0)
        s->in.head = 0;
    *readbytes = n;
    return 1;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    (void)num, (void)ptr;
    bio_state *s = BIO_get_data(b);
    switch (cmd) {
    case BIO_CTRL_FLUSH: /* written is queued: nothing held back here */
        return 1;
    case BIO_CTRL_PENDING:
        return s ? (long)s->in.len : 0;
    case BIO_CTRL_WPENDING:
    case BIO_CTRL_EOF:
        return 0;
    default:
        return 0;
    }
}

static int bio_destroy(BIO *b)
{
    bio_state *s = BIO_get_data(b);
    if (s) {
        buf_free(&s->in);
        free(s);
        BIO_set_data(b, NULL);
    }
    return 1;
}

static void bio_method_init(void)
{
    int type = BIO_get_new_index();
    if (type == -1)
        return;
    type |= BIO_TYPE_SOURCE_SINK;
    BIO_METHOD *m = BIO_meth_new(type, "evio connection");
    if (!m)
        return;
    if (!BIO_meth_set_write_ex(m, bio_write_ex) || !BIO_meth_set_read_ex(m, bio_read_ex) ||
        !BIO_meth_set_ctrl(m, bio_ctrl) || !BIO_meth_set_destroy(m, bio_destroy)) {
        BIO_meth_free(m);
        return;
    }
    bio_type = type;
    bio_method = m; /* kept for the life of the process */
}

BIO *evio_tls_bio_new(evio_conn *c)
{
    if (!c || pthread_once(&bio_once, bio_method_init) != 0 || !bio_method)
        return NULL;
    bio_state *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    BIO *b = BIO_new(bio_method);
    if (!b) {
        free(s);
        return NULL;
    }
    s->c = c;
    BIO_set_data(b, s);
    BIO_set_init(b, 1);
    return b;
}

static bio_state *bio_state_of(BIO *b)
{
    if (!b || !bio_method || BIO_method_type(b) != bio_type)
        return NULL;
    return BIO_get_data(b);
}

int evio_tls_bio_feed(BIO *b, const void *wire, size_t len)
{
    bio_state *s = bio_state_of(b);
    if (!s || (!wire && len))
        return EVIO_EINVAL;
    return buf_append(&s->in, wire, len);
}

/* ---------------------------------------------------------------- connections */

/* The translator's udata. */
typedef struct tls_cfg {
    SSL_CTX *ctx;   /* one reference of ours */
    char *name;     /* client: SNI and the name to verify; NULL: none */
    bool client;
    bool name_is_ip;
    int handshake_ms; /* < 0: no deadline */
} tls_cfg;

/* One connection. */
typedef struct tls_conn {
    SSL *ssl;
    bio_state *bio; /* the BIO belongs to ssl */
    tls_buf early;  /* written before the handshake completed */
    bool ready;     /* handshake done */
    bool failed;    /* an error was reported: nothing more goes through ssl */
    bool shut;      /* close_notify sent: output is dropped */
} tls_conn;

/* Report the error OpenSSL queued for what just failed, and end the
 * connection with it. */
static int tls_fail(tls_conn *t, evio_conn *c, const char *what)
{
    t->failed = true;
    if (t->bio->err) { /* our write side failed, not TLS */
        ERR_clear_error();
        return t->bio->err;
    }
    char reason[200] = "", msg[256];
    unsigned long e = ERR_get_error(); /* the first is the cause, the rest consequences */
    if (e)
        ERR_error_string_n(e, reason, sizeof reason);
    else
        snprintf(reason, sizeof reason, "protocol error");
    long v = SSL_get_verify_result(t->ssl);
    if (v != X509_V_OK)
        snprintf(msg, sizeof msg, "TLS %s: %s (certificate: %s)", what, reason,
                 X509_verify_cert_error_string(v));
    else
        snprintf(msg, sizeof msg, "TLS %s: %s", what, reason);
    ERR_clear_error();
    evio_translator_set_error(c, msg);
    return EVIO_ETRANSLATE;
}

static int tls_write(tls_conn *t, evio_conn *c, const void *data, size_t len)
{
    size_t n;
    ERR_clear_error();
    /* Without SSL_MODE_ENABLE_PARTIAL_WRITE, and with a BIO that takes
     * every byte, SSL_write_ex writes all of len or fails. */
    if (SSL_write_ex(t->ssl, data, len, &n) != 1)
        return tls_fail(t, c, "write");
    return 0;
}

static int tls_open(const evio_translator *xl, evio_conn *c, void **state)
{
    const tls_cfg *cfg = xl->udata;
    tls_conn *t = calloc(1, sizeof *t);
    if (!t)
        return -ENOMEM;
    BIO *b = evio_tls_bio_new(c);
    t->ssl = SSL_new(cfg->ctx);
    if (!b || !t->ssl) {
        BIO_free(b);
        SSL_free(t->ssl);
        free(t);
        return -ENOMEM;
    }
    t->bio = BIO_get_data(b);
    SSL_set_bio(t->ssl, b, b); /* one reference, owned by ssl from now on */
    SSL_set_options(t->ssl, SSL_OP_NO_RENEGOTIATION); /* also for a user's SSL_CTX */
    /* A peer that starts a handshake and never finishes it must not hold
     * the connection's memory forever. */
    if (cfg->handshake_ms > 0)
        evio_translator_set_deadline(c, cfg->handshake_ms);
    if (!cfg->client) {
        SSL_set_accept_state(t->ssl); /* the handshake starts with the client's hello */
        *state = t;
        return 0;
    }
    SSL_set_connect_state(t->ssl);
    ERR_clear_error();
    int ok = 1;
    if (cfg->name && cfg->name_is_ip)
        ok = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(t->ssl), cfg->name);
    else if (cfg->name)
        ok = SSL_set_tlsext_host_name(t->ssl, cfg->name) && SSL_set1_host(t->ssl, cfg->name);
    /* The client speaks first: the hello goes out with the first flush. */
    int r = ok ? SSL_do_handshake(t->ssl) : -1;
    if (!ok || SSL_get_error(t->ssl, r) != SSL_ERROR_WANT_READ) {
        int err = tls_fail(t, c, "handshake");
        SSL_free(t->ssl);
        free(t);
        return err;
    }
    *state = t;
    return 0;
}

static int tls_input(void *state, evio_conn *c, const void *wire, size_t len)
{
    tls_conn *t = state;
    if (t->failed || (SSL_get_shutdown(t->ssl) & SSL_RECEIVED_SHUTDOWN))
        return 0; /* nothing after close_notify counts */
    int err = evio_tls_bio_feed(SSL_get_rbio(t->ssl), wire, len);
    if (err)
        return err;
    if (!t->ready) {
        ERR_clear_error();
        int r = SSL_do_handshake(t->ssl);
        if (r != 1)
            return SSL_get_error(t->ssl, r) == SSL_ERROR_WANT_READ ? 0
                                                                   : tls_fail(t, c, "handshake");
        t->ready = true;
        evio_translator_set_deadline(c, 0);
        if (t->early.len) {
            err = tls_write(t, c, t->early.data + t->early.head, t->early.len);
            buf_free(&t->early);
            if (err)
                return err;
        }
    }
    unsigned char plain[16384]; /* one TLS record at most */
    for (;;) {
        size_t n;
        ERR_clear_error();
        int r = SSL_read_ex(t->ssl, plain, sizeof plain, &n);
        if (r == 1) {
            if (evio_translator_deliver(c, plain, n) != 0)
                return 0; /* the application closed: the rest is not wanted */
            continue;
        }
        switch (SSL_get_error(t->ssl, r)) {
        case SSL_ERROR_WANT_READ: /* all fed bytes consumed */
            return 0;
        case SSL_ERROR_ZERO_RETURN:
            /* The peer's close_notify: answer it and close once the answer
             * is out. */
            t->shut = true;
            ERR_clear_error();
            SSL_shutdown(t->ssl);
            ERR_clear_error();
            evio_translator_close(c);
            return 0;
        default:
            return tls_fail(t, c, "read");
        }
    }
}

static int tls_output(void *state, evio_conn *c, const void *data, size_t len)
{
    tls_conn *t = state;
    if (len == 0 || t->shut || t->failed)
        return 0; /* closing: nothing more can go out encrypted */
    if (!t->ready)
        return buf_append(&t->early, data, len);
    return tls_write(t, c, data, len);
}

static int tls_finish(void *state, evio_conn *c)
{
    (void)c;
    tls_conn *t = state;
    if (t->ready && !t->shut && !t->failed) {
        t->shut = true;
        ERR_clear_error();
        SSL_shutdown(t->ssl); /* queues close_notify; we do not wait for the peer's */
        ERR_clear_error();
    }
    return 0;
}

static void tls_free_conn(void *state)
{
    tls_conn *t = state;
    SSL_free(t->ssl); /* and the BIO */
    buf_free(&t->early);
    free(t);
}

/* ---------------------------------------------------------------- translators */

/* Write what failed, and OpenSSL's reason if it queued one, into err. */
static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    char reason[200] = "", what[256];
    unsigned long e = ERR_peek_error(); /* the first: the cause */;
    if (e)
        ERR_error_string_n(e, reason, sizeof reason);
    ERR_clear_error();
    if (!err || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    snprintf(err, errlen, "%s%s%s", what, reason[0] ? ": " : "", reason);
}

static int make_translator(SSL_CTX *ctx, const char *name, bool client, evio_translator *out)
{
    tls_cfg *cfg = calloc(1, sizeof *cfg);
    if (!cfg)
        return -ENOMEM;
    if (name) {
        cfg->name = strdup(name);
        if (!cfg->name) {
            free(cfg);
            return -ENOMEM;
        }
        unsigned char ip[16];
        cfg->name_is_ip = inet_pton(AF_INET, name, ip) == 1 || inet_pton(AF_INET6, name, ip) == 1;
    }
    cfg->ctx = ctx;
    cfg->client = client;
    cfg->handshake_ms = EVIO_TLS_DEFAULT_HANDSHAKE_MS;
    *out = (evio_translator){
        .udata = cfg,
        .open = tls_open,
        .input = tls_input,
        .output = tls_output,
        .finish = tls_finish,
        .free = tls_free_conn,
    };
    return 0;
}

/* TLS 1.2 suites of Mozilla's "intermediate" configuration: forward secret
 * (ECDHE, DHE) and AEAD only; no RSA key exchange, no CBC, no SHA-1 MACs.
 * TLS 1.3's own suites are all of that kind and stay as OpenSSL has them. */
#define TLS12_CIPHERS                                                          \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"               \
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"               \
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"               \
    "DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:DHE-RSA-CHACHA20-POLY1305"

/* What every context of ours has: TLS 1.2 and newer with the suites above,
 * no renegotiation, and idle connections that do not hold 34 KiB of
 * buffers each. */
static void ctx_defaults(SSL_CTX *ctx)
{
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_cipher_list(ctx, TLS12_CIPHERS);
    SSL_CTX_set_dh_auto(ctx, 1); /* DHE needs parameters: OpenSSL's, by key size */
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
}

int evio_tls_server(const char *cert_file, const char *key_file, evio_translator *out,
                    char *err, size_t errlen)
{
    if (!cert_file || !key_file || !out) {
        set_err(err, errlen, "evio_tls_server: a certificate file, a key file and out are needed");
        return EVIO_EINVAL;
    }
    ERR_clear_error();
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
        set_err(err, errlen, "SSL_CTX_new failed");
        return EVIO_ETRANSLATE;
    }
    ctx_defaults(ctx);
    if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
        set_err(err, errlen, "certificate %s", cert_file);
        SSL_CTX_free(ctx);
        return EVIO_ETRANSLATE;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1) {
        set_err(err, errlen, "private key %s", key_file);
        SSL_CTX_free(ctx);
        return EVIO_ETRANSLATE;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        set_err(err, errlen, "private key %s does not match the certificate", key_file);
        SSL_CTX_free(ctx);
        return EVIO_ETRANSLATE;
    }
    int rc = make_translator(ctx, NULL, false, out);
    if (rc) {
        SSL_CTX_free(ctx);
        set_err(err, errlen, "out of memory");
    }
    return rc;
}

int evio_tls_server_ctx(SSL_CTX *ctx, evio_translator *out)
{
    if (!ctx || !out)
        return EVIO_EINVAL;
    if (SSL_CTX_up_ref(ctx) != 1)
        return -ENOMEM;
    int rc = make_translator(ctx, NULL, false, out);
    if (rc)
        SSL_CTX_free(ctx);
    return rc;
}

int evio_tls_client(const char *server_name, const char *ca_file, unsigned flags,
                    evio_translator *out, char *err, size_t errlen)
{
    bool verify = !(flags & EVIO_TLS_NO_VERIFY);
    if (!out || (verify && (!server_name || !*server_name))) {
        set_err(err, errlen, "evio_tls_client: %s", out ? "verifying needs a server name" : "out is NULL");
        return EVIO_EINVAL;
    }
    ERR_clear_error();
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) {
        set_err(err, errlen, "SSL_CTX_new failed");
        return EVIO_ETRANSLATE;
    }
    ctx_defaults(ctx);
    if (verify) {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
        if (ca_file ? SSL_CTX_load_verify_file(ctx, ca_file) != 1
                    : SSL_CTX_set_default_verify_paths(ctx) != 1) {
            set_err(err, errlen, "CA certificates %s", ca_file ? ca_file : "(system store)");
            SSL_CTX_free(ctx);
            return EVIO_ETRANSLATE;
        }
    } else {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    }
    int rc = make_translator(ctx, server_name && *server_name ? server_name : NULL, true, out);
    if (rc) {
        SSL_CTX_free(ctx);
        set_err(err, errlen, "out of memory");
    }
    return rc;
}

int evio_tls_client_ctx(SSL_CTX *ctx, const char *server_name, evio_translator *out)
{
    if (!ctx || !out)
        return EVIO_EINVAL;
    if (SSL_CTX_up_ref(ctx) != 1)
        return -ENOMEM;
    int rc = make_translator(ctx, server_name && *server_name ? server_name : NULL, true, out);
    if (rc)
        SSL_CTX_free(ctx);
    return rc;
}

int evio_tls_set_handshake_timeout(evio_translator *t, int ms)
{
    if (!t || !t->udata || t->open != tls_open)
        return EVIO_EINVAL;
    tls_cfg *cfg = t->udata;
    cfg->handshake_ms = ms == 0 ? EVIO_TLS_DEFAULT_HANDSHAKE_MS : ms;
    return 0;
}

/* Apply the choices to ctx; false (with OpenSSL's reason queued) at the
 * first that is refused. */
static bool set_ciphers(SSL_CTX *ctx, int min_version, const char *ciphers,
                        const char *ciphersuites, char *err, size_t errlen)
{
    if (min_version && SSL_CTX_set_min_proto_version(ctx, min_version) != 1)
        return set_err(err, errlen, "minimum version 0x%x", (unsigned)min_version), false;
    if (ciphers && SSL_CTX_set_cipher_list(ctx, ciphers) != 1)
        return set_err(err, errlen, "cipher list \"%s\"", ciphers), false;
    if (ciphersuites && SSL_CTX_set_ciphersuites(ctx, ciphersuites) != 1)
        return set_err(err, errlen, "TLS 1.3 cipher suites \"%s\"", ciphersuites), false;
    return true;
}

int evio_tls_set_ciphers(evio_translator *t, int min_version, const char *ciphers,
                         const char *ciphersuites, char *err, size_t errlen)
{
    if (!t || t->open != tls_open || !t->udata || min_version < 0) {
        set_err(err, errlen, "evio_tls_set_ciphers: not a TLS translator");
        return EVIO_EINVAL;
    }
    /* Tried on a scratch context first: a refused list would otherwise
     * leave t's half set (OpenSSL empties it before it fails). */
    ERR_clear_error();
    SSL_CTX *scratch = SSL_CTX_new(TLS_method());
    if (!scratch) {
        set_err(err, errlen, "SSL_CTX_new failed");
        return EVIO_ETRANSLATE;
    }
    bool ok = set_ciphers(scratch, min_version, ciphers, ciphersuites, err, errlen);
    SSL_CTX_free(scratch);
    if (!ok || !set_ciphers(((tls_cfg *)t->udata)->ctx, min_version, ciphers, ciphersuites,
                            err, errlen))
        return EVIO_ETRANSLATE;
    return 0;
}

void evio_tls_free(evio_translator *t)
{
    if (!t)
        return;
    tls_cfg *cfg = t->udata;
    if (cfg) {
        SSL_CTX_free(cfg->ctx);
        free(cfg->name);
        free(cfg);
    }
    *t = (evio_translator){0};
}
