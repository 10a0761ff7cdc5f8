#!/usr/bin/env bash
# The AWS plugins on moto's server (an emulator on this machine: these are
# emulator figures, not AWS's): tools/call throughput of one instance on
# dynamodb beside one on lmdb, and the latency of a message crossing from
# one instance to another through sqs (SNS + SQS, sessions in dynamodb)
# beside the same through Redis. Prints figures; asserts nothing about time.
#
#   bench/aws.sh            10 s per throughput run (BENCH_SECONDS), 100 crossings
#   bench/aws.sh --quick    1 s, 10 crossings (make check runs this)
#   KEEP=1 bench/aws.sh     keeps the logs and configurations in /tmp
#
# moto runs without IAM authentication here (it checks no signature), but
# mcpd signs every call all the same: the signing is in the figures.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
DUR=${BENCH_SECONDS:-10}
N=100
CONNS=32
if [ "${1:-}" = --quick ]; then DUR=1; N=10; fi

. "$here/common.sh"
bench_tmp aws

command -v wrk >/dev/null && command -v redis-server >/dev/null || {
	echo "bench/aws.sh: needs wrk and redis-server (bench/run.sh installs them)" >&2; exit 1; }
if ! python3 -c 'import moto.server' 2>/dev/null; then
	echo "bench/aws.sh: moto is not installed (scripts/install-deps.sh test installs it): skipped"
	exit 0
fi

P_MOTO=$(port)
python3 -m moto.server -H 127.0.0.1 -p "$P_MOTO" > "$tmp/moto.log" 2>&1 &
pids+=($!)
for _ in $(seq 200); do curl -s -o /dev/null "http://127.0.0.1:$P_MOTO/" && break; sleep 0.05; done
MOTO="http://127.0.0.1:$P_MOTO"
export AWS_ACCESS_KEY_ID=AKIABENCH0000000000 AWS_SECRET_ACCESS_KEY=bench AWS_REGION=us-east-1 \
	AWS_EC2_METADATA_DISABLED=true
unset AWS_SESSION_TOKEN AWS_PROFILE

redis_start
URL="redis://127.0.0.1:$P_REDIS/0"

LMDB="storage: { plugin: lmdb, path: $tmp/state }"
DYNAMODB="storage: { plugin: dynamodb, table: bench, endpoint: \"$MOTO\", create_table: true }"
AWS="$DYNAMODB
transport: { plugin: sqs, endpoint: \"$MOTO\", topic: bench, create_topic: true, queue_prefix: bench- }"
REDIS="storage: { plugin: redis, url: \"$URL\" }
transport: { plugin: redis, url: \"$URL\", mode: pubsub }"

rate_one single "$LMDB"
rate_one single_dynamodb "$DYNAMODB"
cross_two two_aws "$AWS"
cross_two two_redis "$REDIS"

echo
echo "AWS plugins on moto $(python3 -c 'import importlib.metadata as m; print(m.version("moto"))') (an emulator, not AWS): $(nproc) CPUs, ${DUR}s per throughput run, $CONNS connections, $N crossings"
echo
printf '%-44s %12s %14s\n' set-up "calls/s" "p99"
printf '%-44s %12s %14s\n' "one instance, lmdb + local" "${RATE[single]}" "${P99[single]}"
printf '%-44s %12s %14s\n' "one instance, dynamodb (moto) + local" "${RATE[single_dynamodb]}" "${P99[single_dynamodb]}"
echo
printf '%-44s %22s %22s\n' crossing "list_changed p50/p99" "answer p50/p99"
cross_row 44 "two instances, dynamodb + sqs (moto)" two_aws
cross_row 44 "two instances, Redis (pubsub)" two_redis
echo
echo "A session's tools/call reads and renews the session in storage: on dynamodb that is HTTP calls"
echo "to moto (a Python server on the same CPUs), on lmdb a local file. Crossings: list_changed from a"
echo "tool on B to a GET stream on A (includes spawning the tool); answer: an elicitation answer posted"
echo "to B completing a plugin tool on A. Through sqs a message goes SNS -> the queues of the workers"
echo "that hold its channel -> their long poll (an answer's channel is new: it goes to all, asking who"
echo "holds it); on AWS add the services' own latency (tens of ms), on moto add its Python."
