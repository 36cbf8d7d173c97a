#!/bin/sh
# echo-bench.sh — echo throughput, latency and cost per request: evio (each
# backend) against a plain hand-written epoll server (and whatever other
# servers --servers names: bench/run-all.sh adds the plain libuv, libev and
# libevent peers of bench/peers/, and reuses this script for the proxy).
# POSIX sh.
#
# Normally run by `make bench` from the build directory, which builds the
# binaries and passes --builddir and --servers.  By hand, from a build dir:
#   sh /path/to/src/bench/echo-bench.sh [options]
#
# Method (timing on small shared machines is noisy, so):
#   * every server is started once, pinned to CPU 0; the client to CPU 1;
#   * each point (pipeline depth P) is run R times, servers interleaved within
#     each repetition and their order rotated between repetitions;
#     medians are reported, with the min–max of req/s to show the spread;
#   * server CPU per request over exactly the measured window (the client
#     samples /proc/PID — utime+stime, or the ns-precise per-task schedstat —
#     at both ends of the window), which depends much less on the clock rate
#     and the neighbours than req/s does;
#   * system calls per request, counted once per server and P with
#     `perf stat -e raw_syscalls:sys_enter,syscalls:sys_enter_<loop syscalls>`
#     over a fixed number of requests (n/a if perf cannot trace here);
#   * optionally (--callgrind, slow) user-space instructions per request.
#   * a control row: a second, identical plain-epoll server, so the table
#     shows its own noise floor (--no-control to skip it).
#
# Exit status: 0 if every server started and every run was error-free.

set -u

usage() {
    cat <<'EOF'
usage: echo-bench.sh [options]
  --builddir DIR        where the built programs are (default: . if it has
                        bench/echo-client, else the source tree)
  --servers "A B ..."   evio echo servers to compare (paths relative to
                        builddir); default: examples/echo-server/echo-server
                        and every bench/echo-server-* present
  --peer PATH           reference server (default bench/peers/epoll-echo)
  --client PATH         load generator (default bench/echo-client)
  --runs R              repetitions per point (default 5)
  --duration S          measured seconds per run (default 2)
  --warmup S            seconds of load before measuring (default 0.5)
  --pipelines "1 16"    pipeline depths
  --conns N             connections (default 50)
  --size N              message bytes (default 6)
  --syscall-requests N  requests per syscall count, times P (default 100000)
  --no-syscalls         skip the perf syscall counts
  --callgrind           also count user-space instructions per request
                        under valgrind (slow)
  --callgrind-requests N  requests per callgrind measurement (default 20000)
  --no-control          no second plain-epoll server as a noise control
  --server-cpu N --client-cpu N   CPUs to pin to (default 0 and 1)
  --port-base N         first TCP port (default: random in 20000-31999,
                        below the ephemeral ports)
  --out DIR             keep raw results here (default: a temp dir, removed)
  --loops N             run evio's echo servers with N loops (threads); the
                        plain peers stay single-threaded.  With N > 1 give
                        the server more CPUs, e.g. --server-cpu 0,1
  --server-args "ARGS"  extra arguments for every server, the reference too
                        (e.g. the proxy's --backend HOST:PORT)
  --ref-label NAME      the reference's name in the table (default epoll-echo)
  --title TEXT          the table's heading
  --pair "A=B ..."      one more column: the paired ratio of server A's CPU/req
                        to server B's (names as in the table, e.g.
                        echo-server-libev=ev-echo), median over repetitions
  --summary FILE        append machine-readable rows (for bench/run-all.sh)
  --name NAME           the workload's name in those rows (default echo)
EOF
    exit "${1:-2}"
}

# ---------------------------------------------------------------- options
BUILDDIR=
SERVERS=
SERVERS_SET=no
PEER=bench/peers/epoll-echo
CLIENT=bench/echo-client
RUNS=5
DURATION=2
WARMUP=0.5
PIPELINES="1 16"
CONNS=50
SIZE=6
SYS_REQ=100000
DO_SYS=yes
DO_CG=no
CG_REQ=20000
CONTROL=yes
SCPU=0
CCPU=1
PORT_BASE=
OUT=
SERVER_ARGS=
LOOPS=
REF_LABEL=epoll-echo
TITLE=
PAIRS=
SUMMARY=
NAME=echo

