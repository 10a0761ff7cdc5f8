#!/usr/bin/env bash
# What a call costs in instructions (issue 24): a measure that does not move
# with the machine's load. On a shared machine calls/s and even CPU ms per
# 1,000 calls move by 2-4x between runs, and perf's hardware counters are
# not available here; valgrind's callgrind counts the instructions a process
# executes, exactly and the same from one run to the next.
#
# nginx (one process, master_process off) and mcpd (workers: 1) run under
# callgrind; a client (bench/keepalive.py) sends WARM requests on one
# keep-alive connection, then N more, each with its own id and each answer
# checked. The figure is the serving process's instructions over the N
# divided by N. nginx starts with the instrumentation off, switched on
# with callgrind_control -i on after the warm-up, dumped after the N.
# valgrind follows mcpd's fork of its worker (no --trace-children needed:
# that is for exec), but callgrind_control cannot reach a forked child
# (valgrind 3.19 opens no vgdb FIFOs for it), so the worker counts from
# its start and dumps on entering the /healthz handler (--dump-before):
# the client GETs /healthz on the same connection after the warm-up, after
# the N, and once more; the N's count is the second dump less the third
# (one GET /healthz). The figures are for: nginx's static reply of the same bytes (the ceiling,
# as in bench/run.sh); mcpd tools/call of examples.so:greet in a 2025-11-25
# session; the same call stateless on 2026-07-28 (headers and _meta as
# bench/run.sh sends them). mcpd is set up as in bench/run.sh: lmdb, the
# access log off.
#
# These are user-space instructions: the kernel's work is not counted (the
# reply's writev alone is about 28% of a worker's time in perf), nor are
# cache misses or stalls; a ratio of instructions is not a ratio of calls/s.
# Prints instructions per request, mcpd/nginx for each path, and the top 15
# functions of each mcpd path by inclusive and by self instructions (per
# request). Asserts nothing about the figures; fails if any answer is wrong.
#
#   bench/instructions.sh           N=2000 after 200 of warm-up
#   bench/instructions.sh --quick   N=200 after 50 (make check runs this)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
N=2000; WARM=200
if [ "${1:-}" = --quick ]; then N=200; WARM=50; fi
. "$here/common.sh"
bench_tmp instr

command -v valgrind >/dev/null && command -v callgrind_control >/dev/null ||
	{ echo "$ME: valgrind is needed (scripts/install-deps.sh test installs it)" >&2; exit 1; }
make -s -C "$root" >/dev/null
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
[ -x "$NGINX" ] || { echo "$ME: nginx is needed (bench/run.sh installs nginx-light)" >&2; exit 1; }
P_NGINX=$(port); P_MCPD=$(port)
CG=(valgrind --tool=callgrind --compress-strings=no --instr-atstart=no --callgrind-out-file="$tmp/cg.%p")

CALL26='{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"greet","arguments":{"name":"bench"},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}'

# nginx as in bench/run.sh, in one process; keepalive_requests as mcpd's
# (10,000) rather than nginx's 1,000, so that all requests share a connection.
nginx_conf $P_NGINX "master_process off" "worker_processes 1" "keepalive_requests 10000"
"${CG[@]}" "$NGINX" -c "$tmp/nginx.conf" -g 'daemon off;' 2>"$tmp/nginx.vg" &
NGINX_PID=$!
pids+=($NGINX_PID)

cat > "$tmp/mcpd.yaml" <<YAML
listen: [127.0.0.1:$P_MCPD]
workers: 1
log: { level: warn }
limits: { max_connections: 4096 }
storage: { plugin: lmdb, path: $tmp/state }
tools:
  - { name: greet, description: Greets in-process., input: { name: string }, required: [name], plugin: examples.so:greet }
YAML
"${CG[@]/--instr-atstart=no/--dump-before=healthz}" "$root/build/mcpd" -c "$tmp/mcpd.yaml" 2>"$tmp/mcpd.log" &
MCPD_PID=$!
pids+=($MCPD_PID)

# Under valgrind both take seconds to start.
up() {          # port pid name
	for _ in $(seq 600); do
		curl -s -o /dev/null "http://127.0.0.1:$1/" && return 0
		kill -0 "$2" 2>/dev/null || break
		sleep 0.1
	done
	echo "$ME: $3 did not start:" >&2
	cat "$tmp/$3".* >&2
	exit 1
}
up $P_NGINX $NGINX_PID nginx
up $P_MCPD $MCPD_PID mcpd
WORKER=$(pgrep -P $MCPD_PID)
[ "$(echo "$WORKER" | wc -w)" = 1 ] || { echo "$ME: not one mcpd worker: $WORKER" >&2; exit 1; }
SID=$(session $P_MCPD)

