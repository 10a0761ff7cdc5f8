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

ME=bench/postgres.sh

. "$here/common.sh"
bindir=$(pg_bindir)
command -v wrk >/dev/null && [ -n "$bindir" ] || {
	echo "$ME: needs wrk and postgresql (bench/run.sh and scripts/install-deps.sh test install them)" >&2
	exit 1; }
bench_tmp pg
pg_start
URL="postgresql://mcpd@127.0.0.1:$P_PG/mcpd"

CALL='{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"greet","arguments":{"name":"bench"}}}'
declare -A RATE P99
measure() {   # name storage
	local p sid out
	p=$(port)
	instance "$1" "$p" "$2"
	sid=$(session "$p")
	out=$(BODY="$CALL" SID="$sid" wrk -t1 -c$CONNS -d${DUR}s --latency -s "$here/call.lua" "http://127.0.0.1:$p/mcp" 2>&1)
	if echo "$out" | grep -Eq "(non200|mismatched) [1-9]"; then echo "bench/postgres.sh: errors:" >&2; echo "$out" >&2; exit 1; fi
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
