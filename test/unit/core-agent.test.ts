// decideAgent, rule by rule, for the primary and the standby, with a simulated clock: every
// timeout is driven to its edge (one millisecond before: nothing; exactly at it: the action).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { TIMING_PROFILES } from '../../src/config.js';
import {
  decideAgent,
  initialAgentState,
  NOT_RECEIVING_REJOIN_MS,
  startingAgentState,
} from '../../src/core/agent.js';
import { lsnAtLeast, parseLsn } from '../../src/core/lsn.js';
import type {
  AgentAction,
  AgentObservation,
  AgentSettings,
  AgentState,
  ClusterRecord,
  CoreTiming,
  Decision,
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
type ObsOver = Partial<Omit<AgentObservation, 'local'>> & { local?: Partial<Local> };

const SYNC_STREAMING = { state: 'streaming', syncState: 'sync', caughtUp: true, flushLsn: '0/1000' };

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
  return {
    now,
    fenced: false,
    arbiter: rec(),
    peerAgentOk: true,
    vouchedAt: now,
    primaryPgOk: false,
    switchoverRequested: false,
    ...over,
    local,
  };
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
  return {
    now,
    fenced: false,
    arbiter: rec(),
    peerAgentOk: true,
    vouchedAt: null,
    primaryPgOk: true,
    switchoverRequested: false,
    ...over,
    local,
  };
}

const P = settings('pg1');
const S = settings('pg2');

function kinds(d: Decision): string[] {
  return d.actions.map((a) => a.kind);
}

function noteText(d: Decision): string {
  return d.actions
    .filter((a): a is Extract<AgentAction, { kind: 'note' }> => a.kind === 'note')
    .map((a) => `${a.level}:${a.msg}`)
    .join(' | ');
}

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
      lastRoundAt: 1234,
      syncStallSince: null,
      promotableAtLsn: null,
      notReceivingSince: null,
    });
  });

  test('a freshly started primary agent that reaches neither peer fences on its first round', () => {
    const start = startingAgentState(rec(), 10_000, P.timing.fenceTimeoutMs);
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
    const sStart = startingAgentState(rec(), 10_000, S.timing.fenceTimeoutMs);
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

  test('ignores an older arbiter record (a lost record file) but still counts the arbiter as reached', () => {
    const mine = rec({ term: 5 });
    const older = rec({ term: 4, primary: 'pg2', standby: 'pg1' });
    const d = decideAgent(state({ record: mine }, 0, 0), pObs(500, { arbiter: older }), P);
    assert.deepEqual(d.state.record, mine);
    assert.equal(d.state.lastArbiterOkAt, 500);
    // Still primary of term 5: it did not turn itself into a standby because of the old record.
    assert.equal(d.phase, 'primary');
    assert.deepEqual(d.actions, []);
  });

  test('the role follows the record: a node named primary by a newer record acts as primary', () => {
    const handedOver = rec({ term: 2, primary: 'pg2', standby: 'pg1', standbyPromotable: false });
    const d = decideAgent(state(), sObs(500, { arbiter: handedOver, primaryPgOk: false }), S);
    assert.equal(d.phase, 'promoting');
    assert.deepEqual(d.actions, [{ kind: 'promote', term: 2 }]);
  });
});

