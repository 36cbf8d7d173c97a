/* commands.h — the command table and what the handlers share.
 *
 * A command runs with the keyspace lock held (see main.c), so handlers may
 * touch the keyspace, the session registry and the server's counters
 * freely.  The handlers live in one file per topic:
 *   commands.c  dispatch, MULTI queueing, helpers, glob matching
 *   strings.c   string values: GET, SET, INCR..., APPEND, SETRANGE, LCS...
 *   keys.c      the keyspace: DEL, SCAN, RENAME, COPY, EXPIRE, TTL...
 *   types.c     just enough of lists and sets for WRONGTYPE and the tests
 *   multi.c     MULTI, EXEC, DISCARD, WATCH, UNWATCH
 *   server.c    connection and server commands: PING, HELLO, CLIENT,
 *               INFO, CONFIG, COMMAND, SHUTDOWN...; the session registry */
#ifndef COMMANDS_H
#define COMMANDS_H

#include <stdbool.h>
#include <stdint.h>

#include <evio.h>

#include "db.h"
#include "reply.h"
#include "resp.h"

#if defined(__GNUC__) || defined(__clang__)
#define UNUSED __attribute__((unused))
#else
#define UNUSED
#endif

typedef struct queued_cmd queued_cmd;

/* What the server knows about one connection. */
typedef struct session {
    uint64_t id;
    evio_conn *conn;
    bool admin;        /* may SHUTDOWN, CONFIG SET, CLIENT KILL others */
    bool closing;      /* CLIENT KILL of itself: close after this event */
    bool multi;        /* between MULTI and EXEC/DISCARD */
    bool multi_failed; /* a command was refused while queueing: EXEC aborts */
    bool dirty;        /* a watched key changed: EXEC fails */
    size_t nqueued, qcap;
    queued_cmd **queue;
    size_t nwatched;   /* keys in multi.c's registry for this session */
    char *name;        /* CLIENT SETNAME; NULL for none */
    char *lib_name, *lib_ver; /* CLIENT SETINFO */
    char addr[64], laddr[64]; /* "ip:port" as CLIENT LIST shows them */
    int64_t since_ms, last_ms;
    const char *last_cmd;
    struct session *prev, *next; /* the registry (server.c) */
} session;

/* Server-wide settings and counters (server.c). */
typedef struct server_state {
    evio_server *srv;
    int64_t start_ms;
    unsigned long long connections, rejected_conns;
    size_t clients, maxclients;
    size_t output_limit;  /* bytes; 0: none (client-output-buffer-limit) */
    bool remote_admin;
    long port;
    const char *executable;
} server_state;

extern server_state server_info;

typedef evio_action handler(db *d, session *s, const resp_cmd *c, reply *r);

#define HANDLER(fn) \
    evio_action fn(db *d UNUSED, session *s UNUSED, const resp_cmd *c UNUSED, reply *r UNUSED)

/* Command flags. */
enum {
    CMD_WRITE = 1,   /* changes the keyspace */
    CMD_ADMIN = 2,   /* loopback clients only, unless --enable-remote-admin */
    CMD_NOMULTI = 4, /* runs at once even inside MULTI */
    CMD_FAST = 8,
};

typedef struct command {
    const char *name; /* lower case letters only (see same_word) */
    size_t len;
    int arity;        /* N: exactly N words; -N: at least N */
    handler *fn;
    unsigned flags;
    int first, last, step; /* key positions, as COMMAND INFO reports them */
    const char *group;
} command;

/* Execute one command (argc >= 1) for session s, answering into r.
 * Returns EVIO_CLOSE after QUIT, EVIO_SHUTDOWN after SHUTDOWN, else
 * EVIO_NONE; errors are replies, not actions, as in Redis. */
evio_action commands_exec(db *d, session *s, const resp_cmd *cmd, reply *r);

/* Run a command found by lookup, with arity already checked (EXEC). */
evio_action commands_call(db *d, session *s, const command *cmd, const resp_cmd *c, reply *r);

const command *commands_lookup(const char *name, size_t len);
const command *commands_table(size_t *n);
unsigned long long commands_calls(const command *cmd);
unsigned long long commands_total(void); /* commands run since start or CONFIG RESETSTAT */
void commands_reset_stats(void);

/* ---------------------------------------------------------------- helpers */

#define ARG(i) c->argv[i], c->len[i]

/* Does s[0, n) spell word (lower case), ignoring case? */
bool same_word(const char *s, size_t n, const char *word);

/* A 64-bit integer exactly as Redis's string2ll accepts it. */
bool to_ll(const char *s, size_t n, long long *out);

/* How printf's %s would see an argument: up to its first NUL, at most max. */
int c_len(const char *s, size_t n, size_t max);

/* The live entry for key if it is a string; else NULL, with *wrong set
 * when the key holds another type (then WRONGTYPE has been replied). */
db_entry *find_string(db *d, const char *key, size_t klen, reply *r, bool *wrong);

extern const char not_integer[];
extern const char wrongtype[];
extern const char syntax_error[];

/* Glob-style matching as Redis's KEYS and CONFIG GET do it: * ? [abc]
 * [^a-z] and \ to escape. */
int glob_match(const char *pat, size_t plen, const char *s, size_t slen, int nocase);

/* ---------------------------------------------------------------- sessions */

/* server.c: join and leave the registry; the counts INFO reports. */
void session_register(session *s);
void session_unregister(session *s);

/* server.c: fill in the settings CONFIG GET reports from server_info. */
void config_init(void);

/* multi.c: forget a session's queue and watched keys. */
void multi_reset(db *d, session *s);
/* Queue a command during MULTI (replies +QUEUED). */
void multi_queue(session *s, const command *cmd, const resp_cmd *c, reply *r);

#endif /* COMMANDS_H */
