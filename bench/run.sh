#!/usr/bin/env bash
# bench/run.sh - every benchmark in one command; writes BENCHMARKS.md and the
# charts in bench/charts/.
#
#   bench/run.sh            the full run (about 20 minutes on 2 cores)
#   bench/run.sh --quick    one round of everything, shorter (about 4 minutes)
#
# It installs missing packages (scripts/deps.sh, gnuplot-nox), builds
# Release into build/bench (-j2), then on 127.0.0.0/8 only:
#   - lookaside against the setup it replaces (demo backends with gRPC's
#     MaxConnectionAge, dnsmasq serving the headless name's A records, the
#     demo client on a plain round_robin channel on dns://): scale-up,
#     scale-down, uneven capacity, cold start with a backend turning slow,
#     client overhead (bench/lb/*.sh);
#   - bench_pick, bench_server and bench_storage; bench_server again with
#     mTLS beside plaintext (certificates from tests/security/gen_certs.sh);
#     bench_replica (three servers on a real etcd, skipped without etcd).
# Each figure is the median of repeated runs with its min–max; timings that
# depend on the machine are also given as ratios to the baseline of the same
# round. Every process is started and stopped by its PID.
#
# Options: --quick; --no-build (use the existing build); --build DIR;
# --only LIST (comma-separated: micro, membership, uneven, coldstart, overhead; for
# development: BENCHMARKS.md then holds only those); --out FILE (instead of
# BENCHMARKS.md).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

QUICK=0 BUILD_IT=1 BUILD=build/bench ONLY=micro,membership,uneven,coldstart,overhead OUT=BENCHMARKS.md
while [ $# -gt 0 ]; do
    case $1 in
    --quick) QUICK=1 ;;
    --no-build) BUILD_IT=0 ;;
    --build) BUILD=$2; shift ;;
    --only) ONLY=$2; shift ;;
    --out) OUT=$2; shift ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench/run.sh: unknown option $1 (try --help)" >&2; exit 2 ;;
    esac
    shift
done
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
SHOW_BUILD=${BUILD#"$ROOT"/}
want() { case ",$ONLY," in *",$1,"*) return 0 ;; esac; return 1; }

. bench/lb/common.sh
. bench/lb/scenarios.sh
. bench/lb/analyze.sh
. bench/lb/report.sh

T_START=$(now_us)
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

# ------------------------------------------------------------ parameters
if [ "$QUICK" = 1 ]; then
    REPS=1              # rounds of each side-by-side scenario
    MICRO_REPS=1        # runs of each bench_* program
    M_KILL_S=37 M_END_S=41
    U_DUR_S=16 U_FROM_S=8
    C_DUR_S=16 C_FROM_S=5 C_SLOW_S=10
    O_SECONDS=4
else
    REPS=3
    MICRO_REPS=3
    M_KILL_S=40 M_END_S=45
    U_DUR_S=25 U_FROM_S=10
    C_DUR_S=30 C_FROM_S=8 C_SLOW_S=18
    O_SECONDS=6
fi
AGE_MS=20000            # the baseline backends' MaxConnectionAge
M_RATE=1000             # calls/s in the scale-up/down runs (capacity 3 x 800)
U_RATE=800              # 80 % of 400 + 400 + 200
C_SLOW_MS=30            # cold start: backend 1's service time once slow (20 ms before)
TIMEOUT_MS=2000         # every call's deadline
# The fourth backend starts at a different point of the baseline's 30 s
# re-resolution cycle in each round: 3 s + (i + 1/2) x 24 s / REPS.
offset() { echo $((3 + (2 * $1 + 1) * 12 / REPS)); }
CHART_ROUND=$((REPS / 2))

# ------------------------------------------------------------ deps, build
if [ "$BUILD_IT" = 1 ]; then
    ./scripts/deps.sh
    if ! command -v gnuplot >/dev/null; then
        SUDO=""
        [ "$(id -u)" = 0 ] || SUDO=sudo
        log "installing gnuplot-nox"
        $SUDO apt-get update -q
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends gnuplot-nox
    fi
    log "building Release into $BUILD (-j2)"
    cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DLOOKASIDE_TESTS=OFF >/dev/null
    cmake --build "$BUILD" -j2 --target lookaside-server lookaside-demo-backend \
        lookaside-demo-client bench_server bench_storage bench_pick bench_replica >/dev/null
