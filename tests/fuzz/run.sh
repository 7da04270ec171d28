#!/bin/sh
# tests/fuzz/run.sh SECONDS [RESULTS_FILE]
# Builds the libFuzzer targets (clang, LOOKASIDE_FUZZ=ON, in $FUZZ_BUILD,
# default build/fuzz) and runs each for SECONDS on a scratch copy of its
# committed seed corpus (tests/fuzz/corpus/<target>), so the repository is
# not touched. Prints one line per target (executions, executions/s, new
# corpus entries, result) and, with RESULTS_FILE, appends them there.
# Exits 1 if any target found a crash, leak, timeout or broken invariant
# (the reproducer is kept and named in the output), 77 when clang or its
# libFuzzer runtime is not installed.
set -eu
cd "$(dirname "$0")/../.."
SECS=${1:?usage: tests/fuzz/run.sh SECONDS [RESULTS_FILE]}
RESULTS=${2:-}
BUILD=${FUZZ_BUILD:-build/fuzz}
TARGETS="fuzz_report fuzz_balancer fuzz_admin fuzz_grpclb fuzz_health fuzz_auth fuzz_storage fuzz_dns"

# Is libFuzzer usable? (clang installed without its runtime cannot link.)
probe=$(mktemp -d)
trap 'rm -rf "$probe"' EXIT
printf 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n)\n{ (void)d; (void)n; return 0; }\n' >"$probe/p.c"
if ! command -v clang >/dev/null 2>&1 ||
    ! clang -fsanitize=fuzzer,address "$probe/p.c" -o "$probe/p" >/dev/null 2>&1; then
    echo "fuzz: skipped: clang/libFuzzer not installable (clang or its libclang-rt package missing)"
    exit 77
fi

CC=clang cmake -S . -B "$BUILD" -DLOOKASIDE_FUZZ=ON -DLOOKASIDE_SANITIZE=ON \
    -DLOOKASIDE_BENCH=OFF -DCMAKE_BUILD_TYPE=Debug >/dev/null
cmake --build "$BUILD" -j2 --target fuzz_all >"$probe/build.log" 2>&1 ||
    { cat "$probe/build.log"; echo "fuzz: build failed"; exit 1; }

out="$BUILD/fuzz-out"
mkdir -p "$out"
# gRPC keeps process-wide singletons alive until exit; the suppressions are
# the same as the test suite's.
export ASAN_OPTIONS="abort_on_error=1:detect_leaks=1:strict_string_checks=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
export LSAN_OPTIONS="suppressions=$(pwd)/tests/lsan.supp:print_suppressions=0"
failed=0
stamp=$(date -u +%Y-%m-%dT%H:%M:%SZ)
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
lines=""
for t in $TARGETS; do
    work="$probe/$t"
    rm -rf "${out:?}/$t"
    mkdir -p "$work" "$out/$t"
    log="$out/$t.log"
    set +e
    "$BUILD/tests/fuzz/$t" -max_total_time="$SECS" -print_final_stats=1 -timeout=20 \
        -rss_limit_mb=2560 -max_len=8192 -artifact_prefix="$out/$t/" \
        "$work" "tests/fuzz/corpus/$t" >"$log" 2>&1
    rc=$?
    set -e
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    newc=$(find "$work" -type f | wc -l)
    if [ "$rc" -eq 0 ]; then
        res="ok"
    else
        failed=1
        art=$(ls -t "$out/$t" 2>/dev/null | head -1)
        res="FOUND (exit $rc): $out/$t/$art"
        echo "---- $t: last lines of $log"
        grep -E "ERROR|INVARIANT|SUMMARY|runtime error|Test unit written" "$log" | head -20 || true
        tail -5 "$log"
    fi
    line=$(printf '%-14s %8s execs  %6s exec/s  %4s new inputs  %s' "$t" "${execs:-?}" \
        "${rate:-?}" "$newc" "$res")
    echo "fuzz: $line"
    # bench/results.txt's format: date name value unit (goal) notes
    lines="$lines$(date -u +%Y-%m-%d) fuzz.execs.$t ${execs:-?} execs (goal -) $SECS s, ${rate:-?} exec/s, $newc new inputs, $res; clang $(clang -dumpversion), ASan+UBSan, $(nproc) cores, $commit
"
done
if [ -n "$RESULTS" ]; then
    {
        echo "# bench/fuzz.sh $SECS ($stamp, load average $(cut -d' ' -f1 /proc/loadavg))"
        printf '%s' "$lines"
    } >>"$RESULTS"
fi
exit "$failed"
