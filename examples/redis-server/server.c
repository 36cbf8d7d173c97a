/* server.c — connection and server commands (PING, HELLO, AUTH, CLIENT,
 * SELECT's friends, INFO, CONFIG, COMMAND, TIME, SHUTDOWN...) and the
 * registry of sessions that CLIENT LIST, CLIENT KILL and INFO read. */
#define _POSIX_C_SOURCE 200809L

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <unistd.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include "commands.h"

server_state server_info;

static session *sessions; /* the registry: every open connection */

/* ---------------------------------------------------------------- registry */

void session_register(session *s)
{
    s->since_ms = s->last_ms = db_now_ms();
    s->next = sessions;
    if (sessions)
        sessions->prev = s;
    sessions = s;
    server_info.clients++;
    server_info.connections++;
}

void session_unregister(session *s)
{
    if (s->prev)
        s->prev->next = s->next;
    else if (sessions == s)
        sessions = s->next;
    if (s->next)
        s->next->prev = s->prev;
    s->prev = s->next = NULL;
    server_info.clients--;
}

/* A growing text buffer for INFO and CLIENT LIST. */
typedef struct text {
    char *p;
    size_t len, cap;
    bool oom;
} text;

#if defined(__GNUC__) || defined(__clang__)
__attribute__((format(printf, 2, 3)))
#endif
static void add(text *t, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        size_t room = t->cap - t->len;
        int n = t->oom ? 0 : vsnprintf(t->p ? t->p + t->len : NULL, room, fmt, ap);
        va_end(ap);
        if (n < 0 || t->oom)
            return;
        if ((size_t)n < room) {
            t->len += (size_t)n;
            return;
        }
        size_t cap = t->cap ? t->cap * 2 : 1024;
        while (cap - t->len <= (size_t)n)
            cap *= 2;
        char *p = realloc(t->p, cap);
        if (!p) {
            t->oom = true;
            return;
        }
        t->p = p;
        t->cap = cap;
    }
}

static void reply_text(reply *r, text *t)
{
    if (t->oom)
        reply_error(r, "ERR out of memory");
    else
        reply_bulk(r, t->p ? t->p : "", t->len);
    free(t->p);
}

/* Client names: printable ASCII without blanks, as Redis requires. */
static bool valid_name(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] < '!' || p[i] > '~')
            return false;
    return true;
}

static bool set_string(char **dst, const char *p, size_t n)
{
    char *v = NULL;
    if (n && !(v = malloc(n + 1)))
        return false;
    if (n) {
        memcpy(v, p, n);
        v[n] = '\0';
    }
    free(*dst);
    *dst = v;
    return true;
}

/* A subcommand that is unknown, or known but given the wrong number of
 * arguments, in Redis's words.  known: the lower-case subcommands. */
static void sub_error(reply *r, const resp_cmd *c, const char *cmd, const char *const known[])
{
    for (size_t i = 0; known[i]; i++) {
        if (same_word(ARG(1), known[i])) {
            reply_error(r, "ERR wrong number of arguments for '%s|%s' command", cmd, known[i]);
            return;
        }
    }
    char upper[16];
    size_t n = strlen(cmd);
    for (size_t i = 0; i <= n && i < sizeof upper; i++)
        upper[i] = (char)(cmd[i] >= 'a' && cmd[i] <= 'z' ? cmd[i] - 32 : cmd[i]);
    upper[sizeof upper - 1] = '\0';
    reply_error(r, "ERR unknown subcommand '%.*s'. Try %s HELP.", c_len(ARG(1), 128), c->argv[1], upper);
}

/* ---------------------------------------------------------------- connection */

HANDLER(cmd_ping)
{
    if (c->argc > 2)
        reply_error(r, "ERR wrong number of arguments for 'ping' command");
    else if (c->argc == 2)
        reply_bulk(r, ARG(1));
    else
        reply_literal(r, "+PONG\r\n");
    return EVIO_NONE;
}

HANDLER(cmd_echo)
{
    reply_bulk(r, ARG(1));
    return EVIO_NONE;
}

HANDLER(cmd_quit)
{
    reply_literal(r, "+OK\r\n");
    return EVIO_CLOSE;
}

HANDLER(cmd_reset)
{
    multi_reset(d, s);
    set_string(&s->name, NULL, 0);
    reply_literal(r, "+RESET\r\n");
    return EVIO_NONE;
}

