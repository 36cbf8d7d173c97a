/* commands.c — the command table, dispatch and the helpers handlers share.
 *
 * Replies and error texts are Redis 7's, byte for byte, so that redis-cli,
 * redis-benchmark, client libraries and Redis's own test suite cannot tell
 * the difference for the commands we have.  Arity follows Redis's
 * convention: N means exactly N words (the name included), -N at least N.
 *
 * Lookup is a linear scan of a table whose hottest commands come first:
 * GET, SET and PING are found at the first compare or two, and cost no
 * more than before the table grew. */
#include "commands.h"

#include <limits.h>
#include <string.h>

const char not_integer[] = "ERR value is not an integer or out of range";
const char wrongtype[] = "WRONGTYPE Operation against a key holding the wrong kind of value";
const char syntax_error[] = "ERR syntax error";

/* ---------------------------------------------------------------- helpers */

/* For a letter, (c | 0x20) == letter holds for exactly its two cases. */
bool same_word(const char *s, size_t n, const char *word)
{
    for (size_t i = 0; i < n; i++)
        if (word[i] == '\0' || (s[i] | 0x20) != word[i])
            return false;
    return word[n] == '\0';
}

bool to_ll(const char *s, size_t n, long long *out)
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

int c_len(const char *s, size_t n, size_t max)
{
    const char *nul = memchr(s, '\0', n);
    size_t len = nul ? (size_t)(nul - s) : n;
    return (int)(len < max ? len : max);
}

db_entry *find_string(db *d, const char *key, size_t klen, reply *r, bool *wrong)
{
    db_entry *e = db_find(d, key, klen);
    *wrong = e && e->type != DB_STRING;
    if (*wrong) {
        reply_error(r, "%s", wrongtype);
        return NULL;
    }
    return e;
}

/* ---------------------------------------------------------------- the table */

handler cmd_get, cmd_set, cmd_ping, cmd_incr, cmd_mset, cmd_mget, cmd_del, cmd_exists,
    cmd_echo, cmd_decr, cmd_incrby, cmd_decrby, cmd_incrbyfloat, cmd_setnx, cmd_setex,
    cmd_psetex, cmd_getset, cmd_getdel, cmd_getex, cmd_append, cmd_strlen, cmd_getrange,
    cmd_setrange, cmd_msetnx, cmd_getbit, cmd_setbit, cmd_lcs,
    cmd_ttl, cmd_pttl, cmd_expiretime, cmd_pexpiretime, cmd_expire, cmd_pexpire,
    cmd_expireat, cmd_pexpireat, cmd_persist, cmd_keys, cmd_scan, cmd_type, cmd_unlink,
    cmd_rename, cmd_renamenx, cmd_randomkey, cmd_touch, cmd_copy, cmd_move, cmd_dbsize,
    cmd_flushdb, cmd_flushall, cmd_select, cmd_swapdb,
    cmd_rpush, cmd_lpush, cmd_rpop, cmd_lpop, cmd_llen, cmd_lrange, cmd_sadd, cmd_srem,
    cmd_scard, cmd_smembers, cmd_sismember, cmd_srandmember,
    cmd_multi, cmd_exec, cmd_discard, cmd_watch, cmd_unwatch,
    cmd_quit, cmd_shutdown, cmd_config, cmd_command, cmd_info, cmd_client, cmd_hello,
    cmd_auth, cmd_time, cmd_reset, cmd_lastsave, cmd_memory, cmd_object, cmd_function;

#define W CMD_WRITE
#define F CMD_FAST
#define CMD(name, arity, fn, flags, first, last, step, group) \
    {name, sizeof(name) - 1, arity, fn, flags, first, last, step, group}

