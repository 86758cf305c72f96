// arbiterObserve and arbiterHandle, branch by branch: every refusal with its reason, the grant's
// record change, at most one grant per term, and the timeouts at their edges.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { TIMING_PROFILES } from '../../src/config.js';
import {
  type ArbiterRequest,
  type ArbiterSettings,
  type ArbiterState,
  arbiterHandle,
  arbiterObserve,
  arbiterView,
  initialArbiterState,
} from '../../src/core/arbiter.js';
import type { ClusterRecord } from '../../src/core/types.js';

type Profile = keyof typeof TIMING_PROFILES;
const PROFILES: Profile[] = ['default', 'fast'];

function settingsOf(p: Profile): ArbiterSettings {
  const t = TIMING_PROFILES[p];
  return { failoverTimeoutMs: t.failover_timeout, fenceTimeoutMs: t.fence_timeout };
}
const A = settingsOf('default');

function rec(over: Partial<ClusterRecord> = {}): ClusterRecord {
  return { term: 1, primary: 'pg1', standby: 'pg2', standbyPromotable: true, maintenance: false, ...over };
}

/** Arbiter state: the primary last reached at `seen`, the last probe round at `round`. */
function st(over: Partial<ClusterRecord> = {}, seen = 0, round = seen): ArbiterState {
  return { record: rec(over), lastPrimaryOkAt: seen, lastRoundAt: round, vouch: null };
}

/** A probe round of the recorded primary that started at `at`. */
const probeOf = (state: ArbiterState, ok: boolean, at: number) => ({
  node: state.record.primary,
  ok,
  startedAt: at,
});

const PROMOTE: ArbiterRequest = { kind: 'promote', node: 'pg2', term: 1 };
/** A moment when a grant is due with the default profile: primary lost for failover_timeout,
 *  the arbiter's last round just before. */
const DUE = A.failoverTimeoutMs;
const lostState = (over: Partial<ClusterRecord> = {}) => st(over, 0, DUE - 100);

describe('initialArbiterState', () => {
  test('counts the primary as just seen: no grant before a full failover_timeout of observation', () => {
    const s = initialArbiterState(rec({ term: 3 }), 5000);
    assert.deepEqual(s, {
      record: rec({ term: 3 }),
      lastPrimaryOkAt: 5000,
      lastRoundAt: 5000,
      startedAt: 5000,
      vouch: null,
    });
    const early = arbiterHandle(s, { ...PROMOTE, term: 3 }, 5000 + A.failoverTimeoutMs - 1, A);
    assert.equal(early.ok, false);
  });

  test('confirms no primary for fence_timeout after start, so a newer term held by an agent arrives first', () => {
    const s = initialArbiterState(rec({ term: 3 }), 5000);
    const early = arbiterHandle(
      s,
      { kind: 'confirmPrimary', node: 'pg1', term: 3 },
      5000 + A.fenceTimeoutMs - 1,
      A,
    );
    assert.equal(early.ok, false);
    assert.match(early.reason, /just started/);
    const adopted = arbiterHandle(
      s,
      { kind: 'adopt', record: rec({ term: 4, primary: 'pg2', standby: 'pg1', standbyPromotable: false }) },
      5100,
      A,
    );
    assert.equal(adopted.ok, true);
    const later = arbiterHandle(
      adopted.state,
      { kind: 'confirmPrimary', node: 'pg1', term: 3 },
      5000 + A.fenceTimeoutMs,
      A,
    );
    assert.equal(later.ok, false, 'the old primary is refused: its term is stale');
    const fine = arbiterHandle(
      s,
      { kind: 'confirmPrimary', node: 'pg1', term: 3 },
      5000 + A.fenceTimeoutMs,
      A,
    );
    assert.equal(fine.ok, true);
  });
});

