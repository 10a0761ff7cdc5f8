#!/bin/sh
# countdown: reports progress to the client while it works.
set -eu
n=${MCP_ARG_seconds:-3}
i=0
while [ "$i" -lt "$n" ]; do
	mcpd-tool progress "$i" "$n" "$((n - i)) second(s) left"
	sleep 1
	i=$((i + 1))
done
mcpd-tool log info "countdown of $n finished"
echo "Done after $n second(s)."
