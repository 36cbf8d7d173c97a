#!/usr/bin/env python3
"""Peers for tests/proxy-test.sh: a scripted backend and the test clients.

  proxy-peer.py backend PORTFILE LOG [BUF]
                                         the backend behind the proxy (BUF:
                                         its sockets' buffer sizes, bytes)
  proxy-peer.py refuser PORTFILE         a bound port that refuses connections
  proxy-peer.py CASE PORT [ARGS...]      one client test case (exit 0: pass)

Everything is on 127.0.0.1.  Each client connection's first line, relayed
byte for byte by the proxy, tells the backend what to do with it:

  echo                    write back whatever arrives, until end-of-file
  sink DELAY N            read nothing for DELAY s, then read N bytes and
                          answer "OK N SHA256\\n"
  source N SEED           write N bytes of pattern(SEED), then wait for EOF
  close-after N SEED      write N bytes of pattern(SEED), then close
  watch TAG               read until end-of-file, then log "eof TAG"
  count TAG DELAY         read nothing for DELAY s, then read until
                          end-of-file and log "count TAG N SHA256"

The backend logs "open" and "close" for every connection, so the driver can
check that none is left open.
"""
import hashlib
import os
import random
import signal
import socket
import struct
import sys
import threading
import time

MiB = 1 << 20
log_lock = threading.Lock()


def log(path, line):
    with log_lock, open(path, "a") as f:
        f.write(line + "\n")


def pattern(seed, n):
    """n bytes: a 1 MiB random block of the seed, repeated."""
    block = random.Random(seed).randbytes(MiB)
    return (block * (n // MiB + 1))[:n]


def recv_exact(s, n):
    chunks, got = [], 0
    while got < n:
        b = s.recv(min(MiB, n - got))
        if not b:
            break
        chunks.append(b)
        got += len(b)
    return b"".join(chunks)


def recv_all(s):
    chunks = []
    while True:
        b = s.recv(MiB)
        if not b:
            return b"".join(chunks)
        chunks.append(b)


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS for %d" % pid)


def connect(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=60)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def fail(msg):
    print("  " + msg, flush=True)
    sys.exit(1)


# ---------------------------------------------------------------- backend

def serve_conn(c, logpath):
    log(logpath, "open")
    try:
        buf = b""
        while b"\n" not in buf:
            b = c.recv(4096)
            if not b:
                return
            buf += b
        line, rest = buf.split(b"\n", 1)
        words = line.decode().split()
        mode, args = words[0], words[1:]
        if mode == "echo":
            if rest:
                c.sendall(rest)
            while True:
                b = c.recv(MiB)
                if not b:
                    break
                c.sendall(b)
        elif mode == "sink":
            time.sleep(float(args[0]))
            n = int(args[1])
            data = rest + recv_exact(c, n - len(rest))
            c.sendall(b"OK %d %s\n" % (len(data), hashlib.sha256(data).hexdigest().encode()))
            recv_all(c)
        elif mode == "source":
            c.sendall(pattern(int(args[1]), int(args[0])))
            recv_all(c)
        elif mode == "close-after":
            c.sendall(pattern(int(args[1]), int(args[0])))
            c.shutdown(socket.SHUT_WR)
            recv_all(c)  # nothing more is sent: a clean FIN, no reset
        elif mode == "late":
            # Answer only after the client's end-of-file, and later still.
            data = rest + recv_all(c)
            time.sleep(0.2)
            c.sendall(b"late reply to %d bytes\n" % len(data))
        elif mode == "reset":
            # Send a partial reply, then abort the connection (RST).
            c.sendall(b"partial")
            time.sleep(0.2)
            c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        elif mode == "watch":
            recv_all(c)
            log(logpath, "eof " + args[0])
        elif mode == "count":
            time.sleep(float(args[1]))
            data = rest + recv_all(c)
            log(logpath, "count %s %d %s" % (args[0], len(data), hashlib.sha256(data).hexdigest()))
    except OSError as e:
        log(logpath, "error %s" % e)
    finally:
        c.close()
        log(logpath, "close")


def backend(portfile, logpath, bufsize=None):
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if bufsize:  # small buffers: an echo then waits on the proxy at once
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, int(bufsize))
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, int(bufsize))
    ls.bind(("127.0.0.1", 0))
    ls.listen(128)
    with open(portfile + ".tmp", "w") as f:
        f.write("%d\n" % ls.getsockname()[1])
    os.rename(portfile + ".tmp", portfile)
    while True:
        c, _ = ls.accept()
        threading.Thread(target=serve_conn, args=(c, logpath), daemon=True).start()


