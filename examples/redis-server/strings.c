/* strings.c — commands on string values: GET, SET and its relatives,
 * counters, ranges, bits and LCS. */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"

#define MAX_STRING (512LL << 20) /* proto-max-bulk-len: the longest value */

static const char oom[] = "ERR out of memory";

static void reply_value(reply *r, const db_entry *e)
{
    if (e)
        reply_bulk(r, db_value(e), e->vlen);
    else
        reply_null(r);
}

HANDLER(cmd_get)
{
    bool wrong;
    const db_entry *e = find_string(d, ARG(1), r, &wrong);
    if (!wrong)
        reply_value(r, e);
    return EVIO_NONE;
}

/* The expiry of EX s, PX ms, EXAT s or PXAT ms as absolute Unix ms, or
 * false (with the error replied) for a bad number or time. */
enum { EX = 1, PX, EXAT, PXAT };

static bool expire_arg(const resp_cmd *c, size_t i, int unit, const char *name, reply *r,
                       int64_t *out)
{
    long long v;
    if (!to_ll(ARG(i), &v)) {
        reply_error(r, "%s", not_integer);
        return false;
    }
    long long now = unit == EX || unit == PX ? db_now_ms() : 0;
    bool seconds = unit == EX || unit == EXAT;
    if (v <= 0 || (seconds && v > LLONG_MAX / 1000) || (seconds ? v * 1000 : v) > LLONG_MAX - now) {
        reply_error(r, "ERR invalid expire time in '%s' command", name);
        return false;
    }
    *out = (seconds ? v * 1000 : v) + now;
    return true;
}

static int unit_of(const char *s, size_t n)
{
    return same_word(s, n, "ex") ? EX : same_word(s, n, "px") ? PX
         : same_word(s, n, "exat") ? EXAT : same_word(s, n, "pxat") ? PXAT : 0;
}

/* SET key value [NX|XX] [GET] [EX s|PX ms|EXAT s|PXAT ms|KEEPTTL] */
HANDLER(cmd_set)
{
    unsigned flags = 0;
    bool get = false;
    int unit = 0;        /* which of EX..PXAT, if any */
    size_t when_arg = 0; /* its argument */

    /* The options first, as Redis: a syntax error wins over a bad number. */
    for (size_t i = 3; i < c->argc; i++) {
        bool next = i + 1 < c->argc;
        int u = unit_of(ARG(i));
        if (same_word(ARG(i), "nx") && !(flags & DB_XX)) {
            flags |= DB_NX;
        } else if (same_word(ARG(i), "xx") && !(flags & DB_NX)) {
            flags |= DB_XX;
        } else if (same_word(ARG(i), "get")) {
            get = true;
        } else if (same_word(ARG(i), "keepttl") && !unit) {
            flags |= DB_KEEPTTL;
        } else if (u && next && !(flags & DB_KEEPTTL) && (!unit || unit == u)) {
            unit = u;
            when_arg = ++i;
        } else {
            reply_error(r, "%s", syntax_error);
            return EVIO_NONE;
        }
    }

    int64_t expire = 0;
    if (unit && !expire_arg(c, when_arg, unit, "set", r, &expire))
        return EVIO_NONE;

    if (get) { /* answer with the old value before it is overwritten */
        bool wrong;
        const db_entry *old = find_string(d, ARG(1), r, &wrong);
        if (wrong)
            return EVIO_NONE;
        reply_value(r, old);
    }
    int set = db_set(d, ARG(1), ARG(2), expire, flags);
    if (get)
        ; /* answered already (and the db is unchanged if set < 0) */
    else if (set < 0)
        reply_error(r, oom);
    else if (set)
        reply_literal(r, "+OK\r\n");
    else
        reply_null(r);
    return EVIO_NONE;
}

HANDLER(cmd_setnx)
{
    int set = db_set(d, ARG(1), ARG(2), 0, DB_NX);
    if (set < 0)
        reply_error(r, oom);
    else
        reply_integer(r, set);
    return EVIO_NONE;
}