describe('arbiterObserve', () => {
  for (const profile of PROFILES) {
    const s = settingsOf(profile);
    test(`[${profile}] primary answered: last seen now`, () => {
      const next = arbiterObserve(st({}, 0, 400), { node: 'pg1', ok: true, startedAt: 480 }, 500, s);
      // The vouch counts from when the probe went out, not from when it answered.
      assert.deepEqual(next, {
        record: rec(),
        lastPrimaryOkAt: 500,
        lastRoundAt: 500,
        vouch: { node: 'pg1', at: 480 },
      });
      assert.deepEqual(arbiterView(next, 600), { record: rec(), primaryVouchedMsAgo: 120 });
    });

    test(`[${profile}] a probe of a node that is no longer primary says nothing`, () => {
      const next = arbiterObserve(st({}, 0, 400), { node: 'pg2', ok: true, startedAt: 480 }, 500, s);
      assert.equal(next.lastPrimaryOkAt, 0);
      assert.equal(next.vouch, null);
      assert.equal(arbiterView(next, 600).primaryVouchedMsAgo, null);
    });

    test(`[${profile}] primary silent: last seen unchanged, round time advances`, () => {
      const next = arbiterObserve(st({}, 100, 400), { node: 'pg1', ok: false, startedAt: 480 }, 500, s);
      assert.deepEqual(next, { record: rec(), lastPrimaryOkAt: 100, lastRoundAt: 500, vouch: null });
    });

    test(`[${profile}] a round late by exactly fence_timeout is not a pause`, () => {
      const next = arbiterObserve(
        st({}, 0, 1000),
        { node: 'pg1', ok: false, startedAt: 0 },
        1000 + s.fenceTimeoutMs,
        s,
      );
      assert.equal(next.lastPrimaryOkAt, 0);
    });

    test(`[${profile}] a round late by fence_timeout + 1 (paused): observe afresh, primary counts as seen now`, () => {
      const now = 1000 + s.fenceTimeoutMs + 1;
      const next = arbiterObserve(st({}, 0, 1000), { node: 'pg1', ok: false, startedAt: now }, now, s);
      assert.equal(next.lastPrimaryOkAt, now);
      assert.equal(next.lastRoundAt, now);
    });
  }

  test('does not touch the record nor the previous state', () => {
    const prev = st({ term: 4, standbyPromotable: false });
    const copy = structuredClone(prev);
    const next = arbiterObserve(prev, probeOf(prev, true, 500), 500, A);
    assert.deepEqual(prev, copy);
    assert.equal(next.record, prev.record);
  });
});

