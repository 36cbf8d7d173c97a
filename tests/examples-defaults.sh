#!/bin/bash
# examples-defaults.sh — what the examples do when given no options that
# matter for safety (issue 13):
#   - echo-server, proxy, http-server and redis-server listen on loopback
#     only and say how to listen elsewhere;
#   - the HTTP example serves its development certificate only with a loud
#     warning (or quietly with --dev-cert), and never one from a directory
#     that is not the user's own with mode 0700, or that others can write.
# Run from the build directory (make check); every server gets port 0 and
# is stopped within seconds.  Ends with "N passed, N failed".
set -u
tmp=$(mktemp -d "${TMPDIR:-/tmp}/examples-defaults.XXXXXX") || exit 99
build=$(pwd)
trap 'chmod -R u+w "$tmp" 2>/dev/null; rm -rf "$tmp"' EXIT
passed=0 failed=0
check() { # NAME WANT GOT
    if [ "$2" = "$3" ]; then
        passed=$((passed + 1)); echo "ok   $1"
    else
        failed=$((failed + 1)); echo "FAIL $1"; echo "       want: $2"; echo "       got:  $3"
    fi
}
# run NAME DIR PROGRAM ARGS...: start it in DIR for two seconds at most,
# wait for its "listening" lines; output in $tmp/NAME.out and .err
run() {
    local name=$1 dir=$2
    shift 2
    (cd "$dir" && exec timeout -k 5 5 "$@" >"$tmp/$name.out" 2>"$tmp/$name.err") &
    local p=$!
    for _ in $(seq 100); do
        grep -q '^(loopback only' "$tmp/$name.out" 2>/dev/null && break
        kill -0 "$p" 2>/dev/null || break
        sleep 0.05
    done
    kill -INT "$p" 2>/dev/null
    wait "$p" 2>/dev/null
    return 0
}
loopback() { # NAME: listened on 127.0.0.1 only (and ::1), with the hint
    local other
    other=$(grep '^listening on' "$tmp/$1.out" | grep -v '://127\.0\.0\.1:' | grep -v '://\[::1\]:')
    check "$1 listens on loopback only by default" "yes:" \
        "$(grep -q '^listening on .*://127\.0\.0\.1:' "$tmp/$1.out" && echo yes):$other"
    check "$1 says how to listen elsewhere" yes \
        "$(grep -q '^(loopback only: --\(bind\|host\) ' "$tmp/$1.out" && echo yes || echo no)"
}

for prog in examples/echo-server/echo-server examples/proxy/proxy \
            examples/redis-server/redis-server; do
    run "${prog##*/}" "$build" "$build/$prog" --port 0
    loopback "${prog##*/}"
done

if [ ! -x "$build/examples/http-server/http-server" ]; then
    echo "# examples/http-server not built (no OpenSSL): its checks skipped"
    echo "$passed passed, $failed failed"
    [ "$failed" -eq 0 ]
    exit
fi
# The HTTP example, from a directory without the build's certificate, so
# that it makes (or refuses) one in $TMPDIR/evio-http-dev-UID.
http=$build/examples/http-server/http-server
mkdir -p "$tmp/cwd" "$tmp/t1" "$tmp/t2" "$tmp/t3"
devdir=evio-http-dev-$(id -u)
TMPDIR=$tmp/t1 run http1 "$tmp/cwd" "$http" --port 0 --tlsport 0
loopback http1
check "http-server without --tlscert warns loudly" yes \
    "$(grep -q 'WARNING: TLS is served with the DEVELOPMENT certificate' "$tmp/http1.err" && echo yes || echo no)"
check "... and made its certificate in a 0700 directory" 700 "$(stat -c %a "$tmp/t1/$devdir" 2>&1)"
TMPDIR=$tmp/t1 run http2 "$tmp/cwd" "$http" --port 0 --tlsport 0 --dev-cert
check "http-server --dev-cert serves it without the warning" "yes no" \
    "$(grep -q '^listening on https' "$tmp/http2.out" && echo yes || echo no) $(grep -q WARNING "$tmp/http2.err" && echo yes || echo no)"
mkdir -m 755 "$tmp/t2/$devdir"
TMPDIR=$tmp/t2 run http3 "$tmp/cwd" "$http" --port 0 --tlsport 0 --dev-cert
check "a planted $devdir with mode 755 is refused" "no yes" \
    "$(grep -q '^listening' "$tmp/http3.out" && echo yes || echo no) $(grep -q 'not a directory of yours with mode 0700' "$tmp/http3.err" && echo yes || echo no)"
mkdir -m 700 "$tmp/t3/$devdir"
cp "$tmp/t1/$devdir/"*.pem "$tmp/t3/$devdir/"
chmod 666 "$tmp/t3/$devdir/cert.pem"
TMPDIR=$tmp/t3 run http4 "$tmp/cwd" "$http" --port 0 --tlsport 0 --dev-cert
check "a certificate others can write is refused" "no yes" \
    "$(grep -q '^listening' "$tmp/http4.out" && echo yes || echo no) $(grep -q 'not yours, or others can write it' "$tmp/http4.err" && echo yes || echo no)"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