static void setex(db *d, const resp_cmd *c, reply *r, int unit, const char *name)
{
    int64_t expire;
    if (!expire_arg(c, 2, unit, name, r, &expire))
        return;
    if (db_set(d, ARG(1), ARG(3), expire, 0) < 0)
        reply_error(r, oom);
    else
        reply_literal(r, "+OK\r\n");
}

HANDLER(cmd_setex)
{
    setex(d, c, r, EX, "setex");
    return EVIO_NONE;
}

HANDLER(cmd_psetex)
{
    setex(d, c, r, PX, "psetex");
    return EVIO_NONE;
}

HANDLER(cmd_getset)
{
    bool wrong;
    const db_entry *old = find_string(d, ARG(1), r, &wrong);
    if (wrong)
        return EVIO_NONE;
    reply_value(r, old); /* copied out before the value is replaced */
    if (db_set(d, ARG(1), ARG(2), 0, 0) < 0)
        reply_error(r, oom);
    return EVIO_NONE;
}

HANDLER(cmd_getdel)
{
    bool wrong;
    db_entry *e = find_string(d, ARG(1), r, &wrong);
    if (wrong)
        return EVIO_NONE;
    reply_value(r, e);
    if (e)
        db_del_entry(d, e);
    return EVIO_NONE;
}

/* GETEX key [EX s|PX ms|EXAT s|PXAT ms|PERSIST] */
HANDLER(cmd_getex)
{
    int unit = 0;
    bool persist = false;
    size_t when_arg = 0;
    for (size_t i = 2; i < c->argc; i++) {
        int u = unit_of(ARG(i));
        if (same_word(ARG(i), "persist") && !unit && !persist) {
            persist = true;
        } else if (u && !unit && !persist && i + 1 < c->argc) {
            unit = u;
            when_arg = ++i;
        } else {
            reply_error(r, "%s", syntax_error);
            return EVIO_NONE;
        }
    }
    int64_t expire = 0;
    if (unit && !expire_arg(c, when_arg, unit, "getex", r, &expire))
        return EVIO_NONE;
    bool wrong;
    db_entry *e = find_string(d, ARG(1), r, &wrong);
    if (wrong)
        return EVIO_NONE;
    reply_value(r, e);
    if (!e)
        return EVIO_NONE;
    if (unit && expire <= db_now_ms())
        db_del_entry(d, e); /* a time in the past: the key goes at once */
    else if (unit)
        db_set_expire(d, e, expire);
    else if (persist && e->expire)
        db_set_expire(d, e, 0);
    return EVIO_NONE;
}

/* MGET looks every key up first, to know the size of its reply: one that
 * would pass the client output limit is refused before a byte of it is
 * built (building it is what takes the memory, and the time other clients
 * wait).  The entries found stay valid meanwhile: lookups only delete
 * expired entries and move others between tables, never reallocate them. */
#define MGET_STACK 64

HANDLER(cmd_mget)
{
    size_t n = c->argc - 1, bytes = 16;
    const db_entry *stack[MGET_STACK], **found = stack;
    if (n > MGET_STACK && !(found = malloc(n * sizeof *found))) {
        reply_error(r, oom);
        return EVIO_NONE;
    }
    for (size_t i = 0; i < n; i++) {
        const db_entry *e = db_find(d, ARG(i + 1));
        found[i] = e && e->type == DB_STRING ? e : NULL;
        bytes += 16 + (found[i] ? found[i]->vlen : 0);
    }
    if (n > 1 && !reply_fits(r, bytes)) {
        reply_too_big(r, bytes);
    } else {
        reply_array(r, n);
        for (size_t i = 0; i < n; i++)
            reply_value(r, found[i]);
    }
    if (found != stack)
        free(found);
    return EVIO_NONE;
}

