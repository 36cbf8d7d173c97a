#!/bin/sh
# run-all.sh — every benchmark in one run: what `make bench` runs.  POSIX sh.
#
#   echo   bench/echo-bench.sh: evio's echo server on every backend, beside
#          plain echo servers written directly on epoll (the reference),
#          libuv, libev and libevent (bench/peers/);
#   resp   bench/load-bench.sh --workload resp: redis-benchmark against the
#          Redis clone (examples/redis-server) on every backend and against
#          the real redis-server (the reference);
#   http   bench/load-bench.sh --workload http: wrk against
#          examples/http-server on every backend (reference: epoll);
#   proxy  bench/echo-bench.sh through examples/proxy on every backend
#          (reference: epoll) to a plain epoll echo server;
#   idle   bench/idle-memory.sh: server RSS per idle connection (10,000 of
#          them) for the same echo servers, to DOCS/idle-memory.{md,png}.
# A workload whose programs are not built is skipped with a "(not built)"
# line.  Each prints a Markdown table; together, with the machine they ran
# on and the targets of issue 7, they go to DOCS/bench.md, and gnuplot draws
# DOCS/bench-{echo,resp,http,proxy}.png.
#
# From the build directory (make bench passes these):
#   sh /path/to/src/bench/run-all.sh [--builddir .] [--backends "epoll ..."] [options]
#
# Exit status: 0 if every workload that ran had every server start and every
# client run error-free; 1 otherwise (the tables are written either way).

set -u

usage() {
    cat <<'EOF'
usage: run-all.sh [options]
  --builddir DIR       build directory (default .)
  --backends "A B"     evio backends to compare (default: every one built)
  --docs DIR           where bench.md and the charts go (default: the source
                       tree's docs/); --no-docs: print only
  --only "echo resp http proxy idle"   a subset of the workloads
  --runs R             repetitions per point, every workload (default 5)
  --duration S         seconds per echo/http/proxy run (default 2)
  --requests N         redis-benchmark requests per run at P=1 (default
                       100000; N*P at P>1)
  --pipelines "1 16"   pipeline depths, every workload
  --callgrind          also user-space instructions per request (slow)
  --no-syscalls        skip the perf syscall counts
  --max-minutes M      bound on each workload's wall time (default 60)
  --server-cpu N --client-cpu N   CPUs to pin to (default 0 and 1)
  --keep DIR           keep the raw results (summary.tsv, each table) in DIR
  --replot FILE        only redraw the charts from a kept summary.tsv
EOF
    exit "${1:-2}"
}

# A shell reads a script as it runs it, so an edit to these scripts during a
# long run would break it: run copies of them.
if [ -z "${EVIO_BENCH_COPY:-}" ]; then
    EVIO_BENCH_SRCDIR=$(cd "$(dirname "$0")/.." && pwd)
    EVIO_BENCH_COPY=$(mktemp -d "${TMPDIR:-/tmp}/run-all-scripts.XXXXXX") || exit 1
    cp "$EVIO_BENCH_SRCDIR/bench/run-all.sh" "$EVIO_BENCH_SRCDIR/bench/echo-bench.sh" \
       "$EVIO_BENCH_SRCDIR/bench/load-bench.sh" "$EVIO_BENCH_SRCDIR/bench/lib.sh" \
       "$EVIO_BENCH_SRCDIR/bench/idle-memory.sh" "$EVIO_BENCH_COPY/" || exit 1
    export EVIO_BENCH_COPY EVIO_BENCH_SRCDIR
    exec sh "$EVIO_BENCH_COPY/run-all.sh" "$@"
fi
SRCDIR=$EVIO_BENCH_SRCDIR
BIN=$EVIO_BENCH_COPY
trap 'rm -rf "$BIN"' EXIT
ARGS=   # the options that change what is measured, for the record
BUILDDIR=.
BACKENDS=
DOCS=$SRCDIR/docs
DO_DOCS=yes
ONLY="echo resp http proxy idle"
RUNS=5
DURATION=2
REQS=100000
PIPELINES="1 16"
CG=
SYS=
MAXMIN=60
SCPU=0
CCPU=1
KEEP=
REPLOT=
while [ $# -gt 0 ]; do
    case $1 in
    --no-*|--callgrind|-h|--help) ;;
    *) [ $# -ge 2 ] || { echo "run-all: $1 needs a value" >&2; usage; } ;;
    esac
    case $1 in
    --builddir|--backends|--docs|--no-docs|--keep|--replot|-h|--help) ;;
    --no-*|--callgrind) ARGS="$ARGS $1" ;;
    *) ARGS="$ARGS $1 '$2'" ;;
    esac
    case $1 in
    --builddir) BUILDDIR=$2; shift ;;
    --backends) BACKENDS=$2; shift ;;
    --docs) DOCS=$2; shift ;;
    --no-docs) DO_DOCS=no ;;
    --only) ONLY=$2; shift ;;
    --runs) RUNS=$2; shift ;;
    --duration) DURATION=$2; shift ;;
    --requests) REQS=$2; shift ;;
    --pipelines) PIPELINES=$2; shift ;;
    --callgrind) CG=--callgrind ;;
    --no-syscalls) SYS=--no-syscalls ;;
    --max-minutes) MAXMIN=$2; shift ;;
    --server-cpu) SCPU=$2; shift ;;
    --client-cpu) CCPU=$2; shift ;;
    --keep) KEEP=$2; shift ;;
    --replot) REPLOT=$2; shift ;;
    -h|--help) usage 0 ;;
    *) echo "run-all: unknown option '$1'" >&2; usage ;;
    esac
    [ $# -gt 0 ] && shift
done

say() { printf '%s\n' "run-all: $*" >&2; }
die() { say "$*"; exit 1; }
BUILDDIR=$(cd "$BUILDDIR" 2>/dev/null && pwd) || die "no build directory"
[ -n "$BACKENDS" ] || for b in epoll kqueue poll libev libuv; do
    [ -x "$BUILDDIR/bench/echo-server-$b" ] && BACKENDS="$BACKENDS $b"
done
have() { [ -f "$BUILDDIR/$1" ] && [ -x "$BUILDDIR/$1" ]; }
wants() { case " $ONLY " in *" $1 "*) return 0 ;; esac; return 1; }

