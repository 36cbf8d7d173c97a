#!/bin/sh
# load-bench.sh — RESP and HTTP throughput, latency and cost per request,
# driven by the standard tools: redis-benchmark (RESP) and wrk (HTTP).
# The companion of echo-bench.sh (same method, same table); POSIX sh.
#
# Normally run by bench/run-all.sh (`make bench`), which passes --builddir
# and --servers.  By hand, from a build directory:
#   sh /path/to/src/bench/load-bench.sh --workload resp [options]
#   sh /path/to/src/bench/load-bench.sh --workload http [options]
#
#   resp  redis-benchmark -c 50 -t TEST -n N -P P --csv, one test per run,
#         against evio's Redis clone (each server in --servers) and against
#         the real redis-server (the reference), which the script starts on
#         a free port with persistence off (--save '' --appendonly no);
#   http  wrk -c 50 -t1 -d S --latency (a Lua script pipelines P requests
#         when P > 1) against evio's http-server, plain HTTP only; the
#         reference is the first server (normally the epoll backend).
#
# Method (as echo-bench.sh; timing on small shared machines is noisy):
#   * every server is started once, pinned to CPU 0; the client to CPU 1;
#   * each point (test, P) is run R times, servers interleaved within each
#     repetition and their order rotated between repetitions; medians;
#   * server CPU per request: the server's CPU time (the ns-precise per-task
#     schedstat, summed over its threads; utime+stime from /proc/PID/stat
#     where there is none) read just before and after each client run,
#     over the requests the client completed; ratio to the reference is
#     the median over repetitions of the paired ratio (same repetition);
#   * system calls per request once per server, test and P with
#     `perf stat -e raw_syscalls:sys_enter -p PID` (n/a without perf);
#   * optionally (--callgrind, slow) user-space instructions per request.
#
# Exit status: 0 if every server started and every run was error-free.

set -u

usage() {
    cat <<'EOF'
usage: load-bench.sh --workload resp|http [options]
  --builddir DIR        where the built programs are (default: .)
  --servers "A B ..."   evio servers (paths relative to builddir); default:
                        resp: examples/redis-server/redis-server and every
                        tests/redis-server-*; http: every tests/http-server-*
  --redis PATH          resp: the real redis-server (default: from PATH)
  --ref PATH            http: reference server (default: the first server)
  --runs R              repetitions per point (default 5)
  --tests "a b"         resp: redis-benchmark tests
                        (default "ping_inline ping_mbulk set get")
  --requests N          resp: requests per run at P=1; N*P at P>1
                        (default 100000)
  --duration S          http: seconds per wrk run (default 2)
  --pipelines "1 16"    pipeline depths
  --conns N             connections (default 50)
  --syscall-requests N  resp: requests per syscall count at P=1, N*P at
                        P>1 (default 50000); http: one --duration run
  --no-syscalls         skip the perf syscall counts
  --callgrind           also count user-space instructions per request
                        under valgrind (slow)
  --callgrind-requests N  requests per callgrind measurement (default 20000)
  --server-cpu N --client-cpu N   CPUs to pin to (default 0 and 1)
  --port-base N         first TCP port (default: random in 20000-31999)
  --summary FILE        append machine-readable rows (for run-all.sh)
  --out DIR             keep raw results here (default: a temp dir, removed)
EOF
    exit "${1:-2}"
}

# ---------------------------------------------------------------- options
WL=
BUILDDIR=.
SERVERS=
SERVERS_SET=no
REDIS=
REF=
RUNS=5
TESTS="ping_inline ping_mbulk set get"
REQS=100000
DURATION=2
PIPELINES="1 16"
CONNS=50
SYS_REQ=50000
DO_SYS=yes
DO_CG=no
CG_REQ=20000
SCPU=0
CCPU=1
PORT_BASE=
SUMMARY=
OUT=

