#!/bin/sh
# make check: every public function has a manual page.  A public function
# is a name declared with EVIO_EXPORT in any header of the source tree
# (api/, translators/, wherever one lives; build directories excluded); it
# is covered when it is listed in the NAME section (.Nm) of a page in man/,
# which is also what `make install` turns into a link NAME.3 -> page, so
# that `man NAME` finds it.  A new function without a page fails here: add
# it to the page of its group (see man/evio.3 for the groups).
srcdir=${srcdir:-.}
tmp=${TMPDIR:-/tmp}/man-coverage.$$
trap 'rm -f "$tmp".*' EXIT
# Headers, pruning build trees (build*/ as scripts/test makes them), VCS
# and installed copies.
find "$srcdir/." \( -name '.git' -o -name 'build*' -o -name '_inst' -o -name '_build' \) -prune -o \
    -name '*.h' -type f -print >"$tmp.headers"
[ -s "$tmp.headers" ] || { echo "man-coverage: no headers under $srcdir"; exit 1; }
# One declaration per EVIO_EXPORT line: the identifier before the first '('.
status=0
: >"$tmp.funcs"
while read -r h; do
    grep -n '^[[:space:]]*EVIO_EXPORT[[:space:]]' "$h" | while IFS= read -r line; do
        name=$(printf '%s\n' "$line" | sed -n 's/^[^(]*[^A-Za-z0-9_]\([A-Za-z_][A-Za-z0-9_]*\)[[:space:]]*(.*/\1/p')
        if [ -n "$name" ]; then
            echo "$name $h"
        else
            echo "PARSE $h:$line"
        fi
    done
done <"$tmp.headers" | sort -u >"$tmp.funcs"
if grep '^PARSE ' "$tmp.funcs"; then
    echo "man-coverage: cannot read the function name of the EVIO_EXPORT lines above;"
    echo "keep 'EVIO_EXPORT type name(' on one line"
    status=1
fi
sed -n 's/^\.Nm \([A-Za-z_][A-Za-z0-9_]*\).*/\1/p' "$srcdir"/man/*.3 | sort -u >"$tmp.names"
nf=0
while read -r name h; do
    [ "$name" = PARSE ] && continue
    nf=$((nf + 1))
    if grep -qx "$name" "$tmp.names"; then
        page=$(grep -l "^\.Nm $name\( ,\)\{0,1\}\$" "$srcdir"/man/*.3 | head -1)
        echo "ok: $name ($h) in ${page##*/}"
    else
        echo "FAIL: $name ($h) has no manual page: add it to the NAME, SYNOPSIS and DESCRIPTION of its group's page in man/"
        status=1
    fi
done <"$tmp.funcs"
[ $nf -gt 0 ] || { echo "man-coverage: no EVIO_EXPORT function found"; exit 1; }
[ $status = 0 ] && echo "man-coverage: $nf public functions: $nf passed, 0 failed" ||
    echo "man-coverage: FAILED"
exit $status