while [ $# -gt 0 ]; do
    case $1 in
    --no-*|--callgrind|-h|--help) ;;
    *) [ $# -ge 2 ] || { echo "echo-bench: $1 needs a value" >&2; usage; } ;;
    esac
    case $1 in
    --builddir) BUILDDIR=$2; shift ;;
    --servers) SERVERS=$2; SERVERS_SET=yes; shift ;;
    --peer) PEER=$2; shift ;;
    --client) CLIENT=$2; shift ;;
    --runs) RUNS=$2; shift ;;
    --duration) DURATION=$2; shift ;;
    --warmup) WARMUP=$2; shift ;;
    --pipelines) PIPELINES=$2; shift ;;
    --conns) CONNS=$2; shift ;;
    --size) SIZE=$2; shift ;;
    --syscall-requests) SYS_REQ=$2; shift ;;
    --no-syscalls) DO_SYS=no ;;
    --callgrind) DO_CG=yes ;;
    --callgrind-requests) CG_REQ=$2; shift ;;
    --no-control) CONTROL=no ;;
    --server-cpu) SCPU=$2; shift ;;
    --client-cpu) CCPU=$2; shift ;;
    --port-base) PORT_BASE=$2; shift ;;
    --out) OUT=$2; shift ;;
    --server-args) SERVER_ARGS=$2; shift ;;
    --loops) LOOPS=$2; shift ;;
    --ref-label) REF_LABEL=$2; shift ;;
    --title) TITLE=$2; shift ;;
    --pair) PAIRS=$2; shift ;;
    --summary) SUMMARY=$2; shift ;;
    --name) NAME=$2; shift ;;
    -h|--help) usage 0 ;;
    *) echo "echo-bench: unknown option '$1'" >&2; usage ;;
    esac
    [ $# -gt 0 ] && shift
done

say() { printf '%s\n' "echo-bench: $*" >&2; }
die() { say "$*"; exit 1; }

case $RUNS in ''|*[!0-9]*) die "--runs wants a positive integer" ;; esac
[ "$RUNS" -ge 1 ] || die "--runs wants a positive integer"

if [ -z "$BUILDDIR" ]; then
    if [ -x bench/echo-client ]; then BUILDDIR=.
    else BUILDDIR=$(cd "$(dirname "$0")/.." && pwd); fi
fi
BUILDDIR=$(cd "$BUILDDIR" 2>/dev/null && pwd) || die "no build directory '$BUILDDIR'"