/* No passwords are configured: the default user accepts any. */
HANDLER(cmd_auth)
{
    if (c->argc == 2)
        reply_error(r, "ERR AUTH <password> called without any password configured for the "
                       "default user. Are you sure your configuration is correct?");
    else if (c->argc > 3)
        reply_error(r, "%s", syntax_error);
    else if (same_word(ARG(1), "default"))
        reply_literal(r, "+OK\r\n");
    else
        reply_error(r, "WRONGPASS invalid username-password pair or user is disabled.");
    return EVIO_NONE;
}

/* HELLO [protover [AUTH user pass] [SETNAME name]]: RESP2 only; a client
 * asking for 3 gets NOPROTO and goes on with 2, as clients do. */
HANDLER(cmd_hello)
{
    if (c->argc >= 2) {
        long long v;
        if (!to_ll(ARG(1), &v)) {
            reply_error(r, "ERR Protocol version is not an integer or out of range");
            return EVIO_NONE;
        }
        if (v != 2) {
            reply_error(r, "NOPROTO unsupported protocol version");
            return EVIO_NONE;
        }
    }
    const char *name = NULL;
    size_t nlen = 0;
    for (size_t i = 2; i < c->argc; i++) {
        if (same_word(ARG(i), "auth") && i + 2 < c->argc) {
            if (!same_word(ARG(i + 1), "default")) {
                reply_error(r, "WRONGPASS invalid username-password pair or user is disabled.");
                return EVIO_NONE;
            }
            i += 2;
        } else if (same_word(ARG(i), "setname") && i + 1 < c->argc) {
            i++;
            if (!valid_name(ARG(i))) {
                reply_error(r, "ERR Client names cannot contain spaces, newlines or special characters.");
                return EVIO_NONE;
            }
            name = c->argv[i];
            nlen = c->len[i];
        } else {
            reply_error(r, "ERR Syntax error in HELLO option '%.*s'", c_len(ARG(i), 128), c->argv[i]);
            return EVIO_NONE;
        }
    }
    if (name && !set_string(&s->name, name, nlen)) {
        reply_error(r, "ERR out of memory");
        return EVIO_NONE;
    }
    reply_array(r, 14);
    reply_bulk(r, "server", 6);
    reply_bulk(r, "redis", 5);
    reply_bulk(r, "version", 7);
    reply_bulk(r, "7.0.15", 6);
    reply_bulk(r, "proto", 5);
    reply_integer(r, 2);
    reply_bulk(r, "id", 2);
    reply_integer(r, (long long)s->id);
    reply_bulk(r, "mode", 4);
    reply_bulk(r, "standalone", 10);
    reply_bulk(r, "role", 4);
    reply_bulk(r, "master", 6);
    reply_bulk(r, "modules", 7);
    reply_array(r, 0);
    return EVIO_NONE;
}

static void client_line(text *t, const session *s, int64_t now)
{
    add(t, "id=%llu addr=%s laddr=%s fd=-1 name=%s age=%lld idle=%lld flags=%s db=0 sub=0 "
           "psub=0 ssub=0 multi=%lld qbuf=0 qbuf-free=0 argv-mem=0 multi-mem=0 rbs=0 rbp=0 "
           "obl=0 oll=0 omem=0 tot-mem=0 events=r cmd=%s user=default redir=-1 resp=2 "
           "lib-name=%s lib-ver=%s\n",
        (unsigned long long)s->id, s->addr, s->laddr, s->name ? s->name : "",
        (long long)(now - s->since_ms) / 1000, (long long)(now - s->last_ms) / 1000,
        s->multi ? "x" : "N", s->multi ? (long long)s->nqueued : -1LL,
        s->last_cmd ? s->last_cmd : "NULL", s->lib_name ? s->lib_name : "",
        s->lib_ver ? s->lib_ver : "");
}

/* CLIENT KILL addr | CLIENT KILL [ID id] [ADDR a] [LADDR a] [SKIPME yes|no]
 * [USER u] [TYPE normal]: closes the matching connections after what is
 * queued for them is sent. */