static evio_action mset(db *d, const resp_cmd *c, reply *r, bool nx)
{
    if (c->argc % 2 == 0) {
        reply_error(r, "ERR wrong number of arguments for '%s' command", nx ? "msetnx" : "mset");
        return EVIO_NONE;
    }
    if (nx) {
        for (size_t i = 1; i < c->argc; i += 2) {
            if (db_find(d, ARG(i))) {
                reply_integer(r, 0);
                return EVIO_NONE;
            }
        }
    }
    for (size_t i = 1; i < c->argc; i += 2) {
        if (db_set(d, ARG(i), ARG(i + 1), 0, 0) < 0) {
            reply_error(r, oom);
            return EVIO_NONE;
        }
    }
    if (nx)
        reply_integer(r, 1);
    else
        reply_literal(r, "+OK\r\n");
    return EVIO_NONE;
}

HANDLER(cmd_mset)
{
    return mset(d, c, r, false);
}

HANDLER(cmd_msetnx)
{
    return mset(d, c, r, true);
}

/* ---------------------------------------------------------------- counters */

static void incr_by(db *d, const resp_cmd *c, reply *r, long long by)
{
    bool wrong;
    db_entry *e = find_string(d, ARG(1), r, &wrong);
    long long v = 0;
    if (wrong)
        return;
    if (e && !to_ll(db_value(e), e->vlen, &v)) {
        reply_error(r, "%s", not_integer);
        return;
    }
    if ((by < 0 && v < 0 && by < LLONG_MIN - v) || (by > 0 && v > 0 && by > LLONG_MAX - v)) {
        reply_error(r, "ERR increment or decrement would overflow");
        return;
    }
    v += by;
    if (!e) { /* a new key: store a placeholder, then write the number in */
        if (db_set(d, ARG(1), "0", 1, 0, 0) < 0 || !(e = db_find(d, ARG(1)))) {
            reply_error(r, oom);
            return;
        }
    }
    db_set_integer(d, e, v); /* in place, keeping the TTL, as Redis */
    reply_integer(r, v);
}

HANDLER(cmd_incr)
{
    incr_by(d, c, r, 1);
    return EVIO_NONE;
}

HANDLER(cmd_decr)
{
    incr_by(d, c, r, -1);
    return EVIO_NONE;
}

HANDLER(cmd_incrby)
{
    long long by;
    if (!to_ll(ARG(2), &by))
        reply_error(r, "%s", not_integer);
    else
        incr_by(d, c, r, by);
    return EVIO_NONE;
}

HANDLER(cmd_decrby)
{
    long long by;
    if (!to_ll(ARG(2), &by))
        reply_error(r, "%s", not_integer);
    else if (by == LLONG_MIN)
        reply_error(r, "ERR decrement would overflow");
    else
        incr_by(d, c, r, -by);
    return EVIO_NONE;
}

/* A long double as Redis reads one: no blanks, nothing after the number,
 * not NaN (infinity passes here and is refused as a result). */
static bool to_ld(const char *s, size_t n, long double *out)
{
    char buf[5200];
    if (n == 0 || n >= sizeof buf)
        return false;
    memcpy(buf, s, n);
    buf[n] = '\0';
    if (strchr(" \t\n\v\f\r", buf[0]) || memchr(s, '\0', n))
        return false;
    char *end;
    errno = 0;
    long double v = strtold(buf, &end);
    if (*end || (errno == ERANGE && (v == HUGE_VALL || v == -HUGE_VALL || v == 0)) || isnan(v))
        return false;
    *out = v;
    return true;
}

/* Fixed point with trailing zeros removed, as Redis prints INCRBYFLOAT
 * results ("%.17Lf", then "1.50000" -> "1.5", "-0" -> "0"). */
static int format_ld(char *buf, size_t size, long double v)
{
    int n = snprintf(buf, size, "%.17Lf", v);
    if (n <= 0 || (size_t)n >= size)
        return -1;
    if (strchr(buf, '.')) {
        while (buf[n - 1] == '0')
            n--;
        if (buf[n - 1] == '.')
            n--;
    }
    if (n == 2 && buf[0] == '-' && buf[1] == '0') {
        buf[0] = '0';
        n = 1;
    }
    buf[n] = '\0';
    return n;
}

