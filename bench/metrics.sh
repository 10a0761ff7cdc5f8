#!/usr/bin/env bash
# What the metrics cost: tools/call throughput of one mcpd with metrics on
# (the default, and a Prometheus-style scrape of metrics.listen every
# second while wrk runs) beside the same mcpd with metrics: { enabled:
# false }. The two run in turns, ROUNDS times each, one at a time, and the
# best run of each is compared (the least disturbed by the rest of the
# machine); each goes first in every other round. Prints figures; asserts nothing about time.
#
#   bench/metrics.sh            10 s per run (BENCH_SECONDS), 4 rounds (BENCH_ROUNDS)
#   bench/metrics.sh --quick    1 s per run, 1 round (make check runs this)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
DUR=${BENCH_SECONDS:-10}
ROUNDS=${BENCH_ROUNDS:-4}
CONNS=32
if [ "${1:-}" = --quick ]; then DUR=1; ROUNDS=1; fi
ME=bench/metrics.sh

. "$here/common.sh"
bench_tmp metrics
command -v wrk >/dev/null || { echo "$ME: needs wrk (bench/run.sh installs it)" >&2; exit 1; }
make -s -C "$root" >/dev/null

P_MET=$(port)
declare -A BEST P99
# run NAME BACKENDS [SCRAPE_PORT]: one instance, ROUNDS wrk runs are made
# by the caller; this starts it and leaves P_ONE, SID and its pid.
start_one() {
	P_ONE=$(port)
	instance "$1" "$P_ONE" "$2"
	SID=$(session "$P_ONE")
}
measure() {   # NAME PORT SID [SCRAPE_PORT]
	local scraper="" r
	if [ -n "${4:-}" ]; then
		# One long-lived scraper, as Prometheus is: its own start-up
		# would otherwise be counted against mcpd's CPU every second.
		python3 -c 'import sys, time, urllib.request
while True:
    urllib.request.urlopen(sys.argv[1]).read()
    time.sleep(1)' "http://127.0.0.1:$4/metrics" &
		scraper=$!
	fi
	r=$(wrk_rate "$2" "$3" $CONNS "" 2)
	[ -n "$scraper" ] && { kill "$scraper"; wait "$scraper" 2>/dev/null || true; }
	if [ -z "${BEST[$1]:-}" ] || [ "${r% *}" -gt "${BEST[$1]}" ]; then
		BEST[$1]=${r% *}; P99[$1]=${r#* }
	fi
}

start_one on "storage: { plugin: lmdb, path: $tmp/on }
metrics: { listen: 127.0.0.1:$P_MET }"
P_ON=$P_ONE; SID_ON=$SID; PID_ON=${pids[-1]}
start_one off "storage: { plugin: lmdb, path: $tmp/off }
metrics: { enabled: false }"
P_OFF=$P_ONE; SID_OFF=$SID; PID_OFF=${pids[-1]}
# Only one instance works at a time: the other is stopped meanwhile.
run_on() {
	kill -STOP "$PID_OFF" $(pgrep -P "$PID_OFF"); kill -CONT "$PID_ON" $(pgrep -P "$PID_ON")
	measure on "$P_ON" "$SID_ON" "$P_MET"
}
run_off() {
	kill -STOP "$PID_ON" $(pgrep -P "$PID_ON"); kill -CONT "$PID_OFF" $(pgrep -P "$PID_OFF")
	measure off "$P_OFF" "$SID_OFF"
}
# Each goes first in every other round.
for r in $(seq "$ROUNDS"); do
	if [ $((r % 2)) = 1 ]; then run_on; run_off; else run_off; run_on; fi
done
# Both running again: a stopped one would not end on the cleanup's TERM,
# and its wait would hang.
kill -CONT "$PID_ON" $(pgrep -P "$PID_ON") "$PID_OFF" $(pgrep -P "$PID_OFF")
CALLS=$(curl -s "http://127.0.0.1:$P_MET/metrics" | awk '/^mcpd_tool_calls_total\{tool="greet",outcome="ok"\}/{print $2}')

echo
echo "metrics: tools/call (plugin tool), $CONNS connections, best of $ROUNDS run(s) of ${DUR}s each"
printf '  %-40s %12s %10s\n' set-up calls/s p99
printf '  %-40s %12s %10s\n' "metrics on, scraped every second" "${BEST[on]}" "${P99[on]}"
printf '  %-40s %12s %10s\n' "metrics off (enabled: false)" "${BEST[off]}" "${P99[off]}"
printf '  on / off                                 %12s    target >= 0.97\n' "$(ratio "${BEST[on]}" "${BEST[off]}")"
printf '  calls the on instance counted            %12s\n' "${CALLS:-?}"