static void client_kill(session *self, const resp_cmd *c, reply *r)
{
    bool old = c->argc == 3, skipme = true;
    unsigned long long id = 0;
    const char *addr = NULL, *laddr = NULL;
    size_t alen = 0, llen = 0;
    if (old) {
        addr = c->argv[2];
        alen = c->len[2];
        skipme = false;
    } else {
        for (size_t i = 2; i < c->argc; i++) {
            if (i + 1 >= c->argc) {
                reply_error(r, "%s", syntax_error);
                return;
            }
            size_t v = i + 1;
            long long n;
            if (same_word(ARG(i), "id")) {
                if (!to_ll(ARG(v), &n) || n <= 0) {
                    reply_error(r, "ERR client-id should be greater than 0");
                    return;
                }
                id = (unsigned long long)n;
            } else if (same_word(ARG(i), "addr")) {
                addr = c->argv[v], alen = c->len[v];
            } else if (same_word(ARG(i), "laddr")) {
                laddr = c->argv[v], llen = c->len[v];
            } else if (same_word(ARG(i), "skipme")) {
                if (same_word(ARG(v), "yes"))
                    skipme = true;
                else if (same_word(ARG(v), "no"))
                    skipme = false;
                else {
                    reply_error(r, "%s", syntax_error);
                    return;
                }
            } else if (same_word(ARG(i), "user")) {
                if (!same_word(ARG(v), "default")) {
                    reply_error(r, "ERR No such user '%.*s'", c_len(ARG(v), 128), c->argv[v]);
                    return;
                }
            } else if (same_word(ARG(i), "type")) {
                if (!same_word(ARG(v), "normal") && !same_word(ARG(v), "master") &&
                    !same_word(ARG(v), "replica") && !same_word(ARG(v), "slave") &&
                    !same_word(ARG(v), "pubsub")) {
                    reply_error(r, "ERR Unknown client type '%.*s'", c_len(ARG(v), 128), c->argv[v]);
                    return;
                }
                if (!same_word(ARG(v), "normal"))
                    id = ~0ULL; /* no such clients here */
            } else {
                reply_error(r, "%s", syntax_error);
                return;
            }
            i = v;
        }
    }
    long long killed = 0;
    for (session *s = sessions; s; s = s->next) {
        if ((id && s->id != id) || (addr && (strlen(s->addr) != alen || memcmp(s->addr, addr, alen))) ||
            (laddr && (strlen(s->laddr) != llen || memcmp(s->laddr, laddr, llen))) ||
            (skipme && s == self))
            continue;
        if (s != self && !self->admin)
            continue; /* others only from loopback (see CMD_ADMIN) */
        if (s == self)
            s->closing = true;
        else
            evio_close(server_info.srv, s->id);
        killed++;
    }
    if (!old)
        reply_integer(r, killed);
    else if (killed)
        reply_literal(r, "+OK\r\n");
    else
        reply_error(r, "ERR No such client");
}

static const char *const client_help[] = {
    "CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "GETNAME", "    Return the name of the current connection.",
    "ID", "    Return the ID of the current connection.",
    "INFO", "    Return information about the current client connection.",
    "KILL <ip:port>", "    Kill connection made from <ip:port>.",
    "KILL <option> <value> [<option> <value> [...]]",
    "    Kill connections. Options are: ID, ADDR, LADDR, SKIPME, USER, TYPE.",
    "LIST [options ...]", "    Return information about client connections (TYPE, ID).",
    "SETINFO <LIB-NAME|LIB-VER> <value>", "    Set client library name or version.",
    "SETNAME <name>", "    Assign the name <name> to the current connection.",
    "HELP", "    Print this help.",
};

