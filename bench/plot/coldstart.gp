# Cold start and a backend turning slow: backends b1, b2 (400 calls/s) and
# b3 (200 calls/s) from the client's first call; at `slow` s b1's service
# time rises to `slowms` ms. Left: p99 latency per second, lookaside beside
# the baseline; right: lookaside's share of calls per backend per second.
# Called by bench/run.sh:
#   gnuplot -e "lk='A.dat'; bl='B.dat'; out='coldstart.png'; slow=18; slowms=30" \
#           bench/plot/coldstart.gp
# Series columns: t_s p99_ms share_b1 share_b2 share_b3 calls failed_pct.
set terminal pngcairo size 1500,500 font "DejaVu Sans,11" noenhanced
set output out
set datafile commentschars "#"
set datafile missing "NaN"
set multiplot layout 1,2 title sprintf("Cold start, then b1 turns slow at %g s (20 -> %g ms per call)", slow, slowms) font ",13"
set grid ytics lc rgb "#dddddd"
set style line 1 lc rgb "#1f77b4" lw 2
set style line 2 lc rgb "#ff7f0e" lw 2
set style line 3 lc rgb "#2ca02c" lw 3
set style line 5 lc rgb "#9467bd" lw 2
set style line 6 lc rgb "#8c564b" lw 2 dt 4
set style line 9 lc rgb "#555555" dt 3 lw 1
set xlabel "seconds since the first call"
set arrow 1 from slow, graph 0 to slow, graph 1 nohead ls 9

set title "p99 latency of the calls started in each second"
set logscale y
set yrange [5:10000]
set ylabel "p99 (ms, log scale)"
set key top left
plot lk using 1:2 with steps ls 5 title "lookaside", \
     bl using 1:2 with steps ls 6 title "baseline (dns:/// + round_robin)"

set title "lookaside: share of calls per backend"
unset logscale y
set yrange [0:60]
set ylabel "share (%)"
set key top right horizontal
plot lk using 1:3 with steps ls 1 title "b1 (turns slow)", \
     lk using 1:4 with steps ls 2 title "b2", \
     lk using 1:5 with steps ls 3 title "b3 (half capacity)"
unset multiplot