def refuser(portfile):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
    with open(portfile + ".tmp", "w") as f:
        f.write("%d\n" % s.getsockname()[1])
    os.rename(portfile + ".tmp", portfile)
    while True:
        time.sleep(3600)


# ---------------------------------------------------------------- clients

def relay_one(port, size, errors):
    try:
        payload = os.urandom(size)
        s = connect(port)
        t = threading.Thread(target=s.sendall, args=(b"echo\n" + payload,))
        t.start()
        got = recv_exact(s, size)
        t.join()
        s.close()
        if got != payload:
            errors.append("size %d: got %d bytes, %s" %
                          (size, len(got), "equal prefix" if payload.startswith(got) else "corrupt"))
    except socket.timeout as e:
        # A stall: show where the bytes wait (Recv-Q/Send-Q of every
        # socket on the proxy's port and the backend's) before closing.
        errors.append("size %d: %s\n%s" % (size, e, socket_queues()))
    except OSError as e:
        errors.append("size %d: %s" % (size, e))


def socket_queues():
    import subprocess
    try:
        return subprocess.run(["ss", "-tnoi", "state", "connected"], capture_output=True,
                              text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError) as e:
        return "(ss: %s)" % e


def case_relay(port, rounds="1"):
    """Concurrent clients, 0 to 8 MiB each, echoed byte-exact."""
    rng = random.Random()
    sizes = [0, 1, 1000, 65536, MiB + 7, 3 * MiB + 1, 8 * MiB]
    for _ in range(int(rounds)):
        batch = sizes + [rng.randrange(0, 8 * MiB + 1) for _ in range(3)]
        errors = []
        threads = [threading.Thread(target=relay_one, args=(port, n, errors)) for n in batch]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            fail("; ".join(errors))
        print("  relayed %d clients: %s bytes" % (len(batch), ",".join(map(str, batch))))


def watch_rss(pid, until, samples):
    while not until.is_set():
        samples.append(rss_kib(pid))
        time.sleep(0.05)


def check_rss(base, samples, bound_mib):
    peak = max(samples)
    growth = peak - base
    print("  proxy VmRSS: %d KiB before, peak %d KiB, growth %d KiB (bound %d MiB)" %
          (base, peak, growth, bound_mib))
    if growth > bound_mib * 1024:
        fail("proxy RSS grew by %d KiB, more than %d MiB" % (growth, bound_mib))


def case_slow_backend(port, pid, size_mib="64", bound_mib="16", delay="4"):
    """The backend does not read for DELAY s while the client sends."""
    pid, n, bound = int(pid), int(size_mib) * MiB, int(bound_mib)
    payload = os.urandom(n)
    want = hashlib.sha256(payload).hexdigest()
    base = rss_kib(pid)
    s = connect(port)
    s.sendall(b"sink %s %d\n" % (delay.encode(), n))
    sent = [0]

    def sender():
        view = memoryview(payload)
        while sent[0] < n:
            sent[0] += s.send(view[sent[0]:sent[0] + MiB])

    done, samples = threading.Event(), []
    w = threading.Thread(target=watch_rss, args=(pid, done, samples))
    w.start()
    t = threading.Thread(target=sender)
    t.start()
    time.sleep(float(delay) - 0.5)
    stalled = sent[0]
    line = b""
    while not line.endswith(b"\n"):
        b = s.recv(100)
        if not b:
            break
        line += b
    t.join()
    done.set()
    w.join()
    s.close()
    print("  client had sent %d of %d bytes when the backend began reading" % (stalled, n))
    if line != b"OK %d %s\n" % (n, want.encode()):
        fail("backend answered %r" % line)
    if stalled >= n:
        fail("the client was never held back: flow control did not reach it")
    check_rss(base, samples, bound)


def case_slow_client(port, pid, size_mib="64", bound_mib="16", delay="4"):
    """The client does not read for DELAY s while the backend sends."""
    pid, n, bound = int(pid), int(size_mib) * MiB, int(bound_mib)
    want = hashlib.sha256(pattern(7, n)).hexdigest()
    base = rss_kib(pid)
    s = connect(port)
    s.sendall(b"source %d 7\n" % n)
    done, samples = threading.Event(), []
    w = threading.Thread(target=watch_rss, args=(pid, done, samples))
    w.start()
    time.sleep(float(delay))
    got = recv_exact(s, n)
    done.set()
    w.join()
    s.close()
    if len(got) != n or hashlib.sha256(got).hexdigest() != want:
        fail("got %d of %d bytes, %s" % (len(got), n, "intact" if len(got) == n else "short"))
    check_rss(base, samples, bound)


