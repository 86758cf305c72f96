// decideAgent, rule by rule, for the primary and the standby, with a simulated clock: every
// timeout is driven to its edge (one millisecond before: nothing; exactly at it: the action).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { TIMING_PROFILES } from '../../src/config.js';
import {
  agentOnReply,
  decideAgent,
  forcePromotion,
  handoverSending,
  handoverSettled,
  initialAgentState,
  NOT_RECEIVING_REJOIN_MS,
  persistedOf,
  requestRejoin,
  requestSwitchover,
  startingAgentState,
  vouchOf,
} from '../../src/core/agent.js';
import { lsnAtLeast, parseLsn } from '../../src/core/lsn.js';
import { RULES } from '../../src/core/rules.js';
import type {
  AgentAction,
  AgentObservation,
  AgentSettings,
  AgentState,
  ArbiterView,
  ClusterRecord,
  CoreTiming,
  Decision,
  PeerHealth,
} from '../../src/core/types.js';

type Profile = keyof typeof TIMING_PROFILES;
const PROFILES: Profile[] = ['default', 'fast'];

function timingOf(p: Profile): CoreTiming {
  const t = TIMING_PROFILES[p];
  return {
    probeIntervalMs: t.probe_interval,
    fenceTimeoutMs: t.fence_timeout,
    failoverTimeoutMs: t.failover_timeout,
    syncStallTimeoutMs: t.sync_stall_timeout,
  };
}

const T = timingOf('default');

function rec(over: Partial<ClusterRecord> = {}): ClusterRecord {
  return { term: 1, primary: 'pg1', standby: 'pg2', standbyPromotable: true, maintenance: false, ...over };
}

function settings(me: string, over: Partial<AgentSettings> = {}): AgentSettings {
  return { me, timing: T, syncReplication: true, strictSync: false, autoRejoin: true, ...over };
}

/** A state whose every "last seen" is `seen`, and whose previous round ran at `lastRound`. */
function state(over: Partial<AgentState> = {}, seen = 0, lastRound = seen): AgentState {
  return { ...initialAgentState(rec(), seen), lastRoundAt: lastRound, ...over };
}

type Local = AgentObservation['local'];
/** Overrides of a round's observation. `arbiter`: the arbiter's record (null: no answer);
 *  `vouchedAt`: when a peer last reached our PostgreSQL (the arbiter's vouch when it answers, else
 *  the standby's, in `vouchTerm`); `peerAgentOk`: the peer agent answered (holding `peerRecord`). */
interface ObsOver {
  now?: number;
  startedAt?: number;
  fenced?: boolean;
  arbiter?: ClusterRecord | null;
  arbiterView?: ArbiterView | null;
  peerAgentOk?: boolean;
  peerRecord?: ClusterRecord;
  peer?: PeerHealth | null;
  vouchedAt?: number | null;
  vouchTerm?: number;
  primaryPgOk?: boolean;
  local?: Partial<Local>;
}

const SYNC_STREAMING = { state: 'streaming', syncState: 'sync', caughtUp: true, flushLsn: '0/1000' };

function observation(
  me: string,
  now: number,
  local: Local,
  defaultVouch: number | null,
  primaryPgOk: boolean,
  over: ObsOver,
): AgentObservation {
  const record = over.arbiter === undefined ? rec() : over.arbiter;
  const vouchedAt = over.vouchedAt === undefined ? defaultVouch : over.vouchedAt;
  const peerName = me === 'pg1' ? 'pg2' : 'pg1';
  const arbiter =
    over.arbiterView !== undefined
      ? over.arbiterView
      : record && { record, primaryVouchedMsAgo: vouchedAt === null ? null : now - vouchedAt };
  const peer =
    over.peer !== undefined
      ? over.peer
      : (over.peerAgentOk ?? true)
        ? {
            node: peerName,
            record: over.peerRecord ?? rec(),
            vouch:
              !arbiter && vouchedAt !== null
                ? { primary: me, term: over.vouchTerm ?? 1, seenMsAgo: now - vouchedAt }
                : null,
          }
        : null;
  return {
    now: over.now ?? now,
    startedAt: over.startedAt ?? over.now ?? now,
    fenced: over.fenced ?? false,
    arbiter,
    peer,
    primaryPgOk: over.primaryPgOk ?? primaryPgOk,
    local,
  };
}

/** A healthy primary's round: everything reachable, the standby streams synchronously. */
function pObs(now: number, over: ObsOver = {}): AgentObservation {
  const local: Local = {
    up: true,
    inRecovery: false,
    peerReplication: SYNC_STREAMING,
    syncNamesActive: true,
    syncWaitMs: 0,
    currentLsn: '0/1000',
    receiving: false,
    standbySignal: false,
    ...over.local,
  };
  return observation('pg1', now, local, now, false, over);
}

/** A healthy standby's round: it streams from a reachable primary. */
function sObs(now: number, over: ObsOver = {}): AgentObservation {
  const local: Local = {
    up: true,
    inRecovery: true,
    peerReplication: null,
    syncNamesActive: false,
    syncWaitMs: 0,
    currentLsn: null,
    receiving: true,
    standbySignal: true,
    ...over.local,
  };
  return observation('pg2', now, local, null, true, over);
}

/** Actions in a compact notation for the assertions: the rule ids are checked separately. */
function acts(d: { actions: AgentAction[] }): Record<string, unknown>[] {
  // The log line of a learned term is checked where it matters ('a term is a fact anyone may carry').
  return d.actions
    .filter((a) => a.rule !== 'adopt-newer-term')
    .map((a) => {
      switch (a.kind) {
        case 'ask': {
          const r = a.request;
          if (a.why === 'unfence') return { kind: 'unfenceAsPrimary' };
          if (a.why === 'promote') return { kind: 'requestPromotion', term: (r as { term: number }).term };
          if (a.why === 'degradeSync') return { kind: 'degradeSync', term: (r as { term: number }).term };
          if (a.why === 'adopt')
            return { kind: 'pushAdopt', term: (r as { record: ClusterRecord }).record.term };
          if (r.kind === 'setPromotable')
            return { kind: 'setPromotable', term: r.term, promotable: r.promotable };
          return { kind: a.why };
        }
        case 'unfence':
          return {
            kind:
              a.rule === 'unfence-standby'
                ? 'unfenceAsStandby'
                : a.rule === 'unfence-vouched'
                  ? 'unfenceVouched'
                  : 'unfence',
          };
        case 'setSync':
          return { kind: a.on ? 'restoreSync' : 'dropSync' };
        default: {
          const { rule: _r, ...rest } = a;
          return rest;
        }
      }
    });
}

const P = settings('pg1');
const S = settings('pg2');

function kinds(d: Decision): string[] {
  return acts(d).map((a) => a.kind as string);
}

function noteText(d: Decision): string {
  return d.actions
    .filter((a): a is Extract<AgentAction, { kind: 'note' }> => a.kind === 'note')
    .map((a) => `${a.level}:${a.msg}`)
    .join(' | ');
}

/** The first round of a run every `interval` ms from 0 that is at or after `ms`. */
const firstRoundAtOrAfter = (ms: number, interval: number) => Math.ceil(ms / interval) * interval;

/** Runs rounds every probe interval from `from` to `to` (inclusive), feeding each decision's state
 *  into the next. Returns every decision with its time. */
function rounds(
  s: AgentSettings,
  start: AgentState,
  from: number,
  to: number,
  obsAt: (now: number) => AgentObservation,
): { now: number; d: Decision }[] {
  const out: { now: number; d: Decision }[] = [];
  let st = start;
  for (let now = from; now <= to; now += s.timing.probeIntervalMs) {
    const d = decideAgent(st, obsAt(now), s);
    out.push({ now, d });
    st = d.state;
  }
  return out;
}