describe('arbiterHandle: promote', () => {
  const refusals: {
    name: string;
    state: ArbiterState;
    req: ArbiterRequest;
    now?: number;
    reason: RegExp;
  }[] = [
    {
      name: 'the primary itself asks',
      state: lostState(),
      req: { kind: 'promote', node: 'pg1', term: 1 },
      reason: /^pg1 is not the standby of record \(pg2\)$/,
    },
    {
      name: 'an unknown node asks',
      state: lostState(),
      req: { kind: 'promote', node: 'pg9', term: 1 },
      reason: /^pg9 is not the standby of record \(pg2\)$/,
    },
    {
      name: 'a stale (older) term',
      state: lostState({ term: 5 }),
      req: { kind: 'promote', node: 'pg2', term: 4 },
      reason: /^stale term 4: current term is 5$/,
    },
    {
      name: 'a term from the future',
      state: lostState({ term: 5 }),
      req: { kind: 'promote', node: 'pg2', term: 6 },
      reason: /^stale term 6: current term is 5$/,
    },
    {
      name: 'maintenance mode',
      state: lostState({ maintenance: true }),
      req: PROMOTE,
      reason: /^maintenance mode: automatic failover is paused$/,
    },
    {
      name: 'the standby is not promotable',
      state: lostState({ standbyPromotable: false }),
      req: PROMOTE,
      reason: /^pg2 is not promotable: it may lack acknowledged writes$/,
    },
    {
      name: 'the arbiter itself was paused (its last round is older than fence_timeout)',
      state: st({}, 0, DUE - A.fenceTimeoutMs - 1),
      req: PROMOTE,
      reason: /^the arbiter was paused; observing the primary afresh$/,
    },
    {
      name: 'the arbiter reached the primary failover_timeout - 1 ms ago',
      state: st({}, 1, DUE - 100),
      req: PROMOTE,
      reason: new RegExp(`^the arbiter reached primary pg1 ${DUE - 1} ms ago: it is not lost$`),
    },
  ];
  for (const c of refusals) {
    test(`refused: ${c.name}`, () => {
      const a = arbiterHandle(c.state, c.req, c.now ?? DUE, A);
      assert.equal(a.ok, false);
      assert.equal(a.changed, false);
      assert.match(a.reason, c.reason);
      assert.equal(a.state, c.state, 'a refusal returns the state unchanged');
    });
  }

  test('the arbiter round exactly fence_timeout ago is not a pause', () => {
    const a = arbiterHandle(st({}, 0, DUE - A.fenceTimeoutMs), PROMOTE, DUE, A);
    assert.equal(a.ok, true);
  });

  for (const profile of PROFILES) {
    const s = settingsOf(profile);
    test(`[${profile}] granted at exactly failover_timeout: term + 1, roles swapped, new standby not promotable`, () => {
      const prev = st({ term: 7, maintenance: false }, 1000, 1000 + s.failoverTimeoutMs - 10);
      const copy = structuredClone(prev);
      const now = 1000 + s.failoverTimeoutMs;
      const a = arbiterHandle(prev, { kind: 'promote', node: 'pg2', term: 7 }, now, s);
      assert.equal(a.ok, true);
      assert.equal(a.changed, true);
      assert.deepEqual(a.state.record, {
        term: 8,
        primary: 'pg2',
        standby: 'pg1',
        standbyPromotable: false,
        maintenance: false,
      });
      assert.equal(a.state.lastPrimaryOkAt, now, 'the new primary gets a full timeout');
      assert.equal(a.state.lastRoundAt, prev.lastRoundAt);
      assert.match(
        a.reason,
        new RegExp(
          `^granted term 8 to pg2: primary pg1 lost for ${s.failoverTimeoutMs} ms by the arbiter too$`,
        ),
      );
      assert.deepEqual(prev, copy, 'the previous state is not mutated');
    });

    test(`[${profile}] one ms earlier it is refused`, () => {
      const prev = st({}, 1000, 1000 + s.failoverTimeoutMs - 10);
      const a = arbiterHandle(prev, PROMOTE, 1000 + s.failoverTimeoutMs - 1, s);
      assert.equal(a.ok, false);
      assert.match(a.reason, /is not lost/);
    });
  }

  test('at most one grant per term: every later promote of the old term, or by anyone, is refused', () => {
    const first = arbiterHandle(lostState(), PROMOTE, DUE, A);
    assert.equal(first.ok, true);
    const after = first.state;
    // The same request again (a retry, or a duplicate in flight).
    const again = arbiterHandle(after, PROMOTE, DUE + 1, A);
    assert.equal(again.ok, false);
    assert.match(again.reason, /^pg2 is not the standby of record \(pg1\)$/);
    // The old primary with the old term.
    const oldPrimaryOldTerm = arbiterHandle(after, { kind: 'promote', node: 'pg1', term: 1 }, DUE + 1, A);
    assert.equal(oldPrimaryOldTerm.ok, false);
    assert.match(oldPrimaryOldTerm.reason, /^stale term 1: current term is 2$/);
    // The old primary with the new term, much later: not promotable (it was replaced, it may lack writes).
    const later = arbiterHandle(after, { kind: 'promote', node: 'pg1', term: 2 }, DUE + 100_000, A);
    assert.equal(later.ok, false);
    assert.match(later.reason, /not promotable/);
  });

  test('after the grant the new primary must itself be lost for failover_timeout', () => {
    const granted = arbiterHandle(lostState(), PROMOTE, DUE, A).state;
    const promotable = { ...granted, record: { ...granted.record, standbyPromotable: true } };
    const req: ArbiterRequest = { kind: 'promote', node: 'pg1', term: 2 };
    const early = arbiterHandle({ ...promotable, lastRoundAt: DUE + DUE - 100 }, req, DUE + DUE - 1, A);
    assert.equal(early.ok, false);
    assert.match(early.reason, /reached primary pg2/);
    const due = arbiterHandle({ ...promotable, lastRoundAt: DUE + DUE - 100 }, req, DUE + DUE, A);
    assert.equal(due.ok, true);
    assert.equal(due.state.record.term, 3);
    assert.equal(due.state.record.primary, 'pg1');
  });
});

