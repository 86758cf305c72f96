#!/usr/bin/env bash
# Installs what is missing, builds, and runs the whole lab assignment in the namespace lab:
# `pgarbiter demo` (pass its options through, e.g. --mode subnet, --manual, --down).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec node dist/src/cli/main.js demo "$@"
