/* keys.c — commands on the keyspace as a whole and on keys of any type:
 * DEL, EXISTS, TYPE, KEYS, SCAN, RENAME, COPY, the EXPIRE family, TTL,
 * DBSIZE, FLUSHDB/FLUSHALL and SELECT (database 0 is the only one). */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"

static const char *type_name(const db_entry *e)
{
    return !e ? "none" : e->type == DB_LIST ? "list" : e->type == DB_SET ? "set" : "string";
}

HANDLER(cmd_del)
{
    long long n = 0;
    for (size_t i = 1; i < c->argc; i++)
        n += db_del(d, ARG(i));
    reply_integer(r, n);
    return EVIO_NONE;
}

HANDLER(cmd_unlink)
{
    return cmd_del(d, s, c, r);
}

HANDLER(cmd_exists)
{
    long long n = 0; /* a key named twice counts twice, as in Redis */
    for (size_t i = 1; i < c->argc; i++)
        n += db_find(d, ARG(i)) != NULL;
    reply_integer(r, n);
    return EVIO_NONE;
}

HANDLER(cmd_touch)
{
    return cmd_exists(d, s, c, r);
}

HANDLER(cmd_type)
{
    const char *t = type_name(db_find(d, ARG(1)));
    reply_raw(r, "+", 1);
    reply_raw(r, t, strlen(t));
    reply_literal(r, "\r\n");
    return EVIO_NONE;
}

/* ---------------------------------------------------------------- expiry */

static evio_action ttl(db *d, const resp_cmd *c, reply *r, bool ms, bool absolute)
{
    const db_entry *e = db_find(d, ARG(1));
    if (!e || !e->expire) {
        reply_integer(r, e ? -1 : -2);
        return EVIO_NONE;
    }
    if (absolute) {
        reply_integer(r, ms ? e->expire : e->expire / 1000);
        return EVIO_NONE;
    }
    long long left = e->expire - db_now_ms();
    if (left < 0)
        left = 0;
    reply_integer(r, ms ? left : (left + 500) / 1000);
    return EVIO_NONE;
}

HANDLER(cmd_ttl)
{
    return ttl(d, c, r, false, false);
}

HANDLER(cmd_pttl)
{
    return ttl(d, c, r, true, false);
}

HANDLER(cmd_expiretime)
{
    return ttl(d, c, r, false, true);
}

HANDLER(cmd_pexpiretime)
{
    return ttl(d, c, r, true, true);
}

/* EXPIRE key time [NX|XX|GT|LT], in seconds or ms, relative or absolute.
 * A time already past deletes the key, as in Redis. */
static evio_action expire(db *d, const resp_cmd *c, reply *r, bool ms, bool absolute)
{
    enum { NX = 1, XX = 2, GT = 4, LT = 8 };
    unsigned flags = 0;
    for (size_t i = 3; i < c->argc; i++) {
        if (same_word(ARG(i), "nx"))
            flags |= NX;
        else if (same_word(ARG(i), "xx"))
            flags |= XX;
        else if (same_word(ARG(i), "gt"))
            flags |= GT;
        else if (same_word(ARG(i), "lt"))
            flags |= LT;
        else {
            reply_error(r, "ERR Unsupported option %.*s", c_len(ARG(i), 128), c->argv[i]);
            return EVIO_NONE;
        }
    }
    if ((flags & NX) && (flags & (XX | GT | LT))) {
        reply_error(r, "ERR NX and XX, GT or LT options at the same time are not compatible");
        return EVIO_NONE;
    }
    if ((flags & GT) && (flags & LT)) {
        reply_error(r, "ERR GT and LT options at the same time are not compatible");
        return EVIO_NONE;
    }
    long long when;
    if (!to_ll(ARG(2), &when)) {
        reply_error(r, "%s", not_integer);
        return EVIO_NONE;
    }
    const char *name = ms ? (absolute ? "pexpireat" : "pexpire") : (absolute ? "expireat" : "expire");
    long long base = absolute ? 0 : db_now_ms();
    if (!ms) {
        if (when > LLONG_MAX / 1000 || when < LLONG_MIN / 1000) {
            reply_error(r, "ERR invalid expire time in '%s' command", name);
            return EVIO_NONE;
        }
        when *= 1000;
    }
    if ((base > 0 && when > LLONG_MAX - base) || (when < 0 && base > 0 && when < LLONG_MIN + base)) {
        reply_error(r, "ERR invalid expire time in '%s' command", name);
        return EVIO_NONE;
    }
    when += base;

    db_entry *e = db_find(d, ARG(1));
    if (!e) {
        reply_integer(r, 0);
        return EVIO_NONE;
    }
    /* A key without a TTL counts as expiring never: GT can only fail. */
    if (((flags & NX) && e->expire) || ((flags & XX) && !e->expire) ||
        ((flags & GT) && (!e->expire || when <= e->expire)) ||
        ((flags & LT) && e->expire && when >= e->expire)) {
        reply_integer(r, 0);
        return EVIO_NONE;
    }
    if (when <= db_now_ms())
        db_del_entry(d, e);
    else
        db_set_expire(d, e, when);
    reply_integer(r, 1);
    return EVIO_NONE;
}