HANDLER(cmd_client)
{
    int64_t now = db_now_ms();
    if (same_word(ARG(1), "id") && c->argc == 2) {
        reply_integer(r, (long long)s->id);
    } else if (same_word(ARG(1), "getname") && c->argc == 2) {
        if (s->name)
            reply_bulk(r, s->name, strlen(s->name));
        else
            reply_null(r);
    } else if (same_word(ARG(1), "setname") && c->argc == 3) {
        if (!valid_name(ARG(2)))
            reply_error(r, "ERR Client names cannot contain spaces, newlines or special characters.");
        else if (!set_string(&s->name, ARG(2)))
            reply_error(r, "ERR out of memory");
        else
            reply_literal(r, "+OK\r\n");
    } else if (same_word(ARG(1), "setinfo") && c->argc == 4) {
        bool name = same_word(ARG(2), "lib-name");
        if (!name && !same_word(ARG(2), "lib-ver"))
            reply_error(r, "ERR Unrecognized option '%.*s'", c_len(ARG(2), 128), c->argv[2]);
        else if (!valid_name(ARG(3)))
            reply_error(r, "ERR %s cannot contain spaces, newlines or special characters.",
                        name ? "lib-name" : "lib-ver");
        else if (!set_string(name ? &s->lib_name : &s->lib_ver, ARG(3)))
            reply_error(r, "ERR out of memory");
        else
            reply_literal(r, "+OK\r\n");
    } else if (same_word(ARG(1), "info") && c->argc == 2) {
        text t = {0};
        client_line(&t, s, now);
        reply_text(r, &t);
    } else if (same_word(ARG(1), "list")) {
        text t = {0};
        bool ids = c->argc > 3 && same_word(ARG(2), "id");
        if (c->argc > 2 && !ids && !(c->argc == 4 && same_word(ARG(2), "type"))) {
            reply_error(r, "%s", syntax_error);
            return EVIO_NONE;
        }
        bool none = c->argc == 4 && same_word(ARG(2), "type") && !same_word(ARG(3), "normal");
        for (session *o = sessions; o && !none; o = o->next) {
            bool want = !ids;
            for (size_t i = 3; ids && i < c->argc; i++) {
                long long id;
                if (!to_ll(ARG(i), &id) || id <= 0) {
                    free(t.p);
                    reply_error(r, "ERR Invalid client ID");
                    return EVIO_NONE;
                }
                want |= (uint64_t)id == o->id;
            }
            if (want)
                client_line(&t, o, now);
        }
        reply_text(r, &t);
    } else if (same_word(ARG(1), "kill") && c->argc >= 3) {
        client_kill(s, c, r);
    } else if ((same_word(ARG(1), "no-evict") || same_word(ARG(1), "no-touch")) && c->argc == 3) {
        if (same_word(ARG(2), "on") || same_word(ARG(2), "off"))
            reply_literal(r, "+OK\r\n");
        else
            reply_error(r, "%s", syntax_error);
    } else if (same_word(ARG(1), "reply") && c->argc == 3 && same_word(ARG(2), "on")) {
        reply_literal(r, "+OK\r\n");
    } else if (same_word(ARG(1), "help") && c->argc == 2) {
        size_t n = sizeof client_help / sizeof client_help[0];
        reply_array(r, n);
        for (size_t i = 0; i < n; i++) {
            reply_raw(r, "+", 1);
            reply_raw(r, client_help[i], strlen(client_help[i]));
            reply_literal(r, "\r\n");
        }
    } else {
        static const char *const known[] = {"id", "getname", "setname", "setinfo", "info", "list", "kill", "no-evict", "no-touch", "reply", "help", NULL};
        sub_error(r, c, "client", known);
    }
    return EVIO_NONE;
}

/* ---------------------------------------------------------------- server */

HANDLER(cmd_shutdown)
{
    /* Nothing is ever saved, so the options only need to be well formed. */
    bool save = false, nosave = false, abort_ = false;
    for (size_t i = 1; i < c->argc; i++) {
        if (same_word(ARG(i), "save"))
            save = true;
        else if (same_word(ARG(i), "nosave"))
            nosave = true;
        else if (same_word(ARG(i), "abort"))
            abort_ = true;
        else if (!same_word(ARG(i), "now") && !same_word(ARG(i), "force"))
            save = nosave = true;
    }
    if ((save && nosave) || (abort_ && c->argc != 2)) {
        reply_error(r, "%s", syntax_error);
        return EVIO_NONE;
    }
    if (abort_) { /* shutting down never waits for anything here */
        reply_error(r, "ERR No shutdown in progress.");
        return EVIO_NONE;
    }
    return EVIO_SHUTDOWN; /* no reply: the connection just closes, as in Redis */
}

HANDLER(cmd_time)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    char a[24], b[24];
    int na = snprintf(a, sizeof a, "%lld", (long long)tv.tv_sec);
    int nb = snprintf(b, sizeof b, "%ld", (long)tv.tv_usec);
    reply_array(r, 2);
    reply_bulk(r, a, (size_t)na);
    reply_bulk(r, b, (size_t)nb);
    return EVIO_NONE;
}

HANDLER(cmd_lastsave)
{
    reply_integer(r, server_info.start_ms / 1000);
    return EVIO_NONE;
}

HANDLER(cmd_memory)
{
    if (same_word(ARG(1), "usage") && c->argc >= 3) {
        const db_entry *e = db_find(d, ARG(2));
        if (e)
            reply_integer(r, (long long)(sizeof *e + e->klen + e->vcap));
        else
            reply_null(r);
    } else {
        static const char *const known[] = {"usage", NULL};
        sub_error(r, c, "memory", known);
    }
    return EVIO_NONE;
}

