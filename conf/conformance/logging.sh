#!/bin/sh
# Three log messages to the client while the tool runs, then a result.
set -eu
mcpd-tool log info "Tool execution started"
sleep 0.05
mcpd-tool log info "Tool processing data"
sleep 0.05
mcpd-tool log info "Tool execution completed"
echo "Tool with logging executed successfully"
