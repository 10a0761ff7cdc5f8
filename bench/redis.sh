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

. "$here/common.sh"
bench_tmp redis

command -v wrk >/dev/null && command -v redis-server >/dev/null || {
	echo "bench/redis.sh: needs wrk and redis-server (bench/run.sh installs them)" >&2; exit 1; }

redis_start
URL="redis://127.0.0.1:$P_REDIS/0"

# One instance: the session on it, wrk on it, crossings to itself.
one() {   # name backends
	rate_one "$1" "$2"
	CROSS[$1]=$(python3 "$here/crossing.py" "$P_ONE" "$P_ONE" $N)
}

LMDB="storage: { plugin: lmdb, path: $tmp/state }"
REDIS_PUBSUB="storage: { plugin: redis, url: \"$URL\" }
transport: { plugin: redis, url: \"$URL\", mode: pubsub }"
REDIS_STREAMS="storage: { plugin: redis, url: \"$URL\", key_prefix: \"s:\" }
transport: { plugin: redis, url: \"$URL\", mode: streams, key_prefix: \"s:\" }"

one single "$LMDB"
one single_redis "$REDIS_PUBSUB"
rate_two two_pubsub "$REDIS_PUBSUB"
rate_two two_streams "$REDIS_STREAMS"

echo
echo "sessions through Redis: $(nproc) CPUs, ${DUR}s per throughput run, $CONNS connections, $N crossings, redis $(redis-server --version | awk '{print $3}' | tr -d v=)"
echo
printf '%-40s %12s %14s %22s %22s\n' set-up "calls/s" "p99" "list_changed p50/p99" "answer p50/p99"
row 40 "one instance, lmdb + local" single
row 40 "one instance, Redis (pubsub)" single_redis
row 40 "two instances, one Redis (pubsub)" two_pubsub
row 40 "two instances, one Redis (streams)" two_streams
echo
echo "calls/s of two instances is the sum of both (wrk on each at once, $((CONNS / 2)) connections each;"
echo "p99 per instance). Crossings: list_changed from a tool on B to a GET stream on A (includes"
echo "spawning the tool); answer: an elicitation answer posted to B completing a plugin tool on A."
echo "On one instance, B is A. On a machine this size all instances and Redis share the same CPUs."
