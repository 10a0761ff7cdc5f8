#!/usr/bin/env bash
# Large messages across instances, transport.compress_over off and on: two
# mcpd instances (sessions in one Redis) on the redis transport (a Redis
# of its own, so that its byte count is the transport's alone) and on the
# nats transport; bench/transport.py's clients answer a plugin tool's
# question on B with a log-like text of SIZE bytes that B publishes to A.
# Prints crossings/s, their p50/p99, and the bytes the broker received per
# crossing (Redis INFO total_net_input_bytes, nats-server's /varz
# in_bytes): every message of a crossing, the answer the largest.
# Asserts nothing about time. Then, where moto and Google's Pub/Sub
# emulator are installed, the same crossings on the sqs transport (moto)
# and the pubsub transport (the emulator), compression off: what the
# batching of publishes (several messages of a loop turn in one
# PublishBatch or publish call) does there is seen by running this script
# on two commits. Those brokers count no bytes: "-".
#
#   bench/transport.sh           10 s per run (BENCH_SECONDS), 16 clients (CLIENTS), 20000-byte answers (SIZE)
#   bench/transport.sh --quick   1 s per run
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
DUR=${BENCH_SECONDS:-10}
SIZE=${SIZE:-20000}
CLIENTS=${CLIENTS:-16}
if [ "${1:-}" = --quick ]; then DUR=1; fi
ME=bench/transport.sh

. "$here/common.sh"
for c in redis-server nats-server curl; do
	command -v $c >/dev/null || { echo "$ME: needs $c (scripts/install-deps.sh test installs it)" >&2; exit 1; }
done
bench_tmp transport
make -s -C "$root" >/dev/null

redis_start
P_STORE=$P_REDIS
redis_start
P_TRANS=$P_REDIS
P_NATS=$(port)
P_NMON=$(port)
nats-server -a 127.0.0.1 -p "$P_NATS" -m "$P_NMON" -l "$tmp/nats.log" &
pids+=($!)
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$P_NMON/varz" >/dev/null && break; sleep 0.05; done
KEEP_PIDS="${pids[*]}"

stop_all() {
	for p in "${pids[@]}"; do
		case " $KEEP_PIDS " in *" $p "*) ;; *) kill "$p" 2>/dev/null || true;; esac
	done
	sleep 0.3
}

in_bytes() {    # redis|nats: what the transport's broker has received so far
	if [ "$1" = redis ]; then
		redis-cli -p "$P_TRANS" info stats | tr -d '\r' | awk -F: '$1 == "total_net_input_bytes" { print $2 }'
	else
		curl -s "http://127.0.0.1:$P_NMON/varz" | python3 -c 'import json,sys; print(json.load(sys.stdin)["in_bytes"])'
	fi
}

