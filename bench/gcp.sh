#!/usr/bin/env bash
# The Google Cloud plugins on Google's emulators (Java programs on this
# machine: these are emulator figures, not Google's): tools/call throughput
# of one instance on firestore beside one on lmdb, and the latency of a
# message crossing from one instance to another through pubsub (sessions in
# firestore) beside the same through Redis. Prints figures; asserts nothing
# about time.
#
#   bench/gcp.sh            10 s per throughput run (BENCH_SECONDS), 100 crossings
#   bench/gcp.sh --quick    1 s, 10 crossings (make check runs this)
#   KEEP=1 bench/gcp.sh     keeps the logs and configurations in /tmp
#
# The emulators take no credentials: no token is fetched or sent here.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
DUR=${BENCH_SECONDS:-10}
N=100
CONNS=32
if [ "${1:-}" = --quick ]; then DUR=1; N=10; fi
SDK=/usr/lib/google-cloud-sdk/platform
FS_JAR=$SDK/cloud-firestore-emulator/cloud-firestore-emulator.jar
PS_JAR=$(ls "$SDK"/pubsub-emulator/lib/cloud-pubsub-emulator-*-all.jar 2>/dev/null | tail -1 || true)

. "$here/common.sh"
bench_tmp gcp

command -v wrk >/dev/null && command -v redis-server >/dev/null || {
	echo "bench/gcp.sh: needs wrk and redis-server (bench/run.sh installs them)" >&2; exit 1; }
if ! command -v java >/dev/null || [ ! -f "$FS_JAR" ] || [ -z "$PS_JAR" ]; then
	echo "bench/gcp.sh: the Google Cloud emulators or java are not installed: skipped"
	exit 0
fi

# Each emulator in a process group of its own (cleanup kills the group).
P_FS=$(port)
setsid java -Xmx512m -cp "$FS_JAR" com.google.cloud.datastore.emulator.firestore.CloudFirestore start \
	--host=127.0.0.1 --port="$P_FS" > "$tmp/firestore.log" 2>&1 &
pids+=(-$!)
P_PS=$(port)
setsid java -Xmx512m -jar "$PS_JAR" --host=127.0.0.1 --port="$P_PS" > "$tmp/pubsub.log" 2>&1 &
pids+=(-$!)
FS="http://127.0.0.1:$P_FS"
PS="http://127.0.0.1:$P_PS"
ROOT_DOCS="v1/projects/bench-project/databases/(default)/documents"
for _ in $(seq 600); do
	curl -s -o /dev/null "$FS/$ROOT_DOCS/w?pageSize=1" && curl -s -o /dev/null "$PS/v1/projects/bench-project/topics" &&
		break
	sleep 0.1
done
# A cold JVM answers its first calls slowly: warm both up.
for _ in $(seq 200); do
	curl -s -o /dev/null -X POST -H 'Content-Type: application/json' "$FS/$ROOT_DOCS:commit" \
		-d '{"writes":[{"update":{"name":"projects/bench-project/databases/(default)/documents/w/w","fields":{}}}]}'
	curl -s -o /dev/null -X PUT -H 'Content-Type: application/json' "$PS/v1/projects/bench-project/topics/warm" -d '{}'
done
unset FIRESTORE_EMULATOR_HOST PUBSUB_EMULATOR_HOST GOOGLE_APPLICATION_CREDENTIALS

redis_start
URL="redis://127.0.0.1:$P_REDIS/0"

LMDB="storage: { plugin: lmdb, path: $tmp/state }"
FIRESTORE="storage: { plugin: firestore, project: bench-project, endpoint: \"$FS\" }"
GCP="$FIRESTORE
transport: { plugin: pubsub, project: bench-project, endpoint: \"$PS\", topic: bench, create_topic: true }"
REDIS="storage: { plugin: redis, url: \"$URL\" }
transport: { plugin: redis, url: \"$URL\", mode: pubsub }"

rate_one single "$LMDB"
rate_one single_firestore "$FIRESTORE"
cross_two two_gcp "$GCP"
cross_two two_redis "$REDIS"

echo
echo "Google Cloud plugins on Google's emulators (Cloud SDK $(cat /usr/lib/google-cloud-sdk/VERSION 2>/dev/null || echo '?'), emulators, not Google Cloud): $(nproc) CPUs, ${DUR}s per throughput run, $CONNS connections, $N crossings"
echo
printf '%-48s %12s %14s\n' set-up "calls/s" "p99"
printf '%-48s %12s %14s\n' "one instance, lmdb + local" "${RATE[single]}" "${P99[single]}"
printf '%-48s %12s %14s\n' "one instance, firestore (emulator) + local" "${RATE[single_firestore]}" "${P99[single_firestore]}"
echo
printf '%-48s %22s %22s\n' crossing "list_changed p50/p99" "answer p50/p99"
cross_row 48 "two instances, firestore + pubsub (emulators)" two_gcp
cross_row 48 "two instances, Redis (pubsub)" two_redis
echo
echo "A session's tools/call reads and renews the session in storage: on firestore that is HTTP calls"
echo "to the emulator (a Java server on the same CPUs), on lmdb a local file. Crossings: list_changed"
echo "from a tool on B to a GET stream on A (includes spawning the tool); answer: an elicitation answer"
echo "posted to B completing a plugin tool on A. Through pubsub a message goes to the topic, then to"
echo "the subscriptions of the workers it is addressed to, then to their long pulls; on Google Cloud"
echo "add the services' own latency (tens of ms for Pub/Sub), on the emulators add the JVM's."