while [ $# -gt 0 ]; do
    case $1 in
    --no-*|--callgrind|-h|--help) ;;
    *) [ $# -ge 2 ] || { echo "load-bench: $1 needs a value" >&2; usage; } ;;
    esac
    case $1 in
    --workload) WL=$2; shift ;;
    --builddir) BUILDDIR=$2; shift ;;
    --servers) SERVERS=$2; SERVERS_SET=yes; shift ;;
    --redis) REDIS=$2; shift ;;
    --ref) REF=$2; shift ;;
    --runs) RUNS=$2; shift ;;
    --tests) TESTS=$2; shift ;;
    --requests) REQS=$2; shift ;;
    --duration) DURATION=$2; shift ;;
    --pipelines) PIPELINES=$2; shift ;;
    --conns) CONNS=$2; shift ;;
    --syscall-requests) SYS_REQ=$2; shift ;;
    --no-syscalls) DO_SYS=no ;;
    --callgrind) DO_CG=yes ;;
    --callgrind-requests) CG_REQ=$2; shift ;;
    --server-cpu) SCPU=$2; shift ;;
    --client-cpu) CCPU=$2; shift ;;
    --port-base) PORT_BASE=$2; shift ;;
    --summary) SUMMARY=$2; shift ;;
    --out) OUT=$2; shift ;;
    -h|--help) usage 0 ;;
    *) echo "load-bench: unknown option '$1'" >&2; usage ;;
    esac
    [ $# -gt 0 ] && shift
done

say() { printf '%s\n' "load-bench($WL): $*" >&2; }
die() { say "$*"; exit 1; }

case $WL in resp|http) ;; *) echo "load-bench: --workload resp or http" >&2; usage ;; esac
case $RUNS in ''|*[!0-9]*|0) die "--runs wants a positive integer" ;; esac
BUILDDIR=$(cd "$BUILDDIR" 2>/dev/null && pwd) || die "no build directory '$BUILDDIR'"
abspath() { case $1 in /*) printf '%s\n' "$1" ;; *) printf '%s\n' "$BUILDDIR/$1" ;; esac; }
[ $WL = http ] && TESTS=get

if [ $SERVERS_SET = no ]; then
    if [ $WL = resp ]; then set -- "$BUILDDIR"/examples/redis-server/redis-server "$BUILDDIR"/tests/redis-server-*
    else set -- "$BUILDDIR"/tests/http-server-*; fi
    for f in "$@"; do
        [ -f "$f" ] && [ -x "$f" ] && SERVERS="$SERVERS ${f#"$BUILDDIR"/}"
    done
fi

# ---------------------------------------------------------------- tools
need() { command -v "$1" >/dev/null 2>&1; }
for t in awk sed sort timeout date; do need $t || die "needs '$t'"; done
if [ $WL = resp ]; then
    need redis-benchmark || die "needs redis-benchmark (Debian: apt-get install redis-tools)"
    [ -n "$REDIS" ] || REDIS=$(command -v redis-server 2>/dev/null)
else
    need wrk || die "needs wrk (Debian: apt-get install wrk)"
fi
NCPU=$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo 1)
if ! need taskset; then
    say "taskset not found (util-linux): server and client will not be pinned"
    PIN_S='' PIN_C=''
elif [ "$NCPU" -lt 2 ]; then
    PIN_S="taskset -c $SCPU" PIN_C="taskset -c $SCPU"
else
    PIN_S="taskset -c $SCPU" PIN_C="taskset -c $CCPU"
fi
HAVE_PERF=no
PERF_EVENTS=raw_syscalls:sys_enter
if [ $DO_SYS = yes ]; then
    if need perf && perf stat -x, -e raw_syscalls:sys_enter -- true >/dev/null 2>&1; then
        HAVE_PERF=yes
        tp=$(perf list tracepoint 2>/dev/null | awk '{ print $1 }' | sed -n 's/^syscalls:sys_enter_//p')
        for sc in epoll_wait epoll_pwait epoll_ctl read readv recvfrom recvmsg write writev \
                  sendto sendmsg accept accept4 close setsockopt ioctl futex openat; do
            printf '%s\n' "$tp" | grep -qx "$sc" && PERF_EVENTS="$PERF_EVENTS,syscalls:sys_enter_$sc"
        done
    else
        say "perf cannot count raw_syscalls:sys_enter here: syscalls/req is n/a"
    fi
fi
if [ $DO_CG = yes ] && { ! need valgrind || ! need callgrind_control; }; then
    say "valgrind/callgrind_control not found: no instruction counts"; DO_CG=no
fi
HAVE_SS=no; need ss && HAVE_SS=yes

# ---------------------------------------------------------------- work dir, cleanup
if [ -n "$OUT" ]; then
    mkdir -p "$OUT" || die "cannot create $OUT"; W=$(cd "$OUT" && pwd); KEEP=yes
else
    W=$(mktemp -d "${TMPDIR:-/tmp}/load-bench.XXXXXX") || die "mktemp failed"; KEEP=no
fi
: >"$W/pids"
STATUS=0
cleanup() {
    while read -r p; do kill -TERM "$p" 2>/dev/null; done <"$W/pids"
    sleep 0.3
    while read -r p; do kill -KILL "$p" 2>/dev/null; done <"$W/pids"
    if [ $KEEP = no ]; then rm -rf "$W"; else say "raw results kept in $W"; fi
}
trap cleanup EXIT
trap 'say interrupted; exit 130' INT TERM HUP

[ -n "$PORT_BASE" ] || PORT_BASE=$(awk -v s="$$" 'BEGIN { srand(s); print 20000 + int(rand() * 12000) }')
NEXT_PORT=$PORT_BASE
port_busy() { [ $HAVE_SS = yes ] && [ -n "$(ss -ltnH "sport = :$1" 2>/dev/null)" ]; }
new_port() {
    while port_busy $NEXT_PORT; do NEXT_PORT=$((NEXT_PORT + 1)); done
    PORT=$NEXT_PORT; NEXT_PORT=$((NEXT_PORT + 1))
}

# start_server ID KIND PATH TIMEOUT [prefix...] -> SPID, $W/ID.port; 0 when
# listening.  A port taken meanwhile by someone else: up to 3 tries.
start_server() {
    ss_id=$1 ss_kind=$2 ss_path=$3 ss_tmo=$4; shift 4
    ss_try=1
    while :; do
        new_port
        echo "$PORT" >"$W/$ss_id.port"
        case $ss_kind in
        redis) "$@" "$ss_path" --port "$PORT" --bind 127.0.0.1 --save "" --appendonly no \
                   --dir "$W" --daemonize no --protected-mode no --logfile "" >"$W/$ss_id.log" 2>&1 & ;;
        clone) "$@" "$ss_path" --port "$PORT" --bind 127.0.0.1 >"$W/$ss_id.log" 2>&1 & ;;
        http)  "$@" "$ss_path" --host 127.0.0.1 --port "$PORT" --tlsport -1 >"$W/$ss_id.log" 2>&1 & ;;
        esac
        SPID=$!
        echo "$SPID" >>"$W/pids"
        ss_n=0 ss_ok=no
        while :; do
            if ! kill -0 "$SPID" 2>/dev/null; then break; fi
            if [ $HAVE_SS = yes ]; then
                ss_l=$(ss -ltnpH "sport = :$PORT" 2>/dev/null)
                if [ -n "$ss_l" ]; then
                    ss_p=$(printf '%s\n' "$ss_l" | sed -n 's/.*pid=\([0-9][0-9]*\).*/\1/p' | head -n 1)
                    if [ -n "$ss_p" ] && [ "$ss_p" != "$SPID" ]; then
                        # a libtool wrapper or valgrind execs: normally ss_p = SPID
                        if kill -0 "$SPID" 2>/dev/null; then SPID=$ss_p; echo "$SPID" >>"$W/pids"; ss_ok=yes
                        else break; fi   # someone else's server on that port
                    else ss_ok=yes; fi
                    break
                fi
            elif [ $ss_n -ge 10 ]; then ss_ok=yes; break; fi
            ss_n=$((ss_n + 1))
            if [ $ss_n -gt $((ss_tmo * 10)) ]; then
                say "$ss_path did not listen on port $PORT within ${ss_tmo}s:"; sed 's/^/    /' "$W/$ss_id.log" >&2
                kill -KILL "$SPID" 2>/dev/null; return 1
            fi
            sleep 0.1
        done
        if [ $ss_ok = yes ]; then echo "$SPID" >"$W/$ss_id.pid"; return 0; fi
        if [ $ss_try -lt 3 ] && grep -qi 'in use' "$W/$ss_id.log"; then
            ss_try=$((ss_try + 1)); continue
        fi
        say "$ss_path exited at start:"; sed 's/^/    /' "$W/$ss_id.log" >&2
        return 1
    done
}