HANDLER(cmd_expire)
{
    return expire(d, c, r, false, false);
}

HANDLER(cmd_pexpire)
{
    return expire(d, c, r, true, false);
}

HANDLER(cmd_expireat)
{
    return expire(d, c, r, false, true);
}

HANDLER(cmd_pexpireat)
{
    return expire(d, c, r, true, true);
}

HANDLER(cmd_persist)
{
    db_entry *e = db_find(d, ARG(1));
    if (e && e->expire) {
        db_set_expire(d, e, 0);
        reply_integer(r, 1);
    } else {
        reply_integer(r, 0);
    }
    return EVIO_NONE;
}

/* ---------------------------------------------------------------- listing */

/* KEYS counts its matches in a first scan and sends them in a second, both
 * at the same instant, so that the array length is known up front. */
typedef struct keys_scan {
    const resp_cmd *c;
    reply *r;
    size_t n, bytes;
} keys_scan;

static bool keys_count(void *arg, const db_entry *e)
{
    keys_scan *k = arg;
    const resp_cmd *c = k->c;
    if (glob_match(ARG(1), db_key(e), e->klen, 0)) {
        k->n++;
        k->bytes += 16 + e->klen;
    }
    return true;
}

static bool keys_send(void *arg, const db_entry *e)
{
    keys_scan *k = arg;
    const resp_cmd *c = k->c;
    if (glob_match(ARG(1), db_key(e), e->klen, 0))
        reply_bulk(k->r, db_key(e), e->klen);
    return true;
}

HANDLER(cmd_keys)
{
    keys_scan k = {.c = c, .r = r};
    int64_t now = db_now_ms();
    db_scan(d, now, keys_count, &k);
    if (!reply_fits(r, k.bytes)) { /* see MGET */
        reply_too_big(r, k.bytes);
        return EVIO_NONE;
    }
    reply_array(r, k.n);
    db_scan(d, now, keys_send, &k);
    return EVIO_NONE;
}

/* SCAN collects one step's keys, then replies: the count comes first. */
typedef struct scan_step {
    const char *pat;
    size_t plen;
    int type; /* -1: any */
    const db_entry **keys;
    size_t n, cap, bytes;
    bool oom;
} scan_step;

static void scan_collect(void *arg, const db_entry *e)
{
    scan_step *st = arg;
    if ((st->pat && !glob_match(st->pat, st->plen, db_key(e), e->klen, 0)) ||
        (st->type >= 0 && e->type != st->type))
        return;
    if (st->n == st->cap) {
        size_t cap = st->cap ? st->cap * 2 : 64;
        const db_entry **k = realloc(st->keys, cap * sizeof *k);
        if (!k) {
            st->oom = true;
            return;
        }
        st->keys = k;
        st->cap = cap;
    }
    st->keys[st->n++] = e;
    st->bytes += 16 + e->klen;
}