describe('decideAgent: bookkeeping', () => {
  test('initialAgentState counts everything as seen at start', () => {
    const st = initialAgentState(rec({ term: 4 }), 1234);
    assert.deepEqual(st, {
      record: rec({ term: 4 }),
      lastArbiterOkAt: 1234,
      lastPeerOkAt: 1234,
      lastPrimaryPgOkAt: 1234,
      lastVouchedAt: 1234,
      confirmedAt: null,
      primarySeen: null,
      promotionAskedInTerm: null,
      requests: { switchover: false, rejoin: false },
      lastRoundAt: 1234,
      syncStallSince: null,
      promotableAtLsn: null,
      notReceivingSince: null,
      handoverSeq: 0,
      handoverUnsettledTerm: null,
    });
  });

  test('handover numbers: persisted, kept across a restart, above the clock, settled by an answer', () => {
    const st = initialAgentState(rec({ term: 3 }), 1000);
    const first = handoverSending(st, 5000);
    assert.equal(first.seq, 5000, 'the clock is the floor');
    assert.deepEqual([first.state.handoverSeq, first.state.handoverUnsettledTerm], [5000, 3]);
    assert.equal(handoverSending(first.state, 10).seq, 5001, 'then one more than the last');
    const saved = JSON.parse(JSON.stringify(persistedOf(first.state)));
    const restarted = startingAgentState(saved, 6000, P.timing);
    assert.deepEqual([restarted.handoverSeq, restarted.handoverUnsettledTerm], [5000, 3]);
    assert.equal(handoverSettled(restarted).handoverUnsettledTerm, null);
    // An old state file without them starts at 0 and settled.
    const old = startingAgentState({ record: rec(), promotionAskedInTerm: null }, 6000, P.timing);
    assert.deepEqual([old.handoverSeq, old.handoverUnsettledTerm], [0, null]);
  });

  test('a freshly started primary agent that reaches neither peer fences on its first round', () => {
    const start = startingAgentState({ record: rec(), promotionAskedInTerm: null }, 10_000, P.timing);
    const alone = decideAgent(
      start,
      pObs(10_000 + P.timing.probeIntervalMs, { arbiter: null, peerAgentOk: false }),
      P,
    );
    assert.deepEqual(kinds(alone), ['fence']);
    const withPeer = decideAgent(
      start,
      pObs(10_000 + P.timing.probeIntervalMs, { arbiter: null, peerAgentOk: true }),
      P,
    );
    assert.deepEqual(kinds(withPeer), []);
    const withArbiter = decideAgent(
      start,
      pObs(10_000 + P.timing.probeIntervalMs, { peerAgentOk: false }),
      P,
    );
    assert.deepEqual(kinds(withArbiter), []);
    // A starting standby does not ask for a promotion before failover_timeout of its own.
    const sStart = startingAgentState({ record: rec(), promotionAskedInTerm: null }, 10_000, S.timing);
    const s1 = decideAgent(sStart, sObs(10_000 + S.timing.probeIntervalMs, { primaryPgOk: false }), S);
    assert.ok(!kinds(s1).includes('requestPromotion'));
  });

  test('records the round time and what answered; does not mutate the previous state', () => {
    const prev = state({}, 0, 0);
    const frozen = structuredClone(prev);
    const d = decideAgent(prev, sObs(500), S);
    assert.deepEqual(prev, frozen);
    assert.equal(d.state.lastRoundAt, 500);
    assert.equal(d.state.lastArbiterOkAt, 500);
    assert.equal(d.state.lastPeerOkAt, 500);
    assert.equal(d.state.lastPrimaryPgOkAt, 500);
  });

  test('what did not answer keeps its old time', () => {
    const d = decideAgent(
      state({}, 100, 400),
      sObs(500, { arbiter: null, peerAgentOk: false, primaryPgOk: false }),
      S,
    );
    assert.equal(d.state.lastArbiterOkAt, 100);
    assert.equal(d.state.lastPeerOkAt, 100);
    assert.equal(d.state.lastPrimaryPgOkAt, 100);
    assert.equal(d.state.lastRoundAt, 500);
  });

  test('adopts a newer arbiter record, and an equal term (the arbiter is authoritative)', () => {
    const newer = rec({ term: 2, primary: 'pg2', standby: 'pg1', standbyPromotable: false });
    assert.deepEqual(decideAgent(state(), sObs(500, { arbiter: newer }), S).state.record, newer);
    const same = rec({ standbyPromotable: false, maintenance: true });
    assert.deepEqual(decideAgent(state(), sObs(500, { arbiter: same }), S).state.record, same);
  });

  test('ignores an older arbiter record (a lost record file), counts the arbiter as reached, tells it our term', () => {
    const mine = rec({ term: 5 });
    const older = rec({ term: 4, primary: 'pg2', standby: 'pg1' });
    const d = decideAgent(
      state({ record: mine }, 0, 0),
      pObs(500, { arbiter: older, vouchedAt: null, peerRecord: mine, vouchTerm: 5 }),
      P,
    );
    assert.deepEqual(d.state.record, mine);
    assert.equal(d.state.lastArbiterOkAt, 500);
    // Still primary of term 5: it did not turn itself into a standby because of the old record.
    assert.equal(d.phase, 'primary');
    assert.deepEqual(acts(d), [{ kind: 'pushAdopt', term: 5 }]);
    assert.equal(d.actions[0]?.rule, 'push-term-to-arbiter');
  });

  test('the role follows the record: a node named primary by a newer record acts as primary', () => {
    const handedOver = rec({ term: 2, primary: 'pg2', standby: 'pg1', standbyPromotable: false });
    const d = decideAgent(state(), sObs(500, { arbiter: handedOver, primaryPgOk: false }), S);
    assert.equal(d.phase, 'promoting');
    assert.deepEqual(acts(d), [{ kind: 'promote', term: 2 }]);
  });
});