HANDLER(cmd_object)
{
    const db_entry *e = c->argc == 3 ? db_find(d, ARG(2)) : NULL;
    long long v;
    if (c->argc == 3 && !e && !same_word(ARG(1), "help")) {
        reply_null(r);
    } else if (same_word(ARG(1), "encoding") && c->argc == 3) {
        const char *enc = e->type != DB_STRING ? "listpack"
                        : to_ll(db_value(e), e->vlen, &v) ? "int" : e->vlen <= 44 ? "embstr" : "raw";
        reply_bulk(r, enc, strlen(enc));
    } else if ((same_word(ARG(1), "refcount") || same_word(ARG(1), "idletime")) && c->argc == 3) {
        reply_integer(r, same_word(ARG(1), "refcount"));
    } else {
        static const char *const known[] = {"encoding", "refcount", "idletime", "help", NULL};
        sub_error(r, c, "object", known);
    }
    return EVIO_NONE;
}

/* There are no functions here: FUNCTION FLUSH has nothing to do. */
HANDLER(cmd_function)
{
    if (same_word(ARG(1), "flush") && c->argc <= 3)
        reply_literal(r, "+OK\r\n");
    else if (same_word(ARG(1), "list"))
        reply_array(r, 0);
    else
        sub_error(r, c, "function", (const char *const[]){"flush", "list", NULL});
    return EVIO_NONE;
}

/* ---------------------------------------------------------------- CONFIG */

/* The settings CONFIG GET knows.  Most describe what this server is
 * (nothing is persisted, one database); CONFIG SET stores any of them so
 * that tools and tests that set and restore a value work, and acts on the
 * few that mean something here. */
typedef struct setting {
    const char *name;
    char value[128];
} setting;

static setting settings[] = {
    {"save", ""},
    {"appendonly", "no"},
    {"appendfsync", "everysec"},
    {"databases", "1"},
    {"maxmemory", "0"},
    {"maxmemory-policy", "noeviction"},
    {"maxclients", "10000"},
    {"timeout", "0"},
    {"hz", "10"},
    {"port", "6380"},
    {"bind", "127.0.0.1 -::1"},
    {"protected-mode", "no"},
    {"proto-max-bulk-len", "536870912"},
    {"client-query-buffer-limit", "1073741824"},
    {"client-output-buffer-limit", "normal 0 0 0 slave 268435456 67108864 60 pubsub 33554432 8388608 60"},
    {"lazyfree-lazy-user-flush", "no"},
    {"lazyfree-lazy-expire", "no"},
    {"active-expire-effort", "1"},
    {"latency-tracking", "no"},
    {"list-max-listpack-size", "-2"},
    {"set-max-intset-entries", "512"},
    {"hash-max-listpack-entries", "128"},
    {"hash-max-ziplist-entries", "128"},
    {"zset-max-listpack-entries", "128"},
    {"zset-max-ziplist-entries", "128"},
    {"dir", "/"},
    {"dbfilename", "dump.rdb"},
    {"loglevel", "notice"},
};

#define NSETTINGS (sizeof settings / sizeof settings[0])

void config_init(void)
{
    snprintf(settings[6].value, sizeof settings[6].value, "%zu", server_info.maxclients);
    snprintf(settings[9].value, sizeof settings[9].value, "%ld", server_info.port);
    snprintf(settings[14].value, sizeof settings[14].value,
             "normal %zu %zu 0 slave 268435456 67108864 60 pubsub 33554432 8388608 60",
             server_info.output_limit, server_info.output_limit);
}

static bool config_wanted(const resp_cmd *c, const char *name)
{
    for (size_t i = 2; i < c->argc; i++)
        if (glob_match(ARG(i), name, strlen(name), 1))
            return true;
    return false;
}

static setting *find_setting(const char *name, size_t len)
{
    for (size_t i = 0; i < NSETTINGS; i++)
        if (strlen(settings[i].name) == len && strncasecmp(settings[i].name, name, len) == 0)
            return &settings[i];
    return NULL;
}

