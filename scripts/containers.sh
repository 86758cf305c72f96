#!/usr/bin/env bash
# Prepares this machine for the container deployment (docker-compose.yml), installing or
# starting only what is missing, one line per step with its time:
#   1. Debian packages: docker.io, docker-compose (1.29, Debian 12's only compose), mmdebstrap
#   2. a Docker engine: containerd and dockerd started by hand (no systemd) with
#      --iptables=false --ip-forward=false --bridge=none: the machine's firewall, forwarding
#      and links stay as they are; compose networks still work (images build with network: host)
#   3. `docker compose`: a CLI plugin that forwards to docker-compose 1.29 (no v2 plugin in Debian 12)
#   4. the build: npm ci and npm run build (the image takes dist/ and node_modules/ from here)
#   5. the build host's own node binary into the build context (.container/node): Node.js 20 is
#      not in Debian 12 and nothing is downloaded
#   6. the base image pgarbiter-base:bookworm, bootstrapped from this machine's Debian mirror
#      (mmdebstrap --variant=minbase | docker import), unless PGARBITER_BASE_IMAGE names another
# Then: docker compose up -d. `bash scripts/containers.sh stop-engine` stops an engine that this
# script started (by the PIDs it recorded), nothing else.
set -euo pipefail
cd "$(dirname "$0")/.."

BASE_IMAGE="${PGARBITER_BASE_IMAGE:-pgarbiter-base:bookworm}"
LOCAL_BASE=pgarbiter-base:bookworm
RUN_DIR=/run/pgarbiter-engine
LOG_DIR=/var/log/pgarbiter-engine
PLUGIN=/usr/local/lib/docker/cli-plugins/docker-compose

die() { echo "containers: $*" >&2; exit 1; }
now() { date +%s.%N; }
step() { # step NAME COMMAND...: runs it, then prints one line with its time
  local name=$1 t0 out
  shift
  t0=$(now)
  out=$("$@")
  printf 'containers: %-34s %6.1f s  %s\n' "$name" "$(echo "$(now) - $t0" | bc)" "$out"
}
engine_up() { timeout 10 docker info >/dev/null 2>&1; }

