#!/bin/sh
# Install every Debian package lookaside, its tests and its demo need.
# Idempotent: installs only what is missing and says what it installs.
set -eu
PKGS="build-essential cmake pkg-config libgrpc-dev protobuf-c-compiler libprotobuf-c-dev \
libc-ares-dev libsqlite3-dev libcmocka-dev dnsmasq-base python3-grpcio python3 openssl libssl-dev \
libsystemd-dev libmicrohttpd-dev python3-yaml prometheus chromium \
golang-go golang-google-grpc-dev golang-google-protobuf-dev python3-protobuf protobuf-compiler \
etcd-server etcd-client"
missing=""
for p in $PKGS; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
updated=""
if [ -z "$missing" ]; then
    echo "deps: all packages present"
else
    echo "deps: installing:$missing"
    $SUDO apt-get update -q
    updated=1
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends $missing
fi

# clang and its libFuzzer runtime, for tests/fuzz (scripts/test.sh runs a short
# round of every fuzz target, bench/fuzz.sh longer ones). The runtime is
# packaged per clang major version, so it is picked once clang is there. A
# package the archive does not have is reported and skipped (the fuzz step
# then says so); one it has must install.
fuzz_pkg() {
    if dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; then
        return 0
    fi
    if [ -z "$updated" ]; then $SUDO apt-get update -q; updated=1; fi
    if ! apt-cache show "$1" >/dev/null 2>&1; then
        echo "deps: $1 is not in this system's archive: clang/libFuzzer not installable"
        return 1
    fi
    echo "deps: installing: $1"
    # (set -e does not apply inside an if condition: fail explicitly)
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "$1" ||
        { echo "deps: installing $1 failed" >&2; exit 1; }
}
if fuzz_pkg clang; then
    fuzz_pkg "libclang-rt-$(clang -dumpversion | cut -d. -f1)-dev" || true
fi
