/* db.h — the keyspace: binary-safe keys to byte-string values, with expiry.
 *
 * A chained hash table that grows and shrinks by INCREMENTAL rehashing, as
 * Redis's dict does: a resize allocates the new bucket array and then every
 * operation (and the periodic db_cron) moves a few buckets across, so no
 * single command ever pays for moving the whole table.  FLUSHDB of a big
 * table hands the entries to db_cron too, to be freed a slice at a time.
 *
 * Expiry is absolute Unix time in milliseconds, as in Redis.  A key past its
 * time is deleted when it is next looked up (lazy) and by db_cron, which
 * sweeps a few buckets per call (active), so keys nobody reads again still
 * go away.
 *
 * Single-threaded: all calls from one thread (the event loop's). */
#ifndef DB_H
#define DB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One key and its value.  Read-only outside db.c; valid until the next
 * call that may modify the db. */
typedef struct db_entry {
    struct db_entry *next; /* bucket chain */
    int64_t expire;        /* Unix ms; 0 = never */
    uint32_t hash;         /* low bits of the key's hash */
    uint32_t klen;
    size_t vlen, vcap;
    uint8_t type;          /* DB_STRING, or types.c's packed list or set */
    char data[];           /* klen bytes of key, then vcap bytes for the value */
} db_entry;

static inline const char *db_key(const db_entry *e) { return e->data; }
static inline const char *db_value(const db_entry *e) { return e->data + e->klen; }

enum { DB_STRING = 0, DB_LIST, DB_SET };

typedef struct db db;

/* A new empty keyspace, or NULL without memory. */
db *db_new(void);
void db_free(db *d);

/* The live entry for key, or NULL.  An expired entry found on the way is
 * deleted. */
db_entry *db_find(db *d, const char *key, size_t klen);

enum {
    DB_NX = 1,      /* only if the key does not exist */
    DB_XX = 2,      /* only if it does */
    DB_KEEPTTL = 4, /* an existing key keeps its expiry (expire is ignored) */
};

/* Set key to val with expiry expire (Unix ms, 0 = none).  Returns 1 if set,
 * 0 if NX/XX forbade it, -1 without memory (the db is unchanged then). */
int db_set(db *d, const char *key, size_t klen, const char *val, size_t vlen, int64_t expire,
           unsigned flags);

/* Make e hold another type (db_set always stores a string). */
static inline void db_set_type(db_entry *e, int type) { e->type = (uint8_t)type; }

/* Replace e's value by the decimal form of v, keeping its expiry; e stays
 * valid.  Never allocates: every entry has room for any 64-bit integer. */
void db_set_integer(db *d, db_entry *e, long long v);

/* Make *e's value vlen bytes long, keeping its first bytes (new bytes are
 * zero), and return the value to write into.  *e may move.  NULL without
 * memory (nothing changed then). */
char *db_edit(db *d, db_entry **e, size_t vlen);

/* Set or clear (0) e's expiry, Unix ms. */
void db_set_expire(db *d, db_entry *e, int64_t expire);

/* A random live key, or NULL if there is none. */
db_entry *db_random(db *d);

/* One step of a SCAN: call fn for the live keys of the buckets the cursor
 * names until about count were seen, and return the next cursor (0: the
 * scan is complete).  Keys present from the first call to the last are
 * seen at least once, even across resizes (the cursor counts in reversed
 * bit order, so growing or shrinking tables keep its meaning). */
size_t db_scan_step(db *d, size_t cursor, size_t count,
                    void (*fn)(void *arg, const db_entry *e), void *arg);

/* Keys with an expiry; keys deleted because they expired, since start. */
size_t db_expires(const db *d);
unsigned long long db_expired_total(const db *d);

/* Who is told of every change to a key (WATCH): fn(arg, key, klen) after
 * each set, delete, edit or expiry change, and fn(arg, NULL, 0) after a
 * flush.  Expiry itself is not a change, as in Redis 7.0. */
void db_on_change(db *d, void (*fn)(void *arg, const char *key, size_t klen), void *arg);

/* Delete key; returns whether it existed. */
bool db_del(db *d, const char *key, size_t klen);

/* Delete the entry e (from db_find) at once. */
void db_del_entry(db *d, db_entry *e);

/* Keys stored, including expired ones not deleted yet (as Redis's DBSIZE). */
size_t db_size(const db *d);

/* Delete every key.  Large tables are freed in the background by db_cron. */
void db_flush(db *d);

/* Call fn for every key that is live at time now (Unix ms), until fn
 * returns false.  fn must not modify the db; two scans with the same now
 * see the same keys.  Takes time proportional to the table: KEYS is O(N)
 * in Redis too. */
void db_scan(db *d, int64_t now, bool (*fn)(void *arg, const db_entry *e), void *arg);

/* Periodic housekeeping, at most about budget_ns of it: move buckets of a
 * resize in progress, start a shrink if the table became sparse, delete
 * expired keys, free what FLUSHDB left.  Returns true if work is left that
 * should not wait long (call again soon). */
bool db_cron(db *d, int64_t budget_ns);

/* The current Unix time in milliseconds. */
int64_t db_now_ms(void);

#endif /* DB_H */
