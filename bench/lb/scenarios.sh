# bench/lb/scenarios.sh - the side-by-side runs (sourced by bench/run.sh).
#
# Each run gets its own directory with the logs, the client's per-call trace
# (trace.csv: start_us,backend,address,status,latency_us) and events.txt
# (KEY=VALUE, realtime microseconds); bench/lb/analyze.sh turns these into
# facts. Two modes over the same demo programs:
#   lookaside  backends report to lookaside-server; the client picks through
#              liblookaside;
#   baseline   the setup lookaside replaces: backends with gRPC's
#              MaxConnectionAge, a dnsmasq serving the headless name's A
#              records, the client on one plain gRPC channel with round_robin
#              on dns://127.0.0.1:PORT/echo.test:PORT.
# Backends are 127.0.0.2, .3, ... all on one port, like pods behind a
# headless Service.
#
# Parameters (set by run.sh): AGE_MS, M_RATE, M_KILL_S, M_END_S, U_RATE,
# U_DUR_S, U_FROM_S, O_SECONDS, TIMEOUT_MS.

SERVICE=echo
DNS_NAME=echo.test
IPS=(127.0.0.2 127.0.0.3 127.0.0.4 127.0.0.5)

# _setup MODE DIR: the balancer (lookaside) or dnsmasq (baseline); sets
# MODE_ARGS, the backend flags of that mode.
_setup() {
    local mode=$1 d=$2
    if [ "$mode" = lookaside ]; then
        lb_start "$d" || return 1
        MODE_ARGS=(--lb "$LB_ADDR" --service "$SERVICE")
    else
        dns_start "$d" || return 1
        MODE_ARGS=(--max-connection-age-ms "$AGE_MS")
    fi
}

# _backends MODE DIR N SLOTS... -- ARGS: N backends (slots per backend),
# ARGS for all; sets PORT and BE_PIDS.
_backends() {
    local mode=$1 d=$2 n=$3 i port=0
    shift 3
    local slots=()
    while [ "$1" != -- ]; do slots+=("$1"); shift; done
    shift
    BE_PIDS=()
    for ((i = 0; i < n; i++)); do
        backend_start "$d/b$((i + 1)).log" "${IPS[i]}" "$port" --slots "${slots[i]}" \
            "${MODE_ARGS[@]}" "$@" || return 1
        port=$BE_PORT
        BE_PIDS+=("$BE_PID")
    done
    PORT=$port
    if [ "$mode" = lookaside ]; then
        for ((i = 0; i < n; i++)); do backend_wait_registered "$d/b$((i + 1)).log" || return 1; done
    else
        dns_publish "$DNS_NAME" "${IPS[@]:0:n}"
    fi
}

# _client MODE DIR ARGS...: the demo client in MODE; waits until it sends;
# sets CL_PID and T_SEND.
_client() {
    local mode=$1 d=$2
    shift 2
    local target=()
    if [ "$mode" = lookaside ]; then
        target=(--lb "$LB_ADDR" --service "$SERVICE")
    else
        target=(--mode roundrobin --target "dns://127.0.0.1:$DNS_PORT/$DNS_NAME:$PORT")
    fi
    proc_start "$d/client.log" "$CLIENT_BIN" "${target[@]}" --timeout-ms "$TIMEOUT_MS" \
        --max-fail-fraction 1 "$@"
    CL_PID=$PROC_PID
    wait_log "$d/client.log" '^sending ' 20 "$CL_PID" ||
        { log "the client did not start (see $d/client.log)"; return 1; }
    T_SEND=$(now_us)
}

# _client_wait DUR_S: until the client started by _client has sent for
# DUR_S and ended (at most 10 s more), then it is stopped.
_client_wait() {
    local i
    for ((i = 0; i < $1 * 10 + 100; i++)); do
        kill -0 "$CL_PID" 2>/dev/null || break
        sleep 0.1
    done
    proc_stop "$CL_PID"
}

# run_membership MODE DIR OFFSET_S: scale-up then scale-down. Three backends
# (8 slots x 10 ms each) take M_RATE calls/s; OFFSET_S after the client
# starts sending, a fourth backend starts (baseline: and its A record is
# published as soon as it listens); at M_KILL_S the second backend is
# SIGKILLed; at M_END_S the client stops.
run_membership() {
    local mode=$1 d=$2 offset=$3
    mkdir -p "$d"
    (
        set -e
        trap stop_all EXIT
        trap 'exit 130' INT TERM
        _setup "$mode" "$d"
        _backends "$mode" "$d" 3 8 8 8 -- --service-ms 10
        _client "$mode" "$d" --rate "$M_RATE" --duration-s $((M_END_S + 60)) \
            --concurrency 4000 --trace "$d/trace.csv" --csv "$d/client.csv"
        local t_up t_pub t_kill t_end b4 t_list=""
        sleep_until $((T_SEND + offset * 1000000))
        t_up=$(now_us)
        backend_start "$d/b4.log" "${IPS[3]}" "$PORT" --slots 8 --service-ms 10 "${MODE_ARGS[@]}"
        b4=$BE_PID
        t_pub=$(now_us)
        [ "$mode" = baseline ] && dns_publish "$DNS_NAME" "${IPS[@]:0:4}"
        sleep_until $((T_SEND + M_KILL_S * 1000000))
        t_kill=$(now_us)
        proc_kill "${BE_PIDS[1]}"
        sleep_until $((T_SEND + M_END_S * 1000000))
        t_end=$(now_us)
        proc_stop "$CL_PID"
        if [ "$mode" = lookaside ]; then
            # When the balancer registered the new backend (its log is in ms).
            local line
            line=$(grep -E " ${IPS[3]//./\\.}:$PORT registered" "$d/lb.log" | head -n1)
            [ -n "$line" ] && t_pub=$(iso_to_us "${line%% *}")
            # When the client had it in its list.
            line=$(grep -E "backend ${IPS[3]//./\\.}:$PORT added" "$d/client.log" | head -n1)
            [ -n "$line" ] && t_list=$(iso_to_us "${line%% *}")
        fi
        cat >"$d/events.txt" <<EOF
mode=$mode
t_send=$T_SEND
t_up=$t_up
t_pub=$t_pub
t_list=$t_list
t_kill=$t_kill
t_end=$t_end
addr_new=${IPS[3]}:$PORT
addr_killed=${IPS[1]}:$PORT
addrs=${IPS[0]}:$PORT ${IPS[1]}:$PORT ${IPS[2]}:$PORT ${IPS[3]}:$PORT
EOF
    )
}

