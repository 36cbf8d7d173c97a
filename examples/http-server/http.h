/* http.h — a small, strict HTTP/1.x request-head parser.
 *
 * It reads one request head (request line and header fields) from a byte
 * buffer without copying and without allocating, and says what a server
 * needs to answer and to find the next request: the method and target, the
 * minor version, whether the connection stays open, and how long the body
 * is.  Bodies are Content-Length only; Transfer-Encoding is reported, not
 * decoded. */
#ifndef HTTP_H
#define HTTP_H

#include <stdbool.h>
#include <stddef.h>

/* Default bound on a request head (request line plus headers). */
#define HTTP_MAX_HEAD 8192

typedef struct http_request {
    const char *method; /* points into the parsed buffer; not NUL-terminated */
    size_t method_len;
    const char *target;
    size_t target_len;
    int minor;              /* HTTP/1.<minor>: 0 or 1 */
    bool keep_alive;        /* the connection stays open after the response */
    bool chunked;           /* Transfer-Encoding was given (not supported) */
    unsigned long long content_length; /* 0 without a Content-Length */
} http_request;

enum {
    HTTP_AGAIN = 0,         /* the head is incomplete: read more */
    HTTP_EBAD = -1,         /* malformed: answer 400 and close */
    HTTP_ETOOBIG = -2,      /* the head is longer than max_head: close */
    HTTP_EVERSION = -3,     /* not HTTP/1.0 or HTTP/1.1: answer 505 and close */
};

/* Parse the request head at the start of buf[0..len).  Returns its length
 * (> 0, the body or next request starts there) and fills *req, or one of
 * the codes above.  A head may end lines with CRLF or a bare LF; leading
 * empty lines are skipped (RFC 9112 2.2).  max_head bounds the head,
 * leading empty lines included. */
long http_parse(const char *buf, size_t len, size_t max_head, http_request *req);

#endif /* HTTP_H */