describe('decideAgent: primary', () => {
  test('healthy synchronous primary: nothing to do', () => {
    const d = decideAgent(state(), pObs(500), P);
    assert.equal(d.phase, 'primary');
    assert.deepEqual(acts(d), []);
    assert.equal(d.state.syncStallSince, null);
  });

  test('record names us primary while the server is in recovery: promote with the record term', () => {
    const r = rec({ term: 3 });
    const d = decideAgent(
      state({ record: r, syncStallSince: 100 }),
      pObs(500, { arbiter: r, local: { inRecovery: true, peerReplication: null } }),
      P,
    );
    assert.equal(d.phase, 'promoting');
    assert.deepEqual(acts(d), [{ kind: 'promote', term: 3 }]);
    assert.equal(d.state.syncStallSince, null);
  });

  test('promote comes first, even when isolated (the record already names us)', () => {
    const d = decideAgent(
      state({}, 0, 9500),
      pObs(10_000, { arbiter: null, peerAgentOk: false, local: { inRecovery: true } }),
      P,
    );
    assert.deepEqual(kinds(d), ['promote']);
  });

  for (const profile of PROFILES) {
    const t = timingOf(profile);
    const s = settings('pg1', { timing: t });
    const isolated = (now: number) => pObs(now, { arbiter: null, peerAgentOk: false });

    test(`[${profile}] isolated: no fence at fence_timeout - 1 ms, fence at exactly fence_timeout`, () => {
      const before = decideAgent(state({}, 0, t.fenceTimeoutMs - 1 - 10), isolated(t.fenceTimeoutMs - 1), s);
      assert.equal(before.phase, 'primary');
      assert.deepEqual(kinds(before), []);
      const at = decideAgent(state({}, 0, t.fenceTimeoutMs - 10), isolated(t.fenceTimeoutMs), s);
      assert.equal(at.phase, 'fenced-isolated');
      assert.deepEqual(acts(at), [{ kind: 'fence', reason: 'lost pg2 and the arbiter' }]);
    });

    test(`[${profile}] isolated from t=0, rounds every probe_interval: fences at the first round >= fence_timeout`, () => {
      const rs = rounds(s, state({}, 0, 0), t.probeIntervalMs, 3 * t.fenceTimeoutMs, isolated);
      const firstFence = rs.find((r) => kinds(r.d).includes('fence'));
      assert.equal(firstFence?.now, firstRoundAtOrAfter(t.fenceTimeoutMs, t.probeIntervalMs));
      for (const r of rs) {
        if (r.now < t.fenceTimeoutMs) assert.equal(r.d.phase, 'primary', `at ${r.now}`);
        else assert.equal(r.d.phase, 'fenced-isolated', `at ${r.now}`);
      }
      // The timing rule: fenced (plus its action budget) strictly before a grant is possible.
      const tp = TIMING_PROFILES[profile];
      assert.ok(t.fenceTimeoutMs + tp.fence_action_budget < t.failoverTimeoutMs);
    });

    test(`[${profile}] the fence counts from the later of the two losses`, () => {
      // Arbiter lost at 0, peer still seen until 1000: fence at 1000 + fence_timeout.
      const st = state({ lastArbiterOkAt: 0, lastPeerOkAt: 1000, lastVouchedAt: 1000 }, 0, 0);
      const at = 1000 + t.fenceTimeoutMs;
      const before = decideAgent({ ...st, lastRoundAt: at - 1 - 10 }, isolated(at - 1), s);
      assert.deepEqual(kinds(before), []);
      const on = decideAgent({ ...st, lastRoundAt: at - 10 }, isolated(at), s);
      assert.deepEqual(kinds(on), ['fence']);
    });
  }

  test('losing only the arbiter, or only the standby, never fences', () => {
    const lostArbiter = decideAgent(state({}, 0, 9990), pObs(10_000, { arbiter: null }), P);
    assert.equal(lostArbiter.phase, 'primary');
    assert.ok(!kinds(lostArbiter).includes('fence'));
    const lostPeer = decideAgent(
      state({}, 0, 9990),
      pObs(10_000, { peerAgentOk: false, local: { peerReplication: null } }),
      P,
    );
    assert.equal(lostPeer.phase, 'primary');
    assert.ok(!kinds(lostPeer).includes('fence'));
  });

  test('isolated and already fenced: stays fenced without repeating the fence', () => {
    const d = decideAgent(
      state({}, 0, 9990),
      pObs(10_000, { arbiter: null, peerAgentOk: false, fenced: true }),
      P,
    );
    assert.equal(d.phase, 'fenced-isolated');
    assert.deepEqual(acts(d), []);
  });

  test('isolated in maintenance mode: fences all the same (it could not see maintenance end)', () => {
    const r = rec({ maintenance: true });
    const d = decideAgent(
      state({ record: r }, 0, 9990),
      pObs(10_000, { arbiter: null, peerAgentOk: false }),
      P,
    );
    assert.equal(d.phase, 'fenced-isolated');
    assert.deepEqual(acts(d), [{ kind: 'fence', reason: 'lost pg2 and the arbiter' }]);
  });

  describe('vouching: the peers must reach our PostgreSQL, not just our agent', () => {
    const F = T.fenceTimeoutMs;
    test('both peers answer but neither has reached our PostgreSQL for fence_timeout: fence', () => {
      const d = decideAgent(state({}, 0, F - 100), pObs(F, { vouchedAt: null }), P);
      assert.equal(d.phase, 'fenced-unreached');
      assert.deepEqual(kinds(d), ['fence']);
      assert.match(
        (acts(d)[0] as { reason: string }).reason,
        /neither pg2 nor the arbiter has reached our PostgreSQL/,
      );
    });

    test('an old vouch counts until fence_timeout, measured from when the peer reached us', () => {
      const d1 = decideAgent(state({}, 0, F - 100), pObs(F - 1, { vouchedAt: null }), P);
      assert.deepEqual(acts(d1), [], 'not yet');
      // A vouch from 400 ms before this round: good for fence_timeout from then.
      const d2 = decideAgent(state({}, 0, F - 100), pObs(F, { vouchedAt: F - 400 }), P);
      assert.deepEqual(acts(d2), []);
      assert.equal(d2.state.lastVouchedAt, F - 400);
      const d3 = decideAgent(d2.state, pObs(2 * F - 400, { vouchedAt: null }), P);
      assert.deepEqual(kinds(d3), ['fence']);
    });

    test('fenced for lack of a vouch: the arbiter confirming our term lifts it (as any fence)', () => {
      const d = decideAgent(state({}, 0, 3 * F - 100), pObs(3 * F, { fenced: true, vouchedAt: null }), P);
      assert.deepEqual(kinds(d), ['unfenceAsPrimary']);
    });

    test('just named primary by the record: that counts as a vouch', () => {
      const r = rec({ term: 2, primary: 'pg1', standby: 'pg2' });
      const st = state({ record: rec({ term: 1, primary: 'pg2', standby: 'pg1' }) }, 0, 10 * F - 100);
      const d = decideAgent(st, pObs(10 * F, { arbiter: r, vouchedAt: null }), P);
      assert.equal(d.state.lastVouchedAt, 10 * F);
      assert.ok(!kinds(d).includes('fence'));
    });
  });

  describe('a paused loop (SIGSTOP, GC): a round later than fence_timeout', () => {
    for (const profile of PROFILES) {
      const t = timingOf(profile);
      const s = settings('pg1', { timing: t });
      test(`[${profile}] late by fence_timeout + 1 without the arbiter: fences even though the standby answers`, () => {
        const now = 100_000;
        const d = decideAgent(state({}, now - t.fenceTimeoutMs - 1), pObs(now, { arbiter: null }), s);
        assert.equal(d.phase, 'fenced-isolated');
        assert.deepEqual(acts(d), [
          { kind: 'fence', reason: 'agent loop was paused and the arbiter did not answer' },
        ]);
        // What it remembered is stale: the arbiter counts as lost since failover_timeout ago.
        assert.equal(d.state.lastArbiterOkAt, now - t.failoverTimeoutMs);
        assert.equal(d.state.lastPeerOkAt, now);
      });

      test(`[${profile}] late by exactly fence_timeout is not a pause`, () => {
        const now = 100_000;
        const d = decideAgent(state({}, now - t.fenceTimeoutMs), pObs(now, { arbiter: null }), s);
        assert.equal(d.phase, 'primary');
        assert.deepEqual(acts(d), []);
        assert.equal(d.state.lastArbiterOkAt, now - t.fenceTimeoutMs);
      });

      test(`[${profile}] paused, but the arbiter answers with our term: carries on as primary`, () => {
        const now = 100_000;
        const d = decideAgent(state({}, now - t.fenceTimeoutMs - 1), pObs(now, { peerAgentOk: false }), s);
        assert.equal(d.phase, 'primary');
        assert.ok(!kinds(d).includes('fence'));
        assert.equal(d.state.lastArbiterOkAt, now);
        // The peer's last answer is pushed back: one more silent round of the arbiter would fence.
        assert.equal(d.state.lastPeerOkAt, now - t.failoverTimeoutMs);
      });
    }

    test('paused, and the arbiter names another primary in a newer term: fences and rejoins', () => {
      const newer = rec({ term: 2, primary: 'pg2', standby: 'pg1', standbyPromotable: false });
      const d = decideAgent(state({}, 0, 0), pObs(100_000, { arbiter: newer }), P);
      assert.equal(d.phase, 'rejoining');
      assert.deepEqual(acts(d), [
        { kind: 'fence', reason: 'replaced by pg2 in term 2' },
        { kind: 'rejoin', primary: 'pg2', reason: 'pg2 is primary in term 2' },
      ]);
    });

    test('paused in maintenance mode, no arbiter: fences all the same', () => {
      const r = rec({ maintenance: true });
      const d = decideAgent(state({ record: r }, 0, 0), pObs(100_000, { arbiter: null }), P);
      assert.equal(d.phase, 'fenced-isolated');
      assert.deepEqual(kinds(d), ['fence']);
    });

    test('a paused standby does not fence (only the primary guards against a pause)', () => {
      const d = decideAgent(state({}, 0, 0), sObs(100_000, { arbiter: null }), S);
      assert.equal(d.phase, 'standby');
      assert.deepEqual(acts(d), []);
    });
  });

  describe('PostgreSQL down on the primary', () => {
    test('fence first, then start it (clients come back only after the arbiter confirms)', () => {
      const d = decideAgent(state(), pObs(500, { local: { up: false, inRecovery: null } }), P);
      assert.equal(d.phase, 'restarting');
      assert.deepEqual(acts(d), [
        { kind: 'fence', reason: 'PostgreSQL is down; restarting it fenced' },
        { kind: 'startPostgres', reason: 'primary PostgreSQL is not running' },
      ]);
    });

    test('already fenced: only the start', () => {
      const d = decideAgent(state(), pObs(500, { fenced: true, local: { up: false, inRecovery: null } }), P);
      assert.deepEqual(kinds(d), ['startPostgres']);
    });

    test('also when the arbiter is unreachable (the peer answers): restart fenced', () => {
      const d = decideAgent(state(), pObs(500, { arbiter: null, local: { up: false, inRecovery: null } }), P);
      assert.deepEqual(kinds(d), ['fence', 'startPostgres']);
    });

    test('maintenance mode: not restarted, a warning', () => {
      const r = rec({ maintenance: true });
      const d = decideAgent(
        state({ record: r }),
        pObs(500, { arbiter: r, local: { up: false, inRecovery: null } }),
        P,
      );
      assert.equal(d.phase, 'primary-down');
      assert.deepEqual(kinds(d), ['note']);
      assert.match(noteText(d), /maintenance mode: not restarting/);
    });

    test('isolation wins over restart: down and isolated only fences', () => {
      const d = decideAgent(
        state({}, 0, 9990),
        pObs(10_000, { arbiter: null, peerAgentOk: false, local: { up: false, inRecovery: null } }),
        P,
      );
      assert.equal(d.phase, 'fenced-isolated');
      assert.deepEqual(kinds(d), ['fence']);
    });
  });

  describe('fenced primary, PostgreSQL up', () => {
    test('the arbiter names us primary: ask it to confirm our term, and unfence on its word', () => {
      const d = decideAgent(state(), pObs(500, { fenced: true }), P);
      assert.equal(d.phase, 'fenced');
      assert.deepEqual(acts(d), [{ kind: 'unfenceAsPrimary' }]);
    });

    test('the arbiter does not answer and the standby answers without vouching: stay fenced', () => {
      const d = decideAgent(state(), pObs(500, { fenced: true, arbiter: null, vouchedAt: null }), P);
      assert.equal(d.phase, 'fenced');
      assert.equal(d.rule, 'stay-fenced');
      assert.deepEqual(kinds(d), ['note']);
      assert.match(noteText(d), /^info:fenced: waiting for the arbiter/);
    });

    describe('unfence-vouched: the arbiter silent, the standby streams from us and vouches in our term', () => {
      const fencedNoArbiter = (over: ObsOver = {}) => pObs(5000, { fenced: true, arbiter: null, ...over });
      test('a fresh vouch and a streaming standby: unfence without the arbiter', () => {
        const d = decideAgent(state({}, 4500, 4500), fencedNoArbiter({ vouchedAt: 4800 }), P);
        assert.deepEqual(acts(d), [{ kind: 'unfenceVouched' }]);
        assert.equal(d.rule, 'unfence-vouched');
        assert.equal(d.phase, 'primary');
      });
      test('the vouch exactly fence_timeout old: stay fenced; 1 ms younger: unfence', () => {
        const old = decideAgent(
          state({}, 0, 4500),
          fencedNoArbiter({ vouchedAt: 5000 - T.fenceTimeoutMs }),
          P,
        );
        assert.equal(old.rule, 'stay-fenced');
        const young = decideAgent(
          state({}, 0, 4500),
          fencedNoArbiter({ vouchedAt: 5001 - T.fenceTimeoutMs }),
          P,
        );
        assert.equal(young.rule, 'unfence-vouched');
      });
      test('a vouch for an older term does not count', () => {
        const mine = rec({ term: 3 });
        const d = decideAgent(
          state({ record: mine }, 4500, 4500),
          fencedNoArbiter({ vouchedAt: 4900, vouchTerm: 2, peerRecord: mine }),
          P,
        );
        assert.equal(d.rule, 'stay-fenced');
      });
      test('a vouch while the standby is not streaming from us does not count', () => {
        const d = decideAgent(
          state({}, 4500, 4500),
          fencedNoArbiter({ vouchedAt: 4900, local: { peerReplication: null } }),
          P,
        );
        assert.equal(d.rule, 'stay-fenced');
      });
      test('with the arbiter answering, only its confirmation unfences', () => {
        const d = decideAgent(state({}, 4500, 4500), pObs(5000, { fenced: true }), P);
        assert.deepEqual(acts(d), [{ kind: 'unfenceAsPrimary' }]);
        assert.equal(d.rule, 'unfence-confirmed');
      });
    });

    test('an older arbiter record naming someone else: stay fenced, no unfence', () => {
      const mine = rec({ term: 3 });
      const d = decideAgent(
        state({ record: mine }),
        pObs(500, { fenced: true, arbiter: rec({ term: 2, primary: 'pg2', standby: 'pg1' }) }),
        P,
      );
      assert.equal(d.phase, 'fenced');
      // The arbiter is behind: it is told our term (a failover forced while it was down).
      assert.deepEqual(acts(d), [{ kind: 'pushAdopt', term: 3 }]);
    });

    test('fenced: no replication decision and no switchover while fenced', () => {
      const d = decideAgent(
        state({ record: rec({ standbyPromotable: false }), requests: { switchover: true, rejoin: false } }),
        pObs(500, {
          fenced: true,
          arbiter: rec({ standbyPromotable: false }),
        }),
        P,
      );
      assert.deepEqual(kinds(d), ['unfenceAsPrimary']);
    });
  });

  describe('switchover request', () => {
    const cases: {
      name: string;
      repl: Local['peerReplication'];
      promotable: boolean;
      sync: boolean;
      ok: boolean;
    }[] = [
      { name: 'sync standby, promotable', repl: SYNC_STREAMING, promotable: true, sync: true, ok: true },
      {
        name: 'streaming async but caught up (sync mode)',
        repl: { state: 'streaming', syncState: 'async', caughtUp: true, flushLsn: '0/1000' },
        promotable: true,
        sync: true,
        ok: true,
      },
      {
        name: 'async mode, streaming with lag',
        repl: { state: 'streaming', syncState: 'async', caughtUp: false, flushLsn: '0/800' },
        promotable: true,
        sync: false,
        ok: true,
      },
      {
        name: 'sync mode, streaming async with lag',
        repl: { state: 'streaming', syncState: 'potential', caughtUp: false, flushLsn: '0/800' },
        promotable: true,
        sync: true,
        ok: false,
      },
      { name: 'standby not connected', repl: null, promotable: true, sync: true, ok: false },
      {
        name: 'standby catching up (not streaming)',
        repl: { state: 'catchup', syncState: 'async', caughtUp: false, flushLsn: '0/800' },
        promotable: true,
        sync: true,
        ok: false,
      },
      { name: 'standby not promotable', repl: SYNC_STREAMING, promotable: false, sync: true, ok: false },
    ];
    for (const c of cases) {
      test(`${c.name}: ${c.ok ? 'hand over' : 'refused with a warning'}`, () => {
        const r = rec({ term: 7, standbyPromotable: c.promotable });
        const d = decideAgent(
          state({ record: r, requests: { switchover: true, rejoin: false } }),
          pObs(500, { arbiter: r, local: { peerReplication: c.repl } }),
          settings('pg1', { syncReplication: c.sync }),
        );
        assert.equal(d.phase, 'primary');
        if (c.ok) assert.deepEqual(acts(d)[0], { kind: 'handover', to: 'pg2', term: 7 });
        else {
          assert.ok(!kinds(d).includes('handover'));
          assert.match(noteText(d), /^warn:switchover refused: pg2 is not a healthy/);
        }
      });
    }
  });

  describe('synchronous replication (fallback mode)', () => {
    const stalled = { peerReplication: null } as const;

    test('sync acknowledged and the record says not promotable: mark promotable', () => {
      const r = rec({ standbyPromotable: false, term: 2 });
      const d = decideAgent(state({ record: r, syncStallSince: 10 }), pObs(500, { arbiter: r }), P);
      assert.deepEqual(acts(d), [{ kind: 'setPromotable', term: 2, promotable: true }]);
      assert.equal(d.state.syncStallSince, null);
    });

    test('sync acknowledged, not promotable, arbiter unreachable: nothing', () => {
      const r = rec({ standbyPromotable: false });
      const d = decideAgent(state({ record: r }), pObs(500, { arbiter: null }), P);
      assert.deepEqual(acts(d), []);
    });

    for (const profile of PROFILES) {
      const t = timingOf(profile);
      const s = settings('pg1', { timing: t });
      test(`[${profile}] standby stops acknowledging: degrade at exactly sync_stall_timeout, not 1 ms before`, () => {
        const first = decideAgent(state({}, 0, 0), pObs(100, { local: stalled }), s);
        assert.equal(first.state.syncStallSince, 100);
        assert.deepEqual(acts(first), []);
        const edge = 100 + t.syncStallTimeoutMs;
        const before = decideAgent(
          { ...first.state, lastRoundAt: edge - 100 },
          pObs(edge - 1, { local: stalled }),
          s,
        );
        assert.deepEqual(acts(before), []);
        assert.equal(before.state.syncStallSince, 100);
        const at = decideAgent(
          { ...first.state, lastRoundAt: edge - 100 },
          pObs(edge, { local: stalled }),
          s,
        );
        assert.deepEqual(acts(at), [{ kind: 'degradeSync', term: 1 }]);
        assert.equal(at.phase, 'primary');
      });

      test(`[${profile}] rounds every probe_interval: the first degradeSync is at the first round >= sync_stall_timeout`, () => {
        const rs = rounds(s, state({}, 0, 0), t.probeIntervalMs, 3 * t.syncStallTimeoutMs, (now) =>
          pObs(now, { local: stalled }),
        );
        const first = rs.find((r) => kinds(r.d).includes('degradeSync'));
        // The stall is first seen at the round at probe_interval.
        assert.equal(
          first?.now,
          firstRoundAtOrAfter(t.probeIntervalMs + t.syncStallTimeoutMs, t.probeIntervalMs),
        );
      });
    }

    test('a standby that is connected but only "potential" also counts as a stall', () => {
      const d = decideAgent(
        state({ syncStallSince: 0 }, 0, T.syncStallTimeoutMs - 100),
        pObs(T.syncStallTimeoutMs, {
          local: {
            peerReplication: {
              state: 'streaming',
              syncState: 'potential',
              caughtUp: false,
              flushLsn: '0/800',
            },
          },
        }),
        P,
      );
      assert.deepEqual(kinds(d), ['degradeSync']);
    });

    test('commits waiting longer than the stall timeout degrade sync even while the walsender still says streaming', () => {
      // A frozen or silently cut standby: pg_stat_replication shows it streaming until
      // wal_sender_timeout, but the commits waiting for it show the stall.
      const d = decideAgent(
        state({}, 0, T.syncStallTimeoutMs - 100),
        pObs(T.syncStallTimeoutMs, { local: { syncWaitMs: T.syncStallTimeoutMs } }),
        P,
      );
      assert.deepEqual(kinds(d), ['degradeSync']);
      assert.equal(d.state.syncStallSince, 0, 'the stall began when the oldest commit began waiting');
    });

    test('commits waiting less than the stall timeout: keep sync, nothing to do', () => {
      const d = decideAgent(
        state({}, 0, T.syncStallTimeoutMs - 100),
        pObs(T.syncStallTimeoutMs, { local: { syncWaitMs: T.syncStallTimeoutMs - 1 } }),
        P,
      );
      assert.deepEqual(acts(d), []);
      assert.equal(d.state.syncStallSince, null);
    });

    test('a waiting commit older than the disconnect moves the stall start back', () => {
      const d = decideAgent(
        state({ syncStallSince: 1000 }, 0, 1400),
        pObs(1500, { local: { peerReplication: null, syncWaitMs: 1200 } }),
        P,
      );
      assert.equal(d.state.syncStallSince, 300);
    });

    test('sync back on: promotable only once the standby has flushed past the end of WAL seen then', () => {
      const r = rec({ standbyPromotable: false, term: 3 });
      const sync = (flushLsn: string, currentLsn: string) => ({
        peerReplication: { ...SYNC_STREAMING, flushLsn },
        currentLsn,
      });
      // First round with sync on: commits acknowledged without the standby end at 0/5000.
      const d1 = decideAgent(
        state({ record: r }),
        pObs(500, { arbiter: r, local: sync('0/4000', '0/5000') }),
        P,
      );
      assert.deepEqual(acts(d1), []);
      assert.equal(d1.state.promotableAtLsn, '0/5000');
      // New WAL since (0/6000) waits for the standby: the target stays where it was.
      const d2 = decideAgent(d1.state, pObs(1000, { arbiter: r, local: sync('0/4FFF', '0/6000') }), P);
      assert.deepEqual(acts(d2), []);
      assert.equal(d2.state.promotableAtLsn, '0/5000');
      const d3 = decideAgent(d2.state, pObs(1500, { arbiter: r, local: sync('0/5000', '0/6000') }), P);
      assert.deepEqual(acts(d3), [{ kind: 'setPromotable', term: 3, promotable: true }]);
      assert.equal(d3.state.promotableAtLsn, null);
    });

    test('sync back on, but the standby stalls again before catching up: the target is forgotten', () => {
      const r = rec({ standbyPromotable: false, term: 3 });
      const st = state({ record: r, promotableAtLsn: '0/5000' });
      const d = decideAgent(st, pObs(500, { arbiter: r, local: { peerReplication: null } }), P);
      assert.equal(d.state.promotableAtLsn, null);
      assert.ok(!acts(d).some((a) => a.kind === 'setPromotable' && a.promotable));
    });

    test('an unknown flush position never makes the standby promotable', () => {
      const r = rec({ standbyPromotable: false, term: 3 });
      const d = decideAgent(
        state({ record: r }),
        pObs(500, { arbiter: r, local: { peerReplication: { ...SYNC_STREAMING, flushLsn: null } } }),
        P,
      );
      assert.deepEqual(acts(d), []);
    });

    test('the stall timer resets when the standby acknowledges again', () => {
      const d = decideAgent(
        state({ syncStallSince: 0 }, 0, T.syncStallTimeoutMs - 100),
        pObs(T.syncStallTimeoutMs - 1),
        P,
      );
      assert.equal(d.state.syncStallSince, null);
      assert.deepEqual(acts(d), []);
    });

    test('arbiter unreachable at the deadline: keep sync, warn (never drop it silently)', () => {
      const d = decideAgent(
        state({ syncStallSince: 0 }, 0, T.syncStallTimeoutMs * 5 - 100),
        pObs(T.syncStallTimeoutMs * 5, { arbiter: null, local: stalled }),
        P,
      );
      assert.equal(d.phase, 'primary');
      assert.deepEqual(kinds(d), ['note']);
      assert.match(noteText(d), /keeping sync: arbiter unreachable/);
    });

    test('strict: never degrades, however long the stall', () => {
      const d = decideAgent(
        state({ syncStallSince: 0 }, 0, T.syncStallTimeoutMs * 100 - 100),
        pObs(T.syncStallTimeoutMs * 100, { local: stalled }),
        settings('pg1', { strictSync: true }),
      );
      assert.deepEqual(acts(d), []);
      assert.equal(d.state.syncStallSince, 0);
    });

    test('sync names off and the record says promotable: first mark it not promotable', () => {
      const d = decideAgent(
        state({ syncStallSince: 0 }),
        pObs(500, {
          local: { syncNamesActive: false, peerReplication: { ...SYNC_STREAMING, syncState: 'async' } },
        }),
        P,
      );
      assert.deepEqual(acts(d), [{ kind: 'setPromotable', term: 1, promotable: false }]);
      assert.equal(d.state.syncStallSince, null);
    });

    test('sync names off, not promotable, standby streaming and caught up: restore sync', () => {
      const r = rec({ standbyPromotable: false, term: 3 });
      const d = decideAgent(
        state({ record: r }),
        pObs(500, {
          arbiter: r,
          local: {
            syncNamesActive: false,
            peerReplication: { state: 'streaming', syncState: 'async', caughtUp: true, flushLsn: '0/1000' },
          },
        }),
        P,
      );
      assert.deepEqual(acts(d), [{ kind: 'restoreSync' }]);
    });

    test('sync names off, the walsender says streaming but the standby agent is silent: no restore (a frozen standby)', () => {
      const r = rec({ standbyPromotable: false, term: 3 });
      const d = decideAgent(
        state({ record: r }),
        pObs(500, {
          arbiter: r,
          peerAgentOk: false,
          local: { syncNamesActive: false, peerReplication: { ...SYNC_STREAMING, syncState: 'async' } },
        }),
        P,
      );
      assert.deepEqual(acts(d), []);
    });

    const notYet: { name: string; repl: Local['peerReplication']; arbiter: boolean }[] = [
      {
        name: 'streaming but lagging',
        repl: { state: 'streaming', syncState: 'async', caughtUp: false, flushLsn: '0/800' },
        arbiter: true,
      },
      {
        name: 'catching up',
        repl: { state: 'catchup', syncState: 'async', caughtUp: true, flushLsn: '0/1000' },
        arbiter: true,
      },
      { name: 'not connected', repl: null, arbiter: true },
      {
        name: 'caught up but the arbiter is unreachable',
        repl: { state: 'streaming', syncState: 'async', caughtUp: true, flushLsn: '0/1000' },
        arbiter: false,
      },
    ];
    for (const c of notYet) {
      test(`sync names off, not promotable, standby ${c.name}: no restore yet`, () => {
        const r = rec({ standbyPromotable: false });
        const d = decideAgent(
          state({ record: r }),
          pObs(500, {
            arbiter: c.arbiter ? r : null,
            local: { syncNamesActive: false, peerReplication: c.repl },
          }),
          P,
        );
        assert.deepEqual(acts(d), []);
      });
    }

    test('sync names off, promotable, arbiter unreachable: neither restore nor anything else', () => {
      const d = decideAgent(
        state(),
        pObs(500, {
          arbiter: null,
          local: {
            syncNamesActive: false,
            peerReplication: { state: 'streaming', syncState: 'async', caughtUp: true, flushLsn: '0/1000' },
          },
        }),
        P,
      );
      assert.deepEqual(acts(d), []);
    });
  });

  describe('asynchronous modes (syncReplication false)', () => {
    const A = settings('pg1', { syncReplication: false });
    const asyncStreaming = { state: 'streaming', syncState: 'async', caughtUp: false, flushLsn: '0/800' };

    test('streaming and marked not promotable: mark it promotable (lag is accepted)', () => {
      const r = rec({ standbyPromotable: false, term: 4 });
      const d = decideAgent(
        state({ record: r, syncStallSince: 0 }),
        pObs(500, { arbiter: r, local: { syncNamesActive: false, peerReplication: asyncStreaming } }),
        A,
      );
      assert.deepEqual(acts(d), [{ kind: 'setPromotable', term: 4, promotable: true }]);
      assert.equal(d.state.syncStallSince, null);
    });

    test('streaming and promotable: nothing', () => {
      const d = decideAgent(
        state(),
        pObs(500, { local: { syncNamesActive: false, peerReplication: asyncStreaming } }),
        A,
      );
      assert.deepEqual(acts(d), []);
    });

    test('streaming, not promotable, arbiter unreachable: nothing', () => {
      const r = rec({ standbyPromotable: false });
      const d = decideAgent(
        state({ record: r }),
        pObs(500, { arbiter: null, local: { syncNamesActive: false, peerReplication: asyncStreaming } }),
        A,
      );
      assert.deepEqual(acts(d), []);
    });

    for (const profile of PROFILES) {
      const t = timingOf(profile);
      const s = settings('pg1', { syncReplication: false, timing: t });
      test(`[${profile}] not streaming: marked not promotable at exactly sync_stall_timeout`, () => {
        const o = (now: number) => pObs(now, { local: { syncNamesActive: false, peerReplication: null } });
        const first = decideAgent(state({}, 0, 0), o(200), s);
        assert.equal(first.state.syncStallSince, 200);
        assert.deepEqual(acts(first), []);
        const edge = 200 + t.syncStallTimeoutMs;
        const base = { ...first.state, lastRoundAt: edge - 100 };
        assert.deepEqual(acts(decideAgent(base, o(edge - 1), s)), []);
        assert.deepEqual(acts(decideAgent(base, o(edge), s)), [
          { kind: 'setPromotable', term: 1, promotable: false },
        ]);
      });
    }

    test('not streaming, already not promotable: nothing more', () => {
      const r = rec({ standbyPromotable: false });
      const d = decideAgent(
        state({ record: r, syncStallSince: 0 }, 0, 99_900),
        pObs(100_000, { arbiter: r, local: { syncNamesActive: false, peerReplication: null } }),
        A,
      );
      assert.deepEqual(acts(d), []);
    });

    test('not streaming past the deadline but the arbiter is unreachable: nothing (it cannot be told)', () => {
      const d = decideAgent(
        state({ syncStallSince: 0 }, 0, T.syncStallTimeoutMs - 100),
        pObs(T.syncStallTimeoutMs, {
          arbiter: null,
          local: { syncNamesActive: false, peerReplication: null },
        }),
        A,
      );
      assert.deepEqual(acts(d), []);
    });

    test('async never degrades or restores synchronous_standby_names', () => {
      const d = decideAgent(
        state({ syncStallSince: 0 }, 0, 99_900),
        pObs(100_000, { local: { syncNamesActive: true, peerReplication: null } }),
        A,
      );
      assert.ok(!kinds(d).includes('degradeSync'));
      assert.ok(!kinds(d).includes('restoreSync'));
    });
  });
});

