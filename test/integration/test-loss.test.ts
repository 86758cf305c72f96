// `pgarbiter test-loss` on real labs: the original's matrix (3 faults x off/remote_apply) with
// short cells. What must hold: every cell got acknowledgements; no acknowledged row lost under
// remote_apply, nor when only the standby stops; the JSON report has one row per cell. Loss under
// off when the primary goes is allowed (and printed), never hidden.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { selfArgv } from '../../src/lab/index.js';
import { isSyncMode } from '../../src/postgres/settings.js';
import {
  type LossMatrixResult,
  lossRowCells,
  resumedAfter,
  runLossCell,
  runLossMatrix,
} from '../../src/scenario/test-loss.js';
import { UserError } from '../../src/util/errors.js';
import { run } from '../../src/util/exec.js';
import { cleanLabAround, labIdentity, leftNamespaces, needsRoot } from './fixture.js';

const LAB = labIdentity({ prefix: 'pgtl', subnet: '10.213.100.0/24' });
const dir = mkdtempSync(join(tmpdir(), 'pgarbiter-test-loss-'));

describe('test-loss', { skip: needsRoot, timeout: 420_000 }, () => {
  cleanLabAround(LAB.prefix);
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('bad input: one-line errors, before anything is touched', async () => {
    for (const [args, msg] of [
      [
        ['--fault', 'stop-arbiter'],
        /^error: unknown fault "stop-arbiter": use stop-standby, stop-primary, isolate-primary$/,
      ],
      [['--seconds', '0'], /^error: --seconds 0: give a number > 0$/],
      [['--sync', 'sometimes'], /^error: unknown synchronous_commit mode "sometimes"/],
      [['--via', 'dns'], /^error: unknown route "dns"/],
      [['--prefix', 'Bad!'], /^error: invalid lab prefix "Bad!"/],
    ] as const) {
      const r = await run(selfArgv('test-loss', ...args, '--json', join(dir, 'bad.json')), {
        allowFailure: true,
        timeoutMs: 20_000,
      });
      assert.equal(r.code, 1, `${args.join(' ')}: exit 1`);
      assert.equal(r.stderr.trim().split('\n').length, 1, `${args.join(' ')}: one line (${r.stderr})`);
      assert.match(r.stderr.trim(), msg);
    }
    assert.ok(!existsSync(join(dir, 'bad.json')), 'no report for bad input');
    await assert.rejects(
      runLossCell({ fault: 'stop-everything' as never, sync: 'off', prefix: LAB.prefix, subnet: LAB.subnet }),
      (e: unknown) => e instanceof UserError && /unknown fault/.test(e.message),
    );
    await assert.rejects(
      runLossCell({ fault: 'stop-primary', sync: 'off', seconds: 0, prefix: LAB.prefix, subnet: LAB.subnet }),
      (e: unknown) => e instanceof UserError && /--seconds 0/.test(e.message),
    );
    assert.deepEqual(await leftNamespaces(LAB.prefix), []);
  });

  test('resumedAfter: the end of the longest pause the fault caused', () => {
    assert.equal(resumedAfter([0, 100, 200, 5200, 5300], 300), 4900);
    assert.equal(resumedAfter([0, 100, 200, 300], 150), 50);
    assert.equal(resumedAfter([0, 100], 500), null);
  });

  test('the matrix: 3 faults x off/remote_apply, short cells', async () => {
    const jsonFile = join(dir, 'report', 'test-loss.json');
    const lines: string[] = [];
    const t0 = Date.now();
    const res = await runLossMatrix({
      prefix: LAB.prefix,
      subnet: LAB.subnet,
      seconds: 2,
      warmupSeconds: 1.5,
      sessions: 8,
      jsonFile,
      ledgerDir: join(dir, 'report', 'ledgers'),
      say: (l) => {
        lines.push(l);
        process.stderr.write(`test-loss ${((Date.now() - t0) / 1000).toFixed(1)}s ${l}\n`);
      },
    });
    for (const r of res.rows) process.stderr.write(`test-loss row: ${lossRowCells(r).join(' | ')}\n`);
    assert.equal(res.rows.length, 6);
    assert.ok(!res.aborted);
    for (const r of res.rows) {
      const cell = `${r.sync}/${r.fault}`;
      assert.equal(r.error, undefined, `${cell} ran to the end`);
      assert.ok(r.acknowledged > 0, `${cell} got acks`);
      assert.ok(r.acksAfterFault > 0, `${cell} got acks after the fault`);
      if (isSyncMode(r.sync) || r.fault === 'stop-standby') {
        assert.equal(r.promisesNoLoss, true);
        assert.equal(r.lost, 0, `${cell} lost no acknowledged row (lost ${r.lost}: ${r.lostIds.join(' ')})`);
        assert.ok(r.ok, `${cell}: ${r.violations.join('; ')}`);
      }
      assert.equal(r.torn, 0, `${cell}: no torn transaction`);
      assert.equal(r.unexpected, 0, `${cell}: no failed transaction present`);
      if (r.fault === 'stop-standby') {
        assert.equal(r.failoverMs, null);
        assert.equal(r.primaryAfter, r.primaryBefore, `${cell}: no failover`);
        assert.equal(r.termAfter, r.termBefore);
      } else {
        assert.ok(
          r.failoverMs !== null && r.failoverMs > 0 && r.failoverMs < 20_000,
          `${cell}: failover ${r.failoverMs} ms`,
        );
        assert.notEqual(r.primaryAfter, r.primaryBefore, `${cell}: failover`);
        assert.equal(r.termAfter, (r.termBefore ?? 0) + 1);
      }
    }
    // remote_apply, standby stopped: the stall is bounded by sync_stall_timeout (2.5 s) + detection.
    const stall = res.rows.find((r) => r.sync === 'remote_apply' && r.fault === 'stop-standby');
    assert.ok(stall?.writeGapMs !== null && (stall?.writeGapMs ?? 0) < 8000, `stall ${stall?.writeGapMs} ms`);

    assert.ok(existsSync(jsonFile), 'the JSON report exists');
    const json = JSON.parse(readFileSync(jsonFile, 'utf8')) as LossMatrixResult;
    assert.equal(json.rows.length, 6);
    assert.equal(json.partial, undefined, 'the final report, not a partial one');
    assert.deepEqual(
      json.rows.map((r) => `${r.sync}/${r.fault}`).sort(),
      ['off', 'remote_apply']
        .flatMap((s) => ['isolate-primary', 'stop-primary', 'stop-standby'].map((f) => `${s}/${f}`))
        .sort(),
    );
    assert.ok(
      lines.some((l) => /fault: stopped pg\d/.test(l)),
      'progress lines name each step',
    );
    assert.deepEqual(await leftNamespaces(LAB.prefix), [], 'lab torn down');
  });

  test('the CLI, one cell: kill -9 of the primary, writer through HAProxy, remote_apply: nothing lost', async () => {
    const jsonFile = join(dir, 'kill', 'test-loss.json');
    const r = await run(
      selfArgv(
        'test-loss',
        ...['--fault', 'stop-primary', '--sync', 'remote_apply', '--kill', '--via', 'haproxy'],
        ...[
          '--seconds',
          '2',
          '--warmup',
          '1.5',
          '--prefix',
          LAB.prefix,
          '--subnet',
          LAB.subnet,
          '--json',
          jsonFile,
        ],
      ),
      { timeoutMs: 180_000, allowFailure: true },
    );
    assert.equal(r.code, 0, `exit 0 (stderr: ${r.stderr.slice(-2000)})`);
    assert.match(
      r.stderr,
      /fault: killed pg\d in \d+ ms: kill -9 of the agent \(pid \d+\) and PostgreSQL \(postmaster \d+/,
    );
    const json = JSON.parse(readFileSync(jsonFile, 'utf8')) as LossMatrixResult;
    assert.equal(json.rows.length, 1);
    const row = json.rows[0]!;
    assert.deepEqual(
      [row.sync, row.fault, row.kill, row.via],
      ['remote_apply', 'stop-primary', true, 'haproxy'],
    );
    assert.ok(row.acknowledged > 0 && row.acksAfterFault > 0, 'acks before and after the fault');
    assert.equal(row.lost, 0, `lost ${row.lost}: ${row.lostIds.join(' ')}`);
    assert.notEqual(row.primaryAfter, row.primaryBefore, 'failed over');
    assert.match(r.stdout, /remote_apply/, 'the table is printed');
    assert.deepEqual(await leftNamespaces(LAB.prefix), [], 'lab torn down');
  });
});
