#!/bin/sh
# test://template/{id}/data: the variable arrives as MCP_ARG_id.
set -eu
id=$(mcpd-tool quote "$MCP_ARG_id")
data=$(mcpd-tool quote "Data for ID: $MCP_ARG_id")
printf '{"id":%s,"templateTest":true,"data":%s}' "$id" "$data"