describe('decideAgent: standby', () => {
  test('healthy: streaming, nothing to do', () => {
    const d = decideAgent(state(), sObs(500), S);
    assert.equal(d.phase, 'standby');
    assert.deepEqual(acts(d), []);
  });

  test('resets any sync stall timer it may have from a former life as primary', () => {
    const d = decideAgent(state({ syncStallSince: 5 }), sObs(500), S);
    assert.equal(d.state.syncStallSince, null);
  });

  describe('our server runs as a primary but the record names another: we were replaced', () => {
    const newer = rec({ term: 2, primary: 'pg2', standby: 'pg1', standbyPromotable: false });
    const replacedObs = (over: ObsOver = {}) =>
      sObs(500, { arbiter: newer, local: { inRecovery: false, standbySignal: false }, ...over });

    test('auto rejoin: fence, then rejoin the new primary', () => {
      const d = decideAgent(state(), replacedObs(), P);
      assert.equal(d.phase, 'rejoining');
      assert.deepEqual(acts(d), [
        { kind: 'fence', reason: 'replaced by pg2 in term 2' },
        { kind: 'rejoin', primary: 'pg2', reason: 'pg2 is primary in term 2' },
      ]);
    });

    test('already fenced: rejoin only', () => {
      const d = decideAgent(state(), replacedObs({ fenced: true }), P);
      assert.deepEqual(kinds(d), ['rejoin']);
    });

    test('manual rejoin: fence and tell a person', () => {
      const d = decideAgent(state(), replacedObs(), settings('pg1', { autoRejoin: false }));
      assert.equal(d.phase, 'needs-rejoin');
      assert.deepEqual(kinds(d), ['fence', 'note']);
      assert.match(noteText(d), /rejoin is manual: run `pgarbiter rejoin`/);
    });

    test('manual rejoin, already fenced: only the note, the fence stays', () => {
      const d = decideAgent(state(), replacedObs({ fenced: true }), settings('pg1', { autoRejoin: false }));
      assert.deepEqual(kinds(d), ['note']);
      assert.ok(!kinds(d).includes('unfenceAsStandby'));
    });
  });

  describe('PostgreSQL down', () => {
    test('a former primary data directory (no standby.signal): fence, rejoin; never start it as is', () => {
      const d = decideAgent(
        state(),
        sObs(500, { local: { up: false, inRecovery: null, standbySignal: false } }),
        S,
      );
      assert.equal(d.phase, 'rejoining');
      assert.deepEqual(acts(d), [
        { kind: 'fence', reason: 'former primary data directory' },
        { kind: 'rejoin', primary: 'pg1', reason: 'data directory is a former primary' },
      ]);
    });

    test('former primary, fenced, manual rejoin: needs-rejoin, nothing started', () => {
      const d = decideAgent(
        state(),
        sObs(500, { fenced: true, local: { up: false, inRecovery: null, standbySignal: false } }),
        settings('pg2', { autoRejoin: false }),
      );
      assert.equal(d.phase, 'needs-rejoin');
      assert.deepEqual(kinds(d), ['note']);
      assert.equal(d.rule, 'needs-manual-rejoin');
    });

    test('a standby data directory: start it', () => {
      const d = decideAgent(
        state(),
        sObs(500, { local: { up: false, inRecovery: null, receiving: false } }),
        S,
      );
      assert.equal(d.phase, 'starting');
      assert.deepEqual(acts(d), [{ kind: 'startPostgres', reason: 'standby PostgreSQL is not running' }]);
    });

    test('a standby data directory in maintenance mode: not started, a warning', () => {
      const r = rec({ maintenance: true });
      const d = decideAgent(
        state({ record: r }),
        sObs(500, { arbiter: r, local: { up: false, inRecovery: null, receiving: false } }),
        S,
      );
      assert.equal(d.phase, 'standby-down');
      assert.deepEqual(kinds(d), ['note']);
    });
  });

  test('fenced standby (after a rejoin): unfence, it accepts no writes anyway', () => {
    const d = decideAgent(state(), sObs(500, { fenced: true }), S);
    assert.equal(d.phase, 'standby');
    assert.deepEqual(acts(d), [{ kind: 'unfenceAsStandby' }]);
  });

  describe('not receiving WAL from a reachable primary', () => {
    const notRecv = (now: number) => sObs(now, { local: { receiving: false } });

    test(`rejoin at exactly ${NOT_RECEIVING_REJOIN_MS} ms, not 1 ms before`, () => {
      const first = decideAgent(state({}, 0, 0), notRecv(1000), S);
      assert.equal(first.state.notReceivingSince, 1000);
      assert.equal(first.phase, 'standby-catching-up');
      const edge = 1000 + NOT_RECEIVING_REJOIN_MS;
      const base = { ...first.state, lastRoundAt: edge - 100 };
      const before = decideAgent(base, notRecv(edge - 1), S);
      assert.deepEqual(acts(before), []);
      assert.equal(before.state.notReceivingSince, 1000);
      const at = decideAgent(base, notRecv(edge), S);
      assert.equal(at.phase, 'rejoining');
      assert.deepEqual(acts(at), [
        { kind: 'rejoin', primary: 'pg1', reason: 'not receiving WAL from a reachable primary' },
      ]);
      assert.equal(at.state.notReceivingSince, null);
    });

    test('manual rejoin: the timer runs but nothing is done', () => {
      const d = decideAgent(
        state({ notReceivingSince: 0 }, 0, 99_900),
        notRecv(100_000),
        settings('pg2', { autoRejoin: false }),
      );
      assert.deepEqual(acts(d), []);
      assert.equal(d.phase, 'standby-catching-up');
    });

    test('receiving again, or the primary unreachable, resets the timer', () => {
      const a = decideAgent(state({ notReceivingSince: 0 }), sObs(500), S);
      assert.equal(a.state.notReceivingSince, null);
      const b = decideAgent(
        state({ notReceivingSince: 0 }),
        sObs(500, { primaryPgOk: false, local: { receiving: false } }),
        S,
      );
      assert.equal(b.state.notReceivingSince, null);
      assert.equal(b.phase, 'standby-catching-up');
    });

    test('a fenced standby that must rejoin also gets its unfence first', () => {
      const d = decideAgent(
        state({ notReceivingSince: 0 }, 0, NOT_RECEIVING_REJOIN_MS - 100),
        sObs(NOT_RECEIVING_REJOIN_MS, { fenced: true, local: { receiving: false } }),
        S,
      );
      assert.deepEqual(kinds(d), ['unfenceAsStandby', 'rejoin']);
    });
  });

  describe('failover', () => {
    for (const profile of PROFILES) {
      const t = timingOf(profile);
      const s = settings('pg2', { timing: t });
      const lost = (now: number, over: ObsOver = {}) =>
        sObs(now, { primaryPgOk: false, peerAgentOk: false, local: { receiving: false }, ...over });

      test(`[${profile}] primary lost: no request at failover_timeout - 1 ms, request at exactly failover_timeout`, () => {
        const before = decideAgent(state({}, 0, t.failoverTimeoutMs - 200), lost(t.failoverTimeoutMs - 1), s);
        assert.equal(before.phase, 'standby-catching-up');
        assert.deepEqual(acts(before), []);
        const at = decideAgent(state({}, 0, t.failoverTimeoutMs - 200), lost(t.failoverTimeoutMs), s);
        assert.equal(at.phase, 'requesting-promotion');
        assert.deepEqual(acts(at), [{ kind: 'requestPromotion', term: 1 }]);
      });

      test(`[${profile}] rounds every probe_interval: first request at the first round >= failover_timeout`, () => {
        const rs = rounds(s, state({}, 0, 0), t.probeIntervalMs, 3 * t.failoverTimeoutMs, (now) => lost(now));
        const first = rs.find((r) => kinds(r.d).includes('requestPromotion'));
        assert.equal(first?.now, Math.ceil(t.failoverTimeoutMs / t.probeIntervalMs) * t.probeIntervalMs);
        // And it keeps asking every round after (the arbiter decides).
        assert.ok(
          rs
            .filter((r) => r.now >= t.failoverTimeoutMs)
            .every((r) => kinds(r.d).includes('requestPromotion')),
        );
      });
    }

    test('the request carries the term of the record just adopted from the arbiter', () => {
      const r = rec({ term: 9 });
      const d = decideAgent(
        state({}, 0, 3400),
        sObs(3500, { arbiter: r, primaryPgOk: false, local: { receiving: false } }),
        S,
      );
      assert.deepEqual(acts(d), [{ kind: 'requestPromotion', term: 9 }]);
    });

    const refusals: { name: string; record: Partial<ClusterRecord>; arbiter: boolean; msg: RegExp }[] = [
      {
        name: 'maintenance mode',
        record: { maintenance: true },
        arbiter: true,
        msg: /maintenance mode: no failover/,
      },
      { name: 'arbiter unreachable', record: {}, arbiter: false, msg: /arbiter unreachable: no failover/ },
      {
        name: 'not promotable',
        record: { standbyPromotable: false },
        arbiter: true,
        msg: /marked not promotable/,
      },
    ];
    for (const c of refusals) {
      test(`primary lost, ${c.name}: no request, a warning`, () => {
        const r = rec(c.record);
        const d = decideAgent(
          state({ record: r }, 0, 9900),
          sObs(10_000, { arbiter: c.arbiter ? r : null, primaryPgOk: false, local: { receiving: false } }),
          S,
        );
        assert.equal(d.phase, 'standby-primary-lost');
        assert.deepEqual(kinds(d), ['note']);
        assert.match(noteText(d), c.msg);
      });
    }

    test('the primary answered this round: no request however long it was lost before', () => {
      const d = decideAgent(state({}, 0, 9900), sObs(10_000, { local: { receiving: false } }), S);
      assert.ok(!kinds(d).includes('requestPromotion'));
    });

    test('only the primary PostgreSQL counts, not its agent', () => {
      const d = decideAgent(
        state({}, 0, 9900),
        sObs(10_000, { primaryPgOk: false, peerAgentOk: true, local: { receiving: false } }),
        S,
      );
      assert.deepEqual(kinds(d), ['requestPromotion']);
    });

    test('after a pause the standby asks at once; the arbiter is the one that decides', () => {
      const d = decideAgent(
        state({}, 0, 0),
        sObs(100_000, { primaryPgOk: false, local: { receiving: false } }),
        S,
      );
      assert.deepEqual(kinds(d), ['requestPromotion']);
    });
  });
});

