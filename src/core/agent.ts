// The database node's decisions. Pure: no I/O, no clock (time comes in the observation).
//   decideAgent(state, observation, settings) -> new state, actions, phase (one probe round)
//   agentOnReply(state, request, reply, now, settings) -> new state, follow-up actions
//   vouchOf(state, settings, now) -> what /health vouches for
//   requestSwitchover / requestRejoin / forcePromotion -> a person's requests
// Every decision names its rule (src/core/rules.ts); the daemon (src/agent/daemon.ts) and the
// simulator (test/unit/core-scenarios.test.ts) both drive exactly these functions.

import { lsnAtLeast } from './lsn.js';
import { nextTermRecord } from './record.js';
import type { RuleId } from './rules.js';
import type {
  AgentAction,
  AgentObservation,
  AgentPhase,
  AgentSettings,
  AgentState,
  ArbiterReply,
  AskPurpose,
  ClusterRecord,
  CoreTiming,
  Decision,
  PersistedAgentState,
  Vouch,
} from './types.js';

export function initialAgentState(record: ClusterRecord, now: number): AgentState {
  // Everything counts as seen at start: nobody is declared lost before a full timeout.
  return {
    record,
    lastArbiterOkAt: now,
    lastPeerOkAt: now,
    lastPrimaryPgOkAt: now,
    lastVouchedAt: now,
    confirmedAt: null,
    primarySeen: null,
    promotionAskedInTerm: null,
    requests: { switchover: false, rejoin: false },
    lastRoundAt: now,
    syncStallSince: null,
    promotableAtLsn: null,
    notReceivingSince: null,
    handoverSeq: 0,
    handoverUnsettledTerm: null,
  };
}

/**
 * The state of an agent process that has just started from what it persisted. Unlike
 * initialAgentState, the peers count as unseen: a primary whose agent restarts while it is cut off
 * fences on its first round instead of serving for another fence_timeout (the arbiter may have been
 * counting its loss all along). A primary that reaches either peer is not affected; the standby's
 * failover clock still starts now, so a restart never triggers a promotion request by itself.
 */
export function startingAgentState(saved: PersistedAgentState, now: number, timing: CoreTiming): AgentState {
  const lost = now - timing.fenceTimeoutMs;
  return {
    ...initialAgentState(saved.record, now),
    promotionAskedInTerm: saved.promotionAskedInTerm,
    handoverSeq: saved.handoverSeq ?? 0,
    handoverUnsettledTerm: saved.handoverUnsettledTerm ?? null,
    lastArbiterOkAt: lost,
    lastPeerOkAt: lost,
    // Older than any lease: a restarted agent holds the lease only on a peer's fresh word.
    lastVouchedAt: now - timing.failoverTimeoutMs,
  };
}

/** What survives a restart (written before any request that depends on it goes out). */
export function persistedOf(state: AgentState): PersistedAgentState {
  return {
    record: state.record,
    promotionAskedInTerm: state.promotionAskedInTerm,
    handoverSeq: state.handoverSeq,
    handoverUnsettledTerm: state.handoverUnsettledTerm,
  };
}

/** A switchover's handover request is about to go out: its number, and the state to persist
 *  first (the request stays unsettled until an answer, or a confirmation that voids it). The
 *  clock is only a floor: should the state file be lost, new numbers still pass the old ones the
 *  arbiter has voided (a clock set back could only get handovers refused, never one taken). */
export function handoverSending(state: AgentState, now: number): { state: AgentState; seq: number } {
  const seq = Math.max(state.handoverSeq + 1, Math.floor(now));
  return { state: { ...state, handoverSeq: seq, handoverUnsettledTerm: state.record.term }, seq };
}

/** The arbiter answered the handover request (granted or refused), or a confirmation voided it:
 *  it cannot take effect later. */
export function handoverSettled(state: AgentState): AgentState {
  return { ...state, handoverUnsettledTerm: null };
}

/** The lease while we may serve as primary: until the last moment a peer is known to have reached
 *  our PostgreSQL (or the arbiter confirmed or granted our term) + the lease duration. No grant can
 *  come before that moment + failover_timeout, and the timing rule makes the lease shorter. */
