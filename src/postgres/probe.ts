// Probing a PostgreSQL server over the network, with a hard deadline: a hung connection must never
// stall a round. Used by the standby's agent and by the arbiter (the witness of the primary).
import { queryOnce } from './client.js';
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

/** Does the server at `host` answer as a writable primary? */
export function probePrimaryPg(ctl: PgControl, host: string, timeoutMs: number): Promise<boolean> {
  const q = queryOnce<{ r: boolean }>(ctl.remote(host, timeoutMs), 'SELECT pg_is_in_recovery() AS r').then(
    (rows) => rows[0]?.r === false,
  );
  return deadline(q, timeoutMs + 100, false);
}
