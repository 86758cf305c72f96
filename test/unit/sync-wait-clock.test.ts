import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SyncWaitClock } from '../../src/agent/probes.js';

test('a commit wait is timed from the first probe that saw it, and forgotten when it ends', () => {
  const c = new SyncWaitClock();
  assert.equal(c.update([], 0), 0, 'nothing waits');
  // A long autocommit statement starts waiting: whatever its query_start, it counts from now.
  assert.equal(c.update(['101@2026-11-23 15:00:00+00'], 1000), 0);
  assert.equal(c.update(['101@2026-11-23 15:00:00+00'], 1500), 500);
  // A second waiter; the oldest counts.
  assert.equal(c.update(['101@2026-11-23 15:00:00+00', '102@2026-11-23 15:00:01+00'], 2000), 1000);
  // The first one was acknowledged: only the second is left.
  assert.equal(c.update(['102@2026-11-23 15:00:01+00'], 2500), 500);
  // The same backend's next commit is a new wait (another query_start).
  assert.equal(c.update(['102@2026-11-23 15:00:03+00'], 3000), 0);
  assert.equal(c.update([], 3500), 0);
});
