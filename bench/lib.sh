# bench/lib.sh — the helpers of bench/run, sourced by it: tables, machine,
# servers, clients, measurements.  POSIX sh.
#
# The caller sets SRC (the directory of the tables and conf/), BUILDDIR, W
# (a work directory whose file "pids" lists what to kill on exit), ME, and
# the option values (CONNS, SIZE, DURATION, WARMUP, REQS, SYS_REQ, CG_REQ,
# LOOPS, SCPU, CCPU, DO_SYS, DO_CG).

say() { printf '%s\n' "$ME: $*" >&2; }
die() { say "$*"; exit 1; }
need() { command -v "$1" >/dev/null 2>&1; }
kv() { printf '%s\n' "$2" | tr ' ' '\n' | sed -n "s/^$1=//p" | head -n 1; }
now_s() { date +%s.%N; }
median() {
    sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "n/a"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# rows TABLE [KEY]: the lines of $SRC/TABLE.list (with KEY: the one whose
# first field is KEY) without comments, fields trimmed and joined by "|"
rows() {
    sed -e '/^[[:space:]]*#/d' -e 's/[[:space:]]*|[[:space:]]*/|/g' -e 's/^[[:space:]]*//' -e 's/[[:space:]]*$//' \
        "$SRC/$1.list" | awk -F'|' -v k="${2:-}" 'NF > 1 && (k == "" || $1 == k)'
}
field() { printf '%s\n' "$2" | cut -d'|' -f"$1"; }

# machine: what this machine can do -> NCPU, PIN_S / PIN_C (servers / clients
# pinned), HAVE_SS, PERF_EVENTS (DO_SYS=no without perf), DO_CG
machine() {
    NCPU=$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo 1)
    PIN_S="taskset -c $SCPU" PIN_C="taskset -c $CCPU"
    if ! need taskset; then
        say "taskset not found (util-linux): nothing is pinned"; PIN_S='' PIN_C=''
    elif [ "$NCPU" -lt 2 ]; then
        say "only $NCPU CPU: server and client share CPU $SCPU"; PIN_C=$PIN_S
    fi
    HAVE_SS=no; need ss && HAVE_SS=yes
    if [ "$DO_SYS" = yes ] && need perf && perf stat -x, -e raw_syscalls:sys_enter -- true >/dev/null 2>&1; then
        # The total, plus the calls an event loop makes, for the breakdown
        # (all ~350 syscalls:sys_enter_* tracepoints take perf ~15 s to tear down).
        PERF_EVENTS=raw_syscalls:sys_enter
        tp=$(perf list tracepoint 2>/dev/null | sed -n 's/^ *syscalls:sys_enter_\([a-z0-9_]*\).*/\1/p')
        for sc in epoll_wait epoll_pwait epoll_pwait2 epoll_ctl read readv recvfrom recvmsg write writev \
                  sendto sendmsg accept accept4 close shutdown setsockopt getsockopt ioctl fcntl futex \
                  io_uring_enter poll ppoll select pselect6 kevent openat timerfd_settime clock_gettime; do
            printf '%s\n' "$tp" | grep -qx "$sc" && PERF_EVENTS="$PERF_EVENTS,syscalls:sys_enter_$sc"
        done
    elif [ "$DO_SYS" = yes ]; then
        say "perf cannot count raw_syscalls:sys_enter here (not installed, no tracefs, or perf_event_paranoid): syscalls/req is n/a"
        DO_SYS=no
    fi
    if [ "$DO_CG" = yes ] && { ! need valgrind || ! need callgrind_control; }; then
        say "valgrind/callgrind_control not found: no instruction counts"; DO_CG=no
    fi
}

