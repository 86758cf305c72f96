import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { AgentStatus } from '../../src/api/protocol.js';
import { nodeState } from '../../src/cluster/view.js';

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
