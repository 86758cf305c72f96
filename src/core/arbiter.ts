// The arbiter's decisions: witness observations and requests in, record changes and answers out.
// Pure; the arbiter daemon persists the record (before answering) and runs the probes.
import { nextTermRecord } from './record.js';
import type { ArbiterView, ClusterRecord } from './types.js';

export interface ArbiterState {
  record: ClusterRecord;
  /** Last time the arbiter itself reached the recorded primary's PostgreSQL as a writable primary,
   *  or the primary's agent had its term confirmed. */
  lastPrimaryOkAt: number;
  /** When the arbiter's own probe round last ran (a late round: the arbiter was paused). */
  lastRoundAt: number;
  /** When this arbiter process started: for fence_timeout after it, no primary is confirmed, so
   *  an agent holding a newer term (a failover forced while the arbiter was down) can tell it
   *  first. */
  startedAt?: number;
  /** What the arbiter vouches for to the primary's agent: when it last really reached that
   *  primary's PostgreSQL (from the start of the probe round), or confirmed its term. Not the
   *  start-up or after-pause assumption that lastPrimaryOkAt makes. */
  vouch: { node: string; at: number } | null;
  /** Per node, the handover requests (by number) it has given up on: a confirmation of its term
   *  voids every handover it sent before. Kept in memory only: a handover delayed in the network
   *  travels on a connection to this process, which a restart of the arbiter closes. */
  voidHandoversUpTo?: Record<string, number>;
}

export interface ArbiterSettings {
  failoverTimeoutMs: number;
  fenceTimeoutMs: number;
}

export type ArbiterRequest =
  /** The standby asks to be promoted: it has lost the primary for failover_timeout. */
  | { kind: 'promote'; node: string; term: number }
  /** The primary asks to lift its fence: is it still primary of this term? Every handover it
   *  sent up to `voidHandoversUpTo` is void from then on. */
  | { kind: 'confirmPrimary'; node: string; term: number; voidHandoversUpTo?: number }
  /** The primary reports whether its standby may be promoted (before dropping sync: false). */
  | { kind: 'setPromotable'; node: string; term: number; promotable: boolean }
  /** Planned switchover: the primary has stopped cleanly and the standby replayed everything.
   *  `seq` numbers the primary's handover requests (see confirmPrimary). */
  | { kind: 'handover'; node: string; to: string; term: number; seq: number }
  | { kind: 'maintenance'; enabled: boolean }
  /** A person forces a failover to `to` (the automatic path refused). */
  | { kind: 'forceFailover'; to: string }
  /** An agent holds a newer record than the arbiter: a failover forced while the arbiter was
   *  unreachable. The arbiter takes it so the old primary learns it was replaced. */
  | { kind: 'adopt'; record: ClusterRecord };

/** What kind of event an answer is, for logs, history and the tools that look for a grant. */
export type ArbiterEventKind =
  | 'grant'
  | 'handover'
  | 'forced'
  | 'adopt'
  | 'maintenance'
  | 'promotable'
  | 'confirm'
  | 'unchanged'
  | 'refusal';

/** Why a request was refused, as a code from a fixed set (metrics label it; the reason says it). */
export type RefusalCause =
  | 'stale_term'
  | 'not_of_record'
  | 'maintenance'
  | 'not_promotable'
  | 'arbiter_paused'
  | 'primary_reached'
  | 'arbiter_starting'
  | 'unknown_nodes'
  | 'stale_request';

/** The kinds that start a new term. */
export const NEW_TERM_EVENTS: readonly ArbiterEventKind[] = ['grant', 'handover', 'forced', 'adopt'];

export interface ArbiterAnswer {
  state: ArbiterState;
  ok: boolean;
  event: ArbiterEventKind;
  /** Set on a refusal. */
  cause?: RefusalCause;
  /** Why, in one sentence: shown in logs and to the caller. */
  reason: string;
  /** The record changed and must be persisted before the answer is sent. */
  changed: boolean;
}