# program NAME: a peer's program, as bench/peers.list names it (nothing if
# there is none)
program() {
    case $1 in
    */*) [ -f "$BUILDDIR/$1" ] && [ -x "$BUILDDIR/$1" ] && echo "$BUILDDIR/$1" ;;
    *) command -v "$1" 2>/dev/null || { [ -x "/usr/sbin/$1" ] && echo "/usr/sbin/$1"; } ;;
    esac
    return 0
}

# ---------------------------------------------------------------- servers
# Ports below the ephemeral range, where an outgoing connection may hold a
# port that no listener shows; start_server retries when one is taken.
port_busy() { [ $HAVE_SS = yes ] && [ -n "$(ss -ltnH "sport = :$1" 2>/dev/null)" ]; }
new_port() {
    while port_busy "$NEXT_PORT"; do NEXT_PORT=$((NEXT_PORT + 1)); done
    PORT=$NEXT_PORT; NEXT_PORT=$((NEXT_PORT + 1))
}
listener() { ss -ltnpH "sport = :$1" 2>/dev/null | sed -n 's/.*pid=\([0-9][0-9]*\).*/\1/p' | head -n 1; }

# fill: stdin with the placeholders of bench/peers.list filled in for the
# server being started
fill() {
    sed -e "s|{port}|$S_PORT|g" -e "s|{port2}|$S_PORT2|g" -e "s|{behind}|${BEHIND_PORT:-}|g" \
        -e "s|{dir}|$S_DIR|g" -e "s|{cert}|$CERT|g" -e "s|{key}|$KEY|g" \
        -e "s|{loops}|${LOOPS:+--loops $LOOPS}|g" -e "s|{conf:\([^}]*\)}|$S_DIR/\1|g"
}

# start_server ID PIN PROGRAM ARGS [PREFIX]: start PROGRAM with ARGS (shell
# words with placeholders) under PIN and PREFIX (valgrind), and wait until
# it listens on each port it was given -> SPID and $W/ID.{pid,port,port2,log}.
# SPID is the listening process: a libtool wrapper, taskset or valgrind
# execs, so normally the one started.  A port someone took meanwhile ("in
# use"): up to 3 tries.
start_server() {
    ss_id=$1 ss_pin=$2 ss_prog=$3 ss_args=$4 ss_pre=${5:-}
    S_DIR=$W/$ss_id.d
    mkdir -p "$S_DIR"
    ss_tmo=100; [ -n "$ss_pre" ] && ss_tmo=600   # tenths of a second; valgrind is slow
    for _ in 1 2 3; do
        new_port; S_PORT=$PORT; new_port; S_PORT2=$PORT
        ss_ports=$S_PORT; case $ss_args in *'{port2}'*) ss_ports="$S_PORT $S_PORT2" ;; esac
        for f in $(printf '%s\n' "$ss_args" | sed -n 's/.*{conf:\([^}]*\)}.*/\1/p'); do
            fill <"$SRC/conf/$f" >"$S_DIR/$f"
        done
        eval "set -- $(printf '%s\n' "$ss_args" | fill)"
        # shellcheck disable=SC2086
        $ss_pin $ss_pre "$ss_prog" "$@" >"$W/$ss_id.log" 2>&1 </dev/null &
        SPID=$!
        echo "$SPID" >>"$W/pids"
        ss_n=0
        while kill -0 "$SPID" 2>/dev/null && [ $ss_n -le $ss_tmo ]; do
            ss_l=''
            if [ $HAVE_SS = no ]; then [ $ss_n -ge 10 ] && ss_l=$SPID   # no ss: give it a second
            else for p in $ss_ports; do ss_l=$(listener "$p"); [ -n "$ss_l" ] || break; done; fi
            if [ -n "$ss_l" ]; then
                [ "$ss_l" = "$SPID" ] || { SPID=$ss_l; echo "$SPID" >>"$W/pids"; }
                echo "$SPID" >"$W/$ss_id.pid"; echo "$S_PORT" >"$W/$ss_id.port"; echo "$S_PORT2" >"$W/$ss_id.port2"
                return 0
            fi
            sleep 0.1; ss_n=$((ss_n + 1))
        done
        kill -KILL "$SPID" 2>/dev/null
        grep -qi 'in use' "$W/$ss_id.log" || break
    done
    say "$ss_prog did not start, or did not listen on $ss_ports within $((ss_tmo / 10)) s:"
    sed 's/^/    /' "$W/$ss_id.log" >&2
    return 1
}

stop_pid() {
    kill -TERM "$1" 2>/dev/null || return 0
    sp_n=0
    while kill -0 "$1" 2>/dev/null && [ $sp_n -lt 30 ]; do sleep 0.1; sp_n=$((sp_n + 1)); done
    kill -KILL "$1" 2>/dev/null
    return 0
}