stop_pid() {
    kill -TERM "$1" 2>/dev/null || return 0
    sp_n=0
    while kill -0 "$1" 2>/dev/null && [ $sp_n -lt 30 ]; do sleep 0.1; sp_n=$((sp_n + 1)); done
    kill -KILL "$1" 2>/dev/null
    return 0
}

# CPU seconds of PID: "total user" (total: schedstat over its threads, ns;
# else utime+stime; user: utime, tick-sampled).
cpu_of() {
    awk -v hz="$(getconf CLK_TCK 2>/dev/null || echo 100)" '
        FILENAME ~ /\/stat$/ { sub(/.*\) /, ""); split($0, f, " "); u = f[12] / hz; st = f[13] / hz; next }
        FILENAME ~ /schedstat$/ { ns += $1; nsched++ }
        END { printf "%.9f %.6f\n", (nsched ? ns / 1e9 : u + st), u }' \
        "/proc/$1/stat" /proc/"$1"/task/*/schedstat 2>/dev/null
}
now_s() { date +%s.%N; }

# n(P): requests per run at depth P
n_for() { awk -v n="$1" -v P="$2" 'BEGIN { printf "%d", n * P }'; }

# wrk's Lua script for pipelining
cat >"$W/pipeline.lua" <<'EOF'
-- P requests per write; wrk counts every response
init = function(args)
    local depth = tonumber(args[1]) or 1
    local r = {}
    for i = 1, depth do r[i] = wrk.format(nil, "/") end
    req = table.concat(r)
end
request = function() return req end
EOF

