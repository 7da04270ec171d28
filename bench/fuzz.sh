#!/bin/sh
# bench/fuzz.sh SECONDS - builds every libFuzzer target (clang; build/fuzz)
# and runs each for SECONDS from the committed seed corpus, printing the
# executions per target and anything found, and appending the same lines to
# bench/results.txt. Reproducers of findings stay in build/fuzz/fuzz-out/.
# Replay one: build/fuzz/tests/fuzz/<target> <file>.
set -eu
cd "$(dirname "$0")/.."
SECS=${1:-60}
exec tests/fuzz/run.sh "$SECS" bench/results.txt