static void config_set(session *s, const resp_cmd *c, reply *r)
{
    if (c->argc < 4 || c->argc % 2) {
        reply_error(r, "ERR wrong number of arguments for 'config|set' command");
        return;
    }
    if (!s->admin) {
        reply_error(r, "NOPERM CONFIG SET is allowed from loopback clients only "
                       "(start the server with --enable-remote-admin to allow it)");
        return;
    }
    /* All or nothing, as in Redis: check every pair before applying any. */
    for (size_t i = 2; i < c->argc; i += 2) {
        setting *st = find_setting(ARG(i));
        if (!st || c->len[i + 1] >= sizeof st->value) {
            reply_error(r, "ERR Unknown option or number of arguments for CONFIG SET - '%.*s'",
                        c_len(ARG(i), 128), c->argv[i]);
            return;
        }
        long long v;
        if (st == &settings[6] && (!to_ll(ARG(i + 1), &v) || v < 1)) {
            reply_error(r, "ERR Invalid argument '%.*s' for CONFIG SET 'maxclients'",
                        c_len(ARG(i + 1), 64), c->argv[i + 1]);
            return;
        }
    }
    for (size_t i = 2; i < c->argc; i += 2) {
        setting *st = find_setting(ARG(i));
        memcpy(st->value, c->argv[i + 1], c->len[i + 1]);
        st->value[c->len[i + 1]] = '\0';
        if (st == &settings[6])
            server_info.maxclients = (size_t)strtoull(st->value, NULL, 10);
    }
    reply_literal(r, "+OK\r\n");
}

HANDLER(cmd_config)
{
    if (same_word(ARG(1), "set")) {
        config_set(s, c, r);
        return EVIO_NONE;
    }
    if (same_word(ARG(1), "resetstat") && c->argc == 2) {
        commands_reset_stats();
        server_info.connections = server_info.rejected_conns = 0;
        reply_literal(r, "+OK\r\n");
        return EVIO_NONE;
    }
    if (same_word(ARG(1), "rewrite") && c->argc == 2) {
        reply_error(r, "ERR The server is running without a config file");
        return EVIO_NONE;
    }
    if (!same_word(ARG(1), "get")) {
        reply_error(r, "ERR unknown subcommand '%.*s'. Try CONFIG HELP.", c_len(ARG(1), 128),
                    c->argv[1]);
        return EVIO_NONE;
    }
    if (c->argc < 3) {
        reply_error(r, "ERR wrong number of arguments for 'config|get' command");
        return EVIO_NONE;
    }
    size_t n = 0;
    for (size_t i = 0; i < NSETTINGS; i++)
        n += config_wanted(c, settings[i].name);
    reply_array(r, 2 * n);
    for (size_t i = 0; i < NSETTINGS; i++) {
        if (config_wanted(c, settings[i].name)) {
            reply_bulk(r, settings[i].name, strlen(settings[i].name));
            reply_bulk(r, settings[i].value, strlen(settings[i].value));
        }
    }
    return EVIO_NONE;
}

/* ---------------------------------------------------------------- COMMAND */

static void command_info(reply *r, const command *cmd)
{
    reply_array(r, 10);
    reply_bulk(r, cmd->name, cmd->len);
    reply_integer(r, cmd->arity);
    const char *flags[4];
    size_t nf = 0;
    flags[nf++] = cmd->flags & CMD_WRITE ? "+write" : "+readonly";
    if (cmd->flags & CMD_FAST)
        flags[nf++] = "+fast";
    if (cmd->flags & CMD_ADMIN)
        flags[nf++] = "+admin";
    reply_array(r, nf);
    for (size_t i = 0; i < nf; i++) {
        reply_raw(r, flags[i], strlen(flags[i]));
        reply_literal(r, "\r\n");
    }
    reply_integer(r, cmd->first);
    reply_integer(r, cmd->last);
    reply_integer(r, cmd->step);
    char cat[32];
    int n = snprintf(cat, sizeof cat, "@%s", cmd->group);
    reply_array(r, 1);
    reply_bulk(r, cat, (size_t)n);
    reply_array(r, 0); /* tips */
    reply_array(r, 0); /* key specs */
    reply_array(r, 0); /* subcommands */
}

static void command_docs(reply *r, const command *cmd)
{
    reply_bulk(r, cmd->name, cmd->len);
    reply_array(r, 2);
    reply_bulk(r, "group", 5);
    reply_bulk(r, cmd->group, strlen(cmd->group));
}