function holdLease(state: AgentState, s: AgentSettings): AgentAction[] {
  if (s.leaseMs === undefined) return [];
  const anchor = Math.max(state.lastVouchedAt, state.confirmedAt ?? Number.NEGATIVE_INFINITY);
  return [{ kind: 'lease', rule: 'hold-lease', until: anchor + s.leaseMs }];
}

/** A standby that is up but not receiving WAL from a reachable primary for this long rejoins. */
export const NOT_RECEIVING_REJOIN_MS = 20_000;

/** Adopts `record` when its term is at least ours (the arbiter's word) or newer (anyone's). Being
 *  newly named primary (a grant, a handover, a forced failover) is our confirmation. */
function adoptRecord(
  state: AgentState,
  record: ClusterRecord,
  me: string,
  now: number,
  orEqual: boolean,
): void {
  if (record.term < state.record.term || (!orEqual && record.term === state.record.term)) return;
  if (record.primary === me && (state.record.primary !== me || record.term > state.record.term))
    state.confirmedAt = now;
  state.record = { ...record };
}

export function decideAgent(prev: AgentState, obs: AgentObservation, s: AgentSettings): Decision {
  const now = obs.now;
  const t = s.timing;
  // A round late by more than fence_timeout means this process was paused (SIGSTOP, GC): what
  // it remembers is stale, so only this round's observations count.
  const paused = now - prev.lastRoundAt > t.fenceTimeoutMs;
  const state: AgentState = { ...prev, requests: { ...prev.requests }, lastRoundAt: now };
  const pre: AgentAction[] = [];
  if (paused) {
    const stale = now - t.failoverTimeoutMs;
    state.lastArbiterOkAt = Math.min(state.lastArbiterOkAt, stale);
    state.lastPeerOkAt = Math.min(state.lastPeerOkAt, stale);
    state.lastVouchedAt = Math.min(state.lastVouchedAt, stale);
    state.confirmedAt = null;
  }
  // Rule adopt-newer-term. The arbiter's record is authoritative at an equal term (maintenance,
  // promotability change within a term); a lower one can only come from a lost record file or a
  // failover forced while it was down (push-term-to-arbiter below).
  const termBefore = state.record.term;
  if (obs.arbiter) {
    state.lastArbiterOkAt = now;
    adoptRecord(state, obs.arbiter.record, s.me, now, true);
  }
  if (obs.peer) {
    state.lastPeerOkAt = now;
    adoptRecord(state, obs.peer.record, s.me, now, false);
  }
  if (state.record.term > termBefore)
    pre.push({
      kind: 'note',
      rule: 'adopt-newer-term',
      level: 'warn',
      msg: `term ${state.record.term} (primary ${state.record.primary}) learned from ${obs.arbiter?.record.term === state.record.term ? 'the arbiter' : obs.peer?.node}`,
    });
  if (obs.arbiter && obs.arbiter.record.term < state.record.term)
    pre.push({
      kind: 'ask',
      rule: 'push-term-to-arbiter',
      why: 'adopt',
      request: { kind: 'adopt', record: state.record },
    });
  const rec = state.record;
  if (state.promotionAskedInTerm !== null && state.promotionAskedInTerm !== rec.term)
    state.promotionAskedInTerm = null;
  // A handover of an older term is refused as stale wherever it arrives.
  if (state.handoverUnsettledTerm !== null && state.handoverUnsettledTerm < rec.term)
    state.handoverUnsettledTerm = null;

  if (rec.primary === s.me) {
    // Vouches, converted to our clock from the start of the round (an earlier estimate can only
    // make us fence sooner). Only a vouch for us in our term counts.
    const av = obs.arbiter;
    if (av && av.record.primary === s.me && av.record.term === rec.term && av.primaryVouchedMsAgo !== null)
      state.lastVouchedAt = Math.max(state.lastVouchedAt, obs.startedAt - av.primaryVouchedMsAgo);
    const sv = standbyVouch(obs, state, s);
    if (sv !== null) state.lastVouchedAt = Math.max(state.lastVouchedAt, sv);
    if (state.confirmedAt !== null) state.lastVouchedAt = Math.max(state.lastVouchedAt, state.confirmedAt);
  } else {
    // The arbiter reaches the primary again in this term: any promotion request it might still
    // get is refused for failover_timeout, so we may vouch again.
    const av = obs.arbiter;
    if (
      state.promotionAskedInTerm === rec.term &&
      av &&
      av.record.term === rec.term &&
      av.primaryVouchedMsAgo !== null &&
      av.primaryVouchedMsAgo < t.fenceTimeoutMs
    )
      state.promotionAskedInTerm = null;
  }
  if (obs.primaryPgOk) {
    state.lastPrimaryPgOkAt = now;
    state.primarySeen = { node: rec.primary, term: rec.term, at: obs.startedAt };
  }

  const d = rec.primary === s.me ? decidePrimary(state, obs, s, paused) : decideStandby(state, obs, s);
  state.requests = { switchover: false, rejoin: false };
  return { ...d, actions: [...pre, ...d.actions] };
}

