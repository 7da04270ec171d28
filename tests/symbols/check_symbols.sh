#!/bin/sh
# check_symbols.sh NM CC SHARED_LIB STATIC_LIB HEADER...
#
# liblookaside must not leak internal names into the application: every
# defined global symbol of the shared library (dynamic symbol table) and of
# the static archive must be public API, lookaside_ followed by a letter
# (lookaside__v1__* is protobuf-c's naming, internal). Both libraries must
# export the same set, and every function the public headers declare must be
# in it.
set -eu
NM=$1 CC=$2 SO=$3 AR=$4
shift 4
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0

"$NM" -D --defined-only "$SO" | awk 'NF >= 3 { print $3 }' | sed 's/@.*//' | sort -u >"$tmp/so"
"$NM" -g --defined-only "$AR" | awk 'NF >= 3 { print $3 }' | sort -u >"$tmp/a"

for lib in so a; do
    n=$(wc -l <"$tmp/$lib")
    echo "$lib: $n exported symbols"
    if [ "$n" -eq 0 ]; then
        echo "FAIL: $lib exports nothing (nm found no symbols?)"
        fail=1
    fi
    if grep -v '^lookaside_[a-z]' "$tmp/$lib" >"$tmp/$lib.bad"; then
        echo "FAIL: $lib exports names outside lookaside_*:"
        sed 's/^/    /' "$tmp/$lib.bad"
        fail=1
    fi
done

if ! cmp -s "$tmp/so" "$tmp/a"; then
    echo "FAIL: the shared and the static library export different sets (< .so, > .a):"
    diff "$tmp/so" "$tmp/a" | grep '^[<>]' | sed 's/^/    /'
    fail=1
fi

# Functions the public headers declare: comments stripped by the
# preprocessor (without expanding includes), then every "lookaside_name("
# outside a static inline (a function-pointer typedef reads "(*name)(").
for h in "$@"; do
    "$CC" -fpreprocessed -dD -E -P "$h"
done | tr '\n' ' ' | tr ';{}' '\n\n\n' | grep -v 'static[[:space:]]*inline' |
    grep -o '\<lookaside_[a-z][a-z0-9_]*[[:space:]]*(' |
    sed 's/[[:space:]]*($//' | sort -u >"$tmp/declared"
nd=$(wc -l <"$tmp/declared")
echo "headers: $nd declared functions"
if [ "$nd" -eq 0 ]; then
    echo "FAIL: found no function declarations in $*"
    fail=1
fi
for lib in so a; do
    if comm -23 "$tmp/declared" "$tmp/$lib" | grep . >"$tmp/$lib.missing"; then
        echo "FAIL: declared in the public headers but not exported by the $lib:"
        sed 's/^/    /' "$tmp/$lib.missing"
        fail=1
    fi
done

[ "$fail" -eq 0 ] && echo "symbols: ok"
exit "$fail"