HANDLER(cmd_incrbyfloat)
{
    bool wrong;
    db_entry *e = find_string(d, ARG(1), r, &wrong);
    if (wrong)
        return EVIO_NONE;
    long double v = 0, by;
    if ((e && !to_ld(db_value(e), e->vlen, &v)) || !to_ld(ARG(2), &by)) {
        reply_error(r, "ERR value is not a valid float");
        return EVIO_NONE;
    }
    v += by;
    if (isnan(v) || isinf(v)) {
        reply_error(r, "ERR increment would produce NaN or Infinity");
        return EVIO_NONE;
    }
    char buf[5200];
    int n = format_ld(buf, sizeof buf, v);
    if (n < 0 || db_set(d, ARG(1), buf, (size_t)n, 0, DB_KEEPTTL) < 0) {
        reply_error(r, oom);
        return EVIO_NONE;
    }
    reply_bulk(r, buf, (size_t)n);
    return EVIO_NONE;
}

/* ---------------------------------------------------------------- ranges */

HANDLER(cmd_append)
{
    bool wrong;
    db_entry *e = find_string(d, ARG(1), r, &wrong);
    if (wrong)
        return EVIO_NONE;
    if (!e) {
        if (db_set(d, ARG(1), ARG(2), 0, 0) < 0)
            reply_error(r, oom);
        else
            reply_integer(r, (long long)c->len[2]);
        return EVIO_NONE;
    }
    size_t old = e->vlen;
    if ((long long)(old + c->len[2]) > MAX_STRING) {
        reply_error(r, "ERR string exceeds maximum allowed size (proto-max-bulk-len)");
        return EVIO_NONE;
    }
    char *v = db_edit(d, &e, old + c->len[2]);
    if (!v) {
        reply_error(r, oom);
        return EVIO_NONE;
    }
    memcpy(v + old, c->argv[2], c->len[2]);
    reply_integer(r, (long long)e->vlen);
    return EVIO_NONE;
}

HANDLER(cmd_strlen)
{
    bool wrong;
    const db_entry *e = find_string(d, ARG(1), r, &wrong);
    if (!wrong)
        reply_integer(r, e ? (long long)e->vlen : 0);
    return EVIO_NONE;
}

HANDLER(cmd_getrange)
{
    long long start, end;
    if (!to_ll(ARG(2), &start) || !to_ll(ARG(3), &end)) {
        reply_error(r, "%s", not_integer);
        return EVIO_NONE;
    }
    bool wrong;
    const db_entry *e = find_string(d, ARG(1), r, &wrong);
    if (wrong)
        return EVIO_NONE;
    long long len = e ? (long long)e->vlen : 0;
    if (start < 0 && end < 0 && start > end) {
        reply_bulk(r, "", 0);
        return EVIO_NONE;
    }
    if (start < 0)
        start += len;
    if (end < 0)
        end += len;
    if (start < 0)
        start = 0;
    if (end < 0)
        end = 0;
    if (end >= len)
        end = len - 1;
    if (len == 0 || start > end)
        reply_bulk(r, "", 0);
    else
        reply_bulk(r, db_value(e) + start, (size_t)(end - start + 1));
    return EVIO_NONE;
}

