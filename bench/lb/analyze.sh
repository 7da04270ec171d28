# bench/lb/analyze.sh - turns one run's trace and events into facts ("KEY
# VALUE" lines in DIR/facts) and a per-second series for the charts
# (DIR/series.dat). Sourced by bench/run.sh; awk is whatever /usr/bin/awk is
# (mawk on Debian), so: no asort, big integers printed with %.0f.
#
# trace.csv (from lookaside-demo-client --trace): start_us,backend,address,
# status,latency_us per call. Latencies count every call, a failed one at the
# time it took to fail (a deadline counts as the deadline). Membership shares
# count calls by the address they went to, failed ones included. Uneven-
# capacity shares count the calls each backend answered: a round_robin call
# that times out in a backend's queue has no peer address yet (gRPC learns
# it from the reply's headers), so failed calls are counted on their own.

_events() { # _events DIR: loads events.txt into EV_* variables
    local k v
    while IFS='=' read -r k v; do
        [ -n "$k" ] && printf -v "EV_$k" '%s' "$v"
    done <"$1/events.txt"
}

# analyze_membership DIR
analyze_membership() {
    local d=$1
    _events "$d"
    local m=membership.$EV_mode
    awk -F, -v t0="$EV_t_send" -v up="$EV_t_up" -v pub="$EV_t_pub" -v kill="$EV_t_kill" \
        -v end="$EV_t_end" -v anew="$EV_addr_new" -v akill="$EV_addr_killed" \
        -v addrs="$EV_addrs" -v m="$m" -v series="$d/series.dat" -v tlist="${EV_t_list:-}" '
    BEGIN { n = split(addrs, A, " "); for (i = 1; i <= n; i++) idx[A[i]] = i
            first = -1; lastk = -1; maxb = -1 }
    $1 == "start_us" { next }
    {
        s = $1 + 0; a = $3; st = $4 + 0; e = s + $5
        if (s > end) next
        if (a == anew && (first < 0 || s < first)) first = s
        if (a == akill && s > lastk) lastk = s
        if (e >= kill && st != 0) failk++
        # In flight on the killed backend: a round_robin call that fails
        # before the reply headers has no peer address yet; no call fails
        # before the kill, so an unattributed failure then is one of these.
        if ((a == akill || (st != 0 && !(a in idx))) && s < kill && e >= kill) infl++
        if (e < kill && st != 0) failpre++
        # Calls on the killed backend around the kill, for the break figures.
        if ((a == akill || (st != 0 && !(a in idx))) && e >= kill) {
            nk++; KS[nk] = s; KE[nk] = e; KF[nk] = st != 0; KA[nk] = a == akill
            if (st != 0 && (brk == "" || e < brk)) brk = e
        }
        k = int((s - t0) / 100000)          # 100 ms buckets for windows
        if (k >= 0) { call[k]++; if (a == anew) cnew[k]++; if (k > maxk) maxk = k }
        b = int((s - t0) / 1000000)         # 1 s buckets for the chart
        if (b >= 0) { cnt[b]++; if (a in idx) per[b, idx[a]]++; if (b > maxb) maxb = b }
    }
    function share(from, to,   k, t, x) {  # new backend share in [from, to) us, %
        if (to > kill) to = kill
        for (k = int((from - t0) / 100000); k < int((to - t0) / 100000); k++) {
            t += call[k]; x += cnew[k]
        }
        return t ? 100 * x / t : 0
    }
    END {
        if (first < 0) {
            printf "%s.first_rpc_ms %.1f\n", m, (end - up) / 1000
            printf "%s.first_rpc_censored 1\n", m
            printf "%s.publish_to_first_rpc_ms %.1f\n", m, (end - pub) / 1000
        } else {
            printf "%s.first_rpc_ms %.1f\n", m, (first - up) / 1000
            printf "%s.publish_to_first_rpc_ms %.1f\n", m, (first - pub) / 1000
            printf "%s.new_share_5s_after_first_pct %.1f\n", m, share(first, first + 5e6)
        }
        if (tlist != "") printf "%s.publish_to_list_ms %.1f\n", m, (tlist - pub) / 1000
        printf "%s.new_share_10s_after_start_pct %.1f\n", m, share(up, up + 10e6)
        printf "%s.kill_failed_calls %d\n", m, failk
        printf "%s.kill_inflight_calls %d\n", m, infl
        printf "%s.kill_last_call_ms %.1f\n", m, (lastk > kill ? (lastk - kill) / 1000 : 0)
        printf "%s.errors_before_kill %d\n", m, failpre
        # The client sees the connection break when the first call on it
        # fails: calls sent before that cannot have known (the kernel closes
        # a killed process sockets some time after the signal).
        if (brk != "") {
            ib = 0; fb = 0; lb = -1
            for (i = 1; i <= nk; i++) {
                if (KS[i] < brk) { ib += KE[i] >= brk; fb += KF[i] }
                else if (KA[i] && KS[i] - brk > lb) lb = KS[i] - brk
            }
            printf "%s.kill_to_break_ms %.1f\n", m, (brk - kill) / 1000
            printf "%s.kill_inflight_at_break_calls %d\n", m, ib
            printf "%s.kill_failed_beyond_break_calls %d\n", m, failk - fb
            printf "%s.kill_last_call_after_break_ms %.1f\n", m, (lb > 0 ? lb / 1000 : 0)
        }
        printf "# t_s share_b1 share_b2 share_b3 share_b4 calls (up %.3f kill %.3f)\n",
            (up - t0) / 1e6, (kill - t0) / 1e6 > series
        # One row per second [t, t + 1); the last row repeats the one before
        # at its end so that "steps" draws the whole of the last second.
        for (b = 0; b <= maxb; b++) {
            if ((b + 1) * 1e6 > end - t0) break       # the last, partial second
            line = ""
            for (i = 1; i <= 4; i++)
                line = line sprintf(" %.2f", cnt[b] ? 100 * per[b, i] / cnt[b] : 0)
            print b line, cnt[b] + 0 > series
            last = line " " (cnt[b] + 0)
        }
        if (b > 0) print b last > series
    }' "$d/trace.csv" >"$d/facts"
}