/** The standby's vouch for us in our term, on our clock; null when there is none. */
function standbyVouch(obs: AgentObservation, state: AgentState, s: AgentSettings): number | null {
  const v = obs.peer?.vouch;
  if (!v || v.primary !== s.me || v.term !== state.record.term || !(v.seenMsAgo >= 0)) return null;
  return obs.startedAt - v.seenMsAgo;
}

type Done = (phase: AgentPhase, rule: RuleId) => Decision;

function decidePrimary(
  state: AgentState,
  obs: AgentObservation,
  s: AgentSettings,
  paused: boolean,
): Decision {
  const now = obs.now;
  const t = s.timing;
  const rec = state.record;
  const actions: AgentAction[] = [];
  const done: Done = (phase, rule) => ({ state, actions, phase, rule });
  const standby = rec.standby;
  state.primarySeen = null;
  state.promotionAskedInTerm = null;
  state.notReceivingSince = null;

  if (obs.local.up && obs.local.inRecovery === true) {
    state.syncStallSince = null;
    state.promotableAtLsn = null;
    // The lease first, so the new primary takes writes as soon as it is promoted.
    actions.push(...holdLease(state, s), { kind: 'promote', rule: 'promote-on-record', term: rec.term });
    return done('promoting', 'promote-on-record');
  }

  const lostArbiter = now - state.lastArbiterOkAt >= t.fenceTimeoutMs;
  const lostPeer = now - state.lastPeerOkAt >= t.fenceTimeoutMs;
  // Isolated from both peers (or just woke from a pause without the arbiter's word): the
  // standby may be promoted soon, so stop accepting clients now. Maintenance mode does not
  // exempt us: cut off, we cannot see a person end it, and the arbiter would then grant after
  // failover_timeout while we still served. The fence lifts by itself once a peer vouches.
  if ((lostArbiter && lostPeer) || (paused && !obs.arbiter)) {
    const rule: RuleId = lostArbiter && lostPeer ? 'fence-isolated' : 'fence-after-pause';
    if (!obs.fenced)
      actions.push({
        kind: 'fence',
        rule,
        reason:
          rule === 'fence-isolated'
            ? `lost ${standby} and the arbiter`
            : 'agent loop was paused and the arbiter did not answer',
      });
    return done('fenced-isolated', rule);
  }

  if (!obs.local.up) {
    if (rec.maintenance)
      return note(
        done('primary-down', 'maintenance-no-restart'),
        'warn',
        'PostgreSQL is down; maintenance mode: not restarting',
      );
    if (!obs.fenced)
      actions.push({
        kind: 'fence',
        rule: 'restart-fenced',
        reason: 'PostgreSQL is down; restarting it fenced',
      });
    actions.push({
      kind: 'startPostgres',
      rule: 'restart-fenced',
      reason: 'primary PostgreSQL is not running',
    });
    return done('restarting', 'restart-fenced');
  }

  if (obs.local.inRecovery === null) return done('primary-starting', 'wait-for-startup');

  if (obs.fenced) {
    if (obs.arbiter && obs.arbiter.record.primary === s.me && obs.arbiter.record.term === rec.term) {
      actions.push({
        kind: 'ask',
        rule: 'unfence-confirmed',
        why: 'unfence',
        request: {
          kind: 'confirmPrimary',
          node: s.me,
          term: rec.term,
          voidHandoversUpTo: state.handoverSeq,
        },
      });
      return done('fenced', 'unfence-confirmed');
    }
    // Rule unfence-vouched. Safe without the arbiter because only our standby can be granted a
    // newer term, and only after it asked; it asks only once it has not reached our PostgreSQL for
    // failover_timeout, and it does not vouch in a term in which it asked (promotionAskedInTerm,
    // persisted). So a vouch younger than fence_timeout means no grant can come before
    // vouch + failover_timeout, and fence-unreached fences us by vouch + fence_timeout +
    // probe_interval + fence_action_budget, which the timing rule puts earlier. It streaming from
    // us means its data follows ours. Not while a handover of ours may still reach the arbiter:
    // that grant needs no request of the standby's.
    const sv = standbyVouch(obs, state, s);
    const streaming = obs.local.peerReplication?.state === 'streaming';
    const handoverInFlight = state.handoverUnsettledTerm === rec.term;
    if (!obs.arbiter && sv !== null && now - sv < t.fenceTimeoutMs && streaming && !handoverInFlight) {
      actions.push(...holdLease(state, s), {
        kind: 'unfence',
        rule: 'unfence-vouched',
        reason: `${standby} streams from us and vouches for us in term ${rec.term}; the arbiter does not answer`,
      });
      return done('primary', 'unfence-vouched');
    }
    if (!obs.arbiter)
      return note(
        done('fenced', 'stay-fenced'),
        'info',
        'fenced: waiting for the arbiter or a streaming standby to vouch for our term',
      );
    return done('fenced', 'stay-fenced');
  }

  if (now - state.lastVouchedAt >= t.fenceTimeoutMs) {
    actions.push({
      kind: 'fence',
      rule: 'fence-unreached',
      reason: `neither ${standby} nor the arbiter has reached our PostgreSQL for ${now - state.lastVouchedAt} ms`,
    });
    return done('fenced-unreached', 'fence-unreached');
  }

  if (state.requests.switchover) {
    const r = obs.local.peerReplication;
    if (
      r?.state === 'streaming' &&
      (!s.syncReplication || r.syncState === 'sync' || r.caughtUp) &&
      rec.standbyPromotable
    )
      actions.push({ kind: 'handover', rule: 'switchover', to: standby, term: rec.term });
    else
      actions.push({
        kind: 'note',
        rule: 'switchover-refused',
        level: 'warn',
        msg: `switchover refused: ${standby} is not a healthy, caught-up, promotable standby`,
      });
  }

  decideReplication(state, obs, s, actions);
  actions.unshift(...holdLease(state, s));
  return done('primary', 'serve');
}

