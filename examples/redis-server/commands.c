/* commands.c — the command table and one handler per command.
 *
 * Replies and error texts are Redis 7's, byte for byte, so that redis-cli,
 * redis-benchmark and client libraries cannot tell the difference for the
 * commands we have.  Arity follows Redis's convention: N means exactly N
 * words (the name included), -N means at least N. */
#include "commands.h"

#include <limits.h>
#include <stdbool.h>
#include <string.h>

typedef evio_action handler(db *d, const resp_cmd *c, reply *r);

typedef struct command {
    const char *name; /* lower case letters only (see same_word) */
    size_t len;
    int arity;
    handler *fn;
} command;

/* ---------------------------------------------------------------- helpers */

/* Does s[0, n) spell word, ignoring case?  word is lower case letters, and
 * for a letter, (c | 0x20) == letter holds for exactly its two cases. */
static bool same_word(const char *s, size_t n, const char *word)
{
    for (size_t i = 0; i < n; i++)
        if (word[i] == '\0' || (s[i] | 0x20) != word[i])
            return false;
    return word[n] == '\0';
}

#define ARG(i) c->argv[i], c->len[i]

/* A 64-bit integer exactly as Redis's string2ll accepts it: optional '-',
 * digits, no leading zeros, no blanks, no '+', no overflow. */
