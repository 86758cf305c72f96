import assert from 'node:assert/strict';
import { test } from 'node:test';
import { wantsColor } from '../../src/util/color.js';

const tty = { isTTY: true } as const;
const pipe = { isTTY: false } as const;

test('colour follows the stream: a terminal yes, a pipe no, and the CI variable changes nothing', () => {
  assert.equal(wantsColor(tty, {}), true);
  assert.equal(wantsColor(pipe, {}), false);
  assert.equal(wantsColor(pipe, { CI: 'true' }), false, 'CI logs and parsed output stay plain');
  assert.equal(wantsColor(tty, { TERM: 'dumb' }), false);
});

test('NO_COLOR wins over everything; FORCE_COLOR forces colour unless it says 0 or false', () => {
  assert.equal(wantsColor(tty, { NO_COLOR: '1' }), false);
  assert.equal(wantsColor(pipe, { NO_COLOR: '1', FORCE_COLOR: '1' }), false);
  assert.equal(wantsColor(pipe, { FORCE_COLOR: '1' }), true);
  assert.equal(wantsColor(pipe, { FORCE_COLOR: '' }), true);
  assert.equal(wantsColor(tty, { FORCE_COLOR: '0' }), false);
  assert.equal(wantsColor(tty, { FORCE_COLOR: 'false' }), false);
});
