#!/bin/bash
# Runs one libFuzzer target for a while (make fuzz, make check-fuzz).
#   tests/fuzz/run.sh BUILD TARGET SECONDS [extra libFuzzer flags]
# The seeds (tests/fuzz/corpus/TARGET) are replayed first, so that every
# input that once crashed is tried again; what the run learns goes to
# BUILD/fuzz-corpus/TARGET, never into the source tree. A crash, leak,
# timeout or out-of-memory fails the run: its input is written to
# BUILD/fuzz-crashes/TARGET/ and printed, with the end of the report.
# FUZZ_INPUT_TIMEOUT (s, one input) and FUZZ_RSS_MB (MB) override the limits.
set -u

build=$1
target=$2
seconds=$3
shift 3

dir=$(dirname "$0")
bin=$build/fuzz/$target
seeds=$dir/corpus/$target
corpus=$build/fuzz-corpus/$target
crashes=$build/fuzz-crashes/$target
log=$build/fuzz-logs/$target.log
mkdir -p "$corpus" "$crashes" "$build/fuzz-logs"

# Longest input tried: what the target's parser would be given, bounded so
# that a run explores rather than grows.
case $target in
http) max_len=20000 ;;
jsonrpc) max_len=16384 ;;
config) max_len=12288 ;;
reqstate) max_len=4096 ;;
form) max_len=8192 ;;
jwt) max_len=8192 ;;
*) max_len=4096 ;;
esac
dict=
[ -f "$dir/$target.dict" ] && dict=-dict=$dir/$target.dict

TIMEFORMAT='%U %S'
cpu=$( { time "$bin" -max_total_time="$seconds" -timeout="${FUZZ_INPUT_TIMEOUT:-10}" \
	-rss_limit_mb="${FUZZ_RSS_MB:-2048}" -max_len=$max_len $dict \
	-artifact_prefix="$crashes/" -print_final_stats=1 "$@" \
	"$corpus" "$seeds" >"$log" 2>&1; echo "rc $?" >&2; } 2>&1 )
rc=$(echo "$cpu" | sed -n 's/^rc //p')
cpu=$(echo "$cpu" | grep -v '^rc ' | awk '{ printf "%.0f", $1 + $2 }')
runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1)
echo "fuzz: $target: $cpu s of CPU, ${runs:-?} inputs, ${cov:-no coverage line}, log $log"
if [ $rc -ne 0 ]; then
	echo "fuzz: $target FAILED (exit $rc):"
	grep -E 'ERROR|runtime error|^SUMMARY|^ +#[0-9]+ 0x| in LLVMFuzzerTestOneInput|abort|Direct leak' "$log" |
	    grep -v 'fuzzer::\|libc_start\|in main \|operator new' | head -n 30 | sed 's/^/    /'
	sed -n 's/.*Test unit written to //p' "$log" | while read -r f; do
		echo "fuzz: $target: reproducer $f"
		echo "fuzz:   replay: make fuzz-repro TARGET=$target INPUT=$f"
	done
	exit 1
fi
exit 0