static bool to_ll(const char *s, size_t n, long long *out)
{
    if (n == 0 || n > 20)
        return false;
    bool neg = s[0] == '-';
    size_t i = neg;
    if (i == n)
        return false;
    if (s[i] == '0') {
        *out = 0;
        return n == 1;
    }
    unsigned long long v = 0;
    for (; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (ULLONG_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    if (neg) {
        if (v > (unsigned long long)LLONG_MAX + 1)
            return false;
        *out = v == (unsigned long long)LLONG_MAX + 1 ? LLONG_MIN : -(long long)v;
    } else {
        if (v > (unsigned long long)LLONG_MAX)
            return false;
        *out = (long long)v;
    }
    return true;
}

/* How printf's %s would see an argument: up to its first NUL. */
static int c_len(const char *s, size_t n, size_t max)
{
    const char *nul = memchr(s, '\0', n);
    size_t len = nul ? (size_t)(nul - s) : n;
    return (int)(len < max ? len : max);
}

static const char not_integer[] = "ERR value is not an integer or out of range";

/* ---------------------------------------------------------------- connection */

static evio_action cmd_ping(db *d, const resp_cmd *c, reply *r)
{
    (void)d;
    if (c->argc > 2)
        reply_error(r, "ERR wrong number of arguments for 'ping' command");
    else if (c->argc == 2)
        reply_bulk(r, ARG(1));
    else
        reply_literal(r, "+PONG\r\n");
    return EVIO_NONE;
}

static evio_action cmd_echo(db *d, const resp_cmd *c, reply *r)
{
    (void)d;
    reply_bulk(r, ARG(1));
    return EVIO_NONE;
}

static evio_action cmd_quit(db *d, const resp_cmd *c, reply *r)
{
    (void)d, (void)c;
    reply_literal(r, "+OK\r\n");
    return EVIO_CLOSE;
}

static evio_action cmd_shutdown(db *d, const resp_cmd *c, reply *r)
{
    (void)d;
    /* Nothing is ever saved, so the options only need to be well formed. */
    bool save = false, nosave = false;
    for (size_t i = 1; i < c->argc; i++) {
        if (same_word(ARG(i), "save"))
            save = true;
        else if (same_word(ARG(i), "nosave"))
            nosave = true;
        else if (!same_word(ARG(i), "now") && !same_word(ARG(i), "force"))
            save = nosave = true;
    }
    if (save && nosave) {
        reply_error(r, "ERR syntax error");
        return EVIO_NONE;
    }
    return EVIO_SHUTDOWN; /* no reply: the connection just closes, as in Redis */
}

/* ---------------------------------------------------------------- strings */

static evio_action cmd_get(db *d, const resp_cmd *c, reply *r)
{
    const db_entry *e = db_find(d, ARG(1));
    if (e)
        reply_bulk(r, db_value(e), e->vlen);
    else
        reply_null(r);
    return EVIO_NONE;
}

/* SET key value [NX|XX] [GET] [EX s|PX ms|EXAT s|PXAT ms|KEEPTTL] */
static evio_action cmd_set(db *d, const resp_cmd *c, reply *r)
{
    enum { EX = 1, PX, EXAT, PXAT };
    unsigned flags = 0;
    bool get = false;
    int unit = 0;        /* which of EX..PXAT, if any */
    size_t when_arg = 0; /* its argument */

    /* The options first, as Redis: a syntax error wins over a bad number. */
    for (size_t i = 3; i < c->argc; i++) {
        bool next = i + 1 < c->argc;
        int u = same_word(ARG(i), "ex") ? EX : same_word(ARG(i), "px") ? PX
              : same_word(ARG(i), "exat") ? EXAT : same_word(ARG(i), "pxat") ? PXAT : 0;
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
            reply_error(r, "ERR syntax error");
            return EVIO_NONE;
        }
    }

    int64_t expire = 0;
    if (unit) {
        long long v;
        if (!to_ll(ARG(when_arg), &v)) {
            reply_error(r, not_integer);
            return EVIO_NONE;
        }
        long long now = unit == EX || unit == PX ? db_now_ms() : 0;
        bool seconds = unit == EX || unit == EXAT;
        if (v <= 0 || (seconds && v > LLONG_MAX / 1000) ||
            (seconds ? v * 1000 : v) > LLONG_MAX - now) {
            reply_error(r, "ERR invalid expire time in 'set' command");
            return EVIO_NONE;
        }
        expire = (seconds ? v * 1000 : v) + now;
    }

    if (get) { /* answer with the old value before it is overwritten */
        const db_entry *old = db_find(d, ARG(1));
        if (old)
            reply_bulk(r, db_value(old), old->vlen);
        else
            reply_null(r);
    }
    int set = db_set(d, ARG(1), ARG(2), expire, flags);
    if (get)
        ; /* answered already (and the db is unchanged if set < 0) */
    else if (set < 0)
        reply_error(r, "ERR out of memory");
    else if (set)
        reply_literal(r, "+OK\r\n");
    else
        reply_null(r);
    return EVIO_NONE;
}

static evio_action cmd_mget(db *d, const resp_cmd *c, reply *r)
{
    reply_array(r, c->argc - 1);
    for (size_t i = 1; i < c->argc; i++) {
        const db_entry *e = db_find(d, ARG(i));
        if (e)
            reply_bulk(r, db_value(e), e->vlen);
        else
            reply_null(r);
    }
    return EVIO_NONE;
}

static evio_action cmd_mset(db *d, const resp_cmd *c, reply *r)
{
    if (c->argc % 2 == 0) {
        reply_error(r, "ERR wrong number of arguments for 'mset' command");
        return EVIO_NONE;
    }
    for (size_t i = 1; i < c->argc; i += 2) {
        if (db_set(d, ARG(i), ARG(i + 1), 0, 0) < 0) {
            reply_error(r, "ERR out of memory");
            return EVIO_NONE;
        }
    }
    reply_literal(r, "+OK\r\n");
    return EVIO_NONE;
}

static void incr_by(db *d, const resp_cmd *c, reply *r, long long by)
{
    db_entry *e = db_find(d, ARG(1));
    long long v = 0;
    if (e && !to_ll(db_value(e), e->vlen, &v)) {
        reply_error(r, not_integer);
        return;
    }
    if ((by < 0 && v < 0 && by < LLONG_MIN - v) || (by > 0 && v > 0 && by > LLONG_MAX - v)) {
        reply_error(r, "ERR increment or decrement would overflow");
        return;
    }
    v += by;
    if (!e) { /* a new key: store a placeholder, then write the number in */
        if (db_set(d, ARG(1), "0", 1, 0, 0) < 0 || !(e = db_find(d, ARG(1)))) {
            reply_error(r, "ERR out of memory");
            return;
        }
    }
    db_set_integer(e, v); /* in place, keeping the TTL, as Redis */
    reply_integer(r, v);
}

static evio_action cmd_incr(db *d, const resp_cmd *c, reply *r)
{
    incr_by(d, c, r, 1);
    return EVIO_NONE;
}

static evio_action cmd_decr(db *d, const resp_cmd *c, reply *r)
{
    incr_by(d, c, r, -1);
    return EVIO_NONE;
}

static evio_action cmd_incrby(db *d, const resp_cmd *c, reply *r)
{
    long long by;
    if (!to_ll(ARG(2), &by))
        reply_error(r, not_integer);
    else
        incr_by(d, c, r, by);
    return EVIO_NONE;
}

static evio_action cmd_decrby(db *d, const resp_cmd *c, reply *r)
{
    long long by;
    if (!to_ll(ARG(2), &by))
        reply_error(r, not_integer);
    else if (by == LLONG_MIN)
        reply_error(r, "ERR decrement would overflow");
    else
        incr_by(d, c, r, -by);
    return EVIO_NONE;
}

/* ---------------------------------------------------------------- keys */

static evio_action cmd_del(db *d, const resp_cmd *c, reply *r)
{
    long long n = 0;
    for (size_t i = 1; i < c->argc; i++)
        n += db_del(d, ARG(i));
    reply_integer(r, n);
    return EVIO_NONE;
}

static evio_action cmd_exists(db *d, const resp_cmd *c, reply *r)
{
    long long n = 0; /* a key named twice counts twice, as in Redis */
    for (size_t i = 1; i < c->argc; i++)
        n += db_find(d, ARG(i)) != NULL;
    reply_integer(r, n);
    return EVIO_NONE;
}

static evio_action ttl(db *d, const resp_cmd *c, reply *r, bool ms)
{
    const db_entry *e = db_find(d, ARG(1));
    if (!e || !e->expire) {
        reply_integer(r, e ? -1 : -2);
        return EVIO_NONE;
    }
    long long left = e->expire - db_now_ms();
    if (left < 0)
        left = 0;
    reply_integer(r, ms ? left : (left + 500) / 1000);
    return EVIO_NONE;
}

static evio_action cmd_ttl(db *d, const resp_cmd *c, reply *r)
{
    return ttl(d, c, r, false);
}

static evio_action cmd_pttl(db *d, const resp_cmd *c, reply *r)
{
    return ttl(d, c, r, true);
}

/* KEYS counts its matches in a first scan and sends them in a second, both
 * at the same instant, so that the array length is known up front. */
typedef struct keys_scan {
    const resp_cmd *c;
    reply *r;
    size_t n;
} keys_scan;

static bool keys_count(void *arg, const db_entry *e)
{
    keys_scan *k = arg;
    const resp_cmd *c = k->c;
    k->n += glob_match(ARG(1), db_key(e), e->klen, 0);
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

static evio_action cmd_keys(db *d, const resp_cmd *c, reply *r)
{
    keys_scan k = {.c = c, .r = r};
    int64_t now = db_now_ms();
    db_scan(d, now, keys_count, &k);
    reply_array(r, k.n);
    db_scan(d, now, keys_send, &k);
    return EVIO_NONE;
}

static evio_action cmd_dbsize(db *d, const resp_cmd *c, reply *r)
{
    (void)c;
    reply_integer(r, (long long)db_size(d));
    return EVIO_NONE;
}

static evio_action cmd_flushdb(db *d, const resp_cmd *c, reply *r)
{
    if (c->argc > 2 || (c->argc == 2 && !same_word(ARG(1), "sync") && !same_word(ARG(1), "async"))) {
        reply_error(r, "ERR syntax error");
        return EVIO_NONE;
    }
    db_flush(d);
    reply_literal(r, "+OK\r\n");
    return EVIO_NONE;
}

/* ---------------------------------------------------------------- server */

/* What CONFIG GET reports: what redis-benchmark asks at start (it wants
 * to know whether the server persists), and a few harmless facts. */
static const struct {
    const char *name, *value;
} config[] = {
    {"save", ""},
    {"appendonly", "no"},
    {"databases", "1"},
    {"maxmemory", "0"},
};

static bool config_wanted(const resp_cmd *c, const char *name)
{
    for (size_t i = 2; i < c->argc; i++)
        if (glob_match(ARG(i), name, strlen(name), 1))
            return true;
    return false;
}

static evio_action cmd_config(db *d, const resp_cmd *c, reply *r)
{
    (void)d;
    if (!same_word(ARG(1), "get")) {
        reply_error(r, "ERR unknown subcommand '%.*s'. Try CONFIG HELP.", c_len(ARG(1), 128),
                    c->argv[1]);
        return EVIO_NONE;
    }
    if (c->argc < 3) {
        reply_error(r, "ERR wrong number of arguments for 'config|get' command");
        return EVIO_NONE;
    }
    size_t n = 0, count = sizeof config / sizeof config[0];
    for (size_t i = 0; i < count; i++)
        n += config_wanted(c, config[i].name);
    reply_array(r, 2 * n);
    for (size_t i = 0; i < count; i++) {
        if (config_wanted(c, config[i].name)) {
            reply_bulk(r, config[i].name, strlen(config[i].name));
            reply_bulk(r, config[i].value, strlen(config[i].value));
        }
    }
    return EVIO_NONE;
}

/* COMMAND and COMMAND DOCS: an empty list (redis-cli asks when it starts
 * an interactive session and falls back to its built-in help). */
static evio_action cmd_command(db *d, const resp_cmd *c, reply *r)
{
    (void)d, (void)c;
    reply_literal(r, "*0\r\n");
    return EVIO_NONE;
}

/* ---------------------------------------------------------------- dispatch */

#define CMD(name, arity, fn) {name, sizeof(name) - 1, arity, fn}

static const command table[] = { /* the hottest first */
    CMD("get", 2, cmd_get),
    CMD("set", -3, cmd_set),
    CMD("ping", -1, cmd_ping),
    CMD("incr", 2, cmd_incr),
    CMD("mset", -3, cmd_mset),
    CMD("mget", -2, cmd_mget),
    CMD("del", -2, cmd_del),
    CMD("exists", -2, cmd_exists),
    CMD("echo", 2, cmd_echo),
    CMD("decr", 2, cmd_decr),
    CMD("incrby", 3, cmd_incrby),
    CMD("decrby", 3, cmd_decrby),
    CMD("ttl", 2, cmd_ttl),
    CMD("pttl", 2, cmd_pttl),
    CMD("keys", 2, cmd_keys),
    CMD("dbsize", 1, cmd_dbsize),
    CMD("flushdb", -1, cmd_flushdb),
    CMD("config", -2, cmd_config),
    CMD("command", -1, cmd_command),
    CMD("quit", -1, cmd_quit),
    CMD("shutdown", -1, cmd_shutdown),
};

static const command *lookup(const char *name, size_t len)
{
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (table[i].len == len && same_word(name, len, table[i].name))
            return &table[i];
    return NULL;
}

/* "unknown command 'foo', with args beginning with: 'a' 'b' " — each
 * argument cut to what is left of a 128-byte budget, as Redis does. */
static void unknown(const resp_cmd *c, reply *r)
{
    char args[140];
    size_t n = 0;
    for (size_t i = 1; i < c->argc && n < 128; i++) {
        size_t len = (size_t)c_len(ARG(i), 128 - n);
        args[n++] = '\'';
        memcpy(args + n, c->argv[i], len);
        n += len;
        args[n++] = '\'';
        args[n++] = ' ';
    }
    reply_error(r, "ERR unknown command '%.*s', with args beginning with: %.*s",
                c_len(ARG(0), 128), c->argv[0], (int)n, args);
}

evio_action commands_exec(db *d, const resp_cmd *c, reply *r)
{
    const command *cmd = lookup(ARG(0));
    if (!cmd) {
        unknown(c, r);
        return EVIO_NONE;
    }
    if (cmd->arity > 0 ? c->argc != (size_t)cmd->arity : c->argc < (size_t)-cmd->arity) {
        reply_error(r, "ERR wrong number of arguments for '%s' command", cmd->name);
        return EVIO_NONE;
    }
    return cmd->fn(d, c, r);
}

/* ---------------------------------------------------------------- glob */

static char fold(char ch, int nocase)
{
    return nocase && ch >= 'A' && ch <= 'Z' ? (char)(ch + 32) : ch;
}

/* Does the one-character pattern element at p[*i] (?, [...], \x or a
 * literal) match ch?  Advances *i past it. */
static bool match_one(const char *p, size_t pn, size_t *i, char ch, int nocase)
{
    size_t j = *i;
    if (p[j] == '?') {
        *i = j + 1;
        return true;
    }
    if (p[j] == '\\' && j + 1 < pn) {
        *i = j + 2;
        return fold(p[j + 1], nocase) == fold(ch, nocase);
    }
    if (p[j] != '[') {
        *i = j + 1;
        return fold(p[j], nocase) == fold(ch, nocase);
    }
    /* A class; an unterminated one ends with the pattern, as in Redis. */
    j++;
    bool negate = j < pn && p[j] == '^';
    j += negate;
    bool hit = false;
    unsigned char c = (unsigned char)fold(ch, nocase);
    while (j < pn && p[j] != ']') {
        if (p[j] == '\\' && j + 1 < pn) {
            hit |= (unsigned char)fold(p[j + 1], nocase) == c;
            j += 2;
        } else if (j + 2 < pn && p[j + 1] == '-') {
            unsigned char lo = (unsigned char)fold(p[j], nocase), hi = (unsigned char)fold(p[j + 2], nocase);
            if (lo > hi) {
                unsigned char t = lo;
                lo = hi;
                hi = t;
            }
            hit |= c >= lo && c <= hi;
            j += 3;
        } else {
            hit |= (unsigned char)fold(p[j], nocase) == c;
            j++;
        }
    }
    *i = j < pn ? j + 1 : j;
    return hit != negate;
}

/* Iterative, remembering only the last '*': O(pattern x string) at worst,
 * never exponential. */
int glob_match(const char *p, size_t pn, const char *s, size_t sn, int nocase)
{
    size_t pi = 0, si = 0, star = SIZE_MAX, star_s = 0;
    while (si < sn) {
        if (pi < pn && p[pi] == '*') {
            star = ++pi;
            star_s = si;
            continue;
        }
        size_t next = pi;
        if (pi < pn && match_one(p, pn, &next, s[si], nocase)) {
            pi = next;
            si++;
            continue;
        }
        if (star == SIZE_MAX)
            return 0;
        pi = star; /* let the last '*' swallow one more byte */
        si = ++star_s;
    }
    while (pi < pn && p[pi] == '*')
        pi++;
    return pi == pn;
}
