/* reply.c — RESP2 replies, batched (see reply.h). */
#include "reply.h"

#include <stdarg.h>
#include <stdio.h>

static int over_limit(const reply *r)
{
    return r->limit && r->queued + r->sent > r->limit;
}

void reply_flush(reply *r)
{
    if (r->len && !r->err)
        r->err = over_limit(r) ? REPLY_OVER_LIMIT : evio_write(r->conn, r->buf, r->len);
    r->sent += r->len;
    r->len = 0;
}

void reply_raw_big(reply *r, const void *p, size_t n)
{
    reply_flush(r);
    if (n <= REPLY_BATCH) {
        memcpy(r->buf, p, n);
        r->len = n;
    } else {
        if (!r->err)
            r->err = over_limit(r) ? REPLY_OVER_LIMIT : evio_write(r->conn, p, n);
        r->sent += n;
    }
}

/* Format v after the type byte t, with the CRLF: ":42\r\n", "$5\r\n"... */
static void header(reply *r, char t, long long v)
{
    char tmp[32], *p = tmp + sizeof tmp;
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    *--p = '\n';
    *--p = '\r';
    do
        *--p = (char)('0' + u % 10);
    while (u /= 10);
    if (v < 0)
        *--p = '-';
    *--p = t;
    reply_raw(r, p, (size_t)(tmp + sizeof tmp - p));
}

void reply_bulk(reply *r, const void *p, size_t n)
{
    header(r, '$', (long long)n);
    reply_raw(r, p, n);
    reply_literal(r, "\r\n");
}

void reply_null(reply *r)
{
    reply_literal(r, "$-1\r\n");
}

void reply_integer(reply *r, long long v)
{
    header(r, ':', v);
}

void reply_array(reply *r, size_t n)
{
    header(r, '*', (long long)n);
}

void reply_error(reply *r, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg + 1, sizeof msg - 3, fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0;
    if ((size_t)n > sizeof msg - 4)
        n = sizeof msg - 4; /* truncated */
    msg[0] = '-';
    for (int i = 1; i <= n; i++)
        if (msg[i] == '\r' || msg[i] == '\n')
            msg[i] = ' ';
    msg[n + 1] = '\r';
    msg[n + 2] = '\n';
    reply_raw(r, msg, (size_t)n + 3);
}

void reply_too_big(reply *r, size_t more)
{
    reply_error(r, "ERR the reply (%zu bytes) would pass the client output buffer limit "
                   "(%zu bytes, %zu queued already): ask for less at a time",
                more, r->limit, r->queued + reply_size(r));
}
