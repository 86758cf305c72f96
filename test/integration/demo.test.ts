// The main job end to end: `pgarbiter demo` as a user runs it, on its own lab, torn down after.
// Asserts on the structured outcome and on the report files, not on the narration's wording.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import type { DemoOutcome } from '../../src/demo/transcript.js';
import { selfArgv } from '../../src/lab/index.js';
import { run } from '../../src/util/exec.js';
import { cleanLabAround, labIdentity, leftNamespaces, needsRoot } from './fixture.js';

const { prefix: PREFIX, subnet: SUBNET } = labIdentity({ prefix: 'pgdm', subnet: '10.213.120.0/24' });
const dir = mkdtempSync(join(tmpdir(), 'pgarbiter-demo-'));

cleanLabAround(PREFIX);
after(() => rmSync(dir, { recursive: true, force: true }));

test('pgarbiter demo runs every stage, loses nothing under remote_apply, restores the roles and writes the report', {
  skip: needsRoot,
  timeout: 600_000,
}, async () => {
  const t0 = Date.now();
  const r = await run(selfArgv('demo', '--down', '--report', dir, '--prefix', PREFIX, '--subnet', SUBNET), {
    timeoutMs: 540_000,
    allowFailure: true,
    env: { ...process.env, NO_COLOR: '1' },
  });
  const seconds = (Date.now() - t0) / 1000;
  process.stderr.write(`demo took ${seconds.toFixed(1)} s\n`);
  assert.equal(r.code, 0, `demo failed:\n${r.stdout.slice(-3000)}\n${r.stderr.slice(-2000)}`);
  const o = JSON.parse(readFileSync(join(dir, 'outcome.json'), 'utf8')) as DemoOutcome;
  assert.equal(o.ok, true);
  assert.deepEqual(
    o.steps.map((s) => s.id),
    ['1', '2.1', '2.2', '2.3', '3', 'summary'],
  );
  for (const c of o.checks) assert.ok(c.pass, `check failed: ${c.requirement}: ${c.evidence}`);
  assert.ok(o.checks.length >= 12, 'every requirement has a check');
  assert.equal(o.loss?.synchronousCommit, 'remote_apply');
  assert.equal(o.loss?.lost, 0, 'no acknowledged row lost');
  assert.ok((o.loss?.acknowledged ?? 0) > 100, 'the writer wrote throughout');
  assert.ok(o.checks.some((c) => /original configuration restored/.test(c.requirement) && c.pass));
  assert.ok(o.markers.length >= 5, 'fault, grant, heal, rejoin and switchover are on the timeline');
  const md = readFileSync(join(dir, 'report.md'), 'utf8');
  for (const step of ['1', '2.1', '2.2', '2.3', '3'])
    assert.match(md, new RegExp(`Step ${step.replace('.', '\\.')}\\b`));
  assert.match(md, /SQLSTATE 25006/);
  assert.match(md, /pgarbiter switchover/);
  const html = readFileSync(join(dir, 'report.html'), 'utf8');
  assert.match(html, /<canvas/);
  assert.ok(existsSync(join(dir, 'writer-ledger.jsonl')));
  assert.ok(seconds < 300, `the demo finishes in a bounded time (${seconds.toFixed(1)} s)`);
  // --down removed the lab.
  assert.deepEqual(await leftNamespaces(PREFIX), []);
});