def wait_log(logpath, prefix, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        with open(logpath) as f:
            for line in f:
                if line.startswith(prefix):
                    return line.strip()
        time.sleep(0.05)
    return None


def case_client_close(port, logpath):
    """Closing the client closes the backend connection."""
    tag = "cc%d" % os.getpid()
    s = connect(port)
    s.sendall(b"watch %s\nsome bytes" % tag.encode())
    time.sleep(0.3)
    t0 = time.time()
    s.close()
    if not wait_log(logpath, "eof " + tag, 5):
        fail("the backend connection was not closed within 5 s")
    print("  backend saw end-of-file %.0f ms after the client closed" % ((time.time() - t0) * 1000))


def case_client_close_flush(port, logpath, size_mib="8"):
    """A client that sends and closes at once: the backend still gets all."""
    tag = "cf%d" % os.getpid()
    n = int(size_mib) * MiB
    payload = os.urandom(n)
    s = connect(port)
    s.sendall(b"count %s 2\n" % tag.encode() + payload)
    s.close()
    line = wait_log(logpath, "count %s " % tag, 30)
    want = "count %s %d %s" % (tag, n, hashlib.sha256(payload).hexdigest())
    if line != want:
        fail("backend logged %r, want %r" % (line, want))


def case_backend_close(port, size_mib="8"):
    """The backend writes and closes: the client gets all, then end-of-file."""
    n = int(size_mib) * MiB
    s = connect(port)
    s.sendall(b"close-after %d 9\n" % n)
    time.sleep(1)  # let the proxy hold output while the backend closes
    got = recv_all(s)
    s.close()
    if got != pattern(9, n):
        fail("got %d of %d bytes%s" % (len(got), n, "" if len(got) != n else ", corrupt"))


def case_backend_down(port, limit_ms="2000"):
    """No backend: the client is closed promptly."""
    s = connect(port)
    t0 = time.time()
    s.settimeout(10)
    try:
        s.sendall(b"anyone there?\n")
        b = s.recv(100)
    except ConnectionResetError:
        b = b""
    except socket.timeout:
        fail("the client was not closed within 10 s")
    ms = (time.time() - t0) * 1000
    s.close()
    if b:
        fail("got %r from nowhere" % b)
    print("  client closed %.0f ms after connecting" % ms)
    if ms > float(limit_ms):
        fail("took more than %s ms" % limit_ms)


def case_busy_shutdown(port, pid):
    """SIGTERM while pairs relay: every client is closed promptly."""
    ss = []
    for i in range(20):
        s = connect(port)
        s.sendall(b"echo\n" + b"x" * 300000 if i % 2 else b"source %d 3\n" % (64 * MiB))
        ss.append(s)
    time.sleep(1)
    os.kill(int(pid), signal.SIGTERM)
    t0, closed = time.time(), 0
    for s in ss:
        s.settimeout(10)
        try:
            while s.recv(MiB):
                pass
            closed += 1
        except ConnectionResetError:
            closed += 1
        except OSError as e:
            print("  client: %s" % e)
        s.close()
    print("  %d of %d busy clients closed by the shutdown in %.0f ms" %
          (closed, len(ss), (time.time() - t0) * 1000))
    if closed != len(ss):
        fail("not every client was closed")


def case_half_close(port, rounds="20"):
    """The client shuts down its write side: the backend's later reply still
    reaches it, then end-of-file."""
    for i in range(int(rounds)):
        s = connect(port)
        s.sendall(b"late\nq")
        s.shutdown(socket.SHUT_WR)
        got = recv_all(s)
        s.close()
        if got != b"late reply to 1 bytes\n":
            fail("round %d: got %r after our FIN" % (i, got))
    print("  %s of %s half-closed clients got the late reply" % (rounds, rounds))


def case_backend_reset(port):
    """The backend resets its connection: the client sees a reset, not a
    clean end-of-file."""
    s = connect(port)
    s.sendall(b"reset\n")
    got = b""
    try:
        while True:
            b = s.recv(MiB)
            if not b:
                fail("clean end-of-file after %r: the reset was hidden" % got)
            got += b
    except ConnectionResetError:
        print("  client saw the reset after %r" % got)
    finally:
        s.close()


CASES = {
    "half-close": case_half_close,
    "backend-reset": case_backend_reset,
    "relay": case_relay,
    "slow-backend": case_slow_backend,
    "slow-client": case_slow_client,
    "client-close": case_client_close,
    "client-close-flush": case_client_close_flush,
    "backend-close": case_backend_close,
    "backend-down": case_backend_down,
    "busy-shutdown": case_busy_shutdown,
}

if __name__ == "__main__":
    what = sys.argv[1]
    if what == "backend":
        backend(*sys.argv[2:5])
    elif what == "refuser":
        refuser(sys.argv[2])
    else:
        CASES[what](int(sys.argv[2]), *sys.argv[3:])
