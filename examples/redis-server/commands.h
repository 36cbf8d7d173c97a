/* commands.h — the command table: what each Redis command does. */
#ifndef COMMANDS_H
#define COMMANDS_H

#include <evio.h>

#include "db.h"
#include "reply.h"
#include "resp.h"

/* Execute one command (argc >= 1) against d, answering into r.  Returns
 * EVIO_CLOSE after QUIT, EVIO_SHUTDOWN after SHUTDOWN, else EVIO_NONE;
 * errors (unknown command, wrong arity, bad arguments) are replies, not
 * actions, as in Redis. */
evio_action commands_exec(db *d, const resp_cmd *cmd, reply *r);

/* Glob-style matching as Redis's KEYS and CONFIG GET do it: * ? [abc]
 * [^a-z] and \ to escape. */
int glob_match(const char *pat, size_t plen, const char *s, size_t slen, int nocase);

#endif /* COMMANDS_H */
