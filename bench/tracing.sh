#!/usr/bin/env bash
# What tracing costs: tools/call throughput of one mcpd with tracing on
# (every request sampled, its spans exported over OTLP/HTTP to a small
# receiver on this machine that reads and acknowledges each export), one
# sampling a tenth of them, and one with no tracing: section. They run in
# turns, ROUNDS times each, one at a time, each first in turn, and the
# best run of each is compared (the least disturbed by the rest of the
# machine). The receiver shares the machine's CPUs with mcpd, as a
# collector on the same host would. Prints figures; asserts nothing about time.
#
#   bench/tracing.sh            10 s per run (BENCH_SECONDS), 4 rounds (BENCH_ROUNDS)
#   bench/tracing.sh --quick    1 s per run, 1 round (make check runs this)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
DUR=${BENCH_SECONDS:-10}
ROUNDS=${BENCH_ROUNDS:-4}
CONNS=32
if [ "${1:-}" = --quick ]; then DUR=1; ROUNDS=1; fi
ME=bench/tracing.sh

. "$here/common.sh"
bench_tmp tracing
command -v wrk >/dev/null || { echo "$ME: needs wrk (bench/run.sh installs it)" >&2; exit 1; }
make -s -C "$root" >/dev/null

# The receiver: takes POST /v1/traces, counts the spans, answers {}.
P_RX=$(port)
python3 - "$P_RX" "$tmp/spans" <<'PY' &
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
count = [0]
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a):
        pass
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        count[0] += body.count(b'"spanId"')
        with open(sys.argv[2], "w") as f:
            f.write(str(count[0]))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")
ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
PY
pids+=($!)

declare -A BEST P99 PID PORT SID
setup() {   # NAME BACKENDS
	local p; p=$(port)
	instance "$1" "$p" "$2"
	PID[$1]=${pids[-1]}; PORT[$1]=$p; SID[$1]=$(session "$p")
}
NAMES="on tenth off"
P_MET=$(port)
setup on "storage: { plugin: lmdb, path: $tmp/on }
metrics: { listen: 127.0.0.1:$P_MET }
tracing: { endpoint: \"http://127.0.0.1:$P_RX\", sample: 1 }"
setup tenth "storage: { plugin: lmdb, path: $tmp/tenth }
tracing: { endpoint: \"http://127.0.0.1:$P_RX\", sample: 0.1 }"
setup off "storage: { plugin: lmdb, path: $tmp/off }"
# Only one instance works at a time: the others are stopped meanwhile.
run() {   # NAME
	local n r
	for n in $NAMES; do
		[ "$n" = "$1" ] || kill -STOP "${PID[$n]}" $(pgrep -P "${PID[$n]}")
	done
	kill -CONT "${PID[$1]}" $(pgrep -P "${PID[$1]}")
	r=$(wrk_rate "${PORT[$1]}" "${SID[$1]}" $CONNS "" 2)
	if [ -z "${BEST[$1]:-}" ] || [ "${r% *}" -gt "${BEST[$1]}" ]; then
		BEST[$1]=${r% *}; P99[$1]=${r#* }
	fi
}
for r in $(seq "$ROUNDS"); do
	case $((r % 3)) in
	1) run on; run tenth; run off ;;
	2) run off; run on; run tenth ;;
	0) run tenth; run off; run on ;;
	esac
done
for n in $NAMES; do kill -CONT "${PID[$n]}" $(pgrep -P "${PID[$n]}"); done
sleep 6     # one export interval: the last spans reach the receiver

echo
echo "tracing: tools/call (plugin tool), $CONNS connections, best of $ROUNDS run(s) of ${DUR}s each"
printf '  %-40s %12s %10s\n' set-up calls/s p99
printf '  %-40s %12s %10s\n' "tracing on, every request (sample: 1)" "${BEST[on]}" "${P99[on]}"
printf '  %-40s %12s %10s\n' "tracing on, sample: 0.1" "${BEST[tenth]}" "${P99[tenth]}"
printf '  %-40s %12s %10s\n' "tracing off" "${BEST[off]}" "${P99[off]}"
printf '  sample 1 / off                           %12s\n' "$(ratio "${BEST[on]}" "${BEST[off]}")"
printf '  sample 0.1 / off                         %12s\n' "$(ratio "${BEST[tenth]}" "${BEST[off]}")"
printf '  spans the receiver got (both)            %12s\n' "$(cat "$tmp/spans" 2>/dev/null || echo 0)"
M=$(curl -s "http://127.0.0.1:$P_MET/metrics")
printf '  sample 1: spans exported                 %12s\n' "$(echo "$M" | awk '/^mcpd_tracing_spans_exported_total /{print $2}')"
printf '  sample 1: dropped, queue full            %12s\n' "$(echo "$M" | awk '/^mcpd_tracing_spans_dropped_total\{reason="queue_full"\}/{print $2}')"
printf '  sample 1: dropped, export failed         %12s\n' "$(echo "$M" | awk '/^mcpd_tracing_spans_dropped_total\{reason="export_failed"\}/{print $2}')"
