#!/bin/sh
# Exits non-zero: mcpd answers with isError and this output.
echo "This tool intentionally returns an error for testing"
exit 1