abspath() { case $1 in /*) printf '%s\n' "$1" ;; *) printf '%s\n' "$BUILDDIR/$1" ;; esac; }

CLIENT=$(abspath "$CLIENT")
PEER=$(abspath "$PEER")
[ -x "$CLIENT" ] || die "no client at $CLIENT (run 'make bench' or 'make bench/echo-client')"
[ -x "$PEER" ] || die "no reference server at $PEER (run 'make bench/peers/epoll-echo')"
if [ $SERVERS_SET = no ]; then
    for f in "$BUILDDIR"/examples/echo-server/echo-server "$BUILDDIR"/bench/echo-server-*; do
        [ -f "$f" ] && [ -x "$f" ] && SERVERS="$SERVERS ${f#"$BUILDDIR"/}"
    done
fi

# ---------------------------------------------------------------- tools
need() { command -v "$1" >/dev/null 2>&1; }
for t in awk sed sort timeout; do need $t || die "needs '$t'"; done
NCPU=$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo 1)
if ! need taskset; then
    say "taskset not found (util-linux): server and client will not be pinned"
    PIN_S='' PIN_C=''
elif [ "$NCPU" -lt 2 ]; then
    say "only $NCPU CPU: server and client share CPU $SCPU"
    PIN_S="taskset -c $SCPU" PIN_C="taskset -c $SCPU"
else
    PIN_S="taskset -c $SCPU" PIN_C="taskset -c $CCPU"
fi
HAVE_PERF=no
PERF_EVENTS=
if [ $DO_SYS = yes ]; then
    if need perf && perf stat -x, -e raw_syscalls:sys_enter -- true >/dev/null 2>&1; then
        HAVE_PERF=yes
        # Total, plus the syscalls an event loop makes, for the breakdown (all
        # ~350 syscalls:sys_enter_* tracepoints take perf ~15 s to tear down).
        PERF_EVENTS=raw_syscalls:sys_enter
        perf list tracepoint 2>/dev/null | awk '{ print $1 }' | sed -n 's/^syscalls:sys_enter_//p' >"${TMPDIR:-/tmp}/echo-bench-tp.$$"
        for sc in epoll_wait epoll_pwait epoll_pwait2 epoll_ctl read readv recvfrom recvmsg \
                  write writev sendto sendmsg accept accept4 close shutdown setsockopt getsockopt \
                  ioctl fcntl futex io_uring_enter poll ppoll select pselect6 kevent \
                  getsockname getpeername timerfd_settime clock_gettime gettimeofday; do
            grep -qx "$sc" "${TMPDIR:-/tmp}/echo-bench-tp.$$" && PERF_EVENTS="$PERF_EVENTS,syscalls:sys_enter_$sc"
        done
        rm -f "${TMPDIR:-/tmp}/echo-bench-tp.$$"
    else
        say "perf cannot count raw_syscalls:sys_enter here (not installed, no tracefs, or perf_event_paranoid): syscalls/req is n/a"
    fi
fi
if [ $DO_CG = yes ] && { ! need valgrind || ! need callgrind_control; }; then
    say "valgrind/callgrind_control not found: no instruction counts"
    DO_CG=no
fi
HAVE_SS=no; need ss && HAVE_SS=yes

# ---------------------------------------------------------------- work dir, cleanup
if [ -n "$OUT" ]; then
    mkdir -p "$OUT" || die "cannot create $OUT"
    W=$(cd "$OUT" && pwd); KEEP=yes
else
    W=$(mktemp -d "${TMPDIR:-/tmp}/echo-bench.XXXXXX") || die "mktemp failed"; KEEP=no
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

if [ -z "$PORT_BASE" ]; then
    PORT_BASE=$(awk -v s="$$" 'BEGIN { srand(s); print 20000 + int(rand() * 12000) }')
fi
NEXT_PORT=$PORT_BASE
# port_busy, new_port, start_server, stop_pid, kv
. "$(dirname "$0")/lib.sh"

# ---------------------------------------------------------------- servers
# $W/servers: "id label path", id 0 is the reference.
: >"$W/servers"
echo "0 $REF_LABEL $PEER" >>"$W/servers"
[ $CONTROL = yes ] && echo "1 $REF_LABEL(control) $PEER" >>"$W/servers"
id=2
for s in $SERVERS; do
    p=$(abspath "$s")
    label=$(basename "$p")
    [ "$label" = echo-server ] && label="echo-server(libevio)"
    if [ ! -x "$p" ]; then say "no server at $p: skipped"; STATUS=1; continue; fi
    echo "$id $label $p" >>"$W/servers"
    id=$((id + 1))
done
[ "$(wc -l <"$W/servers")" -ge 2 ] || say "no evio server to compare (is examples/echo-server built?)"

say "build dir $BUILDDIR; $RUNS run(s) x ${DURATION}s (+${WARMUP}s warm-up) per point; P in {$PIPELINES}; $CONNS conns; $SIZE-byte messages"
say "server on CPU $SCPU, client on CPU $CCPU; $NCPU CPUs online; raw data in $W"
LOAD0=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null)
if [ -n "$LOAD0" ] && awk -v l="${LOAD0%% *}" 'BEGIN { exit !(l > 0.5) }'; then
    say "the machine is busy (load average $LOAD0): expect noisy req/s; compare CPU/req, syscalls and instructions"
fi

: >"$W/alive"
while read -r id label path; do
    if start_server "s$id" "$path" 10 $PIN_S; then
        backend=$(sed -n 's/.*backend: *\([A-Za-z0-9_-]*\).*/\1/p' "$W/s$id.log" | head -n 1)
        case $label in
        epoll-echo*) backend="(plain epoll)" ;;
        ev-echo) backend="(plain libev)" ;;
        uv-echo) backend="(plain libuv)" ;;
        event-echo) backend="(plain libevent)" ;;
        esac
        [ -n "$backend" ] || backend="?"
        # no native kqueue on Linux: compat/ emulates it over epoll
        [ "$backend" = kqueue ] && [ "$(uname -s)" = Linux ] && backend="kqueue (emulated)"
        echo "$backend" >"$W/s$id.backend"
        echo "$id" >>"$W/alive"
        say "started $label (backend $backend) pid $(cat "$W/s$id.pid") port $(cat "$W/s$id.port")"
    else
        say "FAILED to start $label"; STATUS=1; echo "?" >"$W/s$id.backend"
        echo "did not start" >"$W/s$id.failed"
    fi
