#!/usr/bin/env bash
# demo_smoke.sh SERVER BACKEND CLIENT
# Starts lookaside-server, two demo backends and the demo client (4 s of
# load) on 127.0.0.x; passes when both backends got calls, no call failed,
# and every process exits 0 on SIGTERM (sanitizer reports make that fail).
# Every process is stopped by PID; every wait is bounded.
# Extra flags per program (word-split; tests/security runs this same test
# over mTLS): LOOKASIDE_SMOKE_SERVER_ARGS, _BACKEND_ARGS, _CLIENT_ARGS.
set -euo pipefail
# shellcheck disable=SC2206
SERVER_ARGS=(${LOOKASIDE_SMOKE_SERVER_ARGS:-}) BACKEND_ARGS=(${LOOKASIDE_SMOKE_BACKEND_ARGS:-})
# shellcheck disable=SC2206
CLIENT_ARGS=(${LOOKASIDE_SMOKE_CLIENT_ARGS:-})
SERVER=$1 BACKEND=$2 CLIENT=$3
DIR=$(mktemp -d "${TMPDIR:-/tmp}/lookaside-demo-smoke.XXXXXX")
PIDS=()
fail() {
    echo "FAIL: $*" >&2
    for f in "$DIR"/*.log; do
        echo "---- $f" >&2
        tail -n 30 "$f" >&2 || true
    done
    exit 1
}
cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    rm -rf "$DIR"
}
trap cleanup EXIT

# wait_line FILE REGEX TIMEOUT_S PID
wait_line() {
    local i
    for ((i = 0; i < $3 * 10; i++)); do
        if grep -m 1 -E "$2" "$1" 2>/dev/null; then return 0; fi
        kill -0 "$4" 2>/dev/null || fail "$(basename "$1") exited before '$2'"
        sleep 0.1
    done
    fail "timed out waiting for '$2' in $(basename "$1")"
}

# stop PID NAME: SIGTERM, at most 10 s, expects exit status 0.
stop() {
    local i rc=0
    kill -TERM "$1" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
        kill -0 "$1" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$1" 2>/dev/null; then
        kill -KILL "$1" 2>/dev/null || true
        wait "$1" 2>/dev/null || true
        fail "$2 did not exit within 10 s of SIGTERM"
    fi
    wait "$1" || rc=$?
    [ "$rc" = 0 ] || fail "$2 exited with status $rc after SIGTERM"
}

"$SERVER" --listen 127.0.0.1:0 --db "$DIR/lb.db" ${SERVER_ARGS[@]+"${SERVER_ARGS[@]}"} \
    >"$DIR/server.log" 2>&1 &
SPID=$!
PIDS+=("$SPID")
line=$(wait_line "$DIR/server.log" "listening on 127\.0\.0\.1:[0-9]+" 15 "$SPID")
LB=127.0.0.1:$(sed -E 's/.*listening on 127\.0\.0\.1:([0-9]+).*/\1/' <<<"$line")

BPIDS=()
for i in 1 2; do
    "$BACKEND" --listen "127.0.0.$((i + 1)):0" --lb "$LB" --service smoke --name "b$i" \
        --slots 4 --service-ms 5 ${BACKEND_ARGS[@]+"${BACKEND_ARGS[@]}"} >"$DIR/b$i.log" 2>&1 &
    BPIDS+=($!)
    PIDS+=($!)
done
for i in 1 2; do
    wait_line "$DIR/b$i.log" "registered with" 15 "${BPIDS[$((i - 1))]}" >/dev/null
done

# 200 calls/s against 1600/s of capacity: nothing may fail.
rc=0
timeout 30 "$CLIENT" --lb "$LB" --service smoke --rate 200 --duration-s 4 \
    --max-fail-fraction 0 --csv "$DIR/client.csv" ${CLIENT_ARGS[@]+"${CLIENT_ARGS[@]}"} \
    >"$DIR/client.log" 2>&1 || rc=$?
[ "$rc" = 0 ] || fail "client exited with status $rc"
grep -q '^summary: .* 0 failed' "$DIR/client.log" || fail "calls failed"
for i in 1 2; do
    n=$(awk -v b="b$i" '$1 == b && $3 == "calls" { print $2 }' "$DIR/client.log")
    [ -n "$n" ] && [ "$n" -gt 0 ] || fail "b$i got no calls"
    echo "b$i: $n calls"
done
grep -q '^1,all,' "$DIR/client.csv" || fail "no CSV rows"

stop "${BPIDS[0]}" b1
stop "${BPIDS[1]}" b2
stop "$SPID" lookaside-server
echo "PASS"
