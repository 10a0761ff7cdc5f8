#!/usr/bin/env bash
# mcpd as a Lambda function, through the Runtime API the tests use
# (tests/integration/lambdart.py, written from AWS's documentation: no
# real Lambda is reachable here): the cold start, from exec to the first
# answered invocation, and warm calls/s on one execution environment, for
# a configuration of ten tools (memory storage, and dynamodb on moto),
# beside the official TypeScript SDK served as a Node.js Lambda handler
# (bench/lambda-node.mjs). Prints figures; asserts nothing about time.
#
#   bench/lambda.sh           20 cold starts, 5 s warm (COLD_RUNS, BENCH_SECONDS)
#   bench/lambda.sh --quick   5 cold starts, 1 s warm
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
if [ "${1:-}" = --quick ]; then
	export COLD_RUNS=${COLD_RUNS:-5} BENCH_SECONDS=${BENCH_SECONDS:-1}
fi
[ -x "$root/build/mcpd" ] || { echo "bench/lambda.sh: build mcpd first (make)" >&2; exit 1; }
exec python3 "$here/lambda.py"