done <"$W/servers"
label_of() { awk -v i="$1" '$1 == i { print $2 }' "$W/servers"; }
path_of() { awk -v i="$1" '$1 == i { print $3 }' "$W/servers"; }

# ---------------------------------------------------------------- timed runs
TMO=$(awk -v d="$DURATION" -v w="$WARMUP" 'BEGIN { printf "%d", d + w + 20 }')
: >"$W/runs.tsv"
NALIVE=$(wc -l <"$W/alive")
for P in $PIPELINES; do
    rep=1
    while [ $rep -le "$RUNS" ]; do
        # rotate the order each repetition: A B C, B C A, C A B, ...
        order=$(awk -v r="$rep" -v n="$NALIVE" '{ a[NR-1] = $1 } END { for (i = 0; i < n; i++) print a[(i + r - 1) % n] }' "$W/alive")
        for id in $order; do
            pid=$(cat "$W/s$id.pid"); port=$(cat "$W/s$id.port")
            if ! kill -0 "$pid" 2>/dev/null; then
                say "$(label_of "$id") (pid $pid) has died"; STATUS=1
                echo "died" >"$W/s$id.failed"; continue
            fi
            line=$(timeout -k 2 "$TMO" $PIN_C "$CLIENT" --host 127.0.0.1 --port "$port" \
                --conns "$CONNS" --pipeline "$P" --size "$SIZE" --duration "$DURATION" \
                --warmup "$WARMUP" --server-pid "$pid" 2>>"$W/client.err")
            rc=$?
            errs=$(kv errors "$line")
            if [ $rc -ne 0 ] || [ -z "$line" ] || [ "${errs:-1}" != 0 ]; then
                say "P=$P run $rep $(label_of "$id"): client failed (exit $rc, errors=${errs:-?}): $line"
                STATUS=1
                echo "client errors" >"$W/s$id.failed"
                continue
            fi
            printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$P" "$id" "$rep" \
                "$(kv rps "$line")" "$(kv p50_us "$line")" "$(kv p99_us "$line")" \
                "$(kv server_cpu_us_per_req "$line")" "$(kv server_user_us_per_req "$line")" \
                "$(kv server_cpu_pct "$line")" "$(kv client_cpu_us_per_req "$line")" \
                "$(kv requests "$line")" >>"$W/runs.tsv"
            say "P=$P run $rep/$RUNS $(label_of "$id"): $(kv rps "$line") req/s, p99 $(kv p99_us "$line") us, server $(kv server_cpu_us_per_req "$line") us/req ($(kv server_cpu_pct "$line")% CPU)"
        done
        rep=$((rep + 1))
    done
done

