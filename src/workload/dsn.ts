// Connection targets for the writer and the checker: libpq-style keyword strings and URIs,
// including libpq's multi-host form (`host=a,b port=5432 target_session_attrs=read-write`),
// which node-postgres does not implement. We do it the way libpq does: try each host in order
// with a short connect timeout and keep the first one whose session matches the attributes.
// An HAProxy read-write port is just a single host:port.
import type pg from 'pg';
import {
  type ConnOptions,
  closeClient,
  errorText,
  makeClient,
  type PgSsl,
  sslConninfo,
} from '../postgres/client.js';
import { UserError } from '../util/errors.js';

export type TargetSessionAttrs = 'any' | 'read-write' | 'read-only' | 'primary' | 'standby';
const TSA: readonly TargetSessionAttrs[] = ['any', 'read-write', 'read-only', 'primary', 'standby'];

export interface Endpoint {
  host: string;
  port: number;
}

export interface ConnTarget {
  endpoints: Endpoint[];
  user: string;
  database: string;
  password?: string;
  targetSessionAttrs: TargetSessionAttrs;
  /** Per host (libpq's connect_timeout, in ms here). */
  connectTimeoutMs: number;
  applicationName?: string;
  /** Session settings (`options='-c k=v'`). */
  options?: Record<string, string>;
  /** TLS (sslmode=require, verify-ca or verify-full); none: plain, or as `sslNegotiation` says. */
  ssl?: PgSsl;
  /** libpq's sslmode=prefer (also its default, no sslmode) and allow: TLS without verification
   *  first, or plain first, and the other way when the server refuses the first. */
  sslNegotiation?: 'prefer' | 'allow';
}

const KNOWN_KEYS = new Set([
  'host',
  'hostaddr',
  'port',
  'user',
  'password',
  'dbname',
  'connect_timeout',
  'target_session_attrs',
  'application_name',
  'options',
  'sslmode',
  'sslrootcert',
  // Accepted and ignored: node-postgres has its own keepalive handling and we add deadlines.
  'keepalives',
  'keepalives_idle',
  'keepalives_interval',
  'keepalives_count',
  'tcp_user_timeout',
]);

export interface ParseDsnDefaults {
  user?: string;
  database?: string;
  targetSessionAttrs?: TargetSessionAttrs;
  connectTimeoutMs?: number;
  env?: NodeJS.ProcessEnv;
}

