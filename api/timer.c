/* timer.c — a binary min-heap of deadlines (dial timeouts). */
#include "config.h"

#include <errno.h>
#include <stdlib.h>

#include "internal.h"
#include "sys.h"

static void place(evio__heap *h, size_t i, evio__timer *t)
{
    h->items[i] = t;
    t->slot = i;
}

static void sift_up(evio__heap *h, size_t i)
{
    evio__timer *t = h->items[i];
    while (i > 0 && h->items[(i - 1) / 2]->due > t->due) {
        place(h, i, h->items[(i - 1) / 2]);
        i = (i - 1) / 2;
    }
    place(h, i, t);
}

static void sift_down(evio__heap *h, size_t i)
{
    evio__timer *t = h->items[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->len)
            break;
        if (c + 1 < h->len && h->items[c + 1]->due < h->items[c]->due)
            c++;
        if (h->items[c]->due >= t->due)
            break;
        place(h, i, h->items[c]);
        i = c;
    }
    place(h, i, t);
}

int evio__heap_push(evio__heap *h, evio__timer *t)
{
    if (h->len == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 16;
        evio__timer **items = evio__sys.realloc(h->items, cap * sizeof *items);
        if (!items)
            return -ENOMEM;
        h->items = items;
        h->cap = cap;
    }
    h->items[h->len] = t;
    sift_up(h, h->len++);
    return 0;
}

void evio__heap_remove(evio__heap *h, evio__timer *t)
{
    size_t i = t->slot;
    if (i >= h->len || h->items[i] != t)
        return; /* not queued */
    t->slot = SIZE_MAX;
    evio__timer *last = h->items[--h->len];
    if (i == h->len)
        return;
    place(h, i, last);
    sift_up(h, i);
    sift_down(h, last->slot);
}

void evio__heap_free(evio__heap *h)
{
    evio__sys.free(h->items);
    *h = (evio__heap){0};
}
