import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { AgentStatus } from '../../src/api/protocol.js';
import { followSwitchover, type SwitchoverProgress } from '../../src/cluster/switchover.js';
import { type ClusterView, nodeState } from '../../src/cluster/view.js';

function status(
  over: Partial<AgentStatus> = {},
  replication: Partial<AgentStatus['replication']> = {},
): AgentStatus {
  return {
    node: 'pg1',
    host: '10.0.0.1',
    role: 'primary',
    phase: 'primary',
    rule: 'serve',
    term: 1,
    record: { term: 1, primary: 'pg1', standby: 'pg2', standbyPromotable: true, maintenance: false },
    postgres: { up: true, inRecovery: false, receiving: false, timeline: 1, lsn: '0/3000000' },
    replication: {
      peerState: 'streaming',
      syncState: 'sync',
      replayLagBytes: 0,
      syncNames: 'pg2',
      commitsWaitingMs: 0,
      ...replication,
    },
    fenced: false,
    reach: { arbiter: true, peerAgent: true, primaryPostgres: null },
    lastRejoin: null,
    busy: null,
    updatedAt: '2026-11-23T00:00:00.000Z',
    ...over,
  };
}

test('status: a primary whose commits wait for the standby says so from 1 s on', () => {
  assert.equal(nodeState(status()), 'running (rw)');
  assert.equal(nodeState(status({}, { commitsWaitingMs: 999 })), 'running (rw)');
  assert.equal(
    nodeState(status({}, { commitsWaitingMs: 2340 })),
    'running (rw), commits wait 2.3 s for sync',
  );
});

test('status: the other states, in order of precedence', () => {
  assert.equal(nodeState(null), 'unreachable');
  assert.equal(nodeState(status({ busy: 'rejoining' })), 'rejoining');
  assert.equal(nodeState(status({ postgres: { ...status().postgres, up: false } })), 'postgres down');
  assert.equal(nodeState(status({ fenced: true })), 'FENCED');
  assert.equal(nodeState(status({ role: 'standby' })), 'STALE PRIMARY');
  const standby = { ...status().postgres, inRecovery: true, receiving: true };
  assert.equal(nodeState(status({ role: 'standby', postgres: standby })), 'streaming');
  assert.equal(
    nodeState(status({ role: 'standby', postgres: { ...standby, receiving: false } })),
    'not streaming',
  );
});

// `pgarbiter switchover` follows pg1 -> pg2 from term 1 by looking at the cluster.
function look(pg1: AgentStatus | null, pg2: AgentStatus | null, term = 1, primary = 'pg1'): ClusterView {
  const record = {
    term,
    primary,
    standby: primary === 'pg1' ? 'pg2' : 'pg1',
    standbyPromotable: true,
    maintenance: false,
  };
  return {
    arbiter: {
      host: '10.0.0.3',
      reachable: true,
      state: {
        node: 'arbiter',
        role: 'arbiter',
        record,
        primaryReachable: true,
        primaryLastSeenMsAgo: 0,
        primaryVouchedMsAgo: 0,
        agents: {},
        events: [],
      },
    },
    nodes: [
      { name: 'pg1', host: '10.0.0.1', reachable: pg1 !== null, state: pg1 },
      { name: 'pg2', host: '10.0.0.2', reachable: pg2 !== null, state: pg2 },
    ],
  };
}
const streaming = { up: true, inRecovery: true, receiving: true, timeline: 1, lsn: '0/3000000' };
const writable = { up: true, inRecovery: false, receiving: false, timeline: 2, lsn: '0/3000100' };
const stopped = { up: false, inRecovery: null, receiving: false, timeline: null, lsn: null };
const standby2 = status({ node: 'pg2', role: 'standby', postgres: streaming });
/** The stage after each look, from the start of a switchover. */
function follow(views: ClusterView[]): SwitchoverProgress['stage'][] {
  let p: SwitchoverProgress = { stage: 'handover', sawFence: false };
  return views.map((v) => {
    p = followSwitchover(p, v, 'pg1', 'pg2', 1);
    return p.stage;
  });
}

test('switchover followed: handed over, promoted, the old primary rejoined', () => {
  const term2 = { term: 2, primary: 'pg2', standby: 'pg1', standbyPromotable: false, maintenance: false };
  assert.deepEqual(
    follow([
      look(status(), standby2), // the agent has not begun yet
      look(status({ fenced: true, busy: 'switchover' }), standby2),
      look(status({ fenced: true, postgres: stopped }), standby2),
      look(status({ fenced: true, postgres: stopped }), standby2, 2, 'pg2'),
      look(
        status({ fenced: true, postgres: stopped }),
        status({ node: 'pg2', postgres: writable, term: 2, record: term2 }),
        2,
        'pg2',
      ),
      look(
        status({ role: 'standby', postgres: streaming, term: 2, record: term2 }),
        status({ node: 'pg2', postgres: writable, term: 2, record: term2 }),
        2,
        'pg2',
      ),
    ]),
    ['handover', 'handover', 'handover', 'promote', 'rejoin', 'done'],
  );
});

test('switchover followed: the old primary fenced, then serving again in the same term, is an abort', () => {
  assert.deepEqual(
    follow([
      look(status({ fenced: true, busy: 'switchover' }), standby2),
      look(status({ fenced: true, postgres: stopped }), standby2),
      look(status({ fenced: true }), standby2), // restarted, still fenced
      look(status(), standby2),
    ]),
    ['handover', 'handover', 'handover', 'aborted'],
  );
  // Writable and unfenced but never seen fenced: the agent has not begun, not an abort.
  assert.deepEqual(follow([look(status(), standby2), look(status(), standby2)]), ['handover', 'handover']);
});
