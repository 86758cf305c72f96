// The database node's decisions: decideAgent(state, observation, settings) -> actions.
// Pure: no I/O, no clock (time comes in the observation). Each rule below is one row of the
// table in README "How decisions are made"; the unit tests drive every row with a simulated clock.

import { lsnAtLeast } from './lsn.js';
import type {
  AgentAction,
  AgentObservation,
  AgentSettings,
  AgentState,
  ClusterRecord,
  Decision,
} from './types.js';

export function initialAgentState(record: ClusterRecord, now: number): AgentState {
  // Everything counts as seen at start: nobody is declared lost before a full timeout.
  return {
    record,
    lastArbiterOkAt: now,
    lastPeerOkAt: now,
    lastPrimaryPgOkAt: now,
    lastVouchedAt: now,
    lastRoundAt: now,
    syncStallSince: null,
    promotableAtLsn: null,
    notReceivingSince: null,
  };
}

/**
 * The state of an agent process that has just started. Unlike initialAgentState, the peers count
 * as unseen: a primary whose agent restarts while it is cut off fences on its first round instead
 * of serving for another fence_timeout (the arbiter may have been counting its loss all along).
 * A primary that reaches either peer is not affected; the standby's failover clock still starts
 * now, so a restart never triggers a promotion request by itself.
 */
export function startingAgentState(record: ClusterRecord, now: number, fenceTimeoutMs: number): AgentState {
  return {
    ...initialAgentState(record, now),
    lastArbiterOkAt: now - fenceTimeoutMs,
    lastPeerOkAt: now - fenceTimeoutMs,
    lastVouchedAt: now - fenceTimeoutMs,
  };
}

/** A standby that is up but not receiving WAL from a reachable primary for this long rejoins. */
export const NOT_RECEIVING_REJOIN_MS = 20_000;