describe('LSN comparison', () => {
  test('orders by both halves, hex, any case; unknown or malformed is never "at least"', () => {
    assert.equal(lsnAtLeast('1/0', '0/FFFFFFFF'), true);
    assert.equal(lsnAtLeast('0/FFFFFFFF', '1/0'), false);
    assert.equal(lsnAtLeast('A/1', '9/ffffffff'), true);
    assert.equal(lsnAtLeast('0/16B3748', '0/16B3748'), true);
    assert.equal(lsnAtLeast('0/16B3747', '0/16B3748'), false);
    assert.equal(lsnAtLeast(null, '0/1'), false);
    assert.equal(lsnAtLeast('0/1', null), false);
    assert.equal(lsnAtLeast('garbage', '0/1'), false);
    assert.equal(parseLsn('1/2'), (1n << 32n) | 2n);
  });
});

describe('a term is a fact anyone may carry (the peer agent)', () => {
  const term2 = rec({ term: 2, primary: 'pg2', standby: 'pg1', standbyPromotable: false });

  test('an old primary, fenced, the arbiter silent, learns term 2 from pg2: it steps down and rejoins pg2', () => {
    const d = decideAgent(
      state({}, 4500, 4500),
      pObs(5000, { fenced: true, arbiter: null, peerRecord: term2 }),
      P,
    );
    assert.deepEqual(d.state.record, term2);
    assert.equal(d.rule, 'step-down');
    assert.ok(
      d.actions.some(
        (a) =>
          a.kind === 'note' &&
          a.rule === 'adopt-newer-term' &&
          /term 2 \(primary pg2\) learned from pg2/.test(a.msg),
      ),
    );
    assert.deepEqual(acts(d), [{ kind: 'rejoin', primary: 'pg2', reason: 'pg2 is primary in term 2' }]);
  });

  test('an unfenced old primary that learns of a newer term from the peer fences first, then rejoins', () => {
    const d = decideAgent(state({}, 4500, 4500), pObs(5000, { arbiter: null, peerRecord: term2 }), P);
    assert.deepEqual(kinds(d), ['fence', 'rejoin']);
  });

  test('an older or equal record from the peer changes nothing (only the arbiter is authoritative at a term)', () => {
    const mine = rec({ term: 3 });
    const older = decideAgent(
      state({ record: mine }, 4500, 4500),
      pObs(5000, { peerRecord: term2, arbiter: mine }),
      P,
    );
    assert.deepEqual(older.state.record, mine);
    const same = rec({ term: 3, maintenance: true });
    const equal = decideAgent(
      state({ record: mine }, 4500, 4500),
      pObs(5000, { peerRecord: same, arbiter: null }),
      P,
    );
    assert.deepEqual(equal.state.record, mine);
  });

  test('a newer record naming us primary, from the peer, is our confirmation: we promote', () => {
    const d = decideAgent(
      state({}, 4500, 4500),
      sObs(5000, { arbiter: null, peerRecord: term2, local: { inRecovery: true } }),
      S,
    );
    assert.equal(d.rule, 'promote-on-record');
    assert.equal(d.state.confirmedAt, 5000);
  });
});

