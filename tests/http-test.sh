#!/bin/bash
# http-test.sh SERVER — the HTTP example against real clients.
#
# SERVER is examples/http-server built against one backend
# (tests/http-server-NAME).  It is started on 127.0.0.1, ports chosen by the
# kernel, with a certificate made here by the openssl tool, and checked with
# curl (plain, TLS, keep-alive, verification against that certificate),
# openssl s_client, small python3 clients (pipelining, bodies, malformed and
# oversize requests, HTTP/1.0, garbage on the TLS port next to a good
# client) and a short wrk run when wrk is installed.  Every step runs under
# timeout.  The last line is "N passed, N failed"; the exit status is 0 only
# when nothing failed (77, automake's SKIP, when the server was not built).
set -u
server=$1
name=$(basename "$server")
pass=0
fail=0
ok() { echo "PASS: $1"; pass=$((pass + 1)); }
bad() { echo "FAIL: $1${2:+ -- $2}"; fail=$((fail + 1)); }
check() { # check NAME EXPECTED ACTUAL
    if [ "$2" = "$3" ]; then ok "$1"; else bad "$1" "expected '$2', got '$3'"; fi
}

if [ ! -x "$server" ]; then
    echo "$name: not built: configure found no OpenSSL >= 3, which the HTTP example needs"
    echo "(Debian/Ubuntu: apt-get install libssl-dev, then run configure again)"
    echo "0 passed, 0 failed"
    exit 77
fi
for tool in curl openssl python3; do
    if ! command -v $tool >/dev/null; then
        echo "$name: $tool is not installed (scripts/deps installs it): cannot test"
        echo "0 passed, 1 failed"
        exit 1
    fi
done

