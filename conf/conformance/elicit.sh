#!/bin/sh
# Asks the user through the client: $1 is the message, $2 the schema.
# Prints "<prefix>: action=..., content=...".
set -eu
prefix=$3
answer=$(mcpd-tool elicit "$1" "$2")
content=$(mcpd-tool get content "$answer" || echo '{}')
printf '%s: action=%s, content=%s\n' "$prefix" "$(mcpd-tool get action "$answer")" "$content"
