/*
 * evio.h — event-loop networking for C.
 *
 * The model is Go evio's: one call serves any number of addresses, every
 * connection has an id, and the application reacts to events by writing
 * output and returning an action.  A loop never blocks and never runs two
 * events of one connection at the same time.
 *
 * Conventions used throughout this header:
 *  - Functions that can fail return an int: 0 (or a non-negative value) on
 *    success and a negative code on failure.  Codes are either -errno
 *    (e.g. -ECONNRESET) or one of the EVIO_E* values below; evio_strerror()
 *    turns any of them into a message.
 *  - "Loop thread only" means: call it from inside an event callback of the
 *    server (or of the connection) named in the arguments.  "Any thread"
 *    means what it says, for as long as the server handle is valid.
 *  - Every pointer argument is borrowed for the duration of the call unless
 *    stated otherwise; evio never frees memory it did not allocate.
 */
#ifndef EVIO_H
#define EVIO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) || defined(__clang__)
#define EVIO_EXPORT __attribute__((visibility("default")))
#else
#define EVIO_EXPORT
#endif

/* ---------------------------------------------------------------- errors */

/* evio's own error codes; all below -10000 so they never meet a -errno. */
enum {
    EVIO_EADDR     = -10001, /* malformed address string */
    EVIO_ESCHEME   = -10002, /* unknown address scheme */
    EVIO_EOPTION   = -10003, /* unknown or malformed address option */
    EVIO_ENOADDR   = -10004, /* serve called with no address */
    EVIO_EBACKEND  = -10005, /* the poller failed in a way that cannot be retried */
    EVIO_ESHUTDOWN = -10006, /* the server is shutting down */
    EVIO_ENOTFOUND = -10007, /* no connection with that id */
    EVIO_EINVAL    = -10008, /* an argument is out of range or NULL */
    EVIO_ENONAME   = -10009, /* a dialed host name could not be resolved */
    EVIO_EUDP      = -10010, /* not available for UDP sessions (wake, dial) */
    EVIO_ETRANSLATE = -10011, /* a translator failed; see evio_conn_error() */
    EVIO_EUNAVAILABLE = -10012, /* the backend cannot run here (io_uring disabled or blocked) */
};

/* A static, human-readable message for any code returned by evio, including
 * negative errno values.  Never returns NULL.  Any thread. */
EVIO_EXPORT const char *evio_strerror(int err);

/* The name of the backend this library was built with: "epoll", "kqueue",
 * "poll", "libev", "libuv" or "io_uring".  Any thread.  (libuv keeps two process-wide fds open,
 * its signal pipe, from the first evio_serve until the process exits.) */
EVIO_EXPORT const char *evio_backend_name(void);

/* ---------------------------------------------------------------- types */

/* How new connections are spread over loops (evio_events.balance). */
typedef enum evio_balance {
    EVIO_ROUND_ROBIN = 0, /* loop 0, 1, 2, ... in turn: exact shares */
    EVIO_RANDOM,          /* a loop chosen at random */
    EVIO_LEAST_CONNECTIONS /* the loop with the fewest open connections */
} evio_balance;

/* evio_events.nloops: one loop per online CPU. */
#define EVIO_LOOPS_PER_CPU (-1)

/* What an event asks the loop to do next. */
typedef enum evio_action {
    EVIO_NONE = 0,  /* carry on */
    EVIO_CLOSE,     /* flush pending output, then close; closed() fires */
    EVIO_DETACH,    /* flush pending output, then hand the fd over; detached() fires
                     * (with no detached callback: closed(c, 0), like EVIO_CLOSE) */
    EVIO_SHUTDOWN,  /* close every connection and listener, return from serve */
    EVIO_DRAIN      /* stop accepting, let connections finish, then return
                     * from serve (see evio_server_drain; the deadline is
                     * evio_events.drain_timeout_ms) */
} evio_action;

/* The server: valid from serving() until evio_serve() returns. */
typedef struct evio_server evio_server;

