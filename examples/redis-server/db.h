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
    char data[];           /* klen bytes of key, then vcap bytes for the value */
} db_entry;

static inline const char *db_key(const db_entry *e) { return e->data; }
static inline const char *db_value(const db_entry *e) { return e->data + e->klen; }

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

/* Replace e's value by the decimal form of v, keeping its expiry; e stays
 * valid.  Never allocates: every entry has room for any 64-bit integer. */
void db_set_integer(db_entry *e, long long v);

/* Delete key; returns whether it existed. */
bool db_del(db *d, const char *key, size_t klen);

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