export function decideAgent(prev: AgentState, obs: AgentObservation, s: AgentSettings): Decision {
  const now = obs.now;
  const t = s.timing;
  // A round late by more than fence_timeout means this process was paused (SIGSTOP, GC): what
  // it remembers is stale, so only this round's observations count.
  const paused = now - prev.lastRoundAt > t.fenceTimeoutMs;
  const state: AgentState = { ...prev, lastRoundAt: now };
  if (paused) {
    const stale = now - t.failoverTimeoutMs;
    state.lastArbiterOkAt = Math.min(state.lastArbiterOkAt, stale);
    state.lastPeerOkAt = Math.min(state.lastPeerOkAt, stale);
    state.lastVouchedAt = Math.min(state.lastVouchedAt, stale);
  }
  if (obs.arbiter) {
    state.lastArbiterOkAt = now;
    // The arbiter's record is authoritative; a lower term can only come from a lost record file.
    if (obs.arbiter.term >= state.record.term) state.record = obs.arbiter;
  }
  if (obs.peerAgentOk) state.lastPeerOkAt = now;
  if (obs.vouchedAt !== null) state.lastVouchedAt = Math.max(state.lastVouchedAt, obs.vouchedAt);
  // Just named primary (a grant, a handover): the arbiter's record is our confirmation.
  if (state.record.primary === s.me && prev.record.primary !== s.me) state.lastVouchedAt = now;
  if (obs.primaryPgOk) state.lastPrimaryPgOkAt = now;

  return state.record.primary === s.me ? decidePrimary(state, obs, s, paused) : decideStandby(state, obs, s);
}

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
  const done = (phase: string): Decision => ({ state, actions, phase });
  const standby = rec.standby;

  // The record names us primary but the server is still a standby: a grant or handover to us.
  if (obs.local.up && obs.local.inRecovery === true) {
    state.syncStallSince = null;
    state.promotableAtLsn = null;
    actions.push({ kind: 'promote', term: rec.term });
    return done('promoting');
  }

  const lostArbiter = now - state.lastArbiterOkAt >= t.fenceTimeoutMs;
  const lostPeer = now - state.lastPeerOkAt >= t.fenceTimeoutMs;
  // Isolated from both peers (or just woke from a pause without the arbiter's word): the
  // standby may be promoted soon, so stop accepting clients now. Maintenance mode does not
  // exempt us: cut off, we cannot see a person end it, and the arbiter would then grant after
  // failover_timeout while we still served. The fence lifts by itself once the arbiter confirms.
  if ((lostArbiter && lostPeer) || (paused && !obs.arbiter)) {
    if (!obs.fenced)
      actions.push({
        kind: 'fence',
        reason: paused
          ? 'agent loop was paused and the arbiter did not answer'
          : `lost ${standby} and the arbiter`,
      });
    return done('fenced-isolated');
  }

  if (!obs.local.up) {
    if (rec.maintenance)
      return note(done('primary-down'), 'warn', 'PostgreSQL is down; maintenance mode: not restarting');
    // Restart fenced: clients come back only once the arbiter confirms our term (unfence below).
    if (!obs.fenced) actions.push({ kind: 'fence', reason: 'PostgreSQL is down; restarting it fenced' });
    actions.push({ kind: 'startPostgres', reason: 'primary PostgreSQL is not running' });
    return done('restarting');
  }

  // Running but not answering yet (starting up, crash recovery): nothing to decide from.
  if (obs.local.inRecovery === null) return done('primary-starting');

  if (obs.fenced) {
    // Only the arbiter can confirm that nobody was promoted meanwhile (a standby's own word could
    // be overtaken by a grant in flight).
    if (obs.arbiter && obs.arbiter.primary === s.me) actions.push({ kind: 'unfenceAsPrimary' });
    else if (!obs.arbiter)
      return note(done('fenced'), 'info', 'fenced: waiting for the arbiter to confirm our term');
    return done('fenced');
  }

  // We reach a peer, but no peer reaches our PostgreSQL: to them we are lost, and they will fail
  // over after failover_timeout. Fence now; the arbiter's confirmation (above) lifts it.
  if (now - state.lastVouchedAt >= t.fenceTimeoutMs) {
    actions.push({
      kind: 'fence',
      reason: `neither ${standby} nor the arbiter has reached our PostgreSQL for ${now - state.lastVouchedAt} ms`,
    });
    return done('fenced-unreached');
  }

  if (obs.switchoverRequested) {
    const r = obs.local.peerReplication;
    if (
      r?.state === 'streaming' &&
      (!s.syncReplication || r.syncState === 'sync' || r.caughtUp) &&
      rec.standbyPromotable
    )
      actions.push({ kind: 'handover', to: standby, term: rec.term });
    else
      actions.push({
        kind: 'note',
        level: 'warn',
        msg: `switchover refused: ${standby} is not a healthy, caught-up, promotable standby`,
      });
  }

  decideReplication(state, obs, s, actions);
  return done('primary');
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

  // The walsender of a standby that vanished without a reset (frozen, link cut) still says
  // "streaming" until wal_sender_timeout: where that alone would decide, its agent must answer too.
  const streamingAndAlive = streaming && obs.peerAgentOk;

  if (!s.syncReplication) {
    // Async modes: the standby is promotable while it streams (losing the lag is accepted).
    if (streamingAndAlive) {
      state.syncStallSince = null;
      if (!rec.standbyPromotable && canTellArbiter)
        actions.push({ kind: 'setPromotable', term: rec.term, promotable: true });
      return;
    }
    state.syncStallSince ??= now;
    if (rec.standbyPromotable && now - state.syncStallSince >= s.timing.syncStallTimeoutMs && canTellArbiter)
      actions.push({ kind: 'setPromotable', term: rec.term, promotable: false });
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
      // Sync is on again: commits from now on reach the standby, but those acknowledged while
      // sync was off may not have yet. Promotable once it has flushed past the end of WAL seen now.
      state.promotableAtLsn ??= obs.local.currentLsn;
      if (lsnAtLeast(r.flushLsn, state.promotableAtLsn)) {
        state.promotableAtLsn = null;
        actions.push({ kind: 'setPromotable', term: rec.term, promotable: true });
      }
      return;
    }
    state.promotableAtLsn = null;
    // The stall began when the standby stopped streaming, or when the oldest waiting commit
    // began waiting, whichever is earlier.
    state.syncStallSince = Math.min(state.syncStallSince ?? now, now - obs.local.syncWaitMs);
    if (s.strictSync || now - state.syncStallSince < s.timing.syncStallTimeoutMs) return;
    if (!canTellArbiter) {
      // Never drop sync without the arbiter knowing the standby is no longer promotable.
      actions.push({
        kind: 'note',
        level: 'warn',
        msg: 'standby not acknowledging; keeping sync: arbiter unreachable',
      });
      return;
    }
    actions.push({ kind: 'degradeSync', term: rec.term });
    return;
  }

  // Sync is off (degraded, or fresh after a promotion/initdb): the standby may lack writes.
  state.syncStallSince = null;
  state.promotableAtLsn = null;
  if (rec.standbyPromotable && canTellArbiter) {
    actions.push({ kind: 'setPromotable', term: rec.term, promotable: false });
    return;
  }
  if (streamingAndAlive && r?.caughtUp && canTellArbiter)
    actions.push({ kind: 'restoreSync', term: rec.term });
}

