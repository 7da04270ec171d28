# bench/lb/common.sh - process control for the side-by-side benchmarks
# (sourced by bench/run.sh; bash).
#
# Every process is started in the background with its PID recorded, and
# stopped by that PID: SIGTERM, a bounded wait, then SIGKILL. Nothing is ever
# signalled by name. Everything listens on 127.0.0.0/8 only.
#
# Needs: BUILD (the build tree), and sets SERVER_BIN BACKEND_BIN CLIENT_BIN.

LB_PIDS=()                 # every PID started and not yet reaped, in order

now_us() { local t=${EPOCHREALTIME/./}; echo "$t"; }   # CLOCK_REALTIME in us

log() { printf '[bench %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

find_bins() {
    SERVER_BIN=$BUILD/server/lookaside-server
    BACKEND_BIN=$BUILD/examples/lookaside-demo-backend
    CLIENT_BIN=$BUILD/examples/lookaside-demo-client
    local b
    for b in "$SERVER_BIN" "$BACKEND_BIN" "$CLIENT_BIN"; do
        [ -x "$b" ] || { log "missing $b (did the build fail?)"; return 1; }
    done
}

# proc_start LOG CMD...: starts CMD with stdout+stderr in LOG; sets PROC_PID.
proc_start() {
    local logf=$1
    shift
    "$@" >"$logf" 2>&1 </dev/null &
    PROC_PID=$!
    LB_PIDS+=("$PROC_PID")
}

_forget() {
    local p q keep=()
    for q in "${LB_PIDS[@]}"; do
        for p in "$@"; do [ "$q" = "$p" ] && continue 2; done
        keep+=("$q")
    done
    LB_PIDS=("${keep[@]}")
}

# proc_stop [-t TENTHS] PID...: SIGTERM, wait (default 5 s), SIGKILL, reap.
proc_stop() {
    local tenths=50 p i alive
    if [ "${1:-}" = -t ]; then tenths=$2; shift 2; fi
    [ $# -gt 0 ] || return 0
    for p in "$@"; do kill -TERM "$p" 2>/dev/null || true; done
    for ((i = 0; i < tenths; i++)); do
        alive=0
        for p in "$@"; do kill -0 "$p" 2>/dev/null && { alive=1; break; }; done
        [ "$alive" = 0 ] && break
        sleep 0.1
    done
    for p in "$@"; do kill -KILL "$p" 2>/dev/null || true; done
    for p in "$@"; do wait "$p" 2>/dev/null || true; done
    _forget "$@"
}

# proc_kill PID: SIGKILL now (the scale-down event), then reap.
proc_kill() {
    kill -KILL "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
    _forget "$1"
}

# stop_all: everything still running, newest first (clients before backends
# before the balancer and the DNS server).
stop_all() {
    local i
    for ((i = ${#LB_PIDS[@]} - 1; i >= 0; i--)); do
        proc_stop -t 30 "${LB_PIDS[i]}"
    done
    LB_PIDS=()
}

# wait_log FILE REGEX TIMEOUT_S [PID]: waits until FILE has a line matching
# REGEX; fails on timeout or when PID died.
wait_log() {
    local f=$1 re=$2 deadline=$(($(now_us) + $3 * 1000000)) pid=${4:-}
    while [ "$(now_us)" -lt "$deadline" ]; do
        grep -qE "$re" "$f" 2>/dev/null && return 0
        if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then return 1; fi
        sleep 0.02
    done
    return 1
}

# sleep_until US: sleeps until the realtime clock reaches US.
sleep_until() {
    local left=$(($1 - $(now_us)))
    [ "$left" -gt 0 ] && sleep "$(printf '%d.%06d' $((left / 1000000)) $((left % 1000000)))"
    return 0
}

# ------------------------------------------------------------ the balancer

# lb_start DIR: lookaside-server on 127.0.0.1:0 with DIR/lb.db; sets LB_ADDR
# and LB_PID.
lb_start() {
    local d=$1
    rm -f "$d/lb.db" "$d/lb.db-wal" "$d/lb.db-shm"
    proc_start "$d/lb.log" "$SERVER_BIN" --listen 127.0.0.1:0 --db "$d/lb.db"
    LB_PID=$PROC_PID
    wait_log "$d/lb.log" 'listening on 127\.0\.0\.1:[0-9]+' 10 "$LB_PID" ||
        { log "lookaside-server did not start (see $d/lb.log)"; return 1; }
    LB_ADDR=$(grep -oE 'listening on 127\.0\.0\.1:[0-9]+' "$d/lb.log" | head -n1 |
        sed 's/listening on //')
}

# ------------------------------------------------------------ DNS (dnsmasq)

# dns_start DIR: dnsmasq on 127.0.0.1, an ephemeral port, answering for
# *.test from DIR/hosts only; sets DNS_PORT, DNS_PID, DNS_HOSTS.
dns_start() {
    local d=$1 try port
    DNS_HOSTS=$d/hosts
    : >"$DNS_HOSTS"
    for try in 1 2 3 4 5 6 7 8; do
        port=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
        proc_start "$d/dns.log" /usr/sbin/dnsmasq --no-daemon --port="$port" \
            --listen-address=127.0.0.1 --bind-interfaces --no-resolv --no-hosts \
            --conf-file=/dev/null --log-facility=- --pid-file= --local=/test/ \
            --local-ttl=1 --addn-hosts="$DNS_HOSTS"
        DNS_PID=$PROC_PID
        if wait_log "$d/dns.log" "read $DNS_HOSTS" 5 "$DNS_PID" && sleep 0.1 &&
            kill -0 "$DNS_PID" 2>/dev/null; then
            DNS_PORT=$port
            return 0
        fi
        proc_stop -t 10 "$DNS_PID"
    done
    log "dnsmasq did not start (see $d/dns.log)"
    return 1
}

# dns_publish NAME IP...: the hosts file holds exactly these A records for
# NAME; dnsmasq rereads it on SIGHUP.
dns_publish() {
    local name=$1 ip
    shift
    for ip in "$@"; do printf '%s %s\n' "$ip" "$name"; done >"$DNS_HOSTS.new"
    mv -f "$DNS_HOSTS.new" "$DNS_HOSTS"
    kill -HUP "$DNS_PID"
}

# ------------------------------------------------------------ backends

# backend_start LOG IP PORT ARGS...: a demo backend on IP:PORT (PORT 0:
# ephemeral); waits until it listens; sets BE_PID and BE_PORT.
backend_start() {
    local logf=$1 ip=$2 port=$3
    shift 3
    proc_start "$logf" "$BACKEND_BIN" --listen "$ip:$port" "$@"
    BE_PID=$PROC_PID
    wait_log "$logf" "listening on ${ip//./\\.}:[0-9]+" 10 "$BE_PID" ||
        { log "backend on $ip:$port did not start (see $logf)"; return 1; }
    BE_PORT=$(grep -oE "listening on ${ip//./\\.}:[0-9]+" "$logf" | head -n1 | sed 's/.*://')
}

# backend_wait_registered LOG: until the backend's reporter is registered.
backend_wait_registered() {
    wait_log "$1" 'registered with' 10 || { log "no registration in $1"; return 1; }
}

# iso_to_us "2026-01-01T00:00:00.123Z" -> microseconds since the epoch.
iso_to_us() {
    local s
    s=$(date -u -d "$1" +%s%N) || return 1
    echo $((s / 1000))
}