# measure NAME PID PORT BODY [keepalive.py options]: the instructions of PID
# per request over N, in INSTR[NAME]; its profile in PROF[NAME]. nginx
# (PID NGINX_PID) by callgrind_control, mcpd's worker by its /healthz dumps.
declare -A INSTR PROF
dumps() { ls -v "$tmp/cg.$1".*; }   # in order: cg.PID.1, .2, ... .10
total() { awk '/^totals:/{print $2}' "$1"; }
measure() {
	local name=$1 pid=$2 p=$3 body=$4 f
	shift 4
	if [ "$pid" = "$NGINX_PID" ]; then
		python3 "$here/keepalive.py" "$p" $WARM $N "$body" \
			"callgrind_control -i on $pid 2>&1" \
			"callgrind_control -d $pid 2>&1 && callgrind_control -i off $pid 2>&1" "$@" >/dev/null
		f=$(dumps "$pid" | tail -1)
		INSTR[$name]=$(awk -v t="$(total "$f")" -v n=$N 'BEGIN{printf "%.0f", t / n}')
	else
		python3 "$here/keepalive.py" "$p" $WARM $N "$body" --mark /healthz "$@" >/dev/null
		f=$(dumps "$pid" | tail -2 | head -1)
		GET=$(total "$(dumps "$pid" | tail -1)")
		INSTR[$name]=$(awk -v t="$(total "$f")" -v g="$GET" -v n=$N 'BEGIN{printf "%.0f", (t - g) / n}')
	fi
	PROF[$name]=$f
	[ -n "${INSTR[$name]}" ] && [ "${INSTR[$name]}" -gt 0 ] || { echo "$ME: no count in $f" >&2; exit 1; }
}
measure nginx $NGINX_PID $P_NGINX "$CALL" --reply "$REPLY"
measure session "$WORKER" $P_MCPD "$CALL" -H "Mcp-Session-Id: $SID"
measure stateless "$WORKER" $P_MCPD "$CALL26" -H "MCP-Protocol-Version: 2026-07-28" \
	-H "Mcp-Method: tools/call" -H "Mcp-Name: greet"

# top INCLUSIVE NAME: 15 functions of callgrind_annotate's list, in
# instructions per request, without source paths; inclusive, those below
# process_input (the frames from main down to it hold the whole request) and
# without libevent's unnamed statics. callgrind_annotate 3.19 counts a call
# line with calls=0 (a call entered before the dump: the handler of the
# GET that triggered it) as the caller's own cost: it reads them as 1. It
# runs in $tmp: in the source tree it lists a function twice, by its
# absolute and its relative file.
top() {
	sed 's/^calls=0 /calls=1 /' "${PROF[$2]}" > "$tmp/annotate"
	(cd "$tmp" && callgrind_annotate --auto=no --inclusive="$1" annotate 2>/dev/null) |
		awk -v n=$N -v incl="$1" '
			/^Ir +file:function/ { on = 1; skip = incl == "yes"; next }
			!on || !match($0, /^ *[0-9,]+ +\( *[0-9.]+%\) +/) { next }
			{
				head = substr($0, 1, RLENGTH); rest = substr($0, RLENGTH + 1)
				ir = head; sub(/ *\(.*/, "", ir); gsub(/[ ,]/, "", ir)
				pct = head; sub(/^[^(]*\( */, "", pct); sub(/\).*/, "", pct)
				obj = ""
				if (match(rest, / \[[^]]*\]$/)) {
					obj = substr(rest, RSTART + 1); rest = substr(rest, 1, RSTART - 1)
					sub(/^\[.*\//, "[", obj)
				}
				sub(/^[^:]*:/, "", rest)
				if (skip) { if (rest == "process_input") skip = 0; next }
				if (rest ~ /^0x/ || c >= 15) next
				printf "  %9.0f %7s  %s %s\n", ir / n, pct, rest, obj; c++
			}'
}

echo
echo "instructions per request (callgrind, user space only): N=$N after $WARM of warm-up," \
	"one keep-alive connection, $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo '?')," \
	"$(valgrind --version)"
echo
fmt='%-52s %14s %12s\n'
printf "$fmt" scenario instr/request "/ nginx"
printf "$fmt" "nginx static reply (ceiling)" "${INSTR[nginx]}" ""
printf "$fmt" "mcpd tools/call, plugin tool, session (2025-11-25)" "${INSTR[session]}" \
	"$(ratio "${INSTR[session]}" "${INSTR[nginx]}")"
printf "$fmt" "mcpd tools/call, plugin tool, stateless (2026-07-28)" "${INSTR[stateless]}" \
	"$(ratio "${INSTR[stateless]}" "${INSTR[nginx]}")"
echo "(mcpd's counts less one GET /healthz, $GET instructions; its profiles below include it)"
for p in session stateless; do
	echo
	echo "mcpd $p: top 15 by inclusive instructions, below process_input (per request, % of the worker's)"
	top yes $p
	echo "mcpd $p: top 15 by self instructions"
	top no $p
done