/* SCAN cursor [MATCH pattern] [COUNT n] [TYPE type] */
HANDLER(cmd_scan)
{
    char *end;
    errno = 0;
    if (c->len[1] == 0 || c->len[1] > 20 || c->argv[1][0] < '0' || c->argv[1][0] > '9') {
        reply_error(r, "ERR invalid cursor");
        return EVIO_NONE;
    }
    char num[24];
    memcpy(num, c->argv[1], c->len[1]);
    num[c->len[1]] = '\0';
    unsigned long long cursor = strtoull(num, &end, 10);
    if (*end || errno) {
        reply_error(r, "ERR invalid cursor");
        return EVIO_NONE;
    }
    scan_step st = {.type = -1};
    long long count = 10;
    for (size_t i = 2; i < c->argc; i++) {
        bool next = i + 1 < c->argc;
        if (same_word(ARG(i), "count") && next) {
            if (!to_ll(ARG(i + 1), &count)) {
                reply_error(r, "%s", not_integer);
                return EVIO_NONE;
            }
            i++;
            if (count < 1) {
                reply_error(r, "%s", syntax_error);
                return EVIO_NONE;
            }
        } else if (same_word(ARG(i), "match") && next) {
            i++;
            if (!(c->len[i] == 1 && c->argv[i][0] == '*')) {
                st.pat = c->argv[i];
                st.plen = c->len[i];
            }
        } else if (same_word(ARG(i), "type") && next) {
            i++;
            st.type = same_word(ARG(i), "string") ? DB_STRING : same_word(ARG(i), "list") ? DB_LIST
                    : same_word(ARG(i), "set") ? DB_SET : 99; /* a type we never hold */
        } else {
            reply_error(r, "%s", syntax_error);
            return EVIO_NONE;
        }
    }
    size_t next = db_scan_step(d, (size_t)cursor, (size_t)count, scan_collect, &st);
    if (st.oom) {
        free(st.keys);
        reply_error(r, "ERR out of memory");
        return EVIO_NONE;
    }
    if (!reply_fits(r, st.bytes)) { /* see MGET */
        free(st.keys);
        reply_too_big(r, st.bytes);
        return EVIO_NONE;
    }
    char buf[24];
    int n = snprintf(buf, sizeof buf, "%zu", next);
    reply_array(r, 2);
    reply_bulk(r, buf, (size_t)n);
    reply_array(r, st.n);
    for (size_t i = 0; i < st.n; i++)
        reply_bulk(r, db_key(st.keys[i]), st.keys[i]->klen);
    free(st.keys);
    return EVIO_NONE;
}

HANDLER(cmd_randomkey)
{
    const db_entry *e = db_random(d);
    if (e)
        reply_bulk(r, db_key(e), e->klen);
    else
        reply_null(r);
    return EVIO_NONE;
}

HANDLER(cmd_dbsize)
{
    reply_integer(r, (long long)db_size(d));
    return EVIO_NONE;
}

/* ---------------------------------------------------------------- copying */

/* Store a copy of e (value, type, expiry) under key.  e must stay valid:
 * db_set may move other entries between tables, never reallocate them. */
static bool store_copy(db *d, const char *key, size_t klen, const db_entry *e)
{
    int64_t expire = e->expire;
    int type = e->type;
    if (db_set(d, key, klen, db_value(e), e->vlen, expire, 0) < 0)
        return false;
    db_entry *n = db_find(d, key, klen);
    if (n)
        db_set_type(n, type);
    return n != NULL;
}