W=$(mktemp -d "${TMPDIR:-/tmp}/run-all.XXXXXX") || die "mktemp failed"
: >"$W/pids"
cleanup() {
    while read -r p; do kill -TERM "$p" 2>/dev/null; done <"$W/pids"
    # let the bench scripts stop their servers
    n=0
    while [ $n -lt 100 ]; do
        alive=no
        while read -r p; do kill -0 "$p" 2>/dev/null && alive=yes; done <"$W/pids"
        [ $alive = no ] && break
        sleep 0.1; n=$((n + 1))
    done
    while read -r p; do kill -KILL "$p" 2>/dev/null; done <"$W/pids"
    if [ -n "$KEEP" ]; then mkdir -p "$KEEP" && cp "$W"/*.md "$W"/summary.tsv "$KEEP"/ 2>/dev/null; fi
    rm -rf "$W" "$BIN"
}
trap cleanup EXIT
trap 'say interrupted; exit 130' INT TERM HUP

STATUS=0
SUM=$W/summary.tsv
: >"$SUM"
COMMON="--runs $RUNS --pipelines '$PIPELINES' --server-cpu $SCPU --client-cpu $CCPU $SYS $CG"
MAXS=$((MAXMIN * 60))

# bounded NAME COMMAND...: run the (eval'd) command under timeout, its
# Markdown to $W/NAME.md, its progress to stderr; count its status.  In the
# background, so that an interrupt reaches our trap at once (the trap stops
# timeout, which passes the signal on; the bench scripts then stop their
# servers).
bounded() {
    b_name=$1; shift
    say "---- $b_name"
    # shellcheck disable=SC2294
    eval "exec timeout -k 30 $MAXS $*" >"$W/$b_name.md" </dev/null &
    b_pid=$!
    echo "$b_pid" >>"$W/pids"
    wait "$b_pid"
    b_rc=$?
    [ $b_rc -eq 124 ] && say "$b_name: took more than $MAXMIN minutes: stopped"
    [ $b_rc -eq 0 ] || { say "$b_name: FAILED (exit $b_rc)"; STATUS=1; }
    return 0
}
notbuilt() { printf '\n## %s\n\n(not built: %s)\n' "$1" "$2" >"$W/$3.md"; say "$3: (not built: $2)"; }

LOAD0=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null)
DATE=$(date -u '+%Y-%m-%d %H:%M UTC')
CPUMODEL=$(sed -n 's/^model name[[:space:]]*: *//p' /proc/cpuinfo 2>/dev/null | head -n 1)
[ -n "$CPUMODEL" ] || CPUMODEL=$(uname -m)
say "$(nproc 2>/dev/null || getconf _NPROCESSORS_ONLN) CPUs ($CPUMODEL), $(uname -sr); load average $LOAD0"
say "backends: $BACKENDS; workloads: $ONLY; $RUNS runs per point"

if [ -n "$REPLOT" ]; then
    cp "$REPLOT" "$SUM" || die "no summary $REPLOT"
    ONLY=
fi

# ---------------------------------------------------------------- echo
if wants echo; then
    servers= peers= missing=
    have examples/echo-server/echo-server && servers=examples/echo-server/echo-server
    for b in $BACKENDS; do
        if have "bench/echo-server-$b"; then servers="$servers bench/echo-server-$b"
        else missing="$missing bench/echo-server-$b"; fi
    done
    for p in ev-echo uv-echo event-echo; do
        if have "bench/peers/$p"; then peers="$peers bench/peers/$p"; else missing="$missing bench/peers/$p"; fi
    done
    if have bench/peers/epoll-echo && have bench/echo-client; then
        bounded echo sh "$BIN/echo-bench.sh" --builddir "'$BUILDDIR'" --servers "'$servers $peers'" \
            --duration "$DURATION" --pair "'echo-server-libev=ev-echo echo-server-libuv=uv-echo'" \
            --summary "'$SUM'" --name echo $COMMON
        for m in $missing; do printf '\n%s: (not built)\n' "$m" >>"$W/echo.md"; done
    else
        notbuilt "echo benchmark" "bench/peers/epoll-echo or bench/echo-client" echo
        STATUS=1
    fi
fi

# ---------------------------------------------------------------- resp
if wants resp; then
    servers=
    have examples/redis-server/redis-server && servers=examples/redis-server/redis-server
    for b in $BACKENDS; do have "tests/redis-server-$b" && servers="$servers tests/redis-server-$b"; done
    if [ -z "$servers" ]; then
        notbuilt "RESP benchmark" "examples/redis-server" resp
    else
        bounded resp sh "$BIN/load-bench.sh" --workload resp --builddir "'$BUILDDIR'" \
            --servers "'$servers'" --requests "$REQS" --summary "'$SUM'" $COMMON
    fi
fi

# ---------------------------------------------------------------- http
if wants http; then
    servers=
    for b in $BACKENDS; do have "tests/http-server-$b" && servers="$servers tests/http-server-$b"; done
    if [ -z "$servers" ]; then
        notbuilt "HTTP benchmark" "examples/http-server (tests/http-server-BACKEND)" http
    else
        bounded http sh "$BIN/load-bench.sh" --workload http --builddir "'$BUILDDIR'" \
            --servers "'$servers'" --duration "$DURATION" --summary "'$SUM'" $COMMON
    fi
fi

# ---------------------------------------------------------------- proxy
if wants proxy; then
    ref= servers=
    for b in $BACKENDS; do
        have "tests/proxy-$b" || continue
        if [ -z "$ref" ]; then ref=tests/proxy-$b; else servers="$servers tests/proxy-$b"; fi
    done
    if [ -z "$ref" ]; then
        notbuilt "proxy benchmark" "examples/proxy (tests/proxy-BACKEND)" proxy
    elif ! have bench/peers/epoll-echo || ! have bench/echo-client; then
        notbuilt "proxy benchmark" "bench/peers/epoll-echo or bench/echo-client" proxy; STATUS=1
    else
        # the echo server behind the proxies, on the client's CPU: the proxy
        # under test has CPU $SCPU to itself
        # (below the ephemeral range, where an outgoing connection may hold
        # a port that no listener shows; a few tries in any case)
        pin=; command -v taskset >/dev/null 2>&1 && pin="taskset -c $CCPU"
        eport=$(awk -v s="$$" 'BEGIN { srand(s + 7); print 20000 + int(rand() * 12000) }')
        try=0
        while [ $try -lt 5 ]; do
            while [ -n "$(ss -ltnH "sport = :$eport" 2>/dev/null)" ]; do eport=$((eport + 1)); done
            $pin "$BUILDDIR/bench/peers/epoll-echo" --port "$eport" >"$W/proxy-echo.log" 2>&1 &
            epid=$!
            echo "$epid" >>"$W/pids"
            n=0
            while kill -0 "$epid" 2>/dev/null && [ -z "$(ss -ltnH "sport = :$eport" 2>/dev/null)" ] && [ $n -lt 50 ]; do
                sleep 0.1; n=$((n + 1))
            done
            kill -0 "$epid" 2>/dev/null && break
            try=$((try + 1)) eport=$((eport + 17))
        done
        if ! kill -0 "$epid" 2>/dev/null; then
            say "proxy: the echo server behind it did not start: $(cat "$W/proxy-echo.log")"; STATUS=1
            notbuilt "proxy benchmark" "its echo server did not start" proxy
        else
            bounded proxy sh "$BIN/echo-bench.sh" --builddir "'$BUILDDIR'" --peer "$ref" \
                --ref-label "$(basename "$ref")" --servers "'$servers'" --no-control \
                --server-args "'--bind 127.0.0.1 --backend 127.0.0.1:$eport'" \
                --title "'echo through evio proxy to a plain epoll echo server'" \
                --duration "$DURATION" --summary "'$SUM'" --name proxy $COMMON
            kill "$epid" 2>/dev/null
        fi
    fi
fi
# ---------------------------------------------------------------- idle
if wants idle; then
    servers=
    for b in $BACKENDS; do have "bench/echo-server-$b" && servers="$servers bench/echo-server-$b"; done
    for p in epoll-echo ev-echo uv-echo event-echo; do have "bench/peers/$p" && servers="$servers bench/peers/$p"; done
    if ! have bench/idle-client || [ -z "$servers" ]; then
        notbuilt "idle memory" "bench/idle-client or the echo servers" idle; STATUS=1
    else
        docs=; [ $DO_DOCS = yes ] && docs="--docs '$DOCS'"
        bounded idle sh "$BIN/idle-memory.sh" --builddir "'$BUILDDIR'" --servers "'$servers'" \
            --runs "$(( RUNS < 3 ? RUNS : 3 ))" $docs
    fi
fi
LOAD1=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null)

