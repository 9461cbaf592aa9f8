#!/usr/bin/env bash
# make soak: 190 synthetic endpoints against a freshly built opscenter (private
# PostgreSQL in a temp dir) for SOAK_DURATION (default 30m), with churn of 5 joins
# and leaves per minute. Exits non-zero when goroutines, heap or RSS drift past the
# limits of issue 6. Extra flags pass through: scripts/soak.sh -n 60 -keep
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p test-output
stamp=$(date +%Y%m%d-%H%M%S)
exec go run ./cmd/soak -duration "${SOAK_DURATION:-30m}" -n "${SOAK_ENDPOINTS:-190}" \
  -json "test-output/soak-$stamp.json" -profiles "test-output/soak-$stamp" "$@"
