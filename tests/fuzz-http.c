/* fuzz-http.c — libFuzzer target for the HTTP example's request parser.
 *
 *   make fuzz-http && tests/fuzz-http -max_total_time=60 -max_len=16384
 *
 * Parses the input as a stream of pipelined requests, the way the server
 * does, and checks what the parser promises: a head length within the
 * buffer, method and target inside the head, a known version. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf = malloc(size ? size : 1); /* a copy, so overreads hit the redzone */
    if (!buf)
        return 0;
    memcpy(buf, data, size);
    size_t off = 0;
    while (off < size) {
        http_request req;
        long n = http_parse(buf + off, size - off, HTTP_MAX_HEAD, &req);
        if (n <= 0)
            break;
        if ((size_t)n > size - off || req.method_len == 0 || req.target_len == 0 ||
            req.method < buf + off || req.target + req.target_len > buf + off + n ||
            (req.minor != 0 && req.minor != 1))
            abort();
        off += (size_t)n;
        if (req.content_length > size - off)
            break;
        off += (size_t)req.content_length;
    }
    free(buf);
    return 0;
}