# ---------------------------------------------------------------- syscalls per request
: >"$W/sys.tsv"
if [ $HAVE_PERF = yes ]; then
    for P in $PIPELINES; do
        n=$((SYS_REQ * P))
        for id in $(cat "$W/alive"); do
            pid=$(cat "$W/s$id.pid"); port=$(cat "$W/s$id.port")
            kill -0 "$pid" 2>/dev/null || continue
            pf="$W/perf.$id.$P"; rm -f "$pf"
            # not under timeout(1): perf must get our SIGINT to print its counts;
            # it is bounded by the client's timeout below and by cleanup()
            perf stat -x, -o "$pf" -e "$PERF_EVENTS" -p "$pid" >/dev/null 2>&1 &
            ppid=$!
            echo "$ppid" >>"$W/pids"
            sleep 1   # let perf attach its counters (there is no ready signal)
            line=$(timeout -k 2 "$TMO" $PIN_C "$CLIENT" --host 127.0.0.1 --port "$port" \
                --conns "$CONNS" --pipeline "$P" --size "$SIZE" --requests "$n" 2>>"$W/client.err")
            rc=$?
            sleep 0.2   # let the server see the closes
            kill -INT "$ppid" 2>/dev/null; wait "$ppid" 2>/dev/null
            reqs=$(kv requests "$line")
            if [ $rc -ne 0 ] || [ "${reqs:-0}" = 0 ]; then
                say "syscall count P=$P $(label_of "$id"): client failed: $line"; STATUS=1; continue
            fi
            awk -F, -v n="$reqs" -v P="$P" -v id="$id" '
                $3 == "raw_syscalls:sys_enter" && $1 ~ /^[0-9]+$/ { total = $1 }
                $3 ~ /^syscalls:sys_enter_/ && $1 ~ /^[0-9]+$/ && $1 > 0 {
                    name = substr($3, 20); c[name] = $1; listed += $1 }
                END {
                    if (total == "") exit
                    if (total - listed > 0) c["other"] = total - listed
                    s = ""
                    # per-request breakdown, most frequent first, at least 0.005/req
                    while (1) {
                        best = ""; for (k in c) if (best == "" || c[k] > c[best]) best = k
                        if (best == "" || c[best] / n < 0.005) break
                        s = s (s == "" ? "" : ", ") sprintf("%s %.2f", best, c[best] / n); delete c[best]
                    }
                    printf "%s\t%s\t%.3f\t%s\n", P, id, total / n, s
                }' "$pf" >>"$W/sys.tsv"
            say "syscalls P=$P $(label_of "$id"): $(awk -F'\t' -v P="$P" -v id="$id" '$1 == P && $2 == id { print $3 "/req (" $4 ")" }' "$W/sys.tsv")"
        done
    done
fi

# ---------------------------------------------------------------- instructions per request
: >"$W/cg.tsv"
if [ $DO_CG = yes ]; then
    for id in $(cat "$W/alive"); do
        path=$(path_of "$id")
        [ "$id" = 1 ] && continue   # the control is the same program
        prefix="valgrind --tool=callgrind --callgrind-out-file=$W/cg.$id.%p"
        # a libtool wrapper script: run valgrind on the real program
        if head -c 2 "$path" | grep -q '#!' && [ -x "$BUILDDIR/libtool" ]; then
            prefix="$BUILDDIR/libtool --mode=execute $prefix"
        fi
        # shellcheck disable=SC2086
        if ! start_server "cg$id" "$path" 60 $PIN_S $prefix; then
            say "callgrind: $(label_of "$id") did not start"; continue
        fi
        cpid=$SPID; port=$(cat "$W/cg$id.port")
        timeout 120 $PIN_C "$CLIENT" --host 127.0.0.1 --port "$port" --conns "$CONNS" --size "$SIZE" \
            --requests "$CG_REQ" >/dev/null 2>>"$W/client.err"   # warm-up, discarded
        for P in $PIPELINES; do
            rm -f "$W/cg.$id.$cpid".*
            callgrind_control -z "$cpid" >/dev/null 2>&1
            line=$(timeout 300 $PIN_C "$CLIENT" --host 127.0.0.1 --port "$port" --conns "$CONNS" \
                --pipeline "$P" --size "$SIZE" --requests "$CG_REQ" 2>>"$W/client.err")
            callgrind_control -d "$cpid" >/dev/null 2>&1
            reqs=$(kv requests "$line")
            ir=$(cat "$W/cg.$id.$cpid".* 2>/dev/null | sed -n 's/^summary: *//p' | awk '{ s += $1 } END { print s + 0 }')
            if [ "${reqs:-0}" -gt 0 ] && [ "${ir:-0}" -gt 0 ]; then
                awk -v P="$P" -v id="$id" -v ir="$ir" -v n="$reqs" 'BEGIN { printf "%s\t%s\t%.0f\n", P, id, ir / n }' >>"$W/cg.tsv"
                say "callgrind P=$P $(label_of "$id"): $(awk -v ir="$ir" -v n="$reqs" 'BEGIN { printf "%.0f", ir / n }') instructions/req (user space)"
            else
                say "callgrind P=$P $(label_of "$id"): no count"
            fi
        done
        stop_pid "$cpid"
    done
