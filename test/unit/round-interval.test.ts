// How often an agent runs its rounds (roundIntervalMs): probe_interval while the members answer;
// a standby that misses the primary sooner (it asks for promotion closer to failover_timeout); a
// primary always at probe_interval (sooner rounds fenced it on short link cuts); never later than
// probe_interval (the timing rule needs that).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { roundIntervalMs, SUSPECT_ROUND_MS } from '../../src/agent/daemon.js';
import { TIMING_PROFILES } from '../../src/config.js';

const record = { term: 1, primary: 'pg1', standby: 'pg2', standbyPromotable: true, maintenance: false };
const peer = { node: 'pg1', record, vouch: null };
const all = { peer, primaryPgOk: true };

test('idle: the members answered, the next round after probe_interval', () => {
  for (const { probe_interval } of Object.values(TIMING_PROFILES)) {
    assert.equal(roundIntervalMs(all, false, probe_interval), probe_interval);
    // The primary does not probe its own PostgreSQL over TCP: primaryPgOk false is no miss there.
    assert.equal(roundIntervalMs({ ...all, primaryPgOk: false }, true, probe_interval), probe_interval);
    // Before the first round: probe_interval.
    assert.equal(roundIntervalMs(null, false, probe_interval), probe_interval);
  }
});

test('a standby that missed the primary: the next round sooner, never later than probe_interval', () => {
  const p = TIMING_PROFILES.default.probe_interval;
  assert.equal(roundIntervalMs({ ...all, primaryPgOk: false }, false, p), SUSPECT_ROUND_MS);
  assert.equal(roundIntervalMs({ ...all, peer: null }, false, p), SUSPECT_ROUND_MS);
  assert.ok(SUSPECT_ROUND_MS < p);
  // A probe_interval already under SUSPECT_ROUND_MS stays as it is.
  assert.equal(roundIntervalMs({ ...all, peer: null }, false, 100), 100);
});

test('a primary that misses its peers keeps probe_interval', () => {
  const p = TIMING_PROFILES.default.probe_interval;
  assert.equal(roundIntervalMs({ peer: null, primaryPgOk: false }, true, p), p);
});
