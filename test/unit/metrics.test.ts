// The metric update functions (src/metrics/): after a simulated round or answer, the registry's
// text output holds the series with the right values.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { AgentStatus } from '../../src/api/protocol.js';
import { AgentMetrics } from '../../src/metrics/agent.js';
import { ArbiterMetrics } from '../../src/metrics/arbiter.js';
import { EVENT_LOOP_SAMPLE_MS, timed } from '../../src/metrics/common.js';

/** Parses Prometheus' text format: `name{labels}` -> value (labels as printed, sorted as is). */
function parse(text: string): Map<string, number> {
  const m = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const cut = line.lastIndexOf(' ');
    m.set(line.slice(0, cut), Number(line.slice(cut + 1)));
  }
  return m;
}

function value(series: Map<string, number>, key: string): number {
  assert.ok(series.has(key), `series ${key} missing; have: ${[...series.keys()].join(', ')}`);
  return series.get(key) as number;
}

function status(over: Partial<AgentStatus> = {}): AgentStatus {
  const record = { term: 3, primary: 'pg1', standby: 'pg2', standbyPromotable: true, maintenance: false };
  return {
    node: 'pg1',
    host: '10.0.0.1',
    role: 'primary',
    phase: 'primary',
    rule: 'serve',
    term: 3,
    record,
    postgres: { up: true, inRecovery: false, receiving: false, timeline: 4, lsn: '0/3000000' },
    replication: {
      peerState: 'streaming',
      syncState: 'sync',
      replayLagBytes: 1234,
      syncNames: 'pg2',
      commitsWaitingMs: 1500,
    },
    fenced: false,
    fence: { count: 0, lastMs: null, overruns: 0, budgetMs: 500 },
    reach: { arbiter: true, peerAgent: false, primaryPostgres: null },
    lastRejoin: null,
    busy: null,
    updatedAt: new Date().toISOString(),
    ...over,
  };
}

test('agent: a round sets role, term, timeline, fence, PostgreSQL, reachability, lag, sync', async () => {
  const m = new AgentMetrics();
  m.round(status(), 0.02);
  const s = parse(await m.text());
  assert.equal(value(s, 'pgarbiter_role{role="primary"}'), 1);
  assert.equal(value(s, 'pgarbiter_role{role="standby"}'), 0);
  assert.equal(value(s, 'pgarbiter_phase{phase="primary"}'), 1);
  assert.equal(value(s, 'pgarbiter_term'), 3);
  assert.equal(value(s, 'pgarbiter_timeline'), 4);
  assert.equal(value(s, 'pgarbiter_fenced'), 0);
  assert.equal(value(s, 'pgarbiter_postgres_up'), 1);
  assert.equal(value(s, 'pgarbiter_postgres_in_recovery'), 0);
  assert.equal(value(s, 'pgarbiter_peer_reachable{peer="arbiter"}'), 1);
  assert.equal(value(s, 'pgarbiter_peer_reachable{peer="peer_agent"}'), 0);
  assert.ok(!s.has('pgarbiter_peer_reachable{peer="primary_postgres"}'), 'the primary does not probe itself');
  assert.equal(value(s, 'pgarbiter_replication_lag_bytes'), 1234);
  assert.equal(value(s, 'pgarbiter_replication_sync_state{state="sync"}'), 1);
  assert.equal(value(s, 'pgarbiter_replication_sync_state{state="none"}'), 0);
  assert.equal(value(s, 'pgarbiter_synchronous_standby_names_set'), 1);
  assert.equal(value(s, 'pgarbiter_commits_waiting_seconds'), 1.5);
  assert.equal(value(s, 'pgarbiter_round_duration_seconds_count'), 1);
  assert.equal(value(s, 'pgarbiter_round_duration_seconds_bucket{le="0.025"}'), 1);
  assert.equal(value(s, 'pgarbiter_round_duration_seconds_bucket{le="0.01"}'), 0);
  // The probe histogram exists for every target before the first probe.
  assert.equal(value(s, 'pgarbiter_probe_duration_seconds_count{target="arbiter"}'), 0);
});