HANDLER(cmd_setrange)
{
    long long off;
    if (!to_ll(ARG(2), &off)) {
        reply_error(r, "%s", not_integer);
        return EVIO_NONE;
    }
    if (off < 0) {
        reply_error(r, "ERR offset is out of range");
        return EVIO_NONE;
    }
    bool wrong;
    db_entry *e = find_string(d, ARG(1), r, &wrong);
    if (wrong)
        return EVIO_NONE;
    size_t n = c->len[3];
    if (n == 0) { /* nothing to write: nothing is created either */
        reply_integer(r, e ? (long long)e->vlen : 0);
        return EVIO_NONE;
    }
    if (off > MAX_STRING - (long long)n) {
        reply_error(r, "ERR string exceeds maximum allowed size (proto-max-bulk-len)");
        return EVIO_NONE;
    }
    if (!e && (db_set(d, ARG(1), "", 0, 0, 0) < 0 || !(e = db_find(d, ARG(1))))) {
        reply_error(r, oom);
        return EVIO_NONE;
    }
    size_t want = (size_t)off + n;
    char *v = db_edit(d, &e, want > e->vlen ? want : e->vlen);
    if (!v) {
        reply_error(r, oom);
        return EVIO_NONE;
    }
    memcpy(v + off, c->argv[3], n);
    reply_integer(r, (long long)e->vlen);
    return EVIO_NONE;
}

/* ---------------------------------------------------------------- bits */

static bool bit_offset(const resp_cmd *c, reply *r, long long *off)
{
    if (!to_ll(ARG(2), off) || *off < 0 || *off >= MAX_STRING * 8) {
        reply_error(r, "ERR bit offset is not an integer or out of range");
        return false;
    }
    return true;
}

HANDLER(cmd_getbit)
{
    long long off;
    if (!bit_offset(c, r, &off))
        return EVIO_NONE;
    bool wrong;
    const db_entry *e = find_string(d, ARG(1), r, &wrong);
    if (wrong)
        return EVIO_NONE;
    size_t byte = (size_t)(off >> 3);
    int bit = 0;
    if (e && byte < e->vlen)
        bit = (db_value(e)[byte] >> (7 - (off & 7))) & 1;
    reply_integer(r, bit);
    return EVIO_NONE;
}

HANDLER(cmd_setbit)
{
    long long off;
    if (!bit_offset(c, r, &off))
        return EVIO_NONE;
    if (c->len[3] != 1 || (c->argv[3][0] != '0' && c->argv[3][0] != '1')) {
        reply_error(r, "ERR bit is not an integer or out of range");
        return EVIO_NONE;
    }
    bool wrong;
    db_entry *e = find_string(d, ARG(1), r, &wrong);
    if (wrong)
        return EVIO_NONE;
    if (!e && (db_set(d, ARG(1), "", 0, 0, 0) < 0 || !(e = db_find(d, ARG(1))))) {
        reply_error(r, oom);
        return EVIO_NONE;
    }
    size_t byte = (size_t)(off >> 3);
    char *v = db_edit(d, &e, byte < e->vlen ? e->vlen : byte + 1);
    if (!v) {
        reply_error(r, oom);
        return EVIO_NONE;
    }
    int shift = 7 - (int)(off & 7);
    int old = (v[byte] >> shift) & 1;
    if (c->argv[3][0] == '1')
        v[byte] = (char)(v[byte] | (1 << shift));
    else
        v[byte] = (char)(v[byte] & ~(1 << shift));
    reply_integer(r, old);
    return EVIO_NONE;
}

/* ---------------------------------------------------------------- LCS */

/* LCS a b [LEN] [IDX] [MINMATCHLEN n] [WITHMATCHLEN]: the longest common
 * subsequence by the textbook dynamic programme, O(|a| x |b|) time and
 * memory, as in Redis; then one walk back from the end yields the string
 * and the matching ranges, last first. */