# run_client PORT TEST P N|"" -> CL_OK (yes/no), CL_REQ, CL_RPS, CL_P50, CL_P99, CL_MSG
run_client() {
    rc_port=$1 rc_test=$2 rc_P=$3 rc_n=$4
    CL_OK=no CL_REQ='' CL_RPS='' CL_P50='' CL_P99='' CL_MSG=''
    if [ $WL = resp ]; then
        timeout -k 2 "$TMO" $PIN_C redis-benchmark -h 127.0.0.1 -p "$rc_port" -c "$CONNS" \
            -n "$rc_n" -P "$rc_P" -t "$rc_test" --csv >"$W/cl.out" 2>"$W/cl.err"
        rc=$?
        # "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"
        line=$(sed -n '2p' "$W/cl.out" | tr -d '"')
        CL_RPS=$(printf '%s\n' "$line" | awk -F, '{ print $2 }')
        CL_P50=$(printf '%s\n' "$line" | awk -F, '$5 != "" { print $5 * 1000 }')
        CL_P99=$(printf '%s\n' "$line" | awk -F, '$7 != "" { print $7 * 1000 }')
        CL_REQ=$rc_n
        errs=$(grep -ci 'error' "$W/cl.err" "$W/cl.out" | awk -F: '{ s += $NF } END { print s + 0 }')
        if [ $rc -ne 0 ] || [ -z "$CL_RPS" ] || [ "$errs" -gt 0 ]; then
            CL_MSG="exit $rc, $(cat "$W/cl.err" "$W/cl.out" | tr '\r\n' '  ' | cut -c1-200)"
        else CL_OK=yes; fi
    else
        if [ "$rc_P" -gt 1 ]; then
            timeout -k 2 "$TMO" $PIN_C wrk -c "$CONNS" -d "${DURATION}s" -t1 --latency \
                -s "$W/pipeline.lua" "http://127.0.0.1:$rc_port/" -- "$rc_P" >"$W/cl.out" 2>"$W/cl.err"
        else
            timeout -k 2 "$TMO" $PIN_C wrk -c "$CONNS" -d "${DURATION}s" -t1 --latency \
                "http://127.0.0.1:$rc_port/" >"$W/cl.out" 2>"$W/cl.err"
        fi
        rc=$?
        tous() { awk '{ v = $1; u = v; sub(/[0-9.]+/, "", u); sub(/[a-z]+$/, "", v)
                        print v * (u == "s" ? 1e6 : u == "ms" ? 1e3 : 1) }'; }
        CL_REQ=$(sed -n 's/^ *\([0-9][0-9]*\) requests in .*/\1/p' "$W/cl.out")
        CL_RPS=$(sed -n 's/^Requests\/sec: *\([0-9.]*\).*/\1/p' "$W/cl.out")
        CL_P50=$(sed -n 's/^ *50% *\([0-9.]*[a-z]*\).*/\1/p' "$W/cl.out" | tous)
        CL_P99=$(sed -n 's/^ *99% *\([0-9.]*[a-z]*\).*/\1/p' "$W/cl.out" | tous)
        # pipelined by a Lua script, wrk 4.1 times batches, not requests, and
        # often prints 0.00us for the upper percentiles: no figure rather
        # than a wrong one
        [ "$rc_P" -gt 1 ] && CL_P50='' CL_P99=''
        sockerr=$(sed -n 's/.*Socket errors: connect \([0-9]*\), read \([0-9]*\), write \([0-9]*\).*/\1 \2 \3/p' "$W/cl.out" |
                  awk '{ print $1 + $2 + $3 }')
        non2xx=$(sed -n 's/.*Non-2xx or 3xx responses: *\([0-9]*\).*/\1/p' "$W/cl.out")
        if [ $rc -ne 0 ] || [ -z "$CL_RPS" ] || [ "${CL_REQ:-0}" = 0 ] || [ "${sockerr:-0}" -gt 0 ] || [ "${non2xx:-0}" -gt 0 ]; then
            CL_MSG="exit $rc, socket errors ${sockerr:-0}, non-2xx ${non2xx:-0} $(cat "$W/cl.err" | tr '\n' ' ' | cut -c1-200)"
        else CL_OK=yes; fi
    fi
}

