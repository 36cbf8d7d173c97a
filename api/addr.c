/* addr.c — address strings: "scheme://host:port?opt=val" to sockaddrs and back. */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "internal.h"

#define EVIO__ADDR_MAX 1024 /* longer strings are refused, not truncated */

static int parse_bool(const char *v, size_t n, bool *out)
{
    static const char *const yes[] = {"true", "1", "yes", "on"};
    static const char *const no[] = {"false", "0", "no", "off"};
    for (size_t i = 0; i < 4; i++) {
        if (strlen(yes[i]) == n && strncmp(v, yes[i], n) == 0)
            return *out = true, 0;
        if (strlen(no[i]) == n && strncmp(v, no[i], n) == 0)
            return *out = false, 0;
    }
    return EVIO_EOPTION;
}

/* Octal permission bits, at most 0777: "0660", "660". */
static int parse_mode(const char *v, size_t n, int *out)
{
    int m = 0;
    if (n == 0 || n > 4)
        return EVIO_EOPTION;
    for (size_t i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '7')
            return EVIO_EOPTION;
        m = m * 8 + (v[i] - '0');
    }
    if (m > 0777)
        return EVIO_EOPTION;
    *out = m;
    return 0;
}

/* "k=v&k=v"; every key must be known. */
static int parse_options(const char *q, evio__addr *out)
{
    while (*q) {
        const char *end = strchr(q, '&');
        size_t n = end ? (size_t)(end - q) : strlen(q);
        const char *eq = memchr(q, '=', n);
        if (!eq)
            return EVIO_EOPTION;
        size_t klen = (size_t)(eq - q);
        if (klen == 9 && strncmp(q, "reuseport", 9) == 0) {
            if (parse_bool(eq + 1, n - klen - 1, &out->reuseport))
                return EVIO_EOPTION;
        } else if (klen == 4 && strncmp(q, "mode", 4) == 0) {
            if (parse_mode(eq + 1, n - klen - 1, &out->mode))
                return EVIO_EOPTION;
        } else {
            return EVIO_EOPTION;
        }
        q += n + (end ? 1 : 0);
    }
    return 0;
}

static int parse_port(const char *s, size_t n, in_port_t *out)
{
    if (n == 0 || n > 5)
        return EVIO_EADDR;
    unsigned v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return EVIO_EADDR;
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    if (v > 65535)
        return EVIO_EADDR;
    *out = htons((in_port_t)v);
    return 0;
}

/* A numeric host, or 0 if host is a name. */
static int numeric_host(const char *host, int family, in_port_t port, evio__addr *out)
{
    struct sockaddr_in *sin = (struct sockaddr_in *)&out->sa;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&out->sa;
    if (family != AF_INET6 && inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
        sin->sin_port = port;
        out->len = sizeof *sin;
        return 1;
    }
    if (family != AF_INET && inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = port;
        out->len = sizeof *sin6;
        return 1;
    }
    return 0;
}

/* host may be empty (every address), numeric, or a name.  Names go through
 * getaddrinfo when resolve is set (evio_serve runs before the loop, so
 * blocking there is fine); otherwise they are kept for the resolver. */
static int resolve_host(const char *host, int family, in_port_t port, evio__addr *out,
                        bool resolve)
{
    if (*host && numeric_host(host, family, port, out))
        return 0;
    if (*host && !resolve) {
        size_t n = strlen(host);
        if (n >= sizeof out->host)
            return EVIO_EADDR;
        memcpy(out->host, host, n + 1);
        out->family = family;
        out->port = port;
        out->unresolved = true;
        return 0;
    }
    if (!*host) {
        out->anyhost = true;
        if (family == AF_INET) {
            struct sockaddr_in *sin = (struct sockaddr_in *)&out->sa;
            sin->sin_family = AF_INET;
            sin->sin_addr.s_addr = htonl(INADDR_ANY);
            sin->sin_port = port;
            out->len = sizeof *sin;
        } else {
            struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&out->sa;
            sin6->sin6_family = AF_INET6;
            sin6->sin6_addr = in6addr_any;
            sin6->sin6_port = port;
            out->len = sizeof *sin6;
            out->dualstack = family == AF_UNSPEC;
        }
        return 0;
    }
    struct addrinfo hints = {.ai_family = family, .ai_socktype = out->socktype}, *res;
    if (getaddrinfo(host, NULL, &hints, &res) != 0)
        return EVIO_EADDR;
    memcpy(&out->sa, res->ai_addr, res->ai_addrlen);
    out->len = res->ai_addrlen;
    freeaddrinfo(res);
    evio__addr_set_port(out, port);
    return 0;
}

void evio__addr_set_port(evio__addr *a, in_port_t port)
{
    if (a->sa.ss_family == AF_INET)
        ((struct sockaddr_in *)&a->sa)->sin_port = port;
    else if (a->sa.ss_family == AF_INET6)
        ((struct sockaddr_in6 *)&a->sa)->sin6_port = port;
}

