#!/usr/bin/env bash
# The live demo (the README's first command): installs missing packages,
# builds Release into build/release, then on 127.0.0.1 only, in about a
# minute:
#   - lookaside-server with an embedded SQLite file under build/demo/;
#   - backends b1, b2 (8 slots) and b3 (4 slots: half the capacity), each
#     request holding a slot for 20 ms, reporting their measured load;
#   - lookaside-demo-client at ~80 % of the total capacity, printing each
#     backend's share every second: the shares settle near 40/40/20;
#   - at ~20 s a fourth backend b4 (8 slots) starts and gets traffic within a
#     second (slow start ramps it up over 10 s);
#   - at ~35 s b2 is killed with SIGKILL: it leaves the picks, and the client
#     fails at most the calls that were in flight on it;
#   - lookasidectl (when built) shows the service and why each weight.
# Everything it starts is stopped by PID on exit (also on Ctrl-C).
#
# Environment: BUILD (default build/release), DEMO_DIR (default build/demo),
# DEMO_SKIP_BUILD=1 to use an existing build, DEMO_HTTP (default 127.0.0.1:0)
# for the status page's address; its URL is printed at the start.
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD=${BUILD:-build/release}
DEMO_DIR=${DEMO_DIR:-build/demo}
DEMO_HTTP=${DEMO_HTTP:-127.0.0.1:0}  # the status page and /metrics (port 0: any)
SERVICE=echo
SERVICE_MS=20                   # each request holds a slot this long
RATE=800                        # 80 % of (8 + 8 + 4) slots x 50 rps per slot
DURATION=50                     # seconds the client sends
T_SCALE_UP=20                   # when b4 starts (seconds into the client's run)
T_KILL=35                       # when b2 is SIGKILLed
T_CTL=42                        # when lookasidectl shows the service

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }
[ -t 1 ] || say() { printf '==> %s\n' "$*"; }

if [ "${DEMO_SKIP_BUILD:-0}" != 1 ]; then
    ./scripts/deps.sh
    say "building Release into $BUILD (-j2)"
    cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
    cmake --build "$BUILD" -j2 --target lookaside-server lookaside-demo-backend \
        lookaside-demo-client >/dev/null
    if ! cmake --build "$BUILD" -j2 --target lookasidectl >/dev/null 2>&1; then
        say "(lookasidectl did not build; the demo skips its step)"
    fi
fi
find_bin() { find "$BUILD" -type f -name "$1" -perm -u+x 2>/dev/null | head -n 1; }
SERVER_BIN=$(find_bin lookaside-server)
BACKEND_BIN=$(find_bin lookaside-demo-backend)
CLIENT_BIN=$(find_bin lookaside-demo-client)
CTL_BIN=$(find_bin lookasidectl)
for b in "$SERVER_BIN" "$BACKEND_BIN" "$CLIENT_BIN"; do
    if [ -z "$b" ]; then
        echo "demo: a program is missing under $BUILD (did the build fail?)" >&2
        exit 1
    fi
done

mkdir -p "$DEMO_DIR"
DB=$DEMO_DIR/lookaside.db
rm -f "$DB" "$DB-wal" "$DB-shm" "$DEMO_DIR"/*.log "$DEMO_DIR/client.csv"

# ------------------------------------------------------------ process control
PIDS=()          # everything started, in order; the server first
# term_wait PID...: SIGTERM, then at most 5 s for them to exit, then SIGKILL.
term_wait() {
    local p alive i
    for p in "$@"; do kill -TERM "$p" 2>/dev/null || true; done
    for ((i = 0; i < 50; i++)); do
        alive=0
        for p in "$@"; do kill -0 "$p" 2>/dev/null && alive=1; done
        [ "$alive" = 0 ] && break
        sleep 0.1
    done
    for p in "$@"; do kill -KILL "$p" 2>/dev/null || true; done
    for p in "$@"; do wait "$p" 2>/dev/null || true; done
}
stop_all() {
    trap - EXIT INT TERM
    [ "${#PIDS[@]}" = 0 ] && return
    # Backends and client first, so that the backends' drains reach the
    # balancer; then the balancer.
    if [ "${#PIDS[@]}" -gt 1 ]; then term_wait "${PIDS[@]:1}"; fi
    term_wait "${PIDS[0]}"
}
trap stop_all EXIT
trap 'echo; say "interrupted"; exit 130' INT TERM

# wait_line FILE REGEX TIMEOUT_S PID: prints the first line of FILE matching
# REGEX; fails when PID exits first or on timeout.
wait_line() {
    local i
    for ((i = 0; i < $3 * 10; i++)); do
        if grep -m 1 -E "$2" "$1" 2>/dev/null; then return 0; fi
        if ! kill -0 "$4" 2>/dev/null; then
            echo "demo: $(basename "$1" .log) exited before '$2':" >&2
            tail -n 20 "$1" >&2 || true
            return 1
        fi
        sleep 0.1
    done
    echo "demo: timed out waiting for '$2' in $1:" >&2
    tail -n 20 "$1" >&2 || true
    return 1
}

# --------------------------------------------------------------------- server
say "starting lookaside-server on 127.0.0.1 (database $DB)"
"$SERVER_BIN" --listen 127.0.0.1:0 --db "$DB" --http-listen "$DEMO_HTTP" \
    >"$DEMO_DIR/server.log" 2>&1 &
PIDS+=($!)
line=$(wait_line "$DEMO_DIR/server.log" "main: listening on 127\.0\.0\.1:[0-9]+" 10 "${PIDS[0]}")
LB_PORT=$(sed -E 's/.*listening on 127\.0\.0\.1:([0-9]+).*/\1/' <<<"$line")
LB=127.0.0.1:$LB_PORT
say "balancer listening on $LB"
line=$(wait_line "$DEMO_DIR/server.log" "http listening on [^ ]+:[0-9]+" 10 "${PIDS[0]}")
HTTP_URL=$(sed -E 's/.*\((https?:[^)]*)\).*/\1/' <<<"$line")
say "status page: $HTTP_URL   (metrics: ${HTTP_URL}metrics)"