# ---------------------------------------------------------------- servers
# $W/servers: "id kind label path"; id 0 is the reference.
: >"$W/servers"
if [ $WL = resp ]; then
    if [ -n "$REDIS" ] && [ -x "$REDIS" ]; then
        echo "0 redis redis-server $REDIS" >>"$W/servers"
        REF_LABEL=redis-server
    else
        say "no real redis-server (Debian: apt-get install redis-server): no reference"; STATUS=1
        REF_LABEL=redis-server
    fi
    id=1
    for s in $SERVERS; do
        p=$(abspath "$s")
        if [ ! -x "$p" ]; then say "no server at $p: skipped"; STATUS=1; continue; fi
        label=$(basename "$p")
        case $s in examples/*) label="redis-server(libevio)" ;; *) label="clone-${label#redis-server-}" ;; esac
        echo "$id clone $label $p" >>"$W/servers"; id=$((id + 1))
    done
else
    id=0
    if [ -n "$REF" ]; then SERVERS="$REF $(printf '%s\n' $SERVERS | grep -vx "$REF")"; fi
    for s in $SERVERS; do
        p=$(abspath "$s")
        if [ ! -x "$p" ]; then say "no server at $p: skipped"; STATUS=1; continue; fi
        label=$(basename "$p")
        case $s in examples/*) label="http-server(libevio)" ;; esac
        echo "$id http $label $p" >>"$W/servers"; id=$((id + 1))
    done
    REF_LABEL=$(awk '$1 == 0 { print $3 }' "$W/servers")
fi
[ -s "$W/servers" ] || die "no server to measure"

say "build dir $BUILDDIR; $RUNS run(s) per point; tests {$TESTS}; P in {$PIPELINES}; $CONNS conns"
say "server on CPU $SCPU, client on CPU $CCPU; $NCPU CPUs online; raw data in $W"
LOAD0=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null)

: >"$W/alive"
while read -r id kind label path; do
    if start_server "s$id" "$kind" "$path" 10 $PIN_S; then
        case $kind in
        redis) backend="(Redis $("$path" --version 2>/dev/null | sed -n 's/.*v=\([0-9.]*\).*/\1/p'))" ;;
        *) backend=$(sed -n 's/.*backend: *\([A-Za-z0-9_-]*\).*/\1/p' "$W/s$id.log" | head -n 1) ;;
        esac
        [ -n "$backend" ] || backend="?"
        [ "$backend" = kqueue ] && [ "$(uname -s)" = Linux ] && backend="kqueue (emulated)"
        echo "$backend" >"$W/s$id.backend"
        echo "$id" >>"$W/alive"
        say "started $label (backend $backend) pid $(cat "$W/s$id.pid") port $(cat "$W/s$id.port")"
    else
        say "FAILED to start $label"; STATUS=1; echo "?" >"$W/s$id.backend"
        echo "did not start" >"$W/s$id.failed"
    fi
done <"$W/servers"
label_of() { awk -v i="$1" '$1 == i { print $3 }' "$W/servers"; }
kind_of() { awk -v i="$1" '$1 == i { print $2 }' "$W/servers"; }
path_of() { awk -v i="$1" '$1 == i { print $4 }' "$W/servers"; }
NALIVE=$(wc -l <"$W/alive")
TMO=$(awk -v d="$DURATION" 'BEGIN { printf "%d", d + 60 }')

# warm-up: every server, once (also makes the key GET reads)
for id in $(cat "$W/alive"); do
    port=$(cat "$W/s$id.port")
    if [ $WL = resp ]; then run_client "$port" set,get 16 20000
    else run_client "$port" get 1 ""; fi
done

# ---------------------------------------------------------------- timed runs
# runs.tsv: P id rep test rps p50 p99 cpu_us/req user_us/req cpu% requests cpu_s
: >"$W/runs.tsv"
for P in $PIPELINES; do
    n=$(n_for "$REQS" "$P")
    rep=1
    while [ $rep -le "$RUNS" ]; do
        for test in $TESTS; do
            order=$(awk -v r="$rep" -v n="$NALIVE" '{ a[NR-1] = $1 } END { for (i = 0; i < n; i++) print a[(i + r - 1) % n] }' "$W/alive")
            for id in $order; do
                [ -f "$W/s$id.failed" ] && continue
                pid=$(cat "$W/s$id.pid"); port=$(cat "$W/s$id.port")
                if ! kill -0 "$pid" 2>/dev/null; then
                    say "$(label_of "$id") (pid $pid) has died"; STATUS=1
                    echo "died" >"$W/s$id.failed"; continue
                fi
                c0=$(cpu_of "$pid"); t0=$(now_s)
                run_client "$port" "$test" "$P" "$n"
                t1=$(now_s); c1=$(cpu_of "$pid")
                if [ $CL_OK != yes ]; then
                    say "P=$P run $rep $test $(label_of "$id"): client failed: $CL_MSG"
                    STATUS=1; echo "client errors" >"$W/s$id.failed"; continue
                fi
                printf '%s %s\n' "$c0" "$c1" | awk -v P="$P" -v id="$id" -v rep="$rep" -v test="$test" \
                    -v rps="$CL_RPS" -v p50="$CL_P50" -v p99="$CL_P99" -v n="$CL_REQ" -v t0="$t0" -v t1="$t1" '{
                    cpu = $3 - $1; usr = $4 - $2
                    printf "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%.4f\t%.4f\t%.1f\t%s\t%.6f\n", P, id, rep, test, rps,
                        p50, p99, cpu * 1e6 / n, usr * 1e6 / n, 100 * cpu / (t1 - t0), n, cpu }' >>"$W/runs.tsv"
                say "P=$P run $rep/$RUNS $test $(label_of "$id"): $(tail -n 1 "$W/runs.tsv" |
                    awk -F'\t' '{ printf "%.0f req/s, p99 %s us, server %.3f us/req (%s%% CPU)", $5, $7, $8, $10 }')"
            done
        done
        rep=$((rep + 1))
    done
