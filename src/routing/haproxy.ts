// Client routing through HAProxy, configured the way Patroni users do it: a read-write port
// whose servers are health-checked on each agent's `GET /primary` (200 only on the writable,
// unfenced primary) and a read-only port checked on `GET /replica` (200 only on a streaming
// standby). A server marked down has its sessions closed (on-marked-down shutdown-sessions), so a
// client never keeps writing to an old primary through HAProxy.
//
// renderHaproxyConfig() is pure; startHaproxy()/stopHaproxy() run Debian's haproxy as a daemon on
// the lab's client host (config, pid file, log and stats socket in the client host's directory).
import { accessSync, constants, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { delimiter, join } from 'node:path';
// Imports from the lab's modules, not its index: lab.ts may import this file (lab up starts HAProxy).
import { daemonAlive, startDaemon, stopDaemon } from '../lab/daemon.js';
import { PG_PORT } from '../lab/pgconf.js';
import type { DaemonRecord, Lab } from '../lab/state.js';
import { PG_HOSTS } from '../lab/topology.js';
import { UserError } from '../util/errors.js';
import { run } from '../util/exec.js';

export const HAPROXY_DAEMON = 'haproxy';
export const HAPROXY_RW_PORT = 5000;
export const HAPROXY_RO_PORT = 5001;
export const HAPROXY_STATS_PORT = 7000;
export const AGENT_API_PORT = 8008;

export interface HaproxyServer {
  name: string;
  address: string;
}

export interface HaproxyConfigOptions {
  servers: HaproxyServer[];
  /** PostgreSQL port on every server (default 5432). */
  pgPort?: number;
  /** The agents' HTTP API port, where /primary and /replica are checked (default 8008). */
  apiPort?: number;
  rwPort?: number;
  roPort?: number;
  /** Address HAProxy binds its ports to (default all: `*`). */
  bind?: string;
  /** An HTTP stats page on this port (none when null; default 7000). */
  statsPort?: number | null;
  /** A stats/admin unix socket (`show stat`), none when undefined. */
  statsSocket?: string;
  /** Health check period and thresholds (defaults: 500ms, fall 2, rise 1). */
  checkInterval?: string;
  fall?: number;
  rise?: number;
  /** Client and server inactivity timeouts: long enough for an idle client session (30m). */
  sessionTimeout?: string;
  connectTimeout?: string;
  checkTimeout?: string;
  maxconnPerServer?: number;
}

const NAME_RE = /^[A-Za-z0-9_.-]{1,64}$/;
const ADDR_RE = /^[A-Za-z0-9_.:-]{1,253}$/;
const DURATION_RE = /^\d+(us|ms|s|m|h|d)?$/;

function checkPort(what: string, p: number): number {
  if (!Number.isInteger(p) || p < 1 || p > 65535)
    throw new UserError(`haproxy config: ${what} ${p} is not a port`);
  return p;
}

function checkDuration(what: string, d: string): string {
  if (!DURATION_RE.test(d)) throw new UserError(`haproxy config: ${what} "${d}" is not an HAProxy duration`);
  return d;
}

/** haproxy.cfg for a two-node cluster (or any number of nodes). Pure: no I/O. */
export function renderHaproxyConfig(o: HaproxyConfigOptions): string {
  if (o.servers.length === 0) throw new UserError('haproxy config: no servers');
  const names = new Set<string>();
  for (const s of o.servers) {
    if (!NAME_RE.test(s.name)) throw new UserError(`haproxy config: bad server name "${s.name}"`);
    if (!ADDR_RE.test(s.address)) throw new UserError(`haproxy config: bad server address "${s.address}"`);
    if (names.has(s.name)) throw new UserError(`haproxy config: server "${s.name}" listed twice`);
    names.add(s.name);
  }
  const pgPort = checkPort('pgPort', o.pgPort ?? PG_PORT);
  const apiPort = checkPort('apiPort', o.apiPort ?? AGENT_API_PORT);
  const rwPort = checkPort('rwPort', o.rwPort ?? HAPROXY_RW_PORT);
  const roPort = checkPort('roPort', o.roPort ?? HAPROXY_RO_PORT);
  const statsPort = o.statsPort === undefined ? HAPROXY_STATS_PORT : o.statsPort;
  const ports = [rwPort, roPort, ...(statsPort === null ? [] : [checkPort('statsPort', statsPort)])];
  if (new Set(ports).size !== ports.length)
    throw new UserError(`haproxy config: ports ${ports.join(', ')} collide`);
  const bind = o.bind ?? '*';
  if (bind !== '*' && !ADDR_RE.test(bind)) throw new UserError(`haproxy config: bad bind address "${bind}"`);
  const inter = checkDuration('checkInterval', o.checkInterval ?? '500ms');
  const fall = o.fall ?? 2;
  const rise = o.rise ?? 1;
  if (!Number.isInteger(fall) || fall < 1 || !Number.isInteger(rise) || rise < 1)
    throw new UserError('haproxy config: fall and rise must be whole numbers >= 1');
  const session = checkDuration('sessionTimeout', o.sessionTimeout ?? '30m');
  const connectT = checkDuration('connectTimeout', o.connectTimeout ?? '2s');
  const checkT = checkDuration('checkTimeout', o.checkTimeout ?? '1s');
  const maxconn = o.maxconnPerServer ?? 100;
  if (o.statsSocket !== undefined && !/^\/[^\s"']+$/.test(o.statsSocket))
    throw new UserError(`haproxy config: bad stats socket path "${o.statsSocket}"`);

  const listen = (name: string, port: number, path: string, comment: string) => [
    `# ${comment}`,
    `listen ${name}`,
    `    bind ${bind}:${port}`,
    '    balance roundrobin',
    `    option httpchk GET ${path}`,
    '    http-check expect status 200',
    `    default-server inter ${inter} fall ${fall} rise ${rise} on-marked-down shutdown-sessions`,
    ...o.servers.map(
      (s) => `    server ${s.name} ${s.address}:${pgPort} maxconn ${maxconn} check port ${apiPort}`,
    ),
    '',
  ];
  return [
    '# Written by pgarbiter: client routing for a primary + hot standby (Patroni-style checks).',
    '# Read-write: the node whose agent answers 200 on /primary. Read-only: 200 on /replica.',
    'global',
    '    maxconn 2000',
    // Foreground (-db) with the log on stdout: the daemon's log file gets it. No syslog needed.
    '    log stdout format raw local0 info',
    ...(o.statsSocket ? [`    stats socket ${o.statsSocket} mode 600 level admin`] : []),
    '',
    'defaults',
    '    mode tcp',
    '    log global',
    '    option tcplog',
    '    option dontlognull',
    '    retries 2',
    `    timeout connect ${connectT}`,
    `    timeout client ${session}`,
    `    timeout server ${session}`,
    `    timeout check ${checkT}`,
    '',
    ...(statsPort === null
      ? []
      : [
          `# Stats page: http://<client>:${statsPort}/`,
          'listen stats',
          '    mode http',
          `    bind ${bind}:${statsPort}`,
          '    option dontlog-normal',
          '    stats enable',
          '    stats uri /',
          '    stats refresh 2s',
          '',
        ]),
    ...listen(
      'primary',
      rwPort,
      '/primary',
      `read-write (port ${rwPort}): at most one server passes /primary`,
    ),
    ...listen('replicas', roPort, '/replica', `read-only (port ${roPort}): streaming standbys`),
  ].join('\n');
}

// ---------------------------------------------------------------- the lab's HAProxy

export const haproxyConfigPath = (lab: Lab) => join(lab.hosts.client.dir, 'haproxy.cfg');
export const haproxyLogPath = (lab: Lab) => join(lab.hosts.client.dir, 'haproxy.log');
export const haproxySocketPath = (lab: Lab) => join(lab.hosts.client.dir, 'haproxy.sock');

/** The haproxy binary, or a UserError saying how to install it. */
export function haproxyBinary(): string {
  const dirs = ['/usr/sbin', '/usr/local/sbin', ...(process.env.PATH ?? '').split(delimiter)];
  for (const dir of dirs) {
    if (!dir) continue;
    const p = join(dir, 'haproxy');
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {}
  }
  throw new UserError('haproxy is not installed: install it with `apt-get install -y haproxy`');
}

/** The lab's haproxy.cfg: both database hosts, Patroni-style checks on their agents. */
export function labHaproxyConfig(lab: Lab): string {
  return renderHaproxyConfig({
    servers: PG_HOSTS.map((h) => ({ name: h, address: lab.hosts[h].address })),
    statsSocket: haproxySocketPath(lab),
  });
}

/** `haproxy -c -f FILE`; throws with haproxy's own message when the config is refused. */
export async function validateHaproxyConfig(file: string, bin = haproxyBinary()): Promise<void> {
  const r = await run([bin, '-c', '-f', file], { timeoutMs: 15_000, allowFailure: true });
  if (r.code !== 0) {
    const msg = (r.stderr || r.stdout)
      .split('\n')
      .filter((l) => /ALERT|error/i.test(l))
      .slice(0, 3)
      .join(' | ');
    throw new Error(`haproxy refused ${file} (exit ${r.code}): ${msg || (r.stderr || r.stdout).trim()}`);
  }
}

/**
 * Writes the lab's haproxy.cfg, validates it, and starts haproxy in the foreground (-db) as the
 * daemon `haproxy` on the client host (idempotent: a running one is kept). Stop: stopHaproxy.
 */
export async function startHaproxy(lab: Lab): Promise<DaemonRecord> {
  const bin = haproxyBinary();
  const file = haproxyConfigPath(lab);
  const text = labHaproxyConfig(lab);
  const current = existsSync(file) ? readFileSync(file, 'utf8') : null;
  const running = lab.daemons[HAPROXY_DAEMON];
  if (running && daemonAlive(running) && current === text) return running;
  if (running) await stopHaproxy(lab);
  writeFileSync(file, text, { mode: 0o644 });
  await validateHaproxyConfig(file, bin);
  return startDaemon(lab, 'client', HAPROXY_DAEMON, [bin, '-db', '-f', file], haproxyLogPath(lab), {
    settleMs: 300,
  });
}

/** Stops the lab's haproxy (SIGTERM, then SIGKILL after the grace period), by its PID. */
export async function stopHaproxy(lab: Lab): Promise<boolean> {
  return stopDaemon(lab, HAPROXY_DAEMON, 3000);
}

/**
 * A single host:port target for clients on the client host: HAProxy's read-write (5000) or
 * read-only (5001) port. The writer still checks the session (target_session_attrs).
 */
export function haproxyDsn(_lab: Lab, kind: 'rw' | 'ro'): string {
  const port = kind === 'rw' ? HAPROXY_RW_PORT : HAPROXY_RO_PORT;
  const tsa = kind === 'rw' ? 'read-write' : 'read-only';
  return `host=127.0.0.1 port=${port} user=app dbname=postgres target_session_attrs=${tsa}`;
}

// ---------------------------------------------------------------- what HAProxy thinks

export interface HaproxyServerState {
  proxy: string;
  server: string;
  /** UP, DOWN, "UP 1/2", "DOWN 1/1", MAINT, NOLB... as HAProxy prints it. */
  status: string;
  /** Current sessions. */
  sessions: number;
}

/** Parses the CSV of `show stat` (pure). Keeps server rows only. */
export function parseShowStat(csv: string): HaproxyServerState[] {
  const lines = csv.split('\n').filter((l) => l.trim() !== '');
  const head = lines[0]?.replace(/^#\s*/, '').split(',') ?? [];
  const col = (n: string) => head.indexOf(n);
  const [px, sv, st, sc] = [col('pxname'), col('svname'), col('status'), col('scur')];
  if (px < 0 || sv < 0 || st < 0) throw new Error(`unexpected "show stat" output: ${lines[0] ?? '(empty)'}`);
  return lines
    .slice(1)
    .map((l) => l.split(','))
    .filter((f) => f[sv] !== 'FRONTEND' && f[sv] !== 'BACKEND')
    .map((f) => ({
      proxy: f[px] ?? '',
      server: f[sv] ?? '',
      status: f[st] ?? '',
      sessions: Number(f[sc] ?? 0) || 0,
    }));
}

/** Sends one command to HAProxy's stats socket (a unix socket: no lab network involved). */
export function haproxyCommand(socketPath: string, command: string, timeoutMs = 2000): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = connect(socketPath);
    let out = '';
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`no answer from ${socketPath} within ${timeoutMs} ms`));
    }, timeoutMs);
    sock.on('connect', () => sock.end(`${command}\n`));
    sock.on('data', (d) => {
      out += d;
    });
    sock.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    sock.on('close', () => {
      clearTimeout(timer);
      resolve(out);
    });
  });
}

/** HAProxy's view of every server of the lab (read-write `primary` and read-only `replicas`). */
export async function haproxyServers(lab: Lab): Promise<HaproxyServerState[]> {
  return parseShowStat(await haproxyCommand(haproxySocketPath(lab), 'show stat'));
}

/** Names of the servers HAProxy routes `listen` to right now (status starting with UP). */
export async function haproxyRoutesTo(lab: Lab, listen: 'primary' | 'replicas'): Promise<string[]> {
  return (await haproxyServers(lab))
    .filter((s) => s.proxy === listen && /^UP/.test(s.status))
    .map((s) => s.server);
}