describe('arbiterHandle: confirmPrimary', () => {
  test('the primary of record with the current term: ok, counted as reached now, record unchanged', () => {
    const prev = st({ term: 3 }, 0, 900);
    const a = arbiterHandle(prev, { kind: 'confirmPrimary', node: 'pg1', term: 3 }, 1000, A);
    assert.equal(a.ok, true);
    assert.equal(a.changed, false, 'nothing to persist');
    assert.equal(a.state.lastPrimaryOkAt, 1000);
    assert.deepEqual(a.state.record, prev.record);
    assert.match(a.reason, /^confirmed pg1 as primary of term 3$/);
  });

  test('a confirmation blocks a grant that would otherwise be due (no race with the unfence)', () => {
    const confirmed = arbiterHandle(lostState(), { kind: 'confirmPrimary', node: 'pg1', term: 1 }, DUE, A);
    const promote = arbiterHandle(confirmed.state, PROMOTE, DUE, A);
    assert.equal(promote.ok, false);
    assert.match(promote.reason, /reached primary pg1 0 ms ago/);
  });

  test("a grant first makes the old primary's confirmation fail (it stays fenced)", () => {
    const granted = arbiterHandle(lostState(), PROMOTE, DUE, A);
    const confirm = arbiterHandle(granted.state, { kind: 'confirmPrimary', node: 'pg1', term: 1 }, DUE, A);
    assert.equal(confirm.ok, false);
    assert.match(confirm.reason, /^pg1 is not the primary of record \(pg2, term 2\)$/);
  });

  const refusals: { name: string; req: ArbiterRequest; reason: RegExp }[] = [
    {
      name: 'the standby asks',
      req: { kind: 'confirmPrimary', node: 'pg2', term: 1 },
      reason: /^pg2 is not the primary of record \(pg1, term 1\)$/,
    },
    {
      name: 'a stale term',
      req: { kind: 'confirmPrimary', node: 'pg1', term: 0 },
      reason: /^stale term 0: current term is 1$/,
    },
  ];
  for (const c of refusals) {
    test(`refused: ${c.name}`, () => {
      const prev = st({}, 0, 900);
      const a = arbiterHandle(prev, c.req, 1000, A);
      assert.equal(a.ok, false);
      assert.equal(a.changed, false);
      assert.match(a.reason, c.reason);
      assert.equal(a.state.lastPrimaryOkAt, 0);
    });
  }
});

describe('arbiterHandle: setPromotable', () => {
  test('false: the record changes and must be persisted before the answer', () => {
    const a = arbiterHandle(
      st({ term: 2 }),
      { kind: 'setPromotable', node: 'pg1', term: 2, promotable: false },
      10,
      A,
    );
    assert.equal(a.ok, true);
    assert.equal(a.changed, true);
    assert.deepEqual(a.state.record, rec({ term: 2, standbyPromotable: false }));
    assert.match(a.reason, /^pg2 marked not promotable$/);
  });

  test('true: marked promotable', () => {
    const a = arbiterHandle(
      st({ standbyPromotable: false }),
      { kind: 'setPromotable', node: 'pg1', term: 1, promotable: true },
      10,
      A,
    );
    assert.equal(a.ok, true);
    assert.equal(a.state.record.standbyPromotable, true);
    assert.match(a.reason, /^pg2 marked promotable$/);
  });

  test('unchanged: ok, nothing to persist', () => {
    const prev = st();
    const a = arbiterHandle(prev, { kind: 'setPromotable', node: 'pg1', term: 1, promotable: true }, 10, A);
    assert.deepEqual([a.ok, a.changed, a.reason], [true, false, 'unchanged']);
    assert.equal(a.state, prev);
  });

  test('refused from the standby', () => {
    const a = arbiterHandle(st(), { kind: 'setPromotable', node: 'pg2', term: 1, promotable: false }, 10, A);
    assert.equal(a.ok, false);
    assert.match(a.reason, /^pg2 is not the primary of record \(pg1\)$/);
  });

  test('a replaced primary cannot drop sync: its setPromotable(false) with the old term is refused', () => {
    const granted = arbiterHandle(lostState(), PROMOTE, DUE, A).state;
    // Old primary, old term: not the primary of record any more.
    const a = arbiterHandle(
      granted,
      { kind: 'setPromotable', node: 'pg1', term: 1, promotable: false },
      DUE,
      A,
    );
    assert.equal(a.ok, false);
    assert.match(a.reason, /not the primary of record \(pg2\)/);
    // Even if its name matched, the stale term is refused.
    const b = arbiterHandle(
      st({ term: 2 }),
      { kind: 'setPromotable', node: 'pg1', term: 1, promotable: false },
      10,
      A,
    );
    assert.equal(b.ok, false);
    assert.match(b.reason, /^stale term 1: current term is 2$/);
  });
});

