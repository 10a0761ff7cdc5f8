#!/bin/sh
printf 'Hello, %s!' "$MCP_ARG_name"