# ------------------------------------------------------------------- backends
declare -A BPID BADDR
# start_backend NAME IP SLOTS: ephemeral port on its own loopback address.
start_backend() {
    local log=$DEMO_DIR/backend-$1.log line
    "$BACKEND_BIN" --listen "$2:0" --lb "$LB" --service "$SERVICE" --name "$1" \
        --slots "$3" --service-ms "$SERVICE_MS" >"$log" 2>&1 &
    BPID[$1]=$!
    PIDS+=($!)
    line=$(wait_line "$log" "listening on " 10 "${BPID[$1]}")
    BADDR[$1]=$(sed -E 's/.*listening on ([^ ]+).*/\1/' <<<"$line")
    wait_line "$log" "registered with" 10 "${BPID[$1]}" >/dev/null
}
say "starting backends b1, b2 (8 slots) and b3 (4 slots = half capacity), ${SERVICE_MS} ms per request"
start_backend b1 127.0.0.2 8
start_backend b2 127.0.0.3 8
start_backend b3 127.0.0.4 4
say "b1 ${BADDR[b1]}  b2 ${BADDR[b2]}  b3 ${BADDR[b3]}: capacity 400 + 400 + 200 = 1000 calls/s"

# --------------------------------------------------------------------- client
say "client: $RATE calls/s (80 % of capacity) for ${DURATION} s; each line is one second:"
say "  calls ended, errors, latency percentiles | each backend's share of the calls"
"$CLIENT_BIN" --lb "$LB" --service "$SERVICE" --rate "$RATE" --duration-s "$DURATION" \
    --concurrency 2000 --csv "$DEMO_DIR/client.csv" --max-fail-fraction 0.01 \
    > >(tee "$DEMO_DIR/client.log") 2>"$DEMO_DIR/client-stderr.log" &
CLIENT_PID=$!
PIDS+=($CLIENT_PID)
T0=$(date +%s.%N)

# sleep_until S: sleeps until S seconds after the client started.
sleep_until() {
    local left
    left=$(awk -v t0="$T0" -v s="$1" -v now="$(date +%s.%N)" 'BEGIN { d = t0 + s - now; print (d > 0 ? d : 0) }')
    sleep "$left"
}

sleep_until 10
say "t≈10s: the weights follow measured capacity: b3 (half the slots) gets about half of b1's share"

sleep_until "$T_SCALE_UP"
say "t≈${T_SCALE_UP}s: scale-up: starting b4 (8 slots); it registers and gets traffic within a second, ramping up over 10 s"
start_backend b4 127.0.0.5 8
say "b4 ${BADDR[b4]} registered; capacity is now 1400 calls/s"
if line=$(wait_line "$DEMO_DIR/backend-b4.log" "first call" 3 "${BPID[b4]}" 2>/dev/null); then
    say "b4: $(sed -E 's/.*backend: //' <<<"$line")"
fi

sleep_until "$T_KILL"
say "t≈${T_KILL}s: SIGKILL b2 (pid ${BPID[b2]}): only its in-flight calls may fail; picks move to b1, b3, b4"
kill -KILL "${BPID[b2]}"
wait "${BPID[b2]}" 2>/dev/null || true

if [ -n "$CTL_BIN" ]; then
    sleep_until "$T_CTL"
    say "t≈${T_CTL}s: lookasidectl --lb $LB show $SERVICE"
    "$CTL_BIN" --lb "$LB" show "$SERVICE" 2>&1 | sed 's/^/    /' || true
fi

rc=0
wait "$CLIENT_PID" || rc=$?
sleep 0.2   # let tee flush the summary
echo
if [ "$rc" = 0 ]; then
    say "client finished: $(grep -m 1 '^summary:' "$DEMO_DIR/client.log" | sed 's/^summary: //')"
else
    say "client exited with status $rc (see $DEMO_DIR/client.log and client-stderr.log)"
fi
say "logs, database and per-second CSV are in $DEMO_DIR/; stopping everything"
exit "$rc"
