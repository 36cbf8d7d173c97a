#!/usr/bin/env python3
"""redis-clients.py PORT PID — the Redis clone with a mainstream client
library's defaults, and its memory bounds.  Run by tests/redis-test.sh.

  redis-py (Debian's python3-redis) with its defaults: client_name= (CLIENT
  SETNAME), pipeline() (MULTI/EXEC), transaction() (WATCH), scan_iter()
  (SCAN), info(), expire(), flushall().

  Memory: one MGET naming a 1 MB value 512 times from a client that never
  reads must not build its 512 MB reply (the server grows by less than the
  output limit plus one value) and other clients keep answering PING
  meanwhile; connections that sent big requests give the buffers back once
  idle; FLUSHDB gives the memory of many keys back.

Prints "ok NAME" or "FAIL NAME: detail" per check; exits 1 on any failure.
Every wait is bounded; every socket is to 127.0.0.1."""
import socket
import sys
import threading
import time

import os

import redis

port, pid = int(sys.argv[1]), int(sys.argv[2])
failed = 0
# Under AddressSanitizer freed memory is not given back to the system.
sanitized = bool(os.environ.get("SANITIZED"))


def check(name, cond, detail=""):
    global failed
    if cond:
        print("ok   " + name)
    else:
        failed += 1
        print("FAIL " + name + (": " + str(detail) if detail else ""))


def rss_mb():
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return 0.0


def command(sock, *args):
    out = b"*%d\r\n" % len(args)
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    sock.sendall(out)


def read_line(sock):
    buf = b""
    while not buf.endswith(b"\r\n"):
        chunk = sock.recv(1)
        if not chunk:
            break
        buf += chunk
    return buf


def connect():
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    return s


# ---------------------------------------------------------------- redis-py

r = redis.Redis(host="127.0.0.1", port=port, client_name="evio-test", socket_timeout=10)
check("redis-py: connect with client_name= (CLIENT SETNAME)", r.ping() is True)
check("redis-py: client_getname()", r.client_getname() in ("evio-test", b"evio-test"), r.client_getname())
check("redis-py: flushall()", r.flushall() is True)
p = r.pipeline()  # transaction=True by default: MULTI ... EXEC
p.set("a", 1).incr("a").get("a").expire("a", 100).ttl("a")
got = p.execute()
check("redis-py: pipeline() runs MULTI/EXEC", got == [True, 2, b"2", True, 100], got)
for i in range(200):
    r.set("k%d" % i, i)
keys = set(r.scan_iter(match="k*", count=7))
check("redis-py: scan_iter() sees every key once", len(keys) == 200, len(keys))
info = r.info()
check("redis-py: info()", info.get("redis_version") and info.get("db0", {}).get("keys") == 201, info.get("db0"))
check("redis-py: info('cpu')", "used_cpu_user" in r.info("cpu"))
check("redis-py: expire() and ttl()", r.expire("k1", 10) is True and 0 < r.ttl("k1") <= 10)


def bump(pipe):
    v = int(pipe.get("a"))
    pipe.multi()
    pipe.set("a", v + 1)


r.transaction(bump, "a")
check("redis-py: transaction() (WATCH, MULTI, EXEC)", r.get("a") == b"3", r.get("a"))

# WATCH: a change by another client makes EXEC fail.
other = redis.Redis(host="127.0.0.1", port=port)
with r.pipeline() as pipe:
    pipe.watch("a")
    other.set("a", 100)
    pipe.multi()
    pipe.set("a", 0)
    try:
        pipe.execute()
        aborted = False
    except redis.WatchError:
        aborted = True
check("redis-py: EXEC fails after a watched key changed", aborted and r.get("a") == b"100")
names = [c.get("name") for c in r.client_list()]
check("redis-py: client_list() shows the name", "evio-test" in names, names)
check("redis-py: client_id()", isinstance(r.client_id(), int))
check("redis-py: config_get()", r.config_get("maxmemory") == {"maxmemory": "0"})
check("redis-py: dbsize(), type(), time()",
      r.dbsize() == 201 and r.type("a") == b"string" and len(r.time()) == 2)
other.close()

# ---------------------------------------------------------------- memory

# One MGET of a 1 MB value 512 times (4.6 KB of request, 512 MB of reply)
# from a client that does not read.
r.set("big", b"x" * 1000000)
before = rss_mb()
pings, stop = [], threading.Event()


def pinger():
    s = connect()
    while not stop.is_set():
        t = time.perf_counter()
        s.sendall(b"PING\r\n")
        read_line(s)
        pings.append(time.perf_counter() - t)
        time.sleep(0.002)
    s.close()


th = threading.Thread(target=pinger)
th.start()
time.sleep(0.2)
greedy = connect()
greedy.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
command(greedy, "mget", *(["big"] * 512))
time.sleep(0.5)
grown = rss_mb() - before
stop.set()
th.join(10)
pings.sort()
limit_mb = 32 + 1  # the default output limit plus one value
check("MGET of 512 x 1 MB, not read: server grew %.1f MB (limit + one value: %d MB)" % (grown, limit_mb),
      grown < limit_mb)
worst = pings[-1] * 1000 if pings else 1e9
# The worst of a few hundred pings on a shared, loaded machine: 10 ms is
# the goal, 100 ms the bound that fails only when the server stalls.
check("... while other clients' PING answered within %.1f ms (p99 %.1f ms, %d pings)"
      % (worst, pings[int(len(pings) * 0.99)] * 1000 if pings else 0, len(pings)),
      pings and worst < 100)
greedy.settimeout(10)
line = read_line(greedy)
check("... and the MGET is refused with an error", line.startswith(b"-ERR the reply"), line[:80])
greedy.close()

# Connections that each SET 60 MiB, left idle: the request buffers go back.
before = rss_mb()
idle = []
for i in range(3):
    s = connect()
    command(s, "set", "huge%d" % i, b"y" * (60 << 20))
    idle.append((s, read_line(s)))
check("3 x SET of 60 MiB", all(reply == b"+OK\r\n" for _, reply in idle))
r.delete("huge0", "huge1", "huge2")
deadline = time.time() + 5
while time.time() < deadline and rss_mb() - before > 24:
    time.sleep(0.1)
grown = rss_mb() - before
if sanitized:
    check("... then DEL, connections idle: not measured under AddressSanitizer", True)
else:
    check("... then DEL, connections idle: server holds %.1f MB more (Redis: about 12)" % grown, grown < 24)
for s, _ in idle:
    s.close()

# FLUSHDB of many keys gives the memory back.
r.flushall()
before = rss_mb()
p = r.pipeline(transaction=False)
for i in range(100000):
    p.set("key:%d" % i, "v")
    if i % 10000 == 9999:
        p.execute()
full = rss_mb()
r.flushdb()
deadline = time.time() + 10
while time.time() < deadline and rss_mb() - before > (full - before) / 3:
    time.sleep(0.1)
after = rss_mb()
if sanitized:
    check("FLUSHDB of 100k keys: RSS not measured under AddressSanitizer", r.dbsize() == 0)
else:
    check("FLUSHDB of 100k keys: RSS %.0f MB -> %.0f MB (before: %.0f MB)" % (full, after, before),
          after - before < (full - before) / 3)

r.close()
sys.exit(1 if failed else 0)