HANDLER(cmd_lcs)
{
    bool len_only = false, idx = false, withlen = false;
    long long minlen = 0;
    for (size_t i = 3; i < c->argc; i++) {
        if (same_word(ARG(i), "len")) {
            len_only = true;
        } else if (same_word(ARG(i), "idx")) {
            idx = true;
        } else if (same_word(ARG(i), "withmatchlen")) {
            withlen = true;
        } else if (same_word(ARG(i), "minmatchlen") && i + 1 < c->argc) {
            if (!to_ll(ARG(i + 1), &minlen)) {
                reply_error(r, "%s", not_integer);
                return EVIO_NONE;
            }
            i++;
            if (minlen < 0)
                minlen = 0;
        } else {
            reply_error(r, "%s", syntax_error);
            return EVIO_NONE;
        }
    }
    const db_entry *ea = db_find(d, ARG(1)), *eb = db_find(d, ARG(2));
    if ((ea && ea->type != DB_STRING) || (eb && eb->type != DB_STRING)) {
        reply_error(r, "ERR The specified keys must contain string values");
        return EVIO_NONE;
    }
    if (len_only && idx) {
        reply_error(r, "ERR If you want both the length and indexes, please just use IDX.");
        return EVIO_NONE;
    }
    const char *a = ea ? db_value(ea) : "", *b = eb ? db_value(eb) : "";
    size_t an = ea ? ea->vlen : 0, bn = eb ? eb->vlen : 0;
    if ((an + 1) > (size_t)(MAX_STRING / 4) / (bn + 1)) {
        reply_error(r, "ERR Insufficient memory, transient memory for LCS exceeds "
                       "proto-max-bulk-len");
        return EVIO_NONE;
    }
    uint32_t *t = malloc((an + 1) * (bn + 1) * sizeof *t);
    if (!t) {
        reply_error(r, oom);
        return EVIO_NONE;
    }
#define L(i, j) t[(i) * (bn + 1) + (j)]
    for (size_t i = 0; i <= an; i++) {
        for (size_t j = 0; j <= bn; j++) {
            if (i == 0 || j == 0)
                L(i, j) = 0;
            else if (a[i - 1] == b[j - 1])
                L(i, j) = L(i - 1, j - 1) + 1;
            else
                L(i, j) = L(i - 1, j) > L(i, j - 1) ? L(i - 1, j) : L(i, j - 1);
        }
    }
    uint32_t total = L(an, bn);
    if (len_only) {
        free(t);
        reply_integer(r, total);
        return EVIO_NONE;
    }
    char *out = idx ? NULL : malloc(total + 1u);
    if (!idx && !out) {
        free(t);
        reply_error(r, oom);
        return EVIO_NONE;
    }
    /* Two passes with IDX: count the ranges, then send them. */
    for (int pass = idx ? 0 : 1; pass < 2; pass++) {
        size_t i = an, j = bn, k = total, ranges = 0;
        long long as = -1, ae = -1, bs = -1, be = -1; /* the range being built */
        for (;;) {
            bool match = i > 0 && j > 0 && a[i - 1] == b[j - 1];
            bool extends = match && as >= 0 && (long long)i - 1 == as - 1 && (long long)j - 1 == bs - 1;
            if (as >= 0 && !extends) { /* the range being built is complete */
                if (ae - as + 1 >= minlen && idx) {
                    if (pass == 1) {
                        reply_array(r, withlen ? 3 : 2);
                        reply_array(r, 2);
                        reply_integer(r, as);
                        reply_integer(r, ae);
                        reply_array(r, 2);
                        reply_integer(r, bs);
                        reply_integer(r, be);
                        if (withlen)
                            reply_integer(r, ae - as + 1);
                    }
                    ranges++;
                }
                as = -1;
            }
            if (i == 0 || j == 0)
                break;
            if (match) {
                if (out)
                    out[--k] = a[i - 1];
                if (as < 0) {
                    ae = (long long)i - 1;
                    be = (long long)j - 1;
                }
                as = (long long)i - 1;
                bs = (long long)j - 1;
                i--, j--;
            } else if (L(i - 1, j) > L(i, j - 1)) {
                i--;
            } else {
                j--;
            }
        }
        if (pass == 0) {
            reply_array(r, 4);
            reply_bulk(r, "matches", 7);
            reply_array(r, ranges);
        }
    }
#undef L
    free(t);
    if (idx) {
        reply_bulk(r, "len", 3);
        reply_integer(r, total);
    } else {
        reply_bulk(r, out, total);
        free(out);
    }
    return EVIO_NONE;
}