# ---------------------------------------------------------------- targets
# Summary rows: wl label backend test P rps p50 p99 cpu ratio sys instr [pair]
get() { # wl label test P column
    awk -F'\t' -v w="$1" -v l="$2" -v t="$3" -v P="$4" -v c="$5" '$1 == w && $2 == l && $4 == t && $5 == P { print $c; exit }' "$SUM"
}
verdict() { # value limit -> "met" / "NOT met" / "n/a"
    awk -v v="$1" -v lim="$2" 'BEGIN { if (v == "" || v == "n/a") print "n/a"; else if (v + 0 <= lim + 0) print "met"; else print "**not met**" }'
}
target_row() { # text wl label test P column limit
    v=$(get "$2" "$3" "$4" "$5" "$6")
    printf '| %s | %s | %s | ≤ %s | %s |\n' "$1" "$5" "${v:-n/a}" "$7" "$(verdict "$v" "$7")"
}
{
    echo "## Targets (issue 7): server CPU per request, paired ratios, medians"
    echo
    echo "| target | P | measured | limit | verdict |"
    echo "|---|--:|--:|--:|---|"
    for P in $PIPELINES; do
        lim=0.8; [ "$P" -gt 1 ] && lim=0.7
        target_row "Redis clone (tests/redis-server-epoll) / redis-server, all four tests" resp clone-epoll all "$P" 10 "$lim"
        target_row "Redis clone (examples/redis-server, libevio) / redis-server, all four tests" resp "redis-server(libevio)" all "$P" 10 "$lim"
    done
    for P in $PIPELINES; do target_row "echo, epoll backend / plain epoll" echo echo-server-epoll echo "$P" 10 1.05; done
    for b in libev libuv; do
        for P in $PIPELINES; do target_row "echo, $b shim / plain epoll" echo "echo-server-$b" echo "$P" 10 1.15; done
        for P in $PIPELINES; do target_row "echo, $b shim / plain $b (bench/peers)" echo "echo-server-$b" echo "$P" 13 1.15; done
    done
    for P in $PIPELINES; do target_row "(noise floor) plain epoll / an identical plain epoll" echo "epoll-echo(control)" echo "$P" 10 1.05; done
    echo
    echo "The 0.8×/0.7× limits are for P=1/P=16.  A ratio is a median over repetitions of (server /"
    echo "reference) in the same repetition, run seconds apart; the control row shows what two"
    echo "identical servers measure, i.e. the noise floor of this run."
} >"$W/targets.md"

