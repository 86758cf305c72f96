// psql on the lab's client host: the one way the CLI (`lab psql`), the demo, the scenarios, the
// tests and the benchmarks run SQL the way a user of the lab would, over TCP from inside the lab
// (a unix socket would reach an "isolated" host: the filesystem is not namespaced).
import { type RunResult, run } from '../util/exec.js';
import { hostArgv } from './daemon.js';
import { ADMIN_USER, adminConn, appConn, PG_BIN_DIR, psqlConninfo } from './pgconf.js';
import type { Lab } from './state.js';
import type { HostName } from './topology.js';

/** Where psql connects: a database host of the lab (its address), or any libpq conninfo (a
 *  multi-host list with target_session_attrs, HAProxy's port on 127.0.0.1...). */
export type PsqlTarget = HostName | { conninfo: string };

export interface ClientPsqlOptions {
  /** As the admin (superuser) role instead of the app role. */
  admin?: boolean;
  /** application_name of the session (default lab-psql). */
  applicationName?: string;
  /** The host psql runs on (default the client host). */
  from?: HostName;
}

export interface ClientSqlOptions extends ClientPsqlOptions {
  /** 'rows' (default): unaligned, tab-separated tuples only, quiet, stop at the first error: for
   *  programs. 'table': psql's aligned table without the footer, as a person reads it. */
  output?: 'rows' | 'table';
  /** Kill psql after this long (default 15 s). */
  timeoutMs?: number;
  /** Return a failed run instead of throwing (default: throw). */
  allowFailure?: boolean;
  /** Send psql SIGINT after this many seconds: it cancels the query (the only thing that ends a
   *  commit waiting for a synchronous standby). */
  cancelAfterS?: number;
  /** Extra environment for psql (PGOPTIONS...). */
  env?: NodeJS.ProcessEnv;
}

export interface ClientSqlResult extends RunResult {
  /** stdout as rows of tab-separated fields (meaningful with output 'rows'). */
  rows: string[][];
  /** How long psql ran, in milliseconds. */
  ms: number;
}

/**
 * The argv (through `ip netns exec`) and the environment (PGPASSWORD) of psql on the client host
 * connected to `target`, followed by `psqlArgs`. For an interactive session (`lab psql`).
 */
export function clientPsqlCommand(
  lab: Lab,
  target: PsqlTarget,
  psqlArgs: string[],
  o: ClientPsqlOptions = {},
): { argv: string[]; env: NodeJS.ProcessEnv } {
  return psqlCommand(lab, target, psqlArgs, o, []);
}

function psqlCommand(
  lab: Lab,
  target: PsqlTarget,
  psqlArgs: string[],
  o: ClientPsqlOptions,
  wrapper: string[],
): { argv: string[]; env: NodeJS.ProcessEnv } {
  const applicationName = o.applicationName ?? 'lab-psql';
  const password = o.admin ? lab.secrets.adminPassword : lab.secrets.appPassword;
  const conninfo =
    typeof target === 'string'
      ? psqlConninfo(
          o.admin ? adminConn(lab, target, applicationName) : appConn(lab, target, applicationName),
        )
      : `${target.conninfo}${o.admin ? ` user=${ADMIN_USER}` : ''} connect_timeout=2 application_name=${applicationName}`;
  return {
    argv: hostArgv(lab, o.from ?? 'client', [...wrapper, `${PG_BIN_DIR}/psql`, conninfo, ...psqlArgs]),
    env: { ...process.env, PGPASSWORD: password },
  };
}

/** Runs `sql` with psql on the client host against `target`; its output, rows and duration. */
export async function clientSql(
  lab: Lab,
  target: PsqlTarget,
  sql: string,
  o: ClientSqlOptions = {},
): Promise<ClientSqlResult> {
  const format =
    o.output === 'table' ? ['-X', '-P', 'footer=off'] : ['-XAtq', '-F', '\t', '-v', 'ON_ERROR_STOP=1'];
  // `timeout -s INT` runs inside the namespace, in front of psql.
  const wrapper = o.cancelAfterS ? ['timeout', '-s', 'INT', String(o.cancelAfterS)] : [];
  const cmd = psqlCommand(lab, target, [...format, '-c', sql], o, wrapper);
  const t = performance.now();
  const r = await run(cmd.argv, {
    timeoutMs: o.timeoutMs ?? 15_000,
    allowFailure: o.allowFailure,
    env: { ...cmd.env, ...o.env },
  });
  const rows = r.stdout
    .trim()
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => l.split('\t'));
  return { ...r, rows, ms: performance.now() - t };
}
