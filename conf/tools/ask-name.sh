#!/bin/sh
# ask-name: asks the user through the client (elicitation) before acting.
set -eu
answer=$(mcpd-tool elicit "What is your name?" \
	'{"type":"object","properties":{"name":{"type":"string","description":"Your name"}},"required":["name"]}')
if [ "$(mcpd-tool get action "$answer")" != accept ]; then
	echo "No name given."
	exit 0
fi
printf 'Nice to meet you, %s.\n' "$(mcpd-tool get content.name "$answer")"
