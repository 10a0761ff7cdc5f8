#!/bin/sh
# stats: prints JSON; with output: json, mcpd returns it as structuredContent.
set -eu
read -r load1 load5 load15 _ < /proc/loadavg
mem_total=$(awk '/^MemTotal:/ {print $2}' /proc/meminfo)
mem_avail=$(awk '/^MemAvailable:/ {print $2}' /proc/meminfo)
up=$(cut -d' ' -f1 /proc/uptime)
printf '{"hostname":%s,"uptime_seconds":%s,"load":[%s,%s,%s],"memory_kib":{"total":%s,"available":%s}}\n' \
	"$(mcpd-tool quote "$(hostname)")" "$up" "$load1" "$load5" "$load15" "$mem_total" "$mem_avail"
