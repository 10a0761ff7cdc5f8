#!/bin/sh
# The 2026-07-28 MRTR fixtures. Each asks its questions (named with --key)
# before it does anything: under 2026-07-28 mcpd stops the script at the
# first question the client has not answered yet, returns the questions,
# and runs the script again with the answers when the client retries.
set -eu
name_schema='{"type":"object","properties":{"name":{"type":"string"}},"required":["name"]}'
confirm_schema='{"type":"object","properties":{"ok":{"type":"boolean"}},"required":["ok"]}'
case "$1" in
elicitation)
	a=$(mcpd-tool elicit --key user_name "What is your name?" "$name_schema")
	printf 'Hello, %s!\n' "$(mcpd-tool get content.name "$a" || echo unknown)" ;;
sampling)
	a=$(mcpd-tool sample --key sample_request "What is the capital of France?" 100)
	printf 'Sampling result: %s\n' "$(mcpd-tool get content.text "$a")" ;;
roots)
	a=$(mcpd-tool roots --key roots_request)
	printf 'Roots: %s\n' "$(mcpd-tool get roots "$a")" ;;
request-state)
	a=$(mcpd-tool elicit --key confirm "Please confirm" "$confirm_schema")
	[ "$(mcpd-tool get content.ok "$a")" = true ] || { echo "not confirmed"; exit 1; }
	echo "state-ok: requestState validated" ;;
tampered)
	a=$(mcpd-tool elicit --key confirm "Please confirm" "$confirm_schema")
	echo "integrity-ok: state verified" ;;
multiple)
	a=$(mcpd-tool ask '{
	  "user_name": {"method": "elicitation/create", "params": {"message": "What is your name?",
	    "requestedSchema": {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}}},
	  "greeting": {"method": "sampling/createMessage", "params": {"messages": [{"role": "user",
	    "content": {"type": "text", "text": "Generate a greeting"}}], "maxTokens": 50}},
	  "client_roots": {"method": "roots/list", "params": {}}}')
	printf 'Name: %s; Greeting: %s; Roots: %s\n' "$(mcpd-tool get user_name.content.name "$a")" \
		"$(mcpd-tool get greeting.content.text "$a")" "$(mcpd-tool get client_roots.roots "$a")" ;;
multi-round)
	a=$(mcpd-tool elicit --key step1 "Step 1: What is your name?" "$name_schema")
	b=$(mcpd-tool elicit --key step2 "Step 2: What is your favorite color?" \
		'{"type":"object","properties":{"color":{"type":"string"}},"required":["color"]}')
	printf 'Multi-round complete for %s who likes %s\n' "$(mcpd-tool get content.name "$a")" \
		"$(mcpd-tool get content.color "$b")" ;;
capabilities)
	# Ask only what the client can answer (MCP_CLIENT_CAPABILITIES).
	req=""
	if mcpd-tool get elicitation "$MCP_CLIENT_CAPABILITIES" >/dev/null; then
		req='"elicit_input": {"method": "elicitation/create", "params": {"message": "Elicitation input",
		  "requestedSchema": {"type": "object", "properties": {"value": {"type": "string"}}, "required": ["value"]}}}'
	fi
	if mcpd-tool get sampling "$MCP_CLIENT_CAPABILITIES" >/dev/null; then
		s='"sample_input": {"method": "sampling/createMessage", "params": {"messages": [{"role": "user",
		  "content": {"type": "text", "text": "Sample request"}}], "maxTokens": 50}}'
		req=${req:+$req,}$s
	fi
	if [ -z "$req" ]; then
		echo "No supported capabilities declared"
		exit 0
	fi
	a=$(mcpd-tool ask "{$req}")
	printf 'capabilities-ok: received %s\n' "$a" ;;
prompt)
	a=$(mcpd-tool elicit --key user_context "What context should the prompt use?" \
		'{"type":"object","properties":{"context":{"type":"string"}},"required":["context"]}')
	text=$(mcpd-tool quote "Prompt with context: $(mcpd-tool get content.context "$a")")
	printf '[{"role":"user","content":{"type":"text","text":%s}}]\n' "$text" ;;
*)
	echo "unknown fixture $1" >&2; exit 1 ;;
esac
