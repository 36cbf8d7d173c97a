/* resp.h — an incremental parser for Redis requests (RESP2).
 *
 * Two request forms arrive on the wire:
 *   multibulk  *<n>\r\n then n times $<len>\r\n<len bytes>\r\n   (clients)
 *   inline     words separated by blanks, ended by \n or \r\n   (telnet;
 *              "double" and 'single' quotes as in redis-cli)
 *
 * Feed it whatever the socket delivered; it hands back one command at a time
 * as an argv/len vector.  A command that lies whole in the input is parsed
 * where it is, without a copy; only a command cut by the end of a read is
 * copied into the parser's own buffer, and then only its own bytes.
 *
 * Every size a client states is checked against a limit before it is
 * believed, and memory is allocated as bytes arrive, never because a header
 * announced them: a request that claims a 60 MB argument and sends ten bytes
 * costs ten bytes. */
#ifndef RESP_H
#define RESP_H

#include <stdbool.h>
#include <stddef.h>

/* Redis's limits: proto-max-bulk-len, the multibulk count (INT_MAX),
 * client-query-buffer-limit and PROTO_INLINE_MAX_SIZE, which bounds inline
 * lines and the "*<n>" and "$<len>" lines alike. */
#define RESP_MAX_BULK (512u << 20)         /* one argument */
#define RESP_MAX_ARGS 2147483647u          /* arguments in one multibulk */
#define RESP_MAX_REQUEST (1u << 30)        /* all bytes of one command */
#define RESP_MAX_INLINE (64u << 10)        /* one inline line */
#define RESP_MAX_HEADER (64u << 10)        /* "*<n>" and "$<len>" lines */

#define RESP_KEEP_BUFFER (64u << 10) /* larger buffers are freed after their command */
#define RESP_KEEP_ARGS 1024u         /* likewise for argument vectors */

enum { RESP_OK, RESP_AGAIN, RESP_ERROR };

/* One parsed command.  The pointers are valid until the next resp_feed()
 * or resp_free() on the parser that produced it.  argc may be 0 (a blank
 * inline line, or "*0" and any other count below 1, as Redis): there is
 * nothing to execute then. */
typedef struct resp_cmd {
    size_t argc;
    const char *const *argv;
    const size_t *len;
} resp_cmd;

/* All fields are private; a zeroed struct is a ready parser. */
typedef struct resp_parser {
    /* The argument vector of the command being parsed.  off[] holds offsets
     * from the command's first byte, so the vector survives the copy of a
     * partial command into buf; argv[] is filled from it at the end. */
    const char **argv;
    size_t *off, *len;
    size_t argc, cap;

    /* Where parsing stands, relative to the command's first byte. */
    int state;       /* where in the grammar (resp.c's S_*); 0 before the first byte */
    size_t pos;      /* next byte to examine */
    long long nargs; /* multibulk: arguments announced, -1 until known */
    long long bulk;  /* multibulk: length of the argument being read, -1 before its '$' line */

    /* A command cut by the end of a read. */
    char *buf;
    size_t blen, bcap;
    bool done; /* the last command returned points into buf */

    char *scratch; /* inline arguments with quotes, unescaped */
    size_t scap;

    char error[96];
} resp_parser;

/* Parse the next command from in[0, n).  Sets *used to the bytes consumed
 * and returns:
 *   RESP_OK     a command is in *cmd (possibly with bytes fed earlier)
 *   RESP_AGAIN  every byte was consumed and buffered; feed more later
 *   RESP_ERROR  the stream is malformed: resp_error() says why, and the
 *               connection should be closed; the parser must not be fed again
 * Returns RESP_ERROR with "out of memory" if an allocation fails. */
int resp_feed(resp_parser *p, const char *in, size_t n, size_t *used, resp_cmd *cmd);

/* Bytes of an incomplete command held by the parser. */
static inline size_t resp_buffered(const resp_parser *p) { return p->done ? 0 : p->blen; }

/* Why the last resp_feed() failed, e.g. "invalid bulk length" (the text
 * Redis uses after "Protocol error: "). */
static inline const char *resp_error(const resp_parser *p) { return p->error; }

/* Between reads: if no command is half received, give back the memory a
 * big one needed (call when the input at hand has been executed, so an
 * idle connection holds no large buffer). */
void resp_reset_big(resp_parser *p);
static inline void resp_idle(resp_parser *p)
{
    if (p->done && (p->bcap > RESP_KEEP_BUFFER || p->scap > RESP_KEEP_BUFFER ||
                    p->cap > RESP_KEEP_ARGS))
        resp_reset_big(p);
}

/* Release everything the parser holds; it is a zeroed parser again. */
void resp_free(resp_parser *p);

#endif /* RESP_H */
