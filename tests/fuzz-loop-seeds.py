#!/usr/bin/env python3
"""fuzz-loop-seeds.py — write the seed inputs of tests/fuzz-loop.

    python3 tests/fuzz-loop-seeds.py OUTDIR

Each seed is one workload in fuzz-loop's input format (see the comment at
the top of tests/fuzz-loop.c): an options byte, a step count, the steps as
(operation, argument) pairs, then the fault schedule as (gap, kind) pairs.
The names say what each exercises; the fuzzer takes it from there.  The
committed corpus, tests/fuzz-corpus/loop, is this script's output plus
inputs the fuzzer found (merged with FUZZ_MERGE=yes).
"""
import os
import sys

# Options (byte 0).
EOF, EOF_CLOSE, DETACHED, SETUP_FAULTS = 1, 2, 4, 8
LOW_WATER, WRITE_HOOKS, REPLY, MAX_CONNS = 16, 32, 64, 128

# Steps.
(CONNECT, SEND, READ, SHUT_WR, CLOSE, WAKE, EVIO_SEND, EVIO_CLOSE, DIAL, IDLE,
 DRAIN, SHUTDOWN) = range(12)
# What a wake asks.
(W_WRITE, W_WRITE_BIG, W_CLOSE, W_SHUT_WR, W_RESET, W_PAUSE, W_RESUME, W_DETACH,
 W_HIGH_WATER, W_NONE, W_WRITE_CLOSE, W_DRAIN) = range(12)
UNIX, TCP = 0, 1
# Send sizes by index: 1, 10, 100, 1000, 5000, 20000, 70000, 300000.


def send(client, size_index):
    return (SEND, client | size_index << 5)


def wake(conn, action):
    return (WAKE, conn | action << 3)


def evio_send(conn, size_index):
    return (EVIO_SEND, conn | size_index << 5)


def dial(tcp, where, timeout, greet_index):
    return (DIAL, tcp | where << 1 | timeout << 3 | greet_index << 4)


def seed(opts, steps, faults=()):
    out = bytes([opts, len(steps)])
    for op, arg in steps:
        out += bytes([op, arg])
    for gap, kind in faults:
        out += bytes([gap, kind])
    return out


SEEDS = {
    "echo-unix": seed(REPLY, [(CONNECT, UNIX), send(0, 3), (READ, 0), (SHUT_WR, 0)]),
    "write-close-tcp": seed(0, [(CONNECT, TCP), wake(0, W_WRITE_CLOSE), (READ, 0)]),
    "flow-control": seed(LOW_WATER | REPLY, [
        (CONNECT, UNIX), send(0, 7), wake(0, W_WRITE_BIG), wake(0, W_PAUSE), (READ, 0),
        wake(0, W_RESUME), (READ, 0), send(0, 6)]),
    "half-close": seed(EOF, [
        (CONNECT, UNIX), send(0, 2), (SHUT_WR, 0), wake(0, W_WRITE), wake(0, W_SHUT_WR),
        (READ, 0)]),
    "detach": seed(DETACHED, [(CONNECT, TCP), wake(0, W_WRITE_BIG), wake(0, W_DETACH),
                              (READ, 0)]),
    "reset": seed(0, [(CONNECT, TCP), wake(0, W_WRITE_BIG), wake(0, W_RESET), (READ, 0)]),
    "send-close-any-thread": seed(REPLY, [
        (CONNECT, UNIX), send(0, 1), evio_send(0, 6), (EVIO_CLOSE, 0), (READ, 0)]),
    "dials": seed(REPLY, [
        dial(UNIX, 0, 0, 3), dial(TCP, 0, 1, 2), dial(UNIX, 2, 0, 0), dial(TCP, 2, 1, 0),
        dial(TCP, 3, 0, 0), (IDLE, 0), wake(0, W_WRITE), wake(1, W_CLOSE)]),
    "drain": seed(EOF | EOF_CLOSE, [
        (CONNECT, UNIX), (CONNECT, TCP), send(0, 4), (DRAIN, 0), (CONNECT, UNIX),
        wake(1, W_WRITE), (READ, 0), (SHUT_WR, 1)]),
    "shutdown": seed(0, [(CONNECT, TCP), wake(0, W_WRITE_BIG), (SHUTDOWN, 0)]),
    "max-conns": seed(MAX_CONNS | REPLY, [
        (CONNECT, UNIX), (CONNECT, TCP), (CONNECT, UNIX), (CONNECT, TCP), send(3, 2),
        (CLOSE, 0), (CONNECT, UNIX), send(4, 2), (READ, 4)]),
    # Faults: small gaps and every kind, so most calls meet one.
    "faults-accept": seed(REPLY, [
        (CONNECT, UNIX), (CONNECT, TCP), (CONNECT, UNIX), send(0, 3), send(1, 3),
        (READ, 0), (READ, 1)], [(2, k) for k in (2, 3, 0, 1, 4, 7)]),
    "faults-io": seed(REPLY | WRITE_HOOKS, [
        (CONNECT, UNIX), send(0, 6), (READ, 0), wake(0, W_WRITE_BIG), (READ, 0),
        send(0, 5), wake(0, W_WRITE_CLOSE)], [(3, k) for k in range(4, 64, 5)]),
    "faults-setup": seed(SETUP_FAULTS | REPLY, [(CONNECT, UNIX), send(0, 2)],
                         [(0, 0), (1, 1), (2, 2)]),
    "faults-poll": seed(REPLY, [
        (CONNECT, TCP), send(0, 3), (IDLE, 0), (IDLE, 0), wake(0, W_WRITE), (READ, 0)],
        [(1, 1), (1, 2), (1, 3), (1, 0), (1, 5), (1, 6)]),
    "faults-dial": seed(0, [dial(TCP, 0, 1, 3), dial(UNIX, 0, 0, 3), (IDLE, 0), (IDLE, 0)],
                        [(1, 4), (1, 9), (2, 3), (1, 0)]),
}


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: fuzz-loop-seeds.py OUTDIR")
    os.makedirs(sys.argv[1], exist_ok=True)
    for name, data in SEEDS.items():
        with open(os.path.join(sys.argv[1], "seed-" + name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
