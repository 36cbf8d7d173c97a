#!/bin/bash
# redis-units.sh SERVER — Redis's own test units (7.0.15) against the clone.
#
#   bash tests/redis-units.sh examples/redis-server/redis-server
#
# Runs the units issue 13 names — unit/protocol, unit/type/string,
# unit/type/incr, unit/keyspace, unit/expire, unit/quit, unit/info-command —
# with the runner of shared/redis-tests (beside the repository, not part of
# it: set REDIS_TESTS to its folder elsewhere) against SERVER started on
# 127.0.0.1 with a kernel-chosen port, and prints each unit's counts.
# Passes when every failing test is one of EXPECTED below, each of which
# needs something this clone does not have, as the README lists.  Skips
# (exit 77) without the suite or tclsh.
set -u
server=${1:?usage: redis-units.sh SERVER}
case $server in */*) ;; *) server=./$server ;; esac
[ -x "$server" ] || { echo "redis-units: $server: not built" >&2; exit 99; }
top=$(cd "${srcdir:-.}" && pwd)
suite=${REDIS_TESTS:-$top/../shared/redis-tests}
if [ ! -x "$suite/run-against" ]; then
    echo "redis-units: no Redis test suite at $suite (set REDIS_TESTS): skipped"
    exit 77
fi
if ! command -v tclsh >/dev/null; then
    echo "redis-units: tclsh not found (apt-get install tcl; scripts/deps does): skipped"
    exit 77
fi

# Tests that need what is outside this clone: replication (they attach to
# the replication stream with SYNC) and data types other than strings
# (sorted sets, hashes, streams).
EXPECTED='GETDEL propagate as DEL command to replica
GETEX without argument does not propagate to replica
All TTL in commands are propagated as absolute timestamp in replication stream
GETEX propagate as to replica as PERSIST, DEL, or nothing
COPY basic usage for listpack sorted set
COPY basic usage for skiplist sorted set
COPY basic usage for listpack hash
COPY basic usage for hashtable hash
COPY basic usage for stream
COPY basic usage for stream-cgroups'

tmp=$(mktemp -d "${TMPDIR:-/tmp}/redis-units.XXXXXX") || exit 99
pid=
trap '[ -n "$pid" ] && kill -9 "$pid" 2>/dev/null; rm -rf "$tmp"' EXIT
"$server" --bind 127.0.0.1 --port 0 >"$tmp/server.out" 2>"$tmp/server.err" &
pid=$!
port=
for _ in $(seq 100); do
    port=$(sed -n 's|^listening on tcp://127\.0\.0\.1:\([0-9]*\)$|\1|p' "$tmp/server.out")
    [ -n "$port" ] && break
    sleep 0.05
done
[ -n "$port" ] || { echo "redis-units: $server did not start" >&2; cat "$tmp/server.err" >&2; exit 99; }

timeout 900 "$suite/run-against" "$port" >"$tmp/out" 2>&1
kill -TERM "$pid" 2>/dev/null
for _ in $(seq 600); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
kill -KILL "$pid" 2>/dev/null # bounded: a server that never exits must not hang CI
wait "$pid" 2>/dev/null
pid=
cat "$tmp/out"
unexpected=$(sed -n 's/^    \[\(err\|exception\)\]: \(.*\) in tests\/.*/\2/p' "$tmp/out" |
    grep -vxF "$EXPECTED")
units=$(grep -c '^unit/.*: [0-9]* passed' "$tmp/out")
status=0
if [ "$units" -ne 7 ]; then
    echo "FAIL: $units of 7 units reported counts"
    status=1
fi
if [ -n "$unexpected" ]; then
    echo "FAIL: tests not in the expected list failed:"
    printf '    %s\n' "$unexpected"
    status=1
fi
if [ -s "$tmp/server.err" ]; then
    echo "FAIL: the server wrote to stderr:"
    head -20 "$tmp/server.err"
    status=1
fi
total=$(tail -1 "$tmp/out" | sed -n 's/^\([0-9]*\) passed.*/\1/p')
[ $status -eq 0 ] && echo "redis units: ${total:-0} passed, 0 failed beyond the $(echo "$EXPECTED" | wc -l) expected ones listed in the README"
exit $status
