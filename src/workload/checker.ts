// `check`: what the current primary holds for a writer run, compared with the writer's ledger.
// Reads every row of the run's id range (keyset pages over the primary key), so rows the ledger
// never recorded are found too; the verdict itself is the pure compareLedger().
import type pg from 'pg';
import { closeClient, errorText } from '../postgres/client.js';
import { UserError } from '../util/errors.js';
import { type CheckReport, compareLedger } from './compare.js';
import { type ConnTarget, connectTarget, parseDsn } from './dsn.js';
import { runIdRange } from './ids.js';
import { type Ledger, readLedger } from './ledger.js';

export interface CheckOptions {
  /** Where to look; default: the ledger header's target (password from `password`/PGPASSWORD). */
  target?: string | ConnTarget;
  password?: string;
  /** true = --expect-no-loss, false = --allow-loss, undefined = from the ledger's settings. */
  expectNoLoss?: boolean;
  listLimit?: number;
  queryTimeoutMs?: number;
}

export interface CheckResult extends CheckReport {
  ledgerPath: string;
  /** The server that answered the check. */
  checkedOn: string;
  checkedSystemIdentifier: string | null;
}

const PAGE = 50_000;

/** All ids of `table` in [lo, hi), page by page; bounded by the size of the id space. */
async function idsInRange(client: pg.Client, table: 'customers' | 'orders', lo: string, hi: string) {
  const out = new Set<string>();
  let from = lo;
  let first = true;
  // 2^39 ids per run / PAGE: a hard bound well above any real run; each page is one index scan.
  for (let page = 0; page < 2 ** 39 / PAGE; page++) {
    const r = await client.query<{ id: string }>(
      `SELECT id::text AS id FROM ${table} WHERE id ${first ? '>=' : '>'} $1 AND id < $2 ORDER BY id LIMIT ${PAGE}`,
      [from, hi],
    );
    for (const row of r.rows) out.add(row.id);
    if (r.rows.length < PAGE) break;
    from = r.rows[r.rows.length - 1]?.id ?? hi;
    first = false;
  }
  return out;
}

export async function checkLedger(ledgerPath: string, opts: CheckOptions = {}): Promise<CheckResult> {
  const ledger: Ledger = await readLedger(ledgerPath);
  return checkParsedLedger(ledger, ledgerPath, opts);
}

export async function checkParsedLedger(ledger: Ledger, ledgerPath: string, opts: CheckOptions = {}) {
  const h = ledger.header;
  const target =
    opts.target === undefined
      ? parseDsn(h.target)
      : typeof opts.target === 'string'
        ? parseDsn(opts.target, { targetSessionAttrs: 'read-write' })
        : opts.target;
  const { client, info } = await connectTarget(target, {
    password: opts.password ?? target.password,
    queryTimeoutMs: opts.queryTimeoutMs ?? 30_000,
    applicationName: 'pgarbiter-check',
  });
  try {
    let sysid: string | null = null;
    try {
      const r = await client.query<{ id: string }>(
        'SELECT system_identifier::text AS id FROM pg_control_system()',
      );
      sysid = r.rows[0]?.id ?? null;
    } catch {
      sysid = null;
    }
    const warnings: string[] = [];
    if (h.systemIdentifier && sysid && h.systemIdentifier !== sysid)
      throw new UserError(
        `ledger ${ledgerPath} was written to cluster ${h.systemIdentifier}, but ${info.server} belongs to cluster ${sysid}: point --dsn at the cluster the writer wrote to`,
      );
    if (!h.systemIdentifier || !sysid)
      warnings.push(
        'cannot confirm the cluster identity (pg_control_system() not readable): make sure --dsn is the writer’s cluster',
      );
    if (info.inRecovery)
      warnings.push(`${info.server} is a standby: it may lag behind the primary; check against the primary`);
    const { lo, hi } = runIdRange(h.run);
    let customers: Set<string>;
    let orders: Set<string>;
    try {
      customers = await idsInRange(client, 'customers', lo, hi);
      orders = await idsInRange(client, 'orders', lo, hi);
    } catch (e) {
      throw new UserError(`reading the run's rows on ${info.server} failed: ${errorText(e)}`);
    }
    const report = compareLedger(ledger, { customers, orders }, opts);
    report.warnings.push(...warnings);
    return { ...report, ledgerPath, checkedOn: info.server, checkedSystemIdentifier: sysid };
  } finally {
    await closeClient(client);
  }
}

const fmtMs = (ms: number) => (ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${Math.round(ms)} ms`);

/** The report for a terminal. */
export function formatCheckReport(r: CheckResult): string {
  const L: string[] = [];
  const ids = (l: { count: number; ids: string[] }) =>
    l.count === 0 ? '' : `  (${l.ids.join(', ')}${l.count > l.ids.length ? ', ...' : ''})`;
  L.push(`ledger        ${r.ledgerPath}  run ${r.runId}`);
  L.push(`checked on    ${r.checkedOn}  (cluster ${r.checkedSystemIdentifier ?? 'unknown'})`);
  L.push(
    `sync mode     synchronous_commit=${r.synchronousCommit} synchronous_standby_names='${r.synchronousStandbyNames}'` +
      `  -> ${r.promisesNoLoss ? 'no loss allowed' : 'loss possible'}${r.promiseSource === 'flag' ? ' (flag)' : ''}`,
  );
  L.push(
    `transactions  ${r.totals.transactions}: acknowledged ${r.totals.acknowledged}, failed ${r.totals.failed}, unknown ${r.totals.unknown}`,
  );
  L.push(
    `lost          ${r.lost.count}${r.lost.count ? ` (both rows ${r.lost.missing.both}, customer only ${r.lost.missing.customer}, order only ${r.lost.missing.order}; acknowledged ${r.lost.firstAckAt} .. ${r.lost.lastAckAt})` : ''}${ids(r.lost)}`,
  );
  L.push(`unexpected    ${r.unexpected.count}${ids(r.unexpected)}`);
  L.push(
    `unknown       ${r.unknown.count}: committed ${r.unknown.committed}, not committed ${r.unknown.notCommitted}, torn ${r.unknown.torn}`,
  );
  L.push(`torn          ${r.torn.count}${ids(r.torn)}`);
  L.push(`unrecorded    ${r.unrecorded.count}${ids(r.unrecorded)}`);
  L.push(
    `write gap     ${r.longestWriteGap ? `${fmtMs(r.longestWriteGap.ms)} (${r.longestWriteGap.from} .. ${r.longestWriteGap.to})` : 'n/a (fewer than 2 acks)'}`,
  );
  for (const w of r.warnings) L.push(`warning: ${w}`);
  if (r.violations.length === 0) L.push('verdict       OK');
  else for (const v of r.violations) L.push(`VIOLATION     ${v}`);
  return `${L.join('\n')}\n`;
}