fi
find_bins
"$CLIENT_BIN" --help | grep -q -- '--trace' ||
    { log "$CLIENT_BIN has no --trace (needed for per-call timings)"; exit 1; }

RUN=$BUILD/run
rm -rf "$RUN"
# Charts go to bench/charts/ only with BENCHMARKS.md; a trial run (--out
# elsewhere) keeps them in its run directory.
CHARTS=bench/charts
[ "$OUT" = BENCHMARKS.md ] || CHARTS=$RUN/charts
mkdir -p "$RUN" "$CHARTS"
trap stop_all EXIT
trap 'exit 130' INT TERM

# ------------------------------------------------------------ micro benchmarks
if want micro; then
    for ((i = 1; i <= MICRO_REPS; i++)); do
        d=$RUN/micro.$i
        mkdir -p "$d"
        log "bench_pick, bench_storage, bench_server (run $i of $MICRO_REPS)"
        q=()
        [ "$QUICK" = 1 ] && q=(--quick)
        "$BUILD/bench/bench_pick" "$d/results.txt" >"$d/pick.log" 2>&1 ||
            log "bench_pick failed (see $d/pick.log)"
        "$BUILD/bench/bench_storage" --out "$d/results.txt" >"$d/storage.log" 2>&1 ||
            log "bench_storage failed (see $d/storage.log)"
        "$BUILD/bench/bench_server" "${q[@]}" --out "$d/results.txt" >"$d/server.log" 2>&1 ||
            log "bench_server failed (see $d/server.log)"
        if [ "$i" = 1 ]; then
            # Once: each alternates its own rounds inside the run.
            log "bench_server --tls-compare (mTLS beside plaintext), bench_replica (etcd)"
            if sh tests/security/gen_certs.sh "$RUN/certs" >"$d/certs.log" 2>&1; then
                "$BUILD/bench/bench_server" --tls-compare "$RUN/certs" --out "$d/results.txt" \
                    >"$d/tls.log" 2>&1 || log "bench_server --tls-compare failed (see $d/tls.log)"
            else
                log "certificates for --tls-compare not made (see $d/certs.log)"
            fi
            "$BUILD/bench/bench_replica" "${q[@]}" --out "$d/results.txt" >"$d/replica.log" 2>&1 ||
                log "bench_replica failed (see $d/replica.log)"
        fi
        bench_facts "$d/results.txt" >"$d/facts"
    done
fi

# ------------------------------------------------------------ side by side
# Runs of one round alternate lookaside and the baseline so that both see the
# same machine.
if want membership; then
    for ((i = 0; i < REPS; i++)); do
        off=$(offset "$i")
        for mode in lookaside baseline; do
            d=$RUN/membership.$mode.$i
            log "scale-up/down, $mode, round $((i + 1)) of $REPS (new backend at $off s, kill at $M_KILL_S s)"
            if run_membership "$mode" "$d" "$off"; then
                analyze_membership "$d"
            else
                log "run failed: $d"
            fi
        done
        for f in first_rpc publish_to_first_rpc; do
            pair_ratio "$RUN/membership.lookaside.$i/facts" "ratio.membership.$f" \
                "membership.lookaside.${f}_ms" "$RUN/membership.lookaside.$i/facts" \
                "membership.baseline.${f}_ms" "$RUN/membership.baseline.$i/facts"
        done
    done
fi

# side_by_side KIND LABEL ARGS...: REPS rounds of run_KIND, lookaside then
# the baseline in each, every run analyzed by analyze_KIND DIR ARGS....
side_by_side() {
    local kind=$1 label=$2 i mode d
    shift 2
    for ((i = 0; i < REPS; i++)); do
        for mode in lookaside baseline; do
            d=$RUN/$kind.$mode.$i
            log "$label, $mode, round $((i + 1)) of $REPS"
            if "run_$kind" "$mode" "$d"; then
                "analyze_$kind" "$d" "$@"
            else
                log "run failed: $d"
            fi
        done
    done
}