fi

# ---------------------------------------------------------------- report
median() { # file of numbers -> median
    sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "n/a"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
col() { # P id column -> values
    awk -F'\t' -v P="$1" -v id="$2" -v c="$3" '$1 == P && $2 == id && $c != "" && $c != "nan" { print $c }' "$W/runs.tsv"
}

echo
echo "## ${TITLE:-echo benchmark}: $CONNS connections, $SIZE-byte messages, 127.0.0.1"
echo
echo "$(uname -srm); $NCPU CPUs; server pinned to CPU $SCPU, client to CPU $CCPU; median of $RUNS interleaved run(s) of ${DURATION}s each;"
echo "load average before/after: ${LOAD0:-?} / $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null)."
echo
if [ $DO_CG = yes ]; then cgh=" instr/req |"; cgs="---:|"; else cgh=; cgs=; fi
if [ -n "$PAIRS" ]; then cgh="$cgh ratio to same-library peer |"; cgs="$cgs--:|"; fi
id_of() { awk -v l="$1" '$2 == l { print $1; exit }' "$W/servers"; }
# paired_ratio P ID REFID: median over repetitions of ID's CPU/req over REFID's
paired_ratio() {
    awk -F'\t' -v P="$1" -v id="$2" -v ref="$3" '
        $1 == P && $2 == ref && $7 > 0 { r[$3] = $7 }
        $1 == P && $2 == id && $7 > 0 { v[$3] = $7 }
        END { for (k in v) if (k in r) print v[k] / r[k] }' "$W/runs.tsv" | median
}
echo "| server | backend | P | req/s (median) | req/s min–max | p50 µs | p99 µs | server CPU µs/req (median) | user µs/req | server CPU % | ratio to $REF_LABEL | syscalls/req |$cgh"
echo "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|$cgs"
for P in $PIPELINES; do
    while read -r id label path; do
        backend=$(cat "$W/s$id.backend" 2>/dev/null || echo "?")
        rps=$(col "$P" "$id" 4 | median)
        if [ "$rps" = n/a ]; then
            why=$(cat "$W/s$id.failed" 2>/dev/null || echo "no result")
            printf '| %s | %s | %s | FAILED (%s) | | | | | | | | |%s\n' "$label" "$backend" "$P" "$why" "$(printf '%s' "$cgh" | sed 's/[^|]//g; s/|/ |/g')"
            continue
        fi
        # ratio: median over repetitions of (this server / plain epoll) in the
        # same repetition, which ran within seconds of each other
        ratio=$(paired_ratio "$P" "$id" 0)
        lo=$(col "$P" "$id" 4 | sort -g | head -n 1); hi=$(col "$P" "$id" 4 | sort -g | tail -n 1)
        p50=$(col "$P" "$id" 5 | median); p99=$(col "$P" "$id" 6 | median)
        cpu=$(col "$P" "$id" 7 | median); usr=$(col "$P" "$id" 8 | median)
        pct=$(col "$P" "$id" 9 | median)
        sys=$(awk -F'\t' -v P="$P" -v id="$id" '$1 == P && $2 == id { print $3 }' "$W/sys.tsv")
        [ -n "$sys" ] || sys=n/a
        cg=
        if [ $DO_CG = yes ]; then
            cg=$(awk -F'\t' -v P="$P" -v id="$id" '$1 == P && $2 == id { print $3 }' "$W/cg.tsv")
            cg=" ${cg:-n/a} |"
        fi
        pr=n/a
        if [ -n "$PAIRS" ]; then
            for pp in $PAIRS; do
                [ "${pp%%=*}" = "$label" ] || continue
                pid2=$(id_of "${pp#*=}")
                [ -n "$pid2" ] && pr=$(paired_ratio "$P" "$id" "$pid2")
            done
            [ "$pr" = n/a ] || pr=$(awk -v r="$pr" 'BEGIN { printf "%.2f", r }')
            cg="$cg $pr |"
        fi
        awk -v l="$label" -v b="$backend" -v P="$P" -v rps="$rps" -v lo="$lo" -v hi="$hi" \
            -v p50="$p50" -v p99="$p99" -v cpu="$cpu" -v usr="$usr" -v pct="$pct" -v ratio="$ratio" \
            -v sys="$sys" -v cg="$cg" 'BEGIN {
            if (ratio != "n/a") ratio = sprintf("%.2f", ratio)
            printf "| %s | %s | %s | %.0f | %.0f–%.0f | %.0f | %.0f | %.3f | %.3f | %.0f | %s | %s |%s\n",
                l, b, P, rps, lo, hi, p50, p99, cpu, usr, pct, ratio, sys, cg }'
        if [ -n "$SUMMARY" ]; then
            cgv=$(awk -F'\t' -v P="$P" -v id="$id" '$1 == P && $2 == id { print $3 }' "$W/cg.tsv")
            awk -v wl="$NAME" -v l="$label" -v b="$backend" -v P="$P" -v rps="$rps" -v p50="$p50" -v p99="$p99" \
                -v cpu="$cpu" -v ratio="$ratio" -v sys="$sys" -v cg="${cgv:-n/a}" -v pr="$pr" 'BEGIN {
                if (ratio != "n/a") ratio = sprintf("%.2f", ratio)
                printf "%s\t%s\t%s\techo\t%s\t%.0f\t%.0f\t%.0f\t%.4f\t%s\t%s\t%s\t%s\n",
                    wl, l, b, P, rps, p50, p99, cpu, ratio, sys, cg, pr }' >>"$SUMMARY"
        fi
    done <"$W/servers"
