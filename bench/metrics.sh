#!/usr/bin/env bash
# What the metrics cost: tools/call throughput of one mcpd with metrics on
# (the default, and a Prometheus-style scrape of metrics.listen every
# second while wrk runs) beside the same mcpd with metrics: { enabled:
# false }. The two run in turns (on, off, off, on, on, off, ...: each
# goes first in every other round), ROUNDS times each, one at a time (the
# other stopped), and the median run of each is compared, in calls/s and
# in CPU time per 1,000 calls (user and system time of the instance's
# processes over the run, which the rest of the machine's load disturbs
# less than calls/s). Prints figures; asserts nothing about time.
#
#   bench/metrics.sh            10 s per run (BENCH_SECONDS), 6 rounds (BENCH_ROUNDS)
#   bench/metrics.sh --quick    1 s per run, 1 round (make check runs this)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
DUR=${BENCH_SECONDS:-10}
ROUNDS=${BENCH_ROUNDS:-6}
CONNS=32
if [ "${1:-}" = --quick ]; then DUR=1; ROUNDS=1; fi
ME=bench/metrics.sh

. "$here/common.sh"
bench_tmp metrics
command -v wrk >/dev/null || { echo "$ME: needs wrk (bench/run.sh installs it)" >&2; exit 1; }
make -s -C "$root" >/dev/null

P_MET=$(port)
declare -A RATES CPUS P99S
HZ=$(getconf CLK_TCK)
# start_one NAME BACKENDS: one instance; leaves P_ONE, SID and its pid.
start_one() {
	P_ONE=$(port)
	instance "$1" "$P_ONE" "$2"
	SID=$(session "$P_ONE")
}
# cpu_ticks PID: user and system time of PID and its children (the
# master and its workers), in clock ticks.
cpu_ticks() {
	local t=0 p f
	for p in "$1" $(pgrep -P "$1"); do
		f=$(cut -d' ' -f14,15 "/proc/$p/stat" 2>/dev/null) || continue
		t=$((t + ${f% *} + ${f#* }))
	done
	echo "$t"
}
ratio3() { awk -v a="$1" -v b="$2" 'BEGIN{ if (b > 0) printf "%.3f", a / b; else print "-" }'; }
median() {   # numbers, one per argument
	printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END {if (NR % 2) print v[(NR+1)/2]; else printf "%.1f\n", (v[NR/2]+v[NR/2+1])/2}'
}
measure() {   # NAME PID PORT SID [SCRAPE_PORT]
	local scraper="" out n c0 c1
	if [ -n "${5:-}" ]; then
		# One long-lived scraper, as Prometheus is: its own start-up
		# would otherwise be counted against mcpd's CPU every second.
		python3 -c 'import sys, time, urllib.request
while True:
    urllib.request.urlopen(sys.argv[1]).read()
    time.sleep(1)' "http://127.0.0.1:$5/metrics" &
		scraper=$!
	fi
	c0=$(cpu_ticks "$2")
	out=$(BODY="$CALL" SID="$4" TOKEN="" wrk -t1 -c$CONNS -d"${DUR}s" --latency -s "$here/call.lua" \
		"http://127.0.0.1:$3/mcp" 2>&1)
	c1=$(cpu_ticks "$2")
	[ -n "$scraper" ] && { kill "$scraper"; wait "$scraper" 2>/dev/null || true; }
	if echo "$out" | grep -q "non200 [1-9]"; then echo "$ME: errors:" >&2; echo "$out" >&2; exit 1; fi
	n=$(echo "$out" | awk '/requests in/{print $1}')
	[ -n "$n" ] && [ "$n" -gt 0 ] || { echo "$ME: no calls:" >&2; echo "$out" >&2; exit 1; }
	RATES[$1]+="$(echo "$out" | awk '/Requests\/sec/{printf "%.0f", $2}') "
	# ms of CPU per 1,000 calls
	CPUS[$1]+="$(awk -v t=$((c1 - c0)) -v hz="$HZ" -v n="$n" 'BEGIN {printf "%.1f", t * 1000 / hz * 1000 / n}') "
	P99S[$1]+="$(echo "$out" | awk '$1=="99%"{print $2}') "
}

start_one on "storage: { plugin: lmdb, path: $tmp/on }
metrics: { listen: 127.0.0.1:$P_MET }"
P_ON=$P_ONE; SID_ON=$SID; PID_ON=${pids[-1]}
start_one off "storage: { plugin: lmdb, path: $tmp/off }
metrics: { enabled: false }"
P_OFF=$P_ONE; SID_OFF=$SID; PID_OFF=${pids[-1]}
# Only one instance works at a time: the other is stopped meanwhile.
run_on() {
	kill -STOP "$PID_OFF" $(pgrep -P "$PID_OFF"); # Both go on: a stopped one would never see the clean-up's SIGTERM, and
# its wait would hang (it did, with an even number of rounds).
kill -CONT "$PID_ON" $(pgrep -P "$PID_ON") "$PID_OFF" $(pgrep -P "$PID_OFF")
	measure on "$PID_ON" "$P_ON" "$SID_ON" "$P_MET"
}
run_off() {
	kill -STOP "$PID_ON" $(pgrep -P "$PID_ON"); kill -CONT "$PID_OFF" $(pgrep -P "$PID_OFF")
	measure off "$PID_OFF" "$P_OFF" "$SID_OFF"
}
# Each goes first in every other round.
for r in $(seq "$ROUNDS"); do
	if [ $((r % 2)) = 1 ]; then run_on; run_off; else run_off; run_on; fi
done
# Both go on: a stopped one would never see the clean-up's SIGTERM, and
# its wait would hang (it did, with an even number of rounds).
kill -CONT "$PID_ON" $(pgrep -P "$PID_ON") "$PID_OFF" $(pgrep -P "$PID_OFF")
CALLS=$(curl -s "http://127.0.0.1:$P_MET/metrics" | awk '/^mcpd_tool_calls_total\{tool="greet",outcome="ok"\}/{print $2}')

# shellcheck disable=SC2086
R_ON=$(median ${RATES[on]}); R_OFF=$(median ${RATES[off]})
# shellcheck disable=SC2086
C_ON=$(median ${CPUS[on]}); C_OFF=$(median ${CPUS[off]})

echo
echo "metrics: tools/call (plugin tool), $CONNS connections, $ROUNDS round(s) of ${DUR}s each, on/off interleaved"
printf '  %-34s %10s %14s   %s\n' set-up "calls/s" "CPU ms/1000" "each run: calls/s; CPU ms per 1,000 calls; p99"
printf '  %-34s %10s %14s   %s; %s; %s\n' "metrics on, scraped every second" "$R_ON" "$C_ON" "${RATES[on]% }" "${CPUS[on]% }" "${P99S[on]% }"
printf '  %-34s %10s %14s   %s; %s; %s\n' "metrics off (enabled: false)" "$R_OFF" "$C_OFF" "${RATES[off]% }" "${CPUS[off]% }" "${P99S[off]% }"
printf '  on / off, medians: calls/s %s (target >= 0.97), CPU per call %s (target <= 1.03)\n' \
	"$(ratio3 "$R_ON" "$R_OFF")" "$(ratio3 "$C_ON" "$C_OFF")"
printf '  calls the on instance counted: %s\n' "${CALLS:-?}"
