import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decodeId, encodeId, MAX_RUN, MAX_SEQ, runIdRange } from '../../src/workload/ids.js';

test('ids round-trip and stay inside bigint', () => {
  for (const [run, session, seq] of [
    [1, 0, 1],
    [MAX_RUN, 255, MAX_SEQ],
    [4711, 3, 123456],
  ] as const) {
    const id = encodeId(run, session, seq);
    assert.deepEqual(decodeId(id), { run, session, seq });
    assert.ok(BigInt(id) <= 2n ** 63n - 1n);
    const { lo, hi } = runIdRange(run);
    assert.ok(BigInt(lo) <= BigInt(id) && BigInt(id) < BigInt(hi));
  }
});

test('ids never collide across sessions or runs, and never with small demo ids', () => {
  const seen = new Set<string>();
  for (const run of [1, 2, 77])
    for (let s = 0; s < 4; s++) for (let q = 1; q <= 50; q++) seen.add(encodeId(run, s, q));
  assert.equal(seen.size, 3 * 4 * 50);
  assert.ok(BigInt(encodeId(1, 0, 1)) > 1_000_000n);
});

test('out-of-range parts are refused', () => {
  assert.throws(() => encodeId(0, 0, 1), RangeError);
  assert.throws(() => encodeId(MAX_RUN + 1, 0, 1), RangeError);
  assert.throws(() => encodeId(1, 256, 1), RangeError);
  assert.throws(() => encodeId(1, 0, 0), RangeError);
  assert.throws(() => encodeId(1, 0, MAX_SEQ + 1), RangeError);
  assert.throws(() => decodeId('12a'), RangeError);
});
