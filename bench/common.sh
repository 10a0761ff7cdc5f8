# Sourced by the bench scripts: a temporary folder cleaned up on exit, free
# ports, Redis, mcpd instances with the bench tools, a session, a wrk run,
# crossings, the figures' table. The script sets here, root, DUR, CONNS and
# N, and calls bench_tmp (or sets tmp and pids itself), before it calls the
# others.
ME=bench/$(basename "$0")

CALL='{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"greet","arguments":{"name":"bench"}}}'
declare -A RATE P99 CROSS

# bench_tmp NAME: tmp, a new folder /tmp/mcpd-bench-NAME.XXXXXX, removed on
# exit (kept with KEEP=1) once the commands in cleanups have run and the
# processes in pids (a negative one: a process group) have been killed.
bench_tmp() {
	tmp=$(mktemp -d "/tmp/mcpd-bench-$1.XXXXXX")
	pids=()
	cleanups=()
	trap bench_cleanup EXIT
}
bench_cleanup() {
	for c in "${cleanups[@]}"; do $c || true; done
	for p in "${pids[@]}"; do kill -- "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	[ -n "${KEEP:-}" ] && echo "kept $tmp" >&2 || rm -rf "$tmp"
}

# The answer greet gives, as nginx serves it: the static ceiling.
REPLY='{"result":{"content":[{"type":"text","text":"Hello, bench!"}]},"jsonrpc":"2.0","id":1}'

# nginx_conf PORT [DIRECTIVES...]: $tmp/nginx.conf serving REPLY on PORT with
# no access log; the DIRECTIVES (whole lines) go first, at the top level,
# except keepalive_requests, which goes in http.
nginx_conf() {
	local p=$1 top="" ka=""
	shift
	for d in "$@"; do
		case $d in
		keepalive_requests*) ka="	$d;"$'\n' ;;
		*) top+="$d;"$'\n' ;;
		esac
	done
	cat > "$tmp/nginx.conf" <<NGX
${top}pid $tmp/nginx.pid;
error_log $tmp/nginx.err;
events { worker_connections 1024; }
http {
	access_log off;
${ka}	client_body_temp_path $tmp;
	proxy_temp_path $tmp;
	fastcgi_temp_path $tmp;
	uwsgi_temp_path $tmp;
	scgi_temp_path $tmp;
	server {
		listen 127.0.0.1:$p;
		location / { default_type application/json; return 200 '$REPLY'; }
	}
}
NGX
}

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
# of CALL; any answer other than 200, or to another request, fails the script.
wrk_rate() {
	local out rate
	out=$(BODY="$CALL" SID="$2" TOKEN="${4:-}" wrk -t"${5:-1}" -c"$3" -d"${DUR}s" --latency -s "$here/call.lua" \
		"http://127.0.0.1:$1/mcp" 2>&1)
	if echo "$out" | grep -Eq "(non200|mismatched) [1-9]"; then echo "$ME: errors:" >&2; echo "$out" >&2; exit 1; fi
	rate=$(echo "$out" | awk '/Requests\/sec/{printf "%.0f", $2}')
	[ -n "$rate" ] && [ "$rate" != 0 ] || { echo "$ME: no rate:" >&2; echo "$out" >&2; exit 1; }
	echo "$rate $(echo "$out" | awk '$1=="99%"{print $2}')"
}

# redis_start: a redis-server on a free port with no persistence, its log
# in $tmp (pid in pids); P_REDIS is its port once it answers.
redis_start() {
	P_REDIS=$(port)
	redis-server --port "$P_REDIS" --bind 127.0.0.1 --save "" --appendonly no --dir "$tmp" \
		--logfile "$tmp/redis.log" &
	pids+=($!)
	for _ in $(seq 100); do redis-cli -p "$P_REDIS" ping >/dev/null 2>&1 && break; sleep 0.05; done
}

