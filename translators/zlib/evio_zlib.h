/*
 * evio_zlib.h — a compression translator over zlib.
 *
 * Both directions of a translated connection are zlib streams (RFC 1950):
 * what the application writes is deflated, and every evio_write() is
 * flushed with Z_SYNC_FLUSH, so the peer can decode it at once, without
 * waiting for more; what arrives is inflated and fires data() in chunks of
 * at most 16 KiB.  An orderly close (EVIO_CLOSE, peer EOF) ends the output
 * stream properly (Z_FINISH) before the last flush, so the peer can tell a
 * complete stream from a cut one.  Streams that follow one another on a
 * connection (the peer finished one and began the next) are accepted.
 *
 * Input that is not a valid zlib stream ends that connection: closed()
 * gets EVIO_ETRANSLATE and evio_conn_error() gives zlib's message (e.g.
 * "zlib: incorrect header check").
 *
 * Each connection holds a deflate state (about 256 KiB at the default
 * settings) from its first write and an inflate state (about 44 KiB) from
 * its first input.  Wake, evio_send, pause/resume and close-with-flush keep
 * their meaning; EVIO_DETACH closes (evio.h).
 */
#ifndef EVIO_ZLIB_H
#define EVIO_ZLIB_H

#include "evio.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Fill *out with a zlib translator compressing at level (0 = none, 1 =
 * fastest ... 9 = smallest, -1 = zlib's default, 6).  The translator
 * allocates nothing until a connection uses it and needs no freeing; one
 * may serve any number of servers and loops at once.  Any thread.  Returns
 * 0, or EVIO_EINVAL for a level out of range or a NULL out. */
EVIO_EXPORT int evio_zlib(int level, evio_translator *out);

#ifdef __cplusplus
}
#endif
#endif /* EVIO_ZLIB_H */
