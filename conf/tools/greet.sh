#!/bin/sh
# greet: arguments arrive in the environment (MCP_ARG_name, MCP_ARG_times)
# and as one JSON object on stdin. No shell ever sees them as code.
set -eu
times=${MCP_ARG_times:-1}
i=0
while [ "$i" -lt "$times" ] && [ "$i" -lt 10 ]; do
	printf 'Hello, %s!\n' "$MCP_ARG_name"
	i=$((i + 1))
done