done
echo
[ -n "$PAIRS" ] && pnote="  ratio to same-library peer: the same,
against the plain server written directly on that library (bench/peers/)." || pnote=
[ $CONTROL = yes ] && cnote="  Compare a row with the control row to see the noise floor." || cnote=
cat <<EOF
server CPU µs/req: the server's CPU time (user+sys, all threads) over the measured window
divided by the requests answered in it.  ratio: that figure over $REF_LABEL's in the same
repetition (they ran seconds apart), median over repetitions.$pnote  On loopback much of the
kernel work of delivering a segment is charged to the sender, so each side's sys time
includes part of the peer's receive path (alike for every server).  user µs/req comes
from tick-sampled utime and is coarse.  server CPU % near 100: the server was the
bottleneck; lower: the client or other load on the machine was, and req/s then says
little about the server.$cnote
EOF
if [ -s "$W/sys.tsv" ]; then
    echo
    echo "### system calls per request (perf, $SYS_REQ×P requests, all of the server's threads, ≥ 0.005/req shown)"
    echo
    echo "| server | P | syscalls/req | breakdown per request |"
    echo "|---|--:|--:|---|"
    for P in $PIPELINES; do
        while read -r id label path; do
            awk -F'\t' -v P="$P" -v id="$id" -v l="$label" '$1 == P && $2 == id { printf "| %s | %s | %s | %s |\n", l, P, $3, $4 }' "$W/sys.tsv"
        done <"$W/servers"
    done
fi
if [ $DO_CG = yes ]; then
    echo
    echo "instr/req: user-space instructions per request under callgrind ($CG_REQ requests after a"
    echo "warm-up; the server runs ~50x slower there, so it batches differently than at full speed)."
fi
[ -s "$W/client.err" ] && { say "client messages:"; sort "$W/client.err" | uniq -c | head -n 20 >&2; }
[ $STATUS -eq 0 ] || say "FAILED: a server did not start, died, or the client reported errors (see above)"
exit $STATUS
