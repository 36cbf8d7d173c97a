#!/bin/bash
# tests/proxy-test.sh PROXY — examples/proxy (built as PROXY, e.g.
# tests/proxy-epoll) in front of a scripted python3 backend
# (tests/proxy-peer.py), all on 127.0.0.1: byte-exact relay with concurrent
# clients, bounded memory with a slow reader on either side, close
# propagation both ways, a dead backend, --loops 2, a backend name from
# /etc/hosts, and real redis-server with redis-cli and redis-benchmark
# through the proxy, and an echo backend with 8 KiB socket buffers.  Ports are chosen by the kernel (port 0)
# and read back.  Ends with the line "N passed, M failed"; exits non-zero if
# anything failed (77, skipped, without python3).
set -u

proxy=$1
name=${proxy##*/proxy-}
here=$(cd "$(dirname "$0")" && pwd)
peer="$here/proxy-peer.py"
RSS_BOUND_MIB=16 # allowed VmRSS growth while 64 MiB meet a slow reader

if ! command -v python3 >/dev/null; then
    echo "proxy-test: python3 is needed for the test peers; skipped"
    exit 77
fi
if [ ! -x "$proxy" ]; then
    echo "proxy-test: $proxy is not built" >&2
    exit 1
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/proxy-test.XXXXXX")
pids=()
cleanup() {
    for p in "${pids[@]}"; do
        kill "$p" 2>/dev/null
    done
    wait 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

passed=0 failed=0
ok() { passed=$((passed + 1)); echo "ok: $1"; }
not_ok() { failed=$((failed + 1)); echo "FAIL: $1"; }

# check NAME SECONDS CMD...: one test step under timeout
check() {
    local what=$1 secs=$2
    shift 2
    if timeout -k 5 "$secs" "$@"; then ok "$what"; else not_ok "$what"; fi
}

# wait_file FILE PATTERN: until FILE has a line matching PATTERN (10 s)
wait_file() {
    for _ in $(seq 100); do
        grep -q "$2" "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}

# start_proxy TAG ARGS...: run the proxy on a kernel-chosen port; sets
# $port and $pid, output in $work/TAG.out and $work/TAG.err
start_proxy() {
    local tag=$1
    shift
    # Under AddressSanitizer freed memory sits in a quarantine (256 MiB by
    # default) that counts in VmRSS; keep it small so the RSS bound measures
    # what the proxy holds.  Ignored without ASan.
    ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=4" \
        "$proxy" --bind 127.0.0.1 --port 0 "$@" >"$work/$tag.out" 2>"$work/$tag.err" &
    pid=$!
    pids+=("$pid")
    port=
    if wait_file "$work/$tag.out" '^listening on '; then
        port=$(sed -n 's|^listening on tcp://127\.0\.0\.1:\([0-9]*\)$|\1|p' "$work/$tag.out")
    fi
    if [ -z "$port" ]; then
        not_ok "$tag: proxy $* did not start"
        cat "$work/$tag.out" "$work/$tag.err"
        return 1
    fi
}

# stop_proxy TAG PID [PORT]: SIGTERM stops it cleanly (exit 0, no sanitizer
# report); with PORT, while 20 clients are busy relaying through it
stop_proxy() {
    local tag=$1 p=$2 rc=0 busy=
    if [ $# -gt 2 ]; then
        busy=" with 20 busy clients"
        check "$tag: SIGTERM$busy closes every client" 60 \
            python3 "$peer" busy-shutdown "$3" "$p" # sends the SIGTERM
    else
        kill -TERM "$p" 2>/dev/null
    fi
    for _ in $(seq 100); do
        kill -0 "$p" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$p" 2>/dev/null; then
        kill -KILL "$p"
        not_ok "$tag: SIGTERM did not stop the proxy within 10 s"
        return
    fi
    wait "$p" || rc=$?
    if [ "$rc" = 0 ] && ! grep -q 'Sanitizer' "$work/$tag.err"; then
        ok "$tag: SIGTERM$busy stops it cleanly"
    else
        not_ok "$tag: exit status $rc after SIGTERM"
        cat "$work/$tag.err"
    fi
}

# ---- the backend and a port that refuses connections
python3 "$peer" backend "$work/bport" "$work/backend.log" 2>"$work/backend.err" &
pids+=($!)
python3 "$peer" refuser "$work/rport" &
pids+=($!)
if ! wait_file "$work/bport" . || ! wait_file "$work/rport" .; then
    echo "proxy-test: the python3 peers did not start" >&2
    cat "$work/backend.err" >&2
    echo "0 passed, 1 failed"
    exit 1
fi
bport=$(cat "$work/bport")
rport=$(cat "$work/rport")
touch "$work/backend.log"

# ---- one loop
if start_proxy p1 --backend "127.0.0.1:$bport"; then
    p1=$pid
    if grep -qx "proxy (backend: $name)" "$work/p1.out" &&
        grep -qx "forwarding to 127.0.0.1:$bport" "$work/p1.out"; then
        ok "p1: banner names backend $name, listen address and backend"
    else
        not_ok "p1: banner"
        cat "$work/p1.out"
    fi
    check "p1: 10 concurrent clients x2, 0-8 MiB, byte-exact" 120 \
        python3 "$peer" relay "$port" 2
    check "p1: slow backend reader, 64 MiB in, RSS growth < $RSS_BOUND_MIB MiB" 120 \
        python3 "$peer" slow-backend "$port" "$p1" 64 "$RSS_BOUND_MIB"
    check "p1: slow client reader, 64 MiB out, RSS growth < $RSS_BOUND_MIB MiB" 120 \
        python3 "$peer" slow-client "$port" "$p1" 64 "$RSS_BOUND_MIB"
    check "p1: client closes -> backend connection closed" 30 \
        python3 "$peer" client-close "$port" "$work/backend.log"
    check "p1: client sends 8 MiB and closes -> backend gets all, then EOF" 60 \
        python3 "$peer" client-close-flush "$port" "$work/backend.log" 8
    check "p1: backend sends 8 MiB and closes -> client gets all, then EOF" 60 \
        python3 "$peer" backend-close "$port" 8
    check "p1: client half-closes -> the backend's later reply still arrives (x20)" 60 \
        python3 "$peer" half-close "$port" 20
    check "p1: printf | nc -N through the proxy gets the late reply" 30 \
        sh -c 'test "$(printf "late\nq" | nc -N 127.0.0.1 "$1")" = "late reply to 1 bytes"' sh "$port"
    check "p1: backend reset -> client sees a reset, not EOF" 30 \
        python3 "$peer" backend-reset "$port"
    check "p1: relay still works" 60 python3 "$peer" relay "$port" 1
    stop_proxy p1 "$p1"
fi

# ---- two loops
if start_proxy p2 --loops 2 --backend "127.0.0.1:$bport"; then
    p2=$pid
    check "p2 (--loops 2): 10 concurrent clients x3, byte-exact" 120 \
        python3 "$peer" relay "$port" 3
    check "p2 (--loops 2): slow backend reader, RSS growth < $RSS_BOUND_MIB MiB" 120 \
        python3 "$peer" slow-backend "$port" "$p2" 64 "$RSS_BOUND_MIB"
    check "p2 (--loops 2): backend closes -> client gets all, then EOF" 60 \
        python3 "$peer" backend-close "$port" 8
    stop_proxy p2 "$p2" "$port"
fi

# ---- a backend named in /etc/hosts: the dial waits for the resolver
# threads, so clients' first bytes arrive before the backend is connected
if grep -Eq '^127\.0\.0\.1[[:space:]].*\blocalhost\b' /etc/hosts; then
    if start_proxy p3 --backend "tcp4://localhost:$bport"; then
        check "p3 (tcp4://localhost): relay, input held while dialing" 120 \
            python3 "$peer" relay "$port" 2
        stop_proxy p3 "$pid" "$port"
    fi
else
    echo "skip: /etc/hosts does not map localhost to 127.0.0.1"
fi

# ---- no backend
if start_proxy p4 --backend "127.0.0.1:$rport"; then
    p4=$pid
    check "p4: backend down -> client closed within 2 s" 30 \
        python3 "$peer" backend-down "$port" 2000
    if wait_file "$work/p4.err" "backend 127.0.0.1:$rport: .*refused"; then
        ok "p4: the dial failure is printed ($(head -n1 "$work/p4.err"))"
    else
        not_ok "p4: no 'refused' message on stderr"
        cat "$work/p4.err"
    fi
    stop_proxy p4 "$p4"
fi

# ---- an echo backend with small socket buffers: its echo blocks as soon as
# the proxy stops reading from it, so the proxy must never wait on its own
# queued output before reading (it did, with evio's default high-water
# mark: a deadlock, rare with loopback's large buffers, certain with these)
python3 "$peer" backend "$work/sport" "$work/small.log" 8192 2>"$work/small.err" &
pids+=($!)
if ! wait_file "$work/sport" .; then
    not_ok "the small-buffer backend did not start"
    cat "$work/small.err"
elif start_proxy p6 --backend "127.0.0.1:$(cat "$work/sport")"; then
    check "p6 (8 KiB backend buffers): 10 concurrent clients, byte-exact" 120 \
        python3 "$peer" relay "$port" 1
    stop_proxy p6 "$pid"
fi

# ---- nothing left open at the backend
# Every proxy has exited by now, so the kernel has closed all their sockets
# and each backend thread is bound to finish; but a thread may still be in
# a sink's sleep or slowly reading, and on a loaded machine that took longer
# than the 5 s this used to wait (126 opened, 116 closed).  Wait for the
# condition, up to 60 s, instead of for an idle machine.
opens=0 closes=0
for _ in $(seq 600); do
    opens=$(grep -c '^open$' "$work/backend.log")
    closes=$(grep -c '^close$' "$work/backend.log")
    [ "$opens" = "$closes" ] && break
    sleep 0.1
done
if [ "$opens" = "$closes" ] && [ "$opens" -gt 0 ]; then
    ok "backend: all $opens proxied connections were closed"
else
    not_ok "backend: $opens connections opened, $closes closed"
fi
if grep -q '^error' "$work/backend.log"; then
    echo "note: backend errors: $(grep '^error' "$work/backend.log" | sort | uniq -c | tr '\n' ' ')"
fi

# ---- real redis behind the proxy (scripts/deps installs redis-server and
# redis-tools; without them this part fails, it is not optional)
if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null ||
    ! command -v redis-benchmark >/dev/null; then
    not_ok "redis-server, redis-cli and redis-benchmark are needed (run scripts/deps)"
else
    rsport=
    for _ in 1 2 3 4 5; do # a port that is free now; retried if taken since
        try=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
        redis-server --bind 127.0.0.1 --port "$try" --save '' --appendonly no \
            --daemonize no >"$work/redis.log" 2>&1 &
        rpid=$!
        pids+=("$rpid")
        for _ in $(seq 50); do
            if [ "$(timeout 2 redis-cli -h 127.0.0.1 -p "$try" PING 2>/dev/null)" = PONG ]; then
                rsport=$try
                break
            fi
            kill -0 "$rpid" 2>/dev/null || break
            sleep 0.1
        done
        [ -n "$rsport" ] && break
        kill "$rpid" 2>/dev/null
    done
    if [ -z "$rsport" ]; then
        not_ok "redis-server did not start"
        cat "$work/redis.log"
    elif start_proxy p5 --loops 2 --backend "127.0.0.1:$rsport"; then
        rc() { timeout 10 redis-cli -h 127.0.0.1 -p "$port" "$@" 2>&1; }
        if [ "$(rc PING)" = PONG ] && [ "$(rc SET proxy:k hello)" = OK ] &&
            [ "$(rc GET proxy:k)" = hello ]; then
            ok "p5 (redis-server): redis-cli PING, SET, GET through the proxy"
        else
            not_ok "p5 (redis-server): redis-cli PING, SET, GET through the proxy"
        fi
        for P in 1 16; do
            out=$(timeout 120 redis-benchmark -h 127.0.0.1 -p "$port" -q -t set,get \
                -c 50 -n 20000 -P "$P" 2>&1)
            st=$?
            echo "$out" | tr '\r' '\n' | grep 'requests per second' | sed 's/^/  /'
            if [ "$st" = 0 ] && [ "$(echo "$out" | tr '\r' '\n' | grep -c 'requests per second')" = 2 ] &&
                ! echo "$out" | grep -qi 'error'; then
                ok "p5 (redis-server): redis-benchmark -t set,get -c 50 -P $P, no errors"
            else
                not_ok "p5 (redis-server): redis-benchmark -P $P (exit $st)"
                echo "$out" | tail -5
            fi
        done
        stop_proxy p5 "$pid"
    fi
fi

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
