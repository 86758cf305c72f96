#!/usr/bin/env bash
# Installs what is missing, builds, and runs the demonstration in the namespace lab.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cli=(node dist/src/cli/main.js)
if "${cli[@]}" --help | grep -qE '^ +demo( |$)'; then
  exec "${cli[@]}" demo "$@"
fi
# Until `pgarbiter demo` exists: the lab with stage 1 (primary + hot standby, seen from the client).
echo "demo: bringing the lab up and showing stage 1 (remove it with: node dist/src/cli/main.js lab down)"
exec "${cli[@]}" lab up "$@"