# analyze_uneven DIR FROM_S TO_S
analyze_uneven() {
    local d=$1 from=$2 to=$3
    _events "$d"
    local m=uneven.$EV_mode
    # Window latencies, sorted, for the percentiles; per-second latencies for
    # the chart's p99 line.
    awk -F, -v t0="$EV_t_send" -v from="$from" -v to="$to" '
        $1 == "start_us" { next }
        { t = ($1 - t0) / 1e6; if (t >= from && t < to) printf "%.3f\n", $5 / 1000 }' \
        "$d/trace.csv" | sort -n >"$d/lat.txt"
    awk -F, -v t0="$EV_t_send" -v to="$to" '
        $1 == "start_us" { next }
        { t = ($1 - t0) / 1e6; if (t >= 0 && t < to) printf "%d %.3f\n", int(t) + 1, $5 / 1000 }' \
        "$d/trace.csv" | sort -k1,1n -k2,2n >"$d/lat_by_s.txt"
    local skipped
    skipped=$(sed -n 's/.* \([0-9][0-9]*\) skipped;.*/\1/p' "$d/client.log" | tail -n1)
    awk -F, -v t0="$EV_t_send" -v from="$from" -v to="$to" -v addrs="$EV_addrs" \
        -v caps="$EV_capacity" -v m="$m" -v series="$d/series.dat" -v lat="$d/lat.txt" \
        -v latby="$d/lat_by_s.txt" -v skipped="${skipped:-0}" '
    BEGIN { n = split(addrs, A, " "); split(caps, C, " ")
            for (i = 1; i <= n; i++) { idx[A[i]] = i; captot += C[i] } }
    $1 == "start_us" { next }
    {
        t = ($1 - t0) / 1e6; a = $3; st = $4 + 0
        if (t < 0 || t >= to) next
        b = int(t); all[b]++; if (b > maxb) maxb = b
        if (st != 0) bad[b]++; else { cnt[b]++; if (a in idx) per[b, idx[a]]++ }
        if (t < from) next
        tot++; if (st != 0) err++; else { ok++; if (a in idx) win[idx[a]]++ }
    }
    END {
        # Percentiles (nearest rank) of the sorted window latencies.
        while ((getline v < lat) > 0) L[++nl] = v
        r50 = int(0.50 * nl + 0.999999); r99 = int(0.99 * nl + 0.999999)
        printf "%s.p50_ms %.2f\n", m, nl ? L[r50] : 0
        printf "%s.p99_ms %.2f\n", m, nl ? L[r99] : 0
        printf "%s.calls %d\n", m, tot
        printf "%s.failed_pct %.2f\n", m, tot ? 100 * err / tot : 0
        printf "%s.skipped_calls %d\n", m, skipped
        dev = 0
        for (i = 1; i <= n; i++) {
            sh = ok ? 100 * win[i] / ok : 0; cs = 100 * C[i] / captot
            printf "%s.share_b%d_pct %.1f\n", m, i, sh
            if (sh - cs > dev || cs - sh > dev) dev = sh > cs ? sh - cs : cs - sh
        }
        printf "%s.max_share_error_pts %.1f\n", m, dev
        # Per-second p99.
        while ((getline line < latby) > 0) {
            split(line, f, " "); s = f[1]; k[s]++; V[s, k[s]] = f[2]
        }
        printf "# t_s share_b1 share_b2 share_b3 calls p99_ms failed_pct (window from %s s)\n", from > series
        for (b = 0; b <= maxb; b++) {              # rows as in the membership series
            s = b + 1; r = int(0.99 * k[s] + 0.999999)
            line = ""
            for (i = 1; i <= n; i++)
                line = line sprintf(" %.2f", cnt[b] ? 100 * per[b, i] / cnt[b] : 0)
            line = line " " (all[b] + 0) " " (k[s] ? V[s, r] : "NaN")
            line = line sprintf(" %.2f", all[b] ? 100 * bad[b] / all[b] : 0)
            print b line > series
        }
        if (maxb >= 0) print maxb + 1 line > series
    }' "$d/trace.csv" >"$d/facts"
}

