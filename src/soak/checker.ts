// The soak's checker: what must hold during and after every schedule, as pure functions over what
// the run observed (samples of both nodes and the arbiter, the arbiter's grants, the writers'
// ledgers, the ledger check). The soak runner gathers the observations; this decides.
import type { TxEntry } from '../workload/ledger.js';

export type NodeName = 'pg1' | 'pg2';
export const NODE_NAMES: readonly NodeName[] = ['pg1', 'pg2'];

/** What one sampling round saw of a node: its agent's /state, and PostgreSQL as a client sees it
 *  (a fenced node refuses the connection; null = no answer). */
export interface NodeSample {
  agent: {
    term: number;
    recordPrimary: string;
    role: string;
    phase: string;
    fenced: boolean;
    inRecovery: boolean | null;
    /** A standby's WAL receiver streams. */
    receiving: boolean;
    timeline: number | null;
  } | null;
  /** pg_is_in_recovery() over TCP from the client host; null when it did not answer. */
  pgInRecovery: boolean | null;
}

export interface Sample {
  t: number;
  arbiter: {
    term: number;
    primary: string;
    standby: string;
    promotable: boolean;
    maintenance: boolean;
  } | null;
  nodes: Record<NodeName, NodeSample>;
}

/** A term, who holds it, and when it was granted (epoch ms). */
export interface TermGrant {
  term: number;
  primary: string;
  at: number;
  /** Granted by `pgarbiter failover --force` (documented to risk loss and two primaries). */
  forced: boolean;
}

export interface Window {
  from: number;
  to: number;
  ms: number;
}

/**
 * Periods in which both nodes answered a client as writable primaries (pg_is_in_recovery() =
 * false over TCP from the client host: a fenced node refuses the connection). A period is the
 * first to the last consecutive sample in which both did.
 */
export function dualPrimaryWindows(samples: readonly Sample[]): Window[] {
  const out: Window[] = [];
  let open: Window | null = null;
  for (const s of samples) {
    const both = NODE_NAMES.every((n) => s.nodes[n].pgInRecovery === false);
    if (both) {
      if (open) {
        open.to = s.t;
        open.ms = open.to - open.from;
      } else open = { from: s.t, to: s.t, ms: 0 };
    } else if (open) {
      out.push(open);
      open = null;
    }
  }
  if (open) out.push(open);
  return out;
}

/** One writable unfenced primary and one streaming, promotable, unfenced standby, as the
 *  arbiter's record and both agents say (the same test as the lab's `healthy`). */
export function healthyIn(s: Sample): { primary: string; standby: string; term: number } | undefined {
  const rec = s.arbiter;
  if (!rec) return undefined;
  const p = s.nodes[rec.primary as NodeName]?.agent;
  const st = s.nodes[rec.standby as NodeName]?.agent;
  if (!p || !st) return undefined;
  const ok =
    p.inRecovery === false &&
    !p.fenced &&
    st.inRecovery === true &&
    st.receiving &&
    !st.fenced &&
    rec.promotable;
  return ok ? { primary: rec.primary, standby: rec.standby, term: rec.term } : undefined;
}

/** Terms (the arbiter's and each agent's) and each node's timeline never go down. */
export function monotonicViolations(samples: readonly Sample[]): string[] {
  const out: string[] = [];
  const last = new Map<string, { v: number; t: number }>();
  const see = (what: string, v: number | null | undefined, t: number) => {
    if (v === null || v === undefined) return;
    const prev = last.get(what);
    if (prev && v < prev.v)
      out.push(
        `${what} went down from ${prev.v} to ${v} (${new Date(prev.t).toISOString()} -> ${new Date(t).toISOString()})`,
      );
    if (!prev || v >= prev.v) last.set(what, { v, t });
  };
  for (const s of samples) {
    see("the arbiter's term", s.arbiter?.term, s.t);
    for (const n of NODE_NAMES) {
      see(`${n}'s term`, s.nodes[n].agent?.term, s.t);
      see(`${n}'s timeline`, s.nodes[n].agent?.timeline, s.t);
    }
  }
  return out;
}

/** Grants seen in samples (any member carrying term T with primary P), earliest sighting each:
 *  a fallback for terms the arbiter's log does not show (a promotion through an agent). */
export function termsFromSamples(samples: readonly Sample[]): TermGrant[] {
  const seen = new Map<number, TermGrant>();
  const add = (term: number, primary: string, at: number) => {
    const g = seen.get(term);
    if (!g || at < g.at) seen.set(term, { term, primary, at, forced: false });
  };
  for (const s of samples) {
    if (s.arbiter) add(s.arbiter.term, s.arbiter.primary, s.t);
    for (const n of NODE_NAMES) {
      const a = s.nodes[n].agent;
      if (a) add(a.term, a.recordPrimary, s.t);
    }
  }
  return [...seen.values()];
}

/** The arbiter's grants from its JSON-lines log: the first line that carries each term's record
 *  (the arbiter persists a grant, then logs it with the record). */
export function termsFromArbiterLog(text: string): TermGrant[] {
  const seen = new Map<number, TermGrant>();
  for (const line of text.split('\n')) {
    if (!line.startsWith('{') || !line.includes('"record"')) continue;
    let j: { time?: string; msg?: string; record?: { term?: number; primary?: string } };
    try {
      j = JSON.parse(line);
    } catch {
      continue;
    }
    const term = j.record?.term;
    const at = j.time ? Date.parse(j.time) : Number.NaN;
    if (!Number.isInteger(term) || typeof j.record?.primary !== 'string' || Number.isNaN(at)) continue;
    if (!seen.has(term as number))
      seen.set(term as number, {
        term: term as number,
        primary: j.record.primary,
        at,
        // Forced through the arbiter, or through an agent while the arbiter was away (which the
        // arbiter adopts when it is back): both documented to risk loss.
        forced: /^(forceFailover|adopt):/.test(j.msg ?? ''),
      });
  }
  return [...seen.values()];
}