/** Synchronous replication fallback and the standby's promotability (primary side). */
function decideReplication(
  state: AgentState,
  obs: AgentObservation,
  s: AgentSettings,
  actions: AgentAction[],
): void {
  const now = obs.now;
  const rec = state.record;
  const r = obs.local.peerReplication;
  const streaming = r?.state === 'streaming';
  const canTellArbiter = obs.arbiter !== null;
  const setPromotable = (rule: RuleId, promotable: boolean, why: AskPurpose = 'setPromotable') =>
    actions.push({
      kind: 'ask',
      rule,
      why,
      request: { kind: 'setPromotable', node: s.me, term: rec.term, promotable },
    });

  // The walsender of a standby that vanished without a reset (frozen, link cut) still says
  // "streaming" until wal_sender_timeout: where that alone would decide, its agent must answer too.
  const streamingAndAlive = streaming && obs.peer !== null;

  if (!s.syncReplication) {
    if (streamingAndAlive) {
      state.syncStallSince = null;
      if (!rec.standbyPromotable && canTellArbiter) setPromotable('promotable-async', true);
      return;
    }
    state.syncStallSince ??= now;
    if (rec.standbyPromotable && now - state.syncStallSince >= s.timing.syncStallTimeoutMs && canTellArbiter)
      setPromotable('not-promotable-async', false);
    return;
  }

  if (obs.local.syncNamesActive) {
    const waitStalled = obs.local.syncWaitMs >= s.timing.syncStallTimeoutMs;
    if (streaming && r?.syncState === 'sync' && !waitStalled) {
      state.syncStallSince = null;
      if (rec.standbyPromotable || !canTellArbiter) {
        state.promotableAtLsn = null;
        return;
      }
      state.promotableAtLsn ??= obs.local.currentLsn;
      if (lsnAtLeast(r.flushLsn, state.promotableAtLsn)) {
        state.promotableAtLsn = null;
        setPromotable('promotable-after-catch-up', true);
      }
      return;
    }
    state.promotableAtLsn = null;
    // The stall began when the standby stopped streaming, or when the oldest waiting commit
    // began waiting, whichever is earlier.
    state.syncStallSince = Math.min(state.syncStallSince ?? now, now - obs.local.syncWaitMs);
    if (s.strictSync || now - state.syncStallSince < s.timing.syncStallTimeoutMs) return;
    if (!canTellArbiter) {
      actions.push({
        kind: 'note',
        rule: 'sync-keep',
        level: 'warn',
        msg: 'standby not acknowledging; keeping sync: arbiter unreachable',
      });
      return;
    }
    // The arbiter first; only with its consent is sync dropped (agentOnReply, reply-sync-dropped).
    setPromotable('sync-degrade', false, 'degradeSync');
    return;
  }

  // Sync is off (degraded, or fresh after a promotion/initdb): the standby may lack writes.
  state.syncStallSince = null;
  state.promotableAtLsn = null;
  if (rec.standbyPromotable && canTellArbiter) {
    setPromotable('not-promotable-sync-off', false);
    return;
  }
  if (streamingAndAlive && r?.caughtUp && canTellArbiter)
    actions.push({ kind: 'setSync', rule: 'sync-restore', on: true });
}