static const command table[] = { /* the hottest first */
    CMD("get", 2, cmd_get, F, 1, 1, 1, "string"),
    CMD("set", -3, cmd_set, W, 1, 1, 1, "string"),
    CMD("ping", -1, cmd_ping, F, 0, 0, 0, "connection"),
    CMD("incr", 2, cmd_incr, W | F, 1, 1, 1, "string"),
    CMD("mset", -3, cmd_mset, W, 1, -1, 2, "string"),
    CMD("mget", -2, cmd_mget, F, 1, -1, 1, "string"),
    CMD("del", -2, cmd_del, W, 1, -1, 1, "generic"),
    CMD("exists", -2, cmd_exists, F, 1, -1, 1, "generic"),
    CMD("echo", 2, cmd_echo, F, 0, 0, 0, "connection"),
    CMD("decr", 2, cmd_decr, W | F, 1, 1, 1, "string"),
    CMD("incrby", 3, cmd_incrby, W | F, 1, 1, 1, "string"),
    CMD("decrby", 3, cmd_decrby, W | F, 1, 1, 1, "string"),
    CMD("incrbyfloat", 3, cmd_incrbyfloat, W | F, 1, 1, 1, "string"),
    CMD("setnx", 3, cmd_setnx, W | F, 1, 1, 1, "string"),
    CMD("setex", 4, cmd_setex, W, 1, 1, 1, "string"),
    CMD("psetex", 4, cmd_psetex, W, 1, 1, 1, "string"),
    CMD("getset", 3, cmd_getset, W | F, 1, 1, 1, "string"),
    CMD("getdel", 2, cmd_getdel, W | F, 1, 1, 1, "string"),
    CMD("getex", -2, cmd_getex, W | F, 1, 1, 1, "string"),
    CMD("append", 3, cmd_append, W | F, 1, 1, 1, "string"),
    CMD("strlen", 2, cmd_strlen, F, 1, 1, 1, "string"),
    CMD("getrange", 4, cmd_getrange, 0, 1, 1, 1, "string"),
    CMD("substr", 4, cmd_getrange, 0, 1, 1, 1, "string"),
    CMD("setrange", 4, cmd_setrange, W, 1, 1, 1, "string"),
    CMD("msetnx", -3, cmd_msetnx, W, 1, -1, 2, "string"),
    CMD("getbit", 3, cmd_getbit, F, 1, 1, 1, "bitmap"),
    CMD("setbit", 4, cmd_setbit, W, 1, 1, 1, "bitmap"),
    CMD("lcs", -3, cmd_lcs, 0, 1, 2, 1, "string"),
    CMD("ttl", 2, cmd_ttl, F, 1, 1, 1, "generic"),
    CMD("pttl", 2, cmd_pttl, F, 1, 1, 1, "generic"),
    CMD("expiretime", 2, cmd_expiretime, F, 1, 1, 1, "generic"),
    CMD("pexpiretime", 2, cmd_pexpiretime, F, 1, 1, 1, "generic"),
    CMD("expire", -3, cmd_expire, W | F, 1, 1, 1, "generic"),
    CMD("pexpire", -3, cmd_pexpire, W | F, 1, 1, 1, "generic"),
    CMD("expireat", -3, cmd_expireat, W | F, 1, 1, 1, "generic"),
    CMD("pexpireat", -3, cmd_pexpireat, W | F, 1, 1, 1, "generic"),
    CMD("persist", 2, cmd_persist, W | F, 1, 1, 1, "generic"),
    CMD("keys", 2, cmd_keys, 0, 0, 0, 0, "generic"),
    CMD("scan", -2, cmd_scan, 0, 0, 0, 0, "generic"),
    CMD("type", 2, cmd_type, F, 1, 1, 1, "generic"),
    CMD("unlink", -2, cmd_unlink, W | F, 1, -1, 1, "generic"),
    CMD("rename", 3, cmd_rename, W, 1, 2, 1, "generic"),
    CMD("renamenx", 3, cmd_renamenx, W | F, 1, 2, 1, "generic"),
    CMD("randomkey", 1, cmd_randomkey, 0, 0, 0, 0, "generic"),
    CMD("touch", -2, cmd_touch, F, 1, -1, 1, "generic"),
    CMD("copy", -3, cmd_copy, W, 1, 2, 1, "generic"),
    CMD("move", 3, cmd_move, W | F, 1, 1, 1, "generic"),
    CMD("dbsize", 1, cmd_dbsize, F, 0, 0, 0, "server"),
    CMD("flushdb", -1, cmd_flushdb, W, 0, 0, 0, "server"),
    CMD("flushall", -1, cmd_flushall, W, 0, 0, 0, "server"),
    CMD("select", 2, cmd_select, F, 0, 0, 0, "connection"),
    CMD("swapdb", 3, cmd_swapdb, W | F, 0, 0, 0, "server"),
    CMD("rpush", -3, cmd_rpush, W | F, 1, 1, 1, "list"),
    CMD("lpush", -3, cmd_lpush, W | F, 1, 1, 1, "list"),
    CMD("rpop", -2, cmd_rpop, W | F, 1, 1, 1, "list"),
    CMD("lpop", -2, cmd_lpop, W | F, 1, 1, 1, "list"),
    CMD("llen", 2, cmd_llen, F, 1, 1, 1, "list"),
    CMD("lrange", 4, cmd_lrange, 0, 1, 1, 1, "list"),
    CMD("sadd", -3, cmd_sadd, W | F, 1, 1, 1, "set"),
    CMD("srem", -3, cmd_srem, W | F, 1, 1, 1, "set"),
    CMD("scard", 2, cmd_scard, F, 1, 1, 1, "set"),
    CMD("smembers", 2, cmd_smembers, 0, 1, 1, 1, "set"),
    CMD("sismember", 3, cmd_sismember, F, 1, 1, 1, "set"),
    CMD("srandmember", -2, cmd_srandmember, 0, 1, 1, 1, "set"),
    CMD("multi", 1, cmd_multi, F | CMD_NOMULTI, 0, 0, 0, "transactions"),
    CMD("exec", 1, cmd_exec, CMD_NOMULTI, 0, 0, 0, "transactions"),
    CMD("discard", 1, cmd_discard, F | CMD_NOMULTI, 0, 0, 0, "transactions"),
    CMD("watch", -2, cmd_watch, F | CMD_NOMULTI, 1, -1, 1, "transactions"),
    CMD("unwatch", 1, cmd_unwatch, F, 0, 0, 0, "transactions"),
    CMD("quit", -1, cmd_quit, CMD_NOMULTI, 0, 0, 0, "connection"),
    CMD("shutdown", -1, cmd_shutdown, CMD_ADMIN, 0, 0, 0, "server"),
    CMD("config", -2, cmd_config, 0, 0, 0, 0, "server"),
    CMD("command", -1, cmd_command, 0, 0, 0, 0, "server"),
    CMD("info", -1, cmd_info, 0, 0, 0, 0, "server"),
    CMD("client", -2, cmd_client, 0, 0, 0, 0, "connection"),
    CMD("hello", -1, cmd_hello, F, 0, 0, 0, "connection"),
    CMD("auth", -2, cmd_auth, F, 0, 0, 0, "connection"),
    CMD("time", 1, cmd_time, F, 0, 0, 0, "server"),
    CMD("reset", 1, cmd_reset, F | CMD_NOMULTI, 0, 0, 0, "connection"),
    CMD("lastsave", 1, cmd_lastsave, F, 0, 0, 0, "server"),
    CMD("memory", -2, cmd_memory, 0, 0, 0, 0, "server"),
    CMD("object", -2, cmd_object, 0, 0, 0, 0, "generic"),
    CMD("function", -2, cmd_function, 0, 0, 0, 0, "scripting"),
};