/** Parses `key=value ...`, `postgresql://...` or a bare `host[:port][,host[:port]]`. */
export function parseDsn(dsn: string, defaults: ParseDsnDefaults = {}): ConnTarget {
  const text = dsn.trim();
  if (!text) throw new UserError('empty connection string: give --dsn, e.g. "host=127.0.0.1 port=5432"');
  let kv: Map<string, string>;
  if (/^postgres(ql)?:\/\//i.test(text)) kv = parseUri(text);
  else if (text.includes('=')) kv = parseKeywords(text);
  else kv = new Map([['host', text]]);
  for (const k of kv.keys()) {
    if (!KNOWN_KEYS.has(k)) throw new UserError(`connection string: unknown option "${k}"`);
  }
  const env = defaults.env ?? process.env;
  const hostsRaw = kv.get('host') ?? kv.get('hostaddr') ?? env.PGHOST;
  if (!hostsRaw) throw new UserError('connection string has no host= (and PGHOST is not set)');
  const portRaw = kv.get('port') ?? env.PGPORT ?? '5432';
  const endpoints = splitHosts(hostsRaw, portRaw);

  const tsaRaw = kv.get('target_session_attrs') ?? defaults.targetSessionAttrs ?? 'read-write';
  if (!TSA.includes(tsaRaw as TargetSessionAttrs))
    throw new UserError(`target_session_attrs=${tsaRaw} is not supported (use one of ${TSA.join(', ')})`);

  let connectTimeoutMs = defaults.connectTimeoutMs ?? 2000;
  const ct = kv.get('connect_timeout');
  if (ct !== undefined) {
    const n = Number(ct);
    if (!Number.isFinite(n) || n <= 0)
      throw new UserError(`connect_timeout=${ct}: give a positive number of seconds`);
    connectTimeoutMs = Math.max(500, Math.round(n * 1000));
  }
  const sslmode = kv.get('sslmode') ?? env.PGSSLMODE;
  const SSL_MODES = ['disable', 'allow', 'prefer', 'require', 'verify-ca', 'verify-full'];
  if (sslmode && !SSL_MODES.includes(sslmode))
    throw new UserError(`sslmode=${sslmode} is not an sslmode (use one of ${SSL_MODES.join(', ')})`);
  const rootCert = kv.get('sslrootcert') ?? env.PGSSLROOTCERT;
  let ssl: PgSsl | undefined;
  let sslNegotiation: 'prefer' | 'allow' | undefined;
  if (sslmode === 'require' || sslmode === 'verify-ca' || sslmode === 'verify-full') {
    if (sslmode !== 'require' && !rootCert)
      throw new UserError(`sslmode=${sslmode} needs sslrootcert=<the cluster CA file> (e.g. ca.crt)`);
    ssl = { mode: sslmode, rootCert };
  } else if (sslmode !== 'disable') sslNegotiation = sslmode === 'allow' ? 'allow' : 'prefer';

  const user = kv.get('user') ?? defaults.user ?? env.PGUSER ?? 'postgres';
  return {
    endpoints,
    user,
    database: kv.get('dbname') ?? defaults.database ?? env.PGDATABASE ?? 'postgres',
    password: kv.get('password'),
    targetSessionAttrs: tsaRaw as TargetSessionAttrs,
    connectTimeoutMs,
    applicationName: kv.get('application_name'),
    options: kv.has('options') ? parseOptions(kv.get('options') ?? '') : undefined,
    ssl,
    sslNegotiation,
  };
}

function splitHosts(hostsRaw: string, portRaw: string): Endpoint[] {
  const hosts = hostsRaw.split(',').map((h) => h.trim());
  const ports = portRaw.split(',').map((p) => p.trim());
  if (ports.length !== 1 && ports.length !== hosts.length)
    throw new UserError(`connection string: ${hosts.length} hosts but ${ports.length} ports`);
  return hosts.map((h, i) => {
    let host = h;
    let port = ports.length === 1 ? ports[0] : ports[i];
    // host:port inside the host list (bare form and URIs); [v6]:port for IPv6.
    const m = /^\[([^\]]+)\](?::(\d+))?$/.exec(host) ?? /^([^:]+):(\d+)$/.exec(host);
    if (m) {
      host = m[1] ?? '';
      if (m[2]) port = m[2];
    }
    if (!host) throw new UserError(`connection string: empty host in "${hostsRaw}"`);
    const n = Number(port);
    if (!Number.isInteger(n) || n < 1 || n > 65535)
      throw new UserError(`connection string: bad port "${port}"`);
    return { host, port: n };
  });
}

/** libpq keyword/value syntax: key = value, values optionally single-quoted with \' and \\. */
export function parseKeywords(s: string): Map<string, string> {
  const out = new Map<string, string>();
  let i = 0;
  const n = s.length;
  const ws = () => {
    while (i < n && /\s/.test(s[i] ?? '')) i++;
  };
  for (let guard = 0; guard <= n; guard++) {
    ws();
    if (i >= n) return out;
    const ks = i;
    while (i < n && /[A-Za-z0-9_]/.test(s[i] ?? '')) i++;
    const key = s.slice(ks, i);
    ws();
    if (!key || s[i] !== '=')
      throw new UserError(`connection string: expected key=value near "${s.slice(ks, ks + 20)}"`);
    i++;
    ws();
    let value = '';
    if (s[i] === "'") {
      i++;
      let closed = false;
      while (i < n) {
        const c = s[i];
        if (c === '\\' && i + 1 < n) {
          value += s[i + 1];
          i += 2;
        } else if (c === "'") {
          i++;
          closed = true;
          break;
        } else {
          value += c;
          i++;
        }
      }
      if (!closed) throw new UserError(`connection string: unterminated quote in ${key}=`);
    } else {
      while (i < n && !/\s/.test(s[i] ?? '')) {
        if (s[i] === '\\' && i + 1 < n) i++;
        value += s[i];
        i++;
      }
    }
    out.set(key, value);
  }
  return out;
}