declare -A OUT BYTES
run() {        # NAME redis|nats COMPRESS(yes|no)
	local extra="" url pa pb b0 b1 n
	[ "$3" = yes ] && extra=", compress_over: 1KiB"
	if [ "$2" = redis ]; then url="redis://127.0.0.1:$P_TRANS/0"; else url="nats://127.0.0.1:$P_NATS"; fi
	local conf="storage: { plugin: redis, url: \"redis://127.0.0.1:$P_STORE/0\" }
transport: { plugin: $2, url: \"$url\"$extra }"
	pa=$(port); pb=$(port)
	instance "$1-a" "$pa" "$conf"
	instance "$1-b" "$pb" "$conf"
	b0=$(in_bytes "$2")
	OUT[$1]=$(cd "$here" && python3 transport.py "$pa" "$pb" "$SIZE" "$CLIENTS" "$DUR")
	b1=$(in_bytes "$2")
	n=$(field "${OUT[$1]}" crossings)
	BYTES[$1]=$(( (b1 - b0) / (n > 0 ? n : 1) ))
	stop_all
}

for t in redis nats; do
	for c in no yes; do run "$t-$c" "$t" "$c"; done
done

# The HTTP brokers, on emulators here (these are emulator figures).
EXTRA=()
if python3 -c 'import moto.server' 2>/dev/null; then
	P_MOTO=$(port)
	python3 -m moto.server -H 127.0.0.1 -p "$P_MOTO" > "$tmp/moto.log" 2>&1 &
	pids+=($!)
	for _ in $(seq 200); do curl -s -o /dev/null "http://127.0.0.1:$P_MOTO/" && break; sleep 0.05; done
	export AWS_ACCESS_KEY_ID=AKIABENCH0000000000 AWS_SECRET_ACCESS_KEY=bench AWS_REGION=us-east-1 \
		AWS_EC2_METADATA_DISABLED=true
	unset AWS_SESSION_TOKEN AWS_PROFILE
	EXTRA+=("sqs|transport: { plugin: sqs, endpoint: \"http://127.0.0.1:$P_MOTO\", topic: bench, create_topic: true, queue_prefix: bench- }")
fi
PUBSUB_JAR=$(ls /usr/lib/google-cloud-sdk/platform/pubsub-emulator/lib/cloud-pubsub-emulator-*-all.jar 2>/dev/null | tail -1)
if [ -n "$PUBSUB_JAR" ] && command -v java >/dev/null; then
	P_PS=$(port)
	java -Xmx384m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -jar "$PUBSUB_JAR" --host=127.0.0.1 --port="$P_PS" \
		> "$tmp/pubsub.log" 2>&1 &
	pids+=($!)
	for _ in $(seq 600); do curl -sf "http://127.0.0.1:$P_PS/v1/projects/bench-project/topics" >/dev/null && break; sleep 0.1; done
	EXTRA+=("pubsub|transport: { plugin: pubsub, endpoint: \"http://127.0.0.1:$P_PS\", project: bench-project, topic: bench, create_topic: true }")
fi
KEEP_PIDS="${pids[*]}"
for e in "${EXTRA[@]}"; do
	t=${e%%|*}
	pa=$(port); pb=$(port)
	conf="storage: { plugin: redis, url: \"redis://127.0.0.1:$P_STORE/0\" }
${e#*|}"
	instance "$t-a" "$pa" "$conf"
	instance "$t-b" "$pb" "$conf"
	OUT[$t-no]=$(cd "$here" && python3 transport.py "$pa" "$pb" "$SIZE" "$CLIENTS" "$DUR")
	BYTES[$t-no]="-"
	stop_all
done

echo "mcpd $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo '?'), $(nproc) CPUs, $CLIENTS clients," \
	"answers of $SIZE bytes (log-like text), redis $(redis-server --version | awk '{print $3}' | cut -d= -f2)," \
	"nats-server $(nats-server --version 2>&1 | awk '{print $NF}' | tr -d v)"
echo
printf "%-34s %12s %20s %22s\n" "set-up" "crossings/s" "p50/p99" "bytes to the broker"
for t in redis nats; do
	for c in no yes; do
		k=$t-$c
		printf "%-34s %12s %20s %22s\n" "$t, compress_over $([ $c = yes ] && echo 1KiB || echo off)" "$(field "${OUT[$k]}" per_s)" \
			"$(field "${OUT[$k]}" p50_ms)/$(field "${OUT[$k]}" p99_ms) ms" "${BYTES[$k]} per crossing"
	done
done
for e in "${EXTRA[@]}"; do
	k=${e%%|*}-no
	printf "%-34s %12s %20s %22s\n" "${e%%|*} ($([ "${e%%|*}" = sqs ] && echo moto || echo emulator)), compress_over off" \
		"$(field "${OUT[$k]}" per_s)" "$(field "${OUT[$k]}" p50_ms)/$(field "${OUT[$k]}" p99_ms) ms" "-"
done
echo
echo "A crossing: the question (A to the client), the answer posted on B"
echo "and published by B to A, the result; the bytes are all the broker received during the run over"
echo "the crossings made (subscriptions and pings included)."