/** Both sources merged: the arbiter's log wins on who and how; the earlier time wins. */
export function mergeTerms(fromLog: readonly TermGrant[], fromSamples: readonly TermGrant[]): TermGrant[] {
  const m = new Map<number, TermGrant>();
  for (const g of fromLog) m.set(g.term, { ...g });
  for (const g of fromSamples) {
    const have = m.get(g.term);
    if (!have) m.set(g.term, { ...g });
    else if (g.at < have.at) have.at = g.at;
  }
  return [...m.values()].sort((a, b) => a.term - b.term);
}

export interface LateAck {
  id: string;
  node: string;
  /** When the transaction began and when it was acknowledged (epoch ms). */
  beganAt: number;
  ackAt: number;
  /** The newer term granted to the other node before the transaction began. */
  term: number;
  grantedTo: string;
  grantedAt: number;
  forced: boolean;
}

/**
 * Invariant 1 on the ledger: no write acknowledged by a node after another node was granted a
 * newer term. A transaction counts when it began after that grant (BEGIN to ack happened wholly
 * in the newer term, so the old node committed it then); an ack that merely arrived late (a
 * COMMIT sent before the grant) is not counted. `nodeOf` maps the ledger's server address.
 */
export function acksAfterNewerTerm(
  txs: readonly TxEntry[],
  terms: readonly TermGrant[],
  nodeOf: (server: string) => string | null,
): LateAck[] {
  const sorted = [...terms].sort((a, b) => a.at - b.at || a.term - b.term);
  const out: LateAck[] = [];
  for (const tx of txs) {
    if (tx.outcome !== 'ack' || !tx.server) continue;
    const node = nodeOf(tx.server);
    if (!node) continue;
    const beganAt = tx.t - tx.ms;
    let current: TermGrant | undefined;
    for (const g of sorted) if (g.at <= beganAt && (!current || g.term > current.term)) current = g;
    if (current && current.primary !== node)
      out.push({
        id: tx.id,
        node,
        beganAt,
        ackAt: tx.t,
        term: current.term,
        grantedTo: current.primary,
        grantedAt: current.at,
        forced: current.forced,
      });
  }
  return out;
}

export interface ScheduleObservation {
  sync: string;
  /** Does the sync mode promise no loss of acknowledged rows (remote_apply)? */
  promisesNoLoss: boolean;
  samples: readonly Sample[];
  lateAcks: readonly LateAck[];
  /** From the ledger check(s). */
  acknowledged: number;
  lost: number;
  torn: number;
  unexpected: number;
  /** A failover forced by the operator happened (documented to risk loss). */
  forcedFailover: boolean;
  /** ms from the last fault's end to a healthy cluster; null = not within the bound. */
  healMs: number | null;
  healBoundMs: number;
  /** Daemons found dead after the faults ended that no fault had stopped. */
  deadDaemons: readonly string[];
  /** Acknowledged writes after the cluster was healthy again. */
  acksAfterHeal: number;
  /** The longest the two nodes may both serve as primaries (the timing rule's fence bound). */
  dualPrimaryBoundMs: number;
}

export interface Verdict {
  violations: string[];
  /** Found but documented (a forced failover's risk): shown, not a violation. */
  excused: string[];
  dualPrimary: Window[];
}

const sec = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

/** The end-of-schedule verdict. */
export function judgeSchedule(o: ScheduleObservation): Verdict {
  const violations: string[] = [];
  const excused: string[] = [];
  const dual = dualPrimaryWindows(o.samples);
  for (const w of dual)
    if (w.ms > o.dualPrimaryBoundMs)
      violations.push(
        `two unfenced writable primaries for ${sec(w.ms)} (from ${new Date(w.from).toISOString()}; the bound is ${sec(o.dualPrimaryBoundMs)})`,
      );
  violations.push(...monotonicViolations(o.samples));
  const late = o.lateAcks.filter((a) => !a.forced);
  if (late.length > 0) {
    const a = late[0] as LateAck;
    violations.push(
      `${late.length} write(s) acknowledged by a node after a newer term was granted, e.g. ${a.id} by ${a.node} at ${new Date(a.ackAt).toISOString()}, term ${a.term} granted to ${a.grantedTo} at ${new Date(a.grantedAt).toISOString()}`,
    );
  }
  const forcedLate = o.lateAcks.length - late.length;
  if (forcedLate > 0)
    excused.push(`${forcedLate} write(s) acknowledged by the old primary after a forced failover`);
  if (o.lost > 0) {
    if (o.promisesNoLoss && !o.forcedFailover)
      violations.push(
        `${o.lost} acknowledged row(s) lost although synchronous_commit=${o.sync} promises none`,
      );
    else if (o.promisesNoLoss) excused.push(`${o.lost} acknowledged row(s) lost after a forced failover`);
  }
  if (o.torn > 0) violations.push(`${o.torn} torn transaction(s)`);
  if (o.unexpected > 0) violations.push(`${o.unexpected} failed transaction(s) present`);
  if (o.acknowledged === 0) violations.push('no write was acknowledged');
  if (o.healMs === null)
    violations.push(
      `no primary with a streaming promotable standby within ${sec(o.healBoundMs)} after the faults healed`,
    );
  else if (o.acksAfterHeal === 0) violations.push('no write acknowledged after the cluster healed');
  for (const d of o.deadDaemons) violations.push(`${d} is not running (no fault stopped it)`);
  return { violations, excused, dualPrimary: dual };
}