tmp=$(mktemp -d /tmp/evio-http-test.XXXXXX)
pid=
cleanup() {
    [ -n "$pid" ] && kill "$pid" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT

if ! timeout 30 openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost \
    -addext 'subjectAltName=DNS:localhost,IP:127.0.0.1' \
    -keyout "$tmp/key.pem" -out "$tmp/cert.pem" 2>"$tmp/req.err"; then
    cat "$tmp/req.err"
    echo "0 passed, 1 failed"
    exit 1
fi

# No leak check at this server's exit under ASan: in 2 of 5 clean-clone
# runs LeakSanitizer's exit-time tracer waited for ever on the server
# (see the SIGTERM wait below); leaks stay checked by the conformance suite, the soak and the
# Redis, proxy and bounded tests under ASan.
ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" \
    timeout -k 10 300 "$server" --host 127.0.0.1 --port 0 --tlsport 0 \
    --tlscert "$tmp/cert.pem" --tlskey "$tmp/key.pem" >"$tmp/out" 2>"$tmp/err" &
pid=$!
for _ in $(seq 100); do
    grep -q '^listening on https' "$tmp/out" 2>/dev/null && break
    sleep 0.05
done
cat "$tmp/out"
P=$(sed -n 's/^listening on http:.*:\([0-9]*\)$/\1/p' "$tmp/out")
T=$(sed -n 's/^listening on https:.*:\([0-9]*\)$/\1/p' "$tmp/out")
if [ -z "$P" ] || [ -z "$T" ]; then
    echo "the server did not start:"; cat "$tmp/err"
    echo "0 passed, 1 failed"
    exit 1
fi
http=http://127.0.0.1:$P
https=https://127.0.0.1:$T

# A python3 client: py NAME ARGS... runs the snippet of that name.
py() {
    timeout 30 python3 - "$@" <<'PY'
import socket, ssl, sys, time
what, port = sys.argv[1], int(sys.argv[2])

def conn(tls):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    if tls:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        s = ctx.wrap_socket(s)
    return s

def read_all(s):
    out = b""
    while True:
        try:
            d = s.recv(65536)
        except (ConnectionResetError, ssl.SSLError):
            break
        if not d:
            break
        out += d
    return out

def responses(data):
    """Split a byte stream into (status line, headers, body) responses."""
    res = []
    while data:
        head, sep, rest = data.partition(b"\r\n\r\n")
        if not sep:
            raise SystemExit("incomplete response: %r" % data[:200])
        lines = head.split(b"\r\n")
        hdr = {k.strip().lower(): v.strip() for k, v in (l.split(b":", 1) for l in lines[1:])}
        n = int(hdr.get(b"content-length", b"0"))
        res.append((lines[0], hdr, rest[:n]))
        data = rest[n:]
    return res

def pipeline(tls, n):
    s = conn(tls)
    reqs = b"".join(b"GET /%d HTTP/1.1\r\nHost: x\r\n\r\n" % i for i in range(n - 1))
    reqs += b"GET /last HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    s.sendall(reqs)  # one write
    rs = responses(read_all(s))
    assert len(rs) == n, "%d responses to %d requests" % (len(rs), n)
    for i, (status, hdr, body) in enumerate(rs):
        assert status == b"HTTP/1.1 200 OK" and body == b"Hello World!", (i, status, body)
        assert (hdr.get(b"connection") == b"close") == (i == n - 1), (i, hdr)
    print("%d responses in order, the last with Connection: close, then EOF" % n)

if what == "pipeline":
    pipeline(False, 3)
elif what == "pipeline-tls":
    pipeline(True, 100)
elif what == "body":
    s = conn(False)
    s.sendall(b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello"
              b"POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nab")
    time.sleep(0.1)  # the body's last byte and the next request arrive later
    s.sendall(b"cGET / HTTP/1.1\r\nConnection: close\r\n\r\n")
    rs = responses(read_all(s))
    assert len(rs) == 3 and all(r[2] == b"Hello World!" for r in rs), rs
    print("3 responses; bodies skipped")
elif what == "malformed":
    s = conn(False)
    s.sendall(b"GET / HTTP/1.1\r\nBad Header Line\r\n\r\nGET / HTTP/1.1\r\n\r\n")
    data = read_all(s)
    rs = responses(data)
    assert len(rs) == 1 and rs[0][0] == b"HTTP/1.1 400 Bad Request", data
    print(rs[0][0].decode(), "then EOF")
elif what == "oversize":
    s = conn(False)
    s.sendall(b"GET / HTTP/1.1\r\nX-Big: " + b"a" * 20000)  # never ends
    data = read_all(s)  # EOF (or reset) before the 10 s timeout
    assert data == b"" or data.startswith(b"HTTP/1.1 431"), data[:100]
    print("closed after %d response bytes" % len(data))
elif what == "http10":
    s = conn(False)
    s.sendall(b"GET / HTTP/1.0\r\n\r\n")  # write side left open: the server must close
    rs = responses(read_all(s))
    assert len(rs) == 1 and rs[0][1].get(b"connection") == b"close", rs
    s = conn(False)
    s.sendall(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET / HTTP/1.0\r\n\r\n")
    rs = responses(read_all(s))
    assert len(rs) == 2 and rs[0][1].get(b"connection") == b"keep-alive", rs
    print("1.0 closes; 1.0 with keep-alive stays for the next request")
elif what == "head":
    s = conn(False)
    s.sendall(b"HEAD / HTTP/1.1\r\nConnection: close\r\n\r\n")
    data = read_all(s)
    assert data.endswith(b"\r\n\r\n") and b"Content-Length: 12\r\n" in data, data
    print("headers only")
elif what == "garbage":
    good = conn(True)  # handshake done before the garbage arrives
    bad = socket.create_connection(("127.0.0.1", port), timeout=10)
    bad.sendall(b"\x16\x03\x01\x00\x05garbage that is no TLS record\r\n" * 4)
    data = read_all(bad)  # an alert at most, then EOF
    assert len(data) < 100, data
    good.sendall(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n")
    rs = responses(read_all(good))
    assert len(rs) == 1 and rs[0][2] == b"Hello World!", rs
    print("garbage connection closed (%d bytes back), good client served" % len(data))
PY
}

# ---------------------------------------------------------------- steps

check "curl http" "Hello World!" "$(timeout 10 curl -sS "$http/" 2>&1)"
check "curl -k https" "Hello World!" "$(timeout 10 curl -sSk "$https/" 2>&1)"
check "curl https verifies the certificate (--cacert)" "Hello World!" \
    "$(timeout 10 curl -sS --cacert "$tmp/cert.pem" "$https/" 2>&1)"
check "keep-alive: curl reuses the connection (num_connects 1, 0)" "1 0" \
    "$(timeout 10 curl -sS -o /dev/null -o /dev/null -w '%{num_connects} ' "$http/a" "$http/b" | xargs)"
check "keep-alive over TLS (num_connects 1, 0)" "1 0" \
    "$(timeout 10 curl -sSk -o /dev/null -o /dev/null -w '%{num_connects} ' "$https/a" "$https/b" | xargs)"

for t in pipeline:$P pipeline-tls:$T body:$P head:$P malformed:$P oversize:$P http10:$P garbage:$T; do
    what=${t%%:*} port=${t#*:}
    if out=$(py "$what" "$port" 2>&1); then ok "$what: $out"; else bad "$what" "$out"; fi
done
if grep -q 'TLS handshake: .*wrong version number\|TLS handshake: ' "$tmp/err"; then
    ok "the garbage connection's error was reported: $(grep -m1 'TLS' "$tmp/err")"
else
    bad "no TLS error reported for the garbage connection" "$(cat "$tmp/err")"
fi

out=$(printf 'GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n' |
    timeout 10 openssl s_client -connect "127.0.0.1:$T" -servername localhost \
        -CAfile "$tmp/cert.pem" -verify_return_error -ign_eof 2>&1)
if echo "$out" | grep -q 'Verify return code: 0 (ok)' && echo "$out" | grep -q 'Hello World!'; then
    ok "openssl s_client: $(echo "$out" | grep -m1 -o 'New, TLS[^,]*, Cipher is [^ ]*'), verified, response seen"
else
    bad "openssl s_client" "$(echo "$out" | tail -15)"
fi

if command -v wrk >/dev/null; then
    for url in "$http/" "$https/"; do
        out=$(timeout 30 wrk -t1 -c20 -d2s --timeout 10s "$url" 2>&1)
        if echo "$out" | grep -q 'Requests/sec' && ! echo "$out" | grep -q 'Socket errors\|Non-2xx'; then
            ok "wrk $url: $(echo "$out" | grep -m1 'Requests/sec' | xargs), no socket errors"
        else
            bad "wrk $url" "$out"
        fi
    done
else
    echo "SKIP: wrk is not installed (scripts/deps installs it): no load run"
fi

# Still serving after all that, then a clean stop on SIGTERM.
check "still serving" "Hello World!" "$(timeout 10 curl -sSk "$https/" 2>&1)"
kill -TERM "$pid"
# Bounded: a server that never exits (once, under ASan, LeakSanitizer's
# exit-time tracer waited for ever) must fail this check, not hang CI.
for _ in $(seq 600); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
done
rc=0
if kill -0 "$pid" 2>/dev/null; then
    pkill -KILL -P "$pid" 2>/dev/null
    kill -KILL "$pid" 2>/dev/null
    rc="no exit within 60 s of SIGTERM"
fi
wait "$pid"
st=$?
[ "$rc" = 0 ] && rc=$st
pid=
check "SIGTERM stops the server with status 0" "0" "$rc"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
