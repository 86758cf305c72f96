// Client routing through HAProxy, configured the way Patroni users do it: a read-write port
// whose servers are health-checked on each agent's `GET /primary` (200 only on the writable,
// unfenced primary) and a read-only port checked on `GET /replica` (200 only on a streaming
// standby). The checks speak HTTPS, like every client of the agents' API, and verify the agent's
// certificate against the cluster CA (chain only: HAProxy's verifyhost matches DNS names, and the
// servers are addresses). A server marked down has its sessions closed (on-marked-down shutdown-sessions), so a
// client never keeps writing to an old primary through HAProxy. A server that refuses a client's
// connection (a fenced or stopped old primary) is marked down at once (observe layer4), without
// waiting for three failed checks: a switchover's write pause depends on it (bench/README.md).
// Three, not two: a check's connect timeout is min(timeout connect, inter), 500 ms, under TCP's
// 1 s SYN retransmission, so one lost SYN fails a check; under 5 % loss on the primary two failed
// checks in a row marked it down (and shut its sessions) 3 times in 2 minutes, three in a row once.
// A cut primary is marked down one 0.6 s check later than with two: before its successor's
// promotion at `default` (bench/failover: grant -> first write through HAProxy 0.23 s median).
//
// renderHaproxyConfig() and parseShowStat() are pure; haproxyBinary(), validateHaproxyConfig() and
// haproxyCommand() talk to an installed haproxy. Nothing here knows the lab: the lab's HAProxy (a
// daemon on its client host) is src/lab/haproxy.ts.
import { accessSync, constants } from 'node:fs';
import { connect } from 'node:net';
import { delimiter, join } from 'node:path';
import { UserError } from '../util/errors.js';
import { run } from '../util/exec.js';

export const HAPROXY_RW_PORT = 5000;
export const HAPROXY_RO_PORT = 5001;
export const HAPROXY_STATS_PORT = 7000;
export const AGENT_API_PORT = 8008;
/** PostgreSQL's default port, the servers' port unless told otherwise. */
export const PG_DEFAULT_PORT = 5432;

export interface HaproxyServer {
  name: string;
  address: string;
}

export interface HaproxyConfigOptions {
  servers: HaproxyServer[];
  /** The cluster CA: the agents' certificates are verified against it (`check-ssl verify required`). */
  checkCaFile: string;
  /** A PEM with a certificate + key signed by the CA, presented on checks when the agents demand
   *  client certificates (tls.client_certs: required). */
  checkCertFile?: string;
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
  /** Health check period and thresholds (defaults: 500ms, fall 3, rise 1). */
  checkInterval?: string;
  /** Check period of a server that is down (default 200ms): a promoted standby is routed to
   *  within this long of its /primary answering 200. */
  downInterval?: string;
  /** Check period while a server is changing state (one check failed; default 100ms): a node
   *  that fenced is marked down (and its sessions shut) within about this long of the first failure. */
  fastInterval?: string;
  /** Check period of the read-only listen, up or down (default 1s). Readers need not follow a
   *  change within 200 ms, and each check costs the agent a TLS handshake: the primary's down
   *  check there at 200 ms was most of its idle CPU. */
  replicaCheckInterval?: string;
  fall?: number;
  rise?: number;
  /** Client and server inactivity timeouts: long enough for an idle client session (30m). */
  sessionTimeout?: string;
  connectTimeout?: string;
  checkTimeout?: string;
  maxconnPerServer?: number;
  /** TCP forwarders, each from a unix socket to one address:port, bytes passed as they are (a TLS
   *  client through one still verifies the real server end to end). The lab uses them so a CLI
   *  outside its network namespaces reaches the members' APIs. */
  unixForwards?: UnixForward[];
}