#define NCOMMANDS (sizeof table / sizeof table[0])

static unsigned long long calls[NCOMMANDS];

const command *commands_table(size_t *n)
{
    *n = NCOMMANDS;
    return table;
}

unsigned long long commands_calls(const command *cmd)
{
    return calls[cmd - table];
}

void commands_reset_stats(void)
{
    memset(calls, 0, sizeof calls);
}

/* Inlined into commands_exec: the hot path is one loop, no calls. */
static inline const command *lookup(const char *name, size_t len)
{
    for (size_t i = 0; i < NCOMMANDS; i++)
        if (table[i].len == len && same_word(name, len, table[i].name))
            return &table[i];
    return NULL;
}

const command *commands_lookup(const char *name, size_t len)
{
    return lookup(name, len);
}

unsigned long long commands_total(void)
{
    unsigned long long n = 0;
    for (size_t i = 0; i < NCOMMANDS; i++)
        n += calls[i];
    return n;
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

static inline evio_action call(db *d, session *s, const command *cmd, const resp_cmd *c, reply *r)
{
    calls[cmd - table]++;
    s->last_cmd = cmd->name;
    if ((cmd->flags & CMD_ADMIN) && !s->admin) {
        reply_error(r, "NOPERM the '%s' command is allowed from loopback clients only "
                       "(start the server with --enable-remote-admin to allow it)", cmd->name);
        return EVIO_NONE;
    }
    return cmd->fn(d, s, c, r);
}

evio_action commands_call(db *d, session *s, const command *cmd, const resp_cmd *c, reply *r)
{
    return call(d, s, cmd, c, r);
}

evio_action commands_exec(db *d, session *s, const resp_cmd *c, reply *r)
{
    const command *cmd = lookup(ARG(0));
    if (!cmd) {
        unknown(c, r);
        s->multi_failed |= s->multi;
        return EVIO_NONE;
    }
    if (cmd->arity > 0 ? c->argc != (size_t)cmd->arity : c->argc < (size_t)-cmd->arity) {
        reply_error(r, "ERR wrong number of arguments for '%s' command", cmd->name);
        s->multi_failed |= s->multi;
        return EVIO_NONE;
    }
    if (s->multi && !(cmd->flags & CMD_NOMULTI)) {
        multi_queue(s, cmd, c, r);
        return EVIO_NONE;
    }
    return call(d, s, cmd, c, r);
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
