#!/usr/bin/env bash
# Installs what opscenter needs on a fresh Debian machine, and nothing that is there.
#   scripts/install-deps.sh run    PostgreSQL server binaries (embedded database)
#   scripts/install-deps.sh test   the same, plus Chromium for the browser tests,
#                                  ffmpeg for the recorder's tests and TypeScript's
#                                  tsc (npm) for the browser apps' types
# Go modules are fetched by `go mod download`. Packages go in through apt as root.
set -euo pipefail
want=${1:-run}

need=()
if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
  need+=(postgresql postgresql-contrib)
elif ! ls /usr/share/postgresql/*/extension/unaccent.control >/dev/null 2>&1; then
  need+=(postgresql-contrib)
fi
if [ "$want" = test ]; then
  command -v chromium >/dev/null 2>&1 || need+=(chromium fonts-dejavu-core)
  # The fault tests cut one endpoint's path with iptables (this kernel has no netem).
  command -v iptables >/dev/null 2>&1 || need+=(iptables)
  # The recorder's tests read their WebM files back with ffprobe and make VP8 with ffmpeg.
  command -v ffprobe >/dev/null 2>&1 || need+=(ffmpeg)
  # The browser apps are type-checked with tsc, from npm's typescript package (below).
  command -v tsc >/dev/null 2>&1 || command -v npm >/dev/null 2>&1 || need+=(npm)
fi

if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "missing Debian packages: ${need[*]}; run as root: apt-get install -y ${need[*]}" >&2
    exit 1
  fi
  echo "installing: ${need[*]}"
  # opscenter runs its own private cluster; don't let the package start a system one.
  mkdir -p /etc/postgresql-common
  grep -qs '^create_main_cluster' /etc/postgresql-common/createcluster.conf ||
    echo 'create_main_cluster = false' >> /etc/postgresql-common/createcluster.conf
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}"
fi

if [ "$want" = test ] && ! command -v tsc >/dev/null 2>&1; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "missing tsc; run as root: npm install -g typescript" >&2
    exit 1
  fi
  echo "installing: typescript (npm)"
  npm install -g --no-audit --no-fund typescript
fi

go mod download
