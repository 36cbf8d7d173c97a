/* types.c — just enough of lists and sets to be a key of another type.
 *
 * Redis's test suite uses a list or a set here and there to check that
 * string commands answer WRONGTYPE, and client code does the same.  These
 * are not Redis's data structures: the elements are packed one after the
 * other in the entry's value as (4-byte length, bytes), so every operation
 * is linear in the size of the value.  Fine for a few elements; this is a
 * string server. */
#include <limits.h>
#include <stdint.h>
#include <string.h>

#include "commands.h"

static const char oom[] = "ERR out of memory";

/* The element at *pos of v[0, n), advancing *pos; false at the end. */
static bool next_elem(const char *v, size_t n, size_t *pos, const char **p, uint32_t *len)
{
    if (*pos + 4 > n)
        return false;
    memcpy(len, v + *pos, 4);
    *p = v + *pos + 4;
    *pos += 4 + *len;
    return true;
}

static size_t count(const db_entry *e)
{
    size_t n = 0, pos = 0;
    const char *p;
    uint32_t len;
    while (next_elem(db_value(e), e->vlen, &pos, &p, &len))
        n++;
    return n;
}

/* The entry for key if it holds type; a new empty one if create and the
 * key is missing; NULL (with WRONGTYPE replied, *failed set) otherwise. */
static db_entry *find_typed(db *d, const resp_cmd *c, int type, bool create, reply *r,
                            bool *failed)
{
    db_entry *e = db_find(d, ARG(1));
    *failed = false;
    if (e && e->type != type) {
        reply_error(r, "%s", wrongtype);
        *failed = true;
        return NULL;
    }
    if (!e && create) {
        if (db_set(d, ARG(1), "", 0, 0, 0) < 0 || !(e = db_find(d, ARG(1)))) {
            reply_error(r, oom);
            *failed = true;
            return NULL;
        }
        db_set_type(e, type);
    }
    return e;
}

/* Insert an element at byte offset at. */
static bool insert(db *d, db_entry **e, size_t at, const char *p, size_t n)
{
    size_t old = (*e)->vlen;
    if (n > UINT32_MAX)
        return false;
    char *v = db_edit(d, e, old + 4 + n);
    if (!v)
        return false;
    memmove(v + at + 4 + n, v + at, old - at);
    uint32_t len = (uint32_t)n;
    memcpy(v + at, &len, 4);
    memcpy(v + at + 4, p, n);
    return true;
}

/* Remove the element at byte offset at, of length n; the key goes when
 * it is empty. */
static void remove_at(db *d, db_entry **e, size_t at, size_t n)
{
    size_t old = (*e)->vlen;
    char *v = db_edit(d, e, old); /* the same size: never allocates */
    memmove(v + at, v + at + 4 + n, old - at - 4 - n);
    db_edit(d, e, old - 4 - n);
    if ((*e)->vlen == 0)
        db_del_entry(d, *e);
}

/* ---------------------------------------------------------------- lists */

static evio_action push(db *d, const resp_cmd *c, reply *r, bool left)
{
    bool failed;
    db_entry *e = find_typed(d, c, DB_LIST, true, r, &failed);
    if (failed)
        return EVIO_NONE;
    for (size_t i = 2; i < c->argc; i++) {
        if (!insert(d, &e, left ? 0 : e->vlen, ARG(i))) {
            reply_error(r, oom);
            return EVIO_NONE;
        }
    }
    reply_integer(r, (long long)count(e));
    return EVIO_NONE;
}

HANDLER(cmd_rpush)
{
    return push(d, c, r, false);
}

HANDLER(cmd_lpush)
{
    return push(d, c, r, true);
}

static evio_action pop(db *d, const resp_cmd *c, reply *r, bool left)
{
    long long want = 1;
    if (c->argc > 3) {
        reply_error(r, "ERR wrong number of arguments for '%s' command", left ? "lpop" : "rpop");
        return EVIO_NONE;
    }
    if (c->argc == 3 && (!to_ll(ARG(2), &want) || want < 0)) {
        reply_error(r, "ERR value is out of range, must be positive");
        return EVIO_NONE;
    }
    bool failed;
    db_entry *e = find_typed(d, c, DB_LIST, false, r, &failed);
    if (failed)
        return EVIO_NONE;
    if (!e) {
        if (c->argc == 3)
            reply_literal(r, "*-1\r\n");
        else
            reply_null(r);
        return EVIO_NONE;
    }
    size_t n = count(e);
    if (c->argc == 3)
        reply_array(r, (size_t)want < n ? (size_t)want : n);
    for (long long k = 0; k < want && e; k++) {
        size_t pos = 0, at = 0, cur = 0;
        const char *p = NULL, *q;
        uint32_t len = 0, qlen;
        while (cur = pos, next_elem(db_value(e), e->vlen, &pos, &q, &qlen)) {
            at = cur, p = q, len = qlen;
            if (left)
                break; /* the first */
        }
        reply_bulk(r, p, len);
        bool last = e->vlen == 4 + len;
        remove_at(d, &e, at, len);
        if (last)
            e = NULL;
    }
    return EVIO_NONE;
}

HANDLER(cmd_rpop)
{
    return pop(d, c, r, false);
}

HANDLER(cmd_lpop)
{
    return pop(d, c, r, true);
}

HANDLER(cmd_llen)
{
    bool failed;
    db_entry *e = find_typed(d, c, DB_LIST, false, r, &failed);
    if (!failed)
        reply_integer(r, e ? (long long)count(e) : 0);
    return EVIO_NONE;
}