# ---------------------------------------------------------------- charts
# chart_servers WL TITLE PNG: 2x2 panels, server CPU µs/req and req/s, one
# column per P, a bar per server (grey: reference, orange: plain peers).
chart_servers() {
    c_wl=$1 c_title=$2 c_png=$3
    np=0
    for P in $PIPELINES; do
        awk -F'\t' -v w="$c_wl" -v P="$P" '$1 == w && $5 == P && $9 != "" {
            col = 29362                                 # 0x0072b2: evio
            if ($3 ~ /^\(plain/) col = 15113984        # 0xe69f00: plain peers
            if ($2 ~ /control/) col = 12566463          # 0xbfbfbf: the control
            if (n == 0) col = 8355711                   # 0x7f7f7f: the reference
            printf "%d\t%s\t%s\t%s\t%d\n", n++, $2, $9, $6 / 1000, col }' "$SUM" >"$W/c.$c_wl.$P.dat"
        [ -s "$W/c.$c_wl.$P.dat" ] && np=$((np + 1))
    done
    [ $np -gt 0 ] || return 0
    {
        echo "set terminal pngcairo size 1400,1000 font 'DejaVu Sans,10'"
        echo "set output '$c_png'"
        printf '%s\n' "set multiplot layout 2,$np title \"$c_title\\n$(uname -sr), $(nproc) CPUs ($CPUMODEL), $DATE; medians of $RUNS runs\" font ',13'"
        echo "set style fill solid 0.85 border -1; set boxwidth 0.7; set grid ytics; set xtics rotate by 30 right nomirror"
        echo "set termoption noenhanced; set datafile separator '\t'; set key off"
        echo "set yrange [0:*]; set offsets 0.6,0.6,graph 0.08,0; set bmargin 9"
        for metric in cpu rps; do
            for P in $PIPELINES; do
                f=$W/c.$c_wl.$P.dat
                [ -s "$f" ] || continue
                ref=$(awk -F'\t' -v c=$metric 'NR == 1 { print (c == "cpu" ? $3 : $4) }' "$f")
                echo "unset arrow; set arrow from graph 0, first $ref to graph 1, first $ref nohead dt 2 lc rgb '#7f7f7f'"
                if [ $metric = cpu ]; then
                    echo "set title 'server CPU per request, P=$P (lower is better; dashed: the reference)'; set ylabel 'server CPU µs/request'"
                    echo "plot '$f' using 1:3:5:xtic(2) with boxes lc rgb variable, '' using 1:3:(sprintf('%.2f', \$3)) with labels offset 0,0.7 font ',9'"
                else
                    echo "set title 'throughput, P=$P (dashed: the reference; client-bound when the server is not at 100% CPU)'; set ylabel 'thousand requests/s'"
                    echo "plot '$f' using 1:4:5:xtic(2) with boxes lc rgb variable, '' using 1:4:(sprintf('%.0f', \$4)) with labels offset 0,0.7 font ',9'"
                fi
            done
        done
        echo "unset multiplot"
    } >"$W/c.$c_wl.gp"
    gnuplot "$W/c.$c_wl.gp" 2>"$W/c.$c_wl.err" || { say "gnuplot failed for $c_png: $(head -n 5 "$W/c.$c_wl.err")"; return 1; }
    say "chart: $c_png"
}