function decideStandby(state: AgentState, obs: AgentObservation, s: AgentSettings): Decision {
  const now = obs.now;
  const rec = state.record;
  const actions: AgentAction[] = [];
  const done: Done = (phase, rule) => ({ state, actions, phase, rule });
  state.syncStallSince = null;
  state.promotableAtLsn = null;
  state.confirmedAt = null;

  const rejoinOr = (rule: RuleId, fenceReason: string, rejoinReason: string, needed: boolean): Decision => {
    if (!obs.fenced) actions.push({ kind: 'fence', rule, reason: fenceReason });
    if (s.autoRejoin || !needed) {
      actions.push({ kind: 'rejoin', rule, primary: rec.primary, reason: rejoinReason });
      return done('rejoining', rule);
    }
    actions.push({
      kind: 'note',
      rule: 'needs-manual-rejoin',
      level: 'warn',
      msg: 'replaced as primary; rejoin is manual: run `pgarbiter rejoin`',
    });
    return done('needs-rejoin', 'needs-manual-rejoin');
  };

  if (state.requests.rejoin)
    return rejoinOr('manual-rejoin', 'manual rejoin', 'requested by a person', false);

  // Our server runs as a primary but someone else holds the newer term: we were replaced.
  if (obs.local.up && obs.local.inRecovery === false)
    return rejoinOr(
      'step-down',
      `replaced by ${rec.primary} in term ${rec.term}`,
      `${rec.primary} is primary in term ${rec.term}`,
      true,
    );

  if (!obs.local.up) {
    if (!obs.local.standbySignal)
      return rejoinOr(
        'former-primary-dir',
        'former primary data directory',
        'data directory is a former primary',
        true,
      );
    if (rec.maintenance)
      return note(
        done('standby-down', 'maintenance-no-restart'),
        'warn',
        'PostgreSQL is down; maintenance mode: not restarting',
      );
    actions.push({
      kind: 'startPostgres',
      rule: 'start-standby',
      reason: 'standby PostgreSQL is not running',
    });
    return done('starting', 'start-standby');
  }

  if (obs.local.inRecovery === null) return done('standby-starting', 'wait-for-standby-startup');
  if (s.leaseMs !== undefined && obs.local.inRecovery === true)
    actions.push({ kind: 'lease', rule: 'no-lease-standby', until: null });
  if (obs.fenced)
    actions.push({ kind: 'unfence', rule: 'unfence-standby', reason: 'a standby is read-only' });

  if (!obs.local.receiving && obs.primaryPgOk) {
    state.notReceivingSince ??= now;
    if (now - state.notReceivingSince >= NOT_RECEIVING_REJOIN_MS && s.autoRejoin) {
      state.notReceivingSince = null;
      actions.push({
        kind: 'rejoin',
        rule: 'rejoin-not-receiving',
        primary: rec.primary,
        reason: 'not receiving WAL from a reachable primary',
      });
      return done('rejoining', 'rejoin-not-receiving');
    }
  } else state.notReceivingSince = null;

  const primaryLost = now - state.lastPrimaryPgOkAt >= s.timing.failoverTimeoutMs;
  if (!primaryLost) return done(obs.local.receiving ? 'standby' : 'standby-catching-up', 'follow');
  if (rec.maintenance)
    return note(
      done('standby-primary-lost', 'no-failover-maintenance'),
      'warn',
      'primary lost; maintenance mode: no failover',
    );
  if (!obs.arbiter)
    return note(
      done('standby-primary-lost', 'no-failover-no-arbiter'),
      'warn',
      'primary lost, arbiter unreachable: no failover',
    );
  if (!rec.standbyPromotable)
    return note(
      done('standby-primary-lost', 'no-failover-not-promotable'),
      'warn',
      'primary lost, but this standby is marked not promotable',
    );
  // From here until a refusal we do not vouch in this term: the grant may be in flight. The
  // daemon persists this before the request goes out.
  state.promotionAskedInTerm = rec.term;
  actions.push({
    kind: 'ask',
    rule: 'request-promotion',
    why: 'promote',
    request: { kind: 'promote', node: s.me, term: rec.term },
  });
  return done('requesting-promotion', 'request-promotion');
}

