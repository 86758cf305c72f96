// src/util/poll.ts: the one poller behind every "ask until it holds or time runs out" loop.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { poll, pollUntil } from '../../src/util/poll.js';

test('poll returns the first value a probe gives; undefined and throws count as not yet', async () => {
  let looks = 0;
  const r = await poll(
    async () => {
      looks++;
      if (looks === 1) throw new Error('not up');
      return looks < 3 ? undefined : `up after ${looks}`;
    },
    5000,
    1,
  );
  assert.deepEqual(r, { ok: true, value: 'up after 3' });
  assert.equal(looks, 3);
});

test('poll gives up at the deadline, after a last look, with the last error', async () => {
  let looks = 0;
  const t0 = Date.now();
  const r = await poll(
    async () => {
      looks++;
      throw new Error(`refused ${looks}`);
    },
    60,
    25,
  );
  assert.equal(r.ok, false);
  assert.equal(!r.ok && r.lastError, `refused ${looks}`);
  assert.ok(Date.now() - t0 >= 60, 'not before the deadline');
  assert.ok(looks >= 3, `a look at 0, 25, 50 and at the deadline: ${looks}`);
});

test('a guard that throws ends the wait at once', async () => {
  let looks = 0;
  await assert.rejects(
    poll(
      async () => {
        looks++;
        return undefined;
      },
      5000,
      1,
      () => {
        if (looks === 2) throw new Error('the lab is gone');
      },
    ),
    /the lab is gone/,
  );
  assert.equal(looks, 2);
});

test('pollUntil: true once the check holds, false when it never does', async () => {
  let n = 0;
  assert.equal(await pollUntil(async () => ++n === 2, 5000, 1), true);
  assert.equal(await pollUntil(async () => false, 20, 5), false);
});