/* A connection: valid from opened() until closed() or detached() returns.
 * Across threads, refer to a connection by its id, never by this pointer. */
typedef struct evio_conn evio_conn;

/* What opened() learns about a new connection.  The pointers are valid only
 * during the opened() call; copy what you need to keep. */
typedef struct evio_info {
    int listener;                  /* index into serve's addrs[]; -1 if dialed */
    const struct sockaddr *local;  /* our end */
    socklen_t local_len;
    const struct sockaddr *remote; /* the peer; for unix sockets often unnamed */
    socklen_t remote_len;
    int dialed;     /* 1 for a connection made by evio_dial() */
    int dial_error; /* dialed only: 0 once connected; else the dial failed
                     * (e.g. -ECONNREFUSED, -ETIMEDOUT, EVIO_ENONAME), the
                     * connection is already closing, and closed() with the
                     * same error follows at once.  local/remote are NULL. */
} evio_info;

/* Name resolution for evio_dial(), run on evio's resolver threads (never on
 * a loop).  Fill *out and *outlen with one address for host of the given family
 * (AF_UNSPEC, AF_INET or AF_INET6) and return 0, or return a negative code
 * such as EVIO_ENONAME.  The port is filled in by evio.  udata is the
 * evio_events udata.  Must be thread-safe. */
typedef int (*evio_resolver)(void *udata, const char *host, int family,
                             struct sockaddr_storage *out, socklen_t *outlen);

/* A translator sits between the socket and the application: it decodes
 * the bytes that arrive before data() sees them and encodes what the
 * application writes before it reaches the socket (TLS, compression).  It
 * runs on the loop, inside the connection's events: no helper threads.
 *
 * evio calls, for each connection the translate choice picks:
 *   open    before opened(): make *state; a negative return closes the
 *           connection at once, before opened() (it never opens); it may
 *           already evio_translator_send() (a TLS client's hello);
 *   input   with bytes from the socket; call evio_translator_deliver() for
 *           each piece of decoded data (that fires data()) and
 *           evio_translator_send() for bytes the protocol must answer;
 *   output  with what the application wrote; encode it and pass the
 *           result to evio_translator_send();
 *   finish  once, on an orderly close (EVIO_CLOSE, peer EOF), before the
 *           last flush: a chance for last words such as TLS close_notify;
 *   free    after closed(), or when open failed after making a state.
 * input, output and finish return 0 or a negative code; a code ends the
 * connection and closed() gets it.  An error of the translator's own
 * (EVIO_ETRANSLATE, or one it documents) is best passed with a message
 * through evio_translator_set_error() so the application can print it.
 * Translated connections keep wake, close-with-flush and pause/resume;
 * EVIO_DETACH on one closes it like EVIO_CLOSE (the fd carries encoded
 * bytes the application could not use). */
typedef struct evio_translator {
    void *udata; /* the translator's own, e.g. an SSL_CTX */
    int (*open)(const struct evio_translator *t, evio_conn *c, void **state);
    int (*input)(void *state, evio_conn *c, const void *wire, size_t len);
    int (*output)(void *state, evio_conn *c, const void *data, size_t len);
    int (*finish)(void *state, evio_conn *c);
    void (*free)(void *state);
} evio_translator;

/* The callbacks.  Any of them may be NULL.  Every callback runs on a loop
 * thread; a connection lives on one loop for its whole life and its
 * callbacks never run concurrently.  With several loops, callbacks of
 * different connections do run concurrently, on different threads: share
 * application state between them only with your own locking. */
