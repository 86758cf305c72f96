import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  acksAfterNewerTerm,
  dualPrimaryWindows,
  healthyIn,
  judgeSchedule,
  mergeTerms,
  monotonicViolations,
  type NodeSample,
  type Sample,
  type ScheduleObservation,
  termsFromArbiterLog,
} from '../../src/soak/checker.js';
import { generatePlan, generateSchedule, validatePlan } from '../../src/soak/schedule.js';
import { prng } from '../../src/util/prng.js';
import type { TxEntry } from '../../src/workload/ledger.js';

const T0 = Date.parse('2026-01-01T00:00:00.000Z');

function node(o: Partial<NonNullable<NodeSample['agent']>> & { pg?: boolean | null } = {}): NodeSample {
  const { pg = null, ...agent } = o;
  return {
    agent: {
      term: 1,
      recordPrimary: 'pg1',
      role: 'standby',
      phase: 'standby',
      fenced: false,
      inRecovery: true,
      receiving: true,
      timeline: 1,
      ...agent,
    },
    pgInRecovery: pg,
  };
}

function sample(t: number, pg1: NodeSample, pg2: NodeSample, term = 1, primary = 'pg1'): Sample {
  return {
    t: T0 + t,
    arbiter: {
      term,
      primary,
      standby: primary === 'pg1' ? 'pg2' : 'pg1',
      promotable: true,
      maintenance: false,
    },
    nodes: { pg1, pg2 },
  };
}

const primary = (o = {}) =>
  node({ role: 'primary', phase: 'primary', inRecovery: false, receiving: false, pg: false, ...o });
const standby = (o = {}) => node({ pg: true, ...o });

test('the same seed and index give the same schedule; another seed another one', () => {
  const a = generateSchedule(1, 0, { timing: 'default' });
  assert.deepEqual(generateSchedule(1, 0, { timing: 'default' }), a);
  assert.notDeepEqual(generateSchedule(2, 0, { timing: 'default' }), a);
  // Schedule 5 does not depend on whether 0..4 were drawn first.
  assert.deepEqual(
    generatePlan(7, 6, { sync: 'off', timing: 'fast', mode: 'subnet' }).schedules[5],
    generateSchedule(7, 5, { timing: 'fast' }),
  );
});

test('prng: deterministic, in [0, 1)', () => {
  const r = prng(42);
  const xs = Array.from({ length: 1000 }, r);
  assert.deepEqual(Array.from({ length: 1000 }, prng(42)), xs);
  assert.ok(xs.every((x) => x >= 0 && x < 1));
  assert.ok(new Set(xs).size > 990);
});

test('schedules: 1..4 faults in the window, sorted, durations both shorter and longer than failover_timeout, the whole catalogue drawn', () => {
  const kinds = new Set<string>();
  let short = 0;
  let long = 0;
  for (let i = 0; i < 300; i++) {
    const s = generateSchedule(3, i, { timing: 'default' });
    assert.ok(s.faults.length >= 1 && s.faults.length <= 4);
    for (let j = 1; j < s.faults.length; j++)
      assert.ok((s.faults[j]?.atMs ?? 0) >= (s.faults[j - 1]?.atMs ?? 0));
    for (const f of s.faults) {
      kinds.add(f.kind);
      assert.ok(f.atMs >= 0 && f.atMs <= 12_000);
      if (f.durationMs > 0 && f.durationMs < 3000) short++;
      if (f.durationMs > 3000) long++;
      if ('peer' in f) assert.notEqual(f.peer, f.target);
    }
  }
  assert.ok(short > 50 && long > 50, `short ${short} long ${long}`);
  assert.equal(kinds.size, 13, [...kinds].join(' '));
});

test('validatePlan: a saved plan round-trips, anything else is refused with a reason', () => {
  const p = generatePlan(1, 2, { sync: 'remote_apply', timing: 'default', mode: 'link-down' });
  assert.deepEqual(validatePlan(JSON.parse(JSON.stringify(p)), 'f'), p);
  assert.throws(() => validatePlan({}, 'f'), /not a soak plan/);
  assert.throws(() => validatePlan({ ...p, schedules: [] }, 'f'), /no schedules/);
  assert.throws(
    () =>
      validatePlan(
        { ...p, schedules: [{ index: 0, faults: [{ kind: 'meteor', atMs: 0, durationMs: 1 }] }] },
        'f',
      ),
    /not valid/,
  );
});

