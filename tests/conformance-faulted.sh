#!/bin/sh
# conformance-faulted.sh BACKEND [SEED...]: the conformance suite of one
# backend (tests/conformance-BACKEND) under the fault layer's transparent
# profile (tests/fault.h: short reads and writes, EAGAIN, EINTR, delayed
# connects, spurious readiness, early wakeups; nothing the application may
# see), once per seed.  Every check must pass as it does without faults.
# The cases tagged "slow" (timeouts waited out, TLS with s_client: most of
# the suite's minute) are left out, so each seed takes a few seconds.
#
# Seeds: the arguments, or EVIO_FAULT_SEEDS, or the backend's fixed seed
# (one, a different one per backend: each seed costs the suite's fast
# cases again, about 7 s, 15 s under ASan).  A failing seed is printed with
# the command that reproduces it.
backend=$1
shift
bin=tests/conformance-$backend
[ -x "$bin" ] || { echo "$bin: not built" >&2; exit 99; }
seeds=${*:-${EVIO_FAULT_SEEDS:-}}
if [ -z "$seeds" ]; then
    case $backend in # fixed, and different per backend
    epoll) seeds=1 ;;
    kqueue) seeds=3 ;;
    poll) seeds=5 ;;
    libev) seeds=7 ;;
    libuv) seeds=9 ;;
    *) seeds=11 ;;
    esac
fi
status=0
for seed in $seeds; do
    echo "--- conformance-$backend under faults, seed $seed"
    if ! EVIO_FAULT_SEED=$seed CK_EXCLUDE_TAGS=slow "$bin"; then
        status=1
        echo "FAIL: fault seed $seed; reproduce with EVIO_FAULT_SEED=$seed CK_EXCLUDE_TAGS=slow $bin"
    fi
done
exit $status