typedef struct evio_events {
    /* Yours: evio never looks at it.  Read it back with evio_server_udata(). */
    void *udata;

    /* Once, after every listener is bound, before any other event.  Bound
     * addresses (port 0 resolved) are available via evio_server_addr(). */
    evio_action (*serving)(evio_server *srv);

    /* A connection was accepted.  Always the connection's first event.  May
     * write output and set options (evio_conn_set_keepalive, ...).
     * EVIO_SHUTDOWN here shuts the server down. */
    evio_action (*opened)(evio_conn *c, const evio_info *info);

    /* Exactly once per opened connection that was not detached.  err is 0
     * for a clean close (ours or the peer's) and a negative code otherwise
     * (e.g. -ECONNRESET).  The return value is ignored unless it is
     * EVIO_SHUTDOWN.  No output can be written any more. */
    evio_action (*closed)(evio_conn *c, int err);

    /* After EVIO_DETACH: pending output has been written and the fd was
     * removed from the poller and put back in blocking mode.  The fd is now
     * yours to use and close; closed() will not fire.  The return value is
     * ignored unless it is EVIO_SHUTDOWN.  When this is NULL, EVIO_DETACH
     * closes the connection instead (closed() fires with 0): there is
     * nobody to hand the fd to. */
    evio_action (*detached)(evio_conn *c, int fd);

    /* Bytes arrived.  in points into the loop's read buffer and is valid
     * only during the call.  After evio_wake() data fires with in == NULL
     * and len == 0, so you can send what a background job prepared. */
    evio_action (*data)(evio_conn *c, const void *in, size_t len);

    /* The peer finished sending: it shut down its write side (e.g.
     * shutdown(SHUT_WR)) and no more input will come.  NULL (the default):
     * evio flushes pending output and closes the connection, as Go evio
     * does.  Set: the connection stays open for writing (evio_write, wakes,
     * evio_send all work) and you decide: return EVIO_CLOSE to flush and
     * close now, or EVIO_NONE and finish later with EVIO_CLOSE, evio_close()
     * or evio_conn_shutdown_write() (once both directions are finished the
     * connection closes by itself, closed(c, 0)).  Not for UDP sessions. */
    evio_action (*eof)(evio_conn *c);

    /* Around every write attempt to the socket: amount is what evio is
     * about to write; written what the kernel took and remaining what is
     * still buffered.  Output written from these is sent in order. */
    evio_action (*prewrite)(evio_conn *c, size_t amount);
    evio_action (*postwrite)(evio_conn *c, size_t written, size_t remaining);

    /* Runs on loop 0.  First fires right after serving(), then again after *delay_ns
     * nanoseconds (measured from when it was due, so a slow callback does
     * not make the period drift).  *delay_ns is 0 on entry.  A delay below
     * one millisecond (zero and negative included) is raised to one
     * millisecond, so a careless tick can never spin the CPU. */
    evio_action (*tick)(evio_server *srv, int64_t *delay_ns);

    /* Which translator a new connection (accepted or dialed) gets, if any:
     * return NULL for plain bytes.  The "should" of Go evio's Translate,
     * choosing also what to translate with, e.g. TLS on listener 1 only.
     * Called before opened(); info is as opened() will see it.  Not called
     * for UDP sessions: translators work on a byte stream, and datagrams
     * are not one. */
    const evio_translator *(*translate)(evio_conn *c, const evio_info *info);

    /* Options; zero means the default. */

    /* How evio_dial() resolves names that are not numeric addresses.  NULL:
     * the system's getaddrinfo() on a small private thread pool. */
    evio_resolver resolve;

    /* Number of loops, each on its own thread: 0 or 1 runs one loop on the
     * thread that calls evio_serve; n > 1 runs n, the caller being loop 0;
     * EVIO_LOOPS_PER_CPU runs one per online CPU. */
    int nloops;

    /* How accepted connections are spread over the loops.  Listeners
     * without ?reuseport are watched by loop 0 alone, which accepts and
     * hands each connection to the chosen loop (no thundering herd); with
     * ?reuseport=true every loop has its own listener and the kernel
     * spreads connections, so balance does not apply to them.  Dials from
     * outside a loop are spread the same way. */
    evio_balance balance;

    /* UDP: a session silent for this many milliseconds is closed (closed()
     * fires with -ETIMEDOUT).  0 means 60000; negative means never. */
    int udp_idle_ms;

    /* TCP and unix: a connection that receives nothing for this many
     * milliseconds is closed (closed() fires with -ETIMEDOUT).  0: never.
     * Per connection: evio_conn_set_idle_timeout().  Checked on a coarse
     * timer wheel (EVIO_IDLE_RESOLUTION_MS), so it fires between the
     * timeout and the timeout plus one resolution step. */
    int idle_timeout_ms;

    /* The most accepted connections and UDP sessions open at once, over
     * all loops; 0: no limit.  A connection accepted beyond it is closed at
     * once, before opened() (a UDP peer's datagram is dropped), and counted
     * in evio_stats.refused.  The check is exact with several loops
     * accepting at once: a slot is reserved before accept_filter runs.
     * Dialed connections do not count. */
    int max_conns;

    /* Called for every accepted connection, and for the first datagram of a
     * UDP peer without a session, before opened(), on the loop that
     * accepts it (loop 0 unless ?reuseport; for UDP the loop reading the
     * socket): return nonzero to accept, 0 to close it at once (a UDP
     * peer's datagram is dropped, and its next one asks again); counted in
     * evio_stats.filtered.  The address is valid during the call only, and
     * is the peer's as the kernel gives it: on a dual-stack listener
     * ("tcp://:PORT", "udp://:PORT") IPv4 peers arrive as IPv4-mapped IPv6
     * addresses (AF_INET6, ::ffff:127.0.0.1), so test for those too (see
     * IN6_IS_ADDR_V4MAPPED), or listen on tcp4:// for AF_INET. */
    int (*accept_filter)(void *udata, const struct sockaddr *remote, socklen_t len);

    /* How long EVIO_DRAIN lets connections finish before it closes them;
     * 0 means 30000. */
    int drain_timeout_ms;

    /* Output flow control: when a connection's queued output (what the
     * socket has not taken yet) reaches this many bytes, evio stops reading
     * from it, as evio_conn_pause() would, and reads again once the queue
     * is down to half of it.  So a peer that sends and never reads holds
     * at most about this much, plus one read and the socket buffers.  It
     * stops reads, never writes: the output of one event is always queued
     * whole.  Independent of evio_conn_pause(): reading resumes only when
     * neither holds it.  Counted in evio_stats.high_water.  0 means
     * EVIO_DEFAULT_HIGH_WATER; negative turns it off.  Per connection:
     * evio_conn_set_high_water().  A relay turns it off and pauses the
     * connection its output comes from instead (examples/proxy): with a
     * peer that writes before it reads, this rule would wait on that peer
     * while it waits on us. */
    int output_high_water;

    /* TCP and unix: a connection whose queued output makes no progress
     * (the peer does not read) for this many milliseconds is closed, and
     * closed() fires with -ETIMEDOUT.  This also bounds the flush of
     * EVIO_CLOSE and EVIO_DETACH.  A slow peer that keeps taking bytes is
     * never cut.  0 means EVIO_DEFAULT_WRITE_TIMEOUT_MS; negative: never.
     * Checked on the idle wheel (EVIO_IDLE_RESOLUTION_MS).  Per
     * connection: evio_conn_set_write_timeout(). */
    int write_timeout_ms;
} evio_events;

