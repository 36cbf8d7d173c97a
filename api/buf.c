/* buf.c — the per-connection output queue. */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

int evio__buf_append(evio__buf *b, const void *p, size_t n)
{
    if (n == 0)
        return 0;
    if (b->cap - b->tail < n) {
        size_t len = evio__buf_len(b);
        /* Slide the live bytes down first: a queue that drains as fast as it
         * fills then never grows. */
        if (b->head > 0 && b->cap - len >= n) {
            memmove(b->data, b->data + b->head, len);
        } else {
            size_t cap = b->cap ? b->cap : 4096;
            while (cap - len < n) {
                if (cap > SIZE_MAX / 2)
                    return -ENOMEM;
                cap *= 2;
            }
            char *d = malloc(cap);
            if (!d)
                return -ENOMEM;
            if (len)
                memcpy(d, b->data + b->head, len);
            free(b->data);
            b->data = d;
            b->cap = cap;
        }
        b->head = 0;
        b->tail = len;
    }
    memcpy(b->data + b->tail, p, n);
    b->tail += n;
    if (b->tail - b->head > b->peak)
        b->peak = b->tail - b->head;
    return 0;
}

/* A drained queue gives a big buffer back once a whole fill-and-drain
 * cycle used little of it: one large response must not pin its memory for
 * the life of the connection, but a relay that fills the same big buffer
 * cycle after cycle keeps it instead of regrowing it every time. */
#define EVIO__BUF_KEEP (64 * 1024)

void evio__buf_consume(evio__buf *b, size_t n)
{
    b->head += n;
    if (b->head != b->tail)
        return;
    b->head = b->tail = 0;
    if (b->cap > EVIO__BUF_KEEP && b->peak < b->cap / 4) {
        free(b->data);
        b->data = NULL;
        b->cap = 0;
    }
    b->peak = 0;
}

void evio__buf_free(evio__buf *b)
{
    free(b->data);
    *b = (evio__buf){0};
}
