#!/bin/sh
# Progress 0, 50, 100 of 100, then a result.
set -eu
for step in 0 50 100; do
	mcpd-tool progress "$step" 100 "Completed step $step of 100"
	[ "$step" = 100 ] || sleep 0.05
done
echo "Progress reported in 3 steps"
