#!/bin/sh
# run_go.sh SERVER CTL: builds the Go reporter and its example backend
# offline in GOPATH mode (DESIGN §14: Debian's golang-go and
# golang-google-grpc-dev, no module proxy), runs go vet and the package's
# unit tests, then reporter_it.py against the real lookaside-server.
# Exit 77 (skipped) when the Go toolchain or grpc-go is not installed.
# GOCACHE is $LOOKASIDE_GOCACHE when set (the build tree keeps one so grpc-go
# is compiled once, not on every run), else a temporary directory.
set -eu
SERVER=$1 CTL=$2
HERE=$(cd "$(dirname "$0")" && pwd)
SRC=$HERE/../go
if ! command -v go >/dev/null 2>&1 || [ ! -d /usr/share/gocode/src/google.golang.org/grpc ] ||
    [ ! -d /usr/share/gocode/src/google.golang.org/protobuf/encoding/protowire ]; then
    echo "SKIP: go or grpc-go missing (scripts/deps.sh installs golang-go," \
        "golang-google-grpc-dev, golang-google-protobuf-dev)"
    exit 77
fi
TMP=$(mktemp -d "${TMPDIR:-/tmp}/lookaside-go.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
PKG=$TMP/gopath/src/lookaside/reporter
mkdir -p "$PKG"
cp "$SRC"/reporter/*.go "$PKG"/
cp -r "$SRC"/examplebackend "$PKG"/examplebackend
cd "$PKG"
export GO111MODULE=off GOPROXY=off GOFLAGS= CGO_ENABLED=0 \
    GOPATH="$TMP/gopath:/usr/share/gocode" GOCACHE="${LOOKASIDE_GOCACHE:-$TMP/gocache}"
unformatted=$(gofmt -l .)
if [ -n "$unformatted" ]; then
    echo "FAIL: not gofmt-formatted: $unformatted"
    exit 1
fi
go vet ./...
go test .
go build -o "$TMP/examplebackend" ./examplebackend
/usr/bin/python3 "$HERE/reporter_it.py" --server "$SERVER" --ctl "$CTL" --service go-reporter-it \
    -- "$TMP/examplebackend"
