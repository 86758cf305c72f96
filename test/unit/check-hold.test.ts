// When the agent holds one of HAProxy's checks (Agent.checkStatus): only an answer that has been
// the same for STEADY_ANSWER_MS, or a /primary 503 while a promotion is under way or expected; the
// first answer after a change, the news HAProxy routes by, at once.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  CHECK_HOLD_MS,
  type CheckHoldInput,
  checkHold,
  PASS_HOLD_MS,
  STEADY_ANSWER_MS,
} from '../../src/agent/daemon.js';

const check = (c: Partial<CheckHoldInput> & Pick<CheckHoldInput, 'passing' | 'start'>) =>
  checkHold({ last: null, primaryCheck: true, promoting: false, promotionExpectedUntil: 0, ...c });

test('a steady pass is held PASS_HOLD_MS, a steady 503 CHECK_HOLD_MS', () => {
  const start = STEADY_ANSWER_MS;
  assert.deepEqual(check({ passing: true, last: { passing: true, since: 0 }, start }), {
    since: 0,
    until: start + PASS_HOLD_MS,
  });
  assert.deepEqual(check({ passing: false, last: { passing: false, since: 0 }, start: start + 5 }), {
    since: 0,
    until: start + 5 + CHECK_HOLD_MS,
  });
  // The same on /replica.
  const replica = check({ passing: false, last: { passing: false, since: 0 }, start, primaryCheck: false });
  assert.equal(replica.until, start + CHECK_HOLD_MS);
});

test('the first pass of a new primary, and the first 503 of an old one, are answered at once', () => {
  const now = 100_000;
  assert.deepEqual(check({ passing: true, last: { passing: false, since: 0 }, start: now }), {
    since: now,
    until: now,
  });
  assert.deepEqual(check({ passing: false, last: { passing: true, since: 0 }, start: now }), {
    since: now,
    until: now,
  });
  // ... and every check until the new answer has lasted STEADY_ANSWER_MS.
  const since = { passing: true, since: now };
  assert.equal(
    check({ passing: true, last: since, start: now + STEADY_ANSWER_MS - 1 }).until,
    now + STEADY_ANSWER_MS - 1,
  );
  assert.equal(
    check({ passing: true, last: since, start: now + STEADY_ANSWER_MS }).until,
    now + STEADY_ANSWER_MS + PASS_HOLD_MS,
  );
  // No answer given yet (an agent that just started): at once.
  assert.deepEqual(check({ passing: false, start: now }), { since: now, until: now });
});

test('a /primary 503 is held while a promotion is under way, even just after a change', () => {
  const now = 50_000;
  const changed = { passing: false, since: now - 10 };
  assert.equal(
    check({ passing: false, last: changed, start: now, promoting: true }).until,
    now + CHECK_HOLD_MS,
  );
  // Not on /replica: a promotion does not make the node a replica.
  assert.equal(
    check({ passing: false, last: changed, start: now, promoting: true, primaryCheck: false }).until,
    now,
  );
});

test('a /primary 503 is held while a promotion is expected, no longer than it is expected', () => {
  const now = 50_000;
  assert.equal(check({ passing: false, start: now, promotionExpectedUntil: now + 300 }).until, now + 300);
  assert.equal(
    check({ passing: false, start: now, promotionExpectedUntil: now + 5000 }).until,
    now + CHECK_HOLD_MS,
  );
  // An expectation that has lapsed holds nothing.
  assert.equal(check({ passing: false, start: now, promotionExpectedUntil: now - 1 }).until, now);
  // A pass is never held for a promotion (only a steady one, for PASS_HOLD_MS).
  assert.equal(
    check({ passing: true, start: now, promoting: true, promotionExpectedUntil: now + 500 }).until,
    now,
  );
});