# _demo_start MODE DIR DUR_S [BACKEND_ARGS...]: the demo's backends (8, 8
# and 4 slots of 20 ms) and the client sending U_RATE calls/s for DUR_S with
# a per-call trace.
_demo_start() {
    local mode=$1 d=$2 dur=$3
    shift 3
    _setup "$mode" "$d"
    _backends "$mode" "$d" 3 8 8 4 -- --service-ms 20 "$@"
    _client "$mode" "$d" --rate "$U_RATE" --duration-s "$dur" --concurrency 8000 \
        --trace "$d/trace.csv" --csv "$d/client.csv"
}

# run_uneven MODE DIR: three backends with 8, 8 and 4 slots of 20 ms (400,
# 400 and 200 calls/s: the third has half the capacity) under U_RATE calls/s
# (80 % of the total) for U_DUR_S; figures come from U_FROM_S on.
run_uneven() {
    local mode=$1 d=$2
    mkdir -p "$d"
    (
        set -e
        trap stop_all EXIT
        trap 'exit 130' INT TERM
        _demo_start "$mode" "$d" "$U_DUR_S"
        _client_wait "$U_DUR_S"
        cat >"$d/events.txt" <<EOF
mode=$mode
t_send=$T_SEND
addrs=${IPS[0]}:$PORT ${IPS[1]}:$PORT ${IPS[2]}:$PORT
capacity=400 400 200
EOF
    )
}

# run_overhead DIR REPEATS: the same three backends (no simulated capacity:
# they reply at once; they report to the balancer) called through
# liblookaside and through a plain round_robin channel on DNS, alternately:
#   qps  closed loop, 32 calls in flight: calls completed per second;
#   p50  open loop at 1000 calls/s: median latency.
run_overhead() {
    local d=$1 reps=$2
    mkdir -p "$d"
    (
        set -e
        trap stop_all EXIT
        trap 'exit 130' INT TERM
        lb_start "$d"
        local lb_mode_args=(--lb "$LB_ADDR" --service "$SERVICE")
        dns_start "$d"
        MODE_ARGS=("${lb_mode_args[@]}")
        _backends lookaside "$d" 3 64 64 64 -- --service-ms 0
        dns_publish "$DNS_NAME" "${IPS[@]:0:3}"
        local r kind mode
        for ((r = 1; r <= reps; r++)); do
            for kind in qps p50; do
                for mode in lookaside baseline; do
                    local rd=$d/$kind.$mode.$r args
                    mkdir -p "$rd"
                    if [ "$kind" = qps ]; then
                        args=(--rate 60000 --concurrency 32)
                    else
                        args=(--rate 1000 --concurrency 1000)
                    fi
                    _client "$mode" "$rd" "${args[@]}" --duration-s "$O_SECONDS" --quiet \
                        --csv "$rd/client.csv"
                    while kill -0 "$CL_PID" 2>/dev/null; do sleep 0.1; done
                    proc_stop "$CL_PID"
                done
            done
        done
    )
}

# run_coldstart MODE DIR: the demo scenario from its first second. Backends
# as in run_uneven (8, 8 and 4 slots of 20 ms); the client starts sending
# U_RATE calls/s as soon as the backends are registered (lookaside: weights
# not yet known, every backend brand new) or published in DNS (baseline),
# for C_DUR_S; at C_SLOW_S backend 1 turns slow (SIGUSR1: its service time
# becomes C_SLOW_MS, its capacity 8 / C_SLOW_MS).
run_coldstart() {
    local mode=$1 d=$2
    mkdir -p "$d"
    (
        set -e
        trap stop_all EXIT
        trap 'exit 130' INT TERM
        _demo_start "$mode" "$d" "$C_DUR_S" --slow-service-ms "$C_SLOW_MS"
        local t_slow
        sleep_until $((T_SEND + C_SLOW_S * 1000000))
        t_slow=$(now_us)
        kill -USR1 "${BE_PIDS[0]}"
        _client_wait "$C_DUR_S"
        cat >"$d/events.txt" <<EOT
mode=$mode
t_send=$T_SEND
t_slow=$t_slow
addrs=${IPS[0]}:$PORT ${IPS[1]}:$PORT ${IPS[2]}:$PORT
EOT
    )
}
