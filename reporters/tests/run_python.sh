#!/bin/sh
# run_python.sh SERVER CTL: generates lookaside_pb2 with protoc into a
# temporary directory, then runs reporter_it.py with the Python example
# backend (Debian's python3-grpcio and python3-protobuf, /usr/bin/python3).
# Exit 77 (skipped) when protoc or the Python packages are missing.
set -eu
SERVER=$1 CTL=$2
HERE=$(cd "$(dirname "$0")" && pwd)
PROTO=$HERE/../../proto
if ! command -v protoc >/dev/null 2>&1 ||
    ! /usr/bin/python3 -c 'import grpc, google.protobuf' 2>/dev/null; then
    echo "SKIP: protoc, python3-grpcio or python3-protobuf missing (scripts/deps.sh installs them)"
    exit 77
fi
TMP=$(mktemp -d "${TMPDIR:-/tmp}/lookaside-py.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
protoc --python_out="$TMP" -I "$PROTO" "$PROTO/lookaside/v1/lookaside.proto"
PYTHONPATH="$TMP:$HERE/../python" PYTHONDONTWRITEBYTECODE=1 \
    /usr/bin/python3 "$HERE/reporter_it.py" --server "$SERVER" --ctl "$CTL" \
    --service py-reporter-it -- /usr/bin/python3 "$HERE/../python/example_backend.py"
