/*
 * evio_tls.h — TLS on evio connections, over OpenSSL 3.
 *
 * A TLS translator (see evio_translator in evio.h) encrypts what the
 * application writes and decrypts what arrives, on the connection's loop,
 * with no helper threads.  The application's events see plaintext only:
 *
 *     evio_translator tls;
 *     char err[256];
 *     if (evio_tls_server("cert.pem", "key.pem", &tls, err, sizeof err) != 0)
 *         die(err);
 *     ... events.translate returns &tls for the connections to encrypt ...
 *     evio_serve(&events, addrs, n);
 *     evio_tls_free(&tls);
 *
 * What the translator does on a connection:
 *  - the handshake runs as bytes arrive; output written before it completes
 *    (e.g. in opened()) is kept and sent, encrypted, right after it;
 *  - every decrypted chunk fires data() (at most 16 KiB each); after a
 *    data() that returns EVIO_CLOSE the rest of the input is dropped;
 *  - renegotiation is refused (SSL_OP_NO_RENEGOTIATION);
 *  - an orderly close (EVIO_CLOSE, peer EOF) sends close_notify first; a
 *    close_notify from the peer is answered and the connection closes
 *    cleanly (closed() gets 0) once the answer is flushed;
 *  - a failed handshake, garbage bytes or a bad record end that connection
 *    only: closed() gets EVIO_ETRANSLATE and evio_conn_error() says why
 *    (OpenSSL's reason, plus the verification result for a rejected
 *    certificate).  Output written before a failed or unfinished handshake
 *    is dropped.
 * Translated connections keep wake, evio_send, close-with-flush and
 * pause/resume; EVIO_DETACH closes them like EVIO_CLOSE (evio.h).  Pause is
 * per read: the plaintext of bytes already read is still delivered.
 *
 * Threads: the functions that make or free a translator may be called from
 * any thread, but not concurrently with a server that uses the same
 * translator.  Once made, one translator may serve any number of servers
 * and loops at once (an SSL_CTX is safe to share; the translator's own data
 * is read-only).
 */
#ifndef EVIO_TLS_H
#define EVIO_TLS_H

#include <stddef.h>

#include <openssl/bio.h>
#include <openssl/ssl.h>

#include "evio.h"