# analyze_overhead DIR REPEATS: from the per-second CSV rows of the whole
# client ("all"), seconds 2..O_SECONDS: mean calls/s and the median of the
# per-second p50s; the ratio pairs runs of the same round.
analyze_overhead() {
    local d=$1 reps=$2 r kind mode
    : >"$d/facts"
    for ((r = 1; r <= reps; r++)); do
        for kind in qps p50; do
            for mode in lookaside baseline; do
                awk -F, -v secs="$O_SECONDS" '
                    $2 == "all" && $1 >= 2 && $1 <= secs { n++; c += $3; p[n] = $4 }
                    END {
                        for (i = 2; i <= n; i++) {          # insertion sort
                            v = p[i]; j = i - 1
                            while (j > 0 && p[j] > v) { p[j + 1] = p[j]; j-- }
                            p[j + 1] = v
                        }
                        med = n ? (n % 2 ? p[(n + 1) / 2] : (p[n / 2] + p[n / 2 + 1]) / 2) : 0
                        printf "%.1f %.3f\n", n ? c / n : 0, med
                    }' "$d/$kind.$mode.$r/client.csv" >"$d/$kind.$mode.$r/fig"
            done
            local lq lp bq bp
            read -r lq lp <"$d/$kind.lookaside.$r/fig"
            read -r bq bp <"$d/$kind.baseline.$r/fig"
            awk -v k="$kind" -v lq="$lq" -v lp="$lp" -v bq="$bq" -v bp="$bp" 'BEGIN {
                if (k == "qps") {
                    printf "overhead.lookaside.qps %.0f\noverhead.baseline.qps %.0f\n", lq, bq
                    if (bq > 0) printf "overhead.qps_ratio %.3f\n", lq / bq
                } else {
                    printf "overhead.lookaside.p50_ms %.3f\noverhead.baseline.p50_ms %.3f\n", lp, bp
                    if (bp > 0) printf "overhead.p50_ratio %.3f\n", lp / bp
                }
            }' >>"$d/facts"
        done
    done
}

# pair_ratio OUT NAME KEY_A FACTS_A KEY_B FACTS_B: appends "NAME A/B" to OUT
# when both facts are there (a lookaside run against the baseline run of
# the same round).
pair_ratio() {
    local out=$1 name=$2 a b
    a=$(awk -v k="$3" '$1 == k { print $2; exit }' "$4" 2>/dev/null)
    b=$(awk -v k="$5" '$1 == k { print $2; exit }' "$6" 2>/dev/null)
    [ -n "$a" ] && [ -n "$b" ] || return 0
    awk -v a="$a" -v b="$b" -v n="$name" 'BEGIN { if (b > 0) printf "%s %.4f\n", n, a / b }' >>"$out"
}

# aggregate FILES...: "KEY MEDIAN MIN MAX N" per key over all the facts.
aggregate() {
    cat "$@" 2>/dev/null | awk '$1 !~ /^#/ && NF >= 2 { print $1, $2 }' | sort -k1,1 -k2,2g |
        awk '
        function flush() {
            if (n == 0) return
            med = n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
            print key, med, v[1], v[n], n
        }
        $1 != key { flush(); key = $1; n = 0 }
        { v[++n] = $2 + 0 }
        END { flush() }'
}

# bench_facts FILE: result lines of bench_server / bench_storage / bench_pick
# ("DATE NAME VALUE ...") as "NAME VALUE".
bench_facts() {
    awk 'NF >= 3 && $3 ~ /^[0-9.]+$/ { print $2, $3 }' "$1"
}