done

# ---------------------------------------------------------------- syscalls per request
: >"$W/sys.tsv"
if [ $HAVE_PERF = yes ]; then
    for P in $PIPELINES; do
        n=$(n_for "$SYS_REQ" "$P")
        for test in $TESTS; do
            for id in $(cat "$W/alive"); do
                [ -f "$W/s$id.failed" ] && continue
                pid=$(cat "$W/s$id.pid"); port=$(cat "$W/s$id.port")
                kill -0 "$pid" 2>/dev/null || continue
                pf="$W/perf.$id.$P.$test"; rm -f "$pf"
                perf stat -x, -o "$pf" -e "$PERF_EVENTS" -p "$pid" >/dev/null 2>&1 &
                ppid=$!
                echo "$ppid" >>"$W/pids"
                sleep 1   # let perf attach its counters
                run_client "$port" "$test" "$P" "$n"
                sleep 0.2
                kill -INT "$ppid" 2>/dev/null; wait "$ppid" 2>/dev/null
                if [ $CL_OK != yes ]; then
                    say "syscall count P=$P $test $(label_of "$id"): client failed: $CL_MSG"; STATUS=1; continue
                fi
                awk -F, -v n="$CL_REQ" -v P="$P" -v id="$id" -v test="$test" '
                    $3 == "raw_syscalls:sys_enter" && $1 ~ /^[0-9]+$/ { total = $1 }
                    $3 ~ /^syscalls:sys_enter_/ && $1 ~ /^[0-9]+$/ && $1 > 0 { c[substr($3, 20)] = $1; listed += $1 }
                    END {
                        if (total == "") exit
                        if (total - listed > 0) c["other"] = total - listed
                        s = ""
                        while (1) {
                            best = ""; for (k in c) if (best == "" || c[k] > c[best]) best = k
                            if (best == "" || c[best] / n < 0.005) break
                            s = s (s == "" ? "" : ", ") sprintf("%s %.3f", best, c[best] / n); delete c[best]
                        }
                        printf "%s\t%s\t%s\t%.3f\t%s\n", P, id, test, total / n, s
                    }' "$pf" >>"$W/sys.tsv"
                say "syscalls P=$P $test $(label_of "$id"): $(awk -F'\t' -v P="$P" -v id="$id" -v t="$test" '$1 == P && $2 == id && $3 == t { print $4 "/req (" $5 ")" }' "$W/sys.tsv")"
            done
        done
    done
fi

# ---------------------------------------------------------------- instructions per request
: >"$W/cg.tsv"
if [ $DO_CG = yes ]; then
    for id in $(cat "$W/alive"); do
        path=$(path_of "$id") kind=$(kind_of "$id")
        prefix="valgrind --tool=callgrind --callgrind-out-file=$W/cg.$id.%p"
        if head -c 2 "$path" | grep -q '#!' && [ -x "$BUILDDIR/libtool" ]; then
            prefix="$BUILDDIR/libtool --mode=execute $prefix"
        fi
        # shellcheck disable=SC2086
        if ! start_server "cg$id" "$kind" "$path" 60 $PIN_S $prefix; then
            say "callgrind: $(label_of "$id") did not start"; continue
        fi
        cpid=$SPID; port=$(cat "$W/cg$id.port")
        ODUR=$DURATION; DURATION=1
        if [ $WL = resp ]; then run_client "$port" set,get 1 "$CG_REQ"; else run_client "$port" get 1 ""; fi
        for P in $PIPELINES; do
            for test in $TESTS; do
                rm -f "$W/cg.$id.$cpid".*
                callgrind_control -z "$cpid" >/dev/null 2>&1
                run_client "$port" "$test" "$P" "$CG_REQ"
                callgrind_control -d "$cpid" >/dev/null 2>&1
                ir=$(cat "$W/cg.$id.$cpid".* 2>/dev/null | sed -n 's/^summary: *//p' | awk '{ s += $1 } END { print s + 0 }')
                if [ $CL_OK = yes ] && [ "${CL_REQ:-0}" -gt 0 ] && [ "${ir:-0}" -gt 0 ]; then
                    awk -v P="$P" -v id="$id" -v t="$test" -v ir="$ir" -v n="$CL_REQ" 'BEGIN { printf "%s\t%s\t%s\t%.0f\n", P, id, t, ir / n }' >>"$W/cg.tsv"
                    say "callgrind P=$P $test $(label_of "$id"): $(tail -n 1 "$W/cg.tsv" | cut -f4) instructions/req (user space)"
                else
                    say "callgrind P=$P $test $(label_of "$id"): no count ($CL_MSG)"
                fi
            done
        done
        DURATION=$ODUR
        stop_pid "$cpid"
    done
fi

