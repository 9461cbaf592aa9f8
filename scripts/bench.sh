#!/usr/bin/env bash
# make bench: runs the province scenario (1 command room publishing the
# program, 190 publishing endpoints, a leader's console watching 49 tiles,
# the floor moving every 30 s) for 60 s with the server and the generator
# pinned to one core each, and appends the figures to docs/benchmarks.md
# (machine, date, commit, load, command).
#
#   BENCH_SCENARIO=fanout BENCH_ARGS="-n 190" ./scripts/bench.sh
set -euo pipefail
cd "$(dirname "$0")/.."
scenario=${BENCH_SCENARIO:-province}
duration=${BENCH_DURATION:-60s}
args=${BENCH_ARGS:-}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
go build -o "$tmp/loadgen" ./cmd/loadgen
load=$(cut -d' ' -f1-3 /proc/loadavg)
# shellcheck disable=SC2086
"$tmp/loadgen" -scenario "$scenario" -duration "$duration" -json "$tmp/result.json" -markdown "$tmp/rows.md" $args
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
if [ -n "$(git status --porcelain 2>/dev/null)" ]; then commit="$commit (uncommitted changes)"; fi
{
	echo
	echo "### make bench, $(date -u +%Y-%m-%d\ %H:%M) UTC, commit $commit"
	echo
	echo "Machine: $cpu, $(nproc) cores, $(uname -r). Load average before the run: $load."
	echo "Command: \`loadgen -scenario $scenario -duration $duration $args\` (server on core 0, generator on core 1)."
	echo
	cat "$tmp/rows.md"
	echo
	echo '```json'
	cat "$tmp/result.json"
	echo '```'
} >>docs/benchmarks.md
echo "appended to docs/benchmarks.md"