# backend_of ID TEMPLATE: the "backend" column of a started server: the
# template of bench/peers.list, or what an evio program says it runs on
backend_of() {
    case $2 in
    -) b=$(sed -n 's/.*backend: *\([A-Za-z0-9_-]*\).*/\1/p' "$W/$1.log" | head -n 1)
        # no native kqueue on Linux: compat/ emulates it over epoll
        [ "$b" = kqueue ] && [ "$(uname -s)" = Linux ] && b="kqueue (emulated)"
        echo "${b:-?}" ;;
    *'{version}'*)
        v=$("$3" -v 2>&1 | grep -o '[0-9][0-9]*\.[0-9][0-9.]*' | head -n 1)
        printf '%s\n' "$2" | sed "s|{version}|${v:-?}|" ;;
    *) echo "$2" ;;
    esac
}

# CPU seconds of PID: "total user" (total: the ns-precise schedstat summed
# over its threads, else utime+stime; user: utime, tick-sampled)
cpu_of() {
    awk -v hz="$(getconf CLK_TCK 2>/dev/null || echo 100)" '
        FILENAME ~ /\/stat$/ { sub(/.*\) /, ""); split($0, f, " "); u = f[12] / hz; st = f[13] / hz; next }
        FILENAME ~ /schedstat$/ { ns += $1; nsched++ }
        END { printf "%.9f %.6f\n", (nsched ? ns / 1e9 : u + st), u }' \
        "/proc/$1/stat" /proc/"$1"/task/*/schedstat 2>/dev/null
}

# ---------------------------------------------------------------- clients
# bg_run COMMAND...: run it in the background and wait -> rc, so that a
# signal reaches our trap at once (a foreground child would delay it)
bg_run() {
    "$@" </dev/null &
    echo "$!" >"$W/client.pid"
    wait "$!"; rc=$?
    rm -f "$W/client.pid"
}

# run_client ID TEST P [N]: one run of the workload's client (client_NAME
# below) against server ID: N requests, "warm" for a warm-up, or (no N) a
# timed point.  -> CL_REQ CL_RPS CL_P50 CL_P99 (µs; empty: not known),
# CL_CPU CL_USR CL_PCT when the client sampled the server's CPU itself, and
# CL_MSG (empty: no error)
run_client() {
    CL_PORT=$(cat "$W/$1.port") CL_PORT2=$(cat "$W/$1.port2") CL_SPID=$(cat "$W/$1.pid")
    CL_REQ='' CL_RPS='' CL_P50='' CL_P99='' CL_CPU='' CL_USR='' CL_PCT='' CL_MSG=''
    "client_$CLIENT" "$2" "$3" "${4:-}" >"$W/cl.out" 2>"$W/cl.err"
    cat "$W/cl.err" >>"$W/client.err"
}

# bench/echo-client: a timed run samples the server's CPU over exactly its
# measured window, after its own warm-up
client_echo() {
    case $3 in
    '') c_how="--duration $DURATION --warmup $WARMUP --server-pid $CL_SPID" ;;
    warm) c_how="--requests $CG_REQ" ;;
    *) c_how="--requests $3" ;;
    esac
    # shellcheck disable=SC2086
    bg_run timeout -k 2 600 $PIN_C "$BUILDDIR/bench/echo-client" --host 127.0.0.1 --port "$CL_PORT" \
        --conns "$CONNS" --pipeline "$2" --size "$SIZE" $c_how
    l=$(cat "$W/cl.out")
    CL_REQ=$(kv requests "$l") CL_RPS=$(kv rps "$l") CL_P50=$(kv p50_us "$l") CL_P99=$(kv p99_us "$l")
    CL_CPU=$(kv server_cpu_us_per_req "$l") CL_USR=$(kv server_user_us_per_req "$l") CL_PCT=$(kv server_cpu_pct "$l")
    [ "$CL_CPU" = nan ] && CL_CPU=''
    e=$(kv errors "$l")
    [ $rc -eq 0 ] && [ "${e:-1}" = 0 ] && [ "${CL_REQ:-0}" != 0 ] || CL_MSG="exit $rc, errors=${e:-?}: $l"
}

# redis-benchmark, one test per run: $REQS×P requests at a timed point; the
# warm-up also makes the keys that GET reads
client_redis() {
    c_t=$1 c_P=$2 c_n=$3
    case $3 in '') c_n=$((REQS * $2)) ;; warm) c_t=set,get c_P=16 c_n=20000 ;; esac
    bg_run timeout -k 2 600 $PIN_C redis-benchmark -h 127.0.0.1 -p "$CL_PORT" -c "$CONNS" \
        -n "$c_n" -P "$c_P" -t "$c_t" --csv
    # "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"
    eval "$(sed -n '2p' "$W/cl.out" | tr -d '"' | awk -F, '$2 != "" { print "CL_RPS=" $2, "CL_P50=" $5 * 1000, "CL_P99=" $7 * 1000 }')"
    CL_REQ=$c_n
    if [ $rc -ne 0 ] || [ -z "$CL_RPS" ] || grep -qi error "$W/cl.out" "$W/cl.err"; then
        CL_MSG="exit $rc, $(cat "$W/cl.err" "$W/cl.out" | tr '\r\n' '  ' | cut -c1-200)"
    fi
}

