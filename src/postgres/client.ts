// node-postgres with hard deadlines: a silent partition must never hang a caller (see
// research: a query without query_timeout waits ~15 min). Every client has an 'error' listener.
import './pg-runtime.js';
import { readFileSync } from 'node:fs';
import { createSecureContext, type SecureContext } from 'node:tls';
import pg from 'pg';
import { UserError } from '../util/errors.js';
import { fileVersion } from '../util/file-version.js';
import { quoteConninfo } from './settings.js';

/** TLS to the server, as libpq's sslmode: require encrypts; verify-ca also checks the chain
 *  against rootCert; verify-full also checks that the certificate names the host (or IP) dialled. */
export interface PgSsl {
  mode: 'require' | 'verify-ca' | 'verify-full';
  /** The CA file (libpq's sslrootcert); needed by verify-ca and verify-full. */
  rootCert?: string;
}

/** One secure context per CA file (and version of it) and process: parsing the CA on every probe
 *  connection costs CPU on the failure detector's path. */
const contexts = new Map<string, SecureContext>();

function caContext(file: string): SecureContext {
  const id = fileVersion(file);
  let ctx = contexts.get(id);
  if (!ctx) {
    let ca: string;
    try {
      ca = readFileSync(file, 'utf8');
    } catch (e) {
      throw new UserError(`cannot read sslrootcert ${file}: ${(e as NodeJS.ErrnoException).code ?? e}`);
    }
    ctx = createSecureContext({ ca });
    contexts.set(id, ctx);
  }
  return ctx;
}

function sslOptions(ssl: PgSsl, host: string) {
  if (ssl.mode === 'require') return { rejectUnauthorized: false };
  if (!ssl.rootCert) throw new UserError(`sslmode=${ssl.mode} needs sslrootcert=<the CA file>`);
  const secureContext = caContext(ssl.rootCert);
  // `host` makes Node check the certificate against the address dialled, IP SANs included
  // (node-postgres sets servername only for DNS names).
  return ssl.mode === 'verify-full'
    ? { secureContext, host, rejectUnauthorized: true }
    : { secureContext, rejectUnauthorized: true, checkServerIdentity: () => undefined };
}

/** libpq conninfo keywords for `ssl` (psql, pg_basebackup, pg_rewind, primary_conninfo). */
export function sslConninfo(ssl: PgSsl | undefined): string[] {
  if (!ssl) return [];
  return [`sslmode=${ssl.mode}`, ...(ssl.rootCert ? [`sslrootcert=${quoteConninfo(ssl.rootCert)}`] : [])];
}

export interface ConnOptions {
  host: string;
  port: number;
  user: string;
  password?: string;
  database?: string;
  applicationName?: string;
  connectTimeoutMs?: number;
  queryTimeoutMs?: number;
  /** Session settings sent at connect (e.g. synchronous_commit=local for agent sessions). */
  options?: Record<string, string>;
  /** TLS (none: plain, e.g. over the local unix socket). */
  ssl?: PgSsl;
}

export function makeClient(o: ConnOptions): pg.Client {
  const options = o.options
    ? Object.entries(o.options)
        .map(([k, v]) => `-c ${k}=${v}`)
        .join(' ')
    : undefined;
  const client = new pg.Client({
    host: o.host,
    port: o.port,
    user: o.user,
    password: o.password,
    database: o.database ?? 'postgres',
    application_name: o.applicationName ?? 'pgarbiter',
    connectionTimeoutMillis: o.connectTimeoutMs ?? 2000,
    query_timeout: o.queryTimeoutMs ?? 5000,
    keepAlive: true,
    keepAliveInitialDelayMillis: 1000,
    options,
    ssl: o.ssl ? sslOptions(o.ssl, o.host) : false,
  });
  // An idle client gets 57P01 / ETIMEDOUT as an event; unhandled, it would crash the process.
  client.on('error', () => {});
  return client;
}

