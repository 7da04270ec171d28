#!/bin/sh
# Regenerates the committed seed corpus tests/fuzz/corpus/<target>/ with
# fuzz_corpus_gen from a LOOKASIDE_FUZZ build (default build/fuzz; built
# here if missing). Seeds are written by code (corpus_gen.c), so they follow
# the protocol and storage format; re-run after changing either.
set -eu
cd "$(dirname "$0")/../.."
BUILD=${1:-build/fuzz}
if [ ! -x "$BUILD/tests/fuzz/fuzz_corpus_gen" ]; then
    CC=clang cmake -S . -B "$BUILD" -DLOOKASIDE_FUZZ=ON -DLOOKASIDE_SANITIZE=ON \
        -DLOOKASIDE_BENCH=OFF -DCMAKE_BUILD_TYPE=Debug >/dev/null
    cmake --build "$BUILD" -j2 --target fuzz_corpus_gen
fi
rm -rf tests/fuzz/corpus
ASAN_OPTIONS=detect_leaks=0 "$BUILD/tests/fuzz/fuzz_corpus_gen" tests/fuzz/corpus
find tests/fuzz/corpus -type f | sort | while read -r f; do
    printf '%8d %s\n' "$(wc -c <"$f")" "$f"
done