# wrk, one thread, for --duration seconds whatever N (1 s to warm up);
# test tls: the server's second port over TLS; P > 1: conf/pipeline.lua
# writes P requests at a time
client_wrk() {
    c_url=http://127.0.0.1:$CL_PORT/; [ "$1" = tls ] && c_url=https://127.0.0.1:$CL_PORT2/
    c_d=$DURATION; [ "$3" = warm ] && c_d=1
    c_lua=''; [ "$2" -gt 1 ] && c_lua="-s $SRC/conf/pipeline.lua"
    # shellcheck disable=SC2086
    bg_run timeout -k 2 600 $PIN_C wrk -t1 -c "$CONNS" -d "${c_d}s" --latency $c_lua "$c_url" -- "$2"
    tous() { awk '{ v = $1; u = v; sub(/[0-9.]+/, "", u); sub(/[a-z]+$/, "", v)
                    print v * (u == "s" ? 1e6 : u == "ms" ? 1e3 : 1) }'; }
    CL_REQ=$(sed -n 's/^ *\([0-9][0-9]*\) requests in .*/\1/p' "$W/cl.out")
    CL_RPS=$(sed -n 's/^Requests\/sec: *\([0-9.]*\).*/\1/p' "$W/cl.out")
    # pipelined by a Lua script, wrk 4.1 times batches, not requests, and
    # often prints 0.00us for the upper percentiles: no figure rather than a
    # wrong one
    if [ "$2" -eq 1 ]; then
        CL_P50=$(sed -n 's/^ *50% *\([0-9.]*[a-z]*\).*/\1/p' "$W/cl.out" | tous)
        CL_P99=$(sed -n 's/^ *99% *\([0-9.]*[a-z]*\).*/\1/p' "$W/cl.out" | tous)
    fi
    c_err=$(sed -n 's/.*Socket errors: connect \([0-9]*\), read \([0-9]*\), write \([0-9]*\), timeout \([0-9]*\).*/\1 \2 \3 \4/p' "$W/cl.out" |
            awk '{ print $1 + $2 + $3 + $4 }')
    c_non2xx=$(sed -n 's/.*Non-2xx or 3xx responses: *\([0-9]*\).*/\1/p' "$W/cl.out")
    if [ $rc -ne 0 ] || [ -z "$CL_RPS" ] || [ "${CL_REQ:-0}" = 0 ] || [ "${c_err:-0}" -gt 0 ] || [ "${c_non2xx:-0}" -gt 0 ]; then
        CL_MSG="exit $rc, socket errors ${c_err:-0}, non-2xx ${c_non2xx:-0} $(tr '\n' ' ' <"$W/cl.err" | cut -c1-200)"
    fi
}

# ---------------------------------------------------------------- measurements
# measure ID TEST P REP: one timed point -> a row of $W/runs.tsv:
#   P id rep test rps p50 p99 cpu_us/req user_us/req cpu% requests cpu_s
# CPU from just before to just after the client run (so it includes the
# client's connection set-up), unless the client sampled it itself.
measure() {
    m_pid=$(cat "$W/$1.pid")
    m_c0=$(cpu_of "$m_pid"); m_t0=$(now_s)
    run_client "$1" "$2" "$3"
    m_t1=$(now_s); m_c1=$(cpu_of "$m_pid")
    [ -z "$CL_MSG" ] || return 1
    echo "$m_c0 $m_c1" | awk -v P="$3" -v id="$1" -v rep="$4" -v t="$2" -v rps="$CL_RPS" -v p50="$CL_P50" \
        -v p99="$CL_P99" -v n="$CL_REQ" -v cpu="$CL_CPU" -v usr="$CL_USR" -v pct="$CL_PCT" -v t0="$m_t0" -v t1="$m_t1" '{
        if (cpu == "") { cpu = ($3 - $1) * 1e6 / n; usr = ($4 - $2) * 1e6 / n; pct = 100 * ($3 - $1) / (t1 - t0) }
        printf "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%.4f\t%.4f\t%.1f\t%s\t%.6f\n", P, id, rep, t, rps, p50, p99,
            cpu, usr, pct, n, cpu * n / 1e6 }' >>"$W/runs.tsv"
}

