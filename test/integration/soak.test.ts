// `pgarbiter soak` on a real lab: the CI form of the long soak. The command of the issue's "done
// when" (`--schedules 3 --seed 1`) prints its table with 0 violations under remote_apply; the
// saved plan is replayable (`--replay`) and gives the same faults; bad input is refused in one
// line before anything is touched.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { selfArgv } from '../../src/lab/index.js';
import type { SoakResult } from '../../src/soak/run.js';
import type { SoakPlan } from '../../src/soak/schedule.js';
import { run } from '../../src/util/exec.js';
import { cleanLabAround, labIdentity, leftNamespaces, needsRoot } from './fixture.js';

const LAB = labIdentity({ prefix: 'pgsk', subnet: '10.213.150.0/24' });
const dir = mkdtempSync(join(tmpdir(), 'pgarbiter-soak-'));
const id = ['--prefix', LAB.prefix, '--subnet', LAB.subnet];
/** The end of a command's stderr without stack frames, for assertion messages. */
const tail = (stderr: string, n = 8) =>
  stderr
    .trim()
    .split('\n')
    .filter((l) => !/^\s+at /.test(l))
    .slice(-n)
    .join(' | ');

describe('soak', { skip: needsRoot, timeout: 600_000 }, () => {
  cleanLabAround(LAB.prefix);
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('bad input: one-line errors, nothing made', async () => {
    writeFileSync(join(dir, 'junk.json'), '{"format":"other"}');
    for (const [args, msg] of [
      [['--schedules', '0'], /^error: --schedules "0": give a whole number from 1 to 100000$/],
      [['--seed', 'x'], /^error: --seed "x": give a whole number/],
      [['--schedules', '2', '--duration', '1m'], /^error: give --schedules or --duration, not both$/],
      [['--duration', 'soon'], /^error: --duration "soon": give a number with s, m or h/],
      [['--replay', join(dir, 'none.json')], /^error: cannot read .*none.json: ENOENT$/],
      [['--replay', join(dir, 'junk.json')], /^error: .*junk.json is not a soak plan/],
      [
        ['--replay', join(dir, 'junk.json'), '--seed', '2'],
        /^error: --replay runs the file's own settings: drop --seed$/,
      ],
    ] as const) {
      const r = await run(selfArgv('soak', ...args, ...id, '--out', join(dir, 'bad')), {
        allowFailure: true,
        timeoutMs: 60_000,
      });
      assert.equal(r.code, 1, `${args.join(' ')}: exit 1 (${r.stderr})`);
      assert.equal(r.stderr.trim().split('\n').length, 1, `${args.join(' ')}: one line (${r.stderr})`);
      assert.match(r.stderr.trim(), msg);
    }
    assert.ok(!existsSync(join(dir, 'bad')), 'nothing written for bad input');
    assert.deepEqual(await leftNamespaces(LAB.prefix), []);
  });

  test('--schedules 3 --seed 1: the table, 0 violations, no acknowledged row lost; the plan replays', async () => {
    const out = join(dir, 'run');
    const r = await run(
      selfArgv(
        'soak',
        '--schedules',
        '3',
        '--seed',
        '1',
        '--keep',
        '--out',
        out,
        '--report',
        join(out, 'report'),
        ...id,
      ),
      {
        allowFailure: true,
        timeoutMs: 420_000,
      },
    );
    assert.equal(r.code, 0, `exit 0 (stderr: ${tail(r.stderr)})`);
    for (const h of ['schedule', 'faults', 'failovers', 'fences', 'acknowledged', 'lost', 'unknown'])
      assert.ok(r.stdout.includes(h), `the table has "${h}"`);
    assert.match(r.stdout, /^summary: 3 schedule\(s\)/m);
    assert.match(r.stdout, /^result: 0 violations$/m);
    const result = JSON.parse(readFileSync(join(out, 'result.json'), 'utf8')) as SoakResult;
    assert.equal(result.schedules.length, 3);
    assert.equal(result.violations, 0);
    for (const s of result.schedules) {
      assert.ok(s.acknowledged > 0, `schedule ${s.index} got acknowledgements`);
      assert.equal(s.lost, 0, `schedule ${s.index}: remote_apply loses no acknowledged row`);
      assert.ok(s.healMs !== null && s.healMs <= 60_000, `schedule ${s.index} healed within the bound`);
      assert.ok(s.faults.length >= 1);
    }
    const html = readFileSync(join(out, 'report', 'report.html'), 'utf8');
    assert.match(html, /pgarbiter soak report/);
    assert.match(html, /s0 loss/, 'the faults are drawn on the chart');

    // The saved plan is a replay file: schedule 0 again gives the same faults.
    const plan = JSON.parse(readFileSync(result.planFile, 'utf8')) as SoakPlan;
    const replay = join(dir, 'replay.json');
    writeFileSync(replay, JSON.stringify({ ...plan, schedules: [plan.schedules[0]] }));
    const again = await run(
      selfArgv('soak', '--replay', replay, '--json', '--out', join(dir, 'replayed'), ...id),
      {
        allowFailure: true,
        timeoutMs: 300_000,
      },
    );
    assert.equal(again.code, 0, `replay exit 0 (stderr: ${tail(again.stderr)})`);
    const j = JSON.parse(again.stdout) as SoakResult;
    assert.equal(j.violations, 0);
    assert.equal(j.settings.seed, 1);
    assert.deepEqual(
      j.schedules[0]?.faults.map((f) => [f.kind, f.atMs, f.durationMs]),
      result.schedules[0]?.faults.map((f) => [f.kind, f.atMs, f.durationMs]),
    );
    assert.equal(j.labKept, false, 'a clean run without --keep removes the lab');
    assert.deepEqual(await leftNamespaces(LAB.prefix), []);
  });
});