function note(d: Decision, level: 'info' | 'warn', msg: string): Decision {
  d.actions.push({ kind: 'note', rule: d.rule, level, msg });
  return d;
}

export interface ReplyOutcome {
  state: AgentState;
  actions: AgentAction[];
  /** One line for the log: what the reply meant. */
  log: { level: 'info' | 'warn'; rule: RuleId; msg: string };
}

/** What the arbiter's reply to `ask` means. `reply` null: it did not answer (nothing is known).
 *  `now`: when the request went out (a confirmation or a grant counts from then: the safe side). */
export function agentOnReply(
  prev: AgentState,
  ask: Extract<AgentAction, { kind: 'ask' }>,
  reply: ArbiterReply | null,
  now: number,
  s: AgentSettings,
): ReplyOutcome {
  const state: AgentState = { ...prev };
  const actions: AgentAction[] = [];
  const out = (level: 'info' | 'warn', rule: RuleId, msg: string): ReplyOutcome => ({
    state,
    actions,
    log: { level, rule, msg },
  });
  if (!reply) {
    // A promotion request stays outstanding (promotionAskedInTerm): it may have been granted.
    return out('warn', 'reply-lost', `${ask.request.kind}: arbiter did not answer`);
  }
  if (reply.record) adoptRecord(state, reply.record, s.me, now, true);
  const req = ask.request;
  switch (ask.why) {
    case 'promote':
      if (reply.ok && state.record.primary === s.me) {
        actions.push(...holdLease(state, s), {
          kind: 'promote',
          rule: 'reply-granted',
          term: state.record.term,
        });
        return out('warn', 'reply-granted', `PROMOTION GRANTED: ${reply.reason}`);
      }
      if (req.kind === 'promote' && state.promotionAskedInTerm === req.term)
        state.promotionAskedInTerm = null;
      return out('info', 'reply-refused', `promotion refused: ${reply.reason}`);
    case 'unfence':
      if (reply.ok && state.record.primary === s.me) {
        state.confirmedAt = now;
        // The arbiter now refuses every handover we sent before this request.
        if (req.kind === 'confirmPrimary' && req.voidHandoversUpTo >= state.handoverSeq)
          state.handoverUnsettledTerm = null;
        actions.push(...holdLease(state, s), {
          kind: 'unfence',
          rule: 'reply-confirmed',
          reason: `arbiter confirmed primary of term ${state.record.term}`,
        });
        return out('warn', 'reply-confirmed', `arbiter confirmed primary of term ${state.record.term}`);
      }
      return out(
        'warn',
        'reply-refused',
        `staying fenced: arbiter did not confirm our term: ${reply.reason}`,
      );
    case 'degradeSync':
      if (reply.ok) {
        actions.push({ kind: 'setSync', rule: 'reply-sync-dropped', on: false });
        return out(
          'warn',
          'reply-sync-dropped',
          `SYNC DROPPED: ${state.record.standby} stopped acknowledging; arbiter marked it not promotable first`,
        );
      }
      return out(
        'warn',
        'reply-refused',
        `keeping synchronous replication: arbiter refused: ${reply.reason}`,
      );
    case 'setPromotable': {
      const promotable = req.kind === 'setPromotable' && req.promotable;
      if (promotable && s.syncReplication)
        return out(
          'warn',
          reply.ok ? 'promotable-after-catch-up' : 'reply-refused',
          reply.ok
            ? `SYNC RESTORED: ${state.record.standby} is a synchronous standby again, holds every acknowledged commit, and is promotable`
            : `standby still not promotable: ${reply.reason}`,
        );
      return out(
        'info',
        reply.ok ? ask.rule : 'reply-refused',
        `standby ${promotable ? 'promotable' : 'not promotable'}: ${reply.reason}`,
      );
    }
    case 'adopt':
      return out('warn', 'push-term-to-arbiter', `arbiter behind: ${reply.reason}`);
  }
}

