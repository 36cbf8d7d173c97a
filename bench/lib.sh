# lib.sh — helpers shared by the bench scripts (echo-bench.sh,
# idle-memory.sh), sourced from the directory the script runs from.  POSIX sh.
#
# The sourcing script provides: say(); W (its work directory, with a file
# "pids" listing what to kill on exit); HAVE_SS (yes when ss(8) is there);
# NEXT_PORT (the next TCP port to try); LOOPS and SERVER_ARGS (extra
# arguments for the servers, may be empty).

port_busy() {
    [ $HAVE_SS = yes ] && [ -n "$(ss -ltnH "sport = :$1" 2>/dev/null)" ]
}
new_port() {
    while port_busy $NEXT_PORT; do NEXT_PORT=$((NEXT_PORT + 1)); done
    PORT=$NEXT_PORT; NEXT_PORT=$((NEXT_PORT + 1))
}

# start_server ID PATH TIMEOUT [prefix...] -> sets SPID; 0 when listening.
# A port someone else took meanwhile ("Address already in use"): 3 tries.
start_server() {
    ss_id=$1 ss_path=$2 ss_tmo=$3; shift 3
    ss_try=1
  while :; do
    new_port
    echo "$PORT" >"$W/$ss_id.port"
    ss_loops=
    case $ss_path in *echo-server*) [ -n "$LOOPS" ] && ss_loops="--loops $LOOPS" ;; esac
    # shellcheck disable=SC2086
    "$@" "$ss_path" --port "$PORT" $SERVER_ARGS $ss_loops >"$W/$ss_id.log" 2>&1 &
    SPID=$!
    echo "$SPID" >>"$W/pids"
    ss_n=0
    while :; do
        if ! kill -0 "$SPID" 2>/dev/null; then
            if [ $ss_try -lt 3 ] && grep -qi 'in use' "$W/$ss_id.log"; then ss_try=$((ss_try + 1)); continue 2; fi
            say "$ss_path exited at start:"; sed 's/^/    /' "$W/$ss_id.log" >&2; return 1
        fi
        if [ $HAVE_SS = yes ]; then
            ss_l=$(ss -ltnpH "sport = :$PORT" 2>/dev/null)
            if [ -n "$ss_l" ]; then
                ss_p=$(printf '%s\n' "$ss_l" | sed -n 's/.*pid=\([0-9][0-9]*\).*/\1/p' | head -n 1)
                # a libtool wrapper or taskset execs, so normally ss_p = SPID
                if [ -n "$ss_p" ] && [ "$ss_p" != "$SPID" ]; then SPID=$ss_p; echo "$SPID" >>"$W/pids"; fi
                break
            fi
        elif [ $ss_n -ge 10 ]; then break; fi
        ss_n=$((ss_n + 1))
        if [ $ss_n -gt $((ss_tmo * 10)) ]; then
            say "$ss_path did not listen on port $PORT within ${ss_tmo}s:"; sed 's/^/    /' "$W/$ss_id.log" >&2
            kill -KILL "$SPID" 2>/dev/null; return 1
        fi
        sleep 0.1
    done
    echo "$SPID" >"$W/$ss_id.pid"
    return 0
  done
}

stop_pid() {
    kill -TERM "$1" 2>/dev/null || return 0
    sp_n=0
    while kill -0 "$1" 2>/dev/null && [ $sp_n -lt 30 ]; do sleep 0.1; sp_n=$((sp_n + 1)); done
    kill -KILL "$1" 2>/dev/null
    return 0
}

kv() { printf '%s\n' "$2" | tr ' ' '\n' | sed -n "s/^$1=//p" | head -n 1; }
