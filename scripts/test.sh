#!/bin/sh
# Installs missing dependencies, builds lookaside with AddressSanitizer and
# UndefinedBehaviorSanitizer, and runs the whole test suite.
set -eu
cd "$(dirname "$0")/.."
./scripts/deps.sh
BUILD=${BUILD:-build/asan}
cmake -S . -B "$BUILD" -DLOOKASIDE_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null
cmake --build "$BUILD" -j2
cd "$BUILD"
ctest -j2 --output-on-failure --timeout 300