/** The record of a new term with `to` as primary. The old primary becomes the standby, not
 *  promotable until it has rejoined and caught up; the new primary gets a full failover_timeout
 *  to come up before it can be declared lost. */
function nextTerm(prev: ArbiterState, to: string, now: number): ArbiterState {
  return { ...prev, record: nextTermRecord(prev.record, to), lastPrimaryOkAt: now, vouch: null };
}

export function initialArbiterState(record: ClusterRecord, now: number): ArbiterState {
  // At start the arbiter has not observed anything: treat the primary as just seen, so no grant
  // happens before a full failover_timeout of its own observation.
  return { record, lastPrimaryOkAt: now, lastRoundAt: now, startedAt: now, vouch: null };
}

/** One probe round of the arbiter: did `probed` (the primary of record when the round started,
 *  at `startedAt`) answer as a writable primary? */
export function arbiterObserve(
  prev: ArbiterState,
  probe: { node: string; ok: boolean; startedAt: number },
  now: number,
  s: ArbiterSettings,
): ArbiterState {
  const paused = now - prev.lastRoundAt > s.fenceTimeoutMs;
  // A probe of a node that is no longer primary (the record changed meanwhile) says nothing.
  const ok = probe.ok && probe.node === prev.record.primary;
  return {
    ...prev,
    lastRoundAt: now,
    // After a pause the arbiter knows nothing: it starts observing afresh.
    lastPrimaryOkAt: ok || paused ? now : prev.lastPrimaryOkAt,
    // The answer came after the round started: vouching from then errs on the safe side.
    vouch: ok ? { node: probe.node, at: probe.startedAt } : prev.vouch,
  };
}

/** What `/state` tells the agents: the record and the vouch for its primary. */
export function arbiterView(state: ArbiterState, now: number): ArbiterView {
  const v = state.vouch;
  return {
    record: state.record,
    primaryVouchedMsAgo: v && v.node === state.record.primary ? Math.max(0, now - v.at) : null,
  };
}