/* Defaults, chosen after what servers that face the internet do.  High
 * water: Netty's default write-buffer high-water mark (64 KiB), with its
 * low mark of half; HAProxy holds one 16 KiB buffer per direction and nginx
 * stops reading a request until its response is out, so 64 KiB is already
 * generous, and it is above what one request of the examples writes.
 * Write timeout: nginx's send_timeout (60 s). */
#define EVIO_DEFAULT_HIGH_WATER (64 * 1024)
#define EVIO_DEFAULT_WRITE_TIMEOUT_MS 60000

/* The resolution of idle timeouts, in milliseconds. */
#define EVIO_IDLE_RESOLUTION_MS 50

/* ---------------------------------------------------------------- serving */

/* Bind every address and run the loop until an event returns EVIO_SHUTDOWN.
 *
 * Addresses: "tcp://host:port", "tcp4://…", "tcp6://[::1]:port",
 * "unix://path" ("unix:///tmp/s" is the absolute path /tmp/s), and
 * "udp://", "udp4://", "udp6://" like tcp; no scheme means tcp.
 *
 * UDP: every remote address is a session, shown to the application as a
 * connection: opened() fires on its first datagram, data() once per
 * datagram, and every evio_write() is sent at once as one datagram (a
 * datagram the socket cannot take is dropped, as UDP may).  A new peer is
 * admitted as an accepted connection is: max_conns and accept_filter
 * apply, and it counts in evio_stats.accepted.  A session ends with
 * EVIO_CLOSE, at shutdown, when a drain begins, or after udp_idle_ms of
 * silence.  prewrite, postwrite, wake, dial, detach and translate do not
 * apply to UDP sessions.  An empty host ("tcp://:5000", ":5000") means
 * every local address; port 0 lets the kernel choose.  Options follow as
 * a query: "?reuseport=true" sets SO_REUSEPORT; "?mode=0660" (unix only,
 * octal, at most 0777) sets the socket file's permissions before it
 * accepts anyone, instead of the umask's.  A unix socket file nobody
 * listens on (left by an earlier run) is replaced; one a live server
 * listens on is not, and evio_serve returns -EADDRINUSE.  At exit a server
 * removes the file it created, and not one that replaced it.
 *
 * events and addrs are borrowed until evio_serve returns.  Blocks the
 * calling thread, which becomes the loop thread.  Returns 0 after a
 * shutdown, or a negative code if an address is malformed or cannot be
 * bound (nothing is left bound then) or the poller fails. */
