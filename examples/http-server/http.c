/* http.c — the request-head parser; see http.h.
 *
 * Strict where leniency has bitten servers: no whitespace before a header
 * name's colon, no obsolete line folding, one Content-Length value (or
 * identical repeats), digits only, no overflow, and never Content-Length
 * together with Transfer-Encoding (request smuggling, RFC 9112 6.3). */
#include "http.h"

#include <string.h>

/* RFC 9110 5.6.2: token characters. */
static bool is_tchar(unsigned char c)
{
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
        return true;
    return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static unsigned char lower(unsigned char c)
{
    return c >= 'A' && c <= 'Z' ? (unsigned char)(c + 32) : c;
}

static bool name_is(const char *p, size_t n, const char *lit)
{
    size_t l = strlen(lit);
    if (n != l)
        return false;
    for (size_t i = 0; i < n; i++)
        if (lower((unsigned char)p[i]) != (unsigned char)lit[i])
            return false;
    return true;
}

/* The length of the line at p (up to end), without its CRLF or LF, and
 * where the next line starts; false if no line end is there yet. */
static bool next_line(const char *p, const char *end, size_t *linelen, const char **next)
{
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    if (!nl)
        return false;
    const char *e = nl > p && nl[-1] == '\r' ? nl - 1 : nl;
    *linelen = (size_t)(e - p);
    *next = nl + 1;
    return true;
}

static bool parse_request_line(const char *p, size_t n, http_request *req)
{
    const char *end = p + n, *q = p;
    while (q < end && is_tchar((unsigned char)*q))
        q++;
    if (q == p || q == end || *q != ' ')
        return false;
    req->method = p;
    req->method_len = (size_t)(q - p);
    p = ++q;
    while (q < end && (unsigned char)*q > 0x20 && (unsigned char)*q < 0x7f)
        q++;
    if (q == p || q == end || *q != ' ')
        return false;
    req->target = p;
    req->target_len = (size_t)(q - p);
    p = q + 1;
    if (end - p != 8 || memcmp(p, "HTTP/", 5) != 0 || p[5] < '0' || p[5] > '9' || p[6] != '.' ||
        p[7] < '0' || p[7] > '9')
        return false;
    req->minor = (p[5] - '0') * 10 + (p[7] - '0'); /* 1.x as 10 + x; checked by the caller */
    return true;
}

/* Connection: a comma-separated list of options. */
static void parse_connection(const char *v, size_t n, bool *close, bool *keep)
{
    const char *end = v + n;
    while (v < end) {
        while (v < end && (*v == ' ' || *v == '\t' || *v == ','))
            v++;
        const char *s = v;
        while (v < end && *v != ',' && *v != ' ' && *v != '\t')
            v++;
        if (name_is(s, (size_t)(v - s), "close"))
            *close = true;
        else if (name_is(s, (size_t)(v - s), "keep-alive"))
            *keep = true;
    }
}

long http_parse(const char *buf, size_t len, size_t max_head, http_request *req)
{
    const char *p = buf, *end = buf + len, *next;
    size_t n;
    memset(req, 0, sizeof *req);

    /* Empty lines before the request line are allowed and skipped. */
    for (;;) {
        if (!next_line(p, end, &n, &next))
            return len > max_head ? HTTP_ETOOBIG : HTTP_AGAIN;
        if ((size_t)(next - buf) > max_head)
            return HTTP_ETOOBIG;
        if (n)
            break;
        p = next;
    }
    if (!parse_request_line(p, n, req))
        return HTTP_EBAD;
    if (req->minor != 10 && req->minor != 11)
        return HTTP_EVERSION;
    req->minor -= 10;

    bool have_cl = false, close = false, keep = false;
    for (p = next;;) {
        if (!next_line(p, end, &n, &next))
            return len > max_head ? HTTP_ETOOBIG : HTTP_AGAIN;
        if ((size_t)(next - buf) > max_head)
            return HTTP_ETOOBIG;
        if (n == 0)
            break; /* the empty line: end of the head */
        const char *name = p, *lend = p + n, *q = p;
        while (q < lend && is_tchar((unsigned char)*q))
            q++;
        if (q == name || q == lend || *q != ':')
            return HTTP_EBAD; /* also obs-fold, which starts with whitespace */
        size_t nlen = (size_t)(q - name);
        const char *v = q + 1;
        while (v < lend && (*v == ' ' || *v == '\t'))
            v++;
        const char *ve = lend;
        while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
            ve--;
        for (const char *c = v; c < ve; c++)
            if ((unsigned char)*c < 0x20 && *c != '\t')
                return HTTP_EBAD; /* control characters (a stray CR, NUL) */
        if (name_is(name, nlen, "content-length")) {
            if (v == ve)
                return HTTP_EBAD;
            unsigned long long cl = 0;
            for (const char *c = v; c < ve; c++) {
                if (*c < '0' || *c > '9' || cl > (~0ULL - 9) / 10)
                    return HTTP_EBAD;
                cl = cl * 10 + (unsigned)(*c - '0');
            }
            if (have_cl && cl != req->content_length)
                return HTTP_EBAD;
            have_cl = true;
            req->content_length = cl;
        } else if (name_is(name, nlen, "transfer-encoding")) {
            req->chunked = true;
        } else if (name_is(name, nlen, "connection")) {
            parse_connection(v, (size_t)(ve - v), &close, &keep);
        }
        p = next;
    }
    if (have_cl && req->chunked)
        return HTTP_EBAD;
    req->keep_alive = !close && (req->minor == 1 || keep);
    return (long)(next - buf);
}