#ifdef __cplusplus
extern "C" {
#endif

/* evio_tls_client() flags. */
enum {
    /* Do not verify the server's certificate: for tests and development
     * only, since anyone on the path can then read and change the stream. */
    EVIO_TLS_NO_VERIFY = 1u,
};

/* The defaults of evio_tls_server() and evio_tls_client() follow Mozilla's
 * "intermediate" guidance: TLS 1.2 and 1.3 only, and on TLS 1.2 only
 * forward-secret AEAD suites (ECDHE or DHE with AES-GCM or ChaCha20-Poly1305;
 * no RSA key exchange, CBC or SHA-1).  A client offering nothing acceptable
 * gets an alert (protocol_version or handshake_failure) before the close.
 * Change them with evio_tls_set_ciphers(), or bring your own SSL_CTX
 * (evio_tls_server_ctx), which is used as it is. */

/* A server-side TLS translator using the PEM certificate (chain) in
 * cert_file and the private key in key_file; TLS 1.2 and newer.  Fills
 * *out.  On failure returns EVIO_ETRANSLATE (or EVIO_EINVAL for a NULL
 * argument) and writes a message naming the file and OpenSSL's reason into
 * err (errlen bytes including the NUL; err may be NULL).  Free with
 * evio_tls_free(). */
EVIO_EXPORT int evio_tls_server(const char *cert_file, const char *key_file,
                                evio_translator *out, char *err, size_t errlen);

/* A server-side TLS translator using an SSL_CTX the caller set up (its
 * certificates, ciphers, ALPN, client verification...).  The translator
 * takes a reference of its own (SSL_CTX_up_ref): the caller keeps theirs
 * and may free it at once.  Every connection's SSL is made from ctx, with
 * SSL_OP_NO_RENEGOTIATION added.  Returns 0, EVIO_EINVAL, or -ENOMEM.
 * Free with evio_tls_free(). */
EVIO_EXPORT int evio_tls_server_ctx(SSL_CTX *ctx, evio_translator *out);

/* A client-side TLS translator for dialed connections (evio_dial), TLS 1.2
 * and newer.  server_name is sent as SNI (unless it is an IP address, which
 * SNI may not carry) and the certificate must match it (host name or IP
 * address).  The server's certificate is verified against ca_file (PEM) or,
 * when ca_file is NULL, the system's CA store; with EVIO_TLS_NO_VERIFY in
 * flags it is not verified and server_name may be NULL.  A certificate that
 * fails verification ends the connection in the handshake with
 * EVIO_ETRANSLATE.  The strings are copied.  Errors as evio_tls_server().
 * Free with evio_tls_free(). */
EVIO_EXPORT int evio_tls_client(const char *server_name, const char *ca_file,
                                unsigned flags, evio_translator *out, char *err,
                                size_t errlen);

/* A client-side TLS translator over an SSL_CTX the caller set up (client
 * certificates, pinned CAs...); the reference is taken as in
 * evio_tls_server_ctx().  Verification is whatever ctx says (OpenSSL's
 * default is none); server_name, if not NULL, is copied, sent as SNI and,
 * when ctx verifies, checked against the certificate.  Returns 0,
 * EVIO_EINVAL, or -ENOMEM.  Free with evio_tls_free(). */
EVIO_EXPORT int evio_tls_client_ctx(SSL_CTX *ctx, const char *server_name,
                                    evio_translator *out);

/* How long a connection may take to complete its handshake before it is
 * closed with -ETIMEDOUT (a client that sends half a hello must not hold
 * the connection's memory forever).  Default: EVIO_TLS_DEFAULT_HANDSHAKE_MS,
 * Go's TLSHandshakeTimeout.  ms > 0 sets it; 0 restores the default;
 * negative: no deadline.  Set it before serving; it applies to connections
 * opened afterwards.  Returns 0, or EVIO_EINVAL if t is not a TLS
 * translator made by this library. */
#define EVIO_TLS_DEFAULT_HANDSHAKE_MS 10000
EVIO_EXPORT int evio_tls_set_handshake_timeout(evio_translator *t, int ms);

/* Choose what translator t (from any evio_tls_* call above) accepts:
 * min_version (e.g. TLS1_3_VERSION; 0 keeps it), ciphers, the OpenSSL
 * cipher list for TLS 1.2 and older (SSL_CTX_set_cipher_list; NULL keeps
 * it), and ciphersuites, TLS 1.3's list (SSL_CTX_set_ciphersuites; NULL
 * keeps it).  It changes t's SSL_CTX, which for the *_ctx variants is the
 * caller's too.  Call it before any server uses t.  Returns 0,
 * EVIO_EINVAL if t is not a TLS translator, or EVIO_ETRANSLATE with
 * OpenSSL's reason in err (as evio_tls_server) when a value is refused,
 * in which case nothing is changed. */
EVIO_EXPORT int evio_tls_set_ciphers(evio_translator *t, int min_version,
                                     const char *ciphers, const char *ciphersuites,
                                     char *err, size_t errlen);

/* Release what an evio_tls_* call made for *t, once no server uses it any
 * more (after evio_serve returned).  *t is zeroed; a zeroed translator may
 * be freed again. */
EVIO_EXPORT void evio_tls_free(evio_translator *t);

/* ---------------------------------------------------------------- the BIO */

/* A BIO over an evio connection's byte stream — the adapter that lets any
 * OpenSSL-based code (or anything else that talks through a BIO) run over a
 * connection, as the TLS translator itself does.  For a translator of your
 * own:
 *   - write side: BIO_write() queues the bytes for the socket with
 *     evio_translator_send(c) and always takes all of them (it fails only
 *     when memory runs out or c has closed);
 *   - read side: the bytes handed to evio_tls_bio_feed() (from your
 *     translator's input()) are kept in the BIO's own buffer; BIO_read()
 *     returns what is there, or -1 with BIO_should_retry() /
 *     BIO_should_read() set when it is empty.  It never reports EOF: an end
 *     of the stream reaches a translator as its finish() call.
 * The BIO does not own c.  Use it only on c's loop, from c's translator
 * callbacks (open, input, output, finish), and free it (BIO_free, or by
 * the SSL it was given to with SSL_set_bio) in the translator's free() at
 * the latest.  Returns NULL when out of memory. */
EVIO_EXPORT BIO *evio_tls_bio_new(evio_conn *c);

/* Append len bytes that came from the wire to the read side of b (a BIO
 * from evio_tls_bio_new); they are copied.  Returns 0 or -ENOMEM. */
EVIO_EXPORT int evio_tls_bio_feed(BIO *b, const void *wire, size_t len);

#ifdef __cplusplus
}
#endif
#endif /* EVIO_TLS_H */
