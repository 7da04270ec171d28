#!/bin/sh
# Install every Debian package lookaside, its tests and its demo need.
# Idempotent: installs only what is missing and says what it installs.
set -eu
PKGS="build-essential cmake pkg-config libgrpc-dev protobuf-c-compiler libprotobuf-c-dev \
libc-ares-dev libsqlite3-dev libcmocka-dev dnsmasq-base python3-grpcio python3 openssl libssl-dev \
libsystemd-dev libmicrohttpd-dev python3-yaml prometheus chromium \
golang-go golang-google-grpc-dev golang-google-protobuf-dev python3-protobuf protobuf-compiler"
missing=""
for p in $PKGS; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done
if [ -z "$missing" ]; then
    echo "deps: all packages present"
    exit 0
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
echo "deps: installing:$missing"
$SUDO apt-get update -q
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends $missing