describe('arbiterHandle: handover (switchover)', () => {
  test('ok: term + 1, roles swapped, new standby not promotable, new primary counted as seen', () => {
    const prev = st({ term: 4 }, 0, 0);
    const a = arbiterHandle(prev, { kind: 'handover', node: 'pg1', to: 'pg2', term: 4, seq: 1 }, 777, A);
    assert.equal(a.ok, true);
    assert.equal(a.changed, true);
    assert.deepEqual(
      a.state.record,
      rec({ term: 5, primary: 'pg2', standby: 'pg1', standbyPromotable: false }),
    );
    assert.equal(a.state.lastPrimaryOkAt, 777);
    assert.match(a.reason, /^switchover: term 5 handed from pg1 to pg2$/);
  });

  const refusals: { name: string; req: ArbiterRequest; reason: RegExp }[] = [
    {
      name: 'from the standby',
      req: { kind: 'handover', node: 'pg2', to: 'pg1', term: 1, seq: 1 },
      reason: /^pg2 is not the primary of record \(pg1\)$/,
    },
    {
      name: 'a stale term',
      req: { kind: 'handover', node: 'pg1', to: 'pg2', term: 0, seq: 1 },
      reason: /^stale term 0: current term is 1$/,
    },
    {
      name: 'to a node that is not the standby',
      req: { kind: 'handover', node: 'pg1', to: 'pg3', term: 1, seq: 1 },
      reason: /^pg3 is not the standby of record \(pg2\)$/,
    },
    {
      name: 'to itself',
      req: { kind: 'handover', node: 'pg1', to: 'pg1', term: 1, seq: 1 },
      reason: /^pg1 is not the standby of record \(pg2\)$/,
    },
  ];
  for (const c of refusals) {
    test(`refused: ${c.name}`, () => {
      const prev = st();
      const a = arbiterHandle(prev, c.req, 10, A);
      assert.deepEqual([a.ok, a.changed], [false, false]);
      assert.match(a.reason, c.reason);
      assert.equal(a.state, prev);
    });
  }

  test('a handover sent before a confirmation of its sender is void (it arrived late: the sender gave up on it)', () => {
    // pg1 sent handover 1, heard nothing, and asked to serve again: the confirmation voids 1.
    const confirmed = arbiterHandle(
      st(),
      { kind: 'confirmPrimary', node: 'pg1', term: 1, voidHandoversUpTo: 1 },
      4000,
      A,
    );
    assert.equal(confirmed.ok, true);
    const late = arbiterHandle(
      confirmed.state,
      { kind: 'handover', node: 'pg1', to: 'pg2', term: 1, seq: 1 },
      4100,
      A,
    );
    assert.deepEqual([late.ok, late.cause, late.changed], [false, 'stale_request', false]);
    assert.match(late.reason, /^stale handover 1 of pg1: it has been confirmed as primary since it sent it/);
    assert.equal(late.state.record.term, 1);
    // A new switchover's handover (numbered after it) still goes through.
    const next = arbiterHandle(
      confirmed.state,
      { kind: 'handover', node: 'pg1', to: 'pg2', term: 1, seq: 2 },
      4200,
      A,
    );
    assert.deepEqual([next.ok, next.state.record.term, next.state.record.primary], [true, 2, 'pg2']);
    // A later confirmation naming fewer handovers does not lower what is void.
    const lower = arbiterHandle(
      confirmed.state,
      { kind: 'confirmPrimary', node: 'pg1', term: 1, voidHandoversUpTo: 0 },
      4300,
      A,
    );
    assert.equal(lower.state.voidHandoversUpTo?.pg1, 1);
    // Without a confirmation in between, handover 1 is taken (the normal switchover).
    assert.equal(
      arbiterHandle(st(), { kind: 'handover', node: 'pg1', to: 'pg2', term: 1, seq: 1 }, 10, A).ok,
      true,
    );
  });

  test('a second handover with the old term is refused', () => {
    const first = arbiterHandle(st(), { kind: 'handover', node: 'pg1', to: 'pg2', term: 1, seq: 1 }, 10, A);
    const again = arbiterHandle(
      first.state,
      { kind: 'handover', node: 'pg1', to: 'pg2', term: 1, seq: 1 },
      11,
      A,
    );
    assert.equal(again.ok, false);
  });
});