# same_round KIND NAME KEY: the ratio NAME of KEY, lookaside over the
# baseline, for each round of KIND.
same_round() {
    local i
    for ((i = 0; i < REPS; i++)); do
        pair_ratio "$RUN/$1.lookaside.$i/facts" "$2" "$1.lookaside.$3" \
            "$RUN/$1.lookaside.$i/facts" "$1.baseline.$3" "$RUN/$1.baseline.$i/facts"
    done
}

if want uneven; then
    side_by_side uneven "uneven capacity" "$U_FROM_S" "$U_DUR_S"
    same_round uneven ratio.uneven.p50 p50_ms
    same_round uneven ratio.uneven.p99 p99_ms
fi

if want coldstart; then
    side_by_side coldstart "cold start and a slow backend (slow at $C_SLOW_S s)" \
        "$C_DUR_S" "$C_SLOW_S" "$C_FROM_S"
    same_round coldstart ratio.coldstart.worst_second_p99 worst_second_p99_ms
fi

if want overhead; then
    log "overhead: liblookaside against a plain round_robin channel, $REPS rounds"
    if run_overhead "$RUN/overhead" "$REPS"; then
        analyze_overhead "$RUN/overhead" "$REPS"
    else
        log "run failed: $RUN/overhead"
    fi
fi

# ------------------------------------------------------------ charts
chart_note=""
if want membership && [ -s "$RUN/membership.lookaside.$CHART_ROUND/series.dat" ] &&
    [ -s "$RUN/membership.baseline.$CHART_ROUND/series.dat" ]; then
    s_lk=$RUN/membership.lookaside.$CHART_ROUND/series.dat
    s_bl=$RUN/membership.baseline.$CHART_ROUND/series.dat
    evs() { sed -n "1s/.*$1 \([0-9.]*\).*/\1/p" "$2"; }
    gnuplot -e "lk='$s_lk'; bl='$s_bl'; out='$CHARTS/scaleup.png'; \
        up_lk=$(evs up "$s_lk"); kill_lk=$(evs kill "$s_lk"); up_bl=$(evs up "$s_bl"); \
        kill_bl=$(evs kill "$s_bl"); age=$((AGE_MS / 1000)); rate=$M_RATE" bench/plot/scaleup.gp ||
        chart_note="$chart_note (scale-up chart failed)"
fi
if want uneven && [ -s "$RUN/uneven.lookaside.$CHART_ROUND/series.dat" ] &&
    [ -s "$RUN/uneven.baseline.$CHART_ROUND/series.dat" ]; then
    gnuplot -e "lk='$RUN/uneven.lookaside.$CHART_ROUND/series.dat'; \
        bl='$RUN/uneven.baseline.$CHART_ROUND/series.dat'; out='$CHARTS/uneven.png'; \
        from=$U_FROM_S; rate=$U_RATE; age=$((AGE_MS / 1000))" bench/plot/uneven.gp ||
        chart_note="$chart_note (uneven-capacity chart failed)"
fi

if want coldstart && [ -s "$RUN/coldstart.lookaside.$CHART_ROUND/series.dat" ] &&
    [ -s "$RUN/coldstart.baseline.$CHART_ROUND/series.dat" ]; then
    gnuplot -e "lk='$RUN/coldstart.lookaside.$CHART_ROUND/series.dat'; \
        bl='$RUN/coldstart.baseline.$CHART_ROUND/series.dat'; out='$CHARTS/coldstart.png'; \
        slow=$C_SLOW_S; slowms=$C_SLOW_MS" bench/plot/coldstart.gp ||
        chart_note="$chart_note (cold-start chart failed)"
fi

# ------------------------------------------------------------ BENCHMARKS.md
mapfile -t FACTS < <(find "$RUN" -name facts -type f | sort)
aggregate "${FACTS[@]}" >"$RUN/aggregate.txt"
NOT_MET=$RUN/not_met.txt
: >"$NOT_MET"
TABLE=$(write_table "$RUN/aggregate.txt")
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
ELAPSED=$((($(now_us) - T_START) / 1000000))
CPU=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)
GRPC_VERSION=$(pkg-config --modversion grpc 2>/dev/null || echo "?")
fig() { awk -v k="$1" '$1 == k { print $2 }' "$RUN/aggregate.txt"; }

