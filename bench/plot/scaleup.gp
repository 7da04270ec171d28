# Scale-up and scale-down: each backend's share of the calls per second,
# lookaside beside the baseline (DNS + round_robin + MaxConnectionAge).
# Called by bench/run.sh:
#   gnuplot -e "lk='A.dat'; bl='B.dat'; out='scaleup.png'; up_lk=15; kill_lk=40; \
#               up_bl=15; kill_bl=40; age=20; rate=300" bench/plot/scaleup.gp
# Series columns: t_s share_b1 share_b2 share_b3 share_b4 calls.
set terminal pngcairo size 1500,560 font "DejaVu Sans,11" noenhanced
set output out
set datafile commentschars "#"
set multiplot layout 1,2 title sprintf("Scale-up and scale-down: share of calls per backend, per second (%d calls/s; b4 starts, later b2 is SIGKILLed)", rate) font ",13"
set xlabel "seconds since the client started"
set ylabel "share of calls (%)"
set yrange [0:60]
set grid ytics lc rgb "#dddddd"
set key below horizontal height 1.5
set style line 1 lc rgb "#1f77b4" lw 2
set style line 2 lc rgb "#ff7f0e" lw 2
set style line 3 lc rgb "#2ca02c" lw 2
set style line 4 lc rgb "#d62728" lw 3
set style line 9 lc rgb "#555555" dt 2 lw 1

do for [p = 1:2] {
    f = (p == 1) ? lk : bl
    u = (p == 1) ? up_lk : up_bl
    k = (p == 1) ? kill_lk : kill_bl
    if (p == 1) { set title "lookaside (liblookaside picks, weights pushed by lookaside-server)" }
    if (p == 2) { set title sprintf("baseline: dns:/// + round_robin, MaxConnectionAge %g s", age) }
    unset arrow
    unset label
    set arrow 1 from u, graph 0 to u, graph 1 nohead ls 9
    set arrow 2 from k, graph 0 to k, graph 1 nohead ls 9
    set label 1 " b4 starts" at u, 56 left tc rgb "#555555"
    set label 2 " b2 killed" at k, 52 left tc rgb "#555555"
    plot f using 1:2 with steps ls 1 title "b1", \
         f using 1:3 with steps ls 2 title "b2", \
         f using 1:4 with steps ls 3 title "b3", \
         f using 1:5 with steps ls 4 title "b4 (new)"
}
unset multiplot