describe('vouching (what /health says) and the promotion request', () => {
  const seen = (st: AgentState) => decideAgent(st, sObs(1000), S).state;

  test('a standby that reached the primary vouches for it in the current term, with the age of that contact', () => {
    const st = seen(state({}, 500, 500));
    assert.deepEqual(vouchOf(st, S, 1300), { primary: 'pg1', term: 1, seenMsAgo: 300 });
    assert.equal(vouchOf(st, P, 1300), null, 'the primary vouches for nobody');
  });

  test('no vouch before it ever reached the primary, or for a primary of an older term', () => {
    assert.equal(vouchOf(state(), S, 100), null);
    const st = { ...seen(state({}, 500, 500)), record: rec({ term: 2 }) };
    assert.equal(vouchOf(st, S, 1300), null);
  });

  test('asking for promotion stops the vouch in that term; a refusal restores it; a lost reply does not', () => {
    const lost = decideAgent(
      state({}, 0, 2900),
      sObs(3000, { primaryPgOk: false, local: { receiving: false } }),
      S,
    );
    const st = { ...lost.state, primarySeen: { node: 'pg1', term: 1, at: 0 } };
    assert.equal(lost.rule, 'request-promotion');
    assert.equal(st.promotionAskedInTerm, 1);
    assert.deepEqual(
      persistedOf(st),
      { record: rec(), promotionAskedInTerm: 1, handoverSeq: 0, handoverUnsettledTerm: null },
      'persisted before asking',
    );
    assert.equal(vouchOf(st, S, 3000), null);
    const ask = lost.actions.find((a) => a.kind === 'ask');
    assert.ok(ask && ask.kind === 'ask');
    const noAnswer = agentOnReply(st, ask, null, 3100, S);
    assert.equal(noAnswer.state.promotionAskedInTerm, 1, 'a grant may be in flight');
    assert.equal(vouchOf(noAnswer.state, S, 3100), null);
    const refused = agentOnReply(st, ask, { ok: false, reason: 'no', record: rec() }, 3100, S);
    assert.equal(refused.state.promotionAskedInTerm, null);
    assert.equal(refused.log.rule, 'reply-refused');
    assert.ok(vouchOf(refused.state, S, 3100));
  });

  test('a restarted standby that had asked does not vouch in that term (persisted)', () => {
    const st = startingAgentState({ record: rec(), promotionAskedInTerm: 1 }, 10_000, T);
    const d = decideAgent(st, sObs(10_500), S);
    assert.equal(vouchOf(d.state, S, 10_500), null);
  });

  test('the arbiter seen reaching the primary again ends the outstanding request', () => {
    const st = state({ promotionAskedInTerm: 1 }, 10_000, 10_000);
    const far = decideAgent(st, sObs(10_500, { vouchedAt: 10_500 - T.fenceTimeoutMs }), S);
    assert.equal(far.state.promotionAskedInTerm, 1);
    const near = decideAgent(st, sObs(10_500, { vouchedAt: 10_400 }), S);
    assert.equal(near.state.promotionAskedInTerm, null);
  });

  test('a grant: adopt the record, promote, count as confirmed', () => {
    const ask = {
      kind: 'ask',
      rule: 'request-promotion',
      why: 'promote',
      request: { kind: 'promote', node: 'pg2', term: 1 },
    } as const;
    const granted = rec({ term: 2, primary: 'pg2', standby: 'pg1', standbyPromotable: false });
    const r = agentOnReply(
      state({ promotionAskedInTerm: 1 }),
      ask,
      { ok: true, reason: 'granted', record: granted },
      700,
      S,
    );
    assert.deepEqual(r.state.record, granted);
    assert.equal(r.state.confirmedAt, 700);
    assert.deepEqual(acts(r), [{ kind: 'promote', term: 2 }]);
    assert.equal(r.log.rule, 'reply-granted');
  });
});