EVIO_EXPORT int evio_serve(const evio_events *events, const char *const addrs[],
                           size_t naddrs);

/* The udata of the evio_events this server runs.  Any thread. */
EVIO_EXPORT void *evio_server_udata(const evio_server *srv);

/* The number of addresses the server listens on, and the i-th as bound
 * (port 0 resolved to the real port).  The returned pointer is valid until
 * evio_serve returns; *len receives its length when len is not NULL.
 * Returns NULL if i is out of range.  Any thread. */
EVIO_EXPORT size_t evio_server_naddrs(const evio_server *srv);
EVIO_EXPORT const struct sockaddr *evio_server_addr(const evio_server *srv, size_t i,
                                                    socklen_t *len);

/* Make data(c, NULL, 0) fire soon on the connection with this id, on its
 * loop.  Wakes coalesce: many calls before the loop gets to it fire data
 * once, and a call is never lost (a data event always follows the last
 * call).  Any thread, also from inside callbacks and signal-free contexts.
 * Returns 0, EVIO_ENOTFOUND if no open connection has this id, or
 * EVIO_EUDP for a UDP session. */
EVIO_EXPORT int evio_wake(evio_server *srv, uint64_t id);

/* Drain the server: close the listeners (unix socket files are removed),
 * end UDP sessions (closed() with 0: they have nothing to finish), let
 * open connections finish on their own, and return from evio_serve once
 * none is left.  Each loop stops as soon as it has nothing open, so with
 * several loops tick (on loop 0) may stop before the drain ends.
 * Connections still open after timeout_ms (0: 30000) are closed (closed()
 * fires with -ETIMEDOUT).  EVIO_SHUTDOWN during a drain still closes
 * everything at once.  Any thread, also a signal handler.  Returns 0 at
 * once, asynchronously: each loop closes its listeners on its next
 * iteration, so a client connecting right after the call may still be
 * accepted (and is then served like the others, within the deadline). */
EVIO_EXPORT int evio_server_drain(evio_server *srv, int timeout_ms);

/* Counters, cheap to read from any thread at any time.  Each is exact for
 * its loop; a snapshot taken while loops run is not one instant across
 * loops. */