HANDLER(cmd_command)
{
    size_t n;
    const command *t = commands_table(&n);
    if (c->argc == 1 || (same_word(ARG(1), "info") && c->argc == 2)) {
        reply_array(r, n);
        for (size_t i = 0; i < n; i++)
            command_info(r, &t[i]);
    } else if (same_word(ARG(1), "count") && c->argc == 2) {
        reply_integer(r, (long long)n);
    } else if (same_word(ARG(1), "info")) {
        reply_array(r, c->argc - 2);
        for (size_t i = 2; i < c->argc; i++) {
            const command *cmd = commands_lookup(ARG(i));
            if (cmd)
                command_info(r, cmd);
            else
                reply_literal(r, "*-1\r\n");
        }
    } else if (same_word(ARG(1), "docs")) {
        size_t found = 0;
        for (size_t i = 2; i < c->argc; i++)
            found += commands_lookup(ARG(i)) != NULL;
        reply_array(r, 2 * (c->argc == 2 ? n : found));
        for (size_t i = 0; c->argc == 2 && i < n; i++)
            command_docs(r, &t[i]);
        for (size_t i = 2; i < c->argc; i++) {
            const command *cmd = commands_lookup(ARG(i));
            if (cmd)
                command_docs(r, cmd);
        }
    } else if (same_word(ARG(1), "list") && c->argc == 2) {
        reply_array(r, n);
        for (size_t i = 0; i < n; i++)
            reply_bulk(r, t[i].name, t[i].len);
    } else {
        static const char *const known[] = {"count", "info", "docs", "list", NULL};
        sub_error(r, c, "command", known);
    }
    return EVIO_NONE;
}

/* ---------------------------------------------------------------- INFO */

enum {
    I_SERVER = 1 << 0, I_CLIENTS = 1 << 1, I_MEMORY = 1 << 2, I_PERSISTENCE = 1 << 3,
    I_STATS = 1 << 4, I_REPLICATION = 1 << 5, I_CPU = 1 << 6, I_MODULES = 1 << 7,
    I_ERRORSTATS = 1 << 8, I_CLUSTER = 1 << 9, I_KEYSPACE = 1 << 10,
    I_COMMANDSTATS = 1 << 11,
    I_DEFAULT = I_SERVER | I_CLIENTS | I_MEMORY | I_PERSISTENCE | I_STATS | I_REPLICATION |
                I_CPU | I_MODULES | I_ERRORSTATS | I_CLUSTER | I_KEYSPACE,
    I_ALL = I_DEFAULT | I_COMMANDSTATS,
};

static const struct {
    const char *name;
    unsigned bits;
} sections[] = {
    {"server", I_SERVER}, {"clients", I_CLIENTS}, {"memory", I_MEMORY},
    {"persistence", I_PERSISTENCE}, {"stats", I_STATS}, {"replication", I_REPLICATION},
    {"cpu", I_CPU}, {"modules", I_MODULES}, {"errorstats", I_ERRORSTATS},
    {"cluster", I_CLUSTER}, {"keyspace", I_KEYSPACE}, {"commandstats", I_COMMANDSTATS},
    {"default", I_DEFAULT}, {"all", I_ALL}, {"everything", I_ALL},
};

static size_t rss_bytes(void)
{
    long pages = 0, rss = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &rss) != 2)
            rss = 0;
        fclose(f);
    }
    return (size_t)rss * (size_t)sysconf(_SC_PAGESIZE);
}

static size_t heap_bytes(void)
{
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd;
#else
    return rss_bytes();
#endif
}

static void human(char *buf, size_t size, size_t n)
{
    if (n < 1024)
        snprintf(buf, size, "%zuB", n);
    else if (n < 1024 * 1024)
        snprintf(buf, size, "%.2fK", n / 1024.0);
    else if (n < 1024u * 1024 * 1024)
        snprintf(buf, size, "%.2fM", n / 1048576.0);
    else
        snprintf(buf, size, "%.2fG", n / 1073741824.0);
}

