// The benchmarks' command lines: --help prints the usage (the file's header comment) and bad input
// is one line with exit code 2, before any lab is made.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const BENCHES = ['failover', 'fence', 'floor', 'light', 'rejoin', 'tolerance'];
const benchJs = (name: string) => fileURLToPath(new URL(`../../bench/${name}.js`, import.meta.url));
const runBench = (name: string, ...args: string[]) =>
  spawnSync(process.execPath, [benchJs(name), ...args], { encoding: 'utf8', timeout: 30_000 });

test('every benchmark prints its usage on --help and exits 0', () => {
  for (const b of BENCHES) {
    const r = runBench(b, '--help');
    assert.equal(r.status, 0, `${b}: ${r.stderr}`);
    assert.match(r.stdout, new RegExp(`^bench/${b}: `), b);
    assert.match(r.stdout, new RegExp(`node dist/bench/${b}\\.js \\[--`), `${b}: the usage line`);
  }
});

test('an unknown flag or a bad value is one line on stderr, exit 2, and no lab', () => {
  const cases: [string, string[], RegExp][] = [
    ['failover', ['--bogus'], /Unknown option '--bogus'/],
    ['failover', ['--runs', '0'], /--runs 0/],
    ['failover', ['--session-age', 'x'], /--session-age x/],
    ['tolerance', ['--repeat', 'x'], /--repeat x/],
    ['tolerance', ['--losses', '5,abc'], /--losses 5,abc: not a valid list/],
    ['fence', ['--mechanism', 'pf'], /--mechanism pf/],
    ['light', ['--timing', 'slow'], /--timing/],
    ['floor', ['--seconds', '2'], /--seconds 2: a whole number from 5/],
    ['failover', ['--timing', 'slow'], /--timing slow: use default or fast/],
    ['rejoin', ['--scale', '500'], /--scale/],
  ];
  for (const [b, args, msg] of cases) {
    const r = runBench(b, ...args, '--prefix', 'pgbarg');
    assert.equal(r.status, 2, `${b} ${args.join(' ')}`);
    assert.match(r.stderr, msg);
    assert.equal(r.stderr.trim().split('\n').length, 1, `${b}: one line, got ${r.stderr}`);
    assert.equal(r.stdout, '');
  }
  assert.equal(existsSync('/run/netns/pgbarg-sw'), false, 'no lab was made');
});