/** postgresql://user:pw@h1:p1,h2:p2/dbname?k=v&... */
function parseUri(s: string): Map<string, string> {
  const out = new Map<string, string>();
  const m = /^postgres(?:ql)?:\/\/([^/?]*)(?:\/([^?]*))?(?:\?(.*))?$/i.exec(s);
  if (!m) throw new UserError('connection URI is malformed');
  let authority = m[1] ?? '';
  const at = authority.lastIndexOf('@');
  if (at >= 0) {
    const userinfo = authority.slice(0, at);
    authority = authority.slice(at + 1);
    const colon = userinfo.indexOf(':');
    const user = colon >= 0 ? userinfo.slice(0, colon) : userinfo;
    if (user) out.set('user', decodeURIComponent(user));
    if (colon >= 0) out.set('password', decodeURIComponent(userinfo.slice(colon + 1)));
  }
  if (authority) out.set('host', decodeURIComponent(authority));
  if (m[2]) out.set('dbname', decodeURIComponent(m[2]));
  for (const part of (m[3] ?? '').split('&')) {
    if (!part) continue;
    const eq = part.indexOf('=');
    if (eq < 0) throw new UserError(`connection URI: parameter "${part}" has no value`);
    out.set(decodeURIComponent(part.slice(0, eq)), decodeURIComponent(part.slice(eq + 1)));
  }
  return out;
}

/** `-c name=value -c other=value` (also `--name=value`) into a settings record. */
function parseOptions(opts: string): Record<string, string> {
  const out: Record<string, string> = {};
  const words = opts.split(/\s+/).filter(Boolean);
  for (let i = 0; i < words.length; i++) {
    const w = words[i] ?? '';
    let setting: string | undefined;
    if (w === '-c') setting = words[++i];
    else if (w.startsWith('-c')) setting = w.slice(2);
    else if (w.startsWith('--')) setting = w.slice(2);
    const eq = setting?.indexOf('=') ?? -1;
    if (!setting || eq <= 0)
      throw new UserError(`connection string: cannot read options='${opts}' (use -c name=value)`);
    out[setting.slice(0, eq)] = setting.slice(eq + 1);
  }
  return out;
}

/**
 * A multi-host target from ConnOptions of each node (e.g. the lab's appConn for pg1 and pg2), for
 * callers that know the candidates but not which one is primary. User, database, password and
 * timeouts come from the first entry.
 */
export function targetFromConnOptions(
  nodes: ConnOptions[],
  targetSessionAttrs: TargetSessionAttrs = 'read-write',
): ConnTarget {
  const first = nodes[0];
  if (!first) throw new UserError('no hosts to connect to');
  return {
    endpoints: nodes.map((n) => ({ host: n.host, port: n.port })),
    user: first.user,
    database: first.database ?? 'postgres',
    password: first.password,
    targetSessionAttrs,
    connectTimeoutMs: first.connectTimeoutMs ?? 2000,
    applicationName: first.applicationName,
    options: first.options,
    ssl: first.ssl,
  };
}

/** The target as text for logs, headers and messages: never contains the password. */
export function describeTarget(t: ConnTarget): string {
  const hosts = t.endpoints.map((e) => (e.host.includes(':') ? `[${e.host}]` : e.host));
  const ports = t.endpoints.map((e) => e.port);
  const samePort = ports.every((p) => p === ports[0]);
  const parts = [
    `host=${hosts.join(',')}`,
    `port=${samePort ? ports[0] : ports.join(',')}`,
    `user=${t.user}`,
    `dbname=${t.database}`,
    `target_session_attrs=${t.targetSessionAttrs}`,
    ...(t.sslNegotiation ? [`sslmode=${t.sslNegotiation}`] : sslConninfo(t.ssl)),
  ];
  if (t.options)
    parts.push(
      `options='${Object.entries(t.options)
        .map(([k, v]) => `-c ${k}=${v}`)
        .join(' ')}'`,
    );
  return parts.join(' ');
}

export const endpointText = (e: Endpoint) =>
  e.host.includes(':') ? `[${e.host}]:${e.port}` : `${e.host}:${e.port}`;

export interface SessionInfo {
  /** Which endpoint of the target we connected to. */
  endpoint: Endpoint;
  /** The server's own address:port: a pgarbiter node's pgarbiter.node_host, else inet_server_addr()
   *  (the endpoint for unix sockets). */
  server: string;
  inRecovery: boolean;
  readOnly: boolean;
  synchronousCommit: string;
  synchronousStandbyNames: string;
  serverVersion: string;
}

export class NoSuitableServerError extends UserError {
  constructor(
    readonly target: ConnTarget,
    readonly reasons: string[],
  ) {
    super(
      `no ${target.targetSessionAttrs === 'any' ? 'reachable' : target.targetSessionAttrs} server at ${describeTarget(target)}: ${reasons.join('; ')}`,
    );
    this.name = 'NoSuitableServerError';
  }
}

