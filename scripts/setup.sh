#!/usr/bin/env bash
# Shared set-up for scripts/demo.sh and scripts/test.sh on Debian 12, as root: installs the
# system packages that are missing (and says which), then `npm ci` and the build.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
  echo "setup: must run as root (the lab creates network namespaces and installs packages): try sudo bash $0" >&2
  exit 1
fi

# chromium: the dashboard's browser test (playwright-core drives it; no browser is downloaded)
packages=(postgresql-15 iproute2 iptables nftables haproxy iputils-arping python3-minimal openssl curl tcpdump chromium)
missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing missing system packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q "${missing[@]}"
else
  echo "setup: system packages present: ${packages[*]}"
fi

if ! command -v node >/dev/null 2>&1; then
  echo "setup: node is not installed: install Node.js 20 (https://nodejs.org/en/download) and run this again" >&2
  exit 1
fi
major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$major" -lt 20 ]; then
  echo "setup: node $(node -v) is too old: pgarbiter needs Node.js 20 or newer" >&2
  exit 1
fi

if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "setup: installing npm dependencies (npm ci)"
  npm ci --no-audit --no-fund
fi
echo "setup: building (npm run build)"
npm run -s build
