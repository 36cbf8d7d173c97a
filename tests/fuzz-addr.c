/* fuzz-addr.c — libFuzzer target for the address parser (api/addr.c):
 * evio__addr_parse, which every evio_serve and evio_dial address goes
 * through, and evio_addr_format, its inverse.
 *
 *   make tests/fuzz-addr && tests/fuzz-addr -max_total_time=60 tests/fuzz-corpus/addr
 *   make fuzz FUZZ_SECONDS=600            (every target; see Makefile.am)
 *
 * The input, cut at its first NUL, is parsed as an address string without
 * resolving (names are never looked up: no DNS, no network).  What a
 * successful parse promises is checked: a known family with the matching
 * length, a unix path NUL-terminated inside sun_path, a name for the
 * resolver NUL-terminated inside host, options only where they apply.
 * Parsing with resolve set must agree whenever no name is involved, and
 * formatting a parsed address and parsing that again gives the same
 * address.  Then the raw input is handed to evio_addr_format as a sockaddr
 * of exactly its length, in a buffer of that size: the formatter must not
 * read past len, and what it formats must parse.  Address and
 * undefined-behaviour sanitizers watch the rest. */
#include "config.h"

#include <arpa/inet.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "internal.h"

/* "unix://" and the longest sun_path, with room to spare. */
#define FORMAT_MAX 256

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz-addr: %s:%d: %s\n", __FILE__, __LINE__, #cond);                  \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* The bytes of the address that a parse stands for (what bind/connect see,
 * or the name and port for the resolver), for comparing two parses. */
static void same_addr(const evio__addr *a, const evio__addr *b)
{
    CHECK(a->socktype == b->socktype);
    CHECK(a->unresolved == b->unresolved);
    if (a->unresolved) {
        CHECK(strcmp(a->host, b->host) == 0);
        CHECK(a->port == b->port && a->family == b->family);
        return;
    }
    CHECK(a->len == b->len);
    CHECK(a->sa.ss_family == b->sa.ss_family);
    switch (a->sa.ss_family) {
    case AF_INET: {
        const struct sockaddr_in *x = (const void *)&a->sa, *y = (const void *)&b->sa;
        CHECK(x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr);
        break;
    }
    case AF_INET6: {
        const struct sockaddr_in6 *x = (const void *)&a->sa, *y = (const void *)&b->sa;
        CHECK(x->sin6_port == y->sin6_port);
        CHECK(memcmp(&x->sin6_addr, &y->sin6_addr, sizeof x->sin6_addr) == 0);
        break;
    }
    case AF_UNIX: {
        const struct sockaddr_un *x = (const void *)&a->sa, *y = (const void *)&b->sa;
        CHECK(strcmp(x->sun_path, y->sun_path) == 0);
        break;
    }
    default:
        CHECK(!"a family parse never makes");
    }
}

/* What any successful parse must look like. */
static void check_parsed(const char *s, const evio__addr *a)
{
    CHECK(a->socktype == SOCK_STREAM || a->socktype == SOCK_DGRAM);
    if (a->socktype == SOCK_DGRAM)
        CHECK(strncmp(s, "udp", 3) == 0);
    CHECK(a->mode >= -1 && a->mode <= 0777);
    CHECK(a->family == AF_UNSPEC || a->family == AF_INET || a->family == AF_INET6);
    if (a->reuseport || a->mode >= 0)
        CHECK(strchr(s, '?') != NULL);
    if (a->unresolved) { /* a name, kept for the resolver */
        size_t n = strnlen(a->host, sizeof a->host);
        CHECK(n > 0 && n < sizeof a->host);
        CHECK(strstr(s, a->host) != NULL);
        CHECK(a->len == 0 && !a->anyhost && !a->dualstack && a->mode == -1);
        return;
    }
    switch (a->sa.ss_family) {
    case AF_INET:
        CHECK(a->len == sizeof(struct sockaddr_in));
        CHECK(a->family != AF_INET6 && a->mode == -1 && !a->dualstack);
        break;
    case AF_INET6:
        CHECK(a->len == sizeof(struct sockaddr_in6));
        CHECK(a->family != AF_INET && a->mode == -1);
        if (a->dualstack)
            CHECK(a->anyhost && a->family == AF_UNSPEC);
        break;
    case AF_UNIX: {
        const struct sockaddr_un *sun = (const void *)&a->sa;
        size_t n = strnlen(sun->sun_path, sizeof sun->sun_path);
        CHECK(n > 0 && n < sizeof sun->sun_path); /* NUL-terminated inside sun_path */
        CHECK(a->len == offsetof(struct sockaddr_un, sun_path) + n + 1);
        CHECK(a->len <= sizeof a->sa);
        CHECK(strncmp(s, "unix://", 7) == 0 && a->socktype == SOCK_STREAM);
        CHECK(!a->anyhost && !a->dualstack);
        break;
    }
    default:
        CHECK(!"parse succeeded with no family");
    }
}

