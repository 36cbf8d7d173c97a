/* zlib.c — the compression translator; see evio_zlib.h.
 *
 * A deflate stream one way and an inflate stream the other, each set up the
 * first time it is needed: a connection that never writes never pays for
 * the 256 KiB of deflate state. */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "evio_zlib.h"

#define CHUNK 16384

/* The translator's udata points at its level: one entry per level, so
 * making a translator allocates nothing. */
static int levels[] = {-1, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9};

typedef struct zconn {
    z_stream def, inf;
    int level;
    bool def_on, inf_on;
    bool def_ended; /* Z_FINISH done: more output starts a new stream */
} zconn;

static int z_fail(evio_conn *c, const z_stream *z, int rc)
{
    if (rc == Z_MEM_ERROR)
        return -ENOMEM;
    char msg[256];
    if (rc == Z_NEED_DICT)
        snprintf(msg, sizeof msg, "zlib: the stream needs a preset dictionary");
    else
        snprintf(msg, sizeof msg, "zlib: %s", z->msg ? z->msg : zError(rc));
    evio_translator_set_error(c, msg);
    return EVIO_ETRANSLATE;
}

static int z_open(const evio_translator *t, evio_conn *c, void **state)
{
    (void)c;
    zconn *z = calloc(1, sizeof *z);
    if (!z)
        return -ENOMEM;
    z->level = *(const int *)t->udata;
    *state = z;
    return 0;
}

/* Deflate len bytes with flush (Z_SYNC_FLUSH or Z_FINISH) and send it all. */
static int z_deflate(zconn *z, evio_conn *c, const void *data, size_t len, int flush)
{
    if (!z->def_on) {
        int rc = deflateInit(&z->def, z->level);
        if (rc != Z_OK)
            return z_fail(c, &z->def, rc);
        z->def_on = true;
    } else if (z->def_ended) {
        deflateReset(&z->def);
    }
    z->def_ended = false;
    unsigned char out[CHUNK];
    const unsigned char *p = data;
    do { /* zlib counts in uInt: feed larger writes in slices */
        uInt n = len > UINT_MAX ? UINT_MAX : (uInt)len;
        z->def.next_in = (Bytef *)(uintptr_t)p; /* zlib does not write through it */
        z->def.avail_in = n;
        if (n) /* p is NULL for Z_FINISH */
            p += n;
        len -= n;
        int mode = len ? Z_NO_FLUSH : flush;
        int rc;
        do {
            z->def.next_out = out;
            z->def.avail_out = sizeof out;
            rc = deflate(&z->def, mode);
            if (rc == Z_STREAM_ERROR)
                return z_fail(c, &z->def, rc);
            size_t have = sizeof out - z->def.avail_out;
            if (have) {
                int err = evio_translator_send(c, out, have);
                if (err)
                    return err;
            }
        } while (z->def.avail_out == 0 || (mode == Z_FINISH && rc != Z_STREAM_END));
    } while (len);
    if (flush == Z_FINISH)
        z->def_ended = true;
    return 0;
}

static int z_output(void *state, evio_conn *c, const void *data, size_t len)
{
    if (len == 0)
        return 0;
    return z_deflate(state, c, data, len, Z_SYNC_FLUSH);
}

static int z_input(void *state, evio_conn *c, const void *wire, size_t len)
{
    zconn *z = state;
    if (!z->inf_on) {
        int rc = inflateInit(&z->inf);
        if (rc != Z_OK)
            return z_fail(c, &z->inf, rc);
        z->inf_on = true;
    }
    unsigned char out[CHUNK];
    const unsigned char *p = wire;
    while (len) {
        uInt n = len > UINT_MAX ? UINT_MAX : (uInt)len;
        z->inf.next_in = (Bytef *)(uintptr_t)p;
        z->inf.avail_in = n;
        p += n;
        len -= n;
        do {
            z->inf.next_out = out;
            z->inf.avail_out = sizeof out;
            int rc = inflate(&z->inf, Z_NO_FLUSH);
            size_t have = sizeof out - z->inf.avail_out;
            if (have && evio_translator_deliver(c, out, have) != 0)
                return 0; /* the application closed: the rest is not wanted */
            if (rc == Z_STREAM_END) {
                inflateReset(&z->inf); /* a next stream may follow */
                continue;
            }
            if (rc == Z_BUF_ERROR) /* needs more input than there is */
                break;
            if (rc != Z_OK)
                return z_fail(c, &z->inf, rc);
        } while (z->inf.avail_in > 0 || z->inf.avail_out == 0);
    }
    return 0;
}

static int z_finish(void *state, evio_conn *c)
{
    zconn *z = state;
    if (!z->def_on || z->def_ended)
        return 0; /* nothing was written: no stream to end */
    return z_deflate(z, c, NULL, 0, Z_FINISH);
}

static void z_free(void *state)
{
    zconn *z = state;
    if (z->def_on)
        deflateEnd(&z->def);
    if (z->inf_on)
        inflateEnd(&z->inf);
    free(z);
}

int evio_zlib(int level, evio_translator *out)
{
    if (!out || level < -1 || level > 9)
        return EVIO_EINVAL;
    *out = (evio_translator){
        .udata = &levels[level + 1],
        .open = z_open,
        .input = z_input,
        .output = z_output,
        .finish = z_finish,
        .free = z_free,
    };
    return 0;
}