/** end() with its own deadline: on a vanished peer end() can wait for a FIN forever. */
export async function closeClient(client: pg.Client, timeoutMs = 500): Promise<void> {
  await Promise.race([client.end().catch(() => {}), new Promise((r) => setTimeout(r, timeoutMs))]);
}

/** Connects, runs fn, always closes. */
export async function withClient<T>(o: ConnOptions, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const client = makeClient(o);
  try {
    await client.connect();
    return await fn(client);
  } finally {
    await closeClient(client);
  }
}

/** One query on a fresh connection. */
export async function queryOnce<R extends pg.QueryResultRow = pg.QueryResultRow>(
  o: ConnOptions,
  sql: string,
  params: unknown[] = [],
): Promise<R[]> {
  return withClient(o, async (c) => (await c.query<R>(sql, params)).rows);
}

/** How long a kept connection serves before it is replaced by a fresh one: a server (or a
 *  filter) that accepts no new connection while old ones still work is noticed within this. */
export const KEPT_CONNECTION_MAX_AGE_MS = 30_000;

/**
 * One connection kept open for the probes that ask one server the same thing every round: a
 * fresh connection per probe (a backend fork, and for TCP a SCRAM exchange) cost most of an idle
 * daemon's CPU. The deadlines are those of a fresh connection: `connectTimeoutMs` for a
 * (re)connect and `queryTimeoutMs` for each query (pg's query_timeout). Any failure (a timeout in a silent
 * partition, a reset, a terminated backend, an SQL error) closes the connection, so the next
 * query connects again; so does another server, and age (KEPT_CONNECTION_MAX_AGE_MS).
 */
export class KeptClient {
  private client: pg.Client | null = null;
  private key = '';
  private openedAt = 0;
  /** The server ended the connection or the socket failed while idle. */
  private broken = false;

  constructor(private readonly maxAgeMs = KEPT_CONNECTION_MAX_AGE_MS) {}

  /** `name`: a prepared statement, parsed and planned by the server once per connection rather
   *  than at every call (a probe's query every round). */
  async query<R extends pg.QueryResultRow = pg.QueryResultRow>(
    o: ConnOptions,
    sql: string,
    params: unknown[] = [],
    name?: string,
  ): Promise<R[]> {
    // The deadlines are the client's (makeClient): other deadlines, another connection.
    const key = JSON.stringify([o.host, o.port, o.user, o.database, o.connectTimeoutMs, o.queryTimeoutMs]);
    if (this.client && (this.broken || key !== this.key || Date.now() - this.openedAt >= this.maxAgeMs))
      this.close();
    let c = this.client;
    if (!c) {
      c = makeClient(o);
      const mine = c;
      const gone = () => {
        if (this.client === mine) this.broken = true;
      };
      c.on('error', gone);
      c.on('end', gone);
      this.client = c;
      this.key = key;
      this.openedAt = Date.now();
      this.broken = false;
      try {
        await c.connect();
      } catch (e) {
        this.close();
        throw e;
      }
    }
    try {
      return (await c.query<R>(name ? { name, text: sql, values: params } : { text: sql, values: params }))
        .rows;
    } catch (e) {
      // After a timeout the query may still be on the wire: end() then destroys the socket.
      this.close();
      throw e;
    }
  }

  close(): void {
    const c = this.client;
    this.client = null;
    if (c) void closeClient(c);
  }
}

/** SQLSTATE of a server error, or undefined for network/driver errors. */
export function sqlState(e: unknown): string | undefined {
  return e instanceof pg.DatabaseError ? e.code : undefined;
}

export function errorText(e: unknown): string {
  if (e instanceof pg.DatabaseError) return `${e.severity ?? 'ERROR'}: ${e.message} (SQLSTATE ${e.code})`;
  const err = e as NodeJS.ErrnoException;
  return err?.code ? `${err.message} (${err.code})` : String(err?.message ?? e);
}