describe('arbiterHandle: maintenance', () => {
  test('on, then off: each changes the record', () => {
    const on = arbiterHandle(st(), { kind: 'maintenance', enabled: true }, 10, A);
    assert.deepEqual([on.ok, on.changed, on.reason], [true, true, 'maintenance on']);
    assert.equal(on.state.record.maintenance, true);
    const off = arbiterHandle(on.state, { kind: 'maintenance', enabled: false }, 20, A);
    assert.deepEqual([off.ok, off.changed, off.reason], [true, true, 'maintenance off']);
    assert.equal(off.state.record.maintenance, false);
    assert.equal(off.state.record.term, 1, 'no new term');
  });

  test('unchanged: ok, nothing to persist', () => {
    const prev = st({ maintenance: true });
    const a = arbiterHandle(prev, { kind: 'maintenance', enabled: true }, 10, A);
    assert.deepEqual([a.ok, a.changed, a.reason], [true, false, 'unchanged']);
  });
});

describe('arbiterHandle: forceFailover', () => {
  test('granted without checks (not promotable, primary just seen, maintenance), loudly', () => {
    const prev = st({ standbyPromotable: false, maintenance: true, term: 2 }, 1000, 1000);
    const a = arbiterHandle(prev, { kind: 'forceFailover', to: 'pg2' }, 1000, A);
    assert.equal(a.ok, true);
    assert.equal(a.changed, true);
    assert.deepEqual(a.state.record, {
      term: 3,
      primary: 'pg2',
      standby: 'pg1',
      standbyPromotable: false,
      maintenance: true,
    });
    assert.match(
      a.reason,
      /^FORCED failover: term 3 given to pg2 without checks; writes acknowledged by pg1 may be lost$/,
    );
  });

  test('refused to a node that is not the standby', () => {
    for (const to of ['pg1', 'pg3']) {
      const a = arbiterHandle(st(), { kind: 'forceFailover', to }, 10, A);
      assert.equal(a.ok, false);
      assert.match(a.reason, new RegExp(`^${to} is not the standby of record \\(pg2\\)$`));
    }
  });
});

describe('arbiter over a simulated clock', () => {
  for (const profile of PROFILES) {
    const s = settingsOf(profile);
    const pi = TIMING_PROFILES[profile].probe_interval;

    test(`[${profile}] primary lost at t=0, standby asks every round: the first grant is at the first round >= failover_timeout`, () => {
      let state = initialArbiterState(rec(), 0);
      const answers: { now: number; ok: boolean }[] = [];
      for (let now = pi; now <= 3 * s.failoverTimeoutMs; now += pi) {
        state = arbiterObserve(state, probeOf(state, false, now), now, s);
        const a = arbiterHandle(state, { kind: 'promote', node: 'pg2', term: 1 }, now, s);
        answers.push({ now, ok: a.ok });
        state = a.state;
      }
      const grants = answers.filter((a) => a.ok);
      assert.equal(grants.length, 1, 'exactly one grant');
      assert.equal(grants[0]?.now, Math.ceil(s.failoverTimeoutMs / pi) * pi);
      assert.equal(state.record.term, 2);
    });

    test(`[${profile}] a primary that answers once resets the wait`, () => {
      let state = initialArbiterState(rec(), 0);
      const seenAt = 2 * pi;
      let granted: number | null = null;
      for (let now = pi; now <= 4 * s.failoverTimeoutMs && granted === null; now += pi) {
        state = arbiterObserve(state, probeOf(state, now === seenAt, now), now, s);
        const a = arbiterHandle(state, PROMOTE, now, s);
        if (a.ok) granted = now;
        state = a.state;
      }
      assert.equal(granted, seenAt + Math.ceil(s.failoverTimeoutMs / pi) * pi);
    });

    test(`[${profile}] paused arbiter: refuses at once after waking, then waits a full failover_timeout of its own`, () => {
      let state = initialArbiterState(rec(), 0);
      // The primary is lost from t=0; the arbiter is frozen from pi to 10 s.
      state = arbiterObserve(state, probeOf(state, false, pi), pi, s);
      const wake = 10_000;
      const first = arbiterHandle(state, PROMOTE, wake, s);
      assert.equal(first.ok, false);
      assert.match(first.reason, /the arbiter was paused/);
      let granted: number | null = null;
      for (let now = wake; now <= wake + 3 * s.failoverTimeoutMs && granted === null; now += pi) {
        state = arbiterObserve(state, probeOf(state, false, now), now, s);
        const a = arbiterHandle(state, PROMOTE, now, s);
        if (a.ok) granted = now;
        state = a.state;
      }
      assert.equal(granted, wake + Math.ceil(s.failoverTimeoutMs / pi) * pi);
    });
  }
});