typedef struct evio_stats {
    uint64_t open;     /* connections open now (accepted, dialed, UDP) */
    uint64_t accepted; /* admitted since serve began, UDP sessions included;
                        * refused and filtered ones are not in it */
    uint64_t closed;   /* closed or detached since serve began */
    uint64_t refused;  /* taken from the kernel but closed before opened(),
                        * over max_conns (UDP: datagrams dropped) */
    uint64_t filtered; /* taken from the kernel but closed before opened(),
                        * accept_filter said no (UDP: datagrams dropped) */
    uint64_t bytes_in;  /* read from sockets */
    uint64_t bytes_out; /* written to sockets */
    uint64_t wakes;     /* data(c, NULL, 0) events fired by evio_wake */
    uint64_t output_buffers; /* output buffers connections hold now: a
                              * connection whose queue is empty holds none */
    uint64_t output_bytes;   /* the memory those buffers take, in bytes */
    uint64_t high_water;     /* times the high-water mark stopped a read */
    uint64_t timeouts;       /* closed with -ETIMEDOUT: idle, write,
                              * deadline, dial */
} evio_stats;

/* Fill *total with the sum over all loops and, when per_loop is not NULL,
 * per_loop[i] for each loop i < nloops.  Returns the number of loops.  Any
 * thread, while the server is valid. */
EVIO_EXPORT int evio_server_stats(const evio_server *srv, evio_stats *total,
                                  evio_stats *per_loop, int nloops);

/* Shut the server down as if an event had returned EVIO_SHUTDOWN: every
 * connection is closed (closed() fires for each), listeners are closed and
 * evio_serve returns 0.  Any thread; returns at once, before the shutdown
 * is complete.  Returns 0. */
EVIO_EXPORT int evio_server_shutdown(evio_server *srv);

/* Start an outbound connection to addr ("tcp://host:port", "tcp4://",
 * "tcp6://", "unix:///path"; no scheme means tcp) and store its id in *id.
 * Returns at once and never blocks the loop: numeric addresses are used as
 * they are, names are resolved on evio's resolver threads (see
 * evio_events.resolve).  Every successful call leads to exactly one
 * opened() — with info->dialed set, once connected, or with
 * info->dial_error set if the attempt failed (refused, timed out, name not
 * found) — and then one closed().  timeout_ms > 0 bounds resolution plus
 * connect; 0 means no timeout.  ctx becomes the connection's context
 * (evio_conn_context) before opened() fires.  Called on a loop thread, the
 * connection joins that loop.  Wakes for the id before it has opened are
 * delivered right after opened().  Any thread.  Returns 0, EVIO_EADDR /
 * EVIO_ESCHEME / EVIO_EOPTION for a malformed address, EVIO_EUDP for a
 * udp address, EVIO_ESHUTDOWN
 * after a shutdown began, or -ENOMEM. */
EVIO_EXPORT int evio_dial(evio_server *srv, const char *addr, int timeout_ms, void *ctx,
                          uint64_t *id);

/* ---------------------------------------------------------------- connections */

/* Queue len bytes of output on c; they are copied, so buf may be reused at
 * once.  Output is sent in order: evio attempts the write as soon as the
 * current event returns and keeps whatever the socket would not take until
 * it is writable.  c may be any open connection of the loop whose event is
 * running (a proxy writes to the connection it relays to).  After EVIO_CLOSE or EVIO_DETACH, output written from
 * the events that still fire (prewrite/postwrite during the final flush) is
 * sent before the close or hand-over.  Loop thread only.  Returns 0,
 * -ENOMEM, or EVIO_ESHUTDOWN once the connection has closed or detached
 * (inside closed() and detached()). */
EVIO_EXPORT int evio_write(evio_conn *c, const void *buf, size_t len);

/* Queue len bytes for the connection with this id from any thread; they
 * are copied, so buf may be reused at once.  The bytes go out after
 * everything already queued on the connection, in the order calls return,
 * and the bytes of one call are never interleaved with another's.  The
 * loop is woken to send them; no data() event fires.  For a UDP session
 * the bytes are one datagram.  Returns 0, EVIO_ENOTFOUND for an unknown or
 * closed id, or -ENOMEM.  If the connection closes or detaches (or
 * finishes its output with evio_conn_shutdown_write or evio_conn_reset)
 * before the loop gets to the bytes, they are dropped. */