/* Format a, parse the result again: the same address. */
static void round_trip(const evio__addr *a)
{
    char buf[FORMAT_MAX];
    int n = evio__addr_format((const struct sockaddr *)&a->sa, a->len, a->socktype, buf,
                              sizeof buf);
    CHECK(n > 0 && (size_t)n < sizeof buf);
    CHECK(strlen(buf) == (size_t)n);
    evio__addr b;
    CHECK(evio__addr_parse(buf, &b, false) == 0);
    same_addr(a, &b);
}

static void parse_string(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1); /* exactly sized: overreads hit the redzone */
    if (!s)
        return;
    memcpy(s, data, size);
    s[size] = '\0';

    evio__addr a;
    int err = evio__addr_parse(s, &a, false);
    CHECK(err == 0 || err == EVIO_EADDR || err == EVIO_ESCHEME || err == EVIO_EOPTION);
    if (err == 0)
        check_parsed(s, &a);
    /* Resolving differs only for a name, which would go to getaddrinfo:
     * never here.  A failed parse failed before any lookup. */
    if (err != 0 || !a.unresolved) {
        evio__addr r;
        CHECK(evio__addr_parse(s, &r, true) == err);
        if (err == 0) {
            same_addr(&a, &r);
            CHECK(a.anyhost == r.anyhost && a.dualstack == r.dualstack);
            CHECK(a.reuseport == r.reuseport && a.mode == r.mode);
        }
    }
    if (err == 0 && !a.unresolved)
        round_trip(&a);
    free(s);
}

/* The input as a sockaddr of exactly its length. */
static void format_raw(const uint8_t *data, size_t size)
{
    if (size > sizeof(struct sockaddr_storage))
        size = sizeof(struct sockaddr_storage);
    void *sa = malloc(size ? size : 1);
    if (!sa)
        return;
    memcpy(sa, data, size);
    char buf[FORMAT_MAX];
    int n = evio_addr_format(sa, (socklen_t)size, buf, sizeof buf);
    if (n >= 0) {
        CHECK((size_t)n < sizeof buf && strlen(buf) == (size_t)n);
        sa_family_t family = ((const struct sockaddr *)sa)->sa_family;
        evio__addr a;
        int err = evio__addr_parse(buf, &a, false);
        /* A unix path may hold what a string cannot (a '?', nothing). */
        if (family != AF_UNIX) {
            CHECK(err == 0 && !a.unresolved && a.sa.ss_family == family);
            round_trip(&a);
        }
    }
    /* A short buffer truncates, as snprintf does, and stays terminated. */
    char small[8];
    n = evio_addr_format(sa, (socklen_t)size, small, sizeof small);
    if (n >= 0)
        CHECK(strlen(small) == ((size_t)n < sizeof small ? (size_t)n : sizeof small - 1));
    free(sa);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    parse_string(data, size);
    format_raw(data, size);
    return 0;
}