describe('decideAgent: primary', () => {
  test('healthy synchronous primary: nothing to do', () => {
    const d = decideAgent(state(), pObs(500), P);
    assert.equal(d.phase, 'primary');
    assert.deepEqual(d.actions, []);
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
    assert.deepEqual(d.actions, [{ kind: 'promote', term: 3 }]);
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
      assert.deepEqual(at.actions, [{ kind: 'fence', reason: 'lost pg2 and the arbiter' }]);
    });

    test(`[${profile}] isolated from t=0, rounds every probe_interval: fences at the first round >= fence_timeout`, () => {
      const rs = rounds(s, state({}, 0, 0), t.probeIntervalMs, 3 * t.fenceTimeoutMs, isolated);
      const firstFence = rs.find((r) => kinds(r.d).includes('fence'));
      assert.equal(firstFence?.now, t.fenceTimeoutMs);
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
      const st = state({ lastArbiterOkAt: 0, lastPeerOkAt: 1000 }, 0, 0);
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
    assert.deepEqual(d.actions, []);
  });

  test('isolated in maintenance mode: fences all the same (it could not see maintenance end)', () => {
    const r = rec({ maintenance: true });
    const d = decideAgent(
      state({ record: r }, 0, 9990),
      pObs(10_000, { arbiter: null, peerAgentOk: false }),
      P,
    );
    assert.equal(d.phase, 'fenced-isolated');
    assert.deepEqual(d.actions, [{ kind: 'fence', reason: 'lost pg2 and the arbiter' }]);
  });

  describe('vouching: the peers must reach our PostgreSQL, not just our agent', () => {
    const F = T.fenceTimeoutMs;
    test('both peers answer but neither has reached our PostgreSQL for fence_timeout: fence', () => {
      const d = decideAgent(state({}, 0, F - 100), pObs(F, { vouchedAt: null }), P);
      assert.equal(d.phase, 'fenced-unreached');
      assert.deepEqual(kinds(d), ['fence']);
      assert.match(
        (d.actions[0] as { reason: string }).reason,
        /neither pg2 nor the arbiter has reached our PostgreSQL/,
      );
    });

    test('an old vouch counts until fence_timeout, measured from when the peer reached us', () => {
      const d1 = decideAgent(state({}, 0, F - 100), pObs(F - 1, { vouchedAt: null }), P);
      assert.deepEqual(d1.actions, [], 'not yet');
      // A vouch from 400 ms before this round: good for fence_timeout from then.
      const d2 = decideAgent(state({}, 0, F - 100), pObs(F, { vouchedAt: F - 400 }), P);
      assert.deepEqual(d2.actions, []);
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
        assert.deepEqual(d.actions, [
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
        assert.deepEqual(d.actions, []);
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
      assert.deepEqual(d.actions, [
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
      assert.deepEqual(d.actions, []);
    });
  });

  describe('PostgreSQL down on the primary', () => {
    test('fence first, then start it (clients come back only after the arbiter confirms)', () => {
      const d = decideAgent(state(), pObs(500, { local: { up: false, inRecovery: null } }), P);
      assert.equal(d.phase, 'restarting');
      assert.deepEqual(d.actions, [
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
      assert.deepEqual(d.actions, [{ kind: 'unfenceAsPrimary' }]);
    });

    test('the arbiter does not answer: stay fenced even though the standby answers', () => {
      const d = decideAgent(state(), pObs(500, { fenced: true, arbiter: null }), P);
      assert.equal(d.phase, 'fenced');
      assert.deepEqual(kinds(d), ['note']);
      assert.match(noteText(d), /^info:fenced: waiting for the arbiter/);
    });

    test('an older arbiter record naming someone else: stay fenced, no unfence', () => {
      const mine = rec({ term: 3 });
      const d = decideAgent(
        state({ record: mine }),
        pObs(500, { fenced: true, arbiter: rec({ term: 2, primary: 'pg2', standby: 'pg1' }) }),
        P,
      );
      assert.equal(d.phase, 'fenced');
      assert.deepEqual(d.actions, []);
    });

    test('fenced: no replication decision and no switchover while fenced', () => {
      const d = decideAgent(
        state({ record: rec({ standbyPromotable: false }) }),
        pObs(500, {
          fenced: true,
          arbiter: rec({ standbyPromotable: false }),
          switchoverRequested: true,
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
          state({ record: r }),
          pObs(500, { arbiter: r, switchoverRequested: true, local: { peerReplication: c.repl } }),
          settings('pg1', { syncReplication: c.sync }),
        );
        assert.equal(d.phase, 'primary');
        if (c.ok) assert.deepEqual(d.actions[0], { kind: 'handover', to: 'pg2', term: 7 });
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
      assert.deepEqual(d.actions, [{ kind: 'setPromotable', term: 2, promotable: true }]);
      assert.equal(d.state.syncStallSince, null);
    });

    test('sync acknowledged, not promotable, arbiter unreachable: nothing', () => {
      const r = rec({ standbyPromotable: false });
      const d = decideAgent(state({ record: r }), pObs(500, { arbiter: null }), P);
      assert.deepEqual(d.actions, []);
    });

    for (const profile of PROFILES) {
      const t = timingOf(profile);
      const s = settings('pg1', { timing: t });
      test(`[${profile}] standby stops acknowledging: degrade at exactly sync_stall_timeout, not 1 ms before`, () => {
        const first = decideAgent(state({}, 0, 0), pObs(100, { local: stalled }), s);
        assert.equal(first.state.syncStallSince, 100);
        assert.deepEqual(first.actions, []);
        const edge = 100 + t.syncStallTimeoutMs;
        const before = decideAgent(
          { ...first.state, lastRoundAt: edge - 100 },
          pObs(edge - 1, { local: stalled }),
          s,
        );
        assert.deepEqual(before.actions, []);
        assert.equal(before.state.syncStallSince, 100);
        const at = decideAgent(
          { ...first.state, lastRoundAt: edge - 100 },
          pObs(edge, { local: stalled }),
          s,
        );
        assert.deepEqual(at.actions, [{ kind: 'degradeSync', term: 1 }]);
        assert.equal(at.phase, 'primary');
      });

      test(`[${profile}] rounds every probe_interval: the first degradeSync is at the first round >= sync_stall_timeout`, () => {
        const rs = rounds(s, state({}, 0, 0), t.probeIntervalMs, 3 * t.syncStallTimeoutMs, (now) =>
          pObs(now, { local: stalled }),
        );
        const first = rs.find((r) => kinds(r.d).includes('degradeSync'));
        assert.equal(first?.now, t.probeIntervalMs + t.syncStallTimeoutMs);
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
      assert.deepEqual(d.actions, []);
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
      assert.deepEqual(d1.actions, []);
      assert.equal(d1.state.promotableAtLsn, '0/5000');
      // New WAL since (0/6000) waits for the standby: the target stays where it was.
      const d2 = decideAgent(d1.state, pObs(1000, { arbiter: r, local: sync('0/4FFF', '0/6000') }), P);
      assert.deepEqual(d2.actions, []);
      assert.equal(d2.state.promotableAtLsn, '0/5000');
      const d3 = decideAgent(d2.state, pObs(1500, { arbiter: r, local: sync('0/5000', '0/6000') }), P);
      assert.deepEqual(d3.actions, [{ kind: 'setPromotable', term: 3, promotable: true }]);
      assert.equal(d3.state.promotableAtLsn, null);
    });

    test('sync back on, but the standby stalls again before catching up: the target is forgotten', () => {
      const r = rec({ standbyPromotable: false, term: 3 });
      const st = state({ record: r, promotableAtLsn: '0/5000' });
      const d = decideAgent(st, pObs(500, { arbiter: r, local: { peerReplication: null } }), P);
      assert.equal(d.state.promotableAtLsn, null);
      assert.ok(!d.actions.some((a) => a.kind === 'setPromotable' && a.promotable));
    });

    test('an unknown flush position never makes the standby promotable', () => {
      const r = rec({ standbyPromotable: false, term: 3 });
      const d = decideAgent(
        state({ record: r }),
        pObs(500, { arbiter: r, local: { peerReplication: { ...SYNC_STREAMING, flushLsn: null } } }),
        P,
      );
      assert.deepEqual(d.actions, []);
    });

    test('the stall timer resets when the standby acknowledges again', () => {
      const d = decideAgent(
        state({ syncStallSince: 0 }, 0, T.syncStallTimeoutMs - 100),
        pObs(T.syncStallTimeoutMs - 1),
        P,
      );
      assert.equal(d.state.syncStallSince, null);
      assert.deepEqual(d.actions, []);
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
      assert.deepEqual(d.actions, []);
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
      assert.deepEqual(d.actions, [{ kind: 'setPromotable', term: 1, promotable: false }]);
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
      assert.deepEqual(d.actions, [{ kind: 'restoreSync', term: 3 }]);
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
      assert.deepEqual(d.actions, []);
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
        assert.deepEqual(d.actions, []);
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
      assert.deepEqual(d.actions, []);
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
      assert.deepEqual(d.actions, [{ kind: 'setPromotable', term: 4, promotable: true }]);
      assert.equal(d.state.syncStallSince, null);
    });

    test('streaming and promotable: nothing', () => {
      const d = decideAgent(
        state(),
        pObs(500, { local: { syncNamesActive: false, peerReplication: asyncStreaming } }),
        A,
      );
      assert.deepEqual(d.actions, []);
    });

    test('streaming, not promotable, arbiter unreachable: nothing', () => {
      const r = rec({ standbyPromotable: false });
      const d = decideAgent(
        state({ record: r }),
        pObs(500, { arbiter: null, local: { syncNamesActive: false, peerReplication: asyncStreaming } }),
        A,
      );
      assert.deepEqual(d.actions, []);
    });

    for (const profile of PROFILES) {
      const t = timingOf(profile);
      const s = settings('pg1', { syncReplication: false, timing: t });
      test(`[${profile}] not streaming: marked not promotable at exactly sync_stall_timeout`, () => {
        const o = (now: number) => pObs(now, { local: { syncNamesActive: false, peerReplication: null } });
        const first = decideAgent(state({}, 0, 0), o(200), s);
        assert.equal(first.state.syncStallSince, 200);
        assert.deepEqual(first.actions, []);
        const edge = 200 + t.syncStallTimeoutMs;
        const base = { ...first.state, lastRoundAt: edge - 100 };
        assert.deepEqual(decideAgent(base, o(edge - 1), s).actions, []);
        assert.deepEqual(decideAgent(base, o(edge), s).actions, [
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
      assert.deepEqual(d.actions, []);
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
      assert.deepEqual(d.actions, []);
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
    assert.deepEqual(d.actions, []);
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
      assert.deepEqual(d.actions, [
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
      assert.deepEqual(d.actions, [
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
      assert.deepEqual(d.actions, []);
    });

    test('a standby data directory: start it', () => {
      const d = decideAgent(
        state(),
        sObs(500, { local: { up: false, inRecovery: null, receiving: false } }),
        S,
      );
      assert.equal(d.phase, 'starting');
      assert.deepEqual(d.actions, [{ kind: 'startPostgres', reason: 'standby PostgreSQL is not running' }]);
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
    assert.deepEqual(d.actions, [{ kind: 'unfenceAsStandby' }]);
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
      assert.deepEqual(before.actions, []);
      assert.equal(before.state.notReceivingSince, 1000);
      const at = decideAgent(base, notRecv(edge), S);
      assert.equal(at.phase, 'rejoining');
      assert.deepEqual(at.actions, [
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
      assert.deepEqual(d.actions, []);
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
        assert.deepEqual(before.actions, []);
        const at = decideAgent(state({}, 0, t.failoverTimeoutMs - 200), lost(t.failoverTimeoutMs), s);
        assert.equal(at.phase, 'requesting-promotion');
        assert.deepEqual(at.actions, [{ kind: 'requestPromotion', term: 1 }]);
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
      assert.deepEqual(d.actions, [{ kind: 'requestPromotion', term: 9 }]);
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