export function arbiterHandle(
  prev: ArbiterState,
  req: ArbiterRequest,
  now: number,
  s: ArbiterSettings,
): ArbiterAnswer {
  const rec = prev.record;
  const refuse = (cause: RefusalCause, reason: string): ArbiterAnswer => ({
    state: prev,
    ok: false,
    event: 'refusal',
    cause,
    reason,
    changed: false,
  });
  const accept = (
    event: ArbiterEventKind,
    state: ArbiterState,
    reason: string,
    changed = true,
  ): ArbiterAnswer => ({
    state,
    ok: true,
    event,
    reason,
    changed,
  });

  switch (req.kind) {
    case 'promote': {
      if (req.node !== rec.standby)
        return refuse('not_of_record', `${req.node} is not the standby of record (${rec.standby})`);
      if (req.term !== rec.term)
        return refuse('stale_term', `stale term ${req.term}: current term is ${rec.term}`);
      if (rec.maintenance) return refuse('maintenance', 'maintenance mode: automatic failover is paused');
      if (!rec.standbyPromotable)
        return refuse('not_promotable', `${req.node} is not promotable: it may lack acknowledged writes`);
      if (now - prev.lastRoundAt > s.fenceTimeoutMs)
        return refuse('arbiter_paused', 'the arbiter was paused; observing the primary afresh');
      const sinceSeen = now - prev.lastPrimaryOkAt;
      if (sinceSeen < s.failoverTimeoutMs)
        return refuse(
          'primary_reached',
          `the arbiter reached primary ${rec.primary} ${sinceSeen} ms ago: it is not lost`,
        );
      return accept(
        'grant',
        nextTerm(prev, req.node, now),
        `granted term ${rec.term + 1} to ${req.node}: primary ${rec.primary} lost for ${sinceSeen} ms by the arbiter too`,
      );
    }
    case 'confirmPrimary': {
      if (req.node !== rec.primary)
        return refuse(
          'not_of_record',
          `${req.node} is not the primary of record (${rec.primary}, term ${rec.term})`,
        );
      if (req.term !== rec.term)
        return refuse('stale_term', `stale term ${req.term}: current term is ${rec.term}`);
      if (prev.startedAt !== undefined && now - prev.startedAt < s.fenceTimeoutMs)
        return refuse(
          'arbiter_starting',
          'the arbiter has just started: hearing from every agent before confirming a primary',
        );
      // The primary is about to take clients again: count it as reached, so no grant can race it,
      // and no handover it sent before this request either.
      const voided = Math.max(prev.voidHandoversUpTo?.[req.node] ?? 0, req.voidHandoversUpTo ?? 0);
      return accept(
        'confirm',
        {
          ...prev,
          lastPrimaryOkAt: now,
          vouch: { node: req.node, at: now },
          voidHandoversUpTo: { ...prev.voidHandoversUpTo, [req.node]: voided },
        },
        `confirmed ${req.node} as primary of term ${rec.term}`,
        false,
      );
    }
    case 'setPromotable': {
      if (req.node !== rec.primary)
        return refuse('not_of_record', `${req.node} is not the primary of record (${rec.primary})`);
      if (req.term !== rec.term)
        return refuse('stale_term', `stale term ${req.term}: current term is ${rec.term}`);
      if (rec.standbyPromotable === req.promotable) return accept('unchanged', prev, 'unchanged', false);
      return accept(
        'promotable',
        { ...prev, record: { ...rec, standbyPromotable: req.promotable } },
        `${rec.standby} marked ${req.promotable ? 'promotable' : 'not promotable'}`,
      );
    }
    case 'handover': {
      if (req.node !== rec.primary)
        return refuse('not_of_record', `${req.node} is not the primary of record (${rec.primary})`);
      if (req.term !== rec.term)
        return refuse('stale_term', `stale term ${req.term}: current term is ${rec.term}`);
      if (req.to !== rec.standby)
        return refuse('not_of_record', `${req.to} is not the standby of record (${rec.standby})`);
      const voided = prev.voidHandoversUpTo?.[req.node] ?? 0;
      if (req.seq <= voided)
        return refuse(
          'stale_request',
          `stale handover ${req.seq} of ${req.node}: it has been confirmed as primary since it sent it (void up to ${voided})`,
        );
      return accept(
        'handover',
        nextTerm(prev, req.to, now),
        `switchover: term ${rec.term + 1} handed from ${rec.primary} to ${req.to}`,
      );
    }
    case 'maintenance':
      if (rec.maintenance === req.enabled) return accept('unchanged', prev, 'unchanged', false);
      return accept(
        'maintenance',
        { ...prev, record: { ...rec, maintenance: req.enabled } },
        `maintenance ${req.enabled ? 'on' : 'off'}`,
      );
    case 'forceFailover': {
      if (req.to !== rec.standby)
        return refuse('not_of_record', `${req.to} is not the standby of record (${rec.standby})`);
      return accept(
        'forced',
        nextTerm(prev, req.to, now),
        `FORCED failover: term ${rec.term + 1} given to ${req.to} without checks; writes acknowledged by ${rec.primary} may be lost`,
      );
    }
    case 'adopt': {
      const r = req.record;
      if (r.term <= rec.term)
        return refuse('stale_term', `stale term ${r.term}: current term is ${rec.term}`);
      if (
        r.primary === r.standby ||
        ![rec.primary, rec.standby].includes(r.primary) ||
        ![rec.primary, rec.standby].includes(r.standby)
      )
        return refuse('unknown_nodes', `record names unknown nodes (${r.primary}, ${r.standby})`);
      return accept(
        'adopt',
        { ...prev, record: { ...r }, lastPrimaryOkAt: now, vouch: null },
        `adopted term ${r.term} (primary ${r.primary}) from an agent: a failover forced while the arbiter was unreachable`,
      );
    }
  }
}