{
    cat <<EOF
# Benchmarks

Generated by \`bench/run.sh$([ "$QUICK" = 1 ] && echo " --quick")\` — do not edit by hand; run it again.
lookaside is measured side by side with **the setup it replaces**: a headless
name in DNS, gRPC's \`round_robin\` policy on \`dns:///name:port\`, and a server
\`MaxConnectionAge\` to force re-resolution (the *baseline* column).

## Machine and run

| | |
|---|---|
| date (UTC) | $(date -u '+%Y-%m-%d %H:%M') |
| CPU | $CPU, $(nproc) cores online |
| kernel | $(uname -r) |
| gRPC core | $GRPC_VERSION (Debian) |
| load average (1, 5, 15 min) | before $LOAD_BEFORE, after $LOAD_AFTER — the machine is shared with other work, so timings are noisy; compare the ratios |
| duration | ${ELAPSED} s (build included) |
| commit | $(git rev-parse --short HEAD 2>/dev/null || echo "?")$(git diff --quiet HEAD -- 2>/dev/null || echo " + uncommitted changes") |

## Parameters

- Rounds: **$REPS** of each side-by-side scenario (lookaside and the baseline
  alternate within a round); **$MICRO_REPS** run(s) of each \`bench_*\` program.
  Every figure is the median over rounds with the min–max in brackets; the
  ratio column is the median of the per-round lookaside ÷ baseline ratios.
- Baseline: demo backends with \`--max-connection-age-ms $AGE_MS\` (gRPC
  \`grpc.max_connection_age_ms\`, **MaxConnectionAge $((AGE_MS / 1000)) s**; production
  setups often use 5 min), \`dnsmasq\` on 127.0.0.1 (ephemeral port) answering
  \`echo.test\` with one A record per backend (127.0.0.2, .3, …; all backends on
  one port), reloaded by SIGHUP when a backend is added; the demo client in
  \`--mode roundrobin\` on \`dns://127.0.0.1:PORT/echo.test:PORT\`. gRPC core
  ${GRPC_VERSION}'s DNS resolver re-resolves only when a connection closes, and
  at most every 30 s (\`grpc.dns_min_time_between_resolutions_ms\`), so the
  baseline learns of new backends at most every max(MaxConnectionAge, 30 s).
- lookaside: the same demo backends reporting their measured load to one
  \`lookaside-server\` (default flags, fresh SQLite file), the demo client
  picking through liblookaside.
- Scale-up / scale-down: three backends (8 slots × 10 ms: 800 calls/s each)
  under **$M_RATE calls/s**; a fourth starts at $(for ((i = 0; i < REPS; i++)); do printf '%s s ' "$(offset "$i")"; done)into
  the client's run (one value per round: different points of the baseline's
  re-resolution cycle; the baseline publishes its A record as soon as it
  listens); backend 2 is SIGKILLed at $M_KILL_S s; the client stops at $M_END_S s.
- Uneven capacity: backends with 8, 8 and 4 slots × 20 ms (400, 400 and 200
  calls/s) under **$U_RATE calls/s** (80 % of the total) for $U_DUR_S s; the
  figures cover seconds $U_FROM_S–$U_DUR_S (after lookaside's weights settle).
  Latency percentiles count every call sent in the window, a failed call at
  the time it took to fail.
- Cold start and a backend turning slow: the same three backends and rate,
  but the client starts sending as soon as the backends are registered
  (lookaside: brand-new backends, no load reported yet) or published in DNS
  (baseline), for $C_DUR_S s; at $C_SLOW_S s backend 1's service time goes from 20 to
  $C_SLOW_MS ms (SIGUSR1 to the demo backend: capacity 400 → $((8000 / C_SLOW_MS)) calls/s).
  Per-second p99 of the calls started in each second (second 0 = the first
  call); steady state = the calls started in seconds $C_FROM_S–$C_SLOW_S (before the
  slowdown); the ratios are the worst second's p99 ÷ that steady p99, over
  the cold start (seconds 0–$C_FROM_S), after the slowdown, and over the whole run.
- Overhead: three backends that reply at once (\`--service-ms 0\`), registered
  with the balancer, called through liblookaside and through a plain
  round_robin channel (DNS, as above) alternately, $O_SECONDS s each: calls/s with
  32 calls in flight (closed loop), and the median latency at 1000 calls/s
  (seconds 2–$O_SECONDS of each run).
- mTLS against plaintext (\`bench_server --tls-compare\`, once): the same
  server and bench client with a CA, server and client certificates from
  \`tests/security/gen_certs.sh\` (client certificates required, a policy file
  granting the bench's identity), against the plaintext server; three
  alternations of each mode, the 1,000-watcher push and the reports phase in
  each, the ratios over the means.
- Replicas (\`bench_replica\`, once): a one-member etcd from Debian on
  127.0.0.1 and three \`lookaside-server --etcd\` replicas (A, B, C) beside one
  server on SQLite; registrations at A timed to the list at a watcher of C;
  1,000 backends reporting once a second at steady load while etcd's writes
  are counted; push rounds with N watchers on each replica (a change at A)
  alternating with N watchers on the single server. Skipped when etcd is not
  installed.
- Every call has a $TIMEOUT_MS ms deadline. Everything runs on 127.0.0.0/8;
  clients, backends, balancer and DNS share the machine's $(nproc) cores.

## Results

$TABLE

Micro-benchmarks (\`bench_pick\`, \`bench_server\`, \`bench_storage\`,
\`bench_replica\`) have no
baseline column: they measure lookaside's own parts. Their raw result lines
are in \`$SHOW_BUILD/run/micro.*/results.txt\`$([ "$QUICK" = 1 ] && echo "; with \`--quick\`, \`bench_server\` skips 10,000 watchers and stores 2,000 backends instead of 10,000, and \`bench_replica\` pushes to 2,000 watchers per replica instead of 10,000").

## Goals not met

EOF
    if [ -s "$NOT_MET" ]; then cat "$NOT_MET"; else echo "None: every goal in the table is met."; fi
    cat <<EOF

## Charts

Scale-up and scale-down (round $((CHART_ROUND + 1)); the new backend b4 starts at the
left dashed line, b2 is SIGKILLed at the right one):

![scale-up and scale-down: share per backend over time, lookaside beside the baseline](${CHARTS#"$ROOT"/}/scaleup.png)

Uneven capacity (round $((CHART_ROUND + 1)); dashed lines: the capacity shares 40/40/20 %):

![uneven capacity: share per backend and p99 latency over time, lookaside beside the baseline](${CHARTS#"$ROOT"/}/uneven.png)

Cold start and a slow backend (round $((CHART_ROUND + 1)); backend 1 turns slow at the dashed line):

![cold start and a slow backend: per-second p99 latency and backend 1's share, lookaside beside the baseline](${CHARTS#"$ROOT"/}/coldstart.png)
$([ -n "$chart_note" ] && echo "
Note:$chart_note.")

## How each figure is measured

- The demo client writes one line per call (\`--trace\`: start time on the
  realtime clock, backend, address, status, latency); the script notes the
  realtime of each event (backend started, A record published, SIGKILL), and
  lookaside-server's log gives the time it registered a backend.
  \`bench/lb/analyze.sh\` computes the figures from these.
- *New backend start → first RPC*: from just before exec of the new backend to
  the start of the first call sent to its address. *Registered → first RPC*:
  from the balancer's log line (ms resolution) for lookaside, from the
  SIGHUP that published the A record for the baseline.
- *Share*: calls sent to that address ÷ all calls started in the window.
- *Calls failed when killed*: calls that ended with an error at or after the
  SIGKILL; *in flight*: calls to that backend started before and ended after
  it; *last call*: the latest call start to its address after the SIGKILL (0
  when none). The kernel closes a killed process's sockets a few ms after
  the signal, so the client cannot know before then: *the connection
  breaks* when the first call on it fails (as the client sees it); calls
  *in flight when it broke* started before that and ended at or after it;
  *break → last call* is the latest call start to its address after the
  break (0 when none).
- Raw data of the last run: \`$SHOW_BUILD/run/\` (logs, traces, per-run facts,
  \`aggregate.txt\`).
EOF
} >"$OUT"

log "wrote $OUT in ${ELAPSED} s"
if [ -s "$NOT_MET" ]; then
    log "goals not met:"
    cat "$NOT_MET" >&2
fi
