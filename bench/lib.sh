# Shared by the side-by-side benchmark scripts (sourced, not run).

# CPU time (user + system, in clock ticks) of a process, for berth's cost per request.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# measure LABEL PID URL LUA SECS: one wrk run at c=1 (p50, p99, req/s, CPU per request of PID)
# and one at c=16 (req/s), printed on one line.
measure() {
  local label=$1 pid=$2 url=$3 lua=$4 secs=$5 t1 t2 out one many
  local tick_us=$((1000000 / $(getconf CLK_TCK)))
  t1=$(cpu_ticks "$pid")
  out=$(wrk -t1 -c1 -d"${secs}"s --latency -s "$lua" "$url")
  t2=$(cpu_ticks "$pid")
  one=$(awk -v t=$((t2 - t1)) -v us=$tick_us '$1=="50%"{p=$2} $1=="99%"{q=$2} /Requests\/sec/{r=$2} /requests in/{n=$1} END{printf "p50 %s p99 %s rps %s cpu/req %.1fus", p, q, r, t*us/n}' <<<"$out")
  many=$(wrk -t2 -c16 -d"${secs}"s -s "$lua" "$url" | awk '/Requests\/sec/{print "rps16", $2}')
  echo "$label: c=1 $one; c=16 $many"
}

# alternate SECS LABEL0 LABEL1 LUA0 LUA1: three rounds measuring the two servers of the arrays
# PIDS and URLS in turn, so that both see the same noise.
alternate() {
  local secs=$1 round j
  local labels=("$2" "$3") luas=("$4" "$5")
  for round in 1 2 3; do
    for j in 0 1; do
      measure "round $round ${labels[$j]}" "${PIDS[$j]}" "${URLS[$j]}" "${luas[$j]}" "$secs"
    done
  done
}