# chart_resp PNG: 2x2 panels (CPU µs/req, req/s) x (P), bars grouped by test,
# one colour per server.
chart_resp() {
    c_png=$1
    grep -q '^resp	' "$SUM" || return 0
    awk -F'\t' '$1 == "resp" && !s[$2]++ { print $2 }' "$SUM" >"$W/r.servers"
    tests=$(awk -F'\t' '$1 == "resp" && !s[$4]++ { print $4 }' "$SUM")
    ns=$(wc -l <"$W/r.servers")
    set -- "#7f7f7f" "#0072b2" "#56b4e9" "#009e73" "#e69f00" "#d55e00" "#cc79a7" "#f0e442" "#000000"
    {
        echo "set terminal pngcairo size 1500,1000 font 'DejaVu Sans,10'"
        echo "set output '$c_png'"
        printf '%s\n' "set multiplot layout 2,$(echo $PIPELINES | wc -w) margins 0.06,0.99,0.06,0.85 spacing 0.06,0.12 title \"RESP: redis-benchmark -c 50 against the evio Redis clone (each backend) and the real redis-server\\n$(uname -sr), $(nproc) CPUs ($CPUMODEL), $DATE; medians of $RUNS runs\" font ',13'"
        echo "set termoption noenhanced; set style fill solid 0.85 border -1; set boxwidth 0.9; set grid ytics"
        echo "set yrange [0:*]; set offsets 0,0,graph 0.05,0"
        xt= g=0
        for t in $tests; do
            xt="$xt${xt:+, }\"$t\" $(awk -v g=$g -v n="$ns" 'BEGIN { print g * (n + 1) + (n - 1) / 2 }')"
            g=$((g + 1))
        done
        echo "set xtics ($xt) nomirror; set xrange [-1:$(awk -v g=$g -v n="$ns" 'BEGIN { print g * (n + 1) - 1 }')]"
        first=yes
        for metric in cpu rps; do
            for P in $PIPELINES; do
                if [ $metric = cpu ]; then
                    echo "set title 'server CPU per request, P=$P (lower is better; \"all\": the four tests together)'; set ylabel 'server CPU µs/request'"
                    c=9 scale=1
                else
                    echo "set title 'throughput, P=$P (client-bound when the server is not at 100% CPU)'; set ylabel 'thousand requests/s'"
                    c=6 scale=1000
                fi
                if [ $first = yes ]; then
                    echo "set key at screen 0.5,0.915 center horizontal maxcols 8 maxrows 1 width 1 font ',11' samplen 2"; first=no
                else echo "unset key"; fi
                plot= s=0
                while read -r lab; do
                    f=$W/r.$metric.$P.$s.dat
                    g=0
                    for t in $tests; do
                        v=$(get resp "$lab" "$t" "$P" $c)
                        [ -n "$v" ] && awk -v x=$((g * (ns + 1) + s)) -v v="$v" -v k=$scale 'BEGIN { print x, v / k }'
                        g=$((g + 1))
                    done >"$f"
                    eval "col=\${$((s + 1))}"
                    plot="$plot${plot:+, }'$f' using 1:2 with boxes lc rgb '$col' title '$lab'"
                    s=$((s + 1))
                done <"$W/r.servers"
                echo "plot $plot"
            done
        done
        echo "unset multiplot"
    } >"$W/r.gp"
    gnuplot "$W/r.gp" 2>"$W/r.err" || { say "gnuplot failed for $c_png: $(head -n 5 "$W/r.err")"; return 1; }
    say "chart: $c_png"
}

