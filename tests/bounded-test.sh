#!/bin/bash
# bounded-test.sh ECHO-SERVER HTTP-SERVER — a client that writes as fast as
# it can and never reads must not make a server's memory grow without bound
# (issue 11: the output high-water mark, EVIO_DEFAULT_HIGH_WATER = 64 KiB,
# stops reading a connection whose queued output reached it).
#
# ECHO-SERVER is examples/echo-server and HTTP-SERVER examples/http-server,
# each built against one backend (tests/echo-server-NAME,
# tests/http-server-NAME).  Each is started on a kernel-chosen port; a
# python3 client writes for $SECS s (echo: 64 KiB blocks; HTTP: pipelined
# "GET / HTTP/1.1" requests) and never reads, while the server's VmRSS is
# sampled every 50 ms.  The peak growth over the warm server must stay under
# $BOUND_MIB MiB.  That is generous: the mark (64 KiB) plus one read (64 KiB),
# the responses to one read's requests and the allocator's slack come to
# well under 1 MiB, while a server that never stops reading grew by 1 GB in
# 5 s (the client gives up as soon as the bound is passed, so a failing run
# stays small).  Then, with the writer still connected, a normal client
# must be answered; the writer closes, the server must drop its connection
# (its fd count returns to what it was), answer again and stop with status
# 0 on SIGTERM.
#
# Slowloris: 1,000 clients that each send an unfinished request head and
# then one byte every 500 ms (and 100 that go silent after two header lines)
# against the HTTP server run with --header-timeout 1000: every one must be
# closed after that timeout (not before it), and the server's fds and RSS
# must come back to their baseline.  Every wait is bounded.  The last line
# is "N passed, N failed".
set -u
ulimit -n 4096 2>/dev/null || true # 1,100 slowloris clients and the server's ends
echo_server=$1
http_server=$2
SECS=3
BOUND_MIB=${BOUNDED_TEST_MIB:-16} # the environment may raise it, to measure an unbounded server
# Under AddressSanitizer freed memory waits in a quarantine (256 MiB by
# default) before reuse, so RSS would measure ASan, not the server: keep
# the quarantine small.  No effect on other builds.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=1"
pass=0
fail=0
ok() { echo "PASS: $1"; pass=$((pass + 1)); }
bad() { echo "FAIL: $1${2:+ -- $2}"; fail=$((fail + 1)); }
finish() { echo "$pass passed, $fail failed"; [ "$fail" -eq 0 ]; exit $?; }

command -v python3 >/dev/null || { echo "python3 is not installed (scripts/deps installs it)"; fail=1; finish; }
tmp=$(mktemp -d /tmp/evio-bounded-test.XXXXXX)
pid=
trap '[ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null; rm -rf "$tmp"' EXIT

# start NAME ARGS...: start the server, set pid and port (empty if it failed).
start() {
    port=
    timeout 120 "$@" >"$tmp/out" 2>"$tmp/err" &
    pid=$!
    for _ in $(seq 200); do   # 10 s
        port=$(sed -n 's/^listening on [a-z]*:.*:\([0-9]*\)$/\1/p' "$tmp/out" | head -n 1)
        [ -n "$port" ] && break
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    # the server itself, not timeout(1), for /proc/PID
    spid=$(pgrep -P "$pid" | head -n 1)
    [ -n "$spid" ] || spid=$pid
}

# stop: SIGTERM to the server, at most 10 s; sets rc.
stop() {
    kill -TERM "$spid" 2>/dev/null
    for _ in $(seq 100); do kill -0 "$spid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$spid" 2>/dev/null
    rc=0
    wait "$pid" || rc=$?
    pid=
}