test('dual primaries: consecutive samples where both nodes answer clients as writable', () => {
  const s = [
    sample(0, primary(), standby()),
    sample(500, primary(), primary()),
    sample(1000, primary(), primary()),
    sample(1500, primary({ pg: null }), primary()), // the old one fenced: refuses clients
    sample(2000, primary(), primary()),
  ];
  assert.deepEqual(dualPrimaryWindows(s), [
    { from: T0 + 500, to: T0 + 1000, ms: 500 },
    { from: T0 + 2000, to: T0 + 2000, ms: 0 },
  ]);
  assert.deepEqual(dualPrimaryWindows([sample(0, primary(), standby())]), []);
});

test('terms and timelines may only grow', () => {
  const ok = [
    sample(0, primary(), standby()),
    sample(500, primary({ term: 2 }), standby({ term: 2, timeline: 2 }), 2),
  ];
  assert.deepEqual(monotonicViolations(ok), []);
  const bad = [...ok, sample(1000, primary({ term: 1 }), standby({ term: 2, timeline: 1 }), 2)];
  const v = monotonicViolations(bad);
  assert.equal(v.length, 2);
  assert.match(v[0] ?? '', /pg1's term went down from 2 to 1/);
  assert.match(v[1] ?? '', /pg2's timeline went down from 2 to 1/);
  const arb = [sample(0, primary(), standby(), 3), sample(500, primary(), standby(), 2)];
  assert.match(monotonicViolations(arb)[0] ?? '', /arbiter's term went down/);
});

test('healthyIn: primary writable, standby streaming and promotable, nobody fenced', () => {
  assert.deepEqual(healthyIn(sample(0, primary(), standby())), { primary: 'pg1', standby: 'pg2', term: 1 });
  assert.equal(healthyIn(sample(0, primary({ fenced: true }), standby())), undefined);
  assert.equal(healthyIn(sample(0, primary(), standby({ receiving: false }))), undefined);
  const notPromotable = sample(0, primary(), standby());
  if (notPromotable.arbiter) notPromotable.arbiter.promotable = false;
  assert.equal(healthyIn(notPromotable), undefined);
  assert.equal(healthyIn({ ...sample(0, primary(), standby()), arbiter: null }), undefined);
});

test('terms from the arbiter log: the first line of each term, forced failovers marked', () => {
  const line = (time: string, msg: string, term: number, p: string) =>
    JSON.stringify({
      level: 'info',
      time,
      msg,
      record: { term, primary: p, standby: 'x', standbyPromotable: true, maintenance: false },
    });
  const log = [
    line('2026-01-01T00:00:00.000Z', 'setPromotable: ok', 1, 'pg1'),
    'not json',
    line('2026-01-01T00:00:05.000Z', 'promote: granted', 2, 'pg2'),
    line('2026-01-01T00:00:06.000Z', 'confirmPrimary: ok', 2, 'pg2'),
    line('2026-01-01T00:00:09.000Z', 'forceFailover: forced', 3, 'pg1'),
    // A failover forced through an agent while the arbiter was away: the arbiter adopts its term.
    line('2026-01-01T00:00:11.000Z', 'adopt: adopted term 4 (primary pg2) from an agent', 4, 'pg2'),
  ].join('\n');
  assert.deepEqual(termsFromArbiterLog(log), [
    { term: 1, primary: 'pg1', at: T0, forced: false },
    { term: 2, primary: 'pg2', at: T0 + 5000, forced: false },
    { term: 3, primary: 'pg1', at: T0 + 9000, forced: true },
    { term: 4, primary: 'pg2', at: T0 + 11_000, forced: true },
  ]);
  // A term only an agent showed is added; an agent's earlier sighting of an adopted term moves its
  // time back and keeps it forced (the agent took it before the arbiter was back).
  const merged = mergeTerms(termsFromArbiterLog(log), [
    { term: 4, primary: 'pg2', at: T0 + 10_000, forced: false },
    { term: 5, primary: 'pg1', at: T0 + 12_000, forced: false },
  ]);
  assert.deepEqual(
    merged.map((g) => [g.term, g.at - T0, g.forced]),
    [
      [1, 0, false],
      [2, 5000, false],
      [3, 9000, true],
      [4, 10_000, true],
      [5, 12_000, false],
    ],
  );
});

function tx(id: string, server: string, t: number, ms: number, outcome: TxEntry['outcome'] = 'ack'): TxEntry {
  return { type: 'tx', id, session: 0, seq: 0, outcome, t: T0 + t, ms, server };
}

test('invariant 1 on the ledger: an ack by a node whose transaction began after a newer term went to the other', () => {
  const terms = [
    { term: 1, primary: 'pg1', at: T0, forced: false },
    { term: 2, primary: 'pg2', at: T0 + 5000, forced: false },
  ];
  const nodeOf = (s: string) =>
    s.startsWith('10.0.0.11') ? 'pg1' : s.startsWith('10.0.0.12') ? 'pg2' : null;
  const txs = [
    tx('a', '10.0.0.11:5432', 4000, 10), // pg1 in term 1: fine
    tx('b', '10.0.0.11:5432', 5200, 400), // began 4800, before the grant: a late ack, not counted
    tx('c', '10.0.0.11:5432', 6000, 100), // began 5900 on pg1 after term 2 went to pg2: violation
    tx('d', '10.0.0.12:5432', 6000, 100), // pg2 in term 2: fine
    tx('e', '10.0.0.11:5432', 7000, 10, 'unknown'), // not acknowledged
  ];
  const late = acksAfterNewerTerm(txs, terms, nodeOf);
  assert.equal(late.length, 1);
  assert.equal(late[0]?.id, 'c');
  assert.equal(late[0]?.grantedTo, 'pg2');
});

function obs(o: Partial<ScheduleObservation> = {}): ScheduleObservation {
  return {
    sync: 'remote_apply',
    promisesNoLoss: true,
    samples: [sample(0, primary(), standby())],
    lateAcks: [],
    acknowledged: 100,
    lost: 0,
    torn: 0,
    unexpected: 0,
    forcedFailover: false,
    healMs: 5000,
    healBoundMs: 60_000,
    deadDaemons: [],
    acksAfterHeal: 10,
    dualPrimaryBoundMs: 3000,
    ...o,
  };
}

test('judgeSchedule: a clean schedule passes; each broken promise is a violation', () => {
  assert.deepEqual(judgeSchedule(obs()).violations, []);
  assert.match(judgeSchedule(obs({ lost: 2 })).violations.join(), /2 acknowledged row\(s\) lost/);
  // With off the loss is counted (in the table), not a violation.
  assert.deepEqual(judgeSchedule(obs({ lost: 2, sync: 'off', promisesNoLoss: false })).violations, []);
  assert.match(judgeSchedule(obs({ healMs: null })).violations.join(), /within 60.0 s/);
  assert.match(judgeSchedule(obs({ acksAfterHeal: 0 })).violations.join(), /after the cluster healed/);
  assert.match(
    judgeSchedule(obs({ deadDaemons: ['agent-pg2'] })).violations.join(),
    /agent-pg2 is not running/,
  );
  assert.match(judgeSchedule(obs({ torn: 1 })).violations.join(), /torn/);
  const late = {
    id: 'x',
    node: 'pg1',
    beganAt: T0,
    ackAt: T0,
    term: 2,
    grantedTo: 'pg2',
    grantedAt: T0,
    forced: false,
  };
  assert.match(judgeSchedule(obs({ lateAcks: [late] })).violations.join(), /after a newer term was granted/);
  // A forced failover is documented to risk both: shown, not a violation.
  const forced = judgeSchedule(obs({ lateAcks: [{ ...late, forced: true }], lost: 1, forcedFailover: true }));
  assert.deepEqual(forced.violations, []);
  assert.equal(forced.excused.length, 2);
  const dual = [sample(0, primary(), primary()), sample(4000, primary(), primary())];
  assert.match(
    judgeSchedule(obs({ samples: dual })).violations.join(),
    /two unfenced writable primaries for 4.0 s/,
  );
  const brief = [sample(0, primary(), primary()), sample(500, primary(), primary())];
  assert.deepEqual(judgeSchedule(obs({ samples: brief })).violations, []);
});