test('agent: the next round replaces the state (standby, unknown values are NaN, one phase)', async () => {
  const m = new AgentMetrics();
  m.round(status(), 0.01);
  m.round(
    status({
      role: 'standby',
      phase: 'rejoining',
      term: 4,
      fenced: true,
      postgres: { up: false, inRecovery: null, receiving: false, timeline: null, lsn: null },
      replication: {
        peerState: null,
        syncState: null,
        replayLagBytes: null,
        syncNames: null,
        commitsWaitingMs: 0,
      },
      reach: { arbiter: false, peerAgent: true, primaryPostgres: true },
    }),
    0.01,
  );
  const s = parse(await m.text());
  assert.equal(value(s, 'pgarbiter_role{role="standby"}'), 1);
  assert.equal(value(s, 'pgarbiter_role{role="primary"}'), 0);
  assert.equal(value(s, 'pgarbiter_phase{phase="rejoining"}'), 1);
  assert.ok(!s.has('pgarbiter_phase{phase="primary"}'), 'only the current phase');
  assert.equal(value(s, 'pgarbiter_term'), 4);
  assert.equal(value(s, 'pgarbiter_fenced'), 1);
  assert.ok(Number.isNaN(value(s, 'pgarbiter_timeline')));
  assert.ok(Number.isNaN(value(s, 'pgarbiter_postgres_in_recovery')));
  assert.ok(Number.isNaN(value(s, 'pgarbiter_replication_lag_bytes')));
  assert.equal(value(s, 'pgarbiter_replication_sync_state{state="none"}'), 1);
  assert.equal(value(s, 'pgarbiter_peer_reachable{peer="primary_postgres"}'), 1);
  assert.equal(value(s, 'pgarbiter_round_duration_seconds_count'), 2);
});

test('agent: actions count fences (by rule), overruns, unfences, promotions, rejoins, starts', async () => {
  const m = new AgentMetrics();
  m.started(3);
  m.fenceDone('fence-isolated', { fenced: true, ms: 80, overran: false });
  m.fenceDone('fence-isolated', { fenced: true, ms: 700, overran: true });
  m.fenceDone('step-down', { fenced: false, ms: 10, overran: false });
  m.unfenced('unfence-confirmed');
  m.promoted('promote-on-record');
  m.rejoined('rewind');
  m.postgresStarted('start-standby');
  m.probe('arbiter', 0.002);
  const s = parse(await m.text());
  assert.equal(value(s, 'pgarbiter_agent_starts_total'), 3);
  assert.equal(value(s, 'pgarbiter_fences_total{rule="fence-isolated"}'), 2);
  assert.equal(value(s, 'pgarbiter_fence_failures_total{rule="step-down"}'), 1);
  assert.equal(value(s, 'pgarbiter_fence_overruns_total'), 1);
  assert.equal(value(s, 'pgarbiter_fence_duration_seconds_count'), 3);
  assert.equal(value(s, 'pgarbiter_unfences_total{rule="unfence-confirmed"}'), 1);
  assert.equal(value(s, 'pgarbiter_promotions_total{rule="promote-on-record"}'), 1);
  assert.equal(value(s, 'pgarbiter_rejoins_total{method="rewind"}'), 1);
  assert.equal(value(s, 'pgarbiter_rejoins_total{method="basebackup"}'), 0);
  assert.equal(value(s, 'pgarbiter_postgres_starts_total{rule="start-standby"}'), 1);
  assert.equal(value(s, 'pgarbiter_probe_duration_seconds_count{target="arbiter"}'), 1);
  assert.equal(value(s, 'pgarbiter_probe_duration_seconds_bucket{le="0.0025",target="arbiter"}'), 1);
});

