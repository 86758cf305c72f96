// How often an agent runs its rounds (roundIntervalMs): probe_interval while every member it watches
// answers, sooner while one does not, never later than probe_interval (the timing rule needs that).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { roundIntervalMs, SUSPECT_ROUND_MS } from '../../src/agent/daemon.js';
import { TIMING_PROFILES } from '../../src/config.js';

const record = { term: 1, primary: 'pg1', standby: 'pg2', standbyPromotable: true, maintenance: false };
const arbiter = { record, primaryVouchedMsAgo: 100 };
const peer = { node: 'pg2', record, vouch: null };
const all = { arbiter, peer, primaryPgOk: true };

test('idle: every member answered, the next round after probe_interval', () => {
  for (const { probe_interval } of Object.values(TIMING_PROFILES)) {
    assert.equal(roundIntervalMs(all, false, probe_interval), probe_interval);
    // The primary does not probe its own PostgreSQL over TCP: primaryPgOk false is no miss there.
    assert.equal(roundIntervalMs({ ...all, primaryPgOk: false }, true, probe_interval), probe_interval);
    // Before the first round: probe_interval.
    assert.equal(roundIntervalMs(null, false, probe_interval), probe_interval);
  }
});

test('a member missing from the last round: the next one sooner, never later than probe_interval', () => {
  const p = TIMING_PROFILES.default.probe_interval;
  assert.equal(roundIntervalMs({ ...all, arbiter: null }, true, p), SUSPECT_ROUND_MS);
  assert.equal(roundIntervalMs({ ...all, peer: null }, true, p), SUSPECT_ROUND_MS);
  assert.equal(roundIntervalMs({ ...all, primaryPgOk: false }, false, p), SUSPECT_ROUND_MS);
  assert.ok(SUSPECT_ROUND_MS < p);
  // A probe_interval already under SUSPECT_ROUND_MS stays as it is.
  assert.equal(roundIntervalMs({ ...all, peer: null }, false, 100), 100);
});
