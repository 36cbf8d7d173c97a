/* fuzz-tls.c — libFuzzer target for the TLS translator's input path
 * (translators/tls/tls.c): the bytes a peer sends, through tls_input, the BIO's read
 * side (evio_tls_bio_feed) and OpenSSL's handshake and record layers.
 *
 *   make tests/fuzz-tls && tests/fuzz-tls -max_total_time=60 tests/fuzz-corpus/tls
 *   make fuzz FUZZ_SECONDS=600            (every target; see Makefile.am)
 *
 * No sockets and no library: this file is linked with tls.c alone and
 * defines the five functions of evio.h a translator calls
 * (evio_translator_send, _deliver, _close, _set_error, _set_deadline) on a
 * fake connection that records what they are given.  The certificate and
 * key are made by the build (tests/fuzz-tls-cert.pem, -key.pem; the
 * environment's EVIO_FUZZ_TLS_CERT and EVIO_FUZZ_TLS_KEY override them).
 *
 * Input: byte 0 chooses the translator and what the application does,
 * byte 1 seeds the sizes of the pieces the rest arrives in (as reads cut
 * it), and the rest is what the peer sends:
 *   bits 0-1  0, 1: server (evio_tls_server); 2: client, no verification;
 *             3: client verifying "localhost" against the test certificate
 *   bit 2     the application writes in opened(), before the handshake
 *   bit 3     the application writes after every input
 *   bit 4     the application closes after its first data()
 *   bit 5     the socket refuses output (send fails) after the first
 *   bit 6     an orderly close at the end (finish) rather than an abort
 * What is checked: input returns 0, or EVIO_ETRANSLATE with a message
 * set, or the send error it was given; nothing is delivered to an
 * application that closed, or after a failure; a failed connection sends
 * nothing more; the deadline is set at open and cleared only by a
 * completed handshake; and every byte sent is framed as TLS records.
 * Address and undefined-behaviour sanitizers watch the rest. */
#include "config.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "evio_tls.h"

#ifndef FUZZ_TLS_CERT
#define FUZZ_TLS_CERT "tests/fuzz-tls-cert.pem"
#endif
#ifndef FUZZ_TLS_KEY
#define FUZZ_TLS_KEY "tests/fuzz-tls-key.pem"
#endif

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz-tls: %s:%d: %s\n", __FILE__, __LINE__, #cond);                   \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#define OUT_MAX (1u << 20) /* the fake socket keeps this much to check */

/* ---------------------------------------------------------------- the fake connection */

struct evio_conn {
    unsigned char *out; /* every byte sent, in order */
    size_t outlen;
    bool refuse_send;   /* the socket "fails": send returns -ENOMEM */
    bool refuse_next;   /* ... from the next send on */
    bool app_closes;    /* the application returns EVIO_CLOSE from data() */
    bool app_closed;    /* it did: deliver says EVIO_ESHUTDOWN */
    bool close_asked;   /* evio_translator_close was called */
    bool failed;        /* input returned an error: the connection is gone */
    int deadline_ms;    /* the translator's deadline; -1: never set */
    int deadlines;      /* calls */
    size_t delivered;
    char error[256];
    uint64_t hash;
};

int evio_translator_send(evio_conn *c, const void *wire, size_t len)
{
    CHECK(c && !c->failed);
    CHECK(wire || len == 0);
    if (c->refuse_send)
        return -ENOMEM;
    if (c->refuse_next)
        c->refuse_send = true;
    size_t keep = len < OUT_MAX - c->outlen ? len : OUT_MAX - c->outlen;
    if (keep) {
        unsigned char *p = realloc(c->out, c->outlen + keep);
        if (!p)
            return -ENOMEM;
        c->out = p;
        memcpy(c->out + c->outlen, wire, keep);
        c->outlen += keep;
    }
    return 0;
}

int evio_translator_deliver(evio_conn *c, const void *data, size_t len)
{
    CHECK(c && !c->failed);
    CHECK(!c->app_closed);           /* told to stop, it must stop */
    CHECK(len > 0 && len <= 16384);  /* one record's plaintext at most */
    const unsigned char *b = data;
    for (size_t i = 0; i < len; i++) /* every byte read: ASan checks the pointer */
        c->hash = (c->hash ^ b[i]) * 0x100000001b3ULL;
    c->delivered += len;
    if (c->app_closes) {
        c->app_closed = true;
        return EVIO_ESHUTDOWN;
    }
    return 0;
}

int evio_translator_close(evio_conn *c)
{
    CHECK(c && !c->failed);
    c->close_asked = true;
    return 0;
}

void evio_translator_set_error(evio_conn *c, const char *msg)
{
    CHECK(c && msg && msg[0]);
    snprintf(c->error, sizeof c->error, "%s", msg);
}

int evio_translator_set_deadline(evio_conn *c, int ms)
{
    CHECK(c && ms >= 0);
    c->deadline_ms = ms;
    c->deadlines++;
    return 0;
}

/* ---------------------------------------------------------------- the target */

static evio_translator translators[4];