# rate_one NAME BACKENDS: one instance on BACKENDS (it stays up, its pid
# ${pids[-1]}, its port P_ONE), wrk on it: RATE[NAME], P99[NAME].
rate_one() {
	P_ONE=$(port)
	instance "$1" "$P_ONE" "$2"
	local sid r; sid=$(session "$P_ONE")
	r=$(wrk_rate "$P_ONE" "$sid" $CONNS)
	RATE[$1]=${r% *}; P99[$1]=${r#* }
}

# rate_two NAME BACKENDS: two instances on BACKENDS, one session, wrk on
# both at once (half the connections each): RATE[NAME] the sum of both,
# P99[NAME] each's; then N crossings from B to A: CROSS[NAME]. The
# instances stay up until the end (their pids are in pids).
rate_two() {
	local pa pb; pa=$(port); pb=$(port)
	instance "$1-a" "$pa" "$2"
	instance "$1-b" "$pb" "$2"
	local sid; sid=$(session "$pa")
	wrk_rate "$pa" "$sid" $((CONNS / 2)) > "$tmp/wrk-a" &
	wrk_rate "$pb" "$sid" $((CONNS / 2)) > "$tmp/wrk-b"
	wait $!
	RATE[$1]=$(awk '{s+=$1} END{printf "%.0f", s}' "$tmp/wrk-a" "$tmp/wrk-b")
	P99[$1]="$(awk '{print $2}' "$tmp/wrk-a")/$(awk '{print $2}' "$tmp/wrk-b")"
	CROSS[$1]=$(python3 "$here/crossing.py" "$pa" "$pb" $N)
}

# cross_two NAME BACKENDS: two instances on BACKENDS, N crossings from B to
# A: CROSS[NAME].
cross_two() {
	local pa pb; pa=$(port); pb=$(port)
	instance "$1-a" "$pa" "$2"
	instance "$1-b" "$pb" "$2"
	CROSS[$1]=$(python3 "$here/crossing.py" "$pa" "$pb" $N)
}

# field LINE KEY: the value after KEY in a "key value ..." line.
field() { echo "$1" | awk -v k="$2" '{for(i=1;i<=NF;i++) if($i==k) print $(i+1)}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (b > 0) printf "%.2f", a / b; else print "-" }'; }

# crossings NAME: CROSS[NAME]'s list_changed and answer p50/p99.
crossings() {
	printf '%22s %22s' \
		"$(field "${CROSS[$1]}" changed_p50_ms)/$(field "${CROSS[$1]}" changed_p99_ms) ms" \
		"$(field "${CROSS[$1]}" answer_p50_ms)/$(field "${CROSS[$1]}" answer_p99_ms) ms"
}

# row WIDTH LABEL NAME: a line of the table: the set-up, calls/s, p99,
# crossings.
row() {
	printf "%-${1}s %12s %14s %s\n" "$2" "${RATE[$3]}" "${P99[$3]}" "$(crossings "$3")"
}
# cross_row WIDTH LABEL NAME: the same with the crossings only.
cross_row() {
	printf "%-${1}s %s\n" "$2" "$(crossings "$3")"
}

# PostgreSQL's programs (Debian keeps them out of PATH), "" without them.
pg_bindir() {
	local d
	d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
	[ -n "$d" ] || d=$(dirname "$(command -v initdb 2>/dev/null || echo /nonexistent/x)")
	[ -x "$d/initdb" ] && echo "$d"
	return 0
}
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
pg_stop() {
	[ -f "$tmp/pg/data/postmaster.pid" ] && as_pg "$bindir/pg_ctl" -D "$tmp/pg/data" -m immediate -w stop >/dev/null 2>&1
	return 0
}
# A PostgreSQL of the bench's own in $tmp/pg on P_PG, with a database mcpd
# (user mcpd, trust), stopped at the end; needs bindir (pg_bindir).
pg_start() {
	P_PG=$(port)
	mkdir -p "$tmp/pg"
	if [ "$(id -u)" = 0 ]; then chmod 711 "$tmp"; chown postgres: "$tmp/pg"; fi
	(cd "$tmp/pg" && as_pg "$bindir/initdb" -D "$tmp/pg/data" -U mcpd -A trust --no-sync -E UTF8 --locale=C >/dev/null)
	cat >> "$tmp/pg/data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $P_PG
unix_socket_directories = '$tmp/pg'
fsync = off
synchronous_commit = off
max_connections = 200
CONF
	cleanups+=(pg_stop)
	(cd "$tmp/pg" && as_pg "$bindir/pg_ctl" -D "$tmp/pg/data" -l "$tmp/pg/log" -w start >/dev/null)
	psql -X -q -h 127.0.0.1 -p "$P_PG" -U mcpd -d postgres -c "CREATE DATABASE mcpd" >/dev/null
}

# mcpd on $tmp/mcpd.yaml, its log in $tmp/mcpd.log; MCPD_PID. Exits with
# the log if it does not start.
start_mcpd() {
	"$MCPD" -c "$tmp/mcpd.yaml" 2>"$tmp/mcpd.log" &
	pids+=($!)
	MCPD_PID=$!
	sleep 0.1
	kill -0 "$MCPD_PID" 2>/dev/null || { echo "$ME: mcpd exited:" >&2; cat "$tmp/mcpd.log" >&2; exit 1; }
}