describe('replies to the primary', () => {
  const confirm = {
    kind: 'ask',
    rule: 'unfence-confirmed',
    why: 'unfence',
    request: { kind: 'confirmPrimary', node: 'pg1', term: 1, voidHandoversUpTo: 0 },
  } as const;
  const degrade = {
    kind: 'ask',
    rule: 'sync-degrade',
    why: 'degradeSync',
    request: { kind: 'setPromotable', node: 'pg1', term: 1, promotable: false },
  } as const;

  test('confirmed: unfence; refused or unanswered: stay fenced', () => {
    assert.deepEqual(
      acts(agentOnReply(state(), confirm, { ok: true, reason: 'ok', record: rec() }, 100, P)),
      [{ kind: 'unfence' }],
    );
    assert.equal(
      agentOnReply(state(), confirm, { ok: true, reason: 'ok', record: rec() }, 100, P).state.confirmedAt,
      100,
    );
    assert.deepEqual(
      acts(agentOnReply(state(), confirm, { ok: false, reason: 'no', record: rec() }, 100, P)),
      [],
    );
    assert.deepEqual(acts(agentOnReply(state(), confirm, null, 100, P)), []);
  });

  test('a refusal carrying a newer record is adopted (we were replaced)', () => {
    const newer = rec({ term: 2, primary: 'pg2', standby: 'pg1' });
    const r = agentOnReply(state(), confirm, { ok: false, reason: 'not the primary', record: newer }, 100, P);
    assert.deepEqual(r.state.record, newer);
  });

  test('sync is dropped only after the arbiter said yes', () => {
    assert.deepEqual(
      acts(
        agentOnReply(
          state(),
          degrade,
          { ok: true, reason: 'ok', record: rec({ standbyPromotable: false }) },
          100,
          P,
        ),
      ),
      [{ kind: 'dropSync' }],
    );
    assert.deepEqual(acts(agentOnReply(state(), degrade, { ok: false, reason: 'stale term' }, 100, P)), []);
    assert.deepEqual(acts(agentOnReply(state(), degrade, null, 100, P)), []);
  });
});

