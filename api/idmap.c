/* idmap.c — connection id to connection: linear probing, backward-shift
 * deletion (no tombstones, so lookups stay short however many connections
 * come and go). */
#include "config.h"

#include <errno.h>
#include <stdlib.h>

#include "internal.h"
#include "sys.h"

static size_t slot_of(const evio__idmap *m, uint64_t id)
{
    return (size_t)((id * 0x9E3779B97F4A7C15ull) >> 7) & (m->cap - 1);
}

static int grow(evio__idmap *m)
{
    size_t cap = m->cap ? m->cap * 2 : 64;
    evio__idmap n = {.keys = evio__sys.calloc(cap, sizeof *n.keys),
                     .vals = evio__sys.calloc(cap, sizeof *n.vals),
                     .cap = cap};
    if (!n.keys || !n.vals) {
        evio__sys.free(n.keys);
        evio__sys.free(n.vals);
        return -ENOMEM;
    }
    for (size_t i = 0; i < m->cap; i++)
        if (m->keys[i])
            evio__idmap_put(&n, m->keys[i], m->vals[i]);
    evio__sys.free(m->keys);
    evio__sys.free(m->vals);
    *m = n;
    return 0;
}

int evio__idmap_put(evio__idmap *m, uint64_t id, void *val)
{
    if ((m->len + 1) * 4 > m->cap * 3) { /* keep load under 3/4 */
        int err = grow(m);
        if (err)
            return err;
    }
    size_t i = slot_of(m, id);
    while (m->keys[i] && m->keys[i] != id)
        i = (i + 1) & (m->cap - 1);
    if (!m->keys[i])
        m->len++;
    m->keys[i] = id;
    m->vals[i] = val;
    return 0;
}

void *evio__idmap_get(const evio__idmap *m, uint64_t id)
{
    if (!m->cap || !id)
        return NULL;
    for (size_t i = slot_of(m, id); m->keys[i]; i = (i + 1) & (m->cap - 1))
        if (m->keys[i] == id)
            return m->vals[i];
    return NULL;
}

void evio__idmap_del(evio__idmap *m, uint64_t id)
{
    if (!m->cap || !id)
        return;
    size_t mask = m->cap - 1, i = slot_of(m, id);
    while (m->keys[i] != id) {
        if (!m->keys[i])
            return;
        i = (i + 1) & mask;
    }
    /* Pull later members of the probe run back over the hole, so a lookup
     * never stops early at an empty slot. */
    for (size_t j = (i + 1) & mask; m->keys[j]; j = (j + 1) & mask) {
        size_t home = slot_of(m, m->keys[j]);
        if (((j - home) & mask) >= ((j - i) & mask)) {
            m->keys[i] = m->keys[j];
            m->vals[i] = m->vals[j];
            i = j;
        }
    }
    m->keys[i] = 0;
    m->vals[i] = NULL;
    m->len--;
}

void evio__idmap_free(evio__idmap *m)
{
    evio__sys.free(m->keys);
    evio__sys.free(m->vals);
    *m = (evio__idmap){0};
}
