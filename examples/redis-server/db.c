/* db.c — the keyspace (see db.h).
 *
 * Two tables, as in Redis's dict: t[0] holds everything while no resize is
 * under way; during one, t[1] is the new table, new keys go there, and
 * rehash_step() moves buckets t[0][rehashidx...] over until t[0] is empty.
 * Lookups try both.  Keys are hashed with SipHash-1-2 under a random key,
 * so clients cannot aim keys at one bucket.
 *
 * Entries are one allocation each: the header, the key and room for the
 * value.  The room is at least enough for any 64-bit integer, so INCR
 * rewrites its value in place. */
#define _POSIX_C_SOURCE 200809L

#include "db.h"

#include <fcntl.h>
#include <stdlib.h>
#ifdef __GLIBC__
#include <malloc.h> /* malloc_trim */
#endif
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MIN_BUCKETS 16u
#define MIN_VALUE_ROOM 24u        /* "-9223372036854775808" is 20 bytes */
#define FREE_NOW_BELOW 65536u     /* FLUSHDB frees smaller tables at once */
#define EXPIRE_SAMPLE 20u         /* keys with a TTL examined per sweep round */
#define EXPIRE_BUCKETS 400u       /* buckets visited per sweep round at most */

typedef struct table {
    db_entry **b;
    size_t size, mask, used; /* size is 0 or a power of two */
} table;

/* Entries left by FLUSHDB, freed by db_cron a slice at a time. */
typedef struct trash {
    struct trash *next;
    db_entry **b;
    size_t size, at;
} trash;

struct db {
    table t[2];
    long rehashidx;        /* -1 when no resize is under way */
    size_t volatile_keys;  /* entries with an expiry */
    size_t expire_cursor;  /* the active-expiry sweep's next bucket */
    trash *trash;
    uint8_t seed[16];
    unsigned long long expired;  /* keys deleted for having expired */
    uint64_t rng;                /* RANDOMKEY's xorshift state */
    size_t freed;                /* entries freed since the last trim */
    void (*changed)(void *arg, const char *key, size_t klen);
    void *changed_arg;
};

/* After this many entries are freed, give the free pages back to the
 * system: glibc keeps freed small blocks in its heap otherwise, and a
 * FLUSHDB of a million keys would leave the process its peak size. */
#define TRIM_AFTER 65536u

static inline void changed(db *d, const char *key, size_t klen)
{
    if (d->changed)
        d->changed(d->changed_arg, key, klen);
}

void db_on_change(db *d, void (*fn)(void *arg, const char *key, size_t klen), void *arg)
{
    d->changed = fn;
    d->changed_arg = arg;
}

/* ---------------------------------------------------------------- time */

int64_t db_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ---------------------------------------------------------------- hashing */

/* SipHash-1-2 (Aumasson and Bernstein), the variant Redis uses. */
static uint64_t rotl(uint64_t x, int b)
{
    return (x << b) | (x >> (64 - b));
}

static uint64_t load64(const uint8_t *p)
{
    return (uint64_t)p[0] | (uint64_t)p[1] << 8 | (uint64_t)p[2] << 16 | (uint64_t)p[3] << 24 |
           (uint64_t)p[4] << 32 | (uint64_t)p[5] << 40 | (uint64_t)p[6] << 48 | (uint64_t)p[7] << 56;
}

#define SIPROUND                                                                                   \
    do {                                                                                           \
        v0 += v1; v1 = rotl(v1, 13); v1 ^= v0; v0 = rotl(v0, 32);                                  \
        v2 += v3; v3 = rotl(v3, 16); v3 ^= v2;                                                     \
        v0 += v3; v3 = rotl(v3, 21); v3 ^= v0;                                                     \
        v2 += v1; v1 = rotl(v1, 17); v1 ^= v2; v2 = rotl(v2, 32);                                  \
    } while (0)

