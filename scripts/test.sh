#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test (unit + integration against the real lab).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
echo "test: lint (biome) and type check (tsc --noEmit)"
npx biome check src test bench
npx tsc -p tsconfig.json --noEmit
exec bash scripts/run-tests.sh all
