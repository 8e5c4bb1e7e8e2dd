# bench/ingest.gp - the ingest plot: rows/s per system, a bar per client count (median),
# with the min-max range of the runs as error bars. Called by bench/run.sh:
#   gnuplot -e "datafile='ingest.dat'; outfile='ingest.png'; subtitle='...'; clients='1 4'" ingest.gp
if (!exists("clients")) clients = "1 4"
if (!exists("subtitle")) subtitle = ""
set terminal pngcairo size 900,520 font "DejaVu Sans,11"
set output outfile
set title "Ingest throughput: TSBS iot trucks, native bulk path of each system\n{/*0.8 ".subtitle."}"
set ylabel "rows per second (higher is better)"
set format y "%.0s%c"
set yrange [0:*]
set grid ytics
set key top right
set style data histogram
set style histogram errorbars gap 2 lw 1.5
set style fill solid 0.85 border -1
set boxwidth 0.9
set xtics nomirror
n = words(clients)
plot for [i=1:n] datafile using (column(3*i-1)):(column(3*i)):(column(3*i+1)):xtic(1) \
     title word(clients, i).(word(clients, i) eq "1" ? " client" : " clients")