# The client: py WHAT PORT PID runs the check of that name, under timeout.
py() {
    timeout -k 5 $((SECS + 40)) python3 - "$@" "$SECS" "$BOUND_MIB" <<'PY'
import os, select, socket, sys, time
what, port, pid, secs, bound_mib = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
HTTP = what in ("http", "slowloris")

def rss_kib():
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise SystemExit("no VmRSS for pid %d" % pid)

def nfds():
    return len(os.listdir("/proc/%d/fd" % pid))

def normal():
    """One request on a new connection; the whole answer within 5 s."""
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    if HTTP:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        got = b""
        while True:
            d = s.recv(4096)
            if not d:
                break
            got += d
        ok = got.startswith(b"HTTP/1.1 200 OK") and got.endswith(b"Hello World!")
    else:
        msg = b"still there?\n"
        s.sendall(msg)
        got = b""
        while len(got) < len(msg):
            d = s.recv(4096)
            if not d:
                break
            got += d
        ok = got == msg
    s.close()
    if not ok:
        raise SystemExit("a normal client got %r" % got[:200])

def wait_for(cond, what):
    end = time.monotonic() + 5
    while not cond():
        if time.monotonic() > end:
            raise SystemExit("timed out (5 s) waiting for " + what)
        time.sleep(0.02)

if what == "slowloris":
    import selectors
    normal()
    time.sleep(0.2)
    fds0, base = nfds(), rss_kib()
    timeout_s = 1.0
    conns = []
    t0 = time.monotonic()
    for i in range(1100):
        c = socket.create_connection(("127.0.0.1", port), timeout=10)
        c.setblocking(False)
        # 1,000 trickle a head forever; 100 send two header lines, then nothing
        c.sendall(b"GET / HTTP/1.1\r\nHost" if i < 1000 else b"GET / HTTP/1.1\r\nHost: x\r\n")
        conns.append([c, time.monotonic(), None])
    peak = rss_kib()
    sel = selectors.DefaultSelector()
    for k, e in enumerate(conns):
        sel.register(e[0], selectors.EVENT_READ, k)
    open_left, next_drip, deadline = len(conns), time.monotonic() + 0.5, time.monotonic() + 30
    while open_left and time.monotonic() < deadline:
        for key, _ in sel.select(0.05):
            e = conns[key.data]
            try:
                d = e[0].recv(4096)
            except (ConnectionResetError, BrokenPipeError):
                d = b""
            if not d:
                e[2] = time.monotonic()
                sel.unregister(e[0])
                e[0].close()
                open_left -= 1
        if time.monotonic() >= next_drip:
            peak = max(peak, rss_kib())
            for e in conns[:1000]:
                if e[2] is None:
                    try:
                        e[0].send(b"x")
                    except OSError:
                        pass
            next_drip += 0.5
    if open_left:
        raise SystemExit("%d of %d slow clients still open after 30 s" % (open_left, len(conns)))
    early = [e[2] - e[1] for e in conns if e[2] - e[1] < timeout_s - 0.1]
    if early:
        raise SystemExit("%d clients closed before the 1 s header timeout (first after %.2f s)" % (len(early), min(early)))
    last = max(e[2] for e in conns) - t0
    wait_for(lambda: nfds() <= fds0, "the server's fds to come back to %d" % fds0)
    time.sleep(0.3)
    end = rss_kib()
    print("1,100 slow clients (1,000 dripping a head, 100 silent) all closed by the 1 s header timeout, the last %.1f s after the first connected; server VmRSS %d KiB before, peak %d KiB, after %d KiB"
          % (last, base, peak, end))
    if end - base > 2048:
        raise SystemExit("the server's RSS stayed %d KiB above its baseline" % (end - base))
    normal()
    print("a normal client is answered afterwards")
elif what in ("echo", "http"):
    normal()                      # warm: the first read buffer is touched
    time.sleep(0.2)
    fds0, base = nfds(), rss_kib()
    if HTTP:
        block = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" * 2000
    else:
        block = bytes(range(256)) * 256
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.setblocking(False)
    sent, peak, t0 = 0, base, time.monotonic()
    next_sample, end = t0, t0 + secs
    while True:
        now = time.monotonic()
        if now >= next_sample:
            peak = max(peak, rss_kib())
            next_sample = now + 0.05
            if peak - base > bound_mib * 1024 or now >= end:
                break
        _, w, _ = select.select([], [s], [], 0.02)
        if w:
            try:
                sent += s.send(block)
            except BlockingIOError:
                pass
    for _ in range(10):           # what the server still had to read
        time.sleep(0.05)
        peak = max(peak, rss_kib())
    growth = peak - base
    print("wrote %.1f MiB in %.1f s, never read; server VmRSS %d KiB before, peak %d KiB: growth %d KiB (bound %d MiB)"
          % (sent / 1048576.0, time.monotonic() - t0, base, peak, growth, bound_mib))
    if growth > bound_mib * 1024:
        raise SystemExit("the server's RSS grew by %d KiB, more than %d MiB" % (growth, bound_mib))
    normal()
    print("a normal client was answered while the writer was stuck")
    s.close()
    wait_for(lambda: nfds() <= fds0, "the server to close the writer's connection")
    normal()
    print("the server closed the writer's connection and answered again")
PY
}

run() { # run LABEL WHAT SERVER ARGS...
    label=$1 what=$2; shift 2
    if [ ! -x "$1" ]; then
        if [ "$what" != echo ]; then
            echo "SKIP: $label: $1 not built (configure found no OpenSSL, which the HTTP example needs)"
        else
            bad "$label" "$1 not built"
        fi
        return
    fi
    start "$@"
    if [ -z "$port" ]; then
        bad "$label: the server did not start" "$(cat "$tmp/out" "$tmp/err")"
        kill -KILL "$pid" 2>/dev/null; pid=
        return
    fi
    head -n 1 "$tmp/out"
    if out=$(py "$what" "$port" "$spid" 2>&1); then
        ok "$label: $(echo "$out" | head -n 1)"
        echo "$out" | tail -n +2 | sed 's/^/    /'
    else
        bad "$label" "$out"
    fi
    stop
    if [ "$rc" -eq 0 ]; then ok "$label: SIGTERM stops the server with status 0"
    else bad "$label: SIGTERM stops the server with status 0" "status $rc; $(cat "$tmp/err")"; fi
}

run "echo, a client that writes and never reads" echo "$echo_server" --port 0
run "HTTP, pipelined GETs never read" http "$http_server" --host 127.0.0.1 --port 0 --tlsport -1
run "HTTP, 1,100 slowloris clients" slowloris "$http_server" --host 127.0.0.1 --port 0 --tlsport -1 --header-timeout 1000
finish
