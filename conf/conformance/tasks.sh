#!/bin/sh
# The fixtures of the tasks extension (io.modelcontextprotocol/tasks):
# ordinary commands; mcpd.yaml says which may or must run as a task.
set -eu
confirm_schema='{"type":"object","properties":{"confirm":{"type":"boolean"}},"required":["confirm"]}'
name_schema='{"type":"object","properties":{"name":{"type":"string"}},"required":["name"]}'
case "$1" in
slow_compute)
	mcpd-tool progress 0 "$MCP_ARG_seconds" "computing ${MCP_ARG_label:-}"
	sleep "$MCP_ARG_seconds"
	printf 'Computed %s in %s second(s).\n' "${MCP_ARG_label:-}" "$MCP_ARG_seconds" ;;
failing_job)
	sleep 1
	echo "the job failed: nothing to do" >&2
	echo "The job failed."
	exit 1 ;;
protocol_error_job)
	# A crash, not a tool error: the task fails.
	sleep 0.2
	kill -SEGV $$ ;;
confirm_delete)
	a=$(mcpd-tool elicit --key confirm "Delete $MCP_ARG_filename?" "$confirm_schema")
	if [ "$(mcpd-tool get content.confirm "$a")" = true ]; then
		printf 'Deleted %s.\n' "$MCP_ARG_filename"
	else
		printf 'Kept %s.\n' "$MCP_ARG_filename"
	fi ;;
multi_input)
	a=$(mcpd-tool ask '{
	  "name": {"method": "elicitation/create", "params": {"message": "Your name?",
	    "requestedSchema": {"type": "object", "properties": {"name": {"type": "string"}}}}},
	  "confirm": {"method": "elicitation/create", "params": {"message": "Go ahead?",
	    "requestedSchema": {"type": "object", "properties": {"confirm": {"type": "boolean"}}}}}}')
	printf 'Got %s and %s.\n' "$(mcpd-tool get name.content.name "$a")" "$(mcpd-tool get confirm.content.confirm "$a")" ;;
with_task)
	# Asks first (answered through MRTR before the task exists), then
	# works long enough to become a task.
	a=$(mcpd-tool elicit --key user_name "What is your name?" "$name_schema")
	sleep 2
	printf 'Hello, %s, from a task.\n' "$(mcpd-tool get content.name "$a")" ;;
*)
	echo "tasks.sh: unknown fixture $1" >&2
	exit 2 ;;
esac