/** What /health vouches for: as the standby, when we last reached the primary's PostgreSQL in the
 *  current term. Nothing once we asked for promotion in this term (a grant may be in flight). */
export function vouchOf(state: AgentState, s: AgentSettings, now: number): Vouch | null {
  const rec = state.record;
  if (rec.standby !== s.me || state.promotionAskedInTerm === rec.term) return null;
  const seen = state.primarySeen;
  if (!seen || seen.node !== rec.primary || seen.term !== rec.term) return null;
  return { primary: rec.primary, term: rec.term, seenMsAgo: Math.max(0, now - seen.at) };
}

type PersonRequest = keyof AgentState['requests'];

/** A person's request, kept for the next round: a switchover goes to the primary, a rejoin to the
 *  standby. `refused`: why not (null: accepted). */
function personRequest(
  state: AgentState,
  s: AgentSettings,
  kind: PersonRequest,
): { state: AgentState; refused: string | null } {
  const isPrimary = state.record.primary === s.me;
  if (kind === 'switchover' && !isPrimary) return { state, refused: `${s.me} is not the primary` };
  if (kind === 'rejoin' && isPrimary) return { state, refused: `${s.me} is the primary of record` };
  return { state: { ...state, requests: { ...state.requests, [kind]: true } }, refused: null };
}

export const requestSwitchover = (state: AgentState, s: AgentSettings) =>
  personRequest(state, s, 'switchover');
export const requestRejoin = (state: AgentState, s: AgentSettings) => personRequest(state, s, 'rejoin');

/** A person's last resort when the arbiter is gone (`pgarbiter failover --force`): this standby
 *  takes the next term itself; the arbiter adopts it when it is back (push-term-to-arbiter), and
 *  the old primary steps down when it hears of it from either. */
export function forcePromotion(
  prev: AgentState,
  s: AgentSettings,
  serverIsStandby: boolean,
  now: number,
): { state: AgentState; record: ClusterRecord } | { error: string } {
  if (prev.record.primary === s.me) return { error: `${s.me} is already the primary` };
  if (!serverIsStandby) return { error: `${s.me} is not a running standby` };
  const record = nextTermRecord(prev.record, s.me);
  // A person's order stands in for the arbiter's confirmation.
  return { state: { ...prev, record, confirmedAt: now, promotionAskedInTerm: null }, record };
}