HANDLER(cmd_lrange)
{
    long long start, stop;
    if (!to_ll(ARG(2), &start) || !to_ll(ARG(3), &stop)) {
        reply_error(r, "%s", not_integer);
        return EVIO_NONE;
    }
    bool failed;
    db_entry *e = find_typed(d, c, DB_LIST, false, r, &failed);
    if (failed)
        return EVIO_NONE;
    long long n = e ? (long long)count(e) : 0;
    if (start < 0)
        start += n;
    if (stop < 0)
        stop += n;
    if (start < 0)
        start = 0;
    if (stop >= n)
        stop = n - 1;
    if (start > stop || n == 0) {
        reply_array(r, 0);
        return EVIO_NONE;
    }
    reply_array(r, (size_t)(stop - start + 1));
    size_t pos = 0;
    const char *p;
    uint32_t len;
    for (long long i = 0; i <= stop && next_elem(db_value(e), e->vlen, &pos, &p, &len); i++)
        if (i >= start)
            reply_bulk(r, p, len);
    return EVIO_NONE;
}

/* ---------------------------------------------------------------- sets */

/* The byte offset of member in e, or -1. */
static long long find_member(const db_entry *e, const char *m, size_t mlen, uint32_t *len)
{
    size_t pos = 0, at = 0;
    const char *p;
    while (at = pos, next_elem(db_value(e), e->vlen, &pos, &p, len))
        if (*len == mlen && memcmp(p, m, mlen) == 0)
            return (long long)at;
    return -1;
}

HANDLER(cmd_sadd)
{
    bool failed;
    db_entry *e = find_typed(d, c, DB_SET, true, r, &failed);
    if (failed)
        return EVIO_NONE;
    long long added = 0;
    uint32_t len;
    for (size_t i = 2; i < c->argc; i++) {
        if (find_member(e, ARG(i), &len) >= 0)
            continue;
        if (!insert(d, &e, e->vlen, ARG(i))) {
            reply_error(r, oom);
            return EVIO_NONE;
        }
        added++;
    }
    reply_integer(r, added);
    return EVIO_NONE;
}

HANDLER(cmd_srem)
{
    bool failed;
    db_entry *e = find_typed(d, c, DB_SET, false, r, &failed);
    if (failed)
        return EVIO_NONE;
    long long removed = 0;
    for (size_t i = 2; i < c->argc && e; i++) {
        uint32_t len;
        long long at = find_member(e, ARG(i), &len);
        if (at < 0)
            continue;
        bool last = e->vlen == 4 + len;
        remove_at(d, &e, (size_t)at, len);
        if (last)
            e = NULL;
        removed++;
    }
    reply_integer(r, removed);
    return EVIO_NONE;
}

HANDLER(cmd_scard)
{
    bool failed;
    db_entry *e = find_typed(d, c, DB_SET, false, r, &failed);
    if (!failed)
        reply_integer(r, e ? (long long)count(e) : 0);
    return EVIO_NONE;
}

HANDLER(cmd_sismember)
{
    bool failed;
    db_entry *e = find_typed(d, c, DB_SET, false, r, &failed);
    uint32_t len;
    if (!failed)
        reply_integer(r, e && find_member(e, ARG(2), &len) >= 0);
    return EVIO_NONE;
}

static void send_all(const db_entry *e, reply *r)
{
    reply_array(r, e ? count(e) : 0);
    size_t pos = 0;
    const char *p;
    uint32_t len;
    while (e && next_elem(db_value(e), e->vlen, &pos, &p, &len))
        reply_bulk(r, p, len);
}

HANDLER(cmd_smembers)
{
    bool failed;
    db_entry *e = find_typed(d, c, DB_SET, false, r, &failed);
    if (!failed)
        send_all(e, r);
    return EVIO_NONE;
}

static uint64_t rng = 0x9e3779b97f4a7c15ULL;

static size_t rnd(size_t n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (size_t)(rng % n);
}

static void send_nth(const db_entry *e, size_t k, reply *r)
{
    size_t pos = 0;
    const char *p = NULL;
    uint32_t len = 0;
    for (size_t i = 0; i <= k; i++)
        next_elem(db_value(e), e->vlen, &pos, &p, &len);
    reply_bulk(r, p, len);
}

/* SRANDMEMBER key [count]: one member; or up to count distinct ones; or,
 * for a negative count, that many with repeats. */
HANDLER(cmd_srandmember)
{
    long long want = 0;
    if (c->argc > 3) {
        reply_error(r, "%s", syntax_error);
        return EVIO_NONE;
    }
    if (c->argc == 3 && !to_ll(ARG(2), &want)) {
        reply_error(r, "%s", not_integer);
        return EVIO_NONE;
    }
    bool failed;
    db_entry *e = find_typed(d, c, DB_SET, false, r, &failed);
    if (failed)
        return EVIO_NONE;
    size_t n = e ? count(e) : 0;
    if (c->argc == 2) {
        if (n)
            send_nth(e, rnd(n), r);
        else
            reply_null(r);
    } else if (want >= 0 && (size_t)want >= n) {
        send_all(e, r);
    } else if (want >= 0) { /* distinct: a random window of the members */
        size_t first = rnd(n);
        reply_array(r, (size_t)want);
        for (long long i = 0; i < want; i++)
            send_nth(e, (first + (size_t)i) % n, r);
    } else {
        if (want == LLONG_MIN) {
            reply_error(r, "ERR value is out of range");
            return EVIO_NONE;
        }
        reply_array(r, n ? (size_t)-want : 0);
        for (long long i = 0; n && i < -want; i++)
            send_nth(e, rnd(n), r);
    }
    return EVIO_NONE;
}