# ---------------------------------------------------------------- report
median() {
    sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "n/a"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
col() { # P id test column -> values
    awk -F'\t' -v P="$1" -v id="$2" -v t="$3" -v c="$4" '$1 == P && $2 == id && $4 == t && $c != "" && $c != "nan" { print $c }' "$W/runs.tsv"
}
# paired ratio of column c of id to the reference, median over repetitions;
# test "all": sum of CPU over sum of requests across the tests of a repetition
pratio() { # P id test
    awk -F'\t' -v P="$1" -v id="$2" -v t="$3" '
        $1 != P || (t != "all" && $4 != t) { next }
        $2 == 0 { rc[$3] += $12; rn[$3] += $11; rk[$3]++ }
        $2 == id { vc[$3] += $12; vn[$3] += $11; vk[$3]++ }
        END { for (r in vc) if ((r in rc) && rc[r] > 0 && vk[r] == rk[r]) print (vc[r] / vn[r]) / (rc[r] / rn[r]) }' "$W/runs.tsv" | median
}
allcol() { # P id -> per repetition: cpu_us/req user_us/req rps(total requests / total run time)
    awk -F'\t' -v P="$1" -v id="$2" '
        $1 == P && $2 == id { c[$3] += $12; n[$3] += $11; u[$3] += $9 * $11; t[$3] += $11 / $5; k[$3]++ }
        END { for (r in c) if (k[r] == KT) printf "%.4f\t%.4f\t%.0f\n", c[r] * 1e6 / n[r], u[r] / n[r], n[r] / t[r] }' \
        KT="$(printf '%s\n' $TESTS | wc -l)" "$W/runs.tsv"
}

if [ $WL = resp ]; then
    TITLE="RESP benchmark: redis-benchmark -c $CONNS, one test per run, 127.0.0.1"
    NOTE="requests per run: $REQS×P"
else
    TITLE="HTTP benchmark: wrk -c $CONNS -t1 -d ${DURATION}s, GET / (plain HTTP), 127.0.0.1"
    NOTE="P>1: a wrk Lua script writes P requests at a time (wrk 4.1 then times batches, not requests, and its upper percentiles are unreliable: latency n/a)"
fi
[ $DO_CG = yes ] && { cgh=" instr/req |"; cgs="--:|"; } || { cgh=; cgs=; }
echo
echo "## $TITLE"
echo
echo "$(uname -srm); $NCPU CPUs; server pinned to CPU $SCPU, client to CPU $CCPU; median of $RUNS interleaved run(s);"
echo "$NOTE; load average before/after: ${LOAD0:-?} / $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null)."
echo
echo "| server | backend | test | P | req/s (median) | req/s min–max | p50 µs | p99 µs | server CPU µs/req (median) | user µs/req | server CPU % | ratio to $REF_LABEL | syscalls/req |$cgh"
echo "|---|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|$cgs"
for P in $PIPELINES; do
    for test in $TESTS; do
        while read -r id kind label path; do
            backend=$(cat "$W/s$id.backend" 2>/dev/null || echo "?")
            rps=$(col "$P" "$id" "$test" 5 | median)
            if [ "$rps" = n/a ]; then
                why=$(cat "$W/s$id.failed" 2>/dev/null || echo "no result")
                printf '| %s | %s | %s | %s | FAILED (%s) | | | | | | | | |%s\n' "$label" "$backend" "$test" "$P" "$why" "${cgh:+ |}"
                continue
            fi
            lo=$(col "$P" "$id" "$test" 5 | sort -g | head -n 1); hi=$(col "$P" "$id" "$test" 5 | sort -g | tail -n 1)
            p50=$(col "$P" "$id" "$test" 6 | median); p99=$(col "$P" "$id" "$test" 7 | median)
            cpu=$(col "$P" "$id" "$test" 8 | median); usr=$(col "$P" "$id" "$test" 9 | median)
            pct=$(col "$P" "$id" "$test" 10 | median)
            ratio=$(pratio "$P" "$id" "$test")
            sys=$(awk -F'\t' -v P="$P" -v id="$id" -v t="$test" '$1 == P && $2 == id && $3 == t { print $4 }' "$W/sys.tsv")
            cg=$(awk -F'\t' -v P="$P" -v id="$id" -v t="$test" '$1 == P && $2 == id && $3 == t { print $4 }' "$W/cg.tsv")
            awk -v l="$label" -v b="$backend" -v t="$test" -v P="$P" -v rps="$rps" -v lo="$lo" -v hi="$hi" \
                -v p50="$p50" -v p99="$p99" -v cpu="$cpu" -v usr="$usr" -v pct="$pct" -v ratio="$ratio" \
                -v sys="${sys:-n/a}" -v cg="${cg:-n/a}" -v docg="$DO_CG" -v wl="$WL" -v sum="$SUMMARY" 'BEGIN {
                if (ratio != "n/a") ratio = sprintf("%.2f", ratio)
                if (p50 != "n/a") p50 = sprintf("%.0f", p50)
                if (p99 != "n/a") p99 = sprintf("%.0f", p99)
                printf "| %s | %s | %s | %s | %.0f | %.0f–%.0f | %s | %s | %.3f | %.3f | %.0f | %s | %s |%s\n",
                    l, b, t, P, rps, lo, hi, p50, p99, cpu, usr, pct, ratio, sys, docg == "yes" ? " " cg " |" : ""
                if (sum != "")
                    printf "%s\t%s\t%s\t%s\t%s\t%.0f\t%s\t%s\t%.4f\t%s\t%s\t%s\n", wl, l, b, t, P, rps, p50, p99,
                        cpu, ratio, sys, cg >>sum }'
        done <"$W/servers"
    done