# count_syscalls ID TEST P: perf stat over one client run of $SYS_REQ×P
# requests -> a row of $W/sys.tsv: P id test syscalls/req breakdown
count_syscalls() {
    perf stat -x, -o "$W/perf.out" -e "$PERF_EVENTS" -p "$(cat "$W/$1.pid")" >/dev/null 2>&1 &
    cs_perf=$!
    echo "$cs_perf" >>"$W/pids"
    sleep 1   # let perf attach its counters (there is no ready signal)
    run_client "$1" "$2" "$3" $((SYS_REQ * $3))
    sleep 0.2   # let the server see the closes
    kill -INT "$cs_perf" 2>/dev/null; wait "$cs_perf" 2>/dev/null
    [ -z "$CL_MSG" ] || { say "syscall count P=$3 $2 $(label_of "$1"): client failed: $CL_MSG"; STATUS=1; return 0; }
    awk -F, -v n="$CL_REQ" -v P="$3" -v id="$1" -v t="$2" '
        $3 == "raw_syscalls:sys_enter" && $1 ~ /^[0-9]+$/ { total = $1 }
        $3 ~ /^syscalls:sys_enter_/ && $1 ~ /^[0-9]+$/ && $1 > 0 { c[substr($3, 20)] = $1; listed += $1 }
        END {
            if (total == "") exit
            if (total - listed > 0) c["other"] = total - listed
            s = ""
            while (1) {   # per request, most frequent first, at least 0.005/req
                best = ""; for (k in c) if (best == "" || c[k] > c[best]) best = k
                if (best == "" || c[best] / n < 0.005) break
                s = s (s == "" ? "" : ", ") sprintf("%s %.3f", best, c[best] / n); delete c[best]
            }
            printf "%s\t%s\t%s\t%.3f\t%s\n", P, id, t, total / n, s
        }' "$W/perf.out" >>"$W/sys.tsv"
    say "syscalls P=$3 $2 $(label_of "$1"): $(tail -n 1 "$W/sys.tsv" | cut -f4)/req"
}

# count_instructions ID: server ID's program again, under callgrind: user-
# space instructions per request at each point -> rows of $W/cg.tsv:
# P id test instr/req
count_instructions() {
    ci_prog=$(prog_of "$1")
    ci_pre="valgrind --tool=callgrind --callgrind-out-file=$W/cg.$1.%p"
    # a libtool wrapper script: run valgrind on the real program
    if head -c 2 "$ci_prog" | grep -q '#!' && [ -x "$BUILDDIR/libtool" ]; then
        ci_pre="$BUILDDIR/libtool --mode=execute $ci_pre"
    fi
    start_server "cg$1" "$PIN_S" "$ci_prog" "$(args_of "$1")" "$ci_pre" || { STATUS=1; return 0; }
    ci_pid=$SPID
    run_client "cg$1" warm 1 warm
    for P in $PIPELINES; do
        for t in $TESTS; do
            rm -f "$W/cg.$1.$ci_pid".*
            callgrind_control -z "$ci_pid" >/dev/null 2>&1
            run_client "cg$1" "$t" "$P" "$CG_REQ"
            callgrind_control -d "$ci_pid" >/dev/null 2>&1
            ir=$(cat "$W/cg.$1.$ci_pid".* 2>/dev/null | sed -n 's/^summary: *//p' | awk '{ s += $1 } END { print s + 0 }')
            if [ -z "$CL_MSG" ] && [ "${ir:-0}" -gt 0 ]; then
                awk -v P="$P" -v id="$1" -v t="$t" -v ir="$ir" -v n="$CL_REQ" 'BEGIN { printf "%s\t%s\t%s\t%.0f\n", P, id, t, ir / n }' >>"$W/cg.tsv"
                say "callgrind P=$P $t $(label_of "$1"): $(tail -n 1 "$W/cg.tsv" | cut -f4) instructions/req (user space)"
            else
                say "callgrind P=$P $t $(label_of "$1"): no count $CL_MSG"
            fi
        done
    done
    stop_pid "$ci_pid"
}
