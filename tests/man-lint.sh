#!/bin/sh
# make check: every manual page in man/ passes `mandoc -T lint -W warning`
# (mandoc's own checks of mdoc(7) structure and macro use, warnings and
# worse; style notes such as "referenced manual not found" are not
# failures).  Run from the build directory; srcdir comes from automake.
srcdir=${srcdir:-.}
command -v mandoc >/dev/null 2>&1 || {
    echo "man-lint: mandoc not found (Debian: apt-get install mandoc; scripts/deps installs it)"
    exit 1
}
status=0
n=0
for page in "$srcdir"/man/*.3; do
    [ -f "$page" ] || continue
    n=$((n + 1))
    if out=$(mandoc -T lint -W warning "$page" 2>&1) && [ -z "$out" ]; then
        echo "ok: $page"
    else
        echo "FAIL: $page"
        echo "$out"
        status=1
    fi
done
[ $n -gt 0 ] || { echo "man-lint: no pages in $srcdir/man"; exit 1; }
[ $status = 0 ] && echo "man-lint: $n pages, $n passed, 0 failed" ||
    echo "man-lint: FAILED"
exit $status
