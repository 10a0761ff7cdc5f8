#!/bin/sh
# Asks the client's model; prints what it answered.
set -eu
answer=$(mcpd-tool sample "$MCP_ARG_prompt" 100)
printf 'LLM response: %s\n' "$(mcpd-tool get content.text "$answer")"