static void die(const char *what, const char *err)
{
    fprintf(stderr, "fuzz-tls: %s: %s\n", what, err);
    exit(1);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    const char *cert = getenv("EVIO_FUZZ_TLS_CERT");
    const char *key = getenv("EVIO_FUZZ_TLS_KEY");
    cert = cert ? cert : FUZZ_TLS_CERT;
    key = key ? key : FUZZ_TLS_KEY;
    char err[256];
    if (evio_tls_server(cert, key, &translators[0], err, sizeof err) != 0)
        die("server", err);
    translators[1] = translators[0];
    if (evio_tls_client(NULL, NULL, EVIO_TLS_NO_VERIFY, &translators[2], err, sizeof err) != 0)
        die("client", err);
    if (evio_tls_client("localhost", cert, 0, &translators[3], err, sizeof err) != 0)
        die("verifying client", err);
    return 0;
}

/* Piece sizes: seed 0 = the whole stream at once, 1 = one byte each, else
 * mostly [1, 64], sometimes up to 4096, from an xorshift. */
static size_t next_piece(uint8_t mode, uint32_t *x)
{
    if (mode == 0)
        return SIZE_MAX;
    if (mode == 1)
        return 1;
    uint32_t v = *x;
    v ^= v << 13;
    v ^= v >> 17;
    v ^= v << 5;
    *x = v ? v : 1;
    return (v & 7) == 0 ? 1 + (v >> 8) % 4096 : 1 + (v >> 8) % 64;
}

/* Everything sent is a sequence of TLS records: a known type and a length
 * within what TLS allows; the last may be cut short only by the fake
 * socket's cap.  (Not the version: an alert before the version is agreed
 * carries whatever the peer's record said, 3.34 included.) */
static void check_records(const evio_conn *c)
{
    size_t off = 0;
    while (off + 5 <= c->outlen) {
        const unsigned char *h = c->out + off;
        CHECK(h[0] >= 20 && h[0] <= 24);
        size_t len = (size_t)h[3] << 8 | h[4];
        CHECK(len <= 16384 + 2048);
        off += 5 + len;
    }
    CHECK(off >= c->outlen || c->outlen == OUT_MAX);
}

static const char app_bytes[] = "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    uint8_t flags = data[0], mode = data[1];
    uint32_t x = 0x9e3779b9u ^ mode;
    data += 2;
    size -= 2;

    const evio_translator *t = &translators[flags & 3];
    bool client = (flags & 3) >= 2;
    evio_conn c = {.deadline_ms = -1, .app_closes = flags & 16, .refuse_next = flags & 32};
    void *state = NULL;
    int rc = t->open(t, &c, &state);
    if (rc != 0) { /* only the client speaks in open(), and it can only fail sending */
        CHECK(client && (rc == -ENOMEM || rc == EVIO_ETRANSLATE));
        CHECK(state == NULL);
        free(c.out);
        return 0;
    }
    CHECK(state != NULL);
    CHECK(c.deadline_ms == EVIO_TLS_DEFAULT_HANDSHAKE_MS && c.deadlines == 1);
    CHECK(client ? c.outlen > 0 : c.outlen == 0); /* a client's hello, a server's nothing */
    if (flags & 4)
        CHECK(t->output(state, &c, app_bytes, sizeof app_bytes - 1) == 0); /* kept for later */

    size_t off = 0;
    /* Until the connection fails, or the application or the peer closes it
     * (then evio runs finish and flushes: no more input is read). */
    while (off < size && !c.failed && !c.app_closed && !c.close_asked) {
        size_t piece = next_piece(mode, &x);
        if (piece > size - off)
            piece = size - off;
        rc = t->input(state, &c, data + off, piece);
        off += piece;
        if (rc == EVIO_ETRANSLATE)
            CHECK(c.error[0] != '\0'); /* the application can say why */
        else if (rc != 0)
            CHECK(rc == -ENOMEM && c.refuse_send); /* the socket's own error, passed on */
        if (rc != 0) {
            c.failed = true; /* evio closes it: closed(), then free */
            break;
        }
        if (c.deadline_ms == 0) /* cleared: the handshake completed */
            CHECK(c.deadlines == 2);
        if (flags & 8) {
            rc = t->output(state, &c, app_bytes, sizeof app_bytes - 1);
            CHECK(rc == 0 || (rc == -ENOMEM && c.refuse_send) ||
                  (rc == EVIO_ETRANSLATE && c.error[0]));
            if (rc != 0)
                c.failed = true;
        }
    }
    if (!c.failed && (c.app_closed || c.close_asked || (flags & 64))) {
        CHECK(t->finish(state, &c) == 0);
        size_t sent = c.outlen; /* nothing more after the close_notify */
        CHECK(t->output(state, &c, app_bytes, sizeof app_bytes - 1) == 0 && c.outlen == sent);
    } else if (c.failed) {
        size_t sent = c.outlen; /* a failed connection stays silent */
        CHECK(t->output(state, &c, app_bytes, sizeof app_bytes - 1) == 0 && c.outlen == sent);
    }
    t->free(state);
    check_records(&c);
    free(c.out);
    return 0;
}