static uint64_t siphash12(const uint8_t *in, size_t n, const uint8_t key[16])
{
    uint64_t k0 = load64(key), k1 = load64(key + 8);
    uint64_t v0 = 0x736f6d6570736575ULL ^ k0, v1 = 0x646f72616e646f6dULL ^ k1;
    uint64_t v2 = 0x6c7967656e657261ULL ^ k0, v3 = 0x7465646279746573ULL ^ k1;
    const uint8_t *end = in + (n & ~(size_t)7);
    for (; in != end; in += 8) {
        uint64_t m = load64(in);
        v3 ^= m;
        SIPROUND;
        v0 ^= m;
    }
    uint64_t b = (uint64_t)n << 56;
    switch (n & 7) {
    case 7: b |= (uint64_t)in[6] << 48; /* fall through */
    case 6: b |= (uint64_t)in[5] << 40; /* fall through */
    case 5: b |= (uint64_t)in[4] << 32; /* fall through */
    case 4: b |= (uint64_t)in[3] << 24; /* fall through */
    case 3: b |= (uint64_t)in[2] << 16; /* fall through */
    case 2: b |= (uint64_t)in[1] << 8;  /* fall through */
    case 1: b |= (uint64_t)in[0];       /* fall through */
    case 0: break;
    }
    v3 ^= b;
    SIPROUND;
    v0 ^= b;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

static uint32_t hash_key(const db *d, const char *key, size_t klen)
{
    return (uint32_t)siphash12((const uint8_t *)key, klen, d->seed);
}

static void seed(uint8_t out[16])
{
    int fd = open("/dev/urandom", O_RDONLY);
    ssize_t n = fd >= 0 ? read(fd, out, 16) : -1;
    if (fd >= 0)
        close(fd);
    if (n != 16) { /* no /dev/urandom: weaker, but still differs per run */
        uint64_t a = (uint64_t)mono_ns() ^ (uint64_t)db_now_ms() << 20;
        uint64_t b = (uint64_t)getpid() * 0x9e3779b97f4a7c15ULL ^ (uint64_t)(uintptr_t)out;
        memcpy(out, &a, 8);
        memcpy(out + 8, &b, 8);
    }
}

/* ---------------------------------------------------------------- tables */

static bool rehashing(const db *d)
{
    return d->rehashidx >= 0;
}

static size_t next_pow2(size_t n)
{
    size_t s = MIN_BUCKETS;
    while (s < n && s <= SIZE_MAX / 2)
        s *= 2;
    return s;
}

/* Start moving to a table of about n buckets.  False without memory. */
static bool resize(db *d, size_t n)
{
    size_t size = next_pow2(n);
    if (size == d->t[0].size)
        return true;
    db_entry **b = calloc(size, sizeof *b);
    if (!b)
        return false;
    table t = {.b = b, .size = size, .mask = size - 1};
    if (!d->t[0].b) {
        d->t[0] = t; /* the first table: nothing to move */
        return true;
    }
    d->t[1] = t;
    d->rehashidx = 0;
    return true;
}

/* Move up to n buckets from t[0] to t[1], looking at no more than 10n
 * empty ones (a sparse table must not make one step slow). */
static void rehash_step(db *d, int n)
{
    int empty = n * 10;
    table *from = &d->t[0], *to = &d->t[1];
    while (n-- > 0 && from->used) {
        while (!from->b[d->rehashidx]) {
            d->rehashidx++;
            if (--empty == 0)
                return;
        }
        db_entry *e = from->b[d->rehashidx];
        while (e) {
            db_entry *next = e->next;
            size_t h = e->hash & to->mask;
            e->next = to->b[h];
            to->b[h] = e;
            from->used--;
            to->used++;
            e = next;
        }
        from->b[d->rehashidx++] = NULL;
    }
    if (from->used == 0) {
        free(from->b);
        *from = *to;
        *to = (table){0};
        d->rehashidx = -1;
    }
}

/* The link that points at key's entry (or the NULL at the end of the chain
 * key belongs in, in the newest table).  *tp receives the entry's table. */
static db_entry **find_link(db *d, const char *key, size_t klen, uint32_t h, table **tp)
{
    for (int i = 0; i <= (rehashing(d) ? 1 : 0); i++) {
        table *t = &d->t[i];
        if (!t->size)
            continue;
        for (db_entry **l = &t->b[h & t->mask]; *l; l = &(*l)->next) {
            db_entry *e = *l;
            if (e->hash == h && e->klen == klen && memcmp(e->data, key, klen) == 0) {
                *tp = t;
                return l;
            }
        }
    }
    return NULL;
}

static void unlink_entry(db *d, table *t, db_entry **link)
{
    db_entry *e = *link;
    *link = e->next;
    t->used--;
    if (e->expire)
        d->volatile_keys--;
    free(e);
    d->freed++;
}

/* Delete an entry found past its time. */
static void expire_entry(db *d, table *t, db_entry **link)
{
    unlink_entry(d, t, link);
    d->expired++;
}

static bool expired(const db_entry *e)
{
    return e->expire && e->expire <= db_now_ms();
}

/* ---------------------------------------------------------------- public */

db *db_new(void)
{
    db *d = calloc(1, sizeof *d);
    if (!d)
        return NULL;
    d->rehashidx = -1;
    seed(d->seed);
    memcpy(&d->rng, d->seed, sizeof d->rng);
    d->rng |= 1; /* xorshift must not start at 0 */
    return d;
}

static void free_buckets(db_entry **b, size_t size)
{
    for (size_t i = 0; i < size; i++) {
        for (db_entry *e = b[i], *next; e; e = next) {
            next = e->next;
            free(e);
        }
    }
    free(b);
}

void db_free(db *d)
{
    if (!d)
        return;
    for (int i = 0; i < 2; i++)
        free_buckets(d->t[i].b, d->t[i].size);
    for (trash *t = d->trash, *next; t; t = next) {
        next = t->next;
        free_buckets(t->b, t->size);
        free(t);
    }
    free(d);
}

db_entry *db_find(db *d, const char *key, size_t klen)
{
    if (rehashing(d))
        rehash_step(d, 1);
    table *t;
    db_entry **l = find_link(d, key, klen, hash_key(d, key, klen), &t);
    if (!l)
        return NULL;
    if (expired(*l)) {
        expire_entry(d, t, l);
        return NULL;
    }
    return *l;
}

static size_t value_room(size_t vlen)
{
    size_t room = vlen < MIN_VALUE_ROOM ? MIN_VALUE_ROOM : vlen;
    return (room + 7) & ~(size_t)7;
}

static void set_expiry(db *d, db_entry *e, int64_t expire)
{
    if (e->expire && !expire)
        d->volatile_keys--;
    else if (!e->expire && expire)
        d->volatile_keys++;
    e->expire = expire;
}

int db_set(db *d, const char *key, size_t klen, const char *val, size_t vlen, int64_t expire,
           unsigned flags)
{
    if (klen > UINT32_MAX || vlen > SIZE_MAX - sizeof(db_entry) - klen - 8)
        return -1;
    if (rehashing(d))
        rehash_step(d, 1);
    uint32_t h = hash_key(d, key, klen);
    table *t;
    db_entry **l = find_link(d, key, klen, h, &t);
    if (l && expired(*l)) {
        expire_entry(d, t, l);
        l = NULL;
    }
    if (l ? (flags & DB_NX) : (flags & DB_XX))
        return 0;

    if (l) { /* overwrite; reallocate only to grow, or to give back a lot */
        db_entry *e = *l;
        size_t room = value_room(vlen);
        if (vlen > e->vcap || (e->vcap > 2 * room && e->vcap - room > 256)) {
            db_entry *n = realloc(e, sizeof *e + klen + room);
            if (!n)
                return -1;
            e = *l = n;
            e->vcap = room;
        }
        memcpy(e->data + klen, val, vlen);
        e->vlen = vlen;
        e->type = DB_STRING;
        if (!(flags & DB_KEEPTTL))
            set_expiry(d, e, expire);
        changed(d, key, klen);
        return 1;
    }

    if (!d->t[0].b && !resize(d, MIN_BUCKETS))
        return -1;
    if (!rehashing(d) && d->t[0].used >= d->t[0].size)
        resize(d, d->t[0].used * 2); /* without memory, chains just get longer */
    size_t room = value_room(vlen);
    db_entry *e = malloc(sizeof *e + klen + room);
    if (!e)
        return -1;
    e->expire = 0;
    e->type = DB_STRING;
    set_expiry(d, e, expire);
    e->hash = h;
    e->klen = (uint32_t)klen;
    e->vlen = vlen;
    e->vcap = room;
    memcpy(e->data, key, klen);
    memcpy(e->data + klen, val, vlen);
    table *into = &d->t[rehashing(d) ? 1 : 0];
    db_entry **head = &into->b[h & into->mask];
    e->next = *head;
    *head = e;
    into->used++;
    changed(d, key, klen);
    return 1;
}

void db_set_integer(db *d, db_entry *e, long long v)
{
    char tmp[24], *p = tmp + sizeof tmp;
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    do
        *--p = (char)('0' + u % 10);
    while (u /= 10);
    if (v < 0)
        *--p = '-';
    e->vlen = (size_t)(tmp + sizeof tmp - p);
    memcpy(e->data + e->klen, p, e->vlen);
    changed(d, e->data, e->klen);
}

void db_set_expire(db *d, db_entry *e, int64_t expire)
{
    set_expiry(d, e, expire);
    changed(d, e->data, e->klen);
}

char *db_edit(db *d, db_entry **ep, size_t vlen)
{
    db_entry *e = *ep;
    if (vlen > e->vcap) {
        if (vlen > SIZE_MAX / 2 - sizeof *e - e->klen)
            return NULL;
        /* Double, so that a value built by many APPENDs costs linear time. */
        size_t room = value_room(vlen > e->vcap * 2 ? vlen : e->vcap * 2);
        table *t;
        db_entry **l = find_link(d, e->data, e->klen, e->hash, &t);
        db_entry *n = realloc(e, sizeof *e + e->klen + room);
        if (!n) {
            room = value_room(vlen);
            n = realloc(e, sizeof *e + e->klen + room);
            if (!n)
                return NULL;
        }
        *l = e = *ep = n;
        e->vcap = room;
    }
    if (vlen > e->vlen)
        memset(e->data + e->klen + e->vlen, 0, vlen - e->vlen);
    e->vlen = vlen;
    changed(d, e->data, e->klen);
    return e->data + e->klen;
}

bool db_del(db *d, const char *key, size_t klen)
{
    if (rehashing(d))
        rehash_step(d, 1);
    table *t;
    db_entry **l = find_link(d, key, klen, hash_key(d, key, klen), &t);
    if (!l)
        return false;
    bool live = !expired(*l);
    if (live) {
        unlink_entry(d, t, l);
        changed(d, key, klen);
    } else {
        expire_entry(d, t, l);
    }
    return live;
}

void db_del_entry(db *d, db_entry *e)
{
    table *t;
    db_entry **l = find_link(d, e->data, e->klen, e->hash, &t);
    changed(d, e->data, e->klen); /* before the key's bytes are freed */
    unlink_entry(d, t, l);
}

size_t db_expires(const db *d)
{
    return d->volatile_keys;
}

unsigned long long db_expired_total(const db *d)
{
    return d->expired;
}

static size_t rnd(db *d, size_t n)
{
    uint64_t x = d->rng;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    d->rng = x;
    return (size_t)(x % n);
}

db_entry *db_random(db *d)
{
    if (rehashing(d))
        rehash_step(d, 1);
    /* Random buckets until one has a live key; an emptied or expired
     * table must not make this loop forever, so it gives up eventually. */
    for (int tries = 0; tries < 10000 && db_size(d); tries++) {
        size_t total = d->t[0].size + d->t[1].size;
        size_t c = rnd(d, total);
        table *t = c < d->t[0].size ? &d->t[0] : &d->t[1];
        size_t b = c < d->t[0].size ? c : c - d->t[0].size;
        size_t n = 0;
        for (db_entry *e = t->b[b]; e; e = e->next)
            n++;
        if (!n)
            continue;
        db_entry **l = &t->b[b];
        for (size_t k = rnd(d, n); k--;)
            l = &(*l)->next;
        if (!expired(*l))
            return *l;
        expire_entry(d, t, l);
    }
    return NULL;
}

static size_t rev(size_t v)
{
    size_t r = 0;
    for (size_t i = 0; i < sizeof v * 8; i++, v >>= 1)
        r = (r << 1) | (v & 1);
    return r;
}

/* The cursor's next value under mask m: add one to its bits above m's,
 * counting from the top bit down. */
static size_t next_cursor(size_t v, size_t m)
{
    v |= ~m;
    return rev(rev(v) + 1);
}

static size_t emit(const table *t, size_t b, int64_t now,
                   void (*fn)(void *arg, const db_entry *e), void *arg)
{
    size_t n = 0;
    for (const db_entry *e = t->b[b]; e; e = e->next, n++)
        if (!e->expire || e->expire > now)
            fn(arg, e);
    return n;
}

size_t db_scan_step(db *d, size_t v, size_t count,
                    void (*fn)(void *arg, const db_entry *e), void *arg)
{
    int64_t now = db_now_ms();
    size_t seen = 0;
    for (size_t iter = 0; seen < count && iter < count * 10; iter++) {
        if (!rehashing(d)) {
            const table *t = &d->t[0];
            if (!t->size)
                return 0;
            seen += emit(t, v & t->mask, now, fn, arg);
            v = next_cursor(v, t->mask);
        } else {
            const table *s = &d->t[0], *l = &d->t[1];
            if (s->size > l->size) {
                const table *tmp = s;
                s = l;
                l = tmp;
            }
            seen += emit(s, v & s->mask, now, fn, arg);
            /* Every bucket of the larger table that the smaller one's
             * bucket expands to. */
            do {
                seen += emit(l, v & l->mask, now, fn, arg);
                v = next_cursor(v, l->mask);
            } while (v & (s->mask ^ l->mask));
        }
        if (v == 0)
            break;
    }
    return v;
}

size_t db_size(const db *d)
{
    return d->t[0].used + d->t[1].used;
}

void db_flush(db *d)
{
    for (int i = 0; i < 2; i++) {
        table *t = &d->t[i];
        trash *tr = t->used >= FREE_NOW_BELOW ? malloc(sizeof *tr) : NULL;
        if (tr) {
            *tr = (trash){.next = d->trash, .b = t->b, .size = t->size};
            d->trash = tr;
        } else {
            free_buckets(t->b, t->size);
            d->freed += t->used;
        }
        *t = (table){0};
    }
    d->rehashidx = -1;
    d->volatile_keys = 0;
    d->expire_cursor = 0;
    changed(d, NULL, 0);
}

void db_scan(db *d, int64_t now, bool (*fn)(void *arg, const db_entry *e), void *arg)
{
    for (int i = 0; i < 2; i++) {
        const table *t = &d->t[i];
        for (size_t j = 0; j < t->size; j++)
            for (const db_entry *e = t->b[j]; e; e = e->next)
                if ((!e->expire || e->expire > now) && !fn(arg, e))
                    return;
    }
}

/* ---------------------------------------------------------------- cron */

/* Free up to about n entries of what FLUSHDB left; returns entries freed. */
static size_t empty_trash(db *d, size_t n)
{
    size_t freed = 0;
    while (d->trash && freed < n) {
        trash *t = d->trash;
        while (t->at < t->size && freed < n) {
            for (db_entry *e = t->b[t->at], *next; e; e = next) {
                next = e->next;
                free(e);
                freed++;
                d->freed++;
            }
            t->at++;
        }
        if (t->at == t->size) {
            d->trash = t->next;
            free(t->b);
            free(t);
        }
    }
    return freed;
}

/* One round of active expiry: walk buckets from the cursor until
 * EXPIRE_SAMPLE keys with a TTL were seen; returns how many of them had
 * expired (and are gone) through *gone. */
static size_t expire_round(db *d, int64_t now, size_t *gone)
{
    size_t seen = 0, total = d->t[0].size + d->t[1].size;
    *gone = 0;
    for (size_t visited = 0; visited < EXPIRE_BUCKETS && seen < EXPIRE_SAMPLE; visited++) {
        if (d->expire_cursor >= total)
            d->expire_cursor = 0;
        size_t c = d->expire_cursor++;
        table *t = c < d->t[0].size ? &d->t[0] : &d->t[1];
        db_entry **l = &t->b[c < d->t[0].size ? c : c - d->t[0].size];
        while (*l) {
            db_entry *e = *l;
            if (!e->expire) {
                l = &e->next;
                continue;
            }
            seen++;
            if (e->expire <= now) {
                expire_entry(d, t, l);
                ++*gone;
            } else {
                l = &e->next;
            }
        }
    }
    return seen;
}

bool db_cron(db *d, int64_t budget_ns)
{
    int64_t start = mono_ns(), deadline = start + budget_ns;

    while (rehashing(d)) {
        rehash_step(d, 100);
        if (mono_ns() >= deadline)
            return true;
    }
    /* Shrink a table that has become sparse (under 10% full). */
    if (d->t[0].size > MIN_BUCKETS && d->t[0].used * 10 < d->t[0].size)
        resize(d, d->t[0].used);

    if (d->volatile_keys && (d->t[0].size + d->t[1].size)) {
        int64_t now = db_now_ms();
        size_t seen, gone;
        do
            seen = expire_round(d, now, &gone);
        while (d->volatile_keys && seen && gone * 4 > seen && mono_ns() < deadline);
    }

    while (d->trash && mono_ns() < deadline)
        empty_trash(d, 1024);
#ifdef __GLIBC__
    if (!d->trash && d->freed >= TRIM_AFTER) {
        malloc_trim(0);
        d->freed = 0;
    }
#endif
    return rehashing(d) || d->trash != NULL;
}