describe("a person's requests", () => {
  test('switchover only on the primary, rejoin only on the standby; carried out by the next round', () => {
    assert.equal(requestSwitchover(state(), S).refused, 'pg2 is not the primary');
    assert.equal(requestRejoin(state(), P).refused, 'pg1 is the primary of record');
    const r = requestRejoin(state(), S);
    assert.equal(r.refused, null);
    const d = decideAgent(r.state, sObs(500), S);
    assert.equal(d.rule, 'manual-rejoin');
    assert.deepEqual(kinds(d), ['fence', 'rejoin']);
    assert.equal(d.state.requests.rejoin, false, 'done once');
  });

  test('forced promotion takes the next term with the core record builder, only on a running standby', () => {
    assert.deepEqual(forcePromotion(state(), P, false, 1), { error: 'pg1 is already the primary' });
    assert.deepEqual(forcePromotion(state(), S, false, 1), { error: 'pg2 is not a running standby' });
    const r = forcePromotion(state(), S, true, 1);
    assert.ok('record' in r);
    assert.deepEqual(r.record, rec({ term: 2, primary: 'pg2', standby: 'pg1', standbyPromotable: false }));
    assert.equal(r.state.confirmedAt, 1);
  });
});

describe('rules by name', () => {
  test('every rule is used by the core and listed in the README rules table', () => {
    const core = readFileSync(new URL('../../../src/core/agent.ts', import.meta.url), 'utf8');
    const readme = readFileSync(new URL('../../../README.md', import.meta.url), 'utf8');
    for (const id of Object.keys(RULES)) {
      assert.ok(core.includes(`'${id}'`), `rule ${id} is not used in src/core/agent.ts`);
      assert.ok(readme.includes(`\`${id}\``), `rule ${id} is not in the README's rules table`);
    }
  });
});

describe('the lease (lease: on)', () => {
  const L = 2500;
  const PL = settings('pg1', { leaseMs: L });
  const SL = settings('pg2', { leaseMs: L });
  const leases = (d: { actions: AgentAction[] }) => d.actions.filter((a) => a.kind === 'lease');

  test('a serving primary holds it first, until the last vouch + the lease duration', () => {
    const d = decideAgent(state({}, 9_000, 9_500), pObs(10_000, { vouchedAt: 9_200 }), PL);
    assert.equal(d.rule, 'serve');
    assert.deepEqual(d.actions[0], { kind: 'lease', rule: 'hold-lease', until: 9_200 + L });
    assert.deepEqual(leases(decideAgent(state({}, 9_000, 9_500), pObs(10_000), settings('pg1'))), []);
  });

  test('no refresh once it fences: isolated, or unreached by its peers', () => {
    const isolated = decideAgent(state(), pObs(2_000, { arbiter: null, peerAgentOk: false }), PL);
    assert.equal(isolated.rule, 'fence-isolated');
    assert.deepEqual(leases(isolated), []);
    const unreached = decideAgent(state({}, 0, 1_900), pObs(2_000, { vouchedAt: null }), PL);
    assert.equal(unreached.rule, 'fence-unreached');
    assert.deepEqual(leases(unreached), []);
  });

  test('a restarted agent holds it only on a fresh vouch, never on its start-up assumption', () => {
    const start = startingAgentState({ record: rec(), promotionAskedInTerm: null }, 10_000, T);
    const none = decideAgent(start, pObs(10_500, { vouchedAt: null }), PL);
    assert.deepEqual(leases(none), []);
    const fresh = decideAgent(start, pObs(10_500, { vouchedAt: 10_300 }), PL);
    assert.deepEqual(leases(fresh), [{ kind: 'lease', rule: 'hold-lease', until: 10_300 + L }]);
  });

  test('a granted standby takes it before promoting, counted from when it asked', () => {
    const ask: Extract<AgentAction, { kind: 'ask' }> = {
      kind: 'ask',
      rule: 'request-promotion',
      why: 'promote',
      request: { kind: 'promote', node: 'pg2', term: 1 },
    };
    const granted = rec({ term: 2, primary: 'pg2', standby: 'pg1', standbyPromotable: false });
    const r = agentOnReply(state(), ask, { ok: true, reason: 'granted', record: granted }, 5_000, SL);
    assert.deepEqual(
      r.actions.map((a) => a.kind),
      ['lease', 'promote'],
    );
    assert.deepEqual(r.actions[0], { kind: 'lease', rule: 'hold-lease', until: 5_000 + L });
  });

  test('a running standby removes it; a replaced primary still running as primary keeps it to lapse', () => {
    const standby = decideAgent(state({ record: rec() }), sObs(1_000), SL);
    assert.deepEqual(leases(standby), [{ kind: 'lease', rule: 'no-lease-standby', until: null }]);
    const replaced = decideAgent(
      state(),
      pObs(1_000, { arbiter: rec({ term: 2, primary: 'pg2', standby: 'pg1' }) }),
      PL,
    );
    assert.equal(replaced.rule, 'step-down');
    assert.deepEqual(leases(replaced), []);
  });
});