# analyze_coldstart DIR DUR_S SLOW_S STEADY_FROM_S: per-second p99 over the
# whole run (second 0 = the first call), the steady-state p99 (calls started
# in [STEADY_FROM_S, SLOW_S): weights settled, before the slowdown), and the
# worst second against it - over the cold start (seconds before
# STEADY_FROM_S), after the slowdown (seconds from SLOW_S on) and overall.
# Every call counts, a failed one at the time it took to fail.
analyze_coldstart() {
    local d=$1 dur=$2 slow=$3 from=$4
    _events "$d"
    local m=coldstart.$EV_mode t0
    t0=$(awk -F, '$1 != "start_us" && (m == "" || $1 < m) { m = $1 } END { printf "%.0f", m }' \
        "$d/trace.csv")
    awk -F, -v t0="$t0" -v dur="$dur" '
        $1 == "start_us" { next }
        { t = ($1 - t0) / 1e6; if (t >= 0 && t < dur) printf "%d %.3f\n", int(t), $5 / 1000 }' \
        "$d/trace.csv" | sort -k1,1n -k2,2n >"$d/lat_by_s.txt"
    awk -F, -v t0="$t0" -v from="$from" -v slow="$slow" '
        $1 == "start_us" { next }
        { t = ($1 - t0) / 1e6; if (t >= from && t < slow) printf "%.3f\n", $5 / 1000 }' \
        "$d/trace.csv" | sort -n >"$d/lat_steady.txt"
    awk -F, -v t0="$t0" -v dur="$dur" -v slow="$slow" -v from="$from" -v addrs="$EV_addrs" \
        -v m="$m" -v series="$d/series.dat" -v latby="$d/lat_by_s.txt" \
        -v steady="$d/lat_steady.txt" -v tslow="${EV_t_slow:-0}" '
    BEGIN { n = split(addrs, A, " "); for (i = 1; i <= n; i++) idx[A[i]] = i }
    $1 == "start_us" { next }
    {
        t = ($1 - t0) / 1e6; a = $3; st = $4 + 0
        if (t < 0 || t >= dur) next
        b = int(t); all[b]++
        if (st != 0) { bad[b]++; err++ } else if (a in idx) per[b, idx[a]]++
        tot++
        if (t >= slow + 2 && st == 0) { late++; if (a in idx) lateb[idx[a]]++ }
    }
    END {
        while ((getline v < steady) > 0) L[++nl] = v
        sp99 = nl ? L[int(0.99 * nl + 0.999999)] : 0
        while ((getline line < latby) > 0) {
            split(line, f, " "); s = f[1]; k[s]++; V[s, k[s]] = f[2]
        }
        wc = 0; ws = 0; wa = 0; wsec = -1
        printf "# t_s p99_ms share_b1 share_b2 share_b3 calls failed_pct (slow at %s s, steady p99 %.2f ms)\n",
            slow, sp99 > series
        for (s = 0; s < dur; s++) {
            p = k[s] ? V[s, int(0.99 * k[s] + 0.999999)] : 0
            if (s < from && p > wc) wc = p
            if (s >= slow && p > ws) ws = p
            if (p > wa) { wa = p; wsec = s }
            line = s " " (k[s] ? p : "NaN")
            for (i = 1; i <= n; i++)
                line = line sprintf(" %.2f", all[s] ? 100 * per[s, i] / all[s] : 0)
            print line, all[s] + 0, sprintf("%.2f", all[s] ? 100 * bad[s] / all[s] : 0) > series
        }
        printf "%s.steady_p99_ms %.2f\n", m, sp99
        printf "%s.first_second_p99_ms %.2f\n", m, k[0] ? V[0, int(0.99 * k[0] + 0.999999)] : 0
        printf "%s.worst_cold_p99_ms %.2f\n", m, wc
        printf "%s.worst_slow_p99_ms %.2f\n", m, ws
        printf "%s.worst_second_p99_ms %.2f\n", m, wa
        printf "%s.worst_second_s %d\n", m, wsec
        if (sp99 > 0) {
            printf "%s.cold_ratio %.2f\n", m, wc / sp99
            printf "%s.slow_ratio %.2f\n", m, ws / sp99
            printf "%s.worst_ratio %.2f\n", m, wa / sp99
        }
        printf "%s.calls %d\n", m, tot
        printf "%s.failed_pct %.2f\n", m, tot ? 100 * err / tot : 0
        if (late) printf "%s.slow_share_b1_pct %.1f\n", m, 100 * lateb[1] / late
        if (tslow) printf "%s.slow_at_s %.2f\n", m, (tslow - t0) / 1e6
    }' "$d/trace.csv" >"$d/facts"
}
