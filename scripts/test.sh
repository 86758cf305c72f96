#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test (unit + integration against the real lab).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec bash scripts/run-tests.sh all