# ---------------------------------------------------------------- docs
draw() {
    if command -v gnuplot >/dev/null 2>&1; then
        chart_servers echo "echo: evio (blue) on each backend vs plain servers on epoll (grey), libev/libuv/libevent (orange); 50 connections, 6-byte messages" "$DOCS/bench-echo.png"
        chart_resp "$DOCS/bench-resp.png"
        chart_servers http "HTTP: wrk -c 50 -t1, GET / against evio's http-server on each backend" "$DOCS/bench-http.png"
        chart_servers proxy "proxy: echo through evio's proxy (each backend) to a plain epoll echo server; 50 connections" "$DOCS/bench-proxy.png"
    else
        say "gnuplot not found (Debian: apt-get install gnuplot-nox): no charts"
    fi
}
if [ -n "$REPLOT" ]; then
    mkdir -p "$DOCS" && draw
    exit 0
fi
{
    echo "# evio benchmarks"
    echo
    echo "Generated by \`make bench${ARGS:+ BENCH_ARGS=\"${ARGS# }\"}\` (bench/run-all.sh) on $DATE; backends: $(echo $BACKENDS)."
    echo
    echo "Machine: $(nproc 2>/dev/null || getconf _NPROCESSORS_ONLN) CPUs (\`nproc\`), $CPUMODEL; $(uname -srm)."
    echo "Load average before/after the run: ${LOAD0:-?} / ${LOAD1:-?}.  Server pinned to CPU $SCPU, client"
    echo "to CPU $CCPU (taskset); $RUNS repetitions per point, servers interleaved within each repetition."
    echo "On a shared 2-CPU machine req/s is noisy: compare server CPU per request (paired"
    echo "ratios), system calls per request and (with --callgrind) instructions per request."
    echo
    for wl in echo resp http proxy; do
        [ -s "$SUM" ] && grep -q "^$wl	" "$SUM" && printf '![%s](bench-%s.png)\n\n' "$wl" "$wl"
    done
    wants idle && printf '![idle memory](idle-memory.png)\n\n'
    cat "$W/targets.md"
    cat <<'EOF'

## The servers

* **epoll-echo** (bench/peers/epoll-echo.c), the echo reference: one thread, level-triggered
  epoll, one `read()` per readiness into a static buffer, `send()` straight back; a per-fd
  buffer and EPOLLOUT only after a short write.  **epoll-echo(control)** is a second copy of
  it: its ratio is the noise floor of the run.
* **ev-echo**, **uv-echo**, **event-echo** (bench/peers/): the same echo written directly on
  libev (`ev_io`, write straight back, write watcher only after a short write), libuv
  (`uv_read_start` into a static buffer, `uv_try_write`, `uv_write` from a per-connection
  buffer only after a short write) and libevent (raw `event_new(EV_READ|EV_PERSIST)` events:
  measured faster than the textbook bufferevent, which costs 5 system calls per request at
  P=1 — `readv`, `ioctl(FIONREAD)`, `writev` and two `epoll_ctl` — against 2, and about 1.5×
  the server CPU; `event-echo --bufferevent` runs that variant).  All single-threaded,
  TCP_NODELAY, no per-request allocation.
* **echo-server-BACKEND**, **clone-BACKEND**, **http-server-BACKEND**, **proxy-BACKEND**: the
  examples linked statically against the evio frontend and one backend; **echo-server(libevio)**
  and **redis-server(libevio)** are the examples as built, on the shared libevio (epoll).
  kqueue on Linux is emulated over epoll by compat/ (one extra `ioctl` per read), for testing.
* **redis-server**: Debian's real Redis, started by the script with `--save '' --appendonly no`.
EOF
    for wl in echo resp http proxy idle; do
        wants $wl || continue
        [ -f "$W/$wl.md" ] && cat "$W/$wl.md"
    done
} >"$W/bench.md"

cat "$W/bench.md"
if [ $DO_DOCS = yes ]; then
    if mkdir -p "$DOCS" 2>/dev/null && cp "$W/bench.md" "$DOCS/bench.md"; then
        say "tables: $DOCS/bench.md"
        draw
    else
        say "cannot write $DOCS: tables not saved"; STATUS=1
    fi
fi
[ $STATUS -eq 0 ] || say "FAILED: a server did not start, died, or a client reported errors (see above)"
exit $STATUS
