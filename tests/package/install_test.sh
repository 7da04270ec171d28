#!/bin/sh
# install_test.sh CMAKE BUILD_DIR CC "EXTRA_FLAGS"
# Stages `cmake --install BUILD_DIR --component liblookaside` into a
# temporary prefix, MOVES the staged tree (an installed liblookaside must
# not depend on where it was installed), then builds and runs the consumer
# program (consumer/) against it both ways an application would:
#   1. pkg-config --cflags --libs lookaside (PKG_CONFIG_PATH=<moved>/...),
#      and --static with the archive
#   2. find_package(lookaside): lookaside::lookaside and
#      lookaside::lookaside_static
# and checks that each program really ran the staged library (or, static,
# carries it: no liblookaside in its NEEDED entries). EXTRA_FLAGS (the
# sanitizer flags of the build) go to every compile and link.
set -eu
CMAKE=$1 BUILD=$2 CC=$3 EXTRA=$4
HERE=$(cd "$(dirname "$0")" && pwd)
TMP=$(mktemp -d "${TMPDIR:-/tmp}/lookaside-install.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
fail() {
    echo "FAIL: $*"
    exit 1
}
real() { readlink -f "$1"; }

"$CMAKE" --install "$BUILD" --prefix "$TMP/staged" --component liblookaside
mv "$TMP/staged" "$TMP/moved"
P=$TMP/moved
if grep -rl "$TMP/staged" "$P"; then
    fail "the files above still name the install prefix"
fi
so=$(find "$P" -name 'liblookaside.so.*.*.*' | head -n 1)
ar=$(find "$P" -name liblookaside.a | head -n 1)
pc=$(find "$P" -name lookaside.pc | head -n 1)
cfg=$(find "$P" -name lookasideConfig.cmake | head -n 1)
for f in "$so" "$ar" "$pc" "$cfg" "$P/include/lookaside.h" "$P/include/lookaside_status.h"; do
    [ -n "$f" ] && [ -f "$f" ] || fail "missing from the install: $f (tree: $(find "$P" -type f))"
done

# The installed header compiles alone, as C11 with warnings as errors and as C++.
GRPC_CFLAGS=$(pkg-config --cflags grpc)
echo '#include <lookaside.h>' >"$TMP/h.c"
# shellcheck disable=SC2086
"$CC" -std=c11 -Wall -Wextra -Werror -fsyntax-only -I"$P/include" $GRPC_CFLAGS "$TMP/h.c"
# shellcheck disable=SC2086
c++ -Wall -Wextra -Werror -fsyntax-only -x c++ -I"$P/include" $GRPC_CFLAGS "$TMP/h.c"

# 1. pkg-config, from the moved tree
export PKG_CONFIG_PATH
PKG_CONFIG_PATH=$(dirname "$pc")
ver=$(pkg-config --modversion lookaside)
cflags=$(pkg-config --cflags lookaside)
libs=$(pkg-config --libs lookaside)
libdir=$(pkg-config --variable=libdir lookaside)
echo "pkg-config: version $ver; cflags $cflags; libs $libs"
[ "$(real "$libdir")" = "$(real "$(dirname "$so")")" ] ||
    fail "pkg-config libdir $libdir is not the moved tree's $(dirname "$so")"
# shellcheck disable=SC2086
"$CC" -std=c11 -Wall -Wextra -Werror $EXTRA -DEXPECTED_VERSION="\"$ver\"" \
    "$HERE/consumer/consumer.c" $cflags $libs -Wl,-rpath,"$libdir" -o "$TMP/pc_consumer"
"$TMP/pc_consumer" >"$TMP/pc.out" || fail "pkg-config consumer: $(cat "$TMP/pc.out")"
cat "$TMP/pc.out"
from=$(sed -n 's/^lookaside_version from //p' "$TMP/pc.out")
[ "$(real "$from")" = "$(real "$so")" ] || fail "pkg-config consumer ran $from, not $so"

# 1b. pkg-config --static: Libs.private and Requires.private are enough to
# link the archive (-l:liblookaside.a picks it over the .so)
slibs=$(pkg-config --static --libs lookaside | sed 's/-llookaside\b/-l:liblookaside.a/')
# shellcheck disable=SC2086
"$CC" -std=c11 -Wall -Wextra -Werror $EXTRA -DEXPECTED_VERSION="\"$ver\"" \
    "$HERE/consumer/consumer.c" $cflags $slibs -o "$TMP/pc_static_consumer"
if readelf -d "$TMP/pc_static_consumer" | grep -q 'NEEDED.*liblookaside'; then
    fail "pkg-config --static consumer needs liblookaside.so"
fi
"$TMP/pc_static_consumer" >"$TMP/pcs.out" || fail "pkg-config --static consumer: $(cat "$TMP/pcs.out")"
grep -q "lookaside_version from .*pc_static_consumer" "$TMP/pcs.out" ||
    fail "pkg-config --static consumer: lookaside_version is not in the executable"
echo "pkg-config --static: ok ($slibs)"

# 2. find_package, from the moved tree
"$CMAKE" -S "$HERE/consumer" -B "$TMP/cbuild" -DCMAKE_PREFIX_PATH="$P" \
    -DCMAKE_C_COMPILER="$CC" -DCMAKE_C_FLAGS="-Wall -Wextra -Werror $EXTRA" \
    -DCMAKE_EXE_LINKER_FLAGS="$EXTRA" -DCMAKE_BUILD_TYPE=Debug >"$TMP/configure.log" 2>&1 ||
    { cat "$TMP/configure.log"; fail "find_package(lookaside) consumer: configure failed"; }
"$CMAKE" --build "$TMP/cbuild" -j2 >"$TMP/build.log" 2>&1 ||
    { cat "$TMP/build.log"; fail "find_package(lookaside) consumer: build failed"; }
"$TMP/cbuild/consumer_shared" >"$TMP/shared.out" || fail "consumer_shared: $(cat "$TMP/shared.out")"
cat "$TMP/shared.out"
from=$(sed -n 's/^lookaside_version from //p' "$TMP/shared.out")
[ "$(real "$from")" = "$(real "$so")" ] || fail "consumer_shared ran $from, not $so"
"$TMP/cbuild/consumer_static" >"$TMP/static.out" || fail "consumer_static: $(cat "$TMP/static.out")"
cat "$TMP/static.out"
if readelf -d "$TMP/cbuild/consumer_static" | grep -q 'NEEDED.*liblookaside'; then
    fail "consumer_static needs liblookaside.so: not linked statically"
fi
grep -q "lookaside_version from .*consumer_static" "$TMP/static.out" ||
    fail "consumer_static: lookaside_version is not in the executable"
echo "install: ok (pkg-config shared and static, find_package shared and static, from a moved tree)"
