/* buf.c — the per-connection output queue.
 *
 * A connection holds a queue only while the socket has not taken all of
 * its output: an idle connection costs no buffer.  Queues of one block come
 * from a small per-loop cache and go back to it when they drain, so the
 * write path of a request that fits the socket makes no malloc or free.
 *
 * With a completion backend the kernel reads a block while the send is in
 * flight: the block is pinned, and a queue that must grow meanwhile moves
 * to a new block and keeps the pinned one (as next) until the send's
 * result comes. */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "sys.h"

/* The output_buffers and output_bytes counters see a queue only once it
 * outlives the flush after its event (evio__outq_held): a queue that the
 * socket takes at once is never counted, and costs the counters nothing. */
static void count(evio__loop *l, const evio__outq *q, int sign)
{
    evio__count(&l->stats.output_buffers, (uint64_t)(int64_t)sign);
    evio__count(&l->stats.output_bytes, (uint64_t)((int64_t)sign * (int64_t)(sizeof *q + q->cap)));
}

void evio__outq_held(evio__loop *l, evio__outq *q)
{
    if (!q->counted) {
        q->counted = true;
        count(l, q, 1);
    }
}

static evio__outq *block_new(evio__loop *l)
{
    evio__outq *q = l->spare;
    if (q) {
        l->spare = q->next;
        l->nspare--;
    } else if (!(q = evio__sys.malloc(sizeof *q + EVIO__OUTQ_BLOCK))) {
        return NULL;
    }
    q->head = q->tail = 0;
    q->cap = EVIO__OUTQ_BLOCK;
    q->next = NULL;
    q->counted = false;
    q->pinned = false;
    return q;
}

static void block_release(evio__loop *l, evio__outq *q)
{
    if (q->counted)
        count(l, q, -1);
    q->counted = false;
    if (q->cap == EVIO__OUTQ_BLOCK && l->nspare < EVIO__OUTQ_CACHE) {
        q->next = l->spare;
        l->spare = q;
        l->nspare++;
    } else {
        evio__sys.free(q);
    }
}

int evio__outq_append_slow(evio__loop *l, evio__outq **qp, const void *p, size_t n)
{
    if (n == 0)
        return 0;
    evio__outq *q = *qp;
    if (!q) {
        if (!(q = block_new(l)))
            return -ENOMEM;
        *qp = q;
    }
    if (q->cap - q->tail < n) {
        size_t len = evio__outq_len(q);
        if (q->cap - len >= n && !q->pinned) { /* slide down: a queue that
                                                * drains as fast as it fills
                                                * never grows */
            memmove(q->data, q->data + q->head, len);
        } else {
            size_t cap = q->cap;
            while (cap - len < n) {
                if (cap > SIZE_MAX / 4)
                    return -ENOMEM;
                cap = cap * 2 + sizeof *q; /* whole blocks with their header */
            }
            evio__outq *g = evio__sys.malloc(sizeof *g + cap);
            if (!g)
                return -ENOMEM;
            memcpy(g->data, q->data + q->head, len);
            g->cap = cap;
            g->counted = false;
            g->pinned = false;
            bool counted = q->counted;
            if (q->pinned) { /* the kernel still reads it: keep it */
                g->next = q;
            } else {
                g->next = q->next;
                block_release(l, q);
            }
            if (counted)
                evio__outq_held(l, g);
            *qp = q = g;
        }
        q->head = 0;
        q->tail = len;
    }
    memcpy(q->data + q->tail, p, n);
    q->tail += n;
    return 0;
}

void evio__outq_free_slow(evio__loop *l, evio__outq **qp)
{
    evio__outq *q = *qp;
    if (!q)
        return;
    if (q->next) /* never while its send is in flight: the connection waits */
        block_release(l, q->next);
    block_release(l, q);
    *qp = NULL;
}

void evio__outq_unpin(evio__loop *l, evio__outq *q)
{
    if (q->next) { /* the queue moved during the send: the old block goes */
        q->next->pinned = false;
        block_release(l, q->next);
        q->next = NULL;
    }
    q->pinned = false;
}

void evio__outq_consume(evio__loop *l, evio__outq **qp, size_t n)
{
    evio__outq *q = *qp;
    q->head += n;
    if (q->head == q->tail) /* drained: the queue goes, whatever its size */
        evio__outq_free(l, qp);
}

void evio__outq_cache_free(evio__loop *l)
{
    while (l->spare) {
        evio__outq *q = l->spare;
        l->spare = q->next;
        evio__sys.free(q);
    }
    l->nspare = 0;
}
