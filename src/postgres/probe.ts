// Probing a PostgreSQL server over the network, with a hard deadline: a hung connection must never
// stall a round. Used by the standby's agent and by the arbiter (the witness of the primary).
import { type KeptClient, queryOnce } from './client.js';
import type { PgControl } from './control.js';

/** `p`, or `fallback` once `ms` have passed (or when `p` fails). */
export function deadline<T>(p: Promise<T>, ms: number, fallback: T): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p.catch(() => fallback),
    new Promise<T>((r) => {
      timer = setTimeout(() => r(fallback), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/** Does the server at `host` answer as a writable primary? Through `kept` (a daemon's probe of
 *  every round), else on a fresh connection. */
export function probePrimaryPg(
  ctl: PgControl,
  host: string,
  timeoutMs: number,
  kept?: KeptClient,
): Promise<boolean> {
  const sql = 'SELECT pg_is_in_recovery() AS r';
  const o = ctl.remote(host, timeoutMs);
  const q = (kept ? kept.query<{ r: boolean }>(o, sql) : queryOnce<{ r: boolean }>(o, sql)).then(
    (rows) => rows[0]?.r === false,
  );
  return deadline(q, timeoutMs + 100, false);
}
