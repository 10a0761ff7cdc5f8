# Sourced by the bench scripts: free ports, mcpd instances with the bench
# tools, a session, a wrk run. The script sets here, root, tmp, pids (the
# processes its cleanup kills), DUR and CALL before it calls these.
ME=bench/$(basename "$0")

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

wait_ready() {   # port
	for _ in $(seq 200); do
		[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$1/readyz")" = 200 ] && return 0
		sleep 0.05
	done
	echo "$ME: instance on $1 never became ready" >&2
	return 1
}

# instance NAME PORT BACKENDS: an mcpd with the bench tools, access log
# off; BACKENDS is YAML (storage:, transport:, auth:). Its pid is
# ${pids[-1]}.
instance() {
	cat > "$tmp/$1.yaml" <<YAML
listen: [127.0.0.1:$2]
workers: auto
log: { level: warn }
limits: { max_connections: 4096 }
$3
tools:
  - { name: greet, description: Greets in-process., input: { name: string }, required: [name], plugin: examples.so:greet }
  - { name: confirm, description: Asks the client., plugin: examples.so:confirm }
  - { name: change, description: Says the tool list changed., shell: 'mcpd-tool changed tools' }
YAML
	"$root/build/mcpd" -c "$tmp/$1.yaml" 2>"$tmp/$1.log" &
	pids+=($!)
	sleep 0.1
	kill -0 "${pids[-1]}" 2>/dev/null || { echo "$ME: mcpd ($1) exited:" >&2; cat "$tmp/$1.log" >&2; exit 1; }
	wait_ready "$2"
}

# session PORT [TOKEN]: initialize + initialized; prints the session id.
session() {
	local sid auth=()
	[ -n "${2:-}" ] && auth=(-H "Authorization: Bearer $2")
	sid=$(curl -s -D - -o /dev/null -H 'Content-Type: application/json' "${auth[@]}" \
		-H 'Accept: application/json, text/event-stream' "http://127.0.0.1:$1/mcp" \
		-d '{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"bench","version":"1"}}}' |
		tr -d '\r' | awk -F': ' 'tolower($1)=="mcp-session-id"{print $2}')
	[ -n "$sid" ] || { echo "$ME: no session on $1" >&2; exit 1; }
	curl -s -o /dev/null -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' \
		"${auth[@]}" -H "Mcp-Session-Id: $sid" -H 'MCP-Protocol-Version: 2025-11-25' "http://127.0.0.1:$1/mcp" \
		-d '{"jsonrpc":"2.0","method":"notifications/initialized"}'
	echo "$sid"
}

# wrk_rate PORT SID CONNS [TOKEN] [THREADS]: "calls/s p99" of one wrk run
# of CALL; any answer other than 200 fails the script.
wrk_rate() {
	local out rate
	out=$(BODY="$CALL" SID="$2" TOKEN="${4:-}" wrk -t"${5:-1}" -c"$3" -d"${DUR}s" --latency -s "$here/call.lua" \
		"http://127.0.0.1:$1/mcp" 2>&1)
	if echo "$out" | grep -q "non200 [1-9]"; then echo "$ME: errors:" >&2; echo "$out" >&2; exit 1; fi
	rate=$(echo "$out" | awk '/Requests\/sec/{printf "%.0f", $2}')
	[ -n "$rate" ] && [ "$rate" != 0 ] || { echo "$ME: no rate:" >&2; echo "$out" >&2; exit 1; }
	echo "$rate $(echo "$out" | awk '$1=="99%"{print $2}')"
}