test('each process has its own registry: two instances do not share series; process metrics on request', async () => {
  const a = new AgentMetrics();
  const b = new AgentMetrics({ processMetrics: true });
  a.promoted('promote-on-record');
  assert.ok(!(await b.text()).includes('pgarbiter_promotions_total{'));
  assert.ok((await b.text()).includes('process_cpu_seconds_total'));
  assert.ok(!(await a.text()).includes('process_cpu_seconds_total'));
});

test('the event-loop lag metric, sampled every EVENT_LOOP_SAMPLE_MS instead of 10 ms, still shows a stall', async () => {
  const m = new AgentMetrics({ processMetrics: true });
  await m.text(); // the lag histogram restarts at each collection
  await new Promise((r) => setTimeout(r, 2 * EVENT_LOOP_SAMPLE_MS));
  const until = performance.now() + 3 * EVENT_LOOP_SAMPLE_MS;
  while (performance.now() < until); // the loop stalls for 300 ms
  await new Promise((r) => setTimeout(r, 2 * EVENT_LOOP_SAMPLE_MS));
  const max = value(parse(await m.text()), 'nodejs_eventloop_lag_max_seconds');
  assert.ok(max >= (2 * EVENT_LOOP_SAMPLE_MS) / 1000, `lag max ${max} s after a 300 ms stall`);
});

test('arbiter: rounds and answers; refusals labelled by request and a bounded cause', async () => {
  const m = new ArbiterMetrics();
  const record = { term: 1, primary: 'pg1', standby: 'pg2', standbyPromotable: true, maintenance: false };
  m.round(record, true, 0.1, { pg1: true, pg2: false }, 0.003);
  let s = parse(await m.text());
  assert.equal(value(s, 'pgarbiter_term'), 1);
  assert.equal(value(s, 'pgarbiter_primary_reachable'), 1);
  assert.equal(value(s, 'pgarbiter_standby_promotable'), 1);
  assert.equal(value(s, 'pgarbiter_maintenance'), 0);
  assert.equal(value(s, 'pgarbiter_agent_reachable{node="pg2"}'), 0);
  assert.equal(value(s, 'pgarbiter_grants_total'), 0);
  m.answer('promote', 'refusal', 'primary_reached', 1);
  m.answer('promote', 'refusal', 'primary_reached', 1);
  m.answer('confirmPrimary', 'refusal', 'stale_term', 2);
  m.answer('promote', 'grant', undefined, 2);
  m.answer('handover', 'handover', undefined, 3);
  m.answer('forceFailover', 'forced', undefined, 4);
  m.answer('adopt', 'adopt', undefined, 5);
  m.answer('maintenance', 'maintenance', undefined, 5);
  s = parse(await m.text());
  assert.equal(value(s, 'pgarbiter_term'), 5);
  assert.equal(value(s, 'pgarbiter_grants_total'), 1);
  assert.equal(value(s, 'pgarbiter_handovers_total'), 1);
  assert.equal(value(s, 'pgarbiter_forced_failovers_total'), 1);
  assert.equal(value(s, 'pgarbiter_adoptions_total'), 1);
  assert.equal(value(s, 'pgarbiter_refusals_total{request="promote",cause="primary_reached"}'), 2);
  assert.equal(value(s, 'pgarbiter_refusals_total{request="confirmPrimary",cause="stale_term"}'), 1);
  assert.equal(value(s, 'pgarbiter_requests_total{request="maintenance",event="maintenance"}'), 1);
  assert.equal(value(s, 'pgarbiter_round_duration_seconds_count'), 1);
});

test('timed reports the duration whether the promise resolves or rejects', async () => {
  const seen: number[] = [];
  assert.equal(await timed(Promise.resolve(7), (s) => seen.push(s)), 7);
  await assert.rejects(timed(Promise.reject(new Error('x')), (s) => seen.push(s)));
  assert.equal(seen.length, 2);
  assert.ok(seen.every((s) => s >= 0 && s < 1));
});