stop_engine() {
  local any=0
  for d in dockerd containerd; do
    local f="$RUN_DIR/$d.pid"
    [ -f "$f" ] || continue
    local pid
    pid=$(cat "$f")
    # Only the process this script started: the PID must still be that program.
    if [ -r "/proc/$pid/comm" ] && [ "$(cat "/proc/$pid/comm")" = "$d" ]; then
      kill -TERM "$pid"
      for _ in $(seq 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
      echo "containers: stopped $d (pid $pid)"
      any=1
    fi
    rm -f "$f"
  done
  [ $any = 1 ] || echo "containers: no engine started by this script is running"
}

if [ "${1:-}" = stop-engine ]; then stop_engine; exit 0; fi
[ $# -eq 0 ] || die "usage: bash scripts/containers.sh [stop-engine]"
[ "$(id -u)" -eq 0 ] || die "must run as root (it installs packages and starts the Docker engine): try sudo bash $0"

packages() {
  local want=(docker-compose) missing=()
  command -v dockerd >/dev/null 2>&1 || engine_up || want+=(docker.io)
  [ "$BASE_IMAGE" != "$LOCAL_BASE" ] || want+=(mmdebstrap)
  for p in "${want[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  if [ ${#missing[@]} -eq 0 ]; then echo "present: ${want[*]}"; return; fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
  echo "installed: ${missing[*]}"
}

start_engine() {
  if engine_up; then echo "already running"; return; fi
  mkdir -p "$RUN_DIR" "$LOG_DIR"
  local sock=/run/containerd/containerd.sock pid
  if ! timeout 5 ctr --address "$sock" version >/dev/null 2>&1; then
    # Nothing answers on the socket, so a socket file left there is stale (a machine stopped with
    # the engine running). Waiting for the file to exist would then return at once, before the new
    # containerd listens: remove it and wait for containerd to answer instead.
    rm -f "$sock" "$sock.ttrpc"
    setsid containerd >"$LOG_DIR/containerd.log" 2>&1 </dev/null &
    pid=$!
    echo $pid >"$RUN_DIR/containerd.pid"
    for _ in $(seq 100); do
      timeout 5 ctr --address "$sock" version >/dev/null 2>&1 && break
      kill -0 $pid 2>/dev/null || break
      sleep 0.2
    done
    timeout 5 ctr --address "$sock" version >/dev/null 2>&1 ||
      die "containerd did not start within 20 s: $(tail -n 3 "$LOG_DIR/containerd.log" | tr '\n' ' ') (whole log: $LOG_DIR/containerd.log)"
  fi
  # dockerd refuses to start on a pid file whose PID is alive: drop one that names another program.
  local dpid
  dpid=$(cat /var/run/docker.pid 2>/dev/null || true)
  if [ -n "$dpid" ] && [ "$(cat "/proc/$dpid/comm" 2>/dev/null)" != dockerd ]; then rm -f /var/run/docker.pid; fi
  setsid dockerd --iptables=false --ip-forward=false --bridge=none \
    --containerd="$sock" >"$LOG_DIR/dockerd.log" 2>&1 </dev/null &
  pid=$!
  echo $pid >"$RUN_DIR/dockerd.pid"
  for _ in $(seq 150); do
    engine_up && break
    kill -0 $pid 2>/dev/null || break
    sleep 0.2
  done
  engine_up || die "dockerd did not start within 30 s: $(tail -n 3 "$LOG_DIR/dockerd.log" | tr '\n' ' ') (whole log: $LOG_DIR/dockerd.log)"
  echo "started containerd and dockerd (logs in $LOG_DIR; stop: bash $0 stop-engine)"
}

compose_plugin() {
  if docker compose version >/dev/null 2>&1; then echo "present: $(docker compose version --short 2>/dev/null || true)"; return; fi
  command -v docker-compose >/dev/null 2>&1 || die "docker-compose is missing: apt-get install -y docker-compose"
  mkdir -p "$(dirname "$PLUGIN")"
  cat >"$PLUGIN" <<'PLUGIN_EOF'
#!/bin/sh
# A Docker CLI plugin written by pgarbiter's scripts/containers.sh: `docker compose ARGS` runs
# Debian 12's docker-compose 1.29 (Debian has no compose v2 plugin).
if [ "${1:-}" = docker-cli-plugin-metadata ]; then
  echo '{"SchemaVersion":"0.1.0","Vendor":"pgarbiter","Version":"1.29","ShortDescription":"Docker Compose (forwards to docker-compose 1.29)"}'
  exit 0
fi
shift # the CLI passes the plugin's name first
exec docker-compose "$@"
PLUGIN_EOF
  chmod 755 "$PLUGIN"
  docker compose version >/dev/null 2>&1 || die "docker compose still does not answer after installing $PLUGIN"
  echo "installed $PLUGIN (forwards to docker-compose 1.29)"
}

build() {
  command -v node >/dev/null 2>&1 || die "node is not installed: install Node.js 20 and run this again"
  [ "$(node -p 'process.versions.node.split(".")[0]')" -ge 20 ] || die "node $(node -v) is too old: pgarbiter needs Node.js 20"
  if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    npm ci --no-audit --no-fund >/dev/null
  fi
  npm run -s build
  echo "dist/ built"
}

node_binary() {
  local src
  src=$(readlink -f "$(command -v node)")
  mkdir -p .container
  if cmp -s "$src" .container/node; then echo "kept .container/node ($(node -v))"; return; fi
  cp "$src" .container/node.tmp && mv .container/node.tmp .container/node
  echo "copied $src ($(node -v)) to .container/node"
}

base_image() {
  if docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then echo "present: $BASE_IMAGE"; return; fi
  if [ "$BASE_IMAGE" != "$LOCAL_BASE" ]; then echo "$BASE_IMAGE: pulled by the build"; return; fi
  # This machine's own Debian mirror (deb822 or one-line form), not a name written here.
  local sources=""
  for f in /etc/apt/sources.list.d/debian.sources /etc/apt/sources.list; do
    if [ -f "$f" ] && grep -q bookworm "$f"; then sources=$f; break; fi
  done
  [ -n "$sources" ] || die "no Debian 12 (bookworm) apt source found in /etc/apt: cannot bootstrap $LOCAL_BASE"
  local tar
  tar=$(mktemp /tmp/pgarbiter-base.XXXXXX.tar)
  if ! mmdebstrap --quiet --variant=minbase bookworm "$tar" "$sources" 2>"$LOG_DIR/mmdebstrap.log"; then
    rm -f "$tar"
    die "mmdebstrap failed: see $LOG_DIR/mmdebstrap.log"
  fi
  docker import "$tar" "$LOCAL_BASE" >/dev/null
  rm -f "$tar"
  echo "bootstrapped $LOCAL_BASE from $sources ($(docker image inspect -f '{{.Size}}' "$LOCAL_BASE" | awk '{printf "%d MB", $1/1e6}'))"
}

mkdir -p "$LOG_DIR"
t_all=$(now)
step "1 packages" packages
step "2 Docker engine" start_engine
step "3 docker compose" compose_plugin
step "4 npm build" build
step "5 node for the image" node_binary
step "6 base image $BASE_IMAGE" base_image
printf 'containers: ready in %.1f s: now `docker compose up -d`, then `./pgarbiter status --config .compose/client.yaml`\n' \
  "$(echo "$(now) - $t_all" | bc)"