static evio_action rename_key(db *d, const resp_cmd *c, reply *r, bool nx)
{
    db_entry *e = db_find(d, ARG(1));
    if (!e) {
        reply_error(r, "ERR no such key");
        return EVIO_NONE;
    }
    if (c->len[1] == c->len[2] && memcmp(c->argv[1], c->argv[2], c->len[1]) == 0) {
        if (nx)
            reply_integer(r, 0);
        else
            reply_literal(r, "+OK\r\n");
        return EVIO_NONE;
    }
    if (nx && db_find(d, ARG(2))) {
        reply_integer(r, 0);
        return EVIO_NONE;
    }
    db_del(d, ARG(2));
    if (!(e = db_find(d, ARG(1))) || !store_copy(d, ARG(2), e)) {
        reply_error(r, "ERR out of memory");
        return EVIO_NONE;
    }
    db_del(d, ARG(1));
    if (nx)
        reply_integer(r, 1);
    else
        reply_literal(r, "+OK\r\n");
    return EVIO_NONE;
}

HANDLER(cmd_rename)
{
    return rename_key(d, c, r, false);
}

HANDLER(cmd_renamenx)
{
    return rename_key(d, c, r, true);
}

/* Database numbers: 0 is the only one (see SELECT). */
static bool db_index(const char *s, size_t n, reply *r)
{
    long long v;
    if (!to_ll(s, n, &v)) {
        reply_error(r, "%s", not_integer);
        return false;
    }
    if (v != 0) {
        reply_error(r, "ERR DB index is out of range");
        return false;
    }
    return true;
}

/* COPY source destination [DB destination-db] [REPLACE] */
HANDLER(cmd_copy)
{
    bool replace = false;
    for (size_t i = 3; i < c->argc; i++) {
        if (same_word(ARG(i), "replace")) {
            replace = true;
        } else if (same_word(ARG(i), "db") && i + 1 < c->argc) {
            if (!db_index(ARG(i + 1), r))
                return EVIO_NONE;
            i++;
        } else {
            reply_error(r, "%s", syntax_error);
            return EVIO_NONE;
        }
    }
    if (c->len[1] == c->len[2] && memcmp(c->argv[1], c->argv[2], c->len[1]) == 0) {
        reply_error(r, "ERR source and destination objects are the same");
        return EVIO_NONE;
    }
    const db_entry *e = db_find(d, ARG(1));
    if (!e || (!replace && db_find(d, ARG(2)))) {
        reply_integer(r, 0);
        return EVIO_NONE;
    }
    e = db_find(d, ARG(1)); /* the lookup of the destination may have moved nothing, but be sure */
    if (!e || !store_copy(d, ARG(2), e))
        reply_error(r, "ERR out of memory");
    else
        reply_integer(r, 1);
    return EVIO_NONE;
}

HANDLER(cmd_move)
{
    if (db_index(ARG(2), r))
        reply_error(r, "ERR source and destination objects are the same");
    return EVIO_NONE;
}

HANDLER(cmd_select)
{
    if (db_index(ARG(1), r))
        reply_literal(r, "+OK\r\n");
    return EVIO_NONE;
}

HANDLER(cmd_swapdb)
{
    long long a, b;
    if (!to_ll(ARG(1), &a)) {
        reply_error(r, "ERR invalid first DB index");
        return EVIO_NONE;
    }
    if (!to_ll(ARG(2), &b)) {
        reply_error(r, "ERR invalid second DB index");
        return EVIO_NONE;
    }
    if (a != 0 || b != 0)
        reply_error(r, "ERR DB index is out of range");
    else
        reply_literal(r, "+OK\r\n");
    return EVIO_NONE;
}

/* ---------------------------------------------------------------- flushing */

static evio_action flush(db *d, const resp_cmd *c, reply *r)
{
    if (c->argc > 2 || (c->argc == 2 && !same_word(ARG(1), "sync") && !same_word(ARG(1), "async"))) {
        reply_error(r, "%s", syntax_error);
        return EVIO_NONE;
    }
    db_flush(d);
    reply_literal(r, "+OK\r\n");
    return EVIO_NONE;
}

HANDLER(cmd_flushdb)
{
    return flush(d, c, r);
}

HANDLER(cmd_flushall)
{
    return flush(d, c, r);
}