EVIO_EXPORT int evio_send(evio_server *srv, uint64_t id, const void *buf, size_t len);

/* Close the connection with this id from any thread, after everything
 * queued on it (by events and by evio_send) has been written; closed()
 * fires.  Bytes evio_send queues after the close are dropped.  Returns 0
 * or EVIO_ENOTFOUND. */
EVIO_EXPORT int evio_close(evio_server *srv, uint64_t id);

/* Override evio_events.idle_timeout_ms for c: close it after ms
 * milliseconds without input; 0 turns the timeout off.  Loop thread only.
 * Returns 0, EVIO_EUDP for a UDP session (see udp_idle_ms), or
 * EVIO_ESHUTDOWN. */
EVIO_EXPORT int evio_conn_set_idle_timeout(evio_conn *c, int ms);

/* Stop reading from c: no data() with input fires until evio_conn_resume()
 * (wakes still fire data(c, NULL, 0)).  Output still flows.  For flow
 * control, e.g. a proxy that must not read faster than the other side
 * drains.  Loop thread only.  Returns 0 or EVIO_ESHUTDOWN. */
EVIO_EXPORT int evio_conn_pause(evio_conn *c);
EVIO_EXPORT int evio_conn_resume(evio_conn *c);

/* Bytes of output queued on c that the socket has not taken yet.
 * Loop thread only. */
EVIO_EXPORT size_t evio_conn_pending(const evio_conn *c);

/* Override evio_events.output_high_water for c: bytes > 0 sets the mark
 * (reading resumes at half of it), negative turns flow control off for c,
 * 0 goes back to the server's setting.  Loop thread only.  Returns 0,
 * EVIO_EUDP for a UDP session, or EVIO_ESHUTDOWN. */
EVIO_EXPORT int evio_conn_set_high_water(evio_conn *c, int bytes);

/* Override evio_events.write_timeout_ms for c: ms > 0 sets it, negative
 * turns it off for c, 0 goes back to the server's setting.  Loop thread
 * only.  Returns 0, EVIO_EUDP, or EVIO_ESHUTDOWN. */
EVIO_EXPORT int evio_conn_set_write_timeout(evio_conn *c, int ms);

/* Close c if it is still open ms milliseconds from now, whatever it does
 * meanwhile; closed() fires with -ETIMEDOUT.  For limits on a whole
 * exchange, e.g. an HTTP server's request-header timeout.  A new call
 * replaces the old deadline; 0 cancels it.  Checked on the idle wheel
 * (EVIO_IDLE_RESOLUTION_MS).  Loop thread only.  Returns 0, EVIO_EINVAL
 * for a negative ms, EVIO_EUDP, or EVIO_ESHUTDOWN. */
EVIO_EXPORT int evio_conn_set_deadline(evio_conn *c, int ms);

/* Finish our direction: once the output queued so far is written, send
 * end-of-file (shutdown(SHUT_WR); on a translated connection its finish()
 * runs first, e.g. TLS close_notify).  Reading goes on; evio_write then
 * fails with EVIO_ESHUTDOWN.  Once the peer has finished too (see
 * evio_events.eof), the connection closes: closed(c, 0).  Loop thread
 * only.  Returns 0, EVIO_EUDP, or EVIO_ESHUTDOWN. */
EVIO_EXPORT int evio_conn_shutdown_write(evio_conn *c);

/* Close c abortively as soon as the running event returns: queued output
 * is dropped and the peer gets a reset (RST) instead of end-of-file, so it
 * can tell a cut-short stream from a complete one (a proxy passes on a
 * backend's reset this way).  closed(c, 0) fires.  Loop thread only.
 * Returns 0, EVIO_EUDP, or EVIO_ESHUTDOWN. */
EVIO_EXPORT int evio_conn_reset(evio_conn *c);

/* The connection's id: unique for the life of the server, never reused,
 * never 0, unrelated to its fd.  Loop thread only (ids themselves may be
 * passed to any thread). */
EVIO_EXPORT uint64_t evio_conn_id(const evio_conn *c);

