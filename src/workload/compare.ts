// The checker's verdict, as a pure function: ledger + the ids present on the primary -> report.
// No I/O, no clock: unit-tested on hand-made ledgers.
//
// Each writer transaction inserts a customer row and an order row with the same id. So:
//   lost        ack, but a row of the transaction is missing (both, or one: a torn transaction)
//   unexpected  fail, but a row is present (a transaction we never committed is there)
//   unknown     resolved by what is present: committed (both rows), not committed (none), torn
//   torn        exactly one of the two rows present, whatever the outcome: atomicity broken
//   unrecorded  present in the run's id range but absent from the ledger (the writer was killed
//               between COMMIT and its ledger line, or the ledger was cut)
import { isSyncMode } from '../postgres/settings.js';
import type { Ledger, TxEntry } from './ledger.js';

export interface PresentRows {
  customers: ReadonlySet<string>;
  orders: ReadonlySet<string>;
}

export interface CompareOptions {
  /** Override the ledger's promise: true = --expect-no-loss, false = --allow-loss. */
  expectNoLoss?: boolean;
  /** How many ids to list per category (counts are always exact). */
  listLimit?: number;
}

export interface IdList {
  count: number;
  /** The first `listLimit` ids, in ledger order. */
  ids: string[];
}

export interface LostRows extends IdList {
  /** Which half is missing. */
  missing: { both: number; customer: number; order: number };
  /** Lost acks whose COMMIT carried a sync-rep warning ("committed locally only"). */
  withSyncWarning: number;
  firstAckAt: string | null;
  lastAckAt: string | null;
}

export interface CheckReport {
  runId: string;
  target: string;
  systemIdentifier: string | null;
  synchronousCommit: string;
  synchronousStandbyNames: string;
  /** Whether no acknowledged row may be lost, and where that came from. */
  promisesNoLoss: boolean;
  promiseSource: 'ledger' | 'flag';
  totals: { transactions: number; acknowledged: number; failed: number; unknown: number };
  acknowledgedWithSyncWarning: number;
  lost: LostRows;
  unexpected: IdList;
  unknown: { count: number; committed: number; notCommitted: number; torn: number; committedIds: string[] };
  torn: IdList;
  unrecorded: IdList;
  /** Longest time between consecutive acknowledgements across all sessions. */
  longestWriteGap: { ms: number; from: string; to: string } | null;
  /** Acks per second since the run started (index 0 = first second). */
  acksPerSecond: number[];
  /** Loss that breaks the promise, torn or unexpected transactions. */
  violations: string[];
  exitCode: 0 | 3;
  warnings: string[];
}

export const EXIT_VIOLATION = 3;

/** Which synchronous_commit settings promise that an acknowledged commit survives a failover. */
export function promisesNoLoss(synchronousCommit: string, synchronousStandbyNames: string): boolean {
  return isSyncMode(synchronousCommit) && synchronousStandbyNames.trim() !== '';
}

const iso = (ms: number) => new Date(ms).toISOString();

class Collector implements IdList {
  count = 0;
  ids: string[] = [];
  constructor(private readonly limit: number) {}
  add(id: string) {
    this.count++;
    if (this.ids.length < this.limit) this.ids.push(id);
  }
  toJSON(): IdList {
    return { count: this.count, ids: this.ids };
  }
}

export function longestGap(ackTimes: number[]): { ms: number; from: number; to: number } | null {
  if (ackTimes.length < 2) return null;
  const t = [...ackTimes].sort((a, b) => a - b);
  let best = { ms: -1, from: 0, to: 0 };
  for (let i = 1; i < t.length; i++) {
    const a = t[i - 1] as number;
    const b = t[i] as number;
    if (b - a > best.ms) best = { ms: b - a, from: a, to: b };
  }
  return best;
}

export function acksPerSecond(startMs: number, ackTimes: number[]): number[] {
  const out: number[] = [];
  for (const t of ackTimes) {
    const s = Math.max(0, Math.floor((t - startMs) / 1000));
    // Bounded: a run is at most days long; a wild timestamp is clamped rather than allocating.
    const idx = Math.min(s, 10 * 24 * 3600);
    while (out.length <= idx) out.push(0);
    out[idx] = (out[idx] ?? 0) + 1;
  }
  return out;
}

