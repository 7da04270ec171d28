#!/bin/sh
# with_server.sh SERVER CMD [ARGS...]
# Starts lookaside-server on 127.0.0.1 (ephemeral port, database in a
# temporary directory), runs CMD ARGS... HOST:PORT, then stops the server by
# its PID with SIGTERM. Passes when CMD exits 0 and the server exits 0
# (sanitizer reports at exit make it fail). Every wait is bounded.
set -eu
SERVER=$1
shift
TMP=$(mktemp -d "${TMPDIR:-/tmp}/lookaside-pkg.XXXXXX")
SPID=""
cleanup() {
    if [ -n "$SPID" ] && kill -0 "$SPID" 2>/dev/null; then
        kill -KILL "$SPID" 2>/dev/null || true
        wait "$SPID" 2>/dev/null || true
    fi
    rm -rf "$TMP"
}
trap cleanup EXIT
die() {
    echo "FAIL: $*"
    echo "---- server log"
    tail -n 40 "$TMP/server.log" || true
    exit 1
}

"$SERVER" --listen 127.0.0.1:0 --db "$TMP/lb.db" >"$TMP/server.log" 2>&1 &
SPID=$!
port=""
n=0
while [ -z "$port" ] && [ $n -lt 200 ]; do # at most ~20 s
    port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p' "$TMP/server.log" | head -n 1)
    if [ -z "$port" ]; then
        kill -0 "$SPID" 2>/dev/null || die "lookaside-server exited at start"
        sleep 0.1
    fi
    n=$((n + 1))
done
[ -n "$port" ] || die "lookaside-server did not report its port within 20 s"

rc=0
"$@" "127.0.0.1:$port" || rc=$?

kill -TERM "$SPID"
n=0
while kill -0 "$SPID" 2>/dev/null && [ $n -lt 150 ]; do # at most ~15 s
    sleep 0.1
    n=$((n + 1))
done
kill -0 "$SPID" 2>/dev/null && die "lookaside-server still running 15 s after SIGTERM"
src=0
wait "$SPID" || src=$?
SPID=""
[ "$src" -eq 0 ] || die "lookaside-server exited with status $src"
[ "$rc" -eq 0 ] || die "$1 exited with status $rc"
echo "with_server: ok"