static int parse_unix(const char *path, size_t n, evio__addr *out)
{
    struct sockaddr_un *sun = (struct sockaddr_un *)&out->sa;
    if (n == 0 || n >= sizeof sun->sun_path || memchr(path, '\0', n))
        return EVIO_EADDR;
    sun->sun_family = AF_UNIX;
    memcpy(sun->sun_path, path, n);
    sun->sun_path[n] = '\0';
    out->len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
    return 0;
}

int evio__addr_parse(const char *s, evio__addr *out, bool resolve)
{
    *out = (evio__addr){.socktype = SOCK_STREAM, .mode = -1};
    if (!s || strnlen(s, EVIO__ADDR_MAX + 1) > EVIO__ADDR_MAX)
        return EVIO_EADDR;

    int family = AF_UNSPEC;
    bool is_unix = false;
    const char *rest = s, *sep = strstr(s, "://");
    if (sep) {
        size_t n = (size_t)(sep - s);
        if (n == 4 && strncmp(s, "unix", 4) == 0) {
            is_unix = true;
        } else if (n >= 3 && n <= 4 &&
                   (strncmp(s, "tcp", 3) == 0 || strncmp(s, "udp", 3) == 0)) {
            if (s[0] == 'u')
                out->socktype = SOCK_DGRAM;
            if (n == 4 && s[3] == '4')
                family = AF_INET;
            else if (n == 4 && s[3] == '6')
                family = AF_INET6;
            else if (n == 4)
                return EVIO_ESCHEME;
        } else {
            return EVIO_ESCHEME;
        }
        rest = sep + 3;
    }

    const char *q = strchr(rest, '?');
    size_t n = q ? (size_t)(q - rest) : strlen(rest);
    if (q) {
        int err = parse_options(q + 1, out);
        if (err)
            return err;
    }
    if (is_unix)
        return parse_unix(rest, n, out);
    if (out->mode >= 0) /* a file's mode: unix sockets only */
        return EVIO_EOPTION;

    /* host:port, [v6]:port or :port */
    char host[256];
    const char *colon;
    size_t hlen;
    const char *hstart = rest;
    if (n > 0 && rest[0] == '[') {
        const char *close = memchr(rest, ']', n);
        if (!close || close + 1 >= rest + n || close[1] != ':')
            return EVIO_EADDR;
        hstart = rest + 1;
        hlen = (size_t)(close - hstart);
        colon = close + 1;
        if (family == AF_UNSPEC)
            family = AF_INET6;
        if (family != AF_INET6)
            return EVIO_EADDR;
    } else {
        colon = NULL;
        for (const char *p = rest; p < rest + n; p++)
            if (*p == ':')
                colon = p;
        if (!colon)
            return EVIO_EADDR;
        hlen = (size_t)(colon - rest);
        if (memchr(rest, ':', hlen)) /* a bare v6 address needs brackets */
            return EVIO_EADDR;
    }
    if (hlen >= sizeof host)
        return EVIO_EADDR;
    memcpy(host, hstart, hlen);
    host[hlen] = '\0';

    in_port_t port;
    if (parse_port(colon + 1, (size_t)(rest + n - colon - 1), &port))
        return EVIO_EADDR;
    return resolve_host(host, family, port, out, resolve);
}

int evio_addr_format(const struct sockaddr *sa, socklen_t len, char *buf, size_t size)
{
    return evio__addr_format(sa, len, SOCK_STREAM, buf, size);
}

int evio__addr_format(const struct sockaddr *sa, socklen_t len, int socktype, char *buf,
                      size_t size)
{
    const char *scheme = socktype == SOCK_DGRAM ? "udp" : "tcp";
    char host[INET6_ADDRSTRLEN];
    if (!sa || len < (socklen_t)sizeof sa->sa_family)
        return EVIO_EINVAL;
    switch (sa->sa_family) {
    case AF_INET: {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;
        if (len < (socklen_t)sizeof *sin) /* never read past what the caller has */
            return EVIO_EINVAL;
        inet_ntop(AF_INET, &sin->sin_addr, host, sizeof host);
        return snprintf(buf, size, "%s://%s:%u", scheme, host, ntohs(sin->sin_port));
    }
    case AF_INET6: {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;
        if (len < (socklen_t)sizeof *sin6)
            return EVIO_EINVAL;
        inet_ntop(AF_INET6, &sin6->sin6_addr, host, sizeof host);
        return snprintf(buf, size, "%s://[%s]:%u", scheme, host, ntohs(sin6->sin6_port));
    }
    case AF_UNIX: {
        const struct sockaddr_un *sun = (const struct sockaddr_un *)sa;
        size_t plen = len > offsetof(struct sockaddr_un, sun_path)
                          ? strnlen(sun->sun_path, len - offsetof(struct sockaddr_un, sun_path))
                          : 0;
        return snprintf(buf, size, "unix://%.*s", (int)plen, sun->sun_path);
    }
    }
    return -EAFNOSUPPORT;
}
