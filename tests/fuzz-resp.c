/* fuzz-resp.c — libFuzzer target for the RESP parser
 * (examples/redis-server/resp.c).
 *
 *   make fuzz-resp                        (clang; never part of make check)
 *   tests/fuzz-resp -max_total_time=60 -max_len=4096 [CORPUS_DIR]
 *
 * The input's first four bytes seed the sizes of the pieces the rest is
 * fed in, as reads from a socket would cut it.  The same stream is parsed
 * whole, one byte at a time and in those pieces, and the three transcripts
 * (every command's arguments, then the error or the bytes left buffered)
 * must agree: a command means the same however it arrives.  Along the way
 * the parser's contract is checked: it never claims more bytes than it was
 * given, always makes progress, and keeps within its limits.  Address and
 * undefined-behaviour sanitizers watch the rest. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "resp.h"

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz-resp: %s:%d: %s\n", __FILE__, __LINE__, #cond);                  \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* The transcript, as a running FNV-1a hash. */
static void mix(uint64_t *h, const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++)
        *h = (*h ^ b[i]) * 0x100000001b3ULL;
}

static void mix_size(uint64_t *h, size_t v)
{
    uint64_t x = v;
    mix(h, &x, sizeof x);
}

/* Piece sizes: 0 = the whole stream, 1 = one byte each, else random in
 * [1, 64] mostly, sometimes larger, from an xorshift seeded by seed. */
static size_t next_piece(int mode, uint32_t *seed)
{
    if (mode == 0)
        return SIZE_MAX;
    if (mode == 1)
        return 1;
    uint32_t x = *seed;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    *seed = x ? x : 1;
    return (x & 7) == 0 ? 1 + (x >> 8) % 4096 : 1 + (x >> 8) % 64;
}

static uint64_t transcript(const uint8_t *data, size_t n, int mode, uint32_t seed)
{
    resp_parser p = {0};
    uint64_t h = 0xcbf29ce484222325ULL;
    size_t off = 0;
    while (off < n) {
        size_t piece = next_piece(mode, &seed);
        if (piece > n - off)
            piece = n - off;
        const char *in = (const char *)data + off;
        size_t left = piece;
        off += piece;
        while (left > 0) { /* one data() event */
            resp_cmd cmd;
            size_t used = SIZE_MAX;
            int st = resp_feed(&p, in, left, &used, &cmd);
            CHECK(used <= left);
            in += used;
            left -= used;
            CHECK(resp_buffered(&p) <= RESP_MAX_REQUEST + 2 * RESP_MAX_INLINE);
            if (st == RESP_AGAIN) {
                CHECK(left == 0);
                break;
            }
            if (st == RESP_ERROR) {
                CHECK(resp_error(&p)[0] != '\0');
                mix(&h, "E", 1);
                mix(&h, resp_error(&p), strlen(resp_error(&p)));
                resp_free(&p);
                return h;
            }
            CHECK(st == RESP_OK);
            CHECK(used > 0);
            CHECK(cmd.argc <= RESP_MAX_ARGS);
            mix(&h, "C", 1);
            mix_size(&h, cmd.argc);
            for (size_t i = 0; i < cmd.argc; i++) {
                CHECK(cmd.len[i] <= RESP_MAX_BULK);
                mix_size(&h, cmd.len[i]);
                mix(&h, cmd.argv[i], cmd.len[i]); /* reads every byte: ASan checks the pointers */
            }
        }
    }
    mix(&h, "A", 1);
    mix_size(&h, resp_buffered(&p));
    resp_free(&p);
    return h;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint32_t seed = 1;
    if (size >= 4) {
        memcpy(&seed, data, 4);
        data += 4;
        size -= 4;
    }
    uint64_t whole = transcript(data, size, 0, seed);
    CHECK(transcript(data, size, 2, seed | 1) == whole);
    if (size <= 4096)
        CHECK(transcript(data, size, 1, seed) == whole);
    return 0;
}
