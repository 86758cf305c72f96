// When the agent holds one of HAProxy's checks (Agent.checkStatus): only an answer that has been
// the same for STEADY_ANSWER_MS; the first answer after a change, the news HAProxy routes by, at once.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CHECK_HOLD_MS, checkHold, PASS_HOLD_MS, STEADY_ANSWER_MS } from '../../src/agent/daemon.js';

test('a steady pass is held PASS_HOLD_MS, a steady 503 CHECK_HOLD_MS', () => {
  assert.deepEqual(checkHold(true, { passing: true, since: 0 }, STEADY_ANSWER_MS), {
    since: 0,
    holdMs: PASS_HOLD_MS,
  });
  assert.deepEqual(checkHold(false, { passing: false, since: 0 }, STEADY_ANSWER_MS + 5), {
    since: 0,
    holdMs: CHECK_HOLD_MS,
  });
});

test('the first pass of a new primary, and the first 503 of an old one, are answered at once', () => {
  const now = 100_000;
  assert.deepEqual(checkHold(true, { passing: false, since: 0 }, now), { since: now, holdMs: 0 });
  assert.deepEqual(checkHold(false, { passing: true, since: 0 }, now), { since: now, holdMs: 0 });
  // ... and every check until the new answer has lasted STEADY_ANSWER_MS.
  assert.equal(checkHold(true, { passing: true, since: now }, now + STEADY_ANSWER_MS - 1).holdMs, 0);
  assert.equal(checkHold(true, { passing: true, since: now }, now + STEADY_ANSWER_MS).holdMs, PASS_HOLD_MS);
  // No answer given yet (an agent that just started): at once.
  assert.deepEqual(checkHold(false, null, now), { since: now, holdMs: 0 });
});