export interface UnixForward {
  name: string;
  socket: string;
  address: string;
  port: number;
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
  const pgPort = checkPort('pgPort', o.pgPort ?? PG_DEFAULT_PORT);
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
  const downinter = checkDuration('downInterval', o.downInterval ?? '200ms');
  const fastinter = checkDuration('fastInterval', o.fastInterval ?? '100ms');
  const roInter = checkDuration('replicaCheckInterval', o.replicaCheckInterval ?? '2s');
  const fall = o.fall ?? 3;
  const rise = o.rise ?? 1;
  if (!Number.isInteger(fall) || fall < 1 || !Number.isInteger(rise) || rise < 1)
    throw new UserError('haproxy config: fall and rise must be whole numbers >= 1');
  const session = checkDuration('sessionTimeout', o.sessionTimeout ?? '30m');
  const connectT = checkDuration('connectTimeout', o.connectTimeout ?? '2s');
  const checkT = checkDuration('checkTimeout', o.checkTimeout ?? '1s');
  const maxconn = o.maxconnPerServer ?? 100;
  const pathOk = (p: string) => /^\/[^\s"']+$/.test(p);
  if (o.statsSocket !== undefined && !pathOk(o.statsSocket))
    throw new UserError(`haproxy config: bad stats socket path "${o.statsSocket}"`);
  if (!pathOk(o.checkCaFile)) throw new UserError(`haproxy config: bad CA file path "${o.checkCaFile}"`);
  if (o.checkCertFile !== undefined && !pathOk(o.checkCertFile))
    throw new UserError(`haproxy config: bad certificate file path "${o.checkCertFile}"`);
  for (const f of o.unixForwards ?? []) {
    if (!NAME_RE.test(f.name)) throw new UserError(`haproxy config: bad forwarder name "${f.name}"`);
    if (!pathOk(f.socket)) throw new UserError(`haproxy config: bad forwarder socket path "${f.socket}"`);
    if (!ADDR_RE.test(f.address)) throw new UserError(`haproxy config: bad forwarder address "${f.address}"`);
    checkPort(`forwarder ${f.name} port`, f.port);
  }
  const checkTls = `check-ssl verify required ca-file ${o.checkCaFile}${o.checkCertFile ? ` crt ${o.checkCertFile}` : ''}`;

  const listen = (
    name: string,
    port: number,
    path: string,
    every: { up: string; down: string },
    comment: string,
  ) => [
    `# ${comment}`,
    `listen ${name}`,
    `    bind ${bind}:${port}`,
    '    balance roundrobin',
    // `?hold`: the agent holds the answer until its status changes or about 0.5-0.9 s have passed
    // (Agent.checkStatus), so there are fewer checks and a change is heard at once.
    `    option httpchk GET ${path}?hold`,
    '    http-check expect status 200',
    // A retry goes to another server, at once: with `observe layer4` a refused connection (a
    // fenced or stopped old primary) marks its server down, and the retry finds the server that
    // is up, or none; without this it waits HAProxy's 1 s turn-around on the refusing server.
    '    option redispatch 1',
    `    default-server inter ${every.up} fastinter ${fastinter} downinter ${every.down} fall ${fall} rise ${rise} on-marked-down shutdown-sessions observe layer4 error-limit 1 on-error mark-down`,
    ...o.servers.map(
      (s) =>
        `    server ${s.name} ${s.address}:${pgPort} maxconn ${maxconn} check port ${apiPort} ${checkTls}`,
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
      { up: inter, down: downinter },
      `read-write (port ${rwPort}): at most one server passes /primary`,
    ),
    ...listen(
      'replicas',
      roPort,
      '/replica',
      { up: roInter, down: roInter },
      `read-only (port ${roPort}): streaming standbys`,
    ),
    ...(o.unixForwards ?? []).flatMap((f) => [
      `# ${f.socket} -> ${f.address}:${f.port}, bytes as they are (TLS end to end); errors logged only`,
      `listen ${f.name}`,
      `    bind ${f.socket} mode 600`,
      '    option dontlog-normal',
      `    server ${f.name} ${f.address}:${f.port}`,
      '',
    ]),
  ].join('\n');
}

// ---------------------------------------------------------------- the haproxy binary

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

// ---------------------------------------------------------------- what HAProxy thinks

export interface HaproxyServerState {
  proxy: string;
  server: string;
  /** UP, DOWN, "UP 1/2", "DOWN 1/1", MAINT, NOLB... as HAProxy prints it. */
  status: string;
  /** Current sessions. */
  sessions: number;
  /** Sessions since HAProxy started. */
  totalSessions: number;
}

/** Parses the CSV of `show stat` (pure). Keeps server rows only. */
export function parseShowStat(csv: string): HaproxyServerState[] {
  const lines = csv.split('\n').filter((l) => l.trim() !== '');
  const head = lines[0]?.replace(/^#\s*/, '').split(',') ?? [];
  const col = (n: string) => head.indexOf(n);
  const [px, sv, st, sc, stot] = [col('pxname'), col('svname'), col('status'), col('scur'), col('stot')];
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
      totalSessions: Number(f[stot] ?? 0) || 0,
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
