#!/usr/bin/env bash
# What a pattern in a tool's input schema costs: tools/call throughput of
# the in-process greet tool with the plain schema, and with one whose
# name property has a pattern and whose patternProperties match the other
# argument. Patterns are compiled once, when the config is read; MCPD=
# another binary (a build of an older commit) gives its figures to compare.
# Prints figures; asserts nothing about time.
#
#   bench/schema.sh            10 s per tool (BENCH_SECONDS)
#   bench/schema.sh --quick    1 s per tool (make check runs this)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
DUR=${BENCH_SECONDS:-10}
CONNS=32
if [ "${1:-}" = --quick ]; then DUR=1; fi

. "$here/common.sh"
bench_tmp schema
command -v wrk >/dev/null || { echo "$ME: needs wrk (bench/run.sh installs it)" >&2; exit 1; }
[ -n "${MCPD:-}" ] || make -s -C "$root" >/dev/null
MCPD=${MCPD:-$root/build/mcpd}

P=$(port)
cat > "$tmp/mcpd.yaml" <<YAML
listen: [127.0.0.1:$P]
workers: auto
log: { level: warn }
limits: { max_connections: 4096 }
tools:
  - { name: greet, description: Greets in-process., input: { name: string }, required: [name], plugin: examples.so:greet }
  - name: greet_pattern
    description: Greets in-process; its arguments checked against patterns.
    plugin: examples.so:greet
    input_schema:
      type: object
      properties:
        name: { type: string, pattern: '^[A-Za-z][A-Za-z0-9 _.-]{0,63}$' }
      patternProperties:
        '^x-[a-z]+$': { type: string, pattern: '^[0-9a-f]{8,32}$' }
      required: [name]
YAML
start_mcpd
wait_ready "$P"
SID=$(session "$P")

# CPU ms mcpd (master and workers) spent per 1000 calls: steadier than
# calls/s on a machine shared with other work.
HZ=$(getconf CLK_TCK)
cpu_ticks() { local t=0 v; for p in $MCPD_PID $(pgrep -P $MCPD_PID | tr '\n' ' '); do
	v=$(awk '{print $14+$15}' /proc/$p/stat 2>/dev/null) || v=0; t=$((t + ${v:-0})); done; echo $t; }
measure() {     # "calls/s p99 cpu-ms-per-1000"
	local before after r
	before=$(cpu_ticks)
	r=$(wrk_rate "$P" "$SID" $CONNS "" 2)
	after=$(cpu_ticks)
	echo "$r $(awk -v t=$((after - before)) -v hz=$HZ -v rate="${r% *}" -v d=$DUR \
		'BEGIN{printf "%.1f", t * 1000.0 / hz / (rate * d) * 1000}')"
}
PLAIN=$(measure)
CALL='{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"greet_pattern","arguments":{"name":"bench","x-trace":"0123abcd"}}}'
# The call must succeed, not be refused by its schema.
curl -s -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' \
	-H "Mcp-Session-Id: $SID" -H 'MCP-Protocol-Version: 2025-11-25' "http://127.0.0.1:$P/mcp" -d "$CALL" |
	grep -q 'Hello, bench' || { echo "$ME: greet_pattern did not answer" >&2; exit 1; }
PATTERN=$(measure)

echo
echo "input schema patterns: $(nproc) CPUs, ${DUR}s per tool, $CONNS connections ($MCPD)"
printf '%-48s %10s %10s %14s\n' "tool" "calls/s" "p99" "CPU ms/1000"
printf '%-48s %10s %10s %14s\n' "greet, no pattern" $PLAIN
printf '%-48s %10s %10s %14s\n' "greet_pattern, 2 patterns + patternProperties" $PATTERN
printf '  ratio pattern / plain calls/s                  %8s\n' "$(ratio "${PATTERN%% *}" "${PLAIN%% *}")"

# The validation alone, in one process: patterns compiled on every call
# (as before) against compiled once at load.
if [ -f "$root/build/daemon/lib/schema.o" ]; then
	cc -O2 -I"$root/daemon/lib" -o "$tmp/schema_validate" "$here/schema_validate.c" \
		"$root/build/daemon/lib/schema.o" "$root/build/daemon/lib/json.o" "$root/build/daemon/lib/arena.o" -lcjson -lpcre2-8 -lm
	V=$("$tmp/schema_validate" $((DUR * 20000)))
	printf '  one validation, CPU: compiling the patterns each time %s us, compiled at load %s us\n' \
		"$(field "$V" on_the_fly_us)" "$(field "$V" compiled_us)"
fi
