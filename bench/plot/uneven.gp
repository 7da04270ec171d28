# Uneven capacity: backends b1 and b2 have twice the capacity of b3; the
# client sends 80 % of the total. Top: share of calls per backend per second
# answered (dashed: the capacity shares 40/40/20 %) and the share of calls
# that failed; bottom: p99 latency per second.
# Called by bench/run.sh:
#   gnuplot -e "lk='A.dat'; bl='B.dat'; out='uneven.png'; from=10; rate=800; age=20" \
#           bench/plot/uneven.gp
# Series columns: t_s share_b1 share_b2 share_b3 calls p99_ms failed_pct.
set terminal pngcairo size 1500,900 font "DejaVu Sans,11" noenhanced
set output out
set datafile commentschars "#"
set datafile missing "NaN"
set multiplot layout 2,2 title sprintf("Uneven capacity: b1, b2 400 calls/s each, b3 200 calls/s; load %d calls/s (80 %%)", rate) font ",13"
set grid ytics lc rgb "#dddddd"
set style line 1 lc rgb "#1f77b4" lw 2
set style line 2 lc rgb "#ff7f0e" lw 2
set style line 3 lc rgb "#2ca02c" lw 3
set style line 8 lc rgb "#888888" dt 2 lw 1
set style line 9 lc rgb "#555555" dt 3 lw 1
set style line 4 lc rgb "#d62728" lw 2 dt 4
set style line 5 lc rgb "#9467bd" lw 2

do for [p = 1:2] {
    f = (p == 1) ? lk : bl
    if (p == 1) { set title "lookaside: share of the answered calls; failed calls" }
    if (p == 2) { set title sprintf("baseline (dns:/// + round_robin, MaxConnectionAge %g s): the same", age) }
    set xlabel "seconds since the client started"
    set ylabel "share (%)"
    set yrange [0:60]
    unset logscale y
    set key top right horizontal
    unset arrow
    set arrow 1 from from, graph 0 to from, graph 1 nohead ls 9
    set arrow 2 from graph 0, first 40 to graph 1, first 40 nohead ls 8
    set arrow 3 from graph 0, first 20 to graph 1, first 20 nohead ls 8
    plot f using 1:2 with steps ls 1 title "b1", \
         f using 1:3 with steps ls 2 title "b2", \
         f using 1:4 with steps ls 3 title "b3 (half capacity)", \
         f using 1:7 with steps ls 4 title "failed (% of all calls)"
}
# The same log scale on both latency plots so that they compare at a glance.
set logscale y
set yrange [5:10000]
set ylabel "p99 latency per second (ms, log scale)"
do for [p = 1:2] {
    f = (p == 1) ? lk : bl
    if (p == 1) { set title "lookaside: p99 latency" }
    if (p == 2) { set title "baseline: p99 latency" }
    unset arrow
    set arrow 1 from from, graph 0 to from, graph 1 nohead ls 9
    set key top left
    plot f using 1:6 with steps ls 5 title "p99 (ms); figures measured right of the dotted line"
}
unset multiplot