describe('arbiterHandle: adopt (a failover forced while the arbiter was unreachable)', () => {
  const s0 = () =>
    initialArbiterState(
      { term: 3, primary: 'pg1', standby: 'pg2', standbyPromotable: true, maintenance: false },
      0,
    );
  const newer = { term: 4, primary: 'pg2', standby: 'pg1', standbyPromotable: false, maintenance: false };
  test('a newer record from an agent is adopted', () => {
    const a = arbiterHandle(s0(), { kind: 'adopt', record: newer }, 100, A);
    assert.equal(a.ok, true);
    assert.equal(a.changed, true);
    assert.deepEqual(a.state.record, newer);
    // The old primary's term is now stale everywhere.
    const c = arbiterHandle(a.state, { kind: 'confirmPrimary', node: 'pg1', term: 3 }, 200, A);
    assert.equal(c.ok, false);
  });
  test('the same or an older term is refused, and so are unknown nodes', () => {
    assert.equal(arbiterHandle(s0(), { kind: 'adopt', record: { ...newer, term: 3 } }, 100, A).ok, false);
    assert.equal(arbiterHandle(s0(), { kind: 'adopt', record: { ...newer, term: 2 } }, 100, A).ok, false);
    const odd = arbiterHandle(s0(), { kind: 'adopt', record: { ...newer, primary: 'pg9' } }, 100, A);
    assert.equal(odd.ok, false);
    assert.match(odd.reason, /unknown nodes/);
    assert.equal(
      arbiterHandle(s0(), { kind: 'adopt', record: { ...newer, standby: 'pg2' } }, 100, A).ok,
      false,
    );
  });
});

describe('arbiter answers carry a structured event kind; a confirmation is a vouch', () => {
  test('grant, refusal, confirm, handover, forced, maintenance, promotable, adopt', () => {
    const due = st({}, 0, DUE - 100);
    assert.equal(arbiterHandle(due, PROMOTE, DUE, A).event, 'grant');
    const refused = arbiterHandle(st(), PROMOTE, 100, A);
    assert.equal(refused.event, 'refusal');
    assert.equal(refused.cause, 'primary_reached', 'a refusal carries its cause as a code');
    const c = arbiterHandle(st({}, 0, 0), { kind: 'confirmPrimary', node: 'pg1', term: 1 }, 700, A);
    assert.equal(c.event, 'confirm');
    assert.deepEqual(c.state.vouch, { node: 'pg1', at: 700 });
    assert.equal(
      arbiterHandle(st(), { kind: 'handover', node: 'pg1', to: 'pg2', term: 1, seq: 1 }, 1, A).event,
      'handover',
    );
    assert.equal(arbiterHandle(st(), { kind: 'forceFailover', to: 'pg2' }, 1, A).event, 'forced');
    assert.equal(arbiterHandle(st(), { kind: 'maintenance', enabled: true }, 1, A).event, 'maintenance');
    assert.equal(arbiterHandle(st(), { kind: 'maintenance', enabled: false }, 1, A).event, 'unchanged');
    assert.equal(
      arbiterHandle(st(), { kind: 'setPromotable', node: 'pg1', term: 1, promotable: false }, 1, A).event,
      'promotable',
    );
    const adopt = arbiterHandle(
      st(),
      { kind: 'adopt', record: rec({ term: 2, primary: 'pg2', standby: 'pg1' }) },
      1,
      A,
    );
    assert.equal(adopt.event, 'adopt');
    assert.equal(adopt.state.vouch, null, 'a new term starts without a vouch');
  });
});