export function compareLedger(ledger: Ledger, present: PresentRows, opts: CompareOptions = {}): CheckReport {
  const h = ledger.header;
  const limit = opts.listLimit ?? 20;
  const ledgerPromise = promisesNoLoss(h.synchronousCommit, h.synchronousStandbyNames);
  const promise = opts.expectNoLoss ?? ledgerPromise;

  const totals = { transactions: 0, acknowledged: 0, failed: 0, unknown: 0 };
  const lost = new Collector(limit);
  const missing = { both: 0, customer: 0, order: 0 };
  let lostWarned = 0;
  let firstLost: number | null = null;
  let lastLost: number | null = null;
  let ackWarned = 0;
  const unexpected = new Collector(limit);
  const torn = new Collector(limit);
  const unrecorded = new Collector(limit);
  const unknown = { count: 0, committed: 0, notCommitted: 0, torn: 0, committedIds: [] as string[] };
  const ackTimes: number[] = [];
  const inLedger = new Set<string>();

  for (const tx of ledger.txs as TxEntry[]) {
    totals.transactions++;
    inLedger.add(tx.id);
    const c = present.customers.has(tx.id);
    const o = present.orders.has(tx.id);
    if (c !== o) torn.add(tx.id);
    switch (tx.outcome) {
      case 'ack':
        totals.acknowledged++;
        ackTimes.push(tx.t);
        if (tx.warning) ackWarned++;
        if (!c || !o) {
          lost.add(tx.id);
          if (!c && !o) missing.both++;
          else if (!c) missing.customer++;
          else missing.order++;
          if (tx.warning) lostWarned++;
          firstLost = firstLost === null ? tx.t : Math.min(firstLost, tx.t);
          lastLost = lastLost === null ? tx.t : Math.max(lastLost, tx.t);
        }
        break;
      case 'fail':
        totals.failed++;
        if (c || o) unexpected.add(tx.id);
        break;
      case 'unknown':
        totals.unknown++;
        unknown.count++;
        if (c && o) {
          unknown.committed++;
          if (unknown.committedIds.length < limit) unknown.committedIds.push(tx.id);
        } else if (!c && !o) unknown.notCommitted++;
        else unknown.torn++;
        break;
    }
  }
  const extra = new Set<string>();
  for (const id of present.customers) if (!inLedger.has(id)) extra.add(id);
  for (const id of present.orders) if (!inLedger.has(id)) extra.add(id);
  for (const id of [...extra].sort(cmpId)) unrecorded.add(id);

  const violations: string[] = [];
  const promiseBreaking = lost.count - lostWarned;
  if (promise && promiseBreaking > 0)
    violations.push(
      `${promiseBreaking} acknowledged transaction(s) lost although synchronous_commit=${h.synchronousCommit}` +
        `${h.synchronousStandbyNames ? ` with synchronous_standby_names='${h.synchronousStandbyNames}'` : ''} promises none`,
    );
  if (torn.count > 0) violations.push(`${torn.count} transaction(s) only half present (atomicity broken)`);
  if (unexpected.count > 0)
    violations.push(
      `${unexpected.count} failed transaction(s) present although COMMIT was never acknowledged`,
    );

  const warnings = [...ledger.warnings];
  if (!ledger.end) warnings.push('the ledger has no end line: the writer did not stop cleanly');
  if (lostWarned > 0)
    warnings.push(
      `${lostWarned} lost acknowledged transaction(s) had a COMMIT warning that the synchronous-replication wait was cancelled (committed locally only)`,
    );

  const gap = longestGap(ackTimes);
  return {
    runId: h.runId,
    target: h.target,
    systemIdentifier: h.systemIdentifier,
    synchronousCommit: h.synchronousCommit,
    synchronousStandbyNames: h.synchronousStandbyNames,
    promisesNoLoss: promise,
    promiseSource: opts.expectNoLoss === undefined ? 'ledger' : 'flag',
    totals,
    acknowledgedWithSyncWarning: ackWarned,
    lost: {
      ...lost.toJSON(),
      missing,
      withSyncWarning: lostWarned,
      firstAckAt: firstLost === null ? null : iso(firstLost),
      lastAckAt: lastLost === null ? null : iso(lastLost),
    },
    unexpected: unexpected.toJSON(),
    unknown,
    torn: torn.toJSON(),
    unrecorded: unrecorded.toJSON(),
    longestWriteGap: gap ? { ms: gap.ms, from: iso(gap.from), to: iso(gap.to) } : null,
    acksPerSecond: acksPerSecond(h.startedAtMs, ackTimes),
    violations,
    exitCode: violations.length > 0 ? EXIT_VIOLATION : 0,
    warnings,
  };
}

function cmpId(a: string, b: string): number {
  return a.length - b.length || (a < b ? -1 : a > b ? 1 : 0);
}
