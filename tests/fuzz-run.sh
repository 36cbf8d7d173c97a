#!/bin/sh
# fuzz-run.sh — run libFuzzer targets for a while, all at once; `make fuzz`.
#
#   sh tests/fuzz-run.sh --seconds N --out DIR --corpus DIR [--merge yes] [--timeout S] TARGET...
#
# TARGET is a libFuzzer binary tests/fuzz-NAME.  Each runs for N seconds
# (-max_total_time) over OUT/NAME, where the inputs it finds go, and
# CORPUS/NAME, the committed corpus, which is only read.  Its log is
# OUT/NAME.log; a crash leaves OUT/NAME-crash-* (or -leak-, -timeout-,
# -oom-), to be copied into CORPUS/NAME once fixed, so make check replays
# it from then on.  With --merge yes, the inputs of OUT/NAME that reach
# edges CORPUS/NAME does not are merged into it afterwards: a greedy set
# cover on edges, hit counts ignored (-set_cover_merge=1 -use_counters=0),
# so the committed corpora, which make check replays one process per
# input, grow by a few files, not by every input with a new hit count.
# The summary gives, per target, the executions, exec/s, the final
# coverage (cov: edges, ft: features) and the corpus; exit status 1 if
# any target crashed.  An input that runs longer than S seconds (default
# 30; libFuzzer's own default is 20 minutes, longer than most runs) is
# reported as a timeout, so a hang is found like a crash.
set -u

seconds=60 out=fuzz-out corpus=tests/fuzz-corpus merge=no timeout=30
while [ $# -gt 0 ]; do
    case $1 in
    --seconds) seconds=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --corpus) corpus=$2; shift 2 ;;
    --merge) merge=$2; shift 2 ;;
    --timeout) timeout=$2; shift 2 ;;
    --) shift; break ;;
    -*) echo "fuzz-run.sh: unknown option $1" >&2; exit 2 ;;
    *) break ;;
    esac
done
[ $# -gt 0 ] || { echo "usage: fuzz-run.sh [--seconds N] [--out DIR] [--corpus DIR] [--merge yes] [--timeout S] TARGET..." >&2; exit 2; }

mkdir -p "$out" || exit 1
pids=
for t in "$@"; do
    name=$(basename "$t"); name=${name#fuzz-}
    mkdir -p "$out/$name"
    [ -d "$corpus/$name" ] || { echo "fuzz-run.sh: no corpus $corpus/$name" >&2; exit 1; }
    echo "fuzz: $t for ${seconds}s, new inputs in $out/$name, log $out/$name.log"
    "$t" -max_total_time="$seconds" -timeout="$timeout" -print_final_stats=1 \
        -artifact_prefix="$out/$name-" \
        "$out/$name" "$corpus/$name" >"$out/$name.log" 2>&1 &
    pids="$pids $!"
done
status=0
for p in $pids; do
    wait "$p" || status=1
done

echo
echo "fuzz: summary (${seconds}s each, all targets at once)"
for t in "$@"; do
    name=$(basename "$t"); name=${name#fuzz-}
    log=$out/$name.log
    # The last status line: "#N  DONE  cov: C ft: F corp: K/Sb ... exec/s: E".
    last=$(grep -E '^#[0-9]+' "$log" | tail -n 1)
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
    cov=$(printf '%s\n' "$last" | sed -n 's/.*cov: \([0-9]*\).*/\1/p')
    ft=$(printf '%s\n' "$last" | sed -n 's/.* ft: \([0-9]*\).*/\1/p')
    corp=$(printf '%s\n' "$last" | sed -n 's/.* corp: \([^ ]*\).*/\1/p')
    crashes=$(ls "$out/$name"-crash-* "$out/$name"-leak-* "$out/$name"-timeout-* "$out/$name"-oom-* 2>/dev/null)
    printf 'fuzz-%s: %s executions, %s exec/s, cov: %s ft: %s, corpus %s (%s new files in %s/%s)\n' \
        "$name" "${runs:-?}" "${rate:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}" \
        "$(ls "$out/$name" | wc -l | tr -d ' ')" "$out" "$name"
    if [ -n "$crashes" ]; then
        status=1
        for c in $crashes; do echo "fuzz-$name: FOUND $c (see $log)"; done
    fi
    if [ "$merge" = yes ] && [ -z "$crashes" ]; then
        "$t" -set_cover_merge=1 -use_counters=0 "$corpus/$name" "$out/$name" \
            >"$out/$name-merge.log" 2>&1 &&
            echo "fuzz-$name: merged into $corpus/$name ($(ls "$corpus/$name" | wc -l | tr -d ' ') files)"
    fi
done
exit $status
