/* resp.c — the incremental RESP request parser (see resp.h).
 *
 * parse() is a resumable state machine over one contiguous region: the
 * socket's input when a command starts there, or the parser's buffer when
 * an earlier read ended inside it.  Its position is kept relative to the
 * command's first byte, so when a command turns out to be cut off, the
 * fragment is copied into the buffer and parsing resumes there without
 * looking at any byte twice (but for at most RESP_MAX_HEADER bytes of a
 * header line).
 *
 * A command is judged the same however the bytes are split: every limit is
 * stated in terms of the command's own bytes, never of how many arrived at
 * once (tests/fuzz-resp.c checks exactly that). */
#include "resp.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KEEP_BUFFER RESP_KEEP_BUFFER
#define KEEP_ARGS RESP_KEEP_ARGS

enum {
    S_START = 0, /* before the first byte: a zeroed parser */
    S_INLINE,    /* waiting for the end of an inline line */
    S_COUNT,     /* reading the "*<n>" line */
    S_BULKLEN,   /* reading a "$<len>" line (or done, once argc == nargs) */
    S_BULK,      /* reading <len> bytes and CRLF */
    S_FAILED,
};

static int fail(resp_parser *p, const char *msg)
{
    snprintf(p->error, sizeof p->error, "%s", msg);
    p->state = S_FAILED;
    return RESP_ERROR;
}

/* Room for one more argument. */
static int grow_args(resp_parser *p)
{
    if (p->argc < p->cap)
        return 0;
    size_t cap = p->cap ? p->cap * 2 : 8;
    const char **argv = realloc(p->argv, cap * sizeof *argv);
    if (argv)
        p->argv = argv;
    size_t *off = realloc(p->off, cap * sizeof *off);
    if (off)
        p->off = off;
    size_t *len = realloc(p->len, cap * sizeof *len);
    if (len)
        p->len = len;
    if (!argv || !off || !len)
        return fail(p, "out of memory");
    p->cap = cap;
    return 0;
}

/* A strictly formed integer, as Redis's string2ll: an optional '-', no '+',
 * no blanks, no leading zeros.  Eighteen digits at most, so it cannot
 * overflow; every limit here is far smaller. */
static bool parse_ll(const char *s, size_t n, long long *out)
{
    bool neg = n > 0 && s[0] == '-';
    size_t i = neg;
    if (i == n || n - i > 18 || (s[i] == '0' && n - i > 1) || (neg && s[i] == '0'))
        return false;
    long long v = 0;
    for (; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (s[i] - '0');
    }
    *out = neg ? -v : v;
    return true;
}

/* The number on a "*<n>\r\n" or "$<len>\r\n" line starting at p->pos. */
static int parse_header(resp_parser *p, const char *d, size_t n, long long *v,
                        const char *toobig, const char *invalid)
{
    size_t start = p->pos + 1, lim = n - p->pos < RESP_MAX_HEADER ? n : p->pos + RESP_MAX_HEADER;
    const char *cr = memchr(d + start, '\r', lim > start ? lim - start : 0);
    if (!cr)
        return lim - p->pos >= RESP_MAX_HEADER ? fail(p, toobig) : RESP_AGAIN;
    size_t at = (size_t)(cr - d);
    if (at + 1 >= n)
        return RESP_AGAIN;
    if (d[at + 1] != '\n' || !parse_ll(d + start, at - start, v))
        return fail(p, invalid);
    p->pos = at + 2;
    return RESP_OK;
}

static bool is_blank(char c) /* isspace() in the C locale, as Redis's sdssplitargs */
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

