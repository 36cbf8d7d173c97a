/* multi.c — transactions: MULTI queues commands, EXEC runs them as one
 * (nothing else runs in between: commands hold the keyspace lock), WATCH
 * makes EXEC fail if a key changed since.
 *
 * Watched keys sit in one small registry, scanned linearly on every change
 * to any key while it is not empty; while nobody watches, the keyspace has
 * no change hook at all, so SET and GET pay nothing for this. */
#include <stdlib.h>
#include <string.h>

#include "commands.h"

struct queued_cmd {
    const command *cmd;
    resp_cmd c;
};

typedef struct watch {
    session *s;
    char *key;
    size_t klen;
} watch;

static watch *watches;
static size_t nwatches, wcap;

/* The keyspace's change hook while anything is watched. */
static void changed(void *arg, const char *key, size_t klen)
{
    (void)arg;
    for (size_t i = 0; i < nwatches; i++)
        if (!key || (watches[i].klen == klen && memcmp(watches[i].key, key, klen) == 0))
            watches[i].s->dirty = true;
}

static void unwatch(db *d, session *s)
{
    if (!s->nwatched)
        return;
    size_t j = 0;
    for (size_t i = 0; i < nwatches; i++) {
        if (watches[i].s == s)
            free(watches[i].key);
        else
            watches[j++] = watches[i];
    }
    nwatches = j;
    s->nwatched = 0;
    if (!nwatches) {
        db_on_change(d, NULL, NULL);
        free(watches);
        watches = NULL;
        wcap = 0;
    }
}

static void discard(session *s)
{
    for (size_t i = 0; i < s->nqueued; i++)
        free(s->queue[i]);
    free(s->queue);
    s->queue = NULL;
    s->nqueued = s->qcap = 0;
    s->multi = s->multi_failed = false;
}

void multi_reset(db *d, session *s)
{
    discard(s);
    unwatch(d, s);
    s->dirty = false;
}

/* One allocation per queued command: the header, the vectors, the bytes. */
void multi_queue(session *s, const command *cmd, const resp_cmd *c, reply *r)
{
    size_t bytes = 0;
    for (size_t i = 0; i < c->argc; i++)
        bytes += c->len[i];
    size_t vec = c->argc * (sizeof(char *) + sizeof(size_t));
    if (s->nqueued == s->qcap) {
        size_t cap = s->qcap ? s->qcap * 2 : 8;
        queued_cmd **qq = realloc(s->queue, cap * sizeof *qq);
        if (!qq)
            goto fail;
        s->queue = qq;
        s->qcap = cap;
    }
    queued_cmd *q = malloc(sizeof *q + vec + bytes);
    if (!q)
        goto fail;
    const char **argv = (const char **)(q + 1);
    size_t *len = (size_t *)(argv + c->argc);
    char *p = (char *)(len + c->argc);
    for (size_t i = 0; i < c->argc; i++) {
        memcpy(p, c->argv[i], c->len[i]);
        argv[i] = p;
        len[i] = c->len[i];
        p += c->len[i];
    }
    q->cmd = cmd;
    q->c = (resp_cmd){.argc = c->argc, .argv = argv, .len = len};
    s->queue[s->nqueued++] = q;
    reply_literal(r, "+QUEUED\r\n");
    return;
fail:
    s->multi_failed = true;
    reply_error(r, "ERR out of memory");
}

HANDLER(cmd_multi)
{
    if (s->multi) {
        reply_error(r, "ERR MULTI calls can not be nested");
        return EVIO_NONE;
    }
    s->multi = true;
    reply_literal(r, "+OK\r\n");
    return EVIO_NONE;
}

HANDLER(cmd_discard)
{
    if (!s->multi) {
        reply_error(r, "ERR DISCARD without MULTI");
        return EVIO_NONE;
    }
    multi_reset(d, s);
    reply_literal(r, "+OK\r\n");
    return EVIO_NONE;
}

HANDLER(cmd_exec)
{
    if (!s->multi) {
        reply_error(r, "ERR EXEC without MULTI");
        return EVIO_NONE;
    }
    if (s->multi_failed) {
        multi_reset(d, s);
        reply_error(r, "EXECABORT Transaction discarded because of previous errors.");
        return EVIO_NONE;
    }
    if (s->dirty) {
        multi_reset(d, s);
        reply_literal(r, "*-1\r\n");
        return EVIO_NONE;
    }
    unwatch(d, s); /* the transaction's own writes must not matter */
    queued_cmd **queue = s->queue;
    size_t n = s->nqueued;
    s->queue = NULL;
    s->nqueued = s->qcap = 0;
    s->multi = false;
    evio_action act = EVIO_NONE;
    reply_array(r, n);
    for (size_t i = 0; i < n; i++) {
        evio_action a = commands_call(d, s, queue[i]->cmd, &queue[i]->c, r);
        if (act == EVIO_NONE)
            act = a;
        free(queue[i]);
    }
    free(queue);
    s->dirty = false;
    return act;
}

HANDLER(cmd_watch)
{
    if (s->multi) {
        reply_error(r, "ERR WATCH inside MULTI is not allowed");
        return EVIO_NONE;
    }
    for (size_t i = 1; i < c->argc; i++) {
        bool dup = false;
        for (size_t k = 0; k < nwatches && !dup; k++)
            dup = watches[k].s == s && watches[k].klen == c->len[i] &&
                  memcmp(watches[k].key, c->argv[i], c->len[i]) == 0;
        if (dup)
            continue;
        if (nwatches == wcap) {
            size_t cap = wcap ? wcap * 2 : 16;
            watch *w = realloc(watches, cap * sizeof *w);
            if (!w) {
                reply_error(r, "ERR out of memory");
                return EVIO_NONE;
            }
            watches = w;
            wcap = cap;
        }
        char *key = malloc(c->len[i] ? c->len[i] : 1);
        if (!key) {
            reply_error(r, "ERR out of memory");
            return EVIO_NONE;
        }
        memcpy(key, c->argv[i], c->len[i]);
        watches[nwatches++] = (watch){.s = s, .key = key, .klen = c->len[i]};
        s->nwatched++;
        db_on_change(d, changed, NULL);
    }
    reply_literal(r, "+OK\r\n");
    return EVIO_NONE;
}

HANDLER(cmd_unwatch)
{
    unwatch(d, s);
    s->dirty = false;
    reply_literal(r, "+OK\r\n");
    return EVIO_NONE;
}