function decideStandby(state: AgentState, obs: AgentObservation, s: AgentSettings): Decision {
  const now = obs.now;
  const rec = state.record;
  const actions: AgentAction[] = [];
  const done = (phase: string): Decision => ({ state, actions, phase });
  state.syncStallSince = null;
  state.promotableAtLsn = null;

  // Our server runs as a primary but someone else holds the newer term: we were replaced.
  if (obs.local.up && obs.local.inRecovery === false) {
    if (!obs.fenced)
      actions.push({ kind: 'fence', reason: `replaced by ${rec.primary} in term ${rec.term}` });
    if (s.autoRejoin)
      actions.push({
        kind: 'rejoin',
        primary: rec.primary,
        reason: `${rec.primary} is primary in term ${rec.term}`,
      });
    else
      actions.push({
        kind: 'note',
        level: 'warn',
        msg: 'replaced as primary; rejoin is manual: run `pgarbiter rejoin`',
      });
    return done(s.autoRejoin ? 'rejoining' : 'needs-rejoin');
  }

  if (!obs.local.up) {
    if (!obs.local.standbySignal) {
      // A stopped former primary: starting it as it is would make a second primary.
      if (!obs.fenced) actions.push({ kind: 'fence', reason: 'former primary data directory' });
      if (s.autoRejoin)
        actions.push({ kind: 'rejoin', primary: rec.primary, reason: 'data directory is a former primary' });
      return done(s.autoRejoin ? 'rejoining' : 'needs-rejoin');
    }
    if (rec.maintenance)
      return note(done('standby-down'), 'warn', 'PostgreSQL is down; maintenance mode: not restarting');
    actions.push({ kind: 'startPostgres', reason: 'standby PostgreSQL is not running' });
    return done('starting');
  }

  if (obs.local.inRecovery === null) return done('standby-starting');
  if (obs.fenced) actions.push({ kind: 'unfenceAsStandby' });

  // Up, in recovery, primary reachable, yet not receiving: a forked timeline or a broken slot.
  if (!obs.local.receiving && obs.primaryPgOk) {
    state.notReceivingSince ??= now;
    if (now - state.notReceivingSince >= NOT_RECEIVING_REJOIN_MS && s.autoRejoin) {
      state.notReceivingSince = null;
      actions.push({
        kind: 'rejoin',
        primary: rec.primary,
        reason: 'not receiving WAL from a reachable primary',
      });
      return done('rejoining');
    }
  } else state.notReceivingSince = null;

  const primaryLost = now - state.lastPrimaryPgOkAt >= s.timing.failoverTimeoutMs;
  if (!primaryLost) return done(obs.local.receiving ? 'standby' : 'standby-catching-up');
  if (rec.maintenance)
    return note(done('standby-primary-lost'), 'warn', 'primary lost; maintenance mode: no failover');
  if (!obs.arbiter)
    return note(done('standby-primary-lost'), 'warn', 'primary lost, arbiter unreachable: no failover');
  if (!rec.standbyPromotable)
    return note(
      done('standby-primary-lost'),
      'warn',
      'primary lost, but this standby is marked not promotable',
    );
  actions.push({ kind: 'requestPromotion', term: rec.term });
  return done('requesting-promotion');
}

function note(d: Decision, level: 'info' | 'warn', msg: string): Decision {
  d.actions.push({ kind: 'note', level, msg });
  return d;
}
