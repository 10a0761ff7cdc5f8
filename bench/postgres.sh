#!/usr/bin/env bash
# Sessions in PostgreSQL: one mcpd instance on lmdb (the single-host
# set-up) beside one on the postgres storage plugin, measured the same way
# (tools/call throughput and p99 with wrk on one session: each call reads
# the session record from storage). PostgreSQL runs from a cluster of its
# own (initdb + pg_ctl, as the postgres user when run as root, fsync off).
# Prints figures and the ratio; asserts nothing about time.
#
#   bench/postgres.sh            10 s per run (BENCH_SECONDS)
#   bench/postgres.sh --quick    1 s
#   KEEP=1 bench/postgres.sh     keeps the logs and configurations in /tmp
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
DUR=${BENCH_SECONDS:-10}
CONNS=32
if [ "${1:-}" = --quick ]; then DUR=1; fi

bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
command -v wrk >/dev/null && [ -n "$bindir" ] || {
	echo "bench/postgres.sh: needs wrk and postgresql (bench/run.sh and scripts/install-deps.sh test install them)" >&2
	exit 1; }

tmp=$(mktemp -d /tmp/mcpd-bench-pg.XXXXXX)
pids=()
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	[ -f "$tmp/pg/data/postmaster.pid" ] && as_pg "$bindir/pg_ctl" -D "$tmp/pg/data" -m immediate -w stop >/dev/null 2>&1
	[ -n "${KEEP:-}" ] && echo "kept $tmp" >&2 || rm -rf "$tmp"
}
trap cleanup EXIT
. "$here/common.sh"

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
(cd "$tmp/pg" && as_pg "$bindir/pg_ctl" -D "$tmp/pg/data" -l "$tmp/pg/log" -w start >/dev/null)
psql -X -q -h 127.0.0.1 -p "$P_PG" -U mcpd -d postgres -c "CREATE DATABASE mcpd" >/dev/null
URL="postgresql://mcpd@127.0.0.1:$P_PG/mcpd"

CALL='{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"greet","arguments":{"name":"bench"}}}'
declare -A RATE P99
measure() {   # name storage
	local p sid out
	p=$(port)
	instance "$1" "$p" "$2"
	sid=$(session "$p")
	out=$(BODY="$CALL" SID="$sid" wrk -t1 -c$CONNS -d${DUR}s --latency -s "$here/call.lua" "http://127.0.0.1:$p/mcp" 2>&1)
	if echo "$out" | grep -q "non200 [1-9]"; then echo "bench/postgres.sh: errors:" >&2; echo "$out" >&2; exit 1; fi
	RATE[$1]=$(echo "$out" | awk '/Requests\/sec/{printf "%.0f", $2}')
	P99[$1]=$(echo "$out" | awk '$1=="99%"{print $2}')
}

measure lmdb "storage: { plugin: lmdb, path: $tmp/state }"
measure postgres "storage: { plugin: postgres, url: \"$URL\" }"

echo
echo "sessions in PostgreSQL: $(nproc) CPUs, ${DUR}s per run, $CONNS connections, PostgreSQL $("$bindir/postgres" --version | awk '{print $3}')"
echo
printf '%-40s %12s %14s\n' set-up "calls/s" "p99"
printf '%-40s %12s %14s\n' "one instance, lmdb + local" "${RATE[lmdb]}" "${P99[lmdb]}"
printf '%-40s %12s %14s\n' "one instance, PostgreSQL + local" "${RATE[postgres]}" "${P99[postgres]}"
echo
echo "postgres / lmdb calls/s: $(awk -v a="${RATE[postgres]}" -v b="${RATE[lmdb]}" 'BEGIN{printf "%.2f", a/b}')"
echo "(PostgreSQL on the same machine shares its CPUs with mcpd and wrk.)"
