#!/bin/sh
# The image's entrypoint. `node CONFIG`: a database node, the same code path as on a real host:
# `pgarbiter init` (as root, once) when the data directory is empty, then `pgarbiter agent` as the
# postgres user with one capability, CAP_NET_ADMIN (ambient), for the fence and the lease, and
# CAP_NET_RAW too only when the config has `vip:` (arping, the tickle ACK): what the systemd unit
# gives it (deploy/pgarbiter-agent.service). On SIGTERM (docker
# stop) the agent stops, then PostgreSQL with a fast shutdown (SIGINT to the postmaster, as
# `pg_ctl stop -m fast`), within docker's grace period. An existing data directory is left to the
# agent, which starts PostgreSQL itself (fenced first if this node was the primary).
# Anything else is run as it is (pgarbiter arbiter ..., haproxy ..., pgarbiter compose-config ...).
set -eu
if [ "${1:-}" != node ]; then exec "$@"; fi
cfg=${2:?usage: node CONFIG}
[ -r "$cfg" ] || { echo "error: cannot read config $cfg: run the config service first (docker compose up creates it)" >&2; exit 1; }
pgdata=${PGDATA:-/var/lib/pgarbiter/data}
agent=
stop() {
  [ -n "$agent" ] && kill -TERM "$agent" 2>/dev/null && wait "$agent" || true
  if [ -f "$pgdata/postmaster.pid" ]; then
    pm=$(head -1 "$pgdata/postmaster.pid")
    kill -INT "$pm" 2>/dev/null || true
    i=0
    while kill -0 "$pm" 2>/dev/null && [ $i -lt 80 ]; do sleep 0.1; i=$((i + 1)); done
  fi
  exit 0
}
trap stop TERM INT
if [ ! -s "$pgdata/PG_VERSION" ]; then
  pw=$(dirname "$cfg")/app.password
  [ -r "$pw" ] || { echo "error: cannot read $pw (the app role's password): the deployment directory is incomplete" >&2; exit 1; }
  PGARBITER_APP_PASSWORD=$(cat "$pw") pgarbiter init --config "$cfg" --demo-app-password-env PGARBITER_APP_PASSWORD
fi
caps=+net_admin
# `vip:` is a top-level key of the config (compose-config writes it so; a hand-written config too).
if grep -q '^vip:' "$cfg"; then caps=$caps,+net_raw; fi
setpriv --reuid=postgres --regid=postgres --init-groups --inh-caps=-all,$caps \
  --ambient-caps=$caps --bounding-set=-all,$caps --no-new-privs -- \
  pgarbiter agent --config "$cfg" &
agent=$!
# wait returns early when a trapped signal arrives; the trap then ends the script.
wait "$agent" || status=$?
exit "${status:-0}"