HANDLER(cmd_info)
{
    unsigned want = 0;
    for (size_t i = 1; i < c->argc; i++)
        for (size_t k = 0; k < sizeof sections / sizeof sections[0]; k++)
            if (same_word(ARG(i), sections[k].name))
                want |= sections[k].bits;
    if (c->argc == 1)
        want = I_DEFAULT;
    text t = {0};
    int64_t now = db_now_ms();
    if (want & I_SERVER) {
        add(&t, "# Server\r\nredis_version:7.0.15\r\nredis_git_sha1:00000000\r\n"
                "redis_git_dirty:0\r\nredis_mode:standalone\r\nos:evio example\r\n"
                "arch_bits:%d\r\nmultiplexing_api:evio-%s\r\nprocess_id:%ld\r\n"
                "run_id:%040llx\r\ntcp_port:%ld\r\nserver_time_usec:%lld\r\n"
                "uptime_in_seconds:%lld\r\nuptime_in_days:%lld\r\nhz:10\r\n"
                "executable:%s\r\nconfig_file:\r\n",
            (int)sizeof(void *) * 8, evio_backend_name(), (long)getpid(),
            (unsigned long long)server_info.start_ms, server_info.port, (long long)now * 1000,
            (long long)(now - server_info.start_ms) / 1000,
            (long long)(now - server_info.start_ms) / 86400000, server_info.executable);
    }
    if (want & I_CLIENTS)
        add(&t, "%s# Clients\r\nconnected_clients:%zu\r\nmaxclients:%zu\r\nblocked_clients:0\r\n"
                "tracking_clients:0\r\n",
            t.len ? "\r\n" : "", server_info.clients, server_info.maxclients);
    if (want & I_MEMORY) {
        size_t used = heap_bytes(), rss = rss_bytes();
        char h[32], hr[32];
        human(h, sizeof h, used);
        human(hr, sizeof hr, rss);
        add(&t, "%s# Memory\r\nused_memory:%zu\r\nused_memory_human:%s\r\nused_memory_rss:%zu\r\n"
                "used_memory_rss_human:%s\r\nmaxmemory:0\r\nmaxmemory_human:0B\r\n"
                "maxmemory_policy:noeviction\r\nmem_allocator:libc\r\n",
            t.len ? "\r\n" : "", used, h, rss, hr);
    }
    if (want & I_PERSISTENCE)
        add(&t, "%s# Persistence\r\nloading:0\r\nasync_loading:0\r\nrdb_changes_since_last_save:0\r\n"
                "rdb_bgsave_in_progress:0\r\nrdb_last_save_time:%lld\r\naof_enabled:0\r\n"
                "aof_rewrite_in_progress:0\r\naof_rewrite_scheduled:0\r\n",
            t.len ? "\r\n" : "", (long long)server_info.start_ms / 1000);
    if (want & I_STATS)
        add(&t, "%s# Stats\r\ntotal_connections_received:%llu\r\ntotal_commands_processed:%llu\r\n"
                "rejected_connections:%llu\r\nexpired_keys:%llu\r\nevicted_keys:0\r\n",
            t.len ? "\r\n" : "", server_info.connections, commands_total(),
            server_info.rejected_conns, db_expired_total(d));
    if (want & I_REPLICATION)
        add(&t, "%s# Replication\r\nrole:master\r\nconnected_slaves:0\r\nmaster_failover_state:no-failover\r\n"
                "master_replid:%040llx\r\nmaster_repl_offset:0\r\nrepl_backlog_active:0\r\n",
            t.len ? "\r\n" : "", (unsigned long long)server_info.start_ms);
    if (want & I_CPU) {
        struct rusage self, kids;
        getrusage(RUSAGE_SELF, &self);
        getrusage(RUSAGE_CHILDREN, &kids);
        add(&t, "%s# CPU\r\nused_cpu_sys:%ld.%06ld\r\nused_cpu_user:%ld.%06ld\r\n"
                "used_cpu_sys_children:%ld.%06ld\r\nused_cpu_user_children:%ld.%06ld\r\n",
            t.len ? "\r\n" : "", (long)self.ru_stime.tv_sec, (long)self.ru_stime.tv_usec,
            (long)self.ru_utime.tv_sec, (long)self.ru_utime.tv_usec, (long)kids.ru_stime.tv_sec,
            (long)kids.ru_stime.tv_usec, (long)kids.ru_utime.tv_sec, (long)kids.ru_utime.tv_usec);
    }
    if (want & I_MODULES)
        add(&t, "%s# Modules\r\n", t.len ? "\r\n" : "");
    if (want & I_ERRORSTATS)
        add(&t, "%s# Errorstats\r\n", t.len ? "\r\n" : "");
    if (want & I_CLUSTER)
        add(&t, "%s# Cluster\r\ncluster_enabled:0\r\n", t.len ? "\r\n" : "");
    if (want & I_KEYSPACE) {
        add(&t, "%s# Keyspace\r\n", t.len ? "\r\n" : "");
        if (db_size(d))
            add(&t, "db0:keys=%zu,expires=%zu,avg_ttl=0\r\n", db_size(d), db_expires(d));
    }
    if (want & I_COMMANDSTATS) {
        add(&t, "%s# Commandstats\r\n", t.len ? "\r\n" : "");
        size_t n;
        const command *tab = commands_table(&n);
        for (size_t i = 0; i < n; i++)
            if (commands_calls(&tab[i]))
                add(&t, "cmdstat_%s:calls=%llu,usec=0,usec_per_call=0.00,rejected_calls=0,"
                        "failed_calls=0\r\n",
                    tab[i].name, commands_calls(&tab[i]));
    }
    reply_text(r, &t);
    return EVIO_NONE;
}