function matches(tsa: TargetSessionAttrs, s: SessionInfo): string | undefined {
  switch (tsa) {
    case 'any':
      return undefined;
    case 'read-write':
      return s.readOnly ? 'read-only' : undefined;
    case 'read-only':
      return s.readOnly ? undefined : 'read-write';
    case 'primary':
      return s.inRecovery ? 'in recovery (standby)' : undefined;
    case 'standby':
      return s.inRecovery ? undefined : 'not in recovery (primary)';
  }
}

export interface ConnectOptions {
  queryTimeoutMs?: number;
  applicationName?: string;
  password?: string;
}

/**
 * Tries each endpoint in order; returns the first connected client whose session matches
 * target_session_attrs. Bounded: one connect timeout plus one query timeout per endpoint.
 * Throws NoSuitableServerError (a UserError) naming why each host was refused.
 */
function endpointOf(host: string | null, port: number | null, endpoint: Endpoint): string {
  return host ? endpointText({ host, port: port ?? endpoint.port }) : endpointText(endpoint);
}

export async function connectTarget(
  t: ConnTarget,
  o: ConnectOptions = {},
): Promise<{ client: pg.Client; info: SessionInfo }> {
  const reasons: string[] = [];
  for (const endpoint of t.endpoints) {
    const attempts = sslAttempts(t);
    for (let i = 0; i < attempts.length; i++) {
      const r = await trySession(t, endpoint, attempts[i], o);
      if ('client' in r) return r;
      // sslmode=prefer/allow: the other way only when the server refused this one for it.
      const next = attempts[i + 1];
      if (i + 1 < attempts.length && refusedForTls(r.error, next === undefined)) continue;
      reasons.push(`${endpointText(endpoint)}: ${r.reason}`);
      break;
    }
  }
  throw new NoSuitableServerError(t, reasons);
}

/** The TLS settings to try in order: libpq's prefer is TLS (unverified) then plain, allow the reverse. */
function sslAttempts(t: ConnTarget): (PgSsl | undefined)[] {
  if (t.sslNegotiation === 'prefer') return [{ mode: 'require' }, undefined];
  if (t.sslNegotiation === 'allow') return [undefined, { mode: 'require' }];
  return [t.ssl];
}

/** Whether `error` says the server refused a session for its encryption: no TLS on the server
 *  (when plain comes next), or pg_hba.conf allows only TLS (when TLS comes next). */
export function refusedForTls(error: unknown, plainNext: boolean): boolean {
  const text = errorText(error);
  return plainNext
    ? /does not support SSL/i.test(text)
    : /no encryption/i.test(text) && (error as { code?: string }).code === '28000';
}

async function trySession(
  t: ConnTarget,
  endpoint: Endpoint,
  ssl: PgSsl | undefined,
  o: ConnectOptions,
): Promise<{ client: pg.Client; info: SessionInfo } | { reason: string; error?: unknown }> {
  const client = makeClient({
    host: endpoint.host,
    port: endpoint.port,
    user: t.user,
    password: o.password ?? t.password,
    database: t.database,
    applicationName: o.applicationName ?? t.applicationName ?? 'pgarbiter-writer',
    connectTimeoutMs: t.connectTimeoutMs,
    queryTimeoutMs: o.queryTimeoutMs ?? 5000,
    options: t.options,
    ssl,
  });
  try {
    await client.connect();
    const r = await client.query<{
      rec: boolean;
      ro: string;
      addr: string | null;
      node: string | null;
      port: number | null;
      sc: string;
      ssn: string;
      ver: string;
    }>(
      `SELECT pg_is_in_recovery() AS rec, current_setting('transaction_read_only') AS ro,
              host(inet_server_addr()) AS addr, inet_server_port() AS port,
              nullif(current_setting('pgarbiter.node_host', true), '') AS node,
              current_setting('synchronous_commit') AS sc,
              current_setting('synchronous_standby_names') AS ssn,
              current_setting('server_version') AS ver`,
    );
    const row = r.rows[0];
    if (!row) throw new Error('empty answer to the session check');
    const info: SessionInfo = {
      endpoint,
      // A pgarbiter node names itself (through a VIP, inet_server_addr() is the VIP).
      server: endpointOf(row.node ?? row.addr, row.port, endpoint),
      inRecovery: row.rec,
      readOnly: row.ro === 'on',
      synchronousCommit: row.sc,
      synchronousStandbyNames: row.ssn,
      serverVersion: row.ver,
    };
    const refused = matches(t.targetSessionAttrs, info);
    if (!refused) return { client, info };
    await closeClient(client);
    return { reason: refused };
  } catch (e) {
    await closeClient(client);
    return { reason: errorText(e), error: e };
  }
}
