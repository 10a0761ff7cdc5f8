#!/usr/bin/env bash
# The nats transport beside the redis one: two mcpd instances with their
# sessions in one Redis, their messages through Redis pub/sub or through
# one nats-server, measured the same way as bench/redis.sh (tools/call
# throughput with wrk on both instances, and the latency of a message
# crossing from B to A, bench/crossing.py). Prints; asserts nothing on time.
#
#   bench/nats.sh            10 s per throughput run (BENCH_SECONDS), 300 crossings
#   bench/nats.sh --quick    1 s, 30 crossings (make check runs this)
#   KEEP=1 bench/nats.sh     keeps the logs and configurations in /tmp
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
DUR=${BENCH_SECONDS:-10}
N=300
CONNS=32
if [ "${1:-}" = --quick ]; then DUR=1; N=30; fi

. "$here/common.sh"
bench_tmp nats

for c in wrk redis-server nats-server; do
	command -v $c >/dev/null || { echo "bench/nats.sh: needs $c (scripts/install-deps.sh test, bench/run.sh)" >&2; exit 1; }
done

P_REDIS=$(port)
redis-server --port "$P_REDIS" --bind 127.0.0.1 --save "" --appendonly no --dir "$tmp" \
	--logfile "$tmp/redis.log" &
pids+=($!)
P_NATS=$(port)
nats-server -a 127.0.0.1 -p "$P_NATS" -l "$tmp/nats.log" &
pids+=($!)
for _ in $(seq 100); do redis-cli -p "$P_REDIS" ping >/dev/null 2>&1 && break; sleep 0.05; done
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$P_NATS") 2>/dev/null && break; sleep 0.05; done
REDIS="redis://127.0.0.1:$P_REDIS/0"
NATS="nats://127.0.0.1:$P_NATS"

rate_two redis "storage: { plugin: redis, url: \"$REDIS\", key_prefix: \"r:\" }
transport: { plugin: redis, url: \"$REDIS\", mode: pubsub, key_prefix: \"r:\" }"
rate_two nats "storage: { plugin: redis, url: \"$REDIS\", key_prefix: \"n:\" }
transport: { plugin: nats, url: \"$NATS\" }"

echo
echo "transport through NATS: $(nproc) CPUs, ${DUR}s per throughput run, $CONNS connections, $N crossings," \
	"nats-server $(nats-server --version 2>&1 | awk '{print $NF}' | tr -d v), sessions in one Redis"
echo
printf '%-44s %12s %14s %22s %22s\n' set-up "calls/s" "p99" "list_changed p50/p99" "answer p50/p99"
row 44 "two instances, Redis pub/sub transport" redis
row 44 "two instances, NATS transport" nats
echo
echo "nats / redis: calls/s $(ratio "${RATE[nats]}" "${RATE[redis]}"), answer p50" \
	"$(ratio "$(field "${CROSS[nats]}" answer_p50_ms)" "$(field "${CROSS[redis]}" answer_p50_ms)")," \
	"list_changed p50 $(ratio "$(field "${CROSS[nats]}" changed_p50_ms)" "$(field "${CROSS[redis]}" changed_p50_ms)")"
echo "(calls/s is the sum of both instances; a crossing goes from B to A, see bench/redis.sh)"
