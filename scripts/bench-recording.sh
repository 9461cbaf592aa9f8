#!/usr/bin/env bash
# Recording on against off (issue #12): runs a loadgen scenario alternately
# with the server's recording off and on (OPSCENTER_RECORDING_ENABLED through
# `loadgen -recording`), ROUNDS times, and prints packets per server
# CPU-second of each run, the medians and their ratio, and what was recorded.
# Nothing is written to docs/.
#
#   ./scripts/bench-recording.sh                       # fanout, N = 190, 30 s, 3 rounds
#   SCENARIO=province DURATION=60s ./scripts/bench-recording.sh
#   OUT=/tmp/rec ROUNDS=5 ./scripts/bench-recording.sh
set -euo pipefail
cd "$(dirname "$0")/.."
scenario=${SCENARIO:-fanout}
n=${N:-190}
duration=${DURATION:-30s}
rounds=${ROUNDS:-3}
out=${OUT:-$(mktemp -d)}
mkdir -p "$out"
go build -o "$out/loadgen" ./cmd/loadgen
echo "rec	pkt/CPU-s	cores	fwd pkt/s	loss %	load	files	program bytes	program s	MB/min	floor files	(one line per run; in $out)"
for i in $(seq 1 "$rounds"); do
	for rec in off on; do
		f="$out/$scenario-$rec-$i.json"
		echo "$(date -u +%H:%M:%S) $scenario N=$n recording $rec, round $i, load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
		"$out/loadgen" -q -scenario "$scenario" -n "$n" -duration "$duration" -recording "$rec" -json "$f" >/dev/null
		jq -r --arg rec "$rec" '.[] | "\($rec)\t\(.packets_per_cpu_second | floor)\t\(.server_cores * 1000 | floor / 1000)\t\(.forwarded_pps | floor)\t\(.loss * 100000 | floor / 1000)\t\(.load)\t\(.recording.files)\t\(.recording.program_bytes)\t\(.recording.program_media_seconds * 10 | floor / 10)\t\(.recording.program_mb_per_min * 100 | floor / 100)\t\(.recording.floor_files)"' "$f"
	done
done | tee "$out/runs.tsv"
median() { sort -n | awk '{v[NR] = $1} END {print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2)}'; }
off=$(awk -F'\t' '$1 == "off" {print $2}' "$out/runs.tsv" | median)
on=$(awk -F'\t' '$1 == "on" {print $2}' "$out/runs.tsv" | median)
echo "median pkt per CPU-s: off $off, on $on, on/off $(awk -v a="$on" -v b="$off" 'BEGIN {printf "%.3f", a / b}')"
