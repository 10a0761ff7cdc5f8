#!/usr/bin/env bash
# Sessions shared through Redis: one mcpd instance on lmdb (the single-host
# set-up), one instance on Redis, and two instances on one Redis (pubsub and
# streams), each measured the same way: tools/call throughput with wrk, and
# the latency of a message crossing from one instance to the other
# (bench/crossing.py). Prints figures; asserts nothing about time.
#
#   bench/redis.sh            10 s per throughput run (BENCH_SECONDS), 300 crossings
#   bench/redis.sh --quick    1 s, 30 crossings (make check runs this)
#   KEEP=1 bench/redis.sh     keeps the logs and configurations in /tmp
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
DUR=${BENCH_SECONDS:-10}
N=300
CONNS=32
if [ "${1:-}" = --quick ]; then DUR=1; N=30; fi

tmp=$(mktemp -d /tmp/mcpd-bench-redis.XXXXXX)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	[ -n "${KEEP:-}" ] && echo "kept $tmp" >&2 || rm -rf "$tmp"
}
trap cleanup EXIT
. "$here/common.sh"

command -v wrk >/dev/null && command -v redis-server >/dev/null || {
	echo "bench/redis.sh: needs wrk and redis-server (bench/run.sh installs them)" >&2; exit 1; }

P_REDIS=$(port)
redis-server --port "$P_REDIS" --bind 127.0.0.1 --save "" --appendonly no --dir "$tmp" \
	--logfile "$tmp/redis.log" &
pids+=($!)
for _ in $(seq 100); do redis-cli -p "$P_REDIS" ping >/dev/null 2>&1 && break; sleep 0.05; done
URL="redis://127.0.0.1:$P_REDIS/0"

CALL='{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"greet","arguments":{"name":"bench"}}}'

declare -A RATE P99 CROSS
# One instance: the session on it, wrk on it, crossings to itself.
one() {   # name backends
	local p; p=$(port)
	instance "$1" "$p" "$2"
	local sid r; sid=$(session "$p")
	r=$(wrk_rate "$p" "$sid" $CONNS)
	RATE[$1]=${r% *}; P99[$1]=${r#* }
	CROSS[$1]=$(python3 "$here/crossing.py" "$p" "$p" $N)
}
# Two instances: one session, wrk on both at once (half the connections
# each, the sum of both), crossings from B to A.
two() {   # name backends
	local pa pb; pa=$(port); pb=$(port)
	instance "$1-a" "$pa" "$2"
	instance "$1-b" "$pb" "$2"
	local sid; sid=$(session "$pa")
	wrk_rate "$pa" "$sid" $((CONNS / 2)) > "$tmp/wrk-a" &
	wrk_rate "$pb" "$sid" $((CONNS / 2)) > "$tmp/wrk-b"
	wait $!
	RATE[$1]=$(awk '{s+=$1} END{printf "%.0f", s}' "$tmp/wrk-a" "$tmp/wrk-b")
	P99[$1]="$(awk '{print $2}' "$tmp/wrk-a")/$(awk '{print $2}' "$tmp/wrk-b")"
	CROSS[$1]=$(python3 "$here/crossing.py" "$pa" "$pb" $N)
}

LMDB="storage: { plugin: lmdb, path: $tmp/state }"
REDIS_PUBSUB="storage: { plugin: redis, url: \"$URL\" }
transport: { plugin: redis, url: \"$URL\", mode: pubsub }"
REDIS_STREAMS="storage: { plugin: redis, url: \"$URL\", key_prefix: \"s:\" }
transport: { plugin: redis, url: \"$URL\", mode: streams, key_prefix: \"s:\" }"

one single "$LMDB"
one single_redis "$REDIS_PUBSUB"
two two_pubsub "$REDIS_PUBSUB"
two two_streams "$REDIS_STREAMS"

field() { echo "$1" | awk -v k="$2" '{for(i=1;i<=NF;i++) if($i==k) print $(i+1)}'; }
echo
echo "sessions through Redis: $(nproc) CPUs, ${DUR}s per throughput run, $CONNS connections, $N crossings, redis $(redis-server --version | awk '{print $3}' | tr -d v=)"
echo
printf '%-40s %12s %14s %22s %22s\n' set-up "calls/s" "p99" "list_changed p50/p99" "answer p50/p99"
row() {
	printf '%-40s %12s %14s %22s %22s\n' "$1" "${RATE[$2]}" "${P99[$2]}" \
		"$(field "${CROSS[$2]}" changed_p50_ms)/$(field "${CROSS[$2]}" changed_p99_ms) ms" \
		"$(field "${CROSS[$2]}" answer_p50_ms)/$(field "${CROSS[$2]}" answer_p99_ms) ms"
}
row "one instance, lmdb + local" single
row "one instance, Redis (pubsub)" single_redis
row "two instances, one Redis (pubsub)" two_pubsub
row "two instances, one Redis (streams)" two_streams
echo
echo "calls/s of two instances is the sum of both (wrk on each at once, $((CONNS / 2)) connections each;"
echo "p99 per instance). Crossings: list_changed from a tool on B to a GET stream on A (includes"
echo "spawning the tool); answer: an elicitation answer posted to B completing a plugin tool on A."
echo "On one instance, B is A. On a machine this size all instances and Redis share the same CPUs."