static bool ends_word(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Unescape one word with quotes in it, as redis-cli and Redis's
 * sdssplitargs do, from s[*i] into o.  Returns the bytes written, or -1 for
 * unbalanced quotes. */
static long unquote(const char *s, size_t n, size_t *i, char *o)
{
    char *o0 = o;
    char quote = 0; /* '"' or '\'' while inside quotes */
    size_t j = *i;
    for (;;) {
        if (j == n) {
            if (quote)
                return -1; /* unterminated */
            break;
        }
        char c = s[j];
        if (quote == '"') {
            if (c == '\\' && j + 3 < n && s[j + 1] == 'x' && hexval(s[j + 2]) >= 0 &&
                hexval(s[j + 3]) >= 0) {
                *o++ = (char)(hexval(s[j + 2]) * 16 + hexval(s[j + 3]));
                j += 4;
                continue;
            }
            if (c == '\\' && j + 1 < n) {
                char e = s[++j];
                *o++ = e == 'n' ? '\n' : e == 'r' ? '\r' : e == 't' ? '\t' : e == 'b' ? '\b' : e == 'a' ? '\a' : e;
                j++;
                continue;
            }
        } else if (quote == '\'') {
            if (c == '\\' && j + 1 < n && s[j + 1] == '\'') {
                *o++ = '\'';
                j += 2;
                continue;
            }
        }
        if (quote && c == quote) {
            /* A closing quote must be followed by a blank or the end. */
            if (j + 1 < n && !is_blank(s[j + 1]))
                return -1;
            j++;
            break;
        }
        if (!quote && ends_word(c))
            break;
        if (!quote && (c == '"' || c == '\'')) {
            quote = c;
            j++;
            continue;
        }
        *o++ = c;
        j++;
    }
    *i = j;
    return o - o0;
}

/* Split an inline line s[0, n) into words.  Plain words point into s;
 * words with quotes are unescaped into p->scratch. */
static int split_inline(resp_parser *p, const char *s, size_t n)
{
    size_t used = 0; /* of scratch */
    for (size_t i = 0;;) {
        while (i < n && is_blank(s[i]))
            i++;
        if (i == n)
            return RESP_OK;
        if (grow_args(p))
            return RESP_ERROR;
        size_t j = i;
        while (j < n && !ends_word(s[j]) && s[j] != '"' && s[j] != '\'')
            j++;
        if (j == n || ends_word(s[j])) { /* no quotes: use it where it is */
            p->argv[p->argc] = s + i;
            p->len[p->argc++] = j - i;
            i = j;
            continue;
        }
        if (p->scap < n) { /* unescaped words never outgrow their line */
            char *sc = realloc(p->scratch, n);
            if (!sc)
                return fail(p, "out of memory");
            p->scratch = sc;
            p->scap = n;
        }
        long w = unquote(s, n, &i, p->scratch + used);
        if (w < 0)
            return fail(p, "unbalanced quotes in request");
        p->argv[p->argc] = p->scratch + used;
        p->len[p->argc++] = (size_t)w;
        used += (size_t)w;
    }
}

static int parse_inline(resp_parser *p, const char *d, size_t n)
{
    const char *nl = memchr(d + p->pos, '\n', n - p->pos);
    size_t end = nl ? (size_t)(nl - d) : n;
    if (end > RESP_MAX_INLINE) /* no newline in the first RESP_MAX_INLINE + 1 bytes */
        return fail(p, "too big inline request");
    if (!nl) {
        p->pos = n; /* resume the search here */
        return RESP_AGAIN;
    }
    p->pos = end + 1;
    if (end > 0 && d[end - 1] == '\r')
        end--;
    return split_inline(p, d, end);
}

/* Continue parsing the command that starts at d[0]; d[0, n) is all there is
 * so far.  On RESP_OK the command is p->argv[0, argc) and p->pos bytes long. */
static int parse(resp_parser *p, const char *d, size_t n)
{
    long long v;
    int st;
    for (;;) {
        switch (p->state) {
        case S_START:
            if (n == 0)
                return RESP_AGAIN;
            p->state = d[0] == '*' ? S_COUNT : S_INLINE;
            break;
        case S_INLINE:
            return parse_inline(p, d, n);
        case S_COUNT:
            st = parse_header(p, d, n, &v, "too big mbulk count string", "invalid multibulk length");
            if (st != RESP_OK)
                return st;
            if (v > (long long)RESP_MAX_ARGS)
                return fail(p, "invalid multibulk length");
            p->nargs = v < 0 ? 0 : v; /* "*0", "*-1", "*-10" are empty, as in Redis */
            p->state = S_BULKLEN;
            break;
        case S_BULKLEN:
            if ((long long)p->argc == p->nargs) {
                for (size_t i = 0; i < p->argc; i++)
                    p->argv[i] = d + p->off[i];
                return RESP_OK;
            }
            if (p->pos == n)
                return RESP_AGAIN;
            if (d[p->pos] != '$') {
                char msg[32];
                snprintf(msg, sizeof msg, "expected '$', got '%c'", d[p->pos]);
                return fail(p, msg);
            }
            st = parse_header(p, d, n, &v, "too big bulk count string", "invalid bulk length");
            if (st != RESP_OK)
                return st;
            if (v < 0 || v > (long long)RESP_MAX_BULK)
                return fail(p, "invalid bulk length");
            if (p->pos + (size_t)v + 2 > RESP_MAX_REQUEST)
                return fail(p, "request too large");
            p->bulk = v;
            p->state = S_BULK;
            break;
        case S_BULK:
            if (n - p->pos < (size_t)p->bulk + 2)
                return RESP_AGAIN;
            if (d[p->pos + p->bulk] != '\r' || d[p->pos + p->bulk + 1] != '\n')
                return fail(p, "expected CRLF after bulk data");
            if (grow_args(p))
                return RESP_ERROR;
            p->off[p->argc] = p->pos;
            p->len[p->argc++] = (size_t)p->bulk;
            p->pos += (size_t)p->bulk + 2;
            p->state = S_BULKLEN;
            break;
        default:
            return RESP_ERROR; /* fed after an error */
        }
    }
}

/* Forget the command returned last; give back memory a big one needed. */
static void reset(resp_parser *p)
{
    p->state = S_START;
    p->pos = 0;
    p->nargs = 0;
    p->bulk = 0;
    p->argc = 0;
    p->blen = 0;
    p->done = false;
    if (p->bcap > KEEP_BUFFER) {
        free(p->buf);
        p->buf = NULL;
        p->bcap = 0;
    }
    if (p->scap > KEEP_BUFFER) {
        free(p->scratch);
        p->scratch = NULL;
        p->scap = 0;
    }
    if (p->cap > KEEP_ARGS) {
        free(p->argv);
        free(p->off);
        free(p->len);
        p->argv = NULL;
        p->off = p->len = NULL;
        p->cap = 0;
    }
}

/* Append to the buffer, growing it with the bytes actually received. */
static int keep(resp_parser *p, const char *in, size_t n)
{
    if (p->bcap - p->blen < n) {
        size_t cap = p->bcap ? p->bcap : 4096;
        while (cap - p->blen < n)
            cap *= 2;
        char *b = realloc(p->buf, cap);
        if (!b)
            return fail(p, "out of memory");
        p->buf = b;
        p->bcap = cap;
    }
    memcpy(p->buf + p->blen, in, n);
    p->blen += n;
    return 0;
}

static int give(resp_parser *p, resp_cmd *cmd)
{
    cmd->argc = p->argc;
    cmd->argv = p->argv;
    cmd->len = p->len;
    p->done = true;
    return RESP_OK;
}

int resp_feed(resp_parser *p, const char *in, size_t n, size_t *used, resp_cmd *cmd)
{
    if (p->done)
        reset(p);
    *used = 0;
    if (p->state == S_FAILED)
        return RESP_ERROR;

    if (p->blen == 0) { /* the fast path: parse the command where it lies */
        int st = parse(p, in, n);
        if (st == RESP_OK) {
            *used = p->pos;
            return give(p, cmd);
        }
        if (st == RESP_ERROR || keep(p, in, n))
            return RESP_ERROR;
        *used = n;
        return RESP_AGAIN;
    }

    /* The command began in an earlier read: take only the bytes it can
     * use — the rest of a header or inline line, or the rest of a bulk — so
     * that what follows it is parsed in place again. */
    size_t taken = 0;
    while (taken < n) {
        size_t want = n - taken;
        if (p->state == S_BULK) {
            size_t need = p->pos + (size_t)p->bulk + 2 - p->blen;
            if (need < want)
                want = need;
        } else {
            const char *nl = memchr(in + taken, '\n', want);
            if (nl)
                want = (size_t)(nl - (in + taken)) + 1;
        }
        if (keep(p, in + taken, want))
            return RESP_ERROR;
        taken += want;
        *used = taken;
        int st = parse(p, p->buf, p->blen);
        if (st == RESP_OK)
            return give(p, cmd);
        if (st == RESP_ERROR)
            return st;
    }
    return RESP_AGAIN;
}

void resp_reset_big(resp_parser *p)
{
    reset(p);
}

void resp_free(resp_parser *p)
{
    free(p->argv);
    free(p->off);
    free(p->len);
    free(p->buf);
    free(p->scratch);
    *p = (resp_parser){0};
}