done
echo
ntests=$(printf '%s\n' $TESTS | wc -l)
if [ "$ntests" -gt 1 ]; then
    echo "### all tests together: server CPU per request over the $ntests tests of each repetition"
    echo
    [ $DO_CG = yes ] && { cgh=" instr/req (mean of tests) |"; cgs="--:|"; } || { cgh=; cgs=; }
    echo "| server | backend | P | req/s (requests / client time) | server CPU µs/req (median) | user µs/req | ratio to $REF_LABEL | syscalls/req (mean of tests) |$cgh"
    echo "|---|---|--:|--:|--:|--:|--:|--:|$cgs"
    for P in $PIPELINES; do
        while read -r id kind label path; do
            backend=$(cat "$W/s$id.backend" 2>/dev/null || echo "?")
            allcol "$P" "$id" >"$W/all.tmp"
            cpu=$(cut -f1 "$W/all.tmp" | median)
            [ "$cpu" = n/a ] && { printf '| %s | %s | %s | FAILED | | | | |%s\n' "$label" "$backend" "$P" "${cgh:+ |}"; continue; }
            usr=$(cut -f2 "$W/all.tmp" | median); rps=$(cut -f3 "$W/all.tmp" | median)
            ratio=$(pratio "$P" "$id" all)
            sys=$(awk -F'\t' -v P="$P" -v id="$id" '$1 == P && $2 == id { s += $4; k++ } END { if (k) printf "%.3f", s / k; else print "n/a" }' "$W/sys.tsv")
            cg=$(awk -F'\t' -v P="$P" -v id="$id" '$1 == P && $2 == id { s += $4; k++ } END { if (k) printf "%.0f", s / k; else print "n/a" }' "$W/cg.tsv")
            awk -v l="$label" -v b="$backend" -v P="$P" -v rps="$rps" -v cpu="$cpu" -v usr="$usr" -v ratio="$ratio" \
                -v sys="$sys" -v cg="$cg" -v wl="$WL" -v sum="$SUMMARY" -v docg="$DO_CG" 'BEGIN {
                if (ratio != "n/a") ratio = sprintf("%.2f", ratio)
                printf "| %s | %s | %s | %.0f | %.3f | %.3f | %s | %s |%s\n", l, b, P, rps, cpu, usr, ratio, sys,
                    docg == "yes" ? " " cg " |" : ""
                if (sum != "")
                    printf "%s\t%s\t%s\tall\t%s\t%.0f\t\t\t%.4f\t%s\t%s\t%s\n", wl, l, b, P, rps, cpu, ratio, sys, cg >>sum }'
        done <"$W/servers"
    done
    echo
fi
cat <<EOF
server CPU µs/req: the server's CPU time (user+sys, all threads; ns-precise schedstat) from just
before to just after the client run, over the requests it completed (so it includes the client's
connection set-up, alike for every server).  ratio: that figure over $REF_LABEL's in the same
repetition, median over repetitions.  server CPU % near 100: the server was the bottleneck;
lower: the client (one thread, on the other CPU) or other load was, and req/s then says little
about the server.  syscalls/req: perf stat -e raw_syscalls:sys_enter -p PID over one run.
EOF
if [ -s "$W/sys.tsv" ]; then
    echo
    echo "### system calls per request (perf, all of the server's threads, ≥ 0.005/req shown)"
    echo
    echo "| server | test | P | syscalls/req | breakdown per request |"
    echo "|---|---|--:|--:|---|"
    for P in $PIPELINES; do
        for test in $TESTS; do
            while read -r id kind label path; do
                awk -F'\t' -v P="$P" -v id="$id" -v t="$test" -v l="$label" '$1 == P && $2 == id && $3 == t { printf "| %s | %s | %s | %s | %s |\n", l, t, P, $4, $5 }' "$W/sys.tsv"
            done <"$W/servers"
        done
    done
fi
if [ $DO_CG = yes ]; then
    echo
    echo "instr/req: user-space instructions per request under callgrind ($CG_REQ requests per test after"
    echo "a warm-up; the server runs ~50x slower there, so it batches differently than at full speed)."
fi
[ $STATUS -eq 0 ] || say "FAILED: a server did not start, died, or the client reported errors (see above)"
exit $STATUS
