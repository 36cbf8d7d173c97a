/* reply.h — RESP2 replies, batched.
 *
 * A reply lives on the stack of one data() event and collects the answers
 * to every command that event executes; reply_flush() hands them to
 * evio_write() at once, so a pipeline of sixteen GETs costs one copy into
 * evio's output buffer and one send(), not sixteen.  Values too big for the
 * batch go to evio_write() directly. */
#ifndef REPLY_H
#define REPLY_H

#include <stddef.h>
#include <string.h>

#include <evio.h>

#define REPLY_BATCH 16384

/* r->err when the output limit was passed: nothing more was queued. */
#define REPLY_OVER_LIMIT 1

typedef struct reply {
    evio_conn *conn;
    size_t len;    /* batched in buf */
    size_t sent;   /* handed to evio_write() so far */
    size_t queued; /* output the connection held already when the event began */
    size_t limit;  /* the client output limit (0: none), see reply_flush */
    int err;       /* the first evio_write() failure, or REPLY_OVER_LIMIT:
                    * the connection should close */
    char buf[REPLY_BATCH];
} reply;

/* limit: once queued plus what this event replied exceeds it, every
 * further byte is refused and r->err says so.  It is checked each time the
 * batch is handed to evio (every REPLY_BATCH bytes, and before a big value),
 * never per reply, so the hot path pays nothing for it: one command can
 * overshoot it by one value or one batch at most. */
static inline void reply_init(reply *r, evio_conn *c, size_t queued, size_t limit)
{
    r->conn = c;
    r->len = 0;
    r->sent = 0;
    r->queued = queued;
    r->limit = limit;
    r->err = 0;
}

/* Every byte replied so far, batched or not. */
static inline size_t reply_size(const reply *r) { return r->sent + r->len; }

/* Send what is batched (at the end of the event, or before a big value). */
void reply_flush(reply *r);

void reply_raw_big(reply *r, const void *p, size_t n);

/* Bytes as they are: the protocol is the caller's business. */
static inline void reply_raw(reply *r, const void *p, size_t n)
{
    if (n <= REPLY_BATCH - r->len) {
        memcpy(r->buf + r->len, p, n);
        r->len += n;
    } else {
        reply_raw_big(r, p, n);
    }
}

/* A constant reply such as "+OK\r\n". */
#define reply_literal(r, s) reply_raw((r), (s), sizeof(s) - 1)

/* May a reply of about more bytes be added without passing the limit?
 * Commands whose reply is many values (MGET, KEYS) ask first and refuse
 * with refuse_too_big() rather than build half a reply and close. */
static inline int reply_fits(const reply *r, size_t more)
{
    return !r->limit || (r->queued + reply_size(r) <= r->limit &&
                         more <= r->limit - r->queued - reply_size(r));
}
void reply_too_big(reply *r, size_t more);

void reply_bulk(reply *r, const void *p, size_t n); /* $<n>\r\n<bytes>\r\n */
void reply_null(reply *r);                          /* $-1\r\n */
void reply_integer(reply *r, long long v);          /* :<v>\r\n */
void reply_array(reply *r, size_t n);               /* *<n>\r\n, then n replies */

/* -<text>\r\n, printf-style.  CR and LF in the text become spaces, as
 * Redis does, since client bytes often end up in error messages. */
void reply_error(reply *r, const char *fmt, ...)
#if defined(__GNUC__) || defined(__clang__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

#endif /* REPLY_H */