/* The user context of c, NULL until set.  evio never looks at it or frees
 * it; free it in closed()/detached() if you own it.  Loop thread only. */
EVIO_EXPORT void *evio_conn_context(const evio_conn *c);
EVIO_EXPORT void evio_conn_set_context(evio_conn *c, void *ctx);

/* The server c belongs to.  Loop thread only. */
EVIO_EXPORT evio_server *evio_conn_server(const evio_conn *c);

/* The index (0 .. nloops-1) of the loop c lives on, for state kept per
 * loop without locks.  Loop thread only. */
EVIO_EXPORT int evio_conn_loop(const evio_conn *c);

/* Enable TCP keep-alive with this idle time in seconds (also used as the
 * probe interval), or disable it with 0.  Returns 0, -ENOTSUP for unix
 * sockets, or -errno.  Loop thread only. */
EVIO_EXPORT int evio_conn_set_keepalive(evio_conn *c, int seconds);

/* For translators, inside input/output/finish of connection c:
 * deliver decoded data to the application (fires data(); returns 0, or
 * EVIO_ESHUTDOWN once the application closed the connection, when the
 * translator should stop delivering), or send encoded bytes to the socket
 * (queued like evio_write; returns 0, -ENOMEM, or EVIO_ESHUTDOWN once the
 * connection has closed). */
EVIO_EXPORT int evio_translator_deliver(evio_conn *c, const void *data, size_t len);
EVIO_EXPORT int evio_translator_send(evio_conn *c, const void *wire, size_t len);

/* For translators: close c with -ETIMEDOUT if it is still open ms
 * milliseconds from now (0 cancels), e.g. a handshake deadline.  The
 * translator's own deadline: it never replaces the application's
 * evio_conn_set_deadline().  Returns 0, EVIO_EINVAL for a negative ms,
 * -ENOMEM, or EVIO_ESHUTDOWN once the connection has closed. */
EVIO_EXPORT int evio_translator_set_deadline(evio_conn *c, int ms);

/* For translators: close c in order, as EVIO_CLOSE would (finish runs,
 * queued output is flushed), e.g. after the peer's TLS close_notify.
 * Returns 0 or EVIO_ESHUTDOWN. */
EVIO_EXPORT int evio_translator_close(evio_conn *c);

/* Attach a message to the error a translator is about to return, e.g.
 * OpenSSL's reason for a failed handshake.  Copied (up to 255 bytes). */
EVIO_EXPORT void evio_translator_set_error(evio_conn *c, const char *msg);

/* The message set by evio_translator_set_error(), or "" if none: read it in
 * closed() to tell the user why.  Loop thread only. */
EVIO_EXPORT const char *evio_conn_error(const evio_conn *c);

/* ---------------------------------------------------------------- addresses */

/* Format sa as an address string evio_serve accepts: "tcp://1.2.3.4:80",
 * "tcp://[::1]:80" or "unix:///path".  A sockaddr does not say whether it
 * is TCP or UDP, so IP addresses always get tcp://; for a listener use
 * evio_server_addr_format(), which knows.  Writes at most size bytes
 * including the terminating NUL.  Returns the length of the full string
 * (as snprintf does), EVIO_EINVAL when len is too short for sa's family,
 * or a negative code for an unsupported family.  Any thread. */
EVIO_EXPORT int evio_addr_format(const struct sockaddr *sa, socklen_t len, char *buf,
                                 size_t size);

/* Format the i-th address srv listens on, as bound (port 0 resolved), with
 * its own scheme: "udp://127.0.0.1:5000" for a UDP listener, tcp:// or
 * unix:// otherwise (options such as ?reuseport are not repeated).  Returns
 * as evio_addr_format(), or EVIO_EINVAL if i is out of range.  Any thread,
 * while the server is valid. */
EVIO_EXPORT int evio_server_addr_format(const evio_server *srv, size_t i, char *buf,
                                        size_t size);

#ifdef __cplusplus
}
#endif
#endif /* EVIO_H */
